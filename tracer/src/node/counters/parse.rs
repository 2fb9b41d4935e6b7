//! Pure parsers of counter files (/proc/net/{snmp,netstat,dev,softnet_stat,stat/nf_conntrack},
//! /proc/softirqs, /proc/interrupts, `ethtool -S` text). No file system access; never panic.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, OnceLock},
};

use crate::node::{
    counterset::{CounterSet, Layout},
    evidence::{IrqLine, SoftnetRow},
};

/// Counters by group then name (`snmp["Tcp"]["RetransSegs"]`).
pub type SnmpGroups = BTreeMap<String, BTreeMap<String, i64>>;

/// `/proc/net/dev` column names as the sysfs `statistics/` files name them, in column order.
pub const PROC_NET_DEV_COLUMNS: [&str; 16] = [
    "rx_bytes",
    "rx_packets",
    "rx_errors",
    "rx_dropped",
    "rx_fifo_errors",
    "rx_frame_errors",
    "rx_compressed",
    "multicast",
    "tx_bytes",
    "tx_packets",
    "tx_errors",
    "tx_dropped",
    "tx_fifo_errors",
    "collisions",
    "tx_carrier_errors",
    "tx_compressed",
];

/// Whether a token of `/proc/net/snmp` is a value (an integer of any size, maybe negative)
/// rather than a name.
fn is_integer(token: &str) -> bool {
    let digits = token.strip_prefix('-').unwrap_or(token);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn parse_hex(token: &str) -> Option<u64> {
    u64::from_str_radix(token, 16).ok()
}

/// `/proc/net/snmp` or `/proc/net/netstat`: pairs of lines `Group: Name1 Name2 …` then
/// `Group: 1 2 …`. Every group and name is kept; a value line without its header is ignored.
/// A value beyond `i64` (never printed by a kernel) is skipped, not saturated or wrapped; a
/// line mixing names and numbers is neither a header nor values, and is skipped.
pub fn parse_snmp(text: &str) -> SnmpGroups {
    let mut out = SnmpGroups::new();
    let mut header: Option<(&str, Vec<&str>)> = None;
    for line in text.lines() {
        let Some((group, rest)) = line.split_once(':') else {
            header = None;
            continue;
        };
        let group = group.trim();
        let tokens: Vec<&str> = rest.split_whitespace().collect();
        if group.is_empty() || tokens.is_empty() {
            header = None;
            continue;
        }
        // A header has names only, a value line numbers only; a line with both is neither
        // (a corrupted value line must not become a header that names counters after numbers).
        let numbers = tokens.iter().filter(|t| is_integer(t)).count();
        if numbers == 0 {
            header = Some((group, tokens));
            continue;
        }
        if numbers < tokens.len() {
            header = None;
            continue;
        }
        if let Some((header_group, names)) = header.take() {
            if header_group == group {
                for (name, token) in names.into_iter().zip(tokens) {
                    if let Ok(value) = token.parse::<i64>() {
                        out.entry(group.to_owned())
                            .or_default()
                            .insert(name.to_owned(), value);
                    }
                }
            }
        }
    }
    out
}

/// [`parse_snmp`]'s groups as [`CounterSet`]s, the same result, cheaper for the files a kernel
/// prints: each header line (`Tcp: RtoAlgorithm RtoMin …`) is the same byte for byte in every
/// namespace and sample, so its names are sorted and interned once ([`Layout`], kept by header
/// line for the process) and a reading only parses the numbers of the value lines. Any other
/// shape (a group twice, a line without its pair, a name repeated, a value that is not a plain
/// `i64`, a line mixing names and numbers) goes to [`parse_snmp`].
pub fn parse_snmp_sets(text: &str) -> BTreeMap<String, CounterSet<i64>> {
    parse_snmp_by_layout(text).unwrap_or_else(|| {
        parse_snmp(text)
            .into_iter()
            .map(|(group, values)| (group, values.into()))
            .collect()
    })
}

/// Header lines seen, by their text; at most [`LAYOUTS_CAP`] (a kernel prints a dozen).
fn layouts() -> &'static Mutex<HashMap<String, Arc<Layout>>> {
    static LAYOUTS: OnceLock<Mutex<HashMap<String, Arc<Layout>>>> = OnceLock::new();
    LAYOUTS.get_or_init(Default::default)
}

const LAYOUTS_CAP: usize = 256;

