//! The observers of a traced run, `tracer report` and bpftrace, and what they cost.
//!
//! Each runs as a child whose stdout and stderr lines are read by two threads. The bench waits
//! until every probe is attached before the load starts (the tracer's `probes attached` line;
//! for bpftrace its `Attaching N probes...` line and then N perf links of its pid in
//! `bpftool perf show`, since bpftrace prints that line before attaching). While the load runs
//! the child is sampled (`/proc/PID/stat` utime+stime, `/proc/PID/status` VmHWM); it is reaped
//! with `wait4`, whose rusage gives the exact total CPU time and peak RSS. The CPU time of the
//! window is that total less the CPU time already spent when the probes were attached.
//!
//! The kernel programs' cost needs `kernel.bpf_stats_enabled=1`: the tracer reports its own in
//! `observations.tracer_cost`; for bpftrace, `bpftool prog show` is read just before it is
//! stopped, keeping the tracepoint programs that were not there before it started.
//!
//! The live dashboard, `tracer top`, needs a terminal: [`TopSession`] runs it in a detached
//! tmux session of its own server (killed on drop) and samples the tracer's process the same
//! way, its programs' runs through `bpftool`.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use super::{check_interrupted, sleep};
use crate::cmd::{command, display, stdout_of};

/// Paths of the programs the bench runs.
pub struct Tools {
    pub tracer: PathBuf,
    pub loadgen: PathBuf,
    /// `rawtp_floor`: empty raw tracepoint programs, the attach floor.
    pub floor: PathBuf,
    pub bpftrace: PathBuf,
    pub bpftool: PathBuf,
    /// For the dashboard step only.
    pub tmux: Option<PathBuf>,
}

/// Runs and run time of one kernel program over a traced run.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeCost {
    /// The tracepoint (`kfree_skb`, `softirq_entry`, …).
    pub program: String,
    pub runs: u64,
    pub run_time_ns: u64,
}

impl ProbeCost {
    pub fn ns_per_run(&self) -> Option<f64> {
        (self.runs > 0).then(|| self.run_time_ns as f64 / self.runs as f64)
    }
}

/// What an observing process cost in one run.
#[derive(Debug, Clone, Serialize)]
pub struct ObserverRun {
    /// `tracer`, `bpftrace` or `rawtp_floor`.
    pub tool: &'static str,
    /// Start to every probe attached: the tracer's own figure (its stderr line); for bpftrace,
    /// spawn to all its perf links listed by bpftool.
    pub startup_ms: f64,
    /// The tracer: window end to verdict written (its stderr line); bpftrace: SIGINT to exit
    /// (printing its maps).
    pub stop_ms: Option<f64>,
    /// Probes attached.
    pub probes: u32,
    /// Probes attached to exit, as seen by the bench.
    pub window_s: f64,
    /// User+system CPU time until the probes were attached.
    pub cpu_startup_ms: f64,
    /// User+system CPU time from the probes attached to exit.
    pub cpu_window_ms: f64,
    /// `cpu_window_ms` as a share of one core over `window_s`.
    pub cpu_percent: f64,
    /// Peak RSS: the largest VmHWM polled (every 100 ms under load, every 5 ms while it
    /// exits); the rusage maxrss only when it could not be polled (that one may include the
    /// spawning process's memory from before the exec).
    pub rss_peak_kib: u64,
    /// `ru_maxrss` of `wait4`.
    pub rusage_maxrss_kib: u64,
    /// Program runs per second over the window.
    pub events_per_s: f64,
    /// Whether run times were being counted (`kernel.bpf_stats_enabled`).
    pub bpf_stats_enabled: bool,
    pub programs: Vec<ProbeCost>,
    /// The tracer: each probe's hook kind as its report's probes section says (`hook`), or
    /// `tracepoint` from reports that do not say; empty for the other tools.
    pub hooks: Vec<(String, String)>,
    /// How the process ended (`exit 0`, `exit 2`, `signal 9`).
    pub exit: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// What `wait4` said about the process.
struct Reaped {
    at: Instant,
    exit: String,
    cpu_ms: f64,
    maxrss_kib: u64,
}

/// A child process with its output lines, its samples, and a kill on drop until reaped.
struct Watched {
    shown: String,
    child: Child,
    pid: i32,
    reaped: bool,
    spawned: Instant,
    lines: Receiver<(Stream, String)>,
    stdout: Vec<String>,
    stderr: Vec<String>,
    clock_ticks: f64,
    last_cpu_ms: Option<f64>,
    hwm_kib: u64,
}

fn forward(stream: Stream, reader: impl Read + Send + 'static, tx: Sender<(Stream, String)>) {
    thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send((stream, line)).is_err() {
                break;
            }
        }
    });
}

