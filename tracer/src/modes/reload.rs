//! Files `tracer serve` re-reads while it runs (the TLS certificate and key, the token file):
//! a [`Watched`] file remembers the bytes it last saw and hands out new ones when they differ.
//!
//! Contents are compared, not modification times: a Kubernetes Secret volume swaps a symlink
//! (`..data`) and a test may rewrite a file within one timestamp tick; reading two small files a
//! second costs nothing. A file that cannot be read for a moment (mid-swap) is no change.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// How often the server looks at its watched files.
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// One file and the bytes last seen in it.
#[derive(Debug)]
pub struct Watched {
    path: PathBuf,
    seen: Vec<u8>,
}

impl Watched {
    /// Reads the file for the first time: a file that cannot be read is an error here.
    pub fn open(path: &Path, what: &str) -> Result<(Watched, Vec<u8>)> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the {what} {}", path.display()))?;
        Ok((
            Watched {
                path: path.to_owned(),
                seen: bytes.clone(),
            },
            bytes,
        ))
    }

    /// The file's new contents when they differ from the last seen; `None` when unchanged or
    /// unreadable for now.
    pub fn poll(&mut self) -> Option<Vec<u8>> {
        let bytes = std::fs::read(&self.path).ok()?;
        if bytes == self.seen {
            return None;
        }
        self.seen = bytes.clone();
        Some(bytes)
    }

    /// The bytes last seen.
    pub fn current(&self) -> &[u8] {
        &self.seen
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_reported_once_and_a_missing_file_is_no_change() {
        let dir = std::env::temp_dir().join(format!("tracer-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, "one").unwrap();
        let (mut w, first) = Watched::open(&path, "file").unwrap();
        assert_eq!(first, b"one");
        assert_eq!(w.poll(), None);
        // Same length, same second: still seen.
        std::fs::write(&path, "two").unwrap();
        assert_eq!(w.poll().as_deref(), Some(&b"two"[..]));
        assert_eq!(w.poll(), None);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(w.poll(), None);
        assert_eq!(w.current(), b"two");
        std::fs::write(&path, "two").unwrap();
        assert_eq!(w.poll(), None, "the same bytes back are no change");
        assert!(Watched::open(&dir.join("absent"), "token file")
            .unwrap_err()
            .to_string()
            .contains("cannot read the token file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
