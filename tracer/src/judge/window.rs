//! A window judged from frames: a frame is one instant's copy of the probe maps and the node's
//! counters. Live windows, rolling dashboard windows and replayed recordings all go through
//! [`judge`], so the same frames always give the same verdict. Pure: no kernel, no clock.
//!
//! What happened between two frames (the counters' breaks, the loss per layer) is computed once
//! per pair ([`Step`]) and kept by the window that owns the frames ([`Steps`]): a rolling window
//! judged every second then reads only its newest interval, not every interval again.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};

use crate::{
    judge::document::{VerdictDocument, WindowClock},
    judge::layers::{classify, DropClass, Layer},
    judge::report::{self, reason_label, Report, Symbolize, WindowInfo},
    judge::verdict::{
        break_notes, counter_breaks, counter_loss, counter_signals, decide_with, rfc3339_utc,
        tick_loss_of, SignalsMemo, Tick, WindowEvidence,
    },
    kernel::names::KernelNames,
    kernel::probes::ProbeStatus,
    kernel::snapshot::Snapshot,
    node::evidence::{CounterSample, NodeFacts},
    node::netns::NetnsScope,
    node::shared::Shared,
};

/// One instant: the probe maps and every counter.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// Milliseconds since the tracer's first frame.
    pub at_ms: u64,
    /// Wall-clock time the frame was taken, ms since the UNIX epoch (None: not known, e.g. a
    /// recording made before frames carried it). Read by the caller; the judge reads no clock.
    pub unix_ms: Option<u64>,
    pub snapshot: Snapshot,
    pub counters: CounterSample,
    /// `kernel.bpf_stats_enabled` at that instant.
    pub bpf_stats_enabled: bool,
}

/// What a judged window needs besides its frames: facts about the tracer on its kernel.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TracerMeta {
    pub kernel: String,
    pub tracer_version: String,
    pub startup_ms: f64,
    pub probes: Vec<ProbeStatus>,
    /// Limits of what the tracer could see (no BTF, hidden symbols, tracefs mounted…).
    pub notes: Vec<String>,
    pub names: KernelNames,
    /// The node's name (`NODE_NAME`, else the host name); absent in older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The tracer held a `BPF_ENABLE_STATS` descriptor, so its programs were timed whatever
    /// `kernel.bpf_stats_enabled` said (false in older recordings).
    #[serde(default)]
    pub run_time_stats_held: bool,
}

/// A judged window.
#[derive(Debug, Clone)]
pub struct Judged {
    pub evidence: WindowEvidence,
    pub document: VerdictDocument,
}

/// Attributes drops to layers, remembering each (reason, location) it has seen.
#[derive(Default)]
pub struct Classifier {
    seen: HashMap<(u32, u64), Option<Layer>>,
}

impl Classifier {
    /// Loss per layer among the drops of one interval.
    pub fn layers(
        &mut self,
        delta: &Snapshot,
        names: &KernelNames,
        symbols: &dyn Symbolize,
    ) -> BTreeMap<Layer, u64> {
        let mut out = BTreeMap::new();
        for (key, count) in &delta.drops {
            let layer = *self
                .seen
                .entry((key.reason, key.location))
                .or_insert_with(|| {
                    let (reason, _) = reason_label(key.reason, names);
                    match classify(&reason, &symbols.label(key.location)) {
                        DropClass::Loss { layer, .. } => Some(layer),
                        _ => None,
                    }
                });
            if let Some(layer) = layer {
                *out.entry(layer).or_insert(0) += count;
            }
        }
        out
    }
}

fn scoped_counters(sample: &CounterSample, scope: Option<&NetnsScope>) -> CounterSample {
    match scope {
        Some(s) => sample.clone().scoped(s.inode),
        None => sample.clone(),
    }
}

/// One interval of a window (two frames, narrowed to the scope): the breaks of its counters'
/// continuity and its loss per layer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// [`counter_breaks`] of the interval.
    pub breaks: Vec<(u8, String)>,
    /// The interval's loss by layer, `at_ms` the later frame's.
    pub tick: Tick,
}

