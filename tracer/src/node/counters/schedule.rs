//! Which namespaces a live sample reads, and what it carries for the rest: sampling by activity.
//! Pure: the caller passes the time, the namespaces that exist and those the kernel saw busy.
//!
//! A namespace is read every second while it is *hot*: the host, any namespace in scope, and
//! any where the kernel counted a drop, a retransmission or a reset in the last
//! [`SLOW_ROUND_S`] seconds (promoted the moment the kernel sees it). The rest are read on a
//! slow round, once every [`SLOW_ROUND_S`] seconds, each in the second `inode % SLOW_ROUND_S`,
//! so no second pays for all. A namespace seen for the first time, and every namespace in a
//! *full* sample (a window's first and last frame), is read at once.
//!
//! A rolling window (`serve`, `top`) judges its newest frame against one up to its length ago,
//! and reports on the namespaces where the kernel saw activity in that time: the caller says
//! how long that is ([`SamplePlan::keep_hot_ms`]), and activity keeps a namespace hot that
//! long, so every namespace such a window reports on has a fresh reading at its end, not one
//! carried from up to a round before.
//!
//! A namespace that stays the same is read less often still: once a reading equals the one
//! before it (its counters did not move over a whole slow round, or over the last second of a
//! hot spell) it is *quiet*, and read once every [`QUIET_ROUND_S`] seconds, in the second
//! `inode % QUIET_ROUND_S` (so 250 idle namespaces cost ~4 reads a second instead of 25). A
//! reading that differs from the last puts it back on the slow round, and activity the kernel
//! sees there promotes it at once, as before. The price: what a quiet namespace's counters do
//! without the kernel probes seeing activity there shows up to a minute late, not ten seconds.
//!
//! A namespace that has stayed quiet for [`STILL_AFTER_S`] (every reading in five minutes the
//! same, traffic aside) is *still*, and read once every [`STILL_ROUND_S`] seconds, in the second
//! `inode % STILL_ROUND_S`: 250 idle namespaces then cost under one read a second instead of
//! ~4. The same rules put it back: a reading that differs returns it to the slow round, and
//! activity the kernel sees promotes it at once. The price: what a namespace idle for five
//! minutes does without the probes seeing it shows up to five minutes late, not one.
//!
//! A reading that moved only in its interfaces' traffic counters (packets, bytes and multicast
//! received or sent, rising; [`TRAFFIC`]) counts as unchanged for this: a new namespace's veth
//! sends and receives IPv6 router solicitations and MLD reports for its first minutes (the
//! tracer does not read IPv6's SNMP counters, so only these move), and nothing the verdict
//! reads is among them (it reads errors, drops, qdisc and SNMP counters). Such a reading is
//! still kept and carried as read (a real reading, not the older one), and any other counter
//! that moves, or a traffic counter that goes back (an interface replaced), puts the namespace
//! back on the slow round.
//!
//! A namespace whose first reading shows nothing ever happened there ([`never_active`]: every
//! counter zero but its interfaces' [`TRAFFIC`], the SNMP settings of [`SNMP_SETTINGS`] and
//! conntrack's limit) is quiet from that reading on: its whole life so far is a longer stillness
//! than the one slow round two equal readings show. So the namespaces a tracer finds at its
//! start (and new ones later) cost the quiet round's reads from the first second, not a slow
//! round's first (~25 reads a second at 250 namespaces for the first 10 s). Its next reading is
//! then up to a minute later instead of ten seconds, as for any quiet namespace (activity the
//! probes see promotes it at once), and deltas stay exact: every value is still a real reading.
//!
//! In between, a namespace's last values are carried into the sample unchanged. So counter
//! deltas stay exact: the delta between two samples is the difference of two real readings,
//! and the deltas of consecutive samples add up to the difference of a window's ends. What an
//! idle namespace's counters did between two readings shows in the second of its next reading.
//!
//! A carried reading is shared, not copied (see [`Shared`]); so is a new reading equal to the
//! last one. Samples of idle namespaces then cost no memory per frame, and judging tells an
//! unchanged namespace by pointer.

use std::collections::{BTreeSet, HashMap};

use crate::node::{evidence::NetnsCounters, shared::Shared};

/// Seconds between two readings of an idle namespace, and how long activity keeps one hot.
pub const SLOW_ROUND_S: u64 = 10;

/// Seconds between two readings of a quiet namespace (one whose last readings were equal).
pub const QUIET_ROUND_S: u64 = 60;

/// How long a namespace stays quiet (every reading the same but for traffic) before it is
/// *still*, read on the [`STILL_ROUND_S`] round.
pub const STILL_AFTER_S: u64 = 300;

/// Seconds between two readings of a still namespace.
pub const STILL_ROUND_S: u64 = 300;

