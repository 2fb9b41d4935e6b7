//! Comparing nodes and the cluster view end to end, with the real binary: `tracer diff` on
//! recorded reports and recordings; `tracer cluster` against small fake sidecars serving
//! recorded documents (plus a dead and a silent endpoint), and, as root, against two real
//! `tracer serve` processes watching lab namespaces where an nftables rule drops traffic.
//! Privileged cases skip with a printed reason when not root; run with `--test-threads=1`.

mod lab;

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use lab::{privileged, udp_stream, Netns};

const TRACER: &str = env!("CARGO_BIN_EXE_tracer");

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/reports")
        .join(name)
}

fn tracer(args: &[&str]) -> Output {
    Command::new(TRACER)
        .args(args)
        .output()
        .expect("running tracer")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

// ---------------------------------------------------------------------------------------------
// tracer diff

#[test]
fn diff_of_recorded_reports_names_the_netfilter_drops_first_and_exits_1() {
    let (a, h) = (fixture("netfilter-drops.json"), fixture("healthy.json"));
    let out = tracer(&[
        "diff",
        a.to_str().expect("path"),
        h.to_str().expect("path"),
        "--format",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["affected"]["root_cause"], "security_rule_drops");
    assert_eq!(v["healthy"]["root_cause"], "none");
    let top = &v["differences"][0];
    assert_eq!(top["kind"], "drop_reason");
    assert_eq!(top["subject"], "NETFILTER_DROP at nft_do_chain");
    assert_eq!(top["layer"], "iptables_netpolicy");
    assert_eq!(top["affected"], "1460 (486.5/s)");
    assert_eq!(top["score"], 1.0);
    assert_eq!(v["differences"][1]["kind"], "rule");
    assert_eq!(v["differences"][2]["subject"], "DROP/REJECT rules");

    // Text and YAML carry the same ranking.
    let text = tracer(&[
        "diff",
        a.to_str().expect("path"),
        h.to_str().expect("path"),
        "--format",
        "text",
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    let first = text
        .lines()
        .find(|l| l.trim_start().starts_with("1.00"))
        .expect("a ranked line");
    assert!(first.contains("NETFILTER_DROP at nft_do_chain"), "{text}");
    let yaml = tracer(&[
        "diff",
        a.to_str().expect("path"),
        h.to_str().expect("path"),
        "--format",
        "yaml",
    ]);
    let y: yaml_serde::Value = yaml_serde::from_slice(&yaml.stdout).expect("yaml");
    assert_eq!(
        y["differences"][0]["subject"].as_str(),
        Some("NETFILTER_DROP at nft_do_chain")
    );
}

#[test]
fn diff_of_recordings_adds_the_rule_and_swapped_arguments_exit_0() {
    let (a, h) = (
        fixture("netfilter-drops.rec.json"),
        fixture("healthy.rec.json"),
    );
    let out = tracer(&[
        "diff",
        a.to_str().expect("path"),
        h.to_str().expect("path"),
        "--format",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["affected"]["input"], "recording");
    assert_eq!(
        v["differences"][0]["subject"],
        "NETFILTER_DROP at nft_do_chain"
    );
    assert_eq!(
        v["differences"][2]["subject"],
        "nftables inet trcfix chain input: `udp dport 7777 counter drop` drop"
    );
    assert_eq!(v["differences"][2]["affected"], "present");

    let swapped = tracer(&[
        "diff",
        h.to_str().expect("path"),
        a.to_str().expect("path"),
        "--format",
        "json",
    ]);
    assert_eq!(swapped.status.code(), Some(0));
    let notes = json(&swapped)["notes"].to_string();
    assert!(notes.contains("swapped"), "{notes}");
}

#[test]
fn diff_of_something_else_fails_in_one_sentence_with_exit_2() {
    let junk = std::env::temp_dir().join(format!("trc-junk-{}.json", std::process::id()));
    std::fs::write(&junk, r#"{"hello":"world"}"#).expect("write");
    let h = fixture("healthy.json");
    let out = tracer(&[
        "diff",
        junk.to_str().expect("path"),
        h.to_str().expect("path"),
    ]);
    let _ = std::fs::remove_file(&junk);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot be compared") && err.contains("no root_cause"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Runs tracer with `stdin` as its standard input.
fn tracer_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(TRACER)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running tracer");
    let mut input = child.stdin.take().expect("stdin");
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().expect("tracer output");
    writer.join().expect("writer");
    out
}

#[test]
fn dash_is_stdin_for_diff_and_for_replay() {
    let a = fixture("netfilter-drops.json");
    let healthy = read_fixture("healthy.json");
    let from_file = tracer(&[
        "diff",
        a.to_str().expect("path"),
        fixture("healthy.json").to_str().expect("path"),
        "--format",
        "json",
    ]);
    let from_stdin = tracer_with_stdin(
        &["diff", a.to_str().expect("path"), "-", "--format", "json"],
        healthy.as_bytes(),
    );
    assert_eq!(
        from_stdin.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&from_stdin.stderr)
    );
    let (f, s) = (json(&from_file), json(&from_stdin));
    assert_eq!(s["differences"], f["differences"]);
    assert_eq!(s["healthy"]["root_cause"], "none");
    // A recording on stdin, as the affected side.
    let recording = read_fixture("netfilter-drops.rec.json");
    let out = tracer_with_stdin(
        &[
            "diff",
            "-",
            fixture("healthy.rec.json").to_str().expect("path"),
            "--format",
            "json",
        ],
        recording.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["affected"]["input"], "recording");
    // Both sides cannot be stdin.
    let out = tracer_with_stdin(&["diff", "-", "-"], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only one of the two inputs can be -"), "{err}");
    // report --replay -: the recording's verdict.
    let out = tracer_with_stdin(
        &["report", "--replay", "-", "--format", "json"],
        recording.as_bytes(),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["root_cause"], "security_rule_drops");
}

#[test]
fn truncated_and_foreign_inputs_are_named_for_what_they_are() {
    let whole = read_fixture("netfilter-drops.rec.json");
    let cut = std::env::temp_dir().join(format!("trc-cut-{}.json", std::process::id()));
    std::fs::write(&cut, &whole[..whole.len() / 2]).expect("write");
    let yaml = std::env::temp_dir().join(format!("trc-notdoc-{}.yaml", std::process::id()));
    std::fs::write(&yaml, "hello: [1, 2\n").expect("write");
    let cut_arg = cut.to_str().expect("path");
    let healthy = fixture("healthy.json");
    let replay = tracer(&["report", "--replay", cut_arg]);
    let diff_cut = tracer(&["diff", cut_arg, healthy.to_str().expect("path")]);
    let diff_yaml = tracer(&[
        "diff",
        yaml.to_str().expect("path"),
        healthy.to_str().expect("path"),
    ]);
    let _ = std::fs::remove_file(&cut);
    let _ = std::fs::remove_file(&yaml);
    for (what, out) in [("replay", &replay), ("diff", &diff_cut)] {
        assert_eq!(out.status.code(), Some(2), "{what}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(
            err.contains("truncated or incomplete")
                && err.contains("line 1 column")
                && !err.contains("no format/version"),
            "{what}: {err}"
        );
    }
    assert_eq!(diff_yaml.status.code(), Some(2));
    let err = String::from_utf8_lossy(&diff_yaml.stderr);
    assert!(
        err.contains("it is not a verdict document, neither as JSON")
            && !err.contains("is written in"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// tracer cluster against fake sidecars

/// A sidecar stand-in: answers every request with `body` (200), records the request lines, and
/// stops after `deadline`.
struct FakeSidecar {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeSidecar {
    fn serve(body: String, silent: bool) -> FakeSidecar {
        Self::answer("200 OK", body, silent)
    }

    fn answer(status: &'static str, body: String, silent: bool) -> FakeSidecar {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut held = Vec::new();
            while Instant::now() < deadline {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                seen.lock().expect("lock").push(line);
                if silent {
                    // Accept and never answer: the client's timeout must end the wait.
                    held.push(stream);
                    continue;
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeSidecar { addr, requests }
    }
}

/// An address where nothing listens.
fn dead_endpoint() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).expect("fixture")
}

#[test]
fn cluster_of_fake_sidecars_names_the_one_degraded_node_and_every_unreachable_one() {
    let affected = FakeSidecar::serve(read_fixture("netfilter-drops.json"), false);
    let healthy = FakeSidecar::serve(read_fixture("healthy.json"), false);
    let silent = FakeSidecar::serve(String::new(), true);
    let dead = dead_endpoint();
    // Half the endpoints in a file, half on the command line.
    let file = std::env::temp_dir().join(format!("trc-endpoints-{}", std::process::id()));
    std::fs::write(
        &file,
        format!(
            "# the fleet\n{}\n{}  # this one never answers\n",
            healthy.addr, silent.addr
        ),
    )
    .expect("endpoints file");
    let started = Instant::now();
    let out = tracer(&[
        "cluster",
        "--endpoints",
        &format!("{},{}", affected.addr, dead),
        "--endpoints-file",
        file.to_str().expect("path"),
        "--timeout",
        "2s",
        "--format",
        "json",
    ]);
    let took = started.elapsed();
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took < Duration::from_secs(5),
        "bounded by --timeout 2s, took {took:?}"
    );
    let v = json(&out);
    assert_eq!(v["scope"], "node_specific");
    assert_eq!(
        v["degraded"],
        serde_json::json!([affected.addr.to_string()])
    );
    assert_eq!(v["healthy"], serde_json::json!([healthy.addr.to_string()]));
    assert_eq!(
        v["unreachable"],
        serde_json::json!([dead.to_string(), silent.addr.to_string()])
    );
    assert_eq!(v["escalation"], serde_json::json!([]));
    let silent_node = v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["endpoint"] == silent.addr.to_string())
        .expect("silent node listed");
    assert!(
        silent_node["error"]
            .as_str()
            .is_some_and(|e| e.contains("no answer")),
        "{silent_node}"
    );
    assert_eq!(
        affected.requests.lock().expect("lock").as_slice(),
        ["GET /report?window=60s HTTP/1.1"]
    );
}

#[test]
fn cluster_with_the_same_loss_on_two_of_three_nodes_is_cluster_wide_and_escalates() {
    let a = FakeSidecar::serve(read_fixture("netfilter-drops.json"), false);
    let b = FakeSidecar::serve(read_fixture("netfilter-drops.json"), false);
    let c = FakeSidecar::serve(read_fixture("healthy.json"), false);
    let out = tracer(&[
        "cluster",
        "--endpoints",
        &format!("{},{},{}", a.addr, b.addr, c.addr),
        "--window",
        "30s",
        "--format",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["scope"], "cluster_wide");
    assert_eq!(
        v["failure_layers"]["iptables_netpolicy"],
        serde_json::json!([a.addr.to_string(), b.addr.to_string()])
    );
    let escalation = v["escalation"][0].as_str().expect("escalation");
    assert!(
        escalation.starts_with(
            "Packet loss on multiple nodes simultaneously — possible upstream network issue (2 nodes"
        ),
        "{escalation}"
    );
    assert_eq!(
        c.requests.lock().expect("lock").as_slice(),
        ["GET /report?window=30s HTTP/1.1"]
    );
}

#[test]
fn cluster_with_no_answer_at_all_exits_2() {
    let starting = FakeSidecar::answer(
        "503 Service Unavailable",
        "not ready: probes attaching\n".to_owned(),
        false,
    );
    let out = tracer(&[
        "cluster",
        "--endpoints",
        &format!("{},{}", dead_endpoint(), starting.addr),
        "--timeout",
        "2s",
        "--format",
        "text",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("CLUSTER  no node gave a verdict (2 endpoints)"),
        "{text}"
    );
    // The starting sidecar answered: what it said is quoted, and it is not "unreachable".
    assert!(
        text.contains("NO VERDICT   answered but with HTTP 503 Service Unavailable: \"not ready: probes attaching\""),
        "{text}"
    );
    assert_eq!(text.matches("UNREACHABLE").count(), 1, "{text}");
    let none = tracer(&["cluster"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no endpoint given"));
}

/// Issue 14 item 13: a node that answers with something other than a verdict (another HTTP
/// server on the port, a 404) answered: it is "answered but …" with the status and the first
/// bytes, never "UNREACHABLE".
#[test]
fn cluster_says_a_node_answered_but_not_with_a_verdict() {
    let healthy = FakeSidecar::serve(read_fixture("healthy.json"), false);
    let html = FakeSidecar::serve(
        "<html><body>Welcome to nginx!</body></html>".to_owned(),
        false,
    );
    let missing = FakeSidecar::answer("404 Not Found", "404 page not found\n".to_owned(), false);
    let dead = dead_endpoint();
    let endpoints = format!("{},{},{},{dead}", healthy.addr, html.addr, missing.addr);
    let out = tracer(&[
        "cluster",
        "--endpoints",
        &endpoints,
        "--timeout",
        "2s",
        "--format",
        "json",
    ]);
    // Healthy where a verdict came, but not every node checked: 2.
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["healthy"], serde_json::json!([healthy.addr.to_string()]));
    assert_eq!(
        v["no_verdict"],
        serde_json::json!([html.addr.to_string(), missing.addr.to_string()])
    );
    assert_eq!(v["unreachable"], serde_json::json!([dead.to_string()]));
    let node = |addr: SocketAddr| {
        v["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["endpoint"] == addr.to_string())
            .cloned()
            .expect("node listed")
    };
    let html_node = node(html.addr);
    assert_eq!(html_node["state"], "no_verdict");
    let error = html_node["error"].as_str().expect("error");
    assert!(
        error.starts_with("answered but not with a verdict document (HTTP 200)")
            && error.contains("<html><body>Welcome to nginx!"),
        "{error}"
    );
    let error = node(missing.addr)["error"]
        .as_str()
        .expect("error")
        .to_owned();
    assert!(
        error.starts_with("answered but with HTTP 404") && error.contains("404 page not found"),
        "{error}"
    );
    assert!(
        v["summary"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("2 answered without a verdict: {}", html.addr))),
        "{}",
        v["summary"]
    );

    let text = tracer(&[
        "cluster",
        "--endpoints",
        &endpoints,
        "--timeout",
        "2s",
        "--format",
        "text",
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    let html_line = text
        .lines()
        .find(|l| l.contains(&html.addr.to_string()) && !l.starts_with("CLUSTER"))
        .expect("a line for the html node");
    assert!(
        html_line.contains("NO VERDICT") && html_line.contains("answered but"),
        "{text}"
    );
    assert_eq!(
        text.matches("UNREACHABLE").count(),
        1,
        "only the dead port: {text}"
    );
}

/// Issue 14 item 13: a window no sidecar can judge is refused before any node is asked, in one
/// sentence, instead of every node answering 400 and being listed unreachable.
#[test]
fn cluster_refuses_a_window_no_sidecar_keeps_before_asking() {
    let node = FakeSidecar::serve(read_fixture("healthy.json"), false);
    let out = tracer(&[
        "cluster",
        "--endpoints",
        &node.addr.to_string(),
        "--window",
        "99h",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("tracer: --window 99h is longer than 1h"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        node.requests.lock().expect("lock").is_empty(),
        "no node was asked"
    );
}

// ---------------------------------------------------------------------------------------------
// tracer cluster against real `tracer serve` processes (root)

/// A `tracer serve` child, terminated on drop.
struct Sidecar {
    child: Child,
    addr: String,
}

impl Sidecar {
    fn start(ns: &Netns) -> Sidecar {
        let port = dead_endpoint().port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(TRACER)
            .args(["serve", "--listen", &addr, "--window", "10s", "--netns"])
            .arg(ns.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting tracer serve");
        let sidecar = Sidecar { child, addr };
        sidecar.wait_ready();
        sidecar
    }

    /// Polls `/readyz` until 200, at most 30 s.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(&self.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = write!(
                    s,
                    "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                );
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("tracer serve on {} was not ready within 30 s", self.addr);
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        // SIGTERM, as the kubelet would; the server exits within 2 s.
        // SAFETY: kill(2) on the pid of a child this value owns and has not reaped.
        let _ = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drop_rule(ns: &Netns) {
    ns.nft(
        "table inet trcfleet {\n\
           chain input {\n\
             type filter hook input priority 0; policy accept;\n\
             udp dport 7777 counter drop\n\
           }\n\
         }\n",
    );
}

fn cluster_json(endpoints: &[&str], window: &str) -> (Option<i32>, serde_json::Value) {
    let out = tracer(&[
        "cluster",
        "--endpoints",
        &endpoints.join(","),
        "--window",
        window,
        "--timeout",
        "15s",
        "--format",
        "json",
    ]);
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    (out.status.code(), json(&out))
}

#[test]
fn cluster_over_two_live_sidecars_tells_node_specific_from_cluster_wide() {
    if !privileged("cluster_over_live_sidecars") {
        return;
    }
    let (ns1, ns2) = (Netns::new("fl1"), Netns::new("fl2"));
    drop_rule(&ns1);
    drop_rule(&ns2);
    let (s1, s2) = (Sidecar::start(&ns1), Sidecar::start(&ns2));
    let dead = dead_endpoint().to_string();
    let to: SocketAddr = "127.0.0.1:7777".parse().expect("addr");

    // Only the first node drops: node-specific, the second healthy, the third unreachable.
    let sent = udp_stream(&ns1.path(), to, Duration::from_secs(3), 200, 64, false)
        .join()
        .expect("sender");
    assert!(sent >= 300, "sent {sent}");
    let (code, v) = cluster_json(&[&s1.addr, &s2.addr, &dead], "6s");
    assert_eq!(code, Some(1));
    assert_eq!(v["scope"], "node_specific");
    assert_eq!(v["degraded"], serde_json::json!([s1.addr]));
    assert_eq!(v["healthy"], serde_json::json!([s2.addr]));
    assert_eq!(v["unreachable"], serde_json::json!([dead]));
    assert_eq!(v["nodes"][0]["root_cause"], "security_rule_drops");
    let lost = v["nodes"][0]["lost_packets"].as_u64().expect("lost");
    assert!(lost >= 300 && lost <= sent, "lost {lost} of {sent} sent");
    assert_eq!(v["escalation"], serde_json::json!([]));

    // Both nodes drop at once: cluster-wide, and the runbook's escalation for several nodes.
    let a = udp_stream(&ns1.path(), to, Duration::from_secs(3), 200, 64, false);
    let b = udp_stream(&ns2.path(), to, Duration::from_secs(3), 200, 64, false);
    let (sent_a, sent_b) = (a.join().expect("sender"), b.join().expect("sender"));
    assert!(sent_a >= 300 && sent_b >= 300, "sent {sent_a}, {sent_b}");
    let (code, v) = cluster_json(&[&s1.addr, &s2.addr, &dead], "4s");
    assert_eq!(code, Some(1));
    assert_eq!(v["scope"], "cluster_wide");
    assert_eq!(
        v["failure_layers"]["iptables_netpolicy"],
        serde_json::json!([s1.addr, s2.addr])
    );
    assert_eq!(v["unreachable"], serde_json::json!([dead]));
    let escalation = v["escalation"][0].as_str().expect("escalation");
    assert!(
        escalation.starts_with("Packet loss on multiple nodes simultaneously"),
        "{escalation}"
    );
}
