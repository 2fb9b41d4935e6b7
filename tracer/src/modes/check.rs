//! `tracer check`: what will work on this node and why not, one line per item with the fix.
//! Facts are gathered read-only by [`NodeFacts::gather`] (it never mounts, loads or attaches);
//! [`evaluate`] turns them into lines and is pure, so every verdict is unit-tested.

use std::path::Path;

use serde::Serialize;

use crate::{
    kernel::btf::KernelBtf,
    kernel::format::EventFormat,
    kernel::probes::{self, ProbeSpec},
};

/// Severity of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One line of the check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckLine {
    pub status: Status,
    pub item: String,
    pub detail: String,
    /// What to do about it (empty when nothing needs doing).
    pub fix: String,
}

/// What `check` looked at. Read-only.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub kernel: String,
    pub euid_root: bool,
    /// Effective capability bits (`CapEff` of /proc/self/status).
    pub cap_eff: u64,
    /// Where tracefs is mounted, if anywhere.
    pub tracefs: Option<String>,
    /// tracefs exists but this user may not read it.
    pub tracefs_denied: bool,
    /// Result of reading the kernel's BTF and the offsets the tracer needs from it.
    pub btf: Result<(), String>,
    /// Each probe's format: `Ok(Some)` present, `Ok(None)` absent, `Err` unreadable.
    pub formats: Vec<(ProbeSpec, Result<Option<EventFormat>, String>)>,
    pub kptr_restrict: Option<u32>,
    pub unprivileged_bpf_disabled: Option<u32>,
    /// Soft RLIMIT_MEMLOCK in bytes (None: unlimited).
    pub memlock: Option<u64>,
    pub kprobes: bool,
    /// Kernel symbols, read only when a tracepoint is missing and kprobes exist (to name the
    /// function a kprobe fallback would use); empty otherwise.
    pub symbols: crate::kernel::kallsyms::Kallsyms,
    pub bpf_stats_enabled: bool,
    pub lockdown: Option<String>,
    /// Each probe's `TP_PROTO` argument types from BTF, by tracepoint name (None: no BTF).
    pub prototypes: Option<std::collections::BTreeMap<String, Result<Vec<String>, String>>>,
    /// Socket offsets from BTF for the raw/BTF TCP programs, or why there are none.
    pub sock_offsets: Result<crate::kernel::btf::SockOffsets, String>,
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

