//! Process helpers: running commands loudly, locating the workspace and executables.

use std::env;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context as _, Result};

/// The workspace root: the parent of this crate's manifest directory.
pub fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .with_context(|| format!("{} has no parent directory", manifest_dir.display()))
}

/// `$CARGO_HOME/bin`, defaulting to `~/.cargo/bin`.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    match env::var_os("CARGO_HOME") {
        Some(home) if !home.is_empty() => Some(PathBuf::from(home).join("bin")),
        _ => env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo").join("bin")),
    }
}

/// Appends `$CARGO_HOME/bin` to this process's `PATH` (inherited by every child) when it is
/// missing, so that tools installed by `cargo install` (bpf-linker) are found by the build.
pub fn add_cargo_bin_to_path() {
    let Some(bin) = cargo_bin_dir() else { return };
    let path = env::var_os("PATH").unwrap_or_default();
    if env::split_paths(&path).any(|dir| dir == bin) {
        return;
    }
    let dirs = env::split_paths(&path).chain(std::iter::once(bin));
    if let Ok(joined) = env::join_paths(dirs) {
        // The process is still single-threaded here (called first thing in `main`).
        env::set_var("PATH", joined);
    }
}

/// The first executable named `name` in `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A shell-like rendering of `cmd` (explicit env vars, program and arguments).
pub fn display(cmd: &Command) -> String {
    let mut parts = Vec::new();
    if let Some(dir) = cmd.get_current_dir() {
        parts.push(format!("(cd {} &&", quote(dir.as_os_str())));
    }
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            parts.push(format!("{}={}", key.to_string_lossy(), quote(value)));
        }
    }
    parts.push(quote(cmd.get_program()));
    parts.extend(cmd.get_args().map(quote));
    let mut line = parts.join(" ");
    if cmd.get_current_dir().is_some() {
        line.push(')');
    }
    line
}

/// Quotes `arg` for display when it contains characters special to a shell.
fn quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%*".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Prints `cmd` on stderr, runs it with its stdout sent to this process's stderr (stdout stays
/// free for the tracer's output in `cargo xtask run`) and fails if it does not exit successfully.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = display(cmd);
    eprintln!("$ {line}");
    cmd.stdout(std::io::stderr());
    let status = cmd
        .status()
        .with_context(|| format!("failed to start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` silently, capturing its output; fails only if it cannot be started.
pub fn capture(cmd: &mut Command) -> Result<Output> {
    cmd.output()
        .with_context(|| format!("failed to start `{}`", display(cmd)))
}

/// Runs `cmd` silently and returns its stdout, failing on a non-zero exit status.
pub fn stdout_of(cmd: &mut Command) -> Result<String> {
    let output = capture(cmd)?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            display(cmd),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Builds a command from a program and arguments.
pub fn command<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let mut cmd = Command::new(program);
    cmd.args(args.into_iter().map(Into::into));
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_special_arguments() {
        let mut cmd = command("cargo", ["clippy", "--", "-D", "warnings"]);
        cmd.env("RUSTFLAGS", r#"--cfg bpf_target_arch="x86_64""#);
        assert_eq!(
            display(&cmd),
            r#"RUSTFLAGS='--cfg bpf_target_arch="x86_64"' cargo clippy -- -D warnings"#
        );
    }

    #[test]
    fn display_shows_directory() {
        let mut cmd = command("cargo", ["fmt"]);
        cmd.current_dir("/w/tracer-ebpf");
        assert_eq!(display(&cmd), "(cd /w/tracer-ebpf && cargo fmt)");
    }

    #[test]
    fn quote_escapes_single_quotes() {
        assert_eq!(quote(OsStr::new("it's")), r"'it'\''s'");
        assert_eq!(quote(OsStr::new("")), "''");
        assert_eq!(quote(OsStr::new("--test-threads=1")), "--test-threads=1");
    }

    #[test]
    fn workspace_root_contains_xtask() {
        let root = workspace_root().expect("root");
        assert!(root.join("xtask").join("Cargo.toml").is_file());
    }
}
