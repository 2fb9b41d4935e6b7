//! The only module that touches aya: loads the embedded kernel object with this kernel's
//! offsets, attaches the planned tracepoints, and copies the maps into a [`Snapshot`].
//! Dropping a [`Session`] detaches every program.

use std::time::Instant;

use anyhow::{anyhow, bail, Context as _, Result};
use aya::{
    maps::{HashMap as AyaHashMap, IterableMap as _, MapData, PerCpuArray, PerCpuHashMap},
    programs::{BtfTracePoint, RawTracePoint, TracePoint},
    Btf, Ebpf, EbpfLoader,
};
use tracer_common::{
    counter, DestKey, DestStats, DropKey, DropSlot, DropSlots, ErrorKey, FlowKey, FlowStats,
    ResetKey, RetransSlot, RetransSlots, RttPending, RttPendingSlots, SoftirqSlot, BTF_TP_SUFFIX,
    GLOBAL_CONFIG, MAP_DESTS, MAP_DROPS, MAP_DROP_SLOTS, MAP_PROBE_COUNTERS, MAP_RESETS,
    MAP_RETRANS_FLOWS, MAP_RETRANS_SLOTS, MAP_RTT_PENDING, MAP_SOCK_ERRORS, MAP_SOFTIRQ_STATS,
    RAW_TP_SUFFIX, SOFTIRQ_VECTORS,
};

use std::os::fd::AsFd as _;

use crate::{
    kernel::btf::typedefs_at_ids,
    kernel::drop_slots::DropMerge,
    kernel::map_batch::{BatchReader, Walk},
    kernel::probes::{HookChoice, HookKind, Plan, ProbeSpec, ProbeState, ProbeStatus},
    kernel::prog_stats::{self, ProgramCounters},
    kernel::retrans_slots::FlowMerge,
    kernel::rtt_pending::RttMerge,
    kernel::snapshot::{sum_per_cpu, Snapshot},
};

/// The kernel programs, built by `build.rs`.
pub(crate) static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

/// Loaded programs and their maps. Programs stay attached while this lives.
pub struct Session {
    _ebpf: Ebpf,
    /// Keeps the kernel timing our programs (`BPF_ENABLE_STATS`) for the session's lifetime;
    /// `None` where the kernel refused it (before 5.8).
    run_time_stats: Option<std::os::fd::OwnedFd>,
    /// The programs do not count their runs ([`TracerConfig::count_runs`] 0): the kernel does,
    /// and each snapshot's run counters are the programs' `run_cnt`
    /// ([`Snapshot::derive_run_counters`]).
    ///
    /// [`TracerConfig::count_runs`]: tracer_common::TracerConfig::count_runs
    runs_from_kernel: bool,
    drops: PerCpuHashMap<MapData, DropKey, u64>,
    /// Drops the kernel holds back per CPU, and what the last snapshot gave with them; the lock
    /// also keeps two snapshots from reading the drops at once (see `drop_slots`).
    drop_slots: PerCpuArray<MapData, DropSlots>,
    drop_merge: std::sync::Mutex<DropRead>,
    flows: AyaHashMap<MapData, FlowKey, FlowStats>,
    /// Retransmissions the kernel holds back per CPU, and what the last snapshot gave with
    /// them (see `retrans_slots`).
    retrans_slots: PerCpuArray<MapData, RetransSlots>,
    flow_merge: std::sync::Mutex<FlowMerge>,
    /// Softirq statistics and, beside them, the programs' sampling state (not read).
    softirq: PerCpuArray<MapData, SoftirqSlot>,
    counters: PerCpuArray<MapData, u64>,
    dests: AyaHashMap<MapData, DestKey, DestStats>,
    /// RTT samples the kernel holds back per CPU, and what the last snapshot gave with them.
    rtt_pending: PerCpuArray<MapData, RttPendingSlots>,
    rtt_merge: std::sync::Mutex<RttMerge>,
    resets: AyaHashMap<MapData, ResetKey, u64>,
    sock_errors: AyaHashMap<MapData, ErrorKey, u64>,
    /// Outcome of every probe, attached or not.
    pub probes: Vec<ProbeStatus>,
}

