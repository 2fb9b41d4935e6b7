//! The RTT samples the kernel holds back per CPU (`RTT_PENDING`, see
//! [`tracer_common::RttPending`]) added to the destinations read from `DESTS`, so that a
//! snapshot counts every sample the kernel took, and never fewer than the snapshot before.
//! Pure: the loader reads the map and the slots and hands them here; no aya, no I/O.
//!
//! Order of the reads (the loader's): the map first, then every slot twice. A slot whose
//! `seq` is even and the same in both reads held the same samples, still pending, from before
//! the first read to after it: they are not in the map as read (a sample is moved into the map
//! only under an odd `seq`), so adding them counts each once. A slot that moved its samples in
//! between (or was moving them) is left out: its samples may be in the map as read, or not yet.
//! So a snapshot can only miss samples, never count one twice; and what it missed is what the
//! snapshot before may already have counted from the slot. [`RttMerge`] remembers, for every
//! destination that had pending samples, what the last snapshot gave, and gives at least that
//! (per bucket, and for the sum) while the map's own entry has not gone back (an entry evicted
//! and created again starts over, as without the slots). A destination that had only pending
//! samples, moved into the map after the map was read, is in neither the map nor a stable slot:
//! it gets what it had (once: absent again, its new entry was evicted). Once `tcp_probe` stops,
//! every slot is read as stable and the counts are exact.

use std::collections::HashMap;

use tracer_common::{DestKey, DestStats, RttPending, LAT_BUCKETS};

use super::drop_slots::stable_slots;

/// What a destination's RTT was in the last snapshot, for destinations that had pending
/// samples.
#[derive(Debug, Clone, PartialEq)]
struct Given {
    /// `rtt_sum_us` of the map's entry alone (without pending samples); `None`: not in the map
    /// as read (its samples all pending).
    map_sum_us: Option<u64>,
    /// Given while in neither the map nor a stable slot (see [`RttMerge::merge`]): given so at
    /// most once.
    absent: bool,
    /// What the snapshot gave: the sum and the histogram with the pending samples.
    sum_us: u64,
    hist: Box<[u32; LAT_BUCKETS]>,
}

/// Adds pending RTT samples to the destinations of a snapshot; keeps what it gave per
/// destination with pending samples, so the next snapshot never gives less (module doc).
#[derive(Debug, Default)]
pub struct RttMerge {
    given: HashMap<DestKey, Given>,
}

/// Whether `now` is behind `before` (counts that wrap: behind by less than half the range).
fn behind(now: u32, before: u32) -> bool {
    (now.wrapping_sub(before) as i32) < 0
}

