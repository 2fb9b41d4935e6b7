//! `tracer diff AFFECTED HEALTHY`: what differs between two nodes' windows — drop reasons,
//! counters, rule and route facts, sysctls, driver versions, policy engines — ranked by how much
//! each explains the affected node's loss (the runbook's `compare_nodes`).
//!
//! Inputs are verdict documents (`tracer report --format json|yaml`, or a sidecar's `/report`)
//! read through [`DocumentView`], or recordings judged into a document, which also carry the raw
//! counters and facts. Everything here is pure except [`NodeInput::load`], the one reader.
//!
//! Why a typed view and not `Deserialize` on `VerdictDocument`: documents come from other nodes,
//! possibly other tracer versions; the view reads only what comparing needs, every field
//! defaulted, so a field added or dropped elsewhere never makes a node unreadable. The document
//! itself stays write-only (its `&'static str` fields need no owned twin).
//!
//! Parts: `view` (reading documents back), `input` (reports vs recordings), `signals` (loss-like
//! counts of one node: drops, counters, rules), `config` (facts: sysctls, drivers, rules,
//! routes), `rank` ([`compare`]: scoring each difference by how much it explains the affected
//! node's root cause), `difference` (the result's types and score bands) and `text` (rendering).

mod config;
mod difference;
mod input;
mod rank;
mod signals;
#[cfg(test)]
mod tests;
mod text;
mod view;

pub use difference::{DiffKind, Difference, NodeDiff, SideSummary};
pub use input::{NodeInput, RecordedDetail};
pub use rank::compare;
pub use view::{
    CpuSoftirqView, DocumentView, DropLocationView, DropReasonView, DropsView, EvidenceView,
    LayerScoreView, MitigationView, NodeView, ObservationsView, RetransmitsView, VectorView,
    WindowView,
};
