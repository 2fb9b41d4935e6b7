//! Network namespaces on the node: finding every one (the host's, each pod's, `ip netns` ones)
//! and running a read-only closure inside one, or inside each of many, on a thread of its own.
//! It never creates, changes or deletes a namespace.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs::File,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
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

/// The inode of the file `path` opens (a namespace's inode for `/proc/PID/ns/net` and
/// `/run/netns/NAME`): the one helper the node stage uses for it.
pub(crate) fn inode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| u32::try_from(m.ino()).ok())
}

/// The `ip netns` names of the namespaces in `run_netns` (normally `/run/netns`), by inode;
/// of two names for one namespace, the first in name order.
pub fn ip_netns_names(run_netns: &Path) -> BTreeMap<u32, String> {
    let mut names: Vec<(String, PathBuf)> = std::fs::read_dir(run_netns)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut by_inode = BTreeMap::new();
    for (name, path) in names {
        if let Some(inode) = inode_of(&path) {
            by_inode.entry(inode).or_insert(name);
        }
    }
    by_inode
}

/// How long [`Scanner`] trusts the namespace it remembered for a PID that is still running.
const PID_RESCAN_AFTER: Duration = Duration::from_secs(10);

/// Every network namespace reachable through `proc_root` (normally `/proc`) and `run_netns`
/// (normally `/run/netns`), the host's first, each once.
pub fn enumerate(proc_root: &Path, run_netns: &Path) -> Vec<NetnsHandle> {
    Scanner::default().scan(proc_root, run_netns)
}

/// What [`Scanner`] remembers of one PID.
#[derive(Debug, Clone)]
struct PidNetns {
    inode: u32,
    /// `comm`, read the first time the PID labels a namespace.
    comm: Option<String>,
    /// When the PID was first seen: a young process may still be entering or making its
    /// namespace (fork, then `unshare`/`setns`, as container runtimes do), so it is looked at
    /// again until it is [`PID_SETTLED_AFTER`] old.
    seen: Instant,
}

/// Age after which [`Scanner`] takes a PID's namespace as settled (see [`PidNetns::seen`]).
const PID_SETTLED_AFTER: Duration = Duration::from_secs(3);

/// [`enumerate`] for a caller that asks again and again (the counters, once a second).
///
/// Why: `stat` of `/proc/PID/ns/net` for every PID is most of an enumeration's cost, and it grows
/// with the node's processes (thousands on a Kubernetes node), not its namespaces. A process
/// keeps its namespace nearly always, so the scanner lists `/proc` on every call (a new or gone
/// PID is seen at once) but stats only the PIDs it has not seen in their first seconds; every
/// 10 s, or after [`Scanner::forget`], it stats them all again. So a process that moves to
/// another namespace after its first seconds (`setns`, `unshare`; rare, and a runtime's or
/// `ip netns`' namespaces are in `/run/netns` anyway) is seen there within 10 s; a PID reused for
/// another namespace too (and the counters check each opened file's inode, calling `forget` on a
/// mismatch). `/run/netns` is listed again only when its mtime moved or the mount table
/// changed, and at least every 5 minutes (every 10 s where the mount table cannot be watched;
/// see [`NamedListing`]): at 250 names its listing and a `stat` per name cost more than the
/// rest of a scan. Otherwise the result is what [`enumerate`] gives.
#[derive(Debug, Default)]
pub struct Scanner {
    pids: HashMap<u32, PidNetns>,
    /// When every PID was last stat-ed; None: never, or forgotten.
    full_at: Option<Instant>,
    /// The `/run/netns` listing, reused while the directory is unchanged.
    named: NamedListing,
}

/// How long [`Scanner`] reuses a `/run/netns` listing whose directory looks unchanged, where
/// the mount table cannot be watched (see [`MountWatch`]).
const NAMED_RELIST_AFTER: Duration = Duration::from_secs(10);

/// How long [`Scanner`] reuses a `/run/netns` listing whose directory looks unchanged while
/// the mount table is watched and did not change: a safety net only.
const NAMED_RELIST_WATCHED_AFTER: Duration = Duration::from_secs(300);

/// How old the directory's last change must be for its listing to be reused: `ip netns add`
/// creates the file (the directory's mtime moves) and then mounts the namespace on it (it does
/// not), so a listing taken in between holds the empty file's inode.
const NAMED_SETTLED_AFTER: Duration = Duration::from_secs(2);

