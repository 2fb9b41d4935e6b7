//! `TRACER_AS_KERNEL=5.10|5.15|6.1` (hidden; for tests and support): the running kernel is read
//! the way an older one is. Its probes keep this kernel's offsets (the records are this kernel's)
//! but read only the fields that version's recorded formats have; a tracepoint that version
//! lacks is not attached; drop reasons that version does not name are `NOT_SPECIFIED` (its
//! call site freed the packet without a reason) and, without a reason field, drops go by their
//! location alone. BTF offsets stay (the emulated kernels ship BTF). The recorded kernels are
//! read from `tests/fixtures/kernels/<version>/` (`TRACER_KERNELS_DIR` overrides the directory).

use std::{collections::BTreeSet, path::PathBuf};

use anyhow::{bail, Result};
use tracer_common::{TracerConfig, ABSENT, CONFIG_WORDS};

use crate::kernel::{
    probes::{ProbeState, ProbeStatus},
    startup::{prepare, KernelSources, Startup},
};

/// The environment variable that selects the emulated kernel.
pub const AS_KERNEL_VAR: &str = "TRACER_AS_KERNEL";
/// The environment variable that says where the recorded kernels are.
pub const KERNELS_DIR_VAR: &str = "TRACER_KERNELS_DIR";
/// The kernels that can be emulated.
pub const VERSIONS: [&str; 3] = ["5.10", "5.15", "6.1"];

/// The recorded kernel's directory.
fn recorded_dir(version: &str) -> PathBuf {
    std::env::var_os(KERNELS_DIR_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/kernels"
            ))
        })
        .join(version)
}

/// The version `TRACER_AS_KERNEL` asks for, if set.
pub fn requested() -> Option<String> {
    std::env::var(AS_KERNEL_VAR).ok().filter(|v| !v.is_empty())
}

/// Narrows `host` (this kernel's start-up) to what `version` provides.
pub fn emulate(host: &mut Startup, version: &str) -> Result<()> {
    if !VERSIONS.contains(&version) {
        bail!(
            "{AS_KERNEL_VAR}={version} is not a kernel the tracer can emulate: use one of {}",
            VERSIONS.join(", ")
        );
    }
    let dir = recorded_dir(version);
    if !dir.join("tracing").is_dir() {
        bail!(
            "{AS_KERNEL_VAR}={version}: the recorded kernel is not at {} (set {KERNELS_DIR_VAR} to the tests/fixtures/kernels directory)",
            dir.display()
        );
    }
    let old = prepare(&KernelSources::recorded(&dir));
    narrow(host, &old, version);
    Ok(())
}

/// Every field of the configuration in declaration order. It is `repr(C)` with
/// [`CONFIG_WORDS`] `u32` fields, which tracer-common asserts by its size; the alignment is
/// checked here.
const _: () = assert!(
    std::mem::size_of::<TracerConfig>() == CONFIG_WORDS * 4
        && std::mem::align_of::<TracerConfig>() == 4
);

fn words(c: &TracerConfig) -> &[u32] {
    // SAFETY: a repr(C) struct of CONFIG_WORDS u32s (asserted above) is that many aligned u32s
    // without padding; the slice borrows `c` for its whole life.
    unsafe { std::slice::from_raw_parts((c as *const TracerConfig).cast::<u32>(), CONFIG_WORDS) }
}

fn words_mut(c: &mut TracerConfig) -> &mut [u32] {
    // SAFETY: as in `words`; the mutable borrow of `c` is exclusive for the slice's life.
    unsafe { std::slice::from_raw_parts_mut((c as *mut TracerConfig).cast::<u32>(), CONFIG_WORDS) }
}

/// The words of the configuration read from this kernel's BTF (struct offsets), which an
/// emulated kernel keeps.
fn btf_words(c: &mut TracerConfig) -> [&mut u32; 21] {
    [
        &mut c.skb_dev,
        &mut c.skb_sk,
        &mut c.dev_net,
        &mut c.sk_net,
        &mut c.net_inum,
        &mut c.skb_tcp_segs,
        &mut c.sk_family,
        &mut c.sk_state,
        &mut c.sk_num,
        &mut c.sk_dport,
        &mut c.sk_rcv_saddr,
        &mut c.sk_daddr,
        &mut c.sk_v6_rcv_saddr,
        &mut c.sk_v6_daddr,
        &mut c.tp_srtt_us,
        &mut c.sk_protocol,
        &mut c.sk_err,
        &mut c.req_common,
        &mut c.skb_head,
        &mut c.skb_data,
        &mut c.skb_network_header,
    ]
}

