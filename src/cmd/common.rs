//! Helpers shared by the networked subcommands: sockets, address resolution, seeds.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};

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

/// Resolves the destination `HOST:PORT` (`--to`, `--forward`) to its first socket address;
/// port 0 and the unspecified address (0.0.0.0, ::) are no destination.
pub fn resolve(addr: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let a = addr
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve '{addr}' (expected HOST:PORT)"))?
        .next()
        .with_context(|| format!("'{addr}' resolves to no address"))?;
    if a.port() == 0 {
        bail!(
            "'{addr}': port 0 is no destination (expected HOST:PORT with a port from 1 to 65535)"
        );
    }
    if a.ip().is_unspecified() {
        bail!(
            "'{addr}': {} is no destination (name the host to send to)",
            a.ip()
        );
    }
    Ok(a)
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

/// Fails at once if a file that is written at the end (the JSON summary) cannot be: better
/// now than after the session.
pub fn check_writable(p: &std::path::Path) -> Result<()> {
    if p.is_dir() {
        bail!("cannot write {}: it is a directory", p.display());
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        bail!(
            "cannot write {}: no directory {}",
            p.display(),
            parent.display()
        );
    }
    Ok(())
}
