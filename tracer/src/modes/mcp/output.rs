//! What the tools return: the verdict document mapped to the runbook's Output Format plus what an
//! agent needs to cite and schedule (finding ids, UTC window and onset, the node's identity),
//! and the caps that keep every answer bounded (`truncated` says when one was applied). Pure:
//! the node's identity files are read by the caller.

use schemars::JsonSchema;
use serde::Serialize;

use crate::judge::{
    document::VerdictDocument,
    verdict::{EvidenceItem, Mitigation, RuledOut, TimelineEntry},
};

/// Largest structured answer, in bytes of JSON; lists are cut to fit (`truncated: true`).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Longest evidence text kept.
pub const MAX_CONTENT_CHARS: usize = 2000;
/// Most timeline entries, other findings, notes and ruled-out checks kept.
pub const MAX_LIST: usize = 50;

/// Which node answered: the EC2 instance id where the board asset tag has one, else the host
/// name (what the runbook's `instanceId` arguments take).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct NodeIdentity {
    /// The instance id when known, else the host name.
    pub identity: String,
    /// `i-…` from /sys/devices/virtual/dmi/id/board_asset_tag (EC2 Nitro instances).
    pub instance_id: Option<String>,
    pub host_name: Option<String>,
    /// `NODE_NAME` (the Kubernetes node name in the DaemonSet), else the host name.
    pub node_name: Option<String>,
}

impl NodeIdentity {
    /// From the asset tag's text, the host name and the node name.
    pub fn from_parts(
        asset_tag: Option<&str>,
        host_name: Option<&str>,
        node_name: Option<&str>,
    ) -> NodeIdentity {
        let clean = |s: Option<&str>| {
            s.map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let instance_id = clean(asset_tag).filter(|t| {
            t.starts_with("i-") && t.len() > 2 && t[2..].chars().all(|c| c.is_ascii_hexdigit())
        });
        let host_name = clean(host_name);
        let node_name = clean(node_name).or_else(|| host_name.clone());
        let identity = instance_id
            .clone()
            .or_else(|| host_name.clone())
            .or_else(|| node_name.clone())
            .unwrap_or_else(|| "unknown".to_owned());
        NodeIdentity {
            identity,
            instance_id,
            host_name,
            node_name,
        }
    }

    /// This node's.
    pub fn here() -> NodeIdentity {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        NodeIdentity::from_parts(
            read("/sys/devices/virtual/dmi/id/board_asset_tag").as_deref(),
            read("/proc/sys/kernel/hostname").as_deref(),
            crate::modes::live::node_name().as_deref(),
        )
    }
}

/// One evidence item, citable by its `finding_id`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Evidence {
    /// `F-001`, `F-002`, … in the order of the answer (the runbook's `summarize` takes them).
    pub finding_id: String,
    /// The runbook's evidence type (`network_diagnostics`, `search`, `tcpdump_analyze`,
    /// `correlate`).
    #[serde(rename = "type")]
    pub kind: String,
    pub content: String,
}

/// A layer that also lost packets, with its own evidence.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct OtherFinding {
    pub root_cause: String,
    pub failure_layer: String,
    pub lost_packets: u64,
    pub summary: String,
    pub evidence: Vec<Evidence>,
}

/// The runbook's Output Format, live.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Verdict {
    /// `nic_errors`, `irq_imbalance`, `tcp_retransmissions`, `security_rule_drops`,
    /// `route_issue`, `upstream_loss`, or `none`.
    pub root_cause: String,
    /// `nic_driver`, `irq_cpu`, `tcp_stack`, `iptables_netpolicy`, `routing`, `upstream`, or
    /// `none`.
    pub failure_layer: String,
    pub evidence: Vec<Evidence>,
    pub severity: String,
    pub mitigation: Mitigation,
    pub cross_reference: Vec<String>,
    /// The judged window in UTC (RFC 3339).
    pub window_start_utc: Option<String>,
    pub window_end_utc: Option<String>,
    /// When the root cause's loss began; the window's start when it was already present.
    pub onset_utc: Option<String>,
    /// Whether the onset lies inside the window (false: the loss was already there).
    pub onset_in_window: bool,
    pub window_seconds: f64,
    /// 0 to 1.
    pub confidence: f64,
    /// The runbook's escalation conditions that hold.
    pub escalation: Vec<String>,
    pub other_findings: Vec<OtherFinding>,
    pub ruled_out: Vec<RuledOut>,
    pub timeline: Vec<TimelineEntry>,
    pub node: NodeIdentity,
    /// What limits this answer (probes missing, window cut short, …).
    pub notes: Vec<String>,
    /// A cap on rows, text or size was applied.
    pub truncated: bool,
}

/// Numbers the evidence items as they are added.
struct Ids(usize);

impl Ids {
    fn cite(&mut self, items: &[EvidenceItem], truncated: &mut bool) -> Vec<Evidence> {
        items
            .iter()
            .map(|e| {
                self.0 += 1;
                Evidence {
                    finding_id: format!("F-{:03}", self.0),
                    kind: e.kind.clone(),
                    content: cap_text(&e.content, MAX_CONTENT_CHARS, truncated),
                }
            })
            .collect()
    }
}

