//! The receiver session: a sans-IO state machine that rebuilds, de-interleaves, buffers and
//! plays out the substreams of one session, and steers the sender with PAUSE and RESUME.
//!
//! It owns no socket, thread or clock. The caller passes datagrams in
//! ([`ReceiverSession::handle_datagram`]), pulls audio out ([`ReceiverSession::playout`],
//! "the next N frames at time t", driven by a timer, a sound card or a simulator), drains
//! [`ReceiverSession::poll_transmit`] and [`ReceiverSession::poll_event`], and calls
//! [`ReceiverSession::handle_timeout`] at [`ReceiverSession::poll_timeout`].
//!
//! The pipeline, per substream, in the order the data flows:
//!
//! ```text
//! UDP ─▶ demux (RTP / repair / RTCP, by SSRC) ─▶ FEC decoder ─▶ de-interleaver ─▶ jitter buffer
//!                                                                                      │
//!   output ◀─ channel merge (all substreams) ◀─ concealer ◀─ playout clock (one for all)┘
//! ```
//!
//! The watermark controller watches the jitter buffers and sends PAUSE and RESUME.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use isostream_media::{AudioSpec, SampleFormat};
use isostream_transport::fec::{BlockDecoder, ReedSolomonCodec, RepairHeader};
use isostream_transport::interleave::InterleaveHeader;
use isostream_transport::rtcp::{self, ReportBlock, RtcpPacket, SessionDesc};
use isostream_transport::rtp::{self, DatagramKind, RtpHeader};
use isostream_transport::sans_io::{Input, Output, Transmit};
use isostream_transport::seq::{SeqUnwrapper, TsUnwrapper};
use isostream_transport::time::{Duration, Instant, MediaClock};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use crate::concealer::Concealer;
use crate::config::ReceiverConfig;
use crate::drift::{AdaptiveResampler, DriftEstimator};
use crate::flow::{FlowController, FlowStats, Request};
use crate::jitter_buffer::{JitterBuffer, Write};
use crate::playout::PlayoutClock;

/// Something the application should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiverEvent {
    /// A session began: audio of this spec (all substreams' channels) will be played.
    SessionStarted {
        /// The output's format.
        spec: AudioSpec,
        /// Channels of each substream, in output order.
        substream_channels: Vec<u16>,
    },
    /// The low-water mark was reached: playback started.
    PlaybackStarted,
    /// The session ended (BYE or idle timeout) and its buffer is drained.
    SessionEnded,
}

/// Counters of one substream.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SubstreamStats {
    /// The substream's SSRC.
    pub ssrc: u32,
    /// Channels it carries.
    pub channels: u16,
    /// Media packets received (not counting duplicates).
    pub packets_received: u64,
    /// Media packets expected from the sequence numbers seen.
    pub packets_expected: u64,
    /// Media packets lost on the way (expected - received).
    pub lost: u64,
    /// Media packets rebuilt from repair packets.
    pub recovered: u64,
    /// Repair packets received.
    pub repair_received: u64,
    /// Media packets that arrived (or were rebuilt) after their playout deadline.
    pub late: u64,
    /// Duplicate media packets dropped.
    pub duplicate: u64,
    /// Packets that did not fit in the jitter buffer, dropped.
    pub overflow: u64,
    /// Frames missing at their playout deadline and filled by interpolation.
    pub frames_interpolated: u64,
    /// Frames missing at their playout deadline and filled by concealment (or silence).
    pub frames_concealed: u64,
    /// Buffered audio now, in frames.
    pub occupancy_frames: i64,
    /// Interarrival jitter (RFC 3550), in ms.
    pub jitter_ms: f64,
    /// Media time a live sender skipped (audio it dropped while paused), removed from the
    /// timeline instead of played as a gap, in frames.
    pub frames_skipped: u64,
}

/// Counters of a receiver, for the summary and `--stats-json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReceiverStats {
    /// Media packets received over all substreams (not counting duplicates).
    pub packets_received: u64,
    /// Media packets lost on the way.
    pub lost: u64,
    /// Media packets rebuilt from repair packets.
    pub recovered: u64,
    /// Lost media packets that could not be rebuilt (lost - recovered).
    pub unrecoverable: u64,
    /// Repair packets received.
    pub repair_received: u64,
    /// Media packets after their playout deadline.
    pub late: u64,
    /// Duplicate media packets.
    pub duplicate: u64,
    /// Malformed datagrams (not parseable RTP/RTCP, bad payload), dropped.
    pub malformed: u64,
    /// Datagrams of another session, SSRC or payload type, dropped.
    pub foreign: u64,
    /// Media packets that did not fit in the jitter buffer, dropped.
    pub overflow: u64,
    /// Residual loss: unrecoverable / expected media packets.
    pub residual_loss: f64,
    /// Frames played out (per channel).
    pub frames_played: u64,
    /// Frames filled by interpolation (summed over substreams).
    pub frames_interpolated: u64,
    /// Frames filled by concealment or silence (summed over substreams).
    pub frames_concealed: u64,
    /// Times playout found a substream's buffer empty while playing.
    pub underruns: u64,
    /// PAUSE/RESUME requests and acknowledgements.
    pub flow: FlowStats,
    /// Smallest buffered audio seen at playout (emptiest substream), in ms.
    pub buffer_min_ms: f64,
    /// Mean buffered audio at playout (emptiest substream), in ms.
    pub buffer_mean_ms: f64,
    /// Largest buffered audio seen (fullest substream, at any time), in ms.
    pub buffer_max_ms: f64,
    /// Time from the first packet to the start of playback, in ms.
    pub startup_delay_ms: f64,
    /// Capture-to-playout latency (sender's wall clock in its reports to the receiver's at
    /// playout), in ms: exact when both run on one machine, an estimate across machines
    /// (it includes the offset between their clocks). Mean, smallest and largest.
    pub latency_ms: Option<LatencyStats>,
    /// Estimated rate of the sender's clock against the playout clock, in ppm (+ = sender
    /// faster), when clock drift is compensated.
    pub drift_ppm: Option<f64>,
    /// The resampling correction applied at the end, in ppm.
    pub drift_correction_ppm: Option<f64>,
    /// Largest difference between substreams' read positions, in frames (always 0: they
    /// share one playout clock; reported so tools can check it).
    pub skew_frames: i64,
    /// Per substream.
    pub substreams: Vec<SubstreamStats>,
}

