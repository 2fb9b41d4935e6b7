//! Tells whether a namespace's routes (or its links, whose names the routes show) changed since
//! the last look: an rtnetlink socket subscribed to the route and link groups, drained without
//! blocking. The same for its nftables ruleset: a netfilter netlink socket subscribed to
//! `NFNLGRP_NFTABLES`, where the kernel announces every committed change ([`NfWatch`]). They
//! only listen; they never send anything. Both are readable exactly when something came, so a
//! round can learn from one `epoll_wait` over all of them which namespaces to ask at all.

use std::os::fd::{AsFd, BorrowedFd};

use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A subscription in the namespace it was opened in.
pub(crate) struct RouteWatch {
    socket: Socket,
}

/// The groups listened to: IPv4 and IPv6 routes, and links.
fn groups() -> u32 {
    (libc::RTMGRP_IPV4_ROUTE | libc::RTMGRP_IPV6_ROUTE | libc::RTMGRP_LINK) as u32
}

impl RouteWatch {
    /// Subscribes in the calling thread's namespace. Open it before reading the routes, so a
    /// change in between is not missed.
    pub(crate) fn open() -> Result<Self, String> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(|e| format!("opening a netlink socket: {e}"))?;
        socket
            .bind(&SocketAddr::new(0, groups()))
            .map_err(|e| format!("subscribing to route changes: {e}"))?;
        socket
            .set_non_blocking(true)
            .map_err(|e| format!("making the route subscription non-blocking: {e}"))?;
        Ok(Self { socket })
    }

    /// True when any route or link message came since the last call, or the kernel dropped
    /// some (the socket's buffer overflowed): then the routes must be read again. Drains the
    /// socket.
    pub(crate) fn changed(&mut self) -> bool {
        drain(&self.socket)
    }
}

impl AsFd for RouteWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// True when anything came on `socket` since the last call, or the kernel dropped some (its
/// buffer overflowed): drains it without blocking. The messages themselves are not read (a
/// datagram larger than the buffer is cut short and discarded, as wanted).
fn drain(socket: &Socket) -> bool {
    let mut buf = [0u8; 4096];
    let mut changed = false;
    loop {
        match socket.recv(&mut &mut buf[..], 0) {
            Ok(0) => return true,
            Ok(_) => changed = true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return changed,
            // ENOBUFS (messages lost) or anything else: assume a change.
            Err(_) => return true,
        }
    }
}

/// `NFNLGRP_NFTABLES` (`linux/netfilter/nfnetlink.h`): nf_tables announces every committed
/// ruleset change there (`NFT_MSG_NEWGEN` after each transaction, besides the changed objects).
const NFNLGRP_NFTABLES: u32 = 7;

/// A subscription to one namespace's nftables changes. Open it only where nf_tables is
/// loaded (subscribing asks for the subsystem, which would load its module), and before the
/// generation is first asked, so a change in between is not missed.
pub(crate) struct NfWatch {
    socket: Socket,
}

impl NfWatch {
    /// Subscribes in the calling thread's namespace.
    pub(crate) fn open() -> Result<Self, String> {
        let socket = super::nfgen::netfilter_socket()?;
        socket
            .add_membership(NFNLGRP_NFTABLES)
            .map_err(|e| format!("subscribing to nftables changes: {e}"))?;
        socket
            .set_non_blocking(true)
            .map_err(|e| format!("making the nftables subscription non-blocking: {e}"))?;
        Ok(Self { socket })
    }

    /// True when the ruleset may have changed since the last call (a message came, or some
    /// were lost). Drains the socket: call it before asking for the generation.
    pub(crate) fn changed(&mut self) -> bool {
        drain(&self.socket)
    }
}

impl AsFd for NfWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
