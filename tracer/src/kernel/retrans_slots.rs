//! The retransmissions the kernel holds back per CPU (`RETRANS_SLOTS`, see
//! [`tracer_common::RetransSlot`]) added to the flows read from `RETRANS_FLOWS`, so that a
//! snapshot counts every retransmission once, and never fewer than the snapshot before.
//! Pure: the loader reads the map and the slots and hands them here; no aya, no I/O.
//!
//! The same argument as `rtt_pending` (whose map is an LRU too): the loader reads the map
//! first, then every CPU's slots twice, under one lock with the merge. A slot whose `seq` is
//! even and the same in both reads held the same counts, still pending, from before the first
//! read to after it: they are not in the map as read (the kernel moves them only under an odd
//! `seq`), so adding them counts each once. A slot that moved its counts in between (or was
//! moving them) is left out: they may be in the map as read, or not yet. So a snapshot can
//! only miss retransmissions, never count one twice; what it missed is what the snapshot before
//! may already have counted from the slot. [`FlowMerge`] remembers, for every flow that had
//! pending counts, what the last snapshot gave, and gives at least that, counter by counter,
//! while the map's own entry has not gone back (an entry evicted and created again starts
//! over, as without the slots). A flow whose counts were all pending and moved into the map
//! after the map was read is in neither: it gets what it had, once. Once the retransmissions
//! stop, every slot reads stable and the counts are exact.
//!
//! A flow whose counts are all still in slots is in the snapshot without having been inserted
//! into the map (`flows_inserted`), so the evictions derived from inserts and entries
//! (`Snapshot::since`) can be under-counted by at most the slots (two per CPU) until it is.
//!
//! Like the drop slots, this needs the kernel's stores seen in program order and the reads
//! done in order: true on x86-64, not guaranteed on aarch64 (not tested there).

use std::collections::HashMap;

use tracer_common::{FlowKey, FlowStats, RetransSlot};

use super::drop_slots::stable_slots;

/// What a flow was in the last snapshot, for flows that had pending counts.
#[derive(Debug, Clone, PartialEq)]
struct Given {
    /// The map entry's own total (retransmits + failed attempts + SYN-ACKs, without pending
    /// counts); `None`: not in the map as read.
    map_total: Option<u64>,
    /// Given while in neither the map nor a stable slot: given so at most once.
    absent: bool,
    /// What the snapshot gave.
    stats: FlowStats,
}

/// Adds pending retransmissions to the flows of a snapshot; keeps what it gave per flow with
/// pending counts, so the next snapshot never gives less (module doc).
#[derive(Debug, Default)]
pub struct FlowMerge {
    given: HashMap<FlowKey, Given>,
}

/// The part of an entry that only grows while the entry lives.
fn total(stats: &FlowStats) -> u64 {
    stats
        .retransmits
        .wrapping_add(stats.failed_attempts)
        .wrapping_add(stats.synack_retransmits)
}

impl FlowMerge {
    /// Adds to `flows` (the map as read) the counts of every slot that read the same in `first`
    /// and `second` (the slots of every CPU, read after the map, in the same order), then gives
    /// each flow at least what the last call gave it, counter by counter. Flows with pending
    /// counts only are added.
    pub fn merge(
        &mut self,
        flows: &mut HashMap<FlowKey, FlowStats>,
        first: &[RetransSlot],
        second: &[RetransSlot],
    ) {
        let stable: Vec<&RetransSlot> = stable_slots(
            first,
            second,
            |s| s.seq,
            |a, b| a.key == b.key && (a.retransmits != 0 || a.failed_attempts != 0),
        )
        .collect();
        let map_totals: HashMap<FlowKey, u64> = self
            .given
            .keys()
            .chain(stable.iter().map(|s| &s.key))
            .filter_map(|key| flows.get(key).map(|f| (*key, total(f))))
            .collect();
        for s in &stable {
            let stats = flows.entry(s.key).or_default();
            stats.retransmits = stats.retransmits.wrapping_add(s.retransmits);
            stats.retransmitted_segments = stats
                .retransmitted_segments
                .wrapping_add(s.retransmitted_segments);
            stats.failed_attempts = stats.failed_attempts.wrapping_add(s.failed_attempts);
            if s.last_state != 0 {
                stats.last_state = s.last_state;
            }
        }
        let mut lifted: Vec<FlowKey> = Vec::new();
        let mut absent: Vec<FlowKey> = Vec::new();
        for (key, before) in &self.given {
            let map_total = map_totals.get(key).copied();
            // The entry went back, or is gone: evicted (and maybe created again), it starts over.
            if let Some(before_total) = before.map_total {
                if map_total.is_none_or(|now| now < before_total) {
                    continue;
                }
            }
            if !flows.contains_key(key) {
                if before.absent {
                    continue;
                }
                absent.push(*key);
            }
            let stats = flows.entry(*key).or_default();
            let was = &before.stats;
            if stats.retransmits < was.retransmits
                || stats.retransmitted_segments < was.retransmitted_segments
                || stats.failed_attempts < was.failed_attempts
                || stats.synack_retransmits < was.synack_retransmits
            {
                // Counts moved into the map after it was read: give what the last snapshot
                // gave, the rest next time.
                stats.retransmits = stats.retransmits.max(was.retransmits);
                stats.retransmitted_segments =
                    stats.retransmitted_segments.max(was.retransmitted_segments);
                stats.failed_attempts = stats.failed_attempts.max(was.failed_attempts);
                stats.synack_retransmits = stats.synack_retransmits.max(was.synack_retransmits);
                if stats.last_state == 0 {
                    stats.last_state = was.last_state;
                }
                lifted.push(*key);
            }
        }
        let mut given = HashMap::with_capacity(stable.len() + lifted.len());
        for key in stable.iter().map(|s| s.key).chain(lifted) {
            let Some(stats) = flows.get(&key) else {
                continue;
            };
            given.entry(key).or_insert_with(|| Given {
                map_total: map_totals.get(&key).copied(),
                absent: absent.contains(&key),
                stats: *stats,
            });
        }
        self.given = given;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sport: u16) -> FlowKey {
        FlowKey {
            netns: 4026531840,
            family: 2,
            sport,
            dport: 5201,
            _pad: 0,
            saddr: [0x0134_12c6, 0, 0, 0],
            daddr: [0x0234_12c6, 0, 0, 0],
        }
    }

