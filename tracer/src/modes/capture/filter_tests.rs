#![allow(clippy::unwrap_used)]
use super::*;
use crate::kernel::capture::CaptureOffsets;

fn names() -> BTreeMap<u32, String> {
    // Numbers as a 6.18 kernel has them; the code under test never assumes them.
    [
        (2, "NOT_SPECIFIED"),
        (3, "NO_SOCKET"),
        (12, "NETFILTER_DROP"),
        (30, "IP_OUTNOROUTES"),
        (64, "QDISC_DROP"),
        (200, "MADE_UP"),
    ]
    .into_iter()
    .map(|(n, s)| (n, s.to_owned()))
    .collect()
}

fn config() -> CaptureConfig {
    CaptureOffsets {
        skb_head: 1,
        skb_data: 2,
        skb_len: 3,
        skb_data_len: 4,
        skb_network_header: 5,
        dev_ifindex: 6,
        dev_name: 7,
        skb_tcp_seq: 8,
    }
    .config(128)
}

#[test]
fn reason_names_become_the_kernels_numbers_and_bits() {
    let r = reasons_by_name(
        "netfilter_drop, SKB_DROP_REASON_QDISC_DROP,MADE_UP",
        &names(),
    )
    .unwrap();
    assert_eq!(r, vec![12, 64, 200]);
    let mut c = config();
    CaptureFilter {
        reasons: r,
        ..Default::default()
    }
    .apply(&mut c);
    assert_eq!(c.any_reason, 0);
    assert_eq!(c.reasons, [1 << 12, 1, 0, 1 << (200 - 192)]);
    let err = reasons_by_name("NO_SUCH", &names())
        .unwrap_err()
        .to_string();
    assert!(err.contains("NO_SUCH"), "{err}");
}

#[test]
fn subsystem_reasons_go_into_the_slots() {
    let r = reasons_by_name("NETFILTER_DROP, 0x30001, SUBSYS_2(7), 196610", &names()).unwrap();
    assert_eq!(r, vec![12, 0x30001, 0x20007, 0x30002]);
    let mut c = config();
    CaptureFilter {
        reasons: r,
        ..Default::default()
    }
    .apply(&mut c);
    assert_eq!(c.any_reason, 0);
    assert_eq!(c.reasons, [1 << 12, 0, 0, 0]);
    assert_eq!(c.extra_reasons, [0x30001, 0x20007, 0x30002, 0]);
    // A core reason's number is not a subsystem reason; names are needed for those.
    assert!(reasons_by_name("12", &names()).is_err());
    assert!(reasons_by_name("SUBSYS_0(1)", &names()).is_err());
    let err = reasons_by_name("0x10001,0x10002,0x10003,0x10004,0x10005", &names())
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 4 subsystem reasons"), "{err}");
}

#[test]
fn no_filter_keeps_everything() {
    let mut c = config();
    CaptureFilter::default().apply(&mut c);
    assert_eq!(c.any_reason, 1);
    assert_eq!(
        (c.netns, c.protocol, c.port, c.addr_prefix),
        (ABSENT, ABSENT, ABSENT, ABSENT)
    );
    assert_eq!(c.snaplen, 128);
    assert_eq!(c.skb_network_header, 5);
}

#[test]
fn layers_select_their_reasons() {
    assert_eq!(parse_layer("netfilter").unwrap(), Layer::IptablesNetpolicy);
    assert_eq!(parse_layer("routing").unwrap(), Layer::Routing);
    assert!(parse_layer("moon").is_err());
    assert_eq!(
        reasons_of_layer(Layer::IptablesNetpolicy, &names()),
        vec![12]
    );
    assert_eq!(reasons_of_layer(Layer::Routing, &names()), vec![30]);
}

#[test]
fn hosts_ports_and_protocols() {
    let mut c = config();
    CaptureFilter {
        protocol: Some(parse_protocol("UDP").unwrap()),
        host: Some(parse_host("198.18.3.0/24").unwrap()),
        port: Some(9),
        netns: Some(4026531840),
        reasons: vec![],
    }
    .apply(&mut c);
    assert_eq!((c.protocol, c.port, c.netns), (17, 9, 4026531840));
    assert_eq!((c.addr_version, c.addr_prefix), (4, 24));
    assert_eq!(&c.addr[..5], &[198, 18, 3, 0, 0]);
    assert_eq!(parse_host("fd00::1").unwrap().1, 128);
    assert!(parse_host("198.18.0.0/33").is_err());
    assert!(parse_host("nonsense").is_err());
    assert_eq!(parse_protocol("icmp").unwrap(), 1);
    assert!(parse_protocol("carrier-pigeon").is_err());
}

#[test]
fn limits_are_bounded() {
    assert_eq!(bounded_snaplen(10_000), CAPTURE_MAX_SNAPLEN as u32);
    assert_eq!(bounded_snaplen(0), 20);
    assert_eq!(bucket(1000, 2), (500, 500));
    assert_eq!(bucket(u64::MAX, 1), (100_000_000, 1_000_000));
    assert_eq!(bucket(0, 4), (1, 1));
}
