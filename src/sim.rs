//! Deterministic simulation: the real sender and receiver state machines connected by the
//! impairment model, under a virtual clock. No socket, no thread, no sleeping: an hour of
//! lossy streaming runs in seconds, and the same seed gives the same output byte for byte.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use isostream_drive::{
    AudioSink, AudioSource, Feed, ReceiverHost, ReceiverPump, SenderHost, SenderPump,
};
use isostream_netsim::Link;
pub use isostream_netsim::{LinkConfig, LinkStats, Profile};
use isostream_receiver::{ReceiverConfig, ReceiverEvent, ReceiverSession, ReceiverStats};
use isostream_sender::{SenderConfig, SenderEvent, SenderSession, SenderStats};
use isostream_transport::rtp::{self, DatagramKind};
use isostream_transport::sans_io::Transmit;
use isostream_transport::time::{Duration, Instant};

/// How often the simulated sound card pulls audio from the receiver (the pump's pace).
pub const PULL_INTERVAL: Duration = isostream_drive::PULL_INTERVAL;

/// The simulated sender's address, as the receiver sees it.
pub const SENDER_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 5004);
/// The simulated receiver's address, as the sender sees it.
pub const RECEIVER_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 5004);

/// The simulated sender's environment: the source read inline, datagrams onto the forward
/// path (or a substream's own path).
struct SimSender<'a> {
    source: &'a mut dyn AudioSource,
    audio: &'a mut [u8],
    frame_bytes: usize,
    /// A live source: audio becomes available as the sender's clock passes, a capture
    /// period at a time; `None`: stored media, read on demand.
    live: Option<&'a mut LiveCapture>,
    /// The real (receiver's) time, at which datagrams enter the links.
    now: Instant,
    fwd: &'a mut Link,
    paths: &'a mut [Link],
    ssrcs: &'a [u32],
}

impl SenderHost for SimSender<'_> {
    fn audio(&mut self, max_frames: usize) -> std::io::Result<Feed<'_>> {
        let mut want = max_frames.min(self.audio.len() / self.frame_bytes);
        if let Some(c) = self.live.as_deref_mut() {
            let ready = c.ready_frames();
            if ready == 0 {
                return Ok(Feed::Pending);
            }
            want = want.min(ready);
        }
        let n = self
            .source
            .read_frames(&mut self.audio[..want * self.frame_bytes])?;
        if let Some(c) = self.live.as_deref_mut() {
            c.captured += n as u64;
        }
        Ok(if n == 0 {
            Feed::End
        } else {
            Feed::Frames(&self.audio[..n * self.frame_bytes])
        })
    }
    fn consume(&mut self, _frames: usize) {}
    fn transmit(&mut self, t: Transmit) -> std::io::Result<()> {
        let d = t.data;
        // media and repair packets carry their substream's SSRC at bytes 8..12
        let path =
            (!self.paths.is_empty() && rtp::classify(&d) != DatagramKind::Rtcp && d.len() >= 12)
                .then(|| {
                    let ssrc = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
                    self.ssrcs.iter().position(|&s| s == ssrc)
                })
                .flatten();
        match path.and_then(|i| self.paths.get_mut(i)) {
            Some(l) => l.send(self.now, d),
            None => self.fwd.send(self.now, d),
        }
        Ok(())
    }
    fn event(&mut self, _: SenderEvent) {}
}

/// A simulated live source: a sound card that delivers a period of `period_frames` every
/// time that much audio has been captured, on the sender's clock.
struct LiveCapture {
    rate: u32,
    period_frames: u64,
    /// The sender's clock now.
    now: Instant,
    /// Frames handed over so far.
    captured: u64,
}

impl LiveCapture {
    /// Whole periods captured by now and not handed over yet, in frames.
    fn ready_frames(&self) -> usize {
        let by_now = self.now.as_nanos() as u128 * self.rate as u128 / 1_000_000_000;
        let periods = (by_now as u64).saturating_sub(self.captured) / self.period_frames;
        (periods * self.period_frames) as usize
    }

    /// When the next period is complete, on the sender's clock.
    fn next_period(&self) -> Instant {
        let frames = self.captured + self.period_frames;
        Instant::from_nanos((frames as u128 * 1_000_000_000).div_ceil(self.rate as u128) as u64)
    }
}

