//! Tables recorded from real kernels (drop reasons, reset reasons) for tests, and how a test
//! knows whether the running kernel is the one a table came from: the full release string and,
//! where recorded, the SHA-256 of its BTF (`tests/fixtures/kernel_ids.tsv`). Never a version
//! prefix: two builds of 6.18.44 number `skb_drop_reason` differently.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

/// One recorded kernel build and what was recorded from it.
pub struct RecordedKernel {
    /// `uname -r` of the build, in full.
    pub release: &'static str,
    /// `value name layer tag` rows of `enum skb_drop_reason` (prefix removed), with a header.
    pub drop_reasons: &'static str,
    /// `bpftool btf dump` lines of `enum sk_rst_reason`.
    pub rst_reasons: &'static str,
}

/// Every recorded kernel build.
pub const RECORDED: &[RecordedKernel] = &[
    RecordedKernel {
        release: "6.18.44-fc-v782",
        drop_reasons: include_str!("../../../tests/fixtures/drop_reasons_6.18.44-fc-v782.tsv"),
        rst_reasons: include_str!("../../../tests/fixtures/btf_sk_rst_reason_6.18.44-fc-v782.txt"),
    },
    RecordedKernel {
        release: "6.18.44-fc-v1272",
        drop_reasons: include_str!("../../../tests/fixtures/drop_reasons_6.18.44-fc-v1272.tsv"),
        rst_reasons: include_str!("../../../tests/fixtures/btf_sk_rst_reason_6.18.44-fc-v1272.txt"),
    },
];

const KERNEL_IDS: &str = include_str!("../../../tests/fixtures/kernel_ids.tsv");

/// A drop reason as recorded: its number on that build, name, the reference's layer and tag.
pub struct RecordedReason<'a> {
    pub value: u32,
    pub name: &'a str,
    pub layer: &'a str,
}

impl RecordedKernel {
    /// The drop-reason rows.
    pub fn drop_reason_rows(&self) -> Vec<RecordedReason<'static>> {
        self.drop_reasons
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let cols: Vec<&str> = line.split('\t').collect();
                assert!(cols.len() >= 3, "{}: bad row {line:?}", self.release);
                RecordedReason {
                    value: cols[0].parse().unwrap_or_else(|e| panic!("{line:?}: {e}")),
                    name: cols[1],
                    layer: cols[2],
                }
            })
            .collect()
    }

    /// The reset reasons: value → name without the `SK_RST_REASON_` prefix.
    pub fn rst_reason_values(&self) -> BTreeMap<u32, &'static str> {
        self.rst_reasons
            .lines()
            .filter(|l| l.contains("val="))
            .map(|line| {
                let name = line.split('\'').nth(1).unwrap_or_default();
                let value = line.rsplit("val=").next().unwrap_or_default().trim();
                let value = value.parse().unwrap_or_else(|e| panic!("{line:?}: {e}"));
                (value, name.strip_prefix("SK_RST_REASON_").unwrap_or(name))
            })
            .collect()
    }

    /// The BTF hash recorded for this build, if one was.
    fn btf_sha256(&self) -> Option<&'static str> {
        KERNEL_IDS
            .lines()
            .skip(1)
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .find(|cols| cols.first() == Some(&self.release))
            .and_then(|cols| cols.get(1).copied())
            .filter(|h| *h != "-")
    }

    /// Whether this is the running kernel: the same full release string and, where a BTF hash
    /// was recorded, the same BTF.
    pub fn is_running(&self) -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        self.is(release.trim(), running_btf_sha256)
    }

    /// Whether this is the kernel `release` whose BTF hashes to what `btf_sha256` returns
    /// (asked only when a hash was recorded).
    fn is(&self, release: &str, btf_sha256: impl FnOnce() -> Option<String>) -> bool {
        if release != self.release {
            return false;
        }
        match self.btf_sha256() {
            None => true,
            Some(recorded) => btf_sha256().is_some_and(|h| h == recorded),
        }
    }
}

/// SHA-256 of the running kernel's BTF, hex.
fn running_btf_sha256() -> Option<String> {
    let data = std::fs::read(crate::kernel::btf::VMLINUX_BTF).ok()?;
    Some(
        Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// The recorded kernel that is the running one, if any.
pub fn running() -> Option<&'static RecordedKernel> {
    RECORDED.iter().find(|k| k.is_running())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recorded_kernel_has_an_identity_and_whole_tables() {
        for k in RECORDED {
            assert!(
                KERNEL_IDS
                    .lines()
                    .any(|l| l.split('\t').next() == Some(k.release)),
                "{} missing from kernel_ids.tsv",
                k.release
            );
            let rows = k.drop_reason_rows();
            assert!(rows.len() > 100, "{}: {} reasons", k.release, rows.len());
            assert!(rows.iter().any(|r| r.name == "NETFILTER_DROP"));
            assert_eq!(k.rst_reason_values().len(), 26, "{}", k.release);
        }
        // The two 6.18.44 builds number their reasons differently: the reason this module exists.
        let value_of = |k: &RecordedKernel, name: &str| {
            k.drop_reason_rows()
                .iter()
                .find(|r| r.name == name)
                .map(|r| r.value)
        };
        assert_eq!(value_of(&RECORDED[0], "IPV6_NDISC_FRAG"), Some(99));
        assert_eq!(value_of(&RECORDED[1], "IPV6_NDISC_FRAG"), Some(100));
        assert_eq!(value_of(&RECORDED[1], "IPV6_TOO_MANY_EXTHDRS"), Some(99));
    }

    #[test]
    fn a_kernel_is_matched_by_full_release_and_btf_hash_never_by_prefix() {
        let (v782, v1272) = (&RECORDED[0], &RECORDED[1]);
        let hash = || Some(v1272.btf_sha256().unwrap_or_default().to_owned());
        let other = || Some("0".repeat(64));
        // Same version, another build: not the same kernel.
        assert!(!v782.is("6.18.44-fc-v1272", hash));
        assert!(!v1272.is("6.18.44-fc-v782", hash));
        assert!(!v1272.is("6.18.44", hash));
        // Same release string, another BTF: not the same kernel either.
        assert!(v1272.is("6.18.44-fc-v1272", hash));
        assert!(!v1272.is("6.18.44-fc-v1272", other));
        assert!(!v1272.is("6.18.44-fc-v1272", || None));
        // Recorded without a hash: the full release string decides.
        assert!(v782.is("6.18.44-fc-v782", other));
        assert!(RECORDED.iter().filter(|k| k.is_running()).count() <= 1);
    }
}
