//! Which hook each probe attaches with — a BTF tracepoint where the kernel has BTF, a raw
//! tracepoint otherwise, the classic tracepoint as the last fallback — and what the raw/BTF
//! programs read: argument positions (from BTF's `btf_trace_<event>` prototype, or the
//! recorded `TP_PROTO` of the kernel whose format this is) and socket offsets from BTF.
//! Pure: it takes prototypes, offsets and the planned formats; it never touches the kernel.

use tracer_common::{
    TracerConfig, ABSENT, PROG_INET_SK_ERROR_REPORT, PROG_INET_SOCK_SET_STATE, PROG_KFREE_SKB,
    PROG_SOFTIRQ_ENTRY, PROG_SOFTIRQ_EXIT, PROG_TCP_PROBE, PROG_TCP_RECEIVE_RESET,
    PROG_TCP_RETRANSMIT_SKB, PROG_TCP_RETRANSMIT_SYNACK, PROG_TCP_SEND_RESET,
};

use crate::kernel::{
    btf::SockOffsets,
    probes::{HookChoice, HookKind, Plan, HOOK_VAR},
};

/// Programs that also exist as raw and BTF tracepoint programs (`<name>_raw`, `<name>_btf`):
/// every probe's. (The capture programs follow the hook of the probe on the same tracepoint.)
pub const RAW_CAPABLE: [&str; 10] = [
    PROG_KFREE_SKB,
    PROG_SOFTIRQ_ENTRY,
    PROG_SOFTIRQ_EXIT,
    PROG_TCP_RETRANSMIT_SKB,
    PROG_TCP_PROBE,
    PROG_TCP_RETRANSMIT_SYNACK,
    PROG_INET_SOCK_SET_STATE,
    PROG_TCP_SEND_RESET,
    PROG_TCP_RECEIVE_RESET,
    PROG_INET_SK_ERROR_REPORT,
];

/// The `TP_PROTO` argument types of a kernel without BTF, by the fields of its format (already
/// in `config`): each recorded kernel's prototype, from its `include/trace/events/*.h`.
pub fn recorded_prototype(program: &str, config: &TracerConfig) -> Option<Vec<&'static str>> {
    Some(match program {
        // ≤ 5.16 (skb, location); 5.17 and 5.15.58+ add the reason; 6.11 adds rx_sk.
        PROG_KFREE_SKB => {
            let mut args = vec!["struct sk_buff *", "void *"];
            if config.kfree_reason != ABSENT {
                args.push("enum skb_drop_reason");
            }
            if config.kfree_rx_sk != ABSENT {
                args.push("struct sock *");
            }
            args
        }
        PROG_SOFTIRQ_ENTRY | PROG_SOFTIRQ_EXIT => vec!["unsigned int"],
        // (sk, skb); `err` came in 2025 (6.18 has it), in the record and the prototype alike.
        PROG_TCP_RETRANSMIT_SKB => {
            let mut args = vec!["struct sock *", "struct sk_buff *"];
            if config.rtx_err != ABSENT {
                args.push("int");
            }
            args
        }
        PROG_TCP_PROBE => vec!["struct sock *", "struct sk_buff *"],
        PROG_TCP_RETRANSMIT_SYNACK => vec!["struct sock *", "struct request_sock *"],
        PROG_INET_SOCK_SET_STATE => vec!["struct sock *", "int", "int"],
        // (sk, skb); 6.10 adds the reason (and lets sk be NULL), in the record and prototype.
        PROG_TCP_SEND_RESET => {
            let mut args = vec!["struct sock *", "struct sk_buff *"];
            if config.rst_tx_reason != ABSENT {
                args.push("enum sk_rst_reason");
            }
            args
        }
        PROG_TCP_RECEIVE_RESET | PROG_INET_SK_ERROR_REPORT => vec!["struct sock *"],
        _ => return None,
    })
}

