//! `tracer serve`: the sidecar mode. HTTP endpoints over a rolling window, read-only.
//!
//! - `GET /metrics`: OpenMetrics text (see [`crate::present::metrics`]), re-rendered once a second and
//!   served from memory, so a thousand scrapers cost a thousand memory copies and no kernel work.
//! - `GET /report[?window=60s]`: the verdict document (JSON) of the newest `window` seconds (at
//!   most `--max-window`); judged at most once per second per window length.
//! - `GET /healthz`: the process answers. `GET /readyz`: 200 once the probes are attached and a
//!   first window is judged, 503 before.
//! - `/mcp` (with `--mcp`): routes mounted by the caller ([`ServeOptions::mount`]; the binary
//!   mounts the MCP tools); they run their work on the producer through a [`Frames`] handle,
//!   so they add no probes.
//!
//! One producer thread owns the kernel side (the [`LiveTracer`] and its [`Watch`]): it takes a
//! frame every second, updates the metric totals, judges the default window and publishes the
//! results; `/report` requests for other windows are handed to it over a channel. The HTTP side
//! (axum on tokio) never touches the kernel. On SIGTERM, SIGINT or SIGHUP the server stops
//! accepting, lets in-flight requests finish (at most [`DRAIN`]), then the producer detaches the
//! probes.
//!
//! Who may ask is [`crate::modes::guard`]'s business (one middleware over the whole router: a
//! bearer token on everything but health), TLS and slow clients are
//! [`crate::modes::listener`]'s (with [`crate::modes::tls`]); the certificate, key and token
//! files are re-read every [`crate::modes::reload::EVERY`] when they change. What the facts
//! refresh and the frames could not read is logged as warnings, each distinct error at most
//! once a minute ([`events`]).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{mpsc, Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context as _, Result};
use axum::{
    body::Bytes,
    extract::{Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use serde::Deserialize;

pub mod events;
mod frames;

use events::{ErrorEvents, ErrorKind};
use frames::Job;
pub use frames::{Frames, Producer, Sidecar};

use crate::{
    modes::guard,
    modes::listener::{self, Security},
    modes::live::LiveTracer,
    modes::watch::{Thinning, Watch},
    node::counters::CounterSource,
    node::facts::FactsSource,
    node::netns::NetnsScope,
    present::metrics::{self, Exposition, Limits, OnsetTracker, OwnListener, PodName, Totals},
};

/// Longest wait for in-flight requests after a stop signal.
pub const DRAIN: Duration = Duration::from_millis(1500);
/// Longest a `/report` request waits for the producer.
const JUDGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames older than the default window are kept one per this (memory grows with
/// `--max-window / THIN_STRIDE`, not with its seconds).
const THIN_STRIDE: Duration = Duration::from_secs(10);
/// Frames keep the per-destination maps once per this (and the newest two): with a full
/// destination map (4,096 × ~1 KB) a frame a second would hold hundreds of MB.
const FLOW_MAPS_STRIDE: Duration = Duration::from_secs(30);
/// Facts (routes, rules, sysctls, pods) are read again every this many frames.
const FACTS_EVERY: u64 = 15;

/// What `tracer serve` was asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Window of `/metrics`' verdict and of `/report` without `?window=`.
    pub window: Duration,
    /// Longest window `/report?window=` may ask for (frames kept in memory).
    pub max_window: Duration,
    pub scope: Option<NetnsScope>,
    pub limits: Limits,
    pub security: Security,
    /// More routes on the listener, given a handle on the producer (`--mcp` mounts `/mcp`).
    pub mount: Option<Mount>,
    /// Serve `/capture` (packet contents; off by default).
    pub allow_capture: bool,
}

/// Adds routes that reach the producer through [`Frames`].
pub type Mount = fn(Frames) -> Router;

/// Frames needed to judge `window` (one more than its seconds: the first is the baseline).
fn frames_for(window: Duration) -> usize {
    window.as_secs().max(1) as usize + 1
}

enum Phase {
    Starting,
    Ready { probes: usize, startup_ms: f64 },
    Failed(String),
}

/// What the producer publishes every second.
struct Published {
    phase: Phase,
    metrics: Bytes,
    report: Bytes,
}

enum Msg {
    Judge {
        window: Duration,
        reply: tokio::sync::oneshot::Sender<Result<Bytes, String>>,
    },
    Run(Job),
    Stop,
}

struct Shared {
    published: RwLock<Published>,
    requests: Mutex<mpsc::Sender<Msg>>,
    options: ServeOptions,
}

impl Shared {
    fn phase_response(&self) -> Option<Response> {
        let published = self.published.read().ok()?;
        match &published.phase {
            Phase::Ready { .. } => None,
            Phase::Starting => Some(
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "starting: attaching probes and taking the first frames\n",
                )
                    .into_response(),
            ),
            Phase::Failed(e) => Some(
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the tracer could not start: {e}\n"),
                )
                    .into_response(),
            ),
        }
    }
}

