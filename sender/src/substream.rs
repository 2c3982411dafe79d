//! The media path of a sender session, before the pacer: the input's channels are split into
//! substreams, and each substream runs its packetizer (or Opus encoder), keeps each packet for
//! retransmission, adds FEC repair packets and spreads the blocks; what comes out is queued
//! for the pacer.
//!
//! [`Substreams`] owns the stages and their scratch buffers; the retransmission history and
//! the pacer's queue are handed in on every call (they belong to the session).

use std::collections::VecDeque;

use bytes::Bytes;
use isostream_transport::fec::{BlockEncoder, ReedSolomonCodec};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::config::{Codec, SenderConfig};
use crate::framer::Framer;
use crate::packetizer::MediaPacket;
use crate::retransmit::Retransmitter;
use crate::spreader::Spreader;

/// One substream's stages and identity.
#[derive(Debug)]
pub(crate) struct SubstreamTx {
    /// The substream's RTP SSRC.
    pub(crate) ssrc: u32,
    /// Its first RTP timestamp (the media position 0), in RTP timestamp units (frames).
    pub(crate) ts_base: u32,
    /// Its number of audio channels.
    pub(crate) channels: u16,
    /// Byte offset of this substream's channels within an input frame, in bytes.
    offset_bytes: usize,
    /// The packetizer or Opus encoder: it also knows the positions and packet counts.
    pub(crate) packetizer: Framer,
    fec: Option<BlockEncoder>,
    spreader: Spreader,
    /// Scratch: this substream's channels split out of the input.
    split: Vec<u8>,
}

impl SubstreamTx {
    /// Sends freshly made media packets through retransmission history (`rtx`, as substream
    /// `i`), FEC and the spreader, into `queue`.
    fn route(
        &mut self,
        i: usize,
        rtx: Option<&mut Retransmitter>,
        packets: &mut Vec<MediaPacket>,
        repairs: &mut Vec<Bytes>,
        queue: &mut VecDeque<MediaPacket>,
    ) {
        let mut rtx = rtx;
        for p in packets.drain(..) {
            let datagram = p.datagram.clone();
            if let Some(r) = rtx.as_deref_mut() {
                r.keep(i, &datagram);
            }
            self.spreader.push(p, queue);
            if let Some(fec) = &mut self.fec {
                fec.push(&datagram, repairs);
                self.route_repairs(repairs, queue);
            }
        }
    }

    /// Sends the repair packets of a finished FEC block through the spreader and ends the
    /// spreader's block.
    fn route_repairs(&mut self, repairs: &mut Vec<Bytes>, queue: &mut VecDeque<MediaPacket>) {
        if repairs.is_empty() {
            return;
        }
        for r in repairs.drain(..) {
            self.spreader.push(
                MediaPacket {
                    datagram: r,
                    frames: 0,
                    ends_group: true,
                },
                queue,
            );
        }
        self.spreader.end_block(queue);
    }
}

/// All substreams of a session, in order, with the scratch buffers their stages share.
#[derive(Debug)]
pub(crate) struct Substreams {
    subs: Vec<SubstreamTx>,
    /// Bytes of one input frame (all channels).
    frame_bytes: usize,
    /// Bytes of one sample of one channel.
    sample_bytes: usize,
    scratch_packets: Vec<MediaPacket>,
    scratch_repairs: Vec<Bytes>,
}

impl Substreams {
    /// The substreams `cfg` asks for, with SSRCs, first sequence numbers, first timestamps
    /// and FEC numbers drawn from `cfg.seed`. Errors if a packetizer or encoder refuses the
    /// parameters.
    pub(crate) fn new(cfg: &SenderConfig) -> Result<Self, crate::SenderError> {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let bps = cfg.spec.format.bytes();
        let mut subs = Vec::new();
        let mut offset = 0;
        let mut ssrcs: Vec<u32> = Vec::new();
        for &channels in &cfg.substream_channels {
            let mut ssrc: u32 = rng.random();
            while ssrcs.contains(&ssrc) {
                ssrc = rng.random();
            }
            ssrcs.push(ssrc);
            // (drawn even when configured, so a seed means the same SSRCs either way)
            let ts_base = cfg.first_timestamp.unwrap_or(rng.random());
            let first_seq = cfg.first_seq.unwrap_or(rng.random());
            let fb = channels as usize * bps;
            let packetizer = Framer::new(cfg, ssrc, channels, first_seq, ts_base)?;
            let fec = cfg.fec.map(|p| {
                BlockEncoder::new(p, ssrc, rng.random(), Box::new(ReedSolomonCodec::new()))
            });
            subs.push(SubstreamTx {
                ssrc,
                ts_base,
                channels,
                offset_bytes: offset,
                split: Vec::with_capacity(packetizer.group_frames() * fb),
                packetizer,
                fec,
                spreader: Spreader::new(cfg.spread as usize),
            });
            offset += fb;
        }
        Ok(Substreams {
            subs,
            frame_bytes: cfg.spec.frame_bytes(),
            sample_bytes: bps,
            scratch_packets: Vec::new(),
            scratch_repairs: Vec::new(),
        })
    }

