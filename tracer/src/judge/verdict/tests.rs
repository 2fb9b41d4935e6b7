//! Table-driven tests of the verdict rules on recorded-style windows, without root.

use std::collections::BTreeMap;

use super::{fixtures::*, flow_signals::route_covers, *};
use crate::node::evidence::{Conntrack, FirewallRule, RouteFact};

#[test]
fn healthy_window_with_noise_gives_none() {
    let o = observed(
        &[
            ("TCP_OLD_SEQUENCE", "tcp_validate_incoming+0x1", 69),
            ("QUEUE_PURGE", "skb_queue_purge_reason+0x1", 12),
            ("NOT_SPECIFIED", "icmp_rcv+0x20", 3),
            ("NO_SOCKET", "__udp4_lib_rcv+0x4bc", 4),
        ],
        &[(443, 2)],
        &[(0, 5_000_000), (1, 4_000_000)],
    );
    let end = host(
        &[("Tcp", "OutSegs", 100_000), ("Tcp", "RetransSegs", 2)],
        &[("rx_errors", 0)],
        &[],
    );
    let v = decide(&window(o, quiet(), end));
    assert_eq!(v.root_cause, "none");
    assert_eq!(v.failure_layer, None);
    assert_eq!(v.severity, "NONE");
    assert_eq!(v.noise.total, 84);
    assert!(v.cross_reference.is_empty());
    assert!(v.escalation.is_empty());
    assert!(v
        .ruled_out
        .iter()
        .any(|r| r.check.contains("NO_SOCKET") && r.result.starts_with("4 ")));
}

#[test]
fn netfilter_drops_are_security_rule_drops_with_the_rule_as_evidence() {
    let o = observed(
        &[("NETFILTER_DROP", "nft_do_chain+0x46f", 500)],
        &[(80, 40)],
        &[],
    );
    let mut w = window(o, quiet(), quiet());
    let rule = |packets| FirewallRule {
        netns: 7,
        netns_label: "netns router".to_owned(),
        source: "nftables".to_owned(),
        table: "inet filter".to_owned(),
        chain: "forward".to_owned(),
        hook: Some("forward".to_owned()),
        rule: "ip daddr 198.18.2.0/24 counter".to_owned(),
        verdict: "drop".to_owned(),
        packets: Some(packets),
        bytes: None,
    };
    w.facts_start.firewall_rules = vec![rule(10)];
    w.facts_end.firewall_rules = vec![rule(510)];
    let v = decide(&w);
    assert_eq!(
        (v.root_cause.as_str(), v.failure_layer.as_deref()),
        ("security_rule_drops", Some("iptables_netpolicy"))
    );
    assert_eq!(v.layer_scores[&Layer::IptablesNetpolicy].lost_packets, 500);
    assert!(v
        .evidence
        .iter()
        .any(|e| e.content.contains("+500 packets") && e.content.contains("forward")));
    assert!(v.mitigation.immediate.contains("ip daddr 198.18.2.0/24"));
    // 40 retransmits are explained by the local drops: nothing upstream.
    assert_eq!(v.layer_scores[&Layer::Upstream].lost_packets, 0);
    assert_eq!(v.severity, "HIGH");
}

#[test]
fn not_specified_at_ip_error_with_a_blackhole_route_is_a_route_issue() {
    let o = observed(&[("NOT_SPECIFIED", "ip_error+0x5c", 120)], &[], &[]);
    let mut w = window(o, quiet(), quiet());
    w.facts_end.routes = vec![RouteFact {
        netns: 7,
        netns_label: "netns router".to_owned(),
        family: "ipv4".to_owned(),
        dst: "198.18.3.0/24".to_owned(),
        kind: "blackhole".to_owned(),
        table: 254,
        dev: None,
        gateway: None,
    }];
    let v = decide(&w);
    assert_eq!(
        (v.root_cause.as_str(), v.failure_layer.as_deref()),
        ("route_issue", Some("routing"))
    );
    assert!(v
        .evidence
        .iter()
        .any(|e| e.content.contains("blackhole 198.18.3.0/24")));
    assert!(v.mitigation.immediate.contains("blackhole 198.18.3.0/24"));
}

