//! The evidence document of one window: drops by reason name and kernel location, retransmits by
//! flow, softirq time per CPU, and what each probe did. Pure: built from a [`Snapshot`] delta and
//! the names read from the running kernel; rendering to JSON/YAML is serde's.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use tracer_common::{ABSENT, HIST_BUCKETS};

use crate::{
    kernel::kallsyms::Kallsyms,
    kernel::names::KernelNames,
    kernel::probes::ProbeStatus,
    kernel::snapshot::{counter_names, flow_addresses, Snapshot},
    node::netns::NetnsScope,
};

/// Scope and timing of the window.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WindowInfo {
    pub duration_s: f64,
    /// Milliseconds from start to every probe attached.
    pub startup_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<NetnsScope>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub tracer_version: &'static str,
    pub kernel: String,
    pub window: WindowInfo,
    pub probes: Vec<ProbeStatus>,
    pub drops: Drops,
    pub retransmits: Retransmits,
    pub softirq: Vec<CpuSoftirq>,
    /// Per destination: retransmits, resets, failed connects, socket errors, RTT percentiles.
    pub flows: crate::judge::flows::Flows,
    /// What the programs counted about themselves: events seen and anything lost. The
    /// `*_events` of programs that count every run are the kernel's run counts of those
    /// programs where it keeps them (the same numbers); a counter whose value is not known is
    /// left out and named in `tracer_counters_unknown`.
    pub tracer_counters: BTreeMap<&'static str, u64>,
    /// Counters left out of `tracer_counters` because their value is not known (a run count
    /// the kernel kept that could not be read); absent when every counter is known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracer_counters_unknown: Vec<&'static str>,
    /// What the tracer's kernel programs cost in this window.
    pub tracer_cost: TracerCost,
    /// Anything that limits what this report can say.
    pub notes: Vec<String>,
}

