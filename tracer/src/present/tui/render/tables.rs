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
    column_width, failure_layer, format_count, format_rate, header_row, namespace_cell,
    namespace_width, pane_block, render_table,
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
    let class_width = column_width(rows.iter().map(|r| r.class.as_str()), "class", 5, 28);
    let location_want = column_width(
        rows.iter().map(|r| r.location.as_str()),
        "location",
        8,
        u16::MAX,
    );
    let namespaces: Vec<String> = rows.iter().map(|r| namespaces_text(r)).collect();
    // Room for location and namespace: the rest, less the gaps between the columns.
    let gaps = if with_class { 5 } else { 4 };
    let fixed = reason_width + if with_class { class_width } else { 0 } + 7 + 7 + gaps;
    let room = inner.width.saturating_sub(fixed);
    let namespace_width = namespace_width(
        namespaces.iter().map(String::as_str),
        "namespace/pod",
        room,
        location_want,
    );
    // The location takes what it needs and the namespace the rest; when short of room the
    // location gives way (the namespace keeps whole inodes and pod names).
    let (location, namespace) = if location_want + namespace_width <= room {
        (Constraint::Length(location_want), Constraint::Fill(1))
    } else {
        (Constraint::Fill(1), Constraint::Length(namespace_width))
    };
    let mut widths = vec![Constraint::Length(reason_width), location];
    let mut header = vec!["reason", "location"];
    if with_class {
        widths.push(Constraint::Length(class_width));
        header.push("class");
    }
    widths.extend([namespace, Constraint::Length(7), Constraint::Length(7)]);
    header.extend(["namespace/pod", "  count", "    /s"]);
    let namespace_cells = room.saturating_sub(location_want).max(namespace_width);
    let table_rows: Vec<Row> = rows
        .iter()
        .zip(&namespaces)
        .map(|(row, namespaces)| {
            let mut cells = vec![
                Cell::from(row.reason.clone()),
                Cell::from(row.location.clone()),
            ];
            if with_class {
                cells.push(Cell::from(row.class.clone()));
            }
            cells.extend([
                Cell::from(namespace_cell(namespaces, namespace_cells)),
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
    let state_width = column_width(rows.iter().map(|r| short_state(&r.state)), "state", 5, 12);
    // Four gaps between five columns; the rest is the namespace's and the flow's.
    let room = inner_width.saturating_sub(state_width + 8 + 7 + 4);
    let flow_want = column_width(
        rows.iter()
            .map(|r| format!("{} → {}", r.source, r.destination))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
        "source → destination",
        20,
        u16::MAX,
    );
    let namespace_width = namespace_width(
        rows.iter().map(|r| r.namespace.as_str()),
        "namespace",
        room,
        flow_want,
    );
    let flow_width = room.saturating_sub(namespace_width);
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
                Cell::from(namespace_cell(&row.namespace, namespace_width)),
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
