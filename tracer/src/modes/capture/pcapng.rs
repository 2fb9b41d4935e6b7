//! A pcapng writer (the subset `tracer capture` needs): one Section Header Block, one Interface
//! Description Block per (namespace, device) with its name and nanosecond timestamps, and
//! Enhanced Packet Blocks whose `opt_comment` carries the drop reason, location, namespace and
//! pod, which `tshark`/Wireshark show (`frame.comment`). Packets start at the network header
//! (LINKTYPE_RAW: IPv4 or IPv6). The writer stops at a byte limit, so a capture never fills a
//! disk.
//!
//! Written by hand rather than with a crate: the one maintained pcapng writer crate
//! (`pcap-file`) is at a 3.0 release candidate, and the three blocks needed here are ~100 lines
//! whose byte layout the tests read back exactly.

use std::{collections::HashMap, io::Write};

/// Block types (pcapng, draft-ietf-opsawg-pcapng).
pub const SHB: u32 = 0x0A0D_0D0A;
pub const IDB: u32 = 0x0000_0001;
pub const EPB: u32 = 0x0000_0006;
/// Byte-order magic of the section header.
pub const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// LINKTYPE_RAW: the packet begins with an IPv4 or IPv6 header.
pub const LINKTYPE_RAW: u16 = 101;
/// Option codes.
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;

/// Writes one pcapng section; counts the bytes and refuses packets past a limit.
pub struct PcapngWriter<W: Write> {
    out: W,
    interfaces: HashMap<(u32, u32), u32>,
    snaplen: u32,
    written: u64,
    limit: u64,
}

/// An option: code, value bytes (padded to 4 when written).
fn option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&value[..usize::from(len)]);
    pad(buf);
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// A whole block: type, total length, body, total length again.
fn block(block_type: u32, body: &[u8]) -> Vec<u8> {
    let total = u32::try_from(body.len() + 12).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(&block_type.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&total.to_le_bytes());
    out
}

impl<W: Write> PcapngWriter<W> {
    /// Starts a section (writes the section header); packets stop at `limit` bytes in all.
    pub fn new(mut out: W, snaplen: u32, limit: u64) -> std::io::Result<Self> {
        let mut body = Vec::new();
        body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes());
        let app = format!("tracer {}", env!("CARGO_PKG_VERSION"));
        option(&mut body, SHB_USERAPPL, app.as_bytes());
        option(&mut body, OPT_END, &[]);
        let bytes = block(SHB, &body);
        out.write_all(&bytes)?;
        Ok(PcapngWriter {
            out,
            interfaces: HashMap::new(),
            snaplen,
            written: bytes.len() as u64,
            limit,
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Interfaces described so far.
    pub fn interface_count(&self) -> usize {
        self.interfaces.len()
    }

    /// The interface id of (namespace, ifindex), describing it (named `name`) on first use.
    fn interface(&mut self, netns: u32, ifindex: u32, name: &str) -> std::io::Result<u32> {
        if let Some(id) = self.interfaces.get(&(netns, ifindex)) {
            return Ok(*id);
        }
        let id = u32::try_from(self.interfaces.len()).unwrap_or(u32::MAX);
        let mut body = Vec::new();
        body.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&self.snaplen.to_le_bytes());
        option(&mut body, IF_NAME, name.as_bytes());
        option(&mut body, IF_TSRESOL, &[9]);
        option(&mut body, OPT_END, &[]);
        let bytes = block(IDB, &body);
        self.out.write_all(&bytes)?;
        self.written += bytes.len() as u64;
        self.interfaces.insert((netns, ifindex), id);
        Ok(id)
    }

    /// Writes one packet (`data` from the network header, `orig_len` its full length) seen on
    /// device `ifname` (index `ifindex`) of namespace `netns`, at `ts_ns` since the Unix epoch.
    /// Returns false, writing nothing, when the packet would pass the byte limit.
    #[allow(clippy::too_many_arguments)]
    pub fn packet(
        &mut self,
        netns: u32,
        ifindex: u32,
        ifname: &str,
        ts_ns: u64,
        data: &[u8],
        orig_len: u32,
        comment: &str,
    ) -> std::io::Result<bool> {
        let mut body = Vec::with_capacity(data.len() + comment.len() + 40);
        let captured = u32::try_from(data.len()).unwrap_or(u32::MAX);
        body.extend_from_slice(&0u32.to_le_bytes()); // interface id, set below
        body.extend_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(ts_ns as u32).to_le_bytes());
        body.extend_from_slice(&captured.to_le_bytes());
        body.extend_from_slice(&orig_len.max(captured).to_le_bytes());
        body.extend_from_slice(data);
        pad(&mut body);
        if !comment.is_empty() {
            option(&mut body, OPT_COMMENT, comment.as_bytes());
        }
        option(&mut body, OPT_END, &[]);
        let new_interface = !self.interfaces.contains_key(&(netns, ifindex));
        // An interface block is at most ~60 bytes plus its name.
        let reserve = if new_interface { 64 + ifname.len() } else { 0 };
        if self.written + (body.len() + 12 + reserve) as u64 > self.limit {
            return Ok(false);
        }
        let id = self.interface(netns, ifindex, ifname)?;
        body[..4].copy_from_slice(&id.to_le_bytes());
        let bytes = block(EPB, &body);
        self.out.write_all(&bytes)?;
        self.written += bytes.len() as u64;
        Ok(true)
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
#[path = "pcapng_tests.rs"]
mod tests;
