//! Deterministic simulation: the real sender and receiver state machines connected by the
//! impairment model, under a virtual clock. No socket, no thread, no sleeping: an hour of
//! lossy streaming runs in seconds, and the same seed gives the same output byte for byte.

use isostream_netsim::{Link, LinkConfig, LinkStats, Profile};
use isostream_receiver::{ReceiverConfig, ReceiverEvent, ReceiverSession, ReceiverStats};
use isostream_sender::driver::AudioSource;
use isostream_sender::{SenderConfig, SenderSession, SenderStats};
use isostream_transport::rtp::{self, DatagramKind, RtpHeader};
use isostream_transport::time::{Duration, Instant};

/// How often the simulated sound card pulls audio from the receiver.
pub const PULL_INTERVAL: Duration = Duration::from_millis(5);

/// One sample of the receiver's state over time, for plots.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Sample {
    /// Virtual time, in seconds.
    pub t: f64,
    /// Buffered audio of the fullest substream, in ms.
    pub buffer_ms: f64,
    /// Media packets lost on the wire so far.
    pub lost: u64,
    /// Media packets recovered so far.
    pub recovered: u64,
    /// Audio concealed so far, in ms (summed over substreams).
    pub concealed_ms: f64,
    /// Whether the sender was paused.
    pub paused: bool,
    /// The receiver's estimate of the sender's clock drift, in ppm, if it compensates drift.
    pub drift_ppm: Option<f64>,
}

impl Sample {
    /// The receiver's state at `now`; `paused` says whether the sender was paused.
    pub fn of(now: Instant, receiver: &ReceiverSession, paused: bool) -> Sample {
        let s = receiver.stats();
        let rate = receiver.spec().map_or(48_000, |s| s.rate) as f64;
        Sample {
            t: now.as_secs_f64(),
            buffer_ms: receiver.occupancy().1 as f64 * 1000.0 / rate,
            lost: s.lost,
            recovered: s.recovered,
            concealed_ms: s.frames_concealed as f64 * 1000.0 / rate,
            paused,
            drift_ppm: s.drift_ppm,
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
    let mut sender = SenderSession::new(sender_cfg).map_err(std::io::Error::other)?;
    let mut receiver = ReceiverSession::new(receiver_cfg).map_err(std::io::Error::other)?;
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
    let mut audio = vec![0u8; 16_384 * frame_bytes];
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let mut input_done = false;
    let mut now = Instant::ZERO;
    let end = Instant::ZERO + limit;
    let mut next_pull = Instant::ZERO;
    let mut next_sample = Instant::ZERO;
    let mut timeline = Vec::new();
    let mut completed = false;
    // the sender's clock: real time scaled by its drift
    let k = 1.0 + opts.drift_ppm * 1e-6;
    let to_sender = |t: Instant| Instant::from_nanos((t.as_nanos() as f64 * k).round() as u64);
    let to_real = |t: Instant| Instant::from_nanos((t.as_nanos() as f64 / k).ceil() as u64);
    while now <= end {
        let s_now = to_sender(now);
        // sender side
        if !input_done {
            loop {
                let want = sender.audio_wanted().min(audio.len() / frame_bytes);
                if want == 0 {
                    break;
                }
                let n = source.read_frames(&mut audio[..want * frame_bytes])?;
                if n == 0 {
                    sender.end_of_input(s_now);
                    input_done = true;
                    break;
                }
                sender.push_audio(s_now, &audio[..n * frame_bytes]);
            }
        }
        while let Some(d) = rev.poll_deliver(now) {
            sender.handle_datagram(s_now, &d);
        }
        sender.handle_timeout(s_now);
        while let Some(d) = sender.poll_transmit(s_now) {
            let path = (!paths.is_empty() && rtp::classify(&d) != DatagramKind::Rtcp)
                .then(|| RtpHeader::parse(&d).ok())
                .flatten()
                .and_then(|(h, _)| ssrcs.iter().position(|&s| s == h.ssrc));
            match path.and_then(|i| paths.get_mut(i)) {
                Some(l) => l.send(now, d),
                None => fwd.send(now, d),
            }
        }
        while sender.poll_event().is_some() {}
        // receiver side
        while let Some(d) = fwd.poll_deliver(now) {
            receiver.handle_bytes(now, d);
        }
        for l in &mut paths {
            while let Some(d) = l.poll_deliver(now) {
                receiver.handle_bytes(now, d);
            }
        }
        receiver.handle_timeout(now);
        if now >= next_pull {
            next_pull = now + PULL_INTERVAL;
            if let Some(spec) = receiver.spec() {
                let due = receiver.due_frames(now);
                if due > 0 {
                    chunk.resize(due * spec.frame_bytes(), 0);
                    let n = receiver.playout(now, &mut chunk);
                    if !opts.discard_output {
                        out.extend_from_slice(&chunk[..n * spec.frame_bytes()]);
                    }
                }
            }
        }
        while let Some(d) = receiver.poll_transmit() {
            rev.send(now, d);
        }
        while let Some(ev) = receiver.poll_event() {
            if ev == ReceiverEvent::SessionEnded {
                completed = true;
            }
        }
        if now >= next_sample {
            next_sample = now + PULL_INTERVAL * 20;
            timeline.push(Sample::of(now, &receiver, sender.is_paused()));
        }
        if completed && (sender.is_finished() || input_done) {
            break;
        }
        // advance virtual time to the earliest thing that can happen
        let mut next = next_pull.min(next_sample);
        for t in [
            sender.poll_timeout(s_now).map(to_real),
            receiver.poll_timeout(now),
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
