//! Qdisc statistics per interface (`tc -s qdisc`): an rtnetlink RTM_GETQDISC dump of the
//! calling thread's namespace (live), or `class/net/IF/qdisc_stats` files (fixture). Read-only.

use std::{
    collections::{BTreeMap, HashMap},
    ffi::CStr,
    io,
    path::{Path, PathBuf},
};

use netlink_packet_core::NlasIterator;
use netlink_packet_route::{
    tc::{TcAttribute, TcMessage, TcStats, TcStats2, TcStatsQueue},
    RouteNetlinkMessage,
};

use crate::{
    node::evidence::{IfaceCounters, QdiscCounters},
    node::rtnetlink::{Dumped, Dumper},
};

/// `RTM_NEWQDISC`: the type of each message of a qdisc dump.
const RTM_NEWQDISC: u16 = 36;
/// `sizeof(struct tcmsg)`.
const TCMSG_LEN: usize = 20;
/// `TCA_KIND`, `TCA_STATS`, `TCA_STATS2` and, nested in the latter, `TCA_STATS_QUEUE`.
const TCA_KIND: u16 = 1;
const TCA_STATS: u16 = 3;
const TCA_STATS2: u16 = 7;
const TCA_STATS_QUEUE: u16 = 3;
/// `TC_H_ROOT`: the parent of an interface's root (egress) qdisc.
const TC_H_ROOT: u32 = 0xFFFF_FFFF;
/// `TC_H_INGRESS` (= `TC_H_CLSACT`): the parent of the `ingress` or `clsact` qdisc.
const TC_H_INGRESS: u32 = 0xFFFF_FFF1;
/// Name of the optional per-interface fixture file (see [`parse_qdisc_stats`]).
pub(crate) const FIXTURE_FILE: &str = "qdisc_stats";

/// Where qdisc statistics come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum QdiscSource {
    /// RTM_GETQDISC dump over a netlink socket opened by the calling thread (so in its namespace).
    Netlink,
    /// `DIR/IF/qdisc_stats` files, `DIR` being `sys_root/class/net`.
    Files(PathBuf),
}

impl QdiscSource {
    /// Netlink when live, else the fixture files under `sys_root/class/net`.
    pub(super) fn new(live: bool, sys_root: &Path) -> Self {
        if live {
            Self::Netlink
        } else {
            Self::Files(sys_root.join("class/net"))
        }
    }
}

/// A netlink socket already open in the namespace, and its interfaces' names by index.
pub(super) type SharedDump<'a> = (&'a mut Dumper, &'a HashMap<u32, String>);

/// Sets [`IfaceCounters::qdisc`] of every interface of `interfaces` that has a qdisc (live) or a
/// `qdisc_stats` file (fixture); the others keep `None`. Live, over `shared` when given (else
/// a socket of its own, the names from `if_indextoname`). Problems go to `errors`, one
/// sentence each.
pub(super) fn fill(
    interfaces: &mut BTreeMap<String, IfaceCounters>,
    source: &QdiscSource,
    shared: Option<SharedDump<'_>>,
    errors: &mut Vec<String>,
) {
    match source {
        QdiscSource::Netlink => fill_live(interfaces, shared, errors),
        QdiscSource::Files(dir) => fill_files(interfaces, dir, errors),
    }
}

// ---- fixture files ----------------------------------------------------------------------------

/// Parses a fixture `qdisc_stats` file: one `key value` pair a line, separated by white space,
/// e.g. `kind pfifo_fast`, `drops 12`, `overlimits 0`, `requeues 1`, `backlog_packets 0`.
/// `kind` is required; a missing counter is 0; blank lines, `#` comments and unknown keys are
/// ignored (the last of repeated keys wins). A counter that is not a `u64` is an error.
pub(crate) fn parse_qdisc_stats(text: &str) -> Result<QdiscCounters, String> {
    let mut out = QdiscCounters::default();
    let mut kind = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("line {} is not `key value`: {line:?}", number + 1));
        };
        let counter = match key {
            "kind" => {
                kind = Some(value.to_owned());
                continue;
            }
            "drops" => &mut out.drops,
            "overlimits" => &mut out.overlimits,
            "requeues" => &mut out.requeues,
            "backlog_packets" => &mut out.backlog_packets,
            _ => continue,
        };
        *counter = value
            .parse()
            .map_err(|_| format!("line {}: {key} is not a counter: {value:?}", number + 1))?;
    }
    out.kind = kind.ok_or_else(|| "no `kind` line".to_owned())?;
    Ok(out)
}

