//! The commands: a live window (live), rolling windows (watch), the sidecar (server, with its
//! guard, listener, tls and reload: tokens, TLS, connection limits), the MCP tools over stdio
//! and the sidecar's HTTP (mcp), the fleet (cluster with
//! its client and its PromQL source, diff), recordings and the files modes read and write (`-`, whole-or-nothing
//! recordings), `tracer check`, and the shared stop signal. The only stage that wires the
//! others together.

pub mod capture;
pub mod check;
pub mod client;
pub mod cluster;
pub mod diff;
pub mod files;
pub mod guard;
pub mod listener;
pub mod live;
pub mod mcp;
pub mod promql;
pub mod recording;
pub mod reload;
pub mod server;
pub mod stop;
pub mod tls;
pub mod watch;
