//! `isostream send`: stream WAV files, raw PCM from stdin or a capture device to a receiver.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use isostream::io::{MultiInput, PcmInput, WavInput};
use isostream_drive::resample::Resampled;
use isostream_drive::send::{self as sdriver, Input};
use isostream_drive::AudioSource;
use isostream_media::{AudioSpec, PcmReader, RawFormat, WavSource};
use isostream_sender::{FinishReason, SenderConfig, SenderSession, SenderStats, Speed};

use super::common::{
    bind_udp, check_writable, os_seed, parse_iface, resolve, set_multicast_sender, Iface,
};
use super::devices;
use super::opts::{
    ms_or_deprecated_s, parse_deprecated_seconds, parse_ms, parse_speed, MemoryOpts, SrtpOpts,
    StreamOpts,
};

/// Arguments of `isostream send`.
#[derive(Args)]
pub struct SendArgs {
    /// WAV file(s), or `-` for raw PCM on stdin. Several files become substreams of one session.
    #[arg(required_unless_present = "device", conflicts_with = "device")]
    inputs: Vec<String>,
    /// Capture from an audio device (the default input, or NAME from `isostream devices`)
    /// instead of INPUT, at --rate and --channels as 16-bit audio. Implies --live.
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    device: Option<String>,
    /// Receiver address, or an IP multicast group (239.x.y.z:PORT, [ff0x::...]:PORT): every
    /// member of the group receives the stream and reports back by unicast.
    #[arg(long)]
    to: String,
    /// With a multicast --to: the hop limit (TTL) of the datagrams, 1 to 255 (1: this link
    /// only). Default 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=255))]
    multicast_ttl: Option<u32>,
    /// With a multicast --to: the interface to send from, by address (IPv4) or name (e.g.
    /// eth0). Default: the route's.
    #[arg(long, value_name = "ADDR|NAME", value_parser = parse_iface)]
    multicast_iface: Option<Iface>,
    /// Local address to send from.
    #[arg(long, default_value = "0.0.0.0:0")]
    bind: SocketAddr,
    /// Raw PCM format on stdin: s16le, s16be, s24le or f32le.
    #[arg(long, default_value = "s16le", value_parser = isostream::io::raw_format)]
    format: RawFormat,
    /// Sample rate of raw PCM on stdin, in Hz (1000 to 768000).
    #[arg(long, default_value_t = 48_000, value_parser = clap::value_parser!(u32).range(1_000..=768_000))]
    rate: u32,
    /// Channels of raw PCM on stdin (1 to 255).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=255))]
    channels: u16,
    /// Treat stdin as a live source (audio produced while paused is dropped).
    #[arg(long)]
    live: bool,
    /// How fast stored media is sent: times real time, or `max` (as fast as PAUSE/RESUME
    /// allow). Default: twice real time, so the receiver's buffer fills up to its high-water
    /// mark and PAUSE/RESUME keep it deep (`1`: real time); 1 (and at most 1) to a multicast
    /// group, whose sender obeys no PAUSE. A live source ignores it.
    #[arg(long, value_parser = parse_speed)]
    speed: Option<Speed>,
    #[command(flatten)]
    stream: StreamOpts,
    #[command(flatten)]
    memory: MemoryOpts,
    #[command(flatten)]
    srtp: SrtpOpts,
    /// Stop if the receiver, once heard, is silent this long, in ms.
    #[arg(long, default_value_t = 10_000, value_parser = parse_ms)]
    receiver_timeout_ms: u64,
    /// Deprecated spelling of --receiver-timeout-ms, in seconds.
    #[arg(
        long = "receiver-timeout",
        hide = true,
        conflicts_with = "receiver_timeout_ms",
        value_parser = parse_deprecated_seconds
    )]
    receiver_timeout_s: Option<f64>,
    /// Write an SDP description of the stream to this file, for stock RTP receivers (ffmpeg,
    /// VLC, GStreamer). Needs a plain stream: --fec off --interleave 1.
    #[arg(long)]
    sdp: Option<PathBuf>,
    /// Write the summary as JSON to this file (every field: docs/STATS.md).
    #[arg(long)]
    stats_json: Option<PathBuf>,
}

