//! The `tracer` command line: parses arguments, runs a mode, prints one clear sentence on failure.
//! Modes own no logic of their own; they call into the library (`tracer::live`, `tracer::report`).

use std::{
    io::{IsTerminal as _, Write as _},
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand, ValueEnum};
use tracer::live::{netns_scope, LiveTracer};

#[derive(Parser)]
#[command(
    name = "tracer",
    version,
    about = "Live eBPF network tracer: which layer is losing the packets",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch for a window, then print the evidence document and exit.
    Report {
        /// How long to watch (e.g. 10s, 1m).
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// Only what happened in this network namespace (/run/netns/NAME, /proc/PID/ns/net).
        #[arg(long, value_name = "PATH")]
        netns: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Yaml,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRACER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Report {
            duration,
            format,
            netns,
        } => report(duration, format, netns),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracer: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Waits out the window, showing progress on stderr; returns early on Ctrl-C or SIGTERM.
fn wait_window(duration: Duration, attached: usize, startup_ms: f64) -> Result<(Duration, bool)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let tty = std::io::stderr().is_terminal();
    eprintln!(
        "tracer: {attached} probes attached in {startup_ms:.0} ms; watching for {}",
        humantime::format_duration(duration)
    );
    runtime.block_on(async {
        let started = Instant::now();
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        loop {
            let elapsed = started.elapsed();
            if elapsed >= duration {
                if tty {
                    eprintln!();
                }
                return Ok((elapsed, false));
            }
            let left = duration - elapsed;
            if tty {
                eprint!("\rtracer: collecting… {:>4}s left ", left.as_secs() + 1);
                let _ = std::io::stderr().flush();
            }
            let tick = left.min(Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("\ntracer: interrupted; reporting the window so far");
                    return Ok((started.elapsed(), true));
                }
                _ = sigterm.recv() => {
                    eprintln!("\ntracer: terminated; reporting the window so far");
                    return Ok((started.elapsed(), true));
                }
            }
        }
    })
}

fn report(duration: Duration, format: Format, netns: Option<PathBuf>) -> Result<()> {
    let scope = netns.as_deref().map(netns_scope).transpose()?;
    let tracer = LiveTracer::start()?;
    let attached = tracer.attached_count();
    let start = tracer.snapshot()?;
    let (elapsed, interrupted) = wait_window(duration, attached, tracer.startup_ms)?;
    let end = tracer.snapshot()?;
    let mut notes = Vec::new();
    if interrupted {
        notes.push(format!(
            "window cut short by a signal after {:.1}s of {}",
            elapsed.as_secs_f64(),
            humantime::format_duration(duration)
        ));
    }
    let document = tracer.report(&start, &end, elapsed.as_secs_f64(), scope, &notes);
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &document).context("writing JSON")?;
            writeln!(out).context("writing JSON")?;
        }
        Format::Yaml => {
            serde_yaml::to_writer(&mut out, &document).context("writing YAML")?;
        }
    }
    Ok(())
}
