//! Every counter of the node at one instant ([`CounterSample`]): per-namespace SNMP/conntrack/
//! interface counters, NIC driver stats, softnet, softirqs, IRQs. Read-only: no writes/mounts/processes.
//!
//! Cost. A live sample is taken once a second, and a node has one namespace per pod, so the
//! design keeps the cost of an idle namespace near nothing; `cargo xtask bench` (step
//! `counters`) measures it with 0, 100 and 250 namespaces.
//! - Sampling by activity ([`schedule`]): the live tools read every second only the host, the
//!   namespace in scope and the namespaces where the kernel probes counted a drop, a
//!   retransmission or a reset; the others once every 10 s, spread over the seconds, their last
//!   reading carried in between (deltas stay exact: every value is a real reading). A window's
//!   first and last samples read every namespace ([`CounterSource::sample`]).
//! - one reading thread per sample enters each namespace in turn (`setns` on a file opened once
//!   and kept open while the namespace exists, a few µs), instead of a thread per namespace:
//!   the thread's creation and the hand-back to the caller cost more than reading an idle
//!   namespace, and under load each hand-back waits for a CPU;
//! - the namespaces are enumerated by a [`netns::Scanner`] kept in the source: `/proc` is listed
//!   every sample, but only new PIDs' `ns/net` are looked at (all of them every 10 s);
//! - a namespace's counter files and netlink socket are opened once and kept open while it
//!   exists ([`kept`]): each sample `pread`s them from offset 0 (one call into a buffer with
//!   room for the file; std's `read_to_string` stats, seeks and probes first, as procfs files
//!   say they are empty);
//! - every interface's standard statistics come from one RTM_GETLINK dump per namespace
//!   (`IFLA_STATS64`, see [`links`]) instead of the kernel formatting `/proc/net/dev` and this
//!   parsing it (and, for the host, instead of 24 sysfs files per interface); the qdisc
//!   counters' RTM_GETQDISC dump goes over the same socket and takes the names from it.
//!
//! What an idle namespace's read costs (~0.1 ms on the development VM, session 12's profile)
//! is ~40 % the kernel formatting `snmp` and `netstat`, ~25 % the link and qdisc dumps, ~10 %
//! parsing into [`CounterSet`]s; so what saves is reading less often ([`schedule`]).
//!
//! [`CounterSet`]: crate::node::counterset::CounterSet

mod ethtool;
mod host;
mod kept;
pub mod links;
pub mod parse;
mod qdisc;
pub mod schedule;

use std::{
    collections::{btree_map::Entry, HashMap},
    io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

pub use parse::{
    parse_ethtool_s_text, parse_interrupts, parse_nf_conntrack_stat, parse_proc_net_dev,
    parse_snmp, parse_snmp_sets, parse_softirqs, parse_softnet, SnmpGroups, PROC_NET_DEV_COLUMNS,
};

pub use self::schedule::SamplePlan;
use self::{host::HostExtras, kept::KeptFiles, schedule::Schedule};
use crate::{
    node::evidence::{Conntrack, CounterSample, IfaceCounters, NetnsCounters},
    node::netns,
    node::rtnetlink::Dumper,
    node::shared::Shared,
};

/// Raises the soft descriptor limit once (see [`kept`]), for other readers that keep
/// descriptors per namespace (the facts' sockets) and may start before the counters do.
pub(crate) fn raise_descriptor_limit() {
    kept::budget();
}

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
    /// What live samples remember between calls (the namespace scanner).
    remembered: Remembered,
}

/// What a source remembers between samples: the PIDs' namespaces (see [`netns::Scanner`]), the
/// namespace files kept open, and which namespace to read when (see [`schedule`]). Not part of
/// a source's identity: equal sources may remember different things, and a clone starts afresh
/// (so two clones never wait for each other).
#[derive(Default)]
struct Remembered(Mutex<Memory>);

