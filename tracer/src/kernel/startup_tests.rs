//! Start-up planning on the kernels recorded under `tests/fixtures/kernels/` (5.10, 5.15, 6.1
//! derived from their sources; 6.18 recorded on the verification host): formats parse, the plan
//! reads the right offsets, absent fields stay ABSENT, names come from the format where there is
//! no BTF, reason-less drops are attributed by location, and the same fault gives the same layers.

#![allow(clippy::unwrap_used)]

use std::{collections::BTreeMap, path::PathBuf};

use tracer_common::{DropKey, ABSENT};

use super::*;
use crate::{
    judge::layers::Layer,
    judge::report::{self, WindowInfo},
    kernel::format::EventFormat,
    kernel::probes::{ProbeState, NO_KPROBES},
    kernel::snapshot::Snapshot,
};

fn dir(version: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/kernels")
        .join(version)
}

fn start(version: &str) -> Startup {
    prepare(&KernelSources::recorded(&dir(version)))
}

fn detail<'a>(s: &'a Startup, name: &str) -> &'a str {
    s.plan
        .ready
        .iter()
        .find(|(spec, _)| spec.name == name)
        .map(|(_, d)| d.as_str())
        .unwrap_or_else(|| panic!("{name} not ready: {:?}", s.plan.not_ready))
}

fn format(version: &str, category: &str, name: &str) -> Option<EventFormat> {
    Tracefs {
        root: dir(version).join("tracing"),
        mounted_by_tracer: false,
    }
    .event_format(category, name)
    .unwrap()
}

/// Offset of a field of a recorded format (u32::MAX when the field is absent).
fn offset(version: &str, category: &str, name: &str, field: &str) -> u32 {
    format(version, category, name)
        .unwrap()
        .field(field)
        .map_or(ABSENT, |f| f.offset)
}

#[test]
fn every_recorded_format_parses_and_only_5_10_lacks_inet_sk_error_report() {
    let events = [
        ("skb", "kfree_skb"),
        ("tcp", "tcp_retransmit_skb"),
        ("tcp", "tcp_retransmit_synack"),
        ("irq", "softirq_entry"),
        ("irq", "softirq_exit"),
        ("tcp", "tcp_probe"),
        ("sock", "inet_sock_set_state"),
        ("tcp", "tcp_send_reset"),
        ("tcp", "tcp_receive_reset"),
        ("sock", "inet_sk_error_report"),
    ];
    for version in ["5.10", "5.15", "6.1", "6.18"] {
        let present: Vec<_> = events
            .iter()
            .filter(|(c, n)| format(version, c, n).is_some())
            .map(|(_, n)| *n)
            .collect();
        let want = if version == "5.10" { 9 } else { 10 };
        assert_eq!(present.len(), want, "{version}: {present:?}");
    }
    assert!(format("5.10", "sock", "inet_sk_error_report").is_none());
}

