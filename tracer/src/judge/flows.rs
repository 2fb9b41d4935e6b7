//! The `flows` section: per destination (namespace, address, port) the retransmits, resets,
//! connection outcomes, socket errors, and RTT / connect-time percentiles, read from the
//! kernel's histograms; resets per flow with the kernel's reason; and how many destinations the
//! bounded map could not keep. Pure: built from a [`Snapshot`] delta and names from the kernel.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use tracer_common::{
    lat_bucket_bounds, DestKey, DestStats, FlowKey, ABSENT, DESTS_MAX_ENTRIES, LAT_BUCKETS,
    RESET_SENT,
};

use crate::kernel::snapshot::{flow_addresses, Snapshot};

/// Destinations listed in the report (the most troubled first); `tracer flows` lists more.
pub const REPORT_DESTINATIONS: usize = 25;
/// Reset flows listed in the report.
pub const REPORT_RESET_FLOWS: usize = 25;

/// A latency distribution read from one kernel histogram (µs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Latency {
    pub samples: u64,
    pub sum_us: u64,
    pub mean_us: f64,
    /// Percentiles, interpolated linearly inside the histogram bucket that holds them.
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    /// Non-empty buckets: every sample counted here is below `le_us` (and at least the previous
    /// bucket's bound). Bounds are log2 with four sub-buckets per power of two, so every power
    /// of two is a bound: cumulating at powers of two (a Prometheus histogram's `le`) is exact.
    pub buckets: Vec<LatencyBucket>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LatencyBucket {
    /// Exclusive upper bound in µs (`u64::MAX`: the overflow bucket).
    pub le_us: u64,
    pub count: u64,
}

/// Value at quantile `q` (0–1] of a histogram of [`LAT_BUCKETS`] log2/4 buckets, interpolated
/// within the bucket (samples taken as spread evenly across it). The worst error is half a
/// bucket: 12.5 % of the value. None without samples.
pub fn percentile(hist: &[u64], q: f64) -> Option<f64> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * total as f64).max(f64::MIN_POSITIVE);
    let mut below = 0u64;
    for (i, &count) in hist.iter().enumerate() {
        if count == 0 {
            continue;
        }
        // The tolerance keeps `0.9 × 100` (90.000…01 in floating point) in the bucket that
        // holds the 90th sample.
        if (below + count) as f64 >= rank - 1e-9 {
            let (lo, hi) = lat_bucket_bounds(i);
            if i + 1 >= LAT_BUCKETS {
                // The overflow bucket has no upper bound: its lower bound is all that is known.
                return Some(lo as f64);
            }
            let within = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
            return Some(lo as f64 + within * (hi - lo) as f64);
        }
        below += count;
    }
    None
}

impl Latency {
    /// From a kernel histogram (bucket counts) and its sum.
    pub fn from_hist(hist: &[u32], sum_us: u64) -> Option<Latency> {
        let counts: Vec<u64> = hist.iter().map(|c| u64::from(*c)).collect();
        let samples: u64 = counts.iter().sum();
        if samples == 0 {
            return None;
        }
        let buckets = counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| LatencyBucket {
                le_us: if i + 1 >= LAT_BUCKETS {
                    u64::MAX
                } else {
                    lat_bucket_bounds(i).1
                },
                count: *c,
            })
            .collect();
        Some(Latency {
            samples,
            sum_us,
            mean_us: sum_us as f64 / samples as f64,
            p50_us: percentile(&counts, 0.50).unwrap_or(0.0),
            p90_us: percentile(&counts, 0.90).unwrap_or(0.0),
            p99_us: percentile(&counts, 0.99).unwrap_or(0.0),
            buckets,
        })
    }

    /// Cumulative counts at the given bounds (µs, ascending): samples below each bound, as a
    /// Prometheus histogram's buckets want them. Exact at powers of two (bucket edges).
    pub fn cumulative_at(&self, bounds_us: &[u64]) -> Vec<(u64, u64)> {
        bounds_us
            .iter()
            .map(|&b| {
                let below = self
                    .buckets
                    .iter()
                    .filter(|x| x.le_us <= b)
                    .map(|x| x.count)
                    .sum();
                (b, below)
            })
            .collect()
    }
}

/// Bucket bounds for a Prometheus histogram of these latencies: every power of two from 16 µs
/// to 2^27 µs (134 s), all edges of the kernel's buckets, so the cumulative counts are exact.
pub fn prometheus_bounds_us() -> Vec<u64> {
    (4..=27).map(|k| 1u64 << k).collect()
}

impl Latency {
    /// The Prometheus form: `(le in seconds, cumulative count)` at [`prometheus_bounds_us`]
    /// (the `+Inf` bucket is `samples`), and the sum in seconds.
    pub fn prometheus(&self) -> (Vec<(f64, u64)>, f64) {
        let buckets = self
            .cumulative_at(&prometheus_bounds_us())
            .into_iter()
            .map(|(le_us, count)| (le_us as f64 / 1e6, count))
            .collect();
        (buckets, self.sum_us as f64 / 1e6)
    }
}

