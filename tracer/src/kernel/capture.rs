//! Loads and runs the capture program (`tracer capture`): the kernel object is loaded a second
//! time with this kernel's record offsets, only `capture_kfree_skb` is attached, and its ring
//! buffer is drained into [`CaptureEvent`]s. Dropping a [`CaptureSession`] detaches it, so the
//! always-on programs never pay for a capture. With `loader`, the only module touching aya.

use anyhow::{anyhow, Context as _, Result};
use aya::{
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::TracePoint,
    Ebpf, EbpfLoader,
};
use tracer_common::{
    capture::{
        capture_counter, CaptureConfig, CaptureEvent, MAP_CAPTURE_CONFIG, MAP_CAPTURE_COUNTERS,
        MAP_CAPTURE_RING, PROG_CAPTURE_KFREE_SKB,
    },
    TracerConfig, ABSENT, GLOBAL_CONFIG,
};

use crate::kernel::{
    btf::KernelBtf,
    loader::{privilege_hint, raise_memlock, EBPF_OBJECT},
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
            _pad: 0,
            rate_per_cpu: 10_000,
            burst: 10_000,
        }
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
}

/// The attached capture program and its ring buffer.
pub struct CaptureSession {
    _ebpf: Ebpf,
    ring: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
}

impl CaptureSession {
    /// Loads the object with `tracer` (the record and namespace offsets the start-up planned),
    /// writes `capture` into the config map, and attaches the capture program.
    pub fn start(tracer: &TracerConfig, capture: &CaptureConfig) -> Result<CaptureSession> {
        raise_memlock();
        let mut ebpf = EbpfLoader::new()
            .override_global(GLOBAL_CONFIG, tracer, true)
            .load(EBPF_OBJECT)
            .map_err(|e| anyhow!(privilege_hint(&anyhow::Error::from(e))))
            .context("loading the tracer's eBPF object for the capture")?;
        {
            let map = ebpf
                .map_mut(MAP_CAPTURE_CONFIG)
                .ok_or_else(|| anyhow!("map {MAP_CAPTURE_CONFIG} not in the eBPF object"))?;
            let mut config: Array<&mut MapData, CaptureConfig> = Array::try_from(map)?;
            config
                .set(0, capture, 0)
                .context("writing the capture filter")?;
        }
        let program: &mut TracePoint = ebpf
            .program_mut(PROG_CAPTURE_KFREE_SKB)
            .ok_or_else(|| anyhow!("program {PROG_CAPTURE_KFREE_SKB} not in the eBPF object"))?
            .try_into()?;
        program
            .load()
            .map_err(|e| anyhow!(privilege_hint(&anyhow::Error::from(e))))
            .context("loading the capture program")?;
        program
            .attach("skb", "kfree_skb")
            .context("attaching the capture program to skb:kfree_skb")?;
        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| anyhow!("map {name} not in the eBPF object"))
        };
        let ring = RingBuf::try_from(take(&mut ebpf, MAP_CAPTURE_RING)?)?;
        let counters = PerCpuArray::try_from(take(&mut ebpf, MAP_CAPTURE_COUNTERS)?)?;
        Ok(CaptureSession {
            _ebpf: ebpf,
            ring,
            counters,
        })
    }

    /// Hands every event waiting in the ring buffer to `f`; returns how many there were.
    pub fn drain(&mut self, mut f: impl FnMut(&CaptureEvent)) -> usize {
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            if item.len() >= std::mem::size_of::<CaptureEvent>() {
                // SAFETY: the program writes whole `CaptureEvent`s (plain integers and bytes);
                // the read is unaligned-safe.
                let event =
                    unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<CaptureEvent>()) };
                f(&event);
                n += 1;
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
        }
    }
}
