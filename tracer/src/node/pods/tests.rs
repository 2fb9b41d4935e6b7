//! Pod attribution on recorded trees (`tests/fixtures/pods/`): the systemd cgroup driver on
//! cgroup v2 (containerd, docker and cri-o scopes, a hostNetwork pod, a pod with no
//! `/var/log/pods` entry, garbage cgroup files) and the cgroupfs driver on cgroup v1 (many
//! hierarchies, a static pod's 32-digit UID, a hostNetwork pod, no kubelet directories).

use super::*;

const U1: &str = "8f6e1b2a-3c4d-4e5f-9a0b-1c2d3e4f5a6b";
const U3: &str = "33333333-aaaa-4bbb-8ccc-dddddddddddd";

fn tree(name: &str) -> PodRoots {
    PodRoots::fixture(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/pods")
            .join(name),
    )
}

/// A 64-digit container ID: 63 × `c`, then `last` (as the fixture trees hold them).
fn id(c: char, last: char) -> String {
    std::iter::repeat_n(c, 63)
        .chain(std::iter::once(last))
        .collect()
}

fn hex(c: char) -> String {
    id(c, '1')
}

#[test]
fn uids_are_normalised_and_checked() {
    assert_eq!(
        normalize_uid("8f6e1b2a_3c4d_4e5f_9a0b_1c2d3e4f5a6b").as_deref(),
        Some(U1)
    );
    assert_eq!(
        normalize_uid("8F6E1B2A-3C4D-4E5F-9A0B-1C2D3E4F5A6B").as_deref(),
        Some(U1)
    );
    assert_eq!(
        normalize_uid("6d3f0e8c0c0c4e0d9b3c2a1f0e9d8c7b").as_deref(),
        Some("6d3f0e8c0c0c4e0d9b3c2a1f0e9d8c7b"),
        "static pods: 32 hex digits, no dashes"
    );
    for bad in [
        "",
        "not-a-uid",
        "8f6e1b2a3c4d-4e5f-9a0b-1c2d3e4f5a6b", // dash missing, one moved
        "8f6e1b2a-3c4d-4e5f-9a0b-1c2d3e4f5a6g", // not hex
        "8f6e1b2a-3c4d-4e5f-9a0b-1c2d3e4f5a6b0",
        "--------------------------------",
    ] {
        assert_eq!(normalize_uid(bad), None, "{bad:?}");
    }
}

#[test]
fn cgroup_paths_of_both_drivers_name_pod_and_container() {
    let a = hex('a');
    let cases = [
        // cgroupfs, QoS class below kubepods.
        (format!("/kubepods/burstable/pod{U1}/{a}"), Some(a.clone())),
        // cgroupfs, Guaranteed (no QoS level).
        (format!("/kubepods/pod{U1}/{a}"), Some(a.clone())),
        // The pod's own cgroup (v1 hierarchy not split per container).
        (format!("/kubepods/besteffort/pod{U1}"), None),
        // Nested under another root (kind, `--cgroup-root`).
        (format!("/kubelet/kubepods/burstable/pod{U1}/{a}"), Some(a.clone())),
        // Seen from inside a cgroup namespace.
        (format!("/../../kubepods/besteffort/pod{U1}/{a}"), Some(a.clone())),
        // systemd driver, containerd, docker, cri-o, cri-o's conmon.
        (
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{a}.scope",
                U1.replace('-', "_")
            ),
            Some(a.clone()),
        ),
        (
            format!("/kubepods.slice/kubepods-pod{}.slice/docker-{a}.scope", U1.replace('-', "_")),
            Some(a.clone()),
        ),
        (
            format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/crio-{a}.scope",
                U1.replace('-', "_")
            ),
            Some(a.clone()),
        ),
        (
            format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/crio-conmon-{a}.scope",
                U1.replace('-', "_")
            ),
            Some(a.clone()),
        ),
        // cri-o with cgroupfs.
        (format!("/kubepods/burstable/pod{U1}/crio-{a}"), Some(a.clone())),
    ];
    for (path, container) in cases {
        assert_eq!(
            parse_cgroup_path(&path),
            Some(CgroupPod {
                uid: U1.to_owned(),
                container
            }),
            "{path}"
        );
    }
    for not_a_pod in [
        "/".to_owned(),
        "/user.slice/user-0.slice/session-1.scope".to_owned(),
        format!("/docker/{a}"),
        // A pod-looking segment with no kubepods above it.
        format!("/system.slice/pod{U1}/{a}"),
        // kubepods but no valid UID.
        "/kubepods/burstable/podxyz/abc".to_owned(),
        "/kubepods.slice/kubepods-podzz.slice".to_owned(),
        // kubepods only after the pod segment.
        format!("/pod{U1}/kubepods"),
    ] {
        assert_eq!(parse_cgroup_path(&not_a_pod), None, "{not_a_pod}");
    }
}

