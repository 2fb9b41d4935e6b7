//! One observation window: samples the probes and the node's counters every second, the node's
//! facts at the start and the end, and hands the verdict everything it needs.
//! The caller owns time (it says when a tick happens and passes elapsed milliseconds in).

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;

use crate::{
    counters::CounterSource,
    document::VerdictDocument,
    evidence::{CounterSample, NodeFacts},
    facts::FactsSource,
    layers::{classify, DropClass, Layer},
    live::LiveTracer,
    report::{location_label, reason_label, NetnsScope, Report},
    snapshot::Snapshot,
    verdict::{decide, tick_loss, Tick, WindowEvidence},
};

/// A window in progress.
pub struct Watch<'a> {
    tracer: &'a LiveTracer,
    counters: CounterSource,
    facts: FactsSource,
    scope: Option<NetnsScope>,
    start: Snapshot,
    previous: Snapshot,
    counters_start: CounterSample,
    counters_previous: CounterSample,
    facts_start: NodeFacts,
    ticks: Vec<Tick>,
    layer_of: HashMap<(u32, u64), Option<Layer>>,
}

/// What a finished window produced.
pub struct WindowResult {
    pub evidence: WindowEvidence,
    pub document: VerdictDocument,
}

impl<'a> Watch<'a> {
    /// Starts a window now: facts, counters and probe maps read once.
    pub fn begin(
        tracer: &'a LiveTracer,
        counters: CounterSource,
        facts: FactsSource,
        scope: Option<NetnsScope>,
    ) -> Result<Watch<'a>> {
        let facts_start = facts.collect();
        let counters_start = counters.sample(0);
        let start = tracer.snapshot()?;
        Ok(Watch {
            tracer,
            counters,
            facts,
            scope,
            previous: start.clone(),
            start,
            counters_previous: counters_start.clone(),
            counters_start,
            facts_start,
            ticks: Vec::new(),
            layer_of: HashMap::new(),
        })
    }

    fn scoped_counters(&self, sample: CounterSample) -> CounterSample {
        match &self.scope {
            Some(s) => sample.scoped(s.inode),
            None => sample,
        }
    }

    /// Loss per layer among the drops of one interval (cached per reason and location).
    fn probe_layers(&mut self, delta: &Snapshot) -> BTreeMap<Layer, u64> {
        let mut out = BTreeMap::new();
        for (key, count) in &delta.drops {
            let layer = *self
                .layer_of
                .entry((key.reason, key.location))
                .or_insert_with(|| {
                    let (reason, _) = reason_label(key.reason, &self.tracer.names);
                    let location = location_label(key.location, self.tracer.symbols());
                    match classify(&reason, &location) {
                        DropClass::Loss { layer, .. } => Some(layer),
                        _ => None,
                    }
                });
            if let Some(layer) = layer {
                *out.entry(layer).or_insert(0) += count;
            }
        }
        out
    }

    /// One interval ends at `at_ms` (milliseconds since the window began).
    pub fn tick(&mut self, at_ms: u64) -> Result<()> {
        let now = self.tracer.snapshot()?;
        let counters = self.counters.sample(at_ms);
        let mut delta = now.since(&self.previous);
        if let Some(s) = &self.scope {
            delta = delta.only_netns(s.inode);
        }
        let probe = self.probe_layers(&delta);
        let retrans: u64 = delta
            .flows
            .values()
            .map(|f| f.retransmitted_segments + f.synack_retransmits)
            .sum();
        let (c0, c1) = (
            self.scoped_counters(self.counters_previous.clone()),
            self.scoped_counters(counters.clone()),
        );
        self.ticks.push(tick_loss(at_ms, &probe, &c0, &c1, retrans));
        self.previous = now;
        self.counters_previous = counters;
        Ok(())
    }

    /// Ends the window at `at_ms` and decides.
    pub fn finish(mut self, at_ms: u64, notes: &[String]) -> Result<WindowResult> {
        if self.ticks.last().is_none_or(|t| t.at_ms < at_ms) {
            self.tick(at_ms)?;
        }
        let end = self.previous.clone();
        let facts_end = self.facts.collect();
        let observed: Report = self.tracer.report(
            &self.start,
            &end,
            at_ms as f64 / 1000.0,
            self.scope.clone(),
            notes,
        );
        let mut collection_errors = self.counters_start.errors.clone();
        collection_errors.extend(self.counters_previous.errors.iter().cloned());
        collection_errors.sort();
        collection_errors.dedup();
        let (facts_start, facts_end) = match &self.scope {
            Some(s) => (
                self.facts_start.clone().scoped(s.inode),
                facts_end.scoped(s.inode),
            ),
            None => (self.facts_start.clone(), facts_end),
        };
        let evidence = WindowEvidence {
            observed: observed.clone(),
            counters_start: self.scoped_counters(self.counters_start.clone()),
            counters_end: self.scoped_counters(self.counters_previous.clone()),
            facts_start,
            facts_end: facts_end.clone(),
            ticks: self.ticks.clone(),
        };
        let verdict = decide(&evidence);
        let document = VerdictDocument::new(verdict, observed, &facts_end, collection_errors);
        Ok(WindowResult { evidence, document })
    }
}
