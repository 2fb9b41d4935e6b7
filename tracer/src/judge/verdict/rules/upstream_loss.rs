//! Root cause `upstream_loss` (layer upstream): retransmissions the node's own layers do not
//! explain (spurious ones discounted), with where they went. Reads the local layers' findings,
//! so it runs after them; scores, escalates and says to escalate; does not rank.

use crate::judge::layers::Layer;

use super::{Context, Finding, LayerScore, MIN_RETRANS_RATIO};

/// Shortest window over which upstream loss "persists after all node-level checks" (the
/// runbook's escalation): five minutes.
pub(super) const PERSISTS_AFTER_S: f64 = 300.0;

pub(super) fn assess(ctx: &Context, earlier: &[Finding]) -> Finding {
    let s = &ctx.signals;
    let retrans_segments = ctx.retrans_segments;
    let local_loss: u64 = earlier
        .iter()
        .filter(|f| f.layer.is_some_and(|l| l != Layer::Upstream))
        .map(|f| f.score.lost_packets)
        .sum();
    // Retransmissions the receivers reported as duplicates were not losses.
    let genuine = retrans_segments.saturating_sub(s.dsack_segs);
    let unexplained = genuine.saturating_sub(local_loss);
    let retrans_ratio = if s.out_segs > 0 {
        s.retrans_segs.saturating_sub(s.dsack_segs) as f64 / s.out_segs as f64
    } else {
        0.0
    };
    let mut score = LayerScore::default();
    if retrans_segments > 0 {
        score.signals.push(format!(
            "{retrans_segments} retransmitted segments traced ({} skbs), {local_loss} packets lost on the node",
            ctx.w.observed.retransmits.total
        ));
        if s.dsack_segs > 0 {
            score.signals.push(format!(
                "TcpExt TCPDSACKRecvSegs +{}: that many were spurious (the receiver already had them)",
                s.dsack_segs
            ));
        }
        if s.out_segs > 0 {
            score.signals.push(format!(
                "Tcp RetransSegs +{} of OutSegs +{}: {:.2} % lost after discounting spurious ones",
                s.retrans_segs,
                s.out_segs,
                retrans_ratio * 100.0
            ));
        }
        if s.lost_retransmit > 0 || s.timeouts > 0 {
            score.signals.push(format!(
                "TcpExt TCPLostRetransmit +{}, TCPTimeouts +{}",
                s.lost_retransmit, s.timeouts
            ));
        }
        score.signals.extend(ctx.flows.upstream.iter().cloned());
    }
    if retrans_ratio >= MIN_RETRANS_RATIO || s.out_segs == 0 {
        score.lost_packets = unexplained;
    }
    let mut f = Finding::layer(Layer::Upstream, score);
    f.summary = "retransmissions the node's own loss does not explain".to_owned();
    // Why retransmissions are not loss, when they are not: said beside them and ruled out.
    let floor = MIN_RETRANS_RATIO * 100.0;
    let pct = retrans_ratio * 100.0;
    let why_not = if retrans_segments == 0 {
        Some((String::new(), "no retransmitted segments traced".to_owned()))
    } else if s.out_segs > 0 && genuine == 0 {
        Some((
            format!(
                " — not packet loss: all {} were spurious (DSACK: the receiver already had them)",
                s.dsack_segs
            ),
            format!(
                "{retrans_segments} retransmitted segments, all spurious (DSACK: the receiver already had them)"
            ),
        ))
    } else if s.out_segs > 0 && retrans_ratio < MIN_RETRANS_RATIO {
        Some(if s.dsack_segs > 0 {
            (
                format!(
                    " — not packet loss: {} were spurious (DSACK: the receiver already had them) and the rest are {pct:.2} % of the segments sent, under the {floor:.2} % counted as loss",
                    s.dsack_segs
                ),
                format!(
                    "{retrans_segments} retransmitted segments: {} spurious (DSACK), the rest {pct:.2} % of the segments sent, under the {floor:.2} % counted as loss",
                    s.dsack_segs
                ),
            )
        } else {
            (
                format!(
                    " — not packet loss: {pct:.2} % of the segments sent, under the {floor:.2} % counted as loss"
                ),
                format!(
                    "{retrans_segments} retransmitted segments: {pct:.2} % of the segments sent, under the {floor:.2} % counted as loss"
                ),
            )
        })
    } else if unexplained == 0 {
        Some((
            format!(" — explained by the {local_loss} packets lost on the node"),
            format!(
                "{retrans_segments} retransmitted segments, explained by the {local_loss} packets lost on the node"
            ),
        ))
    } else {
        None
    };
    let r = &ctx.w.observed.retransmits;
    if let Some(flow) = r.flows.first() {
        f.evidence.push(super::item(
            "kernel_probe",
            format!(
                "retransmissions: {} segments in {} skbs across {} flows; top flow {}:{} → {}:{} ({}) with {} segments{}",
                r.segments_total,
                r.total,
                r.flows.len(),
                flow.saddr,
                flow.sport,
                flow.daddr,
                flow.dport,
                flow.state,
                flow.retransmitted_segments + flow.synack_retransmits,
                why_not.as_ref().map_or("", |w| w.0.as_str())
            ),
        ));
    }
    if let Some((_, result)) = why_not {
        f.rule_out("upstream loss (network path)", result);
    }
    // Where the retransmitted segments went: mostly inside the node's own subnets is a peer
    // (another node, a pod), not the VPC's gateways.
    let (listed, outside) = (ctx.flows.retrans_listed, ctx.flows.retrans_outside);
    let inside = listed > 0 && outside * 2 < listed;
    f.if_root_cause.escalation = vec![if inside {
        format!(
            "Retransmissions but no local drops — loss is between this node and peers inside its own subnets (another node or pod), not on this node ({retrans_segments} retransmitted segments, {local_loss} packets lost on the node)"
        )
    } else {
        format!(
            "Retransmissions but no local drops — loss is in the network path, not on the node ({retrans_segments} retransmitted segments, {local_loss} packets lost on the node)"
        )
    }];
    // The runbook's "persists after all node-level checks" needs a span that shows persisting.
    if !inside && ctx.seconds >= PERSISTS_AFTER_S {
        f.if_root_cause.escalation.push(
            "Issue persists after all node-level checks — may be VPC, TGW, or peering issue"
                .to_owned(),
        );
    }
    f.if_root_cause.mitigation = if inside {
        format!(
            "Escalate: the retransmitted segments went to destinations inside the node's subnets (pod-to-pod or node-to-node path), {:.0} % outside them — check the peers they went to (their drops, NIC and CNI) and the path between the nodes (security groups, overlay); node-level fixes here will not help",
            outside as f64 * 100.0 / listed as f64
        )
    } else {
        "Escalate: loss is in the network path, not on this node — check VPC peering, TGW, NAT gateway or internet gateway health; node-level fixes will not help".to_owned()
    };
    f
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{destination, host, observed, route, window};
    use super::*;
    use crate::judge::flows::Destination;

    fn retransmits(retrans: i64, out: i64, dsack: i64, traced: u64, local: u64) -> Finding {
        let start = host(
            &[
                ("Tcp", "OutSegs", 0),
                ("Tcp", "RetransSegs", 0),
                ("TcpExt", "TCPDSACKRecvSegs", 0),
            ],
            &[],
            &[],
        );
        let end = host(
            &[
                ("Tcp", "OutSegs", out),
                ("Tcp", "RetransSegs", retrans),
                ("TcpExt", "TCPDSACKRecvSegs", dsack),
            ],
            &[],
            &[],
        );
        let w = window(observed(&[], &[(443, traced)], &[]), start, end);
        let nic = Finding::layer(
            Layer::NicDriver,
            LayerScore {
                lost_packets: local,
                signals: vec![],
            },
        );
        assess(&Context::new(&w), &[nic])
    }

    #[test]
    fn retransmits_the_local_layers_do_not_explain_are_upstream() {
        let f = retransmits(150, 10_000, 0, 150, 40);
        assert_eq!(f.score.lost_packets, 110);
        assert_eq!(
            f.score.signals[0],
            "150 retransmitted segments traced (150 skbs), 40 packets lost on the node"
        );
        assert_eq!(
            f.score.signals[1],
            "Tcp RetransSegs +150 of OutSegs +10000: 1.50 % lost after discounting spurious ones"
        );
        // A 10 s window: the network path, but not yet "persists after all node-level checks".
        assert_eq!(f.if_root_cause.escalation.len(), 1);
        assert!(f.if_root_cause.escalation[0]
            .ends_with("(150 retransmitted segments, 40 packets lost on the node)"));
        assert!(f.if_root_cause.mitigation.starts_with("Escalate:"));
    }

    #[test]
    fn spurious_retransmits_and_a_low_ratio_are_not_upstream_loss() {
        // 36726 of 3.3 M retransmitted, 34657 DSACKed: 0.06 % genuine, under the 0.2 % floor.
        let f = retransmits(36_726, 3_317_619, 34_657, 36_726, 0);
        assert_eq!(f.score.lost_packets, 0);
        assert!(f.score.signals[1].contains("TCPDSACKRecvSegs +34657"));
    }

    /// 150 of 10 000 segments retransmitted, all to `daddr`, over a window of `seconds`; the
    /// node's own subnet is 198.18.0.0/24 (a directly connected route).
    fn retransmits_to(daddr: &str, seconds: f64) -> Finding {
        let start = host(
            &[("Tcp", "OutSegs", 0), ("Tcp", "RetransSegs", 0)],
            &[],
            &[],
        );
        let end = host(
            &[("Tcp", "OutSegs", 10_000), ("Tcp", "RetransSegs", 150)],
            &[],
            &[],
        );
        let mut o = observed(&[], &[(443, 150)], &[]);
        o.window.duration_s = seconds;
        o.flows.destinations = vec![Destination {
            retransmits: 150,
            ..destination(daddr, 443)
        }];
        o.flows.totals.retransmits = 150;
        let mut w = window(o, start, end);
        w.facts_end.routes = vec![
            route("198.18.0.0/24", "unicast", None),
            route("default", "unicast", Some("198.18.0.254")),
        ];
        assess(&Context::new(&w), &[])
    }

    #[test]
    fn loss_inside_the_nodes_subnets_points_at_the_peers_not_the_vpc() {
        let f = retransmits_to("198.18.0.2", 15.0);
        assert_eq!(f.score.lost_packets, 150);
        assert!(f.score.signals.contains(
            &"0 % of retransmitted segments went to destinations outside the node's subnets"
                .to_owned()
        ));
        let m = &f.if_root_cause.mitigation;
        assert!(!m.contains("VPC") && !m.contains("NAT"), "{m}");
        assert!(
            m.starts_with("Escalate: the retransmitted segments went to destinations inside the node's subnets (pod-to-pod or node-to-node path)"),
            "{m}"
        );
        assert!(
            f.if_root_cause
                .escalation
                .iter()
                .all(|e| !e.contains("VPC") && !e.contains("persists")),
            "{:?}",
            f.if_root_cause.escalation
        );
    }

    /// A listener's row (its clients folded under 198.18.0.2:443, inside the node's subnet)
    /// retransmitting to a client outside the subnets: the segments went outside, where the
    /// client is, not to the listener's own address.
    #[test]
    fn a_listeners_row_counts_where_its_clients_are() {
        let start = host(
            &[("Tcp", "OutSegs", 0), ("Tcp", "RetransSegs", 0)],
            &[],
            &[],
        );
        let end = host(
            &[("Tcp", "OutSegs", 10_000), ("Tcp", "RetransSegs", 150)],
            &[],
            &[],
        );
        let mut o = observed(&[], &[(40_000, 150)], &[]);
        // The server's side: from its listening end to the client's ephemeral port.
        for f in &mut o.retransmits.flows {
            f.netns = 4_026_532_999;
            (f.saddr, f.sport) = ("198.18.0.2".to_owned(), 443);
            f.daddr = "203.0.113.9".to_owned();
        }
        o.flows.destinations = vec![Destination {
            retransmits: 150,
            ..destination("198.18.0.2", 443)
        }];
        o.flows.totals.retransmits = 150;
        let mut w = window(o, start, end);
        w.facts_end.routes = vec![
            route("198.18.0.0/24", "unicast", None),
            route("default", "unicast", Some("198.18.0.254")),
        ];
        let f = assess(&Context::new(&w), &[]);
        assert!(
            f.score.signals.contains(
                &"100 % of retransmitted segments went to destinations outside the node's subnets"
                    .to_owned()
            ),
            "{:?}",
            f.score.signals
        );
        assert!(
            f.score.signals.contains(
                &"150 retransmitted segments to the clients of 198.18.0.2:443 (netns 4026532999)"
                    .to_owned()
            ),
            "{:?}",
            f.score.signals
        );
        assert!(f
            .if_root_cause
            .mitigation
            .contains("VPC peering, TGW, NAT gateway"));
    }

    #[test]
    fn persisting_is_said_only_over_a_window_that_shows_it() {
        // Outside the node's subnets over 15 s: the VPC path, but nothing "persists" yet.
        let f = retransmits_to("203.0.113.9", 15.0);
        assert!(f
            .if_root_cause
            .mitigation
            .contains("VPC peering, TGW, NAT gateway"));
        assert!(
            !f.if_root_cause
                .escalation
                .iter()
                .any(|e| e.contains("persists")),
            "{:?}",
            f.if_root_cause.escalation
        );
        // Over ten minutes it does.
        let f = retransmits_to("203.0.113.9", 600.0);
        assert!(
            f.if_root_cause.escalation.iter().any(|e| {
                e
                == "Issue persists after all node-level checks — may be VPC, TGW, or peering issue"
            }),
            "{:?}",
            f.if_root_cause.escalation
        );
    }

    #[test]
    fn no_retransmits_no_signals() {
        let f = retransmits(0, 1000, 0, 0, 0);
        assert_eq!(f.score, LayerScore::default());
    }
}
