//! Types shared by the kernel programs (`tracer-ebpf`) and the loader (`tracer`): map keys and
//! values, the load-time configuration, and the map/program names. Plain `#[repr(C)]` data only.
#![no_std]
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

/// Value of an offset field in [`TracerConfig`] when the running kernel does not have that field.
pub const ABSENT: u32 = u32::MAX;

pub mod capture;

/// Name of the global the loader overrides with a [`TracerConfig`].
pub const GLOBAL_CONFIG: &str = "CONFIG";

/// Map names (must match the statics in `tracer-ebpf`).
pub const MAP_DROPS: &str = "DROPS";
pub const MAP_DROP_SLOTS: &str = "DROP_SLOTS";
pub const MAP_RETRANS_FLOWS: &str = "RETRANS_FLOWS";
pub const MAP_SOFTIRQ_STATS: &str = "SOFTIRQ_STATS";
pub const MAP_PROBE_COUNTERS: &str = "PROBE_COUNTERS";
pub const MAP_DESTS: &str = "DESTS";
pub const MAP_RESETS: &str = "RESETS";
pub const MAP_SOCK_ERRORS: &str = "SOCK_ERRORS";
pub const MAP_RTT_PENDING: &str = "RTT_PENDING";
pub const MAP_RETRANS_SLOTS: &str = "RETRANS_SLOTS";

/// Program names (the function names in `tracer-ebpf`).
pub const PROG_KFREE_SKB: &str = "kfree_skb";
pub const PROG_TCP_RETRANSMIT_SKB: &str = "tcp_retransmit_skb";
pub const PROG_TCP_RETRANSMIT_SYNACK: &str = "tcp_retransmit_synack";
pub const PROG_SOFTIRQ_ENTRY: &str = "softirq_entry";
pub const PROG_SOFTIRQ_EXIT: &str = "softirq_exit";
pub const PROG_TCP_PROBE: &str = "tcp_probe";
pub const PROG_INET_SOCK_SET_STATE: &str = "inet_sock_set_state";
pub const PROG_TCP_SEND_RESET: &str = "tcp_send_reset";
pub const PROG_TCP_RECEIVE_RESET: &str = "tcp_receive_reset";
pub const PROG_INET_SK_ERROR_REPORT: &str = "inet_sk_error_report";

/// Suffix of a probe's raw-tracepoint program (`kfree_skb_raw`), where it has one.
pub const RAW_TP_SUFFIX: &str = "_raw";
/// Suffix of a probe's BTF-tracepoint program (`kfree_skb_btf`), where it has one.
pub const BTF_TP_SUFFIX: &str = "_btf";