impl NodeFacts {
    /// Reads the node. Never writes: tracefs is looked for, not mounted.
    pub fn gather() -> NodeFacts {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let cap_eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        let tracefs = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
            .into_iter()
            .find(|p| Path::new(p).join("events").is_dir())
            .map(str::to_owned);
        let tracefs_denied = tracefs.is_none()
            && ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
                .into_iter()
                .any(|p| {
                    std::fs::read_dir(p)
                        .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
                });
        let formats: Vec<(ProbeSpec, Result<Option<EventFormat>, String>)> = probes::PROBES
            .iter()
            .map(|spec| {
                let result = match &tracefs {
                    None if tracefs_denied => {
                        Err("tracefs is not readable by this user".to_owned())
                    }
                    None => Err("tracefs is not mounted".to_owned()),
                    Some(root) => {
                        let path = Path::new(root)
                            .join("events")
                            .join(spec.category)
                            .join(spec.name)
                            .join("format");
                        match std::fs::read_to_string(&path) {
                            Ok(text) => EventFormat::parse(&text)
                                .map(Some)
                                .map_err(|e| format!("{}: {e}", path.display())),
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                            Err(e) => Err(format!("{}: {e}", path.display())),
                        }
                    }
                };
                (*spec, result)
            })
            .collect();
        let kernel_btf = KernelBtf::load();
        let btf = kernel_btf
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .and_then(|b| b.netns_offsets().map(|_| ()))
            .map_err(|e| format!("{e:#}"));
        let prototypes = kernel_btf.as_ref().ok().map(|b| {
            probes::PROBES
                .iter()
                .map(|s| {
                    let args = b.tracepoint_args(s.name).map_err(|e| format!("{e:#}"));
                    (s.name.to_owned(), args)
                })
                .collect()
        });
        let sock_offsets = match &kernel_btf {
            Ok(b) => b.sock_offsets().map_err(|e| format!("{e:#}")),
            Err(_) => Err("no BTF".to_owned()),
        };
        let kprobes = crate::kernel::startup::KernelSources::host(Path::new(
            tracefs.as_deref().unwrap_or("/sys/kernel/tracing"),
        ))
        .kprobes();
        let symbols = if kprobes && formats.iter().any(|(_, f)| matches!(f, Ok(None))) {
            crate::kernel::kallsyms::Kallsyms::load().unwrap_or_default()
        } else {
            crate::kernel::kallsyms::Kallsyms::default()
        };
        use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
        let memlock = getrlimit(Resource::RLIMIT_MEMLOCK)
            .ok()
            .and_then(|(soft, _hard)| (soft != RLIM_INFINITY).then_some(soft));
        NodeFacts {
            kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
            euid_root: nix::unistd::geteuid().is_root(),
            cap_eff,
            tracefs,
            tracefs_denied,
            btf,
            formats,
            kptr_restrict: read_trimmed("/proc/sys/kernel/kptr_restrict")
                .and_then(|v| v.parse().ok()),
            unprivileged_bpf_disabled: read_trimmed("/proc/sys/kernel/unprivileged_bpf_disabled")
                .and_then(|v| v.parse().ok()),
            memlock,
            kprobes,
            symbols,
            bpf_stats_enabled: read_trimmed("/proc/sys/kernel/bpf_stats_enabled")
                .is_some_and(|v| v == "1"),
            prototypes,
            sock_offsets,
            lockdown: read_trimmed("/sys/kernel/security/lockdown"),
        }
    }
}

fn line(
    status: Status,
    item: &str,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> CheckLine {
    CheckLine {
        status,
        item: item.to_owned(),
        detail: detail.into(),
        fix: fix.into(),
    }
}

/// True when the release (`5.10.220-…`) is older than `major.minor`.
fn kernel_before(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let got = (
        parts.next().and_then(|p| p.parse::<u32>().ok()),
        parts.next().and_then(|p| p.parse::<u32>().ok()),
    );
    match got {
        (Some(a), Some(b)) => (a, b) < (major, minor),
        _ => false,
    }
}

/// This process's effective capability bits (`CapEff` of /proc/self/status; 0 if unreadable).
pub fn effective_capabilities() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// Why programs cannot be loaded with these effective capabilities, in one sentence (None when
/// they can: CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON).
pub fn load_capability_problem(cap_eff: u64) -> Option<String> {
    let has = |cap: u32| cap_eff & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return None;
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(cap, _)| !has(*cap))
        .map(|(_, name)| name)
        .collect();
    Some(format!(
        "loading eBPF programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN), and this \
         process lacks {} and CAP_SYS_ADMIN (CapEff {cap_eff:016x}): run it as root with full \
         capabilities, or give the pod the capabilities in deploy/daemonset.yaml",
        missing.join(" and ")
    ))
}

fn has_cap(facts: &NodeFacts, cap: u32) -> bool {
    facts.cap_eff & (1u64 << cap) != 0
}