fn fill_files(
    interfaces: &mut BTreeMap<String, IfaceCounters>,
    dir: &Path,
    errors: &mut Vec<String>,
) {
    for (name, iface) in interfaces.iter_mut() {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            continue;
        }
        let path = dir.join(name).join(FIXTURE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => match parse_qdisc_stats(&text) {
                Ok(qdisc) => iface.qdisc = Some(qdisc),
                Err(err) => errors.push(format!("{}: {err}", path.display())),
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => errors.push(format!("cannot read {}: {err}", path.display())),
        }
    }
}

// ---- live: aggregation ------------------------------------------------------------------------

/// One qdisc of a dump: the interface, its parent handle and its counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct QdiscRow {
    ifindex: u32,
    parent: u32,
    kind: String,
    drops: u64,
    overlimits: u64,
    requeues: u64,
    qlen: u64,
}

impl QdiscRow {
    /// A row from the attributes of one qdisc: `TCA_STATS2`'s queue statistics when present, else
    /// the older `TCA_STATS` (which has no requeues), else zeros.
    fn new(
        ifindex: i32,
        parent: u32,
        kind: Option<String>,
        queue: Option<&TcStatsQueue>,
        compat: Option<&TcStats>,
    ) -> Option<Self> {
        let ifindex = u32::try_from(ifindex).ok().filter(|&i| i > 0)?;
        let mut row = Self {
            ifindex,
            parent,
            kind: kind.unwrap_or_default(),
            ..Self::default()
        };
        if let Some(q) = queue {
            row.drops = q.drops.into();
            row.overlimits = q.overlimits.into();
            row.requeues = q.requeues.into();
            row.qlen = q.qlen.into();
        } else if let Some(s) = compat {
            row.drops = s.drops.into();
            row.overlimits = s.overlimits.into();
            row.qlen = s.qlen.into();
        }
        Some(row)
    }

    fn from_message(msg: &TcMessage) -> Option<Self> {
        let mut kind = None;
        let mut queue = None;
        let mut compat = None;
        for attr in &msg.attributes {
            match attr {
                TcAttribute::Kind(k) => kind = Some(k.clone()),
                TcAttribute::Stats(s) => compat = Some(s),
                TcAttribute::Stats2(nested) => {
                    queue = nested.iter().find_map(|s| match s {
                        TcStats2::Queue(q) => Some(q),
                        _ => None,
                    });
                }
                _ => {}
            }
        }
        Self::new(
            msg.header.index,
            u32::from(msg.header.parent),
            kind,
            queue,
            compat,
        )
    }

    /// The same from the raw `tcmsg` and its attributes, for a message the crate cannot decode
    /// (e.g. options or xstats of a qdisc kind it parses strictly): only the fields needed here.
    fn from_raw(payload: &[u8]) -> Option<Self> {
        let header = payload.get(..TCMSG_LEN)?;
        let word = |at: usize| -> Option<[u8; 4]> { header.get(at..at + 4)?.try_into().ok() };
        let ifindex = i32::from_ne_bytes(word(4)?);
        let parent = u32::from_ne_bytes(word(12)?);
        let mut kind = None;
        let mut queue = None;
        let mut compat = None;
        for nla in NlasIterator::new(&payload[TCMSG_LEN..]) {
            let nla = nla.ok()?;
            match nla.kind() {
                TCA_KIND => {
                    let value = nla.value();
                    let name = CStr::from_bytes_until_nul(value)
                        .map(|c| c.to_string_lossy().into_owned())
                        .unwrap_or_else(|_| String::from_utf8_lossy(value).into_owned());
                    kind = Some(name);
                }
                TCA_STATS => compat = TcStats::parse(nla.value()).ok(),
                TCA_STATS2 => {
                    for inner in NlasIterator::new(nla.value()).flatten() {
                        if inner.kind() == TCA_STATS_QUEUE {
                            queue = TcStatsQueue::parse(inner.value()).ok();
                        }
                    }
                }
                _ => {}
            }
        }
        Self::new(ifindex, parent, kind, queue.as_ref(), compat.as_ref())
    }
}

