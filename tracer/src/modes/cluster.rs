//! `tracer cluster`: every node's sidecar asked for its verdict (`GET /report?window=…`), then
//! one cluster verdict — which nodes are degraded, healthy or unreachable, whether the
//! degradation is node-specific or cluster-wide, and the runbook's upstream escalation when
//! several nodes lose packets at once (D7 guardrail "Packet loss on multiple nodes
//! simultaneously"). Fetching is the only I/O ([`fetch_all`]); [`judge_cluster`] is pure.
//! Sidecars that ask for a token get the one from [`Client`] (`--auth-token-file` or
//! `TRACER_AUTH_TOKEN`); `https://` endpoints, or all with `--ca-cert`, are asked over TLS.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::{
    judge::document::{EXIT_DEGRADED, EXIT_ERROR, EXIT_HEALTHY},
    judge::verdict::MIN_LOSS,
    modes::client::Client,
    modes::diff::DocumentView,
};

/// The sidecar's default port (`tracer serve`).
pub const DEFAULT_PORT: u16 = 9595;
/// The most a `/report` body may be; a verdict document is a few tens of kilobytes.
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// The endpoints from `--endpoints a,b` and an endpoints file (one per line, `#` comments),
/// as `host:port` (port 9595 when none is given), in order, without duplicates.
pub fn parse_endpoints(listed: &[String], file_text: Option<&str>) -> Result<Vec<String>> {
    let from_file = file_text
        .into_iter()
        .flat_map(str::lines)
        .map(|l| l.split('#').next().unwrap_or(""));
    let mut out: Vec<String> = Vec::new();
    for raw in listed
        .iter()
        .flat_map(|s| s.split(','))
        .chain(from_file)
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let endpoint = normalize(raw)?;
        if !out.contains(&endpoint) {
            out.push(endpoint);
        }
    }
    if out.is_empty() {
        bail!("no endpoint given: pass --endpoints HOST:PORT,… or --endpoints-file FILE");
    }
    Ok(out)
}

/// `http://h:p/` → `h:p`; `h` → `h:9595`; `[::1]` → `[::1]:9595`; `https://h` →
/// `https://h:9595` (the scheme kept: that one is asked over TLS).
fn normalize(raw: &str) -> Result<String> {
    if let Some(rest) = raw.strip_prefix("https://") {
        return Ok(format!("https://{}", normalize(rest)?));
    }
    let s = raw.strip_prefix("http://").unwrap_or(raw);
    let s = s.trim_end_matches('/');
    if s.is_empty() || s.contains('/') || s.contains(char::is_whitespace) {
        bail!("{raw:?} is not HOST:PORT");
    }
    let has_port = if let Some(rest) = s.strip_prefix('[') {
        // [v6]:port
        rest.split_once(']')
            .is_some_and(|(_, after)| after.starts_with(':'))
    } else {
        s.matches(':').count() == 1
    };
    if has_port {
        let port = s.rsplit(':').next().unwrap_or("");
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            bail!("{raw}: {port:?} is not a port number");
        }
        Ok(s.to_owned())
    } else if s.matches(':').count() > 1 {
        Ok(format!("[{s}]:{DEFAULT_PORT}"))
    } else {
        Ok(format!("{s}:{DEFAULT_PORT}"))
    }
}

/// Why an endpoint gave no verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoVerdict {
    /// Nothing answered (refused, no route, no answer in time).
    Unreachable(String),
    /// Something answered, but not with a verdict document (an error status, another server
    /// on the port, a body cut short): `answered but …`, with the status and the first bytes.
    Answered(String),
}

/// What one endpoint gave: its document, or why there is none.
pub type Fetched = (String, Result<DocumentView, NoVerdict>);

/// The most of an answer quoted when it is not a verdict.
const QUOTED_BYTES: usize = 80;

