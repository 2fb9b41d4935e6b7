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
    DROP_SLOTS as DROP_SLOTS_PER_CPU, DROP_SLOT_REVALIDATE,
};

use crate::shared::{
    args::arg_u64,
    atomic_add64, bump, bump_by, config, count_run,
    netns::{skb_dev, skb_netns_with_dev},
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
    let slots = DROP_SLOTS.get_ptr_mut(0);
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
    let rx_sk = || match config!(kfree_rx_sk) {
        ABSENT => 0,
        offset => ctx_u64(&ctx, offset).unwrap_or(0),
    };
    count_drop::<false>(slots, skb, location, u64::from(reason), rx_sk);
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
    // The slot array first, the arguments after: the lookup is a helper call to the compiler
    // (the verifier inlines it), and arguments read before it would be kept on the stack
    // across it and reloaded.
    let slots = DROP_SLOTS.get_ptr_mut(0);
    // Positions from the loader; where they are the usual (skb, location, reason, rx_sk), one
    // configuration load and constant positions (the verifier prunes the other arm).
    let in_order = || config!(kfree_args_in_order) != 0;
    let (skb, location, reason) = if in_order() {
        (arg_u64(ctx, 0), arg_u64(ctx, 1), arg_u64(ctx, 2))
    } else {
        (
            arg_u64(ctx, config!(kfree_arg_skb)),
            arg_u64(ctx, config!(kfree_arg_location)),
            arg_u64(ctx, config!(kfree_arg_reason)),
        )
    };
    let (Some(skb), Some(location)) = (skb, location) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    // The reason as the argument holds it (zero-extended; a run whose upper bits were not
    // zero would only miss its slot); the receiving socket only where it is needed.
    let reason = reason.unwrap_or(u64::from(ABSENT));
    let rx_sk = || {
        let at = if in_order() {
            3
        } else {
            config!(kfree_arg_rx_sk)
        };
        arg_u64(ctx, at).unwrap_or(0)
    };
    count_drop::<TYPED>(slots, skb, location, reason, rx_sk);
    0
}

