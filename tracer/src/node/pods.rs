//! Pods on this node from the node's own files, no API server: each process's cgroup path
//! (`/proc/PID/cgroup`) names its pod UID and container; its `/proc/PID/ns/net` link names the
//! network namespace inode the kernel programs record; `/var/log/pods/NAMESPACE_NAME_UID`
//! directories give the pod's namespace and name (where no such directory exists but
//! `/var/lib/kubelet/pods/UID` does, the pod is shown by its UID).
//!
//! Cgroup layouts understood, in cgroup v1 (one line per hierarchy) and v2 (`0::/…`), also seen
//! from inside a cgroup namespace (`/../../kubepods…`):
//! - cgroupfs driver: `/kubepods/burstable/pod<UID>/<CONTAINER-ID>`, `/kubepods/pod<UID>/…`
//!   (also below a prefix such as `/kubelet/kubepods/…`);
//! - systemd driver: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<UID with _
//!   for ->.slice/cri-containerd-<ID>.scope` (also `docker-<ID>.scope`, `crio-<ID>.scope`).
//!
//! Drops and retransmits are attributed by the kernel programs to the namespace of the skb's
//! device or of the socket, never to the current process (they run in softirq context); this
//! module only names those namespaces. A pod with the host's network namespace (hostNetwork)
//! never names the host namespace. Reads only.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::netns::NetnsScope;

/// Environment variable that moves the `/var/log/pods` root (a DaemonSet that mounts the
/// host's directory elsewhere, or tests).
pub const ENV_VAR_LOG_PODS: &str = "TRACER_VAR_LOG_PODS";
/// Environment variable that moves the kubelet's pod directory root (`--root-dir` of the kubelet
/// plus `/pods`).
pub const ENV_KUBELET_PODS: &str = "TRACER_KUBELET_PODS";

/// Where the pod facts are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRoots {
    /// `/proc` (the node's processes: the tracer needs the host PID namespace).
    pub proc: PathBuf,
    /// `/var/log/pods`: `NAMESPACE_NAME_UID` directories.
    pub var_log_pods: PathBuf,
    /// `/var/lib/kubelet/pods`: `UID` directories.
    pub kubelet_pods: PathBuf,
}

impl PodRoots {
    /// The running node: `/proc`, `/var/log/pods` and `/var/lib/kubelet/pods`, the latter two
    /// moved by `TRACER_VAR_LOG_PODS` and `TRACER_KUBELET_PODS` when set.
    pub fn live() -> Self {
        let from_env = |var: &str, default: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        Self {
            proc: PathBuf::from("/proc"),
            var_log_pods: from_env(ENV_VAR_LOG_PODS, "/var/log/pods"),
            kubelet_pods: from_env(ENV_KUBELET_PODS, "/var/lib/kubelet/pods"),
        }
    }

    /// A recorded tree: `root/proc`, `root/var/log/pods`, `root/var/lib/kubelet/pods`.
    pub fn fixture(root: &Path) -> Self {
        Self {
            proc: root.join("proc"),
            var_log_pods: root.join("var/log/pods"),
            kubelet_pods: root.join("var/lib/kubelet/pods"),
        }
    }
}

/// One pod with running processes on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    /// The pod's UID as the API server gave it (dashes, lower case; static pods have 32 hex
    /// digits without dashes).
    pub uid: String,
    /// Kubernetes namespace, from `/var/log/pods`; None when no log directory names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Pod name, from `/var/log/pods`; None when no log directory names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Inode of the pod's own network namespace; None for a host-network pod or when no
    /// process's namespace could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<u32>,
    /// The pod's processes use the host's network namespace (`hostNetwork: true`).
    #[serde(default)]
    pub host_network: bool,
    /// Container IDs seen in its cgroup paths (64 hex digits), sorted.
    #[serde(default)]
    pub containers: Vec<String>,
    /// The lowest PID in the pod's network namespace (`/proc/PID/ns/net` opens it).
    #[serde(default)]
    pub pid: u32,
    /// The kubelet has a directory for this UID (`/var/lib/kubelet/pods/UID`).
    #[serde(default)]
    pub kubelet_dir: bool,
}

impl PodRef {
    /// `NAMESPACE/NAME`, or `uid UID` when the name is not known.
    pub fn label(&self) -> String {
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => format!("{ns}/{name}"),
            _ => format!("uid {}", self.uid),
        }
    }
}

/// Every pod with running processes, sorted by label; serialised into the node facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodIndex {
    pub pods: Vec<PodRef>,
}

