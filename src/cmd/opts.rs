//! Options and parsers shared by several subcommands: how the sender shapes the stream
//! (`send`, `bench`, `demo`) and how the receiver buffers (`recv`, `bench`, `demo`).

use anyhow::{bail, Context, Result};
use clap::Args;
use isostream_drive::srtp::{SrtpKey, SrtpKeyError, SrtpSuite};
use isostream_receiver::{config as rconfig, ReceiverConfig};
use isostream_sender::{SenderConfig, Speed};
use isostream_transport::fec::FecParams;
use isostream_transport::time::Duration;

/// Options shared by `send` and `bench`: how the sender shapes the stream.
#[derive(Args, Clone, Debug)]
pub struct StreamOpts {
    /// Packet duration in ms (default 5; 2.5 for a live source).
    #[arg(long, value_parser = parse_packet_ms)]
    pub packet_ms: Option<f64>,
    /// Reed-Solomon repair: K source packets + M repair packets per block, or `off`
    /// (default: off for stored media, which retransmission repairs, or 8,2 with --spread;
    /// 4,1 for a live source).
    #[arg(long, value_parser = parse_fec)]
    pub fec: Option<FecSetting>,
    /// Interleave depth D: packet j of a group of D carries samples j, j+D, ... (1 = plain).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub interleave: u8,
    /// Spread the transmission of N consecutive FEC blocks over one another (their packets
    /// leave column by column), so a burst costs each block fewer packets (1 = off).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub spread: u8,
    /// Split the input into substreams: `per-channel`, or groups like `1,2+3` (1-based,
    /// contiguous channels in order). Default: one substream with every channel.
    #[arg(long)]
    pub substreams: Option<String>,
    /// Answer the receiver's NACKs with retransmissions (RFC 4585/4588): `on` or `off`.
    /// With `off` and `--fec off` the stream is plain RTP.
    #[arg(long, default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub retransmission: bool,
    /// The most retransmissions may cost, in % of the media's own byte rate (a token
    /// bucket, so an outage or a forged NACK cannot turn into a storm).
    #[arg(long, default_value_t = 100.0)]
    pub retransmission_cap: f64,
    /// How the audio is coded: `l16` (raw PCM in the input's format, the default) or `opus`
    /// (RFC 7587 at 48 kHz: `send` resamples a file or pipe at another rate; needs a build
    /// with `--features opus`).
    #[arg(long, default_value = "l16", value_parser = ["l16", "opus"])]
    pub codec: String,
    /// Opus bitrate of each substream, in bits/s (default 128000 for stereo, 64000 mono).
    #[arg(long)]
    pub bitrate: Option<u32>,
    /// Opus frame duration in ms: 2.5, 5, 10 or 20 (default 20). One frame per packet.
    #[arg(long)]
    pub frame_ms: Option<String>,
    /// Opus in-band FEC (LBRR): each packet also carries a coarse copy of the one before,
    /// planned for the loss the receiver reports. Off by default (it makes libopus code
    /// speech in its hybrid mode, less faithful on a clean link).
    #[arg(long)]
    pub opus_inband_fec: bool,
}

/// Parses `on` or `off`.
pub fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("'{s}': expected on or off")),
    }
}

/// Packet duration of a live source by default, in ms.
const LIVE_PACKET_MS: f64 = 2.5;

/// `--fec K,M` or `off`.
#[derive(Clone, Copy, Debug)]
pub struct FecSetting(pub Option<FecParams>);

/// Parses `--fec`: `K,M` or `off`.
pub fn parse_fec(s: &str) -> Result<FecSetting, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(FecSetting(None));
    }
    s.parse::<FecParams>()
        .map(|p| FecSetting(Some(p)))
        .map_err(|e| format!("{e} (expected K,M such as 8,2, or off)"))
}

/// Slowest `--speed`, times real time.
pub const MIN_SPEED: f64 = 0.01;
/// Fastest `--speed` other than `max`, times real time.
pub const MAX_SPEED: f64 = 1000.0;

/// Parses `--speed`: a number from [`MIN_SPEED`] to [`MAX_SPEED`], or `max`.
pub fn parse_speed(s: &str) -> Result<Speed, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(Speed::Max);
    }
    match s.parse::<f64>() {
        Ok(x) if (MIN_SPEED..=MAX_SPEED).contains(&x) => Ok(Speed::Times(x)),
        _ => Err(format!(
            "'{s}' is not a speed from {MIN_SPEED} to {MAX_SPEED} times real time, or max"
        )),
    }
}

