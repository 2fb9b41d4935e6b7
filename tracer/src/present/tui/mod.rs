//! The live terminal dashboard (`tracer top`): threads turn keys, snapshots, ticks and signals
//! into one channel of [`Event`]s; [`App`] holds the state, [`render`] draws it; no data gathering.

mod app;
mod render;
mod terminal;
#[cfg(test)]
mod tests;

use std::{
    fs::OpenOptions,
    io::{ErrorKind, Write as _},
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc::{self, RecvTimeoutError, Sender},
        Arc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context as _};
use ratatui::crossterm::event as term_event;
use signal_hook::{
    consts::{SIGHUP, SIGINT, SIGTERM},
    iterator::Signals,
};

pub use app::shows_counters;
pub use app::{App, Command, Drill, Event, Pane};
pub use render::render;
pub use terminal::TerminalGuard;

use crate::present::dashboard::Dashboard;

/// Shortest time between two redraws: at most 4 frames a second.
const FRAME: Duration = Duration::from_millis(250);
/// How often the input thread looks at the stop flag.
const INPUT_POLL: Duration = Duration::from_millis(100);

/// Runs the dashboard until `q`, Ctrl-C, SIGTERM, SIGHUP or SIGINT; the terminal is restored on
/// every way out. `producer` is called every `interval` on a thread of its own (it may block for
/// its second of data); `s` saves the shown verdict document in the first of `save_dirs` that
/// takes a new file (see [`save_dirs`]).
pub fn run(
    producer: impl FnMut() -> anyhow::Result<Dashboard> + Send + 'static,
    interval: Duration,
    save_dirs: Vec<PathBuf>,
    source: &str,
) -> anyhow::Result<()> {
    let (sender, events) = mpsc::channel::<Event>();
    let stop = Arc::new(AtomicBool::new(false));
    let mut signals =
        Signals::new([SIGTERM, SIGHUP, SIGINT]).context("installing the signal handlers")?;
    let signals_handle = signals.handle();
    let mut guard = match TerminalGuard::new() {
        Ok(guard) => guard,
        Err(error) => {
            signals_handle.close();
            return Err(error);
        }
    };

    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    // Asked to stop before these handlers existed (while the probes attached).
    if crate::modes::stop::requested() {
        let _ = sender.send(Event::Quit);
    }
    let signal_sender = sender.clone();
    threads.push(thread::spawn(move || {
        for _ in signals.forever() {
            if signal_sender.send(Event::Quit).is_err() {
                break;
            }
        }
    }));
    threads.push(spawn_input(sender.clone(), Arc::clone(&stop)));
    threads.push(spawn_ticker(sender.clone(), Arc::clone(&stop)));
    let producer_thread = spawn_producer(producer, interval, sender, Arc::clone(&stop));

    let mut app = App::new(source);
    let outcome = event_loop(&mut app, &mut guard, &events, &save_dirs);

    stop.store(true, Ordering::SeqCst);
    signals_handle.close();
    drop(guard);
    for handle in threads {
        // A thread that panicked has already reported it through the panic hook.
        let _ = handle.join();
    }
    // The producer may be in the middle of its second of data: give it a moment, no more.
    let deadline = Instant::now() + Duration::from_secs(1);
    while !producer_thread.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    if producer_thread.is_finished() {
        let _ = producer_thread.join();
    }
    outcome
}

/// Receives events, updates the app and redraws at most once per [`FRAME`]; blocks when idle.
fn event_loop(
    app: &mut App,
    guard: &mut TerminalGuard,
    events: &mpsc::Receiver<Event>,
    save_dirs: &[PathBuf],
) -> anyhow::Result<()> {
    if let Ok(size) = guard.terminal().size() {
        app.handle(Event::Resize(size.width, size.height));
    }
    let mut dirty = true;
    let mut next_draw = Instant::now();
    loop {
        if terminal::restored_by_panic() {
            bail!("the dashboard stopped after a panic (printed above)");
        }
        if dirty && Instant::now() >= next_draw {
            guard
                .terminal()
                .draw(|frame| render(app, frame))
                .context("drawing the dashboard")?;
            dirty = false;
            next_draw = Instant::now() + FRAME;
        }
        let event = if dirty {
            match events.recv_timeout(next_draw.saturating_duration_since(Instant::now())) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        } else {
            match events.recv() {
                Ok(event) => event,
                Err(_) => return Ok(()),
            }
        };
        if let Some(Command::Save) = app.handle(event) {
            let result = save_document(save_dirs, app.dashboard(), unix_seconds());
            app.saved(result);
        }
        if app.should_quit() {
            return Ok(());
        }
        dirty = true;
    }
}

