//! One substream's stages ([`SubstreamRx`]): the arrival stage, the FEC decoder, the
//! de-interleaver, the jitter buffer, the playout side (concealer and resampler) and, when
//! the sender answers NACKs, the NACK stage, with their construction, memory bound and
//! counters, and the state of an Opus substream's intake (its decoder). [`super::Substreams`]
//! moves a packet down them (an Opus packet through `opus_intake.rs`).

use isostream_media::AudioSpec;
use isostream_transport::fec::DecoderLimits;
use isostream_transport::rtp::RtpHeader;
use isostream_transport::time::Duration;

use super::context::{ReceiveContext, MAX_LIVE_HOLE_S};
use crate::arrival::Arrival;
use crate::counters::{Drops, SubstreamStats};
use crate::deinterleaver::{Deinterleaver, PlaceInput, Placement, Reject};
use crate::fec_decoder::FecDecoder;
use crate::jitter_buffer::JitterBuffer;
use crate::layout::Framing;
use crate::nack::Nacker;
use crate::nack_clock::NackClock;
#[cfg(feature = "opus")]
use crate::opus_decoder::OpusDecoder;
use crate::render::Render;

/// One substream's stages. See the module documentation.
#[derive(Debug)]
pub struct SubstreamRx {
    /// The substream's SSRC.
    pub(super) ssrc: u32,
    /// Its channels.
    pub(super) channels: u16,
    /// Bytes of one of its frames (all its channels), in bytes.
    pub(super) frame_bytes: usize,
    /// Duplicates, jitter and report figures (see [`crate::arrival`]).
    pub(super) arrival: Arrival,
    /// The FEC decoder, when the stream carries repair packets (see [`crate::fec_decoder`]).
    pub(super) fec: Option<FecDecoder>,
    /// RTP timestamps to positions, and the one copy into the jitter buffer (see
    /// [`crate::deinterleaver`]).
    pub(super) deint: Deinterleaver,
    /// Frames keyed by media position (see [`crate::jitter_buffer`]).
    pub(super) jb: JitterBuffer,
    /// The playout side: concealer and resampler (see [`crate::render`]).
    pub(super) render: Render,
    /// The NACK stage and its play clock (when the sender answers NACKs; see
    /// [`crate::nack_clock`]).
    pub(super) nack: Option<NackClock>,
    /// Frames dropped to hold a live stream's latency after it ran dry.
    pub(super) frames_dropped: u64,
    /// The counters when its buffers were released (the session ended).
    pub(super) released: Option<SubstreamStats>,
    /// The Opus decoder of an Opus substream, and the context of the last packet it took.
    #[cfg(feature = "opus")]
    pub(super) opus: Option<OpusIntake>,
}

/// An Opus substream's decoder, and the receive context of the last packet it took (the
/// context its concealed audio is written with).
#[cfg(feature = "opus")]
#[derive(Debug)]
pub(super) struct OpusIntake {
    /// The decoder (RFC 7587, 48 kHz), which holds packets until they are in order.
    pub(super) decoder: Box<OpusDecoder>,
    /// The context of the last packet pushed into the decoder.
    pub(super) last_ctx: Option<ReceiveContext>,
}

#[cfg(feature = "opus")]
impl OpusIntake {
    /// The intake of a substream of `channels` channels: `None` for a count the decoder
    /// does not take (anything but 1 or 2).
    pub(super) fn new(channels: u16) -> Option<Self> {
        OpusDecoder::new(channels).map(|d| OpusIntake {
            decoder: Box::new(d),
            last_ctx: None,
        })
    }
}

impl SubstreamRx {
    /// The chain of substream `ssrc` carrying audio of `spec` (its own channels), whose
    /// position 0 is RTP timestamp `ts_base` (`None`: the first packet's), with a jitter
    /// buffer of `capacity` frames; `fec` adds the FEC decoder (keeping no more than its
    /// limits), `resample` the resampler. It allocates at most [`SubstreamRx::memory_bytes`].
    pub fn new(
        ssrc: u32,
        spec: AudioSpec,
        ts_base: Option<u32>,
        capacity: usize,
        fec: Option<DecoderLimits>,
        resample: bool,
    ) -> Self {
        let fb = spec.frame_bytes();
        SubstreamRx {
            ssrc,
            channels: spec.channels,
            frame_bytes: fb,
            arrival: Arrival::new(spec.rate),
            fec: fec.map(FecDecoder::with_limits),
            deint: Deinterleaver::new(fb, ts_base),
            jb: JitterBuffer::new(fb, capacity, 0),
            render: Render::new(spec, resample),
            nack: None,
            frames_dropped: 0,
            released: None,
            #[cfg(feature = "opus")]
            opus: None,
        }
    }

    /// Decodes Opus (RFC 7587) in front of the de-interleaver (1 or 2 channels at 48 kHz;
    /// other counts get no decoder, and their packets are dropped as malformed).
    #[cfg(feature = "opus")]
    pub fn with_opus(mut self) -> Self {
        self.opus = OpusIntake::new(self.channels);
        self
    }

