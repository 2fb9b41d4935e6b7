//! Tests of the counter collector: recorded node trees under `tests/fixtures/` and, as root, the
//! live node with a namespace the test creates and deletes. Host settings are never changed.

use std::{
    collections::BTreeMap,
    fs::File,
    net::UdpSocket,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use super::*;
use crate::node::evidence::SoftnetRow;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn ena_sample(tree: &str) -> CounterSample {
    CounterSource::fixture(&fixtures().join("nodes").join(tree)).sample(0)
}

#[test]
fn fixture_source_paths() {
    let src = CounterSource::fixture(Path::new("/rec"));
    assert_eq!(src.proc_root, PathBuf::from("/rec/proc"));
    assert_eq!(src.sys_root, PathBuf::from("/rec/sys"));
    assert_eq!(src.run_netns, PathBuf::from("/rec/run/netns"));
    assert!(!src.live);
    let live = CounterSource::live();
    assert_eq!(live.proc_root, PathBuf::from("/proc"));
    assert_eq!(live.sys_root, PathBuf::from("/sys"));
    assert_eq!(live.run_netns, PathBuf::from("/run/netns"));
    assert!(live.live);
}

#[test]
fn fixture_ena_node_sample() {
    let sample = ena_sample("ena-errors");
    assert_eq!(sample.errors, Vec::<String>::new());
    assert_eq!(sample.at_ms, 0);
    assert_eq!(sample.netns.len(), 1);
    let host = sample.host().unwrap();
    assert_eq!(host.inode, 0);
    assert_eq!(host.label, "host");
    assert!(host.is_host);
    assert_eq!(sample.netns(0), Some(host));

    // snmp + netstat merged.
    assert_eq!(host.get("Tcp", "RtoMin"), 200);
    assert_eq!(host.get("Tcp", "MaxConn"), -1);
    assert_eq!(host.get("Udp", "NoPorts"), 100);
    assert_eq!(host.get("TcpExt", "TW"), 12);
    assert_eq!(host.get("IpExt", "InOctets"), 202_740_664);
    assert!(host.snmp.contains_key("MPTcpExt"));

    let ct = host.conntrack.as_ref().unwrap();
    assert_eq!(ct.count, 1200);
    assert_eq!(ct.max, 262_144);
    assert_eq!(ct.stats.len(), 17);
    assert_eq!(ct.stats["entries"], 1200);
    assert_eq!(ct.stats["drop"], 12);
    assert_eq!(ct.stats["insert_failed"], 3);
    assert_eq!(ct.stats["invalid"], 7);
    assert_eq!(ct.stats["search_restart"], 3);

    // eth0: sysfs statistics override /proc/net/dev and add the sysfs-only names.
    let names: Vec<&str> = host.interfaces.keys().map(String::as_str).collect();
    assert_eq!(names, ["eth0", "lo"]);
    let eth0 = &host.interfaces["eth0"];
    assert_eq!(eth0.stats.len(), 24);
    assert_eq!(eth0.stats["rx_crc_errors"], 17);
    assert_eq!(eth0.stats["rx_errors"], 17);
    assert_eq!(eth0.stats["rx_dropped"], 4);
    assert_eq!(eth0.stats["tx_dropped"], 2);
    assert_eq!(eth0.stats["rx_missed_errors"], 0);
    assert_eq!(eth0.stats["rx_nohandler"], 0);
    assert_eq!(eth0.stats["rx_packets"], 1_999_998);
    assert_eq!(eth0.stats["tx_bytes"], 304_280);
    assert_eq!(eth0.driver.as_deref(), Some("ena"));
    assert_eq!(eth0.driver_version.as_deref(), Some("2.7.1g"));
    assert_eq!(eth0.qdisc, None);
    assert_eq!(eth0.ethtool.len(), 86);
    assert_eq!(eth0.ethtool["pps_allowance_exceeded"], 4521);
    assert_eq!(eth0.ethtool["bw_in_allowance_exceeded"], 12);
    assert_eq!(eth0.ethtool["bw_out_allowance_exceeded"], 0);
    assert_eq!(eth0.ethtool["conntrack_allowance_exceeded"], 0);
    assert_eq!(eth0.ethtool["linklocal_allowance_exceeded"], 3);
    assert_eq!(eth0.ethtool["conntrack_allowance_available"], 136_781);
    assert_eq!(eth0.ethtool["queue_0_tx_queue_stop"], 2);
    assert_eq!(eth0.ethtool["queue_1_tx_queue_stop"], 1);
    assert_eq!(eth0.ethtool["queue_1_rx_cnt"], 1_000_000);
    assert_eq!(eth0.ethtool["ena_admin_q_completed_cmd"], 42);

    let lo = &host.interfaces["lo"];
    assert_eq!(lo.stats.len(), 24);
    assert_eq!(lo.stats["rx_packets"], 230);
    assert_eq!(lo.driver, None);
    assert_eq!(lo.driver_version, None);
    assert!(lo.ethtool.is_empty());

    assert_eq!(
        sample.softnet,
        vec![
            SoftnetRow {
                cpu: 0,
                processed: 0x0012_d687,
                dropped: 3,
                time_squeeze: 0x2a,
                received_rps: 0x10,
                flow_limit_count: 2,
                backlog_len: Some(0),
            },
            SoftnetRow {
                cpu: 1,
                processed: 0x0001_e240,
                dropped: 0,
                time_squeeze: 5,
                received_rps: 1,
                flow_limit_count: 0,
                backlog_len: Some(4),
            },
        ]
    );
    assert_eq!(sample.softirqs["NET_RX"], vec![1_873_406, 16_723]);
    assert_eq!(sample.softirqs["NET_TX"], vec![48, 49]);
    assert_eq!(sample.softirqs.len(), 10);

    let ena_rows: Vec<(&str, &[u64])> = sample
        .interrupts
        .iter()
        .filter(|l| l.name.contains("eth0-Tx-Rx-") || l.name.contains("ena-mgmnt"))
        .map(|l| (l.irq.as_str(), l.per_cpu.as_slice()))
        .collect();
    assert_eq!(
        ena_rows,
        [
            ("24", &[0, 0][..]),
            ("25", &[1_234_567, 3][..]),
            ("26", &[2, 765_432][..])
        ]
    );
    let q0 = sample.interrupts.iter().find(|l| l.irq == "25").unwrap();
    assert_eq!(q0.name, "PCI-MSI 81921-edge      eth0-Tx-Rx-0");
    let err = sample.interrupts.iter().find(|l| l.irq == "ERR").unwrap();
    assert_eq!(err.per_cpu, vec![0]);
    assert_eq!(sample.interrupts.len(), 15);
}

#[test]
fn fixture_later_sample_shows_errors_increasing() {
    let before = ena_sample("ena-errors");
    let after = ena_sample("ena-errors-later");
    assert!(after.errors.is_empty(), "{:?}", after.errors);
    let eth0 = |s: &CounterSample| s.host().unwrap().interfaces["eth0"].clone();
    let (b, a) = (eth0(&before), eth0(&after));
    assert_eq!(a.stats["rx_crc_errors"], 29);
    assert_eq!(a.stats["rx_errors"], 29);
    assert_eq!(a.ethtool["pps_allowance_exceeded"], 9876);
    for name in ["rx_crc_errors", "rx_errors"] {
        assert!(a.stats[name] > b.stats[name], "{name}");
    }
    assert!(a.ethtool["pps_allowance_exceeded"] > b.ethtool["pps_allowance_exceeded"]);
    // Everything else is the same node.
    assert_eq!(a.driver, b.driver);
    assert_eq!(a.ethtool.len(), b.ethtool.len());
    assert_eq!(before.softnet, after.softnet);
}

#[test]
fn fixture_sample_of_this_machines_proc_copy() {
    // tests/fixtures/proc is a copy of this machine's files; there is no sys/ tree beside it.
    let sample = CounterSource::fixture(&fixtures()).sample(7);
    assert_eq!(sample.errors, Vec::<String>::new());
    assert_eq!(sample.at_ms, 7);
    let host = sample.host().unwrap();
    assert_eq!(host.get("Tcp", "MaxConn"), -1);
    assert_eq!(host.get("Udp", "NoPorts"), 100);
    let ct = host.conntrack.as_ref().unwrap();
    assert_eq!((ct.count, ct.max), (0, 262_144));
    assert_eq!(ct.stats.len(), 17);
    let eth0 = &host.interfaces["eth0"];
    assert_eq!(eth0.stats.len(), 16, "only the /proc/net/dev columns");
    assert_eq!(eth0.stats["rx_packets"], 6893);
    assert_eq!(eth0.driver, None);
    assert_eq!(sample.softnet.len(), 2);
    assert_eq!(sample.softirqs["NET_RX"], vec![17131, 1_873_864]);
    assert_eq!(sample.interrupts.len(), 35);
}

#[test]
fn fixture_of_a_missing_tree_reports_each_unreadable_file() {
    let sample = CounterSource::fixture(Path::new("/nonexistent/trc-ctr")).sample(1);
    let host = sample.host().unwrap();
    assert!(host.snmp.is_empty());
    assert!(host.interfaces.is_empty());
    assert_eq!(host.conntrack, None, "no conntrack module is not an error");
    assert!(sample.softnet.is_empty());
    // snmp, netstat, dev, softnet_stat, softirqs, interrupts.
    assert_eq!(sample.errors.len(), 6, "{:?}", sample.errors);
    assert!(sample.errors.iter().all(|e| e.contains("cannot read")));
    assert!(sample.errors[0].starts_with("host: cannot read /nonexistent/trc-ctr/proc/net/snmp"));
}

#[test]
fn fixture_with_garbage_files_does_not_panic() {
    let root = std::env::temp_dir().join(format!("trc-ctr-garbage-{}", std::process::id()));
    let proc_net = root.join("proc/net");
    let netfilter = root.join("proc/sys/net/netfilter");
    let stats = root.join("sys/class/net/eth0/statistics");
    std::fs::create_dir_all(proc_net.join("stat")).unwrap();
    std::fs::create_dir_all(&netfilter).unwrap();
    std::fs::create_dir_all(&stats).unwrap();
    let garbage = "\u{0}\u{1}:: x\nTcp: 1 2\n\u{ff}\n";
    for f in [
        "snmp",
        "netstat",
        "dev",
        "softnet_stat",
        "stat/nf_conntrack",
    ] {
        std::fs::write(proc_net.join(f), garbage).unwrap();
    }
    for f in ["softirqs", "interrupts"] {
        std::fs::write(root.join("proc").join(f), garbage).unwrap();
    }
    std::fs::write(netfilter.join("nf_conntrack_count"), "lots\n").unwrap();
    std::fs::write(stats.join("rx_errors"), "nope").unwrap();
    std::fs::write(stats.join("rx_dropped"), "3\n").unwrap();
    std::fs::write(root.join("sys/class/net/eth0/ethtool_stats"), garbage).unwrap();
    let sample = CounterSource::fixture(&root).sample(2);
    std::fs::remove_dir_all(&root).unwrap();
    let host = sample.host().unwrap();
    assert!(host.snmp.is_empty());
    assert_eq!(host.conntrack, None);
    // No /proc/net/dev rows: interfaces come from sysfs.
    assert_eq!(
        host.interfaces["eth0"].stats,
        BTreeMap::from([("rx_dropped".to_owned(), 3)]).into()
    );
    assert!(!sample.errors.is_empty());
    assert!(
        sample.errors.iter().any(|e| e.contains("rx_errors")),
        "{:?}",
        sample.errors
    );
}

#[test]
fn sample_round_trips_through_json() {
    let sample = ena_sample("ena-errors");
    let json = serde_json::to_string(&sample).unwrap();
    let back: CounterSample = serde_json::from_str(&json).unwrap();
    assert_eq!(back, sample);
}

// ---- live -------------------------------------------------------------------------------------

fn skip_unless_root() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (setns, ip netns)");
        return true;
    }
    false
}