/// kfree_skb's argument positions (skb, location, reason, rx_sk) that the program reads with
/// constant positions when [`TracerConfig::kfree_args_in_order`] says the kernel has them.
pub const KFREE_ARGS_IN_ORDER: [u32; 4] = [0, 1, 2, 3];

/// The first release whose raw and BTF tracepoints never run a program nested inside another
/// run of itself on one CPU: 6.1's "bpf: Prevent bpf program recursion for raw tracepoint
/// probes" (commit 05b24ff9b2cf) counts each program's runs per CPU in `__bpf_trace_run` and
/// skips a nested one as a recursion miss. (Backported to some 5.10, 5.15 and 6.0 stable
/// releases; those keep the guard here, which is only slower.) Classic tracepoints never nest
/// one: `trace_call_bpf` runs no program while another runs on that CPU (`bpf_prog_active`).
pub const NO_NESTED_RUNS_SINCE: (u32, u32) = (6, 1);

/// [`TracerConfig::runs_may_nest`]: whether a program on one of `hooks` (the planned hooks of
/// the programs that guard per-CPU slots) may run nested inside another run of itself on a
/// kernel of `release` (None: unknown, assumed old). A planned raw/BTF hook may fall back to
/// the classic tracepoint at attach time, never the other way, so the planned kinds bound it.
pub fn runs_may_nest(release: Option<(u32, u32)>, hooks: &[HookKind]) -> bool {
    let raw = hooks.iter().any(|k| *k != HookKind::Tracepoint);
    raw && !release.is_some_and(|r| r >= NO_NESTED_RUNS_SINCE)
}

/// (major, minor) of a kernel release string (`6.18.0-1-amd64`, `5.10`); None when it does not
/// start with two numbers.
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((major, minor))
}

/// Position of the first argument of type `ty`.
fn position(args: &[String], ty: &str) -> Option<u32> {
    nth_position(args, ty, 0)
}

/// Position of the `nth` (from 0) argument of type `ty`.
fn nth_position(args: &[String], ty: &str, nth: usize) -> Option<u32> {
    args.iter()
        .enumerate()
        .filter(|(_, a)| *a == ty)
        .nth(nth)
        .and_then(|(i, _)| u32::try_from(i).ok())
}

/// Like [`nth_position`], an error naming the type when there is none.
fn required_nth(args: &[String], ty: &str, nth: usize) -> Result<u32, String> {
    nth_position(args, ty, nth).ok_or_else(|| {
        format!(
            "no {} `{ty}` argument in ({})",
            ["first", "second"].get(nth).unwrap_or(&"such"),
            args.join(", ")
        )
    })
}

/// Like [`position`], an error naming the type when there is none.
fn required(args: &[String], ty: &str) -> Result<u32, String> {
    required_nth(args, ty, 0)
}

