//! The comparison itself: loss signals of both nodes set against each other, scaled to the
//! affected window and ranked by how much each explains the affected node's root cause, with
//! the configuration differences and the NET_RX concentration. Uses `signals` and `config`.

use std::collections::BTreeSet;

use super::{
    config::{document_config_differences, recorded_config_differences},
    difference::{
        DiffKind, Difference, NodeDiff, SideSummary, BAND_CONTEXT, BAND_FAILURE_LAYER,
        BAND_OTHER_LOSS, BAND_OTHER_LOSS_SPAN,
    },
    input::NodeInput,
    signals::{layer_named, loss_signals},
    view::DocumentView,
};
use crate::judge::layers::Layer;

/// The busiest CPU's NET_RX share of the window.
fn hottest_net_rx(view: &DocumentView) -> Option<(u32, f64)> {
    view.observations
        .softirq
        .iter()
        .filter_map(|c| {
            c.vectors
                .iter()
                .find(|v| v.vector == "NET_RX")
                .map(|v| (c.cpu, v.share_of_window))
        })
        .max_by(|x, y| x.1.total_cmp(&y.1))
}

/// A share as a percentage; a small share is not shown as 0 %.
fn percent(share: f64) -> String {
    if share > 0.0 && share < 0.01 {
        "< 1 %".to_owned()
    } else {
        format!("{:.0} %", share * 100.0)
    }
}

fn per_second(count: f64, seconds: f64) -> String {
    format!("{:.1}/s", count / seconds)
}

fn value_text(count: u64, seconds: f64) -> String {
    format!("{count} ({})", per_second(count as f64, seconds))
}