impl Step {
    fn between(
        previous: &Frame,
        current: &Frame,
        judging: &Judging<'_>,
        classifier: &mut Classifier,
    ) -> Self {
        let (breaks, signals) = match judging.scope {
            None => (
                counter_breaks(&previous.counters, &current.counters),
                counter_signals(&previous.counters, &current.counters),
            ),
            Some(_) => {
                let before = scoped_counters(&previous.counters, judging.scope);
                let after = scoped_counters(&current.counters, judging.scope);
                (
                    counter_breaks(&before, &after),
                    counter_signals(&before, &after),
                )
            }
        };
        let mut delta = current.snapshot.since(&previous.snapshot);
        if let Some(s) = judging.scope {
            delta = delta.only_netns(s.inode);
        }
        let probe = classifier.layers(&delta, &judging.meta.names, judging.symbols);
        let retrans: u64 = delta
            .flows
            .values()
            .map(|f| f.retransmitted_segments + f.synack_retransmits)
            .sum();
        let counters = counter_loss(&signals);
        Step {
            breaks,
            tick: tick_loss_of(
                current.at_ms,
                &probe,
                &counters,
                signals.dsack_segs,
                retrans,
            ),
        }
    }
}

/// What a step is judged with besides its frames.
struct Judging<'a> {
    meta: &'a TracerMeta,
    symbols: &'a dyn Symbolize,
    scope: Option<&'a NetnsScope>,
}

/// The two frames' `at_ms` and the scope's namespace.
type StepKey = (u64, u64, Option<u32>);

#[derive(Default)]
struct Memo {
    steps: HashMap<StepKey, Arc<Step>>,
    classifier: Classifier,
}

/// Steps computed already, by their frames' `at_ms` and the scope, for one tracer (its
/// kernel's names and symbols: a `Steps` is never shared between tracers). Owned by whoever
/// owns the frames, which must [`Steps::forget`] a frame it replaces by another with the same
/// `at_ms`, and may [`Steps::retain`] only the frames it keeps. An empty `Steps` computes
/// every step (a recording replayed once).
#[derive(Default)]
pub struct Steps {
    memo: Mutex<Memo>,
    /// Each namespace's counter signals between the window's ends, reused while both
    /// readings stay the same (most namespaces of a rolling window, most seconds).
    ends: SignalsMemo,
}

impl std::fmt::Debug for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Steps({} kept)", self.len())
    }
}

impl Steps {
    /// The step from `previous` to `current`, computed once.
    fn step(&self, previous: &Frame, current: &Frame, judging: &Judging<'_>) -> Arc<Step> {
        let key = (
            previous.at_ms,
            current.at_ms,
            judging.scope.map(|s| s.inode),
        );
        let Ok(mut memo) = self.memo.lock() else {
            let step = Step::between(previous, current, judging, &mut Classifier::default());
            return Arc::new(step);
        };
        if let Some(step) = memo.steps.get(&key) {
            return step.clone();
        }
        let step = Arc::new(Step::between(
            previous,
            current,
            judging,
            &mut memo.classifier,
        ));
        memo.steps.insert(key, step.clone());
        step
    }

    /// Forgets the steps to and from the frame taken at `at_ms`.
    pub fn forget(&self, at_ms: u64) {
        self.retain(|at| at != at_ms);
    }

    /// Keeps only the steps both of whose frames `keep` says are kept.
    pub fn retain(&self, keep: impl Fn(u64) -> bool) {
        if let Ok(mut memo) = self.memo.lock() {
            memo.steps.retain(|(a, b, _), _| keep(*a) && keep(*b));
        }
    }

