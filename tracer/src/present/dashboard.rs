//! What the live dashboard shows, as plain data: the rolling verdict, per-layer loss history,
//! top drops and flows, per-CPU NET_RX share and the counter changes that matter.
//! Built from window results (live or replayed) by [`Dashboard::from_window`]; rendered by `tui`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    judge::document::VerdictDocument,
    judge::layers::{classify, DropClass, Layer},
    judge::verdict::Tick,
};

/// One drop row: a reason at a location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropRow {
    pub reason: String,
    pub location: String,
    /// `netfilter / NetworkPolicy`, `noise: duplicate segment`, `no listener`, …
    pub class: String,
    pub layer: Option<Layer>,
    /// Namespace inodes with their labels where known (`pod NS/NAME`, `netns NAME`,
    /// `pid 12 (coredns)`).
    pub namespaces: Vec<String>,
    pub count: u64,
    pub per_second: f64,
}

/// One retransmitting flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRow {
    pub namespace: String,
    pub source: String,
    pub destination: String,
    pub state: String,
    pub retransmitted_segments: u64,
    pub per_second: f64,
}

/// One destination of the `flows` section: what its connections saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestRow {
    pub namespace: String,
    /// `ADDR:PORT` (`[ADDR]:PORT` for IPv6).
    pub destination: String,
    pub retransmits: u64,
    /// Resets sent plus received.
    pub resets: u64,
    pub failed_connects: u64,
    pub connects: u64,
    pub rtt_p50_us: Option<f64>,
    pub rtt_p99_us: Option<f64>,
    /// `ETIMEDOUT×3 ECONNREFUSED×1`.
    pub errors: String,
}

/// A counter change worth a line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CounterRow {
    pub name: String,
    pub change: String,
}

/// Everything one screen shows.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    /// `live`, or `replay FILE`.
    pub source: String,
    /// Seconds the rolling window covers.
    pub window_s: f64,
    /// Seconds since the dashboard started (live) or into the recording (replay).
    pub elapsed_s: f64,
    pub root_cause: String,
    pub failure_layer: String,
    pub severity: String,
    pub confidence: f64,
    /// Onset as text (`3 s into the window`, `before the window`), empty when healthy.
    pub onset: String,
    pub mitigation: String,
    /// Loss per layer per second, oldest first (for sparklines).
    pub layer_history: BTreeMap<Layer, Vec<u64>>,
    /// Loss per layer in the last second.
    pub layer_now: BTreeMap<Layer, u64>,
    pub drops: Vec<DropRow>,
    pub flows: Vec<FlowRow>,
    /// Destinations, the most troubled first (the report's `flows` section).
    pub destinations: Vec<DestRow>,
    /// Share of the window each CPU spent in NET_RX (0..1), by CPU.
    pub net_rx: Vec<(u32, f64)>,
    pub counters: Vec<CounterRow>,
    /// Escalations, other layers that lost packets (`also: …`), the tracer's cost, cross
    /// references and notes, one line each.
    pub alerts: Vec<String>,
    /// The full document behind the screen (what `s` saves).
    #[serde(skip)]
    pub document: Option<VerdictDocument>,
}