#[test]
fn listen_overflow_decides_from_counters_alone() {
    let o = observed(&[], &[(8080, 60)], &[]);
    let start = host(
        &[
            ("TcpExt", "ListenOverflows", 5),
            ("TcpExt", "ListenDrops", 5),
            ("Tcp", "OutSegs", 1000),
        ],
        &[],
        &[],
    );
    let end = host(
        &[
            ("TcpExt", "ListenOverflows", 85),
            ("TcpExt", "ListenDrops", 85),
            ("Tcp", "OutSegs", 2000),
        ],
        &[],
        &[],
    );
    let mut w = window(o, start, end);
    w.facts_end
        .sysctls
        .insert("net.core.somaxconn".to_owned(), "4096".to_owned());
    let v = decide(&w);
    assert_eq!(
        (v.root_cause.as_str(), v.failure_layer.as_deref()),
        ("tcp_retransmissions", Some("tcp_stack"))
    );
    // ListenDrops includes ListenOverflows: 80 lost, not 160.
    assert_eq!(v.layer_scores[&Layer::TcpStack].lost_packets, 80);
    assert!(v
        .evidence
        .iter()
        .any(|e| e.content.contains("TcpExt:ListenOverflows: 5 → 85 (+80)")));
    assert!(v.mitigation.immediate.contains("somaxconn (now 4096)"));
}

#[test]
fn retransmits_without_local_drops_are_upstream_and_escalate() {
    let o = observed(
        &[("TCP_OLD_SEQUENCE", "tcp_validate_incoming+0x1", 30)],
        &[(443, 150)],
        &[],
    );
    let start = host(
        &[("Tcp", "OutSegs", 1000), ("Tcp", "RetransSegs", 10)],
        &[],
        &[],
    );
    let end = host(
        &[("Tcp", "OutSegs", 11000), ("Tcp", "RetransSegs", 160)],
        &[],
        &[],
    );
    let v = decide(&window(o, start, end));
    assert_eq!(
        (v.root_cause.as_str(), v.failure_layer.as_deref()),
        ("upstream_loss", Some("upstream"))
    );
    assert_eq!(v.layer_scores[&Layer::Upstream].lost_packets, 150);
    assert!(v.escalation.iter().any(|e| e.contains("no local drops")));
    assert!(v.confidence <= 0.8);
    assert!(v.mitigation.immediate.starts_with("Escalate"));
}

#[test]
fn spurious_retransmits_reported_by_dsack_are_not_upstream_loss() {
    // Recorded on a healthy veth transfer: 1.1 % retransmitted, 94 % of them DSACKed.
    let o = observed(&[], &[(5201, 36_726)], &[]);
    let start = host(
        &[
            ("Tcp", "OutSegs", 0),
            ("Tcp", "RetransSegs", 0),
            ("TcpExt", "TCPDSACKRecvSegs", 0),
        ],
        &[],
        &[],
    );
    let end = host(
        &[
            ("Tcp", "OutSegs", 3_317_619),
            ("Tcp", "RetransSegs", 36_726),
            ("TcpExt", "TCPDSACKRecvSegs", 34_657),
        ],
        &[],
        &[],
    );
    let v = decide(&window(o, start, end));
    assert_eq!(
        v.root_cause,
        "none",
        "{:?}",
        v.layer_scores[&Layer::Upstream]
    );
    assert!(v.layer_scores[&Layer::Upstream]
        .signals
        .iter()
        .any(|s| s.contains("spurious")));
}

#[test]
fn backlog_drops_on_a_hot_cpu_are_irq_imbalance() {
    let o = observed(
        &[("CPU_BACKLOG", "enqueue_to_backlog+0x100", 300)],
        &[],
        &[(0, 50_000_000), (1, 2_000_000_000)],
    );
    let start = quiet();
    let mut end = quiet();
    end.softnet[1].dropped = 300;
    let v = decide(&window(o, start, end));
    assert_eq!(
        (v.root_cause.as_str(), v.failure_layer.as_deref()),
        ("irq_imbalance", Some("irq_cpu"))
    );
    // The probe and softnet_stat see the same 300 packets: not 600.
    assert_eq!(v.layer_scores[&Layer::IrqCpu].lost_packets, 300);
    assert!(v.layer_scores[&Layer::IrqCpu]
        .signals
        .iter()
        .any(|s| s.contains("NET_RX on CPU 1")));
}

#[test]
fn net_rx_saturation_alone_is_irq_imbalance() {
    let o = observed(&[], &[], &[(0, 100_000_000), (1, 7_000_000_000)]);
    let v = decide(&window(o, quiet(), quiet()));
    assert_eq!(v.root_cause, "irq_imbalance");
}

