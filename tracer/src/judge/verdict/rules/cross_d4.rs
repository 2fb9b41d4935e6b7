//! Cross-reference D4: PKT_TOO_BIG / fragmentation drops or FragFails/ReasmFails/TCPMTUPFail
//! rising (an MTU problem). Refers or rules out; the drops are scored by route_issue.

use super::{Context, CounterDelta, CrossReference, Finding};

/// Drop reasons that mean a packet was too big or its fragments did not reassemble.
const MTU_REASONS: [&str; 4] = [
    "PKT_TOO_BIG",
    "FRAG_REASM_TIMEOUT",
    "DUP_FRAG",
    "FRAG_TOO_FAR",
];

pub(super) fn assess(ctx: &Context, _earlier: &[Finding]) -> Finding {
    let mtu = &ctx.signals.mtu;
    let mtu_drops: u64 = ctx
        .w
        .observed
        .drops
        .by_reason
        .iter()
        .filter(|r| MTU_REASONS.contains(&r.reason.as_str()))
        .map(|r| r.count)
        .sum();
    let mut f = Finding::default();
    if mtu_drops == 0 && mtu.is_empty() {
        f.rule_out(
            "MTU / fragmentation (D4)",
            "no PKT_TOO_BIG or fragmentation drops; FragFails/ReasmFails flat".to_owned(),
        );
        return f;
    }
    let mut parts = Vec::new();
    if mtu_drops > 0 {
        parts.push(format!("{mtu_drops} PKT_TOO_BIG/fragmentation drops"));
    }
    parts.extend(mtu.iter().map(CounterDelta::text));
    f.cross_reference = Some(CrossReference {
        runbook: "D4".to_owned(),
        evidence: parts.join("; "),
    });
    f
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{host, observed, quiet, window};
    use super::*;

    #[test]
    fn too_big_drops_and_frag_fails_refer_to_d4() {
        let o = observed(
            &[
                ("PKT_TOO_BIG", "ip_forward+0x1", 25),
                ("FRAG_TOO_FAR", "ip_frag_queue+0x1", 5),
            ],
            &[],
            &[],
        );
        let start = host(&[("Ip", "FragFails", 3)], &[], &[]);
        let end = host(&[("Ip", "FragFails", 9)], &[], &[]);
        let f = assess(&Context::new(&window(o, start, end)), &[]);
        let c = f.cross_reference.expect("D4");
        assert_eq!(
            c.evidence,
            "30 PKT_TOO_BIG/fragmentation drops; host Ip:FragFails: 3 → 9 (+6)"
        );
        assert!(f.ruled_out.is_empty());
    }

    #[test]
    fn other_drops_rule_d4_out() {
        let o = observed(&[("NETFILTER_DROP", "nft_do_chain+0x1", 25)], &[], &[]);
        let f = assess(&Context::new(&window(o, quiet(), quiet())), &[]);
        assert_eq!(f.cross_reference, None);
        assert_eq!(f.ruled_out[0].check, "MTU / fragmentation (D4)");
    }
}
