//! What a comparison produces: each difference (kind, subject, layer, both sides' values, score
//! and why), each side's verdict, the score bands, and the exit code. Uses the judge's layers
//! and exit codes.

use serde::{Deserialize, Serialize};

use crate::judge::{
    document::{EXIT_DEGRADED, EXIT_HEALTHY},
    layers::Layer,
};

/// What a difference is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    DropReason,
    Counter,
    Rule,
    Retransmits,
    Softirq,
    Sysctl,
    Driver,
    Route,
    PolicyEngine,
    Irqbalance,
    QueueSteering,
    Kernel,
}

impl DiffKind {
    pub(super) fn label(self) -> &'static str {
        match self {
            DiffKind::DropReason => "drop reason",
            DiffKind::Counter => "counter",
            DiffKind::Rule => "rule",
            DiffKind::Retransmits => "retransmits",
            DiffKind::Softirq => "softirq",
            DiffKind::Sysctl => "sysctl",
            DiffKind::Driver => "driver",
            DiffKind::Route => "route",
            DiffKind::PolicyEngine => "policy engine",
            DiffKind::Irqbalance => "irqbalance",
            DiffKind::QueueSteering => "RPS/XPS",
            DiffKind::Kernel => "kernel",
        }
    }
}

/// One thing that differs between the nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub kind: DiffKind,
    /// What differs: `NETFILTER_DROP at nft_do_chain`, `net.core.somaxconn`, `eth0 driver`.
    pub subject: String,
    /// The runbook layer it belongs to, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<Layer>,
    pub affected: String,
    pub healthy: String,
    /// 0–1: how much it explains the affected node's degradation (see [`compare`]).
    pub score: f64,
    /// Why it scored so, in one sentence.
    pub why: String,
}

/// One side's verdict, for the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideSummary {
    pub name: String,
    /// `report` or `recording`.
    pub input: String,
    pub root_cause: String,
    pub failure_layer: String,
    pub severity: String,
    pub confidence: f64,
    pub window_s: f64,
    pub lost_packets: u64,
    pub kernel: String,
}

/// The comparison of two nodes, differences best-explaining first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDiff {
    pub affected: SideSummary,
    pub healthy: SideSummary,
    pub differences: Vec<Difference>,
    /// What limits the comparison (a report on one side, different window lengths, …).
    pub notes: Vec<String>,
}

/// Score bands (see [`compare`]).
pub(super) const BAND_FAILURE_LAYER: f64 = 0.5;
pub(super) const BAND_NAMED_CONFIG: f64 = 0.45;
pub(super) const BAND_OTHER_LOSS: f64 = 0.1;
pub(super) const BAND_OTHER_LOSS_SPAN: f64 = 0.3;
pub(super) const BAND_CONTEXT: f64 = 0.05;

impl NodeDiff {
    /// 1 when the affected node is degraded, 0 when not (like `report`).
    pub fn exit_code(&self) -> u8 {
        if self.affected.root_cause == "none" {
            EXIT_HEALTHY
        } else {
            EXIT_DEGRADED
        }
    }
}
