//! Tests of the PromQL cluster view: answers as Prometheus gives them, judged.

use super::*;
use crate::judge::document::{EXIT_DEGRADED, EXIT_ERROR};
use crate::modes::cluster::{judge_nodes, Scope, MULTI_NODE_ESCALATION};

fn sample(pairs: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        labels: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        value,
    }
}

/// Answers for nodes `(name, reporting now, verdict layer or None, lost)`.
fn answers(nodes: &[(&str, bool, Option<&str>, f64)]) -> BTreeMap<Query, Vec<Sample>> {
    let mut a: BTreeMap<Query, Vec<Sample>> = BTreeMap::new();
    for (node, now, layer, lost) in nodes {
        let n = [("node", *node), ("instance", "10.0.0.1:9595")];
        a.entry(Query::Seen).or_default().push(sample(&n, 60.0));
        if *now {
            a.entry(Query::Now).or_default().push(sample(&n, 60.0));
        }
        a.entry(Query::Probes).or_default().push(sample(
            &[
                ("node", node),
                ("probe", "skb:kfree_skb"),
                ("state", "attached"),
            ],
            1.0,
        ));
        if let Some(layer) = layer {
            let cause = if *layer == "upstream" {
                "upstream_loss"
            } else {
                "security_rule_drops"
            };
            a.entry(Query::Verdicts).or_default().push(sample(
                &[
                    ("node", node),
                    ("root_cause", cause),
                    ("failure_layer", layer),
                    ("severity", "high"),
                ],
                12.0,
            ));
            a.entry(Query::Layers)
                .or_default()
                .push(sample(&[("node", node), ("layer", layer)], *lost));
            a.entry(Query::Onset).or_default().push(sample(
                &[("node", node), ("failure_layer", layer)],
                1_796_490_012.5,
            ));
            a.entry(Query::Drops).or_default().push(sample(
                &[
                    ("node", node),
                    ("reason", "NETFILTER_DROP"),
                    ("layer", layer),
                ],
                611.8,
            ));
            a.entry(Query::Retransmits)
                .or_default()
                .push(sample(&[("node", node)], 88.0));
        }
    }
    a
}

const W: Duration = Duration::from_secs(300);

#[test]
fn one_degraded_node_is_node_specific_with_its_layer_onset_and_top_drop() {
    let v = judge_nodes(nodes_from(
        &answers(&[
            ("node-a", true, Some("iptables_netpolicy"), 612.0),
            ("node-b", true, None, 0.0),
        ]),
        W,
    ));
    assert_eq!(v.scope, Scope::NodeSpecific);
    assert_eq!(v.degraded, ["node-a"]);
    assert_eq!(v.healthy, ["node-b"]);
    let a = &v.nodes[0];
    assert_eq!(a.failure_layer.as_deref(), Some("iptables_netpolicy"));
    assert_eq!(a.lost_packets, Some(612));
    assert_eq!(a.onset.as_deref(), Some("2026-12-05T17:00:12.500Z"));
    assert_eq!(
        a.top_evidence.as_deref(),
        Some("NETFILTER_DROP drops: 612 in the last 5m (layer iptables_netpolicy)")
    );
    assert!(v.escalation.is_empty());
    assert_eq!(v.exit_code(), EXIT_DEGRADED);
    assert!(v.text().contains("loss began 2026-12-05T17:00:12.500Z"));
}

#[test]
fn upstream_loss_on_both_nodes_is_cluster_wide_and_escalates() {
    let v = judge_nodes(nodes_from(
        &answers(&[
            ("node-a", true, Some("upstream"), 40.0),
            ("node-b", true, Some("upstream"), 35.0),
        ]),
        W,
    ));
    assert_eq!(v.scope, Scope::ClusterWide);
    assert!(v.escalation[0].starts_with(MULTI_NODE_ESCALATION));
    assert!(v.nodes[0]
        .top_evidence
        .as_deref()
        .is_some_and(|e| e.starts_with("88 TCP segments retransmitted")));
}

#[test]
fn a_stale_or_detached_node_is_not_reporting_never_healthy() {
    let mut a = answers(&[
        ("node-a", true, None, 0.0),
        ("node-b", false, Some("iptables_netpolicy"), 50.0),
        ("node-c", true, None, 0.0),
    ]);
    a.entry(Query::Probes).or_default().push(sample(
        &[
            ("node", "node-c"),
            ("probe", "tcp:tcp_probe"),
            ("state", "failed"),
        ],
        0.0,
    ));
    let v = judge_nodes(nodes_from(&a, W));
    assert_eq!(v.healthy, ["node-a"]);
    assert_eq!(v.not_reporting, ["node-b", "node-c"]);
    assert!(
        v.degraded.is_empty(),
        "a stale node's old verdict is not now's"
    );
    assert_eq!(v.exit_code(), EXIT_ERROR);
    assert!(
        v.summary.ends_with("; 2 not reporting: node-b, node-c"),
        "{}",
        v.summary
    );
    let text = v.text();
    assert!(
        text.contains("NOT REPORTING its series went stale"),
        "{text}"
    );
    assert!(
        text.contains("probes are detached (tcp:tcp_probe)"),
        "{text}"
    );
    let json = serde_json::to_value(&v).expect("json");
    assert_eq!(json["nodes"][1]["state"], "not_reporting");
    let none = judge_nodes(nodes_from(&answers(&[("node-b", false, None, 0.0)]), W));
    assert_eq!(none.scope, Scope::NoData);
    assert_eq!(
        none.summary,
        "no node is reporting (1 node seen in the window); 1 not reporting: node-b"
    );
}

#[test]
fn answers_parse_and_errors_say_why() {
    let ok = r#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"node":"a","layer":"upstream"},"value":[1796490012.5,"42"]}]}}"#;
    let s = parse_answer(ok).expect("vector");
    assert_eq!(s[0].value, 42.0);
    assert_eq!(s[0].labels["node"], "a");
    let bad = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
    let e = parse_answer(bad).expect_err("error").to_string();
    assert_eq!(e, "query failed: bad_data parse error at char 3");
    assert!(parse_answer("<html>").is_err());
}

#[test]
fn queries_use_the_window_and_auth_never_shows_its_secret() {
    let q = queries(Duration::from_secs(120));
    assert!(q
        .iter()
        .any(|(k, e)| *k == Query::Verdicts && e.contains("[120s:1s]")));
    assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b"a"), "YQ==");
    let dir = std::env::temp_dir().join(format!("tracer-promql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let basic = dir.join("basic");
    std::fs::write(&basic, "# who\nops:s3cret\n").expect("write");
    let auth = Auth::new(None, Some(&basic), None).expect("auth");
    assert_eq!(auth.header().as_deref(), Some("Basic b3BzOnMzY3JldA=="));
    assert!(!format!("{auth:?}").contains("s3cret"));
    let env = Auth::new(None, None, Some(" tok \n".to_owned())).expect("auth");
    assert_eq!(env.header().as_deref(), Some("Bearer tok"));
    std::fs::write(&basic, "no-colon\n").expect("write");
    assert!(Auth::new(None, Some(&basic), None).is_err());
    assert!(Auth::new(Some(&basic), Some(&basic), None).is_err());
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
