//! The counter changes the rules read between two samples (`CounterSignals`): NIC errors,
//! ENA allowances, qdisc and softnet drops, the SNMP groups by meaning, conntrack drops, TCP
//! segments. It reads and groups; which layer a change blames is not decided here.

use crate::node::{
    evidence::{CounterSample, NetnsCounters},
    shared::Shared,
};

use super::change::{delta, delta_i, CounterDelta};

/// The counter changes the rules read, between two samples (namespaces and interfaces present
/// in both only).
#[derive(Debug, Clone, Default)]
pub struct CounterSignals {
    pub nic_errors: Vec<CounterDelta>,
    pub crc_errors: Vec<CounterDelta>,
    pub allowance_exceeded: Vec<CounterDelta>,
    /// Qdisc drops of every interface in every namespace (egress queue full or policed).
    pub qdisc_drops: Vec<CounterDelta>,
    pub softnet_dropped: u64,
    pub time_squeeze: u64,
    pub listen: Vec<CounterDelta>,
    pub tcp_other: Vec<CounterDelta>,
    pub routing: Vec<CounterDelta>,
    pub mtu: Vec<CounterDelta>,
    pub conntrack_drops: Vec<CounterDelta>,
    pub retrans_segs: u64,
    pub out_segs: u64,
    pub lost_retransmit: u64,
    pub timeouts: u64,
    /// Retransmitted segments the receivers reported as duplicates (DSACK): spurious
    /// retransmissions (reordering, early timers), not loss.
    pub dsack_segs: u64,
}

/// SNMP counters by meaning: listen-queue loss, other TCP receive loss, routing, MTU.
const LISTEN: &[(&str, &str)] = &[
    ("TcpExt", "ListenDrops"),
    ("TcpExt", "ListenOverflows"),
    ("TcpExt", "TCPReqQFullDrop"),
];
const TCP_OTHER: &[(&str, &str)] = &[
    ("TcpExt", "TCPBacklogDrop"),
    ("TcpExt", "TCPRcvQDrop"),
    ("TcpExt", "TCPZeroWindowDrop"),
    ("Udp", "RcvbufErrors"),
];
const ROUTING: &[(&str, &str)] = &[
    ("IpExt", "InNoRoutes"),
    ("Ip", "OutNoRoutes"),
    ("Ip", "InAddrErrors"),
];
const MTU: &[(&str, &str)] = &[
    ("Ip", "FragFails"),
    ("Ip", "ReasmFails"),
    ("TcpExt", "TCPMTUPFail"),
];

/// The SNMP counters of `names` that rose in one namespace, as deltas.
fn snmp_deltas(
    ns_start: &NetnsCounters,
    ns_end: &NetnsCounters,
    names: &[(&str, &str)],
    out: &mut Vec<CounterDelta>,
) {
    for (group, name) in names {
        let (a, b) = (ns_start.get(group, name), ns_end.get(group, name));
        if delta_i(a, b) > 0 {
            out.push(CounterDelta {
                name: format!("{group}:{name}"),
                place: ns_end.label.clone(),
                start: u64::try_from(a).unwrap_or(0),
                end: u64::try_from(b).unwrap_or(0),
            });
        }
    }
}

/// Reads the counter changes between two samples.
pub fn counter_signals(start: &CounterSample, end: &CounterSample) -> CounterSignals {
    let mut s = CounterSignals::default();
    host_signals(start, end, &mut s);
    for row in &end.softnet {
        if let Some(r0) = start.softnet.iter().find(|r| r.cpu == row.cpu) {
            s.softnet_dropped = s
                .softnet_dropped
                .saturating_add(delta(r0.dropped, row.dropped));
            s.time_squeeze = s
                .time_squeeze
                .saturating_add(delta(r0.time_squeeze, row.time_squeeze));
        }
    }
    // A namespace whose reading both samples share did not change: nothing to read there.
    for (ns_start, ns_end) in end.paired_with(start) {
        match ns_start {
            Some(ns_start) if !Shared::same(ns_start, ns_end) => {
                namespace_signals(ns_start, ns_end, &mut s);
            }
            _ => {}
        }
    }
    s
}

