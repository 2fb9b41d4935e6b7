//! `decide`: builds the window's context, runs every rule, ranks the findings and assembles the
//! `Verdict` (evidence, timeline, confidence). It knows no layer's signals or texts: those are
//! the rules'.

use std::collections::BTreeMap;

use crate::{judge::layers::Layer, kernel::probes::ProbeState};

use super::{
    context::Context,
    counters::SignalsMemo,
    rfc3339_utc,
    rules::{Finding, RULES},
    EvidenceItem, LayerScore, Mitigation, OtherFinding, Tick, TimelineEntry, Verdict,
    WindowEvidence, MIN_LOSS, UNATTRIBUTED, UNKNOWN_LAYER,
};

/// Decides the verdict.
pub fn decide(w: &WindowEvidence) -> Verdict {
    decide_with(w, None)
}

/// [`decide`], reusing the counter signals `memo` kept of namespaces whose readings at the
/// window's ends did not change since it last saw them (see [`SignalsMemo`]): the same verdict.
pub fn decide_with(w: &WindowEvidence, memo: Option<&SignalsMemo>) -> Verdict {
    let ctx = Context::new_with(w, memo);
    let mut findings: Vec<Finding> = Vec::with_capacity(RULES.len());
    for rule in RULES {
        let finding = rule(&ctx, &findings);
        findings.push(finding);
    }
    let layer_scores: BTreeMap<Layer, LayerScore> = findings
        .iter()
        .filter_map(|f| f.layer.map(|l| (l, f.score.clone())))
        .collect();
    let decided = root_cause(&findings);
    // Drops no layer takes: the root cause when no layer lost enough, else a finding beside it.
    let unattributed = findings
        .iter()
        .find(|f| f.unattributed && f.score.lost_packets >= MIN_LOSS);
    let chosen = match decided {
        Some(l) => findings.iter().find(|f| f.layer == Some(l)),
        None => unattributed,
    };
    let unattributed_aside = unattributed.filter(|_| decided.is_some());
    let seconds = ctx.seconds;

    // Every other layer that lost enough is a finding of its own: its evidence goes with it,
    // not under the root cause.
    let mut secondary: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.layer.is_some_and(|l| Some(l) != decided) && f.score.lost_packets >= MIN_LOSS)
        .collect();
    secondary.sort_by_key(|f| std::cmp::Reverse(f.score.lost_packets));
    let is_secondary =
        |layer: Option<Layer>| layer.is_some() && secondary.iter().any(|s| s.layer == layer);
    let failures: Vec<(Option<Layer>, &str)> = ctx
        .flows
        .failures
        .iter()
        .map(|f| (ctx.failure_layer(f), f.text.as_str()))
        .collect();

    let mut evidence = Vec::new();
    if let Some(f) = chosen {
        evidence.extend(headline(f, seconds));
    }
    let mut escalation = Vec::new();
    for f in &findings {
        if !is_secondary(f.layer) {
            evidence.extend(f.evidence.iter().cloned());
        }
        escalation.extend(f.escalation.iter().cloned());
        if chosen.is_some_and(|c| std::ptr::eq(c, f)) {
            evidence.extend(f.if_root_cause.evidence.iter().cloned());
            escalation.extend(f.if_root_cause.escalation.iter().cloned());
        }
    }
    // Failed connects the root cause's layer explains, or no layer does.
    evidence.extend(
        failures
            .iter()
            .filter(|(layer, _)| !is_secondary(*layer))
            .take(3)
            .map(|(_, text)| probe_item(text)),
    );
    let mut other_findings: Vec<OtherFinding> = secondary
        .iter()
        .map(|f| {
            let layer = f.layer.unwrap_or(Layer::Upstream);
            let mut evidence: Vec<EvidenceItem> = f
                .score
                .signals
                .iter()
                .take(4)
                .map(|s| signal_item(s))
                .collect();
            evidence.extend(f.evidence.iter().cloned());
            evidence.extend(
                failures
                    .iter()
                    .filter(|(l, _)| *l == f.layer)
                    .take(3)
                    .map(|(_, text)| probe_item(text)),
            );
            OtherFinding {
                root_cause: layer.root_cause().to_owned(),
                failure_layer: Some(layer),
                lost_packets: f.score.lost_packets,
                summary: f.summary.clone(),
                evidence,
            }
        })
        .collect();
    if let Some(f) = unattributed_aside {
        let mut evidence: Vec<EvidenceItem> = f
            .score
            .signals
            .iter()
            .take(4)
            .map(|s| signal_item(s))
            .collect();
        evidence.extend(f.if_root_cause.evidence.iter().cloned());
        other_findings.push(OtherFinding {
            root_cause: UNATTRIBUTED.to_owned(),
            failure_layer: None,
            lost_packets: f.score.lost_packets,
            summary: f.summary.clone(),
            evidence,
        });
        other_findings.sort_by_key(|o| std::cmp::Reverse(o.lost_packets));
    }
    let timeline = timeline(w, decided, seconds, &mut evidence);

    let unplaced = unattributed.map_or(0, |f| f.score.lost_packets);
    let total_score: u64 = layer_scores.values().map(|s| s.lost_packets).sum::<u64>() + unplaced;
    let (severity, confidence) = match decided {
        None if unplaced > 0 => {
            let severity = if unplaced as f64 / seconds >= 1.0 {
                "HIGH"
            } else {
                "MEDIUM"
            };
            (severity.to_owned(), unattributed_confidence(w, unplaced))
        }
        None => ("NONE".to_owned(), if total_score == 0 { 0.9 } else { 0.6 }),
        Some(layer) => {
            let lost = layer_scores[&layer].lost_packets;
            let severity = if lost as f64 / seconds >= 1.0 || !escalation.is_empty() {
                "HIGH"
            } else {
                "MEDIUM"
            };
            (severity.to_owned(), confidence(w, layer, lost, total_score))
        }
    };

    let (root_cause, failure_layer) = match (decided, unplaced > 0) {
        (Some(l), _) => (l.root_cause(), Some(l.as_str().to_owned())),
        (None, true) => (UNATTRIBUTED, Some(UNKNOWN_LAYER.to_owned())),
        (None, false) => ("none", None),
    };
    Verdict {
        root_cause: root_cause.to_owned(),
        failure_layer,
        evidence,
        severity,
        mitigation: Mitigation {
            immediate: chosen.map_or_else(
                || "No action: no packet loss attributable to this node in the window".to_owned(),
                |f| f.if_root_cause.mitigation.clone(),
            ),
            long_term:
                "Monitor NIC errors and TCP retransmissions, tune TCP stack, review NetworkPolicies"
                    .to_owned(),
        },
        cross_reference: findings
            .iter()
            .filter_map(|f| f.cross_reference.clone())
            .collect(),
        ruled_out: findings
            .iter()
            .flat_map(|f| f.ruled_out.iter().cloned())
            .collect(),
        escalation,
        confidence,
        timeline,
        layer_scores,
        noise: ctx.noise,
        other_findings,
    }
}

