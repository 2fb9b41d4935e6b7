//! `tracer serve`'s connection loop: plain TCP or TLS, HTTP/1.1 (hyper) under the axum router,
//! with limits so that slow or idle clients cannot starve the scrapes:
//!
//! - the TLS handshake and each request's header must arrive within `header_timeout`, and an
//!   idle keep-alive connection is closed after it too;
//! - at most `max_connections` connections are open; when one more arrives, the oldest
//!   connection that is not answering a request and has had [`MIN_AGE`] to send one is closed
//!   to make room (one that never sent a whole request first), so clients holding half a
//!   request keep no more than the cap and a scrape still gets in. When every connection is
//!   answering or that young, accepting pauses (newcomers wait in the kernel's backlog): a
//!   burst of real clients is delayed, never reset.
//!
//! Each request carries its client's address ([`ClientAddr`]) for the guard's log. [`secure`]
//! reads the token and TLS files before anything listens and starts the task re-reading them.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::Result;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::{watch, Notify},
    task::JoinSet,
};
use tower::ServiceExt as _;

use crate::modes::{
    guard::{self, ClientAddr, Guard, TokenFile},
    reload,
    tls::CertFiles,
};

/// Limits of the connection loop.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// TLS, tokens and connection limits of `tracer serve`.
#[derive(Debug, Clone)]
pub struct Security {
    /// PEM certificate chain and key: HTTPS instead of HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Bearer tokens, one per line: every endpoint but health needs one.
    pub token_file: Option<PathBuf>,
    /// `/metrics` answers without a token.
    pub metrics_open: bool,
    pub conn: ConnLimits,
}

/// The guard, the TLS acceptor, and the task that re-reads their files; errors (unreadable or
/// unusable files) before anything listens.
pub fn secure(
    security: &Security,
) -> Result<(
    Arc<Guard>,
    Option<tokio_rustls::TlsAcceptor>,
    tokio::task::JoinHandle<()>,
)> {
    let (token_watch, tokens) = match &security.token_file {
        Some(path) => {
            let (w, t) = guard::read_token_file(path)?;
            (Some(w), Some(t))
        }
        None => (None, None),
    };
    let guard = Arc::new(Guard::new(tokens, security.metrics_open));
    let mut token_file = token_watch.map(|w| TokenFile::new(w, guard.clone()));
    let mut certs = match &security.tls {
        Some((cert, key)) => Some(CertFiles::open(cert, key)?),
        None => None,
    };
    let acceptor = certs
        .as_ref()
        .map(|c| c.server_config().map(tokio_rustls::TlsAcceptor::from))
        .transpose()?;
    let reloader = tokio::spawn(async move {
        let mut every = tokio::time::interval(reload::EVERY);
        loop {
            every.tick().await;
            let lines = [
                token_file.as_mut().and_then(TokenFile::reload),
                certs.as_mut().and_then(CertFiles::reload),
            ];
            for line in lines.into_iter().flatten() {
                eprintln!("{line}");
            }
        }
    });
    Ok((guard, acceptor, reloader))
}

/// The most bytes of request line and headers read.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// A connection younger than this is never closed for a newcomer: it has had no fair chance
/// to send its request. When every connection is busy or this young, accepting pauses (the
/// kernel's backlog holds newcomers) instead of resetting anyone.
pub const MIN_AGE: Duration = Duration::from_millis(500);

/// One open connection, as the admission sees it.
#[derive(Debug)]
struct Slot {
    opened: Instant,
    /// Requests being answered on it now.
    busy: AtomicUsize,
    /// Whether it has had a whole request.
    served: AtomicBool,
    /// Closes it at once.
    evict: Notify,
}

impl Slot {
    fn new(opened: Instant) -> Slot {
        Slot {
            opened,
            busy: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }
}

/// What the admission sees of a connection: answering now, has had a whole request, age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotState {
    pub busy: bool,
    pub served: bool,
    pub age: Duration,
}

/// Which connection to close for a newcomer when `open` (oldest first) are at the cap: among
/// those not answering and at least [`MIN_AGE`] old, the oldest that never had a whole request,
/// else the oldest idle one; `None` (wait) when there is none.
pub fn victim(open: &[SlotState]) -> Option<usize> {
    let fair = |s: &SlotState| !s.busy && s.age >= MIN_AGE;
    open.iter()
        .position(|s| fair(s) && !s.served)
        .or_else(|| open.iter().position(fair))
}

#[derive(Default)]
struct Conns {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Slot>>>,
    /// A connection ended (room for a waiting newcomer).
    freed: Notify,
    /// Connections closed for newcomers, and pauses of accepting at the cap, since start.
    evicted: AtomicU64,
    paused: AtomicU64,
    last_log_ms: AtomicU64,
}

impl Conns {
    /// Admits a connection at `now`, closing an idle one when at the cap; `None`: wait.
    fn admit(&self, cap: usize, now: Instant) -> Option<(u64, Arc<Slot>)> {
        let mut open = self.open.lock().ok()?;
        if open.len() >= cap.max(1) {
            let states: Vec<SlotState> = open
                .values()
                .map(|s| SlotState {
                    busy: s.busy.load(Ordering::Relaxed) > 0,
                    served: s.served.load(Ordering::Relaxed),
                    age: now.saturating_duration_since(s.opened),
                })
                .collect();
            let i = victim(&states)?;
            let id = *open.keys().nth(i)?;
            if let Some(slot) = open.remove(&id) {
                slot.evict.notify_one();
            }
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::new(now));
        open.insert(id, slot.clone());
        Some((id, slot))
    }

