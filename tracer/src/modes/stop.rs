//! A stop request that survives start-up: SIGINT and SIGTERM are caught from the first moment a
//! live mode runs, so a Ctrl-C while the probes attach or the facts are read ends the run
//! cleanly (the window so far is judged, the dashboard closes, the server stops) instead of
//! killing the process half-way. Each mode's own handlers take over later; they and this flag
//! see the same signals (signal-hook chains them), and the modes check [`requested`] once their
//! handlers are in place to catch a signal that came before.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, OnceLock,
};

fn flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Catches SIGINT and SIGTERM from now on (idempotent).
pub fn install() -> anyhow::Result<()> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(flag()))
            .map_err(|e| anyhow::anyhow!("installing the signal handlers: {e}"))?;
    }
    Ok(())
}

/// True once SIGINT or SIGTERM arrived (after [`install`]).
pub fn requested() -> bool {
    flag().load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_after_install_is_a_stop_request_not_a_death() {
        install().expect("install");
        assert!(!requested());
        // SAFETY-free: raise() delivers to this thread; the handler only sets the flag.
        signal_hook::low_level::raise(signal_hook::consts::SIGTERM).expect("raise");
        assert!(
            requested(),
            "the process is alive and knows it was asked to stop"
        );
    }
}
