//! The D7 verdict: which layer lost the packets, from the probes' drops and retransmits, the
//! node's counters (every namespace) and its facts (routes, rules). Pure: everything, time
//! included, is passed in, so the same window always gives the same verdict (live or replayed).
//! The runbook's root causes and cross-references are one rule each (`rules/`); `decide` only
//! runs them and ranks their findings. This file holds the verdict's types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    judge::layers::Layer,
    judge::report::Report,
    node::evidence::{CounterSample, NodeFacts},
    node::shared::Shared,
};

mod breaks;
mod change;
mod context;
mod counters;
mod decide;
mod facts;
mod flow_signals;
mod loss;
mod rules;

pub use self::{
    breaks::{break_notes, counter_break_notes, counter_breaks, MAX_BREAK_NOTES},
    change::{CounterChange, CounterDelta, MAX_PLAUSIBLE_CHANGE, WRAP32_MARGIN},
    counters::{counter_signals, counter_signals_with, CounterSignals, SignalsMemo},
    decide::{decide, decide_with},
    loss::{counter_loss, probe_loss, tick_loss, tick_loss_of, unplaced_drops, UnplacedDrops},
};

/// Fewest packets a layer must lose in a window before it can be the root cause (the same for
/// drops no layer takes: at least this many are an `unattributed_loss` finding).
pub const MIN_LOSS: u64 = 10;
/// `root_cause` of drops the tracer could not place in a layer.
pub const UNATTRIBUTED: &str = "unattributed_loss";
/// `failure_layer` when the root cause is [`UNATTRIBUTED`].
pub const UNKNOWN_LAYER: &str = "unknown";
/// Retransmitted/sent segment ratio above which unexplained retransmits point upstream.
pub const MIN_RETRANS_RATIO: f64 = 0.002;
/// A CPU whose NET_RX time is at least this share of the window is saturated.
pub const SATURATED_SHARE: f64 = 0.5;

/// One second of the window: loss per layer seen in it (probes and counters).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    /// Milliseconds since the window started, at the end of this interval.
    pub at_ms: u64,
    pub loss: BTreeMap<Layer, u64>,
}

/// Everything the verdict is decided from.
#[derive(Debug, Clone)]
pub struct WindowEvidence {
    /// The probes' evidence for the whole window.
    pub observed: Report,
    pub counters_start: CounterSample,
    pub counters_end: CounterSample,
    /// The facts at the window's ends, shared with the window that read them (a rolling
    /// window judged every second does not copy every namespace's routes and rules each time).
    pub facts_start: Shared<NodeFacts>,
    pub facts_end: Shared<NodeFacts>,
    /// Per-second loss by layer (see [`tick_loss`]).
    pub ticks: Vec<Tick>,
    /// Wall-clock time of the window's start, ms since the UNIX epoch, when known: the
    /// timeline's entries then say their time in UTC too.
    pub started_unix_ms: Option<u64>,
}

/// A UNIX time in ms as RFC 3339 in UTC with milliseconds (`2026-01-01T00:00:05.000Z`).
pub fn rfc3339_utc(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms),
    )
    .to_string()
}

/// `{type, content}`, as the runbook's evidence list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EvidenceItem {
    #[serde(rename = "type")]
    pub kind: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Mitigation {
    pub immediate: String,
    pub long_term: String,
}

/// A runbook whose trigger was observed, and what triggered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossReference {
    pub runbook: String,
    pub evidence: String,
}

/// A check that was made and found nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RuledOut {
    pub check: String,
    pub result: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TimelineEntry {
    /// Seconds into the window.
    pub at_s: f64,
    /// The same instant in UTC (RFC 3339), when the window's wall-clock start is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    pub event: String,
}

/// Why a layer scored what it did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LayerScore {
    /// Packets this layer lost in the window (the larger of the probes' count and the
    /// counters' when both see the same loss).
    pub lost_packets: u64,
    pub signals: Vec<String>,
}

/// A layer that lost at least [`MIN_LOSS`] packets but is not the root cause: a second fault,
/// with the evidence it explains (its signals, the failed connects it explains). Drops no layer
/// takes (`unattributed_loss`) are a finding too, without a layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OtherFinding {
    pub root_cause: String,
    /// None for `unattributed_loss`: drops the tracer could not place in a layer.
    pub failure_layer: Option<Layer>,
    pub lost_packets: u64,
    /// What the loss is, in a few words (`listen queue overflow`).
    pub summary: String,
    pub evidence: Vec<EvidenceItem>,
}

/// Drops that do not decide the verdict, by why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NoiseSummary {
    pub total: u64,
    pub by_kind: BTreeMap<String, u64>,
}

/// The verdict document's decision part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub root_cause: String,
    pub failure_layer: Option<String>,
    pub evidence: Vec<EvidenceItem>,
    pub severity: String,
    pub mitigation: Mitigation,
    pub cross_reference: Vec<CrossReference>,
    pub ruled_out: Vec<RuledOut>,
    pub escalation: Vec<String>,
    pub confidence: f64,
    pub timeline: Vec<TimelineEntry>,
    pub layer_scores: BTreeMap<Layer, LayerScore>,
    pub noise: NoiseSummary,
    /// Every other layer that lost at least [`MIN_LOSS`] packets, the most first.
    #[serde(default)]
    pub other_findings: Vec<OtherFinding>,
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod counter_tests;
