//! Node facts: routes and drop/reject rules of every namespace, policy engines, sysctls, irqbalance,
//! RPS/XPS masks. Strictly read-only: it lists, never adds/deletes/flushes a rule, route, link or sysctl.

mod cache;
mod changes;
mod host;
mod iptables;
mod legacy_mark;
mod netlink;
mod nfgen;
mod nft;
mod procs;
mod route_watch;
mod routes;
mod tools;

#[cfg(test)]
mod tests;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

pub use cache::{FactsCache, Reads};

use crate::{
    node::evidence::{FirewallRule, NodeFacts, RouteFact},
    node::netns,
    node::pods::{PodIndex, PodRoots},
};

use tools::ToolOutput;

/// What one firewall listing showed: the rules that drop or reject, and every chain and table
/// name (engines betray themselves by them).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Firewall {
    pub rules: Vec<FirewallRule>,
    pub chains: Vec<String>,
    pub tables: Vec<String>,
}

impl Firewall {
    fn merge(&mut self, other: Firewall) {
        self.rules.extend(other.rules);
        self.chains.extend(other.chains);
        self.tables.extend(other.tables);
    }
}

/// Where the facts come from: the running node, or a recorded tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactsSource {
    pub proc_root: PathBuf,
    pub sys_root: PathBuf,
    pub run_netns: PathBuf,
    /// Where pods are read from (`/proc`, `/var/log/pods`, `/var/lib/kubelet/pods`).
    pub pods: PodRoots,
    /// True: visit every namespace, ask the kernel over netlink and run the listing tools.
    /// False: read recorded files only (`proc/net/route`, `nft-ruleset.json`, …).
    pub live: bool,
}

/// What was read in one namespace.
#[derive(Debug, Default)]
struct NamespaceFacts {
    routes: Vec<RouteFact>,
    firewall: Firewall,
    errors: Vec<String>,
}

/// Which listing a recorded file holds.
#[derive(Debug, Clone, Copy)]
enum Recorded {
    Nft,
    Iptables { ipv6: bool },
}

/// The listing tools found on the node (a missing one is simply not run).
#[derive(Debug, Clone, Default)]
struct Tools {
    nft: Option<PathBuf>,
    iptables: Option<PathBuf>,
    ip6tables: Option<PathBuf>,
}

impl Tools {
    fn find(proc_root: &Path, sys_root: &Path) -> Self {
        Self {
            nft: if nf_tables_absent(proc_root, sys_root) {
                None
            } else {
                tools::find("nft")
            },
            iptables: legacy_save("iptables-legacy-save", "iptables-save"),
            ip6tables: legacy_save("ip6tables-legacy-save", "ip6tables-save"),
        }
    }

    fn has_legacy(&self) -> bool {
        self.iptables.is_some() || self.ip6tables.is_some()
    }
}

/// The legacy `*-save`: the `-legacy-` binary, else the plain one when it says it is not the
/// nf_tables variant (whose rules nft lists already).
fn legacy_save(legacy: &str, plain: &str) -> Option<PathBuf> {
    if let Some(path) = tools::find(legacy) {
        return Some(path);
    }
    let path = tools::find(plain)?;
    match tools::run(&path, &["--version"]) {
        ToolOutput::Output(version) if !version.contains("nf_tables") => Some(path),
        _ => None,
    }
}

/// True when nf_tables is a loadable module that is not loaded: then there are no nftables rules,
/// and running nft would only make the kernel load the module (a change to the node).
fn nf_tables_absent(proc_root: &Path, sys_root: &Path) -> bool {
    let Ok(modules) = std::fs::read_to_string(proc_root.join("modules")) else {
        // No module support: built in or not there at all; nft tells which.
        return false;
    };
    if modules
        .lines()
        .any(|l| l.split_whitespace().next() == Some("nf_tables"))
        || sys_root.join("module/nf_tables").exists()
    {
        return false;
    }
    let release =
        std::fs::read_to_string(proc_root.join("sys/kernel/osrelease")).unwrap_or_default();
    match std::fs::read_to_string(format!("/lib/modules/{}/modules.builtin", release.trim())) {
        Ok(builtin) => !builtin.lines().any(|l| l.ends_with("/nf_tables.ko")),
        Err(_) => false,
    }
}

/// `host (netns 4026531840)`: how sentences name a namespace.
fn who(label: &str, inode: u32) -> String {
    format!("{label} (netns {inode})")
}

