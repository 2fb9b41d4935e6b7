//! The seven tools. Each checks its arguments ([`super::args`]), runs its work on the
//! sidecar's producer through [`Frames`] (the frames it already takes: no probe is added, the
//! node is only read) or, for other nodes, on their sidecars' `/report`, and maps the answer
//! ([`super::output`]). Errors are tool errors (`isError`) of one sentence.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rmcp::{
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::ProgressNotificationParam,
    service::RequestContext,
    tool, tool_router, Json, RoleServer,
};
use schemars::JsonSchema;
use serde::Serialize;

use super::{
    args::{
        self, ClusterArgs, CompareArgs, FactsArgs, FlowsArgs, NoArgs, ReportArgs, VerdictArgs,
        MAX_ENDPOINTS,
    },
    output::{cap_rows, cap_value, NodeIdentity, Verdict, MAX_RESPONSE_BYTES},
};
use crate::{
    judge::flows::{DestTracking, Destination, FlowTotals, ResetFlow},
    modes::server::Frames,
    node::netns::NetnsScope,
    node::shared::Shared,
};

/// The MCP server: one per session, sharing the producer and the last report.
#[derive(Clone)]
pub struct TracerMcp {
    pub(super) frames: Frames,
    pub(super) node: NodeIdentity,
    /// The last `live_network_report`'s verdict (a cancelled one too: its response is not
    /// sent, per the protocol, so it is kept here for `live_network_verdict lastReport`).
    last_report: Arc<Mutex<Option<Verdict>>>,
    #[allow(dead_code, reason = "read by the tool_handler macro")]
    pub(super) tool_router: ToolRouter<TracerMcp>,
}

/// `live_tcp_flows`' answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FlowsAnswer {
    pub node: NodeIdentity,
    pub window_start_utc: Option<String>,
    pub window_end_utc: Option<String>,
    pub window_seconds: f64,
    /// Over every destination in scope, not only those listed.
    pub totals: FlowTotals,
    /// Destinations passing the filters (before `maxRows`).
    pub matched: usize,
    /// The most troubled first.
    pub destinations: Vec<Destination>,
    pub resets: Vec<ResetFlow>,
    pub tracking: DestTracking,
    pub truncated: bool,
}

/// `live_node_facts`' answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FactsAnswer {
    pub node: NodeIdentity,
    /// `tracer check`: one line per item with its status and fix.
    pub check: serde_json::Value,
    /// The probes: tracepoint, program, state, what each reads or why it is missing.
    pub probes: serde_json::Value,
    /// The node's facts: sysctls, DROP/REJECT rules with counters, routes, NICs and their
    /// driver counters, conntrack fill, pods.
    pub facts: serde_json::Value,
    pub truncated: bool,
}

/// `live_tracer_status`' answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusAnswer {
    pub node: NodeIdentity,
    pub version: String,
    pub kernel: String,
    pub uptime_s: f64,
    pub startup_ms: f64,
    pub probes_attached: usize,
    pub probes: serde_json::Value,
    /// The longest window the tracer keeps (`windowSeconds` may not exceed it).
    pub max_window_s: u64,
    pub frames_kept: usize,
    /// What the kernel programs counted about themselves over the last minute.
    pub tracer_counters: serde_json::Value,
    /// Events the programs could not record (lost, overflowed, failed inserts).
    pub lost_events: u64,
    /// The programs' own cost over the last minute (run time needs kernel.bpf_stats_enabled).
    pub tracer_cost: serde_json::Value,
    pub notes: Vec<String>,
}

/// `live_compare_nodes`' and `live_cluster_health`' answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FleetAnswer {
    pub window_seconds: u64,
    /// `tracer diff` or `tracer cluster` output (JSON).
    pub result: serde_json::Value,
    pub truncated: bool,
}

fn sentence(e: anyhow::Error) -> String {
    format!("{e:#}")
}

