//! Packets lost per layer: by the probes' drops (with noise apart), by the counters, and both
//! for one interval (`Tick`). Counts only; what the counts mean is the rules' business.

use std::collections::BTreeMap;

use crate::{
    judge::layers::{classify, DropClass, Layer},
    judge::report::Report,
    node::evidence::CounterSample,
};

use super::{
    change::CounterDelta,
    counters::{counter_signals, CounterSignals},
    NoiseSummary, Tick,
};

fn sum(deltas: &[CounterDelta]) -> u64 {
    deltas
        .iter()
        .map(CounterDelta::delta)
        .fold(0, u64::saturating_add)
}

/// Listen-queue loss: ListenDrops includes ListenOverflows; take the larger per namespace.
fn listen_loss(deltas: &[CounterDelta]) -> u64 {
    let mut by_place: BTreeMap<&str, u64> = BTreeMap::new();
    for d in deltas {
        let e = by_place.entry(d.place.as_str()).or_insert(0);
        *e = (*e).max(d.delta());
    }
    by_place.values().sum()
}

/// Packets lost per layer according to the counters alone.
pub fn counter_loss(s: &CounterSignals) -> BTreeMap<Layer, u64> {
    let mut loss = BTreeMap::new();
    loss.insert(
        Layer::NicDriver,
        sum(&s.nic_errors) + sum(&s.crc_errors) + sum(&s.allowance_exceeded) + sum(&s.qdisc_drops),
    );
    loss.insert(Layer::IrqCpu, s.softnet_dropped);
    loss.insert(Layer::TcpStack, listen_loss(&s.listen) + sum(&s.tcp_other));
    loss.insert(Layer::IptablesNetpolicy, sum(&s.conntrack_drops));
    loss.insert(Layer::Routing, sum(&s.routing) + sum(&s.mtu));
    loss
}

/// Packets lost per layer in one interval, from the probes' drops in it and the counters.
pub fn tick_loss(
    at_ms: u64,
    probe_drops: &BTreeMap<Layer, u64>,
    counters_start: &CounterSample,
    counters_end: &CounterSample,
    retrans_segments: u64,
) -> Tick {
    let signals = counter_signals(counters_start, counters_end);
    tick_loss_of(
        at_ms,
        probe_drops,
        &counter_loss(&signals),
        signals.dsack_segs,
        retrans_segments,
    )
}

/// [`tick_loss`] from the interval's counter loss ([`counter_loss`]) and DSACKed segments,
/// computed already.
pub fn tick_loss_of(
    at_ms: u64,
    probe_drops: &BTreeMap<Layer, u64>,
    counters: &BTreeMap<Layer, u64>,
    dsack_segs: u64,
    retrans_segments: u64,
) -> Tick {
    let retrans_segments = retrans_segments.saturating_sub(dsack_segs);
    let mut loss = BTreeMap::new();
    for layer in Layer::ALL {
        let p = probe_drops.get(&layer).copied().unwrap_or(0);
        let c = counters.get(&layer).copied().unwrap_or(0);
        if layer == Layer::Upstream {
            continue;
        }
        loss.insert(layer, p.max(c));
    }
    let local: u64 = loss.values().sum();
    loss.insert(Layer::Upstream, retrans_segments.saturating_sub(local));
    Tick { at_ms, loss }
}

/// Drops of the window by layer (probe evidence), with the noise apart.
pub fn probe_loss(
    observed: &Report,
) -> (
    BTreeMap<Layer, u64>,
    BTreeMap<Layer, Vec<String>>,
    NoiseSummary,
    u64,
) {
    let mut loss: BTreeMap<Layer, u64> = BTreeMap::new();
    let mut signals: BTreeMap<Layer, Vec<String>> = BTreeMap::new();
    let mut noise = NoiseSummary::default();
    let mut no_listener = 0;
    for reason in &observed.drops.by_reason {
        for location in &reason.locations {
            match classify(&reason.reason, &location.location) {
                DropClass::Loss { layer, tag } => {
                    *loss.entry(layer).or_insert(0) += location.count;
                    signals.entry(layer).or_default().push(format!(
                        "{} {} drops at {} ({tag})",
                        location.count, reason.reason, location.location
                    ));
                }
                DropClass::Noise { tag } => {
                    noise.total += location.count;
                    *noise
                        .by_kind
                        .entry(format!("{tag}: {}", reason.reason))
                        .or_insert(0) += location.count;
                }
                DropClass::NoListener => no_listener += location.count,
                DropClass::Other { tag } => {
                    noise.total += location.count;
                    *noise
                        .by_kind
                        .entry(format!("{tag}: {}", reason.reason))
                        .or_insert(0) += location.count;
                }
                // Neither loss of a layer nor noise: see `unplaced_drops`.
                DropClass::Unplaced => {}
            }
        }
    }
    (loss, signals, noise, no_listener)
}

/// Drops at one site that neither their reason nor their location places in a layer.
#[derive(Debug, Clone, PartialEq)]
pub struct UnplacedDrops {
    pub reason: String,
    /// Symbolised location (`dst_discard_out+0x14`).
    pub location: String,
    pub count: u64,
    /// Namespaces of the drops with this reason, the most first (inode, pod).
    pub netns: Vec<(u32, Option<String>)>,
}

/// The window's drops that no layer takes (class [`DropClass::Unplaced`]), the most first.
pub fn unplaced_drops(observed: &Report) -> Vec<UnplacedDrops> {
    let mut out = Vec::new();
    for reason in &observed.drops.by_reason {
        for location in &reason.locations {
            if classify(&reason.reason, &location.location) == DropClass::Unplaced {
                out.push(UnplacedDrops {
                    reason: reason.reason.clone(),
                    location: location.location.clone(),
                    count: location.count,
                    netns: reason
                        .netns
                        .iter()
                        .map(|n| (n.inode, n.pod.clone()))
                        .collect(),
                });
            }
        }
    }
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.location.cmp(&b.location)));
    out
}
