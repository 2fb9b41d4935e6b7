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

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::Path,
};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::{
    judge::document::{VerdictDocument, EXIT_DEGRADED, EXIT_HEALTHY},
    judge::layers::{classify, location_function, DropClass, Layer},
    judge::window::judge,
    modes::recording::{Recording, FORMAT as RECORDING_FORMAT},
    node::evidence::{CounterSample, NodeFacts},
};

// ---------------------------------------------------------------------------------------------
// Reading documents back

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
            Err(json_err) => serde_yaml::from_str(text).map_err(|_| {
                anyhow::anyhow!(
                    "neither JSON nor YAML a verdict document is written in ({json_err})"
                )
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

    fn seconds(&self) -> f64 {
        let d = self.observations.window.duration_s;
        if d > 0.0 {
            d
        } else {
            1.0
        }
    }
}

/// What a recording adds to its document: the raw counters and facts at both ends.
#[derive(Debug, Clone, Default)]
pub struct RecordedDetail {
    pub counters_start: CounterSample,
    pub counters_end: CounterSample,
    pub facts_start: NodeFacts,
    pub facts_end: NodeFacts,
}

/// One node's window, as given on the command line.
#[derive(Debug, Clone)]
pub struct NodeInput {
    /// For people: the file name or endpoint.
    pub name: String,
    pub document: DocumentView,
    /// Present when the input was a recording.
    pub detail: Option<RecordedDetail>,
}

impl NodeInput {
    /// Reads a verdict document (JSON or YAML) or a recording (judged like `report --replay`).
    pub fn load(path: &Path) -> Result<NodeInput> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&path.display().to_string(), &text)
            .with_context(|| format!("{} cannot be compared", path.display()))
    }

    /// As [`NodeInput::load`], from text.
    pub fn parse(name: &str, text: &str) -> Result<NodeInput> {
        let is_recording = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .is_some_and(|v| v["format"] == RECORDING_FORMAT);
        if !is_recording {
            return Ok(NodeInput {
                name: name.to_owned(),
                document: DocumentView::parse(text)?,
                detail: None,
            });
        }
        let recording = Recording::parse(text)?;
        let frames = recording.frames();
        let judged = judge(
            &frames,
            &recording.meta,
            &recording.symbols,
            recording.scope.as_ref(),
            &recording.facts_start,
            &recording.facts_end,
            &[format!("replayed from {name}")],
        );
        Ok(NodeInput {
            name: name.to_owned(),
            document: DocumentView::of(&judged.document)?,
            detail: Some(RecordedDetail {
                counters_start: judged.evidence.counters_start,
                counters_end: judged.evidence.counters_end,
                facts_start: judged.evidence.facts_start,
                facts_end: judged.evidence.facts_end,
            }),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The comparison

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
    fn label(self) -> &'static str {
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
const BAND_FAILURE_LAYER: f64 = 0.5;
const BAND_NAMED_CONFIG: f64 = 0.45;
const BAND_OTHER_LOSS: f64 = 0.1;
const BAND_OTHER_LOSS_SPAN: f64 = 0.3;
const BAND_CONTEXT: f64 = 0.05;

/// A loss-like quantity of one node, by key.
#[derive(Debug, Clone)]
struct Signal {
    kind: DiffKind,
    subject: String,
    layer: Option<Layer>,
    count: u64,
}

fn layer_named(name: &str) -> Option<Layer> {
    Layer::ALL.into_iter().find(|l| l.as_str() == name)
}

/// Drops by reason and kernel function (offsets differ between kernels, functions do not).
fn drop_signals(view: &DocumentView, out: &mut BTreeMap<String, Signal>) {
    for reason in &view.observations.drops.by_reason {
        for location in &reason.locations {
            let layer = match classify(&reason.reason, &location.location) {
                DropClass::Loss { layer, .. } => Some(layer),
                _ => None,
            };
            let subject = format!(
                "{} at {}",
                reason.reason,
                location_function(&location.location)
            );
            out.entry(format!("drop {subject}"))
                .or_insert(Signal {
                    kind: DiffKind::DropReason,
                    subject,
                    layer,
                    count: 0,
                })
                .count += location.count;
        }
        if reason.locations.is_empty() && reason.count > 0 {
            let layer = match classify(&reason.reason, "") {
                DropClass::Loss { layer, .. } => Some(layer),
                _ => None,
            };
            out.insert(
                format!("drop {}", reason.reason),
                Signal {
                    kind: DiffKind::DropReason,
                    subject: reason.reason.clone(),
                    layer,
                    count: reason.count,
                },
            );
        }
    }
}

/// A counter change as the verdict writes it (`{place} {name}: {start} → {end} (+{delta})`, or
/// `softnet_stat dropped +N`): its key and change.
fn parse_counter_signal(signal: &str) -> Option<(String, u64)> {
    if let Some(rest) = signal.strip_prefix("softnet_stat ") {
        let (name, n) = rest.split_once(" +")?;
        return Some((format!("softnet {name}"), n.trim().parse().ok()?));
    }
    let (left, right) = signal.rsplit_once(": ")?;
    let (_, delta) = right.rsplit_once("(+")?;
    let delta: u64 = delta.strip_suffix(')')?.parse().ok()?;
    if !right.contains('→') {
        return None;
    }
    let last = left.rsplit(' ').next().unwrap_or(left);
    let key = if last.contains(':') {
        // SNMP counters: summed over namespaces (pod namespaces differ between nodes).
        last.to_owned()
    } else if let Some(i) = left.find("conntrack ") {
        left[i..].to_owned()
    } else {
        left.to_owned()
    };
    Some((key, delta))
}

/// Counter changes named in the document's layer scores.
fn document_counter_signals(view: &DocumentView, out: &mut BTreeMap<String, Signal>) {
    for (layer_name, score) in &view.layer_scores {
        let layer = layer_named(layer_name);
        for signal in &score.signals {
            if let Some((key, delta)) = parse_counter_signal(signal) {
                out.entry(format!("counter {key}"))
                    .or_insert(Signal {
                        kind: DiffKind::Counter,
                        subject: key,
                        layer,
                        count: 0,
                    })
                    .count += delta;
            }
        }
    }
}

/// The layer of a loss-like SNMP counter (others are traffic volume, not compared).
fn snmp_layer(group: &str, name: &str) -> Option<Layer> {
    Some(match (group, name) {
        (
            "TcpExt",
            "ListenDrops" | "ListenOverflows" | "TCPReqQFullDrop" | "TCPBacklogDrop"
            | "TCPRcvQDrop" | "TCPZeroWindowDrop" | "TCPAbortOnData" | "TCPAbortOnMemory",
        )
        | ("Udp" | "Udp6", "RcvbufErrors" | "SndbufErrors" | "InErrors") => Layer::TcpStack,
        ("Tcp", "RetransSegs")
        | ("TcpExt", "TCPTimeouts" | "TCPLostRetransmit" | "TCPSynRetrans") => Layer::Upstream,
        ("IpExt", "InNoRoutes")
        | ("Ip", "OutNoRoutes" | "InAddrErrors" | "FragFails" | "ReasmFails")
        | ("TcpExt", "TCPMTUPFail") => Layer::Routing,
        _ => return None,
    })
}

fn is_error_stat(name: &str) -> bool {
    ["err", "drop", "exceeded", "miss", "fail", "timeout", "over"]
        .iter()
        .any(|w| name.contains(w))
}

/// Every loss-like counter change of a recording: interface and driver statistics, softnet,
/// SNMP (summed over namespaces), conntrack.
fn recorded_counter_signals(detail: &RecordedDetail, out: &mut BTreeMap<String, Signal>) {
    let mut add = |key: String, layer: Layer, delta: u64| {
        if delta == 0 {
            return;
        }
        out.entry(format!("counter {key}"))
            .or_insert(Signal {
                kind: DiffKind::Counter,
                subject: key,
                layer: Some(layer),
                count: 0,
            })
            .count += delta;
    };
    let (start, end) = (&detail.counters_start, &detail.counters_end);
    if let (Some(h0), Some(h1)) = (start.host(), end.host()) {
        for (iface, c1) in &h1.interfaces {
            let Some(c0) = h0.interfaces.get(iface) else {
                continue;
            };
            if iface == "lo" {
                continue;
            }
            for (stat, b) in &c1.stats {
                if is_error_stat(stat) {
                    let a = c0.stats.get(stat).copied().unwrap_or(*b);
                    add(
                        format!("{iface} {stat}"),
                        Layer::NicDriver,
                        b.saturating_sub(a),
                    );
                }
            }
            for (stat, b) in &c1.ethtool {
                if is_error_stat(stat) {
                    let a = c0.ethtool.get(stat).copied().unwrap_or(*b);
                    add(
                        format!("{iface} {stat}"),
                        Layer::NicDriver,
                        b.saturating_sub(a),
                    );
                }
            }
            if let (Some(q0), Some(q1)) = (&c0.qdisc, &c1.qdisc) {
                add(
                    format!("{iface} qdisc {} drops", q1.kind),
                    Layer::NicDriver,
                    q1.drops.saturating_sub(q0.drops),
                );
            }
        }
    }
    for row in &end.softnet {
        if let Some(r0) = start.softnet.iter().find(|r| r.cpu == row.cpu) {
            add(
                "softnet dropped".to_owned(),
                Layer::IrqCpu,
                row.dropped.saturating_sub(r0.dropped),
            );
            add(
                "softnet time_squeeze".to_owned(),
                Layer::IrqCpu,
                row.time_squeeze.saturating_sub(r0.time_squeeze),
            );
        }
    }
    for ns1 in &end.netns {
        let Some(ns0) = start.netns(ns1.inode) else {
            continue;
        };
        for (group, names) in &ns1.snmp {
            for (name, b) in names {
                if let Some(layer) = snmp_layer(group, name) {
                    let a = ns0.get(group, name);
                    add(
                        format!("{group}:{name}"),
                        layer,
                        u64::try_from(b.saturating_sub(a)).unwrap_or(0),
                    );
                }
            }
        }
        if let (Some(c0), Some(c1)) = (&ns0.conntrack, &ns1.conntrack) {
            for stat in ["drop", "early_drop", "insert_failed"] {
                let (a, b) = (
                    c0.stats.get(stat).copied().unwrap_or(0),
                    c1.stats.get(stat).copied().unwrap_or(0),
                );
                add(
                    format!("conntrack {stat}"),
                    Layer::IptablesNetpolicy,
                    b.saturating_sub(a),
                );
            }
        }
    }
}

/// The rule part of a firewall rule, without the namespace (pod namespaces differ by node).
fn rule_key(r: &crate::node::evidence::FirewallRule) -> String {
    format!(
        "{} {} chain {}: `{}` {}",
        r.source, r.table, r.chain, r.rule, r.verdict
    )
}

/// Packets each drop/reject rule matched in a recording's window.
fn recorded_rule_signals(detail: &RecordedDetail, out: &mut BTreeMap<String, Signal>) {
    for r in &detail.facts_end.firewall_rules {
        let Some(after) = r.packets else {
            continue;
        };
        let before = detail
            .facts_start
            .firewall_rules
            .iter()
            .find(|s| {
                s.netns == r.netns && s.table == r.table && s.chain == r.chain && s.rule == r.rule
            })
            .and_then(|s| s.packets)
            .unwrap_or(0);
        let rise = after.saturating_sub(before);
        if rise > 0 {
            let subject = rule_key(r);
            out.entry(format!("rule {subject}"))
                .or_insert(Signal {
                    kind: DiffKind::Rule,
                    subject,
                    layer: Some(Layer::IptablesNetpolicy),
                    count: 0,
                })
                .count += rise;
        }
    }
}

/// Rules the document says matched in the window
/// (`rule matched in the window: SOURCE [NS] TABLE chain C…: `RULE` VERDICT (+N packets)`).
fn document_rule_signals(view: &DocumentView, out: &mut BTreeMap<String, Signal>) {
    for e in &view.evidence {
        let Some(text) = e.content.strip_prefix("rule matched in the window: ") else {
            continue;
        };
        let Some((rule, rest)) = text.rsplit_once(" (+") else {
            continue;
        };
        let Some(n) = rest
            .strip_suffix(" packets)")
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        // Drop the namespace label: `nftables [netns x] inet t chain …` → `nftables inet t chain …`.
        let subject = match (rule.find(" ["), rule.find("] ")) {
            (Some(a), Some(b)) if a < b => format!("{}{}", &rule[..a], &rule[b + 1..]),
            _ => rule.to_owned(),
        };
        out.entry(format!("rule {subject}"))
            .or_insert(Signal {
                kind: DiffKind::Rule,
                subject,
                layer: Some(Layer::IptablesNetpolicy),
                count: 0,
            })
            .count += n;
    }
}

fn loss_signals(input: &NodeInput, detailed: bool) -> BTreeMap<String, Signal> {
    let mut out = BTreeMap::new();
    drop_signals(&input.document, &mut out);
    match (&input.detail, detailed) {
        (Some(detail), true) => {
            recorded_counter_signals(detail, &mut out);
            recorded_rule_signals(detail, &mut out);
        }
        _ => {
            document_counter_signals(&input.document, &mut out);
            document_rule_signals(&input.document, &mut out);
        }
    }
    let r = &input.document.observations.retransmits;
    if r.segments_total + r.synack_total > 0 {
        out.insert(
            "retransmits".to_owned(),
            Signal {
                kind: DiffKind::Retransmits,
                subject: "retransmitted segments (traced)".to_owned(),
                layer: Some(Layer::Upstream),
                count: r.segments_total + r.synack_total,
            },
        );
    }
    out
}

/// Whether the runbook names this configuration for this root cause.
fn named_by_runbook(root_cause: &str, kind: DiffKind, subject: &str) -> bool {
    match root_cause {
        "nic_errors" => matches!(kind, DiffKind::Driver),
        "irq_imbalance" => {
            matches!(kind, DiffKind::Irqbalance | DiffKind::QueueSteering)
                || (kind == DiffKind::Sysctl
                    && matches!(
                        subject,
                        "net.core.netdev_max_backlog"
                            | "net.core.netdev_budget"
                            | "net.core.netdev_budget_usecs"
                    ))
        }
        "tcp_retransmissions" => {
            kind == DiffKind::Sysctl
                && matches!(
                    subject,
                    "net.ipv4.tcp_rmem"
                        | "net.ipv4.tcp_wmem"
                        | "net.core.somaxconn"
                        | "net.ipv4.tcp_max_syn_backlog"
                        | "net.ipv4.tcp_syncookies"
                        | "net.core.rmem_max"
                        | "net.core.wmem_max"
                )
        }
        "security_rule_drops" => {
            matches!(kind, DiffKind::Rule | DiffKind::PolicyEngine)
                || (kind == DiffKind::Sysctl && subject == "net.netfilter.nf_conntrack_max")
        }
        "route_issue" => {
            kind == DiffKind::Route
                || (kind == DiffKind::Sysctl && subject == "net.ipv4.ip_forward")
        }
        _ => false,
    }
}

/// A difference for each item on one side only: "present" where it is, `absent` where not.
fn presence_differences(
    a_view: &DocumentView,
    kind: DiffKind,
    affected: &BTreeSet<String>,
    healthy: &BTreeSet<String>,
    absent: &str,
) -> Vec<Difference> {
    let state = |set: &BTreeSet<String>, item: &String| {
        if set.contains(item) {
            "present"
        } else {
            absent
        }
        .to_owned()
    };
    affected
        .symmetric_difference(healthy)
        .map(|item| {
            config_difference(
                a_view,
                kind,
                item.clone(),
                state(affected, item),
                state(healthy, item),
            )
        })
        .collect()
}

fn config_difference(
    affected: &DocumentView,
    kind: DiffKind,
    subject: String,
    a: String,
    h: String,
) -> Difference {
    let named = affected.degraded() && named_by_runbook(&affected.root_cause, kind, &subject);
    let (score, why) = if named {
        (
            BAND_NAMED_CONFIG,
            format!(
                "the runbook names this {} for {}",
                kind.label(),
                affected.root_cause
            ),
        )
    } else {
        (
            BAND_CONTEXT,
            "configuration difference the runbook does not tie to this verdict".to_owned(),
        )
    };
    Difference {
        kind,
        subject,
        layer: None,
        affected: a,
        healthy: h,
        score,
        why,
    }
}

fn or_absent(v: Option<&String>) -> String {
    v.cloned().unwrap_or_else(|| "(absent)".to_owned())
}

/// Node facts both documents carry: sysctls, policy engines, irqbalance, rule count, bad routes,
/// kernel.
fn document_config_differences(
    a: &DocumentView,
    h: &DocumentView,
    rules_in_detail: bool,
    out: &mut Vec<Difference>,
) {
    let keys: BTreeSet<&String> = a.node.sysctls.keys().chain(h.node.sysctls.keys()).collect();
    for key in keys {
        let (va, vh) = (a.node.sysctls.get(key), h.node.sysctls.get(key));
        if va != vh {
            out.push(config_difference(
                a,
                DiffKind::Sysctl,
                key.clone(),
                or_absent(va),
                or_absent(vh),
            ));
        }
    }
    let (ea, eh): (BTreeSet<&String>, BTreeSet<&String>) = (
        a.node.policy_engines.iter().collect(),
        h.node.policy_engines.iter().collect(),
    );
    for engine in ea.symmetric_difference(&eh) {
        out.push(config_difference(
            a,
            DiffKind::PolicyEngine,
            (*engine).clone(),
            if ea.contains(engine) {
                "running"
            } else {
                "not running"
            }
            .to_owned(),
            if eh.contains(engine) {
                "running"
            } else {
                "not running"
            }
            .to_owned(),
        ));
    }
    if let (Some(ia), Some(ih)) = (a.node.irqbalance_running, h.node.irqbalance_running) {
        if ia != ih {
            let state = |b: bool| if b { "running" } else { "not running" }.to_owned();
            out.push(config_difference(
                a,
                DiffKind::Irqbalance,
                "irqbalance".to_owned(),
                state(ia),
                state(ih),
            ));
        }
    }
    if !rules_in_detail {
        if let (Some(ra), Some(rh)) = (a.node.drop_reject_rules, h.node.drop_reject_rules) {
            if ra != rh {
                out.push(config_difference(
                    a,
                    DiffKind::Rule,
                    "DROP/REJECT rules".to_owned(),
                    ra.to_string(),
                    rh.to_string(),
                ));
            }
        }
    }
    // Bad routes, without the namespace label (pods' namespaces differ between nodes).
    let strip = |r: &String| r.split(" in ").next().unwrap_or(r).to_owned();
    let ra: BTreeSet<String> = a
        .node
        .blackhole_or_unreachable_routes
        .iter()
        .map(strip)
        .collect();
    let rh: BTreeSet<String> = h
        .node
        .blackhole_or_unreachable_routes
        .iter()
        .map(strip)
        .collect();
    for route in ra.symmetric_difference(&rh) {
        out.push(config_difference(
            a,
            DiffKind::Route,
            route.clone(),
            if ra.contains(route) {
                "present"
            } else {
                "absent"
            }
            .to_owned(),
            if rh.contains(route) {
                "present"
            } else {
                "absent"
            }
            .to_owned(),
        ));
    }
    let (ka, kh) = (&a.observations.kernel, &h.observations.kernel);
    if !ka.is_empty() && !kh.is_empty() && ka != kh {
        out.push(config_difference(
            a,
            DiffKind::Kernel,
            "kernel release".to_owned(),
            ka.clone(),
            kh.clone(),
        ));
    }
}

/// Facts only recordings carry: drivers and versions, drop/reject rules one by one, default
/// routes, RPS/XPS steering.
fn recorded_config_differences(
    a_view: &DocumentView,
    a: &RecordedDetail,
    h: &RecordedDetail,
    out: &mut Vec<Difference>,
) {
    let drivers = |d: &RecordedDetail| -> BTreeMap<String, String> {
        d.counters_end
            .host()
            .map(|host| {
                host.interfaces
                    .iter()
                    .filter_map(|(name, c)| {
                        let driver = c.driver.as_ref()?;
                        Some((
                            name.clone(),
                            format!(
                                "{driver} {}",
                                c.driver_version.as_deref().unwrap_or("(version unknown)")
                            ),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (da, dh) = (drivers(a), drivers(h));
    for (iface, va) in &da {
        if let Some(vh) = dh.get(iface) {
            if va != vh {
                out.push(config_difference(
                    a_view,
                    DiffKind::Driver,
                    format!("{iface} driver"),
                    va.clone(),
                    vh.clone(),
                ));
            }
        }
    }
    let rules = |d: &RecordedDetail| -> BTreeSet<String> {
        d.facts_end.firewall_rules.iter().map(rule_key).collect()
    };
    let (ra, rh) = (rules(a), rules(h));
    out.extend(presence_differences(
        a_view,
        DiffKind::Rule,
        &ra,
        &rh,
        "absent",
    ));
    let defaults = |d: &RecordedDetail| -> BTreeSet<String> {
        d.facts_end
            .routes
            .iter()
            .filter(|r| r.netns_label == "host" && r.dst == "default" && r.kind == "unicast")
            .map(|r| format!("{} default route", r.family))
            .collect()
    };
    let (ga, gh) = (defaults(a), defaults(h));
    out.extend(presence_differences(
        a_view,
        DiffKind::Route,
        &ga,
        &gh,
        "missing",
    ));
    let steering = |d: &RecordedDetail, kind: &str| -> (usize, usize) {
        let masks: Vec<_> = d
            .facts_end
            .queue_masks
            .iter()
            .filter(|m| m.kind == kind)
            .collect();
        let on = masks
            .iter()
            .filter(|m| m.mask.chars().any(|c| c.is_ascii_hexdigit() && c != '0'))
            .count();
        (on, masks.len())
    };
    for kind in ["rps", "xps"] {
        let ((oa, na), (oh, nh)) = (steering(a, kind), steering(h, kind));
        if na > 0 && nh > 0 && (oa == 0) != (oh == 0) {
            out.push(config_difference(
                a_view,
                DiffKind::QueueSteering,
                format!("{} queues steered", kind.to_uppercase()),
                format!("{oa} of {na}"),
                format!("{oh} of {nh}"),
            ));
        }
    }
}

/// The busiest CPU's NET_RX share of the window.
fn hottest_net_rx(view: &DocumentView) -> Option<(u32, f64)> {
    view.observations
        .softirq
        .iter()
        .filter_map(|c| {
            c.vectors
                .iter()
                .find(|v| v.vector == "NET_RX")
                .map(|v| (c.cpu, v.share_of_window))
        })
        .max_by(|x, y| x.1.total_cmp(&y.1))
}

/// A share as a percentage; a small share is not shown as 0 %.
fn percent(share: f64) -> String {
    if share > 0.0 && share < 0.01 {
        "< 1 %".to_owned()
    } else {
        format!("{:.0} %", share * 100.0)
    }
}

fn per_second(count: f64, seconds: f64) -> String {
    format!("{:.1}/s", count / seconds)
}

fn value_text(count: u64, seconds: f64) -> String {
    format!("{count} ({})", per_second(count as f64, seconds))
}

/// Compares the affected node with the healthy one. Differences are ranked by a score in 0–1:
///
/// - loss in the affected node's failure layer (drops by reason, counters, rules matched):
///   0.5–1, by its share of that layer's excess loss;
/// - a configuration the runbook names for the affected root cause (driver version for NIC
///   errors, `somaxconn`/`tcp_rmem` for TCP, irqbalance/RPS for IRQ, rules and policy engines
///   for security drops, routes for routing): 0.45;
/// - loss in any other layer: 0.1–0.4 by its share of all excess loss;
/// - other configuration (kernel, unrelated sysctls): 0.05.
///
/// Loss scores are multiplied by how much of the affected count the healthy node does not share
/// (`(affected − healthy) / affected`, the healthy count scaled to the affected window): what
/// both nodes show explains little and sinks to the bottom; what the healthy node shows more of
/// scores 0.
pub fn compare(affected: &NodeInput, healthy: &NodeInput) -> NodeDiff {
    let (a, h) = (&affected.document, &healthy.document);
    let detailed = affected.detail.is_some() && healthy.detail.is_some();
    let (sa, sh) = (a.seconds(), h.seconds());
    let scale = sa / sh;
    let mut notes = Vec::new();
    if !detailed {
        notes.push(
            "driver versions, each rule and default routes are compared only between two recordings (tracer record); with a report on either side, counters come from the verdict's signals".to_owned(),
        );
    }
    if (sa - sh).abs() > 0.5 {
        notes.push(format!(
            "windows differ ({sa:.0} s and {sh:.0} s): the healthy node's counts are scaled to the affected window when scored"
        ));
    }
    if !a.degraded() && h.degraded() {
        notes.push(format!(
            "{} has no root cause but {} has {} — were the arguments swapped? (AFFECTED comes first)",
            affected.name, healthy.name, h.root_cause
        ));
    }
    let failure_layer = layer_named(&a.failure_layer).filter(|_| a.degraded());

    let sig_a = loss_signals(affected, detailed);
    let sig_h = loss_signals(healthy, detailed);
    // Denominators: the excess loss of the failure layer and of all layers (layer scores take
    // the larger of probes and counters for the same packets, so they do not double count).
    let excess = |name: &str| -> f64 {
        let la = a.layer_scores.get(name).map_or(0, |s| s.lost_packets) as f64;
        let lh = h.layer_scores.get(name).map_or(0, |s| s.lost_packets) as f64 * scale;
        (la - lh).max(0.0)
    };
    let layer_excess = failure_layer.map_or(0.0, |l| excess(l.as_str()));
    let total_excess: f64 = Layer::ALL.iter().map(|l| excess(l.as_str())).sum();

    let mut differences = Vec::new();
    let keys: BTreeSet<&String> = sig_a.keys().chain(sig_h.keys()).collect();
    for key in keys {
        let (sa_sig, sh_sig) = (sig_a.get(key), sig_h.get(key));
        let Some(meta) = sa_sig.or(sh_sig) else {
            continue;
        };
        let ca = sa_sig.map_or(0, |s| s.count);
        let ch = sh_sig.map_or(0, |s| s.count);
        let ca_f = ca as f64;
        let ch_scaled = ch as f64 * scale;
        if ca == 0 && ch == 0 {
            continue;
        }
        let rate_a = ca_f / sa;
        let rate_h = ch as f64 / sh;
        // Equal rates (within 5 %) do not differ.
        if (rate_a - rate_h).abs() <= 0.05 * rate_a.max(rate_h) {
            continue;
        }
        let extra = ca_f - ch_scaled;
        let (score, why) = if extra <= 0.0 {
            (
                0.0,
                "the healthy node shows as much or more: it does not explain the affected node"
                    .to_owned(),
            )
        } else {
            let contrast = extra / ca_f;
            let shared = if ch > 0 {
                format!(
                    "; the healthy node shows {:.0} % of it",
                    100.0 * ch_scaled / ca_f
                )
            } else {
                String::new()
            };
            match meta.layer {
                Some(layer) if Some(layer) == failure_layer => {
                    let share = (extra / layer_excess.max(extra)).min(1.0);
                    (
                        (BAND_FAILURE_LAYER + 0.5 * share) * contrast,
                        format!(
                            "loss in the affected node's failure layer ({}): {} of its excess{shared}",
                            layer.as_str(),
                            percent(share)
                        ),
                    )
                }
                Some(layer) => {
                    let share = (extra / total_excess.max(extra)).min(1.0);
                    (
                        (BAND_OTHER_LOSS + BAND_OTHER_LOSS_SPAN * share) * contrast,
                        format!(
                            "loss in layer {} (not the failure layer): {} of all excess loss{shared}",
                            layer.as_str(),
                            percent(share)
                        ),
                    )
                }
                None => (
                    BAND_CONTEXT * contrast,
                    "drops the verdict does not count as loss (noise, no listener, other)"
                        .to_owned(),
                ),
            }
        };
        differences.push(Difference {
            kind: meta.kind,
            subject: meta.subject.clone(),
            layer: meta.layer,
            affected: value_text(ca, sa),
            healthy: value_text(ch, sh),
            score,
            why,
        });
    }

    // NET_RX concentration: IRQ/CPU evidence even without loss.
    if let (Some((cpu_a, share_a)), Some((cpu_h, share_h))) = (hottest_net_rx(a), hottest_net_rx(h))
    {
        if share_a - share_h >= 0.1 || share_h - share_a >= 0.1 {
            let contrast = ((share_a - share_h) / share_a.max(f64::EPSILON)).max(0.0);
            let in_layer = failure_layer == Some(Layer::IrqCpu);
            let score = if share_a <= share_h {
                0.0
            } else if in_layer {
                (BAND_FAILURE_LAYER + 0.5 * share_a.min(1.0)) * contrast
            } else {
                BAND_OTHER_LOSS * contrast
            };
            differences.push(Difference {
                kind: DiffKind::Softirq,
                subject: "busiest CPU's NET_RX share of the window".to_owned(),
                layer: Some(Layer::IrqCpu),
                affected: format!("CPU {cpu_a}: {:.0} %", share_a * 100.0),
                healthy: format!("CPU {cpu_h}: {:.0} %", share_h * 100.0),
                score,
                why: if in_layer {
                    "softirq saturation is the affected node's failure layer".to_owned()
                } else {
                    "softirq pressure outside the failure layer".to_owned()
                },
            });
        }
    }

    document_config_differences(a, h, detailed, &mut differences);
    if let (Some(da), Some(dh), true) = (&affected.detail, &healthy.detail, detailed) {
        recorded_config_differences(a, da, dh, &mut differences);
    }

    differences.sort_by(|x, y| {
        y.score
            .total_cmp(&x.score)
            .then(x.kind.cmp(&y.kind))
            .then(x.subject.cmp(&y.subject))
    });
    if a.degraded() && !differences.iter().any(|d| d.score >= BAND_FAILURE_LAYER) {
        notes.push(format!(
            "no loss in {}'s failure layer ({}) that {} lacks: the healthy node shows the same problem — compare more nodes (tracer cluster) before blaming this one",
            affected.name, a.failure_layer, healthy.name
        ));
    }
    NodeDiff {
        affected: side(affected),
        healthy: side(healthy),
        differences,
        notes,
    }
}

fn side(input: &NodeInput) -> SideSummary {
    let d = &input.document;
    SideSummary {
        name: input.name.clone(),
        input: if input.detail.is_some() {
            "recording"
        } else {
            "report"
        }
        .to_owned(),
        root_cause: d.root_cause.clone(),
        failure_layer: d.failure_layer.clone(),
        severity: d.severity.clone(),
        confidence: d.confidence,
        window_s: d.observations.window.duration_s,
        lost_packets: d.lost_packets(),
        kernel: d.observations.kernel.clone(),
    }
}

impl NodeDiff {
    /// 1 when the affected node is degraded, 0 when not (like `report`).
    pub fn exit_code(&self) -> u8 {
        if self.affected.root_cause == "none" {
            EXIT_HEALTHY
        } else {
            EXIT_DEGRADED
        }
    }

    /// For a person at a terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (role, s) in [("AFFECTED", &self.affected), ("HEALTHY ", &self.healthy)] {
            let _ = writeln!(
                out,
                "{role}  {}  ({}, {:.0} s): {} in layer {}, {} packets lost, confidence {:.2}",
                s.name,
                s.input,
                s.window_s,
                s.root_cause,
                s.failure_layer,
                s.lost_packets,
                s.confidence
            );
        }
        let (explaining, rest): (Vec<&Difference>, Vec<&Difference>) =
            self.differences.iter().partition(|d| d.score > 0.0);
        if self.differences.is_empty() {
            let _ = writeln!(out, "\nNo difference found.");
        }
        let mut table = |title: &str, rows: &[&Difference]| {
            if rows.is_empty() {
                return;
            }
            let _ = writeln!(out, "\n{title}");
            for d in rows {
                let _ = writeln!(
                    out,
                    "  {:.2}  {:<13} {}",
                    d.score,
                    d.kind.label(),
                    d.subject
                );
                let _ = writeln!(
                    out,
                    "        affected {}   healthy {}",
                    d.affected, d.healthy
                );
                let _ = writeln!(out, "        {}", d.why);
            }
        };
        table("Differences, most explaining first", &explaining);
        table("Differences that do not explain the affected node", &rest);
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::{
        judge::report::{Report, WindowInfo},
        judge::verdict::{decide, WindowEvidence},
        node::counters::CounterSource,
        node::facts::FactsSource,
    };

    const NETFILTER: &str = include_str!("../../../tests/fixtures/reports/netfilter-drops.json");
    const HEALTHY: &str = include_str!("../../../tests/fixtures/reports/healthy.json");
    const NETFILTER_REC: &str =
        include_str!("../../../tests/fixtures/reports/netfilter-drops.rec.json");
    const HEALTHY_REC: &str = include_str!("../../../tests/fixtures/reports/healthy.rec.json");

    fn input(name: &str, text: &str) -> NodeInput {
        NodeInput::parse(name, text).expect("fixture input")
    }

    fn kinds_and_scores(d: &NodeDiff) -> Vec<(DiffKind, String, f64)> {
        d.differences
            .iter()
            .map(|x| (x.kind, x.subject.clone(), (x.score * 100.0).round() / 100.0))
            .collect()
    }

    /// A node judged from a recorded counter tree (as tests/scenarios.rs does), with its detail.
    fn tree_input(name: &str, start: &str, end: &str) -> NodeInput {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/nodes");
        let counters_start = CounterSource::fixture(&root.join(start)).sample(0);
        let counters_end = CounterSource::fixture(&root.join(end)).sample(30_000);
        let facts = FactsSource::fixture(&root.join(end)).collect();
        let evidence = WindowEvidence {
            observed: Report {
                tracer_version: "fixture",
                kernel: "recorded".to_owned(),
                window: WindowInfo {
                    duration_s: 30.0,
                    startup_ms: 0.0,
                    netns: None,
                },
                probes: vec![],
                drops: Default::default(),
                retransmits: Default::default(),
                softirq: vec![],
                flows: Default::default(),
                tracer_counters: Default::default(),
                tracer_cost: Default::default(),
                notes: vec![],
            },
            counters_start: counters_start.clone(),
            counters_end: counters_end.clone(),
            facts_start: facts.clone(),
            facts_end: facts.clone(),
            ticks: vec![],
            started_unix_ms: None,
        };
        let document = VerdictDocument::new(decide(&evidence), evidence.observed, &facts, vec![]);
        NodeInput {
            name: name.to_owned(),
            document: DocumentView::of(&document).expect("view"),
            detail: Some(RecordedDetail {
                counters_start,
                counters_end,
                facts_start: facts.clone(),
                facts_end: facts,
            }),
        }
    }

    #[test]
    fn recorded_netfilter_report_ranks_its_drops_then_the_rule_then_the_rule_count() {
        let d = compare(&input("a", NETFILTER), &input("h", HEALTHY));
        assert_eq!(
            kinds_and_scores(&d),
            [
                (DiffKind::DropReason, "NETFILTER_DROP at nft_do_chain".to_owned(), 1.0),
                (
                    DiffKind::Rule,
                    "nftables inet trcfix chain input (hook input): `udp dport 7777 counter drop` drop"
                        .to_owned(),
                    1.0
                ),
                (DiffKind::Rule, "DROP/REJECT rules".to_owned(), 0.45),
                // The healthy node's drops to a closed port explain nothing about the affected one.
                (DiffKind::DropReason, "NO_SOCKET at __udp4_lib_rcv".to_owned(), 0.0),
            ]
        );
        assert_eq!(d.differences[0].affected, "1460 (486.5/s)");
        assert_eq!(d.differences[0].healthy, "0 (0.0/s)");
        assert_eq!(d.differences[0].layer, Some(Layer::IptablesNetpolicy));
        assert_eq!(d.exit_code(), EXIT_DEGRADED);
        assert_eq!(d.affected.lost_packets, 1460);
    }

    #[test]
    fn recordings_add_the_rule_itself_and_judge_like_a_replay() {
        let d = compare(&input("a.rec", NETFILTER_REC), &input("h.rec", HEALTHY_REC));
        assert_eq!(d.affected.input, "recording");
        assert_eq!(d.affected.root_cause, "security_rule_drops");
        assert_eq!(d.healthy.root_cause, "none");
        let top: Vec<_> = kinds_and_scores(&d).into_iter().take(3).collect();
        let rule =
            "nftables inet trcfix chain input: `udp dport 7777 counter drop` drop".to_owned();
        assert_eq!(
            top,
            [
                (
                    DiffKind::DropReason,
                    "NETFILTER_DROP at nft_do_chain".to_owned(),
                    1.0
                ),
                (DiffKind::Rule, rule.clone(), 1.0),
                (DiffKind::Rule, rule, 0.45),
            ]
        );
        assert_eq!(d.differences[2].affected, "present");
        assert_eq!(d.differences[2].healthy, "absent");
        assert!(d.notes.is_empty(), "{:?}", d.notes);
    }

    #[test]
    fn nic_errors_rank_the_nic_counters_first_then_the_driver_version() {
        let affected = tree_input("ena", "ena-errors", "ena-errors-later");
        let mut healthy = tree_input("ct", "conntrack-full", "conntrack-full-later");
        assert_eq!(affected.document.root_cause, "nic_errors");
        // The same recorded node with a newer driver: the runbook's "ENA < 2.8" check.
        if let Some(detail) = healthy.detail.as_mut() {
            for ns in &mut detail.counters_end.netns {
                if let Some(eth0) = ns.interfaces.get_mut("eth0") {
                    eth0.driver_version = Some("2.13.0".to_owned());
                }
            }
        }
        let d = compare(&affected, &healthy);
        eprintln!("{}", d.text());
        let first_not_nic = d
            .differences
            .iter()
            .position(|x| x.layer != Some(Layer::NicDriver))
            .expect("a non-NIC difference");
        assert!(first_not_nic >= 1, "{}", d.text());
        assert!(d.differences[..first_not_nic]
            .iter()
            .all(|x| x.score >= BAND_FAILURE_LAYER && x.kind == DiffKind::Counter));
        let crc = d
            .differences
            .iter()
            .find(|x| x.subject == "eth0 rx_crc_errors")
            .expect("rx_crc_errors compared");
        assert_eq!(crc.affected, "12 (0.4/s)");
        let driver = &d.differences[first_not_nic];
        assert_eq!(
            (driver.kind, driver.subject.as_str(), driver.score),
            (DiffKind::Driver, "eth0 driver", BAND_NAMED_CONFIG)
        );
        assert_eq!(driver.affected, "ena 2.7.1g");
        assert_eq!(driver.healthy, "ena 2.13.0");
    }

    #[test]
    fn reports_of_recorded_trees_compare_counters_from_the_verdicts_signals() {
        let mut a = tree_input("ena", "ena-errors", "ena-errors-later");
        let mut h = tree_input("ct", "conntrack-full", "conntrack-full-later");
        a.detail = None;
        h.detail = None;
        let d = compare(&a, &h);
        let top = &d.differences[0];
        assert_eq!(top.kind, DiffKind::Counter, "{}", d.text());
        assert_eq!(top.layer, Some(Layer::NicDriver));
        assert!(top.score >= BAND_FAILURE_LAYER, "{}", d.text());
        assert!(d.notes[0].contains("only between two recordings"));
    }

    #[test]
    fn loss_both_nodes_share_sinks_and_says_so() {
        let a = input("a", NETFILTER);
        let mut h = input("h", NETFILTER);
        // The "healthy" node drops 1200 of the same packets in the same 3 s (its rule matched
        // as often: the evidence line is the affected node's).
        h.document.observations.drops.by_reason[0].locations[0].count = 1200;
        if let Some(score) = h.document.layer_scores.get_mut("iptables_netpolicy") {
            score.lost_packets = 1200;
        }
        let d = compare(&a, &h);
        let top = &d.differences[0];
        assert_eq!(top.subject, "NETFILTER_DROP at nft_do_chain");
        // (0.5 + 0.5 × 1) × 260 / 1460: explains 18 %, below every configuration difference.
        assert!((top.score - 260.0 / 1460.0).abs() < 1e-9, "{}", top.score);
        assert!(
            top.why.contains("the healthy node shows 82 % of it"),
            "{}",
            top.why
        );
        assert!(
            d.notes.iter().any(|n| n.contains("shows the same problem")),
            "{:?}",
            d.notes
        );
    }

    #[test]
    fn swapped_arguments_are_noticed_and_explain_nothing() {
        let d = compare(&input("h", HEALTHY), &input("a", NETFILTER));
        assert_eq!(d.exit_code(), EXIT_HEALTHY);
        assert!(
            d.notes.iter().any(|n| n.contains("swapped")),
            "{:?}",
            d.notes
        );
        let nf = d
            .differences
            .iter()
            .find(|x| x.subject == "NETFILTER_DROP at nft_do_chain")
            .expect("compared");
        assert_eq!(nf.score, 0.0);
    }

    #[test]
    fn healthy_counts_are_scaled_to_the_affected_window() {
        let a = input("a", NETFILTER);
        let mut h = input("h", NETFILTER);
        // Twice the window, twice the drops: the same rate, no difference.
        h.document.observations.window.duration_s *= 2.0;
        h.document.observations.drops.by_reason[0].locations[0].count *= 2;
        h.document.observations.drops.by_reason[0].count *= 2;
        let d = compare(&a, &h);
        assert!(
            !d.differences
                .iter()
                .any(|x| x.subject == "NETFILTER_DROP at nft_do_chain"),
            "{}",
            d.text()
        );
        assert!(d.notes.iter().any(|n| n.contains("windows differ")));
    }

    #[test]
    fn counter_signals_parse_as_the_verdict_writes_them() {
        assert_eq!(
            parse_counter_signal("host TcpExt:ListenOverflows: 5 → 85 (+80)"),
            Some(("TcpExt:ListenOverflows".to_owned(), 80))
        );
        assert_eq!(
            parse_counter_signal("eth0 rx_crc_errors: 17 → 29 (+12)"),
            Some(("eth0 rx_crc_errors".to_owned(), 12))
        );
        assert_eq!(
            parse_counter_signal("pid 42 (app) conntrack drop: 1 → 5 (+4)"),
            Some(("conntrack drop".to_owned(), 4))
        );
        assert_eq!(
            parse_counter_signal("softnet_stat dropped +7"),
            Some(("softnet dropped".to_owned(), 7))
        );
        assert_eq!(
            parse_counter_signal("1460 NETFILTER_DROP drops at nft_do_chain+0x3e8 (netfilter)"),
            None
        );
    }

    #[test]
    fn documents_read_back_tolerantly_and_non_documents_are_refused() {
        let json = DocumentView::parse(NETFILTER).expect("json");
        let value: serde_json::Value = serde_json::from_str(NETFILTER).expect("value");
        let yaml = serde_yaml::to_string(&value).expect("yaml");
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
