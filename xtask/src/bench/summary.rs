//! The bench's summary: per workload and variant, the spread over rounds, the ratio to the
//! untraced runs, the kernel programs' ns per run, the observer's own cost; rendered as a
//! markdown table (with the targets checked below it) and as a JSON document. The
//! dashboard step adds one row (`dashboard`, `tracer top`) and its target.

use std::fmt::Write as _;

use serde::Serialize;

use super::counters::{self, CountersRun};
use super::lab::Workload;
use super::observe::{ObserverRun, ProbeCost};
use super::serve_scale::{self, ServeScaleRun};
use super::{DashboardRun, RunRecord, Variant, DASHBOARD_RATE, DASHBOARD_WINDOW};

/// The probes shown in the table, by tracepoint name.
const KFREE_SKB: &str = "kfree_skb";
const SOFTIRQ_ENTRY: &str = "softirq_entry";
const SOFTIRQ_EXIT: &str = "softirq_exit";
const RETRANSMIT: &str = "tcp_retransmit_skb";
const TCP_PROBE: &str = "tcp_probe";

/// Where and how the bench ran.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    pub started_unix: u64,
    pub wall_s: f64,
    pub rounds: u32,
    pub seconds: u32,
    pub kernel: String,
    pub cpus: usize,
    pub bpftrace_version: String,
    /// `kernel.bpf_stats_enabled` before the bench (restored afterwards); 1 during every run.
    pub bpf_stats_enabled_before: String,
    /// Times another process had set the sysctl back to 0 and the bench set it to 1 again
    /// (run times kept being counted: the bench also holds a `BPF_ENABLE_STATS` descriptor).
    pub bpf_stats_resets: u32,
    pub bpftrace_program: String,
    pub bpftrace_empty_program: String,
}

/// Median and range of some values.
#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub values: Vec<f64>,
}

impl Spread {
    pub fn of(values: Vec<f64>) -> Option<Spread> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len().is_multiple_of(2) {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        } else {
            sorted[mid]
        };
        Some(Spread {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            values,
        })
    }
}

/// One kernel program over every run of a row.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeSummary {
    pub program: String,
    pub runs: u64,
    pub run_time_ns: u64,
    /// Pooled: all run time over all runs.
    pub ns_per_run: Option<f64>,
    /// Per round, for the spread.
    pub ns_per_run_by_round: Vec<Option<f64>>,
}

/// Traced throughput relative to the untraced runs.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// Median traced / median untraced.
    pub of_medians: f64,
    /// Per round: traced / untraced of the same round.
    pub paired: Option<Spread>,
}

/// One workload under one variant, over every round.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub workload: Workload,
    pub variant: Variant,
    pub unit: &'static str,
    pub measured_by: &'static str,
    pub throughput: Option<Spread>,
    pub vs_untraced: Option<Ratio>,
    /// Units per second of generator CPU time (robust to other load on the machine).
    pub per_cpu_s: Option<Spread>,
    pub vs_untraced_per_cpu_s: Option<Ratio>,
    /// The generator's CPU time over what its threads could have had.
    pub generator_cpu_share: Option<Spread>,
    /// Runs of this row that were repeats of contended runs.
    pub repeated: usize,
    /// What the generator sent per second (datagrams or bytes).
    pub sent_per_s: Option<Spread>,
    pub send_errors: u64,
    /// `RetransSegs` per second in the sender (TCP).
    pub retrans_segs_per_s: Option<Spread>,
    pub probes: Vec<ProbeSummary>,
    pub cpu_percent: Option<Spread>,
    pub cpu_window_ms: Option<Spread>,
    pub cpu_startup_ms: Option<Spread>,
    pub events_per_s: Option<Spread>,
    pub rss_peak_mib: Option<f64>,
    pub startup_ms: Option<Spread>,
    pub stop_ms: Option<Spread>,
}

/// A target of issue 15 (issue 6's, tightened) and whether this run meets it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub what: String,
    pub limit: String,
    pub measured: Option<String>,
    pub met: Option<bool>,
}

/// Everything the bench writes to `target/bench/`.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    pub command: &'static str,
    pub context: Context,
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
    pub runs: Vec<RunRecord>,
    /// Contended runs that were repeated (not in the summary).
    pub discarded_runs: Vec<RunRecord>,
    /// The live dashboard's cost, when its step ran.
    pub dashboard: Option<DashboardRun>,
    /// One counter sample's cost per count of lab namespaces, when its step ran.
    pub counters: Vec<CountersRun>,
    /// `tracer serve` at rest per count of lab namespaces, when its step ran (set after
    /// [`Document::new`]).
    pub serve_scale: Vec<ServeScaleRun>,
}

/// The dashboard's CPU limit, % of one core.
const DASHBOARD_CPU_LIMIT: f64 = 2.0;
/// A run slower than this share of the asked rate does not count as "at 100k events/s".
const DASHBOARD_RATE_SHARE: f64 = 0.95;

fn dashboard_target_name() -> String {
    format!(
        "dashboard CPU ≤ {DASHBOARD_CPU_LIMIT} % of a core at {} events/s",
        si(DASHBOARD_RATE as f64)
    )
}

