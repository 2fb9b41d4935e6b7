//! Drop sites: the layer of the kernel function a packet was freed in, for drops whose reason
//! says nothing (NOT_SPECIFIED, kernels without reasons such as 5.10, reasons this tracer does
//! not know). Generalises by the kernel's own naming instead of listing call sites one by one:
//! the module the site lives in (`[nf_tables]`, `[ip6_tables]`, `[nf_conntrack]`, NIC driver
//! modules) first, then the longest matching function-name family (`dst_discard*`,
//! `ip6_pkt_discard*`, `fib*`, `neigh_*`, `tcp_*`, `udp*_queue_rcv*`, `sk_*`, `sch_*`, …),
//! with explicit exceptions where a name misleads. IPv4 and IPv6 twins are listed together.
//! Pure tables; the source is `../shared/kernel-ref/` §3 and the kernels' own symbol names.

use super::{DropClass, Layer};

use DropClass::{Loss, NoListener, Noise, Other};
use Layer::{IptablesNetpolicy, IrqCpu, NicDriver, Routing, TcpStack};

const NETFILTER: DropClass = Loss {
    layer: IptablesNetpolicy,
    tag: "netfilter",
};
const POLICY: DropClass = Loss {
    layer: IptablesNetpolicy,
    tag: "policy (tc/eBPF)",
};
const ROUTE_DISCARD: DropClass = Loss {
    layer: Routing,
    tag: "route-discard",
};
const ROUTE_LOOKUP: DropClass = Loss {
    layer: Routing,
    tag: "route-lookup",
};
const IP_INPUT: DropClass = Loss {
    layer: Routing,
    tag: "ip-input",
};
const IP_OUTPUT: DropClass = Loss {
    layer: Routing,
    tag: "ip-output",
};
const FORWARDING: DropClass = Loss {
    layer: Routing,
    tag: "forwarding",
};
const FRAG: DropClass = Loss {
    layer: Routing,
    tag: "mtu/frag",
};
const NEIGHBOUR: DropClass = Loss {
    layer: Routing,
    tag: "neighbour",
};
const QDISC: DropClass = Loss {
    layer: NicDriver,
    tag: "qdisc",
};
const TX_PATH: DropClass = Loss {
    layer: NicDriver,
    tag: "tx-path",
};
const DEVICE: DropClass = Loss {
    layer: NicDriver,
    tag: "device",
};
const BACKLOG: DropClass = Loss {
    layer: IrqCpu,
    tag: "backlog",
};
const TCP: DropClass = Loss {
    layer: TcpStack,
    tag: "tcp-validation",
};
const SOCKET: DropClass = Loss {
    layer: TcpStack,
    tag: "app-too-slow",
};
const PURGE: DropClass = Noise {
    tag: "socket close/purge",
};
const HOUSEKEEPING: DropClass = Noise {
    tag: "ARP/ICMP/IGMP housekeeping",
};
const TUNNEL: DropClass = Other {
    tag: "tunnel/overlay",
};

