//! What the tracer reads from the running kernel's BTF: struct member offsets the programs need
//! to find an event's network namespace, and the names of `enum skb_drop_reason`.
//! Read-only parsing of `/sys/kernel/btf/vmlinux`; it never guesses an offset.

use std::{collections::BTreeMap, path::Path};

use anyhow::{anyhow, bail, Context as _, Result};

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

/// Byte offsets in `struct sock` (and `struct tcp_sock`) of what a classic TCP tracepoint
/// copies into its record, for the raw and BTF tracepoints, which get the socket instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SockOffsets {
    /// `sock.__sk_common.skc_family`
    pub family: u32,
    /// `sock.__sk_common.skc_state`
    pub state: u32,
    /// `sock.__sk_common.skc_num` (local port, host order)
    pub num: u32,
    /// `sock.__sk_common.skc_dport` (remote port, network order)
    pub dport: u32,
    /// `sock.__sk_common.skc_rcv_saddr`
    pub rcv_saddr: u32,
    /// `sock.__sk_common.skc_daddr`
    pub daddr: u32,
    /// `sock.__sk_common.skc_v6_rcv_saddr`
    pub v6_rcv_saddr: u32,
    /// `sock.__sk_common.skc_v6_daddr`
    pub v6_daddr: u32,
    /// `tcp_sock.srtt_us`
    pub srtt_us: u32,
    /// `sock.sk_protocol` (None where it is a bitfield, before 5.6).
    pub protocol: Option<u32>,
    /// `sock.sk_err`
    pub err: u32,
    /// `request_sock.__req_common` less `sock.__sk_common`: the same `sock_common` offsets then
    /// read a request socket.
    pub req_common: u32,
    /// `sk_buff.head`
    pub skb_head: u32,
    /// `sk_buff.data`
    pub skb_data: u32,
    /// `sk_buff.network_header`
    pub skb_network_header: u32,
}

/// BTF kinds this reader looks at (`include/uapi/linux/btf.h`).
mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

const BTF_MAGIC: u16 = 0xeb9f;

/// Most struct/union members one member lookup reads (the kernel's `sk_buff` path reads ~100).
const FIND_MEMBER_BUDGET: u32 = 1 << 16;

/// The kernel's BTF, opened once: the raw bytes and where each type starts.
///
/// Written by hand rather than with a BTF crate: the tracer needs a handful of member offsets
/// and one enum, and a full parse (every type and string into hash maps) cost ~150 ms and
/// ~30 MiB of peak memory at start-up. This keeps the 5 MiB file and one `u32` per type.
pub struct KernelBtf {
    data: Vec<u8>,
    /// Byte offset in `data` of each type, indexed by type id (id 0 is `void`).
    types: Vec<u32>,
    strings: std::ops::Range<usize>,
}

/// A BTF blob holding only the given typedefs (type id → name), each at its own id: every other
/// id up to the largest is an anonymous `void *`.
///
/// A BTF tracepoint program is loaded against the id of its `btf_trace_<event>` typedef in the
/// kernel's BTF, and aya finds that id by name in its own parsed `Btf`. Parsing the kernel's
/// whole BTF for it held ~126 k types in memory at start-up; parsing this blob (12 bytes per
/// id, ids up to ~40 k on 6.18) gives aya the same ids for a fraction of the memory and time.
pub fn typedefs_at_ids(typedefs: &BTreeMap<u32, String>) -> Vec<u8> {
    let last = typedefs.keys().next_back().copied().unwrap_or(0);
    let mut strings = vec![0u8];
    let mut types = Vec::with_capacity(12 * last as usize);
    for id in 1..=last {
        let (name_off, kind) = match typedefs.get(&id) {
            Some(name) => {
                let at = strings.len() as u32;
                strings.extend(name.as_bytes());
                strings.push(0);
                (at, kind::TYPEDEF)
            }
            None => (0, kind::PTR),
        };
        for word in [name_off, kind << 24, 0] {
            types.extend(word.to_ne_bytes());
        }
    }
    let mut data = Vec::with_capacity(24 + types.len() + strings.len());
    data.extend(BTF_MAGIC.to_ne_bytes());
    data.extend([1u8, 0]);
    for word in [24, 0, types.len(), types.len(), strings.len()] {
        data.extend((word as u32).to_ne_bytes());
    }
    data.extend(types);
    data.extend(strings);
    data
}

/// One decoded type header.
#[derive(Clone, Copy)]
struct TypeHeader {
    at: usize,
    name_off: u32,
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    /// `size` for structs/unions/enums/ints, `type` for modifiers and pointers.
    size_or_type: u32,
}

