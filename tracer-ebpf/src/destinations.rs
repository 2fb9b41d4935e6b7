//! Destinations: per remote address and port, RTT (`tcp:tcp_probe`), connection outcomes and
//! connect time (`sock:inet_sock_set_state`) and socket errors (`sock:inet_sk_error_report`).
//! Owns `DESTS` and its zero template `DEST_ZERO`, the per-CPU batches of RTT samples
//! `RTT_PENDING`, `SOCK_ERRORS`, `CONNECT_START`, the socket-namespace cache `SK_NETNS_CACHE`
//! and `LAST_CLOSE` (which gives an error report the namespace of the socket just closed).
//! One body per event, three hooks: the classic tracepoint reads its record, the raw and BTF
//! tracepoints the arguments and the socket.
//!
//! May use `shared` (configuration, record reads, namespaces, counters, atomic adds); no other
//! family.

use core::ptr::addr_of_mut;

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_ktime_get_ns, bpf_skc_to_tcp_sock},
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{LruHashMap, PerCpuArray},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use tracer_common::{
    counter, keyed_by_local_end, lat_bucket, lat_bucket32, DestKey, DestStats, ErrorKey,
    RttPending, RttPendingSlots, ABSENT, CONNECT_START_MAX_ENTRIES, DESTS_MAX_ENTRIES, FAMILY_INET,
    FAMILY_INET6, RTT_PENDING_FLUSH, RTT_PENDING_SLOTS, SOCK_ERRORS_MAX_ENTRIES,
};

use crate::shared::{
    args::{arg_u64, kernel_read, sock_ports, sock_protocol_is, sock_remote, sock_state, sock_u32},
    atomic_add32, atomic_add64, bump, config, count_run,
    flow::End,
    netns::{sock_netns, sock_netns_of, DEV_CACHE_REVALIDATE},
    record::{ctx_addr4, ctx_addr6, ctx_sockaddr, ctx_u16, ctx_u32, ctx_u64},
};

#[map(name = "DESTS")]
static DESTS: LruHashMap<DestKey, DestStats> = LruHashMap::with_max_entries(DESTS_MAX_ENTRIES, 0);

/// One all-zero [`DestStats`], never written: the value a new destination is inserted with
/// (1 KiB does not fit the 512-byte BPF stack).
#[map(name = "DEST_ZERO")]
static DEST_ZERO: PerCpuArray<DestStats> = PerCpuArray::with_max_entries(1, 0);

/// Per CPU: RTT samples counted but not yet added to `DESTS` (see [`RttPending`]).
#[map(name = "RTT_PENDING")]
static RTT_PENDING: PerCpuArray<RttPendingSlots> = PerCpuArray::with_max_entries(1, 0);

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

