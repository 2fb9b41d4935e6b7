//! `cargo xtask`: developer tasks for the tracer workspace.
//!
//! Subcommands:
//! - `setup`: install the toolchains pinned in `rust-toolchain.toml` (stable; the dated nightly
//!   with `rust-src`, `clippy`), the Debian packages and `bpf-linker`;
//! - `build`: setup, then `cargo build --release -p tracer`;
//! - `run -- <args>`: build, then run `target/release/tracer <args>`;
//! - `test [--no-ebpf-clippy] [-- <test args>]`: setup, fmt check, clippy, eBPF clippy, tests;
//! - `dist [--arch all|x86_64|aarch64] [--no-setup]`: the static (musl) binaries, checksums and tarballs;
//! - `bench [--quick] [--rounds N] [--seconds N]`: the tracer's cost side by side with bpftrace.

mod bench;
mod cmd;
mod dist;
mod setup;
mod tasks;
mod toolchain;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Developer tasks for the tracer workspace.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install missing prerequisites (the pinned stable and nightly toolchains, Debian packages,
    /// bpf-linker).
    Setup,
    /// Setup, then build the tracer in release mode (embeds the eBPF object).
    Build,
    /// Setup, build, then run `target/release/tracer` with the given arguments.
    Run {
        /// Arguments passed to the tracer (write them after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Setup, then fmt check, clippy, eBPF clippy and the tests (serially).
    Test {
        /// Skip the clippy pass over the eBPF crate.
        #[arg(long)]
        no_ebpf_clippy: bool,
        /// Extra arguments for the final `cargo test` run, after its `--` (e.g. a test filter).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Setup, then a static (musl) tracer per architecture with the eBPF object embedded, its
    /// SHA-256 and a tarball (README, deploy manifests, completions, man page) in target/dist/.
    Dist {
        /// `all` (x86_64 and aarch64, the host's first), `x86_64` or `aarch64` (the foreign
        /// one is cross-built with Debian's cross gcc, which setup installs).
        #[arg(long, default_value = "all")]
        arch: String,
        /// Skip `cargo xtask setup` (the toolchains are installed already, e.g. in the image).
        #[arg(long)]
        no_setup: bool,
    },
    /// Setup, build, then measure the tracer's cost side by side with bpftrace (root).
    Bench(bench::Options),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    cmd::add_cargo_bin_to_path();
    let root = cmd::workspace_root()?;
    match command {
        Command::Setup => setup::setup(&root).map(|_| ExitCode::SUCCESS),
        Command::Build => tasks::build(&root).map(|()| ExitCode::SUCCESS),
        Command::Run { args } => tasks::run(&root, &args),
        Command::Test {
            no_ebpf_clippy,
            args,
        } => tasks::test(&root, !no_ebpf_clippy, &args).map(|()| ExitCode::SUCCESS),
        Command::Dist { arch, no_setup } => {
            dist::dist(&root, &dist::arches(&arch)?, !no_setup).map(|()| ExitCode::SUCCESS)
        }
        Command::Bench(options) => bench::bench(&root, &options).map(|()| ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        let cli = Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()));
        cli.expect("arguments should parse").command
    }

    #[test]
    fn run_passes_everything_after_double_dash() {
        match parse(&["run", "--", "report", "--duration", "10s"]) {
            Command::Run { args } => assert_eq!(args, ["report", "--duration", "10s"]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn run_without_args() {
        match parse(&["run"]) {
            Command::Run { args } => assert!(args.is_empty()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn test_flags_and_filter() {
        match parse(&["test", "--no-ebpf-clippy", "--", "drops", "--nocapture"]) {
            Command::Test {
                no_ebpf_clippy,
                args,
            } => {
                assert!(no_ebpf_clippy);
                assert_eq!(args, ["drops", "--nocapture"]);
            }
            other => panic!("unexpected {other:?}"),
        }
        match parse(&["test"]) {
            Command::Test {
                no_ebpf_clippy,
                args,
            } => {
                assert!(!no_ebpf_clippy);
                assert!(args.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
