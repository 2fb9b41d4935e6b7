//! Issue 22: a node with 250 idle pods' namespaces judges a fault like a node with none. The
//! netfilter drop of `scenarios::security_rule_drop_on_the_forward_path` with 250 idle
//! namespaces (a veth between each two) beside it; the facts of unchanged namespaces are not
//! read again. Privileged; run with `--test-threads=1`. Prints (never asserts) the timings.

mod lab;

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    os::unix::fs::MetadataExt as _,
    time::{Duration, Instant},
};

use lab::{
    crowd::Crowd,
    privileged, udp_stream,
    window::{assert_verdict, evidence_text, judge_with},
    Routed,
};
use tracer::{
    modes::live::LiveTracer,
    modes::watch::Watch,
    node::counters::CounterSource,
    node::facts::{FactsCache, FactsSource},
};

const IDLE: usize = 250;

fn inode(path: &std::path::Path) -> u32 {
    u32::try_from(std::fs::metadata(path).expect("namespace file").ino()).expect("inode")
}

#[test]
fn a_rule_drop_is_judged_the_same_beside_250_idle_namespaces() {
    if !privileged("scale_rule_drop") {
        return;
    }
    let made = Instant::now();
    let crowd = Crowd::new(IDLE);
    eprintln!("{IDLE} idle namespaces made in {:?}", made.elapsed());
    let lab = Routed::new("scl", 40);
    lab.router.nft(&format!(
        "table inet trcpol {{\n\
           chain forward {{\n\
             type filter hook forward priority 0; policy accept;\n\
             ip daddr {} udp dport 9000 counter drop\n\
           }}\n\
         }}\n",
        lab.server_addr
    ));

    let started = Instant::now();
    let tracer = LiveTracer::start().expect("starting the tracer");
    let attached = started.elapsed();
    // An unscoped window opens without waiting for the facts of the whole node.
    let watch = Watch::begin(&tracer, CounterSource::live(), FactsSource::live(), None)
        .expect("window start");
    let opened = started.elapsed();
    // The first frame's counters are read in the background after the window opened; judging
    // waits for them, and they hold every namespace (a fixed window's deltas need real
    // readings at its start).
    let judged = watch.judge_rolling(&tracer, &[]);
    let first = &watch.recording(&tracer, &judged, 0).frames[0].counters;
    assert!(
        first.netns.len() > IDLE,
        "the first frame read {} namespaces",
        first.netns.len()
    );
    let ready = watch.facts().netns_names.len();
    eprintln!(
        "start-up: probes attached {:.0} ms (tracer's own count {:.0} ms), window open {:.0} ms, \
         facts of {ready} named namespaces read {:.0} ms",
        attached.as_secs_f64() * 1e3,
        tracer.startup_ms,
        opened.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64() * 1e3
    );
    drop(watch);

    let to: SocketAddr = format!("{}:9000", lab.server_addr).parse().expect("addr");
    let client = lab.client.path();
    let (doc, sent) = judge_with(&tracer, &lab.router, 5, move || {
        udp_stream(&client, to, Duration::from_secs(4), 200, 100, false)
            .join()
            .expect("sender")
    });
    // What scenarios.rs asserts for the same fault without the crowd.
    assert_verdict(&doc, "security_rule_drops", "iptables_netpolicy");
    let text = evidence_text(&doc);
    assert!(text.contains("NETFILTER_DROP"), "{text}");
    assert!(
        text.contains("dport 9000") && text.contains("hook forward"),
        "{text}"
    );
    let lost = doc.layer_scores[&tracer::judge::layers::Layer::IptablesNetpolicy].lost_packets;
    assert_eq!(
        lost, sent,
        "every datagram the client sent was dropped by the rule"
    );
    drop(crowd);
}

#[test]
fn unchanged_namespaces_are_not_read_again_among_250() {
    if !privileged("scale_facts_by_change") {
        return;
    }
    let crowd = Crowd::new(IDLE);
    let watched: Vec<u32> = crowd
        .names
        .iter()
        .map(|n| inode(&std::path::Path::new("/run/netns").join(n)))
        .collect();
    let source = FactsSource::live();
    let full = Instant::now();
    let listed = source.collect_full();
    let full = full.elapsed();
    let mut cache = FactsCache::default();
    let first = Instant::now();
    source.collect_changed(&mut cache, &BTreeSet::new());
    let first = first.elapsed();
    let again = Instant::now();
    let kept = source.collect_changed(&mut cache, &BTreeSet::new());
    let again = again.elapsed();
    eprintln!(
        "facts of {} namespaces: every one listed {:.0} ms; first round by change {:.0} ms; \
         a round with nothing changed {:.1} ms",
        watched.len(),
        full.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        again.as_secs_f64() * 1e3
    );
    for inode in &watched {
        let reads = cache.reads(*inode);
        assert_eq!(
            (reads.nft, reads.routes),
            (1, 1),
            "namespace {inode} was read once, at the first round"
        );
        // Nor entered again: the legacy rules' mark (where the module is loaded) is asked
        // on the sockets kept from the first visit.
        assert_eq!(reads.visits, 1, "namespace {inode} was entered again");
        // Nor asked for its nftables generation or its routes: its subscriptions were silent.
        assert_eq!(
            reads.checks, 0,
            "namespace {inode} was checked though silent"
        );
    }
    // The kept facts are what a full listing shows for these namespaces.
    let ours = |routes: &[tracer::node::evidence::RouteFact]| -> usize {
        routes.iter().filter(|r| watched.contains(&r.netns)).count()
    };
    assert_eq!(ours(&kept.routes), ours(&listed.routes));
    assert!(ours(&kept.routes) >= IDLE, "a route per veth end at least");
    drop(crowd);
}