/// Capture-to-playout latency figures, in ms.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct LatencyStats {
    /// Mean over playout chunks.
    pub mean: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

/// A window of recently seen extended sequence numbers, to spot duplicates.
const SEEN_WINDOW: usize = 2048;

struct SubstreamRx {
    ssrc: u32,
    frame_bytes: usize,
    ts_base: Option<u32>,
    seq: SeqUnwrapper,
    ts: TsUnwrapper,
    seen: Vec<u64>,
    first_seq: Option<u64>,
    fec: Option<BlockDecoder>,
    jb: JitterBuffer,
    concealer: Concealer,
    last_sr_pos: Option<i64>,
    last_sr_ntp: u32,
    /// Wall-clock time of the last sender report, in ns since the Unix epoch.
    last_sr_unix_ns: Option<i128>,
    last_sr_at: Option<Instant>,
    stats: SubstreamStats,
    /// Scratch for playout: this substream's frames and presence flags.
    scratch: Vec<u8>,
    present: Vec<bool>,
    /// This substream's share of one playout chunk (after resampling).
    chunk: Vec<u8>,
    /// Adaptive resampler (only when clock drift is compensated).
    resampler: Option<AdaptiveResampler>,
    /// A live sender skips the media time it dropped while paused; the receiver closes the
    /// hole instead of playing it (see [`Skips`]).
    skips: Skips,
    /// Interarrival jitter (RFC 3550, A.8), in timestamp units (frames).
    jitter: f64,
    /// Relative transit time of the previous packet, in frames.
    last_transit: Option<f64>,
    /// Expected and received packets at the previous receiver report (for fraction lost).
    reported: (u64, u64),
}

/// Media time a live sender skipped (audio dropped while paused), removed from the timeline:
/// raw positions at or after `at` move back by `total`, earlier ones by `before`.
#[derive(Clone, Copy, Debug, Default)]
struct Skips {
    at: i64,
    before: i64,
    total: i64,
}

impl Skips {
    fn map(&self, raw: i64) -> i64 {
        raw - if raw >= self.at {
            self.total
        } else {
            self.before
        }
    }
}

struct Active {
    provisional: bool,
    /// The sender's source is live (its description says so).
    live: bool,
    spec: AudioSpec,
    format: SampleFormat,
    subs: Vec<SubstreamRx>,
    clock: PlayoutClock,
    first_arrival: Instant,
    last_heard: Instant,
    end_pos: Option<i64>,
    ended: bool,
    in_underrun: bool,
    /// Datagrams received while the session is provisional (no description yet) and not
    /// playing, replayed if a description turns up (its first copy was lost).
    pending: Vec<Bytes>,
    occ_min: i64,
    occ_max: i64,
    occ_sum: f64,
    occ_n: u64,
    underruns: u64,
    lat_sum: f64,
    lat_n: u64,
    lat_min: f64,
    lat_max: f64,
    /// Clock drift estimator and controller (live sessions, or when configured).
    drift: Option<DriftEstimator>,
    /// The buffer level the drift controller holds, in frames (fixed 10 s into playback).
    drift_target: Option<i64>,
    /// When the newest media packet was written, and how many frames it carried.
    last_media: Option<(Instant, i64)>,
    /// When playback first started.
    first_start: Option<Instant>,
}

/// How long a stream without a session description waits (beyond the low-water mark) before
/// playback starts, so that a lost first description is made good by the next one (sent
/// every 250 ms) before the output format is fixed.
pub const PROVISIONAL_GRACE: Duration = Duration::from_millis(600);

/// Seconds of playback after which the drift controller fixes the buffer level it holds.
const DRIFT_TARGET_AFTER_S: f64 = 10.0;

/// Sample rates a session may have, in Hz.
const MIN_RATE: u32 = 1_000;
const MAX_RATE: u32 = 768_000;
/// Largest jitter buffer memory a session may ask for (all substreams), in bytes.
const MAX_BUFFER_BYTES: usize = 512 << 20;

/// At most this many datagrams are kept while a session waits for its description.
const MAX_PENDING: usize = 4096;

/// Frames of future audio shown to the concealer so it can interpolate across a chunk edge.
const LOOKAHEAD: usize = 8;

/// A receiver session. See the module documentation for the call protocol.
pub struct ReceiverSession {
    cfg: ReceiverConfig,
    ssrc: u32,
    active: Option<Active>,
    flow: FlowController,
    control: VecDeque<Bytes>,
    events: VecDeque<ReceiverEvent>,
    malformed: u64,
    foreign: u64,
    next_report: Option<Instant>,
    recovered_scratch: Vec<Bytes>,
    rtcp_buf: BytesMut,
    /// Totals of sessions that already ended.
    done: Option<ReceiverStats>,
    /// The time of the latest input.
    now: Instant,
    /// Where the current session's datagrams come from: where replies go.
    peer: Option<std::net::SocketAddr>,
}

/// The sample format of a payload type and whether it is interleaved. For a stock stream
/// (no session description), `stock_l16` names a payload type that carries plain L16
/// whatever it is in isostream's numbering (ffmpeg, for one, sends L16 as 97).
fn format_of_pt(pt: u8, stock_l16: Option<u8>) -> Option<(SampleFormat, bool)> {
    if stock_l16 == Some(pt) {
        return Some((SampleFormat::S16, false));
    }
    let plain = if pt >= rtp::PT_L16 + rtp::PT_INTERLEAVED_OFFSET {
        pt - rtp::PT_INTERLEAVED_OFFSET
    } else {
        pt
    };
    let interleaved = plain != pt;
    let f = match plain {
        rtp::PT_L16 | rtp::PT_STATIC_L16_STEREO | rtp::PT_STATIC_L16_MONO
            if !interleaved || plain == rtp::PT_L16 =>
        {
            SampleFormat::S16
        }
        rtp::PT_L24 => SampleFormat::S24,
        rtp::PT_F32 => SampleFormat::F32,
        _ => return None,
    };
    Some((f, interleaved))
}