/// Capacity of [`MAP_DROPS`] (distinct reason × location × namespace keys).
pub const DROPS_MAX_ENTRIES: u32 = 16_384;
/// Capacity of the LRU [`MAP_RETRANS_FLOWS`]; older flows are evicted beyond it.
pub const RETRANS_FLOWS_MAX_ENTRIES: u32 = 65_536;
/// Capacity of the LRU [`MAP_DESTS`] (destinations: namespace, address, port). Beyond it the
/// least recently used destination is evicted; the loader counts how many were (inserts minus
/// entries kept) and the report says so.
pub const DESTS_MAX_ENTRIES: u32 = 4096;
/// Slots of [`MAP_RTT_PENDING`] on each CPU (a power of two), in sets of two: a destination
/// and bucket may use either slot of its set, so two busy ones that hash to one set (the two
/// ends of a connection on one CPU, or one RTT moving between two buckets) both keep a slot.
pub const RTT_PENDING_SLOTS: usize = 8;
/// A slot of [`MAP_RTT_PENDING`] adds its samples to [`MAP_DESTS`] once it holds this many
/// (and whenever another destination or bucket takes the slot): a busy destination's entry
/// stays recently used in the LRU, and the map alone lags by fewer than this many samples per
/// slot.
pub const RTT_PENDING_FLUSH: u32 = 1024;
/// Capacity of the LRU [`MAP_RESETS`] (flow × direction × reason).
pub const RESETS_MAX_ENTRIES: u32 = 8192;
/// Capacity of the LRU [`MAP_SOCK_ERRORS`] (destination × error).
pub const SOCK_ERRORS_MAX_ENTRIES: u32 = 4096;
/// Sockets in SYN_SENT whose connect start time is kept (LRU).
pub const CONNECT_START_MAX_ENTRIES: u32 = 16_384;
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
    /// `tcp:tcp_probe` events seen (one per received segment of an established socket).
    pub const TCP_PROBE_EVENTS: u32 = 9;
    /// `sock:inet_sock_set_state` events seen (TCP only).
    pub const STATE_EVENTS: u32 = 10;
    /// `tcp:tcp_send_reset` events seen.
    pub const RESET_SENT_EVENTS: u32 = 11;
    /// `tcp:tcp_receive_reset` events seen.
    pub const RESET_RECEIVED_EVENTS: u32 = 12;
    /// `sock:inet_sk_error_report` events seen (TCP only).
    pub const ERROR_REPORT_EVENTS: u32 = 13;
    /// Destinations inserted into the destination map (new keys); inserts minus the entries
    /// still there is what the LRU evicted.
    pub const DEST_INSERTS: u32 = 14;
    /// Destination updates lost because no entry could be created.
    pub const DESTS_INSERT_FAILED: u32 = 15;
    /// Reset or socket-error updates lost because no entry could be created.
    pub const RESETS_INSERT_FAILED: u32 = 16;
    /// Socket errors whose namespace could not be matched to the socket's close (counted in
    /// namespace 0).
    pub const ERROR_NETNS_UNMATCHED: u32 = 17;
    /// Connections that left SYN_SENT without a recorded start (begun before the tracer, or
    /// the start map was full): established, but without a connect time.
    pub const CONNECT_START_MISSING: u32 = 18;
    /// Retransmitting flows inserted into the flow map (new keys); inserts minus the growth of
    /// the map is what the LRU evicted.
    pub const FLOW_INSERTS: u32 = 19;
    /// Drop slots (`DROP_SLOTS`) taken over by another key: each moved the slot's count into
    /// the drop map (one hash update). Drops minus these is how many cost a plain add.
    pub const DROP_SLOT_TAKEOVERS: u32 = 20;
    /// `tcp:tcp_probe` events of a socket with no RTT measured yet (smoothed RTT 0): no sample.
    /// Every other event is one RTT sample, or a read error.
    pub const RTT_UNMEASURED: u32 = 21;
    /// Number of counters.
    pub const COUNT: u32 = 22;

    /// The counters that are the runs of one program (it adds one first thing, before any
    /// filter), with that program: counted by the program only while
    /// [`TracerConfig::count_runs`](super::TracerConfig::count_runs) says so, otherwise taken
    /// from the kernel's run count of the program. `STATE_EVENTS` and `ERROR_REPORT_EVENTS`
    /// are not among them: they count TCP events only, after the program's protocol filter.
    pub const RUN_COUNTERS: [(u32, &str); 6] = [
        (KFREE_SKB_EVENTS, super::PROG_KFREE_SKB),
        (RETRANSMIT_EVENTS, super::PROG_TCP_RETRANSMIT_SKB),
        (SYNACK_EVENTS, super::PROG_TCP_RETRANSMIT_SYNACK),
        (TCP_PROBE_EVENTS, super::PROG_TCP_PROBE),
        (RESET_SENT_EVENTS, super::PROG_TCP_SEND_RESET),
        (RESET_RECEIVED_EVENTS, super::PROG_TCP_RECEIVE_RESET),
    ];
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
    // tcp:tcp_probe (addresses are `struct sockaddr_in`/`sockaddr_in6` in 28-byte fields)
    pub probe_daddr_sa: u32,
    pub probe_saddr_sa: u32,
    pub probe_srtt: u32,
    pub probe_skaddr: u32,
    // sock:inet_sock_set_state
    pub ss_skaddr: u32,
    pub ss_oldstate: u32,
    pub ss_newstate: u32,
    pub ss_dport: u32,
    pub ss_sport: u32,
    pub ss_family: u32,
    pub ss_protocol: u32,
    pub ss_daddr: u32,
    pub ss_daddr_v6: u32,
    // TCP state numbers, from the inet_sock_set_state format's own table.
    pub tcp_established: u32,
    pub tcp_syn_sent: u32,
    pub tcp_close: u32,
    pub tcp_listen: u32,
    // tcp:tcp_send_reset: 6.10+ records sockaddrs and a reason; older kernels the flow fields.
    pub rst_tx_skbaddr: u32,
    pub rst_tx_skaddr: u32,
    pub rst_tx_reason: u32,
    pub rst_tx_saddr_sa: u32,
    pub rst_tx_daddr_sa: u32,
    pub rst_tx_family: u32,
    pub rst_tx_sport: u32,
    pub rst_tx_dport: u32,
    pub rst_tx_saddr: u32,
    pub rst_tx_daddr: u32,
    pub rst_tx_saddr_v6: u32,
    pub rst_tx_daddr_v6: u32,
    // tcp:tcp_receive_reset
    pub rst_rx_skaddr: u32,
    pub rst_rx_family: u32,
    pub rst_rx_sport: u32,
    pub rst_rx_dport: u32,
    pub rst_rx_saddr: u32,
    pub rst_rx_daddr: u32,
    pub rst_rx_saddr_v6: u32,
    pub rst_rx_daddr_v6: u32,
    // sock:inet_sk_error_report
    pub err_error: u32,
    pub err_family: u32,
    pub err_protocol: u32,
    pub err_sport: u32,
    pub err_dport: u32,
    pub err_daddr: u32,
    pub err_daddr_v6: u32,
    /// `IPPROTO_TCP`, for the `protocol` fields (0: the field is not checked).
    pub ipproto_tcp: u32,
    /// Bit `v` set: time softirq vector `v` (the loader sets NET_RX and NET_TX, numbered from
    /// the softirq format's own table). 0 times every vector.
    pub softirq_vec_mask: u32,
    /// The host's `ip_local_port_range` as [`pack_port_range`] makes it (0: unknown): which
    /// ports are a client's ephemeral ones, for [`keyed_by_local_end`].
    pub ephemeral_ports: u32,
    // Raw and BTF tracepoints: the position of each argument in the tracepoint's `TP_PROTO`
    // (0 is its first argument; the BTF prototype's leading `void *__data` is not counted).
    pub kfree_arg_skb: u32,
    pub kfree_arg_location: u32,
    pub kfree_arg_reason: u32,
    pub kfree_arg_rx_sk: u32,
    /// Nonzero: kfree_skb's arguments are (skb, location, reason, rx_sk) in this order, as
    /// the positions above say (6.11's prototype and later): the program then reads them at
    /// those constant positions with one configuration load instead of four.
    pub kfree_args_in_order: u32,
    pub softirq_arg_vec: u32,
    pub rtx_arg_sk: u32,
    pub rtx_arg_skb: u32,
    pub rtx_arg_err: u32,
    pub probe_arg_sk: u32,
    // What a raw/BTF program reads from the socket itself, where a classic tracepoint gets the
    // value in its record: byte offsets in `struct sock` (from BTF) of `__sk_common.skc_*`.
    pub sk_family: u32,
    pub sk_state: u32,
    pub sk_num: u32,
    pub sk_dport: u32,
    pub sk_rcv_saddr: u32,
    pub sk_daddr: u32,
    pub sk_v6_rcv_saddr: u32,
    pub sk_v6_daddr: u32,
    /// `tcp_sock.srtt_us` (smoothed RTT in µs << 3).
    pub tp_srtt_us: u32,
    // Raw and BTF tracepoints of the rarer TCP/socket events: argument positions, as above.
    pub synack_arg_sk: u32,
    pub synack_arg_req: u32,
    pub ss_arg_sk: u32,
    pub ss_arg_oldstate: u32,
    pub ss_arg_newstate: u32,
    pub rst_tx_arg_sk: u32,
    pub rst_tx_arg_skb: u32,
    pub rst_tx_arg_reason: u32,
    pub rst_rx_arg_sk: u32,
    pub err_arg_sk: u32,
    /// `sock.sk_protocol` (ABSENT where it is a bitfield: state changes and socket errors
    /// then stay on their classic tracepoints).
    pub sk_protocol: u32,
    /// `sock.sk_err`
    pub sk_err: u32,
    /// Where a `request_sock`'s `sock_common` begins, relative to where a `sock`'s does (the
    /// `sk_*` offsets then read a SYN-ACK's half-open connection).
    pub req_common: u32,
    /// `sk_buff.head`, `sk_buff.data`, `sk_buff.network_header`: the addresses of a reset sent
    /// without a socket, from the segment it answers.
    pub skb_head: u32,
    pub skb_data: u32,
    pub skb_network_header: u32,
    /// Softirq sampling: the largest log2 of the mean stride between timed runs (see
    /// [`SoftirqClock`]); 0 times every run.
    pub softirq_sample_max_shift: u32,
    /// Nonzero: the programs count their own runs in the run counters
    /// ([`counter::RUN_COUNTERS`]). 0 where the kernel counts them (the loader holds run-time
    /// statistics, kernel ≥ 5.8): user space then derives those counters from each program's
    /// `run_cnt`, and the verifier drops the add from the programs (the configuration is frozen).
    pub count_runs: u32,
    /// Nonzero: a program using per-CPU slots (the drop and retransmit slots) may run nested
    /// inside another run of itself on the same CPU, so it guards each slot with its `busy`
    /// flag. 0 where the kernel never nests a program's runs on one CPU (classic tracepoints
    /// always, through the per-CPU `bpf_prog_active`; raw and BTF tracepoints from Linux 6.1,
    /// through the program's own per-CPU `active` count): the verifier then drops the guard
    /// (the configuration is frozen). Set by the loader from the running kernel's release and
    /// the planned hooks; 1 (guarded) unless it knows better.
    pub runs_may_nest: u32,
}