/// Namespace of a socket through the per-CPU cache, the slot chosen by the connection's two
/// ports (`ports`: local ^ remote). Not by the socket's address: on a BTF tracepoint that is a
/// typed pointer, on which the verifier allows no shift.
#[inline(always)]
fn sock_netns_cached(sk: u64, ports: u16) -> Option<u32> {
    let slot = u32::from(ports ^ (ports >> 8)) & (SK_CACHE_SLOTS - 1);
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

/// Smoothed RTT per received segment, into the destination's histogram (classic tracepoint:
/// the record has the RTT, both ends as sockaddrs and, since 6.10, the socket).
#[tracepoint]
pub fn tcp_probe(ctx: TracePointContext) -> u32 {
    count_run(counter::TCP_PROBE_EVENTS);
    let Some(srtt) = ctx_u32(&ctx, config!(probe_srtt)) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    // No RTT measured yet on this socket.
    if srtt == 0 {
        bump(counter::RTT_UNMEASURED);
        return 0;
    }
    let Some(remote) = ctx_sockaddr(&ctx, config!(probe_daddr_sa)) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    let local = ctx_sockaddr(&ctx, config!(probe_saddr_sa));
    let sk = ctx_u64(&ctx, config!(probe_skaddr)).unwrap_or(0);
    rtt_sample(srtt, remote, local, sk);
    0
}

#[raw_tracepoint(tracepoint = "tcp_probe")]
pub fn tcp_probe_raw(ctx: RawTracePointContext) -> u32 {
    probe_from_args::<false>(ctx.as_ptr())
}

#[btf_tracepoint(function = "tcp_probe")]
pub fn tcp_probe_btf(ctx: BtfTracePointContext) -> u32 {
    probe_from_args::<true>(ctx.as_ptr())
}

/// The raw/BTF hooks: the same values read from the socket (`tcp_sock.srtt_us >> 3`, as the
/// classic record has it; the ends from `sock_common`). `TYPED`: the BTF hook, whose socket
/// fields are plain loads.
///
/// This CPU's pending slots are looked up before the socket's ends are read, and the key is
/// built as its three words ([`dest_words`]) straight from those reads: on the BTF hook the
/// path from there to a slot hit has no call (the per-CPU lookup is one, to the compiler, though
/// the verifier inlines it), so the key's words, the bucket and the slot stay in registers
/// instead of being spilled to the stack around the lookup.
#[inline(always)]
fn probe_from_args<const TYPED: bool>(ctx: *mut core::ffi::c_void) -> u32 {
    count_run(counter::TCP_PROBE_EVENTS);
    let sk = arg_u64(ctx, config!(probe_arg_sk)).unwrap_or(0);
    let Some(srtt_us) = srtt_us::<TYPED>(sk) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    // No `black_box` needed (it cost a stack store and load): `lat_bucket32` is opaque to the
    // optimiser, so it cannot bound the histogram index through `srtt_us`, a relation the
    // verifier would not follow ("unbounded memory access"); the index keeps its bounds check.
    let srtt = srtt_us >> 3;
    if srtt == 0 {
        bump(counter::RTT_UNMEASURED);
        return 0;
    }
    // The bucket, and the BTF hook's namespace (two plain loads), before the slots: the
    // namespace counter's bump, a call to the compiler, then lies before the slots' lookup,
    // where nothing is live but the socket, the RTT, its bucket and the namespace; after it
    // the key's reads and the bucket's arithmetic do not compete for registers.
    let bucket = computed_here(lat_bucket32(srtt));
    let typed_netns = if TYPED {
        counted_netns(sock_netns_of::<true>(sk))
    } else {
        0
    };
    // Index 0 of a per-CPU array is always there: no sample is lost to this `else`.
    let Some(slots) = pending_slots() else {
        return 0;
    };
    let Some((family, sport, dport)) = sock_ports::<TYPED>(sk) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    // The end that keys the destination (see `rtt_sample`) from the ports alone: only its
    // address is read, straight into the key's last two words.
    let local = keyed_by_local_end(sport, dport, config!(ephemeral_ports));
    let Some(addr) = sock_addr_words::<TYPED>(sk, family, local) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    let port = if local { sport } else { dport };
    let netns = if TYPED {
        typed_netns
    } else {
        counted_netns(if sk == 0 {
            None
        } else {
            sock_netns_cached(sk, sport ^ dport)
        })
    };
    let words = [port_word(netns, family, port), addr[0], addr[1]];
    rtt_sample_words(slots, srtt, bucket, words);
    0
}

/// The address of a socket's local (`local`) or remote end as the last two words of its key
/// ([`dest_words`]); an IPv4 address is the first, the second is 0.
#[inline(always)]
fn sock_addr_words<const TYPED: bool>(sk: u64, family: u16, local: bool) -> Option<[u64; 2]> {
    if family == FAMILY_INET {
        let offset = if local {
            config!(sk_rcv_saddr)
        } else {
            config!(sk_daddr)
        };
        return Some([u64::from(sock_u32::<TYPED>(sk, offset)?), 0]);
    }
    let offset = if local {
        config!(sk_v6_rcv_saddr)
    } else {
        config!(sk_v6_daddr)
    };
    if !TYPED {
        return Some(addr_words(kernel_read::<[u32; 4], false>(sk, offset)?));
    }
    // Four loads, each pair made a word at once (fewer live registers): a 16-byte volatile
    // read may become a `memcpy` call.
    let word = |at: u32| -> Option<u64> {
        let low = sock_u32::<true>(sk, at)?;
        Some(u64::from(low) | u64::from(sock_u32::<true>(sk, at.wrapping_add(4))?) << 32)
    };
    Some([word(offset)?, word(offset.wrapping_add(8))?])
}

/// `tcp_sock.srtt_us` of a socket. Typed: `bpf_skc_to_tcp_sock` (tracing programs only) makes
/// the `struct sock` a typed `tcp_sock` (null for a socket that is not a full TCP one), so the
/// field, beyond `struct sock`, is a plain load after a short helper instead of a kernel read.
#[inline(always)]
fn srtt_us<const TYPED: bool>(sk: u64) -> Option<u32> {
    if !TYPED {
        return sock_u32::<false>(sk, config!(tp_srtt_us));
    }
    let tcp_sock = unsafe { bpf_skc_to_tcp_sock(sk as *mut core::ffi::c_void) } as u64;
    sock_u32::<true>(tcp_sock, config!(tp_srtt_us))
}

/// `v`, computed in full at this point: a one-instruction `asm!` (a move of a register to
/// itself, which the JIT drops) that the optimiser may neither look through nor move, so that
/// the arithmetic behind `v` is not split around the call that follows (which would keep its
/// pieces on the stack).
#[inline(always)]
fn computed_here(mut v: u32) -> u32 {
    // SAFETY: a register move, no memory.
    unsafe {
        core::arch::asm!("{v} = {v}", v = inout(reg) v, options(nomem, nostack, preserves_flags));
    }
    v
}

/// A namespace read (0, counted as unknown, when unread).
#[inline(always)]
fn counted_netns(netns: Option<u32>) -> u32 {
    netns.unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    })
}

