//! The mapping to the runbook's Output Format, the node's identity and the caps.

#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;
use crate::judge::{document::tests::document, verdict::TimelineEntry};

fn node() -> NodeIdentity {
    NodeIdentity::from_parts(None, Some("node-a"), None)
}

#[test]
fn the_document_maps_to_the_output_format_with_finding_ids() {
    let mut doc = document("security_rule_drops");
    doc.evidence.push(EvidenceItem {
        kind: "correlate".to_owned(),
        content: "loss began 3 s into the window".to_owned(),
    });
    doc.window.start = Some("2026-12-05T12:00:00Z".to_owned());
    doc.window.end = Some("2026-12-05T12:00:10Z".to_owned());
    doc.timeline = vec![
        TimelineEntry {
            at_s: 0.0,
            at: Some("2026-12-05T12:00:00Z".to_owned()),
            event: "window start".to_owned(),
        },
        TimelineEntry {
            at_s: 3.0,
            at: Some("2026-12-05T12:00:03Z".to_owned()),
            event: "onset: security rules loss rose to 50/s from a baseline of 0/s".to_owned(),
        },
    ];
    let v = Verdict::of(&doc, node());
    assert_eq!(v.root_cause, "security_rule_drops");
    assert_eq!(v.failure_layer, "iptables_netpolicy");
    assert_eq!(v.finding_ids(), vec!["F-001", "F-002"]);
    assert_eq!(v.evidence[0].kind, "kernel_probe");
    assert!(v.evidence[0].content.contains("NETFILTER_DROP"));
    assert_eq!(v.window_start_utc.as_deref(), Some("2026-12-05T12:00:00Z"));
    assert_eq!(v.window_end_utc.as_deref(), Some("2026-12-05T12:00:10Z"));
    assert_eq!(v.onset_utc.as_deref(), Some("2026-12-05T12:00:03Z"));
    assert!(v.onset_in_window);
    assert_eq!(v.confidence, 0.9);
    assert!(!v.truncated);
    // The runbook's keys come first, in its order.
    let value = serde_json::to_value(&v).unwrap();
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        &keys[..6],
        &[
            "root_cause",
            "failure_layer",
            "evidence",
            "severity",
            "mitigation",
            "cross_reference"
        ]
    );
    assert_eq!(value["evidence"][1]["type"], "correlate");
    assert_eq!(value["evidence"][1]["finding_id"], "F-002");
}

#[test]
fn loss_already_present_has_its_onset_at_the_window_start() {
    let mut doc = document("security_rule_drops");
    doc.window.start = Some("2026-12-05T12:00:00Z".to_owned());
    doc.timeline = vec![TimelineEntry {
        at_s: 0.0,
        at: None,
        event: "security rules loss already present when the window started".to_owned(),
    }];
    let v = Verdict::of(&doc, node());
    assert_eq!(v.onset_utc.as_deref(), Some("2026-12-05T12:00:00Z"));
    assert!(!v.onset_in_window);
    // No loss: no onset.
    let v = Verdict::of(&document("none"), node());
    assert_eq!(v.onset_utc, None);
}

#[test]
fn long_evidence_and_lists_are_capped_and_flagged() {
    let mut doc = document("security_rule_drops");
    doc.evidence[0].content = "x".repeat(MAX_CONTENT_CHARS + 10);
    doc.timeline = (0..MAX_LIST + 5)
        .map(|i| TimelineEntry {
            at_s: i as f64,
            at: None,
            event: format!("tick {i}"),
        })
        .collect();
    let v = Verdict::of(&doc, node());
    assert!(v.truncated);
    assert_eq!(v.evidence[0].content.chars().count(), MAX_CONTENT_CHARS);
    assert!(v.evidence[0].content.ends_with('…'));
    assert_eq!(v.timeline.len(), MAX_LIST);
}

#[test]
fn node_identity_prefers_the_instance_id() {
    let n = NodeIdentity::from_parts(Some("i-0abc123def4567890\n"), Some("ip-10-0-0-1\n"), None);
    assert_eq!(n.identity, "i-0abc123def4567890");
    assert_eq!(n.instance_id.as_deref(), Some("i-0abc123def4567890"));
    assert_eq!(n.node_name.as_deref(), Some("ip-10-0-0-1"));
    // Not an instance id (other clouds, bare metal, "Not Specified"): the host name.
    for tag in ["Not Specified", "", "i-", "i-xyz"] {
        let n = NodeIdentity::from_parts(Some(tag), Some("worker-3"), Some("k8s-node-3"));
        assert_eq!(n.identity, "worker-3", "{tag:?}");
        assert_eq!(n.instance_id, None);
        assert_eq!(n.node_name.as_deref(), Some("k8s-node-3"));
    }
    assert_eq!(
        NodeIdentity::from_parts(None, None, None).identity,
        "unknown"
    );
}

#[test]
fn values_shrink_their_longest_lists_to_fit() {
    let mut v = json!({
        "small": [1, 2, 3],
        "rows": (0..1000).map(|i| json!({"i": i, "pad": "abcdefghij"})).collect::<Vec<_>>(),
        "name": "kept",
    });
    let before = serde_json::to_vec(&v).unwrap().len();
    assert!(before > 20_000);
    assert!(cap_value(&mut v, 4_000));
    assert!(serde_json::to_vec(&v).unwrap().len() <= 4_000);
    assert_eq!(v["small"], json!([1, 2, 3]));
    assert_eq!(v["name"], "kept");
    assert_eq!(v["rows"][0]["i"], 0);
    // Already small: untouched.
    let mut small = json!({"a": [1, 2]});
    assert!(!cap_value(&mut small, 1000));
    assert_eq!(small, json!({"a": [1, 2]}));
}

#[test]
fn rows_are_capped_at_every_depth() {
    let mut v = json!({"rules": [1, 2, 3, 4], "pods": [{"ips": [1, 2, 3]}], "n": 7});
    assert!(cap_rows(&mut v, 2));
    assert_eq!(
        v,
        json!({"rules": [1, 2], "pods": [{"ips": [1, 2]}], "n": 7})
    );
    assert!(!cap_rows(&mut v, 2));
}