    /// Number of steps kept.
    pub fn len(&self) -> usize {
        self.memo.lock().map_or(0, |m| m.steps.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The loss of the interval between two frames.
pub fn tick(
    previous: &Frame,
    current: &Frame,
    meta: &TracerMeta,
    symbols: &dyn Symbolize,
    scope: Option<&NetnsScope>,
    classifier: &mut Classifier,
) -> Tick {
    let judging = Judging {
        meta,
        symbols,
        scope,
    };
    Step::between(previous, current, &judging, classifier).tick
}

/// The loss of every interval of a window, each tick's `at_ms` counted from the window's first
/// frame (a rolling window's first frame is not the tracer's): the timeline's `at_s` and its
/// UTC `at` are offsets from the window's start.
pub fn window_ticks(
    frames: &[Frame],
    meta: &TracerMeta,
    symbols: &dyn Symbolize,
    scope: Option<&NetnsScope>,
) -> Vec<Tick> {
    let judging = Judging {
        meta,
        symbols,
        scope,
    };
    ticks_of(frames, &window_steps(frames, &Steps::default(), &judging))
}

/// The step of every interval of a window, from `steps` where computed already.
fn window_steps(frames: &[Frame], steps: &Steps, judging: &Judging<'_>) -> Vec<Arc<Step>> {
    frames
        .windows(2)
        .map(|pair| steps.step(&pair[0], &pair[1], judging))
        .collect()
}

/// Each interval's tick (`steps[i]`: frames `i` to `i + 1`), `at_ms` from the first frame.
fn ticks_of(frames: &[Frame], steps: &[Arc<Step>]) -> Vec<Tick> {
    let first_ms = frames.first().map_or(0, |f| f.at_ms);
    steps
        .iter()
        .map(|step| {
            let mut t = step.tick.clone();
            t.at_ms = t.at_ms.saturating_sub(first_ms);
            t
        })
        .collect()
}

/// The probes' evidence between the first and the last frame.
pub fn observations(
    frames: &[Frame],
    meta: &TracerMeta,
    symbols: &dyn Symbolize,
    scope: Option<&NetnsScope>,
    extra_notes: &[String],
) -> Report {
    let (Some(first), Some(last)) = (frames.first(), frames.last()) else {
        return report::build(
            &Snapshot::default(),
            &meta.names,
            symbols,
            meta.probes.clone(),
            WindowInfo {
                duration_s: 0.0,
                startup_ms: meta.startup_ms,
                netns: scope.cloned(),
            },
            meta.kernel.clone(),
            meta.notes.clone(),
        );
    };
    let mut delta = last.snapshot.since(&first.snapshot);
    if let Some(s) = scope {
        delta = delta.only_netns(s.inode);
    }
    let mut notes = meta.notes.clone();
    notes.extend_from_slice(extra_notes);
    let mut report = report::build(
        &delta,
        &meta.names,
        symbols,
        meta.probes.clone(),
        WindowInfo {
            duration_s: last.at_ms.saturating_sub(first.at_ms) as f64 / 1000.0,
            startup_ms: meta.startup_ms,
            netns: scope.cloned(),
        },
        meta.kernel.clone(),
        notes,
    );
    report.tracer_cost.bpf_stats_enabled = last.bpf_stats_enabled;
    report.tracer_cost.run_time_stats_held = meta.run_time_stats_held;
    report
}

/// Judges the window from its first to its last frame (at least two frames give a verdict on
/// something; fewer give an empty window).
#[allow(clippy::too_many_arguments)]
pub fn judge(
    frames: &[Frame],
    meta: &TracerMeta,
    symbols: &dyn Symbolize,
    scope: Option<&NetnsScope>,
    facts_start: &NodeFacts,
    facts_end: &NodeFacts,
    extra_notes: &[String],
) -> Judged {
    let steps = Steps::default();
    judge_with_steps(
        frames,
        &steps,
        meta,
        symbols,
        scope,
        (
            &Shared::new(facts_start.clone()),
            &Shared::new(facts_end.clone()),
        ),
        extra_notes,
    )
}

/// [`judge`] with the counter steps computed already kept in `steps` (and the new ones added):
/// the same verdict, computed once per interval. The facts are shared with the evidence, not
/// copied (unless narrowed to a scope).
pub fn judge_with_steps(
    frames: &[Frame],
    steps: &Steps,
    meta: &TracerMeta,
    symbols: &dyn Symbolize,
    scope: Option<&NetnsScope>,
    (facts_start, facts_end): (&Shared<NodeFacts>, &Shared<NodeFacts>),
    extra_notes: &[String],
) -> Judged {
    let judging = Judging {
        meta,
        symbols,
        scope,
    };
    let ends = &steps.ends;
    let steps = window_steps(frames, steps, &judging);
    // Counters that went back, wrapped or jumped, and interfaces or namespaces that came or
    // went, are said in the notes rather than read silently as 0.
    let mut notes = extra_notes.to_vec();
    notes.extend(break_notes(steps.iter().map(|s| s.breaks.as_slice())));
    let mut observed = observations(frames, meta, symbols, scope, &notes);
    // Pods seen at either end of the window name the namespaces (a pod gone by the end still
    // names its drops).
    let pods = facts_start.pods.merged(&facts_end.pods);
    observed.label_pods(|inode| pods.label_of(inode));
    // So do the `ip netns` names (the newer name of a renamed namespace wins): looked up in
    // both, not merged into a copy of every name.
    observed.label_netns(|inode| {
        facts_end
            .netns_names
            .get(&inode)
            .or_else(|| facts_start.netns_names.get(&inode))
            .cloned()
    });
    let ticks = ticks_of(frames, &steps);
    let counters_start = frames
        .first()
        .map(|f| scoped_counters(&f.counters, scope))
        .unwrap_or_default();
    let counters_end = frames
        .last()
        .map(|f| scoped_counters(&f.counters, scope))
        .unwrap_or_default();
    let (facts_start, facts_end) = match scope {
        Some(s) => (
            Shared::new(NodeFacts::clone(facts_start).scoped(s.inode)),
            Shared::new(NodeFacts::clone(facts_end).scoped(s.inode)),
        ),
        None => (facts_start.clone(), facts_end.clone()),
    };
    let mut collection_errors: Vec<String> = frames
        .iter()
        .flat_map(|f| f.counters.errors.iter().cloned())
        .collect();
    collection_errors.sort();
    collection_errors.dedup();
    let evidence = WindowEvidence {
        observed: observed.clone(),
        counters_start,
        counters_end,
        facts_start,
        facts_end: facts_end.clone(),
        ticks,
        started_unix_ms: frames.first().and_then(|f| f.unix_ms),
    };
    let verdict = decide_with(&evidence, Some(ends));
    let duration_s = observed.window.duration_s;
    let mut document = VerdictDocument::new(verdict, observed, &facts_end, collection_errors);
    document.window = WindowClock {
        node_name: meta.node_name.clone(),
        start: frames.first().and_then(|f| f.unix_ms).map(rfc3339_utc),
        end: frames.last().and_then(|f| f.unix_ms).map(rfc3339_utc),
        duration_s,
    };
    Judged { evidence, document }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z.
    const NEW_YEAR_MS: u64 = 1_767_225_600_000;

    fn frames(unix: bool) -> Vec<Frame> {
        [0u64, 1000, 15_000]
            .iter()
            .map(|at| Frame {
                at_ms: *at,
                unix_ms: unix.then_some(NEW_YEAR_MS + at),
                ..Frame::default()
            })
            .collect()
    }

    fn document(frames: &[Frame], node: Option<&str>) -> serde_json::Value {
        let meta = TracerMeta {
            node_name: node.map(str::to_owned),
            ..TracerMeta::default()
        };
        let symbols: BTreeMap<u64, String> = BTreeMap::new();
        let facts = NodeFacts::default();
        let judged = judge(frames, &meta, &symbols, None, &facts, &facts, &[]);
        serde_json::to_value(&judged.document).expect("json")
    }

    #[test]
    fn documents_carry_the_node_and_the_windows_wall_clock_in_utc() {
        let doc = document(&frames(true), Some("ip-10-0-1-5.ec2.internal"));
        let w = &doc["window"];
        assert_eq!(w["node_name"], "ip-10-0-1-5.ec2.internal");
        assert_eq!(w["start"], "2026-01-01T00:00:00.000Z");
        assert_eq!(w["end"], "2026-01-01T00:00:15.000Z");
        assert_eq!(w["duration_s"], 15.0);
        let timeline = doc["timeline"].as_array().expect("timeline");
        assert_eq!(timeline[0]["at_s"], 0.0);
        assert_eq!(timeline[0]["at"], "2026-01-01T00:00:00.000Z");
        let end = timeline.last().expect("end");
        assert_eq!(
            (end["at_s"].as_f64(), end["at"].as_str()),
            (Some(15.0), Some("2026-01-01T00:00:15.000Z"))
        );
        // After the runbook's keys, before the other extras.
        let meta = TracerMeta {
            kernel: "6.18".to_owned(),
            node_name: Some("node-a".to_owned()),
            ..TracerMeta::default()
        };
        let symbols: BTreeMap<u64, String> = BTreeMap::new();
        let facts = NodeFacts::default();
        let judged = judge(&frames(true), &meta, &symbols, None, &facts, &facts, &[]);
        assert!(judged.document.text().starts_with(
            "tracer: 15 s watched on node node-a, kernel 6.18, 2026-01-01T00:00:00.000Z → 2026-01-01T00:00:15.000Z\n"
        ), "{}", judged.document.text());
        let text = serde_json::to_string(&judged.document).expect("json");
        let at = |key: &str| text.find(&format!("\"{key}\":")).expect(key);
        assert!(at("cross_reference") < at("window") && at("window") < at("other_findings"));
        assert!(at("other_findings") < at("escalation"));
    }

    #[test]
    fn a_rolling_windows_ticks_count_from_its_own_first_frame() {
        // A window judged 100 s into the tracer's life: its ticks start at 0, not at 100 s, so
        // the onset's wall-clock time is the window's start plus the tick's offset.
        let late: Vec<Frame> = frames(true)
            .into_iter()
            .map(|mut f| {
                f.at_ms += 100_000;
                f
            })
            .collect();
        let meta = TracerMeta::default();
        let symbols: BTreeMap<u64, String> = BTreeMap::new();
        let mut classifier = Classifier::default();
        let first = tick(&late[0], &late[1], &meta, &symbols, None, &mut classifier);
        assert_eq!(first.at_ms, 101_000, "tick() itself keeps the frame's time");
        let ticks = window_ticks(&late, &meta, &symbols, None);
        assert_eq!(
            ticks.iter().map(|t| t.at_ms).collect::<Vec<_>>(),
            [1000, 15_000]
        );
    }

    #[test]
    fn frames_without_a_wall_clock_say_nothing_invented() {
        let doc = document(&frames(false), None);
        assert!(doc["window"]["node_name"].is_null());
        assert!(doc["window"]["start"].is_null() && doc["window"]["end"].is_null());
        assert!(
            doc["timeline"][0].get("at").is_none(),
            "{}",
            doc["timeline"]
        );
    }

    /// A window on a listener (198.18.0.1:8080 in namespace 7, `ip netns` name `blue7` at the
    /// window's end) that resets and retransmits to 30 clients on ephemeral ports and drops 5
    /// packets: the fixture of the names tests here, in the dashboard and in the TUI.
    pub(crate) fn named_listener_judged() -> Judged {
        use tracer_common::{DropKey, FlowKey, FlowStats, ResetKey, FAMILY_INET, RESET_SENT};
        let v4 = |a: [u8; 4]| [u32::from_ne_bytes(a), 0, 0, 0];
        let mut end = Snapshot {
            has_flow_maps: true,
            ..Snapshot::default()
        };
        for i in 0..30u16 {
            let flow = FlowKey {
                netns: 7,
                family: FAMILY_INET,
                sport: 8080,
                dport: 40_000 + i,
                _pad: 0,
                saddr: v4([198, 18, 0, 1]),
                daddr: v4([198, 18, 0, 2]),
            };
            end.flows.insert(
                flow,
                FlowStats {
                    retransmits: 1,
                    retransmitted_segments: 2,
                    ..Default::default()
                },
            );
            end.resets.insert(
                ResetKey {
                    flow,
                    reason: 1,
                    direction: RESET_SENT,
                },
                1,
            );
        }
        end.drops.insert(
            DropKey {
                reason: 2,
                netns: 7,
                location: 0xffff_ffff_8100_0000,
            },
            5,
        );
        let frames = vec![
            Frame {
                at_ms: 0,
                snapshot: Snapshot {
                    has_flow_maps: true,
                    ..Snapshot::default()
                },
                ..Frame::default()
            },
            Frame {
                at_ms: 2000,
                snapshot: end,
                ..Frame::default()
            },
        ];
        let meta = TracerMeta {
            names: KernelNames {
                drop_reasons: [(2, "NO_SOCKET".to_owned())].into_iter().collect(),
                reset_reasons: [(1, "NO_SOCKET".to_owned())].into_iter().collect(),
                ephemeral_ports: tracer_common::pack_port_range(32768, 60999),
                ..KernelNames::default()
            },
            ..TracerMeta::default()
        };
        let symbols: BTreeMap<u64, String> = BTreeMap::new();
        let end_facts = NodeFacts {
            netns_names: [(7, "blue7".to_owned())].into_iter().collect(),
            ..NodeFacts::default()
        };
        judge(
            &frames,
            &meta,
            &symbols,
            None,
            &NodeFacts::default(),
            &end_facts,
            &[],
        )
    }

    /// Issue 19: a judged window names its namespaces by the facts' `ip netns` names beside
    /// the inode (so serve's /report, recordings' replays and the dashboard do), and its flows
    /// section folds a listener's clients into one row per listening port.
    #[test]
    fn judged_windows_name_namespaces_and_fold_a_listeners_clients() {
        let judged = named_listener_judged();
        let doc = serde_json::to_value(&judged.document).expect("json");
        let o = &doc["observations"];
        let drop_ns = &o["drops"]["by_reason"][0]["netns"][0];
        assert_eq!(
            (&drop_ns["inode"], &drop_ns["netns_name"]),
            (&7.into(), &"blue7".into())
        );
        let flow = &o["retransmits"]["flows"][0];
        assert_eq!(
            (&flow["netns"], &flow["netns_name"]),
            (&7.into(), &"blue7".into())
        );
        let dests = o["flows"]["destinations"].as_array().expect("destinations");
        assert_eq!(dests.len(), 1, "{dests:#?}");
        assert_eq!(
            (
                &dests[0]["daddr"],
                &dests[0]["dport"],
                &dests[0]["netns_name"]
            ),
            (&"198.18.0.1".into(), &8080.into(), &"blue7".into())
        );
        assert_eq!(dests[0]["resets_sent"], 30);
        let resets = o["flows"]["resets"].as_array().expect("resets");
        assert_eq!(resets.len(), 1, "{resets:#?}");
        assert_eq!(
            (
                &resets[0]["sport"],
                &resets[0]["count"],
                &resets[0]["netns_name"]
            ),
            (&8080.into(), &30.into(), &"blue7".into())
        );
        assert!(
            judged.document.text().contains("netns blue7"),
            "{}",
            judged.document.text()
        );
        // Without names in the facts (a recording made before they were read), none invented.
        let bare = judge(
            &[Frame::default(), Frame::default()],
            &TracerMeta::default(),
            &BTreeMap::<u64, String>::new(),
            None,
            &NodeFacts::default(),
            &NodeFacts::default(),
            &[],
        );
        assert!(!serde_json::to_string(&bare.document)
            .expect("json")
            .contains("netns_name"));
    }
}
