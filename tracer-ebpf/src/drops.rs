//! Drops: `skb:kfree_skb` counts every dropped skb by drop reason × namespace × freeing location
//! into `DROPS` (a per-CPU hash), which this module owns. One body, three hooks: the classic
//! tracepoint reads its record, the raw and BTF tracepoints the arguments.
//!
//! May use `shared` (configuration, record reads, namespaces, counters); no other family.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::PerCpuHashMap,
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use tracer_common::{counter, DropKey, ABSENT, DROPS_MAX_ENTRIES};

use crate::shared::{
    args::arg_u64,
    bump, config,
    netns::{skb_netns, skb_netns_of},
    record::{ctx_u32, ctx_u64},
};

#[map(name = "DROPS")]
static DROPS: PerCpuHashMap<DropKey, u64> = PerCpuHashMap::with_max_entries(DROPS_MAX_ENTRIES, 0);

#[tracepoint]
pub fn kfree_skb(ctx: TracePointContext) -> u32 {
    bump(counter::KFREE_SKB_EVENTS);
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
    bump(counter::KFREE_SKB_EVENTS);
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

/// Counts one drop under its reason, namespace (None: unread) and freeing location.
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
    if let Some(count) = DROPS.get_ptr_mut(&key) {
        // Per-CPU value: no other CPU writes it.
        unsafe { *count += 1 };
    } else if DROPS.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
        // Another CPU may have created the key in between (the entry then exists with a zero
        // slot for this CPU); otherwise the map is full and the loss is counted.
        match DROPS.get_ptr_mut(&key) {
            Some(count) => unsafe { *count += 1 },
            None => bump(counter::DROPS_MAP_FULL),
        }
    }
}
