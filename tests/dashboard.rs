//! The dashboard and recordings end to end, with the real binary: a recorded window replays to
//! the same verdict without root, and `tracer top` in tmux shows the right verdict while a real
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
    assert_eq!(status.code(), Some(1), "degradation found while recording");

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
