//! What the tracer reads from the running kernel's BTF: struct member offsets the programs need
//! to find an event's network namespace, and the names of `enum skb_drop_reason`.
//! Read-only parsing of `/sys/kernel/btf/vmlinux`; it never guesses an offset.

use std::{collections::BTreeMap, path::Path};

use anyhow::{anyhow, bail, Context as _, Result};
use btf_rs::{Btf, Type};

/// Where the kernel publishes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Byte offsets, relative to the start of each struct, that lead from an skb or a socket to the
/// inode number of its network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct NetnsOffsets {
    /// `sk_buff.dev`
    pub skb_dev: u32,
    /// `sk_buff.sk`
    pub skb_sk: u32,
    /// `net_device.nd_net.net`
    pub dev_net: u32,
    /// `sock.__sk_common.skc_net.net`
    pub sk_net: u32,
    /// `net.ns.inum`
    pub net_inum: u32,
    /// `sk_buff.cb` + `tcp_skb_cb.tcp_gso_segs` (None when the kernel lays it out otherwise).
    pub skb_tcp_segs: Option<u32>,
}

/// The kernel's BTF, opened once.
pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    /// Opens `/sys/kernel/btf/vmlinux`.
    pub fn load() -> Result<Self> {
        Self::from_file(VMLINUX_BTF)
    }

    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let btf = Btf::from_file(path)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("reading kernel BTF from {}", path.display()))?;
        Ok(Self { btf })
    }

    /// Offsets for network-namespace attribution.
    pub fn netns_offsets(&self) -> Result<NetnsOffsets> {
        // `possible_net_t` wraps `struct net *net` (when CONFIG_NET_NS is set; without it there is
        // one namespace and the member is absent, which the error reports).
        Ok(NetnsOffsets {
            skb_dev: self.member_offset("sk_buff", &["dev"])?,
            skb_sk: self.member_offset("sk_buff", &["sk"])?,
            dev_net: self.member_offset("net_device", &["nd_net", "net"])?,
            sk_net: self.member_offset("sock", &["__sk_common", "skc_net", "net"])?,
            net_inum: self.member_offset("net", &["ns", "inum"])?,
            skb_tcp_segs: self
                .member_offset("sk_buff", &["cb"])
                .and_then(|cb| Ok(cb + self.member_offset("tcp_skb_cb", &["tcp_gso_segs"])?))
                .ok(),
        })
    }

    /// Values of `enum skb_drop_reason` by name, with the `SKB_DROP_REASON_` prefix removed
    /// (so `NO_SOCKET`, `NETFILTER_DROP`; `SKB_NOT_DROPPED_YET` and `SKB_CONSUMED` keep theirs).
    pub fn drop_reason_names(&self) -> Result<BTreeMap<u32, String>> {
        let types = self
            .btf
            .resolve_types_by_name("skb_drop_reason")
            .map_err(|e| anyhow!("{e}"))
            .context("enum skb_drop_reason not in BTF")?;
        for ty in types {
            if let Type::Enum(e) = ty {
                let mut names = BTreeMap::new();
                for member in &e.members {
                    let name = self.btf.resolve_name(member).map_err(|e| anyhow!("{e}"))?;
                    let name = name
                        .strip_prefix("SKB_DROP_REASON_")
                        .map(str::to_owned)
                        .unwrap_or(name);
                    // Aliases such as SUBSYS_MASK are not reasons; keep the first name per value.
                    if name == "SUBSYS_MASK" {
                        continue;
                    }
                    names.entry(member.val()).or_insert(name);
                }
                return Ok(names);
            }
        }
        bail!("skb_drop_reason is not an enum in this kernel's BTF")
    }

    /// Byte offset of a member path inside a struct, descending through anonymous structs and
    /// unions the way C does (`sk_buff.dev` lives in an anonymous union).
    pub fn member_offset(&self, struct_name: &str, path: &[&str]) -> Result<u32> {
        let mut current = self.named_struct(struct_name)?;
        let mut total_bits: u64 = 0;
        for (depth, name) in path.iter().enumerate() {
            let (bits, member_type) = self.find_member(&current, name)?.ok_or_else(|| {
                anyhow!(
                    "{struct_name}.{} not found in BTF",
                    path[..=depth].join(".")
                )
            })?;
            total_bits += u64::from(bits);
            if depth + 1 < path.len() {
                current = self.strip_modifiers(member_type)?;
            }
        }
        if !total_bits.is_multiple_of(8) {
            bail!("{struct_name}.{} is a bitfield", path.join("."));
        }
        u32::try_from(total_bits / 8).context("offset overflows u32")
    }

    fn named_struct(&self, name: &str) -> Result<Type> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("struct {name} not in BTF"))?;
        types
            .into_iter()
            .find(|t| matches!(t, Type::Struct(s) if !s.members.is_empty()))
            .ok_or_else(|| anyhow!("struct {name} has no definition in BTF"))
    }

    /// Follows typedef/const/volatile/restrict/type-tag to the underlying type.
    fn strip_modifiers(&self, mut ty: Type) -> Result<Type> {
        for _ in 0..32 {
            match &ty {
                Type::Typedef(_)
                | Type::Const(_)
                | Type::Volatile(_)
                | Type::Restrict(_)
                | Type::TypeTag(_) => {
                    let inner = ty
                        .as_btf_type()
                        .ok_or_else(|| anyhow!("BTF modifier without a type"))?;
                    ty = self
                        .btf
                        .resolve_chained_type(inner)
                        .map_err(|e| anyhow!("{e}"))?;
                }
                _ => return Ok(ty),
            }
        }
        bail!("BTF type chain too long")
    }

    /// Finds `name` among the members of a struct/union, looking inside anonymous members.
    /// Returns the member's bit offset relative to `ty` and its type.
    fn find_member(&self, ty: &Type, name: &str) -> Result<Option<(u32, Type)>> {
        let members = match ty {
            Type::Struct(s) | Type::Union(s) => &s.members,
            other => bail!("expected a struct or union, found {}", other.name()),
        };
        for member in members {
            let member_name = self.btf.resolve_name(member).unwrap_or_default();
            let member_type = self
                .btf
                .resolve_chained_type(member)
                .map_err(|e| anyhow!("{e}"))?;
            if member_name == name {
                return Ok(Some((member.bit_offset(), member_type)));
            }
            if member_name.is_empty() {
                let inner = self.strip_modifiers(member_type)?;
                if matches!(inner, Type::Struct(_) | Type::Union(_)) {
                    if let Some((bits, found)) = self.find_member(&inner, name)? {
                        return Ok(Some((member.bit_offset() + bits, found)));
                    }
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn live() -> Option<KernelBtf> {
        match KernelBtf::load() {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("skipped: no kernel BTF here ({e:#})");
                None
            }
        }
    }

    #[test]
    fn netns_offsets_from_live_btf() {
        let Some(btf) = live() else { return };
        let o = btf.netns_offsets().unwrap();
        // sk_buff starts with next, prev, then the union holding dev: offset 16 on every
        // 64-bit kernel since 4.x.
        assert_eq!(o.skb_dev, 16);
        // sock_common is the first member of sock, so the socket's net pointer sits inside
        // the first few cache lines, 8-byte aligned.
        assert_eq!(o.sk_net % 8, 0);
        assert!(o.sk_net < 256, "sk_net offset {}", o.sk_net);
        assert!(o.skb_sk > o.skb_dev && o.skb_sk < 64);
        assert!(o.dev_net > 0 && o.net_inum > 0);
    }

    #[test]
    fn missing_member_is_an_error_naming_the_path() {
        let Some(btf) = live() else { return };
        let err = btf
            .member_offset("sk_buff", &["no_such_member"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sk_buff.no_such_member"), "{err}");
    }

    #[test]
    fn drop_reason_names_agree_with_recorded_kernel_table() {
        let Some(btf) = live() else { return };
        let names = btf.drop_reason_names().unwrap();
        // Numbers differ between kernels; names are what must be present.
        assert!(names.values().any(|n| n == "NO_SOCKET"));
        assert!(names.values().any(|n| n == "NETFILTER_DROP"));
        assert!(!names.values().any(|n| n.starts_with("SKB_DROP_REASON_")));
        // On the kernel the fixture was recorded from, every value agrees.
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        if release.trim().starts_with("6.18.") {
            let tsv = include_str!("../../tests/fixtures/drop_reasons_6.18.44-fc-v782.tsv");
            for line in tsv.lines().skip(1) {
                let mut cols = line.split('\t');
                let value: u32 = cols.next().unwrap().parse().unwrap();
                let name = cols.next().unwrap();
                assert_eq!(
                    names.get(&value).map(String::as_str),
                    Some(name),
                    "value {value}"
                );
            }
        }
    }
}
