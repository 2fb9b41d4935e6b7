//! Loads and runs the capture program (`tracer capture`): the kernel object is loaded a second
//! time with this kernel's record offsets, only `capture_kfree_skb` (and, with
//! `--retransmits`, `capture_tcp_retransmit_skb`) is attached, and its buffer is drained into
//! [`CaptureEvent`]s: the BPF ring buffer, or on kernels without one (< 5.8, or when
//! `TRACER_CAPTURE_BUFFER=perf` forces it) one perf buffer per CPU, whose lost-sample records
//! are counted. Each program goes on the hook the always-on probe of its tracepoint was planned
//! on ([`CaptureHooks`]), with the same fallbacks. Dropping a [`CaptureSession`] detaches it,
//! so the always-on programs never pay for a capture. With `loader`, the only module touching
//! aya.

use anyhow::{anyhow, Context as _, Result};
use aya::{
    maps::{
        perf::{PerfEvent, PerfEventArray, PerfEventArrayBuffer},
        Array, MapData, MapType, PerCpuArray, RingBuf,
    },
    Btf, Ebpf, EbpfLoader,
};
use tracer_common::{
    capture::{
        capture_counter, CaptureConfig, CaptureEvent, MAP_CAPTURE_CONFIG, MAP_CAPTURE_COUNTERS,
        MAP_CAPTURE_PERF, MAP_CAPTURE_RING, PROG_CAPTURE_KFREE_SKB, PROG_CAPTURE_RETRANSMIT,
    },
    TracerConfig, ABSENT, GLOBAL_CONFIG,
};

use crate::kernel::{
    btf::KernelBtf,
    loader::{attach_cheapest, privilege_hint, raise_memlock, EBPF_OBJECT},
    probes::{HookChoice, HookKind, ProbeSpec},
};

/// The hooks planned for the capture programs: those of the always-on probes on the same
/// tracepoints (`kfree_skb`, `tcp_retransmit_skb`), whose argument positions they share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureHooks {
    pub drop: HookChoice,
    pub retransmit: HookChoice,
}

/// The capture program on `skb:kfree_skb`.
const DROP_SPEC: ProbeSpec = ProbeSpec {
    category: "skb",
    name: "kfree_skb",
    program: PROG_CAPTURE_KFREE_SKB,
};

/// The capture program on `tcp:tcp_retransmit_skb`.
const RETRANSMIT_SPEC: ProbeSpec = ProbeSpec {
    category: "tcp",
    name: "tcp_retransmit_skb",
    program: PROG_CAPTURE_RETRANSMIT,
};

/// The `sk_buff` and `net_device` member offsets the capture program reads, from BTF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureOffsets {
    pub skb_head: u32,
    pub skb_data: u32,
    pub skb_len: u32,
    pub skb_data_len: u32,
    pub skb_network_header: u32,
    pub dev_ifindex: u32,
    pub dev_name: u32,
    /// `sk_buff.cb` + `tcp_skb_cb.seq` (ABSENT when BTF lacks it: then a retransmitted
    /// segment's headers are matched by ports alone).
    pub skb_tcp_seq: u32,
}

impl CaptureOffsets {
    /// Reads the offsets from the running kernel's BTF; an error names the missing member.
    pub fn from_btf(btf: &KernelBtf) -> Result<CaptureOffsets> {
        Ok(CaptureOffsets {
            skb_head: btf.member_offset("sk_buff", &["head"])?,
            skb_data: btf.member_offset("sk_buff", &["data"])?,
            skb_len: btf.member_offset("sk_buff", &["len"])?,
            skb_data_len: btf.member_offset("sk_buff", &["data_len"])?,
            skb_network_header: btf.member_offset("sk_buff", &["network_header"])?,
            dev_ifindex: btf.member_offset("net_device", &["ifindex"])?,
            dev_name: btf.member_offset("net_device", &["name"])?,
            skb_tcp_seq: btf
                .member_offset("sk_buff", &["cb"])
                .and_then(|cb| Ok(cb.saturating_add(btf.member_offset("tcp_skb_cb", &["seq"])?)))
                .unwrap_or(ABSENT),
        })
    }

