//! `tracer mcp` and `tracer serve --mcp`: the D7 verdict as MCP tools for an AI agent, with the
//! official SDK (rmcp). Two transports over one server: stdio (the agent spawns `tracer mcp`;
//! it runs the same producer as the sidecar, without the HTTP listener) and streamable HTTP at
//! `/mcp` on the sidecar's listener (loopback hosts only unless it listens elsewhere; the SDK's
//! Host check stays on). Every tool is read-only and reads the producer's frames.
//!
//! - [`args`]: arguments, schemas, bounds; [`output`]: the answers and their caps;
//! - [`tools`]: the seven tools; [`handler`]: server info, prompt, runbook resource;
//! - [`guide`]: the prompt's text and the embedded runbook.

pub mod args;
pub mod guide;
mod handler;
pub mod output;
pub mod tools;

use std::time::Duration;

use anyhow::{Context as _, Result};
use rmcp::{
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ServiceExt as _,
};

use crate::modes::server::{Frames, Producer, ServeOptions};
use output::NodeIdentity;
pub use tools::TracerMcp;

/// Hosts the HTTP transport answers for: loopback, and the address it listens on when that is
/// a specific one (a DaemonSet on the node's address).
pub fn allowed_hosts(listen: std::net::SocketAddr) -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let ip = listen.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        hosts.push(ip.to_string());
    }
    hosts
}

/// Browser origins the HTTP transport answers (a request without `Origin`, as agents send,
/// always passes): pages served from loopback or from the listen address.
pub fn allowed_origins(listen: std::net::SocketAddr) -> Vec<String> {
    allowed_hosts(listen)
        .into_iter()
        .map(|h| {
            if h.contains(':') {
                format!("http://[{h}]:*")
            } else {
                format!("http://{h}:*")
            }
        })
        .collect()
}

/// The `/mcp` service of `tracer serve --mcp`: one MCP session per client, all on the
/// sidecar's producer.
pub fn http_service(frames: Frames) -> StreamableHttpService<TracerMcp, LocalSessionManager> {
    let frames_listen = frames.options().listen;
    let hosts = allowed_hosts(frames_listen);
    let server = TracerMcp::new(frames, NodeIdentity::here());
    StreamableHttpService::new(
        move || Ok(server.clone()),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default()
            .with_allowed_hosts(hosts)
            .with_allowed_origins(allowed_origins(frames_listen)),
    )
}

/// `tracer serve --mcp`'s routes: the tools at `/mcp`.
pub fn mount(frames: Frames) -> axum::Router {
    axum::Router::new().nest_service("/mcp", http_service(frames))
}

/// `tracer mcp`: the tools over stdin/stdout until stdin closes or a stop signal; returns the
/// exit status.
pub fn run_stdio(
    max_window: Duration,
    scope: Option<crate::node::netns::NetnsScope>,
) -> Result<u8> {
    crate::modes::live::require_root()?;
    crate::modes::stop::install()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = runtime.block_on(async move {
        let producer = Producer::start(ServeOptions {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            window: Duration::from_secs(60).min(max_window),
            max_window,
            scope,
            limits: crate::present::metrics::Limits::default(),
            // Nothing listens: the stdio transport is the only way in.
            security: crate::modes::listener::Security {
                tls: None,
                token_file: None,
                metrics_open: false,
                conn: crate::modes::listener::ConnLimits {
                    max_connections: 1,
                    header_timeout: Duration::from_secs(10),
                },
            },
            mount: None,
            allow_capture: false,
        })?;
        crate::modes::stop::say(format_args!(
            "tracer: MCP on stdio; attaching probes (read-only; ends when stdin closes)"
        ));
        let server = TracerMcp::new(producer.frames.clone(), NodeIdentity::here());
        // Ends when the client goes (stdin closed) or fails; the signals are watched from the
        // start, also while waiting for the client's initialize.
        let outcome = async {
            let running = server
                .serve(rmcp::transport::stdio())
                .await
                .context("the MCP client did not initialize")?;
            running.waiting().await.context("the MCP session failed")?;
            anyhow::Ok(0u8)
        };
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
        let mut producer = producer;
        let result = tokio::select! {
            r = outcome => r,
            _ = tokio::signal::ctrl_c() => { say(format_args!("tracer: interrupted; stopping")); Ok(0) }
            _ = sigterm.recv() => { say(format_args!("tracer: terminated; stopping")); Ok(0) }
            reason = stop_requested => { say(format_args!("tracer: {reason}; stopping")); Ok(0) }
            failed = &mut producer.failed => Err(anyhow::anyhow!(
                failed.unwrap_or_else(|_| "the producer thread ended unexpectedly".to_owned())
            )),
        };
        producer.stop().await;
        crate::modes::stop::say(format_args!("tracer: probes detached; MCP session ended"));
        result
    });
    // The stdin reader may still sit in a blocking read: do not wait for it.
    runtime.shutdown_background();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_the_listen_address_are_the_allowed_hosts_and_origins() {
        let any: std::net::SocketAddr = "0.0.0.0:9595".parse().expect("addr");
        assert_eq!(allowed_hosts(any), ["localhost", "127.0.0.1", "::1"]);
        let node: std::net::SocketAddr = "10.0.1.5:9595".parse().expect("addr");
        assert_eq!(
            allowed_hosts(node),
            ["localhost", "127.0.0.1", "::1", "10.0.1.5"]
        );
        assert_eq!(
            allowed_origins(node),
            [
                "http://localhost:*",
                "http://127.0.0.1:*",
                "http://[::1]:*",
                "http://10.0.1.5:*"
            ]
        );
    }
}
