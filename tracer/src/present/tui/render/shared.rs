//! What every pane of the dashboard draws with: the pane frame and selection colours, table
//! columns and headers, and counts and rates in a few characters. Uses only ratatui and the
//! app's state.

use ratatui::{
    layout::Rect,
    style::{Color, Modifier, Style},
    text::Span,
    widgets::{Block, Row, Table, TableState},
    Frame,
};

use crate::present::tui::app::{App, Pane};
use crate::{judge::layers::Layer, present::dashboard::Dashboard};

/// A pane's frame: highlighted when it has the focus.
pub(super) fn pane_block(title: String, focused: bool) -> Block<'static> {
    let (border, title_style) = if focused {
        (
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
        )
    } else {
        (
            Style::new().fg(Color::DarkGray),
            Style::new().add_modifier(Modifier::BOLD),
        )
    };
    Block::bordered()
        .border_style(border)
        .title(Span::styled(title, title_style))
}

pub(super) fn selection_style() -> Style {
    Style::new().bg(Color::Cyan).fg(Color::Black)
}

/// The failure layer of the shown verdict, if any.
pub(super) fn failure_layer(dashboard: Option<&Dashboard>) -> Option<Layer> {
    let d = dashboard?;
    Layer::ALL
        .into_iter()
        .find(|l| l.as_str() == d.failure_layer)
}

/// The width a column needs for its longest cell, within bounds.
pub(super) fn column_width<'a>(
    cells: impl Iterator<Item = &'a str>,
    header: &str,
    min: u16,
    max: u16,
) -> u16 {
    let longest = cells
        .map(|c| c.chars().count())
        .chain([header.chars().count()])
        .max()
        .unwrap_or(0);
    (longest as u16).clamp(min, max)
}

/// Draws a table with the app's selection when its pane has the focus.
pub(super) fn render_table(
    app: &App,
    frame: &mut Frame,
    area: Rect,
    pane: Pane,
    table: Table<'static>,
) {
    let mut state = TableState::default();
    if app.focus == pane {
        state.select(Some(app.selected(pane)));
    }
    frame.render_stateful_widget(
        table
            .column_spacing(1)
            .row_highlight_style(selection_style()),
        area,
        &mut state,
    );
}

/// A table's header row.
pub(super) fn header_row(cells: Vec<&'static str>) -> Row<'static> {
    Row::new(cells).style(
        Style::new()
            .fg(Color::Gray)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
    )
}

/// A count in at most 6 characters.
pub(super) fn format_count(value: u64) -> String {
    if value < 100_000 {
        value.to_string()
    } else if value < 10_000_000 {
        format!("{:.0}k", value as f64 / 1e3)
    } else {
        format!("{:.1}M", value as f64 / 1e6)
    }
}

/// A rate in at most 6 characters.
pub(super) fn format_rate(value: f64) -> String {
    if value < 100.0 {
        format!("{value:.1}")
    } else if value < 100_000.0 {
        format!("{value:.0}")
    } else {
        format!("{:.0}k", value / 1e3)
    }
}
