//! `cargo xtask bench`: the tracer's cost, side by side with bpftrace, in one run.
//!
//! For each workload (a lab of network namespaces it creates, see [`lab`]) it runs the load
//! untraced, traced by `tracer report`, traced by the equivalent bpftrace program, traced by
//! bpftrace programs with empty bodies on the same tracepoints, and traced by empty programs of
//! our own attached as raw tracepoints (`rawtp_floor`: the attach floor, the least any eBPF
//! program on those tracepoints costs), in an order that rotates every round so that the machine's drift cancels out. With
//! `kernel.bpf_stats_enabled=1` (restored afterwards) it collects the kernel programs' ns per
//! run, and for the user-space processes their CPU time, peak RSS, start-up and stop times (see
//! [`observe`]). The summary (see [`summary`]) goes to stdout as a markdown table and, with
//! every run, to `target/bench/bench-<unix time>.json` and `target/bench/latest.json`.
//!
//! After the workloads, the `dashboard` step measures the live dashboard: `tracer top` in a
//! detached tmux terminal while a flood paced to 100k datagrams/s hits a closed port in the
//! namespace it watches (see [`run_dashboard`]). `--only` picks workloads and/or `dashboard`.
//!
//! Then the `counters` step measures one counter sample (wall and CPU time) with 0, 100 and
//! 250 idle lab namespaces (see [`counters`]), and last the `serve-scale` step `tracer serve`'s
//! start-up, CPU and RSS at rest with 0, 100 and 250 (see [`serve_scale`]).

mod counters;
mod lab;
mod observe;
mod serve_scale;
mod summary;

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use clap::builder::PossibleValue;
use serde::Serialize;

use crate::cmd::{command, find_in_path, run as run_cmd, stdout_of};
use crate::tasks;
use lab::{Lab, LoadResult, StatsGuard, Workload};
use observe::{Bpftrace, ObserverRun, ProbeCost, Tools, TopSession, TracerProcess};

/// The equivalent bpftrace program for every probe of the tracer (one process, as the tracer).
///
/// Map names differ per probe (bpftrace cannot give one map two key types) and the address
/// arrays of `tcp_retransmit_skb` go through `ntop` (an array cannot be a map key).
/// `tcp_probe`'s addresses are 28-byte sockaddrs `ntop` does not take: its RTT histogram is
/// keyed by family and port only (lighter than the tracer's, which keys by namespace, address
/// and port).
pub const BPFTRACE_PROGRAM: &str = "\
tracepoint:skb:kfree_skb { @drops[args->reason] = count(); }
tracepoint:irq:softirq_entry { @start[cpu] = nsecs; }
tracepoint:irq:softirq_exit /@start[cpu]/ { @ns[cpu, args->vec] = sum(nsecs - @start[cpu]); delete(@start[cpu]); }
tracepoint:tcp:tcp_retransmit_skb { @retrans[ntop(args->saddr), ntop(args->daddr), args->sport, args->dport] = count(); }
tracepoint:tcp:tcp_probe { @rtt[args->family, args->dport] = hist(args->srtt); }
tracepoint:sock:inet_sock_set_state { @state[args->oldstate, args->newstate, ntop(args->daddr), args->dport] = count(); }
tracepoint:tcp:tcp_send_reset { @rst_sent[args->reason] = count(); }
tracepoint:tcp:tcp_receive_reset { @rst_recv[ntop(args->daddr), args->dport] = count(); }
tracepoint:sock:inet_sk_error_report { @sock_err[args->error, ntop(args->daddr), args->dport] = count(); }
";

/// The same tracepoints with empty bodies: what any eBPF program costs here.
pub const BPFTRACE_EMPTY_PROGRAM: &str = "\
tracepoint:skb:kfree_skb { }
tracepoint:irq:softirq_entry { }
tracepoint:irq:softirq_exit { }
tracepoint:tcp:tcp_retransmit_skb { }
tracepoint:tcp:tcp_probe { }
tracepoint:sock:inet_sock_set_state { }
tracepoint:tcp:tcp_send_reset { }
tracepoint:tcp:tcp_receive_reset { }
tracepoint:sock:inet_sk_error_report { }
";

