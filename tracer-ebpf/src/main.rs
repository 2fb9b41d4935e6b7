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
    counter, lat_bucket, log2_bucket, DestKey, DestStats, DropKey, ErrorKey, FlowKey, FlowStats,
    ResetKey, SoftirqStats, TracerConfig, ABSENT, CONNECT_START_MAX_ENTRIES, DESTS_MAX_ENTRIES,
    DROPS_MAX_ENTRIES, FAMILY_INET, FAMILY_INET6, RESETS_MAX_ENTRIES, RESET_RECEIVED, RESET_SENT,
    RETRANS_FLOWS_MAX_ENTRIES, SOCK_ERRORS_MAX_ENTRIES, SOFTIRQ_VECTORS,
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
    54, 56, 58, 60, 62, 64, 66, 68, 70, 72, 74, 76, 78, 80, 82, 84, 86, 88, 90, 92, 94, 96
]);
#[rustfmt::skip]
ctx_loader!(ctx_u32, u32, "u32", [
    8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64, 68, 72, 76, 80, 84, 88, 92, 96,
    100, 104
]);
#[rustfmt::skip]
ctx_loader!(ctx_u64, u64, "u64", [
    8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128
]);

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
    } else {
        bump(counter::FLOW_INSERTS);
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

// ---------------------------------------------------------------------------------------------
// Destinations: RTT, connection outcomes, resets, socket errors.

#[map(name = "DESTS")]
static DESTS: LruHashMap<DestKey, DestStats> = LruHashMap::with_max_entries(DESTS_MAX_ENTRIES, 0);

/// One all-zero [`DestStats`], never written: the value a new destination is inserted with
/// (1 KiB does not fit the 512-byte BPF stack).
#[map(name = "DEST_ZERO")]
static DEST_ZERO: PerCpuArray<DestStats> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "RESETS")]
static RESETS: LruHashMap<ResetKey, u64> = LruHashMap::with_max_entries(RESETS_MAX_ENTRIES, 0);

#[map(name = "SOCK_ERRORS")]
static SOCK_ERRORS: LruHashMap<ErrorKey, u64> =
    LruHashMap::with_max_entries(SOCK_ERRORS_MAX_ENTRIES, 0);

/// Socket address → `bpf_ktime_get_ns` when it entered SYN_SENT.
#[map(name = "CONNECT_START")]
static CONNECT_START: LruHashMap<u64, u64> =
    LruHashMap::with_max_entries(CONNECT_START_MAX_ENTRIES, 0);

/// Per CPU: four recently seen sockets of `tcp_probe` and their namespaces (slot chosen by the
/// socket's address), each re-read every [`DEV_CACHE_REVALIDATE`] uses: both ends of a busy
/// connection, or a few busy sockets, cost no kernel read per segment.
#[repr(C)]
struct SkNetns {
    sk: u64,
    inum: u32,
    uses: u32,
}

/// Slots of [`SK_NETNS_CACHE`] (a power of two).
const SK_CACHE_SLOTS: u32 = 4;

#[map(name = "SK_NETNS_CACHE")]
static SK_NETNS_CACHE: PerCpuArray<SkNetns> = PerCpuArray::with_max_entries(SK_CACHE_SLOTS, 0);

/// Per CPU: the last TCP socket that moved to CLOSE. `inet_sk_error_report` has no socket
/// address in its record; the kernel reports the error right after closing the socket
/// (`tcp_done_with_error`) on the same CPU, so a matching flow gives the error its namespace.
#[repr(C)]
struct LastClose {
    netns: u32,
    family: u16,
    sport: u16,
    dport: u16,
    _pad: u16,
    daddr: [u32; 4],
}

#[map(name = "LAST_CLOSE")]
static LAST_CLOSE: PerCpuArray<LastClose> = PerCpuArray::with_max_entries(1, 0);

/// One BPF atomic add (`lock xadd`) to a map value. Written out: `core` has no atomic
/// read-modify-write for the BPF target.
#[inline(always)]
fn atomic_add64(p: *mut u64, v: u64) {
    // SAFETY: `p` points into a map value the verifier has checked.
    unsafe {
        core::arch::asm!(
            "lock *(u64 *)({p} + 0) += {v}",
            p = in(reg) p,
            v = in(reg) v,
            options(nostack, preserves_flags)
        );
    }
}

