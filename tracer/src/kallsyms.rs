//! Symbolises kernel text addresses (drop locations, probe sites) using the text of /proc/kallsyms.
//! Read-only lookups: it must not guess names for addresses outside known text, nor panic on bad lines.

use serde::Serialize;

/// Addresses more than this far past a symbol's start are not attributed to it.
const MAX_SYMBOL_SPAN: u64 = 1 << 20;

/// Prefix of the call-padding symbols that kernels with `CONFIG_CALL_PADDING` put before functions.
const PFX_PREFIX: &str = "__pfx_";

/// A resolved address: symbol name, offset from its start, and owning module if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Symbol {
    pub name: String,
    pub offset: u64,
    pub module: Option<String>,
}

impl Symbol {
    /// `tcp_v4_rcv+0x99`, or `nft_do_chain+0x10 [nf_tables]` for module symbols.
    pub fn display(&self) -> String {
        match &self.module {
            Some(module) => format!("{}+{:#x} [{}]", self.name, self.offset, module),
            None => format!("{}+{:#x}", self.name, self.offset),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    addr: u64,
    name: String,
    /// Index into [`Kallsyms::modules`].
    module: Option<usize>,
}

/// Text symbols of the running kernel, sorted by address (one name per address).
#[derive(Clone, Default)]
pub struct Kallsyms {
    entries: Vec<Entry>,
    modules: Vec<String>,
    zero_addresses: usize,
    nonzero_addresses: usize,
}

impl std::fmt::Debug for Kallsyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kallsyms")
            .field("symbols", &self.entries.len())
            .field("modules", &self.modules.len())
            .field("addresses_hidden", &self.addresses_hidden())
            .finish()
    }
}

impl Kallsyms {
    /// Parse the text of /proc/kallsyms. Keep only text symbols (types t T w W); skip lines with address 0;
    /// lines look like `ffffffff81000000 T _text` or `ffffffffc0a01000 t nft_do_chain\t[nf_tables]`.
    /// Malformed lines are skipped.
    pub fn parse(text: &str) -> Kallsyms {
        // (entry, rank) where a lower rank wins among symbols at the same address.
        let mut ranked: Vec<(Entry, u8)> = Vec::new();
        let mut modules: Vec<String> = Vec::new();
        let mut zero_addresses = 0usize;
        let mut nonzero_addresses = 0usize;

        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            let mut kind_chars = kind.chars();
            let (Some(kind), None) = (kind_chars.next(), kind_chars.next()) else {
                continue;
            };
            let module = match parts.next() {
                None => None,
                Some(m) => match m.strip_prefix('[').and_then(|m| m.strip_suffix(']')) {
                    Some(m) if !m.is_empty() => Some(m),
                    _ => continue,
                },
            };
            if parts.next().is_some() {
                continue;
            }
            if addr == 0 {
                zero_addresses = zero_addresses.saturating_add(1);
                continue;
            }
            nonzero_addresses = nonzero_addresses.saturating_add(1);
            let weak = match kind {
                't' | 'T' => 0u8,
                'w' | 'W' => 1u8,
                _ => continue,
            };
            let pfx = u8::from(name.starts_with(PFX_PREFIX));
            let module = module.map(|m| match modules.iter().rposition(|known| known == m) {
                Some(index) => index,
                None => {
                    modules.push(m.to_string());
                    modules.len().saturating_sub(1)
                }
            });
            ranked.push((
                Entry {
                    addr,
                    name: name.to_string(),
                    module,
                },
                pfx.saturating_mul(2).saturating_add(weak),
            ));
        }

