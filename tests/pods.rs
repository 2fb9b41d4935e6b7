//! Pod attribution live: a network namespace and a cgroup posing as a pod. A process sleeps in
//! a namespace the test creates, is moved into `…/kubepods/besteffort/pod<UID>/<CONTAINER>` of
//! the cgroup v1 `pids` hierarchy, and a temporary `/var/log/pods` names it
//! `NAMESPACE_NAME_UID` (`TRACER_VAR_LOG_PODS`). Then the pod index, the real `tracer report
//! --pod` and `tracer record --pod` + replay must attribute exactly the drops sent inside it.
//! Skips with a printed reason when not root or without a cgroup v1 `pids` hierarchy. Every
//! namespace, process, cgroup and directory is removed on drop. Run serially.

mod lab;

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use lab::{privileged, send_udp, Netns};
use tracer::node::pods::{netns_inode, PodIndex, PodRoots, ENV_VAR_LOG_PODS};

/// The cgroup v1 hierarchy the pod's cgroup is made in.
const PIDS_HIERARCHY: &str = "/sys/fs/cgroup/pids";

/// A directory tree the test made; removed (deepest first) on drop, only what it created.
struct CreatedDirs {
    dirs: Vec<PathBuf>,
    /// cgroup directories are removed with rmdir (they refuse recursive removal).
    cgroup: bool,
}