/// Longest duration option, in ms (a day).
pub const MAX_MS: u64 = 86_400_000;
/// Largest watermark or latency, in ms.
pub const MAX_BUFFER_MS: u32 = 60_000;
/// Longest packet, in ms.
pub const MAX_PACKET_MS: f64 = 1000.0;
/// Longest run (`bench --duration`, `demo --seconds`, `impair --duration`), in seconds.
pub const MAX_RUN_S: f64 = 86_400.0;
/// Shortest run, in seconds.
pub const MIN_RUN_S: f64 = 0.01;
/// Largest clock drift `bench` simulates, in ppm either way.
pub const MAX_DRIFT_PPM: f64 = 10_000.0;

/// A number of `T` from `s`, or a one-line reason naming `what` it should have been.
fn number<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.trim()
        .parse::<T>()
        .map_err(|_| format!("'{s}' is not {what}"))
}

/// Parses a duration in whole ms, 1 to [`MAX_MS`] (`--idle-timeout-ms`, ...).
pub fn parse_ms(s: &str) -> Result<u64, String> {
    let what = format!("a whole number of ms from 1 to {MAX_MS}");
    match number::<u64>(s, &what)? {
        ms @ 1..=MAX_MS => Ok(ms),
        _ => Err(format!("'{s}' is not {what}")),
    }
}

/// Parses a watermark or a latency in whole ms, 1 to [`MAX_BUFFER_MS`].
pub fn parse_buffer_ms(s: &str) -> Result<u32, String> {
    let what = format!("a whole number of ms from 1 to {MAX_BUFFER_MS}");
    match number::<u32>(s, &what)? {
        ms @ 1..=MAX_BUFFER_MS => Ok(ms),
        _ => Err(format!("'{s}' is not {what}")),
    }
}

/// A finite number of `s` in `range`, or a one-line reason (`what`: what it should be).
fn bounded_f64(s: &str, range: std::ops::RangeInclusive<f64>, what: &str) -> Result<f64, String> {
    match number::<f64>(s, what)? {
        x if range.contains(&x) => Ok(x),
        _ => Err(format!("'{s}' is not {what}")),
    }
}

/// Parses `--packet-ms`: above 0, at most [`MAX_PACKET_MS`] (fractions allowed: 2.5).
pub fn parse_packet_ms(s: &str) -> Result<f64, String> {
    let x = bounded_f64(
        s,
        0.0..=MAX_PACKET_MS,
        &format!("a packet duration above 0 and at most {MAX_PACKET_MS} ms"),
    )?;
    if x == 0.0 {
        return Err(format!(
            "'{s}' ms is no packet duration: it must be above 0"
        ));
    }
    Ok(x)
}

/// Parses a deprecated duration option in seconds (`--idle-timeout`): 0.001 to a day.
pub fn parse_deprecated_seconds(s: &str) -> Result<f64, String> {
    bounded_f64(
        s,
        0.001..=MAX_MS as f64 / 1000.0,
        "a number of seconds from 0.001 to 86400",
    )
}

/// Parses the length of a run in seconds: [`MIN_RUN_S`] to [`MAX_RUN_S`].
pub fn parse_run_seconds(s: &str) -> Result<f64, String> {
    bounded_f64(
        s,
        MIN_RUN_S..=MAX_RUN_S,
        &format!("a number of seconds from {MIN_RUN_S} to {MAX_RUN_S}"),
    )
}

/// Checks the options of `bench` that its own module takes as they are: the length of the
/// run, the simulated drift, the loss rates of a sweep and where the plot goes.
pub fn check_bench(
    duration: f64,
    drift_ppm: f64,
    sweep_loss: &[f64],
    plot: Option<&std::path::Path>,
) -> Result<()> {
    if !(MIN_RUN_S..=MAX_RUN_S).contains(&duration) {
        bail!(
            "invalid value '{duration}' for '--duration': not a number of seconds from {MIN_RUN_S} to {MAX_RUN_S}"
        );
    }
    if let Some(p) = plot {
        super::common::check_writable(p)?;
    }
    if !(-MAX_DRIFT_PPM..=MAX_DRIFT_PPM).contains(&drift_ppm) {
        bail!(
            "invalid value '{drift_ppm}' for '--drift-ppm': not a drift from -{MAX_DRIFT_PPM} to {MAX_DRIFT_PPM} ppm"
        );
    }
    if let Some(l) = sweep_loss.iter().find(|l| !(0.0..=100.0).contains(*l)) {
        bail!("invalid value '{l}' for '--sweep-loss': not a loss rate from 0 to 100 %");
    }
    Ok(())
}