/// The interface counters (sysfs names) whose rise alone leaves a namespace quiet: traffic,
/// not loss (see the module docs). Errors, drops and every other counter are not among them.
pub const TRAFFIC: &[&str] = &[
    "multicast",
    "rx_bytes",
    "rx_packets",
    "tx_bytes",
    "tx_packets",
];

/// SNMP values that are settings, not counters (group, name): the kernel prints them, non-zero,
/// in a namespace that never saw a packet (`Ip: Forwarding 2 DefaultTTL 64`, `Tcp: RtoAlgorithm
/// 1 RtoMin 200 RtoMax 120000 MaxConn -1`; RFC 4293's and RFC 4022's configuration objects).
pub const SNMP_SETTINGS: &[(&str, &str)] = &[
    ("Ip", "Forwarding"),
    ("Ip", "DefaultTTL"),
    ("Tcp", "RtoAlgorithm"),
    ("Tcp", "RtoMin"),
    ("Tcp", "RtoMax"),
    ("Tcp", "MaxConn"),
];

/// True when `reading` shows a namespace where nothing happened yet: not the host, every SNMP
/// counter zero (but [`SNMP_SETTINGS`]), conntrack with no entry and every statistic zero (its
/// limit is a setting), and every interface counter zero but [`TRAFFIC`] (the same rule as
/// [`moved_only_in_traffic`]: packets sent and received alone leave a namespace quiet), with no
/// driver statistic and no qdisc drop, overlimit, requeue or backlog.
fn never_active(reading: &NetnsCounters) -> bool {
    !reading.is_host
        && reading.snmp.iter().all(|(group, set)| {
            set.iter()
                .all(|(name, v)| *v == 0 || SNMP_SETTINGS.contains(&(group.as_str(), name)))
        })
        && reading
            .conntrack
            .as_ref()
            .is_none_or(|c| c.count == 0 && c.stats.values().all(|v| *v == 0))
        && reading.interfaces.values().all(|iface| {
            iface
                .stats
                .iter()
                .all(|(name, v)| *v == 0 || TRAFFIC.contains(&name))
                && iface.ethtool.values().all(|v| *v == 0)
                && iface.qdisc.as_ref().is_none_or(|q| {
                    q.drops == 0 && q.overlimits == 0 && q.requeues == 0 && q.backlog_packets == 0
                })
        })
}

/// True when `new` differs from `last` only in non-host interfaces' [`TRAFFIC`] counters, each
/// the same or higher: the namespace is as quiet as if nothing had moved. The host (read every
/// second anyway) never is.
fn moved_only_in_traffic(last: &NetnsCounters, new: &NetnsCounters) -> bool {
    !new.is_host
        && last.snmp == new.snmp
        && last.conntrack == new.conntrack
        && last.interfaces.len() == new.interfaces.len()
        && last
            .interfaces
            .iter()
            .zip(&new.interfaces)
            .all(|((name0, if0), (name1, if1))| {
                name0 == name1
                    && if0.driver == if1.driver
                    && if0.driver_version == if1.driver_version
                    && if0.ethtool == if1.ethtool
                    && if0.qdisc == if1.qdisc
                    && if0.stats.len() == if1.stats.len()
                    && if0
                        .stats
                        .iter()
                        .zip(if1.stats.iter())
                        .all(|((stat0, v0), (stat1, v1))| {
                            stat0 == stat1 && (v0 == v1 || (v1 > v0 && TRAFFIC.contains(&stat0)))
                        })
            })
}

/// What one sample should read, given by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SamplePlan {
    /// Read every namespace (a window's ends).
    pub full: bool,
    /// Namespaces (inodes) to read every second: the kernel saw activity there since the last
    /// sample, or they are in scope. The host is always hot.
    pub hot: BTreeSet<u32>,
    /// How long (ms) activity keeps a namespace hot: a rolling window's length, so the
    /// namespaces it reports on are read at its end; 0 (or less than a round): one round.
    pub keep_hot_ms: u64,
}

impl SamplePlan {
    /// Every namespace read.
    pub fn full() -> Self {
        Self {
            full: true,
            hot: BTreeSet::new(),
            keep_hot_ms: 0,
        }
    }
}

/// Which namespaces are due, and the last reading of each (carried while it is not due).
#[derive(Debug, Default)]
pub struct Schedule {
    /// When each namespace was last read (ms, the caller's clock).
    read_at: HashMap<u32, u64>,
    /// Until when (ms) a namespace stays hot after the kernel saw activity there.
    hot_until: HashMap<u32, u64>,
    /// The last reading of each namespace.
    carried: HashMap<u32, Shared<NetnsCounters>>,
    /// Quiet namespaces: their last reading equalled the one before, or their first showed
    /// nothing ever happened there ([`never_active`]); with the reading (ms) since which they
    /// have been (still after [`STILL_AFTER_S`]).
    quiet: HashMap<u32, u64>,
}

