//! Routes of the calling thread's network namespace over rtnetlink: RTM_GETLINK and RTM_GETROUTE
//! dumps only. It must never send a request that changes anything (no NEW/DEL/SET messages).

use std::{collections::BTreeMap, os::fd::AsRawFd as _};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::{
    link::{LinkAttribute, LinkMessage},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteVia},
    AddressFamily, RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::evidence::RouteFact;

/// Routes of the local table (255) are left out unless they drop.
const RT_TABLE_LOCAL: u32 = 255;
/// `NLM_F_DUMP_INTR`: the dump changed while it was read.
const NLM_F_DUMP_INTR: u16 = 0x10;
/// Netlink message header length.
const NLMSG_HDRLEN: usize = 16;

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

struct Dumper {
    socket: Socket,
    seq: u32,
}

impl Dumper {
    fn open() -> Result<Self, String> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(|e| format!("opening a netlink socket: {e}"))?;
        socket
            .bind_auto()
            .map_err(|e| format!("binding the netlink socket: {e}"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| format!("connecting the netlink socket: {e}"))?;
        let timeout = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: the fd is the socket's own, open for the call; the option value is a valid
        // `timeval` of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::from_ref(&timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(format!(
                "setting the netlink receive timeout: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Self { socket, seq: 0 })
    }

    /// One dump request, retried when the kernel says the dump was interrupted. Returns the
    /// messages and how many could not be decoded.
    fn dump(
        &mut self,
        request: &RouteNetlinkMessage,
    ) -> Result<(Vec<RouteNetlinkMessage>, usize), String> {
        let mut last = Err("the dump was interrupted three times".to_owned());
        for _ in 0..3 {
            match self.dump_once(request)? {
                (msgs, undecoded, false) => return Ok((msgs, undecoded)),
                (msgs, undecoded, true) => last = Ok((msgs, undecoded)),
            }
        }
        last
    }

    fn dump_once(
        &mut self,
        request: &RouteNetlinkMessage,
    ) -> Result<(Vec<RouteNetlinkMessage>, usize, bool), String> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(request.clone()));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket
            .send(&out, 0)
            .map_err(|e| format!("sending the dump request: {e}"))?;

        let mut msgs = Vec::new();
        let mut undecoded = 0;
        let mut interrupted = false;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = self
                .socket
                .recv(&mut &mut buf[..], 0)
                .map_err(|e| format!("reading the dump: {e}"))?;
            let data = &buf[..n.min(buf.len())];
            let mut offset = 0;
            while offset + NLMSG_HDRLEN <= data.len() {
                let mut len_bytes = [0u8; 4];
                len_bytes.copy_from_slice(&data[offset..offset + 4]);
                let len = u32::from_ne_bytes(len_bytes) as usize;
                if len < NLMSG_HDRLEN || offset + len > data.len() {
                    return Err("the kernel's answer was cut short".to_owned());
                }
                let raw = &data[offset..offset + len];
                offset += (len + 3) & !3;
                match NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw) {
                    Ok(msg) => {
                        if msg.header.sequence_number != self.seq {
                            continue;
                        }
                        if msg.header.flags & NLM_F_DUMP_INTR != 0 {
                            interrupted = true;
                        }
                        match msg.payload {
                            NetlinkPayload::Done(_) => return Ok((msgs, undecoded, interrupted)),
                            NetlinkPayload::Error(e) if e.code.is_some() => {
                                return Err(format!("the kernel refused the dump: {}", e.to_io()))
                            }
                            NetlinkPayload::InnerMessage(inner) => msgs.push(inner),
                            _ => {}
                        }
                    }
                    Err(_) => undecoded += 1,
                }
            }
            if n == 0 {
                return Err("the netlink socket closed during the dump".to_owned());
            }
        }
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
        Ok((msgs, _)) => {
            for msg in msgs {
                if let RouteNetlinkMessage::NewLink(link) = msg {
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
            Ok((msgs, undecoded)) => {
                for msg in &msgs {
                    if let RouteNetlinkMessage::NewRoute(route) = msg {
                        facts.extend(facts_of(route, &links, netns, label));
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
