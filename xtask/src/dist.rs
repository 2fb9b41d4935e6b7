//! `cargo xtask dist`: the tracer as a static (musl) binary per architecture (x86_64 and
//! aarch64) with the eBPF object embedded, its SHA-256 checksum, and a tarball with the README,
//! the deploy manifests (with the alert rules and the Grafana dashboard), the shell completions
//! and the man page, for installing without building:
//!
//! ```text
//! target/dist/tracer-0.1.0-ARCH-linux-musl/{tracer,README.md,deploy/,completions/,man/}
//! target/dist/tracer-0.1.0-ARCH-linux-musl.tar.gz (+ .sha256)
//! target/dist/tracer-0.1.0-ARCH-linux-musl/tracer.sha256
//! ```
//!
//! The musl targets are added to the pinned stable toolchain when missing; each binary is
//! checked to be static (no program interpreter) before it is packed.
//!
//! Cross-building (aarch64 on an x86_64 host, or the reverse) uses Debian's cross gcc
//! (`gcc-aarch64-linux-gnu` + `libc6-dev-arm64-cross`, which `cargo xtask setup` installs) as
//! the C compiler of ring (TLS) and as the linker; Rust's musl target brings its own musl
//! (`crt1.o`, `libc.a`), so the binary links against musl, not the cross glibc. Why this and
//! not zig (`cargo-zigbuild`) or clang: both are Debian 12 packages from the main archive,
//! installed by apt like the other tools; zig is not packaged for Debian 12, and clang would
//! still need a linker and headers for the target, which these packages are. The foreign
//! binary writes its completions and man page under qemu-user (`qemu-user-static`, also
//! installed by setup).

use std::fs;
use std::path::Path;

use anyhow::{bail, Context as _, Result};

use crate::cmd::{command, find_in_path, run, stdout_of};
use crate::setup;

const TRACER: &str = "tracer";

/// The architectures `cargo xtask dist` builds by default (`--arch all`).
pub const ARCHES: &[&str] = &["x86_64", "aarch64"];

/// The Rust target of a static binary for `arch` (`x86_64`, `aarch64`).
pub fn musl_target(arch: &str) -> String {
    format!("{arch}-unknown-linux-musl")
}

/// The architectures `--arch` names: `all` (the host's first), or one of [`ARCHES`].
pub fn arches(arg: &str) -> Result<Vec<String>> {
    let host = std::env::consts::ARCH;
    match arg {
        "all" => {
            let mut all = vec![host.to_owned()];
            all.extend(
                ARCHES
                    .iter()
                    .filter(|a| **a != host)
                    .map(|a| (*a).to_owned()),
            );
            Ok(all)
        }
        one if ARCHES.contains(&one) => Ok(vec![one.to_owned()]),
        other => bail!(
            "--arch {other} is not one dist builds: use all, {}",
            ARCHES.join(" or ")
        ),
    }
}

/// Debian's cross gcc for `arch` (`aarch64-linux-gnu-gcc`): ring's C compiler and the linker.
pub fn cross_gcc(arch: &str) -> String {
    format!("{arch}-linux-gnu-gcc")
}

/// Builds and packs the static binary for each of `arches`; `run_setup` false skips `cargo
/// xtask setup` (the Dockerfile installs the toolchains itself).
pub fn dist(root: &Path, arches: &[String], run_setup: bool) -> Result<()> {
    let pinned = if run_setup {
        setup::setup(root)?
    } else {
        crate::toolchain::Toolchains::load(root)?
    };
    for arch in arches {
        dist_one(root, &pinned, arch)?;
    }
    Ok(())
}