/// The pure part of [`emulate`]: `host` keeps only what `old` has.
pub(crate) fn narrow(host: &mut Startup, old: &Startup, version: &str) {
    // BTF offsets (namespaces, sockets) are this kernel's and stay: the recordings have no BTF, the real kernels do.
    let mut with_btf = host.plan.config;
    let old_words = words(&old.plan.config).to_vec();
    for (word, was) in words_mut(&mut host.plan.config).iter_mut().zip(old_words) {
        if was == ABSENT {
            *word = ABSENT;
        }
    }
    for (word, kept) in btf_words(&mut host.plan.config)
        .into_iter()
        .zip(btf_words(&mut with_btf))
    {
        *word = *kept;
    }

    // Its release: whether runs may nest there (its programs keep their slot guards).
    host.plan.kernel_release = crate::kernel::hooks::parse_release(version);

    // Tracepoints the old kernel lacks are not attached.
    let old_ready: BTreeSet<&str> = old.plan.ready.iter().map(|(s, _)| s.program).collect();
    let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut host.plan.ready)
        .into_iter()
        .partition(|(s, _)| old_ready.contains(s.program));
    host.plan.ready = keep;
    host.plan
        .not_ready
        .extend(gone.into_iter().map(|(spec, _)| ProbeStatus {
            tracepoint: spec.tracepoint(),
            program: spec.program.to_owned(),
            state: ProbeState::Missing,
            detail: format!("{AS_KERNEL_VAR}={version}: that kernel has no such tracepoint"),
            attach_ms: None,
            hook: None,
            hook_reason: None,
        }));

    // Reason names the old kernel does not have were a plain kfree_skb() there.
    let known: BTreeSet<&String> = old.names.drop_reasons.values().collect();
    for name in host.names.drop_reasons.values_mut() {
        if !known.contains(name) {
            "NOT_SPECIFIED".clone_into(name);
        }
    }
    host.notes.push(format!(
        "emulating kernel {version} ({AS_KERNEL_VAR}): only the fields, tracepoints and drop-reason names its recorded formats have are used"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(version: &str) -> Startup {
        prepare(&KernelSources::recorded(&recorded_dir(version)))
    }

    #[test]
    fn the_recorded_6_18_read_as_5_10_keeps_no_reason_and_as_5_15_only_its_names() {
        let mut host = recorded("6.18");
        let netfilter = host
            .names
            .drop_reasons
            .iter()
            .find(|(_, n)| *n == "NETFILTER_DROP")
            .map(|(v, _)| *v)
            .expect("6.18 names NETFILTER_DROP");
        assert_ne!(host.plan.config.kfree_reason, ABSENT);
        let location = host.plan.config.kfree_location;
        narrow(&mut host, &recorded("5.10"), "5.10");
        let c = &host.plan.config;
        assert_eq!(
            (c.kfree_reason, c.kfree_rx_sk, c.rtx_family, c.rtx_err),
            (ABSENT, ABSENT, ABSENT, ABSENT)
        );
        assert_eq!(c.kfree_location, location, "offsets stay this kernel's");
        // The recording has no release; the emulation says which it is (slot guards kept).
        assert_eq!(host.plan.kernel_release, Some((5, 10)));
        assert!(host
            .plan
            .not_ready
            .iter()
            .any(|p| p.program == tracer_common::PROG_INET_SK_ERROR_REPORT
                && p.detail.contains("5.10")));

        let mut host = recorded("6.18");
        narrow(&mut host, &recorded("5.15"), "5.15");
        assert_ne!(host.plan.config.kfree_reason, ABSENT);
        assert_eq!(host.names.drop_reasons[&netfilter], "NOT_SPECIFIED");
        assert!(host.names.drop_reasons.values().any(|n| n == "NO_SOCKET"));

        let mut host = recorded("6.18");
        narrow(&mut host, &recorded("6.1"), "6.1");
        assert_eq!(host.names.drop_reasons[&netfilter], "NETFILTER_DROP");
        assert_eq!(host.plan.kernel_release, Some((6, 1)));
    }
}
