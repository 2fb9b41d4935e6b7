//! Facts by change: what every namespace's routes and rules were at the last round, with the
//! sockets that tell cheaply whether they changed since (nftables generation, a route
//! subscription, the legacy rules' mark); a round enters and re-reads only the namespaces
//! `changes::decide` names. The legacy rules' mark is asked on files and sockets kept from the
//! namespace's first visit ([`legacy_mark::KeptMark`]), so a namespace whose rules did not move
//! is not entered either.
//!
//! The cheap checks themselves are asked only where something came: each namespace's route
//! subscription and nftables subscription ([`route_watch::NfWatch`]) are kept in one epoll set
//! ([`Stirred`]), and a round first asks it which sockets are readable. A namespace whose two
//! subscriptions stayed silent is not asked for its generation nor drained: its routes and
//! ruleset are as at the last round (the kernel announces every committed change on them, and a
//! lost announcement — a full socket buffer — makes the socket readable with an error). So 250
//! idle namespaces cost one `epoll_wait` a round, not 250 generation requests and 250 drains; a
//! change is seen at the next round, as before. Where the set cannot be made, or a namespace has
//! no subscription, the checks are asked every round as before. The legacy rules' mark has no
//! announcement and is still asked every round where the module is loaded.
//! Strictly read-only, like the rest of `facts`.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    fs::File,
    path::Path,
};

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use super::{
    add_listing,
    changes::{decide, Marks, Refresh, Seen},
    iptables, legacy_mark, netlink,
    nfgen::NfTables,
    nft,
    route_watch::{NfWatch, RouteWatch},
    tools, who, Firewall, NamespaceFacts, Tools,
};
use crate::node::{evidence::RouteFact, netns};

/// How often each source of one namespace was read (tests and the bench count them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reads {
    /// nftables listings (a namespace without tables is counted but runs no `nft`).
    pub nft: u32,
    /// `iptables-save`/`ip6tables-save` rounds.
    pub legacy: u32,
    /// Route dumps.
    pub routes: u32,
    /// Times the namespace was entered (a round where nothing changed enters none).
    pub visits: u32,
    /// Rounds that asked its cheap checks (the nftables generation, the route subscription's
    /// drain) without entering it: none where its subscriptions stayed silent.
    pub checks: u32,
}

/// The sockets kept in a namespace: they stay bound to it after the reading thread left.
#[derive(Default)]
struct Watchers {
    nf: Option<NfTables>,
    /// Subscribed to the ruleset's changes (opened with `nf`).
    nf_changes: Option<NfWatch>,
    routes: Option<RouteWatch>,
    legacy: Option<legacy_mark::KeptMark>,
    /// `nf_changes` and `routes` are in the cache's [`Stirred`] set (both there, or no
    /// nf_tables and `routes` there): silence on them means nothing changed.
    watched: bool,
}

/// The subscriptions of every namespace in one epoll set, each registered with its namespace's
/// inode: a round learns which namespaces' routes or rules may have changed from one
/// `epoll_wait` (level-triggered: a socket stays readable until its namespace's check drains it).
struct Stirred {
    epoll: Epoll,
}

impl Stirred {
    fn new() -> Option<Self> {
        Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .ok()
            .map(|epoll| Self { epoll })
    }

    /// Registers `watchers`' subscriptions under `inode`; sets `watched` when every one it
    /// needs is in the set.
    fn register(&self, inode: u32, watchers: &mut Watchers) {
        if watchers.watched {
            return;
        }
        let event = EpollEvent::new(EpollFlags::EPOLLIN, u64::from(inode));
        // A socket closed with its namespace's watchers leaves the set by itself.
        let add =
            |fd: Option<BorrowedFd<'_>>| fd.is_some_and(|fd| self.epoll.add(fd, event).is_ok());
        let routes = add(watchers.routes.as_ref().map(AsFd::as_fd));
        let nf = match &watchers.nf {
            None => true,
            Some(_) => add(watchers.nf_changes.as_ref().map(AsFd::as_fd)),
        };
        watchers.watched = routes && nf;
    }

    /// The namespaces (inodes) with a readable subscription, of at most `namespaces` (two
    /// sockets each); None when the set could not be asked (then every namespace is checked).
    fn now(&self, namespaces: usize) -> Option<HashSet<u32>> {
        let mut events = vec![EpollEvent::empty(); 2 * namespaces + 2];
        let n = self.epoll.wait(&mut events, EpollTimeout::ZERO).ok()?;
        Some(
            events[..n]
                .iter()
                .filter_map(|e| u32::try_from(e.data()).ok())
                .collect(),
        )
    }
}

/// One part of a namespace's facts with the sentences about what could not be read of it.
#[derive(Debug, Default, Clone)]
pub(super) struct Part<T> {
    pub(super) value: T,
    pub(super) errors: Vec<String>,
}