impl Schedule {
    /// The namespaces of `known` (inodes) to read at `at_ms`; `host` is always among them.
    /// Forgets namespaces that no longer exist.
    pub fn due(
        &mut self,
        at_ms: u64,
        known: &[u32],
        host: Option<u32>,
        plan: &SamplePlan,
    ) -> BTreeSet<u32> {
        let exists: BTreeSet<u32> = known.iter().copied().collect();
        self.read_at.retain(|inode, _| exists.contains(inode));
        self.hot_until.retain(|inode, _| exists.contains(inode));
        self.carried.retain(|inode, _| exists.contains(inode));
        self.quiet.retain(|inode, _| exists.contains(inode));
        let until = at_ms + plan.keep_hot_ms.max(SLOW_ROUND_S * 1000);
        for inode in &plan.hot {
            let hot_until = self.hot_until.entry(*inode).or_default();
            *hot_until = (*hot_until).max(until);
        }
        let second = at_ms / 1000;
        known
            .iter()
            .copied()
            .filter(|inode| {
                let last = self.read_at.get(inode).copied();
                let round = self.round_s(*inode, at_ms);
                plan.full
                    || Some(*inode) == host
                    || self.hot_until.get(inode).is_some_and(|until| at_ms < *until)
                    || last.is_none()
                    // Its second of its round, or a round missed (ticks are not always one a
                    // second apart).
                    || second % round == u64::from(*inode) % round
                    || last.is_some_and(|last| at_ms.saturating_sub(last) >= round * 1000)
            })
            .collect()
    }

    /// Seconds between two readings of `inode` at `at_ms` while it is not hot:
    /// [`STILL_ROUND_S`] once it has been quiet for [`STILL_AFTER_S`], [`QUIET_ROUND_S`] while
    /// it is quiet, else [`SLOW_ROUND_S`].
    fn round_s(&self, inode: u32, at_ms: u64) -> u64 {
        match self.quiet.get(&inode) {
            Some(since) if at_ms.saturating_sub(*since) >= STILL_AFTER_S * 1000 => STILL_ROUND_S,
            Some(_) => QUIET_ROUND_S,
            None => SLOW_ROUND_S,
        }
    }

    /// The sample's namespaces, in the order of `known`: the fresh reading of those read (kept
    /// for later; the last one, shared, when it reads the same), the carried one of the rest.
    /// A namespace with neither (it could not be read yet) is left out.
    pub fn assemble(
        &mut self,
        at_ms: u64,
        known: &[u32],
        mut fresh: HashMap<u32, NetnsCounters>,
    ) -> Vec<Shared<NetnsCounters>> {
        let mut out = Vec::with_capacity(known.len());
        for inode in known {
            match fresh.remove(inode) {
                Some(counters) => {
                    self.read_at.insert(*inode, at_ms);
                    let reading = match self.carried.get(inode) {
                        Some(last) if **last == counters => {
                            self.quiet.entry(*inode).or_insert(at_ms);
                            last.clone()
                        }
                        Some(last) if moved_only_in_traffic(last, &counters) => {
                            self.quiet.entry(*inode).or_insert(at_ms);
                            Shared::new(counters)
                        }
                        None if never_active(&counters) => {
                            self.quiet.entry(*inode).or_insert(at_ms);
                            Shared::new(counters)
                        }
                        _ => {
                            self.quiet.remove(inode);
                            Shared::new(counters)
                        }
                    };
                    self.carried.insert(*inode, reading.clone());
                    out.push(reading);
                }
                None => {
                    if let Some(counters) = self.carried.get(inode) {
                        out.push(counters.clone());
                    }
                }
            }
        }
        out
    }

