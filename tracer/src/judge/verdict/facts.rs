//! The node facts the rules read: drop/reject rules whose counters rose in the window, bad
//! (blackhole/unreachable/prohibit) routes, host sysctls. Reads; does not decide.

use std::net::IpAddr;

use crate::{
    judge::layers::{classify, is_route_discard, location_function, DropClass, Layer},
    judge::report::Report,
    node::evidence::{FirewallRule, NodeFacts, RouteFact},
};

use super::{change::delta, flow_signals::route_covers};

/// Blackhole/unreachable/prohibit routes, and namespaces without a default route that route
/// elsewhere (a missing route).
pub(super) fn bad_routes(facts: &NodeFacts) -> Vec<String> {
    facts
        .routes
        .iter()
        .filter(|r| discards(r))
        .map(|r| {
            format!(
                "{} {} {} (table {}) in {}",
                r.family, r.kind, r.dst, r.table, r.netns_label
            )
        })
        .collect()
}

fn discards(r: &RouteFact) -> bool {
    matches!(r.kind.as_str(), "blackhole" | "unreachable" | "prohibit")
}

/// Drops at a route-discard site (`ip_error`, `dst_discard*`, `ip6_pkt_discard*`,
/// `ip6_pkt_prohibit*`, `ip6_pkt_drop`) in one namespace, tied to that namespace's routes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RouteDrops {
    pub inode: u32,
    pub pod: Option<String>,
    pub location: String,
    pub count: u64,
    /// The namespace's blackhole/unreachable/prohibit routes of the site's family
    /// (`ipv6 blackhole 2001:2::2/128 (table 254)`).
    pub routes: Vec<String>,
    /// Families (of the site's) for which the namespace has no default route, when it holds no
    /// route that discards: a missing route.
    pub no_default: Vec<&'static str>,
}

/// The address family a drop site serves, when its name says (`ip6_*` / `ipv6_*`: IPv6;
/// `ip_*`: IPv4); `dst_discard*` serves both.
fn site_families(function: &str) -> &'static [&'static str] {
    if function.starts_with("ip6") || function.starts_with("ipv6") {
        &["ipv6"]
    } else if function.starts_with("ip_") {
        &["ipv4"]
    } else {
        &["ipv4", "ipv6"]
    }
}

/// Every route-discard drop site of the window per namespace, with the routes that explain it.
/// A namespace whose routes were not read is left out (nothing to tie to).
pub(super) fn route_drops(observed: &Report, facts: &NodeFacts) -> Vec<RouteDrops> {
    let mut out = Vec::new();
    for reason in &observed.drops.by_reason {
        for location in reason
            .locations
            .iter()
            .filter(|l| is_route_discard(&l.location))
        {
            let families = site_families(location_function(&location.location));
            for ns in &reason.netns {
                let own: Vec<&RouteFact> = facts
                    .routes
                    .iter()
                    .filter(|r| r.netns == ns.inode)
                    .collect();
                if own.is_empty() {
                    continue;
                }
                let routes: Vec<String> = own
                    .iter()
                    .filter(|r| discards(r) && families.contains(&r.family.as_str()))
                    .map(|r| format!("{} {} {} (table {})", r.family, r.kind, r.dst, r.table))
                    .collect();
                let no_default = if routes.is_empty() {
                    families
                        .iter()
                        .copied()
                        .filter(|f| {
                            !own.iter()
                                .any(|r| r.family == *f && r.dst == "default" && !discards(r))
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                out.push(RouteDrops {
                    inode: ns.inode,
                    pod: ns.pod.clone(),
                    location: location.location.clone(),
                    count: location.count.min(ns.count),
                    routes,
                    no_default,
                });
            }
        }
    }
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.location.cmp(&b.location)));
    out
}

/// How much a rule's packet counter rose in the window (None: no counter at the end).
fn rise(start: &NodeFacts, r: &FirewallRule) -> Option<u64> {
    let after = r.packets?;
    let before = start
        .firewall_rules
        .iter()
        .find(|s| {
            s.netns == r.netns && s.table == r.table && s.chain == r.chain && s.rule == r.rule
        })
        .and_then(|s| s.packets)
        .unwrap_or(0);
    Some(delta(before, after))
}

/// Whether a drop/reject rule that fired in the window can be what stopped TCP connects to
/// `addr:dport`: read from the rule's text (`--dport`/`dport` ports and ranges, `-d`/`daddr`
/// prefixes, `!`/`!=` negations, `udp`/`icmp`-only rules, `invalid`-state rules). A rule it
/// cannot read a restriction from covers every destination.
pub(super) fn firing_rule_covers(
    start: &NodeFacts,
    end: &NodeFacts,
    addr: IpAddr,
    dport: u16,
) -> bool {
    end.firewall_rules
        .iter()
        .filter(|r| rise(start, r).is_some_and(|d| d > 0))
        .any(|r| rule_covers(&r.rule, addr, dport))
}

fn rule_covers(rule: &str, addr: IpAddr, dport: u16) -> bool {
    let tokens: Vec<&str> = rule
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '{' | '}'))
        .filter(|t| !t.is_empty())
        .collect();
    let has = |name: &str| tokens.iter().any(|t| t.eq_ignore_ascii_case(name));
    if !has("tcp") && (has("udp") || has("icmp") || has("icmpv6")) {
        return false;
    }
    if tokens
        .iter()
        .any(|t| t.eq_ignore_ascii_case("invalid") || t.contains("INVALID"))
    {
        return false;
    }
    let mut ports: Vec<(bool, u16, u16)> = Vec::new();
    let mut prefixes: Vec<(bool, &str)> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let negated = |at: usize| {
            // `! --dport 53` (iptables) or `dport != 53` (nft).
            (at >= 1 && tokens[at - 1] == "!")
                || tokens.get(i + 1).is_some_and(|n| *n == "!=" || *n == "!")
        };
        match *t {
            "dport" | "--dport" | "--dports" | "--destination-port" => {
                let neg = negated(i);
                for v in tokens[i + 1..]
                    .iter()
                    .skip_while(|v| matches!(**v, "!=" | "!" | "=="))
                    .take_while(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
                {
                    let (lo, hi) = v.split_once(['-', ':']).unwrap_or((v, v));
                    if let (Ok(lo), Ok(hi)) = (lo.parse(), hi.parse()) {
                        ports.push((neg, lo, hi));
                    }
                }
            }
            "daddr" | "-d" | "--destination" | "--dst" => {
                let neg = negated(i);
                if let Some(v) = tokens[i + 1..]
                    .iter()
                    .find(|v| !matches!(**v, "!=" | "!" | "=="))
                {
                    prefixes.push((neg, v));
                }
            }
            _ => {}
        }
    }
    let port_ok = ports.is_empty()
        || ports
            .iter()
            .any(|(neg, lo, hi)| (*lo..=*hi).contains(&dport) != *neg);
    let addr_ok = prefixes.is_empty()
        || prefixes
            .iter()
            .any(|(neg, p)| route_covers(p, addr) != *neg);
    port_ok && addr_ok
}