/// What is kept of one namespace between rounds.
#[derive(Default)]
struct Kept {
    marks: Marks,
    routes: Part<Vec<RouteFact>>,
    nft: Part<Firewall>,
    legacy: Part<Firewall>,
    /// Why the namespace could not be entered (then the rest is empty).
    unreachable: Option<String>,
    watchers: Watchers,
    reads: Reads,
}

/// Facts kept between rounds (see the module docs); one per long-lived window.
#[derive(Default)]
pub struct FactsCache {
    scanner: netns::Scanner,
    tools: Option<Tools>,
    kept: BTreeMap<u32, Kept>,
    /// Whether the host had the IPv4 and IPv6 legacy names files at the last round: the
    /// modules are loaded for every namespace at once, and a kept mark set opened without a
    /// names file would not see the module loaded since.
    legacy_files: Option<(bool, bool)>,
    /// Every namespace's subscriptions (None: not made yet, or it could not be).
    stirred: Option<Stirred>,
    stirred_tried: bool,
}

/// A namespace to enter this round, with what is known of it.
struct Job {
    inode: u32,
    label: String,
    before: Option<Marks>,
    generation: Option<u32>,
    seen: Seen,
    watchers: Watchers,
}

/// What a visit read.
struct Visit {
    marks: Marks,
    refresh: Refresh,
    routes: Part<Vec<RouteFact>>,
    nft: Part<Firewall>,
    legacy: Part<Firewall>,
    watchers: Watchers,
}

impl FactsCache {
    /// The `ip netns` names of the last round's listing of `/run/netns`, by inode.
    pub fn netns_names(&self) -> BTreeMap<u32, String> {
        self.scanner.netns_names()
    }

    /// How often each source of namespace `inode` was read so far.
    pub fn reads(&self, inode: u32) -> Reads {
        self.kept.get(&inode).map(|k| k.reads).unwrap_or_default()
    }

    /// One round over every namespace of the node (or only namespace `only` when given):
    /// returns each namespace's facts, read again where they changed (or where the kernel saw
    /// netfilter drops: `netfilter_drops` holds their inodes), kept from the last round elsewhere.
    pub(super) fn round(
        &mut self,
        (proc_root, sys_root, run_netns): (&Path, &Path, &Path),
        netfilter_drops: &BTreeSet<u32>,
        only: Option<u32>,
    ) -> Option<Vec<NamespaceFacts>> {
        let tools = self
            .tools
            .get_or_insert_with(|| Tools::find(proc_root, sys_root))
            .clone();
        let handles = self.scanner.scan(proc_root, run_netns);
        if handles.is_empty() {
            return None;
        }
        // Up to six sockets and files are kept per namespace here: the soft limit (often
        // 1024) is raised first, as the counters do.
        crate::node::counters::raise_descriptor_limit();
        let present: BTreeSet<u32> = handles.iter().map(|h| h.inode).collect();
        self.kept.retain(|inode, _| present.contains(inode));
        // Without legacy tables anywhere (the module not loaded) their mark needs no visit.
        let legacy_files = (
            proc_root.join("net/ip_tables_names").exists(),
            proc_root.join("net/ip6_tables_names").exists(),
        );
        let legacy_loaded = tools.has_legacy() && (legacy_files.0 || legacy_files.1);
        if self.legacy_files.replace(legacy_files) != Some(legacy_files) {
            for kept in self.kept.values_mut() {
                kept.watchers.legacy = None;
            }
        }
        let own = netns::inode_of(&proc_root.join("thread-self/ns/net"));
        if !self.stirred_tried {
            self.stirred_tried = true;
            self.stirred = Stirred::new();
        }
        // Which namespaces' subscriptions spoke since the last round (asked before any check
        // drains them: a change after this is seen at the next round).
        let stirred = self.stirred.as_ref().and_then(|s| s.now(self.kept.len()));
        let mut jobs = Vec::new();
        for handle in handles.iter().filter(|h| only.is_none_or(|i| i == h.inode)) {
            // A drop the kernel could not place (inode 0) may be anywhere's.
            let seen_drops =
                netfilter_drops.contains(&handle.inode) || netfilter_drops.contains(&0);
            if let Some(job) = self.job_for(
                handle.inode,
                &handle.label,
                seen_drops,
                legacy_loaded,
                stirred.as_ref(),
            ) {
                let file = if Some(handle.inode) == own {
                    None
                } else {
                    match File::open(&handle.path) {
                        Ok(f) => Some(f),
                        Err(e) => {
                            self.unreachable(handle.inode, &handle.label, &e.to_string());
                            continue;
                        }
                    }
                };
                jobs.push((file, job));
            }
        }
        self.visit_all(jobs, tools, proc_root);
        Some(
            handles
                .iter()
                .filter(|h| only.is_none_or(|i| i == h.inode))
                .map(|h| self.facts_of(h.inode))
                .collect(),
        )
    }

