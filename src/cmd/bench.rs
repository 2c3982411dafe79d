//! `isostream bench`: the real sender and receiver state machines through the impairment model
//! under a virtual clock, with a report (table or JSON), sweeps and plots.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use isostream::sim::{self, MemorySource, SimResult};
use isostream_media::{compare, synthesize, AudioSpec, Program, SampleFormat, WavSource};
use isostream_netsim::Profile;
use isostream_receiver::{LatencyStats, ReceiverConfig};
use isostream_sender::{Codec, SenderConfig, Speed};
use isostream_transport::fec::FecParams;
use isostream_transport::time::{Duration, MediaClock};
use serde::Serialize;

use super::opts::{BufferOpts, MemoryOpts, StreamOpts};

/// Arguments of `isostream bench`.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// A WAV file to stream (default: the built-in program, synthesized in code).
    pub input: Option<PathBuf>,
    /// Network profile: lan, wifi, lte, transatlantic, bursty, hostile, perfect, or a TOML/JSON file.
    #[arg(long, default_value = "wifi")]
    pub profile: String,
    /// Seed of the network model (same seed, same report).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Built-in program: speech, music, mixed or sine:HZ.
    #[arg(long, default_value = "mixed")]
    pub program: String,
    /// Length of the built-in program, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    #[command(flatten)]
    pub stream: StreamOpts,
    #[command(flatten)]
    pub buffer: BufferOpts,
    #[command(flatten)]
    pub memory: MemoryOpts,
    /// How fast the sender sends stored media: times real time, or `max`. Default: twice
    /// real time, until the receiver's high-water mark pauses it (`1`: real time).
    #[arg(long, default_value = "2", value_parser = super::opts::parse_speed)]
    pub speed: Speed,
    /// Print the report as JSON on stdout (every field: docs/STATS.md).
    #[arg(long)]
    pub json: bool,
    /// Simulate a live source: audio is captured as time passes (not read ahead), with the
    /// live defaults (2.5 ms packets, FEC 4,1, live watermarks).
    #[arg(long)]
    pub live: bool,
    /// The receiver's latency budget for a live stream, in ms (as `recv --latency`).
    /// Implies --live.
    #[arg(long)]
    pub latency: Option<u32>,
    /// The sender's clock runs this many ppm fast (negative: slow) against the receiver's.
    /// Turns on the receiver's drift compensation.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub drift_ppm: f64,
    /// Compensate clock drift even without --drift-ppm (as a live receiver does).
    #[arg(long)]
    pub drift_correction: bool,
    /// Run SRTP/SRTCP (AES_CM_128_HMAC_SHA1_80 under a fixed key) on every datagram both
    /// ways, as `send`/`recv --srtp-key` do: the wire carries the tags, and the wall time
    /// the cost of protecting and checking each packet.
    #[arg(long)]
    pub srtp: bool,
    /// Sweep network loss (Bernoulli, in %, replacing the profile's loss) for each FEC
    /// setting of --sweep-fec, and report residual loss (with retransmission off: the sweep
    /// measures what FEC alone does).
    #[arg(long)]
    pub sweep: bool,
    /// Network loss rates of a sweep, in %.
    #[arg(long, default_value = "0,1,2,5,10,15,20", value_delimiter = ',')]
    pub sweep_loss: Vec<f64>,
    /// FEC settings of a sweep, separated by `;`.
    #[arg(long, default_value = "off;8,2;8,4;18,10")]
    pub sweep_fec: String,
    /// Draw an SVG: buffer and watermarks over time with losses, recoveries and concealment
    /// (or, with --sweep, residual loss against network loss).
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

impl BenchArgs {
    /// Whether the simulated source is live.
    pub fn is_live(&self) -> bool {
        self.live || self.latency.is_some()
    }
}

/// Percentiles of buffered audio, in ms.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// 5th percentile.
    pub p5: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest.
    pub max: f64,
}

