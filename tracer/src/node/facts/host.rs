//! The host's tunables: the runbook's sysctls (from `/proc/sys`) and each queue's RPS/XPS mask
//! (from `/sys/class/net`). Reads only: it must never write a sysctl or a mask.

use std::{collections::BTreeMap, path::Path};

use crate::node::evidence::QueueMask;

/// The sysctls the runbook names.
pub(crate) const SYSCTLS: [&str; 12] = [
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.core.netdev_max_backlog",
    "net.core.netdev_budget",
    "net.core.netdev_budget_usecs",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.ipv4.tcp_syncookies",
    "net.netfilter.nf_conntrack_max",
    "net.ipv4.ip_forward",
];

/// The sysctls present under `proc_root/sys`, values trimmed with whitespace runs made one space.
pub(crate) fn sysctls(proc_root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in SYSCTLS {
        let path = proc_root.join("sys").join(name.replace('.', "/"));
        if let Ok(bytes) = std::fs::read(&path) {
            let text = String::from_utf8_lossy(&bytes);
            out.insert(
                name.to_owned(),
                text.split_whitespace().collect::<Vec<_>>().join(" "),
            );
        }
    }
    out
}

/// `rx-12` → (0, 12), `tx-3` → (1, 3): the order masks are listed in.
fn queue_order(queue: &str) -> (u8, u64, String) {
    let (side, number) = queue.split_once('-').unwrap_or((queue, ""));
    let side = match side {
        "rx" => 0,
        "tx" => 1,
        _ => 2,
    };
    (side, number.parse().unwrap_or(u64::MAX), queue.to_owned())
}

/// RPS masks of `rx-*` and XPS masks of `tx-*` queues of every interface under
/// `sys_root/class/net`; unreadable masks are skipped, an unreadable folder is an error.
pub(crate) fn queue_masks(sys_root: &Path) -> Result<Vec<QueueMask>, String> {
    let class = sys_root.join("class/net");
    let entries = std::fs::read_dir(&class)
        .map_err(|e| format!("Queue masks could not be read: {} ({e}).", class.display()))?;
    let mut masks = Vec::new();
    for entry in entries.flatten() {
        let dev = entry.file_name().to_string_lossy().into_owned();
        let Ok(queues) = std::fs::read_dir(entry.path().join("queues")) else {
            continue;
        };
        for queue in queues.flatten() {
            let name = queue.file_name().to_string_lossy().into_owned();
            let (file, kind) = if name.starts_with("rx-") {
                ("rps_cpus", "rps")
            } else if name.starts_with("tx-") {
                ("xps_cpus", "xps")
            } else {
                continue;
            };
            if let Ok(bytes) = std::fs::read(queue.path().join(file)) {
                masks.push(QueueMask {
                    dev: dev.clone(),
                    queue: name,
                    kind: kind.to_owned(),
                    mask: String::from_utf8_lossy(&bytes).trim().to_owned(),
                });
            }
        }
    }
    masks.sort_by_cached_key(|m| (m.dev.clone(), queue_order(&m.queue)));
    Ok(masks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_sort_numerically() {
        let mut q = vec!["rx-10", "tx-0", "rx-2", "rx-x"];
        q.sort_by_key(|s| queue_order(s));
        assert_eq!(q, vec!["rx-2", "rx-10", "rx-x", "tx-0"]);
    }

    #[test]
    fn missing_roots_are_absent_or_an_error() {
        assert!(sysctls(Path::new("/nonexistent")).is_empty());
        assert!(queue_masks(Path::new("/nonexistent")).is_err());
    }
}
