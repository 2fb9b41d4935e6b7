//! tracer: which layer is losing the packets. Kernel programs count drops, retransmits and
//! softirq time; this crate loads them, reads the maps and explains what they saw.
//!
//! The folders are the stages of one-way data flow; a stage uses only the stages above it:
//!
//! ```text
//! kernel/   probes into the running kernel: formats, BTF, kallsyms, the loader (only aya user), snapshots
//! node/     the node's own state: counters, facts, pods, namespaces
//! judge/    pure judging: layers, the probes' report, flows, windows, the verdict document
//! judge/verdict/  the D7 rules, one per root cause and cross-reference
//! present/  rendering: text summary, OpenMetrics, the terminal dashboard
//! modes/    the commands: live, watch, serve, cluster, diff, record, check
//! ```

pub mod judge;
pub mod kernel;
pub mod modes;
pub mod node;
pub mod present;
#[cfg(test)]
mod testkit;