#[test]
fn cgroup_files_v1_and_v2_and_garbage() {
    let a = hex('a');
    let v1 = format!(
        "12:pids:/kubepods/besteffort/pod{U1}\n11:memory:/kubepods/besteffort/pod{U1}/{a}\n0::/\n"
    );
    assert_eq!(
        parse_cgroup_file(&v1),
        Some(CgroupPod {
            uid: U1.to_owned(),
            container: Some(a.clone())
        }),
        "the container comes from whichever hierarchy goes down to it"
    );
    let v2 = format!("0::/kubepods/pod{U1}/{a}\n");
    assert_eq!(parse_cgroup_file(&v2).map(|p| p.uid).as_deref(), Some(U1));
    for garbage in [
        "",
        "garbage",
        "::",
        "0::",
        "0:",
        "\u{fffd}\u{fffd}:\n",
        "x:y:/kubepods/podnot-a-uid/zz\n",
        &"9".repeat(10_000),
        "0::/kubepods/pod",
        "0::/kubepods.slice/kubepods-.slice",
        "0::/kubepods.slice/-pod.slice",
    ] {
        assert_eq!(parse_cgroup_file(garbage), None, "{garbage:?}");
    }
}

#[test]
fn log_dir_names_give_namespace_name_and_uid() {
    assert_eq!(
        parse_log_dir(&format!("kube-system_coredns-5d78c9869d-abcde_{U1}")),
        Some((
            "kube-system".to_owned(),
            "coredns-5d78c9869d-abcde".to_owned(),
            U1.to_owned()
        ))
    );
    for bad in [
        "notapod",
        "a_b_c_notauid",
        "a_b",
        &format!("_name_{U1}"),
        &format!("ns__{U1}"),
        &format!("a_b_c_{U1}"),
    ] {
        assert_eq!(parse_log_dir(bad), None, "{bad}");
    }
}

#[test]
fn systemd_cgroup_v2_tree_maps_each_pod_namespace() {
    let roots = tree("systemd-v2");
    let (index, errors) = PodIndex::scan(&roots);
    assert!(errors.is_empty(), "{errors:?}");
    let summary: Vec<(String, Option<u32>, bool, usize, u32)> = index
        .pods
        .iter()
        .map(|p| {
            (
                p.label(),
                p.netns,
                p.host_network,
                p.containers.len(),
                p.pid,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "default/web-0".to_owned(),
                Some(4_026_532_400),
                false,
                1,
                1501
            ),
            (
                "kube-system/coredns-5d78c9869d-abcde".to_owned(),
                Some(4_026_532_301),
                false,
                2,
                1200
            ),
            (
                "kube-system/kube-proxy-x7k2p".to_owned(),
                None,
                true,
                1,
                1300
            ),
            (format!("uid {U3}"), Some(4_026_532_350), false, 1, 1400),
        ]
    );
    let labels = index.labels();
    assert_eq!(
        labels,
        [
            (
                4_026_532_301,
                "kube-system/coredns-5d78c9869d-abcde".to_owned()
            ),
            (4_026_532_350, format!("uid {U3}")),
            (4_026_532_400, "default/web-0".to_owned()),
        ]
        .into_iter()
        .collect::<BTreeMap<_, _>>()
    );
    // The host namespace is never one pod's, though kube-proxy and cri-o's conmon live in it.
    assert_eq!(index.label_of(4_026_531_840), None);
    // Not a pod: the garbage cgroup, the process without one, the session process.
    for inode in [4_026_532_500, 4_026_532_501, 4_026_532_999] {
        assert_eq!(index.label_of(inode), None, "{inode}");
    }
    let coredns = &index.pods[1];
    assert_eq!(coredns.containers, vec![hex('a'), id('b', '2')]);
    assert!(coredns.kubelet_dir);
    assert!(index.pods.iter().all(|p| p.kubelet_dir));
}

