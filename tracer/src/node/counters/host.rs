//! Host interfaces only: the kernel's standard statistics (over `/proc/net/dev`), driver
//! name/version and driver-private (`ethtool -S`) statistics. Read-only: no ethtool set calls,
//! no writes.
//!
//! The standard statistics are sysfs's `class/net/IF/statistics/` files. Live, they come from
//! one RTM_GETLINK dump instead (`IFLA_STATS64`): the same `dev_get_stats` numbers under the same
//! names, one message per interface rather than 24 files, which matters on a Kubernetes node
//! where the host has one veth per pod. Where the dump fails or misses an interface, the sysfs
//! files are read as before; fixtures have only the files.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

use netlink_packet_route::{
    link::{LinkAttribute, LinkMessage, Stats64},
    RouteNetlinkMessage,
};

use super::{
    ethtool::{is_quiet, EthtoolSocket},
    parse::{parse_ethtool_s_text, parse_single_u64},
};
use crate::{
    node::evidence::IfaceCounters,
    node::rtnetlink::{Dumped, Dumper},
};

/// Where the host's extra facts come from.
#[derive(Debug, Clone)]
pub(super) struct HostExtras {
    pub sys_root: PathBuf,
    /// True: ethtool ioctls in the calling thread's namespace; false: files only.
    pub live: bool,
}

/// Every file of `dir` (`/sys/class/net/IF/statistics`) as a number. A missing directory is
/// quietly empty (the caller keeps the `/proc/net/dev` values).
fn read_sysfs_stats(dir: &Path, ifname: &str, errors: &mut Vec<String>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return out,
        Err(err) => {
            errors.push(format!("cannot list {}: {err}", dir.display()));
            return out;
        }
    };
    let mut failed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        match std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|t| parse_single_u64(&t))
        {
            Some(value) => {
                out.insert(name, value);
            }
            None => failed.push(name),
        }
    }
    if !failed.is_empty() {
        failed.sort();
        errors.push(format!(
            "{ifname}: unreadable sysfs statistics {} in {}",
            failed.join(", "),
            dir.display()
        ));
    }
    out
}

