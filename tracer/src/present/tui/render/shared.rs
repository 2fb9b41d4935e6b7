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

/// The ways to write a namespace label, longest first, each whole: `pod NS/NAME`, `NS/NAME`,
/// `NAME`; `netns INODE`, `INODE`; anything else as it is. A `+N` suffix (more namespaces) is
/// kept on each.
fn namespace_forms(label: &str) -> Vec<String> {
    let (base, suffix) = match label.rsplit_once(" +") {
        Some((base, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
            (base, format!(" +{n}"))
        }
        _ => (label, String::new()),
    };
    let mut forms = vec![base.to_owned()];
    if let Some(pod) = base.strip_prefix("pod ") {
        forms.push(pod.to_owned());
        if let Some((_, name)) = pod.split_once('/') {
            forms.push(name.to_owned());
        }
    } else if let Some(inode) = base.strip_prefix("netns ") {
        forms.push(inode.to_owned());
    }
    forms.into_iter().map(|f| f + &suffix).collect()
}

/// A namespace label in `width` cells: its longest whole form that fits, else its shortest (the
/// column is never made narrower than that by [`namespace_width`], so an inode or a pod name is
/// not cut inside).
pub(super) fn namespace_cell(label: &str, width: u16) -> String {
    let forms = namespace_forms(label);
    forms
        .iter()
        .find(|f| f.chars().count() <= usize::from(width))
        .or(forms.last())
        .cloned()
        .unwrap_or_default()
}

/// Width of a namespace column that shares `room` cells with a flexible column wanting `other`:
/// the full labels when both fit; else what leaves the other column its want, but never less
/// than the shortest whole form of every label (nor the header).
pub(super) fn namespace_width<'a>(
    labels: impl Iterator<Item = &'a str>,
    header: &str,
    room: u16,
    other: u16,
) -> u16 {
    let (mut full, mut least) = (0usize, header.chars().count());
    for label in labels {
        let forms = namespace_forms(label);
        full = full.max(forms.first().map_or(0, |f| f.chars().count()));
        least = least.max(forms.last().map_or(0, |f| f.chars().count()));
    }
    let full = full.max(least) as u16;
    if full.saturating_add(other) <= room {
        return full;
    }
    room.saturating_sub(other).clamp(least as u16, full)
}
