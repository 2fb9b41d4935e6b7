//! Tests of `facts`: the whole collection on the recorded tree `tests/fixtures/facts/node`, and a
//! live run (root only) in a namespace the test creates and deletes; never touches the host's rules.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use super::*;
use crate::node::evidence::QueueMask;

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/facts/node")
}

fn host_rule(
    source: &str,
    table: &str,
    chain: &str,
    hook: Option<&str>,
    rule: &str,
    verdict: &str,
    counts: Option<(u64, u64)>,
) -> FirewallRule {
    FirewallRule {
        netns: 0,
        netns_label: "host".to_owned(),
        source: source.to_owned(),
        table: table.to_owned(),
        chain: chain.to_owned(),
        hook: hook.map(str::to_owned),
        rule: rule.to_owned(),
        verdict: verdict.to_owned(),
        packets: counts.map(|c| c.0),
        bytes: counts.map(|c| c.1),
    }
}

fn host_route(dst: &str, kind: &str, dev: Option<&str>, gateway: Option<&str>) -> RouteFact {
    RouteFact {
        netns: 0,
        netns_label: "host".to_owned(),
        family: "ipv4".to_owned(),
        dst: dst.to_owned(),
        kind: kind.to_owned(),
        table: 254,
        dev: dev.map(str::to_owned),
        gateway: gateway.map(str::to_owned),
    }
}

#[test]
fn the_recorded_node_gives_every_fact() {
    let source = FactsSource::fixture(&fixture_root());
    assert!(!source.live);
    let facts = source.collect();
    assert_eq!(facts.errors, Vec::<String>::new());

    assert_eq!(
        facts.routes,
        vec![
            host_route("default", "unicast", Some("eth0"), Some("10.1.0.1")),
            host_route("10.1.0.0/24", "unicast", Some("eth0"), None),
            host_route("10.1.64.0/19", "unicast", Some("eth0"), None),
            // Shown as a plain route by /proc/net/route; route_kinds says what it is.
            host_route("10.2.0.0/16", "blackhole", None, None),
            // RTF_REJECT.
            host_route("10.3.0.0/16", "unreachable", None, None),
        ]
    );

    let nft = "nftables";
    let ipt = "iptables-legacy";
    assert_eq!(
        facts.firewall_rules,
        vec![
            host_rule(nft, "inet filter", "input", Some("input"), "policy drop", "drop", None),
            // Named counter `rejected_ssh` (7 packets, 420 bytes).
            host_rule(
                nft,
                "inet filter",
                "input",
                Some("input"),
                "tcp dport 22 counter name \"rejected_ssh\" reject with tcp reset",
                "reject",
                Some((7, 420)),
            ),
            host_rule(
                nft,
                "inet filter",
                "forward",
                Some("forward"),
                "ip saddr 10.0.0.0/8 udp dport 7777 counter drop",
                "drop",
                Some((42, 2520)),
            ),
            host_rule(
                nft,
                "inet filter",
                "forward",
                Some("forward"),
                "ct state vmap { invalid : drop, established : accept }",
                "drop",
                None,
            ),
            host_rule(
                nft,
                "ip kube-proxy",
                "KUBE-SERVICES",
                None,
                "ip daddr 172.20.0.10 tcp dport 53 counter reject with icmp port-unreachable \
                 comment \"kube-system/kube-dns:dns-tcp has no endpoints\"",
                "reject",
                Some((5, 300)),
            ),
            host_rule(
                nft,
                "ip kube-proxy",
                "KUBE-SERVICES",
                None,
                "iifname != eth* ip daddr 172.20.0.0/16 drop",
                "drop",
                None,
            ),
            host_rule(
                ipt,
                "raw",
                "PREROUTING",
                Some("prerouting"),
                "-A PREROUTING -d 169.254.170.23/32 -p tcp -j DROP",
                "drop",
                Some((1, 60)),
            ),
            host_rule(ipt, "filter", "INPUT", Some("input"), "policy drop", "drop", Some((3, 180))),
            host_rule(
                ipt,
                "filter",
                "FORWARD",
                Some("forward"),
                "-A FORWARD -s 10.0.0.0/8 -j DROP",
                "drop",
                Some((12, 720)),
            ),
            host_rule(
                ipt,
                "filter",
                "cali-fw-eni1a2b3c",
                None,
                "-A cali-fw-eni1a2b3c -p tcp -m comment --comment \"cali:Xyz -j DROP in a comment\" \
                 -m tcp --dport 8080 -j REJECT --reject-with icmp-port-unreachable",
                "reject",
                Some((4, 240)),
            ),
        ]
    );

    // aws-network-policy-agent from its comm cut to 15 bytes, aws-node from aws-k8s-agent, calico
    // from a `cali-` chain, kube-proxy from KUBE-SERVICES; `grep cilium-agent` is not cilium.
    assert_eq!(
        facts.policy_engines,
        vec![
            "aws-network-policy-agent",
            "aws-node",
            "calico",
            "kube-proxy"
        ]
    );
    assert!(facts.irqbalance_running);

    let sysctls: Vec<(&str, &str)> = facts
        .sysctls
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        sysctls,
        vec![
            ("net.core.netdev_budget", "300"),
            ("net.core.netdev_max_backlog", "1000"),
            ("net.core.rmem_max", "212992"),
            ("net.core.somaxconn", "4096"),
            ("net.core.wmem_max", "212992"),
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.tcp_max_syn_backlog", "1024"),
            ("net.ipv4.tcp_rmem", "4096 131072 6291456"),
            ("net.ipv4.tcp_syncookies", "1"),
            ("net.ipv4.tcp_wmem", "4096 16384 4194304"),
            ("net.netfilter.nf_conntrack_max", "262144"),
        ]
    );

    let mask = |dev: &str, queue: &str, kind: &str, mask: &str| QueueMask {
        dev: dev.to_owned(),
        queue: queue.to_owned(),
        kind: kind.to_owned(),
        mask: mask.to_owned(),
    };
    assert_eq!(
        facts.queue_masks,
        vec![
            mask("eth0", "rx-0", "rps", "3"),
            mask("eth0", "rx-1", "rps", "0c"),
            mask("eth0", "tx-0", "xps", "00000000,0000000f"),
            mask("lo", "rx-0", "rps", "0"),
        ]
    );
}

