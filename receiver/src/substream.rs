//! The set of a session's substreams ([`Substreams`]), which share one timeline and one
//! output, and the path of a packet down one substream's stages ([`SubstreamRx`]).
//!
//! ```text
//! receive:  media ─▶ arrival ─▶ FEC decoder ─▶ [Opus decoder] ─▶ de-interleaver ─▶ jitter buffer
//!           repair ─┘   ▲ rebuilt    │
//!           RTX ────────┤ (original) │
//!                       └────────────┘ (duplicate window)
//! playout:  jitter buffer ─▶ concealer ─▶ resampler ─▶ channel merge (all substreams)
//! ```
//!
//! Each stage is its own file. A packet goes down the chain once: [`crate::arrival`]
//! (duplicates, jitter, report figures) -> [`crate::fec_decoder`] (rebuilt packets come out;
//! they pass the arrival stage's duplicate window, the one thing told back up the chain) ->
//! [`crate::deinterleaver`] (timestamps to positions, checks, the one copy into) ->
//! [`crate::jitter_buffer`]. At playout, [`SubstreamRx`] pulls frames from the jitter buffer
//! through the [`crate::concealer`] (which repairs what is missing) and, when drift is
//! compensated, the resampler ([`crate::drift::AdaptiveResampler`]); [`crate::merge`]
//! interleaves the substreams' channels into the output.
//!
//! Before playback starts, the substreams' buffers move together: a receiver that joins a
//! running stream starts where it is, and a packet overtaken before playback moves the
//! start back to it ([`Substreams`]).
//!
//! This file chains the stages; the pieces beside it:
//!
//! - `context`: what the session tells the chain about each datagram ([`ReceiveContext`]),
//!   a leaf the other pieces read.
//! - `stages`: one substream's stages ([`SubstreamRx`]), their memory bound and counters,
//!   and the state of an Opus substream's intake (its decoder).
//! - `retransmission`: the original of an RFC 4588 retransmission, rebuilt and sent down
//!   the chain.
//! - `opus_intake` (feature `opus`): Opus packets through the decoder, and the decoder's
//!   concealment of holes the playout reaches.
//!
//! The session's admission of a layout ([`Layout::admit`]) stands here too, beside
//! [`Substreams::memory_bytes`] that it measures with.
//! - `feedback`: NACKs, report blocks, sender reports and the round trip.

mod context;
mod feedback;
#[cfg(feature = "opus")]
mod opus_intake;
mod retransmission;
mod stages;

use bytes::{Bytes, BytesMut};
use isostream_media::AudioSpec;
use isostream_transport::fec::{RepairHeader, MAX_SHARDS};
use isostream_transport::rtcp::ReportBlock;
use isostream_transport::rtp::RtpHeader;
use isostream_transport::time::{Duration, Instant, MediaClock};

use crate::budget::{MemoryBudget, OverBudget};
use crate::config::ReceiverConfig;
use crate::counters::{Drops, SubstreamStats};
use crate::deinterleaver::CaptureMapping;
use crate::layout::Layout;
use crate::merge::ChannelMerge;

pub use crate::render::{LOOKAHEAD, MAX_CHUNK_FRAMES};
pub use context::{ReceiveContext, MAX_LIVE_HOLE_S};
pub use stages::SubstreamRx;

/// The substreams of a session, in output order. See the module documentation.
#[derive(Debug)]
pub struct Substreams {
    subs: Vec<SubstreamRx>,
    merge: ChannelMerge,
    /// Rebuilt datagrams of the packet being handled (reused).
    rebuilt: Vec<Bytes>,
    /// When the newest media packet was written, and its frames.
    last_media: Option<(Instant, i64)>,
    /// Report blocks being built (reused).
    blocks: Vec<ReportBlock>,
    /// Sequence numbers to ask for (reused).
    nack_scratch: Vec<u16>,
    /// Where rebuilt originals of retransmissions are written.
    arena: BytesMut,
    /// Decoded Opus audio on its way to a jitter buffer (reused).
    #[cfg(feature = "opus")]
    pcm: Vec<u8>,
    /// The session's media are Opus and this build cannot decode them.
    #[cfg(not(feature = "opus"))]
    _opus: (),
}

