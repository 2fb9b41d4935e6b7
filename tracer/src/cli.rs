//! The command line's shape: every subcommand, its flags and their help (clap), with examples
//! and exit codes in each `--help`; the version line; shell completions and the man page are
//! generated from the same definition. Parsing only; `main.rs` runs what was asked.

use std::{
    ffi::OsStr,
    net::{SocketAddr, ToSocketAddrs as _},
    path::PathBuf,
    time::Duration,
};

use clap::{
    builder::TypedValueParser, error::ErrorKind, Args, CommandFactory as _, FromArgMatches as _,
    Parser, Subcommand, ValueEnum,
};

/// `0.1.0 (git 1a2b3c4)`: the crate version and the source revision it was built from
/// (tracer/build.rs; `unknown` outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("TRACER_GIT_REV"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "tracer",
    version = VERSION,
    about = "Live eBPF network tracer: which layer is losing the packets",
    long_about = "Live eBPF network tracer: which layer is losing the packets.\n\n\
                  With no command it opens the live dashboard (`tracer top`).",
    after_help = "Examples:\n  \
                  tracer                                  the live dashboard (= tracer top)\n  \
                  tracer report -d 30s -f json | jq .root_cause\n  \
                  tracer check                            what will work on this node\n  \
                  tracer serve --listen :9595             the sidecar, on every address\n  \
                  tracer COMMAND --help                   each command's options, examples, exit codes\n\n\
                  Exit status: see each command's --help; 2 always means the tracer could not do \
                  its job (one sentence on stderr says why)."
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
    #[command(after_help = "Examples:\n  \
         tracer capture -d 30s -w drops.pcapng --layer netfilter\n  \
         tracer capture -w - --proto udp --port 53 | tshark -r -\n  \
         tracer capture -w drops.pcapng --pod default/web --max-packets 200\n  \
         tracer capture -d 10s -w rtx.pcapng --retransmits --port 443   drops and retransmits\n\n\
         Exit status: 0 the capture was written (the summary is on stderr), 2 it could not start \
         (not root, bad arguments, FILE not writable).")]
    Capture {
        /// How long to capture (1s to 24h).
        #[arg(long, default_value = "30s", value_parser = WATCH_WINDOW, allow_hyphen_values = true)]
        duration: Duration,
        #[command(flatten)]
        options: tracer::modes::capture::command::CaptureOptions,
    },
    /// Watch for a window, then print the verdict document and exit.
    #[command(after_help = concat!(
        "Examples:\n  \
         tracer report                          30 s, text on a terminal, JSON when piped\n  \
         tracer report -d 10s -f json | jq .root_cause\n  \
         tracer report -n blue -f yaml          only the `ip netns` namespace blue\n  \
         tracer report --pod shop/cart-0        only that pod's namespace\n  \
         tracer report --replay node.rec.json   judge a recording, no root needed\n\n",
        "Exit status: 0 no degradation found, 1 a root cause was found, 2 the tracer could not \
         do its job (not root, no probe attached, bad arguments, unreadable recording)."
    ))]
    Report {
        /// How long to watch (1s to 24h, e.g. 10s, 1m, or 30 for seconds).
        #[arg(short, long, default_value = "30s", value_parser = WATCH_WINDOW, allow_hyphen_values = true)]
        duration: Duration,
        /// Output format; a text summary on a terminal, JSON otherwise (any case: JSON, json).
        #[arg(short, long, value_enum, ignore_case = true)]
        format: Option<Format>,
        /// Only what happened in this network namespace: an `ip netns` NAME, /run/netns/NAME or
        /// /proc/PID/ns/net (anything else is refused).
        #[arg(short, long, value_name = "NAME|PATH")]
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
    #[command(after_help = concat!(
        "Keys:\n  \
         q, Ctrl-C        quit\n  \
         ?                this list of keys\n  \
         Tab, →           next pane (Shift-Tab, ← the previous one)\n  \
         ↑ ↓ Home End     move in the pane\n  \
         Enter            open the selected drop, flow or destination; Esc or Enter closes it\n  \
         /                filter rows (Enter keeps it, Esc clears it)\n  \
         p                pause / resume\n  \
         s                save the verdict document to a file\n\n",
        "Examples:\n  \
         tracer top                             a rolling 30 s window\n  \
         tracer top --window 2m -n blue         2 minutes, only namespace blue\n  \
         tracer top --replay node.rec.json      show a recording, no root needed\n\n",
        "Exit status: 0 finished (quit, SIGTERM/SIGHUP/Ctrl-C), 2 could not start (not root, no \
         probe attached, no terminal, bad arguments)."
    ))]
    Top {
        /// Length of the rolling window the verdict is judged on (2s to 10m).
        #[arg(short, long, default_value = "30s", value_parser = TOP_WINDOW, allow_hyphen_values = true)]
        window: Duration,
        /// Only what happened in this network namespace: an `ip netns` NAME, /run/netns/NAME or
        /// /proc/PID/ns/net.
        #[arg(short, long, value_name = "NAME|PATH")]
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
    #[command(after_help = concat!(
        "Examples:\n  \
         tracer flows -d 30s                    every destination, most troubled first\n  \
         tracer flows --dst 10.0.0.0/8 --port 443\n  \
         tracer flows --dst 198.18.0.2 -f json\n  \
         tracer flows --pod shop/cart-0 --top 10\n\n",
        "Exit status: 0 finished (window over, SIGTERM/SIGHUP/Ctrl-C), 2 could not start (not \
         root, no probe attached, bad arguments)."
    ))]
    Flows {
        /// How long to watch (1s to 24h, e.g. 10s, 1m, or 30 for seconds).
        #[arg(short, long, default_value = "30s", value_parser = WATCH_WINDOW, allow_hyphen_values = true)]
        duration: Duration,
        /// Only this destination: an address (198.18.0.2) or a network (10.0.0.0/8, fd00::/8).
        #[arg(long, value_name = "ADDR[/LEN]")]
        dst: Option<tracer::judge::flows::Network>,
        /// Only this destination port.
        #[arg(long, value_name = "N")]
        port: Option<u16>,
        /// Only sockets of this network namespace: an `ip netns` NAME, /run/netns/NAME or
        /// /proc/PID/ns/net.
        #[arg(short, long, value_name = "NAME|PATH")]
        netns: Option<PathBuf>,
        /// Only sockets of this pod's network namespace (NAMESPACE/NAME or pod UID), found
        /// from the node's own files (cgroups, /var/log/pods); no API server needed.
        #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "netns")]
        pod: Option<String>,
        /// Rows to print (the most troubled destinations first).
        #[arg(long, default_value_t = 50)]
        top: usize,
        /// Output format; a table on a terminal, JSON otherwise (YAML on request; any case).
        #[arg(short, long, value_enum, ignore_case = true)]
        format: Option<Format>,
    },
    /// Compare an affected node with a healthy one: what differs, most explaining first.
    ///
    /// Takes verdict documents (`report --format json|yaml`, a sidecar's /report) or
    /// recordings (`record`; these add driver versions, each rule and raw counters). Needs no
    /// root.
    #[command(after_help = "Examples:\n  \
         tracer diff bad.json good.json         two `report -f json` documents\n  \
         tracer diff bad.rec.json good.rec.json recordings: drivers, rules, raw counters too\n  \
         ssh node-a tracer report -f json | tracer diff - good.json\n\n\
         Exit status: 0 the affected node has no root cause, 1 it has one, 2 unreadable input.")]
    Diff {
        /// The degraded node's document or recording (`-` reads stdin).
        #[arg(value_name = "AFFECTED")]
        affected: PathBuf,
        /// A healthy node's document or recording, to compare with (`-` reads stdin).
        #[arg(value_name = "HEALTHY")]
        healthy: PathBuf,
        /// Output format; a text table on a terminal, JSON otherwise (any case).
        #[arg(short, long, value_enum, ignore_case = true)]
        format: Option<Format>,
    },
    /// Ask every node's sidecar (`tracer serve`) for its verdict, or Prometheus for the series
    /// it scraped off them; say whether degradation is node-specific or cluster-wide.
    #[command(after_help = "Examples:\n  \
         tracer cluster --endpoints node-a:9595,node-b,node-c\n  \
         tracer cluster --endpoints-file nodes.txt --window 5m -f json\n  \
         tracer cluster --prometheus http://prometheus:9090 --window 5m\n  \
         TRACER_PROMETHEUS_TOKEN=… tracer cluster --prometheus https://prom.example/ -f yaml\n\n\
         Exit status: 0 every node answered and is healthy, 1 a node is degraded, 2 no node \
         gave a verdict, or every verdict was healthy but some node gave none (unreachable, or \
         answered without a verdict), or bad arguments.")]
    Cluster {
        /// Sidecars as HOST:PORT (port 9595 when omitted), comma-separated or repeated.
        #[arg(long, value_name = "HOST:PORT,…", value_delimiter = ',')]
        endpoints: Vec<String>,
        /// A file listing sidecars, one HOST:PORT per line, `#` comments.
        #[arg(long, value_name = "FILE")]
        endpoints_file: Option<PathBuf>,
        /// Judge from Prometheus instead (its base URL): the series it scraped off every
        /// sidecar over the window, through /api/v1/query. Nodes whose series went stale or
        /// whose probes are detached are "not reporting".
        #[arg(long, value_name = "URL", conflicts_with_all = ["endpoints", "endpoints_file"])]
        prometheus: Option<String>,
        /// A file whose first line (`#` comments) is the bearer token for Prometheus; without
        /// it, the TRACER_PROMETHEUS_TOKEN environment variable, if set.
        #[arg(long, value_name = "FILE", requires = "prometheus")]
        prometheus_token_file: Option<PathBuf>,
        /// A file whose first line is `user:password` for Prometheus' basic auth.
        #[arg(
            long,
            value_name = "FILE",
            requires = "prometheus",
            conflicts_with = "prometheus_token_file"
        )]
        prometheus_basic_auth_file: Option<PathBuf>,
        /// The rolling window each node judges (`/report?window=`; 1s to 1h, and at most the
        /// sidecars' --max-window).
        #[arg(long, default_value = "60s", value_parser = CLUSTER_WINDOW, allow_hyphen_values = true)]
        window: Duration,
        /// The longest the whole fetch may take (1s to 5m); nodes not answered by then are
        /// unreachable.
        #[arg(long, default_value = "10s", value_parser = CLUSTER_TIMEOUT, allow_hyphen_values = true)]
        timeout: Duration,
        /// Output format; a text summary on a terminal, JSON otherwise (any case).
        #[arg(short, long, value_enum, ignore_case = true)]
        format: Option<Format>,
        #[command(flatten)]
        client: ClusterClient,
    },
    /// What will work on this node and why not: one line per item, with the fix. Reads only.
    #[command(after_help = "Examples:\n  \
         tracer check                           one line per item: ok, warn or FAIL, with the fix\n  \
         tracer check -f json                   the same as JSON, for collecting across a fleet\n\n\
         Exit status: 0 everything the tracer needs is there, 1 something it needs is missing, \
         2 bad arguments.")]
    Check {
        /// Output format; text on a terminal, JSON otherwise (YAML on request; any case).
        #[arg(short, long, value_enum, ignore_case = true)]
        format: Option<Format>,
    },
    /// The sidecar: HTTP endpoints over a rolling window, until SIGTERM. Read-only.
    ///
    /// GET /metrics (OpenMetrics text), /report[?window=60s] (the verdict document, JSON),
    /// /healthz, /readyz (200 once the probes are attached). Off loopback, serve HTTPS
    /// (--tls-cert, --tls-key) with --auth-token-file: every endpoint but /healthz and /readyz
    /// then needs `Authorization: Bearer TOKEN` (docs/security.md).
    #[command(after_help = "Examples:\n  \
         tracer serve                           127.0.0.1:9595, this node only\n  \
         tracer serve --listen :9595            every address (the DaemonSet)\n  \
         tracer serve --listen localhost:9595 --window 2m\n  \
         tracer serve --listen :9595 --log-format json   the DaemonSet's logs, one JSON line each\n  \
         curl -s 'localhost:9595/report?window=2m' | jq .root_cause\n\n\
         Exit status: 0 stopped by SIGTERM/SIGHUP/Ctrl-C, 2 could not start (not root, no probe \
         attached, address in use, bad arguments).")]
    Serve {
        /// Address to listen on: ADDR:PORT, HOST:PORT (localhost:9595) or :PORT for every
        /// address; the default answers only on this node.
        #[arg(long, default_value = "127.0.0.1:9595", value_name = "ADDR:PORT", value_parser = parse_listen)]
        listen: SocketAddr,
        /// Window of /metrics' verdict and of /report without ?window= (1s to 10m).
        #[arg(long, default_value = "60s", value_parser = SERVE_WINDOW, allow_hyphen_values = true)]
        window: Duration,
        /// Longest window /report?window= may ask for (1s to 1h; frames older than --window
        /// are kept one per 10 s).
        #[arg(long, default_value = "5m", value_parser = SERVE_MAX_WINDOW, allow_hyphen_values = true)]
        max_window: Duration,
        /// Only what happened in this network namespace: an `ip netns` NAME, /run/netns/NAME or
        /// /proc/PID/ns/net.
        #[arg(short, long, value_name = "NAME|PATH")]
        netns: Option<PathBuf>,
        /// Only what happened in this pod's network namespace (NAMESPACE/NAME or pod UID),
        /// found from the node's own files (cgroups, /var/log/pods); no API server needed.
        #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "netns")]
        pod: Option<String>,
        #[command(flatten)]
        security: ServeSecurity,
        /// Also answer MCP (streamable HTTP) at /mcp: the D7 verdict as tools for an agent,
        /// read from the sidecar's own frames (no extra probes).
        #[arg(long)]
        mcp: bool,
        /// How the sidecar logs its events (start, ready, stop, failures) on stderr: levelled
        /// text lines, or one JSON object per line for a log collector. `TRACER_LOG` sets the
        /// level (default info).
        #[arg(long, value_enum, ignore_case = true, default_value = "text")]
        log_format: LogFormat,
        /// Serve GET /capture?seconds=N&reason=NAME,…&retransmits=1 (pcapng of dropped, and
        /// optionally retransmitted, packets, at most 60 s and 1,000 packets). Off by default:
        /// packet contents are sensitive.
        #[arg(long)]
        allow_capture: bool,
        /// The node's name: the `node` label of every metric and the documents' node_name
        /// (default: the NODE_NAME environment variable, which the DaemonSet sets from
        /// spec.nodeName, else the host name).
        #[arg(long, value_name = "NAME")]
        node_name: Option<String>,
    },
    /// The D7 verdict as MCP tools over stdio, for an agent that spawns the tracer (`kubectl
    /// debug`, ssh). Read-only; ends when stdin closes or on SIGTERM.
    ///
    /// Tools: live_network_verdict, live_network_report, live_tcp_flows, live_node_facts,
    /// live_compare_nodes, live_cluster_health, live_tracer_status. See docs/mcp.md.
    #[command(after_help = "Examples:\n  \
         tracer mcp                             the agent spawns it and speaks MCP on stdin/stdout\n  \
         tracer mcp --netns blue                the tools look at one namespace by default\n  \
         tracer serve --mcp                     the same tools at http://127.0.0.1:9595/mcp\n\n\
         Exit status: 0 the client went (stdin closed) or SIGTERM/SIGHUP/Ctrl-C, 2 could not \
         start (not root, no probe attached, bad arguments).")]
    Mcp {
        /// Longest window live_network_verdict may ask for (1s to 1h; frames older than 60s are
        /// kept one per 10 s).
        #[arg(long, default_value = "5m", value_parser = SERVE_MAX_WINDOW, allow_hyphen_values = true)]
        max_window: Duration,
        /// Only what happened in this network namespace (the tools' default scope): an
        /// `ip netns` NAME, /run/netns/NAME or /proc/PID/ns/net.
        #[arg(long, value_name = "NAME|PATH")]
        netns: Option<PathBuf>,
        /// Only what happened in this pod's network namespace (NAMESPACE/NAME or pod UID); a
        /// tool's own `pod` argument still narrows to another pod.
        #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "netns")]
        pod: Option<String>,
    },
    /// Record a window's evidence to a file (versioned JSON) for `--replay` anywhere; the
    /// verdict is printed on stderr.
    #[command(after_help = "Examples:\n  \
         tracer record -d 60s -o node-a.rec.json\n  \
         tracer record -d 5m -n blue -o - | gzip > blue.rec.json.gz\n  \
         tracer report --replay node-a.rec.json   judge it anywhere, no root needed\n\n\
         Exit status: 0 the recording was written (whatever the verdict), 2 it was not (not root, \
         no probe attached, bad arguments, FILE exists without --force).")]
    Record {
        /// How long to watch (1s to 24h, e.g. 10s, 1m, or 30 for seconds).
        #[arg(short, long, default_value = "60s", value_parser = WATCH_WINDOW, allow_hyphen_values = true)]
        duration: Duration,
        /// Where to write the recording (`-` for stdout). It appears only once complete.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Replace FILE when it exists (it is kept until the new recording is complete).
        #[arg(long)]
        force: bool,
        /// Only what happened in this network namespace: an `ip netns` NAME, /run/netns/NAME or
        /// /proc/PID/ns/net.
        #[arg(short, long, value_name = "NAME|PATH")]
        netns: Option<PathBuf>,
        /// Only what happened in this pod's network namespace (NAMESPACE/NAME or pod UID),
        /// found from the node's own files (cgroups, /var/log/pods); no API server needed.
        #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "netns")]
        pod: Option<String>,
    },
    /// Print the verdict document's JSON Schema (draft 2020-12), e.g. `tracer schema >
    /// verdict.schema.json`, to validate documents from `report --format json` or /report.
    /// Needs no root.
    #[command(after_help = "Examples:\n  \
         tracer schema > verdict.schema.json\n\n\
         Exit status: 0 printed.")]
    Schema,
    /// Print a shell completion script: `source <(tracer completions bash)`, or install it
    /// where the shell loads completions from.
    #[command(after_help = "Examples:\n  \
         source <(tracer completions bash)\n  \
         tracer completions bash > /etc/bash_completion.d/tracer\n  \
         tracer completions zsh > \"${fpath[1]}/_tracer\"\n  \
         tracer completions fish > ~/.config/fish/completions/tracer.fish\n\n\
         Exit status: 0 printed, 2 unknown shell.")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum, ignore_case = true)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `tracer man > /usr/local/share/man/man1/tracer.1`.
    #[command(after_help = "Examples:\n  \
         tracer man | man -l -\n  \
         tracer man > /usr/local/share/man/man1/tracer.1\n\n\
         Exit status: 0 printed.")]
    Man,
}