#[test]
fn an_empty_tree_says_what_is_missing_and_nothing_else() {
    let dir = std::env::temp_dir().join(format!("trc-facts-empty-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("proc")).unwrap();
    let facts = FactsSource::fixture(&dir).collect();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(facts.routes.is_empty() && facts.firewall_rules.is_empty());
    assert!(facts.policy_engines.is_empty() && facts.sysctls.is_empty());
    assert!(!facts.irqbalance_running);
    assert_eq!(facts.errors.len(), 2, "{:?}", facts.errors);
    assert!(facts.errors[0].starts_with("Routes could not be read from"));
    assert!(facts.errors[1].starts_with("Queue masks could not be read"));
}

#[test]
fn broken_recordings_are_errors_not_panics() {
    let dir = std::env::temp_dir().join(format!("trc-facts-broken-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("proc/net")).unwrap();
    std::fs::write(dir.join("proc/net/route"), "Iface\nbroken line\n").unwrap();
    std::fs::write(dir.join("proc/net/route_kinds"), "10.9.0.0/16 weird\n").unwrap();
    std::fs::write(dir.join("nft-ruleset.json"), "{\"nftables\": [").unwrap();
    std::fs::write(dir.join("iptables-save.txt"), "*filter\n[x] -A\n").unwrap();
    let facts = FactsSource::fixture(&dir).collect();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(facts.routes.is_empty() && facts.firewall_rules.is_empty());
    let joined = facts.errors.join("\n");
    assert!(joined.contains("1 lines of"), "{joined}");
    assert!(joined.contains("route_kinds could not be read"), "{joined}");
    assert!(
        joined.contains("`nft -j list ruleset` in host (netns 0) could not be read"),
        "{joined}"
    );
}

/// A namespace this test made, deleted on drop.
struct TestNetns {
    name: String,
    path: PathBuf,
}

impl TestNetns {
    fn new() -> Self {
        Self::tagged("facts")
    }

    fn tagged(tag: &str) -> Self {
        let name = format!("trc-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        run("ip", &["netns", "add", &name]);
        let path = Path::new("/run/netns").join(&name);
        Self { name, path }
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?}: {status}");
}

#[test]
fn live_facts_show_a_blackhole_route_and_a_counted_drop_rule_in_a_namespace() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped live_facts: needs root to create a network namespace");
        return;
    }
    let Some(nft) = tools::find("nft") else {
        eprintln!("skipped live_facts: nft is not installed");
        return;
    };
    if tools::find("ip").is_none() {
        eprintln!("skipped live_facts: ip (iproute2) is not installed");
        return;
    }
    let ns = TestNetns::new();
    run("ip", &["-n", &ns.name, "link", "set", "lo", "up"]);
    run(
        "ip",
        &[
            "-n",
            &ns.name,
            "route",
            "add",
            "blackhole",
            "198.18.77.0/24",
        ],
    );
    let rules = std::env::temp_dir().join(format!("{}.nft", ns.name));
    std::fs::write(
        &rules,
        "table inet trc_facts {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tudp dport 7777 counter drop\n\t}\n}\n",
    )
    .unwrap();
    // nft inside the namespace from a thread that entered it (never the host's ruleset).
    let file = rules.clone();
    let loaded = crate::node::netns::in_netns(&ns.path, move || {
        Command::new(nft).arg("-f").arg(file).status()
    })
    .unwrap()
    .unwrap();
    std::fs::remove_file(&rules).unwrap();
    assert!(loaded.success(), "nft -f in the namespace: {loaded}");
    crate::node::netns::in_netns(&ns.path, || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..3 {
            socket.send_to(b"facts", "127.0.0.1:7777").unwrap();
        }
    })
    .unwrap();
    let inode = u32::try_from(std::fs::metadata(&ns.path).unwrap().ino()).unwrap();

    let facts = FactsSource::live().collect();

    let ours: Vec<&RouteFact> = facts.routes.iter().filter(|r| r.netns == inode).collect();
    assert!(
        ours.iter().any(|r| r.dst == "198.18.77.0/24"
            && r.kind == "blackhole"
            && r.family == "ipv4"
            && r.table == 254
            && r.netns_label == format!("netns {}", ns.name)),
        "routes of the namespace: {ours:#?}\nerrors: {:#?}",
        facts.errors
    );
    assert!(
        ours.iter().all(|r| r.table != 255),
        "local table routes are left out: {ours:#?}"
    );
    let drops: Vec<&FirewallRule> = facts
        .firewall_rules
        .iter()
        .filter(|r| r.netns == inode)
        .collect();
    assert_eq!(
        drops,
        vec![&FirewallRule {
            netns: inode,
            netns_label: format!("netns {}", ns.name),
            source: "nftables".to_owned(),
            table: "inet trc_facts".to_owned(),
            chain: "input".to_owned(),
            hook: Some("input".to_owned()),
            rule: "udp dport 7777 counter drop".to_owned(),
            verdict: "drop".to_owned(),
            packets: Some(3),
            bytes: drops.first().and_then(|r| r.bytes),
        }],
        "errors: {:#?}",
        facts.errors
    );
    assert!(drops[0].bytes.unwrap_or(0) > 0);
    assert!(
        !facts.errors.iter().any(|e| e.contains(&ns.name)),
        "{:#?}",
        facts.errors
    );
}

/// Loads `ruleset` with nft inside `ns` (from a thread that entered it; never the host's).
fn nft_in(ns: &TestNetns, nft: &Path, ruleset: &str) {
    let file = std::env::temp_dir().join(format!("{}-{}.nft", ns.name, ruleset.len()));
    std::fs::write(&file, ruleset).unwrap();
    let (nft, loaded_file) = (nft.to_path_buf(), file.clone());
    let status = crate::node::netns::in_netns(&ns.path, move || {
        Command::new(nft).arg("-f").arg(loaded_file).status()
    })
    .unwrap()
    .unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(status.success(), "nft -f in {}: {status}", ns.name);
}

fn drop_rules_of(facts: &NodeFacts, inode: u32) -> Vec<String> {
    facts
        .firewall_rules
        .iter()
        .filter(|r| r.netns == inode)
        .map(|r| r.rule.clone())
        .collect()
}

#[test]
fn facts_by_change_list_again_only_what_changed_or_dropped() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped facts_by_change: needs root to create network namespaces");
        return;
    }
    let (Some(nft), Some(_)) = (tools::find("nft"), tools::find("ip")) else {
        eprintln!("skipped facts_by_change: nft or ip (iproute2) is not installed");
        return;
    };
    let (changed, quiet) = (TestNetns::tagged("fbc-a"), TestNetns::tagged("fbc-b"));
    let rule = |port: u16| {
        format!(
            "table inet trc_fbc {{\n\tchain input {{\n\t\ttype filter hook input priority filter; policy accept;\n\t\tudp dport {port} counter drop\n\t}}\n}}\n"
        )
    };
    for ns in [&changed, &quiet] {
        run("ip", &["-n", &ns.name, "link", "set", "lo", "up"]);
    }
    nft_in(&changed, &nft, &rule(7001));
    nft_in(&quiet, &nft, &rule(7002));
    let inode = |ns: &TestNetns| u32::try_from(std::fs::metadata(&ns.path).unwrap().ino()).unwrap();
    let (a, b) = (inode(&changed), inode(&quiet));
    let source = FactsSource::live();
    let mut cache = FactsCache::default();
    let none = BTreeSet::new();
    let reads = |cache: &FactsCache, inode| {
        let r = cache.reads(inode);
        (r.nft, r.routes)
    };

    let first = source.collect_changed(&mut cache, &none);
    assert_eq!((reads(&cache, a), reads(&cache, b)), ((1, 1), (1, 1)));
    assert_eq!(
        drop_rules_of(&first, b),
        vec!["udp dport 7002 counter drop"]
    );

    // Rounds that asked a namespace's generation or drained its route subscription.
    let checks = |cache: &FactsCache| (cache.reads(a).checks, cache.reads(b).checks);

    // Nothing changed: nothing is listed again, and the kept facts are the same; neither
    // namespace's subscriptions spoke, so neither was even asked for its generation.
    let second = source.collect_changed(&mut cache, &none);
    assert_eq!((reads(&cache, a), reads(&cache, b)), ((1, 1), (1, 1)));
    assert_eq!(checks(&cache), (0, 0));
    assert_eq!(
        drop_rules_of(&second, a),
        vec!["udp dport 7001 counter drop"]
    );
    assert_eq!(
        drop_rules_of(&second, b),
        vec!["udp dport 7002 counter drop"]
    );

    // A rule added in one namespace is seen at the next round; the other is not listed.
    nft_in(
        &changed,
        &nft,
        "add rule inet trc_fbc input tcp dport 7003 counter reject\n",
    );
    let third = source.collect_changed(&mut cache, &none);
    assert_eq!((reads(&cache, a), reads(&cache, b)), ((2, 1), (1, 1)));
    assert_eq!(
        checks(&cache),
        (1, 0),
        "only the changed namespace's subscription spoke"
    );
    assert_eq!(
        drop_rules_of(&third, a),
        vec![
            "udp dport 7001 counter drop",
            "tcp dport 7003 counter reject with icmpx port-unreachable"
        ]
    );

    // A route added in the quiet namespace: its routes are read again, its rules are not.
    run(
        "ip",
        &[
            "-n",
            &quiet.name,
            "route",
            "add",
            "blackhole",
            "198.18.78.0/24",
        ],
    );
    let fourth = source.collect_changed(&mut cache, &none);
    assert_eq!((reads(&cache, a), reads(&cache, b)), ((2, 1), (1, 2)));
    assert_eq!(checks(&cache), (1, 1));
    assert!(
        fourth
            .routes
            .iter()
            .any(|r| r.netns == b && r.dst == "198.18.78.0/24" && r.kind == "blackhole"),
        "{:#?}",
        fourth.routes
    );

    // Netfilter drops the kernel saw there: its rules are listed again for their counters.
    crate::node::netns::in_netns(&quiet.path, || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..4 {
            socket.send_to(b"fbc", "127.0.0.1:7002").unwrap();
        }
    })
    .unwrap();
    let fifth = source.collect_changed(&mut cache, &BTreeSet::from([b]));
    assert_eq!((reads(&cache, a), reads(&cache, b)), ((2, 1), (2, 2)));
    let counted: Vec<Option<u64>> = fifth
        .firewall_rules
        .iter()
        .filter(|r| r.netns == b)
        .map(|r| r.packets)
        .collect();
    assert_eq!(counted, vec![Some(4)]);
}

