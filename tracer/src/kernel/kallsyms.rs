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

/// [`Entry::module`] of a core-kernel symbol.
const NO_MODULE: u16 = u16::MAX;

/// While the table is built, [`Entry::name_len`] also carries the ranking of symbols that share an
/// address in its top two bits (a lower rank wins): `__pfx_` padding loses to any real name, and
/// then a weak (w W) symbol to a text (t T) one. The weak bit is cleared once the table is built;
/// the padding bit stays: a `__pfx_` symbol's name is kept without its prefix, and shared with the
/// function that follows it (57 k of 121 k text symbols on 6.18: 1.5 MB of names not kept).
const PFX_BIT: u16 = 1 << 15;
const WEAK_BIT: u16 = 1 << 14;
/// Longest name kept (the kernel's own limit, KSYM_NAME_LEN, is 512); longer lines are skipped.
const MAX_NAME_LEN: u16 = WEAK_BIT - 1;

/// One kept symbol: its name is `names[name_start..name_start + name_len]`.
#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: u64,
    name_start: u32,
    name_len: u16,
    /// Index into [`Kallsyms::modules`], or [`NO_MODULE`].
    module: u16,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 16);

impl Entry {
    /// The kept name's length (a `__pfx_` symbol's without its prefix).
    fn len(&self) -> usize {
        usize::from(self.name_len & MAX_NAME_LEN)
    }

    /// A `__pfx_` padding symbol: its name is the kept one with [`PFX_PREFIX`] before it.
    fn is_padding(&self) -> bool {
        self.name_len & PFX_BIT != 0
    }

    /// Position among the symbols at the same address (lower wins); only meaningful while building.
    fn rank(&self) -> u16 {
        self.name_len >> 14
    }

    /// Address, then rank, then input order (only meaningful while building).
    fn sort_key(&self) -> u128 {
        (u128::from(self.addr) << 64)
            | (u128::from(self.rank()) << 32)
            | u128::from(self.name_start)
    }
}