impl Substreams {
    /// The substreams of `layout`, each with a jitter buffer of `capacity` frames and, if
    /// `resample`, a resampler.
    pub fn new(layout: &Layout, capacity: usize, resample: bool) -> Self {
        let subs: Vec<SubstreamRx> = layout
            .substreams
            .iter()
            .map(|s| {
                let spec = AudioSpec {
                    channels: s.channels,
                    ..layout.spec
                };
                let fec = layout.fec_limits(s.channels);
                let rx = SubstreamRx::new(s.ssrc, spec, s.ts_base, capacity, fec, resample);
                #[cfg(feature = "opus")]
                let rx = if layout.opus { rx.with_opus() } else { rx };
                match s.rtx_ssrc {
                    Some(r) => rx.with_nack(r, &layout.framing, layout.spec.rate),
                    None => rx,
                }
            })
            .collect();
        Substreams {
            merge: ChannelMerge::new(subs.iter().map(|s| s.frame_bytes)),
            subs,
            rebuilt: Vec::new(),
            last_media: None,
            blocks: Vec::new(),
            nack_scratch: Vec::new(),
            arena: BytesMut::new(),
            #[cfg(feature = "opus")]
            pcm: Vec::new(),
            #[cfg(not(feature = "opus"))]
            _opus: (),
        }
    }

    /// The most [`Substreams::new`] with these arguments allocates, and what its substreams
    /// allocate while they play, in bytes: every substream's stages and the set's own
    /// buffers (rebuilt packets, report blocks, NACK lists, the arena of retransmitted
    /// originals).
    pub fn memory_bytes(layout: &Layout, capacity: usize, resample: bool) -> usize {
        let own = std::mem::size_of::<Self>()
            + 2 * MAX_SHARDS * std::mem::size_of::<Bytes>()
            + 2 * crate::nack::MAX_MISSING * std::mem::size_of::<u16>()
            + 2 * (64 << 10).max(layout.packet_bytes(layout.spec.channels))
            + layout.substreams.len() * (64 + std::mem::size_of::<ReportBlock>() * 2);
        layout.substreams.iter().fold(own, |n, s| {
            let spec = AudioSpec {
                channels: s.channels,
                ..layout.spec
            };
            let fec = layout.fec_limits(s.channels);
            let opus = if layout.opus {
                crate::layout::opus_memory_bytes(s.channels)
            } else {
                0
            };
            n.saturating_add(SubstreamRx::memory_bytes(
                spec,
                capacity,
                fec.as_ref(),
                resample,
                s.rtx_ssrc.is_some(),
            ))
            .saturating_add(opus)
        })
    }

    /// Frees every substream's buffers once the session has ended (their counters stay;
    /// at `rate` Hz).
    pub fn release(&mut self, rate: u32) {
        for s in &mut self.subs {
            s.release(rate);
        }
        self.rebuilt = Vec::new();
        self.blocks = Vec::new();
        self.nack_scratch = Vec::new();
        self.arena = BytesMut::new();
    }

    /// Bytes of an output frame (all substreams' channels).
    pub fn out_frame_bytes(&self) -> usize {
        self.merge.out_frame_bytes()
    }

    /// The index of substream `ssrc`.
    pub fn index_of(&self, ssrc: u32) -> Option<usize> {
        self.subs.iter().position(|s| s.ssrc == ssrc)
    }

