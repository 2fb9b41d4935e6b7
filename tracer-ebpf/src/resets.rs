//! Resets: `tcp:tcp_send_reset` and `tcp:tcp_receive_reset` count resets per flow × direction
//! × reason (the kernel's reason where the sent record has one) into `RESETS`, which this
//! module owns.
//!
//! May use `shared` (configuration, record reads, namespaces, counters, atomic adds); no other
//! family.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::{map, tracepoint},
    maps::LruHashMap,
    programs::TracePointContext,
};
use tracer_common::{
    counter, FlowKey, ResetKey, ABSENT, RESETS_MAX_ENTRIES, RESET_RECEIVED, RESET_SENT,
};

use crate::shared::{
    atomic_add64, bump, config,
    netns::{skb_netns, sock_netns},
    record::{ctx_sockaddr, ctx_u32, ctx_u64, flow_key},
};

#[map(name = "RESETS")]
static RESETS: LruHashMap<ResetKey, u64> = LruHashMap::with_max_entries(RESETS_MAX_ENTRIES, 0);

#[inline(always)]
fn reset_add(key: &ResetKey) {
    if let Some(count) = RESETS.get_ptr_mut(key) {
        atomic_add64(count, 1);
        return;
    }
    if RESETS.insert(key, &1, BPF_NOEXIST as u64).is_err() {
        match RESETS.get_ptr_mut(key) {
            Some(count) => atomic_add64(count, 1),
            None => bump(counter::RESETS_INSERT_FAILED),
        }
    }
}

/// A reset this host sent, with the kernel's reason where the record has one.
#[tracepoint]
pub fn tcp_send_reset(ctx: TracePointContext) -> u32 {
    bump(counter::RESET_SENT_EVENTS);
    let sk = ctx_u64(&ctx, config!(rst_tx_skaddr)).unwrap_or(0);
    // No socket (a segment to a closed port): the namespace of the device it came in on.
    let netns = if sk != 0 {
        sock_netns(sk)
    } else {
        skb_netns(ctx_u64(&ctx, config!(rst_tx_skbaddr)).unwrap_or(0), 0)
    }
    .unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    });
    let reason = match config!(rst_tx_reason) {
        ABSENT => ABSENT,
        offset => ctx_u32(&ctx, offset).unwrap_or(ABSENT),
    };
    let flow = if config!(rst_tx_saddr_sa) != ABSENT {
        // Since 6.10 both ends are sockaddrs, the peer in `daddr` whichever way they were
        // filled (from the socket, or reversed from the incoming segment).
        match (
            ctx_sockaddr(&ctx, config!(rst_tx_saddr_sa)),
            ctx_sockaddr(&ctx, config!(rst_tx_daddr_sa)),
        ) {
            (Some((family, sport, saddr)), Some((_, dport, daddr))) => Some(FlowKey {
                netns,
                family,
                sport,
                dport,
                _pad: 0,
                saddr,
                daddr,
            }),
            _ => None,
        }
    } else {
        flow_key(
            &ctx,
            netns,
            config!(rst_tx_family),
            config!(rst_tx_sport),
            config!(rst_tx_dport),
            config!(rst_tx_saddr),
            config!(rst_tx_daddr),
            config!(rst_tx_saddr_v6),
            config!(rst_tx_daddr_v6),
        )
    };
    let Some(flow) = flow else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    reset_add(&ResetKey {
        flow,
        reason,
        direction: RESET_SENT,
    });
    0
}

/// A reset this host received (a refused connect, a peer aborting).
#[tracepoint]
pub fn tcp_receive_reset(ctx: TracePointContext) -> u32 {
    bump(counter::RESET_RECEIVED_EVENTS);
    let sk = ctx_u64(&ctx, config!(rst_rx_skaddr)).unwrap_or(0);
    let netns = sock_netns(sk).unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    });
    let Some(flow) = flow_key(
        &ctx,
        netns,
        config!(rst_rx_family),
        config!(rst_rx_sport),
        config!(rst_rx_dport),
        config!(rst_rx_saddr),
        config!(rst_rx_daddr),
        config!(rst_rx_saddr_v6),
        config!(rst_rx_daddr_v6),
    ) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    reset_add(&ResetKey {
        flow,
        reason: ABSENT,
        direction: RESET_RECEIVED,
    });
    0
}
