//! `tracer serve`: the sidecar mode. HTTP endpoints over a rolling window, read-only.
//!
//! - `GET /metrics`: OpenMetrics text (see [`crate::present::metrics`]), re-rendered once a second and
//!   served from memory, so a thousand scrapers cost a thousand memory copies and no kernel work.
//! - `GET /report[?window=60s]`: the verdict document (JSON) of the newest `window` seconds (at
//!   most `--max-window`); judged at most once per second per window length.
//! - `GET /healthz`: the process answers. `GET /readyz`: 200 once the probes are attached and a
//!   first window is judged, 503 before.
//!
//! One producer thread owns the kernel side (the [`LiveTracer`] and its [`Watch`]): it takes a
//! frame every second, updates the metric totals, judges the default window and publishes the
//! results; `/report` requests for other windows are handed to it over a channel. The HTTP side
//! (axum on tokio) never touches the kernel. On SIGTERM, SIGINT or SIGHUP the server stops
//! accepting, lets in-flight requests finish (at most [`DRAIN`]), then the producer detaches the
//! probes.

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

use crate::{
    modes::live::LiveTracer,
    modes::watch::{Thinning, Watch},
    node::counters::CounterSource,
    node::facts::FactsSource,
    node::netns::NetnsScope,
    present::metrics::{self, Exposition, Limits, OwnListener, PodName, Totals},
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
    /// Serve `/capture` (packet contents; off by default).
    pub allow_capture: bool,
}

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
    GET /healthz               200 while the process answers\n\
    GET /readyz                200 once the probes are attached\n";

async fn index() -> &'static str {
    INDEX
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, format!("no such endpoint\n{INDEX}")).into_response()
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics_handler))
        .route("/report", get(report_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/capture", get(capture_handler))
        .fallback(not_found)
        .with_state(shared)
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
    let mut pods = pod_names(watch.facts());
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
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let at_ms = started.elapsed().as_millis() as u64;
        next_tick += Duration::from_secs(1);
        watch.tick(&tracer, at_ms)?;
        ticks += 1;
        if ticks.is_multiple_of(FACTS_EVERY) {
            watch.refresh_facts();
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
        let text = metrics::render(&Exposition {
            totals: &totals,
            verdict: &judged.document,
            window_s: judged.document.observations.window.duration_s,
            uptime_s: started.elapsed().as_secs_f64(),
            probes: &meta.probes,
            kernel: &meta.kernel,
            pods: &pods,
        });
        if let Ok(mut p) = shared.published.write() {
            p.metrics = Bytes::from(text);
            p.report = report;
            if matches!(p.phase, Phase::Starting) {
                p.phase = Phase::Ready {
                    probes: tracer.attached_count(),
                    startup_ms: tracer.startup_ms,
                };
                eprintln!(
                    "tracer: ready: {} probes attached in {:.0} ms; serving http://{}",
                    tracer.attached_count(),
                    tracer.startup_ms,
                    options.listen
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

async fn serve(options: ServeOptions) -> Result<u8> {
    crate::modes::live::require_root()?;
    crate::modes::stop::install()?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (another tracer serving? choose another with --listen)",
                options.listen
            )
        })?;
    let (tx, rx) = mpsc::channel();
    let shared = Arc::new(Shared {
        published: RwLock::new(Published {
            phase: Phase::Starting,
            metrics: Bytes::new(),
            report: Bytes::new(),
        }),
        requests: Mutex::new(tx.clone()),
        options: options.clone(),
    });
    eprintln!(
        "tracer: listening on http://{} (/metrics /report /healthz /readyz); attaching probes",
        options.listen
    );
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<String>();
    let producer = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("tracer-producer".to_owned())
            .spawn(move || {
                if let Err(e) = produce(&shared, &rx) {
                    let message = format!("{e:#}");
                    if let Ok(mut p) = shared.published.write() {
                        p.phase = Phase::Failed(message.clone());
                    }
                    let _ = failed_tx.send(message);
                }
            })
            .context("starting the producer thread")?
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let app = router(shared.clone());
    let mut server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            })
            .await
    });
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let stop_requested = async {
        // SIGHUP, or a signal that came before the handlers above existed.
        loop {
            if let Some(reason) = crate::modes::stop::reason() {
                break reason;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let say = crate::modes::stop::say;
    let outcome: Result<u8> = tokio::select! {
        _ = tokio::signal::ctrl_c() => { say(format_args!("tracer: interrupted; stopping")); Ok(0) }
        reason = stop_requested => { say(format_args!("tracer: {reason}; stopping")); Ok(0) }
        _ = sigterm.recv() => { say(format_args!("tracer: terminated; stopping")); Ok(0) }
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
    let _ = tokio::task::spawn_blocking(move || producer.join()).await;
    say(format_args!(
        "tracer: probes detached; stopped in {:.0} ms",
        stopping.elapsed().as_secs_f64() * 1000.0
    ));
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
