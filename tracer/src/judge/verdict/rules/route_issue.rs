//! Root cause `route_issue` (layer routing): routing and MTU drops, no-route counters, and
//! connects that fail into a blackhole/unreachable/prohibit route. Scores the layer, names the
//! bad routes when it is the root cause, says what to fix; does not rank.

use crate::judge::layers::Layer;

use super::{item, Context, CounterDelta, Finding};

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
    let mut f = Finding::layer(Layer::Routing, score);
    f.summary = if ctx.flows.routed_failures > 0 || !ctx.routes.is_empty() {
        "blackhole/unreachable/prohibit route"
    } else {
        "no route or MTU drops"
    }
    .to_owned();
    if f.score.lost_packets == 0 {
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
    f.if_root_cause.mitigation = format!(
        "Operator: fix the route — {}; check VPC route tables and CNI routing (restarting the aws-node DaemonSet may restore pod routes)",
        ctx.routes
            .first()
            .map_or("traffic has no valid next hop", String::as_str)
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
}
