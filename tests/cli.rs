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
