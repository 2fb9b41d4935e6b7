//! TEMPORARY: the verdict as it was before the rules were split (a copy of the old `decide`
//! and its private helpers), to check the new one gives the same `Verdict` for every window.
//! Test-only; deleted once the rules are in place.
#![allow(dead_code, clippy::all)]

use std::collections::BTreeMap;

use super::{
    CrossReference, EvidenceItem, LayerScore, Mitigation, NoiseSummary, RuledOut, Tick,
    TimelineEntry, Verdict, WindowEvidence, MIN_LOSS, MIN_RETRANS_RATIO, SATURATED_SHARE,
};
use crate::{
    evidence::{CounterSample, NodeFacts},
    layers::{classify, DropClass, Layer},
    report::Report,
};

// ---------------------------------------------------------------------------------------------
// Counter signals

/// The largest rise of one counter between two samples that is believed: 2^40 (10^12 packets,
/// 3 hours at 100 Mpps). A larger one is a broken or re-based counter, counted as 0 and noted.
pub const MAX_PLAUSIBLE_CHANGE: u64 = 1 << 40;
/// How near 2^32 a counter must have been, and how near 0 it must be now, for a fall to be read
/// as a 32-bit counter wrapping (see [`CounterChange::of`]).
pub const WRAP32_MARGIN: u64 = 1 << 24;

/// How a counter moved between two samples.
///
/// The decision on falls: the kernel's counters are 64-bit, but some drivers feed 32-bit
/// hardware registers into `/proc/net/dev`, sysfs or `ethtool -S`. A fall from within
/// [`WRAP32_MARGIN`] (16 Mi) below 2^32 to below [`WRAP32_MARGIN`] is read as such a register
/// wrapping (4294967290 → 5 is +11): a reset from that close to 2^32 is far less likely than a
/// wrap there, and the error when it was a reset is under 2 × 16 Mi. Any other fall is a reset
/// (driver reload, interface or namespace recreated) and is not counted: the rise after the
/// reset cannot be told from the rise before it. Either way the caller says so (see
/// [`counter_breaks`]); nothing is silently read as 0 or as a huge number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterChange {
    /// Rose by this much (0: flat).
    Rose(u64),
    /// A 32-bit counter wrapped past 2^32 and rose by this much in all.
    Wrapped32(u64),
    /// Went backwards: reset. Not counted.
    WentBack,
    /// Rose by more than [`MAX_PLAUSIBLE_CHANGE`]: not believed, not counted.
    Implausible(u64),
}

impl CounterChange {
    /// Classifies the move from `start` to `end`.
    pub fn of(start: u64, end: u64) -> Self {
        let top = u64::from(u32::MAX);
        if let Some(rise) = end.checked_sub(start) {
            if rise > MAX_PLAUSIBLE_CHANGE {
                CounterChange::Implausible(rise)
            } else {
                CounterChange::Rose(rise)
            }
        } else if start <= top && start > top - WRAP32_MARGIN && end < WRAP32_MARGIN {
            // top - start < WRAP32_MARGIN and end < WRAP32_MARGIN: no overflow.
            CounterChange::Wrapped32(top - start + end + 1)
        } else {
            CounterChange::WentBack
        }
    }

    /// The rise that counts: 0 for a reset or an implausible jump.
    pub fn counted(self) -> u64 {
        match self {
            CounterChange::Rose(d) | CounterChange::Wrapped32(d) => d,
            CounterChange::WentBack | CounterChange::Implausible(_) => 0,
        }
    }

    /// One counter's move in a note (`tx_packets 3006 → 23`, `rx_errors 4294967290 → 5 (+11)`),
    /// and what the kind of move means, None for a plain rise.
    fn describe(self, name: &str, start: u64, end: u64) -> Option<(u8, String, &'static str)> {
        match self {
            CounterChange::Rose(_) => None,
            CounterChange::WentBack => Some((
                0,
                format!("{name} {start} → {end}"),
                "went back (reset: driver reload, interface or namespace recreated); not counted",
            )),
            CounterChange::Wrapped32(d) => Some((
                1,
                format!("{name} {start} → {end} (+{d})"),
                "read as a 32-bit counter wrapping",
            )),
            CounterChange::Implausible(_) => Some((
                2,
                format!("{name} {start} → {end}"),
                "jumped beyond 2^40, not believed; not counted",
            )),
        }
    }
}

/// Change of a counter between two samples as counted: 0 when it went backwards (reset) or
/// jumped implausibly, the wrapped rise of a 32-bit counter (see [`CounterChange`]).
fn delta(start: u64, end: u64) -> u64 {
    CounterChange::of(start, end).counted()
}

/// The same for the signed SNMP counters: negative values are gauges (`Tcp MaxConn` -1), whose
/// falls count 0 and rises are capped like any other.
fn delta_i(start: i64, end: i64) -> u64 {
    match (u64::try_from(start), u64::try_from(end)) {
        (Ok(a), Ok(b)) => delta(a, b),
        _ => u64::try_from(end.saturating_sub(start))
            .ok()
            .filter(|d| *d <= MAX_PLAUSIBLE_CHANGE)
            .unwrap_or(0),
    }
}

/// A named counter change with where it happened, for evidence text.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterDelta {
    pub name: String,
    pub place: String,
    pub start: u64,
    pub end: u64,
}

impl CounterDelta {
    pub fn delta(&self) -> u64 {
        delta(self.start, self.end)
    }
    fn text(&self) -> String {
        let how = match CounterChange::of(self.start, self.end) {
            CounterChange::Wrapped32(_) => ", wrapped at 2^32",
            _ => "",
        };
        format!(
            "{} {}: {} → {} (+{}{how})",
            self.place,
            self.name,
            self.start,
            self.end,
            self.delta()
        )
    }
}

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

