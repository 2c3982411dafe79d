//! `isostream impair`: the impairment model as a real-time UDP relay, both directions.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Args;
use isostream_netsim::{Link, LinkStats, Profile};
use isostream_transport::time::Instant;
use tokio::net::UdpSocket;

/// Arguments of `isostream impair`.
#[derive(Args, Clone, Debug)]
pub struct ImpairArgs {
    /// Address the sender sends to (this relay listens here).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Address of the receiver that datagrams are forwarded to.
    #[arg(long)]
    pub forward: String,
    /// Network profile: lan, wifi, lte, transatlantic, bursty, hostile, perfect, or a TOML/JSON file.
    #[arg(long, default_value = "wifi")]
    pub profile: String,
    /// Seed of the model (same seed, same impairment for the same traffic).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_parser = super::opts::parse_run_seconds)]
    pub duration: Option<f64>,
    /// Write the summary (per direction, in datagrams) as JSON to this file (docs/STATS.md).
    #[arg(long)]
    pub stats_json: Option<PathBuf>,
}

/// Counters of a relay run, per direction.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RelayStats {
    /// The profile's name.
    pub profile: String,
    /// Sender to receiver.
    pub forward: LinkStats,
    /// Receiver to sender.
    pub reverse: LinkStats,
}

/// Runs the relay between a socket facing the sender and one facing the receiver until
/// `stop` completes.
pub async fn relay(
    a: UdpSocket,
    b: UdpSocket,
    profile: &Profile,
    seed: u64,
    stop: impl std::future::Future<Output = ()>,
) -> Result<RelayStats> {
    let origin = std::time::Instant::now();
    let clock = || Instant::from_std(origin, std::time::Instant::now());
    let mut fwd = Link::new(&profile.forward, seed);
    let mut rev = Link::new(&profile.reverse, seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut sender: Option<SocketAddr> = None;
    let mut buf_a = vec![0u8; 65_536];
    let mut buf_b = vec![0u8; 65_536];
    tokio::pin!(stop);
    loop {
        let now = clock();
        while let Some(d) = fwd.poll_deliver(now) {
            let _ = b.send(&d).await;
        }
        if let Some(to) = sender {
            while let Some(d) = rev.poll_deliver(now) {
                let _ = a.send_to(&d, to).await;
            }
        }
        let next = [fwd.next_delivery(), rev.next_delivery()]
            .into_iter()
            .flatten()
            .min();
        let sleep = async {
            match next {
                Some(t) => {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(t.to_std(origin))).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = a.recv_from(&mut buf_a) => {
                if let Ok((n, from)) = r {
                    sender = Some(from);
                    fwd.send(clock(), Bytes::copy_from_slice(&buf_a[..n]));
                }
            }
            r = b.recv(&mut buf_b) => {
                if let Ok(n) = r {
                    rev.send(clock(), Bytes::copy_from_slice(&buf_b[..n]));
                }
            }
            _ = sleep => {}
            _ = &mut stop => break,
        }
    }
    Ok(RelayStats {
        profile: profile.name.clone(),
        forward: fwd.stats(),
        reverse: rev.stats(),
    })
}

/// Prints a relay summary to stderr.
pub fn print_summary(s: &RelayStats) {
    for (dir, l) in [("forward", &s.forward), ("reverse", &s.reverse)] {
        eprintln!(
            "isostream impair ({}): {dir}: {} offered, {} dropped ({:.2} %), {} duplicated, {} reordered, delay mean {:.1} ms max {:.1} ms",
            s.profile,
            l.offered,
            l.dropped + l.dropped_outage,
            l.loss_rate() * 100.0,
            l.duplicated,
            l.reordered,
            l.mean_delay_ms,
            l.max_delay_ms
        );
    }
}

/// `isostream impair`.
pub async fn run(args: ImpairArgs) -> Result<()> {
    let profile = Profile::resolve(&args.profile)?;
    if let Some(p) = &args.stats_json {
        super::common::check_writable(p)?;
    }
    let a = super::common::bind_udp(args.listen)?;
    let to = super::common::resolve(&args.forward)?;
    let unspecified: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .expect("literal");
    let b = super::common::bind_udp(unspecified)?;
    b.connect(to)
        .await
        .with_context(|| format!("cannot reach {to}"))?;
    eprintln!(
        "isostream impair: {} -> {to} through profile '{}': {}",
        args.listen, profile.name, profile.description
    );
    let duration = args.duration;
    let stop = async move {
        match duration {
            Some(s) => {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs_f64(s)) => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    let stats = relay(a, b, &profile, args.seed, stop).await?;
    print_summary(&stats);
    if let Some(p) = &args.stats_json {
        std::fs::write(p, serde_json::to_string_pretty(&stats)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}
