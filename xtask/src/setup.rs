//! `cargo xtask setup`: idempotent installation of everything the build and tests need.
//!
//! Each step checks first and prints a single `ok: … already present` line when nothing has to
//! be done; otherwise it prints the commands it runs. All of it goes to stderr (the commands'
//! output too, see `cmd::run`): stdout is left to the tracer, so that
//! `cargo xtask run -- report | jq` reads the document alone.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context as _, Result};

use crate::cmd::{self, capture, command, find_in_path, run, stdout_of};
use crate::toolchain::Toolchains;

/// Debian packages besides LLVM (`llvm-N-dev`, `libpolly-N-dev` to build bpf-linker, N from
/// `rust-toolchain.toml`): the tools the tests and the tracer use.
const DEBIAN_TOOLS: &[&str] = &[
    "nftables",
    "iptables",
    "iproute2",
    "bpftool",
    "bpftrace",
    "tmux",
    // tests/serve_auth.rs: real clients of the guarded sidecar (curl over TLS, a Prometheus
    // scraping with a bearer token) and the throwaway CA it makes with the openssl CLI.
    "curl",
    "openssl",
    "prometheus",
    // The MCP tests' client (tests/mcp_client.py) runs in a virtual environment.
    "python3-venv",
    // `cargo xtask dist`: musl-gcc compiles ring's C for the static binary.
    "musl-tools",
    // `cargo xtask dist` runs the foreign architecture's binary (completions, man page) and
    // xtask/tests/dist.rs its `--version` under qemu-user.
    "qemu-user-static",
    // `tracer capture`'s tests read the pcapng files back with both.
    "tshark",
    "tcpdump",
];
const BPF_LINKER: &str = "bpf-linker";
/// The Python MCP SDK that tests/mcp.rs drives the tracer with (a client this project did not
/// write), in its own virtual environment at a fixed place (tests/mcp.rs looks there).
pub const MCP_VENV: &str = "/opt/tracer-test/mcp-venv";
const MCP_CLIENT: &str = "mcp==2.3.0";

/// Installs whatever is missing, exactly the versions pinned in `rust-toolchain.toml`, and
/// returns them.
pub fn setup(root: &Path) -> Result<Toolchains> {
    let pinned = Toolchains::load(root)?;
    toolchain(&pinned.stable, &pinned.stable_components)
        .context("setting up the stable toolchain")?;
    toolchain(&pinned.nightly, &pinned.nightly_components)
        .context("setting up the nightly toolchain")?;
    nightly_llvm_matches(&pinned)?;
    debian_packages(&pinned).context("installing Debian packages")?;
    bpf_linker(&pinned).context("installing bpf-linker")?;
    mcp_client().context("installing the Python MCP client")?;
    Ok(pinned)
}

/// Installs the rustup toolchain `name` and its `components` when missing.
fn toolchain(name: &str, components: &[String]) -> Result<()> {
    if find_in_path("rustup").is_none() {
        bail!("rustup is not installed: install it from https://rustup.rs, then re-run `cargo xtask setup`");
    }
    let toolchains = stdout_of(&mut command("rustup", ["toolchain", "list"]))?;
    if has_toolchain(&toolchains, name) {
        eprintln!("ok: {name} toolchain already present");
    } else {
        run(&mut command(
            "rustup",
            ["toolchain", "install", name, "--profile", "minimal"],
        ))?;
    }
    let installed = stdout_of(&mut command(
        "rustup",
        ["component", "list", "--toolchain", name, "--installed"],
    ))?;
    for component in components {
        if has_component(&installed, component) {
            eprintln!("ok: {component} ({name}) already present");
        } else {
            run(&mut command(
                "rustup",
                ["component", "add", component, "--toolchain", name],
            ))?;
        }
    }
    Ok(())
}

