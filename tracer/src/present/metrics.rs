//! The Prometheus exposition of `tracer serve`: what the kernel programs counted since the
//! server started, the rolling verdict, and the probes' health.
//!
//! Pure: [`Totals`] absorbs the difference between two frames (so counters only ever grow, even
//! when a kernel map entry is evicted and comes back), and [`render`] turns totals plus the
//! latest judged window into the OpenMetrics text format with `prometheus-client`. No clock, no
//! kernel, no I/O here: the server calls both once a second and serves the cached text.
//!
//! Label cardinality is bounded: at most [`Limits::netns`] network namespaces get series of
//! their own (first come, kept for the server's life so counters stay monotonic; the rest are
//! summed under `netns="other"`), and at most [`Limits::flows`] flows are shown, the top ones of
//! the rolling window. RTT and connect-time histograms are kept for at most
//! [`Limits::destinations`] destinations (first come, busiest first, sticky; the rest summed
//! under `daddr="other"`), on fixed power-of-two bounds that are edges of the kernel's buckets,
//! so the cumulative counts are exact.

use std::collections::{BTreeMap, BTreeSet};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::{Registry, Unit},
};
use tracer_common::{lat_bucket_bounds, DestKey, LAT_BUCKETS};

use crate::{
    judge::document::VerdictDocument,
    judge::layers::{classify, DropClass},
    judge::report::{reason_label, Symbolize},
    kernel::names::KernelNames,
    kernel::probes::{ProbeState, ProbeStatus},
    kernel::snapshot::{counter_names, Snapshot},
};

/// A network namespace's Kubernetes identity, when it is a pod's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodName {
    pub namespace: String,
    pub pod: String,
}

/// How many label values of each kind the exposition may carry.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Network namespaces with series of their own.
    pub netns: usize,
    /// Flows shown (top by retransmitted segments in the rolling window).
    pub flows: usize,
    /// Destinations with RTT / connect-time histograms of their own.
    pub destinations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            netns: 64,
            flows: 20,
            destinations: 50,
        }
    }
}

/// Index into [`crate::judge::flows::prometheus_bounds_us`] (its length: `+Inf`) of the bucket that
/// holds kernel latency bucket `i`: the first bound at or above the kernel bucket's upper end.
fn prom_bucket(i: usize, bounds: &[u64]) -> usize {
    if i + 1 >= LAT_BUCKETS {
        return bounds.len();
    }
    let upper = lat_bucket_bounds(i).1;
    bounds
        .iter()
        .position(|b| *b >= upper)
        .unwrap_or(bounds.len())
}

/// One destination's series labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct DestSeries {
    /// Inode as text, or [`OTHER`].
    netns: String,
    daddr: String,
    dport: String,
}

/// A latency histogram's running totals: count per bound (not cumulative), then `+Inf`.
#[derive(Debug, Clone, Default)]
struct LatencyTotals {
    buckets: Vec<u64>,
    sum_us: u64,
    count: u64,
}

impl LatencyTotals {
    fn add(&mut self, hist: &[u32], sum_us: u64) {
        let bounds = crate::judge::flows::prometheus_bounds_us();
        if self.buckets.is_empty() {
            self.buckets = vec![0; bounds.len() + 1];
        }
        for (i, c) in hist.iter().enumerate().filter(|(_, c)| **c > 0) {
            if let Some(slot) = self.buckets.get_mut(prom_bucket(i, &bounds)) {
                *slot += u64::from(*c);
            }
            self.count += u64::from(*c);
        }
        self.sum_us += sum_us;
    }

    fn histogram(&self) -> ConstHistogram {
        let bounds = crate::judge::flows::prometheus_bounds_us();
        ConstHistogram {
            sum: self.sum_us as f64 / 1e6,
            count: self.count,
            buckets: bounds
                .iter()
                .map(|b| *b as f64 / 1e6)
                .chain([f64::MAX])
                .zip(self.buckets.iter().copied().chain(std::iter::repeat(0)))
                .collect(),
        }
    }
}