impl Watched {
    fn spawn(mut cmd: Command) -> Result<Watched> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let shown = display(&cmd);
        let spawned = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("starting `{shown}`"))?;
        let pid = i32::try_from(child.id()).context("pid out of range")?;
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            forward(Stream::Stdout, stdout, tx.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            forward(Stream::Stderr, stderr, tx);
        }
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Ok(Watched {
            shown,
            child,
            pid,
            reaped: false,
            spawned,
            lines,
            stdout: Vec::new(),
            stderr: Vec::new(),
            clock_ticks: if ticks > 0 { ticks as f64 } else { 100.0 },
            last_cpu_ms: None,
            hwm_kib: 0,
        })
    }

    fn keep(&mut self, stream: Stream, line: String) {
        match stream {
            Stream::Stdout => self.stdout.push(line),
            Stream::Stderr => self.stderr.push(line),
        }
    }

    /// Waits for the first line of `want` for which `matches` holds.
    fn wait_line(
        &mut self,
        want: Stream,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let give_up = Instant::now() + timeout;
        loop {
            check_interrupted()?;
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "`{}` did not say it was ready within {timeout:?}; stderr: {}",
                    self.shown,
                    self.stderr.join(" | ")
                );
            }
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok((stream, line)) => {
                    let found = stream == want && matches(&line);
                    self.keep(stream, line.clone());
                    if found {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    check_interrupted()?;
                    bail!(
                        "`{}` ended before it was ready; stderr: {}",
                        self.shown,
                        self.stderr.join(" | ")
                    );
                }
            }
        }
    }

    /// Records the current CPU time and peak RSS (ignored once the process is gone).
    fn sample(&mut self) {
        if self.reaped {
            return;
        }
        if let Some(ms) = cpu_ms(self.pid, self.clock_ticks) {
            self.last_cpu_ms = Some(ms);
        }
        if let Some(kib) = vm_hwm_kib(self.pid) {
            self.hwm_kib = self.hwm_kib.max(kib);
        }
    }

    fn signal(&self, signal: libc::c_int) {
        if !self.reaped {
            // SAFETY: the pid is our unreaped child, so it cannot have been recycled.
            unsafe {
                libc::kill(self.pid, signal);
            }
        }
    }

    /// Waits for the process to exit (sampling meanwhile), killing it after `timeout`.
    fn reap(&mut self, timeout: Duration) -> Result<Reaped> {
        let give_up = Instant::now() + timeout;
        let mut killed = false;
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: rusage is plain old data; all-zero is a valid value.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            let flags = if killed { 0 } else { libc::WNOHANG };
            // SAFETY: valid pointers to locals; the pid is our own child.
            let got = unsafe { libc::wait4(self.pid, &raw mut status, flags, &raw mut usage) };
            if got == self.pid {
                self.reaped = true;
                let at = Instant::now();
                let exit = if libc::WIFEXITED(status) {
                    format!("exit {}", libc::WEXITSTATUS(status))
                } else if libc::WIFSIGNALED(status) {
                    format!("signal {}", libc::WTERMSIG(status))
                } else {
                    format!("status {status}")
                };
                let cpu_ms = timeval_ms(usage.ru_utime) + timeval_ms(usage.ru_stime);
                let maxrss_kib = u64::try_from(usage.ru_maxrss).unwrap_or(0);
                if killed {
                    bail!(
                        "`{}` did not exit within {timeout:?} and was killed; stderr: {}",
                        self.shown,
                        self.stderr.join(" | ")
                    );
                }
                return Ok(Reaped {
                    at,
                    exit,
                    cpu_ms,
                    maxrss_kib,
                });
            }
            if got < 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("wait4 for `{}`", self.shown));
            }
            self.sample();
            if Instant::now() >= give_up {
                self.signal(libc::SIGKILL);
                killed = true;
                continue;
            }
            // A pending interrupt ends the window early; keep waiting for the exit.
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Collects the remaining output lines, once the process has exited.
    fn drain(&mut self) {
        let give_up = Instant::now() + Duration::from_secs(5);
        while let Some(left) = give_up.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok((stream, line)) => self.keep(stream, line),
                Err(_) => break,
            }
        }
    }

    /// The polled VmHWM, else the rusage maxrss.
    fn peak_rss_kib(&self, reaped: &Reaped) -> u64 {
        if self.hwm_kib > 0 {
            self.hwm_kib
        } else {
            reaped.maxrss_kib
        }
    }

    /// CPU time now, or the last sample.
    fn cpu_ms_now(&mut self) -> f64 {
        self.sample();
        self.last_cpu_ms.unwrap_or(0.0)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn timeval_ms(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 * 1000.0 + tv.tv_usec as f64 / 1000.0
}

/// utime+stime of `pid` in ms, from `/proc/PID/stat`.
fn cpu_ms(pid: i32, clock_ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_cpu_ticks(&stat).map(|ticks| ticks as f64 * 1000.0 / clock_ticks)
}

/// utime+stime (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields restart after the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// cutime+cstime (fields 16 and 17) of a `/proc/PID/stat` line, in clock ticks: the CPU time
/// of its children that were waited for.
pub fn stat_children_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(13);
    let cutime: u64 = fields.next()?.parse().ok()?;
    let cstime: u64 = fields.next()?.parse().ok()?;
    Some(cutime + cstime)
}