/// The parsed command line, with the long version (`--version`: revision and kernel programs).
pub fn try_parse() -> Result<Cli, clap::Error> {
    let matches = command().try_get_matches()?;
    Cli::from_arg_matches(&matches)
}

/// The command definition as the binary uses it (also for completions and the man page).
pub fn command() -> clap::Command {
    // Built once per run; clap keeps a 'static string.
    Cli::command().long_version(&*long_version().leak())
}

/// `--version`'s long form: the version line, then what the embedded kernel programs are.
fn long_version() -> String {
    let probes: Vec<String> = crate_probes();
    format!(
        "{VERSION}\nkernel programs: {} tracepoint programs, embedded (eBPF object built with \
         {}): {}\nkprobe fallbacks: planned and named by `tracer check`, not built",
        probes.len(),
        env!("TRACER_EBPF_TOOLCHAIN"),
        probes.join(", ")
    )
}

fn crate_probes() -> Vec<String> {
    tracer::kernel::probes::PROBES
        .iter()
        .map(tracer::kernel::probes::ProbeSpec::tracepoint)
        .collect()
}

/// `tracer completions SHELL`: the script.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command(), "tracer", &mut script);
    script
}

/// `tracer man`: the page, in roff.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command()).render(&mut page)?;
    Ok(page)
}

