//! Start-up planning: what the tracer learns about a kernel before it loads anything. It reads the
//! tracefs `format` files, the BTF and the symbols of the running kernel, or of a kernel recorded
//! under `tests/fixtures/kernels/`, and decides which probes attach with which offsets, which
//! names drops get, and what is off on that kernel. Reads only; the loader loads and attaches.

use std::path::{Path, PathBuf};

use crate::{
    kernel::btf::{KernelBtf, NetnsOffsets, VMLINUX_BTF},
    kernel::hooks::HookFacts,
    kernel::kallsyms::Kallsyms,
    kernel::names::{kernel_names, FormatResults, KernelNames},
    kernel::probes::{self, Plan, ProbeSpec},
    kernel::tracefs::Tracefs,
};

/// Where one kernel's facts are read from.
#[derive(Debug, Clone)]
pub struct KernelSources {
    /// tracefs root (holds `events/<category>/<name>/format`).
    pub tracefs: PathBuf,
    /// The kernel's BTF (`/sys/kernel/btf/vmlinux`); absent on kernels built without it.
    pub btf: PathBuf,
    /// Symbols (`/proc/kallsyms`).
    pub kallsyms: PathBuf,
    /// Files whose presence says the kernel has kprobes: tracefs `kprobe_events`, or the
    /// `kprobe` PMU in `/sys/bus/event_source/devices`.
    pub kprobe_markers: Vec<PathBuf>,
    /// The kernel's release string (`/proc/sys/kernel/osrelease`); a recorded kernel has none
    /// (its release is then unknown, or set by the emulation).
    pub osrelease: PathBuf,
}

impl KernelSources {
    /// The running kernel, with tracefs at `tracefs_root`.
    pub fn host(tracefs_root: &Path) -> KernelSources {
        KernelSources {
            tracefs: tracefs_root.to_path_buf(),
            btf: PathBuf::from(VMLINUX_BTF),
            kallsyms: PathBuf::from("/proc/kallsyms"),
            kprobe_markers: vec![
                tracefs_root.join("kprobe_events"),
                PathBuf::from("/sys/bus/event_source/devices/kprobe"),
            ],
            osrelease: PathBuf::from("/proc/sys/kernel/osrelease"),
        }
    }

    /// A recorded kernel: `dir/tracing` (tracefs), `dir/btf/vmlinux`, `dir/kallsyms`, and
    /// `dir/tracing/kprobe_events` when that kernel has kprobes, `dir/osrelease` when recorded.
    pub fn recorded(dir: &Path) -> KernelSources {
        KernelSources {
            tracefs: dir.join("tracing"),
            btf: dir.join("btf").join("vmlinux"),
            kallsyms: dir.join("kallsyms"),
            kprobe_markers: vec![dir.join("tracing").join("kprobe_events")],
            osrelease: dir.join("osrelease"),
        }
    }

    /// True when the kernel can place kprobes.
    pub fn kprobes(&self) -> bool {
        self.kprobe_markers.iter().any(|p| p.exists())
    }
}

/// Everything start-up decided.
pub struct Startup {
    pub plan: Plan,
    pub names: KernelNames,
    /// Empty from [`prepare_deferred`], which hands them over as [`PendingSymbols`].
    pub symbols: Kallsyms,
    /// Each probe's format as read (`Ok(None)`: no such tracepoint).
    pub formats: FormatResults,
    /// BTF offsets for namespace attribution (None: off).
    pub netns: Option<NetnsOffsets>,
    pub kprobes: bool,
    /// What is off or degraded on this kernel, one sentence each.
    pub notes: Vec<String>,
}

/// What needs BTF, said when it is missing.
pub const BTF_OFF: &str = "off without BTF: namespace/pod attribution (every event counts in \
     namespace 0) and segments per retransmitted skb (tcp_gso_segs: each retransmission counts \
     as one segment); probes use the tracefs formats only";

/// Reads a kernel's formats, BTF and symbols and plans the probes for it.
pub fn prepare(sources: &KernelSources) -> Startup {
    let (mut startup, symbols) = prepare_deferred(sources);
    let (symbols, note) = symbols.wait();
    startup.notes.extend(note);
    startup.symbols = symbols;
    startup
}