/// One RTT sample into the destination's histogram, from both ends (the classic hook's
/// record). `remote`/`local`: (family, port, address) of each end. The server's side of a
/// client's connection counts under its own (listening) end, not under each client's
/// ephemeral port.
#[inline(always)]
fn rtt_sample(
    srtt: u32,
    remote: (u16, u16, [u32; 4]),
    local: Option<(u16, u16, [u32; 4])>,
    sk: u64,
) {
    let (family, dport, daddr) = remote;
    let ports = dport ^ local.map_or(0, |(_, sport, _)| sport);
    let (dport, daddr) = match local {
        Some((_, sport, saddr)) if keyed_by_local_end(sport, dport, config!(ephemeral_ports)) => {
            (sport, saddr)
        }
        _ => (dport, daddr),
    };
    let netns = if sk == 0 {
        None
    } else {
        sock_netns_cached(sk, ports)
    };
    let words = dest_words(counted_netns(netns), family, dport, daddr);
    // Index 0 of a per-CPU array is always there: no sample is lost to this `else`.
    let Some(slots) = pending_slots() else {
        return;
    };
    rtt_sample_words(slots, srtt, lat_bucket32(srtt), words);
}

/// This CPU's pending slots.
#[inline(always)]
fn pending_slots() -> Option<&'static mut [RttPending; RTT_PENDING_SLOTS]> {
    let slots = RTT_PENDING.get_ptr_mut(0)?;
    // SAFETY: this CPU's slots; only this program writes them, and a run is never nested in
    // another run of it on the same CPU (the kernel skips nested runs as recursion misses).
    Some(unsafe { &mut (*slots).slots })
}