/// Adds a listing's rules, or says why it could not be had.
fn add_listing(
    out: &mut NamespaceFacts,
    command: &str,
    result: ToolOutput,
    parse: impl FnOnce(&str) -> Result<Firewall, String>,
    whom: &str,
) {
    match result {
        ToolOutput::Missing => {}
        ToolOutput::Failed(why) => out
            .errors
            .push(format!("`{command}` failed in {whom}: {why}.")),
        ToolOutput::Output(text) if text.trim().is_empty() => {}
        ToolOutput::Output(text) => match parse(&text) {
            Ok(fw) => out.firewall.merge(fw),
            Err(why) => out.errors.push(format!(
                "The output of `{command}` in {whom} could not be read: {why}."
            )),
        },
    }
}

/// True when the calling thread's namespace has legacy tables listed in `names_file`
/// (`/proc/thread-self/net/ip_tables_names`); when the file is missing the module is not loaded
/// and there are none.
fn has_legacy_tables(names_file: &Path) -> bool {
    match std::fs::read_to_string(names_file) {
        Ok(names) => !names.trim().is_empty(),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// Everything of the calling thread's network namespace (run inside it), without a cache.
fn read_namespace(inode: u32, label: &str, tools: &Tools, proc_root: &Path) -> NamespaceFacts {
    let whom = who(label, inode);
    let (routes, mut errors) = netlink::routes(inode, label);
    let mut firewall = Firewall::default();
    for part in [
        cache::read_nft(tools, None, inode, label, &whom),
        cache::read_legacy(tools, proc_root, inode, label, &whom),
    ] {
        firewall.merge(part.value);
        errors.extend(part.errors);
    }
    NamespaceFacts {
        routes,
        firewall,
        errors,
    }
}

fn optional_text(path: &Path, errors: &mut Vec<String>) -> Option<String> {
    match std::fs::read(path) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            errors.push(format!("{} could not be read ({e}).", path.display()));
            None
        }
    }
}