/// The root cause: the layer that lost the most, if it lost at least [`MIN_LOSS`] (ties: the
/// runbook's first layer); else a layer whose rule decides alone (NET_RX saturation).
fn root_cause(findings: &[Finding]) -> Option<Layer> {
    let best = findings
        .iter()
        .filter_map(|f| f.layer.map(|l| (l, f.score.lost_packets)))
        .filter(|(_, lost)| *lost >= MIN_LOSS)
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(l, _)| l);
    best.or_else(|| {
        findings
            .iter()
            .find(|f| f.decides_alone)
            .and_then(|f| f.layer)
    })
}

/// The root cause's loss and its first six signals.
fn headline(f: &Finding, seconds: f64) -> Vec<EvidenceItem> {
    let content = match f.layer {
        Some(layer) => format!(
            "{} lost {} in {seconds:.0} s on this node",
            layer.title(),
            fmt_rate(f.score.lost_packets, seconds)
        ),
        None if f.unattributed => format!(
            "{} dropped in {seconds:.0} s on this node that no layer of the tracer takes: {}",
            fmt_rate(f.score.lost_packets, seconds),
            f.summary
        ),
        None => return Vec::new(),
    };
    let mut out = vec![EvidenceItem {
        kind: "kernel_probe".to_owned(),
        content,
    }];
    out.extend(f.score.signals.iter().take(6).map(|s| signal_item(s)));
    out
}

/// A layer's signal as evidence: the probes' (drops, retransmits, NET_RX time) or a counter's.
fn signal_item(signal: &str) -> EvidenceItem {
    let probe = signal.contains("drops at")
        || signal.contains("retransmitted")
        || signal.contains("NET_RX");
    EvidenceItem {
        kind: if probe { "kernel_probe" } else { "counters" }.to_owned(),
        content: signal.to_owned(),
    }
}

fn probe_item(text: &str) -> EvidenceItem {
    EvidenceItem {
        kind: "kernel_probe".to_owned(),
        content: text.to_owned(),
    }
}

/// The window's timeline, with the root cause's onset (also said as `correlate` evidence);
/// each entry in UTC too when the window's wall-clock start is known.
fn timeline(
    w: &WindowEvidence,
    decided: Option<Layer>,
    seconds: f64,
    evidence: &mut Vec<EvidenceItem>,
) -> Vec<TimelineEntry> {
    let entry = |at_s: f64, event: String| TimelineEntry {
        at_s,
        at: w
            .started_unix_ms
            .map(|start| rfc3339_utc(start + (at_s * 1000.0).round() as u64)),
        event,
    };
    let mut timeline = vec![entry(
        0.0,
        "window start: probes attached, counters sampled".to_owned(),
    )];
    if let Some(layer) = decided {
        let (event, content) = match onset(&w.ticks, layer) {
            Some((at, base, rate)) => {
                let event = entry(
                    at,
                    format!(
                        "onset: {} loss rose to {rate}/s from a baseline of {base}/s",
                        layer.title()
                    ),
                );
                let when = event
                    .at
                    .as_ref()
                    .map(|t| format!(", at {t}"))
                    .unwrap_or_default();
                let content = format!(
                    "{} loss began {at:.0} s into the window{when} ({base}/s → {rate}/s)",
                    layer.title()
                );
                (event, content)
            }
            None => (
                entry(
                    0.0,
                    format!(
                        "{} loss already present when the window started",
                        layer.title()
                    ),
                ),
                format!(
                    "{} loss present throughout the window (no onset inside it)",
                    layer.title()
                ),
            ),
        };
        timeline.push(event);
        evidence.push(EvidenceItem {
            kind: "correlate".to_owned(),
            content,
        });
    }
    timeline.push(entry(seconds, "window end".to_owned()));
    timeline
}

