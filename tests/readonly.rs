//! Read-only, proven: the node's sysctls, links, addresses, routes, policy rules, nftables and
//! iptables rulesets, loaded kernel modules and mounts are the same, and no BPF program is
//! left, before and after a full `tracer report`, a `tracer record`, a `tracer check` and a
//! `tracer serve` run (scraped, then stopped with SIGTERM) — in the root namespace and in a lab
//! namespace that has an nftables ruleset and a veth, which the tracer reads from inside.
//!
//! Some values move on their own (conntrack counts, entropy, last PID…): a control pair of
//! snapshots taken with no tracer running tells which, and those are left out, listed, and
//! bounded in number so the test cannot pass by ignoring everything.

mod lab;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use lab::{privileged, send_udp, veth, Netns};

/// Every readable value under `dir` (a `/proc/sys` subtree), by dotted name.
fn sysctls(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => sysctls(&path, &format!("{name}."), out),
            Ok(t) if t.is_file() => {
                if let Ok(value) = std::fs::read_to_string(&path) {
                    out.insert(format!("sysctl {name}"), value.trim().to_owned());
                }
            }
            _ => {}
        }
    }
}

/// One command's output as a snapshot entry (absent tools leave no entry).
fn command(out: &mut BTreeMap<String, String>, key: &str, program: &str, args: &[&str]) {
    if let Ok(o) = Command::new(program).args(args).output() {
        if o.status.success() {
            out.insert(
                key.to_owned(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
            );
        }
    }
}

/// What the tracer must not change, seen from the calling thread's network namespace. `nft`
/// and `iptables-legacy-save` run only where their kernel parts are loaded (listing would load
/// them otherwise, which would itself change the node).
fn network_state(out: &mut BTreeMap<String, String>) {
    for top in ["net", "kernel", "vm"] {
        sysctls(&Path::new("/proc/sys").join(top), &format!("{top}."), out);
    }
    command(out, "ip link", "ip", &["-d", "-o", "link", "show"]);
    command(out, "ip addr", "ip", &["-o", "addr", "show"]);
    command(out, "ip route", "ip", &["route", "show", "table", "all"]);
    command(
        out,
        "ip -6 route",
        "ip",
        &["-6", "route", "show", "table", "all"],
    );
    command(out, "ip rule", "ip", &["rule", "show"]);
    command(out, "ip -6 rule", "ip", &["-6", "rule", "show"]);
    if nf_tables_present() {
        // -s: stateless (no counters, which traffic moves).
        command(out, "nft ruleset", "nft", &["-s", "list", "ruleset"]);
    }
    if Path::new("/proc/net/ip_tables_names").exists() {
        command(out, "iptables", "iptables-legacy-save", &[]);
    }
    if Path::new("/proc/net/ip6_tables_names").exists() {
        command(out, "ip6tables", "ip6tables-legacy-save", &[]);
    }
    // `*-save` comments carry the time of the listing, and chain lines their policy's counters
    // (`:OUTPUT ACCEPT [5:356]`), which traffic moves.
    for key in ["iptables", "ip6tables"] {
        if let Some(text) = out.get_mut(key) {
            *text = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| match l.split_once(" [") {
                    Some((chain, _)) if l.starts_with(':') => chain,
                    _ => l,
                })
                .collect::<Vec<_>>()
                .join("\n");
        }
    }
}

/// True when listing nftables cannot load a module: no loadable modules at all, or nf_tables
/// already in the kernel.
fn nf_tables_present() -> bool {
    match std::fs::read_to_string("/proc/modules") {
        Err(_) => true,
        Ok(m) => {
            m.lines().any(|l| l.starts_with("nf_tables "))
                || Path::new("/sys/module/nf_tables").exists()
        }
    }
}

fn node_state(ns: &Netns) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    network_state(&mut out);
    let inside = ns.run_in(|| {
        let mut inside = BTreeMap::new();
        network_state(&mut inside);
        inside
    });
    out.extend(inside.into_iter().map(|(k, v)| (format!("lab {k}"), v)));
    if let Ok(modules) = std::fs::read_to_string("/proc/modules") {
        let names: BTreeSet<&str> = modules
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        out.insert(
            "modules".to_owned(),
            names.into_iter().collect::<Vec<_>>().join(" "),
        );
    }
    if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
        let points: BTreeSet<String> = mounts
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // Mount point and file system type (after the optional fields' "-").
                let fstype = f.iter().skip_while(|x| **x != "-").nth(1)?;
                Some(format!("{} {fstype}", f.get(4)?))
            })
            // Named namespaces (`ip netns add`: an nsfs mount under /run/netns) of this test's
            // lab and of anything else creating namespaces beside it come and go. The tracer
            // never names a namespace; every other mount must stay the same.
            .filter(|m| !(m.starts_with("/run/netns/") && m.ends_with(" nsfs")))
            .collect();
        out.insert(
            "mounts".to_owned(),
            points.into_iter().collect::<Vec<_>>().join("\n"),
        );
    }
    out
}

/// Ids of the loaded BPF programs.
fn bpf_program_ids() -> BTreeSet<u64> {
    Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| {
            v.as_array()
                .map(|a| a.iter().filter_map(|p| p["id"].as_u64()).collect())
        })
        .unwrap_or_default()
}

