//! Host interfaces only: the kernel's standard statistics (over `/proc/net/dev`), driver
//! name/version and driver-private (`ethtool -S`) statistics. Read-only: no ethtool set calls,
//! no writes.
//!
//! The standard statistics are sysfs's `class/net/IF/statistics/` files. Live, every
//! namespace's come from one RTM_GETLINK dump instead (see `links`): the same `dev_get_stats`
//! numbers under the same names, one message per interface rather than 24 files, which matters
//! on a Kubernetes node where the host has one veth per pod. Where the dump failed (the
//! interfaces then come from `/proc/net/dev`), the sysfs files are read as before; fixtures
//! have only the files.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

use super::{
    ethtool::{is_quiet, EthtoolSocket},
    parse::{parse_ethtool_s_text, parse_single_u64},
};
use crate::node::evidence::IfaceCounters;

/// Where the host's extra facts come from.
#[derive(Debug, Clone)]
pub(super) struct HostExtras {
    pub sys_root: PathBuf,
    /// True: ethtool ioctls in the calling thread's namespace; false: files only.
    pub live: bool,
}

/// Every file of `dir` (`/sys/class/net/IF/statistics`) as a number. A missing directory is
/// quietly empty (the caller keeps the `/proc/net/dev` values).
pub(super) fn read_sysfs_stats(
    dir: &Path,
    ifname: &str,
    errors: &mut Vec<String>,
) -> BTreeMap<String, u64> {
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

/// Adds sysfs statistics (unless `dumped`: the interfaces' statistics came from the netlink
/// dump, which are the same numbers), driver and ethtool statistics to the host's interfaces.
/// With an empty map (no `/proc/net/dev`), the interfaces are taken from `sys_root/class/net`.
pub(super) fn enrich(
    interfaces: &mut BTreeMap<String, IfaceCounters>,
    extras: &HostExtras,
    dumped: bool,
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
        if !dumped {
            let sysfs = read_sysfs_stats(&dir.join("statistics"), name, errors);
            iface.stats.extend(sysfs);
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