impl ReceiverSession {
    /// Creates a receiver. Errors if the configuration is inconsistent.
    pub fn new(cfg: ReceiverConfig) -> Result<Self, crate::ReceiverError> {
        cfg.validate()?;
        let ssrc = StdRng::seed_from_u64(cfg.seed ^ 0x005e_ed0f_1505).random();
        Ok(ReceiverSession {
            cfg,
            ssrc,
            active: None,
            flow: FlowController::new(),
            control: VecDeque::new(),
            events: VecDeque::new(),
            malformed: 0,
            foreign: 0,
            next_report: None,
            recovered_scratch: Vec::new(),
            rtcp_buf: BytesMut::with_capacity(1024),
            done: None,
            now: Instant::ZERO,
            peer: None,
        })
    }

    /// The output format of the current session, once one has started.
    pub fn spec(&self) -> Option<AudioSpec> {
        self.active.as_ref().map(|a| a.spec)
    }

    /// Whether audio is being played out.
    pub fn is_playing(&self) -> bool {
        self.active
            .as_ref()
            .is_some_and(|a| a.clock.is_running() && !a.ended)
    }

    /// Whether the current session has ended and its buffer has been played out.
    pub fn is_ended(&self) -> bool {
        self.active.as_ref().is_some_and(|a| a.ended)
    }

    /// Buffered audio of the emptiest and the fullest substream, in frames.
    pub fn occupancy(&self) -> (i64, i64) {
        match &self.active {
            None => (0, 0),
            Some(a) => occupancy(a),
        }
    }

    /// The watermarks in frames (low, high) at the session's rate.
    pub fn watermarks(&self) -> (i64, i64) {
        let rate = self
            .active
            .as_ref()
            .map_or(self.cfg.default_spec.rate, |a| a.spec.rate);
        let c = MediaClock::new(rate);
        (
            c.frames_in_ms(self.cfg.low_water_ms) as i64,
            c.frames_in_ms(self.cfg.high_water_ms) as i64,
        )
    }

    fn new_active(&mut self, now: Instant, desc: Option<&SessionDesc>, ssrc: u32, pt: u8) -> bool {
        let (spec, channels, bases, ssrcs, fec) = match desc {
            Some(d) => {
                let Some(format) = SampleFormat::from_code(d.format) else {
                    return false;
                };
                let channels: Vec<u16> = d.substreams.iter().map(|s| s.channels as u16).collect();
                let spec = AudioSpec {
                    rate: d.rate,
                    channels: channels.iter().sum(),
                    format,
                };
                (
                    spec,
                    channels,
                    d.substreams
                        .iter()
                        .map(|s| Some(s.ts_base))
                        .collect::<Vec<_>>(),
                    d.substreams.iter().map(|s| s.ssrc).collect::<Vec<_>>(),
                    d.fec_k > 0,
                )
            }
            None => {
                let mut spec = self.cfg.default_spec;
                match pt {
                    rtp::PT_STATIC_L16_STEREO => {
                        spec = AudioSpec {
                            rate: 44_100,
                            channels: 2,
                            format: SampleFormat::S16,
                        }
                    }
                    rtp::PT_STATIC_L16_MONO => {
                        spec = AudioSpec {
                            rate: 44_100,
                            channels: 1,
                            format: SampleFormat::S16,
                        }
                    }
                    _ => {
                        if let Some((f, _)) = format_of_pt(pt, self.cfg.stock_l16_payload_type) {
                            spec.format = f;
                        }
                    }
                }
                (spec, vec![spec.channels], vec![None], vec![ssrc], true)
            }
        };
        if !(MIN_RATE..=MAX_RATE).contains(&spec.rate) || spec.channels == 0 {
            self.malformed += 1;
            return false;
        }
        let clock = MediaClock::new(spec.rate);
        let capacity = clock.frames_in_ms(self.cfg.high_water_ms + self.cfg.headroom_ms) as usize;
        if capacity.saturating_mul(spec.frame_bytes()) > MAX_BUFFER_BYTES {
            // a description (or a forged one) asking for more memory than any sane stream
            self.malformed += 1;
            return false;
        }
        let drift = self.cfg.drift_correction || desc.is_some_and(|d| d.live);
        let subs = ssrcs
            .iter()
            .zip(&channels)
            .zip(&bases)
            .map(|((&ssrc, &ch), &base)| {
                let sub_spec = AudioSpec {
                    rate: spec.rate,
                    channels: ch,
                    format: spec.format,
                };
                let fb = sub_spec.frame_bytes();
                SubstreamRx {
                    ssrc,
                    frame_bytes: fb,
                    ts_base: base,
                    seq: SeqUnwrapper::new(),
                    ts: TsUnwrapper::new(),
                    seen: vec![u64::MAX; SEEN_WINDOW],
                    first_seq: None,
                    fec: fec.then(|| BlockDecoder::new(Box::new(ReedSolomonCodec::new()))),
                    jb: JitterBuffer::new(fb, capacity, 0),
                    concealer: Concealer::new(sub_spec),
                    last_sr_pos: None,
                    last_sr_ntp: 0,
                    last_sr_unix_ns: None,
                    last_sr_at: None,
                    stats: SubstreamStats {
                        ssrc,
                        channels: ch,
                        ..Default::default()
                    },
                    scratch: vec![0; fb * 4096],
                    present: vec![false; 4096],
                    chunk: vec![0; fb * 4096],
                    resampler: drift.then(|| AdaptiveResampler::new(spec.format, ch)),
                    skips: Skips::default(),
                    jitter: 0.0,
                    last_transit: None,
                    reported: (0, 0),
                }
            })
            .collect();
        if let Some(old) = self.active.take() {
            self.retire(old);
        }
        self.flow.restart();
        self.active = Some(Active {
            provisional: desc.is_none(),
            live: desc.is_some_and(|d| d.live),
            spec,
            format: spec.format,
            subs,
            clock: PlayoutClock::new(spec.rate),
            first_arrival: now,
            last_heard: now,
            end_pos: None,
            ended: false,
            in_underrun: false,
            pending: Vec::new(),
            occ_min: i64::MAX,
            occ_max: 0,
            occ_sum: 0.0,
            occ_n: 0,
            underruns: 0,
            lat_sum: 0.0,
            lat_n: 0,
            lat_min: f64::MAX,
            lat_max: f64::MIN,
            drift: drift.then(|| DriftEstimator::new(spec.rate)),
            drift_target: None,
            last_media: None,
            first_start: None,
        });
        self.events.push_back(ReceiverEvent::SessionStarted {
            spec,
            substream_channels: channels,
        });
        true
    }

