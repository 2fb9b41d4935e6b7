//! Runs one capture: reads the kernel's offsets, names and symbols, attaches the capture
//! program (and the retransmit one with `--retransmits`) with the filter, drains the ring or
//! perf buffer into the pcapng file until the duration, `--max-packets` or a stop signal ends
//! it, and returns the summary. The file is bounded by `max_bytes`; `-` writes to stdout.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use tracer_common::capture::{CaptureEvent, EVENT_RETRANSMIT};

use super::{
    filter::{self, CaptureFilter},
    pcapng::PcapngWriter,
    summary::Summary,
};
use crate::{
    judge::layers::{classify, DropClass, Layer},
    kernel::{
        btf::{KernelBtf, VMLINUX_BTF},
        capture::{BufferKind, CaptureCounters, CaptureHooks, CaptureOffsets, CaptureSession},
        kallsyms::Kallsyms,
        startup::KernelSources,
        tracefs::Tracefs,
    },
};

/// What to capture and where to write it.
#[derive(Debug, Clone)]
pub struct CaptureArgs {
    pub duration: Duration,
    /// The file, or `-` for stdout.
    pub output: PathBuf,
    pub filter: CaptureFilter,
    /// Keep only drops the tracer files under this layer (checked again in user space, since
    /// some reasons are filed by their location).
    pub layer: Option<Layer>,
    pub max_packets: u64,
    pub snaplen: u32,
    /// Packets per second the kernel lets through (token bucket).
    pub rate: u64,
    /// Largest file written, in bytes.
    pub max_bytes: u64,
    /// Namespace inode → pod (`NAMESPACE/NAME`), for the comments.
    pub pods: BTreeMap<u32, String>,
    /// Also capture retransmitted TCP segments (`tcp:tcp_retransmit_skb`).
    pub retransmits: bool,
}

/// What a capture did.
#[derive(Debug, Clone)]
pub struct CaptureOutcome {
    pub summary: Summary,
    pub file: String,
    pub bytes: u64,
}

/// The kernel's names for reasons, its symbols and the tracer configuration for loading.
pub struct CaptureKernel {
    pub names: BTreeMap<u32, String>,
    pub symbols: Kallsyms,
    pub tracer_config: tracer_common::TracerConfig,
    pub offsets: CaptureOffsets,
    /// The hooks of the always-on probes on the capture's tracepoints, for its programs.
    pub hooks: CaptureHooks,
}

impl CaptureKernel {
    /// Reads the running kernel (tracefs formats, BTF, kallsyms).
    pub fn read() -> Result<CaptureKernel> {
        crate::modes::live::require_root()?;
        let tracefs = Tracefs::locate_or_mount()?;
        let startup = crate::kernel::startup::prepare(&KernelSources::host(&tracefs.root));
        let btf = KernelBtf::from_file(VMLINUX_BTF).context(
            "capture needs the kernel's BTF (/sys/kernel/btf/vmlinux) for sk_buff offsets",
        )?;
        let offsets = CaptureOffsets::from_btf(&btf)
            .context("this kernel's BTF lacks an sk_buff member the capture reads")?;
        Ok(CaptureKernel {
            names: startup.names.drop_reasons,
            symbols: startup.symbols,
            tracer_config: startup.plan.config,
            offsets,
            hooks: CaptureHooks {
                drop: startup.plan.hook_of(tracer_common::PROG_KFREE_SKB),
                retransmit: startup.plan.hook_of(tracer_common::PROG_TCP_RETRANSMIT_SKB),
            },
        })
    }

