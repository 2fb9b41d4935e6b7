//! The `tracer` command line: parses arguments, runs a mode, prints one clear sentence on failure.
//! Modes own no logic of their own; they call into the library (`live`, `watch`, `window`, `tui`).

use std::{
    io::{IsTerminal as _, Write as _},
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};
use tracer::{
    judge::document::{VerdictDocument, EXIT_ERROR},
    judge::window::{judge, Frame},
    modes::live::{netns_scope, LiveTracer},
    modes::recording::Recording,
    modes::watch::Watch,
    node::counters::CounterSource,
    node::facts::FactsSource,
    node::netns::NetnsScope,
    present::dashboard::Dashboard,
};

mod cli;

/// One line on stderr that never panics: after a hang-up the terminal is gone.
macro_rules! say {
    ($($arg:tt)*) => {
        tracer::modes::stop::say(format_args!($($arg)*))
    };
}

use cli::{Command, Format};

/// Logs on stderr: `serve` logs its events at info (text or JSON lines, `--log-format`); the
/// other commands only warnings, their messages being one sentence each. `TRACER_LOG` (an
/// EnvFilter, e.g. `debug`) overrides the level.
fn init_logging(command: Option<&Command>) {
    let (default, json) = match command {
        Some(Command::Serve { log_format, .. }) => {
            ("warn,tracer=info", *log_format == cli::LogFormat::Json)
        }
        // The MCP server's producer says when it is ready, as serve's does (stderr; stdout
        // carries the protocol).
        Some(Command::Mcp { .. }) => ("warn,tracer=info", false),
        _ => ("warn", false),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRACER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracer::modes::server::events::subscriber(
        filter,
        json,
        std::io::stderr().is_terminal(),
        std::io::stderr,
    );
    // As `fmt().init()` did: also the bridge from the `log` crate's records.
    let _ = tracing_subscriber::util::SubscriberInitExt::try_init(logs);
}

fn main() -> ExitCode {
    tracer::kernel::startup::limit_malloc_arenas();
    let parsed = cli::try_parse();
    init_logging(parsed.as_ref().ok().and_then(|cli| cli.command.as_ref()));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            if let Some(sentence) = cli::own_sentence(&e) {
                eprintln!("tracer: {sentence}");
                return ExitCode::from(EXIT_ERROR);
            }
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_ERROR } else { 0 });
        }
    };
    let command = cli.command.unwrap_or(Command::Top {
        window: Duration::from_secs(30),
        netns: None,
        pod: None,
        replay: None,
    });
    let result = match command {
        Command::Report {
            replay: Some(file),
            format,
            pod,
            ..
        } => replay_report(&file, format, pod.as_deref()),
        Command::Report {
            duration,
            format,
            netns,
            pod,
            replay: None,
            capture,
        } => report(duration, format, netns, pod, capture),
        Command::Top {
            window,
            netns,
            pod,
            replay,
        } => top(window, netns, pod, replay).map(|()| 0),
        Command::Record {
            duration,
            output,
            force,
            netns,
            pod,
        } => record(duration, &output, force, netns, pod),
        Command::Flows {
            duration,
            dst,
            port,
            netns,
            pod,
            top,
            format,
        } => flows(
            duration,
            tracer::judge::flows::DestFilter {
                daddr: dst,
                dport: port,
                // A listener's clients fold into one row per listening port.
                ephemeral_ports: tracer::kernel::probes::host_ephemeral_ports(),
            },
            netns,
            pod,
            top,
            format,
        ),
        Command::Serve {
            listen,
            window,
            max_window,
            netns,
            pod,
            security,
            mcp,
            log_format: _,
            allow_capture,
            node_name,
        } => live_scope(netns, pod).and_then(|scope| {
            if let Some(name) = &node_name {
                tracer::modes::live::set_node_name(name);
            }
            serve(tracer::modes::server::ServeOptions {
                listen,
                window,
                max_window,
                scope,
                limits: tracer::present::metrics::Limits::default(),
                security: security.security(),
                mount: mcp.then_some(tracer::modes::mcp::mount as tracer::modes::server::Mount),
                allow_capture,
            })
        }),
        Command::Mcp {
            max_window,
            netns,
            pod,
        } => live_scope(netns, pod)
            .and_then(|scope| tracer::modes::mcp::run_stdio(max_window, scope)),
        Command::Diff {
            affected,
            healthy,
            format,
        } => diff(&affected, &healthy, format),
        Command::Cluster {
            prometheus: Some(url),
            prometheus_token_file,
            prometheus_basic_auth_file,
            window,
            timeout,
            format,
            client,
            ..
        } => cluster_from_prometheus(
            &url,
            prometheus_token_file.as_deref(),
            prometheus_basic_auth_file.as_deref(),
            window,
            timeout,
            format,
            client,
        ),
        Command::Cluster {
            endpoints,
            endpoints_file,
            window,
            timeout,
            format,
            client,
            ..
        } => cluster(
            &endpoints,
            endpoints_file.as_deref(),
            window,
            timeout,
            format,
            client,
        ),
        Command::Capture { duration, options } => {
            tracer::modes::capture::command::run(duration, options)
        }
        Command::Schema => serde_json::to_string_pretty(&tracer::judge::document::schema())
            .map(|json| {
                println!("{json}");
                0
            })
            .context("printing the schema"),
        Command::Check { format } => check(format),
        Command::Completions { shell } => {
            print_bytes(&cli::completions(shell)).context("printing the completion script")
        }
        Command::Man => cli::man_page()
            .and_then(|page| print_bytes(&page))
            .context("printing the man page"),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say!("tracer: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Writes `bytes` to stdout; a reader that went away (`| head`) is not an error.
fn print_bytes(bytes: &[u8]) -> std::io::Result<u8> {
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(0),
    }
}

/// `tracer check`: the lines as text (also when piped, as always), or
/// `{ "ready": bool, "lines": [...] }` with `--format json|yaml`.
fn check(format: Option<Format>) -> Result<u8> {
    use tracer::modes::check::{evaluate, render, NodeFacts, Status};
    let lines = evaluate(&NodeFacts::gather());
    let ready = !lines.iter().any(|l| l.status == Status::Fail);
    #[derive(serde::Serialize)]
    struct CheckDocument<'a> {
        /// Everything the tracer needs is there (exit status 0).
        ready: bool,
        lines: &'a [tracer::modes::check::CheckLine],
    }
    let document = CheckDocument {
        ready,
        lines: &lines,
    };
    print_as(
        &document,
        || render(&lines),
        Some(format.unwrap_or(Format::Text)),
    )?;
    Ok(u8::from(!ready))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Watches for `duration`, taking a frame every second and showing progress on stderr; ends
/// early on Ctrl-C, SIGTERM or SIGHUP (see `modes::stop`). Returns the milliseconds watched and
/// whether it was cut short.
fn run_window(tracer: &LiveTracer, watch: &mut Watch, duration: Duration) -> Result<(u64, bool)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let tty = std::io::stderr().is_terminal();
    say!(
        "tracer: {} probes attached in {:.0} ms; watching for {}",
        tracer.attached_count(),
        tracer.startup_ms,
        humantime::format_duration(duration)
    );
    runtime.block_on(async {
        let started = Instant::now();
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let mut next_tick = Duration::from_secs(1);
        loop {
            let elapsed = started.elapsed();
            // SIGHUP, or a signal that came while the probes attached or the facts were read,
            // before the handlers below existed.
            if let Some(reason) = tracer::modes::stop::reason() {
                say!("\ntracer: {reason}; judging the window so far");
                return Ok((elapsed.as_millis() as u64, true));
            }
            if elapsed >= duration {
                if tty {
                    say!("");
                }
                return Ok((elapsed.as_millis() as u64, false));
            }
            if elapsed >= next_tick {
                watch.tick(tracer, elapsed.as_millis() as u64)?;
                next_tick += Duration::from_secs(1);
            }
            if tty {
                let left = duration - elapsed;
                let mut err = std::io::stderr();
                let _ = write!(
                    err,
                    "\rtracer: collecting… {:>4}s left ",
                    left.as_secs() + 1
                );
                let _ = err.flush();
            }
            let wait = (duration.min(next_tick))
                .saturating_sub(started.elapsed())
                .min(Duration::from_millis(200));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = tokio::signal::ctrl_c() => {
                    say!("\ntracer: interrupted; judging the window so far");
                    return Ok((started.elapsed().as_millis() as u64, true));
                }
                _ = sigterm.recv() => {
                    say!("\ntracer: terminated; judging the window so far");
                    return Ok((started.elapsed().as_millis() as u64, true));
                }
            }
        }
    })
}