/// Intervals shorter than this are left out of the onset search: too few packets in them for a
/// rate (the window's last interval is often a few milliseconds).
const ONSET_MIN_INTERVAL_MS: u64 = 500;

/// Onset of a layer's loss: the start of the first interval whose rate rose well above the
/// rate before it, as `(seconds into the window, baseline /s, rate /s)`. None when the loss was
/// already there in the first interval or never rose above the noise: the rates after the
/// onset must average at least twice those before it, the rise must exceed three standard
/// deviations of a Poisson count at the baseline (3·√base per second), and the extra packets
/// since the onset must reach [`MIN_LOSS`]. A steady flood whose seconds differ by a few
/// packets has no onset: it is present throughout the window.
fn onset(ticks: &[Tick], layer: Layer) -> Option<(f64, u64, u64)> {
    // (interval start ms, interval length ms, packets per second), normalised because the
    // intervals are only about a second each.
    let mut rates: Vec<(u64, u64, f64)> = Vec::with_capacity(ticks.len());
    let mut previous = 0u64;
    for t in ticks {
        let len = t.at_ms.saturating_sub(previous);
        if len >= ONSET_MIN_INTERVAL_MS {
            let count = t.loss.get(&layer).copied().unwrap_or(0);
            rates.push((previous, len, count as f64 * 1000.0 / len as f64));
        }
        previous = t.at_ms;
    }
    let base = rates.iter().map(|r| r.2).reduce(f64::min)?;
    let peak = rates.iter().map(|r| r.2).reduce(f64::max)?;
    if peak <= base {
        return None;
    }
    let threshold = base + (peak - base) / 2.0;
    let i = rates.iter().position(|r| r.2 >= threshold)?;
    if i == 0 {
        // At the threshold from the first interval: the rise, if any, came before the window.
        return None;
    }
    let mean = |rs: &[(u64, u64, f64)]| {
        let ms: u64 = rs.iter().map(|r| r.1).sum();
        rs.iter().map(|r| r.2 * r.1 as f64).sum::<f64>() / ms.max(1) as f64
    };
    let (before, after) = (mean(&rates[..i]), mean(&rates[i..]));
    let after_s = rates[i..].iter().map(|r| r.1).sum::<u64>() as f64 / 1000.0;
    let rise = after - before;
    if after < 2.0 * before || rise < 3.0 * before.sqrt() || rise * after_s < MIN_LOSS as f64 {
        return None;
    }
    let (began_ms, _, rate) = rates[i];
    Some((
        began_ms as f64 / 1000.0,
        before.round() as u64,
        rate.round() as u64,
    ))
}

/// Confidence in a root cause: its share of all the loss, times the share of probes attached,
/// scaled by volume; capped (upstream loss is inferred from the absence of local loss: never
/// certain). Two decimals.
fn confidence(w: &WindowEvidence, layer: Layer, lost: u64, total_score: u64) -> f64 {
    let share = if total_score > 0 {
        lost as f64 / total_score as f64
    } else {
        0.5
    };
    let attached = w
        .observed
        .probes
        .iter()
        .filter(|p| p.state == ProbeState::Attached)
        .count() as f64
        / w.observed.probes.len().max(1) as f64;
    let cap = if layer == Layer::Upstream { 0.8 } else { 0.95 };
    let volume = (lost as f64 / (MIN_LOSS as f64 * 5.0)).min(1.0);
    let c = (share * attached * (0.6 + 0.4 * volume)).min(cap);
    (c * 100.0).round() / 100.0
}

/// Confidence in an unattributed loss: the drops are real but their layer is unknown, so never
/// above 0.5; scaled by the probes attached and by volume, like a layer's. Two decimals.
fn unattributed_confidence(w: &WindowEvidence, lost: u64) -> f64 {
    let attached = w
        .observed
        .probes
        .iter()
        .filter(|p| p.state == ProbeState::Attached)
        .count() as f64
        / w.observed.probes.len().max(1) as f64;
    let volume = (lost as f64 / (MIN_LOSS as f64 * 5.0)).min(1.0);
    let c = 0.5 * attached * (0.6 + 0.4 * volume);
    (c * 100.0).round() / 100.0
}

fn fmt_rate(count: u64, seconds: f64) -> String {
    format!(
        "{count} packets ({:.1}/s)",
        count as f64 / seconds.max(0.001)
    )
}
