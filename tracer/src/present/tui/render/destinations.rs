//! The destinations table (the report's `flows` section): retransmits, resets, failed connects
//! and RTT per destination. Uses `shared` for columns and counts.

use ratatui::{
    layout::{Constraint, Rect},
    style::{Color, Style},
    text::Line,
    widgets::{Cell, Paragraph, Row, Table},
    Frame,
};

use super::shared::{
    column_width, format_count, header_row, namespace_cell, namespace_width, pane_block,
    render_table,
};
use crate::present::tui::app::{App, Pane};

/// Latency in at most 7 characters (`850µs`, `12.3ms`, `1.20s`), `-` when unknown.
pub(super) fn format_latency(us: Option<f64>) -> String {
    match us {
        None => "-".to_owned(),
        Some(us) if us < 1_000.0 => format!("{us:.0}µs"),
        Some(us) if us < 1_000_000.0 => format!("{:.1}ms", us / 1e3),
        Some(us) => format!("{:.2}s", us / 1e6),
    }
}

/// Destinations (the report's `flows` section): retransmits, resets, failed connects, RTT.
/// Focusable like the other tables (Enter opens a row); the filter narrows it.
pub(super) fn render_destinations(app: &App, frame: &mut Frame, area: Rect) {
    let rows = app.visible_destinations();
    let total = app.dashboard().map_or(0, |d| d.destinations.len());
    let title = if app.filter().is_empty() {
        format!(" Destinations: failures, resets, RTT ({total}) ")
    } else {
        format!(
            " Destinations matching the filter ({} of {total}) ",
            rows.len()
        )
    };
    let block = pane_block(title, app.focus == Pane::Destinations);
    if rows.is_empty() {
        let message = match app.dashboard() {
            None => "",
            Some(_) if total == 0 => "no TCP destination seen in the window",
            Some(_) => "no destination matches the filter",
        };
        frame.render_widget(
            Paragraph::new(message)
                .style(Style::new().fg(Color::DarkGray))
                .block(block),
            area,
        );
        return;
    }
    let inner_width = area.width.saturating_sub(2);
    let dest_width = column_width(
        rows.iter().map(|r| r.destination.as_str()),
        "destination",
        11,
        47,
    );
    // Seven gaps between eight columns; the rest is the namespace's and the errors'.
    let room = inner_width.saturating_sub(dest_width + 7 + 5 + 6 + 7 + 7 + 7);
    let errors_want = column_width(rows.iter().map(|r| r.errors.as_str()), "errors", 6, 40);
    let namespace_width = namespace_width(
        rows.iter().map(|r| r.namespace.as_str()),
        "namespace",
        room,
        errors_want,
    );
    let widths = vec![
        Constraint::Length(namespace_width),
        Constraint::Length(dest_width),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Fill(1),
    ];
    let header = vec![
        "namespace",
        "destination",
        "retrans",
        "  rst",
        "failed",
        "rtt p50",
        "rtt p99",
        "errors",
    ];
    let table_rows: Vec<Row> = rows
        .iter()
        .map(|row| {
            let failed = Line::from(format_count(row.failed_connects)).right_aligned();
            Row::new(vec![
                Cell::from(namespace_cell(&row.namespace, namespace_width)),
                Cell::from(row.destination.clone()),
                Cell::from(Line::from(format_count(row.retransmits)).right_aligned()),
                Cell::from(Line::from(format_count(row.resets)).right_aligned()),
                Cell::from(if row.failed_connects > 0 {
                    failed.style(Style::new().fg(Color::Red))
                } else {
                    failed
                }),
                Cell::from(Line::from(format_latency(row.rtt_p50_us)).right_aligned()),
                Cell::from(Line::from(format_latency(row.rtt_p99_us)).right_aligned()),
                Cell::from(row.errors.clone()),
            ])
        })
        .collect();
    let table = Table::new(table_rows, widths)
        .header(header_row(header))
        .block(block);
    render_table(app, frame, area, Pane::Destinations, table);
}