/// The report of one simulated session (`bench --json`; docs/STATS.md): everything is
/// derived from the simulation, so the same seed and settings give the same report byte for
/// byte. Counters named as in the sender's and the receiver's stats mean the same thing.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Profile name.
    pub profile: String,
    /// Seed.
    pub seed: u64,
    /// How the audio was coded: `l16` (raw PCM in the input's format) or `opus`.
    pub codec: String,
    /// The codec's bitrate, in bits per second: Opus's target bitrate summed over
    /// substreams, or the raw PCM's rate.
    pub codec_bits_per_s: u64,
    /// The encoder's lookahead (`OPUS_GET_LOOKAHEAD` of libopus; 0 for L16), in ms.
    pub codec_lookahead_ms: f64,
    /// FEC setting (`K,M` or `off`).
    pub fec: String,
    /// Sample interleaving depth.
    pub interleave: u8,
    /// FEC blocks whose transmission is spread (1 = none).
    pub spread: u8,
    /// Packet duration (for Opus: the frame duration), in ms.
    pub packet_ms: f64,
    /// Audio streamed, in seconds.
    pub audio_s: f64,
    /// Virtual time the session took, in seconds.
    pub session_s: f64,
    /// Whether the receiver played the whole session out.
    pub completed: bool,
    /// Media packets sent (first transmissions).
    pub packets_sent: u64,
    /// Repair packets sent.
    pub repair_packets_sent: u64,
    /// Datagrams the network dropped (media, repair and RTCP), forward path.
    pub datagrams_lost_on_wire: u64,
    /// Network loss rate of the forward path, a fraction (0..1).
    pub network_loss: f64,
    /// Media packets missing at the receiver.
    pub packets_lost: u64,
    /// Lost media packets rebuilt by FEC from repair packets.
    pub packets_rebuilt: u64,
    /// Lost media packets that arrived as retransmissions (NACK answered).
    pub packets_retransmitted: u64,
    /// Retransmissions the receiver asked for in NACKs, in packets.
    pub retransmissions_requested: u64,
    /// Retransmissions the sender sent.
    pub retransmissions_sent: u64,
    /// Retransmissions asked for beyond the sender's retransmission cap, not sent.
    pub retransmissions_over_cap: u64,
    /// Retransmissions asked for of packets no longer in the sender's history.
    pub retransmissions_unavailable: u64,
    /// Lost media packets neither rebuilt nor retransmitted.
    pub packets_unrecoverable: u64,
    /// Residual loss, a fraction (0..1): unrecoverable / media packets.
    pub residual_loss: f64,
    /// Missing Opus packets replaced by Opus's own loss concealment when their audio was
    /// due (the receiver's `substreams[].opus.packets_plc`, summed; null for L16).
    pub packets_plc: Option<u64>,
    /// Missing Opus packets decoded from the next packet's in-band FEC (summed; null for L16).
    pub packets_fec: Option<u64>,
    /// Opus packets that arrived after their place had been concealed, dropped (summed;
    /// null for L16).
    pub packets_late: Option<u64>,
    /// Frames filled by interpolation (summed over substreams).
    pub frames_interpolated: u64,
    /// The same audio, in ms.
    pub interpolated_ms: f64,
    /// Frames filled by concealment or silence (summed over substreams).
    pub frames_concealed: u64,
    /// The same audio, in ms.
    pub concealed_ms: f64,
    /// Damaged audio, judged from the output against the clean reference (the input for
    /// L16, its local Opus encode and decode for Opus): 1 ms windows with an SNR under
    /// 20 dB, in ms (null when the input was not kept: runs over 10 minutes).
    pub damaged_ms: Option<u64>,
    /// Damaged program, judged the same way for every codec from the output against the
    /// clean reference: 20 ms windows with an SNR under 10 dB, in ms (null when not kept).
    pub damaged_program_ms: Option<u64>,
    /// The same over the program's length, a fraction (0..1).
    pub damaged_program_fraction: Option<f64>,
    /// Gaps of digital silence of 10 ms or more in the output where the input had sound.
    pub audible_gaps: usize,
    /// The longest such gap, in ms.
    pub longest_gap_ms: f64,
    /// Times playout found a substream's buffer empty while playing.
    pub underruns: u64,
    /// PAUSE requests the receiver issued (not counting retransmissions).
    pub pauses_sent: u64,
    /// RESUME requests the receiver issued (not counting retransmissions).
    pub resumes_sent: u64,
    /// Buffered audio at the receiver, sampled every 100 ms, in ms.
    pub buffer_ms: Percentiles,
    /// Time from the first packet to the start of playback, in ms.
    pub startup_delay_ms: f64,
    /// Modelled playout latency: the network's mean one-way delay plus the mean buffered
    /// audio, in ms.
    pub modelled_latency_ms: f64,
    /// Modelled latency from the first sample of a packet to its playout: the packet (or
    /// Opus frame), the encoder's lookahead and [`Self::modelled_latency_ms`], in ms.
    pub modelled_total_latency_ms: f64,
    /// Capture-to-playout latency the receiver measured from the sender's reports, in ms
    /// (`None` when it had no mapping).
    pub capture_to_playout_ms: Option<LatencyStats>,
    /// Bandwidth overhead of repair packets, a fraction: repair packets / media packets.
    pub overhead: f64,
    /// Bytes of media datagrams sent (first transmissions).
    pub media_bytes: u64,
    /// Bytes of repair datagrams sent.
    pub repair_bytes: u64,
    /// Bytes of retransmissions sent.
    pub retransmission_bytes: u64,
    /// Bytes of RTCP sent by the sender (reports, descriptions, acknowledgements, BYE).
    pub sender_rtcp_bytes: u64,
    /// Bytes of RTCP sent by the receiver (reports, PAUSE/RESUME, NACKs).
    pub receiver_rtcp_bytes: u64,
    /// Every byte on the wire, both ways: media, repair, retransmissions and RTCP.
    pub wire_bytes: u64,
    /// Bytes of the raw PCM streamed (the input's format).
    pub pcm_bytes: u64,
    /// Every byte on the wire, both ways, over the bytes of the raw PCM streamed.
    pub wire_to_pcm_ratio: f64,
    /// Every byte on the wire, both ways, in bits per second of audio.
    pub wire_bits_per_s: f64,
    /// Fraction of output frames identical to the clean reference (the input for L16, the
    /// local Opus round trip for Opus; null when the input was generated on the fly and not
    /// kept: runs over 10 minutes).
    pub bit_exact_fraction: Option<f64>,
    /// SNR of the output against the clean reference, in dB: the network's damage alone
    /// (null when identical).
    pub snr_db: Option<f64>,
    /// Segmental SNR against the clean reference (20 ms segments, each clamped to
    /// -10..60 dB), in dB.
    pub segmental_snr_db: Option<f64>,
    /// SNR of the clean reference against the original, in dB, after taking off the
    /// encoder's lookahead: the codec's loss alone (null for L16, which is lossless).
    pub codec_snr_db: Option<f64>,
    /// SNR of the output against the original, in dB, after taking off the encoder's
    /// lookahead: codec and network together (null when identical).
    pub original_snr_db: Option<f64>,
    /// The simulated clock drift of the sender (`--drift-ppm`), in ppm.
    pub simulated_drift_ppm: f64,
    /// The receiver's final estimate of that drift, in ppm (when it compensates drift).
    pub drift_estimate_ppm: Option<f64>,
    /// Buffered audio from 5 minutes into the session on (from half-way for shorter runs):
    /// the band the drift controller holds it in, in ms.
    pub buffer_after_convergence_ms: Percentiles,
}