    /// The substreams' SSRCs, in output order.
    pub fn ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.subs.iter().map(|s| s.ssrc)
    }

    /// A media packet of substream `i` (header `h`, `payload`, the whole `datagram`) arrived
    /// at `now`. Returns false if it was a duplicate.
    #[allow(clippy::too_many_arguments)]
    pub fn on_media(
        &mut self,
        now: Instant,
        i: usize,
        h: &RtpHeader,
        payload: &[u8],
        datagram: &Bytes,
        ctx: &ReceiveContext,
        drops: &mut Drops,
    ) -> bool {
        let sub = &mut self.subs[i];
        let Some(ext) = sub.arrival.on_media(now, h.seq, h.timestamp) else {
            return false;
        };
        if let Some(n) = &mut sub.nack {
            let jitter = Duration::from_nanos(
                (sub.arrival.jitter_frames() * 1e9 / sub.arrival.rate() as f64) as u64,
            );
            n.on_arrival(now, ext, jitter);
        }
        let mut rebuilt = std::mem::take(&mut self.rebuilt);
        if let Some(fec) = &mut sub.fec {
            fec.on_source(ext, datagram, &mut rebuilt);
        }
        if let Some(pos) = self.deliver(now, i, h, payload, ctx, drops) {
            if let Some(n) = &mut self.subs[i].nack {
                n.on_placed(ext, pos);
            }
        }
        self.deliver_rebuilt(now, i, &mut rebuilt, ctx, drops);
        self.rebuilt = rebuilt;
        true
    }

    /// A repair packet of substream `i` arrived at `now`. Returns false if the substream
    /// decodes no FEC (the packet is only counted).
    pub fn on_repair(
        &mut self,
        now: Instant,
        i: usize,
        h: &RepairHeader,
        shard: &[u8],
        ctx: &ReceiveContext,
        drops: &mut Drops,
    ) -> bool {
        let sub = &mut self.subs[i];
        sub.arrival.on_repair();
        let Some(fec) = &mut sub.fec else {
            return false;
        };
        let base = sub.arrival.repair_base(h.base_seq);
        let mut rebuilt = std::mem::take(&mut self.rebuilt);
        fec.on_repair(base, h, shard, &mut rebuilt);
        self.deliver_rebuilt(now, i, &mut rebuilt, ctx, drops);
        self.rebuilt = rebuilt;
        true
    }

    /// Rebuilt datagrams: those the arrival stage has not seen go down the chain.
    fn deliver_rebuilt(
        &mut self,
        now: Instant,
        i: usize,
        rebuilt: &mut Vec<Bytes>,
        ctx: &ReceiveContext,
        drops: &mut Drops,
    ) {
        for r in rebuilt.drain(..) {
            let Ok((h, payload)) = RtpHeader::parse(&r) else {
                continue;
            };
            if let Some(ext) = self.subs[i].arrival.admit_rebuilt(h.seq) {
                if let Some(n) = &mut self.subs[i].nack {
                    n.on_rebuilt(ext);
                }
                self.deliver(now, i, &h, payload, ctx, drops);
            }
        }
    }

    /// Drops the oldest `frames` frames of every substream (a live stream that ran dry
    /// restarting at its latency); counted as dropped.
    pub fn discard(&mut self, frames: usize) {
        for s in &mut self.subs {
            s.jb.advance(frames);
            s.frames_dropped += frames as u64;
        }
    }

    /// De-interleaves a media packet of substream `i` into its jitter buffer. Returns the
    /// position of its first frame, if it was placed.
    fn deliver(
        &mut self,
        now: Instant,
        i: usize,
        h: &RtpHeader,
        payload: &[u8],
        ctx: &ReceiveContext,
        drops: &mut Drops,
    ) -> Option<i64> {
        #[cfg(feature = "opus")]
        if self.subs[i].opus.is_some() {
            return self.deliver_opus(now, i, h, payload, ctx, drops);
        }
        self.deliver_pcm(Some(now), i, h, payload, ctx, drops)
    }

    /// Writes PCM frames of substream `i` into its jitter buffer (`now`: when they arrived,
    /// `None` for audio concealed at playout).
    fn deliver_pcm(
        &mut self,
        now: Option<Instant>,
        i: usize,
        h: &RtpHeader,
        payload: &[u8],
        ctx: &ReceiveContext,
        drops: &mut Drops,
    ) -> Option<i64> {
        let p = self.subs[i].place(h, payload, ctx, drops)?;
        if !ctx.started {
            self.align_start(i, p.pos);
        }
        let sub = &mut self.subs[i];
        let end = sub.jb.end();
        sub.deint.write(&p, &mut sub.jb);
        if let Some(now) = now.filter(|_| sub.jb.end() > end) {
            // the newest audio moved on (a late, rebuilt or retransmitted packet filling a
            // hole does not tell how far the sender is)
            self.last_media = Some((now, (p.frames.len() / sub.frame_bytes) as i64));
        }
        Some(p.pos)
    }

    /// Before playback, a packet of substream `i` at `pos` may move every buffer's start: a
    /// receiver joining a stream that started long ago begins where it is now, and an
    /// earlier packet overtaken before playback becomes the start.
    fn align_start(&mut self, i: usize, pos: i64) {
        let quarter = (self.subs[i].jb.capacity() / 4) as i64;
        if self
            .subs
            .iter()
            .all(|s| s.jb.end() == s.jb.read_pos() && s.jb.read_pos() == 0)
            && pos > quarter
        {
            for s in &mut self.subs {
                s.jb.restart_at(pos);
            }
        }
        if pos < self.subs[i].jb.read_pos() {
            for s in &mut self.subs {
                s.jb.rewind_to(pos);
            }
        }
    }

    /// Buffered audio of the emptiest and the fullest substream, in frames.
    pub fn occupancy(&self) -> (i64, i64) {
        let mut lo = i64::MAX;
        let mut hi = 0;
        for s in &self.subs {
            let o = s.jb.occupancy();
            lo = lo.min(o);
            hi = hi.max(o);
        }
        (if lo == i64::MAX { 0 } else { lo }, hi)
    }

    /// The position of the next frame to play (all substreams share it), in frames.
    pub fn read_pos(&self) -> i64 {
        self.subs[0].jb.read_pos()
    }

    /// One past the highest position any substream has written, in frames.
    pub fn data_end(&self) -> i64 {
        self.subs.iter().map(|s| s.jb.end()).max().unwrap_or(0)
    }

    /// Whether any media packet reached a substream (received, rebuilt or retransmitted).
    pub fn any_media(&self) -> bool {
        self.subs.iter().any(|s| {
            let c = s.arrival.counts();
            c.received + c.rebuilt + c.retransmitted > 0
        })
    }

    /// How far before the newest audio the stream's end may lie, in frames: 0 for PCM; for
    /// Opus, whose last packet is padded to a whole frame, up to one packet (120 ms).
    pub fn padded_tail_frames(&self) -> i64 {
        #[cfg(feature = "opus")]
        if self.subs.iter().any(|s| s.opus.is_some()) {
            return crate::opus_decoder::MAX_PACKET_FRAMES as i64;
        }
        0
    }

    /// The latest media position a sender report has announced, in frames.
    pub fn sr_end(&self) -> Option<i64> {
        self.subs
            .iter()
            .filter_map(|s| s.deint.timeline().sr_position())
            .max()
    }

    /// The first substream's last sender report mapping (for the latency monitor).
    pub fn capture_mapping(&self) -> Option<CaptureMapping> {
        self.subs[0].deint.timeline().capture_mapping()
    }

    /// When the newest media packet was written into a jitter buffer, and its frames.
    pub fn last_media(&self) -> Option<(Instant, i64)> {
        self.last_media
    }

    /// Input frames the first substream's resampler holds (0 without one).
    pub fn resampler_held(&self) -> f64 {
        self.subs[0].render.resampler_held()
    }

    /// Plays the next `frames` frames (at most [`MAX_CHUNK_FRAMES`] - [`LOOKAHEAD`]) of every
    /// substream at resampling `ratio` into `out` (output frames), from output frame `first`.
    pub fn render_into(&mut self, ratio: f64, frames: usize, out: &mut [u8], first: usize) {
        #[cfg(feature = "opus")]
        self.conceal_due(frames);
        for (k, sub) in self.subs.iter_mut().enumerate() {
            let part = sub.render.render(&mut sub.jb, ratio, frames);
            self.merge.put(k, part, out, first);
        }
    }

    /// Every substream's counters, for media at `rate` Hz.
    pub fn stats(&self, rate: u32) -> impl Iterator<Item = SubstreamStats> + '_ {
        self.subs.iter().map(move |s| s.stats(rate))
    }

    #[cfg(test)]
    fn iter_read_pos(&self) -> impl Iterator<Item = i64> + '_ {
        self.subs.iter().map(|s| s.jb.read_pos())
    }

    /// Largest difference between the substreams' read positions, in frames.
    pub fn skew(&self) -> i64 {
        let r = self.subs.iter().map(|s| s.jb.read_pos());
        r.clone().max().unwrap_or(0) - r.min().unwrap_or(0)
    }
}

