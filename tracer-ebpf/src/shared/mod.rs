//! What several probe families need, and nothing that belongs to one of them: the frozen
//! configuration (`CONFIG`, read through [`config!`]), the per-CPU probe counters ([`bump`],
//! [`count_run`]), the BPF atomic adds, reads from tracepoint records ([`record`]) and from
//! tracepoint arguments ([`args`]), flow keys ([`flow`]) and namespace lookups ([`netns`]).
//!
//! May use `aya-ebpf` and `tracer-common` only; never a family module.

pub(crate) mod args;
pub(crate) mod flow;
pub(crate) mod netns;
pub(crate) mod record;

use aya_ebpf::{macros::map, maps::PerCpuArray};
use tracer_common::{counter, TracerConfig};

/// Offsets, overridden by the loader at load time (lives in `.rodata`, frozen after load).
#[unsafe(no_mangle)]
pub(crate) static CONFIG: TracerConfig = TracerConfig::absent();

#[map(name = "PROBE_COUNTERS")]
static PROBE_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Reads one configuration field; the volatile read keeps the compiler from folding the default.
macro_rules! config {
    ($field:ident) => {
        unsafe { ::core::ptr::read_volatile(::core::ptr::addr_of!($crate::shared::CONFIG.$field)) }
    };
}
pub(crate) use config;

/// Adds one to a probe counter (`tracer_common::counter`).
#[inline(always)]
pub(crate) fn bump(index: u32) {
    if let Some(slot) = PROBE_COUNTERS.get_ptr_mut(index) {
        // Per-CPU slot: no other CPU writes it.
        unsafe { *slot += 1 };
    }
}

/// Counts one run of a program in its run counter (`tracer_common::counter::RUN_COUNTERS`),
/// only where the loader asks the programs to (`TracerConfig::count_runs`). Where the kernel
/// counts runs itself, user space reads them from the program's `run_cnt` instead, and the
/// verifier drops this add from the program: the configuration is frozen, the branch dead.
#[inline(always)]
pub(crate) fn count_run(index: u32) {
    if config!(count_runs) != 0 {
        bump(index);
    }
}

/// Adds `n` to a probe counter (`tracer_common::counter`), atomically: used where a run that
/// interrupted another on the same CPU may add too.
#[inline(always)]
pub(crate) fn bump_by(index: u32, n: u64) {
    if let Some(slot) = PROBE_COUNTERS.get_ptr_mut(index) {
        atomic_add64(slot, n);
    }
}

/// One BPF atomic add (`lock xadd`) to a map value. Written out: `core` has no atomic
/// read-modify-write for the BPF target.
#[inline(always)]
pub(crate) fn atomic_add64(p: *mut u64, v: u64) {
    // SAFETY: `p` points into a map value the verifier has checked.
    unsafe {
        core::arch::asm!(
            "lock *(u64 *)({p} + 0) += {v}",
            p = in(reg) p,
            v = in(reg) v,
            options(nostack, preserves_flags)
        );
    }
}

/// The 32-bit atomic add, for histogram buckets.
#[inline(always)]
pub(crate) fn atomic_add32(p: *mut u32, v: u32) {
    // SAFETY: as above.
    unsafe {
        core::arch::asm!(
            "lock *(u32 *)({p} + 0) += {v}",
            p = in(reg) p,
            v = in(reg) u64::from(v),
            options(nostack, preserves_flags)
        );
    }
}