#[test]
fn mangled_recordings_never_panic_the_parsers() {
    let root = fixture_root();
    let texts: Vec<Vec<u8>> = [
        "nft-ruleset.json",
        "iptables-save.txt",
        "proc/net/route",
        "proc/net/route_kinds",
    ]
    .iter()
    .map(|f| std::fs::read(root.join(f)).unwrap())
    .collect();
    // A fixed linear congruential generator: the same mangling every run.
    let mut state: u64 = 0x5eed;
    let mut next = move |bound: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % bound.max(1)
    };
    let noise = b"{}[]\":,-j DROP\n\t[0:0]*:#/ 0123456789abcdefxyz\xff\x00";
    for round in 0..3000 {
        let mut bytes = texts[round % texts.len()].clone();
        for _ in 0..1 + next(8) {
            match next(3) {
                0 => bytes.truncate(next(bytes.len() + 1)),
                1 if !bytes.is_empty() => {
                    let at = next(bytes.len());
                    bytes[at] = noise[next(noise.len())];
                }
                _ => {
                    let at = next(bytes.len() + 1);
                    bytes.insert(at, noise[next(noise.len())]);
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = nft::parse(&text, 0, "host");
        let _ = iptables::parse(&text, round % 2 == 0, 0, "host");
        let _ = routes::parse_proc_net_route(&text, 0, "host");
        let _ = routes::parse_route_kinds(&text);
    }
}

/// `iptables-legacy ARGS` inside `ns` (never the host's tables).
fn iptables_legacy_in(ns: &TestNetns, args: &[&str]) {
    let mut all = vec!["netns", "exec", &ns.name, "iptables-legacy", "-w"];
    all.extend_from_slice(args);
    run("ip", &all);
}

/// A namespace for the legacy tests with 198.18.5.1/24 on its loopback, or None (and why)
/// when this machine cannot run them.
fn legacy_lab(tag: &str) -> Option<TestNetns> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped {tag}: needs root to create network namespaces");
        return None;
    }
    if tools::find("iptables-legacy").is_none() || tools::find("ip").is_none() {
        eprintln!("skipped {tag}: iptables-legacy or ip (iproute2) is not installed");
        return None;
    }
    if !Path::new("/proc/net/ip_tables_names").exists() {
        // Loading ip_tables for a test would change the host's kernel.
        eprintln!("skipped {tag}: the ip_tables module is not loaded");
        return None;
    }
    let ns = TestNetns::tagged(tag);
    run("ip", &["-n", &ns.name, "link", "set", "lo", "up"]);
    run(
        "ip",
        &["-n", &ns.name, "addr", "add", "198.18.5.1/24", "dev", "lo"],
    );
    Some(ns)
}

