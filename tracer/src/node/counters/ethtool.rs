//! Driver name/version and driver-private statistics of one interface via the SIOCETHTOOL ioctl
//! (GDRVINFO, GSSET_INFO → GSTRINGS → GSTATS). Read-only: it never issues an ethtool set command.

use std::{
    collections::BTreeMap,
    ffi::c_void,
    io,
    os::fd::{AsRawFd as _, OwnedFd},
};

const SIOCETHTOOL: u64 = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;
const IFNAMSIZ: usize = 16;
/// More statistics than any driver has; a larger count is taken for a broken answer.
const MAX_STATS: usize = 1 << 16;

/// `struct ifreq` with the `ifr_data` member: name, then a pointer at offset 16 (40 bytes on
/// 64-bit; the padding makes it at least as large as the kernel's on every ABI).
#[allow(dead_code)] // `pad` is only for the kernel.
#[repr(C)]
struct IfReq {
    name: [u8; IFNAMSIZ],
    data: *mut c_void,
    pad: [u8; 16],
}

/// `struct ethtool_drvinfo`.
#[allow(dead_code)] // The kernel fills every field; only some are read here.
#[repr(C)]
struct DrvInfoRaw {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// `struct ethtool_sset_info` asking for one string set (room for one count).
#[allow(dead_code)] // `reserved` is only for the kernel.
#[repr(C)]
struct SsetInfoRaw {
    cmd: u32,
    reserved: u32,
    sset_mask: u64,
    data: [u32; 1],
}

/// What `ethtool -i` prints first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrvInfo {
    pub driver: String,
    pub version: String,
    /// Statistics count as the driver reported it with GDRVINFO.
    pub n_stats: u32,
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned()
}

/// The first `len` names of an ETH_SS_STATS string table: fixed 32-byte slots, each name
/// NUL-padded (or filling its slot), read lossily when not UTF-8. A short table gives the names
/// it has.
fn gstrings(table: &[u8], len: usize) -> Vec<String> {
    table
        .chunks(ETH_GSTRING_LEN)
        .take(len)
        .map(c_string)
        .collect()
}

/// Names paired with values, as `ethtool -S` shows them. A name that is empty (a slot of NULs)
/// is no counter and is skipped; a name given twice (some drivers repeat one) keeps its first
/// value, so the same counter is read from the same slot every time.
fn by_name(names: Vec<String>, values: Vec<u64>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (name, value) in names.into_iter().zip(values) {
        if !name.is_empty() {
            out.entry(name).or_insert(value);
        }
    }
    out
}

/// Whether an ioctl error means "this interface has none of that" (loopback, ifb, a gone device)
/// rather than a failure worth reporting.
pub fn is_quiet(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::ENODEV | libc::ENXIO)
    )
}

/// A datagram socket of the calling thread's network namespace, for ethtool ioctls.
pub struct EthtoolSocket(OwnedFd);

impl EthtoolSocket {
    /// Opens the socket in the current thread's network namespace.
    pub fn open() -> io::Result<Self> {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map(Self)
        .map_err(io::Error::from)
    }

