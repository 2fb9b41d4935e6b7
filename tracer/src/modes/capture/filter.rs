//! What to capture, from the command line to the kernel's [`CaptureConfig`]: drop reasons by
//! name (or the reasons a layer files), IP protocol, host address or CIDR, port, namespace,
//! snaplen and the rate limit. Names are turned into the running kernel's numbers here; no
//! number is written down.

use std::{collections::BTreeMap, net::IpAddr};

use anyhow::{anyhow, bail, Result};
use tracer_common::{
    capture::{CaptureConfig, CAPTURE_EXTRA_REASONS, CAPTURE_MAX_SNAPLEN},
    ABSENT,
};

use crate::judge::layers::{classify, DropClass, Layer};

/// The capture's filter and limits, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureFilter {
    /// Reason numbers to keep (empty: all).
    pub reasons: Vec<u32>,
    pub netns: Option<u32>,
    pub protocol: Option<u8>,
    /// Address and prefix length (source or destination inside).
    pub host: Option<(IpAddr, u8)>,
    pub port: Option<u16>,
}

/// The layer a `--layer` value names (the runbook's names, or `netfilter`/`iptables`).
pub fn parse_layer(text: &str) -> Result<Layer> {
    let text = text.trim().to_ascii_lowercase();
    let alias = match text.as_str() {
        "netfilter" | "iptables" | "netpolicy" => "iptables_netpolicy",
        "nic" | "driver" | "qdisc" => "nic_driver",
        "tcp" | "stack" => "tcp_stack",
        "irq" | "cpu" => "irq_cpu",
        other => other,
    };
    Layer::ALL
        .into_iter()
        .find(|l| l.as_str() == alias)
        .ok_or_else(|| {
            let names: Vec<&str> = Layer::ALL.iter().map(|l| l.as_str()).collect();
            anyhow!(
                "unknown layer {text:?}: use one of {} (or netfilter)",
                names.join(", ")
            )
        })
}

/// A subsystem reason written as a number (`0x30001`, `196609`) or as the tracer prints it
/// (`SUBSYS_3(1)`: subsystem 3, reason 1); None for anything else.
fn subsystem_reason(item: &str) -> Option<u32> {
    let upper = item.to_ascii_uppercase();
    if let Some(rest) = upper.strip_prefix("SUBSYS_") {
        let (subsys, code) = rest.strip_suffix(')')?.split_once('(')?;
        let (subsys, code): (u32, u32) = (subsys.parse().ok()?, code.parse().ok()?);
        return (subsys > 0 && subsys <= 0xffff && code <= 0xffff).then_some(subsys << 16 | code);
    }
    let value = match upper.strip_prefix("0X") {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => upper.parse().ok()?,
    };
    (value >= 1 << 16).then_some(value)
}

/// Reason numbers of comma-separated names (`NETFILTER_DROP`, with or without the
/// `SKB_DROP_REASON_` prefix, any case) in the kernel's table `names` (number → name), or
/// subsystem reasons (named in module BTF, not here) by number: `0x30001` or `SUBSYS_3(1)`, at
/// most [`CAPTURE_EXTRA_REASONS`] of them.
pub fn reasons_by_name(list: &str, names: &BTreeMap<u32, String>) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(value) = subsystem_reason(item) {
            if out.iter().filter(|r| **r >= 256).count() >= CAPTURE_EXTRA_REASONS {
                bail!("at most {CAPTURE_EXTRA_REASONS} subsystem reasons can be captured at once: drop {item:?} or capture twice");
            }
            out.push(value);
            continue;
        }
        let wanted = item.to_ascii_uppercase();
        let wanted = wanted.strip_prefix("SKB_DROP_REASON_").unwrap_or(&wanted);
        let Some((number, _)) = names.iter().find(|(_, n)| n.as_str() == wanted) else {
            bail!("this kernel has no drop reason {item:?} (see `tracer check` or the reasons in /sys/kernel/btf/vmlinux)");
        };
        out.push(*number);
    }
    Ok(out)
}

/// Reason numbers the tracer files under `layer` (by name, as the verdict does).
pub fn reasons_of_layer(layer: Layer, names: &BTreeMap<u32, String>) -> Vec<u32> {
    names
        .iter()
        .filter(|(_, name)| {
            matches!(classify(name, ""), DropClass::Loss { layer: l, .. } if l == layer)
        })
        .map(|(n, _)| *n)
        .collect()
}

/// `tcp`, `udp`, `icmp` (v4), `icmp6`/`ipv6-icmp`, or a protocol number.
pub fn parse_protocol(text: &str) -> Result<u8> {
    match text.trim().to_ascii_lowercase().as_str() {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "icmp6" | "icmpv6" | "ipv6-icmp" => Ok(58),
        "sctp" => Ok(132),
        other => other.parse().map_err(|_| {
            anyhow!("unknown protocol {text:?}: use tcp, udp, icmp, icmp6 or a number")
        }),
    }
}

/// `ADDR` or `ADDR/PREFIX` (IPv4 or IPv6).
pub fn parse_host(text: &str) -> Result<(IpAddr, u8)> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr: IpAddr = addr.trim().parse().map_err(|_| {
        anyhow!("{text:?} is not an address or CIDR (e.g. 198.18.0.1 or 10.0.0.0/8)")
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| anyhow!("prefix length in {text:?} must be 0 to {max}"))?,
    };
    Ok((addr, prefix))
}

impl CaptureFilter {
    /// Writes the filter into `config` (offsets already set).
    pub fn apply(&self, config: &mut CaptureConfig) {
        config.netns = self.netns.unwrap_or(ABSENT);
        config.protocol = self.protocol.map_or(ABSENT, u32::from);
        config.port = self.port.map_or(ABSENT, u32::from);
        config.reasons = [0; 4];
        config.extra_reasons = [0; CAPTURE_EXTRA_REASONS];
        config.any_reason = u32::from(self.reasons.is_empty());
        let mut extra = 0;
        for r in &self.reasons {
            if *r < 256 {
                config.reasons[(*r / 64) as usize] |= 1u64 << (r % 64);
            } else if extra < CAPTURE_EXTRA_REASONS {
                // Subsystem reasons go into the slots (`reasons_by_name` allows no more).
                config.extra_reasons[extra] = *r;
                extra += 1;
            }
        }
        match self.host {
            None => {
                config.addr_prefix = ABSENT;
                config.addr = [0; 16];
            }
            Some((IpAddr::V4(a), prefix)) => {
                config.addr_version = 4;
                config.addr_prefix = u32::from(prefix);
                config.addr = [0; 16];
                config.addr[..4].copy_from_slice(&a.octets());
            }
            Some((IpAddr::V6(a), prefix)) => {
                config.addr_version = 6;
                config.addr_prefix = u32::from(prefix);
                config.addr = a.octets();
            }
        }
    }
}

/// Snaplen bounded to what the kernel program copies.
pub fn bounded_snaplen(snaplen: u32) -> u32 {
    snaplen.clamp(20, CAPTURE_MAX_SNAPLEN as u32)
}

/// Rate limit and burst of each CPU's token bucket for `per_second` packets in all over
/// `cpus` CPUs (each CPU may use its share; the loader bounds the products the kernel computes).
pub fn bucket(per_second: u64, cpus: u64) -> (u64, u64) {
    let per_cpu = per_second.div_ceil(cpus.max(1)).clamp(1, 100_000_000);
    (per_cpu, per_cpu.clamp(1, 1_000_000))
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