/// Parses `?window=`: a humantime duration (`90s`, `5m`) or plain seconds.
pub fn parse_window(text: &str, max: Duration) -> Result<Duration, String> {
    let text = text.trim();
    let window = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("window={text:?} is not a duration like 60s or 5m ({e})"))?,
    };
    if window < Duration::from_secs(1) {
        return Err(format!("window={text:?} is shorter than one second"));
    }
    if window > max {
        return Err(format!(
            "window={text:?} is longer than the {} this server keeps (--max-window)",
            humantime::format_duration(max)
        ));
    }
    Ok(window)
}

#[derive(Deserialize)]
struct ReportQuery {
    window: Option<String>,
}

async fn metrics_handler(State(shared): State<Arc<Shared>>) -> Response {
    if let Some(r) = shared.phase_response() {
        return r;
    }
    let body = match shared.published.read() {
        Ok(p) => p.metrics.clone(),
        Err(_) => return internal("state lock poisoned"),
    };
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response()
}

fn internal(what: &str) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{what}\n")).into_response()
}

fn json(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn report_handler(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return (
            StatusCode::BAD_REQUEST,
            "malformed query; use /report or /report?window=60s\n",
        )
            .into_response();
    };
    let window = match query.window.as_deref() {
        None => None,
        Some(text) => match parse_window(text, shared.options.max_window) {
            Ok(w) => Some(w),
            Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        },
    };
    if let Some(r) = shared.phase_response() {
        return r;
    }
    let window = match window {
        Some(w) if w.as_secs() != shared.options.window.as_secs() => w,
        _ => {
            return match shared.published.read() {
                Ok(p) => json(p.report.clone()),
                Err(_) => internal("state lock poisoned"),
            }
        }
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let sent = shared
        .requests
        .lock()
        .map(|tx| tx.send(Msg::Judge { window, reply }).is_ok())
        .unwrap_or(false);
    if !sent {
        return internal("the tracer is shutting down");
    }
    match tokio::time::timeout(JUDGE_TIMEOUT, answer).await {
        Ok(Ok(Ok(body))) => json(body),
        Ok(Ok(Err(e))) => internal(&e),
        Ok(Err(_)) => internal("the tracer is shutting down"),
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            "judging the window took longer than 10 s\n",
        )
            .into_response(),
    }
}

async fn capture_handler(
    State(shared): State<Arc<Shared>>,
    query: Result<
        Query<crate::modes::capture::http::CaptureQuery>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Response {
    crate::modes::capture::http::respond(
        shared.options.allow_capture,
        shared.options.scope.as_ref().map(|s| s.inode),
        query.ok().map(|Query(q)| q),
    )
    .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if let Some(r) = shared.phase_response() {
        return r;
    }
    match shared.published.read().map(|p| match p.phase {
        Phase::Ready { probes, startup_ms } => {
            format!("ready: {probes} probes attached in {startup_ms:.0} ms\n")
        }
        _ => String::new(),
    }) {
        Ok(text) => text.into_response(),
        Err(_) => internal("state lock poisoned"),
    }
}

const INDEX: &str = "tracer serve (read-only)\n\
    GET /metrics               OpenMetrics text\n\
    GET /report?window=60s     the verdict document (JSON) of the newest window\n\
    GET /healthz               200 while the process answers (never needs a token)\n\
    GET /readyz                200 once the probes are attached (never needs a token)\n\
    POST /mcp                  MCP tools (streamable HTTP; with --mcp)\n";

async fn index() -> &'static str {
    INDEX
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, format!("no such endpoint\n{INDEX}")).into_response()
}

