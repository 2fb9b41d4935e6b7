//! `tracer cluster --prometheus URL`: the cluster verdict from the series Prometheus scraped off
//! every node's sidecar, over its HTTP API (`/api/v1/query`), instead of asking each sidecar.
//!
//! [`queries`] are the PromQL instant queries for a window; [`nodes_from`] (pure) turns their
//! answers into the same [`NodeStatus`] rows `--endpoints` builds, and `cluster::judge_nodes`
//! judges them alike. A node is *degraded* when its rolling verdict named a root cause at some
//! scrape in the window (the newest verdict wins), *not reporting* when
//! Prometheus saw it in the window but has no sample from it now (its series went stale: the
//! sidecar or its node is gone) or when its probes are detached, else *healthy*. Credentials
//! come from files or the environment, never the command line: a bearer token
//! (`--prometheus-token-file`, else `TRACER_PROMETHEUS_TOKEN`) or basic auth
//! (`--prometheus-basic-auth-file`, one `user:password` line).

use std::{collections::BTreeMap, path::Path, time::Duration};

use anyhow::{anyhow, bail, Context as _, Result};

use crate::{
    judge::verdict::rfc3339_utc,
    modes::client::{first_token, Client},
    modes::cluster::NodeStatus,
};

/// The environment variable the Prometheus bearer token is read from when no file is given.
pub const TOKEN_ENV: &str = "TRACER_PROMETHEUS_TOKEN";

/// How to authenticate to Prometheus (or the proxy in front of it).
#[derive(Default, Clone)]
pub enum Auth {
    #[default]
    None,
    Bearer(String),
    /// `user:password`, sent base64-encoded.
    Basic(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.write_str(match self {
            Auth::None => "None",
            Auth::Bearer(_) => "Bearer(…)",
            Auth::Basic(_) => "Basic(…)",
        })
    }
}

impl Auth {
    /// The bearer token from `token_file` (else `env_token`), or basic auth from
    /// `basic_file`'s first `user:password` line. A file given but unusable is an error.
    pub fn new(
        token_file: Option<&Path>,
        basic_file: Option<&Path>,
        env_token: Option<String>,
    ) -> Result<Auth> {
        let read = |path: &Path, what: &str| -> Result<String> {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
            first_token(&text).map(str::to_owned).ok_or_else(|| {
                anyhow!(
                    "the {what} file {} is empty; write it on one line",
                    path.display()
                )
            })
        };
        match (token_file, basic_file) {
            (Some(_), Some(_)) => bail!(
                "give either --prometheus-token-file or --prometheus-basic-auth-file, not both"
            ),
            (Some(path), None) => Ok(Auth::Bearer(read(path, "Prometheus token")?)),
            (None, Some(path)) => {
                let line = read(path, "Prometheus basic-auth")?;
                if !line.contains(':') {
                    bail!(
                        "the Prometheus basic-auth file {} holds no user:password line",
                        path.display()
                    );
                }
                Ok(Auth::Basic(line))
            }
            (None, None) => Ok(env_token
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .map_or(Auth::None, Auth::Bearer)),
        }
    }

    fn header(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Bearer(t) => Some(format!("Bearer {t}")),
            Auth::Basic(up) => Some(format!("Basic {}", base64(up.as_bytes()))),
        }
    }
}

/// Standard base64 with padding (RFC 4648), for the basic-auth header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One sample of an instant vector: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// What each query of [`queries`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Query {
    /// Nodes with any sample in the window.
    Seen,
    /// Nodes with a sample now (not stale).
    Now,
    /// `tracer_probe_attached` now.
    Probes,
    /// Scrapes per (node, root cause, layer, severity) naming a root cause.
    Verdicts,
    /// Most packets each layer lost in a rolling window, per node.
    Layers,
    Confidence,
    /// The onset of each node's degradation (UNIX seconds).
    Onset,
    /// Drops per node, reason and layer in the window.
    Drops,
    /// Retransmitted segments per node in the window.
    Retransmits,
}

