//! Draws the dashboard: a pure function of [`App`] onto a ratatui frame, for 80×24 and up.
//! Changes no state and reads no clock; tests render it onto ratatui's `TestBackend`.

use ratatui::{
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{
        Block, Cell, Clear, List, ListItem, ListState, Paragraph, Row, Sparkline, Table,
        TableState, Wrap,
    },
    Frame,
};

use super::app::{shows_counters, App, Drill, Pane, COMPACT_HEIGHT, COMPACT_WIDTH};
use crate::{
    judge::layers::Layer,
    present::dashboard::{Dashboard, DropRow},
};

/// Height of the scoreboard / CPU row: six layers and two borders.
const TOP_ROW_HEIGHT: u16 = 8;

/// Draws the whole screen for the app's state.
pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    if area.width == 0 || area.height == 0 {
        return;
    }
    if area.width < COMPACT_WIDTH || area.height < COMPACT_HEIGHT {
        render_compact(app, frame, area);
        return;
    }
    let alert_lines = alert_height(app, area.height);
    let [banner, top, tables, alerts, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(TOP_ROW_HEIGHT),
        Constraint::Fill(1),
        Constraint::Length(alert_lines),
        Constraint::Length(1),
    ])
    .areas(area);
    render_banner(app, frame, banner);

    let cpu_width = (area.width * 3 / 10).max(26);
    let [layers, cpus] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(cpu_width)]).areas(top);
    render_layers(app, frame, layers);
    render_cpus(app, frame, cpus);

    let counters_shown = shows_counters(area.width, area.height);
    let (tables, counters) = if counters_shown && area.width >= 120 {
        let width = (area.width / 4).clamp(40, 60);
        let [tables, counters] =
            Layout::horizontal([Constraint::Fill(1), Constraint::Length(width)]).areas(tables);
        (tables, Some(counters))
    } else if counters_shown {
        let rows = app.dashboard().map_or(0, |d| d.counters.len()) as u16;
        let height = (rows + 2).clamp(3, 8);
        let [tables, counters] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(height)]).areas(tables);
        (tables, Some(counters))
    } else {
        (tables, None)
    };
    let [drops, flows] = Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(tables);
    render_drops(app, frame, drops);
    // Destinations beside the retransmitting flows on wide terminals, under them on tall
    // ones; on small ones in their place when nothing retransmitted.
    if flows.width >= 140 {
        let [f, d] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(flows);
        render_flows(app, frame, f);
        render_destinations(app, frame, d);
    } else if flows.height >= 10 {
        let [f, d] = Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(flows);
        render_flows(app, frame, f);
        render_destinations(app, frame, d);
    } else if app.visible_flows().is_empty() && !app.visible_destinations().is_empty() {
        render_destinations(app, frame, flows);
    } else {
        render_flows(app, frame, flows);
    }
    if let Some(counters) = counters {
        render_counters(app, frame, counters);
    }
    render_alerts(app, frame, alerts);
    render_footer(app, frame, footer);

    if let Some(drill) = &app.drill {
        render_drill(app, drill, frame, area);
    }
    if app.help {
        render_help(frame, area);
    }
}

/// A terminal smaller than supported: the banner and a request for more room.
fn render_compact(app: &App, frame: &mut Frame, area: Rect) {
    let [banner, rest] = Layout::vertical([Constraint::Length(2), Constraint::Fill(1)]).areas(area);
    render_banner(app, frame, banner);
    let mut lines = vec![Line::from(format!(
        "terminal {}×{}: 80×24 or larger shows the dashboard",
        area.width, area.height
    ))];
    if let Some(dashboard) = app.dashboard() {
        for layer in Layer::ALL {
            let now = dashboard.layer_now.get(&layer).copied().unwrap_or(0);
            lines.push(Line::from(format!(
                "{} {}/s",
                layer.title(),
                format_count(now)
            )));
        }
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .style(Style::new().fg(Color::Gray)),
        rest,
    );
}

