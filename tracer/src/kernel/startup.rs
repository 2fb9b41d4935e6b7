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
        }
    }

    /// A recorded kernel: `dir/tracing` (tracefs), `dir/btf/vmlinux`, `dir/kallsyms`, and
    /// `dir/tracing/kprobe_events` when that kernel has kprobes.
    pub fn recorded(dir: &Path) -> KernelSources {
        KernelSources {
            tracefs: dir.join("tracing"),
            btf: dir.join("btf").join("vmlinux"),
            kallsyms: dir.join("kallsyms"),
            kprobe_markers: vec![dir.join("tracing").join("kprobe_events")],
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
    let mut notes = Vec::new();
    // Symbols are read while BTF is parsed; the fallback decision needs them.
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
    choose_hooks(&mut plan, btf.as_ref(), &mut notes);
    let names = kernel_names(btf.as_ref(), &formats, &mut notes);

    let symbols = match kallsyms
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the kallsyms reader panicked")))
    {
        Ok(s) if s.addresses_hidden() => {
            notes.push(
                "kernel addresses in kallsyms are hidden (kptr_restrict): drop locations are \
                 shown as raw addresses"
                    .to_owned(),
            );
            s
        }
        Ok(s) => s,
        Err(e) => {
            notes.push(format!(
                "cannot read {} ({e}): drop locations are raw addresses",
                sources.kallsyms.display()
            ));
            Kallsyms::parse("")
        }
    };
    let kprobes = sources.kprobes();
    plan.decide_fallbacks(kprobes, |f| symbols.address_of(f).is_some());
    Startup {
        plan,
        names,
        symbols,
        formats,
        netns,
        kprobes,
        notes,
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
}

#[cfg(test)]
#[path = "startup_tests.rs"]
mod tests;
