//! Root cause `irq_imbalance` (layer irq_cpu): backlog drops (softnet `dropped`), time
//! squeezes, and NET_RX saturating one CPU, which decides alone when nothing lost packets.
//! Scores the layer and says what to do; does not rank.

use crate::judge::layers::Layer;

use super::{host_sysctl, Context, Finding};

pub(super) fn assess(ctx: &Context, _earlier: &[Finding]) -> Finding {
    let s = &ctx.signals;
    let rx = &ctx.net_rx;
    let mut score = ctx.local_score(Layer::IrqCpu);
    if s.softnet_dropped > 0 {
        score
            .signals
            .push(format!("softnet_stat dropped +{}", s.softnet_dropped));
    }
    if s.time_squeeze > 0 {
        score
            .signals
            .push(format!("softnet_stat time_squeeze +{}", s.time_squeeze));
    }
    if rx.saturated || (rx.imbalanced && score.lost_packets > 0) {
        score.signals.push(format!(
            "NET_RX on CPU {}: {:.0} ms = {:.0} % of the window; other CPUs {:.1} ms on average",
            rx.hot_cpu,
            rx.hot_ns as f64 / 1e6,
            rx.hot_share * 100.0,
            rx.others_mean / 1e6
        ));
    }
    let mut f = Finding::layer(Layer::IrqCpu, score);
    f.summary = if rx.saturated {
        format!("NET_RX saturating CPU {}, backlog drops", rx.hot_cpu)
    } else {
        "softnet backlog drops".to_owned()
    };
    // NET_RX saturation on one CPU is an IRQ/CPU problem of its own, loss or not.
    f.decides_alone = rx.saturated && rx.imbalanced;
    if f.score.lost_packets == 0 && !rx.saturated {
        f.rule_out(
            "IRQ/CPU backlog and softirq saturation",
            format!(
                "no backlog drops, time_squeeze +{}, busiest CPU {} spent {:.1} % of the window in NET_RX",
                s.time_squeeze,
                rx.hot_cpu,
                rx.hot_share * 100.0
            ),
        );
    }
    let facts = &ctx.w.facts_end;
    f.if_root_cause.mitigation = format!(
        "Operator: spread network interrupts — enable irqbalance (running: {}) or configure RPS/XPS across CPUs; netdev_max_backlog is {}",
        if facts.irqbalance_running { "yes" } else { "no" },
        host_sysctl(facts, "net.core.netdev_max_backlog")
    );
    f
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{observed, quiet, window};
    use super::*;

    fn assess_net_rx(net_rx: &[(u32, u64)], dropped: u64) -> Finding {
        let mut end = quiet();
        end.softnet[1].dropped = dropped;
        let w = window(observed(&[], &[], net_rx), quiet(), end);
        assess(&Context::new(&w), &[])
    }

    #[test]
    fn one_saturated_cpu_decides_alone_and_is_named() {
        let f = assess_net_rx(&[(0, 100_000_000), (1, 7_000_000_000)], 0);
        assert_eq!(f.score.lost_packets, 0);
        assert!(f.decides_alone);
        assert!(f.ruled_out.is_empty());
        assert_eq!(
            f.score.signals,
            vec![
                "NET_RX on CPU 1: 7000 ms = 70 % of the window; other CPUs 100.0 ms on average"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn backlog_drops_on_an_imbalanced_cpu_score_and_name_it() {
        let f = assess_net_rx(&[(0, 50_000_000), (1, 2_000_000_000)], 300);
        assert_eq!(f.score.lost_packets, 300);
        assert!(!f.decides_alone);
        assert_eq!(f.score.signals[0], "softnet_stat dropped +300");
        assert!(f.score.signals[1].starts_with("NET_RX on CPU 1: 2000 ms = 20 %"));
        assert_eq!(
            f.if_root_cause.mitigation,
            "Operator: spread network interrupts — enable irqbalance (running: no) or configure RPS/XPS across CPUs; netdev_max_backlog is unknown"
        );
    }

    #[test]
    fn balanced_idle_cpus_rule_irq_out() {
        let f = assess_net_rx(&[(0, 5_000_000), (1, 4_000_000)], 0);
        assert!(!f.decides_alone);
        assert!(f.score.signals.is_empty());
        assert_eq!(
            f.ruled_out[0].result,
            "no backlog drops, time_squeeze +0, busiest CPU 0 spent 0.1 % of the window in NET_RX"
        );
    }
}
