//! Which tracepoints the tracer wants, and the plan for this kernel: the offsets each program
//! gets (from the event's `format`), which probes can attach, and why the others cannot.
//! Pure: it takes parsed formats and BTF offsets and never touches the kernel itself.

use serde::Serialize;
use tracer_common::{
    TracerConfig, ABSENT, PROG_INET_SK_ERROR_REPORT, PROG_INET_SOCK_SET_STATE, PROG_KFREE_SKB,
    PROG_SOFTIRQ_ENTRY, PROG_SOFTIRQ_EXIT, PROG_TCP_PROBE, PROG_TCP_RECEIVE_RESET,
    PROG_TCP_RETRANSMIT_SKB, PROG_TCP_RETRANSMIT_SYNACK, PROG_TCP_SEND_RESET,
};

use crate::{kernel::btf::NetnsOffsets, kernel::format::EventFormat};

/// One tracepoint and the program that counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSpec {
    pub category: &'static str,
    pub name: &'static str,
    pub program: &'static str,
}

impl ProbeSpec {
    /// `category:name`, as `perf list` prints it.
    pub fn tracepoint(&self) -> String {
        format!("{}:{}", self.category, self.name)
    }
}

/// Every probe the tracer attaches, in attach order.
pub const PROBES: [ProbeSpec; 10] = [
    ProbeSpec {
        category: "skb",
        name: "kfree_skb",
        program: PROG_KFREE_SKB,
    },
    ProbeSpec {
        category: "tcp",
        name: "tcp_retransmit_skb",
        program: PROG_TCP_RETRANSMIT_SKB,
    },
    ProbeSpec {
        category: "tcp",
        name: "tcp_retransmit_synack",
        program: PROG_TCP_RETRANSMIT_SYNACK,
    },
    ProbeSpec {
        category: "irq",
        name: "softirq_entry",
        program: PROG_SOFTIRQ_ENTRY,
    },
    ProbeSpec {
        category: "irq",
        name: "softirq_exit",
        program: PROG_SOFTIRQ_EXIT,
    },
    ProbeSpec {
        category: "tcp",
        name: "tcp_probe",
        program: PROG_TCP_PROBE,
    },
    ProbeSpec {
        category: "sock",
        name: "inet_sock_set_state",
        program: PROG_INET_SOCK_SET_STATE,
    },
    ProbeSpec {
        category: "tcp",
        name: "tcp_send_reset",
        program: PROG_TCP_SEND_RESET,
    },
    ProbeSpec {
        category: "tcp",
        name: "tcp_receive_reset",
        program: PROG_TCP_RECEIVE_RESET,
    },
    ProbeSpec {
        category: "sock",
        name: "inet_sk_error_report",
        program: PROG_INET_SK_ERROR_REPORT,
    },
];

/// Size of the `sockaddr` fields of `tcp_probe` and (since 6.10) `tcp_send_reset`:
/// `sizeof(struct sockaddr_in6)`.
const SOCKADDR_FIELD: u32 = 28;

/// The number of a `__print_symbolic` name in the format's own table, or the ABI value when
/// the table does not list it.
fn symbol_value(format: &EventFormat, field: &str, name: &str, abi: u32) -> u32 {
    format
        .symbolic_values(field)
        .into_iter()
        .find(|(_, n)| n == name)
        .and_then(|(v, _)| u32::try_from(v).ok())
        .unwrap_or(abi)
}

/// What became of one probe.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ProbeState {
    /// Attached and counting.
    Attached,
    /// The kernel has no such tracepoint.
    Missing,
    /// The tracepoint exists but could not be used (format unreadable, field missing, load or
    /// attach refused).
    Failed,
}

/// A probe's outcome, as shown in every report.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ProbeStatus {
    pub tracepoint: String,
    pub program: String,
    pub state: ProbeState,
    /// What it reads on this kernel, or why it is not attached.
    pub detail: String,
    /// Time to load and attach this program, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach_ms: Option<f64>,
    /// The kind of hook the program is attached with (absent when not attached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<HookKind>,
    /// Why this hook and not a cheaper one, e.g. "raw_tp: no BTF" (absent when not attached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_reason: Option<String>,
}