impl RttMerge {
    /// Adds to `dests` (the map as read) the samples of every slot that read the same in
    /// `first` and `second` (the slots of every CPU, read after the map, in the same order),
    /// then gives each destination what the last call gave it when it would now get less
    /// (the slots' samples moved into the map after the map was read). Destinations with pending samples only (none moved
    /// into the map yet, or an entry evicted meanwhile) are added.
    pub fn merge(
        &mut self,
        dests: &mut HashMap<DestKey, DestStats>,
        first: &[RttPending],
        second: &[RttPending],
    ) {
        let stable: Vec<&RttPending> = stable_slots(
            first,
            second,
            |s| s.seq,
            |a, b| {
                a.key == b.key
                    && a.bucket == b.bucket
                    && a.count != 0
                    && (a.bucket as usize) < LAT_BUCKETS
            },
        )
        .collect();
        // The map's own sums, before any pending sample is added (absent: not in the map).
        let map_sums: HashMap<DestKey, u64> = self
            .given
            .keys()
            .chain(stable.iter().map(|s| &s.key))
            .filter_map(|key| dests.get(key).map(|d| (*key, d.rtt_sum_us)))
            .collect();
        for s in &stable {
            let stats = dests.entry(s.key).or_default();
            let bucket = s.bucket as usize;
            stats.rtt_hist[bucket] = stats.rtt_hist[bucket].wrapping_add(s.count);
            stats.rtt_sum_us = stats.rtt_sum_us.wrapping_add(s.sum_us);
        }
        let mut lifted: Vec<DestKey> = Vec::new();
        let mut absent: Vec<DestKey> = Vec::new();
        for (key, before) in &self.given {
            let map_sum = map_sums.get(key).copied();
            // The entry went back, or is gone: evicted (and maybe created again), it starts
            // over.
            if let Some(before_sum) = before.map_sum_us {
                if map_sum.is_none_or(|now| now < before_sum) {
                    continue;
                }
            }
            // A destination that had only pending samples and is in neither the map nor a
            // stable slot now: its samples moved into the map after the map was read (and the
            // slot went to another destination); it keeps what it was given, once (still
            // absent the next time: its new entry was evicted at once).
            let present = dests.contains_key(key);
            if !present {
                if before.absent {
                    continue;
                }
                absent.push(*key);
            }
            let stats = dests.entry(*key).or_default();
            let behind_before = stats.rtt_sum_us < before.sum_us
                || stats
                    .rtt_hist
                    .iter()
                    .zip(before.hist.iter())
                    .any(|(now, was)| behind(*now, *was));
            if behind_before {
                // Samples moved into the map after it was read: give what the last snapshot
                // gave (histogram and sum together, so their mean stays true), the rest next.
                stats.rtt_hist = *before.hist;
                stats.rtt_sum_us = before.sum_us;
                lifted.push(*key);
            }
        }
        let mut given = HashMap::with_capacity(stable.len() + lifted.len());
        for key in stable.iter().map(|s| s.key).chain(lifted) {
            let Some(stats) = dests.get(&key) else {
                continue;
            };
            given.entry(key).or_insert_with(|| Given {
                map_sum_us: map_sums.get(&key).copied(),
                absent: absent.contains(&key),
                sum_us: stats.rtt_sum_us,
                hist: Box::new(stats.rtt_hist),
            });
        }
        self.given = given;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::{lat_bucket, FAMILY_INET};

    fn key(port: u16) -> DestKey {
        DestKey {
            netns: 4026531840,
            family: FAMILY_INET,
            dport: port,
            daddr: [0x0100_007f, 0, 0, 0],
        }
    }

    fn slot(seq: u32, key: DestKey, srtt: u64, count: u32) -> RttPending {
        RttPending {
            seq,
            bucket: lat_bucket(srtt) as u32,
            key,
            count,
            _pad: 0,
            sum_us: srtt * u64::from(count),
        }
    }

    fn entry(srtt: u64, count: u32) -> DestStats {
        let mut d = DestStats::default();
        d.rtt_hist[lat_bucket(srtt)] = count;
        d.rtt_sum_us = srtt * u64::from(count);
        d
    }

    fn samples(d: &DestStats) -> u64 {
        d.rtt_hist.iter().map(|c| u64::from(*c)).sum()
    }

    /// Stable slots add their samples; a slot read mid-move (odd `seq`) or moved between the
    /// two reads is left out; a slot with samples of a destination not in the map adds it.
    #[test]
    fn stable_slots_add_their_samples_and_moving_ones_are_left_out() {
        let mut dests = HashMap::from([(key(80), entry(100, 10))]);
        let first = [
            slot(2, key(80), 100, 5),  // stable: +5
            slot(4, key(80), 1000, 3), // moved before the second read
            slot(7, key(80), 100, 9),  // odd: moving
            slot(6, key(443), 50, 2),  // not in the map yet
            slot(0, key(80), 100, 0),  // empty
        ];
        let mut second = first;
        second[1].seq = 6;
        second[1].count = 1;
        let mut merge = RttMerge::default();
        merge.merge(&mut dests, &first, &second);
        assert_eq!(samples(&dests[&key(80)]), 15);
        assert_eq!(dests[&key(80)].rtt_sum_us, 1500);
        assert_eq!(dests[&key(80)].rtt_hist[lat_bucket(1000)], 0);
        assert_eq!(samples(&dests[&key(443)]), 2);
        assert_eq!(dests[&key(443)].rtt_sum_us, 100);
    }

    /// The samples a snapshot gave from a slot, moved into the map after the next snapshot
    /// read the map: the next one gives no fewer; once the map has them, it gives the map's.
    #[test]
    fn samples_moved_between_the_reads_are_not_lost_to_a_later_snapshot() {
        let mut merge = RttMerge::default();
        // Snapshot 1: the map has 10, the slot 5 more.
        let mut dests = HashMap::from([(key(80), entry(100, 10))]);
        let slots = [slot(2, key(80), 100, 5)];
        merge.merge(&mut dests, &slots, &slots);
        assert_eq!(samples(&dests[&key(80)]), 15);
        // Snapshot 2: the map was read before the kernel moved the 5 into it; the slot, read
        // after, was given to another bucket (a different seq) and holds one new sample.
        let mut dests = HashMap::from([(key(80), entry(100, 10))]);
        let slots = [slot(4, key(80), 1000, 1)];
        merge.merge(&mut dests, &slots, &slots);
        assert_eq!(samples(&dests[&key(80)]), 15, "the 15 given before");
        assert_eq!(dests[&key(80)].rtt_sum_us, 1500);
        // Snapshot 3: the map has all 16 (and the slot's 1000 µs sample moved too).
        let mut moved = entry(100, 16);
        moved.rtt_hist[lat_bucket(1000)] = 1;
        moved.rtt_sum_us = 2600;
        let mut dests = HashMap::from([(key(80), moved)]);
        let empty = [slot(6, key(80), 1000, 0)];
        merge.merge(&mut dests, &empty, &empty);
        assert_eq!(dests[&key(80)], moved, "exact once nothing is pending");
        assert!(merge.given.is_empty());
    }

    /// A destination whose samples were all pending, moved into the map after the next
    /// snapshot read the map (its slot then taken by another destination): the next snapshot
    /// still has it, with no fewer samples; it starts from the map's once the map has them.
    #[test]
    fn a_destination_only_pending_is_kept_while_its_samples_move() {
        let mut merge = RttMerge::default();
        let mut dests = HashMap::new();
        let slots = [slot(2, key(80), 100, 2)];
        merge.merge(&mut dests, &slots, &slots);
        assert_eq!(samples(&dests[&key(80)]), 2);
        // Moved between the reads; the slot now holds one sample of another destination.
        let mut dests = HashMap::new();
        let slots = [slot(4, key(443), 100, 1)];
        merge.merge(&mut dests, &slots, &slots);
        assert_eq!(samples(&dests[&key(80)]), 2, "kept as given");
        assert_eq!(dests[&key(80)].rtt_sum_us, 200);
        // Moved and one more pending: 1 in the slot, none in the map as read.
        let mut dests = HashMap::new();
        let slots = [slot(6, key(80), 100, 1)];
        merge.merge(&mut dests, &slots, &slots);
        assert_eq!(samples(&dests[&key(80)]), 2, "no fewer than given");
        // The map has the 2 (and the slot's one moved too): exact.
        let mut dests = HashMap::from([(key(80), entry(100, 3))]);
        let empty = [slot(8, key(80), 100, 0)];
        merge.merge(&mut dests, &empty, &empty);
        assert_eq!(samples(&dests[&key(80)]), 3);
        // Gone from the map after having been there: evicted, not brought back.
        let mut dests = HashMap::new();
        merge.merge(&mut dests, &empty, &empty);
        assert!(dests.is_empty());
    }

    /// A destination given while absent (its new entry evicted at once) is given so only once.
    #[test]
    fn an_absent_destination_is_kept_once() {
        let mut merge = RttMerge::default();
        let slots = [slot(2, key(80), 100, 2)];
        merge.merge(&mut HashMap::new(), &slots, &slots);
        let other = [slot(4, key(443), 100, 1)];
        let mut dests = HashMap::new();
        merge.merge(&mut dests, &other, &other);
        assert_eq!(samples(&dests[&key(80)]), 2);
        let mut dests = HashMap::new();
        merge.merge(&mut dests, &other, &other);
        assert!(!dests.contains_key(&key(80)));
    }

    /// An entry evicted and created again starts over: the merge does not hold it up.
    #[test]
    fn an_entry_created_again_is_not_held_up() {
        let mut merge = RttMerge::default();
        let mut dests = HashMap::from([(key(80), entry(100, 10))]);
        let slots = [slot(2, key(80), 100, 5)];
        merge.merge(&mut dests, &slots, &slots);
        let mut dests = HashMap::from([(key(80), entry(100, 2))]);
        let slots = [slot(4, key(80), 100, 1)];
        merge.merge(&mut dests, &slots, &slots);
        assert_eq!(samples(&dests[&key(80)]), 3);
    }

    /// Histogram buckets are `u32` counts that wrap: a bucket just past the wrap is ahead.
    #[test]
    fn a_wrapped_bucket_is_ahead() {
        assert!(!behind(3, u32::MAX - 1));
        assert!(behind(u32::MAX - 1, 3));
        assert!(behind(9, 10));
        assert!(!behind(10, 10));
    }
}
