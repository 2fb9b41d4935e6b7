//! The runbook's rules: one per root cause (a layer) and one per cross-reference, each reading
//! the window's context and returning a `Finding`. A rule never sees the verdict; ranking the
//! findings is `decide`'s. Adding a rule: one file here and one line in [`RULES`].

use crate::judge::layers::Layer;

use super::{
    change::CounterDelta, context::Context, facts::host_sysctl, CrossReference, EvidenceItem,
    LayerScore, RuledOut, MIN_RETRANS_RATIO,
};

mod application;
mod cross_d3;
mod cross_d4;
mod cross_d5;
mod cross_d6;
mod irq_imbalance;
mod nic_errors;
mod route_issue;
mod security_rules;
mod tcp_stack;
mod unattributed;
mod upstream_loss;

#[cfg(test)]
use super::fixtures;

/// What one rule found in the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Finding {
    /// The layer this rule scores (None: a cross-reference or a check without a layer).
    pub layer: Option<Layer>,
    /// Packets the layer lost and why.
    pub score: LayerScore,
    /// What the layer's loss is, in a few words (`listen queue overflow`): said when the
    /// layer lost packets but is not the root cause.
    pub summary: String,
    /// Decides the verdict for its layer when no layer lost [`super::MIN_LOSS`] packets.
    pub decides_alone: bool,
    /// Scores drops no layer takes (`layer` is None): the root cause `unattributed_loss` when no
    /// layer lost [`super::MIN_LOSS`] packets, else a finding beside the root cause.
    pub unattributed: bool,
    /// Evidence shown whatever the verdict.
    pub evidence: Vec<EvidenceItem>,
    pub ruled_out: Vec<RuledOut>,
    pub cross_reference: Option<CrossReference>,
    /// Escalations that hold whatever the verdict.
    pub escalation: Vec<String>,
    /// What the verdict says only when this rule's layer is the root cause.
    pub if_root_cause: IfRootCause,
}

/// The parts of the verdict a layer's rule gives only when the layer is the root cause.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct IfRootCause {
    pub evidence: Vec<EvidenceItem>,
    pub escalation: Vec<String>,
    /// The immediate mitigation.
    pub mitigation: String,
}

impl Finding {
    /// A finding for a layer with its score.
    fn layer(layer: Layer, score: LayerScore) -> Self {
        Finding {
            layer: Some(layer),
            score,
            ..Default::default()
        }
    }

    fn rule_out(&mut self, check: &str, result: String) {
        self.ruled_out.push(RuledOut {
            check: check.to_owned(),
            result,
        });
    }
}

/// A rule: reads the window's context and the findings of the rules before it in [`RULES`].
pub(super) type Rule = fn(&Context, &[Finding]) -> Finding;

/// Every rule, in the verdict's order: its ruled_out, cross_reference, escalation and evidence
/// lists follow this order. `upstream_loss` comes after every local layer (it counts the
/// retransmissions they do not explain).
pub(super) const RULES: &[Rule] = &[
    nic_errors::assess,
    cross_d6::assess,
    irq_imbalance::assess,
    security_rules::assess,
    route_issue::assess,
    tcp_stack::assess,
    cross_d4::assess,
    cross_d3::assess,
    cross_d5::assess,
    upstream_loss::assess,
    application::assess,
    unattributed::assess,
];

/// One evidence item.
fn item(kind: &str, content: String) -> EvidenceItem {
    EvidenceItem {
        kind: kind.to_owned(),
        content,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layer_has_exactly_one_rule_and_upstream_comes_after_the_local_layers() {
        let w = fixtures::window(
            fixtures::observed(&[], &[], &[]),
            fixtures::quiet(),
            fixtures::quiet(),
        );
        let ctx = Context::new(&w);
        let mut findings = Vec::new();
        for rule in RULES {
            let f = rule(&ctx, &findings);
            findings.push(f);
        }
        let layers: Vec<Layer> = findings.iter().filter_map(|f| f.layer).collect();
        let mut sorted = layers.clone();
        sorted.sort();
        assert_eq!(sorted, Layer::ALL.to_vec());
        assert_eq!(layers.last(), Some(&Layer::Upstream));
        assert_eq!(RULES.len(), 12);
    }
}