/// The legacy rules the facts show for namespace `inode`.
fn legacy_rules_of(facts: &NodeFacts, inode: u32) -> Vec<String> {
    facts
        .firewall_rules
        .iter()
        .filter(|r| r.netns == inode && r.source == "iptables-legacy")
        .map(|r| r.rule.clone())
        .collect()
}

/// `iptables-legacy` arguments for a rule on INPUT matching 198.18.5.1 `proto`/`port`, jumping to
/// `target`; `at` is what comes before the matches (`["-A", "INPUT"]`, `["-R", "INPUT", "1"]`).
fn lab_rule(
    at: &[&'static str],
    proto: &'static str,
    port: &'static str,
    target: &'static str,
) -> Vec<&'static str> {
    let mut args = at.to_vec();
    args.extend([
        "-d",
        "198.18.5.1/32",
        "-p",
        proto,
        "--dport",
        port,
        "-j",
        target,
    ]);
    args
}

/// Sends `count` datagrams to 198.18.5.1:`port` inside `ns` (the rules' counters rise).
fn udp_to_lab(ns: &TestNetns, port: u16, count: usize) {
    crate::node::netns::in_netns(&ns.path, move || {
        let socket = std::net::UdpSocket::bind("198.18.5.1:0").unwrap();
        for _ in 0..count {
            let _ = socket.send_to(b"legacy", ("198.18.5.1", port));
        }
    })
    .unwrap();
}