impl StreamOpts {
    /// Packet duration in ms: as given, or the default for stored media or a live source.
    pub fn packet_ms(&self, live: bool) -> f64 {
        self.packet_ms
            .unwrap_or(if live { LIVE_PACKET_MS } else { 5.0 })
    }

    /// FEC setting: as given, or the default for stored media (off: stored media streams
    /// seconds ahead of playout and lost packets are asked for again, which costs less
    /// bandwidth and repairs more on every bench profile, see docs/BENCHMARKS.md) or a live
    /// source (4,1).
    pub fn fec(&self, live: bool) -> Option<FecParams> {
        self.fec.map_or_else(
            || {
                if live {
                    Some(FecParams::new(4, 1).expect("valid default"))
                } else if self.spread > 1 {
                    // --spread spreads FEC blocks: asking for it asks for FEC
                    Some(FecParams::new(8, 2).expect("valid default"))
                } else {
                    None
                }
            },
            |f| f.0,
        )
    }

    /// Applies these options to a sender configuration (set `cfg.live` first: a live source
    /// gets the low-latency defaults).
    pub fn apply(&self, cfg: &mut SenderConfig) -> Result<()> {
        let ms = self.packet_ms(cfg.live);
        let frames = (cfg.spec.rate as f64 * ms / 1000.0).round() as u32;
        if !(frames > 0 && ms.is_finite()) {
            bail!("--packet-ms {ms} is shorter than one sample");
        }
        cfg.packet_frames = frames;
        cfg.fec = self.fec(cfg.live);
        cfg.interleave = self.interleave;
        cfg.spread = self.spread;
        if !(self.retransmission_cap.is_finite()
            && (0.0..=1000.0).contains(&self.retransmission_cap))
        {
            bail!(
                "--retransmission-cap {}: expected a percentage from 0 to 1000",
                self.retransmission_cap
            );
        }
        cfg.retransmission = self.retransmission.then(|| isostream_sender::RtxParams {
            cap: self.retransmission_cap / 100.0,
            ..Default::default()
        });
        if let Some(s) = &self.substreams {
            cfg.substream_channels = parse_substreams(s, cfg.spec.channels)?;
        }
        if self.codec != "opus" {
            if self.bitrate.is_some() || self.frame_ms.is_some() || self.opus_inband_fec {
                bail!("--bitrate, --frame-ms and --opus-inband-fec are Opus settings: add --codec opus");
            }
            return Ok(());
        }
        if !cfg!(feature = "opus") {
            bail!("{}", isostream_sender::config::NO_OPUS);
        }
        if self.interleave > 1 {
            bail!("--interleave {} does not apply to Opus (it interleaves PCM samples): use --interleave 1", self.interleave);
        }
        if self.packet_ms.is_some() {
            bail!("--packet-ms is for PCM: an Opus packet holds one frame, set its length with --frame-ms");
        }
        let widest = cfg.substream_channels.iter().copied().max().unwrap_or(1);
        let mut p = isostream_sender::OpusParams::new(widest);
        if self.opus_inband_fec {
            p = p.with_inband_fec();
        }
        if let Some(f) = &self.frame_ms {
            p.frame_half_ms = isostream_sender::OpusParams::parse_frame_ms(f)
                .with_context(|| format!("--frame-ms {f}: Opus frames are 2.5, 5, 10 or 20 ms"))?;
        }
        if let Some(b) = self.bitrate {
            if !(6_000..=510_000).contains(&b) {
                bail!("--bitrate {b}: Opus takes 6000 to 510000 bits/s");
            }
            p.bitrate = b;
        }
        if cfg.spec.rate != 48_000 {
            bail!(
                "--codec opus codes 48 kHz and this input is {} Hz: capture at --rate 48000 (files and pipes are resampled by `send`)",
                cfg.spec.rate
            );
        }
        cfg.packet_frames = p.frame_frames();
        cfg.codec = isostream_sender::Codec::Opus(p);
        Ok(())
    }
}

