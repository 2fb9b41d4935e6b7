//! `rawtp_floor [--tp-btf] TRACEPOINT...`: the bench's attach floor. Loads one empty program
//! (`r0 = 0; exit`) per named tracepoint as a raw tracepoint (`BPF_PROG_TYPE_RAW_TRACEPOINT`,
//! `BPF_RAW_TRACEPOINT_OPEN`, kernel >= 4.17) — or with `--tp-btf` as a BTF tracepoint
//! (`BPF_PROG_TYPE_TRACING`/`BPF_TRACE_RAW_TP` on the vmlinux BTF's `btf_trace_<event>`, the
//! hook the tracer's hot probes use) — prints `Attaching N probes...` once all are attached,
//! and holds them until SIGINT or SIGTERM. Loads nothing else and changes nothing.
//!
//! Hand-written syscalls and BTF walk: the program is two instructions, and bpftrace 0.17 (the
//! bench's other comparison) has no `rawtracepoint:` probes; pulling aya into xtask for this
//! would also need an eBPF object built for it.

use std::ffi::CString;
use std::io::Write as _;
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context as _, Result};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_RAW_TP: u32 = 23;

/// `r0 = 0` (BPF_ALU64 | BPF_MOV | BPF_K) then `exit` (BPF_JMP | BPF_EXIT).
const EMPTY_PROGRAM: [u64; 2] = [0xb7, 0x95];

/// The leading fields of `union bpf_attr` for `BPF_PROG_LOAD` (the kernel zero-fills the rest).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
}

/// `union bpf_attr` for `BPF_RAW_TRACEPOINT_OPEN`.
#[repr(C)]
struct RawTpOpenAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> Result<OwnedFd> {
    // SAFETY: `attr` is a live `#[repr(C)]` prefix of `union bpf_attr` of the given size; the
    // kernel reads it (and the buffers it points to) only during the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            size_of::<T>() as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: a non-negative return of these commands is a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The type id of the typedef `name` in raw BTF (`/sys/kernel/btf/vmlinux`), walking the type
/// section (ids count from 1) by each kind's trailing size.
fn btf_typedef_id(btf: &[u8], name: &str) -> Result<u32> {
    let word = |at: usize| -> Result<u32> {
        let bytes = btf.get(at..at + 4).context("BTF truncated")?;
        Ok(u32::from_le_bytes(bytes.try_into()?))
    };
    if btf.get(..2) != Some(&0xeb9f_u16.to_le_bytes()[..]) {
        bail!("not little-endian BTF");
    }
    let hdr_len = word(4)? as usize;
    let (type_off, type_len) = (word(8)? as usize, word(12)? as usize);
    let str_off = hdr_len + word(16)? as usize;
    let (mut at, end) = (hdr_len + type_off, hdr_len + type_off + type_len);
    let mut id = 1;
    while at < end {
        let (name_off, info) = (word(at)? as usize, word(at + 4)?);
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        let start = str_off + name_off;
        let matches = btf.get(start..start + name.len()) == Some(name.as_bytes())
            && btf.get(start + name.len()) == Some(&0);
        if kind == 8 && matches {
            return Ok(id);
        }
        at += 12
            + match kind {
                1 | 14 | 17 => 4,
                3 => 12,
                4 | 5 | 15 | 19 => 12 * vlen,
                6 | 13 => 8 * vlen,
                _ => 0,
            };
        id += 1;
    }
    bail!("no {name} in the kernel's BTF")
}

/// Loads the empty program (named `floor_<tracepoint>`, cut to 15 bytes) and attaches it to
/// `tracepoint` as a raw tracepoint, or as a BTF tracepoint when `btf` (vmlinux BTF) is given;
/// the returned descriptors keep it attached.
fn attach(tracepoint: &str, btf: Option<&[u8]>) -> Result<(OwnedFd, OwnedFd)> {
    let license = CString::new("GPL")?;
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_RAW_TRACEPOINT,
        insn_cnt: EMPTY_PROGRAM.len() as u32,
        insns: EMPTY_PROGRAM.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..ProgLoadAttr::default()
    };
    if let Some(btf) = btf {
        attr.prog_type = BPF_PROG_TYPE_TRACING;
        attr.expected_attach_type = BPF_TRACE_RAW_TP;
        attr.attach_btf_id = btf_typedef_id(btf, &format!("btf_trace_{tracepoint}"))?;
    }
    let name = format!("floor_{tracepoint}");
    let len = name.len().min(15);
    attr.prog_name[..len].copy_from_slice(&name.as_bytes()[..len]);
    let prog = bpf(BPF_PROG_LOAD, &mut attr).context("loading the empty program")?;
    let tp = CString::new(tracepoint)?;
    let mut open = RawTpOpenAttr {
        // A BTF tracepoint is attached where its load named it.
        name: if btf.is_some() { 0 } else { tp.as_ptr() as u64 },
        prog_fd: u32::try_from(std::os::fd::AsRawFd::as_raw_fd(&prog))?,
        _pad: 0,
    };
    let link = bpf(BPF_RAW_TRACEPOINT_OPEN, &mut open)
        .with_context(|| format!("attaching to raw tracepoint {tracepoint}"))?;
    Ok((prog, link))
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() -> Result<()> {
    let mut tracepoints: Vec<String> = std::env::args().skip(1).collect();
    let tp_btf = tracepoints.first().is_some_and(|arg| arg == "--tp-btf");
    if tp_btf {
        tracepoints.remove(0);
    }
    if tracepoints.is_empty() {
        bail!(
            "usage: rawtp_floor [--tp-btf] TRACEPOINT... (event names, e.g. kfree_skb \
             softirq_entry)"
        );
    }
    let btf = if tp_btf {
        Some(std::fs::read("/sys/kernel/btf/vmlinux").context("reading the kernel's BTF")?)
    } else {
        None
    };
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    let held: Vec<(OwnedFd, OwnedFd)> = tracepoints
        .iter()
        .map(|tp| attach(tp, btf.as_deref()).with_context(|| format!("tracepoint {tp}")))
        .collect::<Result<_>>()?;
    // The line bpftrace prints, so the bench waits for both the same way.
    println!("Attaching {} probes...", held.len());
    std::io::stdout().flush()?;
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(held);
    Ok(())
}
