//! Starts a live tracer on this node: reads the kernel's formats, BTF and symbols, loads and
//! attaches the probes, and turns two snapshots into a report. Used by every mode and the tests.
//! Reads only; the one exception is mounting tracefs when nothing has (reported in the notes).

use std::{path::Path, time::Instant};

use anyhow::{bail, Result};

use crate::{
    judge::report::{self, Report, WindowInfo},
    kernel::kallsyms::Kallsyms,
    kernel::loader::Session,
    kernel::names::KernelNames,
    kernel::snapshot::Snapshot,
    kernel::startup::{KernelSources, PendingSymbols},
    kernel::tracefs::Tracefs,
    node::netns::NetnsScope,
};

/// A running tracer: probes attached, names resolved.
pub struct LiveTracer {
    session: Session,
    pub names: KernelNames,
    /// The kernel's symbols and the note on them, once read (see [`LiveTracer::symbols`]).
    symbols: std::sync::OnceLock<(Kallsyms, Option<String>)>,
    /// The symbols while they are still being read: start-up does not wait for them.
    pending_symbols: std::sync::Mutex<Option<PendingSymbols>>,
    /// Milliseconds from the start of [`LiveTracer::start`] to every probe attached.
    pub startup_ms: f64,
    pub kernel: String,
    notes: Vec<String>,
}

/// The network namespace `--netns ARG` names: an `ip netns` name (`/run/netns/NAME`) or a
/// path (`/run/netns/NAME`, `/proc/PID/ns/net`). Anything but a network namespace is refused.
pub fn netns_scope(arg: &Path) -> Result<NetnsScope> {
    let path = crate::node::netns::netns_arg_path(arg, Path::new("/run/netns"));
    let inode = crate::node::netns::network_namespace_inode(arg, &path)?;
    Ok(NetnsScope {
        path: path.display().to_string(),
        inode,
        pod: None,
    })
}

/// The name set by [`set_node_name`] (`serve --node-name`), once for the process.
static NODE_NAME_SET: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names this node for the rest of the process (`serve --node-name`): documents' `node_name`
/// and the metrics' `node` label. Ignored after the first call, and when empty.
pub fn set_node_name(name: &str) {
    let name = name.trim();
    if !name.is_empty() {
        let _ = NODE_NAME_SET.set(name.to_owned());
    }
}

/// The node's name: `--node-name` ([`set_node_name`]), else `NODE_NAME` (the DaemonSet sets it
/// from `spec.nodeName`), else the host name.
pub fn node_name() -> Option<String> {
    NODE_NAME_SET
        .get()
        .cloned()
        .or_else(|| std::env::var("NODE_NAME").ok())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
}

/// One sentence for the person who is not root.
pub fn require_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "tracer must run as root: it loads eBPF programs and reads tracefs \
             (use sudo on the node, or a privileged pod)"
        );
    }
    if let Some(problem) =
        crate::modes::check::load_capability_problem(crate::modes::check::effective_capabilities())
    {
        bail!(problem);
    }
    Ok(())
}

impl LiveTracer {
    /// Starts on this kernel, or read as the kernel `TRACER_AS_KERNEL` names (hidden switch for
    /// tests and support, see [`crate::kernel::emulate`]).
    pub fn start() -> Result<LiveTracer> {
        Self::start_as(crate::kernel::emulate::requested().as_deref())
    }

    /// [`LiveTracer::start`] reading this kernel as `version` (`5.10`, `5.15`, `6.1`) when given.
    pub fn start_as(version: Option<&str>) -> Result<LiveTracer> {
        Self::start_inner(version, |_| {})
    }

    /// [`LiveTracer::start`], with the plan changed before loading: the privileged tests use it
    /// to read this kernel the way an older one is read (fields marked absent).
    pub fn start_with(adjust: impl FnOnce(&mut crate::kernel::probes::Plan)) -> Result<LiveTracer> {
        Self::start_inner(None, adjust)
    }

    fn start_inner(
        as_kernel: Option<&str>,
        adjust: impl FnOnce(&mut crate::kernel::probes::Plan),
    ) -> Result<LiveTracer> {
        let started = Instant::now();
        require_root()?;
        // aya's BTF parse runs beside the formats, our BTF reader and kallsyms.
        let loader = crate::kernel::loader::PreparedLoader::start();
        let mut notes = Vec::new();
        let tracefs = Tracefs::locate_or_mount()?;
        if tracefs.mounted_by_tracer {
            notes.push(format!(
                "tracefs was not mounted; the tracer mounted it at {}",
                tracefs.root.display()
            ));
        }

        tracing::debug!(
            ms = started.elapsed().as_secs_f64() * 1e3,
            "tracefs located"
        );
        let (mut startup, pending_symbols) =
            crate::kernel::startup::prepare_deferred(&KernelSources::host(&tracefs.root));
        if let Some(version) = as_kernel {
            crate::kernel::emulate::emulate(&mut startup, version)?;
        }
        notes.extend(startup.notes);
        let (mut plan, mut names) = (startup.plan, startup.names);
        names.ephemeral_ports = crate::kernel::probes::host_ephemeral_ports();
        adjust(&mut plan);
        tracing::debug!(
            ms = started.elapsed().as_secs_f64() * 1e3,
            "formats, BTF and kallsyms read"
        );
        crate::kernel::startup::log_memory("after start-up planning (BTF reader dropped)");
        let session = Session::start_prepared(&plan, loader)?;
        let startup_ms = started.elapsed().as_secs_f64() * 1000.0;
        drop(plan);
        crate::kernel::startup::release_freed_memory();
        let mut kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        if let Some(version) = as_kernel {
            kernel = format!("{kernel} read as {version}");
        }
        Ok(LiveTracer {
            session,
            names,
            symbols: std::sync::OnceLock::new(),
            pending_symbols: std::sync::Mutex::new(Some(pending_symbols)),
            startup_ms,
            kernel,
            notes,
        })
    }

