//! Drops: `skb:kfree_skb` counts every dropped skb by drop reason × namespace × freeing location
//! into `DROPS` (a per-CPU hash) through `DROP_SLOTS` (per CPU, a few "last key" slots whose
//! counts reach the hash when another key takes the slot); this module owns both. One body,
//! three hooks: the classic tracepoint reads its record, the raw and BTF tracepoints the
//! arguments.
//!
//! May use `shared` (configuration, record reads, namespaces, counters); no other family.

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{PerCpuArray, PerCpuHashMap},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use tracer_common::{
    counter, drop_slot_index, DropKey, DropSlot, DropSlots, ABSENT, DROPS_MAX_ENTRIES,
    DROP_SLOTS as DROP_SLOTS_PER_CPU,
};

use crate::shared::{
    args::arg_u64,
    atomic_add64, bump, bump_by, config, count_run,
    netns::{skb_netns, skb_netns_of},
    record::{ctx_u32, ctx_u64},
};

#[map(name = "DROPS")]
static DROPS: PerCpuHashMap<DropKey, u64> = PerCpuHashMap::with_max_entries(DROPS_MAX_ENTRIES, 0);

/// Per CPU: the last keys counted and their drops not yet in `DROPS` (see [`DropSlot`]).
#[map(name = "DROP_SLOTS")]
static DROP_SLOTS: PerCpuArray<DropSlots> = PerCpuArray::with_max_entries(1, 0);

#[tracepoint]
pub fn kfree_skb(ctx: TracePointContext) -> u32 {
    count_run(counter::KFREE_SKB_EVENTS);
    let (Some(skb), Some(location)) = (
        ctx_u64(&ctx, config!(kfree_skbaddr)),
        ctx_u64(&ctx, config!(kfree_location)),
    ) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    let reason = match config!(kfree_reason) {
        ABSENT => ABSENT,
        offset => ctx_u32(&ctx, offset).unwrap_or(ABSENT),
    };
    let rx_sk = match config!(kfree_rx_sk) {
        ABSENT => 0,
        offset => ctx_u64(&ctx, offset).unwrap_or(0),
    };
    count_drop(skb_netns(skb, rx_sk), location, reason);
    0
}

#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn kfree_skb_raw(ctx: RawTracePointContext) -> u32 {
    from_args::<false>(ctx.as_ptr())
}

#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb_btf(ctx: BtfTracePointContext) -> u32 {
    from_args::<true>(ctx.as_ptr())
}

/// The raw/BTF hooks: the same values from the tracepoint's arguments (`TYPED`: the BTF hook,
/// whose pointer arguments are read with plain loads).
#[inline(always)]
fn from_args<const TYPED: bool>(ctx: *mut core::ffi::c_void) -> u32 {
    count_run(counter::KFREE_SKB_EVENTS);
    let (Some(skb), Some(location)) = (
        arg_u64(ctx, config!(kfree_arg_skb)),
        arg_u64(ctx, config!(kfree_arg_location)),
    ) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    let reason = arg_u64(ctx, config!(kfree_arg_reason)).map_or(ABSENT, |r| r as u32);
    let rx_sk = arg_u64(ctx, config!(kfree_arg_rx_sk)).unwrap_or(0);
    count_drop(skb_netns_of::<TYPED>(skb, rx_sk), location, reason);
    0
}

/// Counts one drop under its reason, namespace (None: unread) and freeing location: a plain add
/// to this CPU's slot when the slot holds the key; otherwise the slot's count goes into `DROPS`
/// and the slot takes this key (see [`DropSlot`] for how user space reads both).
#[inline(always)]
fn count_drop(netns: Option<u32>, location: u64, reason: u32) {
    let netns = netns.unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    });
    let key = DropKey {
        reason,
        netns,
        location,
    };
    // Index 0 of a per-CPU array always exists; the mask keeps the index in bounds.
    let slot = DROP_SLOTS
        .get_ptr_mut(0)
        .and_then(|slots| unsafe {
            (*slots)
                .slots
                .get_mut(drop_slot_index(&key) & (DROP_SLOTS_PER_CPU - 1))
        })
        .map(|slot| slot as *mut DropSlot);
    // SAFETY (every access below): this CPU's slot; a run of this program that interrupts
    // another on the same CPU sees `busy` set and leaves the slot alone. Volatile, so the
    // compiler keeps the order of the writes user space relies on (`seq` odd around the move).
    let (map_key, n, taken) = match slot {
        Some(slot) if unsafe { read_volatile(addr_of!((*slot).busy)) } == 0 => unsafe {
            write_volatile(addr_of_mut!((*slot).busy), 1);
            let count = addr_of_mut!((*slot).count);
            // The key as two words (reason and namespace, location): two compares.
            let held_words = addr_of!((*slot).key).cast::<u64>();
            let (held_first, held_location) =
                (read_volatile(held_words), read_volatile(held_words.add(1)));
            if held_location == key.location && held_first == addr_of!(key).cast::<u64>().read() {
                write_volatile(count, read_volatile(count) + 1);
                write_volatile(addr_of_mut!((*slot).busy), 0);
                return;
            }
            let held = read_volatile(addr_of!((*slot).key));
            let seq = read_volatile(addr_of!((*slot).seq));
            write_volatile(addr_of_mut!((*slot).seq), seq.wrapping_add(1));
            (held, read_volatile(count), Some((slot, seq)))
        },
        // Busy: this run interrupted another using the slot (or no slot): straight to the map.
        _ => (key, 1, None),
    };
    if n != 0 {
        add_to_map(&map_key, n);
    }
    if let Some((slot, seq)) = taken {
        unsafe {
            write_volatile(addr_of_mut!((*slot).key), key);
            write_volatile(addr_of_mut!((*slot).count), 1);
            write_volatile(addr_of_mut!((*slot).seq), seq.wrapping_add(2));
            write_volatile(addr_of_mut!((*slot).busy), 0);
        }
        bump(counter::DROP_SLOT_TAKEOVERS);
    }
}

/// Adds `n` drops of `key` to `DROPS` (atomically: a run that interrupted another on the same
/// CPU may add to the same entry), creating the entry when new.
#[inline(always)]
fn add_to_map(key: &DropKey, n: u64) {
    if let Some(count) = DROPS.get_ptr_mut(key) {
        atomic_add64(count, n);
    } else if DROPS.insert(key, &n, BPF_NOEXIST as u64).is_err() {
        // Another CPU may have created the key in between (the entry then exists with a zero
        // slot for this CPU); otherwise the map is full and the loss is counted.
        match DROPS.get_ptr_mut(key) {
            Some(count) => atomic_add64(count, n),
            None => bump_by(counter::DROPS_MAP_FULL, n),
        }
    }
}