/// Prints any output the way `report` prints its document: text on a terminal, else JSON.
fn print_as<T: serde::Serialize>(
    value: &T,
    text: impl FnOnce() -> String,
    format: Option<Format>,
) -> Result<()> {
    let format = format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Text
    } else {
        Format::Json
    });
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, value).context("writing JSON")?;
            writeln!(out).context("writing JSON")?;
        }
        Format::Yaml => yaml_serde::to_writer(&mut out, value).context("writing YAML")?,
        Format::Text => out
            .write_all(text().as_bytes())
            .context("writing the summary")?,
    }
    Ok(())
}

/// One side of `diff`: a file, or stdin for `-`.
fn diff_input(path: &Path) -> Result<tracer::modes::diff::NodeInput> {
    if !tracer::modes::files::is_dash(path) {
        return tracer::modes::diff::NodeInput::load(path);
    }
    let (name, text) = tracer::modes::files::read_input(path)?;
    tracer::modes::diff::NodeInput::parse(&name, &text)
        .with_context(|| format!("{name} cannot be compared"))
}

fn diff(affected: &Path, healthy: &Path, format: Option<Format>) -> Result<u8> {
    anyhow::ensure!(
        !(tracer::modes::files::is_dash(affected) && tracer::modes::files::is_dash(healthy)),
        "only one of the two inputs can be - (stdin); give the other as a file"
    );
    let a = diff_input(affected)?;
    let h = diff_input(healthy)?;
    let result = tracer::modes::diff::compare(&a, &h);
    print_as(&result, || result.text(), format)?;
    Ok(result.exit_code())
}

