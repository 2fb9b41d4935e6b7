//! Tells whether a namespace's routes (or its links, whose names the routes show) changed since
//! the last look: an rtnetlink socket subscribed to the route and link groups, drained without
//! blocking. It only listens; it never sends anything.

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
        let mut buf = vec![0u8; 1 << 14];
        let mut changed = false;
        loop {
            match self.socket.recv(&mut &mut buf[..], 0) {
                Ok(0) => return true,
                Ok(_) => changed = true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return changed,
                // ENOBUFS (messages lost) or anything else: assume a change.
                Err(_) => return true,
            }
        }
    }
}
