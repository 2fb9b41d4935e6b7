//! The prompt `diagnose_network_degradation` (runbook D7 walked through with these tools) and
//! the runbook itself as a resource, embedded at build time from `docs/runbook-D7.md`.

/// The runbook's text.
pub const RUNBOOK: &str = include_str!("../../../../docs/runbook-D7.md");
/// Its resource URI.
pub const RUNBOOK_URI: &str = "tracer://runbooks/D7-network-performance-degradation";
/// The prompt's name.
pub const PROMPT: &str = "diagnose_network_degradation";

/// The prompt's text for `node` (the identity the tools report) and an optional pod.
pub fn prompt_text(node: &str, pod: Option<&str>) -> String {
    let scope = pod.map_or_else(String::new, |p| format!(" Scope every call to pod {p}."));
    format!(
        "Diagnose network performance degradation on node {node} with runbook D7 \
         (resource {RUNBOOK_URI}), using the tracer's live MCP tools; they replace collect, \
         search, network_diagnostics, tcpdump_capture, correlate and compare_nodes.{scope}\n\
         1. Triage: call live_tracer_status (probes attached, nothing lost) and \
         live_network_verdict (windowSeconds 60). If root_cause is none and the problem is \
         intermittent, call live_network_report (durationSeconds 30) while it happens.\n\
         2. Rule out the other runbooks: cross_reference names D6/J1 (ENA allowance), D4 \
         (MTU), D3 (conntrack) or D5 (DNS) when their signals were seen; switch runbooks then.\n\
         3. Enrich: live_node_facts for the DROP/REJECT rules with their counters, blackhole \
         routes, sysctls, NIC driver and ENA counters, conntrack fill; live_tcp_flows for the \
         destinations with retransmits, resets, failed connects and RTT.\n\
         4. Scope: live_cluster_health over the nodes' sidecars (node-specific or cluster-wide), \
         live_compare_nodes against a healthy node.\n\
         5. Report in the runbook's Output Format: root_cause, failure_layer, evidence (cite \
         finding_id values), severity, mitigation (operator actions only), cross_reference, \
         with window_start_utc/window_end_utc and onset_utc as the timeline. Say the \
         escalation conditions that hold. Every tool is read-only; remediation is for an \
         operator."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runbook_is_embedded_and_the_prompt_names_every_step() {
        assert!(RUNBOOK.contains("## Output Format"));
        assert!(RUNBOOK.contains("security_rule_drops"));
        let text = prompt_text("i-0abc", Some("shop/cart"));
        for tool in [
            "live_tracer_status",
            "live_network_verdict",
            "live_network_report",
            "live_node_facts",
            "live_tcp_flows",
            "live_cluster_health",
            "live_compare_nodes",
            "finding_id",
            "pod shop/cart",
            "node i-0abc",
        ] {
            assert!(text.contains(tool), "{tool}");
        }
    }
}