/// A histogram with known totals, encoded as a Prometheus histogram (`_bucket{le}`, `_sum`,
/// `_count`).
#[derive(Debug)]
struct ConstHistogram {
    sum: f64,
    count: u64,
    /// (upper bound, count in that bucket alone); the last bound `f64::MAX` is `+Inf`.
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Label value for namespaces past the limit.
pub const OTHER: &str = "other";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct DropSeries {
    reason: String,
    layer: &'static str,
    /// Inode as text, or [`OTHER`].
    netns: String,
}

/// Monotonic totals since the server started, built from frame-to-frame differences.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    limits: Limits,
    /// Namespaces given series of their own (sticky).
    kept_netns: BTreeSet<u32>,
    /// Distinct namespaces seen past the limit.
    folded_netns: BTreeSet<u32>,
    drops: BTreeMap<DropSeries, u64>,
    /// Layer of each (reason, location) seen, so a location is symbolised once.
    layer_of: BTreeMap<(u32, u64), (String, &'static str)>,
    retransmitted_segments: u64,
    softirq_ns: BTreeMap<(u32, String), u64>,
    probe_counters: BTreeMap<&'static str, u64>,
    intervals: u64,
    /// Destinations given histograms of their own (sticky).
    kept_dests: BTreeSet<DestKey>,
    rtt: BTreeMap<DestSeries, LatencyTotals>,
    connect_time: BTreeMap<DestSeries, LatencyTotals>,
}

/// The metric's `layer` label for a drop: the runbook layer, or why it is not a loss.
fn layer_label(class: DropClass) -> &'static str {
    match class {
        DropClass::Loss { layer, .. } => layer.as_str(),
        DropClass::Noise { .. } => "noise",
        DropClass::NoListener => "no_listener",
        DropClass::Other { .. } => "other",
    }
}

impl Totals {
    pub fn new(limits: Limits) -> Totals {
        Totals {
            limits,
            ..Totals::default()
        }
    }

    fn netns_label(&mut self, inode: u32) -> String {
        if self.kept_netns.contains(&inode) {
            return inode.to_string();
        }
        if self.kept_netns.len() < self.limits.netns {
            self.kept_netns.insert(inode);
            return inode.to_string();
        }
        self.folded_netns.insert(inode);
        OTHER.to_owned()
    }

    fn dest_series(&mut self, key: &DestKey) -> DestSeries {
        if !self.kept_dests.contains(key) && self.kept_dests.len() < self.limits.destinations {
            self.kept_dests.insert(*key);
        }
        if self.kept_dests.contains(key) {
            DestSeries {
                netns: key.netns.to_string(),
                daddr: crate::judge::flows::dest_address(key),
                dport: key.dport.to_string(),
            }
        } else {
            DestSeries {
                netns: OTHER.to_owned(),
                daddr: OTHER.to_owned(),
                dport: OTHER.to_owned(),
            }
        }
    }

    /// Adds what happened between two frames (`delta` = later.since(earlier)).
    pub fn absorb(&mut self, delta: &Snapshot, names: &KernelNames, symbols: &dyn Symbolize) {
        self.intervals += 1;
        // Busiest destinations first, so the sticky slots go to them.
        let mut dests: Vec<_> = delta
            .dests
            .iter()
            .filter(|(_, d)| d.rtt_samples > 0 || d.connect_timed > 0)
            .collect();
        dests.sort_by(|a, b| {
            (b.1.rtt_samples + b.1.connect_timed)
                .cmp(&(a.1.rtt_samples + a.1.connect_timed))
                .then(a.0.cmp(b.0))
        });
        for (key, stats) in dests {
            let series = self.dest_series(key);
            if stats.rtt_samples > 0 {
                self.rtt
                    .entry(series.clone())
                    .or_default()
                    .add(&stats.rtt_hist, stats.rtt_sum_us);
            }
            if stats.connect_timed > 0 {
                self.connect_time
                    .entry(series)
                    .or_default()
                    .add(&stats.connect_hist, stats.connect_sum_us);
            }
        }
        let mut keys: Vec<_> = delta.drops.iter().collect();
        // Deterministic admission order: biggest first, then by key.
        keys.sort_by(|a, b| {
            b.1.cmp(a.1)
                .then((a.0.netns, a.0.reason, a.0.location).cmp(&(
                    b.0.netns,
                    b.0.reason,
                    b.0.location,
                )))
        });
        for (key, count) in keys {
            let (reason, layer) = self
                .layer_of
                .entry((key.reason, key.location))
                .or_insert_with(|| {
                    let (reason, _) = reason_label(key.reason, names);
                    let layer = layer_label(classify(&reason, &symbols.label(key.location)));
                    (reason, layer)
                })
                .clone();
            let netns = self.netns_label(key.netns);
            *self
                .drops
                .entry(DropSeries {
                    reason,
                    layer,
                    netns,
                })
                .or_insert(0) += count;
        }
        self.retransmitted_segments += delta
            .flows
            .values()
            .map(|f| f.retransmitted_segments)
            .sum::<u64>();
        for ((cpu, vec), stats) in &delta.softirq {
            let name = names
                .softirq_vectors
                .get(vec)
                .cloned()
                .unwrap_or_else(|| format!("VEC{vec}"));
            *self.softirq_ns.entry((*cpu, name)).or_insert(0) += stats.total_ns;
        }
        for (name, index) in counter_names() {
            let v = delta.counters.get(index as usize).copied().unwrap_or(0);
            *self.probe_counters.entry(name).or_insert(0) += v;
        }
    }

