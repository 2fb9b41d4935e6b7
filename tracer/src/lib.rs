//! tracer: which layer is losing the packets. Kernel programs count drops, retransmits and
//! softirq time; this crate loads them, reads the maps and explains what they saw.
//!
//! Data flows one way: `loader` (aya) → `snapshot` (plain copies of the maps) → `report`
//! (names from the running kernel) → JSON/YAML. `live` wires the steps together.

pub mod btf;
pub mod check;
pub mod cluster;
pub mod counters;
pub mod counterset;
pub mod dashboard;
pub mod diff;
pub mod document;
pub mod evidence;
pub mod facts;
pub mod flows;
pub mod format;
pub mod kallsyms;
pub mod layers;
pub mod live;
pub mod loader;
pub mod metrics;
pub mod netns;
pub mod pods;
pub mod probes;
#[cfg(test)]
mod recorded_kernels;
pub mod recording;
pub mod report;
pub mod rtnetlink;
pub mod server;
pub mod snapshot;
pub mod startup;
pub mod stop;
#[cfg(test)]
mod test_mutations;
#[cfg(test)]
mod test_netns;
pub mod tracefs;
pub mod tui;
pub mod verdict;
pub mod watch;
pub mod window;