        // Stable: among equal (addr, rank) the first listed wins.
        ranked.sort_by_key(|(entry, rank)| (entry.addr, *rank));
        ranked.dedup_by_key(|(entry, _)| entry.addr);
        Kallsyms {
            entries: ranked.into_iter().map(|(entry, _)| entry).collect(),
            modules,
            zero_addresses,
            nonzero_addresses,
        }
    }

    /// Reads and parses /proc/kallsyms.
    pub fn load() -> std::io::Result<Kallsyms> {
        let text = std::fs::read_to_string("/proc/kallsyms")?;
        Ok(Self::parse(&text))
    }

    /// Number of distinct text-symbol addresses kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no text symbol was kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when every address read as zero (kptr_restrict / not privileged): say so to the user.
    pub fn addresses_hidden(&self) -> bool {
        self.zero_addresses > 0 && self.nonzero_addresses == 0
    }

    /// Greatest symbol start <= addr; None if addr is below the first symbol or 0 or the table is empty,
    /// or more than 1 MiB past the start of the symbol found.
    pub fn resolve(&self, addr: u64) -> Option<Symbol> {
        if addr == 0 {
            return None;
        }
        let index = self.entries.partition_point(|e| e.addr <= addr);
        let entry = self.entries.get(index.checked_sub(1)?)?;
        let offset = addr.checked_sub(entry.addr)?;
        if offset > MAX_SYMBOL_SPAN {
            return None;
        }
        Some(Symbol {
            name: entry.name.clone(),
            offset,
            module: entry.module.and_then(|m| self.modules.get(m)).cloned(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FIXTURE: &str = "\
ffffffff81000000 T _text
ffffffff81000000 T _stext
ffffffff81000000 d some_data
ffffffff82033100 D init_net
ffffffff820331b0 T __pfx_tcp_v4_rcv
ffffffff820331c0 T tcp_v4_rcv
ffffffff820331c0 W tcp_v4_rcv_weak_alias
ffffffff82033a00 t __pfx_tcp_v4_fill_cb
ffffffff82033a10 t tcp_v4_fill_cb
ffffffff82033b00 W __pfx_weak_fn
ffffffff82033b10 W weak_fn
ffffffff82033c00 b bss_thing
ffffffff82033d00 T last_core_fn
not a line at all

zzzzzzzzzzzzzzzz T bad_address
ffffffff82033e00 TT bad_type
ffffffff82033e10 T name extra stuff here
ffffffff82033e20 T bad_module [unterminated
ffffffffc0a00ff0 t __pfx_nft_do_chain\t[nf_tables]
ffffffffc0a01000 t nft_do_chain\t[nf_tables]
ffffffffc0a01200 d nft_data\t[nf_tables]
ffffffffc0b00000 t br_handle_frame\t[bridge]
";

    fn table() -> Kallsyms {
        Kallsyms::parse(FIXTURE)
    }

    fn sym(name: &str, offset: u64, module: Option<&str>) -> Option<Symbol> {
        Some(Symbol {
            name: name.to_string(),
            offset,
            module: module.map(str::to_string),
        })
    }

    #[test]
    fn keeps_only_text_symbols_one_per_address() {
        let k = table();
        // _text, __pfx_tcp_v4_rcv, tcp_v4_rcv, __pfx_tcp_v4_fill_cb, tcp_v4_fill_cb,
        // __pfx_weak_fn, weak_fn, last_core_fn, __pfx_nft_do_chain, nft_do_chain, br_handle_frame
        assert_eq!(k.len(), 11);
        assert!(!k.is_empty());
        assert!(!k.addresses_hidden());
        assert_eq!(k.resolve(0xffff_ffff_8100_0000), sym("_text", 0, None));
    }

    #[test]
    fn resolves_inside_functions() {
        let k = table();
        let got = k.resolve(0xffff_ffff_8203_31c0 + 0x99).unwrap();
        assert_eq!(got, sym("tcp_v4_rcv", 0x99, None).unwrap());
        assert_eq!(got.display(), "tcp_v4_rcv+0x99");
        assert_eq!(k.resolve(0xffff_ffff_8203_31c0), sym("tcp_v4_rcv", 0, None));
        assert_eq!(
            k.resolve(0xffff_ffff_8203_3a15),
            sym("tcp_v4_fill_cb", 5, None)
        );
        assert_eq!(k.resolve(0xffff_ffff_8203_3b12), sym("weak_fn", 2, None));
        // The padding itself belongs to the __pfx_ symbol.
        assert_eq!(
            k.resolve(0xffff_ffff_8203_31b4),
            sym("__pfx_tcp_v4_rcv", 4, None)
        );
        // Data symbols are ignored: an address past `bss_thing` still belongs to `weak_fn`.
        assert_eq!(k.resolve(0xffff_ffff_8203_3c04), sym("weak_fn", 0xf4, None));
        // ... and one past `init_net` is too far from `_text` to be attributed.
        assert_eq!(k.resolve(0xffff_ffff_8203_3110), None);
    }

    #[test]
    fn never_prefers_pfx_or_weak_at_same_address() {
        let text = "\
ffffffff81100000 T __pfx_foo
ffffffff81100000 W foo_weak
ffffffff81100000 T foo
ffffffff81200000 W bar_weak
ffffffff81200000 t bar
";
        let k = Kallsyms::parse(text);
        assert_eq!(k.len(), 2);
        assert_eq!(k.resolve(0xffff_ffff_8110_0010), sym("foo", 0x10, None));
        assert_eq!(k.resolve(0xffff_ffff_8120_0001), sym("bar", 1, None));
    }

    #[test]
    fn module_symbols() {
        let k = table();
        let got = k.resolve(0xffff_ffff_c0a0_1010).unwrap();
        assert_eq!(got, sym("nft_do_chain", 0x10, Some("nf_tables")).unwrap());
        assert_eq!(got.display(), "nft_do_chain+0x10 [nf_tables]");
        // Data in the module does not split the function.
        assert_eq!(
            k.resolve(0xffff_ffff_c0a0_1300),
            sym("nft_do_chain", 0x300, Some("nf_tables"))
        );
        assert_eq!(
            k.resolve(0xffff_ffff_c0b0_0004),
            sym("br_handle_frame", 4, Some("bridge"))
        );
    }

    #[test]
    fn out_of_range_addresses() {
        let k = table();
        assert_eq!(k.resolve(0), None);
        assert_eq!(k.resolve(0xffff_ffff_80ff_ffff), None);
        assert_eq!(k.resolve(1), None);
        // Exactly 1 MiB past the last symbol is still attributed, one byte more is not.
        let last = 0xffff_ffff_c0b0_0000u64;
        assert_eq!(
            k.resolve(last + MAX_SYMBOL_SPAN),
            sym("br_handle_frame", MAX_SYMBOL_SPAN, Some("bridge"))
        );
        assert_eq!(k.resolve(last + MAX_SYMBOL_SPAN + 1), None);
        assert_eq!(k.resolve(u64::MAX), None);
        // The gap between core text and modules is not attributed either.
        assert_eq!(k.resolve(0xffff_ffff_a000_0000), None);
    }

    #[test]
    fn hidden_addresses() {
        let text = "\
0000000000000000 T _text
0000000000000000 T tcp_v4_rcv
0000000000000000 t nft_do_chain\t[nf_tables]
0000000000000000 D init_net
";
        let k = Kallsyms::parse(text);
        assert!(k.addresses_hidden());
        assert!(k.is_empty());
        assert_eq!(k.len(), 0);
        assert_eq!(k.resolve(0xffff_ffff_8100_0000), None);
        assert!(format!("{k:?}").contains("addresses_hidden: true"));
    }

    #[test]
    fn empty_and_garbage_tables() {
        for text in [
            "",
            "\n\n",
            "garbage",
            "ffffffff81000000",
            "ffffffff81000000 T",
            "ffffffff81000000 D data_only",
            "-1 T neg",
            "ffffffffffffffffff T too_big",
            "ffffffff81000000 T x []",
            "\u{0}\u{ffff} é ü",
        ] {
            let k = Kallsyms::parse(text);
            assert!(k.is_empty(), "{text:?}");
            assert!(!k.addresses_hidden(), "{text:?}");
            assert_eq!(k.resolve(0xffff_ffff_8100_0000), None);
        }
    }

    #[test]
    fn every_prefix_parses_without_panic() {
        for i in 0..=FIXTURE.len() {
            if let Some(prefix) = FIXTURE.get(..i) {
                let k = Kallsyms::parse(prefix);
                let _ = k.resolve(0xffff_ffff_8203_31c5);
            }
        }
    }

    #[test]
    fn real_kallsyms() {
        let text = match std::fs::read_to_string("/proc/kallsyms") {
            Ok(text) => text,
            Err(e) => {
                println!("skipping: /proc/kallsyms unreadable: {e}");
                return;
            }
        };
        let k = Kallsyms::parse(&text);
        if k.addresses_hidden() || k.is_empty() {
            println!("skipping: /proc/kallsyms addresses are hidden (kptr_restrict)");
            return;
        }
        let addr = text.lines().find_map(|line| {
            let mut parts = line.split_whitespace();
            let addr = parts.next()?;
            let kind = parts.next()?;
            let name = parts.next()?;
            (name == "tcp_v4_rcv" && matches!(kind, "t" | "T") && parts.next().is_none())
                .then(|| u64::from_str_radix(addr, 16).ok())
                .flatten()
        });
        let Some(addr) = addr else {
            println!("skipping: tcp_v4_rcv not in /proc/kallsyms");
            return;
        };
        let got = k.resolve(addr + 5).unwrap();
        assert_eq!(got.display(), "tcp_v4_rcv+0x5");
        assert_eq!(got.module, None);
        let loaded = Kallsyms::load().unwrap();
        assert_eq!(loaded.resolve(addr + 5), Some(got));
    }
}