    /// The job for one namespace, or None when nothing of it needs a visit. `stirred`: the
    /// namespaces whose subscriptions spoke (None: unknown, check every one).
    fn job_for(
        &mut self,
        inode: u32,
        label: &str,
        netfilter_drops: bool,
        legacy_loaded: bool,
        stirred: Option<&HashSet<u32>>,
    ) -> Option<Job> {
        let seen = |routes_changed| Seen {
            routes_changed,
            netfilter_drops,
        };
        let Some(kept) = self.kept.get_mut(&inode) else {
            return Some(Job {
                inode,
                label: label.to_owned(),
                before: None,
                generation: None,
                seen: seen(true),
                watchers: Watchers::default(),
            });
        };
        // Both subscriptions silent: the ruleset and routes are as at the last round.
        let silent = kept.watchers.watched && stirred.is_some_and(|s| !s.contains(&inode));
        let (generation, routes_changed) = if silent {
            (kept.marks.nft_generation, false)
        } else {
            kept.reads.checks += 1;
            // Drained before the generation is asked: a change after it speaks next round.
            if let Some(changes) = kept.watchers.nf_changes.as_mut() {
                changes.changed();
            }
            (
                kept.watchers
                    .nf
                    .as_mut()
                    .and_then(|nf| nf.generation().ok()),
                kept.watchers
                    .routes
                    .as_mut()
                    .is_none_or(RouteWatch::changed),
            )
        };
        // The legacy mark from the kept set (no visit needed to ask); without one, a visit
        // asks where the module is loaded.
        let legacy = kept
            .watchers
            .legacy
            .as_ref()
            .filter(|_| legacy_loaded)
            .map(legacy_mark::KeptMark::mark);
        let now = Marks {
            nft_generation: generation,
            legacy_rules: legacy.or(kept.marks.legacy_rules),
        };
        let refresh = decide(Some(&kept.marks), &now, seen(routes_changed));
        let ask_legacy = legacy_loaded && legacy.is_none();
        (refresh.any() || ask_legacy || kept.unreachable.is_some()).then(|| Job {
            inode,
            label: label.to_owned(),
            before: kept.unreachable.is_none().then(|| kept.marks.clone()),
            generation,
            seen: seen(routes_changed),
            watchers: std::mem::take(&mut kept.watchers),
        })
    }

    fn unreachable(&mut self, inode: u32, label: &str, why: &str) {
        let kept = self.kept.entry(inode).or_default();
        kept.unreachable = Some(format!(
            "{} could not be entered, so its routes and firewall are unknown: {why}.",
            who(label, inode)
        ));
    }

    /// Enters every job's namespace in turn on one thread and keeps what was read.
    fn visit_all(&mut self, jobs: Vec<(Option<File>, Job)>, tools: Tools, proc_root: &Path) {
        if jobs.is_empty() {
            return;
        }
        let names: Vec<(u32, String)> = jobs
            .iter()
            .map(|(_, j)| (j.inode, j.label.clone()))
            .collect();
        let proc_root = proc_root.to_path_buf();
        let results = netns::in_each_netns(jobs, move |job| visit(job, &tools, &proc_root));
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                for (inode, label) in &names {
                    self.unreachable(*inode, label, &format!("{e:#}"));
                }
                return;
            }
        };
        for ((inode, label), result) in names.into_iter().zip(results) {
            match result {
                Ok(v) => self.keep(inode, v),
                Err(e) => self.unreachable(inode, &label, &format!("{e:#}")),
            }
        }
    }

    fn keep(&mut self, inode: u32, visit: Visit) {
        let kept = self.kept.entry(inode).or_default();
        kept.unreachable = None;
        kept.marks = visit.marks;
        kept.watchers = visit.watchers;
        if let Some(stirred) = &self.stirred {
            stirred.register(inode, &mut kept.watchers);
        }
        kept.reads.visits += 1;
        if visit.refresh.routes {
            kept.routes = visit.routes;
            kept.reads.routes += 1;
        }
        if visit.refresh.nft {
            kept.nft = visit.nft;
            kept.reads.nft += 1;
        }
        if visit.refresh.legacy {
            kept.legacy = visit.legacy;
            kept.reads.legacy += 1;
        }
    }

    /// The kept facts of one namespace, as one read.
    fn facts_of(&self, inode: u32) -> NamespaceFacts {
        let Some(kept) = self.kept.get(&inode) else {
            return NamespaceFacts::default();
        };
        if let Some(why) = &kept.unreachable {
            return NamespaceFacts {
                errors: vec![why.clone()],
                ..NamespaceFacts::default()
            };
        }
        let mut out = NamespaceFacts {
            routes: kept.routes.value.clone(),
            firewall: kept.nft.value.clone(),
            errors: kept.routes.errors.clone(),
        };
        out.firewall.merge(kept.legacy.value.clone());
        out.errors.extend(kept.nft.errors.iter().cloned());
        out.errors.extend(kept.legacy.errors.iter().cloned());
        out
    }
}

