//! Constructed windows for the verdict's tests (no root, no kernel): a probe report, host
//! counter samples, a window. Test-only; builds inputs, asserts nothing.

use std::collections::BTreeMap;

use crate::{
    judge::flows::Destination,
    judge::report::{
        CpuSoftirq, DropLocation, DropReason, Drops, FlowReport, Report, Retransmits, VectorTime,
        WindowInfo,
    },
    kernel::probes::{ProbeState, ProbeStatus},
    node::evidence::{
        CounterSample, IfaceCounters, NetnsCounters, NodeFacts, RouteFact, SoftnetRow,
    },
};

use super::WindowEvidence;

pub const SECONDS: f64 = 10.0;

pub fn observed(
    drops: &[(&str, &str, u64)],
    flows: &[(u16, u64)],
    net_rx: &[(u32, u64)],
) -> Report {
    let by_reason = drops
        .iter()
        .map(|(reason, location, count)| DropReason {
            reason: (*reason).to_owned(),
            reason_value: Some(1),
            count: *count,
            locations: vec![DropLocation {
                location: (*location).to_owned(),
                count: *count,
            }],
            netns: vec![],
        })
        .collect::<Vec<_>>();
    let flows: Vec<FlowReport> = flows
        .iter()
        .map(|(dport, segs)| FlowReport {
            netns: 1,
            pod: None,
            netns_name: None,
            family: "ipv4",
            saddr: "198.18.0.1".to_owned(),
            sport: 40000,
            daddr: "198.18.0.2".to_owned(),
            dport: *dport,
            state: "TCP_ESTABLISHED".to_owned(),
            retransmits: *segs,
            retransmitted_segments: *segs,
            synack_retransmits: 0,
            failed_attempts: 0,
        })
        .collect();
    Report {
        tracer_version: "test",
        kernel: "6.18".to_owned(),
        window: WindowInfo {
            duration_s: SECONDS,
            startup_ms: 100.0,
            netns: None,
        },
        probes: vec![ProbeStatus {
            tracepoint: "skb:kfree_skb".to_owned(),
            program: "kfree_skb".to_owned(),
            state: ProbeState::Attached,
            detail: String::new(),
            attach_ms: Some(1.0),
            hook: Some(crate::kernel::probes::HookKind::TpBtf),
            hook_reason: Some("tp_btf: cheapest hook".to_owned()),
        }],
        drops: Drops {
            total: drops.iter().map(|d| d.2).sum(),
            by_reason,
        },
        retransmits: Retransmits {
            total: flows.iter().map(|f| f.retransmits).sum(),
            segments_total: flows.iter().map(|f| f.retransmitted_segments).sum(),
            synack_total: 0,
            failed_attempts: 0,
            flows_evicted: 0,
            flows,
        },
        softirq: net_rx
            .iter()
            .map(|(cpu, ns)| CpuSoftirq {
                cpu: *cpu,
                vectors: vec![VectorTime {
                    vector: "NET_RX".to_owned(),
                    time_ns: *ns,
                    runs: 10,
                    timed_runs: 10,
                    share_of_window: *ns as f64 / (SECONDS * 1e9),
                    histogram: vec![],
                }],
            })
            .collect(),
        flows: Default::default(),
        tracer_counters: BTreeMap::new(),
        tracer_counters_unknown: Vec::new(),
        tracer_cost: Default::default(),
        notes: vec![],
    }
}

/// A host namespace with the given SNMP counters and one interface.
pub fn host(
    snmp: &[(&str, &str, i64)],
    eth0: &[(&str, u64)],
    ethtool: &[(&str, u64)],
) -> CounterSample {
    let mut ns = NetnsCounters {
        inode: 1,
        label: "host".to_owned(),
        is_host: true,
        ..Default::default()
    };
    for (g, n, v) in snmp {
        ns.snmp
            .entry((*g).to_owned())
            .or_default()
            .insert((*n).to_owned(), *v);
    }
    ns.interfaces.insert(
        "eth0".to_owned(),
        IfaceCounters {
            stats: eth0.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            driver: Some("ena".to_owned()),
            driver_version: Some("2.7.1g".to_owned()),
            ethtool: ethtool.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            qdisc: None,
        },
    );
    CounterSample {
        at_ms: 0,
        netns: vec![ns.into()],
        softnet: vec![
            SoftnetRow {
                cpu: 0,
                ..Default::default()
            },
            SoftnetRow {
                cpu: 1,
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

pub fn quiet() -> CounterSample {
    host(
        &[("Tcp", "OutSegs", 1000), ("Tcp", "RetransSegs", 0)],
        &[("rx_errors", 0)],
        &[],
    )
}

pub fn window(observed: Report, start: CounterSample, end: CounterSample) -> WindowEvidence {
    WindowEvidence {
        observed,
        counters_start: start,
        counters_end: end,
        facts_start: NodeFacts::default().into(),
        facts_end: NodeFacts::default().into(),
        ticks: vec![],
        started_unix_ms: None,
    }
}

pub fn destination(daddr: &str, dport: u16) -> Destination {
    Destination {
        netns: 4_026_532_999,
        pod: None,
        netns_name: None,
        family: "ipv4".to_owned(),
        daddr: daddr.to_owned(),
        dport,
        retransmits: 0,
        resets_sent: 0,
        resets_received: 0,
        connects: 0,
        established: 0,
        failed_connects: 0,
        closed: 0,
        errors: vec![],
        rtt: None,
        connect_time: None,
    }
}

pub fn route(dst: &str, kind: &str, gateway: Option<&str>) -> RouteFact {
    RouteFact {
        netns: 1,
        netns_label: "host".to_owned(),
        family: "ipv4".to_owned(),
        dst: dst.to_owned(),
        kind: kind.to_owned(),
        table: 254,
        dev: Some("eth0".to_owned()),
        gateway: gateway.map(str::to_owned),
    }
}
