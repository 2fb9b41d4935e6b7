//! Monotonic totals since the server started, absorbed from frame-to-frame differences, with
//! label cardinality bounded: namespaces and destinations past the limits fold into [`OTHER`].
//! Uses the kernel's names, the judge's drop classification, `latency` for histograms and
//! `slots` for which destinations have series of their own.

use std::collections::{BTreeMap, BTreeSet};

use tracer_common::DestKey;

use super::{
    latency::{DestSeries, LatencyTotals},
    slots::{OwnListener, Slots},
    Limits, OTHER,
};
use crate::{
    judge::layers::{classify, DropClass},
    judge::report::{reason_label, Symbolize},
    kernel::names::KernelNames,
    kernel::snapshot::{counter_names, Snapshot},
};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct DropSeries {
    pub(super) reason: String,
    pub(super) layer: &'static str,
    /// Inode as text, or [`OTHER`].
    pub(super) netns: String,
}

/// Monotonic totals since the server started, built from frame-to-frame differences.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub(super) limits: Limits,
    /// Namespaces given series of their own (sticky).
    pub(super) kept_netns: BTreeSet<u32>,
    /// Distinct namespaces seen past the limit.
    pub(super) folded_netns: BTreeSet<u32>,
    pub(super) drops: BTreeMap<DropSeries, u64>,
    /// Layer of each (reason, location) seen, so a location is symbolised once.
    pub(super) layer_of: BTreeMap<(u32, u64), (String, &'static str)>,
    pub(super) retransmitted_segments: u64,
    pub(super) softirq_ns: BTreeMap<(u32, String), u64>,
    pub(super) probe_counters: BTreeMap<&'static str, u64>,
    /// Counters some interval did not know (see `Snapshot::counters_unknown`): their totals
    /// miss that interval, so their series are left out from then on (sticky).
    pub(super) probe_counters_unknown: BTreeSet<&'static str>,
    /// Per program: events it missed because another BPF program ran on that CPU.
    pub(super) recursion_misses: BTreeMap<String, u64>,
    pub(super) intervals: u64,
    /// Which destinations have histograms of their own (busiest recently; see `slots`).
    pub(super) slots: Slots,
    pub(super) rtt: BTreeMap<DestSeries, LatencyTotals>,
    pub(super) connect_time: BTreeMap<DestSeries, LatencyTotals>,
}

/// The metric's `layer` label for a drop: the runbook layer, or why it is not a loss.
fn layer_label(class: DropClass) -> &'static str {
    match class {
        DropClass::Loss { layer, .. } => layer.as_str(),
        DropClass::Noise { .. } => "noise",
        DropClass::NoListener => "no_listener",
        DropClass::Other { .. } => "other",
        DropClass::Unplaced => "unplaced",
    }
}

impl Totals {
    pub fn new(limits: Limits) -> Totals {
        Totals {
            limits,
            slots: Slots::new(limits.destinations, None),
            ..Totals::default()
        }
    }

    /// Totals that leave out the tracer's own listener (`serve --listen`): its scrapes and
    /// probes are not a destination of the node's workloads.
    pub fn excluding(limits: Limits, own: OwnListener) -> Totals {
        Totals {
            slots: Slots::new(limits.destinations, Some(own)),
            ..Totals::new(limits)
        }
    }

    fn netns_label(&mut self, inode: u32) -> String {
        if self.kept_netns.contains(&inode) {
            return inode.to_string();
        }
        if self.kept_netns.len() < self.limits.netns {
            self.kept_netns.insert(inode);
            return inode.to_string();
        }
        self.folded_netns.insert(inode);
        OTHER.to_owned()
    }

    fn own_series(key: &DestKey) -> DestSeries {
        DestSeries {
            netns: key.netns.to_string(),
            daddr: crate::judge::flows::dest_address(key),
            dport: key.dport.to_string(),
        }
    }

    fn other_series() -> DestSeries {
        DestSeries {
            netns: OTHER.to_owned(),
            daddr: OTHER.to_owned(),
            dport: OTHER.to_owned(),
        }
    }

