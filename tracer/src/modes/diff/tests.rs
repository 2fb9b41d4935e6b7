//! End-to-end comparisons: fixture reports and recordings, and nodes judged from recorded
//! counter trees, compared and ranked.

use std::path::PathBuf;

use super::{
    difference::{BAND_FAILURE_LAYER, BAND_NAMED_CONFIG},
    *,
};
use crate::{
    judge::document::{VerdictDocument, EXIT_DEGRADED, EXIT_HEALTHY},
    judge::layers::Layer,
    judge::report::{Report, WindowInfo},
    judge::verdict::{decide, WindowEvidence},
    node::counters::CounterSource,
    node::facts::FactsSource,
};

const NETFILTER: &str = include_str!("../../../../tests/fixtures/reports/netfilter-drops.json");
const HEALTHY: &str = include_str!("../../../../tests/fixtures/reports/healthy.json");
const NETFILTER_REC: &str =
    include_str!("../../../../tests/fixtures/reports/netfilter-drops.rec.json");
const HEALTHY_REC: &str = include_str!("../../../../tests/fixtures/reports/healthy.rec.json");

fn input(name: &str, text: &str) -> NodeInput {
    NodeInput::parse(name, text).expect("fixture input")
}

fn kinds_and_scores(d: &NodeDiff) -> Vec<(DiffKind, String, f64)> {
    d.differences
        .iter()
        .map(|x| (x.kind, x.subject.clone(), (x.score * 100.0).round() / 100.0))
        .collect()
}

/// A node judged from a recorded counter tree (as tests/scenarios.rs does), with its detail.
fn tree_input(name: &str, start: &str, end: &str) -> NodeInput {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/nodes");
    let counters_start = CounterSource::fixture(&root.join(start)).sample(0);
    let counters_end = CounterSource::fixture(&root.join(end)).sample(30_000);
    let facts = FactsSource::fixture(&root.join(end)).collect();
    let evidence = WindowEvidence {
        observed: Report {
            tracer_version: "fixture",
            kernel: "recorded".to_owned(),
            window: WindowInfo {
                duration_s: 30.0,
                startup_ms: 0.0,
                netns: None,
            },
            probes: vec![],
            drops: Default::default(),
            retransmits: Default::default(),
            softirq: vec![],
            flows: Default::default(),
            tracer_counters: Default::default(),
            tracer_counters_unknown: Vec::new(),
            tracer_cost: Default::default(),
            notes: vec![],
        },
        counters_start: counters_start.clone(),
        counters_end: counters_end.clone(),
        facts_start: facts.clone().into(),
        facts_end: facts.clone().into(),
        ticks: vec![],
        started_unix_ms: None,
    };
    let document = VerdictDocument::new(decide(&evidence), evidence.observed, &facts, vec![]);
    NodeInput {
        name: name.to_owned(),
        document: DocumentView::of(&document).expect("view"),
        detail: Some(RecordedDetail {
            counters_start,
            counters_end,
            facts_start: facts.clone(),
            facts_end: facts,
        }),
    }
}

#[test]
fn recorded_netfilter_report_ranks_its_drops_then_the_rule_then_the_rule_count() {
    let d = compare(&input("a", NETFILTER), &input("h", HEALTHY));
    assert_eq!(
        kinds_and_scores(&d),
        [
            (
                DiffKind::DropReason,
                "NETFILTER_DROP at nft_do_chain".to_owned(),
                1.0
            ),
            (
                DiffKind::Rule,
                "nftables inet trcfix chain input (hook input): `udp dport 7777 counter drop` drop"
                    .to_owned(),
                1.0
            ),
            (DiffKind::Rule, "DROP/REJECT rules".to_owned(), 0.45),
            // The healthy node's drops to a closed port explain nothing about the affected one.
            (
                DiffKind::DropReason,
                "NO_SOCKET at __udp4_lib_rcv".to_owned(),
                0.0
            ),
        ]
    );
    assert_eq!(d.differences[0].affected, "1460 (486.5/s)");
    assert_eq!(d.differences[0].healthy, "0 (0.0/s)");
    assert_eq!(d.differences[0].layer, Some(Layer::IptablesNetpolicy));
    assert_eq!(d.exit_code(), EXIT_DEGRADED);
    assert_eq!(d.affected.lost_packets, 1460);
}

#[test]
fn recordings_add_the_rule_itself_and_judge_like_a_replay() {
    let d = compare(&input("a.rec", NETFILTER_REC), &input("h.rec", HEALTHY_REC));
    assert_eq!(d.affected.input, "recording");
    assert_eq!(d.affected.root_cause, "security_rule_drops");
    assert_eq!(d.healthy.root_cause, "none");
    let top: Vec<_> = kinds_and_scores(&d).into_iter().take(3).collect();
    let rule = "nftables inet trcfix chain input: `udp dport 7777 counter drop` drop".to_owned();
    assert_eq!(
        top,
        [
            (
                DiffKind::DropReason,
                "NETFILTER_DROP at nft_do_chain".to_owned(),
                1.0
            ),
            (DiffKind::Rule, rule.clone(), 1.0),
            (DiffKind::Rule, rule, 0.45),
        ]
    );
    assert_eq!(d.differences[2].affected, "present");
    assert_eq!(d.differences[2].healthy, "absent");
    assert!(d.notes.is_empty(), "{:?}", d.notes);
}