/// The tracer's tracepoints, each given an empty raw tracepoint program by `rawtp_floor` (the
/// attach floor; bpftrace 0.17 has no `rawtracepoint:` probes).
pub const FLOOR_TRACEPOINTS: [&str; 10] = [
    "kfree_skb",
    "softirq_entry",
    "softirq_exit",
    "tcp_retransmit_skb",
    "tcp_retransmit_synack",
    "tcp_probe",
    "inet_sock_set_state",
    "tcp_send_reset",
    "tcp_receive_reset",
    "inet_sk_error_report",
];

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// A fast check: 1 round of 2 s runs (overridden by --rounds / --seconds).
    #[arg(long)]
    quick: bool,
    /// Rounds; each runs every variant of every workload once [default: 3].
    #[arg(long)]
    rounds: Option<u32>,
    /// Seconds of load per run [default: 5].
    #[arg(long)]
    seconds: Option<u32>,
    /// Only these steps (comma-separated): workloads, `dashboard`, or `counters`.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Step>,
    /// Leave out the bpftrace runs with empty programs (the baseline).
    #[arg(long)]
    no_empty_baseline: bool,
    /// Use the existing target/release/tracer instead of running setup and building it.
    #[arg(long)]
    no_build: bool,
    /// Add the variant "tracer + capture": `report --capture` (the capture program attached
    /// for the whole window, every drop of the namespace passed through the ring buffer up
    /// to its rate limit).
    #[arg(long)]
    capture: bool,
}

impl Options {
    fn rounds(&self) -> u32 {
        self.rounds.unwrap_or(if self.quick { 1 } else { 3 }).max(1)
    }

    fn seconds(&self) -> u32 {
        self.seconds
            .unwrap_or(if self.quick { 2 } else { 5 })
            .max(1)
    }

    fn workloads(&self) -> Vec<Workload> {
        if self.only.is_empty() {
            Workload::ALL.to_vec()
        } else {
            Workload::ALL
                .iter()
                .copied()
                .filter(|workload| self.only.contains(&Step::Workload(*workload)))
                .collect()
        }
    }

    fn dashboard(&self) -> bool {
        self.only.is_empty() || self.only.contains(&Step::Dashboard)
    }

    fn counters(&self) -> bool {
        self.only.is_empty() || self.only.contains(&Step::Counters)
    }

    fn serve_scale(&self) -> bool {
        self.only.is_empty() || self.only.contains(&Step::ServeScale)
    }

    fn variants(&self) -> Vec<Variant> {
        Variant::ALL
            .iter()
            .copied()
            .filter(|variant| !(self.no_empty_baseline && *variant == Variant::BpftraceEmpty))
            .filter(|variant| self.capture || *variant != Variant::TracerCapture)
            .collect()
    }
}

/// A step of the bench, for `--only`: a workload, the dashboard or the counter sampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Workload(Workload),
    Dashboard,
    Counters,
    ServeScale,
}

const STEPS: [Step; 7] = [
    Step::Workload(Workload::UdpClosedPort),
    Step::Workload(Workload::UdpNftDrop),
    Step::Workload(Workload::TcpLoss),
    Step::Workload(Workload::NetRx),
    Step::Dashboard,
    Step::Counters,
    Step::ServeScale,
];

