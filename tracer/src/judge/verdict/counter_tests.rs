//! Counter deltas across breaks: interfaces and namespaces that come and go mid-window,
//! counters that reset, wrap at 2^32 or jump. Constructed samples, no root. Whatever happens, no
//! delta, tick or layer score is negative or absurd (> 2^40), and the break is said in a note.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{change::delta_i, *};
use crate::{
    judge::window::{judge, Frame, TracerMeta},
    kernel::names::KernelNames,
    kernel::snapshot::Snapshot,
    node::evidence::{Conntrack, IfaceCounters, NetnsCounters, QdiscCounters, SoftnetRow},
    node::shared::Shared,
};

const ABSURD: u64 = 1 << 40;

/// A namespace with interfaces `(name, [(stat, value)])` and SNMP counters.
fn ns(
    inode: u32,
    is_host: bool,
    interfaces: &[(&str, &[(&str, u64)])],
    snmp: &[(&str, &str, i64)],
) -> NetnsCounters {
    let mut out = NetnsCounters {
        inode,
        label: if is_host {
            "host".to_owned()
        } else {
            format!("netns lab{inode}")
        },
        is_host,
        ..Default::default()
    };
    for (name, stats) in interfaces {
        out.interfaces.insert(
            (*name).to_owned(),
            IfaceCounters {
                stats: stats.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
                ..Default::default()
            },
        );
    }
    for (g, n, v) in snmp {
        out.snmp
            .entry((*g).to_owned())
            .or_default()
            .insert((*n).to_owned(), *v);
    }
    out
}

fn sample(at_ms: u64, netns: Vec<NetnsCounters>) -> CounterSample {
    CounterSample {
        at_ms,
        netns: netns.into_iter().map(Into::into).collect(),
        ..Default::default()
    }
}

