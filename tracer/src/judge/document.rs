//! The verdict document as printed: the runbook's Output Format keys first, in its order and
//! shape (extras after them), as YAML, JSON, or a short text summary for people.
//! Pure rendering of a [`Verdict`] and the window's observations; decides nothing.
//! [`schema`] is the document's JSON Schema, generated from these types (`tracer schema`).

use std::{collections::BTreeMap, fmt::Write as _};

use schemars::{generate::SchemaSettings, transform::RecursiveTransform, Schema};
use serde::Serialize;

use crate::{
    judge::layers::Layer,
    judge::report::Report,
    judge::verdict::{
        EvidenceItem, LayerScore, Mitigation, NoiseSummary, OtherFinding, RuledOut, TimelineEntry,
        Verdict,
    },
    node::evidence::NodeFacts,
};

/// Exit status: no degradation found.
pub const EXIT_HEALTHY: u8 = 0;
/// Exit status: a root cause was found.
pub const EXIT_DEGRADED: u8 = 1;
/// Exit status: the tracer could not do its job (not root, no probes, bad arguments).
pub const EXIT_ERROR: u8 = 2;

/// The document's JSON Schema (draft 2020-12), generated from its types as they serialize:
/// properties in output order (the runbook's keys first) and every object closed
/// (`additionalProperties: false`), so it describes exactly the keys this version prints.
pub fn schema() -> serde_json::Value {
    let mut schema = SchemaSettings::draft2020_12()
        .for_serialize()
        .with_transform(RecursiveTransform(close_object))
        .into_generator()
        .into_root_schema_for::<VerdictDocument>();
    schema.insert("title".to_owned(), "tracer verdict document".into());
    schema.insert(
        "description".to_owned(),
        "What `tracer report` prints (JSON; YAML has the same shape) and `tracer serve` answers \
         on /report: the runbook D7 Output Format keys first, in its order, then extras."
            .into(),
    );
    // The usual reading order at the top: what it is, then its keys, then the definitions.
    let mut top = schema.to_value();
    let mut ordered = serde_json::Map::new();
    if let Some(map) = top.as_object_mut() {
        for key in [
            "$schema",
            "title",
            "description",
            "type",
            "properties",
            "required",
            "additionalProperties",
        ] {
            if let Some(value) = map.remove(key) {
                ordered.insert(key.to_owned(), value);
            }
        }
        ordered.append(map);
    }
    ordered.into()
}

/// For people: the layer of a finding, or what an unattributed one is.
fn finding_title(o: &OtherFinding) -> &'static str {
    o.failure_layer
        .map_or("no known layer (unplaced drops)", |l| l.title())
}

/// `additionalProperties: false` on a struct's schema (one with `properties`); maps keep theirs.
fn close_object(schema: &mut Schema) {
    if schema.get("properties").is_some() && schema.get("additionalProperties").is_none() {
        schema.insert("additionalProperties".to_owned(), false.into());
    }
}

/// Node facts worth showing next to the verdict.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct NodeSummary {
    pub policy_engines: Vec<String>,
    pub irqbalance_running: bool,
    pub sysctls: BTreeMap<String, String>,
    pub drop_reject_rules: usize,
    pub blackhole_or_unreachable_routes: Vec<String>,
    /// What could not be read (counters and facts), so nothing is hidden.
    pub collection_errors: Vec<String>,
}

/// Where and when the window was watched, to match the document with logs and tickets.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct WindowClock {
    /// The node's name (`NODE_NAME`, else the host name); null when not known (recordings
    /// made before documents carried it).
    pub node_name: Option<String>,
    /// The window's start and end in UTC, RFC 3339 (null without a wall clock: older
    /// recordings); the timeline's `at_s` count from `start`.
    pub start: Option<String>,
    pub end: Option<String>,
    pub duration_s: f64,
}

/// The document. Field order is the output order.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VerdictDocument {
    // The runbook's keys, in its order and shape.
    pub root_cause: String,
    pub failure_layer: String,
    pub evidence: Vec<EvidenceItem>,
    pub severity: String,
    pub mitigation: Mitigation,
    pub cross_reference: Vec<String>,
    // Extras.
    pub window: WindowClock,
    /// Every other layer that lost packets enough to be a root cause, with its evidence.
    pub other_findings: Vec<OtherFinding>,
    pub escalation: Vec<String>,
    pub confidence: f64,
    pub ruled_out: Vec<RuledOut>,
    pub timeline: Vec<TimelineEntry>,
    pub layer_scores: BTreeMap<Layer, LayerScore>,
    pub noise: NoiseSummary,
    pub node: NodeSummary,
    pub observations: Report,
}