/// `--listen`: `ADDR:PORT`, `HOST:PORT` (resolved, IPv4 first: `localhost:9595`) or `:PORT` for
/// every address (`0.0.0.0:PORT`).
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let refused = |why: &str| {
        format!(
            "{why}: give ADDR:PORT (0.0.0.0:9595), HOST:PORT (localhost:9595) or :PORT (every \
             address)"
        )
    };
    if let Some(port) = text.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| refused("not a port"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|_| refused("not an address with a port"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| refused("the name has no address"))
}

/// `serve --log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `tracer serve`'s TLS, tokens and connection limits (docs/security.md).
#[derive(Args, Debug, Clone)]
pub struct ServeSecurity {
    /// PEM certificate chain: serve HTTPS (with --tls-key). Re-read when the file changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert. Re-read when the file changes.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Bearer tokens, one per line (16+ visible characters): every endpoint but /healthz and
    /// /readyz then answers 401 without `Authorization: Bearer TOKEN`. Re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// With --auth-token-file: leave /metrics readable without a token (scrapes protected
    /// otherwise).
    #[arg(long, requires = "auth_token_file")]
    pub metrics_open: bool,
    /// Most connections open at once; a newcomer beyond it displaces the oldest idle one
    /// (older than 0.5 s), or waits while all are answering.
    #[arg(long, default_value_t = 256, value_name = "N",
          value_parser = clap::value_parser!(u16).range(2..=4096))]
    pub max_connections: u16,
    /// A TLS handshake or a request's header must arrive within this; idle connections close
    /// after it (1s to 5m).
    #[arg(long, default_value = "10s", value_parser = HEADER_TIMEOUT, allow_hyphen_values = true)]
    pub header_timeout: Duration,
}

