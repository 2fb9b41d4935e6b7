//! Many idle network namespaces at once (a node with hundreds of pods): created with one
//! `ip -batch`, each pair joined by a veth made directly inside them (nothing appears in the
//! root namespace), all deleted on drop, on panic too.

use std::{
    io::Write as _,
    process::{Command, Stdio},
};

/// `count` idle namespaces `trc-crowd-<pid>-<n>`, existing for the life of this value.
pub struct Crowd {
    pub names: Vec<String>,
}

/// Runs `ip OPTIONS -batch -` with `lines`; panics (after printing ip's complaint) when it fails.
fn ip_batch(options: &[&str], lines: &str, must_work: bool) {
    let mut child = Command::new("ip")
        .args(options)
        .args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning ip -batch");
    child
        .stdin
        .take()
        .expect("ip stdin")
        .write_all(lines.as_bytes())
        .expect("writing the batch");
    let out = child.wait_with_output().expect("waiting for ip -batch");
    assert!(
        out.status.success() || !must_work,
        "ip -batch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Crowd {
    /// Creates `count` namespaces (even `count`: a veth joins each two).
    pub fn new(count: usize) -> Crowd {
        let pid = std::process::id();
        let names: Vec<String> = (0..count).map(|n| format!("trc-crowd-{pid}-{n}")).collect();
        // The guard first: whatever was made is deleted even when the batch fails half-way.
        let crowd = Crowd { names };
        let mut batch = String::new();
        for name in &crowd.names {
            batch.push_str(&format!("netns add {name}\n"));
        }
        for (i, pair) in crowd.names.chunks(2).enumerate() {
            if let [a, b] = pair {
                batch.push_str(&format!(
                    "link add cr{i}a netns {a} type veth peer name cr{i}b netns {b}\n"
                ));
            }
        }
        ip_batch(&[], &batch, true);
        // An address and the link up on each end (198.19.0.0/16, inside 198.18.0.0/15): a
        // connected route in every namespace, as a pod has.
        for (i, pair) in crowd.names.chunks(2).enumerate() {
            if pair.len() < 2 {
                continue;
            }
            for (end, name) in pair.iter().enumerate() {
                let side = if end == 0 { 'a' } else { 'b' };
                let host = (i % 64) * 4 + 1 + end;
                let lines = format!(
                    "addr add 198.19.{}.{host}/30 dev cr{i}{side}\nlink set cr{i}{side} up\n",
                    i / 64
                );
                ip_batch(&["-n", name], &lines, true);
            }
        }
        // The kernel's link watch brings a veth's carrier up up to a second later, and the
        // IPv6 link-local routes follow it: let them settle, so the namespaces are idle.
        std::thread::sleep(std::time::Duration::from_secs(2));
        crowd
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        let batch: String = self
            .names
            .iter()
            .map(|name| format!("netns del {name}\n"))
            .collect();
        // -force: a name that was never made does not stop the rest.
        ip_batch(&[], &batch, false);
    }
}