/// The PromQL of each [`Query`] for a window (`300s`).
pub fn queries(window: Duration) -> Vec<(Query, String)> {
    let w = format!("{}s", window.as_secs().max(1));
    let step = (window.as_secs() / 300).max(1);
    let by = "node, instance";
    vec![
        (
            Query::Seen,
            format!("max by ({by}) (last_over_time(tracer_uptime_seconds[{w}]))"),
        ),
        (Query::Now, format!("max by ({by}) (tracer_uptime_seconds)")),
        (Query::Probes, "tracer_probe_attached".to_owned()),
        (
            Query::Verdicts,
            // The time of each verdict's last sample in the window (a subquery at `step`):
            // the newest verdict wins, not the one named at most scrapes.
            format!(
                "max by ({by}, root_cause, failure_layer, severity) \
                 (max_over_time(timestamp(tracer_verdict_info{{root_cause!=\"none\"}})\
                 [{w}:{step}s]))"
            ),
        ),
        (
            Query::Layers,
            format!("max by ({by}, layer) (max_over_time(tracer_layer_lost_packets[{w}]))"),
        ),
        (
            Query::Confidence,
            format!("max by ({by}) (max_over_time(tracer_verdict_confidence[{w}]))"),
        ),
        (
            Query::Onset,
            format!(
                "max by ({by}, failure_layer) \
                 (last_over_time(tracer_verdict_onset_timestamp_seconds[{w}]))"
            ),
        ),
        (
            Query::Drops,
            format!("sum by ({by}, reason, layer) (increase(tracer_drops_total[{w}]))"),
        ),
        (
            Query::Retransmits,
            format!("sum by ({by}) (increase(tracer_tcp_retransmitted_segments_total[{w}]))"),
        ),
    ]
}

/// A node's name in the answers: its `node` label, else its scrape target.
fn node_of(labels: &BTreeMap<String, String>) -> String {
    labels
        .get("node")
        .filter(|n| !n.is_empty())
        .or_else(|| labels.get("instance"))
        .cloned()
        .unwrap_or_else(|| "?".to_owned())
}

fn label<'a>(s: &'a Sample, name: &str) -> &'a str {
    s.labels.get(name).map_or("", String::as_str)
}

/// The nodes' rows from the answers of [`queries`] (`window` for the wording).
pub fn nodes_from(answers: &BTreeMap<Query, Vec<Sample>>, window: Duration) -> Vec<NodeStatus> {
    let get = |q: Query| answers.get(&q).map_or(&[][..], Vec::as_slice);
    let per_node = |q: Query| -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        for s in get(q) {
            let v = out.entry(node_of(&s.labels)).or_insert(f64::MIN);
            *v = v.max(s.value);
        }
        out
    };
    let seen = per_node(Query::Seen);
    let now = per_node(Query::Now);
    let confidence = per_node(Query::Confidence);
    let retransmits = per_node(Query::Retransmits);
    let w = humantime::format_duration(window).to_string();
    let mut nodes = Vec::new();
    for node in seen
        .keys()
        .chain(now.keys().filter(|n| !seen.contains_key(*n)))
    {
        let of_node = |q: Query| get(q).iter().filter(move |s| node_of(&s.labels) == *node);
        // The newest verdict in the window (the value is its last sample's time).
        let verdict = of_node(Query::Verdicts).max_by(|a, b| a.value.total_cmp(&b.value));
        let mut layers: BTreeMap<&str, f64> = BTreeMap::new();
        for s in of_node(Query::Layers) {
            let v = layers.entry(label(s, "layer")).or_insert(0.0);
            *v = v.max(s.value);
        }
        let lost = layers.values().sum::<f64>().round() as u64;
        let probes: Vec<&Sample> = of_node(Query::Probes).collect();
        let detached: Vec<&str> = probes
            .iter()
            .filter(|s| s.value == 0.0 && label(s, "state") != "missing")
            .map(|s| label(s, "probe"))
            .collect();
        let attached = probes.iter().filter(|s| s.value > 0.0).count();
        let not_reporting = if !now.contains_key(node) {
            Some(format!(
                "its series went stale: Prometheus has no sample from its sidecar now (it \
                 reported within the last {w})"
            ))
        } else if !probes.is_empty() && (attached == 0 || !detached.is_empty()) {
            Some(format!(
                "its probes are detached ({}): its verdict cannot be trusted",
                if detached.is_empty() {
                    "none attached".to_owned()
                } else {
                    detached.join(", ")
                }
            ))
        } else {
            None
        };
        let (root_cause, failure_layer, severity) = match verdict {
            Some(v) => (
                label(v, "root_cause").to_owned(),
                label(v, "failure_layer").to_owned(),
                label(v, "severity").to_owned(),
            ),
            None => ("none".to_owned(), "none".to_owned(), "none".to_owned()),
        };
        let onset = of_node(Query::Onset)
            .filter(|s| label(s, "failure_layer") == failure_layer)
            .map(|s| s.value)
            .reduce(f64::max)
            .filter(|_| verdict.is_some())
            .map(|s| rfc3339_utc((s * 1000.0).round().max(0.0) as u64));
        let top_evidence = verdict.map(|_| {
            if failure_layer == "upstream" {
                format!(
                    "{:.0} TCP segments retransmitted in the last {w}, no local drop explains \
                     them",
                    retransmits.get(node).copied().unwrap_or(0.0)
                )
            } else {
                of_node(Query::Drops)
                    .filter(|s| label(s, "layer") == failure_layer)
                    .max_by(|a, b| a.value.total_cmp(&b.value))
                    .map_or_else(
                        || format!("{failure_layer} lost {lost} packets"),
                        |s| {
                            format!(
                                "{} drops: {:.0} in the last {w} (layer {failure_layer})",
                                label(s, "reason"),
                                s.value
                            )
                        },
                    )
            }
        });
        let state = match (&not_reporting, verdict) {
            (Some(_), _) => "not_reporting",
            (None, Some(_)) => "degraded",
            (None, None) => "healthy",
        };
        let reporting = not_reporting.is_none();
        nodes.push(NodeStatus {
            endpoint: node.clone(),
            state: state.to_owned(),
            root_cause: reporting.then(|| root_cause.clone()),
            failure_layer: reporting.then(|| failure_layer.clone()),
            severity: reporting.then(|| severity.clone()),
            confidence: confidence.get(node).copied().filter(|_| reporting),
            lost_packets: reporting.then_some(lost),
            top_evidence: top_evidence.filter(|_| reporting),
            escalation: Vec::new(),
            onset: onset.filter(|_| reporting),
            error: not_reporting,
        });
    }
    nodes
}

