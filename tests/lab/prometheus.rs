//! A real Prometheus (Debian's `prometheus` package) on loopback for tests: a generated config
//! (1 s scrape and evaluation intervals, static targets, optional rule files) and its storage
//! in a temporary directory; killed and the directory removed on drop. Plus its HTTP API.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A running Prometheus.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `prometheus` is installed; says why not.
pub fn installed(test: &str) -> bool {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped {test}: `prometheus` is not installed (cargo xtask setup installs it)");
        return false;
    }
    true
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (HOST:PORT, job `tracer`, plain HTTP) every second,
    /// evaluating `rule_files` every second; returns once its API answers (at most 30 s).
    pub fn start(tag: &str, targets: &[&str], rule_files: &[&Path]) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("tracer-prom-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let quoted: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let rules: Vec<String> = rule_files
            .iter()
            .map(|r| format!("'{}'", r.display()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files: [{}]\n\
             scrape_configs:\n  - job_name: tracer\n    static_configs: [{{ targets: [{}] }}]\n",
            rules.join(", "),
            quoted.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("config");
        let port = super::free_port();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log"))
            .spawn()
            .expect("starting prometheus");
        let prometheus = Prometheus { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while prometheus.get("/-/ready").is_none() {
            assert!(
                Instant::now() < deadline,
                "prometheus did not start within 30 s: {}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        prometheus
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Option<String> {
        let mut response = ureq::get(&format!("{}{path}", self.url())).call().ok()?;
        response.body_mut().read_to_string().ok()
    }

    /// GET `path` (with its query) as JSON.
    pub fn api(&self, path: &str) -> Option<serde_json::Value> {
        serde_json::from_str(&self.get(path)?).ok()
    }

    /// An instant query's whole answer (`status`, `data`, `error`), whatever the status code.
    pub fn query(&self, expr: &str) -> serde_json::Value {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let body = agent
            .get(&format!("{}/api/v1/query", self.url()))
            .query("query", expr)
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .unwrap_or_default();
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }

    /// Waits until every target of job `tracer` is up (at most `limit`).
    pub fn wait_targets_up(&self, count: usize, limit: Duration) {
        let started = Instant::now();
        loop {
            let targets = self.api("/api/v1/targets").unwrap_or_default();
            let up = targets["data"]["activeTargets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["health"] == "up")
                .count();
            if up == count {
                eprintln!(
                    "prometheus: {count} targets up after {} ms",
                    started.elapsed().as_millis()
                );
                return;
            }
            assert!(
                started.elapsed() < limit,
                "{up} of {count} targets up after {limit:?}: {targets}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The alerts in state `firing` (name, labels).
    pub fn firing(&self) -> Vec<(String, serde_json::Value)> {
        let alerts = self.api("/api/v1/alerts").unwrap_or_default();
        alerts["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == "firing")
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                    a["labels"].clone(),
                )
            })
            .collect()
    }
}