/// Colours of the verdict banner.
fn banner_style(dashboard: Option<&Dashboard>) -> Style {
    match dashboard {
        None => Style::new().bg(Color::Blue).fg(Color::White),
        Some(d) if d.root_cause == "none" => Style::new().bg(Color::Green).fg(Color::Black),
        Some(d) if d.severity.eq_ignore_ascii_case("HIGH") => {
            Style::new().bg(Color::Red).fg(Color::White)
        }
        Some(_) => Style::new().bg(Color::Yellow).fg(Color::Black),
    }
}

fn render_banner(app: &App, frame: &mut Frame, area: Rect) {
    let dashboard = app.dashboard();
    let style = banner_style(dashboard);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut second = Vec::new();
    if app.paused {
        let waiting = if app.pending.is_some() {
            " PAUSED (new data waiting) "
        } else {
            " PAUSED "
        };
        second.push(Span::styled(
            waiting,
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
        ));
    }
    let first = match dashboard {
        None => {
            second.push(Span::raw(format!(" {}", app.source)));
            Line::from(vec![Span::styled(
                " waiting for the first second of data…",
                bold,
            )])
        }
        Some(d) => {
            let onset = if d.onset.is_empty() {
                String::new()
            } else {
                format!(" onset {} ·", d.onset)
            };
            second.push(Span::raw(format!(
                "{onset} {} · {:.0} s elapsed · window {:.0} s",
                d.source, d.elapsed_s, d.window_s
            )));
            if d.root_cause == "none" {
                Line::from(vec![
                    Span::styled(" ✔ no loss attributable to this node", bold),
                    Span::raw(format!("   confidence {:.2}", d.confidence)),
                ])
            } else {
                Line::from(vec![
                    Span::styled(format!(" ✖ {}", d.root_cause), bold),
                    Span::raw(" in "),
                    Span::styled(d.failure_layer.clone(), bold),
                    Span::raw(format!(
                        "  severity {}  confidence {:.2}",
                        d.severity, d.confidence
                    )),
                ])
            }
        }
    };
    frame.render_widget(
        Paragraph::new(vec![first, Line::from(second)]).style(style),
        area,
    );
}

/// A pane's frame: highlighted when it has the focus.
fn pane_block(title: String, focused: bool) -> Block<'static> {
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

fn selection_style() -> Style {
    Style::new().bg(Color::Cyan).fg(Color::Black)
}

/// The failure layer of the shown verdict, if any.
fn failure_layer(dashboard: Option<&Dashboard>) -> Option<Layer> {
    let d = dashboard?;
    Layer::ALL
        .into_iter()
        .find(|l| l.as_str() == d.failure_layer)
}

