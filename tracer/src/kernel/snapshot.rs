//! Plain-data copies of the kernel maps at one instant, and the difference between two of them.
//! Pure: filled by the loader, consumed by the report; no aya, no clock, no I/O here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tracer_common::{
    counter, DestKey, DestStats, DropKey, ErrorKey, FlowKey, FlowStats, ResetKey, SoftirqStats,
    HIST_BUCKETS, LAT_BUCKETS,
};

/// Everything the programs have counted since they were loaded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Drop counts summed over CPUs.
    pub drops: HashMap<DropKey, u64>,
    /// Retransmit counters per flow (only flows still in the LRU map).
    pub flows: HashMap<FlowKey, FlowStats>,
    /// Softirq statistics by (cpu, vector).
    pub softirq: BTreeMap<(u32, u32), SoftirqStats>,
    /// Probe self-counters summed over CPUs, indexed by `tracer_common::counter`. The run
    /// counters (`counter::RUN_COUNTERS`) are the programs' own or the kernel's run counts
    /// ([`Snapshot::derive_run_counters`]).
    pub counters: Vec<u64>,
    /// Counters whose value is not known (a run counter left to the kernel whose run count
    /// could not be read): their entry in `counters` means nothing and reports leave it out.
    pub counters_unknown: BTreeSet<u32>,
    /// Per program: (name, run count, run time in ns), from the kernel's BPF statistics.
    pub program_costs: Vec<(String, u64, u64)>,
    /// Per program: events it missed because another BPF program was running on that CPU
    /// (the kernel's `recursion_misses`, counted whether or not run times are).
    pub program_misses: BTreeMap<String, u64>,
    /// RTT, connection outcomes and connect time per destination (entries still in the LRU).
    pub dests: HashMap<DestKey, DestStats>,
    /// Resets per flow, direction and reason.
    pub resets: HashMap<ResetKey, u64>,
    /// Socket errors per destination and errno.
    pub sock_errors: HashMap<ErrorKey, u64>,
    /// Entries in the destination map when it was read (before any namespace filter).
    pub dest_entries: u64,
    /// In a delta ([`Snapshot::since`]): destinations the LRU evicted in between (new keys
    /// inserted minus the growth of the map). Always 0 in a plain copy.
    pub dests_evicted: u64,
    /// In a delta: retransmitting flows the LRU flow map evicted in between (new flows
    /// inserted minus the growth of the map). Always 0 in a plain copy.
    pub flows_evicted: u64,
    /// Whether the per-destination maps were read (a window reads them at its ends only; the
    /// frames in between leave them empty).
    pub has_flow_maps: bool,
}

/// Sums one per-CPU counter vector.
pub fn sum_per_cpu(values: impl IntoIterator<Item = u64>) -> u64 {
    values.into_iter().fold(0u64, u64::wrapping_add)
}

fn sub_stats(end: &SoftirqStats, start: Option<&SoftirqStats>) -> SoftirqStats {
    let Some(start) = start else { return *end };
    let mut hist = [0u64; HIST_BUCKETS];
    for (i, slot) in hist.iter_mut().enumerate() {
        *slot = end.hist[i].saturating_sub(start.hist[i]);
    }
    SoftirqStats {
        runs: end.runs.saturating_sub(start.runs),
        timed_runs: end.timed_runs.saturating_sub(start.timed_runs),
        total_ns: end.total_ns.saturating_sub(start.total_ns),
        hist,
    }
}

/// `end − start` of one destination's counters (histogram buckets are `u32` and wrap).
pub fn dest_delta(end: &DestStats, start: Option<&DestStats>) -> DestStats {
    let Some(s) = start else { return *end };
    let mut d = DestStats {
        rtt_samples: end.rtt_samples.saturating_sub(s.rtt_samples),
        rtt_sum_us: end.rtt_sum_us.saturating_sub(s.rtt_sum_us),
        connects: end.connects.saturating_sub(s.connects),
        established: end.established.saturating_sub(s.established),
        failed: end.failed.saturating_sub(s.failed),
        closed: end.closed.saturating_sub(s.closed),
        connect_timed: end.connect_timed.saturating_sub(s.connect_timed),
        connect_sum_us: end.connect_sum_us.saturating_sub(s.connect_sum_us),
        ..DestStats::default()
    };
    // An entry evicted and re-created in between has smaller totals: take it as new.
    if end.rtt_sum_us < s.rtt_sum_us || end.connects < s.connects || end.closed < s.closed {
        return *end;
    }
    for i in 0..LAT_BUCKETS {
        d.rtt_hist[i] = end.rtt_hist[i].wrapping_sub(s.rtt_hist[i]);
        d.connect_hist[i] = end.connect_hist[i].wrapping_sub(s.connect_hist[i]);
    }
    // The sample count is the histogram's (whose buckets may have wrapped).
    d.rtt_samples = d.rtt_hist.iter().map(|c| u64::from(*c)).sum();
    d
}

