//! `tracer capture` from the command line: resolves `--netns`/`--pod`, reason names, layer and
//! filters against the running kernel, runs the capture, and prints the summary on stderr (the
//! file may be stdout). Exit status 0 when the capture ran, even with no packet.

use std::{path::PathBuf, time::Duration};

use anyhow::Result;

use super::{
    filter::{self, CaptureFilter},
    run::{capture, CaptureArgs, CaptureKernel},
};

/// The flags of `tracer capture` (besides `--duration`, which `cli.rs` parses as every
/// window), flattened into the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct CaptureOptions {
    /// The pcapng file to write; `-` writes to stdout.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub output: PathBuf,
    /// Only these drop reasons (comma-separated kernel names, e.g. NETFILTER_DROP,NO_SOCKET;
    /// subsystem reasons by number, 0x30001 or SUBSYS_3(1), at most 4).
    #[arg(long, value_name = "NAME,…")]
    pub reason: Option<String>,
    /// Only drops the tracer files under this layer (netfilter, routing, tcp_stack,
    /// nic_driver, irq_cpu).
    #[arg(long, value_name = "LAYER")]
    pub layer: Option<String>,
    /// Only drops in this network namespace (`ip netns` NAME or path).
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<PathBuf>,
    /// Only drops in this pod's network namespace (NAMESPACE/NAME or pod UID).
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "netns")]
    pub pod: Option<String>,
    /// Only packets from or to this address or CIDR.
    #[arg(long, value_name = "ADDR|CIDR")]
    pub host: Option<String>,
    /// Only TCP/UDP packets with this source or destination port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Only this IP protocol (tcp, udp, icmp, icmp6 or a number).
    #[arg(long, value_name = "PROTO")]
    pub proto: Option<String>,
    /// Also capture retransmitted TCP segments (tcp:tcp_retransmit_skb), each commented with
    /// `retransmit state=…`; the namespace, host, port and protocol filters apply to them.
    #[arg(long)]
    pub retransmits: bool,
    /// Stop after this many packets.
    #[arg(long, default_value_t = 1000)]
    pub max_packets: u64,
    /// Bytes kept of each packet, from the IP header on (20 to 256).
    #[arg(long, default_value_t = 128)]
    pub snaplen: u32,
    /// Packets per second the kernel lets through at most (the rest are counted as lost).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Largest file written, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    pub max_bytes: u64,
}

/// Runs `tracer capture`.
pub fn run(duration: Duration, cmd: CaptureOptions) -> Result<u8> {
    crate::modes::stop::install()?;
    let kernel = CaptureKernel::read()?;
    let netns = match (&cmd.pod, &cmd.netns) {
        (Some(spec), _) => Some(crate::node::pods::live_scope(spec)?.inode),
        (None, Some(path)) => Some(crate::modes::live::netns_scope(path)?.inode),
        _ => None,
    };
    let filter = CaptureFilter {
        reasons: match &cmd.reason {
            Some(list) => filter::reasons_by_name(list, &kernel.names)?,
            None => Vec::new(),
        },
        netns,
        protocol: cmd
            .proto
            .as_deref()
            .map(filter::parse_protocol)
            .transpose()?,
        host: cmd.host.as_deref().map(filter::parse_host).transpose()?,
        port: cmd.port,
    };
    let layer = cmd.layer.as_deref().map(filter::parse_layer).transpose()?;
    let (index, _) = crate::node::pods::PodIndex::scan(&crate::node::pods::PodRoots::live());
    let args = CaptureArgs {
        duration,
        output: cmd.output,
        filter,
        layer,
        max_packets: cmd.max_packets,
        snaplen: cmd.snaplen,
        rate: cmd.rate,
        max_bytes: cmd.max_bytes,
        pods: index.labels(),
        retransmits: cmd.retransmits,
    };
    let outcome = capture(&kernel, &args, &crate::modes::stop::requested)?;
    eprint!("{}", outcome.summary.render(&outcome.file));
    Ok(0)
}
