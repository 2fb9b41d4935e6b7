//! Softirq time: `irq:softirq_entry` stamps the start per CPU and vector (`SOFTIRQ_START`),
//! `irq:softirq_exit` adds the run time and its log2 bucket (`SOFTIRQ_STATS`). Only the vectors
//! in the configured mask (networking) are timed, at entry and at exit alike (the exit of an
//! untimed vector is not "unpaired"). This module owns both maps.
//!
//! May use `shared` (configuration, record reads, counters); no other family.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::PerCpuArray,
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use tracer_common::{counter, log2_bucket, SoftirqStats, SOFTIRQ_VECTORS};

use crate::shared::{args::arg_u64, bump, config, record::ctx_u32};

#[map(name = "SOFTIRQ_START")]
static SOFTIRQ_START: PerCpuArray<u64> = PerCpuArray::with_max_entries(SOFTIRQ_VECTORS, 0);

#[map(name = "SOFTIRQ_STATS")]
static SOFTIRQ_STATS: PerCpuArray<SoftirqStats> = PerCpuArray::with_max_entries(SOFTIRQ_VECTORS, 0);

/// Whether `vec` is one of the vectors user space asked to time (all when the mask is 0).
#[inline(always)]
fn timed(vec: u32) -> bool {
    let mask = config!(softirq_vec_mask);
    mask == 0 || (vec < 32 && mask & (1 << vec) != 0)
}

/// The vector number, from a raw/BTF tracepoint's first argument.
#[inline(always)]
fn arg_vec(ctx: *mut core::ffi::c_void) -> Option<u32> {
    arg_u64(ctx, config!(softirq_arg_vec)).map(|v| v as u32)
}

#[tracepoint]
pub fn softirq_entry(ctx: TracePointContext) -> u32 {
    if let Some(vec) = ctx_u32(&ctx, config!(softirq_entry_vec)) {
        entry(vec);
    }
    0
}

#[raw_tracepoint(tracepoint = "softirq_entry")]
pub fn softirq_entry_raw(ctx: RawTracePointContext) -> u32 {
    if let Some(vec) = arg_vec(ctx.as_ptr()) {
        entry(vec);
    }
    0
}

#[btf_tracepoint(function = "softirq_entry")]
pub fn softirq_entry_btf(ctx: BtfTracePointContext) -> u32 {
    if let Some(vec) = arg_vec(ctx.as_ptr()) {
        entry(vec);
    }
    0
}

#[tracepoint]
pub fn softirq_exit(ctx: TracePointContext) -> u32 {
    if let Some(vec) = ctx_u32(&ctx, config!(softirq_exit_vec)) {
        exit(vec);
    }
    0
}

#[raw_tracepoint(tracepoint = "softirq_exit")]
pub fn softirq_exit_raw(ctx: RawTracePointContext) -> u32 {
    if let Some(vec) = arg_vec(ctx.as_ptr()) {
        exit(vec);
    }
    0
}

#[btf_tracepoint(function = "softirq_exit")]
pub fn softirq_exit_btf(ctx: BtfTracePointContext) -> u32 {
    if let Some(vec) = arg_vec(ctx.as_ptr()) {
        exit(vec);
    }
    0
}

/// Stamps the start of a timed vector's run on this CPU.
#[inline(always)]
fn entry(vec: u32) {
    // Only the vectors user space asked for (networking): no clock read for the others.
    if !timed(vec) {
        return;
    }
    if let Some(start) = SOFTIRQ_START.get_ptr_mut(vec) {
        unsafe { *start = bpf_ktime_get_ns() };
    }
}

/// Adds the run time of a timed vector that ends on this CPU.
#[inline(always)]
fn exit(vec: u32) {
    // The same vectors as the entry: an exit of a vector never stamped is not "unpaired".
    if !timed(vec) {
        return;
    }
    let Some(start) = SOFTIRQ_START.get_ptr_mut(vec) else {
        return;
    };
    let started = unsafe { *start };
    if started == 0 {
        bump(counter::SOFTIRQ_UNPAIRED);
        return;
    }
    unsafe { *start = 0 };
    let elapsed = unsafe { bpf_ktime_get_ns() }.saturating_sub(started);
    if let Some(stats) = SOFTIRQ_STATS.get_ptr_mut(vec) {
        let bucket = log2_bucket(elapsed);
        unsafe {
            (*stats).runs += 1;
            (*stats).total_ns += elapsed;
            if let Some(slot) = (*stats).hist.get_mut(bucket) {
                *slot += 1;
            }
        }
    }
}