fn dest_is_empty(d: &DestStats) -> bool {
    d.rtt_samples + d.connects + d.established + d.failed + d.closed == 0
}

fn count_delta<K: Copy + Eq + std::hash::Hash>(
    end: &HashMap<K, u64>,
    start: &HashMap<K, u64>,
) -> HashMap<K, u64> {
    end.iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(start.get(k).copied().unwrap_or(0));
            (d > 0).then_some((*k, d))
        })
        .collect()
}

impl Snapshot {
    /// What happened between `start` and `self` (counters only grow in the maps; a flow evicted
    /// and re-inserted in between shows its new count, never a negative one).
    pub fn since(&self, start: &Snapshot) -> Snapshot {
        let drops = self
            .drops
            .iter()
            .filter_map(|(k, v)| {
                let d = v.saturating_sub(start.drops.get(k).copied().unwrap_or(0));
                (d > 0).then_some((*k, d))
            })
            .collect();
        let flows = self
            .flows
            .iter()
            .filter_map(|(k, v)| {
                let s = start.flows.get(k).copied().unwrap_or_default();
                let d = FlowStats {
                    retransmits: v.retransmits.saturating_sub(s.retransmits),
                    retransmitted_segments: v
                        .retransmitted_segments
                        .saturating_sub(s.retransmitted_segments),
                    synack_retransmits: v.synack_retransmits.saturating_sub(s.synack_retransmits),
                    failed_attempts: v.failed_attempts.saturating_sub(s.failed_attempts),
                    last_state: v.last_state,
                    _pad: 0,
                };
                (d.retransmits + d.synack_retransmits + d.failed_attempts > 0).then_some((*k, d))
            })
            .collect();
        let softirq = self
            .softirq
            .iter()
            .map(|(k, v)| (*k, sub_stats(v, start.softirq.get(k))))
            .collect();
        let counters = self
            .counters
            .iter()
            .enumerate()
            .map(|(i, v)| v.saturating_sub(start.counters.get(i).copied().unwrap_or(0)))
            .collect();
        let counters_unknown = self
            .counters_unknown
            .union(&start.counters_unknown)
            .copied()
            .collect();
        let program_costs = self
            .program_costs
            .iter()
            .map(|(name, runs, ns)| {
                let (r0, n0) = start
                    .program_costs
                    .iter()
                    .find(|(n, _, _)| n == name)
                    .map_or((0, 0), |(_, r, t)| (*r, *t));
                (name.clone(), runs.saturating_sub(r0), ns.saturating_sub(n0))
            })
            .collect();
        let program_misses = self
            .program_misses
            .iter()
            .map(|(name, n)| {
                let before = start.program_misses.get(name).copied().unwrap_or(0);
                (name.clone(), n.saturating_sub(before))
            })
            .collect();
        // Per-destination deltas only between two copies that both read those maps.
        let flow_maps = self.has_flow_maps && start.has_flow_maps;
        let dests = self
            .dests
            .iter()
            .filter(|_| flow_maps)
            .filter_map(|(k, v)| {
                let d = dest_delta(v, start.dests.get(k));
                (!dest_is_empty(&d)).then_some((*k, d))
            })
            .collect();
        let inserts = self
            .counter(counter::DEST_INSERTS)
            .saturating_sub(start.counter(counter::DEST_INSERTS));
        let growth = self.dest_entries.saturating_sub(start.dest_entries);
        let flow_inserts = self
            .counter(counter::FLOW_INSERTS)
            .saturating_sub(start.counter(counter::FLOW_INSERTS));
        let flows_evicted =
            flow_inserts.saturating_sub(self.flows.len().saturating_sub(start.flows.len()) as u64);
        Snapshot {
            drops,
            flows,
            softirq,
            counters,
            counters_unknown,
            program_costs,
            program_misses,
            dests,
            resets: if flow_maps {
                count_delta(&self.resets, &start.resets)
            } else {
                HashMap::new()
            },
            sock_errors: if flow_maps {
                count_delta(&self.sock_errors, &start.sock_errors)
            } else {
                HashMap::new()
            },
            dest_entries: self.dest_entries,
            dests_evicted: if flow_maps {
                inserts.saturating_sub(growth)
            } else {
                0
            },
            has_flow_maps: flow_maps,
            flows_evicted,
        }
    }