/// The possible CPUs (what a per-CPU map holds a value for), or `None` (logged) when the
/// kernel does not say.
fn possible_cpus() -> Option<usize> {
    match aya::util::nr_cpus() {
        Ok(cpus) => usize::try_from(cpus.get()).ok(),
        Err((what, e)) => {
            tracing::debug!("{what}: {e}; the drop map is read key by key");
            None
        }
    }
}

/// The drop map's counts, summed over CPUs, added into `drops` through `reader` (batch
/// lookups); [`Walk::Unsupported`] (nothing added) where the kernel has none.
fn read_drops_batched(
    reader: &mut BatchReader,
    map: &PerCpuHashMap<MapData, DropKey, u64>,
    drops: &mut std::collections::HashMap<DropKey, u64>,
) -> Result<Walk> {
    let walk = reader.walk(map.map().fd().as_fd(), |key, values| {
        // SAFETY: `key` is one key as the kernel copied it, `size_of::<DropKey>()` bytes (aya
        // checked the map's key size when it opened it); `DropKey` is plain `repr(C)`
        // integers, valid for any bytes.
        let key = unsafe { std::ptr::read_unaligned(key.as_ptr().cast::<DropKey>()) };
        let (per_cpu, _) = values.as_chunks::<{ size_of::<u64>() }>();
        let total = sum_per_cpu(per_cpu.iter().map(|v| u64::from_ne_bytes(*v)));
        *drops.entry(key).or_insert(0) += total;
    });
    walk.context("reading the drop map in batches")
}

/// How the drop map is read, and the merge of the per-CPU slots after it (one lock for both).
struct DropRead {
    merge: DropMerge,
    /// Batch lookups of `DROPS` (one key per reason, location and namespace: with hundreds of
    /// namespaces, two system calls per key every second were most of a snapshot); `None`
    /// where the kernel has no batch lookup (before 5.6) or the CPU count is unknown: then
    /// aya's key-by-key iteration.
    batch: Option<BatchReader>,
}

/// Says in one sentence why the tracer cannot load programs, when that is the reason.
pub(crate) fn privilege_hint(e: &anyhow::Error) -> String {
    // `{:#}`: the whole chain, so the kernel's own error (EPERM, EINVAL…) is in the sentence.
    let text = format!("{e:#}");
    if text.contains("Operation not permitted") || text.contains("EPERM") {
        format!(
            "{text}: loading eBPF programs needs root (or CAP_BPF + CAP_PERFMON), and a kernel \
             not locked down against BPF"
        )
    } else {
        text
    }
}

pub(crate) fn raise_memlock() {
    // Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; raising it is harmless elsewhere.
    use nix::sys::resource::{setrlimit, Resource, RLIM_INFINITY};
    if let Err(err) = setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY) {
        tracing::debug!("could not raise RLIMIT_MEMLOCK ({err}); continuing");
    }
}

/// aya's loader, made before start-up planning. aya 0.14's `EbpfLoader::new()` parsed the whole
/// vmlinux BTF, so it ran on a thread of its own beside the formats, our BTF reader and kallsyms;
/// 0.16's reads the BTF only for an object with CO-RE relocations (ours has none), so it is made
/// in place: a thread here would only add a malloc arena to the peak memory.
pub struct PreparedLoader(EbpfLoader<'static>);

impl PreparedLoader {
    pub fn start() -> PreparedLoader {
        PreparedLoader(EbpfLoader::new())
    }

    fn join(self) -> EbpfLoader<'static> {
        self.0
    }
}

/// The program that serves `spec` on a hook kind (`kfree_skb`, `kfree_skb_raw`, `kfree_skb_btf`).
fn hook_program(spec: &ProbeSpec, kind: HookKind) -> String {
    match kind {
        HookKind::TpBtf => format!("{}{BTF_TP_SUFFIX}", spec.program),
        HookKind::RawTp => format!("{}{RAW_TP_SUFFIX}", spec.program),
        HookKind::Tracepoint => spec.program.to_owned(),
    }
}

