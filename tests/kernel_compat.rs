//! Older kernels' field sets, read live on this kernel: the programs are started with the fields
//! a 5.10 kernel lacks marked absent (kfree_skb `reason`/`rx_sk`, tcp_retransmit_skb `family`/
//! `err`, SYN-ACK `family`) and, in the second test, without the BTF offsets too. The records
//! still carry those bytes; the programs simply do not read them, exactly as on 5.10. Each test
//! skips with a printed reason when not root. Run serially (`--test-threads=1`).

mod lab;

use std::{collections::BTreeMap, time::Duration};

use lab::{drop_udp_7777, drops_at, privileged, send_udp, Link, Netns};
use tracer::{
    judge::layers::Layer,
    judge::verdict::probe_loss,
    kernel::{btf::KernelBtf, hooks::HookFacts, probes::Plan},
    modes::live::{netns_scope, LiveTracer},
};
use tracer_common::ABSENT;

/// What 5.10's formats give: no reason, no rx_sk, no family, no err.
fn as_5_10(plan: &mut Plan) {
    let c = &mut plan.config;
    c.kfree_reason = ABSENT;
    c.kfree_rx_sk = ABSENT;
    c.rtx_family = ABSENT;
    c.rtx_err = ABSENT;
    c.synack_family = ABSENT;
    // tcp_probe has no socket address before 6.10.
    c.probe_skaddr = ABSENT;
    // 5.10's raw and BTF tracepoints may run a program nested in itself: the slot guards stay.
    plan.kernel_release = Some((5, 10));
    // The raw/BTF programs read 5.10's prototype: (skb, location), (sk, skb).
    let btf = KernelBtf::load().expect("this kernel's BTF");
    rechoose_hooks(plan, Some(&btf));
}

/// Chooses the hooks again for the narrowed record (with this kernel's BTF, or none).
fn rechoose_hooks(plan: &mut Plan, btf: Option<&KernelBtf>) {
    let lookup = |event: &str| match btf {
        Some(b) => b.tracepoint_args(event),
        None => anyhow::bail!("no BTF"),
    };
    plan.choose_hooks(&HookFacts {
        btf_args: btf.map(|_| &lookup as tracer::kernel::hooks::PrototypeLookup),
        sock: match btf {
            Some(b) => b.sock_offsets().map_err(|e| format!("{e:#}")),
            None => Err("no BTF".to_owned()),
        },
        forced: None,
    });
}

/// And no BTF: no namespace offsets, no tcp_gso_segs.
fn as_5_10_without_btf(plan: &mut Plan) {
    as_5_10(plan);
    let c = &mut plan.config;
    for field in [
        &mut c.skb_dev,
        &mut c.skb_sk,
        &mut c.dev_net,
        &mut c.sk_net,
        &mut c.net_inum,
        &mut c.skb_tcp_segs,
    ] {
        *field = ABSENT;
    }
    // No BTF: raw tracepoints on the recorded 5.10 prototype, the TCP probes classic.
    rechoose_hooks(plan, None);
}

/// A link whose receiver drops 2 % of the sender's segments.
fn lossy_link(tag: &str, net: u8) -> Link {
    let link = Link::new(tag, net);
    link.b.nft(&format!(
        "table inet trc {{\n\
           chain input {{\n\
             type filter hook input priority 0; policy accept;\n\
             ip saddr {} tcp dport 5201 numgen random mod 100 < 2 drop\n\
           }}\n\
         }}\n",
        link.addr_a
    ));
    link
}

/// Both faults while a tracer started with `adjust` watches: `n` datagrams into a drop rule in
/// one namespace, a TCP transfer over a link losing 2 %; every probe must attach.
struct Faults {
    ns: Netns,
    link: Link,
    tracer: LiveTracer,
    start: tracer::kernel::snapshot::Snapshot,
    end: tracer::kernel::snapshot::Snapshot,
}

fn faults(tag: &str, net: u8, adjust: fn(&mut Plan), n: u32) -> Faults {
    let ns = Netns::new(tag);
    drop_udp_7777(&ns);
    let link = lossy_link(&format!("{tag}r"), net);
    let tracer = LiveTracer::start_with(adjust).expect("starting the tracer");
    assert_eq!(
        tracer.attached_count(),
        tracer::kernel::probes::PROBES.len(),
        "every probe attaches"
    );
    let start = tracer.snapshot().expect("snapshot");
    send_udp(&ns, "127.0.0.1:7777".parse().expect("addr"), n);
    let received = lab::tcp_transfer(&link, 16 << 20, Duration::from_secs(6));
    assert!(received > 1 << 20, "transfer moved {received} bytes");
    std::thread::sleep(Duration::from_millis(700));
    let end = tracer.snapshot().expect("snapshot");
    Faults {
        ns,
        link,
        tracer,
        start,
        end,
    }
}