    fn dest_series(&self, key: &DestKey) -> DestSeries {
        if self.slots.kept(key) {
            Self::own_series(key)
        } else {
            Self::other_series()
        }
    }

    /// A destination lost its slot: its totals move into `other` (which only grows) and its
    /// series goes.
    fn fold_into_other(&mut self, key: &DestKey) {
        let own = Self::own_series(key);
        for map in [&mut self.rtt, &mut self.connect_time] {
            if let Some(totals) = map.remove(&own) {
                map.entry(Self::other_series()).or_default().merge(&totals);
            }
        }
    }

    /// Adds what happened between two frames (`delta` = later.since(earlier)).
    pub fn absorb(&mut self, delta: &Snapshot, names: &KernelNames, symbols: &dyn Symbolize) {
        self.intervals += 1;
        // The slots go to the recently busiest destinations; the ones that lost theirs fold.
        let assignment = self.slots.update(delta.dests.iter());
        for key in &assignment.evicted {
            self.fold_into_other(key);
        }
        let dests = delta
            .dests
            .iter()
            .filter(|(_, d)| d.rtt_samples > 0 || d.connect_timed > 0);
        for (key, stats) in dests {
            if self.slots.excluded(key) {
                continue;
            }
            let series = self.dest_series(key);
            if stats.rtt_samples > 0 {
                self.rtt
                    .entry(series.clone())
                    .or_default()
                    .add(&stats.rtt_hist, stats.rtt_sum_us);
            }
            if stats.connect_timed > 0 {
                self.connect_time
                    .entry(series)
                    .or_default()
                    .add(&stats.connect_hist, stats.connect_sum_us);
            }
        }
        let mut keys: Vec<_> = delta.drops.iter().collect();
        // Deterministic admission order: biggest first, then by key.
        keys.sort_by(|a, b| {
            b.1.cmp(a.1)
                .then((a.0.netns, a.0.reason, a.0.location).cmp(&(
                    b.0.netns,
                    b.0.reason,
                    b.0.location,
                )))
        });
        for (key, count) in keys {
            let (reason, layer) = self
                .layer_of
                .entry((key.reason, key.location))
                .or_insert_with(|| {
                    let (reason, _) = reason_label(key.reason, names);
                    let layer = layer_label(classify(&reason, &symbols.label(key.location)));
                    (reason, layer)
                })
                .clone();
            let netns = self.netns_label(key.netns);
            *self
                .drops
                .entry(DropSeries {
                    reason,
                    layer,
                    netns,
                })
                .or_insert(0) += count;
        }
        self.retransmitted_segments += delta
            .flows
            .values()
            .map(|f| f.retransmitted_segments)
            .sum::<u64>();
        for ((cpu, vec), stats) in &delta.softirq {
            let name = names
                .softirq_vectors
                .get(vec)
                .cloned()
                .unwrap_or_else(|| format!("VEC{vec}"));
            *self.softirq_ns.entry((*cpu, name)).or_insert(0) += stats.total_ns;
        }
        for (name, index) in counter_names() {
            match delta.known_counter(index) {
                Some(v) => *self.probe_counters.entry(name).or_insert(0) += v,
                None => {
                    self.probe_counters_unknown.insert(name);
                }
            }
        }
        for (program, misses) in &delta.program_misses {
            *self.recursion_misses.entry(program.clone()).or_insert(0) += misses;
        }
    }

    /// A probe counter's total, `None` when some interval did not know it.
    pub(super) fn probe_counter(&self, name: &str) -> Option<u64> {
        if self.probe_counters_unknown.contains(name) {
            return None;
        }
        Some(self.probe_counters.get(name).copied().unwrap_or(0))
    }

    /// Drops counted for one reason, over every namespace (for tests and summaries).
    pub fn drops_with_reason(&self, reason: &str) -> u64 {
        self.drops
            .iter()
            .filter(|(k, _)| k.reason == reason)
            .map(|(_, v)| v)
            .sum()
    }
}
