//! A synchronous rtnetlink socket that only sends dump requests (links, routes, qdiscs) and
//! returns the answers; shared by `facts` and `counters`. It never sends anything that changes.

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// Netlink message header length.
const NLMSG_HDRLEN: usize = 16;

/// One message of a dump: decoded by the crate, or the raw payload and type of one it could not.
pub enum Dumped {
    Decoded(RouteNetlinkMessage),
    Raw { kind: u16, payload: Vec<u8> },
}

/// A synchronous rtnetlink socket that only sends dump requests.
pub struct Dumper {
    socket: Socket,
    seq: u32,
}

impl Dumper {
    pub fn open() -> Result<Self, String> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(|e| format!("opening a netlink socket: {e}"))?;
        socket
            .bind_auto()
            .map_err(|e| format!("binding the netlink socket: {e}"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| format!("connecting the netlink socket: {e}"))?;
        let timeout = nix::sys::time::TimeVal::new(5, 0);
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
            .map_err(|e| format!("setting the netlink receive timeout: {e}"))?;
        Ok(Self { socket, seq: 0 })
    }

    /// One dump request, retried when the kernel says the dump was interrupted.
    pub fn dump(&mut self, request: &RouteNetlinkMessage) -> Result<Vec<Dumped>, String> {
        self.dump_as(request, true)
    }

    /// [`Dumper::dump`] without decoding: every answer as [`Dumped::Raw`], for callers that
    /// take a few attributes of many messages (the crate decodes every attribute of every
    /// link, which costs more than reading the two a counter sample needs).
    pub fn dump_raw(&mut self, request: &RouteNetlinkMessage) -> Result<Vec<Dumped>, String> {
        self.dump_as(request, false)
    }

    fn dump_as(
        &mut self,
        request: &RouteNetlinkMessage,
        decode: bool,
    ) -> Result<Vec<Dumped>, String> {
        let mut last = Err("the dump was interrupted three times".to_owned());
        for _ in 0..3 {
            match self.dump_once(request, decode)? {
                (msgs, false) => return Ok(msgs),
                (msgs, true) => last = Ok(msgs),
            }
        }
        last
    }

    fn dump_once(
        &mut self,
        request: &RouteNetlinkMessage,
        decode: bool,
    ) -> Result<(Vec<Dumped>, bool), String> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(request.clone()));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket
            .send(&out, 0)
            .map_err(|e| format!("sending the dump request: {e}"))?;

        let mut msgs = Vec::new();
        let mut interrupted = false;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = self
                .socket
                .recv(&mut &mut buf[..], 0)
                .map_err(|e| format!("reading the dump: {e}"))?;
            let data = &buf[..n.min(buf.len())];
            if read_datagram_as(data, self.seq, &mut msgs, &mut interrupted, decode)? {
                return Ok((msgs, interrupted));
            }
            if n == 0 {
                return Err("the netlink socket closed during the dump".to_owned());
            }
        }
    }
}

/// The messages of one datagram of a dump answering request `seq` (others are skipped), added
/// to `msgs`; true when the dump's end (`NLMSG_DONE`) is among them: what [`Dumper::dump`]
/// reads, for the tests that decode a recorded dump.
#[cfg(test)]
pub(crate) fn read_datagram(
    data: &[u8],
    seq: u32,
    msgs: &mut Vec<Dumped>,
    interrupted: &mut bool,
) -> Result<bool, String> {
    read_datagram_as(data, seq, msgs, interrupted, true)
}

/// `NLMSG_NOOP`, `NLMSG_ERROR`, `NLMSG_DONE`.
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// The messages of one datagram of a dump answering request `seq`, added to `msgs`, each
/// decoded (`decode`) or kept raw; true when the dump's end (`NLMSG_DONE`) is among them.
fn read_datagram_as(
    data: &[u8],
    seq: u32,
    msgs: &mut Vec<Dumped>,
    interrupted: &mut bool,
    decode: bool,
) -> Result<bool, String> {
    let mut offset = 0;
    while offset + NLMSG_HDRLEN <= data.len() {
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(&data[offset..offset + 4]);
        let len = u32::from_ne_bytes(len_bytes) as usize;
        if len < NLMSG_HDRLEN || offset + len > data.len() {
            return Err("the kernel's answer was cut short".to_owned());
        }
        let raw = &data[offset..offset + len];
        offset += (len + 3) & !3;
        if !decode {
            if read_raw(raw, seq, msgs, interrupted)? {
                return Ok(true);
            }
            continue;
        }
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw) {
            Ok(msg) => {
                if msg.header.sequence_number != seq {
                    continue;
                }
                if msg.header.flags & NLM_F_DUMP_INTR != 0 {
                    *interrupted = true;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(true),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(format!("the kernel refused the dump: {}", e.to_io()))
                    }
                    NetlinkPayload::InnerMessage(inner) => msgs.push(Dumped::Decoded(inner)),
                    _ => {}
                }
            }
            Err(_) => {
                let Ok(nl) = NetlinkBuffer::new_checked(raw) else {
                    continue;
                };
                if nl.sequence_number() != seq {
                    continue;
                }
                if nl.flags() & NLM_F_DUMP_INTR != 0 {
                    *interrupted = true;
                }
                msgs.push(Dumped::Raw {
                    kind: nl.message_type(),
                    payload: nl.payload().to_vec(),
                });
            }
        }
    }
    Ok(false)
}

/// One message of a dump answering `seq`, undecoded, added to `msgs`; true at the dump's end.
/// An error message with a code is the kernel refusing the dump; an acknowledgement is skipped.
fn read_raw(
    raw: &[u8],
    seq: u32,
    msgs: &mut Vec<Dumped>,
    interrupted: &mut bool,
) -> Result<bool, String> {
    let Ok(nl) = NetlinkBuffer::new_checked(raw) else {
        return Ok(false);
    };
    if nl.sequence_number() != seq {
        return Ok(false);
    }
    if nl.flags() & NLM_F_DUMP_INTR != 0 {
        *interrupted = true;
    }
    match nl.message_type() {
        NLMSG_DONE => Ok(true),
        NLMSG_NOOP => Ok(false),
        NLMSG_ERROR => {
            let code = nl
                .payload()
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, i32::from_ne_bytes);
            if code != 0 {
                let err = std::io::Error::from_raw_os_error(code.saturating_neg());
                return Err(format!("the kernel refused the dump: {err}"));
            }
            Ok(false)
        }
        kind => {
            msgs.push(Dumped::Raw {
                kind,
                payload: nl.payload().to_vec(),
            });
            Ok(false)
        }
    }
}
