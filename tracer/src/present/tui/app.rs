//! The dashboard's state as a plain struct, changed only by [`App::handle`] on one [`Event`].
//! Pure: no I/O and no clock; saving is asked of the runner through [`Command::Save`].

use std::path::PathBuf;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::present::dashboard::{Dashboard, DestRow, DropRow, FlowRow};

/// Below this size only the banner and a request for a larger terminal are drawn.
pub(super) const COMPACT_WIDTH: u16 = 60;
pub(super) const COMPACT_HEIGHT: u16 = 16;

/// Whether the counters pane fits (wide screens: beside the tables; tall ones: below them).
pub fn shows_counters(width: u16, height: u16) -> bool {
    width >= COMPACT_WIDTH && height >= COMPACT_HEIGHT && (width >= 120 || height >= 34)
}

/// How many ticks (4 per second) a status message stays in the footer.
const STATUS_TICKS: u32 = 16;

/// Everything that can happen to the dashboard, on one channel.
#[derive(Debug, Clone)]
pub enum Event {
    /// A key press.
    Key(KeyEvent),
    /// The 4 Hz clock of the runner.
    Tick,
    /// A new second of data.
    Snapshot(Box<Dashboard>),
    /// The terminal's new size (columns, rows).
    Resize(u16, u16),
    /// A message for the footer (the producer's error, say).
    Status(String),
    /// A signal (SIGTERM, SIGHUP, SIGINT) or a lost terminal: leave.
    Quit,
}

/// What the app asks of the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Save the shown snapshot's verdict document; report with [`App::saved`].
    Save,
}

/// The panes, in the order Tab visits them (the order they appear on screen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Layers,
    Cpus,
    Drops,
    Flows,
    /// Beside or under the flows; on small screens it takes the flows' place while focused.
    Destinations,
    Counters,
}

impl Pane {
    pub const ALL: [Pane; 6] = [
        Pane::Layers,
        Pane::Cpus,
        Pane::Drops,
        Pane::Flows,
        Pane::Destinations,
        Pane::Counters,
    ];

    fn index(self) -> usize {
        match self {
            Pane::Layers => 0,
            Pane::Cpus => 1,
            Pane::Drops => 2,
            Pane::Flows => 3,
            Pane::Destinations => 4,
            Pane::Counters => 5,
        }
    }
}

/// The row a drill-down shows (a copy, refreshed from each new snapshot while it is open).
#[derive(Debug, Clone, PartialEq)]
pub enum Drill {
    Drop(DropRow),
    Flow(FlowRow),
    Destination(DestRow),
}

/// The dashboard's whole state.
#[derive(Debug, Clone)]
pub struct App {
    /// `live` or `replay FILE`, shown before the first snapshot.
    pub(crate) source: String,
    /// The snapshot on screen.
    pub(crate) dashboard: Option<Box<Dashboard>>,
    /// The newest snapshot received while paused.
    pub(crate) pending: Option<Box<Dashboard>>,
    pub(crate) focus: Pane,
    /// Selected row per pane, indexed by [`Pane::ALL`] order, within the filtered rows.
    pub(crate) selected: [usize; Pane::ALL.len()],
    /// The applied filter (empty: none).
    pub(crate) filter: String,
    /// The filter being typed, `Some` while editing (applied live as a preview).
    pub(crate) filter_input: Option<String>,
    pub(crate) paused: bool,
    pub(crate) help: bool,
    pub(crate) drill: Option<Drill>,
    pub(crate) status: Option<String>,
    status_ticks: u32,
    pub(crate) should_quit: bool,
    pub(crate) last_saved: Option<PathBuf>,
    /// The terminal's size when known (the counters pane is skipped by Tab when it is hidden).
    pub(crate) size: Option<(u16, u16)>,
}

impl App {
    pub fn new(source: &str) -> Self {
        App {
            source: source.to_owned(),
            dashboard: None,
            pending: None,
            focus: Pane::Drops,
            selected: [0; Pane::ALL.len()],
            filter: String::new(),
            filter_input: None,
            paused: false,
            help: false,
            drill: None,
            status: None,
            status_ticks: 0,
            should_quit: false,
            last_saved: None,
            size: None,
        }
    }

    /// Applies one event; returns what the runner must do, if anything.
    pub fn handle(&mut self, event: Event) -> Option<Command> {
        match event {
            Event::Key(key) => return self.key(key),
            Event::Tick => {
                if self.status.is_some() {
                    self.status_ticks = self.status_ticks.saturating_sub(1);
                    if self.status_ticks == 0 {
                        self.status = None;
                    }
                }
            }
            Event::Snapshot(dashboard) => {
                if self.paused {
                    self.pending = Some(dashboard);
                } else {
                    self.show(dashboard);
                }
            }
            Event::Resize(width, height) => {
                self.size = Some((width, height));
                if !self.pane_visible(self.focus) {
                    self.focus = Pane::Drops;
                }
            }
            Event::Status(message) => self.set_status(message),
            Event::Quit => self.should_quit = true,
        }
        None
    }

