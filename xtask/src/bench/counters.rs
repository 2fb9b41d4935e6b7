//! The `counters` step: what one counter sample costs as the node's network namespaces grow.
//!
//! The tracer samples every counter of every namespace once a second (`CounterSource::sample`,
//! in `tracer report`, `top`, `serve` and `record`), so its cost grows with the namespaces, which
//! on a Kubernetes node is one per pod. The step adds idle lab namespaces in steps of
//! [`NAMESPACE_STEPS`] (`ip netns add`, loopback up, and a veth pair between every other pair
//! of them: half the namespaces have a second interface, as a pod has), and at each step runs
//! the `counter_sample` example of the tracer crate: the first sample, then a sample every
//! second, each timed in wall time and in the process's CPU time (all threads). The namespaces
//! are deleted afterwards, also on error or interrupt (a guard).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::summary::Spread;
use super::{check_interrupted, progress};
use crate::cmd::{command, stdout_of};

/// Lab namespaces added before each measurement (cumulative counts).
pub const NAMESPACE_STEPS: [usize; 3] = [0, 100, 250];

/// One measurement: one count of lab namespaces.
#[derive(Debug, Clone, Serialize)]
pub struct CountersRun {
    /// Lab namespaces the bench added.
    pub lab_namespaces: usize,
    /// Namespaces the sample read (the lab's and every other one of the node).
    pub namespaces: usize,
    /// Interfaces in all of them.
    pub interfaces: usize,
    /// The first sample of a fresh source (nothing remembered yet).
    pub first_wall_ms: f64,
    pub first_cpu_ms: f64,
    /// The following samples, one a second, as the live tools take them (the idle namespaces
    /// on their slow round; before it, every sample read every namespace).
    pub wall_ms: Option<Spread>,
    pub cpu_ms: Option<Spread>,
    /// Median CPU time per second of sampling, as % of one core.
    pub cpu_percent: Option<f64>,
    /// One more sample reading every namespace, as at a window's end (absent from samplers
    /// that read every namespace every second).
    pub full_wall_ms: Option<f64>,
    pub full_cpu_ms: Option<f64>,
    /// What the last sample could not read (one sentence each).
    pub errors: Vec<String>,
}

/// The namespaces of a step, deleted on drop.
pub struct Namespaces {
    prefix: String,
    names: Vec<String>,
    /// A veth pair joins namespace `i` to `i - 1` when `i % pair_every == 1`: 4 gives half the
    /// namespaces a second interface, 2 gives every namespace one.
    pair_every: usize,
}

impl Namespaces {
    /// Namespaces named `trc-bench-PID-TAG0…`, with a veth pair as `pair_every` says.
    pub fn new(tag: &str, pair_every: usize) -> Namespaces {
        Namespaces {
            prefix: format!("trc-bench-{}-{tag}", std::process::id()),
            names: Vec::new(),
            pair_every: pair_every.max(2),
        }
    }

    /// Adds namespaces until there are `count`.
    pub fn grow_to(&mut self, count: usize) -> Result<()> {
        while self.names.len() < count {
            check_interrupted()?;
            let index = self.names.len();
            let name = format!("{}{index}", self.prefix);
            ip(&["netns", "add", &name])?;
            self.names.push(name.clone());
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
            // A veth pair between this namespace and the one before it (both ends up).
            if index % self.pair_every == 1 {
                let peer = &self.names[index - 1];
                ip(&[
                    "link", "add", "name", "trcc-a", "netns", peer, "type", "veth", "peer", "name",
                    "trcc-b", "netns", &name,
                ])?;
                ip(&["-n", peer, "link", "set", "trcc-a", "up"])?;
                ip(&["-n", &name, "link", "set", "trcc-b", "up"])?;
            }
        }
        Ok(())
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.names.iter().rev() {
            if let Err(err) = ip(&["netns", "del", name]) {
                eprintln!("bench: cleaning up namespace {name}: {err:#}");
            }
        }
    }
}

fn ip(args: &[&str]) -> Result<()> {
    stdout_of(&mut command("ip", args)).map(drop)
}

fn f64s(json: &serde_json::Value, key: &str) -> Vec<f64> {
    json.get(key)
        .and_then(serde_json::Value::as_array)
        .map(|values| {
            values
                .iter()
                .filter_map(serde_json::Value::as_f64)
                .collect()
        })
        .unwrap_or_default()
}

fn number(json: &serde_json::Value, key: &str) -> Result<f64> {
    json.get(key)
        .and_then(serde_json::Value::as_f64)
        .with_context(|| format!("`{key}` is missing from counter_sample's output"))
}

