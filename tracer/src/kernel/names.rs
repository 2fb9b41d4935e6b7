//! Names that give the kernel's numbers meaning (drop reasons, softirq vectors, reset reasons),
//! read from the running kernel: BTF first, then the tracepoints' own symbolic tables. Never a
//! hard-coded number.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::kernel::{btf::KernelBtf, format::EventFormat};

/// Names that give the kernel's numbers meaning, all read from the running kernel.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct KernelNames {
    /// `skb_drop_reason` value → name.
    pub drop_reasons: BTreeMap<u32, String>,
    /// Where `drop_reasons` came from ("btf", "tracefs format", or "none").
    pub drop_reasons_source: String,
    /// Softirq vector number → name (`NET_RX`, …), from the softirq_entry format.
    pub softirq_vectors: BTreeMap<u32, String>,
    /// `sk_rst_reason` value → name (`NO_SOCKET`, …): BTF, else the tcp_send_reset format.
    #[serde(default)]
    pub reset_reasons: BTreeMap<u32, String>,
    /// The host's `ip_local_port_range` packed as the kernel programs get it
    /// ([`crate::kernel::probes::ephemeral_ports`]; 0: unknown, absent in older recordings):
    /// which ports are a client's, so a listener's clients fold into one row per listening
    /// port.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ephemeral_ports: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Parsed formats by program name (`Ok(None)`: the kernel lacks the tracepoint).
pub type FormatResults = std::collections::HashMap<&'static str, Result<Option<EventFormat>>>;

/// Drop-reason and softirq-vector names from the running kernel: BTF first, then the
/// tracepoint's own symbolic table.
pub fn kernel_names(
    btf: Option<&KernelBtf>,
    formats: &FormatResults,
    notes: &mut Vec<String>,
) -> KernelNames {
    let btf_reasons = match btf.map(KernelBtf::drop_reason_names) {
        Some(Ok(map)) => Some(map),
        Some(Err(e)) => {
            notes.push(format!("drop-reason names not in BTF ({e:#})"));
            None
        }
        None => None,
    };
    let mut names = names_from(btf_reasons, formats, notes);
    names.reset_reasons = reset_reason_names(
        btf.map(KernelBtf::rst_reason_names).and_then(Result::ok),
        formats,
    );
    names
}

/// `sk_rst_reason` names: BTF's enum when it has one, else the tcp_send_reset format's own
/// table (empty before 6.10, whose resets carry no reason).
pub fn reset_reason_names(
    btf_names: Option<BTreeMap<u32, String>>,
    formats: &FormatResults,
) -> BTreeMap<u32, String> {
    match btf_names {
        Some(map) if !map.is_empty() => map,
        _ => match formats.get(tracer_common::PROG_TCP_SEND_RESET) {
            Some(Ok(Some(f))) => f
                .symbolic_values("reason")
                .into_iter()
                .filter_map(|(v, n)| u32::try_from(v).ok().map(|v| (v, n)))
                .collect(),
            _ => std::collections::BTreeMap::new(),
        },
    }
}

