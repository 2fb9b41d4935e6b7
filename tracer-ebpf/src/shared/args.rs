//! Reads for raw and BTF tracepoints, which get the tracepoint's arguments instead of a record:
//! an argument by its position ([`arg_u64`], positions from the loader), kernel memory behind a
//! pointer ([`kernel_read`]: a helper call on raw tracepoints, a typed direct load on BTF ones),
//! and the values a classic record carries read from the socket itself at BTF offsets
//! ([`sock_flow_key`], [`sock_u32`], [`sock_state`], [`sock_local`], [`sock_remote`],
//! [`sock_ports`] with [`sock_local_addr`] / [`sock_remote_addr`]).
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
///
/// `TYPED`: `base` is a typed pointer — a BTF tracepoint's argument, or a pointer field loaded
/// from one — so the value is read with a plain load: the verifier checks it against the
/// kernel's BTF (the offset is a constant from frozen `.rodata`) and the JIT makes it a
/// fault-safe load, a few instructions where `bpf_probe_read_kernel` (the untyped case: raw
/// tracepoints' arguments are plain integers) is a helper call.
#[inline(always)]
pub(crate) fn kernel_read<T, const TYPED: bool>(base: u64, offset: u32) -> Option<T> {
    if base == 0 || offset == ABSENT {
        return None;
    }
    let p = (base + u64::from(offset)) as *const T;
    if TYPED {
        // SAFETY: a typed pointer: the verifier checks the field and the JIT guards the load.
        Some(unsafe { core::ptr::read_volatile(p) })
    } else {
        unsafe { bpf_probe_read_kernel(p) }.ok()
    }
}

/// A 16-byte address field as four words: one helper call untyped, four loads typed (a
/// 16-byte volatile read may become a `memcpy` call, which BPF does not have).
#[inline(always)]
fn addr6<const TYPED: bool>(sk: u64, offset: u32) -> Option<[u32; 4]> {
    if !TYPED {
        return kernel_read::<[u32; 4], false>(sk, offset);
    }
    if offset == ABSENT {
        return None;
    }
    Some([
        kernel_read::<u32, true>(sk, offset)?,
        kernel_read::<u32, true>(sk, offset + 4)?,
        kernel_read::<u32, true>(sk, offset + 8)?,
        kernel_read::<u32, true>(sk, offset + 12)?,
    ])
}

/// A 32-bit field of a socket (or of `tcp_sock`, which begins with it: read untyped, as the
/// typed pointer is a `struct sock` and the field lies beyond it).
#[inline(always)]
pub(crate) fn sock_u32<const TYPED: bool>(sk: u64, offset: u32) -> Option<u32> {
    kernel_read::<u32, TYPED>(sk, offset)
}

/// `sk_state` (one byte in `sock_common`).
#[inline(always)]
pub(crate) fn sock_state<const TYPED: bool>(sk: u64) -> Option<u32> {
    kernel_read::<u8, TYPED>(sk, config!(sk_state)).map(u32::from)
}

/// The local end of a socket: (family, port in host order, address words).
#[inline(always)]
pub(crate) fn sock_local<const TYPED: bool>(sk: u64) -> Option<End> {
    local_of::<TYPED>(sk, kernel_read::<u16, TYPED>(sk, config!(sk_family))?)
}

/// The remote end of a socket: (family, port in host order, address words).
#[inline(always)]
pub(crate) fn sock_remote<const TYPED: bool>(sk: u64) -> Option<End> {
    remote_of::<TYPED>(sk, kernel_read::<u16, TYPED>(sk, config!(sk_family))?)
}

/// The ports of a socket and its family: (family, local port, remote port), ports in host
/// order. With [`sock_local_addr`] / [`sock_remote_addr`] a caller reads only the address of
/// the end it needs.
#[inline(always)]
pub(crate) fn sock_ports<const TYPED: bool>(sk: u64) -> Option<(u16, u16, u16)> {
    let family = kernel_read::<u16, TYPED>(sk, config!(sk_family))?;
    let remote = u16::from_be(kernel_read::<u16, TYPED>(sk, config!(sk_dport))?);
    let local = kernel_read::<u16, TYPED>(sk, config!(sk_num))?;
    Some((family, local, remote))
}

/// The local address of a socket of `family` (address words).
#[inline(always)]
pub(crate) fn sock_local_addr<const TYPED: bool>(sk: u64, family: u16) -> Option<[u32; 4]> {
    if family == FAMILY_INET {
        Some([sock_u32::<TYPED>(sk, config!(sk_rcv_saddr))?, 0, 0, 0])
    } else {
        addr6::<TYPED>(sk, config!(sk_v6_rcv_saddr))
    }
}

/// The remote address of a socket of `family` (address words).
#[inline(always)]
pub(crate) fn sock_remote_addr<const TYPED: bool>(sk: u64, family: u16) -> Option<[u32; 4]> {
    if family == FAMILY_INET {
        Some([sock_u32::<TYPED>(sk, config!(sk_daddr))?, 0, 0, 0])
    } else {
        addr6::<TYPED>(sk, config!(sk_v6_daddr))
    }
}

/// The local end of a socket of `family`.
#[inline(always)]
fn local_of<const TYPED: bool>(sk: u64, family: u16) -> Option<End> {
    let port = kernel_read::<u16, TYPED>(sk, config!(sk_num))?;
    Some((family, port, sock_local_addr::<TYPED>(sk, family)?))
}

/// The remote end of a socket of `family`.
#[inline(always)]
fn remote_of<const TYPED: bool>(sk: u64, family: u16) -> Option<End> {
    let port = u16::from_be(kernel_read::<u16, TYPED>(sk, config!(sk_dport))?);
    Some((family, port, sock_remote_addr::<TYPED>(sk, family)?))
}

/// The flow of a socket, as a classic TCP tracepoint records it (local end as source).
#[inline(always)]
pub(crate) fn sock_flow_key<const TYPED: bool>(sk: u64, netns: u32) -> Option<FlowKey> {
    Some(flow_of(
        netns,
        sock_local::<TYPED>(sk)?,
        sock_remote::<TYPED>(sk)?,
    ))
}

/// True when the socket's protocol is `protocol` (`sk_protocol`, a plain u16 since 5.6; the
/// loader keeps the probes that filter on it classic where it is not).
#[inline(always)]
pub(crate) fn sock_protocol_is<const TYPED: bool>(sk: u64, protocol: u32) -> bool {
    kernel_read::<u16, TYPED>(sk, config!(sk_protocol)).is_some_and(|p| u32::from(p) == protocol)
}