impl ServeSecurity {
    pub fn security(self) -> tracer::modes::listener::Security {
        tracer::modes::listener::Security {
            tls: self.tls_cert.zip(self.tls_key),
            token_file: self.auth_token_file,
            metrics_open: self.metrics_open,
            conn: tracer::modes::listener::ConnLimits {
                max_connections: usize::from(self.max_connections),
                header_timeout: self.header_timeout,
            },
        }
    }
}

/// How `tracer cluster` reaches sidecars that ask for a token or serve HTTPS.
#[derive(Args, Debug, Clone)]
pub struct ClusterClient {
    /// A file whose first token (one per line, `#` comments) is sent as `Authorization:
    /// Bearer`; without it, the TRACER_AUTH_TOKEN environment variable, if set.
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// PEM CA certificate(s) the sidecars' certificates are checked against; endpoints without
    /// a scheme are then asked over HTTPS.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// The name the sidecars' certificate is checked for, when it is not the endpoint's (one
    /// certificate for every node, e.g. tracer.tracer.svc); implies HTTPS.
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
}

impl ClusterClient {
    /// The client these flags and `TRACER_AUTH_TOKEN` describe (reads the files they name).
    pub fn client(&self) -> anyhow::Result<tracer::modes::client::Client> {
        tracer::modes::client::Client::new(
            self.auth_token_file.as_deref(),
            std::env::var(tracer::modes::client::TOKEN_ENV).ok(),
            self.ca_cert.as_deref(),
            self.tls_server_name.clone(),
        )
    }
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

/// `serve --header-timeout`: long enough for a slow link, short enough to shed idle clients.
pub const HEADER_TIMEOUT: DurationRange = DurationRange {
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
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("tracer").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
            .unwrap_or_else(|| panic!("{args:?}: no command"))
    }