/// The layout of `header` (`Group: Name1 Name2 …`): remembered, or built when every token is a
/// name and none repeats.
fn layout_of(header: &str, names: &str) -> Option<Arc<Layout>> {
    let mut known = layouts().lock().ok()?;
    if let Some(layout) = known.get(header) {
        return Some(Arc::clone(layout));
    }
    let tokens: Vec<&str> = names.split_whitespace().collect();
    if tokens.is_empty() || tokens.iter().any(|t| is_integer(t)) {
        return None;
    }
    let layout = Arc::new(Layout::new(&tokens)?);
    if known.len() < LAYOUTS_CAP {
        known.insert(header.to_owned(), Arc::clone(&layout));
    }
    Some(layout)
}

/// [`parse_snmp_sets`]'s fast path; None on any shape it does not take.
fn parse_snmp_by_layout(text: &str) -> Option<BTreeMap<String, CounterSet<i64>>> {
    let mut out = BTreeMap::new();
    let mut values: Vec<i64> = Vec::with_capacity(128);
    let mut lines = text.lines();
    while let Some(header) = lines.next() {
        let (group, names) = header.split_once(':')?;
        let (value_group, numbers) = lines.next()?.split_once(':')?;
        if group.is_empty() || group != value_group || group.trim() != group {
            return None;
        }
        let layout = layout_of(header, names)?;
        values.clear();
        for token in numbers.split_whitespace() {
            // `parse` takes a leading `+`, which `is_integer` (the general parser) does not.
            if token.starts_with('+') {
                return None;
            }
            values.push(token.parse().ok()?);
        }
        if values.len() != layout.len() || out.contains_key(group) {
            return None;
        }
        out.insert(group.to_owned(), layout.set(&values));
    }
    Some(out)
}

/// `/proc/net/softnet_stat`: one row of hex columns per online CPU, read by column count
/// (12th column backlog length and 13th CPU id only where present; else the row index).
pub fn parse_softnet(text: &str) -> Vec<SoftnetRow> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let cols: Option<Vec<u64>> = line.split_whitespace().map(parse_hex).collect();
        let Some(cols) = cols else { continue };
        if cols.len() < 3 {
            continue;
        }
        let col = |n: usize| cols.get(n - 1).copied();
        let cpu = col(13)
            .and_then(|c| u32::try_from(c).ok())
            .or_else(|| u32::try_from(index).ok())
            .unwrap_or(u32::MAX);
        rows.push(SoftnetRow {
            cpu,
            processed: col(1).unwrap_or(0),
            dropped: col(2).unwrap_or(0),
            time_squeeze: col(3).unwrap_or(0),
            received_rps: col(10).unwrap_or(0),
            flow_limit_count: col(11).unwrap_or(0),
            backlog_len: col(12),
        });
    }
    rows
}

/// Leading decimal numbers of `text` (at most `limit`), and the rest of it.
fn leading_numbers(text: &str, limit: usize) -> (Vec<u64>, &str) {
    let mut numbers = Vec::new();
    let mut rest = text;
    while numbers.len() < limit {
        let trimmed = rest.trim_start();
        let (token, after) = trimmed
            .split_once(char::is_whitespace)
            .unwrap_or((trimmed, ""));
        match token.parse::<u64>() {
            Ok(value) if !token.is_empty() => {
                numbers.push(value);
                rest = after;
            }
            _ => break,
        }
    }
    (numbers, rest)
}

/// `/proc/softirqs`: header `CPU0 CPU1 …`, rows `NET_RX: 1 2 …` → vector name → per-CPU counts.
pub fn parse_softirqs(text: &str) -> BTreeMap<String, Vec<u64>> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let (counts, _) = leading_numbers(rest, usize::MAX);
        out.insert(name.to_owned(), counts);
    }
    out
}

/// `/proc/interrupts`: header of CPU names, rows `24:  10  20  PCI-MSI 1234-edge  eth0-Tx-Rx-0`.
/// Rows with fewer counts than CPUs (`ERR:  0`) keep what they have; rows without any are skipped.
pub fn parse_interrupts(text: &str) -> Vec<IrqLine> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
    let cpus = match lines.peek() {
        Some(first) if !first.contains(':') => {
            let n = first.split_whitespace().count();
            lines.next();
            n
        }
        _ => usize::MAX,
    };
    let mut out = Vec::new();
    for line in lines {
        let Some((irq, rest)) = line.split_once(':') else {
            continue;
        };
        let irq = irq.trim();
        let (per_cpu, name) = leading_numbers(rest, cpus);
        if irq.is_empty() || per_cpu.is_empty() {
            continue;
        }
        out.push(IrqLine {
            irq: irq.to_owned(),
            name: name.trim().to_owned(),
            per_cpu,
        });
    }
    out
}

