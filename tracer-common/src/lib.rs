//! Types shared by the kernel programs (`tracer-ebpf`) and the loader (`tracer`): map keys and
//! values, the load-time configuration, and the map/program names. Plain `#[repr(C)]` data only.
#![no_std]

/// Value of an offset field in [`TracerConfig`] when the running kernel does not have that field.
pub const ABSENT: u32 = u32::MAX;

/// Name of the global the loader overrides with a [`TracerConfig`].
pub const GLOBAL_CONFIG: &str = "CONFIG";

/// Map names (must match the statics in `tracer-ebpf`).
pub const MAP_DROPS: &str = "DROPS";
pub const MAP_RETRANS_FLOWS: &str = "RETRANS_FLOWS";
pub const MAP_SOFTIRQ_START: &str = "SOFTIRQ_START";
pub const MAP_SOFTIRQ_STATS: &str = "SOFTIRQ_STATS";
pub const MAP_PROBE_COUNTERS: &str = "PROBE_COUNTERS";

/// Program names (the function names in `tracer-ebpf`).
pub const PROG_KFREE_SKB: &str = "kfree_skb";
pub const PROG_TCP_RETRANSMIT_SKB: &str = "tcp_retransmit_skb";
pub const PROG_TCP_RETRANSMIT_SYNACK: &str = "tcp_retransmit_synack";
pub const PROG_SOFTIRQ_ENTRY: &str = "softirq_entry";
pub const PROG_SOFTIRQ_EXIT: &str = "softirq_exit";

/// Capacity of [`MAP_DROPS`] (distinct reason × location × namespace keys).
pub const DROPS_MAX_ENTRIES: u32 = 16_384;
/// Capacity of the LRU [`MAP_RETRANS_FLOWS`]; older flows are evicted beyond it.
pub const RETRANS_FLOWS_MAX_ENTRIES: u32 = 65_536;
/// Softirq vectors tracked per CPU (the kernel has 10; room to spare).
pub const SOFTIRQ_VECTORS: u32 = 16;
/// Buckets of the log2 run-length histogram: bucket `i` holds runs of `[2^i, 2^(i+1))` ns.
pub const HIST_BUCKETS: usize = 32;

/// Indices into the per-CPU [`MAP_PROBE_COUNTERS`] array: what the programs saw and what they lost.
pub mod counter {
    /// `skb:kfree_skb` events seen.
    pub const KFREE_SKB_EVENTS: u32 = 0;
    /// Drops not counted because the drop map was full.
    pub const DROPS_MAP_FULL: u32 = 1;
    /// `tcp:tcp_retransmit_skb` events seen (all, including failed attempts).
    pub const RETRANSMIT_EVENTS: u32 = 2;
    /// Retransmit attempts that failed (`err != 0`), not counted as retransmissions.
    pub const RETRANSMIT_FAILED: u32 = 3;
    /// `tcp:tcp_retransmit_synack` events seen.
    pub const SYNACK_EVENTS: u32 = 4;
    /// Flow updates that could not be inserted into the flow map.
    pub const FLOWS_INSERT_FAILED: u32 = 5;
    /// Softirq exits without a matching entry (the tracer attached mid-run).
    pub const SOFTIRQ_UNPAIRED: u32 = 6;
    /// Events whose network namespace could not be read (counted with namespace 0).
    pub const NETNS_UNKNOWN: u32 = 7;
    /// Tracepoint record reads that failed.
    pub const READ_ERRORS: u32 = 8;
    /// Number of counters.
    pub const COUNT: u32 = 9;
}

/// Field offsets of the attached tracepoints (from tracefs `format` files) and kernel struct
/// offsets (from BTF), handed to the programs at load time. [`ABSENT`] marks what the running
/// kernel does not have.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracerConfig {
    // skb:kfree_skb
    pub kfree_skbaddr: u32,
    pub kfree_location: u32,
    pub kfree_reason: u32,
    pub kfree_rx_sk: u32,
    // tcp:tcp_retransmit_skb
    pub rtx_skbaddr: u32,
    pub rtx_skaddr: u32,
    pub rtx_state: u32,
    pub rtx_family: u32,
    pub rtx_sport: u32,
    pub rtx_dport: u32,
    pub rtx_saddr: u32,
    pub rtx_daddr: u32,
    pub rtx_saddr_v6: u32,
    pub rtx_daddr_v6: u32,
    pub rtx_err: u32,
    // tcp:tcp_retransmit_synack
    pub synack_skaddr: u32,
    pub synack_family: u32,
    pub synack_sport: u32,
    pub synack_dport: u32,
    pub synack_saddr: u32,
    pub synack_daddr: u32,
    pub synack_saddr_v6: u32,
    pub synack_daddr_v6: u32,
    // irq:softirq_entry / irq:softirq_exit
    pub softirq_entry_vec: u32,
    pub softirq_exit_vec: u32,
    // Kernel structs (BTF): sk_buff.dev, sk_buff.sk, net_device.nd_net.net,
    // sock.__sk_common.skc_net.net, net.ns.inum, and the segment count of a TCP skb
    // (sk_buff.cb + tcp_skb_cb.tcp_gso_segs, what RetransSegs adds per retransmission).
    pub skb_dev: u32,
    pub skb_sk: u32,
    pub dev_net: u32,
    pub sk_net: u32,
    pub net_inum: u32,
    pub skb_tcp_segs: u32,
    /// Bit `v` set: time softirq vector `v` (the loader sets NET_RX and NET_TX, numbered from
    /// the softirq format's own table). 0 times every vector.
    pub softirq_vec_mask: u32,
}