    #[test]
    fn short_flags_and_any_case_formats() {
        match parse(&["report", "-d", "10s", "-f", "JSON", "-n", "blue"]) {
            Command::Report {
                duration,
                format,
                netns,
                ..
            } => {
                assert_eq!(duration, Duration::from_secs(10));
                assert!(matches!(format, Some(Format::Json)));
                assert_eq!(netns, Some(PathBuf::from("blue")));
            }
            _ => panic!("not report"),
        }
        match parse(&["flows", "-d", "5", "-f", "Yaml", "-n", "/run/netns/x"]) {
            Command::Flows {
                duration, format, ..
            } => {
                assert_eq!(duration, Duration::from_secs(5));
                assert!(matches!(format, Some(Format::Yaml)));
            }
            _ => panic!("not flows"),
        }
        // -o keeps meaning the output file.
        match parse(&["record", "-d", "1m", "-o", "x.json", "-n", "blue"]) {
            Command::Record {
                duration, output, ..
            } => {
                assert_eq!(duration, Duration::from_secs(60));
                assert_eq!(output, PathBuf::from("x.json"));
            }
            _ => panic!("not record"),
        }
        for text in ["json", "JSON", "Json"] {
            assert!(matches!(
                parse(&["check", "--format", text]),
                Command::Check {
                    format: Some(Format::Json)
                }
            ));
        }
        assert!(matches!(parse(&["check"]), Command::Check { format: None }));
        assert!(matches!(
            parse(&["diff", "a", "b", "-f", "TEXT"]),
            Command::Diff {
                format: Some(Format::Text),
                ..
            }
        ));
        assert!(Cli::try_parse_from(["tracer", "report", "-f", "xml"]).is_err());
    }