/// How a program is hooked to its tracepoint, cheapest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// BTF tracepoint: the arguments, typed by the kernel's BTF (kernel ≥ 5.5 with BTF).
    TpBtf,
    /// Raw tracepoint: the arguments, untyped (kernel ≥ 4.17).
    RawTp,
    /// Classic tracepoint: the trace record the kernel builds first (slowest).
    Tracepoint,
}

impl HookKind {
    /// The name used in reports and in `TRACER_HOOK`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::TpBtf => "tp_btf",
            HookKind::RawTp => "raw_tp",
            HookKind::Tracepoint => "tracepoint",
        }
    }

    /// Parses a name as [`HookKind::as_str`] writes it.
    pub fn parse(name: &str) -> Option<HookKind> {
        [HookKind::TpBtf, HookKind::RawTp, HookKind::Tracepoint]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// The hidden switch that forces every probe onto one hook kind (for tests).
pub const HOOK_VAR: &str = "TRACER_HOOK";

/// The hidden switch that turns softirq sampling off (`off`: every run timed), for tests and
/// measurements.
pub const SOFTIRQ_SAMPLING_VAR: &str = "TRACER_SOFTIRQ_SAMPLING";

/// The hidden switch that makes the programs count their own runs (`programs`) even where the
/// kernel counts them (run-time statistics held), for tests that compare both sources.
pub const RUN_COUNTS_VAR: &str = "TRACER_RUN_COUNTS";

/// The hook a probe is planned on and why not a cheaper one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookChoice {
    pub kind: HookKind,
    pub reason: String,
}

/// The plan for this kernel.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Each ready probe's hook, by program name (a probe not listed uses its tracepoint).
    pub hooks: std::collections::BTreeMap<&'static str, HookChoice>,
    pub config: TracerConfig,
    /// Probes whose formats were understood, with what each will read.
    pub ready: Vec<(ProbeSpec, String)>,
    /// Probes that will not be attached, and why.
    pub not_ready: Vec<ProbeStatus>,
    /// The kernel BTF's type id of `btf_trace_<event>`, by tracepoint name, for each probe planned
    /// on a BTF tracepoint (filled by start-up; the loader parses the whole BTF for one missing).
    pub btf_trace_ids: std::collections::BTreeMap<&'static str, u32>,
    /// The programs count their own runs whatever the loader finds ([`RUN_COUNTS_VAR`]); when
    /// false the loader has them count only where the kernel does not (no run-time statistics).
    pub programs_count_runs: bool,
    /// The running kernel's release as (major, minor), from `/proc/sys/kernel/osrelease` (or
    /// the emulated kernel's); None when unknown. Says whether a program's runs may nest
    /// ([`crate::kernel::hooks::runs_may_nest`]).
    pub kernel_release: Option<(u32, u32)>,
}