/// The first bytes of a body, on one line, for people: `"<html>…"`, or `no body`.
fn first_bytes(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return "no body".to_owned();
    }
    let mut quoted: String = flat.chars().take(QUOTED_BYTES).collect();
    if quoted.len() < flat.len() {
        quoted.push('…');
    }
    format!("{quoted:?}")
}

fn fetch_one(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
) -> Result<DocumentView, NoVerdict> {
    let mut request = agent.get(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request.call().map_err(|e| {
        NoVerdict::Unreachable(match e {
            ureq::Error::Timeout(_) => "no answer in time".to_owned(),
            ureq::Error::Io(e) => format!("cannot reach it: {e}"),
            other => other.to_string(),
        })
    })?;
    let status = response.status();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY_BYTES)
        .read_to_vec()
        .map_err(|e| {
            NoVerdict::Answered(format!("answered but its body could not be read: {e}"))
        })?;
    if status.as_u16() == 401 {
        return Err(NoVerdict::Answered(match token {
            None => "answered 401: the sidecar asks for a bearer token; pass \
                     --auth-token-file FILE or set TRACER_AUTH_TOKEN"
                .to_owned(),
            Some(_) => "answered 401: the sidecar did not accept the token given; check it \
                        against the sidecar's --auth-token-file"
                .to_owned(),
        }));
    }
    if status.as_u16() != 200 {
        return Err(NoVerdict::Answered(format!(
            "answered but with HTTP {}{}: {}",
            status.as_u16(),
            status
                .canonical_reason()
                .map_or_else(String::new, |r| format!(" {r}")),
            first_bytes(&body)
        )));
    }
    std::str::from_utf8(&body)
        .ok()
        .and_then(|text| DocumentView::parse(text).ok())
        .ok_or_else(|| {
            NoVerdict::Answered(format!(
                "answered but not with a verdict document (HTTP 200): {}",
                first_bytes(&body)
            ))
        })
}

/// Fetches every endpoint's `/report` at once (one thread each); returns within `timeout`
/// (plus a moment) whatever happens: an endpoint that has not answered by then is reported
/// unreachable, never dropped. Direct connections (no proxy from the environment): sidecars
/// sit on the nodes' own addresses.
pub fn fetch_all(
    endpoints: &[String],
    window: Duration,
    timeout: Duration,
    client: &Client,
) -> Vec<Fetched> {
    let (tx, rx) = mpsc::channel();
    let path = format!("/report?window={}s", window.as_secs().max(1));
    for (i, endpoint) in endpoints.iter().enumerate() {
        let (agent, url) = client.route(endpoint, &path, timeout);
        let (tx, token) = (tx.clone(), client.token().map(str::to_owned));
        std::thread::spawn(move || {
            let _ = tx.send((i, fetch_one(&agent, &url, token.as_deref())));
        });
    }
    drop(tx);
    let deadline = Instant::now() + timeout + Duration::from_millis(500);
    let mut results: Vec<Option<Result<DocumentView, NoVerdict>>> = vec![None; endpoints.len()];
    while results.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, r)) => results[i] = Some(r),
            Err(_) => break,
        }
    }
    endpoints
        .iter()
        .cloned()
        .zip(results)
        .map(|(e, r)| {
            let r = r.unwrap_or_else(|| {
                Err(NoVerdict::Unreachable(format!(
                    "no answer within {}",
                    humantime::format_duration(timeout)
                )))
            });
            (e, r)
        })
        .collect()
}

/// Whether degradation is confined to some nodes or spread over the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every node that answered is healthy.
    Healthy,
    /// One node, or a few with different causes: look at those nodes.
    NodeSpecific,
    /// At least two nodes, and at least half of those that answered, lose packets in the same
    /// layer.
    ClusterWide,
    /// Only one node answered, and it is degraded: nothing to compare with.
    Undetermined,
    /// No node gave a verdict (none answered, or none with a verdict document).
    NoData,
}

