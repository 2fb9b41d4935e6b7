//! One namespace's counter files and netlink socket, kept open between samples.
//!
//! Opening `/proc/thread-self/net/snmp` walks the path, allocates a file and a seq_file and
//! ties them to the namespace; reading it again later needs none of that: a `pread` from
//! offset 0 makes the kernel print the file afresh (`seq_read_iter` restarts at offset 0, and
//! sysctl files print their value on every read). So each namespace's files are opened once
//! and read with `pread` on every sample; a netlink socket is bound to the namespace it was
//! made in, so its socket is kept the same way. A namespace's set is dropped when the
//! namespace is no longer found (a kept `/proc/net` file holds the namespace alive).
//!
//! Descriptors are a process-wide budget: [`raise_nofile_limit`] raises the soft
//! `RLIMIT_NOFILE` to the hard one (at most [`NOFILE_CAP`]) once, and at most a quarter of the
//! limit is kept open across every set; beyond it a file is opened, read and closed as before.

use std::{
    cell::RefCell,
    collections::HashMap,
    fs::File,
    io,
    os::unix::fs::FileExt as _,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        OnceLock,
    },
};

use crate::node::rtnetlink::Dumper;

/// The highest soft descriptor limit asked for (the hard limit may be far higher).
pub const NOFILE_CAP: u64 = 1 << 20;

/// Descriptors kept open now, over every [`KeptFiles`].
static KEPT: AtomicUsize = AtomicUsize::new(0);

/// How many descriptors may be kept open: a quarter of the soft limit after it was raised.
pub(super) fn budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        let soft = raise_nofile_limit();
        usize::try_from(soft / 4).unwrap_or(usize::MAX)
    })
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (capped at [`NOFILE_CAP`]) and returns the
/// soft limit then in force. Never lowers it; on any failure the current soft limit stays.
pub fn raise_nofile_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    let wanted = hard.min(NOFILE_CAP);
    if wanted > soft && setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).is_ok() {
        return wanted;
    }
    soft
}

/// Takes one descriptor of the budget; false when it is spent.
fn reserve() -> bool {
    let limit = budget();
    if KEPT.fetch_add(1, Ordering::Relaxed) < limit {
        true
    } else {
        KEPT.fetch_sub(1, Ordering::Relaxed);
        false
    }
}

fn release(count: usize) {
    KEPT.fetch_sub(count, Ordering::Relaxed);
}

/// Room for any file read here in one `read` (`/proc/net/netstat` is ~4 KiB).
const READ_ROOM: usize = 16 * 1024;

/// One namespace's open counter files by path, and its netlink socket.
#[derive(Default)]
pub(super) struct KeptFiles {
    files: HashMap<PathBuf, File>,
    dumper: Option<Dumper>,
    /// False: nothing is kept (fixture reads, one-off samples).
    keep: bool,
}

impl std::fmt::Debug for KeptFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptFiles")
            .field("files", &self.files.len())
            .field("dumper", &self.dumper.is_some())
            .finish()
    }
}

impl KeptFiles {
    /// A set that keeps what it opens (within the budget).
    pub fn kept() -> Self {
        Self {
            files: HashMap::new(),
            dumper: None,
            keep: true,
        }
    }

    /// A set that keeps nothing: every read opens and closes its file.
    pub fn transient() -> Self {
        Self::default()
    }

    /// Descriptors this set holds.
    pub fn len(&self) -> usize {
        self.files.len() + usize::from(self.dumper.is_some())
    }

    /// The whole of the file at `path`, as text: from the kept file (`pread` from 0), or
    /// opened now (and kept when the budget allows).
    pub fn read(&mut self, path: &Path) -> io::Result<String> {
        if let Some(file) = self.files.get(path) {
            match read_all_at(file) {
                Ok(text) => return Ok(text),
                Err(_) => {
                    // E.g. a sysctl file whose table went away: open it afresh below.
                    self.files.remove(path);
                    release(1);
                }
            }
        }
        let file = File::open(path)?;
        let text = read_all_at(&file)?;
        if self.keep && reserve() {
            self.files.insert(path.to_path_buf(), file);
        }
        Ok(text)
    }

    /// The kept netlink socket, if any (the caller gives it back with [`KeptFiles::give_back`]).
    pub fn take_dumper(&mut self) -> Option<Dumper> {
        let dumper = self.dumper.take();
        if dumper.is_some() {
            release(1);
        }
        dumper
    }

    /// Keeps `dumper` for the next sample when the budget allows (else it is closed).
    pub fn give_back(&mut self, dumper: Dumper) {
        if self.keep && self.dumper.is_none() && reserve() {
            self.dumper = Some(dumper);
        }
    }
}

impl Drop for KeptFiles {
    fn drop(&mut self) {
        release(self.len());
    }
}

/// Reads `file` from offset 0 to its end with `pread` (one call fills a buffer with room for the
/// whole file, a second sees its end); UTF-8 text. The buffer is the reading thread's, reused
/// from file to file: a zeroed 16 KiB allocation per file read cost more than the copy out.
fn read_all_at(file: &File) -> io::Result<String> {
    thread_local! {
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        if buf.len() < READ_ROOM {
            buf.resize(READ_ROOM, 0);
        }
        let mut len = 0;
        loop {
            if len == buf.len() {
                buf.resize(len * 2, 0);
            }
            match file.read_at(&mut buf[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        match std::str::from_utf8(&buf[..len]) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_file_is_read_again_from_its_start() {
        let dir = std::env::temp_dir().join(format!("trc-kept-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("counter");
        std::fs::write(&path, "first reading, longer\n").unwrap();
        let mut kept = KeptFiles::kept();
        assert_eq!(kept.read(&path).unwrap(), "first reading, longer\n");
        assert_eq!(kept.len(), 1, "kept open");
        // Rewritten in place (the same file, as procfs prints afresh): the new text, all of it.
        std::fs::write(&path, "second\n").unwrap();
        assert_eq!(kept.read(&path).unwrap(), "second\n");
        assert_eq!(kept.len(), 1, "the same file, not another");
        // Beyond the first buffer's room.
        let long = "x".repeat(READ_ROOM * 2 + 7);
        std::fs::write(&path, &long).unwrap();
        assert_eq!(kept.read(&path).unwrap(), long);
        // A transient set keeps nothing; a missing file is the open's error.
        let mut once = KeptFiles::transient();
        assert_eq!(once.read(&path).unwrap().len(), long.len());
        assert_eq!(once.len(), 0);
        let missing = once.read(&dir.join("absent")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_soft_descriptor_limit_is_raised_to_the_hard_one() {
        use nix::sys::resource::{getrlimit, Resource};
        let soft = raise_nofile_limit();
        let (now_soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(soft, now_soft);
        assert_eq!(now_soft, hard.min(NOFILE_CAP).max(now_soft));
        assert!(budget() as u64 <= now_soft / 4);
    }
}