/// `/proc/net/dev`: interface → its 16 columns under their sysfs names ([`PROC_NET_DEV_COLUMNS`]).
/// Rows with fewer than 16 numbers are not interfaces and are skipped.
pub fn parse_proc_net_dev(text: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains('|') {
            continue;
        }
        let values: Option<Vec<u64>> = rest.split_whitespace().map(|t| t.parse().ok()).collect();
        let Some(values) = values else { continue };
        if values.len() < PROC_NET_DEV_COLUMNS.len() {
            continue;
        }
        let stats: BTreeMap<String, u64> = PROC_NET_DEV_COLUMNS
            .iter()
            .zip(values)
            .map(|(column, value)| ((*column).to_owned(), value))
            .collect();
        out.insert(name.to_owned(), stats);
    }
    out
}

/// `/proc/net/stat/nf_conntrack`: a header of column names, then one hex row per CPU; each
/// column summed over the rows. `entries` is the namespace's total repeated on every row, so it is
/// taken once (the largest), not summed.
pub fn parse_nf_conntrack_stat(text: &str) -> BTreeMap<String, u64> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return BTreeMap::new();
    };
    let names: Vec<&str> = header.split_whitespace().collect();
    if names.iter().all(|n| parse_hex(n).is_some()) {
        return BTreeMap::new();
    }
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for line in lines {
        let values: Option<Vec<u64>> = line.split_whitespace().map(parse_hex).collect();
        let Some(values) = values else { continue };
        for (name, value) in names.iter().zip(values) {
            let total = out.entry((*name).to_owned()).or_insert(0);
            *total = if *name == "entries" {
                (*total).max(value)
            } else {
                total.saturating_add(value)
            };
        }
    }
    out
}

/// The text `ethtool -S IF` prints: `NIC statistics:` then lines `     name: value`.
pub fn parse_ethtool_s_text(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        if let Ok(value) = value.trim().parse::<u64>() {
            out.insert(name.to_owned(), value);
        }
    }
    out
}