    /// `ioctl(fd, SIOCETHTOOL, ifreq{ifname, data})`.
    ///
    /// # Safety
    /// `data` must point to a writable buffer, aligned for the command's struct, large enough for
    /// everything the kernel writes for that command, and valid for the whole call.
    unsafe fn ethtool(&self, ifname: &str, data: *mut c_void) -> io::Result<()> {
        let bytes = ifname.as_bytes();
        if bytes.is_empty() || bytes.len() >= IFNAMSIZ || bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface name {ifname:?} does not fit an ifreq"),
            ));
        }
        let mut req = IfReq {
            name: [0; IFNAMSIZ],
            data,
            pad: [0; 16],
        };
        for (dst, src) in req.name.iter_mut().zip(bytes) {
            *dst = *src;
        }
        // SAFETY: the fd is an open socket; `req` is a live, properly laid out `ifreq` whose data
        // pointer the caller guarantees (see the function's contract). SIOCETHTOOL with the GET
        // commands used in this module only reads device state.
        let rc =
            unsafe { libc::ioctl(self.0.as_raw_fd(), SIOCETHTOOL as _, &mut req as *mut IfReq) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// ETHTOOL_GDRVINFO.
    pub fn drvinfo(&self, ifname: &str) -> io::Result<DrvInfo> {
        let mut raw = DrvInfoRaw {
            cmd: ETHTOOL_GDRVINFO,
            driver: [0; 32],
            version: [0; 32],
            fw_version: [0; 32],
            bus_info: [0; 32],
            erom_version: [0; 32],
            reserved2: [0; 12],
            n_priv_flags: 0,
            n_stats: 0,
            testinfo_len: 0,
            eedump_len: 0,
            regdump_len: 0,
        };
        // SAFETY: `raw` is a `struct ethtool_drvinfo`, exactly what GDRVINFO writes, live for the call.
        unsafe { self.ethtool(ifname, (&mut raw as *mut DrvInfoRaw).cast())? };
        Ok(DrvInfo {
            driver: c_string(&raw.driver),
            version: c_string(&raw.version),
            n_stats: raw.n_stats,
        })
    }

    /// Number of statistics (ETH_SS_STATS strings) the driver has now.
    fn stats_count(&self, ifname: &str) -> io::Result<usize> {
        let mut raw = SsetInfoRaw {
            cmd: ETHTOOL_GSSET_INFO,
            reserved: 0,
            sset_mask: 1 << ETH_SS_STATS,
            data: [0],
        };
        // SAFETY: `raw` has the header plus one u32 per requested set (one set requested), which
        // is all the kernel writes back.
        unsafe { self.ethtool(ifname, (&mut raw as *mut SsetInfoRaw).cast())? };
        if raw.sset_mask & (1 << ETH_SS_STATS) == 0 {
            return Ok(0);
        }
        Ok(usize::try_from(raw.data[0]).unwrap_or(usize::MAX))
    }

    /// Room for `n` entries plus slack: the kernel writes as many as the driver has at the time
    /// of the call, which can grow between two ioctls (`ethtool -L`).
    fn capacity(n: usize) -> io::Result<usize> {
        if n > MAX_STATS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("driver reports {n} statistics"),
            ));
        }
        Ok(n.saturating_mul(2).saturating_add(1024))
    }

    /// ETHTOOL_GSTRINGS of ETH_SS_STATS: the names, in the order GSTATS returns values.
    fn stat_names(&self, ifname: &str, n: usize) -> io::Result<Vec<String>> {
        let cap = Self::capacity(n)?;
        // Header (cmd, string_set, len: 3 × u32) then cap × 32-byte names, as u32 words so the
        // buffer is aligned for the header.
        let mut buf = vec![0u32; 3 + cap * ETH_GSTRING_LEN / 4];
        buf[0] = ETHTOOL_GSTRINGS;
        buf[1] = ETH_SS_STATS;
        buf[2] = u32::try_from(n).unwrap_or(u32::MAX);
        // SAFETY: the buffer holds the `struct ethtool_gstrings` header and `cap` ≥ 2n + 1024
        // names, more than the driver's current count that the kernel writes; it lives on.
        unsafe { self.ethtool(ifname, buf.as_mut_ptr().cast())? };
        let len = usize::try_from(buf[2]).unwrap_or(usize::MAX);
        if len > cap {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("driver returned {len} statistic names for room of {cap}"),
            ));
        }
        let bytes: Vec<u8> = buf
            .get(3..)
            .unwrap_or_default()
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .collect();
        Ok(gstrings(&bytes, len))
    }

    /// ETHTOOL_GSTATS: `n` values.
    fn stat_values(&self, ifname: &str, n: usize) -> io::Result<Vec<u64>> {
        let cap = Self::capacity(n)?;
        // Header (cmd, n_stats: 2 × u32 = one u64 word) then cap × u64.
        let mut buf = vec![0u64; 1 + cap];
        let mut header = [0u8; 8];
        header[..4].copy_from_slice(&ETHTOOL_GSTATS.to_ne_bytes());
        header[4..].copy_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_ne_bytes());
        buf[0] = u64::from_ne_bytes(header);
        // SAFETY: the buffer holds the `struct ethtool_stats` header and `cap` ≥ 2n + 1024 values,
        // more than the driver's current count that the kernel writes; it lives on.
        unsafe { self.ethtool(ifname, buf.as_mut_ptr().cast())? };
        let header = buf[0].to_ne_bytes();
        let returned = u32::from_ne_bytes([header[4], header[5], header[6], header[7]]);
        let returned = usize::try_from(returned).unwrap_or(usize::MAX);
        if returned > cap {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("driver returned {returned} statistics for room of {cap}"),
            ));
        }
        Ok(buf.get(1..=returned).unwrap_or_default().to_vec())
    }

    /// Every driver-private statistic (`ethtool -S`) by name. An interface without any gives an
    /// empty map. Names are read again on each call, so a changed queue count is followed.
    pub fn stats(&self, ifname: &str) -> io::Result<BTreeMap<String, u64>> {
        let mut last_err = None;
        for _ in 0..3 {
            let n = match self.stats_count(ifname) {
                Ok(n) => n,
                Err(err) if err.raw_os_error() == Some(libc::EOPNOTSUPP) => self
                    .drvinfo(ifname)
                    .map(|d| usize::try_from(d.n_stats).unwrap_or(usize::MAX))?,
                Err(err) => return Err(err),
            };
            if n == 0 {
                return Ok(BTreeMap::new());
            }
            let names = self.stat_names(ifname, n)?;
            let values = self.stat_values(ifname, n)?;
            if names.len() == values.len() {
                return Ok(by_name(names, values));
            }
            last_err = Some(io::Error::new(
                io::ErrorKind::Interrupted,
                format!(
                    "statistics count changed while reading ({} names, {} values)",
                    names.len(),
                    values.len()
                ),
            ));
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("statistics could not be read")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn struct_layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<DrvInfoRaw>(), 196);
        assert_eq!(std::mem::offset_of!(DrvInfoRaw, n_stats), 180);
        assert_eq!(std::mem::offset_of!(SsetInfoRaw, data), 16);
        assert_eq!(std::mem::offset_of!(IfReq, data), 16);
        assert!(std::mem::size_of::<IfReq>() >= 40);
    }

    #[test]
    fn c_strings_stop_at_nul() {
        assert_eq!(c_string(b"ena\0\0\0"), "ena");
        assert_eq!(c_string(b"full"), "full");
        assert_eq!(c_string(b""), "");
    }

    #[test]
    fn names_that_do_not_fit_are_refused() {
        let Ok(sock) = EthtoolSocket::open() else {
            eprintln!("skipped: no AF_INET socket here");
            return;
        };
        assert_eq!(
            sock.drvinfo("a-name-longer-than-15").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(sock.stats("").is_err());
        let err = sock.drvinfo("trc-no-such0").unwrap_err();
        assert!(is_quiet(&err), "{err}");
    }

    #[test]
    fn loopback_has_no_private_statistics() {
        let Ok(sock) = EthtoolSocket::open() else {
            eprintln!("skipped: no AF_INET socket here");
            return;
        };
        match sock.stats("lo") {
            Ok(stats) => assert!(stats.is_empty(), "{stats:?}"),
            Err(err) => assert!(is_quiet(&err), "{err}"),
        }
    }
}