/// The check's lines, in order.
pub fn evaluate(facts: &NodeFacts) -> Vec<CheckLine> {
    use Status::*;
    let mut out = Vec::new();

    out.push(line(Ok, "kernel", facts.kernel.clone(), ""));

    let caps = [
        ("CAP_BPF", CAP_BPF),
        ("CAP_PERFMON", CAP_PERFMON),
        ("CAP_SYS_ADMIN", CAP_SYS_ADMIN),
        ("CAP_NET_ADMIN", CAP_NET_ADMIN),
    ];
    let missing: Vec<&str> = caps
        .iter()
        .filter(|(_, c)| !has_cap(facts, *c))
        .map(|(n, _)| *n)
        .collect();
    if facts.euid_root && missing.is_empty() {
        out.push(line(
            Ok,
            "privileges",
            "root with CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAP_NET_ADMIN",
            "",
        ));
    } else {
        out.push(line(
            Fail,
            "privileges",
            format!(
                "{}; missing {}",
                if facts.euid_root { "root" } else { "not root" },
                if missing.is_empty() {
                    "nothing".to_owned()
                } else {
                    missing.join(", ")
                }
            ),
            "run tracer check as root with CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN), as the \
             tracer itself runs: sudo on the node, or a privileged pod / kubectl debug node/…",
        ));
    }
    // Without the right to read tracefs, the probes' formats and kprobes cannot be looked at:
    // said once, here, rather than as ten "not checked" lines and a false "no kprobes".
    if facts.tracefs_denied && facts.tracefs.is_none() {
        out.push(line(
            Warn,
            "not checked",
            format!(
                "without root: tracefs (present, readable only by root), the {} probes' \
                 formats, kprobes",
                facts.formats.len()
            ),
            "run tracer check as root to check them",
        ));
    }

    match &facts.lockdown {
        Some(l) if l.contains("[confidentiality]") => out.push(line(
            Fail,
            "kernel lockdown",
            l.clone(),
            "lockdown=confidentiality forbids reading kernel memory from BPF; boot without it",
        )),
        Some(l) if l.contains("[integrity]") => out.push(line(
            Warn,
            "kernel lockdown",
            l.clone(),
            "integrity lockdown allows tracing; if loading fails, check the kernel log",
        )),
        _ => {}
    }

    match &facts.tracefs {
        Some(root) => out.push(line(Ok, "tracefs", format!("mounted at {root}"), "")),
        // Said in the "not checked" line above.
        None if facts.tracefs_denied => {}
        None => out.push(line(
            Warn,
            "tracefs",
            "not mounted",
            "the tracer mounts it at /sys/kernel/tracing when it starts; or mount -t tracefs nodev /sys/kernel/tracing",
        )),
    }

    match &facts.btf {
        Result::Ok(()) => out.push(line(
            Ok,
            "BTF",
            "/sys/kernel/btf/vmlinux has the offsets the tracer needs",
            "",
        )),
        Err(e) => out.push(line(
            Warn,
            "BTF",
            format!("unusable ({e}): {}", crate::kernel::startup::BTF_OFF),
            "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every EKS-optimized AMI has it)",
        )),
    }

    let formats: &[(ProbeSpec, Result<Option<EventFormat>, String>)] = if facts.tracefs_denied {
        &[]
    } else {
        &facts.formats
    };
    for (spec, format) in formats {
        let item = format!("probe {}", spec.tracepoint());
        match format {
            Result::Ok(Some(f)) => {
                let plan = probes::plan(
                    |s| {
                        Result::Ok(if s.program == spec.program {
                            Some(f.clone())
                        } else {
                            None
                        })
                    },
                    None,
                );
                let mut plan = plan;
                let hook = planned_hook(facts, &mut plan, spec.program);
                match plan.ready.iter().find(|(s, _)| s.program == spec.program) {
                    Some((_, detail)) => {
                        let status = if detail.contains("location only") {
                            Warn
                        } else {
                            Ok
                        };
                        let detail = format!("available: {detail}; hook {hook}");
                        out.push(line(status, &item, detail, ""));
                    }
                    None => {
                        let why = plan
                            .not_ready
                            .iter()
                            .find(|s| s.program == spec.program)
                            .map_or_else(String::new, |s| s.detail.clone());
                        // Softirq entry/exit are planned as a pair: with only one format given,
                        // the plan refuses the other; a present format on its own is fine.
                        if why.contains("partner") {
                            out.push(line(Ok, &item, "available", ""));
                        } else {
                            out.push(line(
                                Fail,
                                &item,
                                format!("unusable: {why}"),
                                "report this kernel's format file to the tracer's maintainers",
                            ));
                        }
                    }
                }
            }
            Result::Ok(None) => {
                let detail = probes::missing_detail(spec, facts.kprobes, |f| {
                    facts.symbols.address_of(f).is_some()
                });
                let fix = if detail.contains("fallback: kprobe on") {
                    "the kprobe fallback is planned, not built: until then counters cover part of this signal"
                } else {
                    "this signal is unavailable here; counters still cover part of it"
                };
                // A warning: the other probes still attach and the tracer runs without this one.
                out.push(line(Warn, &item, detail, fix));
            }
            Err(e) => out.push(line(
                Warn,
                &item,
                format!("not checked: {e}"),
                "mount tracefs (the tracer does it at start) and run check again",
            )),
        }
    }

    match facts.kptr_restrict {
        Some(v) if v >= 2 => out.push(line(
            Warn,
            "kptr_restrict",
            format!(
                "{v}: kernel addresses hidden even from root; drop locations show as raw addresses"
            ),
            "sysctl kernel.kptr_restrict=1 (an operator decision; the tracer never changes it)",
        )),
        Some(v) => out.push(line(
            Ok,
            "kptr_restrict",
            format!("{v}: root can read kernel symbols"),
            "",
        )),
        None => {}
    }

    match facts.memlock {
        Some(bytes) if bytes < 64 << 20 && kernel_before(&facts.kernel, (5, 11)) => out.push(line(
            Warn,
            "memlock",
            format!(
                "RLIMIT_MEMLOCK {} KiB: kernels before 5.11 charge BPF maps to it",
                bytes / 1024
            ),
            "the tracer raises it when it starts (needs CAP_SYS_RESOURCE), or ulimit -l unlimited",
        )),
        Some(bytes) => out.push(line(
            Ok,
            "memlock",
            format!("RLIMIT_MEMLOCK {} KiB", bytes / 1024),
            "",
        )),
        None => out.push(line(Ok, "memlock", "RLIMIT_MEMLOCK unlimited", "")),
    }

    if !facts.tracefs_denied {
        out.push(line(
        Ok,
        "kprobes",
        if facts.kprobes {
            "available: a missing tracepoint is reported with the kernel function a kprobe would use (kprobe programs are not built yet)"
        } else {
            "not available on this kernel: tracepoints only"
        },
        "",
    ));
    }
    out.push(line(
        Ok,
        "bpf stats",
        if facts.bpf_stats_enabled {
            "kernel.bpf_stats_enabled=1: reports show runs and ns/run per program"
        } else if !kernel_before(&facts.kernel, (5, 8)) {
            "kernel.bpf_stats_enabled=0: the tracer times its own programs while it runs \
             (BPF_ENABLE_STATS, kernel >= 5.8; the sysctl stays 0): reports show runs and ns/run \
             per program"
        } else {
            "kernel.bpf_stats_enabled=0: the programs' runs and ns/run are unknown (reports show \
             the events the programs counted); sysctl kernel.bpf_stats_enabled=1 measures them"
        },
        "",
    ));
    out
}

