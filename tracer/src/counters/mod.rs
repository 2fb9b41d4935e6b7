//! Every counter of the node at one instant ([`CounterSample`]): per-namespace SNMP/conntrack/
//! interface counters, NIC driver stats, softnet, softirqs, IRQs. Read-only: no writes/mounts/processes.

mod ethtool;
mod host;
pub mod parse;
mod qdisc;

use std::{
    io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

pub use parse::{
    parse_ethtool_s_text, parse_interrupts, parse_nf_conntrack_stat, parse_proc_net_dev,
    parse_snmp, parse_softirqs, parse_softnet, SnmpGroups, PROC_NET_DEV_COLUMNS,
};

use self::host::HostExtras;
use crate::{
    evidence::{Conntrack, CounterSample, IfaceCounters, NetnsCounters},
    netns,
};

/// Where to read from: the real node, or a recorded tree for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSource {
    /// `/proc`
    pub proc_root: PathBuf,
    /// `/sys`
    pub sys_root: PathBuf,
    /// `/run/netns`
    pub run_netns: PathBuf,
    /// True: enter namespaces with setns and use ioctls; false: fixture mode, read files only
    /// (and only the host namespace, from `proc_root/net/…`).
    pub live: bool,
}

/// Where one namespace's files are, as the thread reading them sees them.
#[derive(Debug, Clone)]
struct NsPaths {
    /// `/proc/thread-self/net` (live) or `ROOT/proc/net` (fixture).
    net: PathBuf,
    /// `/proc/sys/net/netfilter` (reflects the reading thread's namespace).
    netfilter: PathBuf,
}

fn read_text(path: &Path, errors: &mut Vec<String>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(err) => {
            errors.push(format!("cannot read {}: {err}", path.display()));
            None
        }
    }
}

/// A file that is absent when a module is not loaded: `Ok(None)` then.
fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

fn read_conntrack(paths: &NsPaths, errors: &mut Vec<String>) -> Option<Conntrack> {
    let count_path = paths.netfilter.join("nf_conntrack_count");
    let count_text = match read_optional(&count_path) {
        Ok(Some(text)) => text,
        Ok(None) => return None,
        Err(err) => {
            errors.push(format!("cannot read {}: {err}", count_path.display()));
            return None;
        }
    };
    let Some(count) = parse::parse_single_u64(&count_text) else {
        errors.push(format!(
            "{} does not hold a number: {:?}",
            count_path.display(),
            count_text.trim()
        ));
        return None;
    };
    let max_path = paths.netfilter.join("nf_conntrack_max");
    let max = match read_optional(&max_path) {
        Ok(Some(text)) => parse::parse_single_u64(&text).unwrap_or_else(|| {
            errors.push(format!("{} does not hold a number", max_path.display()));
            0
        }),
        Ok(None) => {
            errors.push(format!("{} is missing", max_path.display()));
            0
        }
        Err(err) => {
            errors.push(format!("cannot read {}: {err}", max_path.display()));
            0
        }
    };
    let stat_path = paths.net.join("stat/nf_conntrack");
    let stats = match read_optional(&stat_path) {
        Ok(Some(text)) => parse_nf_conntrack_stat(&text),
        Ok(None) => Default::default(),
        Err(err) => {
            errors.push(format!("cannot read {}: {err}", stat_path.display()));
            Default::default()
        }
    };
    Some(Conntrack { count, max, stats })
}

/// Every file of one namespace, read by the calling thread (which is inside that namespace).
/// Identity fields (inode, label, is_host) are left for the caller.
fn read_namespace(
    paths: &NsPaths,
    host: Option<&HostExtras>,
    qdiscs: &qdisc::QdiscSource,
) -> (NetnsCounters, Vec<String>) {
    let mut errors = Vec::new();
    let mut counters = NetnsCounters::default();
    for file in ["snmp", "netstat"] {
        let path = paths.net.join(file);
        if let Some(text) = read_text(&path, &mut errors) {
            let groups = parse_snmp(&text);
            if groups.is_empty() {
                errors.push(format!("{} has no counters that parse", path.display()));
            }
            for (group, values) in groups {
                counters.snmp.entry(group).or_default().extend(values);
            }
        }
    }
    counters.conntrack = read_conntrack(paths, &mut errors);
    let dev_path = paths.net.join("dev");
    if let Some(text) = read_text(&dev_path, &mut errors) {
        counters.interfaces = parse_proc_net_dev(&text)
            .into_iter()
            .map(|(name, stats)| {
                let iface = IfaceCounters {
                    stats,
                    ..IfaceCounters::default()
                };
                (name, iface)
            })
            .collect();
    }
    if let Some(extras) = host {
        host::enrich(&mut counters.interfaces, extras, &mut errors);
    }
    qdisc::fill(&mut counters.interfaces, qdiscs, &mut errors);
    (counters, errors)
}

/// Inode of the initial network namespace, fixed since Linux 6.18 (`PROC_NET_INIT_INO`). Other
/// namespaces get dynamic numbers from 0xF0000000 up, so this one can only be the host's.
const PROC_NET_INIT_INO: u32 = 0xEFFF_FFF9;

