//! Issue 13: no fault passes as healthy. Routing and netfilter faults on a forwarding namespace,
//! IPv6 beside IPv4, with UDP-only traffic as well as TCP; each window must name the layer and
//! the route or rule. One dual-stack lab is shared, the fault changed between windows.
//! Privileged; run with `--test-threads=1`.

mod lab;

use std::{
    net::{SocketAddr, TcpStream},
    path::Path,
    time::Duration,
};

use lab::{
    privileged, udp_stream,
    window::{assert_verdict, evidence_text, judge, judge_with},
    Routed,
};
use tracer::modes::live::LiveTracer;

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

/// One fault on the router of a dual-stack lab, set before a window and undone after it.
#[derive(Clone, Copy, Debug)]
enum Fault {
    NftDrop,
    Route(&'static str),
    MissingRoute,
}

/// What a window must show: the verdict and a text the evidence must contain.
struct Expect {
    root_cause: &'static str,
    layer: &'static str,
    names: String,
}

/// Sets `fault` on the lab's router for traffic to `dst` (UDP 9000, TCP 9001); returns what the
/// verdict must say and the command that undoes it.
fn set(lab: &Routed, fault: Fault, v6: bool, dst: &str) -> (Expect, Box<dyn Fn()>) {
    let (family, len, ip) = if v6 {
        ("ipv6", 128, "ip6")
    } else {
        ("ipv4", 32, "ip")
    };
    let f = if v6 { "-6" } else { "-4" };
    let router = lab.router.name.clone();
    match fault {
        Fault::NftDrop => {
            lab.router.nft(&format!(
                "table inet trc13 {{\n\
                   chain forward {{\n\
                     type filter hook forward priority 0; policy accept;\n\
                     {ip} daddr {dst} udp dport 9000 counter drop\n\
                     {ip} daddr {dst} tcp dport 9001 counter drop\n\
                   }}\n\
                 }}\n"
            ));
            let undo = move || {
                let _ = std::process::Command::new("ip")
                    .args([
                        "netns", "exec", &router, "nft", "delete", "table", "inet", "trc13",
                    ])
                    .output();
            };
            let expect = Expect {
                root_cause: "security_rule_drops",
                layer: "iptables_netpolicy",
                names: format!("{ip} daddr {dst}"),
            };
            (expect, Box::new(undo))
        }
        Fault::Route(kind) => {
            let prefix = format!("{dst}/{len}");
            lab.router.ip(&[f, "route", "add", kind, &prefix]);
            let undo = move || {
                let _ = std::process::Command::new("ip")
                    .args(["-n", &router, f, "route", "del", kind, &prefix])
                    .output();
            };
            let expect = Expect {
                root_cause: "route_issue",
                layer: "routing",
                names: format!("{family} {kind} {dst}/{len}"),
            };
            (expect, Box::new(undo))
        }
        Fault::MissingRoute => (
            Expect {
                root_cause: "route_issue",
                layer: "routing",
                names: format!("which has no {family} default route"),
            },
            Box::new(|| {}),
        ),
    }
}

/// `count` TCP connects at once from the namespace at `from` to `to`, each given `timeout`;
/// returns how many failed.
fn tcp_connects(from: &Path, to: SocketAddr, count: usize, timeout: Duration) -> usize {
    let tries: Vec<_> = (0..count)
        .map(|_| {
            lab::spawn_in_path(from, move || {
                TcpStream::connect_timeout(&to, timeout).is_err()
            })
        })
        .collect();
    tries
        .into_iter()
        .map(|t| t.join().unwrap_or(true))
        .filter(|failed| *failed)
        .count()
}

/// Every fault × UDP-only and TCP for one family on one lab, with one tracer; returns the
/// verdict lines (printed) and the failures.
fn fault_matrix(v6: bool, net: u8, as_kernel: Option<&str>) -> (Vec<String>, Vec<String>) {
    let lab = Routed::dual_stack(if v6 { "m6" } else { "m4" }, net);
    let tracer = match as_kernel {
        Some(version) => LiveTracer::start_as(Some(version)),
        None => LiveTracer::start(),
    }
    .expect("starting the tracer");
    // The server for the route and nft faults; an address no route of the router covers for
    // the missing route (the router has no default route).
    let (server, nowhere) = if v6 {
        (
            lab.server_addr6.clone(),
            format!("2001:2:0:{}::9", net + 40),
        )
    } else {
        (lab.server_addr.clone(), format!("198.19.{}.9", net))
    };
    let faults = [
        Fault::NftDrop,
        Fault::Route("blackhole"),
        Fault::Route("unreachable"),
        Fault::Route("prohibit"),
        Fault::MissingRoute,
    ];
    let (mut lines, mut failures) = (Vec::new(), Vec::new());
    for fault in faults {
        let dst = match fault {
            Fault::MissingRoute => nowhere.clone(),
            _ => server.clone(),
        };
        for tcp in [false, true] {
            let (expect, undo) = set(&lab, fault, v6, &dst);
            let port = if tcp { 9001 } else { 9000 };
            let to: SocketAddr = if v6 {
                format!("[{dst}]:{port}")
            } else {
                format!("{dst}:{port}")
            }
            .parse()
            .expect("addr");
            let client = lab.client.path();
            let (doc, sent) = judge_with(&tracer, &lab.router, 3, move || {
                if tcp {
                    tcp_connects(&client, to, 20, Duration::from_millis(2500)) as u64
                } else {
                    udp_stream(&client, to, Duration::from_millis(2500), 200, 100, false)
                        .join()
                        .expect("sender")
                }
            });
            undo();
            let text = evidence_text(&doc);
            let line = format!(
                "kernel {} {} {:?} {}: {} / {} (confidence {:.2}; {sent} {})",
                doc.observations.kernel,
                if v6 { "IPv6" } else { "IPv4" },
                fault,
                if tcp { "TCP" } else { "UDP-only" },
                doc.root_cause,
                doc.failure_layer,
                doc.confidence,
                if tcp {
                    "connects failed"
                } else {
                    "datagrams sent"
                },
            );
            eprintln!("{line}");
            let named = text.contains(&expect.names);
            if (doc.root_cause.as_str(), doc.failure_layer.as_str())
                != (expect.root_cause, expect.layer)
                || !named
            {
                failures.push(format!(
                    "{line}: want {} / {} naming {:?}\n{text}",
                    expect.root_cause, expect.layer, expect.names
                ));
            }
            lines.push(line);
        }
    }
    (lines, failures)
}

#[test]
fn ipv6_faults_each_give_their_layer_and_name_the_route_or_rule() {
    if !privileged("ipv6_fault_matrix") {
        return;
    }
    let (lines, failures) = fault_matrix(true, 60, None);
    eprintln!("{}", lines.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn ipv4_faults_each_give_their_layer_and_name_the_route_or_rule() {
    if !privileged("ipv4_fault_matrix") {
        return;
    }
    let (lines, failures) = fault_matrix(false, 62, None);
    eprintln!("{}", lines.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The same faults with the programs reading only what 5.10 has (`TRACER_AS_KERNEL=5.10`): no
/// drop reason at all, so every drop goes by its site; each must give the same layer.
#[test]
fn ipv6_faults_read_as_5_10_give_the_same_layers() {
    if !privileged("ipv6_fault_matrix_5_10") {
        return;
    }
    let (lines, failures) = fault_matrix(true, 64, Some("5.10"));
    eprintln!("{}", lines.join("\n"));
    assert!(
        lines.iter().all(|l| l.contains("read as 5.10")),
        "{lines:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn ipv4_faults_read_as_5_10_give_the_same_layers() {
    if !privileged("ipv4_fault_matrix_5_10") {
        return;
    }
    let (lines, failures) = fault_matrix(false, 66, Some("5.10"));
    eprintln!("{}", lines.join("\n"));
    assert!(
        lines.iter().all(|l| l.contains("read as 5.10")),
        "{lines:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