fn snmp_deltas(
    start: &CounterSample,
    end: &CounterSample,
    names: &[(&str, &str)],
) -> Vec<CounterDelta> {
    let mut out = Vec::new();
    for ns_end in &end.netns {
        let Some(ns_start) = start.netns(ns_end.inode) else {
            continue;
        };
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
    out
}

/// Reads the counter changes between two samples.
pub fn counter_signals(start: &CounterSample, end: &CounterSample) -> CounterSignals {
    let mut s = CounterSignals::default();
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
    for ns_end in &end.netns {
        let Some(ns_start) = start.netns(ns_end.inode) else {
            continue;
        };
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
    s.listen = snmp_deltas(
        start,
        end,
        &[
            ("TcpExt", "ListenDrops"),
            ("TcpExt", "ListenOverflows"),
            ("TcpExt", "TCPReqQFullDrop"),
        ],
    );
    s.tcp_other = snmp_deltas(
        start,
        end,
        &[
            ("TcpExt", "TCPBacklogDrop"),
            ("TcpExt", "TCPRcvQDrop"),
            ("TcpExt", "TCPZeroWindowDrop"),
            ("Udp", "RcvbufErrors"),
        ],
    );
    s.routing = snmp_deltas(
        start,
        end,
        &[
            ("IpExt", "InNoRoutes"),
            ("Ip", "OutNoRoutes"),
            ("Ip", "InAddrErrors"),
        ],
    );
    s.mtu = snmp_deltas(
        start,
        end,
        &[
            ("Ip", "FragFails"),
            ("Ip", "ReasmFails"),
            ("TcpExt", "TCPMTUPFail"),
        ],
    );
    for ns_end in &end.netns {
        let Some(ns_start) = start.netns(ns_end.inode) else {
            continue;
        };
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
        s.retrans_segs += delta_i(
            ns_start.get("Tcp", "RetransSegs"),
            ns_end.get("Tcp", "RetransSegs"),
        );
        s.out_segs += delta_i(ns_start.get("Tcp", "OutSegs"), ns_end.get("Tcp", "OutSegs"));
        s.lost_retransmit += delta_i(
            ns_start.get("TcpExt", "TCPLostRetransmit"),
            ns_end.get("TcpExt", "TCPLostRetransmit"),
        );
        s.timeouts += delta_i(
            ns_start.get("TcpExt", "TCPTimeouts"),
            ns_end.get("TcpExt", "TCPTimeouts"),
        );
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
        s.dsack_segs += delta_i(ns_start.get("TcpExt", dsack), ns_end.get("TcpExt", dsack));
    }
    s
}

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
    for ns0 in &prev.netns {
        if cur.netns(ns0.inode).is_none() {
            out.push((
                1,
                format!(
                    "{at}: network namespace {} ({}) vanished; its counters stop there",
                    ns0.label, ns0.inode
                ),
            ));
        }
    }
    for ns1 in &cur.netns {
        let Some(ns0) = prev.netns(ns1.inode) else {
            out.push((
                2,
                format!(
                    "{at}: network namespace {} ({}) appeared; its counters count from there",
                    ns1.label, ns1.inode
                ),
            ));
            continue;
        };
        let label = &ns1.label;
        for (ifname, if0) in &ns0.interfaces {
            let Some(if1) = ns1.interfaces.get(ifname) else {
                out.push((
                    1,
                    format!(
                        "{at}: interface {ifname} of {label} vanished; its counters stop there"
                    ),
                ));
                continue;
            };
            let place = format!("{label} interface {ifname}");
            for (stat, b) in if1.stats.iter() {
                if let Some(a) = if0.stats.get(stat) {
                    check(&place, stat, *a, *b, &mut moves);
                }
            }
            for (stat, b) in if1.ethtool.iter().filter(|(n, _)| ethtool_counter(n)) {
                if let Some(a) = if0.ethtool.get(stat) {
                    check(&place, stat, *a, *b, &mut moves);
                }
            }
            if let (Some(q0), Some(q1)) = (&if0.qdisc, &if1.qdisc) {
                check(&place, "qdisc drops", q0.drops, q1.drops, &mut moves);
                check(
                    &place,
                    "qdisc overlimits",
                    q0.overlimits,
                    q1.overlimits,
                    &mut moves,
                );
            }
        }
        for ifname in ns1.interfaces.keys() {
            if !ns0.interfaces.contains_key(ifname) {
                out.push((
                    2,
                    format!("{at}: interface {ifname} of {label} appeared; its counters count from there"),
                ));
            }
        }
        for (group, name) in SNMP_READ {
            let (Some(a), Some(b)) = (
                ns0.snmp.get(group).and_then(|g| g.get(name)),
                ns1.snmp.get(group).and_then(|g| g.get(name)),
            ) else {
                continue;
            };
            if let (Ok(a), Ok(b)) = (u64::try_from(*a), u64::try_from(*b)) {
                check(label, &format!("{group}:{name}"), a, b, &mut moves);
            }
        }
        if let (Some(c0), Some(c1)) = (&ns0.conntrack, &ns1.conntrack) {
            for (stat, b) in c1.stats.iter().filter(|(n, _)| *n != "entries") {
                if let Some(a) = c0.stats.get(stat) {
                    check(label, &format!("conntrack {stat}"), *a, *b, &mut moves);
                }
            }
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
            breaks.extend(counter_breaks(prev, sample));
        }
        previous = Some(sample);
    }
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

fn sum(deltas: &[CounterDelta]) -> u64 {
    deltas
        .iter()
        .map(CounterDelta::delta)
        .fold(0, u64::saturating_add)
}

/// Listen-queue loss: ListenDrops includes ListenOverflows; take the larger per namespace.
fn listen_loss(deltas: &[CounterDelta]) -> u64 {
    let mut by_place: BTreeMap<&str, u64> = BTreeMap::new();
    for d in deltas {
        let e = by_place.entry(d.place.as_str()).or_insert(0);
        *e = (*e).max(d.delta());
    }
    by_place.values().sum()
}

/// Packets lost per layer according to the counters alone.
pub fn counter_loss(s: &CounterSignals) -> BTreeMap<Layer, u64> {
    let mut loss = BTreeMap::new();
    loss.insert(
        Layer::NicDriver,
        sum(&s.nic_errors) + sum(&s.crc_errors) + sum(&s.allowance_exceeded) + sum(&s.qdisc_drops),
    );
    loss.insert(Layer::IrqCpu, s.softnet_dropped);
    loss.insert(Layer::TcpStack, listen_loss(&s.listen) + sum(&s.tcp_other));
    loss.insert(Layer::IptablesNetpolicy, sum(&s.conntrack_drops));
    loss.insert(Layer::Routing, sum(&s.routing) + sum(&s.mtu));
    loss
}

/// Packets lost per layer in one interval, from the probes' drops in it and the counters.
pub fn tick_loss(
    at_ms: u64,
    probe_drops: &BTreeMap<Layer, u64>,
    counters_start: &CounterSample,
    counters_end: &CounterSample,
    retrans_segments: u64,
) -> Tick {
    let signals = counter_signals(counters_start, counters_end);
    let counters = counter_loss(&signals);
    let retrans_segments = retrans_segments.saturating_sub(signals.dsack_segs);
    let mut loss = BTreeMap::new();
    for layer in Layer::ALL {
        let p = probe_drops.get(&layer).copied().unwrap_or(0);
        let c = counters.get(&layer).copied().unwrap_or(0);
        if layer == Layer::Upstream {
            continue;
        }
        loss.insert(layer, p.max(c));
    }
    let local: u64 = loss.values().sum();
    loss.insert(Layer::Upstream, retrans_segments.saturating_sub(local));
    Tick { at_ms, loss }
}

// ---------------------------------------------------------------------------------------------
// The decision

/// Drops of the window by layer (probe evidence), with the noise apart.
pub fn probe_loss(
    observed: &Report,
) -> (
    BTreeMap<Layer, u64>,
    BTreeMap<Layer, Vec<String>>,
    NoiseSummary,
    u64,
) {
    let mut loss: BTreeMap<Layer, u64> = BTreeMap::new();
    let mut signals: BTreeMap<Layer, Vec<String>> = BTreeMap::new();
    let mut noise = NoiseSummary::default();
    let mut no_listener = 0;
    for reason in &observed.drops.by_reason {
        for location in &reason.locations {
            match classify(&reason.reason, &location.location) {
                DropClass::Loss { layer, tag } => {
                    *loss.entry(layer).or_insert(0) += location.count;
                    signals.entry(layer).or_default().push(format!(
                        "{} {} drops at {} ({tag})",
                        location.count, reason.reason, location.location
                    ));
                }
                DropClass::Noise { tag } => {
                    noise.total += location.count;
                    *noise
                        .by_kind
                        .entry(format!("{tag}: {}", reason.reason))
                        .or_insert(0) += location.count;
                }
                DropClass::NoListener => no_listener += location.count,
                DropClass::Other { tag } => {
                    noise.total += location.count;
                    *noise
                        .by_kind
                        .entry(format!("{tag}: {}", reason.reason))
                        .or_insert(0) += location.count;
                }
            }
        }
    }
    (loss, signals, noise, no_listener)
}

fn fmt_rate(count: u64, seconds: f64) -> String {
    format!(
        "{count} packets ({:.1}/s)",
        count as f64 / seconds.max(0.001)
    )
}

/// Blackhole/unreachable/prohibit routes, and namespaces without a default route that route
/// elsewhere (a missing route).
fn bad_routes(facts: &NodeFacts) -> Vec<String> {
    facts
        .routes
        .iter()
        .filter(|r| matches!(r.kind.as_str(), "blackhole" | "unreachable" | "prohibit"))
        .map(|r| {
            format!(
                "{} {} {} (table {}) in {}",
                r.family, r.kind, r.dst, r.table, r.netns_label
            )
        })
        .collect()
}

/// Whether `dst` (`default` or `ADDR/LEN`) covers `addr`.
fn route_covers(dst: &str, addr: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    if dst == "default" {
        return true;
    }
    let (net, len) = dst.split_once('/').unwrap_or((dst, ""));
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    let (bits, a, n) = match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (32, u128::from(u32::from(a)), u128::from(u32::from(n))),
        (IpAddr::V6(a), IpAddr::V6(n)) => (128, u128::from(a), u128::from(n)),
        _ => return false,
    };
    let len: u32 = len.parse().unwrap_or(bits);
    if len == 0 {
        return true;
    }
    let shift = bits - len.min(bits);
    (a >> shift) == (n >> shift)
}

/// What the per-destination evidence (`flows`) says, for the layer scores and the evidence.
#[derive(Debug, Default)]
struct FlowSignals {
    /// Connects that never got established to destinations a blackhole/unreachable/prohibit
    /// route covers.
    routed_failures: u64,
    routing: Vec<String>,
    /// Where the retransmits went: share outside the node's own subnets, top destinations.
    upstream: Vec<String>,
    /// Failed connects and refusals worth showing whatever the verdict.
    evidence: Vec<String>,
    /// Connects refused by the peer (a reset in SYN_SENT: nobody listening).
    refused: u64,
}

/// Reads the `flows` section against the node's routes. A destination is on the node when a
/// `local` route or a directly connected (no gateway, not default) route of any namespace
/// covers it; anything else is reached through a gateway, i.e. upstream of the node.
fn flow_signals(observed: &Report, facts: &NodeFacts) -> FlowSignals {
    let mut out = FlowSignals::default();
    let flows = &observed.flows;
    let addr = |d: &crate::flows::Destination| d.daddr.parse::<std::net::IpAddr>().ok();
    let on_node = |ip: std::net::IpAddr| {
        facts.routes.iter().any(|r| {
            (r.kind == "local"
                || (r.kind == "unicast" && r.gateway.is_none() && r.dst != "default"))
                && route_covers(&r.dst, ip)
        })
    };
    for d in &flows.destinations {
        let Some(ip) = addr(d) else { continue };
        let errors: Vec<String> = d
            .errors
            .iter()
            .map(|e| format!("{}×{}", e.error, e.count))
            .collect();
        let errors = if errors.is_empty() {
            String::new()
        } else {
            format!(" ({})", errors.join(", "))
        };
        if d.failed_connects > 0 {
            let bad: Vec<&crate::evidence::RouteFact> = facts
                .routes
                .iter()
                .filter(|r| {
                    matches!(r.kind.as_str(), "blackhole" | "unreachable" | "prohibit")
                        && route_covers(&r.dst, ip)
                })
                .collect();
            if let Some(r) = bad.first() {
                out.routed_failures += d.failed_connects;
                out.routing.push(format!(
                    "{} connects to {}:{} never established{errors}; route {} {} in {} covers it",
                    d.failed_connects, d.daddr, d.dport, r.kind, r.dst, r.netns_label
                ));
            }
            out.evidence.push(format!(
                "{} of {} connects to {}:{} (netns {}) failed in SYN_SENT{errors}",
                d.failed_connects, d.connects, d.daddr, d.dport, d.netns
            ));
        }
        let refused = d.error_count("ECONNREFUSED");
        out.refused += refused;
    }
    let total = flows.totals.retransmits;
    if total > 0 {
        let mut outside = 0u64;
        let mut top: Vec<&crate::flows::Destination> = flows
            .destinations
            .iter()
            .filter(|d| d.retransmits > 0)
            .collect();
        top.sort_by_key(|d| std::cmp::Reverse(d.retransmits));
        for d in &top {
            if addr(d).is_some_and(|ip| !on_node(ip)) {
                outside += d.retransmits;
            }
        }
        let listed: u64 = top.iter().map(|d| d.retransmits).sum();
        if listed > 0 {
            out.upstream.push(format!(
                "{:.0} % of retransmitted segments went to destinations outside the node's subnets",
                outside as f64 * 100.0 / listed as f64
            ));
        }
        for d in top.iter().take(3) {
            let rtt = d.rtt.as_ref().map_or_else(String::new, |r| {
                format!(
                    ", RTT p50 {:.1} ms p99 {:.1} ms",
                    r.p50_us / 1e3,
                    r.p99_us / 1e3
                )
            });
            out.upstream.push(format!(
                "{} retransmitted segments to {}:{} (netns {}){rtt}",
                d.retransmits, d.daddr, d.dport, d.netns
            ));
        }
    }
    out
}

/// Drop/reject rules whose counters rose in the window, with the rise.
fn firing_rules(start: &NodeFacts, end: &NodeFacts) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = end
        .firewall_rules
        .iter()
        .filter_map(|r| {
            let after = r.packets?;
            let before = start
                .firewall_rules
                .iter()
                .find(|s| {
                    s.netns == r.netns
                        && s.table == r.table
                        && s.chain == r.chain
                        && s.rule == r.rule
                })
                .and_then(|s| s.packets)
                .unwrap_or(0);
            let d = delta(before, after);
            (d > 0).then(|| {
                (
                    d,
                    format!(
                        "{} [{}] {} chain {}{}: `{}` {} (+{d} packets)",
                        r.source,
                        r.netns_label,
                        r.table,
                        r.chain,
                        r.hook
                            .as_deref()
                            .map(|h| format!(" (hook {h})"))
                            .unwrap_or_default(),
                        r.rule,
                        r.verdict
                    ),
                )
            })
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    out
}

/// Onset of a layer's loss: the first second its rate rose above the window's baseline.
fn onset(ticks: &[Tick], layer: Layer) -> Option<(f64, u64, u64)> {
    let rates: Vec<u64> = ticks
        .iter()
        .map(|t| t.loss.get(&layer).copied().unwrap_or(0))
        .collect();
    let base = rates.iter().copied().min()?;
    let peak = rates.iter().copied().max()?;
    if peak <= base {
        return None;
    }
    let threshold = base + ((peak - base) / 2).max(1);
    let i = rates.iter().position(|r| *r >= threshold)?;
    // The interval ending at tick i began at the previous tick (or the window start).
    let began_ms = if i == 0 { 0 } else { ticks[i - 1].at_ms };
    Some((began_ms as f64 / 1000.0, base, rates[i]))
}

fn host_sysctl<'a>(facts: &'a NodeFacts, name: &str) -> &'a str {
    facts.sysctls.get(name).map_or("unknown", String::as_str)
}

