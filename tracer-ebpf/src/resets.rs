//! Resets: `tcp:tcp_send_reset` and `tcp:tcp_receive_reset` count resets per flow × direction
//! × reason (the kernel's reason where the sent record has one) into `RESETS`, which this
//! module owns. One body per event, three hooks: the classic tracepoint reads its record, the
//! raw and BTF tracepoints the arguments and the socket (or, for a reset sent without a
//! socket, the segment it answers).
//!
//! May use `shared` (configuration, record and argument reads, flows, namespaces, counters,
//! atomic adds); no other family.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::LruHashMap,
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use tracer_common::{
    counter, FlowKey, ResetKey, ABSENT, RESETS_MAX_ENTRIES, RESET_RECEIVED, RESET_SENT,
};

use crate::shared::{
    args::{arg_u64, sock_flow_key},
    atomic_add64, bump, config, count_run,
    flow::{flow_of, skb_reply_flow},
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

/// Counts one reset of `flow` (a read error when it could not be read).
#[inline(always)]
fn count_reset(flow: Option<FlowKey>, reason: u32, direction: u32) {
    let Some(flow) = flow else {
        bump(counter::READ_ERRORS);
        return;
    };
    reset_add(&ResetKey {
        flow,
        reason,
        direction,
    });
}

/// The namespace of a reset's socket, or with no socket (a segment to a closed port) of the
/// device the segment came in on; 0, counted as unknown, when neither can be read.
#[inline(always)]
fn reset_netns(sk: u64, skb: u64) -> u32 {
    if sk != 0 {
        sock_netns(sk)
    } else {
        skb_netns(skb, 0)
    }
    .unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    })
}

/// The namespace of a received reset's socket (0, counted as unknown, when unread).
#[inline(always)]
fn received_netns(sk: u64) -> u32 {
    sock_netns(sk).unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    })
}

/// A reset this host sent, with the kernel's reason where the record has one.
#[tracepoint]
pub fn tcp_send_reset(ctx: TracePointContext) -> u32 {
    count_run(counter::RESET_SENT_EVENTS);
    let sk = ctx_u64(&ctx, config!(rst_tx_skaddr)).unwrap_or(0);
    let netns = reset_netns(sk, ctx_u64(&ctx, config!(rst_tx_skbaddr)).unwrap_or(0));
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
            (Some(local), Some(remote)) => Some(flow_of(netns, local, remote)),
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
    count_reset(flow, reason, RESET_SENT);
    0
}

#[raw_tracepoint(tracepoint = "tcp_send_reset")]
pub fn tcp_send_reset_raw(ctx: RawTracePointContext) -> u32 {
    send_reset_from_args(ctx.as_ptr())
}

#[btf_tracepoint(function = "tcp_send_reset")]
pub fn tcp_send_reset_btf(ctx: BtfTracePointContext) -> u32 {
    send_reset_from_args(ctx.as_ptr())
}

/// The raw/BTF hooks: the flow from the socket (any kind: full, request or time-wait, all
/// begin with `sock_common`), or without one (6.10+) from the segment the reset answers.
#[inline(always)]
fn send_reset_from_args(ctx: *mut core::ffi::c_void) -> u32 {
    count_run(counter::RESET_SENT_EVENTS);
    let sk = arg_u64(ctx, config!(rst_tx_arg_sk)).unwrap_or(0);
    let skb = arg_u64(ctx, config!(rst_tx_arg_skb)).unwrap_or(0);
    let netns = reset_netns(sk, skb);
    let reason = arg_u64(ctx, config!(rst_tx_arg_reason)).map_or(ABSENT, |r| r as u32);
    let flow = if sk != 0 {
        sock_flow_key::<false>(sk, netns)
    } else {
        skb_reply_flow(skb, netns)
    };
    count_reset(flow, reason, RESET_SENT);
    0
}

/// A reset this host received (a refused connect, a peer aborting).
#[tracepoint]
pub fn tcp_receive_reset(ctx: TracePointContext) -> u32 {
    count_run(counter::RESET_RECEIVED_EVENTS);
    let netns = received_netns(ctx_u64(&ctx, config!(rst_rx_skaddr)).unwrap_or(0));
    let flow = flow_key(
        &ctx,
        netns,
        config!(rst_rx_family),
        config!(rst_rx_sport),
        config!(rst_rx_dport),
        config!(rst_rx_saddr),
        config!(rst_rx_daddr),
        config!(rst_rx_saddr_v6),
        config!(rst_rx_daddr_v6),
    );
    count_reset(flow, ABSENT, RESET_RECEIVED);
    0
}

#[raw_tracepoint(tracepoint = "tcp_receive_reset")]
pub fn tcp_receive_reset_raw(ctx: RawTracePointContext) -> u32 {
    receive_reset_from_args(ctx.as_ptr())
}

#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn tcp_receive_reset_btf(ctx: BtfTracePointContext) -> u32 {
    receive_reset_from_args(ctx.as_ptr())
}

/// The raw/BTF hooks: the flow from the socket.
#[inline(always)]
fn receive_reset_from_args(ctx: *mut core::ffi::c_void) -> u32 {
    count_run(counter::RESET_RECEIVED_EVENTS);
    let sk = arg_u64(ctx, config!(rst_rx_arg_sk)).unwrap_or(0);
    let netns = received_netns(sk);
    count_reset(sock_flow_key::<false>(sk, netns), ABSENT, RESET_RECEIVED);
    0
}