/// The pod a cgroup path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPod {
    /// Normalised UID (dashes, lower case).
    pub uid: String,
    /// Container ID (64 hex digits), when the path goes down to a container.
    pub container: Option<String>,
}

/// A pod UID in its normalised form (systemd's `_` back to `-`, lower case), or None when
/// `text` is not one: 32 hex digits, with dashes in the 8-4-4-4-12 places or none at all.
pub fn normalize_uid(text: &str) -> Option<String> {
    let uid = text.replace('_', "-").to_ascii_lowercase();
    let hex = uid.chars().filter(char::is_ascii_hexdigit).count();
    let dashes_ok = match uid.len() {
        32 => !uid.contains('-'),
        36 => uid
            .char_indices()
            .all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (c == '-')),
        _ => false,
    };
    (hex == 32 && dashes_ok).then_some(uid)
}

fn is_container_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The container ID in a cgroup path segment: `<ID>` (cgroupfs) or `cri-containerd-<ID>.scope`,
/// `docker-<ID>.scope`, `crio-<ID>.scope`, `crio-conmon-<ID>.scope` (systemd, or cri-o with
/// cgroupfs without the `.scope`).
fn container_of(segment: &str) -> Option<String> {
    let base = segment.strip_suffix(".scope").unwrap_or(segment);
    let id = [
        "cri-containerd-",
        "crio-conmon-",
        "crio-",
        "docker-",
        "containerd-",
    ]
    .iter()
    .find_map(|p| base.strip_prefix(p))
    .unwrap_or(base);
    is_container_id(id).then(|| id.to_ascii_lowercase())
}

/// The pod UID in a cgroup path segment: `pod<UID>` (cgroupfs) or `kubepods[-QOS]-pod<UID>.slice`
/// (systemd, `_` for `-`).
fn pod_of(segment: &str) -> Option<String> {
    if let Some(rest) = segment.strip_prefix("pod") {
        return normalize_uid(rest);
    }
    let slice = segment.strip_suffix(".slice")?;
    if !slice.starts_with("kubepods") {
        return None;
    }
    let (_, uid) = slice.rsplit_once("-pod")?;
    normalize_uid(uid)
}

/// The pod one cgroup path belongs to: a `pod…` segment below a `kubepods…` one.
pub fn parse_cgroup_path(path: &str) -> Option<CgroupPod> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let kubepods = segments.iter().position(|s| s.starts_with("kubepods"))?;
    for (i, segment) in segments.iter().enumerate().skip(kubepods + 1) {
        if let Some(uid) = pod_of(segment) {
            let container = segments.get(i + 1).and_then(|s| container_of(s));
            return Some(CgroupPod { uid, container });
        }
    }
    None
}

/// The pod a `/proc/PID/cgroup` file names: the first line (v1 hierarchy or the v2 `0::` line)
/// whose path is a pod's; lines that are not `ID:CONTROLLERS:PATH` are skipped.
pub fn parse_cgroup_file(text: &str) -> Option<CgroupPod> {
    let mut found: Option<CgroupPod> = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(_), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if let Some(pod) = parse_cgroup_path(path) {
            match &mut found {
                None => found = Some(pod),
                // Another hierarchy of the same pod may go further down (to the container).
                Some(f) if f.uid == pod.uid && f.container.is_none() => {
                    f.container = pod.container;
                }
                Some(_) => {}
            }
        }
    }
    found
}

/// `(namespace, name, uid)` from a `/var/log/pods` directory name `NAMESPACE_NAME_UID`
/// (neither a namespace nor a pod name may contain `_`).
pub fn parse_log_dir(name: &str) -> Option<(String, String, String)> {
    let (rest, uid) = name.rsplit_once('_')?;
    let (namespace, pod) = rest.split_once('_')?;
    if namespace.is_empty() || pod.is_empty() || pod.contains('_') {
        return None;
    }
    Some((namespace.to_owned(), pod.to_owned(), normalize_uid(uid)?))
}

/// The inode of the network namespace a `/proc/PID/ns/net` link names (`net:[4026532001]`),
/// else the inode the path opens.
pub fn netns_inode(path: &Path) -> Option<u32> {
    if let Ok(target) = std::fs::read_link(path) {
        let text = target.to_string_lossy();
        if let Some(inode) = text
            .strip_prefix("net:[")
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
        {
            return Some(inode);
        }
    }
    crate::node::netns::inode_of(path)
}

/// What the processes of one pod showed.
#[derive(Default)]
struct Seen {
    containers: BTreeSet<String>,
    /// Network namespace inode → (processes, lowest PID).
    netns: BTreeMap<u32, (u32, u32)>,
}