#[test]
fn nic_errors_rank_the_nic_counters_first_then_the_driver_version() {
    let affected = tree_input("ena", "ena-errors", "ena-errors-later");
    let mut healthy = tree_input("ct", "conntrack-full", "conntrack-full-later");
    assert_eq!(affected.document.root_cause, "nic_errors");
    // The same recorded node with a newer driver: the runbook's "ENA < 2.8" check.
    if let Some(detail) = healthy.detail.as_mut() {
        for ns in &mut detail.counters_end.netns {
            if let Some(eth0) = ns.interfaces.get_mut("eth0") {
                eth0.driver_version = Some("2.13.0".to_owned());
            }
        }
    }
    let d = compare(&affected, &healthy);
    eprintln!("{}", d.text());
    let first_not_nic = d
        .differences
        .iter()
        .position(|x| x.layer != Some(Layer::NicDriver))
        .expect("a non-NIC difference");
    assert!(first_not_nic >= 1, "{}", d.text());
    assert!(d.differences[..first_not_nic]
        .iter()
        .all(|x| x.score >= BAND_FAILURE_LAYER && x.kind == DiffKind::Counter));
    let crc = d
        .differences
        .iter()
        .find(|x| x.subject == "eth0 rx_crc_errors")
        .expect("rx_crc_errors compared");
    assert_eq!(crc.affected, "12 (0.4/s)");
    let driver = &d.differences[first_not_nic];
    assert_eq!(
        (driver.kind, driver.subject.as_str(), driver.score),
        (DiffKind::Driver, "eth0 driver", BAND_NAMED_CONFIG)
    );
    assert_eq!(driver.affected, "ena 2.7.1g");
    assert_eq!(driver.healthy, "ena 2.13.0");
}

#[test]
fn reports_of_recorded_trees_compare_counters_from_the_verdicts_signals() {
    let mut a = tree_input("ena", "ena-errors", "ena-errors-later");
    let mut h = tree_input("ct", "conntrack-full", "conntrack-full-later");
    a.detail = None;
    h.detail = None;
    let d = compare(&a, &h);
    let top = &d.differences[0];
    assert_eq!(top.kind, DiffKind::Counter, "{}", d.text());
    assert_eq!(top.layer, Some(Layer::NicDriver));
    assert!(top.score >= BAND_FAILURE_LAYER, "{}", d.text());
    assert!(d.notes[0].contains("only between two recordings"));
}

#[test]
fn loss_both_nodes_share_sinks_and_says_so() {
    let a = input("a", NETFILTER);
    let mut h = input("h", NETFILTER);
    // The "healthy" node drops 1200 of the same packets in the same 3 s (its rule matched
    // as often: the evidence line is the affected node's).
    h.document.observations.drops.by_reason[0].locations[0].count = 1200;
    if let Some(score) = h.document.layer_scores.get_mut("iptables_netpolicy") {
        score.lost_packets = 1200;
    }
    let d = compare(&a, &h);
    let top = &d.differences[0];
    assert_eq!(top.subject, "NETFILTER_DROP at nft_do_chain");
    // (0.5 + 0.5 × 1) × 260 / 1460: explains 18 %, below every configuration difference.
    assert!((top.score - 260.0 / 1460.0).abs() < 1e-9, "{}", top.score);
    assert!(
        top.why.contains("the healthy node shows 82 % of it"),
        "{}",
        top.why
    );
    assert!(
        d.notes.iter().any(|n| n.contains("shows the same problem")),
        "{:?}",
        d.notes
    );
}

#[test]
fn swapped_arguments_are_noticed_and_explain_nothing() {
    let d = compare(&input("h", HEALTHY), &input("a", NETFILTER));
    assert_eq!(d.exit_code(), EXIT_HEALTHY);
    assert!(
        d.notes.iter().any(|n| n.contains("swapped")),
        "{:?}",
        d.notes
    );
    let nf = d
        .differences
        .iter()
        .find(|x| x.subject == "NETFILTER_DROP at nft_do_chain")
        .expect("compared");
    assert_eq!(nf.score, 0.0);
}

#[test]
fn healthy_counts_are_scaled_to_the_affected_window() {
    let a = input("a", NETFILTER);
    let mut h = input("h", NETFILTER);
    // Twice the window, twice the drops: the same rate, no difference.
    h.document.observations.window.duration_s *= 2.0;
    h.document.observations.drops.by_reason[0].locations[0].count *= 2;
    h.document.observations.drops.by_reason[0].count *= 2;
    let d = compare(&a, &h);
    assert!(
        !d.differences
            .iter()
            .any(|x| x.subject == "NETFILTER_DROP at nft_do_chain"),
        "{}",
        d.text()
    );
    assert!(d.notes.iter().any(|n| n.contains("windows differ")));
}