    /// Forgets everything (the next sample reads every namespace).
    pub fn forget(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{
        judge::verdict::counter_signals,
        node::evidence::{CounterSample, IfaceCounters, NetnsCounters},
    };

    const HOST: u32 = 0xEFFF_FFF9;

    fn hot(inodes: &[u32]) -> SamplePlan {
        SamplePlan {
            full: false,
            hot: inodes.iter().copied().collect(),
            keep_hot_ms: 0,
        }
    }

    /// Idle namespaces: after the first second, each second reads the host and about a tenth
    /// of the rest, and every namespace is read exactly once per round.
    #[test]
    fn idle_namespaces_are_spread_over_the_round() {
        let known: Vec<u32> = std::iter::once(HOST)
            .chain(0xF000_0000..0xF000_00FA)
            .collect();
        let mut schedule = Schedule::default();
        let first = schedule.due(0, &known, Some(HOST), &hot(&[]));
        assert_eq!(first.len(), 251);
        schedule.assemble(0, &known, fresh_all(&first, 0));
        let mut reads: HashMap<u32, u32> = HashMap::new();
        for second in 1..=SLOW_ROUND_S {
            let due = schedule.due(second * 1000, &known, Some(HOST), &hot(&[]));
            assert!(due.contains(&HOST), "second {second}");
            assert_eq!(due.len(), 26, "second {second}: the host and 25 of 250");
            for inode in &due {
                *reads.entry(*inode).or_default() += 1;
            }
            schedule.assemble(second * 1000, &known, fresh_all(&due, second));
        }
        assert_eq!(reads[&HOST], 10);
        assert!(
            known[1..].iter().all(|inode| reads[inode] == 1),
            "{reads:?}"
        );
    }

    /// Activity promotes a namespace at once and keeps it read every second for a round; a
    /// namespace in scope is hot whenever the caller says so.
    #[test]
    fn activity_promotes_for_a_round() {
        let busy = 0xF000_0001;
        let known = vec![HOST, busy];
        let mut schedule = Schedule::default();
        let due = schedule.due(0, &known, Some(HOST), &hot(&[]));
        schedule.assemble(0, &known, fresh_all(&due, 0));
        // Its slow-round second is 1 (inode % 10); second 2 would skip it.
        let due = schedule.due(1000, &known, Some(HOST), &hot(&[]));
        schedule.assemble(1000, &known, fresh_all(&due, 1));
        assert!(!schedule
            .due(2000, &known, Some(HOST), &hot(&[]))
            .contains(&busy));
        let due = schedule.due(2000, &known, Some(HOST), &hot(&[busy]));
        assert!(due.contains(&busy));
        schedule.assemble(2000, &known, fresh_all(&due, 2));
        for second in 3..12 {
            let due = schedule.due(second * 1000, &known, Some(HOST), &hot(&[]));
            assert!(due.contains(&busy), "second {second}");
            schedule.assemble(second * 1000, &known, fresh_all(&due, second));
        }
        // A round after the activity, back on the slow round (its second is 11 % 10 = 1).
        assert!(!schedule
            .due(12_000, &known, Some(HOST), &hot(&[]))
            .contains(&busy));
        assert!(schedule
            .due(0, &known, Some(HOST), &SamplePlan::full())
            .contains(&busy));
    }

    /// A namespace that appears is read at once; one that vanished is forgotten.
    #[test]
    fn new_namespaces_are_read_at_once() {
        let mut schedule = Schedule::default();
        let known = vec![HOST, 0xF000_0002];
        let due = schedule.due(0, &known, Some(HOST), &hot(&[]));
        schedule.assemble(0, &known, fresh_all(&due, 0));
        let known = vec![HOST, 0xF000_0003];
        let due = schedule.due(5000, &known, Some(HOST), &hot(&[]));
        assert_eq!(due, [HOST, 0xF000_0003].into_iter().collect());
        let sample = schedule.assemble(5000, &known, fresh_all(&due, 5));
        let inodes: Vec<u32> = sample.iter().map(|n| n.inode).collect();
        assert_eq!(inodes, vec![HOST, 0xF000_0003]);
    }

    /// A rolling window of 30 s reports on a namespace the kernel saw busy once, at second 2,
    /// for 30 s: it is read every second of that time, so at every window end it is fresh
    /// (its counters rose after the activity, and each end shows them); then it goes back to
    /// the slow round.
    #[test]
    fn a_rolling_window_reads_what_it_reports_on_at_its_end() {
        let busy = 0xF000_0001;
        let known = vec![HOST, busy, 0xF000_0002];
        let mut schedule = Schedule::default();
        let due = schedule.due(0, &known, Some(HOST), &hot(&[]));
        schedule.assemble(0, &known, fresh_all(&due, 0));
        let rolling = |inodes: &[u32]| SamplePlan {
            keep_hot_ms: 30_000,
            ..hot(inodes)
        };
        let mut idle_reads = Vec::new();
        for second in 2..=31u64 {
            let plan = if second == 2 {
                rolling(&[busy])
            } else {
                rolling(&[])
            };
            let due = schedule.due(second * 1000, &known, Some(HOST), &plan);
            assert!(due.contains(&busy), "second {second}");
            if due.contains(&0xF000_0002) {
                idle_reads.push(second);
            }
            let sample = schedule.assemble(second * 1000, &known, fresh_all(&due, second));
            let end = sample.iter().find(|n| n.inode == busy).unwrap();
            assert_eq!(end.get("Tcp", "RetransSegs"), truth(busy, second));
        }
        // The idle neighbour stayed on its slow round (its second is 2).
        assert_eq!(idle_reads, vec![2, 12, 22]);
        // Past the window's length, back on the slow round (its second is 1).
        let plan = rolling(&[]);
        assert!(!schedule
            .due(32_000, &known, Some(HOST), &plan)
            .contains(&busy));
        // A one-round plan does not shorten the longer promise.
        let mut schedule = Schedule::default();
        schedule.due(0, &known, Some(HOST), &rolling(&[busy]));
        schedule.due(1000, &known, Some(HOST), &hot(&[busy]));
        assert!(schedule
            .due(25_000, &known, Some(HOST), &hot(&[]))
            .contains(&busy));
    }

    /// A carried reading, and a new reading equal to the last, are the last reading itself
    /// (shared, not copied); a reading that changed is new.
    #[test]
    fn unchanged_readings_are_shared() {
        let (idle, busy) = (0xF000_0001, 0xF000_0002);
        let known = vec![HOST, idle, busy];
        let mut schedule = Schedule::default();
        let first = schedule.assemble(0, &known, fresh_all(&known.iter().copied().collect(), 0));
        let mut fresh = HashMap::from([(busy, reading(busy, 1))]);
        // The idle namespace read again, the same values.
        fresh.insert(idle, reading(idle, 0));
        let second = schedule.assemble(1000, &known, fresh);
        assert!(Shared::same(&first[0], &second[0]), "the host, carried");
        assert!(Shared::same(&first[1], &second[1]), "read again, unchanged");
        assert!(!Shared::same(&first[2], &second[2]), "changed");
        assert_eq!(second[2].get("Tcp", "RetransSegs"), truth(busy, 1));
    }

    /// A namespace whose reading equals the one before goes to the quiet round: each is read
    /// once a minute, spread over its seconds (the host every second); a reading that changed
    /// puts one back on the slow round, and activity promotes a quiet one at once.
    #[test]
    fn quiet_namespaces_are_read_once_a_minute() {
        let known: Vec<u32> = std::iter::once(HOST)
            .chain(0xF000_0000..0xF000_00FA)
            .collect();
        let still = |due: &BTreeSet<u32>| -> HashMap<u32, NetnsCounters> {
            due.iter().map(|i| (*i, reading(*i, 0))).collect()
        };
        let mut schedule = Schedule::default();
        let mut reads: HashMap<u32, Vec<u64>> = HashMap::new();
        for second in 0..190u64 {
            let due = schedule.due(second * 1000, &known, Some(HOST), &hot(&[]));
            assert!(due.contains(&HOST), "second {second}");
            if second >= 70 {
                assert!(due.len() <= 1 + 5, "second {second}: {} read", due.len());
            }
            for inode in &due {
                reads.entry(*inode).or_default().push(second);
            }
            schedule.assemble(second * 1000, &known, still(&due));
        }
        for inode in &known[1..] {
            let at = &reads[inode];
            // Read at once, then in its second of the slow round: the same reading, so quiet.
            let slow = match u64::from(*inode) % SLOW_ROUND_S {
                0 => SLOW_ROUND_S,
                second => second,
            };
            assert_eq!(at[..2], [0, slow], "{inode:#x}");
            // Then once a minute at most, and from the second minute in its own second.
            assert!(
                at.windows(2).all(|w| w[1] - w[0] <= QUIET_ROUND_S),
                "{inode:#x}: {at:?}"
            );
            let late: Vec<u64> = at.iter().copied().filter(|s| *s >= 70).collect();
            assert_eq!(late.len(), 2, "{inode:#x}: {at:?}");
            assert!(
                late.iter().all(|s| s % 60 == u64::from(*inode) % 60),
                "{inode:#x}: {at:?}"
            );
        }
        // A quiet namespace whose reading changed is back on the slow round.
        let changed = 0xF000_0007;
        // Its next second of the quiet round (180 is a whole number of rounds).
        let next = 180 + u64::from(changed) % QUIET_ROUND_S;
        for second in 190..=next + 60 {
            let due = schedule.due(second * 1000, &known, Some(HOST), &hot(&[]));
            let mut fresh = still(&due);
            if let Some(r) = fresh.get_mut(&changed) {
                assert_eq!(second, next + 60, "read in its second of the quiet round");
                *r = reading(changed, 1);
            }
            schedule.assemble(second * 1000, &known, fresh);
        }
        let again = (next + 61..next + 71).find(|s| {
            schedule
                .due(s * 1000, &known, Some(HOST), &hot(&[]))
                .contains(&changed)
        });
        assert_eq!(again, Some(next + 70));
        // Activity promotes a quiet namespace at once.
        let quiet = 0xF000_0008;
        assert_eq!(schedule.round_s(quiet, (next + 71) * 1000), QUIET_ROUND_S);
        assert!(schedule
            .due((next + 71) * 1000, &known, Some(HOST), &hot(&[quiet]))
            .contains(&quiet));
    }

    /// A namespace quiet for five minutes is still: read once every five minutes, in its own
    /// second of that round, so 250 idle namespaces cost under one read a second; a reading
    /// that changed puts it back on the slow round, and activity promotes it at once.
    #[test]
    fn still_namespaces_are_read_every_five_minutes() {
        let known: Vec<u32> = std::iter::once(HOST)
            .chain(0xF000_0000..0xF000_00FA)
            .collect();
        let same = |due: &BTreeSet<u32>| -> HashMap<u32, NetnsCounters> {
            due.iter().map(|i| (*i, reading(*i, 0))).collect()
        };
        let mut schedule = Schedule::default();
        let mut reads: HashMap<u32, Vec<u64>> = HashMap::new();
        let mut busiest_late = 0;
        for second in 0..1300u64 {
            let due = schedule.due(second * 1000, &known, Some(HOST), &hot(&[]));
            if second >= 700 {
                busiest_late = busiest_late.max(due.len() - 1);
            }
            for inode in &due {
                reads.entry(*inode).or_default().push(second);
            }
            schedule.assemble(second * 1000, &known, same(&due));
        }
        // Under one a second on average: at most two in any second (250 over 300 seconds).
        assert!(busiest_late <= 2, "{busiest_late} read in one second");
        for inode in &known[1..] {
            let at = &reads[inode];
            assert!(
                at.windows(2).all(|w| w[1] - w[0] <= STILL_ROUND_S),
                "{inode:#x}: {at:?}"
            );
            // From second 700 on (quiet since second 10 at the latest, still since 310, and
            // its first still round over by 610): once per five minutes, in its own second.
            let late: Vec<u64> = at.iter().copied().filter(|s| *s >= 700).collect();
            assert_eq!(late.len(), 2, "{inode:#x}: {at:?}");
            assert!(
                late.iter()
                    .all(|s| s % STILL_ROUND_S == u64::from(*inode) % STILL_ROUND_S),
                "{inode:#x}: {at:?}"
            );
        }
        // A still namespace whose reading changed is back on the slow round.
        let changed = 0xF000_0007;
        // Its next second of the still round.
        let next = (1300u64..)
            .find(|s| s % STILL_ROUND_S == u64::from(changed) % STILL_ROUND_S)
            .unwrap();
        for second in 1300..=next {
            let due = schedule.due(second * 1000, &known, Some(HOST), &hot(&[]));
            let mut fresh = same(&due);
            if let Some(r) = fresh.get_mut(&changed) {
                assert_eq!(second, next, "read in its second of the still round");
                *r = reading(changed, 1);
            }
            schedule.assemble(second * 1000, &known, fresh);
        }
        assert_eq!(schedule.round_s(changed, (next + 1) * 1000), SLOW_ROUND_S);
        let again = (next + 1..next + 11).find(|s| {
            schedule
                .due(s * 1000, &known, Some(HOST), &hot(&[]))
                .contains(&changed)
        });
        assert_eq!(again, Some(next + 10));
        // Activity promotes a still namespace at once.
        let still = 0xF000_0008;
        assert_eq!(schedule.round_s(still, (next + 11) * 1000), STILL_ROUND_S);
        assert!(schedule
            .due((next + 11) * 1000, &known, Some(HOST), &hot(&[still]))
            .contains(&still));
    }

    /// A veth whose packets and bytes rise at every reading (IPv6 router solicitations and MLD
    /// reports on a new namespace) leaves its namespace quiet, read once a minute, and each
    /// reading is carried as read; a rising drop counter, or a traffic counter that went back,
    /// keeps a namespace on the slow round.
    #[test]
    fn traffic_alone_leaves_a_namespace_quiet() {
        let (chatty, dropping, replaced) = (0xF000_0011, 0xF000_0012, 0xF000_0013);
        let known = vec![HOST, chatty, dropping, replaced];
        let veth = |inode: u32, n: u64| {
            let mut counters = reading(inode, 0);
            let (packets, dropped) = match inode {
                0xF000_0012 => (7, n),
                // Lower at every reading, as an interface made again each time.
                0xF000_0013 => (1000 - n, 0),
                _ => (5 + n, 0),
            };
            let stats = [
                ("rx_bytes", 70 * packets),
                ("rx_dropped", dropped),
                ("rx_packets", packets),
                ("tx_bytes", 90 * packets),
                ("tx_errors", 0),
                ("tx_packets", packets),
            ];
            let iface = IfaceCounters {
                stats: stats.into_iter().collect(),
                ..IfaceCounters::default()
            };
            counters.interfaces.insert("trcc-b".to_owned(), iface);
            counters
        };
        let mut schedule = Schedule::default();
        let mut reads: HashMap<u32, Vec<u64>> = HashMap::new();
        for second in 0..190u64 {
            let due = schedule.due(second * 1000, &known, Some(HOST), &hot(&[]));
            let fresh: HashMap<u32, NetnsCounters> = due
                .iter()
                .map(|inode| {
                    let n = reads.get(inode).map_or(0, Vec::len) as u64;
                    (*inode, veth(*inode, n))
                })
                .collect();
            for inode in &due {
                reads.entry(*inode).or_default().push(second);
            }
            let sample = schedule.assemble(second * 1000, &known, fresh);
            // Every namespace carries its last real reading.
            let n = reads[&chatty].len() as u64 - 1;
            let carried = sample.iter().find(|c| c.inode == chatty).unwrap();
            assert_eq!(**carried, veth(chatty, n), "second {second}");
        }
        let late = |inode: u32| reads[&inode].iter().filter(|s| **s >= 70).count();
        assert_eq!(late(chatty), 2, "{:?}", reads[&chatty]);
        assert!(reads[&chatty]
            .iter()
            .filter(|s| **s >= 70)
            .all(|s| s % 60 == u64::from(chatty) % 60));
        assert_eq!(late(dropping), 12, "{:?}", reads[&dropping]);
        assert_eq!(late(replaced), 12, "{:?}", reads[&replaced]);
        // The host is never quiet, whatever moved.
        let mut host = veth(HOST, 1);
        host.is_host = true;
        assert!(!moved_only_in_traffic(&veth(HOST, 0), &host));
        assert!(moved_only_in_traffic(&veth(chatty, 0), &veth(chatty, 1)));
        // Any SNMP counter that moved is not traffic.
        assert!(!moved_only_in_traffic(
            &veth(chatty, 0),
            &NetnsCounters {
                snmp: reading(chatty, 1).snmp,
                ..veth(chatty, 1)
            }
        ));
    }

    /// A namespace whose first reading shows nothing ever happened there (only the SNMP
    /// settings, conntrack's limit and a veth's traffic non-zero) is quiet from that reading
    /// on: it is next read in its second of the quiet round, not of the slow round. One
    /// non-zero counter of any other kind (an SNMP counter, a conntrack entry or statistic, an
    /// interface's drops, a qdisc's drops), or the host, keeps the slow round's second reading.
    #[test]
    fn a_first_reading_where_nothing_happened_is_quiet_at_once() {
        use crate::node::evidence::{Conntrack, QdiscCounters};
        let pristine = |inode: u32| {
            let mut counters = NetnsCounters {
                inode,
                label: format!("ns {inode}"),
                ..NetnsCounters::default()
            };
            let settings = [("Forwarding", 2), ("DefaultTTL", 64), ("InReceives", 0)];
            counters
                .snmp
                .insert("Ip".to_owned(), settings.into_iter().collect());
            let tcp = [
                ("RtoAlgorithm", 1),
                ("RtoMin", 200),
                ("RtoMax", 120_000),
                ("MaxConn", -1),
                ("CurrEstab", 0),
                ("RetransSegs", 0),
            ];
            counters
                .snmp
                .insert("Tcp".to_owned(), tcp.into_iter().collect());
            counters.snmp.insert(
                "TcpExt".to_owned(),
                [("TCPTimeouts", 0)].into_iter().collect(),
            );
            counters.conntrack = Some(Conntrack {
                count: 0,
                max: 262_144,
                stats: [("drop", 0), ("invalid", 0)].into_iter().collect(),
            });
            let veth = IfaceCounters {
                stats: [
                    ("multicast", 0),
                    ("rx_bytes", 516),
                    ("rx_dropped", 0),
                    ("rx_packets", 6),
                    ("tx_bytes", 516),
                    ("tx_packets", 6),
                ]
                .into_iter()
                .collect(),
                qdisc: Some(QdiscCounters {
                    kind: "noqueue".to_owned(),
                    ..QdiscCounters::default()
                }),
                ..IfaceCounters::default()
            };
            counters.interfaces.insert("trcc-b".to_owned(), veth);
            counters
        };
        // 0xF000_0000 is a whole number of quiet rounds: `base + k` reads in second k % 10 of
        // the slow round and k of the quiet one; `idle`'s two differ (3 and 43).
        let base = 0xF000_0000u32;
        assert_eq!(base % 60, 0);
        let (idle, snmp, conntrack, dropped, qdisc, count) =
            (base + 43, base + 4, base + 5, base + 6, base + 7, base + 8);
        let known = vec![HOST, idle, snmp, conntrack, dropped, qdisc, count];
        let first = |inode: u32| {
            let mut counters = pristine(inode);
            match inode {
                i if i == snmp => {
                    counters
                        .snmp
                        .get_mut("TcpExt")
                        .unwrap()
                        .extend([("TCPTimeouts".to_owned(), 1)]);
                }
                i if i == conntrack => {
                    let stats = [("drop", 0), ("invalid", 3)].into_iter().collect();
                    counters.conntrack.as_mut().unwrap().stats = stats;
                }
                i if i == dropped => {
                    let veth = counters.interfaces.get_mut("trcc-b").unwrap();
                    veth.stats.extend([("rx_dropped".to_owned(), 2)]);
                }
                i if i == qdisc => {
                    let veth = counters.interfaces.get_mut("trcc-b").unwrap();
                    veth.qdisc.as_mut().unwrap().drops = 1;
                }
                i if i == count => counters.conntrack.as_mut().unwrap().count = 1,
                _ => {}
            }
            counters
        };
        assert!(never_active(&pristine(idle)));
        let mut host = pristine(HOST);
        host.is_host = true;
        assert!(!never_active(&host));
        let mut schedule = Schedule::default();
        let mut reads: HashMap<u32, Vec<u64>> = HashMap::new();
        for second in 0..50u64 {
            let due = schedule.due(second * 1000, &known, Some(HOST), &hot(&[]));
            for inode in &due {
                reads.entry(*inode).or_default().push(second);
            }
            let fresh = due.iter().map(|i| (*i, first(*i))).collect();
            let sample = schedule.assemble(second * 1000, &known, fresh);
            // The first reading is carried as read: deltas stay exact.
            let carried = sample.iter().find(|c| c.inode == idle).unwrap();
            assert_eq!(**carried, pristine(idle), "second {second}");
        }
        // Read at start, then in its second of the quiet round (43), not of the slow round (3:
        // before this change, [0, 3, 43]).
        assert_eq!(reads[&idle], vec![0, 43]);
        assert_eq!(schedule.round_s(idle, 50_000), QUIET_ROUND_S);
        // Each of the others read at start, then in its second of the slow round (their equal
        // readings make them quiet only then, and their next quiet second is a minute on).
        for inode in [snmp, conntrack, dropped, qdisc, count] {
            let slow = u64::from(inode) % SLOW_ROUND_S;
            assert_eq!(reads[&inode], vec![0, slow], "{inode:#x}");
            assert_eq!(schedule.round_s(inode, 50_000), QUIET_ROUND_S, "{inode:#x}");
        }
    }

    /// What a namespace's `Tcp RetransSegs` really is at `second` (it rises every second; never
    /// 0, so no reading here is one where nothing happened, see [`never_active`]).
    fn truth(inode: u32, second: u64) -> i64 {
        i64::from(inode % 97) * 1000 + 1 + (second * second) as i64
    }

    fn reading(inode: u32, second: u64) -> NetnsCounters {
        let mut counters = NetnsCounters {
            inode,
            label: format!("ns {inode}"),
            is_host: inode == HOST,
            ..NetnsCounters::default()
        };
        let values = [("RetransSegs".to_owned(), truth(inode, second))];
        counters
            .snmp
            .insert("Tcp".to_owned(), values.into_iter().collect());
        counters
    }

    fn fresh_all(due: &BTreeSet<u32>, second: u64) -> HashMap<u32, NetnsCounters> {
        due.iter().map(|i| (*i, reading(*i, second))).collect()
    }

    fn sample_of(netns: Vec<Shared<NetnsCounters>>, second: u64) -> CounterSample {
        CounterSample {
            at_ms: second * 1000,
            netns,
            ..CounterSample::default()
        }
    }

    /// A window whose ends are full samples reports exactly what every namespace's counters
    /// did over it, though most namespaces were on the slow round in between; and the deltas
    /// of its consecutive samples add up to the same (nothing lost, nothing counted twice).
    #[test]
    fn window_deltas_are_exact_across_the_slow_round() {
        let known: Vec<u32> = std::iter::once(HOST)
            .chain(0xF000_0000..0xF000_0020)
            .collect();
        let mut schedule = Schedule::default();
        let mut samples = Vec::new();
        for second in 0..=23u64 {
            let plan = if second == 0 || second == 23 {
                SamplePlan::full()
            } else if second == 7 {
                hot(&[0xF000_0005])
            } else {
                hot(&[])
            };
            let due = schedule.due(second * 1000, &known, Some(HOST), &plan);
            if (1..23).contains(&second) {
                assert!(
                    due.len() < known.len() / 2,
                    "second {second}: {}",
                    due.len()
                );
            }
            let netns = schedule.assemble(second * 1000, &known, fresh_all(&due, second));
            assert_eq!(netns.len(), known.len());
            samples.push(sample_of(netns, second));
        }
        let (first, last) = (&samples[0], &samples[23]);
        let signals = counter_signals(first, last);
        let expected: u64 = known
            .iter()
            .map(|i| (truth(*i, 23) - truth(*i, 0)) as u64)
            .sum();
        assert_eq!(signals.retrans_segs, expected);
        let stepwise: u64 = samples
            .windows(2)
            .map(|w| counter_signals(&w[0], &w[1]).retrans_segs)
            .sum();
        assert_eq!(stepwise, expected);
        // Mid-window, a namespace on the slow round carries its last real reading.
        let idle = 0xF000_0003; // read at seconds 0, 3 and 13 (its slow-round second is 3)
        let at_12 = samples[12].netns(idle).unwrap().get("Tcp", "RetransSegs");
        assert_eq!(at_12, truth(idle, 3));
    }
}