/// Puts a UDP DROP rule for `port` in the lab and reads the facts once: they show that rule.
/// Returns the lab's inode and the source, cache and (empty) drop set for the next rounds.
fn legacy_first_round(
    ns: &TestNetns,
    port: &'static str,
) -> (u32, FactsSource, FactsCache, BTreeSet<u32>) {
    iptables_legacy_in(ns, &lab_rule(&["-A", "INPUT"], "udp", port, "DROP"));
    let inode = u32::try_from(std::fs::metadata(&ns.path).unwrap().ino()).unwrap();
    let source = FactsSource::live();
    let mut cache = FactsCache::default();
    let none = BTreeSet::new();
    let first = source.collect_changed(&mut cache, &none);
    assert_eq!(
        legacy_rules_of(&first, inode),
        vec![format!(
            "-A INPUT -d 198.18.5.1/32 -p udp -m udp --dport {port} -j DROP"
        )],
        "errors: {:#?}",
        first.errors
    );
    assert_eq!(cache.reads(inode).legacy, 1);
    (inode, source, cache, none)
}

#[test]
fn a_legacy_rule_replaced_in_place_is_seen_and_counters_alone_are_not_a_change() {
    let Some(ns) = legacy_lab("lgr") else { return };
    let (inode, source, mut cache, none) = legacy_first_round(&ns, "7101");

    // Only the rule's counters rose: not a change, nothing is listed again, and the mark
    // was asked on the kept socket without entering the namespace.
    assert_eq!(cache.reads(inode).visits, 1);
    udp_to_lab(&ns, 7101, 5);
    source.collect_changed(&mut cache, &none);
    assert_eq!(cache.reads(inode).legacy, 1, "counters moved the mark");
    assert_eq!(cache.reads(inode).visits, 1, "entered to ask for the mark");

    // `-R`: the same tables, another rule in the same place.
    iptables_legacy_in(&ns, &lab_rule(&["-R", "INPUT", "1"], "udp", "7102", "DROP"));
    let replaced = source.collect_changed(&mut cache, &none);
    assert_eq!(
        legacy_rules_of(&replaced, inode),
        vec!["-A INPUT -d 198.18.5.1/32 -p udp -m udp --dport 7102 -j DROP"]
    );
    assert_eq!(cache.reads(inode).legacy, 2);
    assert_eq!(cache.reads(inode).visits, 2);
}

