//! The sidecar's producer as a service for other front ends (the MCP tools): [`Producer`]
//! starts the producer thread, [`Frames`] runs a job on it between two frames and returns the
//! job's answer, so those front ends read the frames the sidecar already takes.

use std::{
    sync::{mpsc, Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use axum::body::Bytes;

use super::{produce, Msg, Phase, Published, ServeOptions, Shared, JUDGE_TIMEOUT};
use crate::modes::{live::LiveTracer, watch::Watch};

/// What a job handed to the producer sees: the kernel side, between two frames.
pub struct Sidecar<'a> {
    pub tracer: &'a LiveTracer,
    pub watch: &'a mut Watch,
    pub options: &'a ServeOptions,
    /// Since the producer started.
    pub uptime: Duration,
}

pub(super) type Job = Box<dyn FnOnce(Sidecar<'_>) + Send>;

/// A handle on the producer for other front ends (the MCP tools): runs jobs on its thread.
#[derive(Clone)]
pub struct Frames {
    pub(super) shared: Arc<Shared>,
}

/// Longest a job waits for the probes to attach.
const READY_WAIT: Duration = Duration::from_secs(30);

impl Frames {
    /// What the sidecar was asked to do.
    pub fn options(&self) -> &ServeOptions {
        &self.shared.options
    }

    /// Waits (at most [`READY_WAIT`]) until the first window is judged; one sentence if the
    /// tracer could not start.
    async fn ready(&self) -> Result<(), String> {
        let waited = Instant::now();
        loop {
            let state = self
                .shared
                .published
                .read()
                .map(|p| match &p.phase {
                    Phase::Ready { .. } => Ok(true),
                    Phase::Starting => Ok(false),
                    Phase::Failed(e) => Err(format!("the tracer could not start: {e}")),
                })
                .map_err(|_| ());
            match state {
                Ok(Ok(true)) => return Ok(()),
                Ok(Ok(false)) if waited.elapsed() < READY_WAIT => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(Ok(false)) => {
                    return Err("the probes are still attaching; try again in a few seconds".into())
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err("the tracer's state is unreadable (a thread panicked)".into()),
            }
        }
    }

    /// Runs `job` on the producer thread between two frames and returns what it returns.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(Sidecar<'_>) -> T + Send + 'static,
    ) -> Result<T, String> {
        self.ready().await?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |sidecar| {
            let _ = reply.send(job(sidecar));
        });
        let sent = self
            .shared
            .requests
            .lock()
            .map(|tx| tx.send(Msg::Run(job)).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err("the tracer is shutting down".into());
        }
        match tokio::time::timeout(JUDGE_TIMEOUT, answer).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err("the tracer is shutting down".into()),
            Err(_) => Err("the tracer took longer than 10 s to answer".into()),
        }
    }
}

/// The producer thread and the ways to reach it.
pub struct Producer {
    pub frames: Frames,
    pub(super) thread: std::thread::JoinHandle<()>,
    pub(super) tx: mpsc::Sender<Msg>,
    /// Says why the producer failed, once.
    pub failed: tokio::sync::oneshot::Receiver<String>,
}

impl Producer {
    /// Starts the producer thread (it attaches the probes; [`Frames::run`] waits for that).
    pub fn start(options: ServeOptions) -> Result<Producer> {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            published: RwLock::new(Published {
                phase: Phase::Starting,
                metrics: Bytes::new(),
                report: Bytes::new(),
            }),
            requests: Mutex::new(tx.clone()),
            options,
        });
        let (failed_tx, failed) = tokio::sync::oneshot::channel::<String>();
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("tracer-producer".to_owned())
                .spawn(move || {
                    if let Err(e) = produce(&shared, &rx) {
                        let message = format!("{e:#}");
                        tracing::error!(event = "failed", error = %message, "the producer stopped: {message}");
                        if let Ok(mut p) = shared.published.write() {
                            p.phase = Phase::Failed(message.clone());
                        }
                        let _ = failed_tx.send(message);
                    }
                })
                .context("starting the producer thread")?
        };
        Ok(Producer {
            frames: Frames { shared },
            thread,
            tx,
            failed,
        })
    }

    /// Tells the producer to stop and waits until it has detached the probes.
    pub async fn stop(self) {
        if let Ok(tx) = self.frames.shared.requests.lock() {
            let _ = tx.send(Msg::Stop);
        }
        let _ = self.tx.send(Msg::Stop);
        drop(self.tx);
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}
