//! Routes of the calling thread's network namespace over rtnetlink: RTM_GETLINK and RTM_GETROUTE
//! dumps only. It must never send a request that changes anything (no NEW/DEL/SET messages).

use std::collections::BTreeMap;

use netlink_packet_route::{
    link::{LinkAttribute, LinkMessage},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteVia},
    AddressFamily, RouteNetlinkMessage,
};

use crate::{
    node::evidence::RouteFact,
    node::rtnetlink::{Dumped, Dumper},
};

/// Routes of the local table (255) are left out unless they drop.
const RT_TABLE_LOCAL: u32 = 255;

/// The `ip route` name of an `rtm_type`.
fn kind_name(kind: u8) -> String {
    match kind {
        0 => "unspec".to_owned(),
        1 => "unicast".to_owned(),
        2 => "local".to_owned(),
        3 => "broadcast".to_owned(),
        4 => "anycast".to_owned(),
        5 => "multicast".to_owned(),
        6 => "blackhole".to_owned(),
        7 => "unreachable".to_owned(),
        8 => "prohibit".to_owned(),
        9 => "throw".to_owned(),
        10 => "nat".to_owned(),
        11 => "xresolve".to_owned(),
        other => format!("type {other}"),
    }
}

fn address(addr: &RouteAddress) -> Option<String> {
    match addr {
        RouteAddress::Inet(a) => Some(a.to_string()),
        RouteAddress::Inet6(a) => Some(a.to_string()),
        _ => None,
    }
}

fn gateway_of(attrs: &[RouteAttribute]) -> Option<String> {
    attrs.iter().find_map(|a| match a {
        RouteAttribute::Gateway(g) => address(g),
        RouteAttribute::Via(RouteVia::Inet(a)) => Some(a.to_string()),
        RouteAttribute::Via(RouteVia::Inet6(a)) => Some(a.to_string()),
        _ => None,
    })
}

/// The facts of one route message (one per next hop of a multipath route); empty when the route
/// is of the local table and does not drop, or of another family.
fn facts_of(
    msg: &RouteMessage,
    links: &BTreeMap<u32, String>,
    netns: u32,
    label: &str,
) -> Vec<RouteFact> {
    let family = match msg.header.address_family {
        AddressFamily::Inet => "ipv4",
        AddressFamily::Inet6 => "ipv6",
        _ => return Vec::new(),
    };
    let kind = kind_name(u8::from(msg.header.kind));
    let table = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table));
    let drops = matches!(kind.as_str(), "blackhole" | "unreachable" | "prohibit");
    if table == RT_TABLE_LOCAL && !drops {
        return Vec::new();
    }
    let len = msg.header.destination_prefix_length;
    let dst = if len == 0 {
        "default".to_owned()
    } else {
        let addr = msg
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Destination(d) => address(d),
                _ => None,
            })
            .unwrap_or_else(|| if family == "ipv4" { "0.0.0.0" } else { "::" }.to_owned());
        format!("{addr}/{len}")
    };
    let dev_name = |index: u32| {
        links
            .get(&index)
            .cloned()
            .unwrap_or_else(|| format!("if{index}"))
    };
    let fact = |dev: Option<String>, gateway: Option<String>| RouteFact {
        netns,
        netns_label: label.to_owned(),
        family: family.to_owned(),
        dst: dst.clone(),
        kind: kind.clone(),
        table,
        dev,
        gateway,
    };
    let hops = msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::MultiPath(hops) if !hops.is_empty() => Some(hops),
        _ => None,
    });
    match hops {
        Some(hops) => hops
            .iter()
            .map(|hop| {
                let dev = (hop.interface_index != 0).then(|| dev_name(hop.interface_index));
                fact(dev, gateway_of(&hop.attributes))
            })
            .collect(),
        None => {
            let dev = msg.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(dev_name(*i)),
                _ => None,
            });
            vec![fact(dev, gateway_of(&msg.attributes))]
        }
    }
}

/// Every IPv4 and IPv6 route of every table of the calling thread's namespace (the local table
/// only for routes that drop), with interface names, plus sentences about what could not be read.
pub(crate) fn routes(netns: u32, label: &str) -> (Vec<RouteFact>, Vec<String>) {
    let mut errors = Vec::new();
    let mut dumper = match Dumper::open() {
        Ok(d) => d,
        Err(e) => {
            errors.push(format!(
                "Routes of {label} ({netns}) could not be read: {e}."
            ));
            return (Vec::new(), errors);
        }
    };
    let mut links = BTreeMap::new();
    match dumper.dump(&RouteNetlinkMessage::GetLink(LinkMessage::default())) {
        Ok(msgs) => {
            for msg in msgs {
                if let Dumped::Decoded(RouteNetlinkMessage::NewLink(link)) = msg {
                    if let Some(name) = link.attributes.iter().find_map(|a| match a {
                        LinkAttribute::IfName(n) => Some(n.clone()),
                        _ => None,
                    }) {
                        links.insert(link.header.index, name);
                    }
                }
            }
        }
        Err(e) => errors.push(format!(
            "Interface names of {label} ({netns}) could not be read, so routes show interface indexes: {e}."
        )),
    }
    let mut facts = Vec::new();
    for (family, name) in [
        (AddressFamily::Inet, "IPv4"),
        (AddressFamily::Inet6, "IPv6"),
    ] {
        let mut request = RouteMessage::default();
        request.header.address_family = family;
        match dumper.dump(&RouteNetlinkMessage::GetRoute(request)) {
            Ok(msgs) => {
                let mut undecoded = 0;
                for msg in &msgs {
                    match msg {
                        Dumped::Decoded(RouteNetlinkMessage::NewRoute(route)) => {
                            facts.extend(facts_of(route, &links, netns, label));
                        }
                        Dumped::Raw { .. } => undecoded += 1,
                        Dumped::Decoded(_) => {}
                    }
                }
                if undecoded > 0 {
                    errors.push(format!(
                        "{undecoded} {name} route messages of {label} ({netns}) could not be decoded and are left out."
                    ));
                }
            }
            Err(e) => errors.push(format!(
                "{name} routes of {label} ({netns}) could not be read: {e}."
            )),
        }
    }
    (facts, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_namespace_has_routes_or_says_why() {
        let (routes, errors) = routes(0, "self");
        assert!(
            !routes.is_empty() || !errors.is_empty(),
            "either routes or a reason"
        );
        assert!(routes.iter().all(|r| r.table != RT_TABLE_LOCAL
            || matches!(r.kind.as_str(), "blackhole" | "unreachable" | "prohibit")));
    }

    #[test]
    fn kinds_are_named_like_ip_route() {
        assert_eq!(kind_name(6), "blackhole");
        assert_eq!(kind_name(11), "xresolve");
        assert_eq!(kind_name(200), "type 200");
    }
}