fn cluster(
    endpoints: &[String],
    endpoints_file: Option<&Path>,
    window: Duration,
    timeout: Duration,
    format: Option<Format>,
    client: cli::ClusterClient,
) -> Result<u8> {
    let client = client.client()?;
    let file_text = endpoints_file
        .map(|f| {
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the endpoints file {}", f.display()))
        })
        .transpose()?;
    let endpoints = tracer::modes::cluster::parse_endpoints(endpoints, file_text.as_deref())?;
    say!(
        "tracer: asking {} sidecars for their last {} (at most {})",
        endpoints.len(),
        humantime::format_duration(window),
        humantime::format_duration(timeout)
    );
    let fetched = tracer::modes::cluster::fetch_all(&endpoints, window, timeout, &client);
    let verdict = tracer::modes::cluster::judge_cluster(&fetched);
    print_as(&verdict, || verdict.text(), format)?;
    Ok(verdict.exit_code())
}

fn cluster_from_prometheus(
    url: &str,
    token_file: Option<&Path>,
    basic_file: Option<&Path>,
    window: Duration,
    timeout: Duration,
    format: Option<Format>,
    client: cli::ClusterClient,
) -> Result<u8> {
    use tracer::modes::promql;
    let auth = promql::Auth::new(
        token_file,
        basic_file,
        std::env::var(promql::TOKEN_ENV).ok(),
    )?;
    let prometheus = promql::Prometheus::new(url, auth, &client.client()?, timeout)?;
    say!(
        "tracer: asking Prometheus at {url} for the last {}",
        humantime::format_duration(window)
    );
    let answers = prometheus.ask(window)?;
    let verdict = tracer::modes::cluster::judge_nodes(promql::nodes_from(&answers, window));
    print_as(&verdict, || verdict.text(), format)?;
    Ok(verdict.exit_code())
}

fn print_document(document: &VerdictDocument, format: Option<Format>) -> Result<()> {
    print_as(document, || document.text(), format)
}

fn cut_short_note(interrupted: bool, elapsed_ms: u64, duration: Duration) -> Vec<String> {
    if interrupted {
        vec![format!(
            "window cut short by a signal after {:.1}s of {}",
            elapsed_ms as f64 / 1000.0,
            humantime::format_duration(duration)
        )]
    } else {
        Vec::new()
    }
}

/// The window's scope: `--pod NAMESPACE/NAME` (found from the node's files) or `--netns PATH`.
fn live_scope(netns: Option<PathBuf>, pod: Option<String>) -> Result<Option<NetnsScope>> {
    match (pod, netns) {
        (Some(spec), _) => tracer::node::pods::live_scope(&spec).map(Some),
        (None, Some(path)) => netns_scope(&path).map(Some),
        (None, None) => Ok(None),
    }
}

/// A recording (a file, or stdin for `-`) narrowed to `--pod NAMESPACE/NAME` as the
/// recording's facts knew the pod.
fn load_recording(file: &Path, pod: Option<&str>) -> Result<Recording> {
    let mut recording = if tracer::modes::files::is_dash(file) {
        let (name, text) = tracer::modes::files::read_input(file)?;
        Recording::parse(&text).with_context(|| format!("{name} is not a usable recording"))?
    } else {
        Recording::load(file)?
    };
    if let Some(spec) = pod {
        recording.scope = Some(tracer::node::pods::recorded_scope(
            &recording.facts_start.pods,
            &recording.facts_end.pods,
            recording.scope.as_ref(),
            spec,
        )?);
    }
    Ok(recording)
}

