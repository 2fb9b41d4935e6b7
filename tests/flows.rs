//! The `flows` section produced for real in namespaces: RTT through a user-space delay wire,
//! resets from a closed port, connect timeouts behind a drop rule, and the errors of
//! unreachable and blackhole routes. Privileged cases skip with a printed reason when not
//! root; run with `--test-threads=1`.

mod lab;

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};

use lab::{privileged, Link, Netns, Routed, TunWire};
use tracer::{
    judge::flows::Destination,
    judge::report::Report,
    kernel::probes::HookKind,
    modes::live::{netns_scope, LiveTracer},
};

/// Every hook kind, for the checks that must hold on each.
const HOOKS: [HookKind; 3] = [HookKind::TpBtf, HookKind::RawTp, HookKind::Tracepoint];

/// A tracer with every probe on `kind` (as `TRACER_HOOK=kind`); asserts that `programs`
/// really are on it.
fn tracer_on(kind: HookKind, programs: &[&str]) -> LiveTracer {
    let tracer = LiveTracer::start_with(|plan| plan.force_hook(kind)).expect("starting the tracer");
    let probes = tracer.meta().probes;
    for program in programs {
        let probe = probes
            .iter()
            .find(|p| p.program == *program)
            .unwrap_or_else(|| panic!("{program} not among the probes"));
        assert_eq!(probe.hook, Some(kind), "{program}: {:?}", probe.hook_reason);
    }
    eprintln!("--- {} on {}", programs.join(", "), kind.as_str());
    tracer
}

/// Watches for `seconds` while `traffic` runs; returns the report (scoped to `scope` if given)
/// and the traffic's result.
fn watch<T: Send + 'static>(
    scope: Option<&Netns>,
    seconds: u64,
    traffic: impl FnOnce() -> T + Send + 'static,
) -> (Report, T) {
    let (mut reports, value) = watch_scopes(&[scope], seconds, traffic);
    (reports.remove(0), value)
}

/// As [`watch`], one report per scope, all from the same two snapshots.
fn watch_scopes<T: Send + 'static>(
    scopes: &[Option<&Netns>],
    seconds: u64,
    traffic: impl FnOnce() -> T + Send + 'static,
) -> (Vec<Report>, T) {
    let tracer = LiveTracer::start().expect("starting the tracer");
    watch_with(&tracer, scopes, seconds, traffic)
}

/// As [`watch_scopes`], with a tracer already started.
fn watch_with<T: Send + 'static>(
    tracer: &LiveTracer,
    scopes: &[Option<&Netns>],
    seconds: u64,
    traffic: impl FnOnce() -> T + Send + 'static,
) -> (Vec<Report>, T) {
    let scopes: Vec<_> = scopes
        .iter()
        .map(|s| s.map(|n| netns_scope(&n.path()).expect("scope")))
        .collect();
    let start = tracer.snapshot().expect("snapshot");
    let started = Instant::now();
    let traffic = std::thread::spawn(traffic);
    let value = traffic.join().expect("traffic thread");
    if let Some(rest) = Duration::from_secs(seconds).checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }
    let end = tracer.snapshot().expect("snapshot");
    let seconds = started.elapsed().as_secs_f64();
    let reports = scopes
        .into_iter()
        .map(|scope| tracer.report(&start, &end, seconds, scope, &[]))
        .collect::<Vec<_>>();
    reports.iter().for_each(lab::document::check_observations);
    (reports, value)
}

fn dest<'a>(r: &'a Report, daddr: &str, dport: u16) -> &'a Destination {
    r.flows
        .destinations
        .iter()
        .find(|d| d.daddr == daddr && d.dport == dport)
        .unwrap_or_else(|| {
            panic!(
                "{daddr}:{dport} not in the flows section: {}",
                serde_json::to_string_pretty(&r.flows).unwrap_or_default()
            )
        })
}

/// Sets `net.ipv4.tcp_syn_retries` inside the namespace only (a SYN sent at 0 s and once
/// more at 1 s: the connect gives up with ETIMEDOUT about 3 s after it began).
fn short_syn_retries(ns: &Netns) {
    ns.run_in(|| {
        std::fs::write("/proc/sys/net/ipv4/tcp_syn_retries", "1")
            .expect("tcp_syn_retries in the lab namespace");
    });
}

