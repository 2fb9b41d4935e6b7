//! The network namespace (inode number) of a socket, a device or an skb, read through the
//! kernel pointers at the offsets in `CONFIG`. `TYPED` (BTF tracepoints): plain loads through
//! typed pointers; untyped (raw and classic tracepoints): `bpf_probe_read_kernel`, devices
//! through a per-CPU cache (`DEV_NETNS_CACHE`) that saves two of those helper calls per skb.
//! The drop slots keep the device's namespace themselves ([`skb_dev`],
//! [`skb_netns_with_dev`]: read directly, never through the cache).
//!
//! May use `aya-ebpf`, `tracer-common` and the rest of `shared`; never a family module.

use aya_ebpf::{helpers::bpf_probe_read_kernel, macros::map, maps::PerCpuArray};
use tracer_common::ABSENT;

use super::{args::kernel_read, config};

/// Inode of the network namespace behind a `struct net *`.
#[inline(always)]
fn net_inum<const TYPED: bool>(net: u64) -> Option<u32> {
    kernel_read::<u32, TYPED>(net, config!(net_inum))
}

/// Namespace of a socket (`sk->__sk_common.skc_net.net->ns.inum`), read untyped.
#[inline(always)]
pub(crate) fn sock_netns(sk: u64) -> Option<u32> {
    sock_netns_of::<false>(sk)
}

/// Namespace of a socket, read typed or not.
#[inline(always)]
pub(crate) fn sock_netns_of<const TYPED: bool>(sk: u64) -> Option<u32> {
    net_inum::<TYPED>(kernel_read::<u64, TYPED>(sk, config!(sk_net))?)
}

/// Per CPU: the last device seen and its namespace, re-read every [`DEV_CACHE_REVALIDATE`]
/// uses. A flood through one device then costs one kernel read per drop instead of three.
#[repr(C)]
struct DevNetns {
    dev: u64,
    inum: u32,
    uses: u32,
}

/// A device pointer freed and reused by a device of another namespace (or a device moved
/// between namespaces) is attributed to the old namespace for at most this many drops on a CPU.
pub(crate) const DEV_CACHE_REVALIDATE: u32 = 256;

#[map(name = "DEV_NETNS_CACHE")]
static DEV_NETNS_CACHE: PerCpuArray<DevNetns> = PerCpuArray::with_max_entries(1, 0);

/// Namespace of a device: typed, two plain loads; untyped, through the per-CPU cache.
#[inline(always)]
fn dev_netns<const TYPED: bool>(dev: u64) -> Option<u32> {
    if TYPED {
        return net_inum::<true>(kernel_read::<u64, true>(dev, config!(dev_net))?);
    }
    let cache = DEV_NETNS_CACHE.get_ptr_mut(0)?;
    unsafe {
        if (*cache).dev == dev && (*cache).uses < DEV_CACHE_REVALIDATE {
            (*cache).uses += 1;
            return Some((*cache).inum);
        }
    }
    let inum = net_inum::<false>(kernel_read::<u64, false>(dev, config!(dev_net))?)?;
    unsafe {
        (*cache).dev = dev;
        (*cache).inum = inum;
        (*cache).uses = 0;
    }
    Some(inum)
}

/// Namespace of an skb, read untyped (see [`skb_netns_of`]).
#[inline(always)]
pub(crate) fn skb_netns(skb: u64, rx_sk: u64) -> Option<u32> {
    skb_netns_of::<false>(skb, rx_sk)
}

/// Namespace of an skb: its device's namespace, else its socket's, else the receiving socket's.
#[inline(always)]
pub(crate) fn skb_netns_of<const TYPED: bool>(skb: u64, rx_sk: u64) -> Option<u32> {
    if let Some(dev) = kernel_read::<u64, TYPED>(skb, config!(skb_dev)) {
        if dev != 0 {
            if let Some(ns) = dev_netns::<TYPED>(dev) {
                return Some(ns);
            }
        }
    }
    skb_sock_netns::<TYPED>(skb, rx_sk)
}

/// The device of an skb (`skb->dev`); 0 when it has none (or it cannot be read). For an skb
/// that is never null on the typed hook (kfree_skb's): a maybe-null typed pointer needs
/// [`skb_netns_of`]'s checked read.
#[inline(always)]
pub(crate) fn skb_dev<const TYPED: bool>(skb: u64) -> u64 {
    if TYPED {
        // A typed pointer: no checks needed. The verifier refuses an absent offset (the loader
        // then falls back to the raw tracepoint) and the JIT guards the load (0 on a fault).
        let p = (skb + u64::from(config!(skb_dev))) as *const u64;
        // SAFETY: checked by the verifier against the kernel's BTF, as above.
        return unsafe { core::ptr::read_volatile(p) };
    }
    // No test of `skb` for null here (a failed read gives 0): with one, the compiler left a
    // register unset on that path, which the verifier refuses to read.
    match config!(skb_dev) {
        ABSENT => 0,
        // SAFETY: a helper read of kernel memory; a fault returns an error.
        offset => {
            unsafe { bpf_probe_read_kernel((skb + u64::from(offset)) as *const u64) }.unwrap_or(0)
        }
    }
}

/// The namespace of an skb whose device (`dev`, from [`skb_dev`]) is already read, the
/// device's namespace read through it every time (not through `DEV_NETNS_CACHE`): for callers
/// that keep their own cache of it and must see a device that moved (the drop slots).
#[inline(always)]
pub(crate) fn skb_netns_with_dev<const TYPED: bool>(skb: u64, dev: u64, rx_sk: u64) -> Option<u32> {
    if dev != 0 {
        if let Some(ns) =
            kernel_read::<u64, TYPED>(dev, config!(dev_net)).and_then(net_inum::<TYPED>)
        {
            return Some(ns);
        }
    }
    skb_sock_netns::<TYPED>(skb, rx_sk)
}

/// The namespace of an skb's socket, else of the receiving socket.
#[inline(always)]
fn skb_sock_netns<const TYPED: bool>(skb: u64, rx_sk: u64) -> Option<u32> {
    if let Some(sk) = kernel_read::<u64, TYPED>(skb, config!(skb_sk)) {
        if let Some(ns) = sock_netns_of::<TYPED>(sk) {
            return Some(ns);
        }
    }
    sock_netns_of::<TYPED>(rx_sk)
}