/// Longer built-in programs are generated while the session runs instead of held in memory;
/// the output is then not kept, and not compared with the input.
const STREAM_ABOVE_S: f64 = 600.0;

fn load_input(args: &BenchArgs) -> Result<(AudioSpec, Vec<u8>)> {
    if let Some(p) = &args.input {
        let mut w = WavSource::open(p).with_context(|| format!("cannot read {}", p.display()))?;
        let spec = w.spec();
        let mut data = Vec::new();
        let mut buf = vec![0u8; 4096 * spec.frame_bytes()];
        loop {
            let n = w.read_frames(&mut buf)?;
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buf[..n * spec.frame_bytes()]);
        }
        return Ok((spec, data));
    }
    let spec = AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    if args.duration > STREAM_ABOVE_S {
        return Ok((spec, Vec::new()));
    }
    let program: Program = args
        .program
        .parse()
        .map_err(|e| anyhow::anyhow!("--program: {e}"))?;
    let frames = (args.duration * spec.rate as f64) as usize;
    Ok((spec, synthesize(program, spec, frames, 7)))
}

/// The windows in which damage to the program is judged, the same for every codec
/// (`damaged_program_ms`), in ms.
pub const PROGRAM_WINDOW_MS: u64 = 20;
/// A window of the program is damaged when its SNR against the clean reference is under
/// this, in dB.
pub const PROGRAM_MIN_SNR_DB: f64 = 10.0;

