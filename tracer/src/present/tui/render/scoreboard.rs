//! The top row: loss per layer (now and a logarithmic sparkline, the failure layer in red) and
//! the NET_RX share per CPU as bars. Uses `shared` for frames and counts.

use ratatui::{
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{List, ListItem, ListState, Paragraph, Sparkline},
    Frame,
};

use super::shared::{failure_layer, format_count, pane_block, selection_style};
use crate::judge::layers::Layer;
use crate::present::tui::app::{App, Pane};

pub(super) fn render_layers(app: &App, frame: &mut Frame, area: Rect) {
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

pub(super) fn render_cpus(app: &App, frame: &mut Frame, area: Rect) {
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
