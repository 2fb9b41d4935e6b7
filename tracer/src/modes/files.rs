//! The files a mode reads and writes: `-` is stdin for an input (`diff`, `--replay`) and stdout
//! for `record -o`; a recording file is written whole or not at all — to a temporary file in the
//! same directory, renamed over the target only once it is complete, so a run killed mid-window
//! (SIGKILL, OOM) or refused (not root) never leaves an empty or half-written file, and an
//! existing file is replaced only with `--force`.

use std::{
    fs::OpenOptions,
    io::{ErrorKind, Read as _, Write as _},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};

/// True for the argument `-` (stdin or stdout).
pub fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// An input's name for people and its text: `-` reads stdin to its end.
pub fn read_input(path: &Path) -> Result<(String, String)> {
    if is_dash(path) {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin (given as -)")?;
        return Ok(("stdin".to_owned(), text));
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((path.display().to_string(), text))
}

/// Where `record -o` writes, decided (and checked) before the window starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `-o -`.
    Stdout,
    /// A regular file, new or (`replace`, with `--force`) existing: written beside it under a
    /// temporary name, then renamed into place.
    File { path: PathBuf, replace: bool },
    /// Something that exists and is not a regular file (`/dev/null`, a FIFO): written in place.
    Special(PathBuf),
}

impl Output {
    /// Decides where the recording goes without touching `path`: refuses an existing regular
    /// file unless `force`, a directory, and a directory that cannot take a new file (tried
    /// with a temporary file, removed at once).
    pub fn prepare(path: &Path, force: bool) -> Result<Output> {
        if is_dash(path) {
            return Ok(Output::Stdout);
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                bail!(
                    "{} is a directory; give -o a file name (or - for stdout)",
                    path.display()
                )
            }
            Ok(meta) if meta.is_file() => {
                if !force {
                    bail!(
                        "{} already exists; pass --force to replace it, or choose another file",
                        path.display()
                    );
                }
                // Through a symlink: replace the file it points at, not the link.
                let real = std::fs::canonicalize(path)
                    .with_context(|| format!("cannot resolve {}", path.display()))?;
                probe_directory(&real)?;
                Ok(Output::File {
                    path: real,
                    replace: true,
                })
            }
            Ok(_) => Ok(Output::Special(path.to_owned())),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                probe_directory(path)?;
                Ok(Output::File {
                    path: path.to_owned(),
                    replace: false,
                })
            }
            Err(e) => {
                Err(e).with_context(|| format!("cannot write the recording to {}", path.display()))
            }
        }
    }

    /// For people: the file name, or "stdout".
    pub fn name(&self) -> String {
        match self {
            Output::Stdout => "stdout".to_owned(),
            Output::File { path, .. } | Output::Special(path) => path.display().to_string(),
        }
    }

    /// Writes `text` whole: a file appears (or is replaced) only once all of it is on disk.
    pub fn write(&self, text: &str) -> Result<()> {
        match self {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .and_then(|()| out.flush())
                    .context("writing the recording to stdout")
            }
            Output::Special(path) => std::fs::write(path, text)
                .with_context(|| format!("writing the recording to {}", path.display())),
            Output::File { path, replace } => write_complete(path, *replace, text),
        }
    }
}

fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn temporary_beside(path: &Path, attempt: u32) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "recording".into(), |n| n.to_string_lossy());
    directory_of(path).join(format!(".{name}.{}-{attempt}.tmp", std::process::id()))
}

/// A new temporary file beside `path`, opened for writing.
fn create_temporary(path: &Path) -> Result<(PathBuf, std::fs::File)> {
    for attempt in 0..100 {
        let tmp = temporary_beside(path, attempt);
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot write the recording to {} (no new file can be made in {})",
                        path.display(),
                        directory_of(path).display()
                    )
                })
            }
        }
    }
    bail!(
        "cannot write the recording to {}: 100 temporary names taken in {}",
        path.display(),
        directory_of(path).display()
    )
}

/// Fails now, before a minute of watching, when the recording could not be written later.
fn probe_directory(path: &Path) -> Result<()> {
    let (tmp, file) = create_temporary(path)?;
    drop(file);
    let _ = std::fs::remove_file(&tmp);
    Ok(())
}

fn write_complete(path: &Path, replace: bool, text: &str) -> Result<()> {
    let (tmp, mut file) = create_temporary(path)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing the recording to {}", tmp.display()));
    drop(file);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if replace {
        return std::fs::rename(&tmp, path).with_context(|| {
            format!(
                "cannot move the recording into place at {}; it is complete in {}",
                path.display(),
                tmp.display()
            )
        });
    }
    // A link never replaces a file that appeared meanwhile (rename would).
    match std::fs::hard_link(&tmp, path) {
        Ok(()) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => bail!(
            "{} appeared while recording and was left alone; the recording is in {}",
            path.display(),
            tmp.display()
        ),
        // A file system without hard links: rename, still whole or nothing.
        Err(_) => std::fs::rename(&tmp, path).with_context(|| {
            format!(
                "cannot move the recording into place at {}; it is complete in {}",
                path.display(),
                tmp.display()
            )
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("trc-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn an_existing_file_is_refused_without_force_and_left_untouched() {
        let dir = scratch("exists");
        let file = dir.join("ev.json");
        std::fs::write(&file, "previous").unwrap();
        let err = Output::prepare(&file, false).unwrap_err();
        assert!(
            format!("{err:#}").contains("already exists; pass --force"),
            "{err:#}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "previous");
        let output = Output::prepare(&file, true).unwrap();
        // Prepared, not written: still the previous file, and no temporary left.
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "previous");
        assert_eq!(entries(&dir), ["ev.json"]);
        output.write("new").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        assert_eq!(entries(&dir), ["ev.json"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_new_file_appears_only_when_written_and_never_replaces_one_made_meanwhile() {
        let dir = scratch("new");
        let file = dir.join("ev.json");
        let output = Output::prepare(&file, false).unwrap();
        assert_eq!(
            entries(&dir),
            Vec::<String>::new(),
            "nothing before the write"
        );
        output.write("{}").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "{}");
        assert_eq!(entries(&dir), ["ev.json"]);
        // Someone else made the file during the window: theirs stays, ours is kept aside.
        std::fs::write(&file, "theirs").unwrap();
        let err = output.write("ours").unwrap_err();
        assert!(format!("{err:#}").contains("left alone"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "theirs");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dash_is_stdout_devices_are_written_in_place_and_bad_places_fail_first() {
        assert_eq!(
            Output::prepare(Path::new("-"), false).unwrap(),
            Output::Stdout
        );
        assert_eq!(
            Output::prepare(Path::new("/dev/null"), false).unwrap(),
            Output::Special("/dev/null".into())
        );
        let dir = scratch("bad");
        let err = Output::prepare(&dir, true).unwrap_err();
        assert!(format!("{err:#}").contains("is a directory"), "{err:#}");
        let err = Output::prepare(&dir.join("missing/ev.json"), false).unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot write the recording"),
            "{err:#}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