/// How the audio is coded, and what the output is judged against.
struct Coding {
    /// `l16` or `opus`.
    name: &'static str,
    /// The codec's bitrate (Opus: summed over substreams), in bits per second.
    bits_per_s: u64,
    /// The encoder's lookahead, in frames at 48 kHz.
    lookahead_frames: u32,
    /// The spec of the receiver's output.
    out_spec: AudioSpec,
    /// The clean reference when it is not the input: the local Opus encode and decode.
    reference: Option<Vec<u8>>,
    /// The original in the output's format when that is not the input's.
    original: Option<Vec<u8>>,
}

impl Coding {
    #[cfg_attr(not(feature = "opus"), allow(unused_variables))]
    fn of(scfg: &SenderConfig, spec: AudioSpec, input: &[u8]) -> Result<Coding> {
        match &scfg.codec {
            Codec::Pcm => Ok(Coding {
                name: "l16",
                bits_per_s: spec.rate as u64 * spec.frame_bytes() as u64 * 8,
                lookahead_frames: 0,
                out_spec: spec,
                reference: None,
                original: None,
            }),
            #[cfg(feature = "opus")]
            Codec::Opus(p) => {
                use isostream::sim::opus_local;
                if spec.rate != 48_000 {
                    bail!(
                        "bench --codec opus judges the output against a local encode at 48 kHz: give a 48 kHz input (this is {} Hz)",
                        spec.rate
                    );
                }
                let widest = scfg.substream_channels.iter().copied().max().unwrap_or(1);
                let keep = !input.is_empty();
                Ok(Coding {
                    name: "opus",
                    bits_per_s: p.bitrate as u64 * scfg.substream_channels.len() as u64,
                    lookahead_frames: opus_local::lookahead_frames(p, widest),
                    out_spec: opus_local::output_spec(spec),
                    reference: keep
                        .then(|| opus_local::round_trip(input, spec, p, &scfg.substream_channels)),
                    original: (keep && spec.format != SampleFormat::S16)
                        .then(|| opus_local::to_s16(input, spec)),
                })
            }
            #[cfg(not(feature = "opus"))]
            Codec::Opus(_) => bail!("{}", isostream_sender::config::NO_OPUS),
        }
    }
}

/// SNR of `decoded` against `original` after the codec's delay of about `delay` frames.
#[cfg(feature = "opus")]
fn snr_after_delay(original: &[u8], decoded: &[u8], spec: AudioSpec, delay: usize) -> f64 {
    isostream::sim::opus_local::snr_after_delay(original, decoded, spec, delay)
}

#[cfg(not(feature = "opus"))]
fn snr_after_delay(original: &[u8], decoded: &[u8], spec: AudioSpec, _delay: usize) -> f64 {
    compare(original, decoded, spec).snr_db
}