#[test]
fn nic_errors_with_crc_escalate_and_ena_allowance_cross_references_d6() {
    let o = observed(&[], &[], &[]);
    let start = host(
        &[],
        &[("rx_errors", 10), ("rx_crc_errors", 10)],
        &[("pps_allowance_exceeded", 100)],
    );
    let end = host(
        &[],
        &[("rx_errors", 60), ("rx_crc_errors", 40)],
        &[("pps_allowance_exceeded", 400)],
    );
    let v = decide(&window(o, start, end));
    assert_eq!(
        (v.root_cause.as_str(), v.failure_layer.as_deref()),
        ("nic_errors", Some("nic_driver"))
    );
    assert_eq!(
        v.layer_scores[&Layer::NicDriver].lost_packets,
        50 + 30 + 300
    );
    assert!(v.escalation.iter().any(|e| e.contains("rx_crc_errors")));
    assert_eq!(v.cross_reference.len(), 1);
    assert_eq!(v.cross_reference[0].runbook, "D6/J1");
    assert!(v.cross_reference[0]
        .evidence
        .contains("pps_allowance_exceeded: 100 → 400"));
    assert!(v.mitigation.immediate.contains("ena 2.7.1g"));
}

#[test]
fn cross_references_only_what_was_observed() {
    // MTU: PKT_TOO_BIG drops → D4 (and the drops are a routing-layer loss).
    let o = observed(&[("PKT_TOO_BIG", "ip_forward+0x1", 25)], &[(53, 3)], &[]);
    let mut start = quiet();
    let mut end = quiet();
    start.netns[0].conntrack = Some(Conntrack {
        count: 100,
        max: 1000,
        stats: Default::default(),
    });
    end.netns[0].conntrack = Some(Conntrack {
        count: 950,
        max: 1000,
        stats: Default::default(),
    });
    let v = decide(&window(o, start, end));
    let runbooks: Vec<&str> = v
        .cross_reference
        .iter()
        .map(|c| c.runbook.as_str())
        .collect();
    assert_eq!(runbooks, vec!["D4", "D3", "D5"]);
    assert!(v.cross_reference[1].evidence.contains("950 of max 1000"));
    assert!(v.cross_reference[2].evidence.contains(":53"));
    assert!(!v
        .ruled_out
        .iter()
        .any(|r| r.check.contains("D4") || r.check.contains("D3") || r.check.contains("D5")));
    assert!(v.ruled_out.iter().any(|r| r.check.contains("D6/J1")));
}

#[test]
fn onset_is_the_first_second_above_baseline() {
    let o = observed(&[("NETFILTER_DROP", "nft_do_chain+0x1", 400)], &[], &[]);
    let mut w = window(o, quiet(), quiet());
    w.ticks = (1..=10)
        .map(|i| {
            let mut loss = BTreeMap::new();
            loss.insert(Layer::IptablesNetpolicy, if i >= 4 { 66 } else { 0 });
            Tick {
                at_ms: i * 1000,
                loss,
            }
        })
        .collect();
    let v = decide(&w);
    let onset = v
        .timeline
        .iter()
        .find(|t| t.event.starts_with("onset"))
        .expect("onset");
    // Loss first appears in the interval that ends at 4 s, i.e. that begins at 3 s.
    assert!((onset.at_s - 3.0).abs() < 1e-9, "{onset:?}");
    assert!(v
        .evidence
        .iter()
        .any(|e| e.kind == "correlate" && e.content.contains("3 s")));
}

#[test]
fn counter_deltas_never_go_negative_on_reset() {
    let start = host(&[("Tcp", "RetransSegs", 500)], &[("rx_errors", 900)], &[]);
    let end = host(&[("Tcp", "RetransSegs", 3)], &[("rx_errors", 1)], &[]);
    let s = counter_signals(&start, &end);
    assert_eq!(s.retrans_segs, 0);
    assert!(s.nic_errors.is_empty());
}

#[test]
fn tick_loss_explains_retransmits_before_blaming_upstream() {
    let mut probe = BTreeMap::new();
    probe.insert(Layer::IptablesNetpolicy, 30);
    let t = tick_loss(1000, &probe, &quiet(), &quiet(), 50);
    assert_eq!(t.loss[&Layer::IptablesNetpolicy], 30);
    assert_eq!(t.loss[&Layer::Upstream], 20);
}