/// Admission of a session's layout: whether its substreams' buffers fit the memory budget.
/// It stands here, beside [`Substreams::memory_bytes`] that it measures with, so that the
/// layout itself knows no substream.
impl Layout {
    /// The jitter buffer capacity of each substream under `cfg`, in frames, if the session
    /// can be played and its buffers (and the caller's output queue,
    /// [`ReceiverConfig::output_queue_ms`]) fit in the memory budget; otherwise why not
    /// (`Err(None)`: it cannot be played at all, see [`Layout::buffer_frames`]).
    pub fn admit(&self, cfg: &ReceiverConfig) -> Result<usize, Option<OverBudget>> {
        let capacity = self.capacity_frames(cfg).ok_or(None)?;
        let resample = cfg.drift_correction || self.live;
        let queued = MediaClock::new(self.spec.rate).frames_in_ms(cfg.output_queue_ms) as usize;
        let needed_bytes = Substreams::memory_bytes(self, capacity, resample)
            .saturating_add(queued.saturating_mul(self.spec.frame_bytes()));
        let available_bytes = MemoryBudget::new(cfg.memory_budget_bytes).session_bytes();
        if needed_bytes > available_bytes {
            return Err(Some(OverBudget {
                needed_bytes,
                available_bytes,
            }));
        }
        self.buffer_frames(cfg).ok_or(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jitter_buffer::JitterBuffer;
    use crate::layout::SubstreamLayout;
    use bytes::BytesMut;
    use isostream_media::SampleFormat;
    use isostream_transport::fec::{BlockEncoder, FecParams, ReedSolomonCodec};
    use isostream_transport::rtcp::{self, SenderReport};
    use isostream_transport::rtp;
    use isostream_transport::time::Duration;

    const RATE: u32 = 1_000;
    const FRAMES: usize = 10;

    /// Substreams of mono S16 at 1 kHz with SSRCs 1, 2, ... and timestamp base 0.
    fn substreams(n: usize, fec: bool) -> Substreams {
        let layout = Layout {
            spec: AudioSpec {
                rate: RATE,
                channels: n as u16,
                format: SampleFormat::S16,
            },
            substreams: (0..n)
                .map(|i| SubstreamLayout {
                    ssrc: i as u32 + 1,
                    channels: 1,
                    ts_base: Some(0),
                    rtx_ssrc: None,
                })
                .collect(),
            fec,
            live: false,
            provisional: false,
            framing: Default::default(),
            opus: false,
        };
        Substreams::new(&layout, 1_000, false)
    }

    /// Packet `seq` of substream `ssrc`: FRAMES mono frames at position `seq x FRAMES`,
    /// samples `seq`, `seq + 1`, ...
    fn packet(ssrc: u32, seq: u16) -> Bytes {
        let mut b = BytesMut::new();
        RtpHeader {
            marker: false,
            payload_type: rtp::PT_L16,
            seq,
            timestamp: seq as u32 * FRAMES as u32,
            ssrc,
        }
        .write(&mut b);
        for f in 0..FRAMES {
            b.extend_from_slice(&(seq * 100 + f as u16).to_be_bytes());
        }
        b.freeze()
    }

    fn ctx(started: bool) -> ReceiveContext {
        ReceiveContext {
            started,
            live: false,
            format: SampleFormat::S16,
            stock_l16: None,
            rate: 48_000,
        }
    }

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    fn media(s: &mut Substreams, i: usize, d: &Bytes, started: bool) -> bool {
        let (h, payload) = RtpHeader::parse(d).unwrap();
        let mut drops = Drops::default();
        let fresh = s.on_media(
            at(h.seq as u64),
            i,
            &h,
            payload,
            d,
            &ctx(started),
            &mut drops,
        );
        assert_eq!(drops, Drops::default());
        fresh
    }

    fn play(s: &mut Substreams, frames: usize) -> Vec<u8> {
        let mut out = vec![0u8; frames * s.out_frame_bytes()];
        s.render_into(1.0, frames, &mut out, 0);
        out
    }

    #[test]
    fn released_substreams_keep_their_counters_and_free_their_buffers() {
        let mut s = substreams(2, true);
        for q in 0..4 {
            assert!(media(&mut s, 0, &packet(1, q), false));
            assert!(media(&mut s, 1, &packet(2, q), false));
        }
        let before: Vec<SubstreamStats> = s.stats(RATE).collect();
        assert!(s.subs[0].jb.capacity() == 1_000 && s.subs[0].fec.is_some());
        s.release(RATE);
        assert!(s
            .subs
            .iter()
            .all(|x| x.jb.capacity() == 1 && x.fec.is_none()));
        assert!(s.subs.iter().all(|x| x.render.scratch_bytes() < 100));
        let after: Vec<SubstreamStats> = s.stats(RATE).collect();
        assert_eq!(after.len(), 2);
        assert_eq!(
            (after[0].packets_received, after[1].buffer_frames),
            (before[0].packets_received, before[1].buffer_frames)
        );
        assert!(after[0].fec.is_some());
        // its datagrams are still recognized, and nothing panics
        assert_eq!(s.index_of(2), Some(1));
        media(&mut s, 0, &packet(1, 4), false);
        // the estimate of a layout covers every stage: more than the jitter buffers alone
        let layout = crate::layout::Layout::stock(
            AudioSpec {
                rate: 48_000,
                channels: 2,
                format: SampleFormat::S16,
            },
            1,
            rtp::PT_L16,
            None,
        );
        let m = Substreams::memory_bytes(&layout, 48_000, false);
        assert!(m > JitterBuffer::memory_bytes(4, 48_000) + 1_000_000, "{m}");
    }

    #[test]
    fn packets_play_back_bit_exact_in_order() {
        let mut s = substreams(1, false);
        let packets: Vec<Bytes> = (0..4).map(|q| packet(1, q)).collect();
        for q in [1, 0, 3, 2] {
            assert!(media(&mut s, 0, &packets[q], false));
        }
        assert_eq!(s.occupancy(), (40, 40));
        // the newest audio moved on last with packet 3 (packet 2 only filled a hole)
        assert_eq!(s.last_media(), Some((at(3), FRAMES as i64)));
        let out = play(&mut s, 40);
        let expected: Vec<u8> = packets.iter().flat_map(|p| p[12..].to_vec()).collect();
        assert_eq!(out, expected);
        let st = s.stats(RATE).next().unwrap();
        assert_eq!(
            (st.packets_received, st.packets_expected, st.packets_lost),
            (4, 4, 0)
        );
        assert_eq!(st.frames_concealed, 0);
    }

    #[test]
    fn a_lost_packet_is_rebuilt_and_its_late_original_is_a_duplicate() {
        let mut s = substreams(1, true);
        let packets: Vec<Bytes> = (0..4).map(|q| packet(1, q)).collect();
        let mut enc = BlockEncoder::new(FecParams { k: 4, m: 1 }, 1, 0, ReedSolomonCodec::boxed());
        let mut repairs = Vec::new();
        for p in &packets {
            enc.push(p, &mut repairs);
        }
        for q in [0, 1, 3] {
            media(&mut s, 0, &packets[q], false);
        }
        let (h, shard) = RepairHeader::parse(&repairs[0]).unwrap();
        let mut drops = Drops::default();
        assert!(s.on_repair(at(5), 0, &h, shard, &ctx(false), &mut drops));
        assert!(!media(&mut s, 0, &packets[2], false));
        let st = s.stats(RATE).next().unwrap();
        assert_eq!(
            (
                st.packets_rebuilt,
                st.repair_packets_received,
                st.packets_duplicate,
                st.packets_lost
            ),
            (1, 1, 1, 1)
        );
        // the FEC decoder's own counters are reported with the substream's
        let fec = st.fec.expect("a stream with FEC reports its decoder");
        assert_eq!((fec.packets_rebuilt, fec.repair_packets_received), (1, 1));
        let out = play(&mut s, 40);
        assert_eq!(&out[40..60], &packets[2][12..]);
    }

    #[test]
    fn repair_packets_without_fec_are_only_counted() {
        let mut s = substreams(1, false);
        let mut enc = BlockEncoder::new(FecParams { k: 1, m: 1 }, 1, 0, ReedSolomonCodec::boxed());
        let mut repairs = Vec::new();
        enc.push(&packet(1, 0), &mut repairs);
        let (h, shard) = RepairHeader::parse(&repairs[0]).unwrap();
        assert!(!s.on_repair(at(0), 0, &h, shard, &ctx(false), &mut Drops::default()));
        let st = s.stats(RATE).next().unwrap();
        assert_eq!(st.repair_packets_received, 1);
        assert!(st.fec.is_none());
        assert_eq!(s.occupancy(), (0, 0));
    }

    #[test]
    fn what_is_missing_at_playout_is_concealed_and_counted() {
        let mut s = substreams(1, false);
        media(&mut s, 0, &packet(1, 0), false);
        media(&mut s, 0, &packet(1, 2), false);
        play(&mut s, 30);
        let st = s.stats(RATE).next().unwrap();
        assert_eq!(st.frames_interpolated + st.frames_concealed, FRAMES as u64);
        assert_eq!(st.packets_lost, 1);
    }

    #[test]
    fn joining_a_running_stream_starts_every_substream_where_it_is() {
        let mut s = substreams(2, false);
        // position 5000: far beyond a quarter of the buffer
        media(&mut s, 1, &packet(2, 500), false);
        assert_eq!(s.read_pos(), 5_000);
        assert!(s.iter_read_pos().all(|p| p == 5_000));
        // an earlier packet overtaken before playback moves the start back, for both
        media(&mut s, 0, &packet(1, 498), false);
        assert_eq!(s.read_pos(), 4_980);
        assert!(s.iter_read_pos().all(|p| p == 4_980));
        assert_eq!(s.skew(), 0);
        // once playing, nothing moves
        media(&mut s, 0, &packet(1, 490), true);
        assert_eq!(s.read_pos(), 4_980);
        assert_eq!(s.stats(RATE).next().unwrap().packets_late, 1);
    }

    #[test]
    fn substreams_play_side_by_side_in_their_channels() {
        let mut s = substreams(2, false);
        media(&mut s, 0, &packet(1, 0), false);
        media(&mut s, 1, &packet(2, 1), false);
        assert_eq!(s.occupancy(), (10, 20));
        assert_eq!(s.data_end(), 20);
        let out = play(&mut s, 20);
        let sample = |frame: usize, ch: usize| {
            let at = frame * 4 + ch * 2;
            u16::from_be_bytes([out[at], out[at + 1]])
        };
        // the first substream's packet in channel 0, the second's in channel 1 (its first
        // frames joined to the concealed ones before them)
        assert!((0..10).all(|f| sample(f, 0) == f as u16));
        let ch1: Vec<u16> = (0..20).map(|f| sample(f, 1)).collect();
        assert!((13..20).all(|f| sample(f, 1) == 90 + f as u16), "{ch1:?}");
    }

    #[test]
    fn bad_payloads_count_as_dropped() {
        let mut s = substreams(1, false);
        let mut d = BytesMut::from(&packet(1, 0)[..]);
        d.extend_from_slice(&[0]); // half a frame
        let d = d.freeze();
        let (h, payload) = RtpHeader::parse(&d).unwrap();
        let mut drops = Drops::default();
        s.on_media(at(0), 0, &h, payload, &d, &ctx(false), &mut drops);
        assert_eq!(drops.malformed, 1);
        let mut c = ctx(false);
        c.format = SampleFormat::S24;
        let d = packet(1, 1);
        let (h, payload) = RtpHeader::parse(&d).unwrap();
        s.on_media(at(0), 0, &h, payload, &d, &c, &mut drops);
        assert_eq!(drops.malformed, 2);
        assert_eq!(s.occupancy(), (0, 0));
    }

    #[test]
    fn sender_reports_map_positions_and_echo_in_report_blocks() {
        let mut s = substreams(2, false);
        media(&mut s, 0, &packet(1, 0), false);
        let sr = SenderReport {
            ssrc: 1,
            ntp: rtcp::ntp_from_unix_nanos(1_000_000_000_000),
            rtp_ts: 250,
            packets: 1,
            octets: 20,
        };
        s.on_sender_report(at(100), 0, &sr);
        assert_eq!(s.sr_end(), Some(250));
        let m = s.capture_mapping().unwrap();
        assert_eq!(m.position, 250);
        assert!((m.unix_ns - 1_000_000_000_000).abs() < 1_000);
        let blocks = s.report_blocks(at(600));
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].ssrc, 1);
        assert_eq!(blocks[0].delay_since_last_sr, 32_768);
        assert_eq!(blocks[1].last_sr, 0);
    }
}