/// `text` cut to `max` characters (with `…`), noting the cut.
pub fn cap_text(text: &str, max: usize, truncated: &mut bool) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    *truncated = true;
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The first `max` of `items`, noting the cut.
pub fn cap_list<T: Clone>(items: &[T], max: usize, truncated: &mut bool) -> Vec<T> {
    if items.len() > max {
        *truncated = true;
    }
    items.iter().take(max).cloned().collect()
}

impl Verdict {
    /// The document's answer for an agent.
    pub fn of(document: &VerdictDocument, node: NodeIdentity) -> Verdict {
        let mut truncated = false;
        let mut ids = Ids(0);
        let evidence = ids.cite(&document.evidence, &mut truncated);
        let other_findings = cap_list(&document.other_findings, MAX_LIST, &mut truncated)
            .iter()
            .map(|f| OtherFinding {
                root_cause: f.root_cause.clone(),
                failure_layer: serde_json::to_value(f.failure_layer)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                lost_packets: f.lost_packets,
                summary: f.summary.clone(),
                evidence: ids.cite(&f.evidence, &mut truncated),
            })
            .collect();
        let onset = document
            .timeline
            .iter()
            .find(|t| t.event.starts_with("onset"));
        let already = document
            .timeline
            .iter()
            .find(|t| t.event.contains("already present"));
        let onset_utc = onset
            .or(already)
            .and_then(|t| t.at.clone())
            .or_else(|| already.and(document.window.start.clone()));
        Verdict {
            root_cause: document.root_cause.clone(),
            failure_layer: document.failure_layer.clone(),
            evidence,
            severity: document.severity.clone(),
            mitigation: document.mitigation.clone(),
            cross_reference: document.cross_reference.clone(),
            window_start_utc: document.window.start.clone(),
            window_end_utc: document.window.end.clone(),
            onset_utc,
            onset_in_window: onset.is_some(),
            window_seconds: document.window.duration_s,
            confidence: document.confidence,
            escalation: document.escalation.clone(),
            other_findings,
            ruled_out: cap_list(&document.ruled_out, MAX_LIST, &mut truncated),
            timeline: cap_list(&document.timeline, MAX_LIST, &mut truncated),
            node,
            notes: cap_list(&document.observations.notes, MAX_LIST, &mut truncated),
            truncated,
        }
    }

    /// Every finding id, in order (the evidence's, then the other findings').
    pub fn finding_ids(&self) -> Vec<String> {
        self.evidence
            .iter()
            .chain(self.other_findings.iter().flat_map(|f| f.evidence.iter()))
            .map(|e| e.finding_id.clone())
            .collect()
    }
}

/// Cuts the longest arrays inside `value` in half until its JSON fits `max_bytes`; returns
/// whether anything was cut. Objects and scalars are kept; only lists shrink.
pub fn cap_value(value: &mut serde_json::Value, max_bytes: usize) -> bool {
    let mut cut = false;
    for _ in 0..64 {
        if serde_json::to_vec(&*value).map_or(0, |v| v.len()) <= max_bytes {
            break;
        }
        match longest_array(value) {
            Some(list) if !list.is_empty() => {
                let keep = list.len() / 2;
                list.truncate(keep);
                cut = true;
            }
            _ => break,
        }
    }
    cut
}

/// The longest array anywhere in `value` (by elements).
fn longest_array(value: &mut serde_json::Value) -> Option<&mut Vec<serde_json::Value>> {
    fn walk(
        value: &serde_json::Value,
        path: &mut Vec<PathStep>,
        best: &mut (usize, Vec<PathStep>),
    ) {
        match value {
            serde_json::Value::Array(items) => {
                if items.len() > best.0 {
                    *best = (items.len(), path.clone());
                }
                for (i, item) in items.iter().enumerate() {
                    path.push(PathStep::Index(i));
                    walk(item, path, best);
                    path.pop();
                }
            }
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    path.push(PathStep::Key(k.clone()));
                    walk(v, path, best);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut best = (0, Vec::new());
    walk(value, &mut Vec::new(), &mut best);
    if best.0 == 0 {
        return None;
    }
    let mut at = value;
    for step in best.1 {
        at = match step {
            PathStep::Index(i) => at.get_mut(i)?,
            PathStep::Key(k) => at.get_mut(k.as_str())?,
        };
    }
    at.as_array_mut()
}

#[derive(Clone)]
enum PathStep {
    Index(usize),
    Key(String),
}

#[cfg(test)]
#[path = "output_tests.rs"]
mod tests;

/// Cuts every array inside `value` to at most `max` elements; returns whether any was cut.
pub fn cap_rows(value: &mut serde_json::Value, max: usize) -> bool {
    match value {
        serde_json::Value::Array(items) => {
            let mut cut = items.len() > max;
            items.truncate(max);
            for item in items {
                cut |= cap_rows(item, max);
            }
            cut
        }
        serde_json::Value::Object(map) => {
            let mut cut = false;
            for v in map.values_mut() {
                cut |= cap_rows(v, max);
            }
            cut
        }
        _ => false,
    }
}
