//! One judged window for scenario tests: the live tracer watches a namespace while a fault runs
//! on its own thread, and the verdict document comes back (checked against the schema).

use std::time::{Duration, Instant};

use tracer::{
    judge::document::VerdictDocument,
    modes::live::{netns_scope, LiveTracer},
    modes::watch::Watch,
    node::counters::CounterSource,
    node::facts::FactsSource,
};

use super::Netns;

/// Watches `scope` for `seconds` while `fault` runs on its own thread; returns the verdict.
pub fn judge<T: Send + 'static>(
    scope: &Netns,
    seconds: u64,
    fault: impl FnOnce() -> T + Send + 'static,
) -> (VerdictDocument, T) {
    let tracer = LiveTracer::start().expect("starting the tracer");
    judge_with(&tracer, scope, seconds, fault)
}

/// [`judge`] with a tracer already started (several windows share one).
pub fn judge_with<T: Send + 'static>(
    tracer: &LiveTracer,
    scope: &Netns,
    seconds: u64,
    fault: impl FnOnce() -> T + Send + 'static,
) -> (VerdictDocument, T) {
    let scope = netns_scope(&scope.path()).expect("scope");
    let mut watch = Watch::begin(
        tracer,
        CounterSource::live(),
        FactsSource::live(),
        Some(scope),
    )
    .expect("window start");
    let started = Instant::now();
    let fault = std::thread::spawn(fault);
    for second in 1..=seconds {
        let at = Duration::from_secs(second);
        if let Some(wait) = at.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        watch
            .tick(tracer, started.elapsed().as_millis() as u64)
            .expect("tick");
    }
    let value = fault.join().expect("fault thread");
    let result = watch
        .finish(tracer, started.elapsed().as_millis() as u64, &[])
        .expect("window end");
    eprintln!("{}", result.document.text());
    super::document::check_built(&result.document);
    (result.document, value)
}

/// The document's evidence, one `[type] content` line each.
pub fn evidence_text(doc: &VerdictDocument) -> String {
    doc.evidence
        .iter()
        .map(|e| format!("[{}] {}", e.kind, e.content))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn assert_verdict(doc: &VerdictDocument, root_cause: &str, layer: &str) {
    assert_eq!(
        (doc.root_cause.as_str(), doc.failure_layer.as_str()),
        (root_cause, layer),
        "evidence:\n{}\nscores: {:?}",
        evidence_text(doc),
        doc.layer_scores
    );
}
