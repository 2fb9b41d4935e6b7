//! `tracer capture`: the dropped packets themselves, each with its reason. A capture program on
//! `skb:kfree_skb` (attached only while the capture runs) filters in the kernel and copies
//! headers into a ring buffer; this mode writes them as pcapng with the drop reason, kernel
//! location, namespace and pod as each packet's comment, and prints a tcpdump_analyze-style
//! summary. `filter` turns the command line into the kernel's filter, `pcapng` writes the file,
//! `summary` counts, `run` drives a capture.

pub mod armed;
pub mod command;
pub mod filter;
pub mod http;
pub mod pcapng;
pub mod run;
pub mod summary;
