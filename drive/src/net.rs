//! The socket side the two tokio drivers share: datagrams received into an arena, sent to
//! their address, and the sleep until the pump's deadline.

use std::io;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use isostream_transport::sans_io::Transmit;
use isostream_transport::time::Instant;
use tokio::net::UdpSocket;

/// Room kept free in a receive arena for the next datagram (the largest UDP payload).
const MAX_DATAGRAM: usize = 65_536;

/// Datagrams received into an arena and split off as `Bytes`: one allocation per arena of
/// traffic, not one per packet, and no copy after the kernel's.
pub(crate) struct RecvArena {
    buf: BytesMut,
    size: usize,
}

impl RecvArena {
    /// An arena of `size` bytes (at least the largest datagram).
    pub(crate) fn new(size: usize) -> Self {
        let size = size.max(2 * MAX_DATAGRAM);
        RecvArena {
            buf: BytesMut::with_capacity(size),
            size,
        }
    }

    /// The next datagram and who sent it; `None` for an ICMP port-unreachable report
    /// (Linux surfaces it as ConnectionRefused on the next call), which is not an error.
    pub(crate) async fn recv(
        &mut self,
        socket: &UdpSocket,
    ) -> io::Result<Option<(SocketAddr, Bytes)>> {
        match socket.recv_buf_from(&mut self.buf).await {
            Ok((_, from)) => {
                let d = self.buf.split().freeze();
                if self.buf.capacity() < MAX_DATAGRAM {
                    self.buf = BytesMut::with_capacity(self.size);
                }
                Ok(Some((from, d)))
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Sends `t` to its address (with `send` on a socket connected there); a full socket buffer
/// or an unreachable port must not kill a stream (the receiver may start later).
pub(crate) async fn send(
    socket: &UdpSocket,
    connected: Option<SocketAddr>,
    t: &Transmit,
) -> io::Result<()> {
    let r = if connected == Some(t.to) {
        socket.send(&t.data).await
    } else {
        socket.send_to(&t.data, t.to).await
    };
    match r {
        Err(e) if e.kind() != io::ErrorKind::ConnectionRefused => Err(e),
        _ => Ok(()),
    }
}

/// Sleeps until `at` (on the timeline whose zero is `origin`), forever if `None`.
pub(crate) async fn sleep_until(at: Option<Instant>, origin: std::time::Instant) {
    match at {
        Some(t) => tokio::time::sleep_until(t.to_std(origin).into()).await,
        None => std::future::pending().await,
    }
}
