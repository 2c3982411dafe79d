//! `isostream relay`: take one session from a sender (or another relay) and serve it to any
//! number of listeners that subscribe with `recv --connect` (docs/PROTOCOL.md, "Relay").

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use isostream_drive::relay as driver;
use isostream_relay::{ListenerState, RelayConfig, RelayEvent, RelaySession, RelayStats};
use isostream_transport::time::Duration;

use super::common::{bind_udp, check_writable, os_seed, resolve};
use super::opts::{parse_buffer_ms, parse_ms};

/// Arguments of `isostream relay`.
#[derive(Args)]
pub struct RelayArgs {
    /// Address to listen on: senders send here (`send --to`), listeners subscribe here
    /// (`recv --connect`).
    #[arg(long, value_name = "HOST:PORT")]
    listen: SocketAddr,
    /// Take the stream from another relay (subscribing to it) instead of from a sender.
    #[arg(long, value_name = "HOST:PORT")]
    connect: Option<String>,
    /// RESUME the upstream when the media held ahead of the relay's playout clock falls to
    /// this, in ms.
    #[arg(long, default_value_t = isostream_relay::config::DEFAULT_LOW_WATER_MS, value_parser = parse_buffer_ms)]
    low_water_ms: u32,
    /// PAUSE the upstream when the media held ahead of the relay's playout clock exceeds
    /// this, in ms.
    #[arg(long, default_value_t = isostream_relay::config::DEFAULT_HIGH_WATER_MS, value_parser = parse_buffer_ms)]
    high_water_ms: u32,
    /// Drop a listener not heard from for this long, in ms (listeners report every 250 ms).
    #[arg(long, default_value_t = isostream_relay::config::DEFAULT_LISTENER_TIMEOUT_MS, value_parser = parse_ms)]
    listener_timeout_ms: u64,
    /// The packet store's memory budget, in MiB (oldest packets go first).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    store_budget_mib: u32,
    /// How fast stored media goes to a listener that has not paused, in times real time
    /// (1 to 16).
    #[arg(long, default_value_t = 2.0, value_parser = parse_relay_speed)]
    speed: f64,
    /// Write the summary (the relay and every listener) as JSON to this file.
    #[arg(long)]
    stats_json: Option<PathBuf>,
}

fn parse_relay_speed(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if (1.0..=16.0).contains(&x) => Ok(x),
        _ => Err(format!("'{s}' is not a speed from 1 to 16")),
    }
}

/// `isostream relay`.
pub async fn run(a: RelayArgs) -> Result<()> {
    if let Some(p) = &a.stats_json {
        check_writable(p)?;
    }
    let connect = a.connect.as_deref().map(resolve).transpose()?;
    let cfg = RelayConfig {
        high_water_ms: a.high_water_ms,
        low_water_ms: a.low_water_ms,
        listener_timeout: Duration::from_millis(a.listener_timeout_ms),
        connect,
        store_budget_bytes: a.store_budget_mib as usize * (1 << 20),
        speed: a.speed,
        seed: os_seed(),
        ..RelayConfig::default()
    };
    let session = RelaySession::new(cfg.clone())?;
    let socket = bind_udp(a.listen)?;
    eprintln!(
        "isostream relay: listening on {}{}, low-water {} ms, high-water {} ms, listener timeout {} ms",
        socket.local_addr()?,
        connect.map_or(String::new(), |c| format!(", upstream relay {c}")),
        cfg.low_water_ms,
        cfg.high_water_ms,
        a.listener_timeout_ms
    );
    let shutdown = super::recv::shutdown_signal()?;
    let (stats, _stop) = driver::run(session, socket, shutdown, &mut |s, e| match e {
        RelayEvent::UpstreamBound(from) => eprintln!("isostream relay: upstream {from}"),
        RelayEvent::ListenerJoined(from) => eprintln!(
            "isostream relay: listener {from} joined ({} listening)",
            s.listener_count()
        ),
        RelayEvent::ListenerLeft { addr, state } => eprintln!(
            "isostream relay: listener {addr} left: {} ({} listening)",
            match state {
                ListenerState::Finished => "finished",
                ListenerState::TimedOut => "timed out",
                ListenerState::Active => "active",
            },
            s.listener_count()
        ),
        RelayEvent::UpstreamEnded { bye } => eprintln!(
            "isostream relay: the upstream ended ({})",
            if *bye { "BYE" } else { "silent" }
        ),
        RelayEvent::Finished => {}
    })
    .await?;
    print_relay_summary(&stats);
    if let Some(p) = &a.stats_json {
        let v = serde_json::json!({ "relay": stats });
        std::fs::write(p, serde_json::to_string_pretty(&v)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

/// Prints the relay's summary, one line for it and one per listener, to stderr.
fn print_relay_summary(s: &RelayStats) {
    eprintln!(
        "isostream relay: upstream {}: {} packets, {} repair, {} duplicate; PAUSE sent {}, RESUME sent {}; store {} packets ({} evicted); {} listener(s) joined, {} finished, {} timed out, {} refused; {} malformed, {} foreign datagrams",
        s.upstream.as_deref().unwrap_or("none"),
        s.upstream_packets,
        s.upstream_repair,
        s.upstream_duplicates,
        s.pauses_sent,
        s.resumes_sent,
        s.store_packets,
        s.store_evicted,
        s.listeners_joined,
        s.listeners_finished,
        s.listeners_timed_out,
        s.subscriptions_refused,
        s.datagrams_malformed,
        s.datagrams_foreign
    );
    for l in &s.listeners {
        eprintln!(
            "isostream relay: listener {} ({:?}): {} packets, {} repair, {} retransmitted ({} unavailable), {} skipped; PAUSE {}, RESUME {}; lost {}",
            l.addr,
            l.state,
            l.packets_sent,
            l.repair_sent,
            l.retransmissions_sent,
            l.retransmissions_unavailable,
            l.packets_skipped,
            l.pauses_applied,
            l.resumes_applied,
            l.receiver_report.map_or(0, |r| r.cumulative_lost)
        );
    }
}