/// The dashboard's target: CPU within the limit, at the asked rate, and a dashboard that
/// really showed the drops.
fn dashboard_target(run: &DashboardRun) -> Target {
    let mut measured = format!(
        "{:.2} % of a core at {} drops/s",
        run.cpu_percent,
        si(run.events_per_s)
    );
    if let Some(runs) = run.probe_runs_per_s {
        let _ = write!(measured, ", {} probe runs/s", si(runs));
    }
    let fast_enough = run.events_per_s >= DASHBOARD_RATE_SHARE * run.rate_requested as f64;
    if !fast_enough {
        let _ = write!(
            measured,
            "; the flood fell short of {} datagrams/s",
            si(run.rate_requested as f64)
        );
    }
    if !run.rendered {
        measured.push_str("; the dashboard showed no NO_SOCKET / NETFILTER_DROP");
    }
    Target {
        what: dashboard_target_name(),
        limit: format!("≤ {DASHBOARD_CPU_LIMIT} %"),
        met: Some(run.cpu_percent <= DASHBOARD_CPU_LIMIT && fast_enough && run.rendered),
        measured: Some(measured),
    }
}

/// The dashboard's row of the markdown table.
fn dashboard_row(run: &DashboardRun) -> String {
    let ns = |name: &str| {
        run.programs
            .iter()
            .find(|p| p.program == name)
            .and_then(ProbeCost::ns_per_run)
    };
    let softirq = match (ns(SOFTIRQ_ENTRY), ns(SOFTIRQ_EXIT)) {
        (Some(entry), Some(exit)) => format!("{entry:.0} + {exit:.0} = {:.0}", entry + exit),
        (entry, exit) if entry.is_none() && exit.is_none() => "–".to_owned(),
        (entry, exit) => format!("{} + {}", ns_cell(entry), ns_cell(exit)),
    };
    format!(
        "| dashboard (drops/s) | tracer top | {} | – | – | – | {} | {softirq} | {} | {} \
         | {:.2} ({}) | {:.1} | – | – |",
        si(run.events_per_s),
        ns_cell(ns(KFREE_SKB)),
        ns_cell(ns(RETRANSMIT)),
        ns_cell(ns(TCP_PROBE)),
        run.cpu_percent,
        si(run.probe_runs_per_s.unwrap_or(run.events_per_s)),
        run.rss_peak_kib as f64 / 1024.0,
    )
}

/// The progress line of the dashboard step.
pub fn dashboard_progress_line(run: &DashboardRun) -> String {
    format!(
        "dashboard: {} drops/s ({} probe runs/s); `tracer top` CPU {:.2} % of a core over {:.1} s \
         (+{:.0} ms in children), peak RSS {:.1} MiB; {}",
        si(run.events_per_s),
        run.probe_runs_per_s.map_or_else(|| "–".to_owned(), si),
        run.cpu_percent,
        run.window_s,
        run.children_cpu_ms,
        run.rss_peak_kib as f64 / 1024.0,
        if run.rendered {
            "the dashboard showed the drops"
        } else {
            "the dashboard did NOT show the drops"
        }
    )
}

fn observers<'a>(runs: &[&'a RunRecord]) -> Vec<&'a ObserverRun> {
    runs.iter()
        .filter_map(|run| run.observer.as_ref())
        .collect()
}