#[test]
fn cgroupfs_v1_tree_maps_each_pod_namespace() {
    let (index, errors) = PodIndex::scan(&tree("cgroupfs-v1"));
    assert!(errors.is_empty(), "{errors:?}");
    let summary: Vec<(String, Option<u32>, bool, Vec<String>)> = index
        .pods
        .iter()
        .map(|p| (p.label(), p.netns, p.host_network, p.containers.clone()))
        .collect();
    let f = id('f', '6');
    assert_eq!(
        summary,
        vec![
            (
                "default/batch-job-x2".to_owned(),
                Some(4_026_532_601),
                false,
                vec![
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_owned(),
                    f
                ]
            ),
            (
                "kube-system/etcd-node1".to_owned(),
                Some(4_026_532_602),
                false,
                vec![hex('a')]
            ),
            (
                "monitoring/node-exporter-9z".to_owned(),
                None,
                true,
                vec![id('b', '2')]
            ),
        ]
    );
    assert!(
        index.pods.iter().all(|p| !p.kubelet_dir),
        "no kubelet directories in this tree"
    );
    assert_eq!(
        index.label_of(4_026_532_699),
        None,
        "a docker container is no pod"
    );
    assert_eq!(
        index.label_of(4_026_531_840),
        None,
        "hostNetwork pod: host stays host"
    );
}

#[test]
fn resolve_finds_a_pod_by_name_or_uid_and_explains_misses() {
    let roots = tree("systemd-v2");
    let (index, _) = PodIndex::scan(&roots);
    let (path, inode, pod) = index
        .resolve("kube-system/coredns-5d78c9869d-abcde", &roots.proc)
        .unwrap();
    assert_eq!(path, roots.proc.join("1200/ns/net"));
    assert_eq!(inode, 4_026_532_301);
    assert_eq!(pod.uid, U1);
    // By UID (either form), also for a pod whose name is unknown.
    let (_, inode, _) = index.resolve(&U3.replace('-', "_"), &roots.proc).unwrap();
    assert_eq!(inode, 4_026_532_350);

    let missing = index
        .resolve("default/nope", &roots.proc)
        .unwrap_err()
        .to_string();
    assert_eq!(
        missing,
        format!(
            "--pod default/nope: no such pod runs on this node (expected NAMESPACE/NAME or a pod \
             UID; pods here: default/web-0, kube-system/coredns-5d78c9869d-abcde, \
             kube-system/kube-proxy-x7k2p, uid {U3})"
        )
    );
    let host = index
        .resolve("kube-system/kube-proxy-x7k2p", &roots.proc)
        .unwrap_err()
        .to_string();
    assert!(host.contains("hostNetwork"), "{host}");
    assert_eq!(host.lines().count(), 1);

    let empty = PodIndex::default()
        .resolve("a/b", &roots.proc)
        .unwrap_err()
        .to_string();
    assert!(
        empty.starts_with("--pod a/b: no pod runs on this node"),
        "{empty}"
    );
}

#[test]
fn index_round_trips_through_json_and_merges_newer_facts() {
    let (index, _) = PodIndex::scan(&tree("systemd-v2"));
    let text = serde_json::to_string(&index).unwrap();
    let back: PodIndex = serde_json::from_str(&text).unwrap();
    assert_eq!(back, index);
    let (other, _) = PodIndex::scan(&tree("cgroupfs-v1"));
    let merged = index.merged(&other);
    assert_eq!(merged.pods.len(), index.pods.len() + other.pods.len());
    assert_eq!(merged.labels().len(), 5);
}

#[test]
fn missing_roots_give_an_empty_index_without_errors() {
    let (index, errors) = PodIndex::scan(&PodRoots::fixture(Path::new("/nonexistent/tree")));
    assert!(index.is_empty());
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn node_facts_of_a_fixture_tree_carry_its_pods() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/pods/systemd-v2");
    let facts = crate::node::facts::FactsSource::fixture(&root).collect();
    let (index, _) = PodIndex::scan(&PodRoots::fixture(&root));
    assert_eq!(facts.pods, index);
    assert_eq!(facts.pods.pods.len(), 4);
    // Older recordings (no `pods` key) still load, with no pods.
    let mut value = serde_json::to_value(&facts).unwrap();
    value.as_object_mut().unwrap().remove("pods");
    let old: crate::node::evidence::NodeFacts = serde_json::from_value(value).unwrap();
    assert!(old.pods.is_empty());
}