/// One node as the cluster view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub endpoint: String,
    /// `degraded`, `healthy`, `unreachable`, or `no_verdict` (it answered, but not with a
    /// verdict document: `error` says what it answered); from Prometheus also `not_reporting`
    /// (its series went stale, or its probes are detached: `error` says which).
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_layer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Packets lost in the window, all layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_packets: Option<u64>,
    /// The node's first evidence line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_evidence: Option<String>,
    /// When its loss began, UTC (RFC 3339); from Prometheus' `tracer_verdict_onset_timestamp_seconds`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub onset: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub escalation: Vec<String>,
    /// Why the node gave no verdict (`answered but …` when it answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The cluster's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterVerdict {
    pub scope: Scope,
    pub summary: String,
    pub degraded: Vec<String>,
    pub healthy: Vec<String>,
    pub unreachable: Vec<String>,
    /// Nodes that answered, but not with a verdict document.
    #[serde(default)]
    pub no_verdict: Vec<String>,
    /// Nodes Prometheus knew in the window whose series went stale or whose probes are
    /// detached (`--prometheus` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_reporting: Vec<String>,
    /// Degraded nodes by failure layer.
    pub failure_layers: BTreeMap<String, Vec<String>>,
    /// The runbook's guardrails that hold across nodes.
    pub escalation: Vec<String>,
    pub nodes: Vec<NodeStatus>,
}

/// The runbook's guardrail for loss seen on several nodes.
pub const MULTI_NODE_ESCALATION: &str =
    "Packet loss on multiple nodes simultaneously — possible upstream network issue";

fn status(endpoint: &str, fetched: &Result<DocumentView, NoVerdict>) -> NodeStatus {
    match fetched {
        Ok(doc) => NodeStatus {
            endpoint: endpoint.to_owned(),
            state: if doc.degraded() {
                "degraded"
            } else {
                "healthy"
            }
            .to_owned(),
            root_cause: Some(doc.root_cause.clone()),
            failure_layer: Some(doc.failure_layer.clone()),
            severity: Some(doc.severity.clone()),
            confidence: Some(doc.confidence),
            lost_packets: Some(doc.lost_packets()),
            top_evidence: doc
                .degraded()
                .then(|| doc.evidence.first().map(|e| e.content.clone()))
                .flatten(),
            escalation: doc.escalation.clone(),
            onset: None,
            error: None,
        },
        Err(e) => NodeStatus {
            endpoint: endpoint.to_owned(),
            state: match e {
                NoVerdict::Unreachable(_) => "unreachable",
                NoVerdict::Answered(_) => "no_verdict",
            }
            .to_owned(),
            root_cause: None,
            failure_layer: None,
            severity: None,
            confidence: None,
            lost_packets: None,
            top_evidence: None,
            escalation: Vec::new(),
            onset: None,
            error: Some(match e {
                NoVerdict::Unreachable(why) | NoVerdict::Answered(why) => why.clone(),
            }),
        },
    }
}

/// Decides the cluster verdict from what each endpoint gave.
///
/// A node has *loss* when it names a root cause and lost at least [`MIN_LOSS`] packets (an IRQ
/// imbalance without loss is degradation, not loss). Loss on two or more nodes raises the
/// runbook's upstream escalation, whatever the layers.
pub fn judge_cluster(fetched: &[Fetched]) -> ClusterVerdict {
    judge_nodes(fetched.iter().map(|(e, r)| status(e, r)).collect())
}

