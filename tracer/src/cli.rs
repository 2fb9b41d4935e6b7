//! The command line's shape: every subcommand, its flags and their help (clap). Parsing only;
//! `main.rs` runs what was asked.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};

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
    /// Watch for a window, then print the verdict document and exit.
    ///
    /// Exit status: 0 no degradation found, 1 a root cause was found, 2 the tracer could not
    /// do its job (not root, no probe attached, bad arguments, unreadable recording).
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
        /// Only what happened in this pod's network namespace (NAMESPACE/NAME or pod UID),
        /// found from the node's own files (cgroups, /var/log/pods); no API server needed.
        #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "netns")]
        pod: Option<String>,
        /// Judge a recording (`tracer record`; `-` reads stdin) instead of the live kernel;
        /// needs no root.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["duration", "netns"])]
        replay: Option<PathBuf>,
    },
    /// The live dashboard (the default): rolling verdict, layers, drops, flows, CPUs.
    Top {
        /// Length of the rolling window the verdict is judged on.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        window: Duration,
        /// Only what happened in this network namespace.
        #[arg(long, value_name = "PATH")]
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
        /// How long to watch (e.g. 10s, 1m).
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Only this destination address.
        #[arg(long, value_name = "ADDR")]
        dst: Option<std::net::IpAddr>,
        /// Only this destination port.
        #[arg(long, value_name = "N")]
        port: Option<u16>,
        /// Only sockets of this network namespace (/run/netns/NAME, /proc/PID/ns/net).
        #[arg(long, value_name = "PATH")]
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
    /// Exit status: 0 every node answered and is healthy, 1 a node is degraded, 2 no node
    /// answered, or every answer was healthy but some node did not answer.
    Cluster {
        /// Sidecars as HOST:PORT (port 9595 when omitted), comma-separated or repeated.
        #[arg(long, value_name = "HOST:PORT,…", value_delimiter = ',')]
        endpoints: Vec<String>,
        /// A file listing sidecars, one HOST:PORT per line, `#` comments.
        #[arg(long, value_name = "FILE")]
        endpoints_file: Option<PathBuf>,
        /// The rolling window each node judges (`/report?window=`).
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        window: Duration,
        /// The longest the whole fetch may take; nodes not answered by then are unreachable.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
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
        /// Window of /metrics' verdict and of /report without ?window=.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        window: Duration,
        /// Longest window /report?window= may ask for (one frame per second is kept).
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        max_window: Duration,
        /// Only what happened in this network namespace.
        #[arg(long, value_name = "PATH")]
        netns: Option<PathBuf>,
        /// Only what happened in this pod's network namespace (NAMESPACE/NAME or pod UID),
        /// found from the node's own files (cgroups, /var/log/pods); no API server needed.
        #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "netns")]
        pod: Option<String>,
    },
    /// Record a window's evidence to a file (versioned JSON) for `--replay` anywhere.
    ///
    /// Exit status: 0 the recording was written (whatever the verdict; it is printed on
    /// stderr), 2 it was not (not root, bad arguments, FILE exists without --force).
    Record {
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Where to write the recording (`-` for stdout). It appears only once complete.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Replace FILE when it exists (it is kept until the new recording is complete).
        #[arg(long)]
        force: bool,
        /// Only what happened in this network namespace.
        #[arg(long, value_name = "PATH")]
        netns: Option<PathBuf>,
        /// Only what happened in this pod's network namespace (NAMESPACE/NAME or pod UID),
        /// found from the node's own files (cgroups, /var/log/pods); no API server needed.
        #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "netns")]
        pod: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
    Text,
}
