//! When the rolling verdict's loss began, in wall-clock seconds, kept steady while the verdict
//! names the same layer: the rolling window slides every second, so "already present when the
//! window started" would otherwise move forward with it. Pure: the document carries the clock.

use crate::judge::document::VerdictDocument;

/// The onset of the current degradation.
#[derive(Debug, Clone, PartialEq)]
pub struct Onset {
    pub root_cause: String,
    pub failure_layer: String,
    /// Seconds since the UNIX epoch.
    pub unix_s: f64,
}

/// Remembers the onset while the verdict stays on one layer; forgets it when healthy.
#[derive(Debug, Clone, Default)]
pub struct OnsetTracker {
    current: Option<Onset>,
}

/// The document's onset: the timeline's `onset` entry, else (loss already there when the
/// window started) the window's start; None without a wall clock.
fn onset_of(doc: &VerdictDocument) -> Option<f64> {
    let start = humantime::parse_rfc3339_weak(doc.window.start.as_deref()?).ok()?;
    let start_s = start
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    let at_s = doc
        .timeline
        .iter()
        .find(|t| t.event.starts_with("onset"))
        .map_or(0.0, |t| t.at_s);
    Some(start_s + at_s)
}

impl OnsetTracker {
    /// Takes the newest rolling verdict; returns the onset to expose (None when healthy).
    pub fn update(&mut self, doc: &VerdictDocument) -> Option<&Onset> {
        if doc.root_cause == "none" {
            self.current = None;
            return None;
        }
        let same = self
            .current
            .as_ref()
            .is_some_and(|o| o.failure_layer == doc.failure_layer);
        if !same {
            self.current = onset_of(doc).map(|unix_s| Onset {
                root_cause: doc.root_cause.clone(),
                failure_layer: doc.failure_layer.clone(),
                unix_s,
            });
        } else if let Some(o) = self.current.as_mut() {
            o.root_cause.clone_from(&doc.root_cause);
        }
        self.current.as_ref()
    }
}