/// Fails unless the nightly's LLVM has the major version bpf-linker is built against.
fn nightly_llvm_matches(pinned: &Toolchains) -> Result<()> {
    let toolchain = format!("+{}", pinned.nightly);
    let version = stdout_of(&mut command("rustc", [toolchain.as_str(), "-vV"]))?;
    match llvm_major(&version) {
        Some(major) if major == pinned.llvm => {
            eprintln!("ok: {} is on LLVM {major}, as bpf-linker", pinned.nightly);
            Ok(())
        }
        found => bail!(
            "{} is on LLVM {}, but bpf-linker {} is built on LLVM {}: pin a nightly of the same \
             LLVM major version in rust-toolchain.toml",
            pinned.nightly,
            found.map_or_else(|| "?".to_owned(), |m| m.to_string()),
            pinned.bpf_linker,
            pinned.llvm
        ),
    }
}

/// The LLVM major version in `rustc -vV` output (`LLVM version: 22.1.4`).
fn llvm_major(rustc_vv: &str) -> Option<u32> {
    let version = rustc_vv
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version:"))?;
    version.trim().split('.').next()?.parse().ok()
}

/// Whether `rustup toolchain list` output lists the toolchain `name` (e.g. `nightly-2026-06-20`
/// as `nightly-2026-06-20-x86_64-unknown-linux-gnu`; the plain `nightly` is not a dated one).
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

/// The Debian packages setup installs: LLVM of the pinned major version, the tools, then the
/// cross gcc of the other architecture `cargo xtask dist` builds.
fn debian_packages_for(pinned: &Toolchains) -> Vec<String> {
    let llvm = [
        format!("llvm-{}-dev", pinned.llvm),
        format!("libpolly-{}-dev", pinned.llvm),
    ];
    llvm.into_iter()
        .chain(DEBIAN_TOOLS.iter().map(|tool| (*tool).to_owned()))
        .chain(cross_packages(std::env::consts::ARCH))
        .collect()
}

/// `cargo xtask dist`'s cross C compiler and linker for the architectures other than `host`
/// (Debian's names: `gcc-aarch64-linux-gnu`, and its headers `libc6-dev-arm64-cross`, which
/// the package only recommends).
fn cross_packages(host: &str) -> Vec<String> {
    crate::dist::ARCHES
        .iter()
        .filter(|arch| **arch != host)
        .flat_map(|arch| {
            let debian = match *arch {
                "aarch64" => "arm64",
                "x86_64" => "amd64",
                other => other,
            };
            [
                format!("gcc-{}-linux-gnu", arch.replace('_', "-")),
                format!("libc6-dev-{debian}-cross"),
            ]
        })
        .collect()
}