impl clap::ValueEnum for Step {
    fn value_variants<'a>() -> &'a [Self] {
        &STEPS
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        match self {
            Step::Workload(workload) => workload.to_possible_value(),
            Step::Dashboard => Some(
                PossibleValue::new("dashboard")
                    .help("`tracer top` in a tmux terminal at 100k drops/s: its CPU and peak RSS"),
            ),
            Step::Counters => Some(PossibleValue::new("counters").help(
                "one counter sample's wall and CPU time with 0, 100 and 250 idle namespaces",
            )),
            Step::ServeScale => Some(PossibleValue::new("serve-scale").help(
                "`tracer serve` at rest with 0, 100 and 250 idle namespaces: ready ms, CPU, RSS",
            )),
        }
    }
}

/// The dashboard step: `tracer top --window DASHBOARD_WINDOW`, given DASHBOARD_STARTUP to
/// start, then DASHBOARD_LOAD of a flood paced to DASHBOARD_RATE datagrams/s.
pub const DASHBOARD_WINDOW: &str = "30s";
const DASHBOARD_STARTUP: Duration = Duration::from_secs(3);
const DASHBOARD_LOAD: Duration = Duration::from_secs(10);
pub const DASHBOARD_RATE: u64 = 100_000;
/// The drop reasons the dashboard must show by the end (the flood's is NO_SOCKET).
const DASHBOARD_REASONS: [&str; 2] = ["NETFILTER_DROP", "NO_SOCKET"];

/// What the live dashboard cost while the paced flood ran.
#[derive(Debug, Clone, Serialize)]
pub struct DashboardRun {
    /// What ran in the tmux pane.
    pub command: String,
    /// The pane's size.
    pub terminal: String,
    /// Datagrams/s asked of the generator.
    pub rate_requested: u64,
    /// Drops/s: the namespace's `Udp: NoPorts` delta over the generator's time (each one a
    /// `kfree_skb` event, plus the softirq events of its delivery).
    pub events_per_s: f64,
    /// Runs/s of all the tracer's programs (bpftool `run_cnt` deltas) over `window_s`.
    pub probe_runs_per_s: Option<f64>,
    /// Runs and run time of each program over the load.
    pub programs: Vec<ProbeCost>,
    /// Wall time between the two CPU samples (the load's start and end).
    pub window_s: f64,
    /// The tracer's utime+stime (all threads) over `window_s`.
    pub cpu_ms: f64,
    /// `cpu_ms` as a share of one core.
    pub cpu_percent: f64,
    /// CPU time of the children it ran and waited for over `window_s` (listing tools).
    pub children_cpu_ms: f64,
    /// The largest VmHWM polled (every 100 ms under load).
    pub rss_peak_kib: u64,
    /// Whether the pane showed a drop reason (NO_SOCKET or NETFILTER_DROP) at the end.
    pub rendered: bool,
    /// The pane's text at the end.
    pub screen: String,
    /// Tracepoint programs other processes had attached at the end of the load.
    pub foreign_probes: Vec<String>,
    pub load: LoadResult,
}

/// How a run is observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    Untraced,
    Tracer,
    TracerCapture,
    Bpftrace,
    BpftraceEmpty,
    /// Empty programs of our own on the tracer's tracepoints, attached as raw tracepoints.
    RawTpFloor,
}

impl Variant {
    const ALL: [Variant; 6] = [
        Variant::Untraced,
        Variant::RawTpFloor,
        Variant::Tracer,
        Variant::TracerCapture,
        Variant::Bpftrace,
        Variant::BpftraceEmpty,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Variant::Untraced => "untraced",
            Variant::Tracer => "tracer",
            Variant::TracerCapture => "tracer + capture",
            Variant::Bpftrace => "bpftrace",
            Variant::BpftraceEmpty => "bpftrace, empty programs",
            Variant::RawTpFloor => "floor: empty raw_tp programs",
        }
    }
}

/// One run: a workload under one variant in one round.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub workload: Workload,
    pub variant: Variant,
    pub round: u32,
    /// Units per second (see the workload's unit).
    pub throughput: f64,
    /// Units per second of the generator's CPU time (see [`LoadResult::per_cpu_second`]).
    pub per_cpu_s: Option<f64>,
    /// 1 for the first attempt; more when a contended run was repeated.
    pub attempt: u32,
    /// Tracepoint programs other processes had attached at the start or end of the load.
    pub foreign_probes: Vec<String>,
    pub load: LoadResult,
    /// The observing process, for the traced variants.
    pub observer: Option<ObserverRun>,
}

