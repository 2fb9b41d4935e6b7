//! Kernel programs of the tracer: count drops, retransmits and softirq time into maps, nothing more.
//! Offsets come from the loader (`CONFIG`); names, layers and meaning are decided in user space.
#![no_std]
#![no_main]
#![feature(asm_experimental_arch)]

use core::{
    mem::MaybeUninit,
    ptr::{addr_of, addr_of_mut, read_volatile, write_volatile},
};

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::{map, tracepoint},
    maps::{LruHashMap, PerCpuArray, PerCpuHashMap},
    programs::TracePointContext,
    EbpfContext,
};
use tracer_common::{
    counter, log2_bucket, DropKey, FlowKey, FlowStats, SoftirqStats, TracerConfig, ABSENT,
    DROPS_MAX_ENTRIES, FAMILY_INET, FAMILY_INET6, RETRANS_FLOWS_MAX_ENTRIES, SOFTIRQ_VECTORS,
};

/// Offsets, overridden by the loader at load time (lives in `.rodata`, frozen after load).
#[unsafe(no_mangle)]
static CONFIG: TracerConfig = TracerConfig::absent();

#[map(name = "DROPS")]
static DROPS: PerCpuHashMap<DropKey, u64> = PerCpuHashMap::with_max_entries(DROPS_MAX_ENTRIES, 0);

#[map(name = "RETRANS_FLOWS")]
static RETRANS_FLOWS: LruHashMap<FlowKey, FlowStats> =
    LruHashMap::with_max_entries(RETRANS_FLOWS_MAX_ENTRIES, 0);

#[map(name = "SOFTIRQ_START")]
static SOFTIRQ_START: PerCpuArray<u64> = PerCpuArray::with_max_entries(SOFTIRQ_VECTORS, 0);

#[map(name = "SOFTIRQ_STATS")]
static SOFTIRQ_STATS: PerCpuArray<SoftirqStats> = PerCpuArray::with_max_entries(SOFTIRQ_VECTORS, 0);

#[map(name = "PROBE_COUNTERS")]
static PROBE_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Reads one configuration field; the volatile read keeps the compiler from folding the default.
macro_rules! cfg {
    ($field:ident) => {
        unsafe { read_volatile(addr_of!(CONFIG.$field)) }
    };
}

#[inline(always)]
fn bump(index: u32) {
    if let Some(slot) = PROBE_COUNTERS.get_ptr_mut(index) {
        // Per-CPU slot: no other CPU writes it.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
fn read_field<T>(ctx: &TracePointContext, offset: u32) -> Option<T> {
    if offset == ABSENT {
        return None;
    }
    unsafe { ctx.read_at::<T>(offset as usize) }.ok()
}

/// Direct loads from the tracepoint record at an offset known only at load time.
///
/// The verifier accepts context loads only at offsets encoded in the instruction, so each
/// possible aligned offset gets its own arm; the offset comes from frozen `.rodata`, which the
/// verifier treats as a constant, so it walks only the arm taken and the others cost nothing.
/// A direct load is a few instructions where `bpf_probe_read_kernel` is a helper call; fields
/// outside the arms (unaligned, far) fall back to the helper.
macro_rules! ctx_loader {
    ($name:ident, $ty:ty, $width:literal, [$($off:literal),*]) => {
        #[inline(always)]
        fn $name(ctx: &TracePointContext, offset: u32) -> Option<$ty> {
            let base = ctx.as_ptr() as u64;
            match offset {
                $(
                    $off => {
                        let value: u64;
                        // The load is written out so its offset stays an immediate: LLVM may
                        // turn a switch of plain loads into one load at a computed offset,
                        // which the verifier refuses ("dereference of modified ctx ptr").
                        unsafe {
                            core::arch::asm!(
                                concat!("{v} = *(", $width, " *)({b} + ", stringify!($off), ")"),
                                v = out(reg) value,
                                b = in(reg) base,
                                options(readonly, nostack, preserves_flags)
                            );
                        }
                        Some(value as $ty)
                    }
                )*
                _ => read_field::<$ty>(ctx, offset),
            }
        }
    };
}

#[rustfmt::skip]
ctx_loader!(ctx_u16, u16, "u16", [
    8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52,
    54, 56, 58, 60, 62, 64, 66, 68, 70, 72, 74, 76, 78, 80
]);
#[rustfmt::skip]
ctx_loader!(ctx_u32, u32, "u32", [
    8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64, 68, 72, 76, 80
]);
ctx_loader!(ctx_u64, u64, "u64", [8, 16, 24, 32, 40, 48, 56, 64, 72, 80]);

/// Reads a kernel pointer field at `base + offset`; None for a null base, an absent offset or a
/// failed read.
#[inline(always)]
fn read_kernel_u64(base: u64, offset: u32) -> Option<u64> {
    if base == 0 || offset == ABSENT {
        return None;
    }
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const u64) }.ok()
}