fn report(
    duration: Duration,
    format: Option<Format>,
    netns: Option<PathBuf>,
    pod: Option<String>,
    capture: Option<PathBuf>,
) -> Result<u8> {
    let scope = live_scope(netns, pod)?;
    tracer::modes::stop::install()?;
    let tracer = LiveTracer::start()?;
    let armed = capture
        .map(|file| tracer::modes::capture::armed::arm(file, scope.as_ref().map(|s| s.inode)))
        .transpose()?;
    let mut watch =
        Watch::begin(&tracer, CounterSource::live(), FactsSource::live(), scope)?.lean();
    let (elapsed_ms, interrupted) = run_window(&tracer, &mut watch, duration)?;
    let closed = Instant::now();
    let notes = cut_short_note(interrupted, elapsed_ms, duration);
    let mut judged = watch.finish(&tracer, elapsed_ms.max(1), &notes)?;
    if let Some(armed) = armed {
        say!("{}", armed.finish(&mut judged.document)?.trim_end());
    }
    print_document(&judged.document, format)?;
    say!(
        "tracer: verdict written {:.0} ms after the window closed",
        closed.elapsed().as_secs_f64() * 1000.0
    );
    Ok(judged.document.exit_code())
}

/// `tracer flows`: the per-destination table alone. Exit status 0 (it judges nothing).
fn flows(
    duration: Duration,
    filter: tracer::judge::flows::DestFilter,
    netns: Option<PathBuf>,
    pod: Option<String>,
    top: usize,
    format: Option<Format>,
) -> Result<u8> {
    let scope = live_scope(netns, pod)?;
    let tracer = LiveTracer::start()?;
    let mut watch =
        Watch::begin(&tracer, CounterSource::live(), FactsSource::live(), scope)?.lean();
    let (elapsed_ms, _) = run_window(&tracer, &mut watch, duration)?;
    watch.finish(&tracer, elapsed_ms.max(1), &[])?;
    let mut table = tracer::judge::flows::build(
        &watch.delta(),
        &tracer.names.reset_reasons,
        &filter,
        top.max(1),
    );
    let facts = watch.facts();
    table.label_pods(&|inode| facts.pods.label_of(inode));
    table.label_netns(&|inode| facts.netns_names.get(&inode).cloned());
    let format = format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Text
    } else {
        Format::Json
    });
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &table).context("writing JSON")?;
            writeln!(out).context("writing JSON")?;
        }
        Format::Yaml => yaml_serde::to_writer(&mut out, &table).context("writing YAML")?,
        Format::Text => {
            let labels = netns_labels();
            let label = |inode: u32| {
                labels
                    .get(&inode)
                    .cloned()
                    .unwrap_or_else(|| inode.to_string())
            };
            write!(out, "{}", table.table(&label)).context("writing the table")?;
        }
    }
    Ok(0)
}

/// `tracer record`: exit status 0 once the recording is written, whatever its verdict (so
/// `record -o ev.json && upload ev.json` uploads the evidence of a fault); 2 when it is not.
fn record(
    duration: Duration,
    output: &Path,
    force: bool,
    netns: Option<PathBuf>,
    pod: Option<String>,
) -> Result<u8> {
    // Refuse an existing file or an unwritable place before watching for a minute; the target
    // itself is not touched until the whole recording is there to replace it.
    let output = tracer::modes::files::Output::prepare(output, force)?;
    let scope = live_scope(netns, pod)?;
    tracer::modes::stop::install()?;
    let tracer = LiveTracer::start()?;
    let mut watch = Watch::begin(&tracer, CounterSource::live(), FactsSource::live(), scope)?;
    let (elapsed_ms, interrupted) = run_window(&tracer, &mut watch, duration)?;
    let notes = cut_short_note(interrupted, elapsed_ms, duration);
    let judged = watch.finish(&tracer, elapsed_ms.max(1), &notes)?;
    let recording = watch.recording(&tracer, &judged, unix_now());
    output.write(&recording.to_json()?)?;
    say!(
        "tracer: recorded {} frames to {}; live verdict: {} ({})",
        recording.frames.len(),
        output.name(),
        judged.document.root_cause,
        judged.document.failure_layer
    );
    Ok(0)
}