/// The 32-bit atomic add, for histogram buckets.
#[inline(always)]
fn atomic_add32(p: *mut u32, v: u32) {
    // SAFETY: as above.
    unsafe {
        core::arch::asm!(
            "lock *(u32 *)({p} + 0) += {v}",
            p = in(reg) p,
            v = in(reg) u64::from(v),
            options(nostack, preserves_flags)
        );
    }
}

/// Namespace of a socket through the per-CPU cache.
#[inline(always)]
fn sock_netns_cached(sk: u64) -> Option<u32> {
    // Sockets are slab objects of ~2 KiB: bits above 11 tell them apart.
    let slot = ((sk >> 11) ^ (sk >> 13)) as u32 & (SK_CACHE_SLOTS - 1);
    let cache = SK_NETNS_CACHE.get_ptr_mut(slot)?;
    unsafe {
        if (*cache).sk == sk && (*cache).uses < DEV_CACHE_REVALIDATE {
            (*cache).uses += 1;
            return Some((*cache).inum);
        }
    }
    let inum = sock_netns(sk)?;
    unsafe {
        (*cache).sk = sk;
        (*cache).inum = inum;
        (*cache).uses = 0;
    }
    Some(inum)
}

/// The destination's entry, created (all zero) when new. Counts new keys for the eviction
/// accounting, and what could not be kept.
#[inline(always)]
fn dest_entry(key: &DestKey) -> Option<*mut DestStats> {
    if let Some(p) = DESTS.get_ptr_mut(key) {
        return Some(p);
    }
    let zero = DEST_ZERO.get_ptr(0)?;
    // BPF_NOEXIST: when another CPU created it in between, use that one (not a new key).
    #[allow(
        clippy::needless_borrows_for_generic_args,
        reason = "the value is the map's zero template, passed by pointer, never copied"
    )]
    if DESTS
        .insert(key, unsafe { &*zero }, BPF_NOEXIST as u64)
        .is_ok()
    {
        bump(counter::DEST_INSERTS);
    }
    let p = DESTS.get_ptr_mut(key);
    if p.is_none() {
        bump(counter::DESTS_INSERT_FAILED);
    }
    p
}

/// A `struct sockaddr_in`/`sockaddr_in6` recorded in a 28-byte field: family, port (network
/// order) and address. Returns (family, port in host order, address words).
#[inline(always)]
fn ctx_sockaddr(ctx: &TracePointContext, offset: u32) -> Option<(u16, u16, [u32; 4])> {
    if offset == ABSENT {
        return None;
    }
    let family = ctx_u16(ctx, offset)?;
    let port = u16::from_be(ctx_u16(ctx, offset + 2)?);
    let addr = if family == FAMILY_INET {
        [ctx_addr4(ctx, offset + 4)?, 0, 0, 0]
    } else {
        ctx_addr6(ctx, offset + 8)?
    };
    Some((family, port, addr))
}

/// A destination from separate family / port / address fields (family absent: IPv6 field
/// holding a v4-mapped address means IPv4).
#[inline(always)]
fn dest_key(
    ctx: &TracePointContext,
    netns: u32,
    family_off: u32,
    dport_off: u32,
    daddr_off: u32,
    daddr6_off: u32,
) -> Option<DestKey> {
    let dport = ctx_u16(ctx, dport_off)?;
    let family = match family_off {
        ABSENT => FAMILY_INET6,
        offset => ctx_u16(ctx, offset)?,
    };
    let daddr = if family == FAMILY_INET {
        [ctx_addr4(ctx, daddr_off)?, 0, 0, 0]
    } else {
        ctx_addr6(ctx, daddr6_off)?
    };
    Some(DestKey {
        netns,
        family,
        dport,
        daddr,
    })
}