/// Counts one drop of `skb` under its reason, namespace and freeing location: a plain add to
/// this CPU's slot when the slot holds the same source (the skb's device), reason and
/// location — no namespace read, except every [`DROP_SLOT_REVALIDATE`]th count; otherwise the
/// slot's count goes into `DROPS` and the slot takes this drop's key (see [`DropSlot`] for how
/// user space reads both). `TYPED`: `skb` is a BTF tracepoint's typed pointer; `slots`: this
/// CPU's `DROP_SLOTS` value.
#[inline(always)]
fn count_drop<const TYPED: bool>(
    slots: Option<*mut DropSlots>,
    skb: u64,
    location: u64,
    reason: u64,
    rx_sk: impl Fn() -> u64,
) {
    let dev = skb_dev::<TYPED>(skb);
    // The source of a drop with a device: the device's address, made a plain number for the
    // verifier (it forbids hashing a typed pointer, but not subtracting another pointer from
    // it) by subtracting this CPU's slot array's address. Without a device: 0, and the
    // namespace, read now, takes part in the hash and the compare. (Plain values, no
    // `Option` kept across the branches: the verifier walks paths the compiler knows
    // impossible, and refused what the compiler made of a cached `Option`.)
    let (source, netns_now) = match slots {
        Some(slots) if dev != 0 => (device_source::<TYPED>(dev, slots as u64), 0),
        _ => (0, namespace_of::<TYPED>(skb, dev, &rx_sk)),
    };
    let hashed = source ^ u64::from(netns_now);
    // The mask keeps the index in bounds.
    let slot = slots
        .and_then(|slots| unsafe {
            (*slots)
                .slots
                .get_mut(drop_slot_index(hashed, location, reason) & (DROP_SLOTS_PER_CPU - 1))
        })
        .map(|slot| slot as *mut DropSlot);
    // SAFETY (every access below): this CPU's slot. Where runs may nest (`guarded`), a run of
    // this program that interrupts another on the same CPU sees `busy` set and leaves the slot
    // alone; elsewhere the kernel never starts one, and the verifier drops the flag's reads
    // and writes (the configuration is frozen). Volatile, so the compiler keeps the order of
    // the writes user space relies on (`seq` odd around the move).
    let guarded = config!(runs_may_nest) != 0;
    let (map_key, n, taken) = match slot {
        Some(slot) if !guarded || unsafe { read_volatile(addr_of!((*slot).busy)) } == 0 => unsafe {
            if guarded {
                write_volatile(addr_of_mut!((*slot).busy), 1);
            }
            let count = addr_of_mut!((*slot).count);
            let held_netns = addr_of!((*slot).key.netns);
            if read_volatile(addr_of!((*slot).source)) == source
                && read_volatile(addr_of!((*slot).key.location)) == location
                && u64::from(read_volatile(addr_of!((*slot).key.reason))) == reason
                && (source != 0 || read_volatile(held_netns) == netns_now)
            {
                let next = read_volatile(count) + 1;
                // Every DROP_SLOT_REVALIDATE-th count, the device's namespace is read again:
                // the device may have moved to another namespace (or its memory been reused).
                if next & (DROP_SLOT_REVALIDATE - 1) != 0
                    || namespace_of::<TYPED>(skb, dev, &rx_sk) == read_volatile(held_netns)
                {
                    write_volatile(count, next);
                    if guarded {
                        write_volatile(addr_of_mut!((*slot).busy), 0);
                    }
                    return;
                }
            }
            let key = DropKey {
                reason: reason as u32,
                netns: namespace_of::<TYPED>(skb, dev, &rx_sk),
                location,
            };
            let held = read_volatile(addr_of!((*slot).key));
            let seq = read_volatile(addr_of!((*slot).seq));
            write_volatile(addr_of_mut!((*slot).seq), seq.wrapping_add(1));
            (held, read_volatile(count), Some((slot, seq, key)))
        },
        // Busy (only where runs may nest): this run interrupted another using the slot (or no
        // slot): straight to the map.
        _ => (
            DropKey {
                reason: reason as u32,
                netns: namespace_of::<TYPED>(skb, dev, &rx_sk),
                location,
            },
            1,
            None,
        ),
    };
    if n != 0 {
        add_to_map(&map_key, n);
    }
    if let Some((slot, seq, key)) = taken {
        unsafe {
            write_volatile(addr_of_mut!((*slot).key), key);
            write_volatile(addr_of_mut!((*slot).source), source);
            write_volatile(addr_of_mut!((*slot).count), 1);
            write_volatile(addr_of_mut!((*slot).seq), seq.wrapping_add(2));
            if guarded {
                write_volatile(addr_of_mut!((*slot).busy), 0);
            }
        }
        bump(counter::DROP_SLOT_TAKEOVERS);
    }
}

/// The namespace of a drop (0, counted as unknown, when unread). Always inlined: as a closure
/// called from four places, the compiler made it a BPF subprogram and set up its captures on
/// the stack on every run, hits included (~20 instructions).
#[inline(always)]
fn namespace_of<const TYPED: bool>(skb: u64, dev: u64, rx_sk: &impl Fn() -> u64) -> u32 {
    skb_netns_with_dev::<TYPED>(skb, dev, rx_sk()).unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    })
}

/// [`DropSlot::source`] of a device: its address minus `base` (this CPU's slot array) where
/// `dev` is a typed pointer (BTF tracepoints), which the verifier lets a program subtract but not
/// hash; the address itself where it is a plain number (read by `bpf_probe_read_kernel`).
#[inline(always)]
fn device_source<const TYPED: bool>(dev: u64, base: u64) -> u64 {
    if !TYPED {
        return dev;
    }
    let mut source = dev;
    // SAFETY: register arithmetic only.
    unsafe {
        core::arch::asm!(
            "{s} -= {b}",
            s = inout(reg) source,
            b = in(reg) base,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    source
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