/// The files of sysfs `statistics/` by name, from `IFLA_STATS64` (`struct rtnl_link_stats64`,
/// which sysfs prints field by field; its `rx_otherhost_dropped` has no file and is left out).
fn sysfs_names(s: &Stats64) -> [(&'static str, u64); 24] {
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

/// Every interface's standard statistics in the calling thread's namespace, by interface name,
/// from one RTM_GETLINK dump; None (after one sentence in `errors`) when the dump fails.
fn netlink_stats(errors: &mut Vec<String>) -> Option<BTreeMap<String, [(&'static str, u64); 24]>> {
    let dumped = Dumper::open()
        .and_then(|mut dumper| dumper.dump(&RouteNetlinkMessage::GetLink(LinkMessage::default())));
    let messages = match dumped {
        Ok(messages) => messages,
        Err(err) => {
            errors.push(format!(
                "interface statistics could not be dumped over netlink, so they are read from \
                 sysfs: {err}"
            ));
            return None;
        }
    };
    let mut out = BTreeMap::new();
    for message in messages {
        let Dumped::Decoded(RouteNetlinkMessage::NewLink(link)) = message else {
            continue;
        };
        let mut name = None;
        let mut stats = None;
        for attribute in link.attributes {
            match attribute {
                LinkAttribute::IfName(n) => name = Some(n),
                LinkAttribute::Stats64(s) => stats = Some(s),
                _ => {}
            }
        }
        if let (Some(name), Some(stats)) = (name, stats) {
            out.insert(name, sysfs_names(&stats));
        }
    }
    Some(out)
}

/// Driver from the basename of the `device/driver` symlink.
fn sysfs_driver(iface_dir: &Path) -> Option<String> {
    let link = std::fs::read_link(iface_dir.join("device/driver")).ok()?;
    let name = link.file_name()?.to_string_lossy().into_owned();
    (!name.is_empty()).then_some(name)
}

/// Version from `module/DRIVER/version` (out-of-tree modules have one).
fn module_version(sys_root: &Path, driver: &str) -> Option<String> {
    if driver.contains('/') || driver.starts_with('.') {
        return None;
    }
    let text =
        std::fs::read_to_string(sys_root.join("module").join(driver).join("version")).ok()?;
    let version = text.trim();
    (!version.is_empty()).then(|| version.to_owned())
}

fn non_empty(s: String) -> Option<String> {
    let s = s.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// Adds sysfs statistics, driver and ethtool statistics to the host's interfaces. With an empty
/// map (no `/proc/net/dev`), the interfaces are taken from `sys_root/class/net`.
pub(super) fn enrich(
    interfaces: &mut BTreeMap<String, IfaceCounters>,
    extras: &HostExtras,
    errors: &mut Vec<String>,
) {
    let class = extras.sys_root.join("class/net");
    if interfaces.is_empty() {
        if let Ok(entries) = std::fs::read_dir(&class) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                interfaces.entry(name).or_default();
            }
        }
    }
    let dumped = if extras.live {
        netlink_stats(errors)
    } else {
        None
    };
    let socket = if extras.live {
        match EthtoolSocket::open() {
            Ok(socket) => Some(socket),
            Err(err) => {
                errors.push(format!(
                    "cannot open a socket for ethtool ioctls, so no driver statistics: {err}"
                ));
                None
            }
        }
    } else {
        None
    };
    for (name, iface) in interfaces.iter_mut() {
        let dir = class.join(name);
        match dumped.as_ref().and_then(|d| d.get(name)) {
            Some(stats) => iface
                .stats
                .extend(stats.iter().map(|(k, v)| ((*k).to_owned(), *v))),
            None => {
                let sysfs = read_sysfs_stats(&dir.join("statistics"), name, errors);
                iface.stats.extend(sysfs);
            }
        }
        let ethtool_ok = name != "lo";
        if let (Some(socket), true) = (&socket, ethtool_ok) {
            match socket.drvinfo(name) {
                Ok(info) => {
                    iface.driver = non_empty(info.driver);
                    iface.driver_version = non_empty(info.version);
                }
                Err(err) if is_quiet(&err) => {}
                Err(err) => errors.push(format!("{name}: ethtool driver info failed: {err}")),
            }
            match socket.stats(name) {
                Ok(stats) => iface.ethtool = stats.into(),
                Err(err) if is_quiet(&err) => {}
                Err(err) => errors.push(format!("{name}: ethtool statistics failed: {err}")),
            }
        }
        if iface.driver.is_none() {
            iface.driver = sysfs_driver(&dir);
        }
        if iface.driver_version.is_none() {
            if let Some(driver) = &iface.driver {
                iface.driver_version = module_version(&extras.sys_root, driver);
            }
        }
        if !extras.live && ethtool_ok {
            let path = dir.join("ethtool_stats");
            match std::fs::read_to_string(&path) {
                Ok(text) => iface.ethtool = parse_ethtool_s_text(&text).into(),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => errors.push(format!("cannot read {}: {err}", path.display())),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The dump's statistics are sysfs's: the same names, and each value between the file's
    /// value read just before and just after the dump.
    #[test]
    fn netlink_statistics_are_the_sysfs_files() {
        let class = Path::new("/sys/class/net");
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
        let Some(dumped) = netlink_stats(&mut errors) else {
            panic!("no dump: {errors:?}");
        };
        assert!(errors.is_empty(), "{errors:?}");
        assert!(dumped.contains_key("lo"));
        for (name, stats) in &dumped {
            let Some(before) = before.get(name) else {
                continue; // appeared in between
            };
            let after = read_sysfs_stats(&class.join(name).join("statistics"), name, &mut errors);
            let names: Vec<&str> = stats.iter().map(|(k, _)| *k).collect();
            let mut sysfs: Vec<&str> = before.keys().map(String::as_str).collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sysfs.sort_unstable();
            assert_eq!(sorted, sysfs, "{name}");
            for (counter, value) in stats {
                assert!(
                    before[*counter] <= *value && *value <= after[*counter],
                    "{name} {counter}: sysfs {} then {}, netlink {value}",
                    before[*counter],
                    after[*counter]
                );
            }
        }
    }
}