/// Kinds whose root statistics already are the sum of their per-queue children: `mq_dump` and
/// `mqprio_dump` add every child's counters into the root's at dump time.
fn aggregates_children(kind: &str) -> bool {
    matches!(kind, "mq" | "mqprio")
}

/// The counters of each interface from the qdiscs of a dump. The rule:
/// - `kind` is the root (egress, parent `TC_H_ROOT`) qdisc's kind; with no root qdisc in the dump,
///   the kind of the first qdisc seen (e.g. `ingress` on an interface that is down);
/// - egress: when the root is `mq` or `mqprio`, the root's counters alone (the kernel already added
///   its children into them, so summing would count each child twice); otherwise the sum over
///   the root and every child qdisc of the interface. Note that a classful root (htb, tbf with
///   a visible child, prio…) also counts in its own `drops` the packets its child refused at
///   enqueue, so such drops can appear twice; drops made at dequeue (codel) appear once;
/// - the `ingress`/`clsact` qdisc (parent `TC_H_INGRESS`) is always added: its drops are packets
///   shot by tc filters on receive, which no egress qdisc counts.
///
/// Invisible qdiscs (the default child of tbf, netem…) are not in a dump without
/// `TCA_DUMP_INVISIBLE`, so they are never counted.
fn aggregate(rows: &[QdiscRow]) -> BTreeMap<u32, QdiscCounters> {
    let mut by_if: BTreeMap<u32, Vec<&QdiscRow>> = BTreeMap::new();
    for row in rows {
        by_if.entry(row.ifindex).or_default().push(row);
    }
    by_if
        .into_iter()
        .filter_map(|(ifindex, qdiscs)| {
            let root = qdiscs.iter().find(|r| r.parent == TC_H_ROOT);
            let kind = root.or_else(|| qdiscs.first())?.kind.clone();
            let root_only = root.is_some_and(|r| aggregates_children(&r.kind));
            let mut out = QdiscCounters {
                kind,
                ..QdiscCounters::default()
            };
            let counted = qdiscs
                .iter()
                .filter(|r| r.parent == TC_H_INGRESS || !root_only || r.parent == TC_H_ROOT);
            for r in counted {
                out.drops = out.drops.saturating_add(r.drops);
                out.overlimits = out.overlimits.saturating_add(r.overlimits);
                out.requeues = out.requeues.saturating_add(r.requeues);
                out.backlog_packets = out.backlog_packets.saturating_add(r.qlen);
            }
            Some((ifindex, out))
        })
        .collect()
}

// ---- live: netlink ----------------------------------------------------------------------------

/// `if_indextoname` in the calling thread's namespace.
fn index_to_name(index: u32) -> Option<String> {
    nix::net::if_::if_indextoname(index)
        .ok()
        .map(|name| name.to_string_lossy().into_owned())
}

/// Every qdisc of the calling thread's namespace, and how many messages could not be read.
fn qdisc_rows(dumper: &mut Dumper) -> Result<(Vec<QdiscRow>, usize), String> {
    let mut rows = Vec::new();
    let mut unread = 0;
    for msg in dumper.dump_raw(&RouteNetlinkMessage::GetQueueDiscipline(
        TcMessage::default(),
    ))? {
        let row = match &msg {
            Dumped::Decoded(RouteNetlinkMessage::NewQueueDiscipline(tc)) => {
                QdiscRow::from_message(tc)
            }
            Dumped::Raw { kind, payload } if *kind == RTM_NEWQDISC => QdiscRow::from_raw(payload),
            _ => continue,
        };
        match row {
            Some(row) => rows.push(row),
            None => unread += 1,
        }
    }
    Ok((rows, unread))
}

