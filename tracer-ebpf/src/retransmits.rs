//! Retransmits: `tcp:tcp_retransmit_skb` (retransmissions, segments, failed attempts) and
//! `tcp:tcp_retransmit_synack` per flow, into `RETRANS_FLOWS` (a bounded LRU hash), the former
//! through `RETRANS_SLOTS` (per CPU, a few slots holding a flow's counts until another flow
//! takes the slot); this module owns both. One body per event, three hooks: the classic
//! tracepoint reads its record, the raw and BTF tracepoints the arguments and the sockets.
//!
//! May use `shared` (configuration, record and argument reads, namespaces, counters); no other
//! family.

use core::{
    mem::MaybeUninit,
    ptr::{addr_of, addr_of_mut, read_volatile, write_volatile},
};

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{LruHashMap, PerCpuArray},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use tracer_common::{
    counter, retrans_slot_index, FlowKey, FlowStats, RetransSlot, RetransSlots, ABSENT,
    RETRANS_FLOWS_MAX_ENTRIES, RETRANS_SLOTS as RETRANS_SLOTS_PER_CPU, RETRANS_SLOT_FLUSH,
};

use crate::shared::{
    args::{arg_u64, kernel_read, sock_flow_key, sock_state},
    atomic_add64, bump, config, count_run,
    netns::{sock_netns, sock_netns_of},
    record::{ctx_u32, ctx_u64, flow_key},
};

#[map(name = "RETRANS_FLOWS")]
static RETRANS_FLOWS: LruHashMap<FlowKey, FlowStats> =
    LruHashMap::with_max_entries(RETRANS_FLOWS_MAX_ENTRIES, 0);

/// Per CPU: the flows last retransmitted and their counts not yet in `RETRANS_FLOWS` (see
/// [`RetransSlot`]).
#[map(name = "RETRANS_SLOTS")]
static RETRANS_SLOTS: PerCpuArray<RetransSlots> = PerCpuArray::with_max_entries(1, 0);

/// Adds to a flow's counters, inserting the flow when it is new.
///
/// Atomic adds, and an insert that never replaces: one CPU may move a slot's counts of a flow
/// into the map while another retransmits that flow (under the socket's lock, which the first
/// does not hold).
#[inline(always)]
fn flow_add(key: &FlowKey, retransmits: u64, segments: u64, synacks: u64, failed: u64, state: u32) {
    if add_to_entry(key, retransmits, segments, synacks, failed, state) {
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
        .insert(key, unsafe { &*stats.as_ptr() }, BPF_NOEXIST as u64)
        .is_ok()
    {
        bump(counter::FLOW_INSERTS);
    } else if !add_to_entry(key, retransmits, segments, synacks, failed, state) {
        // Not created by another CPU in between: the insert itself failed.
        bump(counter::FLOWS_INSERT_FAILED);
    }
}

/// Adds to the flow's entry when it exists (false: no entry).
#[inline(always)]
fn add_to_entry(
    key: &FlowKey,
    retransmits: u64,
    segments: u64,
    synacks: u64,
    failed: u64,
    state: u32,
) -> bool {
    let Some(stats) = RETRANS_FLOWS.get_ptr_mut(key) else {
        return false;
    };
    unsafe {
        if retransmits != 0 {
            atomic_add64(addr_of_mut!((*stats).retransmits), retransmits);
            atomic_add64(addr_of_mut!((*stats).retransmitted_segments), segments);
        }
        if synacks != 0 {
            atomic_add64(addr_of_mut!((*stats).synack_retransmits), synacks);
        }
        if failed != 0 {
            atomic_add64(addr_of_mut!((*stats).failed_attempts), failed);
        }
        if state != 0 {
            write_volatile(addr_of_mut!((*stats).last_state), state);
        }
    }
    true
}

#[tracepoint]
pub fn tcp_retransmit_skb(ctx: TracePointContext) -> u32 {
    count_run(counter::RETRANSMIT_EVENTS);
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
    count_run(counter::RETRANSMIT_EVENTS);
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
        count_retransmit(&key, 0, 0, 1, state);
    } else {
        // Segments in this skb (TCP_SKB_CB(skb)->tcp_gso_segs); 1 when unknown.
        let segs = kernel_read::<u16, TYPED>(skb, config!(skb_tcp_segs))
            .map_or(1, |s| u64::from(s).max(1));
        count_retransmit(&key, 1, segs, 0, state);
    }
}

/// Whether two flows are the same (word by word: no `memcmp` on the BPF target).
#[inline(always)]
fn same_flow(a: &FlowKey, b: &FlowKey) -> bool {
    a.netns == b.netns
        && a.family == b.family
        && a.sport == b.sport
        && a.dport == b.dport
        && a.saddr[0] == b.saddr[0]
        && a.saddr[1] == b.saddr[1]
        && a.saddr[2] == b.saddr[2]
        && a.saddr[3] == b.saddr[3]
        && a.daddr[0] == b.daddr[0]
        && a.daddr[1] == b.daddr[1]
        && a.daddr[2] == b.daddr[2]
        && a.daddr[3] == b.daddr[3]
}

