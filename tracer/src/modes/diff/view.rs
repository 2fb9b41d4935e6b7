//! Reading verdict documents back: a typed view of only what comparing nodes needs, every field
//! defaulted, so documents of other tracer versions still read. Uses the judge's document type
//! only to view documents made in this process.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::judge::document::VerdictDocument;

/// The parts of a verdict document that comparing nodes reads. Every field defaults, so
/// documents of other tracer versions still read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DocumentView {
    pub root_cause: String,
    pub failure_layer: String,
    pub evidence: Vec<EvidenceView>,
    pub severity: String,
    pub mitigation: Option<MitigationView>,
    pub cross_reference: Vec<String>,
    pub escalation: Vec<String>,
    pub confidence: f64,
    /// By the runbook's layer name; unknown layers are kept, not refused.
    pub layer_scores: BTreeMap<String, LayerScoreView>,
    pub node: NodeView,
    pub observations: ObservationsView,
}

/// `{type, content}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvidenceView {
    #[serde(rename = "type")]
    pub kind: String,
    pub content: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MitigationView {
    pub immediate: String,
    pub long_term: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LayerScoreView {
    pub lost_packets: u64,
    pub signals: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeView {
    pub policy_engines: Vec<String>,
    pub irqbalance_running: Option<bool>,
    pub sysctls: BTreeMap<String, String>,
    pub drop_reject_rules: Option<u64>,
    pub blackhole_or_unreachable_routes: Vec<String>,
    pub collection_errors: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ObservationsView {
    pub tracer_version: String,
    pub kernel: String,
    pub window: WindowView,
    pub drops: DropsView,
    pub retransmits: RetransmitsView,
    pub softirq: Vec<CpuSoftirqView>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowView {
    pub duration_s: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DropsView {
    pub total: u64,
    pub by_reason: Vec<DropReasonView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DropReasonView {
    pub reason: String,
    pub count: u64,
    pub locations: Vec<DropLocationView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DropLocationView {
    pub location: String,
    pub count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetransmitsView {
    pub total: u64,
    pub segments_total: u64,
    pub synack_total: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuSoftirqView {
    pub cpu: u32,
    pub vectors: Vec<VectorView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VectorView {
    pub vector: String,
    pub time_ns: u64,
    pub share_of_window: f64,
}

impl DocumentView {
    /// Reads a document from JSON (or YAML) text; refuses anything without a verdict.
    pub fn parse(text: &str) -> Result<DocumentView> {
        let view: DocumentView = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(json_err) => yaml_serde::from_str(text).map_err(|_| {
                if json_err.is_eof() {
                    anyhow::anyhow!(
                        "the JSON ends early, at line {} column {}: the file is truncated or \
                         incomplete",
                        json_err.line(),
                        json_err.column()
                    )
                } else {
                    anyhow::anyhow!(
                        "it is not a verdict document, neither as JSON ({json_err}) nor as YAML"
                    )
                }
            })?,
        };
        view.checked()
    }

    /// From an already parsed JSON value.
    pub fn from_value(value: serde_json::Value) -> Result<DocumentView> {
        let view: DocumentView =
            serde_json::from_value(value).context("not shaped like a verdict document")?;
        view.checked()
    }

    /// The view of a document produced in this process.
    pub fn of(document: &VerdictDocument) -> Result<DocumentView> {
        Self::from_value(serde_json::to_value(document).context("encoding the document")?)
    }

    fn checked(self) -> Result<DocumentView> {
        if self.root_cause.is_empty() {
            bail!("it has no root_cause, so it is not a tracer verdict document");
        }
        Ok(self)
    }

    /// Whether the document names a root cause.
    pub fn degraded(&self) -> bool {
        self.root_cause != "none"
    }

    /// Packets lost on (or, for upstream, attributed past) the node, all layers.
    pub fn lost_packets(&self) -> u64 {
        self.layer_scores.values().map(|s| s.lost_packets).sum()
    }

    /// Packets the failure layer lost.
    pub fn failure_layer_loss(&self) -> u64 {
        self.layer_scores
            .get(&self.failure_layer)
            .map_or(0, |s| s.lost_packets)
    }

    pub(super) fn seconds(&self) -> f64 {
        let d = self.observations.window.duration_s;
        if d > 0.0 {
            d
        } else {
            1.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DocumentView;
    use crate::modes::diff::NodeInput;

    const NETFILTER: &str = include_str!("../../../../tests/fixtures/reports/netfilter-drops.json");

    #[test]
    fn documents_read_back_tolerantly_and_non_documents_are_refused() {
        let json = DocumentView::parse(NETFILTER).expect("json");
        let value: serde_json::Value = serde_json::from_str(NETFILTER).expect("value");
        let yaml = yaml_serde::to_string(&value).expect("yaml");
        assert_eq!(DocumentView::parse(&yaml).expect("yaml"), json);
        assert_eq!(json.failure_layer_loss(), 1460);
        // Another version's document with fields this one does not know, and few it does.
        let other = DocumentView::parse(r#"{"root_cause":"none","future_field":{"x":1}}"#)
            .expect("tolerant");
        assert!(!other.degraded());
        let sparse = DocumentView::parse(
            r#"{"root_cause":"nic_errors","layer_scores":{"nic_driver":{"lost_packets":40},"quantum":{}},"evidence":[{"type":"counters"}]}"#,
        )
        .expect("sparse");
        assert_eq!(sparse.lost_packets(), 40);
        assert_eq!(sparse.evidence[0].kind, "counters");
        let err = DocumentView::parse(r#"{"metrics":[]}"#).expect_err("refused");
        assert!(err.to_string().contains("no root_cause"), "{err}");
        assert!(NodeInput::parse("x", "<html>").is_err());
    }
}