/// Opens one input: `-` for raw PCM on stdin (as --format, --rate, --channels say), else a
/// WAV file.
fn open_input(path: &str, a: &SendArgs) -> Result<(Box<dyn AudioSource>, AudioSpec)> {
    if path == "-" {
        let spec = AudioSpec {
            rate: a.rate,
            channels: a.channels,
            format: a.format.sample_format(),
        };
        let r = PcmReader::new(std::io::stdin(), a.format, a.channels);
        return Ok((Box::new(PcmInput(r)), spec));
    }
    let w = WavSource::open(path).with_context(|| format!("cannot read {path}"))?;
    let spec = w.spec();
    Ok((Box::new(WavInput(w)), spec))
}

/// The only rate Opus (RFC 7587) codes here, in Hz.
const OPUS_RATE: u32 = 48_000;

/// `isostream send`.
pub async fn run(a: SendArgs) -> Result<()> {
    for p in a.stats_json.iter().chain(&a.sdp) {
        check_writable(p)?;
    }
    let srtp_key = a.srtp.key()?;
    let srtp = srtp_key
        .as_ref()
        .map(isostream_drive::srtp::Srtp::new)
        .transpose()?;
    let mut device = match &a.device {
        Some(d) => Some(devices::capture_input(
            (!d.is_empty()).then_some(d.as_str()),
            a.rate,
            a.channels,
        )?),
        None => None,
    };
    if a.inputs.iter().filter(|p| *p == "-").count() > 1 {
        bail!("stdin ('-') can be one input only");
    }
    let mut inputs = Vec::new();
    for p in &a.inputs {
        inputs.push(open_input(p, &a)?);
    }
    if let Some((_, s, _)) = &device {
        inputs.push((Box::new(devices::NoSource) as Box<dyn AudioSource>, *s));
    }
    let first = inputs[0].1;
    for (i, (_, s)) in inputs.iter().enumerate() {
        if s.rate != first.rate || s.format != first.format {
            bail!(
                "{} is {s} but {} is {first}: the inputs of one session must share rate and sample format (convert first, e.g. with sox or ffmpeg)",
                a.inputs[i], a.inputs[0]
            );
        }
    }
    let per_input: Vec<u16> = inputs.iter().map(|(_, s)| s.channels).collect();
    let mut spec = AudioSpec {
        channels: per_input.iter().sum(),
        ..first
    };
    let source: Box<dyn AudioSource> = if inputs.len() == 1 {
        inputs.pop().expect("one input").0
    } else {
        Box::new(MultiInput::new(
            inputs
                .into_iter()
                .map(|(s, sp)| (s, sp.frame_bytes()))
                .collect(),
        ))
    };
    // Opus codes 48 kHz only: a file or pipe at another rate is resampled on the way in
    let in_rate = spec.rate;
    let source: Box<dyn AudioSource> =
        if a.stream.codec == "opus" && spec.rate != OPUS_RATE && device.is_none() {
            let r = Resampled::new(source, spec, OPUS_RATE)?;
            spec.rate = OPUS_RATE;
            Box::new(r)
        } else {
            source
        };
    let mut cfg = SenderConfig::new(spec);
    cfg.substream_channels = per_input;
    cfg.live = a.live || device.is_some();
    a.stream.apply(&mut cfg)?;
    cfg.memory_budget_bytes = a.memory.bytes();
    let to = resolve(&a.to)?;
    let multicast = to.ip().is_multicast();
    if !multicast && (a.multicast_ttl.is_some() || a.multicast_iface.is_some()) {
        bail!("--multicast-ttl and --multicast-iface need a multicast group as --to (224.0.0.0/4 or ff00::/8), not {to}");
    }
    cfg.speed = match a.speed {
        None if multicast => Speed::Times(1.0),
        None => Speed::Times(2.0),
        Some(Speed::Times(x)) if multicast && x > 1.0 => bail!(
            "--speed {x} to a multicast group: its sender obeys no PAUSE, so stored media goes at most at the media rate (--speed 1 or less)"
        ),
        Some(Speed::Max) if multicast => bail!(
            "--speed max to a multicast group: its sender obeys no PAUSE, so stored media goes at most at the media rate (--speed 1 or less)"
        ),
        Some(s) => s,
    };
    cfg.multicast = multicast;
    cfg.seed = os_seed();
    cfg.receiver_timeout = ms_or_deprecated_s(a.receiver_timeout_ms, a.receiver_timeout_s);
    cfg.wallclock_at_zero_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    cfg.receiver_addr = to;
    let session = SenderSession::new(cfg.clone())?;
    let bind = if to.is_ipv6() && a.bind == SocketAddr::from(([0, 0, 0, 0], 0)) {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        a.bind
    };
    let socket = bind_udp(bind)?;
    if multicast {
        // not connected: the reports come back from every member's own address
        set_multicast_sender(
            &socket,
            to,
            a.multicast_ttl.unwrap_or(1),
            a.multicast_iface.as_ref(),
        )?;
    } else {
        socket
            .connect(to)
            .await
            .with_context(|| format!("cannot reach {to}"))?;
    }
    if let Some(p) = &a.sdp {
        let sdp = isostream_transport::sdp::SdpStream {
            origin: socket.local_addr()?.ip(),
            media: to,
            rate: spec.rate,
            channels: spec.channels,
            format_code: spec.format.code(),
            packet_frames: cfg.packet_frames,
            fec: cfg.fec.is_some(),
            interleave: cfg.interleave,
            substreams: cfg.substream_channels.len(),
            reader: isostream_transport::sdp::Reader::Receiver,
            opus_bitrate: match cfg.codec {
                isostream_sender::Codec::Opus(o) => Some(o.bitrate),
                _ => None,
            },
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
    let total = if a.inputs.len() == 1 && a.inputs[0] != "-" {
        WavSource::open(&a.inputs[0])
            .ok()
            .and_then(|w| w.total_frames())
            .map(|f| (f as f64 * f64::from(spec.rate) / f64::from(in_rate)).round() as u64)
    } else {
        None
    };
    let mut bar = SendProgress::new(total, spec.rate);
    let (device_input, capture) = match device.take() {
        Some((i, _, h)) => (Some(i), Some(h)),
        None => (None, None),
    };
    let input = if let Some(i) = device_input {
        i
    } else if a.live {
        // a live source is read on its own thread, as fast as it produces audio
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let mut src = source;
        let fb = spec.frame_bytes();
        let chunk_frames = cfg.packet_frames as usize;
        std::thread::spawn(move || {
            isostream::io::forward_live(|buf| src.read_frames(buf), tx, chunk_frames, fb)
        });
        Input::Live(rx)
    } else {
        Input::Stored(source)
    };
    let resampled = if in_rate != spec.rate {
        format!(" (resampled from {in_rate} Hz)")
    } else {
        String::new()
    };
    eprintln!(
        "isostream send: {} -> {to}: {spec}{resampled}, {} substream(s), {} ms packets, FEC {}, interleave {}, spread {}{}",
        a.inputs.join(" "),
        cfg.substream_channels.len(),
        f64::from(cfg.packet_frames) * 1000.0 / f64::from(spec.rate),
        cfg.fec.map_or("off".to_string(), |f| f.to_string()),
        cfg.interleave,
        cfg.spread,
        srtp.as_ref()
            .map_or(String::new(), |s| format!(", SRTP {}", s.suite().name()))
    );
    let (stats, why) = sdriver::run(session, socket, input, srtp, &mut bar).await?;
    bar.finish();
    if let Some(c) = &capture {
        eprintln!("{}", c.report());
    }
    print_sender_summary(&stats, &why, spec.rate);
    if let Some(p) = &a.stats_json {
        let v = serde_json::json!({ "sender": stats, "finish": why });
        std::fs::write(p, serde_json::to_string_pretty(&v)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let FinishReason::ReceiverLost { silent_ms } = why {
        bail!(
            "stopped: the receiver has been silent for {:.1} s",
            silent_ms as f64 / 1000.0
        );
    }
    Ok(())
}

struct SendProgress {
    bar: Option<indicatif::ProgressBar>,
    rate: u32,
}

impl SendProgress {
    fn new(total: Option<u64>, rate: u32) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = match total {
                Some(t) => indicatif::ProgressBar::new(t),
                None => indicatif::ProgressBar::new_spinner(),
            };
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {percent}% {msg}",
                )
                .expect("a valid template"),
            );
            b
        });
        SendProgress { bar, rate }
    }
    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl sdriver::Progress for SendProgress {
    fn update(&mut self, s: &SenderStats, paused: bool) {
        if let Some(b) = &self.bar {
            b.set_position(s.frames_sent);
            b.set_message(format!(
                "{:.1} s sent, {} packets{}",
                s.frames_sent as f64 / self.rate as f64,
                s.packets_sent,
                if paused { ", PAUSED by receiver" } else { "" }
            ));
        }
    }
}