/// Compares the affected node with the healthy one. Differences are ranked by a score in 0–1:
///
/// - loss in the affected node's failure layer (drops by reason, counters, rules matched):
///   0.5–1, by its share of that layer's excess loss;
/// - a configuration the runbook names for the affected root cause (driver version for NIC
///   errors, `somaxconn`/`tcp_rmem` for TCP, irqbalance/RPS for IRQ, rules and policy engines
///   for security drops, routes for routing): 0.45;
/// - loss in any other layer: 0.1–0.4 by its share of all excess loss;
/// - other configuration (kernel, unrelated sysctls): 0.05.
///
/// Loss scores are multiplied by how much of the affected count the healthy node does not share
/// (`(affected − healthy) / affected`, the healthy count scaled to the affected window): what
/// both nodes show explains little and sinks to the bottom; what the healthy node shows more of
/// scores 0.
pub fn compare(affected: &NodeInput, healthy: &NodeInput) -> NodeDiff {
    let (a, h) = (&affected.document, &healthy.document);
    let detailed = affected.detail.is_some() && healthy.detail.is_some();
    let (sa, sh) = (a.seconds(), h.seconds());
    let scale = sa / sh;
    let mut notes = Vec::new();
    if !detailed {
        notes.push(
            "driver versions, each rule and default routes are compared only between two recordings (tracer record); with a report on either side, counters come from the verdict's signals".to_owned(),
        );
    }
    if (sa - sh).abs() > 0.5 {
        notes.push(format!(
            "windows differ ({sa:.0} s and {sh:.0} s): the healthy node's counts are scaled to the affected window when scored"
        ));
    }
    if !a.degraded() && h.degraded() {
        notes.push(format!(
            "{} has no root cause but {} has {} — were the arguments swapped? (AFFECTED comes first)",
            affected.name, healthy.name, h.root_cause
        ));
    }
    let failure_layer = layer_named(&a.failure_layer).filter(|_| a.degraded());

    let sig_a = loss_signals(affected, detailed);
    let sig_h = loss_signals(healthy, detailed);
    // Denominators: the excess loss of the failure layer and of all layers (layer scores take
    // the larger of probes and counters for the same packets, so they do not double count).
    let excess = |name: &str| -> f64 {
        let la = a.layer_scores.get(name).map_or(0, |s| s.lost_packets) as f64;
        let lh = h.layer_scores.get(name).map_or(0, |s| s.lost_packets) as f64 * scale;
        (la - lh).max(0.0)
    };
    let layer_excess = failure_layer.map_or(0.0, |l| excess(l.as_str()));
    let total_excess: f64 = Layer::ALL.iter().map(|l| excess(l.as_str())).sum();

    let mut differences = Vec::new();
    let keys: BTreeSet<&String> = sig_a.keys().chain(sig_h.keys()).collect();
    for key in keys {
        let (sa_sig, sh_sig) = (sig_a.get(key), sig_h.get(key));
        let Some(meta) = sa_sig.or(sh_sig) else {
            continue;
        };
        let ca = sa_sig.map_or(0, |s| s.count);
        let ch = sh_sig.map_or(0, |s| s.count);
        let ca_f = ca as f64;
        let ch_scaled = ch as f64 * scale;
        if ca == 0 && ch == 0 {
            continue;
        }
        let rate_a = ca_f / sa;
        let rate_h = ch as f64 / sh;
        // Equal rates (within 5 %) do not differ.
        if (rate_a - rate_h).abs() <= 0.05 * rate_a.max(rate_h) {
            continue;
        }
        let extra = ca_f - ch_scaled;
        let (score, why) = if extra <= 0.0 {
            (
                0.0,
                "the healthy node shows as much or more: it does not explain the affected node"
                    .to_owned(),
            )
        } else {
            let contrast = extra / ca_f;
            let shared = if ch > 0 {
                format!(
                    "; the healthy node shows {:.0} % of it",
                    100.0 * ch_scaled / ca_f
                )
            } else {
                String::new()
            };
            match meta.layer {
                Some(layer) if Some(layer) == failure_layer => {
                    let share = (extra / layer_excess.max(extra)).min(1.0);
                    (
                        (BAND_FAILURE_LAYER + 0.5 * share) * contrast,
                        format!(
                            "loss in the affected node's failure layer ({}): {} of its excess{shared}",
                            layer.as_str(),
                            percent(share)
                        ),
                    )
                }
                Some(layer) => {
                    let share = (extra / total_excess.max(extra)).min(1.0);
                    (
                        (BAND_OTHER_LOSS + BAND_OTHER_LOSS_SPAN * share) * contrast,
                        format!(
                            "loss in layer {} (not the failure layer): {} of all excess loss{shared}",
                            layer.as_str(),
                            percent(share)
                        ),
                    )
                }
                None => (
                    BAND_CONTEXT * contrast,
                    "drops the verdict does not count as loss (noise, no listener, other)"
                        .to_owned(),
                ),
            }
        };
        differences.push(Difference {
            kind: meta.kind,
            subject: meta.subject.clone(),
            layer: meta.layer,
            affected: value_text(ca, sa),
            healthy: value_text(ch, sh),
            score,
            why,
        });
    }

    // NET_RX concentration: IRQ/CPU evidence even without loss.
    if let (Some((cpu_a, share_a)), Some((cpu_h, share_h))) = (hottest_net_rx(a), hottest_net_rx(h))
    {
        if share_a - share_h >= 0.1 || share_h - share_a >= 0.1 {
            let contrast = ((share_a - share_h) / share_a.max(f64::EPSILON)).max(0.0);
            let in_layer = failure_layer == Some(Layer::IrqCpu);
            let score = if share_a <= share_h {
                0.0
            } else if in_layer {
                (BAND_FAILURE_LAYER + 0.5 * share_a.min(1.0)) * contrast
            } else {
                BAND_OTHER_LOSS * contrast
            };
            differences.push(Difference {
                kind: DiffKind::Softirq,
                subject: "busiest CPU's NET_RX share of the window".to_owned(),
                layer: Some(Layer::IrqCpu),
                affected: format!("CPU {cpu_a}: {:.0} %", share_a * 100.0),
                healthy: format!("CPU {cpu_h}: {:.0} %", share_h * 100.0),
                score,
                why: if in_layer {
                    "softirq saturation is the affected node's failure layer".to_owned()
                } else {
                    "softirq pressure outside the failure layer".to_owned()
                },
            });
        }
    }

    document_config_differences(a, h, detailed, &mut differences);
    if let (Some(da), Some(dh), true) = (&affected.detail, &healthy.detail, detailed) {
        recorded_config_differences(a, da, dh, &mut differences);
    }

    differences.sort_by(|x, y| {
        y.score
            .total_cmp(&x.score)
            .then(x.kind.cmp(&y.kind))
            .then(x.subject.cmp(&y.subject))
    });
    if a.degraded() && !differences.iter().any(|d| d.score >= BAND_FAILURE_LAYER) {
        notes.push(format!(
            "no loss in {}'s failure layer ({}) that {} lacks: the healthy node shows the same problem — compare more nodes (tracer cluster) before blaming this one",
            affected.name, a.failure_layer, healthy.name
        ));
    }
    NodeDiff {
        affected: side(affected),
        healthy: side(healthy),
        differences,
        notes,
    }
}

fn side(input: &NodeInput) -> SideSummary {
    let d = &input.document;
    SideSummary {
        name: input.name.clone(),
        input: if input.detail.is_some() {
            "recording"
        } else {
            "report"
        }
        .to_owned(),
        root_cause: d.root_cause.clone(),
        failure_layer: d.failure_layer.clone(),
        severity: d.severity.clone(),
        confidence: d.confidence,
        window_s: d.observations.window.duration_s,
        lost_packets: d.lost_packets(),
        kernel: d.observations.kernel.clone(),
    }
}
