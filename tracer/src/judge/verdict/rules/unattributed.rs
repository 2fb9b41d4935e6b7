//! Root cause `unattributed_loss` (no layer): drops that neither their reason nor their drop
//! site places in a layer. At least [`MIN_LOSS`] of them are a finding of their own, with the
//! site and the namespace, never silence and never a ruled-out check; fewer stay in the noise.
//! Benign classes (no listener, socket close, purges) are placed elsewhere and never get here.

use super::{item, Context, Finding};
use crate::judge::{layers::location_function, verdict::MIN_LOSS};

/// Sites shown as signals, the most first.
const SHOWN: usize = 4;

pub(super) fn assess(ctx: &Context, _earlier: &[Finding]) -> Finding {
    let mut f = Finding {
        unattributed: true,
        ..Default::default()
    };
    let total: u64 = ctx.unplaced.iter().map(|u| u.count).sum();
    if total < MIN_LOSS {
        return f;
    }
    f.score.lost_packets = total;
    let place = |u: &crate::judge::verdict::UnplacedDrops| {
        let namespaces: Vec<String> = u
            .netns
            .iter()
            .take(2)
            .map(|(inode, pod)| ctx.netns_label(*inode, pod.as_deref()))
            .collect();
        if namespaces.is_empty() {
            String::new()
        } else {
            format!(" in {}", namespaces.join(", "))
        }
    };
    for u in ctx.unplaced.iter().take(SHOWN) {
        f.score.signals.push(format!(
            "{} {} drops at {} the tracer could not place in a layer{}",
            u.count,
            u.reason,
            u.location,
            place(u)
        ));
    }
    let top = &ctx.unplaced[0];
    let function = location_function(&top.location);
    f.summary = format!(
        "{} drops the tracer could not place, at {function}{}",
        thousands(total),
        place(top)
    );
    f.if_root_cause.evidence.push(item(
        "kernel_probe",
        format!(
            "no layer of this tracer takes drops at {function}: the kernel function that freed the packets is named, the layer is not"
        ),
    ));
    f.if_root_cause.mitigation = format!(
        "Operator: find what drops packets at {function}{} — its routes (`ip route`, `ip -6 route`), firewall rules and interfaces — and report the site so the tracer can place it",
        place(top)
    );
    f
}

/// `1998` → `1,998`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{observed, quiet, window};
    use super::*;

    #[test]
    fn two_thousand_drops_at_an_unknown_site_are_a_finding_not_silence() {
        let mut o = observed(&[("NOT_SPECIFIED", "frobnicate_skb+0x14", 2000)], &[], &[]);
        o.drops.by_reason[0].netns = vec![crate::judge::report::NetnsCount {
            inode: 7,
            count: 2000,
            pod: None,
            netns_name: None,
        }];
        let w = window(o, quiet(), quiet());
        let f = assess(&Context::new(&w), &[]);
        assert_eq!(f.score.lost_packets, 2000);
        assert!(f.ruled_out.is_empty());
        assert!(
            f.summary
                .starts_with("2,000 drops the tracer could not place, at frobnicate_skb"),
            "{}",
            f.summary
        );
        assert_eq!(
            f.score.signals[0],
            "2000 NOT_SPECIFIED drops at frobnicate_skb+0x14 the tracer could not place in a layer in netns 7"
        );
    }

    #[test]
    fn a_few_unknown_drops_and_benign_classes_are_not_a_finding() {
        let o = observed(
            &[
                ("NOT_SPECIFIED", "frobnicate_skb+0x14", 9),
                ("NO_SOCKET", "__udp4_lib_rcv+0x4bc", 500),
                ("NOT_SPECIFIED", "skb_queue_purge_reason+0x10", 500),
                ("QUEUE_PURGE", "skb_queue_purge_reason+0x10", 500),
            ],
            &[],
            &[],
        );
        let w = window(o, quiet(), quiet());
        let ctx = Context::new(&w);
        let f = assess(&ctx, &[]);
        assert_eq!(f.score.lost_packets, 0);
        assert_eq!(ctx.noise.by_kind["too few to place: NOT_SPECIFIED"], 9);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(1998), "1,998");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
