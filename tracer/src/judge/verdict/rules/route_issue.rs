//! Root cause `route_issue` (layer routing): routing and MTU drops, no-route counters, and
//! connects that fail into a blackhole/unreachable/prohibit route. Scores the layer, names the
//! bad routes when it is the root cause, says what to fix; does not rank.

use crate::judge::layers::Layer;

use super::{item, Context, CounterDelta, Finding};
use crate::judge::verdict::MIN_LOSS;

pub(super) fn assess(ctx: &Context, _earlier: &[Finding]) -> Finding {
    let s = &ctx.signals;
    let mut score = ctx.local_score(Layer::Routing);
    score
        .signals
        .extend(s.routing.iter().map(CounterDelta::text));
    score.signals.extend(s.mtu.iter().map(CounterDelta::text));
    // Connects that failed towards a destination a bad route covers: the route is why. Drops
    // at `ip_error` may be the same SYNs: the larger, never the sum.
    if ctx.flows.routed_failures > 0 {
        score.lost_packets = score.lost_packets.max(ctx.flows.routed_failures);
        score.signals.extend(ctx.flows.routing.iter().cloned());
    }
    // Drops at a route-discard site, tied to the namespace's route that discards (or to the
    // default route it lacks).
    for d in ctx.route_drops.iter().take(3) {
        let ns = ctx.netns_label(d.inode, d.pod.as_deref());
        if !d.routes.is_empty() {
            score.signals.push(format!(
                "{} drops at {} in {ns}, which holds {}",
                d.count,
                d.location,
                d.routes.join("; ")
            ));
        } else if !d.no_default.is_empty() {
            score.signals.push(format!(
                "{} drops at {} in {ns}, which has no {} default route (missing route)",
                d.count,
                d.location,
                d.no_default.join("/")
            ));
        }
    }
    let mut f = Finding::layer(Layer::Routing, score);
    f.summary = if ctx.flows.routed_failures > 0 || !ctx.routes.is_empty() {
        "blackhole/unreachable/prohibit route"
    } else {
        "no route or MTU drops"
    }
    .to_owned();
    // Drops no layer takes, beside a route that discards: routing is not ruled out.
    let unplaced: u64 = ctx.unplaced.iter().map(|u| u.count).sum();
    if f.score.lost_packets == 0 && (unplaced < MIN_LOSS || ctx.routes.is_empty()) {
        f.rule_out(
            "routing",
            format!(
                "no routing drops; {} blackhole/unreachable/prohibit routes",
                ctx.routes.len()
            ),
        );
    }
    for r in ctx.routes.iter().take(5) {
        f.if_root_cause
            .evidence
            .push(item("network_diagnostics", format!("route: {r}")));
    }
    let tied = ctx.route_drops.iter().find_map(|d| {
        let ns = ctx.netns_label(d.inode, d.pod.as_deref());
        d.routes
            .first()
            .map(|r| format!("{r} in {ns}"))
            .or_else(|| {
                (!d.no_default.is_empty())
                    .then(|| format!("{ns} has no {} default route", d.no_default.join("/")))
            })
    });
    f.if_root_cause.mitigation = format!(
        "Operator: fix the route — {}; check VPC route tables and CNI routing (restarting the aws-node DaemonSet may restore pod routes)",
        tied.as_deref().or(ctx.routes.first().map(String::as_str))
            .unwrap_or("traffic has no valid next hop")
    );
    f
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{destination, observed, quiet, route, window};
    use super::*;

    #[test]
    fn ip_error_drops_with_a_blackhole_route_name_the_route() {
        let o = observed(&[("NOT_SPECIFIED", "ip_error+0x5c", 120)], &[], &[]);
        let mut w = window(o, quiet(), quiet());
        w.facts_end.routes = vec![
            route("198.18.3.0/24", "blackhole", None),
            route("10.0.1.0/24", "unicast", None),
        ];
        let f = assess(&Context::new(&w), &[]);
        assert_eq!(f.score.lost_packets, 120);
        assert_eq!(
            f.if_root_cause.evidence[0].content,
            "route: ipv4 blackhole 198.18.3.0/24 (table 254) in host"
        );
        assert_eq!(f.if_root_cause.evidence.len(), 1);
        assert!(f.if_root_cause.mitigation.starts_with(
            "Operator: fix the route — ipv4 blackhole 198.18.3.0/24 (table 254) in host;"
        ));
        assert!(f.ruled_out.is_empty());
    }

    #[test]
    fn failed_connects_into_a_blackhole_count_as_routing_loss() {
        let mut o = observed(&[], &[], &[]);
        let mut d = destination("198.18.3.9", 443);
        d.connects = 12;
        d.failed_connects = 12;
        o.flows.destinations = vec![d];
        let mut w = window(o, quiet(), quiet());
        w.facts_end.routes = vec![route("198.18.3.0/24", "blackhole", None)];
        let f = assess(&Context::new(&w), &[]);
        assert_eq!(f.score.lost_packets, 12);
        assert_eq!(
            f.score.signals,
            vec![
                "12 connects to 198.18.3.9:443 never established; route blackhole 198.18.3.0/24 in host covers it"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn no_drops_rule_routing_out_counting_the_bad_routes() {
        let mut w = window(observed(&[], &[], &[]), quiet(), quiet());
        w.facts_end.routes = vec![route("10.9.0.0/16", "unreachable", None)];
        let f = assess(&Context::new(&w), &[]);
        assert_eq!(f.score.lost_packets, 0);
        assert_eq!(
            f.ruled_out[0].result,
            "no routing drops; 1 blackhole/unreachable/prohibit routes"
        );
    }

    fn in_router(
        mut r: crate::node::evidence::RouteFact,
        family: &str,
    ) -> crate::node::evidence::RouteFact {
        r.netns = 7;
        r.netns_label = "netns router".to_owned();
        r.family = family.to_owned();
        r
    }

    fn drops_in_router(drops: &[(&str, &str, u64)]) -> crate::judge::report::Report {
        let mut o = observed(drops, &[], &[]);
        for r in &mut o.drops.by_reason {
            r.netns = vec![crate::judge::report::NetnsCount {
                inode: 7,
                count: r.count,
                pod: None,
                netns_name: None,
            }];
        }
        o
    }

    #[test]
    fn route_discard_drops_name_the_route_of_their_namespace_ipv6_and_ipv4_alike() {
        let o = drops_in_router(&[("NOT_SPECIFIED", "dst_discard_out+0x14", 1998)]);
        let mut w = window(o, quiet(), quiet());
        w.facts_end.routes = vec![
            in_router(route("2001:2:0:51::2/128", "blackhole", None), "ipv6"),
            in_router(route("default", "unicast", Some("198.18.50.1")), "ipv4"),
            // Another namespace's blackhole does not explain these drops.
            route("198.18.3.0/24", "blackhole", None),
        ];
        let f = assess(&Context::new(&w), &[]);
        assert_eq!(f.score.lost_packets, 1998);
        assert_eq!(
            f.score.signals[1],
            "1998 drops at dst_discard_out+0x14 in netns router, which holds ipv6 blackhole 2001:2:0:51::2/128 (table 254)"
        );
        assert!(f.if_root_cause.mitigation.starts_with(
            "Operator: fix the route — ipv6 blackhole 2001:2:0:51::2/128 (table 254) in netns router;"
        ), "{}", f.if_root_cause.mitigation);

        let o = drops_in_router(&[("NOT_SPECIFIED", "ip_error+0x41", 40)]);
        let mut w = window(o, quiet(), quiet());
        w.facts_end.routes = vec![
            in_router(route("2001:2:0:51::2/128", "prohibit", None), "ipv6"),
            in_router(route("198.18.51.2/32", "unreachable", None), "ipv4"),
        ];
        let f = assess(&Context::new(&w), &[]);
        assert_eq!(
            f.score.signals[1],
            "40 drops at ip_error+0x41 in netns router, which holds ipv4 unreachable 198.18.51.2/32 (table 254)"
        );
    }

    #[test]
    fn no_route_drops_in_a_namespace_without_a_default_route_say_the_route_is_missing() {
        let o = drops_in_router(&[("IP_INNOROUTES", "ip6_pkt_drop+0x99", 300)]);
        let mut w = window(o, quiet(), quiet());
        w.facts_end.routes = vec![
            in_router(route("2001:2:0:50::/64", "unicast", None), "ipv6"),
            in_router(route("default", "unicast", Some("198.18.50.1")), "ipv4"),
        ];
        let f = assess(&Context::new(&w), &[]);
        assert_eq!(
            f.score.signals[1],
            "300 drops at ip6_pkt_drop+0x99 in netns router, which has no ipv6 default route (missing route)"
        );
    }

    #[test]
    fn unplaced_drops_beside_a_bad_route_do_not_rule_routing_out() {
        let o = drops_in_router(&[("NOT_SPECIFIED", "frobnicate_skb+0x14", 2000)]);
        let mut w = window(o, quiet(), quiet());
        w.facts_end.routes = vec![in_router(route("2001:2::/64", "blackhole", None), "ipv6")];
        let f = assess(&Context::new(&w), &[]);
        assert_eq!(f.score.lost_packets, 0);
        assert!(f.ruled_out.is_empty(), "{:?}", f.ruled_out);
    }
}
