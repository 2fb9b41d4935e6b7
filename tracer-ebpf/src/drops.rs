//! Drops: `skb:kfree_skb` counts every dropped skb by drop reason × namespace × freeing location
//! into `DROPS` (a per-CPU hash), which this module owns.
//!
//! May use `shared` (configuration, record reads, namespaces, counters); no other family.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::{map, tracepoint},
    maps::PerCpuHashMap,
    programs::TracePointContext,
};
use tracer_common::{counter, DropKey, ABSENT, DROPS_MAX_ENTRIES};

use crate::shared::{
    bump, config,
    netns::skb_netns,
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
    let netns = skb_netns(skb, rx_sk).unwrap_or_else(|| {
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
    0
}
