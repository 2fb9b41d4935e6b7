//! Parses tracefs event `format` files into field offsets, sizes and `__print_symbolic` tables.
//! Pure text parsing only: it must not read tracefs itself, attach anything, or panic on bad input.

use serde::Serialize;

/// Prefix of the fields every trace event starts with; they are left out of [`EventFormat::fields`].
const COMMON_PREFIX: &str = "common_";

/// One field of an event record, as described by a `field:` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    /// Field name without any array suffix: `saddr` for `__u8 saddr[4]`.
    pub name: String,
    /// C type as written, minus the name and the array brackets: `__u8`, `void *`,
    /// `enum skb_drop_reason`, `__data_loc char[]`.
    pub c_type: String,
    /// Byte offset inside the raw record.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    /// `signed:1`; false when the kernel does not say.
    pub signed: bool,
    /// Element count for `name[N]` fields.
    pub array_len: Option<u32>,
}

/// A parsed tracefs `format` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventFormat {
    /// Event name (`name:` line).
    pub name: String,
    /// Event id (`ID:` line), the value of `common_type` in records.
    pub id: u32,
    /// Event-specific fields in file order (the `common_*` fields are left out).
    pub fields: Vec<Field>,
    /// Text after `print fmt:`.
    pub print_fmt: String,
}

/// Why a `format` file could not be parsed or lacks what the caller needs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("format file has no `name:` line")]
    MissingName,
    #[error("format file of event `{event}` has no `ID:` line")]
    MissingId { event: String },
    #[error("format file of event `{event}` has no `print fmt:` line")]
    MissingPrintFmt { event: String },
    #[error("line {line}: bad `ID:` value {text:?}")]
    BadId { line: usize, text: String },
    #[error("line {line}: malformed field line {text:?}")]
    BadField { line: usize, text: String },
    #[error("line {line}: bad number for `{key}`: {value:?}")]
    BadNumber {
        line: usize,
        key: String,
        value: String,
    },
    #[error("line {line}: `{key}` given twice")]
    Duplicate { line: usize, key: String },
    #[error("line {line}: unexpected text {text:?}")]
    UnexpectedLine { line: usize, text: String },
    #[error("event `{event}` has no field `{field}`")]
    MissingField { event: String, field: String },
    #[error("event `{event}` field `{field}` has size {size}, expected one of {expected:?}")]
    BadFieldSize {
        event: String,
        field: String,
        size: u32,
        expected: Vec<u32>,
    },
}

impl EventFormat {
    /// Parses the text of a tracefs `events/<system>/<event>/format` file.
    pub fn parse(text: &str) -> Result<EventFormat, FormatError> {
        let mut name: Option<String> = None;
        let mut id: Option<u32> = None;
        let mut print_fmt: Option<String> = None;
        let mut fields: Vec<Field> = Vec::new();
        let mut seen_format = false;

        for (index, raw) in text.lines().enumerate() {
            let line = index.saturating_add(1);
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix("name:") {
                let value = rest.trim();
                if value.is_empty() {
                    return Err(FormatError::MissingName);
                }
                if name.replace(value.to_string()).is_some() {
                    return Err(duplicate(line, "name"));
                }
            } else if let Some(rest) = trimmed.strip_prefix("ID:") {
                let value = rest.trim();
                let parsed = value.parse::<u32>().map_err(|_| FormatError::BadId {
                    line,
                    text: value.to_string(),
                })?;
                if id.replace(parsed).is_some() {
                    return Err(duplicate(line, "ID"));
                }
            } else if trimmed == "format:" {
                if seen_format {
                    return Err(duplicate(line, "format"));
                }
                seen_format = true;
            } else if let Some(rest) = trimmed.strip_prefix("field:") {
                if print_fmt.is_some() {
                    return Err(unexpected(line, raw));
                }
                let field = parse_field(line, rest)?;
                if field.name.starts_with(COMMON_PREFIX) {
                    continue;
                }
                if fields.iter().any(|f| f.name == field.name) {
                    return Err(duplicate(line, &field.name));
                }
                fields.push(field);
            } else if let Some(rest) = trimmed.strip_prefix("print fmt:") {
                if print_fmt.replace(rest.trim().to_string()).is_some() {
                    return Err(duplicate(line, "print fmt"));
                }
            } else {
                return Err(unexpected(line, raw));
            }
        }

        let name = name.ok_or(FormatError::MissingName)?;
        let id = id.ok_or_else(|| FormatError::MissingId {
            event: name.clone(),
        })?;
        let print_fmt = print_fmt.ok_or_else(|| FormatError::MissingPrintFmt {
            event: name.clone(),
        })?;
        Ok(EventFormat {
            name,
            id,
            fields,
            print_fmt,
        })
    }