/// One RTT sample of the destination whose key is `words` ([`dest_words`]), into this CPU's
/// pending `slots`. The hot path: when the destination and bucket hold a slot, two plain adds
/// there (count and sum); otherwise the samples of the slot it takes go into `DESTS` (one hash
/// lookup, two atomic adds) and the slot starts over with this one; so does a slot that
/// reaches `RTT_PENDING_FLUSH` samples.
#[inline(always)]
fn rtt_sample_words(
    slots: &'static mut [RttPending; RTT_PENDING_SLOTS],
    srtt: u32,
    bucket: u32,
    words: [u64; 3],
) {
    let srtt = u64::from(srtt);
    let Some((slot, holds)) = pending_slot(slots, &words, bucket) else {
        return;
    };
    if holds {
        slot.count += 1;
        slot.sum_us += srtt;
        if slot.count < RTT_PENDING_FLUSH {
            return;
        }
    }
    // The slot's samples go into the map (one call site: each one costs verification time):
    // all of them once it is full, or another destination's or bucket's as this one takes it.
    // They are taken out first (the key onto the stack) and the slot starts over before the
    // map's calls, so that only the slot and these three live across them: the hot path's
    // values then need no stack slot.
    slot.seq = slot.seq.wrapping_add(1);
    // SAFETY: three words are the 24 bytes of a `DestKey` (see `dest_words`).
    let moved: DestKey = unsafe { core::mem::transmute(held_words(slot)) };
    let (moved_bucket, moved_count, moved_sum) = (slot.bucket, slot.count, slot.sum_us);
    if holds {
        slot.count = 0;
        slot.sum_us = 0;
    } else {
        set_held_words(slot, words);
        slot.bucket = bucket;
        slot.count = 1;
        slot.sum_us = srtt;
    }
    if moved_count != 0 {
        add_rtt(&moved, moved_bucket, moved_count, moved_sum);
    }
    slot.seq = slot.seq.wrapping_add(1);
}

/// The pending slot of a destination (`words`) and bucket, and whether it holds them: the one
/// of its set (two slots, chosen by a multiplicative hash of the key's words and the bucket:
/// the two ends of a veth or loopback connection differ only by namespace) that holds them,
/// else the one of the two with fewer samples pending, to be taken over.
#[inline(always)]
fn pending_slot(
    slots: &'static mut [RttPending; RTT_PENDING_SLOTS],
    words: &[u64; 3],
    bucket: u32,
) -> Option<(&'static mut RttPending, bool)> {
    const SETS: u32 = (RTT_PENDING_SLOTS / 2) as u32;
    let mixed = words[0] ^ words[1] ^ words[2] ^ u64::from(bucket);
    // The top bits of the product depend on every bit of `mixed`.
    let set = (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SETS.trailing_zeros())) as usize;
    let holds = |s: &RttPending| {
        let held = held_words(s);
        // Element by element: an array `==` may become a `bcmp` call, which BPF does not have.
        s.bucket == bucket && held[0] == words[0] && held[1] == words[1] && held[2] == words[2]
    };
    // SAFETY: the same slots, seen as sets of two (one pointer for both ways of a set).
    let sets =
        unsafe { &mut *core::ptr::from_mut(slots).cast::<[[RttPending; 2]; SETS as usize]>() };
    let pair = sets.get_mut(set)?;
    let (way, held) = if holds(&pair[0]) {
        (0, true)
    } else if holds(&pair[1]) {
        (1, true)
    } else if pair[1].count < pair[0].count {
        (1, false)
    } else {
        (0, false)
    };
    Some((pair.get_mut(way)?, held))
}

/// A destination as the three 64-bit words of its 24 bytes (little-endian, as `DestKey` lies in
/// memory: namespace, family and port, then the address), so a slot's key is three compares
/// instead of seven (no `memcmp` on the BPF target), built from the reads without a `DestKey`.
#[inline(always)]
fn dest_words(netns: u32, family: u16, port: u16, addr: [u32; 4]) -> [u64; 3] {
    let [w1, w2] = addr_words(addr);
    [port_word(netns, family, port), w1, w2]
}

/// The first word of a destination's key: namespace, family, port.
#[inline(always)]
fn port_word(netns: u32, family: u16, port: u16) -> u64 {
    u64::from(netns) | u64::from(family) << 32 | u64::from(port) << 48
}

/// The last two words of a destination's key: its address.
#[inline(always)]
fn addr_words(addr: [u32; 4]) -> [u64; 2] {
    [
        u64::from(addr[0]) | u64::from(addr[1]) << 32,
        u64::from(addr[2]) | u64::from(addr[3]) << 32,
    ]
}