#[test]
fn flow_probe_layouts_by_version() {
    // tcp_probe: `family` (5.12) moves mark..sock_cookie by 4-8 bytes; 6.10 appends skbaddr/skaddr.
    let srtt: Vec<u32> = ["5.10", "5.15", "6.1", "6.18"]
        .iter()
        .map(|v| offset(v, "tcp", "tcp_probe", "srtt"))
        .collect();
    assert_eq!(srtt, vec![96, 100, 100, 100]);
    assert_eq!(offset("5.10", "tcp", "tcp_probe", "sock_cookie"), 104);
    assert_eq!(offset("6.1", "tcp", "tcp_probe", "sock_cookie"), 112);
    assert_eq!(offset("6.1", "tcp", "tcp_probe", "skaddr"), ABSENT);
    assert_eq!(offset("6.18", "tcp", "tcp_probe", "skaddr"), 128);
    // inet_sock_set_state: the same on every kernel since protocol became u16 (5.6).
    for v in ["5.10", "5.15", "6.1", "6.18"] {
        assert_eq!(
            (
                offset(v, "sock", "inet_sock_set_state", "newstate"),
                offset(v, "sock", "inet_sock_set_state", "protocol"),
                offset(v, "sock", "inet_sock_set_state", "daddr_v6"),
            ),
            (20, 30, 56),
            "{v}"
        );
    }
    // tcp_receive_reset: no family on 5.10, so the addresses sit 2 bytes lower.
    assert_eq!(
        (
            offset("5.10", "tcp", "tcp_receive_reset", "saddr"),
            offset("5.10", "tcp", "tcp_receive_reset", "daddr_v6"),
            offset("5.10", "tcp", "tcp_receive_reset", "sock_cookie")
        ),
        (20, 44, 64)
    );
    assert_eq!(offset("6.1", "tcp", "tcp_receive_reset", "daddr_v6"), 46);
    // tcp_send_reset: the retransmit record until 6.10, sockaddrs and a reason after.
    assert_eq!(offset("6.1", "tcp", "tcp_send_reset", "sport"), 28);
    assert_eq!(offset("6.1", "tcp", "tcp_send_reset", "reason"), ABSENT);
    assert_eq!(offset("6.18", "tcp", "tcp_send_reset", "reason"), 28);
    assert_eq!(offset("6.18", "tcp", "tcp_send_reset", "sport"), ABSENT);
    assert_eq!(offset("5.15", "sock", "inet_sk_error_report", "daddr"), 24);
}

#[test]
fn kernel_5_10_attaches_everything_without_reason_family_err_or_btf() {
    let s = start("5.10");
    let ready: Vec<_> = s.plan.ready.iter().map(|(spec, _)| spec.name).collect();
    for name in [
        "kfree_skb",
        "tcp_retransmit_skb",
        "tcp_retransmit_synack",
        "softirq_entry",
        "softirq_exit",
    ] {
        assert!(ready.contains(&name), "{name}: {:?}", s.plan.not_ready);
    }
    // Everything else the tracer plans attaches too, but for inet_sk_error_report (5.14+).
    assert_eq!(ready.len() + s.plan.not_ready.len(), probes::PROBES.len());
    for st in &s.plan.not_ready {
        assert_eq!(
            (st.tracepoint.as_str(), st.state),
            ("sock:inet_sk_error_report", ProbeState::Missing),
            "{st:?}"
        );
    }
    let c = s.plan.config;
    assert_eq!(
        (
            c.kfree_skbaddr,
            c.kfree_location,
            c.kfree_reason,
            c.kfree_rx_sk
        ),
        (8, 16, ABSENT, ABSENT)
    );
    assert_eq!(
        (
            c.rtx_skbaddr,
            c.rtx_skaddr,
            c.rtx_state,
            c.rtx_sport,
            c.rtx_dport
        ),
        (8, 16, 24, 28, 30)
    );
    assert_eq!((c.rtx_family, c.rtx_err), (ABSENT, ABSENT));
    assert_eq!(
        (c.rtx_saddr, c.rtx_daddr, c.rtx_saddr_v6, c.rtx_daddr_v6),
        (32, 36, 40, 56)
    );
    assert_eq!(
        (
            c.synack_skaddr,
            c.synack_sport,
            c.synack_dport,
            c.synack_family
        ),
        (8, 24, 26, ABSENT)
    );
    assert_eq!(
        (
            c.synack_saddr,
            c.synack_daddr,
            c.synack_saddr_v6,
            c.synack_daddr_v6
        ),
        (28, 32, 36, 52)
    );
    assert_eq!((c.softirq_entry_vec, c.softirq_exit_vec), (8, 8));
    assert_eq!(c.softirq_vec_mask, 0b1100);
    assert!(detail(&s, "kfree_skb").contains("attributed by location only"));
    let rtx = detail(&s, "tcp_retransmit_skb");
    assert!(
        rtx.contains("no err field") && rtx.contains("no family field"),
        "{rtx}"
    );
    assert_eq!(s.names.drop_reasons_source, "none");
    assert!(s.names.drop_reasons.is_empty());
    assert_eq!(
        s.names.softirq_vectors.get(&3).map(String::as_str),
        Some("NET_RX")
    );
    assert!(s.kprobes);
}

