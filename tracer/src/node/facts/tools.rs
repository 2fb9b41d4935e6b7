//! Finding and running the external listing tools (`nft -j list ruleset`, `iptables-legacy-save -c`)
//! with a time limit. Only listing commands go through here: it must never run anything that changes the node.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// How long one listing may take before it is abandoned.
const TIME_LIMIT: Duration = Duration::from_secs(10);

/// What running a listing tool gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolOutput {
    /// The binary is not installed: not an error.
    Missing,
    /// It ran and failed (or could not be started): why, in a few words.
    Failed(String),
    /// Its standard output.
    Output(String),
}

/// Folders searched after `PATH` (root's tools live in `sbin`, which a user's `PATH` may lack).
const EXTRA_DIRS: [&str; 5] = ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"];

/// The executable called `name` in `PATH` or the usual system folders.
pub(crate) fn find(name: &str) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_owned()
}

fn drain(mut from: impl std::io::Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut out = Vec::new();
        // A read error leaves what was read so far; the exit status tells the rest.
        let _ = from.read_to_end(&mut out);
        out
    })
}

/// Runs `program args` in the calling thread's network namespace (a child inherits the namespace
/// of the thread that forks it) and returns its output. `program` must be a listing command.
pub(crate) fn run(program: &Path, args: &[&str]) -> ToolOutput {
    let spawned = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return ToolOutput::Missing,
        Err(e) => return ToolOutput::Failed(format!("could not be started ({e})")),
    };
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let began = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if began.elapsed() >= TIME_LIMIT => {
                // Our own child, by its handle.
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("did not finish within {} s", TIME_LIMIT.as_secs()));
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => break Err(format!("could not be waited for ({e})")),
        }
    };
    let collect = |h: Option<thread::JoinHandle<Vec<u8>>>| -> String {
        h.and_then(|h| h.join().ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let out = collect(stdout);
    let err = collect(stderr);
    match status {
        Err(why) => ToolOutput::Failed(why),
        Ok(status) if status.success() => ToolOutput::Output(out),
        Ok(status) => {
            let why = first_line(&err);
            let code = status
                .code()
                .map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"));
            if why.is_empty() {
                ToolOutput::Failed(format!("exited with {code}"))
            } else {
                ToolOutput::Failed(format!("exited with {code}: {why}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_is_missing_not_failed() {
        assert_eq!(find("trc-no-such-tool-here"), None);
        assert_eq!(
            run(Path::new("/nonexistent/trc-no-such-tool"), &[]),
            ToolOutput::Missing
        );
    }

    #[test]
    fn output_and_failure_are_told_apart() {
        let Some(sh) = find("sh") else {
            eprintln!("skipped: no sh");
            return;
        };
        assert_eq!(
            run(&sh, &["-c", "echo listed"]),
            ToolOutput::Output("listed\n".to_owned())
        );
        assert_eq!(
            run(&sh, &["-c", "echo 'first\nsecond' >&2; exit 3"]),
            ToolOutput::Failed("exited with status 3: first".to_owned())
        );
    }
}