/// Text symbols of the running kernel, sorted by address (one name per address).
#[derive(Clone, Default)]
pub struct Kallsyms {
    entries: Box<[Entry]>,
    /// Every kept name, back to back.
    names: Box<str>,
    modules: Box<[String]>,
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

/// Accumulates the lines of /proc/kallsyms, one at a time.
#[derive(Default)]
struct Builder {
    /// In input order, with ranking bits, possibly several per address.
    entries: Vec<Entry>,
    names: String,
    modules: Vec<String>,
    zero_addresses: usize,
    nonzero_addresses: usize,
}

impl Builder {
    /// One line of /proc/kallsyms (a trailing newline is allowed).
    fn line(&mut self, line: &str) {
        let mut parts = line.split_whitespace();
        let (Some(addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let Ok(addr) = u64::from_str_radix(addr, 16) else {
            return;
        };
        let mut kind_chars = kind.chars();
        let (Some(kind), None) = (kind_chars.next(), kind_chars.next()) else {
            return;
        };
        let module = match parts.next() {
            None => None,
            Some(m) => match m.strip_prefix('[').and_then(|m| m.strip_suffix(']')) {
                Some(m) if !m.is_empty() => Some(m),
                _ => return,
            },
        };
        if parts.next().is_some() {
            return;
        }
        if addr == 0 {
            self.zero_addresses = self.zero_addresses.saturating_add(1);
            return;
        }
        self.nonzero_addresses = self.nonzero_addresses.saturating_add(1);
        let weak = match kind {
            't' | 'T' => 0,
            'w' | 'W' => WEAK_BIT,
            _ => return,
        };
        let (name, pfx) = match name.strip_prefix(PFX_PREFIX) {
            Some(function) => (function, PFX_BIT),
            None => (name, 0),
        };
        // Sizes no kernel produces; skipped rather than stored truncated.
        let Some(name_len) = u16::try_from(name.len())
            .ok()
            .filter(|len| *len <= MAX_NAME_LEN)
        else {
            return;
        };
        let Ok(name_start) = u32::try_from(self.names.len()) else {
            return;
        };
        if u32::try_from(self.names.len().saturating_add(name.len())).is_err() {
            return;
        }
        let module = match module {
            None => NO_MODULE,
            Some(m) => match self.modules.iter().rposition(|known| known == m) {
                Some(index) => match u16::try_from(index) {
                    Ok(index) if index != NO_MODULE => index,
                    _ => return,
                },
                None => {
                    let Ok(index) = u16::try_from(self.modules.len()) else {
                        return;
                    };
                    if index == NO_MODULE {
                        return;
                    }
                    self.modules.push(m.to_string());
                    index
                }
            },
        };
        // The function right after its `__pfx_` padding shares the name kept for the padding.
        let name_start = match self.entries.last() {
            Some(last)
                if pfx == 0
                    && last.name_len & PFX_BIT != 0
                    && last.module == module
                    && last.name_start as usize + name.len() == self.names.len()
                    && self.names.ends_with(name) =>
            {
                last.name_start
            }
            _ => {
                self.names.push_str(name);
                name_start
            }
        };
        self.entries.push(Entry {
            addr,
            name_start,
            name_len: name_len | pfx | weak,
            module,
        });
    }

    fn finish(self) -> Kallsyms {
        let Builder {
            mut entries,
            names,
            modules,
            zero_addresses,
            nonzero_addresses,
        } = self;
        // Names were appended in input order, so `name_start` makes these unstable sorts act as a
        // stable one: among equal (addr, rank) the first listed wins. Sorting in place needs no
        // scratch buffer. Core kernel symbols come sorted by address (module symbols may not):
        // then only the few runs of one address need ordering.
        if entries.is_sorted_by_key(|e| e.addr) {
            for same_addr in entries.chunk_by_mut(|a, b| a.addr == b.addr) {
                same_addr.sort_unstable_by_key(Entry::sort_key);
            }
        } else {
            entries.sort_unstable_by_key(Entry::sort_key);
        }
        entries.dedup_by_key(|e| e.addr);
        for entry in &mut entries {
            entry.name_len &= !WEAK_BIT;
        }
        // The names of the few symbols that lost their address stay in `names` (a few KiB).
        Kallsyms {
            entries: entries.into_boxed_slice(),
            names: names.into_boxed_str(),
            modules: modules.into_boxed_slice(),
            zero_addresses,
            nonzero_addresses,
        }
    }
}

impl Kallsyms {
    /// Parse the text of /proc/kallsyms. Keep only text symbols (types t T w W); skip lines with address 0;
    /// lines look like `ffffffff81000000 T _text` or `ffffffffc0a01000 t nft_do_chain\t[nf_tables]`.
    /// Malformed lines are skipped.
    pub fn parse(text: &str) -> Kallsyms {
        let mut builder = Builder::default();
        for line in text.lines() {
            builder.line(line);
        }
        builder.finish()
    }

    /// Reads and parses /proc/kallsyms.
    pub fn load() -> std::io::Result<Kallsyms> {
        Self::load_from(std::path::Path::new("/proc/kallsyms"))
    }

    /// Reads and parses a kallsyms file (/proc/kallsyms, or a recorded extract).
    pub fn load_from(path: &std::path::Path) -> std::io::Result<Kallsyms> {
        let file = std::fs::File::open(path)?;
        Self::read(std::io::BufReader::with_capacity(64 * 1024, file))
    }

    /// Parses kallsyms text line by line as it is read, as [`Kallsyms::parse`] does. Text that is not
    /// UTF-8 is an error (`InvalidData`), as it is for `std::fs::read_to_string`.
    fn read(mut reader: impl std::io::BufRead) -> std::io::Result<Kallsyms> {
        let mut builder = Builder::default();
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(builder.finish());
            }
            builder.line(&line);
        }
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

    /// Start address of the text symbol called `name` (the first, if several share the name).
    /// A linear scan: for start-up decisions, not per event.
    pub fn address_of(&self, name: &str) -> Option<u64> {
        let function = name.strip_prefix(PFX_PREFIX);
        self.entries.iter().find_map(|e| {
            let kept = self.kept_name(e)?;
            let found = match function {
                Some(function) => e.is_padding() && kept == function,
                None => !e.is_padding() && kept == name,
            };
            found.then_some(e.addr)
        })
    }

    /// An entry's name as kept (a `__pfx_` symbol's without its prefix).
    fn kept_name(&self, entry: &Entry) -> Option<&str> {
        let start = usize::try_from(entry.name_start).ok()?;
        self.names.get(start..start.checked_add(entry.len())?)
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
        let kept = self.kept_name(entry)?;
        let name = if entry.is_padding() {
            format!("{PFX_PREFIX}{kept}")
        } else {
            kept.to_owned()
        };
        let module = match entry.module {
            NO_MODULE => None,
            m => self.modules.get(usize::from(m)).cloned(),
        };
        Some(Symbol {
            name,
            offset,
            module,
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

    /// The table as the original `Vec<Entry { name: String, .. }>` implementation built it:
    /// (address, name, module) sorted by address, one per address.
    fn reference(text: &str) -> Vec<(u64, String, Option<String>)> {
        let mut ranked = Vec::new();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            let module = match parts.next() {
                None => None,
                Some(m) => match m.strip_prefix('[').and_then(|m| m.strip_suffix(']')) {
                    Some(m) if !m.is_empty() => Some(m.to_string()),
                    _ => continue,
                },
            };
            let weak = match kind {
                "t" | "T" => 0u8,
                "w" | "W" => 1,
                _ => continue,
            };
            if addr == 0 || parts.next().is_some() {
                continue;
            }
            let rank = u8::from(name.starts_with(PFX_PREFIX)) * 2 + weak;
            ranked.push(((addr, name.to_string(), module), rank));
        }
        ranked.sort_by_key(|((addr, _, _), rank)| (*addr, *rank));
        ranked.dedup_by_key(|((addr, _, _), _)| *addr);
        ranked.into_iter().map(|(entry, _)| entry).collect()
    }

    fn assert_matches_reference(k: &Kallsyms, text: &str) {
        let expected = reference(text);
        assert_eq!(k.len(), expected.len());
        for (i, (addr, name, module)) in expected.iter().enumerate() {
            let want = sym(name, 0, module.as_deref());
            assert_eq!(k.resolve(*addr), want, "{addr:#x}");
            // The last byte before the next symbol still belongs to this one (if close enough).
            if let Some((next, _, _)) = expected.get(i + 1) {
                let offset = next - 1 - addr;
                let want = (offset <= MAX_SYMBOL_SPAN).then(|| Symbol {
                    offset,
                    ..want.clone().unwrap()
                });
                assert_eq!(k.resolve(next - 1), want, "{:#x}", next - 1);
            }
        }
    }

    /// `Kallsyms::read` over a reader with a tiny buffer, so lines straddle refills.
    fn read_slowly(text: &[u8]) -> std::io::Result<Kallsyms> {
        Kallsyms::read(std::io::BufReader::with_capacity(7, text))
    }

    #[test]
    fn same_table_as_reference() {
        assert_matches_reference(&table(), FIXTURE);
        let text = "\
ffffffff81200000 W bar_weak
ffffffff81100000 T first
ffffffffc0000000 t modfn\t[m1]
ffffffff81200000 t __pfx_bar
ffffffff81100000 T second
ffffffff81200000 t bar\t[m2]
ffffffff81200000 t bar_later
ffffffffc0000000 w modfn_weak\t[m1]
";
        let k = Kallsyms::parse(text);
        assert_matches_reference(&k, text);
        // Same address on lines far apart; equal rank: the first listed wins.
        assert_eq!(k.resolve(0xffff_ffff_8110_0000), sym("first", 0, None));
        assert_eq!(k.resolve(0xffff_ffff_8120_0003), sym("bar", 3, Some("m2")));
        assert_eq!(
            k.resolve(0xffff_ffff_c000_0001),
            sym("modfn", 1, Some("m1"))
        );
        assert!(format!("{k:?}").contains("modules: 2"));
    }

    #[test]
    fn streaming_read_matches_parse() {
        let crlf = FIXTURE.replace('\n', "\r\n");
        let unterminated = FIXTURE.trim_end();
        for text in [
            FIXTURE,
            crlf.as_str(),
            unterminated,
            "",
            "\n",
            "ffffffff81000000 T x",
        ] {
            let parsed = Kallsyms::parse(text);
            let read = read_slowly(text.as_bytes()).unwrap();
            assert_eq!(format!("{read:?}"), format!("{parsed:?}"), "{text:?}");
            assert_eq!(read.entries.len(), parsed.entries.len(), "{text:?}");
            assert_matches_reference(&read, text);
        }
        assert_eq!(
            read_slowly(b"ffffffff81000000 T ok\nffffffff81000010 T bad\xff\n")
                .unwrap_err()
                .kind(),
            std::io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn names_are_stored_back_to_back_once_each() {
        let k = table();
        // A function right after its `__pfx_` padding uses the padding's bytes.
        let shared = k
            .entries
            .windows(2)
            .filter(|w| w[0].name_start == w[1].name_start)
            .count();
        assert_eq!(shared, 4);
        assert!(k
            .entries
            .windows(2)
            .filter(|w| w[0].name_start == w[1].name_start)
            .all(|w| w[0].is_padding() && !w[1].is_padding()));
        let kept: usize = k.entries.iter().map(Entry::len).sum();
        let shared_len: usize = k
            .entries
            .windows(2)
            .filter(|w| w[0].name_start == w[1].name_start)
            .map(|w| w[1].len())
            .sum();
        // Only `_stext` and `tcp_v4_rcv_weak_alias` lost their address.
        assert_eq!(
            k.names.len(),
            kept - shared_len + "_stext".len() + "tcp_v4_rcv_weak_alias".len()
        );
        assert!(k.entries.windows(2).all(|w| w[0].addr < w[1].addr));
        assert_eq!(
            k.address_of("__pfx_tcp_v4_rcv"),
            Some(0xffff_ffff_8203_31b0)
        );
        assert_eq!(k.address_of("tcp_v4_rcv"), Some(0xffff_ffff_8203_31c0));
        assert_eq!(
            k.address_of("__pfx_nft_do_chain"),
            Some(0xffff_ffff_c0a0_0ff0)
        );
        assert_eq!(k.address_of("nft_do_chain"), Some(0xffff_ffff_c0a0_1000));
        assert_eq!(k.address_of("__pfx_"), None);
    }

    #[test]
    fn oversized_names_are_skipped() {
        let long = "x".repeat(usize::from(MAX_NAME_LEN) + 1);
        let longest = "y".repeat(usize::from(MAX_NAME_LEN));
        let text = format!(
            "ffffffff81000000 T before\nffffffff81000100 T {long}\nffffffff81000200 T {longest}\n"
        );
        let k = Kallsyms::parse(&text);
        assert_eq!(k.len(), 2);
        assert_eq!(k.resolve(0xffff_ffff_8100_0104), sym("before", 0x104, None));
        assert_eq!(k.resolve(0xffff_ffff_8100_0200), sym(&longest, 0, None));
    }

    #[test]
    fn real_kallsyms_matches_reference_and_streams() {
        let Ok(text) = std::fs::read_to_string("/proc/kallsyms") else {
            println!("skipping: /proc/kallsyms unreadable");
            return;
        };
        let k = Kallsyms::parse(&text);
        assert_matches_reference(&k, &text);
        let read = read_slowly(text.as_bytes()).unwrap();
        assert_eq!(read.entries.len(), k.entries.len());
        assert_eq!(read.names, k.names);
        assert_eq!(read.modules, k.modules);
        // Out of address order, as module symbols can be: the full in-place sort.
        let reversed: Vec<&str> = text.lines().rev().collect();
        let reversed = reversed.join("\n");
        assert_matches_reference(&Kallsyms::parse(&reversed), &reversed);
    }

    fn status_kib(field: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// `cargo test -p tracer --lib kallsyms::tests::load_footprint -- --ignored --nocapture --test-threads=1`
    #[test]
    #[ignore = "measurement: prints RSS and time of Kallsyms::load()"]
    fn load_footprint() {
        let rss_before = status_kib("VmRSS:");
        let started = std::time::Instant::now();
        let k = Kallsyms::load().unwrap();
        let elapsed = started.elapsed();
        let rss_after = status_kib("VmRSS:");
        let hwm = status_kib("VmHWM:");
        let heap: usize = std::mem::size_of_val(&*k.entries)
            + k.names.len()
            + std::mem::size_of_val(&*k.modules)
            + k.modules.iter().map(String::capacity).sum::<usize>();
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = std::time::Instant::now();
            std::hint::black_box(Kallsyms::load().unwrap());
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "symbols {} modules {} | VmRSS before {} KiB after {} KiB (+{} KiB), VmHWM {} KiB | \
             table heap ~{} KiB | first load {:.1} ms, median of 5 more {:.1} ms",
            k.len(),
            k.modules.len(),
            rss_before,
            rss_after,
            rss_after.saturating_sub(rss_before),
            hwm,
            heap / 1024,
            elapsed.as_secs_f64() * 1e3,
            times[2],
        );
        assert!(k.resolve(k.entries[0].addr).is_some());
    }
}

/// Property tests: any text, generated tables and mangled extracts; a lookup of any address is
/// None or the symbol that starts at or below it, within 1 MiB, exactly as a naive reading says.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod prop_tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testkit::mutations::{config, mutated};

    const EXTRACTS: &[&str] = &[
        "\
ffffffff81000000 T _text
ffffffff81000000 T _stext
ffffffff82033100 D init_net
ffffffff820331b0 T __pfx_tcp_v4_rcv
ffffffff820331c0 T tcp_v4_rcv
ffffffff820331c0 W tcp_v4_rcv_weak_alias
ffffffff82033a10 t tcp_v4_fill_cb
ffffffff82033d00 T last_core_fn
ffffffffc0a00ff0 t __pfx_nft_do_chain\t[nf_tables]
ffffffffc0a01000 t nft_do_chain\t[nf_tables]
ffffffffc0b00000 t br_handle_frame\t[bridge]
",
        "\
0000000000000000 T _text
0000000000000000 t tcp_v4_rcv
0000000000000000 t nft_do_chain\t[nf_tables]
",
    ];

    /// The table a naive reading of the documented rules gives: (address, name, module) sorted
    /// by address, one per address (a real name over `__pfx_`, then t/T over w/W, then first).
    fn naive(text: &str) -> Vec<(u64, String, Option<String>)> {
        let mut kept = Vec::new();
        for line in text.lines() {
            let tokens: Vec<&str> = line.split_whitespace().collect();
            let (addr, kind, name, module) = match tokens.as_slice() {
                [a, k, n] => (a, k, n, None),
                [a, k, n, m] => match m.strip_prefix('[').and_then(|m| m.strip_suffix(']')) {
                    Some(m) if !m.is_empty() => (a, k, n, Some(m.to_owned())),
                    _ => continue,
                },
                _ => continue,
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            let weak = match *kind {
                "t" | "T" => 0,
                "w" | "W" => 1,
                _ => continue,
            };
            if addr == 0 || name.len() > usize::from(MAX_NAME_LEN) {
                continue;
            }
            let rank = 2 * u8::from(name.starts_with(PFX_PREFIX)) + weak;
            kept.push((addr, rank, name.to_string(), module));
        }
        kept.sort_by_key(|(addr, rank, _, _)| (*addr, *rank));
        kept.dedup_by_key(|(addr, _, _, _)| *addr);
        kept.into_iter().map(|(a, _, n, m)| (a, n, m)).collect()
    }

    fn naive_resolve(table: &[(u64, String, Option<String>)], addr: u64) -> Option<Symbol> {
        let (start, name, module) = table.iter().rev().find(|(a, _, _)| *a <= addr)?;
        let offset = addr - start;
        (addr != 0 && offset <= MAX_SYMBOL_SPAN).then(|| Symbol {
            name: name.clone(),
            offset,
            module: module.clone(),
        })
    }

    fn check(text: &str, probes: &[u64]) -> Result<(), TestCaseError> {
        let k = Kallsyms::parse(text);
        let table = naive(text);
        prop_assert_eq!(k.len(), table.len());
        let mut addrs: Vec<u64> = probes.to_vec();
        for (a, _, _) in &table {
            addrs.extend([
                a.wrapping_sub(1),
                *a,
                a.saturating_add(1),
                a.saturating_add(MAX_SYMBOL_SPAN),
                a.saturating_add(MAX_SYMBOL_SPAN + 1),
            ]);
        }
        for addr in addrs {
            let got = k.resolve(addr);
            if let Some(sym) = &got {
                prop_assert!(
                    sym.offset <= addr && sym.offset <= MAX_SYMBOL_SPAN,
                    "{addr:#x} {sym:?}"
                );
                let start = addr - sym.offset;
                prop_assert!(
                    text.lines().any(|l| l.split_whitespace().nth(1).is_some()
                        && u64::from_str_radix(l.split_whitespace().next().unwrap_or(""), 16)
                            == Ok(start)
                        && l.split_whitespace().nth(2) == Some(sym.name.as_str())),
                    "{addr:#x} → {sym:?} not a line of the text"
                );
            }
            prop_assert_eq!(got, naive_resolve(&table, addr), "{:#x}", addr);
        }
        Ok(())
    }

    fn line() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just(0u64), 0xffff_ffff_8100_0000u64..0xffff_ffff_8100_4000, any::<u64>()],
            prop::sample::select(vec!["t", "T", "w", "W", "d", "b", "TT", "", "t\t"]),
            prop_oneof!["[a-z_]{1,10}", "__pfx_[a-z]{1,6}", Just(String::new())],
            prop_oneof![
                3 => Just(String::new()),
                1 => "\t\\[[a-z_]{1,6}\\]",
                1 => prop::sample::select(vec![" []", "\t[x", " extra", " [a] [b]"]).prop_map(str::to_owned),
            ],
            any::<bool>(),
        )
            .prop_map(|(addr, kind, name, module, upper)| {
                let addr = if upper { format!("{addr:016X}") } else { format!("{addr:016x}") };
                format!("{addr} {kind} {name}{module}")
            })
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_text_resolves_like_the_naive_reading(text in "\\PC{0,120}", probes in proptest::collection::vec(any::<u64>(), 4)) {
            check(&text, &probes)?;
        }

        #[test]
        fn generated_tables_resolve_like_the_naive_reading(
            lines in proptest::collection::vec(line(), 0..40),
            probes in proptest::collection::vec(prop_oneof![any::<u64>(), 0xffff_ffff_8100_0000u64..0xffff_ffff_8120_0000], 8),
        ) {
            check(&lines.join("\n"), &probes)?;
        }

        #[test]
        fn mangled_extracts_resolve_like_the_naive_reading(
            (_, text) in mutated(EXTRACTS),
            probes in proptest::collection::vec(any::<u64>(), 4),
        ) {
            check(&text, &probes)?;
            // The streaming reader (what `load` uses) builds the same table.
            let streamed = Kallsyms::read(std::io::BufReader::with_capacity(5, text.as_bytes())).unwrap();
            let parsed = Kallsyms::parse(&text);
            prop_assert_eq!(streamed.len(), parsed.len());
            for addr in probes {
                prop_assert_eq!(streamed.resolve(addr), parsed.resolve(addr));
            }
        }
    }
}
