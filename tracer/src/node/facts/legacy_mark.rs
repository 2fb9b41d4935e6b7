//! The cheap mark of a namespace's legacy iptables rules: a hash of every legacy table's info
//! and entries, as the kernel hands them to `iptables-legacy-save` (`IPT_SO_GET_INFO` /
//! `IPT_SO_GET_ENTRIES` and their IPv6 twins), with each rule's packet and byte counters zeroed
//! so that traffic alone never moves it. Read-only: it only asks, like `*-save` does; an error
//! goes into the mark instead of failing.

use std::{
    hash::{DefaultHasher, Hasher},
    mem::{offset_of, size_of},
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
    path::Path,
};

use nix::{
    errno::Errno,
    sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType},
};

// The uapi of <linux/netfilter_ipv4/ip_tables.h> and <linux/netfilter_ipv6/ip6_tables.h>. Neither
// the `libc` nor the `nix` crate has these options or structs (libc has only
// `IP6T_SO_ORIGINAL_DST`), and no maintained crate reads them, so they are written out here.

/// `XT_TABLE_MAXNAMELEN`.
const TABLE_NAME_LEN: usize = 32;
/// `NF_INET_NUMHOOKS`.
const HOOKS: usize = 5;
/// `IPT_SO_GET_INFO` (= `IP6T_SO_GET_INFO`, `IPT_BASE_CTL`).
const SO_GET_INFO: libc::c_int = 64;
/// `IPT_SO_GET_ENTRIES` (= `IP6T_SO_GET_ENTRIES`).
const SO_GET_ENTRIES: libc::c_int = 65;

/// `struct ipt_getinfo` (`struct ip6t_getinfo` is the same).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct GetInfo {
    name: [u8; TABLE_NAME_LEN],
    valid_hooks: u32,
    hook_entry: [u32; HOOKS],
    underflow: [u32; HOOKS],
    pub(super) num_entries: u32,
    size: u32,
}

/// The header of `struct ipt_get_entries` (the same for IPv6): the entries follow it, aligned
/// as an entry (its counters are 64-bit).
#[repr(C)]
struct GetEntries {
    name: [u8; TABLE_NAME_LEN],
    size: u32,
    entrytable: [u64; 0],
}

/// `struct xt_counters`.
#[repr(C)]
struct Counters {
    packets: u64,
    bytes: u64,
}

/// `struct ipt_ip`.
#[repr(C)]
struct IptIp {
    src: u32,
    dst: u32,
    src_mask: u32,
    dst_mask: u32,
    in_iface: [u8; 16],
    out_iface: [u8; 16],
    in_iface_mask: [u8; 16],
    out_iface_mask: [u8; 16],
    proto: u16,
    flags: u8,
    invflags: u8,
}

/// `struct ipt_entry`: the matches and then the target follow it, up to `next_offset`.
#[repr(C)]
struct IptEntry {
    ip: IptIp,
    nfcache: u32,
    target_offset: u16,
    next_offset: u16,
    comefrom: u32,
    counters: Counters,
}

/// `struct ip6t_ip6`.
#[repr(C)]
struct Ip6tIp6 {
    src: [u32; 4],
    dst: [u32; 4],
    src_mask: [u32; 4],
    dst_mask: [u32; 4],
    in_iface: [u8; 16],
    out_iface: [u8; 16],
    in_iface_mask: [u8; 16],
    out_iface_mask: [u8; 16],
    proto: u16,
    tos: u8,
    flags: u8,
    invflags: u8,
}

/// `struct ip6t_entry`.
#[repr(C)]
struct Ip6tEntry {
    ipv6: Ip6tIp6,
    nfcache: u32,
    target_offset: u16,
    next_offset: u16,
    comefrom: u32,
    counters: Counters,
}

// The sizes of the kernel headers on the 64-bit targets (checked there with gcc's sizeof).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const _: () = {
    assert!(size_of::<GetInfo>() == 84);
    assert!(size_of::<GetEntries>() == 40);
    assert!(size_of::<IptEntry>() == 112);
    assert!(offset_of!(IptEntry, counters) == 96);
    assert!(size_of::<Ip6tEntry>() == 168);
    assert!(offset_of!(Ip6tEntry, counters) == 152);
};