#[test]
fn without_btf_the_btf_features_are_off_and_said_so_not_a_failure() {
    for version in ["5.10", "5.15", "6.1"] {
        let s = start(version);
        assert!(s.netns.is_none(), "{version}");
        let c = s.plan.config;
        assert_eq!(
            (
                c.skb_dev,
                c.skb_sk,
                c.dev_net,
                c.sk_net,
                c.net_inum,
                c.skb_tcp_segs
            ),
            (ABSENT, ABSENT, ABSENT, ABSENT, ABSENT, ABSENT),
            "{version}"
        );
        let note = s
            .notes
            .iter()
            .find(|n| n.starts_with("no kernel BTF"))
            .unwrap_or_else(|| panic!("{version}: {:?}", s.notes));
        assert!(note.contains("namespace/pod attribution"), "{note}");
        assert!(note.contains("tcp_gso_segs"), "{note}");
        // Not a failure: every probe the kernel has still attaches (5.10 lacks one tracepoint).
        assert!(
            s.plan
                .not_ready
                .iter()
                .all(|st| version == "5.10" && st.state == ProbeState::Missing),
            "{version}: {:?}",
            s.plan.not_ready
        );
    }
}

#[test]
fn with_btf_the_namespace_offsets_are_handed_in() {
    let btf = PathBuf::from(crate::kernel::btf::VMLINUX_BTF);
    if !btf.exists() {
        eprintln!("skipped: {} absent on this machine", btf.display());
        return;
    }
    // The recorded 6.18 formats with this (6.18) machine's BTF.
    let mut sources = KernelSources::recorded(&dir("6.18"));
    sources.btf = btf;
    let s = prepare(&sources);
    let o = s.netns.expect("BTF offsets");
    let c = s.plan.config;
    assert_eq!(
        (c.skb_dev, c.sk_net, c.net_inum),
        (o.skb_dev, o.sk_net, o.net_inum)
    );
    assert_ne!(c.net_inum, ABSENT);
    assert!(
        !s.notes.iter().any(|n| n.starts_with("no kernel BTF")),
        "{:?}",
        s.notes
    );
    assert_eq!(s.names.drop_reasons_source, "btf");
}

#[test]
fn kernel_5_15_has_family_and_a_six_reason_table_but_no_err() {
    let s = start("5.15");
    let c = s.plan.config;
    assert_eq!(
        (c.kfree_location, c.kfree_reason, c.kfree_rx_sk),
        (16, 28, ABSENT)
    );
    assert_eq!((c.rtx_state, c.rtx_family, c.rtx_err), (24, 32, ABSENT));
    assert_eq!(
        (c.rtx_saddr, c.rtx_daddr, c.rtx_saddr_v6, c.rtx_daddr_v6),
        (34, 38, 42, 58)
    );
    assert_eq!(
        (c.synack_family, c.synack_saddr, c.synack_daddr_v6),
        (28, 30, 54)
    );
    let rtx = detail(&s, "tcp_retransmit_skb");
    assert!(
        rtx.contains("no err field") && rtx.contains("family from the record"),
        "{rtx}"
    );
    assert!(detail(&s, "kfree_skb").contains("drop reason at offset 28"));
    // No BTF: names from the format's own table, where NOT_SPECIFIED is 0 on 5.15.58+.
    assert_eq!(s.names.drop_reasons_source, "tracefs format");
    let names: Vec<_> = s
        .names
        .drop_reasons
        .iter()
        .map(|(v, n)| (*v, n.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            (0, "NOT_SPECIFIED"),
            (1, "NO_SOCKET"),
            (2, "PKT_TOO_SMALL"),
            (3, "TCP_CSUM"),
            (4, "SOCKET_FILTER"),
            (5, "UDP_CSUM"),
            (6, "MAX")
        ]
    );
}

