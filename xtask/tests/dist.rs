//! `cargo xtask dist`: the static binaries (x86_64 and aarch64) need no shared library, their
//! checksums verify, and the tarballs hold what installing needs; the host's binary runs
//! `report` on this machine, the aarch64 one `--version` under qemu-user. Builds both musl
//! binaries (several minutes the first time, incremental after).

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

/// Checks the packed binary of `arch` (no shared library, checksums, tarball) and returns it.
fn packed(arch: &str) -> PathBuf {
    let name = format!("tracer-{}-{arch}-linux-musl", env!("CARGO_PKG_VERSION"));
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
        "deploy/alerts/prometheusrule.yaml",
        "deploy/alerts/tracer-rules.yaml",
        "deploy/grafana/tracer-dashboard.json",
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

    binary
}

#[test]
fn dist_makes_a_static_binary_that_runs_report() {
    let started = std::time::Instant::now();
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
    eprintln!(
        "cargo xtask dist (both architectures): {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let host = std::env::consts::ARCH;
    let binary = packed(host);
    let foreign = if host == "x86_64" {
        "aarch64"
    } else {
        "x86_64"
    };
    let other = packed(foreign);
    let file = Command::new("file")
        .arg(&other)
        .output()
        .expect("file runs");
    let said = String::from_utf8_lossy(&file.stdout);
    let machine = if foreign == "aarch64" {
        "ARM aarch64"
    } else {
        "x86-64"
    };
    assert!(
        said.contains("ELF 64-bit LSB")
            && said.contains(machine)
            && said.contains("statically linked")
            && !said.contains("interpreter"),
        "{said}"
    );
    let qemu = ["-static", ""]
        .iter()
        .map(|suffix| format!("qemu-{foreign}{suffix}"))
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("qemu-user-static is installed (cargo xtask setup installs it)");
    let version = Command::new(&qemu)
        .arg(&other)
        .arg("--version")
        .output()
        .expect("qemu runs");
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.status.success() && text.starts_with("tracer ") && text.contains("embedded"),
        "{qemu} {}: {text}{}",
        other.display(),
        String::from_utf8_lossy(&version.stderr)
    );
    // Its completions came from the binary itself, run under qemu: the same as the host's.
    let completions = |binary: &PathBuf| {
        std::fs::read_to_string(binary.with_file_name("completions").join("tracer.bash"))
            .expect("completions")
    };
    assert_eq!(completions(&other), completions(&binary));
    let size = std::fs::metadata(&other).expect("binary").len();
    eprintln!("static tracer ({foreign}): {size} bytes");
    assert!(size < 64 << 20, "{size} bytes");

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