/// Where an entry's fields are, for one family.
pub(super) struct Layout {
    entry: usize,
    target_offset: usize,
    next_offset: usize,
    pub(super) counters: usize,
}

/// The two families of legacy tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    V4,
    V6,
}

impl Family {
    fn names_file(self) -> &'static str {
        match self {
            Family::V4 => "ip_tables_names",
            Family::V6 => "ip6_tables_names",
        }
    }

    fn socket_family(self) -> AddressFamily {
        match self {
            Family::V4 => AddressFamily::Inet,
            Family::V6 => AddressFamily::Inet6,
        }
    }

    /// The getsockopt level (`IPPROTO_IP` / `IPPROTO_IPV6`).
    fn level(self) -> libc::c_int {
        match self {
            Family::V4 => libc::IPPROTO_IP,
            Family::V6 => libc::IPPROTO_IPV6,
        }
    }

    pub(super) fn layout(self) -> Layout {
        match self {
            Family::V4 => Layout {
                entry: size_of::<IptEntry>(),
                target_offset: offset_of!(IptEntry, target_offset),
                next_offset: offset_of!(IptEntry, next_offset),
                counters: offset_of!(IptEntry, counters),
            },
            Family::V6 => Layout {
                entry: size_of::<Ip6tEntry>(),
                target_offset: offset_of!(Ip6tEntry, target_offset),
                next_offset: offset_of!(Ip6tEntry, next_offset),
                counters: offset_of!(Ip6tEntry, counters),
            },
        }
    }
}

/// Why a part could not be read; hashed into the mark (a changed error moves it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// The names file could not be read (NotFound: the module is not loaded).
    Names(std::io::ErrorKind),
    Socket(Errno),
    Info(Errno),
    Entries(Errno),
    /// A table name longer than the kernel's.
    LongName,
    /// The kernel said more bytes than asked or fewer than the info's size.
    ShortAnswer,
    /// An entry ran past the blob, or its offsets were impossible.
    Garbled,
    /// The walk found another number of entries than the info said.
    Count,
}

impl Failure {
    fn hash(self, hasher: &mut DefaultHasher) {
        let (kind, code): (u8, i32) = match self {
            Failure::Names(kind) => (1, kind as i32),
            Failure::Socket(e) => (2, e as i32),
            Failure::Info(e) => (3, e as i32),
            Failure::Entries(e) => (4, e as i32),
            Failure::LongName => (5, 0),
            Failure::ShortAnswer => (6, 0),
            Failure::Garbled => (7, 0),
            Failure::Count => (8, 0),
        };
        hasher.write_u8(0xEE);
        hasher.write_u8(kind);
        hasher.write_i32(code);
    }
}

/// The mark of the calling thread's namespace's legacy rules; `proc_net` is its
/// `/proc/thread-self/net`. Opens a raw socket only for a family with tables listed.
pub(crate) fn mark(proc_net: &Path) -> u64 {
    mark_with(
        |family| std::fs::read_to_string(proc_net.join(family.names_file())),
        |family| open(family).map(Sock::Owned),
    )
}

/// A raw socket to ask on: opened for one mark, or kept ([`KeptMark`]).
enum Sock<'a> {
    Owned(OwnedFd),
    Kept(BorrowedFd<'a>),
}

impl Sock<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Sock::Owned(fd) => fd.as_fd(),
            Sock::Kept(fd) => *fd,
        }
    }
}

/// One namespace's names files and raw sockets, opened inside it and kept: an open
/// `/proc/net` file and a socket stay bound to the namespace they were opened in, so
/// [`KeptMark::mark`] gives from any thread what [`mark`] gives inside the namespace, and a
/// facts round need not enter a namespace to see that its legacy rules did not move.
#[derive(Debug)]
pub(crate) struct KeptMark {
    /// Per family ([`Family::V4`], [`Family::V6`]): the names file and its socket; None when
    /// the names file is absent (the module is not loaded: a caller that sees it loaded since
    /// opens a new set).
    families: [Option<(std::fs::File, OwnedFd)>; 2],
}

