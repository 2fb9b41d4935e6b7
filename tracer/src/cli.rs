//! The command line's shape: every subcommand, its flags and their help (clap). Parsing only;
//! `main.rs` runs what was asked.

use std::{ffi::OsStr, path::PathBuf, time::Duration};

use clap::{builder::TypedValueParser, error::ErrorKind, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "tracer",
    version,
    about = "Live eBPF network tracer: which layer is losing the packets",
    long_about = "Live eBPF network tracer: which layer is losing the packets.\n\n\
                  With no command it opens the live dashboard (`tracer top`)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Capture the dropped packets themselves to pcapng, each with its drop reason, kernel
    /// location, namespace and pod as a packet comment (open with Wireshark or `tshark -r`).
    ///
    /// Packet contents are sensitive: the file holds headers (up to --snaplen bytes) of other
    /// people's traffic.
    Capture {
        /// How long to capture (1s to 24h).
        #[arg(long, default_value = "30s", value_parser = WATCH_WINDOW, allow_hyphen_values = true)]
        duration: Duration,
        #[command(flatten)]
        options: tracer::modes::capture::command::CaptureOptions,
    },
    /// Watch for a window, then print the verdict document and exit.
    ///
    /// Exit status: 0 no degradation found, 1 a root cause was found, 2 the tracer could not
    /// do its job (not root, no probe attached, bad arguments, unreadable recording).
    Report {
        /// How long to watch (1s to 24h, e.g. 10s, 1m, or 30 for seconds).
        #[arg(long, default_value = "30s", value_parser = WATCH_WINDOW, allow_hyphen_values = true)]
        duration: Duration,
        /// Output format; a text summary on a terminal, JSON otherwise.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Only what happened in this network namespace: an `ip netns` NAME, /run/netns/NAME or
        /// /proc/PID/ns/net (anything else is refused).
        #[arg(long, value_name = "NAME|PATH")]
        netns: Option<PathBuf>,
        /// Only what happened in this pod's network namespace (NAMESPACE/NAME or pod UID),
        /// found from the node's own files (cgroups, /var/log/pods); no API server needed.
        #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "netns")]
        pod: Option<String>,
        /// Judge a recording (`tracer record`; `-` reads stdin) instead of the live kernel;
        /// needs no root.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["duration", "netns"])]
        replay: Option<PathBuf>,
        /// Also capture the window's drops and write the winning layer's packets to FILE
        /// (pcapng, reason on each packet; named in the evidence). Packet contents are sensitive.
        #[arg(long, value_name = "FILE", conflicts_with = "replay")]
        capture: Option<PathBuf>,
    },
    /// The live dashboard (the default): rolling verdict, layers, drops, flows, CPUs.
    Top {
        /// Length of the rolling window the verdict is judged on (2s to 10m).
        #[arg(long, default_value = "30s", value_parser = TOP_WINDOW, allow_hyphen_values = true)]
        window: Duration,
        /// Only what happened in this network namespace: an `ip netns` NAME, /run/netns/NAME or
        /// /proc/PID/ns/net.
        #[arg(long, value_name = "NAME|PATH")]
        netns: Option<PathBuf>,
        /// Only what happened in this pod's network namespace (NAMESPACE/NAME or pod UID),
        /// found from the node's own files (cgroups, /var/log/pods); no API server needed.
        #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "netns")]
        pod: Option<String>,
        /// Show a recording instead of the live kernel; needs no root.
        #[arg(long, value_name = "FILE")]
        replay: Option<PathBuf>,
    },
    /// Per destination: retransmits, resets, failed connects, socket errors and RTT
    /// percentiles, watched live for a window (the capture-like view, without a capture).
    Flows {
        /// How long to watch (1s to 24h, e.g. 10s, 1m, or 30 for seconds).
        #[arg(long, default_value = "30s", value_parser = WATCH_WINDOW, allow_hyphen_values = true)]
        duration: Duration,
        /// Only this destination address.
        #[arg(long, value_name = "ADDR")]
        dst: Option<std::net::IpAddr>,
        /// Only this destination port.
        #[arg(long, value_name = "N")]
        port: Option<u16>,
        /// Only sockets of this network namespace: an `ip netns` NAME, /run/netns/NAME or
        /// /proc/PID/ns/net.
        #[arg(long, value_name = "NAME|PATH")]
        netns: Option<PathBuf>,
        /// Only sockets of this pod's network namespace (NAMESPACE/NAME or pod UID), found
        /// from the node's own files (cgroups, /var/log/pods); no API server needed.
        #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "netns")]
        pod: Option<String>,
        /// Rows to print (the most troubled destinations first).
        #[arg(long, default_value_t = 50)]
        top: usize,
        /// Output format; a table on a terminal, JSON otherwise (YAML on request).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Compare an affected node with a healthy one: what differs, most explaining first.
    ///
    /// Takes verdict documents (`report --format json|yaml`, a sidecar's /report) or
    /// recordings (`record`; these add driver versions, each rule and raw counters). Needs no
    /// root. Exit status: 0 the affected node has no root cause, 1 it has one, 2 unreadable input.
    Diff {
        /// The degraded node's document or recording (`-` reads stdin).
        #[arg(value_name = "AFFECTED")]
        affected: PathBuf,
        /// A healthy node's document or recording, to compare with (`-` reads stdin).
        #[arg(value_name = "HEALTHY")]
        healthy: PathBuf,
        /// Output format; a text table on a terminal, JSON otherwise.
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Ask every node's sidecar (`tracer serve`) for its verdict; say whether degradation is
    /// node-specific or cluster-wide.
    ///
    /// Exit status: 0 every node answered and is healthy, 1 a node is degraded, 2 no node gave a
    /// verdict, or every verdict was healthy but some node gave none (unreachable, or answered
    /// without a verdict).
    Cluster {
        /// Sidecars as HOST:PORT (port 9595 when omitted), comma-separated or repeated.
        #[arg(long, value_name = "HOST:PORT,…", value_delimiter = ',')]
        endpoints: Vec<String>,
        /// A file listing sidecars, one HOST:PORT per line, `#` comments.
        #[arg(long, value_name = "FILE")]
        endpoints_file: Option<PathBuf>,
        /// The rolling window each node judges (`/report?window=`; 1s to 1h, and at most the
        /// sidecars' --max-window).
        #[arg(long, default_value = "60s", value_parser = CLUSTER_WINDOW, allow_hyphen_values = true)]
        window: Duration,
        /// The longest the whole fetch may take (1s to 5m); nodes not answered by then are
        /// unreachable.
        #[arg(long, default_value = "10s", value_parser = CLUSTER_TIMEOUT, allow_hyphen_values = true)]
        timeout: Duration,
        /// Output format; a text summary on a terminal, JSON otherwise.
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// What will work on this node and why not: one line per item, with the fix.
    /// Exit status 1 when something the tracer needs is missing.
    Check,
    /// The sidecar: HTTP endpoints over a rolling window, until SIGTERM. Read-only.
    ///
    /// GET /metrics (OpenMetrics text), /report[?window=60s] (the verdict document, JSON),
    /// /healthz, /readyz (200 once the probes are attached).
    Serve {
        /// Address to listen on; the default answers only on this node.
        #[arg(long, default_value = "127.0.0.1:9595", value_name = "ADDR:PORT")]
        listen: std::net::SocketAddr,
        /// Window of /metrics' verdict and of /report without ?window= (1s to 10m).
        #[arg(long, default_value = "60s", value_parser = SERVE_WINDOW, allow_hyphen_values = true)]
        window: Duration,
        /// Longest window /report?window= may ask for (1s to 1h; frames older than --window
        /// are kept one per 10 s).
        #[arg(long, default_value = "5m", value_parser = SERVE_MAX_WINDOW, allow_hyphen_values = true)]
        max_window: Duration,
        /// Only what happened in this network namespace: an `ip netns` NAME, /run/netns/NAME or
        /// /proc/PID/ns/net.
        #[arg(long, value_name = "NAME|PATH")]
        netns: Option<PathBuf>,
        /// Only what happened in this pod's network namespace (NAMESPACE/NAME or pod UID),
        /// found from the node's own files (cgroups, /var/log/pods); no API server needed.
        #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "netns")]
        pod: Option<String>,
        /// Serve GET /capture?seconds=N&reason=NAME,… (pcapng of dropped packets, at most 60 s
        /// and 1,000 packets). Off by default: packet contents are sensitive.
        #[arg(long)]
        allow_capture: bool,
    },
    /// Record a window's evidence to a file (versioned JSON) for `--replay` anywhere.
    ///
    /// Exit status: 0 the recording was written (whatever the verdict; it is printed on
    /// stderr), 2 it was not (not root, bad arguments, FILE exists without --force).
    Record {
        /// How long to watch (1s to 24h, e.g. 10s, 1m, or 30 for seconds).
        #[arg(long, default_value = "60s", value_parser = WATCH_WINDOW, allow_hyphen_values = true)]
        duration: Duration,
        /// Where to write the recording (`-` for stdout). It appears only once complete.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Replace FILE when it exists (it is kept until the new recording is complete).
        #[arg(long)]
        force: bool,
        /// Only what happened in this network namespace: an `ip netns` NAME, /run/netns/NAME or
        /// /proc/PID/ns/net.
        #[arg(long, value_name = "NAME|PATH")]
        netns: Option<PathBuf>,
        /// Only what happened in this pod's network namespace (NAMESPACE/NAME or pod UID),
        /// found from the node's own files (cgroups, /var/log/pods); no API server needed.
        #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "netns")]
        pod: Option<String>,
    },
    /// Print the verdict document's JSON Schema (draft 2020-12), e.g. `tracer schema >
    /// verdict.schema.json`, to validate documents from `report --format json` or /report.
    /// Needs no root.
    Schema,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
    Text,
}

/// The range a duration flag accepts, and the value parser every duration flag uses: a
/// duration (`30s`, `5m`, `1h30m`) or a bare number of seconds (`30`, as `/report?window=30`
/// takes it); outside the range, negative or unreadable → one sentence naming the flag, the
/// range and why (main.rs prints it as `tracer: …`, exit 2).
#[derive(Debug, Clone, Copy)]
pub struct DurationRange {
    pub min: Duration,
    pub max: Duration,
    /// Why the upper bound is what it is (empty when it goes without saying).
    pub why: &'static str,
}

/// `report`, `record`, `flows`: a window watched once and judged whole.
pub const WATCH_WINDOW: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Duration::from_secs(24 * 3600),
    why: "",
};
/// `top --window`: two frames make the first rolling verdict (the least it ever judged); the
/// window's frames are kept one a second.
pub const TOP_WINDOW: DurationRange = DurationRange {
    min: Duration::from_secs(2),
    max: Duration::from_secs(600),
    why: "the dashboard keeps a frame a second of its window in memory",
};
/// `serve --window`: its frames are kept one a second for the server's whole life.
pub const SERVE_WINDOW: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Duration::from_secs(600),
    why: "the sidecar keeps a frame a second of its window in memory",
};
/// `serve --max-window`: frames older than `--window` are kept one per 10 s up to it.
pub const SERVE_MAX_WINDOW: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Duration::from_secs(3600),
    why: "the sidecar keeps a frame per 10 s that far back in memory",
};
/// `cluster --window`: the most any sidecar can be asked for (`serve --max-window`'s bound).
pub const CLUSTER_WINDOW: DurationRange = DurationRange {
    why: "no sidecar keeps more (serve --max-window)",
    ..SERVE_MAX_WINDOW
};
/// `cluster --timeout`: long enough to reach a node, short enough for a person waiting.
pub const CLUSTER_TIMEOUT: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Duration::from_secs(300),
    why: "",
};

