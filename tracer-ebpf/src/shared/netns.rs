//! The network namespace (inode number) of a socket, a device or an skb, read through the
//! kernel pointers at the offsets in `CONFIG`; devices through a per-CPU cache
//! (`DEV_NETNS_CACHE`).
//!
//! May use `aya-ebpf`, `tracer-common` and the rest of `shared`; never a family module.

use aya_ebpf::{helpers::bpf_probe_read_kernel, macros::map, maps::PerCpuArray};
use tracer_common::ABSENT;

use super::config;

/// Reads a kernel pointer field at `base + offset`; None for a null base, an absent offset or a
/// failed read.
#[inline(always)]
fn read_kernel_u64(base: u64, offset: u32) -> Option<u64> {
    if base == 0 || offset == ABSENT {
        return None;
    }
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const u64) }.ok()
}

/// Inode of the network namespace behind a `struct net *`.
#[inline(always)]
fn net_inum(net: u64) -> Option<u32> {
    let inum_off = config!(net_inum);
    if net == 0 || inum_off == ABSENT {
        return None;
    }
    unsafe { bpf_probe_read_kernel((net + inum_off as u64) as *const u32) }.ok()
}

/// Namespace of a socket (`sk->__sk_common.skc_net.net->ns.inum`).
#[inline(always)]
pub(crate) fn sock_netns(sk: u64) -> Option<u32> {
    net_inum(read_kernel_u64(sk, config!(sk_net))?)
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

/// Namespace of a device, through the per-CPU cache.
#[inline(always)]
fn dev_netns(dev: u64) -> Option<u32> {
    let cache = DEV_NETNS_CACHE.get_ptr_mut(0)?;
    unsafe {
        if (*cache).dev == dev && (*cache).uses < DEV_CACHE_REVALIDATE {
            (*cache).uses += 1;
            return Some((*cache).inum);
        }
    }
    let inum = read_kernel_u64(dev, config!(dev_net)).and_then(net_inum)?;
    unsafe {
        (*cache).dev = dev;
        (*cache).inum = inum;
        (*cache).uses = 0;
    }
    Some(inum)
}

/// Namespace of an skb: its device's namespace, else its socket's, else the receiving socket's.
#[inline(always)]
pub(crate) fn skb_netns(skb: u64, rx_sk: u64) -> Option<u32> {
    if let Some(dev) = read_kernel_u64(skb, config!(skb_dev)) {
        if dev != 0 {
            if let Some(ns) = dev_netns(dev) {
                return Some(ns);
            }
        }
    }
    if let Some(sk) = read_kernel_u64(skb, config!(skb_sk)) {
        if let Some(ns) = sock_netns(sk) {
            return Some(ns);
        }
    }
    sock_netns(rx_sk)
}