impl KeptMark {
    /// The calling thread's namespace's set (`proc_net` is its `/proc/thread-self/net`); None
    /// when a file or socket that should open did not (the caller marks as before then).
    pub(crate) fn open(proc_net: &Path) -> Option<KeptMark> {
        let one = |family: Family| -> Option<Option<(std::fs::File, OwnedFd)>> {
            match std::fs::File::open(proc_net.join(family.names_file())) {
                Ok(file) => Some(Some((file, open(family).ok()?))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(None),
                Err(_) => None,
            }
        };
        Some(KeptMark {
            families: [one(Family::V4)?, one(Family::V6)?],
        })
    }

    /// The mark of the namespace the set was opened in, as [`mark`] gives it there.
    pub(crate) fn mark(&self) -> u64 {
        let slot = |family: Family| &self.families[usize::from(family == Family::V6)];
        mark_with(
            |family| match slot(family) {
                Some((file, _)) => read_whole(file),
                None => Err(std::io::ErrorKind::NotFound.into()),
            },
            |family| match slot(family) {
                Some((_, fd)) => Ok(Sock::Kept(fd.as_fd())),
                None => Err(Failure::Socket(Errno::EBADF)),
            },
        )
    }
}

/// A kept procfs file's whole text, read again from offset 0.
fn read_whole(file: &std::fs::File) -> std::io::Result<String> {
    use std::os::unix::fs::FileExt as _;
    let mut text = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let n = file.read_at(&mut chunk, text.len() as u64)?;
        if n == 0 {
            break;
        }
        text.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(text).map_err(|_| std::io::ErrorKind::InvalidData.into())
}

/// [`mark`] with its two sources given: each family's table names and a socket to ask on.
fn mark_with<'a>(
    names_of: impl Fn(Family) -> std::io::Result<String>,
    socket_of: impl Fn(Family) -> Result<Sock<'a>, Failure>,
) -> u64 {
    let mut hasher = DefaultHasher::new();
    for family in [Family::V4, Family::V6] {
        hasher.write_u8(family as u8);
        let names = match names_of(family) {
            Ok(names) => names,
            Err(e) => {
                Failure::Names(e.kind()).hash(&mut hasher);
                continue;
            }
        };
        let names: Vec<&str> = names.split_whitespace().collect();
        if names.is_empty() {
            continue;
        }
        let fd = match socket_of(family) {
            Ok(fd) => fd,
            Err(failure) => {
                failure.hash(&mut hasher);
                continue;
            }
        };
        for name in names {
            hasher.write(name.as_bytes());
            hasher.write_u8(0xFF);
            match read_table(fd.fd(), family, name) {
                Ok((info, mut blob)) => {
                    if let Err(failure) = hash_table(&mut hasher, family, &info, &mut blob) {
                        failure.hash(&mut hasher);
                    }
                }
                Err(failure) => failure.hash(&mut hasher),
            }
        }
    }
    hasher.finish()
}

/// The raw socket the tables of `family` are asked on, in the calling thread's namespace.
pub(super) fn open(family: Family) -> Result<OwnedFd, Failure> {
    socket(
        family.socket_family(),
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Raw,
    )
    .map_err(Failure::Socket)
}

/// A table's info and entries, asked again once when the table changed size between the two
/// calls (`EAGAIN`) or was gone for a moment (`ENOENT`).
pub(super) fn read_table(
    fd: BorrowedFd<'_>,
    family: Family,
    name: &str,
) -> Result<(GetInfo, Vec<u8>), Failure> {
    let mut table = [0u8; TABLE_NAME_LEN];
    // The name ends with a NUL inside the array.
    if name.len() >= TABLE_NAME_LEN {
        return Err(Failure::LongName);
    }
    table[..name.len()].copy_from_slice(name.as_bytes());
    let mut last = Failure::Entries(Errno::EAGAIN);
    for _ in 0..2 {
        let info = get_info(fd, family, table)?;
        match get_entries(fd, family, table, info.size) {
            Ok(blob) => return Ok((info, blob)),
            Err(Failure::Entries(e)) if e == Errno::EAGAIN || e == Errno::ENOENT => {
                last = Failure::Entries(e);
            }
            Err(other) => return Err(other),
        }
    }
    Err(last)
}

