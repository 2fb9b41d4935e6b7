//! The drops the kernel holds back per CPU in `DROP_SLOTS` (see [`tracer_common::DropSlot`])
//! added to the counts read from `DROPS`, so that a snapshot counts every drop once, never
//! fewer than the snapshot before, and exactly at a quiet moment. Pure: the loader reads the
//! map and the slots and hands them here; no aya, no I/O.
//!
//! Order of the reads (the loader's, under one lock with the merge): the map first, then every
//! CPU's slots twice. A slot whose `seq` is even and the same in both reads held its key from
//! before the first read of its count to after it, and that count was not yet in the map when
//! the map was read (the kernel moves a slot's count into the map only under an odd `seq`, after
//! the second read): adding the first read's count counts each of those drops once. A slot that
//! was taken over in between (or was being taken over) is left out: its drops may be in the map
//! as read, or not yet. So the map plus the stable slots is never more than the drops so far; it
//! can miss only drops a slot moved into the map after the map was read. What it missed may be
//! what the last snapshot counted from that slot, so [`DropMerge`] remembers, per key that got
//! more than its map count, what it gave, and gives at least that again (a key's map count only
//! grows: the map never deletes, and each read is later than the last). Once the drops stop,
//! every slot reads stable and the counts are exact.
//!
//! The argument needs the kernel's stores seen in program order and the reads done in order:
//! true on x86-64; on aarch64 neither the program (BPF has no barrier) nor the map copy orders
//! them, so a snapshot during a flood could, in theory, count a slot twice there, and the merge
//! would keep that count until the real one passes it (not tested).

use std::collections::HashMap;

use tracer_common::{DropKey, DropSlot};

/// Adds the stable slots' drops to the map's counts; remembers what it gave to the keys that
/// got more than their map count, so the next merge never gives less (module doc).
#[derive(Debug, Default)]
pub struct DropMerge {
    /// Per key, the count the last merge gave when it was above the map's count for that key
    /// (slot drops added, or lifted to an earlier merge's count).
    given: HashMap<DropKey, u64>,
}

impl DropMerge {
    /// `drops`: the map as read (summed over CPUs). `first`, `second`: every CPU's slots, read
    /// after the map, in the same order both times. Adds the count of each slot that read the
    /// same `seq` (even) and key both times, creating keys that are not in the map yet; then
    /// gives each key at least what the last merge gave it.
    pub fn merge(
        &mut self,
        drops: &mut HashMap<DropKey, u64>,
        first: &[DropSlot],
        second: &[DropSlot],
    ) {
        // The map's own counts of the keys this merge may raise (absent: not in the map yet).
        let mut as_read: HashMap<DropKey, u64> = HashMap::new();
        let stable = stable_slots(
            first,
            second,
            |s| s.seq,
            |a, b| a.key == b.key && a.count != 0,
        );
        for slot in stable {
            let count = drops.entry(slot.key).or_insert(0);
            as_read.entry(slot.key).or_insert(*count);
            *count = count.wrapping_add(slot.count);
        }
        for (key, before) in &self.given {
            let count = drops.entry(*key).or_insert(0);
            as_read.entry(*key).or_insert(*count);
            if *count < *before {
                // Drops a slot moved into the map after the map was read: give what the last
                // merge gave, the rest next time.
                *count = *before;
            }
        }
        self.given = as_read
            .into_iter()
            .filter_map(|(key, map_count)| {
                let given = drops.get(&key).copied().unwrap_or(0);
                (given > map_count).then_some((key, given))
            })
            .collect();
    }

    /// Keys whose last count came partly from slots or an earlier merge (for tests and logs).
    pub fn keys_above_the_map(&self) -> usize {
        self.given.len()
    }
}

