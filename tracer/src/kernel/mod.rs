//! The running kernel: what it offers (tracefs formats, BTF, kallsyms), which probes can attach
//! and how (startup), loading them (loader, prog_stats and, for `tracer capture`, capture: the only modules that touch aya;
//! map_batch, the loader's batch reads of a hash map, uses aya's kernel bindings only) and plain copies of
//! their maps (snapshot; drop_slots adds the drops and rtt_pending the RTT samples the kernel
//! holds back per CPU). Uses nothing else of this crate.

pub mod btf;
pub mod capture;
pub mod drop_slots;
pub mod emulate;
pub mod format;
pub mod hooks;
pub mod kallsyms;
pub mod loader;
pub mod map_batch;
pub mod names;
pub mod probes;
pub mod prog_stats;
pub mod retrans_slots;
pub mod rtt_pending;
pub mod snapshot;
pub mod startup;
pub mod tracefs;
