//! Judging by steps (each interval's counters read once, kept by the window) gives what
//! re-walking every interval of every window gives: constructed frames with carried readings
//! (one allocation shared by several frames), equal re-reads, a namespace that appears and
//! vanishes, an interface that goes and comes back, a counter reset and a 32-bit wrap, judged
//! as a rolling window slides over them. No root.

use std::collections::BTreeMap;

use super::window::*;
use crate::{
    judge::verdict::counter_break_notes,
    node::evidence::{CounterSample, IfaceCounters, NetnsCounters, NodeFacts, SoftnetRow},
    node::netns::NetnsScope,
    node::shared::Shared,
};

const HOST: u32 = 1;
/// Idle: its reading is carried (shared) for three frames, then re-read equal, again and again.
const IDLE: u32 = 7;
/// Busy: listen overflows every second, `Tcp RetransSegs` reset at frame 6.
const BUSY: u32 = 8;
/// Exists from frame 3 to frame 6.
const BRIEF: u32 = 9;
/// Its `veth-a` is gone at frames 5 and 6, back from frame 7 (counting from 0 again).
const FLAPPY: u32 = 10;
const FRAMES: u64 = 14;

fn reading(inode: u32, snmp: &[(&str, &str, i64)], interfaces: &[(&str, u64)]) -> NetnsCounters {
    let mut ns = NetnsCounters {
        inode,
        label: if inode == HOST {
            "host".to_owned()
        } else {
            format!("netns lab{inode}")
        },
        is_host: inode == HOST,
        ..NetnsCounters::default()
    };
    for (group, name, value) in snmp {
        ns.snmp
            .entry((*group).to_owned())
            .or_default()
            .insert(*name, *value);
    }
    for (name, packets) in interfaces {
        let stats = [("rx_packets", *packets), ("rx_dropped", packets / 100)];
        ns.interfaces.insert(
            (*name).to_owned(),
            IfaceCounters {
                stats: stats.into_iter().collect(),
                ..IfaceCounters::default()
            },
        );
    }
    ns
}

fn host(second: u64) -> NetnsCounters {
    // rx_errors wraps past 2^32 between frames 4 and 5.
    let rx_errors = match second {
        0..=4 => u64::from(u32::MAX) - 40 + second * 5,
        _ => second * 3,
    };
    let mut ns = reading(HOST, &[("Tcp", "OutSegs", 1000 * second as i64)], &[]);
    ns.interfaces.insert(
        "eth0".to_owned(),
        IfaceCounters {
            stats: [("rx_errors", rx_errors), ("rx_packets", 5000 * second)]
                .into_iter()
                .collect(),
            ..IfaceCounters::default()
        },
    );
    ns
}

fn busy(second: u64) -> NetnsCounters {
    let s = second as i64;
    let retrans = if second < 6 { 900 + 7 * s } else { s };
    reading(
        BUSY,
        &[
            ("TcpExt", "ListenOverflows", 25 * s),
            ("TcpExt", "ListenDrops", 25 * s),
            ("Tcp", "RetransSegs", retrans),
            ("Tcp", "OutSegs", 4000 * s),
        ],
        &[("eth0", 100 * second)],
    )
}

fn flappy(second: u64) -> NetnsCounters {
    let mut ifaces = vec![("lo", 10)];
    match second {
        5 | 6 => {}
        7.. => ifaces.push(("veth-a", 3 * (second - 7))),
        _ => ifaces.push(("veth-a", 50 + 30 * second)),
    }
    reading(
        FLAPPY,
        &[("Ip", "InAddrErrors", 2 * second as i64)],
        &ifaces,
    )
}

/// The frames, with the idle namespace's reading shared as the live schedule shares it.
fn frames() -> Vec<Frame> {
    let mut idle = Shared::new(reading(IDLE, &[("Tcp", "OutSegs", 12)], &[("eth0", 40)]));
    (0..FRAMES)
        .map(|second| {
            if second % 4 == 3 {
                // Re-read: equal values in a new allocation.
                idle = Shared::new((*idle).clone());
            }
            let mut netns = vec![host(second).into(), idle.clone(), busy(second).into()];
            if (3..=6).contains(&second) {
                netns.push(reading(BRIEF, &[("Tcp", "OutSegs", 7)], &[("eth0", 1)]).into());
            }
            netns.push(flappy(second).into());
            Frame {
                at_ms: second * 1000,
                counters: CounterSample {
                    at_ms: second * 1000,
                    netns,
                    softnet: vec![SoftnetRow {
                        cpu: 0,
                        dropped: second,
                        ..SoftnetRow::default()
                    }],
                    ..CounterSample::default()
                },
                ..Frame::default()
            }
        })
        .collect()
}