impl VerdictDocument {
    pub fn new(
        verdict: Verdict,
        observations: Report,
        facts: &NodeFacts,
        collection_errors: Vec<String>,
    ) -> Self {
        let blackholes = facts
            .routes
            .iter()
            .filter(|r| matches!(r.kind.as_str(), "blackhole" | "unreachable" | "prohibit"))
            .map(|r| format!("{} {} in {}", r.kind, r.dst, r.netns_label))
            .collect();
        let mut errors = facts.errors.clone();
        errors.extend(collection_errors);
        VerdictDocument {
            root_cause: verdict.root_cause,
            failure_layer: verdict.failure_layer.unwrap_or_else(|| "none".to_owned()),
            evidence: verdict.evidence,
            severity: verdict.severity,
            mitigation: verdict.mitigation,
            window: WindowClock {
                duration_s: observations.window.duration_s,
                ..Default::default()
            },
            cross_reference: verdict
                .cross_reference
                .into_iter()
                .map(|c| format!("{}: {}", c.runbook, c.evidence))
                .collect(),
            other_findings: verdict.other_findings,
            escalation: verdict.escalation,
            confidence: verdict.confidence,
            ruled_out: verdict.ruled_out,
            timeline: verdict.timeline,
            layer_scores: verdict.layer_scores,
            noise: verdict.noise,
            node: NodeSummary {
                policy_engines: facts.policy_engines.clone(),
                irqbalance_running: facts.irqbalance_running,
                sysctls: facts.sysctls.clone(),
                drop_reject_rules: facts.firewall_rules.len(),
                blackhole_or_unreachable_routes: blackholes,
                collection_errors: errors,
            },
            observations,
        }
    }

    /// The exit status this document calls for.
    pub fn exit_code(&self) -> u8 {
        if self.root_cause == "none" {
            EXIT_HEALTHY
        } else {
            EXIT_DEGRADED
        }
    }

    /// One line per other layer that lost packets enough to be a root cause:
    /// `also: TCP stack lost 262 packets — listen queue overflow`.
    pub fn also_lines(&self) -> Vec<String> {
        self.other_findings
            .iter()
            .map(|o| {
                format!(
                    "also: {} lost {} packets — {}",
                    finding_title(o),
                    o.lost_packets,
                    o.summary
                )
            })
            .collect()
    }