    /// The network namespaces (inodes) where the probes counted a drop, a retransmission or a
    /// reset between `start` and `self` (resets only when both read the per-destination maps);
    /// 0, a namespace the probe could not read, is left out.
    pub fn active_netns(&self, start: &Snapshot) -> BTreeSet<u32> {
        self.active_netns_counting(start, |_| true)
    }

    /// [`Snapshot::active_netns`], where a drop counts as activity only when `counts(key)` says
    /// so (the caller leaves out drops that never decide a verdict, such as multicast not for
    /// this host: a new namespace's IPv6 router solicitations and MLD reports).
    pub fn active_netns_counting(
        &self,
        start: &Snapshot,
        mut counts: impl FnMut(&DropKey) -> bool,
    ) -> BTreeSet<u32> {
        let mut out = BTreeSet::new();
        for (key, value) in &self.drops {
            if start.drops.get(key) != Some(value) && !out.contains(&key.netns) && counts(key) {
                out.insert(key.netns);
            }
        }
        for (key, value) in &self.flows {
            if start.flows.get(key) != Some(value) {
                out.insert(key.netns);
            }
        }
        if self.has_flow_maps && start.has_flow_maps {
            for (key, value) in &self.resets {
                if start.resets.get(key) != Some(value) {
                    out.insert(key.flow.netns);
                }
            }
        }
        out.remove(&0);
        out
    }

    /// A self-counter by index (0 when absent).
    pub fn counter(&self, index: u32) -> u64 {
        self.counters.get(index as usize).copied().unwrap_or(0)
    }

    /// A self-counter by index, `None` when its value is not known (see
    /// [`Snapshot::counters_unknown`]).
    pub fn known_counter(&self, index: u32) -> Option<u64> {
        (!self.counters_unknown.contains(&index)).then(|| self.counter(index))
    }

    /// Fills the run counters (`counter::RUN_COUNTERS`) from the kernel's run count of each
    /// program, for a session whose programs do not count their own runs. `runs` has every
    /// attached program: `Some(run_cnt)` summed over its loaded hook variants, `None` when it
    /// could not be read (the counter is then unknown, never 0). A program not in `runs` is
    /// not attached and ran 0 times, as its counter in the map says.
    ///
    /// `run_cnt` counts for a program's lifetime while run-time statistics are on. Each
    /// session loads its own programs after taking the statistics descriptor, so it counts
    /// every run since the session started, the span the programs' own counters cover; a
    /// window's delta ([`Snapshot::since`]) subtracts two of these like any other counter.
    pub fn derive_run_counters(&mut self, runs: &BTreeMap<String, Option<u64>>) {
        if self.counters.len() < counter::COUNT as usize {
            self.counters.resize(counter::COUNT as usize, 0);
        }
        for (index, program) in counter::RUN_COUNTERS {
            match runs.get(program) {
                Some(Some(n)) => self.counters[index as usize] = *n,
                Some(None) => {
                    self.counters_unknown.insert(index);
                }
                None => {}
            }
        }
    }

    /// Keeps only what happened in network namespace `inode`. Softirq time is per CPU, not per
    /// namespace, and is kept whole.
    pub fn only_netns(mut self, inode: u32) -> Snapshot {
        self.drops.retain(|k, _| k.netns == inode);
        self.flows.retain(|k, _| k.netns == inode);
        self.dests.retain(|k, _| k.netns == inode);
        self.resets.retain(|k, _| k.flow.netns == inode);
        self.sock_errors.retain(|k, _| k.dest.netns == inode);
        self
    }
}