/// Words in [`TracerConfig`] (every field is a `u32`).
pub const CONFIG_WORDS: usize = 116;

const _: () = assert!(core::mem::size_of::<TracerConfig>() == CONFIG_WORDS * 4);

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
            probe_daddr_sa: ABSENT,
            probe_saddr_sa: ABSENT,
            probe_srtt: ABSENT,
            probe_skaddr: ABSENT,
            ss_skaddr: ABSENT,
            ss_oldstate: ABSENT,
            ss_newstate: ABSENT,
            ss_dport: ABSENT,
            ss_sport: ABSENT,
            ss_family: ABSENT,
            ss_protocol: ABSENT,
            ss_daddr: ABSENT,
            ss_daddr_v6: ABSENT,
            tcp_established: ABSENT,
            tcp_syn_sent: ABSENT,
            tcp_close: ABSENT,
            tcp_listen: ABSENT,
            rst_tx_skbaddr: ABSENT,
            rst_tx_skaddr: ABSENT,
            rst_tx_reason: ABSENT,
            rst_tx_saddr_sa: ABSENT,
            rst_tx_daddr_sa: ABSENT,
            rst_tx_family: ABSENT,
            rst_tx_sport: ABSENT,
            rst_tx_dport: ABSENT,
            rst_tx_saddr: ABSENT,
            rst_tx_daddr: ABSENT,
            rst_tx_saddr_v6: ABSENT,
            rst_tx_daddr_v6: ABSENT,
            rst_rx_skaddr: ABSENT,
            rst_rx_family: ABSENT,
            rst_rx_sport: ABSENT,
            rst_rx_dport: ABSENT,
            rst_rx_saddr: ABSENT,
            rst_rx_daddr: ABSENT,
            rst_rx_saddr_v6: ABSENT,
            rst_rx_daddr_v6: ABSENT,
            err_error: ABSENT,
            err_family: ABSENT,
            err_protocol: ABSENT,
            err_sport: ABSENT,
            err_dport: ABSENT,
            err_daddr: ABSENT,
            err_daddr_v6: ABSENT,
            ipproto_tcp: 0,
            softirq_vec_mask: 0,
            ephemeral_ports: 0,
            kfree_arg_skb: ABSENT,
            kfree_arg_location: ABSENT,
            kfree_arg_reason: ABSENT,
            kfree_arg_rx_sk: ABSENT,
            kfree_args_in_order: 0,
            softirq_arg_vec: ABSENT,
            rtx_arg_sk: ABSENT,
            rtx_arg_skb: ABSENT,
            rtx_arg_err: ABSENT,
            probe_arg_sk: ABSENT,
            sk_family: ABSENT,
            sk_state: ABSENT,
            sk_num: ABSENT,
            sk_dport: ABSENT,
            sk_rcv_saddr: ABSENT,
            sk_daddr: ABSENT,
            sk_v6_rcv_saddr: ABSENT,
            sk_v6_daddr: ABSENT,
            tp_srtt_us: ABSENT,
            synack_arg_sk: ABSENT,
            synack_arg_req: ABSENT,
            ss_arg_sk: ABSENT,
            ss_arg_oldstate: ABSENT,
            ss_arg_newstate: ABSENT,
            rst_tx_arg_sk: ABSENT,
            rst_tx_arg_skb: ABSENT,
            rst_tx_arg_reason: ABSENT,
            rst_rx_arg_sk: ABSENT,
            err_arg_sk: ABSENT,
            sk_protocol: ABSENT,
            sk_err: ABSENT,
            req_common: ABSENT,
            skb_head: ABSENT,
            skb_data: ABSENT,
            skb_network_header: ABSENT,
            softirq_sample_max_shift: SOFTIRQ_SAMPLE_MAX_SHIFT,
            // Counted by the programs unless the loader knows the kernel counts the runs.
            count_runs: 1,
            runs_may_nest: 1,
        }
    }
}

