//! TEMPORARY: the rules give the same `Verdict` (as JSON) as the old `decide` (`legacy.rs`) on
//! thousands of varied constructed windows. Deleted with `legacy.rs`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::*;
use crate::{
    evidence::{
        Conntrack, CounterSample, FirewallRule, IfaceCounters, NetnsCounters, NodeFacts,
        QdiscCounters, RouteFact, SoftnetRow,
    },
    flows::{Destination, ErrorCount, Latency},
    layers::Layer,
    probes::{ProbeState, ProbeStatus},
    report::{
        CpuSoftirq, DropLocation, DropReason, Drops, FlowReport, Report, Retransmits, VectorTime,
        WindowInfo,
    },
};

/// xorshift64*: a small deterministic generator, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    /// A small count, often 0, sometimes near the thresholds.
    fn count(&mut self) -> u64 {
        *self.pick(&[0, 0, 0, 1, 5, 9, 10, 11, 30, 50, 120, 400, 5000])
    }
    /// A counter pair (start, end): flat, rising, or falling.
    fn pair(&mut self) -> (u64, u64) {
        let a = self.below(3) * *self.pick(&[1, 100, 4_294_967_000]);
        match self.below(5) {
            0 | 1 => (a, a),
            2 | 3 => (a, a + self.count()),
            _ => (a, self.below(100)),
        }
    }
}

const DROPS: &[(&str, &str)] = &[
    ("NETFILTER_DROP", "nft_do_chain+0x46f"),
    ("NOT_SPECIFIED", "ip_error+0x5c"),
    ("CPU_BACKLOG", "enqueue_to_backlog+0x100"),
    ("TCP_LISTEN_OVERFLOW", "tcp_conn_request+0x1"),
    ("QDISC_DROP", "__dev_queue_xmit+0x1"),
    ("PKT_TOO_BIG", "ip_forward+0x1"),
    ("FRAG_REASM_TIMEOUT", "ip_expire+0x1"),
    ("TCP_OLD_SEQUENCE", "tcp_validate_incoming+0x1"),
    ("NO_SOCKET", "__udp4_lib_rcv+0x4bc"),
    ("NOT_SPECIFIED", "icmp_rcv+0x20"),
    ("SOCKET_RCVBUFF", "sock_queue_rcv_skb_reason+0x1"),
    ("IP_INHDR", "ip_rcv_core+0x1"),
    ("QUEUE_PURGE", "skb_queue_purge_reason+0x1"),
];

fn observed(r: &mut Rng) -> Report {
    let seconds = *r.pick(&[0.0, 1.0, 10.0, 60.0]);
    let by_reason: Vec<DropReason> = (0..r.below(5))
        .map(|_| {
            let (reason, location) = *r.pick(DROPS);
            let count = r.count().max(1);
            DropReason {
                reason: reason.to_owned(),
                reason_value: Some(1),
                count,
                locations: vec![DropLocation {
                    location: location.to_owned(),
                    count,
                }],
                netns: vec![],
            }
        })
        .collect();
    let flows: Vec<FlowReport> = (0..r.below(4))
        .map(|_| {
            let segs = r.count();
            FlowReport {
                netns: 1,
                pod: None,
                family: "ipv4",
                saddr: "198.18.0.1".to_owned(),
                sport: *r.pick(&[40000, 53]),
                daddr: "198.18.0.2".to_owned(),
                dport: *r.pick(&[53, 80, 443, 8080]),
                state: "TCP_ESTABLISHED".to_owned(),
                retransmits: segs,
                retransmitted_segments: segs,
                synack_retransmits: r.below(3),
                failed_attempts: 0,
            }
        })
        .collect();
    let softirq = (0..r.below(4) as u32)
        .map(|cpu| CpuSoftirq {
            cpu,
            vectors: vec![VectorTime {
                vector: "NET_RX".to_owned(),
                time_ns: *r.pick(&[0, 1_000_000, 50_000_000, 2_000_000_000, 7_000_000_000]),
                runs: 10,
                share_of_window: 0.0,
                histogram: vec![],
            }],
        })
        .collect();
    let destinations: Vec<Destination> = (0..r.below(4))
        .map(|_| {
            let connects = r.count();
            let failed = if r.chance(50) { connects } else { 0 };
            let mut errors = vec![];
            if r.chance(40) {
                errors.push(ErrorCount {
                    error: r.pick(&["ETIMEDOUT", "ECONNREFUSED"]).to_string(),
                    errno: 110,
                    count: r.count(),
                });
            }
            Destination {
                netns: 4_026_532_999,
                pod: None,
                family: "ipv4".to_owned(),
                daddr: r
                    .pick(&[
                        "198.18.3.9",
                        "203.0.113.10",
                        "10.0.1.20",
                        "2001:db8::1",
                        "junk",
                    ])
                    .to_string(),
                dport: *r.pick(&[443, 80, 53]),
                retransmits: r.count(),
                resets_sent: 0,
                resets_received: 0,
                connects,
                established: 0,
                failed_connects: failed,
                closed: 0,
                errors,
                rtt: if r.chance(50) {
                    let mut h = [0u32; tracer_common::LAT_BUCKETS];
                    h[tracer_common::lat_bucket(40_000)] = 100;
                    Latency::from_hist(&h, 4_000_000)
                } else {
                    None
                },
                connect_time: None,
            }
        })
        .collect();
    let mut report = Report {
        tracer_version: "test",
        kernel: "6.18".to_owned(),
        window: WindowInfo {
            duration_s: seconds,
            startup_ms: 100.0,
            netns: None,
        },
        probes: (0..r.below(3))
            .map(|_| ProbeStatus {
                tracepoint: "skb:kfree_skb".to_owned(),
                program: "kfree_skb".to_owned(),
                state: *r.pick(&[
                    ProbeState::Attached,
                    ProbeState::Attached,
                    ProbeState::Failed,
                ]),
                detail: String::new(),
                attach_ms: Some(1.0),
            })
            .collect(),
        drops: Drops {
            total: by_reason.iter().map(|d| d.count).sum(),
            by_reason,
        },
        retransmits: Retransmits {
            total: flows.iter().map(|f| f.retransmits).sum(),
            segments_total: flows.iter().map(|f| f.retransmitted_segments).sum(),
            synack_total: flows.iter().map(|f| f.synack_retransmits).sum(),
            failed_attempts: 0,
            flows_evicted: 0,
            flows,
        },
        softirq,
        flows: Default::default(),
        tracer_counters: BTreeMap::new(),
        tracer_cost: Default::default(),
        notes: vec![],
    };
    report.flows.totals.retransmits = destinations.iter().map(|d| d.retransmits).sum();
    report.flows.destinations = destinations;
    report
}

