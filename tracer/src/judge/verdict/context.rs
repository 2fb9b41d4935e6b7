//! What every rule reads besides the window itself, computed once per window: counter signals,
//! probe loss, flow signals, firing rules, bad routes, NET_RX per CPU. Computes; never blames a
//! layer (the rules do).

use std::collections::BTreeMap;

use crate::judge::layers::Layer;

use super::{
    counters::{counter_signals_with, CounterSignals, SignalsMemo},
    facts::{
        bad_routes, firing_rule_covers, firing_rules, route_drops, rule_drops, RouteDrops,
        RuleDrops,
    },
    flow_signals::{flow_signals, FailedConnects, FlowSignals},
    loss::{counter_loss, probe_loss, unplaced_drops, UnplacedDrops},
    LayerScore, NoiseSummary, WindowEvidence, MIN_LOSS, SATURATED_SHARE,
};

/// The window and what was computed from it for the rules.
pub(super) struct Context<'a> {
    pub w: &'a WindowEvidence,
    /// The window's length, at least 1 ms.
    pub seconds: f64,
    pub signals: CounterSignals,
    /// Packets lost per layer by the counters alone.
    pub counters: BTreeMap<Layer, u64>,
    /// Packets lost per layer by the probes' drops, and the drops as signals.
    pub probe: BTreeMap<Layer, u64>,
    pub probe_signals: BTreeMap<Layer, Vec<String>>,
    pub noise: NoiseSummary,
    /// Drops neither their reason nor their site places in a layer, the most first. Fewer than
    /// [`MIN_LOSS`] in all are counted in `noise` as well.
    pub unplaced: Vec<UnplacedDrops>,
    /// Packets that reached ports nobody listens on (NO_SOCKET).
    pub no_listener: u64,
    /// Retransmitted segments and SYN-ACK retransmits traced.
    pub retrans_segments: u64,
    pub flows: FlowSignals,
    /// Drop/reject rules whose counters rose, with the rise, most first.
    pub rules: Vec<(u64, String)>,
    /// Blackhole/unreachable/prohibit routes at the window's end.
    pub routes: Vec<String>,
    /// Drops at route-discard sites per namespace, with that namespace's routes that explain
    /// them, the most first.
    pub route_drops: Vec<RouteDrops>,
    /// Netfilter/policy drops per namespace, with that namespace's rules that rose.
    pub rule_drops: Vec<RuleDrops>,
    pub net_rx: NetRx,
}

/// NET_RX softirq time per CPU: the busiest CPU against the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct NetRx {
    pub hot_cpu: u32,
    pub hot_ns: u64,
    /// The busiest CPU's NET_RX time as a share of the window.
    pub hot_share: f64,
    /// The other CPUs' mean NET_RX time (ns).
    pub others_mean: f64,
    /// The busiest CPU did at least 4 times the others' mean.
    pub imbalanced: bool,
    /// The busiest CPU spent at least [`SATURATED_SHARE`] of the window in NET_RX.
    pub saturated: bool,
}

impl NetRx {
    fn of(by_cpu: &BTreeMap<u32, u64>, seconds: f64) -> Self {
        let window_ns = seconds * 1e9;
        let (hot_cpu, hot_ns) = by_cpu
            .iter()
            .max_by_key(|(_, ns)| **ns)
            .map_or((0, 0), |(c, n)| (*c, *n));
        let hot_share = hot_ns as f64 / window_ns;
        let others_ns: u64 = by_cpu.values().sum::<u64>() - hot_ns;
        let others_mean = if by_cpu.len() > 1 {
            others_ns as f64 / (by_cpu.len() - 1) as f64
        } else {
            0.0
        };
        NetRx {
            hot_cpu,
            hot_ns,
            hot_share,
            others_mean,
            imbalanced: by_cpu.len() > 1 && hot_ns as f64 >= 4.0 * others_mean.max(1.0),
            saturated: hot_share >= SATURATED_SHARE,
        }
    }
}

