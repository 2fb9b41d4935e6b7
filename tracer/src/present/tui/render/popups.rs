//! The popups over the dashboard: details of the selected drop or flow, and the key help. Uses
//! `shared` for the frame and number formats.

use ratatui::{
    layout::Rect,
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Clear, Paragraph, Wrap},
    Frame,
};

use super::destinations::format_latency;
use super::shared::{format_rate, pane_block};
use crate::present::tui::app::{App, Drill};

/// A centered rectangle of at most `width`×`height` inside `area`.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    )
}

pub(super) fn render_drill(app: &App, drill: &Drill, frame: &mut Frame, area: Rect) {
    let label = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let field = |name: &str, value: String| {
        Line::from(vec![
            Span::styled(format!("{name:<12}"), label),
            Span::raw(value),
        ])
    };
    let window = app.dashboard().map_or(0.0, |d| d.window_s);
    let (title, mut lines) = match drill {
        Drill::Drop(row) => {
            let layer = match row.layer {
                Some(layer) => format!("{} (root cause {})", layer.as_str(), layer.root_cause()),
                None => "none: does not decide the verdict".to_owned(),
            };
            let mut lines = vec![
                field("reason", row.reason.clone()),
                field("location", row.location.clone()),
                field("class", row.class.clone()),
                field("layer", layer),
                field(
                    "count",
                    format!(
                        "{} in the last {window:.0} s ({}/s)",
                        row.count,
                        format_rate(row.per_second)
                    ),
                ),
            ];
            if row.namespaces.is_empty() {
                lines.push(field("namespaces", "none recorded".to_owned()));
            }
            for (index, namespace) in row.namespaces.iter().enumerate() {
                let name = if index == 0 { "namespaces" } else { "" };
                lines.push(field(name, namespace.clone()));
            }
            (format!(" Drop: {} ", row.reason), lines)
        }
        Drill::Flow(row) => (
            " Retransmitting flow ".to_owned(),
            vec![
                field("namespace", row.namespace.clone()),
                field("source", row.source.clone()),
                field("destination", row.destination.clone()),
                field("state", row.state.clone()),
                field(
                    "retransmits",
                    format!(
                        "{} segments in the last {window:.0} s ({}/s)",
                        row.retransmitted_segments,
                        format_rate(row.per_second)
                    ),
                ),
            ],
        ),
        Drill::Destination(row) => (
            format!(" Destination: {} ", row.destination),
            vec![
                field("namespace", row.namespace.clone()),
                field("destination", row.destination.clone()),
                field(
                    "connects",
                    format!(
                        "{} in the last {window:.0} s, {} failed",
                        row.connects, row.failed_connects
                    ),
                ),
                field("retransmits", row.retransmits.to_string()),
                field("resets", row.resets.to_string()),
                field(
                    "rtt",
                    format!(
                        "p50 {} · p99 {}",
                        format_latency(row.rtt_p50_us),
                        format_latency(row.rtt_p99_us)
                    ),
                ),
                field(
                    "errors",
                    if row.errors.is_empty() {
                        "none".to_owned()
                    } else {
                        row.errors.clone()
                    },
                ),
            ],
        ),
    };
    lines.push(Line::from(""));
    lines.push(Line::styled(
        "Esc closes · ↑↓ the next row",
        Style::new().fg(Color::DarkGray),
    ));
    let width = area.width.saturating_sub(4).min(100);
    let height = (lines.len() as u16 + 2).min(area.height);
    let rect = centered(area, width, height);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(pane_block(title, true)),
        rect,
    );
}

pub(super) fn render_help(frame: &mut Frame, area: Rect) {
    let key = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let lines: Vec<Line> = [
        ("q, Ctrl-C", "quit (the terminal is restored)"),
        ("Tab, →", "next pane"),
        ("Shift-Tab, ←", "previous pane"),
        ("↑ ↓", "select a row"),
        ("Enter", "details of the selected drop, flow or destination"),
        (
            "Esc",
            "close details or help; clear the filter (the focus stays)",
        ),
        ("/", "filter the tables: address, port, reason, pod"),
        ("p", "pause (new data is kept aside)"),
        ("s", "save the verdict document as JSON"),
        ("?", "this help"),
    ]
    .into_iter()
    .map(|(keys, what)| {
        Line::from(vec![
            Span::styled(format!(" {keys:<14}"), key),
            Span::raw(what),
        ])
    })
    .chain([
        Line::from(""),
        Line::styled(
            " Banner: verdict of the rolling window; red HIGH, yellow MEDIUM, green none",
            Style::new().fg(Color::DarkGray),
        ),
    ])
    .collect();
    // As wide as the longest line (and the borders) allows; on a narrower screen the lines wrap
    // and the popup grows by the wrapped lines, so nothing is cut.
    let longest = lines.iter().map(Line::width).max().unwrap_or(0) as u16;
    let width = longest.saturating_add(2).min(area.width);
    let inner = usize::from(width.saturating_sub(2).max(1));
    let height: usize = lines.iter().map(|l| l.width().max(1).div_ceil(inner)).sum();
    let rect = centered(area, width, height as u16 + 2);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(pane_block(" Help · any key closes ".to_owned(), true)),
        rect,
    );
}