/// A port range (`ip_local_port_range`) in one word: low port in the low 16 bits, high port in
/// the high 16. 0 means unknown.
pub const fn pack_port_range(low: u16, high: u16) -> u32 {
    (low as u32) | ((high as u32) << 16)
}

/// Whether `port` is in a range packed by [`pack_port_range`] (never, when it is 0).
#[inline(always)]
pub const fn in_port_range(port: u16, packed: u32) -> bool {
    let (low, high) = ((packed & 0xffff) as u16, (packed >> 16) as u16);
    packed != 0 && port >= low && port <= high
}

/// Which end of a TCP socket keys its destination: the remote end, unless the remote port is
/// ephemeral (in the local port range) and the local one is not. Then the socket is the
/// server's side of a connection a client opened, and the destination is the local
/// (listening) end: every client of one listener counts under one key, not one key per client
/// port. (A server listening inside the ephemeral range still sees its clients one by one.)
#[inline(always)]
pub const fn keyed_by_local_end(local_port: u16, remote_port: u16, ephemeral: u32) -> bool {
    in_port_range(remote_port, ephemeral) && !in_port_range(local_port, ephemeral)
}

/// Key of [`MAP_DROPS`]: one drop reason at one kernel location in one network namespace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DropKey {
    /// Raw `skb_drop_reason` value ([`ABSENT`] when the kernel has no reason field).
    pub reason: u32,
    /// Inode of the network namespace (0 when unknown).
    pub netns: u32,
    /// Kernel return address inside the function that dropped the packet.
    pub location: u64,
}
const _: () = assert!(core::mem::size_of::<DropKey>() == 16);

/// Slots per CPU in [`MAP_DROP_SLOTS`] (a power of two).
pub const DROP_SLOTS: usize = 4;

/// One per-CPU "last key" slot in front of [`MAP_DROPS`]: drops of the key it holds are counted
/// here with a plain add; the kernel moves the count into the drop map only when a drop of
/// another key (of the same slot index, [`drop_slot_index`]) takes the slot. The drops of a key
/// are its map entry plus the counts of the slots holding it: the loader reads both (the map
/// first, then the slots, twice) and merges them (`tracer/src/kernel/drop_slots.rs`).
///
/// The kernel finds a drop's slot by its [`source`](Self::source) (the device), not by its
/// namespace: a hit reads no namespace. Two devices of one namespace may then hold the same
/// key in two slots, which the merge adds like slots of different CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropSlot {
    /// Odd while the kernel moves the count into the map and gives the slot to another key;
    /// two more with every takeover. Two reads with the same even `seq` saw the same key, its
    /// count not yet in the map.
    pub seq: u32,
    /// Non-zero while a run of the program uses the slot: a run that interrupted it on the
    /// same CPU (possible on raw and BTF tracepoints before Linux 6.1, which had no
    /// per-program recursion guard) counts its drop in the map directly instead. Kept only
    /// where [`TracerConfig::runs_may_nest`] says so. User space ignores it.
    pub busy: u32,
    pub key: DropKey,
    /// Drops of `key` not yet in the map.
    pub count: u64,
    /// Which device `key.netns` was read from: the skb's device's address (on BTF
    /// tracepoints minus the address of this CPU's slot array, which makes it a number the
    /// verifier lets the program hash), or 0 for a drop without a device (whose namespace is
    /// then read every time and compared). A drop of the same source, reason and location
    /// adds to the slot without reading the namespace, except every
    /// [`DROP_SLOT_REVALIDATE`]th count. User space ignores it.
    pub source: u64,
    /// To 64 bytes: a slot's address is then its index shifted, not multiplied.
    pub _pad: [u64; 3],
}
const _: () = assert!(core::mem::size_of::<DropSlot>() == 64);