const _: () = assert!(core::mem::size_of::<TracerConfig>() == 32 * 4);

impl TracerConfig {
    /// A configuration with every field absent; the loader fills in what the kernel has.
    pub const fn absent() -> Self {
        Self {
            kfree_skbaddr: ABSENT,
            kfree_location: ABSENT,
            kfree_reason: ABSENT,
            kfree_rx_sk: ABSENT,
            rtx_skbaddr: ABSENT,
            rtx_skaddr: ABSENT,
            rtx_state: ABSENT,
            rtx_family: ABSENT,
            rtx_sport: ABSENT,
            rtx_dport: ABSENT,
            rtx_saddr: ABSENT,
            rtx_daddr: ABSENT,
            rtx_saddr_v6: ABSENT,
            rtx_daddr_v6: ABSENT,
            rtx_err: ABSENT,
            synack_skaddr: ABSENT,
            synack_family: ABSENT,
            synack_sport: ABSENT,
            synack_dport: ABSENT,
            synack_saddr: ABSENT,
            synack_daddr: ABSENT,
            synack_saddr_v6: ABSENT,
            synack_daddr_v6: ABSENT,
            softirq_entry_vec: ABSENT,
            softirq_exit_vec: ABSENT,
            skb_dev: ABSENT,
            skb_sk: ABSENT,
            dev_net: ABSENT,
            sk_net: ABSENT,
            net_inum: ABSENT,
            skb_tcp_segs: ABSENT,
            softirq_vec_mask: 0,
        }
    }
}

/// Key of [`MAP_DROPS`]: one drop reason at one kernel location in one network namespace.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DropKey {
    /// Raw `skb_drop_reason` value ([`ABSENT`] when the kernel has no reason field).
    pub reason: u32,
    /// Inode of the network namespace (0 when unknown).
    pub netns: u32,
    /// Kernel return address inside the function that dropped the packet.
    pub location: u64,
}
const _: () = assert!(core::mem::size_of::<DropKey>() == 16);

/// Family values carried in [`FlowKey::family`] (the kernel's `AF_INET`/`AF_INET6`).
pub const FAMILY_INET: u16 = 2;
pub const FAMILY_INET6: u16 = 10;

/// Key of [`MAP_RETRANS_FLOWS`]: a TCP flow as seen from the retransmitting socket.
/// Addresses are the kernel's bytes (network order) read as native-endian `u32` words, so
/// `word.to_ne_bytes()` gives the bytes back; an IPv4 address is word 0, the rest zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub netns: u32,
    pub family: u16,
    pub sport: u16,
    pub dport: u16,
    pub _pad: u16,
    pub saddr: [u32; 4],
    pub daddr: [u32; 4],
}
const _: () = assert!(core::mem::size_of::<FlowKey>() == 44);

/// Value of [`MAP_RETRANS_FLOWS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Successful `tcp_retransmit_skb` retransmissions (skbs).
    pub retransmits: u64,
    /// Segments in those skbs (a GSO skb carries several); what `RetransSegs` counts.
    pub retransmitted_segments: u64,
    /// SYN-ACK retransmissions (`tcp_retransmit_synack`).
    pub synack_retransmits: u64,
    /// Retransmit attempts that failed (`err != 0`).
    pub failed_attempts: u64,
    /// TCP state (kernel `TCP_*` number) at the last retransmission; 0 when unknown.
    pub last_state: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<FlowStats>() == 40);

/// Per-CPU, per-vector softirq run statistics ([`MAP_SOFTIRQ_STATS`], index = vector number).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftirqStats {
    pub runs: u64,
    pub total_ns: u64,
    /// Log2 histogram of run lengths in ns.
    pub hist: [u64; HIST_BUCKETS],
}
const _: () = assert!(core::mem::size_of::<SoftirqStats>() == 16 + 8 * HIST_BUCKETS);

impl Default for SoftirqStats {
    fn default() -> Self {
        Self {
            runs: 0,
            total_ns: 0,
            hist: [0; HIST_BUCKETS],
        }
    }
}

/// Bucket index of a run length in the log2 histogram (shared so both sides agree).
#[inline(always)]
pub fn log2_bucket(mut v: u64) -> usize {
    // Branchy binary search: compiles to straight-line BPF without loops.
    let mut r = 0usize;
    if v >= 1 << 32 {
        v >>= 32;
        r += 32;
    }
    if v >= 1 << 16 {
        v >>= 16;
        r += 16;
    }
    if v >= 1 << 8 {
        v >>= 8;
        r += 8;
    }
    if v >= 1 << 4 {
        v >>= 4;
        r += 4;
    }
    if v >= 1 << 2 {
        v >>= 2;
        r += 2;
    }
    if v >= 1 << 1 {
        r += 1;
    }
    if r >= HIST_BUCKETS {
        HIST_BUCKETS - 1
    } else {
        r
    }
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all are #[repr(C)] structs of integers with no implicit padding (asserted sizes).
    unsafe impl aya::Pod for TracerConfig {}
    unsafe impl aya::Pod for DropKey {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FlowStats {}
    unsafe impl aya::Pod for SoftirqStats {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_bucket_edges() {
        assert_eq!(log2_bucket(0), 0);
        assert_eq!(log2_bucket(1), 0);
        assert_eq!(log2_bucket(2), 1);
        assert_eq!(log2_bucket(3), 1);
        assert_eq!(log2_bucket(1024), 10);
        assert_eq!(log2_bucket(1_000_000), 19);
        assert_eq!(log2_bucket(u64::MAX), HIST_BUCKETS - 1);
    }
}