/// The lines as text, one per item.
pub fn render(lines: &[CheckLine]) -> String {
    let mut out = String::new();
    for l in lines {
        let tag = match l.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        out.push_str(&format!("{tag}  {:<34} {}", l.item, l.detail));
        if !l.fix.is_empty() {
            out.push_str(&format!(" — fix: {}", l.fix));
        }
        out.push('\n');
    }
    out
}

/// The hook the tracer would choose for a probe on this node (`TRACER_HOOK` included), from
/// the BTF prototypes and socket offsets read at gathering.
fn planned_hook(facts: &NodeFacts, plan: &mut probes::Plan, program: &str) -> String {
    let btf_args = |event: &str| match facts.prototypes.as_ref().and_then(|p| p.get(event)) {
        Some(Ok(args)) => Ok(args.clone()),
        Some(Err(e)) => Err(anyhow::anyhow!("{e}")),
        None => Err(anyhow::anyhow!("no BTF")),
    };
    plan.choose_hooks(&crate::kernel::hooks::HookFacts {
        btf_args: facts
            .prototypes
            .as_ref()
            .map(|_| &btf_args as crate::kernel::hooks::PrototypeLookup),
        sock: facts.sock_offsets.clone(),
        forced: std::env::var(probes::HOOK_VAR)
            .ok()
            .and_then(|v| probes::HookKind::parse(&v)),
    });
    plan.hook_of(program).reason
}
#[cfg(test)]
mod tests {
    use super::*;