fn offsets_for(
    spec: &ProbeSpec,
    format: &EventFormat,
    config: &mut TracerConfig,
) -> Result<String, crate::kernel::format::FormatError> {
    match spec.program {
        PROG_KFREE_SKB => {
            config.kfree_skbaddr = format.require("skbaddr", &[8])?;
            config.kfree_location = format.require("location", &[8])?;
            let reason = format.optional("reason", &[4])?;
            config.kfree_rx_sk = format
                .optional("rx_sk", &[8])?
                .unwrap_or(tracer_common::ABSENT);
            config.kfree_reason = reason.unwrap_or(tracer_common::ABSENT);
            Ok(match reason {
                Some(off) => format!("drop reason at offset {off}"),
                None => {
                    "no drop-reason field on this kernel: drops are attributed by location only"
                        .to_owned()
                }
            })
        }
        PROG_TCP_RETRANSMIT_SKB => {
            config.rtx_skbaddr = format.require("skbaddr", &[8])?;
            config.rtx_skaddr = format.require("skaddr", &[8])?;
            config.rtx_state = format.require("state", &[4])?;
            config.rtx_sport = format.require("sport", &[2])?;
            config.rtx_dport = format.require("dport", &[2])?;
            config.rtx_saddr = format.require("saddr", &[4])?;
            config.rtx_daddr = format.require("daddr", &[4])?;
            config.rtx_saddr_v6 = format.require("saddr_v6", &[16])?;
            config.rtx_daddr_v6 = format.require("daddr_v6", &[16])?;
            let family = format.optional("family", &[2])?;
            let err = format.optional("err", &[4])?;
            config.rtx_family = family.unwrap_or(tracer_common::ABSENT);
            config.rtx_err = err.unwrap_or(tracer_common::ABSENT);
            Ok(format!(
                "{}; {}",
                if err.is_some() {
                    "counts err == 0 only (failed attempts apart)"
                } else {
                    "no err field: every event counted as a retransmission"
                },
                if family.is_some() {
                    "family from the record"
                } else {
                    "no family field: IPv4 told by v4-mapped address"
                }
            ))
        }
        PROG_TCP_RETRANSMIT_SYNACK => {
            config.synack_skaddr = format.require("skaddr", &[8])?;
            config.synack_sport = format.require("sport", &[2])?;
            config.synack_dport = format.require("dport", &[2])?;
            config.synack_saddr = format.require("saddr", &[4])?;
            config.synack_daddr = format.require("daddr", &[4])?;
            config.synack_saddr_v6 = format.require("saddr_v6", &[16])?;
            config.synack_daddr_v6 = format.require("daddr_v6", &[16])?;
            config.synack_family = format
                .optional("family", &[2])?
                .unwrap_or(tracer_common::ABSENT);
            Ok("SYN-ACK retransmits per flow".to_owned())
        }
        PROG_SOFTIRQ_ENTRY => {
            config.softirq_entry_vec = format.require("vec", &[4])?;
            // Time only the networking vectors, numbered by this kernel's own table.
            config.softirq_vec_mask = format
                .symbolic_values("vec")
                .iter()
                .filter(|(v, name)| (name == "NET_RX" || name == "NET_TX") && *v < 32)
                .fold(0u32, |mask, (v, _)| mask | (1 << v));
            Ok(format!(
                "softirq runs per CPU (every run counted; the clock read on a sample of runs \
                 where a CPU runs a vector more often than every {} µs)",
                tracer_common::SOFTIRQ_SAMPLE_NEAR_NS / 1000
            ))
        }
        PROG_SOFTIRQ_EXIT => {
            config.softirq_exit_vec = format.require("vec", &[4])?;
            Ok("softirq run time per CPU and vector".to_owned())
        }
        PROG_TCP_PROBE => {
            config.probe_daddr_sa = format.require("daddr", &[SOCKADDR_FIELD])?;
            // The local end: a server's sockets count under their listening port.
            config.probe_saddr_sa = format
                .optional("saddr", &[SOCKADDR_FIELD])?
                .unwrap_or(ABSENT);
            config.probe_srtt = format.require("srtt", &[4])?;
            // `skaddr` came in 6.10: before it there is no socket to find the namespace from.
            let skaddr = format.optional("skaddr", &[8])?;
            config.probe_skaddr = skaddr.unwrap_or(ABSENT);
            Ok(if skaddr.is_some() {
                "smoothed RTT (srtt, µs) per received segment, histogram per destination".to_owned()
            } else {
                "smoothed RTT per destination; no skaddr field before 6.10: RTT counts in \
                 namespace 0"
                    .to_owned()
            })
        }
        PROG_INET_SOCK_SET_STATE => {
            config.ss_skaddr = format.require("skaddr", &[8])?;
            config.ss_oldstate = format.require("oldstate", &[4])?;
            config.ss_newstate = format.require("newstate", &[4])?;
            config.ss_sport = format.require("sport", &[2])?;
            config.ss_dport = format.require("dport", &[2])?;
            config.ss_daddr = format.require("daddr", &[4])?;
            config.ss_daddr_v6 = format.require("daddr_v6", &[16])?;
            config.ss_family = format.optional("family", &[2])?.unwrap_or(ABSENT);
            let protocol = format.optional("protocol", &[2])?;
            config.ss_protocol = protocol.unwrap_or(ABSENT);
            if protocol.is_some() {
                config.ipproto_tcp = symbol_value(format, "protocol", "IPPROTO_TCP", 6);
            }
            config.tcp_established = symbol_value(format, "newstate", "TCP_ESTABLISHED", 1);
            config.tcp_syn_sent = symbol_value(format, "newstate", "TCP_SYN_SENT", 2);
            config.tcp_close = symbol_value(format, "newstate", "TCP_CLOSE", 7);
            config.tcp_listen = symbol_value(format, "newstate", "TCP_LISTEN", 10);
            Ok(
                "connects, failures from SYN_SENT, closes and connect time per destination"
                    .to_owned(),
            )
        }
        PROG_TCP_SEND_RESET => {
            config.rst_tx_skbaddr = format.require("skbaddr", &[8])?;
            config.rst_tx_skaddr = format.require("skaddr", &[8])?;
            let reason = format.optional("reason", &[4])?;
            config.rst_tx_reason = reason.unwrap_or(ABSENT);
            if format
                .field("saddr")
                .is_some_and(|f| f.size == SOCKADDR_FIELD)
            {
                config.rst_tx_saddr_sa = format.require("saddr", &[SOCKADDR_FIELD])?;
                config.rst_tx_daddr_sa = format.require("daddr", &[SOCKADDR_FIELD])?;
            } else {
                config.rst_tx_sport = format.require("sport", &[2])?;
                config.rst_tx_dport = format.require("dport", &[2])?;
                config.rst_tx_saddr = format.require("saddr", &[4])?;
                config.rst_tx_daddr = format.require("daddr", &[4])?;
                config.rst_tx_saddr_v6 = format.require("saddr_v6", &[16])?;
                config.rst_tx_daddr_v6 = format.require("daddr_v6", &[16])?;
                config.rst_tx_family = format.optional("family", &[2])?.unwrap_or(ABSENT);
            }
            Ok(if reason.is_some() {
                "resets sent per flow, with the kernel's reason".to_owned()
            } else {
                "resets sent per flow (no reason field on this kernel)".to_owned()
            })
        }
        PROG_TCP_RECEIVE_RESET => {
            config.rst_rx_skaddr = format.require("skaddr", &[8])?;
            config.rst_rx_sport = format.require("sport", &[2])?;
            config.rst_rx_dport = format.require("dport", &[2])?;
            config.rst_rx_saddr = format.require("saddr", &[4])?;
            config.rst_rx_daddr = format.require("daddr", &[4])?;
            config.rst_rx_saddr_v6 = format.require("saddr_v6", &[16])?;
            config.rst_rx_daddr_v6 = format.require("daddr_v6", &[16])?;
            config.rst_rx_family = format.optional("family", &[2])?.unwrap_or(ABSENT);
            Ok("resets received per flow".to_owned())
        }
        PROG_INET_SK_ERROR_REPORT => {
            config.err_error = format.require("error", &[4])?;
            config.err_sport = format.require("sport", &[2])?;
            config.err_dport = format.require("dport", &[2])?;
            config.err_daddr = format.require("daddr", &[4])?;
            config.err_daddr_v6 = format.require("daddr_v6", &[16])?;
            config.err_family = format.optional("family", &[2])?.unwrap_or(ABSENT);
            config.err_protocol = format.require("protocol", &[2])?;
            config.ipproto_tcp = symbol_value(format, "protocol", "IPPROTO_TCP", 6);
            Ok("socket errors per destination (namespace from the close just before)".to_owned())
        }
        _ => Ok(String::new()),
    }
}

