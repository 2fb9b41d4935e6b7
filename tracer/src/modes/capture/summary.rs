//! The closing summary of a capture, in the style of the runbook's tcpdump_analyze: packets by
//! drop reason and location, retransmitted segments by TCP state, the top 5-tuples, packets
//! per second, and what the limits (rate, ring or perf buffer, --max-packets, file size)
//! dropped. Pure: packets and counts are handed in.

use std::{collections::BTreeMap, fmt::Write as _, net::IpAddr};

use serde::Serialize;

use crate::kernel::capture::CaptureCounters;

/// Protocol, addresses and ports of a captured packet (ports 0 for other protocols).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FiveTuple {
    pub protocol: u8,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
}

impl std::fmt::Display for FiveTuple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = match self.protocol {
            6 => "tcp".to_owned(),
            17 => "udp".to_owned(),
            1 => "icmp".to_owned(),
            58 => "icmp6".to_owned(),
            n => format!("proto {n}"),
        };
        let addr = |a: IpAddr, p: u16| match a {
            IpAddr::V4(a) => format!("{a}:{p}"),
            IpAddr::V6(a) => format!("[{a}]:{p}"),
        };
        write!(
            f,
            "{proto} {} > {}",
            addr(self.src, self.sport),
            addr(self.dst, self.dport)
        )
    }
}

/// The 5-tuple of a packet that starts at its IP header (None: not IPv4/IPv6, or cut short).
pub fn five_tuple(data: &[u8]) -> Option<FiveTuple> {
    let version = data.first()? >> 4;
    let (protocol, src, dst, l4) = match version {
        4 => {
            let ihl = usize::from(data[0] & 0x0f) * 4;
            let a: [u8; 4] = data.get(12..16)?.try_into().ok()?;
            let b: [u8; 4] = data.get(16..20)?.try_into().ok()?;
            (*data.get(9)?, IpAddr::from(a), IpAddr::from(b), ihl)
        }
        6 => {
            let a: [u8; 16] = data.get(8..24)?.try_into().ok()?;
            let b: [u8; 16] = data.get(24..40)?.try_into().ok()?;
            (*data.get(6)?, IpAddr::from(a), IpAddr::from(b), 40)
        }
        _ => return None,
    };
    let (sport, dport) = match (protocol, data.get(l4..l4 + 4)) {
        (6 | 17 | 132, Some(p)) => (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ),
        _ => (0, 0),
    };
    Some(FiveTuple {
        protocol,
        src,
        sport,
        dst,
        dport,
    })
}

/// Everything the summary counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub packets: u64,
    pub by_reason_location: BTreeMap<(String, String), u64>,
    pub by_tuple: BTreeMap<String, u64>,
    /// Packets in each second since the capture began.
    pub per_second: BTreeMap<u64, u64>,
    /// Packets the capture saw but did not write: over --max-packets, or past the file size.
    pub over_max_packets: u64,
    pub over_file_size: u64,
    pub kernel: CaptureCounters,
    /// Retransmitted segments written (also in `packets`), by TCP state.
    pub retransmits: u64,
    pub retransmits_by_state: BTreeMap<String, u64>,
    /// The buffer that carried the events ("ring buffer" or "perf buffer").
    pub buffer: String,
    /// `--retransmits` was given (the retransmit line is printed even with none).
    pub retransmits_armed: bool,
    /// Each capture program's hook and why (`capture_kfree_skb on tp_btf (…)`).
    pub hooks: Vec<String>,
}

impl Summary {
    /// Counts one written packet.
    pub fn add(&mut self, reason: &str, location: &str, data: &[u8], second: u64) {
        self.packets += 1;
        *self
            .by_reason_location
            .entry((reason.to_owned(), location.to_owned()))
            .or_insert(0) += 1;
        let tuple = five_tuple(data).map_or_else(|| "not IP".to_owned(), |t| t.to_string());
        *self.by_tuple.entry(tuple).or_insert(0) += 1;
        *self.per_second.entry(second).or_insert(0) += 1;
    }

    /// Counts one written retransmitted segment (its 5-tuple and second with the drops').
    pub fn add_retransmit(&mut self, state: &str, data: &[u8], second: u64) {
        self.packets += 1;
        self.retransmits += 1;
        *self
            .retransmits_by_state
            .entry(state.to_owned())
            .or_insert(0) += 1;
        let tuple = five_tuple(data).map_or_else(|| "not IP".to_owned(), |t| t.to_string());
        *self.by_tuple.entry(tuple).or_insert(0) += 1;
        *self.per_second.entry(second).or_insert(0) += 1;
    }

    /// Packets the limits kept out of the file, in all.
    pub fn lost(&self) -> u64 {
        self.kernel.rate_limited
            + self.kernel.ring_full
            + self.kernel.perf_lost
            + self.over_max_packets
            + self.over_file_size
    }

