//! The commands: a live window (live), rolling windows (watch), the sidecar (server), the fleet
//! (cluster, diff), recordings and the files modes read and write (`-`, whole-or-nothing
//! recordings), `tracer check`, and the shared stop signal. The only stage that
//! wires the others together.

pub mod capture;
pub mod check;
pub mod cluster;
pub mod diff;
pub mod files;
pub mod live;
pub mod recording;
pub mod server;
pub mod stop;
pub mod watch;