    /// The field called `name`, if the event has it.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Offset of a field that must exist with one of the given sizes; error message names the event and field.
    pub fn require(&self, name: &str, sizes: &[u32]) -> Result<u32, FormatError> {
        self.optional(name, sizes)?
            .ok_or_else(|| FormatError::MissingField {
                event: self.name.clone(),
                field: name.to_string(),
            })
    }

    /// Offset of an optional field (None when absent); Err if present with an unexpected size.
    pub fn optional(&self, name: &str, sizes: &[u32]) -> Result<Option<u32>, FormatError> {
        match self.field(name) {
            None => Ok(None),
            Some(f) if sizes.contains(&f.size) => Ok(Some(f.offset)),
            Some(f) => Err(FormatError::BadFieldSize {
                event: self.name.clone(),
                field: name.to_string(),
                size: f.size,
                expected: sizes.to_vec(),
            }),
        }
    }

    /// The `{ value, "NAME" }` pairs of the `__print_symbolic(REC-><field>, ...)` call for that field in print_fmt,
    /// only the entries whose value is a decimal/hex integer literal (entries like `{ TCP_ESTABLISHED, "..." }` are skipped).
    /// Empty Vec if no such call.
    pub fn symbolic_values(&self, field: &str) -> Vec<(u64, String)> {
        const CALL: &str = "__print_symbolic(";
        let fmt = self.print_fmt.as_str();
        let mut search_from = 0usize;
        while let Some(found) = fmt.get(search_from..).and_then(|s| s.find(CALL)) {
            let args_start = search_from.saturating_add(found).saturating_add(CALL.len());
            search_from = args_start;
            let Some(inner) = fmt.get(args_start..).and_then(call_body) else {
                continue;
            };
            let args = split_top_level(inner, ',');
            let Some(first) = args.first() else {
                continue;
            };
            let target = strip_parens(first.trim());
            if target.strip_prefix("REC->") != Some(field) {
                continue;
            }
            return args
                .iter()
                .skip(1)
                .filter_map(|entry| parse_symbolic_entry(entry))
                .collect();
        }
        Vec::new()
    }
}

fn duplicate(line: usize, key: &str) -> FormatError {
    FormatError::Duplicate {
        line,
        key: key.to_string(),
    }
}

fn unexpected(line: usize, raw: &str) -> FormatError {
    FormatError::UnexpectedLine {
        line,
        text: raw.trim().to_string(),
    }
}

/// Parses what follows `field:` on a field line:
/// `unsigned int vec;\toffset:8;\tsize:4;\tsigned:0;`.
fn parse_field(line: usize, rest: &str) -> Result<Field, FormatError> {
    let bad = || FormatError::BadField {
        line,
        text: format!("field:{}", rest.trim()),
    };
    let mut parts = rest.split(';');
    let decl = parts.next().map(str::trim).unwrap_or_default();
    let (c_type, name, array_len) = parse_declaration(decl).ok_or_else(bad)?;

    let mut offset: Option<u32> = None;
    let mut size: Option<u32> = None;
    let mut signed: Option<bool> = None;
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (key, value) = part.split_once(':').ok_or_else(bad)?;
        let key = key.trim();
        let value = value.trim();
        let slot_filled = match key {
            "offset" => offset.replace(parse_u32(line, key, value)?).is_some(),
            "size" => size.replace(parse_u32(line, key, value)?).is_some(),
            "signed" => {
                let flag = match value {
                    "0" => false,
                    "1" => true,
                    _ => {
                        return Err(FormatError::BadNumber {
                            line,
                            key: key.to_string(),
                            value: value.to_string(),
                        })
                    }
                };
                signed.replace(flag).is_some()
            }
            // Unknown attributes from other kernels are tolerated, but must look like `key:value`.
            _ if !key.is_empty() && key.chars().all(is_ident_char) => false,
            _ => return Err(bad()),
        };
        if slot_filled {
            return Err(duplicate(line, key));
        }
    }
    let (Some(offset), Some(size)) = (offset, size) else {
        return Err(bad());
    };
    if offset.checked_add(size).is_none() {
        return Err(FormatError::BadNumber {
            line,
            key: "offset+size".to_string(),
            value: format!("{offset}+{size}"),
        });
    }
    Ok(Field {
        name,
        c_type,
        offset,
        size,
        signed: signed.unwrap_or(false),
        array_len,
    })
}