    /// A capture configuration with these offsets and no filter (everything, `snaplen` bytes).
    pub fn config(&self, snaplen: u32) -> CaptureConfig {
        CaptureConfig {
            skb_head: self.skb_head,
            skb_data: self.skb_data,
            skb_len: self.skb_len,
            skb_data_len: self.skb_data_len,
            skb_network_header: self.skb_network_header,
            dev_ifindex: self.dev_ifindex,
            dev_name: self.dev_name,
            netns: ABSENT,
            ip_version: ABSENT,
            protocol: ABSENT,
            port: ABSENT,
            addr_prefix: ABSENT,
            addr_version: 0,
            snaplen,
            addr: [0; 16],
            reasons: [0; 4],
            any_reason: 1,
            perf: 0,
            skb_tcp_seq: self.skb_tcp_seq,
            extra_reasons: [0; tracer_common::capture::CAPTURE_EXTRA_REASONS],
            _pad: 0,
            rate_per_cpu: 10_000,
            burst: 10_000,
        }
    }
}

/// The buffer that carries captured packets from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferKind {
    /// The BPF ring buffer (kernel ≥ 5.8).
    Ring,
    /// One perf buffer per CPU (any kernel the tracer runs on).
    Perf,
}

/// The environment variable that forces a buffer kind (`ring` or `perf`), for tests.
pub const BUFFER_ENV: &str = "TRACER_CAPTURE_BUFFER";

impl BufferKind {
    /// How the summary names it.
    pub fn as_str(self) -> &'static str {
        match self {
            BufferKind::Ring => "ring buffer",
            BufferKind::Perf => "perf buffer",
        }
    }

    /// The kind `forced` (the value of [`BUFFER_ENV`]) names, else the ring buffer when
    /// `ring_supported()` says the kernel can create one, else perf.
    pub fn choose(forced: Option<&str>, ring_supported: impl FnOnce() -> bool) -> Result<Self> {
        match forced.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") => Ok(if ring_supported() {
                BufferKind::Ring
            } else {
                BufferKind::Perf
            }),
            Some("ring") => Ok(BufferKind::Ring),
            Some("perf") => Ok(BufferKind::Perf),
            Some(other) => Err(anyhow!(
                "{BUFFER_ENV}={other:?} is not a buffer kind: set it to ring or perf, or unset it"
            )),
        }
    }

    /// [`BufferKind::choose`] for this process's environment and the running kernel (a ring
    /// buffer map that cannot be created means perf).
    pub fn for_this_kernel() -> Result<Self> {
        let forced = std::env::var(BUFFER_ENV).ok();
        BufferKind::choose(forced.as_deref(), || {
            aya::sys::is_map_supported(MapType::RingBuf).unwrap_or(false)
        })
    }
}

/// Counts of the capture program, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CaptureCounters {
    pub seen: u64,
    pub matched: u64,
    pub rate_limited: u64,
    pub ring_full: u64,
    pub unreadable: u64,
    pub submitted: u64,
    /// Successful retransmissions the retransmit program saw (0 without `--retransmits`).
    pub retransmits_seen: u64,
    /// Samples the perf buffers lost (perf's lost records); 0 with the ring buffer.
    pub perf_lost: u64,
}

/// Pages of each CPU's perf buffer (a power of two): 1 MiB, room for ~3000 packets per CPU
/// between two drains.
const PERF_PAGES: usize = 256;

/// Where the session reads events from.
enum Reader {
    Ring(RingBuf<MapData>),
    Perf {
        /// Holds every CPU's buffer while it lives: dropping it clears them from the map.
        _array: PerfEventArray<MapData>,
        buffers: Vec<PerfEventArrayBuffer>,
        lost: u64,
    },
}