/// Decides the verdict.
pub fn decide(w: &WindowEvidence) -> Verdict {
    let seconds = w.observed.window.duration_s.max(0.001);
    let signals = counter_signals(&w.counters_start, &w.counters_end);
    let counters = counter_loss(&signals);
    let (probe, probe_signals, noise, no_listener) = probe_loss(&w.observed);
    let retrans_segments =
        w.observed.retransmits.segments_total + w.observed.retransmits.synack_total;

    // Per-layer loss: probes and counters often see the same packets (NETFILTER_DROP and the
    // conntrack drop column, CPU_BACKLOG and softnet `dropped`): take the larger, never the sum.
    let mut scores: BTreeMap<Layer, LayerScore> = BTreeMap::new();
    for layer in Layer::ALL {
        if layer == Layer::Upstream {
            continue;
        }
        let p = probe.get(&layer).copied().unwrap_or(0);
        let c = counters.get(&layer).copied().unwrap_or(0);
        let mut score = LayerScore {
            lost_packets: p.max(c),
            signals: probe_signals.get(&layer).cloned().unwrap_or_default(),
        };
        let mut add = |deltas: &[CounterDelta]| {
            score.signals.extend(deltas.iter().map(CounterDelta::text));
        };
        match layer {
            Layer::NicDriver => {
                add(&signals.nic_errors);
                add(&signals.crc_errors);
                add(&signals.allowance_exceeded);
                add(&signals.qdisc_drops);
            }
            Layer::IrqCpu => {
                if signals.softnet_dropped > 0 {
                    score
                        .signals
                        .push(format!("softnet_stat dropped +{}", signals.softnet_dropped));
                }
                if signals.time_squeeze > 0 {
                    score.signals.push(format!(
                        "softnet_stat time_squeeze +{}",
                        signals.time_squeeze
                    ));
                }
            }
            Layer::TcpStack => {
                add(&signals.listen);
                add(&signals.tcp_other);
            }
            Layer::IptablesNetpolicy => add(&signals.conntrack_drops),
            Layer::Routing => {
                add(&signals.routing);
                add(&signals.mtu);
            }
            Layer::Upstream => {}
        }
        scores.insert(layer, score);
    }
    // Connects that failed towards a destination a blackhole/unreachable route covers: the
    // route is why. Drops at `ip_error` may be the same SYNs: the larger, never the sum.
    let flow_sig = flow_signals(&w.observed, &w.facts_end);
    if flow_sig.routed_failures > 0 {
        if let Some(r) = scores.get_mut(&Layer::Routing) {
            r.lost_packets = r.lost_packets.max(flow_sig.routed_failures);
            r.signals.extend(flow_sig.routing.iter().cloned());
        }
    }
    let local_loss: u64 = scores.values().map(|s| s.lost_packets).sum();
    // Retransmissions the receivers reported as duplicates were not losses.
    let genuine = retrans_segments.saturating_sub(signals.dsack_segs);
    let unexplained = genuine.saturating_sub(local_loss);
    let retrans_ratio = if signals.out_segs > 0 {
        signals.retrans_segs.saturating_sub(signals.dsack_segs) as f64 / signals.out_segs as f64
    } else {
        0.0
    };
    let mut upstream = LayerScore::default();
    if retrans_segments > 0 {
        upstream.signals.push(format!(
            "{retrans_segments} retransmitted segments traced ({} skbs), {local_loss} packets lost on the node",
            w.observed.retransmits.total
        ));
        if signals.dsack_segs > 0 {
            upstream.signals.push(format!(
                "TcpExt TCPDSACKRecvSegs +{}: that many were spurious (the receiver already had them)",
                signals.dsack_segs
            ));
        }
        if signals.out_segs > 0 {
            upstream.signals.push(format!(
                "Tcp RetransSegs +{} of OutSegs +{}: {:.2} % lost after discounting spurious ones",
                signals.retrans_segs,
                signals.out_segs,
                retrans_ratio * 100.0
            ));
        }
        if signals.lost_retransmit > 0 || signals.timeouts > 0 {
            upstream.signals.push(format!(
                "TcpExt TCPLostRetransmit +{}, TCPTimeouts +{}",
                signals.lost_retransmit, signals.timeouts
            ));
        }
    }
    if retrans_segments > 0 {
        upstream.signals.extend(flow_sig.upstream.iter().cloned());
    }
    if retrans_ratio >= MIN_RETRANS_RATIO || signals.out_segs == 0 {
        upstream.lost_packets = unexplained;
    }
    scores.insert(Layer::Upstream, upstream);

    // NET_RX saturation / imbalance per CPU.
    let net_rx = w.observed.net_rx_ns_by_cpu();
    let window_ns = seconds * 1e9;
    let (hot_cpu, hot_ns) = net_rx
        .iter()
        .max_by_key(|(_, ns)| **ns)
        .map_or((0, 0), |(c, n)| (*c, *n));
    let hot_share = hot_ns as f64 / window_ns;
    let others_ns: u64 = net_rx.values().sum::<u64>() - hot_ns;
    let others_mean = if net_rx.len() > 1 {
        others_ns as f64 / (net_rx.len() - 1) as f64
    } else {
        0.0
    };
    let imbalanced = net_rx.len() > 1 && hot_ns as f64 >= 4.0 * others_mean.max(1.0);
    let saturated = hot_share >= SATURATED_SHARE;
    if let Some(irq) = scores.get_mut(&Layer::IrqCpu) {
        if saturated || (imbalanced && irq.lost_packets > 0) {
            irq.signals.push(format!(
                "NET_RX on CPU {hot_cpu}: {:.0} ms = {:.0} % of the window; other CPUs {:.1} ms on average",
                hot_ns as f64 / 1e6,
                hot_share * 100.0,
                others_mean / 1e6
            ));
        }
    }

    // Root cause: the layer that lost the most, if it lost enough; NET_RX saturation alone
    // (no loss anywhere) is an IRQ/CPU problem of its own.
    let best = scores
        .iter()
        .filter(|(_, s)| s.lost_packets >= MIN_LOSS)
        .max_by(|a, b| a.1.lost_packets.cmp(&b.1.lost_packets).then(b.0.cmp(a.0)))
        .map(|(l, _)| *l);
    let decided = match best {
        Some(layer) => Some(layer),
        None if saturated && imbalanced => Some(Layer::IrqCpu),
        None => None,
    };
    let total_score: u64 = scores.values().map(|s| s.lost_packets).sum();

    // Evidence.
    let mut evidence = Vec::new();
    let facts = &w.facts_end;
    let rules = firing_rules(&w.facts_start, &w.facts_end);
    let routes = bad_routes(facts);
    if let Some(layer) = decided {
        let s = &scores[&layer];
        evidence.push(EvidenceItem {
            kind: "kernel_probe".to_owned(),
            content: format!(
                "{} lost {} in {seconds:.0} s on this node",
                layer.title(),
                fmt_rate(s.lost_packets, seconds)
            ),
        });
        for signal in s.signals.iter().take(6) {
            evidence.push(EvidenceItem {
                kind: if signal.contains("drops at")
                    || signal.contains("retransmitted")
                    || signal.contains("NET_RX")
                {
                    "kernel_probe"
                } else {
                    "counters"
                }
                .to_owned(),
                content: signal.clone(),
            });
        }
    }
    if matches!(decided, Some(Layer::IptablesNetpolicy)) || !rules.is_empty() {
        for (_, text) in rules.iter().take(5) {
            evidence.push(EvidenceItem {
                kind: "network_diagnostics".to_owned(),
                content: format!("rule matched in the window: {text}"),
            });
        }
    }
    if matches!(decided, Some(Layer::Routing)) {
        for r in routes.iter().take(5) {
            evidence.push(EvidenceItem {
                kind: "network_diagnostics".to_owned(),
                content: format!("route: {r}"),
            });
        }
    }
    if let Some(flow) = w.observed.retransmits.flows.first() {
        evidence.push(EvidenceItem {
            kind: "kernel_probe".to_owned(),
            content: format!(
                "retransmissions: {} segments in {} skbs across {} flows; top flow {}:{} → {}:{} ({}) with {} segments",
                w.observed.retransmits.segments_total,
                w.observed.retransmits.total,
                w.observed.retransmits.flows.len(),
                flow.saddr,
                flow.sport,
                flow.daddr,
                flow.dport,
                flow.state,
                flow.retransmitted_segments + flow.synack_retransmits
            ),
        });
    }

    for text in flow_sig.evidence.iter().take(3) {
        evidence.push(EvidenceItem {
            kind: "kernel_probe".to_owned(),
            content: text.clone(),
        });
    }

    // Timeline.
    let mut timeline = vec![TimelineEntry {
        at_s: 0.0,
        event: "window start: probes attached, counters sampled".to_owned(),
    }];
    if let Some(layer) = decided {
        match onset(&w.ticks, layer) {
            Some((at, base, rate)) => {
                timeline.push(TimelineEntry {
                    at_s: at,
                    event: format!(
                        "onset: {} loss rose to {rate}/s from a baseline of {base}/s",
                        layer.title()
                    ),
                });
                evidence.push(EvidenceItem {
                    kind: "correlate".to_owned(),
                    content: format!(
                        "{} loss began {at:.0} s into the window ({base}/s → {rate}/s)",
                        layer.title()
                    ),
                });
            }
            None => {
                timeline.push(TimelineEntry {
                    at_s: 0.0,
                    event: format!(
                        "{} loss already present when the window started",
                        layer.title()
                    ),
                });
                evidence.push(EvidenceItem {
                    kind: "correlate".to_owned(),
                    content: format!(
                        "{} loss present throughout the window (no onset inside it)",
                        layer.title()
                    ),
                });
            }
        }
    }
    timeline.push(TimelineEntry {
        at_s: seconds,
        event: "window end".to_owned(),
    });

    // Cross references: only what was observed.
    let mut cross_reference = Vec::new();
    if !signals.allowance_exceeded.is_empty() {
        cross_reference.push(CrossReference {
            runbook: "D6/J1".to_owned(),
            evidence: signals
                .allowance_exceeded
                .iter()
                .map(CounterDelta::text)
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    let mtu_drops: u64 = w
        .observed
        .drops
        .by_reason
        .iter()
        .filter(|r| {
            matches!(
                r.reason.as_str(),
                "PKT_TOO_BIG" | "FRAG_REASM_TIMEOUT" | "DUP_FRAG" | "FRAG_TOO_FAR"
            )
        })
        .map(|r| r.count)
        .sum();
    if mtu_drops > 0 || !signals.mtu.is_empty() {
        let mut parts = Vec::new();
        if mtu_drops > 0 {
            parts.push(format!("{mtu_drops} PKT_TOO_BIG/fragmentation drops"));
        }
        parts.extend(signals.mtu.iter().map(CounterDelta::text));
        cross_reference.push(CrossReference {
            runbook: "D4".to_owned(),
            evidence: parts.join("; "),
        });
    }
    let mut conntrack = Vec::new();
    for ns in &w.counters_end.netns {
        if let Some(c) = &ns.conntrack {
            if c.max > 0 && c.count * 10 >= c.max * 9 {
                conntrack.push(format!(
                    "{}: nf_conntrack_count {} of max {} ({:.0} %)",
                    ns.label,
                    c.count,
                    c.max,
                    c.count as f64 * 100.0 / c.max as f64
                ));
            }
        }
    }
    conntrack.extend(signals.conntrack_drops.iter().map(CounterDelta::text));
    if !conntrack.is_empty() {
        cross_reference.push(CrossReference {
            runbook: "D3".to_owned(),
            evidence: conntrack.join("; "),
        });
    }
    let mut dns = Vec::new();
    for f in &w.observed.retransmits.flows {
        if f.dport == 53 || f.sport == 53 {
            dns.push(format!(
                "{} retransmissions {}:{} → {}:{}",
                f.retransmitted_segments + f.synack_retransmits,
                f.saddr,
                f.sport,
                f.daddr,
                f.dport
            ));
        }
    }
    for (_, text) in &rules {
        if text.contains("dport 53") || text.contains("--dport 53") {
            dns.push(format!("DNS traffic dropped by {text}"));
        }
    }
    if !dns.is_empty() {
        cross_reference.push(CrossReference {
            runbook: "D5".to_owned(),
            evidence: dns.join("; "),
        });
    }

    // Ruled out: each check made, with what it found.
    let mut ruled_out = Vec::new();
    let nic_checked = w
        .counters_end
        .host()
        .map_or(0, |h| h.interfaces.keys().filter(|n| *n != "lo").count());
    if scores[&Layer::NicDriver].lost_packets == 0 {
        ruled_out.push(RuledOut {
            check: "NIC/driver errors".to_owned(),
            result: format!(
                "rx/tx errors, missed, CRC and ENA allowance counters flat on {nic_checked} host interfaces"
            ),
        });
    }
    if signals.allowance_exceeded.is_empty() {
        ruled_out.push(RuledOut {
            check: "ENA allowance exceeded (D6/J1)".to_owned(),
            result: "no *_allowance_exceeded counter increased".to_owned(),
        });
    }
    if scores[&Layer::IrqCpu].lost_packets == 0 && !saturated {
        ruled_out.push(RuledOut {
            check: "IRQ/CPU backlog and softirq saturation".to_owned(),
            result: format!(
                "no backlog drops, time_squeeze +{}, busiest CPU {hot_cpu} spent {:.1} % of the window in NET_RX",
                signals.time_squeeze,
                hot_share * 100.0
            ),
        });
    }
    if scores[&Layer::IptablesNetpolicy].lost_packets == 0 {
        ruled_out.push(RuledOut {
            check: "firewall / NetworkPolicy drops".to_owned(),
            result: format!(
                "no NETFILTER_DROP or policy drops; {} DROP/REJECT rules present, none matched in the window",
                facts.firewall_rules.len()
            ),
        });
    }
    if scores[&Layer::Routing].lost_packets == 0 {
        ruled_out.push(RuledOut {
            check: "routing".to_owned(),
            result: format!(
                "no routing drops; {} blackhole/unreachable/prohibit routes",
                routes.len()
            ),
        });
    }
    if scores[&Layer::TcpStack].lost_packets == 0 {
        ruled_out.push(RuledOut {
            check: "TCP stack (listen queues, receive buffers)".to_owned(),
            result: "ListenOverflows/ListenDrops, TCPBacklogDrop, TCPRcvQDrop, RcvbufErrors flat"
                .to_owned(),
        });
    }
    if mtu_drops == 0 && signals.mtu.is_empty() {
        ruled_out.push(RuledOut {
            check: "MTU / fragmentation (D4)".to_owned(),
            result: "no PKT_TOO_BIG or fragmentation drops; FragFails/ReasmFails flat".to_owned(),
        });
    }
    if conntrack.is_empty() {
        let fill = w
            .counters_end
            .netns
            .iter()
            .filter_map(|n| {
                n.conntrack
                    .as_ref()
                    .filter(|c| c.max > 0)
                    .map(|c| c.count as f64 / c.max as f64)
            })
            .fold(0.0f64, f64::max);
        ruled_out.push(RuledOut {
            check: "conntrack exhaustion (D3)".to_owned(),
            result: format!(
                "highest conntrack fill {:.1} %, no conntrack drops",
                fill * 100.0
            ),
        });
    }
    if dns.is_empty() {
        ruled_out.push(RuledOut {
            check: "DNS failures (D5)".to_owned(),
            result: "no retransmissions or rule drops on port 53".to_owned(),
        });
    }
    if flow_sig.refused > 0 {
        ruled_out.push(RuledOut {
            check: "refused connections (ECONNREFUSED)".to_owned(),
            result: format!(
                "{} connects were refused with a reset (nobody listening on the port): an application matter, not a network loss",
                flow_sig.refused
            ),
        });
    }
    if no_listener > 0 {
        ruled_out.push(RuledOut {
            check: "packets to closed ports (NO_SOCKET)".to_owned(),
            result: format!(
                "{no_listener} packets reached ports nobody listens on: an application matter, not a network loss"
            ),
        });
    }

    // Escalations: the runbook's guardrails that hold.
    let mut escalation = Vec::new();
    if !signals.crc_errors.is_empty() {
        escalation.push(format!(
            "NIC hardware errors (rx_crc_errors) increasing — possible hardware failure, request instance replacement ({})",
            signals.crc_errors.iter().map(CounterDelta::text).collect::<Vec<_>>().join("; ")
        ));
    }
    if decided == Some(Layer::Upstream) {
        escalation.push(format!(
            "Retransmissions but no local drops — loss is in the network path, not on the node ({retrans_segments} retransmitted segments, {local_loss} packets lost on the node)"
        ));
        escalation.push(
            "Issue persists after all node-level checks — may be VPC, TGW, or peering issue"
                .to_owned(),
        );
    }
    if decided == Some(Layer::IptablesNetpolicy)
        && facts.policy_engines.iter().any(|e| e != "kube-proxy")
    {
        escalation.push(format!(
            "Security rule changes may be needed that affect other workloads (policy engines present: {})",
            facts.policy_engines.join(", ")
        ));
    }

    // Mitigation.
    let mitigation = mitigation_for(decided, w, &rules, &routes, &signals);

    // Severity and confidence.
    let (severity, confidence) = match decided {
        None => ("NONE".to_owned(), if total_score == 0 { 0.9 } else { 0.6 }),
        Some(layer) => {
            let lost = scores[&layer].lost_packets;
            let rate = lost as f64 / seconds;
            let severity = if rate >= 1.0 || !escalation.is_empty() {
                "HIGH"
            } else {
                "MEDIUM"
            };
            let share = if total_score > 0 {
                lost as f64 / total_score as f64
            } else {
                0.5
            };
            let attached = w
                .observed
                .probes
                .iter()
                .filter(|p| p.state == crate::probes::ProbeState::Attached)
                .count() as f64
                / w.observed.probes.len().max(1) as f64;
            // Loss upstream is inferred from the absence of local loss: never certain.
            let cap = if layer == Layer::Upstream { 0.8 } else { 0.95 };
            let volume = (lost as f64 / (MIN_LOSS as f64 * 5.0)).min(1.0);
            let c = (share * attached * (0.6 + 0.4 * volume)).min(cap);
            (severity.to_owned(), (c * 100.0).round() / 100.0)
        }
    };

    Verdict {
        root_cause: decided.map_or("none", Layer::root_cause).to_owned(),
        failure_layer: decided.map(|l| l.as_str().to_owned()),
        evidence,
        severity,
        mitigation,
        cross_reference,
        ruled_out,
        escalation,
        confidence,
        timeline,
        layer_scores: scores,
        noise,
    }
}

fn mitigation_for(
    decided: Option<Layer>,
    w: &WindowEvidence,
    rules: &[(u64, String)],
    routes: &[String],
    signals: &CounterSignals,
) -> Mitigation {
    let facts = &w.facts_end;
    let immediate = match decided {
        None => "No action: no packet loss attributable to this node in the window".to_owned(),
        Some(Layer::NicDriver) => {
            let driver = w
                .counters_end
                .host()
                .and_then(|h| {
                    h.interfaces.iter().find_map(|(name, i)| {
                        i.driver.as_ref().map(|d| {
                            format!("{name}: {d} {}", i.driver_version.as_deref().unwrap_or("(version unknown)"))
                        })
                    })
                })
                .unwrap_or_else(|| "driver unknown".to_owned());
            let mut text = format!(
                "Operator: check the ENA driver version ({driver}; < 2.8 has known bugs) and instance health; update the driver"
            );
            if !signals.crc_errors.is_empty() {
                text.push_str("; rx_crc_errors are increasing: replace the instance (RED — requires approval)");
            }
            if !signals.allowance_exceeded.is_empty() {
                text.push_str("; ENA allowance exceeded: follow D6/J1 (instance size / traffic shaping)");
            }
            text
        }
        Some(Layer::IrqCpu) => format!(
            "Operator: spread network interrupts — enable irqbalance (running: {}) or configure RPS/XPS across CPUs; netdev_max_backlog is {}",
            if facts.irqbalance_running { "yes" } else { "no" },
            host_sysctl(facts, "net.core.netdev_max_backlog")
        ),
        Some(Layer::TcpStack) => {
            if signals.listen.is_empty() {
                format!(
                    "Operator: the receiving sockets cannot keep up — tune tcp_rmem ({}) / the application's read rate",
                    host_sysctl(facts, "net.ipv4.tcp_rmem")
                )
            } else {
                format!(
                    "Operator: listen queues overflow — raise net.core.somaxconn (now {}) and net.ipv4.tcp_max_syn_backlog (now {}) via sysctl, and the application's listen backlog; check the application accepts connections fast enough",
                    host_sysctl(facts, "net.core.somaxconn"),
                    host_sysctl(facts, "net.ipv4.tcp_max_syn_backlog")
                )
            }
        }
        Some(Layer::IptablesNetpolicy) => {
            let top = rules
                .first()
                .map_or_else(|| "the DROP/REJECT rules of the namespace where NETFILTER_DROP was seen".to_owned(), |(_, t)| t.clone());
            format!(
                "Operator: review {top} and the NetworkPolicy that owns it{}; adjust the policy rather than deleting rules by hand",
                if facts.policy_engines.is_empty() {
                    String::new()
                } else {
                    format!(" (engines: {})", facts.policy_engines.join(", "))
                }
            )
        }
        Some(Layer::Routing) => format!(
            "Operator: fix the route — {}; check VPC route tables and CNI routing (restarting the aws-node DaemonSet may restore pod routes)",
            routes.first().map_or("traffic has no valid next hop", String::as_str)
        ),
        Some(Layer::Upstream) => {
            "Escalate: loss is in the network path, not on this node — check VPC peering, TGW, NAT gateway or internet gateway health; node-level fixes will not help".to_owned()
        }
    };
    Mitigation {
        immediate,
        long_term:
            "Monitor NIC errors and TCP retransmissions, tune TCP stack, review NetworkPolicies"
                .to_owned(),
    }
}

/// Decides `w` with the new rules and with the old function, asserts both give the same JSON,
/// and returns the new verdict.
pub fn same_as_before(w: &WindowEvidence) -> Verdict {
    let new = super::decide(w);
    let old = decide(w);
    let (a, b) = (
        serde_json::to_value(&old).expect("old verdict serializes"),
        serde_json::to_value(&new).expect("new verdict serializes"),
    );
    assert_eq!(a, b, "old and new verdicts differ");
    new
}