    /// The tracer's facts for judging windows (kernel, probes, names, notes).
    pub fn meta(&self) -> crate::judge::window::TracerMeta {
        crate::judge::window::TracerMeta {
            kernel: self.kernel.clone(),
            tracer_version: env!("CARGO_PKG_VERSION").to_owned(),
            startup_ms: self.startup_ms,
            probes: self.session.probes.clone(),
            notes: self.notes(),
            names: self.names.clone(),
            node_name: node_name(),
            run_time_stats_held: self.session.holds_run_time_stats(),
        }
    }

    /// The kernel's symbols, for drop locations; the first call waits for them to be read.
    pub fn symbols(&self) -> &Kallsyms {
        &self.symbols_and_note().0
    }

    fn symbols_and_note(&self) -> &(Kallsyms, Option<String>) {
        self.symbols.get_or_init(|| {
            let pending = self
                .pending_symbols
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            let read = pending.map(PendingSymbols::wait).unwrap_or_default();
            // The table's growth left freed buffers in the reader thread's heap.
            crate::kernel::startup::release_freed_memory();
            read
        })
    }

    /// What is off or degraded, the symbols' note last (waits for the symbols).
    fn notes(&self) -> Vec<String> {
        let mut notes = self.notes.clone();
        notes.extend(self.symbols_and_note().1.clone());
        notes
    }

    /// How many probes are attached.
    pub fn attached_count(&self) -> usize {
        self.session
            .probes
            .iter()
            .filter(|p| p.state == crate::kernel::probes::ProbeState::Attached)
            .count()
    }

    /// Copies every map now.
    pub fn snapshot(&self) -> Result<Snapshot> {
        self.session.snapshot()
    }

    /// Whether the programs leave their run counters to the kernel (run-time statistics held
    /// and not `TRACER_RUN_COUNTS=programs`): snapshots then derive them from `run_cnt`.
    pub fn runs_from_kernel(&self) -> bool {
        self.session.runs_from_kernel()
    }

    /// The kernel's counters of each attached program (id, runs, run time, recursion misses).
    pub fn program_counters(&self) -> Vec<(String, crate::kernel::prog_stats::ProgramCounters)> {
        self.session.program_counters()
    }

    /// Copies the maps, the per-destination ones only when `flow_maps` is set (the frames
    /// inside a window need not read them).
    pub fn snapshot_with(&self, flow_maps: bool) -> Result<Snapshot> {
        self.session.snapshot_with(flow_maps)
    }

    /// The report of what happened between two snapshots, optionally narrowed to a namespace.
    pub fn report(
        &self,
        start: &Snapshot,
        end: &Snapshot,
        duration_s: f64,
        netns: Option<NetnsScope>,
        extra_notes: &[String],
    ) -> Report {
        let mut delta = end.since(start);
        if let Some(scope) = &netns {
            delta = delta.only_netns(scope.inode);
        }
        let mut notes = self.notes();
        notes.extend_from_slice(extra_notes);
        let mut report = report::build(
            &delta,
            &self.names,
            self.symbols(),
            self.session.probes.clone(),
            WindowInfo {
                duration_s,
                startup_ms: self.startup_ms,
                netns,
            },
            self.kernel.clone(),
            notes,
        );
        report.tracer_cost.bpf_stats_enabled =
            std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
                .is_ok_and(|s| s.trim() == "1");
        report.tracer_cost.run_time_stats_held = self.session.holds_run_time_stats();
        report
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    fn refusal(arg: &str) -> String {
        let e = netns_scope(Path::new(arg)).expect_err(arg);
        let text = format!("{e:#}");
        assert!(!text.contains('\n'), "one sentence: {text}");
        text
    }

    #[test]
    fn netns_accepts_only_network_namespace_files() {
        // A regular file is not a namespace, whatever its inode.
        let text = refusal("/etc/passwd");
        assert!(
            text.contains("/etc/passwd is not a network namespace"),
            "{text}"
        );
        assert!(text.contains("ip netns list"), "{text}");
        // Another kind of namespace file is named as what it is.
        let text = refusal("/proc/self/ns/mnt");
        assert!(
            text.contains("is a mount namespace, not a network namespace"),
            "{text}"
        );
        // A directory, a missing path, a missing name.
        assert!(refusal("/proc").contains("is not a network namespace"));
        assert!(refusal("/nonexistent/netns").contains("no such file"));
        let missing = refusal("trc-no-such-netns-name");
        assert!(
            missing.contains("no network namespace named trc-no-such-netns-name in /run/netns"),
            "{missing}"
        );
        // The tracer's own network namespace is one.
        let own = netns_scope(Path::new("/proc/self/ns/net")).unwrap();
        let inode = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        assert_eq!(u64::from(own.inode), inode);
        assert_eq!(own.path, "/proc/self/ns/net");
    }

    #[test]
    fn a_bare_name_is_an_ip_netns_name() {
        assert_eq!(
            crate::node::netns::netns_arg_path(Path::new("blue"), Path::new("/run/netns")),
            Path::new("/run/netns/blue")
        );
        for path in ["./blue", "/proc/1/ns/net", "/run/netns/blue"] {
            assert_eq!(
                crate::node::netns::netns_arg_path(Path::new(path), Path::new("/run/netns")),
                Path::new(path)
            );
        }
    }
}
