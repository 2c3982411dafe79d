//! `isostream recv`: receive a session and write it to WAV files, raw PCM on stdout or a
//! playback device.

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;

use anyhow::{bail, Context, Result};
use clap::Args;
use isostream::io::{Discard, PcmOutput, Recordings, SplitWavOutput, WavOutput};
use isostream_drive::recv as rdriver;
use isostream_drive::AudioSink;
use isostream_media::{AudioSpec, PcmWriter, RawFormat, WavSink};
use isostream_receiver::{ReceiverConfig, ReceiverSession, ReceiverStats};

use super::common::{bind_multicast, bind_udp, check_writable, os_seed, parse_iface, Iface};
use super::devices;
use super::opts::{
    ms_or_deprecated_s, parse_buffer_ms, parse_deprecated_seconds, parse_ms, BufferOpts,
    MemoryOpts, SrtpOpts,
};

/// Arguments of `isostream recv`.
#[derive(Args)]
pub struct RecvArgs {
    /// Address to listen on, or an IP multicast group to join (239.x.y.z:PORT,
    /// [ff0x::...]:PORT; several receivers on one host may join the same group).
    /// (Default 0.0.0.0:5004; with --connect, an ephemeral port.)
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Subscribe to a relay (`isostream relay`) at HOST:PORT: the receiver speaks first and
    /// the relay answers to the address the subscription came from (no open port needed
    /// behind NAT).
    #[arg(long, value_name = "HOST:PORT")]
    connect: Option<String>,
    /// With a multicast --listen: the interface to join on, by address (IPv4) or name (e.g.
    /// eth0). Default: the route's.
    #[arg(long, value_name = "ADDR|NAME", value_parser = parse_iface)]
    multicast_iface: Option<Iface>,
    /// With a multicast --listen (IPv4): receive only this sender's datagrams
    /// (source-specific multicast, IP_ADD_SOURCE_MEMBERSHIP).
    #[arg(long, value_name = "ADDR")]
    source: Option<std::net::IpAddr>,
    /// Output: a WAV file, `-` for raw PCM on stdout at the playout pace, or `device[:NAME]`
    /// for an audio device (the default output, or NAME from `isostream devices`). A WAV
    /// file is never overwritten: with `--out out.wav`, each session goes to the first of
    /// out.wav, out-2.wav, out-3.wav, ... that holds no recording yet.
    #[arg(long, required_unless_present = "out_dir", value_name = "FILE")]
    out: Option<String>,
    /// Write one WAV file per substream into this directory instead (substream-1.wav, ...);
    /// later sessions go to DIR/session-2/, DIR/session-3/, ... Nothing is overwritten.
    #[arg(long, conflicts_with = "out", value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Raw PCM format on stdout: s16le, s16be, s24le or f32le (default: matches the stream).
    #[arg(long, value_parser = isostream::io::raw_format)]
    format: Option<RawFormat>,
    /// Sample rate assumed for a stock RTP sender that sends no session description, in Hz
    /// (1000 to 768000).
    #[arg(long, default_value_t = 48_000, value_parser = clap::value_parser!(u32).range(1_000..=768_000))]
    rate: u32,
    /// Channels assumed for a stock RTP sender (1 to 255).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=255))]
    channels: u16,
    /// The payload type a stock sender uses for plain L16 (ffmpeg uses 97, which isostream
    /// otherwise reads as L24). Streams with an isostream session description ignore it.
    #[arg(long, value_name = "PT", value_parser = parse_l16_payload_type)]
    l16_payload_type: Option<u8>,
    /// Use the low-latency watermark defaults of live sources.
    #[arg(long)]
    live: bool,
    /// Target latency for a live stream, in ms: playback starts with this much buffered
    /// (the low-water mark) and PAUSE is sent above twice as much (at least +100 ms).
    /// Implies --live; overrides --low-water and --high-water.
    #[arg(long, value_parser = parse_buffer_ms)]
    latency: Option<u32>,
    #[command(flatten)]
    buffer: BufferOpts,
    #[command(flatten)]
    memory: MemoryOpts,
    #[command(flatten)]
    srtp: SrtpOpts,
    /// After BYE (or the idle timeout) play out what is buffered and exit 0.
    #[arg(long)]
    exit_on_end: bool,
    /// A session with nothing from its sender for this long has ended, in ms.
    #[arg(long, default_value_t = 3000, value_parser = parse_ms)]
    idle_timeout_ms: u64,
    /// Deprecated spelling of --idle-timeout-ms, in seconds.
    #[arg(
        long = "idle-timeout",
        hide = true,
        conflicts_with = "idle_timeout_ms",
        value_parser = parse_deprecated_seconds
    )]
    idle_timeout_s: Option<f64>,
    /// Write an SDP description of the stream a stock sender should send (L16, payload type
    /// 96, --rate, --channels) to this file.
    #[arg(long)]
    sdp: Option<PathBuf>,
    /// Write the summary as JSON to this file (every field: docs/STATS.md).
    #[arg(long)]
    stats_json: Option<PathBuf>,
}

