//! Attribution of a drop to a layer, by its reason NAME (never its number, which differs between
//! kernels) and its symbolised location; kernels without reasons use the location alone.
//! Pure tables; the source is `../shared/kernel-ref/` §2 (reasons) and §3 (drop sites).

use serde::{Deserialize, Serialize};

/// The layers of the runbook, plus the two classes that never decide a verdict by themselves.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    NicDriver,
    IrqCpu,
    TcpStack,
    IptablesNetpolicy,
    Routing,
    Upstream,
}

impl Layer {
    pub const ALL: [Layer; 6] = [
        Layer::NicDriver,
        Layer::IrqCpu,
        Layer::TcpStack,
        Layer::IptablesNetpolicy,
        Layer::Routing,
        Layer::Upstream,
    ];

    /// The runbook's `failure_layer` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::NicDriver => "nic_driver",
            Layer::IrqCpu => "irq_cpu",
            Layer::TcpStack => "tcp_stack",
            Layer::IptablesNetpolicy => "iptables_netpolicy",
            Layer::Routing => "routing",
            Layer::Upstream => "upstream",
        }
    }

    /// The runbook's `root_cause` value for a loss in this layer.
    pub fn root_cause(self) -> &'static str {
        match self {
            Layer::NicDriver => "nic_errors",
            Layer::IrqCpu => "irq_imbalance",
            Layer::TcpStack => "tcp_retransmissions",
            Layer::IptablesNetpolicy => "security_rule_drops",
            Layer::Routing => "route_issue",
            Layer::Upstream => "upstream_loss",
        }
    }

    /// For people.
    pub fn title(self) -> &'static str {
        match self {
            Layer::NicDriver => "NIC/driver",
            Layer::IrqCpu => "IRQ/CPU",
            Layer::TcpStack => "TCP stack",
            Layer::IptablesNetpolicy => "netfilter / NetworkPolicy",
            Layer::Routing => "routing",
            Layer::Upstream => "upstream path",
        }
    }
}