#[derive(Default)]
struct Memory {
    scanner: netns::Scanner,
    /// Namespace files by inode, open since the namespace was first read (closed when it is no
    /// longer found: a kept file would keep a deleted namespace alive).
    open: HashMap<u32, Arc<std::fs::File>>,
    /// Each namespace's counter files and netlink socket, by inode (see [`kept`]); dropped
    /// with the namespace like `open`.
    kept: HashMap<u32, KeptFiles>,
    schedule: Schedule,
}

/// Not the remembered PIDs (thousands on a node): a source prints as its paths.
impl std::fmt::Debug for Remembered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Remembered")
    }
}

impl Clone for Remembered {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for Remembered {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Remembered {}

impl Remembered {
    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where one namespace's files are, as the thread reading them sees them.
#[derive(Debug, Clone)]
struct NsPaths {
    /// `/proc/thread-self/net` (live) or `ROOT/proc/net` (fixture).
    net: PathBuf,
    /// `/proc/sys/net/netfilter` (reflects the reading thread's namespace).
    netfilter: PathBuf,
}

/// One file's text, opened, read and closed (see [`KeptFiles::read`]); a sentence in `errors`
/// when it cannot be read.
fn read_text(path: &Path, errors: &mut Vec<String>) -> Option<String> {
    read_kept_text(&mut KeptFiles::transient(), path, errors)
}

/// [`read_text`] through `kept` (the file kept open from an earlier sample, or opened now).
fn read_kept_text(kept: &mut KeptFiles, path: &Path, errors: &mut Vec<String>) -> Option<String> {
    match kept.read(path) {
        Ok(text) => Some(text),
        Err(err) => {
            errors.push(format!("cannot read {}: {err}", path.display()));
            None
        }
    }
}

/// A file that is absent when a module is not loaded: `Ok(None)` then.
fn read_optional(kept: &mut KeptFiles, path: &Path) -> io::Result<Option<String>> {
    match kept.read(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

fn read_conntrack(
    paths: &NsPaths,
    kept: &mut KeptFiles,
    errors: &mut Vec<String>,
) -> Option<Conntrack> {
    let count_path = paths.netfilter.join("nf_conntrack_count");
    let count_text = match read_optional(kept, &count_path) {
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
    let max = match read_optional(kept, &max_path) {
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
    let stats = match read_optional(kept, &stat_path) {
        Ok(Some(text)) => parse_nf_conntrack_stat(&text),
        Ok(None) => Default::default(),
        Err(err) => {
            errors.push(format!("cannot read {}: {err}", stat_path.display()));
            Default::default()
        }
    };
    Some(Conntrack {
        count,
        max,
        stats: stats.into(),
    })
}

/// Every file of one namespace, read by the calling thread (which is inside that namespace).
/// Identity fields (inode, label, is_host) are left for the caller. Files and the netlink
/// socket are read through `kept` (see [`kept`]).
fn read_namespace(
    paths: &NsPaths,
    host: Option<&HostExtras>,
    qdiscs: &qdisc::QdiscSource,
    kept: &mut KeptFiles,
) -> (NetnsCounters, Vec<String>) {
    let mut errors = Vec::new();
    let mut counters = NetnsCounters::default();
    for file in ["snmp", "netstat"] {
        let path = paths.net.join(file);
        if let Some(text) = read_kept_text(kept, &path, &mut errors) {
            let groups = parse_snmp_sets(&text);
            if groups.is_empty() {
                errors.push(format!("{} has no counters that parse", path.display()));
            }
            for (group, values) in groups {
                // A group seen for the first time is built once (the usual case: snmp and
                // netstat have different groups); `extend` rebuilds the set it extends.
                match counters.snmp.entry(group) {
                    Entry::Vacant(entry) => {
                        entry.insert(values);
                    }
                    Entry::Occupied(mut entry) => entry
                        .get_mut()
                        .extend(values.iter().map(|(name, v)| (name.to_owned(), *v))),
                }
            }
        }
    }
    counters.conntrack = read_conntrack(paths, kept, &mut errors);
    let mut dumped = match qdiscs {
        qdisc::QdiscSource::Netlink => dump_links(paths, kept, &mut errors),
        qdisc::QdiscSource::Files(_) => None,
    };
    match &mut dumped {
        Some((_, links)) => {
            counters.interfaces = std::mem::take(&mut links.stats)
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
        None => read_proc_net_dev(paths, &mut counters, &mut errors),
    }
    if let Some(extras) = host {
        host::enrich(
            &mut counters.interfaces,
            extras,
            dumped.is_some(),
            &mut errors,
        );
    }
    let shared = dumped
        .as_mut()
        .map(|(dumper, links)| (dumper, &links.names));
    qdisc::fill(&mut counters.interfaces, qdiscs, shared, &mut errors);
    if let Some((dumper, _)) = dumped {
        kept.give_back(dumper);
    }
    (counters, errors)
}

/// The calling thread's namespace's interfaces over netlink (see [`links`]), and the socket
/// for the qdisc dump; None after one sentence in `errors` when the dump failed. The socket is
/// `kept`'s when it has one (a fresh one when that one fails).
fn dump_links(
    paths: &NsPaths,
    kept: &mut KeptFiles,
    errors: &mut Vec<String>,
) -> Option<(Dumper, links::Links)> {
    let dump = |mut dumper: Dumper| {
        let links = links::read(&mut dumper)?;
        Ok((dumper, links))
    };
    let dumped = match kept.take_dumper().map(dump) {
        Some(Ok(dumped)) => Ok(dumped),
        _ => Dumper::open().and_then(dump),
    };
    match dumped {
        Ok(dumped) => Some(dumped),
        Err(err) => {
            errors.push(format!(
                "interface statistics could not be dumped over netlink, so they are read from \
                 {}: {err}",
                paths.net.join("dev").display()
            ));
            None
        }
    }
}

/// The interfaces and their statistics from `/proc/net/dev` (fixtures, or when the netlink
/// dump failed): its 16 columns under sysfs names (see [`PROC_NET_DEV_COLUMNS`]).
fn read_proc_net_dev(paths: &NsPaths, counters: &mut NetnsCounters, errors: &mut Vec<String>) {
    let dev_path = paths.net.join("dev");
    if let Some(text) = read_text(&dev_path, errors) {
        counters.interfaces = parse_proc_net_dev(&text)
            .into_iter()
            .map(|(name, stats)| {
                let iface = IfaceCounters {
                    stats: stats.into(),
                    ..IfaceCounters::default()
                };
                (name, iface)
            })
            .collect();
    }
}

/// Namespaces to read: an open file to enter (none: the caller's own), the handle, and the
/// namespace's kept files.
type Jobs = Vec<(Option<Arc<std::fs::File>>, (netns::NetnsHandle, KeptFiles))>;
/// Namespaces that could not be opened, and why.
type Unopened = Vec<(netns::NetnsHandle, anyhow::Error)>;

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

impl CounterSource {
    /// The real node: `/proc`, `/sys`, `/run/netns`, namespaces entered with setns.
    pub fn live() -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
            run_netns: PathBuf::from("/run/netns"),
            live: true,
            remembered: Remembered::default(),
        }
    }

    /// A recorded tree: `root/proc`, `root/sys`, `root/run/netns`; files only.
    pub fn fixture(root: &Path) -> Self {
        Self {
            proc_root: root.join("proc"),
            sys_root: root.join("sys"),
            run_netns: root.join("run/netns"),
            live: false,
            remembered: Remembered::default(),
        }
    }

    fn host_extras(&self) -> HostExtras {
        HostExtras {
            sys_root: self.sys_root.clone(),
            live: self.live,
        }
    }

    /// One sample of every counter, every namespace read. `at_ms` is passed in (no clock is
    /// read). Never fails as a whole: what cannot be read goes to `CounterSample::errors`, one
    /// sentence each.
    pub fn sample(&self, at_ms: u64) -> CounterSample {
        self.sample_planned(at_ms, &SamplePlan::full())
    }

    /// One sample of every counter, reading the namespaces `plan` makes due (see [`schedule`])
    /// and carrying the last reading of the rest.
    pub fn sample_planned(&self, at_ms: u64, plan: &SamplePlan) -> CounterSample {
        let mut sample = CounterSample {
            at_ms,
            ..CounterSample::default()
        };
        sample.netns = if self.live {
            self.live_namespaces(at_ms, plan, &mut sample.errors)
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
    fn fixture_host(&self, errors: &mut Vec<String>) -> Vec<Shared<NetnsCounters>> {
        let paths = NsPaths {
            net: self.proc_root.join("net"),
            netfilter: self.proc_root.join("sys/net/netfilter"),
        };
        let qdiscs = qdisc::QdiscSource::new(self.live, &self.sys_root);
        let (mut counters, errs) = read_namespace(
            &paths,
            Some(&self.host_extras()),
            &qdiscs,
            &mut KeptFiles::transient(),
        );
        counters.inode = 0;
        counters.label = "host".to_owned();
        counters.is_host = true;
        errors.extend(errs.into_iter().map(|e| format!("host: {e}")));
        vec![counters.into()]
    }

    /// Every namespace now (the scanner's handles, the host marked), with a sentence in
    /// `errors` when none or no host was found.
    fn namespaces(&self, memory: &mut Memory, errors: &mut Vec<String>) -> Vec<netns::NetnsHandle> {
        let mut handles = memory.scanner.scan(&self.proc_root, &self.run_netns);
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
        handles
    }

    /// The namespaces of `due`, opened (kept open from earlier samples, or opened now): the
    /// caller's own namespace with no file (it is read without entering it). `Err` when a
    /// remembered PID's file opened another namespace than the one remembered (that
    /// namespace is left out).
    fn open_due(
        &self,
        memory: &mut Memory,
        handles: Vec<netns::NetnsHandle>,
        due: &std::collections::BTreeSet<u32>,
    ) -> Result<(Jobs, Unopened), (Jobs, Unopened)> {
        let own = netns::inode_of(&self.proc_root.join("thread-self/ns/net"));
        let mut jobs = Vec::with_capacity(due.len());
        let mut unopened = Vec::new();
        let mut moved = false;
        for handle in handles.into_iter().filter(|h| due.contains(&h.inode)) {
            if own == Some(handle.inode) {
                let kept = memory
                    .kept
                    .remove(&handle.inode)
                    .unwrap_or_else(KeptFiles::kept);
                jobs.push((None, (handle, kept)));
                continue;
            }
            if let Some(file) = memory.open.get(&handle.inode) {
                let kept = memory
                    .kept
                    .remove(&handle.inode)
                    .unwrap_or_else(KeptFiles::kept);
                jobs.push((Some(Arc::clone(file)), (handle, kept)));
                continue;
            }
            // Opened here, so the reading thread only enters: a namespace that cannot be opened
            // is reported like one that cannot be entered.
            match std::fs::File::open(&handle.path) {
                Ok(file) => {
                    let opened = file
                        .metadata()
                        .ok()
                        .and_then(|m| u32::try_from(m.ino()).ok());
                    if opened == Some(handle.inode) {
                        let file = Arc::new(file);
                        memory.open.insert(handle.inode, Arc::clone(&file));
                        jobs.push((Some(file), (handle, KeptFiles::kept())));
                    } else {
                        moved = true;
                    }
                }
                Err(err) => unopened.push((handle, anyhow::Error::new(err).context("opening"))),
            }
        }
        if moved {
            Err((jobs, unopened))
        } else {
            Ok((jobs, unopened))
        }
    }

    /// Live mode: the namespaces due (see [`schedule`]), all read by one thread that enters
    /// each in turn (the calling thread's own namespace first, without entering it), and the
    /// last reading of the others. See the module docs for why one thread.
    fn live_namespaces(
        &self,
        at_ms: u64,
        plan: &SamplePlan,
        errors: &mut Vec<String>,
    ) -> Vec<Shared<NetnsCounters>> {
        let mut memory = self.remembered.memory();
        // The scanner may remember a PID that has since moved to another namespace (rare:
        // setns, unshare, a reused PID); then every PID is looked at again, once.
        // (Only the errors of the attempt used are kept.)
        let mut first_errors = Vec::new();
        let mut handles = self.namespaces(&mut memory, &mut first_errors);
        let mut due = self.plan_due(&mut memory, at_ms, &handles, plan);
        let (jobs, unopened) = match self.open_due(&mut memory, handles.clone(), &due) {
            Ok(opened) => {
                errors.append(&mut first_errors);
                opened
            }
            Err(_) => {
                memory.scanner.forget();
                handles = self.namespaces(&mut memory, errors);
                due = self.plan_due(&mut memory, at_ms, &handles, plan);
                self.open_due(&mut memory, handles.clone(), &due)
                    .unwrap_or_else(|opened| opened)
            }
        };
        let fresh = self.read_jobs(jobs, unopened, &mut memory.kept, errors);
        let known: Vec<u32> = handles.iter().map(|h| h.inode).collect();
        memory.schedule.assemble(at_ms, &known, fresh)
    }

    /// Which of `handles` to read now; closes the kept files of namespaces no longer found.
    fn plan_due(
        &self,
        memory: &mut Memory,
        at_ms: u64,
        handles: &[netns::NetnsHandle],
        plan: &SamplePlan,
    ) -> std::collections::BTreeSet<u32> {
        let known: Vec<u32> = handles.iter().map(|h| h.inode).collect();
        let exists: std::collections::HashSet<u32> = known.iter().copied().collect();
        memory.open.retain(|inode, _| exists.contains(inode));
        memory.kept.retain(|inode, _| exists.contains(inode));
        let host = handles.iter().find(|h| h.is_host).map(|h| h.inode);
        memory.schedule.due(at_ms, &known, host, plan)
    }

    /// Reads the opened namespaces on one thread; their counters by inode, what failed in
    /// `errors`; each namespace's files go back to `kept`.
    fn read_jobs(
        &self,
        jobs: Jobs,
        unopened: Unopened,
        kept: &mut HashMap<u32, KeptFiles>,
        errors: &mut Vec<String>,
    ) -> HashMap<u32, NetnsCounters> {
        let extras = self.host_extras();
        let proc_root = self.proc_root.clone();
        let read = move |(handle, mut files): (netns::NetnsHandle, KeptFiles)| {
            let paths = NsPaths {
                net: proc_root.join("thread-self/net"),
                netfilter: proc_root.join("sys/net/netfilter"),
            };
            let host = handle.is_host.then_some(&extras);
            let result = read_namespace(&paths, host, &qdisc::QdiscSource::Netlink, &mut files);
            (handle, files, result)
        };
        let labels: Vec<(String, PathBuf)> = jobs
            .iter()
            .map(|(_, (h, _))| (h.label.clone(), h.path.clone()))
            .collect();
        let results = match netns::in_each_netns(jobs, read) {
            Ok(results) => results,
            Err(err) => {
                errors.push(format!("no namespace's counters could be read: {err:#}"));
                Vec::new()
            }
        };
        let mut out = HashMap::with_capacity(results.len());
        let failed = unopened.into_iter().map(|(h, err)| (h.label, h.path, err));
        let mut failures: Vec<(String, PathBuf, anyhow::Error)> = failed.collect();
        for (result, (label, path)) in results.into_iter().zip(labels) {
            match result {
                Ok((handle, files, (mut counters, errs))) => {
                    kept.insert(handle.inode, files);
                    counters.inode = handle.inode;
                    counters.is_host = handle.is_host;
                    errors.extend(errs.into_iter().map(|e| format!("{}: {e}", handle.label)));
                    counters.label = handle.label;
                    out.insert(counters.inode, counters);
                }
                Err(err) => failures.push((label, path, err)),
            }
        }
        for (label, path, err) in failures {
            errors.push(format!(
                "{label}: cannot read its counters ({}): {err:#}",
                path.display()
            ));
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