/// A flood whose generator got less than this share of its CPUs' time was disturbed by
/// something else on the machine: it is repeated (within [`RETRY_BUDGET`] repeats in all).
const CONTENDED_BELOW: f64 = 0.9;
const RETRY_BUDGET: u32 = 12;

/// Before each run the bench waits until no other process has tracepoint programs attached
/// and the CPUs are mostly idle (below this busy share), for at most [`QUIET_WAIT_BUDGET`] in
/// all.
const QUIET_BELOW: f64 = 0.25;
const QUIET_WAIT_BUDGET: Duration = Duration::from_secs(120);

/// Busy and total jiffies of all CPUs, from `/proc/stat`.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The share of CPU time spent busy over `window`.
fn busy_share(window: Duration) -> Result<f64> {
    let before = cpu_jiffies();
    sleep(window)?;
    Ok(match (before, cpu_jiffies()) {
        (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
            (busy1 - busy0) as f64 / (total1 - total0) as f64
        }
        _ => 0.0,
    })
}

/// Waits (within `budget`) for a quiet machine; returns the budget left.
fn wait_for_quiet(tools: &Tools, budget: Duration) -> Result<Duration> {
    let started = Instant::now();
    let mut said = false;
    loop {
        let foreign = observe::foreign_links(&tools.bpftool, None)?;
        let busy = busy_share(Duration::from_millis(300))?;
        let waited = started.elapsed();
        if foreign.is_empty() && busy < QUIET_BELOW {
            if said {
                progress(&format!("quiet after {:.1} s", waited.as_secs_f64()));
            }
            return Ok(budget.saturating_sub(waited));
        }
        if waited >= budget {
            progress("the machine stayed busy: running anyway (waiting budget spent)");
            return Ok(Duration::ZERO);
        }
        if !said {
            progress(&format!(
                "waiting for a quiet machine (CPUs {:.0} % busy{}{})",
                busy * 100.0,
                if foreign.is_empty() {
                    ""
                } else {
                    "; tracepoint programs of "
                },
                foreign.join(", ")
            ));
            said = true;
        }
        sleep(Duration::from_millis(500))?;
    }
}

/// Set by SIGINT / SIGTERM: the bench stops at the next check and cleans up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Fails when SIGINT or SIGTERM arrived.
pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps up to `duration`, failing early when interrupted.
pub fn sleep(duration: Duration) -> Result<()> {
    check_interrupted()?;
    std::thread::sleep(duration);
    check_interrupted()
}

