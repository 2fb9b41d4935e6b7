//! The alert rules shipped in `deploy/alerts/`: `promtool check rules` on the rules file and
//! the PrometheusRule's rules, `promtool test rules` on their unit tests (every alert fires on
//! the series it is for and stays silent on the healthy node beside it), and the
//! PrometheusRule holds exactly the rules file's groups (one source of truth). Skips with a
//! printed reason when promtool is missing (`cargo xtask setup` installs Debian's prometheus,
//! which has it). No network, no root: a second or two.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use serde::Deserialize;
use serde_json::Value;

fn alerts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("deploy")
        .join("alerts")
}

fn yaml(name: &str) -> Value {
    let path = alerts_dir().join(name);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    Value::deserialize(yaml_serde::Deserializer::from_str(&text))
        .unwrap_or_else(|e| panic!("{name} is not YAML: {e}"))
}

fn promtool(args: &[&str]) -> Option<(bool, String)> {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(alerts_dir())
        .output()
        .ok()?;
    Some((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[test]
fn the_prometheus_rule_holds_exactly_the_rules_files_groups() {
    let rules = yaml("tracer-rules.yaml");
    let crd = yaml("prometheusrule.yaml");
    assert_eq!(crd["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(crd["kind"], "PrometheusRule");
    assert_eq!(crd["metadata"]["namespace"], "tracer");
    assert_eq!(crd["spec"]["groups"], rules["groups"]);
    let alerts: Vec<&str> = rules["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert_eq!(
        alerts,
        [
            "TracerLayerLosingPackets",
            "TracerUpstreamLossOnManyNodes",
            "TracerNicCrcErrorsRising",
            "TracerProbesDetached",
            "TracerEventsLost",
            "TracerNotReporting"
        ]
    );
    for rule in rules["groups"][0]["rules"].as_array().expect("rules") {
        let name = &rule["alert"];
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                rule["annotations"][key]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{name}: no {key}"
            );
        }
        let says_node = rule["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("$labels.node"));
        assert!(says_node, "{name}: the summary names the node");
        let layer = rule["expr"].as_str().is_some_and(|e| e.contains("layer"))
            || rule["labels"]["layer"].is_string();
        assert!(layer, "{name}: carries a layer");
    }
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let Some((ok, out)) = promtool(&["check", "rules", "tracer-rules.yaml"]) else {
        eprintln!(
            "skipped promtool_checks_and_unit_tests_the_rules: promtool is not installed \
             (cargo xtask setup installs Debian's prometheus package, which has it)"
        );
        return;
    };
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS: 6 rules found"), "{out}");
    // The PrometheusRule's spec as a plain rules file: the same check.
    let spec = yaml("prometheusrule.yaml")["spec"].clone();
    let tmp =
        std::env::temp_dir().join(format!("tracer-prometheusrule-{}.yaml", std::process::id()));
    fs::write(&tmp, serde_json::to_string(&spec).expect("json")).expect("write");
    let (ok, out) = promtool(&["check", "rules", &tmp.display().to_string()]).expect("promtool");
    let _ = fs::remove_file(&tmp);
    assert!(ok && out.contains("SUCCESS: 6 rules found"), "{out}");
    let (ok, out) = promtool(&["test", "rules", "tests.yaml"]).expect("promtool");
    eprintln!("{out}");
    assert!(ok, "promtool test rules failed:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}
