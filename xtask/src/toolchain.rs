//! The pinned toolchains, read from the workspace's `rust-toolchain.toml` (the one place they
//! are written): `[toolchain]` is rustup's stable channel, `[ebpf]` the dated nightly, its
//! components, the bpf-linker version and the LLVM major version both must share.
//!
//! The file is read with a small line parser rather than a TOML crate: it only has to understand
//! `key = "value"` and `key = ["a", "b"]` under `[table]` headers, and tracer/build.rs reads the
//! same key the same way.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context as _, Result};

/// The toolchain file, at the workspace root.
pub const FILE: &str = "rust-toolchain.toml";

/// The pinned versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchains {
    /// rustup's channel for everything but the kernel crate, e.g. `1.98.0`.
    pub stable: String,
    /// Components of the stable toolchain (`clippy`, `rustfmt`).
    pub stable_components: Vec<String>,
    /// The dated nightly of the kernel crate, e.g. `nightly-2026-06-20`.
    pub nightly: String,
    /// Components of the nightly (`rust-src` for `-Z build-std=core`, `clippy`).
    pub nightly_components: Vec<String>,
    /// The bpf-linker version, e.g. `0.13.0`.
    pub bpf_linker: String,
    /// The LLVM major version of both the nightly and bpf-linker, e.g. `22`.
    pub llvm: u32,
}

impl Toolchains {
    /// Reads `rust-toolchain.toml` from the workspace root.
    pub fn load(root: &Path) -> Result<Self> {
        let path = root.join(FILE);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses the toolchain file's text.
    pub fn parse(text: &str) -> Result<Self> {
        let string = |table: &str, key: &str| -> Result<String> {
            match value(text, table, key) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s),
                _ => bail!("`{key}` in [{table}] must be a non-empty string"),
            }
        };
        let list = |table: &str, key: &str| -> Result<Vec<String>> {
            match value(text, table, key) {
                Some(Value::List(items)) => Ok(items),
                None => Ok(Vec::new()),
                Some(Value::String(_)) => bail!("`{key}` in [{table}] must be a list of strings"),
            }
        };
        let llvm = string("ebpf", "llvm")?;
        Ok(Self {
            stable: string("toolchain", "channel")?,
            stable_components: list("toolchain", "components")?,
            nightly: string("ebpf", "nightly")?,
            nightly_components: list("ebpf", "nightly-components")?,
            bpf_linker: string("ebpf", "bpf-linker")?,
            llvm: llvm
                .parse()
                .with_context(|| format!("`llvm` in [ebpf] is `{llvm}`, not a major version"))?,
        })
    }

    /// Debian's LLVM installation that bpf-linker is built against.
    pub fn llvm_prefix(&self) -> String {
        format!("/usr/lib/llvm-{}", self.llvm)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Value {
    String(String),
    List(Vec<String>),
}

/// The value of `key` in `[table]`, if it is a string or a one-line list of strings.
fn value(text: &str, table: &str, key: &str) -> Option<Value> {
    let mut current = "";
    for line in text.lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = header.trim();
            continue;
        }
        if current != table {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() != key {
            continue;
        }
        let v = strip_comment(v.trim());
        if let Some(inner) = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            let items = inner
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| unquote(item).map(str::to_owned))
                .collect::<Option<Vec<_>>>()?;
            return Some(Value::List(items));
        }
        return unquote(v).map(|s| Value::String(s.to_owned()));
    }
    None
}

/// `v` without a trailing `# comment` after a closing quote or bracket.
fn strip_comment(v: &str) -> &str {
    match v.rfind(['"', ']']) {
        Some(end) => &v[..=end],
        None => v,
    }
}

fn unquote(v: &str) -> Option<&str> {
    v.strip_prefix('"')?.strip_suffix('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_workspace_file() {
        let root = crate::cmd::workspace_root().expect("root");
        let pinned = Toolchains::load(&root).expect("rust-toolchain.toml parses");
        // Dated, never a floating channel: a fresh machine gets the same compilers.
        assert!(pinned
            .stable
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit()));
        assert!(
            pinned.nightly.starts_with("nightly-20"),
            "{}",
            pinned.nightly
        );
        assert!(pinned.nightly_components.iter().any(|c| c == "rust-src"));
        assert!(pinned.stable_components.iter().any(|c| c == "clippy"));
        assert_eq!(
            pinned.llvm_prefix(),
            format!("/usr/lib/llvm-{}", pinned.llvm)
        );
    }

    #[test]
    fn parses_tables_lists_and_comments() {
        let text = "# top\n[toolchain]\nchannel = \"1.98.0\"  # stable\n\
                    components = [\"clippy\", \"rustfmt\"]\n\n[ebpf]\n\
                    nightly = \"nightly-2026-06-20\"\nnightly-components = [\"rust-src\"]\n\
                    bpf-linker = \"0.13.0\"\nllvm = \"22\"\n";
        assert_eq!(
            Toolchains::parse(text).expect("parses"),
            Toolchains {
                stable: "1.98.0".into(),
                stable_components: vec!["clippy".into(), "rustfmt".into()],
                nightly: "nightly-2026-06-20".into(),
                nightly_components: vec!["rust-src".into()],
                bpf_linker: "0.13.0".into(),
                llvm: 22,
            }
        );
    }

    #[test]
    fn refuses_missing_or_malformed_keys() {
        let without_nightly =
            "[toolchain]\nchannel = \"1.98.0\"\n[ebpf]\nbpf-linker = \"0.13.0\"\nllvm = \"22\"\n";
        let err = Toolchains::parse(without_nightly).expect_err("no nightly");
        assert!(err.to_string().contains("`nightly` in [ebpf]"), "{err}");
        // A key of another table does not count.
        let misplaced = "[toolchain]\nchannel = \"1.98.0\"\nnightly = \"nightly-2026-06-20\"\n[ebpf]\nbpf-linker = \"0.13.0\"\nllvm = \"22\"\n";
        assert!(Toolchains::parse(misplaced).is_err());
        let bad_llvm = "[toolchain]\nchannel = \"1.98.0\"\n[ebpf]\nnightly = \"nightly-2026-06-20\"\nbpf-linker = \"0.13.0\"\nllvm = \"twenty-two\"\n";
        assert!(Toolchains::parse(bad_llvm).is_err());
    }
}
