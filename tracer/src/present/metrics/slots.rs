//! Which destinations get RTT / connect-time series of their own: at most [`Limits::destinations`],
//! the busiest over the last minute or so, never the tracer's own listener.
//!
//! The rule (also in docs/metrics.md): each destination's recent traffic (RTT samples plus timed
//! connects) is summed with an exponential decay of half-life [`HALF_LIFE_INTERVALS`] frames. The
//! slots go to the highest recent traffic; a destination holding a slot keeps it until another
//! has more than [`DISPLACE_FACTOR`] times its recent traffic (no flapping between two similar
//! ones). A destination that loses its slot is folded into `daddr="other"` by the caller (its
//! totals are added there, so `other` and the sum over every series only grow); if it wins a
//! slot again later its series starts again from 0, which Prometheus reads as a counter reset.
//! Destinations are keyed by what the kernel keys them by: a server's side of its clients'
//! connections counts under its listening end (see `tracer_common::keyed_by_local_end`).
//!
//! Pure: the caller passes each frame's differences; no clock.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, SocketAddr},
};

use tracer_common::{DestKey, DestStats};

/// Frames (seconds) for a destination's recent traffic to halve when it goes quiet.
pub const HALF_LIFE_INTERVALS: f64 = 60.0;
/// How much busier a destination must be to take a slot from one that holds it.
pub const DISPLACE_FACTOR: f64 = 2.0;
/// Recent traffic below this is forgotten (a destination idle for ~10 half-lives).
const FORGET_BELOW: f64 = 1e-3;

/// The tracer's own HTTP listener, whose scrapes and probes are not a destination of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnListener {
    /// `serve --listen`.
    pub addr: SocketAddr,
    /// The tracer's network namespace inode, when known.
    pub netns: Option<u32>,
}

impl OwnListener {
    /// Whether a destination is this listener: its port at its address, in any namespace (the
    /// kernel's per-CPU socket-namespace cache can give a new socket the namespace of a freed
    /// one at the same address, so the namespace is not trusted for this); when listening on
    /// every address, its port at any loopback address, or at any address in the tracer's own
    /// namespace (namespace 0 is unknown).
    pub fn is(&self, key: &DestKey) -> bool {
        if key.dport != self.addr.port() {
            return false;
        }
        let Ok(daddr) = crate::judge::flows::dest_address(key)
            .parse::<IpAddr>()
            .map(|ip| ip.to_canonical())
        else {
            return false;
        };
        let ip = self.addr.ip().to_canonical();
        let own_netns = self.netns.is_some_and(|n| key.netns == n || key.netns == 0);
        daddr == ip || (ip.is_unspecified() && (daddr.is_loopback() || own_netns))
    }
}

/// The slot assignment state.
#[derive(Debug, Clone, Default)]
pub(super) struct Slots {
    limit: usize,
    own: Option<OwnListener>,
    /// Recent traffic per destination (decayed).
    recent: BTreeMap<DestKey, f64>,
    /// Destinations holding a slot.
    kept: BTreeSet<DestKey>,
}

/// One frame's outcome.
#[derive(Debug, Default)]
pub(super) struct Assignment {
    /// Destinations that lost their slot this frame (their series fold into `other`).
    pub(super) evicted: Vec<DestKey>,
}

fn traffic(stats: &DestStats) -> u64 {
    stats.rtt_samples + stats.connect_timed
}

impl Slots {
    pub(super) fn new(limit: usize, own: Option<OwnListener>) -> Slots {
        Slots {
            limit,
            own,
            ..Slots::default()
        }
    }

    /// Whether the destination is left out altogether (the tracer's own listener).
    pub(super) fn excluded(&self, key: &DestKey) -> bool {
        self.own.is_some_and(|own| own.is(key))
    }

    /// Whether the destination holds a slot (after [`Slots::update`] for this frame).
    pub(super) fn kept(&self, key: &DestKey) -> bool {
        self.kept.contains(key)
    }

