//! The nftables ruleset's generation and table count of one namespace over netfilter netlink
//! (`NFT_MSG_GETGEN`, a `NFT_MSG_GETTABLE` dump), with the `netlink-packet-netfilter` crate.
//! Read-only: it never sends a message that changes the ruleset. Open it only where nf_tables
//! is loaded (asking for an absent subsystem makes the kernel load its module).

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_netfilter::{
    nftables::{GenMessage, NfTablesMessage, TableMessage},
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

/// A netfilter netlink socket in the namespace it was opened in (it stays there after the
/// opening thread leaves).
pub(crate) struct NfTables {
    socket: Socket,
    seq: u32,
}

/// A netfilter netlink socket opened and bound (an address chosen by the kernel) in the calling
/// thread's namespace: what both the generation's socket and the subscription
/// (`route_watch::NfWatch`) start from.
pub(crate) fn netfilter_socket() -> Result<Socket, String> {
    let mut socket = Socket::new(NETLINK_NETFILTER)
        .map_err(|e| format!("opening a netfilter netlink socket: {e}"))?;
    socket
        .bind_auto()
        .map_err(|e| format!("binding the netfilter netlink socket: {e}"))?;
    Ok(socket)
}

impl NfTables {
    /// Opens the socket in the calling thread's namespace.
    pub(crate) fn open() -> Result<Self, String> {
        let socket = netfilter_socket()?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| format!("connecting the netfilter netlink socket: {e}"))?;
        let timeout = nix::sys::time::TimeVal::new(2, 0);
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
            .map_err(|e| format!("setting the netlink receive timeout: {e}"))?;
        Ok(Self { socket, seq: 0 })
    }

    /// The ruleset's generation: it changes with every committed change of any table.
    pub(crate) fn generation(&mut self) -> Result<u32, String> {
        let msgs = self.ask(
            NfTablesMessage::GetGen(GenMessage { attributes: vec![] }),
            0,
        )?;
        msgs.iter()
            .find_map(|m| match m {
                NfTablesMessage::NewGen(g) => g.attributes.iter().find_map(|a| match a {
                    netlink_packet_netfilter::nftables::GenAttribute::Id(id) => Some(*id),
                    _ => None,
                }),
                _ => None,
            })
            .ok_or_else(|| "the kernel's answer had no generation".to_owned())
    }

    /// How many nftables tables the namespace has (0: no rules, nothing to list).
    pub(crate) fn tables(&mut self) -> Result<usize, String> {
        let msgs = self.ask(
            NfTablesMessage::GetTable(TableMessage { attributes: vec![] }),
            NLM_F_DUMP,
        )?;
        Ok(msgs
            .iter()
            .filter(|m| matches!(m, NfTablesMessage::NewTable(_)))
            .count())
    }

    /// Sends one request and reads its answer (up to `NLMSG_DONE` for a dump).
    fn ask(
        &mut self,
        request: NfTablesMessage,
        flags: u16,
    ) -> Result<Vec<NfTablesMessage>, String> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let body = NetfilterMessage::new(
            NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, 0),
            request,
        );
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(body));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket
            .send(&out, 0)
            .map_err(|e| format!("asking nf_tables: {e}"))?;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = self
                .socket
                .recv(&mut &mut buf[..], 0)
                .map_err(|e| format!("reading nf_tables' answer: {e}"))?;
            if n == 0 {
                return Err("the netfilter netlink socket closed".to_owned());
            }
            let mut data = &buf[..n.min(buf.len())];
            while !data.is_empty() {
                let msg = NetlinkMessage::<NetfilterMessage>::deserialize(data)
                    .map_err(|e| format!("reading nf_tables' answer: {e}"))?;
                let len = (msg.header.length as usize + 3) & !3;
                data = data.get(len.max(1)..).unwrap_or(&[]);
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(got),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(format!("nf_tables refused: {}", e.to_io()))
                    }
                    NetlinkPayload::InnerMessage(NetfilterMessage {
                        inner: NetfilterMessageInner::NfTables(m),
                        ..
                    }) => got.push(m),
                    _ => {}
                }
                if flags & NLM_F_DUMP == 0 && !got.is_empty() {
                    return Ok(got);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In the test's own namespace, when nf_tables is there: the generation is stable while
    /// nothing changes the ruleset (this test changes nothing).
    #[test]
    fn the_generation_holds_still_between_two_asks() {
        if !std::path::Path::new("/sys/module/nf_tables").exists() {
            eprintln!("skipped: nf_tables is not loaded here");
            return;
        }
        let Ok(mut nf) = NfTables::open() else {
            eprintln!("skipped: no netfilter netlink socket (not root?)");
            return;
        };
        let (Ok(a), Ok(b)) = (nf.generation(), nf.generation()) else {
            eprintln!("skipped: nf_tables refused GETGEN here (not root?)");
            return;
        };
        assert_eq!(a, b);
        assert!(nf.tables().is_ok());
    }
}
