//! `tracer serve` guarded, end to end with real clients: curl over TLS with and without bearer
//! tokens (rotated while serving, the certificate too), a real Prometheus scraping over TLS with
//! `bearer_token_file`, `tracer cluster` with and without the token, and 200 slow clients
//! against the connection cap while scrapes go on. A throwaway CA and certificates are made by
//! the openssl CLI at test time. Each test skips with a printed reason when not root or when a
//! tool is missing (`cargo xtask setup` installs curl, openssl and prometheus). Run serially.

#![allow(clippy::unwrap_used)]

mod lab;

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

const OLD: &str = "old-token-5f1c9a0e7b3d42c8";
const NEW: &str = "new-token-9e2b7d4a1c6f80b3";

/// Whether the test can run here; says why not.
fn ready_for(test: &str, tools: &[&str]) -> bool {
    if !lab::privileged(test) {
        return false;
    }
    for tool in tools {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("skipped {test}: `{tool}` is not installed (cargo xtask setup installs it)");
            return false;
        }
    }
    true
}

/// A temporary directory with a throwaway CA and a server certificate for 127.0.0.1, removed
/// on drop.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("tracer-auth-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki { dir };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tracer-test-ca",
        ]);
        pki.issue("server", "tracer-test-server");
        pki
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `NAME.pem` and `NAME.key`: a certificate for 127.0.0.1 signed by the CA.
    fn issue(&self, name: &str, cn: &str) {
        self.issue_for(name, cn, "IP:127.0.0.1,DNS:localhost");
    }

    /// [`Pki::issue`] with the subject alternative names `san`.
    fn issue_for(&self, name: &str, cn: &str, san: &str) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let subj = format!("/CN={cn}");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subj,
        ]);
        std::fs::write(self.path("san.ext"), format!("subjectAltName={san}\n")).unwrap();
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Writes a file whole, as a Secret update does (a new file renamed over the old).
    fn replace(&self, name: &str, text: &str) {
        let tmp = self.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.path(name)).unwrap();
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `tracer serve` child with its stderr collected; killed on drop.
struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let port = lab::free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tracer"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--window",
                "5s",
            ])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let server = Server { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.log().contains("ready:") {
            assert!(
                Instant::now() < deadline && server.child_alive(),
                "tracer serve did not get ready:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn child_alive(&self) -> bool {
        std::fs::metadata(format!("/proc/{}", self.child.id())).is_ok()
            && !std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
                .unwrap_or_default()
                .contains(") Z ")
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// Established connections the server process holds (accepted: its own descriptors),
    /// from /proc/PID/fd and /proc/net/tcp; connections waiting in the kernel's backlog are
    /// not held by it.
    fn established(&self) -> usize {
        let pid = self.child.id();
        let inodes: std::collections::BTreeSet<String> =
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    let l = l.display().to_string();
                    l.strip_prefix("socket:[")?
                        .strip_suffix(']')
                        .map(str::to_owned)
                })
                .collect();
        let port = format!("{:04X}", self.port);
        ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .skip(1)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                f.len() > 9
                    && f[1].rsplit(':').next() == Some(port.as_str())
                    && f[3] == "01"
                    && inodes.contains(f[9])
            })
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// curl's status code for `url` (0: no HTTP answer), checking the server against `ca`.
fn curl(url: &str, ca: &Path, headers: &[String]) -> u16 {
    let mut command = Command::new("curl");
    command.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
    ]);
    command.arg("--cacert").arg(ca);
    for h in headers {
        command.args(["-H", h]);
    }
    let out = command.arg(url).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn bearer(token: &str) -> Vec<String> {
    vec![format!("Authorization: Bearer {token}")]
}

/// Polls `check` every 100 ms for at most `within`; how long it took.
fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

