//! Network namespaces on the node: finding every one (the host's, each pod's, `ip netns` ones)
//! and running a read-only closure inside one on a thread of its own.
//! It never creates, changes or deletes a namespace.

use std::{
    collections::BTreeMap,
    fs::File,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, Context as _, Result};
use serde::{Deserialize, Serialize};

/// One network namespace and a path that opens it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsHandle {
    /// Inode of the namespace (what the kernel programs record).
    pub inode: u32,
    /// For people: `host`, `netns NAME`, or `pid PID (COMM)`.
    pub label: String,
    /// `/proc/PID/ns/net` or `/run/netns/NAME`.
    pub path: PathBuf,
    /// True for the namespace of PID 1.
    pub is_host: bool,
}

fn inode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| u32::try_from(m.ino()).ok())
}

/// Every network namespace reachable through `proc_root` (normally `/proc`) and `run_netns`
/// (normally `/run/netns`), the host's first, each once.
pub fn enumerate(proc_root: &Path, run_netns: &Path) -> Vec<NetnsHandle> {
    // PID 1's namespace is the host's; where PID 1 cannot be inspected (some sandboxes refuse
    // it even to root), the tracer's own namespace stands in: it runs with the host network.
    let host_inode =
        inode_of(&proc_root.join("1/ns/net")).or_else(|| inode_of(&proc_root.join("self/ns/net")));
    let mut found: BTreeMap<u32, NetnsHandle> = BTreeMap::new();
    // Named namespaces first: their names are the best labels.
    if let Ok(entries) = std::fs::read_dir(run_netns) {
        for entry in entries.flatten() {
            let path = entry.path();
            if let Some(inode) = inode_of(&path) {
                let name = entry.file_name().to_string_lossy().into_owned();
                found.entry(inode).or_insert(NetnsHandle {
                    inode,
                    label: format!("netns {name}"),
                    path,
                    is_host: Some(inode) == host_inode,
                });
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(proc_root) {
        let mut pids: Vec<u32> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect();
        pids.sort_unstable();
        for pid in pids {
            let path = proc_root.join(format!("{pid}/ns/net"));
            let Some(inode) = inode_of(&path) else {
                continue;
            };
            if found.contains_key(&inode) {
                continue;
            }
            let is_host = Some(inode) == host_inode;
            let label = if is_host {
                "host".to_owned()
            } else {
                let comm = std::fs::read_to_string(proc_root.join(format!("{pid}/comm")))
                    .map(|c| c.trim().to_owned())
                    .unwrap_or_default();
                format!("pid {pid} ({comm})")
            };
            found.insert(
                inode,
                NetnsHandle {
                    inode,
                    label,
                    path,
                    is_host,
                },
            );
        }
    }
    let mut all: Vec<NetnsHandle> = found.into_values().collect();
    for ns in &mut all {
        if ns.is_host {
            ns.label = "host".to_owned();
        }
    }
    all.sort_by_key(|n| (!n.is_host, n.inode));
    all
}

/// Runs `f` on a new thread that has entered the namespace at `path`, and returns its result.
/// The calling thread's namespace is untouched.
pub fn in_netns<R: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let handle = std::thread::spawn(move || -> Result<R> {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .context("entering the network namespace")?;
        Ok(f())
    });
    handle
        .join()
        .map_err(|_| anyhow!("reader thread panicked in {}", path.display()))?
        .with_context(|| format!("namespace {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn enumerate_finds_the_host_namespace_first() {
        let all = enumerate(Path::new("/proc"), Path::new("/run/netns"));
        if all.is_empty() {
            eprintln!("skipped: /proc/*/ns/net not readable here");
            return;
        }
        let own = inode_of(Path::new("/proc/self/ns/net"));
        assert!(all.iter().any(|n| Some(n.inode) == own));
        if inode_of(Path::new("/proc/1/ns/net")).is_some() {
            assert!(all[0].is_host);
            assert_eq!(all[0].label, "host");
        }
        let mut inodes: Vec<u32> = all.iter().map(|n| n.inode).collect();
        inodes.dedup();
        assert_eq!(inodes.len(), all.len(), "each namespace once");
    }

    #[test]
    fn enumerate_on_an_empty_tree_is_empty() {
        let dir = std::env::temp_dir().join(format!("trc-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(enumerate(&dir, &dir.join("nope")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