/// `90` → `1m30s`; whole seconds as a person writes them.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, 0) => format!("{m}m"),
        (h, 0, 0) => format!("{h}h"),
        _ => humantime::format_duration(d).to_string().replace(' ', ""),
    }
}

impl DurationRange {
    /// `text` as a duration in this range, or the sentence saying why not (`flag` names it).
    pub fn parse(&self, flag: &str, text: &str) -> Result<Duration, String> {
        let give = format!(
            "give {} to {}, e.g. 30s, 5m or 30 (seconds)",
            short(self.min),
            short(self.max)
        );
        let why = if self.why.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.why)
        };
        let text = text.trim();
        let magnitude = text.strip_prefix('-').unwrap_or(text);
        let parsed = match magnitude.parse::<u64>() {
            Ok(secs) => Ok(Duration::from_secs(secs)),
            Err(_) => humantime::parse_duration(magnitude),
        };
        let Ok(value) = parsed else {
            return Err(format!("{flag} {text} is not a duration: {give}"));
        };
        if magnitude.len() != text.len() && !value.is_zero() {
            return Err(format!("{flag} {text} is negative: {give}"));
        }
        if value < self.min {
            return Err(format!(
                "{flag} {text} is shorter than {}: {give}",
                short(self.min)
            ));
        }
        if value > self.max {
            return Err(format!(
                "{flag} {text} is longer than {}{why}: {give}",
                short(self.max)
            ));
        }
        Ok(value)
    }
}