/// Connects `count` times at once from `ns` to `to`; returns each outcome's raw OS error
/// (0: connected).
fn connect_all(ns: &std::path::Path, to: SocketAddr, count: usize) -> Vec<i32> {
    let threads: Vec<_> = (0..count)
        .map(|_| {
            lab::spawn_in_path(ns, move || match TcpStream::connect(to) {
                Ok(_) => 0,
                Err(e) => e.raw_os_error().unwrap_or(-1),
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("connect thread"))
        .collect()
}

/// A known delay on the wire shows as the destination's RTT.
///
/// Tolerance: the wire holds each packet 25 ms each way, so the round trip is 50 ms plus the
/// wire's own wake-ups. The kernel keeps RTT in log2 buckets split in four (bucket width ≤ 25 %
/// of its lower bound); the percentile is interpolated inside its bucket, so it is off by at
/// most half a bucket, 12.5 % of the value. Allowed: 50 ms − 12.5 % … (50 ms + 5 ms of wire
/// overhead) + 12.5 %.
#[test]
fn rtt_through_a_delay_wire_matches_the_delay() {
    if !privileged("rtt_delay_wire") {
        return;
    }
    const DELAY: Duration = Duration::from_millis(25);
    let a = Netns::new("rtta");
    let b = Netns::new("rttb");
    let wire = TunWire::new(&a, &b, 0, DELAY);
    let listen: SocketAddr = "198.18.30.2:7000".parse().expect("addr");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = b.spawn_in(move || {
        let listener = TcpListener::bind(listen).expect("listen");
        ready_tx.send(()).expect("ready");
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 100];
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 || conn.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("listener up");
    let client = a.path();
    let (report, exchanges) = watch(Some(&a), 5, move || {
        lab::spawn_in_path(&client, move || {
            let mut conn = TcpStream::connect(listen).expect("connect through the wire");
            conn.set_nodelay(true).expect("nodelay");
            let mut buf = [0u8; 100];
            let started = Instant::now();
            let mut n = 0u32;
            // Request/response: every segment is answered at once, no delayed ACK, no queue
            // in the wire.
            while started.elapsed() < Duration::from_secs(4) {
                conn.write_all(&[7u8; 100]).expect("request");
                conn.read_exact(&mut buf).expect("response");
                n += 1;
            }
            n
        })
        .join()
        .expect("client")
    });
    let _ = server.join();
    let (passed, _) = wire.stop();
    let d = dest(&report, "198.18.30.2", 7000);
    let rtt = d.rtt.as_ref().expect("RTT samples for the destination");
    let expected_ms = 2.0 * DELAY.as_secs_f64() * 1e3;
    let p50_ms = rtt.p50_us / 1e3;
    eprintln!(
        "{exchanges} exchanges, {passed} packets on the wire; RTT samples {}, p50 {p50_ms:.2} ms \
         p90 {:.2} ms p99 {:.2} ms mean {:.2} ms; connect p50 {:?} ms",
        rtt.samples,
        rtt.p90_us / 1e3,
        rtt.p99_us / 1e3,
        rtt.mean_us / 1e3,
        d.connect_time.as_ref().map(|c| c.p50_us / 1e3)
    );
    assert!(exchanges >= 40, "only {exchanges} exchanges in 4 s");
    assert!(
        rtt.samples >= u64::from(exchanges),
        "one RTT sample per received segment: {} samples for {exchanges} responses",
        rtt.samples
    );
    assert!(
        p50_ms >= expected_ms * 0.875 && p50_ms <= (expected_ms + 5.0) * 1.125,
        "p50 {p50_ms:.2} ms for a {expected_ms} ms round trip"
    );
    // The handshake crossed the wire once each way: the connect time is one round trip.
    let connect = d.connect_time.as_ref().expect("connect time");
    let connect_ms = connect.p50_us / 1e3;
    assert_eq!((d.connects, d.established, connect.samples), (1, 1, 1));
    assert!(
        connect_ms >= expected_ms * 0.875 && connect_ms <= (expected_ms + 5.0) * 1.125,
        "connect {connect_ms:.2} ms"
    );
    assert_eq!(d.netns, netns_scope(&a.path()).expect("scope").inode);
}

/// Segments a namespace's TCP delivered to its sockets' receive path (where `tcp_probe` fires
/// once per segment of an established socket): `InSegs` less the segments the kernel merged into
/// another one in a socket's backlog (`TCPBacklogCoalesce`) or dropped there
/// (`TCPBacklogDrop`), which never reach it on their own.
fn segments_delivered(ns: &Netns) -> u64 {
    ns.net_counter("snmp", "Tcp", "InSegs")
        - ns.net_counter("netstat", "TcpExt", "TCPBacklogCoalesce")
        - ns.net_counter("netstat", "TcpExt", "TCPBacklogDrop")
}

/// A snapshot taken while `tcp_probe` ran nowhere on the host (its own event count the same in
/// two snapshots back to back; the second one is returned, read entirely between the two counts)
/// and neither namespace's TCP delivered a segment (the same counts just before and after), and
/// those counts. A late delayed ACK, or TCP traffic of another process, is waited out.
fn quiet_snapshot(
    tracer: &LiveTracer,
    link: &Link,
) -> (tracer::kernel::snapshot::Snapshot, (u64, u64)) {
    let delivered = || (segments_delivered(&link.a), segments_delivered(&link.b));
    let events = |snap: &tracer::kernel::snapshot::Snapshot| {
        snap.counter(tracer_common::counter::TCP_PROBE_EVENTS)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let before = delivered();
        let first = tracer.snapshot().expect("snapshot");
        let snap = tracer.snapshot().expect("snapshot");
        if delivered() == before && events(&first) == events(&snap) {
            return (snap, before);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the lab's TCP, or the host's tcp_probe, never went quiet for 60 s");
}

/// One established connection of the exactness test: the client's end and a server thread
/// that answers each message (a length, then that many bytes) with one byte.
struct Exchange {
    port: u16,
    client: TcpStream,
    server: std::thread::JoinHandle<()>,
}

impl Exchange {
    fn open(link: &Link, port: u16) -> Exchange {
        let addr: SocketAddr = format!("{}:{port}", link.addr_b).parse().expect("addr");
        let listener = link
            .b
            .run_in(move || TcpListener::bind(addr).expect("listen"));
        let client = link
            .a
            .run_in(move || TcpStream::connect_timeout(&addr, Duration::from_secs(5)))
            .expect("connect");
        let (mut conn, _) = listener.accept().expect("accept");
        let server = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let mut len = [0u8; 4];
                if conn.read_exact(&mut len).is_err() {
                    return;
                }
                let mut left = u32::from_be_bytes(len) as usize;
                if left == 0 {
                    return;
                }
                while left > 0 {
                    let want = left.min(buf.len());
                    match conn.read(&mut buf[..want]) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => left -= n,
                    }
                }
                if conn.write_all(&[1]).is_err() {
                    return;
                }
            }
        });
        Exchange {
            port,
            client,
            server,
        }
    }

    /// Sends `bytes` in one message and waits for the answer.
    fn send(&mut self, bytes: usize) {
        let chunk = vec![0x5au8; 64 * 1024];
        self.client
            .write_all(&(bytes as u32).to_be_bytes())
            .expect("length");
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            self.client.write_all(&chunk[..n]).expect("payload");
            left -= n;
        }
        let mut answer = [0u8; 1];
        self.client.read_exact(&mut answer).expect("answer");
    }
}

/// RTT samples per destination of the namespaces `a` and `b` between two snapshots.
fn rtt_samples(
    start: &tracer::kernel::snapshot::Snapshot,
    end: &tracer::kernel::snapshot::Snapshot,
    netns: u32,
) -> std::collections::BTreeMap<u16, u64> {
    let delta = end.since(start);
    delta
        .dests
        .iter()
        .filter(|(k, _)| k.netns == netns)
        .map(|(k, d)| (k.dport, d.rtt_samples))
        .collect()
}

/// Issue 15: RTT samples wait in per-CPU slots before they reach the destination map; every
/// one of them is still counted, once. On each hook kind, connections on three ports send
/// bulk data and small messages one after the other, then all at once. Each time, between two
/// snapshots taken while no `tcp_probe` ran on the host, the RTT samples of all destinations
/// are exactly the program's runs less those that took no sample (`tcp_probe_events` less
/// `rtt_unmeasured_runs`, and read errors). And each namespace's samples are the segments its
/// TCP delivered (`InSegs`, less backlog merges and drops: `tcp_probe` fires once per delivered
/// segment of an established socket), never more, and fewer by at most 1 % (+1): on this
/// kernel a tracepoint hit now and then runs no BPF program at all, with no recursion miss
/// counted (see docs/performance.md, "tcp_probe: RTT samples batched per CPU"). Snapshots taken
/// while the traffic runs never go back.
#[test]
fn rtt_samples_per_destination_are_the_segments_each_side_received() {
    if !privileged("rtt_samples_exact") {
        return;
    }
    for kind in HOOKS {
        rtt_samples_exact_on(kind);
    }
}

/// Snapshots taken until every sender has finished: no destination's RTT samples or sum ever
/// go back from one to the next. Returns how many were taken.
fn snapshots_never_go_back<T>(
    tracer: &LiveTracer,
    kind: HookKind,
    running: &[std::thread::JoinHandle<T>],
) -> usize {
    let mut last = tracer.snapshot().expect("snapshot");
    let mut taken = 0;
    while running.iter().any(|t| !t.is_finished()) {
        let snap = tracer.snapshot().expect("snapshot");
        for (key, before) in &last.dests {
            if let Some(now) = snap.dests.get(key) {
                assert!(
                    now.rtt_samples >= before.rtt_samples && now.rtt_sum_us >= before.rtt_sum_us,
                    "{}: {key:?} went back from {} samples ({} µs) to {} ({} µs)",
                    kind.as_str(),
                    before.rtt_samples,
                    before.rtt_sum_us,
                    now.rtt_samples,
                    now.rtt_sum_us
                );
            }
        }
        last = snap;
        taken += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    taken
}

fn rtt_samples_exact_on(kind: HookKind) {
    const PORTS: [u16; 3] = [6001, 6002, 6003];
    // Delayed ACKs (40 ms and more) and window updates settle well within this.
    const SETTLE: Duration = Duration::from_millis(600);
    let link = Link::new("rtx", 60);
    let tracer = tracer_on(kind, &["tcp_probe"]);
    let inode = |ns: &Netns| netns_scope(&ns.path()).expect("scope").inode;
    let (ino_a, ino_b) = (inode(&link.a), inode(&link.b));
    let mut exchanges: Vec<Exchange> = PORTS.iter().map(|p| Exchange::open(&link, *p)).collect();
    std::thread::sleep(SETTLE);
    // (which connections send, bytes per message, messages)
    let phases: [(&[usize], usize, usize); 4] = [
        (&[0], 4 << 20, 1),
        (&[1], 100, 200),
        (&[2], 64 << 10, 20),
        (&[0, 1, 2], 2 << 20, 2),
    ];
    for (senders, bytes, messages) in phases {
        let (start, (a0, b0)) = quiet_snapshot(&tracer, &link);
        let mut running: Vec<std::thread::JoinHandle<Exchange>> = Vec::new();
        let mut idle: Vec<Exchange> = Vec::new();
        for (i, mut ex) in exchanges.drain(..).enumerate() {
            if senders.contains(&i) {
                running.push(std::thread::spawn(move || {
                    for _ in 0..messages {
                        ex.send(bytes);
                    }
                    ex
                }));
            } else {
                idle.push(ex);
            }
        }
        let taken = snapshots_never_go_back(&tracer, kind, &running);
        let mut done: Vec<Exchange> = running
            .into_iter()
            .map(|t| t.join().expect("sender"))
            .collect();
        std::thread::sleep(SETTLE);
        let (end, (a1, b1)) = quiet_snapshot(&tracer, &link);
        let (got_a, got_b) = (
            rtt_samples(&start, &end, ino_a),
            rtt_samples(&start, &end, ino_b),
        );
        eprintln!(
            "{}: connections {senders:?}, {messages} x {bytes} B: segments delivered a {} b {}; \
             RTT samples a {got_a:?} b {got_b:?}; {taken} snapshots during the traffic",
            kind.as_str(),
            a1 - a0,
            b1 - b0
        );
        // Runs the kernel skipped because the program was already running on that CPU (its
        // own count, `recursion_misses`): a segment whose probe never ran has no sample.
        let missed = |snap: &tracer::kernel::snapshot::Snapshot| {
            snap.program_misses.get("tcp_probe").copied().unwrap_or(0)
        };
        let missed = missed(&end) - missed(&start);
        let counted = |name: u32| end.counters[name as usize] - start.counters[name as usize];
        let elsewhere: Vec<_> = end
            .since(&start)
            .dests
            .iter()
            .filter(|(k, d)| k.netns != ino_a && k.netns != ino_b && d.rtt_samples > 0)
            .map(|(k, d)| (k.netns, k.dport, d.rtt_samples))
            .collect();
        eprintln!(
            "{}: tcp_probe runs missed: {missed}; namespace unknown {}, read errors {}, \
             insert failed {}; samples in other namespaces {elsewhere:?}",
            kind.as_str(),
            counted(tracer_common::counter::NETNS_UNKNOWN),
            counted(tracer_common::counter::READ_ERRORS),
            counted(tracer_common::counter::DESTS_INSERT_FAILED),
        );
        assert!(a1 - a0 > 0 && b1 - b0 > 0);
        let (sum_a, sum_b) = (got_a.values().sum::<u64>(), got_b.values().sum::<u64>());
        // Exact: every run of the program that took a sample has it counted, once, whichever
        // namespace it was in (other processes' TCP included).
        let all_samples: u64 = end
            .since(&start)
            .dests
            .values()
            .map(|d| d.rtt_samples)
            .sum();
        let runs = counted(tracer_common::counter::TCP_PROBE_EVENTS);
        let unmeasured = counted(tracer_common::counter::RTT_UNMEASURED);
        let read_errors = counted(tracer_common::counter::READ_ERRORS);
        let evicted = end.since(&start).dests_evicted;
        eprintln!(
            "{}: tcp_probe runs {runs}, without RTT {unmeasured}; RTT samples of every \
             destination {all_samples}; destinations evicted {evicted}",
            kind.as_str()
        );
        assert_eq!(
            (
                evicted,
                counted(tracer_common::counter::DESTS_INSERT_FAILED)
            ),
            (0, 0),
            "{}: destinations evicted or not inserted",
            kind.as_str()
        );
        assert!(
            all_samples <= runs - unmeasured && all_samples + read_errors >= runs - unmeasured,
            "{}: {all_samples} RTT samples for {runs} runs of tcp_probe, {unmeasured} without \
             RTT, {read_errors} read errors",
            kind.as_str()
        );
        // Per namespace: the segments delivered, less the hits that ran no program (few).
        for (side, got, delivered) in [("a", sum_a, a1 - a0), ("b", sum_b, b1 - b0)] {
            assert!(
                got <= delivered && delivered - got <= delivered / 100 + 1 + missed,
                "{}: side {side}: {got} RTT samples for {delivered} segments delivered \
                 ({missed} runs missed)",
                kind.as_str()
            );
        }
        // Only the connections that sent have samples, under their own destination (the
        // server's side under its listening port).
        let ports: Vec<u16> = senders.iter().map(|i| PORTS[*i]).collect();
        for got in [&got_a, &got_b] {
            assert!(
                got.iter().all(|(port, n)| ports.contains(port) == (*n > 0)),
                "{}: samples {got:?} for connections on {ports:?}",
                kind.as_str()
            );
        }
        done.append(&mut idle);
        done.sort_by_key(|ex| ex.port);
        exchanges = done;
    }
    for ex in exchanges {
        let Exchange { client, server, .. } = ex;
        let _ = client.shutdown(std::net::Shutdown::Both);
        let _ = server.join();
    }
}

/// A closed port: the peer's kernel answers each SYN with a reset (reason NO_SOCKET), the
/// client counts a received reset, a failed connect and ECONNREFUSED for that destination.
/// On each hook kind: the resets sent and received, the state changes and the socket errors
/// are counted exactly, per namespace, whichever hook their probes use.
#[test]
fn connects_to_a_closed_port_count_resets_for_the_flow() {
    if !privileged("closed_port_resets") {
        return;
    }
    for kind in HOOKS {
        closed_port_resets_on(kind);
    }
}

fn closed_port_resets_on(kind: HookKind) {
    let tracer = tracer_on(
        kind,
        &[
            "tcp_send_reset",
            "tcp_receive_reset",
            "inet_sock_set_state",
            "inet_sk_error_report",
        ],
    );
    let link = Link::new("rst", 40);
    let to: SocketAddr = format!("{}:9", link.addr_b).parse().expect("addr");
    let a = link.a.path();
    // Each side in its own scope: other traffic on the node cannot push these rows out.
    let (reports, outcomes) = watch_with(&tracer, &[Some(&link.a), Some(&link.b)], 2, move || {
        connect_all(&a, to, 5)
    });
    let (report, report_b) = (&reports[0], &reports[1]);
    assert_eq!(outcomes, vec![libc::ECONNREFUSED; 5]);
    let ns_a = netns_scope(&link.a.path()).expect("a").inode;
    let ns_b = netns_scope(&link.b.path()).expect("b").inode;
    let d = report
        .flows
        .destinations
        .iter()
        .find(|d| d.netns == ns_a && d.daddr == link.addr_b && d.dport == 9)
        .expect("the closed port as a destination of namespace a");
    eprintln!("{d:?}");
    assert_eq!(
        (d.connects, d.failed_connects, d.resets_received),
        (5, 5, 5)
    );
    assert_eq!(d.error_count("ECONNREFUSED"), 5);
    // Each flow: one reset received in a; b's resets to its clients (ephemeral ports) are one
    // row for its port 9, with the kernel's reason.
    let received: Vec<_> = report
        .flows
        .resets
        .iter()
        .filter(|r| r.netns == ns_a && r.direction == "received" && r.dport == 9)
        .collect();
    let sent: Vec<_> = report_b
        .flows
        .resets
        .iter()
        .filter(|r| r.netns == ns_b && r.direction == "sent" && r.sport == 9)
        .collect();
    assert_eq!(received.len(), 5, "{received:?}");
    assert!(received.iter().all(|r| r.count == 1), "{received:?}");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (
            sent[0].count,
            sent[0].reason.as_deref(),
            sent[0].saddr.as_str(),
            sent[0].daddr.as_str(),
            sent[0].dport
        ),
        (
            5,
            Some("NO_SOCKET"),
            link.addr_b.as_str(),
            tracer::judge::flows::CLIENTS,
            0
        )
    );
}

/// The server's namespace drops every segment of the handshake after the SYN, so each
/// half-open connection's SYN-ACK is retransmitted `tcp_synack_retries` (1) times. On each hook
/// kind, the tracer counts exactly the retransmissions the server's own `TcpExt:TCPSynRetrans`
/// counts (its namespace sends no SYN), for the listener's flows.
#[test]
fn lost_handshake_acks_count_exactly_the_synack_retransmits() {
    if !privileged("synack_retransmits") {
        return;
    }
    for kind in HOOKS {
        synack_retransmits_on(kind);
    }
}

fn synack_retransmits_on(kind: HookKind) {
    const CONNECTS: usize = 3;
    const PORT: u16 = 9300;
    let tracer = tracer_on(kind, &["tcp_retransmit_synack"]);
    let link = Link::new("sak", 48);
    link.b.run_in(|| {
        std::fs::write("/proc/sys/net/ipv4/tcp_synack_retries", "1")
            .expect("tcp_synack_retries in the lab namespace");
    });
    // Everything with ACK but not SYN: the client's handshake ACK, and its FIN after.
    link.b.nft(&format!(
        "table inet trcsynack {{\n\
           chain input {{\n\
             type filter hook input priority 0; policy accept;\n\
             tcp dport {PORT} tcp flags & (syn | ack) == ack counter drop\n\
           }}\n\
         }}\n"
    ));
    let listener = link
        .b
        .run_in(|| TcpListener::bind(("0.0.0.0", PORT)).expect("listening in b"));
    let before = link.b.net_counter("netstat", "TcpExt", "TCPSynRetrans");
    let to: SocketAddr = format!("{}:{PORT}", link.addr_b).parse().expect("addr");
    let a = link.a.path();
    // The retransmission comes 1 s after each SYN-ACK, and the request is given up 2 s later.
    let (reports, outcomes) = watch_with(&tracer, &[Some(&link.b)], 4, move || {
        connect_all(&a, to, CONNECTS)
    });
    drop(listener);
    let counted = link.b.net_counter("netstat", "TcpExt", "TCPSynRetrans") - before;
    // The client sees the SYN-ACK: its connect succeeds; the server never sees the ACK.
    assert_eq!(outcomes, vec![0; CONNECTS]);
    let retransmits = &reports[0].retransmits;
    let listener_flows: u64 = retransmits
        .flows
        .iter()
        .filter(|f| f.saddr == link.addr_b && f.sport == PORT && f.daddr == link.addr_a)
        .map(|f| f.synack_retransmits)
        .sum();
    eprintln!(
        "{}: TCPSynRetrans {counted}, traced {} ({listener_flows} on the listener's flows)",
        kind.as_str(),
        retransmits.synack_total
    );
    assert_eq!(counted, CONNECTS as u64, "the kernel's own count");
    assert_eq!(retransmits.synack_total, counted);
    assert_eq!(listener_flows, counted, "{:?}", retransmits.flows);
}

/// A drop rule in the client's namespace eats every SYN: the connects fail from SYN_SENT with
/// ETIMEDOUT after the (shortened) SYN retries.
#[test]
fn connects_through_a_drop_rule_fail_with_a_timeout() {
    if !privileged("drop_rule_timeout") {
        return;
    }
    let link = Link::new("tmo", 42);
    short_syn_retries(&link.a);
    link.a.nft(&format!(
        "table inet trcflows {{\n\
           chain output {{\n\
             type filter hook output priority 0; policy accept;\n\
             ip daddr {} tcp dport 9100 counter drop\n\
           }}\n\
         }}\n",
        link.addr_b
    ));
    let to: SocketAddr = format!("{}:9100", link.addr_b).parse().expect("addr");
    let a = link.a.path();
    let started = Instant::now();
    let (report, outcomes) = watch(Some(&link.a), 5, move || connect_all(&a, to, 3));
    eprintln!("connects gave up after {:?}", started.elapsed());
    assert_eq!(outcomes, vec![libc::ETIMEDOUT; 3]);
    let d = dest(&report, &link.addr_b, 9100);
    eprintln!("{d:?}");
    assert_eq!((d.connects, d.established, d.failed_connects), (3, 0, 3));
    assert_eq!(d.error_count("ETIMEDOUT"), 3);
    assert!(d.rtt.is_none() && d.connect_time.is_none());
}

/// Routes that refuse: an `unreachable` route on the router answers with ICMP host
/// unreachable, so the client's connect fails with EHOSTUNREACH at once; a `blackhole` route
/// drops silently, so the connect times out (ETIMEDOUT). Both are reported for their
/// destination; the blackhole's SYNs are the router's drops at `ip_error`.
/// On each hook kind: the ICMP error queued while a connect is still waiting is not counted
/// as a second error of its destination on one kind and not on another.
#[test]
fn unreachable_and_blackhole_routes_report_their_errors() {
    if !privileged("route_errors") {
        return;
    }
    for kind in HOOKS {
        route_errors_on(kind);
    }
}

fn route_errors_on(kind: HookKind) {
    let tracer = tracer_on(kind, &["inet_sock_set_state", "inet_sk_error_report"]);
    let lab = Routed::new("rer", 44);
    short_syn_retries(&lab.client);
    // Two more addresses behind the server's link, each with its own route on the router.
    let unreachable = "198.18.45.10";
    let blackhole = "198.18.45.11";
    lab.router
        .ip(&["route", "add", "unreachable", &format!("{unreachable}/32")]);
    lab.router
        .ip(&["route", "add", "blackhole", &format!("{blackhole}/32")]);
    let client = lab.client.path();
    let (mut reports, (refused, silent)) =
        watch_with(&tracer, &[Some(&lab.client)], 5, move || {
            let u: SocketAddr = format!("{unreachable}:80").parse().expect("addr");
            let b: SocketAddr = format!("{blackhole}:80").parse().expect("addr");
            (connect_all(&client, u, 2), connect_all(&client, b, 2))
        });
    let report = reports.remove(0);
    assert_eq!(refused, vec![libc::EHOSTUNREACH; 2]);
    assert_eq!(silent, vec![libc::ETIMEDOUT; 2]);
    let u = dest(&report, unreachable, 80);
    let b = dest(&report, blackhole, 80);
    eprintln!("{u:?}\n{b:?}");
    assert_eq!((u.connects, u.failed_connects), (2, 2));
    assert_eq!(u.error_count("EHOSTUNREACH"), 2);
    assert_eq!((b.connects, b.failed_connects), (2, 2));
    assert_eq!(b.error_count("ETIMEDOUT"), 2);
    assert_eq!(report.flows.totals.failed_connects, 4);
}

/// More destinations than the kernel map holds: the LRU evicts, the report counts what it did
/// not keep and says so.
#[test]
fn more_destinations_than_the_map_holds_are_counted_as_evicted() {
    if !privileged("destination_lru") {
        return;
    }
    let ns = Netns::new("lru");
    let capacity = u64::from(tracer_common::DESTS_MAX_ENTRIES);
    let extra = 300u64;
    let path = ns.path();
    let (report, refused) = watch(Some(&ns), 1, move || {
        lab::spawn_in_path(&path, move || {
            // Closed ports on loopback: each connect is refused at once, one destination each.
            (0..capacity + extra)
                .filter(|i| {
                    let port = 20_000 + *i as u16;
                    TcpStream::connect(("127.0.0.1", port)).is_err()
                })
                .count() as u64
        })
        .join()
        .expect("connects")
    });
    assert_eq!(refused, capacity + extra);
    let t = &report.flows.tracking;
    eprintln!("{t:?}");
    assert_eq!(t.capacity, capacity);
    assert!(t.kept <= capacity, "{t:?}");
    assert!(t.evicted >= extra, "{t:?}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("saw more destinations than it kept")),
        "{:?}",
        report.notes
    );
    // What was kept is still right: every kept loopback destination failed once.
    let kept: Vec<_> = report
        .flows
        .destinations
        .iter()
        // The ports connected to (below the ephemeral range the resets went back to).
        .filter(|d| d.daddr == "127.0.0.1" && (20_000..30_000).contains(&d.dport))
        .collect();
    assert!(!kept.is_empty());
    assert!(kept
        .iter()
        .all(|d| d.connects == 1 && d.failed_connects == 1 && d.resets_received == 1));
}

fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .expect("VmRSS")
}

