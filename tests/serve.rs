//! `tracer serve` end to end: the real binary, a real HTTP client, real drops in a namespace
//! the test creates. Each test skips with a printed reason when not root. Run serially.

mod lab;

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    os::unix::fs::MetadataExt as _,
    process::{Child, Command, Stdio},
    sync::{Arc, Barrier},
    time::{Duration, Instant},
};

use lab::{privileged, send_udp, Netns};

/// A `tracer serve` process, stopped with SIGKILL on drop if the test did not stop it.
struct Server {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .into()
}

impl Server {
    /// Starts the server and waits (at most 15 s) until /readyz says ready.
    fn start(extra: &[&str]) -> Server {
        Server::start_on(lab::free_port(), extra)
    }

    /// [`Server::start`] on a given port.
    fn start_on(port: u16, extra: &[&str]) -> Server {
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tracer"))
            .args(["serve", "--listen", &listen])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tracer serve");
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || BufReader::new(stderr).lines().for_each(drop));
        let server = Server {
            child,
            base: format!("http://{listen}"),
            agent: agent(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok((200, body)) = server.get("/readyz") {
                let all = format!("{} probes attached", tracer::kernel::probes::PROBES.len());
                assert!(body.contains(&all), "readyz: {body}");
                return server;
            }
            assert!(Instant::now() < deadline, "the server never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn get(&self, path: &str) -> Result<(u16, String), ureq::Error> {
        let mut response = self.agent.get(format!("{}{path}", self.base)).call()?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string()?;
        Ok((status, body))
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }
}

fn sample(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .sum()
}

fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the exposition parses")
}

/// One raw request; returns the status line.
fn raw(base: &str, request: &[u8]) -> String {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(request).expect("write");
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.lines().next().unwrap_or("").to_owned()
}

/// `NO_SOCKET` drops in one namespace, in a verdict document.
fn no_socket_in(doc: &serde_json::Value, inode: u64) -> u64 {
    doc["observations"]["drops"]["by_reason"]
        .as_array()
        .expect("by_reason")
        .iter()
        .filter(|r| r["reason"] == "NO_SOCKET")
        .flat_map(|r| r["netns"].as_array().expect("netns").iter())
        .filter(|n| n["inode"].as_u64() == Some(inode))
        .map(|n| n["count"].as_u64().expect("count"))
        .sum()
}

/// The `netns_name` of each drop row of namespace `inode`, in a verdict document.
fn netns_names_in(doc: &serde_json::Value, inode: u64) -> Vec<String> {
    doc["observations"]["drops"]["by_reason"]
        .as_array()
        .expect("by_reason")
        .iter()
        .flat_map(|r| r["netns"].as_array().expect("netns").iter())
        .filter(|n| n["inode"].as_u64() == Some(inode))
        .map(|n| n["netns_name"].as_str().unwrap_or("(none)").to_owned())
        .collect()
}

#[test]
fn every_endpoint_answers_and_drops_are_counted_exactly() {
    if !privileged("serve_endpoints") {
        return;
    }
    let ns = Netns::new("serve");
    let inode = std::fs::metadata(ns.path()).expect("netns").ino();
    // Scoped to the lab namespace: other work on the machine cannot move the verdict.
    let path = ns.path();
    let server = Server::start(&["--window", "20s", "--netns", path.to_str().expect("path")]);

    let (status, body) = server.get("/healthz").expect("healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, body) = server.get("/").expect("index");
    assert_eq!(status, 200);
    assert!(body.contains("/metrics") && body.contains("/report"));

    const N: u32 = 417;
    send_udp(&ns, "127.0.0.1:9".parse().expect("addr"), N);
    // Two frames later the drops are in the totals and in the rolling window.
    std::thread::sleep(Duration::from_millis(2500));

    let (status, text) = server.get("/metrics").expect("metrics");
    assert_eq!(status, 200);
    let scrape = parse_metrics(&text);
    let netns = inode.to_string();
    let drops = sample(
        &scrape,
        "tracer_drops_total",
        &[
            ("reason", "NO_SOCKET"),
            ("layer", "no_listener"),
            ("netns", &netns),
        ],
    );
    assert_eq!(drops, f64::from(N), "every datagram to the closed port");
    assert_eq!(
        sample(&scrape, "tracer_probe_attached", &[]),
        tracer::kernel::probes::PROBES.len() as f64
    );
    assert_eq!(
        sample(&scrape, "tracer_verdict_info", &[("root_cause", "none")]),
        1.0,
        "closed-port traffic is not a network loss"
    );
    assert!(
        sample(
            &scrape,
            "tracer_softirq_seconds_total",
            &[("vec", "NET_RX")]
        ) >= 0.0
    );

    let (status, body) = server.get("/report?window=10s").expect("report");
    assert_eq!(status, 200);
    let doc = lab::document::parse(&body);
    assert_eq!(no_socket_in(&doc, inode), u64::from(N));
    assert_eq!(netns_names_in(&doc, inode), vec![ns.name.clone()]);
    let (status, body) = server.get("/report").expect("report");
    assert_eq!(status, 200);
    let doc = lab::document::parse(&body);
    assert_eq!(no_socket_in(&doc, inode), u64::from(N));
    assert_eq!(doc["root_cause"], "none");
    // Issue 19: the lab's `ip netns` name stands beside the inode of its drops.
    assert_eq!(netns_names_in(&doc, inode), vec![ns.name.clone()], "{body}");

    // Malformed and unknown requests: a clear status, never a crash.
    for (path, want, says) in [
        ("/report?window=banana", 400, "not a duration"),
        ("/report?window=2h", 400, "longer than the 5m"),
        ("/report?window=0", 400, "shorter than one second"),
        ("/report?window=%ZZ", 400, ""),
        ("/nope", 404, "no such endpoint"),
    ] {
        let (status, body) = server.get(path).expect(path);
        assert_eq!(status, want, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    let response = server
        .agent
        .post(format!("{}/metrics", server.base))
        .send("x")
        .expect("POST");
    assert_eq!(response.status().as_u16(), 405, "read-only: POST refused");
    assert!(raw(&server.base, b"GARBAGE\r\n\r\n").contains(" 400 "));
    assert!(raw(
        &server.base,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n"
    )
    .contains(" 400 "));
    // Still serving after all that.
    assert_eq!(server.get("/healthz").expect("healthz").0, 200);
}

#[test]
fn a_thousand_concurrent_scrapes_all_succeed() {
    if !privileged("serve_scrapes") {
        return;
    }
    let server = Server::start(&[]);
    const SCRAPERS: usize = 1000;
    let barrier = Arc::new(Barrier::new(SCRAPERS));
    let url = format!("{}/metrics", server.base);
    let threads: Vec<_> = (0..SCRAPERS)
        .map(|_| {
            let barrier = barrier.clone();
            let url = url.clone();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let agent = agent();
                    barrier.wait();
                    let mut response = agent.get(&url).call().map_err(|e| e.to_string())?;
                    let status = response.status().as_u16();
                    let body = response
                        .body_mut()
                        .read_to_string()
                        .map_err(|e| e.to_string())?;
                    Ok::<_, String>((status, body))
                })
                .expect("thread")
        })
        .collect();
    let mut ok = 0;
    let mut errors = Vec::new();
    for t in threads {
        match t.join().expect("scraper") {
            Ok((200, body)) if body.ends_with("# EOF\n") => {
                let scrape = parse_metrics(&body);
                if sample(&scrape, "tracer_build_info", &[]) == 1.0 {
                    ok += 1;
                }
            }
            Ok((status, body)) => errors.push(format!("{status}: {}", &body[..body.len().min(80)])),
            Err(e) => errors.push(e),
        }
    }
    assert_eq!(ok, SCRAPERS, "errors: {:?}", &errors[..errors.len().min(5)]);
}

#[test]
fn sigterm_finishes_requests_and_detaches_within_two_seconds() {
    if !privileged("serve_sigterm") {
        return;
    }
    let mut server = Server::start(&[]);
    // Clients keep asking while the signal arrives: every answer they get is whole.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let base = server.base.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let agent = agent();
                let (mut whole, mut broken) = (0, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match agent.get(format!("{base}/report?window=3m")).call() {
                        Ok(mut r) => {
                            let status = r.status().as_u16();
                            // Whole: a document that matches `tracer schema`.
                            let mismatches = |body: &str| {
                                serde_json::from_str::<serde_json::Value>(body)
                                    .map(|doc| lab::document::mismatches(&doc))
                                    .ok()
                            };
                            match r.body_mut().read_to_string() {
                                Ok(body) if status == 200 => match mismatches(&body) {
                                    Some(errors) if errors.is_empty() => whole += 1,
                                    Some(errors) => broken.push(errors.join("; ")),
                                    None => broken.push(format!("{status} {body}")),
                                },
                                Ok(body) => broken.push(format!("{status} {body}")),
                                Err(e) => broken.push(format!("body cut: {e}")),
                            }
                        }
                        // Refused once the listener closed: not an answer, fine.
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
                (whole, broken)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    // Exactly the server's own programs and links, from its descriptors.
    let (held, held_links) = lab::bpf_held_by(server.pid());
    assert!(
        held.len() >= 5 && held_links.len() >= 5,
        "the server's programs are loaded: {held:?} {held_links:?}"
    );
    let signalled = Instant::now();
    let sent = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "SIGTERM sent");
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(2),
            "still running 2 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = signalled.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(status.code(), Some(0), "a clean stop");
    let (mut whole, mut broken) = (0, Vec::new());
    for c in clients {
        let (w, b) = c.join().expect("client");
        whole += w;
        broken.extend(b);
    }
    assert!(whole > 0, "clients were answered before the signal");
    assert!(broken.is_empty(), "cut or failed answers: {broken:?}");
    eprintln!("stopped {took:?} after SIGTERM with {whole} whole answers");
    // Detached within the two seconds: links go as the descriptors close, program ids once the
    // kernel's deferred free has run (CI once saw all ten ids 30 ms after the exit, links gone).
    let (still, still_links) =
        lab::bpf_left_by(&held, &held_links, signalled + Duration::from_secs(2));
    eprintln!("programs gone {:?} after SIGTERM", signalled.elapsed());
    assert!(
        still.is_empty() && still_links.is_empty(),
        "programs {still:?} and links {still_links:?} outlived the server by 2 s"
    );
}

/// A free port on 127.0.0.1 below the ephemeral range (where listeners usually are; a port from
/// `bind(:0)` is itself ephemeral).
fn free_listening_port(seed: u16) -> u16 {
    (0..2000u16)
        .map(|i| 20_000 + (seed.wrapping_mul(7) + i) % 12_000)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port in 20000..32000")
}

/// Issue 14 item 12: 60 scrapes of the server and 60 connections to an application listener in
/// a lab namespace: the application's clients are one RTT series under its listening port, no
/// series has a scraper's ephemeral port, and the tracer's own port has none at all.
#[test]
fn destinations_are_listeners_and_never_the_tracers_own_port() {
    if !privileged("serve_destinations") {
        return;
    }
    let ns = Netns::new("srvdst");
    let inode = std::fs::metadata(ns.path())
        .expect("netns")
        .ino()
        .to_string();
    let own_port = free_listening_port(std::process::id() as u16);
    let server = Server::start_on(own_port, &["--window", "20s"]);

    // The application: a listener on a non-ephemeral port in the lab, 60 clients of it.
    const APP_PORT: u16 = 8080;
    let clients = ns.run_in(|| {
        let listener = std::net::TcpListener::bind(("127.0.0.1", APP_PORT)).expect("app listen");
        let echo = std::thread::spawn(move || {
            for stream in listener.incoming().take(60) {
                let mut stream = stream.expect("accept");
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        });
        let mut ports = Vec::new();
        for _ in 0..60 {
            let mut c = TcpStream::connect(("127.0.0.1", APP_PORT)).expect("app connect");
            c.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            ports.push(c.local_addr().expect("local").port());
            for _ in 0..5 {
                c.write_all(&[7u8; 2048]).expect("write");
                let mut back = [0u8; 2048];
                c.read_exact(&mut back).expect("echo");
            }
        }
        echo.join().expect("echo thread");
        ports
    });
    // 60 scrapes, each on its own connection.
    let mut scrapers = Vec::new();
    for _ in 0..60 {
        let mut c = TcpStream::connect(("127.0.0.1", own_port)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        scrapers.push(c.local_addr().expect("local").port());
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut body = Vec::new();
        let _ = c.read_to_end(&mut body);
        assert!(body.starts_with(b"HTTP/1.1 200"), "scrape answered");
    }
    std::thread::sleep(Duration::from_millis(2500));

    let (status, text) = server.get("/metrics").expect("metrics");
    assert_eq!(status, 200);
    let scrape = parse_metrics(&text);
    let rtt: Vec<&prometheus_parse::Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "tracer_tcp_rtt_seconds")
        .collect();
    let port_of = |s: &prometheus_parse::Sample| {
        s.labels
            .get("dport")
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(0)
    };
    let lab: Vec<u16> = rtt
        .iter()
        .filter(|s| s.labels.get("netns") == Some(inode.as_str()))
        .map(|s| port_of(s))
        .collect();
    // Exactly one of the lab's series is ours: the listener's (the loop below checks that no
    // client port has one; a series of another test's traffic may show up beside it).
    assert_eq!(
        lab.iter().filter(|p| **p == APP_PORT).count(),
        1,
        "the lab's RTT series: {text}"
    );
    for s in &rtt {
        let port = port_of(s);
        assert_ne!(
            port, own_port,
            "the tracer's own listener has a series: {text}"
        );
        assert!(
            !scrapers.contains(&port) && !clients.contains(&port),
            "a client's ephemeral port {port} has a series: {text}"
        );
    }
}