    /// The runner's report on a [`Command::Save`].
    pub fn saved(&mut self, result: anyhow::Result<PathBuf>) {
        match result {
            Ok(path) => {
                self.set_status(format!("saved {}", path.display()));
                self.last_saved = Some(path);
            }
            Err(error) => self.set_status(format!("not saved: {error:#}")),
        }
    }

    /// True once the user (or a signal) asked to leave.
    pub fn should_quit(&self) -> bool {
        self.should_quit
    }

    /// The snapshot on screen (the one `s` saves).
    pub fn dashboard(&self) -> Option<&Dashboard> {
        self.dashboard.as_deref()
    }

    /// The filter in force: the one being typed while editing, else the applied one.
    pub fn filter(&self) -> &str {
        self.filter_input.as_deref().unwrap_or(&self.filter)
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    pub fn last_saved(&self) -> Option<&PathBuf> {
        self.last_saved.as_ref()
    }

    /// The drop rows the filter lets through.
    pub fn visible_drops(&self) -> Vec<&DropRow> {
        let needle = self.filter().to_lowercase();
        self.dashboard
            .iter()
            .flat_map(|d| d.drops.iter())
            .filter(|row| drop_matches(row, &needle))
            .collect()
    }

    /// The flow rows the filter lets through.
    pub fn visible_flows(&self) -> Vec<&FlowRow> {
        let needle = self.filter().to_lowercase();
        self.dashboard
            .iter()
            .flat_map(|d| d.flows.iter())
            .filter(|row| flow_matches(row, &needle))
            .collect()
    }

    /// The destination rows the filter lets through.
    pub fn visible_destinations(&self) -> Vec<&DestRow> {
        let needle = self.filter().to_lowercase();
        self.dashboard
            .iter()
            .flat_map(|d| d.destinations.iter())
            .filter(|row| {
                needle.is_empty()
                    || [&row.namespace, &row.destination, &row.errors]
                        .into_iter()
                        .any(|field| field.to_lowercase().contains(&needle))
            })
            .collect()
    }

    pub(crate) fn selected(&self, pane: Pane) -> usize {
        self.selected[pane.index()]
    }

    fn set_status(&mut self, message: String) {
        self.status = Some(message);
        self.status_ticks = STATUS_TICKS;
    }

    fn show(&mut self, dashboard: Box<Dashboard>) {
        self.drill = match self.drill.take() {
            Some(Drill::Drop(old)) => Some(Drill::Drop(
                dashboard
                    .drops
                    .iter()
                    .find(|r| r.reason == old.reason && r.location == old.location)
                    .cloned()
                    .unwrap_or(old),
            )),
            Some(Drill::Flow(old)) => Some(Drill::Flow(
                dashboard
                    .flows
                    .iter()
                    .find(|r| {
                        r.namespace == old.namespace
                            && r.source == old.source
                            && r.destination == old.destination
                    })
                    .cloned()
                    .unwrap_or(old),
            )),
            Some(Drill::Destination(old)) => Some(Drill::Destination(
                dashboard
                    .destinations
                    .iter()
                    .find(|r| r.namespace == old.namespace && r.destination == old.destination)
                    .cloned()
                    .unwrap_or(old),
            )),
            None => None,
        };
        self.dashboard = Some(dashboard);
        self.clamp_selection();
    }

    fn rows(&self, pane: Pane) -> usize {
        match pane {
            Pane::Layers => crate::judge::layers::Layer::ALL.len(),
            Pane::Cpus => self.dashboard.as_ref().map_or(0, |d| d.net_rx.len()),
            Pane::Drops => self.visible_drops().len(),
            Pane::Flows => self.visible_flows().len(),
            Pane::Destinations => self.visible_destinations().len(),
            Pane::Counters => self.dashboard.as_ref().map_or(0, |d| d.counters.len()),
        }
    }

    fn clamp_selection(&mut self) {
        for pane in Pane::ALL {
            let rows = self.rows(pane);
            let selected = &mut self.selected[pane.index()];
            *selected = (*selected).min(rows.saturating_sub(1));
        }
    }

    /// The filter changed: the filtered panes start again at their first row.
    fn reset_filtered_selection(&mut self) {
        for pane in [Pane::Drops, Pane::Flows, Pane::Destinations] {
            self.selected[pane.index()] = 0;
        }
    }

    fn pane_visible(&self, pane: Pane) -> bool {
        match (pane, self.size) {
            (Pane::Counters, Some((width, height))) => shows_counters(width, height),
            _ => true,
        }
    }

    fn move_focus(&mut self, forward: bool) {
        let count = Pane::ALL.len();
        let mut index = self.focus.index();
        for _ in 0..count {
            index = if forward {
                (index + 1) % count
            } else {
                (index + count - 1) % count
            };
            if let Some(&pane) = Pane::ALL.get(index) {
                if self.pane_visible(pane) {
                    self.focus = pane;
                    return;
                }
            }
        }
    }

    fn move_row(&mut self, down: bool) {
        let rows = self.rows(self.focus);
        let selected = &mut self.selected[self.focus.index()];
        *selected = if down {
            (*selected + 1).min(rows.saturating_sub(1))
        } else {
            selected.saturating_sub(1)
        };
    }

    /// The drill-down of the selected row of the focused pane, if it has one.
    fn drill_selected(&self) -> Option<Drill> {
        let selected = self.selected(self.focus);
        match self.focus {
            Pane::Drops => self
                .visible_drops()
                .get(selected)
                .map(|r| Drill::Drop((*r).clone())),
            Pane::Flows => self
                .visible_flows()
                .get(selected)
                .map(|r| Drill::Flow((*r).clone())),
            Pane::Destinations => self
                .visible_destinations()
                .get(selected)
                .map(|r| Drill::Destination((*r).clone())),
            _ => None,
        }
    }

    fn key(&mut self, key: KeyEvent) -> Option<Command> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
            self.should_quit = true;
            return None;
        }
        if let Some(input) = self.filter_input.as_mut() {
            match key.code {
                KeyCode::Enter => {
                    self.filter = input.trim().to_owned();
                    self.filter_input = None;
                    self.selected = [0; Pane::ALL.len()];
                }
                KeyCode::Esc => {
                    self.filter_input = None;
                    self.clamp_selection();
                }
                KeyCode::Backspace => {
                    input.pop();
                    self.reset_filtered_selection();
                }
                KeyCode::Char(c) if !ctrl => {
                    input.push(c);
                    self.reset_filtered_selection();
                }
                _ => {}
            }
            return None;
        }
        if self.help {
            // Any key closes the help; q still quits.
            self.help = false;
            if key.code == KeyCode::Char('q') {
                self.should_quit = true;
            }
            return None;
        }
        if self.drill.is_some() {
            match key.code {
                KeyCode::Esc | KeyCode::Enter => self.drill = None,
                KeyCode::Char('q') => self.should_quit = true,
                KeyCode::Up | KeyCode::Down => {
                    self.move_row(key.code == KeyCode::Down);
                    if let Some(drill) = self.drill_selected() {
                        self.drill = Some(drill);
                    }
                }
                _ => {}
            }
            return None;
        }
        match key.code {
            KeyCode::Char('q') => self.should_quit = true,
            KeyCode::Tab | KeyCode::Right => self.move_focus(true),
            KeyCode::BackTab | KeyCode::Left => self.move_focus(false),
            KeyCode::Down => self.move_row(true),
            KeyCode::Up => self.move_row(false),
            KeyCode::Home => self.selected[self.focus.index()] = 0,
            KeyCode::End => {
                self.selected[self.focus.index()] = self.rows(self.focus).saturating_sub(1);
            }
            KeyCode::Enter => match self.drill_selected() {
                Some(drill) => self.drill = Some(drill),
                None => self.set_status(
                    "Enter opens a drop, a flow or a destination: Tab to one".to_owned(),
                ),
            },
            KeyCode::Esc if !self.filter.is_empty() => {
                self.filter.clear();
                self.clamp_selection();
                self.set_status("filter cleared".to_owned());
            }
            KeyCode::Char('p') => {
                self.paused = !self.paused;
                if !self.paused {
                    if let Some(newest) = self.pending.take() {
                        self.show(newest);
                    }
                }
            }
            KeyCode::Char('/') => self.filter_input = Some(self.filter.clone()),
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('s') => {
                if self.dashboard.is_some() {
                    return Some(Command::Save);
                }
                self.set_status("nothing to save yet".to_owned());
            }
            _ => {}
        }
        None
    }
}

/// Whether a drop row matches a lower-case filter (reason, location, class, namespaces).
fn drop_matches(row: &DropRow, needle: &str) -> bool {
    needle.is_empty()
        || [&row.reason, &row.location, &row.class]
            .into_iter()
            .chain(row.namespaces.iter())
            .any(|field| field.to_lowercase().contains(needle))
}

/// Whether a flow row matches a lower-case filter (namespace, addresses and ports, state).
fn flow_matches(row: &FlowRow, needle: &str) -> bool {
    needle.is_empty()
        || [&row.namespace, &row.source, &row.destination, &row.state]
            .into_iter()
            .any(|field| field.to_lowercase().contains(needle))
}