/// libc's getsockopt wrapped by hand (no crate has these options): fills `buf` and returns how
/// many bytes the kernel wrote.
fn getsockopt(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    option: libc::c_int,
    buf: *mut libc::c_void,
    capacity: usize,
) -> Result<usize, Errno> {
    let mut len = libc::socklen_t::try_from(capacity).map_err(|_| Errno::E2BIG)?;
    // SAFETY: `buf` points to `capacity` writable bytes (both callers pass a live buffer and its
    // size), `len` is a valid socklen_t, and the fd is open for the borrow.
    let rc = unsafe { libc::getsockopt(fd.as_raw_fd(), level, option, buf, &mut len) };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(len as usize)
}

fn get_info(
    fd: BorrowedFd<'_>,
    family: Family,
    name: [u8; TABLE_NAME_LEN],
) -> Result<GetInfo, Failure> {
    let mut info = GetInfo {
        name,
        ..GetInfo::default()
    };
    let got = getsockopt(
        fd,
        family.level(),
        SO_GET_INFO,
        (&raw mut info).cast(),
        size_of::<GetInfo>(),
    )
    .map_err(Failure::Info)?;
    if got != size_of::<GetInfo>() {
        return Err(Failure::ShortAnswer);
    }
    Ok(info)
}

/// The entries blob of `size` bytes (without the `GetEntries` header).
fn get_entries(
    fd: BorrowedFd<'_>,
    family: Family,
    name: [u8; TABLE_NAME_LEN],
    size: u32,
) -> Result<Vec<u8>, Failure> {
    let header = size_of::<GetEntries>();
    let mut buf = vec![0u8; header + size as usize];
    buf[..TABLE_NAME_LEN].copy_from_slice(&name);
    let at = offset_of!(GetEntries, size);
    buf[at..at + 4].copy_from_slice(&size.to_ne_bytes());
    let got = getsockopt(
        fd,
        family.level(),
        SO_GET_ENTRIES,
        buf.as_mut_ptr().cast(),
        buf.len(),
    )
    .map_err(Failure::Entries)?;
    if got != buf.len() {
        return Err(Failure::ShortAnswer);
    }
    buf.drain(..header);
    Ok(buf)
}

fn u16_at(blob: &[u8], at: usize) -> Option<u16> {
    blob.get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_ne_bytes)
}

/// Walks the entries by their `next_offset` (bounds-checked) and zeroes each one's counters;
/// returns how many entries there were.
fn zero_counters(blob: &mut [u8], family: Family) -> Result<u32, Failure> {
    let layout = family.layout();
    let mut at = 0usize;
    let mut entries = 0u32;
    while at < blob.len() {
        let rest = blob.len() - at;
        if rest < layout.entry {
            return Err(Failure::Garbled);
        }
        let (Some(target), Some(next)) = (
            u16_at(blob, at + layout.target_offset),
            u16_at(blob, at + layout.next_offset),
        ) else {
            return Err(Failure::Garbled);
        };
        let (target, next) = (usize::from(target), usize::from(next));
        if next < layout.entry || next > rest || target < layout.entry || target > next {
            return Err(Failure::Garbled);
        }
        let counters = at + layout.counters;
        blob[counters..counters + size_of::<Counters>()].fill(0);
        at += next;
        entries += 1;
    }
    Ok(entries)
}

