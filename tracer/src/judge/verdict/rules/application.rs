//! Checks that point away from the network: connects refused by the peer (ECONNREFUSED) and
//! packets to closed ports (NO_SOCKET) are the application's matter. Rules out; never scores.

use super::{Context, Finding};

pub(super) fn assess(ctx: &Context, _earlier: &[Finding]) -> Finding {
    let mut f = Finding::default();
    if ctx.flows.refused > 0 {
        f.rule_out(
            "refused connections (ECONNREFUSED)",
            format!(
                "{} connects were refused with a reset (nobody listening on the port): an application matter, not a network loss",
                ctx.flows.refused
            ),
        );
    }
    if ctx.no_listener > 0 {
        f.rule_out(
            "packets to closed ports (NO_SOCKET)",
            format!(
                "{} packets reached ports nobody listens on: an application matter, not a network loss",
                ctx.no_listener
            ),
        );
    }
    f
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{destination, observed, quiet, window};
    use super::*;
    use crate::judge::flows::ErrorCount;

    #[test]
    fn refusals_and_closed_ports_are_ruled_out_in_that_order() {
        let mut o = observed(&[("NO_SOCKET", "__udp4_lib_rcv+0x4bc", 4)], &[], &[]);
        let mut d = destination("198.18.0.2", 1);
        d.errors = vec![ErrorCount {
            error: "ECONNREFUSED".to_owned(),
            errno: 111,
            count: 3,
        }];
        o.flows.destinations = vec![d];
        let f = assess(&Context::new(&window(o, quiet(), quiet())), &[]);
        let checks: Vec<&str> = f.ruled_out.iter().map(|r| r.check.as_str()).collect();
        assert_eq!(
            checks,
            vec![
                "refused connections (ECONNREFUSED)",
                "packets to closed ports (NO_SOCKET)"
            ]
        );
        assert!(f.ruled_out[0].result.starts_with("3 connects were refused"));
        assert!(f.ruled_out[1].result.starts_with("4 packets reached"));
    }

    #[test]
    fn nothing_refused_nothing_said() {
        let f = assess(
            &Context::new(&window(observed(&[], &[], &[]), quiet(), quiet())),
            &[],
        );
        assert!(f.ruled_out.is_empty());
    }
}