fn all_deltas(s: &CounterSignals) -> Vec<&CounterDelta> {
    [
        &s.nic_errors,
        &s.crc_errors,
        &s.allowance_exceeded,
        &s.qdisc_drops,
        &s.listen,
        &s.tcp_other,
        &s.routing,
        &s.mtu,
        &s.conntrack_drops,
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn notes_of(samples: &[CounterSample]) -> Vec<String> {
    counter_break_notes(samples)
}

#[test]
fn counter_change_classifies_rises_wraps_resets_and_jumps() {
    use CounterChange::*;
    assert_eq!(CounterChange::of(10, 10), Rose(0));
    assert_eq!(CounterChange::of(10, 25), Rose(15));
    // The brief's example: a 32-bit counter wrapping.
    assert_eq!(CounterChange::of(4_294_967_290, 5), Wrapped32(11));
    assert_eq!(CounterChange::of(u64::from(u32::MAX), 0), Wrapped32(1));
    // Too far from the top, or landing too high: a reset.
    assert_eq!(CounterChange::of(4_000_000_000, 5), WentBack);
    assert_eq!(CounterChange::of(4_294_967_290, WRAP32_MARGIN), WentBack);
    // Above 2^32: a 64-bit counter; any fall is a reset.
    assert_eq!(CounterChange::of(1 << 33, 5), WentBack);
    assert_eq!(CounterChange::of(u64::MAX, 0), WentBack);
    assert_eq!(CounterChange::of(900, 1), WentBack);
    assert_eq!(CounterChange::of(0, ABSURD), Rose(ABSURD));
    assert_eq!(CounterChange::of(0, ABSURD + 1), Implausible(ABSURD + 1));
    assert_eq!(CounterChange::of(0, u64::MAX), Implausible(u64::MAX));
    assert_eq!(CounterChange::of(4_294_967_290, 5).counted(), 11);
    assert_eq!(CounterChange::of(900, 1).counted(), 0);
    assert_eq!(CounterChange::of(1, u64::MAX).counted(), 0);
    assert_eq!(delta_i(-1, 5), 6);
    assert_eq!(delta_i(5, -1), 0);
    assert_eq!(delta_i(i64::MIN, i64::MAX), 0);
    assert_eq!(delta_i(0, i64::MAX), 0);
    assert_eq!(delta_i(100, 40), 0);
}

#[test]
fn interface_gone_at_end_and_new_at_end_give_no_delta_and_are_noted() {
    let start = sample(
        0,
        vec![ns(
            1,
            true,
            &[
                ("eth0", &[("rx_errors", 10)]),
                ("eth1", &[("rx_errors", 100)]),
            ],
            &[],
        )],
    );
    let end = sample(
        1000,
        vec![ns(
            1,
            true,
            &[
                ("eth0", &[("rx_errors", 10)]),
                ("eth2", &[("rx_errors", 5000)]),
            ],
            &[],
        )],
    );
    let s = counter_signals(&start, &end);
    assert!(s.nic_errors.is_empty(), "{:?}", s.nic_errors);
    let notes = notes_of(&[start.clone(), end.clone()]);
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert_eq!(
        notes[0],
        "counters: at 1.0 s: interface eth1 of host vanished; its counters stop there"
    );
    assert_eq!(
        notes[1],
        "counters: at 1.0 s: interface eth2 of host appeared; its counters count from there"
    );
    // The reverse order of the same samples: eth2 vanished, eth1 appeared.
    let back = notes_of(&[end, start]);
    assert!(
        back[0].contains("interface eth2 of host vanished"),
        "{back:?}"
    );
    assert!(
        back[1].contains("interface eth1 of host appeared"),
        "{back:?}"
    );
}

#[test]
fn a_reset_counts_nothing_and_is_named() {
    let start = sample(
        0,
        vec![ns(1, true, &[("eth0", &[("rx_errors", 900)])], &[])],
    );
    let end = sample(
        2000,
        vec![ns(1, true, &[("eth0", &[("rx_errors", 1)])], &[])],
    );
    let s = counter_signals(&start, &end);
    assert!(s.nic_errors.is_empty());
    let t = tick_loss(2000, &BTreeMap::new(), &start, &end, 0);
    assert_eq!(t.loss[&Layer::NicDriver], 0);
    let notes = notes_of(&[start, end]);
    assert_eq!(
        notes,
        vec!["counters: at 2.0 s: host interface eth0: rx_errors 900 → 1 went back (reset: driver reload, interface or namespace recreated); not counted".to_owned()]
    );
}

#[test]
fn a_32_bit_wrap_counts_eleven_and_says_so() {
    let start = sample(
        0,
        vec![ns(
            1,
            true,
            &[("eth0", &[("rx_errors", 4_294_967_290)])],
            &[],
        )],
    );
    let end = sample(
        1000,
        vec![ns(1, true, &[("eth0", &[("rx_errors", 5)])], &[])],
    );
    let s = counter_signals(&start, &end);
    assert_eq!(s.nic_errors.len(), 1);
    assert_eq!(s.nic_errors[0].delta(), 11);
    assert_eq!(
        s.nic_errors[0].text(),
        "eth0 rx_errors: 4294967290 → 5 (+11, wrapped at 2^32)"
    );
    let t = tick_loss(1000, &BTreeMap::new(), &start, &end, 0);
    assert_eq!(t.loss[&Layer::NicDriver], 11);
    let notes = notes_of(&[start, end]);
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].contains(
            "host interface eth0: rx_errors 4294967290 → 5 (+11) read as a 32-bit counter wrapping"
        ),
        "{notes:?}"
    );
}

