//! The tools' arguments (camelCase, with JSON Schemas for `tools/list`) and their checks: every
//! bound the issue sets (window 5–300 s, report 1–60 s, rows) is enforced here, with a
//! one-sentence error an agent can act on. Pure: no clock, no node.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

/// Rows a table may return at most, whatever `maxRows` asks.
pub const MAX_ROWS: u64 = 200;
/// Endpoints `live_cluster_health` asks at most.
pub const MAX_ENDPOINTS: usize = 64;

/// `live_network_verdict`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerdictArgs {
    /// The rolling window to judge, in seconds (5 to 300; default 60): the newest frames the
    /// tracer already holds.
    pub window_seconds: Option<u64>,
    /// Only this pod's network namespace: `NAMESPACE/NAME` or the pod's UID.
    pub pod: Option<String>,
    /// Return the verdict of the last `live_network_report` instead (a cancelled report is
    /// still judged and kept here).
    pub last_report: Option<bool>,
}

/// `live_network_report`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportArgs {
    /// How long to watch from now, in seconds (1 to 60; default 10). A progress notification
    /// comes each second; cancelling ends the window early and it is still judged.
    pub duration_seconds: Option<u64>,
    /// Only this pod's network namespace: `NAMESPACE/NAME` or the pod's UID.
    pub pod: Option<String>,
}

/// `live_tcp_flows`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowsArgs {
    /// The rolling window, in seconds (5 to 300; default 60).
    pub window_seconds: Option<u64>,
    /// Only this destination address (IPv4 or IPv6).
    pub address: Option<String>,
    /// Only this destination port.
    pub port: Option<u64>,
    /// Only this pod's network namespace: `NAMESPACE/NAME` or the pod's UID.
    pub pod: Option<String>,
    /// Most destinations returned (1 to 200; default 20), the most troubled first.
    pub max_rows: Option<u64>,
}

/// `live_node_facts`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FactsArgs {
    /// Most rows per list (rules, routes, pods, …; 1 to 200; default 50).
    pub max_rows: Option<u64>,
}

/// `live_compare_nodes`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompareArgs {
    /// The affected node's sidecar, `HOST:PORT` (port 9595 when omitted).
    pub affected: String,
    /// A healthy node's sidecar, `HOST:PORT`.
    pub healthy: String,
    /// The rolling window each sidecar judges, in seconds (5 to 300; default 60).
    pub window_seconds: Option<u64>,
    /// The longest the fetch may take, in seconds (1 to 30; default 10).
    pub timeout_seconds: Option<u64>,
}

/// `live_cluster_health`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterArgs {
    /// The nodes' sidecars, `HOST:PORT` each (port 9595 when omitted); at most 64.
    pub endpoints: Vec<String>,
    /// The rolling window each sidecar judges, in seconds (5 to 300; default 60).
    pub window_seconds: Option<u64>,
    /// The longest the fetch may take, in seconds (1 to 30; default 10).
    pub timeout_seconds: Option<u64>,
}

/// `live_tracer_status`: no arguments.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// `value` (or `default`) when within `min..=max`; else one sentence naming the argument.
pub fn bounded(
    name: &str,
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, String> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(format!("{name} must be between {min} and {max} (got {v})"));
    }
    Ok(v)
}