/// Property tests of the string-table and pairing code the ioctls feed: any bytes, any length.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod prop_tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testkit::mutations::config;

    /// A table of `names` as the kernel lays it out (NUL-padded 32-byte slots).
    fn table(names: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in names {
            let mut slot = [0u8; ETH_GSTRING_LEN];
            let bytes = n.as_bytes();
            let k = bytes.len().min(ETH_GSTRING_LEN);
            slot[..k].copy_from_slice(&bytes[..k]);
            out.extend(slot);
        }
        out
    }

    proptest! {
        #![proptest_config(config(256))]

        /// Any bytes and any claimed length: at most `len` names, one per whole or partial slot,
        /// none with a NUL, none longer than a slot's 32 bytes (3 bytes per byte when lossy).
        #[test]
        fn any_table_gives_bounded_names(bytes in proptest::collection::vec(any::<u8>(), 0..300), len in any::<usize>()) {
            let names = gstrings(&bytes, len);
            prop_assert!(names.len() <= len);
            prop_assert_eq!(names.len(), bytes.len().div_ceil(ETH_GSTRING_LEN).min(len));
            for (i, n) in names.iter().enumerate() {
                prop_assert!(!n.contains('\0'));
                prop_assert!(n.len() <= 3 * ETH_GSTRING_LEN);
                let slot = &bytes[i * ETH_GSTRING_LEN..bytes.len().min((i + 1) * ETH_GSTRING_LEN)];
                if let Ok(text) = std::str::from_utf8(slot.split(|b| *b == 0).next().unwrap_or_default()) {
                    prop_assert_eq!(n, text);
                }
            }
        }

        /// Names the kernel wrote read back exactly (names of exactly 32 bytes, with no NUL,
        /// included); paired with values they give the driver's counters, first of a repeated
        /// name kept, empty ones skipped, nothing else added.
        #[test]
        fn tables_round_trip_and_pair(
            names in proptest::collection::vec(prop_oneof!["[a-z0-9_]{0,32}", Just("rx_drops".to_owned())], 0..40),
            values in proptest::collection::vec(any::<u64>(), 0..40),
        ) {
            let read = gstrings(&table(&names), names.len());
            prop_assert_eq!(&read, &names);
            let stats = by_name(read, values.clone());
            for (name, value) in &stats {
                let first = names.iter().position(|n| n == name).unwrap();
                prop_assert_eq!(Some(value), values.get(first));
            }
            let expected: std::collections::BTreeSet<&String> = names
                .iter()
                .zip(&values)
                .filter(|(n, _)| !n.is_empty())
                .map(|(n, _)| n)
                .collect();
            prop_assert_eq!(stats.keys().collect::<std::collections::BTreeSet<_>>(), expected);
        }
    }

    #[test]
    fn empty_and_repeated_names() {
        let names = vec!["".to_owned(), "rx_drops".to_owned(), "rx_drops".to_owned()];
        let stats = by_name(names, vec![1, 2, 3]);
        assert_eq!(stats, BTreeMap::from([("rx_drops".to_owned(), 2)]));
        let mut full = vec![b'a'; ETH_GSTRING_LEN];
        full.extend(b"next\0");
        assert_eq!(gstrings(&full, 5), vec!["a".repeat(32), "next".to_owned()]);
    }
}