    /// The reason's name (`UNKNOWN(n)` when the kernel does not name it).
    pub fn reason_name(&self, reason: u32) -> String {
        if reason == tracer_common::ABSENT {
            return "NO_REASON_FIELD".to_owned();
        }
        match self.names.get(&reason) {
            Some(name) => name.clone(),
            // Subsystem reasons (high 16 bits) are named in module BTF, not in vmlinux.
            None if reason >= 1 << 16 => format!("SUBSYS_{}({})", reason >> 16, reason & 0xffff),
            None => format!("UNKNOWN({reason})"),
        }
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain syscall with a valid pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

fn ifname(event: &CaptureEvent) -> String {
    let end = event.ifname.iter().position(|b| *b == 0).unwrap_or(16);
    String::from_utf8_lossy(&event.ifname[..end]).into_owned()
}

/// Writes captured events as pcapng packets with their comments, counting them in a
/// [`Summary`]; events outside `layer` (when set) are skipped, past `max_packets` counted.
pub struct PacketSink<'a> {
    kernel: &'a CaptureKernel,
    writer: PcapngWriter<Box<dyn Write + 'a>>,
    labels: BTreeMap<u32, String>,
    pods: &'a BTreeMap<u32, String>,
    layer: Option<Layer>,
    max_packets: u64,
    unix_minus_mono: u64,
    start_mono: u64,
    pub summary: Summary,
    pub file: String,
}

impl<'a> PacketSink<'a> {
    /// Opens `output` (`-`: stdout) and writes the section header.
    pub fn open(
        kernel: &'a CaptureKernel,
        output: &Path,
        snaplen: u32,
        max_bytes: u64,
        pods: &'a BTreeMap<u32, String>,
        layer: Option<Layer>,
        max_packets: u64,
    ) -> Result<PacketSink<'a>> {
        let to_stdout = output == Path::new("-");
        let file = if to_stdout {
            "stdout".to_owned()
        } else {
            output.display().to_string()
        };
        let out: Box<dyn Write + 'a> = if to_stdout {
            Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
        } else {
            Box::new(std::io::BufWriter::new(
                std::fs::File::create(output)
                    .with_context(|| format!("creating {file}: choose a writable path"))?,
            ))
        };
        let writer = PcapngWriter::new(out, snaplen, max_bytes)
            .with_context(|| format!("writing {file}"))?;
        let labels = crate::node::netns::enumerate(Path::new("/proc"), Path::new("/run/netns"))
            .into_iter()
            .map(|n| (n.inode, n.label))
            .collect();
        let start_mono = clock_ns(libc::CLOCK_MONOTONIC);
        Ok(PacketSink {
            kernel,
            writer,
            labels,
            pods,
            layer,
            max_packets,
            unix_minus_mono: clock_ns(libc::CLOCK_REALTIME).wrapping_sub(start_mono),
            start_mono,
            summary: Summary::default(),
            file,
        })
    }

    /// Writes one event (or counts why not).
    pub fn add(&mut self, event: &CaptureEvent) -> std::io::Result<()> {
        if event.kind == EVENT_RETRANSMIT {
            return self.add_retransmit(event);
        }
        let reason = self.kernel.reason_name(event.reason);
        let location = self
            .kernel
            .symbols
            .resolve(event.location)
            .map_or_else(|| format!("{:#x}", event.location), |s| s.display());
        let class = classify(&reason, &location);
        if let Some(layer) = self.layer {
            if !matches!(class, DropClass::Loss { layer: l, .. } if l == layer) {
                return Ok(());
            }
        }
        if self.summary.packets >= self.max_packets {
            self.summary.over_max_packets += 1;
            return Ok(());
        }
        let layer = match &class {
            DropClass::Loss { layer, .. } => layer.as_str(),
            DropClass::Noise { .. } => "noise",
            DropClass::NoListener => "no_listener",
            DropClass::Other { .. } => "other",
            DropClass::Unplaced => "unplaced",
        };
        let mut comment = format!(
            "reason={reason} location={location} layer={layer} netns={}",
            event.netns
        );
        if let Some(pod) = self.pods.get(&event.netns) {
            comment.push_str(&format!(" pod={pod}"));
        }
        let dev = ifname(event);
        let dev = if dev.is_empty() { "no device" } else { &dev };
        if self.write(event, dev, &comment)? {
            let len = (event.cap_len as usize).min(event.data.len());
            self.summary.add(
                &reason,
                &location,
                &event.data[..len],
                event.ts_ns.saturating_sub(self.start_mono) / 1_000_000_000,
            );
        }
        Ok(())
    }

    /// Writes a retransmitted segment, its comment naming the socket's TCP state; `--layer`
    /// does not apply (retransmits were asked for by `--retransmits`).
    fn add_retransmit(&mut self, event: &CaptureEvent) -> std::io::Result<()> {
        if self.summary.packets >= self.max_packets {
            self.summary.over_max_packets += 1;
            return Ok(());
        }
        let state = crate::judge::report::tcp_state_name(event.reason);
        let mut comment = format!("retransmit state={state} netns={}", event.netns);
        if let Some(pod) = self.pods.get(&event.netns) {
            comment.push_str(&format!(" pod={pod}"));
        }
        // The segment in the retransmit queue has no device yet; one interface per namespace.
        if self.write(event, "tcp retransmits", &comment)? {
            let len = (event.cap_len as usize).min(event.data.len());
            self.summary.add_retransmit(
                &state,
                &event.data[..len],
                event.ts_ns.saturating_sub(self.start_mono) / 1_000_000_000,
            );
        }
        Ok(())
    }

    /// Writes the packet on the interface (`dev`, namespace); false, counted, when the file
    /// is full.
    fn write(&mut self, event: &CaptureEvent, dev: &str, comment: &str) -> std::io::Result<bool> {
        let if_label = match self.labels.get(&event.netns) {
            Some(label) => format!("{dev} ({label})"),
            None => format!("{dev} (netns {})", event.netns),
        };
        let len = (event.cap_len as usize).min(event.data.len());
        let written = self.writer.packet(
            event.netns,
            event.ifindex,
            &if_label,
            event.ts_ns.wrapping_add(self.unix_minus_mono),
            &event.data[..len],
            event.pkt_len,
            comment,
        )?;
        if !written {
            self.summary.over_file_size += 1;
        }
        Ok(written)
    }

    /// Flushes the file and returns what was written; `buffer` carried the events.
    pub fn finish(
        self,
        kernel_counters: CaptureCounters,
        buffer: BufferKind,
    ) -> Result<CaptureOutcome> {
        let bytes = self.writer.written();
        let file = self.file;
        self.writer
            .finish()
            .with_context(|| format!("writing {file}"))?;
        let mut summary = self.summary;
        summary.kernel = kernel_counters;
        summary.buffer = buffer.as_str().to_owned();
        Ok(CaptureOutcome {
            summary,
            file,
            bytes,
        })
    }
}