    fn leave(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
        self.freed.notify_one();
    }

    /// A line about the cap, at most once a minute.
    fn log_cap(&self, started: Instant, cap: usize) {
        let now = started.elapsed().as_millis() as u64 + 60_000;
        let last = self.last_log_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 60_000
            && self
                .last_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            eprintln!(
                "tracer: {cap} connections open (--max-connections): the oldest idle ones are \
                 closed for newcomers ({} so far; accepting paused {} times while all were \
                 answering or younger than {} ms)",
                self.evicted.load(Ordering::Relaxed),
                self.paused.load(Ordering::Relaxed),
                MIN_AGE.as_millis()
            );
        }
    }

    /// Admits `now`'s newcomer, waiting while there is no room; `None` when the server stops
    /// meanwhile.
    async fn admit_or_wait(
        &self,
        cap: usize,
        started: Instant,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<(u64, Arc<Slot>)> {
        let evicted = self.evicted.load(Ordering::Relaxed);
        loop {
            if let Some(admitted) = self.admit(cap, Instant::now()) {
                if self.evicted.load(Ordering::Relaxed) != evicted {
                    self.log_cap(started, cap);
                }
                return Some(admitted);
            }
            self.paused.fetch_add(1, Ordering::Relaxed);
            self.log_cap(started, cap);
            tokio::select! {
                () = stop_wanted(stop) => return None,
                () = self.freed.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }
}

/// Serves `app` on `listener` until `stop` turns true; then lets requests being answered
/// finish (the caller bounds that wait) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnLimits,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut stopped = stop.clone();
    let conns = Arc::new(Conns::default());
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            () = stop_wanted(&mut stopped) => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(_) => {
                        // Out of descriptors or a connection reset before accept: try again.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let admitted = conns
                    .admit_or_wait(limits.max_connections, started, &mut stopped)
                    .await;
                let Some((id, slot)) = admitted else { break };
                let (app, tls, conns, stop) = (app.clone(), tls.clone(), conns.clone(), stop.clone());
                tasks.spawn(async move {
                    connection(stream, peer, app, tls, limits, slot, stop).await;
                    conns.leave(id);
                });
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Resolves once the stop flag is true (or its sender is gone).
async fn stop_wanted(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One connection: the TLS handshake (bounded), then HTTP until it ends, is evicted or the
/// server stops.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnLimits,
    slot: Arc<Slot>,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => http(stream, peer, app, limits, slot, stop).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream));
            let stream = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(s)) => s,
                    _ => return,
                },
                _ = slot.evict.notified() => return,
            };
            http(stream, peer, app, limits, slot, stop).await;
        }
    }
}

/// Decrements a slot's busy count when a request's answer is done or dropped.
struct Busy(Arc<Slot>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.served.store(true, Ordering::Relaxed);
    }
}

async fn http<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    limits: ConnLimits,
    slot: Arc<Slot>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let slot = slot.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ClientAddr(peer));
            slot.busy.fetch_add(1, Ordering::Relaxed);
            let busy = Busy(slot.clone());
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await;
                drop(busy);
                response
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = slot.evict.notified() => break,
            () = stop_wanted(&mut stop), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newcomer_displaces_an_old_half_request_first_then_an_idle_one_never_a_busy_or_young_one()
    {
        let old = MIN_AGE * 4;
        let state = |busy, served, age| SlotState { busy, served, age };
        let prometheus_idle = state(false, true, old);
        let half_request = state(false, false, old);
        let just_connected = state(false, false, MIN_AGE / 2);
        let answering = state(true, true, old);
        assert_eq!(
            victim(&[prometheus_idle, answering, half_request, half_request]),
            Some(2)
        );
        assert_eq!(
            victim(&[just_connected, prometheus_idle, half_request]),
            Some(2)
        );
        assert_eq!(
            victim(&[answering, just_connected, prometheus_idle]),
            Some(2)
        );
        assert_eq!(victim(&[answering, just_connected]), None);
        assert_eq!(victim(&[]), None);
    }

    #[test]
    fn admission_holds_the_cap_and_waits_while_all_are_answering_or_young() {
        let conns = Conns::default();
        let t0 = Instant::now();
        let first: Vec<(u64, Arc<Slot>)> = (0..3).filter_map(|_| conns.admit(3, t0)).collect();
        assert_eq!(first.len(), 3);
        assert!(
            conns.admit(3, t0 + MIN_AGE / 2).is_none(),
            "all too young: wait"
        );
        first[1].1.busy.store(1, Ordering::Relaxed);
        let later = t0 + MIN_AGE * 2;
        // Two displaced (the idle ones), then only newcomers younger than MIN_AGE are left
        // besides the busy one: wait.
        assert!(conns.admit(3, later).is_some());
        assert!(conns.admit(3, later).is_some());
        assert!(conns.admit(3, later).is_none());
        let open = conns.open.lock().map(|o| o.len()).unwrap_or(0);
        assert_eq!(open, 3);
        assert_eq!(conns.evicted.load(Ordering::Relaxed), 2);
        assert!(conns
            .open
            .lock()
            .map(|o| o.contains_key(&first[1].0))
            .unwrap_or(false));
        conns.leave(first[1].0);
        assert!(conns.admit(3, later).is_some(), "room after one left");
    }
}
