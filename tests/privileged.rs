//! Privileged integration tests: real programs in this kernel, real faults in namespaces the test
//! creates. Each test skips with a printed reason when not root. Run serially
//! (`--test-threads=1`): they share the kernel's probes and CPUs.

mod lab;

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    os::unix::process::CommandExt as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use lab::{bpf_held_by, drop_udp_7777, drops_at, privileged, send_udp, Link, Netns};
use tracer::{
    judge::report::Report,
    kernel::probes::{HookKind, ProbeState},
    modes::live::{netns_scope, LiveTracer},
};

fn start_tracer() -> LiveTracer {
    let tracer = LiveTracer::start().expect("starting the tracer");
    let attached = tracer.attached_count();
    assert_eq!(
        attached,
        tracer::kernel::probes::PROBES.len(),
        "every probe attaches on this kernel"
    );
    tracer
}

/// Every hook kind, for the count checks that must hold on each.
const HOOKS: [HookKind; 3] = [HookKind::TpBtf, HookKind::RawTp, HookKind::Tracepoint];

/// A tracer whose probes are on `kind` where they can be (as `TRACER_HOOK=kind`); asserts that
/// `program` really is.
fn start_tracer_on(kind: HookKind, program: &str) -> LiveTracer {
    let tracer = LiveTracer::start_with(|plan| plan.force_hook(kind)).expect("starting the tracer");
    assert_eq!(
        tracer.attached_count(),
        tracer::kernel::probes::PROBES.len(),
        "every probe attaches on {kind:?}"
    );
    let probe = tracer
        .meta()
        .probes
        .into_iter()
        .find(|p| p.program == program)
        .expect("the probe");
    assert_eq!(probe.hook, Some(kind), "{program}: {:?}", probe.hook_reason);
    eprintln!("--- {program} on {}", kind.as_str());
    tracer
}

/// Report of what happened while `work` ran, scoped to `ns`.
fn window(tracer: &LiveTracer, ns: &Netns, work: impl FnOnce()) -> Report {
    let start = tracer.snapshot().expect("snapshot");
    let began = Instant::now();
    work();
    let end = tracer.snapshot().expect("snapshot");
    let scope = netns_scope(&ns.path()).expect("namespace scope");
    tracer.report(
        &start,
        &end,
        began.elapsed().as_secs_f64(),
        Some(scope),
        &[],
    )
}

#[test]
fn udp_to_closed_port_counts_exactly_n_no_socket_drops_in_its_namespace() {
    if !privileged("udp_to_closed_port") {
        return;
    }
    for kind in HOOKS {
        udp_to_closed_port_on(kind);
    }
}

fn udp_to_closed_port_on(kind: HookKind) {
    let ours = Netns::new("udp");
    let other = Netns::new("noise");
    let tracer = start_tracer_on(kind, "kfree_skb");
    const N: u32 = 1000;
    const NOISE: u32 = 700;
    let start = tracer.snapshot().expect("snapshot");
    // Other traffic on the machine at the same time: the same fault in another namespace.
    let noise = {
        let to: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let file = std::fs::File::open(other.path()).expect("ns");
        std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
            for _ in 0..NOISE {
                let _ = sock.send_to(b"y", to);
            }
        })
    };
    send_udp(&ours, "127.0.0.1:9".parse().expect("addr"), N);
    noise.join().expect("noise thread");
    let end = tracer.snapshot().expect("snapshot");

    let scope = netns_scope(&ours.path()).expect("scope");
    let report = tracer.report(&start, &end, 1.0, Some(scope), &[]);
    assert_eq!(report.drops_with_reason("NO_SOCKET"), u64::from(N));
    let entry = report
        .drops
        .by_reason
        .iter()
        .find(|r| r.reason == "NO_SOCKET")
        .expect("NO_SOCKET entry");
    assert!(
        entry.locations[0].location.starts_with("__udp4_lib_rcv+"),
        "symbolised location: {}",
        entry.locations[0].location
    );

    let other_scope = netns_scope(&other.path()).expect("scope");
    let other_report = tracer.report(&start, &end, 1.0, Some(other_scope), &[]);
    assert_eq!(
        other_report.drops_with_reason("NO_SOCKET"),
        u64::from(NOISE)
    );
}

#[test]
fn nftables_drop_rule_count_matches_the_rules_own_counter() {
    if !privileged("nftables_drop_rule") {
        return;
    }
    for kind in HOOKS {
        nftables_drop_rule_on(kind);
    }
}

fn nftables_drop_rule_on(kind: HookKind) {
    let ns = Netns::new("nft");
    drop_udp_7777(&ns);
    let tracer = start_tracer_on(kind, "kfree_skb");
    const N: u32 = 800;
    let report = window(&tracer, &ns, || {
        send_udp(&ns, "127.0.0.1:7777".parse().expect("addr"), N);
    });
    let rule_packets = ns.nft_counter_packets("inet", "trc", "dropped");
    eprintln!(
        "nftables: rule counter {rule_packets}, tracer NETFILTER_DROP {}",
        report.drops_with_reason("NETFILTER_DROP")
    );
    assert_eq!(rule_packets, u64::from(N), "the rule saw every datagram");
    assert_eq!(report.drops_with_reason("NETFILTER_DROP"), rule_packets);
    let entry = report
        .drops
        .by_reason
        .iter()
        .find(|r| r.reason == "NETFILTER_DROP")
        .expect("NETFILTER_DROP entry");
    assert!(
        entry.locations[0].location.starts_with("nft_do_chain")
            || entry.locations[0].location.starts_with("nf_hook_slow"),
        "netfilter location: {}",
        entry.locations[0].location
    );
}

/// Issue 15: drops wait in per-CPU "last key" slots before they reach the drop map; every one
/// is still counted, once. On each hook kind, one thread pinned to one CPU sends, round after
/// round, to two namespaces in turn three datagrams each that are dropped on that CPU under
/// three keys (IPv4 and IPv6 to a closed port: NO_SOCKET at two locations; an nftables drop
/// rule: NETFILTER_DROP), so six keys share the CPU's four slots and slots are taken over all
/// the time. Meanwhile another thread takes snapshots: no key's count ever goes back. After
/// the flood, each namespace's counts are exact.
#[test]
fn drops_alternating_between_namespaces_on_one_cpu_stay_exact() {
    if !privileged("drops_alternating") {
        return;
    }
    for kind in HOOKS {
        drops_alternating_on(kind);
    }
}