fn print_sender_summary(s: &SenderStats, why: &FinishReason, rate: u32) {
    eprintln!(
        "isostream send: {} ({:.2} s of audio): {} media + {} repair packets ({} + {} bytes), {} retransmitted ({} bytes) of {} asked for; {} PAUSE(s) applied for {} ms, {} RESUME(s) applied; {} live frames dropped",
        match why {
            FinishReason::EndOfInput => "done".to_string(),
            FinishReason::ReceiverLost { silent_ms } => format!("receiver lost after {silent_ms} ms of silence"),
        },
        s.frames_sent as f64 / rate as f64,
        s.packets_sent,
        s.repair_packets_sent,
        s.media_bytes,
        s.repair_bytes,
        s.retransmission.retransmissions_sent,
        s.retransmission.retransmission_bytes,
        s.retransmission.retransmissions_requested,
        s.pauses_applied,
        s.paused_ms,
        s.resumes_applied,
        s.frames_dropped
    );
    if s.datagrams_unauthenticated > 0 {
        eprintln!(
            "isostream send: {} unauthenticated datagram(s) dropped (SRTCP: forged, another key, or replayed)",
            s.datagrams_unauthenticated
        );
    }
    if let Some(r) = s.receiver_report {
        eprintln!(
            "isostream send: the receiver reports {} packet(s) lost ({:.1} % in its last report), jitter {:.2} ms",
            r.packets_lost,
            r.fraction_lost * 100.0,
            r.jitter_ms
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
        send: SendArgs,
    }

    fn receiver_timeout(args: &[&str]) -> Duration {
        let base = ["send", "in.wav", "--to", "127.0.0.1:5004"];
        let c = Cli::try_parse_from(base.iter().chain(args)).expect("valid arguments");
        ms_or_deprecated_s(c.send.receiver_timeout_ms, c.send.receiver_timeout_s)
    }

    #[test]
    fn receiver_timeout_is_in_ms_and_the_old_flag_in_seconds() {
        assert_eq!(receiver_timeout(&[]), Duration::from_secs(10));
        assert_eq!(
            receiver_timeout(&["--receiver-timeout-ms", "1500"]),
            Duration::from_millis(1500)
        );
        assert_eq!(
            receiver_timeout(&["--receiver-timeout", "1.5"]),
            Duration::from_millis(1500)
        );
    }
}