    /// A short summary for a person at a terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let w = &self.observations.window;
        let c = &self.window;
        let _ = writeln!(
            out,
            "tracer: {:.0} s watched on {}{}{}{}",
            w.duration_s,
            c.node_name
                .as_deref()
                .map(|n| format!("node {n}, kernel "))
                .unwrap_or_default(),
            self.observations.kernel,
            match (&c.start, &c.end) {
                (Some(s), Some(e)) => format!(", {s} → {e}"),
                _ => String::new(),
            },
            w.netns
                .as_ref()
                .map(|n| match &n.pod {
                    Some(pod) => format!(", pod {pod} (netns {})", n.inode),
                    None => format!(", namespace {} ({})", n.path, n.inode),
                })
                .unwrap_or_default()
        );
        if self.root_cause == "none" {
            let _ = writeln!(
                out,
                "\nVERDICT  no packet loss attributable to this node (confidence {:.2})",
                self.confidence
            );
        } else {
            let _ = writeln!(
                out,
                "\nVERDICT  {} in layer {}  severity {}  confidence {:.2}",
                self.root_cause, self.failure_layer, self.severity, self.confidence
            );
        }
        for line in self.also_lines() {
            let _ = writeln!(out, "{line}");
        }
        if !self.evidence.is_empty() {
            let _ = writeln!(out, "\nEvidence");
            for e in &self.evidence {
                let _ = writeln!(out, "  [{}] {}", e.kind, e.content);
            }
        }
        for o in &self.other_findings {
            let _ = writeln!(
                out,
                "\nEvidence for {} ({})",
                finding_title(o),
                o.root_cause
            );
            for e in &o.evidence {
                let _ = writeln!(out, "  [{}] {}", e.kind, e.content);
            }
        }
        let _ = writeln!(out, "\nLayers (packets lost in the window)");
        for (layer, score) in &self.layer_scores {
            let _ = writeln!(out, "  {:<28} {}", layer.title(), score.lost_packets);
        }
        let _ = writeln!(out, "\nDo now     {}", self.mitigation.immediate);
        let _ = writeln!(out, "Long term  {}", self.mitigation.long_term);
        for e in &self.escalation {
            let _ = writeln!(out, "ESCALATE   {e}");
        }
        for c in &self.cross_reference {
            let _ = writeln!(out, "See also   {c}");
        }
        if !self.ruled_out.is_empty() {
            let _ = writeln!(out, "\nRuled out");
            for r in &self.ruled_out {
                let _ = writeln!(out, "  {}: {}", r.check, r.result);
            }
        }
        let flows = &self.observations.flows;
        if !flows.destinations.is_empty() {
            let t = &flows.totals;
            let _ = writeln!(
                out,
                "\nFlows ({} destinations: {} retransmits, {} resets sent / {} received, {} of {} connects failed, {} socket errors; top 10)",
                t.destinations,
                t.retransmits,
                t.resets_sent,
                t.resets_received,
                t.failed_connects,
                t.connects,
                t.sock_errors
            );
            let top = crate::judge::flows::Flows {
                destinations: flows.destinations.iter().take(10).cloned().collect(),
                resets: Vec::new(),
                // The eviction note is printed with the other notes below.
                tracking: Default::default(),
                totals: t.clone(),
            };
            for line in top.table(&|inode| inode.to_string()).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        if self.noise.total > 0 {
            let _ = writeln!(
                out,
                "\nNot counted as loss: {} drops (duplicates, teardown, not-for-us…)",
                self.noise.total
            );
        }
        let missing: Vec<String> = self
            .observations
            .probes
            .iter()
            .filter(|p| p.state != crate::kernel::probes::ProbeState::Attached)
            .map(|p| format!("{} ({})", p.tracepoint, p.detail))
            .collect();
        if !missing.is_empty() {
            let _ = writeln!(out, "\nProbes not attached: {}", missing.join("; "));
        }
        let _ = writeln!(
            out,
            "\n{}",
            crate::judge::report::tracer_cost_line(&self.observations)
        );
        for n in self
            .observations
            .notes
            .iter()
            .chain(&self.node.collection_errors)
        {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{
        judge::report::WindowInfo,
        judge::verdict::{CrossReference, Verdict},
    };

    /// A small judged document (a rule drop, or `none`) for tests here and in `present`.
    pub(crate) fn document(root_cause: &str) -> VerdictDocument {
        let verdict = Verdict {
            root_cause: root_cause.to_owned(),
            failure_layer: (root_cause != "none").then(|| "iptables_netpolicy".to_owned()),
            evidence: vec![EvidenceItem {
                kind: "kernel_probe".to_owned(),
                content: "500 NETFILTER_DROP drops at nft_do_chain+0x46f".to_owned(),
            }],
            severity: "HIGH".to_owned(),
            mitigation: Mitigation {
                immediate: "Operator: review the rule".to_owned(),
                long_term: "Monitor".to_owned(),
            },
            cross_reference: vec![CrossReference {
                runbook: "D5".to_owned(),
                evidence: "DNS traffic dropped".to_owned(),
            }],
            ruled_out: vec![],
            escalation: vec![],
            confidence: 0.9,
            timeline: vec![],
            layer_scores: BTreeMap::new(),
            noise: NoiseSummary::default(),
            other_findings: vec![],
        };
        let observed = Report {
            tracer_version: "test",
            kernel: "6.18".to_owned(),
            window: WindowInfo {
                duration_s: 10.0,
                startup_ms: 1.0,
                netns: None,
            },
            probes: vec![],
            drops: Default::default(),
            retransmits: Default::default(),
            softirq: vec![],
            flows: Default::default(),
            tracer_counters: BTreeMap::new(),
            tracer_counters_unknown: Vec::new(),
            tracer_cost: Default::default(),
            notes: vec![],
        };
        VerdictDocument::new(verdict, observed, &NodeFacts::default(), vec![])
    }

    #[test]
    fn yaml_starts_with_the_runbooks_keys_in_its_order_and_shape() {
        let yaml = yaml_serde::to_string(&document("security_rule_drops")).expect("yaml");
        let top_keys: Vec<&str> = yaml
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.starts_with('-') && l.contains(':'))
            .filter_map(|l| l.split(':').next())
            .collect();
        assert_eq!(
            &top_keys[..6],
            &[
                "root_cause",
                "failure_layer",
                "evidence",
                "severity",
                "mitigation",
                "cross_reference"
            ]
        );
        let value: yaml_serde::Value = yaml_serde::from_str(&yaml).expect("parse back");
        assert_eq!(value["evidence"][0]["type"].as_str(), Some("kernel_probe"));
        assert!(value["mitigation"]["immediate"]
            .as_str()
            .is_some_and(|s| s.starts_with("Operator:")));
        assert!(value["mitigation"]["long_term"].is_string());
        // cross_reference is a list of strings, as in the runbook, each naming its evidence.
        assert_eq!(
            value["cross_reference"][0].as_str(),
            Some("D5: DNS traffic dropped")
        );
    }

    #[test]
    fn json_has_the_same_content_and_exit_codes_follow_the_verdict() {
        let doc = document("security_rule_drops");
        let json: serde_json::Value = serde_json::to_value(&doc).expect("json");
        assert_eq!(json["root_cause"], "security_rule_drops");
        assert_eq!(json["failure_layer"], "iptables_netpolicy");
        assert_eq!(doc.exit_code(), EXIT_DEGRADED);
        let healthy = document("none");
        assert_eq!(healthy.failure_layer, "none");
        assert_eq!(healthy.exit_code(), EXIT_HEALTHY);
        assert!(healthy.text().contains("no packet loss attributable"));
        assert!(doc
            .text()
            .contains("security_rule_drops in layer iptables_netpolicy"));
    }

    #[test]
    fn with_bpf_stats_off_the_text_says_the_cost_is_unknown_not_that_no_program_ran() {
        let mut doc = document("none");
        doc.observations.tracer_cost.bpf_stats_enabled = false;
        doc.observations.tracer_counters = BTreeMap::from([("kfree_skb_events", 3_000)]);
        let text = doc.text();
        assert!(!text.contains("no program ran"), "{text}");
        assert!(
            text.contains(
                "tracer cost: unknown (kernel.bpf_stats_enabled=0); the programs counted 3000 \
                 events (kfree_skb 300/s)"
            ),
            "{text}"
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "document_schema_tests.rs"]
mod schema_tests;