impl TypedValueParser for DurationRange {
    type Value = Duration;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Duration, clap::Error> {
        let flag = arg
            .and_then(clap::Arg::get_long)
            .map_or_else(|| "the duration".to_owned(), |l| format!("--{l}"));
        self.parse(&flag, &value.to_string_lossy())
            .map_err(|sentence| {
                clap::Error::raw(ErrorKind::ValueValidation, sentence).with_cmd(cmd)
            })
    }
}

/// The sentence of a duration refused by [`DurationRange`] (a raw clap error: no context), to
/// print as the tracer prints every error; None for clap's own errors.
pub fn own_sentence(e: &clap::Error) -> Option<String> {
    if e.kind() != ErrorKind::ValueValidation || e.context().next().is_some() {
        return None;
    }
    let text = e.to_string();
    let text = text.trim();
    Some(text.strip_prefix("error: ").unwrap_or(text).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_checked_against_each_range() {
        let secs = |s| Ok(Duration::from_secs(s));
        assert_eq!(WATCH_WINDOW.parse("--duration", "30"), secs(30));
        assert_eq!(WATCH_WINDOW.parse("--duration", "1m30s"), secs(90));
        assert_eq!(WATCH_WINDOW.parse("--duration", "24h"), secs(86_400));
        assert_eq!(CLUSTER_TIMEOUT.parse("--timeout", "5m"), secs(300));
        assert_eq!(TOP_WINDOW.parse("--window", "2s"), secs(2));
        let refused = |range: DurationRange, text: &str| {
            range
                .parse("--x", text)
                .expect_err(text)
                .split([':', '('])
                .next()
                .map(str::trim_end)
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(refused(WATCH_WINDOW, "0s"), "--x 0s is shorter than 1s");
        assert_eq!(refused(WATCH_WINDOW, "0"), "--x 0 is shorter than 1s");
        assert_eq!(
            refused(WATCH_WINDOW, "500ms"),
            "--x 500ms is shorter than 1s"
        );
        assert_eq!(refused(WATCH_WINDOW, "10y"), "--x 10y is longer than 24h");
        assert_eq!(refused(WATCH_WINDOW, "-1"), "--x -1 is negative");
        assert_eq!(refused(WATCH_WINDOW, "-5s"), "--x -5s is negative");
        assert_eq!(
            refused(WATCH_WINDOW, "--format"),
            "--x --format is not a duration"
        );
        assert_eq!(refused(TOP_WINDOW, "1s"), "--x 1s is shorter than 2s");
        assert_eq!(refused(TOP_WINDOW, "11m"), "--x 11m is longer than 10m");
        assert_eq!(refused(SERVE_WINDOW, "2h"), "--x 2h is longer than 10m");
        assert_eq!(
            refused(SERVE_MAX_WINDOW, "10years"),
            "--x 10years is longer than 1h"
        );
        assert_eq!(refused(CLUSTER_WINDOW, "99h"), "--x 99h is longer than 1h");
        assert_eq!(refused(CLUSTER_TIMEOUT, "0s"), "--x 0s is shorter than 1s");
        let sentence = SERVE_MAX_WINDOW
            .parse("--max-window", "2h")
            .expect_err("2h");
        assert_eq!(
            sentence,
            "--max-window 2h is longer than 1h (the sidecar keeps a frame per 10 s that far back \
             in memory): give 1s to 1h, e.g. 30s, 5m or 30 (seconds)"
        );
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