/// A slot re-reads its device's namespace when its count reaches a multiple of this: a device
/// moved to another namespace (same pointer), or freed and its memory reused by a device of
/// another namespace, has at most this many minus one of its drops per CPU counted under the
/// old namespace. (A power of two.)
pub const DROP_SLOT_REVALIDATE: u64 = 256;
const _: () = assert!(DROP_SLOT_REVALIDATE.is_power_of_two());

/// The one value of [`MAP_DROP_SLOTS`] on each CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropSlots {
    pub slots: [DropSlot; DROP_SLOTS],
}
const _: () = assert!(core::mem::size_of::<DropSlots>() == 64 * DROP_SLOTS);
const _: () = assert!(DROP_SLOTS.is_power_of_two() && DROP_SLOTS > 1);

/// The slot of a drop: a multiplicative hash of its source ([`DropSlot::source`], or the
/// namespace of a drop without a device), freeing location and reason (the product's top
/// bits depend on every bit of the mix).
#[inline(always)]
pub const fn drop_slot_index(source: u64, location: u64, reason: u64) -> usize {
    let mixed = source ^ location ^ reason;
    (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - DROP_SLOTS.trailing_zeros())) as usize
}

/// Family values carried in [`FlowKey::family`] (the kernel's `AF_INET`/`AF_INET6`).
pub const FAMILY_INET: u16 = 2;
pub const FAMILY_INET6: u16 = 10;

/// Key of [`MAP_RETRANS_FLOWS`]: a TCP flow as seen from the retransmitting socket.
/// Addresses are the kernel's bytes (network order) read as native-endian `u32` words, so
/// `word.to_ne_bytes()` gives the bytes back; an IPv4 address is word 0, the rest zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
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

/// Slots per CPU in [`MAP_RETRANS_SLOTS`] (a power of two).
pub const RETRANS_SLOTS: usize = 2;
/// A slot of [`MAP_RETRANS_SLOTS`] adds its counts to [`MAP_RETRANS_FLOWS`] once it holds this
/// many retransmissions, so that a flow retransmitting for long stays recently used in the LRU.
pub const RETRANS_SLOT_FLUSH: u64 = 64;

/// One per-CPU slot in front of [`MAP_RETRANS_FLOWS`]: `tcp_retransmit_skb`'s counts of the flow
/// it holds, counted on this CPU and not yet added to the flow's entry. A retransmission of that
/// flow costs plain adds here instead of a hash lookup (a 44-byte key) and a write to an entry
/// the other CPUs write too; the kernel moves the counts into the map when another flow takes
/// the slot, or after [`RETRANS_SLOT_FLUSH`] retransmissions. A flow's counts are its entry plus
/// its stable slots: the loader reads both (the map first, then the slots, twice).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetransSlot {
    /// Odd while the kernel moves the counts or gives the slot to another flow; it changes with
    /// every move, so two reads with the same even `seq` saw the same counts still pending.
    pub seq: u32,
    /// Non-zero while a run uses the slot: a run that interrupted it on the same CPU (raw and
    /// BTF tracepoints before Linux 6.1 have no per-program recursion guard) counts in the map
    /// directly instead. Kept only where [`TracerConfig::runs_may_nest`] says so.
    pub busy: u32,
    pub key: FlowKey,
    /// TCP state at the slot's last retransmission (0: unknown).
    pub last_state: u32,
    /// Pending retransmissions, segments and failed attempts (as in [`FlowStats`]).
    pub retransmits: u64,
    pub retransmitted_segments: u64,
    pub failed_attempts: u64,
}
const _: () = assert!(core::mem::size_of::<RetransSlot>() == 80);

/// The one value of [`MAP_RETRANS_SLOTS`] on each CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetransSlots {
    pub slots: [RetransSlot; RETRANS_SLOTS],
}
const _: () = assert!(RETRANS_SLOTS.is_power_of_two() && RETRANS_SLOTS > 1);

/// The slot of a flow: a multiplicative hash of its namespace, ports and address words, so that
/// the two ends of a veth or loopback connection (differing by namespace and port order) and
/// flows differing in any field spread over the slots.
#[inline(always)]
pub const fn retrans_slot_index(key: &FlowKey) -> usize {
    let mixed = key.netns
        ^ ((key.sport as u32) << 16)
        ^ (key.dport as u32)
        ^ key.saddr[0]
        ^ key.saddr[3]
        ^ key.daddr[0].rotate_left(8)
        ^ key.daddr[3].rotate_left(8);
    (mixed.wrapping_mul(0x9E37_79B1) >> 16) as usize
}

/// Key of [`MAP_DESTS`]: a remote TCP endpoint (address and port) seen from one namespace.
/// Addresses as in [`FlowKey`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestKey {
    pub netns: u32,
    pub family: u16,
    pub dport: u16,
    pub daddr: [u32; 4],
}
const _: () = assert!(core::mem::size_of::<DestKey>() == 24);

/// Buckets of the latency histograms of [`DestStats`]: log2 with 4 linear sub-buckets per
/// power of two (see [`lat_bucket`]), in microseconds; the last bucket also holds everything
/// above it (2^27 µs ≈ 134 s).
pub const LAT_BUCKETS: usize = 104;