#[test]
fn a_legacy_rule_inserted_and_the_old_one_deleted_is_seen() {
    let Some(ns) = legacy_lab("lgi") else { return };
    let (inode, source, mut cache, none) = legacy_first_round(&ns, "7201");

    // `-I` a new rule then `-D` the old one: the same tables and the same number of rules.
    iptables_legacy_in(
        &ns,
        &lab_rule(&["-I", "INPUT", "1"], "tcp", "7202", "REJECT"),
    );
    iptables_legacy_in(&ns, &["-D", "INPUT", "2"]);
    let swapped = source.collect_changed(&mut cache, &none);
    assert_eq!(
        legacy_rules_of(&swapped, inode),
        vec![
            "-A INPUT -d 198.18.5.1/32 -p tcp -m tcp --dport 7202 -j REJECT \
             --reject-with icmp-port-unreachable"
        ]
    );
    assert_eq!(cache.reads(inode).legacy, 2);
}

#[test]
fn the_legacy_mark_reads_the_kernels_table_and_not_its_counters() {
    use legacy_mark::{Family, GetInfo};
    use std::os::fd::AsFd as _;
    let Some(ns) = legacy_lab("lgm") else { return };
    let dport7301 = lab_rule(&["-A", "INPUT"], "udp", "7301", "DROP");
    iptables_legacy_in(&ns, &dport7301);
    // (entries, packets counted by the first entry, the namespace's mark, the table's own mark).
    let look = |ns: &TestNetns| {
        crate::node::netns::in_netns(&ns.path, || {
            let fd = legacy_mark::open(Family::V4).unwrap();
            let (info, mut blob): (GetInfo, Vec<u8>) =
                legacy_mark::read_table(fd.as_fd(), Family::V4, "filter").unwrap();
            let at = Family::V4.layout().counters;
            let packets = u64::from_ne_bytes(blob[at..at + 8].try_into().unwrap());
            let mut hasher = std::hash::DefaultHasher::new();
            legacy_mark::hash_table(&mut hasher, Family::V4, &info, &mut blob).unwrap();
            let whole = legacy_mark::mark(Path::new("/proc/thread-self/net"));
            (
                info.num_entries,
                packets,
                whole,
                std::hash::Hasher::finish(&hasher),
            )
        })
        .unwrap()
    };
    // The rule, the three built-in chains' policies and the table's end.
    let (entries, packets, whole, table) = look(&ns);
    assert_eq!((entries, packets), (5, 0));
    // The namespace's files and sockets kept: read from the test's own namespace, the same mark.
    let kept = crate::node::netns::in_netns(&ns.path, || {
        legacy_mark::KeptMark::open(Path::new("/proc/thread-self/net"))
    })
    .unwrap()
    .unwrap();
    assert_eq!(kept.mark(), whole);
    udp_to_lab(&ns, 7301, 5);
    assert_eq!(
        look(&ns),
        (5, 5, whole, table),
        "the rule counted 5 datagrams"
    );
    assert_eq!(kept.mark(), whole, "kept: counters do not move it");
    iptables_legacy_in(
        &ns,
        &[
            "-R", "INPUT", "1", "-p", "udp", "--dport", "7302", "-j", "DROP",
        ],
    );
    let (entries, packets, replaced, replaced_table) = look(&ns);
    assert_eq!((entries, packets), (5, 0));
    assert_ne!(replaced, whole);
    assert_ne!(replaced_table, table);
    assert_eq!(kept.mark(), replaced, "kept: the replaced rule moves it");
}