    fn retire(&mut self, old: Active) {
        let mut s = stats_of(&old, self.flow.stats(), self.malformed, self.foreign);
        if let Some(prev) = self.done.take() {
            s.packets_received += prev.packets_received;
            s.lost += prev.lost;
        }
        self.done = Some(s);
    }

    /// Handles one datagram from the network. Anything malformed or foreign is counted and
    /// dropped; no datagram can make the session panic. Returns whether the datagram belonged
    /// to the current session (the driver answers to the address of such datagrams).
    ///
    /// This form copies the datagram; [`Self::handle_bytes`] takes it without a copy.
    pub fn handle_datagram(&mut self, now: Instant, d: &[u8]) -> bool {
        self.handle_bytes(now, Bytes::copy_from_slice(d))
    }

    /// [`Self::handle_datagram`] for a datagram already in a [`Bytes`] (e.g. split off the
    /// driver's receive arena): the FEC decoder keeps a reference to it, not a copy.
    pub fn handle_bytes(&mut self, now: Instant, d: Bytes) -> bool {
        match rtp::classify(&d) {
            DatagramKind::Foreign => {
                self.malformed += 1;
                false
            }
            DatagramKind::Retransmission => {
                self.foreign += 1;
                false
            }
            DatagramKind::Rtcp => self.handle_rtcp(now, &d),
            DatagramKind::Repair => self.handle_repair(now, &d),
            DatagramKind::Media => self.handle_media(now, &d),
        }
    }

    fn can_start_new(&self) -> bool {
        self.active
            .as_ref()
            .is_none_or(|a| a.ended || (a.provisional && !a.clock.is_running()))
    }

    fn sub_index(&self, ssrc: u32) -> Option<usize> {
        self.active
            .as_ref()?
            .subs
            .iter()
            .position(|s| s.ssrc == ssrc)
    }

    /// A media or repair datagram of no current substream: foreign, unless it was kept for
    /// replay under a session description still to come. Returns false (not ours).
    fn not_ours(&mut self, kept: bool) -> bool {
        if !kept {
            self.foreign += 1;
        }
        false
    }

    /// Keeps a copy of a datagram while the session is provisional and not playing.
    fn keep_pending(&mut self, d: &Bytes) -> bool {
        match self.active.as_mut() {
            Some(a) if a.provisional && !a.clock.is_running() && a.pending.len() < MAX_PENDING => {
                a.pending.push(d.clone());
                true
            }
            _ => false,
        }
    }

    fn handle_media(&mut self, now: Instant, d: &Bytes) -> bool {
        let Ok((h, payload)) = RtpHeader::parse(d) else {
            self.malformed += 1;
            return false;
        };
        let kept = self.keep_pending(d);
        let mut idx = self.sub_index(h.ssrc);
        if idx.is_none()
            && self.active.as_ref().is_none_or(|a| a.ended)
            && format_of_pt(h.payload_type, self.cfg.stock_l16_payload_type).is_some()
        {
            // a stock sender (no session description): accept its stream as it is
            if self.new_active(now, None, h.ssrc, h.payload_type) {
                idx = Some(0);
                self.keep_pending(d);
            }
        }
        let Some(i) = idx else {
            return self.not_ours(kept);
        };
        let a = self
            .active
            .as_mut()
            .expect("index implies an active session");
        a.last_heard = now;
        let rate = a.spec.rate;
        let sub = &mut a.subs[i];
        let ext = sub.seq.extend(h.seq as u64);
        let slot = (ext % SEEN_WINDOW as u64) as usize;
        if sub.seen[slot] == ext {
            sub.stats.duplicate += 1;
            return true;
        }
        sub.seen[slot] = ext;
        sub.first_seq = Some(sub.first_seq.map_or(ext, |f| f.min(ext)));
        sub.stats.packets_received += 1;
        // interarrival jitter: the spread of transit times, in frames (RFC 3550, A.8)
        let arrival = now.as_nanos() as f64 * rate as f64 / 1e9;
        let transit = arrival - h.timestamp as f64;
        if let Some(last) = sub.last_transit {
            let d = (transit - last).abs();
            // a timestamp wrap or a sender restart is not jitter
            if d < rate as f64 {
                sub.jitter += (d - sub.jitter) / 16.0;
            }
        }
        sub.last_transit = Some(transit);
        let mut recovered = std::mem::take(&mut self.recovered_scratch);
        if let Some(fec) = &mut sub.fec {
            fec.push_source(ext, d, &mut recovered);
            fec.expire_before(ext.saturating_sub(SEEN_WINDOW as u64 / 2));
        }
        self.depacketize(now, i, &h, payload);
        self.deliver_recovered(now, i, &mut recovered);
        self.recovered_scratch = recovered;
        if let Some(req) = self.flow.on_media(now) {
            self.send_request(req);
        }
        self.after_write(now);
        true
    }

