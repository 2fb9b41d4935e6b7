//! What broke the counters' continuity between consecutive samples (resets, wraps, jumps,
//! interfaces and namespaces that came or went), as notes. Says so; never changes a count.

use crate::node::{
    evidence::{CounterSample, NetnsCounters},
    shared::Shared,
};

use super::change::CounterChange;

/// SNMP counters the verdict reads (the others include gauges such as `Tcp CurrEstab`).
const SNMP_READ: [(&str, &str); 20] = [
    ("TcpExt", "ListenDrops"),
    ("TcpExt", "ListenOverflows"),
    ("TcpExt", "TCPReqQFullDrop"),
    ("TcpExt", "TCPBacklogDrop"),
    ("TcpExt", "TCPRcvQDrop"),
    ("TcpExt", "TCPZeroWindowDrop"),
    ("Udp", "RcvbufErrors"),
    ("IpExt", "InNoRoutes"),
    ("Ip", "OutNoRoutes"),
    ("Ip", "InAddrErrors"),
    ("Ip", "FragFails"),
    ("Ip", "ReasmFails"),
    ("TcpExt", "TCPMTUPFail"),
    ("Tcp", "RetransSegs"),
    ("Tcp", "OutSegs"),
    ("TcpExt", "TCPLostRetransmit"),
    ("TcpExt", "TCPTimeouts"),
    ("TcpExt", "TCPDSACKRecvSegs"),
    ("TcpExt", "TCPDSACKRecv"),
    ("Tcp", "InSegs"),
];

/// `ethtool -S` names read for breaks: the verdict's `*_allowance_exceeded` and names that look
/// like loss counters (drivers also export gauges there, whose falls are not resets).
fn ethtool_counter(name: &str) -> bool {
    name.ends_with("_allowance_exceeded")
        || ["drop", "err", "miss", "fail", "discard"]
            .iter()
            .any(|w| name.contains(w))
}

/// Most notes [`counter_break_notes`] gives one window; the rest are counted in one more line.
pub const MAX_BREAK_NOTES: usize = 12;

