//! Reads from a tracepoint record at offsets the loader found in the running kernel's `format`
//! files: integers ([`ctx_u16`], [`ctx_u32`], [`ctx_u64`]), addresses, sockaddrs, and the
//! [`FlowKey`] of a record with separate port / family / address fields.
//!
//! May use `aya-ebpf`, `tracer-common` and `shared::flow`; never a family module.

use aya_ebpf::{programs::TracePointContext, EbpfContext};
use tracer_common::{FlowKey, ABSENT, FAMILY_INET, FAMILY_INET6};

use super::flow::{flow_of, End};

#[inline(always)]
fn read_field<T>(ctx: &TracePointContext, offset: u32) -> Option<T> {
    if offset == ABSENT {
        return None;
    }
    unsafe { ctx.read_at::<T>(offset as usize) }.ok()
}

/// Direct loads from the tracepoint record at an offset known only at load time.
///
/// The verifier accepts context loads only at offsets encoded in the instruction, so each
/// possible aligned offset gets its own arm; the offset comes from frozen `.rodata`, which the
/// verifier treats as a constant, so it walks only the arm taken and the others cost nothing.
/// A direct load is a few instructions where `bpf_probe_read_kernel` is a helper call; fields
/// outside the arms (unaligned, far) fall back to the helper.
macro_rules! ctx_loader {
    ($name:ident, $ty:ty, $width:literal, [$($off:literal),*]) => {
        #[inline(always)]
        pub(crate) fn $name(ctx: &TracePointContext, offset: u32) -> Option<$ty> {
            let base = ctx.as_ptr() as u64;
            match offset {
                $(
                    $off => {
                        let value: u64;
                        // The load is written out so its offset stays an immediate: LLVM may
                        // turn a switch of plain loads into one load at a computed offset,
                        // which the verifier refuses ("dereference of modified ctx ptr").
                        unsafe {
                            core::arch::asm!(
                                concat!("{v} = *(", $width, " *)({b} + ", stringify!($off), ")"),
                                v = out(reg) value,
                                b = in(reg) base,
                                options(readonly, nostack, preserves_flags)
                            );
                        }
                        Some(value as $ty)
                    }
                )*
                _ => read_field::<$ty>(ctx, offset),
            }
        }
    };
}

#[rustfmt::skip]
ctx_loader!(ctx_u16, u16, "u16", [
    8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52,
    54, 56, 58, 60, 62, 64, 66, 68, 70, 72, 74, 76, 78, 80, 82, 84, 86, 88, 90, 92, 94, 96
]);
#[rustfmt::skip]
ctx_loader!(ctx_u32, u32, "u32", [
    8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64, 68, 72, 76, 80, 84, 88, 92, 96,
    100, 104
]);
#[rustfmt::skip]
ctx_loader!(ctx_u64, u64, "u64", [
    8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128
]);

/// Four address bytes at `offset` as a native-endian word. Address fields are only 2-aligned
/// in the records (e.g. `saddr` at 34), so they are read as two direct 16-bit loads.
#[inline(always)]
pub(crate) fn ctx_addr4(ctx: &TracePointContext, offset: u32) -> Option<u32> {
    if offset == ABSENT {
        return None;
    }
    let (lo, hi) = (
        ctx_u16(ctx, offset)?.to_ne_bytes(),
        ctx_u16(ctx, offset + 2)?.to_ne_bytes(),
    );
    Some(u32::from_ne_bytes([lo[0], lo[1], hi[0], hi[1]]))
}

/// A 16-byte address field as four native-endian words.
#[inline(always)]
pub(crate) fn ctx_addr6(ctx: &TracePointContext, offset: u32) -> Option<[u32; 4]> {
    if offset == ABSENT {
        return None;
    }
    Some([
        ctx_addr4(ctx, offset)?,
        ctx_addr4(ctx, offset + 4)?,
        ctx_addr4(ctx, offset + 8)?,
        ctx_addr4(ctx, offset + 12)?,
    ])
}

/// Addresses of a flow: IPv4 fields when the family says so (or when there is no family field
/// and the v6 field holds a v4-mapped address), else the IPv6 fields.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn flow_key(
    ctx: &TracePointContext,
    netns: u32,
    family_off: u32,
    sport_off: u32,
    dport_off: u32,
    saddr_off: u32,
    daddr_off: u32,
    saddr6_off: u32,
    daddr6_off: u32,
) -> Option<FlowKey> {
    let sport = ctx_u16(ctx, sport_off)?;
    let dport = ctx_u16(ctx, dport_off)?;
    let family = match family_off {
        ABSENT => {
            // Kernels before 5.12 have no family field: a v4-mapped address
            // (::ffff:a.b.c.d) means IPv4.
            let saddr6 = ctx_addr6(ctx, saddr6_off).unwrap_or([0; 4]);
            if saddr6[0] == 0
                && saddr6[1] == 0
                && saddr6[2] == u32::from_ne_bytes([0, 0, 0xff, 0xff])
            {
                FAMILY_INET
            } else {
                FAMILY_INET6
            }
        }
        offset => ctx_u16(ctx, offset)?,
    };
    let (saddr, daddr) = if family == FAMILY_INET {
        (
            [ctx_addr4(ctx, saddr_off)?, 0, 0, 0],
            [ctx_addr4(ctx, daddr_off)?, 0, 0, 0],
        )
    } else {
        (ctx_addr6(ctx, saddr6_off)?, ctx_addr6(ctx, daddr6_off)?)
    };
    Some(flow_of(
        netns,
        (family, sport, saddr),
        (family, dport, daddr),
    ))
}

/// A `struct sockaddr_in`/`sockaddr_in6` recorded in a 28-byte field: family, port (network
/// order) and address. Returns (family, port in host order, address words).
#[inline(always)]
pub(crate) fn ctx_sockaddr(ctx: &TracePointContext, offset: u32) -> Option<End> {
    if offset == ABSENT {
        return None;
    }
    let family = ctx_u16(ctx, offset)?;
    let port = u16::from_be(ctx_u16(ctx, offset + 2)?);
    let addr = if family == FAMILY_INET {
        [ctx_addr4(ctx, offset + 4)?, 0, 0, 0]
    } else {
        ctx_addr6(ctx, offset + 8)?
    };
    Some((family, port, addr))
}