/// Value of [`MAP_DESTS`]: what the kernel saw of one destination. Updated with atomic adds
/// (several sockets to one destination may run on several CPUs at once).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestStats {
    /// `tcp_probe` events with a smoothed RTT (one per received segment). Not counted by the
    /// kernel (one atomic add less per segment): the loader fills it with the sum of
    /// `rtt_hist`.
    pub rtt_samples: u64,
    pub rtt_sum_us: u64,
    /// Active opens (CLOSE → SYN_SENT).
    pub connects: u64,
    /// SYN_SENT → ESTABLISHED.
    pub established: u64,
    /// SYN_SENT → CLOSE: never established.
    pub failed: u64,
    /// Any other state (except LISTEN) → CLOSE: a connection that had been set up ended.
    /// Counted for destinations already in the map only (no entry is created for it).
    pub closed: u64,
    /// Established connections whose connect time was measured, and the sum of those times.
    pub connect_timed: u64,
    pub connect_sum_us: u64,
    /// Smoothed RTT (`srtt`, µs) per received segment, by [`lat_bucket`]. `u32` counts: the
    /// readers subtract with wrap-around.
    pub rtt_hist: [u32; LAT_BUCKETS],
    /// Connect time (SYN_SENT → ESTABLISHED, µs), by [`lat_bucket`].
    pub connect_hist: [u32; LAT_BUCKETS],
}
const _: () = assert!(core::mem::size_of::<DestStats>() == 64 + 8 * LAT_BUCKETS);

/// A slot of [`MAP_RTT_PENDING`] (per CPU, [`RTT_PENDING_SLOTS`] slots): `tcp_probe`'s RTT
/// samples of one destination in one histogram bucket, counted on this CPU and not yet added to
/// [`MAP_DESTS`]. A segment of the same destination whose smoothed RTT falls in the same bucket
/// costs two plain adds here instead of a hash lookup and two atomic adds there; the kernel
/// moves the counts into the destination's entry when another destination or bucket takes the
/// slot, or after [`RTT_PENDING_FLUSH`] samples. The RTT of a destination is its entry plus its
/// pending slots: the loader reads both (the map first, then the slots, twice).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttPending {
    /// Odd while the kernel moves the counts or gives the slot to another destination; it
    /// changes with every move, so two reads with the same even `seq` saw the same samples
    /// still pending.
    pub seq: u32,
    /// [`lat_bucket`] of the samples.
    pub bucket: u32,
    pub key: DestKey,
    /// Samples pending (0: none).
    pub count: u32,
    pub _pad: u32,
    /// Sum of their smoothed RTTs, µs.
    pub sum_us: u64,
}
const _: () = assert!(core::mem::size_of::<RttPending>() == 48);

/// The one value of [`MAP_RTT_PENDING`] on each CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttPendingSlots {
    pub slots: [RttPending; RTT_PENDING_SLOTS],
}

impl Default for DestStats {
    fn default() -> Self {
        Self {
            rtt_samples: 0,
            rtt_sum_us: 0,
            connects: 0,
            established: 0,
            failed: 0,
            closed: 0,
            connect_timed: 0,
            connect_sum_us: 0,
            rtt_hist: [0; LAT_BUCKETS],
            connect_hist: [0; LAT_BUCKETS],
        }
    }
}

/// [`ResetKey::direction`]: this host sent the reset.
pub const RESET_SENT: u32 = 0;
/// [`ResetKey::direction`]: this host received the reset.
pub const RESET_RECEIVED: u32 = 1;

/// Key of [`MAP_RESETS`] (value: count): resets of one flow, one direction, one reason.
/// `flow.saddr`/`sport` are this host's side, `daddr`/`dport` the peer's.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResetKey {
    pub flow: FlowKey,
    /// Raw `sk_rst_reason` ([`ABSENT`] when the event has no reason field, and for received
    /// resets).
    pub reason: u32,
    pub direction: u32,
}
const _: () = assert!(core::mem::size_of::<ResetKey>() == 52);

/// Key of [`MAP_SOCK_ERRORS`] (value: count): a socket error (`sk_err`, a positive errno)
/// reported for a destination.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorKey {
    pub dest: DestKey,
    pub error: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<ErrorKey>() == 32);

/// Index of the most significant set bit (`v` > 0), by branchy binary search (no loops in BPF).
#[inline(always)]
pub fn msb(mut v: u64) -> usize {
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
    r
}

/// Latency bucket of `v` µs: 0–3 exactly, then for each power of two `[2^k, 2^(k+1))` four
/// equal sub-buckets, so a bucket is never wider than a quarter of its lower bound.
#[inline(always)]
pub fn lat_bucket(v: u64) -> usize {
    if v < 4 {
        return v as usize;
    }
    let k = msb(v);
    let sub = ((v >> (k - 2)) & 3) as usize;
    let i = 4 * (k - 1) + sub;
    if i >= LAT_BUCKETS {
        LAT_BUCKETS - 1
    } else {
        i
    }
}

