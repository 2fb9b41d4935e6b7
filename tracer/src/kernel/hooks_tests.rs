//! Hook choice on recorded prototypes: each kind, each fallback, and `TRACER_HOOK`.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::kernel::{format::EventFormat, probes::plan};

fn formats_6_18() -> Plan {
    plan(
        |s| {
            let path = format!(
                "{}/../tests/fixtures/formats/{}_{}.format",
                env!("CARGO_MANIFEST_DIR"),
                s.category,
                s.name
            );
            Ok(Some(
                EventFormat::parse(&std::fs::read_to_string(path)?).unwrap(),
            ))
        },
        None,
    )
}

fn sock() -> SockOffsets {
    SockOffsets {
        family: 16,
        state: 18,
        num: 14,
        dport: 12,
        rcv_saddr: 4,
        daddr: 0,
        v6_rcv_saddr: 72,
        v6_daddr: 56,
        srtt_us: 1800,
        protocol: Some(516),
        err: 348,
        req_common: 0,
        skb_head: 192,
        skb_data: 200,
        skb_network_header: 182,
    }
}

/// The 6.18 prototypes, as BTF has them.
fn btf_6_18(event: &str) -> anyhow::Result<Vec<String>> {
    let args: &[&str] = match event {
        "kfree_skb" => &[
            "struct sk_buff *",
            "void *",
            "enum skb_drop_reason",
            "struct sock *",
        ],
        "softirq_entry" | "softirq_exit" => &["unsigned int"],
        "tcp_retransmit_skb" => &["struct sock *", "struct sk_buff *", "int"],
        "tcp_probe" => &["struct sock *", "struct sk_buff *"],
        "tcp_retransmit_synack" => &["struct sock *", "struct request_sock *"],
        "inet_sock_set_state" => &["struct sock *", "int", "int"],
        "tcp_send_reset" => &["struct sock *", "struct sk_buff *", "enum sk_rst_reason"],
        "tcp_receive_reset" | "inet_sk_error_report" => &["struct sock *"],
        other => anyhow::bail!("btf_trace_{other} not in BTF"),
    };
    Ok(args.iter().map(|a| (*a).to_owned()).collect())
}

fn kinds(p: &Plan) -> Vec<(&'static str, HookKind)> {
    p.hooks.iter().map(|(k, v)| (*k, v.kind)).collect()
}

#[test]
fn with_btf_every_probe_goes_on_tp_btf_with_positions_from_the_prototype() {
    let mut p = formats_6_18();
    p.choose_hooks(&HookFacts {
        btf_args: Some(&btf_6_18),
        sock: Ok(sock()),
        forced: None,
    });
    let tp_btf: Vec<_> = kinds(&p)
        .into_iter()
        .filter(|(_, k)| *k == HookKind::TpBtf)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        tp_btf,
        [
            "inet_sk_error_report",
            "inet_sock_set_state",
            "kfree_skb",
            "softirq_entry",
            "softirq_exit",
            "tcp_probe",
            "tcp_receive_reset",
            "tcp_retransmit_skb",
            "tcp_retransmit_synack",
            "tcp_send_reset"
        ]
    );
    let c = p.config;
    assert_eq!(
        (
            c.kfree_arg_skb,
            c.kfree_arg_location,
            c.kfree_arg_reason,
            c.kfree_arg_rx_sk
        ),
        (0, 1, 2, 3)
    );
    assert_eq!((c.rtx_arg_sk, c.rtx_arg_skb, c.rtx_arg_err), (0, 1, 2));
    assert_eq!((c.probe_arg_sk, c.softirq_arg_vec), (0, 0));
    assert_eq!((c.sk_num, c.tp_srtt_us), (14, 1800));
    assert_eq!((c.synack_arg_sk, c.synack_arg_req), (0, 1));
    assert_eq!(
        (c.ss_arg_sk, c.ss_arg_oldstate, c.ss_arg_newstate),
        (0, 1, 2)
    );
    assert_eq!(
        (c.rst_tx_arg_sk, c.rst_tx_arg_skb, c.rst_tx_arg_reason),
        (0, 1, 2)
    );
    assert_eq!((c.rst_rx_arg_sk, c.err_arg_sk), (0, 0));
    assert_eq!(
        (c.sk_protocol, c.sk_err, c.req_common, c.skb_network_header),
        (516, 348, 0, 182)
    );
}

