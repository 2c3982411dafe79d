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

/// The network interface of `--multicast-iface`: an address of it, or its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Iface {
    /// An address of the interface (IPv4 groups).
    Addr(std::net::IpAddr),
    /// The interface's name (e.g. `eth0`), as the OS numbers it.
    Name(String),
}

/// Parses `--multicast-iface`: an IP address, or else an interface name.
pub fn parse_iface(s: &str) -> Result<Iface, String> {
    if s.is_empty() {
        return Err("an empty interface (expected an address or a name such as eth0)".into());
    }
    Ok(match s.parse() {
        Ok(a) => Iface::Addr(a),
        Err(_) => Iface::Name(s.to_string()),
    })
}

impl Iface {
    /// The interface's index (IPv6 and IPv4 by name), from its name.
    fn index(&self) -> Result<u32> {
        match self {
            Iface::Name(n) => {
                let c = std::ffi::CString::new(n.as_str())
                    .with_context(|| format!("'{n}' is no interface name"))?;
                // SAFETY: `c` is a NUL-terminated string that outlives the call
                let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
                if i == 0 {
                    bail!("no network interface '{n}' (see `ip link`)");
                }
                Ok(i)
            }
            Iface::Addr(a) => bail!(
                "--multicast-iface {a}: an IPv6 group needs the interface's name (e.g. eth0), not an address"
            ),
        }
    }
}

/// Makes `socket` send to the multicast group of `group`: hop limit `ttl` (1: this link
/// only), looped back to this host's own members, out of `iface` if given (else the route's).
pub fn set_multicast_sender(
    socket: &tokio::net::UdpSocket,
    group: SocketAddr,
    ttl: u32,
    iface: Option<&Iface>,
) -> Result<()> {
    let s = socket2::SockRef::from(socket);
    match group {
        SocketAddr::V4(_) => {
            s.set_multicast_ttl_v4(ttl)
                .context("cannot set the multicast TTL")?;
            s.set_multicast_loop_v4(true)?;
            match iface {
                None => {}
                Some(Iface::Addr(std::net::IpAddr::V4(a))) => s
                    .set_multicast_if_v4(a)
                    .with_context(|| format!("cannot send multicast from interface {a}"))?,
                Some(Iface::Addr(a)) => {
                    bail!("--multicast-iface {a} is IPv6 but the group {group} is IPv4")
                }
                Some(i @ Iface::Name(n)) => set_multicast_if_v4_index(&s, i.index()?)
                    .with_context(|| format!("cannot send multicast from interface {n}"))?,
            }
        }
        SocketAddr::V6(_) => {
            s.set_multicast_hops_v6(ttl)
                .context("cannot set the multicast hop limit")?;
            s.set_multicast_loop_v6(true)?;
            if let Some(i) = iface {
                s.set_multicast_if_v6(i.index()?)
                    .context("cannot choose the multicast interface")?;
            }
        }
    }
    Ok(())
}

/// IP_MULTICAST_IF by interface index (struct ip_mreqn), which socket2 lacks.
#[cfg(target_os = "linux")]
fn set_multicast_if_v4_index(s: &socket2::SockRef<'_>, index: u32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let m = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: index as libc::c_int,
    };
    // SAFETY: a valid socket and a correctly sized, initialised option value
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&m as *const libc::ip_mreqn).cast(),
            std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_multicast_if_v4_index(_: &socket2::SockRef<'_>, _: u32) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "an IPv4 interface by name needs Linux: give the interface's address",
    ))
}

/// IPV6_MULTICAST_ALL off (Linux): a socket bound to the wildcard address receives only the
/// groups it joined, not every group some socket of this host joined on its port.
#[cfg(target_os = "linux")]
fn set_v6_multicast_all_off(s: &socket2::Socket) -> Result<()> {
    use std::os::fd::AsRawFd;
    const IPV6_MULTICAST_ALL: libc::c_int = 29;
    let off: libc::c_int = 0;
    // SAFETY: a valid socket and a correctly sized, initialised option value
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IPV6,
            IPV6_MULTICAST_ALL,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    // kernels before 4.20 lack the option: they deliver as before
    if r != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOPROTOOPT) {
        return Err(std::io::Error::last_os_error()).context("cannot set IPV6_MULTICAST_ALL");
    }
    Ok(())
}

/// A socket that has joined the multicast group `group` (its port the stream's): bound to
/// the group's address and port with SO_REUSEADDR and SO_REUSEPORT, so several receivers on
/// one host join the same group; on `iface` if given (else the route's); with `source`,
/// only that sender's datagrams (source-specific multicast, IPv4).
pub fn bind_multicast(
    group: SocketAddr,
    iface: Option<&Iface>,
    source: Option<std::net::IpAddr>,
) -> Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(group), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(1 << 20);
    s.set_reuse_address(true)?;
    #[cfg(unix)]
    s.set_reuse_port(true)?;
    if group.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    let bound = match group {
        // a link-scoped IPv6 group (ff02::...) is bound with its interface as the scope
        SocketAddr::V6(g) => {
            let scope = iface.map(Iface::index).transpose()?.unwrap_or(0);
            let mut at = g;
            at.set_scope_id(scope);
            s.bind(&SocketAddr::V6(at).into())
        }
        SocketAddr::V4(_) => s.bind(&group.into()),
    };
    if let Err(e) = bound {
        if !group.is_ipv6() {
            return Err(e).with_context(|| format!("cannot bind {group}"));
        }
        // no interface named: the wildcard address and the group's port, taking only the
        // groups this socket joins
        let any = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, group.port()));
        s.bind(&any.into())
            .with_context(|| format!("cannot bind {any} for {group}"))?;
        #[cfg(target_os = "linux")]
        set_v6_multicast_all_off(&s)?;
    }
    match (group.ip(), source) {
        (std::net::IpAddr::V4(g), Some(std::net::IpAddr::V4(src))) => {
            let local = match iface {
                None => std::net::Ipv4Addr::UNSPECIFIED,
                Some(Iface::Addr(std::net::IpAddr::V4(a))) => *a,
                Some(_) => bail!(
                    "--source with --multicast-iface: give the interface's IPv4 address, not a name"
                ),
            };
            s.join_ssm_v4(&src, &g, &local)
                .with_context(|| format!("cannot join {g} for source {src}"))?;
        }
        (std::net::IpAddr::V4(_), Some(src)) => {
            bail!("--source {src} is IPv6 but the group {group} is IPv4")
        }
        (std::net::IpAddr::V6(_), Some(_)) => {
            bail!("--source (source-specific multicast) is supported for IPv4 groups only")
        }
        (std::net::IpAddr::V4(g), None) => {
            use socket2::InterfaceIndexOrAddress as I;
            let i = match iface {
                None => I::Address(std::net::Ipv4Addr::UNSPECIFIED),
                Some(Iface::Addr(std::net::IpAddr::V4(a))) => I::Address(*a),
                Some(Iface::Addr(a)) => {
                    bail!("--multicast-iface {a} is IPv6 but the group {group} is IPv4")
                }
                Some(n @ Iface::Name(_)) => I::Index(n.index()?),
            };
            s.join_multicast_v4_n(&g, &i)
                .with_context(|| format!("cannot join {g}"))?;
        }
        (std::net::IpAddr::V6(g), None) => {
            let i = iface.map(Iface::index).transpose()?.unwrap_or(0);
            s.join_multicast_v6(&g, i)
                .with_context(|| format!("cannot join {g}"))?;
        }
    }
    Ok(tokio::net::UdpSocket::from_std(s.into())?)
}