/// `/proc/sys/net/ipv4/ip_local_port_range` (`32768\t60999`) packed for the kernel programs
/// ([`tracer_common::pack_port_range`]); 0 (unknown: every socket keyed by its remote end) when
/// unreadable or odd.
pub fn ephemeral_ports(text: &str) -> u32 {
    let mut ports = text.split_whitespace().map(str::parse::<u16>);
    match (ports.next(), ports.next(), ports.next()) {
        (Some(Ok(low)), Some(Ok(high)), None) if 0 < low && low <= high => {
            tracer_common::pack_port_range(low, high)
        }
        _ => 0,
    }
}

/// This host's [`ephemeral_ports`] (0 when the range cannot be read).
pub fn host_ephemeral_ports() -> u32 {
    ephemeral_ports(
        &std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default(),
    )
}

/// Builds the plan from each probe's format (`Ok(None)`: the kernel lacks the tracepoint;
/// `Err`: it could not be read) and the BTF offsets (None: no namespace attribution).
pub fn plan(
    formats: impl Fn(&ProbeSpec) -> anyhow::Result<Option<EventFormat>>,
    netns: Option<NetnsOffsets>,
) -> Plan {
    let mut config = TracerConfig::absent();
    if let Some(o) = netns {
        config.skb_dev = o.skb_dev;
        config.skb_sk = o.skb_sk;
        config.dev_net = o.dev_net;
        config.sk_net = o.sk_net;
        config.net_inum = o.net_inum;
        config.skb_tcp_segs = o.skb_tcp_segs.unwrap_or(tracer_common::ABSENT);
    }
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for spec in PROBES {
        let status = |state, detail: String| ProbeStatus {
            tracepoint: spec.tracepoint(),
            program: spec.program.to_owned(),
            state,
            detail,
            attach_ms: None,
            hook: None,
            hook_reason: None,
        };
        match formats(&spec) {
            Ok(Some(format)) => match offsets_for(&spec, &format, &mut config) {
                Ok(detail) => ready.push((spec, detail)),
                Err(e) => not_ready.push(status(
                    ProbeState::Failed,
                    format!("its format is not one the tracer can read: {e}"),
                )),
            },
            Ok(None) => not_ready.push(status(
                ProbeState::Missing,
                "this kernel has no such tracepoint".to_owned(),
            )),
            Err(e) => not_ready.push(status(ProbeState::Failed, format!("{e:#}"))),
        }
    }
    // Softirq time needs both halves.
    let has = |p: &str| ready.iter().any(|(s, _)| s.program == p);
    if has(PROG_SOFTIRQ_ENTRY) != has(PROG_SOFTIRQ_EXIT) {
        let (keep, dropped): (Vec<_>, Vec<_>) =
            ready.into_iter().partition(|(s, _)| s.category != "irq");
        for (spec, _) in dropped {
            not_ready.push(ProbeStatus {
                tracepoint: spec.tracepoint(),
                program: spec.program.to_owned(),
                state: ProbeState::Failed,
                detail:
                    "its partner softirq tracepoint is unusable, so run time cannot be measured"
                        .to_owned(),
                attach_ms: None,
                hook: None,
                hook_reason: None,
            });
        }
        ready = keep;
    }
    Plan {
        hooks: std::collections::BTreeMap::new(),
        config,
        ready,
        not_ready,
        btf_trace_ids: std::collections::BTreeMap::new(),
        programs_count_runs: false,
        kernel_release: None,
    }
}