fn parse_u32(line: usize, key: &str, value: &str) -> Result<u32, FormatError> {
    value.parse::<u32>().map_err(|_| FormatError::BadNumber {
        line,
        key: key.to_string(),
        value: value.to_string(),
    })
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits `__u8 saddr[4]` into (`__u8`, `saddr`, Some(4)). None when the text is not a declaration.
/// A bracket content that is not a number (e.g. a macro name) gives `array_len: None`.
fn parse_declaration(decl: &str) -> Option<(String, String, Option<u32>)> {
    let mut head = decl.trim_end();
    let mut array_len = None;
    if let Some(before_close) = head.strip_suffix(']') {
        let open = before_close.rfind('[')?;
        let inside = before_close.get(open.checked_add(1)?..)?.trim();
        if !inside.is_empty() && inside.chars().all(|c| c.is_ascii_digit()) {
            // Digits only: an overflowing length is garbage, not "unknown".
            array_len = Some(inside.parse::<u32>().ok()?);
        } else if inside.is_empty() || !inside.chars().all(is_ident_char) {
            return None;
        }
        head = before_close.get(..open)?.trim_end();
    }
    let name_start = head
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_ident_char(c))
        .last()
        .map(|(i, _)| i)?;
    let name = head.get(name_start..)?;
    let c_type = head.get(..name_start)?.trim();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) || c_type.is_empty() {
        return None;
    }
    // The type ends with an identifier, `*`, or `]` (`__data_loc char[]`); it must be separated
    // from the name by whitespace or `*`.
    let joined = head.get(..name_start)?;
    if !(joined.ends_with(char::is_whitespace) || joined.ends_with('*')) {
        return None;
    }
    Some((c_type.to_string(), name.to_string(), array_len))
}

/// Given the text just after a call's `(`, returns the text up to the matching `)`.
fn call_body(after_open: &str) -> Option<&str> {
    let mut depth: usize = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in after_open.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' | '{' | '[' => depth = depth.checked_add(1)?,
            ')' if depth == 0 => return after_open.get(..i),
            ')' | '}' | ']' => depth = depth.checked_sub(1)?,
            _ => {}
        }
    }
    None
}

/// Splits at `sep` outside strings and brackets. Unbalanced closers are treated as text.
fn split_top_level(text: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth: usize = 0;
    let mut in_string = false;
    let mut escaped = false;
    let mut start = 0usize;
    for (i, c) in text.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' | '{' | '[' => depth = depth.saturating_add(1),
            ')' | '}' | ']' => depth = depth.saturating_sub(1),
            _ if c == sep && depth == 0 => {
                if let Some(piece) = text.get(start..i) {
                    out.push(piece);
                }
                start = i.saturating_add(c.len_utf8());
            }
            _ => {}
        }
    }
    if let Some(piece) = text.get(start..) {
        out.push(piece);
    }
    out
}

/// Removes balanced-looking outer parentheses: `((x))` -> `x`.
fn strip_parens(mut text: &str) -> &str {
    while let Some(inner) = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
        text = inner.trim();
    }
    text
}

/// Parses `{ 3, "NET_RX" }`; None for non-literal values or anything malformed.
fn parse_symbolic_entry(entry: &str) -> Option<(u64, String)> {
    let inner = entry.trim().strip_prefix('{')?.strip_suffix('}')?.trim();
    let parts = split_top_level(inner, ',');
    let [value, label] = parts.as_slice() else {
        return None;
    };
    let value = parse_int_literal(strip_parens(value.trim()))?;
    let label = parse_string_literal(label.trim())?;
    Some((value, label))
}

/// Decimal or `0x` hex integer literal, with optional `u`/`l` suffixes.
fn parse_int_literal(text: &str) -> Option<u64> {
    let digits = text.trim_end_matches(['u', 'U', 'l', 'L']);
    if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        return u64::from_str_radix(hex, 16).ok();
    }
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()
}

