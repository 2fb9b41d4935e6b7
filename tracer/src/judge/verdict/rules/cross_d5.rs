//! Cross-reference D5: retransmissions on port 53 or a firing rule that matches port 53 (DNS
//! failures). Refers or rules out; never scores a layer.

use super::{Context, CrossReference, Finding};

pub(super) fn assess(ctx: &Context, _earlier: &[Finding]) -> Finding {
    let mut dns = Vec::new();
    for fl in &ctx.w.observed.retransmits.flows {
        if fl.dport == 53 || fl.sport == 53 {
            dns.push(format!(
                "{} retransmissions {}:{} → {}:{}",
                fl.retransmitted_segments + fl.synack_retransmits,
                fl.saddr,
                fl.sport,
                fl.daddr,
                fl.dport
            ));
        }
    }
    for (_, text) in &ctx.rules {
        if text.contains("dport 53") || text.contains("--dport 53") {
            dns.push(format!("DNS traffic dropped by {text}"));
        }
    }
    let mut f = Finding::default();
    if dns.is_empty() {
        f.rule_out(
            "DNS failures (D5)",
            "no retransmissions or rule drops on port 53".to_owned(),
        );
    } else {
        f.cross_reference = Some(CrossReference {
            runbook: "D5".to_owned(),
            evidence: dns.join("; "),
        });
    }
    f
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{observed, quiet, window};
    use super::*;
    use crate::node::evidence::FirewallRule;

    fn assess_flows(flows: &[(u16, u64)]) -> Finding {
        let w = window(observed(&[], flows, &[]), quiet(), quiet());
        assess(&Context::new(&w), &[])
    }

    #[test]
    fn a_port_53_retransmit_refers_to_d5() {
        let f = assess_flows(&[(443, 9), (53, 3)]);
        let c = f.cross_reference.expect("D5");
        assert_eq!(
            c.evidence,
            "3 retransmissions 198.18.0.1:40000 → 198.18.0.2:53"
        );
        assert!(f.ruled_out.is_empty());
    }

    #[test]
    fn retransmits_elsewhere_rule_d5_out() {
        let f = assess_flows(&[(443, 9), (5353, 3)]);
        assert_eq!(f.cross_reference, None);
        assert_eq!(f.ruled_out[0].check, "DNS failures (D5)");
    }

    #[test]
    fn a_firing_rule_on_port_53_refers_to_d5() {
        let mut w = window(observed(&[], &[], &[]), quiet(), quiet());
        let rule = |packets| FirewallRule {
            netns: 1,
            netns_label: "host".to_owned(),
            source: "iptables-legacy".to_owned(),
            table: "filter".to_owned(),
            chain: "OUTPUT".to_owned(),
            rule: "-p udp -m udp --dport 53 -j DROP".to_owned(),
            verdict: "drop".to_owned(),
            packets: Some(packets),
            ..Default::default()
        };
        w.facts_start.firewall_rules = vec![rule(1)];
        w.facts_end.firewall_rules = vec![rule(5)];
        let f = assess(&Context::new(&w), &[]);
        let c = f.cross_reference.expect("D5");
        assert!(c
            .evidence
            .starts_with("DNS traffic dropped by iptables-legacy [host] filter chain OUTPUT"));
        assert!(c.evidence.ends_with("(+4 packets)"));
    }
}
