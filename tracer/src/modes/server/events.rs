//! `serve`'s error events: what the facts refresh could not read and what a frame's counters
//! could not collect, as levelled, structured `tracing` events (`event = "facts_error"` or
//! `"sample_error"`, the sentence in `error`). A namespace that stays unreadable would say so
//! every second; each distinct error is said at most once per [`EVERY`] instead, with how many
//! times it came back in between (`repeated`). With `--log-format json` each event is one JSON
//! line ([`subscriber`]).

use std::collections::HashMap;
use std::time::Duration;

/// Shortest time between two events of one distinct error.
pub const EVERY: Duration = Duration::from_secs(60);

/// What kind of error an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Reading the node's facts (routes, rules, sysctls, pods), every few seconds.
    Facts,
    /// Reading the counters of one frame, every second.
    Sample,
}

impl ErrorKind {
    fn event(self) -> &'static str {
        match self {
            ErrorKind::Facts => "facts_error",
            ErrorKind::Sample => "sample_error",
        }
    }
}

/// When each distinct error was last said, and how often it came back since.
#[derive(Debug, Default)]
pub struct ErrorEvents {
    said: HashMap<(ErrorKind, String), Said>,
}

#[derive(Debug, Clone, Copy)]
struct Said {
    at_ms: u64,
    repeated: u64,
}

impl ErrorEvents {
    /// Says each distinct error of `errors` not said in the last [`EVERY`] as a warning event;
    /// `now_ms` is the caller's clock (ms since any fixed start). Returns how many were said.
    pub fn report(&mut self, kind: ErrorKind, errors: &[String], now_ms: u64) -> usize {
        let every_ms = EVERY.as_millis() as u64;
        let mut distinct: Vec<&String> = errors.iter().collect();
        distinct.sort();
        distinct.dedup();
        let mut said = 0;
        for error in distinct {
            let key = (kind, error.clone());
            let repeated = match self.said.get_mut(&key) {
                Some(s) if now_ms.saturating_sub(s.at_ms) < every_ms => {
                    s.repeated += 1;
                    continue;
                }
                Some(s) => s.repeated,
                None => 0,
            };
            self.said.insert(
                key,
                Said {
                    at_ms: now_ms,
                    repeated: 0,
                },
            );
            let event = kind.event();
            match kind {
                ErrorKind::Facts => tracing::warn!(
                    event,
                    error = %error,
                    repeated,
                    "reading the node's facts: {error}"
                ),
                ErrorKind::Sample => tracing::warn!(
                    event,
                    error = %error,
                    repeated,
                    "reading the counters: {error}"
                ),
            }
            said += 1;
        }
        // An error not said for two periods is gone (one that stays is said every period):
        // it is forgotten, so the map holds the errors of the last minutes only, and said at
        // once if it comes back.
        self.said
            .retain(|_, s| now_ms.saturating_sub(s.at_ms) < 2 * every_ms);
        said
    }
}

/// The log subscriber: `filter` on `writer`, JSON lines (flattened: `level`, `event`, `message`,
/// fields at the top) when `json`, else text lines. `serve --log-format json` uses this.
pub fn subscriber<W>(
    filter: tracing_subscriber::EnvFilter,
    json: bool,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    if json {
        Box::new(
            logs.json()
                .flatten_event(true)
                .with_current_span(false)
                .finish(),
        )
    } else {
        Box::new(logs.with_target(false).finish())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::node::facts::FactsSource;

    /// A writer into memory, for reading the log lines back.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut bytes) = self.0.lock() {
                bytes.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Lines {
        type Writer = Lines;
        fn make_writer(&'w self) -> Lines {
            self.clone()
        }
    }

    #[allow(clippy::unwrap_used)]
    fn json_lines(lines: &Lines) -> Vec<serde_json::Value> {
        let bytes = lines.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// A facts source that fails (a recorded tree that is not there) refreshed every second
    /// for 150 s, its errors reported each time: each distinct error is one JSON warning at
    /// 0 s, 60 s and 120 s, the later ones saying how often it came back in between.
    #[test]
    fn a_failing_facts_source_is_one_json_warning_per_error_per_minute() {
        let broken = FactsSource::fixture(Path::new("/nonexistent/tracer-i19-facts"));
        let errors = broken.collect().errors;
        assert!(!errors.is_empty(), "the broken source reports errors");
        let lines = Lines::default();
        let subscriber = subscriber(
            tracing_subscriber::EnvFilter::new("warn,tracer=info"),
            true,
            false,
            lines.clone(),
        );
        let mut events = ErrorEvents::default();
        let said: Vec<usize> = tracing::subscriber::with_default(subscriber, || {
            (0..150u64)
                .map(|s| events.report(ErrorKind::Facts, &broken.collect().errors, s * 1000))
                .collect()
        });
        let distinct = {
            let mut e = errors.clone();
            e.sort();
            e.dedup();
            e.len()
        };
        let at: Vec<usize> = said
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(s, _)| s)
            .collect();
        assert_eq!(at, vec![0, 60, 120]);
        assert!(said.iter().all(|n| *n == 0 || *n == distinct));
        let logged = json_lines(&lines);
        assert_eq!(logged.len(), 3 * distinct, "{logged:#?}");
        for line in &logged {
            assert_eq!(line["level"], "WARN", "{line}");
            assert_eq!(line["event"], "facts_error", "{line}");
            assert!(errors.iter().any(|e| line["error"] == e.as_str()), "{line}");
            assert!(
                line["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("reading the node's facts: ")),
                "{line}"
            );
        }
        assert_eq!(logged[0]["repeated"], 0);
        assert_eq!(logged[distinct]["repeated"], 59);
    }

    /// A per-sample error is said when it first appears, not again within the minute, and at
    /// once when it comes back after being gone for more than a minute; a second error has its
    /// own clock.
    #[test]
    fn sample_errors_are_said_once_per_distinct_error_per_minute() {
        let mut events = ErrorEvents::default();
        let gone = "namespace 4026532999 (netns lab) vanished".to_owned();
        let other = "netstat unreadable".to_owned();
        assert_eq!(
            events.report(ErrorKind::Sample, &[gone.clone(), gone.clone()], 0),
            1
        );
        assert_eq!(
            events.report(ErrorKind::Sample, std::slice::from_ref(&gone), 1000),
            0
        );
        assert_eq!(
            events.report(ErrorKind::Sample, &[gone.clone(), other.clone()], 2000),
            1
        );
        // The same sentence from the facts is another event.
        assert_eq!(
            events.report(ErrorKind::Facts, std::slice::from_ref(&gone), 3000),
            1
        );
        assert_eq!(events.report(ErrorKind::Sample, &[], 200_000), 0);
        assert_eq!(
            events.report(ErrorKind::Sample, std::slice::from_ref(&gone), 201_000),
            1
        );
        assert_eq!(
            events.said.len(),
            1,
            "errors gone for two minutes are forgotten"
        );
    }
}
