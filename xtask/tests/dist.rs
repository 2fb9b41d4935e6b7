//! `cargo xtask dist`: the static binary runs `report` on this machine with no shared library,
//! its checksum verifies, and the tarball holds what installing needs. Builds the musl binary
//! (a few minutes the first time, incremental after).

use std::path::PathBuf;
use std::process::Command;

fn target_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
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

#[test]
fn dist_makes_a_static_binary_that_runs_report() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["dist", "--no-setup"])
        .output()
        .expect("xtask runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo xtask dist failed:\n{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "stdout stays empty"
    );

    let name = format!(
        "tracer-{}-{}-linux-musl",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    );
    let dist = target_dir().join("dist");
    let stage = dist.join(&name);
    let binary = stage.join("tracer");

    // No shared library: glibc's ldd says so in one of two ways depending on static-pie.
    let ldd = Command::new("ldd").arg(&binary).output().expect("ldd runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&ldd.stdout),
        String::from_utf8_lossy(&ldd.stderr)
    );
    assert!(
        said.contains("not a dynamic executable") || said.contains("statically linked"),
        "ldd: {said}"
    );
    let file = Command::new("file").arg(&binary).output();
    if let Ok(file) = file {
        let text = String::from_utf8_lossy(&file.stdout);
        assert!(!text.contains("interpreter"), "{text}");
    }

    let check = Command::new("sha256sum")
        .args(["--check", "tracer.sha256"])
        .current_dir(&stage)
        .output()
        .expect("sha256sum runs");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let check = Command::new("sha256sum")
        .args(["--check", &format!("{name}.tar.gz.sha256")])
        .current_dir(&dist)
        .output()
        .expect("sha256sum runs");
    assert!(check.status.success());

    let list = Command::new("tar")
        .arg("-tzf")
        .arg(dist.join(format!("{name}.tar.gz")))
        .output()
        .expect("tar runs");
    let list = String::from_utf8_lossy(&list.stdout);
    for file in [
        "tracer",
        "tracer.sha256",
        "README.md",
        "deploy/daemonset.yaml",
        "deploy/README.md",
        "completions/tracer.bash",
        "completions/_tracer",
        "completions/tracer.fish",
        "man/tracer.1",
    ] {
        assert!(
            list.lines().any(|l| l == format!("{name}/{file}")),
            "{file} not in the tarball:\n{list}"
        );
    }

    let size = std::fs::metadata(&binary).expect("binary").len();
    eprintln!("static tracer: {size} bytes");
    assert!(size < 64 << 20, "{size} bytes");

    let version = Command::new(&binary)
        .arg("--version")
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("tracer "));
    if !is_root() {
        eprintln!("skipped the live report: needs root");
        return;
    }
    let report = Command::new(&binary)
        .args(["report", "--duration", "1s", "--format", "json"])
        .output()
        .expect("the static binary runs");
    let code = report.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "exit {code:?}: {}",
        String::from_utf8_lossy(&report.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&report.stdout).expect("JSON document");
    assert!(doc["root_cause"].is_string(), "{doc}");
    assert_eq!(
        doc["observations"]["probes"]
            .as_array()
            .map(|p| p.iter().filter(|p| p["state"] == "attached").count()),
        Some(10),
        "every probe attached from the embedded object: {doc}"
    );
}