    fn slot(seq: u32, key: FlowKey, retransmits: u64, segments: u64) -> RetransSlot {
        RetransSlot {
            seq,
            busy: 0,
            key,
            last_state: 1,
            retransmits,
            retransmitted_segments: segments,
            failed_attempts: 0,
        }
    }

    fn stats(retransmits: u64, segments: u64) -> FlowStats {
        FlowStats {
            retransmits,
            retransmitted_segments: segments,
            last_state: 1,
            ..FlowStats::default()
        }
    }

    /// Stable slots add their counts; a slot read mid-move (odd `seq`) or moved between the
    /// reads is left out; a flow with pending counts only is added.
    #[test]
    fn stable_slots_add_and_moving_ones_are_left_out() {
        let mut flows = HashMap::from([(key(1), stats(10, 30))]);
        let first = [
            slot(2, key(1), 5, 9), // stable: +5 / +9
            slot(4, key(1), 3, 3), // moved before the second read
            slot(7, key(1), 9, 9), // odd: moving
            slot(6, key(2), 2, 4), // stable, not in the map yet
            slot(0, key(3), 0, 0), // never used
        ];
        let mut second = first;
        second[1] = slot(6, key(9), 1, 1);
        let mut merge = FlowMerge::default();
        merge.merge(&mut flows, &first, &second);
        assert_eq!(flows[&key(1)], stats(15, 39));
        assert_eq!(flows[&key(2)], stats(2, 4));
        assert_eq!(flows.len(), 2);
    }

    /// A slot's counts moved into the map after the map was read (and the slot then taken by
    /// another flow): the flow keeps what the last snapshot gave; exact again once quiet.
    #[test]
    fn counts_moved_after_the_map_read_never_go_back() {
        let mut merge = FlowMerge::default();
        let mut flows = HashMap::from([(key(1), stats(10, 10))]);
        let s = [slot(2, key(1), 5, 5)];
        merge.merge(&mut flows, &s, &s);
        assert_eq!(flows[&key(1)], stats(15, 15));
        // Next snapshot: the map still reads 10 (read before the move), the slot now holds
        // another flow.
        let mut flows = HashMap::from([(key(1), stats(10, 10))]);
        let s = [slot(4, key(2), 1, 1)];
        merge.merge(&mut flows, &s, &s);
        assert_eq!(flows[&key(1)], stats(15, 15));
        // Quiet: the map has them all.
        let mut flows = HashMap::from([(key(1), stats(15, 15)), (key(2), stats(0, 0))]);
        merge.merge(&mut flows, &s, &s);
        assert_eq!(flows[&key(1)], stats(15, 15));
        assert_eq!(flows[&key(2)], stats(1, 1));
    }

    /// A flow whose counts were all pending, moved into the map after the map was read, gets
    /// what it had once; an entry that went back (evicted, created again) starts over.
    #[test]
    fn absent_once_and_evicted_entries_start_over() {
        let mut merge = FlowMerge::default();
        let mut flows = HashMap::new();
        let s = [slot(2, key(1), 4, 4)];
        merge.merge(&mut flows, &s, &s);
        assert_eq!(flows[&key(1)], stats(4, 4));
        let other = [slot(4, key(2), 1, 1)];
        let mut flows = HashMap::new();
        merge.merge(&mut flows, &other, &other);
        assert_eq!(flows[&key(1)], stats(4, 4), "given once while in neither");
        let mut flows = HashMap::new();
        merge.merge(&mut flows, &other, &other);
        assert!(!flows.contains_key(&key(1)), "not given twice");

        let mut merge = FlowMerge::default();
        let mut flows = HashMap::from([(key(1), stats(10, 10))]);
        let s = [slot(2, key(1), 5, 5)];
        merge.merge(&mut flows, &s, &s);
        let mut flows = HashMap::from([(key(1), stats(1, 1))]);
        merge.merge(&mut flows, &other, &other);
        assert_eq!(
            flows[&key(1)],
            stats(1, 1),
            "evicted and created again: starts over"
        );
    }
}