/// Counters of the tracer's own losses, by their names.
fn is_loss_counter(name: &str) -> bool {
    ["lost", "overflow", "fail", "evict", "drop_full"]
        .iter()
        .any(|w| name.contains(w))
}

impl TracerMcp {
    pub fn new(frames: Frames, node: NodeIdentity) -> TracerMcp {
        TracerMcp {
            frames,
            node,
            last_report: Arc::new(Mutex::new(None)),
            tool_router: Self::tool_router(),
        }
    }

    /// The pod's network namespace, found from the node's files; the sidecar's own scope
    /// when no pod is asked for.
    async fn scope(&self, pod: Option<&str>) -> Result<Option<NetnsScope>, String> {
        match args::pod(pod)? {
            None => Ok(self.frames.options().scope.clone()),
            Some(spec) => tokio::task::spawn_blocking(move || {
                crate::node::pods::live_scope(&spec).map_err(|e| {
                    // The finder speaks of the command line's flag; the agent gave `pod`.
                    let text = sentence(e);
                    text.strip_prefix("--").map_or(text.clone(), str::to_owned)
                })
            })
            .await
            .map_err(|e| format!("finding the pod failed: {e}"))?
            .map(Some),
        }
    }

    fn verdict(&self, document: &crate::judge::document::VerdictDocument) -> Verdict {
        Verdict::of(document, self.node.clone())
    }
}