/// Counts a retransmission (or failed attempt) of a flow: plain adds to this CPU's slot when
/// the slot holds the flow; otherwise the slot's counts go into `RETRANS_FLOWS` and the slot
/// takes this flow. A slot that reaches `RETRANS_SLOT_FLUSH` moves its counts too and keeps
/// its flow. User space adds the stable slots to the map (`kernel/retrans_slots.rs`).
#[inline(always)]
fn count_retransmit(key: &FlowKey, retransmits: u64, segments: u64, failed: u64, state: u32) {
    // Index 0 of a per-CPU array always exists; the mask keeps the index in bounds.
    let slot = RETRANS_SLOTS
        .get_ptr_mut(0)
        .and_then(|slots| unsafe {
            (*slots)
                .slots
                .get_mut(retrans_slot_index(key) & (RETRANS_SLOTS_PER_CPU - 1))
        })
        .map(|slot| slot as *mut RetransSlot);
    // SAFETY (every access below): this CPU's slot. Where runs may nest (`guarded`), a run
    // that interrupts another on the same CPU sees `busy` set and leaves the slot alone;
    // elsewhere the kernel never starts one and the verifier drops the flag (frozen
    // configuration). Volatile, so the compiler keeps the order of the writes user space
    // relies on (`seq` odd around a move).
    // (flow, retransmits, segments, failed, state) to add to the map, and the slot to finish.
    let guarded = config!(runs_may_nest) != 0;
    let (map_key, r, s, f, st, taken) = match slot {
        Some(slot) if !guarded || unsafe { read_volatile(addr_of!((*slot).busy)) } == 0 => unsafe {
            if guarded {
                write_volatile(addr_of_mut!((*slot).busy), 1);
            }
            let held = read_volatile(addr_of!((*slot).key));
            let pending_r = addr_of_mut!((*slot).retransmits);
            let pending_s = addr_of_mut!((*slot).retransmitted_segments);
            let pending_f = addr_of_mut!((*slot).failed_attempts);
            let holds = same_flow(&held, key);
            if holds {
                let total_r = read_volatile(pending_r) + retransmits;
                let total_f = read_volatile(pending_f) + failed;
                if total_r + total_f < RETRANS_SLOT_FLUSH {
                    write_volatile(pending_r, total_r);
                    write_volatile(pending_s, read_volatile(pending_s) + segments);
                    write_volatile(pending_f, total_f);
                    if state != 0 {
                        write_volatile(addr_of_mut!((*slot).last_state), state);
                    }
                    if guarded {
                        write_volatile(addr_of_mut!((*slot).busy), 0);
                    }
                    return;
                }
            }
            let seq = read_volatile(addr_of!((*slot).seq));
            write_volatile(addr_of_mut!((*slot).seq), seq.wrapping_add(1));
            let last = read_volatile(addr_of!((*slot).last_state));
            let (r, s, f) = (
                read_volatile(pending_r),
                read_volatile(pending_s),
                read_volatile(pending_f),
            );
            if holds {
                // Full: this retransmission and the pending ones go to the map together.
                (
                    held,
                    r + retransmits,
                    s + segments,
                    f + failed,
                    if state != 0 { state } else { last },
                    Some((slot, seq, true)),
                )
            } else {
                (held, r, s, f, last, Some((slot, seq, false)))
            }
        },
        // Busy (only where runs may nest): this run interrupted another using the slot (or no
        // slot): straight to the map.
        _ => (*key, retransmits, segments, failed, state, None),
    };
    if r != 0 || f != 0 {
        flow_add(&map_key, r, s, 0, f, st);
    }
    if let Some((slot, seq, kept)) = taken {
        unsafe {
            let (r, s, f) = if kept {
                (0, 0, 0)
            } else {
                write_volatile(addr_of_mut!((*slot).key), *key);
                write_volatile(addr_of_mut!((*slot).last_state), state);
                (retransmits, segments, failed)
            };
            write_volatile(addr_of_mut!((*slot).retransmits), r);
            write_volatile(addr_of_mut!((*slot).retransmitted_segments), s);
            write_volatile(addr_of_mut!((*slot).failed_attempts), f);
            write_volatile(addr_of_mut!((*slot).seq), seq.wrapping_add(2));
            if guarded {
                write_volatile(addr_of_mut!((*slot).busy), 0);
            }
        }
    }
}

#[tracepoint]
pub fn tcp_retransmit_synack(ctx: TracePointContext) -> u32 {
    count_run(counter::SYNACK_EVENTS);
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
    count_run(counter::SYNACK_EVENTS);
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