#[test]
fn a_bitfield_protocol_keeps_state_changes_and_errors_classic_and_resets_on_tp_btf() {
    let mut p = formats_6_18();
    p.choose_hooks(&HookFacts {
        btf_args: Some(&btf_6_18),
        sock: Ok(SockOffsets {
            protocol: None,
            ..sock()
        }),
        forced: None,
    });
    for program in ["inet_sock_set_state", "inet_sk_error_report"] {
        let h = p.hook_of(program);
        assert_eq!(h.kind, HookKind::Tracepoint, "{program}");
        assert!(
            h.reason.contains("sk_protocol is a bitfield"),
            "{}",
            h.reason
        );
    }
    assert_eq!(p.hook_of("tcp_send_reset").kind, HookKind::TpBtf);
    assert_eq!(p.hook_of("tcp_retransmit_synack").kind, HookKind::TpBtf);
}

#[test]
fn a_send_reset_before_6_10_has_no_reason_argument() {
    let mut p = formats_6_18();
    p.config.rst_tx_reason = ABSENT;
    p.choose_hooks(&HookFacts {
        btf_args: None,
        sock: Ok(sock()),
        forced: None,
    });
    assert_eq!(
        recorded_prototype(PROG_TCP_SEND_RESET, &p.config).unwrap(),
        ["struct sock *", "struct sk_buff *"]
    );
    assert_eq!(p.hook_of("tcp_send_reset").kind, HookKind::RawTp);
    assert_eq!(
        (
            p.config.rst_tx_arg_sk,
            p.config.rst_tx_arg_skb,
            p.config.rst_tx_arg_reason
        ),
        (0, 1, ABSENT)
    );
}

#[test]
fn the_state_change_prototype_needs_both_states() {
    let mut p = formats_6_18();
    let one_int = |event: &str| -> anyhow::Result<Vec<String>> {
        if event == "inet_sock_set_state" {
            Ok(vec!["struct sock *".to_owned(), "int".to_owned()])
        } else {
            btf_6_18(event)
        }
    };
    p.choose_hooks(&HookFacts {
        btf_args: Some(&one_int),
        sock: Ok(sock()),
        forced: None,
    });
    let h = p.hook_of("inet_sock_set_state");
    assert_eq!(h.kind, HookKind::Tracepoint);
    assert!(h.reason.contains("no second `int`"), "{}", h.reason);
}

#[test]
fn without_btf_raw_tp_from_the_recorded_prototype_and_tcp_stays_classic() {
    let mut p = formats_6_18();
    p.choose_hooks(&HookFacts {
        btf_args: None,
        sock: Err("no BTF".to_owned()),
        forced: None,
    });
    let kfree = p.hook_of("kfree_skb");
    assert_eq!(kfree.kind, HookKind::RawTp);
    assert!(
        kfree.reason.starts_with("raw_tp: no BTF"),
        "{}",
        kfree.reason
    );
    assert_eq!(p.hook_of("softirq_exit").kind, HookKind::RawTp);
    // The recorded 6.18 prototype: rx_sk is the fourth argument.
    assert_eq!(p.config.kfree_arg_rx_sk, 3);
    // Every TCP and socket probe reads the socket itself on a raw hook.
    for program in [
        "tcp_retransmit_skb",
        "tcp_probe",
        "tcp_retransmit_synack",
        "inet_sock_set_state",
        "tcp_send_reset",
        "tcp_receive_reset",
        "inet_sk_error_report",
    ] {
        let h = p.hook_of(program);
        assert_eq!(h.kind, HookKind::Tracepoint, "{program}");
        assert!(
            h.reason.contains("socket offsets not in BTF"),
            "{program}: {}",
            h.reason
        );
    }
}

#[test]
fn an_older_record_without_reason_reads_no_reason_argument() {
    let mut p = formats_6_18();
    p.config.kfree_reason = ABSENT;
    p.config.kfree_rx_sk = ABSENT;
    p.choose_hooks(&HookFacts {
        btf_args: None,
        sock: Ok(sock()),
        forced: None,
    });
    assert_eq!(
        recorded_prototype(PROG_KFREE_SKB, &p.config).unwrap(),
        ["struct sk_buff *", "void *"]
    );
    assert_eq!(
        (p.config.kfree_arg_reason, p.config.kfree_arg_rx_sk),
        (ABSENT, ABSENT)
    );
}

#[test]
fn tracer_hook_forces_each_kind_where_it_can() {
    for (kind, expect_kfree, expect_reset) in [
        (
            HookKind::Tracepoint,
            HookKind::Tracepoint,
            HookKind::Tracepoint,
        ),
        (HookKind::RawTp, HookKind::RawTp, HookKind::RawTp),
        (HookKind::TpBtf, HookKind::TpBtf, HookKind::TpBtf),
    ] {
        let mut p = formats_6_18();
        p.choose_hooks(&HookFacts {
            btf_args: Some(&btf_6_18),
            sock: Ok(sock()),
            forced: Some(kind),
        });
        let kfree = p.hook_of("kfree_skb");
        assert_eq!(kfree.kind, expect_kfree);
        assert!(
            kfree.reason.contains("forced by TRACER_HOOK"),
            "{}",
            kfree.reason
        );
        assert_eq!(p.hook_of("tcp_send_reset").kind, expect_reset);
    }
}

