//! Cross-reference D3: a conntrack table at least 90 % full, or conntrack drops rising
//! (conntrack exhaustion). Refers or rules out with the highest fill; the drops themselves are
//! scored by security_rules.

use super::{Context, CounterDelta, CrossReference, Finding};

pub(super) fn assess(ctx: &Context, _earlier: &[Finding]) -> Finding {
    let netns = &ctx.w.counters_end.netns;
    let mut conntrack = Vec::new();
    for ns in netns {
        if let Some(c) = &ns.conntrack {
            if c.max > 0 && c.count * 10 >= c.max * 9 {
                conntrack.push(format!(
                    "{}: nf_conntrack_count {} of max {} ({:.0} %)",
                    ns.label,
                    c.count,
                    c.max,
                    c.count as f64 * 100.0 / c.max as f64
                ));
            }
        }
    }
    conntrack.extend(ctx.signals.conntrack_drops.iter().map(CounterDelta::text));
    let mut f = Finding::default();
    if conntrack.is_empty() {
        let fill = netns
            .iter()
            .filter_map(|n| {
                n.conntrack
                    .as_ref()
                    .filter(|c| c.max > 0)
                    .map(|c| c.count as f64 / c.max as f64)
            })
            .fold(0.0f64, f64::max);
        f.rule_out(
            "conntrack exhaustion (D3)",
            format!(
                "highest conntrack fill {:.1} %, no conntrack drops",
                fill * 100.0
            ),
        );
    } else {
        f.cross_reference = Some(CrossReference {
            runbook: "D3".to_owned(),
            evidence: conntrack.join("; "),
        });
    }
    f
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{observed, quiet, window};
    use super::*;
    use crate::node::evidence::Conntrack;

    fn assess_fill(count: u64, drops: (u64, u64)) -> Finding {
        let with = |drop| {
            let mut c = quiet();
            c.netns[0].conntrack = Some(Conntrack {
                count,
                max: 1000,
                stats: [("drop", drop)].into_iter().collect(),
            });
            c
        };
        let w = window(observed(&[], &[], &[]), with(drops.0), with(drops.1));
        assess(&Context::new(&w), &[])
    }

    #[test]
    fn a_table_90_percent_full_refers_to_d3() {
        let f = assess_fill(900, (0, 0));
        let c = f.cross_reference.expect("D3");
        assert_eq!(
            c.evidence,
            "host: nf_conntrack_count 900 of max 1000 (90 %)"
        );
    }

    #[test]
    fn conntrack_drops_refer_to_d3_below_the_fill_threshold() {
        let f = assess_fill(100, (2, 9));
        let c = f.cross_reference.expect("D3");
        assert_eq!(c.evidence, "host conntrack drop: 2 → 9 (+7)");
    }

    #[test]
    fn a_table_below_90_percent_without_drops_rules_d3_out_with_its_fill() {
        let f = assess_fill(899, (4, 4));
        assert_eq!(f.cross_reference, None);
        assert_eq!(
            f.ruled_out[0].result,
            "highest conntrack fill 89.9 %, no conntrack drops"
        );
    }
}