// What `dest_words`, `held_words` and `set_held_words` rely on: little-endian words, the key
// (netns, family, dport, daddr, in this order) 8-aligned in a slot.
const _: () = assert!(cfg!(target_endian = "little"));
const _: () = assert!(core::mem::offset_of!(RttPending, key) == 8);
const _: () = assert!(core::mem::size_of::<RttPending>().is_multiple_of(8));
const _: () = assert!(core::mem::offset_of!(DestKey, family) == 4);
const _: () = assert!(core::mem::offset_of!(DestKey, dport) == 6);
const _: () = assert!(core::mem::offset_of!(DestKey, daddr) == 8);

/// The key a pending slot holds, as [`dest_words`] (three loads: the key lies 8-aligned in the
/// slot).
#[inline(always)]
fn held_words(slot: &RttPending) -> [u64; 3] {
    let words = core::ptr::addr_of!(slot.key).cast::<u64>();
    // SAFETY: `key` is 24 bytes at offset 8 of the 48-byte slot, in an 8-aligned map value.
    unsafe { [*words, *words.add(1), *words.add(2)] }
}

/// Gives a pending slot the key `words` ([`dest_words`]): three stores, the `DestKey` fields
/// as they lie in memory.
#[inline(always)]
fn set_held_words(slot: &mut RttPending, words: [u64; 3]) {
    let key = core::ptr::addr_of_mut!(slot.key).cast::<u64>();
    // SAFETY: as in `held_words`.
    unsafe {
        *key = words[0];
        *key.add(1) = words[1];
        *key.add(2) = words[2];
    }
}

/// Adds `count` samples of one bucket, summing to `sum_us`, to the destination's entry
/// (created when new). The sample count is the histogram's sum, added up in user space.
#[inline(always)]
fn add_rtt(key: &DestKey, bucket: u32, count: u32, sum_us: u64) {
    let Some(stats) = dest_entry(key) else {
        return;
    };
    unsafe {
        atomic_add64(addr_of_mut!((*stats).rtt_sum_us), sum_us);
        if let Some(slot) = (*stats).rtt_hist.get_mut(bucket as usize) {
            atomic_add32(slot, count);
        }
    }
}

/// Connection outcomes per destination and connect time (SYN_SENT → ESTABLISHED).
#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let tcp = config!(ipproto_tcp);
    if tcp != 0 {
        match ctx_u16(&ctx, config!(ss_protocol)) {
            Some(p) if u32::from(p) == tcp => {}
            _ => return 0,
        }
    }
    bump(counter::STATE_EVENTS);
    let (Some(old), Some(new)) = (
        ctx_u32(&ctx, config!(ss_oldstate)),
        ctx_u32(&ctx, config!(ss_newstate)),
    ) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    if !wanted_change(old, new) {
        return 0;
    }
    let sk = ctx_u64(&ctx, config!(ss_skaddr)).unwrap_or(0);
    let netns = counted_sock_netns(sk);
    let key = dest_key(
        &ctx,
        netns,
        config!(ss_family),
        config!(ss_dport),
        config!(ss_daddr),
        config!(ss_daddr_v6),
    );
    let sport = ctx_u16(&ctx, config!(ss_sport)).unwrap_or(0);
    state_change(sk, old, new, key, sport);
    0
}

#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn inet_sock_set_state_raw(ctx: RawTracePointContext) -> u32 {
    state_from_args(ctx.as_ptr())
}

#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state_btf(ctx: BtfTracePointContext) -> u32 {
    state_from_args(ctx.as_ptr())
}

/// The raw/BTF hooks: the states from the arguments, protocol and ends from the socket.
#[inline(always)]
fn state_from_args(ctx: *mut core::ffi::c_void) -> u32 {
    let sk = arg_u64(ctx, config!(ss_arg_sk)).unwrap_or(0);
    let tcp = config!(ipproto_tcp);
    if tcp != 0 && !sock_protocol_is::<false>(sk, tcp) {
        return 0;
    }
    bump(counter::STATE_EVENTS);
    let (Some(old), Some(new)) = (
        arg_u64(ctx, config!(ss_arg_oldstate)),
        arg_u64(ctx, config!(ss_arg_newstate)),
    ) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    let (old, new) = (old as u32, new as u32);
    if !wanted_change(old, new) {
        return 0;
    }
    let netns = counted_sock_netns(sk);
    let key = sock_remote::<false>(sk).map(|remote| dest_of(netns, remote));
    let sport = kernel_read::<u16, false>(sk, config!(sk_num)).unwrap_or(0);
    state_change(sk, old, new, key, sport);
    0
}