/// Exact names whose family would mislead, checked first. `None`: the name cannot place the
/// drop (the freeing helpers themselves: the real caller was inlined or is further up the stack).
#[rustfmt::skip]
const EXCEPTIONS: &[(&str, Option<DropClass>)] = &[
    // The free functions: a location inside them says nothing about who dropped.
    ("kfree_skb", None),
    ("kfree_skb_reason", None),
    ("__kfree_skb", None),
    ("sk_skb_reason_drop", None),
    ("skb_release_data", None),
    // Frees qdisc `to_free` lists, skbs of a device that is down, *and* (5.10) every frag_list
    // of a consumed GRO skb: ambiguous without the stack.
    ("kfree_skb_list", None),
    ("kfree_skb_list_reason", None),
    // `sk_*`/`tcp_*`/`inet_*` names that are teardown, not loss.
    ("sk_stream_kill_queues", Some(PURGE)),
    ("sk_common_release", Some(PURGE)),
    ("__sk_destruct", Some(PURGE)),
    ("sk_destruct", Some(PURGE)),
    ("inet_sock_destruct", Some(PURGE)),
    ("inet_csk_destroy_sock", Some(PURGE)),
    ("inet_csk_listen_stop", Some(PURGE)),
    ("tcp_close", Some(PURGE)),
    ("__tcp_close", Some(PURGE)),
    ("tcp_disconnect", Some(PURGE)),
    ("tcp_write_queue_purge", Some(PURGE)),
    ("tcp_v4_destroy_sock", Some(PURGE)),
    // The socket filter runs in `sk_filter*`: the socket's own BPF said no.
    ("sk_filter_trim_cap", Some(Other { tag: "socket filter" })),
    ("sk_filter", Some(Other { tag: "socket filter" })),
    // `sch_handle_*` is tc ingress/egress (policy), not a queueing discipline.
    ("sch_handle_ingress", Some(POLICY)),
    ("sch_handle_egress", Some(POLICY)),
    // The core receive loop drops what no protocol handler takes (rx_nohandler).
    ("__netif_receive_skb_core", Some(Other { tag: "no protocol handler" })),
    ("__netif_receive_skb_one_core", Some(Other { tag: "no protocol handler" })),
    // Receive-path neighbours of the UDP socket code that are "no socket here".
    ("udp_unicast_rcv_skb", Some(NoListener)),
    ("udp6_unicast_rcv_skb", Some(NoListener)),
    ("__udp4_lib_mcast_deliver", Some(NoListener)),
    ("__udp6_lib_mcast_deliver", Some(NoListener)),
    // Multicast for a group this host has not joined (MLD, ND to other nodes' groups): the
    // IPv6 input path's `ip6_*` name would say routing.
    ("ip6_mc_input", Some(Noise { tag: "not for this host" })),
    // ARP and ICMP receive: replies, probes and errors nobody asked for.
    ("arp_rcv", Some(HOUSEKEEPING)),
    ("arp_process", Some(HOUSEKEEPING)),
    // `ip_error` handles unreachable/prohibit/blackhole routes and no route on input (IPv4).
    ("ip_error", Some(ROUTE_DISCARD)),
    // `ip6_pkt_drop` is what IPv6 unreachable/prohibit/no-route entries call.
    ("ip6_pkt_drop", Some(ROUTE_DISCARD)),
    // Generic XDP runs from `netif_receive_skb` paths: a policy verdict, not the device.
    ("do_xdp_generic", Some(POLICY)),
    ("netif_receive_generic_xdp", Some(POLICY)),
    // `netif_rx*` enqueues to the per-CPU backlog (veth, loopback, tunnels).
    ("netif_rx", Some(BACKLOG)),
    ("netif_rx_internal", Some(BACKLOG)),
    ("__netif_rx", Some(BACKLOG)),
    ("netif_rx_ni", Some(BACKLOG)),
    // virtio_net's transmit function has no prefix of its own.
    ("start_xmit", Some(DEVICE)),
];

