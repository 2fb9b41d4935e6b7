//! Softirq time: `irq:softirq_entry` counts every run of a timed vector per CPU and, on a
//! sample of runs when a CPU runs the vector very often, counts it as timed and stamps the clock; `irq:softirq_exit`
//! adds a timed run's length, weighted by the runs it stands for, and its log2 bucket. Both live
//! in one per-CPU slot per vector (`SOFTIRQ_STATS`: the statistics and the sampling state,
//! `tracer_common::SoftirqClock`, which says how the sample is drawn). Only the vectors in the
//! configured mask (networking) are counted, at entry and at exit alike (the exit of an
//! untimed vector is not "unpaired"). This module owns its map.
//!
//! May use `shared` (configuration, record reads, counters); no other family.

use aya_ebpf::{
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns},
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::PerCpuArray,
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use tracer_common::{
    counter, log2_bucket, SoftirqSlot, SOFTIRQ_SAMPLE_FAR_NS, SOFTIRQ_SAMPLE_NEAR_NS,
    SOFTIRQ_UNTIMED_RUN, SOFTIRQ_VECTORS,
};

use crate::shared::{args::arg_u64, bump, config, record::ctx_u32};

#[map(name = "SOFTIRQ_STATS")]
static SOFTIRQ_STATS: PerCpuArray<SoftirqSlot> = PerCpuArray::with_max_entries(SOFTIRQ_VECTORS, 0);

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

/// Counts a run of a timed vector on this CPU; stamps its start when it is one of the sample.
#[inline(always)]
fn entry(vec: u32) {
    // Only the vectors user space asked for (networking): nothing done for the others.
    if !timed(vec) {
        return;
    }
    let Some(slot) = SOFTIRQ_STATS.get_ptr_mut(vec) else {
        return;
    };
    // SAFETY: a per-CPU map value; softirqs do not nest on a CPU, and the recursion guard keeps
    // this program from interrupting itself.
    let slot = unsafe { &mut *slot };
    slot.stats.runs += 1;
    let clock = &mut slot.clock;
    if clock.skip > 0 {
        // Counted, not timed: no clock read.
        clock.skip -= 1;
        clock.start = SOFTIRQ_UNTIMED_RUN;
        return;
    }
    // Counted where the choice is made, next to `runs`: a window that saw no untimed run has
    // `timed_runs == runs` exactly, even with a run in progress at either end.
    slot.stats.timed_runs += 1;
    let max_shift = config!(softirq_sample_max_shift);
    // Drawn before the clock is read, so that the helper call is not inside the timed span.
    let random = if max_shift > 0 {
        unsafe { bpf_get_prandom_u32() }
    } else {
        0
    };
    let now = unsafe { bpf_ktime_get_ns() };
    let mut shift = clock.shift;
    if clock.last_timed != 0 && clock.weight != 0 {
        // The gap since the last timed run covered `weight` runs; scaled to the mean block of
        // the current stride (2^shift runs), it says how close timed runs come.
        let gap = now.wrapping_sub(clock.last_timed) << (shift & 63);
        let weight = u64::from(clock.weight);
        if gap < SOFTIRQ_SAMPLE_NEAR_NS * weight && shift < max_shift {
            shift += 1;
        } else if gap > SOFTIRQ_SAMPLE_FAR_NS * weight && shift > 0 {
            shift -= 1;
        }
    }
    if shift > max_shift {
        shift = max_shift;
    }
    // This run stands for a block of `weight` runs, drawn from [1, 2^(shift+1) - 1] (mean
    // 2^shift), so that no periodic pattern of runs lines up with the timed ones.
    let weight = if shift == 0 {
        1
    } else {
        let span = (2u32 << (shift & 31)) - 1;
        1 + random % span
    };
    clock.shift = shift;
    clock.weight = weight;
    clock.skip = weight - 1;
    clock.last_timed = now;
    clock.start = now;
}

/// Adds the run time of a timed vector's run that ends on this CPU, when it was timed.
#[inline(always)]
fn exit(vec: u32) {
    // The same vectors as the entry: an exit of a vector never counted is not "unpaired".
    if !timed(vec) {
        return;
    }
    let Some(slot) = SOFTIRQ_STATS.get_ptr_mut(vec) else {
        return;
    };
    // SAFETY: as in `entry`.
    let slot = unsafe { &mut *slot };
    let started = slot.clock.start;
    if started == 0 {
        bump(counter::SOFTIRQ_UNPAIRED);
        return;
    }
    slot.clock.start = 0;
    if started == SOFTIRQ_UNTIMED_RUN {
        return;
    }
    let elapsed = unsafe { bpf_ktime_get_ns() }.saturating_sub(started);
    let stats = &mut slot.stats;
    stats.total_ns += elapsed * u64::from(slot.clock.weight);
    if let Some(bucket) = stats.hist.get_mut(log2_bucket(elapsed)) {
        *bucket += 1;
    }
}
