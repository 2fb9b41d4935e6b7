//! The two focusable tables: top drops (reason, location, class, namespaces, count, rate; the
//! failure layer's rows in red) and top retransmitting flows. Uses `shared` for columns.

use ratatui::{
    layout::{Constraint, Rect},
    style::{Color, Style},
    text::Line,
    widgets::{Cell, Paragraph, Row, Table},
    Frame,
};

use super::shared::{
    column_width, failure_layer, format_count, format_rate, header_row, pane_block, render_table,
};
use crate::present::tui::app::{App, Pane};
use crate::{judge::layers::Layer, present::dashboard::DropRow};

pub(super) fn render_drops(app: &App, frame: &mut Frame, area: Rect) {
    let focused = app.focus == Pane::Drops;
    let rows = app.visible_drops();
    let total = app.dashboard().map_or(0, |d| d.drops.len());
    let title = if app.filter().is_empty() {
        format!(" Top drops ({total}) ")
    } else {
        format!(" Drops matching the filter ({} of {total}) ", rows.len())
    };
    let block = pane_block(title, focused);
    let inner = block.inner(area);
    if rows.is_empty() {
        let message = match app.dashboard() {
            None => "",
            Some(_) if total == 0 => "no drops in the window",
            Some(_) => "no drop matches the filter",
        };
        frame.render_widget(
            Paragraph::new(message)
                .style(Style::new().fg(Color::DarkGray))
                .block(block),
            area,
        );
        return;
    }
    let failing = failure_layer(app.dashboard());
    let with_class = inner.width >= 110;
    let reason_width = column_width(rows.iter().map(|r| r.reason.as_str()), "reason", 10, 24);
    let namespace_width = column_width(
        rows.iter()
            .map(|r| namespaces_text(r))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
        "namespace/pod",
        13,
        if with_class { 32 } else { 16 },
    );
    let class_width = column_width(rows.iter().map(|r| r.class.as_str()), "class", 5, 28);
    let mut widths = vec![Constraint::Length(reason_width), Constraint::Fill(1)];
    let mut header = vec!["reason", "location"];
    if with_class {
        widths.push(Constraint::Length(class_width));
        header.push("class");
    }
    widths.extend([
        Constraint::Length(namespace_width),
        Constraint::Length(7),
        Constraint::Length(7),
    ]);
    header.extend(["namespace/pod", "  count", "    /s"]);
    let table_rows: Vec<Row> = rows
        .iter()
        .map(|row| {
            let mut cells = vec![
                Cell::from(row.reason.clone()),
                Cell::from(row.location.clone()),
            ];
            if with_class {
                cells.push(Cell::from(row.class.clone()));
            }
            cells.extend([
                Cell::from(namespaces_text(row)),
                Cell::from(Line::from(format_count(row.count)).right_aligned()),
                Cell::from(Line::from(format_rate(row.per_second)).right_aligned()),
            ]);
            Row::new(cells).style(drop_style(row, failing))
        })
        .collect();
    let table = Table::new(table_rows, widths)
        .header(header_row(header))
        .block(block);
    render_table(app, frame, area, Pane::Drops, table);
}

fn drop_style(row: &DropRow, failing: Option<Layer>) -> Style {
    match row.layer {
        Some(layer) if Some(layer) == failing => Style::new().fg(Color::Red),
        Some(_) => Style::new(),
        None => Style::new().fg(Color::DarkGray),
    }
}

/// `netns pod-a`, or `netns pod-a +2` when the drops came from several namespaces.
fn namespaces_text(row: &DropRow) -> String {
    match row.namespaces.as_slice() {
        [] => "—".to_owned(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} +{}", rest.len()),
    }
}

pub(super) fn render_flows(app: &App, frame: &mut Frame, area: Rect) {
    let focused = app.focus == Pane::Flows;
    let rows = app.visible_flows();
    let total = app.dashboard().map_or(0, |d| d.flows.len());
    let title = if app.filter().is_empty() {
        format!(" Top retransmitting flows ({total}) ")
    } else {
        format!(" Flows matching the filter ({} of {total}) ", rows.len())
    };
    let block = pane_block(title, focused);
    if rows.is_empty() {
        let message = match app.dashboard() {
            None => "",
            Some(_) if total == 0 => "no retransmissions in the window",
            Some(_) => "no flow matches the filter",
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
    let namespace_width = column_width(
        rows.iter().map(|r| r.namespace.as_str()),
        "namespace",
        9,
        if inner_width >= 110 { 32 } else { 14 },
    );
    let state_width = column_width(rows.iter().map(|r| short_state(&r.state)), "state", 5, 12);
    // Four gaps between five columns; what is left is the flow's.
    let flow_width = inner_width.saturating_sub(namespace_width + state_width + 8 + 7 + 4);
    let widths = vec![
        Constraint::Length(namespace_width),
        Constraint::Fill(1),
        Constraint::Length(state_width),
        Constraint::Length(8),
        Constraint::Length(7),
    ];
    let header = vec![
        "namespace",
        "source → destination",
        "state",
        " retrans",
        "    /s",
    ];
    let table_rows: Vec<Row> = rows
        .iter()
        .map(|row| {
            Row::new(vec![
                Cell::from(row.namespace.clone()),
                Cell::from(flow_text(&row.source, &row.destination, flow_width)),
                Cell::from(short_state(&row.state).to_owned()),
                Cell::from(Line::from(format_count(row.retransmitted_segments)).right_aligned()),
                Cell::from(Line::from(format_rate(row.per_second)).right_aligned()),
            ])
        })
        .collect();
    let table = Table::new(table_rows, widths)
        .header(header_row(header))
        .block(block);
    render_table(app, frame, area, Pane::Flows, table);
}

/// `ESTABLISHED` for `TCP_ESTABLISHED`.
fn short_state(state: &str) -> &str {
    state.strip_prefix("TCP_").unwrap_or(state)
}

/// `source → destination` in `width` cells: the source loses its start first, so the
/// destination (the service the pod is trying to reach) stays readable.
pub(crate) fn flow_text(source: &str, destination: &str, width: u16) -> String {
    let width = width as usize;
    let full = format!("{source} → {destination}");
    if full.chars().count() <= width {
        return full;
    }
    let tail = format!(" → {destination}");
    let keep = width.saturating_sub(tail.chars().count() + 1);
    if keep == 0 {
        return format!("→ {destination}");
    }
    let skip = source.chars().count().saturating_sub(keep);
    format!("…{}{tail}", source.chars().skip(skip).collect::<String>())
}
