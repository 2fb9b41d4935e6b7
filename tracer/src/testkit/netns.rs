//! Test support: a network namespace made with `ip netns add` and deleted on drop (also when the
//! test fails). Compiled for unit tests only; integration tests have `tests/lab`.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

pub struct NetnsGuard {
    pub name: String,
}

impl NetnsGuard {
    /// Creates the namespace; None (after saying why) when `ip netns add` fails.
    pub fn add(name: &str) -> Option<Self> {
        let status = Command::new("ip")
            .args(["netns", "add", name])
            .stderr(Stdio::inherit())
            .status();
        match status {
            Ok(s) if s.success() => Some(Self {
                name: name.to_owned(),
            }),
            other => {
                eprintln!("skipped: `ip netns add {name}` failed: {other:?}");
                None
            }
        }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `TOOL -n NAME ARGS` (`ip`, `tc`); true when it succeeded.
    pub fn run(&self, tool: &str, args: &[&str]) -> bool {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        match Command::new(tool).args(&all).output() {
            Ok(o) if o.status.success() => true,
            Ok(o) => {
                eprintln!(
                    "`{tool} {}` failed: {}",
                    all.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                false
            }
            Err(err) => {
                eprintln!("`{tool}` cannot run: {err}");
                false
            }
        }
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}