/// Kernel functions that emit the same event as a tracepoint, where a kprobe could stand in
/// for it on a kernel that lacks the tracepoint (the first one in kallsyms is named). Empty when
/// no single function carries the event (softirq entry/exit run every vector in one loop).
pub fn kprobe_candidates(tracepoint: &str) -> &'static [&'static str] {
    match tracepoint {
        // 6.11+: sk_skb_reason_drop; 5.17+ (5.15.58+): kfree_skb_reason; before: kfree_skb.
        "kfree_skb" => &["sk_skb_reason_drop", "kfree_skb_reason", "kfree_skb"],
        "tcp_retransmit_skb" => &["__tcp_retransmit_skb", "tcp_retransmit_skb"],
        "tcp_retransmit_synack" => &["tcp_rtx_synack"],
        "tcp_probe" => &["tcp_rcv_established"],
        "inet_sock_set_state" => &["tcp_set_state", "inet_sk_set_state"],
        "tcp_send_reset" => &["tcp_v4_send_reset", "tcp_send_active_reset"],
        "tcp_receive_reset" => &["tcp_reset"],
        // sk_error_report() came with the tracepoint (5.14); before it, the socket's default
        // callback is where the error is reported.
        "inet_sk_error_report" => &["sk_error_report", "sock_def_error_report"],
        _ => &[],
    }
}

