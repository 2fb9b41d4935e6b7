//! The recording file: a window's evidence (probe maps and counters every second, node facts at
//! both ends, kernel names, the symbols of every drop location seen, probe metadata) in a
//! documented, versioned JSON format, so `--replay` judges it on any machine, without root.
//!
//! Format `tracer-recording`, version 1 (JSON object):
//! `format`, `version`, `recorded_at_unix`, `meta` (kernel, tracer_version, startup_ms, probes,
//! notes, names{drop_reasons, drop_reasons_source, softirq_vectors}, node_name (absent in older
//! files)), `scope` (null or
//! {path, inode, pod?}), `symbols` (address as decimal string → `function+0xoff`), `facts_start`,
//! `facts_end` (node facts; `pods{pods[{uid, namespace?, name?, netns?, host_network,
//! containers[], pid, kubelet_dir}]}` when the node had pods, absent in older files), `frames[]` ({at_ms, unix_ms (wall clock, absent in older files), bpf_stats_enabled, snapshot{drops[{reason,
//! netns, location, count}], flows[{netns, family, sport, dport, saddr[4], daddr[4],
//! retransmits, retransmitted_segments, synack_retransmits, failed_attempts, last_state}],
//! softirq[{cpu, vec, runs, timed_runs (runs whose length was measured; absent in older files,
//! where every run was), total_ns, hist[32]}], counters[], counters_unknown[] (indices of
//! counters not known: a run count the kernel kept that could not be read; optional, absent
//! when none), program_costs[[name, runs, ns]],
//! program_misses{name: recursion misses} (optional, absent in older files),
//! dests[{netns, family, dport, daddr[4], rtt_samples, rtt_sum_us, connects, established, failed,
//! closed, connect_timed, connect_sum_us, rtt_hist[[bucket, count]], connect_hist[…]}],
//! resets[{flow{netns, family, sport, dport, saddr, daddr}, reason, direction, count}],
//! sock_errors[{netns, family, dport, daddr, error, count}], dest_entries, has_flow_maps (these
//! five optional)},
//! counters (a counter sample)}), and `live_verdict` (the document the recording run printed).
//! Readers refuse other formats and newer versions with one sentence.

use std::{collections::BTreeMap, path::Path};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use tracer_common::{
    DestKey, DestStats, DropKey, ErrorKey, FlowKey, FlowStats, ResetKey, SoftirqStats,
    HIST_BUCKETS, LAT_BUCKETS,
};

use crate::{
    judge::window::{Frame, TracerMeta},
    kernel::snapshot::Snapshot,
    node::evidence::{CounterSample, NodeFacts},
    node::netns::NetnsScope,
};