/// `"NET_RX"` -> `NET_RX`, undoing `\"` and `\\`.
fn parse_string_literal(text: &str) -> Option<String> {
    let body = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(next @ ('"' | '\\')) => out.push(next),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => return None,
            }
        } else if c == '"' {
            // An unescaped quote inside means this was not a single literal.
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KFREE_SKB: &str = include_str!("../../../tests/fixtures/formats/skb_kfree_skb.format");
    const KFREE_SKB_510: &str =
        include_str!("../../../tests/fixtures/formats/skb_kfree_skb_5.10.format");
    const RETRANSMIT: &str =
        include_str!("../../../tests/fixtures/formats/tcp_tcp_retransmit_skb.format");
    const SOFTIRQ_ENTRY: &str =
        include_str!("../../../tests/fixtures/formats/irq_softirq_entry.format");
    const SEND_RESET: &str =
        include_str!("../../../tests/fixtures/formats/tcp_tcp_send_reset.format");
    const NAPI_POLL: &str = include_str!("../../../tests/fixtures/formats/napi_napi_poll.format");
    const SET_STATE: &str =
        include_str!("../../../tests/fixtures/formats/sock_inet_sock_set_state.format");

    const ALL: &[&str] = &[
        KFREE_SKB,
        KFREE_SKB_510,
        RETRANSMIT,
        SOFTIRQ_ENTRY,
        SEND_RESET,
        NAPI_POLL,
        SET_STATE,
        include_str!("../../../tests/fixtures/formats/fib_fib_table_lookup.format"),
        include_str!("../../../tests/fixtures/formats/icmp_icmp_send.format"),
        include_str!("../../../tests/fixtures/formats/irq_softirq_exit.format"),
        include_str!("../../../tests/fixtures/formats/irq_softirq_raise.format"),
        include_str!("../../../tests/fixtures/formats/neigh_neigh_update.format"),
        include_str!("../../../tests/fixtures/formats/net_net_dev_queue.format"),
        include_str!("../../../tests/fixtures/formats/net_net_dev_xmit.format"),
        include_str!("../../../tests/fixtures/formats/net_net_dev_xmit_timeout.format"),
        include_str!("../../../tests/fixtures/formats/net_netif_receive_skb.format"),
        include_str!("../../../tests/fixtures/formats/qdisc_qdisc_dequeue.format"),
        include_str!("../../../tests/fixtures/formats/skb_consume_skb.format"),
        include_str!("../../../tests/fixtures/formats/sock_sock_exceed_buf_limit.format"),
        include_str!("../../../tests/fixtures/formats/sock_sock_rcvqueue_full.format"),
        include_str!("../../../tests/fixtures/formats/tcp_tcp_bad_csum.format"),
        include_str!("../../../tests/fixtures/formats/tcp_tcp_destroy_sock.format"),
        include_str!("../../../tests/fixtures/formats/tcp_tcp_probe.format"),
        include_str!("../../../tests/fixtures/formats/tcp_tcp_receive_reset.format"),
        include_str!("../../../tests/fixtures/formats/tcp_tcp_retransmit_synack.format"),
        include_str!("../../../tests/fixtures/formats/udp_udp_fail_queue_rcv_skb.format"),
        include_str!("../../../tests/fixtures/formats/xdp_xdp_exception.format"),
    ];

    fn parse(text: &str) -> EventFormat {
        EventFormat::parse(text).unwrap()
    }

    #[test]
    fn all_fixtures_parse() {
        for text in ALL {
            let ev = EventFormat::parse(text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert!(!ev.fields.is_empty(), "{}", ev.name);
            assert!(ev.fields.iter().all(|f| !f.name.starts_with("common_")));
            assert!(!ev.print_fmt.is_empty());
        }
    }

    #[test]
    fn kfree_skb_fields() {
        let ev = parse(KFREE_SKB);
        assert_eq!(ev.name, "kfree_skb");
        assert_eq!(ev.id, 2310);
        assert_eq!(ev.fields.len(), 5);
        assert_eq!(ev.require("reason", &[4]), Ok(36));
        assert_eq!(ev.require("rx_sk", &[8]), Ok(24));
        assert_eq!(ev.require("location", &[8]), Ok(16));
        assert_eq!(ev.optional("rx_sk", &[8]), Ok(Some(24)));
        let reason = ev.field("reason").unwrap();
        assert_eq!(
            reason,
            &Field {
                name: "reason".into(),
                c_type: "enum skb_drop_reason".into(),
                offset: 36,
                size: 4,
                signed: false,
                array_len: None,
            }
        );
        assert_eq!(ev.field("skbaddr").unwrap().c_type, "void *");
        assert!(ev.field("common_pid").is_none());
    }

    #[test]
    fn kfree_skb_reasons() {
        let ev = parse(KFREE_SKB);
        let reasons = ev.symbolic_values("reason");
        assert_eq!(reasons.len(), 127);
        assert_eq!(reasons.first(), Some(&(2, "NOT_SPECIFIED".to_string())));
        assert_eq!(reasons.last(), Some(&(128, "MAX".to_string())));
        assert!(reasons.contains(&(3, "NO_SOCKET".to_string())));
        assert!(reasons.contains(&(12, "NETFILTER_DROP".to_string())));
        assert!(ev.symbolic_values("protocol").is_empty());
        assert!(ev.symbolic_values("nope").is_empty());
    }

    #[test]
    fn require_errors_name_event_and_field() {
        let ev = parse(KFREE_SKB);
        let missing = ev.require("nope", &[4]).unwrap_err();
        assert_eq!(
            missing,
            FormatError::MissingField {
                event: "kfree_skb".into(),
                field: "nope".into()
            }
        );
        let text = missing.to_string();
        assert!(
            text.contains("kfree_skb") && text.contains("nope"),
            "{text}"
        );

        let wrong = ev.require("reason", &[8]).unwrap_err();
        let text = wrong.to_string();
        assert!(
            text.contains("kfree_skb") && text.contains("reason"),
            "{text}"
        );
        assert!(matches!(wrong, FormatError::BadFieldSize { size: 4, .. }));
        assert!(ev.optional("reason", &[2, 8]).is_err());
    }

    #[test]
    fn kfree_skb_510_has_no_reason_or_rx_sk() {
        let ev = parse(KFREE_SKB_510);
        assert_eq!(ev.name, "kfree_skb");
        assert_eq!(ev.id, 1234);
        assert_eq!(ev.optional("reason", &[4]), Ok(None));
        assert_eq!(ev.optional("rx_sk", &[8]), Ok(None));
        assert_eq!(ev.require("skbaddr", &[8]), Ok(8));
        assert_eq!(ev.require("location", &[8]), Ok(16));
        assert_eq!(ev.require("protocol", &[2]), Ok(24));
        assert!(ev.symbolic_values("reason").is_empty());
    }

    #[test]
    fn tcp_retransmit_skb_fields() {
        let ev = parse(RETRANSMIT);
        assert_eq!(ev.require("err", &[4]), Ok(76));
        assert_eq!(ev.require("family", &[2]), Ok(32));
        let saddr = ev.field("saddr").unwrap();
        assert_eq!(saddr.array_len, Some(4));
        assert_eq!(saddr.c_type, "__u8");
        assert_eq!(saddr.offset, 34);
        assert_eq!(ev.field("saddr_v6").unwrap().array_len, Some(16));
        assert!(ev.field("err").unwrap().signed);
        assert_eq!(ev.field("skaddr").unwrap().c_type, "const void *");
        assert_eq!(
            ev.symbolic_values("family"),
            vec![(2, "AF_INET".to_string()), (10, "AF_INET6".to_string())]
        );
        // `{ TCP_ESTABLISHED, "..." }` entries are not literals.
        assert!(ev.symbolic_values("state").is_empty());
    }

    #[test]
    fn softirq_entry_vectors() {
        let ev = parse(SOFTIRQ_ENTRY);
        assert_eq!(ev.id, 223);
        assert_eq!(ev.require("vec", &[4]), Ok(8));
        let vecs = ev.symbolic_values("vec");
        assert_eq!(vecs.len(), 10);
        assert!(vecs.contains(&(3, "NET_RX".to_string())));
        assert!(vecs.contains(&(2, "NET_TX".to_string())));
        assert_eq!(vecs.first(), Some(&(0, "HI".to_string())));
    }

    #[test]
    fn send_reset_reason_inside_ternary() {
        let ev = parse(SEND_RESET);
        assert_eq!(ev.require("reason", &[4]), Ok(28));
        assert_eq!(ev.field("saddr").unwrap().array_len, Some(28));
        let reasons = ev.symbolic_values("reason");
        assert_eq!(reasons.len(), 26);
        assert!(reasons.contains(&(1, "NO_SOCKET".to_string())));
        assert!(ev.symbolic_values("state").is_empty());
    }

    #[test]
    fn sock_set_state_states() {
        let ev = parse(SET_STATE);
        let states = ev.symbolic_values("newstate");
        assert_eq!(states.len(), 12);
        assert!(states.contains(&(1, "TCP_ESTABLISHED".to_string())));
        assert!(ev
            .symbolic_values("protocol")
            .contains(&(262, "IPPROTO_MPTCP".to_string())));
    }

    #[test]
    fn data_loc_field() {
        let ev = parse(NAPI_POLL);
        let dev = ev.field("dev_name").unwrap();
        assert_eq!(dev.c_type, "__data_loc char[]");
        assert_eq!(dev.offset, 16);
        assert_eq!(dev.size, 4);
        assert_eq!(dev.array_len, None);
        assert_eq!(ev.field("napi").unwrap().c_type, "struct napi_struct *");
    }

    #[test]
    fn tolerant_of_spaces_missing_signed_and_blank_lines() {
        let text = "\n\nname: old_event\nID: 7\n\nformat:\n  field:unsigned short common_type;  offset:0;  size:2;\n\n    field:int  foo ;  offset: 8 ; size: 4;\n field:char comm[16]; offset:12; size:16; signed:1;\n\n\nprint fmt: \"foo=%d\", REC->foo, __print_symbolic(REC->foo, { 0x10, \"SIXTEEN\" }, { 1UL, \"ONE\" }, { (2), \"TWO\" }, { X, \"X\" }, { 3, \"Q\\\"T\" })\n\n";
        let ev = parse(text);
        assert_eq!(ev.name, "old_event");
        assert_eq!(ev.id, 7);
        assert_eq!(ev.fields.len(), 2);
        let foo = ev.field("foo").unwrap();
        assert_eq!((foo.offset, foo.size, foo.signed), (8, 4, false));
        assert_eq!(foo.c_type, "int");
        let comm = ev.field("comm").unwrap();
        assert_eq!((comm.array_len, comm.signed), (Some(16), true));
        assert_eq!(
            ev.symbolic_values("foo"),
            vec![
                (16, "SIXTEEN".to_string()),
                (1, "ONE".to_string()),
                (2, "TWO".to_string()),
                (3, "Q\"T".to_string()),
            ]
        );
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert_eq!(EventFormat::parse(""), Err(FormatError::MissingName));
        assert_eq!(
            EventFormat::parse("\n\n  \n"),
            Err(FormatError::MissingName)
        );
        assert!(matches!(
            EventFormat::parse("name: x\n"),
            Err(FormatError::MissingId { .. })
        ));
        assert!(matches!(
            EventFormat::parse("name: x\nID: 1\nformat:\n"),
            Err(FormatError::MissingPrintFmt { .. })
        ));
        assert!(matches!(
            EventFormat::parse("name: x\nID: 99999999999\n"),
            Err(FormatError::BadId { line: 2, .. })
        ));
        assert!(matches!(
            EventFormat::parse("name: x\nID: -1\n"),
            Err(FormatError::BadId { .. })
        ));

        let header = "name: x\nID: 1\nformat:\n";
        let with = |field: &str| EventFormat::parse(&format!("{header}{field}\nprint fmt: \"\"\n"));
        // Truncated field line: no size.
        assert!(matches!(
            with("\tfield:unsigned int vec;\toffset:8;"),
            Err(FormatError::BadField { line: 4, .. })
        ));
        assert!(matches!(
            with("\tfield:unsigned int vec;\toffset:8;\tsi"),
            Err(FormatError::BadField { .. })
        ));
        assert!(matches!(
            with("\tfield:unsigned int vec"),
            Err(FormatError::BadField { .. })
        ));
        assert!(matches!(
            with("\tfield:"),
            Err(FormatError::BadField { .. })
        ));
        // No type, only a name.
        assert!(matches!(
            with("\tfield:vec;\toffset:8;\tsize:4;"),
            Err(FormatError::BadField { .. })
        ));
        // Offset not a number.
        assert!(matches!(
            with("\tfield:int vec;\toffset:eight;\tsize:4;\tsigned:1;"),
            Err(FormatError::BadNumber { .. })
        ));
        // Huge numbers.
        assert!(matches!(
            with("\tfield:int vec;\toffset:99999999999999999999999;\tsize:4;"),
            Err(FormatError::BadNumber { .. })
        ));
        assert!(matches!(
            with("\tfield:int vec;\toffset:4294967295;\tsize:4;"),
            Err(FormatError::BadNumber { .. })
        ));
        assert!(matches!(
            with("\tfield:__u8 a[99999999999999999999];\toffset:8;\tsize:4;"),
            Err(FormatError::BadField { .. })
        ));
        assert!(matches!(
            with("\tfield:int vec;\toffset:8;\tsize:4;\tsigned:2;"),
            Err(FormatError::BadNumber { .. })
        ));
        assert!(matches!(
            with("\tfield:int vec;\toffset:8;\toffset:8;\tsize:4;"),
            Err(FormatError::Duplicate { .. })
        ));
        assert!(matches!(
            with("\tfield:int vec;\toffset:8;\tsize:4;\n\tfield:int vec;\toffset:12;\tsize:4;"),
            Err(FormatError::Duplicate { .. })
        ));
        assert!(matches!(
            with("\tfield:int a[;\toffset:8;\tsize:4;"),
            Err(FormatError::BadField { .. })
        ));
        assert!(matches!(
            with("garbage here"),
            Err(FormatError::UnexpectedLine { line: 4, .. })
        ));
        assert!(matches!(
            EventFormat::parse("\u{0}\u{ffff}é\n"),
            Err(FormatError::UnexpectedLine { line: 1, .. })
        ));
        // The same field line is fine.
        assert!(with("\tfield:int vec;\toffset:8;\tsize:4;").is_ok());
    }

    #[test]
    fn symbolic_values_on_malformed_print_fmt() {
        let mut ev = parse(SOFTIRQ_ENTRY);
        for fmt in [
            "__print_symbolic(",
            "__print_symbolic(REC->vec",
            "__print_symbolic(REC->vec, { 1, \"A\"",
            "__print_symbolic(REC->vec, { 1, \"A }, { 2, \"B\" })",
            "__print_symbolic(REC->vec, {}, { , }, { 1 }, { 1, 2 }, { 99999999999999999999999, \"BIG\" }, { 0xZZ, \"H\" }, { 4, \"OK\" })",
            "__print_symbolic(REC->vector, { 1, \"A\" })",
            "))))__print_symbolic(((REC->vec)), { 5, \"P\" }",
            "\"__print_symbolic(REC->vec, { 1, \\\"A\\\" })\"",
        ] {
            ev.print_fmt = fmt.to_string();
            let _ = ev.symbolic_values("vec");
        }
        ev.print_fmt = "__print_symbolic(REC->vec, {}, { , }, { 1 }, { 1, 2 }, { 99999999999999999999999, \"BIG\" }, { 0xZZ, \"H\" }, { 4, \"OK\" })".into();
        assert_eq!(ev.symbolic_values("vec"), vec![(4, "OK".to_string())]);
        ev.print_fmt = "__print_symbolic(REC->vector, { 1, \"A\" })".into();
        assert!(ev.symbolic_values("vec").is_empty());
        ev.print_fmt =
            "x, __print_symbolic(REC->other, { 1, \"A\" }), __print_symbolic(REC->vec, { 2, \"B\" })"
                .into();
        assert_eq!(ev.symbolic_values("vec"), vec![(2, "B".to_string())]);
    }

    #[test]
    fn every_prefix_parses_without_panic() {
        for text in ALL {
            for i in 0..=text.len() {
                if let Some(prefix) = text.get(..i) {
                    if let Ok(ev) = EventFormat::parse(prefix) {
                        for f in &ev.fields {
                            let _ = ev.symbolic_values(&f.name);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn mangled_lines_do_not_panic() {
        // Drop, duplicate or cut each line of each fixture in turn.
        for text in ALL {
            let lines: Vec<&str> = text.lines().collect();
            for skip in 0..lines.len() {
                let mut dropped = lines.clone();
                dropped.remove(skip);
                let _ = EventFormat::parse(&dropped.join("\n"));
                let mut doubled = lines.clone();
                doubled.insert(skip, lines[skip]);
                let _ = EventFormat::parse(&doubled.join("\n"));
                let line = lines[skip];
                for cut in 0..line.len() {
                    if let (Some(a), Some(b)) = (line.get(..cut), line.get(cut..)) {
                        let mut mangled = lines.clone();
                        let joined = format!("{b}{a}");
                        mangled[skip] = &joined;
                        let _ = EventFormat::parse(&mangled.join("\n"));
                    }
                }
            }
        }
    }
}

/// Property tests: any text, and the recorded format files cut and mangled, parse or fail with a
/// located error; never a panic, never a field the text does not have.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod prop_tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testkit::mutations::{config, mutated};

    /// The recorded format files (5.10 and 6.18), as `tests` reads them.
    const FIXTURES: &[&str] = &[
        include_str!("../../../tests/fixtures/formats/skb_kfree_skb.format"),
        include_str!("../../../tests/fixtures/formats/skb_kfree_skb_5.10.format"),
        include_str!("../../../tests/fixtures/formats/tcp_tcp_retransmit_skb.format"),
        include_str!("../../../tests/fixtures/formats/irq_softirq_entry.format"),
        include_str!("../../../tests/fixtures/formats/tcp_tcp_send_reset.format"),
        include_str!("../../../tests/fixtures/formats/napi_napi_poll.format"),
        include_str!("../../../tests/fixtures/formats/sock_inet_sock_set_state.format"),
        include_str!("../../../tests/fixtures/formats/net_net_dev_xmit.format"),
        include_str!("../../../tests/fixtures/formats/qdisc_qdisc_dequeue.format"),
    ];

    /// What every parsed event satisfies, whatever the input.
    fn check_invariants(text: &str, ev: &EventFormat) -> Result<(), TestCaseError> {
        prop_assert!(!ev.name.is_empty() && text.contains(&ev.name));
        let mut names = std::collections::BTreeSet::new();
        for f in &ev.fields {
            prop_assert!(!f.name.starts_with(COMMON_PREFIX), "{f:?}");
            prop_assert!(names.insert(f.name.clone()), "duplicate field {f:?}");
            prop_assert!(f.offset.checked_add(f.size).is_some(), "{f:?}");
            prop_assert!(!f.c_type.is_empty() && text.contains(&f.name), "{f:?}");
            // Symbolic tables of any field: no panic, and only labels the text spells.
            for (_, label) in ev.symbolic_values(&f.name) {
                prop_assert!(
                    text.contains(&label.replace('\\', "\\\\").replace('"', "\\\""))
                        || text.contains(&label),
                    "label {label:?}"
                );
            }
        }
        Ok(())
    }

    /// An error names a line the text has (when it is about a line).
    fn check_error(text: &str, err: &FormatError) -> Result<(), TestCaseError> {
        let lines = text.lines().count();
        let line = match err {
            FormatError::BadId { line, .. }
            | FormatError::BadField { line, .. }
            | FormatError::BadNumber { line, .. }
            | FormatError::Duplicate { line, .. }
            | FormatError::UnexpectedLine { line, .. } => Some(*line),
            _ => None,
        };
        if let Some(line) = line {
            prop_assert!(line >= 1 && line <= lines, "line {line} of {lines}: {err}");
        }
        prop_assert!(!err.to_string().is_empty());
        Ok(())
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_text_parses_or_fails_cleanly(text in "\\PC{0,200}") {
            match EventFormat::parse(&text) {
                Ok(ev) => check_invariants(&text, &ev)?,
                Err(e) => check_error(&text, &e)?,
            }
        }

        /// Lines that look like a format file's, in any order and number.
        #[test]
        fn format_like_lines_parse_or_fail_cleanly(lines in proptest::collection::vec(
            prop_oneof![
                "name: [a-z_]{0,8}",
                "ID: -?[0-9]{0,12}",
                Just("format:".to_owned()),
                "\tfield:[a-z_ *]{0,12}( [a-z_]{1,6})?(\\[[0-9a-z]{0,3}\\])?;\toffset:[-0-9a-z]{0,11};\tsize:[0-9]{0,11};(\tsigned:[0-3];)?",
                "print fmt: \"[a-z=%]*\"(, __print_symbolic\\(REC->[a-z]{1,3}(, \\{ [0-9xa-f]{1,20}, \"[A-Z\\\\\"]{0,4}\" \\}){0,3}\\)?)?",
                "[ -~]{0,20}",
            ],
            0..12,
        )) {
            let text = lines.join("\n");
            match EventFormat::parse(&text) {
                Ok(ev) => check_invariants(&text, &ev)?,
                Err(e) => check_error(&text, &e)?,
            }
        }

        /// A format file cut at any byte gives the whole file's name, id and fields (print fmt
        /// is last, so a file that still has it has every field line whole), or a located error.
        #[test]
        fn truncated_fixture_is_a_subset_or_an_error(which in 0..FIXTURES.len(), cut in any::<usize>()) {
            let full_text = FIXTURES[which];
            let full = EventFormat::parse(full_text).unwrap();
            let mut at = cut % (full_text.len() + 1);
            while !full_text.is_char_boundary(at) {
                at -= 1;
            }
            let text = &full_text[..at];
            match EventFormat::parse(text) {
                Ok(ev) => {
                    prop_assert_eq!(&ev.name, &full.name);
                    prop_assert_eq!(ev.id, full.id);
                    prop_assert_eq!(&ev.fields, &full.fields);
                    prop_assert!(full.print_fmt.starts_with(&ev.print_fmt));
                    check_invariants(text, &ev)?;
                }
                Err(e) => check_error(text, &e)?,
            }
        }

        /// Lines deleted, doubled, swapped; numbers made huge, negative or not numbers;
        /// separators dropped; garbage inserted.
        #[test]
        fn mangled_fixtures_parse_or_fail_cleanly((_, text) in mutated(FIXTURES)) {
            match EventFormat::parse(&text) {
                Ok(ev) => {
                    check_invariants(&text, &ev)?;
                    // A number that no longer fits is never read as a smaller one.
                    for f in &ev.fields {
                        prop_assert!(text.contains(&format!("offset:{}", f.offset))
                            || text.contains(&format!("offset: {}", f.offset)), "{f:?}");
                    }
                }
                Err(e) => check_error(&text, &e)?,
            }
        }

        /// `__print_symbolic` tables written out are read back exactly.
        #[test]
        fn symbolic_tables_round_trip(
            entries in proptest::collection::vec((any::<u64>(), any::<bool>(), "[A-Z_0-9]{1,12}"), 0..8),
            noise in "[a-z =%,]{0,20}",
        ) {
            let table: Vec<String> = entries
                .iter()
                .map(|(v, hex, l)| if *hex { format!("{{ {v:#x}, \"{l}\" }}") } else { format!("{{ {v}, \"{l}\" }}") })
                .collect();
            let args: String = table.iter().map(|e| format!(", {e}")).collect();
            let print_fmt = format!("\"{noise}\", __print_symbolic(REC->f{args}), REC->g");
            let ev = EventFormat { name: "e".into(), id: 1, fields: vec![], print_fmt };
            let want: Vec<(u64, String)> = entries.into_iter().map(|(v, _, l)| (v, l)).collect();
            prop_assert_eq!(ev.symbolic_values("f"), want);
            prop_assert!(ev.symbolic_values("g").is_empty());
        }
    }
}