/// [`prepare`], with the symbols still being read ([`Startup::symbols`] is empty): wait for them
/// once the probes are attached.
pub fn prepare_deferred(sources: &KernelSources) -> (Startup, PendingSymbols) {
    let mut notes = Vec::new();
    // Symbols are read on a thread of their own, while BTF is parsed and until they are needed.
    let kallsyms_path = sources.kallsyms.clone();
    let kallsyms = std::thread::spawn(move || Kallsyms::load_from(&kallsyms_path));

    let btf_started = std::time::Instant::now();
    let btf = match KernelBtf::from_file(&sources.btf) {
        Ok(b) => {
            tracing::debug!(
                ms = btf_started.elapsed().as_secs_f64() * 1e3,
                "the tracer's BTF reader indexed the kernel BTF"
            );
            Some(b)
        }
        Err(e) => {
            notes.push(format!("no kernel BTF ({e:#}): {BTF_OFF}"));
            None
        }
    };
    log_memory("after our BTF reader indexed the kernel BTF");
    let netns = btf.as_ref().and_then(|b| match b.netns_offsets() {
        Ok(o) => Some(o),
        Err(e) => {
            notes.push(format!(
                "BTF lacks what namespace attribution needs ({e:#}): every event counts in namespace 0"
            ));
            None
        }
    });
    if netns.is_some_and(|o| o.skb_tcp_segs.is_none()) {
        notes.push(
            "BTF has no tcp_skb_cb.tcp_gso_segs: each retransmitted skb counts as one segment"
                .to_owned(),
        );
    }

    let tracefs = Tracefs {
        root: sources.tracefs.clone(),
        mounted_by_tracer: false,
    };
    let mut formats = FormatResults::new();
    for spec in probes::PROBES {
        formats.insert(spec.program, tracefs.event_format(spec.category, spec.name));
    }
    let lookup = |spec: &ProbeSpec| match formats.get(spec.program) {
        Some(Ok(f)) => Ok(f.clone()),
        Some(Err(e)) => Err(anyhow::anyhow!("{e:#}")),
        None => Ok(None),
    };
    let mut plan = probes::plan(lookup, netns);
    plan.kernel_release = std::fs::read_to_string(&sources.osrelease)
        .ok()
        .and_then(|r| crate::kernel::hooks::parse_release(&r));
    choose_hooks(&mut plan, btf.as_ref(), &mut notes);
    softirq_sampling(&mut plan, &mut notes);
    run_counts(&mut plan, &mut notes);
    let names = kernel_names(btf.as_ref(), &formats, &mut notes);

    let kprobes = sources.kprobes();
    let mut symbols = PendingSymbols::Reading {
        reader: kallsyms,
        path: sources.kallsyms.clone(),
    };
    // Only a probe whose tracepoint is missing needs the symbols to be planned (is there a
    // kernel function a kprobe could stand in on?); otherwise they are read while the programs
    // load and attach, and first needed to name a drop location.
    if plan
        .not_ready
        .iter()
        .any(|p| p.state == probes::ProbeState::Missing)
    {
        let (table, note) = symbols.wait();
        plan.decide_fallbacks(kprobes, |f| table.address_of(f).is_some());
        symbols = PendingSymbols::Read(table, note);
    }
    (
        Startup {
            plan,
            names,
            symbols: Kallsyms::default(),
            formats,
            netns,
            kprobes,
            notes,
        },
        symbols,
    )
}

/// The kernel's symbols, read on a thread of their own from the start of [`prepare_deferred`]:
/// reading `/proc/kallsyms` (~121 k lines on 6.18) is the longest part of start-up, and only
/// naming drop locations needs them.
pub enum PendingSymbols {
    Reading {
        reader: std::thread::JoinHandle<std::io::Result<Kallsyms>>,
        path: PathBuf,
    },
    /// Read already, with the note saying what is degraded, if anything.
    Read(Kallsyms, Option<String>),
}

impl PendingSymbols {
    /// Waits for the table; the note says why drop locations will be raw addresses, if they will.
    pub fn wait(self) -> (Kallsyms, Option<String>) {
        let (reader, path) = match self {
            PendingSymbols::Read(table, note) => return (table, note),
            PendingSymbols::Reading { reader, path } => (reader, path),
        };
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the kallsyms reader panicked")));
        log_memory("after kallsyms were read");
        match read {
            Ok(s) if s.addresses_hidden() => (
                s,
                Some(
                    "kernel addresses in kallsyms are hidden (kptr_restrict): drop locations are \
                     shown as raw addresses"
                        .to_owned(),
                ),
            ),
            Ok(s) => (s, None),
            Err(e) => (
                Kallsyms::parse(""),
                Some(format!(
                    "cannot read {} ({e}): drop locations are raw addresses",
                    path.display()
                )),
            ),
        }
    }
}