/// One socket error and how often it was reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorCount {
    /// `ETIMEDOUT`, `EHOSTUNREACH`, … (`errno N` for others).
    pub error: String,
    pub errno: u32,
    pub count: u64,
}

/// What happened to one destination in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Destination {
    /// Inode of the network namespace the sockets live in (0: unknown); pod names are keyed
    /// by it.
    pub netns: u32,
    /// The pod whose network namespace it is (`NAMESPACE/NAME`, or `uid UID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The namespace's `ip netns` name (`/run/netns/NAME`), when it has one on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_name: Option<String>,
    pub family: String,
    pub daddr: String,
    pub dport: u16,
    /// Retransmitted segments (and SYN-ACK retransmits) to it.
    pub retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
    /// Connect attempts of the window: active opens (SYN sent) in it, or, when more attempts
    /// ended in it (established + failed) than began (some began before the window), those
    /// that ended; so `failed_connects` and `established` are always among `connects`.
    pub connects: u64,
    pub established: u64,
    /// Connections that left SYN_SENT without being established.
    pub failed_connects: u64,
    /// Established connections that ended.
    pub closed: u64,
    pub errors: Vec<ErrorCount>,
    /// Smoothed RTT of its sockets, one sample per received segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt: Option<Latency>,
    /// Connect time (SYN sent → established).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_time: Option<Latency>,
}

impl Destination {
    /// Trouble seen: failures, resets, errors, retransmits (what orders the table).
    pub fn trouble(&self) -> u64 {
        self.failed_connects
            + self.resets_sent
            + self.resets_received
            + self.errors.iter().map(|e| e.count).sum::<u64>()
            + self.retransmits
    }

    /// Count of one error by name.
    pub fn error_count(&self, name: &str) -> u64 {
        self.errors
            .iter()
            .filter(|e| e.error == name)
            .map(|e| e.count)
            .sum()
    }
}

/// A row's namespace for people: `pod NS/NAME`, `netns NAME`, else `netns_label(inode)`.
fn who(
    pod: Option<&str>,
    name: Option<&str>,
    inode: u32,
    netns_label: &dyn Fn(u32) -> String,
) -> String {
    match (pod, name) {
        (Some(pod), _) => format!("pod {pod}"),
        (None, Some(name)) => format!("netns {name}"),
        (None, None) => netns_label(inode),
    }
}

/// The peer of a listener's folded reset row: its clients, whatever their ports.
pub const CLIENTS: &str = "clients";

/// Resets of one flow in one direction with one reason; a listener's resets with its clients
/// are one row per listening port (`daddr` [`CLIENTS`], `dport` 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResetFlow {
    pub netns: u32,
    /// The pod whose network namespace it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The namespace's `ip netns` name (`/run/netns/NAME`), when it has one on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_name: Option<String>,
    pub family: String,
    /// This host's end.
    pub saddr: String,
    pub sport: u16,
    /// The peer.
    pub daddr: String,
    pub dport: u16,
    /// `sent` (this host reset the flow) or `received`.
    pub direction: String,
    /// The kernel's `sk_rst_reason` name (sent resets, 6.10+), e.g. `NO_SOCKET`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub count: u64,
}

/// How much of the destinations the bounded kernel map kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DestTracking {
    /// Destinations the kernel map holds at most (least recently used evicted beyond).
    pub capacity: u64,
    /// Destinations in the map at the end of the window (every namespace).
    pub kept: u64,
    /// Destinations evicted during the window: their counts are partly lost.
    pub evicted: u64,
    /// Updates lost because no entry could be created at all.
    pub insert_failed: u64,
}

/// Totals over every destination in scope (not only the listed ones).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlowTotals {
    pub destinations: u64,
    pub retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
    pub connects: u64,
    pub failed_connects: u64,
    pub sock_errors: u64,
    pub rtt_samples: u64,
}

/// The `flows` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Flows {
    pub totals: FlowTotals,
    /// The most troubled destinations first (failures, resets, errors, retransmits), then the
    /// busiest.
    pub destinations: Vec<Destination>,
    pub resets: Vec<ResetFlow>,
    pub tracking: DestTracking,
}

/// Which destinations to keep (`tracer flows --dst/--port`), and how to key a server's flows.
#[derive(Debug, Clone, Default)]
pub struct DestFilter {
    pub daddr: Option<Network>,
    pub dport: Option<u16>,
    /// The host's ephemeral port range, packed as the kernel programs get it
    /// ([`crate::kernel::probes::ephemeral_ports`]). When set, a server's side of its clients'
    /// flows (retransmits, resets) counts under its listening end, one row per listening port,
    /// as the kernel already keys RTT and connects ([`tracer_common::keyed_by_local_end`]);
    /// 0: every flow under its peer.
    pub ephemeral_ports: u32,
}