    /// The retransmission stage for these substreams, if `cfg` enables it: one RTX stream
    /// per substream, with SSRCs unique among all, and a history of `history_ms`.
    pub(crate) fn retransmitter(&self, cfg: &SenderConfig) -> Option<Retransmitter> {
        let subs = &self.subs;
        // the RTX streams draw from a generator of their own, so the media streams' SSRCs and
        // first numbers stay what they were without retransmission
        let mut rtx_rng = StdRng::seed_from_u64(cfg.seed ^ 0x0072_7478_5eed);
        cfg.retransmission.map(|p| {
            let mut streams: Vec<(u32, u32, u16)> = Vec::with_capacity(subs.len());
            for s in subs {
                let mut r: u32 = rtx_rng.random();
                // unique among the media SSRCs and the other RTX SSRCs
                while subs.iter().any(|o| o.ssrc == r) || streams.iter().any(|x| x.1 == r) {
                    r = rtx_rng.random();
                }
                streams.push((s.ssrc, r, rtx_rng.random()));
            }
            let packets_per_s = cfg.spec.rate as f64 / cfg.packet_frames as f64;
            let history = (packets_per_s * p.history_ms as f64 / 1000.0).ceil() as usize;
            let media_bytes_per_s = match &cfg.codec {
                Codec::Pcm => (cfg.spec.rate as usize * cfg.spec.frame_bytes()) as f64,
                // the coded rate, and RTP headers
                Codec::Opus(o) => {
                    (o.bitrate as f64 / 8.0 + packets_per_s * 12.0)
                        * cfg.substream_channels.len() as f64
                }
            };
            Retransmitter::new(&streams, history, media_bytes_per_s, p)
        })
    }

    /// The substreams, in order (the first one's SSRC speaks for the session in RTCP).
    pub(crate) fn all(&self) -> &[SubstreamTx] {
        &self.subs
    }

    /// The receiver reported `fraction_lost` (0 to 1): every encoder that plans for loss
    /// (Opus with in-band FEC) hears it.
    pub(crate) fn on_reported_loss(&mut self, fraction_lost: f64) {
        for s in &mut self.subs {
            s.packetizer.on_reported_loss(fraction_lost);
        }
    }

    /// The first substream.
    pub(crate) fn first(&self) -> &SubstreamTx {
        &self.subs[0]
    }

    /// The number of substreams.
    pub(crate) fn len(&self) -> usize {
        self.subs.len()
    }

    /// Frames the first substream's packetizer needs to complete its current packet group.
    pub(crate) fn frames_to_complete_group(&self) -> usize {
        self.subs[0].packetizer.frames_to_complete_group()
    }

    /// Takes wire frames of the input (all channels, whole frames), all of them, one packet
    /// group at a time: each substream's share goes through its stages into `queue`.
    pub(crate) fn push_audio(
        &mut self,
        frames: &[u8],
        mut rtx: Option<&mut Retransmitter>,
        queue: &mut VecDeque<MediaPacket>,
    ) {
        let total = frames.len() / self.frame_bytes;
        let mut taken = 0;
        while taken < total {
            let n = (total - taken).min(self.frames_to_complete_group());
            let chunk = &frames[taken * self.frame_bytes..(taken + n) * self.frame_bytes];
            for i in 0..self.subs.len() {
                self.push_substream(i, chunk, rtx.as_deref_mut(), queue);
            }
            taken += n;
        }
    }

    /// Skips `frames` of media time in every substream (audio dropped while paused).
    pub(crate) fn skip(&mut self, frames: u64) {
        for s in &mut self.subs {
            s.packetizer.skip(frames);
        }
    }

    fn push_substream(
        &mut self,
        i: usize,
        chunk: &[u8],
        rtx: Option<&mut Retransmitter>,
        queue: &mut VecDeque<MediaPacket>,
    ) {
        let single = self.subs.len() == 1;
        let s = &mut self.subs[i];
        let mut packets = std::mem::take(&mut self.scratch_packets);
        if single {
            s.packetizer.push(chunk, &mut packets);
        } else {
            let fb = s.channels as usize * self.sample_bytes;
            s.split.clear();
            for frame in chunk.chunks_exact(self.frame_bytes) {
                s.split
                    .extend_from_slice(&frame[s.offset_bytes..s.offset_bytes + fb]);
            }
            s.packetizer.push(&s.split, &mut packets);
        }
        s.route(i, rtx, &mut packets, &mut self.scratch_repairs, queue);
        self.scratch_packets = packets;
    }

    /// Flushes every stage (partial packet groups, FEC blocks and spread groups) into
    /// `queue`.
    pub(crate) fn flush(
        &mut self,
        mut rtx: Option<&mut Retransmitter>,
        queue: &mut VecDeque<MediaPacket>,
    ) {
        let mut packets = std::mem::take(&mut self.scratch_packets);
        for (i, s) in self.subs.iter_mut().enumerate() {
            s.packetizer.flush(&mut packets);
            s.route(
                i,
                rtx.as_deref_mut(),
                &mut packets,
                &mut self.scratch_repairs,
                queue,
            );
            if let Some(fec) = &mut s.fec {
                fec.flush(&mut self.scratch_repairs);
                s.route_repairs(&mut self.scratch_repairs, queue);
            }
            s.spreader.flush(queue);
        }
        self.scratch_packets = packets;
    }
}