/// Loads and attaches one program on one hook kind.
fn attach_on(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    kind: HookKind,
    btf: &Option<std::result::Result<Btf, String>>,
) -> Result<()> {
    let name = hook_program(spec, kind);
    let program = ebpf
        .program_mut(&name)
        .ok_or_else(|| anyhow!("program {name} not in the eBPF object"))?;
    let refused = |e: aya::programs::ProgramError| anyhow!(privilege_hint(&anyhow::Error::from(e)));
    match kind {
        HookKind::TpBtf => {
            let btf = match btf {
                Some(Ok(btf)) => btf,
                Some(Err(e)) => bail!("the kernel BTF could not be parsed ({e})"),
                None => bail!("the kernel BTF was not parsed"),
            };
            let program: &mut BtfTracePoint = program.try_into()?;
            program.load(spec.name, btf).map_err(refused)?;
            program.attach()?;
        }
        HookKind::RawTp => {
            let program: &mut RawTracePoint = program.try_into()?;
            program.load().map_err(refused)?;
            program.attach(spec.name)?;
        }
        HookKind::Tracepoint => {
            let program: &mut TracePoint = program.try_into()?;
            program.load().map_err(refused)?;
            program.attach(spec.category, spec.name)?;
        }
    }
    Ok(())
}

/// Attaches on the planned hook, falling back to the next dearer kind when the kernel refuses
/// it; the hook it ends on says why it is not the planned one. (Also the capture's.)
pub(crate) fn attach_cheapest(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    planned: HookChoice,
    btf: &Option<std::result::Result<Btf, String>>,
) -> (Result<()>, HookChoice) {
    let mut choice = planned;
    loop {
        let outcome = attach_on(ebpf, spec, choice.kind, btf);
        let next = match (&outcome, choice.kind) {
            (Ok(()), _) | (Err(_), HookKind::Tracepoint) => return (outcome, choice),
            (Err(_), HookKind::TpBtf) => HookKind::RawTp,
            (Err(_), HookKind::RawTp) => HookKind::Tracepoint,
        };
        // The first line: a refused load carries the whole verifier log (in the debug log).
        let error = outcome.err().map(|e| format!("{e:#}")).unwrap_or_default();
        tracing::debug!(
            "{} refused on {}: {error}",
            spec.program,
            choice.kind.as_str()
        );
        let why = error
            .split(". Verifier output")
            .next()
            .unwrap_or_default()
            .to_owned();
        choice = HookChoice {
            kind: next,
            reason: format!(
                "{}: {} refused ({why})",
                next.as_str(),
                choice.kind.as_str()
            ),
        };
    }
}

/// Drops this process's resident pages of the embedded object once aya has parsed it (aya keeps
/// copies of what it loads): 3.4 MB of the binary's read-only data that would otherwise count in
/// the tracer's resident memory for as long as it runs. They are pages of the binary file, so a
/// later load (`tracer capture`'s own session) reads them in again.
fn release_object_pages() {
    // SAFETY: sysconf reads a constant of the system.
    let page = match usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }) {
        Ok(page) if page > 0 => page,
        _ => return,
    };
    let start = EBPF_OBJECT.as_ptr() as usize;
    let first = start.next_multiple_of(page);
    let last = (start + EBPF_OBJECT.len()) / page * page;
    if last > first {
        // SAFETY: whole pages inside the object's bytes, an immutable static in the binary's
        // read-only segment (a private mapping of the file, never written): MADV_DONTNEED only
        // drops their page-table entries, and the next access reads the same bytes from the file.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_DONTNEED,
            )
        };
    }
}

/// What BTF tracepoint programs are loaded against (aya looks the `btf_trace_<event>` typedef
/// up by name in it): a small BTF holding only the planned typedefs at the kernel's type ids
/// ([`typedefs_at_ids`]), or, when start-up did not find an id, the kernel's whole BTF parsed by
/// aya (~126 k types held at once on 6.18). `None` when no probe is planned on tp_btf.
fn attach_btf(plan: &Plan) -> Option<std::result::Result<Btf, String>> {
    let events: Vec<&str> = plan
        .ready
        .iter()
        .filter(|(spec, _)| plan.hook_of(spec.program).kind == HookKind::TpBtf)
        .map(|(spec, _)| spec.name)
        .collect();
    if events.is_empty() {
        return None;
    }
    let started = Instant::now();
    let btf = if events.iter().all(|e| plan.btf_trace_ids.contains_key(e)) {
        let typedefs = plan
            .btf_trace_ids
            .iter()
            .map(|(event, id)| (*id, format!("btf_trace_{event}")))
            .collect();
        Btf::parse(&typedefs_at_ids(&typedefs), aya::Endianness::default())
    } else {
        Btf::from_sys_fs()
    };
    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1e3,
        types = plan.btf_trace_ids.len(),
        "BTF for the BTF tracepoints parsed"
    );
    Some(btf.map_err(|e| e.to_string()))
}