fn debian_packages(pinned: &Toolchains) -> Result<()> {
    let wanted = debian_packages_for(pinned);
    let missing: Vec<&str> = wanted
        .iter()
        .map(String::as_str)
        .filter(|package| !dpkg_installed(package))
        .collect();
    if missing.is_empty() {
        eprintln!("ok: Debian packages already present: {}", wanted.join(" "));
        return Ok(());
    }
    let list = missing.join(" ");
    if find_in_path("apt-get").is_none() || !is_root() {
        bail!(
            "missing Debian packages: {list}; install them by hand as root with \
             `apt-get install -y --no-install-recommends {list}`, then re-run `cargo xtask setup`"
        );
    }
    eprintln!("installing missing Debian packages: {list}");
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

fn bpf_linker(pinned: &Toolchains) -> Result<()> {
    let version = pinned.bpf_linker.as_str();
    let llvm_prefix = pinned.llvm_prefix();
    // `PATH` already includes `$CARGO_HOME/bin` (see `cmd::add_cargo_bin_to_path`).
    match installed_bpf_linker(version) {
        Ok(found) => {
            eprintln!("ok: {BPF_LINKER} {version} already present ({found})");
            return Ok(());
        }
        Err(why) => eprintln!("{why}: installing {BPF_LINKER} {version} (takes a while)"),
    }
    let mut install = command(
        "cargo",
        ["install", BPF_LINKER, "--version", version, "--locked"],
    );
    install.env("LLVM_PREFIX", &llvm_prefix);
    if let Err(err) = run(&mut install) {
        eprintln!("{err:#}; retrying without --locked");
        let mut install = command("cargo", ["install", BPF_LINKER, "--version", version]);
        install.env("LLVM_PREFIX", &llvm_prefix);
        run(&mut install)?;
    }
    let found = installed_bpf_linker(version).map_err(|why| {
        anyhow::anyhow!("after `cargo install`: {why} (is another {BPF_LINKER} earlier in PATH?)")
    })?;
    eprintln!("installed {BPF_LINKER} {version} ({found})");
    Ok(())
}

/// The path of the wanted bpf-linker, or why it is not usable.
fn installed_bpf_linker(wanted: &str) -> Result<String, String> {
    let Some(path) = find_in_path(BPF_LINKER) else {
        let where_ = cmd::cargo_bin_dir()
            .map(|bin| format!(" nor in {}", bin.display()))
            .unwrap_or_default();
        return Err(format!("{BPF_LINKER} not found in PATH{where_}"));
    };
    let shown = path.display().to_string();
    let version = stdout_of(&mut command(&shown, ["--version"]))
        .map_err(|err| format!("{shown} --version failed: {err:#}"))?;
    if version_matches(&version, wanted) {
        Ok(shown)
    } else {
        Err(format!("{shown} is `{}`, not {wanted}", version.trim()))
    }
}

/// Whether `--version` output (e.g. `bpf-linker 0.13.0`) reports exactly `wanted`.
fn version_matches(output: &str, wanted: &str) -> bool {
    output.split_whitespace().any(|token| {
        let token = token.trim_matches(|c: char| matches!(c, '(' | ')' | ',' | ';'));
        token.strip_prefix('v').unwrap_or(token) == wanted
    })
}

/// The MCP tests' client: `python3 -m venv MCP_VENV` and `pip install MCP_CLIENT`, unless its
/// Python already imports the pinned version.
fn mcp_client() -> Result<()> {
    let python = format!("{MCP_VENV}/bin/python");
    let (name, version) = MCP_CLIENT.split_once("==").unwrap_or((MCP_CLIENT, ""));
    let check = format!(
        "import importlib.metadata as m, jsonschema; assert m.version({name:?}) == {version:?}"
    );
    if capture(&mut command(&python, ["-c", &check])).is_ok_and(|o| o.status.success()) {
        eprintln!("ok: Python {MCP_CLIENT} already present in {MCP_VENV}");
        return Ok(());
    }
    if !std::path::Path::new(&python).exists() {
        run(&mut command("/usr/bin/python3", ["-m", "venv", MCP_VENV]))?;
    }
    run(&mut command(
        &python,
        [
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            MCP_CLIENT,
        ],
    ))
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
        // The pinned, dated toolchains.
        let pinned = "1.98.0-x86_64-unknown-linux-gnu\n\
                      nightly-2026-06-20-x86_64-unknown-linux-gnu\n";
        assert!(has_toolchain(pinned, "nightly-2026-06-20"));
        assert!(has_toolchain(pinned, "1.98.0"));
        assert!(!has_toolchain(pinned, "nightly-2026-05-21"));
        assert!(!has_toolchain(pinned, "1.98.1"));
        assert!(!has_toolchain(pinned, "nightly"));
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
    fn llvm_major_parsing() {
        let vv = "rustc 1.98.0-nightly (f428d123a 2026-06-19)\nbinary: rustc\n\
                  release: 1.98.0-nightly\nLLVM version: 22.1.7\n";
        assert_eq!(llvm_major(vv), Some(22));
        assert_eq!(llvm_major("LLVM version: 23.0.0\n"), Some(23));
        assert_eq!(llvm_major("rustc 1.98.0\n"), None);
    }

    #[test]
    fn debian_llvm_packages_follow_the_pin() {
        let pinned = Toolchains {
            stable: "1.98.0".into(),
            stable_components: vec![],
            nightly: "nightly-2026-06-20".into(),
            nightly_components: vec![],
            bpf_linker: "0.13.0".into(),
            llvm: 22,
        };
        let packages = debian_packages_for(&pinned);
        assert_eq!(packages[..2], ["llvm-22-dev", "libpolly-22-dev"]);
        assert_eq!(packages.len(), 2 + DEBIAN_TOOLS.len() + 2);
        assert_eq!(
            cross_packages("x86_64"),
            ["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"]
        );
        assert_eq!(
            cross_packages("aarch64"),
            ["gcc-x86-64-linux-gnu", "libc6-dev-amd64-cross"]
        );
        assert_eq!(pinned.llvm_prefix(), "/usr/lib/llvm-22");
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
