//! The node facts the rules read: drop/reject rules whose counters rose in the window, bad
//! (blackhole/unreachable/prohibit) routes, host sysctls. Reads; does not decide.

use crate::node::evidence::NodeFacts;

use super::change::delta;

/// Blackhole/unreachable/prohibit routes, and namespaces without a default route that route
/// elsewhere (a missing route).
pub(super) fn bad_routes(facts: &NodeFacts) -> Vec<String> {
    facts
        .routes
        .iter()
        .filter(|r| matches!(r.kind.as_str(), "blackhole" | "unreachable" | "prohibit"))
        .map(|r| {
            format!(
                "{} {} {} (table {}) in {}",
                r.family, r.kind, r.dst, r.table, r.netns_label
            )
        })
        .collect()
}

/// Drop/reject rules whose counters rose in the window, with the rise.
pub(super) fn firing_rules(start: &NodeFacts, end: &NodeFacts) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = end
        .firewall_rules
        .iter()
        .filter_map(|r| {
            let after = r.packets?;
            let before = start
                .firewall_rules
                .iter()
                .find(|s| {
                    s.netns == r.netns
                        && s.table == r.table
                        && s.chain == r.chain
                        && s.rule == r.rule
                })
                .and_then(|s| s.packets)
                .unwrap_or(0);
            let d = delta(before, after);
            (d > 0).then(|| {
                (
                    d,
                    format!(
                        "{} [{}] {} chain {}{}: `{}` {} (+{d} packets)",
                        r.source,
                        r.netns_label,
                        r.table,
                        r.chain,
                        r.hook
                            .as_deref()
                            .map(|h| format!(" (hook {h})"))
                            .unwrap_or_default(),
                        r.rule,
                        r.verdict
                    ),
                )
            })
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    out
}

pub(super) fn host_sysctl<'a>(facts: &'a NodeFacts, name: &str) -> &'a str {
    facts.sysctls.get(name).map_or("unknown", String::as_str)
}
