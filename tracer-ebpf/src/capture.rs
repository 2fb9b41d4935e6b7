//! Capture: a second program on `skb:kfree_skb`, attached only while `tracer capture` runs (the
//! always-on `kfree_skb` program is unchanged). It filters in the kernel with the
//! [`CaptureConfig`] the loader wrote into `CAPTURE_CONFIG` (namespace, IP version, protocol,
//! address/prefix, port, reason set), bounds packets per second with a per-CPU token bucket,
//! and copies the packet from its network header on (snaplen bytes) with device, namespace,
//! reason and location into the `CAPTURE_RING` ring buffer (or, when the config says `perf`,
//! into the `CAPTURE_PERF` perf event array through a per-CPU scratch slot: kernels before 5.8
//! have no ring buffer). A third program on `tcp:tcp_retransmit_skb`, attached only with
//! `--retransmits`, finds the headers the kernel just wrote in front of the retransmitted
//! segment and sends them through the same filter, bucket and buffer. What it skips or loses is
//! counted in `CAPTURE_COUNTERS`. Both have raw and BTF tracepoint twins (`_raw`, `_btf`) that
//! read the tracepoint's arguments instead of its record, attached on the hook the always-on
//! probe of the same tracepoint was planned on. Struct offsets come from BTF through the
//! config, record offsets from the tracepoints' format files; nothing is guessed.
//!
//! May use `shared` (configuration, record and argument reads, namespaces); no other family.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel, generated},
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{Array, PerCpuArray, PerfEventArray, RingBuf},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use tracer_common::{
    capture::{
        capture_counter, CaptureConfig, CaptureEvent, CAPTURE_HEADER_PEEK, CAPTURE_HEADROOM_PEEK,
        CAPTURE_MAX_SNAPLEN, CAPTURE_RING_BYTES, EVENT_DROP, EVENT_RETRANSMIT,
    },
    ABSENT,
};

use crate::shared::{
    args::{arg_u64, kernel_read, sock_state},
    config,
    netns::{skb_netns, sock_netns},
    record::{ctx_u16, ctx_u32, ctx_u64},
};

#[map(name = "CAPTURE_CONFIG")]
static CAPTURE_CONFIG: Array<CaptureConfig> = Array::with_max_entries(1, 0);

#[map(name = "CAPTURE_RING")]
static CAPTURE_RING: RingBuf = RingBuf::with_byte_size(CAPTURE_RING_BYTES, 0);

#[map(name = "CAPTURE_PERF")]
static CAPTURE_PERF: PerfEventArray<CaptureEvent> = PerfEventArray::new(0);

/// Per CPU: the event being filled before it is copied into the perf buffer.
#[map(name = "CAPTURE_SCRATCH")]
static CAPTURE_SCRATCH: PerCpuArray<CaptureEvent> = PerCpuArray::with_max_entries(1, 0);

/// Per CPU: the bytes in front of a retransmitted segment, searched for its headers (too
/// large for the stack).
#[map(name = "CAPTURE_HEADROOM")]
static CAPTURE_HEADROOM: PerCpuArray<[u8; CAPTURE_HEADROOM_PEEK]> =
    PerCpuArray::with_max_entries(1, 0);

#[map(name = "CAPTURE_COUNTERS")]
static CAPTURE_COUNTERS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(capture_counter::COUNT, 0);

/// Per CPU: tokens in nano-packets and the time they were last topped up.
#[repr(C)]
struct Bucket {
    tokens: u64,
    last_ns: u64,
}

#[map(name = "CAPTURE_BUCKET")]
static CAPTURE_BUCKET: PerCpuArray<Bucket> = PerCpuArray::with_max_entries(1, 0);

const NANO: u64 = 1_000_000_000;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