    #[test]
    fn listen_takes_port_only_and_host_names() {
        let listen = |args: &[&str]| match parse(args) {
            Command::Serve { listen, .. } => listen.to_string(),
            _ => panic!("not serve"),
        };
        assert_eq!(listen(&["serve"]), "127.0.0.1:9595");
        assert_eq!(listen(&["serve", "--listen", ":9595"]), "0.0.0.0:9595");
        assert_eq!(
            listen(&["serve", "--listen", "localhost:9595"]),
            "127.0.0.1:9595"
        );
        assert_eq!(listen(&["serve", "--listen", "[::1]:80"]), "[::1]:80");
        assert_eq!(listen(&["serve", "--listen", "0.0.0.0:1"]), "0.0.0.0:1");
        assert!(parse_listen(":").is_err());
        assert!(parse_listen(":99999").is_err());
        assert!(parse_listen("localhost").is_err());
        assert!(Cli::try_parse_from(["tracer", "serve", "--listen", "9595"]).is_err());
    }

    #[test]
    fn flows_dst_takes_an_address_or_a_network() {
        let dst = |text: &str| match parse(&["flows", "--dst", text]) {
            Command::Flows { dst, .. } => dst.map(|n| (n.addr.to_string(), n.prefix)),
            _ => panic!("not flows"),
        };
        assert_eq!(dst("10.0.0.0/8"), Some(("10.0.0.0".to_owned(), 8)));
        assert_eq!(dst("198.18.0.2"), Some(("198.18.0.2".to_owned(), 32)));
        assert_eq!(dst("fd00::/8"), Some(("fd00::".to_owned(), 8)));
        for bad in ["10.0.0.0/33", "fd00::/129", "host", "10.0.0.0/"] {
            assert!(
                Cli::try_parse_from(["tracer", "flows", "--dst", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_subcommand_help_has_examples_and_exit_codes_and_top_lists_keys() {
        let mut cmd = command();
        cmd.build();
        let mut checked = 0;
        for sub in cmd.get_subcommands_mut().filter(|s| s.get_name() != "help") {
            let help = sub.render_long_help().to_string();
            let name = sub.get_name().to_owned();
            assert!(help.contains("Examples:\n"), "{name}: {help}");
            assert!(help.contains("Exit status: 0 "), "{name}: {help}");
            assert!(help.contains(&format!("tracer {name}")), "{name}: {help}");
            checked += 1;
        }
        assert_eq!(checked, 13, "every subcommand");
        let top = cmd
            .find_subcommand_mut("top")
            .map(|t| t.render_long_help().to_string())
            .unwrap_or_default();
        for key in ["q, Ctrl-C", "Tab", "Enter", "/ ", "p ", "s ", "?"] {
            assert!(top.contains(&format!("\n  {key}")), "{key}: {top}");
        }
    }

    #[test]
    fn version_names_the_revision_and_the_kernel_programs() {
        assert!(VERSION.starts_with(concat!(env!("CARGO_PKG_VERSION"), " (git ")));
        let long = long_version();
        assert!(long.starts_with(VERSION), "{long}");
        assert!(
            long.contains(&format!(
                "{} tracepoint programs",
                tracer::kernel::probes::PROBES.len()
            )),
            "{long}"
        );
        assert!(long.contains("skb:kfree_skb"), "{long}");
        assert!(long.contains(env!("TRACER_EBPF_TOOLCHAIN")), "{long}");
    }

    #[test]
    fn completions_and_the_man_page_come_from_the_same_definition() {
        let bash = String::from_utf8(completions(clap_complete::Shell::Bash)).unwrap_or_default();
        assert!(bash.contains("complete -F _tracer"), "{bash}");
        for sub in ["report", "flows", "completions", "man"] {
            assert!(bash.contains(sub), "{sub}");
        }
        let zsh = String::from_utf8(completions(clap_complete::Shell::Zsh)).unwrap_or_default();
        assert!(zsh.starts_with("#compdef tracer"), "{zsh}");
        let fish = String::from_utf8(completions(clap_complete::Shell::Fish)).unwrap_or_default();
        assert!(fish.contains("complete -c tracer"), "{fish}");
        let man = String::from_utf8(man_page().unwrap_or_default()).unwrap_or_default();
        assert!(man.contains(".TH tracer 1"), "{man}");
        assert!(man.contains("tracer\\-report"), "{man}");
    }
}