use crate::testkit::netns::NetnsGuard;

#[test]
fn live_sample_sees_the_host_and_a_new_namespace() {
    if skip_unless_root() {
        return;
    }
    let name = format!("trc-ctr-{}", std::process::id());
    let Some(ns) = NetnsGuard::add(&name) else {
        return;
    };
    let up = Command::new("ip")
        .args(["-n", &name, "link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(up.success());
    let path = ns.path();
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..5 {
            socket.send_to(b"trc", "127.0.0.1:9").unwrap();
        }
    })
    .join()
    .unwrap();

    let label = format!("netns {name}");
    let deadline = Instant::now() + Duration::from_secs(2);
    let (sample, elapsed) = loop {
        let began = Instant::now();
        let sample = CounterSource::live().sample(5);
        let elapsed = began.elapsed();
        let done = sample
            .netns
            .iter()
            .find(|n| n.label == label)
            .is_some_and(|n| n.get("Udp", "NoPorts") >= 5);
        if done || Instant::now() > deadline {
            break (sample, elapsed);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "live sample: {} namespaces in {elapsed:?}; errors: {:?}",
        sample.netns.len(),
        sample.errors
    );
    assert_eq!(sample.at_ms, 5);

    let host = sample.host().expect("a host namespace");
    assert_eq!(host.label, "host");
    assert!(!host.snmp["Tcp"].is_empty());
    assert!(host.interfaces.contains_key("lo"));
    assert!(host.interfaces["lo"].stats.contains_key("rx_nohandler"));
    assert!(!sample.softnet.is_empty());
    assert!(sample.softirqs.contains_key("NET_RX"));
    assert!(!sample.interrupts.is_empty());

    let created = sample
        .netns
        .iter()
        .find(|n| n.label == label)
        .expect("the created namespace");
    assert!(!created.is_host);
    assert_ne!(created.inode, host.inode);
    assert_eq!(created.get("Udp", "NoPorts"), 5);
    assert!(created.interfaces.contains_key("lo"));
    assert!(created.interfaces["lo"].stats["rx_packets"] >= 5);
    assert!(
        created.interfaces["lo"].ethtool.is_empty(),
        "ethtool is for the host only"
    );
    assert!(
        !sample.errors.iter().any(|e| e.starts_with(&label)),
        "{:?}",
        sample.errors
    );
    // Its cost is measured by `cargo xtask bench` (sampling time per namespace), not here.
    eprintln!("one live sample took {elapsed:?}");
    drop(ns);
    assert!(!PathBuf::from("/run/netns").join(&name).exists());
}

#[test]
fn live_host_drivers_match_sysfs() {
    if skip_unless_root() {
        return;
    }
    let sample = CounterSource::live().sample(0);
    let host = sample.host().expect("a host namespace");
    for (name, iface) in &host.interfaces {
        let link = std::fs::read_link(format!("/sys/class/net/{name}/device/driver"));
        let Ok(link) = link else { continue };
        let sysfs = link.file_name().unwrap().to_string_lossy().into_owned();
        eprintln!(
            "{name}: driver {:?} {:?} (sysfs {sysfs}), {} ethtool statistics",
            iface.driver,
            iface.driver_version,
            iface.ethtool.len()
        );
        assert!(iface.driver.is_some(), "{name}");
        if sysfs == "virtio_net" {
            assert_eq!(iface.driver.as_deref(), Some("virtio_net"));
            assert!(!iface.ethtool.is_empty(), "virtio_net has queue statistics");
        }
    }
    assert!(
        !sample.errors.iter().any(|e| e.contains("ethtool")),
        "{:?}",
        sample.errors
    );
}

/// Sends `count` datagrams to a closed port inside the namespace at `path` (each counted in
/// its `Udp NoPorts`).
fn closed_port_datagrams(path: PathBuf, count: usize) {
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..count {
            socket.send_to(b"trc", "127.0.0.1:9").unwrap();
        }
    })
    .join()
    .unwrap();
}