/// [`lat_bucket`] of a `u32` (the kernel's smoothed RTT), without a branch: BPF has no count of
/// leading zeros and no `setcc`, so the branchy search of [`msb`] is ~50 instructions with six
/// conditional jumps where this is ~30 straight-line ones.
///
/// With `e = max(msb(v), 2) - 2` (the octave above the exact buckets), `v >> e` is `4 + sub`
/// for `v >= 4` and `v` itself below, so the bucket is `4 * e + (v >> e)` in both cases.
/// `e = msb((v >> 2) | 1)`, found in four halving steps; each step's "a bit at or above
/// `2^s`?" is the sign of `(2^s - 1) - w` (a subtraction and an arithmetic shift, [`sign_mask`]),
/// not a compare. The last bucket is taken the same way.
#[inline(always)]
pub fn lat_bucket32(v: u32) -> u32 {
    let v = u64::from(v);
    let mut w = (v >> 2) | 1; // 1 ..= 2^30 - 1
    let mut e = 0u64;
    for s in [16u64, 8, 4, 2] {
        let t = sign_mask(((1u64 << s) - 1).wrapping_sub(w)) & s;
        w >>= t;
        e += t;
    }
    // w is 1, 2 or 3 now: its top bit is w >> 1.
    e += w >> 1;
    let i = 4 * e + (v >> e);
    // min(i, LAT_BUCKETS - 1): i + ((last - i) when i > last, else 0).
    let last = LAT_BUCKETS as u64 - 1;
    let over = last.wrapping_sub(i);
    (i.wrapping_add(over & sign_mask(over))) as u32
}

/// All ones when `x`, read as signed, is negative, else zero: one arithmetic shift. On the BPF
/// target it is written out (`s>>=`), so the optimiser cannot turn the subtraction before it
/// into a compare and a branch again.
#[inline(always)]
fn sign_mask(x: u64) -> u64 {
    #[cfg(target_arch = "bpf")]
    {
        let mut r = x;
        // SAFETY: a register-only arithmetic shift.
        unsafe {
            core::arch::asm!("{r} s>>= 63", r = inout(reg) r, options(pure, nomem, nostack));
        }
        r
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        ((x as i64) >> 63) as u64
    }
}

/// `[lower, upper)` of latency bucket `i`, in µs (the inverse of [`lat_bucket`]).
pub fn lat_bucket_bounds(i: usize) -> (u64, u64) {
    if i < 4 {
        return (i as u64, i as u64 + 1);
    }
    let k = i / 4 + 1;
    let sub = (i % 4) as u64;
    ((4 + sub) << (k - 2), (5 + sub) << (k - 2))
}

/// Per-CPU, per-vector softirq run statistics (the [`SoftirqSlot::stats`] of
/// [`MAP_SOFTIRQ_STATS`], index = vector number).
///
/// `runs` counts every run. Under a flood only a sample of runs is timed ([`SoftirqClock`]):
/// `timed_runs` of them, each adding its run time times the number of runs it stands for to
/// `total_ns` (an estimate, exact while `timed_runs == runs`). `hist` holds the timed runs only.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftirqStats {
    pub runs: u64,
    /// Runs chosen at their entry to have their length measured (the others are counted, not
    /// timed). Equal to `runs` over any window in which no run was left untimed.
    pub timed_runs: u64,
    pub total_ns: u64,
    /// Log2 histogram of the timed runs' lengths in ns.
    pub hist: [u64; HIST_BUCKETS],
}
const _: () = assert!(core::mem::size_of::<SoftirqStats>() == 24 + 8 * HIST_BUCKETS);

impl Default for SoftirqStats {
    fn default() -> Self {
        Self {
            runs: 0,
            timed_runs: 0,
            total_ns: 0,
            hist: [0; HIST_BUCKETS],
        }
    }
}

/// Default of [`TracerConfig::softirq_sample_max_shift`]: at most one run in 2^6 = 64 timed
/// on average.
pub const SOFTIRQ_SAMPLE_MAX_SHIFT: u32 = 6;
/// The stride between timed runs doubles while timed runs would come closer than this on a CPU
/// (more than 20 000 timed runs a second: ~0.25 % of the CPU in clock reads at ~120 ns each)...
pub const SOFTIRQ_SAMPLE_NEAR_NS: u64 = 50_000;
/// ...and halves while they would come farther apart than this. So a CPU that runs the vector
/// less than 20 000 times a second has every run timed (after a flood, once it runs it less
/// than 10 000 times a second: the step down needs two runs 200 µs apart at stride 2).
pub const SOFTIRQ_SAMPLE_FAR_NS: u64 = 200_000;
/// [`SoftirqClock::start`] of a run that is counted but not timed.
pub const SOFTIRQ_UNTIMED_RUN: u64 = 1;

/// The kernel programs' own sampling state per CPU and vector (user space only reads it).
///
/// Every run is counted. The clock is read at the first run of each block of `weight` runs
/// (`weight` drawn uniformly from `[1, 2^(shift+1) - 1]`, mean `2^shift`, so no periodic
/// pattern of runs can line up with the timed ones); that run's length counts `weight` times.
/// `shift` moves by one at each timed run, from the gap since the previous timed run scaled to
/// the mean block: up while that is under [`SOFTIRQ_SAMPLE_NEAR_NS`], down while over
/// [`SOFTIRQ_SAMPLE_FAR_NS`], never above [`TracerConfig::softirq_sample_max_shift`]. At
/// `shift == 0` every run is timed (`weight` 1).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoftirqClock {
    /// Clock at the start of the timed run in progress, [`SOFTIRQ_UNTIMED_RUN`] while an
    /// untimed run is in progress, 0 between runs (an exit then is unpaired).
    pub start: u64,
    /// Clock at the start of the last timed run (0: none yet).
    pub last_timed: u64,
    /// Runs still to count before the next timed one.
    pub skip: u32,
    pub shift: u32,
    /// Runs the timed run in progress stands for.
    pub weight: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<SoftirqClock>() == 32);

