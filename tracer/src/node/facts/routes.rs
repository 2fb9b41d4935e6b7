//! Routes from recorded files: `/proc/net/route` (IPv4, main table) and the fixture-only
//! `route_kinds` overlay. Pure parsers: they never ask the kernel and never panic on bad lines.

use std::net::Ipv4Addr;

use crate::node::evidence::RouteFact;

/// `RTF_GATEWAY`: the route goes through a gateway.
const RTF_GATEWAY: u32 = 0x0002;
/// `RTF_REJECT`: the kernel sets it for `unreachable` and `prohibit` routes.
const RTF_REJECT: u32 = 0x0200;

/// Kinds a route can have (`rtm_type` names, as `ip route` prints them).
pub(crate) const KINDS: [&str; 12] = [
    "unspec",
    "unicast",
    "local",
    "broadcast",
    "anycast",
    "multicast",
    "blackhole",
    "unreachable",
    "prohibit",
    "throw",
    "nat",
    "xresolve",
];

/// An address of `/proc/net/route`: the kernel prints the network-order `__be32` as a native
/// integer in hex, so its bytes in this machine's order are the address.
fn hex_addr(text: &str) -> Option<Ipv4Addr> {
    u32::from_str_radix(text, 16)
        .ok()
        .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
}

/// Routes of `/proc/net/route` (header `Iface Destination Gateway Flags RefCnt Use Metric Mask MTU
/// Window IRTT`) and how many lines could not be read.
///
/// This file lists only the main table, and cannot show a blackhole route as one: the kernel
/// prints it like a plain route on device `*` (only unreachable/prohibit get `RTF_REJECT`, read
/// here as `unreachable`). That is why live mode reads routes over netlink instead.
pub(crate) fn parse_proc_net_route(text: &str, netns: u32, label: &str) -> (Vec<RouteFact>, usize) {
    let mut routes = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() || fields[0] == "Iface" {
            continue;
        }
        let parsed = (|| {
            let dev = *fields.first()?;
            let dst = hex_addr(fields.get(1)?)?;
            let gateway = hex_addr(fields.get(2)?)?;
            let flags = u32::from_str_radix(fields.get(3)?, 16).ok()?;
            let mask = hex_addr(fields.get(7)?)?;
            Some((dev, dst, gateway, flags, mask))
        })();
        let Some((dev, dst, gateway, flags, mask)) = parsed else {
            bad += 1;
            continue;
        };
        let len = u32::from_be_bytes(mask.octets()).count_ones();
        routes.push(RouteFact {
            netns,
            netns_label: label.to_owned(),
            family: "ipv4".to_owned(),
            dst: if len == 0 {
                "default".to_owned()
            } else {
                format!("{dst}/{len}")
            },
            kind: if flags & RTF_REJECT != 0 {
                "unreachable".to_owned()
            } else {
                "unicast".to_owned()
            },
            table: 254,
            dev: (dev != "*").then(|| dev.to_owned()),
            gateway: (flags & RTF_GATEWAY != 0 || !gateway.is_unspecified())
                .then(|| gateway.to_string()),
        });
    }
    (routes, bad)
}

/// The fixture file `route_kinds`: lines `<dst> <kind>` (`10.2.0.0/16 blackhole`), `#` comments.
/// Returns the pairs and how many lines could not be read (unknown kind, wrong word count).
pub(crate) fn parse_route_kinds(text: &str) -> (Vec<(String, String)>, usize) {
    let mut pairs = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [dst, kind] if KINDS.contains(kind) => {
                pairs.push(((*dst).to_owned(), (*kind).to_owned()));
            }
            _ => bad += 1,
        }
    }
    (pairs, bad)
}

