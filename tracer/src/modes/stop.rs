//! A stop request that survives start-up: SIGINT, SIGTERM and SIGHUP are caught from the first
//! moment a live mode runs, so a Ctrl-C while the probes attach or the facts are read, or an ssh
//! session that drops mid-window, ends the run cleanly (the window so far is judged, the
//! dashboard closes, the server stops) instead of killing the process half-way. Modes poll
//! [`requested`] (at least every 200 ms), or have handlers of their own for all three signals
//! and look at it once a second for a signal that came before them (`serve`); the handlers are
//! chained by signal-hook, so every one of them sees the signal. [`reason`] names the signal for
//! the one line the mode prints.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, OnceLock,
};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The signals that end a live mode cleanly.
pub const SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// 0 while running; else the number of the signal that asked to stop (the last one).
fn flag() -> &'static Arc<AtomicUsize> {
    static FLAG: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// Catches SIGINT, SIGTERM and SIGHUP from now on (idempotent).
pub fn install() -> anyhow::Result<()> {
    for signal in SIGNALS {
        let number = usize::try_from(signal).unwrap_or(usize::MAX);
        signal_hook::flag::register_usize(signal, Arc::clone(flag()), number)
            .map_err(|e| anyhow::anyhow!("installing the signal handlers: {e}"))?;
    }
    Ok(())
}

/// True once SIGINT, SIGTERM or SIGHUP arrived (after [`install`]).
pub fn requested() -> bool {
    flag().load(Ordering::SeqCst) != 0
}

/// What the stop request was, for a log line: "interrupted", "terminated", "hung up" (the
/// terminal or ssh session went away); None while no signal came.
pub fn reason() -> Option<&'static str> {
    match i32::try_from(flag().load(Ordering::SeqCst)).ok()? {
        0 => None,
        SIGINT => Some("interrupted"),
        SIGTERM => Some("terminated"),
        SIGHUP => Some("hung up (SIGHUP)"),
        _ => Some("stopped by a signal"),
    }
}

/// Prints one line on stderr, ignoring a failure: after a hang-up the terminal is gone and
/// `eprintln!` would panic, losing the verdict or the recording still to be written.
pub fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_after_install_is_a_stop_request_not_a_death() {
        install().expect("install");
        assert!(!requested());
        assert_eq!(reason(), None);
        // SAFETY-free: raise() delivers to this thread; the handler only stores the number.
        signal_hook::low_level::raise(SIGTERM).expect("raise");
        assert!(
            requested(),
            "the process is alive and knows it was asked to stop"
        );
        assert_eq!(reason(), Some("terminated"));
        // A hang-up (the ssh session dropped) is a stop request too, not status 129.
        signal_hook::low_level::raise(SIGHUP).expect("raise");
        assert!(requested());
        assert_eq!(reason(), Some("hung up (SIGHUP)"));
    }
}
