//! `cargo xtask setup`: idempotent installation of everything the build and tests need.
//!
//! Each step checks first and prints a single `ok: … already present` line when nothing has to
//! be done; otherwise it prints the commands it runs.

use std::fs;

use anyhow::{bail, Context as _, Result};

use crate::cmd::{self, capture, command, find_in_path, run, stdout_of};

/// The rustup toolchain used for the eBPF crate (`-Z build-std`).
pub const NIGHTLY: &str = "nightly";
/// Components of the nightly toolchain: `rust-src` for `-Z build-std=core`, `clippy` for the
/// eBPF clippy pass of `cargo xtask test` (the `minimal` profile does not include it).
const NIGHTLY_COMPONENTS: &[&str] = &["rust-src", "clippy"];
/// Debian packages: LLVM to build bpf-linker, then the tools the tests and the tracer use.
const DEBIAN_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "nftables",
    "iptables",
    "iproute2",
    "bpftool",
    "bpftrace",
    "tmux",
    // `tracer capture`'s tests read the pcapng files back with both.
    "tshark",
    "tcpdump",
];
const BPF_LINKER: &str = "bpf-linker";
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

/// Installs whatever is missing.
pub fn setup() -> Result<()> {
    nightly_toolchain().context("setting up the nightly toolchain")?;
    debian_packages().context("installing Debian packages")?;
    bpf_linker().context("installing bpf-linker")?;
    Ok(())
}

fn nightly_toolchain() -> Result<()> {
    if find_in_path("rustup").is_none() {
        bail!("rustup is not installed: install it from https://rustup.rs, then re-run `cargo xtask setup`");
    }
    let toolchains = stdout_of(&mut command("rustup", ["toolchain", "list"]))?;
    if has_toolchain(&toolchains, NIGHTLY) {
        println!("ok: {NIGHTLY} toolchain already present");
    } else {
        run(&mut command(
            "rustup",
            ["toolchain", "install", NIGHTLY, "--profile", "minimal"],
        ))?;
    }
    let installed = stdout_of(&mut command(
        "rustup",
        ["component", "list", "--toolchain", NIGHTLY, "--installed"],
    ))?;
    for component in NIGHTLY_COMPONENTS {
        if has_component(&installed, component) {
            println!("ok: {component} ({NIGHTLY}) already present");
        } else {
            run(&mut command(
                "rustup",
                ["component", "add", component, "--toolchain", NIGHTLY],
            ))?;
        }
    }
    Ok(())
}

/// Whether `rustup toolchain list` output lists the plain channel `name` (e.g. `nightly` or
/// `nightly-x86_64-unknown-linux-gnu (default)`, but not the dated `nightly-2024-05-01-…`).
fn has_toolchain(list: &str, name: &str) -> bool {
    list.lines().any(|line| {
        let Some(first) = line.split_whitespace().next() else {
            return false;
        };
        match first.strip_prefix(name) {
            Some("") => true,
            Some(rest) => rest
                .strip_prefix('-')
                .and_then(|triple| triple.chars().next())
                .is_some_and(|c| !c.is_ascii_digit()),
            None => false,
        }
    })
}

/// Whether `rustup component list --installed` output contains `component`, either bare
/// (`rust-src`) or with its target triple (`clippy-x86_64-unknown-linux-gnu`).
fn has_component(list: &str, component: &str) -> bool {
    list.lines().map(str::trim).any(|line| {
        let Some(first) = line.split_whitespace().next() else {
            return false;
        };
        match first.strip_prefix(component) {
            Some("") => true,
            // A target triple has at least three dash-separated parts.
            Some(rest) => rest
                .strip_prefix('-')
                .is_some_and(|triple| triple.split('-').count() >= 3),
            None => false,
        }
    })
}