/// Writes a program's argument positions into `config`. Optional arguments are read only
/// where the record has the same field (so an emulated older kernel reads what it had).
fn positions(program: &str, args: &[String], config: &mut TracerConfig) -> Result<(), String> {
    let gated = |field: u32, ty: &str| {
        if field == ABSENT {
            ABSENT
        } else {
            position(args, ty).unwrap_or(ABSENT)
        }
    };
    match program {
        PROG_KFREE_SKB => {
            config.kfree_arg_skb = required(args, "struct sk_buff *")?;
            config.kfree_arg_location = required(args, "void *")?;
            config.kfree_arg_reason = gated(config.kfree_reason, "enum skb_drop_reason");
            config.kfree_arg_rx_sk = gated(config.kfree_rx_sk, "struct sock *");
            config.kfree_args_in_order = u32::from(
                [
                    config.kfree_arg_skb,
                    config.kfree_arg_location,
                    config.kfree_arg_reason,
                    config.kfree_arg_rx_sk,
                ] == KFREE_ARGS_IN_ORDER,
            );
        }
        PROG_SOFTIRQ_ENTRY | PROG_SOFTIRQ_EXIT => {
            config.softirq_arg_vec = required(args, "unsigned int")?;
        }
        PROG_TCP_RETRANSMIT_SKB => {
            config.rtx_arg_sk = required(args, "struct sock *")?;
            config.rtx_arg_skb = required(args, "struct sk_buff *")?;
            config.rtx_arg_err = gated(config.rtx_err, "int");
        }
        PROG_TCP_PROBE => config.probe_arg_sk = required(args, "struct sock *")?,
        PROG_TCP_RETRANSMIT_SYNACK => {
            config.synack_arg_sk = required(args, "struct sock *")?;
            config.synack_arg_req = required(args, "struct request_sock *")?;
        }
        // TP_PROTO(sk, oldstate, newstate): the two ints in that order.
        PROG_INET_SOCK_SET_STATE => {
            config.ss_arg_sk = required(args, "struct sock *")?;
            config.ss_arg_oldstate = required_nth(args, "int", 0)?;
            config.ss_arg_newstate = required_nth(args, "int", 1)?;
        }
        PROG_TCP_SEND_RESET => {
            config.rst_tx_arg_sk = required(args, "struct sock *")?;
            config.rst_tx_arg_skb = required(args, "struct sk_buff *")?;
            config.rst_tx_arg_reason = gated(config.rst_tx_reason, "enum sk_rst_reason");
        }
        PROG_TCP_RECEIVE_RESET => config.rst_rx_arg_sk = required(args, "struct sock *")?,
        PROG_INET_SK_ERROR_REPORT => config.err_arg_sk = required(args, "struct sock *")?,
        _ => return Err("no raw/BTF program for this probe".to_owned()),
    }
    Ok(())
}

/// Programs that read the socket themselves on a raw/BTF hook (a classic record has copies):
/// every TCP and socket probe.
fn needs_sock(program: &str) -> bool {
    !matches!(
        program,
        PROG_KFREE_SKB | PROG_SOFTIRQ_ENTRY | PROG_SOFTIRQ_EXIT
    )
}

/// Why the socket offsets do not serve `program`, beyond what every TCP probe needs.
fn sock_gap(program: &str, o: &SockOffsets) -> Option<&'static str> {
    // These filter on the socket's protocol (TCP, not SCTP or MPTCP), as their records do.
    let filters_protocol = matches!(
        program,
        PROG_INET_SOCK_SET_STATE | PROG_INET_SK_ERROR_REPORT
    );
    (filters_protocol && o.protocol.is_none())
        .then_some("sock.sk_protocol is a bitfield in this kernel's BTF")
}

fn set_sock(config: &mut TracerConfig, o: &SockOffsets) {
    config.sk_family = o.family;
    config.sk_state = o.state;
    config.sk_num = o.num;
    config.sk_dport = o.dport;
    config.sk_rcv_saddr = o.rcv_saddr;
    config.sk_daddr = o.daddr;
    config.sk_v6_rcv_saddr = o.v6_rcv_saddr;
    config.sk_v6_daddr = o.v6_daddr;
    config.tp_srtt_us = o.srtt_us;
    config.sk_protocol = o.protocol.unwrap_or(ABSENT);
    config.sk_err = o.err;
    config.req_common = o.req_common;
    config.skb_head = o.skb_head;
    config.skb_data = o.skb_data;
    config.skb_network_header = o.skb_network_header;
}

/// A tracepoint's argument types from BTF, by event name.
pub type PrototypeLookup<'a> = &'a dyn Fn(&str) -> anyhow::Result<Vec<String>>;

/// What the kernel offers for the hook choice.
pub struct HookFacts<'a> {
    /// The tracepoint's argument types from BTF (None: the kernel has no BTF).
    pub btf_args: Option<PrototypeLookup<'a>>,
    /// Socket offsets from BTF, or why there are none.
    pub sock: Result<SockOffsets, String>,
    /// `TRACER_HOOK`, when set.
    pub forced: Option<HookKind>,
}