/// The value of [`MAP_SOFTIRQ_STATS`]: what user space reads, and the sampling state beside it
/// (one lookup per program run).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoftirqSlot {
    pub stats: SoftirqStats,
    pub clock: SoftirqClock,
}
const _: () = assert!(
    core::mem::size_of::<SoftirqSlot>()
        == core::mem::size_of::<SoftirqStats>() + core::mem::size_of::<SoftirqClock>()
);

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
    unsafe impl aya::Pod for DropSlot {}
    unsafe impl aya::Pod for DropSlots {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FlowStats {}
    unsafe impl aya::Pod for SoftirqStats {}
    unsafe impl aya::Pod for SoftirqSlot {}
    unsafe impl aya::Pod for DestKey {}
    unsafe impl aya::Pod for DestStats {}
    unsafe impl aya::Pod for ResetKey {}
    unsafe impl aya::Pod for ErrorKey {}
    unsafe impl aya::Pod for RttPending {}
    unsafe impl aya::Pod for RttPendingSlots {}
    unsafe impl aya::Pod for RetransSlot {}
    unsafe impl aya::Pod for RetransSlots {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14 item 12: 60 scrapes from ephemeral client ports to one listener are one
    /// destination on the server's side; the client's own sockets keep the listener as theirs.
    #[test]
    fn a_servers_sockets_are_keyed_by_the_listening_end() {
        let range = pack_port_range(32768, 60999);
        for client_port in 35000..35060u16 {
            // The server's socket: local 9100, remote the client's port.
            let server = if keyed_by_local_end(9100, client_port, range) {
                9100
            } else {
                client_port
            };
            // The client's socket: local the ephemeral port, remote 9100.
            let client = if keyed_by_local_end(client_port, 9100, range) {
                client_port
            } else {
                9100
            };
            assert_eq!((server, client), (9100, 9100), "client port {client_port}");
        }
        // Unknown range: the remote end, as before.
        assert!(!keyed_by_local_end(9100, 35000, 0));
        // Both ends ephemeral (a server inside the range): the remote end.
        assert!(!keyed_by_local_end(50051, 35000, range));
        assert!(in_port_range(60999, range) && !in_port_range(61000, range));
    }

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

    #[test]
    fn lat_bucket32_equals_lat_bucket() {
        // Every value below 2^22 (every bucket up to ~4 s), around every power of two, the top
        // of the range, and a stride through the rest of the u32 range.
        let check = |v: u32| {
            assert_eq!(
                lat_bucket32(v) as usize,
                lat_bucket(u64::from(v)),
                "bucket of {v}"
            );
        };
        (0..1u32 << 22).for_each(check);
        for k in 0..32u32 {
            let p = 1u32 << k;
            for d in 0..=8u32 {
                check(p.wrapping_add(d));
                check(p.wrapping_sub(d));
            }
            check(p | (p >> 1));
            check(p | (p >> 2));
        }
        for v in (0..=u32::MAX).step_by(4093) {
            check(v);
        }
        check(u32::MAX);
        // Spot values, so the test fails if both functions drift together.
        assert_eq!(lat_bucket32(0), 0);
        assert_eq!(lat_bucket32(3), 3);
        assert_eq!(lat_bucket32(7), 7);
        assert_eq!(lat_bucket32(8), 8);
        assert_eq!(lat_bucket32(40_000), 4 * 14);
        assert_eq!(lat_bucket32(40_960), 4 * 14 + 1);
        assert_eq!(lat_bucket32((1 << 27) - 1), LAT_BUCKETS as u32 - 1);
        assert_eq!(lat_bucket32(u32::MAX), LAT_BUCKETS as u32 - 1);
    }

    #[test]
    fn lat_buckets_are_exact_below_8_and_quarter_octaves_above() {
        for v in 0..8u64 {
            assert_eq!(lat_bucket(v), v as usize);
        }
        // 40 000 µs: octave [32768, 65536), quarter width 8192: [40960, 49152) is sub 1.
        assert_eq!(lat_bucket(40_000), 4 * 14);
        assert_eq!(lat_bucket_bounds(4 * 14), (32_768, 40_960));
        assert_eq!(lat_bucket(40_960), 4 * 14 + 1);
        assert_eq!(lat_bucket(u64::MAX), LAT_BUCKETS - 1);
        // Every value falls inside its own bucket's bounds, and buckets tile without gaps.
        for v in [
            4u64,
            9,
            15,
            16,
            17,
            100,
            1_000,
            65_535,
            65_536,
            1 << 26,
            (1 << 27) - 1,
        ] {
            let (lo, hi) = lat_bucket_bounds(lat_bucket(v));
            assert!(lo <= v && v < hi, "{v} not in [{lo}, {hi})");
            assert!(hi - lo <= lo.max(4) / 4 || lo < 8, "bucket of {v} too wide");
        }
        for i in 0..LAT_BUCKETS - 1 {
            assert_eq!(lat_bucket_bounds(i).1, lat_bucket_bounds(i + 1).0);
        }
    }
}