#[test]
fn egress_qdisc_drops_are_a_nic_driver_loss() {
    let o = observed(&[], &[], &[]);
    let with_qdisc = |drops| {
        let mut c = quiet();
        if let Some(eth0) = c.netns[0].interfaces.get_mut("eth0") {
            eth0.qdisc = Some(crate::node::evidence::QdiscCounters {
                kind: "tbf".to_owned(),
                drops,
                ..Default::default()
            });
        }
        c
    };
    let v = decide(&window(o, with_qdisc(3), with_qdisc(203)));
    assert_eq!(v.root_cause, "nic_errors");
    assert_eq!(v.layer_scores[&Layer::NicDriver].lost_packets, 200);
    assert!(v
        .evidence
        .iter()
        .any(|e| e.content.contains("qdisc tbf drops: 3 → 203 (+200)")));
}

#[test]
fn route_prefixes_cover_addresses() {
    let a = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert!(route_covers("198.18.3.0/24", a("198.18.3.77")));
    assert!(!route_covers("198.18.3.0/24", a("198.18.4.1")));
    assert!(route_covers("198.18.3.7", a("198.18.3.7")));
    assert!(route_covers("default", a("8.8.8.8")));
    assert!(route_covers("2001:db8::/32", a("2001:db8::1")));
    assert!(!route_covers("2001:db8::/32", a("198.18.3.7")));
    assert!(!route_covers("junk", a("198.18.3.7")));
}

/// SYN_SENT failures to one address that a blackhole route covers point at routing, even
/// when no drop was traced (the SYNs were dropped where the tracer cannot see).
#[test]
fn failed_connects_to_a_blackholed_address_are_a_route_issue() {
    let mut o = observed(&[], &[], &[]);
    let mut d = destination("198.18.3.9", 443);
    d.connects = 12;
    d.failed_connects = 12;
    d.errors = vec![crate::judge::flows::ErrorCount {
        error: "ETIMEDOUT".to_owned(),
        errno: 110,
        count: 12,
    }];
    o.flows.destinations = vec![d];
    o.flows.totals.failed_connects = 12;
    let mut w = window(o, quiet(), quiet());
    w.facts_end.routes = vec![route("198.18.3.0/24", "blackhole", None)];
    let v = decide(&w);
    assert_eq!(
        (v.root_cause.as_str(), v.failure_layer.as_deref()),
        ("route_issue", Some("routing"))
    );
    assert_eq!(v.layer_scores[&Layer::Routing].lost_packets, 12);
    let text: Vec<&str> = v.evidence.iter().map(|e| e.content.as_str()).collect();
    assert!(
        text.iter().any(
            |t| t.contains("12 connects to 198.18.3.9:443 never established")
                && t.contains("ETIMEDOUT×12")
                && t.contains("blackhole 198.18.3.0/24")
        ),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("12 of 12 connects to 198.18.3.9:443")),
        "{text:?}"
    );
    // Without the route, the same failures are shown but do not decide routing.
    let mut w2 = w.clone();
    w2.facts_end.routes.clear();
    let v2 = decide(&w2);
    assert_eq!(v2.layer_scores[&Layer::Routing].lost_packets, 0);
    assert!(v2
        .evidence
        .iter()
        .any(|e| e.content.contains("12 of 12 connects")));
}

/// Retransmits concentrated on a destination reached through a gateway: the upstream signals
/// name it and its share, with its RTT.
#[test]
fn retransmits_to_destinations_outside_the_node_are_named_upstream() {
    let mut o = observed(&[], &[(443, 150)], &[]);
    let mut far = destination("203.0.113.10", 443);
    far.retransmits = 150;
    far.rtt = crate::judge::flows::Latency::from_hist(
        &{
            let mut h = [0u32; tracer_common::LAT_BUCKETS];
            h[tracer_common::lat_bucket(40_000)] = 100;
            h
        },
        4_000_000,
    );
    let mut near = destination("10.0.1.20", 80);
    near.retransmits = 0;
    o.flows.destinations = vec![far, near];
    o.flows.totals.retransmits = 150;
    let start = host(
        &[("Tcp", "OutSegs", 1000), ("Tcp", "RetransSegs", 10)],
        &[],
        &[],
    );
    let end = host(
        &[("Tcp", "OutSegs", 11000), ("Tcp", "RetransSegs", 160)],
        &[],
        &[],
    );
    let mut w = window(o, start, end);
    w.facts_end.routes = vec![
        route("10.0.1.0/24", "unicast", None),
        route("default", "unicast", Some("10.0.1.1")),
    ];
    let v = decide(&w);
    assert_eq!(v.root_cause, "upstream_loss");
    let signals = &v.layer_scores[&Layer::Upstream].signals;
    assert!(
        signals
            .iter()
            .any(|s| s.starts_with("100 % of retransmitted segments went to destinations outside")),
        "{signals:?}"
    );
    assert!(
        signals.iter().any(
            |s| s.contains("150 retransmitted segments to 203.0.113.10:443")
                && s.contains("RTT p50 36.9 ms")
        ),
        "{signals:?}"
    );
}

