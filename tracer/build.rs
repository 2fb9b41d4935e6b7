//! Builds the kernel programs (`tracer-ebpf`) for the BPF target and puts the object in OUT_DIR,
//! where `loader.rs` embeds it. The nightly that builds them is the one pinned in the workspace's
//! `rust-toolchain.toml` (`[ebpf] nightly`), the same `cargo xtask setup` installs.
use anyhow::Context as _;
use aya_build::{Package, Toolchain};

const TOOLCHAIN_FILE: &str = "../rust-toolchain.toml";

fn main() -> anyhow::Result<()> {
    // aya-build watches the kernel crate; the shared types it is built from live here.
    println!("cargo:rerun-if-changed=../tracer-common");
    println!("cargo:rerun-if-changed={TOOLCHAIN_FILE}");
    let text = std::fs::read_to_string(TOOLCHAIN_FILE)
        .with_context(|| format!("reading {TOOLCHAIN_FILE}"))?;
    let nightly = ebpf_nightly(&text).with_context(|| {
        format!("{TOOLCHAIN_FILE} has no `nightly = \"nightly-YYYY-MM-DD\"` under [ebpf]")
    })?;
    // `tracer --version`: the revision built from, and the nightly that built the kernel programs.
    println!("cargo:rustc-env=TRACER_GIT_REV={}", git_revision());
    println!("cargo:rustc-env=TRACER_EBPF_TOOLCHAIN={nightly}");
    aya_build::build_ebpf(
        [Package {
            name: "tracer-ebpf",
            root_dir: "../tracer-ebpf",
            ..Default::default()
        }],
        Toolchain::Custom(nightly),
    )
}

/// `git rev-parse --short=10 HEAD`; `unknown` outside a git checkout (a source tarball).
/// Reruns when HEAD moves (commit, checkout).
fn git_revision() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        for file in ["HEAD", "logs/HEAD"] {
            println!("cargo:rerun-if-changed={dir}/{file}");
        }
    }
    git(&["rev-parse", "--short=10", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
}

/// The value of `nightly = "…"` in the `[ebpf]` table (as xtask/src/toolchain.rs reads it).
fn ebpf_nightly(text: &str) -> Option<&str> {
    let mut in_ebpf = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_ebpf = line == "[ebpf]";
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if in_ebpf && key.trim() == "nightly" {
            let value = value.trim();
            let end = value.get(1..)?.find('"')? + 1;
            return value.strip_prefix('"').map(|_| &value[1..end]);
        }
    }
    None
}