/// The changes counted: into or out of SYN_SENT, or into CLOSE, but not a listener's.
#[inline(always)]
fn wanted_change(old: u32, new: u32) -> bool {
    let (syn_sent, close) = (config!(tcp_syn_sent), config!(tcp_close));
    (new == syn_sent || old == syn_sent || new == close) && old != config!(tcp_listen)
}

/// A socket's namespace (0, counted as unknown, when unread).
#[inline(always)]
fn counted_sock_netns(sk: u64) -> u32 {
    sock_netns(sk).unwrap_or_else(|| {
        bump(counter::NETNS_UNKNOWN);
        0
    })
}

/// The destination of one end of a socket.
#[inline(always)]
fn dest_of(netns: u32, remote: End) -> DestKey {
    let (family, dport, daddr) = remote;
    DestKey {
        netns,
        family,
        dport,
        daddr,
    }
}

/// One counted state change of socket `sk` to destination `key` from local port `sport`.
#[inline(always)]
fn state_change(sk: u64, old: u32, new: u32, key: Option<DestKey>, sport: u16) {
    let Some(key) = key else {
        bump(counter::READ_ERRORS);
        return;
    };
    let (syn_sent, close) = (config!(tcp_syn_sent), config!(tcp_close));
    if new == close {
        remember_close(&key, sport);
    }
    // A connection that had been set up and is now gone: counted only for a destination
    // already tracked (a busy server's clients would otherwise churn the map one ephemeral
    // port at a time).
    if new == close && old != syn_sent {
        if let Some(stats) = DESTS.get_ptr_mut(&key) {
            unsafe { atomic_add64(addr_of_mut!((*stats).closed), 1) };
        }
        return;
    }
    let Some(stats) = dest_entry(&key) else {
        return;
    };
    if new == syn_sent {
        let now = unsafe { bpf_ktime_get_ns() };
        let _ = CONNECT_START.insert(&sk, &now, 0);
        unsafe { atomic_add64(addr_of_mut!((*stats).connects), 1) };
        return;
    }
    if old == syn_sent {
        let started = unsafe { CONNECT_START.get(&sk) }.copied();
        let _ = CONNECT_START.remove(&sk);
        if new == config!(tcp_established) {
            unsafe { atomic_add64(addr_of_mut!((*stats).established), 1) };
            match started {
                Some(t0) => connect_time(stats, t0),
                None => bump(counter::CONNECT_START_MISSING),
            }
        } else if new == close {
            unsafe { atomic_add64(addr_of_mut!((*stats).failed), 1) };
        }
    }
}

