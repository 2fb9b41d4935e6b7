//! What the kernel counts about each loaded program (runs, run time, recursion misses), and the
//! `BPF_ENABLE_STATS` descriptor that keeps run times counted without touching the node's sysctl.
//! Reads and holds file descriptors only; it never writes `kernel.bpf_stats_enabled`.

use std::os::fd::{AsRawFd as _, BorrowedFd, OwnedFd};

use aya_obj::generated::{bpf_attr, bpf_cmd, bpf_prog_info};

/// One program's counters from its `struct bpf_prog_info`, cumulative since it was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgramCounters {
    /// The kernel's id of the program (what `bpftool prog show id N` names).
    pub id: u32,
    /// Runs the kernel timed (only while run-time statistics are on).
    pub runs: u64,
    /// Total run time in ns (only while run-time statistics are on).
    pub run_time_ns: u64,
    /// Events the program missed because another BPF program was running on that CPU
    /// (kernel ≥ 5.12; always counted, whatever the statistics switch says; 0 before 5.12).
    pub recursion_misses: u64,
}

/// Reads a program's counters with `bpf(BPF_OBJ_GET_INFO_BY_FD)`.
///
/// Hand-written because aya's `ProgramInfo` (0.14 and 0.16) exposes `run_time` and `run_count` but not
/// `recursion_misses`; the struct layouts are aya's own generated kernel bindings. A kernel with
/// a shorter `bpf_prog_info` fills what it has and leaves the rest zero.
pub fn read(fd: BorrowedFd<'_>) -> std::io::Result<ProgramCounters> {
    // SAFETY: both are plain C data (integers and arrays); all-zero is a valid value of each.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.info.bpf_fd = u32::try_from(fd.as_raw_fd()).map_err(std::io::Error::other)?;
    attr.info.info_len = size_of::<bpf_prog_info>() as u32;
    attr.info.info = std::ptr::from_mut(&mut info) as u64;
    // SAFETY: `attr` names a live, writable `info` of `info_len` bytes; the kernel writes at
    // most that many and reads `attr` only during the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as libc::c_long,
            std::ptr::from_mut(&mut attr),
            size_of::<bpf_attr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ProgramCounters {
        id: info.id,
        runs: info.run_cnt,
        run_time_ns: info.run_time_ns,
        recursion_misses: info.recursion_misses,
    })
}

/// Turns the kernel's run-time statistics on for as long as the returned descriptor lives
/// (`bpf(BPF_ENABLE_STATS, BPF_STATS_RUN_TIME)`, kernel ≥ 5.8). The sysctl
/// `kernel.bpf_stats_enabled` keeps the value the operator set: the kernel counts the
/// descriptor separately and stops timing when the last holder (descriptor or sysctl) lets go.
/// `None` (with the reason logged) where the kernel refuses it.
pub fn hold_run_time_stats() -> Option<OwnedFd> {
    match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::debug!("BPF_ENABLE_STATS refused ({e}); run times need the sysctl");
            None
        }
    }
}
