//! Finds tracefs (mounting it when nothing has) and reads event `format` files from it.
//! The only write it ever makes is that mount, and it reports when it did.

use std::{
    fs,
    io::ErrorKind,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};

use crate::kernel::format::EventFormat;

/// Where tracefs is normally mounted, newest convention first.
const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// A tracefs mount the tracer can read formats from.
#[derive(Debug, Clone)]
pub struct Tracefs {
    pub root: PathBuf,
    /// True when the tracer mounted it itself (nothing had).
    pub mounted_by_tracer: bool,
}

impl Tracefs {
    /// Finds a mounted tracefs, or mounts one at `/sys/kernel/tracing`.
    pub fn locate_or_mount() -> Result<Self> {
        if let Some(root) = CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("events").is_dir())
        {
            return Ok(Self {
                root,
                mounted_by_tracer: false,
            });
        }
        let target = Path::new(CANDIDATES[0]);
        if !target.is_dir() {
            bail!(
                "tracefs is not mounted and {} does not exist: this kernel has no tracefs \
                 (CONFIG_TRACING off?) or /sys is not the host's",
                target.display()
            );
        }
        nix::mount::mount(
            Some("tracefs"),
            target,
            Some("tracefs"),
            nix::mount::MsFlags::MS_NOSUID
                | nix::mount::MsFlags::MS_NODEV
                | nix::mount::MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .with_context(|| {
            format!(
                "tracefs is not mounted and mounting it at {} failed; mount it by hand: \
                 mount -t tracefs nodev {}",
                target.display(),
                target.display()
            )
        })?;
        Ok(Self {
            root: target.to_path_buf(),
            mounted_by_tracer: true,
        })
    }

    /// The parsed format of `category/name`; `Ok(None)` when this kernel has no such event.
    pub fn event_format(&self, category: &str, name: &str) -> Result<Option<EventFormat>> {
        let path = self
            .root
            .join("events")
            .join(category)
            .join(name)
            .join("format");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", path.display()));
            }
        };
        let format =
            EventFormat::parse(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Some(format))
    }
}