    /// Takes one frame's differences: decays and adds the recent traffic, then gives the slots.
    pub(super) fn update<'a>(
        &mut self,
        dests: impl Iterator<Item = (&'a DestKey, &'a DestStats)>,
    ) -> Assignment {
        let decay = 0.5f64.powf(1.0 / HALF_LIFE_INTERVALS);
        for score in self.recent.values_mut() {
            *score *= decay;
        }
        for (key, stats) in dests {
            if self.excluded(key) || traffic(stats) == 0 {
                continue;
            }
            *self.recent.entry(*key).or_insert(0.0) += traffic(stats) as f64;
        }
        let kept = &self.kept;
        self.recent
            .retain(|key, score| *score >= FORGET_BELOW || kept.contains(key));

        // Holders compete with their traffic times DISPLACE_FACTOR: a newcomer takes a slot
        // only from a holder it out-trafficks by that factor.
        let mut ranked: Vec<(f64, bool, DestKey)> = self
            .recent
            .iter()
            .map(|(key, score)| {
                let holds = self.kept.contains(key);
                let weight = if holds {
                    score * DISPLACE_FACTOR
                } else {
                    *score
                };
                (weight, holds, *key)
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        let winners: BTreeSet<DestKey> = ranked
            .iter()
            .take(self.limit)
            .map(|(_, _, key)| *key)
            .collect();
        let evicted = self.kept.difference(&winners).copied().collect();
        self.kept = winners;
        Assignment { evicted }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{
        kernel::{names::KernelNames, snapshot::Snapshot},
        present::metrics::{
            latency::tests::{exposition, histogram, stats},
            Limits, Totals, OTHER,
        },
    };
    use tracer_common::{keyed_by_local_end, pack_port_range, FAMILY_INET};

    fn key(netns: u32, addr: [u8; 4], port: u16) -> DestKey {
        DestKey {
            netns,
            family: FAMILY_INET,
            dport: port,
            daddr: [u32::from_ne_bytes(addr), 0, 0, 0],
        }
    }

    #[test]
    fn the_own_listener_is_its_port_at_its_address_or_anywhere_in_its_namespace() {
        let loopback = OwnListener {
            addr: "127.0.0.1:9100".parse().unwrap_or_else(|_| unreachable!()),
            netns: Some(7),
        };
        assert!(loopback.is(&key(7, [127, 0, 0, 1], 9100)));
        // The namespace is not trusted (a reused socket address can carry a stale one).
        assert!(loopback.is(&key(8, [127, 0, 0, 1], 9100)));
        assert!(!loopback.is(&key(7, [127, 0, 0, 1], 9101)));
        assert!(!loopback.is(&key(7, [127, 0, 0, 2], 9100)));
        let any = OwnListener {
            addr: "0.0.0.0:9100".parse().unwrap_or_else(|_| unreachable!()),
            netns: Some(7),
        };
        assert!(any.is(&key(7, [10, 0, 0, 5], 9100)));
        assert!(any.is(&key(8, [127, 0, 0, 1], 9100)));
        assert!(!any.is(&key(8, [10, 0, 0, 5], 9100)));
        let node = OwnListener {
            addr: "10.0.0.5:9100".parse().unwrap_or_else(|_| unreachable!()),
            netns: Some(7),
        };
        // A pod reaching the node's address: the tracer's listener, from any namespace.
        assert!(node.is(&key(8, [10, 0, 0, 5], 9100)));
        assert!(!node.is(&key(8, [10, 0, 0, 6], 9100)));
    }

    /// The key the kernel's `tcp_probe` gives a socket (its remote end, or its listening end
    /// on a server's side), as in `tracer-ebpf`.
    fn probe_key(netns: u32, local: ([u8; 4], u16), remote: ([u8; 4], u16)) -> DestKey {
        let range = pack_port_range(32768, 60999);
        let (addr, port) = if keyed_by_local_end(local.1, remote.1, range) {
            local
        } else {
            remote
        };
        key(netns, addr, port)
    }

    fn limits(destinations: usize) -> Limits {
        Limits {
            netns: 64,
            flows: 20,
            destinations,
        }
    }

    fn rtt_series(text: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("tracer_tcp_rtt_seconds_count{"))
            .map(str::to_owned)
            .collect()
    }

    /// Issue 14 item 12: 60 client connections from ephemeral ports to one listener are one
    /// series (both ends of each, seen on one node), and the tracer's own listener, scraped 60
    /// times, has none: no `dport` of a client's ephemeral range is left in the exposition.
    #[test]
    fn sixty_clients_of_one_listener_are_one_series_and_the_own_listener_none() {
        let lo = [127, 0, 0, 1];
        let mut totals = Totals::excluding(
            limits(50),
            OwnListener {
                addr: "127.0.0.1:9100".parse().unwrap(),
                netns: Some(7),
            },
        );
        for i in 0..60u16 {
            let mut delta = Snapshot::default();
            let app_client = 35_000 + i;
            let scraper = 36_000 + i;
            for (local, remote) in [
                ((lo, app_client), (lo, 8080)),
                ((lo, 8080), (lo, app_client)),
                ((lo, scraper), (lo, 9100)),
                ((lo, 9100), (lo, scraper)),
            ] {
                let k = probe_key(7, local, remote);
                let s = stats(&[(50, 2)], &[]);
                let entry = delta.dests.entry(k).or_insert_with(DestStats::default);
                entry.rtt_samples += s.rtt_samples;
                entry.rtt_sum_us += s.rtt_sum_us;
                for (a, b) in entry.rtt_hist.iter_mut().zip(s.rtt_hist) {
                    *a += b;
                }
            }
            totals.absorb(&delta, &KernelNames::default(), &BTreeMap::new());
        }
        let text = exposition(&totals, &BTreeMap::new());
        let series = rtt_series(&text);
        assert_eq!(series.len(), 1, "{series:#?}");
        let listener = histogram(
            &text,
            "tracer_tcp_rtt_seconds",
            &[("daddr", "127.0.0.1"), ("dport", "8080")],
        );
        // 60 connections × 2 ends × 2 samples.
        assert_eq!(listener.last().map(|b| b.count), Some(240.0));
        assert!(!text.contains("dport=\"9100\""), "{text}");
        assert!(!text.contains("dport=\"35"), "{text}");
        assert!(!text.contains("dport=\"36"), "{text}");
    }

    /// Issue 14 item 12: the slots go by recent traffic, not first seen: a busy destination
    /// that appears after the slots are taken displaces an idle one, whose totals move into
    /// `other`; every series that stays, `other` and the sum of all only grow.
    #[test]
    fn a_busy_destination_seen_late_displaces_an_idle_one() {
        let (a, b, c) = (
            key(7, [198, 18, 0, 1], 80),
            key(7, [198, 18, 0, 2], 80),
            key(7, [198, 18, 0, 3], 443),
        );
        let mut totals = Totals::new(limits(2));
        let count = |text: &str, daddr: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("tracer_tcp_rtt_seconds_count{")
                        && l.contains(&format!("daddr=\"{daddr}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(|v| v.parse::<f64>().unwrap())
        };
        let total = |text: &str| -> f64 {
            rtt_series(text)
                .iter()
                .filter_map(|l| l.rsplit(' ').next())
                .map(|v| v.parse::<f64>().unwrap())
                .sum()
        };
        let mut last: BTreeMap<String, f64> = BTreeMap::new();
        let mut last_total = 0.0;
        for second in 0..40u32 {
            let mut delta = Snapshot::default();
            if second < 10 {
                delta.dests.insert(a, stats(&[(1_000, 10)], &[]));
                delta.dests.insert(b, stats(&[(1_000, 10)], &[]));
            } else {
                // a and b idle; c busy from second 10 on.
                delta.dests.insert(c, stats(&[(2_000, 100)], &[]));
            }
            totals.absorb(&delta, &KernelNames::default(), &BTreeMap::new());
            let text = exposition(&totals, &BTreeMap::new());
            let now: BTreeMap<String, f64> = ["198.18.0.1", "198.18.0.2", "198.18.0.3", OTHER]
                .into_iter()
                .filter_map(|d| count(&text, d).map(|v| (d.to_owned(), v)))
                .collect();
            for (series, value) in &now {
                if let Some(before) = last.get(series) {
                    assert!(value >= before, "{series} fell from {before} to {value}");
                }
            }
            assert!(total(&text) >= last_total, "the sum fell at {second}");
            last_total = total(&text);
            last = now;
        }
        let text = exposition(&totals, &BTreeMap::new());
        // c took a slot in its second busy second (~199 recent samples against 2 × ~92 for
        // each idle holder): its first second counted in other.
        assert_eq!(count(&text, "198.18.0.3"), Some(2900.0), "{text}");
        // One of the idle two kept its slot, the other's 100 samples moved into other.
        assert_eq!(count(&text, "198.18.0.1"), Some(100.0), "{text}");
        assert_eq!(count(&text, "198.18.0.2"), None, "{text}");
        assert_eq!(count(&text, OTHER), Some(200.0), "{text}");
        assert_eq!(rtt_series(&text).len(), 3);
    }
}