/// The simulated receiver's environment: played-out audio kept in memory, datagrams onto the
/// reverse path.
struct SimReceiver<'a> {
    now: Instant,
    rev: &'a mut Link,
    out: MemorySink<'a>,
    ended: bool,
}

/// Played-out audio kept in memory (or only counted, for long runs).
struct MemorySink<'a> {
    out: &'a mut Vec<u8>,
    keep: bool,
    /// Where each played-out chunk is also sent ([`SimOptions::output_to`]).
    tee: Option<&'a std::sync::mpsc::SyncSender<Vec<u8>>>,
}

impl AudioSink for MemorySink<'_> {
    fn write_frames(&mut self, frames: &[u8]) -> std::io::Result<()> {
        if self.keep {
            self.out.extend_from_slice(frames);
        }
        if let Some(tx) = self.tee {
            let _ = tx.send(frames.to_vec());
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ReceiverHost for SimReceiver<'_> {
    fn transmit(&mut self, t: Transmit) -> std::io::Result<()> {
        self.rev.send(self.now, t.data);
        Ok(())
    }
    fn event(&mut self, e: ReceiverEvent) -> std::io::Result<()> {
        if e == ReceiverEvent::SessionEnded {
            self.ended = true;
        }
        Ok(())
    }
    fn sink(&mut self) -> Option<&mut dyn AudioSink> {
        Some(&mut self.out)
    }
}

/// One sample of the receiver's state over time, for plots.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Sample {
    /// Virtual time, in seconds.
    pub t: f64,
    /// Buffered audio of the fullest substream, in ms.
    pub buffer_ms: f64,
    /// Media packets lost on the wire so far.
    pub packets_lost: u64,
    /// Media packets rebuilt by FEC so far.
    pub packets_rebuilt: u64,
    /// Audio concealed so far, in ms (summed over substreams).
    pub concealed_ms: f64,
    /// Whether the sender was paused.
    pub paused: bool,
    /// The receiver's estimate of the sender's clock drift, in ppm, if it compensates drift.
    pub drift_estimate_ppm: Option<f64>,
}

impl Sample {
    /// The receiver's state at `now`; `paused` says whether the sender was paused.
    pub fn of(now: Instant, receiver: &ReceiverSession, paused: bool) -> Sample {
        let s = receiver.stats();
        let rate = receiver.spec().map_or(48_000, |s| s.rate) as f64;
        Sample {
            t: now.as_secs_f64(),
            buffer_ms: receiver.occupancy().1 as f64 * 1000.0 / rate,
            packets_lost: s.packets_lost,
            packets_rebuilt: s.packets_rebuilt,
            concealed_ms: s.frames_concealed as f64 * 1000.0 / rate,
            paused,
            drift_estimate_ppm: s.drift_estimate_ppm,
        }
    }
}

/// What a simulation produced.
pub struct SimResult {
    /// The played-out audio (wire frames of the receiver's output spec).
    pub output: Vec<u8>,
    /// Sender counters.
    pub sender: SenderStats,
    /// Receiver counters.
    pub receiver: ReceiverStats,
    /// Forward (media) path counters.
    pub forward: LinkStats,
    /// Reverse (control) path counters.
    pub reverse: LinkStats,
    /// Virtual time the session took.
    pub elapsed: Duration,
    /// Receiver state every [`PULL_INTERVAL`] x 20 (100 ms).
    pub timeline: Vec<Sample>,
    /// Whether the receiver saw the session end (rather than the time limit).
    pub completed: bool,
}

/// Options of a simulation beyond the profile.
#[derive(Clone, Debug, Default)]
pub struct SimOptions {
    /// A separate forward path per substream (in substream order) instead of the profile's
    /// forward path: media and repair packets of substream i take path i; RTCP takes the
    /// profile's forward path.
    pub substream_paths: Option<Vec<LinkConfig>>,
    /// The sender's clock runs this many ppm fast (negative: slow) against the receiver's:
    /// two sound cards never agree exactly.
    pub drift_ppm: f64,
    /// Do not keep the played-out audio (for long runs; [`SimResult::output`] stays empty).
    pub discard_output: bool,
    /// Also send every played-out chunk here as it is played (whether kept or not), so that
    /// a long run's audio can be checked as it goes without holding it all. A bounded
    /// channel makes the simulation wait for its reader.
    pub output_to: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    /// Run the SRTP/SRTCP stage under this key in both pumps (`bench --srtp`).
    pub srtp: Option<isostream_drive::srtp::SrtpKey>,
}

