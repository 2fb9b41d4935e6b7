//! Tests of the exposition as a whole: totals absorbed from frames, rendered, parsed back by a
//! Prometheus parser; namespaces past the limit folded into `other`.

use std::collections::{BTreeMap, HashMap};

use tracer_common::{counter, DropKey, FlowKey, FlowStats, SoftirqStats, FAMILY_INET};

use super::*;
use crate::kernel::{names::KernelNames, snapshot::Snapshot};
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
        ephemeral_ports: 0,
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
            timed_runs: 10,
            total_ns: 250_000_000,
            hist: [0; tracer_common::HIST_BUCKETS],
        },
    );
    softirq.insert(
        (1, 1),
        SoftirqStats {
            runs: 10,
            timed_runs: 10,
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
        program_misses: [("kfree_skb".to_owned(), no_socket / 10)]
            .into_iter()
            .collect(),
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
        node: "node-a",
        onset: None,
        nic_rx_crc_errors: &BTreeMap::new(),
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
    // 100/10 + 20/10: the kernel's recursion misses, summed over the intervals.
    assert_eq!(
        value(
            &scrape,
            "tracer_program_recursion_misses_total",
            &[("program", "kfree_skb")]
        ),
        12.0
    );
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

/// Issue 15: a run counter unknown in one interval (the kernel's run count unreadable) has no
/// series from then on: a total that missed an interval would be false, an absent series is not.
#[test]
fn a_run_counter_unknown_in_an_interval_loses_its_series() {
    let with_kfree = |mut d: Snapshot| {
        d.counters[counter::KFREE_SKB_EVENTS as usize] = 10;
        d
    };
    let mut totals = Totals::new(Limits::default());
    totals.absorb(&with_kfree(delta(7, 100, 5)), &names(), &symbols());
    let mut unknown = with_kfree(delta(7, 20, 0));
    unknown.counters_unknown.insert(counter::RETRANSMIT_EVENTS);
    totals.absorb(&unknown, &names(), &symbols());
    totals.absorb(&with_kfree(delta(7, 20, 0)), &names(), &symbols());
    let doc = document();
    let text = render(&Exposition {
        totals: &totals,
        verdict: &doc,
        window_s: 60.0,
        uptime_s: 12.0,
        probes: &[],
        kernel: "6.18",
        pods: &BTreeMap::new(),
        node: "node-a",
        onset: None,
        nic_rx_crc_errors: &BTreeMap::new(),
    });
    let scrape = parse(&text);
    assert!(
        !text.contains("tracer_tcp_retransmits_total")
            && !text.contains("counter=\"retransmit_events\""),
        "{text}"
    );
    // The other counters still add up over the three intervals.
    assert_eq!(
        value(
            &scrape,
            "tracer_probe_events_total",
            &[("counter", "kfree_skb_events")]
        ),
        30.0
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
        node: "node-a",
        onset: None,
        nic_rx_crc_errors: &BTreeMap::new(),
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

#[test]
fn every_series_carries_the_node_and_the_onset_stays_while_the_layer_does() {
    let mut doc = document();
    doc.window.start = Some("2026-12-05T17:00:00.000Z".to_owned());
    doc.timeline = vec![crate::judge::verdict::TimelineEntry {
        at_s: 12.0,
        at: None,
        event: "onset: netfilter loss rose to 100/s from a baseline of 0/s".to_owned(),
    }];
    let mut tracker = OnsetTracker::default();
    let first = tracker.update(&doc).cloned().expect("an onset");
    assert_eq!(first.unix_s, 1_796_490_012.0);
    // The window slides on: the onset is no longer inside it, the loss goes on in the same
    // layer, the onset stays.
    doc.window.start = Some("2026-12-05T17:01:00.000Z".to_owned());
    doc.timeline.clear();
    assert_eq!(
        tracker.update(&doc).map(|o| o.unix_s),
        Some(1_796_490_012.0)
    );
    let crc = [("eth0".to_owned(), 29u64)].into_iter().collect();
    let totals = Totals::new(Limits::default());
    let text = render(&Exposition {
        totals: &totals,
        verdict: &doc,
        window_s: 60.0,
        uptime_s: 1.0,
        probes: &[],
        kernel: "6.18",
        pods: &BTreeMap::new(),
        node: "ip-10-0-1-5",
        onset: tracker.update(&doc),
        nic_rx_crc_errors: &crc,
    });
    let scrape = parse(&text);
    assert!(!scrape.samples.is_empty());
    for s in &scrape.samples {
        assert_eq!(s.labels.get("node"), Some("ip-10-0-1-5"), "{}", s.metric);
    }
    assert_eq!(
        value(
            &scrape,
            "tracer_verdict_onset_timestamp_seconds",
            &[("failure_layer", "iptables_netpolicy")]
        ),
        1_796_490_012.0
    );
    assert_eq!(
        value(
            &scrape,
            "tracer_nic_rx_crc_errors_total",
            &[("device", "eth0")]
        ),
        29.0
    );
    // Healthy: no onset series, and the next degradation starts afresh.
    doc.root_cause = "none".to_owned();
    assert!(tracker.update(&doc).is_none());
}