pub const FORMAT: &str = "tracer-recording";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecDrop {
    pub reason: u32,
    pub netns: u32,
    pub location: u64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecFlow {
    pub netns: u32,
    pub family: u16,
    pub sport: u16,
    pub dport: u16,
    pub saddr: [u32; 4],
    pub daddr: [u32; 4],
    pub retransmits: u64,
    pub retransmitted_segments: u64,
    pub synack_retransmits: u64,
    pub failed_attempts: u64,
    pub last_state: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecSoftirq {
    pub cpu: u32,
    pub vec: u32,
    pub runs: u64,
    /// Absent in older files: every run was timed then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timed_runs: Option<u64>,
    pub total_ns: u64,
    pub hist: Vec<u64>,
}

/// One destination's counters; histograms sparse as `[bucket, count]` pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecDest {
    pub netns: u32,
    pub family: u16,
    pub dport: u16,
    pub daddr: [u32; 4],
    pub rtt_samples: u64,
    pub rtt_sum_us: u64,
    pub connects: u64,
    pub established: u64,
    pub failed: u64,
    pub closed: u64,
    pub connect_timed: u64,
    pub connect_sum_us: u64,
    pub rtt_hist: Vec<(u16, u32)>,
    pub connect_hist: Vec<(u16, u32)>,
}

/// Resets of one flow/direction/reason, or one socket error of a destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecReset {
    pub flow: RecFlowKey,
    pub reason: u32,
    pub direction: u32,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecFlowKey {
    pub netns: u32,
    pub family: u16,
    pub sport: u16,
    pub dport: u16,
    pub saddr: [u32; 4],
    pub daddr: [u32; 4],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecSockError {
    pub netns: u32,
    pub family: u16,
    pub dport: u16,
    pub daddr: [u32; 4],
    pub error: u32,
    pub count: u64,
}

fn sparse(hist: &[u32]) -> Vec<(u16, u32)> {
    hist.iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(i, c)| (i as u16, *c))
        .collect()
}

fn dense(pairs: &[(u16, u32)]) -> [u32; LAT_BUCKETS] {
    let mut out = [0u32; LAT_BUCKETS];
    for (i, c) in pairs {
        if let Some(slot) = out.get_mut(usize::from(*i)) {
            *slot = *c;
        }
    }
    out
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecSnapshot {
    pub drops: Vec<RecDrop>,
    pub flows: Vec<RecFlow>,
    pub softirq: Vec<RecSoftirq>,
    pub counters: Vec<u64>,
    /// Indices of `counters` whose value was not known (a run counter whose kernel run count
    /// could not be read); absent when every counter was known, and in older recordings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counters_unknown: Vec<u32>,
    pub program_costs: Vec<(String, u64, u64)>,
    /// Per program: the kernel's recursion misses (absent in older recordings: read as none).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub program_misses: std::collections::BTreeMap<String, u64>,
    /// Added after version 1 first shipped: absent in older recordings (read as empty).
    #[serde(default)]
    pub dests: Vec<RecDest>,
    #[serde(default)]
    pub resets: Vec<RecReset>,
    #[serde(default)]
    pub sock_errors: Vec<RecSockError>,
    #[serde(default)]
    pub dest_entries: u64,
    /// Whether this frame read the per-destination maps (false in older recordings).
    #[serde(default)]
    pub has_flow_maps: bool,
}

impl From<&Snapshot> for RecSnapshot {
    fn from(s: &Snapshot) -> Self {
        let mut drops: Vec<RecDrop> = s
            .drops
            .iter()
            .map(|(k, count)| RecDrop {
                reason: k.reason,
                netns: k.netns,
                location: k.location,
                count: *count,
            })
            .collect();
        drops.sort_by_key(|d| (d.reason, d.netns, d.location));
        let mut flows: Vec<RecFlow> = s
            .flows
            .iter()
            .map(|(k, v)| RecFlow {
                netns: k.netns,
                family: k.family,
                sport: k.sport,
                dport: k.dport,
                saddr: k.saddr,
                daddr: k.daddr,
                retransmits: v.retransmits,
                retransmitted_segments: v.retransmitted_segments,
                synack_retransmits: v.synack_retransmits,
                failed_attempts: v.failed_attempts,
                last_state: v.last_state,
            })
            .collect();
        flows.sort_by_key(|f| (f.netns, f.saddr, f.daddr, f.sport, f.dport));
        RecSnapshot {
            drops,
            flows,
            softirq: s
                .softirq
                .iter()
                .map(|((cpu, vec), st)| RecSoftirq {
                    cpu: *cpu,
                    vec: *vec,
                    runs: st.runs,
                    timed_runs: Some(st.timed_runs),
                    total_ns: st.total_ns,
                    hist: st.hist.to_vec(),
                })
                .collect(),
            counters: s.counters.clone(),
            counters_unknown: s.counters_unknown.iter().copied().collect(),
            program_costs: s.program_costs.clone(),
            program_misses: s.program_misses.clone(),
            dests: {
                let mut v: Vec<RecDest> = s
                    .dests
                    .iter()
                    .map(|(k, d)| RecDest {
                        netns: k.netns,
                        family: k.family,
                        dport: k.dport,
                        daddr: k.daddr,
                        rtt_samples: d.rtt_samples,
                        rtt_sum_us: d.rtt_sum_us,
                        connects: d.connects,
                        established: d.established,
                        failed: d.failed,
                        closed: d.closed,
                        connect_timed: d.connect_timed,
                        connect_sum_us: d.connect_sum_us,
                        rtt_hist: sparse(&d.rtt_hist),
                        connect_hist: sparse(&d.connect_hist),
                    })
                    .collect();
                v.sort_by_key(|d| (d.netns, d.daddr, d.dport));
                v
            },
            resets: {
                let mut v: Vec<RecReset> = s
                    .resets
                    .iter()
                    .map(|(k, count)| RecReset {
                        flow: RecFlowKey {
                            netns: k.flow.netns,
                            family: k.flow.family,
                            sport: k.flow.sport,
                            dport: k.flow.dport,
                            saddr: k.flow.saddr,
                            daddr: k.flow.daddr,
                        },
                        reason: k.reason,
                        direction: k.direction,
                        count: *count,
                    })
                    .collect();
                v.sort_by_key(|r| (r.flow.netns, r.flow.daddr, r.flow.dport, r.flow.sport));
                v
            },
            sock_errors: {
                let mut v: Vec<RecSockError> = s
                    .sock_errors
                    .iter()
                    .map(|(k, count)| RecSockError {
                        netns: k.dest.netns,
                        family: k.dest.family,
                        dport: k.dest.dport,
                        daddr: k.dest.daddr,
                        error: k.error,
                        count: *count,
                    })
                    .collect();
                v.sort_by_key(|e| (e.netns, e.daddr, e.dport, e.error));
                v
            },
            dest_entries: s.dest_entries,
            has_flow_maps: s.has_flow_maps,
        }
    }
}

impl From<&RecSnapshot> for Snapshot {
    fn from(r: &RecSnapshot) -> Self {
        let mut s = Snapshot {
            counters: r.counters.clone(),
            counters_unknown: r.counters_unknown.iter().copied().collect(),
            program_costs: r.program_costs.clone(),
            program_misses: r.program_misses.clone(),
            dest_entries: r.dest_entries,
            has_flow_maps: r.has_flow_maps,
            ..Default::default()
        };
        for d in &r.dests {
            s.dests.insert(
                DestKey {
                    netns: d.netns,
                    family: d.family,
                    dport: d.dport,
                    daddr: d.daddr,
                },
                DestStats {
                    rtt_samples: d.rtt_samples,
                    rtt_sum_us: d.rtt_sum_us,
                    connects: d.connects,
                    established: d.established,
                    failed: d.failed,
                    closed: d.closed,
                    connect_timed: d.connect_timed,
                    connect_sum_us: d.connect_sum_us,
                    rtt_hist: dense(&d.rtt_hist),
                    connect_hist: dense(&d.connect_hist),
                },
            );
        }
        for x in &r.resets {
            s.resets.insert(
                ResetKey {
                    flow: FlowKey {
                        netns: x.flow.netns,
                        family: x.flow.family,
                        sport: x.flow.sport,
                        dport: x.flow.dport,
                        _pad: 0,
                        saddr: x.flow.saddr,
                        daddr: x.flow.daddr,
                    },
                    reason: x.reason,
                    direction: x.direction,
                },
                x.count,
            );
        }
        for e in &r.sock_errors {
            s.sock_errors.insert(
                ErrorKey {
                    dest: DestKey {
                        netns: e.netns,
                        family: e.family,
                        dport: e.dport,
                        daddr: e.daddr,
                    },
                    error: e.error,
                    _pad: 0,
                },
                e.count,
            );
        }
        for d in &r.drops {
            s.drops.insert(
                DropKey {
                    reason: d.reason,
                    netns: d.netns,
                    location: d.location,
                },
                d.count,
            );
        }
        for f in &r.flows {
            s.flows.insert(
                FlowKey {
                    netns: f.netns,
                    family: f.family,
                    sport: f.sport,
                    dport: f.dport,
                    _pad: 0,
                    saddr: f.saddr,
                    daddr: f.daddr,
                },
                FlowStats {
                    retransmits: f.retransmits,
                    retransmitted_segments: f.retransmitted_segments,
                    synack_retransmits: f.synack_retransmits,
                    failed_attempts: f.failed_attempts,
                    last_state: f.last_state,
                    _pad: 0,
                },
            );
        }
        for q in &r.softirq {
            let mut hist = [0u64; HIST_BUCKETS];
            for (slot, v) in hist.iter_mut().zip(&q.hist) {
                *slot = *v;
            }
            s.softirq.insert(
                (q.cpu, q.vec),
                SoftirqStats {
                    runs: q.runs,
                    timed_runs: q.timed_runs.unwrap_or(q.runs),
                    total_ns: q.total_ns,
                    hist,
                },
            );
        }
        s
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecFrame {
    pub at_ms: u64,
    /// Wall-clock time of the frame (ms since the UNIX epoch); absent in older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_ms: Option<u64>,
    pub bpf_stats_enabled: bool,
    pub snapshot: RecSnapshot,
    pub counters: CounterSample,
}

/// A recorded window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recording {
    pub format: String,
    pub version: u32,
    pub recorded_at_unix: u64,
    pub meta: TracerMeta,
    pub scope: Option<NetnsScope>,
    /// Address → symbolised location, for every drop location in the frames.
    pub symbols: BTreeMap<u64, String>,
    pub facts_start: NodeFacts,
    pub facts_end: NodeFacts,
    pub frames: Vec<RecFrame>,
    /// The verdict document the recording run printed (for comparison with a replay).
    pub live_verdict: Option<serde_json::Value>,
}

/// Why text did not even give a recording's header, in one sentence: cut off (a recording
/// killed while written, a partial download), not JSON, or JSON of something else.
fn unreadable(e: &serde_json::Error) -> anyhow::Error {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => anyhow::anyhow!(
            "the JSON ends early, at line {} column {}: the recording is truncated or incomplete \
             (cut off while written or copied); record it again or copy the whole file",
            e.line(),
            e.column()
        ),
        Category::Syntax | Category::Io => anyhow::anyhow!(
            "not JSON, so not a tracer recording ({e}); give a file `tracer record` wrote"
        ),
        Category::Data => anyhow::anyhow!(
            "not a tracer recording: JSON without its \"format\" and \"version\" ({e})"
        ),
    }
}

impl Recording {
    /// The frames as the judge takes them.
    pub fn frames(&self) -> Vec<Frame> {
        self.frames
            .iter()
            .map(|f| Frame {
                at_ms: f.at_ms,
                unix_ms: f.unix_ms,
                snapshot: Snapshot::from(&f.snapshot),
                counters: f.counters.clone(),
                bpf_stats_enabled: f.bpf_stats_enabled,
            })
            .collect()
    }

    /// Reads and checks a recording file.
    pub fn load(path: &Path) -> Result<Recording> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the recording {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{} is not a usable recording", path.display()))
    }

    pub fn parse(text: &str) -> Result<Recording> {
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let header: Header = serde_json::from_str(text).map_err(|e| unreadable(&e))?;
        if header.format != FORMAT {
            bail!("format is {:?}, expected {FORMAT:?}", header.format);
        }
        if header.version > VERSION {
            bail!(
                "recording version {} is newer than this tracer reads ({VERSION}); use a newer tracer",
                header.version
            );
        }
        serde_json::from_str(text).map_err(|e| {
            if e.is_eof() {
                unreadable(&e)
            } else {
                anyhow::anyhow!("the recording is damaged ({e})")
            }
        })
    }

    /// The file's text (written whole by `modes::files::Output`).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).context("encoding the recording")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trips_through_the_recording_form() {
        let mut s = Snapshot::default();
        s.drops.insert(
            DropKey {
                reason: 12,
                netns: 4026532246,
                location: 0xffff_ffff_c0a0_1234,
            },
            782,
        );
        s.flows.insert(
            FlowKey {
                netns: 7,
                family: 2,
                sport: 40000,
                dport: 5201,
                _pad: 0,
                saddr: [u32::from_ne_bytes([198, 18, 0, 1]), 0, 0, 0],
                daddr: [u32::from_ne_bytes([198, 18, 0, 2]), 0, 0, 0],
            },
            FlowStats {
                retransmits: 3,
                retransmitted_segments: 40,
                synack_retransmits: 0,
                failed_attempts: 1,
                last_state: 1,
                _pad: 0,
            },
        );
        let mut st = SoftirqStats {
            runs: 50,
            timed_runs: 5,
            total_ns: 9000,
            ..Default::default()
        };
        st.hist[10] = 5;
        s.softirq.insert((1, 3), st);
        s.counters = vec![1, 2, 3];
        s.program_costs = vec![("kfree_skb".to_owned(), 10, 2500)];
        s.program_misses.insert("kfree_skb".to_owned(), 4);
        let dest = DestKey {
            netns: 7,
            family: 2,
            dport: 5201,
            daddr: [u32::from_ne_bytes([198, 18, 0, 2]), 0, 0, 0],
        };
        let mut ds = DestStats {
            rtt_samples: 9,
            rtt_sum_us: 360_000,
            connects: 2,
            failed: 1,
            ..Default::default()
        };
        ds.rtt_hist[56] = 9;
        ds.connect_hist[3] = 1;
        s.dests.insert(dest, ds);
        s.dest_entries = 1;
        s.has_flow_maps = true;
        s.resets.insert(
            ResetKey {
                flow: *s.flows.keys().next().expect("flow"),
                reason: 1,
                direction: 0,
            },
            4,
        );
        s.sock_errors.insert(
            ErrorKey {
                dest,
                error: 110,
                _pad: 0,
            },
            2,
        );
        let json = serde_json::to_string(&RecSnapshot::from(&s)).expect("json");
        let back: RecSnapshot = serde_json::from_str(&json).expect("parse");
        assert_eq!(Snapshot::from(&back), s);
        // A recording made before the flow maps existed still reads (empty flow maps).
        let mut old: serde_json::Value = serde_json::from_str(&json).expect("parse");
        for k in [
            "dests",
            "resets",
            "sock_errors",
            "dest_entries",
            "has_flow_maps",
        ] {
            old.as_object_mut().expect("object").remove(k);
        }
        let back: RecSnapshot = serde_json::from_value(old).expect("old recording");
        assert!(Snapshot::from(&back).dests.is_empty());
        // A recording made before softirq sampling: every run was timed.
        let mut old: serde_json::Value = serde_json::from_str(&json).expect("parse");
        old["softirq"][0]
            .as_object_mut()
            .expect("softirq row")
            .remove("timed_runs");
        let back: RecSnapshot = serde_json::from_value(old).expect("old recording");
        let st = Snapshot::from(&back).softirq[&(1, 3)];
        assert_eq!((st.runs, st.timed_runs), (50, 50));
    }

    #[test]
    fn recordings_without_a_wall_clock_or_node_name_still_replay() {
        let frame = RecFrame {
            at_ms: 1000,
            unix_ms: Some(1_767_225_601_000),
            bpf_stats_enabled: false,
            snapshot: RecSnapshot::from(&Snapshot::default()),
            counters: CounterSample::default(),
        };
        let mut json = serde_json::to_value(&frame).expect("json");
        assert_eq!(json["unix_ms"], 1_767_225_601_000u64);
        json.as_object_mut().expect("object").remove("unix_ms");
        let old: RecFrame = serde_json::from_value(json).expect("older frame");
        assert_eq!(old.unix_ms, None);
        let meta = serde_json::to_value(TracerMeta {
            node_name: Some("node-a".to_owned()),
            ..TracerMeta::default()
        })
        .expect("json");
        assert_eq!(meta["node_name"], "node-a");
        let mut old_meta = meta.clone();
        old_meta
            .as_object_mut()
            .expect("object")
            .remove("node_name");
        let old_meta: TracerMeta = serde_json::from_value(old_meta).expect("older meta");
        assert_eq!(old_meta.node_name, None);
    }

    #[test]
    fn wrong_format_and_newer_versions_are_refused_in_one_sentence() {
        let err = Recording::parse(r#"{"format":"pcap","version":1}"#).expect_err("refused");
        assert!(
            err.to_string().contains("expected \"tracer-recording\""),
            "{err}"
        );
        let err =
            Recording::parse(r#"{"format":"tracer-recording","version":99}"#).expect_err("refused");
        assert!(
            err.to_string().contains("newer than this tracer reads"),
            "{err}"
        );
        assert!(Recording::parse("not json").is_err());
        let err =
            Recording::parse(r#"{"format":"tracer-recording","version":1}"#).expect_err("refused");
        assert!(format!("{err:#}").contains("damaged"), "{err:#}");
    }

    #[test]
    fn a_truncated_recording_says_it_is_truncated_and_where() {
        let whole = include_str!("../../../tests/fixtures/reports/healthy.rec.json");
        // Cut in the header and in the frames: both say truncated, with the place.
        for cut in [20, whole.len() / 2] {
            let err = Recording::parse(&whole[..cut]).expect_err("truncated");
            let message = format!("{err:#}");
            assert!(
                message.contains("truncated or incomplete")
                    && message.contains("line 1 column")
                    && !message.contains("no format/version"),
                "{message}"
            );
        }
        let err = Recording::parse("hello").expect_err("not JSON");
        assert!(format!("{err:#}").starts_with("not JSON"), "{err:#}");
        let err = Recording::parse(r#"{"hello":1}"#).expect_err("other JSON");
        assert!(
            format!("{err:#}").contains("without its \"format\""),
            "{err:#}"
        );
    }
}