/// Logs this process's resident memory now and at its peak (`VmRSS`, `VmHWM` of
/// `/proc/self/status`) at debug level, so `TRACER_LOG=tracer=debug` shows what each start-up
/// phase adds to the peak. Reads nothing when debug logging is off.
pub fn log_memory(phase: &str) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|value| value.trim().parse::<u64>().ok())
    };
    tracing::debug!(
        rss_kib = kib("VmRSS:"),
        peak_kib = kib("VmHWM:"),
        "memory {phase}"
    );
}

/// Caps glibc's malloc arenas at two (`M_ARENA_MAX`); call first thing in `main`, before any
/// thread starts. By default glibc gives each thread that allocates an arena of its own, up to 8
/// per CPU, and memory freed in one is not reused by another, so short-lived threads (kallsyms,
/// namespace readers, facts) raise the peak; the tracer's threads allocate little on hot paths.
/// Nothing to do with other C libraries (the static musl build).
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets a glibc tunable; called before any other thread exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
}

/// Hands the heap pages freed since start-up (the kernel BTF, formats and symbol text read once)
/// back to the kernel. glibc keeps freed pages inside its heap otherwise, and they would count in
/// the tracer's resident memory for as long as it runs. Nothing to do with other C libraries.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks glibc's own heaps, under their locks.
        unsafe { libc::malloc_trim(0) };
    }
    log_memory("after freed heap pages were handed back");
}

/// `TRACER_SOFTIRQ_SAMPLING=off` (a hidden switch for tests and measurements): every softirq
/// run timed, as before sampling existed.
fn softirq_sampling(plan: &mut Plan, notes: &mut Vec<String>) {
    match std::env::var(probes::SOFTIRQ_SAMPLING_VAR).as_deref() {
        Ok("off") => {
            plan.config.softirq_sample_max_shift = 0;
            notes.push(format!(
                "{}=off: every softirq run is timed",
                probes::SOFTIRQ_SAMPLING_VAR
            ));
        }
        Ok("") | Ok("on") | Err(_) => {}
        Ok(other) => notes.push(format!(
            "{}={other} ignored: use on or off",
            probes::SOFTIRQ_SAMPLING_VAR
        )),
    }
}

/// `TRACER_RUN_COUNTS=programs` (a hidden switch for tests): the programs count their own runs
/// even where the kernel counts them.
fn run_counts(plan: &mut Plan, notes: &mut Vec<String>) {
    match std::env::var(probes::RUN_COUNTS_VAR).as_deref() {
        Ok("programs") => {
            plan.programs_count_runs = true;
            notes.push(format!(
                "{}=programs: the programs count their own runs",
                probes::RUN_COUNTS_VAR
            ));
        }
        Ok("") | Ok("auto") | Err(_) => {}
        Ok(other) => notes.push(format!(
            "{}={other} ignored: use programs or auto",
            probes::RUN_COUNTS_VAR
        )),
    }
}

/// Picks each probe's hook from the BTF (when there is one) and `TRACER_HOOK`.
fn choose_hooks(plan: &mut Plan, btf: Option<&KernelBtf>, notes: &mut Vec<String>) {
    let forced = match std::env::var(probes::HOOK_VAR) {
        Ok(name) if !name.is_empty() => {
            let kind = probes::HookKind::parse(&name);
            if kind.is_none() {
                notes.push(format!(
                    "{}={name} ignored: use tp_btf, raw_tp or tracepoint",
                    probes::HOOK_VAR
                ));
            }
            kind
        }
        _ => None,
    };
    let btf_args = |event: &str| match btf {
        Some(b) => b.tracepoint_args(event),
        None => anyhow::bail!("no BTF"),
    };
    let sock = match btf {
        Some(b) => b.sock_offsets().map_err(|e| format!("{e:#}")),
        None => Err("no BTF".to_owned()),
    };
    plan.choose_hooks(&HookFacts {
        btf_args: btf.map(|_| &btf_args as crate::kernel::hooks::PrototypeLookup),
        sock,
        forced,
    });
    if let Some(btf) = btf {
        plan.btf_trace_ids = btf_trace_ids(plan, btf);
    }
}

/// The type id of each BTF tracepoint's `btf_trace_<event>`, so the loader need not parse the
/// kernel's BTF again to find them.
fn btf_trace_ids(plan: &Plan, btf: &KernelBtf) -> std::collections::BTreeMap<&'static str, u32> {
    plan.ready
        .iter()
        .filter(|(spec, _)| plan.hook_of(spec.program).kind == probes::HookKind::TpBtf)
        .filter_map(|(spec, _)| Some((spec.name, btf.tracepoint_type_id(spec.name).ok()?)))
        .collect()
}

#[cfg(test)]
#[path = "startup_tests.rs"]
mod tests;
