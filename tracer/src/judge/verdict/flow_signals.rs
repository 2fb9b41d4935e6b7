//! What the per-destination evidence (`flows`) says when read against the node's routes:
//! connects failing into bad routes, where the retransmits went. Reads; does not decide.

use std::net::IpAddr;

use crate::{
    judge::flows::Destination,
    judge::report::Report,
    node::evidence::{NodeFacts, RouteFact},
};

/// Whether `dst` (`default` or `ADDR/LEN`) covers `addr`.
pub(super) fn route_covers(dst: &str, addr: IpAddr) -> bool {
    if dst == "default" {
        return true;
    }
    let (net, len) = dst.split_once('/').unwrap_or((dst, ""));
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    let (bits, a, n) = match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (32, u128::from(u32::from(a)), u128::from(u32::from(n))),
        (IpAddr::V6(a), IpAddr::V6(n)) => (128, u128::from(a), u128::from(n)),
        _ => return false,
    };
    let len: u32 = len.parse().unwrap_or(bits);
    if len == 0 {
        return true;
    }
    let shift = bits - len.min(bits);
    (a >> shift) == (n >> shift)
}

/// Connects to one destination that never got established.
#[derive(Debug)]
pub(super) struct FailedConnects {
    /// `N of M connects to ADDR:PORT (netns I) failed in SYN_SENT (errors)`.
    pub text: String,
    pub addr: IpAddr,
    pub dport: u16,
    /// A `local` or directly connected route covers the address (a listener on this node or
    /// next to it).
    pub on_node: bool,
    /// A blackhole/unreachable/prohibit route covers the address.
    pub routed: bool,
    /// Every failure was a refusal (a reset: nobody listening), an application matter.
    pub refused: bool,
}

/// What the per-destination evidence (`flows`) says, for the layer scores and the evidence.
#[derive(Debug, Default)]
pub(super) struct FlowSignals {
    /// Connects that never got established to destinations a blackhole/unreachable/prohibit
    /// route covers.
    pub routed_failures: u64,
    pub routing: Vec<String>,
    /// Where the retransmits went: share outside the node's own subnets, top destinations.
    pub upstream: Vec<String>,
    /// Retransmitted segments of the listed destinations, and those of them that went outside
    /// the node's subnets (through a gateway).
    pub retrans_listed: u64,
    pub retrans_outside: u64,
    /// Destinations with failed connects, the most troubled first: shown with the finding
    /// whose layer explains them (see `Context::failure_layer`).
    pub failures: Vec<FailedConnects>,
    /// Connects refused by the peer (a reset in SYN_SENT: nobody listening).
    pub refused: u64,
}

/// Reads the `flows` section against the node's routes. A destination is on the node when a
/// `local` route or a directly connected (no gateway, not default) route of any namespace
/// covers it; anything else is reached through a gateway, i.e. upstream of the node.
pub(super) fn flow_signals(observed: &Report, facts: &NodeFacts) -> FlowSignals {
    let mut out = FlowSignals::default();
    let flows = &observed.flows;
    let addr = |d: &Destination| d.daddr.parse::<IpAddr>().ok();
    let on_node = |ip: IpAddr| {
        ip.is_loopback()
            || facts.routes.iter().any(|r| {
                (r.kind == "local"
                    || (r.kind == "unicast" && r.gateway.is_none() && r.dst != "default"))
                    && route_covers(&r.dst, ip)
            })
    };
    for d in &flows.destinations {
        let Some(ip) = addr(d) else { continue };
        let errors: Vec<String> = d
            .errors
            .iter()
            .map(|e| format!("{}×{}", e.error, e.count))
            .collect();
        let errors = if errors.is_empty() {
            String::new()
        } else {
            format!(" ({})", errors.join(", "))
        };
        if d.failed_connects > 0 {
            let bad: Vec<&RouteFact> = facts
                .routes
                .iter()
                .filter(|r| {
                    matches!(r.kind.as_str(), "blackhole" | "unreachable" | "prohibit")
                        && route_covers(&r.dst, ip)
                })
                .collect();
            let routed = !bad.is_empty();
            if let Some(r) = bad.first() {
                out.routed_failures += d.failed_connects;
                out.routing.push(format!(
                    "{} connects to {}:{} never established{errors}; route {} {} in {} covers it",
                    d.failed_connects, d.daddr, d.dport, r.kind, r.dst, r.netns_label
                ));
            }
            out.failures.push(FailedConnects {
                text: format!(
                    "{} of {} connects to {}:{} (netns {}) failed in SYN_SENT{errors}",
                    d.failed_connects, d.connects, d.daddr, d.dport, d.netns
                ),
                addr: ip,
                dport: d.dport,
                on_node: on_node(ip),
                routed,
                refused: d.error_count("ECONNREFUSED") >= d.failed_connects,
            });
        }
        let refused = d.error_count("ECONNREFUSED");
        out.refused += refused;
    }
    let total = flows.totals.retransmits;
    if total > 0 {
        let mut outside = 0u64;
        let mut top: Vec<&Destination> = flows
            .destinations
            .iter()
            .filter(|d| d.retransmits > 0)
            .collect();
        top.sort_by_key(|d| std::cmp::Reverse(d.retransmits));
        // A listener's row holds what it retransmitted to its clients (the section folds them
        // under its listening end): where they went is each client's address, read from the
        // retransmitting flows it folded.
        let served = |d: &Destination| -> Vec<&crate::judge::report::FlowReport> {
            observed
                .retransmits
                .flows
                .iter()
                .filter(|f| f.netns == d.netns && f.saddr == d.daddr && f.sport == d.dport)
                .collect()
        };
        for d in &top {
            let clients = served(d);
            if !clients.is_empty() {
                let to_outside: u64 = clients
                    .iter()
                    .filter(|f| f.daddr.parse::<IpAddr>().is_ok_and(|ip| !on_node(ip)))
                    .map(|f| f.retransmitted_segments + f.synack_retransmits)
                    .sum();
                outside += to_outside.min(d.retransmits);
            } else if addr(d).is_some_and(|ip| !on_node(ip)) {
                outside += d.retransmits;
            }
        }
        let listed: u64 = top.iter().map(|d| d.retransmits).sum();
        out.retrans_listed = listed;
        out.retrans_outside = outside;
        if listed > 0 {
            out.upstream.push(format!(
                "{:.0} % of retransmitted segments went to destinations outside the node's subnets",
                outside as f64 * 100.0 / listed as f64
            ));
        }
        for d in top.iter().take(3) {
            let rtt = d.rtt.as_ref().map_or_else(String::new, |r| {
                format!(
                    ", RTT p50 {:.1} ms p99 {:.1} ms",
                    r.p50_us / 1e3,
                    r.p99_us / 1e3
                )
            });
            let to = if !served(d).is_empty() {
                "the clients of "
            } else {
                ""
            };
            out.upstream.push(format!(
                "{} retransmitted segments to {to}{}:{} (netns {}){rtt}",
                d.retransmits, d.daddr, d.dport, d.netns
            ));
        }
    }
    out
}