    fn format(file: &str) -> EventFormat {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/formats")
                .join(file),
        )
        .expect("fixture");
        EventFormat::parse(&text).expect("parses")
    }

    fn healthy() -> NodeFacts {
        let files = [
            "skb_kfree_skb.format",
            "tcp_tcp_retransmit_skb.format",
            "tcp_tcp_retransmit_synack.format",
            "irq_softirq_entry.format",
            "irq_softirq_exit.format",
            "tcp_tcp_probe.format",
            "sock_inet_sock_set_state.format",
            "tcp_tcp_send_reset.format",
            "tcp_tcp_receive_reset.format",
            "sock_inet_sk_error_report.format",
        ];
        assert_eq!(files.len(), probes::PROBES.len(), "one format per probe");
        NodeFacts {
            kernel: "6.18.44".to_owned(),
            euid_root: true,
            cap_eff: u64::MAX >> 23,
            tracefs: Some("/sys/kernel/tracing".to_owned()),
            tracefs_denied: false,
            btf: Ok(()),
            formats: probes::PROBES
                .iter()
                .zip(files)
                .map(|(spec, file)| (*spec, Ok(Some(format(file)))))
                .collect(),
            kptr_restrict: Some(0),
            unprivileged_bpf_disabled: Some(2),
            memlock: None,
            kprobes: false,
            symbols: crate::kernel::kallsyms::Kallsyms::default(),
            bpf_stats_enabled: false,
            lockdown: Some("[none] integrity confidentiality".to_owned()),
            prototypes: None,
            sock_offsets: Err("no BTF".to_owned()),
        }
    }

    fn status_of(lines: &[CheckLine], item: &str) -> Status {
        lines
            .iter()
            .find(|l| l.item == item)
            .unwrap_or_else(|| panic!("no line for {item}"))
            .status
    }

    #[test]
    fn kernel_versions_compare_numerically() {
        assert!(kernel_before("5.10.220-209.869.amzn2.x86_64", (5, 11)));
        assert!(kernel_before("5.4.0", (5, 11)));
        assert!(!kernel_before("6.1.0", (5, 11)));
        assert!(!kernel_before("5.11.0", (5, 11)));
        assert!(!kernel_before("garbage", (5, 11)));
    }

    #[test]
    fn a_healthy_node_has_no_failures() {
        let lines = evaluate(&healthy());
        assert!(
            lines.iter().all(|l| l.status != Status::Fail),
            "{}",
            render(&lines)
        );
        assert_eq!(status_of(&lines, "probe skb:kfree_skb"), Status::Ok);
        assert_eq!(status_of(&lines, "probe irq:softirq_exit"), Status::Ok);
        assert_eq!(status_of(&lines, "probe tcp:tcp_probe"), Status::Ok);
        assert_eq!(
            status_of(&lines, "probe sock:inet_sk_error_report"),
            Status::Ok
        );
        assert!(render(&lines).contains("ok    kernel"));
    }

    #[test]
    fn not_root_fails_with_the_fix() {
        let mut facts = healthy();
        facts.euid_root = false;
        facts.cap_eff = 0;
        let lines = evaluate(&facts);
        let p = lines.iter().find(|l| l.item == "privileges").expect("line");
        assert_eq!(p.status, Status::Fail);
        assert!(p
            .detail
            .contains("missing CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAP_NET_ADMIN"));
        assert!(p.fix.contains("root"));
    }

    /// Issue 14 item 14: as a user who may not read tracefs, one failure says check must run as
    /// root, one line names what could not be checked because of it; nothing claims tracefs
    /// is not mounted or that kprobes are missing.
    #[test]
    fn not_root_says_once_what_it_could_not_check() {
        let mut facts = healthy();
        facts.euid_root = false;
        facts.cap_eff = 0;
        facts.tracefs = None;
        facts.tracefs_denied = true;
        facts.kprobes = false;
        facts.lockdown = None;
        for (_, format) in &mut facts.formats {
            *format = Err("tracefs is not readable by this user".to_owned());
        }
        let lines = evaluate(&facts);
        let text = render(&lines);
        let failures: Vec<&CheckLine> = lines.iter().filter(|l| l.status == Status::Fail).collect();
        assert_eq!(failures.len(), 1, "{text}");
        assert_eq!(failures[0].item, "privileges");
        assert!(
            failures[0].fix.contains("run tracer check as root")
                && failures[0].fix.contains("CAP_BPF and CAP_PERFMON"),
            "{text}"
        );
        assert!(!text.contains("not mounted"), "{text}");
        assert!(!text.contains("probe skb:kfree_skb"), "{text}");
        assert!(!text.contains("kprobes  "), "{text}");
        assert_eq!(text.matches("not checked").count(), 1, "{text}");
        let unchecked = lines
            .iter()
            .find(|l| l.item == "not checked")
            .expect("a not-checked line");
        assert_eq!(unchecked.status, Status::Warn);
        assert!(
            unchecked.detail.contains("tracefs")
                && unchecked.detail.contains("the 10 probes' formats")
                && unchecked.detail.contains("kprobes"),
            "{}",
            unchecked.detail
        );
        // What needs no root is still said.
        assert_eq!(status_of(&lines, "BTF"), Status::Ok);
        assert_eq!(status_of(&lines, "kptr_restrict"), Status::Ok);
    }

    #[test]
    fn bpf_stats_off_says_run_counts_and_times_are_unknown_never_that_reports_show_them() {
        let mut facts = healthy();
        facts.bpf_stats_enabled = false;
        facts.kernel = "5.4.0".to_owned();
        let off = evaluate(&facts);
        let line = off.iter().find(|l| l.item == "bpf stats").expect("line");
        assert_eq!(line.status, Status::Ok);
        assert!(
            !line.detail.contains("reports show run counts"),
            "{}",
            line.detail
        );
        assert!(
            line.detail.contains("kernel.bpf_stats_enabled=0")
                && line.detail.contains("unknown")
                && line.detail.contains("events"),
            "{}",
            line.detail
        );
        // From 5.8 the tracer holds its own BPF_ENABLE_STATS descriptor: timed, sysctl untouched.
        facts.kernel = "5.8.0".to_owned();
        let held = evaluate(&facts);
        let line = held.iter().find(|l| l.item == "bpf stats").expect("line");
        assert!(
            line.detail.contains("BPF_ENABLE_STATS") && line.detail.contains("runs and ns/run"),
            "{}",
            line.detail
        );
        facts.bpf_stats_enabled = true;
        let on = evaluate(&facts);
        let line = on.iter().find(|l| l.item == "bpf stats").expect("line");
        assert!(line.detail.contains("runs and ns/run"), "{}", line.detail);
    }

    #[test]
    fn a_5_10_kernel_warns_about_location_only_drops_and_memlock() {
        let mut facts = healthy();
        facts.kernel = "5.10.220-209.869.amzn2.x86_64".to_owned();
        facts.formats[0].1 = Ok(Some(format("skb_kfree_skb_5.10.format")));
        facts.memlock = Some(64 * 1024);
        let lines = evaluate(&facts);
        assert_eq!(status_of(&lines, "probe skb:kfree_skb"), Status::Warn);
        assert_eq!(status_of(&lines, "memlock"), Status::Warn);
    }

    #[test]
    fn missing_tracepoints_btf_and_hidden_symbols_are_each_said() {
        let mut facts = healthy();
        facts.formats[2].1 = Ok(None);
        facts.btf = Err("no such file".to_owned());
        facts.kptr_restrict = Some(2);
        facts.tracefs = None;
        facts.lockdown = Some("none integrity [confidentiality]".to_owned());
        let lines = evaluate(&facts);
        assert_eq!(
            status_of(&lines, "probe tcp:tcp_retransmit_synack"),
            Status::Warn
        );
        assert_eq!(status_of(&lines, "BTF"), Status::Warn);
        assert_eq!(status_of(&lines, "kptr_restrict"), Status::Warn);
        assert_eq!(status_of(&lines, "tracefs"), Status::Warn);
        assert_eq!(status_of(&lines, "kernel lockdown"), Status::Fail);
        let text = render(&lines);
        assert!(
            text.contains("warn  probe tcp:tcp_retransmit_synack"),
            "{text}"
        );
        assert!(text.contains("— fix:"), "{text}");
    }
}