fn spread_of<'a>(
    observers: &[&'a ObserverRun],
    value: impl Fn(&'a ObserverRun) -> Option<f64>,
) -> Option<Spread> {
    Spread::of(observers.iter().filter_map(|o| value(o)).collect())
}

fn probe_summaries(observers: &[&ObserverRun]) -> Vec<ProbeSummary> {
    let mut names: Vec<String> = Vec::new();
    for observer in observers {
        for program in &observer.programs {
            if !names.contains(&program.program) {
                names.push(program.program.clone());
            }
        }
    }
    names
        .into_iter()
        .map(|name| {
            let costs: Vec<_> = observers
                .iter()
                .map(|o| o.programs.iter().find(|p| p.program == name))
                .collect();
            let runs: u64 = costs.iter().flatten().map(|p| p.runs).sum();
            let run_time_ns: u64 = costs.iter().flatten().map(|p| p.run_time_ns).sum();
            ProbeSummary {
                ns_per_run: (runs > 0).then(|| run_time_ns as f64 / runs as f64),
                ns_per_run_by_round: costs
                    .iter()
                    .map(|p| p.and_then(|p| p.ns_per_run()))
                    .collect(),
                program: name,
                runs,
                run_time_ns,
            }
        })
        .collect()
}

/// `value` of the traced runs relative to the untraced ones: medians, and paired per round.
fn ratio(
    variant: Variant,
    runs: &[&RunRecord],
    untraced: &[&RunRecord],
    value: impl Fn(&RunRecord) -> Option<f64>,
) -> Option<Ratio> {
    if variant == Variant::Untraced {
        return None;
    }
    let traced = Spread::of(runs.iter().filter_map(|r| value(r)).collect())?;
    let base = Spread::of(untraced.iter().filter_map(|r| value(r)).collect())?;
    if base.median <= 0.0 {
        return None;
    }
    let paired = runs
        .iter()
        .filter_map(|run| {
            let same = untraced.iter().find(|u| u.round == run.round)?;
            let (traced, base) = (value(run)?, value(same)?);
            (base > 0.0).then(|| traced / base)
        })
        .collect();
    Some(Ratio {
        of_medians: traced.median / base.median,
        paired: Spread::of(paired),
    })
}

impl Row {
    fn new(workload: Workload, variant: Variant, records: &[RunRecord]) -> Row {
        let runs: Vec<&RunRecord> = records
            .iter()
            .filter(|r| r.workload == workload && r.variant == variant)
            .collect();
        let untraced: Vec<&RunRecord> = records
            .iter()
            .filter(|r| r.workload == workload && r.variant == Variant::Untraced)
            .collect();
        let throughput = Spread::of(runs.iter().map(|r| r.throughput).collect());
        let per_cpu_s = Spread::of(runs.iter().filter_map(|r| r.per_cpu_s).collect());
        let observers = observers(&runs);
        Row {
            workload,
            variant,
            unit: workload.unit(),
            measured_by: workload.measured_by(),
            vs_untraced: ratio(variant, &runs, &untraced, |r| Some(r.throughput)),
            throughput,
            vs_untraced_per_cpu_s: ratio(variant, &runs, &untraced, |r| r.per_cpu_s),
            per_cpu_s,
            generator_cpu_share: Spread::of(
                runs.iter().map(|r| r.load.generator_cpu_share).collect(),
            ),
            repeated: runs.iter().filter(|r| r.attempt > 1).count(),
            sent_per_s: Spread::of(
                runs.iter()
                    .filter(|r| r.load.elapsed_s > 0.0)
                    .map(|r| r.load.sent as f64 / r.load.elapsed_s)
                    .collect(),
            ),
            send_errors: runs.iter().map(|r| r.load.send_errors).sum(),
            retrans_segs_per_s: Spread::of(
                runs.iter()
                    .filter(|r| r.load.elapsed_s > 0.0)
                    .filter_map(|r| r.load.retrans_segs.map(|n| n as f64 / r.load.elapsed_s))
                    .collect(),
            ),
            probes: probe_summaries(&observers),
            cpu_percent: spread_of(&observers, |o| Some(o.cpu_percent)),
            cpu_window_ms: spread_of(&observers, |o| Some(o.cpu_window_ms)),
            cpu_startup_ms: spread_of(&observers, |o| Some(o.cpu_startup_ms)),
            events_per_s: spread_of(&observers, |o| Some(o.events_per_s)),
            rss_peak_mib: observers
                .iter()
                .map(|o| o.rss_peak_kib as f64 / 1024.0)
                .reduce(f64::max),
            startup_ms: spread_of(&observers, |o| Some(o.startup_ms)),
            stop_ms: spread_of(&observers, |o| o.stop_ms),
        }
    }

    fn probe(&self, name: &str) -> Option<&ProbeSummary> {
        self.probes.iter().find(|p| p.program == name)
    }

    fn ns(&self, name: &str) -> Option<f64> {
        self.probe(name).and_then(|p| p.ns_per_run)
    }
}

/// Pooled ns/run of `program` over every row of `variant`.
fn pooled_ns(rows: &[Row], variant: Variant, programs: &[&str]) -> Option<f64> {
    let mut total = 0.0;
    for program in programs {
        let (runs, time) = rows
            .iter()
            .filter(|row| row.variant == variant)
            .filter_map(|row| row.probe(program))
            .fold((0_u64, 0_u64), |(runs, time), p| {
                (runs + p.runs, time + p.run_time_ns)
            });
        if runs == 0 {
            return None;
        }
        total += time as f64 / runs as f64;
    }
    Some(total)
}

fn at_most(what: &str, limit: f64, unit: &str, measured: Option<f64>, detail: String) -> Target {
    Target {
        what: what.to_owned(),
        limit: format!("≤ {limit} {unit}"),
        measured: measured.map(|value| format!("{value:.2} {unit}{detail}")),
        met: measured.map(|value| value <= limit),
    }
}

fn max_median(rows: &[Row], value: impl Fn(&Row) -> Option<&Spread>) -> Option<f64> {
    rows.iter()
        .filter(|row| row.variant == Variant::Tracer)
        .filter_map(|row| value(row).map(|s| s.median))
        .reduce(f64::max)
}

/// One probe family's ns/run target (issue 15): the tracer's pooled ns/run, with the floor's
/// (empty programs, same tracepoints, same run) and what is above it, and bpftrace's.
fn ns_target(rows: &[Row], what: &str, limit: f64, programs: &[&str]) -> Target {
    let floor = pooled_ns(rows, Variant::RawTpFloor, programs);
    let tracer = pooled_ns(rows, Variant::Tracer, programs);
    let mut detail = String::new();
    if let Some(floor) = floor {
        let _ = write!(detail, " (floor {floor:.0} ns");
        if let Some(tracer) = tracer {
            let _ = write!(detail, ", {:.0} ns above it", tracer - floor);
        }
        detail.push(')');
    }
    if let Some(ns) = pooled_ns(rows, Variant::Bpftrace, programs) {
        let _ = write!(detail, " (bpftrace {ns:.0} ns)");
    }
    at_most(
        &format!("{what} ns/run (all tracer runs pooled)"),
        limit,
        "ns",
        tracer,
        detail,
    )
}

fn targets(rows: &[Row]) -> Vec<Target> {
    let mut targets = vec![
        ns_target(rows, "kfree_skb", 60.0, &[KFREE_SKB]),
        ns_target(
            rows,
            "softirq entry+exit",
            100.0,
            &[SOFTIRQ_ENTRY, SOFTIRQ_EXIT],
        ),
        ns_target(rows, "tcp_retransmit_skb", 400.0, &[RETRANSMIT]),
        ns_target(rows, "tcp_probe", 150.0, &[TCP_PROBE]),
    ];
    let flood_ratio = rows
        .iter()
        .filter(|row| {
            row.variant == Variant::Tracer
                && matches!(row.workload, Workload::UdpClosedPort | Workload::UdpNftDrop)
        })
        .filter_map(|row| {
            let per_cpu = row.vs_untraced_per_cpu_s.as_ref().map(|r| r.of_medians);
            let floor = floor_ratio(rows, row.workload);
            Some((row.vs_untraced.as_ref()?.of_medians, per_cpu, floor))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0));
    targets.push(Target {
        what: "drop flood throughput traced / untraced (worst UDP workload, medians)".to_owned(),
        limit: "≥ 0.95, or within 0.03 of the floor of the same run".to_owned(),
        measured: flood_ratio.map(|(r, per_cpu, floor)| {
            let mut text = format!("{r:.3}");
            if let Some(per_cpu) = per_cpu {
                let _ = write!(text, " (per generator CPU-s: {per_cpu:.3})");
            }
            if let Some(floor) = floor {
                let _ = write!(text, ", floor {floor:.3}");
            }
            text
        }),
        met: flood_ratio
            .map(|(r, _, floor)| r >= 0.95 || floor.is_some_and(|floor| r >= floor - 0.03)),
    });
    let cpu_row = rows
        .iter()
        .filter(|row| row.variant == Variant::Tracer)
        .filter_map(|row| {
            Some((
                row.cpu_percent.as_ref()?.median,
                row.events_per_s.as_ref()?.median,
            ))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    targets.push(at_most(
        "tracer user-space CPU, % of one core (at its busiest workload)",
        1.0,
        "%",
        cpu_row.map(|(cpu, _)| cpu),
        cpu_row
            .map(|(_, events)| format!(" at {} events/s", si(events)))
            .unwrap_or_default(),
    ));
    let rss = rows
        .iter()
        .filter(|row| row.variant == Variant::Tracer)
        .filter_map(|row| row.rss_peak_mib)
        .reduce(f64::max);
    targets.push(at_most("tracer peak RSS", 40.0, "MiB", rss, String::new()));
    targets.push(at_most(
        "tracer start-up to all probes attached (worst median)",
        150.0,
        "ms",
        max_median(rows, |row| row.startup_ms.as_ref()),
        String::new(),
    ));
    targets.push(at_most(
        "tracer window end to report printed (worst median)",
        200.0,
        "ms",
        max_median(rows, |row| row.stop_ms.as_ref()),
        String::new(),
    ));
    targets
}

/// `1234567` as `1.23M`.
pub fn si(value: f64) -> String {
    let abs = value.abs();
    if abs >= 1e9 {
        format!("{:.2}G", value / 1e9)
    } else if abs >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if abs >= 1e3 {
        format!("{:.0}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

fn spread_cell(spread: Option<&Spread>, show: impl Fn(f64) -> String) -> String {
    match spread {
        Some(s) if s.values.len() > 1 => {
            format!("{} [{}–{}]", show(s.median), show(s.min), show(s.max))
        }
        Some(s) => show(s.median),
        None => "–".to_owned(),
    }
}

fn ns_cell(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |ns| format!("{ns:.0}"))
}

fn softirq_cell(row: &Row) -> String {
    match (row.ns(SOFTIRQ_ENTRY), row.ns(SOFTIRQ_EXIT)) {
        (Some(entry), Some(exit)) => format!("{entry:.0} + {exit:.0} = {:.0}", entry + exit),
        (None, None) => "–".to_owned(),
        (entry, exit) => format!("{} + {}", ns_cell(entry), ns_cell(exit)),
    }
}

/// ` (+N)`: how far a row's ns/run of `programs` (summed) lies above the floor's (empty
/// programs on the same tracepoints) in the same workload; empty for the floor itself or when
/// either is unmeasured.
fn above_floor(rows: &[Row], row: &Row, programs: &[&str]) -> String {
    if row.variant == Variant::RawTpFloor {
        return String::new();
    }
    let sum = |r: &Row| programs.iter().map(|p| r.ns(p)).sum::<Option<f64>>();
    let floor = rows
        .iter()
        .find(|r| r.workload == row.workload && r.variant == Variant::RawTpFloor)
        .and_then(sum);
    match (sum(row), floor) {
        (Some(ns), Some(floor)) => format!(" ({:+.0})", ns - floor),
        _ => String::new(),
    }
}

/// The floor's ratio (empty raw tracepoint programs) of `workload`, when that variant ran.
fn floor_ratio(rows: &[Row], workload: Workload) -> Option<f64> {
    rows.iter()
        .find(|row| row.workload == workload && row.variant == Variant::RawTpFloor)
        .and_then(|row| row.vs_untraced.as_ref())
        .map(|ratio| ratio.of_medians)
}

/// [`ratio_cell`] with the floor measured in the same run beside a traced row's ratio.
fn ratio_with_floor(rows: &[Row], row: &Row) -> String {
    let cell = ratio_cell(row, row.vs_untraced.as_ref());
    match (row.variant, floor_ratio(rows, row.workload)) {
        (Variant::Untraced | Variant::RawTpFloor, _) | (_, None) => cell,
        (_, Some(floor)) => format!("{cell} (floor {floor:.3})"),
    }
}

/// `probe hook, …` of the tracer's probes as its reports named them (first report that did).
fn hooks_line(runs: &[RunRecord]) -> Option<String> {
    let hooks = runs
        .iter()
        .filter(|run| run.variant == Variant::Tracer)
        .filter_map(|run| run.observer.as_ref())
        .map(|observer| &observer.hooks)
        .find(|hooks| !hooks.is_empty())?;
    let each: Vec<String> = hooks
        .iter()
        .map(|(probe, hook)| format!("{probe} {hook}"))
        .collect();
    Some(format!(
        "Hook of each tracer probe (its report's probes section): {}.",
        each.join(", ")
    ))
}

fn ratio_cell(row: &Row, ratio: Option<&Ratio>) -> String {
    match (ratio, row.variant) {
        (_, Variant::Untraced) => "1".to_owned(),
        (Some(ratio), _) => match &ratio.paired {
            Some(p) if p.values.len() > 1 => {
                format!("{:.3} [{:.3}–{:.3}]", ratio.of_medians, p.min, p.max)
            }
            _ => format!("{:.3}", ratio.of_medians),
        },
        (None, _) => "–".to_owned(),
    }
}

impl Document {
    pub fn new(
        context: Context,
        workloads: &[Workload],
        variants: &[Variant],
        runs: Vec<RunRecord>,
        discarded_runs: Vec<RunRecord>,
        dashboard: Option<DashboardRun>,
        counters: Vec<CountersRun>,
    ) -> Document {
        let rows: Vec<Row> = workloads
            .iter()
            .flat_map(|w| variants.iter().map(|v| Row::new(*w, *v, &runs)))
            .collect();
        let mut targets = if rows.is_empty() {
            Vec::new()
        } else {
            targets(&rows)
        };
        targets.extend(dashboard.as_ref().map(dashboard_target));
        let mut notes = if rows.is_empty() {
            Vec::new()
        } else {
            Document::run_notes(&context, &rows, &runs, &discarded_runs)
        };
        if let Some(run) = &dashboard {
            notes.push(format!(
                "dashboard: `tracer top --window {DASHBOARD_WINDOW} --netns …` in a detached {} \
                 session, given 3 s to start, then a flood paced to {} datagrams/s (1 thread, a \
                 burst every 10 ms) to a closed port in its namespace for {:.1} s. Drops/s = the \
                 namespace's Udp NoPorts delta / generator time (each one kfree_skb NO_SOCKET \
                 event, plus softirq events); probe runs/s = bpftool run_cnt deltas of its \
                 programs. CPU % = its utime+stime (/proc/PID/stat, all threads) between the \
                 load's start and end over that wall time ({:.2} s); children it waited for \
                 (listing tools) took {:.0} ms more. RSS = largest VmHWM polled every 100 ms. \
                 The pane showed {} at the end; {} foreign tracepoint program(s).",
                run.terminal,
                si(run.rate_requested as f64),
                run.load.elapsed_s,
                run.window_s,
                run.children_cpu_ms,
                if run.rendered {
                    "the drops (NO_SOCKET / NETFILTER_DROP)"
                } else {
                    "NO drop reason"
                },
                run.foreign_probes.len()
            ));
        }
        Document {
            command: "cargo xtask bench",
            context,
            rows,
            targets,
            notes,
            runs,
            discarded_runs,
            dashboard,
            counters,
            serve_scale: Vec::new(),
        }
    }

    /// The notes on the workloads' runs.
    fn run_notes(
        context: &Context,
        rows: &[Row],
        runs: &[RunRecord],
        discarded_runs: &[RunRecord],
    ) -> Vec<String> {
        let mut notes = vec![
            format!(
                "kernel.bpf_stats_enabled=1 during every run (it was {} before, and is again); \
                 ns/run = run_time_ns / run_cnt pooled over the rounds.",
                context.bpf_stats_enabled_before
            ),
            "Throughput ranges are min–max over rounds; `vs untraced` is median/median with the \
             per-round paired ratios' range; variants rotate their order every round."
                .to_owned(),
            "Generator CPU share = the load generator's utime+stime over elapsed x threads (the \
             kernel's work for each packet, tracing programs included, runs in its context); a \
             flood below 90 % was disturbed by other load and is repeated (12 repeats in all), \
             as is a run during which another process had tracepoint programs attached; before \
             each run the bench waits (120 s in all) for CPUs under 25 % busy and no such \
             programs. \
             `per generator CPU-s` divides the count by that CPU time instead of wall time."
                .to_owned(),
            "CPU % = the observer's utime+stime from all probes attached to exit (rusage less \
             /proc/PID/stat at attach) over that time; the tracer's window is the load + 1 s."
                .to_owned(),
            "Floor = `rawtp_floor`: an empty program (`r0 = 0; exit`) on each of the tracer's \
             tracepoints, attached as a raw tracepoint; `(floor X)` beside a ratio is its ratio \
             on the same workload in the same run, `(+N)` beside an ns/run how far it lies \
             above the floor's ns/run on the same workload (the floor's own ns/run is mostly \
             the kernel timing the run: two clock reads)."
                .to_owned(),
            "Start-up: tracer = its own `probes attached in N ms`; bpftrace and the floor = spawn \
             to all its perf links in `bpftool perf show`. Report: tracer = its `verdict written N ms after \
             the window closed`; bpftrace = SIGINT to exit (printing its maps)."
                .to_owned(),
        ];
        notes.extend(hooks_line(runs));
        for row in rows.iter().filter(|row| row.variant == Variant::Untraced) {
            if let Some(sent) = &row.sent_per_s {
                let what = if row.workload == Workload::TcpLoss {
                    "B/s written"
                } else {
                    "datagrams/s sent"
                };
                let mut line = format!(
                    "{} untraced: load generator {} {what} (median), measured {} {}",
                    row.workload.name(),
                    si(sent.median),
                    row.throughput
                        .as_ref()
                        .map_or_else(|| "–".to_owned(), |t| si(t.median)),
                    row.unit
                );
                if let Some(retrans) = &row.retrans_segs_per_s {
                    let _ = write!(line, ", {} RetransSegs/s", si(retrans.median));
                }
                notes.push(line);
            }
        }
        let still: usize = runs
            .iter()
            .filter(|r| r.workload.is_flood() && r.load.generator_cpu_share < 0.9)
            .count();
        let foreign: usize = runs.iter().filter(|r| !r.foreign_probes.is_empty()).count();
        notes.push(format!(
            "{} contended run(s) repeated; of the runs kept, {still} had a flood generator below \
             90 % CPU share and {foreign} ran while another process had tracepoint programs \
             attached; kernel.bpf_stats_enabled was reset by another process {} time(s).",
            discarded_runs.len(),
            context.bpf_stats_resets
        ));
        notes
    }

    /// The markdown table, the targets and the notes.
    pub fn markdown(&self) -> String {
        let c = &self.context;
        let mut out = String::new();
        if self.rows.is_empty() && self.dashboard.is_none() {
            let _ = writeln!(
                out,
                "`cargo xtask bench`: the counters and serve-scale steps only, Linux {}, {} CPUs",
                c.kernel, c.cpus
            );
            if !self.counters.is_empty() {
                out.push_str(&counters::markdown(&self.counters));
            }
            if !self.serve_scale.is_empty() {
                out.push_str(&serve_scale::markdown(&self.serve_scale));
            }
            return out;
        }
        if self.rows.is_empty() {
            let _ = writeln!(
                out,
                "`cargo xtask bench`: the dashboard step only, Linux {}, {} CPUs\n",
                c.kernel, c.cpus
            );
        } else {
            let _ = writeln!(
                out,
                "`cargo xtask bench`: {} round(s) x {} s of load per run, Linux {}, {} CPUs, {}\n",
                c.rounds, c.seconds, c.kernel, c.cpus, c.bpftrace_version
            );
        }
        out.push_str(
            "| workload | variant | throughput median [min–max] | vs untraced | \
             vs untraced per generator CPU-s | generator CPU share | kfree_skb ns/run (± floor) \
             | softirq entry + exit ns/run (± floor) | tcp_retransmit_skb ns/run (± floor) \
             | tcp_probe ns/run (± floor) \
             | CPU % of a core (probe events/s) | peak RSS MiB | start-up ms | report ms |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for row in &self.rows {
            let observed = row.variant != Variant::Untraced;
            let dash = || "–".to_owned();
            let cpu = if observed {
                format!(
                    "{} ({})",
                    spread_cell(row.cpu_percent.as_ref(), |v| format!("{v:.2}")),
                    row.events_per_s
                        .as_ref()
                        .map_or_else(dash, |e| si(e.median))
                )
            } else {
                dash()
            };
            let _ = writeln!(
                out,
                "| {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.workload.name(),
                row.unit,
                row.variant.label(),
                spread_cell(row.throughput.as_ref(), si),
                ratio_with_floor(&self.rows, row),
                ratio_cell(row, row.vs_untraced_per_cpu_s.as_ref()),
                spread_cell(row.generator_cpu_share.as_ref(), |v| format!(
                    "{:.0} %",
                    v * 100.0
                )),
                if observed {
                    ns_cell(row.ns(KFREE_SKB)) + &above_floor(&self.rows, row, &[KFREE_SKB])
                } else {
                    dash()
                },
                if observed {
                    softirq_cell(row)
                        + &above_floor(&self.rows, row, &[SOFTIRQ_ENTRY, SOFTIRQ_EXIT])
                } else {
                    dash()
                },
                if observed {
                    ns_cell(row.ns(RETRANSMIT)) + &above_floor(&self.rows, row, &[RETRANSMIT])
                } else {
                    dash()
                },
                if observed {
                    ns_cell(row.ns(TCP_PROBE)) + &above_floor(&self.rows, row, &[TCP_PROBE])
                } else {
                    dash()
                },
                cpu,
                row.rss_peak_mib.map_or_else(dash, |m| format!("{m:.1}")),
                spread_cell(row.startup_ms.as_ref(), |v| format!("{v:.0}")),
                spread_cell(row.stop_ms.as_ref(), |v| format!("{v:.0}")),
            );
        }
        if let Some(run) = &self.dashboard {
            out.push_str(&dashboard_row(run));
            out.push('\n');
        }
        out.push_str("\nTargets (issue 15):\n\n");
        let dashboard_target = dashboard_target_name();
        for target in &self.targets {
            if target.what == dashboard_target {
                let _ = writeln!(
                    out,
                    "- {}: {} ({})",
                    target.what,
                    if target.met == Some(true) {
                        "met"
                    } else {
                        "missed"
                    },
                    target.measured.as_deref().unwrap_or("–")
                );
                continue;
            }
            let verdict = match target.met {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "not measured",
            };
            let _ = writeln!(
                out,
                "- {}: {} — measured {} — {verdict}",
                target.what,
                target.limit,
                target.measured.as_deref().unwrap_or("–")
            );
        }
        out.push('\n');
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        if !self.counters.is_empty() {
            out.push_str(&counters::markdown(&self.counters));
        }
        if !self.serve_scale.is_empty() {
            out.push_str(&serve_scale::markdown(&self.serve_scale));
        }
        out
    }
}

/// One progress line for a finished run.
pub fn progress_line(record: &RunRecord) -> String {
    let mut line = format!(
        "{} round {} {}: {} {}",
        record.workload.name(),
        record.round + 1,
        record.variant.label(),
        si(record.throughput),
        record.workload.unit()
    );
    if let Some(o) = &record.observer {
        let probes: Vec<String> = o
            .programs
            .iter()
            .filter_map(|p| Some(format!("{} {:.0}", p.program, p.ns_per_run()?)))
            .collect();
        let _ = write!(
            line,
            "; ns/run: {}; CPU {:.2} % at {} events/s, RSS {:.1} MiB, start-up {:.0} ms, stop {} ms",
            if probes.is_empty() { "–".to_owned() } else { probes.join(", ") },
            o.cpu_percent,
            si(o.events_per_s),
            o.rss_peak_kib as f64 / 1024.0,
            o.startup_ms,
            o.stop_ms.map_or_else(|| "–".to_owned(), |ms| format!("{ms:.0}"))
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::lab::LoadResult;
    use crate::bench::observe::ProbeCost;

    #[test]
    fn spread() {
        let s = Spread::of(vec![3.0, 1.0, 2.0]).expect("values");
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of(vec![4.0, 1.0, 2.0, 3.0, f64::NAN]).expect("values");
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert!(Spread::of(vec![]).is_none());
    }

    #[test]
    fn si_units() {
        assert_eq!(si(452_123.0), "452k");
        assert_eq!(si(1_690_000_000.0), "1.69G");
        assert_eq!(si(2_500_000.0), "2.50M");
        assert_eq!(si(12.0), "12");
    }

    fn record(variant: Variant, round: u32, throughput: f64, ns: u64) -> RunRecord {
        RunRecord {
            workload: Workload::UdpClosedPort,
            variant,
            round,
            throughput,
            per_cpu_s: Some(throughput / 2.0),
            attempt: 1,
            foreign_probes: Vec::new(),
            load: LoadResult {
                elapsed_s: 1.0,
                count: throughput as u64,
                sent: throughput as u64,
                send_errors: 0,
                retrans_segs: None,
                generator_cpu_s: 2.0,
                generator_cpu_share: 1.0,
            },
            observer: (variant != Variant::Untraced).then(|| ObserverRun {
                tool: "tracer",
                startup_ms: 250.0,
                stop_ms: Some(20.0),
                probes: 5,
                window_s: 2.0,
                cpu_startup_ms: 100.0,
                cpu_window_ms: 10.0,
                cpu_percent: 0.5,
                rss_peak_kib: 20 * 1024,
                rusage_maxrss_kib: 20 * 1024,
                events_per_s: 400_000.0,
                bpf_stats_enabled: true,
                programs: vec![ProbeCost {
                    program: KFREE_SKB.to_owned(),
                    runs: 1000,
                    run_time_ns: ns * 1000,
                }],
                hooks: vec![("skb:kfree_skb".to_owned(), "tracepoint".to_owned())],
                exit: "exit 0".to_owned(),
            }),
        }
    }

    fn context() -> Context {
        Context {
            started_unix: 0,
            wall_s: 1.0,
            rounds: 2,
            seconds: 1,
            kernel: "6.18".to_owned(),
            cpus: 2,
            bpftrace_version: "bpftrace v0.17.0".to_owned(),
            bpf_stats_enabled_before: "0".to_owned(),
            bpf_stats_resets: 0,
            bpftrace_program: String::new(),
            bpftrace_empty_program: String::new(),
        }
    }

    #[test]
    fn rows_ratios_and_table() {
        let runs = vec![
            record(Variant::Untraced, 0, 400_000.0, 0),
            record(Variant::Tracer, 0, 392_000.0, 100),
            record(Variant::Untraced, 1, 420_000.0, 0),
            record(Variant::Tracer, 1, 399_000.0, 110),
        ];
        let doc = Document::new(
            context(),
            &[Workload::UdpClosedPort],
            &[Variant::Untraced, Variant::Tracer],
            runs,
            Vec::new(),
            None,
            Vec::new(),
        );
        let traced = &doc.rows[1];
        let ratio = traced.vs_untraced.as_ref().expect("ratio");
        assert!((ratio.of_medians - 395_500.0 / 410_000.0).abs() < 1e-9);
        let paired = ratio.paired.as_ref().expect("paired");
        assert!((paired.min - 0.95).abs() < 1e-9);
        assert!((paired.max - 0.98).abs() < 1e-9);
        assert_eq!(traced.ns(KFREE_SKB), Some(105.0));
        let table = doc.markdown();
        assert!(
            table.contains(
                "| udp-closed-port (drops/s) | tracer | 396k [392k–399k] | 0.965 [0.950–0.980] \
                 | 0.965 [0.950–0.980] | 100 % [100 %–100 %] | 105 | – | – |"
            ),
            "{table}"
        );
        let kfree = &doc.targets[0];
        assert_eq!(kfree.measured.as_deref(), Some("105.00 ns"));
        assert_eq!(kfree.met, Some(false), "issue 15: kfree_skb ≤ 60 ns/run");
        assert!(serde_json::to_string(&doc).is_ok());
    }

    /// The floor's ratio is printed beside every traced row's ratio, counts in the flood
    /// target (within 0.03 of it meets it), and the tracer's hooks are listed.
    #[test]
    fn the_floor_stands_beside_each_ratio_and_in_the_flood_target() {
        let runs = vec![
            record(Variant::Untraced, 0, 400_000.0, 0),
            record(Variant::RawTpFloor, 0, 384_000.0, 10),
            record(Variant::Tracer, 0, 376_000.0, 100),
        ];
        let doc = Document::new(
            context(),
            &[Workload::UdpClosedPort],
            &[Variant::Untraced, Variant::RawTpFloor, Variant::Tracer],
            runs,
            Vec::new(),
            None,
            Vec::new(),
        );
        let table = doc.markdown();
        assert!(
            table.contains("| udp-closed-port (drops/s) | tracer | 376k | 0.940 (floor 0.960) |"),
            "{table}"
        );
        assert!(
            table.contains("| floor: empty raw_tp programs | 384k | 0.960 |"),
            "{table}"
        );
        let flood = doc
            .targets
            .iter()
            .find(|t| t.what.starts_with("drop flood"))
            .expect("flood target");
        assert_eq!(
            flood.measured.as_deref(),
            Some("0.940 (per generator CPU-s: 0.940), floor 0.960")
        );
        assert_eq!(flood.met, Some(true), "0.940 is within 0.03 of 0.960");
        // ns/run beside the floor's: in the table and in the kfree_skb target.
        assert!(
            table.contains("| 100 % | 100 (+90) | – | – | – |"),
            "{table}"
        );
        assert_eq!(
            doc.targets[0].measured.as_deref(),
            Some("100.00 ns (floor 10 ns, 90 ns above it)")
        );
        assert!(
            table.contains("Hook of each tracer probe (its report's probes section): skb:kfree_skb tracepoint."),
            "{table}"
        );
        let lower = vec![
            record(Variant::Untraced, 0, 400_000.0, 0),
            record(Variant::RawTpFloor, 0, 396_000.0, 10),
            record(Variant::Tracer, 0, 368_000.0, 100),
        ];
        let doc = Document::new(
            context(),
            &[Workload::UdpClosedPort],
            &[Variant::Untraced, Variant::RawTpFloor, Variant::Tracer],
            lower,
            Vec::new(),
            None,
            Vec::new(),
        );
        let flood = doc
            .targets
            .iter()
            .find(|t| t.what.starts_with("drop flood"))
            .expect("flood target");
        assert_eq!(
            flood.met,
            Some(false),
            "0.920 is neither 0.95 nor within 0.03 of 0.990"
        );
    }

    #[test]
    fn hooks_come_from_the_reports_probes_section_or_default_to_tracepoint() {
        let observations = serde_json::json!({"probes": [
            {"tracepoint": "skb:kfree_skb", "program": "kfree_skb", "hook": "tp_btf"},
            {"tracepoint": "irq:softirq_entry", "program": "softirq_entry"}
        ]});
        assert_eq!(
            super::super::observe::probe_hooks(&observations),
            [
                ("skb:kfree_skb".to_owned(), "tp_btf".to_owned()),
                ("irq:softirq_entry".to_owned(), "tracepoint".to_owned())
            ]
        );
    }

    fn dashboard_run(cpu_percent: f64, rendered: bool) -> DashboardRun {
        DashboardRun {
            command: "tracer top --window 30s --netns /run/netns/x".to_owned(),
            terminal: "tmux 120x40".to_owned(),
            rate_requested: 100_000,
            events_per_s: 99_800.0,
            probe_runs_per_s: Some(310_000.0),
            programs: vec![ProbeCost {
                program: KFREE_SKB.to_owned(),
                runs: 998_000,
                run_time_ns: 998_000 * 90,
            }],
            window_s: 10.0,
            cpu_ms: cpu_percent * 100.0,
            cpu_percent,
            children_cpu_ms: 0.0,
            rss_peak_kib: 12 * 1024,
            rendered,
            screen: "NO_SOCKET".to_owned(),
            foreign_probes: Vec::new(),
            load: LoadResult {
                elapsed_s: 10.0,
                count: 998_000,
                sent: 1_000_000,
                send_errors: 0,
                retrans_segs: None,
                generator_cpu_s: 0.5,
                generator_cpu_share: 0.05,
            },
        }
    }

    #[test]
    fn dashboard_row_and_target() {
        let doc = Document::new(
            context(),
            &[],
            &[],
            Vec::new(),
            Vec::new(),
            Some(dashboard_run(1.25, true)),
            Vec::new(),
        );
        assert_eq!(doc.targets.len(), 1);
        assert_eq!(doc.targets[0].met, Some(true));
        let table = doc.markdown();
        assert!(
            table.contains(
                "| dashboard (drops/s) | tracer top | 100k | – | – | – | 90 | – | – | – \
                 | 1.25 (310k) | 12.0 | – | – |"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "- dashboard CPU ≤ 2 % of a core at 100k events/s: met (1.25 % of a core at \
                 100k drops/s, 310k probe runs/s)"
            ),
            "{table}"
        );
        assert!(serde_json::to_string(&doc).is_ok());
        let over = dashboard_target(&dashboard_run(2.5, true));
        assert_eq!(over.met, Some(false));
        let blank = dashboard_target(&dashboard_run(0.5, false));
        assert_eq!(blank.met, Some(false));
        let doc = Document::new(
            context(),
            &[],
            &[],
            Vec::new(),
            Vec::new(),
            Some(dashboard_run(2.5, true)),
            Vec::new(),
        );
        assert!(
            doc.markdown()
                .contains("- dashboard CPU ≤ 2 % of a core at 100k events/s: missed (2.50 %"),
            "{}",
            doc.markdown()
        );
    }
}