impl KernelBtf {
    /// Opens `/sys/kernel/btf/vmlinux`.
    pub fn load() -> Result<Self> {
        Self::from_file(VMLINUX_BTF)
    }

    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let data = std::fs::read(path)
            .with_context(|| format!("reading kernel BTF from {}", path.display()))?;
        Self::from_bytes(data).with_context(|| format!("parsing kernel BTF {}", path.display()))
    }

    /// Parses a BTF blob in this machine's byte order.
    pub fn from_bytes(data: Vec<u8>) -> Result<Self> {
        let u16_at = |at: usize| -> Option<u16> {
            Some(u16::from_ne_bytes(data.get(at..at + 2)?.try_into().ok()?))
        };
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(data.get(at..at + 4)?.try_into().ok()?))
        };
        if u16_at(0) != Some(BTF_MAGIC) {
            bail!("not BTF in this machine's byte order (bad magic)");
        }
        let header = (|| {
            let hdr_len = u32_at(4)? as usize;
            let type_off = u32_at(8)? as usize;
            let type_len = u32_at(12)? as usize;
            let str_off = u32_at(16)? as usize;
            let str_len = u32_at(20)? as usize;
            Some((hdr_len, type_off, type_len, str_off, str_len))
        })()
        .ok_or_else(|| anyhow!("truncated BTF header"))?;
        let (hdr_len, type_off, type_len, str_off, str_len) = header;
        let type_start = hdr_len
            .checked_add(type_off)
            .ok_or_else(|| anyhow!("BTF type section out of range"))?;
        let type_end = type_start
            .checked_add(type_len)
            .filter(|e| *e <= data.len())
            .ok_or_else(|| anyhow!("BTF type section out of range"))?;
        let str_start = hdr_len
            .checked_add(str_off)
            .ok_or_else(|| anyhow!("BTF string section out of range"))?;
        let str_end = str_start
            .checked_add(str_len)
            .filter(|e| *e <= data.len())
            .ok_or_else(|| anyhow!("BTF string section out of range"))?;

        let mut types = vec![0u32];
        let mut at = type_start;
        while at < type_end {
            let info = u32_at(at + 4).ok_or_else(|| anyhow!("truncated BTF type"))?;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let extra = match kind {
                kind::INT | kind::VAR | kind::DECL_TAG => 4,
                kind::ARRAY => 12,
                kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => 12 * vlen,
                kind::ENUM | kind::FUNC_PROTO => 8 * vlen,
                _ => 0,
            };
            types.push(u32::try_from(at).context("BTF larger than 4 GiB")?);
            at += 12 + extra;
        }
        Ok(KernelBtf {
            data,
            types,
            strings: str_start..str_end,
        })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        Some(u32::from_ne_bytes(
            self.data.get(at..at + 4)?.try_into().ok()?,
        ))
    }

    fn name(&self, name_off: u32) -> &str {
        let start = self.strings.start + name_off as usize;
        let Some(tail) = self.data.get(start..self.strings.end) else {
            return "";
        };
        let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
        std::str::from_utf8(&tail[..end]).unwrap_or("")
    }

    fn header(&self, id: u32) -> Option<TypeHeader> {
        let at = *self.types.get(id as usize)? as usize;
        if id == 0 {
            return None;
        }
        let info = self.u32_at(at + 4)?;
        Some(TypeHeader {
            at,
            name_off: self.u32_at(at)?,
            kind: (info >> 24) & 0x1f,
            vlen: (info & 0xffff) as usize,
            kind_flag: info >> 31 == 1,
            size_or_type: self.u32_at(at + 8)?,
        })
    }

    /// Ids of the types of `kind` named `name`.
    fn ids_named(&self, name: &str, kind: u32) -> impl Iterator<Item = u32> + '_ {
        let name = name.to_owned();
        (1..self.types.len() as u32).filter(move |id| {
            self.header(*id)
                .is_some_and(|h| h.kind == kind && self.name(h.name_off) == name)
        })
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
                .and_then(|cb| {
                    cb.checked_add(self.member_offset("tcp_skb_cb", &["tcp_gso_segs"])?)
                        .ok_or_else(|| anyhow!("sk_buff.cb + tcp_skb_cb.tcp_gso_segs overflows"))
                })
                .ok(),
        })
    }

    /// Offsets of the socket fields the raw/BTF TCP programs read (see [`SockOffsets`]).
    pub fn sock_offsets(&self) -> Result<SockOffsets> {
        let common = |member: &str| self.member_offset("sock", &["__sk_common", member]);
        Ok(SockOffsets {
            family: common("skc_family")?,
            state: common("skc_state")?,
            num: common("skc_num")?,
            dport: common("skc_dport")?,
            rcv_saddr: common("skc_rcv_saddr")?,
            daddr: common("skc_daddr")?,
            v6_rcv_saddr: common("skc_v6_rcv_saddr")?,
            v6_daddr: common("skc_v6_daddr")?,
            srtt_us: self.member_offset("tcp_sock", &["srtt_us"])?,
            protocol: self.plain_member_offset("sock", "sk_protocol"),
            err: self.member_offset("sock", &["sk_err"])?,
            req_common: self
                .member_offset("request_sock", &["__req_common"])?
                .checked_sub(self.member_offset("sock", &["__sk_common"])?)
                .ok_or_else(|| anyhow!("request_sock's sock_common lies before sock's"))?,
            skb_head: self.member_offset("sk_buff", &["head"])?,
            skb_data: self.member_offset("sk_buff", &["data"])?,
            skb_network_header: self.member_offset("sk_buff", &["network_header"])?,
        })
    }

    /// Byte offset of a direct member of a struct that is not a bitfield (None otherwise).
    fn plain_member_offset(&self, struct_name: &str, member: &str) -> Option<u32> {
        let id = self
            .ids_named(struct_name, kind::STRUCT)
            .find(|id| self.header(*id).is_some_and(|h| h.vlen > 0))?;
        let h = self.header(id)?;
        (0..h.vlen).find_map(|i| {
            let at = h.at + 12 + 12 * i;
            if self.name(self.u32_at(at)?) != member {
                return None;
            }
            let raw = self.u32_at(at + 8)?;
            // With kind_flag set, the top byte is the bitfield's size (0: not a bitfield).
            let (bits, bitfield) = if h.kind_flag {
                (raw & 0x00ff_ffff, raw >> 24 != 0)
            } else {
                (raw, false)
            };
            (!bitfield && bits.is_multiple_of(8)).then_some(bits / 8)
        })
    }

    /// The arguments of tracepoint `event` as a raw or BTF tracepoint program sees them: the
    /// parameter types of the kernel's `btf_trace_<event>` prototype (its `TP_PROTO`) after the
    /// leading `void *__data`, e.g. `["struct sk_buff *", "void *", "enum skb_drop_reason",
    /// "struct sock *"]`. Qualifiers (`const`) are left out.
    pub fn tracepoint_args(&self, event: &str) -> Result<Vec<String>> {
        let typedef = format!("btf_trace_{event}");
        let id = self.tracepoint_type_id(event)?;
        let ptr = self
            .header(self.strip_modifiers(id))
            .filter(|h| h.kind == kind::PTR)
            .ok_or_else(|| anyhow!("{typedef} is not a function pointer"))?;
        let proto = self
            .header(self.strip_modifiers(ptr.size_or_type))
            .filter(|h| h.kind == kind::FUNC_PROTO)
            .ok_or_else(|| anyhow!("{typedef} is not a function pointer"))?;
        let params = (0..proto.vlen)
            .map(|i| self.u32_at(proto.at + 12 + 8 * i + 4))
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| anyhow!("{typedef}'s prototype is truncated"))?;
        Ok(params
            .iter()
            .skip(1)
            .map(|t| self.type_name(*t, 0))
            .collect())
    }

    /// The type id of tracepoint `event`'s `btf_trace_<event>` typedef: what a BTF tracepoint
    /// program is loaded against (its `attach_btf_id`).
    pub fn tracepoint_type_id(&self, event: &str) -> Result<u32> {
        let typedef = format!("btf_trace_{event}");
        self.ids_named(&typedef, kind::TYPEDEF)
            .next()
            .ok_or_else(|| anyhow!("{typedef} not in BTF"))
    }

    /// A C-like name of a type: `struct sock *`, `enum skb_drop_reason`, `unsigned int`, `void *`.
    fn type_name(&self, id: u32, depth: u32) -> String {
        let Some(h) = self.header(id) else {
            return "void".to_owned();
        };
        if depth > 16 {
            return "?".to_owned();
        }
        let name = self.name(h.name_off);
        match h.kind {
            kind::PTR => format!("{} *", self.type_name(h.size_or_type, depth + 1)),
            kind::CONST | kind::VOLATILE | kind::RESTRICT | kind::TYPE_TAG => {
                self.type_name(h.size_or_type, depth + 1)
            }
            kind::STRUCT => format!("struct {name}"),
            kind::UNION => format!("union {name}"),
            kind::ENUM | kind::ENUM64 => format!("enum {name}"),
            _ => name.to_owned(),
        }
    }

    /// Values of `enum skb_drop_reason` by name, with the `SKB_DROP_REASON_` prefix removed
    /// (so `NO_SOCKET`, `NETFILTER_DROP`; `SKB_NOT_DROPPED_YET` and `SKB_CONSUMED` keep theirs).
    pub fn drop_reason_names(&self) -> Result<BTreeMap<u32, String>> {
        self.enum_names("skb_drop_reason", "SKB_DROP_REASON_")
    }

    /// Values of `enum sk_rst_reason` (why the kernel sent a TCP reset, 6.10+) by name, with
    /// the `SK_RST_REASON_` prefix removed (`NO_SOCKET`, `TCP_ABORT_ON_CLOSE`, …).
    pub fn rst_reason_names(&self) -> Result<BTreeMap<u32, String>> {
        self.enum_names("sk_rst_reason", "SK_RST_REASON_")
    }

    /// An enum's values by name, prefix removed; the first name of each value wins.
    fn enum_names(&self, enum_name: &str, prefix: &str) -> Result<BTreeMap<u32, String>> {
        let id = self
            .ids_named(enum_name, kind::ENUM)
            .next()
            .ok_or_else(|| anyhow!("enum {enum_name} not in BTF"))?;
        let h = self
            .header(id)
            .ok_or_else(|| anyhow!("enum {enum_name} unreadable"))?;
        let mut names = BTreeMap::new();
        for i in 0..h.vlen {
            let at = h.at + 12 + 8 * i;
            let (Some(name_off), Some(value)) = (self.u32_at(at), self.u32_at(at + 4)) else {
                bail!("enum {enum_name} truncated");
            };
            let name = self.name(name_off);
            let name = name.strip_prefix(prefix).unwrap_or(name);
            // Aliases such as SUBSYS_MASK are not reasons; keep the first name per value.
            if name == "SUBSYS_MASK" {
                continue;
            }
            names.entry(value).or_insert_with(|| name.to_owned());
        }
        Ok(names)
    }

    /// Byte offset of a member path inside a struct, descending through anonymous structs and
    /// unions the way C does (`sk_buff.dev` lives in an anonymous union).
    pub fn member_offset(&self, struct_name: &str, path: &[&str]) -> Result<u32> {
        let mut current = self
            .ids_named(struct_name, kind::STRUCT)
            .find(|id| self.header(*id).is_some_and(|h| h.vlen > 0))
            .ok_or_else(|| anyhow!("struct {struct_name} not in BTF"))?;
        let mut total_bits: u64 = 0;
        for (depth, name) in path.iter().enumerate() {
            let mut budget = FIND_MEMBER_BUDGET;
            let (bits, member_type) =
                self.find_member(current, name, 0, &mut budget)
                    .ok_or_else(|| {
                        anyhow!(
                            "{struct_name}.{} not found in BTF",
                            path[..=depth].join(".")
                        )
                    })?;
            total_bits += u64::from(bits);
            current = self.strip_modifiers(member_type);
        }
        if !total_bits.is_multiple_of(8) {
            bail!("{struct_name}.{} is a bitfield", path.join("."));
        }
        u32::try_from(total_bits / 8).context("offset overflows u32")
    }

    /// Follows typedef/const/volatile/restrict/type-tag to the underlying type.
    fn strip_modifiers(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.header(id) {
                Some(h)
                    if matches!(
                        h.kind,
                        kind::TYPEDEF
                            | kind::CONST
                            | kind::VOLATILE
                            | kind::RESTRICT
                            | kind::TYPE_TAG
                    ) =>
                {
                    id = h.size_or_type;
                }
                _ => return id,
            }
        }
        id
    }

    /// Finds `name` among the members of a struct/union, looking inside anonymous members.
    /// Returns the member's bit offset relative to `id` and its type id. At most `budget`
    /// members are looked at in all, so a malformed BTF whose anonymous members nest into
    /// themselves ends quickly (as not found) instead of taking vlen^depth steps.
    fn find_member(&self, id: u32, name: &str, depth: u32, budget: &mut u32) -> Option<(u32, u32)> {
        let h = self.header(id)?;
        if !matches!(h.kind, kind::STRUCT | kind::UNION) || depth > 16 {
            return None;
        }
        for i in 0..h.vlen {
            *budget = budget.checked_sub(1)?;
            let at = h.at + 12 + 12 * i;
            let (name_off, member_type, raw_offset) =
                (self.u32_at(at)?, self.u32_at(at + 4)?, self.u32_at(at + 8)?);
            let bits = if h.kind_flag {
                raw_offset & 0x00ff_ffff
            } else {
                raw_offset
            };
            let member_name = self.name(name_off);
            if member_name == name {
                return Some((bits, member_type));
            }
            if member_name.is_empty() {
                let inner = self.strip_modifiers(member_type);
                if let Some((inner_bits, found)) = self.find_member(inner, name, depth + 1, budget)
                {
                    // Offsets past 4 Gibit are garbage: not found rather than wrapped.
                    return Some((bits.checked_add(inner_bits)?, found));
                }
            }
        }
        None
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

    /// A hand-built BTF blob: `struct sk_buff { void *next; union { void *dev; }; }`,
    /// `struct ns_common { u32 pad; u32 inum; }` (u32 a typedef of int) and
    /// `enum skb_drop_reason { SKB_DROP_REASON_NO_SOCKET = 3, SKB_DROP_REASON_SUBSYS_MASK = … }`.
    pub(super) fn synthetic() -> KernelBtf {
        let mut strings = vec![0u8];
        let mut name = |s: &str| -> u32 {
            let off = strings.len() as u32;
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            off
        };
        let (int, next, dev, skb, u32_, ns, pad, inum, reason, no_socket, mask) = (
            name("int"),
            name("next"),
            name("dev"),
            name("sk_buff"),
            name("u32"),
            name("ns_common"),
            name("pad"),
            name("inum"),
            name("skb_drop_reason"),
            name("SKB_DROP_REASON_NO_SOCKET"),
            name("SKB_DROP_REASON_SUBSYS_MASK"),
        );
        let info = |kind: u32, vlen: u32| (kind << 24) | vlen;
        let mut t: Vec<u32> = Vec::new();
        // 1: int (4 bytes + encoding)
        t.extend([int, info(kind::INT, 0), 4, 32]);
        // 2: anonymous union { void *dev; }
        t.extend([0, info(kind::UNION, 1), 8, dev, 3, 0]);
        // 3: void *
        t.extend([0, info(2, 0), 0]);
        // 4: struct sk_buff { void *next; union {...}; } — the union at 8 bytes (64 bits)
        t.extend([skb, info(kind::STRUCT, 2), 16, next, 3, 0, 0, 2, 64]);
        // 5: typedef int u32
        t.extend([u32_, info(kind::TYPEDEF, 0), 1]);
        // 6: struct ns_common { u32 pad; u32 inum; }
        t.extend([ns, info(kind::STRUCT, 2), 8, pad, 5, 0, inum, 5, 32]);
        // 7: enum skb_drop_reason
        t.extend([
            reason,
            info(kind::ENUM, 2),
            4,
            no_socket,
            3,
            mask,
            0xffff_0000,
        ]);
        let types: Vec<u8> = t.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let mut data = Vec::new();
        data.extend(BTF_MAGIC.to_ne_bytes());
        data.extend([1u8, 0]);
        for v in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            data.extend(v.to_ne_bytes());
        }
        data.extend(types);
        data.extend(strings);
        KernelBtf::from_bytes(data).unwrap()
    }

    #[test]
    fn typedefs_keep_their_ids_in_the_small_blob() {
        let typedefs = BTreeMap::from([
            (3, "btf_trace_softirq_entry".to_owned()),
            (7, "btf_trace_kfree_skb".to_owned()),
        ]);
        let btf = KernelBtf::from_bytes(typedefs_at_ids(&typedefs)).unwrap();
        assert_eq!(btf.types.len(), 8);
        assert_eq!(btf.tracepoint_type_id("kfree_skb").unwrap(), 7);
        assert_eq!(btf.tracepoint_type_id("softirq_entry").unwrap(), 3);
        assert!(btf.tracepoint_type_id("softirq_exit").is_err());
        assert_eq!(
            KernelBtf::from_bytes(typedefs_at_ids(&BTreeMap::new()))
                .unwrap()
                .types
                .len(),
            1
        );
    }

    #[test]
    fn tracepoint_ids_of_live_btf_survive_the_small_blob() {
        let Some(live) = live() else { return };
        let events = ["kfree_skb", "softirq_entry", "tcp_probe"];
        let typedefs: BTreeMap<u32, String> = events
            .iter()
            .map(|e| {
                (
                    live.tracepoint_type_id(e).unwrap(),
                    format!("btf_trace_{e}"),
                )
            })
            .collect();
        let small = KernelBtf::from_bytes(typedefs_at_ids(&typedefs)).unwrap();
        for event in events {
            assert_eq!(
                small.tracepoint_type_id(event).unwrap(),
                live.tracepoint_type_id(event).unwrap(),
                "{event}"
            );
        }
    }

    #[test]
    fn member_offsets_and_enum_names_from_a_hand_built_blob() {
        let btf = synthetic();
        assert_eq!(btf.member_offset("sk_buff", &["next"]).unwrap(), 0);
        // Through the anonymous union.
        assert_eq!(btf.member_offset("sk_buff", &["dev"]).unwrap(), 8);
        assert_eq!(btf.member_offset("ns_common", &["inum"]).unwrap(), 4);
        let err = btf
            .member_offset("sk_buff", &["nope"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sk_buff.nope"), "{err}");
        assert!(btf.member_offset("no_such_struct", &["x"]).is_err());
        let names = btf.drop_reason_names().unwrap();
        assert_eq!(names.len(), 1);
        assert_eq!(names.get(&3).map(String::as_str), Some("NO_SOCKET"));
    }

    #[test]
    fn garbage_is_refused_not_a_panic() {
        assert!(KernelBtf::from_bytes(Vec::new()).is_err());
        assert!(KernelBtf::from_bytes(vec![0x9f, 0xeb, 1, 0, 24, 0, 0, 0]).is_err());
        let mut huge = vec![0u8; 24];
        huge[..2].copy_from_slice(&BTF_MAGIC.to_ne_bytes());
        huge[4..8].copy_from_slice(&24u32.to_ne_bytes());
        huge[12..16].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(KernelBtf::from_bytes(huge).is_err());
        // Every prefix of a valid blob parses or fails cleanly.
        let good = synthetic().data;
        for i in 0..good.len() {
            let _ = KernelBtf::from_bytes(good[..i].to_vec())
                .map(|b| b.member_offset("sk_buff", &["dev"]));
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
    fn tracepoint_prototypes_from_live_btf() {
        let Some(btf) = live() else { return };
        // Every kernel since raw tracepoints came (4.17): the skb, then where it was freed.
        let kfree = btf.tracepoint_args("kfree_skb").unwrap();
        assert_eq!(kfree[..2], ["struct sk_buff *", "void *"], "{kfree:?}");
        assert_eq!(
            btf.tracepoint_args("softirq_entry").unwrap(),
            ["unsigned int"]
        );
        assert_eq!(
            btf.tracepoint_args("tcp_probe").unwrap(),
            ["struct sock *", "struct sk_buff *"]
        );
        let err = btf
            .tracepoint_args("no_such_event")
            .unwrap_err()
            .to_string();
        assert!(err.contains("btf_trace_no_such_event"), "{err}");
    }

    #[test]
    fn sock_offsets_from_live_btf() {
        let Some(btf) = live() else { return };
        let o = btf.sock_offsets().unwrap();
        // skc_addrpair then skc_portpair: daddr, rcv_saddr, then (after the hash) dport, num.
        assert_eq!(o.rcv_saddr, o.daddr + 4);
        assert_eq!(o.num, o.dport + 2);
        assert!(o.family > o.num && o.state > o.family, "{o:?}");
        // tcp_sock begins with the sock: srtt_us lies far past sock_common.
        assert!(o.srtt_us > o.v6_rcv_saddr, "{o:?}");
        // sk_protocol has been a plain u16 since 5.6; both socket kinds begin with sock_common.
        assert!(o.protocol.is_some_and(|p| p > o.v6_daddr), "{o:?}");
        assert_eq!(o.req_common, 0);
        // `unsigned char *head, *data;` side by side at the end of sk_buff.
        assert_eq!(o.skb_data, o.skb_head + 8, "{o:?}");
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
    fn rst_reason_names_hold_on_any_kernel_and_agree_with_a_recording_of_this_build() {
        let Some(btf) = live() else { return };
        let names = btf.rst_reason_names().unwrap();
        assert_names_sound(&names, "SK_RST_REASON_", &["NOT_SPECIFIED", "NO_SOCKET"]);
        // Only a table recorded on this very build (release and BTF) may be compared by number.
        match crate::testkit::recorded_kernels::running() {
            Some(k) => {
                let recorded = k.rst_reason_values();
                for (value, name) in &recorded {
                    assert_eq!(names.get(value).map(String::as_str), Some(*name), "{name}");
                }
                assert_eq!(recorded.len(), 26);
            }
            None => eprintln!("no recording of this kernel build: numbers not compared"),
        }
    }

    #[test]
    fn drop_reason_names_hold_on_any_kernel_and_agree_with_a_recording_of_this_build() {
        let Some(btf) = live() else { return };
        let names = btf.drop_reason_names().unwrap();
        // Numbers differ between kernels, even between builds of one version; names are what
        // must be present, and every one must be filed by the layer table.
        assert_names_sound(
            &names,
            "SKB_DROP_REASON_",
            &[
                "NOT_SPECIFIED",
                "NO_SOCKET",
                "NETFILTER_DROP",
                "TCP_CSUM",
                "IP_NOPROTO",
            ],
        );
        let unfiled: Vec<&String> = names
            .values()
            .filter(|n| !crate::judge::layers::is_filed(n))
            .collect();
        assert!(
            unfiled.is_empty(),
            "reasons the layer table does not file: {unfiled:?}"
        );
        match crate::testkit::recorded_kernels::running() {
            Some(k) => {
                for r in k.drop_reason_rows() {
                    assert_eq!(
                        names.get(&r.value).map(String::as_str),
                        Some(r.name),
                        "{}: value {}",
                        k.release,
                        r.value
                    );
                }
            }
            None => eprintln!("no recording of this kernel build: numbers not compared"),
        }
    }

    /// What holds for an enum's names on any kernel: unique, prefix removed, core names present.
    fn assert_names_sound(names: &BTreeMap<u32, String>, prefix: &str, core: &[&str]) {
        let unique: std::collections::BTreeSet<&String> = names.values().collect();
        assert_eq!(unique.len(), names.len(), "a name is given to two values");
        assert!(
            !names.values().any(|n| n.starts_with(prefix)),
            "{prefix} left on a name"
        );
        for name in core {
            assert!(names.values().any(|n| n == name), "{name} missing");
        }
    }
}

/// Property tests and the regressions they found: any bytes, the hand-built blob with bytes
/// overwritten or cut, and generated type tables open or fail in one sentence, and every lookup
/// ends (quickly) with an offset or an error; never a panic or an overflow.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod prop_tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testkit::mutations::config;

    /// A BTF blob of `types` (u32 words) and `strings`.
    fn blob(types: &[u32], strings: &[u8]) -> Vec<u8> {
        let types: Vec<u8> = types.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let mut data = Vec::new();
        data.extend(BTF_MAGIC.to_ne_bytes());
        data.extend([1u8, 0]);
        for v in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            data.extend(v.to_ne_bytes());
        }
        data.extend(types);
        data.extend(strings);
        data
    }

    const STRINGS: &[u8] = b"\0sk_buff\0dev\0cb\0tcp_skb_cb\0tcp_gso_segs\0skb_drop_reason\0SKB_DROP_REASON_NO_SOCKET\0";
    /// Offsets of the names in [`STRINGS`].
    const SK_BUFF: u32 = 1;
    const DEV: u32 = 9;

    fn info(kind: u32, vlen: u32, kind_flag: bool) -> u32 {
        (u32::from(kind_flag) << 31) | (kind << 24) | vlen
    }

    /// Every lookup the tracer makes, on whatever opened.
    fn exercise(btf: &KernelBtf) {
        let _ = btf.netns_offsets();
        let _ = btf.drop_reason_names();
        let _ = btf.member_offset("sk_buff", &["dev"]);
        let _ = btf.member_offset("sk_buff", &["cb", "x", "y"]);
    }

    #[test]
    fn nested_offsets_past_u32_are_an_error_not_an_overflow() {
        // 1: struct sk_buff { union { void *dev; } at bit 0xffff_ff00; }
        // 2: anonymous union { dev at bit 0x200 }
        let types = [
            SK_BUFF,
            info(kind::STRUCT, 1, false),
            8,
            0,
            2,
            0xffff_ff00,
            0,
            info(kind::UNION, 1, false),
            8,
            DEV,
            0,
            0x200,
        ];
        let btf = KernelBtf::from_bytes(blob(&types, STRINGS)).unwrap();
        let err = btf
            .member_offset("sk_buff", &["dev"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sk_buff.dev"), "{err}");
        // Within range it is found, through the union.
        let types = [
            SK_BUFF,
            info(kind::STRUCT, 1, false),
            8,
            0,
            2,
            64,
            0,
            info(kind::UNION, 1, false),
            8,
            DEV,
            0,
            0x200,
        ];
        let btf = KernelBtf::from_bytes(blob(&types, STRINGS)).unwrap();
        assert_eq!(
            btf.member_offset("sk_buff", &["dev"]).unwrap(),
            (64 + 0x200) / 8
        );
    }

    #[test]
    fn anonymous_members_nesting_into_themselves_end_quickly() {
        // struct sk_buff with 1,000 anonymous members, each of type sk_buff itself: without a
        // bound the search for a missing member takes 1000^17 steps.
        let mut types = vec![SK_BUFF, info(kind::STRUCT, 1000, false), 8];
        for _ in 0..1000 {
            types.extend([0, 1, 0]);
        }
        let btf = KernelBtf::from_bytes(blob(&types, STRINGS)).unwrap();
        let started = std::time::Instant::now();
        let err = btf
            .member_offset("sk_buff", &["dev"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sk_buff.dev not found"), "{err}");
        assert!(started.elapsed().as_secs() < 2, "{:?}", started.elapsed());
        assert!(btf.netns_offsets().is_err());
    }

    #[test]
    fn doubly_nested_offsets_past_u32_are_an_error_not_an_overflow() {
        // Two anonymous unions, each at bit 2^32 - 8: their sum does not fit the u32 bit offset
        // `find_member` returns.
        let types = [
            // 1: struct sk_buff { union(2) at 0xffff_fff8 bits; }
            SK_BUFF,
            info(kind::STRUCT, 1, false),
            8,
            0,
            2,
            0xffff_fff8,
            // 2: union { union(3) at 0xffff_fff8 }
            0,
            info(kind::UNION, 1, false),
            8,
            0,
            3,
            0xffff_fff8,
            // 3: union { cb at 0 }
            0,
            info(kind::UNION, 1, false),
            8,
            13,
            0,
            0,
        ];
        let btf = KernelBtf::from_bytes(blob(&types, STRINGS)).unwrap();
        // 2 × (2^32 - 8) bits overflows a u32 sum: not found, not wrapped.
        assert!(btf.member_offset("sk_buff", &["cb"]).is_err());
    }

    /// One generated type: kind, vlen, flag and words that follow the header.
    fn any_type() -> impl Strategy<Value = Vec<u32>> {
        (
            prop::sample::select(vec![
                kind::INT,
                2,
                kind::ARRAY,
                kind::STRUCT,
                kind::UNION,
                kind::ENUM,
                kind::TYPEDEF,
                kind::CONST,
                kind::FUNC_PROTO,
                kind::ENUM64,
                31,
            ]),
            0u32..5,
            any::<bool>(),
            prop::sample::select(vec![0u32, SK_BUFF, DEV, 13, 16, 27, 40, 56, 9999]),
            proptest::collection::vec(
                prop_oneof![0u32..8, Just(u32::MAX), Just(0xffff_fff8), any::<u32>()],
                0..16,
            ),
        )
            .prop_map(|(kind, vlen, flag, name, words)| {
                let mut t = vec![name, info(kind, vlen, flag)];
                t.extend(words);
                t
            })
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_bytes_open_or_fail_cleanly(
            magic in any::<bool>(),
            header in proptest::collection::vec(prop_oneof![0u32..64, any::<u32>()], 5),
            rest in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut data = Vec::new();
            if magic {
                data.extend(BTF_MAGIC.to_ne_bytes());
                data.extend([1u8, 0]);
                for v in &header {
                    data.extend(v.to_ne_bytes());
                }
            }
            data.extend(rest);
            match KernelBtf::from_bytes(data) {
                Ok(btf) => exercise(&btf),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        /// The hand-built blob with bytes overwritten, or cut: opens or fails, every lookup
        /// ends; a member found is inside what the blob could describe (< 2^32 bits / 8).
        #[test]
        fn the_hand_built_blob_overwritten_or_cut(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in proptest::option::of(any::<usize>()),
        ) {
            let mut data = tests::synthetic().data;
            for (at, byte) in edits {
                let at = at % data.len();
                data[at] = byte;
            }
            if let Some(cut) = cut {
                data.truncate(cut % (data.len() + 1));
            }
            if let Ok(btf) = KernelBtf::from_bytes(data) {
                exercise(&btf);
                if let Ok(offset) = btf.member_offset("sk_buff", &["dev"]) {
                    prop_assert!(u64::from(offset) < (1u64 << 32) / 8 * 17);
                }
            }
        }

        /// Generated type tables: whatever the kinds, counts and member references (cycles
        /// included), lookups end with an offset or an error naming the path.
        #[test]
        fn generated_type_tables_never_hang_or_panic(types in proptest::collection::vec(any_type(), 0..12)) {
            let words: Vec<u32> = types.concat();
            let btf = KernelBtf::from_bytes(blob(&words, STRINGS)).unwrap();
            exercise(&btf);
            if let Err(e) = btf.member_offset("sk_buff", &["dev"]) {
                prop_assert!(e.to_string().contains("sk_buff"), "{e}");
            }
        }
    }
}