/// Function-name families (prefixes); the longest matching prefix wins, so the order does not
/// matter. IPv4 and IPv6 twins side by side.
#[rustfmt::skip]
const FAMILIES: &[(&str, DropClass)] = &[
    // routing: route discard entries (blackhole: dst_discard*; IPv6 unreachable/prohibit)
    ("dst_discard", ROUTE_DISCARD),
    ("ip6_pkt_discard", ROUTE_DISCARD),
    ("ip6_pkt_prohibit", ROUTE_DISCARD),
    ("ip6_blackhole", ROUTE_DISCARD),
    // routing: lookups
    ("fib", ROUTE_LOOKUP),
    ("ip_route_", ROUTE_LOOKUP),
    ("ip6_route_", ROUTE_LOOKUP),
    ("rt6_", ROUTE_LOOKUP),
    ("ip_rcv_finish", ROUTE_LOOKUP),
    ("ip_sublist_rcv", ROUTE_LOOKUP),
    ("ip6_rcv_finish", ROUTE_LOOKUP),
    ("ip6_sublist_rcv", ROUTE_LOOKUP),
    ("ip_mr_", ROUTE_LOOKUP),
    ("ip6_mr_", ROUTE_LOOKUP),
    ("ipmr_", ROUTE_LOOKUP),
    ("ip6mr_", ROUTE_LOOKUP),
    // routing: input
    ("ip_rcv", IP_INPUT),
    ("ip_list_rcv", IP_INPUT),
    ("ipv6_rcv", IP_INPUT),
    ("ipv6_list_rcv", IP_INPUT),
    ("ip6_rcv", IP_INPUT),
    ("ip_local_deliver", IP_INPUT),
    ("ip6_input", IP_INPUT),
    ("ip_protocol_deliver", IP_INPUT),
    ("ip6_protocol_deliver", IP_INPUT),
    ("ip_call_ra_chain", IP_INPUT),
    ("ip6_call_ra_chain", IP_INPUT),
    ("ipv6_parse_hopopts", IP_INPUT),
    ("ipv6_destopt_rcv", IP_INPUT),
    ("ipv6_rthdr_rcv", IP_INPUT),
    ("ip_options", IP_INPUT),
    // routing: output
    ("ip_output", IP_OUTPUT),
    ("ip6_output", IP_OUTPUT),
    ("__ip_local_out", IP_OUTPUT),
    ("ip_local_out", IP_OUTPUT),
    ("ip6_local_out", IP_OUTPUT),
    ("ip_mc_", IP_OUTPUT),
    ("ip6_xmit", IP_OUTPUT),
    ("ip_queue_xmit", IP_OUTPUT),
    ("__ip_queue_xmit", IP_OUTPUT),
    ("ip_finish_output", NEIGHBOUR),
    ("__ip_finish_output", NEIGHBOUR),
    ("ip6_finish_output", NEIGHBOUR),
    ("__ip6_finish_output", NEIGHBOUR),
    // routing: forwarding
    ("ip_forward", FORWARDING),
    ("ip6_forward", FORWARDING),
    // routing: fragments and MTU
    ("ip_fragment", FRAG),
    ("ip_do_fragment", FRAG),
    ("ip6_fragment", FRAG),
    ("ip_frag_", FRAG),
    ("ip6_frag_", FRAG),
    ("ip_defrag", FRAG),
    ("ip_expire", FRAG),
    ("ipv6_frag", FRAG),
    ("inet_frag_", FRAG),
    ("nf_ct_frag6", FRAG),
    // routing: neighbours (ARP, ND)
    ("neigh_", NEIGHBOUR),
    ("__neigh_", NEIGHBOUR),
    ("arp_", NEIGHBOUR),
    ("ndisc_", NEIGHBOUR),
    // netfilter, conntrack, IPVS, bridge netfilter, NFQUEUE
    ("nf_", NETFILTER),
    ("nft_", NETFILTER),
    ("__nft_", NETFILTER),
    ("ipt_", NETFILTER),
    ("ip6t_", NETFILTER),
    ("ipt_do_table", NETFILTER),
    ("ip6t_do_table", NETFILTER),
    ("ebt_", NETFILTER),
    ("xt_", NETFILTER),
    ("br_nf", NETFILTER),
    ("nfqnl_", NETFILTER),
    ("ipv4_conntrack", NETFILTER),
    ("ipv6_conntrack", NETFILTER),
    ("ip_vs_", NETFILTER),
    // tc / eBPF / cgroup policy
    ("tcf_", POLICY),
    ("tcx_", POLICY),
    ("cls_bpf", POLICY),
    ("__cgroup_bpf_run_filter", POLICY),
    ("bpf_", POLICY),
    ("sk_filter", Other { tag: "socket filter" }),
    // qdisc and transmit path
    ("__dev_xmit_skb", QDISC),
    ("dev_qdisc_enqueue", QDISC),
    ("sch_", QDISC),
    ("qdisc_", QDISC),
    ("__qdisc_", QDISC),
    ("pfifo", QDISC),
    ("bfifo", QDISC),
    ("fq_", QDISC),
    ("codel_", QDISC),
    ("htb_", QDISC),
    ("tbf_", QDISC),
    ("netem_", QDISC),
    ("cake_", QDISC),
    ("prio_", QDISC),
    ("sfq_", QDISC),
    ("red_", QDISC),
    ("mq_", QDISC),
    ("validate_xmit", TX_PATH),
    ("__dev_queue_xmit", TX_PATH),
    ("dev_queue_xmit", TX_PATH),
    ("__dev_direct_xmit", TX_PATH),
    ("dev_hard_start_xmit", TX_PATH),
    ("skb_gso_segment", TX_PATH),
    ("__skb_gso_segment", TX_PATH),
    ("skb_segment", TX_PATH),
    ("net_tx_action", DEVICE),
    ("dev_", DEVICE),
    ("__dev_", DEVICE),
    ("____dev_forward_skb", DEVICE),
    ("netif_", DEVICE),
    ("napi_", DEVICE),
    ("gro_", DEVICE),
    ("veth_", DEVICE),
    ("tun_", DEVICE),
    ("tap_", DEVICE),
    ("loopback_", DEVICE),
    ("macvlan_", DEVICE),
    ("ipvlan_", DEVICE),
    ("bond_", DEVICE),
    ("team_", DEVICE),
    // NIC drivers built in (a module says so on its own, see MODULES)
    ("ena_", DEVICE),
    ("ixgbe", DEVICE),
    ("i40e_", DEVICE),
    ("iavf_", DEVICE),
    ("ice_", DEVICE),
    ("igb_", DEVICE),
    ("igc_", DEVICE),
    ("e1000", DEVICE),
    ("mlx4_en_", DEVICE),
    ("mlx5e_", DEVICE),
    ("bnxt_", DEVICE),
    ("virtnet_", DEVICE),
    ("vmxnet3_", DEVICE),
    ("netvsc_", DEVICE),
    ("gve_", DEVICE),
    // IRQ/CPU: the per-CPU backlog
    ("enqueue_to_backlog", BACKLOG),
    ("process_backlog", BACKLOG),
    ("rps_", BACKLOG),
    // TCP
    ("tcp_", TCP),
    ("__tcp_", TCP),
    ("tcp4_", TCP),
    ("tcp6_", TCP),
    ("inet_csk_", TCP),
    ("mptcp_", TCP),
    // UDP: the receive entry points are "no socket" (or checksum); the queueing is the socket
    ("__udp4_lib_rcv", NoListener),
    ("__udp6_lib_rcv", NoListener),
    ("udp_queue_rcv", SOCKET),
    ("udpv6_queue_rcv", SOCKET),
    ("__udp_queue_rcv", SOCKET),
    ("__udpv6_queue_rcv", SOCKET),
    ("__udp_enqueue", SOCKET),
    ("udp_", SOCKET),
    ("udpv6_", SOCKET),
    ("udp6_", SOCKET),
    ("__udp", SOCKET),
    // sockets
    ("sk_", SOCKET),
    ("__sk_", SOCKET),
    ("sock_", SOCKET),
    ("__sock_", SOCKET),
    ("raw_", SOCKET),
    ("rawv6_", SOCKET),
    ("ping_", SOCKET),
    // housekeeping and other protocols: not a loss of wanted traffic
    ("skb_queue_purge", PURGE),
    ("__skb_queue_purge", PURGE),
    ("unix_", Noise { tag: "AF_UNIX" }),
    ("netlink_", Noise { tag: "netlink" }),
    ("__netlink_", Noise { tag: "netlink" }),
    ("genl_", Noise { tag: "netlink" }),
    ("packet_", Noise { tag: "packet sniffer buffer" }),
    ("tpacket_", Noise { tag: "packet sniffer buffer" }),
    ("icmp_", HOUSEKEEPING),
    ("icmpv6_", HOUSEKEEPING),
    ("igmp", HOUSEKEEPING),
    ("mld_", HOUSEKEEPING),
    // outside the runbook's layers, but real
    ("br_", Other { tag: "l2/bridge" }),
    ("vxlan_", TUNNEL),
    ("geneve_", TUNNEL),
    ("ip_tunnel_", TUNNEL),
    ("ip6_tnl_", TUNNEL),
    ("iptunnel_", TUNNEL),
    ("udp_tunnel", TUNNEL),
    ("ipip", TUNNEL),
    ("gre_", TUNNEL),
    ("ipgre_", TUNNEL),
    ("ip6gre_", TUNNEL),
    ("wg_", TUNNEL),
    ("xfrm", Other { tag: "ipsec" }),
    ("esp", Other { tag: "ipsec" }),
    ("security_", Other { tag: "lsm" }),
    ("selinux_", Other { tag: "lsm" }),
    ("ovs_", Other { tag: "openvswitch" }),
    ("ieee80211_", Other { tag: "wireless" }),
    ("can_", Other { tag: "CAN bus" }),
    ("sctp_", Other { tag: "SCTP" }),
];