fn spawn_input(sender: Sender<Event>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let event = match term_event::poll(INPUT_POLL) {
                Ok(false) => continue,
                Ok(true) => match term_event::read() {
                    Ok(term_event::Event::Key(key)) => Event::Key(key),
                    Ok(term_event::Event::Resize(width, height)) => Event::Resize(width, height),
                    Ok(_) => continue,
                    // The terminal is gone (or unreadable): nothing left to drive the screen.
                    Err(_) => Event::Quit,
                },
                Err(_) => Event::Quit,
            };
            let quit = matches!(event, Event::Quit);
            if sender.send(event).is_err() || quit {
                break;
            }
        }
    })
}

fn spawn_ticker(sender: Sender<Event>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            thread::sleep(FRAME);
            if sender.send(Event::Tick).is_err() {
                break;
            }
        }
    })
}

fn spawn_producer(
    mut producer: impl FnMut() -> anyhow::Result<Dashboard> + Send + 'static,
    interval: Duration,
    sender: Sender<Event>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            let event = match std::panic::catch_unwind(AssertUnwindSafe(&mut producer)) {
                Ok(Ok(dashboard)) => Event::Snapshot(Box::new(dashboard)),
                Ok(Err(error)) => Event::Status(format!("no new data: {error:#}")),
                // The panic hook restored the terminal and printed it; the dashboard ends.
                Err(_) => Event::Quit,
            };
            let quit = matches!(event, Event::Quit);
            if sender.send(event).is_err() || quit {
                break;
            }
            let due = started + interval;
            while !stop.load(Ordering::SeqCst) {
                let left = due.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                thread::sleep(left.min(INPUT_POLL));
            }
        }
    })
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Where `s` saves, in order: `$TRACER_SAVE_DIR` when set, the working directory, the system's
/// temporary directory (the DaemonSet's root file system is read-only).
pub fn save_dirs(
    env: Option<std::ffi::OsString>,
    cwd: Option<PathBuf>,
    tmp: PathBuf,
) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = env
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .chain(cwd)
        .collect();
    if !dirs.contains(&tmp) {
        dirs.push(tmp);
    }
    dirs
}

/// Writes the shown snapshot's verdict document as pretty JSON to
/// `DIR/tracer-verdict-<unix secs>.json` (never overwriting: `-1`, `-2`… when taken) in the
/// first of `dirs` that takes a new file; the path says where it went.
fn save_document(
    dirs: &[PathBuf],
    dashboard: Option<&Dashboard>,
    unix_secs: u64,
) -> anyhow::Result<PathBuf> {
    let document = dashboard
        .and_then(|d| d.document.as_ref())
        .context("this snapshot carries no verdict document")?;
    let json = serde_json::to_string_pretty(document).context("serialising the verdict")?;
    write_in_first_writable(dirs, unix_secs, &json)
}

/// [`write_new_file`] in the first of `dirs` where it succeeds.
fn write_in_first_writable(
    dirs: &[PathBuf],
    unix_secs: u64,
    json: &str,
) -> anyhow::Result<PathBuf> {
    let mut failures = Vec::new();
    for dir in dirs {
        match write_new_file(dir, unix_secs, json) {
            Ok(path) => return Ok(path),
            Err(error) => failures.push(format!("{error:#}")),
        }
    }
    bail!(
        "no directory takes the file ({}); set TRACER_SAVE_DIR to a writable one",
        failures.join("; ")
    )
}

fn write_new_file(dir: &Path, unix_secs: u64, contents: &str) -> anyhow::Result<PathBuf> {
    for attempt in 0..100 {
        let name = if attempt == 0 {
            format!("tracer-verdict-{unix_secs}.json")
        } else {
            format!("tracer-verdict-{unix_secs}-{attempt}.json")
        };
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                file.write_all(contents.as_bytes())
                    .and_then(|()| file.write_all(b"\n"))
                    .with_context(|| format!("writing {}", path.display()))?;
                return Ok(path);
            }
            Err(error) if error.kind() == ErrorKind::AlreadyExists => continue,
            Err(error) => {
                return Err(error).with_context(|| format!("creating {}", path.display()))
            }
        }
    }
    bail!(
        "{}: too many verdicts saved in the same second",
        dir.display()
    )
}