/// Names from BTF's reason table when there is one, else from the tracepoints' own symbolic
/// tables. Pure, so kernels without BTF can be tested on recorded formats.
pub fn names_from(
    btf_reasons: Option<BTreeMap<u32, String>>,
    formats: &FormatResults,
    notes: &mut Vec<String>,
) -> KernelNames {
    let format_of = |program: &str| match formats.get(program) {
        Some(Ok(Some(f))) => Some(f),
        _ => None,
    };
    let mut names = KernelNames::default();
    match btf_reasons {
        Some(map) if !map.is_empty() => {
            names.drop_reasons = map;
            names.drop_reasons_source = "btf".to_owned();
        }
        _ => {
            let table: BTreeMap<u32, String> = format_of(tracer_common::PROG_KFREE_SKB)
                .map(|f| f.symbolic_values("reason"))
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(v, n)| u32::try_from(v).ok().map(|v| (v, n)))
                .collect();
            if table.is_empty() {
                names.drop_reasons_source = "none".to_owned();
                notes.push(
                    "no drop-reason names on this kernel: drops are shown by location".to_owned(),
                );
            } else {
                names.drop_reasons = table;
                names.drop_reasons_source = "tracefs format".to_owned();
            }
        }
    }
    names.softirq_vectors = format_of(tracer_common::PROG_SOFTIRQ_ENTRY)
        .map(|f| f.symbolic_values("vec"))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(v, n)| u32::try_from(v).ok().map(|v| (v, n)))
        .collect();
    if names.softirq_vectors.is_empty() {
        notes.push(
            "softirq vector names unknown on this kernel: softirq time not reported".to_owned(),
        );
    }
    names
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn formats(kfree: &str) -> FormatResults {
        let mut f = FormatResults::new();
        f.insert(
            tracer_common::PROG_KFREE_SKB,
            Ok(Some(EventFormat::parse(kfree).unwrap())),
        );
        f.insert(
            tracer_common::PROG_SOFTIRQ_ENTRY,
            Ok(Some(
                EventFormat::parse(include_str!(
                    "../../../tests/fixtures/formats/irq_softirq_entry.format"
                ))
                .unwrap(),
            )),
        );
        f
    }

    #[test]
    fn reason_names_fall_back_to_the_format_table_without_btf() {
        let f = formats(include_str!(
            "../../../tests/fixtures/formats/skb_kfree_skb.format"
        ));
        let mut notes = Vec::new();
        let names = names_from(None, &f, &mut notes);
        assert_eq!(names.drop_reasons_source, "tracefs format");
        assert_eq!(
            names.drop_reasons.get(&3).map(String::as_str),
            Some("NO_SOCKET")
        );
        assert_eq!(
            names.drop_reasons.get(&12).map(String::as_str),
            Some("NETFILTER_DROP")
        );
        assert_eq!(names.drop_reasons.len(), 127);
        assert_eq!(
            names.softirq_vectors.get(&3).map(String::as_str),
            Some("NET_RX")
        );
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn reset_reason_names_from_the_send_reset_format_without_btf() {
        let mut f = FormatResults::new();
        f.insert(
            tracer_common::PROG_TCP_SEND_RESET,
            Ok(Some(
                EventFormat::parse(include_str!(
                    "../../../tests/fixtures/formats/tcp_tcp_send_reset.format"
                ))
                .unwrap(),
            )),
        );
        let names = reset_reason_names(None, &f);
        assert_eq!(names.get(&1).map(String::as_str), Some("NO_SOCKET"));
        assert_eq!(
            names.get(&11).map(String::as_str),
            Some("TCP_ABORT_ON_CLOSE")
        );
        assert_eq!(names.len(), 26);
        assert!(reset_reason_names(None, &FormatResults::new()).is_empty());
    }

    #[test]
    fn btf_names_win_over_the_format_table() {
        let f = formats(include_str!(
            "../../../tests/fixtures/formats/skb_kfree_skb.format"
        ));
        let btf: BTreeMap<u32, String> = [
            (3, "NO_SOCKET".to_owned()),
            (0, "SKB_NOT_DROPPED_YET".to_owned()),
        ]
        .into_iter()
        .collect();
        let names = names_from(Some(btf), &f, &mut Vec::new());
        assert_eq!(names.drop_reasons_source, "btf");
        assert_eq!(names.drop_reasons.len(), 2);
    }

    #[test]
    fn a_5_10_kernel_has_no_reason_names_and_says_so() {
        let f = formats(include_str!(
            "../../../tests/fixtures/formats/skb_kfree_skb_5.10.format"
        ));
        let mut notes = Vec::new();
        let names = names_from(None, &f, &mut notes);
        assert_eq!(names.drop_reasons_source, "none");
        assert!(names.drop_reasons.is_empty());
        assert!(notes.iter().any(|n| n.contains("by location")), "{notes:?}");
    }
}