/// Property tests of the kernel release comparison: any text, and releases as distributions
/// write them.
#[cfg(test)]
mod prop_tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testkit::mutations::config;

    proptest! {
        #![proptest_config(config(256))]

        /// Releases that start `MAJOR.MINOR` compare by those two numbers, whatever follows.
        #[test]
        fn releases_compare_numerically(
            major in any::<u32>(),
            minor in any::<u32>(),
            rest in prop_oneof![Just(String::new()), "\\.[0-9]{1,4}(-[0-9]{1,4}\\.amzn2\\.x86_64)?", "-[a-z0-9+~.-]{0,12}"],
            want in (0u32..10, 0u32..30),
        ) {
            let release = format!("{major}.{minor}{rest}");
            prop_assert_eq!(kernel_before(&release, want), (major, minor) < want);
        }

        /// Anything else: no panic; a text whose first two numbers do not parse as u32 is never
        /// "older".
        #[test]
        fn any_text(text in "\\PC{0,40}") {
            let older = kernel_before(&text, (5, 10));
            let mut parts = text.split(|c: char| !c.is_ascii_digit());
            let first = parts.next().and_then(|p| p.parse::<u32>().ok());
            let second = parts.next().and_then(|p| p.parse::<u32>().ok());
            if first.is_none() || second.is_none() {
                prop_assert!(!older);
            }
        }
    }

    #[test]
    fn huge_and_garbled_releases_are_not_older() {
        assert!(!kernel_before("99999999999.1", (5, 10)));
        assert!(!kernel_before("", (5, 10)));
        assert!(!kernel_before("-5.4", (5, 10)));
        assert!(kernel_before("4.19.0-x", (5, 10)));
    }
}