/// Sentence for a missing tracepoint on a kernel without kprobes.
pub const NO_KPROBES: &str =
    "missing: no such tracepoint and no kprobes on this kernel (CONFIG_KPROBES unset)";

/// What becomes of a probe whose tracepoint this kernel lacks: the kprobe that would stand in
/// for it (`kprobes`: the kernel has them; `has_function`: the name is in kallsyms), or why
/// none can. The tracer ships no kprobe programs yet, so a named fallback is planned, not run.
pub fn missing_detail(
    spec: &ProbeSpec,
    kprobes: bool,
    has_function: impl Fn(&str) -> bool,
) -> String {
    if !kprobes {
        return NO_KPROBES.to_owned();
    }
    let candidates = kprobe_candidates(spec.name);
    match candidates.iter().find(|f| has_function(f)) {
        Some(function) => format!(
            "missing: no such tracepoint; fallback: kprobe on {function} (this kernel has \
             kprobes and {function} is in kallsyms) — planned, not built: this tracer has no \
             kprobe programs yet, so the signal is not collected"
        ),
        None if candidates.is_empty() => "missing: no such tracepoint, and no single kernel \
             function carries this event for a kprobe to stand in"
            .to_owned(),
        None => format!(
            "missing: no such tracepoint, and none of {} is in this kernel's symbols for a \
             kprobe to stand in",
            candidates.join(", ")
        ),
    }
}