/// The same frames with no reading shared: every namespace of every frame its own copy.
fn unshared(frames: &[Frame]) -> Vec<Frame> {
    frames
        .iter()
        .map(|f| {
            let mut f = f.clone();
            for ns in &mut f.counters.netns {
                *ns = Shared::new((**ns).clone());
            }
            f
        })
        .collect()
}

fn scope(inode: u32) -> NetnsScope {
    NetnsScope {
        path: format!("/run/netns/lab{inode}"),
        inode,
        pod: None,
    }
}

fn judged(frames: &[Frame], steps: Option<&Steps>, scope: Option<&NetnsScope>) -> Judged {
    let symbols: BTreeMap<u64, String> = BTreeMap::new();
    let facts = NodeFacts::default();
    let meta = TracerMeta::default();
    match steps {
        Some(steps) => {
            let shared = crate::node::shared::Shared::new(facts);
            judge_with_steps(
                frames,
                steps,
                &meta,
                &symbols,
                scope,
                (&shared, &shared),
                &[],
            )
        }
        None => judge(frames, &meta, &symbols, scope, &facts, &facts, &[]),
    }
}

fn json(j: &Judged) -> serde_json::Value {
    serde_json::to_value(&j.document).expect("json")
}

/// A rolling window of 6 frames slides over the 14, judged at every step with the steps kept
/// (as `Watch` keeps them; one `Steps` for every scope, as `tracer mcp` asks for a pod's window
/// beside the node's), and judged afresh on unshared copies: the same document, notes and
/// ticks every time. Only the newest interval is computed at each slide.
#[test]
fn judging_by_steps_equals_the_full_rewalk() {
    let shared = frames();
    let copies = unshared(&shared);
    let scopes = [None, Some(scope(BUSY)), Some(scope(FLAPPY))];
    let steps = Steps::default();
    for end in 2..=shared.len() {
        let start = end.saturating_sub(6);
        let window = &shared[start..end];
        steps.retain(|at| window.iter().any(|f| f.at_ms == at));
        for scope in &scopes {
            let kept_before = steps.len();
            let by_steps = judged(window, Some(&steps), scope.as_ref());
            assert_eq!(
                steps.len() - kept_before,
                1,
                "one new interval at frame {end}"
            );
            let rewalk = judged(&copies[start..end], None, scope.as_ref());
            assert_eq!(
                json(&by_steps),
                json(&rewalk),
                "scope {scope:?}, frame {end}"
            );
            assert_eq!(by_steps.evidence.ticks, rewalk.evidence.ticks);
            // The breaks are those of the pair-by-pair walk of the old notes.
            let samples: Vec<CounterSample> = copies[start..end]
                .iter()
                .map(|f| match scope {
                    Some(s) => f.counters.clone().scoped(s.inode),
                    None => f.counters.clone(),
                })
                .collect();
            let notes = counter_break_notes(&samples);
            assert_eq!(by_steps.document.observations.notes, notes);
        }
    }
}

/// The whole run judged at once shows every kind of break and the busy namespace's loss, so
/// the test above compared windows where something happened.
#[test]
fn the_constructed_frames_break_every_way() {
    let all = frames();
    let j = judged(&all, Some(&Steps::default()), None);
    let notes = j.document.observations.notes.join("\n");
    for said in [
        "rx_errors 4294967275 → 15 (+36) read as a 32-bit counter wrapping",
        "Tcp:RetransSegs 935 → 6 went back",
        "network namespace netns lab9 (9) appeared",
        "network namespace netns lab9 (9) vanished",
        "interface veth-a of netns lab10 vanished",
        "interface veth-a of netns lab10 appeared",
    ] {
        assert!(notes.contains(said), "{said:?} not in\n{notes}");
    }
    assert!(
        !notes.contains("lab7"),
        "the idle namespace broke nothing:\n{notes}"
    );
    // 25 listen overflows a second in the busy namespace, 13 seconds.
    let listen: u64 = j
        .evidence
        .ticks
        .iter()
        .map(|t| t.loss[&crate::judge::layers::Layer::TcpStack])
        .sum();
    assert_eq!(listen, 25 * 13);
}

/// A frame replaced by another taken at the same `at_ms` (a window's end read again) is
/// judged on its new counters once its steps are forgotten.
#[test]
fn a_replaced_frame_is_judged_anew_once_forgotten() {
    let mut window = frames()[..5].to_vec();
    let steps = Steps::default();
    let before = judged(&window, Some(&steps), None);
    if let Some(last) = window.last_mut() {
        last.counters.netns[2] = busy(40).into();
    }
    steps.forget(4000);
    let after = judged(&window, Some(&steps), None);
    assert_eq!(json(&after), json(&judged(&window, None, None)));
    assert_ne!(
        before.evidence.ticks.last(),
        after.evidence.ticks.last(),
        "the new counters were read"
    );
}