    fn handle_repair(&mut self, now: Instant, d: &Bytes) -> bool {
        let Ok((h, shard)) = RepairHeader::parse(d) else {
            self.malformed += 1;
            return false;
        };
        let kept = self.keep_pending(d);
        let Some(i) = self.sub_index(h.ssrc) else {
            return self.not_ours(kept);
        };
        let a = self
            .active
            .as_mut()
            .expect("index implies an active session");
        a.last_heard = now;
        let sub = &mut a.subs[i];
        sub.stats.repair_received += 1;
        let Some(fec) = &mut sub.fec else {
            return true;
        };
        if sub.seq.highest().is_none() {
            // no source packet yet to anchor the sequence numbers
            sub.seq.extend(h.base_seq as u64);
        }
        let base = sub.seq.peek(h.base_seq as u64);
        let mut recovered = std::mem::take(&mut self.recovered_scratch);
        fec.push_repair(base, &h, shard, &mut recovered);
        self.deliver_recovered(now, i, &mut recovered);
        self.recovered_scratch = recovered;
        self.after_write(now);
        true
    }

    fn deliver_recovered(&mut self, now: Instant, i: usize, recovered: &mut Vec<Bytes>) {
        for r in recovered.drain(..) {
            let a = self.active.as_mut().expect("active");
            let sub = &mut a.subs[i];
            if let Ok((h, payload)) = RtpHeader::parse(&r) {
                let ext = sub.seq.peek(h.seq as u64);
                let slot = (ext % SEEN_WINDOW as u64) as usize;
                if sub.seen[slot] == ext {
                    continue;
                }
                sub.seen[slot] = ext;
                sub.stats.recovered += 1;
                self.depacketize(now, i, &h, payload);
            }
        }
    }

    /// The de-interleaver: places a media packet's frames at their positions in the jitter
    /// buffer (every D-th position for an interleaved packet). Takes the header its caller
    /// already parsed.
    fn depacketize(&mut self, now: Instant, i: usize, h: &RtpHeader, payload: &[u8]) {
        let a = self.active.as_mut().expect("active");
        let started = a.clock.is_running();
        let format = a.format;
        let live = a.live;
        let stock_l16 = self.cfg.stock_l16_payload_type.filter(|_| a.provisional);
        let sub = &mut a.subs[i];
        let Some((f, interleaved)) = format_of_pt(h.payload_type, stock_l16) else {
            self.foreign += 1;
            return;
        };
        if f != format {
            self.malformed += 1;
            return;
        }
        let base = *sub.ts_base.get_or_insert(h.timestamp);
        let raw = sub.ts.extend(h.timestamp.wrapping_sub(base) as u64) as i64 - (1i64 << 32);
        let mut pos = sub.skips.map(raw);
        if live && h.marker && sub.stats.packets_received > 1 && pos > sub.jb.end() {
            // a live sender resumed after dropping audio: close the hole, keep the latency
            let gap = pos - sub.jb.end();
            sub.skips = Skips {
                at: raw,
                before: sub.skips.total,
                total: sub.skips.total + gap,
            };
            pos = sub.skips.map(raw);
            sub.stats.frames_skipped += gap as u64;
        }
        let (pos, stride, samples) = if interleaved {
            let Ok((ih, samples)) = InterleaveHeader::parse(payload) else {
                self.malformed += 1;
                return;
            };
            if ih.check_samples(samples, sub.frame_bytes).is_err() {
                self.malformed += 1;
                return;
            }
            (pos + ih.index as i64, ih.depth as usize, samples)
        } else {
            (pos, 1, payload)
        };
        if samples.len() % sub.frame_bytes != 0 {
            self.malformed += 1;
            return;
        }
        let capacity_quarter = (sub.jb.capacity() / 4) as i64;
        if !started
            && a.subs
                .iter()
                .all(|s| s.jb.end() == s.jb.read_pos() && s.jb.read_pos() == 0)
            && pos > capacity_quarter
        {
            // joining a stream that started long ago: begin where it is now
            for s in &mut a.subs {
                s.jb.restart_at(pos);
            }
        }
        let sub = &mut a.subs[i];
        if !started && pos < sub.jb.read_pos() {
            // an earlier packet overtaken before playback: start from it instead
            let p = pos;
            for s in &mut a.subs {
                s.jb.rewind_to(p);
            }
        }
        let _ = now;
        a.last_media = Some((now, (samples.len() / a.subs[i].frame_bytes) as i64));
        let sub = &mut a.subs[i];
        match sub.jb.write(pos, stride, samples) {
            Write::Stored { late } => {
                if late > 0 {
                    sub.stats.late += 1;
                }
            }
            Write::Late => sub.stats.late += 1,
            Write::Overflow => sub.stats.overflow += 1,
        }
    }

    fn after_write(&mut self, now: Instant) {
        let (low, high) = self.watermarks();
        let Some(a) = self.active.as_mut() else {
            return;
        };
        let (emptiest, fullest) = occupancy(a);
        a.occ_max = a.occ_max.max(fullest);
        // a stream without a description may be a stock sender's, or an isostream sender
        // whose first description was lost: give the next description time to arrive
        let described = !a.provisional || now - a.first_arrival >= PROVISIONAL_GRACE;
        if !a.clock.is_running()
            && !a.ended
            && ((emptiest >= low && described) || fullest >= high || a.end_pos.is_some())
        {
            a.clock.start(now);
            a.first_start.get_or_insert(now);
            self.events.push_back(ReceiverEvent::PlaybackStarted);
        }
        if let Some(req) = self.flow.update(now, fullest, low, high) {
            self.send_request(req);
        }
    }

    fn send_request(&mut self, req: Request) {
        // PAUSE/RESUME move the buffer for reasons other than clock drift
        if let Some(d) = self.active.as_mut().and_then(|a| a.drift.as_mut()) {
            d.restart_window();
        }
        self.rtcp_buf.clear();
        let kind = if req.pause {
            rtcp::APP_PAUSE
        } else {
            rtcp::APP_RESUME
        };
        rtcp::write_flow(&mut self.rtcp_buf, kind, self.ssrc, req.number);
        self.control.push_back(self.rtcp_buf.split().freeze());
    }

