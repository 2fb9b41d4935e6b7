//! The command line as a shell sees it (no root needed): completions load in bash, the man page
//! renders, `--version` names the revision, `check --format json` is one JSON document whose
//! `ready` agrees with the exit status.

use std::process::Command;

fn tracer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tracer"))
}

#[test]
fn bash_completions_load_and_complete_subcommands() {
    let script = format!(
        "source <('{}' completions bash) && complete -p tracer && \
         COMP_WORDS=(tracer rep) COMP_CWORD=1 COMP_LINE='tracer rep' COMP_POINT=10 && \
         _tracer tracer rep tracer && printf 'reply:%s\\n' \"${{COMPREPLY[@]}}\"",
        env!("CARGO_BIN_EXE_tracer")
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("-F _tracer tracer"), "{stdout}");
    assert!(stdout.contains("reply:report"), "{stdout}");
}

#[test]
fn zsh_fish_and_man_are_printed() {
    for (args, start) in [
        (&["completions", "zsh"][..], "#compdef tracer"),
        (&["completions", "FISH"][..], "# Print an optspec"),
        (&["man"][..], ".ie \\n(.g .ds Aq"),
    ] {
        let out = tracer().args(args).output().expect("tracer runs");
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with(start),
            "{args:?}: {}",
            &text[..text.len().min(200)]
        );
    }
    let out = tracer()
        .args(["completions", "powershell2"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn version_names_the_git_revision() {
    let out = tracer().arg("--version").output().expect("tracer runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let head = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("tracer 0."), "{text}");
    if let Some(head) = head {
        // The binary may be a commit behind the tree only if it was not rebuilt; cargo test
        // rebuilds it, so it names HEAD.
        assert!(
            first.ends_with(&format!("(git {head})")),
            "{first} vs {head}"
        );
    }
    assert!(text.contains("tracepoint programs"), "{text}");
}

#[test]
fn check_format_json_agrees_with_the_exit_status() {
    let out = tracer()
        .args(["check", "--format", "JSON"])
        .output()
        .expect("tracer runs");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let ready = doc["ready"].as_bool().expect("ready");
    assert_eq!(out.status.code(), Some(if ready { 0 } else { 1 }));
    let lines = doc["lines"].as_array().expect("lines");
    assert!(lines.len() >= 5, "{doc}");
    assert_eq!(lines[0]["item"], "kernel");
    let failing = lines.iter().filter(|l| l["status"] == "fail").count();
    assert_eq!(failing == 0, ready, "{doc}");
    // Without --format, check stays text even when piped.
    let out = tracer().arg("check").output().expect("tracer runs");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok  ") || !ready);
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// `serve --log-format json`: one JSON object per stderr line, levelled, with the event's
/// fields: start, ready (probes attached), stop (the signal), stopped.
#[test]
fn serve_logs_json_events_from_start_to_stop() {
    use std::io::{BufRead as _, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    if !is_root() {
        eprintln!("skipped: serve needs root");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = tracer()
        .args([
            "serve",
            "--listen",
            &format!("localhost:{port}"),
            "--log-format",
            "JSON",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tracer serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut events: Vec<serde_json::Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut signalled = false;
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            continue;
        };
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        if event["event"] == "ready" && !signalled {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            signalled = true;
        }
        let stopped = event["event"] == "stopped";
        events.push(event);
        if stopped {
            break;
        }
    }
    let status = child.wait().expect("tracer serve ends");
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names, ["start", "ready", "stop", "stopped"], "{events:#?}");
    assert!(events.iter().all(|e| e["level"] == "INFO"), "{events:#?}");
    assert_eq!(events[0]["listen"], format!("127.0.0.1:{port}"));
    assert_eq!(events[1]["probes"], 10, "{:#}", events[1]);
    assert_eq!(events[2]["reason"], "terminated");
    assert!(events[3]["stop_ms"].as_f64().is_some(), "{:#}", events[3]);
    assert!(events.iter().all(|e| e["timestamp"].is_string()));
    assert_eq!(status.code(), Some(0));
}