fn router(shared: Arc<Shared>) -> Router {
    let mounted = shared.options.mount.map(|mount| {
        mount(Frames {
            shared: shared.clone(),
        })
    });
    let routes = Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics_handler))
        .route("/report", get(report_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/capture", get(capture_handler))
        .fallback(not_found)
        .with_state(shared);
    match mounted {
        Some(more) => routes.merge(more),
        None => routes,
    }
}

/// Pods by network-namespace inode, for the metrics' `namespace` and `pod` labels
/// (hostNetwork pods share the host's namespace and label nothing).
fn pod_names(facts: &crate::node::evidence::NodeFacts) -> std::collections::BTreeMap<u32, PodName> {
    facts
        .pods
        .pods
        .iter()
        .filter(|p| !p.host_network)
        .filter_map(|p| {
            Some((
                p.netns?,
                PodName {
                    namespace: p.namespace.clone().unwrap_or_default(),
                    pod: p.name.clone().unwrap_or_else(|| format!("uid {}", p.uid)),
                },
            ))
        })
        .collect()
}

/// The producer: owns the kernel side, ticks every second, answers judge requests.
fn produce(shared: &Shared, requests: &mpsc::Receiver<Msg>) -> Result<()> {
    let options = &shared.options;
    let tracer = LiveTracer::start()?;
    let mut watch = Watch::begin(
        &tracer,
        CounterSource::live(),
        FactsSource::live(),
        options.scope.clone(),
    )?
    .thinned(Thinning {
        flow_maps_stride_ms: FLOW_MAPS_STRIDE.as_millis() as u64,
        dense: frames_for(options.window),
        stride_ms: THIN_STRIDE.as_millis() as u64,
        max_age_ms: options.max_window.as_millis() as u64 + 1000,
    });
    let started = Instant::now();
    // The tracer's own listener is no destination of the node's: its scrapes and probes would
    // otherwise take the per-destination series.
    let own_netns = std::fs::metadata("/proc/self/ns/net")
        .ok()
        .and_then(|m| u32::try_from(std::os::unix::fs::MetadataExt::ino(&m)).ok());
    let mut totals = Totals::excluding(
        options.limits,
        OwnListener {
            addr: options.listen,
            netns: own_netns,
        },
    );
    let meta = tracer.meta();
    // The node's facts are read in the background from `Watch::begin`; the first judged
    // window waits for them, and the pods and the facts' errors are taken then.
    let mut pods = std::collections::BTreeMap::new();
    let mut facts_taken = false;
    let mut errors = ErrorEvents::default();
    let node = crate::modes::live::node_name().unwrap_or_else(|| "unknown".to_owned());
    let mut onset = OnsetTracker::default();
    let mut cache: HashMap<u64, Bytes> = HashMap::new();
    let mut ticks = 0u64;
    let mut next_tick = Duration::from_secs(1);
    loop {
        let wait = next_tick.saturating_sub(started.elapsed());
        match requests.recv_timeout(wait) {
            Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Ok(Msg::Judge { window, reply }) => {
                let body = match cache.get(&window.as_secs()) {
                    Some(b) => b.clone(),
                    None => {
                        let judged = watch.judge_window(&tracer, window, &[]);
                        let body = Bytes::from(
                            serde_json::to_vec(&judged.document)
                                .map_err(|e| anyhow!("encoding the document: {e}"))?,
                        );
                        cache.insert(window.as_secs(), body.clone());
                        body
                    }
                };
                let _ = reply.send(Ok(body));
                continue;
            }
            Ok(Msg::Run(job)) => {
                job(Sidecar {
                    tracer: &tracer,
                    watch: &mut watch,
                    options,
                    uptime: started.elapsed(),
                });
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let at_ms = started.elapsed().as_millis() as u64;
        next_tick += Duration::from_secs(1);
        watch.tick(&tracer, at_ms)?;
        errors.report(ErrorKind::Sample, watch.last_errors(), at_ms);
        ticks += 1;
        if ticks.is_multiple_of(FACTS_EVERY) {
            watch.refresh_facts();
            errors.report(ErrorKind::Facts, &watch.facts().errors, at_ms);
            pods = pod_names(watch.facts());
        }
        if let Some(delta) = watch.last_interval() {
            let delta = match &options.scope {
                Some(s) => delta.only_netns(s.inode),
                None => delta,
            };
            totals.absorb(&delta, &meta.names, tracer.symbols());
        }
        cache.clear();
        let judged = watch.judge_window(&tracer, options.window, &[]);
        if !facts_taken {
            facts_taken = true;
            errors.report(ErrorKind::Facts, &watch.facts().errors, at_ms);
            pods = pod_names(watch.facts());
        }
        let report = Bytes::from(
            serde_json::to_vec(&judged.document)
                .map_err(|e| anyhow!("encoding the document: {e}"))?,
        );
        cache.insert(options.window.as_secs(), report.clone());
        // The second's copies of the kernel maps are freed by now: hand the memory back, so
        // the RSS a DaemonSet's limit sees is what the server keeps, not a high-water mark.
        #[cfg(target_env = "gnu")]
        // SAFETY: a plain libc call; it only returns free heap pages to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
        let crc = watch.host_rx_crc_errors();
        let text = metrics::render(&Exposition {
            totals: &totals,
            verdict: &judged.document,
            window_s: judged.document.observations.window.duration_s,
            uptime_s: started.elapsed().as_secs_f64(),
            probes: &meta.probes,
            kernel: &meta.kernel,
            pods: &pods,
            node: &node,
            onset: onset.update(&judged.document),
            nic_rx_crc_errors: &crc,
        });
        if let Ok(mut p) = shared.published.write() {
            p.metrics = Bytes::from(text);
            p.report = report;
            if matches!(p.phase, Phase::Starting) {
                p.phase = Phase::Ready {
                    probes: tracer.attached_count(),
                    startup_ms: tracer.startup_ms,
                };
                let serving = if options.listen.port() == 0 {
                    String::new()
                } else {
                    format!(
                        "; serving {}://{}",
                        scheme(&options.security),
                        options.listen
                    )
                };
                tracing::info!(
                    event = "ready",
                    probes = tracer.attached_count(),
                    startup_ms = tracer.startup_ms,
                    listen = %options.listen,
                    "ready: {} probes attached in {:.0} ms{serving}",
                    tracer.attached_count(),
                    tracer.startup_ms,
                );
            }
        }
    }
    // Dropping the tracer detaches and unloads every program.
    drop(watch);
    drop(tracer);
    Ok(())
}

/// Runs the server until SIGTERM, SIGINT or SIGHUP; returns the exit status.
pub fn run(options: ServeOptions) -> Result<u8> {
    // glibc gives every thread that allocates an arena of its own; the producer's per-second
    // copies of the kernel maps (megabytes with a full destination map) then stay spread over
    // several arenas. Two arenas measured ~45 MB less RSS after a million destinations.
    #[cfg(target_env = "gnu")]
    // SAFETY: a plain libc call with constant arguments, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(options))
}

fn scheme(security: &Security) -> &'static str {
    if security.tls.is_some() {
        "https"
    } else {
        "http"
    }
}

async fn serve(options: ServeOptions) -> Result<u8> {
    crate::modes::live::require_root()?;
    crate::modes::stop::install()?;
    let security = &options.security.clone();
    let (guard, acceptor, reloader) = listener::secure(security)?;
    if !options.listen.ip().is_loopback() {
        if security.token_file.is_none() {
            eprintln!(
                "tracer: warning: listening on {} without --auth-token-file: anyone who \
                 reaches this port reads /report and /metrics (see docs/security.md)",
                options.listen
            );
        } else if security.tls.is_none() {
            eprintln!(
                "tracer: warning: listening on {} with tokens but without --tls-cert: tokens \
                 and answers cross the network in clear (see docs/security.md)",
                options.listen
            );
        }
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (another tracer serving? choose another with --listen)",
                options.listen
            )
        })?;
    tracing::info!(
        event = "start",
        listen = %options.listen,
        window_s = options.window.as_secs(),
        max_window_s = options.max_window.as_secs(),
        version = env!("CARGO_PKG_VERSION"),
        "listening on {}://{} (/metrics /report /healthz /readyz{}; {}); attaching probes",
        scheme(security),
        options.listen,
        if options.mount.is_some() { " /mcp" } else { "" },
        match (&security.token_file, security.metrics_open) {
            (None, _) => "no token asked",
            (Some(_), false) => "a bearer token asked on all but /healthz and /readyz",
            (Some(_), true) => "a bearer token asked on all but /healthz, /readyz and /metrics",
        }
    );
    let Producer {
        frames,
        thread: producer,
        tx,
        failed: failed_rx,
    } = Producer::start(options)?;
    let shared = frames.shared.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The guard goes around everything the router has, added last: a route added to
    // `router()` (or merged before this line) is covered without a line of its own.
    let app = guard::guarded(router(shared.clone()), guard);
    let mut server = tokio::spawn(listener::serve(
        listener,
        app,
        acceptor,
        security.conn,
        stop_rx,
    ));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let stop_requested = async {
        // A signal that came before the handlers above existed (the flag `stop::install` set),
        // looked at once a second: the handlers above wake the server at once for the rest
        // (a 100 ms poll here was a quarter of an idle server's CPU time).
        loop {
            if let Some(reason) = crate::modes::stop::reason() {
                break reason;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let stopping_for = |reason: &str| tracing::info!(event = "stop", reason, "{reason}; stopping");
    let outcome: Result<u8> = tokio::select! {
        _ = tokio::signal::ctrl_c() => { stopping_for("interrupted"); Ok(0) }
        reason = stop_requested => { stopping_for(reason); Ok(0) }
        _ = sigterm.recv() => { stopping_for("terminated"); Ok(0) }
        _ = sighup.recv() => { stopping_for("hung up (SIGHUP)"); Ok(0) }
        failed = failed_rx => match failed {
            Ok(message) => Err(anyhow!(message)),
            Err(_) => Err(anyhow!("the producer thread ended unexpectedly")),
        },
        served = &mut server => match served {
            Ok(Ok(())) => Ok(0),
            Ok(Err(e)) => Err(anyhow!("the HTTP server failed: {e}")),
            Err(e) => Err(anyhow!("the HTTP server task failed: {e}")),
        },
    };
    let stopping = Instant::now();
    let _ = stop_tx.send(true);
    // In-flight requests get DRAIN to finish; then connections are dropped.
    if tokio::time::timeout(DRAIN, &mut server).await.is_err() {
        server.abort();
    }
    if let Ok(tx) = shared.requests.lock() {
        let _ = tx.send(Msg::Stop);
    }
    drop(tx);
    reloader.abort();
    let _ = tokio::task::spawn_blocking(move || producer.join()).await;
    let stop_ms = stopping.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        event = "stopped",
        stop_ms,
        "probes detached; stopped in {stop_ms:.0} ms"
    );
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_as_durations_or_seconds_within_the_limit() {
        let max = Duration::from_secs(300);
        assert_eq!(parse_window("60s", max), Ok(Duration::from_secs(60)));
        assert_eq!(parse_window("2m", max), Ok(Duration::from_secs(120)));
        assert_eq!(parse_window("45", max), Ok(Duration::from_secs(45)));
        assert!(parse_window("10m", max)
            .unwrap_err()
            .contains("longer than the 5m"));
        assert!(parse_window("banana", max)
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_window("0", max).unwrap_err().contains("shorter"));
        assert_eq!(frames_for(Duration::from_secs(60)), 61);
    }
}