    fn handle_rtcp(&mut self, now: Instant, d: &[u8]) -> bool {
        let mut ours = false;
        let mut bye = false;
        for p in rtcp::parse_compound(d) {
            let p = match p {
                Ok(p) => p,
                Err(_) => {
                    self.malformed += 1;
                    break;
                }
            };
            match p {
                RtcpPacket::Desc { desc, .. } => {
                    let known = self.active.as_ref().is_some_and(|a| {
                        !a.provisional
                            && a.subs
                                .iter()
                                .map(|s| s.ssrc)
                                .eq(desc.substreams.iter().map(|s| s.ssrc))
                    });
                    if known {
                        ours = true;
                    } else if self.can_start_new() {
                        // media that came before any description started a provisional
                        // session (a stock sender, or an isostream sender whose first
                        // description was lost): replace it, replaying what it received
                        let old = self
                            .active
                            .take_if(|a| a.provisional && !a.clock.is_running());
                        ours = self.new_active(now, Some(&desc), desc.substreams[0].ssrc, 0);
                        match old {
                            Some(mut old) if ours => {
                                for d in std::mem::take(&mut old.pending) {
                                    self.handle_bytes(now, d);
                                }
                            }
                            Some(old) => self.active = Some(old),
                            None => {}
                        }
                    }
                }
                RtcpPacket::SenderReport(sr) => {
                    if let Some(i) = self.sub_index(sr.ssrc) {
                        ours = true;
                        let sub = &mut self.active.as_mut().expect("active").subs[i];
                        if let Some(base) = sub.ts_base {
                            let rel = sr.rtp_ts.wrapping_sub(base);
                            let raw = sub.ts.peek(rel as u64) as i64 - (1i64 << 32);
                            sub.last_sr_pos = Some(sub.skips.map(raw));
                        }
                        sub.last_sr_ntp = (sr.ntp >> 16) as u32;
                        sub.last_sr_unix_ns = Some(rtcp::unix_nanos_from_ntp(sr.ntp));
                        sub.last_sr_at = Some(now);
                    }
                }
                RtcpPacket::Bye { ssrc } if self.sub_index(ssrc).is_some() => {
                    ours = true;
                    bye = true;
                }
                RtcpPacket::Ack { request, ssrc } if self.sub_index(ssrc).is_some() => {
                    ours = true;
                    self.flow.on_ack(request);
                }
                _ => {}
            }
        }
        if !ours {
            self.foreign += 1;
            return false;
        }
        if let Some(a) = self.active.as_mut() {
            a.last_heard = now;
            if bye && a.end_pos.is_none() {
                let sr_end = a.subs.iter().filter_map(|s| s.last_sr_pos).max();
                let data_end = a.subs.iter().map(|s| s.jb.end()).max().unwrap_or(0);
                a.end_pos = Some(sr_end.unwrap_or(data_end).max(data_end));
            }
        }
        self.after_write(now);
        true
    }

    /// Frames the playout clock says are due at `now` (0 before playback starts, and never
    /// past the end of an ended stream).
    pub fn due_frames(&self, now: Instant) -> usize {
        let Some(a) = &self.active else { return 0 };
        if a.ended {
            return 0;
        }
        let mut n = a.clock.due(now);
        if let Some(end) = a.end_pos {
            n = n.min((end - a.subs[0].jb.read_pos()).max(0) as u64);
        }
        n as usize
    }

