//! `cargo xtask build`, `run` and `test`.

use std::env;
use std::fs;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result};

use crate::cmd::{command, display, run as run_cmd};
use crate::setup;

/// The user-space package (its build script builds and embeds the eBPF object).
const TRACER: &str = "tracer";
/// The eBPF package, excluded from the workspace's default members.
const EBPF_CRATE: &str = "tracer-ebpf";
const BPF_TARGET: &str = "bpfel-unknown-none";

/// Setup, then `cargo build --release -p tracer`.
pub fn build(root: &Path) -> Result<()> {
    setup::setup(root)?;
    let mut cmd = command("cargo", ["build", "--release", "-p", TRACER]);
    cmd.current_dir(root);
    run_cmd(&mut cmd).context("building the tracer")
}

/// Setup, build, then run `target/release/tracer <args>`, passing its exit status through.
pub fn run(root: &Path, args: &[String]) -> Result<ExitCode> {
    build(root)?;
    let binary = target_dir(root).join("release").join(TRACER);
    let mut cmd = Command::new(&binary);
    cmd.args(args);
    eprintln!("$ {}", display(&cmd));
    let status = cmd
        .status()
        .with_context(|| format!("failed to start {}", binary.display()))?;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the workspace) or `target`.
pub fn target_dir(root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// One named step of `cargo xtask test`.
struct Step {
    name: &'static str,
    cmd: Command,
}

/// Setup, then fmt check, clippy, eBPF clippy (unless disabled) and the tests, stopping at the
/// first failing step.
pub fn test(root: &Path, ebpf_clippy: bool, extra: &[String]) -> Result<()> {
    let pinned = setup::setup(root)?;
    let ebpf = ebpf_clippy.then(|| EbpfClippy::for_crate(&root.join(EBPF_CRATE)));
    if !ebpf_clippy {
        eprintln!("==> ebpf-clippy skipped (--no-ebpf-clippy)");
    }
    for Step { name, mut cmd } in test_steps(root, &pinned.nightly, ebpf, extra) {
        eprintln!("==> {name}");
        run_cmd(&mut cmd).with_context(|| format!("test step `{name}` failed"))?;
    }
    eprintln!("==> all test steps passed");
    Ok(())
}

/// How to run clippy over the eBPF crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EbpfClippy {
    /// Plain `cargo +NIGHTLY clippy --target bpfel-unknown-none -Z build-std=core`.
    Plain,
    /// As the real build (aya-build) compiles it: `--release` and `--cfg bpf_target_arch=…`,
    /// needed once the crate's own code uses `cfg(bpf_target_arch)`.
    WithArchCfg,
}

impl EbpfClippy {
    fn for_crate(dir: &Path) -> Self {
        if mentions(&dir.join("src"), "bpf_target_arch") {
            Self::WithArchCfg
        } else {
            Self::Plain
        }
    }
}

/// Whether any `.rs` file under `dir` contains `needle`.
fn mentions(dir: &Path, needle: &str) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            mentions(&path, needle)
        } else {
            path.extension().is_some_and(|ext| ext == "rs")
                && fs::read_to_string(&path).is_ok_and(|text| text.contains(needle))
        }
    })
}