#[test]
fn an_implausible_jump_counts_nothing_and_is_named() {
    let start = sample(
        0,
        vec![ns(
            1,
            true,
            &[("eth0", &[("rx_errors", 10)])],
            &[("Tcp", "RetransSegs", 5), ("Tcp", "OutSegs", 100)],
        )],
    );
    let end = sample(
        1000,
        vec![ns(
            1,
            true,
            &[("eth0", &[("rx_errors", 1 << 50)])],
            &[("Tcp", "RetransSegs", i64::MAX), ("Tcp", "OutSegs", 200)],
        )],
    );
    let s = counter_signals(&start, &end);
    assert!(s.nic_errors.is_empty());
    assert_eq!(s.retrans_segs, 0);
    assert_eq!(s.out_segs, 100);
    let notes = notes_of(&[start, end]);
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes.iter().all(|n| n.contains("beyond 2^40")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("Tcp:RetransSegs")));
    assert!(notes.iter().any(|n| n.contains("eth0: rx_errors 10 → ")));
}

#[test]
fn a_vanished_namespace_gives_no_delta_and_is_noted() {
    let lab = |overflows| {
        ns(
            7,
            false,
            &[("veth0", &[("rx_dropped", 3)])],
            &[("TcpExt", "ListenOverflows", overflows)],
        )
    };
    let host = || ns(1, true, &[("eth0", &[("rx_errors", 0)])], &[]);
    let start = sample(0, vec![host(), lab(1000)]);
    let end = sample(1000, vec![host()]);
    let s = counter_signals(&start, &end);
    assert!(s.listen.is_empty());
    let notes = notes_of(&[start.clone(), end.clone()]);
    assert_eq!(
        notes,
        vec!["counters: at 1.0 s: network namespace netns lab7 (7) vanished; its counters stop there".to_owned()]
    );
    // Recreated under the same inode with fresh counters: a reset, not a negative change.
    let again = sample(2000, vec![host(), lab(4)]);
    let s = counter_signals(&start, &again);
    assert!(s.listen.is_empty());
    let notes = notes_of(&[start, end, again]);
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[1].contains("network namespace netns lab7 (7) appeared"));
}

#[test]
fn softnet_conntrack_and_qdisc_resets_are_named() {
    let mut a = sample(0, vec![ns(1, true, &[("eth0", &[])], &[])]);
    a.softnet = vec![SoftnetRow {
        cpu: 1,
        dropped: 50,
        time_squeeze: 7,
        ..Default::default()
    }];
    a.netns[0].conntrack = Some(Conntrack {
        count: 10,
        max: 100,
        stats: [("drop".to_owned(), 40), ("entries".to_owned(), 90)]
            .into_iter()
            .collect(),
    });
    if let Some(eth0) = a.netns[0].interfaces.get_mut("eth0") {
        eth0.qdisc = Some(QdiscCounters {
            kind: "fq_codel".to_owned(),
            drops: 30,
            ..Default::default()
        });
        eth0.ethtool = [
            ("rx_queue_0_drops".to_owned(), 8),
            ("rx_queue_0_depth".to_owned(), 8),
        ]
        .into();
    }
    let mut b = a.clone();
    b.at_ms = 1000;
    b.softnet[0].dropped = 2;
    b.softnet[0].time_squeeze = 8;
    if let Some(c) = b.netns[0].conntrack.as_mut() {
        c.stats = [("drop".to_owned(), 1), ("entries".to_owned(), 3)]
            .into_iter()
            .collect();
    }
    if let Some(eth0) = b.netns[0].interfaces.get_mut("eth0") {
        if let Some(q) = eth0.qdisc.as_mut() {
            q.drops = 0;
        }
        eth0.ethtool = [
            ("rx_queue_0_drops".to_owned(), 1),
            ("rx_queue_0_depth".to_owned(), 1),
        ]
        .into();
    }
    let s = counter_signals(&a, &b);
    assert_eq!(s.softnet_dropped, 0);
    assert_eq!(s.time_squeeze, 1);
    assert!(s.conntrack_drops.is_empty() && s.qdisc_drops.is_empty());
    let notes = notes_of(&[a, b]);
    let text = notes.join("\n");
    assert_eq!(notes.len(), 3, "{text}");
    for needle in [
        "softnet cpu 1: dropped 50 → 2 went back",
        "host: conntrack drop 40 → 1 went back",
        "host interface eth0: rx_queue_0_drops 8 → 1, qdisc drops 30 → 0 went back",
    ] {
        assert!(text.contains(needle), "{needle} not in {text}");
    }
    // Gauges are not resets.
    assert!(
        !text.contains("entries") && !text.contains("depth"),
        "{text}"
    );
}