#[cfg(test)]
mod capability_tests {
    use super::*;

    #[test]
    fn loading_needs_sys_admin_or_bpf_with_perfmon_and_says_which_is_missing() {
        let bit = |c: u32| 1u64 << c;
        assert_eq!(load_capability_problem(bit(CAP_SYS_ADMIN)), None);
        assert_eq!(
            load_capability_problem(bit(CAP_BPF) | bit(CAP_PERFMON)),
            None
        );
        let none = load_capability_problem(0).expect("nothing is not enough");
        assert!(
            none.contains("lacks CAP_BPF and CAP_PERFMON and CAP_SYS_ADMIN"),
            "{none}"
        );
        let half = load_capability_problem(bit(CAP_BPF) | bit(CAP_NET_ADMIN)).expect("half");
        assert!(
            half.contains("lacks CAP_PERFMON and CAP_SYS_ADMIN"),
            "{half}"
        );
        assert!(!half.contains('\n'), "one sentence");
    }
}

/// `tracer check` on the kernels recorded under tests/fixtures/kernels/ (no BTF on any of them).
#[cfg(test)]
mod recorded_kernel_tests {
    use super::*;
    use crate::{kernel::kallsyms::Kallsyms, kernel::tracefs::Tracefs};

    fn kernel_dir(version: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/kernels")
            .join(version)
    }