/// Runs one simulated session and builds its report.
pub fn simulate(
    args: &BenchArgs,
    profile: &Profile,
    fec: Option<FecParams>,
    spec: AudioSpec,
    input: &[u8],
) -> Result<(BenchReport, SimResult)> {
    let live = args.is_live();
    let mut scfg = SenderConfig::new(spec);
    scfg.live = live;
    args.stream.apply(&mut scfg)?;
    scfg.memory_budget_bytes = args.memory.bytes();
    scfg.fec = fec;
    scfg.speed = args.speed;
    scfg.seed = args.seed;
    let mut rcfg = ReceiverConfig::default();
    args.buffer.apply(&mut rcfg, live);
    rcfg.memory_budget_bytes = args.memory.bytes();
    rcfg.seed = args.seed;
    rcfg.drift_correction = args.drift_correction || args.drift_ppm != 0.0 || live;
    if let Some(ms) = args.latency {
        super::opts::apply_latency(&mut rcfg, ms);
    }
    let streaming = input.is_empty();
    let program: Program = args
        .program
        .parse()
        .map_err(|e| anyhow::anyhow!("--program: {e}"))?;
    let mut generated = isostream::io::SignalInput {
        source: isostream_media::SignalSource::new(program, spec, 7),
        remaining: (args.duration * spec.rate as f64) as u64,
    };
    let mut memory = MemorySource::new(input, spec.frame_bytes());
    let frames = if streaming {
        generated.remaining
    } else {
        (input.len() / spec.frame_bytes()) as u64
    };
    let src: &mut dyn isostream_drive::AudioSource = if streaming {
        &mut generated
    } else {
        &mut memory
    };
    let audio = MediaClock::new(spec.rate).duration_of(frames);
    let limit = audio * 3 + Duration::from_secs(30);
    let opts = sim::SimOptions {
        drift_ppm: args.drift_ppm,
        discard_output: streaming,
        srtp: args.srtp.then(|| {
            let suite = isostream_drive::srtp::SrtpSuite::AesCm128HmacSha1_80;
            isostream_drive::srtp::SrtpKey::from_bytes(suite, &[0x5a; 30])
                .expect("a key of the suite's length")
        }),
        ..Default::default()
    };
    let coding = Coding::of(&scfg, spec, input)?;
    let clock = MediaClock::new(spec.rate);
    let r = sim::run_with(scfg.clone(), rcfg, profile, args.seed, src, limit, &opts)?;
    let out_spec = coding.out_spec;
    let reference = coding.reference.as_deref().unwrap_or(input);
    let original = coding.original.as_deref().unwrap_or(input);
    let cmp = if streaming {
        compare(&[], &[], out_spec)
    } else {
        compare(reference, &r.output, out_spec)
    };
    let window_frames = (out_spec.rate as u64 * PROGRAM_WINDOW_MS / 1000).max(1);
    let program_windows = (reference.len() / out_spec.frame_bytes()) as u64 / window_frames;
    let damaged_program = (!streaming).then(|| {
        isostream_media::damaged_windows(
            reference,
            &r.output,
            out_spec,
            PROGRAM_WINDOW_MS as f64,
            PROGRAM_MIN_SNR_DB,
        )
    });
    let lookahead = coding.lookahead_frames as usize;
    let aligned_snr = |decoded: &[u8]| {
        let snr = if coding.reference.is_some() {
            snr_after_delay(original, decoded, out_spec, lookahead)
        } else {
            compare(original, decoded, out_spec).snr_db
        };
        snr.is_finite().then_some(snr)
    };
    let packet_ms = match coding.name {
        "opus" => clock.ms_of(scfg.packet_frames as u64),
        _ => args.stream.packet_ms(live),
    };
    let codec_lookahead_ms = MediaClock::new(48_000).ms_of(coding.lookahead_frames as u64);
    let settle = if audio.as_secs_f64() >= 600.0 {
        300.0
    } else {
        audio.as_secs_f64() / 2.0
    };
    let mut late_buf: Vec<f64> = r
        .timeline
        .iter()
        .filter(|s| s.t >= settle)
        .map(|s| s.buffer_ms)
        .collect();
    late_buf.sort_by(f64::total_cmp);
    let late_pct = |q: f64| {
        late_buf
            .get(((late_buf.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let mut buf: Vec<f64> = r.timeline.iter().map(|s| s.buffer_ms).collect();
    buf.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        buf.get(((buf.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let media_packets = r.sender.packets_sent as f64;
    let opus_sum = |f: fn(&isostream_receiver::stats::OpusCounts) -> u64| {
        let subs: Vec<_> = r
            .receiver
            .substreams
            .iter()
            .filter_map(|s| s.opus)
            .collect();
        (!subs.is_empty()).then(|| subs.iter().map(f).sum())
    };
    let wire_bytes = r.sender.media_bytes
        + r.sender.repair_bytes
        + r.sender.retransmission.retransmission_bytes
        + r.sender.rtcp_bytes
        + r.receiver.rtcp_bytes;
    let pcm_bytes = frames * spec.frame_bytes() as u64;
    let report = BenchReport {
        profile: profile.name.clone(),
        seed: args.seed,
        codec: coding.name.into(),
        codec_bits_per_s: coding.bits_per_s,
        codec_lookahead_ms,
        fec: fec.map_or("off".into(), |f| f.to_string()),
        interleave: scfg.interleave,
        spread: scfg.spread,
        packet_ms,
        audio_s: audio.as_secs_f64(),
        session_s: r.elapsed.as_secs_f64(),
        completed: r.completed,
        packets_sent: r.sender.packets_sent,
        repair_packets_sent: r.sender.repair_packets_sent,
        datagrams_lost_on_wire: r.forward.dropped + r.forward.dropped_outage,
        network_loss: r.forward.loss_rate(),
        packets_lost: r.receiver.packets_lost,
        packets_rebuilt: r.receiver.packets_rebuilt,
        packets_retransmitted: r.receiver.packets_retransmitted,
        retransmissions_requested: r.receiver.retransmissions_requested,
        retransmissions_sent: r.sender.retransmission.retransmissions_sent,
        retransmissions_over_cap: r.sender.retransmission.retransmissions_over_cap,
        retransmissions_unavailable: r.sender.retransmission.retransmissions_unavailable,
        packets_unrecoverable: r.receiver.packets_unrecoverable,
        residual_loss: r.receiver.residual_loss,
        packets_plc: opus_sum(|o| o.packets_plc),
        packets_fec: opus_sum(|o| o.packets_fec),
        packets_late: opus_sum(|o| o.packets_late),
        frames_interpolated: r.receiver.frames_interpolated,
        interpolated_ms: clock.ms_of(r.receiver.frames_interpolated),
        frames_concealed: r.receiver.frames_concealed,
        concealed_ms: clock.ms_of(r.receiver.frames_concealed),
        damaged_ms: (!streaming)
            .then(|| isostream_media::damaged_windows(reference, &r.output, out_spec, 1.0, 20.0)),
        damaged_program_ms: damaged_program.map(|w| w * PROGRAM_WINDOW_MS),
        damaged_program_fraction: damaged_program.map(|w| w as f64 / program_windows.max(1) as f64),
        audible_gaps: cmp.gaps.len(),
        longest_gap_ms: cmp.longest_gap_ms,
        underruns: r.receiver.underruns,
        pauses_sent: r.receiver.flow.pauses_sent,
        resumes_sent: r.receiver.flow.resumes_sent,
        buffer_ms: Percentiles {
            p5: pct(0.05),
            p50: pct(0.5),
            p95: pct(0.95),
            max: buf.last().copied().unwrap_or(0.0),
        },
        startup_delay_ms: r.receiver.startup_delay_ms,
        modelled_latency_ms: r.forward.mean_delay_ms + r.receiver.buffer_mean_ms,
        modelled_total_latency_ms: packet_ms
            + codec_lookahead_ms
            + r.forward.mean_delay_ms
            + r.receiver.buffer_mean_ms,
        capture_to_playout_ms: r.receiver.capture_to_playout_ms,
        overhead: if media_packets == 0.0 {
            0.0
        } else {
            r.sender.repair_packets_sent as f64 / media_packets
        },
        media_bytes: r.sender.media_bytes,
        repair_bytes: r.sender.repair_bytes,
        retransmission_bytes: r.sender.retransmission.retransmission_bytes,
        sender_rtcp_bytes: r.sender.rtcp_bytes,
        receiver_rtcp_bytes: r.receiver.rtcp_bytes,
        wire_bytes,
        pcm_bytes,
        wire_to_pcm_ratio: if pcm_bytes == 0 {
            0.0
        } else {
            wire_bytes as f64 / pcm_bytes as f64
        },
        wire_bits_per_s: if audio.as_secs_f64() > 0.0 {
            wire_bytes as f64 * 8.0 / audio.as_secs_f64()
        } else {
            0.0
        },
        bit_exact_fraction: (!streaming).then_some(cmp.bit_exact_fraction),
        snr_db: cmp.snr_db.is_finite().then_some(cmp.snr_db),
        segmental_snr_db: (!streaming).then_some(cmp.segmental_snr_db),
        codec_snr_db: coding.reference.as_deref().and_then(aligned_snr),
        original_snr_db: if streaming {
            None
        } else {
            aligned_snr(&r.output)
        },
        simulated_drift_ppm: args.drift_ppm,
        drift_estimate_ppm: r.receiver.drift_estimate_ppm,
        buffer_after_convergence_ms: Percentiles {
            p5: late_pct(0.05),
            p50: late_pct(0.5),
            p95: late_pct(0.95),
            max: late_buf.last().copied().unwrap_or(0.0),
        },
    };
    Ok((report, r))
}

fn print_table(r: &BenchReport) {
    let reference = if r.codec == "opus" {
        "local Opus round trip"
    } else {
        "input"
    };
    println!(
        "profile {} (seed {}), FEC {}, interleave {}, spread {}, {} ms packets",
        r.profile, r.seed, r.fec, r.interleave, r.spread, r.packet_ms
    );
    let codec = if r.codec == "opus" {
        format!(
            "opus, {:.0} kb/s, {} ms frames, encoder lookahead {:.1} ms",
            r.codec_bits_per_s as f64 / 1000.0,
            r.packet_ms,
            r.codec_lookahead_ms
        )
    } else {
        format!(
            "{}, {:.0} kb/s",
            r.codec,
            r.codec_bits_per_s as f64 / 1000.0
        )
    };
    let rows: Vec<(&str, String)> = vec![
        ("codec", codec),
        (
            "audio streamed",
            format!(
                "{:.1} s (session {:.1} s{})",
                r.audio_s,
                r.session_s,
                if r.completed { "" } else { ", NOT completed" }
            ),
        ),
        (
            "packets sent",
            format!(
                "{} media + {} repair (overhead {:.1} %)",
                r.packets_sent,
                r.repair_packets_sent,
                r.overhead * 100.0
            ),
        ),
        (
            "lost on the wire",
            format!(
                "{} datagrams ({:.2} %)",
                r.datagrams_lost_on_wire,
                r.network_loss * 100.0
            ),
        ),
        (
            "media packets lost",
            format!(
                "{}: {} rebuilt by FEC, {} retransmitted ({} asked for, {} sent), {} unrecoverable",
                r.packets_lost,
                r.packets_rebuilt,
                r.packets_retransmitted,
                r.retransmissions_requested,
                r.retransmissions_sent,
                r.packets_unrecoverable
            ),
        ),
        (
            "bytes on the wire",
            format!(
                "{} ({:.1} kb/s, {:.3} x the raw PCM): media {}, repair {}, retransmission {}, RTCP {} (sender) + {} (receiver)",
                r.wire_bytes,
                r.wire_bits_per_s / 1000.0,
                r.wire_to_pcm_ratio,
                r.media_bytes,
                r.repair_bytes,
                r.retransmission_bytes,
                r.sender_rtcp_bytes,
                r.receiver_rtcp_bytes
            ),
        ),
        ("residual loss", format!("{:.3} %", r.residual_loss * 100.0)),
        (
            "Opus decoder",
            match (r.packets_plc, r.packets_fec, r.packets_late) {
                (Some(plc), Some(fec), Some(late)) => format!(
                    "{plc} packets by loss concealment, {fec} from in-band FEC, {late} late (dropped)"
                ),
                _ => "-".into(),
            },
        ),
        (
            "interpolated / concealed",
            format!("{:.1} ms / {:.1} ms", r.interpolated_ms, r.concealed_ms),
        ),
        (
            "audible gaps (>= 10 ms)",
            format!("{} (longest {:.1} ms)", r.audible_gaps, r.longest_gap_ms),
        ),
        ("underruns", r.underruns.to_string()),
        ("PAUSE / RESUME sent", format!("{} / {}", r.pauses_sent, r.resumes_sent)),
        (
            "buffer p5/p50/p95/max",
            format!(
                "{:.0} / {:.0} / {:.0} / {:.0} ms",
                r.buffer_ms.p5, r.buffer_ms.p50, r.buffer_ms.p95, r.buffer_ms.max
            ),
        ),
        (
            "startup delay / latency",
            match r.capture_to_playout_ms {
                Some(l) => format!(
                    "{:.0} ms / {:.0} ms modelled, capture to playout {:.0} ms measured (min {:.0}, max {:.0})",
                    r.startup_delay_ms, r.modelled_latency_ms, l.mean, l.min, l.max
                ),
                None => format!(
                    "{:.0} ms / {:.0} ms modelled",
                    r.startup_delay_ms, r.modelled_latency_ms
                ),
            },
        ),
        (
            "latency with the packet",
            format!(
                "{:.1} ms modelled: {} ms packet + {:.1} ms lookahead + {:.1} ms network and buffer",
                r.modelled_total_latency_ms,
                r.packet_ms,
                r.codec_lookahead_ms,
                r.modelled_latency_ms
            ),
        ),
        (
            "clock drift",
            match r.drift_estimate_ppm {
                Some(e) => format!(
                    "{:+.1} ppm simulated, {:+.2} ppm estimated; buffer after convergence p5/p50/p95 {:.0} / {:.0} / {:.0} ms",
                    r.simulated_drift_ppm, e, r.buffer_after_convergence_ms.p5, r.buffer_after_convergence_ms.p50, r.buffer_after_convergence_ms.p95
                ),
                None => format!("{:+.1} ppm simulated, not compensated", r.simulated_drift_ppm),
            },
        ),
        (
            "damaged program",
            match (r.damaged_program_ms, r.damaged_program_fraction) {
                (Some(ms), Some(f)) => format!(
                    "{ms} ms ({:.3} %): 20 ms windows under 10 dB against the {}",
                    f * 100.0,
                    reference
                ),
                _ => "not judged (the program was generated on the fly)".into(),
            },
        ),
        (
            if r.codec == "opus" {
                "output vs local round trip"
            } else {
                "output vs input"
            },
            match (r.bit_exact_fraction, r.segmental_snr_db) {
                (Some(exact), Some(seg)) => format!(
                    "{:.2} % bit-exact, SNR {}, segmental SNR {:.1} dB",
                    exact * 100.0,
                    r.snr_db.map_or("inf (identical)".into(), |s| format!("{s:.1} dB")),
                    seg
                ),
                _ => "not compared (the program was generated on the fly)".into(),
            },
        ),
    ];
    let mut rows = rows;
    if r.codec == "opus" {
        let db = |v: Option<f64>| v.map_or("inf (identical)".into(), |s| format!("{s:.1} dB"));
        rows.push((
            "vs the original",
            format!(
                "SNR {} (codec alone: local round trip {}), after the {:.1} ms lookahead",
                db(r.original_snr_db),
                db(r.codec_snr_db),
                r.codec_lookahead_ms
            ),
        ));
    }
    for (k, v) in rows {
        println!("  {k:<26} {v}");
    }
}

/// `isostream bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let profile = Profile::resolve(&args.profile)?;
    let (spec, input) = load_input(&args)?;
    let wall = std::time::Instant::now();
    if args.sweep {
        // a sweep measures what each FEC setting does alone
        let mut fec_only = args.clone();
        fec_only.stream.retransmission = false;
        let args = &fec_only;
        let mut settings = Vec::new();
        for s in args.sweep_fec.split(';') {
            settings.push(
                super::opts::parse_fec(s.trim())
                    .map_err(|e| anyhow::anyhow!("--sweep-fec: {e}"))?
                    .0,
            );
        }
        let mut reports = Vec::new();
        let mut lines = Vec::new();
        for fec in &settings {
            let mut pts = Vec::new();
            for &loss in &args.sweep_loss {
                if !(0.0..100.0).contains(&loss) {
                    bail!("--sweep-loss {loss}: expected a percentage in [0, 100)");
                }
                let (r, _) = simulate(args, &profile.with_loss(loss / 100.0), *fec, spec, &input)?;
                pts.push((r.network_loss * 100.0, r.residual_loss * 100.0));
                reports.push(r);
            }
            lines.push((
                format!("FEC {}", fec.map_or("off".into(), |f| f.to_string())),
                pts,
            ));
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&reports)?);
        } else {
            println!(
                "{:<10} {:>14} {:>14} {:>12} {:>10}",
                "FEC", "network loss %", "residual %", "concealed ms", "gaps"
            );
            for r in &reports {
                println!(
                    "{:<10} {:>14.2} {:>14.3} {:>12.1} {:>10}",
                    r.fec,
                    r.network_loss * 100.0,
                    r.residual_loss * 100.0,
                    r.concealed_ms,
                    r.audible_gaps
                );
            }
        }
        if let Some(p) = &args.plot {
            isostream::report::plot_sweep(
                p,
                &format!("residual loss, profile {} (Bernoulli loss)", profile.name),
                &lines,
            )?;
            eprintln!("isostream bench: wrote {}", p.display());
        }
    } else {
        let fec = args.stream.fec(args.is_live());
        let (report, r) = simulate(&args, &profile, fec, spec, &input)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_table(&report);
        }
        if let Some(p) = &args.plot {
            let mut rcfg = ReceiverConfig::default();
            args.buffer.apply(&mut rcfg, args.is_live());
            if let Some(ms) = args.latency {
                super::opts::apply_latency(&mut rcfg, ms);
            }
            let mut title = format!(
                "profile {}, FEC {}, interleave {}, spread {}",
                report.profile, report.fec, report.interleave, report.spread
            );
            if let Some(e) = report.drift_estimate_ppm {
                title += &format!(
                    ", drift {:+.0} ppm (estimated {e:+.1})",
                    report.simulated_drift_ppm
                );
            }
            isostream::report::plot_timeline(
                p,
                &title,
                &r.timeline,
                rcfg.low_water_ms as f64,
                rcfg.high_water_ms as f64,
            )?;
            eprintln!("isostream bench: wrote {}", p.display());
        }
    }
    let secs = wall.elapsed().as_secs_f64();
    eprintln!("isostream bench: simulated in {secs:.2} s of wall time");
    Ok(())
}