#[test]
fn kernel_6_1_names_65_reasons_from_its_format() {
    let s = start("6.1");
    let c = s.plan.config;
    assert_eq!(
        (c.kfree_reason, c.kfree_rx_sk, c.rtx_family, c.rtx_err),
        (28, ABSENT, 32, ABSENT)
    );
    assert_eq!(s.names.drop_reasons_source, "tracefs format");
    let n = &s.names.drop_reasons;
    assert_eq!(n.len(), 65);
    assert_eq!(n.get(&0), None);
    assert_eq!(n.get(&1).map(String::as_str), Some("NOT_SPECIFIED"));
    assert_eq!(n.get(&7).map(String::as_str), Some("NETFILTER_DROP"));
    assert_eq!(n.get(&46).map(String::as_str), Some("CPU_BACKLOG"));
    assert_eq!(n.get(&64).map(String::as_str), Some("PKT_TOO_BIG"));
}

#[test]
fn recorded_6_18_keeps_its_offsets_through_start_up() {
    let s = start("6.18");
    let c = s.plan.config;
    assert_eq!(
        (c.kfree_rx_sk, c.kfree_reason, c.rtx_family, c.rtx_err),
        (24, 36, 32, 76)
    );
    assert_eq!(
        s.names.drop_reasons.get(&12).map(String::as_str),
        Some("NETFILTER_DROP")
    );
    assert!(!s.kprobes, "the verification host has no kprobes");
}

/// The same three faults on each kernel, as the kernel reports them: an iptables DROP rule
/// (40 packets), a blackhole route on a forwarding path (7), a full per-CPU backlog (300), and
/// one closed UDP port (not a layer).
fn fault_drops(version: &str, symbols: &Kallsyms) -> Snapshot {
    let at = |function: &str, off: u64| {
        symbols
            .address_of(function)
            .unwrap_or_else(|| panic!("{version}: {function} not in kallsyms"))
            + off
    };
    // Reason values: 5.10 has none; 5.15.58+ only NOT_SPECIFIED (0) at these sites; 6.1 and
    // 6.18 name them (numbers from their own tables).
    let (netfilter, not_specified, backlog) = match version {
        "5.10" => (ABSENT, ABSENT, ABSENT),
        "5.15" => (0, 0, 0),
        "6.1" => (7, 1, 46),
        _ => (12, 2, 71),
    };
    let udp_no_socket = match version {
        "5.10" => ABSENT,
        "5.15" => 1,
        "6.1" => 2,
        _ => 3,
    };
    let mut d = Snapshot::default();
    for (reason, location, count) in [
        (netfilter, at("nf_hook_slow", 0x9b), 40),
        (not_specified, at("ip_error", 0x41), 7),
        (backlog, at("enqueue_to_backlog", 0x1a5), 300),
        (udp_no_socket, at("__udp4_lib_rcv", 0x4bc), 3),
    ] {
        d.drops.insert(
            DropKey {
                reason,
                netns: 0,
                location,
            },
            count,
        );
    }
    d
}

#[test]
fn the_same_faults_give_the_same_layers_on_every_kernel() {
    let want: BTreeMap<Layer, u64> = [
        (Layer::IptablesNetpolicy, 40),
        (Layer::Routing, 7),
        (Layer::IrqCpu, 300),
    ]
    .into_iter()
    .collect();
    for version in ["5.10", "5.15", "6.1", "6.18"] {
        let s = start(version);
        let r = report::build(
            &fault_drops(version, &s.symbols),
            &s.names,
            &s.symbols,
            vec![],
            WindowInfo {
                duration_s: 10.0,
                startup_ms: 0.0,
                netns: None,
            },
            version.to_owned(),
            vec![],
        );
        let (loss, signals, _noise, no_listener) = crate::judge::verdict::probe_loss(&r);
        assert_eq!(loss, want, "{version}: {signals:?}");
        assert_eq!(no_listener, 3, "{version}");
        // On 5.10 the evidence names the drop site, since there is no reason.
        if version == "5.10" {
            let netfilter = &signals[&Layer::IptablesNetpolicy][0];
            assert_eq!(
                netfilter,
                "40 NO_REASON_FIELD drops at nf_hook_slow+0x9b (netfilter)"
            );
            assert_eq!(
                signals[&Layer::Routing][0],
                "7 NO_REASON_FIELD drops at ip_error+0x41 (route-discard)"
            );
        }
    }
}