fn changed(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> BTreeSet<String> {
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

fn tracer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tracer"))
        .args(args)
        .output()
        .expect("running tracer")
}

fn serve_and_scrape() {
    let (mut child, listen) = lab::spawn_serve(&["--window", "2s"], &[]);
    std::thread::sleep(Duration::from_secs(2));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    for path in ["/metrics", "/report", "/report?window=2s", "/readyz"] {
        let response = agent
            .get(format!("http://{listen}{path}"))
            .call()
            .expect(path);
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let status = child.wait().expect("serve exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn report_record_check_and_serve_change_nothing_on_the_node() {
    if !privileged("read_only") {
        return;
    }
    let lab = Netns::new("ro");
    let peer = Netns::new("ro-peer");
    veth(
        &lab,
        "ro0",
        "198.18.40.1/24",
        &peer,
        "ro1",
        "198.18.40.2/24",
    );
    lab.nft(
        "table inet ro {\n chain input {\n type filter hook input priority 0;\n \
         udp dport 9999 counter drop\n }\n}\n",
    );
    // Legacy tables too where their modules are loaded already (adding a rule would load them
    // otherwise): the tracer reads their mark with getsockopt inside the lab.
    let legacy: Vec<&str> = [
        ("ip_tables_names", "iptables-legacy"),
        ("ip6_tables_names", "ip6tables-legacy"),
    ]
    .into_iter()
    .filter(|(names, _)| Path::new("/proc/net").join(names).exists())
    .map(|(_, tool)| {
        lab.exec(
            tool,
            &[
                "-w", "-A", "INPUT", "-p", "udp", "--dport", "9998", "-j", "DROP",
            ],
        );
        tool
    })
    .collect();
    eprintln!("legacy rules in the lab: {legacy:?}");

    // Let the links settle (IPv6 duplicate address detection, link-local routes) first.
    std::thread::sleep(Duration::from_secs(3));
    let control_a = node_state(&lab);
    std::thread::sleep(Duration::from_secs(2));
    let control_b = node_state(&lab);
    let volatile = changed(&control_a, &control_b);
    eprintln!("left out as moving on their own: {volatile:?}");
    assert!(
        volatile.len() < 40,
        "too much moves on its own to prove anything: {volatile:?}"
    );
    assert!(
        control_a.len() > 500,
        "a real snapshot: {} values",
        control_a.len()
    );
    assert!(control_a.contains_key("lab nft ruleset") && control_a.contains_key("ip route"));
    if legacy.contains(&"iptables-legacy") {
        assert!(
            control_a["lab iptables"].contains("--dport 9998 -j DROP"),
            "{}",
            control_a["lab iptables"]
        );
    }

    let before = node_state(&lab);
    let programs_before = bpf_program_ids();
    // Traffic in the lab while the tracer watches, so it has something to read everywhere.
    let traffic = std::thread::spawn({
        let lab_path = lab.path();
        move || {
            let until = Instant::now() + Duration::from_secs(12);
            while Instant::now() < until {
                lab::spawn_in_path(&lab_path, || {
                    let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp");
                    for _ in 0..50 {
                        let _ = sock.send_to(b"x", "198.18.40.2:9999");
                    }
                })
                .join()
                .expect("sender");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    send_udp(&peer, "198.18.40.1:9999".parse().expect("addr"), 100);
    let report = tracer(&["report", "--duration", "3s", "--format", "json"]);
    assert!(
        matches!(report.status.code(), Some(0 | 1)),
        "report ran: {}",
        String::from_utf8_lossy(&report.stderr)
    );
    lab::document::parse(&report.stdout);
    let recording = std::env::temp_dir().join(format!("tracer-ro-{}.json", std::process::id()));
    let record = tracer(&[
        "record",
        "--duration",
        "2s",
        "-o",
        recording.to_str().expect("path"),
    ]);
    let _ = std::fs::remove_file(&recording);
    assert!(matches!(record.status.code(), Some(0 | 1)), "record ran");
    let check = tracer(&["check"]);
    assert!(check.status.code().is_some(), "check ran");
    serve_and_scrape();
    traffic.join().expect("traffic");
    let after = node_state(&lab);
    // Programs other processes unload are theirs; a program added since and held open by no
    // live process was left behind (a running tracer beside this test holds its own).
    let (held, _) = lab::bpf_held_by_anyone();
    let left: Vec<u64> = bpf_program_ids()
        .difference(&programs_before)
        .filter(|id| !held.contains(id))
        .copied()
        .collect();
    assert!(left.is_empty(), "BPF programs left loaded: {left:?}");

    let differences: Vec<String> = changed(&before, &after)
        .difference(&volatile)
        .map(|k| {
            format!(
                "{k}: {:?} -> {:?}",
                before.get(k).map(|v| &v[..v.len().min(200)]),
                after.get(k).map(|v| &v[..v.len().min(200)])
            )
        })
        .collect();
    assert!(
        differences.is_empty(),
        "the tracer changed the node:\n{}",
        differences.join("\n")
    );
    eprintln!(
        "{} values identical before and after ({} moving ones left out)",
        before.len(),
        volatile.len()
    );
}
