//! The counter changes the rules read between two samples (`CounterSignals`): NIC errors,
//! ENA allowances, qdisc and softnet drops, the SNMP groups by meaning, conntrack drops, TCP
//! segments. It reads and groups; which layer a change blames is not decided here.
//!
//! A rolling window judged every second compares the same two readings of most namespaces
//! again and again (an idle namespace is read once a minute, so its readings at the window's
//! ends stay the same allocations for many seconds): [`SignalsMemo`] keeps each namespace's
//! signals for the pair of readings they came from, and [`counter_signals_with`] computes a
//! namespace again only when either reading changed. The result is the same as without it.

use std::{collections::HashMap, sync::Mutex};

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

impl CounterSignals {
    /// Adds `part` (one namespace's signals) to these, as if its namespace had been read into
    /// them in place: its deltas appended in order, its totals added.
    fn add(&mut self, part: &CounterSignals) {
        let CounterSignals {
            nic_errors,
            crc_errors,
            allowance_exceeded,
            qdisc_drops,
            softnet_dropped,
            time_squeeze,
            listen,
            tcp_other,
            routing,
            mtu,
            conntrack_drops,
            retrans_segs,
            out_segs,
            lost_retransmit,
            timeouts,
            dsack_segs,
        } = part;
        self.nic_errors.extend_from_slice(nic_errors);
        self.crc_errors.extend_from_slice(crc_errors);
        self.allowance_exceeded
            .extend_from_slice(allowance_exceeded);
        self.qdisc_drops.extend_from_slice(qdisc_drops);
        self.softnet_dropped = self.softnet_dropped.saturating_add(*softnet_dropped);
        self.time_squeeze = self.time_squeeze.saturating_add(*time_squeeze);
        self.listen.extend_from_slice(listen);
        self.tcp_other.extend_from_slice(tcp_other);
        self.routing.extend_from_slice(routing);
        self.mtu.extend_from_slice(mtu);
        self.conntrack_drops.extend_from_slice(conntrack_drops);
        self.retrans_segs += retrans_segs;
        self.out_segs += out_segs;
        self.lost_retransmit += lost_retransmit;
        self.timeouts += timeouts;
        self.dsack_segs += dsack_segs;
    }
}

/// Judgings an unused entry of [`SignalsMemo`] is kept for (a rolling window judges a few
/// scopes a second; a namespace gone, or left out of every scope judged, is forgotten after).
const MEMO_KEPT_FOR: u64 = 64;

/// Each namespace's signals between the two readings they came from, kept across judgings
/// (module docs). Holds the readings themselves, so a pointer compare is never fooled by an
/// allocation freed and reused.
#[derive(Debug, Default)]
pub struct SignalsMemo {
    inner: Mutex<MemoInner>,
}

#[derive(Debug, Default)]
struct MemoInner {
    /// Judgings so far ([`counter_signals_with`] calls).
    round: u64,
    /// Namespaces whose signals were computed (not reused), for tests.
    computed: u64,
    by_inode: HashMap<u32, MemoEntry>,
}

#[derive(Debug)]
struct MemoEntry {
    start: Shared<NetnsCounters>,
    end: Shared<NetnsCounters>,
    signals: CounterSignals,
    used: u64,
}

impl SignalsMemo {
    /// Namespaces whose signals were computed rather than reused, since the memo was made.
    pub fn computed(&self) -> u64 {
        self.inner.lock().map_or(0, |m| m.computed)
    }

    /// Namespaces kept.
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |m| m.by_inode.len())
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MemoInner {
    /// One namespace's signals between `ns_start` and `ns_end`, reused when both are the
    /// readings it was computed from.
    fn signals_of(
        &mut self,
        ns_start: &Shared<NetnsCounters>,
        ns_end: &Shared<NetnsCounters>,
    ) -> &CounterSignals {
        let round = self.round;
        let entry = self.by_inode.entry(ns_end.inode);
        let entry = match entry {
            std::collections::hash_map::Entry::Occupied(mut kept) => {
                let e = kept.get_mut();
                if !Shared::same(&e.start, ns_start) || !Shared::same(&e.end, ns_end) {
                    let mut signals = CounterSignals::default();
                    namespace_signals(ns_start, ns_end, &mut signals);
                    self.computed += 1;
                    *e = MemoEntry {
                        start: ns_start.clone(),
                        end: ns_end.clone(),
                        signals,
                        used: round,
                    };
                }
                kept.into_mut()
            }
            std::collections::hash_map::Entry::Vacant(new) => {
                let mut signals = CounterSignals::default();
                namespace_signals(ns_start, ns_end, &mut signals);
                self.computed += 1;
                new.insert(MemoEntry {
                    start: ns_start.clone(),
                    end: ns_end.clone(),
                    signals,
                    used: round,
                })
            }
        };
        entry.used = round;
        &entry.signals
    }
}

/// Reads the counter changes between two samples.
pub fn counter_signals(start: &CounterSample, end: &CounterSample) -> CounterSignals {
    counter_signals_with(start, end, None)
}

/// [`counter_signals`], reusing what `memo` kept of each namespace whose two readings are the
/// ones it was computed from (module docs); the same result.
pub fn counter_signals_with(
    start: &CounterSample,
    end: &CounterSample,
    memo: Option<&SignalsMemo>,
) -> CounterSignals {
    let mut memo = memo.and_then(|m| m.inner.lock().ok());
    if let Some(m) = memo.as_mut() {
        m.round += 1;
    }
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
            Some(ns_start) if !Shared::same(ns_start, ns_end) => match memo.as_mut() {
                Some(m) => s.add(m.signals_of(ns_start, ns_end)),
                None => namespace_signals(ns_start, ns_end, &mut s),
            },
            _ => {}
        }
    }
    if let Some(m) = memo.as_mut() {
        let round = m.round;
        m.by_inode
            .retain(|_, e| round.saturating_sub(e.used) < MEMO_KEPT_FOR);
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