#[test]
fn refused_connects_are_ruled_out_as_an_application_matter() {
    let mut o = observed(&[], &[], &[]);
    let mut d = destination("198.18.0.2", 1);
    d.connects = 3;
    d.failed_connects = 3;
    d.resets_received = 3;
    d.errors = vec![crate::judge::flows::ErrorCount {
        error: "ECONNREFUSED".to_owned(),
        errno: 111,
        count: 3,
    }];
    o.flows.destinations = vec![d];
    let v = decide(&window(o, quiet(), quiet()));
    assert_eq!(v.root_cause, "none");
    assert!(v
        .ruled_out
        .iter()
        .any(|r| r.check.contains("ECONNREFUSED") && r.result.starts_with("3 connects")));
}

/// Ticks of `layer` losing `rates[i]` packets in second `i + 1`.
fn ticks_of(layer: Layer, rates: &[u64]) -> Vec<Tick> {
    rates
        .iter()
        .enumerate()
        .map(|(i, r)| Tick {
            at_ms: (i as u64 + 1) * 1000,
            loss: [(layer, *r)].into_iter().collect(),
        })
        .collect()
}

#[test]
fn steady_loss_has_no_onset_and_is_present_throughout_the_window() {
    // A constant ~500/s flood: the seconds differ by counting noise only.
    let rates = [500, 502, 499, 501, 500, 502, 498, 500, 501, 500];
    let o = observed(
        &[("NETFILTER_DROP", "nft_do_chain+0x1", rates.iter().sum())],
        &[],
        &[],
    );
    let mut w = window(o, quiet(), quiet());
    w.ticks = ticks_of(Layer::IptablesNetpolicy, &rates);
    let v = decide(&w);
    assert_eq!(v.root_cause, "security_rule_drops");
    assert!(
        !v.timeline.iter().any(|t| t.event.starts_with("onset")),
        "{:?}",
        v.timeline
    );
    assert!(
        v.evidence.iter().any(|e| e.kind == "correlate"
            && e.content
                == "netfilter / NetworkPolicy loss present throughout the window (no onset inside it)"),
        "{:?}",
        v.evidence
    );
    // A low second (a short interval, a scheduling hiccup) is not a rise either, nor is Poisson
    // noise at a low rate.
    for rates in [
        &[500, 500, 250, 500, 500, 500, 500, 500, 500, 500][..],
        &[3, 6, 0, 9, 4, 5, 1, 8, 5, 4][..],
    ] {
        w.ticks = ticks_of(Layer::IptablesNetpolicy, rates);
        let v = decide(&w);
        assert!(
            !v.timeline.iter().any(|t| t.event.starts_with("onset")),
            "{rates:?}: {:?}",
            v.timeline
        );
    }
    // A real rise still has its onset: 20/s, then 400/s from the interval that began at 5 s.
    w.ticks = ticks_of(
        Layer::IptablesNetpolicy,
        &[20, 22, 19, 21, 20, 400, 410, 395, 405, 400],
    );
    let v = decide(&w);
    let onset = v
        .timeline
        .iter()
        .find(|t| t.event.starts_with("onset"))
        .expect("onset");
    assert!((onset.at_s - 5.0).abs() < 1e-9, "{onset:?}");
    assert_eq!(
        onset.event,
        "onset: netfilter / NetworkPolicy loss rose to 400/s from a baseline of 20/s"
    );
}

