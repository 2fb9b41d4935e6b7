//! Cross-reference D6/J1: an ENA `*_allowance_exceeded` counter rose (the instance's network
//! allowance, not this runbook). Refers or rules out; the loss itself is scored by nic_errors.

use super::{Context, CounterDelta, CrossReference, Finding};

pub(super) fn assess(ctx: &Context, _earlier: &[Finding]) -> Finding {
    let allowance = &ctx.signals.allowance_exceeded;
    let mut f = Finding::default();
    if allowance.is_empty() {
        f.rule_out(
            "ENA allowance exceeded (D6/J1)",
            "no *_allowance_exceeded counter increased".to_owned(),
        );
    } else {
        f.cross_reference = Some(CrossReference {
            runbook: "D6/J1".to_owned(),
            evidence: allowance
                .iter()
                .map(CounterDelta::text)
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    f
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{host, observed, window};
    use super::*;

    fn assess_allowance(start: u64, end: u64) -> Finding {
        let w = window(
            observed(&[], &[], &[]),
            host(
                &[],
                &[],
                &[
                    ("pps_allowance_exceeded", start),
                    ("bw_in_allowance_exceeded", 7),
                ],
            ),
            host(
                &[],
                &[],
                &[
                    ("pps_allowance_exceeded", end),
                    ("bw_in_allowance_exceeded", 7),
                ],
            ),
        );
        assess(&Context::new(&w), &[])
    }

    #[test]
    fn a_rising_allowance_counter_refers_to_d6_j1() {
        let f = assess_allowance(100, 400);
        let c = f.cross_reference.expect("D6/J1");
        assert_eq!(c.runbook, "D6/J1");
        assert_eq!(c.evidence, "eth0 pps_allowance_exceeded: 100 → 400 (+300)");
        assert!(f.ruled_out.is_empty());
        assert_eq!(f.layer, None);
    }

    #[test]
    fn flat_allowance_counters_rule_d6_j1_out() {
        let f = assess_allowance(100, 100);
        assert_eq!(f.cross_reference, None);
        assert_eq!(f.ruled_out[0].check, "ENA allowance exceeded (D6/J1)");
    }
}