/// Gives the routes named in `kinds` their kind; a destination no route has is added as a
/// route of the main table without device.
pub(crate) fn apply_kinds(
    routes: &mut Vec<RouteFact>,
    kinds: &[(String, String)],
    netns: u32,
    label: &str,
) {
    for (dst, kind) in kinds {
        let mut found = false;
        for route in routes.iter_mut().filter(|r| &r.dst == dst) {
            route.kind.clone_from(kind);
            found = true;
        }
        if !found {
            routes.push(RouteFact {
                netns,
                netns_label: label.to_owned(),
                family: if dst.contains(':') { "ipv6" } else { "ipv4" }.to_owned(),
                dst: dst.clone(),
                kind: kind.clone(),
                table: 254,
                dev: None,
                gateway: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_lines_are_counted_not_fatal() {
        let (routes, bad) = parse_proc_net_route(
            "Iface\tDestination\nx\nbad\tZZ\t0\t0\t0\t0\t0\t0\neth0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n\u{0}\u{ff}",
            0,
            "host",
        );
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].dst, "default");
        assert_eq!(routes[0].gateway, None);
        assert_eq!(bad, 3);
    }

    #[test]
    fn route_kinds_take_known_kinds_only() {
        let (pairs, bad) =
            parse_route_kinds("# c\n10.2.0.0/16 blackhole\n10.4.0.0/16 nonsense\nonly\n\n");
        assert_eq!(pairs, vec![("10.2.0.0/16".into(), "blackhole".into())]);
        assert_eq!(bad, 2);
        let mut routes = Vec::new();
        apply_kinds(
            &mut routes,
            &[("fd00::/8".into(), "prohibit".into())],
            0,
            "host",
        );
        assert_eq!(routes[0].family, "ipv6");
    }
}

/// Property tests: any text and the recorded route files mangled never panic; every line is a
/// route or counted as unreadable, and a route's prefix length fits IPv4.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod prop_tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testkit::mutations::{config, mutated};

    const ROUTES: &[&str] = &[include_str!(
        "../../../../tests/fixtures/facts/node/proc/net/route"
    )];
    const KIND_FILES: &[&str] = &[include_str!(
        "../../../../tests/fixtures/facts/node/proc/net/route_kinds"
    )];

    fn check_routes(text: &str) -> Result<(), TestCaseError> {
        let (routes, bad) = parse_proc_net_route(text, 1, "host");
        prop_assert!(routes.len() + bad <= text.lines().count());
        for r in &routes {
            if r.dst != "default" {
                let (addr, len) = r.dst.split_once('/').unwrap();
                prop_assert!(addr.parse::<Ipv4Addr>().is_ok(), "{r:?}");
                let len: u32 = len.parse().unwrap();
                prop_assert!((1..=32).contains(&len), "{r:?}");
            }
            if let Some(dev) = &r.dev {
                prop_assert!(text
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(dev.as_str())));
            }
            prop_assert!(r.kind == "unicast" || r.kind == "unreachable");
        }
        let (pairs, bad) = parse_route_kinds(text);
        prop_assert!(pairs.len() + bad <= text.lines().count());
        prop_assert!(pairs.iter().all(|(_, k)| KINDS.contains(&k.as_str())));
        Ok(())
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_text(text in "\\PC{0,200}") {
            check_routes(&text)?;
        }

        #[test]
        fn route_like_lines(lines in proptest::collection::vec(
            proptest::collection::vec(prop_oneof!["[0-9A-F]{0,9}", "[a-z*]{1,5}", "-?[0-9]{1,3}"], 0..12)
                .prop_map(|t| t.join("\t")),
            0..8,
        )) {
            check_routes(&lines.join("\n"))?;
        }

        #[test]
        fn mangled_route_files((_, routes) in mutated(ROUTES), (_, kinds) in mutated(KIND_FILES)) {
            check_routes(&routes)?;
            check_routes(&kinds)?;
        }

        /// Every IPv4 route written as the kernel prints it reads back.
        #[test]
        fn routes_round_trip(addr in any::<[u8; 4]>(), len in 0u32..=32, gateway in any::<bool>()) {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let dst = u32::from_be_bytes(addr) & mask;
            let hex = |v: u32| format!("{:08X}", u32::from_ne_bytes(v.to_be_bytes()));
            let flags = if gateway { 3 } else { 1 };
            let line = format!("eth0\t{}\t{}\t{flags:04X}\t0\t0\t0\t{}\t0\t0\t0", hex(dst), hex(if gateway { 0x0a00_0001 } else { 0 }), hex(mask));
            let (routes, bad) = parse_proc_net_route(&line, 1, "host");
            prop_assert_eq!(bad, 0);
            let want = if len == 0 { "default".to_owned() } else { format!("{}/{len}", Ipv4Addr::from(dst)) };
            prop_assert_eq!(&routes[0].dst, &want);
            prop_assert_eq!(routes[0].gateway.is_some(), gateway);
        }
    }
}