/// Asks Prometheus.
pub struct Prometheus {
    base: String,
    agent: ureq::Agent,
    auth: Auth,
}

impl Prometheus {
    /// `url` is Prometheus' base URL (`http://prometheus:9090`, or under a path prefix);
    /// `client` gives the CA certificates for an `https://` one.
    pub fn new(url: &str, auth: Auth, client: &Client, timeout: Duration) -> Result<Prometheus> {
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--prometheus {url:?} is not an http:// or https:// URL");
        }
        Ok(Prometheus {
            base,
            agent: client.agent(timeout),
            auth,
        })
    }

    /// One instant query's vector.
    pub fn query(&self, expr: &str) -> Result<Vec<Sample>> {
        let url = format!("{}/api/v1/query", self.base);
        let mut request = self.agent.get(&url).query("query", expr);
        if let Some(h) = self.auth.header() {
            request = request.header("Authorization", h);
        }
        let mut response = request
            .call()
            .map_err(|e| anyhow!("cannot reach Prometheus at {}: {e}", self.base))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| anyhow!("Prometheus' answer could not be read: {e}"))?;
        if status == 401 || status == 403 {
            bail!(
                "Prometheus at {} answered {status}: give a token (--prometheus-token-file or \
                 {TOKEN_ENV}) or --prometheus-basic-auth-file that it accepts",
                self.base
            );
        }
        parse_answer(&body)
            .with_context(|| format!("Prometheus at {} (HTTP {status}) for {expr}", self.base))
    }

    /// Every query of [`queries`].
    pub fn ask(&self, window: Duration) -> Result<BTreeMap<Query, Vec<Sample>>> {
        queries(window)
            .into_iter()
            .map(|(q, expr)| Ok((q, self.query(&expr)?)))
            .collect()
    }
}

/// An `/api/v1/query` answer's vector, or its error.
pub fn parse_answer(body: &str) -> Result<Vec<Sample>> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|_| {
        anyhow!(
            "the answer is not Prometheus' JSON: {:?}",
            body.chars().take(80).collect::<String>()
        )
    })?;
    if v["status"] != "success" {
        bail!(
            "query failed: {} {}",
            v["errorType"].as_str().unwrap_or(""),
            v["error"].as_str().unwrap_or("")
        );
    }
    if v["data"]["resultType"] != "vector" {
        bail!("expected a vector, got {}", v["data"]["resultType"]);
    }
    let mut out = Vec::new();
    for r in v["data"]["result"].as_array().into_iter().flatten() {
        let labels = r["metric"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
            .collect();
        let value = r["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| anyhow!("a sample without a value: {r}"))?;
        out.push(Sample { labels, value });
    }
    Ok(out)
}

#[cfg(test)]
#[path = "promql_tests.rs"]
mod tests;
