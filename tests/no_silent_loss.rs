//! Issue 13: no fault passes as healthy. Routing and netfilter faults on a forwarding namespace,
//! IPv6 beside IPv4, with UDP-only traffic as well as TCP; each window must name the layer and
//! the route or rule. One dual-stack lab is shared, the fault changed between windows.
//! Privileged; run with `--test-threads=1`.

mod lab;

use std::{net::SocketAddr, time::Duration};

use lab::{
    privileged, udp_stream,
    window::{assert_verdict, evidence_text, judge},
    Routed,
};

/// The report: an IPv6 blackhole route on a forwarding namespace and only UDP crossing
/// it. The kernel drops every datagram as NOT_SPECIFIED at `dst_discard_out`; the verdict was
/// `none`.
#[test]
fn ipv6_blackhole_with_udp_only_is_a_routing_fault() {
    if !privileged("ipv6_blackhole_udp") {
        return;
    }
    let lab = Routed::dual_stack("bh6", 50);
    let dst = format!("{}/128", lab.server_addr6);
    lab.router.ip(&["-6", "route", "add", "blackhole", &dst]);
    let to: SocketAddr = format!("[{}]:9000", lab.server_addr6)
        .parse()
        .expect("addr");
    let client = lab.client.path();
    let (doc, sent) = judge(&lab.router, 4, move || {
        udp_stream(&client, to, Duration::from_secs(3), 300, 100, false)
            .join()
            .expect("sender")
    });
    assert!(sent > 100, "the client sent {sent} datagrams");
    assert_verdict(&doc, "route_issue", "routing");
    let text = evidence_text(&doc);
    assert!(text.contains(&format!("blackhole {dst}")), "{text}");
    assert!(text.contains("dst_discard"), "{text}");
}