    /// A root node running that kernel: its formats and symbols, no BTF file, kprobes.
    fn node(version: &str, release: &str) -> NodeFacts {
        let dir = kernel_dir(version);
        let tracefs = Tracefs {
            root: dir.join("tracing"),
            mounted_by_tracer: false,
        };
        NodeFacts {
            kernel: release.to_owned(),
            euid_root: true,
            cap_eff: u64::MAX >> 23,
            tracefs: Some(tracefs.root.display().to_string()),
            tracefs_denied: false,
            btf: KernelBtf::from_file(dir.join("btf/vmlinux"))
                .map(|_| ())
                .map_err(|e| format!("{e:#}")),
            formats: probes::PROBES
                .iter()
                .map(|spec| {
                    (
                        *spec,
                        tracefs
                            .event_format(spec.category, spec.name)
                            .map_err(|e| format!("{e:#}")),
                    )
                })
                .collect(),
            kptr_restrict: Some(1),
            unprivileged_bpf_disabled: Some(2),
            memlock: None,
            kprobes: dir.join("tracing/kprobe_events").exists(),
            symbols: Kallsyms::load_from(&dir.join("kallsyms")).expect("kallsyms fixture"),
            bpf_stats_enabled: false,
            lockdown: None,
            prototypes: None,
            sock_offsets: Err("no BTF".to_owned()),
        }
    }

    fn find<'a>(lines: &'a [CheckLine], item: &str) -> &'a CheckLine {
        lines
            .iter()
            .find(|l| l.item == item)
            .unwrap_or_else(|| panic!("no line for {item}"))
    }

    #[test]
    fn no_btf_is_a_warning_that_names_what_is_off_never_a_failure() {
        for (version, release, kfree) in [
            ("5.10", "5.10.220-209.869.amzn2.x86_64", Status::Warn),
            ("5.15", "5.15.0-119-generic", Status::Ok),
            ("6.1", "6.1.109-118.189.amzn2023.x86_64", Status::Ok),
        ] {
            let lines = evaluate(&node(version, release));
            let text = render(&lines);
            assert!(lines.iter().all(|l| l.status != Status::Fail), "{text}");
            let btf = find(&lines, "BTF");
            assert_eq!(btf.status, Status::Warn, "{text}");
            assert!(btf.detail.contains("btf/vmlinux"), "{}", btf.detail);
            assert!(
                btf.detail.contains("namespace/pod attribution")
                    && btf.detail.contains("tcp_gso_segs"),
                "{}",
                btf.detail
            );
            assert_eq!(find(&lines, "probe skb:kfree_skb").status, kfree, "{text}");
            assert_eq!(
                find(&lines, "probe tcp:tcp_retransmit_skb").status,
                Status::Ok,
                "{text}"
            );
        }
    }

    #[test]
    fn a_missing_tracepoint_names_the_kprobe_fallback_or_says_there_are_no_kprobes() {
        let mut facts = node("5.10", "5.10.220-209.869.amzn2.x86_64");
        let synack = facts
            .formats
            .iter()
            .position(|(s, _)| s.name == "tcp_retransmit_synack")
            .expect("synack probe");
        facts.formats[synack].1 = Ok(None);
        let lines = evaluate(&facts);
        let l = find(&lines, "probe tcp:tcp_retransmit_synack");
        // The tracer still runs without it: a warning, and `tracer check` exits 0.
        assert_eq!(l.status, Status::Warn);
        assert!(
            lines.iter().all(|l| l.status != Status::Fail),
            "{}",
            render(&lines)
        );
        assert!(
            l.detail
                .starts_with("missing: no such tracepoint; fallback: kprobe on tcp_rtx_synack"),
            "{}",
            l.detail
        );
        assert!(l.fix.contains("planned, not built"), "{}", l.fix);

        facts.kprobes = false;
        let lines = evaluate(&facts);
        let l = find(&lines, "probe tcp:tcp_retransmit_synack");
        assert_eq!(l.detail, probes::NO_KPROBES);
        assert!(find(&lines, "kprobes")
            .detail
            .starts_with("not available on this kernel"));
    }
}