/// Frames with drops and a retransmitting flow in the coredns pod's namespace (and drops in
/// the host's): the judged document names the pod on each, the host's stay unnamed, and
/// `--pod` on the recorded facts keeps only the pod's.
#[test]
fn judged_documents_name_the_pod_of_each_namespace() {
    use crate::{
        judge::window::{judge, Frame, TracerMeta},
        kernel::snapshot::Snapshot,
        present::dashboard::Dashboard,
    };
    use std::collections::HashMap;
    use tracer_common::{DropKey, FlowKey, FlowStats, FAMILY_INET};

    const POD_NS: u32 = 4_026_532_301;
    const HOST_NS: u32 = 4_026_531_840;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/pods/systemd-v2");
    let facts = crate::node::facts::FactsSource::fixture(&root).collect();
    let mut end = Snapshot::default();
    end.drops.insert(
        DropKey {
            reason: 2,
            netns: POD_NS,
            location: 0x10,
        },
        37,
    );
    end.drops.insert(
        DropKey {
            reason: 2,
            netns: HOST_NS,
            location: 0x10,
        },
        5,
    );
    end.flows = HashMap::from([(
        FlowKey {
            netns: POD_NS,
            family: FAMILY_INET,
            sport: 40000,
            dport: 53,
            _pad: 0,
            saddr: [u32::from_ne_bytes([198, 18, 0, 1]), 0, 0, 0],
            daddr: [u32::from_ne_bytes([198, 18, 0, 2]), 0, 0, 0],
        },
        FlowStats {
            retransmits: 4,
            retransmitted_segments: 4,
            ..FlowStats::default()
        },
    )]);
    let frames = [
        Frame::default(),
        Frame {
            at_ms: 1000,
            snapshot: end,
            ..Frame::default()
        },
    ];
    let symbols: BTreeMap<u64, String> = BTreeMap::new();
    let meta = TracerMeta::default();
    let judged = judge(&frames, &meta, &symbols, None, &facts, &facts, &[]);
    let drops = &judged.document.observations.drops;
    assert_eq!(drops.total, 42);
    let by_ns: Vec<(u32, u64, Option<String>)> = drops.by_reason[0]
        .netns
        .iter()
        .map(|n| (n.inode, n.count, n.pod.clone()))
        .collect();
    let coredns = "kube-system/coredns-5d78c9869d-abcde".to_owned();
    assert_eq!(
        by_ns,
        vec![(POD_NS, 37, Some(coredns.clone())), (HOST_NS, 5, None)]
    );
    let flows = &judged.document.observations.retransmits.flows;
    assert_eq!(flows[0].pod.as_deref(), Some(coredns.as_str()));
    // In JSON: `pod` beside the inode where there is one, absent elsewhere.
    let json = serde_json::to_value(&judged.document).unwrap();
    let netns = &json["observations"]["drops"]["by_reason"][0]["netns"];
    assert_eq!(netns[0]["pod"], coredns.as_str());
    assert!(netns[1].get("pod").is_none());
    // The dashboard shows the pod, whatever the live labels say.
    let labels = BTreeMap::from([(POD_NS, "pid 1200 (pause)".to_owned())]);
    let dash = Dashboard::from_window("t", 1.0, &judged.document, &[], &labels);
    assert_eq!(
        dash.drops[0].namespaces,
        vec![format!("pod {coredns}"), format!("netns {HOST_NS}")]
    );
    assert_eq!(dash.flows[0].namespace, format!("pod {coredns}"));

    // `--pod` on the recorded facts: scoped to the pod's namespace, named in the window.
    let scope = recorded_scope(&facts.pods, &facts.pods, None, &coredns).unwrap();
    assert_eq!(
        (scope.inode, scope.pod.as_deref()),
        (POD_NS, Some(coredns.as_str()))
    );
    let scoped = judge(&frames, &meta, &symbols, Some(&scope), &facts, &facts, &[]);
    assert_eq!(scoped.document.observations.drops.total, 37);
    assert!(scoped
        .document
        .text()
        .contains(&format!("pod {coredns} (netns {POD_NS})")));
    // A recording made for another namespace cannot be narrowed to this pod.
    let other = NetnsScope {
        path: "/run/netns/x".to_owned(),
        inode: 7,
        pod: None,
    };
    let err = recorded_scope(&facts.pods, &facts.pods, Some(&other), &coredns)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("made for namespace /run/netns/x (7) only"),
        "{err}"
    );
    let none = recorded_scope(&PodIndex::default(), &PodIndex::default(), None, "a/b")
        .unwrap_err()
        .to_string();
    assert!(none.contains("the recording holds no pods"), "{none}");
    // A pod the recording does not hold: said of the recording (not "this node"), with its pods.
    let missing = recorded_scope(&facts.pods, &facts.pods, None, "default/nope")
        .unwrap_err()
        .to_string();
    assert_eq!(
        missing,
        format!(
            "--pod default/nope: the recording has no such pod (expected NAMESPACE/NAME or a pod \
             UID; pods in it: default/web-0, {coredns}, kube-system/kube-proxy-x7k2p, uid {U3})"
        )
    );
}