/// Parses `per-channel` or `1,2+3` into channel counts per substream.
pub fn parse_substreams(s: &str, channels: u16) -> Result<Vec<u16>> {
    if s == "per-channel" {
        return Ok(vec![1; channels as usize]);
    }
    let mut next = 1u16;
    let mut out = Vec::new();
    for group in s.split(',') {
        let chans: Vec<u16> = group
            .split('+')
            .map(|c| c.trim().parse::<u16>())
            .collect::<Result<_, _>>()
            .with_context(|| {
                format!("--substreams '{s}': expected per-channel or groups like 1,2+3")
            })?;
        for &c in &chans {
            if c != next {
                bail!("--substreams '{s}': channels must be listed once each, in order (expected {next}, got {c})");
            }
            next += 1;
        }
        out.push(chans.len() as u16);
    }
    if next - 1 != channels {
        bail!(
            "--substreams '{s}' covers {} channels but the input has {channels}",
            next - 1
        );
    }
    Ok(out)
}

/// Smallest `--memory-budget-mib`, in MiB.
pub const MIN_MEMORY_BUDGET_MIB: u32 = (rconfig::MIN_MEMORY_BUDGET_BYTES >> 20) as u32;
/// Largest `--memory-budget-mib`, in MiB (64 GiB).
pub const MAX_MEMORY_BUDGET_MIB: u32 = 65_536;

/// Parses `--memory-budget-mib`: whole MiB, [`MIN_MEMORY_BUDGET_MIB`] to
/// [`MAX_MEMORY_BUDGET_MIB`].
pub fn parse_memory_budget_mib(s: &str) -> Result<u32, String> {
    let what =
        format!("a whole number of MiB from {MIN_MEMORY_BUDGET_MIB} to {MAX_MEMORY_BUDGET_MIB}");
    match number::<u32>(s, &what)? {
        mib @ MIN_MEMORY_BUDGET_MIB..=MAX_MEMORY_BUDGET_MIB => Ok(mib),
        _ => Err(format!("'{s}' is not {what}")),
    }
}

/// Options shared by `recv`, `send`, `bench` and `demo`: the memory budget of a session.
#[derive(Args, Clone, Debug)]
pub struct MemoryOpts {
    /// Every buffer of a session counts against this, in MiB: the receiver's jitter
    /// buffers, FEC and NACK state and the queues of datagrams it keeps (a description
    /// needing more is refused and counted in `sessions_over_budget`), the sender's
    /// retransmission history.
    #[arg(long, default_value_t = (rconfig::DEFAULT_MEMORY_BUDGET_BYTES >> 20) as u32, value_parser = parse_memory_budget_mib)]
    pub memory_budget_mib: u32,
}

impl MemoryOpts {
    /// The budget, in bytes.
    pub fn bytes(&self) -> usize {
        (self.memory_budget_mib as usize) << 20
    }
}

/// Options shared by `recv`, `bench` and `demo`: how the receiver buffers.
#[derive(Args, Clone, Debug)]
pub struct BufferOpts {
    /// Playback starts at this much buffered audio, in ms.
    /// Default: 300 for stored media (sent at twice real time, that is about 150 ms after
    /// the first packet), 40 with --live.
    #[arg(long, value_parser = parse_buffer_ms)]
    pub low_water: Option<u32>,
    /// A paused sender is resumed when the buffer drains to this much audio, in ms.
    /// Default: 2000 for stored media (at most half the high-water mark, at least the
    /// low-water mark); the low-water mark with --live.
    #[arg(long, value_parser = parse_buffer_ms)]
    pub resume_water: Option<u32>,
    /// PAUSE is sent above this much buffered audio, in ms. Default: 4000, 200 with --live.
    #[arg(long, value_parser = parse_buffer_ms)]
    pub high_water: Option<u32>,
}

impl BufferOpts {
    /// Applies the watermarks (live or stored defaults) to a receiver configuration.
    pub fn apply(&self, cfg: &mut ReceiverConfig, live: bool) {
        let (lo, hi) = if live {
            (rconfig::LIVE_LOW_WATER_MS, rconfig::LIVE_HIGH_WATER_MS)
        } else {
            (rconfig::STORED_LOW_WATER_MS, rconfig::STORED_HIGH_WATER_MS)
        };
        cfg.low_water_ms = self.low_water.unwrap_or(lo);
        cfg.high_water_ms = self.high_water.unwrap_or(hi.max(cfg.low_water_ms * 2));
        let resume = if live {
            cfg.low_water_ms
        } else {
            rconfig::STORED_RESUME_WATER_MS
                .min(cfg.high_water_ms / 2)
                .max(cfg.low_water_ms)
        };
        cfg.resume_water_ms = Some(self.resume_water.unwrap_or(resume));
    }
}

