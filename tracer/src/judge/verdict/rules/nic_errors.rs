//! Root cause `nic_errors` (layer nic_driver): interface errors, CRC errors, ENA allowances
//! exceeded and egress qdisc drops. Scores the layer and says what to do; does not rank.

use crate::judge::layers::Layer;

use super::{Context, CounterDelta, Finding};

pub(super) fn assess(ctx: &Context, _earlier: &[Finding]) -> Finding {
    let s = &ctx.signals;
    let mut score = ctx.local_score(Layer::NicDriver);
    for deltas in [
        &s.nic_errors,
        &s.crc_errors,
        &s.allowance_exceeded,
        &s.qdisc_drops,
    ] {
        score.signals.extend(deltas.iter().map(CounterDelta::text));
    }
    let mut f = Finding::layer(Layer::NicDriver, score);
    let kinds: Vec<&str> = [
        (&s.nic_errors, "interface errors"),
        (&s.crc_errors, "CRC errors"),
        (&s.allowance_exceeded, "ENA allowance exceeded"),
        (&s.qdisc_drops, "qdisc drops"),
    ]
    .iter()
    .filter(|(d, _)| !d.is_empty())
    .map(|(_, k)| *k)
    .collect();
    f.summary = if kinds.is_empty() {
        "driver drops".to_owned()
    } else {
        kinds.join(", ")
    };
    if f.score.lost_packets == 0 {
        let checked = ctx
            .w
            .counters_end
            .host()
            .map_or(0, |h| h.interfaces.keys().filter(|n| *n != "lo").count());
        f.rule_out(
            "NIC/driver errors",
            format!(
                "rx/tx errors, missed, CRC and ENA allowance counters flat on {checked} host interfaces"
            ),
        );
    }
    if !s.crc_errors.is_empty() {
        f.escalation.push(format!(
            "NIC hardware errors (rx_crc_errors) increasing — possible hardware failure, request instance replacement ({})",
            s.crc_errors.iter().map(CounterDelta::text).collect::<Vec<_>>().join("; ")
        ));
    }
    f.if_root_cause.mitigation = mitigation(ctx);
    f
}

/// The runbook: update the ENA driver; replace the instance when CRC errors rise.
fn mitigation(ctx: &Context) -> String {
    let driver = ctx
        .w
        .counters_end
        .host()
        .and_then(|h| {
            h.interfaces.iter().find_map(|(name, i)| {
                i.driver.as_ref().map(|d| {
                    format!(
                        "{name}: {d} {}",
                        i.driver_version.as_deref().unwrap_or("(version unknown)")
                    )
                })
            })
        })
        .unwrap_or_else(|| "driver unknown".to_owned());
    let mut text = format!(
        "Operator: check the ENA driver version ({driver}; < 2.8 has known bugs) and instance health; update the driver"
    );
    if !ctx.signals.crc_errors.is_empty() {
        text.push_str(
            "; rx_crc_errors are increasing: replace the instance (RED — requires approval)",
        );
    }
    if !ctx.signals.allowance_exceeded.is_empty() {
        text.push_str("; ENA allowance exceeded: follow D6/J1 (instance size / traffic shaping)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{host, observed, window};
    use super::*;

    fn assess_counters(start: &[(&str, u64)], end: &[(&str, u64)]) -> Finding {
        let w = window(
            observed(&[], &[], &[]),
            host(&[], start, &[]),
            host(&[], end, &[]),
        );
        assess(&Context::new(&w), &[])
    }

    #[test]
    fn rising_errors_score_their_sum_and_the_mitigation_names_the_driver() {
        let f = assess_counters(
            &[("rx_errors", 10), ("tx_errors", 0)],
            &[("rx_errors", 60), ("tx_errors", 7)],
        );
        assert_eq!(f.layer, Some(Layer::NicDriver));
        assert_eq!(f.score.lost_packets, 57);
        assert_eq!(
            f.score.signals,
            vec![
                "eth0 rx_errors: 10 → 60 (+50)".to_owned(),
                "eth0 tx_errors: 0 → 7 (+7)".to_owned()
            ]
        );
        assert!(f.ruled_out.is_empty());
        assert!(f.escalation.is_empty());
        assert_eq!(
            f.if_root_cause.mitigation,
            "Operator: check the ENA driver version (eth0: ena 2.7.1g; < 2.8 has known bugs) and instance health; update the driver"
        );
    }

    #[test]
    fn rising_crc_errors_escalate_and_add_the_red_replacement() {
        let f = assess_counters(&[("rx_crc_errors", 10)], &[("rx_crc_errors", 40)]);
        assert_eq!(f.score.lost_packets, 30);
        assert_eq!(f.escalation.len(), 1);
        assert!(f.escalation[0].ends_with("(eth0 rx_crc_errors: 10 → 40 (+30))"));
        assert!(f.if_root_cause.mitigation.ends_with(
            "; rx_crc_errors are increasing: replace the instance (RED — requires approval)"
        ));
    }

    #[test]
    fn flat_counters_rule_the_nic_out() {
        let f = assess_counters(&[("rx_errors", 5)], &[("rx_errors", 5)]);
        assert_eq!(f.score.lost_packets, 0);
        assert_eq!(f.ruled_out.len(), 1);
        assert_eq!(
            f.ruled_out[0].result,
            "rx/tx errors, missed, CRC and ENA allowance counters flat on 1 host interfaces"
        );
        assert!(!f.if_root_cause.mitigation.contains("RED"));
    }
}