/// Inode of the network namespace behind a `struct net *`.
#[inline(always)]
fn net_inum(net: u64) -> Option<u32> {
    let inum_off = cfg!(net_inum);
    if net == 0 || inum_off == ABSENT {
        return None;
    }
    unsafe { bpf_probe_read_kernel((net + inum_off as u64) as *const u32) }.ok()
}

/// Namespace of a socket (`sk->__sk_common.skc_net.net->ns.inum`).
#[inline(always)]
fn sock_netns(sk: u64) -> Option<u32> {
    net_inum(read_kernel_u64(sk, cfg!(sk_net))?)
}

/// Per CPU: the last device seen and its namespace, re-read every [`DEV_CACHE_REVALIDATE`]
/// uses. A flood through one device then costs one kernel read per drop instead of three.
#[repr(C)]
struct DevNetns {
    dev: u64,
    inum: u32,
    uses: u32,
}

/// A device pointer freed and reused by a device of another namespace (or a device moved
/// between namespaces) is attributed to the old namespace for at most this many drops on a CPU.
const DEV_CACHE_REVALIDATE: u32 = 256;

#[map(name = "DEV_NETNS_CACHE")]
static DEV_NETNS_CACHE: PerCpuArray<DevNetns> = PerCpuArray::with_max_entries(1, 0);

/// Namespace of a device, through the per-CPU cache.
#[inline(always)]
fn dev_netns(dev: u64) -> Option<u32> {
    let cache = DEV_NETNS_CACHE.get_ptr_mut(0)?;
    unsafe {
        if (*cache).dev == dev && (*cache).uses < DEV_CACHE_REVALIDATE {
            (*cache).uses += 1;
            return Some((*cache).inum);
        }
    }
    let inum = read_kernel_u64(dev, cfg!(dev_net)).and_then(net_inum)?;
    unsafe {
        (*cache).dev = dev;
        (*cache).inum = inum;
        (*cache).uses = 0;
    }
    Some(inum)
}

/// Namespace of an skb: its device's namespace, else its socket's, else the receiving socket's.
#[inline(always)]
fn skb_netns(skb: u64, rx_sk: u64) -> Option<u32> {
    if let Some(dev) = read_kernel_u64(skb, cfg!(skb_dev)) {
        if dev != 0 {
            if let Some(ns) = dev_netns(dev) {
                return Some(ns);
            }
        }
    }
    if let Some(sk) = read_kernel_u64(skb, cfg!(skb_sk)) {
        if let Some(ns) = sock_netns(sk) {
            return Some(ns);
        }
    }
    sock_netns(rx_sk)
}

