//! Starts a live tracer on this node: reads the kernel's formats, BTF and symbols, loads and
//! attaches the probes, and turns two snapshots into a report. Used by every mode and the tests.
//! Reads only; the one exception is mounting tracefs when nothing has (reported in the notes).

use std::{os::unix::fs::MetadataExt as _, path::Path, time::Instant};

use anyhow::{bail, Context as _, Result};

use crate::{
    judge::report::{self, Report, WindowInfo},
    kernel::kallsyms::Kallsyms,
    kernel::loader::Session,
    kernel::names::KernelNames,
    kernel::snapshot::Snapshot,
    kernel::startup::KernelSources,
    kernel::tracefs::Tracefs,
    node::netns::NetnsScope,
};

/// A running tracer: probes attached, names resolved.
pub struct LiveTracer {
    session: Session,
    pub names: KernelNames,
    symbols: Kallsyms,
    /// Milliseconds from the start of [`LiveTracer::start`] to every probe attached.
    pub startup_ms: f64,
    pub kernel: String,
    notes: Vec<String>,
}

/// The network namespace a path names (`/run/netns/NAME`, `/proc/PID/ns/net`).
pub fn netns_scope(path: &Path) -> Result<NetnsScope> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("--netns {}: cannot open it", path.display()))?;
    let inode = u32::try_from(meta.ino())
        .with_context(|| format!("--netns {}: inode does not fit 32 bits", path.display()))?;
    Ok(NetnsScope {
        path: path.display().to_string(),
        inode,
        pod: None,
    })
}

/// The node's name: `NODE_NAME` (the DaemonSet sets it from `spec.nodeName`), else the host
/// name.
pub fn node_name() -> Option<String> {
    std::env::var("NODE_NAME")
        .ok()
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
    pub fn start() -> Result<LiveTracer> {
        Self::start_with(|_| {})
    }

    /// [`LiveTracer::start`], with the plan changed before loading: the privileged tests use it
    /// to read this kernel the way an older one is read (fields marked absent).
    pub fn start_with(adjust: impl FnOnce(&mut crate::kernel::probes::Plan)) -> Result<LiveTracer> {
        let started = Instant::now();
        require_root()?;
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
        let startup = crate::kernel::startup::prepare(&KernelSources::host(&tracefs.root));
        notes.extend(startup.notes);
        let (mut plan, names, symbols) = (startup.plan, startup.names, startup.symbols);
        adjust(&mut plan);
        tracing::debug!(
            ms = started.elapsed().as_secs_f64() * 1e3,
            "formats, BTF and kallsyms read"
        );
        let session = Session::start(&plan)?;
        let startup_ms = started.elapsed().as_secs_f64() * 1000.0;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Ok(LiveTracer {
            session,
            names,
            symbols,
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
            notes: self.notes.clone(),
            names: self.names.clone(),
            node_name: node_name(),
        }
    }

    /// The kernel's symbols, for drop locations.
    pub fn symbols(&self) -> &Kallsyms {
        &self.symbols
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
        let mut notes = self.notes.clone();
        notes.extend_from_slice(extra_notes);
        let mut report = report::build(
            &delta,
            &self.names,
            &self.symbols,
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
        report
    }
}