    /// Plays out the next frames into `out` (wire frames of [`Self::spec`], all substreams'
    /// channels in order): as many as fit, but never past the end of an ended stream, and
    /// never past the newest audio received (an underrun holds the due frames back until
    /// audio arrives or the stream ends). Missing audio is interpolated or concealed in
    /// place, so the timeline never slips. Returns the frames written (0 before playback).
    pub fn playout(&mut self, now: Instant, out: &mut [u8]) -> usize {
        let (low, _) = self.watermarks();
        let Some(a) = self.active.as_mut() else {
            return 0;
        };
        if !a.clock.is_running() || a.ended {
            return 0;
        }
        let out_fb = a.spec.frame_bytes();
        let mut n = out.len() / out_fb;
        let read_pos = a.subs[0].jb.read_pos();
        if let Some(end) = a.end_pos {
            n = n.min((end - read_pos).max(0) as usize);
        } else {
            // Underrun: nothing has arrived for the frames that are due. They are held back,
            // not concealed yet: if audio arrives, they are played (concealed where still
            // missing) and the timeline never slips; if the stream turns out to have ended
            // (a stock sender's last packet, no BYE), no invented audio follows the end.
            let data_end = a.subs.iter().map(|s| s.jb.end()).max().unwrap_or(read_pos);
            let avail = (data_end - read_pos).max(0) as usize;
            if avail < n {
                if !a.in_underrun {
                    a.underruns += 1;
                    a.in_underrun = true;
                }
                n = avail;
                if a.live {
                    // a live stream does not owe the time it was dry: play what there is,
                    // then wait for the low-water mark again, keeping the latency
                    a.clock.stop();
                    if let Some(d) = a.drift.as_mut() {
                        d.restart_window();
                    }
                }
            } else if avail as i64 >= low {
                a.in_underrun = false;
            }
        }
        let mut done = 0;
        while done < n {
            let chunk = (n - done).min(4096 - LOOKAHEAD);
            let (emptiest, _) = occupancy(a);
            a.occ_min = a.occ_min.min(emptiest);
            // capture time of the frame about to play, from the last sender report
            let s0 = &a.subs[0];
            if let (Some(sr_ns), Some(sr_pos)) = (s0.last_sr_unix_ns, s0.last_sr_pos) {
                let pos = s0.jb.read_pos();
                let captured = sr_ns + (pos - sr_pos) as i128 * 1_000_000_000 / a.spec.rate as i128;
                let played = self.cfg.wallclock_at_zero_ns as i128 + now.as_nanos() as i128;
                let ms = (played - captured) as f64 / 1e6;
                a.lat_sum += ms;
                a.lat_n += 1;
                a.lat_min = a.lat_min.min(ms);
                a.lat_max = a.lat_max.max(ms);
            }
            a.occ_sum += emptiest as f64;
            a.occ_n += 1;
            let ratio = a.drift.as_ref().map_or(1.0, DriftEstimator::ratio);
            let mut off = 0;
            for sub in &mut a.subs {
                let fb = sub.frame_bytes;
                let SubstreamRx {
                    jb,
                    concealer,
                    scratch,
                    present,
                    stats,
                    chunk: buf,
                    resampler,
                    ..
                } = sub;
                let dst = &mut buf[..chunk * fb];
                let mut pull = |b: &mut [u8]| render(jb, concealer, scratch, present, stats, fb, b);
                match resampler {
                    Some(r) => {
                        r.process(ratio, pull, dst);
                    }
                    None => {
                        pull(dst);
                    }
                }
                for f in 0..chunk {
                    let at = (done + f) * out_fb + off;
                    out[at..at + fb].copy_from_slice(&dst[f * fb..(f + 1) * fb]);
                }
                off += fb;
            }
            a.clock.played(chunk as u64);
            done += chunk;
            let (emptiest, _) = occupancy(a);
            if let Some(d) = a.drift.as_mut() {
                // the buffer level the controller holds: what is buffered, plus what the
                // resampler holds, smoothed between packet arrivals (occupancy moves in
                // packet-sized steps; sampling it raw would bias a small drift)
                let rate = a.spec.rate as f64;
                let held = a.subs[0]
                    .resampler
                    .as_ref()
                    .map_or(0.0, |r| r.buffered_input_frames());
                let since = a.last_media.map_or(0.0, |(t, frames)| {
                    ((now - t).as_secs_f64() * rate).min(frames as f64)
                });
                let level = (emptiest as f64 + since + held).round() as i64;
                let playing_for = a.clock.frames_played() as f64 / rate;
                if a.drift_target.is_none() && playing_for >= DRIFT_TARGET_AFTER_S {
                    a.drift_target = d.filtered_occupancy().map(|f| f.round() as i64);
                }
                let target = a
                    .drift_target
                    .or(d.filtered_occupancy().map(|f| f.round() as i64))
                    .unwrap_or(level);
                d.update(now, level, target);
            }
        }
        let ended = self.check_end();
        if !ended {
            self.after_write(now);
        }
        n
    }

    /// Marks the session ended once its end is known and played out. Returns whether it has.
    fn check_end(&mut self) -> bool {
        let Some(a) = self.active.as_mut() else {
            return false;
        };
        if !a.ended && a.end_pos.is_some_and(|end| a.subs[0].jb.read_pos() >= end) {
            a.ended = true;
            self.events.push_back(ReceiverEvent::SessionEnded);
        }
        a.ended
    }

    /// Handles timers: request retransmissions, receiver reports, the idle timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(req) = self.flow.on_timeout(now) {
            self.send_request(req);
        }
        let Some(a) = self.active.as_mut() else {
            return;
        };
        if !a.ended && a.end_pos.is_none() && now - a.last_heard >= self.cfg.idle_timeout {
            // the sender went quiet without BYE (a stock sender, or it died): play what is left
            let data_end = a.subs.iter().map(|s| s.jb.end()).max().unwrap_or(0);
            a.end_pos = Some(data_end);
            if !a.clock.is_running() {
                a.clock.start(now);
                a.first_start.get_or_insert(now);
                self.events.push_back(ReceiverEvent::PlaybackStarted);
            }
        }
        if self.check_end() {
            return;
        }
        let Some(a) = self.active.as_mut() else {
            return;
        };
        if self.next_report.is_none_or(|t| now >= t) {
            self.next_report = Some(now + self.cfg.report_interval);
            let blocks: Vec<ReportBlock> = a
                .subs
                .iter_mut()
                .map(|s| {
                    let highest = s.seq.highest().unwrap_or(0);
                    let expected = s.first_seq.map_or(0, |f| highest + 1 - f);
                    let received = s.stats.packets_received;
                    let (exp0, rec0) = s.reported;
                    s.reported = (expected, received);
                    let exp_i = expected.saturating_sub(exp0);
                    let lost_i = exp_i.saturating_sub(received.saturating_sub(rec0));
                    ReportBlock {
                        ssrc: s.ssrc,
                        fraction_lost: (lost_i * 256).checked_div(exp_i).unwrap_or(0).min(255)
                            as u8,
                        cumulative_lost: (expected as i64 - received as i64) as i32,
                        // the unwrapper starts one cycle up: report cycles from 0
                        highest_seq: highest.saturating_sub(1 << 16) as u32,
                        jitter: s.jitter as u32,
                        last_sr: s.last_sr_ntp,
                        delay_since_last_sr: s.last_sr_at.map_or(0, |t| {
                            ((now - t).as_nanos() * 65_536 / 1_000_000_000) as u32
                        }),
                    }
                })
                .collect();
            self.rtcp_buf.clear();
            rtcp::write_receiver_report(&mut self.rtcp_buf, self.ssrc, &blocks);
            rtcp::write_sdes_cname(&mut self.rtcp_buf, self.ssrc, "isostream-recv");
            self.control.push_back(self.rtcp_buf.split().freeze());
        }
    }

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let mut t: Option<Instant> = self.flow.deadline();
        if let Some(a) = &self.active {
            if !a.ended {
                let r = self.next_report.unwrap_or(now);
                t = Some(t.map_or(r, |t| t.min(r)));
                if a.end_pos.is_none() {
                    let idle = a.last_heard + self.cfg.idle_timeout;
                    t = Some(t.map_or(idle, |t| t.min(idle)));
                }
            }
        }
        t
    }

    /// The next datagram to send to the sender, if any. Call until it returns `None`.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.control.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ReceiverEvent> {
        self.events.pop_front()
    }

    /// Counters of the current (or last) session.
    pub fn stats(&self) -> ReceiverStats {
        match &self.active {
            Some(a) => stats_of(a, self.flow.stats(), self.malformed, self.foreign),
            None => ReceiverStats {
                malformed: self.malformed,
                foreign: self.foreign,
                ..self.done.clone().unwrap_or_default()
            },
        }
    }
}