const SNMP: &[(&str, &str)] = &[
    ("TcpExt", "ListenDrops"),
    ("TcpExt", "ListenOverflows"),
    ("TcpExt", "TCPBacklogDrop"),
    ("Udp", "RcvbufErrors"),
    ("IpExt", "InNoRoutes"),
    ("Ip", "FragFails"),
    ("Tcp", "RetransSegs"),
    ("Tcp", "OutSegs"),
    ("TcpExt", "TCPLostRetransmit"),
    ("TcpExt", "TCPTimeouts"),
    ("TcpExt", "TCPDSACKRecvSegs"),
    ("TcpExt", "TCPDSACKRecv"),
];

const STATS: &[&str] = &[
    "rx_errors",
    "tx_errors",
    "rx_missed_errors",
    "rx_crc_errors",
];
const ETHTOOL: &[&str] = &["pps_allowance_exceeded", "bw_in_allowance_exceeded"];

/// Two samples (start, end) of a host and a pod namespace.
fn counters(r: &mut Rng) -> (CounterSample, CounterSample) {
    let mut start = CounterSample::default();
    let mut end = CounterSample::default();
    for (inode, host) in [(1u32, true), (7, false)] {
        if !host && r.chance(30) {
            continue;
        }
        let mut ns = [NetnsCounters::default(), NetnsCounters::default()];
        for n in &mut ns {
            n.inode = inode;
            n.is_host = host;
            n.label = if host { "host" } else { "netns lab7" }.to_owned();
        }
        for (g, name) in SNMP {
            if r.chance(60) {
                let (a, b) = r.pair();
                if *name == "OutSegs" {
                    let b = if r.chance(50) { a + 100_000 } else { b };
                    ns[0]
                        .snmp
                        .entry((*g).to_owned())
                        .or_default()
                        .insert((*name).to_owned(), a as i64);
                    ns[1]
                        .snmp
                        .entry((*g).to_owned())
                        .or_default()
                        .insert((*name).to_owned(), b as i64);
                    continue;
                }
                ns[0]
                    .snmp
                    .entry((*g).to_owned())
                    .or_default()
                    .insert((*name).to_owned(), a as i64);
                ns[1]
                    .snmp
                    .entry((*g).to_owned())
                    .or_default()
                    .insert((*name).to_owned(), b as i64);
            }
        }
        for ifname in ["eth0", "lo", "eth1"] {
            if ifname == "eth1" && r.chance(50) {
                continue;
            }
            let mut i = [IfaceCounters::default(), IfaceCounters::default()];
            if r.chance(70) {
                for x in &mut i {
                    x.driver = Some("ena".to_owned());
                    x.driver_version = r.chance(70).then(|| "2.7.1g".to_owned());
                }
            }
            for stat in STATS {
                if r.chance(50) {
                    let (a, b) = r.pair();
                    i[0].stats.insert(*stat, a);
                    i[1].stats.insert(*stat, b);
                }
            }
            for stat in ETHTOOL {
                if r.chance(30) {
                    let (a, b) = r.pair();
                    i[0].ethtool.insert(*stat, a);
                    i[1].ethtool.insert(*stat, b);
                }
            }
            if r.chance(40) {
                let (a, b) = r.pair();
                i[0].qdisc = Some(QdiscCounters {
                    kind: "tbf".to_owned(),
                    drops: a,
                    ..Default::default()
                });
                i[1].qdisc = Some(QdiscCounters {
                    kind: "tbf".to_owned(),
                    drops: b,
                    ..Default::default()
                });
            }
            let [i0, i1] = i;
            ns[0].interfaces.insert(ifname.to_owned(), i0);
            ns[1].interfaces.insert(ifname.to_owned(), i1);
        }
        if r.chance(50) {
            let max = *r.pick(&[0, 1000]);
            for (k, n) in ns.iter_mut().enumerate() {
                let mut c = Conntrack {
                    count: *r.pick(&[0, 100, 899, 900, 950, 1000]),
                    max,
                    stats: Default::default(),
                };
                if r.chance(40) {
                    c.stats
                        .insert("drop", if k == 0 { 3 } else { 3 + r.count() });
                }
                n.conntrack = Some(c);
            }
        }
        let [n0, n1] = ns;
        start.netns.push(n0);
        end.netns.push(n1);
    }
    for cpu in 0..r.below(3) as u32 {
        let (d0, d1) = r.pair();
        let (s0, s1) = r.pair();
        start.softnet.push(SoftnetRow {
            cpu,
            dropped: d0,
            time_squeeze: s0,
            ..Default::default()
        });
        end.softnet.push(SoftnetRow {
            cpu,
            dropped: d1,
            time_squeeze: s1,
            ..Default::default()
        });
    }
    (start, end)
}