impl FactsSource {
    /// The running node: `/proc`, `/sys`, `/run/netns`.
    pub fn live() -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
            run_netns: PathBuf::from("/run/netns"),
            pods: PodRoots::live(),
            live: true,
        }
    }

    /// A recorded tree: `root/proc`, `root/sys`, `root/run/netns`, with `root/nft-ruleset.json`
    /// and `root/iptables-save.txt` (and `root/ip6tables-save.txt`) beside them when present,
    /// and pods from `root/var/log/pods` and `root/var/lib/kubelet/pods`.
    pub fn fixture(root: &Path) -> Self {
        Self {
            proc_root: root.join("proc"),
            sys_root: root.join("sys"),
            run_netns: root.join("run/netns"),
            pods: PodRoots::fixture(root),
            live: false,
        }
    }

    /// Everything; never fails as a whole — what cannot be read goes to `NodeFacts::errors`, one
    /// sentence each.
    pub fn collect(&self) -> NodeFacts {
        self.collect_changed(&mut FactsCache::default(), &BTreeSet::new())
    }

    /// [`FactsSource::collect`] reading again only the namespaces whose rules or routes changed
    /// since the last call with this `cache`, or where the kernel saw netfilter drops (their
    /// inodes in `netfilter_drops`); the others' routes and rules are the cache's.
    pub fn collect_changed(
        &self,
        cache: &mut FactsCache,
        netfilter_drops: &BTreeSet<u32>,
    ) -> NodeFacts {
        let mut facts = NodeFacts::default();
        let per_namespace = if self.live {
            cache
                .round(self.roots(), netfilter_drops, None)
                .unwrap_or_else(|| self.read_own())
        } else {
            vec![self.collect_recorded()]
        };
        let mut firewall = Firewall::default();
        for ns in per_namespace {
            facts.routes.extend(ns.routes);
            firewall.merge(ns.firewall);
            facts.errors.extend(ns.errors);
        }
        facts.firewall_rules = firewall.rules;

        let processes = procs::scan(&self.proc_root);
        let mut engines = processes.engines;
        engines.extend(procs::engines_from_firewall(
            &firewall.chains,
            &firewall.tables,
        ));
        facts.policy_engines = engines.into_iter().collect();
        facts.irqbalance_running = processes.irqbalance;
        facts.sysctls = host::sysctls(&self.proc_root);
        match host::queue_masks(&self.sys_root) {
            Ok(masks) => facts.queue_masks = masks,
            Err(e) => facts.errors.push(e),
        }
        if self.live {
            // The round's own listing of `/run/netns` (no second listing and stat per name).
            facts.netns_names = cache.netns_names();
        }
        let (pods, errors) = PodIndex::scan(&self.pods);
        facts.pods = pods;
        facts.errors.extend(errors);
        facts
    }

    /// Reads the routes and rules of namespace `inode` alone into `cache` (a window's scope,
    /// before the rest of the node follows in the background). Nothing without live facts.
    pub fn prime(&self, cache: &mut FactsCache, inode: u32) {
        if self.live {
            cache.round(self.roots(), &BTreeSet::new(), Some(inode));
        }
    }

    /// Every namespace read in full, `nft` run in each whatever netlink says: what every facts
    /// round cost before facts by change (the scale test prints the difference). Routes and
    /// rules only (no pods, sysctls or processes).
    pub fn collect_full(&self) -> NodeFacts {
        let tools = Tools::find(&self.proc_root, &self.sys_root);
        let jobs: Vec<_> = netns::enumerate(&self.proc_root, &self.run_netns)
            .into_iter()
            .filter_map(|h| Some((Some(std::fs::File::open(&h.path).ok()?), h)))
            .collect();
        let proc_root = self.proc_root.clone();
        let read = netns::in_each_netns(jobs, move |h| {
            read_namespace(h.inode, &h.label, &tools, &proc_root)
        });
        let mut facts = NodeFacts::default();
        for ns in read.into_iter().flatten().flatten() {
            facts.routes.extend(ns.routes);
            facts.firewall_rules.extend(ns.firewall.rules);
            facts.errors.extend(ns.errors);
        }
        facts
    }

    fn roots(&self) -> (&Path, &Path, &Path) {
        (&self.proc_root, &self.sys_root, &self.run_netns)
    }

    /// The tracer's own namespace alone, when no namespace could be opened.
    fn read_own(&self) -> Vec<NamespaceFacts> {
        let tools = Tools::find(&self.proc_root, &self.sys_root);
        let inode = netns::inode_of(&self.proc_root.join("thread-self/ns/net")).unwrap_or(0);
        let mut only = read_namespace(inode, "self", &tools, &self.proc_root);
        only.errors.insert(
            0,
            format!(
                "No network namespace could be opened under {} or {}, so only the tracer's own was read.",
                self.proc_root.display(),
                self.run_netns.display()
            ),
        );
        vec![only]
    }

    /// The recorded host namespace (inode 0, `host`).
    fn collect_recorded(&self) -> NamespaceFacts {
        const LABEL: &str = "host";
        let mut out = NamespaceFacts::default();
        let route_file = self.proc_root.join("net/route");
        match std::fs::read(&route_file) {
            Ok(bytes) => {
                let (routes, bad) =
                    routes::parse_proc_net_route(&String::from_utf8_lossy(&bytes), 0, LABEL);
                out.routes = routes;
                if bad > 0 {
                    out.errors.push(format!(
                        "{bad} lines of {} could not be read and are left out.",
                        route_file.display()
                    ));
                }
            }
            Err(e) => out.errors.push(format!(
                "Routes could not be read from {} ({e}).",
                route_file.display()
            )),
        }
        let kinds_file = self.proc_root.join("net/route_kinds");
        if let Some(text) = optional_text(&kinds_file, &mut out.errors) {
            let (kinds, bad) = routes::parse_route_kinds(&text);
            routes::apply_kinds(&mut out.routes, &kinds, 0, LABEL);
            if bad > 0 {
                out.errors.push(format!(
                    "{bad} lines of {} could not be read and are left out.",
                    kinds_file.display()
                ));
            }
        }

        let beside = self
            .proc_root
            .parent()
            .map_or_else(|| self.proc_root.join(".."), Path::to_path_buf);
        let whom = who(LABEL, 0);
        let recorded = [
            ("nft-ruleset.json", "nft -j list ruleset", Recorded::Nft),
            (
                "iptables-save.txt",
                "iptables-save -c",
                Recorded::Iptables { ipv6: false },
            ),
            (
                "ip6tables-save.txt",
                "ip6tables-save -c",
                Recorded::Iptables { ipv6: true },
            ),
        ];
        for (file, command, kind) in recorded {
            let Some(text) = optional_text(&beside.join(file), &mut out.errors) else {
                continue;
            };
            add_listing(
                &mut out,
                command,
                ToolOutput::Output(text),
                |t| match kind {
                    Recorded::Nft => nft::parse(t, 0, LABEL),
                    Recorded::Iptables { ipv6 } => Ok(iptables::parse(t, ipv6, 0, LABEL)),
                },
                &whom,
            );
        }
        out
    }
}