    /// Drops counted for one reason, over every namespace (for tests and summaries).
    pub fn drops_with_reason(&self, reason: &str) -> u64 {
        self.drops
            .iter()
            .filter(|(k, _)| k.reason == reason)
            .map(|(_, v)| v)
            .sum()
    }
}

/// Everything one exposition shows.
pub struct Exposition<'a> {
    pub totals: &'a Totals,
    /// The rolling window's verdict.
    pub verdict: &'a VerdictDocument,
    pub window_s: f64,
    pub uptime_s: f64,
    pub probes: &'a [ProbeStatus],
    pub kernel: &'a str,
    /// Pods by network-namespace inode.
    pub pods: &'a BTreeMap<u32, PodName>,
}

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[derive(Debug)]
enum Kind {
    Counter,
    Gauge,
}

/// One metric family: name (without `_total`), help, unit, kind and its series.
#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    kind: Kind,
    series: Vec<(Labels, f64)>,
}

/// A histogram family: name, help, unit and one histogram per label set.
#[derive(Debug)]
struct HistogramFamily {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    series: Vec<(Labels, ConstHistogram)>,
}

/// The families of one scrape, encoded by `prometheus-client`.
#[derive(Debug)]
struct Families(Vec<Family>, Vec<HistogramFamily>);

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            match family.kind {
                Kind::Counter => encode_family(&mut encoder, family, ConstCounter::new)?,
                Kind::Gauge => encode_family(&mut encoder, family, ConstGauge::new)?,
            }
        }
        for family in &self.1 {
            let mut out = encoder.encode_descriptor(
                family.name,
                family.help,
                family.unit.as_ref(),
                MetricType::Histogram,
            )?;
            for (labels, histogram) in &family.series {
                histogram.encode(out.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}

/// The RTT and connect-time histograms per destination.
fn histogram_families(x: &Exposition) -> Vec<HistogramFamily> {
    let series = |totals: &BTreeMap<DestSeries, LatencyTotals>| {
        totals
            .iter()
            .map(|(k, t)| {
                let (namespace, pod) = pod_of(x.pods, &k.netns);
                (
                    labels(&[
                        ("netns", &k.netns),
                        ("namespace", namespace),
                        ("pod", pod),
                        ("daddr", &k.daddr),
                        ("dport", &k.dport),
                    ]),
                    t.histogram(),
                )
            })
            .collect()
    };
    vec![
        HistogramFamily {
            name: "tracer_tcp_rtt",
            help: "Smoothed TCP round-trip time (srtt) of the sockets to each destination, one \
                   observation per received segment (tcp:tcp_probe).",
            unit: Some(Unit::Seconds),
            series: series(&x.totals.rtt),
        },
        HistogramFamily {
            name: "tracer_tcp_connect_duration",
            help: "Time from SYN sent to established, per destination (sock:inet_sock_set_state).",
            unit: Some(Unit::Seconds),
            series: series(&x.totals.connect_time),
        },
    ]
}

/// One family's descriptor and samples, each value made into a metric by `metric`.
fn encode_family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    family: &Family,
    metric: impl Fn(f64) -> M,
) -> Result<(), std::fmt::Error> {
    let mut out = encoder.encode_descriptor(
        family.name,
        family.help,
        family.unit.as_ref(),
        metric(0.0).metric_type(),
    )?;
    if let [(labels, value)] = family.series.as_slice() {
        if labels.is_empty() {
            // One unlabelled sample: `name 1.0`, not `name{} 1.0`.
            return metric(*value).encode(out);
        }
    }
    for (labels, value) in &family.series {
        metric(*value).encode(out.encode_family(labels)?)?;
    }
    Ok(())
}

fn pod_of<'a>(pods: &'a BTreeMap<u32, PodName>, netns: &str) -> (&'a str, &'a str) {
    netns
        .parse::<u32>()
        .ok()
        .and_then(|inode| pods.get(&inode))
        .map_or(("", ""), |p| (p.namespace.as_str(), p.pod.as_str()))
}