/// The kernel configuration of a capture: offsets, filter (with the reasons of `layer` when
/// no reason is named), snaplen and the rate limit.
pub fn kernel_config(
    kernel: &CaptureKernel,
    filter: &CaptureFilter,
    layer: Option<Layer>,
    snaplen: u32,
    rate: u64,
) -> tracer_common::capture::CaptureConfig {
    let mut config = kernel.offsets.config(filter::bounded_snaplen(snaplen));
    let mut wanted = filter.clone();
    if let Some(layer) = layer {
        if wanted.reasons.is_empty() {
            wanted.reasons = filter::reasons_of_layer(layer, &kernel.names);
            // Reasons the tracer files by location (NOT_SPECIFIED) are checked in user space.
            wanted.reasons.extend(
                kernel
                    .names
                    .iter()
                    .filter(|(_, n)| n.as_str() == "NOT_SPECIFIED")
                    .map(|(v, _)| *v),
            );
        }
    }
    wanted.apply(&mut config);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    (config.rate_per_cpu, config.burst) = filter::bucket(rate, cpus);
    config
}

/// Runs a capture until `args.duration` passes, `max_packets` are written, or `stop()` says so.
pub fn capture(
    kernel: &CaptureKernel,
    args: &CaptureArgs,
    stop: &dyn Fn() -> bool,
) -> Result<CaptureOutcome> {
    let config = kernel_config(kernel, &args.filter, args.layer, args.snaplen, args.rate);
    let mut sink = PacketSink::open(
        kernel,
        &args.output,
        config.snaplen,
        args.max_bytes,
        &args.pods,
        args.layer,
        args.max_packets,
    )?;
    let buffer = BufferKind::for_this_kernel()?;
    let mut session = CaptureSession::start(
        &kernel.tracer_config,
        &config,
        args.retransmits,
        buffer,
        &kernel.hooks,
    )?;
    eprintln!(
        "tracer: capturing drops{} for {} into {} (at most {} packets, {})",
        if args.retransmits {
            " and retransmits"
        } else {
            ""
        },
        humantime::format_duration(args.duration),
        sink.file,
        args.max_packets,
        buffer.as_str()
    );
    let started = Instant::now();
    let mut failure: Option<std::io::Error> = None;
    loop {
        session.drain(|e| {
            if let Err(err) = sink.add(e) {
                failure.get_or_insert(err);
            }
        });
        if failure.is_some()
            || started.elapsed() >= args.duration
            || sink.summary.packets >= args.max_packets
            || stop()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // What is still in the ring buffer was dropped during the window: take it, then detach.
    session.drain(|e| {
        if let Err(err) = sink.add(e) {
            failure.get_or_insert(err);
        }
    });
    let counters = session.counters();
    let hooks = session.hooks_text();
    drop(session);
    if let Some(e) = failure {
        return Err(e).with_context(|| format!("writing {}", sink.file));
    }
    let mut outcome = sink.finish(counters, buffer)?;
    outcome.summary.retransmits_armed = args.retransmits;
    outcome.summary.hooks = hooks;
    Ok(outcome)
}