#[tracepoint]
pub fn kfree_skb(ctx: TracePointContext) -> u32 {
    bump(counter::KFREE_SKB_EVENTS);
    let (Some(skb), Some(location)) = (
        ctx_u64(&ctx, cfg!(kfree_skbaddr)),
        ctx_u64(&ctx, cfg!(kfree_location)),
    ) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    let reason = match cfg!(kfree_reason) {
        ABSENT => ABSENT,
        offset => ctx_u32(&ctx, offset).unwrap_or(ABSENT),
    };
    let rx_sk = match cfg!(kfree_rx_sk) {
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
    if let Some(count) = DROPS.get_ptr_mut(key) {
        // Per-CPU value: no other CPU writes it.
        unsafe { *count += 1 };
    } else if DROPS.insert(key, 1, BPF_NOEXIST as u64).is_err() {
        // Another CPU may have created the key in between (the entry then exists with a zero
        // slot for this CPU); otherwise the map is full and the loss is counted.
        match DROPS.get_ptr_mut(key) {
            Some(count) => unsafe { *count += 1 },
            None => bump(counter::DROPS_MAP_FULL),
        }
    }
    0
}

/// Four address bytes at `offset` as a native-endian word. Address fields are only 2-aligned
/// in the records (e.g. `saddr` at 34), so they are read as two direct 16-bit loads.
#[inline(always)]
fn ctx_addr4(ctx: &TracePointContext, offset: u32) -> Option<u32> {
    if offset == ABSENT {
        return None;
    }
    let (lo, hi) = (
        ctx_u16(ctx, offset)?.to_ne_bytes(),
        ctx_u16(ctx, offset + 2)?.to_ne_bytes(),
    );
    Some(u32::from_ne_bytes([lo[0], lo[1], hi[0], hi[1]]))
}

/// A 16-byte address field as four native-endian words.
#[inline(always)]
fn ctx_addr6(ctx: &TracePointContext, offset: u32) -> Option<[u32; 4]> {
    if offset == ABSENT {
        return None;
    }
    Some([
        ctx_addr4(ctx, offset)?,
        ctx_addr4(ctx, offset + 4)?,
        ctx_addr4(ctx, offset + 8)?,
        ctx_addr4(ctx, offset + 12)?,
    ])
}

/// Addresses of a flow: IPv4 fields when the family says so (or when there is no family field
/// and the v6 field holds a v4-mapped address), else the IPv6 fields.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn flow_key(
    ctx: &TracePointContext,
    netns: u32,
    family_off: u32,
    sport_off: u32,
    dport_off: u32,
    saddr_off: u32,
    daddr_off: u32,
    saddr6_off: u32,
    daddr6_off: u32,
) -> Option<FlowKey> {
    let sport = ctx_u16(ctx, sport_off)?;
    let dport = ctx_u16(ctx, dport_off)?;
    let family = match family_off {
        ABSENT => {
            // Kernels before 5.12 have no family field: a v4-mapped address
            // (::ffff:a.b.c.d) means IPv4.
            let saddr6 = ctx_addr6(ctx, saddr6_off).unwrap_or([0; 4]);
            if saddr6[0] == 0
                && saddr6[1] == 0
                && saddr6[2] == u32::from_ne_bytes([0, 0, 0xff, 0xff])
            {
                FAMILY_INET
            } else {
                FAMILY_INET6
            }
        }
        offset => ctx_u16(ctx, offset)?,
    };
    let (saddr, daddr) = if family == FAMILY_INET {
        (
            [ctx_addr4(ctx, saddr_off)?, 0, 0, 0],
            [ctx_addr4(ctx, daddr_off)?, 0, 0, 0],
        )
    } else {
        (ctx_addr6(ctx, saddr6_off)?, ctx_addr6(ctx, daddr6_off)?)
    };
    Some(FlowKey {
        netns,
        family,
        sport,
        dport,
        _pad: 0,
        saddr,
        daddr,
    })
}

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
    #[allow(
        clippy::needless_borrows_for_generic_args,
        reason = "a by-value copy of the slot brings the memset back"
    )]
    if RETRANS_FLOWS
        .insert(key, unsafe { &*stats.as_ptr() }, 0)
        .is_err()
    {
        bump(counter::FLOWS_INSERT_FAILED);
    }
}