fn families(x: &Exposition) -> Vec<Family> {
    let t = x.totals;
    let mut out = Vec::new();
    out.push(Family {
        name: "tracer_build_info",
        help: "The tracer's version and the kernel it runs on (always 1).",
        unit: None,
        kind: Kind::Gauge,
        series: vec![(
            labels(&[("version", env!("CARGO_PKG_VERSION")), ("kernel", x.kernel)]),
            1.0,
        )],
    });
    out.push(Family {
        name: "tracer_uptime",
        help: "Time since the server attached its probes.",
        unit: Some(Unit::Seconds),
        kind: Kind::Gauge,
        series: vec![(Vec::new(), x.uptime_s)],
    });
    out.push(Family {
        name: "tracer_probe_attached",
        help: "1 when the probe is attached and counting, 0 when it is missing or failed.",
        unit: None,
        kind: Kind::Gauge,
        series: x
            .probes
            .iter()
            .map(|p| {
                let state = match p.state {
                    ProbeState::Attached => "attached",
                    ProbeState::Missing => "missing",
                    ProbeState::Failed => "failed",
                };
                (
                    labels(&[("probe", &p.tracepoint), ("state", state)]),
                    f64::from(u8::from(p.state == ProbeState::Attached)),
                )
            })
            .collect(),
    });
    out.push(Family {
        name: "tracer_drops",
        help: "Packets the kernel freed as dropped (skb:kfree_skb), by drop reason, the layer it \
               points at (or noise/no_listener/other), network namespace inode and pod.",
        unit: None,
        kind: Kind::Counter,
        series: t
            .drops
            .iter()
            .map(|(k, v)| {
                let (namespace, pod) = pod_of(x.pods, &k.netns);
                (
                    labels(&[
                        ("reason", &k.reason),
                        ("layer", k.layer),
                        ("netns", &k.netns),
                        ("namespace", namespace),
                        ("pod", pod),
                    ]),
                    *v as f64,
                )
            })
            .collect(),
    });
    out.push(Family {
        name: "tracer_netns_folded",
        help: "Network namespaces seen past the label limit, counted under netns=\"other\".",
        unit: None,
        kind: Kind::Gauge,
        series: vec![(Vec::new(), t.folded_netns.len() as f64)],
    });
    let counter = |name: &str| t.probe_counters.get(name).copied().unwrap_or(0) as f64;
    out.push(Family {
        name: "tracer_tcp_retransmits",
        help: "TCP retransmissions (skbs) seen by tcp:tcp_retransmit_skb.",
        unit: None,
        kind: Kind::Counter,
        series: vec![(Vec::new(), counter("retransmit_events"))],
    });
    out.push(Family {
        name: "tracer_tcp_retransmitted_segments",
        help: "TCP segments in those retransmissions (comparable with the kernel's RetransSegs).",
        unit: None,
        kind: Kind::Counter,
        series: vec![(Vec::new(), t.retransmitted_segments as f64)],
    });
    out.push(Family {
        name: "tracer_softirq",
        help: "Time each CPU spent in each networking softirq vector.",
        unit: Some(Unit::Seconds),
        kind: Kind::Counter,
        series: t
            .softirq_ns
            .iter()
            .filter(|((_, vec), _)| vec == "NET_RX" || vec == "NET_TX")
            .map(|((cpu, vec), ns)| {
                (
                    labels(&[("cpu", &cpu.to_string()), ("vec", vec)]),
                    *ns as f64 / 1e9,
                )
            })
            .collect(),
    });
    out.push(Family {
        name: "tracer_probe_events",
        help: "The kernel programs' own counters: events seen, map-full and read errors.",
        unit: None,
        kind: Kind::Counter,
        series: t
            .probe_counters
            .iter()
            .map(|(name, v)| (labels(&[("counter", name)]), *v as f64))
            .collect(),
    });
    let d = x.verdict;
    out.push(Family {
        name: "tracer_verdict_info",
        help: "The rolling window's verdict (always 1): root cause, failure layer, severity.",
        unit: None,
        kind: Kind::Gauge,
        series: vec![(
            labels(&[
                ("root_cause", &d.root_cause),
                ("failure_layer", &d.failure_layer),
                ("severity", &d.severity),
            ]),
            1.0,
        )],
    });
    out.push(Family {
        name: "tracer_verdict_confidence",
        help: "Confidence of the rolling verdict, 0 to 1.",
        unit: None,
        kind: Kind::Gauge,
        series: vec![(Vec::new(), d.confidence)],
    });
    out.push(Family {
        name: "tracer_verdict_window",
        help: "Length of the rolling window the verdict and layer losses are judged on.",
        unit: Some(Unit::Seconds),
        kind: Kind::Gauge,
        series: vec![(Vec::new(), x.window_s)],
    });
    out.push(Family {
        name: "tracer_layer_lost_packets",
        help: "Packets each layer lost in the rolling window (probes and counters combined).",
        unit: None,
        kind: Kind::Gauge,
        series: d
            .layer_scores
            .iter()
            .map(|(layer, score)| {
                (
                    labels(&[("layer", layer.as_str())]),
                    score.lost_packets as f64,
                )
            })
            .collect(),
    });
    let mut flows: Vec<_> = d
        .observations
        .retransmits
        .flows
        .iter()
        .filter(|f| f.retransmitted_segments > 0)
        .collect();
    flows.sort_by_key(|f| std::cmp::Reverse(f.retransmitted_segments));
    out.push(Family {
        name: "tracer_flow_retransmitted_segments",
        help: "Retransmitted TCP segments of the busiest flows in the rolling window (top N).",
        unit: None,
        kind: Kind::Gauge,
        series: flows
            .iter()
            .take(x.totals.limits.flows)
            .map(|f| {
                let (namespace, pod) = pod_of(x.pods, &f.netns.to_string());
                (
                    labels(&[
                        ("netns", &f.netns.to_string()),
                        ("namespace", namespace),
                        ("pod", pod),
                        ("saddr", &f.saddr),
                        ("daddr", &f.daddr),
                        ("dport", &f.dport.to_string()),
                    ]),
                    f.retransmitted_segments as f64,
                )
            })
            .collect(),
    });
    out
}

