//! `tracer capture` from the command line: resolves `--netns`/`--pod`, reason names, layer and
//! filters against the running kernel, runs the capture, and prints the summary on stderr (the
//! file may be stdout). Exit status 0 when the capture ran, even with no packet.

use std::{path::PathBuf, time::Duration};

use anyhow::Result;

use super::{
    filter::{self, CaptureFilter},
    run::{capture, CaptureArgs, CaptureKernel},
};

/// The command line's values, as parsed.
#[derive(Debug, Clone)]
pub struct CaptureCommand {
    pub duration: Duration,
    pub output: PathBuf,
    pub reason: Option<String>,
    pub layer: Option<String>,
    pub netns: Option<PathBuf>,
    pub pod: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub proto: Option<String>,
    pub max_packets: u64,
    pub snaplen: u32,
    pub rate: u64,
    pub max_bytes: u64,
}

/// Runs `tracer capture`.
pub fn run(cmd: CaptureCommand) -> Result<u8> {
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
        duration: cmd.duration,
        output: cmd.output,
        filter,
        layer,
        max_packets: cmd.max_packets,
        snaplen: cmd.snaplen,
        rate: cmd.rate,
        max_bytes: cmd.max_bytes,
        pods: index.labels(),
    };
    let outcome = capture(&kernel, &args, &crate::modes::stop::requested)?;
    eprint!("{}", outcome.summary.render(&outcome.file));
    Ok(0)
}