/// A rolling window (`windowSeconds`, 5–300 s) that the tracer also keeps (`--max-window`).
pub fn rolling_window(value: Option<u64>, kept: Duration) -> Result<Duration, String> {
    let secs = bounded("windowSeconds", value, 60, 5, 300)?;
    if Duration::from_secs(secs) > kept {
        return Err(format!(
            "windowSeconds {secs} is longer than the {} this tracer keeps (--max-window)",
            humantime::format_duration(kept)
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// `durationSeconds` of a forward window (1–60 s, default 10).
pub fn report_duration(value: Option<u64>) -> Result<Duration, String> {
    bounded("durationSeconds", value, 10, 1, 60).map(Duration::from_secs)
}

/// `maxRows` (1–200).
pub fn max_rows(value: Option<u64>, default: u64) -> Result<usize, String> {
    bounded("maxRows", value, default, 1, MAX_ROWS).map(|v| v as usize)
}

/// `timeoutSeconds` of a fetch from sidecars (1–30 s, default 10).
pub fn fetch_timeout(value: Option<u64>) -> Result<Duration, String> {
    bounded("timeoutSeconds", value, 10, 1, 30).map(Duration::from_secs)
}

/// A destination address filter.
pub fn address(value: Option<&str>) -> Result<Option<std::net::IpAddr>, String> {
    value
        .map(|a| {
            a.trim()
                .parse()
                .map_err(|_| format!("address {a:?} is not an IPv4 or IPv6 address"))
        })
        .transpose()
}

/// A destination port filter.
pub fn port(value: Option<u64>) -> Result<Option<u16>, String> {
    value
        .map(|p| {
            u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("port must be between 1 and 65535 (got {p})"))
        })
        .transpose()
}

/// A pod argument: `NAMESPACE/NAME` or a UID, trimmed; empty is refused.
pub fn pod(value: Option<&str>) -> Result<Option<String>, String> {
    match value.map(str::trim) {
        None => Ok(None),
        Some("") => {
            Err("pod is empty; give NAMESPACE/NAME or the pod's UID, or leave it out".into())
        }
        Some(p) => Ok(Some(p.to_owned())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_bounded_with_one_sentence() {
        let kept = Duration::from_secs(300);
        assert_eq!(rolling_window(None, kept), Ok(Duration::from_secs(60)));
        assert_eq!(rolling_window(Some(5), kept), Ok(Duration::from_secs(5)));
        assert_eq!(
            rolling_window(Some(300), kept),
            Ok(Duration::from_secs(300))
        );
        assert_eq!(
            rolling_window(Some(0), kept).unwrap_err(),
            "windowSeconds must be between 5 and 300 (got 0)"
        );
        assert_eq!(
            rolling_window(Some(10_000), kept).unwrap_err(),
            "windowSeconds must be between 5 and 300 (got 10000)"
        );
        assert_eq!(
            rolling_window(Some(120), Duration::from_secs(60)).unwrap_err(),
            "windowSeconds 120 is longer than the 1m this tracer keeps (--max-window)"
        );
        assert_eq!(report_duration(None), Ok(Duration::from_secs(10)));
        assert_eq!(report_duration(Some(60)), Ok(Duration::from_secs(60)));
        assert!(report_duration(Some(0))
            .unwrap_err()
            .contains("between 1 and 60"));
        assert!(report_duration(Some(61)).unwrap_err().contains("(got 61)"));
    }

    #[test]
    fn filters_are_checked() {
        assert_eq!(max_rows(None, 20), Ok(20));
        assert_eq!(max_rows(Some(200), 20), Ok(200));
        assert!(max_rows(Some(201), 20).is_err());
        assert!(max_rows(Some(0), 20).is_err());
        assert_eq!(
            address(Some("198.18.0.2")).unwrap(),
            Some("198.18.0.2".parse().unwrap())
        );
        assert_eq!(
            address(Some("nope")).unwrap_err(),
            "address \"nope\" is not an IPv4 or IPv6 address"
        );
        assert_eq!(port(Some(443)), Ok(Some(443)));
        assert!(port(Some(0)).is_err());
        assert!(port(Some(70_000)).unwrap_err().contains("65535"));
        assert_eq!(pod(Some(" default/web ")), Ok(Some("default/web".into())));
        assert!(pod(Some("  ")).is_err());
        assert_eq!(
            fetch_timeout(Some(31)).unwrap_err(),
            "timeoutSeconds must be between 1 and 30 (got 31)"
        );
    }

    #[test]
    fn unknown_arguments_are_refused() {
        let e = serde_json::from_value::<VerdictArgs>(serde_json::json!({"window": 60}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `window`"), "{e}");
        let ok: VerdictArgs =
            serde_json::from_value(serde_json::json!({"windowSeconds": 30, "pod": "a/b"})).unwrap();
        assert_eq!(ok.window_seconds, Some(30));
    }
}