/// The attached capture programs and their buffer.
pub struct CaptureSession {
    _ebpf: Ebpf,
    reader: Reader,
    counters: PerCpuArray<MapData, u64>,
    pub buffer: BufferKind,
    /// Each attached program and the hook it ended on.
    pub hooks: Vec<(&'static str, HookChoice)>,
}

impl CaptureSession {
    /// Loads the object with `tracer` (the record and namespace offsets the start-up planned),
    /// writes `capture` into the config map, and attaches the capture program, and with
    /// `retransmits` the retransmit capture program, each on its planned hook (`hooks`);
    /// events come through `buffer`.
    pub fn start(
        tracer: &TracerConfig,
        capture: &CaptureConfig,
        retransmits: bool,
        buffer: BufferKind,
        hooks: &CaptureHooks,
    ) -> Result<CaptureSession> {
        raise_memlock();
        let mut capture = *capture;
        capture.perf = u32::from(buffer == BufferKind::Perf);
        let mut loader = EbpfLoader::new();
        loader.override_global(GLOBAL_CONFIG, tracer, true);
        if buffer == BufferKind::Perf {
            // The ring buffer stays unused: one page instead of 4 MiB.
            loader.map_max_entries(MAP_CAPTURE_RING, 4096);
        }
        let mut ebpf = loader
            .load(EBPF_OBJECT)
            .map_err(|e| anyhow!(privilege_hint(&anyhow::Error::from(e))))
            .context("loading the tracer's eBPF object for the capture")?;
        {
            let map = ebpf
                .map_mut(MAP_CAPTURE_CONFIG)
                .ok_or_else(|| anyhow!("map {MAP_CAPTURE_CONFIG} not in the eBPF object"))?;
            let mut config: Array<&mut MapData, CaptureConfig> = Array::try_from(map)?;
            config
                .set(0, &capture, 0)
                .context("writing the capture filter")?;
        }
        // aya's own parse of the kernel BTF, for a BTF tracepoint.
        let wants_btf = hooks.drop.kind == HookKind::TpBtf
            || (retransmits && hooks.retransmit.kind == HookKind::TpBtf);
        let btf = wants_btf.then(|| Btf::from_sys_fs().map_err(|e| e.to_string()));
        let mut attached = Vec::new();
        let (outcome, hook) = attach_cheapest(&mut ebpf, &DROP_SPEC, hooks.drop.clone(), &btf);
        outcome.context("attaching the capture program to skb:kfree_skb")?;
        attached.push((PROG_CAPTURE_KFREE_SKB, hook));
        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| anyhow!("map {name} not in the eBPF object"))
        };
        // The reader exists before the retransmit program runs, so no event waits unread.
        let reader = match buffer {
            BufferKind::Ring => {
                Reader::Ring(RingBuf::try_from(take(&mut ebpf, MAP_CAPTURE_RING)?)?)
            }
            BufferKind::Perf => {
                let mut array = PerfEventArray::try_from(take(&mut ebpf, MAP_CAPTURE_PERF)?)?;
                let cpus = aya::util::online_cpus()
                    .map_err(|(what, e)| anyhow!("{what}: {e}"))
                    .context("listing the online CPUs for the perf buffers")?;
                let mut buffers = Vec::with_capacity(cpus.len());
                for cpu in cpus {
                    let buffer = PerfEventArrayBuffer::open(cpu, PERF_PAGES)
                        .with_context(|| format!("opening the perf buffer of CPU {cpu}"))?;
                    array
                        .set(cpu, &buffer)
                        .with_context(|| format!("setting the perf buffer of CPU {cpu}"))?;
                    buffers.push(buffer);
                }
                Reader::Perf {
                    _array: array,
                    buffers,
                    lost: 0,
                }
            }
        };
        if retransmits {
            if tracer.rtx_skbaddr == ABSENT || tracer.rtx_skaddr == ABSENT {
                return Err(anyhow!(
                    "this kernel's tcp:tcp_retransmit_skb tracepoint lacks skbaddr or skaddr: \
                     run the capture without --retransmits"
                ));
            }
            let (outcome, hook) =
                attach_cheapest(&mut ebpf, &RETRANSMIT_SPEC, hooks.retransmit.clone(), &btf);
            outcome
                .context("attaching the retransmit capture program to tcp:tcp_retransmit_skb")?;
            attached.push((PROG_CAPTURE_RETRANSMIT, hook));
        }
        let counters = PerCpuArray::try_from(take(&mut ebpf, MAP_CAPTURE_COUNTERS)?)?;
        Ok(CaptureSession {
            _ebpf: ebpf,
            reader,
            counters,
            buffer,
            hooks: attached,
        })
    }

    /// Each attached program's hook and why, as the summary prints it
    /// (`capture_kfree_skb on tp_btf (tp_btf: cheapest hook)`).
    pub fn hooks_text(&self) -> Vec<String> {
        self.hooks
            .iter()
            .map(|(program, h)| format!("{program} on {} ({})", h.kind.as_str(), h.reason))
            .collect()
    }

    /// Hands every event waiting in the buffer to `f`; returns how many there were.
    pub fn drain(&mut self, mut f: impl FnMut(&CaptureEvent)) -> usize {
        const SIZE: usize = std::mem::size_of::<CaptureEvent>();
        let mut n = 0;
        match &mut self.reader {
            Reader::Ring(ring) => {
                while let Some(item) = ring.next() {
                    if item.len() >= SIZE {
                        // SAFETY: the program writes whole `CaptureEvent`s (plain integers and
                        // bytes); the read is unaligned-safe.
                        let event = unsafe {
                            std::ptr::read_unaligned(item.as_ptr().cast::<CaptureEvent>())
                        };
                        f(&event);
                        n += 1;
                    }
                }
            }
            Reader::Perf { buffers, lost, .. } => {
                for buffer in buffers.iter_mut() {
                    buffer.for_each(|event| match event {
                        PerfEvent::Sample { head, tail } => {
                            // A sample may wrap around the buffer's end: join its two parts.
                            let mut bytes = [0u8; SIZE];
                            let first = head.len().min(SIZE);
                            bytes[..first].copy_from_slice(&head[..first]);
                            let second = tail.len().min(SIZE - first);
                            bytes[first..first + second].copy_from_slice(&tail[..second]);
                            if first + second == SIZE {
                                // SAFETY: as above; `bytes` holds a whole event.
                                let event = unsafe {
                                    std::ptr::read_unaligned(bytes.as_ptr().cast::<CaptureEvent>())
                                };
                                f(&event);
                                n += 1;
                            }
                        }
                        PerfEvent::Lost { count } => *lost = lost.saturating_add(count),
                    });
                }
            }
        }
        n
    }

    /// The program's counters now.
    pub fn counters(&self) -> CaptureCounters {
        let get = |i: u32| {
            self.counters
                .get(&i, 0)
                .map(|v| v.iter().copied().fold(0u64, u64::saturating_add))
                .unwrap_or(0)
        };
        CaptureCounters {
            seen: get(capture_counter::SEEN),
            matched: get(capture_counter::MATCHED),
            rate_limited: get(capture_counter::RATE_LIMITED),
            ring_full: get(capture_counter::RING_FULL),
            unreadable: get(capture_counter::UNREADABLE),
            submitted: get(capture_counter::SUBMITTED),
            retransmits_seen: get(capture_counter::RETRANSMITS_SEEN),
            perf_lost: match &self.reader {
                Reader::Perf { lost, .. } => *lost,
                Reader::Ring(_) => 0,
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_is_forced_by_the_environment_or_probed() {
        let panics = || -> bool { panic!("a forced kind probes nothing") };
        assert_eq!(
            BufferKind::choose(Some("perf"), panics).unwrap(),
            BufferKind::Perf
        );
        assert_eq!(
            BufferKind::choose(Some(" Ring "), panics).unwrap(),
            BufferKind::Ring
        );
        assert_eq!(BufferKind::choose(None, || true).unwrap(), BufferKind::Ring);
        // A ring buffer map the kernel cannot create (< 5.8): perf.
        assert_eq!(
            BufferKind::choose(None, || false).unwrap(),
            BufferKind::Perf
        );
        assert_eq!(
            BufferKind::choose(Some(""), || false).unwrap(),
            BufferKind::Perf
        );
        let err = BufferKind::choose(Some("mmap"), || true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("TRACER_CAPTURE_BUFFER=\"mmap\""), "{err}");
        assert_eq!(BufferKind::Perf.as_str(), "perf buffer");
    }
}
