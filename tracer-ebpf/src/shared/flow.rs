//! A flow's key from its two ends, however they were read ([`flow_of`]: from a record, a
//! socket or a packet), and the flow a reset without a socket answers, read from the segment
//! it answers ([`skb_reply_flow`]).
//!
//! May use `aya-ebpf` and `tracer-common` only; never a family module.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use tracer_common::{FlowKey, ABSENT, FAMILY_INET, FAMILY_INET6};

use super::config;

/// One end of a flow: (family, port in host order, address words).
pub(crate) type End = (u16, u16, [u32; 4]);

/// The key of the flow from `local` (its family is the flow's) to `remote`.
#[inline(always)]
pub(crate) fn flow_of(netns: u32, local: End, remote: End) -> FlowKey {
    let (family, sport, saddr) = local;
    let (_, dport, daddr) = remote;
    FlowKey {
        netns,
        family,
        sport,
        dport,
        _pad: 0,
        saddr,
        daddr,
    }
}

#[inline(always)]
fn read_at<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 || offset == ABSENT {
        return None;
    }
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.ok()
}

/// The flow of a reset answering the segment in `skb` (sent with no full socket): its
/// destination is the local end, its source the remote one, as the classic `tcp_send_reset`
/// record has them (TP_STORE_ADDR_PORTS_SKB reversed). The IP header is at `head +
/// network_header`, the TCP header at `data` (where the receive path leaves it).
#[inline(always)]
pub(crate) fn skb_reply_flow(skb: u64, netns: u32) -> Option<FlowKey> {
    let head = read_at::<u64>(skb, config!(skb_head))?;
    let nh = head + u64::from(read_at::<u16>(skb, config!(skb_network_header))?);
    let th = read_at::<u64>(skb, config!(skb_data))?;
    let ports = read_at::<[u16; 2]>(th, 0)?;
    let (source, dest) = (u16::from_be(ports[0]), u16::from_be(ports[1]));
    let version = read_at::<u8>(nh, 0)? >> 4;
    let (family, saddr, daddr) = if version == 4 {
        let pair = read_at::<[u32; 2]>(nh, 12)?;
        (FAMILY_INET, [pair[0], 0, 0, 0], [pair[1], 0, 0, 0])
    } else if version == 6 {
        (
            FAMILY_INET6,
            read_at::<[u32; 4]>(nh, 8)?,
            read_at::<[u32; 4]>(nh, 24)?,
        )
    } else {
        return None;
    };
    Some(flow_of(
        netns,
        (family, dest, daddr),
        (family, source, saddr),
    ))
}