/// What a drop means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "class")]
pub enum DropClass {
    /// A real loss in this layer.
    Loss { layer: Layer, tag: &'static str },
    /// Not a loss of wanted traffic (duplicates, teardown, not-a-drop, not for us…): reported
    /// apart, never decides the verdict.
    Noise { tag: &'static str },
    /// Traffic nobody listens for (NO_SOCKET): the application's business, not the network's.
    NoListener,
    /// Real but outside the runbook's layers (malformed packets, tunnels, AF_UNIX…).
    Other { tag: &'static str },
    /// Neither the reason nor the drop site says where: the tracer cannot place it in a layer.
    /// Never noise: enough of it is a finding of its own (unattributed loss).
    Unplaced,
}

#[rustfmt::skip]
const TABLE: &[(&str, DropClass)] = &{
    use DropClass::*;
    use Layer::*;
    [
        // nic_driver
        ("QDISC_DROP", Loss { layer: NicDriver, tag: "qdisc" }),
        ("QDISC_OVERLIMIT", Loss { layer: NicDriver, tag: "qdisc" }),
        ("QDISC_CONGESTED", Loss { layer: NicDriver, tag: "qdisc" }),
        ("CAKE_FLOOD", Loss { layer: NicDriver, tag: "qdisc" }),
        ("FQ_BAND_LIMIT", Loss { layer: NicDriver, tag: "qdisc" }),
        ("FQ_HORIZON_LIMIT", Loss { layer: NicDriver, tag: "qdisc" }),
        ("FQ_FLOW_LIMIT", Loss { layer: NicDriver, tag: "qdisc" }),
        ("DUALPI2_STEP_DROP", Loss { layer: NicDriver, tag: "qdisc" }),
        ("SKB_GSO_SEG", Loss { layer: NicDriver, tag: "tx-path" }),
        ("RECURSION_LIMIT", Loss { layer: NicDriver, tag: "tx-path" }),
        ("DEV_HDR", Loss { layer: NicDriver, tag: "device" }),
        ("DEV_READY", Loss { layer: NicDriver, tag: "device" }),
        ("FULL_RING", Loss { layer: NicDriver, tag: "device" }),
        ("TAP_FILTER", Loss { layer: NicDriver, tag: "device" }),
        ("TAP_TXFILTER", Loss { layer: NicDriver, tag: "device" }),
        // irq_cpu
        ("CPU_BACKLOG", Loss { layer: IrqCpu, tag: "backlog" }),
        // tcp_stack
        ("TCP_CSUM", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_FLAGS", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_ABORT_ON_DATA", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_OVERWINDOW", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_RFC7323_PAWS", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_RFC7323_PAWS_ACK", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_RFC7323_TW_PAWS", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_RFC7323_TSECR", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_INVALID_SEQUENCE", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_INVALID_END_SEQUENCE", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_INVALID_ACK_SEQUENCE", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_INVALID_SYN", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_FASTOPEN", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_TOO_OLD_ACK", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_ACK_UNSENT_DATA", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_MINTTL", Loss { layer: TcpStack, tag: "tcp-validation" }),
        ("TCP_AUTH_HDR", Loss { layer: TcpStack, tag: "tcp-auth" }),
        ("TCP_MD5NOTFOUND", Loss { layer: TcpStack, tag: "tcp-auth" }),
        ("TCP_MD5UNEXPECTED", Loss { layer: TcpStack, tag: "tcp-auth" }),
        ("TCP_MD5FAILURE", Loss { layer: TcpStack, tag: "tcp-auth" }),
        ("TCP_AONOTFOUND", Loss { layer: TcpStack, tag: "tcp-auth" }),
        ("TCP_AOUNEXPECTED", Loss { layer: TcpStack, tag: "tcp-auth" }),
        ("TCP_AOKEYNOTFOUND", Loss { layer: TcpStack, tag: "tcp-auth" }),
        ("TCP_AOFAILURE", Loss { layer: TcpStack, tag: "tcp-auth" }),
        ("TCP_OFO_QUEUE_PRUNE", Loss { layer: TcpStack, tag: "memory" }),
        ("PROTO_MEM", Loss { layer: TcpStack, tag: "memory" }),
        ("SOCKET_RCVBUFF", Loss { layer: TcpStack, tag: "app-too-slow" }),
        ("SOCKET_BACKLOG", Loss { layer: TcpStack, tag: "app-too-slow" }),
        ("TCP_ZEROWINDOW", Loss { layer: TcpStack, tag: "app-too-slow" }),
        ("TCP_LISTEN_OVERFLOW", Loss { layer: TcpStack, tag: "listen-overflow" }),
        // netfilter / policy
        ("NETFILTER_DROP", Loss { layer: IptablesNetpolicy, tag: "netfilter" }),
        ("BPF_CGROUP_EGRESS", Loss { layer: IptablesNetpolicy, tag: "policy (tc/eBPF)" }),
        ("TC_EGRESS", Loss { layer: IptablesNetpolicy, tag: "policy (tc/eBPF)" }),
        ("TC_INGRESS", Loss { layer: IptablesNetpolicy, tag: "policy (tc/eBPF)" }),
        ("XDP", Loss { layer: IptablesNetpolicy, tag: "policy (tc/eBPF)" }),
        ("TC_COOKIE_ERROR", Loss { layer: IptablesNetpolicy, tag: "policy (tc/eBPF)" }),
        ("TC_CHAIN_NOTFOUND", Loss { layer: IptablesNetpolicy, tag: "policy (tc/eBPF)" }),
        ("TC_RECLASSIFY_LOOP", Loss { layer: IptablesNetpolicy, tag: "policy (tc/eBPF)" }),
        // routing
        ("IP_CSUM", Loss { layer: Routing, tag: "ip-input" }),
        ("IP_INHDR", Loss { layer: Routing, tag: "ip-input" }),
        ("UNICAST_IN_L2_MULTICAST", Loss { layer: Routing, tag: "ip-input" }),
        ("IP_NOPROTO", Loss { layer: Routing, tag: "ip-input" }),
        ("IPV6DISABLED", Loss { layer: Routing, tag: "ip-input" }),
        ("IP_INADDRERRORS", Loss { layer: Routing, tag: "ip-input" }),
        ("IP_LOCAL_SOURCE", Loss { layer: Routing, tag: "ip-input" }),
        ("IP_INVALID_SOURCE", Loss { layer: Routing, tag: "ip-input" }),
        ("IP_LOCALNET", Loss { layer: Routing, tag: "ip-input" }),
        ("IP_INVALID_DEST", Loss { layer: Routing, tag: "ip-input" }),
        ("IPV6_BAD_EXTHDR", Loss { layer: Routing, tag: "ip-input" }),
        ("IPV6_TOO_MANY_EXTHDRS", Loss { layer: Routing, tag: "ip-input" }),
        ("IP_RPFILTER", Loss { layer: Routing, tag: "route-lookup" }),
        ("IP_OUTNOROUTES", Loss { layer: Routing, tag: "route-lookup" }),
        ("IP_INNOROUTES", Loss { layer: Routing, tag: "route-lookup" }),
        ("NEIGH_CREATEFAIL", Loss { layer: Routing, tag: "neighbour" }),
        ("NEIGH_FAILED", Loss { layer: Routing, tag: "neighbour" }),
        ("NEIGH_QUEUEFULL", Loss { layer: Routing, tag: "neighbour" }),
        ("NEIGH_DEAD", Loss { layer: Routing, tag: "neighbour" }),
        ("NEIGH_HH_FILLFAIL", Loss { layer: Routing, tag: "neighbour" }),
        ("IPV6_NDISC_FRAG", Loss { layer: Routing, tag: "neighbour" }),
        ("IPV6_NDISC_HOP_LIMIT", Loss { layer: Routing, tag: "neighbour" }),
        ("IPV6_NDISC_BAD_CODE", Loss { layer: Routing, tag: "neighbour" }),
        ("IPV6_NDISC_BAD_OPTIONS", Loss { layer: Routing, tag: "neighbour" }),
        ("ARP_PVLAN_DISABLE", Loss { layer: Routing, tag: "neighbour" }),
        ("PKT_TOO_BIG", Loss { layer: Routing, tag: "mtu/frag" }),
        ("DUP_FRAG", Loss { layer: Routing, tag: "mtu/frag" }),
        ("FRAG_REASM_TIMEOUT", Loss { layer: Routing, tag: "mtu/frag" }),
        ("FRAG_TOO_FAR", Loss { layer: Routing, tag: "mtu/frag" }),
        // no listener
        ("NO_SOCKET", NoListener),
        // noise
        ("SKB_NOT_DROPPED_YET", Noise { tag: "not a drop" }),
        ("SKB_CONSUMED", Noise { tag: "not a drop" }),
        ("NOT_DROPPED_YET", Noise { tag: "not a drop" }),
        ("CONSUMED", Noise { tag: "not a drop" }),
        ("MAX", Noise { tag: "not a drop" }),
        ("SOCKET_CLOSE", Noise { tag: "socket close/purge" }),
        ("QUEUE_PURGE", Noise { tag: "socket close/purge" }),
        ("TCP_CLOSE", Noise { tag: "dead connection" }),
        ("TCP_RESET", Noise { tag: "dead connection" }),
        ("TCP_OLD_DATA", Noise { tag: "duplicate segment" }),
        ("TCP_OFOMERGE", Noise { tag: "duplicate segment" }),
        ("TCP_OLD_SEQUENCE", Noise { tag: "duplicate segment" }),
        ("TCP_OLD_ACK", Noise { tag: "duplicate segment" }),
        ("TCP_OFO_DROP", Noise { tag: "duplicate segment" }),
        ("OTHERHOST", Noise { tag: "not for this host" }),
        ("IPV6_NDISC_NS_OTHERHOST", Noise { tag: "not for this host" }),
        ("UNIX_DISCONNECT", Noise { tag: "AF_UNIX" }),
        ("UNIX_SKIP_OOB", Noise { tag: "AF_UNIX" }),
        ("PACKET_SOCK_ERROR", Noise { tag: "packet sniffer buffer" }),
        // other
        ("SOCKET_FILTER", Other { tag: "socket filter" }),
        ("UDP_CSUM", Other { tag: "malformed" }),
        ("SKB_UCOPY_FAULT", Other { tag: "user copy" }),
        ("PKT_TOO_SMALL", Other { tag: "malformed" }),
        ("UNHANDLED_PROTO", Other { tag: "malformed" }),
        ("SKB_CSUM", Other { tag: "malformed" }),
        ("HDR_TRUNC", Other { tag: "malformed" }),
        ("ICMP_CSUM", Other { tag: "malformed" }),
        ("INVALID_PROTO", Other { tag: "malformed" }),
        ("MAC_INVALID_SOURCE", Other { tag: "l2/bridge" }),
        ("LOCAL_MAC", Other { tag: "l2/bridge" }),
        ("MAC_IEEE_MAC_CONTROL", Other { tag: "l2/bridge" }),
        ("BRIDGE_INGRESS_STP_STATE", Other { tag: "l2/bridge" }),
        ("VXLAN_INVALID_HDR", Other { tag: "tunnel/overlay" }),
        ("VXLAN_VNI_NOT_FOUND", Other { tag: "tunnel/overlay" }),
        ("VXLAN_ENTRY_EXISTS", Other { tag: "tunnel/overlay" }),
        ("NO_TX_TARGET", Other { tag: "tunnel/overlay" }),
        ("IP_TUNNEL_ECN", Other { tag: "tunnel/overlay" }),
        ("TUNNEL_TXINFO", Other { tag: "tunnel/overlay" }),
        ("XFRM_POLICY", Other { tag: "ipsec" }),
        ("PSP_INPUT", Other { tag: "ipsec/psp" }),
        ("PSP_OUTPUT", Other { tag: "ipsec/psp" }),
        ("SECURITY_HOOK", Other { tag: "lsm" }),
        ("NOMEM", Other { tag: "memory" }),
        ("CAN_RX_INVALID_FRAME", Other { tag: "CAN bus" }),
        ("CANFD_RX_INVALID_FRAME", Other { tag: "CAN bus" }),
        ("CANXL_RX_INVALID_FRAME", Other { tag: "CAN bus" }),
        ("PFMEMALLOC", Other { tag: "memory" }),
        ("SKB_RX_HEADROOM", Other { tag: "memory" }),
    ]
};

mod sites;

pub use sites::{classify_location, is_route_discard, location_function, location_module};

/// Whether the table files this reason name (`NOT_SPECIFIED` is filed by its location).
pub fn is_filed(reason: &str) -> bool {
    let reason = reason.strip_prefix("SKB_DROP_REASON_").unwrap_or(reason);
    reason == "NOT_SPECIFIED" || TABLE.iter().any(|(name, _)| *name == reason)
}

/// Attribution of a drop: its reason name when that says something, else its location.
/// `reason` is the kernel's name (`NETFILTER_DROP`), `NO_REASON_FIELD` on kernels without
/// reasons, or `UNKNOWN(n)` for a value the kernel did not name.
pub fn classify(reason: &str, location: &str) -> DropClass {
    let reason = reason.strip_prefix("SKB_DROP_REASON_").unwrap_or(reason);
    if reason == "NOT_SPECIFIED" || reason == "NO_REASON_FIELD" || reason.starts_with("UNKNOWN(") {
        return classify_location(location).unwrap_or(DropClass::Unplaced);
    }
    if let Some((_, class)) = TABLE.iter().find(|(name, _)| *name == reason) {
        return class.clone();
    }
    // A reason this table does not know (a newer kernel): try the location, else keep it
    // visible as unplaced rather than hide it.
    classify_location(location).unwrap_or(DropClass::Unplaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_of_every_recorded_kernel_is_mapped_as_the_reference_says() {
        let rows = crate::testkit::recorded_kernels::RECORDED
            .iter()
            .flat_map(|k| k.drop_reason_rows());
        for row in rows {
            let (name, layer) = (row.name, row.layer);
            assert!(is_filed(name), "{name} is not filed");
            let class = classify(name, "some_function+0x10");
            let ok = match (layer, &class) {
                (
                    "nic_driver",
                    DropClass::Loss {
                        layer: Layer::NicDriver,
                        ..
                    },
                )
                | (
                    "irq_cpu",
                    DropClass::Loss {
                        layer: Layer::IrqCpu,
                        ..
                    },
                )
                | (
                    "netfilter",
                    DropClass::Loss {
                        layer: Layer::IptablesNetpolicy,
                        ..
                    },
                )
                | (
                    "routing",
                    DropClass::Loss {
                        layer: Layer::Routing,
                        ..
                    },
                ) => true,
                (
                    "tcp_stack",
                    DropClass::Loss {
                        layer: Layer::TcpStack,
                        ..
                    },
                )
                | ("tcp_stack", DropClass::Noise { .. }) => true,
                (
                    "socket_app",
                    DropClass::Loss {
                        layer: Layer::TcpStack,
                        ..
                    },
                )
                | ("socket_app", DropClass::NoListener)
                | ("socket_app", DropClass::Noise { .. })
                | ("socket_app", DropClass::Other { .. }) => true,
                ("other", DropClass::Noise { .. }) | ("other", DropClass::Other { .. }) => true,
                // The reference lists it under routing/neighbour but also as "usually not a
                // real loss" (a neighbour solicitation for another host): noise here.
                ("routing", DropClass::Noise { .. }) => name == "IPV6_NDISC_NS_OTHERHOST",
                // "unknown → use location": at a site nobody knows, it stays unplaced.
                ("other", DropClass::Unplaced) => name == "NOT_SPECIFIED",
                _ => false,
            };
            assert!(ok, "{name}: reference says {layer}, classified {class:?}");
            if name != "NOT_SPECIFIED" {
                assert_ne!(
                    class,
                    DropClass::Unplaced,
                    "{name} is missing from the table"
                );
            }
        }
    }

    #[test]
    fn not_specified_is_attributed_by_location() {
        assert_eq!(
            classify("NOT_SPECIFIED", "ip_error+0x5c"),
            DropClass::Loss {
                layer: Layer::Routing,
                tag: "route-discard"
            }
        );
        assert_eq!(
            classify("NOT_SPECIFIED", "dst_discard_out+0x14"),
            DropClass::Loss {
                layer: Layer::Routing,
                tag: "route-discard"
            }
        );
        assert_eq!(
            classify("NOT_SPECIFIED", "nf_hook_slow+0xa1"),
            DropClass::Loss {
                layer: Layer::IptablesNetpolicy,
                tag: "netfilter"
            }
        );
        assert_eq!(
            classify("NOT_SPECIFIED", "0xffffffff81000000"),
            DropClass::Unplaced
        );
        assert!(matches!(
            classify("NOT_SPECIFIED", "icmp_rcv+0x20"),
            DropClass::Noise { .. }
        ));
    }

    #[test]
    fn kernels_without_reasons_use_the_location() {
        assert_eq!(
            classify("NO_REASON_FIELD", "enqueue_to_backlog+0x100"),
            DropClass::Loss {
                layer: Layer::IrqCpu,
                tag: "backlog"
            }
        );
        assert_eq!(
            classify("NO_REASON_FIELD", "__udp4_lib_rcv+0x4bc"),
            DropClass::NoListener
        );
        assert_eq!(
            classify("NO_REASON_FIELD", "nft_do_chain+0x46f [nf_tables]"),
            DropClass::Loss {
                layer: Layer::IptablesNetpolicy,
                tag: "netfilter"
            }
        );
    }

    #[test]
    fn reasons_win_over_locations_and_unknowns_stay_visible() {
        assert_eq!(
            classify("NETFILTER_DROP", "ip_error+0x1"),
            DropClass::Loss {
                layer: Layer::IptablesNetpolicy,
                tag: "netfilter"
            }
        );
        assert!(matches!(
            classify("TCP_OLD_SEQUENCE", "tcp_validate_incoming+0x1"),
            DropClass::Noise { .. }
        ));
        assert_eq!(classify("SOME_FUTURE_REASON", "x+0x1"), DropClass::Unplaced);
        assert_eq!(
            location_function("nft_do_chain+0x46f [nf_tables]"),
            "nft_do_chain"
        );
    }

    #[test]
    fn layer_names_are_the_runbooks() {
        let names: Vec<_> = Layer::ALL
            .iter()
            .map(|l| (l.as_str(), l.root_cause()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("nic_driver", "nic_errors"),
                ("irq_cpu", "irq_imbalance"),
                ("tcp_stack", "tcp_retransmissions"),
                ("iptables_netpolicy", "security_rule_drops"),
                ("routing", "route_issue"),
                ("upstream", "upstream_loss"),
            ]
        );
    }
}
