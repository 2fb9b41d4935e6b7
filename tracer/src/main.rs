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
use tracer::{
    counters::CounterSource,
    document::EXIT_ERROR,
    facts::FactsSource,
    live::{netns_scope, LiveTracer},
    watch::Watch,
};

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
    /// Watch for a window, then print the verdict document and exit.
    ///
    /// Exit status: 0 no degradation found, 1 a root cause was found, 2 the tracer could not
    /// do its job (not root, no probe attached, bad arguments).
    Report {
        /// How long to watch (e.g. 10s, 1m).
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Output format; a text summary on a terminal, JSON otherwise.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Only what happened in this network namespace (/run/netns/NAME, /proc/PID/ns/net).
        #[arg(long, value_name = "PATH")]
        netns: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Yaml,
    Text,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRACER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_ERROR } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Report {
            duration,
            format,
            netns,
        } => report(duration, format, netns),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("tracer: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Watches for `duration`, ticking every second and showing progress on stderr; ends early
/// on Ctrl-C or SIGTERM. Returns the milliseconds watched and whether it was cut short.
fn run_window(
    watch: &mut Watch<'_>,
    duration: Duration,
    attached: usize,
    startup_ms: f64,
) -> Result<(u64, bool)> {
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
        let mut next_tick = Duration::from_secs(1);
        loop {
            let elapsed = started.elapsed();
            if elapsed >= duration {
                if tty {
                    eprintln!();
                }
                return Ok((elapsed.as_millis() as u64, false));
            }
            if elapsed >= next_tick {
                watch.tick(elapsed.as_millis() as u64)?;
                next_tick += Duration::from_secs(1);
            }
            if tty {
                let left = duration - elapsed;
                eprint!("\rtracer: collecting… {:>4}s left ", left.as_secs() + 1);
                let _ = std::io::stderr().flush();
            }
            let wait = (duration.min(next_tick)).saturating_sub(started.elapsed());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("\ntracer: interrupted; judging the window so far");
                    return Ok((started.elapsed().as_millis() as u64, true));
                }
                _ = sigterm.recv() => {
                    eprintln!("\ntracer: terminated; judging the window so far");
                    return Ok((started.elapsed().as_millis() as u64, true));
                }
            }
        }
    })
}

fn report(duration: Duration, format: Option<Format>, netns: Option<PathBuf>) -> Result<u8> {
    let scope = netns.as_deref().map(netns_scope).transpose()?;
    let tracer = LiveTracer::start()?;
    let attached = tracer.attached_count();
    let mut watch = Watch::begin(&tracer, CounterSource::live(), FactsSource::live(), scope)?;
    let (elapsed_ms, interrupted) = run_window(&mut watch, duration, attached, tracer.startup_ms)?;
    let mut notes = Vec::new();
    if interrupted {
        notes.push(format!(
            "window cut short by a signal after {:.1}s of {}",
            elapsed_ms as f64 / 1000.0,
            humantime::format_duration(duration)
        ));
    }
    let closed = Instant::now();
    let result = watch.finish(elapsed_ms.max(1), &notes)?;
    let document = result.document;
    let format = format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Text
    } else {
        Format::Json
    });
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &document).context("writing JSON")?;
            writeln!(out).context("writing JSON")?;
        }
        Format::Yaml => serde_yaml::to_writer(&mut out, &document).context("writing YAML")?,
        Format::Text => out
            .write_all(document.text().as_bytes())
            .context("writing the summary")?,
    }
    drop(out);
    eprintln!(
        "tracer: verdict written {:.0} ms after the window closed",
        closed.elapsed().as_secs_f64() * 1000.0
    );
    Ok(document.exit_code())
}