fn numeric_dirs(dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

/// Entries of a directory that may be missing (not a Kubernetes node): missing is no error,
/// unreadable is one sentence.
fn dir_names(dir: &Path, errors: &mut Vec<String>) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            errors.push(format!(
                "{} could not be read ({e}), so pods there are shown by UID only.",
                dir.display()
            ));
            Vec::new()
        }
    }
}

impl PodIndex {
    /// Reads every process's cgroup and network namespace, then the pods' names. Never fails
    /// as a whole: what cannot be read is returned as sentences beside the index.
    pub fn scan(roots: &PodRoots) -> (PodIndex, Vec<String>) {
        let mut errors = Vec::new();
        let host = netns_inode(&roots.proc.join("1/ns/net"))
            .or_else(|| netns_inode(&roots.proc.join("self/ns/net")));
        let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
        for pid in numeric_dirs(&roots.proc) {
            let dir = roots.proc.join(pid.to_string());
            let Ok(bytes) = std::fs::read(dir.join("cgroup")) else {
                continue; // exited, or hidden
            };
            let Some(pod) = parse_cgroup_file(&String::from_utf8_lossy(&bytes)) else {
                continue;
            };
            let entry = seen.entry(pod.uid).or_default();
            entry.containers.extend(pod.container);
            if let Some(inode) = netns_inode(&dir.join("ns/net")) {
                let slot = entry.netns.entry(inode).or_insert((0, pid));
                slot.0 += 1;
                slot.1 = slot.1.min(pid);
            }
        }
        let mut names: BTreeMap<String, (String, String)> = BTreeMap::new();
        for dir in dir_names(&roots.var_log_pods, &mut errors) {
            if let Some((namespace, name, uid)) = parse_log_dir(&dir) {
                names.insert(uid, (namespace, name));
            }
        }
        let kubelet: BTreeSet<String> = dir_names(&roots.kubelet_pods, &mut errors)
            .iter()
            .filter_map(|d| normalize_uid(d))
            .collect();
        let mut pods: Vec<PodRef> = seen
            .into_iter()
            .map(|(uid, s)| {
                // The pod's own namespace is where most of its processes are, the host's
                // excepted (cri-o's conmon sits in the pod's cgroup but in the host namespace).
                let own = s
                    .netns
                    .iter()
                    .filter(|(inode, _)| Some(**inode) != host)
                    .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))
                    .map(|(inode, (_, pid))| (*inode, *pid));
                let host_network = own.is_none() && host.is_some_and(|h| s.netns.contains_key(&h));
                let pid = own
                    .map(|(_, pid)| pid)
                    .or_else(|| s.netns.values().map(|(_, pid)| *pid).min())
                    .unwrap_or(0);
                let (namespace, name) = names.get(&uid).cloned().unzip();
                PodRef {
                    kubelet_dir: kubelet.contains(&uid),
                    uid,
                    namespace,
                    name,
                    netns: own.map(|(inode, _)| inode),
                    host_network,
                    containers: s.containers.into_iter().collect(),
                    pid,
                }
            })
            .collect();
        pods.sort_by(|a, b| a.label().cmp(&b.label()).then(a.uid.cmp(&b.uid)));
        (PodIndex { pods }, errors)
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The pods in the network namespace `inode` (never the host's), `NS/NAME` joined by `, `.
    pub fn label_of(&self, inode: u32) -> Option<String> {
        let labels: Vec<String> = self
            .pods
            .iter()
            .filter(|p| p.netns == Some(inode) && !p.host_network)
            .map(PodRef::label)
            .collect();
        (!labels.is_empty()).then(|| labels.join(", "))
    }

    /// Every pod network namespace with its label.
    pub fn labels(&self) -> BTreeMap<u32, String> {
        self.pods
            .iter()
            .filter_map(|p| p.netns)
            .filter_map(|inode| self.label_of(inode).map(|l| (inode, l)))
            .collect()
    }

    /// This index with the pods of `newer` added (a pod in both takes `newer`'s facts).
    pub fn merged(&self, newer: &PodIndex) -> PodIndex {
        let mut by_uid: BTreeMap<String, PodRef> = self
            .pods
            .iter()
            .map(|p| (p.uid.clone(), p.clone()))
            .collect();
        for p in &newer.pods {
            by_uid.insert(p.uid.clone(), p.clone());
        }
        let mut pods: Vec<PodRef> = by_uid.into_values().collect();
        pods.sort_by(|a, b| a.label().cmp(&b.label()).then(a.uid.cmp(&b.uid)));
        PodIndex { pods }
    }

    /// The pod `spec` names (`NAMESPACE/NAME`, or a UID in either dash form), if any.
    fn lookup(&self, spec: &str) -> Option<&PodRef> {
        let wanted = spec.trim();
        match wanted.split_once('/') {
            Some((namespace, name)) => self.pods.iter().find(|p| {
                p.namespace.as_deref() == Some(namespace) && p.name.as_deref() == Some(name)
            }),
            None => normalize_uid(wanted).and_then(|uid| self.pods.iter().find(|p| p.uid == uid)),
        }
    }

    /// The first few pods' labels, for an error that lists them.
    fn listed(&self) -> String {
        const SHOWN: usize = 5;
        let mut known: Vec<String> = self.pods.iter().take(SHOWN).map(PodRef::label).collect();
        if self.pods.len() > SHOWN {
            known.push(format!("and {} more", self.pods.len() - SHOWN));
        }
        known.join(", ")
    }

    /// The pod `spec` names: `NAMESPACE/NAME`, or a UID (either dash form).
    pub fn find(&self, spec: &str) -> Result<&PodRef> {
        let wanted = spec.trim();
        if let Some(pod) = self.lookup(wanted) {
            return Ok(pod);
        }
        if self.pods.is_empty() {
            bail!(
                "--pod {wanted}: no pod runs on this node as far as its files tell \
                 (no process has a kubepods cgroup in /proc/*/cgroup)"
            );
        }
        bail!(
            "--pod {wanted}: no such pod runs on this node (expected NAMESPACE/NAME or a pod UID; \
             pods here: {})",
            self.listed()
        )
    }

    /// A path that opens the network namespace of the pod `spec` names (`PROC/PID/ns/net`) and
    /// its inode; an error in one sentence when there is no such pod, or it shares the host's
    /// namespace.
    pub fn resolve(&self, spec: &str, proc_root: &Path) -> Result<(PathBuf, u32, &PodRef)> {
        let pod = self.find(spec)?;
        if pod.host_network {
            bail!(
                "--pod {}: the pod uses the host's network namespace (hostNetwork), so its \
                 traffic cannot be told apart from the node's; run without --pod",
                pod.label()
            );
        }
        let Some(inode) = pod.netns else {
            bail!(
                "--pod {}: the network namespace of its processes could not be read \
                 ({}/*/ns/net)",
                pod.label(),
                proc_root.display()
            );
        };
        Ok((proc_root.join(format!("{}/ns/net", pod.pid)), inode, pod))
    }
}