#[test]
fn a_prototype_without_the_needed_argument_falls_back_to_the_tracepoint() {
    let mut p = formats_6_18();
    let odd = |event: &str| -> anyhow::Result<Vec<String>> {
        if event == "tcp_probe" {
            Ok(vec!["struct sk_buff *".to_owned()])
        } else {
            btf_6_18(event)
        }
    };
    p.choose_hooks(&HookFacts {
        btf_args: Some(&odd),
        sock: Ok(sock()),
        forced: None,
    });
    let probe = p.hook_of("tcp_probe");
    assert_eq!(probe.kind, HookKind::Tracepoint);
    assert!(probe.reason.contains("struct sock *"), "{}", probe.reason);
    assert_eq!(p.hook_of("kfree_skb").kind, HookKind::TpBtf);
}

#[test]
fn kfree_skb_reads_constant_positions_only_where_the_prototype_has_them_in_order() {
    // 6.18's prototype (skb, location, reason, rx_sk): the constant positions.
    let mut p = formats_6_18();
    p.choose_hooks(&HookFacts {
        btf_args: Some(&btf_6_18),
        sock: Ok(sock()),
        forced: None,
    });
    assert_eq!(p.hook_of("kfree_skb").kind, HookKind::TpBtf);
    assert_eq!(p.config.kfree_args_in_order, 1);
    // A record without rx_sk (an older kernel's, or one emulated): the positions from config.
    let mut p = formats_6_18();
    p.config.kfree_rx_sk = ABSENT;
    p.choose_hooks(&HookFacts {
        btf_args: Some(&btf_6_18),
        sock: Ok(sock()),
        forced: None,
    });
    assert_eq!(p.config.kfree_arg_rx_sk, ABSENT);
    assert_eq!(p.config.kfree_args_in_order, 0);
    // The same four arguments in another order: read where they are.
    let swapped = |event: &str| -> anyhow::Result<Vec<String>> {
        if event == "kfree_skb" {
            Ok([
                "void *",
                "struct sk_buff *",
                "enum skb_drop_reason",
                "struct sock *",
            ]
            .map(str::to_owned)
            .to_vec())
        } else {
            btf_6_18(event)
        }
    };
    let mut p = formats_6_18();
    p.choose_hooks(&HookFacts {
        btf_args: Some(&swapped),
        sock: Ok(sock()),
        forced: None,
    });
    assert_eq!(
        (p.config.kfree_arg_skb, p.config.kfree_arg_location),
        (1, 0)
    );
    assert_eq!(p.config.kfree_args_in_order, 0);
}

#[test]
fn kernel_releases_parse_to_major_and_minor() {
    assert_eq!(parse_release("6.18.0-1-amd64\n"), Some((6, 18)));
    assert_eq!(parse_release("5.10"), Some((5, 10)));
    assert_eq!(parse_release("6.1.0-rc7+"), Some((6, 1)));
    assert_eq!(parse_release("6.0"), Some((6, 0)));
    assert_eq!(parse_release("5.15.0-161-generic"), Some((5, 15)));
    assert_eq!(parse_release("6"), None);
    assert_eq!(parse_release("linux"), None);
    assert_eq!(parse_release(""), None);
}

#[test]
fn runs_may_nest_only_on_raw_or_btf_hooks_before_6_1() {
    use HookKind::{RawTp, TpBtf, Tracepoint};
    // 6.1 and later: every hook kind skips a nested run (the guard goes).
    for release in [(6, 1), (6, 18), (7, 0)] {
        for kinds in [
            [TpBtf, TpBtf],
            [RawTp, Tracepoint],
            [Tracepoint, Tracepoint],
        ] {
            assert!(
                !runs_may_nest(Some(release), &kinds),
                "{release:?} {kinds:?}"
            );
        }
    }
    // Before 6.1 (or unknown): a raw or BTF program may run nested in itself.
    for release in [
        Some((6, 0)),
        Some((5, 15)),
        Some((5, 10)),
        Some((4, 19)),
        None,
    ] {
        assert!(runs_may_nest(release, &[TpBtf, Tracepoint]), "{release:?}");
        assert!(runs_may_nest(release, &[Tracepoint, RawTp]), "{release:?}");
        // Classic tracepoints never nest a program in itself (bpf_prog_active).
        assert!(
            !runs_may_nest(release, &[Tracepoint, Tracepoint]),
            "{release:?}"
        );
    }
    // No guarded program planned at all: nothing nests.
    assert!(!runs_may_nest(None, &[]));
}
