//! Starts a live tracer on this node: reads the kernel's formats, BTF and symbols, loads and
//! attaches the probes, and turns two snapshots into a report. Used by every mode and the tests.
//! Reads only; the one exception is mounting tracefs when nothing has (reported in the notes).

use std::{os::unix::fs::MetadataExt as _, path::Path, time::Instant};

use anyhow::{bail, Context as _, Result};

use crate::{
    judge::report::{self, KernelNames, NetnsScope, Report, WindowInfo},
    kernel::btf::KernelBtf,
    kernel::kallsyms::Kallsyms,
    kernel::loader::Session,
    kernel::snapshot::Snapshot,
    kernel::startup::KernelSources,
    kernel::tracefs::Tracefs,
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

/// Parsed formats by program name (`Ok(None)`: the kernel lacks the tracepoint).
pub type FormatResults =
    std::collections::HashMap<&'static str, Result<Option<crate::kernel::format::EventFormat>>>;

/// Drop-reason and softirq-vector names from the running kernel: BTF first, then the
/// tracepoint's own symbolic table.
pub(crate) fn kernel_names(
    btf: Option<&KernelBtf>,
    formats: &FormatResults,
    notes: &mut Vec<String>,
) -> KernelNames {
    let btf_reasons = match btf.map(KernelBtf::drop_reason_names) {
        Some(Ok(map)) => Some(map),
        Some(Err(e)) => {
            notes.push(format!("drop-reason names not in BTF ({e:#})"));
            None
        }
        None => None,
    };
    let mut names = names_from(btf_reasons, formats, notes);
    names.reset_reasons = reset_reason_names(
        btf.map(KernelBtf::rst_reason_names).and_then(Result::ok),
        formats,
    );
    names
}

/// `sk_rst_reason` names: BTF's enum when it has one, else the tcp_send_reset format's own
/// table (empty before 6.10, whose resets carry no reason).
pub fn reset_reason_names(
    btf_names: Option<std::collections::BTreeMap<u32, String>>,
    formats: &FormatResults,
) -> std::collections::BTreeMap<u32, String> {
    match btf_names {
        Some(map) if !map.is_empty() => map,
        _ => match formats.get(tracer_common::PROG_TCP_SEND_RESET) {
            Some(Ok(Some(f))) => f
                .symbolic_values("reason")
                .into_iter()
                .filter_map(|(v, n)| u32::try_from(v).ok().map(|v| (v, n)))
                .collect(),
            _ => std::collections::BTreeMap::new(),
        },
    }
}

/// Names from BTF's reason table when there is one, else from the tracepoints' own symbolic
/// tables. Pure, so kernels without BTF can be tested on recorded formats.
pub fn names_from(
    btf_reasons: Option<std::collections::BTreeMap<u32, String>>,
    formats: &FormatResults,
    notes: &mut Vec<String>,
) -> KernelNames {
    let format_of = |program: &str| match formats.get(program) {
        Some(Ok(Some(f))) => Some(f),
        _ => None,
    };
    let mut names = KernelNames::default();
    match btf_reasons {
        Some(map) if !map.is_empty() => {
            names.drop_reasons = map;
            names.drop_reasons_source = "btf".to_owned();
        }
        _ => {
            let table: std::collections::BTreeMap<u32, String> =
                format_of(tracer_common::PROG_KFREE_SKB)
                    .map(|f| f.symbolic_values("reason"))
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(v, n)| u32::try_from(v).ok().map(|v| (v, n)))
                    .collect();
            if table.is_empty() {
                names.drop_reasons_source = "none".to_owned();
                notes.push(
                    "no drop-reason names on this kernel: drops are shown by location".to_owned(),
                );
            } else {
                names.drop_reasons = table;
                names.drop_reasons_source = "tracefs format".to_owned();
            }
        }
    }
    names.softirq_vectors = format_of(tracer_common::PROG_SOFTIRQ_ENTRY)
        .map(|f| f.symbolic_values("vec"))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(v, n)| u32::try_from(v).ok().map(|v| (v, n)))
        .collect();
    if names.softirq_vectors.is_empty() {
        notes.push(
            "softirq vector names unknown on this kernel: softirq time not reported".to_owned(),
        );
    }
    names
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::kernel::format::EventFormat;

    fn formats(kfree: &str) -> FormatResults {
        let mut f = FormatResults::new();
        f.insert(
            tracer_common::PROG_KFREE_SKB,
            Ok(Some(EventFormat::parse(kfree).unwrap())),
        );
        f.insert(
            tracer_common::PROG_SOFTIRQ_ENTRY,
            Ok(Some(
                EventFormat::parse(include_str!(
                    "../../../tests/fixtures/formats/irq_softirq_entry.format"
                ))
                .unwrap(),
            )),
        );
        f
    }

    #[test]
    fn reason_names_fall_back_to_the_format_table_without_btf() {
        let f = formats(include_str!(
            "../../../tests/fixtures/formats/skb_kfree_skb.format"
        ));
        let mut notes = Vec::new();
        let names = names_from(None, &f, &mut notes);
        assert_eq!(names.drop_reasons_source, "tracefs format");
        assert_eq!(
            names.drop_reasons.get(&3).map(String::as_str),
            Some("NO_SOCKET")
        );
        assert_eq!(
            names.drop_reasons.get(&12).map(String::as_str),
            Some("NETFILTER_DROP")
        );
        assert_eq!(names.drop_reasons.len(), 127);
        assert_eq!(
            names.softirq_vectors.get(&3).map(String::as_str),
            Some("NET_RX")
        );
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn reset_reason_names_from_the_send_reset_format_without_btf() {
        let mut f = FormatResults::new();
        f.insert(
            tracer_common::PROG_TCP_SEND_RESET,
            Ok(Some(
                EventFormat::parse(include_str!(
                    "../../../tests/fixtures/formats/tcp_tcp_send_reset.format"
                ))
                .unwrap(),
            )),
        );
        let names = reset_reason_names(None, &f);
        assert_eq!(names.get(&1).map(String::as_str), Some("NO_SOCKET"));
        assert_eq!(
            names.get(&11).map(String::as_str),
            Some("TCP_ABORT_ON_CLOSE")
        );
        assert_eq!(names.len(), 26);
        assert!(reset_reason_names(None, &FormatResults::new()).is_empty());
    }

    #[test]
    fn btf_names_win_over_the_format_table() {
        let f = formats(include_str!(
            "../../../tests/fixtures/formats/skb_kfree_skb.format"
        ));
        let btf: std::collections::BTreeMap<u32, String> = [
            (3, "NO_SOCKET".to_owned()),
            (0, "SKB_NOT_DROPPED_YET".to_owned()),
        ]
        .into_iter()
        .collect();
        let names = names_from(Some(btf), &f, &mut Vec::new());
        assert_eq!(names.drop_reasons_source, "btf");
        assert_eq!(names.drop_reasons.len(), 2);
    }

    #[test]
    fn a_5_10_kernel_has_no_reason_names_and_says_so() {
        let f = formats(include_str!(
            "../../../tests/fixtures/formats/skb_kfree_skb_5.10.format"
        ));
        let mut notes = Vec::new();
        let names = names_from(None, &f, &mut notes);
        assert_eq!(names.drop_reasons_source, "none");
        assert!(names.drop_reasons.is_empty());
        assert!(notes.iter().any(|n| n.contains("by location")), "{notes:?}");
    }
}