impl Session {
    /// Loads the programs with the plan's offsets and attaches every ready probe. Fails only
    /// when nothing could be loaded at all; a probe that cannot attach is reported, not fatal.
    pub fn start(plan: &Plan) -> Result<Session> {
        Session::start_prepared(plan, PreparedLoader::start())
    }

    /// [`Session::start`] with aya's loader made beforehand (see [`PreparedLoader`]).
    pub fn start_prepared(plan: &Plan, loader: PreparedLoader) -> Result<Session> {
        raise_memlock();
        // Before the first attach, so every run of every program is timed.
        let run_time_stats = prog_stats::hold_run_time_stats();
        let mut config = plan.config;
        // Decided before the load: the frozen value lets the verifier drop the programs' own
        // run count where the kernel keeps one (run-time statistics held, kernel >= 5.8).
        let runs_from_kernel = run_time_stats.is_some() && !plan.programs_count_runs;
        config.count_runs = u32::from(!runs_from_kernel);
        // Also frozen: the slot guards of the drop and retransmit programs are dropped by the
        // verifier where the kernel never nests a program's runs on one CPU.
        config.runs_may_nest = u32::from(crate::kernel::hooks::runs_may_nest(
            plan.kernel_release,
            &[
                plan.hook_of(tracer_common::PROG_KFREE_SKB).kind,
                plan.hook_of(tracer_common::PROG_TCP_RETRANSMIT_SKB).kind,
            ],
        ));
        config.ephemeral_ports = crate::kernel::probes::ephemeral_ports(
            &std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default(),
        );
        let mut loader: EbpfLoader<'_> = loader.join();
        let mut ebpf = loader
            .override_global(GLOBAL_CONFIG, &config, true)
            // The capture ring buffer is used only by `tracer capture`'s own session: keep the
            // always-on session's copy at one page instead of 4 MiB of kernel memory.
            .map_max_entries(tracer_common::capture::MAP_CAPTURE_RING, 4096)
            .load(EBPF_OBJECT)
            .map_err(|e| anyhow!(privilege_hint(&anyhow::Error::from(e))))
            .context("loading the tracer's eBPF object")?;
        release_object_pages();
        crate::kernel::startup::log_memory("after aya loaded the object");
        let btf = attach_btf(plan);
        crate::kernel::startup::log_memory("after the BTF for tp_btf was parsed");

        let mut probes = plan.not_ready.clone();
        for (spec, detail) in &plan.ready {
            let started = Instant::now();
            let (outcome, hook) =
                attach_cheapest(&mut ebpf, spec, plan.hook_of(spec.program), &btf);
            let (state, detail) = match outcome {
                Ok(()) => (ProbeState::Attached, detail.clone()),
                Err(e) => (ProbeState::Failed, format!("{e:#}")),
            };
            let attached = state == ProbeState::Attached;
            probes.push(ProbeStatus {
                tracepoint: spec.tracepoint(),
                program: spec.program.to_owned(),
                state,
                detail,
                attach_ms: attached.then(|| started.elapsed().as_secs_f64() * 1000.0),
                hook: attached.then_some(hook.kind),
                hook_reason: attached.then_some(hook.reason),
            });
        }
        crate::kernel::startup::log_memory("after every probe was attached");
        if !probes.iter().any(|p| p.state == ProbeState::Attached) {
            let why: Vec<String> = probes
                .iter()
                .map(|p| format!("{}: {}", p.tracepoint, p.detail))
                .collect();
            bail!("no probe could be attached ({})", why.join("; "));
        }

        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| anyhow!("map {name} not in the eBPF object"))
        };
        let drops = PerCpuHashMap::try_from(take(&mut ebpf, MAP_DROPS)?)?;
        let drop_slots = PerCpuArray::try_from(take(&mut ebpf, MAP_DROP_SLOTS)?)?;
        let flows = AyaHashMap::try_from(take(&mut ebpf, MAP_RETRANS_FLOWS)?)?;
        let retrans_slots = PerCpuArray::try_from(take(&mut ebpf, MAP_RETRANS_SLOTS)?)?;
        let softirq = PerCpuArray::try_from(take(&mut ebpf, MAP_SOFTIRQ_STATS)?)?;
        let counters = PerCpuArray::try_from(take(&mut ebpf, MAP_PROBE_COUNTERS)?)?;
        let dests = AyaHashMap::try_from(take(&mut ebpf, MAP_DESTS)?)?;
        let rtt_pending = PerCpuArray::try_from(take(&mut ebpf, MAP_RTT_PENDING)?)?;
        let resets = AyaHashMap::try_from(take(&mut ebpf, MAP_RESETS)?)?;
        let sock_errors = AyaHashMap::try_from(take(&mut ebpf, MAP_SOCK_ERRORS)?)?;
        Ok(Session {
            _ebpf: ebpf,
            run_time_stats,
            runs_from_kernel,
            drops,
            drop_slots,
            drop_merge: std::sync::Mutex::new(DropRead {
                merge: DropMerge::default(),
                batch: possible_cpus().map(|cpus| {
                    BatchReader::new(
                        size_of::<DropKey>(),
                        BatchReader::per_cpu_value_size(size_of::<u64>(), cpus),
                    )
                }),
            }),
            flows,
            retrans_slots,
            flow_merge: std::sync::Mutex::new(FlowMerge::default()),
            softirq,
            counters,
            dests,
            rtt_pending,
            rtt_merge: std::sync::Mutex::new(RttMerge::default()),
            resets,
            sock_errors,
            probes,
        })
    }

    /// Whether this session holds a `BPF_ENABLE_STATS` descriptor: the kernel then times our
    /// programs whatever `kernel.bpf_stats_enabled` says.
    pub fn holds_run_time_stats(&self) -> bool {
        self.run_time_stats.is_some()
    }

    /// Whether the programs leave their run counters to the kernel (see
    /// [`TracerConfig::count_runs`](tracer_common::TracerConfig::count_runs)).
    pub fn runs_from_kernel(&self) -> bool {
        self.runs_from_kernel
    }

    /// The kernel's counters of each attached program: runs and run time (kept while run-time
    /// statistics are on, see [`Session::holds_run_time_stats`]) and recursion misses. A
    /// program whose counters cannot be read is left out.
    pub fn program_counters(&self) -> Vec<(String, ProgramCounters)> {
        self.read_program_counters()
            .into_iter()
            .filter_map(|(program, counters)| Some((program, counters?)))
            .collect()
    }

    /// Each attached probe's counters, summed over every hook variant of its program that is
    /// loaded (one is attached; a variant loaded and then refused at attach adds nothing).
    /// `None`: a loaded variant's counters could not be read.
    fn read_program_counters(&self) -> Vec<(String, Option<ProgramCounters>)> {
        let kinds = [HookKind::TpBtf, HookKind::RawTp, HookKind::Tracepoint];
        self.probes
            .iter()
            .filter(|p| p.state == ProbeState::Attached)
            .filter_map(|p| {
                let spec = crate::kernel::probes::PROBES
                    .iter()
                    .find(|s| s.program == p.program)?;
                let attached = hook_program(spec, p.hook.unwrap_or(HookKind::Tracepoint));
                let mut sum: Option<ProgramCounters> = None;
                for kind in kinds {
                    let name = hook_program(spec, kind);
                    let Some(fd) = self._ebpf.program(&name).and_then(|p| p.fd().ok()) else {
                        continue;
                    };
                    let Ok(c) = prog_stats::read(fd.as_fd()) else {
                        return Some((p.program.clone(), None));
                    };
                    let total = sum.get_or_insert_with(ProgramCounters::default);
                    if name == attached {
                        total.id = c.id;
                    }
                    total.runs += c.runs;
                    total.run_time_ns += c.run_time_ns;
                    total.recursion_misses += c.recursion_misses;
                }
                Some((p.program.clone(), sum))
            })
            .collect()
    }

    /// The drop map's counts, summed over CPUs, into `drops`: in batches where the kernel can
    /// (see [`DropRead::batch`]), else key by key. A batch read the kernel refuses switches
    /// this session to the iteration for good.
    fn read_drops(
        &self,
        batch: &mut Option<BatchReader>,
        drops: &mut std::collections::HashMap<DropKey, u64>,
    ) -> Result<()> {
        if let Some(reader) = batch {
            match read_drops_batched(reader, &self.drops, drops)? {
                Walk::Done => return Ok(()),
                Walk::Unsupported => {
                    tracing::debug!("no batch lookup of the drop map here; reading it key by key");
                    *batch = None;
                }
            }
        }
        for entry in self.drops.iter() {
            let Ok((key, per_cpu)) = entry else { continue };
            let total = sum_per_cpu(per_cpu.iter().copied());
            *drops.entry(key).or_insert(0) += total;
        }
        Ok(())
    }

    /// Every CPU's drop slots, CPU by CPU.
    fn read_drop_slots(&self) -> Result<Vec<DropSlot>> {
        let per_cpu = self
            .drop_slots
            .get(&0, 0)
            .context("reading the per-CPU drop slots")?;
        Ok(per_cpu.iter().flat_map(|cpu| cpu.slots).collect())
    }

    /// Every CPU's retransmit slots, CPU by CPU.
    fn read_retrans_slots(&self) -> Result<Vec<RetransSlot>> {
        let per_cpu = self
            .retrans_slots
            .get(&0, 0)
            .context("reading the per-CPU retransmit slots")?;
        Ok(per_cpu.iter().flat_map(|cpu| cpu.slots).collect())
    }

    /// Every CPU's pending RTT slots, CPU by CPU.
    fn read_rtt_pending(&self) -> Result<Vec<RttPending>> {
        let per_cpu = self
            .rtt_pending
            .get(&0, 0)
            .context("reading the pending RTT samples")?;
        Ok(per_cpu.iter().flat_map(|cpu| cpu.slots).collect())
    }

    /// Copies every map. Entries that vanish while being read (LRU eviction) are skipped.
    pub fn snapshot(&self) -> Result<Snapshot> {
        self.snapshot_with(true)
    }

    /// Copies the maps; the per-destination maps (destinations and their pending RTT samples,
    /// resets, socket errors: up to 16 k entries, one syscall pair each) only when `flow_maps`
    /// is set. Without them the snapshot's `dests`, `resets` and `sock_errors` are empty and
    /// `dest_entries` is 0; `has_flow_maps` tells a delta not to use them.
    pub fn snapshot_with(&self, flow_maps: bool) -> Result<Snapshot> {
        let mut snap = Snapshot {
            has_flow_maps: flow_maps,
            ..Snapshot::default()
        };
        {
            // The map, then every CPU's slots twice, then the merge, all under the lock: the
            // order and the merge's memory are what keep the counts exact (`drop_slots`).
            let mut read = self
                .drop_merge
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.read_drops(&mut read.batch, &mut snap.drops)?;
            let first = self.read_drop_slots()?;
            let second = self.read_drop_slots()?;
            read.merge.merge(&mut snap.drops, &first, &second);
        }
        {
            // The map, then every CPU's slots twice, then the merge, under one lock
            // (`retrans_slots`).
            let mut merge = self
                .flow_merge
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for entry in self.flows.iter() {
                let Ok((key, stats)) = entry else { continue };
                snap.flows.insert(key, stats);
            }
            let first = self.read_retrans_slots()?;
            let second = self.read_retrans_slots()?;
            merge.merge(&mut snap.flows, &first, &second);
        }
        if flow_maps {
            self.read_flow_maps(&mut snap)?;
        }
        for vec in 0..SOFTIRQ_VECTORS {
            let per_cpu = self
                .softirq
                .get(&vec, 0)
                .context("reading softirq statistics")?;
            for (cpu, slot) in per_cpu.iter().enumerate() {
                if slot.stats.runs > 0 {
                    snap.softirq.insert((cpu as u32, vec), slot.stats);
                }
            }
        }
        snap.counters = (0..counter::COUNT)
            .map(|i| {
                self.counters
                    .get(&i, 0)
                    .map(|v| sum_per_cpu(v.iter().copied()))
                    .unwrap_or(0)
            })
            .collect();
        let programs = self.read_program_counters();
        for (program, c) in &programs {
            let Some(c) = c else { continue };
            snap.program_costs
                .push((program.clone(), c.runs, c.run_time_ns));
            snap.program_misses
                .insert(program.clone(), c.recursion_misses);
        }
        if self.runs_from_kernel {
            let runs = programs
                .into_iter()
                .map(|(program, c)| (program, c.map(|c| c.runs)))
                .collect();
            snap.derive_run_counters(&runs);
        }
        Ok(snap)
    }

    /// The per-destination maps into `snap`: destinations (with the pending RTT samples merged
    /// in), resets and socket errors.
    fn read_flow_maps(&self, snap: &mut Snapshot) -> Result<()> {
        for entry in self.dests.iter() {
            let Ok((key, stats)) = entry else {
                continue;
            };
            snap.dests.insert(key, stats);
        }
        snap.dest_entries = snap.dests.len() as u64;
        // After the map, twice: see `rtt_pending` for why this order counts no sample twice.
        let first = self.read_rtt_pending()?;
        let second = self.read_rtt_pending()?;
        self.rtt_merge
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .merge(&mut snap.dests, &first, &second);
        for stats in snap.dests.values_mut() {
            stats.rtt_samples = stats.rtt_hist.iter().map(|c| u64::from(*c)).sum();
        }
        for entry in self.resets.iter() {
            let Ok((key, count)) = entry else { continue };
            snap.resets.insert(key, count);
        }
        for entry in self.sock_errors.iter() {
            let Ok((key, count)) = entry else { continue };
            snap.sock_errors.insert(key, count);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A per-CPU hash map of drop keys read in batches gives what aya's key-by-key iteration
    /// gives, with a first buffer smaller than a bucket (the walk grows it on `ENOSPC`), in a
    /// few calls instead of two per key. Needs root (BPF maps); skipped otherwise.
    #[test]
    fn batch_reads_of_the_drop_map_equal_the_iteration() {
        let map = match PerCpuHashMap::<MapData, DropKey, u64>::create(16_384, 0) {
            Ok(map) => map,
            Err(e) => {
                eprintln!("skipped: cannot create a BPF map here ({e})");
                return;
            }
        };
        let mut map = map;
        let cpus = possible_cpus().unwrap();
        let keys = 3000u32;
        for i in 0..keys {
            let key = DropKey {
                reason: 2 + i % 3,
                netns: 4_026_531_840 + i,
                location: 0xffff_ffff_8100_0000 + u64::from(i % 7),
            };
            let values: Vec<u64> = (0..cpus)
                .map(|cpu| u64::from(i) * 10 + cpu as u64)
                .collect();
            map.insert(&key, aya::maps::PerCpuValues::try_from(values).unwrap(), 0)
                .unwrap();
        }
        let mut iterated = std::collections::HashMap::new();
        for entry in map.iter() {
            let (key, per_cpu) = entry.unwrap();
            *iterated.entry(key).or_insert(0) += sum_per_cpu(per_cpu.iter().copied());
        }
        assert_eq!(iterated.len(), keys as usize);
        let mut reader = BatchReader::with_first_chunk(
            size_of::<DropKey>(),
            BatchReader::per_cpu_value_size(size_of::<u64>(), cpus),
            1,
        );
        let mut batched = std::collections::HashMap::new();
        let walk = read_drops_batched(&mut reader, &map, &mut batched).unwrap();
        if matches!(walk, Walk::Unsupported) {
            eprintln!("skipped: this kernel has no batch lookup");
            return;
        }
        assert_eq!(batched, iterated);
        let cpus = cpus as u64;
        let sum_of = |i: u64| i * 10 * cpus + cpus * (cpus - 1) / 2;
        let expected: u64 = (0..u64::from(keys)).map(sum_of).sum();
        assert_eq!(batched.values().sum::<u64>(), expected);
        assert!(reader.calls() > 1, "the first buffer held one entry");
        // The session's reader: 3000 keys in ~3000 / 256 calls, not 6000 (two per key).
        let mut reader = BatchReader::new(
            size_of::<DropKey>(),
            BatchReader::per_cpu_value_size(size_of::<u64>(), cpus as usize),
        );
        let mut again = std::collections::HashMap::new();
        read_drops_batched(&mut reader, &map, &mut again).unwrap();
        assert_eq!(again, iterated);
        let most = 3000 / crate::kernel::map_batch::FIRST_CHUNK as u64 + 2;
        assert!(
            reader.calls() <= most,
            "{} calls for 3000 keys",
            reader.calls()
        );
    }
}
