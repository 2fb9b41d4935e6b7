//! Configuration differences between the nodes: sysctls, policy engines, irqbalance, rules,
//! routes and kernel from the documents; drivers, each rule, default routes and RPS/XPS from
//! recordings. Scored by whether the runbook names the configuration for the affected root cause.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    difference::{DiffKind, Difference, BAND_CONTEXT, BAND_NAMED_CONFIG},
    input::RecordedDetail,
    signals::rule_key,
    view::DocumentView,
};

/// Whether the runbook names this configuration for this root cause.
fn named_by_runbook(root_cause: &str, kind: DiffKind, subject: &str) -> bool {
    match root_cause {
        "nic_errors" => matches!(kind, DiffKind::Driver),
        "irq_imbalance" => {
            matches!(kind, DiffKind::Irqbalance | DiffKind::QueueSteering)
                || (kind == DiffKind::Sysctl
                    && matches!(
                        subject,
                        "net.core.netdev_max_backlog"
                            | "net.core.netdev_budget"
                            | "net.core.netdev_budget_usecs"
                    ))
        }
        "tcp_retransmissions" => {
            kind == DiffKind::Sysctl
                && matches!(
                    subject,
                    "net.ipv4.tcp_rmem"
                        | "net.ipv4.tcp_wmem"
                        | "net.core.somaxconn"
                        | "net.ipv4.tcp_max_syn_backlog"
                        | "net.ipv4.tcp_syncookies"
                        | "net.core.rmem_max"
                        | "net.core.wmem_max"
                )
        }
        "security_rule_drops" => {
            matches!(kind, DiffKind::Rule | DiffKind::PolicyEngine)
                || (kind == DiffKind::Sysctl && subject == "net.netfilter.nf_conntrack_max")
        }
        "route_issue" => {
            kind == DiffKind::Route
                || (kind == DiffKind::Sysctl && subject == "net.ipv4.ip_forward")
        }
        _ => false,
    }
}

/// A difference for each item on one side only: "present" where it is, `absent` where not.
fn presence_differences(
    a_view: &DocumentView,
    kind: DiffKind,
    affected: &BTreeSet<String>,
    healthy: &BTreeSet<String>,
    absent: &str,
) -> Vec<Difference> {
    let state = |set: &BTreeSet<String>, item: &String| {
        if set.contains(item) {
            "present"
        } else {
            absent
        }
        .to_owned()
    };
    affected
        .symmetric_difference(healthy)
        .map(|item| {
            config_difference(
                a_view,
                kind,
                item.clone(),
                state(affected, item),
                state(healthy, item),
            )
        })
        .collect()
}

fn config_difference(
    affected: &DocumentView,
    kind: DiffKind,
    subject: String,
    a: String,
    h: String,
) -> Difference {
    let named = affected.degraded() && named_by_runbook(&affected.root_cause, kind, &subject);
    let (score, why) = if named {
        (
            BAND_NAMED_CONFIG,
            format!(
                "the runbook names this {} for {}",
                kind.label(),
                affected.root_cause
            ),
        )
    } else {
        (
            BAND_CONTEXT,
            "configuration difference the runbook does not tie to this verdict".to_owned(),
        )
    };
    Difference {
        kind,
        subject,
        layer: None,
        affected: a,
        healthy: h,
        score,
        why,
    }
}

fn or_absent(v: Option<&String>) -> String {
    v.cloned().unwrap_or_else(|| "(absent)".to_owned())
}