fn dist_one(root: &Path, pinned: &crate::toolchain::Toolchains, arch: &str) -> Result<()> {
    let target = musl_target(arch);
    add_target(&pinned.stable, &target)?;
    let mut build = command(
        "cargo",
        [
            "build",
            "--release",
            "--locked",
            "-p",
            TRACER,
            "--target",
            &target,
        ],
    );
    build.current_dir(root);
    let cc = format!("CC_{}", target.replace('-', "_"));
    if arch == std::env::consts::ARCH {
        // ring (TLS for serve and cluster) compiles C and assembly: with musl's gcc wrapper
        // (Debian's musl-tools), as cc-rs does not find an `{arch}-linux-musl-gcc` on Debian.
        build.env(cc, "musl-gcc");
    } else {
        // The kernel programs are built for the target's byte order and architecture
        // (aya-build reads CARGO_CFG_TARGET_*); ring's C and the link need a cross gcc.
        let gcc = cross_gcc(arch);
        if find_in_path(&gcc).is_none() {
            bail!(
                "{gcc} is not installed, so the {arch} binary cannot be built: run `cargo \
                 xtask setup` (it installs Debian's gcc-{}-linux-gnu), or build one \
                 architecture with --arch {}",
                arch.replace('_', "-"),
                std::env::consts::ARCH
            );
        }
        build.env(&cc, &gcc);
        build.env(
            format!(
                "CARGO_TARGET_{}_LINKER",
                target.replace('-', "_").to_uppercase()
            ),
            &gcc,
        );
    }
    run(&mut build).with_context(|| format!("building the static tracer for {arch}"))?;

    let target_dir = crate::tasks::target_dir(root);
    let built = target_dir.join(&target).join("release").join(TRACER);
    if !is_static_elf(&fs::read(&built).with_context(|| format!("reading {}", built.display()))?) {
        bail!(
            "{} is dynamically linked (it has a program interpreter): the musl build did not \
             produce a static binary",
            built.display()
        );
    }

    let version = env!("CARGO_PKG_VERSION");
    let name = format!("{TRACER}-{version}-{arch}-linux-musl");
    let dist_dir = target_dir.join("dist");
    let stage = dist_dir.join(&name);
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("clearing {}", stage.display()))?;
    }
    for dir in ["deploy", "completions", "man"] {
        fs::create_dir_all(stage.join(dir))
            .with_context(|| format!("creating {}", stage.display()))?;
    }
    let binary = stage.join(TRACER);
    fs::copy(&built, &binary).with_context(|| format!("copying {}", built.display()))?;
    copy(&root.join("README.md"), &stage.join("README.md"))?;
    copy_deploy(&root.join("deploy"), &stage.join("deploy"))?;

    // Completions and the man page come from the binary itself (a foreign one under qemu).
    let qemu = runner(arch)?;
    let tracer = |args: &[&str]| -> Result<String> {
        let mut cmd = match &qemu {
            None => command(&binary.display().to_string(), args),
            Some(qemu) => {
                let mut cmd = command(&qemu.display().to_string(), [binary.as_os_str()]);
                cmd.args(args);
                cmd
            }
        };
        stdout_of(&mut cmd)
    };
    for (shell, file) in [
        ("bash", "tracer.bash"),
        ("zsh", "_tracer"),
        ("fish", "tracer.fish"),
    ] {
        let script = tracer(&["completions", shell])?;
        write(&stage.join("completions").join(file), &script)?;
    }
    write(&stage.join("man").join("tracer.1"), &tracer(&["man"])?)?;

    let sum = sha256(&binary)?;
    write(&stage.join("tracer.sha256"), &format!("{sum}  {TRACER}\n"))?;

    let tarball = dist_dir.join(format!("{name}.tar.gz"));
    let mut tar = command("tar", ["--owner=0", "--group=0", "-czf"]);
    tar.arg(&tarball).arg("-C").arg(&dist_dir).arg(&name);
    run(&mut tar).context("packing the tarball")?;
    let tar_sum = sha256(&tarball)?;
    write(
        &dist_dir.join(format!("{name}.tar.gz.sha256")),
        &format!("{tar_sum}  {name}.tar.gz\n"),
    )?;
    let size = fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "dist: {} ({:.1} MiB, static, sha256 {sum})\ndist: {}",
        binary.display(),
        size as f64 / (1024.0 * 1024.0),
        tarball.display()
    );
    Ok(())
}

