//! Root cause `tcp_retransmissions` (layer tcp_stack): listen-queue overflows, socket backlog
//! and receive-buffer drops, TCP validation drops. Scores the layer and says what to tune
//! (somaxconn / tcp_rmem); does not rank.

use crate::judge::layers::Layer;

use super::{host_sysctl, Context, CounterDelta, Finding};

pub(super) fn assess(ctx: &Context, _earlier: &[Finding]) -> Finding {
    let s = &ctx.signals;
    let mut score = ctx.local_score(Layer::TcpStack);
    score
        .signals
        .extend(s.listen.iter().map(CounterDelta::text));
    score
        .signals
        .extend(s.tcp_other.iter().map(CounterDelta::text));
    let mut f = Finding::layer(Layer::TcpStack, score);
    f.summary = if s.listen.is_empty() {
        "receive buffer, backlog or TCP validation drops"
    } else {
        "listen queue overflow"
    }
    .to_owned();
    if f.score.lost_packets == 0 {
        f.rule_out(
            "TCP stack (listen queues, receive buffers)",
            "ListenOverflows/ListenDrops, TCPBacklogDrop, TCPRcvQDrop, RcvbufErrors flat"
                .to_owned(),
        );
    }
    let facts = &ctx.w.facts_end;
    f.if_root_cause.mitigation = if s.listen.is_empty() {
        format!(
            "Operator: the receiving sockets cannot keep up — tune tcp_rmem ({}) / the application's read rate",
            host_sysctl(facts, "net.ipv4.tcp_rmem")
        )
    } else {
        format!(
            "Operator: listen queues overflow — raise net.core.somaxconn (now {}) and net.ipv4.tcp_max_syn_backlog (now {}) via sysctl, and the application's listen backlog; check the application accepts connections fast enough",
            host_sysctl(facts, "net.core.somaxconn"),
            host_sysctl(facts, "net.ipv4.tcp_max_syn_backlog")
        )
    };
    f
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{host, observed, quiet, window};
    use super::*;

    #[test]
    fn listen_drops_count_once_per_namespace_and_the_mitigation_raises_somaxconn() {
        let start = host(
            &[
                ("TcpExt", "ListenOverflows", 5),
                ("TcpExt", "ListenDrops", 5),
            ],
            &[],
            &[],
        );
        let end = host(
            &[
                ("TcpExt", "ListenOverflows", 85),
                ("TcpExt", "ListenDrops", 90),
            ],
            &[],
            &[],
        );
        let mut w = window(observed(&[], &[], &[]), start, end);
        w.facts_end
            .sysctls
            .insert("net.core.somaxconn".to_owned(), "4096".to_owned());
        let f = assess(&Context::new(&w), &[]);
        // ListenDrops includes ListenOverflows: the larger, 85, not 165.
        assert_eq!(f.score.lost_packets, 85);
        assert_eq!(f.score.signals.len(), 2);
        assert!(f.ruled_out.is_empty());
        assert!(f
            .if_root_cause
            .mitigation
            .starts_with("Operator: listen queues overflow — raise net.core.somaxconn (now 4096) and net.ipv4.tcp_max_syn_backlog (now unknown)"));
    }

    #[test]
    fn receive_buffer_drops_point_at_tcp_rmem() {
        let w = window(
            observed(
                &[("SOCKET_RCVBUFF", "sock_queue_rcv_skb_reason+0x1", 40)],
                &[],
                &[],
            ),
            quiet(),
            quiet(),
        );
        let f = assess(&Context::new(&w), &[]);
        assert_eq!(f.score.lost_packets, 40);
        assert!(f.if_root_cause.mitigation.starts_with(
            "Operator: the receiving sockets cannot keep up — tune tcp_rmem (unknown)"
        ));
    }

    #[test]
    fn flat_counters_rule_the_tcp_stack_out() {
        let w = window(observed(&[], &[], &[]), quiet(), quiet());
        let f = assess(&Context::new(&w), &[]);
        assert_eq!(f.score.lost_packets, 0);
        assert_eq!(
            f.ruled_out[0].check,
            "TCP stack (listen queues, receive buffers)"
        );
    }
}