impl<'a> Context<'a> {
    #[cfg(test)]
    pub fn new(w: &'a WindowEvidence) -> Self {
        Context::new_with(w, None)
    }

    /// [`Context::new`], the counter signals through `memo` (see [`SignalsMemo`]).
    pub fn new_with(w: &'a WindowEvidence, memo: Option<&SignalsMemo>) -> Self {
        let seconds = w.observed.window.duration_s.max(0.001);
        let signals = counter_signals_with(&w.counters_start, &w.counters_end, memo);
        let counters = counter_loss(&signals);
        let (probe, probe_signals, mut noise, no_listener) = probe_loss(&w.observed);
        let unplaced = unplaced_drops(&w.observed);
        if unplaced.iter().map(|u| u.count).sum::<u64>() < MIN_LOSS {
            for u in &unplaced {
                noise.total += u.count;
                *noise
                    .by_kind
                    .entry(format!("too few to place: {}", u.reason))
                    .or_insert(0) += u.count;
            }
        }
        Context {
            w,
            seconds,
            signals,
            counters,
            probe,
            probe_signals,
            noise,
            unplaced,
            no_listener,
            retrans_segments: w.observed.retransmits.segments_total
                + w.observed.retransmits.synack_total,
            flows: flow_signals(&w.observed, &w.facts_end),
            rules: firing_rules(&w.facts_start, &w.facts_end),
            routes: bad_routes(&w.facts_end),
            route_drops: route_drops(&w.observed, &w.facts_end),
            rule_drops: rule_drops(&w.observed, &w.facts_start, &w.facts_end),
            net_rx: NetRx::of(&w.observed.net_rx_ns_by_cpu(), seconds),
        }
    }

    /// The layer that explains connects failing to one destination, if one does: a bad route
    /// covering it (routing), a drop/reject rule that fired and matches it (netfilter), or a
    /// listen queue that overflowed on the node it lives on (TCP stack). Refusals are the
    /// application's; anything else is not explained by a layer of this node.
    pub fn failure_layer(&self, f: &FailedConnects) -> Option<Layer> {
        if f.refused {
            None
        } else if f.routed {
            Some(Layer::Routing)
        } else if firing_rule_covers(&self.w.facts_start, &self.w.facts_end, f.addr, f.dport) {
            Some(Layer::IptablesNetpolicy)
        } else if f.on_node
            && !self.signals.listen.is_empty()
            && self.counters.get(&Layer::TcpStack).copied().unwrap_or(0) >= MIN_LOSS
        {
            Some(Layer::TcpStack)
        } else {
            None
        }
    }

    /// For people: the namespace with this inode (`netns NAME`, `pid PID (COMM)`, `host`, the
    /// pod), as the counters or facts name it, else its inode.
    pub fn netns_label(&self, inode: u32, pod: Option<&str>) -> String {
        if let Some(pod) = pod {
            return format!("pod {pod}");
        }
        self.w
            .counters_end
            .netns(inode)
            .map(|n| n.label.clone())
            .or_else(|| {
                self.w
                    .facts_end
                    .routes
                    .iter()
                    .find(|r| r.netns == inode)
                    .map(|r| r.netns_label.clone())
            })
            .unwrap_or_else(|| format!("netns {inode}"))
    }

    /// A local layer's score before its rule adds its counters: the larger of the probes' and
    /// the counters' loss (they often see the same packets: never the sum), the probes' drops
    /// as signals.
    pub fn local_score(&self, layer: Layer) -> LayerScore {
        let p = self.probe.get(&layer).copied().unwrap_or(0);
        let c = self.counters.get(&layer).copied().unwrap_or(0);
        LayerScore {
            lost_packets: p.max(c),
            signals: self.probe_signals.get(&layer).cloned().unwrap_or_default(),
        }
    }
}