/// Kernel modules (prefix of the name in `[…]`): a site in one of them is placed by the module
/// whatever the function is called (`tcp_packet [nf_conntrack]` is conntrack, not TCP).
#[rustfmt::skip]
const MODULES: &[(&str, DropClass)] = &[
    ("nf_", NETFILTER),
    ("nft_", NETFILTER),
    ("nfnetlink", NETFILTER),
    ("x_tables", NETFILTER),
    ("xt_", NETFILTER),
    ("ip_tables", NETFILTER),
    ("ip6_tables", NETFILTER),
    ("iptable_", NETFILTER),
    ("ip6table_", NETFILTER),
    ("ipt_", NETFILTER),
    ("ip6t_", NETFILTER),
    ("ebtable", NETFILTER),
    ("ebt_", NETFILTER),
    ("arp_tables", NETFILTER),
    ("br_netfilter", NETFILTER),
    ("ip_vs", NETFILTER),
    ("cls_", POLICY),
    ("act_", POLICY),
    ("sch_", QDISC),
    ("veth", DEVICE),
    ("tun", DEVICE),
    ("macvlan", DEVICE),
    ("ipvlan", DEVICE),
    ("bonding", DEVICE),
    ("team", DEVICE),
    ("ena", DEVICE),
    ("ixgbe", DEVICE),
    ("i40e", DEVICE),
    ("iavf", DEVICE),
    ("ice", DEVICE),
    ("igb", DEVICE),
    ("igc", DEVICE),
    ("e1000", DEVICE),
    ("mlx4_en", DEVICE),
    ("mlx5_core", DEVICE),
    ("bnxt_en", DEVICE),
    ("virtio_net", DEVICE),
    ("vmxnet3", DEVICE),
    ("hv_netvsc", DEVICE),
    ("gve", DEVICE),
    ("vxlan", TUNNEL),
    ("geneve", TUNNEL),
    ("ip_gre", TUNNEL),
    ("ip6_gre", TUNNEL),
    ("ipip", TUNNEL),
    ("ip6_tunnel", TUNNEL),
    ("ip_tunnel", TUNNEL),
    ("udp_tunnel", TUNNEL),
    ("wireguard", TUNNEL),
    ("openvswitch", Other { tag: "openvswitch" }),
    ("bridge", Other { tag: "l2/bridge" }),
];