/// Runs one session through `profile` with `seed`, reading the input from `source`.
/// Stops when the receiver has played the session out, or after `limit` of virtual time.
pub fn run(
    sender_cfg: SenderConfig,
    receiver_cfg: ReceiverConfig,
    profile: &Profile,
    seed: u64,
    source: &mut dyn AudioSource,
    limit: Duration,
) -> std::io::Result<SimResult> {
    run_with(
        sender_cfg,
        receiver_cfg,
        profile,
        seed,
        source,
        limit,
        &SimOptions::default(),
    )
}

/// [`run`] with [`SimOptions`].
pub fn run_with(
    sender_cfg: SenderConfig,
    receiver_cfg: ReceiverConfig,
    profile: &Profile,
    seed: u64,
    source: &mut dyn AudioSource,
    limit: Duration,
    opts: &SimOptions,
) -> std::io::Result<SimResult> {
    let frame_bytes = sender_cfg.spec.frame_bytes();
    let sender_cfg = SenderConfig {
        receiver_addr: RECEIVER_ADDR,
        ..sender_cfg
    };
    let (sender_cfg_live, sender_rate, sender_period) = (
        sender_cfg.live,
        sender_cfg.spec.rate,
        sender_cfg.packet_frames,
    );
    let sender = SenderSession::new(sender_cfg).map_err(std::io::Error::other)?;
    let receiver = ReceiverSession::new(receiver_cfg).map_err(std::io::Error::other)?;
    let mut fwd = Link::new(&profile.forward, seed);
    let ssrcs = sender.ssrcs();
    let mut paths: Vec<Link> = opts
        .substream_paths
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| Link::new(c, seed.wrapping_add(1 + i as u64)))
        .collect();
    let mut rev = Link::new(&profile.reverse, seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut live = sender_cfg_live.then(|| LiveCapture {
        rate: sender_rate,
        period_frames: sender_period.max(1) as u64,
        now: Instant::ZERO,
        captured: 0,
    });
    let mut sender = SenderPump::new(sender);
    let mut receiver = ReceiverPump::new(receiver);
    if let Some(k) = &opts.srtp {
        let stage = || isostream_drive::srtp::Srtp::new(k).map_err(std::io::Error::other);
        sender = sender.with_srtp(stage()?);
        receiver = receiver.with_srtp(stage()?);
    }
    let mut audio = vec![0u8; 16_384 * frame_bytes];
    let mut out = Vec::new();
    let mut now = Instant::ZERO;
    let end = Instant::ZERO + limit;
    let mut next_sample = Instant::ZERO;
    let mut timeline = Vec::new();
    let mut completed = false;
    // the sender's clock: real time scaled by its drift
    let k = 1.0 + opts.drift_ppm * 1e-6;
    let to_sender = |t: Instant| Instant::from_nanos((t.as_nanos() as f64 * k).round() as u64);
    let to_real = |t: Instant| Instant::from_nanos((t.as_nanos() as f64 / k).ceil() as u64);
    while now <= end {
        let s_now = to_sender(now);
        // sender side: the datagrams the reverse path delivers now, then one pump turn
        while let Some(d) = rev.poll_deliver(now) {
            sender.receive(s_now, RECEIVER_ADDR, d);
        }
        if let Some(c) = live.as_mut() {
            c.now = s_now;
        }
        let sender_wake = sender.turn(
            s_now,
            &mut SimSender {
                source: &mut *source,
                audio: &mut audio,
                frame_bytes,
                live: live.as_mut(),
                now,
                fwd: &mut fwd,
                paths: &mut paths,
                ssrcs: &ssrcs,
            },
        )?;
        // receiver side
        while let Some(d) = fwd.poll_deliver(now) {
            receiver.receive(now, SENDER_ADDR, d);
        }
        for l in &mut paths {
            while let Some(d) = l.poll_deliver(now) {
                receiver.receive(now, SENDER_ADDR, d);
            }
        }
        let mut host = SimReceiver {
            now,
            rev: &mut rev,
            out: MemorySink {
                out: &mut out,
                keep: !opts.discard_output,
                tee: opts.output_to.as_ref(),
            },
            ended: false,
        };
        let receiver_wake = receiver.turn(now, &mut host)?;
        completed |= host.ended;
        if now >= next_sample {
            next_sample = now + PULL_INTERVAL * 20;
            timeline.push(Sample::of(
                now,
                receiver.session(),
                sender.session().is_paused(),
            ));
        }
        if completed && (sender.session().is_finished() || sender.input_done()) {
            break;
        }
        // advance virtual time to the earliest thing that can happen
        let mut next = next_sample;
        let next_capture = live
            .as_ref()
            .filter(|_| !sender.input_done())
            .map(|c| to_real(c.next_period()));
        for t in [
            sender_wake.at.map(to_real),
            next_capture,
            receiver_wake.at,
            fwd.next_delivery(),
            rev.next_delivery(),
        ]
        .into_iter()
        .chain(paths.iter().map(Link::next_delivery))
        .flatten()
        {
            next = next.min(t);
        }
        now = next.max(now + Duration::from_micros(1));
    }
    let (sender, receiver) = (sender.session(), receiver.session());
    Ok(SimResult {
        output: out,
        sender: sender.stats(),
        receiver: receiver.stats(),
        forward: fwd.stats(),
        reverse: rev.stats(),
        elapsed: now - Instant::ZERO,
        timeline,
        completed,
    })
}

