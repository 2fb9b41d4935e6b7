//! A live window: takes a frame (probe maps + every counter) when told, the node's facts at the
//! start and the end, and judges the frames with `window::judge`. Also keeps a bounded rolling
//! window for the dashboard and writes recordings. The caller owns time (passes milliseconds).

use std::collections::{BTreeSet, VecDeque};

use anyhow::Result;

use crate::{
    counters::CounterSource,
    evidence::NodeFacts,
    facts::FactsSource,
    live::LiveTracer,
    recording::{RecFrame, RecSnapshot, Recording, FORMAT, VERSION},
    report::{NetnsScope, Symbolize},
    window::{judge, Frame, Judged},
};

/// A window in progress.
pub struct Watch {
    counters: CounterSource,
    facts: FactsSource,
    scope: Option<NetnsScope>,
    frames: VecDeque<Frame>,
    /// Most frames kept (rolling windows); None keeps all.
    keep: Option<usize>,
    facts_start: NodeFacts,
    facts_latest: NodeFacts,
    /// Read the per-destination maps at the window's ends only (report, flows); rolling
    /// windows and recordings read them every frame.
    lean: bool,
}

/// What a finished window produced (the document is in `judged`).
pub type WindowResult = Judged;

fn bpf_stats_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|s| s.trim() == "1")
}

impl Watch {
    /// Starts a window now: facts, and the first frame at 0 ms.
    pub fn begin(
        tracer: &LiveTracer,
        counters: CounterSource,
        facts: FactsSource,
        scope: Option<NetnsScope>,
    ) -> Result<Watch> {
        let facts_start = facts.collect();
        let mut watch = Watch {
            counters,
            facts,
            scope,
            frames: VecDeque::new(),
            keep: None,
            facts_latest: facts_start.clone(),
            facts_start,
            lean: false,
        };
        watch.tick(tracer, 0)?;
        Ok(watch)
    }

    /// Reads the per-destination maps (destinations, resets, socket errors) only at the start
    /// and the end of the window: a node with thousands of destinations then costs two reads
    /// of them, not one a second, and the frames in between stay small.
    pub fn lean(mut self) -> Self {
        self.lean = true;
        self
    }

    /// Keeps only the newest `frames` frames (a rolling window for the dashboard).
    pub fn rolling(mut self, frames: usize) -> Self {
        self.keep = Some(frames.max(2));
        self
    }

    /// Takes a frame `at_ms` milliseconds after the window began.
    pub fn tick(&mut self, tracer: &LiveTracer, at_ms: u64) -> Result<()> {
        let full = !self.lean || self.frames.is_empty();
        self.tick_with(tracer, at_ms, full)
    }

    fn tick_with(&mut self, tracer: &LiveTracer, at_ms: u64, flow_maps: bool) -> Result<()> {
        let frame = Frame {
            at_ms,
            snapshot: tracer.snapshot_with(flow_maps)?,
            counters: self.counters.sample(at_ms),
            bpf_stats_enabled: bpf_stats_enabled(),
        };
        self.frames.push_back(frame);
        if let Some(keep) = self.keep {
            while self.frames.len() > keep {
                self.frames.pop_front();
            }
        }
        Ok(())
    }

    /// Reads the node's facts again (rolling windows refresh them now and then).
    pub fn refresh_facts(&mut self) {
        self.facts_latest = self.facts.collect();
    }

    fn judge_now(&self, tracer: &LiveTracer, facts_end: &NodeFacts, notes: &[String]) -> Judged {
        let frames: Vec<Frame> = self.frames.iter().cloned().collect();
        judge(
            &frames,
            &tracer.meta(),
            tracer.symbols(),
            self.scope.as_ref(),
            &self.facts_start,
            facts_end,
            notes,
        )
    }

    /// Judges the frames kept so far (rolling), with the latest facts.
    pub fn judge_rolling(&self, tracer: &LiveTracer, notes: &[String]) -> Judged {
        self.judge_now(tracer, &self.facts_latest, notes)
    }

    /// Ends the window at `at_ms`: last frame, facts again, verdict.
    pub fn finish(
        &mut self,
        tracer: &LiveTracer,
        at_ms: u64,
        notes: &[String],
    ) -> Result<WindowResult> {
        // The last frame must have read the per-destination maps.
        if self
            .frames
            .back()
            .is_some_and(|f| f.at_ms >= at_ms && !f.snapshot.has_flow_maps && self.frames.len() > 1)
        {
            self.frames.pop_back();
        }
        if self.frames.back().is_none_or(|f| f.at_ms < at_ms) {
            self.tick_with(tracer, at_ms, true)?;
        }
        self.refresh_facts();
        Ok(self.judge_now(tracer, &self.facts_latest, notes))
    }

    /// What the probes counted between the first and the last frame, narrowed to the scope.
    pub fn delta(&self) -> crate::snapshot::Snapshot {
        let (Some(first), Some(last)) = (self.frames.front(), self.frames.back()) else {
            return crate::snapshot::Snapshot::default();
        };
        let delta = last.snapshot.since(&first.snapshot);
        match &self.scope {
            Some(s) => delta.only_netns(s.inode),
            None => delta,
        }
    }

    /// The frames, facts and names of this window as a recording.
    pub fn recording(
        &self,
        tracer: &LiveTracer,
        judged: &Judged,
        recorded_at_unix: u64,
    ) -> Recording {
        let addresses: BTreeSet<u64> = self
            .frames
            .iter()
            .flat_map(|f| f.snapshot.drops.keys().map(|k| k.location))
            .collect();
        let symbols = addresses
            .into_iter()
            .map(|a| (a, tracer.symbols().label(a)))
            .collect();
        Recording {
            format: FORMAT.to_owned(),
            version: VERSION,
            recorded_at_unix,
            meta: tracer.meta(),
            scope: self.scope.clone(),
            symbols,
            facts_start: self.facts_start.clone(),
            facts_end: self.facts_latest.clone(),
            frames: self
                .frames
                .iter()
                .map(|f| RecFrame {
                    at_ms: f.at_ms,
                    bpf_stats_enabled: f.bpf_stats_enabled,
                    snapshot: RecSnapshot::from(&f.snapshot),
                    counters: f.counters.clone(),
                })
                .collect(),
            live_verdict: serde_json::to_value(&judged.document).ok(),
        }
    }
}