/// Smoothed RTT per received segment, into the destination's histogram. The hot path: one
/// cached namespace, one hash lookup, two atomic adds (the sample count is the histogram's
/// sum, added up in user space).
#[tracepoint]
pub fn tcp_probe(ctx: TracePointContext) -> u32 {
    bump(counter::TCP_PROBE_EVENTS);
    let Some(srtt) = ctx_u32(&ctx, cfg!(probe_srtt)) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    // No RTT measured yet on this socket.
    if srtt == 0 {
        return 0;
    }
    let Some((family, dport, daddr)) = ctx_sockaddr(&ctx, cfg!(probe_daddr_sa)) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    let sk = ctx_u64(&ctx, cfg!(probe_skaddr)).unwrap_or(0);
    let netns = if sk == 0 { None } else { sock_netns_cached(sk) }.unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    });
    let key = DestKey {
        netns,
        family,
        dport,
        daddr,
    };
    let Some(stats) = dest_entry(&key) else {
        return 0;
    };
    let bucket = lat_bucket(u64::from(srtt));
    unsafe {
        atomic_add64(addr_of_mut!((*stats).rtt_sum_us), u64::from(srtt));
        if let Some(slot) = (*stats).rtt_hist.get_mut(bucket) {
            atomic_add32(slot, 1);
        }
    }
    0
}

/// Connection outcomes per destination and connect time (SYN_SENT → ESTABLISHED).
#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let tcp = cfg!(ipproto_tcp);
    if tcp != 0 {
        match ctx_u16(&ctx, cfg!(ss_protocol)) {
            Some(p) if u32::from(p) == tcp => {}
            _ => return 0,
        }
    }
    bump(counter::STATE_EVENTS);
    let (Some(old), Some(new)) = (
        ctx_u32(&ctx, cfg!(ss_oldstate)),
        ctx_u32(&ctx, cfg!(ss_newstate)),
    ) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    let (syn_sent, close) = (cfg!(tcp_syn_sent), cfg!(tcp_close));
    if new != syn_sent && old != syn_sent && new != close {
        return 0;
    }
    if old == cfg!(tcp_listen) {
        return 0;
    }
    let sk = ctx_u64(&ctx, cfg!(ss_skaddr)).unwrap_or(0);
    let netns = sock_netns(sk).unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    });
    let Some(key) = dest_key(
        &ctx,
        netns,
        cfg!(ss_family),
        cfg!(ss_dport),
        cfg!(ss_daddr),
        cfg!(ss_daddr_v6),
    ) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    if new == close {
        if let Some(last) = LAST_CLOSE.get_ptr_mut(0) {
            let sport = ctx_u16(&ctx, cfg!(ss_sport)).unwrap_or(0);
            unsafe {
                (*last).netns = netns;
                (*last).family = key.family;
                (*last).sport = sport;
                (*last).dport = key.dport;
                (*last).daddr = key.daddr;
            }
        }
    }
    // A connection that had been set up and is now gone: counted only for a destination
    // already tracked (a busy server's clients would otherwise churn the map one ephemeral
    // port at a time).
    if new == close && old != syn_sent {
        if let Some(stats) = DESTS.get_ptr_mut(key) {
            unsafe { atomic_add64(addr_of_mut!((*stats).closed), 1) };
        }
        return 0;
    }
    let Some(stats) = dest_entry(&key) else {
        return 0;
    };
    if new == syn_sent {
        let now = unsafe { bpf_ktime_get_ns() };
        let _ = CONNECT_START.insert(sk, now, 0);
        unsafe { atomic_add64(addr_of_mut!((*stats).connects), 1) };
        return 0;
    }
    if old == syn_sent {
        let started = unsafe { CONNECT_START.get(sk) }.copied();
        let _ = CONNECT_START.remove(sk);
        if new == cfg!(tcp_established) {
            unsafe { atomic_add64(addr_of_mut!((*stats).established), 1) };
            match started {
                Some(t0) => {
                    let us = unsafe { bpf_ktime_get_ns() }.saturating_sub(t0) / 1000;
                    let bucket = lat_bucket(us);
                    unsafe {
                        atomic_add64(addr_of_mut!((*stats).connect_timed), 1);
                        atomic_add64(addr_of_mut!((*stats).connect_sum_us), us);
                        if let Some(slot) = (*stats).connect_hist.get_mut(bucket) {
                            atomic_add32(slot, 1);
                        }
                    }
                }
                None => bump(counter::CONNECT_START_MISSING),
            }
        } else if new == close {
            unsafe { atomic_add64(addr_of_mut!((*stats).failed), 1) };
        }
    }
    0
}