    /// The most a substream made by [`SubstreamRx::new`] with these settings (and `nack`:
    /// [`SubstreamRx::with_nack`]) allocates, in bytes: every stage's buffers, at their
    /// largest.
    pub fn memory_bytes(
        spec: AudioSpec,
        capacity: usize,
        fec: Option<&DecoderLimits>,
        resample: bool,
        nack: bool,
    ) -> usize {
        let fb = spec.frame_bytes();
        let mut n = std::mem::size_of::<Self>()
            + Arrival::MEMORY_BYTES
            + JitterBuffer::memory_bytes(fb, capacity)
            + Render::memory_bytes(spec, resample);
        if let Some(l) = fec {
            n = n.saturating_add(FecDecoder::memory_bytes(l));
        }
        if nack {
            n += Nacker::MEMORY_BYTES;
        }
        n
    }

    /// Frees the buffers once the session has ended, keeping its counters (for media at
    /// `rate` Hz): the substream still recognizes its datagrams, but plays nothing.
    pub(super) fn release(&mut self, rate: u32) {
        if self.released.is_some() {
            return;
        }
        self.released = Some(self.stats(rate));
        let fb = self.frame_bytes;
        self.jb = JitterBuffer::new(fb, 1, self.jb.read_pos());
        self.fec = None;
        self.render.release();
        if let Some(n) = &mut self.nack {
            n.release();
        }
    }

    /// Asks for lost packets with NACKs, answered on retransmission stream `rtx_ssrc`; the
    /// stream is cut as `framing` says, at `rate` Hz.
    pub fn with_nack(mut self, rtx_ssrc: u32, framing: &Framing, rate: u32) -> Self {
        self.nack = Some(NackClock::new(rtx_ssrc, framing, rate));
        self
    }

    /// Its NACKs' first requests wait a random time from zero to `max` more (a member of a
    /// multicast group, RFC 4585), drawn from a generator seeded with `seed`.
    pub fn with_nack_random_delay(&mut self, max: Duration, seed: u64) {
        if let Some(n) = self.nack.take() {
            self.nack = Some(n.with_random_delay(max, seed));
        }
    }

    /// The SSRC of this substream's retransmissions, if it asks for them.
    pub fn rtx_ssrc(&self) -> Option<u32> {
        self.nack.as_ref().map(NackClock::rtx_ssrc)
    }

    /// The substream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The jitter buffer (read only).
    pub fn jitter_buffer(&self) -> &JitterBuffer {
        &self.jb
    }

    /// Finds where a media packet's frames go (see [`Deinterleaver::place`]); what is
    /// rejected is added to `drops`.
    pub(super) fn place<'a>(
        &mut self,
        h: &RtpHeader,
        payload: &'a [u8],
        ctx: &ReceiveContext,
        drops: &mut Drops,
    ) -> Option<Placement<'a>> {
        let input = PlaceInput {
            format: ctx.format,
            live: ctx.live,
            stock_l16: ctx.stock_l16,
            received: self.arrival.received(),
            buffer_end: self.jb.end(),
            max_hole_frames: i64::from(ctx.rate) * MAX_LIVE_HOLE_S,
        };
        match self.deint.place(h, payload, &input) {
            Ok(p) => Some(p),
            Err(Reject::Foreign) => {
                drops.foreign += 1;
                None
            }
            Err(Reject::Malformed) => {
                drops.malformed += 1;
                None
            }
        }
    }

    /// This substream's counters, for media at `rate` Hz.
    pub fn stats(&self, rate: u32) -> SubstreamStats {
        if let Some(s) = &self.released {
            return s.clone();
        }
        let a = self.arrival.counts();
        let d = self.deint.counts();
        let expected = self.arrival.expected();
        SubstreamStats {
            ssrc: self.ssrc,
            channels: self.channels,
            packets_received: a.received,
            packets_expected: expected,
            packets_lost: expected.saturating_sub(a.received),
            packets_rebuilt: a.rebuilt,
            repair_packets_received: a.repair_received,
            packets_late: d.late,
            packets_duplicate: a.duplicate,
            packets_overflowed: d.overflow,
            frames_interpolated: self.render.repaired().interpolated,
            frames_concealed: self.render.repaired().concealed,
            buffer_frames: self.jb.occupancy(),
            jitter_ms: self.arrival.jitter_frames() * 1000.0 / rate as f64,
            frames_skipped: self.deint.timeline().frames_skipped(),
            packets_retransmitted: a.retransmitted,
            frames_dropped: self.frames_dropped,
            retransmissions_requested: self.nack.as_ref().map_or(0, |n| n.counts().requested),
            retransmissions_given_up: self.nack.as_ref().map_or(0, |n| n.counts().given_up),
            fec: self.fec.as_ref().map(FecDecoder::stats),
            #[cfg(feature = "opus")]
            opus: self.opus.as_ref().map(|o| o.decoder.counts()),
            #[cfg(not(feature = "opus"))]
            opus: None,
            rtt_ms: self.nack.as_ref().map(|n| n.rtt().as_secs_f64() * 1000.0),
        }
    }
}