/// `isostream recv`.
pub async fn run(a: RecvArgs) -> Result<()> {
    let mut cfg = ReceiverConfig::default();
    let connect = a
        .connect
        .as_deref()
        .map(super::common::resolve)
        .transpose()?;
    let listen = a.listen.unwrap_or(match connect {
        Some(SocketAddr::V6(_)) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
        Some(SocketAddr::V4(_)) => SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)),
        None => SocketAddr::from(([0, 0, 0, 0], 5004)),
    });
    if connect.is_some() && listen.ip().is_multicast() {
        bail!("--connect subscribes to a relay by unicast: --listen cannot be a multicast group");
    }
    cfg.connect = connect;
    let multicast = listen.ip().is_multicast();
    if !multicast && (a.source.is_some() || a.multicast_iface.is_some()) {
        bail!(
            "--source and --multicast-iface need a multicast group as --listen (224.0.0.0/4 or ff00::/8), not {}",
            listen
        );
    }
    check_output(a.out.as_deref(), a.out_dir.as_deref())?;
    if let Some(p) = &a.stats_json {
        check_writable(p)?;
    }
    cfg.default_spec.rate = a.rate;
    cfg.default_spec.channels = a.channels;
    cfg.stock_l16_payload_type = a.l16_payload_type;
    a.buffer.apply(&mut cfg, a.live || a.latency.is_some());
    cfg.memory_budget_bytes = a.memory.bytes();
    cfg.output_queue_ms = rdriver::SINK_QUEUE_MS as u32;
    if let Some(ms) = a.latency {
        super::opts::apply_latency(&mut cfg, ms);
    }
    cfg.idle_timeout = ms_or_deprecated_s(a.idle_timeout_ms, a.idle_timeout_s);
    cfg.drift_correction = a.live || a.latency.is_some();
    cfg.wallclock_at_zero_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    cfg.seed = os_seed();
    cfg.multicast = multicast;
    let srtp_key = a.srtp.key()?;
    let srtp = srtp_key
        .as_ref()
        .map(isostream_drive::srtp::Srtp::new)
        .transpose()?;
    let session = ReceiverSession::new(cfg.clone())?;
    let socket = if multicast {
        bind_multicast(listen, a.multicast_iface.as_ref(), a.source)?
    } else {
        bind_udp(listen)?
    };
    if let Some(p) = &a.sdp {
        let local = socket.local_addr()?;
        let ip = isostream_transport::sdp::concrete_address(local.ip());
        let sdp = isostream_transport::sdp::SdpStream {
            origin: ip,
            media: SocketAddr::new(ip, local.port()),
            rate: a.rate,
            channels: a.channels,
            format_code: 0,
            packet_frames: 0,
            fec: false,
            interleave: 1,
            substreams: 1,
            reader: isostream_transport::sdp::Reader::Sender,
            opus_bitrate: None,
            crypto: srtp_key
                .as_ref()
                .map(|k| isostream_transport::sdp::SdpCrypto {
                    suite: k.suite().name().to_string(),
                    inline: k.inline(),
                }),
        };
        std::fs::write(p, sdp.to_sdp()?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    eprintln!(
        "isostream recv: listening on {}{}, low-water {} ms, high-water {} ms{}",
        socket.local_addr()?,
        connect.map_or(String::new(), |c| format!(", subscribing to relay {c}")),
        cfg.low_water_ms,
        cfg.high_water_ms,
        srtp.as_ref()
            .map_or(String::new(), |s| format!(", SRTP {}", s.suite().name()))
    );
    let out = a.out.clone();
    let raw = a.format;
    let mut recordings = a
        .out_dir
        .clone()
        .or_else(|| out.clone().map(PathBuf::from))
        .map(Recordings::new);
    let refused = Rc::new(Cell::new(0u64));
    let refusals = refused.clone();
    // whether the current session was seen playing (the observer below sets it)
    let seen_playing = Rc::new(Cell::new(false));
    let playing = seen_playing.clone();
    let mut create_sink =
        move |spec: AudioSpec, channels: &[u16]| -> std::io::Result<(Box<dyn AudioSink>, String)> {
            // a session that played nothing (replaced by its description) gives its file back
            if let Some(r) = recordings.as_mut() {
                if seen_playing.replace(false) {
                    r.keep_last();
                } else {
                    r.discard_last_if_empty();
                }
            }
            if a.out_dir.is_some() {
                let r = recordings.as_mut().expect("--out-dir names the recordings");
                let (sink, dir) = r.create_in_dir(channels.len(), |d| {
                    SplitWavOutput::create(d, spec, channels)
                })?;
                return Ok((Box::new(sink), format!("{}/substream-*.wav", dir.display())));
            }
            match out.as_deref() {
                Some("-") => {
                    let f = raw.unwrap_or(RawFormat::native_for(spec.format));
                    if f.sample_format() != spec.format {
                        return Err(std::io::Error::other(format!(
                            "--format {} does not match the stream's {} samples",
                            f.name(),
                            spec.format
                        )));
                    }
                    let w = PcmWriter::new(std::io::stdout(), f, spec.channels);
                    Ok((Box::new(PcmOutput(w)), "stdout".into()))
                }
                Some(o) if devices::device_out(o).is_some() => Ok((
                    devices::playback_sink(devices::device_out(o).flatten(), spec)?,
                    o.to_string(),
                )),
                Some(_) => {
                    let r = recordings.as_mut().expect("--out names the recordings");
                    let (sink, path) = r.create_file(|p| {
                        WavSink::create(p, spec).map(WavOutput).map_err(|e| {
                            std::io::Error::other(format!("cannot write {}: {e}", p.display()))
                        })
                    })?;
                    Ok((Box::new(sink), path.display().to_string()))
                }
                None => unreachable!("clap requires --out or --out-dir"),
            }
        };
    // a session the output cannot take (a format it cannot store, a file it cannot create)
    // is refused: its audio is discarded and the receiver goes on with the next session
    let make_sink = move |spec: AudioSpec,
                          channels: &[u16]|
          -> std::io::Result<Box<dyn AudioSink>> {
        match create_sink(spec, channels) {
            Ok((sink, to)) => {
                eprintln!(
                    "isostream recv: session of {spec} in {} substream(s) -> {to}",
                    channels.len()
                );
                Ok(sink)
            }
            Err(e) => {
                refusals.set(refusals.get() + 1);
                let n = channels.len();
                eprintln!("isostream recv: warning: session of {spec} in {n} substream(s) refused, its audio is discarded: {e}");
                Ok(Box::new(Discard))
            }
        }
    };
    let shutdown = shutdown_signal()?;
    let mut ended = false;
    let mut over_budget = 0;
    let (stats, _stop) = rdriver::run(
        session,
        socket,
        srtp,
        make_sink,
        a.exit_on_end,
        shutdown,
        &mut |_, s: &ReceiverSession| {
            if s.is_playing() {
                playing.set(true);
            }
            if s.is_ended() && !ended && !a.exit_on_end {
                eprintln!("isostream recv: the session ended; waiting for the next one");
            }
            ended = s.is_ended();
            // a description over the memory budget: said the first time, then at 2, 4, 8, ...
            let (n, why) = s.refused_over_budget();
            if n > over_budget {
                if over_budget == 0 || n.ilog2() > over_budget.ilog2() {
                    if let Some(e) = why {
                        eprintln!("isostream recv: warning: a session was refused ({n} so far): {e} (--memory-budget-mib)");
                    }
                }
                over_budget = n;
            }
        },
    )
    .await?;
    print_receiver_summary(&stats);
    let refused = refused.get();
    if refused > 0 {
        eprintln!("isostream recv: {refused} session(s) refused (their audio was discarded)");
    }
    if let Some(p) = &a.stats_json {
        let v = serde_json::json!({ "receiver": stats, "sessions_refused": refused });
        std::fs::write(p, serde_json::to_string_pretty(&v)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

/// Parses `--l16-payload-type`: a dynamic or static RTP payload type (0 to 127) other than
/// the ones the demultiplexing reserves: 64 to 95 (they look like RTCP, RFC 5761), the
/// repair packets' 110 and the retransmissions' 109.
fn parse_l16_payload_type(s: &str) -> Result<u8, String> {
    use isostream_transport::rtp::{PT_REPAIR, PT_RTX};
    match s.trim().parse::<u8>() {
        Ok(pt @ (64..=95)) => Err(format!(
            "payload type {pt} cannot be told from RTCP (RFC 5761): use 0 to 63 or 96 to 127"
        )),
        Ok(pt) if pt == PT_REPAIR || pt == PT_RTX => Err(format!(
            "payload type {pt} is isostream's own (repair 110, retransmission 109)"
        )),
        Ok(pt @ 0..=127) => Ok(pt),
        _ => Err(format!("'{s}' is not an RTP payload type (0 to 127)")),
    }
}

/// Fails at once, before anything is received, if the output cannot be written at all: a
/// WAV file in a directory that does not exist, an `--out-dir` that cannot be created, a
/// sound card without the `device` feature.
fn check_output(out: Option<&str>, out_dir: Option<&std::path::Path>) -> Result<()> {
    if let Some(d) = out_dir {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        return Ok(());
    }
    match out {
        None | Some("-") => Ok(()),
        Some(o) if devices::device_out(o).is_some() => devices::check_playback_available(),
        Some(path) => {
            let p = std::path::Path::new(path);
            if p.is_dir() {
                bail!("cannot write {path}: it is a directory (--out names a WAV file; --out-dir a directory)");
            }
            let parent = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => std::path::Path::new("."),
            };
            if !parent.is_dir() {
                bail!("cannot write {path}: no directory {}", parent.display());
            }
            Ok(())
        }
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM: either way every file is finalized.
pub fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Prints the receiver summary to stderr.
pub fn print_receiver_summary(s: &ReceiverStats) {
    eprintln!(
        "isostream recv: {} packets received, {} lost ({} rebuilt by FEC, {} retransmitted, {} unrecoverable; residual loss {:.3} %), {} late, {} duplicate, {} overflowed; {} malformed, {} foreign and {} unauthenticated datagrams; jitter {:.2} ms",
        s.packets_received,
        s.packets_lost,
        s.packets_rebuilt,
        s.packets_retransmitted,
        s.packets_unrecoverable,
        s.residual_loss * 100.0,
        s.packets_late,
        s.packets_duplicate,
        s.packets_overflowed,
        s.datagrams_malformed,
        s.datagrams_foreign,
        s.datagrams_unauthenticated,
        s.substreams.iter().map(|x| x.jitter_ms).fold(0.0, f64::max)
    );
    eprintln!(
        "isostream recv: {} frames played, {} interpolated ({:.1} ms), {} concealed ({:.1} ms), {} underrun(s); PAUSE sent {} (acked {}), RESUME sent {} (acked {}), {} request retransmission(s); buffer min/mean/max {:.0}/{:.0}/{:.0} ms, startup delay {:.0} ms",
        s.frames_played,
        s.frames_interpolated,
        s.interpolated_ms,
        s.frames_concealed,
        s.concealed_ms,
        s.underruns,
        s.flow.pauses_sent,
        s.flow.pauses_acked,
        s.flow.resumes_sent,
        s.flow.resumes_acked,
        s.flow.request_retransmissions,
        s.buffer_min_ms,
        s.buffer_mean_ms,
        s.buffer_max_ms,
        s.startup_delay_ms
    );
    if let Some(l) = s.capture_to_playout_ms {
        eprintln!(
            "isostream recv: capture-to-playout latency mean {:.1} ms (min {:.1}, max {:.1}), from the sender's wall clock: exact on one machine, an estimate across machines",
            l.mean, l.min, l.max
        );
    }
    if s.substreams.len() > 1 {
        for (i, sub) in s.substreams.iter().enumerate() {
            eprintln!(
                "isostream recv: substream {} ({} ch, SSRC {:08x}): {} packets received, {} lost, {} rebuilt by FEC, {} retransmitted, {} late; {} frames concealed, buffer {} frames",
                i + 1, sub.channels, sub.ssrc, sub.packets_received, sub.packets_lost, sub.packets_rebuilt, sub.packets_retransmitted, sub.packets_late, sub.frames_concealed, sub.buffer_frames
            );
        }
        eprintln!(
            "isostream recv: skew between substreams: {} frames",
            s.skew_frames
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use isostream_transport::time::Duration;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        recv: RecvArgs,
    }

    fn idle_timeout(args: &[&str]) -> Result<Duration, clap::Error> {
        let base = ["recv", "--out", "x.wav"];
        let c = Cli::try_parse_from(base.iter().chain(args))?;
        Ok(ms_or_deprecated_s(
            c.recv.idle_timeout_ms,
            c.recv.idle_timeout_s,
        ))
    }

    #[test]
    fn idle_timeout_is_in_ms_and_the_old_flag_in_seconds() {
        assert_eq!(idle_timeout(&[]).unwrap(), Duration::from_secs(3));
        assert_eq!(
            idle_timeout(&["--idle-timeout-ms", "250"]).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            idle_timeout(&["--idle-timeout", "0.25"]).unwrap(),
            Duration::from_millis(250)
        );
        assert!(idle_timeout(&["--idle-timeout", "1", "--idle-timeout-ms", "5"]).is_err());
    }
}
