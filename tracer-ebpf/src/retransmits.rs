//! Retransmits: `tcp:tcp_retransmit_skb` (retransmissions, segments, failed attempts) and
//! `tcp:tcp_retransmit_synack` per flow, into `RETRANS_FLOWS` (a bounded LRU hash), which this
//! module owns. One body per event, three hooks: the classic tracepoint reads its record, the
//! raw and BTF tracepoints the arguments and the sockets.
//!
//! May use `shared` (configuration, record and argument reads, namespaces, counters); no other
//! family.

use core::{
    mem::MaybeUninit,
    ptr::{addr_of_mut, write_volatile},
};

use aya_ebpf::{
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::LruHashMap,
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use tracer_common::{counter, FlowKey, FlowStats, ABSENT, RETRANS_FLOWS_MAX_ENTRIES};

use crate::shared::{
    args::{arg_u64, kernel_read, sock_flow_key, sock_state},
    bump, config,
    netns::{sock_netns, sock_netns_of},
    record::{ctx_u32, ctx_u64, flow_key},
};

#[map(name = "RETRANS_FLOWS")]
static RETRANS_FLOWS: LruHashMap<FlowKey, FlowStats> =
    LruHashMap::with_max_entries(RETRANS_FLOWS_MAX_ENTRIES, 0);

/// Adds to a flow's counters, inserting the flow when it is new.
///
/// Plain (non-atomic) adds are enough: every retransmission of one socket runs under that
/// socket's lock, so two CPUs never update the same flow at once.
#[inline(always)]
fn flow_add(key: &FlowKey, retransmits: u64, segments: u64, synacks: u64, failed: u64, state: u32) {
    if let Some(stats) = RETRANS_FLOWS.get_ptr_mut(key) {
        unsafe {
            (*stats).retransmits += retransmits;
            (*stats).retransmitted_segments += segments;
            (*stats).synack_retransmits += synacks;
            (*stats).failed_attempts += failed;
            if state != 0 {
                (*stats).last_state = state;
            }
        }
        return;
    }
    // Field-by-field volatile writes: a struct literal of mostly-constant fields becomes a
    // `memset` call, which BPF does not have.
    let mut stats = MaybeUninit::<FlowStats>::uninit();
    let p = stats.as_mut_ptr();
    unsafe {
        write_volatile(addr_of_mut!((*p).retransmits), retransmits);
        write_volatile(addr_of_mut!((*p).retransmitted_segments), segments);
        write_volatile(addr_of_mut!((*p).synack_retransmits), synacks);
        write_volatile(addr_of_mut!((*p).failed_attempts), failed);
        write_volatile(addr_of_mut!((*p).last_state), state);
        write_volatile(addr_of_mut!((*p)._pad), 0);
    }
    // Insert from that slot itself: copying it out (`assume_init`) brings the memset back.
    if RETRANS_FLOWS
        .insert(key, unsafe { &*stats.as_ptr() }, 0)
        .is_err()
    {
        bump(counter::FLOWS_INSERT_FAILED);
    } else {
        bump(counter::FLOW_INSERTS);
    }
}

#[tracepoint]
pub fn tcp_retransmit_skb(ctx: TracePointContext) -> u32 {
    bump(counter::RETRANSMIT_EVENTS);
    let failed = match config!(rtx_err) {
        ABSENT => false,
        offset => ctx_u32(&ctx, offset).is_some_and(|err| err != 0),
    };
    let sk = ctx_u64(&ctx, config!(rtx_skaddr)).unwrap_or(0);
    let netns = counted_netns(sock_netns(sk), failed);
    let state = ctx_u32(&ctx, config!(rtx_state)).unwrap_or(0);
    let key = flow_key(
        &ctx,
        netns,
        config!(rtx_family),
        config!(rtx_sport),
        config!(rtx_dport),
        config!(rtx_saddr),
        config!(rtx_daddr),
        config!(rtx_saddr_v6),
        config!(rtx_daddr_v6),
    );
    let skb = ctx_u64(&ctx, config!(rtx_skbaddr)).unwrap_or(0);
    retransmit::<false>(key, failed, state, skb);
    0
}

#[raw_tracepoint(tracepoint = "tcp_retransmit_skb")]
pub fn tcp_retransmit_skb_raw(ctx: RawTracePointContext) -> u32 {
    retransmit_from_args::<false>(ctx.as_ptr())
}

#[btf_tracepoint(function = "tcp_retransmit_skb")]
pub fn tcp_retransmit_skb_btf(ctx: BtfTracePointContext) -> u32 {
    retransmit_from_args::<true>(ctx.as_ptr())
}

/// The raw/BTF hooks: the socket, skb and error from the arguments, the flow and state from
/// the socket itself (`TYPED`: the BTF hook, read with plain loads).
#[inline(always)]
fn retransmit_from_args<const TYPED: bool>(ctx: *mut core::ffi::c_void) -> u32 {
    bump(counter::RETRANSMIT_EVENTS);
    let failed = arg_u64(ctx, config!(rtx_arg_err)).is_some_and(|err| err as i32 != 0);
    let sk = arg_u64(ctx, config!(rtx_arg_sk)).unwrap_or(0);
    let netns = counted_netns(sock_netns_of::<TYPED>(sk), failed);
    let state = sock_state::<TYPED>(sk).unwrap_or(0);
    let key = sock_flow_key::<TYPED>(sk, netns);
    let skb = arg_u64(ctx, config!(rtx_arg_skb)).unwrap_or(0);
    retransmit::<TYPED>(key, failed, state, skb);
    0
}

/// Counts a failed attempt, and the socket's namespace (0, counted as unknown, when unread).
#[inline(always)]
fn counted_netns(netns: Option<u32>, failed: bool) -> u32 {
    if failed {
        bump(counter::RETRANSMIT_FAILED);
    }
    netns.unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    })
}