/// The slots of `first` that read stable: an even `seq`, the same in `second` (the same slot
/// read again, same position), and `same(first, second)` (the same key, a non-empty count…).
/// The one rule of the three per-CPU slot merges (this module's, `rtt_pending`'s and
/// `retrans_slots`'), argued in this module's doc.
pub(crate) fn stable_slots<'a, T>(
    first: &'a [T],
    second: &'a [T],
    seq: impl Fn(&T) -> u32,
    same: impl Fn(&T, &T) -> bool,
) -> impl Iterator<Item = &'a T> {
    first
        .iter()
        .zip(second)
        .filter(move |(a, b)| seq(a).is_multiple_of(2) && seq(a) == seq(b) && same(a, b))
        .map(|(a, _)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(netns: u32) -> DropKey {
        DropKey {
            reason: 2,
            netns,
            location: 0xffff_ffff_8123_4560,
        }
    }

    fn slot(seq: u32, key: DropKey, count: u64) -> DropSlot {
        DropSlot {
            seq,
            key,
            count,
            ..DropSlot::default()
        }
    }

    /// Stable slots add their count; a slot read mid-takeover (odd `seq`) or taken over between
    /// the two reads is left out; a slot whose key has no map entry yet still counts.
    #[test]
    fn stable_slots_add_their_count_and_moving_ones_are_left_out() {
        let mut drops = HashMap::from([(key(1), 10)]);
        let first = [
            slot(2, key(1), 5), // stable: +5
            slot(4, key(1), 3), // taken over before the second read
            slot(7, key(1), 9), // odd: being taken over
            slot(6, key(2), 2), // stable, not in the map yet
            slot(0, key(3), 0), // never used
        ];
        let mut second = first;
        second[1] = slot(6, key(9), 1);
        second[0].count = 8; // more drops after the first read: not counted this time
        let mut merge = DropMerge::default();
        merge.merge(&mut drops, &first, &second);
        assert_eq!(drops, HashMap::from([(key(1), 15), (key(2), 2)]));
        assert_eq!(merge.keys_above_the_map(), 2);
    }

    /// The same key held by slots of several CPUs adds each CPU's count.
    #[test]
    fn every_cpus_slot_of_a_key_adds() {
        let mut drops = HashMap::from([(key(1), 100)]);
        let slots = [slot(2, key(1), 5), slot(8, key(1), 7), slot(0, key(1), 0)];
        DropMerge::default().merge(&mut drops, &slots, &slots);
        assert_eq!(drops[&key(1)], 112);
    }

    /// Drops a snapshot counted from a slot, moved into the map after the next snapshot read the
    /// map: that snapshot gives no fewer; once the map has them, it gives the map's count, and
    /// at a quiet moment the count is exact.
    #[test]
    fn drops_moved_between_the_reads_are_not_lost_to_a_later_snapshot() {
        let mut merge = DropMerge::default();
        // Snapshot 1: the map has 10, the slot 5 more.
        let mut drops = HashMap::from([(key(1), 10)]);
        let slots = [slot(2, key(1), 5)];
        merge.merge(&mut drops, &slots, &slots);
        assert_eq!(drops[&key(1)], 15);
        // Snapshot 2: the map was read before the kernel moved the 5 (and 2 more) into it; the
        // slot, read after, holds another key.
        let mut drops = HashMap::from([(key(1), 10)]);
        let slots = [slot(4, key(2), 1)];
        merge.merge(&mut drops, &slots, &slots);
        assert_eq!(drops[&key(1)], 15, "the 15 given before");
        assert_eq!(drops[&key(2)], 1);
        // Snapshot 3: the slot moved on again while being read (left out); key 2's drop is not
        // in the map as read: it keeps the 1 given before, key 1 has all 17 in the map.
        let mut drops = HashMap::from([(key(1), 17)]);
        merge.merge(&mut drops, &[slot(5, key(2), 1)], &[slot(6, key(1), 1)]);
        assert_eq!(drops, HashMap::from([(key(1), 17), (key(2), 1)]));
        // Snapshot 4, quiet: the map has everything but the slot's last drop; exact.
        let mut drops = HashMap::from([(key(1), 17), (key(2), 2)]);
        let slots = [slot(6, key(1), 1)];
        merge.merge(&mut drops, &slots, &slots);
        assert_eq!(drops, HashMap::from([(key(1), 18), (key(2), 2)]));
        // Snapshot 5, quiet, the slot emptied into the map: nothing held above the map.
        let mut drops = HashMap::from([(key(1), 18), (key(2), 2)]);
        let slots = [slot(8, key(3), 1)];
        merge.merge(&mut drops, &slots, &slots);
        assert_eq!(drops[&key(1)], 18);
        assert_eq!(merge.keys_above_the_map(), 1, "only key 3's slot");
    }

    /// A model of the kernel and the loader interleaved at every step: one CPU's slot taken over
    /// constantly by two keys (and a second CPU's by a third), snapshots read with the kernel
    /// running between the map read and each slot read. No snapshot is ever above the drops so
    /// far or below the one before, per key, and a snapshot at a quiet moment is exact.
    #[test]
    fn interleaved_snapshots_never_go_back_and_end_exact() {
        struct Kernel {
            map: HashMap<DropKey, u64>,
            slots: Vec<DropSlot>,
            truth: HashMap<DropKey, u64>,
        }
        impl Kernel {
            /// One drop on `cpu`, in its steps (the map move happens between them).
            fn drop_on(&mut self, cpu: usize, key: DropKey) {
                *self.truth.entry(key).or_insert(0) += 1;
                let slot = &mut self.slots[cpu];
                if slot.key == key {
                    slot.count += 1;
                    return;
                }
                slot.seq += 1;
                if slot.count != 0 {
                    *self.map.entry(slot.key).or_insert(0) += slot.count;
                }
                slot.key = key;
                slot.count = 1;
                slot.seq += 1;
            }
        }
        let mut k = Kernel {
            map: HashMap::new(),
            slots: vec![DropSlot::default(); 2],
            truth: HashMap::new(),
        };
        let keys = [key(1), key(2), key(3)];
        let mut merge = DropMerge::default();
        let mut last: HashMap<DropKey, u64> = HashMap::new();
        // A small deterministic generator: which drops happen between the reads.
        let mut state = 0x2545_f491_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..2000 {
            let quiet = round % 50 == 49;
            let burst = |k: &mut Kernel, r: u64| {
                if quiet {
                    return;
                }
                for i in 0..(r % 4) {
                    let cpu = usize::from((r >> (8 + i)) & 3 == 0);
                    let key = if cpu == 1 {
                        keys[2]
                    } else {
                        keys[((r >> (16 + i)) & 1) as usize]
                    };
                    k.drop_on(cpu, key);
                }
            };
            burst(&mut k, next());
            let mut drops = k.map.clone();
            burst(&mut k, next());
            let first = k.slots.clone();
            burst(&mut k, next());
            let second = k.slots.clone();
            burst(&mut k, next());
            merge.merge(&mut drops, &first, &second);
            for (key, count) in &drops {
                assert!(
                    *count <= k.truth[key],
                    "round {round}: {key:?} above the truth"
                );
            }
            for (key, count) in &last {
                assert!(
                    drops.get(key).copied().unwrap_or(0) >= *count,
                    "round {round}: went back"
                );
            }
            if quiet {
                assert_eq!(drops, k.truth, "round {round}: exact when quiet");
            }
            last = drops;
        }
        assert!(k.slots[0].seq > 1000, "the slot was taken over constantly");
    }
}