/// Judges a recording exactly as the live run judged its window.
fn judge_recording(recording: &Recording, frames: &[Frame], notes: &[String]) -> VerdictDocument {
    judge(
        frames,
        &recording.meta,
        &recording.symbols,
        recording.scope.as_ref(),
        &recording.facts_start,
        &recording.facts_end,
        notes,
    )
    .document
}

fn replay_report(file: &Path, format: Option<Format>, pod: Option<&str>) -> Result<u8> {
    let recording = load_recording(file, pod)?;
    let frames = recording.frames();
    let notes = vec![format!("replayed from {}", file.display())];
    let document = judge_recording(&recording, &frames, &notes);
    print_document(&document, format)?;
    Ok(document.exit_code())
}

/// The per-second loss the sparklines draw: the last few minutes, longer than the rolling
/// window the verdict is judged on.
#[derive(Default)]
struct History(Vec<tracer::judge::verdict::Tick>);

impl History {
    const SECONDS: usize = 180;

    fn push(&mut self, tick: Option<&tracer::judge::verdict::Tick>) {
        if let Some(t) = tick {
            if self.0.last().is_none_or(|last| last.at_ms < t.at_ms) {
                self.0.push(t.clone());
            }
        }
        if self.0.len() > Self::SECONDS {
            let excess = self.0.len() - Self::SECONDS;
            self.0.drain(..excess);
        }
    }

    fn ticks(&self) -> &[tracer::judge::verdict::Tick] {
        &self.0
    }
}

fn netns_labels() -> std::collections::BTreeMap<u32, String> {
    tracer::node::netns::enumerate(Path::new("/proc"), Path::new("/run/netns"))
        .into_iter()
        .map(|n| (n.inode, n.label))
        .collect()
}

fn top(
    window: Duration,
    netns: Option<PathBuf>,
    pod: Option<String>,
    replay: Option<PathBuf>,
) -> Result<()> {
    let save_dirs = tracer::present::tui::save_dirs(
        std::env::var_os("TRACER_SAVE_DIR"),
        std::env::current_dir().ok(),
        std::env::temp_dir(),
    );
    let window_frames = window.as_secs().max(2) as usize + 1;
    if let Some(file) = replay {
        let recording = load_recording(&file, pod.as_deref())?;
        let frames = recording.frames();
        let source = format!("replay {}", file.display());
        let labels = netns_labels();
        let mut shown = 1usize;
        let mut history = History::default();
        let producer = move || -> Result<Dashboard> {
            // Step through the recording one second per refresh, then stay on its end.
            shown = (shown + 1).min(frames.len());
            let start = shown.saturating_sub(window_frames);
            let slice = &frames[start..shown];
            let judged = judge(
                slice,
                &recording.meta,
                &recording.symbols,
                recording.scope.as_ref(),
                &recording.facts_start,
                &recording.facts_end,
                &[],
            );
            let elapsed = slice.last().map_or(0.0, |f| f.at_ms as f64 / 1000.0);
            history.push(judged.evidence.ticks.last());
            Ok(Dashboard::from_window(
                &format!("replay {}", file.display()),
                elapsed,
                &judged.document,
                history.ticks(),
                &labels,
            ))
        };
        return tracer::present::tui::run(producer, Duration::from_secs(1), save_dirs, &source);
    }
    let scope = live_scope(netns, pod)?;
    tracer::modes::stop::install()?;
    let tracer = LiveTracer::start()?;
    let watch = Watch::begin(&tracer, CounterSource::live(), FactsSource::live(), scope)?
        .rolling(window_frames);
    let started = Instant::now();
    let mut state = (tracer, watch, 0u64, History::default());
    let producer = move || -> Result<Dashboard> {
        let (tracer, watch, ticks, history) = &mut state;
        let at_ms = started.elapsed().as_millis() as u64;
        watch.tick(tracer, at_ms)?;
        *ticks += 1;
        if *ticks % 15 == 0 {
            watch.refresh_facts();
        }
        let judged = watch.judge_rolling(tracer, &[]);
        history.push(judged.evidence.ticks.last());
        Ok(Dashboard::from_window(
            "live",
            at_ms as f64 / 1000.0,
            &judged.document,
            history.ticks(),
            &netns_labels(),
        ))
    };
    tracer::present::tui::run(producer, Duration::from_secs(1), save_dirs, "live")
}

fn serve(options: tracer::modes::server::ServeOptions) -> Result<u8> {
    anyhow::ensure!(
        options.window <= options.max_window,
        "--window {} is longer than --max-window {}",
        humantime::format_duration(options.window),
        humantime::format_duration(options.max_window)
    );
    tracer::modes::server::run(options)
}