fn tracepoint(reason: impl Into<String>) -> HookChoice {
    HookChoice {
        kind: HookKind::Tracepoint,
        reason: format!("tracepoint: {}", reason.into()),
    }
}

/// The cheapest hook one probe can use on this kernel, before `TRACER_HOOK`.
fn cheapest(
    program: &str,
    event: &str,
    facts: &HookFacts,
    config: &mut TracerConfig,
) -> HookChoice {
    if !RAW_CAPABLE.contains(&program) {
        return tracepoint("no raw/BTF program for this probe");
    }
    let (args, kind, why) = match facts.btf_args {
        Some(btf_args) => match btf_args(event) {
            Ok(args) => (args, HookKind::TpBtf, "tp_btf: cheapest hook".to_owned()),
            Err(e) => return tracepoint(format!("no prototype in BTF ({e:#})")),
        },
        None => match recorded_prototype(program, config) {
            Some(args) => (
                args.into_iter().map(str::to_owned).collect(),
                HookKind::RawTp,
                "raw_tp: no BTF (arguments from the recorded TP_PROTO)".to_owned(),
            ),
            None => return tracepoint("no BTF and no recorded prototype"),
        },
    };
    if let Err(e) = positions(program, &args, config) {
        return tracepoint(format!("the prototype does not fit ({e})"));
    }
    if needs_sock(program) {
        match &facts.sock {
            Ok(o) => match sock_gap(program, o) {
                Some(gap) => return tracepoint(gap),
                None => set_sock(config, o),
            },
            Err(e) => return tracepoint(format!("socket offsets not in BTF ({e})")),
        }
    }
    HookChoice { kind, reason: why }
}

/// Applies `TRACER_HOOK`: a forced kind is used where the probe can have it.
fn forced(choice: HookChoice, forced: Option<HookKind>) -> HookChoice {
    let by = format!("forced by {HOOK_VAR}");
    match (forced, choice.kind) {
        (None, _) => choice,
        (Some(HookKind::Tracepoint), _) => tracepoint(by),
        (Some(HookKind::RawTp), HookKind::TpBtf | HookKind::RawTp) => HookChoice {
            kind: HookKind::RawTp,
            reason: format!("raw_tp: {by}"),
        },
        (Some(HookKind::TpBtf), HookKind::TpBtf) => HookChoice {
            kind: HookKind::TpBtf,
            reason: format!("tp_btf: {by}"),
        },
        // The forced kind is not available: keep the cheapest, and say so.
        (Some(kind), _) => HookChoice {
            reason: format!(
                "{} ({HOOK_VAR}={} not possible)",
                choice.reason,
                kind.as_str()
            ),
            ..choice
        },
    }
}

impl Plan {
    /// Chooses every ready probe's hook and fills in what its raw/BTF program reads.
    pub fn choose_hooks(&mut self, facts: &HookFacts) {
        for (spec, _) in &self.ready {
            let choice = cheapest(spec.program, spec.name, facts, &mut self.config);
            self.hooks
                .insert(spec.program, forced(choice, facts.forced));
        }
    }

    /// Moves every probe onto `kind` where it can have it, as `TRACER_HOOK` does (for tests
    /// that run one check on each kind).
    pub fn force_hook(&mut self, kind: HookKind) {
        for choice in self.hooks.values_mut() {
            *choice = forced(choice.clone(), Some(kind));
        }
    }

    /// The planned hook of a program (its tracepoint when none was chosen).
    pub fn hook_of(&self, program: &str) -> HookChoice {
        self.hooks
            .get(program)
            .cloned()
            .unwrap_or_else(|| tracepoint("no hook was chosen"))
    }
}

#[cfg(test)]
#[path = "hooks_tests.rs"]
mod tests;
