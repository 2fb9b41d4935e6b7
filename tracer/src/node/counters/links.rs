//! Every interface's standard statistics in the reading thread's namespace, from one
//! RTM_GETLINK dump (`IFLA_STATS64`: the kernel's `dev_get_stats`, which sysfs `statistics/`
//! prints field by field) instead of the kernel formatting `/proc/net/dev` and this parsing it.
//! Read-only: dump requests only. The dump is read raw, two attributes per link
//! (`IFLA_IFNAME`, `IFLA_STATS64`), as the qdisc dump is: the crate's decoding of every
//! attribute of every link cost more than the kernel's answer (perf, 250 namespaces).
//!
//! The counters take sysfs's names and meanings, one kernel field each, in every namespace (the
//! host's had them already). `/proc/net/dev` adds some fields into one column under one of their
//! names (its `rx_dropped` column is `rx_dropped + rx_missed_errors`, see
//! [`proc_net_dev_columns`]); every field it added is kept under its own name, so nothing it
//! counted is lost, and a sum means what the column meant.

use std::{
    collections::{BTreeMap, HashMap},
    ffi::CStr,
    sync::OnceLock,
};

use netlink_packet_core::NlasIterator;
use netlink_packet_route::{
    link::{LinkAttribute, LinkMessage, Stats64},
    RouteNetlinkMessage,
};

use crate::node::{
    counterset::{CounterSet, Layout},
    rtnetlink::{Dumped, Dumper},
};

/// `RTM_NEWLINK`: the type of each message of a link dump.
const RTM_NEWLINK: u16 = 16;
/// `sizeof(struct ifinfomsg)`.
const IFINFOMSG_LEN: usize = 16;
/// `IFLA_IFNAME` and `IFLA_STATS64`.
const IFLA_IFNAME: u16 = 3;
const IFLA_STATS64: u16 = 23;

/// The sysfs names of `struct rtnl_link_stats64`'s first 24 fields, in the struct's order
/// (its 25th, `rx_otherhost_dropped`, has no sysfs file and is left out).
const STATS64_NAMES: [&str; 24] = [
    "rx_packets",
    "tx_packets",
    "rx_bytes",
    "tx_bytes",
    "rx_errors",
    "tx_errors",
    "rx_dropped",
    "tx_dropped",
    "multicast",
    "collisions",
    "rx_length_errors",
    "rx_over_errors",
    "rx_crc_errors",
    "rx_frame_errors",
    "rx_fifo_errors",
    "rx_missed_errors",
    "tx_aborted_errors",
    "tx_carrier_errors",
    "tx_fifo_errors",
    "tx_heartbeat_errors",
    "tx_window_errors",
    "rx_compressed",
    "tx_compressed",
    "rx_nohandler",
];

/// The 24 values (in [`STATS64_NAMES`] order) as a set, through one layout built once.
fn stats_set(values: &[u64; 24]) -> CounterSet<u64> {
    static LAYOUT: OnceLock<Option<Layout>> = OnceLock::new();
    match LAYOUT.get_or_init(|| Layout::new(&STATS64_NAMES)) {
        Some(layout) => layout.set(values),
        None => STATS64_NAMES
            .iter()
            .copied()
            .zip(values.iter().copied())
            .collect(),
    }
}

/// One link from a raw `RTM_NEWLINK` payload: its index, name and `IFLA_STATS64` values; None
/// when the header is short or the name is missing.
fn raw_link(payload: &[u8]) -> Option<(u32, String, Option<[u64; 24]>)> {
    let header = payload.get(..IFINFOMSG_LEN)?;
    let index = u32::from_ne_bytes(header.get(4..8)?.try_into().ok()?);
    let mut name = None;
    let mut stats = None;
    for nla in NlasIterator::new(&payload[IFINFOMSG_LEN..]) {
        let Ok(nla) = nla else { break };
        match nla.kind() {
            IFLA_IFNAME => {
                let value = nla.value();
                name = Some(
                    CStr::from_bytes_until_nul(value)
                        .map(|c| c.to_string_lossy().into_owned())
                        .unwrap_or_else(|_| String::from_utf8_lossy(value).into_owned()),
                );
            }
            IFLA_STATS64 => {
                let value = nla.value();
                let mut fields = [0u64; 24];
                if value.len() >= fields.len() * 8 {
                    let (chunks, _) = value.as_chunks::<8>();
                    for (field, bytes) in fields.iter_mut().zip(chunks) {
                        *field = u64::from_ne_bytes(*bytes);
                    }
                    stats = Some(fields);
                }
            }
            _ => {}
        }
    }
    Some((index, name?, stats))
}

