//! Helpers shared by the networked subcommands: sockets, address resolution, seeds.

use std::net::SocketAddr;

use anyhow::{Context, Result};

/// A UDP socket with a large receive buffer, so bursts are not dropped by the kernel.
pub fn bind_udp(addr: SocketAddr) -> Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(1 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())
        .with_context(|| format!("cannot bind {addr}"))?;
    Ok(tokio::net::UdpSocket::from_std(s.into())?)
}

/// Resolves `HOST:PORT` to its first socket address.
pub fn resolve(addr: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .with_context(|| format!("cannot resolve '{addr}' (expected HOST:PORT)"))?
        .next()
        .with_context(|| format!("'{addr}' resolves to no address"))
}

/// A seed from the operating system's randomness (for SSRCs and initial sequence numbers,
/// which RFC 3550 wants random per run).
pub fn os_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