fn facts(r: &mut Rng) -> (NodeFacts, NodeFacts) {
    let mut start = NodeFacts::default();
    let mut end = NodeFacts::default();
    for _ in 0..r.below(4) {
        let rule = r
            .pick(&[
                "ip daddr 198.18.2.0/24 counter",
                "tcp dport 53 counter",
                "-p udp -m udp --dport 53 -j DROP",
                "ip saddr 10.0.0.0/8",
            ])
            .to_string();
        let (a, b) = r.pair();
        let netns = *r.pick(&[1, 7]);
        let f = |packets| FirewallRule {
            netns,
            netns_label: "netns router".to_owned(),
            source: "nftables".to_owned(),
            table: "inet filter".to_owned(),
            chain: "forward".to_owned(),
            hook: Some("forward".to_owned()),
            rule: rule.clone(),
            verdict: "drop".to_owned(),
            packets,
            bytes: None,
        };
        if r.chance(80) {
            start.firewall_rules.push(f(Some(a)));
        }
        end.firewall_rules
            .push(f(if r.chance(90) { Some(b) } else { None }));
    }
    let routes = [
        ("198.18.3.0/24", "blackhole", None),
        ("10.9.0.0/16", "unreachable", None),
        ("10.0.1.0/24", "unicast", None),
        ("default", "unicast", Some("10.0.1.1")),
        ("10.0.1.5", "local", None),
        ("2001:db8::/32", "prohibit", None),
    ];
    for (dst, kind, gateway) in routes {
        if r.chance(40) {
            end.routes.push(RouteFact {
                netns: 1,
                netns_label: "host".to_owned(),
                family: "ipv4".to_owned(),
                dst: dst.to_owned(),
                kind: kind.to_owned(),
                table: 254,
                dev: Some("eth0".to_owned()),
                gateway: gateway.map(str::to_owned),
            });
        }
    }
    for engine in ["kube-proxy", "calico"] {
        if r.chance(40) {
            end.policy_engines.push(engine.to_owned());
        }
    }
    for (k, v) in [
        ("net.core.somaxconn", "4096"),
        ("net.ipv4.tcp_rmem", "4096 131072 6291456"),
        ("net.core.netdev_max_backlog", "1000"),
    ] {
        if r.chance(50) {
            end.sysctls.insert(k.to_owned(), v.to_owned());
        }
    }
    end.irqbalance_running = r.chance(50);
    (start, end)
}

fn window(seed: u64) -> WindowEvidence {
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let observed = observed(&mut r);
    let (counters_start, counters_end) = counters(&mut r);
    let (facts_start, facts_end) = facts(&mut r);
    let ticks = if r.chance(50) {
        (1..=r.below(12))
            .map(|i| Tick {
                at_ms: i * 1000,
                loss: Layer::ALL
                    .iter()
                    .filter_map(|l| r.chance(50).then_some(*l))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .map(|l| (l, r.count()))
                    .collect(),
            })
            .collect()
    } else {
        vec![]
    };
    WindowEvidence {
        observed,
        counters_start,
        counters_end,
        facts_start,
        facts_end,
        ticks,
    }
}

#[test]
fn the_rules_decide_as_the_old_function_did() {
    let mut causes: BTreeMap<String, u32> = BTreeMap::new();
    let mut cross = 0;
    for seed in 0..20_000u64 {
        let w = window(seed);
        let new = super::legacy::same_as_before(&w);
        *causes.entry(new.root_cause.clone()).or_default() += 1;
        cross += u32::from(!new.cross_reference.is_empty());
    }
    // The generator reaches every root cause and the cross-references.
    assert_eq!(causes.len(), 7, "{causes:?}");
    assert!(cross > 100, "{cross}");
}