fn vm_hwm_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_hwm_kib(&status)
}

/// `VmHWM` of a `/proc/PID/status` text, in KiB.
pub fn status_hwm_kib(status: &str) -> Option<u64> {
    status_field_kib(status, "VmHWM:")
}

/// `N` of `tracer: N probes attached in M ms; …` and `M`.
pub fn parse_attached(line: &str) -> Option<(u32, f64)> {
    let rest = line.strip_prefix("tracer: ")?;
    let (count, rest) = rest.split_once(" probe")?;
    let (_, rest) = rest.split_once("attached in ")?;
    let (ms, _) = rest.split_once(" ms")?;
    Some((count.trim().parse().ok()?, ms.trim().parse().ok()?))
}

/// `M` of `tracer: verdict written M ms after the window closed`.
pub fn parse_written(line: &str) -> Option<f64> {
    let rest = line.split_once(" written ")?.1;
    rest.split_once(" ms")?.0.trim().parse().ok()
}

/// `N` of bpftrace's `Attaching N probes...` (or `Attaching 1 probe...`).
pub fn parse_attaching(line: &str) -> Option<u32> {
    line.trim()
        .strip_prefix("Attaching ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `tracer report` running over a traced run.
pub struct TracerProcess {
    proc: Watched,
    startup_ms: f64,
    probes: u32,
    attached_at: Instant,
    cpu_at_attach_ms: f64,
    window: Duration,
}

impl TracerProcess {
    /// Starts `tracer report` on `netns` for `window`; returns once every probe is attached.
    /// Starts `tracer report` on `netns` for `window`, with `extra` arguments.
    pub fn start(
        tools: &Tools,
        netns: PathBuf,
        window: Duration,
        extra: &[&str],
    ) -> Result<TracerProcess> {
        let mut cmd = Command::new(&tools.tracer);
        cmd.args(["report", "--duration"])
            .arg(format!("{}ms", window.as_millis()))
            .args(["--format", "json", "--netns"])
            .arg(netns)
            .args(extra);
        let mut proc = Watched::spawn(cmd)?;
        let line = proc.wait_line(Stream::Stderr, Duration::from_secs(60), |line| {
            line.contains("probes attached") || line.contains("probe attached")
        })?;
        let attached_at = Instant::now();
        let cpu_at_attach_ms = proc.cpu_ms_now();
        let (probes, startup_ms) = parse_attached(&line).unwrap_or((0, f64::NAN));
        Ok(TracerProcess {
            proc,
            startup_ms,
            probes,
            attached_at,
            cpu_at_attach_ms,
            window,
        })
    }

    pub fn sample(&mut self) {
        self.proc.sample();
    }

    pub fn pid(&self) -> i32 {
        self.proc.pid
    }

    /// Waits for the report and reads the tracer's cost from it.
    pub fn finish(mut self) -> Result<ObserverRun> {
        let reaped = self.proc.reap(self.window + Duration::from_secs(30))?;
        self.proc.drain();
        let stop_ms = self
            .proc
            .stderr
            .iter()
            .rev()
            .find_map(|line| parse_written(line));
        let text = self.proc.stdout.join("\n");
        let document: serde_json::Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "the tracer ({}) printed no JSON document; stderr: {}",
                reaped.exit,
                self.proc.stderr.join(" | ")
            )
        })?;
        let observations = document.get("observations").unwrap_or(&document);
        let cost = observations
            .get("tracer_cost")
            .context("no observations.tracer_cost in the tracer's report")?;
        let bpf_stats_enabled = cost
            .get("bpf_stats_enabled")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let programs: Vec<ProbeCost> = cost
            .get("programs")
            .and_then(serde_json::Value::as_array)
            .map(|programs| {
                programs
                    .iter()
                    .filter_map(|program| {
                        Some(ProbeCost {
                            program: program.get("program")?.as_str()?.to_owned(),
                            runs: program.get("runs")?.as_u64()?,
                            run_time_ns: program.get("run_time_ns")?.as_u64()?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let report_window_s = observations
            .get("window")
            .and_then(|window| window.get("duration_s"))
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(self.window.as_secs_f64());
        let window_s = reaped.at.duration_since(self.attached_at).as_secs_f64();
        let cpu_window_ms = (reaped.cpu_ms - self.cpu_at_attach_ms).max(0.0);
        let events: u64 = programs.iter().map(|program| program.runs).sum();
        Ok(ObserverRun {
            tool: "tracer",
            startup_ms: self.startup_ms,
            stop_ms,
            probes: self.probes,
            window_s,
            cpu_startup_ms: self.cpu_at_attach_ms,
            cpu_window_ms,
            cpu_percent: percent(cpu_window_ms, window_s),
            rss_peak_kib: self.proc.peak_rss_kib(&reaped),
            rusage_maxrss_kib: reaped.maxrss_kib,
            events_per_s: per_second(events, report_window_s),
            bpf_stats_enabled,
            programs,
            hooks: probe_hooks(observations),
            exit: reaped.exit,
        })
    }
}

/// `tracer serve` on a loopback port of its own, for the serve-scale step.
pub struct ServeProcess {
    proc: Watched,
    /// Spawn to the `ready:` log line (the probes attached and the first tick published).
    pub ready_ms: f64,
}

impl ServeProcess {
    /// Starts `tracer serve --listen 127.0.0.1:0` and returns once it logged `ready:`.
    pub fn start(tools: &Tools) -> Result<ServeProcess> {
        let mut cmd = Command::new(&tools.tracer);
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        let mut proc = Watched::spawn(cmd)?;
        proc.wait_line(Stream::Stderr, Duration::from_secs(120), |line| {
            line.contains("ready:")
        })?;
        let ready_ms = proc.spawned.elapsed().as_secs_f64() * 1000.0;
        Ok(ServeProcess { proc, ready_ms })
    }

    /// (when, CPU time so far in ms): the process's utime+stime, all threads.
    pub fn cpu_ms(&mut self) -> (Instant, f64) {
        (Instant::now(), self.proc.cpu_ms_now())
    }

    /// Resident memory now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.pid)).ok()?;
        status_field_kib(&status, "VmRSS:")
    }

    /// SIGTERM, then waits (at most 30 s) for the exit.
    pub fn stop(mut self) -> Result<String> {
        self.proc.signal(libc::SIGTERM);
        let reaped = self.proc.reap(Duration::from_secs(30))?;
        Ok(reaped.exit)
    }
}

/// Spawn to `tracer report`'s `probes attached` line (the probes attached and its window
/// open), in ms: a one-second report of the whole node, waited for to its end.
pub fn report_startup_ms(tools: &Tools) -> Result<f64> {
    let mut cmd = Command::new(&tools.tracer);
    cmd.args(["report", "--duration", "1s", "--format", "json"]);
    let mut proc = Watched::spawn(cmd)?;
    proc.wait_line(Stream::Stderr, Duration::from_secs(120), |line| {
        line.contains("probes attached") || line.contains("probe attached")
    })?;
    let startup_ms = proc.spawned.elapsed().as_secs_f64() * 1000.0;
    proc.reap(Duration::from_secs(60))?;
    Ok(startup_ms)
}

/// A `NAME: N kB` field of a `/proc/PID/status` text, in KiB.
pub fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Each probe's hook kind from a report's probes section: its `hook` field, `tracepoint` when
/// the report has none (reports from before hooks were named).
pub fn probe_hooks(observations: &serde_json::Value) -> Vec<(String, String)> {
    observations
        .get("probes")
        .and_then(serde_json::Value::as_array)
        .map(|probes| {
            probes
                .iter()
                .filter_map(|probe| {
                    let name = probe
                        .get("tracepoint")
                        .or_else(|| probe.get("program"))?
                        .as_str()?;
                    let hook = probe
                        .get("hook")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("tracepoint");
                    Some((name.to_owned(), hook.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn percent(cpu_ms: f64, window_s: f64) -> f64 {
    if window_s > 0.0 {
        cpu_ms / (window_s * 1000.0) * 100.0
    } else {
        0.0
    }
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// bpftrace running over a traced run.
pub struct Bpftrace {
    proc: Watched,
    tool: &'static str,
    bpftool: PathBuf,
    before: HashSet<u64>,
    tracepoints: HashMap<u64, String>,
    startup_ms: f64,
    probes: u32,
    attached_at: Instant,
    cpu_at_attach_ms: f64,
}

impl Bpftrace {
    /// Starts `bpftrace -e program`; returns once all its probes are attached.
    pub fn start(tools: &Tools, program: &str) -> Result<Bpftrace> {
        let mut cmd = Command::new(&tools.bpftrace);
        cmd.arg("-e").arg(program);
        Bpftrace::start_command(tools, cmd, "bpftrace")
    }

    /// Starts `cmd`, a process that prints bpftrace's `Attaching N probes...` line and holds
    /// tracepoint or raw tracepoint programs (bpftrace, `rawtp_floor`); returns once all its
    /// probes are attached.
    pub fn start_command(tools: &Tools, cmd: Command, tool: &'static str) -> Result<Bpftrace> {
        let before: HashSet<u64> = prog_show(&tools.bpftool)?
            .iter()
            .filter_map(|prog| prog.get("id").and_then(serde_json::Value::as_u64))
            .collect();
        let mut proc = Watched::spawn(cmd)?;
        let line = proc.wait_line(Stream::Stdout, Duration::from_secs(60), |line| {
            line.starts_with("Attaching ")
        })?;
        let probes = parse_attaching(&line).unwrap_or(1);
        // bpftrace prints `Attaching` before it attaches: wait for its perf links.
        let give_up = Instant::now() + Duration::from_secs(60);
        let tracepoints = loop {
            let links = perf_links(&tools.bpftool, proc.pid)?;
            if links.len() >= probes as usize {
                break links;
            }
            if Instant::now() >= give_up {
                bail!(
                    "{tool} attached {} of its {probes} probes within 60 s; stderr: {}",
                    links.len(),
                    proc.stderr.join(" | ")
                );
            }
            sleep(Duration::from_millis(5))?;
        };
        let attached_at = Instant::now();
        let startup_ms = attached_at.duration_since(proc.spawned).as_secs_f64() * 1000.0;
        let cpu_at_attach_ms = proc.cpu_ms_now();
        Ok(Bpftrace {
            proc,
            tool,
            bpftool: tools.bpftool.clone(),
            before,
            tracepoints,
            startup_ms,
            probes,
            attached_at,
            cpu_at_attach_ms,
        })
    }

    pub fn sample(&mut self) {
        self.proc.sample();
    }

    pub fn pid(&self) -> i32 {
        self.proc.pid
    }

    /// Reads its programs' cost, then stops it (SIGINT) and waits for it.
    pub fn finish(mut self) -> Result<ObserverRun> {
        let sampled_at = Instant::now();
        let programs = self.costs()?;
        let events: u64 = programs.iter().map(|program| program.runs).sum();
        let events_per_s = per_second(
            events,
            sampled_at.duration_since(self.attached_at).as_secs_f64(),
        );
        let stopped = Instant::now();
        self.proc.signal(libc::SIGINT);
        let reaped = self.proc.reap(Duration::from_secs(30))?;
        self.proc.drain();
        let window_s = reaped.at.duration_since(self.attached_at).as_secs_f64();
        let cpu_window_ms = (reaped.cpu_ms - self.cpu_at_attach_ms).max(0.0);
        let bpf_stats_enabled = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
            .is_ok_and(|value| value.trim() == "1");
        Ok(ObserverRun {
            tool: self.tool,
            startup_ms: self.startup_ms,
            stop_ms: Some(reaped.at.duration_since(stopped).as_secs_f64() * 1000.0),
            probes: self.probes,
            window_s,
            cpu_startup_ms: self.cpu_at_attach_ms,
            cpu_window_ms,
            cpu_percent: percent(cpu_window_ms, window_s),
            rss_peak_kib: self.proc.peak_rss_kib(&reaped),
            rusage_maxrss_kib: reaped.maxrss_kib,
            events_per_s,
            bpf_stats_enabled,
            programs,
            hooks: Vec::new(),
            exit: reaped.exit,
        })
    }

    /// Run counts and times of the tracepoint programs that appeared after bpftrace started.
    fn costs(&self) -> Result<Vec<ProbeCost>> {
        let mut costs: Vec<ProbeCost> = prog_show(&self.bpftool)?
            .iter()
            .filter_map(|prog| {
                let id = prog.get("id")?.as_u64()?;
                let kind = prog.get("type").and_then(serde_json::Value::as_str);
                if self.before.contains(&id)
                    || !matches!(kind, Some("tracepoint" | "raw_tracepoint"))
                {
                    return None;
                }
                let name = self.tracepoints.get(&id).cloned().or_else(|| {
                    prog.get("name")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned)
                })?;
                let field = |key: &str| {
                    prog.get(key)
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0)
                };
                Some(ProbeCost {
                    program: name,
                    runs: field("run_cnt"),
                    run_time_ns: field("run_time_ns"),
                })
            })
            .collect();
        costs.sort_by(|a, b| a.program.cmp(&b.program));
        Ok(costs)
    }
}

/// CPU time of a process, read from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    pub at: Instant,
    /// utime+stime of every thread, ms.
    pub own_ms: f64,
    /// cutime+cstime: children it has waited for (the listing tools it runs), ms.
    pub children_ms: f64,
}

/// Size of the dashboard's terminal.
pub const TOP_COLUMNS: u16 = 120;
pub const TOP_ROWS: u16 = 40;

/// `tracer top` in a detached tmux session on a server of its own (`tmux -L NAME`), killed
/// (and the tracer with it) on drop, also on error.
pub struct TopSession {
    tmux: PathBuf,
    socket: String,
    /// The command run in the pane, for the results.
    pub command: String,
    tracer: PathBuf,
    pid: Option<i32>,
    /// The server's socket, removed on drop (tmux leaves it behind).
    socket_path: Option<PathBuf>,
    clock_ticks: f64,
    hwm_kib: u64,
}

impl TopSession {
    /// Starts `tracer top --window WINDOW --netns NETNS` in a `TOP_COLUMNS`x`TOP_ROWS` pane.
    /// The tracer is the pane's process (run without a shell); panes stay after their process
    /// exits so that its last words can be read.
    pub fn start(tools: &Tools, netns: &Path, window: &str) -> Result<TopSession> {
        let tmux = tools
            .tmux
            .clone()
            .context("tmux is not installed (cargo xtask setup installs it)")?;
        let tracer = tools
            .tracer
            .canonicalize()
            .with_context(|| format!("resolving {}", tools.tracer.display()))?;
        let netns = netns.display().to_string();
        let argv = [
            tracer.display().to_string(),
            "top".to_owned(),
            "--window".to_owned(),
            window.to_owned(),
            "--netns".to_owned(),
            netns,
        ];
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let mut session = TopSession {
            tmux,
            socket: format!("trc-bench-{}", std::process::id()),
            command: argv.join(" "),
            tracer,
            pid: None,
            socket_path: None,
            clock_ticks: if ticks > 0 { ticks as f64 } else { 100.0 },
            hwm_kib: 0,
        };
        let (columns, rows) = (TOP_COLUMNS.to_string(), TOP_ROWS.to_string());
        let mut args: Vec<&str> = vec![
            "start-server",
            ";",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
            ";",
            "new-session",
            "-d",
            "-s",
            "bench",
            "-x",
            &columns,
            "-y",
            &rows,
            "--",
        ];
        args.extend(argv.iter().map(String::as_str));
        session.run(&args)?;
        session.socket_path = session
            .run(&["display-message", "-p", "-t", "bench", "#{socket_path}"])
            .ok()
            .map(|path| PathBuf::from(path.trim()))
            .filter(|path| path.is_absolute());
        let pane_pid = session.pane()?.0;
        session.pid = Some(session.find_tracer(pane_pid)?);
        Ok(session)
    }

    /// `tmux -L SOCKET -f /dev/null ARGS`, its stdout.
    fn run(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(&self.tmux);
        cmd.args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .stdin(Stdio::null())
            .env_remove("TMUX");
        stdout_of(&mut cmd)
    }

    /// The pane's process id and whether that process has exited.
    fn pane(&self) -> Result<(i32, bool)> {
        let text = self.run(&[
            "list-panes",
            "-t",
            "bench",
            "-F",
            "#{pane_pid} #{pane_dead}",
        ])?;
        let line = text.lines().next().context("tmux lists no pane")?;
        let (pid, dead) = line
            .split_once(' ')
            .with_context(|| format!("unexpected `tmux list-panes` line `{line}`"))?;
        let pid = pid
            .trim()
            .parse()
            .with_context(|| format!("pane pid in `{line}`"))?;
        Ok((pid, dead.trim() == "1"))
    }

    /// The tracer: the pane's process itself, else its child running the tracer binary.
    fn find_tracer(&self, pane_pid: i32) -> Result<i32> {
        if self.is_tracer(pane_pid) {
            return Ok(pane_pid);
        }
        let give_up = Instant::now() + Duration::from_secs(5);
        loop {
            let entries = std::fs::read_dir("/proc").context("listing /proc")?;
            let child = entries
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .find(|pid| parent_pid(*pid) == Some(pane_pid) && self.is_tracer(*pid));
            if let Some(pid) = child {
                return Ok(pid);
            }
            if Instant::now() >= give_up {
                bail!(
                    "the tmux pane (pid {pane_pid}) runs no tracer; it shows:\n{}",
                    self.capture().unwrap_or_default()
                );
            }
            sleep(Duration::from_millis(50))?;
        }
    }

    fn is_tracer(&self, pid: i32) -> bool {
        std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == self.tracer)
    }

    /// The tracer's pid.
    pub fn pid(&self) -> i32 {
        self.pid.unwrap_or(0)
    }

    /// Fails, with what the pane shows, when the tracer has exited.
    pub fn check_running(&self) -> Result<()> {
        let (_, dead) = self.pane()?;
        if dead || !self.is_tracer(self.pid()) {
            bail!(
                "`{}` exited; its pane shows:\n{}",
                self.command,
                self.capture().unwrap_or_default()
            );
        }
        Ok(())
    }

    /// The pane's text (`tmux capture-pane -p`).
    pub fn capture(&self) -> Result<String> {
        self.run(&["capture-pane", "-p", "-t", "bench"])
    }

    /// Polls the tracer's peak RSS (VmHWM).
    pub fn sample(&mut self) {
        if let Some(kib) = vm_hwm_kib(self.pid()) {
            self.hwm_kib = self.hwm_kib.max(kib);
        }
    }

    /// The largest VmHWM polled, KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.hwm_kib
    }

    /// The tracer's CPU time now (and a VmHWM poll).
    pub fn cpu(&mut self) -> Result<CpuSample> {
        self.sample();
        let pid = self.pid();
        let at = Instant::now();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat of `{}`", self.command))?;
        let ms = |ticks: u64| ticks as f64 * 1000.0 / self.clock_ticks;
        Ok(CpuSample {
            at,
            own_ms: stat_cpu_ticks(&stat)
                .map(ms)
                .with_context(|| format!("parsing /proc/{pid}/stat"))?,
            children_ms: stat_children_ticks(&stat).map_or(0.0, ms),
        })
    }

    /// Runs and run time so far of the tracer's tracepoint programs: those whose ids its
    /// descriptors hold (`/proc/PID/fdinfo`: programs and the links attaching them; `bpftool
    /// perf show` does not list tracepoints attached through BPF links), named by tracepoint
    /// when `bpftool perf show` knows it, else by program name.
    pub fn program_counts(&self, bpftool: &Path) -> Result<Vec<ProbeCost>> {
        let ids = held_prog_ids(self.pid());
        let links = perf_links(bpftool, self.pid())?;
        let mut costs: Vec<ProbeCost> = prog_show(bpftool)?
            .iter()
            .filter_map(|prog| {
                let id = prog.get("id")?.as_u64()?;
                if !ids.contains(&id)
                    || prog.get("type").and_then(serde_json::Value::as_str) != Some("tracepoint")
                {
                    return None;
                }
                let program = links.get(&id).cloned().or_else(|| {
                    prog.get("name")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned)
                })?;
                let field = |key: &str| {
                    prog.get(key)
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0)
                };
                Some(ProbeCost {
                    program,
                    runs: field("run_cnt"),
                    run_time_ns: field("run_time_ns"),
                })
            })
            .collect();
        costs.sort_by(|a, b| a.program.cmp(&b.program));
        Ok(costs)
    }
}

/// The runs and run time between two [`TopSession::program_counts`].
pub fn program_deltas(before: &[ProbeCost], after: &[ProbeCost]) -> Vec<ProbeCost> {
    after
        .iter()
        .map(|end| {
            let start = before.iter().find(|p| p.program == end.program);
            ProbeCost {
                program: end.program.clone(),
                runs: end.runs.saturating_sub(start.map_or(0, |p| p.runs)),
                run_time_ns: end
                    .run_time_ns
                    .saturating_sub(start.map_or(0, |p| p.run_time_ns)),
            }
        })
        .collect()
}

impl Drop for TopSession {
    fn drop(&mut self) {
        // The server's end hangs up the pane: the tracer restores the terminal and exits.
        if let Err(err) = self.run(&["kill-server"]) {
            eprintln!("bench: killing tmux server {}: {err:#}", self.socket);
        }
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
        let Some(pid) = self.pid else { return };
        let give_up = Instant::now() + Duration::from_secs(5);
        while self.is_tracer(pid) {
            if Instant::now() >= give_up {
                eprintln!("bench: `{}` outlived its tmux server: killed", self.command);
                // SAFETY: plain kill(2); the pid was checked to still run the tracer binary.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The BPF program ids `pid`'s descriptors refer to (`prog_id:` of `/proc/PID/fdinfo/*`).
fn held_prog_ids(pid: i32) -> HashSet<u64> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return HashSet::new();
    };
    entries
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .filter_map(|fdinfo| fdinfo_prog_id(&fdinfo))
        .collect()
}

/// `prog_id` of a `/proc/PID/fdinfo/FD` text (a BPF program or link descriptor).
pub fn fdinfo_prog_id(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|line| line.strip_prefix("prog_id:"))?
        .trim()
        .parse()
        .ok()
}

/// The parent pid of `pid`, from `/proc/PID/stat`.
fn parent_pid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_parent_pid(&stat)
}

/// Field 4 (ppid) of a `/proc/PID/stat` line.
pub fn stat_parent_pid(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Tracepoint BPF programs attached by processes other than `except` (`bpftool perf show`),
/// as `pid PID: tracepoint` (sorted): another tracer running would disturb every variant.
pub fn foreign_links(bpftool: &Path, except: Option<i32>) -> Result<Vec<String>> {
    let text = stdout_of(&mut command(
        &bpftool.display().to_string(),
        ["perf", "show", "-j"],
    ))?;
    let links = parse_array(&text).context("parsing `bpftool perf show -j`")?;
    Ok(other_links(&links, except))
}

pub fn other_links(links: &[serde_json::Value], except: Option<i32>) -> Vec<String> {
    let mut found: Vec<String> = links
        .iter()
        .filter_map(|link| {
            let pid = link.get("pid")?.as_i64()?;
            if except.is_some_and(|except| i64::from(except) == pid) {
                return None;
            }
            let what = link
                .get("tracepoint")
                .and_then(serde_json::Value::as_str)
                .or_else(|| link.get("fd_type").and_then(serde_json::Value::as_str))
                .unwrap_or("?");
            Some(format!("pid {pid}: {what}"))
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// `bpftool prog show -j`.
fn prog_show(bpftool: &Path) -> Result<Vec<serde_json::Value>> {
    let text = stdout_of(&mut command(
        &bpftool.display().to_string(),
        ["prog", "show", "-j"],
    ))?;
    parse_array(&text).context("parsing `bpftool prog show -j`")
}

/// Tracepoint perf links of `pid` (`bpftool perf show -j`): program id to tracepoint.
fn perf_links(bpftool: &Path, pid: i32) -> Result<HashMap<u64, String>> {
    let text = stdout_of(&mut command(
        &bpftool.display().to_string(),
        ["perf", "show", "-j"],
    ))?;
    let links = parse_array(&text).context("parsing `bpftool perf show -j`")?;
    Ok(tracepoint_links(&links, pid))
}

pub fn tracepoint_links(links: &[serde_json::Value], pid: i32) -> HashMap<u64, String> {
    links
        .iter()
        .filter(|link| link.get("pid").and_then(serde_json::Value::as_i64) == Some(i64::from(pid)))
        .filter_map(|link| {
            Some((
                link.get("prog_id")?.as_u64()?,
                link.get("tracepoint")?.as_str()?.to_owned(),
            ))
        })
        .collect()
}

fn parse_array(text: &str) -> Result<Vec<serde_json::Value>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str(text)? {
        serde_json::Value::Array(items) => Ok(items),
        other => bail!("expected a JSON array, got {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu() {
        let stat = "1234 (tracer (x) y) S 1 1234 1234 0 -1 4194560 500 0 0 0 37 12 0 0 20 0 3 0";
        assert_eq!(stat_cpu_ticks(stat), Some(49));
        assert_eq!(stat_cpu_ticks("1234 (short) S 1"), None);
        let stat = "1234 (tracer) S 77 1234 1234 0 -1 4194560 500 0 0 0 37 12 5 3 20 0 3 0";
        assert_eq!(stat_children_ticks(stat), Some(8));
        assert_eq!(stat_parent_pid(stat), Some(77));
        assert_eq!(stat_children_ticks("1234 (short) S 1"), None);
    }

    #[test]
    fn hwm() {
        let status = "Name:\ttracer\nVmPeak:\t  100 kB\nVmHWM:\t   23456 kB\nVmRSS:\t 2000 kB\n";
        assert_eq!(status_hwm_kib(status), Some(23_456));
        assert_eq!(status_hwm_kib("Name:\tzombie\n"), None);
        assert_eq!(status_field_kib(status, "VmRSS:"), Some(2_000));
    }

    #[test]
    fn tracer_lines() {
        assert_eq!(
            parse_attached("tracer: 5 probes attached in 248 ms; watching for 10s"),
            Some((5, 248.0))
        );
        assert_eq!(
            parse_attached("tracer: 1 probe attached in 12.5 ms; watching for 1s"),
            Some((1, 12.5))
        );
        assert_eq!(parse_attached("tracer: mounted tracefs"), None);
        assert_eq!(
            parse_written("tracer: verdict written 20 ms after the window closed"),
            Some(20.0)
        );
        assert_eq!(parse_written("tracer: something else"), None);
    }

    #[test]
    fn bpftrace_lines() {
        assert_eq!(parse_attaching("Attaching 4 probes..."), Some(4));
        assert_eq!(parse_attaching("Attaching 1 probe..."), Some(1));
        assert_eq!(parse_attaching("@ns[1, 7]: 1922805"), None);
    }

    #[test]
    fn perf_links_of_pid() {
        let links: Vec<serde_json::Value> = serde_json::from_str(
            r#"[{"pid":19777,"fd":7,"prog_id":733,"fd_type":"tracepoint","tracepoint":"kfree_skb"},
            {"pid":19777,"fd":9,"prog_id":734,"fd_type":"tracepoint","tracepoint":"softirq_entry"},
            {"pid":42,"fd":3,"prog_id":12,"fd_type":"tracepoint","tracepoint":"kfree_skb"}]"#,
        )
        .expect("json");
        let map = tracepoint_links(&links, 19777);
        assert_eq!(map.len(), 2);
        assert_eq!(other_links(&links, Some(19777)), ["pid 42: kfree_skb"]);
        assert_eq!(other_links(&links, None).len(), 3);
        assert_eq!(map.get(&734).map(String::as_str), Some("softirq_entry"));
        assert!(parse_array("").expect("empty").is_empty());
        assert!(parse_array("{}").is_err());
    }

    #[test]
    fn probe_cost() {
        let cost = ProbeCost {
            program: "kfree_skb".into(),
            runs: 4,
            run_time_ns: 400,
        };
        assert_eq!(cost.ns_per_run(), Some(100.0));
        let idle = ProbeCost { runs: 0, ..cost };
        assert_eq!(idle.ns_per_run(), None);
    }

    #[test]
    fn fdinfo_ids() {
        let link = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\nlink_type:\tperf\n\
                    link_id:\t1183\nprog_tag:\tabc\nprog_id:\t2481\n";
        assert_eq!(fdinfo_prog_id(link), Some(2481));
        assert_eq!(fdinfo_prog_id("pos:\t0\nflags:\t02\n"), None);
    }

    #[test]
    fn program_deltas_between_reads() {
        let cost = |program: &str, runs, run_time_ns| ProbeCost {
            program: program.to_owned(),
            runs,
            run_time_ns,
        };
        let before = [cost("kfree_skb", 10, 1000)];
        let after = [cost("kfree_skb", 110, 9000), cost("softirq_entry", 5, 50)];
        let deltas = program_deltas(&before, &after);
        assert_eq!((deltas[0].runs, deltas[0].run_time_ns), (100, 8000));
        assert_eq!((deltas[1].runs, deltas[1].run_time_ns), (5, 50));
    }
}