impl CreatedDirs {
    fn create(path: &Path, cgroup: bool) -> CreatedDirs {
        let mut missing = Vec::new();
        let mut p = path.to_path_buf();
        while !p.exists() {
            missing.push(p.clone());
            if !p.pop() {
                break;
            }
        }
        missing.reverse();
        for dir in &missing {
            std::fs::create_dir(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        }
        CreatedDirs {
            dirs: missing,
            cgroup,
        }
    }
}

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        for dir in self.dirs.iter().rev() {
            if self.cgroup {
                // A cgroup is busy until its last process is reaped: retry for up to 2 s.
                let deadline = Instant::now() + Duration::from_secs(2);
                while std::fs::remove_dir(dir).is_err() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            } else {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// A process that sleeps inside a namespace; killed and reaped on drop.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Everything that makes the namespace look like a pod. Field order is drop order: the
/// process dies before its cgroup is removed, the namespace goes last.
struct PosingPod {
    sleeper: Sleeper,
    _cgroup: CreatedDirs,
    _logs: CreatedDirs,
    ns: Netns,
    var_log_pods: PathBuf,
    namespace: String,
    name: String,
    uid: String,
    container: String,
}

impl PosingPod {
    fn spec(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn inode(&self) -> u32 {
        netns_inode(&self.ns.path()).expect("the namespace's inode")
    }

    fn pid(&self) -> u32 {
        self.sleeper.0.id()
    }
}

fn pose_as_pod(tag: &str) -> PosingPod {
    let ns = Netns::new(tag);
    let inode = netns_inode(&ns.path()).expect("the namespace's inode");
    let sleeper = Sleeper(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "sleep", "120"])
            .stdin(Stdio::null())
            .spawn()
            .expect("starting sleep in the namespace"),
    );
    let pid = sleeper.0.id();
    // `ip netns exec` enters the namespace, then becomes `sleep` (same PID).
    let deadline = Instant::now() + Duration::from_secs(5);
    while netns_inode(Path::new(&format!("/proc/{pid}/ns/net"))) != Some(inode) {
        assert!(
            Instant::now() < deadline,
            "the sleeper never entered the namespace"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let unique = u64::from(std::process::id()) << 16 | u64::from(inode & 0xffff);
    let uid = format!(
        "{:08x}-7e57-4{:03x}-8{:03x}-{:012x}",
        std::process::id(),
        inode & 0xfff,
        (inode >> 12) & 0xfff,
        unique
    );
    let container = format!("{unique:016x}").repeat(4);
    // Below a root of this test's own (as kind or `--cgroup-root` nest kubepods), so no test
    // shares a cgroup directory with another, nor with a real kubelet's.
    let cgroup_dir = Path::new(PIDS_HIERARCHY)
        .join(format!("trc-{tag}-{}", std::process::id()))
        .join("kubepods/besteffort")
        .join(format!("pod{uid}"))
        .join(&container);
    let cgroup = CreatedDirs::create(&cgroup_dir, true);
    std::fs::write(cgroup_dir.join("cgroup.procs"), pid.to_string())
        .expect("moving the sleeper into the pod's cgroup");
    let var_log_pods = std::env::temp_dir().join(format!("trc-var-log-pods-{tag}-{inode}"));
    let namespace = format!("trc-{tag}");
    let name = format!("posing-{}", std::process::id());
    let logs = CreatedDirs::create(
        &var_log_pods
            .join(format!("{namespace}_{name}_{uid}"))
            .join("app"),
        false,
    );
    PosingPod {
        sleeper,
        _cgroup: cgroup,
        _logs: logs,
        ns,
        var_log_pods,
        namespace,
        name,
        uid,
        container,
    }
}

fn can_pose(test: &str) -> bool {
    if !privileged(test) {
        return false;
    }
    if !Path::new(PIDS_HIERARCHY).join("cgroup.procs").exists() {
        eprintln!("skipped {test}: no cgroup v1 pids hierarchy at {PIDS_HIERARCHY}");
        return false;
    }
    true
}

/// Starts the tracer binary with the posing pod's `/var/log/pods`; returns once every probe is
/// attached (its first progress line).
fn start_tracer(pod: &PosingPod, args: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracer"))
        .args(args)
        .env(ENV_VAR_LOG_PODS, &pod.var_log_pods)
        .stdout(Stdio::piped())
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

/// (inode, pod, count) of every namespace with NO_SOCKET drops.
fn no_socket_by_netns(doc: &serde_json::Value) -> Vec<(u64, Option<String>, u64)> {
    doc["observations"]["drops"]["by_reason"]
        .as_array()
        .expect("by_reason")
        .iter()
        .filter(|r| r["reason"] == "NO_SOCKET")
        .flat_map(|r| r["netns"].as_array().expect("netns").iter())
        .map(|n| {
            (
                n["inode"].as_u64().expect("inode"),
                n["pod"].as_str().map(str::to_owned),
                n["count"].as_u64().expect("count"),
            )
        })
        .collect()
}

#[test]
fn a_namespace_and_cgroup_posing_as_a_pod_are_indexed_as_that_pod() {
    if !can_pose("posing_pod_index") {
        return;
    }
    let pod = pose_as_pod("podidx");
    let roots = PodRoots {
        proc: PathBuf::from("/proc"),
        var_log_pods: pod.var_log_pods.clone(),
        kubelet_pods: PathBuf::from("/nonexistent/kubelet/pods"),
    };
    let (index, errors) = PodIndex::scan(&roots);
    assert!(errors.is_empty(), "{errors:?}");
    let found: Vec<_> = index.pods.iter().filter(|p| p.uid == pod.uid).collect();
    assert_eq!(found.len(), 1, "{:?}", index.pods);
    let p = found[0];
    assert_eq!(p.namespace.as_deref(), Some(pod.namespace.as_str()));
    assert_eq!(p.name.as_deref(), Some(pod.name.as_str()));
    assert_eq!(p.netns, Some(pod.inode()));
    assert!(!p.host_network);
    assert_eq!(p.containers, vec![pod.container.clone()]);
    assert_eq!(p.pid, pod.pid());
    assert_eq!(index.label_of(pod.inode()), Some(pod.spec()));
    // The test runs in the host's namespace (PID 1's may be hidden from it in a sandbox).
    let host = netns_inode(Path::new("/proc/self/ns/net")).expect("host namespace");
    assert_eq!(index.label_of(host), None, "the host namespace is no pod's");
    let (path, inode, _) = index.resolve(&pod.spec(), &roots.proc).expect("resolve");
    assert_eq!(inode, pod.inode());
    assert_eq!(netns_inode(&path), Some(pod.inode()));
}

#[test]
fn report_with_pod_counts_exactly_the_drops_sent_inside_it() {
    if !can_pose("report_with_pod") {
        return;
    }
    let pod = pose_as_pod("podrep");
    let other = Netns::new("podnoise");
    let spec = pod.spec();
    let child = start_tracer(
        &pod,
        &[
            "report",
            "--duration",
            "3s",
            "--format",
            "json",
            "--pod",
            &spec,
        ],
    );
    const N: u32 = 257;
    const NOISE: u32 = 100;
    let closed: std::net::SocketAddr = "127.0.0.1:9".parse().expect("addr");
    send_udp(&pod.ns, closed, N);
    send_udp(&other, closed, NOISE);
    let out = child.wait_with_output().expect("tracer output");
    assert_eq!(out.status.code(), Some(0), "healthy: exit 0");
    let doc = lab::document::parse(&out.stdout);
    let window = &doc["observations"]["window"]["netns"];
    assert_eq!(window["pod"], spec.as_str());
    assert_eq!(window["inode"].as_u64(), Some(u64::from(pod.inode())));
    assert_eq!(
        no_socket_by_netns(&doc),
        vec![(u64::from(pod.inode()), Some(spec.clone()), u64::from(N))],
        "only the pod's namespace, named, with every datagram sent in it"
    );
}

#[test]
fn record_with_pod_then_replay_names_the_pod_without_the_node() {
    if !can_pose("record_with_pod") {
        return;
    }
    let pod = pose_as_pod("podrec");
    let other = Netns::new("podrecnoise");
    let spec = pod.spec();
    let file = std::env::temp_dir().join(format!("trc-pod-recording-{}.json", std::process::id()));
    let file_arg = file.display().to_string();
    let child = start_tracer(
        &pod,
        &[
            "record",
            "--duration",
            "3s",
            "--pod",
            &spec,
            "-o",
            &file_arg,
        ],
    );
    const N: u32 = 123;
    let closed: std::net::SocketAddr = "127.0.0.1:9".parse().expect("addr");
    send_udp(&pod.ns, closed, N);
    send_udp(&other, closed, 77);
    let out = child.wait_with_output().expect("tracer output");
    assert_eq!(out.status.code(), Some(0));
    // The replay reads the pod from the recording's facts, not from this node.
    drop(pod);
    let replay = |extra: &[&str]| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_tracer"))
            .args(["report", "--format", "json", "--replay", &file_arg])
            .args(extra)
            .env(ENV_VAR_LOG_PODS, "/nonexistent")
            .output()
            .expect("replay");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab::document::parse(&out.stdout)
    };
    let doc = replay(&[]);
    let drops = no_socket_by_netns(&doc);
    assert_eq!(drops.len(), 1, "{drops:?}");
    assert_eq!(drops[0].1.as_deref(), Some(spec.as_str()));
    assert_eq!(drops[0].2, u64::from(N));
    let doc = replay(&["--pod", &spec]);
    assert_eq!(doc["observations"]["window"]["netns"]["pod"], spec.as_str());
    assert_eq!(no_socket_by_netns(&doc), drops);
    let _ = std::fs::remove_file(&file);
}

#[test]
fn an_unknown_pod_gets_one_sentence_naming_the_pods_there() {
    if !can_pose("unknown_pod") {
        return;
    }
    let pod = pose_as_pod("podmiss");
    for mode in ["report", "top", "record"] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracer"));
        cmd.args([mode, "--pod", "nowhere/nothing"]);
        if mode == "record" {
            cmd.args(["-o", "/dev/null"]);
        }
        let out = cmd
            .env(ENV_VAR_LOG_PODS, &pod.var_log_pods)
            .stdin(Stdio::null())
            .output()
            .expect("tracer");
        assert_eq!(out.status.code(), Some(2), "{mode}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{mode}: {stderr}");
        assert!(
            stderr.contains("--pod nowhere/nothing: no such pod runs on this node")
                && stderr.contains(&pod.spec()),
            "{mode}: {stderr}"
        );
    }
    // --pod and --netns together are refused by the parser.
    let out = Command::new(env!("CARGO_BIN_EXE_tracer"))
        .args(["report", "--pod", "a/b", "--netns", "/run/netns/x"])
        .output()
        .expect("tracer");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

/// `tracer serve --pod`: the metrics carry the pod's namespace and name, and count exactly the
/// drops sent inside it (none of another namespace's).
#[test]
fn serve_with_pod_labels_the_metrics_with_the_pod() {
    if !can_pose("serve_with_pod") {
        return;
    }
    let pod = pose_as_pod("podsrv");
    let other = Netns::new("podsrvnoise");
    let spec = pod.spec();
    let (mut child, listen) = lab::spawn_serve(
        &["--pod", &spec],
        &[(ENV_VAR_LOG_PODS, pod.var_log_pods.as_path())],
    );
    const N: u32 = 211;
    let closed: std::net::SocketAddr = "127.0.0.1:9".parse().expect("addr");
    send_udp(&pod.ns, closed, N);
    send_udp(&other, closed, 50);
    std::thread::sleep(Duration::from_millis(2500));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let text = agent
        .get(format!("http://{listen}/metrics"))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("body");
    let _ = child.kill();
    let _ = child.wait();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the exposition parses");
    let no_socket: Vec<(String, String, f64)> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "tracer_drops_total" && s.labels.get("reason") == Some("NO_SOCKET"))
        .map(|s| {
            // prometheus-parse reads OpenMetrics counters (`# TYPE tracer_drops counter`,
            // samples `tracer_drops_total`) as untyped.
            let v = match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            };
            (
                s.labels.get("namespace").unwrap_or("").to_owned(),
                s.labels.get("pod").unwrap_or("").to_owned(),
                v,
            )
        })
        .collect();
    assert_eq!(
        no_socket,
        vec![(pod.namespace.clone(), pod.name.clone(), f64::from(N))],
        "one series, the pod's, with every datagram sent inside it"
    );
}