/// The files kept open between samples give new readings: traffic between two samples of one
/// source shows in the second, read through the same kept files; they are closed when the
/// namespace is gone.
#[test]
fn live_kept_files_give_new_readings_and_close_with_the_namespace() {
    if skip_unless_root() {
        return;
    }
    let name = format!("trc-kept-{}", std::process::id());
    let Some(ns) = NetnsGuard::add(&name) else {
        return;
    };
    assert!(ns.run("ip", &["link", "set", "lo", "up"]));
    let inode = crate::node::netns::inode_of(&ns.path()).unwrap();
    let source = CounterSource::live();
    let no_ports = |sample: &CounterSample| sample.netns(inode).map(|n| n.get("Udp", "NoPorts"));
    let first = source.sample(1);
    assert_eq!(no_ports(&first), Some(0), "{:?}", first.errors);
    let kept_files = || {
        source
            .remembered
            .memory()
            .kept
            .get(&inode)
            .map(KeptFiles::len)
    };
    // snmp, netstat, conntrack's files where the module is loaded, and the netlink socket.
    assert!(kept_files().unwrap() >= 3, "{:?}", kept_files());
    for round in 1..=3 {
        closed_port_datagrams(ns.path(), 5);
        let want = Some(5 * round as i64);
        // Loopback delivers in the sender's softirq; allow a moment all the same.
        let deadline = Instant::now() + Duration::from_secs(2);
        let later = loop {
            let later = source.sample(1 + round);
            if no_ports(&later) == want || Instant::now() > deadline {
                break later;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(no_ports(&later), want, "{:?}", later.errors);
        assert!(
            !later.errors.iter().any(|e| e.contains(&name)),
            "{:?}",
            later.errors
        );
    }
    assert_eq!(kept_files(), kept_files(), "the same set each time");
    drop(ns);
    let after = source.sample(10);
    assert!(after.netns(inode).is_none());
    assert!(kept_files().is_none(), "closed with the namespace");
}