/// Inside the job's namespace: opens the watchers the first time (before reading, so a change
/// in between is seen next round), reads the marks, decides, and reads what changed.
fn visit(job: Job, tools: &Tools, proc_root: &Path) -> Visit {
    let mut watchers = job.watchers;
    let mut generation = job.generation;
    if job.before.is_none() {
        let nf = tools.nft.as_ref().and_then(|_| NfTables::open().ok());
        watchers = Watchers {
            // Subscribed before the generation is asked, so a change in between speaks.
            nf_changes: nf.as_ref().and_then(|_| NfWatch::open().ok()),
            // Only where nf_tables is there: asking for it would load the module otherwise.
            nf,
            routes: RouteWatch::open().ok(),
            legacy: None,
            watched: false,
        };
        generation = watchers.nf.as_mut().and_then(|nf| nf.generation().ok());
    }
    if tools.has_legacy() && watchers.legacy.is_none() {
        watchers.legacy = legacy_mark::KeptMark::open(&proc_root.join("thread-self/net"));
    }
    let marks = Marks {
        nft_generation: generation,
        legacy_rules: Some(match &watchers.legacy {
            Some(kept) => kept.mark(),
            None => legacy_rules_mark(tools, proc_root),
        }),
    };
    let refresh = decide(job.before.as_ref(), &marks, job.seen);
    let whom = who(&job.label, job.inode);
    let mut visit = Visit {
        marks,
        refresh,
        routes: Part::default(),
        nft: Part::default(),
        legacy: Part::default(),
        watchers,
    };
    if refresh.routes {
        let (routes, errors) = netlink::routes(job.inode, &job.label);
        visit.routes = Part {
            value: routes,
            errors,
        };
    }
    if refresh.nft {
        visit.nft = read_nft(
            tools,
            visit.watchers.nf.as_mut(),
            job.inode,
            &job.label,
            &whom,
        );
    }
    if refresh.legacy {
        visit.legacy = read_legacy(tools, proc_root, job.inode, &job.label, &whom);
    }
    visit
}

/// The mark of the calling thread's namespace's legacy rules (0 without the tools: nothing is
/// listed then).
fn legacy_rules_mark(tools: &Tools, proc_root: &Path) -> u64 {
    if !tools.has_legacy() {
        return 0;
    }
    legacy_mark::mark(&proc_root.join("thread-self/net"))
}

/// The nftables rules of the calling thread's namespace; no `nft` run when netlink says the
/// namespace has no table.
pub(super) fn read_nft(
    tools: &Tools,
    nf: Option<&mut NfTables>,
    inode: u32,
    label: &str,
    whom: &str,
) -> Part<Firewall> {
    let mut out = NamespaceFacts::default();
    let Some(path) = &tools.nft else {
        return Part::default();
    };
    if nf.is_some_and(|nf| nf.tables() == Ok(0)) {
        return Part::default();
    }
    let result = tools::run(path, &["-j", "list", "ruleset"]);
    add_listing(
        &mut out,
        "nft -j list ruleset",
        result,
        |t| nft::parse(t, inode, label),
        whom,
    );
    Part {
        value: out.firewall,
        errors: out.errors,
    }
}

/// The legacy iptables rules of the calling thread's namespace (tables listed only when it
/// has some).
pub(super) fn read_legacy(
    tools: &Tools,
    proc_root: &Path,
    inode: u32,
    label: &str,
    whom: &str,
) -> Part<Firewall> {
    let mut out = NamespaceFacts::default();
    let net = proc_root.join("thread-self/net");
    for (tool, names, ipv6, command) in [
        (
            &tools.iptables,
            "ip_tables_names",
            false,
            "iptables-save -c",
        ),
        (
            &tools.ip6tables,
            "ip6_tables_names",
            true,
            "ip6tables-save -c",
        ),
    ] {
        let Some(tool) = tool else { continue };
        if !super::has_legacy_tables(&net.join(names)) {
            continue;
        }
        let result = tools::run(tool, &["-c"]);
        add_listing(
            &mut out,
            command,
            result,
            |t| Ok(iptables::parse(t, ipv6, inode, label)),
            whom,
        );
    }
    Part {
        value: out.firewall,
        errors: out.errors,
    }
}