impl DestFilter {
    fn keeps(&self, daddr: &str, dport: u16) -> bool {
        self.daddr.is_none_or(|net| {
            daddr
                .parse::<std::net::IpAddr>()
                .is_ok_and(|d| net.contains(d))
        }) && self.dport.is_none_or(|p| p == dport)
    }
}

/// An address (`198.18.0.2`, a /32 or /128) or a network in CIDR notation (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl Network {
    /// Whether `ip` is in the network (never across families).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let keep = |bits: u32| -> u128 {
            match u32::from(self.prefix).min(bits) {
                0 => 0,
                n => u128::MAX << (128 - n),
            }
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = keep(32) >> 96;
                (u128::from(u32::from(net)) & mask) == (u128::from(u32::from(ip)) & mask)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = keep(128);
                (u128::from(net) & mask) == (u128::from(ip) & mask)
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let refused = || {
            format!(
                "{text} is not an address or a network: give 198.18.0.2, 10.0.0.0/8 or fd00::/8"
            )
        };
        let (addr, len) = match text.trim().split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text.trim(), None),
        };
        let addr: std::net::IpAddr = addr.parse().map_err(|_| refused())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match len {
            None => max,
            Some(len) => len
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(refused)?,
        };
        Ok(Self { addr, prefix })
    }
}

/// Errno names the tracer knows (the runbook's four first); others print as `errno N`.
pub fn errno_name(errno: u32) -> String {
    const NAMES: [(i32, &str); 12] = [
        (libc::ETIMEDOUT, "ETIMEDOUT"),
        (libc::EHOSTUNREACH, "EHOSTUNREACH"),
        (libc::ENETUNREACH, "ENETUNREACH"),
        (libc::ECONNREFUSED, "ECONNREFUSED"),
        (libc::ECONNRESET, "ECONNRESET"),
        (libc::ECONNABORTED, "ECONNABORTED"),
        (libc::EPIPE, "EPIPE"),
        (libc::EACCES, "EACCES"),
        (libc::EPERM, "EPERM"),
        (libc::EMSGSIZE, "EMSGSIZE"),
        (libc::EPROTO, "EPROTO"),
        (libc::ENOBUFS, "ENOBUFS"),
    ];
    NAMES
        .iter()
        .find(|(v, _)| u32::try_from(*v).is_ok_and(|v| v == errno))
        .map_or_else(|| format!("errno {errno}"), |(_, n)| (*n).to_owned())
}

/// The destination a flow counts under: its peer, or for a server's side of a client's flow
/// (peer port ephemeral, own port not, `ephemeral` set) its own listening end.
fn dest_of(flow: &FlowKey, ephemeral: u32) -> DestKey {
    let (dport, daddr) =
        if ephemeral != 0 && tracer_common::keyed_by_local_end(flow.sport, flow.dport, ephemeral) {
            (flow.sport, flow.saddr)
        } else {
            (flow.dport, flow.daddr)
        };
    DestKey {
        netns: flow.netns,
        family: flow.family,
        dport,
        daddr,
    }
}

/// A destination's address as text (`198.18.0.2`, `2001:db8::1`).
pub fn dest_address(key: &DestKey) -> String {
    dest_addr(key).1
}

fn dest_addr(key: &DestKey) -> (&'static str, String) {
    let (family, _, daddr) = flow_addresses(&FlowKey {
        netns: key.netns,
        family: key.family,
        sport: 0,
        dport: key.dport,
        _pad: 0,
        saddr: [0; 4],
        daddr: key.daddr,
    });
    (family, daddr)
}