impl Dashboard {
    /// Builds the screen's data from a judged window and the per-second loss history.
    pub fn from_window(
        source: &str,
        elapsed_s: f64,
        document: &VerdictDocument,
        history: &[Tick],
        netns_labels: &BTreeMap<u32, String>,
    ) -> Dashboard {
        let o = &document.observations;
        let seconds = o.window.duration_s.max(0.001);
        // The pod the document names first (`pod NS/NAME`), then its `ip netns` name (`netns
        // NAME`), then the caller's labels (`pid 12 (coredns)`), else the inode.
        let label = |inode: u32, pod: Option<&str>, name: Option<&str>| {
            pod.map(|p| format!("pod {p}"))
                .or_else(|| name.map(|n| format!("netns {n}")))
                .or_else(|| netns_labels.get(&inode).cloned())
                .unwrap_or_else(|| format!("netns {inode}"))
        };
        let mut drops = Vec::new();
        for reason in &o.drops.by_reason {
            let namespaces: Vec<String> = reason
                .netns
                .iter()
                .map(|n| label(n.inode, n.pod.as_deref(), n.netns_name.as_deref()))
                .collect();
            for location in &reason.locations {
                let (class, layer) = match classify(&reason.reason, &location.location) {
                    DropClass::Loss { layer, .. } => (layer.title().to_owned(), Some(layer)),
                    DropClass::Noise { tag } => (format!("noise: {tag}"), None),
                    DropClass::NoListener => ("no listener".to_owned(), None),
                    DropClass::Other { tag } => (format!("other: {tag}"), None),
                    DropClass::Unplaced => ("unplaced: no layer known".to_owned(), None),
                };
                drops.push(DropRow {
                    reason: reason.reason.clone(),
                    location: location.location.clone(),
                    class,
                    layer,
                    namespaces: namespaces.clone(),
                    count: location.count,
                    per_second: location.count as f64 / seconds,
                });
            }
        }
        drops.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
        let flows = o
            .retransmits
            .flows
            .iter()
            .map(|f| FlowRow {
                namespace: label(f.netns, f.pod.as_deref(), f.netns_name.as_deref()),
                source: format!("{}:{}", f.saddr, f.sport),
                destination: format!("{}:{}", f.daddr, f.dport),
                state: f.state.clone(),
                retransmitted_segments: f.retransmitted_segments + f.synack_retransmits,
                per_second: (f.retransmitted_segments + f.synack_retransmits) as f64 / seconds,
            })
            .collect();
        let destinations = o
            .flows
            .destinations
            .iter()
            .map(|d| DestRow {
                namespace: label(d.netns, d.pod.as_deref(), d.netns_name.as_deref()),
                destination: if d.family == "ipv6" {
                    format!("[{}]:{}", d.daddr, d.dport)
                } else {
                    format!("{}:{}", d.daddr, d.dport)
                },
                retransmits: d.retransmits,
                resets: d.resets_sent + d.resets_received,
                failed_connects: d.failed_connects,
                connects: d.connects,
                rtt_p50_us: d.rtt.as_ref().map(|r| r.p50_us),
                rtt_p99_us: d.rtt.as_ref().map(|r| r.p99_us),
                errors: d
                    .errors
                    .iter()
                    .map(|e| format!("{}×{}", e.error, e.count))
                    .collect::<Vec<_>>()
                    .join(" "),
            })
            .collect();
        let net_rx = o
            .softirq
            .iter()
            .map(|c| {
                let share = c
                    .vectors
                    .iter()
                    .filter(|v| v.vector == "NET_RX")
                    .map(|v| v.share_of_window)
                    .sum();
                (c.cpu, share)
            })
            .collect();
        let mut layer_history: BTreeMap<Layer, Vec<u64>> = BTreeMap::new();
        for layer in Layer::ALL {
            layer_history.insert(
                layer,
                history
                    .iter()
                    .map(|t| t.loss.get(&layer).copied().unwrap_or(0))
                    .collect(),
            );
        }
        let layer_now = history.last().map(|t| t.loss.clone()).unwrap_or_default();
        let counters = document
            .layer_scores
            .values()
            .flat_map(|s| s.signals.iter())
            .filter(|s| s.contains('→') || s.contains("softnet"))
            .map(|s| CounterRow {
                name: s.split(':').next().unwrap_or(s).to_owned(),
                change: s.clone(),
            })
            .collect();
        let onset = document
            .timeline
            .iter()
            .find(|t| t.event.starts_with("onset") || t.event.contains("already present"))
            .map(|t| {
                if t.event.contains("already present") {
                    "before the window".to_owned()
                } else {
                    format!("{:.0} s into the window", t.at_s)
                }
            })
            .unwrap_or_default();
        let mut alerts: Vec<String> = document
            .escalation
            .iter()
            .map(|e| format!("ESCALATE {e}"))
            .collect();
        // A second fault is never hidden behind the root cause.
        alerts.extend(document.also_lines());
        alerts.push(crate::judge::report::tracer_cost_line(o));
        alerts.extend(document.cross_reference.iter().map(|c| format!("see {c}")));
        alerts.extend(o.notes.iter().map(|n| format!("note: {n}")));
        Dashboard {
            source: source.to_owned(),
            window_s: seconds,
            elapsed_s,
            root_cause: document.root_cause.clone(),
            failure_layer: document.failure_layer.clone(),
            severity: document.severity.clone(),
            confidence: document.confidence,
            onset,
            mitigation: document.mitigation.immediate.clone(),
            layer_history,
            layer_now,
            drops,
            flows,
            destinations,
            net_rx,
            counters,
            alerts,
            document: Some(document.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        judge::report::{Report, WindowInfo},
        judge::verdict::{EvidenceItem, Mitigation, NoiseSummary, OtherFinding, Verdict},
        node::evidence::NodeFacts,
    };

    #[test]
    fn with_bpf_stats_off_the_cost_alert_says_unknown_and_the_counted_events() {
        let mut doc = crate::judge::document::tests::document("none");
        doc.observations.tracer_cost.bpf_stats_enabled = false;
        doc.observations.tracer_counters =
            BTreeMap::from([("kfree_skb_events", 3_000), ("sock_state_events", 500)]);
        let dash = Dashboard::from_window("t", 1.0, &doc, &[], &BTreeMap::new());
        let cost: Vec<&String> = dash
            .alerts
            .iter()
            .filter(|a| a.starts_with("tracer cost"))
            .collect();
        assert_eq!(
            cost,
            vec![
                "tracer cost: unknown (kernel.bpf_stats_enabled=0); the programs counted 3500 \
                 events (kfree_skb 300/s, sock_state 50/s); lost events 0"
            ]
        );
    }

    #[test]
    fn a_second_fault_has_its_own_alert_line() {
        let verdict = Verdict {
            root_cause: "security_rule_drops".to_owned(),
            failure_layer: Some("iptables_netpolicy".to_owned()),
            evidence: vec![],
            severity: "HIGH".to_owned(),
            mitigation: Mitigation {
                immediate: "Operator: review the rule".to_owned(),
                long_term: "Monitor".to_owned(),
            },
            cross_reference: vec![],
            ruled_out: vec![],
            escalation: vec![],
            confidence: 0.6,
            timeline: vec![],
            layer_scores: BTreeMap::new(),
            noise: NoiseSummary::default(),
            other_findings: vec![OtherFinding {
                root_cause: "tcp_retransmissions".to_owned(),
                failure_layer: Some(Layer::TcpStack),
                lost_packets: 262,
                summary: "listen queue overflow".to_owned(),
                evidence: vec![EvidenceItem {
                    kind: "kernel_probe".to_owned(),
                    content: "60 of 60 connects to 198.18.0.2:8080 (netns 1) failed in SYN_SENT"
                        .to_owned(),
                }],
            }],
        };
        let observed = Report {
            tracer_version: "test",
            kernel: "6.18".to_owned(),
            window: WindowInfo {
                duration_s: 15.0,
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
        let doc = VerdictDocument::new(verdict, observed, &NodeFacts::default(), vec![]);
        let d = Dashboard::from_window("live", 15.0, &doc, &[], &BTreeMap::new());
        assert_eq!(
            d.alerts.first().map(String::as_str),
            Some("also: TCP stack lost 262 packets — listen queue overflow"),
            "{:?}",
            d.alerts
        );
        let text = doc.text();
        assert!(
            text.contains("\nEvidence for TCP stack (tcp_retransmissions)\n  [kernel_probe] 60 of 60 connects to 198.18.0.2:8080"),
            "{text}"
        );
    }

    /// Issue 19: a row names its namespace by its pod first, then its `ip netns` name, else
    /// the caller's label or the inode.
    #[test]
    fn rows_name_namespaces_pod_first_then_netns_name_then_inode() {
        let judged = crate::judge::window::tests::named_listener_judged();
        let mut doc = judged.document;
        let names = |d: &Dashboard| {
            (
                d.drops[0].namespaces.clone(),
                d.flows[0].namespace.clone(),
                d.destinations[0].namespace.clone(),
            )
        };
        let d = Dashboard::from_window("live", 2.0, &doc, &[], &BTreeMap::new());
        assert_eq!(
            names(&d),
            (
                vec!["netns blue7".to_owned()],
                "netns blue7".to_owned(),
                "netns blue7".to_owned()
            )
        );
        doc.observations
            .label_pods(|inode| (inode == 7).then(|| "shop/web-1".to_owned()));
        let d = Dashboard::from_window("live", 2.0, &doc, &[], &BTreeMap::new());
        assert_eq!(d.drops[0].namespaces, vec!["pod shop/web-1"]);
        assert_eq!(d.flows[0].namespace, "pod shop/web-1");
        assert_eq!(d.destinations[0].namespace, "pod shop/web-1");
        doc.observations.label_pods(|_| None);
        doc.observations.label_netns(|_| None);
        let d = Dashboard::from_window("live", 2.0, &doc, &[], &BTreeMap::new());
        assert_eq!(d.destinations[0].namespace, "netns 7");
        let pid = BTreeMap::from([(7, "pid 12 (nginx)".to_owned())]);
        let d = Dashboard::from_window("live", 2.0, &doc, &[], &pid);
        assert_eq!(d.flows[0].namespace, "pid 12 (nginx)");
    }
}