#[test]
fn notes_are_bounded_and_resets_come_first() {
    let mut samples = Vec::new();
    for i in 0..40u64 {
        let names: Vec<String> = (0..3).map(|k| format!("veth{}", i * 3 + k)).collect();
        let ifaces: Vec<(&str, &[(&str, u64)])> =
            names.iter().map(|n| (n.as_str(), &[][..])).collect();
        samples.push(sample(
            i * 1000,
            vec![ns(
                1,
                true,
                &[ifaces, vec![("eth0", &[("rx_errors", 100 - i)][..])]].concat(),
                &[],
            )],
        ));
    }
    let notes = notes_of(&samples);
    assert_eq!(notes.len(), MAX_BREAK_NOTES + 1);
    assert!(
        notes[0].contains("host interface eth0: rx_errors 100 → 99 went back"),
        "{}",
        notes[0]
    );
    assert!(notes[MAX_BREAK_NOTES].starts_with("counters: "));
    // 39 resets, 39 × 3 vanished, 39 × 3 appeared.
    let more = 39 + 39 * 6 - MAX_BREAK_NOTES;
    assert!(
        notes[MAX_BREAK_NOTES].contains(&format!("{more} more")),
        "{}",
        notes[MAX_BREAK_NOTES]
    );
}

/// A judged window over frames where a lab interface is deleted, missing for a second and
/// recreated with fresh counters, and the host NIC's 32-bit counter wraps: the document says
/// both, and nothing in it is absurd.
#[test]
fn judged_window_names_the_break_and_shows_nothing_absurd() {
    let lab = |tx: Option<u64>| {
        let ifaces: Vec<(&str, &[(&str, u64)])> = Vec::new();
        let mut n = ns(7, false, &ifaces, &[("Tcp", "OutSegs", 10)]);
        if let Some(tx) = tx {
            n.interfaces.insert(
                "veth-a".to_owned(),
                IfaceCounters {
                    stats: [
                        ("tx_packets".to_owned(), tx),
                        ("tx_dropped".to_owned(), tx / 100),
                    ]
                    .into(),
                    qdisc: Some(QdiscCounters {
                        kind: "noqueue".to_owned(),
                        drops: tx / 10,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            );
        }
        n
    };
    let host = |rx_errors: u64| ns(1, true, &[("eth0", &[("rx_errors", rx_errors)])], &[]);
    let counters = [
        sample(0, vec![host(4_294_967_000), lab(Some(1000))]),
        sample(1000, vec![host(4_294_967_200), lab(Some(5000))]),
        sample(2000, vec![host(4_294_967_290), lab(None)]),
        sample(3000, vec![host(5), lab(Some(40))]),
        sample(4000, vec![host(5), lab(Some(900))]),
    ];
    let frames: Vec<Frame> = counters
        .iter()
        .map(|c| Frame {
            at_ms: c.at_ms,
            unix_ms: None,
            snapshot: Snapshot::default(),
            counters: c.clone(),
            bpf_stats_enabled: false,
        })
        .collect();
    let meta = TracerMeta {
        names: KernelNames::default(),
        ..Default::default()
    };
    let symbols: BTreeMap<u64, String> = BTreeMap::new();
    let judged = judge(
        &frames,
        &meta,
        &symbols,
        None,
        &NodeFacts::default(),
        &NodeFacts::default(),
        &[],
    );
    let notes = &judged.document.observations.notes;
    let text = notes.join("\n");
    assert!(
        text.contains("at 2.0 s: interface veth-a of netns lab7 vanished"),
        "{text}"
    );
    assert!(
        text.contains("at 3.0 s: interface veth-a of netns lab7 appeared"),
        "{text}"
    );
    assert!(
        text.contains("at 3.0 s: host interface eth0: rx_errors 4294967290 → 5 (+11) read as a 32-bit counter wrapping"),
        "{text}"
    );
    // Whole window: 4294967000 → 5 is 301 errors through the wrap; veth-a's qdisc drops went
    // 100 → 90 across its recreation: a reset, not counted (not 2^64 - 10).
    let s = counter_signals(
        &judged.evidence.counters_start,
        &judged.evidence.counters_end,
    );
    assert_eq!(s.nic_errors.len(), 1);
    assert_eq!(s.nic_errors[0].delta(), 301);
    assert!(s.qdisc_drops.is_empty());
    // Per second: 200, 90, 11, 0 NIC errors; the lab's qdisc 400 then nothing (gone, reset),
    // then 86 after the recreation.
    let nic: Vec<u64> = judged
        .evidence
        .ticks
        .iter()
        .map(|t| t.loss.get(&Layer::NicDriver).copied().unwrap_or(0))
        .collect();
    assert_eq!(nic, vec![200 + 400, 90, 11, 86]);
    for score in judged.document.layer_scores.values() {
        assert!(score.lost_packets <= ABSURD, "{score:?}");
    }
    assert_eq!(
        judged.document.layer_scores[&Layer::NicDriver].lost_packets,
        301
    );
}

fn counter_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..1000,
        (u64::from(u32::MAX) - 100)..=u64::from(u32::MAX),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

/// Interfaces by name (from a small set, so they come and go) with two counters each.
fn interfaces() -> impl Strategy<Value = BTreeMap<String, IfaceCounters>> {
    proptest::collection::btree_map(
        prop::sample::select(vec!["eth0", "eth1", "veth-a", "lo"]).prop_map(str::to_owned),
        (counter_value(), counter_value(), counter_value()).prop_map(|(e, c, q)| IfaceCounters {
            stats: [("rx_errors".to_owned(), e), ("rx_crc_errors".to_owned(), c)]
                .into_iter()
                .collect(),
            ethtool: [("pps_allowance_exceeded".to_owned(), e)]
                .into_iter()
                .collect(),
            qdisc: Some(QdiscCounters {
                kind: "mq".to_owned(),
                drops: q,
                ..Default::default()
            }),
            ..Default::default()
        }),
        0..4,
    )
}

fn any_sample() -> impl Strategy<Value = CounterSample> {
    let one_ns = (
        prop::sample::select(vec![1u32, 7, 9]),
        interfaces(),
        proptest::collection::vec(any::<i64>(), 3),
        counter_value(),
    )
        .prop_map(|(inode, interfaces, snmp, ct)| NetnsCounters {
            inode,
            label: format!("ns{inode}"),
            is_host: inode == 1,
            snmp: [
                (
                    "Tcp".to_owned(),
                    [
                        ("RetransSegs".to_owned(), snmp[0]),
                        ("OutSegs".to_owned(), snmp[1]),
                    ]
                    .into(),
                ),
                (
                    "TcpExt".to_owned(),
                    [("ListenOverflows".to_owned(), snmp[2])]
                        .into_iter()
                        .collect(),
                ),
            ]
            .into(),
            conntrack: Some(Conntrack {
                stats: [("drop".to_owned(), ct)].into_iter().collect(),
                ..Default::default()
            }),
            interfaces,
        });
    (
        proptest::collection::vec(one_ns, 0..3),
        proptest::collection::vec((0u32..3, counter_value()), 0..3),
    )
        .prop_map(|(netns, softnet)| CounterSample {
            netns: netns.into_iter().map(Into::into).collect(),
            softnet: softnet
                .into_iter()
                .map(|(cpu, dropped)| SoftnetRow {
                    cpu,
                    dropped,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
}

proptest! {
    #![proptest_config(crate::testkit::mutations::config(256))]

    /// Any two samples: every counted change is at most 2^40, every tick's loss is bounded by
    /// the number of counters read times 2^40, and every counted wrap is named in a note.
    #[test]
    fn no_sample_pair_gives_an_absurd_change(a in any_sample(), b in any_sample()) {
        let s = counter_signals(&a, &b);
        for d in all_deltas(&s) {
            prop_assert!(d.delta() <= ABSURD, "{d:?}");
            prop_assert!(d.delta() > 0);
        }
        for total in [s.softnet_dropped, s.retrans_segs, s.out_segs, s.timeouts, s.dsack_segs] {
            prop_assert!(total <= 3 * ABSURD);
        }
        let t = tick_loss(1000, &BTreeMap::new(), &a, &b, 0);
        for (layer, loss) in &t.loss {
            prop_assert!(*loss <= 64 * ABSURD, "{layer:?} {loss}");
        }
        let notes = counter_break_notes([&a, &b]);
        prop_assert!(notes.len() <= MAX_BREAK_NOTES + 1);
        // Every wrapped change that was counted is also named.
        let wrapped = all_deltas(&s)
            .into_iter()
            .filter(|d| matches!(CounterChange::of(d.start, d.end), CounterChange::Wrapped32(_)))
            .count();
        let named = counter_breaks(&a, &b)
            .iter()
            .any(|(_, n)| n.contains("32-bit counter wrapping"));
        prop_assert!(wrapped == 0 || named, "{wrapped} wrapped, none named");
    }
}

fn any_snapshot() -> impl Strategy<Value = Snapshot> {
    use tracer_common::{DropKey, FlowKey, FlowStats};
    (
        proptest::collection::hash_map((0u32..3, 0u32..2), counter_value(), 0..4),
        proptest::collection::hash_map(0u16..3, (counter_value(), counter_value()), 0..3),
        proptest::collection::vec(counter_value(), 0..4),
    )
        .prop_map(|(drops, flows, counters)| Snapshot {
            drops: drops
                .into_iter()
                .map(|((reason, netns), v)| {
                    (
                        DropKey {
                            reason,
                            netns,
                            location: 0xffff_ffff_8100_0000,
                        },
                        v,
                    )
                })
                .collect(),
            flows: flows
                .into_iter()
                .map(|(sport, (r, s))| {
                    (
                        FlowKey {
                            netns: 1,
                            family: 2,
                            sport,
                            dport: 80,
                            _pad: 0,
                            saddr: [0; 4],
                            daddr: [0; 4],
                        },
                        FlowStats {
                            retransmits: r,
                            retransmitted_segments: s,
                            synack_retransmits: 0,
                            failed_attempts: 0,
                            last_state: 1,
                            _pad: 0,
                        },
                    )
                })
                .collect(),
            counters,
            ..Default::default()
        })
}

proptest! {
    #![proptest_config(crate::testkit::mutations::config(256))]

    /// The probe maps between two snapshots: a drop key or flow evicted and re-inserted (its
    /// count restarted), or a map read short, never gives a change larger than the end's own
    /// count, and keys only the end has.
    #[test]
    fn snapshot_changes_never_exceed_the_end_count(a in any_snapshot(), b in any_snapshot()) {
        let d = b.since(&a);
        for (key, n) in &d.drops {
            let end = b.drops[key];
            prop_assert!(*n > 0 && *n <= end);
            prop_assert_eq!(*n, end.saturating_sub(a.drops.get(key).copied().unwrap_or(0)));
        }
        for (key, f) in &d.flows {
            prop_assert!(f.retransmitted_segments <= b.flows[key].retransmitted_segments);
            prop_assert!(f.retransmits <= b.flows[key].retransmits);
        }
        prop_assert_eq!(d.counters.len(), b.counters.len());
        for (i, n) in d.counters.iter().enumerate() {
            prop_assert!(*n <= b.counters[i]);
        }
    }
}

/// A rolling window's ends through [`SignalsMemo`]: each namespace computed once per pair of
/// readings, reused while both stay the same allocations, computed again when either changes;
/// the signals are those [`counter_signals`] gives afresh every time (deltas in the same order).
#[test]
fn the_memo_reuses_unchanged_namespaces_and_gives_the_same_signals() {
    let lab = |inode: u32, listen: i64, retrans: i64, qdisc: u64| {
        let mut n = ns(
            inode,
            false,
            &[("veth0", &[("rx_packets", 10)])],
            &[
                ("TcpExt", "ListenDrops", listen),
                ("Tcp", "RetransSegs", retrans),
                ("Tcp", "OutSegs", 1000 + retrans),
            ],
        );
        if let Some(veth) = n.interfaces.get_mut("veth0") {
            veth.qdisc = Some(QdiscCounters {
                kind: "fq_codel".to_owned(),
                drops: qdisc,
                ..Default::default()
            });
        }
        n
    };
    let host = ns(1, true, &[("eth0", &[("rx_errors", 0)])], &[]);
    let start = sample(
        0,
        vec![
            host.clone(),
            lab(2, 0, 0, 0),
            lab(3, 5, 10, 1),
            lab(4, 0, 0, 0),
            lab(5, 7, 0, 0),
        ],
    );
    // The end: 2 idle (read again, same values), 3 and 5 moved, 4 the very start reading.
    let mut end = sample(
        1000,
        vec![
            host,
            lab(2, 0, 0, 0),
            lab(3, 25, 40, 6),
            lab(4, 0, 0, 0),
            lab(5, 9, 3, 0),
        ],
    );
    end.netns[3] = start.netns[3].clone();
    let memo = SignalsMemo::default();
    let same = |memo: &SignalsMemo, start: &CounterSample, end: &CounterSample| {
        let afresh = counter_signals(start, end);
        let memoised = counter_signals_with(start, end, Some(memo));
        assert_eq!(format!("{memoised:?}"), format!("{afresh:?}"));
        afresh
    };
    let s = same(&memo, &start, &end);
    assert_eq!(s.listen.len(), 2);
    assert_eq!((s.retrans_segs, s.out_segs), (33, 33));
    assert_eq!(s.qdisc_drops.len(), 1);
    // Host, 2, 3 and 5 computed (4 is one reading at both ends: nothing to compute).
    assert_eq!(memo.computed(), 4);
    // The next second, nothing changed at either end: nothing computed again.
    same(&memo, &start, &end);
    same(&memo, &start, &end);
    assert_eq!(memo.computed(), 4);
    // Namespace 3 read again (a new reading, its ListenDrops up): only it is computed again.
    let mut later = end.clone();
    later.netns[2] = Shared::new(lab(3, 30, 40, 6));
    let s = same(&memo, &start, &later);
    assert_eq!(memo.computed(), 5);
    assert_eq!(s.listen.iter().map(|d| d.delta()).sum::<u64>(), 25 + 2);
    // The window's start moves to a new reading of 5: only 5 is computed again.
    let mut moved = start.clone();
    moved.netns[4] = Shared::new(lab(5, 8, 0, 0));
    same(&memo, &moved, &later);
    assert_eq!(memo.computed(), 6);
    // A namespace gone from both ends is forgotten once unused for MEMO_KEPT_FOR judgings.
    let mut gone_start = moved.clone();
    let mut gone_end = later.clone();
    gone_start.netns.remove(1);
    gone_end.netns.remove(1);
    for _ in 0..70 {
        same(&memo, &gone_start, &gone_end);
    }
    assert_eq!(memo.computed(), 6);
    assert_eq!(memo.len(), 3, "host, 3 and 5 kept; 2 forgotten");
}
