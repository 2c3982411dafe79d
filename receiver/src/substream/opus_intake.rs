//! The Opus intake of a substream (RFC 7587, built with the `opus` feature): an Opus packet
//! goes to the substream's decoder instead of straight to the de-interleaver; what the
//! decoder has in order comes out as L16 frames and goes on down the chain like a PCM
//! packet's. A hole the playout is about to reach is concealed by the decoder (its packet
//! loss concealment), so the held packets behind it can be decoded.

use isostream_media::SampleFormat;
use isostream_transport::rtp::{self, RtpHeader};
use isostream_transport::time::Instant;

use super::context::ReceiveContext;
use super::stages::OpusIntake;
use super::{Substreams, LOOKAHEAD};
use crate::counters::Drops;

impl Substreams {
    /// An Opus packet of substream `i`: to the decoder, which decodes what is in order.
    /// Returns the position of its first frame.
    pub(super) fn deliver_opus(
        &mut self,
        now: Instant,
        i: usize,
        h: &RtpHeader,
        payload: &[u8],
        ctx: &ReceiveContext,
        drops: &mut Drops,
    ) -> Option<i64> {
        let sub = &mut self.subs[i];
        let pos = sub.deint.timeline().position_of(h.timestamp);
        let OpusIntake {
            decoder: dec,
            last_ctx,
        } = sub.opus.as_mut()?;
        *last_ctx = Some(*ctx);
        if !dec.fits(h.seq) {
            // far ahead of a hole: the held packets are decoded, not given up
            self.drain_opus_until(Some(now), i, ctx, drops, None, Some(h.seq));
        }
        let OpusIntake { decoder: dec, .. } = self.subs[i].opus.as_mut()?;
        if !dec.push(h.seq, h.timestamp, payload) {
            // counted by the decoder (late or too large)
            return None;
        }
        // a hole the playout has already reached is concealed at once
        let due = ctx.started.then(|| self.read_pos() + LOOKAHEAD as i64);
        self.drain_opus_until(Some(now), i, ctx, drops, due, None);
        pos
    }

    /// Writes what substream `i`'s Opus decoder has in order into its jitter buffer; with
    /// `conceal_before` also conceals missing packets whose audio starts before that
    /// position (frames), as playout is about to reach them; with `room_for`, first makes
    /// room in the decoder's hold window for that sequence number.
    fn drain_opus_until(
        &mut self,
        now: Option<Instant>,
        i: usize,
        ctx: &ReceiveContext,
        drops: &mut Drops,
        conceal_before: Option<i64>,
        room_for: Option<u16>,
    ) {
        let mut pcm = std::mem::take(&mut self.pcm);
        loop {
            let sub = &mut self.subs[i];
            let Some(OpusIntake { decoder: dec, .. }) = sub.opus.as_mut() else {
                break;
            };
            if let Some(d) = room_for.and_then(|seq| dec.make_room(seq)) {
                pcm.clear();
                pcm.extend_from_slice(d.pcm);
                let ts = d.ts;
                self.deliver_decoded(now, i, ts, &pcm, ctx, drops);
                continue;
            }
            let ts = match dec.decode_next() {
                Some(d) => {
                    pcm.clear();
                    pcm.extend_from_slice(d.pcm);
                    d.ts
                }
                None => {
                    let Some(limit) = conceal_before else {
                        break;
                    };
                    let Some(ts) = dec.missing() else {
                        break;
                    };
                    // held packets beyond the hole: conceal it once its audio is due
                    let due = sub
                        .deint
                        .timeline()
                        .position_of(ts)
                        .is_none_or(|p| p < limit);
                    if !due {
                        break;
                    }
                    let Some(d) = dec.conceal_next() else {
                        break;
                    };
                    pcm.clear();
                    pcm.extend_from_slice(d.pcm);
                    d.ts
                }
            };
            self.deliver_decoded(now, i, ts, &pcm, ctx, drops);
        }
        self.pcm = pcm;
    }

    /// Decoded audio of substream `i` (16-bit wire frames for RTP timestamp `ts`) down the
    /// chain like a PCM packet's.
    fn deliver_decoded(
        &mut self,
        now: Option<Instant>,
        i: usize,
        ts: u32,
        pcm: &[u8],
        ctx: &ReceiveContext,
        drops: &mut Drops,
    ) {
        let h = RtpHeader {
            marker: false,
            payload_type: rtp::PT_L16,
            seq: 0,
            timestamp: ts,
            ssrc: self.subs[i].ssrc,
        };
        let pcm_ctx = ReceiveContext {
            stock_l16: None,
            format: SampleFormat::S16,
            ..*ctx
        };
        self.deliver_pcm(now, i, &h, pcm, &pcm_ctx, drops);
    }

    /// Conceals, in every Opus substream, the missing packets whose audio plays within the
    /// next `frames` frames (the decoder holds the packets after them), then decodes what
    /// follows them.
    pub(super) fn conceal_due(&mut self, frames: usize) {
        let limit = self.read_pos() + (frames + LOOKAHEAD) as i64;
        // decoded audio is well-formed L16: nothing here is dropped as malformed or foreign
        let mut drops = Drops::default();
        for i in 0..self.subs.len() {
            let Some(ctx) = self.subs[i].opus.as_ref().and_then(|o| o.last_ctx) else {
                continue;
            };
            self.drain_opus_until(None, i, &ctx, &mut drops, Some(limit), None);
        }
    }
}