/// When PID 1's namespace could not be read (`/proc/1/ns/net` denied in some sandboxes), the
/// namespace with the initial namespace's fixed inode is the host.
fn mark_init_net_as_host(handles: &mut [netns::NetnsHandle]) {
    if handles.iter().any(|h| h.is_host) {
        return;
    }
    if let Some(init) = handles.iter_mut().find(|h| h.inode == PROC_NET_INIT_INO) {
        init.is_host = true;
        init.label = "host".to_owned();
    }
}

fn inode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| u32::try_from(m.ino()).ok())
}

impl CounterSource {
    /// The real node: `/proc`, `/sys`, `/run/netns`, namespaces entered with setns.
    pub fn live() -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
            run_netns: PathBuf::from("/run/netns"),
            live: true,
        }
    }

    /// A recorded tree: `root/proc`, `root/sys`, `root/run/netns`; files only.
    pub fn fixture(root: &Path) -> Self {
        Self {
            proc_root: root.join("proc"),
            sys_root: root.join("sys"),
            run_netns: root.join("run/netns"),
            live: false,
        }
    }

    fn host_extras(&self) -> HostExtras {
        HostExtras {
            sys_root: self.sys_root.clone(),
            live: self.live,
        }
    }

    /// One sample of every counter. `at_ms` is passed in (no clock is read). Never fails as a
    /// whole: what cannot be read goes to `CounterSample::errors`, one sentence each.
    pub fn sample(&self, at_ms: u64) -> CounterSample {
        let mut sample = CounterSample {
            at_ms,
            ..CounterSample::default()
        };
        sample.netns = if self.live {
            self.live_namespaces(&mut sample.errors)
        } else {
            self.fixture_host(&mut sample.errors)
        };
        let softnet_path = self.proc_root.join("net/softnet_stat");
        if let Some(text) = read_text(&softnet_path, &mut sample.errors) {
            sample.softnet = parse_softnet(&text);
            if sample.softnet.is_empty() {
                sample
                    .errors
                    .push(format!("{} has no rows that parse", softnet_path.display()));
            }
        }
        let softirqs_path = self.proc_root.join("softirqs");
        if let Some(text) = read_text(&softirqs_path, &mut sample.errors) {
            sample.softirqs = parse_softirqs(&text);
            if sample.softirqs.is_empty() {
                sample.errors.push(format!(
                    "{} has no rows that parse",
                    softirqs_path.display()
                ));
            }
        }
        let interrupts_path = self.proc_root.join("interrupts");
        if let Some(text) = read_text(&interrupts_path, &mut sample.errors) {
            sample.interrupts = parse_interrupts(&text);
            if sample.interrupts.is_empty() {
                sample.errors.push(format!(
                    "{} has no rows that parse",
                    interrupts_path.display()
                ));
            }
        }
        sample
    }

    /// Fixture mode: the host namespace only, from `proc_root/net/…`.
    fn fixture_host(&self, errors: &mut Vec<String>) -> Vec<NetnsCounters> {
        let paths = NsPaths {
            net: self.proc_root.join("net"),
            netfilter: self.proc_root.join("sys/net/netfilter"),
        };
        let qdiscs = qdisc::QdiscSource::new(self.live, &self.sys_root);
        let (mut counters, errs) = read_namespace(&paths, Some(&self.host_extras()), &qdiscs);
        counters.inode = 0;
        counters.label = "host".to_owned();
        counters.is_host = true;
        errors.extend(errs.into_iter().map(|e| format!("host: {e}")));
        vec![counters]
    }

    /// Live mode: every namespace, each read by one thread inside it (the calling thread's own
    /// namespace is read in place).
    fn live_namespaces(&self, errors: &mut Vec<String>) -> Vec<NetnsCounters> {
        let mut handles = netns::enumerate(&self.proc_root, &self.run_netns);
        mark_init_net_as_host(&mut handles);
        if handles.is_empty() {
            errors.push(format!(
                "no network namespace found under {} or {}",
                self.proc_root.display(),
                self.run_netns.display()
            ));
        } else if !handles.iter().any(|h| h.is_host) {
            errors.push(format!(
                "the host namespace ({}) is not readable, so host counters are missing",
                self.proc_root.join("1/ns/net").display()
            ));
        }
        let own = inode_of(&self.proc_root.join("thread-self/ns/net"));
        let mut out = Vec::with_capacity(handles.len());
        for handle in handles {
            let paths = NsPaths {
                net: self.proc_root.join("thread-self/net"),
                netfilter: self.proc_root.join("sys/net/netfilter"),
            };
            let extras = handle.is_host.then(|| self.host_extras());
            let qdiscs = qdisc::QdiscSource::new(self.live, &self.sys_root);
            let result = if own == Some(handle.inode) {
                Ok(read_namespace(&paths, extras.as_ref(), &qdiscs))
            } else {
                netns::in_netns(&handle.path, move || {
                    read_namespace(&paths, extras.as_ref(), &qdiscs)
                })
            };
            match result {
                Ok((mut counters, errs)) => {
                    counters.inode = handle.inode;
                    counters.is_host = handle.is_host;
                    errors.extend(errs.into_iter().map(|e| format!("{}: {e}", handle.label)));
                    counters.label = handle.label;
                    out.push(counters);
                }
                Err(err) => errors.push(format!(
                    "{}: cannot read its counters ({}): {err:#}",
                    handle.label,
                    handle.path.display()
                )),
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