/// Qdisc drops of every interface of one namespace.
fn qdisc_signals(ns_start: &NetnsCounters, ns_end: &NetnsCounters, s: &mut CounterSignals) {
    for (name, if1) in &ns_end.interfaces {
        let (Some(q1), Some(q0)) = (
            &if1.qdisc,
            ns_start.interfaces.get(name).and_then(|i| i.qdisc.as_ref()),
        ) else {
            continue;
        };
        if delta(q0.drops, q1.drops) > 0 {
            s.qdisc_drops.push(CounterDelta {
                name: format!("qdisc {} drops", q1.kind),
                place: format!("{} {name}", ns_end.label),
                start: q0.drops,
                end: q1.drops,
            });
        }
    }
}

/// The changes of one namespace present in both samples: qdiscs, the SNMP groups, conntrack,
/// TCP segments.
fn namespace_signals(ns_start: &NetnsCounters, ns_end: &NetnsCounters, s: &mut CounterSignals) {
    qdisc_signals(ns_start, ns_end, s);
    // Equal groups (compared as values, the names shared) changed nowhere.
    if ns_start.snmp != ns_end.snmp {
        snmp_deltas(ns_start, ns_end, LISTEN, &mut s.listen);
        snmp_deltas(ns_start, ns_end, TCP_OTHER, &mut s.tcp_other);
        snmp_deltas(ns_start, ns_end, ROUTING, &mut s.routing);
        snmp_deltas(ns_start, ns_end, MTU, &mut s.mtu);
        tcp_segments(ns_start, ns_end, s);
    }
    if let (Some(c0), Some(c1)) = (&ns_start.conntrack, &ns_end.conntrack) {
        for stat in ["drop", "early_drop", "insert_failed"] {
            let (a, b) = (
                c0.stats.get(stat).copied().unwrap_or(0),
                c1.stats.get(stat).copied().unwrap_or(0),
            );
            if delta(a, b) > 0 {
                s.conntrack_drops.push(CounterDelta {
                    name: format!("conntrack {stat}"),
                    place: ns_end.label.clone(),
                    start: a,
                    end: b,
                });
            }
        }
    }
}

/// Retransmitted, sent, lost-retransmit, timed-out and DSACKed segments of one namespace.
fn tcp_segments(ns_start: &NetnsCounters, ns_end: &NetnsCounters, s: &mut CounterSignals) {
    let rose =
        |group: &str, name: &str| delta_i(ns_start.get(group, name), ns_end.get(group, name));
    s.retrans_segs += rose("Tcp", "RetransSegs");
    s.out_segs += rose("Tcp", "OutSegs");
    s.lost_retransmit += rose("TcpExt", "TCPLostRetransmit");
    s.timeouts += rose("TcpExt", "TCPTimeouts");
    // Segments where the kernel has the counter (4.19+), else DSACK events.
    let dsack = if ns_end
        .snmp
        .get("TcpExt")
        .is_some_and(|g| g.contains_key("TCPDSACKRecvSegs"))
    {
        "TCPDSACKRecvSegs"
    } else {
        "TCPDSACKRecv"
    };
    s.dsack_segs += rose("TcpExt", dsack);
}

/// NIC errors and ENA allowances of the host's interfaces (`lo` aside).
fn host_signals(start: &CounterSample, end: &CounterSample, s: &mut CounterSignals) {
    if let (Some(h0), Some(h1)) = (start.host(), end.host()) {
        for (name, if1) in &h1.interfaces {
            if name == "lo" {
                continue;
            }
            let Some(if0) = h0.interfaces.get(name) else {
                continue;
            };
            for stat in [
                "rx_errors",
                "tx_errors",
                "rx_missed_errors",
                "rx_crc_errors",
            ] {
                let (a, b) = (
                    if0.stats.get(stat).copied().unwrap_or(0),
                    if1.stats.get(stat).copied().unwrap_or(0),
                );
                if delta(a, b) > 0 {
                    let d = CounterDelta {
                        name: stat.to_owned(),
                        place: name.clone(),
                        start: a,
                        end: b,
                    };
                    if stat == "rx_crc_errors" {
                        s.crc_errors.push(d);
                    } else {
                        s.nic_errors.push(d);
                    }
                }
            }
            for (stat, b) in &if1.ethtool {
                if stat.ends_with("_allowance_exceeded") {
                    let a = if0.ethtool.get(stat).copied().unwrap_or(*b);
                    if delta(a, *b) > 0 {
                        s.allowance_exceeded.push(CounterDelta {
                            name: stat.to_owned(),
                            place: name.clone(),
                            start: a,
                            end: *b,
                        });
                    }
                }
            }
        }
    }
}