fn debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|package| !dpkg_installed(package))
        .collect();
    if missing.is_empty() {
        println!(
            "ok: Debian packages already present: {}",
            DEBIAN_PACKAGES.join(" ")
        );
        return Ok(());
    }
    let list = missing.join(" ");
    if find_in_path("apt-get").is_none() || !is_root() {
        bail!(
            "missing Debian packages: {list}; install them by hand as root with \
             `apt-get install -y --no-install-recommends {list}`, then re-run `cargo xtask setup`"
        );
    }
    println!("installing missing Debian packages: {list}");
    let mut update = command("apt-get", ["update"]);
    update.env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut update)?;
    if missing.contains(&"tshark") {
        // wireshark-common asks whether non-root users may capture; answer it (no) up front
        // so the install never waits for a terminal.
        preseed("wireshark-common wireshark-common/install-setuid boolean false\n")?;
    }
    let mut install = command("apt-get", ["install", "-y", "--no-install-recommends"]);
    install
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut install)
}

/// Feeds answers to debconf (`debconf-set-selections`).
fn preseed(answers: &str) -> Result<()> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("debconf-set-selections")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("running debconf-set-selections")?;
    child
        .stdin
        .take()
        .context("debconf-set-selections stdin")?
        .write_all(answers.as_bytes())
        .context("writing debconf answers")?;
    let status = child.wait().context("waiting for debconf-set-selections")?;
    if !status.success() {
        bail!("debconf-set-selections failed ({status})");
    }
    Ok(())
}

fn dpkg_installed(package: &str) -> bool {
    let mut query = command("dpkg-query", ["-W", "-f=${Status}", package]);
    match capture(&mut query) {
        Ok(output) => {
            output.status.success() && is_installed_status(&String::from_utf8_lossy(&output.stdout))
        }
        Err(_) => false,
    }
}

/// Whether a dpkg `${Status}` string (`want flag status`) means installed, e.g.
/// `install ok installed` or `hold ok installed`, but not `deinstall ok config-files`.
fn is_installed_status(status: &str) -> bool {
    matches!(
        status.split_whitespace().collect::<Vec<_>>().as_slice(),
        ["install" | "hold", "ok", "installed"]
    )
}

fn is_root() -> bool {
    if let Some(uid) = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| effective_uid(&status))
    {
        return uid == 0;
    }
    stdout_of(&mut command("id", ["-u"])).is_ok_and(|uid| uid.trim() == "0")
}

