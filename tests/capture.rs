//! `tracer capture` end to end (privileged): drops made in lab namespaces are captured into
//! pcapng and read back with `tshark -r` and `tcpdump -r`: exactly the packets sent, each with
//! its reason and location; a blackhole route's packets carry the routing attribution; the
//! port filter keeps one flow; --max-packets and the rate limit hold under a flood, with the
//! loss counted; the perf buffer (forced) carries exactly the packets sent too; a connection
//! whose peer starts dropping its segments has its retransmissions in the file, no more than
//! the kernel's TcpRetransSegs. The exact-count and retransmit captures run on each hook kind
//! (`TRACER_HOOK`), the summary saying the programs really were on it.
#![allow(clippy::unwrap_used)]

mod lab;

use std::{
    collections::BTreeSet,
    io::{BufRead as _, BufReader},
    net::{SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use lab::{flood_udp, privileged, udp_stream, Link, Netns, Routed};
use tracer::kernel::probes::HookKind;

const TRACER: &str = env!("CARGO_BIN_EXE_tracer");

fn tools_present(test: &str) -> bool {
    for tool in ["tshark", "tcpdump"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("skipped {test}: `{tool}` is not installed (cargo xtask setup installs it)");
            return false;
        }
    }
    true
}

fn out_file(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "tracer-capture-{tag}-{}.pcapng",
        std::process::id()
    ))
}

/// Runs `tracer capture ARGS`, calls `during` once the program is attached, and returns the
/// capture's stderr (its summary) after it exits.
fn capture(args: &[&str], during: impl FnOnce()) -> String {
    capture_with(args, &[], during)
}

/// A `tracer capture` that has attached its programs.
struct Running {
    child: std::process::Child,
    stderr: BufReader<std::process::ChildStderr>,
    text: String,
}

/// Starts `tracer capture ARGS` (with `env`) and waits until its programs are attached.
fn start_capture(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut child = Command::new(TRACER)
        .arg("capture")
        .args(args)
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).unwrap();
        text.push_str(&line);
        assert!(n > 0, "capture ended before attaching: {text}");
        if line.contains("capturing drops") {
            break;
        }
    }
    Running {
        child,
        stderr,
        text,
    }
}

impl Running {
    /// Waits for the capture to end; its stderr (the summary).
    fn finish(mut self) -> String {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stderr, &mut rest).unwrap();
        self.text.push_str(&rest);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "capture failed: {}", self.text);
        self.text
    }
}

/// [`capture`] with environment variables set for the tracer.
fn capture_with(args: &[&str], env: &[(&str, &str)], during: impl FnOnce()) -> String {
    let running = start_capture(args, env);
    during();
    running.finish()
}