fn drops_alternating_on(kind: HookKind) {
    use std::net::UdpSocket;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tracer_common::{counter, DropKey};
    const ROUNDS: u32 = 5000;
    let namespaces = [Netns::new("h15k-a"), Netns::new("h15k-b")];
    for ns in &namespaces {
        drop_udp_7777(ns);
    }
    let inodes: Vec<u32> = namespaces
        .iter()
        .map(|ns| netns_scope(&ns.path()).expect("scope").inode)
        .collect();
    // Sockets made inside each namespace stay in it, whichever thread sends on them.
    let sockets: Vec<(UdpSocket, UdpSocket)> = namespaces
        .iter()
        .map(|ns| {
            ns.run_in(|| {
                (
                    UdpSocket::bind("0.0.0.0:0").expect("udp4"),
                    UdpSocket::bind("[::]:0").expect("udp6"),
                )
            })
        })
        .collect();
    let tracer = start_tracer_on(kind, "kfree_skb");
    let ours =
        |snap: &tracer::kernel::snapshot::Snapshot| -> std::collections::HashMap<DropKey, u64> {
            snap.drops
                .iter()
                .filter(|(k, _)| inodes.contains(&k.netns))
                .map(|(k, v)| (*k, *v))
                .collect()
        };
    let pin = |cpu: usize| {
        let mut set = nix::sched::CpuSet::new();
        set.set(cpu).expect("cpu index");
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).expect("pinning");
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = tracer.snapshot().expect("snapshot");
    let done = AtomicBool::new(false);
    let (snapshots, went_back) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            if cpus > 1 {
                pin(1);
            }
            let mut last = ours(&start);
            let (mut taken, mut went_back) = (0u32, Vec::new());
            let deadline = Instant::now() + Duration::from_secs(60);
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                let now = ours(&tracer.snapshot().expect("snapshot"));
                for (key, before) in &last {
                    let after = now.get(key).copied().unwrap_or(0);
                    if after < *before {
                        went_back.push((*key, *before, after));
                    }
                }
                last = now;
                taken += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            (taken, went_back)
        });
        pin(0);
        let (v4, v6, nft): (SocketAddr, SocketAddr, SocketAddr) = (
            "127.0.0.1:9".parse().expect("addr"),
            "[::1]:9".parse().expect("addr"),
            "127.0.0.1:7777".parse().expect("addr"),
        );
        for _ in 0..ROUNDS {
            for (sock4, sock6) in &sockets {
                let _ = sock4.send_to(b"x", v4);
                let _ = sock6.send_to(b"x", v6);
                let _ = sock4.send_to(b"x", nft);
            }
        }
        done.store(true, Ordering::Relaxed);
        watcher.join().expect("snapshot thread")
    });
    // The sender's thread is this test's: let it run anywhere again.
    let mut all = nix::sched::CpuSet::new();
    for cpu in 0..cpus {
        all.set(cpu).expect("cpu index");
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &all).expect("unpinning");
    let end = tracer.snapshot().expect("snapshot");
    let takeovers = end
        .counter(counter::DROP_SLOT_TAKEOVERS)
        .saturating_sub(start.counter(counter::DROP_SLOT_TAKEOVERS));
    eprintln!(
        "{}: {snapshots} snapshots during the flood, {takeovers} slot takeovers",
        kind.as_str()
    );
    assert!(went_back.is_empty(), "counts went back: {went_back:?}");
    assert!(
        snapshots >= 10,
        "only {snapshots} snapshots during the flood"
    );
    assert!(
        takeovers >= 2 * u64::from(ROUNDS),
        "six keys in four slots take slots over at least twice a round: {takeovers}"
    );
    for ns in &namespaces {
        let scope = netns_scope(&ns.path()).expect("scope");
        let report = tracer.report(&start, &end, 1.0, Some(scope), &[]);
        let at = |reason: &str, function: &str| drops_at(&report, reason, function);
        let rule = ns.nft_counter_packets("inet", "trc", "dropped");
        eprintln!(
            "{}: NO_SOCKET udp4 {} udp6 {}, NETFILTER_DROP {} (rule {rule})",
            ns.name,
            at("NO_SOCKET", "__udp4_lib_rcv+"),
            at("NO_SOCKET", "__udp6_lib_rcv+"),
            report.drops_with_reason("NETFILTER_DROP")
        );
        assert_eq!(at("NO_SOCKET", "__udp4_lib_rcv+"), u64::from(ROUNDS));
        assert_eq!(at("NO_SOCKET", "__udp6_lib_rcv+"), u64::from(ROUNDS));
        assert_eq!(report.drops_with_reason("NO_SOCKET"), 2 * u64::from(ROUNDS));
        assert_eq!(rule, u64::from(ROUNDS), "the rule saw every datagram");
        assert_eq!(report.drops_with_reason("NETFILTER_DROP"), rule);
    }
}

#[test]
fn drops_of_a_device_moved_to_another_namespace_follow_it_within_the_slot_bound() {
    if !privileged("device_moved") {
        return;
    }
    for kind in HOOKS {
        device_moved_on(kind);
    }
}

/// The drop slots remember a device's namespace (`DropSlot::source`) and read it again every
/// `DROP_SLOT_REVALIDATE`th count: a device moved to another namespace (same pointer) keeps
/// at most that many minus one of its drops per CPU in its old namespace.
fn device_moved_on(kind: HookKind) {
    use tracer_common::DROP_SLOT_REVALIDATE;
    const N: u32 = 1000;
    let (sender, first, second) = (
        Netns::new("h15y-s"),
        Netns::new("h15y-a"),
        Netns::new("h15y-b"),
    );
    lab::veth(
        &sender,
        "h15y-s0",
        "198.18.72.1/30",
        &first,
        "h15y-r0",
        "198.18.72.2/30",
    );
    // A fixed address and a permanent neighbour entry: no ARP, whichever namespace the
    // receiving end is in, so every datagram reaches it.
    first.ip(&["link", "set", "h15y-r0", "address", "02:00:c6:12:48:02"]);
    sender.ip(&[
        "neigh",
        "replace",
        "198.18.72.2",
        "lladdr",
        "02:00:c6:12:48:02",
        "dev",
        "h15y-s0",
        "nud",
        "permanent",
    ]);
    let tracer = start_tracer_on(kind, "kfree_skb");
    // One thread on one CPU: the receive path runs on the sender's CPU (veth's backlog).
    let send = |count: u32| {
        sender.run_in(move || {
            let mut set = nix::sched::CpuSet::new();
            set.set(0).expect("cpu index");
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).expect("pinning");
            let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp4");
            let to: SocketAddr = "198.18.72.2:9".parse().expect("addr");
            for _ in 0..count {
                let _ = sock.send_to(b"x", to);
            }
        });
        std::thread::sleep(Duration::from_millis(200));
    };
    let no_socket = |ns: &Netns, start: &tracer::kernel::snapshot::Snapshot, end| {
        let scope = netns_scope(&ns.path()).expect("scope");
        let report = tracer.report(start, end, 1.0, Some(scope), &[]);
        drops_at(&report, "NO_SOCKET", "__udp4_lib_rcv+")
    };
    let start = tracer.snapshot().expect("snapshot");
    send(N);
    let moved = tracer.snapshot().expect("snapshot");
    let before = (
        no_socket(&first, &start, &moved),
        no_socket(&second, &start, &moved),
    );
    first.ip(&["link", "set", "h15y-r0", "netns", &second.name]);
    second.ip(&["addr", "add", "198.18.72.2/30", "dev", "h15y-r0"]);
    second.ip(&["link", "set", "h15y-r0", "up"]);
    std::thread::sleep(Duration::from_millis(200));
    let after_move = tracer.snapshot().expect("snapshot");
    send(N);
    let end = tracer.snapshot().expect("snapshot");
    let after = (
        no_socket(&first, &after_move, &end),
        no_socket(&second, &after_move, &end),
    );
    eprintln!(
        "{}: before the move {before:?}, after it {after:?} (first, second namespace)",
        kind.as_str()
    );
    assert_eq!(
        before,
        (u64::from(N), 0),
        "every drop in the first namespace"
    );
    assert_eq!(after.0 + after.1, u64::from(N), "every drop counted once");
    assert!(
        after.0 < DROP_SLOT_REVALIDATE,
        "at most {} drops (one CPU) stay in the old namespace: {}",
        DROP_SLOT_REVALIDATE - 1,
        after.0
    );
}