/// The interfaces of one namespace, from one dump.
#[derive(Debug, Default)]
pub(super) struct Links {
    /// Interface name → its standard statistics under their sysfs names (empty when the
    /// kernel sent none for it).
    pub stats: BTreeMap<String, CounterSet<u64>>,
    /// Interface index → name (qdisc messages carry only the index).
    pub names: HashMap<u32, String>,
}

/// One RTM_GETLINK dump on `dumper` (opened in the namespace to read).
pub(super) fn read(dumper: &mut Dumper) -> Result<Links, String> {
    let messages = dumper.dump_raw(&RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
    Ok(from_messages(messages))
}

/// The links of a dump's messages (others are skipped).
pub(super) fn from_messages(messages: Vec<Dumped>) -> Links {
    let mut links = Links::default();
    for message in messages {
        let (index, name, stats) = match message {
            Dumped::Raw { kind, payload } if kind == RTM_NEWLINK => {
                let Some(link) = raw_link(&payload) else {
                    continue;
                };
                link
            }
            Dumped::Decoded(RouteNetlinkMessage::NewLink(link)) => {
                let index = link.header.index;
                let mut name = None;
                let mut stats = None;
                for attribute in link.attributes {
                    match attribute {
                        LinkAttribute::IfName(n) => name = Some(n),
                        LinkAttribute::Stats64(s) => stats = Some(sysfs_names(&s).map(|(_, v)| v)),
                        _ => {}
                    }
                }
                let Some(name) = name else { continue };
                (index, name, stats)
            }
            _ => continue,
        };
        let stats: CounterSet<u64> = stats.map(|s| stats_set(&s)).unwrap_or_default();
        links.names.insert(index, name.clone());
        links.stats.insert(name, stats);
    }
    links
}

/// The files of sysfs `statistics/` by name, from `IFLA_STATS64` (`struct rtnl_link_stats64`;
/// its `rx_otherhost_dropped` has no file and is left out).
pub(super) fn sysfs_names(s: &Stats64) -> [(&'static str, u64); 24] {
    [
        ("rx_packets", s.rx_packets),
        ("tx_packets", s.tx_packets),
        ("rx_bytes", s.rx_bytes),
        ("tx_bytes", s.tx_bytes),
        ("rx_errors", s.rx_errors),
        ("tx_errors", s.tx_errors),
        ("rx_dropped", s.rx_dropped),
        ("tx_dropped", s.tx_dropped),
        ("multicast", s.multicast),
        ("collisions", s.collisions),
        ("rx_length_errors", s.rx_length_errors),
        ("rx_over_errors", s.rx_over_errors),
        ("rx_crc_errors", s.rx_crc_errors),
        ("rx_frame_errors", s.rx_frame_errors),
        ("rx_fifo_errors", s.rx_fifo_errors),
        ("rx_missed_errors", s.rx_missed_errors),
        ("tx_aborted_errors", s.tx_aborted_errors),
        ("tx_carrier_errors", s.tx_carrier_errors),
        ("tx_fifo_errors", s.tx_fifo_errors),
        ("tx_heartbeat_errors", s.tx_heartbeat_errors),
        ("tx_window_errors", s.tx_window_errors),
        ("rx_compressed", s.rx_compressed),
        ("tx_compressed", s.tx_compressed),
        ("rx_nohandler", s.rx_nohandler),
    ]
}

/// `/proc/net/dev`'s 16 columns (under the names [`super::PROC_NET_DEV_COLUMNS`] gives them)
/// from the sysfs-named fields, summed as the kernel's `dev_seq_printf_stats` sums them.
pub fn proc_net_dev_columns(stats: &CounterSet<u64>) -> BTreeMap<String, u64> {
    let get = |name: &str| stats.get(name).copied().unwrap_or(0);
    let sum = |names: &[&str]| names.iter().map(|n| get(n)).fold(0u64, u64::wrapping_add);
    [
        ("rx_bytes", get("rx_bytes")),
        ("rx_packets", get("rx_packets")),
        ("rx_errors", get("rx_errors")),
        ("rx_dropped", sum(&["rx_dropped", "rx_missed_errors"])),
        ("rx_fifo_errors", get("rx_fifo_errors")),
        (
            "rx_frame_errors",
            sum(&[
                "rx_length_errors",
                "rx_over_errors",
                "rx_crc_errors",
                "rx_frame_errors",
            ]),
        ),
        ("rx_compressed", get("rx_compressed")),
        ("multicast", get("multicast")),
        ("tx_bytes", get("tx_bytes")),
        ("tx_packets", get("tx_packets")),
        ("tx_errors", get("tx_errors")),
        ("tx_dropped", get("tx_dropped")),
        ("tx_fifo_errors", get("tx_fifo_errors")),
        ("collisions", get("collisions")),
        (
            "tx_carrier_errors",
            sum(&[
                "tx_carrier_errors",
                "tx_aborted_errors",
                "tx_window_errors",
                "tx_heartbeat_errors",
            ]),
        ),
        ("tx_compressed", get("tx_compressed")),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::{net::UdpSocket, os::unix::fs::MetadataExt as _, path::PathBuf};

    use super::*;
    use crate::node::{
        counters::{parse_proc_net_dev, CounterSource, PROC_NET_DEV_COLUMNS},
        rtnetlink::read_datagram,
    };

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/rtnetlink")
    }

    /// A dump recorded in a lab namespace (`lo` and a veth `ve0`, after a few datagrams), and
    /// its `/proc/net/dev` read just after: the dump decodes to both interfaces, and their
    /// fields summed as the kernel sums them are the file's 16 columns exactly.
    #[test]
    fn a_recorded_dump_decodes_to_the_proc_net_dev_columns() {
        let bytes = std::fs::read(fixtures().join("getlink_dump.bin")).unwrap();
        let seq = u32::from_ne_bytes(bytes[8..12].try_into().unwrap());
        let (mut messages, mut interrupted) = (Vec::new(), false);
        let done = read_datagram(&bytes, seq, &mut messages, &mut interrupted).unwrap();
        assert!(done && !interrupted);
        let links = from_messages(messages);
        let text = std::fs::read_to_string(fixtures().join("proc_net_dev.txt")).unwrap();
        let dev = parse_proc_net_dev(&text);
        assert_eq!(
            links.stats.keys().collect::<Vec<_>>(),
            dev.keys().collect::<Vec<_>>()
        );
        for (name, stats) in &links.stats {
            assert_eq!(stats.len(), 24, "{name}");
            assert_eq!(proc_net_dev_columns(stats), dev[name], "{name}");
        }
        assert_eq!(links.stats["ve0"]["tx_packets"], 14);
        assert_eq!(links.stats["lo"]["rx_bytes"], 2030);
        assert_eq!(links.names.get(&1).map(String::as_str), Some("lo"));
    }

    /// The raw walk (two attributes) reads the recorded dump as the crate's full decoding does.
    #[test]
    fn raw_links_equal_the_decoded_ones() {
        let bytes = std::fs::read(fixtures().join("getlink_dump.bin")).unwrap();
        let seq = u32::from_ne_bytes(bytes[8..12].try_into().unwrap());
        let (mut decoded, mut interrupted) = (Vec::new(), false);
        assert!(read_datagram(&bytes, seq, &mut decoded, &mut interrupted).unwrap());
        let raw: Vec<Dumped> = bytes_messages(&bytes)
            .into_iter()
            .filter(|(kind, _)| *kind == RTM_NEWLINK)
            .map(|(kind, payload)| Dumped::Raw { kind, payload })
            .collect();
        assert_eq!(raw.len(), 2, "lo and ve0");
        let (from_raw, from_crate) = (from_messages(raw), from_messages(decoded));
        assert_eq!(from_raw.stats, from_crate.stats);
        assert_eq!(from_raw.names, from_crate.names);
        assert_eq!(from_raw.stats["ve0"]["tx_packets"], 14);
        // The order of the struct's fields is sysfs_names' order.
        let mut s = Stats64::default();
        s.rx_nohandler = 5;
        s.tx_window_errors = 3;
        let named = sysfs_names(&s);
        assert_eq!(named.map(|(n, _)| n), STATS64_NAMES);
        // A short or garbled payload is skipped, not a panic.
        assert!(raw_link(&[0u8; 8]).is_none());
        assert!(raw_link(&[0xffu8; 40]).is_none());
    }

    /// Each netlink message of a recorded datagram: its type and payload.
    fn bytes_messages(data: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut offset = 0;
        while offset + 16 <= data.len() {
            let len = u32::from_ne_bytes(data[offset..offset + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(data[offset + 4..offset + 6].try_into().unwrap());
            out.push((kind, data[offset + 16..offset + len].to_vec()));
            offset += (len + 3) & !3;
        }
        out
    }

    /// `/proc/net/dev` adds the fields the kernel sums into one column; each stays apart here.
    #[test]
    fn summed_columns_are_the_kernels_sums() {
        let mut stats = Stats64::default();
        stats.rx_dropped = 3;
        stats.rx_missed_errors = 4;
        stats.rx_length_errors = 1;
        stats.rx_over_errors = 2;
        stats.rx_crc_errors = 5;
        stats.rx_frame_errors = 7;
        stats.tx_carrier_errors = 10;
        stats.tx_aborted_errors = 20;
        stats.tx_window_errors = 30;
        stats.tx_heartbeat_errors = 40;
        stats.tx_fifo_errors = 9;
        let set: CounterSet<u64> = sysfs_names(&stats).into_iter().collect();
        let columns = proc_net_dev_columns(&set);
        assert_eq!(columns.len(), PROC_NET_DEV_COLUMNS.len());
        assert_eq!(columns["rx_dropped"], 7);
        assert_eq!(columns["rx_frame_errors"], 15);
        assert_eq!(columns["tx_carrier_errors"], 100);
        assert_eq!(columns["tx_fifo_errors"], 9);
        assert_eq!(set["rx_missed_errors"], 4);
    }

    /// Live: after real traffic over a veth between two lab namespaces, the counters a sample
    /// reads over netlink are the namespace's `/proc/net/dev`, packet for packet.
    #[test]
    fn live_netlink_counters_are_proc_net_dev_after_traffic() {
        use crate::testkit::netns::NetnsGuard;
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (ip netns, setns)");
            return;
        }
        let pid = std::process::id();
        let (Some(a), Some(b)) = (
            NetnsGuard::add(&format!("trc-lk-a-{pid}")),
            NetnsGuard::add(&format!("trc-lk-b-{pid}")),
        ) else {
            return;
        };
        let peer = format!("trc-lk-b-{pid}");
        let made = [
            a.run(
                "ip",
                &["link", "add", "lk0", "type", "veth", "peer", "name", "lk1"],
            ),
            a.run("ip", &["link", "set", "lk1", "netns", &peer]),
            a.run("ip", &["addr", "add", "198.18.91.1/24", "dev", "lk0"]),
            b.run("ip", &["addr", "add", "198.18.91.2/24", "dev", "lk1"]),
            // No IPv6 link-local address, so no DAD or router solicitation between the
            // file's reading and the dump's.
            a.run("ip", &["link", "set", "lk0", "addrgenmode", "none"]),
            b.run("ip", &["link", "set", "lk1", "addrgenmode", "none"]),
            a.run("ip", &["link", "set", "lk0", "up"]),
            b.run("ip", &["link", "set", "lk1", "up"]),
            a.run("ip", &["link", "set", "lo", "up"]),
        ];
        assert!(made.iter().all(|ok| *ok), "{made:?}");
        let path = a.path();
        let dev_text = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
            for i in 0..50u8 {
                socket.send_to(&[i; 300], "198.18.91.2:9").unwrap();
                socket.send_to(&[i; 200], "127.0.0.1:9").unwrap();
            }
            // Let the neighbour resolution and its queued datagrams finish.
            std::thread::sleep(std::time::Duration::from_millis(300));
            std::fs::read_to_string("/proc/thread-self/net/dev").unwrap()
        })
        .join()
        .unwrap();
        let inode = u32::try_from(std::fs::metadata(a.path()).unwrap().ino()).unwrap();
        let sample = CounterSource::live().sample(0);
        let ns = sample.netns(inode).expect("the lab namespace was read");
        let dev = parse_proc_net_dev(&dev_text);
        assert!(dev["lk0"]["tx_packets"] >= 50, "{dev:?}");
        assert!(dev["lo"]["rx_packets"] >= 50, "{dev:?}");
        for name in ["lo", "lk0"] {
            let stats = &ns.interfaces[name].stats;
            assert_eq!(stats.len(), 24, "{name}: {stats:?}");
            let columns = proc_net_dev_columns(stats);
            for column in ["rx_packets", "tx_packets", "rx_bytes", "tx_bytes"] {
                assert_eq!(columns[column], dev[name][column], "{name} {column}");
            }
            assert_eq!(columns, dev[name], "{name}: every column");
        }
        assert!(
            !sample.errors.iter().any(|e| e.contains("netlink")),
            "{:?}",
            sample.errors
        );
    }

    /// The dump's statistics are sysfs's: the same names, and each value between the file's
    /// value read just before and just after the dump (the test's own namespace).
    #[test]
    fn netlink_statistics_are_the_sysfs_files() {
        use crate::node::counters::host::read_sysfs_stats;
        let class = std::path::Path::new("/sys/class/net");
        let mut errors = Vec::new();
        let before: BTreeMap<String, BTreeMap<String, u64>> = std::fs::read_dir(class)
            .unwrap()
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let stats = read_sysfs_stats(&e.path().join("statistics"), &name, &mut errors);
                (name, stats)
            })
            .collect();
        let links = Dumper::open()
            .and_then(|mut dumper| read(&mut dumper))
            .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert!(links.stats.contains_key("lo"));
        for (name, stats) in &links.stats {
            let Some(before) = before.get(name) else {
                continue; // appeared in between
            };
            let after = read_sysfs_stats(&class.join(name).join("statistics"), name, &mut errors);
            let names: Vec<&str> = stats.keys().collect();
            let sysfs: Vec<&str> = before.keys().map(String::as_str).collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, sysfs, "{name}");
            for (counter, value) in stats.iter() {
                assert!(
                    before[counter] <= *value && *value <= after[counter],
                    "{name} {counter}: sysfs {} then {}, netlink {value}",
                    before[counter],
                    after[counter]
                );
            }
        }
    }
}