/// Hashes one table's info and its entries with their counters zeroed.
pub(super) fn hash_table(
    hasher: &mut DefaultHasher,
    family: Family,
    info: &GetInfo,
    blob: &mut [u8],
) -> Result<(), Failure> {
    hasher.write_u32(info.valid_hooks);
    for at in info.hook_entry.iter().chain(&info.underflow) {
        hasher.write_u32(*at);
    }
    hasher.write_u32(info.num_entries);
    hasher.write_u32(info.size);
    if blob.len() != info.size as usize {
        return Err(Failure::ShortAnswer);
    }
    let entries = zero_counters(blob, family)?;
    if entries != info.num_entries {
        return Err(Failure::Count);
    }
    hasher.write(blob);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry of `family`: header with the given counters, `body` (matches and target) after.
    fn entry(family: Family, proto: u8, counters: (u64, u64), body: &[u8]) -> Vec<u8> {
        let layout = family.layout();
        let mut e = vec![0u8; layout.entry];
        // `proto` sits at the same place in both: right after the addresses and interfaces.
        let proto_at = match family {
            Family::V4 => offset_of!(IptIp, proto),
            Family::V6 => offset_of!(Ip6tIp6, proto),
        };
        e[proto_at] = proto;
        let target = u16::try_from(layout.entry).unwrap();
        let next = u16::try_from(layout.entry + body.len()).unwrap();
        e[layout.target_offset..layout.target_offset + 2].copy_from_slice(&target.to_ne_bytes());
        e[layout.next_offset..layout.next_offset + 2].copy_from_slice(&next.to_ne_bytes());
        e[layout.counters..layout.counters + 8].copy_from_slice(&counters.0.to_ne_bytes());
        e[layout.counters + 8..layout.counters + 16].copy_from_slice(&counters.1.to_ne_bytes());
        e.extend_from_slice(body);
        e
    }

    /// A 40-byte standard target: a 32-byte `xt_entry_target` with `name`, then the verdict.
    fn target(name: &str, verdict: i32) -> Vec<u8> {
        let mut t = vec![0u8; 40];
        t[..2].copy_from_slice(&40u16.to_ne_bytes());
        t[2..2 + name.len()].copy_from_slice(name.as_bytes());
        t[32..36].copy_from_slice(&verdict.to_ne_bytes());
        t
    }

    /// A table of rules given as (proto, counters, target name, verdict) and its info.
    fn table(family: Family, rules: &[(u8, (u64, u64), &str, i32)]) -> (GetInfo, Vec<u8>) {
        let blob: Vec<u8> = rules
            .iter()
            .flat_map(|(proto, counts, name, verdict)| {
                entry(family, *proto, *counts, &target(name, *verdict))
            })
            .collect();
        let info = GetInfo {
            name: *b"filter\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            valid_hooks: 0b1110,
            num_entries: u32::try_from(rules.len()).unwrap(),
            size: u32::try_from(blob.len()).unwrap(),
            ..GetInfo::default()
        };
        (info, blob)
    }

    fn mark_of(family: Family, info: &GetInfo, blob: &[u8]) -> (u64, Result<(), Failure>) {
        let mut hasher = DefaultHasher::new();
        let mut blob = blob.to_vec();
        let result = hash_table(&mut hasher, family, info, &mut blob);
        if let Err(failure) = result {
            failure.hash(&mut hasher);
        }
        (hasher.finish(), result)
    }

    const UDP: u8 = 17;
    const TCP: u8 = 6;
    /// `NF_DROP` and `NF_ACCEPT` as standard verdicts (`-verdict - 1`).
    const DROP: i32 = -1;
    const ACCEPT: i32 = -2;

    #[test]
    fn counters_do_not_move_the_mark_and_a_changed_rule_does() {
        for family in [Family::V4, Family::V6] {
            let rules = |counts: (u64, u64), proto: u8, verdict: i32, name: &str| {
                table(
                    family,
                    &[
                        (proto, counts, name, verdict),
                        (0, (counts.1, counts.0), "", ACCEPT),
                    ],
                )
            };
            let (info, quiet) = rules((0, 0), UDP, DROP, "");
            let (base, ok) = mark_of(family, &info, &quiet);
            assert_eq!(ok, Ok(()), "{family:?}");
            let (_, busy) = rules((12_345, 987_654_321), UDP, DROP, "");
            assert_eq!(
                mark_of(family, &info, &busy).0,
                base,
                "{family:?}: counters"
            );
            let (_, other_match) = rules((0, 0), TCP, DROP, "");
            assert_ne!(mark_of(family, &info, &other_match).0, base, "{family:?}");
            let (_, other_verdict) = rules((0, 0), UDP, ACCEPT, "");
            assert_ne!(mark_of(family, &info, &other_verdict).0, base, "{family:?}");
            let (_, other_target) = rules((0, 0), UDP, DROP, "REJECT");
            assert_ne!(mark_of(family, &info, &other_target).0, base, "{family:?}");
            let moved_hook = GetInfo {
                hook_entry: [0, 0, 0, 0, 1],
                ..info
            };
            assert_ne!(mark_of(family, &moved_hook, &quiet).0, base, "{family:?}");
        }
    }

    #[test]
    fn a_truncated_or_garbled_blob_is_an_error_mark_not_a_panic() {
        let family = Family::V4;
        let layout = family.layout();
        let (info, blob) = table(family, &[(UDP, (1, 2), "", DROP), (0, (3, 4), "", ACCEPT)]);
        let (good, ok) = mark_of(family, &info, &blob);
        assert_eq!(ok, Ok(()));
        let first_len = layout.entry + 40;
        let set_u16 = |blob: &mut Vec<u8>, at: usize, v: u16| {
            blob[at..at + 2].copy_from_slice(&v.to_ne_bytes());
        };
        let mut cases: Vec<(&str, GetInfo, Vec<u8>, Failure)> = Vec::new();
        // Cut anywhere: the blob no longer matches the info's size.
        for cut in [0, 1, 50, first_len, blob.len() - 1] {
            cases.push(("cut", info, blob[..cut].to_vec(), Failure::ShortAnswer));
        }
        // Cut inside the second entry with an info that agrees: the walk runs out.
        for cut in [first_len + 1, first_len + layout.entry - 1, blob.len() - 1] {
            let short = GetInfo {
                size: u32::try_from(cut).unwrap(),
                ..info
            };
            cases.push(("walk", short, blob[..cut].to_vec(), Failure::Garbled));
        }
        for (what, next) in [("zero", 0u16), ("short", 8), ("past the end", 4000)] {
            let mut bad = blob.clone();
            set_u16(&mut bad, layout.next_offset, next);
            cases.push((what, info, bad, Failure::Garbled));
        }
        let mut bad = blob.clone();
        set_u16(
            &mut bad,
            layout.target_offset,
            u16::try_from(first_len + 1).unwrap(),
        );
        cases.push(("target past next", info, bad, Failure::Garbled));
        let fewer = GetInfo {
            num_entries: 1,
            ..info
        };
        cases.push(("count", fewer, blob.clone(), Failure::Count));
        for (what, info, bad, expected) in cases {
            let (mark, result) = mark_of(family, &info, &bad);
            assert_eq!(result, Err(expected), "{what}");
            assert_ne!(mark, good, "{what}");
        }
    }

    #[test]
    fn a_changed_error_moves_the_mark() {
        let mark = |f: Failure| {
            let mut h = DefaultHasher::new();
            f.hash(&mut h);
            h.finish()
        };
        assert_ne!(
            mark(Failure::Info(Errno::EPERM)),
            mark(Failure::Info(Errno::ENOPROTOOPT))
        );
        assert_ne!(
            mark(Failure::Info(Errno::EPERM)),
            mark(Failure::Entries(Errno::EPERM))
        );
        assert_ne!(
            mark(Failure::Names(std::io::ErrorKind::NotFound)),
            mark(Failure::Names(std::io::ErrorKind::PermissionDenied))
        );
    }

    /// Names missing (no module) or empty: no socket is opened, and the mark holds still.
    #[test]
    fn a_namespace_without_legacy_tables_has_a_steady_mark() {
        let dir = std::env::temp_dir().join(format!("trc-legacy-mark-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let absent = mark(&dir);
        assert_eq!(absent, mark(&dir));
        std::fs::write(dir.join("ip_tables_names"), "").unwrap();
        std::fs::write(dir.join("ip6_tables_names"), "").unwrap();
        let empty = mark(&dir);
        assert_eq!(empty, mark(&dir));
        assert_ne!(absent, empty, "the module loaded moves the mark");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