/// The kernel programs' own cost, from the kernel's BPF statistics.
#[derive(Debug, Clone, Serialize, Default, schemars::JsonSchema)]
pub struct TracerCost {
    /// `kernel.bpf_stats_enabled`: run times are only kept while it is 1 (the tracer never
    /// turns it on; `sysctl kernel.bpf_stats_enabled=1` does).
    pub bpf_stats_enabled: bool,
    /// The tracer holds a `BPF_ENABLE_STATS` descriptor (kernel >= 5.8): the kernel times its
    /// programs whatever `kernel.bpf_stats_enabled` says, and the sysctl is left as it was.
    #[serde(default)]
    pub run_time_stats_held: bool,
    pub programs: Vec<ProgramCost>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ProgramCost {
    pub program: String,
    pub runs: u64,
    pub run_time_ns: u64,
    /// Mean nanoseconds per run (None when no run was timed).
    pub ns_per_run: Option<f64>,
    /// Events the program missed in the window because another BPF program was running on
    /// that CPU (the kernel's `recursion_misses`; 0 before kernel 5.12).
    #[serde(default)]
    pub recursion_misses: u64,
}

#[derive(Debug, Clone, Serialize, Default, schemars::JsonSchema)]
pub struct Drops {
    pub total: u64,
    pub by_reason: Vec<DropReason>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DropReason {
    /// Name from the running kernel; `UNKNOWN(<value>)` when it has none for the value, and
    /// `NO_REASON_FIELD` on kernels whose tracepoint carries no reason.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_value: Option<u32>,
    pub count: u64,
    pub locations: Vec<DropLocation>,
    pub netns: Vec<NetnsCount>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DropLocation {
    /// `function+0xoff [module]`, or the raw address when it cannot be symbolised.
    pub location: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct NetnsCount {
    /// Inode of the network namespace (0: unknown).
    pub inode: u32,
    pub count: u64,
    /// The pod whose network namespace it is (`NAMESPACE/NAME`, or `uid UID`), from the
    /// node's files (`pods`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The namespace's `ip netns` name (`/run/netns/NAME`), when it has one on this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default, schemars::JsonSchema)]
pub struct Retransmits {
    /// Retransmitted skbs.
    pub total: u64,
    /// Retransmitted segments (what `RetransSegs` counts; a GSO skb carries several).
    pub segments_total: u64,
    pub synack_total: u64,
    pub failed_attempts: u64,
    /// Retransmitting flows the bounded flow map evicted during the window (their rows and
    /// part of their counts are missing; the notes say so).
    #[serde(skip_serializing_if = "is_zero")]
    pub flows_evicted: u64,
    pub flows: Vec<FlowReport>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct FlowReport {
    pub netns: u32,
    /// The pod whose network namespace the socket is in (`NAMESPACE/NAME`, or `uid UID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The namespace's `ip netns` name (`/run/netns/NAME`), when it has one on this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_name: Option<String>,
    pub family: &'static str,
    pub saddr: String,
    pub sport: u16,
    pub daddr: String,
    pub dport: u16,
    /// TCP state at the last retransmission (`TCP_ESTABLISHED`, …).
    pub state: String,
    /// Retransmitted skbs.
    pub retransmits: u64,
    /// Segments in them (comparable with `RetransSegs`).
    pub retransmitted_segments: u64,
    pub synack_retransmits: u64,
    pub failed_attempts: u64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CpuSoftirq {
    pub cpu: u32,
    pub vectors: Vec<VectorTime>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VectorTime {
    pub vector: String,
    /// Time in the vector: measured when every run was timed (`timed_runs == runs`), else
    /// estimated from the timed runs, each standing for the runs around it.
    pub time_ns: u64,
    /// Every run, counted exactly.
    pub runs: u64,
    /// Runs whose length was measured: all of them unless the CPU ran the vector so often that
    /// the programs read the clock on a sample of runs only.
    pub timed_runs: u64,
    /// Share of the window this CPU spent in this vector.
    pub share_of_window: f64,
    /// Log2 run-length histogram of the timed runs: runs of `[lower_ns, 2*lower_ns)`.
    pub histogram: Vec<HistBucket>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HistBucket {
    pub lower_ns: u64,
    pub count: u64,
}

/// The vectors the report shows (networking only).
const REPORTED_VECTORS: [&str; 2] = ["NET_RX", "NET_TX"];

/// TCP state names, from the kernel's `include/net/tcp_states.h` (part of the ABI: the same
/// numbers on every kernel, used by `ss` and `/proc/net/tcp`).
pub fn tcp_state_name(state: u32) -> String {
    const NAMES: [&str; 14] = [
        "UNKNOWN",
        "TCP_ESTABLISHED",
        "TCP_SYN_SENT",
        "TCP_SYN_RECV",
        "TCP_FIN_WAIT1",
        "TCP_FIN_WAIT2",
        "TCP_TIME_WAIT",
        "TCP_CLOSE",
        "TCP_CLOSE_WAIT",
        "TCP_LAST_ACK",
        "TCP_LISTEN",
        "TCP_CLOSING",
        "TCP_NEW_SYN_RECV",
        "TCP_BOUND_INACTIVE",
    ];
    NAMES
        .get(state as usize)
        .map_or_else(|| format!("STATE_{state}"), |n| (*n).to_owned())
}

/// A reason's name on this kernel (and its value, when it has one).
pub fn reason_label(value: u32, names: &KernelNames) -> (String, Option<u32>) {
    if value == ABSENT {
        return ("NO_REASON_FIELD".to_owned(), None);
    }
    let name = names.drop_reasons.get(&value).cloned().unwrap_or_else(|| {
        // Subsystem reasons (high 16 bits) are named in module BTF, not in vmlinux.
        if value >> 16 != 0 {
            format!("SUBSYS_{}({})", value >> 16, value & 0xffff)
        } else {
            format!("UNKNOWN({value})")
        }
    });
    (name, Some(value))
}

/// A drop location as `function+0xoff [module]`, or the raw address.
pub fn location_label(addr: u64, symbols: &Kallsyms) -> String {
    symbols
        .resolve(addr)
        .map_or_else(|| format!("{addr:#x}"), |s| s.display())
}

/// Turns a kernel address into `function+0xoff [module]`: the live kernel's symbols, or the
/// names a recording kept.
pub trait Symbolize {
    fn label(&self, addr: u64) -> String;
}

impl Symbolize for Kallsyms {
    fn label(&self, addr: u64) -> String {
        location_label(addr, self)
    }
}

impl Symbolize for BTreeMap<u64, String> {
    fn label(&self, addr: u64) -> String {
        self.get(&addr)
            .cloned()
            .unwrap_or_else(|| format!("{addr:#x}"))
    }
}

/// Per reason: total, count by symbolised location, count by namespace.
type ReasonTally = (u64, HashMap<String, u64>, BTreeMap<u32, u64>);

/// Builds the document from the window's delta.
#[allow(clippy::too_many_arguments)]
pub fn build(
    window_delta: &Snapshot,
    names: &KernelNames,
    symbols: &dyn Symbolize,
    probes: Vec<ProbeStatus>,
    window: WindowInfo,
    kernel: String,
    notes: Vec<String>,
) -> Report {
    // Drops: group by reason, then location and namespace.
    let mut by_reason: BTreeMap<u32, ReasonTally> = BTreeMap::new();
    for (key, count) in &window_delta.drops {
        let entry = by_reason.entry(key.reason).or_default();
        entry.0 += count;
        *entry.1.entry(symbols.label(key.location)).or_insert(0) += count;
        *entry.2.entry(key.netns).or_insert(0) += count;
    }
    let mut reasons: Vec<DropReason> = by_reason
        .into_iter()
        .map(|(value, (count, locations, netns))| {
            let (reason, reason_value) = reason_label(value, names);
            let mut locations: Vec<DropLocation> = locations
                .into_iter()
                .map(|(location, count)| DropLocation { location, count })
                .collect();
            locations.sort_by(|a, b| b.count.cmp(&a.count).then(a.location.cmp(&b.location)));
            let mut netns: Vec<NetnsCount> = netns
                .into_iter()
                .map(|(inode, count)| NetnsCount {
                    inode,
                    count,
                    pod: None,
                    netns_name: None,
                })
                .collect();
            netns.sort_by(|a, b| b.count.cmp(&a.count).then(a.inode.cmp(&b.inode)));
            DropReason {
                reason,
                reason_value,
                count,
                locations,
                netns,
            }
        })
        .collect();
    reasons.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
    let drops = Drops {
        total: reasons.iter().map(|r| r.count).sum(),
        by_reason: reasons,
    };

    // Retransmits by flow.
    let mut flows: Vec<FlowReport> = window_delta
        .flows
        .iter()
        .map(|(key, stats)| {
            let (family, saddr, daddr) = flow_addresses(key);
            FlowReport {
                netns: key.netns,
                pod: None,
                netns_name: None,
                family,
                saddr,
                sport: key.sport,
                daddr,
                dport: key.dport,
                state: tcp_state_name(stats.last_state),
                retransmits: stats.retransmits,
                retransmitted_segments: stats.retransmitted_segments,
                synack_retransmits: stats.synack_retransmits,
                failed_attempts: stats.failed_attempts,
            }
        })
        .collect();
    flows.sort_by(|a, b| {
        (b.retransmits + b.synack_retransmits)
            .cmp(&(a.retransmits + a.synack_retransmits))
            .then_with(|| {
                (&a.saddr, a.sport, &a.daddr, a.dport).cmp(&(&b.saddr, b.sport, &b.daddr, b.dport))
            })
    });
    let retransmits = Retransmits {
        total: flows.iter().map(|f| f.retransmits).sum(),
        segments_total: flows.iter().map(|f| f.retransmitted_segments).sum(),
        synack_total: flows.iter().map(|f| f.synack_retransmits).sum(),
        failed_attempts: flows.iter().map(|f| f.failed_attempts).sum(),
        flows_evicted: window_delta.flows_evicted,
        flows,
    };

    // Softirq time per CPU, networking vectors only.
    let window_ns = (window.duration_s * 1e9).max(1.0);
    let mut per_cpu: BTreeMap<u32, Vec<VectorTime>> = BTreeMap::new();
    for ((cpu, vec), stats) in &window_delta.softirq {
        let Some(name) = names.softirq_vectors.get(vec) else {
            continue;
        };
        if !REPORTED_VECTORS.contains(&name.as_str()) {
            continue;
        }
        let histogram = (0..HIST_BUCKETS)
            .filter(|i| stats.hist[*i] > 0)
            .map(|i| HistBucket {
                lower_ns: 1u64 << i,
                count: stats.hist[i],
            })
            .collect();
        per_cpu.entry(*cpu).or_default().push(VectorTime {
            vector: name.clone(),
            time_ns: stats.total_ns,
            runs: stats.runs,
            timed_runs: stats.timed_runs.min(stats.runs),
            share_of_window: stats.total_ns as f64 / window_ns,
            histogram,
        });
    }
    let softirq: Vec<CpuSoftirq> = per_cpu
        .into_iter()
        .map(|(cpu, mut vectors)| {
            vectors.sort_by(|a, b| a.vector.cmp(&b.vector));
            CpuSoftirq { cpu, vectors }
        })
        .collect();

    let tracer_counters: BTreeMap<&'static str, u64> = counter_names()
        .into_iter()
        .filter_map(|(name, index)| Some((name, window_delta.known_counter(index)?)))
        .collect();
    let tracer_counters_unknown: Vec<&'static str> = counter_names()
        .into_iter()
        .filter(|(_, index)| window_delta.known_counter(*index).is_none())
        .map(|(name, _)| name)
        .collect();
    let mut notes = notes;
    if !tracer_counters_unknown.is_empty() {
        notes.push(format!(
            "{} unknown: the programs leave their run counts to the kernel, and the kernel's \
             count could not be read",
            tracer_counters_unknown.join(", ")
        ));
    }
    notes.extend(softirq_sampling_note(&softirq));
    notes.extend(overflow_notes(&tracer_counters));
    if window_delta.flows_evicted > 0 {
        notes.push(format!(
            "the tracer saw more retransmitting flows than it kept: {} evicted from its map of \
             {} (least recently retransmitting first); their rows and part of their counts are \
             missing from the flows above",
            window_delta.flows_evicted,
            tracer_common::RETRANS_FLOWS_MAX_ENTRIES
        ));
    }

    let tracer_cost = TracerCost {
        // Filled by the caller, which may read the node (this function is pure).
        bpf_stats_enabled: false,
        run_time_stats_held: false,
        programs: window_delta
            .program_costs
            .iter()
            .map(|(program, runs, ns)| ProgramCost {
                program: program.clone(),
                runs: *runs,
                run_time_ns: *ns,
                ns_per_run: (*runs > 0 && *ns > 0).then(|| *ns as f64 / *runs as f64),
                recursion_misses: window_delta
                    .program_misses
                    .get(program)
                    .copied()
                    .unwrap_or(0),
            })
            .collect(),
    };

    let flows = crate::judge::flows::build(
        window_delta,
        &names.reset_reasons,
        // A listener's clients fold into one row per listening port, as in `tracer flows`.
        &crate::judge::flows::DestFilter {
            ephemeral_ports: names.ephemeral_ports,
            ..crate::judge::flows::DestFilter::default()
        },
        crate::judge::flows::REPORT_DESTINATIONS,
    );
    notes.extend(flows.tracking_note());

    Report {
        tracer_version: env!("CARGO_PKG_VERSION"),
        kernel,
        window,
        probes,
        drops,
        retransmits,
        softirq,
        flows,
        tracer_counters,
        tracer_counters_unknown,
        tracer_cost,
        notes,
    }
}

/// Where softirq time was estimated from a sample of runs, which CPU and vector and how many
/// runs were timed of how many (never hidden); `None` when every run was timed.
pub fn softirq_sampling_note(softirq: &[CpuSoftirq]) -> Option<String> {
    let sampled: Vec<String> = softirq
        .iter()
        .flat_map(|c| c.vectors.iter().map(move |v| (c.cpu, v)))
        .filter(|(_, v)| v.timed_runs < v.runs)
        .map(|(cpu, v)| {
            format!(
                "CPU {cpu} {} {} of {} runs timed",
                v.vector, v.timed_runs, v.runs
            )
        })
        .collect();
    if sampled.is_empty() {
        return None;
    }
    Some(format!(
        "softirq time estimated from sampled runs ({}): every run is counted, but a CPU that \
         runs a vector more often than every {} µs has its clock read on a random sample of \
         runs, each timed run standing for the runs around it; the histogram holds the timed runs",
        sampled.join(", "),
        tracer_common::SOFTIRQ_SAMPLE_NEAR_NS / 1000
    ))
}

/// What the kernel programs saw but could not keep, said in the notes (never hidden): a full
/// drops map, a flow the LRU map refused.
pub fn overflow_notes(counters: &BTreeMap<&'static str, u64>) -> Vec<String> {
    let get = |name: &str| counters.get(name).copied().unwrap_or(0);
    let mut notes = Vec::new();
    if get("drops_map_full") > 0 {
        notes.push(format!(
            "the drops map was full: {} drop events were seen but not counted by reason and \
             location (more distinct (reason, location, namespace) keys than the map holds)",
            get("drops_map_full")
        ));
    }
    if get("flows_insert_failed") > 0 {
        notes.push(format!(
            "{} retransmissions were seen but could not be kept per flow (the flow map refused \
             the insert)",
            get("flows_insert_failed")
        ));
    }
    notes
}

impl Report {
    /// Total NET_RX nanoseconds per CPU (a convenience for readers and tests).
    pub fn net_rx_ns_by_cpu(&self) -> BTreeMap<u32, u64> {
        self.softirq
            .iter()
            .map(|c| {
                let ns = c
                    .vectors
                    .iter()
                    .filter(|v| v.vector == "NET_RX")
                    .map(|v| v.time_ns)
                    .sum();
                (c.cpu, ns)
            })
            .collect()
    }

    /// Count of drops with the given reason name.
    pub fn drops_with_reason(&self, reason: &str) -> u64 {
        self.drops
            .by_reason
            .iter()
            .filter(|r| r.reason == reason)
            .map(|r| r.count)
            .sum()
    }

    /// Names the pod behind each namespace of the drops and flows (`pod_of(inode)`, e.g.
    /// [`crate::node::pods::PodIndex::label_of`]); namespaces of no pod stay unnamed.
    pub fn label_pods(&mut self, pod_of: impl Fn(u32) -> Option<String>) {
        for reason in &mut self.drops.by_reason {
            for n in &mut reason.netns {
                n.pod = pod_of(n.inode);
            }
        }
        for flow in &mut self.retransmits.flows {
            flow.pod = pod_of(flow.netns);
        }
        self.flows.label_pods(&pod_of);
    }

    /// Names each namespace of the drops and flows by its `ip netns` name (`name_of(inode)`),
    /// next to its inode; only for namespaces of this node (a live window, not a replay).
    pub fn label_netns(&mut self, name_of: impl Fn(u32) -> Option<String>) {
        for reason in &mut self.drops.by_reason {
            for n in &mut reason.netns {
                n.netns_name = name_of(n.inode);
            }
        }
        for flow in &mut self.retransmits.flows {
            flow.netns_name = name_of(flow.netns);
        }
        self.flows.label_netns(&name_of);
    }
}

/// The tracer's own cost in one line: runs and ns/run per program, and what it lost.
///
/// The kernel counts runs and run time while the tracer holds its `BPF_ENABLE_STATS` descriptor
/// or `kernel.bpf_stats_enabled=1` (the tracer never sets the sysctl). Without either the cost is
/// said to be unknown, never "no program ran": the events the programs counted themselves
/// (`tracer_counters`) are shown instead. Recursion misses (events a program never saw because
/// another BPF program was running on that CPU) are named when there are any.
pub fn tracer_cost_line(o: &Report) -> String {
    let seconds = o.window.duration_s.max(0.001);
    let programs: Vec<String> = o
        .tracer_cost
        .programs
        .iter()
        .filter(|p| p.runs > 0)
        .map(|p| match p.ns_per_run {
            Some(ns) => format!(
                "{} {:.0}/s × {ns:.0} ns",
                p.program,
                p.runs as f64 / seconds
            ),
            None => format!("{} {:.0}/s", p.program, p.runs as f64 / seconds),
        })
        .collect();
    let lost: u64 = ["drops_map_full", "flows_insert_failed", "read_errors"]
        .iter()
        .filter_map(|k| o.tracer_counters.get(k))
        .sum();
    let mut events: Vec<(&str, u64)> = o
        .tracer_counters
        .iter()
        .filter_map(|(k, v)| Some((k.strip_suffix("_events")?, *v)))
        .filter(|(_, v)| *v > 0)
        .collect();
    events.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let total: u64 = events.iter().map(|(_, v)| v).sum();
    let unknown: Vec<&str> = o
        .tracer_counters_unknown
        .iter()
        .filter_map(|k| k.strip_suffix("_events"))
        .collect();
    let counted = if !unknown.is_empty() {
        let each: Vec<String> = events
            .iter()
            .map(|(name, n)| format!("{name} {:.0}/s", *n as f64 / seconds))
            .chain(unknown.iter().map(|name| format!("{name} unknown")))
            .collect();
        format!("; the programs' events: {}", each.join(", "))
    } else if events.is_empty() {
        "; the programs counted 0 events".to_owned()
    } else {
        let each: Vec<String> = events
            .iter()
            .map(|(name, n)| format!("{name} {:.0}/s", *n as f64 / seconds))
            .collect();
        format!(
            "; the programs counted {total} events ({})",
            each.join(", ")
        )
    };
    let timed = o.tracer_cost.bpf_stats_enabled || o.tracer_cost.run_time_stats_held;
    let cost = if !timed {
        format!("unknown (kernel.bpf_stats_enabled=0){counted}")
    } else if !programs.is_empty() {
        programs.join(", ")
    } else if total > 0 || !unknown.is_empty() {
        format!("unknown (no run counts were read){counted}")
    } else {
        "no program ran".to_owned()
    };
    format!(
        "tracer cost: {cost}; lost events {lost}{}{}",
        recursion_misses_text(o),
        hooks_summary(&o.probes)
    )
}

/// `; recursion misses N (program n, …)` when any program missed events, else nothing.
fn recursion_misses_text(o: &Report) -> String {
    let missed: Vec<String> = o
        .tracer_cost
        .programs
        .iter()
        .filter(|p| p.recursion_misses > 0)
        .map(|p| format!("{} {}", p.program, p.recursion_misses))
        .collect();
    if missed.is_empty() {
        return String::new();
    }
    let total: u64 = o
        .tracer_cost
        .programs
        .iter()
        .map(|p| p.recursion_misses)
        .sum();
    format!(
        "; recursion misses {total} ({}: another BPF program was running on that CPU)",
        missed.join(", ")
    )
}

/// `; hooks: tp_btf: cheapest hook (kfree_skb, tcp_probe); tracepoint: … (tcp_send_reset)`:
/// which hook each attached probe uses and why, grouped by reason ("" when none says).
pub fn hooks_summary(probes: &[ProbeStatus]) -> String {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for p in probes {
        let Some(reason) = p.hook_reason.as_deref() else {
            continue;
        };
        match groups.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, names)) => names.push(&p.program),
            None => groups.push((reason, vec![&p.program])),
        }
    }
    if groups.is_empty() {
        return String::new();
    }
    let each: Vec<String> = groups
        .iter()
        .map(|(reason, names)| format!("{reason} ({})", names.join(", ")))
        .collect();
    format!("; hooks: {}", each.join("; "))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tracer_common::{DropKey, FlowKey, FlowStats, SoftirqStats, FAMILY_INET, FAMILY_INET6};

    fn names() -> KernelNames {
        KernelNames {
            drop_reasons: [
                (3, "NO_SOCKET".to_owned()),
                (12, "NETFILTER_DROP".to_owned()),
            ]
            .into_iter()
            .collect(),
            drop_reasons_source: "test".to_owned(),
            reset_reasons: BTreeMap::new(),
            ephemeral_ports: 0,
            softirq_vectors: [
                (2, "NET_TX".to_owned()),
                (3, "NET_RX".to_owned()),
                (1, "TIMER".to_owned()),
            ]
            .into_iter()
            .collect(),
        }
    }

    /// The report of `d` with no symbols, probes, kernel name or notes.
    fn build_bare(d: &Snapshot) -> Report {
        build(
            d,
            &names(),
            &Kallsyms::parse(""),
            vec![],
            window(),
            String::new(),
            vec![],
        )
    }

    fn window() -> WindowInfo {
        WindowInfo {
            duration_s: 2.0,
            startup_ms: 50.0,
            netns: None,
        }
    }

    #[test]
    fn drops_grouped_by_reason_location_and_netns() {
        let symbols = Kallsyms::parse(
            "ffffffff81a00000 T __udp4_lib_rcv\nffffffff81b00000 T tcp_v4_rcv\nffffffff81c00000 T nft_do_chain\n",
        );
        let mut d = Snapshot::default();
        d.drops.insert(
            DropKey {
                reason: 3,
                netns: 7,
                location: 0xffff_ffff_81a0_04bc,
            },
            10,
        );
        d.drops.insert(
            DropKey {
                reason: 3,
                netns: 8,
                location: 0xffff_ffff_81b0_0099,
            },
            2,
        );
        d.drops.insert(
            DropKey {
                reason: 12,
                netns: 7,
                location: 0xffff_ffff_81c0_046f,
            },
            5,
        );
        d.drops.insert(
            DropKey {
                reason: 99,
                netns: 7,
                location: 0x10,
            },
            1,
        );
        d.drops.insert(
            DropKey {
                reason: ABSENT,
                netns: 7,
                location: 0xffff_ffff_81b0_0001,
            },
            1,
        );
        let r = build(
            &d,
            &names(),
            &symbols,
            vec![],
            window(),
            "6.18".into(),
            vec![],
        );
        assert_eq!(r.drops.total, 19);
        let first = &r.drops.by_reason[0];
        assert_eq!(
            (first.reason.as_str(), first.reason_value, first.count),
            ("NO_SOCKET", Some(3), 12)
        );
        assert_eq!(first.locations[0].location, "__udp4_lib_rcv+0x4bc");
        assert_eq!(first.locations[1].location, "tcp_v4_rcv+0x99");
        assert_eq!(first.netns[0].inode, 7);
        assert_eq!(r.drops_with_reason("NETFILTER_DROP"), 5);
        assert_eq!(r.drops_with_reason("UNKNOWN(99)"), 1);
        assert_eq!(r.drops_with_reason("NO_REASON_FIELD"), 1);
        let unknown = r
            .drops
            .by_reason
            .iter()
            .find(|x| x.reason == "UNKNOWN(99)")
            .unwrap();
        assert_eq!(unknown.locations[0].location, "0x10");
    }

    #[test]
    fn flows_decode_addresses_and_state() {
        let key = FlowKey {
            netns: 1,
            family: FAMILY_INET,
            sport: 40000,
            dport: 5201,
            _pad: 0,
            saddr: [u32::from_ne_bytes([198, 18, 0, 1]), 0, 0, 0],
            daddr: [u32::from_ne_bytes([198, 18, 0, 2]), 0, 0, 0],
        };
        let mut d = Snapshot::default();
        d.flows.insert(
            key,
            FlowStats {
                retransmits: 9,
                retransmitted_segments: 12,
                synack_retransmits: 0,
                failed_attempts: 1,
                last_state: 1,
                _pad: 0,
            },
        );
        let r = build_bare(&d);
        let f = &r.retransmits.flows[0];
        assert_eq!(
            (f.saddr.as_str(), f.daddr.as_str(), f.family),
            ("198.18.0.1", "198.18.0.2", "ipv4")
        );
        assert_eq!(f.state, "TCP_ESTABLISHED");
        assert_eq!((r.retransmits.total, r.retransmits.failed_attempts), (9, 1));
        assert_eq!(r.retransmits.segments_total, 12);

        let mut v6 = key;
        v6.family = FAMILY_INET6;
        let mut bytes = [0u8; 16];
        bytes[0] = 0x20;
        bytes[1] = 0x01;
        bytes[15] = 1;
        for i in 0..4 {
            v6.saddr[i] = u32::from_ne_bytes([
                bytes[i * 4],
                bytes[i * 4 + 1],
                bytes[i * 4 + 2],
                bytes[i * 4 + 3],
            ]);
        }
        assert_eq!(flow_addresses(&v6).1, "2001::1");
    }

    #[test]
    fn softirq_shows_net_vectors_with_share() {
        let mut d = Snapshot::default();
        let mut s = SoftirqStats {
            runs: 4,
            timed_runs: 4,
            total_ns: 500_000_000,
            ..Default::default()
        };
        s.hist[10] = 4;
        d.softirq.insert((1, 3), s);
        d.softirq.insert((1, 1), s); // TIMER: not shown
        let r = build_bare(&d);
        assert_eq!(r.softirq.len(), 1);
        let v = &r.softirq[0].vectors[0];
        assert_eq!(
            (r.softirq[0].cpu, v.vector.as_str(), v.time_ns),
            (1, "NET_RX", 500_000_000)
        );
        assert!((v.share_of_window - 0.25).abs() < 1e-9);
        assert_eq!(v.histogram[0].lower_ns, 1024);
        assert_eq!(r.net_rx_ns_by_cpu().get(&1), Some(&500_000_000));
        // Every run timed: nothing estimated, nothing to say.
        assert_eq!(v.timed_runs, 4);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    /// A CPU whose NET_RX runs were sampled: the time is the kernel's estimate as it is, the
    /// runs exact, and a note says which CPU was sampled and how many runs were timed of how
    /// many; a CPU timed in full is not named.
    #[test]
    fn sampled_softirq_time_is_said_with_timed_of_all_runs() {
        let mut d = Snapshot::default();
        let mut sampled = SoftirqStats {
            runs: 400_000,
            timed_runs: 25_000,
            total_ns: 800_000_000,
            ..Default::default()
        };
        sampled.hist[11] = 25_000;
        d.softirq.insert((0, 3), sampled);
        let exact = SoftirqStats {
            runs: 10,
            timed_runs: 10,
            total_ns: 40_000,
            ..Default::default()
        };
        d.softirq.insert((1, 3), exact);
        let r = build_bare(&d);
        let v = &r.softirq[0].vectors[0];
        assert_eq!(
            (v.runs, v.timed_runs, v.time_ns, v.histogram[0].count),
            (400_000, 25_000, 800_000_000, 25_000)
        );
        assert!((v.share_of_window - 0.4).abs() < 1e-9);
        let sampling: Vec<&String> = r
            .notes
            .iter()
            .filter(|n| n.contains("sampled runs"))
            .collect();
        assert_eq!(sampling.len(), 1, "{:?}", r.notes);
        assert!(
            sampling[0].contains("(CPU 0 NET_RX 25000 of 400000 runs timed)"),
            "{}",
            sampling[0]
        );
        assert!(!sampling[0].contains("CPU 1"), "{}", sampling[0]);
    }

    /// A flow key exactly as the kernel program writes it: bytes recorded from the map
    /// (`bpftool map dump`) for 198.18.1.1:43210 → 198.18.1.2:5201 in namespace 4026532890.
    #[test]
    fn flow_key_decodes_from_recorded_map_bytes() {
        let mut bytes = [0u8; 44];
        bytes[0..4].copy_from_slice(&4_026_532_890u32.to_ne_bytes()); // netns
        bytes[4..6].copy_from_slice(&2u16.to_ne_bytes()); // AF_INET
        bytes[6..8].copy_from_slice(&43210u16.to_ne_bytes()); // sport (host order in the record)
        bytes[8..10].copy_from_slice(&5201u16.to_ne_bytes()); // dport
        bytes[12..16].copy_from_slice(&[198, 18, 1, 1]); // saddr, network order
        bytes[28..32].copy_from_slice(&[198, 18, 1, 2]); // daddr
                                                         // SAFETY: FlowKey is repr(C) plain integers of exactly 44 bytes.
        let key: FlowKey = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        assert_eq!(
            (key.netns, key.sport, key.dport),
            (4_026_532_890, 43210, 5201)
        );
        let (family, s, d) = flow_addresses(&key);
        assert_eq!(
            (family, s.as_str(), d.as_str()),
            ("ipv4", "198.18.1.1", "198.18.1.2")
        );
    }

    /// Issue 15: a run counter the kernel kept but whose count could not be read is left out
    /// of `tracer_counters` (never a 0), named as unknown, and the cost line does not say
    /// "no program ran".
    #[test]
    fn unknown_run_counters_are_named_never_zero() {
        use tracer_common::counter;
        let mut d = Snapshot {
            counters: vec![0; counter::COUNT as usize],
            ..Snapshot::default()
        };
        d.counters[counter::KFREE_SKB_EVENTS as usize] = 500;
        d.counters_unknown.insert(counter::TCP_PROBE_EVENTS);
        let mut r = build_bare(&d);
        assert_eq!(r.tracer_counters.get("kfree_skb_events"), Some(&500));
        assert_eq!(r.tracer_counters.get("tcp_probe_events"), None);
        assert_eq!(r.tracer_counters_unknown, vec!["tcp_probe_events"]);
        assert!(
            r.notes
                .iter()
                .any(|n| n.starts_with("tcp_probe_events unknown")),
            "{:?}",
            r.notes
        );
        // Run times held, no program's counters read, nothing counted but the unknown one.
        r.tracer_cost.run_time_stats_held = true;
        r.tracer_counters.clear();
        let line = tracer_cost_line(&r);
        assert!(
            line.starts_with("tracer cost: unknown (no run counts were read)")
                && line.contains("tcp_probe unknown")
                && !line.contains("no program ran"),
            "{line}"
        );
    }

    #[test]
    fn tcp_states_named() {
        assert_eq!(tcp_state_name(2), "TCP_SYN_SENT");
        assert_eq!(tcp_state_name(12), "TCP_NEW_SYN_RECV");
        assert_eq!(tcp_state_name(77), "STATE_77");
    }
}

#[cfg(test)]
mod overflow_tests {
    use super::*;

    #[test]
    fn what_the_maps_could_not_keep_is_said_with_its_count() {
        let counters: BTreeMap<&'static str, u64> = [
            ("drops_map_full", 12),
            ("flows_insert_failed", 0),
            ("read_errors", 0),
        ]
        .into_iter()
        .collect();
        let notes = overflow_notes(&counters);
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].starts_with("the drops map was full: 12 drop events"),
            "{notes:?}"
        );
        let quiet: BTreeMap<&'static str, u64> = BTreeMap::new();
        assert!(overflow_notes(&quiet).is_empty());
    }
}

#[cfg(test)]
mod cost_line_tests {
    use super::*;

    #[test]
    fn cost_line_shows_rates_ns_per_run_and_losses() {
        let mut report = Report {
            tracer_version: "t",
            kernel: String::new(),
            window: WindowInfo {
                duration_s: 10.0,
                startup_ms: 1.0,
                netns: None,
            },
            probes: vec![],
            drops: Default::default(),
            retransmits: Default::default(),
            softirq: vec![],
            flows: Default::default(),
            tracer_counters: [("drops_map_full", 3), ("read_errors", 1)]
                .into_iter()
                .collect(),
            tracer_counters_unknown: Vec::new(),
            tracer_cost: TracerCost {
                bpf_stats_enabled: true,
                run_time_stats_held: false,
                programs: vec![
                    ProgramCost {
                        program: "kfree_skb".to_owned(),
                        runs: 100_000,
                        run_time_ns: 16_000_000,
                        ns_per_run: Some(160.0),
                        recursion_misses: 0,
                    },
                    ProgramCost {
                        program: "tcp_retransmit_skb".to_owned(),
                        runs: 0,
                        run_time_ns: 0,
                        ns_per_run: None,
                        recursion_misses: 0,
                    },
                ],
            },
            notes: vec![],
        };
        assert_eq!(
            tracer_cost_line(&report),
            "tracer cost: kfree_skb 10000/s × 160 ns; lost events 4"
        );
        // The sysctl off but the tracer's own BPF_ENABLE_STATS descriptor held: still timed.
        report.tracer_cost.bpf_stats_enabled = false;
        report.tracer_cost.run_time_stats_held = true;
        assert_eq!(
            tracer_cost_line(&report),
            "tracer cost: kfree_skb 10000/s × 160 ns; lost events 4"
        );
        // Recursion misses are named with the program that missed them.
        report.tracer_cost.programs[1].recursion_misses = 7;
        assert_eq!(
            tracer_cost_line(&report),
            "tracer cost: kfree_skb 10000/s × 160 ns; lost events 4; recursion misses 7 \
             (tcp_retransmit_skb 7: another BPF program was running on that CPU)"
        );
        report.tracer_cost.programs[1].recursion_misses = 0;
        // Neither the sysctl nor the descriptor (kernel < 5.8, stats turned off before the
        // window ended): the run counts are partial, so unknown.
        report.tracer_cost.run_time_stats_held = false;
        assert_eq!(
            tracer_cost_line(&report),
            "tracer cost: unknown (kernel.bpf_stats_enabled=0); the programs counted 0 events; \
             lost events 4"
        );
    }

    /// With `kernel.bpf_stats_enabled=0` the kernel counts no runs: the line must say the cost
    /// is unknown (never "no program ran") and still show what the programs counted themselves.
    #[test]
    fn stats_off_says_cost_unknown_and_shows_the_events_the_programs_counted() {
        let mut report = Report {
            tracer_version: "t",
            kernel: String::new(),
            window: WindowInfo {
                duration_s: 10.0,
                startup_ms: 1.0,
                netns: None,
            },
            probes: vec![],
            drops: Default::default(),
            retransmits: Default::default(),
            softirq: vec![],
            flows: Default::default(),
            tracer_counters: [
                ("kfree_skb_events", 4_000),
                ("sock_state_events", 1_200),
                ("tcp_probe_events", 0),
                // Runs already among tcp_probe_events: not events of their own.
                ("rtt_unmeasured_runs", 7),
                ("drops_map_full", 0),
                ("read_errors", 2),
            ]
            .into_iter()
            .collect(),
            tracer_counters_unknown: Vec::new(),
            tracer_cost: TracerCost {
                bpf_stats_enabled: false,
                run_time_stats_held: false,
                programs: vec![ProgramCost {
                    program: "kfree_skb".to_owned(),
                    runs: 0,
                    run_time_ns: 0,
                    ns_per_run: None,
                    recursion_misses: 0,
                }],
            },
            notes: vec![],
        };
        assert_eq!(
            tracer_cost_line(&report),
            "tracer cost: unknown (kernel.bpf_stats_enabled=0); the programs counted 5200 events \
             (kfree_skb 400/s, sock_state 120/s); lost events 2"
        );
        // Stats on, yet no run counted while the programs counted events (a replay without
        // run counts): not "no program ran" either.
        report.tracer_cost.bpf_stats_enabled = true;
        let line = tracer_cost_line(&report);
        assert!(!line.contains("no program ran"), "{line}");
        assert!(
            line.contains("unknown") && line.contains("5200 events"),
            "{line}"
        );
        // Stats on and truly nothing ran: that was measured, so it may be said.
        report.tracer_counters.clear();
        assert_eq!(
            tracer_cost_line(&report),
            "tracer cost: no program ran; lost events 0"
        );
    }
}