#[inline(always)]
fn count(index: u32) {
    if let Some(slot) = CAPTURE_COUNTERS.get_ptr_mut(index) {
        // Per-CPU slot: no other CPU writes it.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
fn read<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 || offset == ABSENT {
        return None;
    }
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.ok()
}

/// Takes one token from this CPU's bucket; false when it is empty.
#[inline(always)]
fn take_token(cfg: &CaptureConfig, now: u64) -> bool {
    let Some(bucket) = CAPTURE_BUCKET.get_ptr_mut(0) else {
        return false;
    };
    // The loader bounds rate (≤ 10^8/s) and burst (≤ 10^6), so no product overflows.
    let cap = cfg.burst.wrapping_mul(NANO);
    unsafe {
        let elapsed = now.saturating_sub((*bucket).last_ns).min(10 * NANO);
        let tokens = if (*bucket).last_ns == 0 {
            cap
        } else {
            (*bucket)
                .tokens
                .saturating_add(elapsed.wrapping_mul(cfg.rate_per_cpu))
                .min(cap)
        };
        (*bucket).last_ns = now;
        if tokens < NANO {
            (*bucket).tokens = tokens;
            return false;
        }
        (*bucket).tokens = tokens - NANO;
    }
    true
}

/// True when `addr` (4 or 16 bytes at `at` in the header) lies in the configured prefix.
#[inline(always)]
fn in_prefix(cfg: &CaptureConfig, hdr: &[u8; CAPTURE_HEADER_PEEK], at: usize, len: usize) -> bool {
    let prefix = cfg.addr_prefix as usize;
    let mut i = 0;
    while i < 16 {
        if i >= len || i * 8 >= prefix {
            break;
        }
        let bits = prefix - i * 8;
        let mask: u8 = if bits >= 8 { 0xff } else { !(0xffu8 >> bits) };
        if at + i >= CAPTURE_HEADER_PEEK {
            return false;
        }
        if hdr[at + i] & mask != cfg.addr[i] & mask {
            return false;
        }
        i += 1;
    }
    true
}

#[inline(always)]
fn dev_of(skb: u64) -> u64 {
    read::<u64>(skb, config!(skb_dev)).unwrap_or(0)
}

/// True when the packet whose IP header `hdr` (the first bytes at `nh`, `linear` of them
/// readable) begins passes the version, protocol, address and port filters. Unreadable headers
/// are counted.
#[inline(always)]
fn headers_match(
    cfg: &CaptureConfig,
    nh: u64,
    hdr: &[u8; CAPTURE_HEADER_PEEK],
    linear: i64,
) -> bool {
    let version = (hdr[0] >> 4) as u32;
    let (proto, l4, addr_at, addr_len) = match version {
        4 => (hdr[9], ((hdr[0] & 0x0f) as i64) * 4, 12usize, 4usize),
        6 if linear >= CAPTURE_HEADER_PEEK as i64 => (hdr[6], 40, 8, 16),
        _ => {
            count(capture_counter::UNREADABLE);
            return false;
        }
    };
    if cfg.ip_version != ABSENT && cfg.ip_version != version {
        return false;
    }
    if cfg.protocol != ABSENT && cfg.protocol != proto as u32 {
        return false;
    }
    if cfg.addr_prefix != ABSENT {
        if cfg.addr_version != version {
            return false;
        }
        if !in_prefix(cfg, hdr, addr_at, addr_len)
            && !in_prefix(cfg, hdr, addr_at + addr_len, addr_len)
        {
            return false;
        }
    }
    if cfg.port != ABSENT {
        if (proto != IPPROTO_TCP && proto != IPPROTO_UDP) || l4 + 4 > linear {
            return false;
        }
        let Some(ports) = read::<[u8; 4]>(nh, l4 as u32) else {
            count(capture_counter::UNREADABLE);
            return false;
        };
        let sport = u16::from_be_bytes([ports[0], ports[1]]) as u32;
        let dport = u16::from_be_bytes([ports[2], ports[3]]) as u32;
        if sport != cfg.port && dport != cfg.port {
            return false;
        }
    }
    true
}

/// What one event carries besides the packet bytes.
struct Meta {
    now: u64,
    location: u64,
    reason: u32,
    netns: u32,
    kind: u32,
    dev: u64,
}

/// Where a packet's IP header is (`nh`), how many of its bytes lie linearly from there and
/// how long it is.
struct Packet {
    nh: u64,
    linear: i64,
    pkt_len: i64,
}

/// Fills `event` with `cap` bytes from `nh` (bounded to the event's buffer) and `meta`;
/// false when the bytes could not be read.
#[inline(always)]
fn fill(
    cfg: &CaptureConfig,
    event: *mut CaptureEvent,
    nh: u64,
    cap: i64,
    pkt_len: i64,
    meta: &Meta,
) -> bool {
    let mut cap = cap;
    if cap > pkt_len {
        cap = pkt_len;
    }
    let mut cap = cap as u32;
    if cap > CAPTURE_MAX_SNAPLEN as u32 {
        cap = CAPTURE_MAX_SNAPLEN as u32;
    }
    if cap < 1 {
        cap = 1;
    }
    unsafe {
        let copied = generated::bpf_probe_read_kernel(
            (*event).data.as_mut_ptr() as *mut _,
            cap,
            nh as *const _,
        );
        if copied != 0 {
            return false;
        }
        (*event).ts_ns = meta.now;
        (*event).location = meta.location;
        (*event).reason = meta.reason;
        (*event).netns = meta.netns;
        (*event).pkt_len = pkt_len as u32;
        (*event).cap_len = cap;
        (*event).kind = meta.kind;
        (*event).ifindex = read::<u32>(meta.dev, cfg.dev_ifindex).unwrap_or(0);
        // A failed read zero-fills the name.
        let _ = generated::bpf_probe_read_kernel(
            (*event).ifname.as_mut_ptr() as *mut _,
            16,
            (meta.dev + cfg.dev_name as u64) as *const _,
        );
    }
    true
}

/// Takes a token, then writes the event into the ring buffer or the perf buffer, counting
/// what happened.
#[inline(always)]
fn emit<C: EbpfContext>(
    ctx: &C,
    cfg: &CaptureConfig,
    nh: u64,
    cap: i64,
    pkt_len: i64,
    meta: &Meta,
) {
    count(capture_counter::MATCHED);
    if !take_token(cfg, meta.now) {
        count(capture_counter::RATE_LIMITED);
        return;
    }
    if cfg.perf != 0 {
        let Some(event) = CAPTURE_SCRATCH.get_ptr_mut(0) else {
            return;
        };
        if !fill(cfg, event, nh, cap, pkt_len, meta) {
            count(capture_counter::UNREADABLE);
            return;
        }
        // Lost samples (a full per-CPU buffer) are reported to user space by perf itself.
        // A reference into the scratch slot: `*event` would copy the event onto the 512-byte
        // BPF stack, which is why it lives in a per-CPU slot at all.
        CAPTURE_PERF.output(ctx, unsafe { &*event }, 0);
    } else {
        let Some(mut entry) = CAPTURE_RING.reserve::<CaptureEvent>(0) else {
            count(capture_counter::RING_FULL);
            return;
        };
        if !fill(cfg, entry.as_mut_ptr(), nh, cap, pkt_len, meta) {
            entry.discard(0);
            count(capture_counter::UNREADABLE);
            return;
        }
        entry.submit(0);
    }
    count(capture_counter::SUBMITTED);
}

#[tracepoint]
pub fn capture_kfree_skb(ctx: TracePointContext) -> u32 {
    let Some(cfg) = CAPTURE_CONFIG.get(0) else {
        return 0;
    };
    count(capture_counter::SEEN);
    let (Some(skb), Some(location)) = (
        ctx_u64(&ctx, config!(kfree_skbaddr)),
        ctx_u64(&ctx, config!(kfree_location)),
    ) else {
        count(capture_counter::UNREADABLE);
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
    capture_drop(&ctx, cfg, skb, location, reason, rx_sk);
    0
}

#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn capture_kfree_skb_raw(ctx: RawTracePointContext) -> u32 {
    capture_drop_from_args(&ctx);
    0
}

#[btf_tracepoint(function = "kfree_skb")]
pub fn capture_kfree_skb_btf(ctx: BtfTracePointContext) -> u32 {
    capture_drop_from_args(&ctx);
    0
}

/// The raw/BTF hooks: the same values from the tracepoint's arguments.
#[inline(always)]
fn capture_drop_from_args<C: EbpfContext>(ctx: &C) {
    let Some(cfg) = CAPTURE_CONFIG.get(0) else {
        return;
    };
    count(capture_counter::SEEN);
    let args = ctx.as_ptr();
    let (Some(skb), Some(location)) = (
        arg_u64(args, config!(kfree_arg_skb)),
        arg_u64(args, config!(kfree_arg_location)),
    ) else {
        count(capture_counter::UNREADABLE);
        return;
    };
    let reason = arg_u64(args, config!(kfree_arg_reason)).map_or(ABSENT, |r| r as u32);
    let rx_sk = arg_u64(args, config!(kfree_arg_rx_sk)).unwrap_or(0);
    capture_drop(ctx, cfg, skb, location, reason, rx_sk);
}

/// True when the configured reason set keeps `reason`.
#[inline(always)]
fn reason_kept(cfg: &CaptureConfig, reason: u32) -> bool {
    if cfg.any_reason != 0 {
        return true;
    }
    if reason >= 256 {
        // Subsystem reasons: a few named slots (0 = unused; a kept reason is never 0 here).
        let e = &cfg.extra_reasons;
        return reason == e[0] || reason == e[1] || reason == e[2] || reason == e[3];
    }
    // Branches rather than an index: the verifier keeps each load's offset constant.
    let word = match reason >> 6 {
        0 => cfg.reasons[0],
        1 => cfg.reasons[1],
        2 => cfg.reasons[2],
        _ => cfg.reasons[3],
    };
    word & (1u64 << (reason & 63)) != 0
}

/// One dropped skb through the reason and namespace filters, then its packet through the
/// header filters into the buffer.
#[inline(always)]
fn capture_drop<C: EbpfContext>(
    ctx: &C,
    cfg: &CaptureConfig,
    skb: u64,
    location: u64,
    reason: u32,
    rx_sk: u64,
) {
    if !reason_kept(cfg, reason) {
        return;
    }
    let netns = skb_netns(skb, rx_sk).unwrap_or(0);
    if cfg.netns != ABSENT && cfg.netns != netns {
        return;
    }

    // Where the IP header is, and how many bytes of the packet lie linearly from there.
    let (Some(head), Some(data), Some(len), Some(data_len), Some(nh_off)) = (
        read::<u64>(skb, cfg.skb_head),
        read::<u64>(skb, cfg.skb_data),
        read::<u32>(skb, cfg.skb_len),
        read::<u32>(skb, cfg.skb_data_len),
        read::<u16>(skb, cfg.skb_network_header),
    ) else {
        count(capture_counter::UNREADABLE);
        return;
    };
    let nh = head + nh_off as u64;
    // Bytes from the network header: the skb's length counts from `data`.
    let pkt_len = len as i64 + (data as i64 - nh as i64);
    let linear = (len - data_len.min(len)) as i64 + (data as i64 - nh as i64);
    if nh_off == u16::MAX || pkt_len < 20 || linear < 20 {
        count(capture_counter::UNREADABLE);
        return;
    }
    let packet = Packet {
        nh,
        linear,
        pkt_len,
    };
    let mut meta = Meta {
        now: 0,
        location,
        reason,
        netns,
        kind: EVENT_DROP,
        dev: skb,
    };
    filter_and_emit(ctx, cfg, &packet, &mut meta);
}

/// The header filters, then the event: `meta.dev` holds the skb whose device the event names
/// (0: none), read only once the packet matched; `meta.now` is set here.
#[inline(always)]
fn filter_and_emit<C: EbpfContext>(ctx: &C, cfg: &CaptureConfig, packet: &Packet, meta: &mut Meta) {
    // The head buffer extends past the packet's end (skb->end ≥ tail), so a short packet's
    // peek reads bytes that are not the packet's, never unmapped memory; only the bytes below
    // `linear` are looked at.
    let Some(hdr) = read::<[u8; CAPTURE_HEADER_PEEK]>(packet.nh, 0) else {
        count(capture_counter::UNREADABLE);
        return;
    };
    if !headers_match(cfg, packet.nh, &hdr, packet.linear) {
        return;
    }
    let cap = if (cfg.snaplen as i64) < packet.linear {
        cfg.snaplen as i64
    } else {
        packet.linear
    };
    // Set in place: copying the struct may become a `memcpy` call, which BPF does not have.
    meta.now = unsafe { bpf_ktime_get_ns() };
    if meta.dev != 0 {
        meta.dev = dev_of(meta.dev);
    }
    emit(ctx, cfg, packet.nh, cap, packet.pkt_len, meta);
}

/// Offset in the headroom window of the IPv4/IPv6 header in front of a TCP header of
/// `th_len` bytes that ends the window, when the bytes there are that header: the ports are
/// the socket's, the data offset is `th_len`, the sequence number is the segment's (when
/// `check_seq`). 0 when they are not.
#[inline(always)]
fn headers_at(
    w: &[u8; CAPTURE_HEADROOM_PEEK],
    th_len: usize,
    ports: [u8; 4],
    seq: [u8; 4],
    check_seq: bool,
) -> usize {
    let t = CAPTURE_HEADROOM_PEEK - th_len;
    if w[t] != ports[0] || w[t + 1] != ports[1] || w[t + 2] != ports[2] || w[t + 3] != ports[3] {
        return 0;
    }
    if (w[t + 12] >> 4) as usize * 4 != th_len {
        return 0;
    }
    if check_seq
        && (w[t + 4] != seq[0] || w[t + 5] != seq[1] || w[t + 6] != seq[2] || w[t + 7] != seq[3])
    {
        return 0;
    }
    if w[t - 20] == 0x45 && w[t - 20 + 9] == IPPROTO_TCP {
        return t - 20;
    }
    if w[t - 40] >> 4 == 6 && w[t - 40 + 6] == IPPROTO_TCP {
        return t - 40;
    }
    0
}

#[tracepoint]
pub fn capture_tcp_retransmit_skb(ctx: TracePointContext) -> u32 {
    let Some(cfg) = CAPTURE_CONFIG.get(0) else {
        return 0;
    };
    // A failed attempt sent nothing (kernels without `err` trace only successes).
    let err_off = config!(rtx_err);
    if err_off != ABSENT && ctx_u32(&ctx, err_off).is_some_and(|err| err != 0) {
        return 0;
    }
    count(capture_counter::RETRANSMITS_SEEN);
    let (Some(skb), Some(sk), Some(sport), Some(dport)) = (
        ctx_u64(&ctx, config!(rtx_skbaddr)),
        ctx_u64(&ctx, config!(rtx_skaddr)),
        ctx_u16(&ctx, config!(rtx_sport)),
        ctx_u16(&ctx, config!(rtx_dport)),
    ) else {
        count(capture_counter::UNREADABLE);
        return 0;
    };
    let state = ctx_u32(&ctx, config!(rtx_state)).unwrap_or(ABSENT);
    capture_retransmit(&ctx, cfg, skb, sk, [sport, dport], state);
    0
}

#[raw_tracepoint(tracepoint = "tcp_retransmit_skb")]
pub fn capture_tcp_retransmit_skb_raw(ctx: RawTracePointContext) -> u32 {
    capture_retransmit_from_args(&ctx);
    0
}

#[btf_tracepoint(function = "tcp_retransmit_skb")]
pub fn capture_tcp_retransmit_skb_btf(ctx: BtfTracePointContext) -> u32 {
    capture_retransmit_from_args(&ctx);
    0
}

/// The raw/BTF hooks: socket, skb and error from the arguments, ports and state from the
/// socket.
#[inline(always)]
fn capture_retransmit_from_args<C: EbpfContext>(ctx: &C) {
    let Some(cfg) = CAPTURE_CONFIG.get(0) else {
        return;
    };
    let args = ctx.as_ptr();
    if arg_u64(args, config!(rtx_arg_err)).is_some_and(|err| err as i32 != 0) {
        return;
    }
    count(capture_counter::RETRANSMITS_SEEN);
    let sk = arg_u64(args, config!(rtx_arg_sk)).unwrap_or(0);
    let (Some(skb), Some(sport), Some(dport)) = (
        arg_u64(args, config!(rtx_arg_skb)),
        kernel_read::<u16, false>(sk, config!(sk_num)),
        kernel_read::<u16, false>(sk, config!(sk_dport)),
    ) else {
        count(capture_counter::UNREADABLE);
        return;
    };
    let state = sock_state::<false>(sk).unwrap_or(ABSENT);
    capture_retransmit(ctx, cfg, skb, sk, [sport, u16::from_be(dport)], state);
}

/// A retransmitted segment of socket `sk` (`ports`: local, remote in host order): its headers
/// found in front of the segment, through the filters into the buffer.
#[inline(always)]
fn capture_retransmit<C: EbpfContext>(
    ctx: &C,
    cfg: &CaptureConfig,
    skb: u64,
    sk: u64,
    ports: [u16; 2],
    state: u32,
) {
    let netns = sock_netns(sk).unwrap_or(0);
    if cfg.netns != ABSENT && cfg.netns != netns {
        return;
    }
    let s = ports[0].to_be_bytes();
    let d = ports[1].to_be_bytes();
    let ports = [s[0], s[1], d[0], d[1]];
    let check_seq = cfg.skb_tcp_seq != ABSENT;
    let seq = if check_seq {
        read::<u32>(skb, cfg.skb_tcp_seq).unwrap_or(0).to_be_bytes()
    } else {
        [0; 4]
    };
    // The segment in the retransmit queue starts at its payload; the copy just sent shares its
    // buffer, so the TCP and IP headers the kernel wrote for it lie right in front of `data`.
    let (Some(head), Some(data)) = (
        read::<u64>(skb, cfg.skb_head),
        read::<u64>(skb, cfg.skb_data),
    ) else {
        count(capture_counter::UNREADABLE);
        return;
    };
    if data < head + CAPTURE_HEADROOM_PEEK as u64 {
        count(capture_counter::UNREADABLE);
        return;
    }
    let start = data - CAPTURE_HEADROOM_PEEK as u64;
    let Some(window) = CAPTURE_HEADROOM.get_ptr_mut(0) else {
        return;
    };
    let copied = unsafe {
        generated::bpf_probe_read_kernel(
            window as *mut _,
            CAPTURE_HEADROOM_PEEK as u32,
            start as *const _,
        )
    };
    if copied != 0 {
        count(capture_counter::UNREADABLE);
        return;
    }
    let w = unsafe { &*window };
    let mut ip = 0;
    let mut th_len = 20;
    // Bounded: TCP headers are 20 to 60 bytes.
    while th_len <= 60 {
        ip = headers_at(w, th_len, ports, seq, check_seq);
        if ip != 0 {
            break;
        }
        th_len += 4;
    }
    if ip == 0 {
        // Headers not in front of the segment (it was copied before sending): not captured.
        count(capture_counter::UNREADABLE);
        return;
    }
    let (Some(len), Some(data_len)) = (
        read::<u32>(skb, cfg.skb_len),
        read::<u32>(skb, cfg.skb_data_len),
    ) else {
        count(capture_counter::UNREADABLE);
        return;
    };
    let hdr_len = (CAPTURE_HEADROOM_PEEK - ip) as i64;
    let packet = Packet {
        nh: start + ip as u64,
        linear: hdr_len + (len - data_len.min(len)) as i64,
        pkt_len: hdr_len + len as i64,
    };
    let mut meta = Meta {
        now: 0,
        location: 0,
        reason: state,
        netns,
        kind: EVENT_RETRANSMIT,
        dev: 0,
    };
    filter_and_emit(ctx, cfg, &packet, &mut meta);
}