/// The effective uid from the `Uid:` line (real, effective, saved, fs) of `/proc/self/status`.
fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find_map(|line| line.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn bpf_linker() -> Result<()> {
    // `PATH` already includes `$CARGO_HOME/bin` (see `cmd::add_cargo_bin_to_path`).
    match installed_bpf_linker() {
        Ok(found) => {
            println!("ok: {BPF_LINKER} {BPF_LINKER_VERSION} already present ({found})");
            return Ok(());
        }
        Err(why) => println!("{why}: installing {BPF_LINKER} {BPF_LINKER_VERSION} (takes a while)"),
    }
    let mut install = command(
        "cargo",
        [
            "install",
            BPF_LINKER,
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
        ],
    );
    install.env("LLVM_PREFIX", LLVM_PREFIX);
    if let Err(err) = run(&mut install) {
        println!("{err:#}; retrying without --locked");
        let mut install = command(
            "cargo",
            ["install", BPF_LINKER, "--version", BPF_LINKER_VERSION],
        );
        install.env("LLVM_PREFIX", LLVM_PREFIX);
        run(&mut install)?;
    }
    let found = installed_bpf_linker().map_err(|why| {
        anyhow::anyhow!("after `cargo install`: {why} (is another {BPF_LINKER} earlier in PATH?)")
    })?;
    println!("installed {BPF_LINKER} {BPF_LINKER_VERSION} ({found})");
    Ok(())
}

/// The path of the wanted bpf-linker, or why it is not usable.
fn installed_bpf_linker() -> Result<String, String> {
    let Some(path) = find_in_path(BPF_LINKER) else {
        let where_ = cmd::cargo_bin_dir()
            .map(|bin| format!(" nor in {}", bin.display()))
            .unwrap_or_default();
        return Err(format!("{BPF_LINKER} not found in PATH{where_}"));
    };
    let shown = path.display().to_string();
    let version = stdout_of(&mut command(&shown, ["--version"]))
        .map_err(|err| format!("{shown} --version failed: {err:#}"))?;
    if version_matches(&version, BPF_LINKER_VERSION) {
        Ok(shown)
    } else {
        Err(format!(
            "{shown} is `{}`, not {BPF_LINKER_VERSION}",
            version.trim()
        ))
    }
}

/// Whether `--version` output (e.g. `bpf-linker 0.13.0`) reports exactly `wanted`.
fn version_matches(output: &str, wanted: &str) -> bool {
    output.split_whitespace().any(|token| {
        let token = token.trim_matches(|c: char| matches!(c, '(' | ')' | ',' | ';'));
        token.strip_prefix('v').unwrap_or(token) == wanted
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolchain_list_parsing() {
        let list = "stable-x86_64-unknown-linux-gnu (active, default)\n\
                    nightly-x86_64-unknown-linux-gnu\n\
                    1.95.0-x86_64-unknown-linux-gnu\n";
        assert!(has_toolchain(list, "nightly"));
        assert!(has_toolchain(list, "stable"));
        assert!(has_toolchain("nightly\n", "nightly"));
        assert!(!has_toolchain(
            "stable-x86_64-unknown-linux-gnu (default)\n",
            "nightly"
        ));
        assert!(!has_toolchain(
            "nightly-2024-05-01-x86_64-unknown-linux-gnu\n",
            "nightly"
        ));
        assert!(!has_toolchain("no installed toolchains\n", "nightly"));
        assert!(!has_toolchain("", "nightly"));
    }

    #[test]
    fn component_list_parsing() {
        let installed = "cargo-x86_64-unknown-linux-gnu\n\
                         clippy-x86_64-unknown-linux-gnu\n\
                         rust-docs-x86_64-unknown-linux-gnu\n\
                         rust-src\n\
                         rust-std-x86_64-unknown-linux-gnu\n\
                         rustc-x86_64-unknown-linux-gnu\n";
        assert!(has_component(installed, "rust-src"));
        assert!(has_component(installed, "clippy"));
        assert!(has_component(installed, "rustc"));
        assert!(!has_component(installed, "rustfmt"));
        assert!(!has_component(installed, "rust-analyzer"));
        let minimal = "cargo-x86_64-unknown-linux-gnu\n\
                       rust-std-x86_64-unknown-linux-gnu\n\
                       rustc-x86_64-unknown-linux-gnu\n";
        assert!(!has_component(minimal, "rust-src"));
        assert!(!has_component(minimal, "clippy"));
        // `rust-std-…` must not be mistaken for `rust-src`.
        assert!(!has_component(
            "rust-std-x86_64-unknown-linux-gnu\n",
            "rust-src"
        ));
    }

    #[test]
    fn dpkg_status_parsing() {
        assert!(is_installed_status("install ok installed"));
        assert!(is_installed_status("hold ok installed\n"));
        assert!(!is_installed_status("deinstall ok config-files"));
        assert!(!is_installed_status("install ok half-installed"));
        assert!(!is_installed_status("unknown ok not-installed"));
        assert!(!is_installed_status(""));
    }

    #[test]
    fn uid_parsing() {
        let status = "Name:\tcat\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Uid:\t0\t1000\t1000\t1000\n"), Some(1000));
        assert_eq!(effective_uid("Name:\tcat\n"), None);
    }

    #[test]
    fn bpf_linker_version_matching() {
        assert!(version_matches("bpf-linker 0.13.0\n", "0.13.0"));
        assert!(version_matches(
            "bpf-linker v0.13.0 (abc 2025-01-01)",
            "0.13.0"
        ));
        assert!(!version_matches("bpf-linker 0.12.3\n", "0.13.0"));
        assert!(!version_matches("bpf-linker 0.13.0-rc.1\n", "0.13.0"));
        assert!(!version_matches("bpf-linker 10.13.0\n", "0.13.0"));
        assert!(!version_matches("", "0.13.0"));
    }
}
