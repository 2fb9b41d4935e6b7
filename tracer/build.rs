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
    aya_build::build_ebpf(
        [Package {
            name: "tracer-ebpf",
            root_dir: "../tracer-ebpf",
            ..Default::default()
        }],
        Toolchain::Custom(nightly),
    )
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
