//! The published schema (`tracer schema`) against the documents the unit tests can build: every
//! one matches, and a broken one is rejected at the key that is wrong.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{schema, tests::document, VerdictDocument};
use crate::{
    judge::flows::{DestTracking, ErrorCount, Latency, LatencyBucket, ResetFlow},
    judge::report::{HistBucket, NetnsCount, ProgramCost, Report, TracerCost},
    judge::verdict::{decide, fixtures::*, WindowEvidence},
    kernel::probes::{ProbeState, ProbeStatus},
    node::{evidence::FirewallRule, netns::NetnsScope},
};

/// Every error of `doc` against the published schema, as `instance path: message`.
fn schema_errors(doc: &Value) -> Vec<String> {
    let validator = jsonschema::draft202012::new(&schema()).expect("the schema compiles");
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn json(doc: &VerdictDocument) -> Value {
    serde_json::to_value(doc).unwrap()
}

/// The document of a decided window, with the window's own observations.
fn decided(w: &WindowEvidence) -> VerdictDocument {
    let verdict = decide(w);
    VerdictDocument::new(
        verdict,
        w.observed.clone(),
        &w.facts_end,
        vec!["conntrack: unreadable".to_owned()],
    )
}

/// Observations with every optional part present: a pod scope, a missing probe, drops per pod,
/// flows with RTT, errors and resets, an evicted flow, programs' costs, counters and notes.
fn full_observations() -> Report {
    let mut report = observed(
        &[
            ("NETFILTER_DROP", "nft_do_chain+0x46f", 500),
            ("TCP_OLD_SEQUENCE", "tcp_validate_incoming+0x1", 9),
        ],
        &[(443, 40), (80, 3)],
        &[(0, 6_000_000_000), (1, 1_000_000)],
    );
    report.window.netns = Some(NetnsScope {
        path: "/proc/4242/ns/net".to_owned(),
        inode: 4_026_532_999,
        pod: Some("shop/cart-7d9f".to_owned()),
    });
    report.probes.push(ProbeStatus {
        tracepoint: "tcp:tcp_send_reset".to_owned(),
        program: "tcp_send_reset".to_owned(),
        state: ProbeState::Missing,
        detail: "no such tracepoint on this kernel".to_owned(),
        attach_ms: None,
        hook: None,
        hook_reason: None,
    });
    report.drops.by_reason[0].netns = vec![NetnsCount {
        inode: 4_026_532_999,
        count: 500,
        pod: Some("shop/cart-7d9f".to_owned()),
        netns_name: Some("blue".to_owned()),
    }];
    report.drops.by_reason[1].reason_value = None;
    report.retransmits.flows[0].pod = Some("shop/cart-7d9f".to_owned());
    report.retransmits.flows_evicted = 2;
    report.softirq[0].vectors[0].histogram = vec![HistBucket {
        lower_ns: 1024,
        count: 7,
    }];
    let mut dest = destination("198.18.2.10", 5432);
    dest.pod = Some("shop/cart-7d9f".to_owned());
    dest.connects = 10;
    dest.failed_connects = 2;
    dest.errors = vec![ErrorCount {
        error: "ETIMEDOUT".to_owned(),
        errno: 110,
        count: 2,
    }];
    let latency = Latency {
        samples: 8,
        sum_us: 800,
        mean_us: 100.0,
        p50_us: 90.0,
        p90_us: 150.0,
        p99_us: 190.0,
        buckets: vec![
            LatencyBucket {
                le_us: 128,
                count: 7,
            },
            LatencyBucket {
                le_us: u64::MAX,
                count: 1,
            },
        ],
    };
    dest.rtt = Some(latency.clone());
    dest.connect_time = Some(latency);
    report.flows.destinations = vec![dest, destination("198.18.2.11", 80)];
    report.flows.resets = vec![ResetFlow {
        netns: 4_026_532_999,
        pod: None,
        netns_name: Some("blue".to_owned()),
        family: "ipv6".to_owned(),
        saddr: "fd00::1".to_owned(),
        sport: 8080,
        daddr: "fd00::2".to_owned(),
        dport: 51000,
        direction: "sent".to_owned(),
        reason: Some("NO_SOCKET".to_owned()),
        count: 3,
    }];
    report.flows.tracking = DestTracking {
        capacity: 4096,
        kept: 2,
        evicted: 1,
        insert_failed: 0,
    };
    report.flows.totals.destinations = 2;
    report.tracer_counters = BTreeMap::from([("drop_events", 509), ("ringbuf_lost", 0)]);
    report.tracer_cost = TracerCost {
        bpf_stats_enabled: true,
        run_time_stats_held: true,
        programs: vec![
            ProgramCost {
                program: "kfree_skb".to_owned(),
                runs: 509,
                run_time_ns: 50_900,
                ns_per_run: Some(100.0),
                recursion_misses: 0,
            },
            ProgramCost {
                program: "tcp_retransmit_skb".to_owned(),
                runs: 0,
                run_time_ns: 0,
                ns_per_run: None,
                recursion_misses: 0,
            },
        ],
    };
    report.notes = vec!["2 retransmitting flows evicted".to_owned()];
    report
}

/// Windows that decide each of the runbook's root causes the fixtures can build, and a healthy one.
fn decided_windows() -> Vec<WindowEvidence> {
    let healthy = window(
        observed(
            &[("TCP_OLD_SEQUENCE", "tcp_validate_incoming+0x1", 69)],
            &[(443, 2)],
            &[],
        ),
        quiet(),
        quiet(),
    );
    let mut netfilter = window(full_observations(), quiet(), quiet());
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
    netfilter.facts_start.firewall_rules = vec![rule(10)];
    netfilter.facts_end.firewall_rules = vec![rule(510)];
    netfilter.facts_end.policy_engines = vec!["calico".to_owned()];
    let mut routes = window(
        observed(&[("NOT_SPECIFIED", "ip_error+0x5c", 120)], &[], &[]),
        quiet(),
        quiet(),
    );
    routes.facts_end.routes = vec![route("198.18.3.0/24", "blackhole", None)];
    let upstream = window(
        observed(&[], &[(443, 150)], &[]),
        host(
            &[("Tcp", "OutSegs", 1000), ("Tcp", "RetransSegs", 10)],
            &[],
            &[],
        ),
        host(
            &[("Tcp", "OutSegs", 11000), ("Tcp", "RetransSegs", 160)],
            &[],
            &[],
        ),
    );
    let nic = window(
        observed(&[], &[], &[]),
        host(
            &[],
            &[("rx_errors", 10), ("rx_crc_errors", 10)],
            &[("pps_allowance_exceeded", 100)],
        ),
        host(
            &[],
            &[("rx_errors", 60), ("rx_crc_errors", 40)],
            &[("pps_allowance_exceeded", 400)],
        ),
    );
    vec![healthy, netfilter, routes, upstream, nic]
}

#[test]
fn the_schema_lists_the_runbooks_keys_first_in_its_order_and_requires_every_key() {
    let schema = schema();
    assert_eq!(schema["title"], "tracer verdict document");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let properties: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        properties,
        [
            "root_cause",
            "failure_layer",
            "evidence",
            "severity",
            "mitigation",
            "cross_reference",
            "window",
            "other_findings",
            "escalation",
            "confidence",
            "ruled_out",
            "timeline",
            "layer_scores",
            "noise",
            "node",
            "observations",
        ]
    );
    // The same keys, in the same order, as the printed document.
    let printed: Vec<String> = json(&document("none"))
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(printed, properties);
    assert_eq!(schema["required"], json!(properties));
    assert_eq!(schema["additionalProperties"], false);
}