/// A million distinct destinations (refused connects to 25 loopback addresses × 40,000 ports
/// in a lab namespace) while `tracer serve` watches: its memory stays bounded, the map keeps at
/// most its capacity, and the report says it saw more destinations than it kept.
#[test]
fn a_million_destinations_keep_memory_bounded_and_are_said_to_be_evicted() {
    if !privileged("million_destinations") {
        return;
    }
    let ns = Netns::new("million");
    let path = ns.path();
    let (mut child, listen) = lab::spawn_serve(
        &["--netns", path.to_str().expect("path"), "--window", "60s"],
        &[],
    );
    std::thread::sleep(Duration::from_secs(2));
    let rss_before = vm_rss_kib(child.id());
    const TARGET: u64 = 1_000_000;
    let deadline = Instant::now() + Duration::from_secs(150);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let threads: Vec<_> = (0..2u64)
        .map(|half| {
            let done = done.clone();
            lab::spawn_in_path(&path, move || {
                let mut refused = 0u64;
                for i in (half..TARGET).step_by(2) {
                    if i % 4096 == 0 && Instant::now() > deadline {
                        break;
                    }
                    let addr = std::net::Ipv4Addr::new(127, 0, 1, 1 + (i / 40_000) as u8);
                    let port = 20_000 + (i % 40_000) as u16;
                    if TcpStream::connect((addr, port)).is_err() {
                        refused += 1;
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                refused
            })
        })
        .collect();
    // The peak while the storm runs (sampled every 100 ms).
    let pid = child.id();
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while done.load(std::sync::atomic::Ordering::Relaxed) < TARGET
                && Instant::now() < deadline
            {
                peak = peak.max(vm_rss_kib(pid));
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        })
    };
    let refused: u64 = threads
        .into_iter()
        .map(|t| t.join().expect("connects"))
        .sum();
    let rss_peak = sampler.join().expect("sampler");
    std::thread::sleep(Duration::from_millis(2500));
    let rss_after = vm_rss_kib(child.id());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let body = agent
        .get(format!("http://{listen}/report?window=4m"))
        .call()
        .expect("report")
        .body_mut()
        .read_to_string()
        .expect("body");
    let _ = child.kill();
    let _ = child.wait();
    let doc = lab::document::parse(&body);
    let tracking = &doc["observations"]["flows"]["tracking"];
    eprintln!(
        "{refused} refused connects; serve RSS {rss_before} KiB, peak {rss_peak} KiB, \
         {rss_after} KiB after; tracking {tracking}"
    );
    assert_eq!(
        refused, TARGET,
        "every connect refused within the time bound"
    );
    let capacity = u64::from(tracer_common::DESTS_MAX_ENTRIES);
    assert_eq!(tracking["capacity"].as_u64(), Some(capacity));
    let kept = tracking["kept"].as_u64().expect("kept");
    let evicted = tracking["evicted"].as_u64().expect("evicted");
    assert!(kept <= capacity, "{tracking}");
    assert!(
        evicted + kept >= TARGET,
        "every destination kept or counted as evicted"
    );
    let notes = doc["observations"]["notes"].as_array().expect("notes");
    assert!(
        notes.iter().any(|n| n
            .as_str()
            .is_some_and(|n| n.contains("saw more destinations than it kept"))),
        "{notes:?}"
    );
    // Bounded: the peak stays inside the DaemonSet's 256 MiB limit (deploy/daemonset.yaml),
    // and what the server keeps afterwards is its windows, not the million destinations.
    assert!(
        rss_peak < 256 * 1024,
        "peak {rss_peak} KiB during the storm"
    );
    assert!(
        rss_after < rss_before + 96 * 1024,
        "memory kept: {rss_before} -> {rss_after} KiB"
    );
}