#[inline(always)]
fn reset_add(key: &ResetKey) {
    if let Some(count) = RESETS.get_ptr_mut(key) {
        atomic_add64(count, 1);
        return;
    }
    if RESETS.insert(key, 1, BPF_NOEXIST as u64).is_err() {
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
    let sk = ctx_u64(&ctx, cfg!(rst_tx_skaddr)).unwrap_or(0);
    // No socket (a segment to a closed port): the namespace of the device it came in on.
    let netns = if sk != 0 {
        sock_netns(sk)
    } else {
        skb_netns(ctx_u64(&ctx, cfg!(rst_tx_skbaddr)).unwrap_or(0), 0)
    }
    .unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    });
    let reason = match cfg!(rst_tx_reason) {
        ABSENT => ABSENT,
        offset => ctx_u32(&ctx, offset).unwrap_or(ABSENT),
    };
    let flow = if cfg!(rst_tx_saddr_sa) != ABSENT {
        // Since 6.10 both ends are sockaddrs, the peer in `daddr` whichever way they were
        // filled (from the socket, or reversed from the incoming segment).
        match (
            ctx_sockaddr(&ctx, cfg!(rst_tx_saddr_sa)),
            ctx_sockaddr(&ctx, cfg!(rst_tx_daddr_sa)),
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
            cfg!(rst_tx_family),
            cfg!(rst_tx_sport),
            cfg!(rst_tx_dport),
            cfg!(rst_tx_saddr),
            cfg!(rst_tx_daddr),
            cfg!(rst_tx_saddr_v6),
            cfg!(rst_tx_daddr_v6),
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
    let sk = ctx_u64(&ctx, cfg!(rst_rx_skaddr)).unwrap_or(0);
    let netns = sock_netns(sk).unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    });
    let Some(flow) = flow_key(
        &ctx,
        netns,
        cfg!(rst_rx_family),
        cfg!(rst_rx_sport),
        cfg!(rst_rx_dport),
        cfg!(rst_rx_saddr),
        cfg!(rst_rx_daddr),
        cfg!(rst_rx_saddr_v6),
        cfg!(rst_rx_daddr_v6),
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

/// A socket error (ETIMEDOUT, EHOSTUNREACH, ECONNREFUSED, …) per destination.
#[tracepoint]
pub fn inet_sk_error_report(ctx: TracePointContext) -> u32 {
    let tcp = cfg!(ipproto_tcp);
    if tcp != 0 {
        match ctx_u16(&ctx, cfg!(err_protocol)) {
            Some(p) if u32::from(p) == tcp => {}
            _ => return 0,
        }
    }
    bump(counter::ERROR_REPORT_EVENTS);
    let Some(error) = ctx_u32(&ctx, cfg!(err_error)) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    // `tcp_disconnect` (after a failed connect) reports with no error set: not an error.
    if error == 0 {
        return 0;
    }
    let Some(mut dest) = dest_key(
        &ctx,
        0,
        cfg!(err_family),
        cfg!(err_dport),
        cfg!(err_daddr),
        cfg!(err_daddr_v6),
    ) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    let sport = ctx_u16(&ctx, cfg!(err_sport)).unwrap_or(0);
    let mut matched = false;
    if let Some(last) = LAST_CLOSE.get_ptr(0) {
        unsafe {
            if (*last).family == dest.family
                && (*last).sport == sport
                && (*last).dport == dest.dport
                && (*last).daddr[0] == dest.daddr[0]
                && (*last).daddr[1] == dest.daddr[1]
                && (*last).daddr[2] == dest.daddr[2]
                && (*last).daddr[3] == dest.daddr[3]
            {
                dest.netns = (*last).netns;
                matched = true;
            }
        }
    }
    if !matched {
        bump(counter::ERROR_NETNS_UNMATCHED);
    }
    let key = ErrorKey {
        dest,
        error,
        _pad: 0,
    };
    if let Some(count) = SOCK_ERRORS.get_ptr_mut(key) {
        atomic_add64(count, 1);
    } else if SOCK_ERRORS.insert(key, 1, BPF_NOEXIST as u64).is_err() {
        match SOCK_ERRORS.get_ptr_mut(key) {
            Some(count) => atomic_add64(count, 1),
            None => bump(counter::RESETS_INSERT_FAILED),
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