/// `/run/netns` as last listed: each name with its path and the inode it opens (the namespace
/// mounted there). Listed again when the directory's mtime moved (a name added or removed), when
/// its last change was too recent to trust ([`NAMED_SETTLED_AFTER`]), when the mount table
/// changed (a namespace mounted over an existing name leaves the mtime alone, but not the mount
/// table; see [`MountWatch`]), and at least every [`NAMED_RELIST_WATCHED_AFTER`] — every
/// [`NAMED_RELIST_AFTER`] where the mount table cannot be watched.
#[derive(Debug, Default)]
struct NamedListing {
    dir: PathBuf,
    entries: Vec<(String, PathBuf, u32)>,
    /// The directory's mtime (seconds, nanoseconds) when it was listed and trusted.
    mtime: Option<(i64, i64)>,
    listed_at: Option<Instant>,
    /// How many times the directory was listed (tests).
    listings: u64,
    /// The mount table's watch, opened before the first listing (None: not yet, or it cannot
    /// be watched: then `watch_tried`).
    watch: Option<MountWatch>,
    watch_tried: bool,
}

impl NamedListing {
    /// The entries of `dir` now (reused or listed again, see the type's docs); `proc_root`'s
    /// `self/mountinfo` is the mount table watched.
    fn current(&mut self, dir: &Path, proc_root: &Path) -> &[(String, PathBuf, u32)] {
        if !self.watch_tried {
            self.watch_tried = true;
            self.watch = MountWatch::open(&proc_root.join("self/mountinfo"));
        }
        // Asked every time: a change is reported once.
        let mounts_changed = self.watch.as_ref().is_none_or(MountWatch::changed);
        let relist_after = if self.watch.is_some() {
            NAMED_RELIST_WATCHED_AFTER
        } else {
            NAMED_RELIST_AFTER
        };
        let meta = std::fs::metadata(dir).ok();
        let mtime = meta.as_ref().map(|m| (m.mtime(), m.mtime_nsec()));
        let fresh = self.dir == dir
            && mtime.is_some()
            && self.mtime == mtime
            && (self.watch.is_none() || !mounts_changed)
            && self.listed_at.is_some_and(|at| at.elapsed() < relist_after);
        if fresh {
            return &self.entries;
        }
        self.listings += 1;
        self.dir = dir.to_path_buf();
        self.listed_at = Some(Instant::now());
        // Trusted only when the last change is old enough (see NAMED_SETTLED_AFTER).
        let settled = meta
            .and_then(|m| m.modified().ok())
            .and_then(|at| at.elapsed().ok())
            .is_some_and(|age| age >= NAMED_SETTLED_AFTER);
        self.mtime = mtime.filter(|_| settled);
        self.entries.clear();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if let Some(inode) = inode_of(&path) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    self.entries.push((name, path, inode));
                }
            }
        }
        &self.entries
    }
}

/// A mount table watched for changes: `/proc/self/mountinfo` polls `POLLPRI` once after each
/// change of the process's mount namespace (a mount or unmount there, or one propagated into
/// it, as `ip netns add` and a container runtime's namespace mounts under `/run/netns` are
/// into a DaemonSet pod's `HostToContainer` mount). Only a procfs file is watched: a fixture's
/// plain file never reports a change.
#[derive(Debug)]
struct MountWatch(File);

impl MountWatch {
    /// `path` (a `mountinfo`) opened to watch; None when it cannot be, or is not procfs.
    fn open(path: &Path) -> Option<Self> {
        use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};
        let file = File::open(path).ok()?;
        let procfs = fstatfs(&file).ok()?.filesystem_type() == PROC_SUPER_MAGIC;
        procfs.then_some(Self(file))
    }

    /// True when the mount table changed since the last call (or since it was opened).
    fn changed(&self) -> bool {
        use std::os::fd::AsRawFd as _;
        let mut poll = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one pollfd of an open descriptor, no wait.
        let rc = unsafe { libc::poll(&raw mut poll, 1, 0) };
        // A failed poll says nothing: take it as a change (a listing costs only time).
        rc < 0 || poll.revents & (libc::POLLPRI | libc::POLLERR) != 0
    }
}