fn fill_live(
    interfaces: &mut BTreeMap<String, IfaceCounters>,
    shared: Option<SharedDump<'_>>,
    errors: &mut Vec<String>,
) {
    // Without the caller's link dump, names come from `if_indextoname` for the interfaces that
    // have qdiscs: an RTM_GETLINK dump of its own would cost more than the qdisc dump itself.
    let (result, names) = match shared {
        Some((dumper, names)) => (qdisc_rows(dumper), Some(names)),
        None => (
            Dumper::open().and_then(|mut dumper| qdisc_rows(&mut dumper)),
            None,
        ),
    };
    let (rows, unread) = match result {
        Ok(found) => found,
        Err(err) => {
            errors.push(format!("qdisc statistics could not be read: {err}"));
            return;
        }
    };
    if unread > 0 {
        errors.push(format!(
            "{unread} qdisc messages could not be decoded, so some interfaces' qdisc counters \
             may be low or missing"
        ));
    }
    for (ifindex, counters) in aggregate(&rows) {
        let name = match names {
            Some(names) => names.get(&ifindex).cloned(),
            None => index_to_name(ifindex),
        };
        if let Some(iface) = name.and_then(|n| interfaces.get_mut(&n)) {
            iface.qdisc = Some(counters);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::{fs::File, net::UdpSocket, os::unix::fs::MetadataExt as _, process::Command};

    use netlink_packet_core::Emitable as _;
    use netlink_packet_route::tc::TcHandle;

    use super::*;
    use crate::node::counters::CounterSource;

    #[test]
    fn fixture_file_parses() {
        let text = "kind pfifo_fast\ndrops 12\n\n# a comment\noverlimits 0\nrequeues 1\n\
                    backlog_packets 3\nfuture_key 9\n";
        let q = parse_qdisc_stats(text).unwrap();
        assert_eq!(
            q,
            QdiscCounters {
                kind: "pfifo_fast".to_owned(),
                drops: 12,
                overlimits: 0,
                requeues: 1,
                backlog_packets: 3,
            }
        );
        let only_kind = parse_qdisc_stats("  kind   noqueue  \n").unwrap();
        assert_eq!(only_kind.kind, "noqueue");
        assert_eq!(only_kind.drops, 0);
        assert!(parse_qdisc_stats("drops 1\n").unwrap_err().contains("kind"));
        assert!(parse_qdisc_stats("kind fq\ndrops many\n")
            .unwrap_err()
            .contains("line 2"));
        assert!(parse_qdisc_stats("kind fq\ndrops\n").is_err());
        assert!(parse_qdisc_stats("kind fq\ndrops -1\n").is_err());
        assert!(parse_qdisc_stats("").is_err());
    }

    #[test]
    fn fixture_files_fill_only_interfaces_that_have_one() {
        let dir = std::env::temp_dir().join(format!("trc-qdisc-fixture-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("eth0")).unwrap();
        std::fs::create_dir_all(dir.join("bad0")).unwrap();
        std::fs::write(
            dir.join("eth0").join(FIXTURE_FILE),
            "kind mq\ndrops 7\noverlimits 2\nrequeues 1\nbacklog_packets 0\n",
        )
        .unwrap();
        std::fs::write(dir.join("bad0").join(FIXTURE_FILE), "drops x\n").unwrap();
        let mut interfaces: BTreeMap<String, IfaceCounters> = ["eth0", "lo", "bad0"]
            .into_iter()
            .map(|n| (n.to_owned(), IfaceCounters::default()))
            .collect();
        let mut errors = Vec::new();
        assert_eq!(
            QdiscSource::new(false, Path::new("/r/sys")),
            QdiscSource::Files(PathBuf::from("/r/sys/class/net"))
        );
        fill(
            &mut interfaces,
            &QdiscSource::Files(dir.clone()),
            None,
            &mut errors,
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let eth0 = interfaces["eth0"].qdisc.as_ref().unwrap();
        assert_eq!(
            (eth0.kind.as_str(), eth0.drops, eth0.overlimits),
            ("mq", 7, 2)
        );
        assert_eq!(interfaces["lo"].qdisc, None);
        assert_eq!(interfaces["bad0"].qdisc, None);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("bad0"));
    }

    fn row(ifindex: u32, parent: u32, kind: &str, drops: u64) -> QdiscRow {
        QdiscRow {
            ifindex,
            parent,
            kind: kind.to_owned(),
            drops,
            overlimits: 1,
            requeues: 0,
            qlen: 2,
        }
    }

    #[test]
    fn mq_root_counts_alone_others_are_summed_ingress_always_added() {
        let rows = [
            // eth0: mq root (already the sum of its children) + pfifo_fast per queue + ingress.
            row(2, TC_H_ROOT, "mq", 30),
            row(2, 0x8001_0001, "pfifo_fast", 10),
            row(2, 0x8001_0002, "pfifo_fast", 20),
            row(2, TC_H_INGRESS, "ingress", 4),
            // veth0: htb root with two leaves: everything summed.
            row(3, TC_H_ROOT, "htb", 5),
            row(3, 0x0001_0010, "fq_codel", 6),
            row(3, 0x0001_0020, "fq_codel", 7),
            // if4: only a clsact qdisc in the dump.
            row(4, TC_H_INGRESS, "clsact", 1),
        ];
        let all = aggregate(&rows);
        assert_eq!(all[&2].kind, "mq");
        assert_eq!(all[&2].drops, 34);
        assert_eq!(all[&2].overlimits, 2);
        assert_eq!(all[&2].backlog_packets, 4);
        assert_eq!(all[&3].kind, "htb");
        assert_eq!(all[&3].drops, 18);
        assert_eq!(all[&3].backlog_packets, 6);
        assert_eq!(all[&4].kind, "clsact");
        assert_eq!(all[&4].drops, 1);
        assert_eq!(all.len(), 3);
    }

    /// A `tcmsg` with kind and statistics, as the kernel would send it.
    fn emitted(stats2: bool) -> TcMessage {
        let mut msg = TcMessage::with_index(7);
        msg.header.parent = TcHandle::ROOT;
        msg.attributes.push(TcAttribute::Kind("tbf".to_owned()));
        let mut compat = TcStats::default();
        compat.packets = 1;
        compat.drops = 11;
        compat.overlimits = 12;
        compat.qlen = 13;
        compat.backlog = 14;
        msg.attributes.push(TcAttribute::Stats(compat));
        if stats2 {
            let mut queue = TcStatsQueue::default();
            queue.qlen = 3;
            queue.backlog = 4;
            queue.drops = 198;
            queue.requeues = 5;
            queue.overlimits = 199;
            msg.attributes
                .push(TcAttribute::Stats2(vec![TcStats2::Queue(queue)]));
        }
        msg
    }

    #[test]
    fn stats2_is_preferred_and_raw_parsing_agrees_with_the_crate() {
        for stats2 in [true, false] {
            let msg = emitted(stats2);
            let mut bytes = vec![0u8; msg.buffer_len()];
            msg.emit(&mut bytes);
            let decoded = QdiscRow::from_message(&msg).unwrap();
            let raw = QdiscRow::from_raw(&bytes).unwrap();
            assert_eq!(decoded, raw);
            assert_eq!(
                (raw.ifindex, raw.parent, raw.kind.as_str()),
                (7, TC_H_ROOT, "tbf")
            );
            if stats2 {
                assert_eq!(
                    (raw.drops, raw.overlimits, raw.requeues, raw.qlen),
                    (198, 199, 5, 3)
                );
            } else {
                assert_eq!(
                    (raw.drops, raw.overlimits, raw.requeues, raw.qlen),
                    (11, 12, 0, 13)
                );
            }
        }
        assert_eq!(QdiscRow::from_raw(&[0u8; 8]), None);
    }

    #[test]
    fn own_namespace_dump_reads_or_says_why() {
        let mut interfaces = BTreeMap::new();
        interfaces.insert("lo".to_owned(), IfaceCounters::default());
        let mut errors = Vec::new();
        fill(&mut interfaces, &QdiscSource::Netlink, None, &mut errors);
        eprintln!("lo: {:?}; errors: {errors:?}", interfaces["lo"].qdisc);
        assert!(errors.is_empty(), "{errors:?}");
    }

    // ---- live ---------------------------------------------------------------------------------

    use crate::testkit::netns::NetnsGuard;

    #[test]
    fn live_tbf_drops_are_read_from_the_namespace() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (ip netns, tc, setns)");
            return;
        }
        if Command::new("tc").arg("-V").output().is_err() {
            eprintln!("skipped: `tc` is not installed (iproute2 provides it)");
            return;
        }
        let name = format!("trc-qd-{}", std::process::id());
        let Some(ns) = NetnsGuard::add(&name) else {
            return;
        };
        // A dummy device (NOARP); kernels without the dummy module get a veth pair whose end
        // `d0` has ARP off, so the neighbour resolves without any reply either way.
        let dummy = ns.run("ip", &["link", "add", "d0", "type", "dummy"]);
        if !dummy {
            eprintln!("no dummy device type: using a veth pair d0/d0p with arp off");
            assert!(ns.run(
                "ip",
                &["link", "add", "d0", "type", "veth", "peer", "name", "d0p"]
            ));
            assert!(ns.run("ip", &["link", "set", "d0", "arp", "off"]));
            assert!(ns.run("ip", &["link", "set", "d0p", "up"]));
        }
        assert!(ns.run("ip", &["link", "set", "d0", "up"]));
        assert!(ns.run("ip", &["addr", "add", "198.18.90.1/24", "dev", "d0"]));
        let tbf = [
            "qdisc", "replace", "dev", "d0", "root", "tbf", "rate", "8kbit", "burst", "1600",
            "limit", "1600",
        ];
        if !ns.run("tc", &tbf) {
            eprintln!("skipped: this kernel cannot attach a tbf qdisc");
            return;
        }

        let path = ns.path();
        let refused = std::thread::spawn(move || {
            let file = File::open(&path).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
            let payload = [0x5au8; 1000];
            (0..200)
                .filter(|_| socket.send_to(&payload, "198.18.90.2:9").is_err())
                .count()
        })
        .join()
        .unwrap();

        let inode = u32::try_from(std::fs::metadata(ns.path()).unwrap().ino()).unwrap();
        let sample = CounterSource::live().sample(0);
        let created = sample
            .netns
            .iter()
            .find(|n| n.inode == inode)
            .expect("the created namespace");
        let qdisc = created.interfaces["d0"]
            .qdisc
            .as_ref()
            .expect("d0 has qdisc counters");
        eprintln!(
            "d0: {qdisc:?}; {refused} sends refused; lo: {:?}; errors: {:?}",
            created.interfaces.get("lo").map(|i| &i.qdisc),
            sample.errors
        );
        assert_eq!(qdisc.kind, "tbf");
        assert!(qdisc.drops >= 100, "{qdisc:?}");
        assert!(qdisc.drops <= 200, "{qdisc:?}");
        assert!(
            !sample.errors.iter().any(|e| e.contains("qdisc")),
            "{:?}",
            sample.errors
        );
        drop(ns);
        assert!(!PathBuf::from("/run/netns").join(&name).exists());
    }
}

/// Property tests: the fixture file format and raw `tcmsg` attributes on any input, generated
/// and mangled; the per-interface sums on any dump.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod prop_tests {
    use netlink_packet_core::Emitable as _;
    use netlink_packet_route::tc::TcHandle;
    use proptest::prelude::*;

    use super::*;
    use crate::testkit::mutations::{config, mutated, ODD_NUMBERS};

    const FILES: &[&str] = &[
        "kind mq\ndrops 7\noverlimits 2\nrequeues 1\nbacklog_packets 0\n",
        "# tc -s qdisc\nkind fq_codel\ndrops 18446744073709551615\n",
    ];

    /// A counter read from the file is the number on its own line.
    fn from_file(text: &str, q: &QdiscCounters) -> Result<(), TestCaseError> {
        let has = |key: &str, value: &str| {
            text.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [key, value])
        };
        prop_assert!(has("kind", &q.kind), "kind {:?}", q.kind);
        for (key, value) in [
            ("drops", q.drops),
            ("overlimits", q.overlimits),
            ("requeues", q.requeues),
            ("backlog_packets", q.backlog_packets),
        ] {
            prop_assert!(value == 0 || has(key, &value.to_string()), "{key} {value}");
        }
        Ok(())
    }

    fn message(
        index: i32,
        kind: &str,
        compat: Option<(u32, u32, u32)>,
        queue: Option<(u32, u32, u32, u32)>,
    ) -> TcMessage {
        let mut msg = TcMessage::with_index(index);
        msg.header.parent = TcHandle::ROOT;
        msg.attributes.push(TcAttribute::Kind(kind.to_owned()));
        if let Some((drops, overlimits, qlen)) = compat {
            let mut s = TcStats::default();
            s.drops = drops;
            s.overlimits = overlimits;
            s.qlen = qlen;
            msg.attributes.push(TcAttribute::Stats(s));
        }
        if let Some((drops, overlimits, requeues, qlen)) = queue {
            let mut q = TcStatsQueue::default();
            q.drops = drops;
            q.overlimits = overlimits;
            q.requeues = requeues;
            q.qlen = qlen;
            msg.attributes
                .push(TcAttribute::Stats2(vec![TcStats2::Queue(q)]));
        }
        msg
    }

    fn bytes_of(msg: &TcMessage) -> Vec<u8> {
        let mut bytes = vec![0u8; msg.buffer_len()];
        msg.emit(&mut bytes);
        bytes
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_file_parses_or_says_which_line(text in "\\PC{0,120}") {
            match parse_qdisc_stats(&text) {
                Ok(q) => from_file(&text, &q)?,
                Err(e) => prop_assert!(!e.is_empty()),
            }
        }

        #[test]
        fn mangled_files_parse_or_say_which_line((_, text) in mutated(FILES)) {
            match parse_qdisc_stats(&text) {
                Ok(q) => from_file(&text, &q)?,
                Err(e) => prop_assert!(!e.is_empty()),
            }
        }

        /// A counter past `u64`, negative or not a number is an error naming its line.
        #[test]
        fn odd_numbers_are_errors(key in prop::sample::select(vec!["drops", "overlimits", "requeues", "backlog_packets"]), odd in prop::sample::select(&ODD_NUMBERS[..])) {
            prop_assume!(odd.parse::<u64>().is_err() && !odd.is_empty());
            let err = parse_qdisc_stats(&format!("kind fq\n{key} {odd}\n")).unwrap_err();
            prop_assert!(err.contains("line 2") && err.contains(key), "{err}");
        }

        /// Raw messages the crate emits read the same as the crate decodes them.
        #[test]
        fn raw_messages_agree_with_the_crate(
            index in any::<i32>(),
            kind in "[a-z_]{0,12}",
            compat in proptest::option::of(any::<(u32, u32, u32)>()),
            queue in proptest::option::of(any::<(u32, u32, u32, u32)>()),
        ) {
            let msg = message(index, &kind, compat, queue);
            let raw = QdiscRow::from_raw(&bytes_of(&msg));
            prop_assert_eq!(&raw, &QdiscRow::from_message(&msg));
            prop_assert_eq!(raw.is_some(), index > 0);
        }

        /// Raw messages cut or with bytes overwritten: no panic; a row read has the interface
        /// index the header says, and counters the message holds somewhere.
        #[test]
        fn mangled_raw_messages(
            index in 1i32..1000,
            drops in any::<u32>(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in proptest::option::of(any::<usize>()),
        ) {
            let mut bytes = bytes_of(&message(index, "htb", Some((drops, 1, 2)), Some((drops, 3, 4, 5))));
            for (at, b) in edits {
                let at = at % bytes.len();
                bytes[at] = b;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            if let Some(row) = QdiscRow::from_raw(&bytes) {
                let header_index = i32::from_ne_bytes(bytes[4..8].try_into().unwrap());
                prop_assert_eq!(i64::from(row.ifindex), i64::from(header_index));
                prop_assert!(row.drops <= u64::from(u32::MAX));
            }
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some(row) = QdiscRow::from_raw(&bytes) {
                prop_assert!(row.ifindex > 0);
            }
        }

        /// Sums per interface: only interfaces in the dump, a kind one of its qdiscs has, each
        /// counter at most the saturating sum of its qdiscs'.
        #[test]
        fn aggregates_are_bounded_by_their_rows(rows in proptest::collection::vec(
            (1u32..4, prop::sample::select(vec![TC_H_ROOT, TC_H_INGRESS, 0x8001_0001, 0x0001_0010]),
             prop::sample::select(vec!["mq", "mqprio", "htb", "fq_codel", "ingress"]),
             any::<u64>(), any::<u64>()),
            0..10,
        )) {
            let rows: Vec<QdiscRow> = rows.into_iter().map(|(ifindex, parent, kind, drops, qlen)| QdiscRow {
                ifindex, parent, kind: kind.to_owned(), drops, overlimits: drops, requeues: 0, qlen,
            }).collect();
            let out = aggregate(&rows);
            for (ifindex, q) in &out {
                let mine: Vec<&QdiscRow> = rows.iter().filter(|r| r.ifindex == *ifindex).collect();
                prop_assert!(!mine.is_empty());
                prop_assert!(mine.iter().any(|r| r.kind == q.kind));
                let total = mine.iter().fold(0u64, |a, r| a.saturating_add(r.drops));
                prop_assert!(q.drops <= total && q.overlimits <= total);
            }
            prop_assert!(rows.iter().all(|r| out.contains_key(&r.ifindex)));
        }
    }
}
