//! `isostream recv`: receive a session and write it to WAV files, raw PCM on stdout or a
//! playback device.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use isostream::io::{PcmOutput, SplitWavOutput, WavOutput};
use isostream_drive::recv as rdriver;
use isostream_drive::AudioSink;
use isostream_media::{AudioSpec, PcmWriter, RawFormat, WavSink};
use isostream_receiver::{ReceiverConfig, ReceiverSession, ReceiverStats};

use super::common::{bind_udp, os_seed};
use super::devices;
use super::opts::{ms_or_deprecated_s, BufferOpts};

/// Arguments of `isostream recv`.
#[derive(Args)]
pub struct RecvArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:5004")]
    listen: SocketAddr,
    /// Output: a WAV file, `-` for raw PCM on stdout at the playout pace, or `device[:NAME]`
    /// for an audio device (the default output, or NAME from `isostream devices`).
    #[arg(long, required_unless_present = "out_dir")]
    out: Option<String>,
    /// Write one WAV file per substream into this directory instead.
    #[arg(long, conflicts_with = "out")]
    out_dir: Option<PathBuf>,
    /// Raw PCM format on stdout: s16le, s16be, s24le or f32le (default: matches the stream).
    #[arg(long, value_parser = isostream::io::raw_format)]
    format: Option<RawFormat>,
    /// Sample rate assumed for a stock RTP sender that sends no session description, in Hz.
    #[arg(long, default_value_t = 48_000)]
    rate: u32,
    /// Channels assumed for a stock RTP sender.
    #[arg(long, default_value_t = 2)]
    channels: u16,
    /// The payload type a stock sender uses for plain L16 (ffmpeg uses 97, which isostream
    /// otherwise reads as L24). Streams with an isostream session description ignore it.
    #[arg(long, value_name = "PT", value_parser = clap::value_parser!(u8).range(0..=127))]
    l16_payload_type: Option<u8>,
    /// Use the low-latency watermark defaults of live sources.
    #[arg(long)]
    live: bool,
    /// Target latency for a live stream, in ms: playback starts with this much buffered
    /// (the low-water mark) and PAUSE is sent above twice as much (at least +100 ms).
    /// Implies --live; overrides --low-water and --high-water.
    #[arg(long)]
    latency: Option<u32>,
    #[command(flatten)]
    buffer: BufferOpts,
    /// After BYE (or the idle timeout) play out what is buffered and exit 0.
    #[arg(long)]
    exit_on_end: bool,
    /// A session with nothing from its sender for this long has ended, in ms.
    #[arg(long, default_value_t = 3000)]
    idle_timeout_ms: u64,
    /// Deprecated spelling of --idle-timeout-ms, in seconds.
    #[arg(long = "idle-timeout", hide = true, conflicts_with = "idle_timeout_ms")]
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
    if !(1_000..=768_000).contains(&a.rate) || !(1..=255).contains(&a.channels) {
        bail!(
            "--rate {} --channels {}: expected 1000..768000 Hz and 1..255 channels",
            a.rate,
            a.channels
        );
    }
    cfg.default_spec.rate = a.rate;
    cfg.default_spec.channels = a.channels;
    cfg.stock_l16_payload_type = a.l16_payload_type;
    a.buffer.apply(&mut cfg, a.live || a.latency.is_some());
    if let Some(ms) = a.latency {
        super::opts::apply_latency(&mut cfg, ms);
    }
    cfg.idle_timeout = ms_or_deprecated_s(a.idle_timeout_ms, a.idle_timeout_s);
    cfg.drift_correction = a.live || a.latency.is_some();
    cfg.wallclock_at_zero_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    cfg.seed = os_seed();
    let session = ReceiverSession::new(cfg.clone())?;
    let socket = bind_udp(a.listen)?;
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
        };
        std::fs::write(p, sdp.to_sdp()?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    eprintln!(
        "isostream recv: listening on {}, low-water {} ms, high-water {} ms",
        socket.local_addr()?,
        cfg.low_water_ms,
        cfg.high_water_ms
    );
    let out = a.out.clone();
    let out_dir = a.out_dir.clone();
    let raw = a.format;
    let make_sink =
        move |spec: AudioSpec, channels: &[u16]| -> std::io::Result<Box<dyn AudioSink>> {
            eprintln!(
                "isostream recv: session of {spec} in {} substream(s)",
                channels.len()
            );
            if let Some(dir) = &out_dir {
                return Ok(Box::new(SplitWavOutput::create(dir, spec, channels)?));
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
                    Ok(Box::new(PcmOutput(PcmWriter::new(
                        std::io::stdout(),
                        f,
                        spec.channels,
                    ))))
                }
                Some(o) if devices::device_out(o).is_some() => {
                    devices::playback_sink(devices::device_out(o).flatten(), spec)
                }
                Some(path) => Ok(Box::new(WavOutput(WavSink::create(path, spec).map_err(
                    |e| std::io::Error::other(format!("cannot write {path}: {e}")),
                )?))),
                None => unreachable!("clap requires --out or --out-dir"),
            }
        };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let (stats, stop) = rdriver::run(
        session,
        socket,
        make_sink,
        a.exit_on_end,
        shutdown,
        &mut |_, _| {},
    )
    .await?;
    print_receiver_summary(&stats);
    if let Some(p) = &a.stats_json {
        std::fs::write(
            p,
            serde_json::to_string_pretty(&serde_json::json!({ "receiver": stats }))?,
        )
        .with_context(|| format!("cannot write {}", p.display()))?;
    }
    let _ = stop;
    Ok(())
}

/// Prints the receiver summary to stderr.
pub fn print_receiver_summary(s: &ReceiverStats) {
    eprintln!(
        "isostream recv: {} packets received, {} lost ({} rebuilt by FEC, {} retransmitted, {} unrecoverable; residual loss {:.3} %), {} late, {} duplicate, {} overflowed; {} malformed and {} foreign datagrams; jitter {:.2} ms",
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