/// Prints a progress line on stderr.
fn progress(line: &str) {
    eprintln!("bench: {line}");
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the workspace) or `target`.
fn target_dir(root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// `cargo xtask bench`.
pub fn bench(root: &Path, options: &Options) -> Result<()> {
    if !is_root() {
        bail!("cargo xtask bench must run as root (namespaces, nftables, eBPF)");
    }
    if options.no_build {
        progress("--no-build: using the existing target/release/tracer");
    } else {
        tasks::build(root)?;
    }
    let mut loadgen_build = command("cargo", ["build", "--release", "-p", "xtask", "--bin"]);
    loadgen_build
        .args(["loadgen", "--bin", "rawtp_floor"])
        .current_dir(root);
    run_cmd(&mut loadgen_build).context("building the load generator and rawtp_floor")?;
    let release = target_dir(root).join("release");
    let counter_sample = release.join("examples/counter_sample");
    if options.counters() && !(options.no_build && counter_sample.is_file()) {
        let mut build = command(
            "cargo",
            [
                "build",
                "--release",
                "-p",
                "tracer",
                "--example",
                "counter_sample",
            ],
        );
        build.current_dir(root);
        run_cmd(&mut build).context("building the counter sampler")?;
    }
    let tools = Tools {
        tracer: release.join("tracer"),
        loadgen: release.join("loadgen"),
        floor: release.join("rawtp_floor"),
        bpftrace: find_in_path("bpftrace")
            .context("bpftrace is not installed (cargo xtask setup installs it)")?,
        bpftool: find_in_path("bpftool").context("bpftool is not installed")?,
        tmux: find_in_path("tmux"),
    };
    if options.dashboard() && tools.tmux.is_none() {
        bail!("tmux is not installed (cargo xtask setup installs it); the dashboard step needs it");
    }
    if !tools.tracer.is_file() {
        bail!(
            "{} is missing: run without --no-build",
            tools.tracer.display()
        );
    }
    for tool in ["ip", "nft"] {
        find_in_path(tool).with_context(|| format!("`{tool}` is not installed"))?;
    }
    install_signal_handlers();

    let rounds = options.rounds();
    let seconds = options.seconds();
    let workloads = options.workloads();
    let variants = options.variants();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let started = Instant::now();
    progress(&format!(
        "{} workloads x {} variants x {rounds} rounds of {seconds} s of load{}",
        workloads.len(),
        variants.len(),
        if options.dashboard() {
            ", then the dashboard"
        } else {
            ""
        }
    ));

    let stats = StatsGuard::enable()?;
    let mut records = Vec::new();
    let mut discarded = Vec::new();
    let mut retries_left = RETRY_BUDGET;
    let mut stats_resets = 0_u32;
    let mut wait_budget = QUIET_WAIT_BUDGET;
    for workload in &workloads {
        check_interrupted()?;
        let lab = Lab::create(*workload, &tools)?;
        progress(&format!(
            "{}: lab ready ({})",
            workload.name(),
            lab.describe()
        ));
        for round in 0..rounds {
            for index in 0..variants.len() {
                // Rotate the order every round so no variant always comes first.
                let variant = variants[(index + round as usize) % variants.len()];
                check_interrupted()?;
                let mut attempt = 1;
                let record = loop {
                    wait_budget = wait_for_quiet(&tools, wait_budget)?;
                    if stats.reassert() {
                        stats_resets += 1;
                        progress("kernel.bpf_stats_enabled was reset by another process: set to 1");
                    }
                    let mut record = run_once(&lab, &tools, variant, round, seconds)
                        .with_context(|| format!("{} / {}", workload.name(), variant.label()))?;
                    record.attempt = attempt;
                    progress(&summary::progress_line(&record));
                    let share = record.load.generator_cpu_share;
                    let starved = workload.is_flood() && share < CONTENDED_BELOW;
                    let foreign = !record.foreign_probes.is_empty();
                    if !(starved || foreign) || retries_left == 0 {
                        break record;
                    }
                    if starved {
                        progress(&format!(
                            "contended: the generator had {:.0} % of its CPUs; repeating the run",
                            share * 100.0
                        ));
                    }
                    if foreign {
                        progress(&format!(
                            "contended: other processes had tracepoint programs attached ({}); \
                             repeating the run",
                            record.foreign_probes.join(", ")
                        ));
                    }
                    retries_left -= 1;
                    attempt += 1;
                    discarded.push(record);
                    sleep(Duration::from_secs(1))?;
                };
                records.push(record);
            }
        }
        drop(lab);
    }
    let dashboard = if options.dashboard() {
        check_interrupted()?;
        wait_for_quiet(&tools, wait_budget)?;
        let run = run_dashboard(&tools).context("dashboard")?;
        progress(&summary::dashboard_progress_line(&run));
        Some(run)
    } else {
        None
    };
    let counter_runs = if options.counters() {
        check_interrupted()?;
        wait_for_quiet(&tools, wait_budget)?;
        let samples = if options.quick { 3 } else { 10 };
        counters::run(&counter_sample, samples).context("counters")?
    } else {
        Vec::new()
    };
    let serve_scale_runs = if options.serve_scale() {
        check_interrupted()?;
        wait_for_quiet(&tools, wait_budget)?;
        serve_scale::run(&tools).context("serve-scale")?
    } else {
        Vec::new()
    };
    let stats_previous = stats.previous();
    drop(stats);

    let context = summary::Context {
        started_unix,
        wall_s: started.elapsed().as_secs_f64(),
        rounds,
        seconds,
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|release| release.trim().to_owned())
            .unwrap_or_default(),
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        bpftrace_version: stdout_of(&mut command(
            &tools.bpftrace.display().to_string(),
            ["--version"],
        ))
        .map(|version| version.trim().to_owned())
        .unwrap_or_default(),
        bpf_stats_enabled_before: stats_previous,
        bpf_stats_resets: stats_resets,
        bpftrace_program: BPFTRACE_PROGRAM.to_owned(),
        bpftrace_empty_program: BPFTRACE_EMPTY_PROGRAM.to_owned(),
    };
    let mut document = summary::Document::new(
        context,
        &workloads,
        &variants,
        records,
        discarded,
        dashboard,
        counter_runs,
    );
    document.serve_scale = serve_scale_runs;
    let out_dir = target_dir(root).join("bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let json = serde_json::to_string_pretty(&document).context("serialising the results")?;
    let file = out_dir.join(format!("bench-{started_unix}.json"));
    fs::write(&file, &json).with_context(|| format!("writing {}", file.display()))?;
    let latest = out_dir.join("latest.json");
    fs::write(&latest, &json).with_context(|| format!("writing {}", latest.display()))?;
    progress(&format!(
        "done in {:.0} s; results in {} and {}",
        started.elapsed().as_secs_f64(),
        file.display(),
        latest.display()
    ));
    print!("{}", document.markdown());
    Ok(())
}

/// The dashboard step: `tracer top` in a detached tmux session (killed at the end, also on
/// error) watching a udp-closed-port namespace; after [`DASHBOARD_STARTUP`], a flood paced to
/// [`DASHBOARD_RATE`] datagrams/s for [`DASHBOARD_LOAD`], with the tracer's CPU time read at
/// its start and end.
fn run_dashboard(tools: &Tools) -> Result<DashboardRun> {
    let lab = Lab::create(Workload::UdpClosedPort, tools)?;
    let mut top = TopSession::start(tools, &lab.traced_netns(), DASHBOARD_WINDOW)?;
    progress(&format!(
        "dashboard: lab ready ({}); `{}` in tmux (pid {})",
        lab.describe(),
        top.command,
        top.pid()
    ));
    sleep(DASHBOARD_STARTUP)?;
    top.check_running()?;
    let programs_before = top.program_counts(&tools.bpftool)?;
    let start = top.cpu()?;
    let load = lab.run_paced_flood(DASHBOARD_RATE, DASHBOARD_LOAD, &mut || top.sample())?;
    let end = top.cpu()?;
    let programs_after = top.program_counts(&tools.bpftool)?;
    top.check_running()?;
    let foreign_probes = observe::foreign_links(&tools.bpftool, Some(top.pid()))?;
    // The dashboard redraws every second: give it two more to show the drops.
    let mut screen = top.capture()?;
    for _ in 0..4 {
        if shows_drops(&screen) {
            break;
        }
        sleep(Duration::from_millis(500))?;
        screen = top.capture()?;
    }
    let window_s = end.at.duration_since(start.at).as_secs_f64();
    let cpu_ms = (end.own_ms - start.own_ms).max(0.0);
    let programs = observe::program_deltas(&programs_before, &programs_after);
    let runs: u64 = programs.iter().map(|program| program.runs).sum();
    Ok(DashboardRun {
        command: top.command.clone(),
        terminal: format!("tmux {}x{}", observe::TOP_COLUMNS, observe::TOP_ROWS),
        rate_requested: DASHBOARD_RATE,
        events_per_s: load.per_second(),
        probe_runs_per_s: (window_s > 0.0 && !programs.is_empty()).then(|| runs as f64 / window_s),
        programs,
        window_s,
        cpu_ms,
        cpu_percent: if window_s > 0.0 {
            cpu_ms / (window_s * 1000.0) * 100.0
        } else {
            0.0
        },
        children_cpu_ms: (end.children_ms - start.children_ms).max(0.0),
        rss_peak_kib: top.peak_rss_kib(),
        rendered: shows_drops(&screen),
        screen,
        foreign_probes,
        load,
    })
}

fn shows_drops(screen: &str) -> bool {
    DASHBOARD_REASONS
        .iter()
        .any(|reason| screen.contains(reason))
}

/// One run of `variant` on the lab's workload.
fn run_once(
    lab: &Lab,
    tools: &Tools,
    variant: Variant,
    round: u32,
    seconds: u32,
) -> Result<RunRecord> {
    let load_time = Duration::from_secs(u64::from(seconds));
    let mut foreign = observe::foreign_links(&tools.bpftool, None)?;
    let (load, observer) = match variant {
        Variant::Untraced => {
            let load = lab.run_load(load_time, &mut || {})?;
            foreign.extend(observe::foreign_links(&tools.bpftool, None)?);
            (load, None)
        }
        Variant::Tracer => {
            let window = load_time + Duration::from_secs(1);
            let mut tracer = TracerProcess::start(tools, lab.traced_netns(), window, &[])?;
            let load = lab.run_load(load_time, &mut || tracer.sample())?;
            foreign.extend(observe::foreign_links(&tools.bpftool, Some(tracer.pid()))?);
            (load, Some(tracer.finish()?))
        }
        Variant::TracerCapture => {
            let window = load_time + Duration::from_secs(1);
            let file =
                std::env::temp_dir().join(format!("bench-capture-{}.pcapng", std::process::id()));
            let capture = ["--capture", file.to_str().unwrap_or("/dev/null")];
            let mut tracer = TracerProcess::start(tools, lab.traced_netns(), window, &capture)?;
            let load = lab.run_load(load_time, &mut || tracer.sample())?;
            foreign.extend(observe::foreign_links(&tools.bpftool, Some(tracer.pid()))?);
            let observed = tracer.finish()?;
            let _ = std::fs::remove_file(&file);
            (load, Some(observed))
        }
        Variant::Bpftrace | Variant::BpftraceEmpty => {
            let program = if variant == Variant::Bpftrace {
                BPFTRACE_PROGRAM
            } else {
                BPFTRACE_EMPTY_PROGRAM
            };
            let mut bpftrace = Bpftrace::start(tools, program)?;
            let load = lab.run_load(load_time, &mut || bpftrace.sample())?;
            foreign.extend(observe::foreign_links(
                &tools.bpftool,
                Some(bpftrace.pid()),
            )?);
            (load, Some(bpftrace.finish()?))
        }
        Variant::RawTpFloor => {
            let mut cmd = std::process::Command::new(&tools.floor);
            cmd.args(FLOOR_TRACEPOINTS);
            let mut floor = Bpftrace::start_command(tools, cmd, "rawtp_floor")?;
            let load = lab.run_load(load_time, &mut || floor.sample())?;
            foreign.extend(observe::foreign_links(&tools.bpftool, Some(floor.pid()))?);
            (load, Some(floor.finish()?))
        }
    };
    Ok(RunRecord {
        workload: lab.workload(),
        variant,
        round,
        throughput: load.per_second(),
        per_cpu_s: load.per_cpu_second(),
        attempt: 1,
        foreign_probes: {
            foreign.sort();
            foreign.dedup();
            foreign
        },
        load,
        observer,
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