#[test]
fn explained_retransmits_say_why_in_the_text_and_rule_upstream_out() {
    // A clean transfer: 49421 retransmitted segments, 47000 of them DSACKed, 3.3 M sent.
    let o = observed(&[], &[(5201, 49_421)], &[]);
    let counters = |out, retrans, dsack| {
        host(
            &[
                ("Tcp", "OutSegs", out),
                ("Tcp", "RetransSegs", retrans),
                ("TcpExt", "TCPDSACKRecvSegs", dsack),
            ],
            &[],
            &[],
        )
    };
    let w = window(o, counters(0, 0, 0), counters(3_317_619, 49_421, 47_000));
    let v = decide(&w);
    assert_eq!(v.root_cause, "none");
    let line = v
        .evidence
        .iter()
        .find(|e| e.content.starts_with("retransmissions: 49421 segments"))
        .expect("retransmissions line");
    assert!(
        line.content.ends_with(
            " — not packet loss: 47000 were spurious (DSACK: the receiver already had them) and the rest are 0.07 % of the segments sent, under the 0.20 % counted as loss"
        ),
        "{}",
        line.content
    );
    let upstream = v
        .ruled_out
        .iter()
        .find(|r| r.check == "upstream loss (network path)")
        .expect("upstream ruled out");
    assert_eq!(
        upstream.result,
        "49421 retransmitted segments: 47000 spurious (DSACK), the rest 0.07 % of the segments sent, under the 0.20 % counted as loss"
    );
    let doc =
        crate::judge::document::VerdictDocument::new(v, w.observed.clone(), &w.facts_end, vec![]);
    let text = doc.text();
    assert!(
        text.contains("not packet loss: 47000 were spurious"),
        "{text}"
    );
    assert!(
        text.contains("\nRuled out\n") && text.contains("  upstream loss (network path): 49421"),
        "{text}"
    );
}

#[test]
fn a_second_fault_gets_its_own_finding_with_its_evidence() {
    // A DNS drop rule (500 NETFILTER_DROP) and a listen queue overflowing (262) at once; 60
    // connects to a local :8080 fail in SYN_SENT, 5 to a dropped subnet.
    let o = {
        let mut o = observed(&[("NETFILTER_DROP", "nft_do_chain+0x46f", 500)], &[], &[]);
        o.flows.destinations = vec![
            crate::judge::flows::Destination {
                connects: 60,
                failed_connects: 60,
                ..destination("198.18.0.2", 8080)
            },
            crate::judge::flows::Destination {
                connects: 5,
                failed_connects: 5,
                ..destination("198.18.5.5", 443)
            },
        ];
        o.flows.totals.connects = 65;
        o.flows.totals.failed_connects = 65;
        o
    };
    let listen = |n| {
        host(
            &[
                ("Tcp", "OutSegs", 1000),
                ("TcpExt", "ListenOverflows", n),
                ("TcpExt", "ListenDrops", n),
            ],
            &[],
            &[],
        )
    };
    let mut w = window(o, listen(0), listen(262));
    let rule = |rule: &str, source: &str, packets| FirewallRule {
        netns: 1,
        netns_label: "host".to_owned(),
        source: source.to_owned(),
        table: "filter".to_owned(),
        chain: "OUTPUT".to_owned(),
        rule: rule.to_owned(),
        verdict: "drop".to_owned(),
        packets: Some(packets),
        ..Default::default()
    };
    w.facts_start.firewall_rules = vec![
        rule("-p udp -m udp --dport 53 -j DROP", "iptables-legacy", 0),
        rule("ip daddr 198.18.5.0/24 counter", "nftables", 0),
    ];
    w.facts_end.firewall_rules = vec![
        rule("-p udp -m udp --dport 53 -j DROP", "iptables-legacy", 495),
        rule("ip daddr 198.18.5.0/24 counter", "nftables", 5),
    ];
    w.facts_end.routes = vec![route("198.18.0.0/24", "unicast", None)];
    let v = decide(&w);
    assert_eq!(v.root_cause, "security_rule_drops");
    // The failed connects to :8080 are the listen queue's, not the firewall's.
    assert!(
        !v.evidence.iter().any(|e| e.content.contains(":8080")),
        "{:#?}",
        v.evidence
    );
    // Those into the dropped subnet are the firewall's and stay.
    assert!(
        v.evidence
            .iter()
            .any(|e| e.content.starts_with("5 of 5 connects to 198.18.5.5:443")),
        "{:#?}",
        v.evidence
    );
    let doc =
        crate::judge::document::VerdictDocument::new(v, w.observed.clone(), &w.facts_end, vec![]);
    let json = serde_json::to_value(&doc).expect("json");
    let other = &json["other_findings"];
    assert_eq!(other.as_array().map(Vec::len), Some(1), "{other}");
    assert_eq!(other[0]["failure_layer"], "tcp_stack");
    assert_eq!(other[0]["root_cause"], "tcp_retransmissions");
    assert_eq!(other[0]["lost_packets"], 262);
    assert_eq!(other[0]["summary"], "listen queue overflow");
    let evidence: Vec<&str> = other[0]["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert!(
        evidence.contains(
            &"60 of 60 connects to 198.18.0.2:8080 (netns 4026532999) failed in SYN_SENT"
        ),
        "{evidence:?}"
    );
    assert!(
        evidence.iter().any(|e| e.contains("ListenOverflows")),
        "{evidence:?}"
    );
    let text = doc.text();
    assert!(
        text.contains("\nalso: TCP stack lost 262 packets — listen queue overflow\n"),
        "{text}"
    );
}