fn render_layers(app: &App, frame: &mut Frame, area: Rect) {
    let dashboard = app.dashboard();
    let seconds = dashboard
        .and_then(|d| d.layer_history.values().map(Vec::len).max())
        .unwrap_or(0);
    let focused = app.focus == Pane::Layers;
    let block = pane_block(
        format!(" Loss per layer · now/s · last {seconds} s "),
        focused,
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.width == 0 || inner.height == 0 {
        return;
    }
    let title_width = Layer::ALL
        .iter()
        .map(|l| l.title().chars().count() as u16)
        .max()
        .unwrap_or(0)
        .min(inner.width / 2);
    let now_width = 8u16;
    let spark_width = inner.width.saturating_sub(title_width + now_width + 2);
    // One scale for all layers, logarithmic, so the deciding layer stands out and a layer
    // losing one packet a second still shows.
    let max = dashboard
        .iter()
        .flat_map(|d| d.layer_history.values())
        .flat_map(|h| h.iter().rev().take(spark_width as usize))
        .copied()
        .max()
        .unwrap_or(0);
    let failing = failure_layer(dashboard);
    for (index, layer) in Layer::ALL.into_iter().enumerate() {
        let y = inner.y + index as u16;
        if y >= inner.bottom() {
            break;
        }
        let row = Rect::new(inner.x, y, inner.width, 1);
        let now = dashboard
            .and_then(|d| d.layer_now.get(&layer))
            .copied()
            .unwrap_or(0);
        let mut style = if Some(layer) == failing {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else if now > 0 {
            Style::new().fg(Color::Yellow)
        } else {
            Style::new()
        };
        if focused && app.selected(Pane::Layers) == index {
            style = selection_style();
            frame.render_widget(Paragraph::new("").style(style), row);
        }
        let [title, value, _, spark] = Layout::horizontal([
            Constraint::Length(title_width),
            Constraint::Length(now_width),
            Constraint::Length(2),
            Constraint::Fill(1),
        ])
        .areas(row);
        frame.render_widget(Paragraph::new(layer.title()).style(style), title);
        let now_style = if now == 0 && Some(layer) != failing {
            style.fg(Color::DarkGray)
        } else {
            style
        };
        frame.render_widget(
            Paragraph::new(format!("{}/s", format_count(now)))
                .right_aligned()
                .style(now_style),
            value,
        );
        let history: Vec<u64> = dashboard
            .and_then(|d| d.layer_history.get(&layer))
            .map(|h| {
                let start = h.len().saturating_sub(spark.width as usize);
                h.iter().skip(start).map(|&v| log_scale(v, max)).collect()
            })
            .unwrap_or_default();
        // Newest at the right edge, whatever the history's length.
        let shift = spark.width.saturating_sub(history.len() as u16);
        let spark = Rect::new(spark.x + shift, spark.y, spark.width - shift, 1);
        let spark_colour = if Some(layer) == failing {
            Color::Red
        } else {
            Color::Yellow
        };
        frame.render_widget(
            Sparkline::default()
                .data(history)
                .max(100)
                .style(Style::new().fg(spark_colour)),
            spark,
        );
    }
}

/// `value` on a 0..=100 logarithmic scale of `max`; any loss is at least one eighth (visible).
fn log_scale(value: u64, max: u64) -> u64 {
    if value == 0 || max == 0 {
        return 0;
    }
    let scaled = ((value as f64).ln_1p() / (max as f64).ln_1p() * 100.0).round() as u64;
    scaled.clamp(13, 100)
}

fn render_cpus(app: &App, frame: &mut Frame, area: Rect) {
    let focused = app.focus == Pane::Cpus;
    let dashboard = app.dashboard();
    let count = dashboard.map_or(0, |d| d.net_rx.len());
    // Rows inside the borders: when not all CPUs fit, the busiest come first.
    let sorted = count > area.height.saturating_sub(2) as usize;
    let title = if sorted {
        format!(" NET_RX · busiest of {count} ")
    } else {
        " NET_RX share per CPU ".to_owned()
    };
    let block = pane_block(title, focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(dashboard) = dashboard else {
        return;
    };
    if dashboard.net_rx.is_empty() {
        frame.render_widget(
            Paragraph::new("no NET_RX time seen").style(Style::new().fg(Color::DarkGray)),
            inner,
        );
        return;
    }
    let mut cpus = dashboard.net_rx.clone();
    if sorted {
        cpus.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    }
    let id_width = cpus
        .iter()
        .map(|(cpu, _)| cpu.to_string().len())
        .max()
        .unwrap_or(1);
    let label_width = 4 + id_width + 1;
    let bar_width = (inner.width as usize).saturating_sub(label_width + 5);
    let items: Vec<ListItem> = cpus
        .iter()
        .map(|&(cpu, share)| {
            let colour = if share >= 0.5 {
                Color::Red
            } else if share >= 0.25 {
                Color::Yellow
            } else {
                Color::Green
            };
            ListItem::new(Line::from(vec![
                Span::raw(format!("CPU {cpu:<id_width$} ")),
                Span::styled(bar(share, bar_width), Style::new().fg(colour)),
                Span::raw(format!("{:>4.0}%", share.clamp(0.0, 1.0) * 100.0)),
            ]))
        })
        .collect();
    let mut state = ListState::default();
    if focused {
        state.select(Some(app.selected(Pane::Cpus)));
    }
    frame.render_stateful_widget(
        List::new(items).highlight_style(selection_style()),
        inner,
        &mut state,
    );
}

/// A horizontal bar of `width` cells, filled to `share` in eighths of a cell.
fn bar(share: f64, width: usize) -> String {
    const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let eighths = (share.clamp(0.0, 1.0) * width as f64 * 8.0).round() as usize;
    let full = eighths / 8;
    let mut out = "█".repeat(full.min(width));
    if full < width {
        out.push(EIGHTHS.get(eighths % 8).copied().unwrap_or(' '));
        out.push_str(&" ".repeat(width - full - 1));
    }
    out
}

fn render_drops(app: &App, frame: &mut Frame, area: Rect) {
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

/// The width a column needs for its longest cell, within bounds.
fn column_width<'a>(cells: impl Iterator<Item = &'a str>, header: &str, min: u16, max: u16) -> u16 {
    let longest = cells
        .map(|c| c.chars().count())
        .chain([header.chars().count()])
        .max()
        .unwrap_or(0);
    (longest as u16).clamp(min, max)
}

/// Draws a table with the app's selection when its pane has the focus.
fn render_table(app: &App, frame: &mut Frame, area: Rect, pane: Pane, table: Table<'static>) {
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
fn header_row(cells: Vec<&'static str>) -> Row<'static> {
    Row::new(cells).style(
        Style::new()
            .fg(Color::Gray)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
    )
}

fn render_flows(app: &App, frame: &mut Frame, area: Rect) {
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

/// Latency in at most 7 characters (`850µs`, `12.3ms`, `1.20s`), `-` when unknown.
fn format_latency(us: Option<f64>) -> String {
    match us {
        None => "-".to_owned(),
        Some(us) if us < 1_000.0 => format!("{us:.0}µs"),
        Some(us) if us < 1_000_000.0 => format!("{:.1}ms", us / 1e3),
        Some(us) => format!("{:.2}s", us / 1e6),
    }
}

/// Destinations (the report's `flows` section): retransmits, resets, failed connects, RTT.
/// Not focusable: the filter narrows it like the other tables.
fn render_destinations(app: &App, frame: &mut Frame, area: Rect) {
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
    let block = pane_block(title, false);
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
    let namespace_width = column_width(
        rows.iter().map(|r| r.namespace.as_str()),
        "namespace",
        9,
        if inner_width >= 110 { 32 } else { 14 },
    );
    let dest_width = column_width(
        rows.iter().map(|r| r.destination.as_str()),
        "destination",
        11,
        47,
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
                Cell::from(row.namespace.clone()),
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
        .block(block)
        .column_spacing(1);
    frame.render_widget(table, area);
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

fn render_counters(app: &App, frame: &mut Frame, area: Rect) {
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

/// Lines under the tables: the mitigation, then alerts when the screen is tall enough.
fn alert_height(app: &App, height: u16) -> u16 {
    let alerts = app.dashboard().map_or(0, |d| d.alerts.len()) as u16;
    let room = if height >= 40 {
        4
    } else if height >= 30 {
        2
    } else {
        0
    };
    1 + alerts.min(room)
}

fn render_alerts(app: &App, frame: &mut Frame, area: Rect) {
    let Some(d) = app.dashboard() else {
        return;
    };
    let extra = area.height.saturating_sub(1) as usize;
    let mut first = Vec::new();
    if d.root_cause == "none" || d.mitigation.is_empty() {
        first.push(Span::styled(
            " no action needed",
            Style::new().fg(Color::DarkGray),
        ));
    } else {
        first.push(Span::styled(
            " ⇒ ",
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
        first.push(Span::styled(
            d.mitigation.clone(),
            Style::new().fg(Color::Yellow),
        ));
    }
    let alert_style = Style::new().fg(Color::Magenta);
    if extra == 0 {
        if let Some(alert) = d.alerts.first() {
            let more = if d.alerts.len() > 1 {
                format!(" (+{} more)", d.alerts.len() - 1)
            } else {
                String::new()
            };
            first.push(Span::styled(format!("  ⚠ {alert}{more}"), alert_style));
        }
    }
    let mut lines = vec![Line::from(first)];
    let shown = if d.alerts.len() > extra && extra > 0 {
        extra - 1
    } else {
        extra
    };
    for alert in d.alerts.iter().take(shown) {
        lines.push(Line::styled(format!(" ⚠ {alert}"), alert_style));
    }
    if shown < d.alerts.len() && extra > 0 {
        lines.push(Line::styled(
            format!(" ⚠ … {} more", d.alerts.len() - shown),
            alert_style,
        ));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

fn render_footer(app: &App, frame: &mut Frame, area: Rect) {
    let key = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let left = if let Some(input) = &app.filter_input {
        Line::from(vec![
            Span::styled(" filter: ", key),
            Span::raw(input.clone()),
            Span::styled("█", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled(
                "  Enter apply · Esc cancel",
                Style::new().fg(Color::DarkGray),
            ),
        ])
    } else if let Some(status) = &app.status {
        Line::styled(format!(" {status}"), Style::new().fg(Color::Yellow))
    } else {
        let mut spans = Vec::new();
        for (keys, what) in [
            ("q", "quit"),
            ("Tab/←→", "pane"),
            ("↑↓", "row"),
            ("Enter", "details"),
            ("/", "filter"),
            ("p", "pause"),
            ("s", "save"),
            ("?", "help"),
        ] {
            spans.push(Span::styled(format!(" {keys}"), key));
            spans.push(Span::raw(format!(" {what}")));
        }
        Line::from(spans)
    };
    let right = if app.filter_input.is_none() && !app.filter.is_empty() {
        format!(" filter: {} ", app.filter)
    } else {
        String::new()
    };
    let [left_area, right_area] = Layout::horizontal([
        Constraint::Fill(1),
        Constraint::Length(right.chars().count() as u16),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(left), left_area);
    frame.render_widget(
        Paragraph::new(right).style(Style::new().bg(Color::Cyan).fg(Color::Black)),
        right_area,
    );
}

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

fn render_drill(app: &App, drill: &Drill, frame: &mut Frame, area: Rect) {
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

fn render_help(frame: &mut Frame, area: Rect) {
    let key = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let lines: Vec<Line> = [
        ("q, Ctrl-C", "quit (the terminal is restored)"),
        ("Tab, →", "next pane"),
        ("Shift-Tab, ←", "previous pane"),
        ("↑ ↓", "select a row"),
        ("Enter", "details of the selected drop or flow"),
        ("Esc", "close details or help; clear the filter"),
        ("/", "filter drops and flows: address, port, reason, pod"),
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
    let rect = centered(area, 72, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(pane_block(" Help · any key closes ".to_owned(), true)),
        rect,
    );
}

/// A count in at most 6 characters.
fn format_count(value: u64) -> String {
    if value < 100_000 {
        value.to_string()
    } else if value < 10_000_000 {
        format!("{:.0}k", value as f64 / 1e3)
    } else {
        format!("{:.1}M", value as f64 / 1e6)
    }
}

/// A rate in at most 6 characters.
fn format_rate(value: f64) -> String {
    if value < 100.0 {
        format!("{value:.1}")
    } else if value < 100_000.0 {
        format!("{value:.0}")
    } else {
        format!("{:.0}k", value / 1e3)
    }
}