/// Node facts both documents carry: sysctls, policy engines, irqbalance, rule count, bad routes,
/// kernel.
pub(super) fn document_config_differences(
    a: &DocumentView,
    h: &DocumentView,
    rules_in_detail: bool,
    out: &mut Vec<Difference>,
) {
    let keys: BTreeSet<&String> = a.node.sysctls.keys().chain(h.node.sysctls.keys()).collect();
    for key in keys {
        let (va, vh) = (a.node.sysctls.get(key), h.node.sysctls.get(key));
        if va != vh {
            out.push(config_difference(
                a,
                DiffKind::Sysctl,
                key.clone(),
                or_absent(va),
                or_absent(vh),
            ));
        }
    }
    let (ea, eh): (BTreeSet<&String>, BTreeSet<&String>) = (
        a.node.policy_engines.iter().collect(),
        h.node.policy_engines.iter().collect(),
    );
    for engine in ea.symmetric_difference(&eh) {
        out.push(config_difference(
            a,
            DiffKind::PolicyEngine,
            (*engine).clone(),
            if ea.contains(engine) {
                "running"
            } else {
                "not running"
            }
            .to_owned(),
            if eh.contains(engine) {
                "running"
            } else {
                "not running"
            }
            .to_owned(),
        ));
    }
    if let (Some(ia), Some(ih)) = (a.node.irqbalance_running, h.node.irqbalance_running) {
        if ia != ih {
            let state = |b: bool| if b { "running" } else { "not running" }.to_owned();
            out.push(config_difference(
                a,
                DiffKind::Irqbalance,
                "irqbalance".to_owned(),
                state(ia),
                state(ih),
            ));
        }
    }
    if !rules_in_detail {
        if let (Some(ra), Some(rh)) = (a.node.drop_reject_rules, h.node.drop_reject_rules) {
            if ra != rh {
                out.push(config_difference(
                    a,
                    DiffKind::Rule,
                    "DROP/REJECT rules".to_owned(),
                    ra.to_string(),
                    rh.to_string(),
                ));
            }
        }
    }
    // Bad routes, without the namespace label (pods' namespaces differ between nodes).
    let strip = |r: &String| r.split(" in ").next().unwrap_or(r).to_owned();
    let ra: BTreeSet<String> = a
        .node
        .blackhole_or_unreachable_routes
        .iter()
        .map(strip)
        .collect();
    let rh: BTreeSet<String> = h
        .node
        .blackhole_or_unreachable_routes
        .iter()
        .map(strip)
        .collect();
    for route in ra.symmetric_difference(&rh) {
        out.push(config_difference(
            a,
            DiffKind::Route,
            route.clone(),
            if ra.contains(route) {
                "present"
            } else {
                "absent"
            }
            .to_owned(),
            if rh.contains(route) {
                "present"
            } else {
                "absent"
            }
            .to_owned(),
        ));
    }
    let (ka, kh) = (&a.observations.kernel, &h.observations.kernel);
    if !ka.is_empty() && !kh.is_empty() && ka != kh {
        out.push(config_difference(
            a,
            DiffKind::Kernel,
            "kernel release".to_owned(),
            ka.clone(),
            kh.clone(),
        ));
    }
}

/// Facts only recordings carry: drivers and versions, drop/reject rules one by one, default
/// routes, RPS/XPS steering.
pub(super) fn recorded_config_differences(
    a_view: &DocumentView,
    a: &RecordedDetail,
    h: &RecordedDetail,
    out: &mut Vec<Difference>,
) {
    let drivers = |d: &RecordedDetail| -> BTreeMap<String, String> {
        d.counters_end
            .host()
            .map(|host| {
                host.interfaces
                    .iter()
                    .filter_map(|(name, c)| {
                        let driver = c.driver.as_ref()?;
                        Some((
                            name.clone(),
                            format!(
                                "{driver} {}",
                                c.driver_version.as_deref().unwrap_or("(version unknown)")
                            ),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (da, dh) = (drivers(a), drivers(h));
    for (iface, va) in &da {
        if let Some(vh) = dh.get(iface) {
            if va != vh {
                out.push(config_difference(
                    a_view,
                    DiffKind::Driver,
                    format!("{iface} driver"),
                    va.clone(),
                    vh.clone(),
                ));
            }
        }
    }
    let rules = |d: &RecordedDetail| -> BTreeSet<String> {
        d.facts_end.firewall_rules.iter().map(rule_key).collect()
    };
    let (ra, rh) = (rules(a), rules(h));
    out.extend(presence_differences(
        a_view,
        DiffKind::Rule,
        &ra,
        &rh,
        "absent",
    ));
    let defaults = |d: &RecordedDetail| -> BTreeSet<String> {
        d.facts_end
            .routes
            .iter()
            .filter(|r| r.netns_label == "host" && r.dst == "default" && r.kind == "unicast")
            .map(|r| format!("{} default route", r.family))
            .collect()
    };
    let (ga, gh) = (defaults(a), defaults(h));
    out.extend(presence_differences(
        a_view,
        DiffKind::Route,
        &ga,
        &gh,
        "missing",
    ));
    let steering = |d: &RecordedDetail, kind: &str| -> (usize, usize) {
        let masks: Vec<_> = d
            .facts_end
            .queue_masks
            .iter()
            .filter(|m| m.kind == kind)
            .collect();
        let on = masks
            .iter()
            .filter(|m| m.mask.chars().any(|c| c.is_ascii_hexdigit() && c != '0'))
            .count();
        (on, masks.len())
    };
    for kind in ["rps", "xps"] {
        let ((oa, na), (oh, nh)) = (steering(a, kind), steering(h, kind));
        if na > 0 && nh > 0 && (oa == 0) != (oh == 0) {
            out.push(config_difference(
                a_view,
                DiffKind::QueueSteering,
                format!("{} queues steered", kind.to_uppercase()),
                format!("{oa} of {na}"),
                format!("{oh} of {nh}"),
            ));
        }
    }
}