impl PodIndex {
    /// The window scope of `--pod SPEC`: the pod's network namespace, labelled with the pod.
    pub fn scope(&self, spec: &str, proc_root: &Path) -> Result<NetnsScope> {
        let (path, inode, pod) = self.resolve(spec, proc_root)?;
        Ok(NetnsScope {
            path: path.display().to_string(),
            inode,
            pod: Some(pod.label()),
        })
    }
}

/// The live scope of `--pod SPEC`: scans the node (`PodRoots::live()`) and returns the pod's
/// namespace as a window scope labelled with the pod.
pub fn live_scope(spec: &str) -> Result<NetnsScope> {
    let roots = PodRoots::live();
    let (index, _) = PodIndex::scan(&roots);
    index.scope(spec, &roots.proc)
}

/// The scope of `--pod SPEC` in a recording: the pod as the recording's node facts saw it
/// (at either end of the window). A recording made for another namespace cannot be narrowed
/// to a pod outside it.
pub fn recorded_scope(
    start: &PodIndex,
    end: &PodIndex,
    recorded: Option<&NetnsScope>,
    spec: &str,
) -> Result<NetnsScope> {
    let index = start.merged(end);
    if index.is_empty() {
        bail!("--pod {spec}: the recording holds no pods (it was made on a node without pods, or by a tracer that did not read them)");
    }
    if index.lookup(spec).is_none() {
        bail!(
            "--pod {}: the recording has no such pod (expected NAMESPACE/NAME or a pod UID; \
             pods in it: {})",
            spec.trim(),
            index.listed()
        );
    }
    let scope = index.scope(spec, Path::new("/proc"))?;
    if let Some(r) = recorded {
        if r.inode != scope.inode {
            bail!(
                "--pod {spec}: the recording was made for namespace {} ({}) only, not this pod's ({})",
                r.path,
                r.inode,
                scope.inode
            );
        }
    }
    Ok(scope)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