/// Names of the self-counters, in index order, for reports.
pub fn counter_names() -> [(&'static str, u32); counter::COUNT as usize] {
    [
        ("kfree_skb_events", counter::KFREE_SKB_EVENTS),
        ("drops_map_full", counter::DROPS_MAP_FULL),
        ("retransmit_events", counter::RETRANSMIT_EVENTS),
        ("retransmit_failed_attempts", counter::RETRANSMIT_FAILED),
        ("synack_retransmit_events", counter::SYNACK_EVENTS),
        ("flows_insert_failed", counter::FLOWS_INSERT_FAILED),
        ("softirq_unpaired_exits", counter::SOFTIRQ_UNPAIRED),
        ("netns_unknown", counter::NETNS_UNKNOWN),
        ("read_errors", counter::READ_ERRORS),
        ("tcp_probe_events", counter::TCP_PROBE_EVENTS),
        ("sock_state_events", counter::STATE_EVENTS),
        ("reset_sent_events", counter::RESET_SENT_EVENTS),
        ("reset_received_events", counter::RESET_RECEIVED_EVENTS),
        ("sock_error_events", counter::ERROR_REPORT_EVENTS),
        ("destinations_inserted", counter::DEST_INSERTS),
        ("destinations_insert_failed", counter::DESTS_INSERT_FAILED),
        (
            "resets_or_errors_insert_failed",
            counter::RESETS_INSERT_FAILED,
        ),
        (
            "sock_errors_netns_unmatched",
            counter::ERROR_NETNS_UNMATCHED,
        ),
        ("connect_start_missing", counter::CONNECT_START_MISSING),
        ("flows_inserted", counter::FLOW_INSERTS),
        ("drop_slot_takeovers", counter::DROP_SLOT_TAKEOVERS),
        ("rtt_unmeasured_runs", counter::RTT_UNMEASURED),
    ]
}

/// A flow key's address words as bytes, in the order the kernel stored them.
fn addr_bytes(words: &[u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, w) in words.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    out
}

/// Decodes a flow key's addresses.
pub fn flow_addresses(key: &tracer_common::FlowKey) -> (&'static str, String, String) {
    let (s, d) = (addr_bytes(&key.saddr), addr_bytes(&key.daddr));
    match key.family {
        tracer_common::FAMILY_INET => (
            "ipv4",
            std::net::Ipv4Addr::new(s[0], s[1], s[2], s[3]).to_string(),
            std::net::Ipv4Addr::new(d[0], d[1], d[2], d[3]).to_string(),
        ),
        tracer_common::FAMILY_INET6 => (
            "ipv6",
            std::net::Ipv6Addr::from(s).to_string(),
            std::net::Ipv6Addr::from(d).to_string(),
        ),
        _ => ("unknown", String::new(), String::new()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn drop_key(reason: u32, netns: u32) -> DropKey {
        DropKey {
            reason,
            netns,
            location: 0xffff_ffff_8100_0000,
        }
    }

    #[test]
    fn since_subtracts_and_drops_unchanged_entries() {
        let mut start = Snapshot::default();
        start.drops.insert(drop_key(3, 1), 5);
        start.drops.insert(drop_key(12, 1), 7);
        start.counters = vec![10, 0, 4];
        let mut end = start.clone();
        end.drops.insert(drop_key(3, 1), 12);
        end.drops.insert(drop_key(5, 2), 1);
        end.counters = vec![25, 0, 4];
        let d = end.since(&start);
        assert_eq!(d.drops.get(&drop_key(3, 1)), Some(&7));
        assert_eq!(d.drops.get(&drop_key(5, 2)), Some(&1));
        assert!(!d.drops.contains_key(&drop_key(12, 1)));
        assert_eq!(d.counter(0), 15);
        assert_eq!(d.counter(2), 0);
        assert_eq!(d.counter(99), 0);
    }

    #[test]
    fn active_netns_are_those_whose_counts_moved() {
        let mut start = Snapshot::default();
        start.drops.insert(drop_key(3, 1), 5);
        start.drops.insert(drop_key(3, 2), 5);
        let mut end = start.clone();
        assert!(end.active_netns(&start).is_empty());
        end.drops.insert(drop_key(3, 2), 6);
        end.drops.insert(drop_key(7, 9), 1);
        end.drops.insert(drop_key(7, 0), 4);
        let flow = FlowKey {
            netns: 4,
            family: 2,
            sport: 1,
            dport: 2,
            _pad: 0,
            saddr: [0; 4],
            daddr: [0; 4],
        };
        end.flows.insert(flow, FlowStats::default());
        let reset = ResetKey {
            flow: FlowKey { netns: 5, ..flow },
            reason: 0,
            direction: 0,
        };
        end.resets.insert(reset, 1);
        let active: Vec<u32> = end.active_netns(&start).into_iter().collect();
        assert_eq!(
            active,
            vec![2, 4, 9],
            "resets count only between two full reads"
        );
        start.has_flow_maps = true;
        end.has_flow_maps = true;
        let active: Vec<u32> = end.active_netns(&start).into_iter().collect();
        assert_eq!(active, vec![2, 4, 5, 9]);
        // Drops of reason 7 do not count: namespace 9 (only those) is left out; 2 still moved
        // by reason 3, and 4 and 5 by their flows and resets.
        let active: Vec<u32> = end
            .active_netns_counting(&start, |key| key.reason != 7)
            .into_iter()
            .collect();
        assert_eq!(active, vec![2, 4, 5]);
    }

    #[test]
    fn since_never_goes_negative_after_eviction() {
        let key = FlowKey {
            netns: 1,
            family: 2,
            sport: 1,
            dport: 2,
            _pad: 0,
            saddr: [1, 0, 0, 0],
            daddr: [2, 0, 0, 0],
        };
        let mut start = Snapshot::default();
        start.flows.insert(
            key,
            FlowStats {
                retransmits: 50,
                ..Default::default()
            },
        );
        let mut end = Snapshot::default();
        // Evicted and re-inserted with a smaller count.
        end.flows.insert(
            key,
            FlowStats {
                retransmits: 3,
                ..Default::default()
            },
        );
        let d = end.since(&start);
        assert!(d.flows.is_empty());
    }

    #[test]
    fn softirq_delta_and_netns_filter() {
        let mut s0 = Snapshot::default();
        let mut a = SoftirqStats {
            runs: 2,
            timed_runs: 2,
            total_ns: 100,
            ..Default::default()
        };
        a.hist[6] = 2;
        s0.softirq.insert((1, 3), a);
        let mut s1 = s0.clone();
        let mut b = a;
        // 40 more runs, 3 of them timed (sampled): the delta keeps both counts.
        b.runs = 42;
        b.timed_runs = 5;
        b.total_ns = 1100;
        b.hist[9] = 3;
        s1.softirq.insert((1, 3), b);
        s1.drops.insert(drop_key(3, 7), 4);
        s1.drops.insert(drop_key(3, 8), 9);
        let d = s1.since(&s0).only_netns(7);
        let st = d.softirq.get(&(1, 3)).unwrap();
        assert_eq!(
            (st.runs, st.timed_runs, st.total_ns, st.hist[6], st.hist[9]),
            (40, 3, 1000, 0, 3)
        );
        assert_eq!(d.drops.len(), 1);
        assert_eq!(d.drops.get(&drop_key(3, 7)), Some(&4));
    }

    fn dest(netns: u32, port: u16) -> DestKey {
        DestKey {
            netns,
            family: 2,
            dport: port,
            daddr: [u32::from_ne_bytes([198, 18, 0, 2]), 0, 0, 0],
        }
    }

    /// The LRU bound: destinations inserted beyond what the map kept are counted as evicted,
    /// and histogram buckets subtract across a `u32` wrap.
    #[test]
    fn dest_deltas_count_evictions_and_wrap_buckets() {
        let mut start = Snapshot {
            counters: vec![0; counter::COUNT as usize],
            dest_entries: 4090,
            has_flow_maps: true,
            ..Default::default()
        };
        start.counters[counter::DEST_INSERTS as usize] = 4090;
        let mut a = DestStats {
            rtt_samples: 10,
            rtt_sum_us: 1_000,
            ..Default::default()
        };
        a.rtt_hist[60] = u32::MAX - 1;
        start.dests.insert(dest(1, 80), a);
        let mut end = start.clone();
        // 106 new destinations, but the map holds 4096: 100 were evicted.
        end.counters[counter::DEST_INSERTS as usize] = 4196;
        end.dest_entries = 4096;
        let mut b = a;
        b.rtt_samples = 15;
        b.rtt_sum_us = 1_500;
        b.rtt_hist[60] = 3; // wrapped: +5
        end.dests.insert(dest(1, 80), b);
        end.dests.insert(
            dest(2, 443),
            DestStats {
                failed: 2,
                ..Default::default()
            },
        );
        let d = end.since(&start);
        assert_eq!(d.dests_evicted, 100);
        assert_eq!(d.dest_entries, 4096);
        let got = d.dests[&dest(1, 80)];
        assert_eq!((got.rtt_samples, got.rtt_hist[60]), (5, 5));
        assert_eq!(d.dests[&dest(2, 443)].failed, 2);
        // A copy that did not read the per-destination maps gives no destination delta.
        let lean = Snapshot {
            has_flow_maps: false,
            ..end.clone()
        };
        let none = lean.since(&start);
        assert!(none.dests.is_empty() && none.dests_evicted == 0);
        // Filtering by namespace keeps only that namespace's destinations.
        let only = d.only_netns(2);
        assert_eq!(only.dests.len(), 1);
        assert!(only.dests.contains_key(&dest(2, 443)));
    }

    /// Issue 15: where the kernel counts runs, the run counters are the attached programs'
    /// run counts; a program not attached keeps its 0; one whose count could not be read is
    /// unknown, and stays unknown in any delta it is an end of.
    #[test]
    fn run_counters_come_from_the_kernels_run_counts() {
        let read = |kfree: u64, probe: Option<u64>| {
            let mut snap = Snapshot {
                counters: vec![0; counter::COUNT as usize],
                ..Snapshot::default()
            };
            // In-program counters that are not run counts are left alone.
            snap.counters[counter::READ_ERRORS as usize] = 4;
            let runs = BTreeMap::from([
                (tracer_common::PROG_KFREE_SKB.to_owned(), Some(kfree)),
                (tracer_common::PROG_TCP_PROBE.to_owned(), probe),
                (tracer_common::PROG_INET_SOCK_SET_STATE.to_owned(), Some(99)),
            ]);
            snap.derive_run_counters(&runs);
            snap
        };
        let start = read(1_000, Some(50));
        assert_eq!(start.counter(counter::KFREE_SKB_EVENTS), 1_000);
        assert_eq!(start.known_counter(counter::TCP_PROBE_EVENTS), Some(50));
        // Not a run counter (TCP events only, counted after the protocol filter).
        assert_eq!(start.counter(counter::STATE_EVENTS), 0);
        assert_eq!(start.counter(counter::READ_ERRORS), 4);
        // Not attached: no run, counted as such.
        assert_eq!(start.known_counter(counter::RETRANSMIT_EVENTS), Some(0));
        let end = read(1_700, Some(80));
        let d = end.since(&start);
        assert_eq!(d.known_counter(counter::KFREE_SKB_EVENTS), Some(700));
        assert_eq!(d.known_counter(counter::TCP_PROBE_EVENTS), Some(30));
        // tcp_probe's count unreadable at either end: unknown in the window, never 0.
        let unread = read(1_700, None);
        assert_eq!(unread.known_counter(counter::TCP_PROBE_EVENTS), None);
        for d in [unread.since(&start), end.since(&unread)] {
            assert_eq!(d.known_counter(counter::TCP_PROBE_EVENTS), None);
            assert!(d.known_counter(counter::KFREE_SKB_EVENTS).is_some());
        }
    }

    #[test]
    fn counter_names_cover_every_index_once() {
        let names = counter_names();
        let mut seen: Vec<u32> = names.iter().map(|(_, i)| *i).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..counter::COUNT).collect::<Vec<_>>());
    }

    #[test]
    fn evicted_retransmitting_flows_are_inserts_minus_the_maps_growth() {
        let flow = |port: u16| FlowKey {
            netns: 1,
            family: tracer_common::FAMILY_INET,
            sport: port,
            dport: 80,
            _pad: 0,
            saddr: [0; 4],
            daddr: [0; 4],
        };
        let with = |ports: std::ops::Range<u16>, inserts: u64| {
            let mut counters = vec![0; counter::COUNT as usize];
            counters[counter::FLOW_INSERTS as usize] = inserts;
            Snapshot {
                flows: ports
                    .map(|p| {
                        (
                            flow(p),
                            FlowStats {
                                retransmits: 1,
                                ..FlowStats::default()
                            },
                        )
                    })
                    .collect(),
                counters,
                ..Snapshot::default()
            }
        };
        // 10 flows kept at the start, 12 at the end, 50 new flows inserted in between: the
        // map grew by 2, so 48 were evicted.
        let d = with(100..112, 60).since(&with(0..10, 10));
        assert_eq!(d.flows_evicted, 48);
        // No inserts, no evictions (a map that shrank cannot make a negative count).
        assert_eq!(with(0..5, 10).since(&with(0..10, 10)).flows_evicted, 0);
    }
}