/// Sets a receiver's buffer for a live stream with a latency budget of `ms`: playback starts
/// with that much buffered, RESUME at the same mark, PAUSE only above twice as much (at least
/// 100 ms more), and clock drift compensated.
pub fn apply_latency(cfg: &mut ReceiverConfig, ms: u32) {
    cfg.low_water_ms = ms.max(1);
    cfg.high_water_ms = (2 * ms).max(ms + 100);
    cfg.resume_water_ms = Some(cfg.low_water_ms);
    cfg.drift_correction = true;
}

/// A duration option given in ms, unless its deprecated spelling (in seconds, from before
/// every duration option was in ms) was used instead: `--idle-timeout 0.25` still means
/// 250 ms.
pub fn ms_or_deprecated_s(ms: u64, deprecated_s: Option<f64>) -> Duration {
    match deprecated_s {
        // parse_deprecated_seconds keeps it finite and in range
        Some(s) => Duration::from_millis((s * 1000.0).round().clamp(1.0, MAX_MS as f64) as u64),
        None => Duration::from_millis(ms),
    }
}

/// SRTP/SRTCP keying, shared by `send` and `recv` (docs/PROTOCOL.md, SRTP).
#[derive(Args, Clone, Debug, Default)]
pub struct SrtpOpts {
    /// Protect every datagram with SRTP/SRTCP (RFC 3711) under this master key and salt:
    /// base64 of 30 bytes (28 for AEAD_AES_128_GCM), the SDES inline form ffmpeg's
    /// `-srtp_out_params`/`-srtp_in_params` take. Both ends need the same key; anything
    /// unauthenticated or replayed is counted and dropped.
    #[arg(long, value_name = "BASE64", value_parser = parse_srtp_inline, conflicts_with = "srtp_key_file")]
    pub srtp_key: Option<String>,
    /// The same key, read from a file holding the base64 line (keeps it out of `ps`).
    #[arg(long, value_name = "PATH")]
    pub srtp_key_file: Option<std::path::PathBuf>,
    /// The SRTP crypto suite: AES_CM_128_HMAC_SHA1_80 (ffmpeg's) or AEAD_AES_128_GCM.
    #[arg(long, default_value = "AES_CM_128_HMAC_SHA1_80", value_parser = parse_srtp_suite)]
    pub srtp_suite: SrtpSuite,
}

/// Parses `--srtp-suite`.
pub fn parse_srtp_suite(s: &str) -> Result<SrtpSuite, String> {
    SrtpSuite::from_name(s)
        .ok_or_else(|| format!("'{s}': expected AES_CM_128_HMAC_SHA1_80 or AEAD_AES_128_GCM"))
}

/// Checks `--srtp-key` as far as it can without the suite: base64 of a key of either suite.
pub fn parse_srtp_inline(s: &str) -> Result<String, String> {
    let aes_cm = SrtpSuite::AesCm128HmacSha1_80;
    let gcm = SrtpSuite::AeadAes128Gcm;
    match SrtpKey::from_inline(aes_cm, s) {
        Ok(_) => Ok(s.trim().to_string()),
        Err(SrtpKeyError::Length { got, .. }) => {
            if SrtpKey::from_inline(gcm, s).is_ok() {
                return Ok(s.trim().to_string());
            }
            Err(format!(
                "SRTP key holds {got} bytes; expected {} ({}) or {} ({})",
                aes_cm.master_bytes(),
                aes_cm.name(),
                gcm.master_bytes(),
                gcm.name()
            ))
        }
        Err(e) => Err(e.to_string()),
    }
}

impl SrtpOpts {
    /// The key, if one was given (read from `--srtp-key-file` if that was).
    pub fn key(&self) -> Result<Option<SrtpKey>> {
        let text = match (&self.srtp_key, &self.srtp_key_file) {
            (Some(k), _) => k.clone(),
            (None, Some(p)) => std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the SRTP key file {}", p.display()))?,
            (None, None) => return Ok(None),
        };
        let key = SrtpKey::from_inline(self.srtp_suite, &text).map_err(|e| {
            match &self.srtp_key_file {
                Some(p) if self.srtp_key.is_none() => anyhow::anyhow!("{}: {e}", p.display()),
                _ => anyhow::anyhow!("--srtp-key: {e}"),
            }
        })?;
        Ok(Some(key))
    }
}