#[tool_router]
impl TracerMcp {
    /// The D7 verdict (runbook Output Format) of the rolling window the tracer already holds.
    #[tool(
        description = "The runbook D7 verdict for the last windowSeconds (5-300, default 60) on \
                       this node, from the frames the tracer already holds: root_cause, \
                       failure_layer, evidence with finding_id, severity, mitigation, \
                       cross_reference, window and onset in UTC, confidence, escalation. \
                       Optional pod (NAMESPACE/NAME). lastReport=true returns the last \
                       live_network_report's verdict (also a cancelled one).",
        annotations(
            title = "Live network verdict",
            read_only_hint = true,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn live_network_verdict(
        &self,
        Parameters(a): Parameters<VerdictArgs>,
    ) -> Result<Json<Verdict>, String> {
        if a.last_report == Some(true) {
            return self
                .last_report
                .lock()
                .map_err(|_| "the last report is unreadable (a thread panicked)".to_owned())?
                .clone()
                .map(Json)
                .ok_or_else(|| "no live_network_report has been judged yet; call it first".into());
        }
        let window = args::rolling_window(a.window_seconds, self.frames.options().max_window)?;
        let scope = self.scope(a.pod.as_deref()).await?;
        let document = self
            .frames
            .run(move |s| {
                s.watch
                    .judge_window_in(s.tracer, window, scope.as_ref(), &[])
                    .document
            })
            .await?;
        Ok(Json(self.verdict(&document)))
    }

    /// A fresh forward window, judged when it ends (or when cancelled).
    #[tool(
        description = "Watches this node for durationSeconds from now (1-60, default 10) and \
                       returns the runbook D7 verdict of that window. Sends a progress \
                       notification each second; a cancel ends the window early and it is still \
                       judged (fetch it with live_network_verdict lastReport=true). Optional pod.",
        annotations(
            title = "Live network report",
            read_only_hint = true,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn live_network_report(
        &self,
        Parameters(a): Parameters<ReportArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<Verdict>, String> {
        let duration = args::report_duration(a.duration_seconds)?;
        let scope = self.scope(a.pod.as_deref()).await?;
        // The facts at both ends, read off the producer's thread: the rules whose counters
        // rose in this window are the evidence of a rule drop.
        let facts_start = Shared::new(read_facts().await?);
        let pin = self
            .frames
            .run(|s| s.watch.pin_newest())
            .await?
            .ok_or("the tracer has no frame yet; try again in a second")?;
        let started = Instant::now();
        let token = ctx.meta.get_progress_token();
        let total = duration.as_secs();
        let mut cancelled = false;
        for second in 1..=total {
            let at = tokio::time::Instant::from_std(started + Duration::from_secs(second));
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = ctx.ct.cancelled() => { cancelled = true; break; }
            }
            if let Some(token) = &token {
                let _ = ctx
                    .peer
                    .notify_progress(
                        ProgressNotificationParam::new(token.clone(), second as f64)
                            .with_total(total as f64)
                            .with_message(format!("watching: {second} of {total} s")),
                    )
                    .await;
            }
        }
        let notes = if cancelled {
            vec![format!(
                "window cut short by a cancel after {:.1}s of {total}s",
                started.elapsed().as_secs_f64()
            )]
        } else {
            Vec::new()
        };
        let facts_end = Shared::new(read_facts().await?);
        // Judge from the pinned frame to the newest; wait for one more frame if none came yet.
        let mut document = None;
        for _ in 0..20 {
            let (scope, notes) = (scope.clone(), notes.clone());
            let (start, end) = (facts_start.clone(), facts_end.clone());
            let judged = self
                .frames
                .run(move |s| {
                    let newest = s.watch.newest_at_ms().unwrap_or(pin);
                    (newest > pin).then(|| {
                        let window = Duration::from_millis(newest - pin);
                        let judged = s.watch.judge_window_with(
                            s.tracer,
                            window,
                            scope.as_ref(),
                            (&start, &end),
                            &notes,
                        );
                        s.watch.unpin(pin);
                        judged.document
                    })
                })
                .await?;
            if judged.is_some() {
                document = judged;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let document = document.ok_or("the tracer took no frame after the window began")?;
        let verdict = self.verdict(&document);
        if let Ok(mut last) = self.last_report.lock() {
            *last = Some(verdict.clone());
        }
        Ok(Json(verdict))
    }

    /// Destinations with trouble over the rolling window.
    #[tool(
        description = "TCP destinations of the last windowSeconds (5-300, default 60) with \
                       retransmits, resets, failed connects, socket errors and RTT percentiles, \
                       the most troubled first; filters: address, port, pod; maxRows (1-200, \
                       default 20).",
        annotations(
            title = "Live TCP flows",
            read_only_hint = true,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn live_tcp_flows(
        &self,
        Parameters(a): Parameters<FlowsArgs>,
    ) -> Result<Json<FlowsAnswer>, String> {
        let window = args::rolling_window(a.window_seconds, self.frames.options().max_window)?;
        let address = args::address(a.address.as_deref())?;
        let port = args::port(a.port)?;
        let rows = args::max_rows(a.max_rows, 20)?;
        let scope = self.scope(a.pod.as_deref()).await?;
        let document = self
            .frames
            .run(move |s| {
                s.watch
                    .judge_window_in(s.tracer, window, scope.as_ref(), &[])
                    .document
            })
            .await?;
        let flows = &document.observations.flows;
        let keeps = |daddr: &str, dport: u16| {
            address.is_none_or(|a| daddr.parse::<std::net::IpAddr>().is_ok_and(|d| d == a))
                && port.is_none_or(|p| p == dport)
        };
        let matched: Vec<&Destination> = flows
            .destinations
            .iter()
            .filter(|d| keeps(&d.daddr, d.dport))
            .collect();
        let resets: Vec<&ResetFlow> = flows
            .resets
            .iter()
            .filter(|r| keeps(&r.daddr, r.dport))
            .collect();
        let truncated = matched.len() > rows || resets.len() > rows;
        Ok(Json(FlowsAnswer {
            node: self.node.clone(),
            window_start_utc: document.window.start.clone(),
            window_end_utc: document.window.end.clone(),
            window_seconds: document.window.duration_s,
            totals: flows.totals.clone(),
            matched: matched.len(),
            destinations: matched.into_iter().take(rows).cloned().collect(),
            resets: resets.into_iter().take(rows).cloned().collect(),
            tracking: flows.tracking.clone(),
            truncated,
        }))
    }

    /// `tracer check` and the node's facts.
    #[tool(
        description = "This node's facts: tracer check (what works and the fix), the probes and \
                       their hooks, sysctls, DROP/REJECT rules with counters, blackhole routes, \
                       NIC driver and ENA allowance counters, conntrack fill, pods. maxRows \
                       (1-200, default 50) per list.",
        annotations(
            title = "Live node facts",
            read_only_hint = true,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn live_node_facts(
        &self,
        Parameters(a): Parameters<FactsArgs>,
    ) -> Result<Json<FactsAnswer>, String> {
        let rows = args::max_rows(a.max_rows, 50)?;
        let check = tokio::task::spawn_blocking(|| {
            let lines = crate::modes::check::evaluate(&crate::modes::check::NodeFacts::gather());
            serde_json::to_value(lines).unwrap_or_default()
        })
        .await
        .map_err(|e| format!("tracer check failed: {e}"))?;
        let (probes, facts) = self
            .frames
            .run(|s| {
                (
                    serde_json::to_value(s.tracer.meta().probes).unwrap_or_default(),
                    serde_json::to_value(s.watch.facts()).unwrap_or_default(),
                )
            })
            .await?;
        let mut answer = serde_json::json!({"check": check, "probes": probes, "facts": facts});
        let mut truncated = cap_rows(&mut answer["facts"], rows);
        truncated |= cap_value(&mut answer, MAX_RESPONSE_BYTES);
        Ok(Json(FactsAnswer {
            node: self.node.clone(),
            check: answer["check"].take(),
            probes: answer["probes"].take(),
            facts: answer["facts"].take(),
            truncated,
        }))
    }

    /// `tracer diff` of two nodes' sidecars.
    #[tool(
        description = "Compares an affected node with a healthy one (tracer diff) from their \
                       sidecars' /report (HOST:PORT, port 9595 by default) over windowSeconds \
                       (5-300, default 60): the differences that best explain the loss first.",
        annotations(
            title = "Compare nodes",
            read_only_hint = true,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    async fn live_compare_nodes(
        &self,
        Parameters(a): Parameters<CompareArgs>,
    ) -> Result<Json<FleetAnswer>, String> {
        let window = args::rolling_window(a.window_seconds, Duration::from_secs(300))?;
        let timeout = args::fetch_timeout(a.timeout_seconds)?;
        let endpoints = crate::modes::cluster::parse_endpoints(&[a.affected, a.healthy], None)
            .map_err(sentence)?;
        if endpoints.len() != 2 {
            return Err("give two different sidecars: affected and healthy".into());
        }
        let client = fleet_client()?;
        let fetched = tokio::task::spawn_blocking(move || {
            crate::modes::cluster::fetch_all(&endpoints, window, timeout, &client)
        })
        .await
        .map_err(|e| format!("fetching the reports failed: {e}"))?;
        let mut inputs = Vec::new();
        for (role, (endpoint, result)) in ["affected", "healthy"].iter().zip(fetched) {
            let document = result.map_err(|e| {
                let why = match e {
                    crate::modes::cluster::NoVerdict::Unreachable(w)
                    | crate::modes::cluster::NoVerdict::Answered(w) => w,
                };
                format!("the {role} node's sidecar {endpoint} gave no verdict: {why}")
            })?;
            inputs.push(crate::modes::diff::NodeInput {
                name: endpoint,
                document,
                detail: None,
            });
        }
        let diff = crate::modes::diff::compare(&inputs[0], &inputs[1]);
        fleet(window, serde_json::to_value(diff).unwrap_or_default())
    }

    /// `tracer cluster` over sidecars.
    #[tool(
        description = "Asks every node's sidecar (endpoints HOST:PORT, at most 64) for its \
                       verdict over windowSeconds (5-300, default 60) and says whether \
                       degradation is node-specific or cluster-wide (tracer cluster).",
        annotations(
            title = "Cluster health",
            read_only_hint = true,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    async fn live_cluster_health(
        &self,
        Parameters(a): Parameters<ClusterArgs>,
    ) -> Result<Json<FleetAnswer>, String> {
        let window = args::rolling_window(a.window_seconds, Duration::from_secs(300))?;
        let timeout = args::fetch_timeout(a.timeout_seconds)?;
        if a.endpoints.is_empty() || a.endpoints.len() > MAX_ENDPOINTS {
            return Err(format!(
                "endpoints must list 1 to {MAX_ENDPOINTS} sidecars (got {})",
                a.endpoints.len()
            ));
        }
        let endpoints =
            crate::modes::cluster::parse_endpoints(&a.endpoints, None).map_err(sentence)?;
        let client = fleet_client()?;
        let verdict = tokio::task::spawn_blocking(move || {
            crate::modes::cluster::judge_cluster(&crate::modes::cluster::fetch_all(
                &endpoints, window, timeout, &client,
            ))
        })
        .await
        .map_err(|e| format!("fetching the reports failed: {e}"))?;
        fleet(window, serde_json::to_value(verdict).unwrap_or_default())
    }

    /// The tracer's own state and cost.
    #[tool(
        description = "The tracer itself: version, kernel, probes attached (and why any is \
                       missing), uptime, the longest window kept, events lost and the programs' \
                       own cost.",
        annotations(
            title = "Tracer status",
            read_only_hint = true,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn live_tracer_status(
        &self,
        Parameters(_): Parameters<NoArgs>,
    ) -> Result<Json<StatusAnswer>, String> {
        let node = self.node.clone();
        self.frames
            .run(move |s| {
                let meta = s.tracer.meta();
                let judged = s.watch.judge_window(s.tracer, Duration::from_secs(60), &[]);
                let counters = &judged.document.observations.tracer_counters;
                StatusAnswer {
                    node,
                    version: meta.tracer_version.clone(),
                    kernel: meta.kernel.clone(),
                    uptime_s: s.uptime.as_secs_f64(),
                    startup_ms: meta.startup_ms,
                    probes_attached: s.tracer.attached_count(),
                    probes: serde_json::to_value(&meta.probes).unwrap_or_default(),
                    max_window_s: s.options.max_window.as_secs(),
                    frames_kept: s.watch.frames_kept(),
                    tracer_counters: serde_json::to_value(counters).unwrap_or_default(),
                    lost_events: counters
                        .iter()
                        .filter(|(name, _)| is_loss_counter(name))
                        .map(|(_, n)| n)
                        .sum(),
                    tracer_cost: serde_json::to_value(&judged.document.observations.tracer_cost)
                        .unwrap_or_default(),
                    notes: meta.notes,
                }
            })
            .await
            .map(Json)
    }
}

/// The node's facts now (every namespace's rules, routes, sysctls), read on a blocking thread.
async fn read_facts() -> Result<crate::node::evidence::NodeFacts, String> {
    tokio::task::spawn_blocking(|| crate::node::facts::FactsSource::live().collect())
        .await
        .map_err(|e| format!("reading the node's facts failed: {e}"))
}

/// A fleet answer, capped.
fn fleet(window: Duration, mut result: serde_json::Value) -> Result<Json<FleetAnswer>, String> {
    let truncated = cap_value(&mut result, MAX_RESPONSE_BYTES);
    Ok(Json(FleetAnswer {
        window_seconds: window.as_secs(),
        result,
        truncated,
    }))
}

/// The client the fleet tools ask other sidecars with: the bearer token from
/// `TRACER_AUTH_TOKEN` and the CA from `TRACER_CA_CERT` (a file), as `tracer cluster` reads
/// them; neither is a tool argument, so no token passes through the agent.
fn fleet_client() -> Result<crate::modes::client::Client, String> {
    let ca = std::env::var_os("TRACER_CA_CERT").map(std::path::PathBuf::from);
    crate::modes::client::Client::new(
        None,
        std::env::var("TRACER_AUTH_TOKEN").ok(),
        ca.as_deref(),
        None,
    )
    .map_err(|e| format!("{e:#}"))
}
