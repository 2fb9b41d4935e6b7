//! Every metric the server exposes: name, help, unit, kind and series, built from the totals,
//! the rolling verdict, the probes and the pods. Uses `encoding`'s family types and the series
//! of `totals` and `latency`.

use std::collections::BTreeMap;

use prometheus_client::registry::Unit;

use super::{
    encoding::{labels, Family, HistogramFamily, Kind},
    latency::{DestSeries, LatencyTotals},
    Exposition, PodName,
};
use crate::kernel::probes::ProbeState;

/// The RTT and connect-time histograms per destination.
pub(super) fn histogram_families(x: &Exposition) -> Vec<HistogramFamily> {
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
                   observation per received segment (tcp:tcp_probe); a server's sockets count \
                   under its listening address and port.",
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

fn pod_of<'a>(pods: &'a BTreeMap<u32, PodName>, netns: &str) -> (&'a str, &'a str) {
    netns
        .parse::<u32>()
        .ok()
        .and_then(|inode| pods.get(&inode))
        .map_or(("", ""), |p| (p.namespace.as_str(), p.pod.as_str()))
}

pub(super) fn families(x: &Exposition) -> Vec<Family> {
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
    // A counter not known in some interval has no series: an absent series, not a false total.
    let counter = |name: &str| t.probe_counter(name).map(|v| (Vec::new(), v as f64));
    out.push(Family {
        name: "tracer_tcp_retransmits",
        help: "TCP retransmissions (skbs) seen by tcp:tcp_retransmit_skb.",
        unit: None,
        kind: Kind::Counter,
        series: counter("retransmit_events").into_iter().collect(),
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
        help: "Time each CPU spent in each networking softirq vector (estimated from a sample \
               of runs where a CPU runs it more often than every ~50 µs).",
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
            .filter(|(name, _)| !t.probe_counters_unknown.contains(*name))
            .map(|(name, v)| (labels(&[("counter", name)]), *v as f64))
            .collect(),
    });
    out.push(Family {
        name: "tracer_program_recursion_misses",
        help: "Events each kernel program missed because another BPF program was running on \
               that CPU (the kernel's recursion_misses, kernel >= 5.12).",
        unit: None,
        kind: Kind::Counter,
        series: t
            .recursion_misses
            .iter()
            .map(|(program, v)| (labels(&[("program", program)]), *v as f64))
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
        name: "tracer_verdict_onset_timestamp",
        help: "When the rolling verdict's loss began (UNIX time), kept while the verdict names \
               the same layer; no series while healthy.",
        unit: Some(Unit::Seconds),
        kind: Kind::Gauge,
        series: x
            .onset
            .map(|o| {
                (
                    labels(&[
                        ("root_cause", &o.root_cause),
                        ("failure_layer", &o.failure_layer),
                    ]),
                    o.unix_s,
                )
            })
            .into_iter()
            .collect(),
    });
    out.push(Family {
        name: "tracer_nic_rx_crc_errors",
        help: "The host interfaces' rx_crc_errors (the kernel's own counter): rising means \
               failing NIC hardware or cabling.",
        unit: None,
        kind: Kind::Counter,
        series: x
            .nic_rx_crc_errors
            .iter()
            .map(|(device, v)| (labels(&[("device", device)]), *v as f64))
            .collect(),
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