#[test]
fn tcp_retransmits_through_random_loss_match_the_namespace_counters() {
    if !privileged("tcp_retransmits") {
        return;
    }
    for kind in HOOKS {
        tcp_retransmits_on(kind);
    }
}

/// Side a's `Tcp RetransSegs` and `TcpExt TCPRetransFail`.
fn retrans_counters(link: &Link) -> (u64, u64) {
    (
        link.a.net_counter("snmp", "Tcp", "RetransSegs"),
        link.a.net_counter("netstat", "TcpExt", "TCPRetransFail"),
    )
}

/// Lets the connections' last timers run out inside the window, so a late retransmission is
/// seen by both the tracer and the counters read after it: waits until side a's RetransSegs
/// holds still for 500 ms (at most 5 s; a loaded machine delays the last retransmissions).
fn until_retransmits_settle(link: &Link) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = retrans_counters(link).0;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = retrans_counters(link).0;
        if now == last || Instant::now() > deadline {
            break;
        }
        last = now;
    }
}

fn tcp_retransmits_on(kind: HookKind) {
    let link = Link::new("rtx", 1);
    // Random loss of 2 % of the sender's segments at the receiver's input.
    link.b.nft(&format!(
        "table inet trc {{\n\
           chain input {{\n\
             type filter hook input priority 0; policy accept;\n\
             ip saddr {} tcp dport 5201 numgen random mod 100 < 2 drop\n\
           }}\n\
         }}\n",
        link.addr_a
    ));
    let tracer = start_tracer_on(kind, "tcp_retransmit_skb");
    let (segs_before, fail_before) = retrans_counters(&link);
    let report = window(&tracer, &link.a, || {
        let received = lab::tcp_transfer(&link, 32 << 20, Duration::from_secs(8));
        assert!(received > 1 << 20, "transfer moved {received} bytes");
        until_retransmits_settle(&link);
    });
    let (segs_after, fail_after) = retrans_counters(&link);
    let (retrans_segs, retrans_fail) = (segs_after - segs_before, fail_after - fail_before);

    let flows: Vec<_> = report
        .retransmits
        .flows
        .iter()
        .filter(|f| f.dport == 5201 && f.daddr == link.addr_b)
        .collect();
    assert_eq!(flows.len(), 1, "one flow: {:?}", report.retransmits.flows);
    let traced = flows[0].retransmitted_segments;
    let missed = report
        .tracer_cost
        .programs
        .iter()
        .find(|p| p.program == "tcp_retransmit_skb")
        .map_or(0, |p| p.recursion_misses);
    eprintln!(
        "retransmits: tracer {traced} segments in {} skbs; RetransSegs {retrans_segs}, \
         TCPRetransFail {retrans_fail}; recursion misses {missed}",
        flows[0].retransmits
    );
    assert!(
        retrans_segs >= 20,
        "the loss caused retransmissions ({retrans_segs})"
    );
    // RetransSegs is added before the transmit is attempted; the tracer counts successful
    // retransmissions only (err == 0). Tolerance: exact, less the attempts that failed
    // (TCPRetransFail).
    assert!(
        traced <= retrans_segs && traced + retrans_fail >= retrans_segs,
        "tracer {traced} segments vs RetransSegs {retrans_segs} (TCPRetransFail {retrans_fail})"
    );
    // GSO: a retransmitted skb can carry several segments, never fewer than one.
    assert!(flows[0].retransmits <= traced && flows[0].retransmits > 0);
    assert_eq!(flows[0].saddr, link.addr_a);
}

/// Four flows retransmitting at once through 5 % loss: on two CPUs with two retransmit slots
/// each, flows take each other's slots and a slot fills up (`RETRANS_SLOT_FLUSH`), so counts
/// move from the slots into the map during the traffic; at the end the flows' segments match
/// `RetransSegs` (on each hook kind; within 1 %, see the assertion).
#[test]
fn tcp_retransmits_of_concurrent_flows_stay_exact() {
    if !privileged("tcp_retransmits_concurrent") {
        return;
    }
    for kind in HOOKS {
        concurrent_retransmits_on(kind);
    }
}