/// One value of a sysfs or procfs file holding a single number (`1200\n`).
pub fn parse_single_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn fixture(rel: &str) -> String {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/proc")
            .join(rel);
        std::fs::read_to_string(&path).unwrap()
    }

    #[test]
    fn snmp_fixture_keeps_every_group_and_name() {
        let groups = parse_snmp(&fixture("net/snmp"));
        let keys: Vec<&str> = groups.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["Icmp", "IcmpMsg", "Ip", "Tcp", "Udp", "UdpLite"],
            "every group of the file"
        );
        let tcp = &groups["Tcp"];
        assert_eq!(tcp["RtoAlgorithm"], 1);
        assert_eq!(tcp["RtoMin"], 200);
        assert_eq!(tcp["MaxConn"], -1);
        assert_eq!(tcp.len(), 15);
        assert_eq!(groups["Udp"]["NoPorts"], 100);
        assert_eq!(groups["Ip"]["InReceives"], 7117);
        assert_eq!(groups["IcmpMsg"]["OutType3"], 100);
    }

    #[test]
    fn netstat_fixture_has_tcpext_and_ipext() {
        let groups = parse_snmp(&fixture("net/netstat"));
        assert!(groups.contains_key("MPTcpExt"));
        let tcp_ext = &groups["TcpExt"];
        assert_eq!(tcp_ext["TW"], 12);
        assert_eq!(tcp_ext["ListenOverflows"], 0);
        assert!(tcp_ext.contains_key("TCPZeroWindowDrop"));
        assert!(tcp_ext.contains_key("TCPAODroppedIcmps"));
        assert_eq!(groups["IpExt"]["InOctets"], 202_740_664);
        assert_eq!(groups["IpExt"]["InNoECTPkts"], 7117);
    }

    #[test]
    fn snmp_ignores_orphans_mismatches_and_garbage() {
        let text =
            "Tcp: 1 2 3\nUdp: A B\nTcp: 5 6\nIp: X Y\nIp: 7 8 9\n:::\nIcmp:\nIcmp: 1\n\u{0}\u{ff}";
        let groups = parse_snmp(text);
        assert!(!groups.contains_key("Tcp"));
        assert!(!groups.contains_key("Udp"));
        assert_eq!(
            groups["Ip"],
            BTreeMap::from([("X".into(), 7), ("Y".into(), 8)])
        );
        assert_eq!(groups.len(), 1);
        // Beyond i64: skipped, the others kept.
        assert_eq!(
            parse_snmp("Big: A B\nBig: 18446744073709551615 3\n")["Big"],
            BTreeMap::from([("B".into(), 3)])
        );
    }

    /// The general parser's result as sets: what [`parse_snmp_sets`] must equal.
    fn general(text: &str) -> BTreeMap<String, CounterSet<i64>> {
        parse_snmp(text)
            .into_iter()
            .map(|(group, values)| (group, values.into()))
            .collect()
    }

    #[test]
    fn snmp_sets_equal_the_general_parser() {
        let snmp = fixture("net/snmp");
        let netstat = fixture("net/netstat");
        // The kernel's shapes take the fast path (twice: the second reuses the layouts).
        for text in [&snmp, &netstat, &snmp] {
            let fast = parse_snmp_by_layout(text).expect("the kernel's shape");
            assert_eq!(fast, general(text));
            assert!(fast.len() >= 2, "{:?}", fast.keys());
        }
        // Counters moved: same layout, new values.
        let moved = snmp.replace("Udp: 63 ", "Udp: 64 ");
        assert_ne!(moved, snmp, "the fixture has the line changed here");
        let fast = parse_snmp_sets(&moved);
        assert_eq!(fast, general(&moved));
        assert_eq!(fast["Udp"]["InDatagrams"], 64);
        let odd = [
            "",
            "Tcp: 1 2 3\nUdp: A B\nTcp: 5 6\nIp: X Y\nIp: 7 8 9\n:::\nIcmp:\nIcmp: 1\n\u{0}\u{ff}",
            "Big: A B\nBig: 18446744073709551615 3\n",
            "Dup: A A\nDup: 1 2\n",
            "Two: A B\nTwo: 1 2\nTwo: C\nTwo: 3\n",
            "Plus: A B\nPlus: +1 2\n",
            "Neg: A B\nNeg: -1 -9223372036854775808\n",
            "Short: A B C\nShort: 1 2\n",
            "Long: A B\nLong: 1 2 3\n",
            "Mixed: A 1\nMixed: 1 2\n",
            " Sp: A B\n Sp: 1 2\n",
            "Sp : A B\nSp : 1 2\n",
            "Other: A B\nElse: 1 2\n",
            "Lone: A B\n",
            "One: A\nOne: 7",
            "Blank: A B\n\nBlank: 1 2\n",
            "Ok: A B\nOk: 1 2\nnoise\n",
        ];
        for text in odd {
            assert_eq!(parse_snmp_sets(text), general(text), "{text:?}");
        }
        // A well-formed odd input takes the fast path, and negatives survive it.
        let neg = parse_snmp_by_layout("Neg: A B\nNeg: -1 -9223372036854775808\n").unwrap();
        assert_eq!(neg["Neg"]["B"], i64::MIN);
        assert!(parse_snmp_by_layout("Dup: A A\nDup: 1 2\n").is_none());
    }

    #[test]
    fn softnet_fixture_by_column_count() {
        let rows = parse_softnet(&fixture("net/softnet_stat"));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].cpu, 0);
        assert_eq!(rows[0].processed, 0x54eb);
        assert_eq!(rows[1].cpu, 1);
        assert_eq!(rows[1].processed, 0x001c_b9c9);
        assert_eq!(rows[0].backlog_len, Some(0));
        assert_eq!(rows[1].dropped, 0);
    }

    #[test]
    fn softnet_short_rows_use_the_row_index() {
        // A pre-5.10 kernel: 11 columns, no backlog length or CPU id.
        let text = "0000000a 00000001 00000002 0 0 0 0 0 0 00000003 00000004\n\
                    000000ff 00000000 00000000 0 0 0 0 0 0 00000000 00000000\n";
        let rows = parse_softnet(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            SoftnetRow {
                cpu: 0,
                processed: 10,
                dropped: 1,
                time_squeeze: 2,
                received_rps: 3,
                flow_limit_count: 4,
                backlog_len: None,
            }
        );
        assert_eq!(rows[1].cpu, 1);
        assert_eq!(rows[1].processed, 255);
        // 13 columns: the CPU id comes from the row (rows skip offline CPUs).
        let text = "1 2 3 0 0 0 0 0 0 4 5 6 00000007\n";
        let rows = parse_softnet(text);
        assert_eq!(rows[0].cpu, 7);
        assert_eq!(rows[0].backlog_len, Some(6));
        assert!(parse_softnet("zz yy\n1 2\n\n").is_empty());
    }

    #[test]
    fn softirqs_fixture_per_cpu() {
        let map = parse_softirqs(&fixture("softirqs"));
        assert_eq!(map.len(), 10);
        assert_eq!(map["NET_RX"], vec![17131, 1_873_864]);
        assert_eq!(map["NET_TX"], vec![52, 49]);
        assert_eq!(map["HI"], vec![0, 0]);
    }

    #[test]
    fn interrupts_fixture_rows_and_names() {
        let lines = parse_interrupts(&fixture("interrupts"));
        let first = &lines[0];
        assert_eq!(first.irq, "24");
        assert_eq!(first.per_cpu, vec![1, 0]);
        assert_eq!(first.name, "IO-APIC   5-edge      ACPI:Ged");
        let rx = lines.iter().find(|l| l.irq == "38").unwrap();
        assert_eq!(rx.per_cpu, vec![0, 4376]);
        assert_eq!(
            rx.name,
            "PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0"
        );
        let err = lines.iter().find(|l| l.irq == "ERR").unwrap();
        assert_eq!(err.per_cpu, vec![0]);
        assert_eq!(err.name, "");
        let loc = lines.iter().find(|l| l.irq == "LOC").unwrap();
        assert_eq!(loc.per_cpu, vec![165_947, 175_415]);
        assert_eq!(loc.name, "Local timer interrupts");
        assert_eq!(lines.len(), 35);
    }

    #[test]
    fn interrupts_example_from_the_brief() {
        let text =
            "           CPU0       CPU1\n  24:  10  20  PCI-MSI 1234-edge  eth0-Tx-Rx-0\n MIS: 0\n";
        let lines = parse_interrupts(text);
        assert_eq!(
            lines[0],
            IrqLine {
                irq: "24".into(),
                name: "PCI-MSI 1234-edge  eth0-Tx-Rx-0".into(),
                per_cpu: vec![10, 20],
            }
        );
        assert_eq!(lines[1].per_cpu, vec![0]);
        // A device name that starts with digits is not taken for a count once every CPU has one.
        let lines = parse_interrupts("CPU0\n 5: 1 2-edge x\n");
        assert_eq!(lines[0].per_cpu, vec![1]);
        assert_eq!(lines[0].name, "2-edge x");
    }

    #[test]
    fn proc_net_dev_fixture_maps_sysfs_names() {
        let devs = parse_proc_net_dev(&fixture("net/dev"));
        let names: Vec<&str> = devs.keys().map(String::as_str).collect();
        assert_eq!(names, ["eth0", "ifb0", "ifb1", "lo"]);
        let eth0 = &devs["eth0"];
        assert_eq!(eth0.len(), 16);
        assert_eq!(eth0["rx_bytes"], 202_825_589);
        assert_eq!(eth0["rx_packets"], 6893);
        assert_eq!(eth0["tx_bytes"], 365_254);
        assert_eq!(eth0["tx_packets"], 4008);
        assert_eq!(eth0["tx_compressed"], 0);
        assert_eq!(devs["lo"]["rx_packets"], 230);
    }

    #[test]
    fn proc_net_dev_without_space_after_the_colon() {
        let text = "Inter-|\n face |\neth0:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\nbad: x y\n";
        let devs = parse_proc_net_dev(text);
        assert_eq!(devs.len(), 1);
        assert_eq!(devs["eth0"]["rx_bytes"], 1);
        assert_eq!(devs["eth0"]["collisions"], 14);
        assert_eq!(devs["eth0"]["tx_carrier_errors"], 15);
        assert_eq!(devs["eth0"]["tx_compressed"], 16);
    }

    #[test]
    fn nf_conntrack_stat_fixture_and_sums() {
        let stats = parse_nf_conntrack_stat(&fixture("net/stat/nf_conntrack"));
        assert_eq!(stats.len(), 17);
        assert!(stats.values().all(|v| *v == 0));
        let text = "entries  clashres found drop insert_failed\n\
                    000004b0  00000001 00000010 00000005 00000002\n\
                    000004b0  00000000 00000020 00000007 00000001\n";
        let stats = parse_nf_conntrack_stat(text);
        assert_eq!(stats["entries"], 0x4b0);
        assert_eq!(stats["found"], 0x30);
        assert_eq!(stats["drop"], 12);
        assert_eq!(stats["insert_failed"], 3);
        assert!(parse_nf_conntrack_stat("").is_empty());
        assert!(parse_nf_conntrack_stat("00000001 00000002\n").is_empty());
    }

    #[test]
    fn ethtool_s_text() {
        let text = "NIC statistics:\n     tx_timeout: 0\n     pps_allowance_exceeded: 4521\n     weird: x\n: 5\n";
        let stats = parse_ethtool_s_text(text);
        assert_eq!(
            stats,
            BTreeMap::from([
                ("tx_timeout".into(), 0),
                ("pps_allowance_exceeded".into(), 4521)
            ])
        );
    }

    #[test]
    fn parsers_survive_malformed_input() {
        let inputs = [
            "",
            "\n\n\n",
            ":",
            "::::",
            "CPU0 CPU1",
            "a: b: c:\n: : :\n",
            "\u{0}\u{1}\u{ff}\u{feff}é:ü 1 2",
            "Tcp: 1\nTcp: RtoMin\nTcp: 18446744073709551616 -",
            "ffffffffffffffffffffff 1 2 3",
            "   24:   \n  \t  :\t",
            "NET_RX: 99999999999999999999999 1",
        ];
        for input in inputs {
            let _ = parse_snmp(input);
            let _ = parse_softnet(input);
            let _ = parse_softirqs(input);
            let _ = parse_interrupts(input);
            let _ = parse_proc_net_dev(input);
            let _ = parse_nf_conntrack_stat(input);
            let _ = parse_ethtool_s_text(input);
            let _ = parse_single_u64(input);
        }
    }
}