#[test]
fn every_document_the_unit_tests_build_matches_the_schema() {
    let mut documents = vec![document("none"), document("security_rule_drops")];
    documents.extend(decided_windows().iter().map(decided));
    let root_causes: Vec<&str> = documents.iter().map(|d| d.root_cause.as_str()).collect();
    assert_eq!(
        root_causes,
        [
            "none",
            "security_rule_drops",
            "none",
            "security_rule_drops",
            "route_issue",
            "upstream_loss",
            "nic_errors",
        ]
    );
    for doc in &documents {
        let value = json(doc);
        assert_eq!(schema_errors(&value), Vec::<String>::new(), "{value:#}");
    }
    // The netfilter window shows every optional part of the observations.
    let full = json(&documents[3]);
    assert_eq!(
        full["observations"]["window"]["netns"]["pod"],
        "shop/cart-7d9f"
    );
    assert!(full["observations"]["flows"]["destinations"][0]["rtt"].is_object());
    assert!(full["observations"]["tracer_cost"]["programs"][1]["ns_per_run"].is_null());
    assert_eq!(full["node"]["drop_reject_rules"], 1);
}

#[test]
fn broken_documents_are_rejected_at_the_broken_key() {
    let good = json(&decided(&decided_windows()[1]));
    type Break = fn(&mut Value);
    let cases: [(&str, Break, &str); 8] = [
        (
            "severity a number",
            |d| d["severity"] = json!(3),
            "/severity",
        ),
        (
            "root_cause missing",
            |d| {
                d.as_object_mut().unwrap().remove("root_cause");
            },
            "",
        ),
        (
            "evidence item without its type",
            |d| {
                d["evidence"][0].as_object_mut().unwrap().remove("type");
            },
            "/evidence/0",
        ),
        (
            "cross_reference as objects",
            |d| d["cross_reference"] = json!([{"runbook": "D5", "evidence": "x"}]),
            "/cross_reference/0",
        ),
        (
            "a layer the runbook does not name",
            |d| d["layer_scores"]["dns"] = json!({"lost_packets": 1, "signals": []}),
            "/layer_scores",
        ),
        (
            "an unknown probe state",
            |d| d["observations"]["probes"][0]["state"] = json!("asleep"),
            "/observations/probes/0/state",
        ),
        (
            "a negative count",
            |d| d["observations"]["drops"]["total"] = json!(-1),
            "/observations/drops/total",
        ),
        (
            "a key the schema does not describe",
            |d| d["verdict"] = json!("degraded"),
            "",
        ),
    ];
    assert_eq!(schema_errors(&good), Vec::<String>::new());
    for (what, break_it, path) in cases {
        let mut doc = good.clone();
        break_it(&mut doc);
        let errors = schema_errors(&doc);
        assert!(
            errors.iter().any(|e| e.starts_with(&format!("{path}: "))),
            "{what}: expected an error at `{path}`, got {errors:?}"
        );
    }
}
