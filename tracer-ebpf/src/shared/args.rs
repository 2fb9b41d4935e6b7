//! Reads for raw and BTF tracepoints, which get the tracepoint's arguments instead of a record:
//! an argument by its position ([`arg_u64`], positions from the loader), and the values a
//! classic record carries read from the socket itself at BTF offsets ([`sock_flow_key`],
//! [`sock_u16`], [`sock_u32`]).
//!
//! May use `aya-ebpf`, `tracer-common` and `shared::flow`; never a family module.

use core::ffi::c_void;

use aya_ebpf::helpers::bpf_probe_read_kernel;
use tracer_common::{FlowKey, ABSENT, FAMILY_INET};

use super::{
    config,
    flow::{flow_of, End},
};

/// Argument `index` of a raw or BTF tracepoint (its context is the array of arguments, one
/// 64-bit slot each). The position comes from frozen `.rodata`: as in `record`, each possible
/// position is its own arm with the load's offset written as an immediate, so the verifier sees
/// a constant-offset context load and walks only the arm taken.
#[inline(always)]
pub(crate) fn arg_u64(ctx: *mut c_void, index: u32) -> Option<u64> {
    let base = ctx as u64;
    macro_rules! load {
        ($off:literal) => {{
            let value: u64;
            unsafe {
                core::arch::asm!(
                    concat!("{v} = *(u64 *)({b} + ", stringify!($off), ")"),
                    v = out(reg) value,
                    b = in(reg) base,
                    options(readonly, nostack, preserves_flags)
                );
            }
            Some(value)
        }};
    }
    match index {
        0 => load!(0),
        1 => load!(8),
        2 => load!(16),
        3 => load!(24),
        4 => load!(32),
        5 => load!(40),
        _ => None,
    }
}

/// A value of `T` at `base + offset` in kernel memory; None for a null base or absent offset.
#[inline(always)]
fn read_at<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 || offset == ABSENT {
        return None;
    }
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.ok()
}

/// A 16-bit field of a socket.
#[inline(always)]
pub(crate) fn sock_u16(sk: u64, offset: u32) -> Option<u16> {
    read_at::<u16>(sk, offset)
}

/// A 32-bit field of a socket (or of `tcp_sock`, which begins with it).
#[inline(always)]
pub(crate) fn sock_u32(sk: u64, offset: u32) -> Option<u32> {
    read_at::<u32>(sk, offset)
}

/// `sk_state` (one byte in `sock_common`).
#[inline(always)]
pub(crate) fn sock_state(sk: u64) -> Option<u32> {
    read_at::<u8>(sk, config!(sk_state)).map(u32::from)
}

/// The local end of a socket: (family, port in host order, address words).
#[inline(always)]
pub(crate) fn sock_local(sk: u64) -> Option<End> {
    let family = sock_u16(sk, config!(sk_family))?;
    let port = sock_u16(sk, config!(sk_num))?;
    let addr = if family == FAMILY_INET {
        [sock_u32(sk, config!(sk_rcv_saddr))?, 0, 0, 0]
    } else {
        read_at::<[u32; 4]>(sk, config!(sk_v6_rcv_saddr))?
    };
    Some((family, port, addr))
}

/// The remote end of a socket: (family, port in host order, address words).
#[inline(always)]
pub(crate) fn sock_remote(sk: u64) -> Option<End> {
    let family = sock_u16(sk, config!(sk_family))?;
    let port = u16::from_be(sock_u16(sk, config!(sk_dport))?);
    let addr = if family == FAMILY_INET {
        [sock_u32(sk, config!(sk_daddr))?, 0, 0, 0]
    } else {
        read_at::<[u32; 4]>(sk, config!(sk_v6_daddr))?
    };
    Some((family, port, addr))
}

/// The flow of a socket, as a classic TCP tracepoint records it (local end as source).
#[inline(always)]
pub(crate) fn sock_flow_key(sk: u64, netns: u32) -> Option<FlowKey> {
    Some(flow_of(netns, sock_local(sk)?, sock_remote(sk)?))
}

/// True when the socket's protocol is `protocol` (`sk_protocol`, a plain u16 since 5.6; the
/// loader keeps the probes that filter on it classic where it is not).
#[inline(always)]
pub(crate) fn sock_protocol_is(sk: u64, protocol: u32) -> bool {
    sock_u16(sk, config!(sk_protocol)).is_some_and(|p| u32::from(p) == protocol)
}