/// Pulls `buf.len() / fb` frames of one substream from its jitter buffer, repairs what is
/// missing, and consumes them: the input side of playout (and of the resampler).
fn render(
    jb: &mut JitterBuffer,
    concealer: &mut Concealer,
    scratch: &mut [u8],
    present: &mut [bool],
    stats: &mut SubstreamStats,
    fb: usize,
    buf: &mut [u8],
) -> usize {
    let frames = buf.len() / fb;
    let room = present.len() - LOOKAHEAD;
    let mut done = 0;
    while done < frames {
        let k = (frames - done).min(room);
        let total = k + LOOKAHEAD;
        jb.peek(0, &mut scratch[..total * fb], &mut present[..total]);
        let counts = concealer.process(&mut scratch[..total * fb], &present[..total], LOOKAHEAD);
        stats.frames_interpolated += counts.interpolated;
        stats.frames_concealed += counts.concealed;
        buf[done * fb..(done + k) * fb].copy_from_slice(&scratch[..k * fb]);
        jb.advance(k);
        done += k;
    }
    frames
}

fn occupancy(a: &Active) -> (i64, i64) {
    let mut lo = i64::MAX;
    let mut hi = 0;
    for s in &a.subs {
        let o = s.jb.occupancy();
        lo = lo.min(o);
        hi = hi.max(o);
    }
    (if lo == i64::MAX { 0 } else { lo }, hi)
}

fn stats_of(a: &Active, flow: FlowStats, malformed: u64, foreign: u64) -> ReceiverStats {
    let clock = MediaClock::new(a.spec.rate);
    let mut s = ReceiverStats {
        malformed,
        foreign,
        flow,
        frames_played: a.clock.frames_played(),
        underruns: a.underruns,
        buffer_min_ms: if a.occ_n == 0 {
            0.0
        } else {
            clock.ms_of(a.occ_min.max(0) as u64)
        },
        buffer_mean_ms: if a.occ_n == 0 {
            0.0
        } else {
            clock.ms_of(0) + a.occ_sum / a.occ_n as f64 * 1000.0 / a.spec.rate as f64
        },
        buffer_max_ms: clock.ms_of(a.occ_max.max(0) as u64),
        startup_delay_ms: a
            .first_start
            .map_or(0.0, |t| (t - a.first_arrival).as_secs_f64() * 1000.0),
        drift_ppm: a.drift.as_ref().map(DriftEstimator::estimate_ppm),
        drift_correction_ppm: a.drift.as_ref().map(DriftEstimator::correction_ppm),
        latency_ms: (a.lat_n > 0).then(|| LatencyStats {
            mean: a.lat_sum / a.lat_n as f64,
            min: a.lat_min,
            max: a.lat_max,
        }),
        skew_frames: {
            let r: Vec<i64> = a.subs.iter().map(|s| s.jb.read_pos()).collect();
            r.iter().max().unwrap_or(&0) - r.iter().min().unwrap_or(&0)
        },
        ..Default::default()
    };
    let mut expected_total = 0;
    for sub in &a.subs {
        let mut st = sub.stats.clone();
        let highest = sub.seq.highest().unwrap_or(0);
        st.packets_expected = sub.first_seq.map_or(0, |f| highest + 1 - f);
        st.lost = st.packets_expected.saturating_sub(st.packets_received);
        st.occupancy_frames = sub.jb.occupancy();
        st.jitter_ms = sub.jitter * 1000.0 / a.spec.rate as f64;
        expected_total += st.packets_expected;
        s.packets_received += st.packets_received;
        s.lost += st.lost;
        s.recovered += st.recovered;
        s.repair_received += st.repair_received;
        s.late += st.late;
        s.duplicate += st.duplicate;
        s.overflow += st.overflow;
        s.frames_interpolated += st.frames_interpolated;
        s.frames_concealed += st.frames_concealed;
        s.substreams.push(st);
    }
    s.unrecoverable = s.lost.saturating_sub(s.recovered);
    s.residual_loss = if expected_total == 0 {
        0.0
    } else {
        s.unrecoverable as f64 / expected_total as f64
    };
    let _ = Duration::ZERO;
    s
}

/// The calling convention shared with the sender ([`isostream_transport::sans_io`]).
impl ReceiverSession {
    /// Handles one input: a datagram from the network (anything malformed or foreign is
    /// counted and dropped; the sender's address is learned from the datagrams of the
    /// current session, so replies go where its media comes from, through NAT and relays),
    /// or a timer. A receiver takes no audio input: [`Input::Audio`] and
    /// [`Input::EndOfInput`] are ignored.
    pub fn handle_input(&mut self, input: Input<'_>) {
        self.now = self.now.max(input.now());
        match input {
            Input::Datagram { now, from, data } => {
                if self.handle_bytes(now, data) {
                    self.peer = Some(from);
                }
            }
            Input::Timeout(now) => self.handle_timeout(now),
            Input::Audio { .. } | Input::EndOfInput(_) => {}
        }
    }

    /// The next thing to do: a datagram for the sender, an event, or the instant to be woken
    /// ([`Output::Timeout`]). Control datagrams made before any sender was heard from are
    /// dropped: there is nobody to send them to.
    pub fn poll_output(&mut self) -> Output<ReceiverEvent> {
        while let Some(data) = self.poll_transmit() {
            if let Some(to) = self.peer {
                return Output::Transmit(Transmit { to, data });
            }
        }
        match self.poll_event() {
            Some(e) => Output::Event(e),
            None => Output::Timeout(self.poll_timeout(self.now)),
        }
    }
}