/// The OpenMetrics text of one scrape.
pub fn render(x: &Exposition) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families(families(x), histogram_families(x))));
    let mut text = String::new();
    // Writing to a String cannot fail; an encoder error would be a bug in a label.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        return format!("# tracer: could not encode the metrics: {e}\n# EOF\n");
    }
    text
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use tracer_common::{counter, DropKey, FlowKey, FlowStats, SoftirqStats, FAMILY_INET};

    use super::*;
    use crate::{
        judge::document::VerdictDocument, judge::report::Report, judge::verdict::Verdict,
        node::evidence::NodeFacts,
    };

    fn names() -> KernelNames {
        KernelNames {
            drop_reasons: [
                (2, "NO_SOCKET".to_owned()),
                (6, "NETFILTER_DROP".to_owned()),
            ]
            .into_iter()
            .collect(),
            drop_reasons_source: "test".to_owned(),
            reset_reasons: BTreeMap::new(),
            softirq_vectors: [(3, "NET_RX".to_owned()), (1, "TIMER".to_owned())]
                .into_iter()
                .collect(),
        }
    }

    fn symbols() -> BTreeMap<u64, String> {
        [
            (0x10, "__udp4_lib_rcv+0x4bc".to_owned()),
            (0x20, "nft_do_chain+0x3e8".to_owned()),
        ]
        .into_iter()
        .collect()
    }

    fn delta(netns: u32, no_socket: u64, nf: u64) -> Snapshot {
        let mut drops = HashMap::new();
        drops.insert(
            DropKey {
                reason: 2,
                netns,
                location: 0x10,
            },
            no_socket,
        );
        drops.insert(
            DropKey {
                reason: 6,
                netns,
                location: 0x20,
            },
            nf,
        );
        let mut counters = vec![0; counter::COUNT as usize];
        counters[counter::RETRANSMIT_EVENTS as usize] = 3;
        let mut flows = HashMap::new();
        flows.insert(
            FlowKey {
                netns,
                family: FAMILY_INET,
                sport: 40000,
                dport: 80,
                _pad: 0,
                saddr: [u32::from_ne_bytes([198, 18, 0, 1]), 0, 0, 0],
                daddr: [u32::from_ne_bytes([198, 18, 0, 2]), 0, 0, 0],
            },
            FlowStats {
                retransmits: 3,
                retransmitted_segments: 7,
                ..FlowStats::default()
            },
        );
        let mut softirq = BTreeMap::new();
        softirq.insert(
            (1, 3),
            SoftirqStats {
                runs: 10,
                total_ns: 250_000_000,
                hist: [0; tracer_common::HIST_BUCKETS],
            },
        );
        softirq.insert(
            (1, 1),
            SoftirqStats {
                runs: 10,
                total_ns: 1,
                hist: [0; tracer_common::HIST_BUCKETS],
            },
        );
        Snapshot {
            drops,
            flows,
            softirq,
            counters,
            program_costs: Vec::new(),
            ..Snapshot::default()
        }
    }

    fn document() -> VerdictDocument {
        let verdict = Verdict {
            root_cause: "security_rule_drops".to_owned(),
            failure_layer: Some("iptables_netpolicy".to_owned()),
            evidence: Vec::new(),
            severity: "high".to_owned(),
            mitigation: crate::judge::verdict::Mitigation {
                immediate: String::new(),
                long_term: String::new(),
            },
            cross_reference: Vec::new(),
            ruled_out: Vec::new(),
            escalation: Vec::new(),
            confidence: 0.9,
            timeline: Vec::new(),
            layer_scores: BTreeMap::new(),
            noise: crate::judge::verdict::NoiseSummary::default(),
            other_findings: Vec::new(),
        };
        let report: Report = crate::judge::report::build(
            &delta(7, 1, 1),
            &names(),
            &symbols(),
            Vec::new(),
            crate::judge::report::WindowInfo {
                duration_s: 60.0,
                startup_ms: 100.0,
                netns: None,
            },
            "6.18".to_owned(),
            Vec::new(),
        );
        VerdictDocument::new(verdict, report, &NodeFacts::default(), Vec::new())
    }

    fn parse(text: &str) -> prometheus_parse::Scrape {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        prometheus_parse::Scrape::parse(lines).expect("a Prometheus parser reads the exposition")
    }

    fn value(scrape: &prometheus_parse::Scrape, metric: &str, want: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .filter(|s| want.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{metric} {want:?} in\n{}",
            scrape_names(scrape)
        );
        found[0]
    }

    fn scrape_names(scrape: &prometheus_parse::Scrape) -> String {
        scrape
            .samples
            .iter()
            .map(|s| format!("{} {:?}", s.metric, s.labels))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn totals_add_intervals_and_the_exposition_parses() {
        let mut totals = Totals::new(Limits::default());
        totals.absorb(&delta(7, 100, 5), &names(), &symbols());
        totals.absorb(&delta(7, 20, 0), &names(), &symbols());
        let pods = [(
            7,
            PodName {
                namespace: "shop".to_owned(),
                pod: "cart-0".to_owned(),
            },
        )]
        .into_iter()
        .collect();
        let doc = document();
        let text = render(&Exposition {
            totals: &totals,
            verdict: &doc,
            window_s: 60.0,
            uptime_s: 12.0,
            probes: &[],
            kernel: "6.18",
            pods: &pods,
        });
        assert!(text.ends_with("# EOF\n"), "{text}");
        let scrape = parse(&text);
        let no_socket = [
            ("reason", "NO_SOCKET"),
            ("layer", "no_listener"),
            ("namespace", "shop"),
            ("pod", "cart-0"),
            ("netns", "7"),
        ];
        assert_eq!(value(&scrape, "tracer_drops_total", &no_socket), 120.0);
        assert_eq!(
            value(
                &scrape,
                "tracer_drops_total",
                &[
                    ("reason", "NETFILTER_DROP"),
                    ("layer", "iptables_netpolicy")
                ]
            ),
            5.0
        );
        assert_eq!(value(&scrape, "tracer_tcp_retransmits_total", &[]), 6.0);
        assert_eq!(
            value(&scrape, "tracer_tcp_retransmitted_segments_total", &[]),
            14.0
        );
        assert_eq!(
            value(
                &scrape,
                "tracer_softirq_seconds_total",
                &[("cpu", "1"), ("vec", "NET_RX")]
            ),
            0.5
        );
        assert!(
            !text.contains("vec=\"TIMER\""),
            "only networking vectors are exported"
        );
        assert_eq!(
            value(
                &scrape,
                "tracer_verdict_info",
                &[
                    ("root_cause", "security_rule_drops"),
                    ("failure_layer", "iptables_netpolicy")
                ]
            ),
            1.0
        );
        assert_eq!(
            value(
                &scrape,
                "tracer_flow_retransmitted_segments",
                &[("daddr", "198.18.0.2"), ("dport", "80"), ("pod", "cart-0")]
            ),
            7.0
        );
    }

    #[test]
    fn namespaces_past_the_limit_fold_into_other_and_stay_monotonic() {
        let mut totals = Totals::new(Limits {
            netns: 2,
            flows: 1,
            destinations: 50,
        });
        for netns in 1..=5 {
            totals.absorb(&delta(netns, 10, 0), &names(), &symbols());
        }
        // The first two namespaces keep their own series for good, the other three are summed.
        totals.absorb(&delta(1, 4, 0), &names(), &symbols());
        let doc = document();
        let text = render(&Exposition {
            totals: &totals,
            verdict: &doc,
            window_s: 60.0,
            uptime_s: 1.0,
            probes: &[],
            kernel: "6.18",
            pods: &BTreeMap::new(),
        });
        let scrape = parse(&text);
        let drops = |netns| {
            value(
                &scrape,
                "tracer_drops_total",
                &[("reason", "NO_SOCKET"), ("netns", netns)],
            )
        };
        assert_eq!(drops("1"), 14.0);
        assert_eq!(drops("2"), 10.0);
        assert_eq!(drops(OTHER), 30.0);
        assert_eq!(value(&scrape, "tracer_netns_folded", &[]), 3.0);
        let series = scrape
            .samples
            .iter()
            .filter(|s| s.metric == "tracer_drops_total")
            .count();
        // At most 3 netns label values (1, 2, other) × 2 reasons, however many namespaces.
        assert!(series <= 6, "{series} series");
        assert_eq!(totals.drops_with_reason("NO_SOCKET"), 54);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod histogram_tests {
    use super::*;
    use crate::judge::report::{Report, WindowInfo};
    use tracer_common::{lat_bucket, DestStats, FAMILY_INET};

    fn dest(netns: u32, last: u8, port: u16) -> DestKey {
        DestKey {
            netns,
            family: FAMILY_INET,
            dport: port,
            daddr: [u32::from_ne_bytes([198, 18, 0, last]), 0, 0, 0],
        }
    }

    fn stats(rtt_us: &[(u64, u32)], connect_us: &[(u64, u32)]) -> DestStats {
        let mut s = DestStats::default();
        for (v, n) in rtt_us {
            s.rtt_hist[lat_bucket(*v)] += n;
            s.rtt_samples += u64::from(*n);
            s.rtt_sum_us += v * u64::from(*n);
        }
        for (v, n) in connect_us {
            s.connect_hist[lat_bucket(*v)] += n;
            s.connect_timed += u64::from(*n);
            s.connect_sum_us += v * u64::from(*n);
        }
        s
    }

    fn exposition(totals: &Totals, pods: &BTreeMap<u32, PodName>) -> String {
        let report = Report {
            tracer_version: "t",
            kernel: "6.18".to_owned(),
            window: WindowInfo {
                duration_s: 1.0,
                startup_ms: 1.0,
                netns: None,
            },
            probes: vec![],
            drops: Default::default(),
            retransmits: Default::default(),
            softirq: vec![],
            flows: Default::default(),
            tracer_counters: BTreeMap::new(),
            tracer_cost: Default::default(),
            notes: vec![],
        };
        let verdict = crate::judge::verdict::Verdict {
            root_cause: "none".to_owned(),
            failure_layer: None,
            evidence: Vec::new(),
            severity: "NONE".to_owned(),
            mitigation: crate::judge::verdict::Mitigation {
                immediate: String::new(),
                long_term: String::new(),
            },
            cross_reference: Vec::new(),
            ruled_out: Vec::new(),
            escalation: Vec::new(),
            confidence: 1.0,
            timeline: Vec::new(),
            layer_scores: BTreeMap::new(),
            noise: Default::default(),
            other_findings: Vec::new(),
        };
        let doc = VerdictDocument::new(
            verdict,
            report,
            &crate::node::evidence::NodeFacts::default(),
            Vec::new(),
        );
        render(&Exposition {
            totals,
            verdict: &doc,
            window_s: 60.0,
            uptime_s: 2.0,
            probes: &[],
            kernel: "6.18",
            pods,
        })
    }

    fn histogram(
        text: &str,
        metric: &str,
        want: &[(&str, &str)],
    ) -> Vec<prometheus_parse::HistogramCount> {
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let found: Vec<_> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .filter(|s| want.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .collect();
        assert_eq!(found.len(), 1, "{metric} {want:?} in\n{text}");
        match &found[0].value {
            prometheus_parse::Value::Histogram(h) => h.clone(),
            other => panic!("{metric} is not a histogram: {other:?}"),
        }
    }

    /// The kernel's RTT histogram becomes a Prometheus histogram: cumulative at power-of-two
    /// bounds (seconds), exact because those are kernel bucket edges, summed over intervals.
    #[test]
    fn rtt_and_connect_time_are_prometheus_histograms() {
        let mut totals = Totals::new(Limits::default());
        let key = dest(7, 2, 443);
        let mut d1 = Snapshot::default();
        d1.dests
            .insert(key, stats(&[(1_000, 3), (40_000, 2)], &[(50_000, 1)]));
        totals.absorb(&d1, &KernelNames::default(), &BTreeMap::new());
        let mut d2 = Snapshot::default();
        d2.dests.insert(key, stats(&[(3_000, 5)], &[]));
        totals.absorb(&d2, &KernelNames::default(), &BTreeMap::new());
        let pods = [(
            7,
            PodName {
                namespace: "shop".to_owned(),
                pod: "cart-0".to_owned(),
            },
        )]
        .into_iter()
        .collect();
        let text = exposition(&totals, &pods);
        assert!(
            text.contains("# TYPE tracer_tcp_rtt_seconds histogram"),
            "{text}"
        );
        let labels = [("daddr", "198.18.0.2"), ("dport", "443"), ("pod", "cart-0")];
        let rtt = histogram(&text, "tracer_tcp_rtt_seconds", &labels);
        let at = |le: f64| {
            rtt.iter()
                .find(|b| b.less_than == le || (b.less_than - le).abs() < 1e-12)
                .map(|b| b.count)
                .unwrap()
        };
        // 1 ms samples are ≤ 1.024 ms; 3 ms ≤ 4.096 ms; 40 ms ≤ 65.536 ms.
        assert_eq!(at(512e-6), 0.0);
        assert_eq!(at(1024e-6), 3.0);
        assert_eq!(at(2048e-6), 3.0);
        assert_eq!(at(4096e-6), 8.0);
        assert_eq!(at(65_536e-6), 10.0);
        assert_eq!(at(f64::INFINITY), 10.0);
        assert!(rtt.windows(2).all(|w| w[0].count <= w[1].count));
        assert!(text.contains("tracer_tcp_rtt_seconds_count{"), "{text}");
        let sum_line = text
            .lines()
            .find(|l| l.starts_with("tracer_tcp_rtt_seconds_sum{"))
            .unwrap();
        // 3×1 ms + 2×40 ms + 5×3 ms = 98 ms.
        assert!(sum_line.ends_with(" 0.098"), "{sum_line}");
        let connect = histogram(&text, "tracer_tcp_connect_duration_seconds", &labels);
        assert_eq!(connect.last().map(|b| b.count), Some(1.0));
    }

    /// Past the destination limit, histograms fold into `daddr="other"`; the kept ones stay.
    #[test]
    fn destinations_past_the_limit_fold_into_other() {
        let mut totals = Totals::new(Limits {
            netns: 64,
            flows: 20,
            destinations: 2,
        });
        let mut d = Snapshot::default();
        for last in 1..=5u8 {
            d.dests
                .insert(dest(7, last, 80), stats(&[(1_000, u32::from(last))], &[]));
        }
        totals.absorb(&d, &KernelNames::default(), &BTreeMap::new());
        let text = exposition(&totals, &BTreeMap::new());
        // The two busiest (5 and 4 samples) keep their series; 1 + 2 + 3 are summed.
        let count = |daddr: &str| {
            histogram(&text, "tracer_tcp_rtt_seconds", &[("daddr", daddr)])
                .last()
                .map(|b| b.count)
                .unwrap()
        };
        assert_eq!(count("198.18.0.5"), 5.0);
        assert_eq!(count("198.18.0.4"), 4.0);
        assert_eq!(count(OTHER), 6.0);
        let series = text
            .lines()
            .filter(|l| l.starts_with("tracer_tcp_rtt_seconds_count"))
            .count();
        assert_eq!(series, 3);
    }
}