/// Netfilter/policy drops at one site in one namespace, tied to the drop/reject rules of that
/// namespace whose counters rose in the window (`` `rule` (chain forward) +N ``), most first.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RuleDrops {
    pub inode: u32,
    pub pod: Option<String>,
    pub location: String,
    pub count: u64,
    pub rules: Vec<String>,
}

/// Every netfilter drop site of the window per namespace, with the rules that rose there.
pub(super) fn rule_drops(observed: &Report, start: &NodeFacts, end: &NodeFacts) -> Vec<RuleDrops> {
    let mut out = Vec::new();
    for reason in &observed.drops.by_reason {
        for location in reason.locations.iter().filter(|l| {
            matches!(
                classify(&reason.reason, &l.location),
                DropClass::Loss {
                    layer: Layer::IptablesNetpolicy,
                    ..
                }
            )
        }) {
            for ns in &reason.netns {
                let mut rules: Vec<(u64, String)> = end
                    .firewall_rules
                    .iter()
                    .filter(|r| r.netns == ns.inode)
                    .filter_map(|r| {
                        let d = rise(start, r).filter(|d| *d > 0)?;
                        Some((d, format!("`{}` (chain {}) +{d}", r.rule, r.chain)))
                    })
                    .collect();
                if rules.is_empty() {
                    continue;
                }
                rules.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
                out.push(RuleDrops {
                    inode: ns.inode,
                    pod: ns.pod.clone(),
                    location: location.location.clone(),
                    count: location.count.min(ns.count),
                    rules: rules.into_iter().map(|(_, t)| t).collect(),
                });
            }
        }
    }
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.location.cmp(&b.location)));
    out
}

/// Drop/reject rules whose counters rose in the window, with the rise.
pub(super) fn firing_rules(start: &NodeFacts, end: &NodeFacts) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = end
        .firewall_rules
        .iter()
        .filter_map(|r| {
            let d = rise(start, r)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_covers_the_connects_its_text_matches() {
        let a: IpAddr = "198.18.0.2".parse().expect("addr");
        let covers = |rule| rule_covers(rule, a, 8080);
        assert!(!covers("-p udp -m udp --dport 53 -j DROP"));
        assert!(!covers("udp dport 53 drop"));
        assert!(covers("-p tcp -m tcp --dport 8080 -j DROP"));
        assert!(covers("tcp dport { 80, 8000-8090 } drop"));
        assert!(!covers("tcp dport 443 drop"));
        assert!(covers("tcp dport != 443 drop"));
        assert!(covers("ip daddr 198.18.0.0/24 counter"));
        assert!(!covers("ip daddr 198.18.5.0/24 counter"));
        assert!(!covers("-d 198.18.5.0/24 -j REJECT"));
        assert!(!covers("ct state invalid drop"));
        assert!(!covers("-m conntrack --ctstate INVALID -j DROP"));
        assert!(covers("-j DROP"));
    }
}