/// Adds one connect time (since `t0`) to the destination's histogram.
#[inline(always)]
fn connect_time(stats: *mut DestStats, t0: u64) {
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

/// Keeps the flow of the socket just closed on this CPU, for the error report that follows.
#[inline(always)]
fn remember_close(key: &DestKey, sport: u16) {
    if let Some(last) = LAST_CLOSE.get_ptr_mut(0) {
        unsafe {
            (*last).netns = key.netns;
            (*last).family = key.family;
            (*last).sport = sport;
            (*last).dport = key.dport;
            // Word by word: this nightly's LLVM turns the 16-byte array copy into a
            // `memmove` call, which the BPF target does not have.
            (*last).daddr[0] = key.daddr[0];
            (*last).daddr[1] = key.daddr[1];
            (*last).daddr[2] = key.daddr[2];
            (*last).daddr[3] = key.daddr[3];
        }
    }
}

/// A socket error (ETIMEDOUT, EHOSTUNREACH, ECONNREFUSED, …) per destination.
#[tracepoint]
pub fn inet_sk_error_report(ctx: TracePointContext) -> u32 {
    let tcp = config!(ipproto_tcp);
    if tcp != 0 {
        match ctx_u16(&ctx, config!(err_protocol)) {
            Some(p) if u32::from(p) == tcp => {}
            _ => return 0,
        }
    }
    bump(counter::ERROR_REPORT_EVENTS);
    let Some(error) = ctx_u32(&ctx, config!(err_error)) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    // `tcp_disconnect` (after a failed connect) reports with no error set: not an error.
    if error == 0 {
        return 0;
    }
    let dest = dest_key(
        &ctx,
        0,
        config!(err_family),
        config!(err_dport),
        config!(err_daddr),
        config!(err_daddr_v6),
    );
    let sport = ctx_u16(&ctx, config!(err_sport)).unwrap_or(0);
    // The record has no socket: the namespace is the one of the close just before.
    socket_error(dest, sport, error, None);
    0
}

#[raw_tracepoint(tracepoint = "inet_sk_error_report")]
pub fn inet_sk_error_report_raw(ctx: RawTracePointContext) -> u32 {
    error_from_args(ctx.as_ptr())
}

#[btf_tracepoint(function = "inet_sk_error_report")]
pub fn inet_sk_error_report_btf(ctx: BtfTracePointContext) -> u32 {
    error_from_args(ctx.as_ptr())
}

/// The raw/BTF hooks: protocol, error and ends from the socket, and for a closed one its own
/// namespace.
#[inline(always)]
fn error_from_args(ctx: *mut core::ffi::c_void) -> u32 {
    let sk = arg_u64(ctx, config!(err_arg_sk)).unwrap_or(0);
    let tcp = config!(ipproto_tcp);
    if tcp != 0 && !sock_protocol_is::<false>(sk, tcp) {
        return 0;
    }
    bump(counter::ERROR_REPORT_EVENTS);
    let Some(error) = sock_u32::<false>(sk, config!(sk_err)) else {
        bump(counter::READ_ERRORS);
        return 0;
    };
    if error == 0 {
        return 0;
    }
    let dest = sock_remote::<false>(sk).map(|remote| dest_of(0, remote));
    let sport = kernel_read::<u16, false>(sk, config!(sk_num)).unwrap_or(0);
    // The error that ends a connection (the socket is closed by now) counts under the socket's
    // own namespace, where the classic program finds it through the close just before. One
    // reported on a socket still open (an ICMP error queued while connecting) goes the classic
    // way too, so every hook gives the same numbers.
    let closed = sock_state::<false>(sk).is_some_and(|state| state == config!(tcp_close));
    socket_error(
        dest,
        sport,
        error,
        if closed { sock_netns(sk) } else { None },
    );
    0
}

/// Counts one socket error of `dest`. Its namespace is `netns` when known, else the one of
/// the flow that closed last on this CPU when it matches (counted when it does not).
#[inline(always)]
fn socket_error(dest: Option<DestKey>, sport: u16, error: u32, netns: Option<u32>) {
    let Some(mut dest) = dest else {
        bump(counter::READ_ERRORS);
        return;
    };
    match netns {
        Some(netns) => dest.netns = netns,
        None => match closed_netns(&dest, sport) {
            Some(netns) => dest.netns = netns,
            None => bump(counter::ERROR_NETNS_UNMATCHED),
        },
    }
    let key = ErrorKey {
        dest,
        error,
        _pad: 0,
    };
    if let Some(count) = SOCK_ERRORS.get_ptr_mut(&key) {
        atomic_add64(count, 1);
    } else if SOCK_ERRORS.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
        match SOCK_ERRORS.get_ptr_mut(&key) {
            Some(count) => atomic_add64(count, 1),
            None => bump(counter::RESETS_INSERT_FAILED),
        }
    }
}

/// The namespace of the flow that closed last on this CPU, when it is `dest` from `sport`.
#[inline(always)]
fn closed_netns(dest: &DestKey, sport: u16) -> Option<u32> {
    let last = LAST_CLOSE.get_ptr(0)?;
    unsafe {
        ((*last).family == dest.family
            && (*last).sport == sport
            && (*last).dport == dest.dport
            && (*last).daddr[0] == dest.daddr[0]
            && (*last).daddr[1] == dest.daddr[1]
            && (*last).daddr[2] == dest.daddr[2]
            && (*last).daddr[3] == dest.daddr[3])
            .then_some((*last).netns)
    }
}