impl Scanner {
    /// The `ip netns` names of the last scan's `/run/netns` listing, as [`ip_netns_names`]
    /// gives them (by inode; of two names for one namespace, the first in name order), without
    /// listing and stat-ing the directory again.
    pub fn netns_names(&self) -> BTreeMap<u32, String> {
        let mut names: Vec<(&str, u32)> = self
            .named
            .entries
            .iter()
            .map(|(name, _, inode)| (name.as_str(), *inode))
            .collect();
        names.sort_unstable();
        let mut by_inode = BTreeMap::new();
        for (name, inode) in names {
            by_inode.entry(inode).or_insert_with(|| name.to_owned());
        }
        by_inode
    }

    /// Forgets every PID, so the next scan stats them all (e.g. when a handle turned out to
    /// open another namespace than the one remembered).
    pub fn forget(&mut self) {
        self.pids.clear();
        self.full_at = None;
    }

    /// Every namespace now, as [`enumerate`] (see the type's docs for what is remembered).
    pub fn scan(&mut self, proc_root: &Path, run_netns: &Path) -> Vec<NetnsHandle> {
        if self
            .full_at
            .is_none_or(|at| at.elapsed() >= PID_RESCAN_AFTER)
        {
            self.pids.clear();
            self.full_at = Some(Instant::now());
        }
        // PID 1's namespace is the host's; where PID 1 cannot be inspected (some sandboxes
        // refuse it even to root), the tracer's own namespace stands in: it runs with the host
        // network.
        let host_inode = inode_of(&proc_root.join("1/ns/net"))
            .or_else(|| inode_of(&proc_root.join("self/ns/net")));
        let mut found: BTreeMap<u32, NetnsHandle> = BTreeMap::new();
        // Named namespaces first: their names are the best labels.
        for (name, path, inode) in self.named.current(run_netns, proc_root) {
            found.entry(*inode).or_insert_with(|| NetnsHandle {
                inode: *inode,
                label: format!("netns {name}"),
                path: path.clone(),
                is_host: Some(*inode) == host_inode,
            });
        }
        let Ok(entries) = std::fs::read_dir(proc_root) else {
            self.pids.clear();
            return finish(found);
        };
        let mut pids: Vec<u32> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect();
        pids.sort_unstable();
        let running: HashSet<u32> = pids.iter().copied().collect();
        self.pids.retain(|pid, _| running.contains(pid));
        for pid in pids {
            let path = proc_root.join(format!("{pid}/ns/net"));
            let known = match self.pids.get_mut(&pid) {
                Some(known) if known.seen.elapsed() >= PID_SETTLED_AFTER => known,
                Some(young) => {
                    let Some(inode) = inode_of(&path) else {
                        continue;
                    };
                    if young.inode != inode {
                        young.inode = inode;
                        young.comm = None;
                    }
                    young
                }
                None => {
                    // Not remembered when unreadable (gone, or refused): asked again next time.
                    let Some(inode) = inode_of(&path) else {
                        continue;
                    };
                    self.pids.entry(pid).or_insert(PidNetns {
                        inode,
                        comm: None,
                        seen: Instant::now(),
                    })
                }
            };
            let inode = known.inode;
            if found.contains_key(&inode) {
                continue;
            }
            let is_host = Some(inode) == host_inode;
            let label = if is_host {
                "host".to_owned()
            } else {
                let comm = known.comm.get_or_insert_with(|| {
                    std::fs::read_to_string(proc_root.join(format!("{pid}/comm")))
                        .map(|c| c.trim().to_owned())
                        .unwrap_or_default()
                });
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
        finish(found)
    }
}

/// The handles in their order: the host first, then by inode.
fn finish(found: BTreeMap<u32, NetnsHandle>) -> Vec<NetnsHandle> {
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

/// Runs `f` on every item of `jobs` on ONE new thread, entering each item's namespace in turn
/// (`setns` on an open namespace file), and returns the results in the order of `jobs`. Items
/// without a file are run in the caller's namespace, first, before the thread enters any other.
/// The calling thread's namespace is untouched; the reading thread ends with the call. A file
/// is anything with a descriptor (`File`, or an `Arc<File>` the caller keeps open).
///
/// Why one thread for all rather than [`in_netns`] for each: a thread's creation, its first
/// allocations and its hand-back cost more than the reading itself for an idle namespace, and
/// `setns` from one namespace to the next is a few microseconds.
pub fn in_each_netns<F, T, R>(
    jobs: Vec<(Option<F>, T)>,
    mut f: impl FnMut(T) -> R + Send + 'static,
) -> Result<Vec<Result<R>>>
where
    F: std::os::fd::AsFd + Send + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    let handle = std::thread::spawn(move || {
        let mut results: Vec<Option<Result<R>>> = jobs.iter().map(|_| None).collect();
        let (here, there): (Vec<_>, Vec<_>) = jobs
            .into_iter()
            .enumerate()
            .partition(|(_, (file, _))| file.is_none());
        for (at, (file, item)) in here.into_iter().chain(there) {
            let result = match file {
                None => Ok(f(item)),
                Some(file) => nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .context("entering the network namespace")
                    .map(|()| f(item)),
            };
            if let Some(slot) = results.get_mut(at) {
                *slot = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(anyhow!("not read"))))
            .collect()
    });
    handle
        .join()
        .map_err(|_| anyhow!("the namespace reader thread panicked"))
}

/// The file `--netns ARG` names: a bare name (no `/`) is an `ip netns` name, `RUN_NETNS/NAME`;
/// anything else is a path as given (`./NAME` for a file in the working directory).
pub fn netns_arg_path(arg: &Path, run_netns: &Path) -> PathBuf {
    let bare = arg
        .to_str()
        .is_some_and(|s| !s.is_empty() && !s.contains('/') && s != "." && s != "..");
    if bare {
        run_netns.join(arg)
    } else {
        arg.to_path_buf()
    }
}

// NS_GET_NSTYPE (linux/nsfs.h): the CLONE_NEW* type of a namespace file.
nix::ioctl_none!(ns_get_nstype, 0xb7, 0x3);

/// The kind of namespace a `CLONE_NEW*` type names, for people.
fn namespace_kind(nstype: libc::c_int) -> &'static str {
    match nstype {
        libc::CLONE_NEWNS => "mount",
        libc::CLONE_NEWUTS => "UTS",
        libc::CLONE_NEWIPC => "IPC",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWPID => "PID",
        libc::CLONE_NEWCGROUP => "cgroup",
        0x80 => "time",
        _ => "non-network",
    }
}

/// What `--netns` accepts, for the end of every refusal.
const NETNS_FORMS: &str = "give a name from `ip netns list`, /run/netns/NAME or /proc/PID/ns/net";

/// Opens `path` and returns its inode if it is a network namespace: a file of the namespace
/// filesystem (nsfs) whose type is `CLONE_NEWNET`. Anything else (a regular file, a directory,
/// another kind of namespace) is refused in one sentence naming `arg` as the user gave it.
pub fn network_namespace_inode(arg: &Path, path: &Path) -> Result<u32> {
    let shown = arg.display();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if path != arg {
                anyhow::bail!(
                    "--netns {shown}: no network namespace named {shown} in {} ({NETNS_FORMS})",
                    path.parent()
                        .map_or_else(String::new, |p| p.display().to_string())
                );
            }
            anyhow::bail!("--netns {shown}: no such file ({NETNS_FORMS})");
        }
        Err(e) => anyhow::bail!("--netns {shown}: cannot open it ({e}); run as root"),
    };
    let nsfs = nix::sys::statfs::fstatfs(&file)
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC);
    if !nsfs {
        anyhow::bail!("--netns {shown} is not a network namespace ({NETNS_FORMS})");
    }
    // SAFETY: an ioctl without argument on a file this function owns.
    let nstype = unsafe { ns_get_nstype(std::os::fd::AsRawFd::as_raw_fd(&file)) };
    match nstype {
        Ok(libc::CLONE_NEWNET) => {}
        Ok(other) => anyhow::bail!(
            "--netns {shown} is a {} namespace, not a network namespace ({NETNS_FORMS})",
            namespace_kind(other)
        ),
        Err(e) => anyhow::bail!(
            "--netns {shown}: cannot tell which kind of namespace it is ({e}); {NETNS_FORMS}"
        ),
    }
    let meta = file
        .metadata()
        .with_context(|| format!("--netns {shown}: cannot read it"))?;
    u32::try_from(meta.ino())
        .with_context(|| format!("--netns {shown}: its inode does not fit 32 bits"))
}