/// Runs `counter_sample` (`samples` samples after the first, one a second) once per step.
pub fn run(counter_sample: &Path, samples: u32) -> Result<Vec<CountersRun>> {
    let mut lab = Namespaces::new("ctr", 4);
    let mut runs = Vec::new();
    for count in NAMESPACE_STEPS {
        lab.grow_to(count)?;
        check_interrupted()?;
        // Let the new namespaces' set-up work (RCU callbacks, addrconf timers) settle.
        super::sleep(Duration::from_secs(1))?;
        let text = stdout_of(&mut command(
            &counter_sample.display().to_string(),
            [
                "--samples".to_owned(),
                samples.to_string(),
                "--interval-ms".to_owned(),
                "1000".to_owned(),
            ],
        ))?;
        let json: serde_json::Value =
            serde_json::from_str(text.trim()).context("parsing counter_sample's output")?;
        let cpu = Spread::of(f64s(&json, "cpu_ms"));
        let run = CountersRun {
            lab_namespaces: count,
            namespaces: number(&json, "namespaces")? as usize,
            interfaces: number(&json, "interfaces")? as usize,
            first_wall_ms: number(&json, "first_wall_ms")?,
            first_cpu_ms: number(&json, "first_cpu_ms")?,
            wall_ms: Spread::of(f64s(&json, "wall_ms")),
            cpu_percent: cpu.as_ref().map(|c| c.median / 1000.0 * 100.0),
            full_wall_ms: json.get("full_wall_ms").and_then(serde_json::Value::as_f64),
            full_cpu_ms: json.get("full_cpu_ms").and_then(serde_json::Value::as_f64),
            cpu_ms: cpu,
            errors: json
                .get("errors")
                .and_then(serde_json::Value::as_array)
                .map(|errors| {
                    errors
                        .iter()
                        .filter_map(|e| e.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        };
        progress(&progress_line(&run));
        runs.push(run);
    }
    drop(lab);
    Ok(runs)
}

fn spread_ms(spread: Option<&Spread>) -> String {
    spread.map_or_else(
        || "–".to_owned(),
        |s| format!("{:.1} [{:.1}–{:.1}]", s.median, s.min, s.max),
    )
}

pub fn progress_line(run: &CountersRun) -> String {
    format!(
        "counters: +{} lab namespaces ({} read, {} interfaces): first sample {:.1} ms wall / \
         {:.1} ms CPU; then {} ms wall, {} ms CPU per sample; {} error(s)",
        run.lab_namespaces,
        run.namespaces,
        run.interfaces,
        run.first_wall_ms,
        run.first_cpu_ms,
        spread_ms(run.wall_ms.as_ref()),
        spread_ms(run.cpu_ms.as_ref()),
        run.errors.len()
    )
}

/// The step's markdown table.
pub fn markdown(runs: &[CountersRun]) -> String {
    let mut out = String::from(
        "\nCounter sampling (`CounterSource::sample`, once a second in report/top/serve/record):\n\n\
         | lab namespaces added | namespaces read | interfaces | first sample ms (wall / CPU) \
         | sample wall ms median [min–max] | sample CPU ms median [min–max] | CPU % of a core \
         at 1 sample/s | full sample ms (wall / CPU) | errors |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for run in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} / {:.1} | {} | {} | {} | {} | {} |",
            run.lab_namespaces,
            run.namespaces,
            run.interfaces,
            run.first_wall_ms,
            run.first_cpu_ms,
            spread_ms(run.wall_ms.as_ref()),
            spread_ms(run.cpu_ms.as_ref()),
            run.cpu_percent
                .map_or_else(|| "–".to_owned(), |p| format!("{p:.2}")),
            match (run.full_wall_ms, run.full_cpu_ms) {
                (Some(wall), Some(cpu)) => format!("{wall:.1} / {cpu:.1}"),
                _ => "–".to_owned(),
            },
            run.errors.len()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_row_per_step() {
        let run = CountersRun {
            lab_namespaces: 100,
            namespaces: 103,
            interfaces: 206,
            first_wall_ms: 42.25,
            first_cpu_ms: 30.0,
            wall_ms: Spread::of(vec![31.0, 29.0, 40.0]),
            cpu_ms: Spread::of(vec![27.0, 26.0, 28.0]),
            cpu_percent: Some(2.7),
            full_wall_ms: Some(44.0),
            full_cpu_ms: None,
            errors: Vec::new(),
        };
        let table = markdown(std::slice::from_ref(&run));
        assert!(
            table.contains(
                "| 100 | 103 | 206 | 42.2 / 30.0 | 31.0 [29.0–40.0] | 27.0 [26.0–28.0] | 2.70 | – \
                 | 0 |"
            ),
            "{table}"
        );
        assert_eq!(
            progress_line(&run),
            "counters: +100 lab namespaces (103 read, 206 interfaces): first sample 42.2 ms wall \
             / 30.0 ms CPU; then 31.0 [29.0–40.0] ms wall, 27.0 [26.0–28.0] ms CPU per sample; \
             0 error(s)"
        );
    }
}
