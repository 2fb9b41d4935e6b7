//! `GET /capture?seconds=…&reason=…&port=…&max_packets=…&retransmits=1` of `tracer serve --allow-capture`:
//! a bounded capture (at most [`MAX_SECONDS`], [`MAX_PACKETS`], one at a time) returned as a
//! pcapng download. Off unless the server was started with `--allow-capture`: packet contents
//! are sensitive.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use axum::{
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::{
    filter::{self, CaptureFilter},
    run::{capture, CaptureArgs, CaptureKernel},
};

/// Longest capture a request may ask for.
pub const MAX_SECONDS: u64 = 60;
/// Most packets a request may ask for (and the default).
pub const MAX_PACKETS: u64 = 1000;
/// Largest file returned.
const MAX_BYTES: u64 = 8 << 20;

/// The query of `/capture`.
#[derive(Debug, Default, Deserialize)]
pub struct CaptureQuery {
    pub seconds: Option<String>,
    pub reason: Option<String>,
    pub port: Option<u16>,
    pub max_packets: Option<u64>,
    /// `1` (or `true`): also retransmitted TCP segments.
    pub retransmits: Option<String>,
}

static BUSY: AtomicBool = AtomicBool::new(false);
static NEXT: AtomicU64 = AtomicU64::new(0);

fn text(status: StatusCode, body: String) -> Response {
    (status, body).into_response()
}

/// Answers one `/capture` request. `allowed`: `--allow-capture` was given; `netns`: the
/// server's scope, which every capture keeps to.
pub async fn respond(allowed: bool, netns: Option<u32>, query: Option<CaptureQuery>) -> Response {
    if !allowed {
        return text(
            StatusCode::FORBIDDEN,
            "packet capture is off: start `tracer serve` with --allow-capture to enable \
             /capture (packet contents are sensitive)\n"
                .to_owned(),
        );
    }
    let Some(query) = query else {
        return text(
            StatusCode::BAD_REQUEST,
            "malformed query; use /capture?seconds=10&reason=NETFILTER_DROP\n".to_owned(),
        );
    };
    let seconds = match query.seconds.as_deref() {
        None => 10,
        Some(s) => match s.trim_end_matches('s').parse::<u64>() {
            Ok(n) if (1..=MAX_SECONDS).contains(&n) => n,
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("seconds must be 1 to {MAX_SECONDS}\n"),
                )
            }
        },
    };
    let max_packets = query
        .max_packets
        .unwrap_or(MAX_PACKETS)
        .clamp(1, MAX_PACKETS);
    let retransmits = match query.retransmits.as_deref() {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(_) => {
            return text(
                StatusCode::BAD_REQUEST,
                "retransmits must be 1 or 0\n".to_owned(),
            )
        }
    };
    if BUSY.swap(true, Ordering::SeqCst) {
        return text(
            StatusCode::CONFLICT,
            "a capture is already running; try again when it ends\n".to_owned(),
        );
    }
    let result = tokio::task::spawn_blocking(move || {
        let kernel = CaptureKernel::read()?;
        let reasons = match &query.reason {
            Some(list) => filter::reasons_by_name(list, &kernel.names)?,
            None => Vec::new(),
        };
        let path = std::env::temp_dir().join(format!(
            "tracer-serve-capture-{}-{}.pcapng",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let (index, _) = crate::node::pods::PodIndex::scan(&crate::node::pods::PodRoots::live());
        let args = CaptureArgs {
            duration: Duration::from_secs(seconds),
            output: path.clone(),
            filter: CaptureFilter {
                reasons,
                netns,
                port: query.port,
                ..CaptureFilter::default()
            },
            layer: None,
            max_packets,
            snaplen: 128,
            rate: 10_000,
            max_bytes: MAX_BYTES,
            pods: index.labels(),
            retransmits,
        };
        let outcome = capture(&kernel, &args, &crate::modes::stop::requested);
        let body = std::fs::read(&path);
        let _ = std::fs::remove_file(&path);
        let outcome = outcome?;
        anyhow::Ok((body?, outcome.summary.packets, outcome.summary.lost()))
    })
    .await;
    BUSY.store(false, Ordering::SeqCst);
    match result {
        Ok(Ok((body, packets, lost))) => (
            [
                (header::CONTENT_TYPE, "application/x-pcapng".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"drops.pcapng\"".to_owned(),
                ),
                (
                    header::HeaderName::from_static("x-tracer-packets"),
                    packets.to_string(),
                ),
                (
                    header::HeaderName::from_static("x-tracer-lost"),
                    lost.to_string(),
                ),
            ],
            body,
        )
            .into_response(),
        Ok(Err(e)) => text(StatusCode::BAD_REQUEST, format!("capture failed: {e:#}\n")),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the capture task failed\n".to_owned(),
        ),
    }
}