/// The one network namespace a run is scoped to (`--netns` or `--pod`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct NetnsScope {
    pub path: String,
    pub inode: u32,
    /// `NAMESPACE/NAME` when the scope was given as `--pod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
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

    fn skip_unless_root() -> bool {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (unshare, setns, ip netns)");
            return true;
        }
        false
    }

    /// A process in a namespace of its own, killed on drop.
    struct Unshared(std::process::Child);

    impl Drop for Unshared {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn scanner_sees_a_new_process_namespace_and_its_end() {
        if skip_unless_root() {
            return;
        }
        let (proc_root, run_netns) = (Path::new("/proc"), Path::new("/run/netns"));
        let own = inode_of(Path::new("/proc/self/ns/net")).unwrap();
        let mut scanner = Scanner::default();
        let before = scanner.scan(proc_root, run_netns);
        // The process starts in this namespace and moves to a new one half a second later, as a
        // container runtime's child does: the scanner must not keep its first namespace.
        let child = std::process::Command::new("sh")
            .args(["-c", "sleep 0.5; exec unshare --net sleep 30"])
            .spawn()
            .unwrap();
        let child = Unshared(child);
        let pid = child.0.id();
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let early = scanner.scan(proc_root, run_netns);
        if let Some(seen) = scanner.pids.get(&pid) {
            assert_eq!(seen.inode, own, "{early:?}");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let inode = loop {
            // unshare enters its namespace, then becomes `sleep`.
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            match inode_of(&path) {
                Some(inode) if inode != own && comm.trim() == "sleep" => break inode,
                _ if Instant::now() > deadline => panic!("unshare did not start"),
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        assert!(before.iter().all(|h| h.inode != inode));

        let during = scanner.scan(proc_root, run_netns);
        let found = during
            .iter()
            .find(|h| h.inode == inode)
            .expect("its namespace");
        assert_eq!(found.label, format!("pid {pid} (sleep)"));
        assert_eq!(found.path, path);
        assert!(!found.is_host);
        assert_eq!(scanner.pids[&pid].inode, inode, "remembered");
        // A fresh enumeration says the same of it.
        let fresh = enumerate(proc_root, run_netns);
        assert_eq!(fresh.iter().find(|h| h.inode == inode), Some(found));
        // Asked again, the remembered PID gives the same handle.
        let again = scanner.scan(proc_root, run_netns);
        assert_eq!(again.iter().find(|h| h.inode == inode), Some(found));
        assert_eq!(again[0].is_host, during[0].is_host);

        drop(child);
        let after = scanner.scan(proc_root, run_netns);
        assert!(
            after.iter().all(|h| h.inode != inode),
            "gone with its process"
        );
        assert!(!scanner.pids.contains_key(&pid));
        scanner.forget();
        assert!(scanner.pids.is_empty());
        assert!(!scanner.scan(proc_root, run_netns).is_empty());
    }

    #[test]
    fn one_thread_reads_each_namespace_and_the_callers_first() {
        if skip_unless_root() {
            return;
        }
        let name = format!("trc-each-{}", std::process::id());
        let Some(ns) = crate::testkit::netns::NetnsGuard::add(&name) else {
            return;
        };
        let lab = inode_of(&ns.path()).unwrap();
        let own = inode_of(Path::new("/proc/thread-self/ns/net")).unwrap();
        let jobs = vec![
            (Some(File::open(ns.path()).unwrap()), "lab"),
            (None, "own"),
            (Some(File::open("/proc/self/ns/net").unwrap()), "own again"),
        ];
        let caller = std::thread::current().id();
        let results = in_each_netns(jobs, move |tag| {
            assert_ne!(std::thread::current().id(), caller);
            (tag, inode_of(Path::new("/proc/thread-self/ns/net")))
        })
        .unwrap();
        let results: Vec<(&str, Option<u32>)> = results.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(
            results,
            [
                ("lab", Some(lab)),
                ("own", Some(own)),
                ("own again", Some(own))
            ]
        );
        assert_eq!(
            inode_of(Path::new("/proc/thread-self/ns/net")),
            Some(own),
            "the caller did not move"
        );
    }

    /// Sets `path`'s mtime to an hour ago.
    fn age(path: &Path) {
        use nix::sys::{stat::utimensat, time::TimeSpec};
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let old = TimeSpec::from_duration(now - Duration::from_secs(3600));
        utimensat(
            nix::fcntl::AT_FDCWD,
            path,
            &old,
            &old,
            nix::sys::stat::UtimensatFlags::FollowSymlink,
        )
        .unwrap();
    }

    #[test]
    fn named_listing_is_reused_until_the_directory_changes() {
        let dir = std::env::temp_dir().join(format!("trc-named-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let proc_root = dir.join("no-proc");
        let run = dir.join("netns");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("a"), "").unwrap();
        age(&run);
        let mut scanner = Scanner::default();
        let labels = |scanner: &mut Scanner| -> Vec<String> {
            let mut l: Vec<String> = scanner
                .scan(&proc_root, &run)
                .into_iter()
                .map(|h| h.label)
                .collect();
            l.sort();
            l
        };
        assert_eq!(labels(&mut scanner), ["netns a"]);
        assert_eq!(labels(&mut scanner), ["netns a"]);
        assert_eq!(
            scanner.named.listings, 1,
            "an unchanged directory is not listed again"
        );
        // The names from the listing kept are what listing the directory gives; a second name
        // for the same file (a bind mount here is a hard link) gives way to the first in order.
        std::fs::hard_link(run.join("a"), run.join("0")).unwrap();
        scanner.named.listed_at = None;
        labels(&mut scanner);
        assert_eq!(scanner.netns_names(), ip_netns_names(&run));
        assert_eq!(
            scanner.netns_names().into_values().collect::<Vec<_>>(),
            ["0"]
        );
        std::fs::remove_file(run.join("0")).unwrap();
        age(&run);
        scanner.named.listed_at = None;
        labels(&mut scanner);
        assert_eq!(scanner.named.listings, 3);
        // A name added: the mtime moved, so it is listed again (and again while the change is
        // too recent to trust: a mount may still follow).
        std::fs::write(run.join("b"), "").unwrap();
        assert_eq!(labels(&mut scanner), ["netns a", "netns b"]);
        assert_eq!(labels(&mut scanner), ["netns a", "netns b"]);
        assert_eq!(scanner.named.listings, 5);
        // A name removed.
        std::fs::remove_file(run.join("a")).unwrap();
        assert_eq!(labels(&mut scanner), ["netns b"]);
        assert_eq!(scanner.named.listings, 6);
        // Settled again: one more listing (its mtime differs from the last one), then reused.
        age(&run);
        assert_eq!(labels(&mut scanner), ["netns b"]);
        assert_eq!(labels(&mut scanner), ["netns b"]);
        assert_eq!(scanner.named.listings, 7);
        // Another namespace mounted over a name leaves the mtime alone: seen within 10 s.
        scanner.named.listed_at = Instant::now().checked_sub(NAMED_RELIST_AFTER);
        std::fs::remove_file(run.join("b")).unwrap();
        std::fs::write(run.join("b"), "").unwrap();
        age(&run);
        let inode = inode_of(&run.join("b")).unwrap();
        let handles = scanner.scan(&proc_root, &run);
        assert_eq!(handles.iter().map(|h| h.inode).collect::<Vec<_>>(), [inode]);
        assert_eq!(scanner.named.listings, 8);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The mount table's watch reports a mount and an unmount once each, and nothing when
    /// nothing changed; a plain file is not watched. Mounts are made in a private mount
    /// namespace of a thread of the test's own (nothing reaches the node's mount table).
    #[test]
    fn mount_watch_sees_mounts_once() {
        assert!(MountWatch::open(Path::new("/etc/hostname")).is_none());
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting needs root");
            return;
        }
        let dir = std::env::temp_dir().join(format!("trc-mountwatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.clone();
        let seen = std::thread::spawn(move || {
            use nix::mount::{mount, umount, MsFlags};
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
            let none: Option<&str> = None;
            mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).unwrap();
            let watch = MountWatch::open(Path::new("/proc/thread-self/mountinfo")).unwrap();
            let mut seen = vec![watch.changed()];
            mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::empty(),
                none,
            )
            .unwrap();
            seen.push(watch.changed());
            seen.push(watch.changed());
            umount(&target).unwrap();
            seen.push(watch.changed());
            seen
        })
        .join()
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(seen, [false, true, false, true]);
    }

    #[test]
    fn enumerate_on_an_empty_tree_is_empty() {
        let dir = std::env::temp_dir().join(format!("trc-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(enumerate(&dir, &dir.join("nope")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