/// Function name of a symbolised location (`tcp_v4_rcv+0x99 [mod]` → `tcp_v4_rcv`), without a
/// compiler suffix (`ip_fragment.constprop.0` → `ip_fragment`).
pub fn location_function(location: &str) -> &str {
    let name = location.split(['+', ' ', '\t']).next().unwrap_or(location);
    name.split('.').next().unwrap_or(name)
}

/// Module of a symbolised location (`nft_do_chain+0x46f [nf_tables]` → `nf_tables`).
pub fn location_module(location: &str) -> Option<&str> {
    let open = location.rfind('[')?;
    let rest = &location[open + 1..];
    rest.find(']').map(|close| &rest[..close])
}

/// Attribution by drop site alone; None when the site says nothing this table knows.
pub fn classify_location(location: &str) -> Option<DropClass> {
    let function = location_function(location);
    if let Some((_, class)) = EXCEPTIONS.iter().find(|(name, _)| *name == function) {
        return class.clone();
    }
    if let Some(module) = location_module(location) {
        if let Some((_, class)) = longest(MODULES, module) {
            return Some(class.clone());
        }
    }
    longest(FAMILIES, function).map(|(_, class)| class.clone())
}

fn longest<'a>(
    table: &'a [(&'static str, DropClass)],
    name: &str,
) -> Option<&'a (&'static str, DropClass)> {
    table
        .iter()
        .filter(|(prefix, _)| name.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
}

/// Whether a drop site is where a route that discards (blackhole, unreachable, prohibit, or no
/// route at all) ends a packet: `ip_error` (IPv4), `dst_discard*`, `ip6_pkt_discard*`,
/// `ip6_pkt_prohibit*`, `ip6_pkt_drop` (IPv6).
pub fn is_route_discard(location: &str) -> bool {
    classify_location(location).is_some_and(|c| c == ROUTE_DISCARD)
}

#[cfg(test)]
#[path = "sites_tests.rs"]
mod tests;