/// Property tests: generated tables read back exactly; any text and the recorded files mangled
/// never panic, and every counter read is one the text has, with the value its line prints
/// (numbers out of range are skipped, never saturated or wrapped).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod prop_tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testkit::mutations::{config, mutated};

    const SNMP: &[&str] = &[
        include_str!("../../../../tests/fixtures/proc/net/snmp"),
        include_str!("../../../../tests/fixtures/proc/net/netstat"),
        include_str!("../../../../tests/fixtures/nodes/ena-errors/proc/net/snmp"),
    ];
    const DEV: &[&str] = &[
        include_str!("../../../../tests/fixtures/proc/net/dev"),
        include_str!("../../../../tests/fixtures/nodes/ena-errors/proc/net/dev"),
    ];
    const SOFTNET: &[&str] = &[
        include_str!("../../../../tests/fixtures/proc/net/softnet_stat"),
        include_str!("../../../../tests/fixtures/nodes/ena-errors/proc/net/softnet_stat"),
    ];
    const SOFTIRQS: &[&str] = &[include_str!("../../../../tests/fixtures/proc/softirqs")];
    const INTERRUPTS: &[&str] = &[
        include_str!("../../../../tests/fixtures/proc/interrupts"),
        include_str!("../../../../tests/fixtures/nodes/ena-errors/proc/interrupts"),
    ];
    const CONNTRACK: &[&str] = &[
        include_str!("../../../../tests/fixtures/proc/net/stat/nf_conntrack"),
        include_str!("../../../../tests/fixtures/nodes/ena-errors/proc/net/stat/nf_conntrack"),
    ];
    const ETHTOOL: &[&str] = &[include_str!(
        "../../../../tests/fixtures/nodes/ena-errors/sys/class/net/eth0/ethtool_stats"
    )];

    /// `snmp[g][n] = v` only where a `g:` line has `n` in some column and the very next line,
    /// also `g:`, has `v` in that column.
    fn snmp_from_text(text: &str, out: &SnmpGroups) -> Result<(), TestCaseError> {
        let lines: Vec<&str> = text.lines().collect();
        for (group, counters) in out {
            for (name, value) in counters {
                let found = lines.windows(2).any(|pair| {
                    let (Some((g1, names)), Some((g2, values))) =
                        (pair[0].split_once(':'), pair[1].split_once(':'))
                    else {
                        return false;
                    };
                    if g1.trim() != group || g2.trim() != group {
                        return false;
                    }
                    let names: Vec<&str> = names.split_whitespace().collect();
                    let values: Vec<&str> = values.split_whitespace().collect();
                    names
                        .iter()
                        .zip(&values)
                        .any(|(n, v)| n == name && v.parse::<i64>() == Ok(*value))
                });
                prop_assert!(found, "{group}:{name} = {value} is not in the text");
                prop_assert!(!is_integer(name), "a number read as a name: {group}:{name}");
            }
        }
        Ok(())
    }

    /// Each interface's value is the number in its column of a line naming it.
    fn dev_from_text(
        text: &str,
        out: &BTreeMap<String, BTreeMap<String, u64>>,
    ) -> Result<(), TestCaseError> {
        for (iface, stats) in out {
            prop_assert_eq!(stats.len(), PROC_NET_DEV_COLUMNS.len());
            let found = text.lines().any(|l| {
                let Some((name, rest)) = l.split_once(':') else {
                    return false;
                };
                let tokens: Vec<&str> = rest.split_whitespace().collect();
                name.trim() == iface
                    && PROC_NET_DEV_COLUMNS.iter().enumerate().all(|(i, col)| {
                        tokens.get(i).and_then(|t| t.parse::<u64>().ok())
                            == stats.get(*col).copied()
                    })
            });
            prop_assert!(found, "{iface} {stats:?} is not a line of the text");
        }
        Ok(())
    }

    /// Invariants of every parser on any text.
    fn all_parsers(text: &str) -> Result<(), TestCaseError> {
        snmp_from_text(text, &parse_snmp(text))?;
        // The layout fast path gives what the general parser gives, on any text.
        let general: BTreeMap<String, CounterSet<i64>> = parse_snmp(text)
            .into_iter()
            .map(|(group, values)| (group, values.into()))
            .collect();
        prop_assert_eq!(parse_snmp_sets(text), general);
        dev_from_text(text, &parse_proc_net_dev(text))?;
        let rows = parse_softnet(text);
        prop_assert!(rows.len() <= text.lines().count());
        for row in &rows {
            prop_assert!(
                text.lines().any(|l| l.split_whitespace().next().and_then(parse_hex) == Some(row.processed)),
                "{row:?}"
            );
        }
        for (name, counts) in parse_softirqs(text) {
            prop_assert!(
                text.lines()
                    .any(|l| l.split_once(':').is_some_and(|(n, rest)| {
                        n.trim() == name && leading_numbers(rest, usize::MAX).0 == counts
                    })),
                "{name} {counts:?}"
            );
        }
        let first = text.lines().find(|l| !l.trim().is_empty());
        let cpus = first
            .filter(|l| !l.contains(':'))
            .map(|l| l.split_whitespace().count());
        for line in parse_interrupts(text) {
            prop_assert!(!line.per_cpu.is_empty());
            if let Some(cpus) = cpus {
                prop_assert!(line.per_cpu.len() <= cpus, "{line:?} with {cpus} CPUs");
            }
            prop_assert!(text.lines().any(|l| l
                .split_once(':')
                .is_some_and(|(irq, _)| irq.trim() == line.irq)));
        }
        let conntrack = parse_nf_conntrack_stat(text);
        if let Some(header) = text.lines().find(|l| !l.trim().is_empty()) {
            let names: Vec<&str> = header.split_whitespace().collect();
            prop_assert!(
                conntrack.keys().all(|k| names.contains(&k.as_str())),
                "{conntrack:?}"
            );
        } else {
            prop_assert!(conntrack.is_empty());
        }
        for (name, value) in parse_ethtool_s_text(text) {
            prop_assert!(
                text.lines()
                    .any(|l| l.rsplit_once(':').is_some_and(|(n, v)| {
                        n.trim() == name && v.trim().parse::<u64>() == Ok(value)
                    })),
                "{name} {value}"
            );
        }
        if let Some(v) = parse_single_u64(text) {
            prop_assert_eq!(text.trim().parse::<u64>(), Ok(v));
        }
        Ok(())
    }

    fn name() -> impl Strategy<Value = String> {
        "[A-Z][A-Za-z0-9]{0,12}"
    }

    proptest! {
        #![proptest_config(config(128))]

        #[test]
        fn any_text_reads_only_what_it_has(text in "\\PC{0,300}") {
            all_parsers(&text)?;
        }

        /// Counter-file-like lines: names, colons, numbers of every size and sign.
        #[test]
        fn counter_like_lines_read_only_what_they_have(lines in proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![
                    "[A-Za-z]{1,4}:?",
                    "-?[0-9]{1,22}",
                    "[0-9a-f]{8}",
                    Just(":".to_owned()),
                    Just("|".to_owned()),
                ],
                0..20,
            ).prop_map(|t| t.join(" ")),
            0..10,
        )) {
            all_parsers(&lines.join("\n"))?;
        }

        #[test]
        fn mangled_recordings_read_only_what_they_have(
            (_, snmp) in mutated(SNMP),
            (_, dev) in mutated(DEV),
            (_, softnet) in mutated(SOFTNET),
            (_, softirqs) in mutated(SOFTIRQS),
            (_, interrupts) in mutated(INTERRUPTS),
            (_, conntrack) in mutated(CONNTRACK),
            (_, ethtool) in mutated(ETHTOOL),
        ) {
            for text in [snmp, dev, softnet, softirqs, interrupts, conntrack, ethtool] {
                all_parsers(&text)?;
            }
        }

        #[test]
        fn snmp_tables_round_trip(groups in proptest::collection::btree_map(
            name(),
            proptest::collection::btree_map(name(), any::<i64>(), 1..12),
            0..6,
        )) {
            let mut text = String::new();
            for (g, counters) in &groups {
                let names: Vec<&str> = counters.keys().map(String::as_str).collect();
                let values: Vec<String> = counters.values().map(i64::to_string).collect();
                text.push_str(&format!("{g}: {}\n{g}: {}\n", names.join(" "), values.join(" ")));
            }
            prop_assert_eq!(parse_snmp(&text), groups.clone());
            let sets: BTreeMap<String, CounterSet<i64>> =
                groups.into_iter().map(|(g, v)| (g, v.into())).collect();
            prop_assert_eq!(parse_snmp_by_layout(&text), Some(sets));
        }

        #[test]
        fn proc_net_dev_round_trips(ifaces in proptest::collection::btree_map(
            "[a-z0-9@._-]{1,15}",
            proptest::collection::vec(any::<u64>(), 16),
            0..6,
        )) {
            let mut text = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n".to_owned();
            for (name, values) in &ifaces {
                let cols: Vec<String> = values.iter().map(|v| format!("{v:>8}")).collect();
                text.push_str(&format!("{name:>6}:{}\n", cols.join(" ")));
            }
            let parsed = parse_proc_net_dev(&text);
            prop_assert_eq!(parsed.len(), ifaces.len());
            for (name, values) in &ifaces {
                let got: Vec<u64> = PROC_NET_DEV_COLUMNS.iter().map(|c| parsed[name][*c]).collect();
                prop_assert_eq!(&got, values);
            }
        }

        /// A column past `u64` drops its interface, never wraps into a small number.
        #[test]
        fn proc_net_dev_numbers_past_u64_drop_the_row(column in 0usize..16, name in "[a-z]{1,8}") {
            let mut cols = vec!["5".to_owned(); 16];
            cols[column] = "18446744073709551616".to_owned();
            let text = format!("{name}: {}\nok0: {}\n", cols.join(" "), ["7"; 16].join(" "));
            let parsed = parse_proc_net_dev(&text);
            prop_assert!(!parsed.contains_key(&name) || name == "ok0");
            prop_assert_eq!(parsed["ok0"]["rx_bytes"], 7);
        }

        #[test]
        fn softnet_rows_round_trip(rows in proptest::collection::vec(proptest::collection::vec(any::<u32>(), 3..14), 0..6)) {
            let text: String = rows.iter().map(|r| {
                r.iter().map(|v| format!("{v:08x}")).collect::<Vec<_>>().join(" ") + "\n"
            }).collect();
            let parsed = parse_softnet(&text);
            prop_assert_eq!(parsed.len(), rows.len());
            for (i, (row, got)) in rows.iter().zip(&parsed).enumerate() {
                prop_assert_eq!(got.processed, u64::from(row[0]));
                prop_assert_eq!(got.dropped, u64::from(row[1]));
                prop_assert_eq!(got.time_squeeze, u64::from(row[2]));
                prop_assert_eq!(got.backlog_len, row.get(11).map(|v| u64::from(*v)));
                let cpu = row.get(12).copied().unwrap_or(i as u32);
                prop_assert_eq!(got.cpu, cpu);
            }
        }

        /// Per-CPU rows: sums saturate, `entries` is the largest, names come from the header.
        #[test]
        fn conntrack_stat_sums_saturate(rows in proptest::collection::vec((any::<u64>(), any::<u64>()), 1..5)) {
            let mut text = "entries drop\n".to_owned();
            for (e, d) in &rows {
                text.push_str(&format!("{e:016x} {d:016x}\n"));
            }
            let got = parse_nf_conntrack_stat(&text);
            let entries = rows.iter().map(|r| r.0).max().unwrap();
            let drop = rows.iter().fold(0u64, |a, r| a.saturating_add(r.1));
            prop_assert_eq!(got.get("entries"), Some(&entries));
            prop_assert_eq!(got.get("drop"), Some(&drop));
        }

        #[test]
        fn ethtool_text_round_trips(stats in proptest::collection::btree_map("[a-z][a-z0-9_]{0,20}", any::<u64>(), 0..20)) {
            let mut text = "NIC statistics:\n".to_owned();
            for (n, v) in &stats {
                text.push_str(&format!("     {n}: {v}\n"));
            }
            prop_assert_eq!(parse_ethtool_s_text(&text), stats);
        }
    }

    /// The regression the properties found: a value past `u64` turned its line into a header,
    /// so the next value line invented counters named after numbers.
    #[test]
    fn a_value_past_u64_does_not_turn_its_line_into_a_header() {
        let text = "Tcp: A B\nTcp: 18446744073709551616 5\nTcp: 1 2\n";
        let groups = parse_snmp(text);
        assert_eq!(groups["Tcp"], BTreeMap::from([("B".to_owned(), 5)]));
        assert!(!groups["Tcp"].contains_key("18446744073709551616"));
        // A value line with a non-number in it is not a header for the next line.
        let groups = parse_snmp("Ip: A B C\nIp: 0x 64 7\nIp: 2 64 7\n");
        assert!(!groups.contains_key("Ip"), "{groups:?}");
        // A negative gauge still reads; past i64 either way is skipped.
        let groups = parse_snmp("Tcp: MaxConn X\nTcp: -1 -9223372036854775809\n");
        assert_eq!(groups["Tcp"], BTreeMap::from([("MaxConn".to_owned(), -1)]));
    }
}