/// The commands of `cargo xtask test`, in order.
fn test_steps(root: &Path, nightly: &str, ebpf: Option<EbpfClippy>, extra: &[String]) -> Vec<Step> {
    let mut steps = Vec::new();

    let mut fmt = command("cargo", ["fmt", "--all", "--", "--check"]);
    fmt.current_dir(root);
    steps.push(Step {
        name: "fmt",
        cmd: fmt,
    });

    let mut clippy = command(
        "cargo",
        [
            "clippy",
            "--workspace",
            "--exclude",
            EBPF_CRATE,
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    );
    clippy.current_dir(root);
    steps.push(Step {
        name: "clippy",
        cmd: clippy,
    });

    if let Some(variant) = ebpf {
        steps.push(Step {
            name: "ebpf-clippy",
            cmd: ebpf_clippy_command(root, nightly, variant),
        });
    }

    // Integration tests share the kernel (netns, nftables, BPF programs): run everything
    // serially in one go.
    let mut test = command(
        "cargo",
        [
            "test",
            "--workspace",
            "--exclude",
            EBPF_CRATE,
            "--all-targets",
            "--",
            "--test-threads=1",
        ],
    );
    test.args(extra).current_dir(root);
    steps.push(Step {
        name: "test",
        cmd: test,
    });

    steps
}

fn ebpf_clippy_command(root: &Path, nightly: &str, variant: EbpfClippy) -> Command {
    let toolchain = format!("+{nightly}");
    let mut cmd = command("cargo", [toolchain.as_str(), "clippy", "-p", EBPF_CRATE]);
    if variant == EbpfClippy::WithArchCfg {
        cmd.arg("--release");
    }
    cmd.args([
        "--target",
        BPF_TARGET,
        "-Z",
        "build-std=core",
        "--",
        "-D",
        "warnings",
    ]);
    if variant == EbpfClippy::WithArchCfg {
        let arch = env::consts::ARCH;
        cmd.env("CARGO_CFG_BPF_TARGET_ARCH", arch)
            .env("RUSTFLAGS", format!("--cfg bpf_target_arch=\"{arch}\""));
    }
    cmd.current_dir(root.join(EBPF_CRATE));
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|step| format!("{}: {}", step.name, display(&step.cmd)))
            .collect()
    }

    #[test]
    fn default_steps() {
        let steps = test_steps(
            Path::new("/w"),
            "nightly-2026-06-20",
            Some(EbpfClippy::Plain),
            &[],
        );
        assert_eq!(
            lines(&steps),
            [
                "fmt: (cd /w && cargo fmt --all -- --check)",
                "clippy: (cd /w && cargo clippy --workspace --exclude tracer-ebpf --all-targets -- -D warnings)",
                "ebpf-clippy: (cd /w/tracer-ebpf && cargo +nightly-2026-06-20 clippy -p tracer-ebpf \
                 --target bpfel-unknown-none -Z build-std=core -- -D warnings)",
                "test: (cd /w && cargo test --workspace --exclude tracer-ebpf --all-targets -- --test-threads=1)",
            ]
        );
    }

    #[test]
    fn no_ebpf_clippy_and_extra_test_args() {
        let extra = ["drops".to_owned(), "--nocapture".to_owned()];
        let steps = test_steps(Path::new("/w"), "nightly-2026-06-20", None, &extra);
        let names: Vec<_> = steps.iter().map(|step| step.name).collect();
        assert_eq!(names, ["fmt", "clippy", "test"]);
        assert_eq!(
            lines(&steps[2..]),
            [
                "test: (cd /w && cargo test --workspace --exclude tracer-ebpf --all-targets -- --test-threads=1 \
              drops --nocapture)"
            ]
        );
    }

    #[test]
    fn ebpf_clippy_with_arch_cfg() {
        let cmd = ebpf_clippy_command(
            Path::new("/w"),
            "nightly-2026-06-20",
            EbpfClippy::WithArchCfg,
        );
        let arch = env::consts::ARCH;
        assert_eq!(
            display(&cmd),
            format!(
                "(cd /w/tracer-ebpf && CARGO_CFG_BPF_TARGET_ARCH={arch} \
                 RUSTFLAGS='--cfg bpf_target_arch=\"{arch}\"' cargo +nightly-2026-06-20 clippy \
                 -p tracer-ebpf --release --target bpfel-unknown-none -Z build-std=core \
                 -- -D warnings)"
            )
        );
    }

    #[test]
    fn arch_cfg_detection() {
        let dir = env::temp_dir().join(format!("xtask-mentions-{}", std::process::id()));
        let src = dir.join("src").join("probes");
        fs::create_dir_all(&src).expect("create temp dir");
        fs::write(src.join("kprobe.rs"), "fn f() {}\n").expect("write");
        assert_eq!(EbpfClippy::for_crate(&dir), EbpfClippy::Plain);
        fs::write(
            src.join("args.rs"),
            "#[cfg(bpf_target_arch = \"x86_64\")]\nfn g() {}\n",
        )
        .expect("write");
        assert_eq!(EbpfClippy::for_crate(&dir), EbpfClippy::WithArchCfg);
        fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(EbpfClippy::for_crate(&dir), EbpfClippy::Plain);
    }
}