/// [`judge_cluster`] on nodes already described (`--prometheus` builds them from PromQL).
pub fn judge_nodes(nodes: Vec<NodeStatus>) -> ClusterVerdict {
    let pick = |state: &str| -> Vec<String> {
        nodes
            .iter()
            .filter(|n| n.state == state)
            .map(|n| n.endpoint.clone())
            .collect()
    };
    let (degraded, healthy, unreachable, no_verdict, not_reporting) = (
        pick("degraded"),
        pick("healthy"),
        pick("unreachable"),
        pick("no_verdict"),
        pick("not_reporting"),
    );
    let reachable = degraded.len() + healthy.len();
    let mut failure_layers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.state == "degraded") {
        failure_layers
            .entry(n.failure_layer.clone().unwrap_or_default())
            .or_default()
            .push(n.endpoint.clone());
    }
    let with_loss: Vec<&NodeStatus> = nodes
        .iter()
        .filter(|n| n.state == "degraded" && n.lost_packets.unwrap_or(0) >= MIN_LOSS)
        .collect();
    let widest = failure_layers
        .iter()
        .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)));

    let scope = if reachable == 0 {
        Scope::NoData
    } else if degraded.is_empty() {
        Scope::Healthy
    } else if reachable == 1 {
        Scope::Undetermined
    } else if widest.is_some_and(|(_, n)| n.len() >= 2 && 2 * n.len() >= reachable) {
        Scope::ClusterWide
    } else {
        Scope::NodeSpecific
    };

    let describe = |n: &NodeStatus| {
        format!(
            "{} ({} in {})",
            n.endpoint,
            n.root_cause.as_deref().unwrap_or("?"),
            n.failure_layer.as_deref().unwrap_or("?")
        )
    };
    let degraded_text = nodes
        .iter()
        .filter(|n| n.state == "degraded")
        .map(describe)
        .collect::<Vec<_>>()
        .join(", ");
    let mut summary = match scope {
        Scope::NoData if !not_reporting.is_empty() && no_verdict.is_empty() => format!(
            "no node is reporting ({} node{} seen in the window)",
            nodes.len(),
            if nodes.len() == 1 { "" } else { "s" }
        ),
        Scope::NoData if no_verdict.is_empty() => format!(
            "no node answered ({} endpoint{})",
            nodes.len(),
            if nodes.len() == 1 { "" } else { "s" }
        ),
        Scope::NoData => format!(
            "no node gave a verdict ({} endpoint{})",
            nodes.len(),
            if nodes.len() == 1 { "" } else { "s" }
        ),
        Scope::Healthy => format!(
            "no degradation on the {reachable} node{} that answered",
            if reachable == 1 { "" } else { "s" }
        ),
        Scope::Undetermined => format!(
            "only one node answered and it is degraded: {degraded_text}; nothing to compare it with"
        ),
        Scope::ClusterWide => {
            let (layer, members) =
                widest.map_or((String::new(), Vec::new()), |(l, m)| (l.clone(), m.clone()));
            format!(
                "cluster-wide: {} of {reachable} nodes lose packets in layer {layer} ({})",
                members.len(),
                members.join(", ")
            )
        }
        Scope::NodeSpecific => format!(
            "node-specific: {degraded_text}; {} of {reachable} nodes healthy",
            healthy.len()
        ),
    };
    if !unreachable.is_empty() {
        let _ = write!(
            summary,
            "; {} unreachable: {}",
            unreachable.len(),
            unreachable.join(", ")
        );
    }
    if !no_verdict.is_empty() {
        let _ = write!(
            summary,
            "; {} answered without a verdict: {}",
            no_verdict.len(),
            no_verdict.join(", ")
        );
    }
    if !not_reporting.is_empty() {
        let _ = write!(
            summary,
            "; {} not reporting: {}",
            not_reporting.len(),
            not_reporting.join(", ")
        );
    }

    let mut escalation = Vec::new();
    if with_loss.len() >= 2 {
        escalation.push(format!(
            "{MULTI_NODE_ESCALATION} ({} nodes: {})",
            with_loss.len(),
            with_loss
                .iter()
                .map(|n| describe(n))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if scope == Scope::ClusterWide && widest.is_some_and(|(l, _)| l == "upstream") {
        escalation.push(
            "Issue persists after all node-level checks — may be VPC, TGW, or peering issue"
                .to_owned(),
        );
    }
    ClusterVerdict {
        scope,
        summary,
        degraded,
        healthy,
        unreachable,
        no_verdict,
        not_reporting,
        failure_layers,
        escalation,
        nodes,
    }
}

impl ClusterVerdict {
    /// 1 when a node is degraded; 2 when no node gave a verdict, or when every verdict is healthy
    /// but some node gave none (the cluster could not be checked whole); 0 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.scope == Scope::NoData {
            EXIT_ERROR
        } else if !self.degraded.is_empty() {
            EXIT_DEGRADED
        } else if !self.unreachable.is_empty()
            || !self.no_verdict.is_empty()
            || !self.not_reporting.is_empty()
        {
            EXIT_ERROR
        } else {
            EXIT_HEALTHY
        }
    }

    /// For a person at a terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "CLUSTER  {}", self.summary);
        let _ = writeln!(out);
        for n in &self.nodes {
            match n.state.as_str() {
                "unreachable" | "no_verdict" | "not_reporting" => {
                    let _ = writeln!(
                        out,
                        "  {:<28} {:<12} {}",
                        n.endpoint,
                        n.state.replace('_', " ").to_uppercase(),
                        n.error.as_deref().unwrap_or("")
                    );
                }
                state => {
                    let _ = writeln!(
                        out,
                        "  {:<28} {:<12} {} / {}  severity {}  lost {}  confidence {:.2}",
                        n.endpoint,
                        state.to_uppercase(),
                        n.root_cause.as_deref().unwrap_or("?"),
                        n.failure_layer.as_deref().unwrap_or("?"),
                        n.severity.as_deref().unwrap_or("?"),
                        n.lost_packets.unwrap_or(0),
                        n.confidence.unwrap_or(0.0)
                    );
                    if let Some(e) = &n.top_evidence {
                        let _ = writeln!(out, "  {:<28} {e}", "");
                    }
                    if let Some(at) = &n.onset {
                        let _ = writeln!(out, "  {:<28} loss began {at}", "");
                    }
                }
            }
        }
        for e in &self.escalation {
            let _ = writeln!(out, "\nESCALATE   {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETFILTER: &str = include_str!("../../../tests/fixtures/reports/netfilter-drops.json");
    const HEALTHY: &str = include_str!("../../../tests/fixtures/reports/healthy.json");

    fn doc(text: &str) -> DocumentView {
        DocumentView::parse(text).expect("fixture document")
    }

    /// The recorded netfilter document re-attributed to another layer, as another node's would be.
    fn degraded_in(layer: &str, root_cause: &str, lost: u64) -> DocumentView {
        let mut d = doc(NETFILTER);
        d.root_cause = root_cause.to_owned();
        d.failure_layer = layer.to_owned();
        for s in d.layer_scores.values_mut() {
            s.lost_packets = 0;
        }
        d.layer_scores
            .entry(layer.to_owned())
            .or_default()
            .lost_packets = lost;
        d
    }

    fn node(name: &str, d: DocumentView) -> Fetched {
        (name.to_owned(), Ok(d))
    }

    fn dead(name: &str) -> Fetched {
        (
            name.to_owned(),
            Err(NoVerdict::Unreachable("connection refused".to_owned())),
        )
    }

    fn not_a_verdict(name: &str) -> Fetched {
        (
            name.to_owned(),
            Err(NoVerdict::Answered(
                "answered but with HTTP 404 Not Found: \"404 page not found\"".to_owned(),
            )),
        )
    }

    #[test]
    fn an_answer_that_is_not_a_verdict_is_told_apart_from_no_answer() {
        let v = judge_cluster(&[node("a:1", doc(HEALTHY)), not_a_verdict("b:1"), dead("c:1")]);
        assert_eq!(v.scope, Scope::Healthy);
        assert_eq!(v.no_verdict, ["b:1"]);
        assert_eq!(v.unreachable, ["c:1"]);
        assert_eq!(v.exit_code(), EXIT_ERROR, "b:1 was not checked");
        assert_eq!(
            v.summary,
            "no degradation on the 1 node that answered; 1 unreachable: c:1; \
             1 answered without a verdict: b:1"
        );
        let text = v.text();
        let b = text.lines().find(|l| l.contains("b:1 ")).expect("b:1 line");
        assert!(
            b.contains("NO VERDICT   answered but with HTTP 404 Not Found"),
            "{text}"
        );
        let none = judge_cluster(&[not_a_verdict("b:1"), dead("c:1")]);
        assert_eq!(none.scope, Scope::NoData);
        assert_eq!(none.summary, "no node gave a verdict (2 endpoints); 1 unreachable: c:1; 1 answered without a verdict: b:1");
        assert_eq!(none.exit_code(), EXIT_ERROR);
    }

    #[test]
    fn first_bytes_are_quoted_on_one_line_and_cut() {
        assert_eq!(first_bytes(b""), "no body");
        assert_eq!(
            first_bytes(b"404 page\nnot found\n"),
            "\"404 page not found\""
        );
        let long = first_bytes(&[b'x'; 500]);
        assert!(long.ends_with("…\""), "{long}");
        assert_eq!(long.chars().filter(|c| *c == 'x').count(), QUOTED_BYTES);
    }

    #[test]
    fn one_node_dropping_among_healthy_ones_is_node_specific_and_not_escalated() {
        let v = judge_cluster(&[
            node("a:9595", doc(NETFILTER)),
            node("b:9595", doc(HEALTHY)),
            node("c:9595", doc(HEALTHY)),
            dead("d:9595"),
        ]);
        assert_eq!(v.scope, Scope::NodeSpecific);
        assert_eq!(v.degraded, ["a:9595"]);
        assert_eq!(v.healthy, ["b:9595", "c:9595"]);
        assert_eq!(v.unreachable, ["d:9595"]);
        assert_eq!(
            v.failure_layers["iptables_netpolicy"],
            ["a:9595".to_owned()]
        );
        assert!(v.escalation.is_empty(), "{:?}", v.escalation);
        assert!(
            v.summary.starts_with(
                "node-specific: a:9595 (security_rule_drops in iptables_netpolicy); 2 of 3 nodes healthy; 1 unreachable: d:9595"
            ),
            "{}",
            v.summary
        );
        assert_eq!(v.exit_code(), EXIT_DEGRADED);
        assert!(v.text().contains("d:9595"));
        assert_eq!(v.nodes[0].lost_packets, Some(1460));
    }

    #[test]
    fn the_same_layer_on_most_nodes_is_cluster_wide_and_raises_the_upstream_escalation() {
        let v = judge_cluster(&[
            node("a:1", degraded_in("upstream", "upstream_loss", 300)),
            node("b:1", degraded_in("upstream", "upstream_loss", 120)),
            node("c:1", doc(HEALTHY)),
        ]);
        assert_eq!(v.scope, Scope::ClusterWide);
        assert!(
            v.summary.starts_with(
                "cluster-wide: 2 of 3 nodes lose packets in layer upstream (a:1, b:1)"
            ),
            "{}",
            v.summary
        );
        assert_eq!(v.escalation.len(), 2, "{:?}", v.escalation);
        assert!(v.escalation[0].starts_with(MULTI_NODE_ESCALATION));
        assert!(v.escalation[0].contains("2 nodes: a:1 (upstream_loss in upstream), b:1"));
        assert!(v.escalation[1].contains("VPC, TGW, or peering"));
        assert_eq!(v.exit_code(), EXIT_DEGRADED);
    }

    #[test]
    fn loss_on_two_nodes_in_different_layers_escalates_but_stays_node_specific() {
        let v = judge_cluster(&[
            node("a:1", doc(NETFILTER)),
            node("b:1", degraded_in("nic_driver", "nic_errors", 40)),
            node("c:1", doc(HEALTHY)),
            node("d:1", doc(HEALTHY)),
        ]);
        assert_eq!(v.scope, Scope::NodeSpecific);
        assert_eq!(v.degraded, ["a:1", "b:1"]);
        assert_eq!(v.escalation.len(), 1);
        assert!(v.escalation[0].contains("2 nodes"), "{:?}", v.escalation);
    }

    #[test]
    fn two_nodes_same_layer_among_many_healthy_is_node_specific() {
        // 2 of 6 share a layer: fewer than half, so those nodes, not the cluster.
        let mut fetched = vec![
            node("a:1", degraded_in("nic_driver", "nic_errors", 40)),
            node("b:1", degraded_in("nic_driver", "nic_errors", 25)),
        ];
        for name in ["c:1", "d:1", "e:1", "f:1"] {
            fetched.push(node(name, doc(HEALTHY)));
        }
        let v = judge_cluster(&fetched);
        assert_eq!(v.scope, Scope::NodeSpecific);
        assert_eq!(v.escalation.len(), 1, "loss on two nodes still escalates");
    }

    #[test]
    fn imbalance_without_loss_on_two_nodes_does_not_raise_the_loss_escalation() {
        let v = judge_cluster(&[
            node("a:1", degraded_in("irq_cpu", "irq_imbalance", 0)),
            node("b:1", degraded_in("irq_cpu", "irq_imbalance", 0)),
        ]);
        assert_eq!(v.scope, Scope::ClusterWide);
        assert!(v.escalation.is_empty(), "{:?}", v.escalation);
    }

    #[test]
    fn healthy_unreachable_and_empty_clusters_exit_as_documented() {
        let all_healthy = judge_cluster(&[node("a:1", doc(HEALTHY)), node("b:1", doc(HEALTHY))]);
        assert_eq!(all_healthy.scope, Scope::Healthy);
        assert_eq!(all_healthy.exit_code(), EXIT_HEALTHY);
        assert_eq!(
            all_healthy.summary,
            "no degradation on the 2 nodes that answered"
        );

        let partly = judge_cluster(&[node("a:1", doc(HEALTHY)), dead("b:1")]);
        assert_eq!(partly.scope, Scope::Healthy);
        assert_eq!(
            partly.exit_code(),
            EXIT_ERROR,
            "a node not checked is not healthy"
        );
        assert!(partly.summary.ends_with("1 unreachable: b:1"));

        let none = judge_cluster(&[dead("a:1"), dead("b:1")]);
        assert_eq!(none.scope, Scope::NoData);
        assert_eq!(none.exit_code(), EXIT_ERROR);

        let alone = judge_cluster(&[node("a:1", doc(NETFILTER)), dead("b:1")]);
        assert_eq!(alone.scope, Scope::Undetermined);
        assert_eq!(alone.exit_code(), EXIT_DEGRADED);
    }

    #[test]
    fn endpoints_from_flags_and_file_are_normalised_deduplicated_and_checked() {
        let listed = vec![
            "10.0.0.1:9595,10.0.0.2".to_owned(),
            "http://node-c:9000/".to_owned(),
        ];
        let file = "# nodes\n10.0.0.2:9595   # dup of the flag\n\n[fd00::1]:9595\nfd00::2\n";
        let got = parse_endpoints(&listed, Some(file)).expect("endpoints");
        assert_eq!(
            got,
            [
                "10.0.0.1:9595",
                "10.0.0.2:9595",
                "node-c:9000",
                "[fd00::1]:9595",
                "[fd00::2]:9595"
            ]
        );
        assert!(parse_endpoints(&[], Some("# nothing\n")).is_err());
        assert!(parse_endpoints(&["a:99999".to_owned()], None).is_err());
        assert_eq!(
            parse_endpoints(
                &["https://a".to_owned(), "https://[::1]:1/".to_owned()],
                None
            )
            .expect("https endpoints"),
            ["https://a:9595", "https://[::1]:1"]
        );
        assert!(parse_endpoints(&["https://a:99999".to_owned()], None).is_err());
    }
}