#[test]
fn tls_and_a_token_file_close_every_endpoint_but_health_to_curl() {
    if !ready_for("serve_auth_curl", &["curl", "openssl"]) {
        return;
    }
    let pki = Pki::new("curl");
    std::fs::write(pki.path("tokens"), format!("# sidecar tokens\n{OLD}\n")).unwrap();
    let server = Server::start(&[
        "--tls-cert",
        &pki.s("server.pem"),
        "--tls-key",
        &pki.s("server.key"),
        "--auth-token-file",
        &pki.s("tokens"),
        "--mcp",
    ]);
    let ca = pki.path("ca.pem");
    let get = |path: &str, headers: &[String]| curl(&server.url("https", path), &ca, headers);

    for path in [
        "/report",
        "/report?window=3s",
        "/metrics",
        "/mcp",
        "/",
        "/no-such-thing",
    ] {
        assert_eq!(get(path, &[]), 401, "{path} without a token");
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(get(path, &[]), 200, "{path} is open");
    }
    assert_eq!(get("/report", &bearer(OLD)), 200);
    assert_eq!(get("/metrics", &bearer(OLD)), 200);
    // /mcp (mounted by --mcp) is behind the same guard: with the token the request reaches
    // the MCP handler, which wants a POST or an event stream, not a bare GET.
    let mcp = get("/mcp", &bearer(OLD));
    assert!(
        ![200, 401, 404].contains(&mcp),
        "GET /mcp with the token: {mcp}"
    );
    assert_eq!(get("/report", &bearer("wrong-token-0000000000000000")), 401);
    assert_eq!(
        get("/report", &bearer(&OLD[..OLD.len() - 1])),
        401,
        "truncated"
    );
    assert_eq!(get("/report", &bearer(&format!("{OLD}0"))), 401, "longer");
    assert_eq!(
        get("/report", &[format!("Authorization: Basic {OLD}")]),
        401
    );
    assert_eq!(get("/report", &[format!("Authorization: {OLD}")]), 401);
    // Bounded target: a 5 kB query string is refused before anything else.
    let long = format!("/report?window={}", "9".repeat(5000));
    assert_eq!(get(&long, &bearer(OLD)), 414);
    // Plain HTTP to the TLS port gets no HTTP answer.
    assert_eq!(curl(&server.url("http", "/healthz"), &ca, &[]), 0);

    // The token file replaced while serving: the new token works, the old one stops.
    pki.replace("tokens", &format!("{NEW}\n"));
    let took = eventually(Duration::from_secs(5), "the new token accepted", || {
        get("/report", &bearer(NEW)) == 200
    });
    assert_eq!(
        get("/report", &bearer(OLD)),
        401,
        "the old token after rotation"
    );
    assert_eq!(get("/metrics", &bearer(NEW)), 200);
    eprintln!(
        "token rotation: the new token accepted {} ms after the file was replaced",
        took.as_millis()
    );

    // The certificate rotated in place (certificate first, key a moment later): new
    // handshakes get the new one, nothing restarts.
    pki.issue("rotated", "tracer-rotated");
    pki.replace(
        "server.pem",
        &std::fs::read_to_string(pki.path("rotated.pem")).unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    pki.replace(
        "server.key",
        &std::fs::read_to_string(pki.path("rotated.key")).unwrap(),
    );
    eventually(
        Duration::from_secs(5),
        "the rotated certificate served",
        || {
            let out = Command::new("curl")
                .args(["-sv", "-o", "/dev/null", "--cacert"])
                .arg(&ca)
                .arg(server.url("https", "/healthz"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stderr).contains("CN=tracer-rotated")
        },
    );
    assert_eq!(get("/report", &bearer(NEW)), 200);

    let log = server.log();
    eprintln!("{log}");
    for secret in [
        OLD,
        NEW,
        &OLD[..OLD.len() - 1],
        "wrong-token-0000000000000000",
    ] {
        assert!(!log.contains(secret), "a token in the log:\n{log}");
    }
    // Ten refusals from one client, one line.
    assert_eq!(
        log.matches("refused a request from 127.0.0.1").count(),
        1,
        "{log}"
    );
    assert!(log.contains("re-read: 1 token(s)"), "{log}");
    assert!(
        log.contains("TLS files changed but the certificate and key do not make a pair"),
        "{log}"
    );
    assert!(
        log.contains("TLS certificate") && log.contains("re-read; new connections get it"),
        "{log}"
    );
}

#[test]
fn metrics_open_leaves_only_metrics_readable_without_a_token() {
    if !ready_for("serve_auth_metrics_open", &["curl", "openssl"]) {
        return;
    }
    let pki = Pki::new("open");
    std::fs::write(pki.path("tokens"), format!("{OLD}\n")).unwrap();
    let server = Server::start(&[
        "--auth-token-file",
        &pki.s("tokens"),
        "--metrics-open",
        "--header-timeout",
        "2s",
    ]);
    let ca = pki.path("ca.pem");
    let get = |path: &str, headers: &[String]| curl(&server.url("http", path), &ca, headers);
    assert_eq!(get("/metrics", &[]), 200);
    assert_eq!(get("/healthz", &[]), 200);
    for path in ["/report", "/mcp", "/"] {
        assert_eq!(get(path, &[]), 401, "{path}");
    }
    assert_eq!(get("/report", &bearer(OLD)), 200);

    // An idle keep-alive connection is closed after --header-timeout (2 s here).
    let mut tcp = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reply = [0u8; 256];
    let n = tcp.read(&mut reply).unwrap();
    assert!(
        reply[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&reply[..n])
    );
    let idle = Instant::now();
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest);
    let held = idle.elapsed();
    eprintln!(
        "idle keep-alive connection closed by the server after {} ms",
        held.as_millis()
    );
    assert!(
        held >= Duration::from_millis(1500) && held < Duration::from_secs(5),
        "{held:?}"
    );
}

#[test]
fn unusable_token_or_certificate_files_stop_serve_in_one_sentence_before_it_listens() {
    if !ready_for("serve_auth_bad_files", &["openssl"]) {
        return;
    }
    let pki = Pki::new("bad");
    std::fs::write(pki.path("tiny"), "tiny-tok\n").unwrap();
    std::fs::write(pki.path("empty"), "# nothing yet\n").unwrap();
    let serve = |args: &[&str]| {
        let port = lab::free_port().to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_tracer"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };
    let (code, stderr) = serve(&["--auth-token-file", &pki.s("tiny")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("line 1 holds a token shorter than 16 characters"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("tiny-tok"),
        "the token in the error: {stderr}"
    );
    let (code, stderr) = serve(&["--auth-token-file", &pki.s("empty")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("holds no token (one per line)"), "{stderr}");
    let (code, stderr) = serve(&["--auth-token-file", &pki.s("absent")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot read the token file"), "{stderr}");
    // The key where the certificate belongs, and a pair that does not match.
    let (code, stderr) = serve(&[
        "--tls-cert",
        &pki.s("server.key"),
        "--tls-key",
        &pki.s("server.key"),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("holds no CERTIFICATE block"), "{stderr}");
    let (code, stderr) = serve(&[
        "--tls-cert",
        &pki.s("ca.pem"),
        "--tls-key",
        &pki.s("server.key"),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("do not make a pair"), "{stderr}");
    for (code, stderr) in [
        serve(&["--tls-cert", &pki.s("server.pem")]),
        serve(&["--metrics-open"]),
    ] {
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("required"), "{stderr}");
    }
}

/// A Prometheus started on loopback with a temporary config and storage; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_json(url: &str) -> Option<serde_json::Value> {
    let mut response = ureq::get(url).call().ok()?;
    serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()
}

#[test]
fn prometheus_scrapes_over_tls_with_a_bearer_token_file() {
    if !ready_for("serve_auth_prometheus", &["prometheus", "openssl"]) {
        return;
    }
    let pki = Pki::new("prom");
    std::fs::write(pki.path("tokens"), format!("{OLD}\n{NEW}\n")).unwrap();
    std::fs::write(pki.path("prometheus.token"), format!("{NEW}\n")).unwrap();
    let server = Server::start(&[
        "--tls-cert",
        &pki.s("server.pem"),
        "--tls-key",
        &pki.s("server.key"),
        "--auth-token-file",
        &pki.s("tokens"),
    ]);
    let target = format!("127.0.0.1:{}", server.port);
    let (token, ca) = (pki.s("prometheus.token"), pki.s("ca.pem"));
    let config = [
        "global:".to_owned(),
        "  scrape_interval: 1s".to_owned(),
        "  scrape_timeout: 1s".to_owned(),
        "scrape_configs:".to_owned(),
        "  - job_name: tracer".to_owned(),
        "    scheme: https".to_owned(),
        format!("    bearer_token_file: {token}"),
        format!("    tls_config: {{ ca_file: {ca} }}"),
        format!("    static_configs: [{{ targets: ['{target}'] }}]"),
        "  - job_name: tracer-without-token".to_owned(),
        "    scheme: https".to_owned(),
        format!("    tls_config: {{ ca_file: {ca} }}"),
        format!("    static_configs: [{{ targets: ['{target}'] }}]"),
    ]
    .join("\n");
    std::fs::write(pki.path("prometheus.yml"), &config).unwrap();
    let port = lab::free_port();
    let prometheus = Prometheus {
        child: Command::new("prometheus")
            .arg(format!("--config.file={}", pki.s("prometheus.yml")))
            .arg(format!("--storage.tsdb.path={}", pki.s("data")))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(pki.path("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
        port,
    };
    let api = |path: &str| http_json(&format!("http://127.0.0.1:{}{path}", prometheus.port));
    let started = Instant::now();
    let targets = loop {
        let targets = api("/api/v1/targets").unwrap_or_default();
        let health = |job: &str| {
            targets["data"]["activeTargets"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["labels"]["job"] == job)
                .map(|t| {
                    (
                        t["health"].as_str().unwrap_or("").to_owned(),
                        t["lastError"].to_string(),
                    )
                })
        };
        if matches!(health("tracer"), Some((h, _)) if h == "up")
            && matches!(health("tracer-without-token"), Some((h, e)) if h == "down" && e.contains("401"))
        {
            break targets;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "both targets not scraped within 40 s: {targets}\n{}",
            std::fs::read_to_string(pki.path("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = started.elapsed();
    eprintln!(
        "prometheus targets after {} ms: {}",
        took.as_millis(),
        serde_json::to_string(&targets["data"]["activeTargets"]).unwrap()
    );
    let mut value = 0.0;
    eventually(
        Duration::from_secs(10),
        "tracer series in Prometheus",
        || {
            let q = api("/api/v1/query?query=sum(tracer_probe_attached%7Bjob%3D%22tracer%22%7D)");
            value = q
                .and_then(|q| {
                    q["data"]["result"][0]["value"][1]
                        .as_str()
                        .map(str::to_owned)
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            value > 0.0
        },
    );
    eprintln!("prometheus: sum(tracer_probe_attached{{job=\"tracer\"}}) = {value}");
    assert_eq!(value, tracer::kernel::probes::PROBES.len() as f64);
    let none =
        api("/api/v1/query?query=count(up%7Bjob%3D%22tracer-without-token%22%7D%3D%3D1)").unwrap();
    assert_eq!(
        none["data"]["result"],
        serde_json::json!([]),
        "the job without token is never up"
    );
}

fn cluster(args: &[&str], env_token: Option<&str>) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tracer"));
    command
        .args([
            "cluster",
            "--window",
            "5s",
            "--timeout",
            "10s",
            "--format",
            "json",
        ])
        .args(args)
        .env_remove("TRACER_AUTH_TOKEN");
    if let Some(t) = env_token {
        command.env("TRACER_AUTH_TOKEN", t);
    }
    let out = command.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cluster_gets_verdicts_with_the_token_and_a_clear_error_without() {
    if !ready_for("serve_auth_cluster", &["openssl"]) {
        return;
    }
    let pki = Pki::new("cluster");
    std::fs::write(pki.path("tokens"), format!("{OLD}\n")).unwrap();
    std::fs::write(
        pki.path("client.token"),
        format!("# for tracer cluster\n{OLD}\n"),
    )
    .unwrap();
    let server = Server::start(&[
        "--tls-cert",
        &pki.s("server.pem"),
        "--tls-key",
        &pki.s("server.key"),
        "--auth-token-file",
        &pki.s("tokens"),
    ]);
    let endpoint = format!("127.0.0.1:{}", server.port);
    let ca = pki.s("ca.pem");
    let verdict = |(code, stdout, stderr): (Option<i32>, String, String)| {
        let v: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        (code, v)
    };
    // From the token file, with the CA: a verdict, nobody unreachable.
    let (code, v) = verdict(cluster(
        &[
            "--endpoints",
            &endpoint,
            "--ca-cert",
            &ca,
            "--auth-token-file",
            &pki.s("client.token"),
        ],
        None,
    ));
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}: {v}");
    let answered: Vec<_> = [&v["healthy"], &v["degraded"]]
        .into_iter()
        .flat_map(|a| a.as_array().unwrap().clone())
        .collect();
    assert_eq!(answered, [serde_json::json!(endpoint)], "{v}");
    assert_eq!(v["unreachable"], serde_json::json!([]));
    // From the environment, with the scheme given: the same.
    let https = format!("https://{endpoint}");
    let (code, v) = verdict(cluster(
        &["--endpoints", &https, "--ca-cert", &ca],
        Some(OLD),
    ));
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}: {v}");
    assert_eq!(v["unreachable"], serde_json::json!([]));
    // Without a token: exit 2 and a sentence that says what to do.
    let (code, v) = verdict(cluster(&["--endpoints", &endpoint, "--ca-cert", &ca], None));
    assert_eq!(code, Some(2), "{v}");
    assert_eq!(v["no_verdict"], serde_json::json!([endpoint]));
    let error = v["nodes"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(
            "asks for a bearer token; pass --auth-token-file FILE or set TRACER_AUTH_TOKEN"
        ),
        "{v}"
    );
    // A wrong token: told apart.
    let (code, v) = verdict(cluster(
        &["--endpoints", &endpoint, "--ca-cert", &ca],
        Some(NEW),
    ));
    assert_eq!(code, Some(2));
    let error = v["nodes"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("did not accept the token given"), "{v}");
    // Without the CA the certificate is not trusted: unreachable, not a verdict.
    let (code, v) = verdict(cluster(&["--endpoints", &https], Some(OLD)));
    assert_eq!(code, Some(2));
    assert_eq!(v["unreachable"], serde_json::json!([https]), "{v}");
    drop(server);

    // One certificate for every node, naming only the Service: reached at the node's address
    // with --tls-server-name, refused without it.
    pki.issue_for("svc", "tracer.tracer.svc", "DNS:tracer.tracer.svc");
    let server = Server::start(&[
        "--tls-cert",
        &pki.s("svc.pem"),
        "--tls-key",
        &pki.s("svc.key"),
        "--auth-token-file",
        &pki.s("tokens"),
    ]);
    let endpoint = format!("127.0.0.1:{}", server.port);
    let named = [
        "--endpoints",
        &endpoint,
        "--ca-cert",
        &ca,
        "--tls-server-name",
    ];
    let (code, v) = verdict(cluster(
        &[&named[..], &["tracer.tracer.svc"]].concat(),
        Some(OLD),
    ));
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}: {v}");
    assert_eq!(v["unreachable"], serde_json::json!([]), "{v}");
    let (code, v) = verdict(cluster(&named[..4], Some(OLD)));
    assert_eq!(code, Some(2));
    assert_eq!(v["unreachable"], serde_json::json!([endpoint]), "{v}");
    let (code, v) = verdict(cluster(&[&named[..], &["other.name"]].concat(), Some(OLD)));
    assert_eq!(code, Some(2));
    assert_eq!(v["unreachable"], serde_json::json!([endpoint]), "{v}");
}

/// A client holding half a request: a finished TLS handshake and part of a request header, or
/// only the first bytes of a TLS ClientHello.
enum Slow {
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Raw(TcpStream),
}

impl Slow {
    fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Slow::Tls(s) => s.get_mut(),
            Slow::Raw(s) => s,
        }
    }

    /// Whether the server has closed it (EOF or reset), without blocking long; whatever the
    /// server sent before (a TLS session ticket) is read past.
    fn closed_by_server(&mut self) -> bool {
        let tcp = self.tcp();
        tcp.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let mut bytes = [0u8; 4096];
        for _ in 0..100 {
            match tcp.read(&mut bytes) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => {
                    return !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                }
            }
        }
        false
    }
}

fn tls_client(ca: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::{pem::PemObject as _, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

#[test]
fn two_hundred_slow_clients_hold_at_most_the_cap_and_scrapes_are_answered() {
    if !ready_for("serve_auth_slow_clients", &["curl", "openssl"]) {
        return;
    }
    // Beyond the cap, a newcomer displaces the oldest half request once it is
    // tracer::modes::listener::MIN_AGE old; the rest wait in the kernel's backlog.
    const CAP: usize = 32;
    const SLOW: usize = 200;
    const HEADER_TIMEOUT_S: u64 = 15;
    let pki = Pki::new("slow");
    std::fs::write(pki.path("tokens"), format!("{OLD}\n")).unwrap();
    let server = Server::start(&[
        "--tls-cert",
        &pki.s("server.pem"),
        "--tls-key",
        &pki.s("server.key"),
        "--auth-token-file",
        &pki.s("tokens"),
        "--max-connections",
        &CAP.to_string(),
        "--header-timeout",
        &format!("{HEADER_TIMEOUT_S}s"),
    ]);
    let ca = pki.path("ca.pem");
    let config = tls_client(&ca);
    let opened = Instant::now();
    let mut slow: Vec<Slow> = (0..SLOW)
        .map(|i| {
            let mut tcp = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            tcp.set_write_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            if i % 2 == 1 {
                // A TLS record header announcing a ClientHello, and nothing after it.
                tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                    .unwrap();
                return Slow::Raw(tcp);
            }
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthoriz")
                .unwrap();
            tls.flush().unwrap();
            Slow::Tls(Box::new(tls))
        })
        .collect();
    let setup = opened.elapsed();
    // The last ones (half a ClientHello) may still wait in the backlog for an old enough slot.
    std::thread::sleep(Duration::from_millis(1500));
    let held_before = server.established();

    // Scrapes meanwhile: every one answered, none slow.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let code = curl(&server.url("https", "/metrics"), &ca, &bearer(OLD));
        slowest = slowest.max(t.elapsed());
        assert_eq!(
            code, 200,
            "a scrape while {SLOW} slow clients hold half requests"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let held_after = server.established();
    let closed = slow
        .iter_mut()
        .map(Slow::closed_by_server)
        .filter(|c| *c)
        .count();
    eprintln!(
        "slow clients: {SLOW} opened in {} ms; the server holds {held_before} connections \
         (cap {CAP}), {held_after} after 20 scrapes; {closed} of {SLOW} closed by the server; \
         20/20 scrapes answered 200, slowest {} ms",
        setup.as_millis(),
        slowest.as_millis()
    );
    assert!(
        held_before <= CAP,
        "{held_before} connections held, cap {CAP}"
    );
    assert!(
        held_after <= CAP,
        "{held_after} connections held, cap {CAP}"
    );
    assert!(closed >= SLOW - CAP, "{closed} closed");
    assert!(
        slowest < Duration::from_secs(3),
        "slowest scrape {slowest:?}"
    );

    // Nothing is held forever: the header timeout closes the rest.
    let last_opened = opened + setup;
    let deadline = Duration::from_secs(HEADER_TIMEOUT_S + 5);
    eventually(
        deadline.saturating_sub(last_opened.elapsed()),
        "every slow client closed",
        || slow.iter_mut().all(Slow::closed_by_server),
    );
    eprintln!(
        "slow clients: all {SLOW} closed by the server {} ms after the last was opened \
         (--header-timeout {HEADER_TIMEOUT_S}s)",
        last_opened.elapsed().as_millis()
    );
    assert_eq!(server.established(), 0);
    assert!(
        server
            .log()
            .contains("connections open (--max-connections)"),
        "{}",
        server.log()
    );
}
