//! Owns the real terminal: raw mode, alternate screen and hidden cursor, restored on drop and by
//! a panic hook before the panic is printed. The only place that switches the terminal's modes.

use std::{
    io::{self, Stdout},
    sync::{
        atomic::{AtomicBool, Ordering},
        Once,
    },
};

use anyhow::Context as _;
use ratatui::{
    backend::CrosstermBackend,
    crossterm::{
        cursor::{Hide, Show},
        execute,
        terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
    },
    Terminal,
};

/// True while the terminal is in the dashboard's modes (and must be restored).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set when a panic restored the terminal: the screen must not be drawn on any more.
static RESTORED_BY_PANIC: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();

/// The terminal in raw mode on the alternate screen; restored when dropped.
pub struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    /// Switches the terminal to the dashboard's modes.
    pub fn new() -> anyhow::Result<Self> {
        install_panic_hook();
        terminal::enable_raw_mode()
            .context("the dashboard needs a terminal (use `tracer report` when piping)")?;
        // From here on, Drop (or the panic hook) undoes whatever was done.
        ACTIVE.store(true, Ordering::SeqCst);
        RESTORED_BY_PANIC.store(false, Ordering::SeqCst);
        let mut stdout = io::stdout();
        let entered = execute!(stdout, EnterAlternateScreen, Hide);
        let terminal = entered
            .and_then(|()| Terminal::new(CrosstermBackend::new(stdout)))
            .context("setting up the terminal");
        match terminal {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(error) => {
                restore();
                Err(error)
            }
        }
    }

    pub fn terminal(&mut self) -> &mut Terminal<CrosstermBackend<Stdout>> {
        &mut self.terminal
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Whether a panic has already restored the terminal (drawing must stop).
pub fn restored_by_panic() -> bool {
    RESTORED_BY_PANIC.load(Ordering::SeqCst)
}

/// Leaves the alternate screen, shows the cursor and leaves raw mode, once.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        // Best effort: there is nowhere left to report a failure to.
        let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
        let _ = terminal::disable_raw_mode();
    }
}

/// Restores the terminal before the previous hook prints the panic (installed once per process;
/// inert when no guard is active).
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if ACTIVE.load(Ordering::SeqCst) {
                RESTORED_BY_PANIC.store(true, Ordering::SeqCst);
                restore();
            }
            previous(info);
        }));
    });
}