    /// The text printed at the end of a capture.
    pub fn render(&self, file: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{} packets written to {file}", self.packets);
        if self.retransmits_armed || self.retransmits > 0 || self.kernel.retransmits_seen > 0 {
            let states: Vec<String> = self
                .retransmits_by_state
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect();
            let _ = writeln!(
                out,
                "retransmitted segments: {} written ({} dropped packets), of {} retransmissions \
                 the kernel made; by state: {}",
                self.retransmits,
                self.packets - self.retransmits,
                self.kernel.retransmits_seen,
                if states.is_empty() {
                    "none".to_owned()
                } else {
                    states.join(", ")
                }
            );
        }
        let _ = writeln!(out, "by reason and location:");
        let mut rows: Vec<_> = self.by_reason_location.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for ((reason, location), n) in rows {
            let _ = writeln!(out, "  {n:>8}  {reason:<24} {location}");
        }
        let _ = writeln!(out, "top 5-tuples:");
        let mut tuples: Vec<_> = self.by_tuple.iter().collect();
        tuples.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (tuple, n) in tuples.iter().take(5) {
            let _ = writeln!(out, "  {n:>8}  {tuple}");
        }
        if tuples.len() > 5 {
            let _ = writeln!(out, "  ({} more 5-tuples)", tuples.len() - 5);
        }
        let per_second: Vec<String> = self
            .per_second
            .iter()
            .map(|(s, n)| format!("{s}s:{n}"))
            .collect();
        let _ = writeln!(out, "per second: {}", per_second.join(" "));
        let k = &self.kernel;
        let _ = writeln!(
            out,
            "kernel: {} drops seen, {} matched the filter, {} unreadable",
            k.seen, k.matched, k.unreadable
        );
        let buffer = if self.buffer.is_empty() {
            "ring buffer"
        } else {
            &self.buffer
        };
        let _ = writeln!(
            out,
            "lost to the limits: {} (rate limit {}, {buffer} full {}, over --max-packets {}, \
             over the file size limit {})",
            self.lost(),
            k.rate_limited,
            k.ring_full + k.perf_lost,
            self.over_max_packets,
            self.over_file_size
        );
        let _ = writeln!(out, "buffer: {buffer}");
        if !self.hooks.is_empty() {
            let _ = writeln!(out, "hooks: {}", self.hooks.join("; "));
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn udp4(sport: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 29, 0, 0, 0, 0, 64, 17, 0, 0];
        p.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&9u16.to_be_bytes());
        p
    }

    #[test]
    fn tuples_reasons_and_losses() {
        assert_eq!(
            five_tuple(&udp4(4000)).unwrap().to_string(),
            "udp 198.18.0.1:4000 > 198.18.0.2:9"
        );
        assert_eq!(five_tuple(&[0x60; 10]), None);
        assert_eq!(five_tuple(&[]), None);
        let mut s = Summary::default();
        for i in 0..7u16 {
            s.add(
                "NETFILTER_DROP",
                "nft_do_chain+0x1",
                &udp4(4000 + i % 6),
                u64::from(i / 4),
            );
        }
        s.over_max_packets = 3;
        s.kernel.rate_limited = 2;
        let text = s.render("x.pcapng");
        assert!(
            text.starts_with("7 packets written to x.pcapng\n"),
            "{text}"
        );
        assert!(
            text.contains("       7  NETFILTER_DROP           nft_do_chain+0x1"),
            "{text}"
        );
        assert!(
            text.contains("       2  udp 198.18.0.1:4000 > 198.18.0.2:9"),
            "{text}"
        );
        assert!(text.contains("(1 more 5-tuples)"), "{text}");
        assert!(text.contains("per second: 0s:4 1s:3"), "{text}");
        assert!(
            text.contains("lost to the limits: 5 (rate limit 2"),
            "{text}"
        );
        assert!(!text.contains("retransmitted segments"), "{text}");
        assert!(
            text.ends_with("buffer: ring buffer\n"),
            "no hooks line without hooks: {text}"
        );
    }

    #[test]
    fn retransmits_and_perf_losses_are_counted_apart() {
        let mut s = Summary {
            buffer: "perf buffer".to_owned(),
            hooks: vec![
                "capture_kfree_skb on raw_tp (raw_tp: forced by TRACER_HOOK)".to_owned(),
                "capture_tcp_retransmit_skb on raw_tp (raw_tp: forced by TRACER_HOOK)".to_owned(),
            ],
            ..Summary::default()
        };
        s.add("NETFILTER_DROP", "nft_do_chain+0x1", &udp4(4000), 0);
        let mut tcp = udp4(5000);
        tcp[9] = 6;
        s.add_retransmit("TCP_ESTABLISHED", &tcp, 0);
        s.add_retransmit("TCP_ESTABLISHED", &tcp, 1);
        s.add_retransmit("TCP_FIN_WAIT1", &tcp, 1);
        s.kernel.retransmits_seen = 5;
        s.kernel.perf_lost = 7;
        s.kernel.rate_limited = 1;
        assert_eq!(s.lost(), 8);
        let text = s.render("x.pcapng");
        assert!(
            text.starts_with("4 packets written to x.pcapng\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "retransmitted segments: 3 written (1 dropped packets), of 5 retransmissions \
                 the kernel made; by state: TCP_ESTABLISHED 2, TCP_FIN_WAIT1 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("       3  tcp 198.18.0.1:5000 > 198.18.0.2:9"),
            "{text}"
        );
        assert!(text.contains("perf buffer full 7,"), "{text}");
        assert!(text.contains("buffer: perf buffer\n"), "{text}");
        assert!(
            text.ends_with(
                "hooks: capture_kfree_skb on raw_tp (raw_tp: forced by TRACER_HOOK); \
                 capture_tcp_retransmit_skb on raw_tp (raw_tp: forced by TRACER_HOOK)\n"
            ),
            "{text}"
        );
    }
}
