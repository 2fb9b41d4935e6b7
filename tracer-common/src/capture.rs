//! `tracer capture`: the configuration the capture program reads (kernel struct offsets from
//! BTF and the in-kernel filter, written by the loader into [`MAP_CAPTURE_CONFIG`] before the
//! program is attached) and the event it writes into the [`MAP_CAPTURE_RING`] ring buffer.

/// Program name of the capture program on `skb:kfree_skb` (attached only while a capture runs).
pub const PROG_CAPTURE_KFREE_SKB: &str = "capture_kfree_skb";
/// Program name of the capture program on `tcp:tcp_retransmit_skb` (attached only while a
/// capture with `--retransmits` runs).
pub const PROG_CAPTURE_RETRANSMIT: &str = "capture_tcp_retransmit_skb";
/// One-entry array holding the [`CaptureConfig`].
pub const MAP_CAPTURE_CONFIG: &str = "CAPTURE_CONFIG";
/// The BPF ring buffer of [`CaptureEvent`]s.
pub const MAP_CAPTURE_RING: &str = "CAPTURE_RING";
/// The perf event array used instead of the ring buffer on kernels without one (< 5.8), or
/// when forced ([`CaptureConfig::perf`]).
pub const MAP_CAPTURE_PERF: &str = "CAPTURE_PERF";
/// Per-CPU counters of the capture program ([`capture_counter`]).
pub const MAP_CAPTURE_COUNTERS: &str = "CAPTURE_COUNTERS";
/// Per-CPU token buckets.
pub const MAP_CAPTURE_BUCKET: &str = "CAPTURE_BUCKET";

/// Bytes of the ring buffer (a power of two, a multiple of the page size).
pub const CAPTURE_RING_BYTES: u32 = 4 << 20;
/// Most bytes copied per packet (from the network header on).
pub const CAPTURE_MAX_SNAPLEN: usize = 256;
/// Bytes of the IP header the filter reads (a whole IPv6 header, an IPv4 header with options
/// up to here).
pub const CAPTURE_HEADER_PEEK: usize = 40;

/// Slots for reasons the 256-bit set cannot hold ([`CaptureConfig::extra_reasons`]).
pub const CAPTURE_EXTRA_REASONS: usize = 4;

/// Indices into [`MAP_CAPTURE_COUNTERS`].
pub mod capture_counter {
    /// `skb:kfree_skb` events the capture program saw.
    pub const SEEN: u32 = 0;
    /// Events that passed every filter.
    pub const MATCHED: u32 = 1;
    /// Matching packets dropped by the token bucket (rate limit).
    pub const RATE_LIMITED: u32 = 2;
    /// Matching packets lost because the ring buffer was full (user space too slow).
    pub const RING_FULL: u32 = 3;
    /// Packets whose headers could not be read (no IP header at the network header, failed
    /// kernel reads).
    pub const UNREADABLE: u32 = 4;
    /// Events written to the ring buffer (or handed to the perf buffer).
    pub const SUBMITTED: u32 = 5;
    /// Successful `tcp:tcp_retransmit_skb` events the retransmit capture program saw.
    pub const RETRANSMITS_SEEN: u32 = 6;
    /// Number of counters.
    pub const COUNT: u32 = 7;
}

/// Offsets and filter of a capture. [`crate::ABSENT`] in a filter field means "any".
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureConfig {
    // Kernel structs (BTF): sk_buff.head/data/len/data_len/network_header, net_device.ifindex
    // and net_device.name.
    pub skb_head: u32,
    pub skb_data: u32,
    pub skb_len: u32,
    pub skb_data_len: u32,
    pub skb_network_header: u32,
    pub dev_ifindex: u32,
    pub dev_name: u32,
    /// Namespace inode to keep (ABSENT: any).
    pub netns: u32,
    /// IP version to keep: 4, 6, or ABSENT.
    pub ip_version: u32,
    /// IP protocol number to keep (IPv4 protocol / IPv6 next header), or ABSENT.
    pub protocol: u32,
    /// Source or destination port to keep (TCP/UDP), or ABSENT.
    pub port: u32,
    /// Prefix length of `addr` (source or destination in it), or ABSENT for any address.
    pub addr_prefix: u32,
    /// 4 (IPv4 in the first 4 bytes) or 6, for `addr`.
    pub addr_version: u32,
    /// Bytes to copy per packet (1..=CAPTURE_MAX_SNAPLEN).
    pub snaplen: u32,
    pub addr: [u8; 16],
    /// Drop reasons to keep (bit `r` for reason `r` < 256); `any_reason` != 0 keeps all.
    pub reasons: [u64; 4],
    pub any_reason: u32,
    /// Non-zero: write events into [`MAP_CAPTURE_PERF`] instead of the ring buffer.
    pub perf: u32,
    /// `sk_buff.cb` + `tcp_skb_cb.seq` (BTF): a retransmitted segment's sequence number, which
    /// the headers found in front of it must carry; ABSENT skips that check.
    pub skb_tcp_seq: u32,
    /// Reasons ≥ 256 to keep besides `reasons` (subsystem reasons: subsystem in the high 16
    /// bits); 0 marks an unused slot.
    pub extra_reasons: [u32; CAPTURE_EXTRA_REASONS],
    pub _pad: u32,
    /// Token bucket of each CPU: packets per second and burst (packets).
    pub rate_per_cpu: u64,
    pub burst: u64,
}

/// [`CaptureEvent::kind`] of a dropped packet.
pub const EVENT_DROP: u32 = 0;
/// [`CaptureEvent::kind`] of a retransmitted TCP segment.
pub const EVENT_RETRANSMIT: u32 = 1;
/// Bytes in front of a retransmitted segment's payload searched for its IP and TCP headers
/// (at most 60 TCP + 40 IPv6 bytes; `MAX_TCP_HEADER` headroom is larger).
pub const CAPTURE_HEADROOM_PEEK: usize = 128;

/// One captured packet.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CaptureEvent {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// Kernel address that freed the skb.
    pub location: u64,
    /// `skb_drop_reason` as the kernel numbers it (raw).
    pub reason: u32,
    pub netns: u32,
    pub ifindex: u32,
    /// Bytes from the network header to the end of the packet.
    pub pkt_len: u32,
    /// Bytes copied into `data`.
    pub cap_len: u32,
    /// [`EVENT_DROP`] or [`EVENT_RETRANSMIT`] (then `reason` is the socket's TCP state and
    /// `location` 0).
    pub kind: u32,
    /// The device's name (NUL-padded; empty without a device).
    pub ifname: [u8; 16],
    pub data: [u8; CAPTURE_MAX_SNAPLEN],
}

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::CaptureConfig {}
    unsafe impl aya::Pod for super::CaptureEvent {}
}