/// What runs a binary of `arch` here: nothing for the host's architecture, else qemu-user
/// (`qemu-ARCH-static`, or `qemu-ARCH`).
pub fn runner(arch: &str) -> Result<Option<std::path::PathBuf>> {
    if arch == std::env::consts::ARCH {
        return Ok(None);
    }
    [format!("qemu-{arch}-static"), format!("qemu-{arch}")]
        .iter()
        .find_map(|name| find_in_path(name))
        .map(Some)
        .with_context(|| {
            format!(
                "qemu-{arch}-static is not installed, so the {arch} binary cannot write its \
                 completions here: run `cargo xtask setup` (it installs qemu-user-static)"
            )
        })
}

/// `rustup target add TARGET --toolchain TOOLCHAIN` when the target is not installed.
fn add_target(toolchain: &str, target: &str) -> Result<()> {
    let installed = stdout_of(&mut command(
        "rustup",
        ["target", "list", "--installed", "--toolchain", toolchain],
    ))?;
    if installed.lines().any(|line| line.trim() == target) {
        eprintln!("ok: {target} ({toolchain}) already present");
        return Ok(());
    }
    run(&mut command(
        "rustup",
        ["target", "add", target, "--toolchain", toolchain],
    ))
}

/// Whether `elf` is an ELF executable without a program interpreter (`PT_INTERP`): it needs no
/// dynamic loader, hence no shared library.
pub fn is_static_elf(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return false; // not a little-endian 64-bit ELF
    }
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8).map(|b| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(b);
            u64::from_le_bytes(bytes)
        })
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(32), u16_at(54), u16_at(56)) else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum))
        .all(|i| u32_at(phoff + i * usize::from(phentsize)).is_some_and(|kind| kind != PT_INTERP))
}

fn sha256(path: &Path) -> Result<String> {
    let out = stdout_of(command("sha256sum", [path.as_os_str()]).current_dir("/"))?;
    out.split_whitespace()
        .next()
        .map(str::to_owned)
        .with_context(|| format!("sha256sum printed nothing for {}", path.display()))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Copies the manifests, alert rules and dashboards of `deploy/` (its `.yaml`, `.md` and `.json`
/// files, subdirectories included) into the tarball's stage; the vendored schemas the manifest
/// tests validate against stay out — a node needs none of them.
fn copy_deploy(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let entries = fs::read_dir(from).with_context(|| format!("reading {}", from.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", from.display()))?
            .path();
        let Some(file) = path.file_name() else {
            continue;
        };
        if path.is_dir() {
            if file != "schemas" {
                copy_deploy(&path, &to.join(file))?;
            }
            continue;
        }
        let keep = path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "md" || ext == "json");
        if keep {
            copy(&path, &to.join(file))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_elf_detection() {
        // This test binary is dynamically linked against glibc: it has an interpreter.
        let exe = std::env::current_exe().expect("exe");
        let me = fs::read(exe).expect("read self");
        if cfg!(target_env = "gnu") {
            assert!(!is_static_elf(&me));
        }
        // A minimal 64-bit ELF header with no program header at all.
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        assert!(is_static_elf(&elf));
        // One PT_INTERP program header.
        elf[32..40].copy_from_slice(&64u64.to_le_bytes());
        elf[54..56].copy_from_slice(&56u16.to_le_bytes());
        elf[56..58].copy_from_slice(&1u16.to_le_bytes());
        elf.extend_from_slice(&[0u8; 56]);
        elf[64..68].copy_from_slice(&3u32.to_le_bytes());
        assert!(!is_static_elf(&elf));
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        assert_eq!(musl_target("x86_64"), "x86_64-unknown-linux-musl");
        assert_eq!(cross_gcc("aarch64"), "aarch64-linux-gnu-gcc");
        let all = arches("all").expect("all");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], std::env::consts::ARCH, "the host's first");
        assert_eq!(arches("aarch64").expect("one"), vec!["aarch64".to_owned()]);
        assert!(arches("riscv64").is_err());
    }
}
