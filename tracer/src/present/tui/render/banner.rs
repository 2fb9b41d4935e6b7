//! The verdict banner on the top two lines: root cause, layer, severity and confidence, or that
//! nothing is lost; paused state, onset, source and window. Uses the app's state only.

use ratatui::{
    layout::Rect,
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::Paragraph,
    Frame,
};

use crate::present::dashboard::Dashboard;
use crate::present::tui::app::App;

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

pub(super) fn render_banner(app: &App, frame: &mut Frame, area: Rect) {
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