fn concurrent_retransmits_on(kind: HookKind) {
    const PORTS: [u16; 4] = [5201, 5202, 5203, 5204];
    let link = std::sync::Arc::new(Link::new("rtx4", 1));
    link.b.nft(&format!(
        "table inet trc {{\n\
           chain input {{\n\
             type filter hook input priority 0; policy accept;\n\
             ip saddr {} tcp dport 5201-5204 numgen random mod 100 < 5 drop\n\
           }}\n\
         }}\n",
        link.addr_a
    ));
    let tracer = start_tracer_on(kind, "tcp_retransmit_skb");
    let (segs_before, fail_before) = retrans_counters(&link);
    let report = window(&tracer, &link.a, || {
        let transfers: Vec<_> = PORTS
            .iter()
            .map(|&port| {
                let link = std::sync::Arc::clone(&link);
                std::thread::spawn(move || {
                    lab::tcp_transfer_to(&link, port, 64 << 20, Duration::from_secs(8))
                })
            })
            .collect();
        for t in transfers {
            let received = t.join().expect("transfer");
            assert!(received > 1 << 20, "transfer moved {received} bytes");
        }
        until_retransmits_settle(&link);
    });
    let (segs_after, fail_after) = retrans_counters(&link);
    let (retrans_segs, retrans_fail) = (segs_after - segs_before, fail_after - fail_before);
    let flows: Vec<_> = report
        .retransmits
        .flows
        .iter()
        .filter(|f| PORTS.contains(&f.dport) && f.daddr == link.addr_b)
        .collect();
    let traced: u64 = flows.iter().map(|f| f.retransmitted_segments).sum();
    let skbs: Vec<u64> = flows.iter().map(|f| f.retransmits).collect();
    // Runs the kernel skipped (a retransmission in a softirq that interrupted this program on
    // the same CPU, or any tracing program there on the classic hook): seen by no program.
    let missed = report
        .tracer_cost
        .programs
        .iter()
        .find(|p| p.program == "tcp_retransmit_skb")
        .map_or(0, |p| p.recursion_misses);
    eprintln!(
        "{kind:?}: {} flows, retransmitted skbs {skbs:?}, tracer {traced} segments; \
         RetransSegs {retrans_segs}, TCPRetransFail {retrans_fail}; program runs {:?}, skbs of \
         every flow {}, recursion misses {missed}",
        flows.len(),
        report.tracer_counters.get("retransmit_events"),
        report
            .retransmits
            .flows
            .iter()
            .map(|f| f.retransmits + f.failed_attempts)
            .sum::<u64>()
    );
    assert_eq!(flows.len(), PORTS.len(), "{:?}", report.retransmits.flows);
    assert!(
        skbs.iter().any(|&n| n > tracer_common::RETRANS_SLOT_FLUSH),
        "a flow retransmitted more skbs than a slot holds: {skbs:?}"
    );
    // Never above RetransSegs; below it by at most 1 % (less the failed attempts) unless the
    // kernel says it skipped runs. Not exact: with four flows at once RetransSegs sometimes
    // counts segments no run's skb carried (45–76 of ~10 000, with every run counted in a flow
    // and no recursion miss), on this change and on the code before it (per-flow map updates)
    // alike. A slot lost or counted twice would be 64 skbs (~1 500 segments) or above.
    assert!(
        traced <= retrans_segs
            && (missed > 0 || (traced + retrans_fail) * 100 >= retrans_segs * 99),
        "tracer {traced} segments vs RetransSegs {retrans_segs} (TCPRetransFail {retrans_fail}, \
         recursion misses {missed})"
    );
    assert!(flows
        .iter()
        .all(|f| f.retransmits > 0 && f.retransmits <= f.retransmitted_segments));
}

