//! How one counter moved between two samples: rises, 32-bit wraps, resets and implausible
//! jumps, and the named change the evidence shows. Pure arithmetic on two numbers; it does not
//! know which counters exist or what they mean.

/// The largest rise of one counter between two samples that is believed: 2^40 (10^12 packets,
/// 3 hours at 100 Mpps). A larger one is a broken or re-based counter, counted as 0 and noted.
pub const MAX_PLAUSIBLE_CHANGE: u64 = 1 << 40;
/// How near 2^32 a counter must have been, and how near 0 it must be now, for a fall to be read
/// as a 32-bit counter wrapping (see [`CounterChange::of`]).
pub const WRAP32_MARGIN: u64 = 1 << 24;

/// How a counter moved between two samples.
///
/// The decision on falls: the kernel's counters are 64-bit, but some drivers feed 32-bit
/// hardware registers into `/proc/net/dev`, sysfs or `ethtool -S`. A fall from within
/// [`WRAP32_MARGIN`] (16 Mi) below 2^32 to below [`WRAP32_MARGIN`] is read as such a register
/// wrapping (4294967290 → 5 is +11): a reset from that close to 2^32 is far less likely than a
/// wrap there, and the error when it was a reset is under 2 × 16 Mi. Any other fall is a reset
/// (driver reload, interface or namespace recreated) and is not counted: the rise after the
/// reset cannot be told from the rise before it. Either way the caller says so (see
/// [`counter_breaks`]); nothing is silently read as 0 or as a huge number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterChange {
    /// Rose by this much (0: flat).
    Rose(u64),
    /// A 32-bit counter wrapped past 2^32 and rose by this much in all.
    Wrapped32(u64),
    /// Went backwards: reset. Not counted.
    WentBack,
    /// Rose by more than [`MAX_PLAUSIBLE_CHANGE`]: not believed, not counted.
    Implausible(u64),
}

impl CounterChange {
    /// Classifies the move from `start` to `end`.
    pub fn of(start: u64, end: u64) -> Self {
        let top = u64::from(u32::MAX);
        if let Some(rise) = end.checked_sub(start) {
            if rise > MAX_PLAUSIBLE_CHANGE {
                CounterChange::Implausible(rise)
            } else {
                CounterChange::Rose(rise)
            }
        } else if start <= top && start > top - WRAP32_MARGIN && end < WRAP32_MARGIN {
            // top - start < WRAP32_MARGIN and end < WRAP32_MARGIN: no overflow.
            CounterChange::Wrapped32(top - start + end + 1)
        } else {
            CounterChange::WentBack
        }
    }

    /// The rise that counts: 0 for a reset or an implausible jump.
    pub fn counted(self) -> u64 {
        match self {
            CounterChange::Rose(d) | CounterChange::Wrapped32(d) => d,
            CounterChange::WentBack | CounterChange::Implausible(_) => 0,
        }
    }

    /// One counter's move in a note (`tx_packets 3006 → 23`, `rx_errors 4294967290 → 5 (+11)`),
    /// and what the kind of move means, None for a plain rise.
    pub(super) fn describe(
        self,
        name: &str,
        start: u64,
        end: u64,
    ) -> Option<(u8, String, &'static str)> {
        match self {
            CounterChange::Rose(_) => None,
            CounterChange::WentBack => Some((
                0,
                format!("{name} {start} → {end}"),
                "went back (reset: driver reload, interface or namespace recreated); not counted",
            )),
            CounterChange::Wrapped32(d) => Some((
                1,
                format!("{name} {start} → {end} (+{d})"),
                "read as a 32-bit counter wrapping",
            )),
            CounterChange::Implausible(_) => Some((
                2,
                format!("{name} {start} → {end}"),
                "jumped beyond 2^40, not believed; not counted",
            )),
        }
    }
}

/// Change of a counter between two samples as counted: 0 when it went backwards (reset) or
/// jumped implausibly, the wrapped rise of a 32-bit counter (see [`CounterChange`]).
pub(super) fn delta(start: u64, end: u64) -> u64 {
    CounterChange::of(start, end).counted()
}

/// The same for the signed SNMP counters: negative values are gauges (`Tcp MaxConn` -1), whose
/// falls count 0 and rises are capped like any other.
pub(super) fn delta_i(start: i64, end: i64) -> u64 {
    match (u64::try_from(start), u64::try_from(end)) {
        (Ok(a), Ok(b)) => delta(a, b),
        _ => u64::try_from(end.saturating_sub(start))
            .ok()
            .filter(|d| *d <= MAX_PLAUSIBLE_CHANGE)
            .unwrap_or(0),
    }
}

/// A named counter change with where it happened, for evidence text.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterDelta {
    pub name: String,
    pub place: String,
    pub start: u64,
    pub end: u64,
}

impl CounterDelta {
    pub fn delta(&self) -> u64 {
        delta(self.start, self.end)
    }
    pub(super) fn text(&self) -> String {
        let how = match CounterChange::of(self.start, self.end) {
            CounterChange::Wrapped32(_) => ", wrapped at 2^32",
            _ => "",
        };
        format!(
            "{} {}: {} → {} (+{}{how})",
            self.place,
            self.name,
            self.start,
            self.end,
            self.delta()
        )
    }
}
