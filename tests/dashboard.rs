//! The dashboard and recordings end to end, with the real binary: a recorded window replays to
//! the same verdict without root; a recording is written whole or not at all (never an empty
//! file after SIGKILL, an existing file untouched unless `--force`), `-o -` is stdout; and `tracer top` in tmux shows the right verdict while a real
//! fault runs, then `q` restores the terminal. Privileged; run with `--test-threads=1`.

mod lab;

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    os::unix::process::CommandExt as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use lab::{privileged, udp_stream, Netns};

const TRACER: &str = env!("CARGO_BIN_EXE_tracer");

fn drop_rule(ns: &Netns, port: u16) {
    ns.nft(&format!(
        "table inet trcdash {{\n\
           chain input {{\n\
             type filter hook input priority 0; policy accept;\n\
             udp dport {port} counter drop\n\
           }}\n\
         }}\n"
    ));
}

#[test]
fn a_replayed_recording_gives_the_live_verdict_without_root() {
    if !privileged("replay_equals_live") {
        return;
    }
    let ns = Netns::new("rec");
    drop_rule(&ns, 7777);
    let file = std::env::temp_dir().join(format!("trc-rec-{}.json", std::process::id()));
    let mut child = Command::new(TRACER)
        .args(["record", "--duration", "4s", "-o"])
        .arg(&file)
        .arg("--netns")
        .arg(ns.path())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting tracer record");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().expect("progress").expect("utf-8");
    assert!(first.contains("probes attached"), "{first}");
    let to: SocketAddr = "127.0.0.1:7777".parse().expect("addr");
    udp_stream(&ns.path(), to, Duration::from_secs(2), 100, 64, false)
        .join()
        .expect("sender");
    let status = child.wait().expect("tracer record");
    // The recording was written: 0, whatever the verdict (`record && upload` must upload it).
    assert_eq!(status.code(), Some(0), "recording written");

    // Replay as nobody: no root needed. The file must be readable by them.
    let text = std::fs::read_to_string(&file).expect("recording");
    let live: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&text).expect("json")["live_verdict"].clone();
    // The document the recording run printed, as the recording keeps it.
    lab::document::check(&live);
    let public = std::env::temp_dir().join(format!("trc-rec-pub-{}.json", std::process::id()));
    std::fs::write(&public, &text).expect("copy");
    let out = Command::new(TRACER)
        .args(["report", "--format", "json", "--replay"])
        .arg(&public)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("replay");
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&public);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed = lab::document::parse(&out.stdout);
    assert_eq!(live["root_cause"], "security_rule_drops");
    for key in [
        "root_cause",
        "failure_layer",
        "evidence",
        "severity",
        "mitigation",
        "cross_reference",
        "escalation",
        "confidence",
        "layer_scores",
        "timeline",
    ] {
        assert_eq!(
            replayed[key], live[key],
            "{key} differs between live and replay"
        );
    }
    assert_eq!(
        replayed["observations"]["drops"],
        live["observations"]["drops"]
    );
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills the tmux server of this test on drop.
struct TmuxServer(String);

impl Drop for TmuxServer {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

#[test]
fn top_in_tmux_shows_the_verdict_of_a_live_fault_and_q_restores_the_terminal() {
    if !privileged("top_in_tmux") {
        return;
    }
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped top_in_tmux: tmux is not installed (cargo xtask setup installs it)");
        return;
    }
    let ns = Netns::new("top");
    drop_rule(&ns, 7777);
    let socket = format!("trc-{}", std::process::id());
    let server = TmuxServer(socket.clone());
    let command = format!(
        "{TRACER} top --window 10s --netns {}; echo TRACER-EXITED-$?; sleep 30",
        ns.path().display()
    );
    tmux(&[
        "-L",
        &server.0,
        "new-session",
        "-d",
        "-x",
        "100",
        "-y",
        "30",
        "sh",
        "-c",
        &command,
    ]);
    let to: SocketAddr = "127.0.0.1:7777".parse().expect("addr");
    let sender = udp_stream(&ns.path(), to, Duration::from_secs(12), 100, 64, false);
    let started = Instant::now();
    let mut screen = String::new();
    while started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(500));
        screen = tmux(&["-L", &socket, "capture-pane", "-p"]);
        if screen.contains("security_rule_drops") && screen.contains("NETFILTER_DROP") {
            break;
        }
    }
    assert!(
        screen.contains("security_rule_drops") && screen.contains("iptables_netpolicy"),
        "verdict on screen:\n{screen}"
    );
    assert!(screen.contains("NETFILTER_DROP"), "drops pane:\n{screen}");
    assert_eq!(
        tmux(&["-L", &socket, "display-message", "-p", "#{alternate_on}"]).trim(),
        "1",
        "the dashboard runs on the alternate screen"
    );
    tmux(&["-L", &socket, "send-keys", "q"]);
    let quit = Instant::now();
    let mut after = String::new();
    while quit.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(200));
        after = tmux(&["-L", &socket, "capture-pane", "-p"]);
        if after.contains("TRACER-EXITED-") {
            break;
        }
    }
    assert!(
        after.contains("TRACER-EXITED-0"),
        "tracer quit cleanly:\n{after}"
    );
    assert_eq!(
        tmux(&["-L", &socket, "display-message", "-p", "#{alternate_on}"]).trim(),
        "0",
        "terminal restored: alternate screen left"
    );
    sender.join().expect("sender");
    drop(server);
}

