//! The Prometheus exposition of `tracer serve`: what the kernel programs counted since the
//! server started, the rolling verdict, and the probes' health.
//!
//! Pure: [`Totals`] absorbs the difference between two frames (so counters only ever grow, even
//! when a kernel map entry is evicted and comes back), and [`render`] turns totals plus the
//! latest judged window into the OpenMetrics text format with `prometheus-client`. No clock, no
//! kernel, no I/O here: the server calls both once a second and serves the cached text.
//!
//! Label cardinality is bounded: at most [`Limits::netns`] network namespaces get series of
//! their own (first come, kept for the server's life so counters stay monotonic; the rest are
//! summed under `netns="other"`), and at most [`Limits::flows`] flows are shown, the top ones of
//! the rolling window. RTT and connect-time histograms are kept for at most
//! [`Limits::destinations`] destinations (the busiest of the last minute or so, never the
//! tracer's own listener; the rest, and any that lost its slot, summed under `daddr="other"`:
//! see `slots`), on fixed power-of-two bounds that are edges of the kernel's buckets, so the
//! cumulative counts are exact.
//!
//! Every series carries a `node` label (`serve --node-name`), so one Prometheus scraping a
//! DaemonSet tells the nodes apart whatever its relabelling.
//!
//! Parts: `onset` (when the verdict's loss began, kept steady while it lasts), `totals` (absorbing frames, folding labels past the limits), `slots` (which
//! destinations have series of their own), `latency` (per-destination histograms), `families` (every metric's name, help and series) and `encoding` (the
//! `prometheus-client` text). This module holds the shared types and [`render`].

mod encoding;
mod families;
mod latency;
mod onset;
mod slots;
#[cfg(test)]
mod tests;
mod totals;

use std::collections::BTreeMap;

use prometheus_client::registry::Registry;

use crate::{judge::document::VerdictDocument, kernel::probes::ProbeStatus};
use encoding::Families;
use families::{families, histogram_families};
pub use onset::{Onset, OnsetTracker};
pub use slots::OwnListener;
pub use totals::Totals;

/// A network namespace's Kubernetes identity, when it is a pod's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodName {
    pub namespace: String,
    pub pod: String,
}

/// How many label values of each kind the exposition may carry.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Network namespaces with series of their own.
    pub netns: usize,
    /// Flows shown (top by retransmitted segments in the rolling window).
    pub flows: usize,
    /// Destinations with RTT / connect-time histograms of their own.
    pub destinations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            netns: 64,
            flows: 20,
            destinations: 50,
        }
    }
}

/// Label value for namespaces past the limit.
pub const OTHER: &str = "other";

/// Everything one exposition shows.
pub struct Exposition<'a> {
    pub totals: &'a Totals,
    /// The rolling window's verdict.
    pub verdict: &'a VerdictDocument,
    pub window_s: f64,
    pub uptime_s: f64,
    pub probes: &'a [ProbeStatus],
    pub kernel: &'a str,
    /// Pods by network-namespace inode.
    pub pods: &'a BTreeMap<u32, PodName>,
    /// The node's name (`serve --node-name`): the `node` label of every series.
    pub node: &'a str,
    /// When the rolling verdict's loss began (None when healthy or without a wall clock).
    pub onset: Option<&'a Onset>,
    /// The host interfaces' `rx_crc_errors` (the kernel's own counters), by device.
    pub nic_rx_crc_errors: &'a BTreeMap<String, u64>,
}

/// The OpenMetrics text of one scrape.
pub fn render(x: &Exposition) -> String {
    let mut registry = Registry::default();
    let node = [("node".to_owned(), x.node.to_owned())];
    let mut plain = families(x);
    for f in &mut plain {
        for (labels, _) in &mut f.series {
            labels.splice(0..0, node.iter().cloned());
        }
    }
    let mut histograms = histogram_families(x);
    for f in &mut histograms {
        for (labels, _) in &mut f.series {
            labels.splice(0..0, node.iter().cloned());
        }
    }
    registry.register_collector(Box::new(Families(plain, histograms)));
    let mut text = String::new();
    // Writing to a String cannot fail; an encoder error would be a bug in a label.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        return format!("# tracer: could not encode the metrics: {e}\n# EOF\n");
    }
    text
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