#[test]
fn load_pinned_to_one_cpu_dominates_net_rx_time() {
    if !privileged("softirq_pinned") {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus < 2 {
        eprintln!("skipped softirq_pinned: needs two CPUs, this machine has {cpus}");
        return;
    }
    for kind in HOOKS {
        net_rx_pinned_on(kind, cpus);
    }
}

fn net_rx_pinned_on(kind: HookKind, cpus: usize) {
    let link = Link::new("irq", 2);
    let tracer = start_tracer_on(kind, "softirq_exit");
    let target: SocketAddr = format!("{}:9", link.addr_b).parse().expect("addr");
    let pinned = cpus - 1;
    let report = window(&tracer, &link.a, || {
        let sent = lab::flood_udp(&link.a, target, Duration::from_secs(2), Some(pinned));
        assert!(sent > 10_000, "load generator sent {sent}");
    });
    let by_cpu = report.net_rx_ns_by_cpu();
    let total: u64 = by_cpu.values().sum();
    eprintln!("NET_RX ns by CPU with load pinned to CPU {pinned}: {by_cpu:?}");
    let on_pinned = by_cpu.get(&(pinned as u32)).copied().unwrap_or(0);
    assert!(
        on_pinned >= 10_000_000,
        "pinned CPU {pinned} spent {on_pinned} ns in NET_RX ({by_cpu:?})"
    );
    assert!(
        on_pinned * 100 >= total * 80,
        "pinned CPU {pinned} has {on_pinned} of {total} ns NET_RX ({by_cpu:?})"
    );
}

/// NET_RX runs on each CPU from `/proc/softirqs` (the kernel counts a run just before
/// `irq:softirq_entry` fires).
fn proc_net_rx_runs() -> Vec<u64> {
    let text = std::fs::read_to_string("/proc/softirqs").expect("/proc/softirqs");
    tracer::node::counters::parse::parse_softirqs(&text)
        .remove("NET_RX")
        .expect("NET_RX row")
}

/// Issue 15: under a flood the softirq programs read the clock on a sample of NET_RX runs only.
/// Runs stay exact, on each hook kind: per CPU, the sampled tracer's count brackets
/// `/proc/softirqs`' NET_RX delta (its snapshots taken just inside and just outside the two reads
/// of the file; entries its program missed, `recursion_misses`, allowed for). The time is an
/// estimate: on the CPU the flood is pinned to, it must lie within 10 % of what a second tracer,
/// attached at the same time with sampling off (every run timed), measured over the same runs.
/// (Not a perfect reference: a timed span also holds the other tracer's program on that
/// tracepoint. On a run the sampled tracer times, that is the other's full entry or exit, with
/// its clock read; on the untimed runs the other's span holds only the sampled tracer's cheap
/// path. So the sampled estimate reads ~1–3 % high here, runs of ~3 µs.)
#[test]
fn sampled_net_rx_runs_exact_and_time_within_tolerance_of_every_run_timed() {
    if !privileged("softirq_sampled") {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let link = Link::new("h15s", 48);
    for kind in HOOKS {
        sampled_net_rx_on(kind, &link, cpus);
    }
}

/// NET_RX `(runs, timed_runs, time_ns)` of one CPU in a report.
fn net_rx_of(report: &Report, cpu: u32) -> (u64, u64, u64) {
    report
        .softirq
        .iter()
        .filter(|c| c.cpu == cpu)
        .flat_map(|c| c.vectors.iter())
        .find(|v| v.vector == "NET_RX")
        .map(|v| (v.runs, v.timed_runs, v.time_ns))
        .unwrap_or_default()
}

fn sampled_net_rx_on(kind: HookKind, link: &Link, cpus: usize) {
    let sampled = start_tracer_on(kind, "softirq_entry");
    let exact = LiveTracer::start_with(|plan| {
        plan.force_hook(kind);
        plan.config.softirq_sample_max_shift = 0;
    })
    .expect("starting the tracer with sampling off");
    let target: SocketAddr = format!("{}:9", link.addr_b).parse().expect("addr");
    let pinned = cpus - 1;
    let outer_start = sampled.snapshot().expect("snapshot");
    let proc_start = proc_net_rx_runs();
    let (start, exact_start) = (
        sampled.snapshot().expect("snapshot"),
        exact.snapshot().expect("snapshot"),
    );
    let began = Instant::now();
    let sent = lab::flood_udp(&link.a, target, Duration::from_secs(2), Some(pinned));
    let (end, exact_end) = (
        sampled.snapshot().expect("snapshot"),
        exact.snapshot().expect("snapshot"),
    );
    let proc_end = proc_net_rx_runs();
    let outer_end = sampled.snapshot().expect("snapshot");
    let seconds = began.elapsed().as_secs_f64();
    assert!(sent > 10_000, "load generator sent {sent}");

    let report = sampled.report(&start, &end, seconds, None, &[]);
    let exact_report = exact.report(&exact_start, &exact_end, seconds, None, &[]);
    let outer = sampled.report(&outer_start, &outer_end, seconds, None, &[]);
    let missed: u64 = outer
        .tracer_cost
        .programs
        .iter()
        .filter(|p| p.program == "softirq_entry")
        .map(|p| p.recursion_misses)
        .sum();
    for (cpu, (before, after)) in proc_start.iter().zip(&proc_end).enumerate() {
        let kernel = after - before;
        let (inner, timed, ns) = net_rx_of(&report, cpu as u32);
        let (outer_runs, _, _) = net_rx_of(&outer, cpu as u32);
        let (exact_runs, exact_timed, exact_ns) = net_rx_of(&exact_report, cpu as u32);
        eprintln!(
            "CPU {cpu}: /proc/softirqs NET_RX +{kernel}; sampled tracer runs {inner} (outer \
             {outer_runs}, entries missed {missed}), timed {timed}, {ns} ns; every run timed: \
             runs {exact_runs}, timed {exact_timed}, {exact_ns} ns"
        );
        assert!(
            inner <= kernel && kernel <= outer_runs + missed,
            "CPU {cpu}: NET_RX runs {inner}..{outer_runs} (+{missed} missed) do not bracket \
             /proc/softirqs +{kernel}"
        );
        assert_eq!(
            exact_timed, exact_runs,
            "CPU {cpu}: sampling off times every run"
        );
    }
    let cpu = pinned as u32;
    let (runs, timed, ns) = net_rx_of(&report, cpu);
    let (_, _, exact_ns) = net_rx_of(&exact_report, cpu);
    assert!(
        runs >= 10_000 && timed * 4 <= runs,
        "the flood's CPU {cpu} was sampled: {timed} of {runs} runs timed"
    );
    let ratio = ns as f64 / exact_ns.max(1) as f64;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "CPU {cpu}: estimated {ns} ns vs {exact_ns} ns with every run timed (ratio {ratio:.3})"
    );
    let note = report
        .notes
        .iter()
        .find(|n| n.contains("sampled runs"))
        .expect("a note says the time was estimated");
    assert!(
        note.contains(&format!("CPU {cpu} NET_RX {timed} of {runs} runs timed")),
        "{note}"
    );
}

/// Starts `tracer ARGS` and returns once it says all five probes are attached (stdout piped;
/// stderr drained from then on so the child never blocks on it).
fn start_tracer_binary(args: &[&std::ffi::OsStr], stdout: Stdio) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracer"))
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting tracer");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().expect("a progress line").expect("utf-8");
    let all = format!("{} probes attached", tracer::kernel::probes::PROBES.len());
    assert!(first.contains(&all), "progress: {first}");
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// `NO_SOCKET` drops in a verdict document's observations.
fn no_socket_drops(doc: &serde_json::Value) -> u64 {
    doc["observations"]["drops"]["by_reason"]
        .as_array()
        .expect("by_reason")
        .iter()
        .filter(|r| r["reason"] == "NO_SOCKET")
        .map(|r| r["count"].as_u64().expect("count"))
        .sum()
}

/// The real binary, scoped with --netns, reports the fault injected while it watches.
#[test]
fn report_command_prints_json_with_the_namespaces_drops() {
    if !privileged("report_command") {
        return;
    }
    let ns = Netns::new("cli");
    let path = ns.path();
    let args = ["report", "--duration", "3s", "--format", "json", "--netns"];
    let mut argv: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    argv.push(path.as_os_str());
    // Returns once the probes are attached, before the fault is injected.
    let child = start_tracer_binary(&argv, Stdio::piped());
    const N: u32 = 321;
    send_udp(&ns, "127.0.0.1:9".parse().expect("addr"), N);
    let out = child.wait_with_output().expect("tracer output");
    assert_eq!(out.status.code(), Some(0), "healthy: exit 0");
    let doc = lab::document::parse(&out.stdout);
    assert_eq!(
        doc["root_cause"], "none",
        "closed-port traffic is not a network loss"
    );
    let observed = &doc["observations"];
    assert_eq!(no_socket_drops(&doc), u64::from(N));
    // The lab's `ip netns` name stands next to the inode of its drops.
    let named = observed["drops"]["by_reason"]
        .as_array()
        .expect("by_reason")
        .iter()
        .filter(|r| r["reason"] == "NO_SOCKET")
        .flat_map(|r| r["netns"].as_array().cloned().unwrap_or_default())
        .find(|n| n["count"].as_u64() == Some(u64::from(N)))
        .expect("the lab's namespace row");
    assert_eq!(named["netns_name"], ns.name.as_str(), "{named}");
    let probes = observed["probes"].as_array().expect("probes");
    assert_eq!(probes.len(), tracer::kernel::probes::PROBES.len());
    assert!(probes.iter().all(|p| p["state"] == "attached"));
    assert!(
        observed["window"]["netns"]["inode"]
            .as_u64()
            .expect("inode")
            > 0
    );
}

/// A person who is not root gets one sentence and a non-zero exit, not a panic.
#[test]
fn not_root_gets_one_clear_sentence() {
    if !nix::unistd::geteuid().is_root() {
        // Already not root: run as we are.
        let out = Command::new(env!("CARGO_BIN_EXE_tracer"))
            .args(["report", "--duration", "1s"])
            .output()
            .expect("run");
        assert!(!out.status.success());
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tracer"))
        .args(["report", "--duration", "1s"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("running tracer as nobody");
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit status 2: the tracer could not do its job"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("must run as root"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// Probe outcomes are reported for every probe, with the attach time.
#[test]
fn probes_section_lists_every_probe_with_attach_time() {
    if !privileged("probes_section") {
        return;
    }
    let ns = Netns::new("probes");
    let tracer = start_tracer();
    let report = window(&tracer, &ns, || {});
    assert_eq!(report.probes.len(), tracer::kernel::probes::PROBES.len());
    for p in &report.probes {
        assert_eq!(p.state, ProbeState::Attached, "{p:?}");
        assert!(p.attach_ms.expect("attach time") > 0.0);
    }
    assert!(report.window.startup_ms > 0.0);
    assert_eq!(report.drops.total, 0, "an idle namespace has no drops");
}

/// Ids of loaded BPF programs with the tracer's program names, from bpftool.
fn tracer_program_ids() -> Vec<u64> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .expect("bpftool (cargo xtask setup installs it)");
    let progs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    // Each probe's program on any hook kind: `kfree_skb`, `kfree_skb_raw`, `kfree_skb_btf`.
    let names: Vec<String> = tracer::kernel::probes::PROBES
        .iter()
        .flat_map(|p| {
            [
                p.program.to_owned(),
                format!("{}{}", p.program, tracer_common::RAW_TP_SUFFIX),
                format!("{}{}", p.program, tracer_common::BTF_TP_SUFFIX),
            ]
        })
        .collect();
    progs
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| {
                    p["name"]
                        .as_str()
                        .is_some_and(|n| names.iter().any(|m| m == n))
                })
                .filter_map(|p| p["id"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILL gives the tracer no chance to clean up: the kernel must still detach and free every
/// program, because links and programs live only as long as the process's descriptors.
#[test]
fn sigkill_leaves_no_program_attached() {
    if !privileged("sigkill_cleanup") {
        return;
    }
    if Command::new("bpftool").arg("version").output().is_err() {
        eprintln!("skipped sigkill_cleanup: bpftool is not installed");
        return;
    }
    let before = tracer_program_ids();
    let args = ["report", "--duration", "60s", "--format", "json"];
    let argv: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let mut child = start_tracer_binary(&argv, Stdio::null());
    // Only this child's programs: other tracers may run beside the test (their programs have
    // the same names and come and go).
    let (held, _) = bpf_held_by(child.id() as i32);
    let during: Vec<u64> = tracer_program_ids()
        .into_iter()
        .filter(|id| !before.contains(id) && held.contains(id))
        .collect();
    assert_eq!(
        during.len(),
        tracer::kernel::probes::PROBES.len(),
        "every one of the tracer's programs is loaded"
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left: Vec<u64> = during.clone();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = tracer_program_ids();
        left.retain(|id| now.contains(id));
    }
    assert!(
        left.is_empty(),
        "programs still loaded after SIGKILL: {left:?}"
    );
}

/// Two tracers at once on one node each see every drop.
#[test]
fn two_tracers_at_once_both_count_every_drop() {
    if !privileged("two_tracers") {
        return;
    }
    let ns = Netns::new("two");
    let path = ns.path();
    // Long enough that the first tracer's window is still open when the second has started
    // (start-up reads every namespace of the node: seconds on a node with a hundred).
    let args = ["report", "--duration", "10s", "--format", "json", "--netns"];
    let mut argv: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    argv.push(path.as_os_str());
    let start = || start_tracer_binary(&argv, Stdio::piped());
    let (a, b) = (start(), start());
    const N: u32 = 250;
    send_udp(&ns, "127.0.0.1:9".parse().expect("addr"), N);
    for child in [a, b] {
        let out = child.wait_with_output().expect("tracer output");
        let doc = lab::document::parse(&out.stdout);
        assert_eq!(no_socket_drops(&doc), u64::from(N));
    }
}

/// `tracer check` on this node: every probe available as root; as nobody, the privilege line
/// fails with its fix and the exit status says so.
#[test]
fn check_says_what_works_and_what_does_not() {
    if !privileged("check") {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tracer"))
        .arg("check")
        .output()
        .expect("tracer check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for probe in [
        "skb:kfree_skb",
        "tcp:tcp_retransmit_skb",
        "tcp:tcp_retransmit_synack",
        "irq:softirq_entry",
        "irq:softirq_exit",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok") && l.contains(&format!("probe {probe}"))),
            "{probe}:\n{text}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tracer"))
        .arg("check")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("tracer check as nobody");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("privileges") && l.contains("fix:")),
        "{text}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// Every `(+N` change in a text: the counter rises the document's evidence and signals show.
fn shown_rises(text: &str) -> Vec<u64> {
    text.match_indices("(+")
        .filter_map(|(at, _)| {
            let digits: String = text[at + 2..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}

/// An interface deleted and recreated mid-window, with traffic on it before and after (once
/// quickly, so its counters fall between two samples; once with a gap of 1.5 s, so it is missing
/// from a sample): the real binary's document says what happened to it, and shows no absurd
/// counter change (nothing above 2^40, no layer scored from the fall).
#[test]
fn interface_recreated_mid_window_is_noted_and_no_change_is_absurd() {
    if !privileged("interface_recreated_mid_window") {
        return;
    }
    const ABSURD: u64 = 1 << 40;
    let a = Netns::new("vra");
    let b = Netns::new("vrb");
    let make = || {
        lab::veth(
            &a,
            "veth-a",
            "198.18.77.1/30",
            &b,
            "veth-b",
            "198.18.77.2/30",
        )
    };
    make();
    let path = a.path();
    let args = ["report", "--duration", "6s", "--format", "json", "--netns"];
    let mut argv: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    argv.push(path.as_os_str());
    let child = start_tracer_binary(&argv, Stdio::piped());
    let began = Instant::now();
    let to: SocketAddr = "198.18.77.2:9".parse().expect("addr");
    let sleep_until = |s: f64| {
        let at = Duration::from_secs_f64(s);
        if let Some(left) = at.checked_sub(began.elapsed()) {
            std::thread::sleep(left);
        }
    };
    let tx_packets = || -> u64 {
        let out = a.exec("cat", &["/sys/class/net/veth-a/statistics/tx_packets"]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("tx_packets")
    };
    // Before: 3,000 datagrams (answered by port unreachable from b).
    send_udp(&a, to, 3000);
    sleep_until(1.4);
    let before = tx_packets();
    // Quick: deleted and recreated within one sample interval, 20 datagrams after.
    a.ip(&["link", "del", "veth-a"]);
    make();
    send_udp(&a, to, 20);
    sleep_until(3.2);
    let after_quick = tx_packets();
    // Slow: missing for 1.5 s (at least one sample without it), then 500 datagrams.
    a.ip(&["link", "del", "veth-a"]);
    std::thread::sleep(Duration::from_millis(1500));
    make();
    send_udp(&a, to, 500);
    let after_slow = tx_packets();
    let out = child.wait_with_output().expect("tracer output");
    assert_ne!(out.status.code(), Some(2), "the tracer did its job");
    let doc = lab::document::parse(&out.stdout);
    let notes: Vec<String> = doc["observations"]["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    println!("veth-a tx_packets: {before} before, {after_quick} after the quick recreation, {after_slow} after the slow one");
    for n in &notes {
        println!("note: {n}");
    }
    let about_veth: Vec<&String> = notes
        .iter()
        .filter(|n| n.starts_with("counters: ") && n.contains("veth-a"))
        .collect();
    assert!(
        about_veth
            .iter()
            .any(|n| n.contains("interface veth-a of") && n.contains("vanished")),
        "the slow recreation is said: {notes:?}"
    );
    assert!(
        about_veth
            .iter()
            .any(|n| n.contains("interface veth-a of") && n.contains("appeared")),
        "{notes:?}"
    );
    // The quick one: its counters fell between two samples (a reset), or a sample fell in
    // the gap (another vanish); either way a third line at least.
    assert!(
        about_veth.iter().any(|n| n.contains("went back"))
            || about_veth.iter().filter(|n| n.contains("vanished")).count() >= 2,
        "the quick recreation is said: {notes:?}"
    );
    // Nothing absurd anywhere the document shows a counter change.
    let mut shown = Vec::new();
    for item in doc["evidence"].as_array().expect("evidence") {
        shown.extend(shown_rises(item["content"].as_str().unwrap_or_default()));
    }
    for (layer, score) in doc["layer_scores"].as_object().expect("layer_scores") {
        let lost = score["lost_packets"].as_u64().expect("lost_packets");
        assert!(lost <= ABSURD, "{layer}: {lost}");
        for signal in score["signals"].as_array().expect("signals") {
            shown.extend(shown_rises(signal.as_str().unwrap_or_default()));
        }
    }
    assert!(shown.iter().all(|d| *d <= ABSURD), "{shown:?}");
    // The falls were not read as loss: no layer lost anything from veth-a's counters (the
    // lab sends only to a closed port, which is not a network loss).
    assert_eq!(doc["root_cause"], "none", "{}", doc["root_cause"]);
}

/// Issue 14 item 8: only the timed (networking) vectors are paired, so the TIMER, RCU and SCHED
/// exits of an idle host are not "unpaired"; NET_RX time is still counted.
#[test]
fn softirq_exits_of_untimed_vectors_are_not_counted_unpaired() {
    if !privileged("softirq_unpaired") {
        return;
    }
    let link = Link::new("unp", 3);
    let tracer = start_tracer();
    let target: SocketAddr = format!("{}:9", link.addr_b).parse().expect("addr");
    let start = tracer.snapshot().expect("snapshot");
    let began = Instant::now();
    let sent = lab::flood_udp(&link.a, target, Duration::from_millis(500), None);
    // The rest of the window mostly idle: timer ticks, RCU and scheduler softirqs only.
    std::thread::sleep(Duration::from_secs(3));
    let end = tracer.snapshot().expect("snapshot");
    let unpaired = end
        .since(&start)
        .counter(tracer_common::counter::SOFTIRQ_UNPAIRED);
    let report = tracer.report(&start, &end, began.elapsed().as_secs_f64(), None, &[]);
    let net_rx: u64 = report.net_rx_ns_by_cpu().values().sum();
    eprintln!("sent {sent}; unpaired exits {unpaired}; NET_RX {net_rx} ns");
    assert!(sent > 1_000, "load generator sent {sent}");
    // A NET_RX/NET_TX softirq already running when the programs attached can end unpaired;
    // nothing else may.
    assert!(unpaired < 16, "{unpaired} unpaired softirq exits in 3.5 s");
    assert!(net_rx > 0, "NET_RX time counted: {net_rx} ns");
}

/// One program's `run_cnt` and `recursion_misses` as `bpftool prog show id N -j` reads them
/// (bpftool leaves `recursion_misses` out while it is 0).
fn bpftool_counters(id: u32) -> (u64, u64) {
    let out = Command::new("bpftool")
        .args(["prog", "show", "id", &id.to_string(), "-j"])
        .output()
        .expect("bpftool");
    let prog: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    (
        prog["run_cnt"].as_u64().unwrap_or(0),
        prog["recursion_misses"].as_u64().unwrap_or(0),
    )
}

fn bpf_stats_sysctl() -> String {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
        .expect("kernel.bpf_stats_enabled")
        .trim()
        .to_owned()
}

/// The in-program counter `index` of this process's `PROBE_COUNTERS` map(s), summed over CPUs,
/// as bpftool reads it (`None` when bpftool or the map is not there).
fn probe_counter_in_map(index: u32) -> Option<u64> {
    let maps = std::fs::read_dir("/proc/self/fdinfo").ok()?;
    let ids: Vec<u64> = maps
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("map_id:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect();
    let mut total = None;
    for id in ids {
        let show = Command::new("bpftool")
            .args(["map", "show", "id", &id.to_string(), "-j"])
            .output()
            .ok()?;
        let map: serde_json::Value = serde_json::from_slice(&show.stdout).ok()?;
        if map["name"] != tracer_common::MAP_PROBE_COUNTERS {
            continue;
        }
        let key: Vec<String> = index.to_ne_bytes().iter().map(u8::to_string).collect();
        let lookup = Command::new("bpftool")
            .args(["map", "lookup", "id", &id.to_string(), "key"])
            .args(&key)
            .arg("-j")
            .output()
            .ok()?;
        let entry: serde_json::Value = serde_json::from_slice(&lookup.stdout).ok()?;
        for cpu in entry["values"].as_array()? {
            let bytes: Vec<u8> = cpu["value"]
                .as_array()?
                .iter()
                .filter_map(|b| u8::from_str_radix(b.as_str()?.trim_start_matches("0x"), 16).ok())
                .collect();
            let value = u64::from_ne_bytes(bytes.try_into().ok()?);
            *total.get_or_insert(0) += value;
        }
    }
    total
}

/// Issue 15, session 11: the run counters (the `*_events` of the programs that count every
/// run) come from the kernel's `run_cnt` where it keeps one, and the programs stop adding to
/// them. With the programs made to count as well (`TRACER_RUN_COUNTS=programs`, statistics
/// still held) both sources count the same runs of the same traffic. Tolerance: a snapshot
/// reads the programs' counters before the kernel's run counts, and a program adds first thing
/// while the kernel counts a run at its end, so the kernel's count of one snapshot lies between
/// the programs' count of that snapshot less the runs then in flight (at most one per CPU: a
/// program does not nest on a CPU) and the programs' count of the next snapshot. Recursion
/// misses are in neither (a program the kernel skipped did not run).
#[test]
fn run_counters_from_the_kernel_equal_the_programs_own_count() {
    use tracer_common::counter;
    if !privileged("run_counters") {
        return;
    }
    const N: u32 = 3000;
    let cpus = std::thread::available_parallelism().map_or(64, |n| n.get() as u64);
    let runs_of = |snap: &tracer::kernel::snapshot::Snapshot, program: &str| {
        snap.program_costs
            .iter()
            .find(|(p, _, _)| p == program)
            .map(|(_, runs, _)| *runs)
            .unwrap_or_else(|| panic!("{program}: no run count"))
    };
    let link = Link::new("h15e", 60);
    let both = LiveTracer::start_with(|plan| plan.programs_count_runs = true)
        .expect("starting the tracer");
    assert!(both.meta().run_time_stats_held, "BPF_ENABLE_STATS is held");
    assert!(!both.runs_from_kernel(), "the programs count their runs");
    let mut snaps = vec![both.snapshot().expect("snapshot")];
    send_udp(&link.a, "127.0.0.1:9".parse().expect("addr"), N);
    snaps.push(both.snapshot().expect("snapshot"));
    let sent = lab::tcp_transfer(&link, 1 << 20, Duration::from_secs(20));
    assert_eq!(sent, 1 << 20, "the transfer completed");
    snaps.push(both.snapshot().expect("snapshot"));
    snaps.push(both.snapshot().expect("snapshot"));
    for pair in snaps.windows(2) {
        for (index, program) in counter::RUN_COUNTERS {
            let (own, kernel, own_next) = (
                pair[0].counter(index),
                runs_of(&pair[0], program),
                pair[1].counter(index),
            );
            assert!(
                own <= kernel + cpus && kernel <= own_next,
                "{program}: the kernel counted {kernel} runs, the program {own} before and \
                 {own_next} after"
            );
        }
    }
    let (first, last) = (&snaps[0], &snaps[snaps.len() - 1]);
    let grew = |index: u32| last.counter(index) - first.counter(index);
    assert!(grew(counter::KFREE_SKB_EVENTS) >= u64::from(N));
    assert!(grew(counter::TCP_PROBE_EVENTS) > 0, "tcp_probe ran");
    // What bpftool reads of the map is what the snapshots read (checks the reader used below).
    if let Some(in_map) = probe_counter_in_map(counter::KFREE_SKB_EVENTS) {
        assert!(
            in_map >= last.counter(counter::KFREE_SKB_EVENTS),
            "{in_map}"
        );
    }
    drop(both);

    // The default here (whatever TRACER_RUN_COUNTS says): the kernel counts, the programs add
    // nothing, the counters are run_cnt.
    let tracer = LiveTracer::start_with(|plan| plan.programs_count_runs = false)
        .expect("starting the tracer");
    assert!(tracer.runs_from_kernel(), "the kernel counts the runs");
    let start = tracer.snapshot().expect("snapshot");
    send_udp(&link.a, "127.0.0.1:9".parse().expect("addr"), N);
    let end = tracer.snapshot().expect("snapshot");
    let delta = end.since(&start);
    let kfree_runs = runs_of(&end, "kfree_skb") - runs_of(&start, "kfree_skb");
    assert!(delta.counter(counter::KFREE_SKB_EVENTS) >= u64::from(N));
    assert_eq!(delta.counter(counter::KFREE_SKB_EVENTS), kfree_runs);
    assert!(delta.counters_unknown.is_empty());
    match probe_counter_in_map(counter::KFREE_SKB_EVENTS) {
        Some(in_map) => assert_eq!(in_map, 0, "the programs did not count their runs"),
        None => eprintln!("note run_counters: bpftool could not read PROBE_COUNTERS"),
    }
}

/// The cost section is the kernel's own per-program counters: ns/run is known with
/// `kernel.bpf_stats_enabled=0` (the tracer holds a BPF_ENABLE_STATS descriptor and leaves
/// the sysctl as it was), and runs and recursion misses are what bpftool reads for the same
/// program ids, taken between two reads of ours.
#[test]
fn program_costs_and_recursion_misses_are_the_kernels_own_counters() {
    if !privileged("program_costs") {
        return;
    }
    if Command::new("bpftool").arg("version").output().is_err() {
        eprintln!("skipped program_costs: bpftool is not installed");
        return;
    }
    let sysctl_before = bpf_stats_sysctl();
    let ns = Netns::new("cost");
    let tracer = start_tracer();
    const N: u32 = 2000;
    let report = window(&tracer, &ns, || {
        send_udp(&ns, "127.0.0.1:9".parse().expect("addr"), N)
    });
    assert!(
        report.tracer_cost.run_time_stats_held,
        "BPF_ENABLE_STATS is held"
    );
    let kfree = report
        .tracer_cost
        .programs
        .iter()
        .find(|p| p.program == "kfree_skb")
        .expect("kfree_skb cost");
    assert!(kfree.runs >= u64::from(N), "{kfree:?}");
    assert!(kfree.ns_per_run.is_some_and(|ns| ns > 0.0), "{kfree:?}");
    let line = tracer::judge::report::tracer_cost_line(&report);
    assert!(
        line.contains("kfree_skb") && line.contains(" ns") && !line.contains("unknown"),
        "{line}"
    );

    let before = tracer.program_counters();
    let shown: Vec<(u64, u64)> = before.iter().map(|(_, c)| bpftool_counters(c.id)).collect();
    let after = tracer.program_counters();
    assert_eq!(before.len(), tracer::kernel::probes::PROBES.len());
    for (((name, b), (_, a)), (runs, misses)) in before.iter().zip(&after).zip(&shown) {
        assert!(
            (b.runs..=a.runs).contains(runs),
            "{name}: bpftool run_cnt {runs} outside {}..={}",
            b.runs,
            a.runs
        );
        assert!(
            (b.recursion_misses..=a.recursion_misses).contains(misses),
            "{name}: bpftool recursion_misses {misses} outside {}..={}",
            b.recursion_misses,
            a.recursion_misses
        );
    }
    drop(tracer);
    assert_eq!(
        bpf_stats_sysctl(),
        sysctl_before,
        "the sysctl is left as it was"
    );
    if sysctl_before != "0" {
        eprintln!(
            "note program_costs: kernel.bpf_stats_enabled was {sysctl_before} (set by someone \
             else), so this run cannot show that ns/run is known with it 0"
        );
    }
}