/// A fresh directory of its own; removed by the test.
fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("trc-rec-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Starts `tracer record ARGS`, waits until its probes are attached and a frame or two is
/// taken, then SIGKILLs it (an OOM kill, a `kill -9`).
fn record_then_kill(args: &[&str]) {
    let mut child = Command::new(TRACER)
        .arg("record")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tracer record");
    let stderr = child.stderr.take().expect("stderr");
    let first = BufReader::new(stderr)
        .lines()
        .next()
        .expect("a line")
        .expect("utf-8");
    assert!(first.contains("probes attached"), "{first}");
    std::thread::sleep(Duration::from_millis(2500));
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), None, "killed");
}

#[test]
fn a_recording_is_whole_or_absent_and_an_existing_file_is_never_emptied() {
    if !privileged("record_whole_or_absent") {
        return;
    }
    let dir = scratch_dir("whole");
    let previous = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/reports/healthy.rec.json"),
    )
    .expect("fixture");
    let new = dir.join("new.json");
    let existing = dir.join("ev.json");
    let new_arg = new.to_str().expect("path");
    let existing_arg = existing.to_str().expect("path");

    // Killed mid-window: no file at all (not an empty one), nothing left beside it.
    record_then_kill(&["--duration", "30s", "-o", new_arg]);
    assert_eq!(entries(&dir), Vec::<String>::new(), "after SIGKILL");

    // Killed mid-window while replacing (--force) a complete recording: that one stays whole.
    std::fs::write(&existing, &previous).expect("previous recording");
    record_then_kill(&["--force", "--duration", "30s", "-o", existing_arg]);
    assert_eq!(entries(&dir), ["ev.json"], "after SIGKILL with --force");
    assert!(
        std::fs::read_to_string(&existing).expect("read") == previous,
        "the previous recording changed"
    );

    // An existing file without --force: one sentence, exit 2, untouched, before any watching.
    let started = Instant::now();
    let out = Command::new(TRACER)
        .args(["record", "--duration", "30s", "-o", existing_arg])
        .output()
        .expect("record");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("already exists; pass --force"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused at once"
    );
    assert!(std::fs::read_to_string(&existing).expect("read") == previous);

    // Refused runs with --force (not root; a bad --netns): the file stays as it was.
    let nobody = nix::unistd::Uid::from_raw(65534);
    let nogroup = nix::unistd::Gid::from_raw(65534);
    for path in [&dir, &existing] {
        nix::unistd::chown(path.as_path(), Some(nobody), Some(nogroup)).expect("chown");
    }
    let out = Command::new(TRACER)
        .args(["record", "--force", "--duration", "1s", "-o", existing_arg])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("record as nobody");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(TRACER)
        .args([
            "record",
            "--force",
            "--netns",
            "/nonexistent",
            "-o",
            existing_arg,
        ])
        .output()
        .expect("record with a bad --netns");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(entries(&dir), ["ev.json"], "after the refused runs");
    assert!(
        std::fs::read_to_string(&existing).expect("read") == previous,
        "a refused run changed the existing recording"
    );

    // A finished --force run replaces it with a whole new recording.
    let out = Command::new(TRACER)
        .args(["record", "--force", "--duration", "2s", "-o", existing_arg])
        .output()
        .expect("record");
    assert_eq!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(&existing).expect("read");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(text != previous, "replaced");
    let v: serde_json::Value = serde_json::from_str(&text).expect("a whole recording");
    assert_eq!(v["format"], "tracer-recording");
}

#[test]
fn record_to_dash_writes_the_recording_on_stdout() {
    if !privileged("record_to_stdout") {
        return;
    }
    let dir = scratch_dir("stdout");
    let out = Command::new(TRACER)
        .args(["record", "--duration", "2s", "-o", "-"])
        .current_dir(&dir)
        .output()
        .expect("record");
    let files = entries(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(files, Vec::<String>::new(), "no file named -");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("recording on stdout");
    assert_eq!(v["format"], "tracer-recording");
    assert!(v["frames"].as_array().expect("frames").len() >= 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("frames to stdout"), "{err}");
}