#[test]
fn read_as_5_10_drops_go_by_location_and_flows_stay_ipv4() {
    if !privileged("read_as_5_10") {
        return;
    }
    const N: u32 = 600;
    let Faults {
        ns,
        link,
        tracer,
        start,
        end,
    } = faults("k510", 41, as_5_10, N);

    // Drops: no reason on "5.10", so the rule's drops are NO_REASON_FIELD at the netfilter site,
    // exactly N in that namespace, and the verdict puts them in netfilter by location alone.
    let scope = netns_scope(&ns.path()).expect("scope");
    let report = tracer.report(&start, &end, 1.0, Some(scope), &[]);
    let rule_packets = ns.nft_counter_packets("inet", "trc", "dropped");
    assert_eq!(rule_packets, u64::from(N));
    assert_eq!(report.drops_with_reason("NETFILTER_DROP"), 0);
    let at_netfilter = drops_at(&report, "NO_REASON_FIELD", "nft_do_chain")
        + drops_at(&report, "NO_REASON_FIELD", "nf_hook_slow");
    eprintln!(
        "as 5.10: rule counter {rule_packets}, NO_REASON_FIELD at netfilter {at_netfilter}, \
         by reason {:?}",
        report
            .drops
            .by_reason
            .iter()
            .map(|r| (&r.reason, r.count))
            .collect::<Vec<_>>()
    );
    assert_eq!(at_netfilter, rule_packets);
    let (loss, _, _, _) = probe_loss(&report);
    assert_eq!(
        loss,
        BTreeMap::from([(Layer::IptablesNetpolicy, u64::from(N))])
    );

    // Retransmits: no family field, so IPv4 is told by the v4-mapped address; no err field, so
    // no attempt is counted as failed.
    let scope = netns_scope(&link.a.path()).expect("scope");
    let report = tracer.report(&start, &end, 1.0, Some(scope), &[]);
    let flows: Vec<_> = report
        .retransmits
        .flows
        .iter()
        .filter(|f| f.dport == 5201)
        .collect();
    assert_eq!(flows.len(), 1, "one flow: {:?}", report.retransmits.flows);
    let f = flows[0];
    eprintln!(
        "as 5.10: flow {} {}:{} -> {}:{}, {} retransmits, {} segments",
        f.family, f.saddr, f.sport, f.daddr, f.dport, f.retransmits, f.retransmitted_segments
    );
    assert_eq!(
        (f.family, f.saddr.as_str(), f.daddr.as_str()),
        ("ipv4", link.addr_a.as_str(), link.addr_b.as_str())
    );
    assert!(f.retransmits > 0);
    assert_eq!(f.failed_attempts, 0);
}

#[test]
fn read_as_5_10_without_btf_everything_is_namespace_0_and_one_segment_per_skb() {
    if !privileged("read_as_5_10_without_btf") {
        return;
    }
    const N: u32 = 400;
    let Faults {
        ns,
        link,
        tracer,
        start,
        end,
    } = faults("nobtf", 42, as_5_10_without_btf, N);

    // Without offsets the namespace is unknown: scoped to the test's namespace, nothing.
    let scoped = tracer.report(
        &start,
        &end,
        1.0,
        Some(netns_scope(&ns.path()).expect("scope")),
        &[],
    );
    assert_eq!(scoped.drops.total, 0);
    // Unscoped, every drop is in namespace 0, and the rule's drops are all there.
    let report = tracer.report(&start, &end, 1.0, None, &[]);
    for reason in &report.drops.by_reason {
        let inodes: Vec<u32> = reason.netns.iter().map(|n| n.inode).collect();
        assert_eq!(inodes, vec![0], "{}", reason.reason);
    }
    let at_netfilter = drops_at(&report, "NO_REASON_FIELD", "nft_do_chain")
        + drops_at(&report, "NO_REASON_FIELD", "nf_hook_slow");
    assert!(
        at_netfilter >= u64::from(N),
        "{at_netfilter} netfilter drops, {N} sent to the rule"
    );
    // No tcp_gso_segs offset: each retransmitted skb counts as one segment.
    let flows: Vec<_> = report
        .retransmits
        .flows
        .iter()
        .filter(|f| f.dport == 5201 && f.daddr == link.addr_b)
        .collect();
    assert_eq!(flows.len(), 1, "one flow: {:?}", report.retransmits.flows);
    let f = flows[0];
    eprintln!(
        "without BTF: {} retransmits, {} segments, namespace {}",
        f.retransmits, f.retransmitted_segments, f.netns
    );
    assert!(f.retransmits > 0);
    assert_eq!(f.retransmitted_segments, f.retransmits);
    assert_eq!(f.netns, 0);
}