/// Adapts an in-memory buffer of wire frames as an [`AudioSource`].
pub struct MemorySource<'a> {
    data: &'a [u8],
    frame_bytes: usize,
    pos: usize,
}

impl<'a> MemorySource<'a> {
    /// A source over `data` (whole frames of `frame_bytes`).
    pub fn new(data: &'a [u8], frame_bytes: usize) -> Self {
        MemorySource {
            data,
            frame_bytes,
            pos: 0,
        }
    }
}

impl AudioSource for MemorySource<'_> {
    fn read_frames(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = (out.len() / self.frame_bytes).min((self.data.len() - self.pos) / self.frame_bytes);
        let b = n * self.frame_bytes;
        out[..b].copy_from_slice(&self.data[self.pos..self.pos + b]);
        self.pos += b;
        Ok(n)
    }
}

/// A local Opus encode and decode with a sender's settings (feature `opus`): what a clean
/// link plays for `--codec opus`, the reference that tells network damage from codec loss
/// (`bench --codec opus`, tests/opus.rs).
///
/// It does what the sender's encoder stage and the receiver's decoder do, with libopus
/// directly: each substream on its own, 48 kHz, `Application::Audio`, frames of
/// [`OpusParams::frame_frames`] (the last one padded with silence), the output cut to the
/// input's length and not shifted: output frame `n` is decoded frame `n`, which lags the
/// input by the encoder's lookahead ([`lookahead_frames`]).
#[cfg(feature = "opus")]
pub mod opus_local {
    use isostream_media::{compare, AudioSpec, SampleFormat};
    pub use isostream_sender::OpusParams;

    fn channels(n: u16) -> opus::Channels {
        if n == 2 {
            opus::Channels::Stereo
        } else {
            opus::Channels::Mono
        }
    }

    fn encoder(p: &OpusParams, ch: u16) -> opus::Encoder {
        let mut enc = opus::Encoder::new(48_000, channels(ch), opus::Application::Audio)
            .expect("libopus takes 48 kHz, 1 or 2 channels");
        enc.set_bitrate(opus::Bitrate::Bits(p.bitrate as i32))
            .expect("a valid bitrate");
        enc.set_inband_fec(p.inband_fec).expect("in-band FEC");
        enc.set_packet_loss_perc(p.expected_loss_percent.min(100) as i32)
            .expect("a loss percentage");
        enc
    }

    /// The encoder's lookahead for these settings, from libopus (`OPUS_GET_LOOKAHEAD`), in
    /// frames at 48 kHz: 312 (6.5 ms) for `Application::Audio`.
    pub fn lookahead_frames(p: &OpusParams, channels: u16) -> u32 {
        encoder(p, channels.clamp(1, 2))
            .get_lookahead()
            .map_or(0, |v| v.max(0) as u32)
    }