impl Plan {
    /// Says, for each probe whose tracepoint is missing, whether a kprobe could stand in.
    pub fn decide_fallbacks(&mut self, kprobes: bool, has_function: impl Fn(&str) -> bool) {
        for status in &mut self.not_ready {
            if status.state != ProbeState::Missing {
                continue;
            }
            if let Some(spec) = PROBES.iter().find(|s| s.program == status.program) {
                status.detail = missing_detail(spec, kprobes, &has_function);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tracer_common::ABSENT;

    fn fixture(name: &str) -> Option<EventFormat> {
        let text = match name {
            "kfree_skb" => include_str!("../../../tests/fixtures/formats/skb_kfree_skb.format"),
            "kfree_skb_5.10" => {
                include_str!("../../../tests/fixtures/formats/skb_kfree_skb_5.10.format")
            }
            "tcp_retransmit_skb" => {
                include_str!("../../../tests/fixtures/formats/tcp_tcp_retransmit_skb.format")
            }
            "tcp_retransmit_synack" => {
                include_str!("../../../tests/fixtures/formats/tcp_tcp_retransmit_synack.format")
            }
            "softirq_entry" => {
                include_str!("../../../tests/fixtures/formats/irq_softirq_entry.format")
            }
            "softirq_exit" => {
                include_str!("../../../tests/fixtures/formats/irq_softirq_exit.format")
            }
            "tcp_probe" => include_str!("../../../tests/fixtures/formats/tcp_tcp_probe.format"),
            "inet_sock_set_state" => {
                include_str!("../../../tests/fixtures/formats/sock_inet_sock_set_state.format")
            }
            "tcp_send_reset" => {
                include_str!("../../../tests/fixtures/formats/tcp_tcp_send_reset.format")
            }
            "tcp_receive_reset" => {
                include_str!("../../../tests/fixtures/formats/tcp_tcp_receive_reset.format")
            }
            "inet_sk_error_report" => {
                include_str!("../../../tests/fixtures/formats/sock_inet_sk_error_report.format")
            }
            _ => return None,
        };
        Some(EventFormat::parse(text).unwrap())
    }

    #[test]
    fn plan_on_recorded_6_18_formats_uses_their_offsets() {
        let p = plan(|s| Ok(fixture(s.name)), None);
        assert_eq!(p.ready.len(), 10);
        assert!(p.not_ready.is_empty(), "{:?}", p.not_ready);
        let c = p.config;
        assert_eq!(
            (
                c.kfree_skbaddr,
                c.kfree_location,
                c.kfree_rx_sk,
                c.kfree_reason
            ),
            (8, 16, 24, 36)
        );
        assert_eq!(
            (c.rtx_state, c.rtx_sport, c.rtx_family, c.rtx_err),
            (24, 28, 32, 76)
        );
        assert_eq!((c.rtx_saddr, c.rtx_daddr_v6), (34, 58));
        assert_eq!((c.softirq_entry_vec, c.softirq_exit_vec), (8, 8));
        // NET_TX = 2, NET_RX = 3 in the recorded table.
        assert_eq!(c.softirq_vec_mask, 0b1100);
        // No BTF given: namespace offsets stay absent.
        assert_eq!(c.net_inum, ABSENT);
    }

    #[test]
    fn the_local_port_range_is_packed_or_unknown() {
        assert_eq!(
            ephemeral_ports("32768\t60999\n"),
            tracer_common::pack_port_range(32768, 60999)
        );
        for odd in ["", "60999 32768", "0 10", "1 2 3", "x y"] {
            assert_eq!(ephemeral_ports(odd), 0, "{odd:?}");
        }
    }

    #[test]
    fn plan_reads_the_flow_probes_of_6_18() {
        let c = plan(|s| Ok(fixture(s.name)), None).config;
        // tcp_probe: daddr is a sockaddr at 36, srtt at 100, skaddr at 128.
        assert_eq!(
            (c.probe_daddr_sa, c.probe_srtt, c.probe_skaddr),
            (36, 100, 128)
        );
        // saddr, the local end, is the sockaddr before daddr.
        assert_eq!(c.probe_saddr_sa, 8);
        assert_eq!(
            (
                c.ss_oldstate,
                c.ss_newstate,
                c.ss_dport,
                c.ss_protocol,
                c.ss_daddr_v6
            ),
            (16, 20, 26, 30, 56)
        );
        // State and protocol numbers come from the format's own tables.
        assert_eq!(
            (
                c.tcp_established,
                c.tcp_syn_sent,
                c.tcp_close,
                c.tcp_listen,
                c.ipproto_tcp
            ),
            (1, 2, 7, 10, 6)
        );
        // 6.18's tcp_send_reset: sockaddrs and a reason, no separate port fields.
        assert_eq!(
            (
                c.rst_tx_reason,
                c.rst_tx_saddr_sa,
                c.rst_tx_daddr_sa,
                c.rst_tx_sport
            ),
            (28, 32, 60, ABSENT)
        );
        assert_eq!(
            (c.rst_rx_sport, c.rst_rx_saddr, c.rst_rx_daddr_v6),
            (16, 22, 46)
        );
        assert_eq!((c.err_error, c.err_dport, c.err_daddr), (8, 14, 24));
    }

    #[test]
    fn send_reset_without_sockaddrs_uses_the_flow_fields() {
        // The 5.x layout: ports, family and both address forms, no reason.
        let old = "name: tcp_send_reset\nID: 1\nformat:\n\
            \tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
            \tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;\n\
            \tfield:int state;\toffset:24;\tsize:4;\tsigned:1;\n\
            \tfield:__u16 sport;\toffset:28;\tsize:2;\tsigned:0;\n\
            \tfield:__u16 dport;\toffset:30;\tsize:2;\tsigned:0;\n\
            \tfield:__u16 family;\toffset:32;\tsize:2;\tsigned:0;\n\
            \tfield:__u8 saddr[4];\toffset:34;\tsize:4;\tsigned:0;\n\
            \tfield:__u8 daddr[4];\toffset:38;\tsize:4;\tsigned:0;\n\
            \tfield:__u8 saddr_v6[16];\toffset:42;\tsize:16;\tsigned:0;\n\
            \tfield:__u8 daddr_v6[16];\toffset:58;\tsize:16;\tsigned:0;\n\n\
            print fmt: \"\"\n";
        let p = plan(
            |s| {
                Ok(if s.name == "tcp_send_reset" {
                    Some(EventFormat::parse(old).unwrap())
                } else {
                    fixture(s.name)
                })
            },
            None,
        );
        let c = p.config;
        assert_eq!((c.rst_tx_saddr_sa, c.rst_tx_reason), (ABSENT, ABSENT));
        assert_eq!(
            (c.rst_tx_sport, c.rst_tx_family, c.rst_tx_daddr_v6),
            (28, 32, 58)
        );
        let detail = &p
            .ready
            .iter()
            .find(|(s, _)| s.name == "tcp_send_reset")
            .unwrap()
            .1;
        assert!(detail.contains("no reason"), "{detail}");
    }

    #[test]
    fn plan_on_5_10_kfree_skb_counts_by_location() {
        let p = plan(
            |s| {
                Ok(if s.name == "kfree_skb" {
                    fixture("kfree_skb_5.10")
                } else {
                    fixture(s.name)
                })
            },
            None,
        );
        assert_eq!(p.config.kfree_reason, ABSENT);
        assert_eq!(p.config.kfree_rx_sk, ABSENT);
        assert_eq!(p.config.kfree_location, 16);
        let detail = &p
            .ready
            .iter()
            .find(|(s, _)| s.name == "kfree_skb")
            .unwrap()
            .1;
        assert!(detail.contains("location only"), "{detail}");
    }

    #[test]
    fn missing_tracepoint_and_half_softirq_pair_are_reported() {
        let p = plan(
            |s| {
                Ok(match s.name {
                    "tcp_retransmit_synack" | "softirq_exit" => None,
                    other => fixture(other),
                })
            },
            None,
        );
        let names: Vec<_> = p.ready.iter().map(|(s, _)| s.name).collect();
        assert_eq!(
            names,
            vec![
                "kfree_skb",
                "tcp_retransmit_skb",
                "tcp_probe",
                "inet_sock_set_state",
                "tcp_send_reset",
                "tcp_receive_reset",
                "inet_sk_error_report"
            ]
        );
        let missing: Vec<_> = p
            .not_ready
            .iter()
            .map(|s| (s.tracepoint.as_str(), s.state))
            .collect();
        assert!(missing.contains(&("tcp:tcp_retransmit_synack", ProbeState::Missing)));
        assert!(missing.contains(&("irq:softirq_exit", ProbeState::Missing)));
        assert!(missing.contains(&("irq:softirq_entry", ProbeState::Failed)));
    }

    #[test]
    fn unreadable_format_fails_with_reason() {
        let p = plan(
            |s| {
                if s.name == "kfree_skb" {
                    Ok(Some(EventFormat::parse("name: kfree_skb\nID: 1\nformat:\n\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\nprint fmt: \"\"\n").unwrap()))
                } else {
                    fixture(s.name)
                        .map(Some)
                        .ok_or_else(|| anyhow::anyhow!("x"))
                }
            },
            None,
        );
        let st = p
            .not_ready
            .iter()
            .find(|s| s.program == "kfree_skb")
            .unwrap();
        assert_eq!(st.state, ProbeState::Failed);
        assert!(st.detail.contains("location"), "{}", st.detail);
    }
}
