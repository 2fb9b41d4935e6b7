//! Draws the dashboard: a pure function of [`App`] onto a ratatui frame, for 80×24 and up.
//! Changes no state and reads no clock; tests render it onto ratatui's `TestBackend`.
//! This module lays out the screen and hands each area to its pane: banner, scoreboard (layers,
//! CPUs), tables (drops, flows), destinations, counters, footer (mitigation, alerts, keys) and the
//! popups (details, help). The panes use `shared` for frames, columns and number formats.

mod banner;
mod counters;
mod destinations;
mod footer;
mod popups;
mod scoreboard;
mod shared;
mod tables;

use ratatui::{
    layout::{Constraint, Layout, Rect},
    style::{Color, Style},
    text::Line,
    widgets::{Paragraph, Wrap},
    Frame,
};

use crate::judge::layers::Layer;
use crate::present::tui::app::{shows_counters, App, Pane, COMPACT_HEIGHT, COMPACT_WIDTH};
use banner::render_banner;
use counters::render_counters;
use destinations::render_destinations;
use footer::{alert_height, render_alerts, render_footer};
use popups::{render_drill, render_help};
use scoreboard::{render_cpus, render_layers};
use shared::format_count;
#[cfg(test)]
pub(crate) use tables::flow_text;
use tables::{render_drops, render_flows};

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
    // ones; on small ones in their place while focused, or when nothing retransmitted.
    if flows.width >= 140 {
        let [f, d] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(flows);
        render_flows(app, frame, f);
        render_destinations(app, frame, d);
    } else if flows.height >= 10 {
        let [f, d] = Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(flows);
        render_flows(app, frame, f);
        render_destinations(app, frame, d);
    } else if app.focus == Pane::Destinations
        || (app.focus != Pane::Flows
            && app.visible_flows().is_empty()
            && !app.visible_destinations().is_empty())
    {
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