#[test]
fn a_missing_tracepoint_names_a_kprobe_only_where_the_kernel_has_kprobes() {
    let synack = probes::PROBES
        .iter()
        .find(|p| p.name == "tcp_retransmit_synack")
        .unwrap();
    let hide_synack = |version: &'static str| {
        move |spec: &ProbeSpec| -> anyhow::Result<Option<EventFormat>> {
            Ok(if spec.name == "tcp_retransmit_synack" {
                None
            } else {
                format(version, spec.category, spec.name)
            })
        }
    };
    // 5.10 (AL2): kprobes, and tcp_rtx_synack in its symbols.
    let k510 = start("5.10");
    assert!(k510.kprobes);
    let mut p = probes::plan(hide_synack("5.10"), None);
    p.decide_fallbacks(k510.kprobes, |f| k510.symbols.address_of(f).is_some());
    let st = p
        .not_ready
        .iter()
        .find(|s| s.program == synack.program)
        .unwrap();
    assert_eq!(st.state, ProbeState::Missing);
    assert!(
        st.detail
            .starts_with("missing: no such tracepoint; fallback: kprobe on tcp_rtx_synack"),
        "{}",
        st.detail
    );
    assert!(st.detail.contains("planned, not built"), "{}", st.detail);
    // This machine's kernel (6.18 recorded, no kprobe_events, no kprobe PMU): missing, said so.
    let k618 = start("6.18");
    let mut p = probes::plan(hide_synack("6.18"), None);
    p.decide_fallbacks(k618.kprobes, |f| k618.symbols.address_of(f).is_some());
    let st = p
        .not_ready
        .iter()
        .find(|s| s.program == synack.program)
        .unwrap();
    assert_eq!(st.detail, NO_KPROBES);
    assert_eq!(
        st.detail,
        "missing: no such tracepoint and no kprobes on this kernel (CONFIG_KPROBES unset)"
    );
}

#[test]
fn fallback_functions_follow_each_kernels_symbols() {
    let spec = |name: &'static str| ProbeSpec {
        category: "sock",
        name,
        program: name,
    };
    let k510 = start("5.10");
    let k515 = start("5.15");
    let has = |s: &Startup| {
        let symbols = s.symbols.clone();
        move |f: &str| symbols.address_of(f).is_some()
    };
    // inet_sk_error_report is 5.14+: on 5.10 the default socket callback stands in.
    let d = probes::missing_detail(&spec("inet_sk_error_report"), true, has(&k510));
    assert!(d.contains("kprobe on sock_def_error_report"), "{d}");
    let d = probes::missing_detail(&spec("inet_sk_error_report"), true, has(&k515));
    assert!(d.contains("kprobe on sk_error_report"), "{d}");
    // kfree_skb: the function that emits the event moved (kfree_skb → kfree_skb_reason).
    let d = probes::missing_detail(&spec("kfree_skb"), true, has(&k510));
    assert!(d.contains("kprobe on kfree_skb "), "{d}");
    let d = probes::missing_detail(&spec("kfree_skb"), true, has(&k515));
    assert!(d.contains("kprobe on kfree_skb_reason "), "{d}");
    // No single function: said, not guessed.
    let d = probes::missing_detail(&spec("softirq_entry"), true, has(&k510));
    assert!(d.contains("no single kernel function"), "{d}");
    // Candidates absent from the symbols: named.
    let d = probes::missing_detail(&spec("tcp_probe"), true, |_| false);
    assert_eq!(
        d,
        "missing: no such tracepoint, and none of tcp_rcv_established is in this kernel's \
         symbols for a kprobe to stand in"
    );
    // After the flow probes join PROBES, 5.10's own plan says it with no help.
    if probes::PROBES
        .iter()
        .any(|p| p.name == "inet_sk_error_report")
    {
        let st = k510
            .plan
            .not_ready
            .iter()
            .find(|s| s.tracepoint == "sock:inet_sk_error_report")
            .unwrap();
        assert!(
            st.detail.contains("kprobe on sock_def_error_report"),
            "{}",
            st.detail
        );
    }
}
