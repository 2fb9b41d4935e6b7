//! The cost of one counter sample on this node, for `cargo xtask bench` (step `counters`): the
//! first sample (every namespace read), then `--samples N` more taken every `--interval-ms` as
//! the live tools take them (`CounterSource::sample_planned` with no activity: the host and
//! the slow round's share of the idle namespaces), then one full sample (`sample`, every
//! namespace read, as at a window's end); each timed in wall time and in the CPU time of the
//! whole process (every thread: `getrusage(RUSAGE_SELF)`). Prints one JSON object on stdout.
//! Read-only, like the tracer; needs root to enter other namespaces.

use std::time::{Duration, Instant};

use tracer::node::counters::{CounterSource, SamplePlan};

/// utime + stime of the process (all threads, also those that have exited), in ms.
fn cpu_ms() -> f64 {
    // SAFETY: an all-zero `rusage` is a valid value of a plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live, writable `rusage`; RUSAGE_SELF is a valid `who`.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let ms = |tv: libc::timeval| tv.tv_sec as f64 * 1000.0 + tv.tv_usec as f64 / 1000.0;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

fn arg(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(at) => args
            .get(at + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a whole number")),
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (samples, interval_ms) = match (
        arg(&args, "--samples", 10),
        arg(&args, "--interval-ms", 1000),
    ) {
        (Ok(s), Ok(i)) => (s, i),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("counter_sample: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let source = CounterSource::live();
    let timed = |at_ms: u64, plan: &SamplePlan| {
        let (wall0, cpu0) = (Instant::now(), cpu_ms());
        let sample = source.sample_planned(at_ms, plan);
        let wall = wall0.elapsed().as_secs_f64() * 1000.0;
        (wall, cpu_ms() - cpu0, sample)
    };
    let idle = SamplePlan::default();
    let (first_wall, first_cpu, first) = timed(0, &SamplePlan::full());
    let mut wall_ms = Vec::new();
    let mut cpu = Vec::new();
    let mut last = first;
    for i in 1..=samples {
        std::thread::sleep(Duration::from_millis(interval_ms));
        let (w, c, s) = timed(i * interval_ms, &idle);
        wall_ms.push(w);
        cpu.push(c);
        last = s;
    }
    let (full_wall, full_cpu, _) = timed((samples + 1) * interval_ms, &SamplePlan::full());
    let interfaces: usize = last.netns.iter().map(|n| n.interfaces.len()).sum();
    let out = serde_json::json!({
        "namespaces": last.netns.len(),
        "interfaces": interfaces,
        "errors": last.errors,
        "interval_ms": interval_ms,
        "first_wall_ms": first_wall,
        "first_cpu_ms": first_cpu,
        "wall_ms": wall_ms,
        "cpu_ms": cpu,
        "full_wall_ms": full_wall,
        "full_cpu_ms": full_cpu,
    });
    println!("{out}");
    std::process::ExitCode::SUCCESS
}
