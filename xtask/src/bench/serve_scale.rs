//! The `serve-scale` step: what `tracer serve` costs at rest as the node's namespaces grow.
//!
//! At 0, 100 and 250 idle lab namespaces (`ip netns add`, loopback up, a veth pair between
//! every two of them, so each has one as a pod has) it starts `tracer serve` on a loopback port,
//! times spawn to its `ready:` line, lets it settle for [`SETTLE`], then reads its CPU time
//! (all threads) at the start and end of [`STEADY`] and its resident memory at the end. Before
//! it, a one-second `tracer report` is timed from spawn to its `probes attached` line (its
//! window opens then). The namespaces are deleted afterwards, also on error or interrupt (a guard).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::counters::Namespaces;
use super::observe::{report_startup_ms, ServeProcess, Tools};
use super::{check_interrupted, progress, sleep};

/// Lab namespaces present at each measurement (cumulative counts).
pub const NAMESPACE_STEPS: [usize; 3] = [0, 100, 250];
/// From ready to the first CPU reading: the start-up's one-off work is left out.
const SETTLE: Duration = Duration::from_secs(5);
/// The steady state measured.
const STEADY: Duration = Duration::from_secs(30);

/// One measurement: `tracer serve` with one count of lab namespaces.
#[derive(Debug, Clone, Serialize)]
pub struct ServeScaleRun {
    pub lab_namespaces: usize,
    /// `tracer report`: spawn to its `probes attached` line.
    pub report_ms: f64,
    /// Spawn to the `ready:` log line.
    pub ready_ms: f64,
    /// CPU time over the steady window, as % of one core.
    pub cpu_percent: f64,
    /// The steady window's length.
    pub window_s: f64,
    /// `VmRSS` at the end of the window.
    pub rss_kib: u64,
    /// How the server ended (`exit 0`).
    pub exit: String,
}

/// Runs the step: one `tracer serve` per count of namespaces.
pub fn run(tools: &Tools) -> Result<Vec<ServeScaleRun>> {
    let mut lab = Namespaces::new("srv", 2);
    let mut runs = Vec::new();
    for count in NAMESPACE_STEPS {
        lab.grow_to(count)?;
        check_interrupted()?;
        // Let the new namespaces' set-up work (RCU callbacks, addrconf timers) settle.
        sleep(Duration::from_secs(2))?;
        let run = measure(tools, count).with_context(|| format!("{count} namespaces"))?;
        progress(&progress_line(&run));
        runs.push(run);
    }
    drop(lab);
    Ok(runs)
}

fn measure(tools: &Tools, lab_namespaces: usize) -> Result<ServeScaleRun> {
    let report_ms = report_startup_ms(tools).context("tracer report's start-up")?;
    let mut serve = ServeProcess::start(tools)?;
    let ready_ms = serve.ready_ms;
    sleep(SETTLE)?;
    let (start_at, start_ms) = serve.cpu_ms();
    sleep(STEADY)?;
    let (end_at, end_ms) = serve.cpu_ms();
    let rss_kib = serve.rss_kib().unwrap_or(0);
    let window_s = end_at.duration_since(start_at).as_secs_f64();
    let exit = serve.stop()?;
    Ok(ServeScaleRun {
        lab_namespaces,
        report_ms,
        ready_ms,
        cpu_percent: (end_ms - start_ms).max(0.0) / (window_s * 1000.0) * 100.0,
        window_s,
        rss_kib,
        exit,
    })
}

pub fn progress_line(run: &ServeScaleRun) -> String {
    format!(
        "serve-scale: +{} lab namespaces: report attached in {:.0} ms; serve ready in {:.0} ms; \
         {:.2} % of a core over {:.0} s; RSS {:.1} MiB; {}",
        run.lab_namespaces,
        run.report_ms,
        run.ready_ms,
        run.cpu_percent,
        run.window_s,
        run.rss_kib as f64 / 1024.0,
        run.exit
    )
}

/// The step's markdown table.
pub fn markdown(runs: &[ServeScaleRun]) -> String {
    let mut out = String::from(
        "\n`tracer serve` at rest (idle lab namespaces, a veth each):\n\n\
         | lab namespaces | report: probes attached ms | serve: ready ms | CPU % of a core (steady) | RSS MiB |\n\
         |---|---|---|---|---|\n",
    );
    for run in runs {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {:.2} | {:.1} |",
            run.lab_namespaces,
            run.report_ms,
            run.ready_ms,
            run.cpu_percent,
            run.rss_kib as f64 / 1024.0
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_row_per_step() {
        let run = ServeScaleRun {
            lab_namespaces: 250,
            report_ms: 98.6,
            ready_ms: 1234.4,
            cpu_percent: 0.456,
            window_s: 30.0,
            rss_kib: 30 * 1024 + 512,
            exit: "exit 0".to_owned(),
        };
        let table = markdown(std::slice::from_ref(&run));
        assert!(
            table.contains("| 250 | 99 | 1234 | 0.46 | 30.5 |"),
            "{table}"
        );
        assert_eq!(
            progress_line(&run),
            "serve-scale: +250 lab namespaces: report attached in 99 ms; serve ready in 1234 ms; \
             0.46 % of a core over 30 s; RSS 30.5 MiB; exit 0"
        );
    }
}