/// `tshark -r FILE -T fields` rows: ip.src, src port, ip.dst, dst port, comment.
fn tshark(file: &Path, proto: &str) -> Vec<Vec<String>> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(file)
        .args(["-T", "fields", "-E", "separator=|"])
        .args(["-e", "ip.src", "-e", &format!("{proto}.srcport")])
        .args(["-e", "ip.dst", "-e", &format!("{proto}.dstport")])
        .args(["-e", "frame.comment"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

/// `tcpdump -nn -r FILE` lines.
fn tcpdump(file: &Path) -> Vec<String> {
    let out = Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tcpdump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn drop_udp_to_port(ns: &Netns, port: u16) {
    ns.nft(&format!(
        "table inet capture_test {{\n chain input {{\n  type filter hook input priority 0;\n  udp dport {port} drop\n }}\n}}\n"
    ));
}

/// Every hook kind: the capture programs go on each as `TRACER_HOOK` says.
const HOOKS: [HookKind; 3] = [HookKind::TpBtf, HookKind::RawTp, HookKind::Tracepoint];

/// Asserts that the summary says each of `programs` was on `kind`.
fn assert_hooks(summary: &str, kind: HookKind, programs: &[&str]) {
    let line = summary
        .lines()
        .find(|l| l.starts_with("hooks: "))
        .unwrap_or_else(|| panic!("no hooks line: {summary}"));
    for program in programs {
        assert!(
            line.contains(&format!("{program} on {} (", kind.as_str())),
            "{program} not on {}: {line}",
            kind.as_str()
        );
    }
}

#[test]
fn five_hundred_datagrams_into_an_nft_drop_rule_are_exactly_the_file() {
    if !privileged("capture_nft") || !tools_present("capture_nft") {
        return;
    }
    for kind in HOOKS {
        five_hundred_datagrams_on(kind);
    }
}

fn five_hundred_datagrams_on(kind: HookKind) {
    eprintln!("--- capture_kfree_skb on {}", kind.as_str());
    let link = Link::new("cpn", 40);
    drop_udp_to_port(&link.b, 9);
    let file = out_file("nft");
    let netns = link.b.path().display().to_string();
    let to: SocketAddr = format!("{}:9", link.addr_b).parse().unwrap();
    let ports: Vec<u16> = (20_000..20_500).collect();
    let sent = ports.clone();
    let summary = capture_with(
        &[
            "--duration",
            "8s",
            "-w",
            file.to_str().unwrap(),
            "--netns",
            &netns,
            // UDP only: the namespace's own IPv6 link-local chatter (MLD, router
            // solicitations) is dropped too, and is not what this test sent.
            "--proto",
            "udp",
        ],
        &[("TRACER_HOOK", kind.as_str())],
        || {
            link.a.run_in(move || {
                for port in sent {
                    let sock = UdpSocket::bind(("0.0.0.0", port)).unwrap();
                    sock.send_to(b"x", to).unwrap();
                }
            });
        },
    );
    assert!(summary.contains("500 packets written"), "{summary}");
    assert!(summary.contains("buffer: ring buffer"), "{summary}");
    assert_hooks(&summary, kind, &["capture_kfree_skb"]);
    let rows = tshark(&file, "udp");
    assert_eq!(rows.len(), 500, "{summary}");
    let mut seen = BTreeSet::new();
    for row in &rows {
        assert_eq!(row[0], link.addr_a);
        assert_eq!(row[2], link.addr_b);
        assert_eq!(row[3], "9");
        assert!(row[4].contains("reason=NETFILTER_DROP"), "{row:?}");
        assert!(row[4].contains("location=nft_do_chain+0x"), "{row:?}");
        assert!(row[4].contains("layer=iptables_netpolicy"), "{row:?}");
        seen.insert(row[1].parse::<u16>().unwrap());
    }
    assert_eq!(seen, ports.iter().copied().collect::<BTreeSet<u16>>());
    let lines = tcpdump(&file);
    assert_eq!(lines.len(), 500);
    let from_tcpdump: BTreeSet<u16> = lines
        .iter()
        .map(|l| {
            // `12:00:00.000000 IP 198.18.40.1.20000 > 198.18.40.2.9: UDP, length 1`
            let src = l.split_whitespace().nth(2).unwrap();
            src.rsplit('.').next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(from_tcpdump, seen);
    for (n, line) in rows.iter().take(3).enumerate() {
        eprintln!("tshark row {n}: {}", line.join(" | "));
    }
    let _ = std::fs::remove_file(&file);
}

#[test]
fn the_perf_buffer_forced_carries_exactly_the_datagrams_sent() {
    if !privileged("capture_perf") || !tools_present("capture_perf") {
        return;
    }
    let link = Link::new("cpp", 152);
    drop_udp_to_port(&link.b, 9);
    let file = out_file("perf");
    let netns = link.b.path().display().to_string();
    let to: SocketAddr = format!("{}:9", link.addr_b).parse().unwrap();
    let ports: Vec<u16> = (21_000..21_300).collect();
    let sent = ports.clone();
    let summary = capture_with(
        &[
            "--duration",
            "6s",
            "-w",
            file.to_str().unwrap(),
            "--netns",
            &netns,
            "--proto",
            "udp",
        ],
        &[("TRACER_CAPTURE_BUFFER", "perf")],
        || {
            link.a.run_in(move || {
                for port in sent {
                    let sock = UdpSocket::bind(("0.0.0.0", port)).unwrap();
                    sock.send_to(b"x", to).unwrap();
                }
            });
        },
    );
    assert!(summary.contains("300 packets written"), "{summary}");
    assert!(summary.contains("buffer: perf buffer"), "{summary}");
    assert!(summary.contains("perf buffer full 0,"), "{summary}");
    let rows = tshark(&file, "udp");
    assert_eq!(rows.len(), 300, "{summary}");
    let mut seen = BTreeSet::new();
    for row in &rows {
        assert_eq!(row[0], link.addr_a);
        assert_eq!(row[2], link.addr_b);
        assert_eq!(row[3], "9");
        assert!(row[4].contains("reason=NETFILTER_DROP"), "{row:?}");
        assert!(row[4].contains("location=nft_do_chain+0x"), "{row:?}");
        seen.insert(row[1].parse::<u16>().unwrap());
    }
    assert_eq!(seen, ports.iter().copied().collect::<BTreeSet<u16>>());
    assert_eq!(tcpdump(&file).len(), 300);
    let _ = std::fs::remove_file(&file);
}

#[test]
fn subsystem_reasons_select_in_the_kernel_without_letting_core_reasons_through() {
    if !privileged("capture_subsys") || !tools_present("capture_subsys") {
        return;
    }
    let link = Link::new("cpu", 154);
    drop_udp_to_port(&link.b, 9);
    let netns = link.b.path().display().to_string();
    let to: SocketAddr = format!("{}:9", link.addr_b).parse().unwrap();
    let file = out_file("subsys");
    let run = |reasons: &str| {
        capture(
            &[
                "--duration",
                "2s",
                "-w",
                file.to_str().unwrap(),
                "--netns",
                &netns,
                "--proto",
                "udp",
                "--reason",
                reasons,
            ],
            || lab::send_udp(&link.a, to, 50),
        )
    };
    // Only subsystem reasons (no OVS or mac80211 here): the nft drops stay out, in the kernel.
    let summary = run("0x30001,SUBSYS_3(2)");
    assert!(summary.contains("0 packets written"), "{summary}");
    assert!(summary.contains(" 0 matched the filter"), "{summary}");
    assert_eq!(tshark(&file, "udp").len(), 0);
    // With the core reason beside them, all 50.
    let summary = run("SUBSYS_3(2),NETFILTER_DROP");
    assert!(summary.contains("50 packets written"), "{summary}");
    assert_eq!(tshark(&file, "udp").len(), 50);
    let _ = std::fs::remove_file(&file);
}

/// `tshark -r FILE` TCP rows: ip.src, tcp.srcport, ip.dst, tcp.dstport, tcp.seq_raw,
/// tcp.len, comment.
fn tshark_tcp(file: &Path) -> Vec<Vec<String>> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(file)
        .args(["-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "ip.src",
            "-e",
            "tcp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "tcp.dstport",
        ])
        .args(["-e", "tcp.seq_raw", "-e", "tcp.len", "-e", "frame.comment"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

#[test]
fn retransmits_of_a_connection_whose_peer_starts_dropping_are_in_the_file() {
    if !privileged("capture_retransmits") || !tools_present("capture_retransmits") {
        return;
    }
    for kind in HOOKS {
        retransmits_captured_on(kind);
    }
}

fn retransmits_captured_on(kind: HookKind) {
    use std::{
        io::{Read as _, Write as _},
        net::{TcpListener, TcpStream},
        os::unix::fs::MetadataExt as _,
    };
    eprintln!("--- capture_tcp_retransmit_skb on {}", kind.as_str());
    let hook_env = [("TRACER_HOOK", kind.as_str())];
    let link = Link::new("cpt", 150);
    // A 10 ms retransmission timeout floor towards the peer: many retransmissions in seconds.
    link.a.ip(&[
        "route",
        "add",
        &format!("{}/32", link.addr_b),
        "dev",
        "veth-a",
        "rto_min",
        "10ms",
    ]);
    const PORT: u16 = 5301;
    let server: SocketAddr = format!("{}:{PORT}", link.addr_b).parse().unwrap();
    let listener = link.b.run_in(move || TcpListener::bind(server).unwrap());
    let reader = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        // The first bytes come once both captures have attached (seconds on a loaded machine:
        // timing out then closed the connection under the client); the rest follow at once.
        conn.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut buf = [0u8; 4096];
        if matches!(conn.read(&mut buf), Ok(n) if n > 0) {
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    let client = link
        .a
        .run_in(move || TcpStream::connect_timeout(&server, Duration::from_secs(5)).unwrap());
    let client_port = client.local_addr().unwrap().port();
    let retrans_before = link.a.net_counter("snmp", "Tcp", "RetransSegs");
    let netns = link.a.path().display().to_string();
    let inode = std::fs::metadata(link.a.path()).unwrap().ino();
    let file = out_file("retransmits");
    let port = PORT.to_string();
    // Beside it, a capture of another port: the filter keeps this flow's retransmits out.
    let other_file = out_file("retransmits-other");
    let other_port = (PORT + 1).to_string();
    let other = start_capture(
        &[
            "--duration",
            "5s",
            "-w",
            other_file.to_str().unwrap(),
            "--retransmits",
            "--port",
            &other_port,
        ],
        &hook_env,
    );
    let summary = capture_with(
        &[
            "--duration",
            "5s",
            "-w",
            file.to_str().unwrap(),
            "--retransmits",
            "--netns",
            &netns,
            "--port",
            &port,
        ],
        &hook_env,
        || {
            let mut client = client;
            // Delivered and acknowledged, then the peer drops everything of the flow.
            client.write_all(&[1u8; 2000]).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            link.b.nft(&format!(
                "table inet capture_rtx {{\n chain input {{\n  type filter hook input priority 0;\n  tcp dport {PORT} drop\n }}\n}}\n"
            ));
            client.write_all(&[2u8; 3000]).unwrap();
            std::thread::sleep(Duration::from_secs(3));
            drop(client);
        },
    );
    let retrans_after = link.a.net_counter("snmp", "Tcp", "RetransSegs");
    let other_summary = other.finish();
    let rows = tshark_tcp(&file);
    let delta = retrans_after - retrans_before;
    eprintln!(
        "{} retransmitted segments captured; TcpRetransSegs of the client's namespace +{delta}",
        rows.len()
    );
    for (n, row) in rows.iter().take(3).enumerate() {
        eprintln!("tshark row {n}: {}", row.join(" | "));
    }
    eprint!("{summary}");
    assert!(rows.len() >= 5, "{} packets: {summary}", rows.len());
    assert!(
        delta >= rows.len() as u64,
        "the kernel retransmitted {delta} segments, the file holds {}: {summary}",
        rows.len()
    );
    for row in &rows {
        assert_eq!(row[0], link.addr_a, "{row:?}");
        assert_eq!(row[1], client_port.to_string(), "{row:?}");
        assert_eq!(row[2], link.addr_b, "{row:?}");
        assert_eq!(row[3], port, "{row:?}");
        assert!(
            row[5].parse::<u32>().unwrap() > 0,
            "a data segment: {row:?}"
        );
        // ESTABLISHED, then FIN_WAIT1 once the client closes.
        assert!(row[6].starts_with("retransmit state=TCP_"), "{row:?}");
        assert!(row[6].ends_with(&format!(" netns={inode}")), "{row:?}");
    }
    assert!(rows
        .iter()
        .any(|r| r[6].starts_with("retransmit state=TCP_ESTABLISHED ")));
    assert!(
        summary.contains(&format!("retransmitted segments: {} written", rows.len())),
        "{summary}"
    );
    assert_hooks(
        &summary,
        kind,
        &["capture_kfree_skb", "capture_tcp_retransmit_skb"],
    );
    // The other capture saw the retransmissions and wrote none of them.
    assert_eq!(tshark_tcp(&other_file).len(), 0, "{other_summary}");
    let seen: u64 = other_summary
        .lines()
        .find_map(|l| l.split(" of ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no retransmit line: {other_summary}"));
    // Its window starts and ends a little earlier: not every one of the flow's.
    assert!(seen >= 5, "{other_summary}");
    let _ = std::fs::remove_file(&other_file);
    reader.join().unwrap();
    let _ = std::fs::remove_file(&file);
}

#[test]
fn a_blackhole_route_is_the_routing_reason_and_the_port_filter_keeps_one_flow() {
    if !privileged("capture_blackhole") || !tools_present("capture_blackhole") {
        return;
    }
    let lab = Routed::new("cpb", 42);
    lab.router.ip(&[
        "route",
        "add",
        "blackhole",
        &format!("{}/32", lab.server_addr),
    ]);
    let file = out_file("blackhole");
    let netns = lab.router.path().display().to_string();
    let wanted: SocketAddr = format!("{}:9100", lab.server_addr).parse().unwrap();
    let other: SocketAddr = format!("{}:9200", lab.server_addr).parse().unwrap();
    let client = lab.client.path();
    // The server's /24: the host filter (source or destination in the prefix) keeps it.
    let host = format!("{}/24", lab.server_addr);
    let summary = capture(
        &[
            "--duration",
            "4s",
            "-w",
            file.to_str().unwrap(),
            "--netns",
            &netns,
            "--port",
            "9100",
            "--host",
            &host,
        ],
        || {
            let a = udp_stream(&client, wanted, Duration::from_secs(2), 100, 50, false);
            let b = udp_stream(&client, other, Duration::from_secs(2), 100, 50, false);
            a.join().unwrap();
            b.join().unwrap();
        },
    );
    let rows = tshark(&file, "udp");
    assert!(rows.len() >= 50, "{} packets: {summary}", rows.len());
    for row in &rows {
        assert_eq!(
            row[3], "9100",
            "the port filter lets only one flow through: {row:?}"
        );
        assert_eq!(row[2], lab.server_addr);
        assert!(row[4].contains("location=ip_error+0x"), "{row:?}");
        assert!(row[4].contains("layer=routing"), "{row:?}");
    }

    // A prefix neither end is in keeps nothing, and says the kernel matched nothing.
    let summary = capture(
        &[
            "--duration",
            "3s",
            "-w",
            file.to_str().unwrap(),
            "--netns",
            &netns,
            "--host",
            "198.18.200.0/24",
        ],
        || {
            udp_stream(&client, wanted, Duration::from_secs(1), 100, 50, false)
                .join()
                .unwrap();
        },
    );
    assert!(summary.contains("0 packets written"), "{summary}");
    assert!(summary.contains(" 0 matched the filter"), "{summary}");
    assert_eq!(tshark(&file, "udp").len(), 0);
    let _ = std::fs::remove_file(&file);
}

/// `lost to the limits: N (rate limit R, ring buffer full F, over --max-packets M, …` → (N, R, M).
fn losses(summary: &str) -> (u64, u64, u64) {
    let line = summary
        .lines()
        .find(|l| l.starts_with("lost to the limits:"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1], numbers[3])
}

#[test]
fn max_packets_and_the_rate_limit_hold_under_a_flood() {
    if !privileged("capture_flood") || !tools_present("capture_flood") {
        return;
    }
    let link = Link::new("cpf", 44);
    drop_udp_to_port(&link.b, 9);
    let netns = link.b.path().display().to_string();
    let to: SocketAddr = format!("{}:9", link.addr_b).parse().unwrap();

    // --max-packets: exactly that many in the file, the rest counted.
    let file = out_file("max");
    let summary = capture(
        &[
            "--duration",
            "5s",
            "-w",
            file.to_str().unwrap(),
            "--netns",
            &netns,
            "--max-packets",
            "300",
            "--rate",
            "1000000",
        ],
        || {
            flood_udp(&link.a, to, Duration::from_secs(2), None);
        },
    );
    assert_eq!(tshark(&file, "udp").len(), 300, "{summary}");
    let (lost, _, _) = losses(&summary);
    assert!(lost > 0, "{summary}");

    // --rate 200/s over 3 s: at most rate × time + one burst per CPU in the file, and the
    // rest counted as rate-limited.
    let cpus = std::thread::available_parallelism().unwrap().get() as u64;
    let file = out_file("rate");
    let summary = capture(
        &[
            "--duration",
            "3s",
            "-w",
            file.to_str().unwrap(),
            "--netns",
            &netns,
            "--max-packets",
            "100000",
            "--rate",
            "200",
        ],
        || {
            flood_udp(&link.a, to, Duration::from_secs(3), None);
        },
    );
    let packets = tshark(&file, "udp").len() as u64;
    let per_cpu = 200u64.div_ceil(cpus);
    let bound = cpus * per_cpu * (3 + 1) + cpus * per_cpu;
    assert!(
        packets > 0 && packets <= bound,
        "{packets} packets, bound {bound}: {summary}"
    );
    let (_, rate_limited, _) = losses(&summary);
    assert!(rate_limited > 1000, "{summary}");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn report_capture_writes_the_winning_layers_drops_and_names_the_file() {
    if !privileged("report_capture") || !tools_present("report_capture") {
        return;
    }
    let link = Link::new("cpr", 46);
    drop_udp_to_port(&link.b, 9);
    let file = out_file("report");
    let to: SocketAddr = format!("{}:9", link.addr_b).parse().unwrap();
    let netns = link.b.path().display().to_string();
    let child = Command::new(TRACER)
        .args([
            "report",
            "--duration",
            "5s",
            "--format",
            "json",
            "--netns",
            &netns,
        ])
        .arg("--capture")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The window and the capture start within a few seconds; send for most of the window.
    let client = link.a.path();
    udp_stream(&client, to, Duration::from_secs(4), 200, 20, false)
        .join()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a root cause: {stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["failure_layer"], "iptables_netpolicy", "{stderr}");
    let evidence = doc["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "packet_capture")
        .unwrap_or_else(|| panic!("no packet_capture evidence: {}", doc["evidence"]));
    let content = evidence["content"].as_str().unwrap();
    let rows = tshark(&file, "udp");
    assert!(rows.len() > 50, "{} packets: {content}", rows.len());
    assert!(
        content.starts_with(&format!(
            "{}: {} packets of the iptables_netpolicy layer's drops",
            file.display(),
            rows.len()
        )),
        "{content}"
    );
    assert!(rows.iter().all(|r| r[4].contains("reason=NETFILTER_DROP")));
    let _ = std::fs::remove_file(&file);
}

fn http_get(url: &str) -> (u16, Vec<u8>, Option<String>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut response = agent.get(url).call().unwrap();
    let status = response.status().as_u16();
    let packets = response
        .headers()
        .get("x-tracer-packets")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response
        .body_mut()
        .with_config()
        .limit(16 << 20)
        .read_to_vec()
        .unwrap();
    (status, body, packets)
}

#[test]
fn serve_capture_is_off_by_default_and_bounded_when_allowed() {
    if !privileged("serve_capture") || !tools_present("serve_capture") {
        return;
    }
    let link = Link::new("cps", 48);
    drop_udp_to_port(&link.b, 9);
    let netns = link.b.path().display().to_string();
    let to: SocketAddr = format!("{}:9", link.addr_b).parse().unwrap();

    let (mut off, listen) = lab::spawn_serve(&["--netns", &netns], &[]);
    let (status, body, _) = http_get(&format!("http://{listen}/capture?seconds=1"));
    let _ = off.kill();
    let _ = off.wait();
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("--allow-capture"));

    let (mut on, listen) = lab::spawn_serve(&["--netns", &netns, "--allow-capture"], &[]);
    let (status, body, _) = http_get(&format!("http://{listen}/capture?seconds=600"));
    assert_eq!(
        status,
        400,
        "over the bound: {}",
        String::from_utf8_lossy(&body)
    );
    let (status, body, _) = http_get(&format!("http://{listen}/capture?seconds=1&retransmits=2"));
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let client = link.a.path();
    let sender = udp_stream(&client, to, Duration::from_secs(4), 100, 20, false);
    // retransmits=1 attaches the retransmit program too; this UDP flow has none to add.
    let (status, body, packets) = http_get(&format!(
        "http://{listen}/capture?seconds=3&reason=NETFILTER_DROP&max_packets=50&retransmits=1"
    ));
    sender.join().unwrap();
    let _ = on.kill();
    let _ = on.wait();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let file = out_file("serve");
    std::fs::write(&file, &body).unwrap();
    let rows = tshark(&file, "udp");
    assert_eq!(rows.len(), 50, "max_packets bounds the download");
    assert_eq!(packets.as_deref(), Some("50"));
    assert!(rows.iter().all(|r| r[4].contains("reason=NETFILTER_DROP")));
    let _ = std::fs::remove_file(&file);
}
