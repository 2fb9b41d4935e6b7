//! Which policy/CNI engines and irqbalance run on the node, from `/proc/*/comm` and
//! `/proc/*/cmdline`, and from firewall chain names. Reads only: never signals or changes a process.

use std::{collections::BTreeSet, path::Path};

/// Process names (comm or `argv[0]` base name) and the engine each one means.
const PROCESSES: [(&str, &str); 7] = [
    ("calico-node", "calico"),
    ("cilium-agent", "cilium"),
    ("aws-network-policy-agent", "aws-network-policy-agent"),
    ("network-policy-agent", "aws-network-policy-agent"),
    ("kube-proxy", "kube-proxy"),
    ("aws-k8s-agent", "aws-node"),
    ("aws-node", "aws-node"),
];

/// The kernel keeps 15 bytes of a command name (`TASK_COMM_LEN` - 1).
const COMM_MAX: usize = 15;

/// What the process table shows.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Processes {
    pub engines: BTreeSet<String>,
    pub irqbalance: bool,
}

/// `comm` is `name`, or `name` cut to the kernel's 15 bytes.
fn comm_is(comm: &str, name: &str) -> bool {
    comm == name || (comm.len() == COMM_MAX && name.starts_with(comm))
}

/// Engines and irqbalance among the processes under `proc_root` (numeric folders only; processes
/// that vanish or hide are skipped).
pub(crate) fn scan(proc_root: &Path) -> Processes {
    let mut found = Processes::default();
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = entry.path();
        let comm = std::fs::read(dir.join("comm"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .trim_end_matches('\n')
                    .to_owned()
            })
            .unwrap_or_default();
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or(&[]);
        let argv0 = String::from_utf8_lossy(argv0);
        let program = argv0.rsplit('/').next().unwrap_or("");
        if comm == "irqbalance" {
            found.irqbalance = true;
        }
        for (process, engine) in PROCESSES {
            if (!comm.is_empty() && comm_is(&comm, process)) || program == process {
                found.engines.insert(engine.to_owned());
            }
        }
    }
    found
}

/// Engines whose chains (or tables) are in the firewall: `KUBE-NWPLCY…`/`KUBE-SERVICES` and an
/// nftables table `kube-proxy` → kube-proxy, `cali-…` → calico, `CILIUM_…` → cilium.
pub(crate) fn engines_from_firewall(chains: &[String], tables: &[String]) -> BTreeSet<String> {
    let mut engines = BTreeSet::new();
    for chain in chains {
        if chain.starts_with("KUBE-NWPLCY") || chain == "KUBE-SERVICES" {
            engines.insert("kube-proxy".to_owned());
        } else if chain.starts_with("cali-") {
            engines.insert("calico".to_owned());
        } else if chain.starts_with("CILIUM_") {
            engines.insert("cilium".to_owned());
        }
    }
    if tables.iter().any(|t| t == "kube-proxy") {
        engines.insert("kube-proxy".to_owned());
    }
    engines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_comm_names_match() {
        assert!(comm_is("aws-network-pol", "aws-network-policy-agent"));
        assert!(comm_is("kube-proxy", "kube-proxy"));
        assert!(!comm_is("kube-prox", "kube-proxy"));
    }

    #[test]
    fn chain_names_betray_engines() {
        let e = engines_from_firewall(
            &[
                "cali-fw-x".into(),
                "CILIUM_INPUT".into(),
                "KUBE-NWPLCY-abc".into(),
            ],
            &[],
        );
        assert_eq!(
            e.into_iter().collect::<Vec<_>>(),
            vec!["calico", "cilium", "kube-proxy"]
        );
    }

    #[test]
    fn a_missing_proc_is_empty() {
        assert_eq!(scan(Path::new("/nonexistent/proc")), Processes::default());
    }
}
