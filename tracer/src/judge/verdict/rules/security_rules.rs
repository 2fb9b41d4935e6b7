//! Root cause `security_rule_drops` (layer iptables_netpolicy): NETFILTER_DROP and policy
//! drops, conntrack drops, and the drop/reject rules whose counters rose (shown whatever the
//! verdict). Scores the layer and says which rule to review; does not rank.

use crate::judge::layers::Layer;

use super::{item, Context, CounterDelta, Finding};

pub(super) fn assess(ctx: &Context, _earlier: &[Finding]) -> Finding {
    let facts = &ctx.w.facts_end;
    let mut score = ctx.local_score(Layer::IptablesNetpolicy);
    score
        .signals
        .extend(ctx.signals.conntrack_drops.iter().map(CounterDelta::text));
    // Drops tied to the rules of their own namespace that rose.
    for d in ctx.rule_drops.iter().take(3) {
        score.signals.push(format!(
            "{} drops at {} in {}, where {}",
            d.count,
            d.location,
            ctx.netns_label(d.inode, d.pod.as_deref()),
            d.rules
                .iter()
                .take(2)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let mut f = Finding::layer(Layer::IptablesNetpolicy, score);
    f.summary = match ctx.rules.len() {
        0 => "firewall / NetworkPolicy drops".to_owned(),
        1 => "dropped by 1 DROP/REJECT rule".to_owned(),
        n => format!("dropped by {n} DROP/REJECT rules"),
    };
    for (_, text) in ctx.rules.iter().take(5) {
        f.evidence.push(item(
            "network_diagnostics",
            format!("rule matched in the window: {text}"),
        ));
    }
    if f.score.lost_packets == 0 {
        f.rule_out(
            "firewall / NetworkPolicy drops",
            format!(
                "no NETFILTER_DROP or policy drops; {} DROP/REJECT rules present, none matched in the window",
                facts.firewall_rules.len()
            ),
        );
    }
    if facts.policy_engines.iter().any(|e| e != "kube-proxy") {
        f.if_root_cause.escalation.push(format!(
            "Security rule changes may be needed that affect other workloads (policy engines present: {})",
            facts.policy_engines.join(", ")
        ));
    }
    let top = ctx.rules.first().map_or_else(
        || "the DROP/REJECT rules of the namespace where NETFILTER_DROP was seen".to_owned(),
        |(_, t)| t.clone(),
    );
    f.if_root_cause.mitigation = format!(
        "Operator: review {top} and the NetworkPolicy that owns it{}; adjust the policy rather than deleting rules by hand",
        if facts.policy_engines.is_empty() {
            String::new()
        } else {
            format!(" (engines: {})", facts.policy_engines.join(", "))
        }
    );
    f
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{observed, quiet, window};
    use super::*;
    use crate::node::evidence::FirewallRule;

    fn rule(rule: &str, packets: u64) -> FirewallRule {
        FirewallRule {
            netns: 7,
            netns_label: "netns router".to_owned(),
            source: "nftables".to_owned(),
            table: "inet filter".to_owned(),
            chain: "forward".to_owned(),
            hook: Some("forward".to_owned()),
            rule: rule.to_owned(),
            verdict: "drop".to_owned(),
            packets: Some(packets),
            bytes: None,
        }
    }

    #[test]
    fn netfilter_drops_score_and_the_busiest_firing_rule_is_evidence_and_mitigation() {
        let o = observed(&[("NETFILTER_DROP", "nft_do_chain+0x46f", 500)], &[], &[]);
        let mut w = window(o, quiet(), quiet());
        w.facts_start.firewall_rules = vec![
            rule("ip daddr 10.0.0.0/8", 0),
            rule("ip daddr 198.18.2.0/24", 10),
        ];
        w.facts_end.firewall_rules = vec![
            rule("ip daddr 10.0.0.0/8", 20),
            rule("ip daddr 198.18.2.0/24", 490),
        ];
        w.facts_end.policy_engines = vec!["kube-proxy".to_owned(), "calico".to_owned()];
        let f = assess(&Context::new(&w), &[]);
        assert_eq!(f.score.lost_packets, 500);
        assert_eq!(f.evidence.len(), 2);
        assert_eq!(
            f.evidence[0].content,
            "rule matched in the window: nftables [netns router] inet filter chain forward (hook forward): `ip daddr 198.18.2.0/24` drop (+480 packets)"
        );
        assert!(f.evidence[1].content.ends_with("(+20 packets)"));
        assert_eq!(
            f.if_root_cause.mitigation,
            "Operator: review nftables [netns router] inet filter chain forward (hook forward): `ip daddr 198.18.2.0/24` drop (+480 packets) and the NetworkPolicy that owns it (engines: kube-proxy, calico); adjust the policy rather than deleting rules by hand"
        );
        assert_eq!(f.if_root_cause.escalation.len(), 1);
        assert!(f.ruled_out.is_empty());
    }

    #[test]
    fn no_drops_rule_the_firewall_out_and_kube_proxy_alone_does_not_escalate() {
        let mut w = window(observed(&[], &[], &[]), quiet(), quiet());
        w.facts_end.firewall_rules = vec![rule("ip daddr 10.0.0.0/8", 3)];
        w.facts_start.firewall_rules = w.facts_end.firewall_rules.clone();
        w.facts_end.policy_engines = vec!["kube-proxy".to_owned()];
        let f = assess(&Context::new(&w), &[]);
        assert_eq!(f.score.lost_packets, 0);
        assert!(f.evidence.is_empty());
        assert!(f.if_root_cause.escalation.is_empty());
        assert_eq!(
            f.ruled_out[0].result,
            "no NETFILTER_DROP or policy drops; 1 DROP/REJECT rules present, none matched in the window"
        );
    }

    #[test]
    fn netfilter_drops_name_the_rule_that_rose_in_their_own_namespace() {
        let mut o = observed(&[("NOT_SPECIFIED", "nft_do_chain+0x46f", 500)], &[], &[]);
        o.drops.by_reason[0].netns = vec![crate::judge::report::NetnsCount {
            inode: 7,
            count: 500,
            pod: None,
            netns_name: None,
        }];
        let mut w = window(o, quiet(), quiet());
        let mut elsewhere = rule("ip6 daddr 2001:2::/64", 900);
        elsewhere.netns = 8;
        w.facts_end.firewall_rules = vec![rule("ip6 daddr 2001:2:0:61::2", 500), elsewhere];
        let f = assess(&Context::new(&w), &[]);
        assert_eq!(
            f.score.signals[1],
            "500 drops at nft_do_chain+0x46f in netns 7, where `ip6 daddr 2001:2:0:61::2` (chain forward) +500"
        );
    }
}
