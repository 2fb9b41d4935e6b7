//! Per-destination latency histograms (RTT, connect time): the kernel's buckets mapped onto
//! fixed Prometheus bounds, running totals per series, and the histogram metric type. Uses the
//! bounds of `judge::flows` and the kernel buckets of `tracer_common`.

use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::MetricType,
};
use tracer_common::{lat_bucket_bounds, LAT_BUCKETS};

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
pub(super) struct DestSeries {
    /// Inode as text, or [`OTHER`].
    pub(super) netns: String,
    pub(super) daddr: String,
    pub(super) dport: String,
}

/// A latency histogram's running totals: count per bound (not cumulative), then `+Inf`.
#[derive(Debug, Clone, Default)]
pub(super) struct LatencyTotals {
    buckets: Vec<u64>,
    sum_us: u64,
    count: u64,
}

impl LatencyTotals {
    pub(super) fn add(&mut self, hist: &[u32], sum_us: u64) {
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

    /// Adds another series' totals (a destination folded into `other`).
    pub(super) fn merge(&mut self, other: &LatencyTotals) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.sum_us += other.sum_us;
        self.count += other.count;
    }

    pub(super) fn histogram(&self) -> ConstHistogram {
        let bounds = crate::judge::flows::prometheus_bounds_us();
        ConstHistogram {
            sum: self.sum_us as f64 / 1e6,
            count: self.count,
            buckets: bounds
                .iter()
                .map(|b| *b as f64 / 1e6)
                .chain([f64::INFINITY])
                .zip(self.buckets.iter().copied().chain(std::iter::repeat(0)))
                .collect(),
        }
    }
}

/// A histogram with known totals, encoded as a Prometheus histogram (`_bucket{le}`, `_sum`,
/// `_count`).
#[derive(Debug)]
pub(super) struct ConstHistogram {
    sum: f64,
    count: u64,
    /// (upper bound, count in that bucket alone); the last bound `f64::INFINITY` is `+Inf`
    /// (prometheus-client writes `+Inf` for that value only).
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use tracer_common::{lat_bucket, DestKey, DestStats, FAMILY_INET};

    use crate::{
        judge::document::VerdictDocument,
        judge::report::{Report, WindowInfo},
        kernel::{names::KernelNames, snapshot::Snapshot},
        present::metrics::{render, Exposition, Limits, PodName, Totals, OTHER},
    };

    fn dest(netns: u32, last: u8, port: u16) -> DestKey {
        DestKey {
            netns,
            family: FAMILY_INET,
            dport: port,
            daddr: [u32::from_ne_bytes([198, 18, 0, last]), 0, 0, 0],
        }
    }

    pub(in crate::present::metrics) fn stats(
        rtt_us: &[(u64, u32)],
        connect_us: &[(u64, u32)],
    ) -> DestStats {
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

    pub(in crate::present::metrics) fn exposition(
        totals: &Totals,
        pods: &BTreeMap<u32, PodName>,
    ) -> String {
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
            tracer_counters_unknown: Vec::new(),
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
            node: "node-a",
            onset: None,
            nic_rx_crc_errors: &BTreeMap::new(),
        })
    }

    pub(in crate::present::metrics) fn histogram(
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

    /// The exposition's last bucket is `le="+Inf"` holding the total count, and no bucket bound
    /// is a huge number standing in for it (prometheus-client 0.26 writes `+Inf` only for
    /// `f64::INFINITY`); a pod name with a quote and a backslash comes out escaped.
    #[test]
    fn last_bucket_is_plus_inf_in_the_exposition_text() {
        let mut totals = Totals::new(Limits::default());
        let mut d = Snapshot::default();
        d.dests
            .insert(dest(7, 2, 443), stats(&[(1_000, 3), (40_000, 2)], &[]));
        totals.absorb(&d, &KernelNames::default(), &BTreeMap::new());
        let pods = [(
            7,
            PodName {
                namespace: "shop".to_owned(),
                pod: r#"a"b\c"#.to_owned(),
            },
        )]
        .into_iter()
        .collect();
        let text = exposition(&totals, &pods);
        let rtt_buckets: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("tracer_tcp_rtt_seconds_bucket{"))
            .collect();
        let last = rtt_buckets.last().copied().unwrap_or_default();
        assert!(last.contains(r#"le="+Inf""#), "{last}");
        assert!(last.ends_with(" 5"), "{last}");
        assert!(
            !rtt_buckets.iter().any(|l| l.contains("e308")),
            "{rtt_buckets:#?}"
        );
        assert_eq!(rtt_buckets.iter().filter(|l| l.contains("+Inf")).count(), 1);
        assert!(last.contains(r#"pod="a\"b\\c""#), "{last}");
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
