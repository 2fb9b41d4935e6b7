//! The fleet on Prometheus, live: two `tracer serve` sidecars standing for two nodes
//! (`--node-name node-a` / `node-b`, each scoped to its own lab namespace) scraped every second
//! by a real Prometheus (Debian's package) that evaluates the shipped alert rules
//! (deploy/alerts/tracer-rules.yaml, `for:` shortened to 2 s in the test's copy only). Then
//! `tracer cluster --prometheus`: an nft drop on node-a only → node-specific naming node-a, its
//! layer and onset, and the layer alert fires for node-a only; loss on the wire upstream of both
//! namespaces → cluster-wide with the runbook's escalation; every PromQL expression of the
//! Grafana dashboard runs without error and its key panels return series; node-b's sidecar
//! killed → node-b "not reporting". Skips with a printed reason when not root or without
//! prometheus. Run with `--test-threads=1`.

#![allow(clippy::unwrap_used)]

mod lab;

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use lab::{privileged, prometheus::Prometheus, udp_stream, Netns, TunWire};

const TRACER: &str = env!("CARGO_BIN_EXE_tracer");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A `tracer serve` child for one "node"; SIGKILLed on drop.
struct Sidecar {
    child: Child,
    addr: String,
}

impl Sidecar {
    fn start(ns: &Netns, node: &str) -> Sidecar {
        let path = ns.path().display().to_string();
        let (child, addr) = lab::spawn_serve(
            &["--window", "10s", "--netns", &path, "--node-name", node],
            &[],
        );
        Sidecar { child, addr }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn unix_of(rfc3339: &str) -> f64 {
    humantime::parse_rfc3339_weak(rfc3339)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `tracer cluster --prometheus URL --window W -f FORMAT`: exit code and stdout.
fn cluster(url: &str, window: &str, format: &str) -> (Option<i32>, String) {
    let out = Command::new(TRACER)
        .args(["cluster", "--prometheus", url, "--window", window])
        .args(["--timeout", "10s", "--format", format])
        .env_remove("TRACER_PROMETHEUS_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.code() != Some(2) || format != "json",
        "cluster failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Polls `cluster … -f json` until `done` holds (at most `limit`); returns the JSON, and
/// prints the text form of the same moment.
fn cluster_until(
    url: &str,
    window: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> (Option<i32>, serde_json::Value) {
    let started = Instant::now();
    loop {
        let (code, out) = cluster(url, window, "json");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        if done(&v) {
            let (_, text) = cluster(url, window, "text");
            eprintln!(
                "--- {what} after {} ms: tracer cluster --prometheus {url} --window {window}\n{text}",
                started.elapsed().as_millis()
            );
            return (code, v);
        }
        assert!(
            started.elapsed() < limit,
            "{what}: not within {limit:?}; last answer:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Sends TCP from `from` to `to_addr:5201` in `to_ns` for `duration`; returns bytes received.
fn tcp_for(
    from: &Path,
    to_ns: &Path,
    to_addr: &str,
    duration: Duration,
) -> std::thread::JoinHandle<usize> {
    let listen: SocketAddr = format!("{to_addr}:5201").parse().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = lab::spawn_in_path(to_ns, move || {
        let listener = TcpListener::bind(listen).unwrap();
        ready_tx.send(()).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let sender = lab::spawn_in_path(from, move || {
        let mut conn = TcpStream::connect_timeout(&listen, Duration::from_secs(5)).unwrap();
        conn.set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let chunk = vec![7u8; 64 * 1024];
        let started = Instant::now();
        while started.elapsed() < duration {
            if conn.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = conn.shutdown(std::net::Shutdown::Write);
    });
    std::thread::spawn(move || {
        let _ = sender.join();
        receiver.join().unwrap_or(0)
    })
}

/// The shipped rules with every `for:` shortened to 2 s, written beside Prometheus' config.
fn rules_copy(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo("deploy/alerts/tracer-rules.yaml")).unwrap();
    let short: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("for: ") {
                format!("{}for: 2s", &l[..l.len() - l.trim_start().len()])
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        short.matches("for: 2s").count(),
        6,
        "every rule's for: shortened"
    );
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("tracer-rules.yaml");
    std::fs::write(&path, short).unwrap();
    path
}

/// Waits until `alert` fires with `node` (at most `limit`); returns every firing alert then.
fn wait_firing(
    prometheus: &Prometheus,
    alert: &str,
    node: &str,
    limit: Duration,
) -> Vec<(String, serde_json::Value)> {
    let started = Instant::now();
    loop {
        let firing = prometheus.firing();
        if firing
            .iter()
            .any(|(name, labels)| name == alert && labels["node"] == node)
        {
            eprintln!(
                "alert {alert} firing for {node} after {} ms",
                started.elapsed().as_millis()
            );
            return firing;
        }
        assert!(
            started.elapsed() < limit,
            "{alert} for {node} not firing within {limit:?}: {firing:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs every PromQL expression of the Grafana dashboard, its variables substituted; returns
/// (panel title, series count) and asserts none errs.
fn dashboard_queries(prometheus: &Prometheus) -> Vec<(String, usize)> {
    let text = std::fs::read_to_string(repo("deploy/grafana/tracer-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let node_query = variables
        .iter()
        .find(|v| v["name"] == "node")
        .and_then(|v| v["definition"].as_str())
        .unwrap();
    // label_values(METRIC, LABEL) is Grafana's; Prometheus answers it as the series of METRIC.
    let metric = node_query
        .trim_start_matches("label_values(")
        .split(',')
        .next()
        .unwrap();
    let nodes = prometheus.query(metric);
    assert_eq!(nodes["status"], "success", "{nodes}");
    out.push((
        "variable node".to_owned(),
        nodes["data"]["result"].as_array().unwrap().len(),
    ));
    for panel in dashboard["panels"].as_array().unwrap() {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$node", "node-a|node-b")
                .replace("$__rate_interval", "1m")
                .replace("$__range", "1h");
            assert!(!expr.contains('$'), "an unsubstituted variable in {expr}");
            let answer = prometheus.query(&expr);
            assert_eq!(
                answer["status"], "success",
                "panel {}: {expr}: {answer}",
                panel["title"]
            );
            let series = answer["data"]["result"].as_array().map_or(0, Vec::len);
            out.push((panel["title"].as_str().unwrap().to_owned(), series));
        }
    }
    out
}

#[test]
fn prometheus_fleet_verdicts_alerts_and_dashboard_from_two_live_sidecars() {
    if !privileged("prometheus_fleet") || !lab::prometheus::installed("prometheus_fleet") {
        return;
    }
    // Each node's namespace has a peer across a lossy user-space wire (3 % of a→b lost, the
    // network path no local layer sees); node-a's also drops UDP 7777 in nftables.
    let (a, a_peer) = (Netns::new("pfa"), Netns::new("pfap"));
    let (b, b_peer) = (Netns::new("pfb"), Netns::new("pfbp"));
    let wire_a = TunWire::new(&a, &a_peer, 3, Duration::ZERO);
    let wire_b = TunWire::new(&b, &b_peer, 3, Duration::ZERO);
    a.nft(
        "table inet trcpfleet {\n\
           chain input {\n\
             type filter hook input priority 0; policy accept;\n\
             udp dport 7777 counter drop\n\
           }\n\
         }\n",
    );
    let node_a = Sidecar::start(&a, "node-a");
    let mut node_b = Sidecar::start(&b, "node-b");
    let rules_dir =
        std::env::temp_dir().join(format!("tracer-pfleet-rules-{}", std::process::id()));
    let rules = rules_copy(&rules_dir);
    let prometheus = Prometheus::start("pfleet", &[&node_a.addr, &node_b.addr], &[&rules]);
    prometheus.wait_targets_up(2, Duration::from_secs(30));
    let url = prometheus.url();
    // Both healthy first: two nodes reporting.
    let (code, v) = cluster_until(&url, "10s", Duration::from_secs(30), "healthy", |v| {
        v["healthy"].as_array().map_or(0, Vec::len) == 2
    });
    assert_eq!(code, Some(0));
    assert_eq!(v["scope"], "healthy");

    // 1. An nft drop on node-a only: node-specific, node-a named with its layer and onset.
    let started_unix = unix_now();
    let to: SocketAddr = "127.0.0.1:7777".parse().unwrap();
    let sent = udp_stream(&a.path(), to, Duration::from_secs(4), 200, 64, false)
        .join()
        .unwrap();
    assert!(sent >= 600, "sent {sent}");
    let (code, v) = cluster_until(&url, "15s", Duration::from_secs(30), "node-specific", |v| {
        v["scope"] == "node_specific"
    });
    assert_eq!(code, Some(1));
    assert_eq!(v["degraded"], serde_json::json!(["node-a"]));
    assert_eq!(v["healthy"], serde_json::json!(["node-b"]));
    let n = &v["nodes"][0];
    assert_eq!(n["endpoint"], "node-a");
    assert_eq!(n["root_cause"], "security_rule_drops");
    assert_eq!(n["failure_layer"], "iptables_netpolicy");
    let lost = n["lost_packets"].as_u64().unwrap();
    assert!(lost >= 10 && lost <= sent, "lost {lost} of {sent}");
    let onset = n["onset"].as_str().unwrap();
    let onset_s = unix_of(onset);
    eprintln!(
        "onset {onset}: {:.1} s after the sender started",
        onset_s - started_unix
    );
    assert!(
        onset_s >= started_unix - 2.0 && onset_s <= started_unix + 6.0,
        "onset {onset} vs traffic from {started_unix}"
    );
    assert!(
        n["top_evidence"]
            .as_str()
            .unwrap()
            .starts_with("NETFILTER_DROP drops: "),
        "{n}"
    );
    assert_eq!(v["escalation"], serde_json::json!([]));
    // The shipped layer rule fires for node-a, and nothing fires for node-b.
    let firing = wait_firing(
        &prometheus,
        "TracerLayerLosingPackets",
        "node-a",
        Duration::from_secs(20),
    );
    eprintln!("firing: {firing:?}");
    assert!(
        firing.iter().all(|(_, labels)| labels["node"] != "node-b"),
        "{firing:?}"
    );
    let layer_alerts: Vec<_> = firing
        .iter()
        .filter(|(name, _)| name == "TracerLayerLosingPackets")
        .collect();
    assert_eq!(layer_alerts.len(), 1, "{layer_alerts:?}");
    assert_eq!(layer_alerts[0].1["layer"], "iptables_netpolicy");

    // Wait until node-a's rolling verdict is healthy again before the next case.
    let healthy_again = Instant::now();
    loop {
        let now = prometheus.query("tracer_verdict_info{node=\"node-a\",root_cause=\"none\"}");
        if now["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            break;
        }
        assert!(healthy_again.elapsed() < Duration::from_secs(30), "{now}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // 2. Loss upstream of both nodes at once: cluster-wide, with the runbook's escalation.
    let upstream_from = unix_now();
    let ta = tcp_for(
        &a.path(),
        &a_peer.path(),
        "198.18.30.2",
        Duration::from_secs(6),
    );
    let tb = tcp_for(
        &b.path(),
        &b_peer.path(),
        "198.18.30.2",
        Duration::from_secs(6),
    );
    let (code, v) = cluster_until(&url, "8s", Duration::from_secs(40), "cluster-wide", |v| {
        v["scope"] == "cluster_wide"
    });
    let (got_a, got_b) = (ta.join().unwrap(), tb.join().unwrap());
    let ((passed_a, lost_a), (passed_b, lost_b)) = (wire_a.stop(), wire_b.stop());
    eprintln!(
        "wires: node-a {passed_a} passed / {lost_a} lost, node-b {passed_b} / {lost_b}; \
         received {got_a} and {got_b} bytes"
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        v["failure_layers"]["upstream"],
        serde_json::json!(["node-a", "node-b"])
    );
    let escalation = v["escalation"][0].as_str().unwrap();
    assert!(
        escalation.starts_with(
            "Packet loss on multiple nodes simultaneously — possible upstream network issue (2 nodes"
        ),
        "{escalation}"
    );
    for n in v["nodes"].as_array().unwrap() {
        assert_eq!(n["root_cause"], "upstream_loss", "{n}");
        assert!(n["top_evidence"]
            .as_str()
            .unwrap()
            .contains("TCP segments retransmitted"));
        // The onset is the start of the first interval with the loss: about a second, but a
        // sample taken late (the sidecar's thread descheduled on a loaded machine) stretches it.
        let onset = unix_of(n["onset"].as_str().unwrap());
        assert!(
            onset >= upstream_from - 3.0 && onset <= unix_now(),
            "{}: onset {} vs the transfer from {upstream_from}",
            n["endpoint"],
            n["onset"]
        );
    }
    wait_firing(
        &prometheus,
        "TracerUpstreamLossOnManyNodes",
        "node-b",
        Duration::from_secs(20),
    );

    // 3. The dashboard's every expression against what this Prometheus scraped.
    let results = dashboard_queries(&prometheus);
    eprintln!("dashboard queries (panel, series): {results:?}");
    for key in [
        "variable node",
        "Verdict per node",
        "Lost packets per layer (rolling window)",
        "Drops by reason",
        "NET_RX softirq share per CPU",
        "TCP retransmitted segments",
        "TCP RTT",
        "TCP connect time",
        "Tracer health: probes attached, events lost",
    ] {
        let series = results
            .iter()
            .filter(|(title, _)| title == key)
            .map(|(_, n)| n)
            .min()
            .copied()
            .unwrap_or(0);
        assert!(series > 0, "panel {key} returned no series: {results:?}");
    }

    // 4. node-b's sidecar killed: node-b is not reporting, never healthy.
    for expr in [
        "count_over_time(tracer_verdict_info{node=\"node-a\"}[30s])",
        "max_over_time(tracer_layer_lost_packets{node=\"node-a\"}[30s]) > 0",
    ] {
        eprintln!("{expr}: {}", prometheus.query(expr)["data"]["result"]);
    }
    node_b.kill();
    let (code, v) = cluster_until(&url, "30s", Duration::from_secs(20), "not reporting", |v| {
        v["not_reporting"] == serde_json::json!(["node-b"])
    });
    assert_ne!(code, Some(0));
    let b_row = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["endpoint"] == "node-b")
        .unwrap();
    assert_eq!(b_row["state"], "not_reporting");
    assert!(b_row["error"]
        .as_str()
        .unwrap()
        .contains("series went stale"));
    assert!(!v["healthy"].as_array().unwrap().contains(&"node-b".into()));
    // node-a's row is its newest verdict (upstream loss), not case 1's rule drop that more
    // scrapes in the 30 s window named.
    let a_row = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["endpoint"] == "node-a")
        .unwrap();
    assert_eq!(a_row["root_cause"], "upstream_loss", "{a_row}");
    wait_firing(
        &prometheus,
        "TracerNotReporting",
        "node-b",
        Duration::from_secs(20),
    );
    let firing = prometheus.firing();
    assert!(
        !firing
            .iter()
            .any(|(name, l)| name == "TracerNotReporting" && l["node"] == "node-a"),
        "{firing:?}"
    );
    drop(prometheus);
    let _ = std::fs::remove_dir_all(&rules_dir);
}