/// One retransmission (or failed attempt) of a flow, with the segments in its skb.
#[inline(always)]
fn retransmit<const TYPED: bool>(key: Option<FlowKey>, failed: bool, state: u32, skb: u64) {
    let Some(key) = key else {
        bump(counter::READ_ERRORS);
        return;
    };
    if failed {
        flow_add(&key, 0, 0, 0, 1, state);
    } else {
        // Segments in this skb (TCP_SKB_CB(skb)->tcp_gso_segs); 1 when unknown.
        let segs = kernel_read::<u16, TYPED>(skb, config!(skb_tcp_segs))
            .map_or(1, |s| u64::from(s).max(1));
        flow_add(&key, 1, segs, 0, 0, state);
    }
}

#[tracepoint]
pub fn tcp_retransmit_synack(ctx: TracePointContext) -> u32 {
    bump(counter::SYNACK_EVENTS);
    let netns = synack_netns(ctx_u64(&ctx, config!(synack_skaddr)).unwrap_or(0));
    let key = flow_key(
        &ctx,
        netns,
        config!(synack_family),
        config!(synack_sport),
        config!(synack_dport),
        config!(synack_saddr),
        config!(synack_daddr),
        config!(synack_saddr_v6),
        config!(synack_daddr_v6),
    );
    synack(key);
    0
}

#[raw_tracepoint(tracepoint = "tcp_retransmit_synack")]
pub fn tcp_retransmit_synack_raw(ctx: RawTracePointContext) -> u32 {
    synack_from_args(ctx.as_ptr())
}

#[btf_tracepoint(function = "tcp_retransmit_synack")]
pub fn tcp_retransmit_synack_btf(ctx: BtfTracePointContext) -> u32 {
    synack_from_args(ctx.as_ptr())
}

/// The raw/BTF hooks: the namespace from the listener, the flow from the request socket
/// (its `sock_common` at `req_common`, read at the same offsets as a socket's).
#[inline(always)]
fn synack_from_args(ctx: *mut core::ffi::c_void) -> u32 {
    bump(counter::SYNACK_EVENTS);
    let netns = synack_netns(arg_u64(ctx, config!(synack_arg_sk)).unwrap_or(0));
    let key = match arg_u64(ctx, config!(synack_arg_req)) {
        Some(req) if req != 0 => {
            sock_flow_key::<false>(req + u64::from(config!(req_common)), netns)
        }
        _ => None,
    };
    synack(key);
    0
}

/// The listener's namespace (0, counted as unknown, when unread).
#[inline(always)]
fn synack_netns(sk: u64) -> u32 {
    sock_netns(sk).unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    })
}

/// One SYN-ACK retransmission of a half-open connection.
#[inline(always)]
fn synack(key: Option<FlowKey>) {
    let Some(key) = key else {
        bump(counter::READ_ERRORS);
        return;
    };
    // State 0: the listener's state says nothing about this half-open connection.
    flow_add(&key, 0, 0, 1, 0, 0);
}