/// What broke the continuity of the counters between two consecutive samples, one sentence each,
/// most important first (rank 0: a counter that went back, wrapped or jumped; 1: a namespace or
/// interface that vanished; 2: one that appeared). Interfaces are matched by name within a
/// namespace (by inode): one deleted and recreated between two samples shows as a reset when
/// its counters fell, and cannot be seen when they did not.
pub fn counter_breaks(prev: &CounterSample, cur: &CounterSample) -> Vec<(u8, String)> {
    let at = format!("at {:.1} s", cur.at_ms as f64 / 1000.0);
    let mut out = Vec::new();
    // Falls, wraps and jumps grouped by place and kind: one line for an interface whose every
    // counter went back when it was recreated.
    type Moves = Vec<((String, u8, &'static str), Vec<String>)>;
    let mut moves: Moves = Vec::new();
    let check = |place: &str, name: &str, a: u64, b: u64, moves: &mut Moves| {
        let Some((kind, text, meaning)) = CounterChange::of(a, b).describe(name, a, b) else {
            return;
        };
        let key = (place.to_owned(), kind, meaning);
        match moves.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(text),
            None => moves.push((key, vec![text])),
        }
    };
    for (ns1, ns0) in prev.paired_with(cur) {
        if ns1.is_none() {
            out.push((
                1,
                format!(
                    "{at}: network namespace {} ({}) vanished; its counters stop there",
                    ns0.label, ns0.inode
                ),
            ));
        }
    }
    for (ns0, ns1) in cur.paired_with(prev) {
        let Some(ns0) = ns0 else {
            out.push((
                2,
                format!(
                    "{at}: network namespace {} ({}) appeared; its counters count from there",
                    ns1.label, ns1.inode
                ),
            ));
            continue;
        };
        // One reading shared by both samples: nothing moved there.
        if !Shared::same(ns0, ns1) {
            namespace_breaks(&at, ns0, ns1, &mut out, &mut |place, name, a, b| {
                check(place, name, a, b, &mut moves)
            });
        }
    }
    for r1 in &cur.softnet {
        if let Some(r0) = prev.softnet.iter().find(|r| r.cpu == r1.cpu) {
            let place = format!("softnet cpu {}", r1.cpu);
            check(&place, "dropped", r0.dropped, r1.dropped, &mut moves);
            check(
                &place,
                "time_squeeze",
                r0.time_squeeze,
                r1.time_squeeze,
                &mut moves,
            );
        }
    }
    let mut first: Vec<(u8, String)> = moves
        .into_iter()
        .map(|((place, _, meaning), list)| {
            let shown = list.len().min(3);
            let more = match list.len() - shown {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            (
                0,
                format!(
                    "{at}: {place}: {}{more} {meaning}",
                    list[..shown].join(", ")
                ),
            )
        })
        .collect();
    first.append(&mut out);
    first
}

/// Where a counter moved, its name, and its two values: collected by [`counter_breaks`].
type Check<'c> = dyn FnMut(&str, &str, u64, u64) + 'c;

/// The breaks of one namespace present in both samples: interfaces that came or went (into
/// `out`), and every counter read for breaks handed to `check`.
fn namespace_breaks(
    at: &str,
    ns0: &NetnsCounters,
    ns1: &NetnsCounters,
    out: &mut Vec<(u8, String)>,
    check: &mut Check<'_>,
) {
    let label = &ns1.label;
    for (ifname, if0) in &ns0.interfaces {
        let Some(if1) = ns1.interfaces.get(ifname) else {
            out.push((
                1,
                format!("{at}: interface {ifname} of {label} vanished; its counters stop there"),
            ));
            continue;
        };
        if if0 == if1 {
            continue;
        }
        let place = format!("{label} interface {ifname}");
        for (stat, b) in if1.stats.iter() {
            if let Some(a) = if0.stats.get(stat) {
                check(&place, stat, *a, *b);
            }
        }
        for (stat, b) in if1.ethtool.iter().filter(|(n, _)| ethtool_counter(n)) {
            if let Some(a) = if0.ethtool.get(stat) {
                check(&place, stat, *a, *b);
            }
        }
        if let (Some(q0), Some(q1)) = (&if0.qdisc, &if1.qdisc) {
            check(&place, "qdisc drops", q0.drops, q1.drops);
            check(&place, "qdisc overlimits", q0.overlimits, q1.overlimits);
        }
    }
    for ifname in ns1.interfaces.keys() {
        if !ns0.interfaces.contains_key(ifname) {
            out.push((
                2,
                format!(
                    "{at}: interface {ifname} of {label} appeared; its counters count from there"
                ),
            ));
        }
    }
    // Equal groups (compared as values, the names shared) hold no break.
    let snmp_read = if ns0.snmp == ns1.snmp {
        &[][..]
    } else {
        &SNMP_READ[..]
    };
    for &(group, name) in snmp_read {
        let (Some(a), Some(b)) = (
            ns0.snmp.get(group).and_then(|g| g.get(name)),
            ns1.snmp.get(group).and_then(|g| g.get(name)),
        ) else {
            continue;
        };
        if let (Ok(a), Ok(b)) = (u64::try_from(*a), u64::try_from(*b)) {
            check(label, &format!("{group}:{name}"), a, b);
        }
    }
    if let (Some(c0), Some(c1)) = (&ns0.conntrack, &ns1.conntrack) {
        if c0 == c1 {
            return;
        }
        for (stat, b) in c1.stats.iter().filter(|(n, _)| *n != "entries") {
            if let Some(a) = c0.stats.get(stat) {
                check(label, &format!("conntrack {stat}"), *a, *b);
            }
        }
    }
}

/// Notes on the counters' continuity over a window's samples (oldest first): every break of
/// [`counter_breaks`], most important first, at most [`MAX_BREAK_NOTES`] and one line counting
/// the rest.
pub fn counter_break_notes<'a>(
    samples: impl IntoIterator<Item = &'a CounterSample>,
) -> Vec<String> {
    let mut breaks = Vec::new();
    let mut previous: Option<&CounterSample> = None;
    for sample in samples {
        if let Some(prev) = previous {
            breaks.push(counter_breaks(prev, sample));
        }
        previous = Some(sample);
    }
    break_notes(breaks.iter().map(Vec::as_slice))
}

/// [`counter_break_notes`] from the breaks of each interval (oldest first), computed already.
pub fn break_notes<'a>(intervals: impl IntoIterator<Item = &'a [(u8, String)]>) -> Vec<String> {
    let mut breaks: Vec<&(u8, String)> = intervals.into_iter().flatten().collect();
    // Stable: within a rank, in time order.
    breaks.sort_by_key(|(rank, _)| *rank);
    let total = breaks.len();
    let mut notes: Vec<String> = breaks
        .into_iter()
        .take(MAX_BREAK_NOTES)
        .map(|(_, text)| format!("counters: {text}"))
        .collect();
    if total > MAX_BREAK_NOTES {
        notes.push(format!(
            "counters: {} more resets, wraps, or interfaces or namespaces that came or went, not listed",
            total - MAX_BREAK_NOTES
        ));
    }
    notes
}