/// A listener's folded reset row: namespace, family, address, port, direction, reason.
type ListenerResets = (u32, String, String, u16, &'static str, Option<String>);

/// Builds the section from a window's delta: every destination passing `filter`, the most
/// troubled first, at most `limit` of them (and of the reset flows).
pub fn build(
    delta: &Snapshot,
    reset_reasons: &BTreeMap<u32, String>,
    filter: &DestFilter,
    limit: usize,
) -> Flows {
    #[derive(Default)]
    struct Acc {
        stats: DestStats,
        retransmits: u64,
        resets_sent: u64,
        resets_received: u64,
        errors: BTreeMap<u32, u64>,
    }
    let mut acc: HashMap<DestKey, Acc> = HashMap::new();
    for (key, stats) in &delta.dests {
        acc.entry(*key).or_default().stats = *stats;
    }
    for (key, stats) in &delta.flows {
        let n = stats.retransmitted_segments + stats.synack_retransmits;
        if n > 0 {
            acc.entry(dest_of(key, filter.ephemeral_ports))
                .or_default()
                .retransmits += n;
        }
    }
    for (key, count) in &delta.resets {
        let a = acc
            .entry(dest_of(&key.flow, filter.ephemeral_ports))
            .or_default();
        if key.direction == RESET_SENT {
            a.resets_sent += count;
        } else {
            a.resets_received += count;
        }
    }
    for (key, count) in &delta.sock_errors {
        *acc.entry(key.dest)
            .or_default()
            .errors
            .entry(key.error)
            .or_insert(0) += count;
    }

    let mut totals = FlowTotals::default();
    let mut destinations: Vec<Destination> = acc
        .into_iter()
        .filter_map(|(key, a)| {
            let (family, daddr) = dest_addr(&key);
            if !filter.keeps(&daddr, key.dport) {
                return None;
            }
            let s = &a.stats;
            let d = Destination {
                netns: key.netns,
                pod: None,
                netns_name: None,
                family: family.to_owned(),
                daddr,
                dport: key.dport,
                retransmits: a.retransmits,
                resets_sent: a.resets_sent,
                resets_received: a.resets_received,
                // The kernel counts an attempt's SYN when it is sent and its outcome when it
                // leaves SYN_SENT: one begun before the window has an outcome but no SYN in it.
                connects: s.connects.max(s.established.saturating_add(s.failed)),
                established: s.established,
                failed_connects: s.failed,
                closed: s.closed,
                errors: a
                    .errors
                    .iter()
                    .map(|(errno, count)| ErrorCount {
                        error: errno_name(*errno),
                        errno: *errno,
                        count: *count,
                    })
                    .collect(),
                rtt: Latency::from_hist(&s.rtt_hist, s.rtt_sum_us),
                connect_time: Latency::from_hist(&s.connect_hist, s.connect_sum_us),
            };
            totals.destinations += 1;
            totals.retransmits += d.retransmits;
            totals.resets_sent += d.resets_sent;
            totals.resets_received += d.resets_received;
            totals.connects += d.connects;
            totals.failed_connects += d.failed_connects;
            totals.sock_errors += d.errors.iter().map(|e| e.count).sum::<u64>();
            totals.rtt_samples += s.rtt_samples;
            Some(d)
        })
        .collect();
    destinations.sort_by(|a, b| {
        b.trouble()
            .cmp(&a.trouble())
            .then_with(|| {
                let (sa, sb) = (
                    a.rtt.as_ref().map_or(0, |r| r.samples) + a.connects,
                    b.rtt.as_ref().map_or(0, |r| r.samples) + b.connects,
                );
                sb.cmp(&sa)
            })
            .then_with(|| (a.netns, &a.daddr, a.dport).cmp(&(b.netns, &b.daddr, b.dport)))
    });
    destinations.truncate(limit);

    // A listener's resets to its clients fold into one row per listening port and reason.
    let mut folded: BTreeMap<ListenerResets, u64> = BTreeMap::new();
    let mut resets: Vec<ResetFlow> = delta
        .resets
        .iter()
        .filter_map(|(key, count)| {
            let (family, saddr, daddr) = flow_addresses(&key.flow);
            let listener = filter.ephemeral_ports != 0
                && tracer_common::keyed_by_local_end(
                    key.flow.sport,
                    key.flow.dport,
                    filter.ephemeral_ports,
                );
            let (kept_addr, kept_port) = if listener {
                (&saddr, key.flow.sport)
            } else {
                (&daddr, key.flow.dport)
            };
            if !filter.keeps(kept_addr, kept_port) {
                return None;
            }
            let direction = if key.direction == RESET_SENT {
                "sent"
            } else {
                "received"
            };
            let reason = (key.reason != ABSENT).then(|| {
                reset_reasons
                    .get(&key.reason)
                    .cloned()
                    .unwrap_or_else(|| format!("UNKNOWN({})", key.reason))
            });
            if listener {
                *folded
                    .entry((
                        key.flow.netns,
                        family.to_owned(),
                        saddr,
                        key.flow.sport,
                        direction,
                        reason,
                    ))
                    .or_insert(0) += count;
                return None;
            }
            Some(ResetFlow {
                netns: key.flow.netns,
                pod: None,
                netns_name: None,
                family: family.to_owned(),
                saddr,
                sport: key.flow.sport,
                daddr,
                dport: key.flow.dport,
                direction: direction.to_owned(),
                reason,
                count: *count,
            })
        })
        .collect();
    resets.extend(folded.into_iter().map(
        |((netns, family, saddr, sport, direction, reason), count)| ResetFlow {
            netns,
            pod: None,
            netns_name: None,
            family,
            saddr,
            sport,
            daddr: CLIENTS.to_owned(),
            dport: 0,
            direction: direction.to_owned(),
            reason,
            count,
        },
    ));
    resets.sort_by(|a, b| {
        b.count.cmp(&a.count).then_with(|| {
            (a.netns, &a.daddr, a.dport, a.sport).cmp(&(b.netns, &b.daddr, b.dport, b.sport))
        })
    });
    resets.truncate(limit);

    Flows {
        totals,
        destinations,
        resets,
        tracking: DestTracking {
            capacity: u64::from(DESTS_MAX_ENTRIES),
            kept: delta.dest_entries,
            evicted: delta.dests_evicted,
            insert_failed: delta.counter(tracer_common::counter::DESTS_INSERT_FAILED),
        },
    }
}

impl Flows {
    /// The sentence for the report's notes when the map could not keep every destination.
    pub fn tracking_note(&self) -> Option<String> {
        let t = &self.tracking;
        (t.evicted > 0 || t.insert_failed > 0).then(|| {
            format!(
                "the tracer saw more destinations than it kept: {} evicted from its map of {} \
                 (least recently used first){}; their RTT and connection counts in this window \
                 are incomplete",
                t.evicted,
                t.capacity,
                if t.insert_failed > 0 {
                    format!(", {} updates lost", t.insert_failed)
                } else {
                    String::new()
                }
            )
        })
    }

    /// Names the pod behind each row's namespace (`pod_of(inode)`).
    pub fn label_pods(&mut self, pod_of: &dyn Fn(u32) -> Option<String>) {
        for d in &mut self.destinations {
            d.pod = pod_of(d.netns);
        }
        for r in &mut self.resets {
            r.pod = pod_of(r.netns);
        }
    }

    /// Names each row's namespace by its `ip netns` name (`name_of(inode)`).
    pub fn label_netns(&mut self, name_of: &dyn Fn(u32) -> Option<String>) {
        for d in &mut self.destinations {
            d.netns_name = name_of(d.netns);
        }
        for r in &mut self.resets {
            r.netns_name = name_of(r.netns);
        }
    }

    /// A fixed-width table (what `tracer flows` prints and the text summary shows); the
    /// namespace column is the pod when known, else its `ip netns` name, else
    /// `netns_label(inode)`.
    pub fn table(&self, netns_label: &dyn Fn(u32) -> String) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<18} {:<28} {:>11} {:>11} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9}  socket errors",
            "namespace",
            "destination",
            "retransmits",
            "resets sent",
            "resets rcvd",
            "failed conn",
            "connects",
            "RTT p50",
            "RTT p90",
            "RTT p99"
        );
        let ms =
            |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |us| format!("{:.1}ms", us / 1e3));
        for d in &self.destinations {
            let dest = if d.family == "ipv6" {
                format!("[{}]:{}", d.daddr, d.dport)
            } else {
                format!("{}:{}", d.daddr, d.dport)
            };
            let errors: Vec<String> = d
                .errors
                .iter()
                .map(|e| format!("{}×{}", e.error, e.count))
                .collect();
            let line = format!(
                "{:<18} {:<28} {:>11} {:>11} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9}  {}",
                who(
                    d.pod.as_deref(),
                    d.netns_name.as_deref(),
                    d.netns,
                    netns_label
                ),
                dest,
                d.retransmits,
                d.resets_sent,
                d.resets_received,
                d.failed_connects,
                d.connects,
                ms(d.rtt.as_ref().map(|r| r.p50_us)),
                ms(d.rtt.as_ref().map(|r| r.p90_us)),
                ms(d.rtt.as_ref().map(|r| r.p99_us)),
                errors.join(" ")
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
        if self.destinations.is_empty() {
            let _ = writeln!(out, "(no TCP destination seen)");
        }
        if !self.resets.is_empty() {
            let _ = writeln!(
                out,
                "\nresets (this host's end → the peer; sent: this host reset the connection):"
            );
            for r in &self.resets {
                let peer = if r.daddr == CLIENTS && r.dport == 0 {
                    "its clients".to_owned()
                } else {
                    format!("{}:{}", r.daddr, r.dport)
                };
                let _ = writeln!(
                    out,
                    "  {:<18} {}:{} → {}  {} ×{}{}",
                    who(
                        r.pod.as_deref(),
                        r.netns_name.as_deref(),
                        r.netns,
                        netns_label
                    ),
                    r.saddr,
                    r.sport,
                    peer,
                    r.direction,
                    r.count,
                    r.reason
                        .as_ref()
                        .map(|x| format!("  reason {x}"))
                        .unwrap_or_default()
                );
            }
        }
        if let Some(note) = self.tracking_note() {
            let _ = writeln!(out, "\nnote: {note}");
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tracer_common::{lat_bucket, FlowStats, ResetKey, FAMILY_INET, RESET_RECEIVED};

    fn hist_of(values: &[(u64, u64)]) -> Vec<u64> {
        let mut h = vec![0u64; LAT_BUCKETS];
        for (v, n) in values {
            h[lat_bucket(*v)] += n;
        }
        h
    }

    #[test]
    fn percentiles_interpolate_within_the_bucket() {
        // 100 samples of 40 000 µs: bucket [32768, 40960); p50 is its middle.
        let h = hist_of(&[(40_000, 100)]);
        assert_eq!(percentile(&h, 0.5), Some(32_768.0 + 0.5 * 8_192.0));
        assert_eq!(percentile(&h, 1.0), Some(40_960.0));
        // Within half a bucket (12.5 %) of the true value.
        assert!((percentile(&h, 0.5).unwrap() - 40_000.0).abs() / 40_000.0 < 0.125);
    }

    #[test]
    fn percentiles_pick_the_right_bucket_of_a_spread() {
        // 90 fast (1 000 µs), 9 medium (10 000), 1 slow (200 000).
        let h = hist_of(&[(1_000, 90), (10_000, 9), (200_000, 1)]);
        let (p50, p90, p99) = (
            percentile(&h, 0.5).unwrap(),
            percentile(&h, 0.9).unwrap(),
            percentile(&h, 0.99).unwrap(),
        );
        // 1000 is in [896, 1024): p50 is rank 50 of 90 there.
        assert!((896.0..1024.0).contains(&p50), "{p50}");
        assert!((p50 - (896.0 + 50.0 / 90.0 * 128.0)).abs() < 1e-9);
        // Rank 90 is the last of the fast bucket: its upper bound.
        assert!((p90 - 1024.0).abs() < 1e-6, "{p90}");
        // Rank 99 is the last medium sample: [8192, 10240) upper bound.
        assert!((p99 - 10_240.0).abs() < 1e-6, "{p99}");
        assert_eq!(percentile(&h, 1.0), Some(229_376.0));
        assert_eq!(percentile(&vec![0; LAT_BUCKETS], 0.5), None);
        // Exact small values: bucket [3, 4).
        assert_eq!(percentile(&hist_of(&[(3, 4)]), 0.5), Some(3.5));
    }

    #[test]
    fn overflow_bucket_reports_its_lower_bound() {
        let mut h = vec![0u64; LAT_BUCKETS];
        h[LAT_BUCKETS - 1] = 5;
        assert_eq!(
            percentile(&h, 0.5),
            Some(lat_bucket_bounds(LAT_BUCKETS - 1).0 as f64)
        );
    }

    #[test]
    fn latency_buckets_convert_to_cumulative_prometheus_buckets() {
        let mut h = [0u32; LAT_BUCKETS];
        h[lat_bucket(1_000)] = 3;
        h[lat_bucket(3_000)] = 2;
        let l = Latency::from_hist(&h, 9_000).unwrap();
        assert_eq!(l.samples, 5);
        assert!((l.mean_us - 1_800.0).abs() < 1e-9);
        assert_eq!(
            l.buckets,
            vec![
                LatencyBucket {
                    le_us: 1024,
                    count: 3
                },
                LatencyBucket {
                    le_us: 3072,
                    count: 2
                }
            ]
        );
        assert_eq!(
            l.cumulative_at(&[512, 1024, 2048, 4096]),
            vec![(512, 0), (1024, 3), (2048, 3), (4096, 5)]
        );
        let (prom, sum_s) = l.prometheus();
        assert_eq!(prom.len(), 24);
        assert_eq!(prom[0], (16e-6, 0));
        // le = 1.024 ms holds the three 1 ms samples, 4.096 ms all five; counts never fall.
        assert!(prom.contains(&(1024e-6, 3)) && prom.contains(&(4096e-6, 5)));
        assert!(prom.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!((sum_s - 0.009).abs() < 1e-12);
    }

    fn v4(a: [u8; 4]) -> [u32; 4] {
        [u32::from_ne_bytes(a), 0, 0, 0]
    }

    #[test]
    fn destinations_join_retransmits_resets_and_errors() {
        let server = DestKey {
            netns: 7,
            family: FAMILY_INET,
            dport: 443,
            daddr: v4([198, 18, 0, 2]),
        };
        let mut d = Snapshot::default();
        let mut st = DestStats {
            connects: 5,
            established: 3,
            failed: 2,
            rtt_samples: 10,
            rtt_sum_us: 100_000,
            ..Default::default()
        };
        st.rtt_hist[lat_bucket(10_000)] = 10;
        d.dests.insert(server, st);
        d.dests.insert(
            DestKey {
                dport: 80,
                ..server
            },
            DestStats {
                connects: 1,
                established: 1,
                ..Default::default()
            },
        );
        let flow = FlowKey {
            netns: 7,
            family: FAMILY_INET,
            sport: 40_000,
            dport: 443,
            _pad: 0,
            saddr: v4([198, 18, 0, 1]),
            daddr: server.daddr,
        };
        d.flows.insert(
            flow,
            FlowStats {
                retransmits: 4,
                retransmitted_segments: 6,
                ..Default::default()
            },
        );
        d.resets.insert(
            ResetKey {
                flow,
                reason: ABSENT,
                direction: RESET_RECEIVED,
            },
            1,
        );
        d.resets.insert(
            ResetKey {
                flow,
                reason: 1,
                direction: RESET_SENT,
            },
            2,
        );
        d.sock_errors.insert(
            tracer_common::ErrorKey {
                dest: server,
                error: libc::ETIMEDOUT as u32,
                _pad: 0,
            },
            2,
        );
        let names: BTreeMap<u32, String> = [(1, "NO_SOCKET".to_owned())].into_iter().collect();
        let f = build(&d, &names, &DestFilter::default(), 10);
        assert_eq!(f.destinations.len(), 2);
        let top = &f.destinations[0];
        assert_eq!(
            (top.daddr.as_str(), top.dport, top.netns),
            ("198.18.0.2", 443, 7)
        );
        assert_eq!(
            (
                top.retransmits,
                top.resets_received,
                top.resets_sent,
                top.failed_connects
            ),
            (6, 1, 2, 2)
        );
        assert_eq!(top.error_count("ETIMEDOUT"), 2);
        let rtt = top.rtt.as_ref().unwrap();
        assert_eq!(rtt.samples, 10);
        assert!((rtt.p50_us - 10_000.0).abs() / 10_000.0 < 0.125);
        assert_eq!(f.totals.failed_connects, 2);
        assert_eq!(f.totals.destinations, 2);
        let sent = f.resets.iter().find(|r| r.direction == "sent").unwrap();
        assert_eq!(sent.reason.as_deref(), Some("NO_SOCKET"));
        // Filters: by port, by address.
        let only80 = build(
            &d,
            &names,
            &DestFilter {
                dport: Some(80),
                ..Default::default()
            },
            10,
        );
        assert_eq!(only80.destinations.len(), 1);
        assert!(only80.resets.is_empty());
        let other = build(
            &d,
            &names,
            &DestFilter {
                daddr: Some("198.18.9.9".parse().unwrap()),
                ..Default::default()
            },
            10,
        );
        assert!(other.destinations.is_empty());
        // The limit keeps the most troubled.
        let one = build(&d, &names, &DestFilter::default(), 1);
        assert_eq!(one.destinations[0].dport, 443);
    }

    /// A listener (198.18.0.1:8080) resetting and retransmitting to 30 clients on ephemeral
    /// ports: one destination row and one reset row per reason under the listening end, and
    /// `--top` caps the reset rows too.
    #[test]
    fn a_listeners_clients_fold_into_one_row_per_listening_port() {
        let mut d = Snapshot::default();
        for i in 0..30u16 {
            let flow = FlowKey {
                netns: 7,
                family: FAMILY_INET,
                sport: 8080,
                dport: 40_000 + i,
                _pad: 0,
                saddr: v4([198, 18, 0, 1]),
                daddr: v4([198, 18, 0, 2 + (i % 3) as u8]),
            };
            d.flows.insert(
                flow,
                FlowStats {
                    retransmitted_segments: 2,
                    ..Default::default()
                },
            );
            d.resets.insert(
                ResetKey {
                    flow,
                    reason: 1,
                    direction: RESET_SENT,
                },
                1,
            );
        }
        let names: BTreeMap<u32, String> = [(1, "NO_SOCKET".to_owned())].into_iter().collect();
        let folded = DestFilter {
            ephemeral_ports: tracer_common::pack_port_range(32768, 60999),
            ..Default::default()
        };
        let f = build(&d, &names, &folded, 50);
        assert_eq!(f.destinations.len(), 1, "{:#?}", f.destinations);
        let row = &f.destinations[0];
        assert_eq!((row.daddr.as_str(), row.dport), ("198.18.0.1", 8080));
        assert_eq!((row.retransmits, row.resets_sent), (60, 30));
        assert_eq!(f.resets.len(), 1, "{:#?}", f.resets);
        let reset = &f.resets[0];
        assert_eq!(
            (
                reset.saddr.as_str(),
                reset.sport,
                reset.daddr.as_str(),
                reset.dport
            ),
            ("198.18.0.1", 8080, CLIENTS, 0)
        );
        assert_eq!(
            (reset.count, reset.reason.as_deref()),
            (30, Some("NO_SOCKET"))
        );
        let table = f.table(&|n| n.to_string());
        assert!(
            table.contains("198.18.0.1:8080 → its clients  sent ×30"),
            "{table}"
        );
        assert!(table.starts_with("namespace"), "{table}");
        assert!(table.contains("resets sent"), "{table}");
        // --dst on the listener's address keeps the folded rows.
        let only = DestFilter {
            daddr: Some("198.18.0.1".parse().unwrap()),
            ..folded.clone()
        };
        assert_eq!(build(&d, &names, &only, 50).resets.len(), 1);
        // Without the range (a report), each client is its own row; --top caps resets too.
        let per_client = build(&d, &names, &DestFilter::default(), 5);
        assert_eq!(per_client.destinations.len(), 5);
        assert_eq!(per_client.resets.len(), 5);
        assert_eq!(per_client.totals.destinations, 30);
    }

    /// `ip netns` names stand next to the inode in JSON and replace it in the table; a pod's
    /// name comes first.
    #[test]
    fn netns_names_label_rows_next_to_their_inode() {
        let mut d = Snapshot::default();
        let flow = |netns: u32, last: u8| FlowKey {
            netns,
            family: FAMILY_INET,
            sport: 40_000,
            dport: 443,
            _pad: 0,
            saddr: v4([198, 18, 0, 1]),
            daddr: v4([198, 18, 0, last]),
        };
        for (netns, last) in [(7, 2), (8, 3)] {
            d.flows.insert(
                flow(netns, last),
                FlowStats {
                    retransmitted_segments: 1,
                    ..Default::default()
                },
            );
        }
        let mut f = build(&d, &BTreeMap::new(), &DestFilter::default(), 10);
        f.label_pods(&|inode| (inode == 8).then(|| "shop/cart-0".to_owned()));
        f.label_netns(&|inode| (inode == 7 || inode == 8).then(|| format!("blue{inode}")));
        let json = serde_json::to_value(&f).unwrap();
        let row7 = json["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["netns"] == 7)
            .unwrap();
        assert_eq!(row7["netns_name"], "blue7");
        let table = f.table(&|inode| format!("inode {inode}"));
        assert!(table.contains("netns blue7"), "{table}");
        assert!(table.contains("pod shop/cart-0"), "{table}");
        assert!(!table.contains("inode 7"), "{table}");
    }

    #[test]
    fn dst_networks_contain_their_addresses_only() {
        let net = |t: &str| t.parse::<Network>().unwrap();
        let ip = |t: &str| t.parse::<std::net::IpAddr>().unwrap();
        assert!(net("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("198.18.0.0/15").contains(ip("198.19.255.255")));
        assert!(!net("198.18.0.0/15").contains(ip("198.20.0.0")));
        assert!(net("198.18.0.2").contains(ip("198.18.0.2")));
        assert!(!net("198.18.0.2").contains(ip("198.18.0.3")));
        assert!(net("0.0.0.0/0").contains(ip("1.2.3.4")));
        assert!(!net("0.0.0.0/0").contains(ip("::1")));
        assert!(net("fd00::/8").contains(ip("fdab::1")));
        assert!(!net("fd00::/8").contains(ip("fe80::1")));
        assert!(net("::/0").contains(ip("2001:db8::1")));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("x/8".parse::<Network>().is_err());
        let filter = DestFilter {
            daddr: Some(net("198.18.0.0/24")),
            dport: Some(443),
            ..Default::default()
        };
        assert!(filter.keeps("198.18.0.7", 443));
        assert!(!filter.keeps("198.18.1.7", 443));
        assert!(!filter.keeps("198.18.0.7", 80));
    }

    #[test]
    fn connects_and_failures_count_the_same_attempts() {
        // 3 SYNs sent in the window, 4 attempts failed in it: one began before the window. It
        // is an attempt of this window too: 4 of 4 failed, never "4 of 3".
        let key = DestKey {
            netns: 7,
            family: FAMILY_INET,
            dport: 8080,
            daddr: v4([198, 18, 0, 2]),
        };
        let mut d = Snapshot::default();
        d.dests.insert(
            key,
            DestStats {
                connects: 3,
                failed: 4,
                ..Default::default()
            },
        );
        // 5 begun, 2 established, 1 failed, 2 still in SYN_SENT at the end: 5 attempts.
        d.dests.insert(
            DestKey { dport: 80, ..key },
            DestStats {
                connects: 5,
                established: 2,
                failed: 1,
                ..Default::default()
            },
        );
        let f = build(&d, &BTreeMap::new(), &DestFilter::default(), 10);
        let by_port = |p: u16| f.destinations.iter().find(|d| d.dport == p).unwrap();
        assert_eq!(
            (by_port(8080).failed_connects, by_port(8080).connects),
            (4, 4)
        );
        assert_eq!((by_port(80).failed_connects, by_port(80).connects), (1, 5));
        assert_eq!((f.totals.failed_connects, f.totals.connects), (5, 9));
        assert!(f
            .destinations
            .iter()
            .all(|d| d.failed_connects <= d.connects));
    }

    #[test]
    fn evictions_are_reported_in_a_note() {
        let d = Snapshot {
            dest_entries: 4096,
            dests_evicted: 37,
            ..Default::default()
        };
        let f = build(&d, &BTreeMap::new(), &DestFilter::default(), 10);
        assert_eq!((f.tracking.kept, f.tracking.evicted), (4096, 37));
        let note = f.tracking_note().unwrap();
        assert!(
            note.contains("saw more destinations than it kept") && note.contains("37 evicted"),
            "{note}"
        );
        let none = build(
            &Snapshot::default(),
            &BTreeMap::new(),
            &DestFilter::default(),
            10,
        );
        assert!(none.tracking_note().is_none());
        assert!(none
            .table(&|n| n.to_string())
            .contains("no TCP destination"));
    }
}