#[tracepoint]
pub fn tcp_retransmit_skb(ctx: TracePointContext) -> u32 {
    bump(counter::RETRANSMIT_EVENTS);
    let failed = match cfg!(rtx_err) {
        ABSENT => false,
        offset => ctx_u32(&ctx, offset).is_some_and(|err| err != 0),
    };
    if failed {
        bump(counter::RETRANSMIT_FAILED);
    }
    let sk = ctx_u64(&ctx, cfg!(rtx_skaddr)).unwrap_or(0);
    let netns = sock_netns(sk).unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    });
    let state = ctx_u32(&ctx, cfg!(rtx_state)).unwrap_or(0);
    let Some(key) = flow_key(
        &ctx,
        netns,
        cfg!(rtx_family),
        cfg!(rtx_sport),
        cfg!(rtx_dport),
        cfg!(rtx_saddr),
        cfg!(rtx_daddr),
        cfg!(rtx_saddr_v6),
        cfg!(rtx_daddr_v6),
    ) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    if failed {
        flow_add(&key, 0, 0, 0, 1, state);
    } else {
        // Segments in this skb (TCP_SKB_CB(skb)->tcp_gso_segs); 1 when unknown.
        let skb = ctx_u64(&ctx, cfg!(rtx_skbaddr)).unwrap_or(0);
        let segs_off = cfg!(skb_tcp_segs);
        let segs = if skb != 0 && segs_off != ABSENT {
            unsafe { bpf_probe_read_kernel((skb + segs_off as u64) as *const u16) }
                .map_or(1, |s| u64::from(s).max(1))
        } else {
            1
        };
        flow_add(&key, 1, segs, 0, 0, state);
    }
    0
}

#[tracepoint]
pub fn tcp_retransmit_synack(ctx: TracePointContext) -> u32 {
    bump(counter::SYNACK_EVENTS);
    let sk = ctx_u64(&ctx, cfg!(synack_skaddr)).unwrap_or(0);
    let netns = sock_netns(sk).unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    });
    let Some(key) = flow_key(
        &ctx,
        netns,
        cfg!(synack_family),
        cfg!(synack_sport),
        cfg!(synack_dport),
        cfg!(synack_saddr),
        cfg!(synack_daddr),
        cfg!(synack_saddr_v6),
        cfg!(synack_daddr_v6),
    ) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    // State 0: the listener's state says nothing about this half-open connection.
    flow_add(&key, 0, 0, 1, 0, 0);
    0
}

#[tracepoint]
pub fn softirq_entry(ctx: TracePointContext) -> u32 {
    let Some(vec) = ctx_u32(&ctx, cfg!(softirq_entry_vec)) else {
        return 0;
    };
    // Only the vectors user space asked for (networking): no clock read for the others.
    let mask = cfg!(softirq_vec_mask);
    if mask != 0 && (vec >= 32 || mask & (1 << vec) == 0) {
        return 0;
    }
    if let Some(start) = SOFTIRQ_START.get_ptr_mut(vec) {
        unsafe { *start = bpf_ktime_get_ns() };
    }
    0
}

#[tracepoint]
pub fn softirq_exit(ctx: TracePointContext) -> u32 {
    let Some(vec) = ctx_u32(&ctx, cfg!(softirq_exit_vec)) else {
        return 0;
    };
    let Some(start) = SOFTIRQ_START.get_ptr_mut(vec) else {
        return 0;
    };
    let started = unsafe { *start };
    if started == 0 {
        bump(counter::SOFTIRQ_UNPAIRED);
        return 0;
    }
    unsafe { *start = 0 };
    let elapsed = unsafe { bpf_ktime_get_ns() }.saturating_sub(started);
    if let Some(stats) = SOFTIRQ_STATS.get_ptr_mut(vec) {
        let bucket = log2_bucket(elapsed);
        unsafe {
            (*stats).runs += 1;
            (*stats).total_ns += elapsed;
            if let Some(slot) = (*stats).hist.get_mut(bucket) {
                *slot += 1;
            }
        }
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
