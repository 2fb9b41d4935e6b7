//! The bottom of the screen: the mitigation line with alerts (as many as the height allows) and
//! the key footer with the filter being typed or the status. Uses the app's state only.

use ratatui::{
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::Paragraph,
    Frame,
};

use crate::present::tui::app::App;

/// Lines under the tables: the mitigation, then alerts when the screen is tall enough.
pub(super) fn alert_height(app: &App, height: u16) -> u16 {
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

pub(super) fn render_alerts(app: &App, frame: &mut Frame, area: Rect) {
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

pub(super) fn render_footer(app: &App, frame: &mut Frame, area: Rect) {
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