    /// The spec of what an Opus receiver plays for an input of `spec`: 48 kHz, S16.
    pub fn output_spec(spec: AudioSpec) -> AudioSpec {
        AudioSpec {
            rate: 48_000,
            format: SampleFormat::S16,
            ..spec
        }
    }

    /// `input` (wire frames of `spec`) as S16 wire frames, converted as the sender's encoder
    /// stage converts them: the original that Opus codes.
    pub fn to_s16(input: &[u8], spec: AudioSpec) -> Vec<u8> {
        let f = spec.format;
        if f == SampleFormat::S16 {
            return input.to_vec();
        }
        input
            .chunks_exact(f.bytes())
            .flat_map(|s| {
                ((f.decode(s) * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16).to_be_bytes()
            })
            .collect()
    }

    /// The local encode and decode of `input` (wire frames of `spec`, 48 kHz), substream by
    /// substream (`substream_channels`, in channel order, as `SenderConfig`), with `p`:
    /// S16 wire frames of [`output_spec`], the input's length. Panics unless `spec` is
    /// 48 kHz and the substreams have 1 or 2 channels each and add up to `spec.channels`.
    pub fn round_trip(
        input: &[u8],
        spec: AudioSpec,
        p: &OpusParams,
        substream_channels: &[u16],
    ) -> Vec<u8> {
        assert_eq!(spec.rate, 48_000, "Opus codes 48 kHz here");
        let c = spec.channels as usize;
        assert_eq!(
            substream_channels
                .iter()
                .map(|&n| n as usize)
                .sum::<usize>(),
            c,
            "substreams cover the channels"
        );
        let pcm = to_s16(input, spec);
        let samples: Vec<i16> = pcm
            .chunks_exact(2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .collect();
        let frames = samples.len() / c.max(1);
        let n = p.frame_frames() as usize;
        let mut out = vec![0i16; frames * c];
        let mut first = 0;
        for &sc in substream_channels {
            let sc = sc as usize;
            assert!((1..=2).contains(&sc), "Opus codes 1 or 2 channels");
            let mut enc = encoder(p, sc as u16);
            let mut dec = opus::Decoder::new(48_000, channels(sc as u16)).expect("a decoder");
            let mut frame = vec![0i16; n * sc];
            let mut decoded = vec![0i16; n * sc];
            let mut packet = vec![0u8; 1275];
            for start in (0..frames).step_by(n.max(1)) {
                let len = n.min(frames - start);
                frame.fill(0);
                for i in 0..len {
                    let from = (start + i) * c + first;
                    frame[i * sc..(i + 1) * sc].copy_from_slice(&samples[from..from + sc]);
                }
                let bytes = enc.encode(&frame, &mut packet).expect("libopus encodes");
                let got = dec
                    .decode(&packet[..bytes], &mut decoded, false)
                    .expect("libopus decodes its own packet");
                for i in 0..got.min(len) {
                    let to = (start + i) * c + first;
                    out[to..to + sc].copy_from_slice(&decoded[i * sc..(i + 1) * sc]);
                }
            }
            first += sc;
        }
        out.iter().flat_map(|s| s.to_be_bytes()).collect()
    }

    /// SNR of `decoded` against `original` (both wire frames of `spec`) once a delay of
    /// about `delay` frames is taken off, in dB: the best over delays within 8 frames of it
    /// (Opus's filters shift a tone's phase by a few frames). `+inf` when identical.
    pub fn snr_after_delay(original: &[u8], decoded: &[u8], spec: AudioSpec, delay: usize) -> f64 {
        let fb = spec.frame_bytes();
        let frames = (original.len() / fb).min(decoded.len() / fb);
        (delay.saturating_sub(8)..=delay + 8)
            .filter(|&lag| lag < frames)
            .map(|lag| {
                let n = frames - lag;
                compare(
                    &original[..n * fb],
                    &decoded[lag * fb..(lag + n) * fb],
                    spec,
                )
                .snr_db
            })
            .fold(f64::NEG_INFINITY, f64::max)
    }
}
