//! Loss-like quantities of one node, by key, so both nodes can be compared: drops by reason and
//! function, counter changes (from a recording's raw counters, or from the verdict's signals),
//! packets matched by drop/reject rules, traced retransmissions. Uses the judge's drop
//! classification and the node's counter samples.

use std::collections::BTreeMap;

use super::{difference::DiffKind, input::NodeInput, input::RecordedDetail, view::DocumentView};
use crate::judge::layers::{classify, location_function, DropClass, Layer};

/// A loss-like quantity of one node, by key.
#[derive(Debug, Clone)]
pub(super) struct Signal {
    pub(super) kind: DiffKind,
    pub(super) subject: String,
    pub(super) layer: Option<Layer>,
    pub(super) count: u64,
}

pub(super) fn layer_named(name: &str) -> Option<Layer> {
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
pub(super) fn rule_key(r: &crate::node::evidence::FirewallRule) -> String {
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

pub(super) fn loss_signals(input: &NodeInput, detailed: bool) -> BTreeMap<String, Signal> {
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

#[cfg(test)]
mod tests {
    use super::parse_counter_signal;

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
}
