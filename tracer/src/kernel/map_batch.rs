//! Reads a whole BPF hash map in a few `bpf(BPF_MAP_LOOKUP_BATCH)` calls (kernel ≥ 5.6) instead
//! of two system calls per key (aya's iteration: get-next-key, then look the key up). Raw bytes
//! in and out: the loader, which owns the map and knows its types, decodes them. No aya here.
//!
//! Hand-written because aya 0.16 has no wrapper for the batch commands; the attribute layout is
//! aya's own generated kernel binding (`bpf_attr.batch`), as in `prog_stats`. The kernel walks
//! the hash table bucket by bucket and copies whole buckets: each call returns up to `count`
//! entries and a token saying where to go on; `ENOENT` says the walk is over (with the last
//! entries still copied). A bucket with more entries than the buffer holds gives `ENOSPC` and
//! no entry: the buffer is doubled and the same bucket asked again. Like the iteration, a walk
//! that runs beside the programs' updates sees each key that was in the map for the whole walk,
//! with a value read at some moment of it.

use std::os::fd::{AsRawFd as _, BorrowedFd};

use aya_obj::generated::{bpf_attr, bpf_cmd};

/// Entries asked for per call at first (grown on `ENOSPC`).
pub const FIRST_CHUNK: usize = 256;

/// Buffers for walking one map, kept between reads so a read allocates nothing once warm.
#[derive(Debug)]
pub struct BatchReader {
    key_size: usize,
    /// Bytes the kernel copies per key: the value size, or for a per-CPU map the value size
    /// rounded up to 8 times the number of possible CPUs.
    value_size: usize,
    chunk: usize,
    /// `bpf()` calls made, for tests.
    calls: u64,
    keys: Vec<u8>,
    values: Vec<u8>,
}

/// What a walk ended with.
#[derive(Debug)]
pub enum Walk {
    /// Every entry was handed to the caller.
    Done,
    /// The kernel has no batch lookup for this map (before 5.6: `EINVAL`; `ENOTSUPP`,
    /// `EOPNOTSUPP`): nothing was handed over, read the map another way.
    Unsupported,
}

/// The kernel's `ENOTSUPP` (524): not in libc, returned by `bpf()` for a map type without the
/// batch operations.
const ENOTSUPP: i32 = 524;

impl BatchReader {
    /// A reader for a map whose keys are `key_size` bytes and whose values, as the kernel copies
    /// them, `value_size` bytes (see the field's doc for per-CPU maps).
    pub fn new(key_size: usize, value_size: usize) -> Self {
        BatchReader::with_first_chunk(key_size, value_size, FIRST_CHUNK)
    }

    /// [`BatchReader::new`] asking for `chunk` entries per call at first (tests).
    pub fn with_first_chunk(key_size: usize, value_size: usize, chunk: usize) -> Self {
        BatchReader {
            key_size,
            value_size,
            chunk: chunk.max(1),
            calls: 0,
            keys: Vec::new(),
            values: Vec::new(),
        }
    }

    /// `bpf()` calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// Bytes the kernel copies per key of a per-CPU map with values of `value_size` bytes on
    /// `possible_cpus` CPUs.
    pub fn per_cpu_value_size(value_size: usize, possible_cpus: usize) -> usize {
        value_size.next_multiple_of(8) * possible_cpus
    }

    /// Walks the whole map behind `fd`, handing every (key, value) to `each` as raw bytes.
    pub fn walk(
        &mut self,
        fd: BorrowedFd<'_>,
        mut each: impl FnMut(&[u8], &[u8]),
    ) -> std::io::Result<Walk> {
        let map_fd = u32::try_from(fd.as_raw_fd()).map_err(std::io::Error::other)?;
        // The position tokens: a hash map's is its bucket index (a u32), an array's a key;
        // the kernel reads `in_batch` and writes `out_batch`, never more than a key or 8 bytes.
        let token_size = self.key_size.max(8);
        let mut token_in = vec![0u8; token_size];
        let mut token_out = vec![0u8; token_size];
        let mut first = true;
        loop {
            self.keys.resize(self.chunk * self.key_size, 0);
            self.values.resize(self.chunk * self.value_size, 0);
            // SAFETY: plain C data (integers); all-zero is a valid value.
            let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
            attr.batch.in_batch = if first { 0 } else { token_in.as_ptr() as u64 };
            attr.batch.out_batch = token_out.as_mut_ptr() as u64;
            attr.batch.keys = self.keys.as_mut_ptr() as u64;
            attr.batch.values = self.values.as_mut_ptr() as u64;
            attr.batch.count = u32::try_from(self.chunk).map_err(std::io::Error::other)?;
            attr.batch.map_fd = map_fd;
            // SAFETY: `attr` points at live buffers: `keys` and `values` hold `count` entries of
            // the map's key and (per-CPU) value sizes, the tokens at least what the kernel reads
            // or writes of them; the kernel uses them only during the call.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    bpf_cmd::BPF_MAP_LOOKUP_BATCH as libc::c_long,
                    std::ptr::from_mut(&mut attr),
                    size_of::<bpf_attr>() as libc::c_uint,
                )
            };
            let errno = (rc < 0).then(std::io::Error::last_os_error);
            self.calls += 1;
            let code = errno.as_ref().and_then(std::io::Error::raw_os_error);
            // SAFETY: `batch` is the member written above and the one the kernel answers in.
            let returned = unsafe { attr.batch.count } as usize;
            match code {
                None | Some(libc::ENOENT) => {
                    let count = returned.min(self.chunk);
                    for i in 0..count {
                        each(
                            &self.keys[i * self.key_size..(i + 1) * self.key_size],
                            &self.values[i * self.value_size..(i + 1) * self.value_size],
                        );
                    }
                    if code.is_some() {
                        return Ok(Walk::Done);
                    }
                    token_in.copy_from_slice(&token_out);
                    first = false;
                }
                Some(libc::ENOSPC) if returned == 0 => {
                    // One bucket holds more entries than the buffer: a bigger buffer, same place.
                    self.chunk = self.chunk.saturating_mul(2);
                }
                Some(libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP) if first => {
                    return Ok(Walk::Unsupported)
                }
                _ => return Err(errno.unwrap_or_else(|| std::io::Error::other("bpf failed"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_values_are_padded_to_8_bytes_per_cpu() {
        assert_eq!(BatchReader::per_cpu_value_size(8, 2), 16);
        assert_eq!(BatchReader::per_cpu_value_size(4, 3), 24);
        assert_eq!(BatchReader::per_cpu_value_size(12, 4), 64);
    }
}
