//! The counter-changes pane: one line per counter worth showing, growing ones in yellow. Uses
//! `shared` for the frame and selection.

use ratatui::{
    layout::Rect,
    style::{Color, Style},
    text::Line,
    widgets::{List, ListItem, ListState, Paragraph},
    Frame,
};

use super::shared::{pane_block, selection_style};
use crate::present::tui::app::{App, Pane};

pub(super) fn render_counters(app: &App, frame: &mut Frame, area: Rect) {
    let focused = app.focus == Pane::Counters;
    let block = pane_block(" Counter changes ".to_owned(), focused);
    let counters = app
        .dashboard()
        .map(|d| d.counters.as_slice())
        .unwrap_or_default();
    if counters.is_empty() {
        let message = if app.dashboard().is_some() {
            "no counter worth a line changed"
        } else {
            ""
        };
        frame.render_widget(
            Paragraph::new(message)
                .style(Style::new().fg(Color::DarkGray))
                .block(block),
            area,
        );
        return;
    }
    let items: Vec<ListItem> = counters
        .iter()
        .map(|c| {
            let style = if c.change.contains("(+") {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            };
            ListItem::new(Line::styled(c.change.clone(), style))
        })
        .collect();
    let mut state = ListState::default();
    if focused {
        state.select(Some(app.selected(Pane::Counters)));
    }
    frame.render_stateful_widget(
        List::new(items)
            .block(block)
            .highlight_style(selection_style()),
        area,
        &mut state,
    );
}