#[test]
fn the_onset_is_said_in_utc_when_the_window_start_is_known() {
    let o = observed(&[("NETFILTER_DROP", "nft_do_chain+0x1", 2_000)], &[], &[]);
    let mut w = window(o, quiet(), quiet());
    w.ticks = ticks_of(
        Layer::IptablesNetpolicy,
        &[20, 22, 19, 21, 20, 400, 410, 395, 405, 400],
    );
    // 2026-01-01T00:00:00Z.
    w.started_unix_ms = Some(1_767_225_600_000);
    let v = decide(&w);
    let onset = v
        .timeline
        .iter()
        .find(|t| t.event.starts_with("onset"))
        .expect("onset");
    assert_eq!(onset.at.as_deref(), Some("2026-01-01T00:00:05.000Z"));
    assert!(
        v.evidence.iter().any(|e| e.kind == "correlate"
            && e.content
                == "netfilter / NetworkPolicy loss began 5 s into the window, at 2026-01-01T00:00:05.000Z (20/s → 400/s)"),
        "{:?}",
        v.evidence
    );
}

/// Issue 13: 2,000 drops at a site no layer takes are a finding, never `none`; beside a layer's
/// loss they are a finding of their own, never under ruled_out.
#[test]
fn two_thousand_unplaced_drops_are_unattributed_loss_not_none() {
    let mut o = observed(&[("NOT_SPECIFIED", "frobnicate_skb+0x14", 2000)], &[], &[]);
    o.drops.by_reason[0].netns = vec![crate::judge::report::NetnsCount {
        inode: 7,
        count: 2000,
        pod: None,
        netns_name: None,
    }];
    let v = decide(&window(o.clone(), quiet(), quiet()));
    assert_eq!(v.root_cause, UNATTRIBUTED);
    assert_eq!(v.failure_layer.as_deref(), Some(UNKNOWN_LAYER));
    assert_eq!(v.severity, "HIGH");
    assert!(v.confidence <= 0.5, "{}", v.confidence);
    assert!(
        v.evidence[0]
            .content
            .contains("2,000 drops the tracer could not place, at frobnicate_skb in netns 7"),
        "{:?}",
        v.evidence
    );
    assert!(v.mitigation.immediate.contains("frobnicate_skb"));
    assert!(!v
        .ruled_out
        .iter()
        .any(|r| r.result.contains("frobnicate_skb")));

    // Beside 120 netfilter drops: netfilter is the root cause, the unplaced drops a finding.
    o.drops.by_reason.push(
        observed(&[("NETFILTER_DROP", "nft_do_chain+0x46f", 120)], &[], &[])
            .drops
            .by_reason[0]
            .clone(),
    );
    let v = decide(&window(o, quiet(), quiet()));
    assert_eq!(v.root_cause, "security_rule_drops");
    assert_eq!(v.other_findings.len(), 1);
    let other = &v.other_findings[0];
    assert_eq!(
        (
            other.root_cause.as_str(),
            other.failure_layer,
            other.lost_packets
        ),
        (UNATTRIBUTED, None, 2000)
    );
    // Its share of the loss lowers the root cause's confidence.
    assert!(v.confidence < 0.1, "{}", v.confidence);

    // Nine are noise ("too few to place"), and the verdict is none.
    let few = observed(&[("NOT_SPECIFIED", "frobnicate_skb+0x14", 9)], &[], &[]);
    let v = decide(&window(few, quiet(), quiet()));
    assert_eq!(v.root_cause, "none");
    assert_eq!(v.noise.by_kind["too few to place: NOT_SPECIFIED"], 9);
}
