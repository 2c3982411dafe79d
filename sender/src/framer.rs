//! The first stage of a substream: the PCM packetizer, or the Opus encoder in its place.
//!
//! [`Framer`] picks the stage the configured codec needs and forwards the calls the session
//! makes (push audio, flush, skip, positions and counts) to it, so the rest of the pipeline
//! does not care which codec runs.

use isostream_transport::rtp;

use crate::config::{Codec, SenderConfig};
use crate::packetizer::{MediaPacket, Packetizer};

/// A substream's packetizer or Opus encoder.
#[derive(Debug)]
pub enum Framer {
    /// Linear PCM (L16, L24, F32).
    Pcm(Packetizer),
    /// Opus (RFC 7587).
    #[cfg(feature = "opus")]
    Opus(Box<crate::opus_encoder::OpusEncoder>),
}

/// Calls the same method on whichever stage it is.
macro_rules! framer {
    ($f:expr, $p:ident => $e:expr) => {
        match $f {
            Framer::Pcm($p) => $e,
            #[cfg(feature = "opus")]
            Framer::Opus($p) => $e,
        }
    };
}

impl Framer {
    /// The stage for `cfg`'s codec, for a substream of `channels` channels with SSRC `ssrc`,
    /// first sequence number `first_seq` and first RTP timestamp `ts_base`. Errors if the
    /// codec is not built in or its encoder refuses the parameters.
    pub fn new(
        cfg: &SenderConfig,
        ssrc: u32,
        channels: u16,
        first_seq: u16,
        ts_base: u32,
    ) -> Result<Self, crate::SenderError> {
        let base_pt = match cfg.spec.format {
            isostream_media::SampleFormat::S16 => rtp::PT_L16,
            isostream_media::SampleFormat::S24 => rtp::PT_L24,
            isostream_media::SampleFormat::F32 => rtp::PT_F32,
        };
        let fb = channels as usize * cfg.spec.format.bytes();
        Ok(match &cfg.codec {
            Codec::Pcm => Framer::Pcm(Packetizer::new(
                ssrc,
                base_pt,
                fb,
                cfg.packet_frames as usize,
                cfg.interleave as usize,
                first_seq,
                ts_base,
            )),
            #[cfg(feature = "opus")]
            Codec::Opus(p) => Framer::Opus(Box::new(
                crate::opus_encoder::OpusEncoder::new(
                    ssrc,
                    channels,
                    cfg.spec.format,
                    p,
                    first_seq,
                    ts_base,
                )
                .map_err(|e| crate::SenderError::Config(e.to_string()))?,
            )),
            #[cfg(not(feature = "opus"))]
            Codec::Opus(_) => {
                return Err(crate::SenderError::Config(crate::config::NO_OPUS.into()))
            }
        })
    }

    /// Frames (per channel) in one group (interleaved packets, or one Opus packet).
    pub fn group_frames(&self) -> usize {
        framer!(self, p => p.group_frames())
    }
    /// Frames still needed to complete the group under way.
    pub fn frames_to_complete_group(&self) -> usize {
        framer!(self, p => p.frames_to_complete_group())
    }
    /// Media packets made so far.
    pub fn packets(&self) -> u64 {
        framer!(self, p => p.packets())
    }
    /// The sequence number of the next packet.
    pub fn next_seq(&self) -> u16 {
        framer!(self, p => p.next_seq())
    }
    /// Frames taken in (or skipped) so far: the media position.
    pub fn position(&self) -> u64 {
        framer!(self, p => p.position())
    }
    /// Skips `frames` frames of media time (audio dropped while paused).
    pub fn skip(&mut self, frames: u64) {
        framer!(self, p => p.skip(frames))
    }
    /// Takes wire frames of this substream's channels; complete packets go to `out`.
    pub fn push(&mut self, frames: &[u8], out: &mut Vec<MediaPacket>) -> usize {
        framer!(self, p => p.push(frames, out))
    }
    /// The loss the receiver reported (`fraction_lost`, 0 to 1): an Opus encoder with
    /// in-band FEC plans for it; PCM has nothing to plan.
    pub fn on_reported_loss(&mut self, fraction_lost: f64) {
        match self {
            Framer::Pcm(_) => {
                let _ = fraction_lost;
            }
            #[cfg(feature = "opus")]
            Framer::Opus(e) => e.on_reported_loss(fraction_lost),
        }
    }

    /// Emits what is held (a partial group) into `out`.
    pub fn flush(&mut self, out: &mut Vec<MediaPacket>) {
        framer!(self, p => p.flush(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_media::{AudioSpec, SampleFormat};

    fn cfg() -> SenderConfig {
        SenderConfig::new(AudioSpec {
            rate: 48_000,
            channels: 2,
            format: SampleFormat::S16,
        })
    }

    #[test]
    fn pcm_framer_forwards_to_the_packetizer() {
        let c = cfg();
        let mut f = Framer::new(&c, 5, 2, 100, 1000).unwrap();
        assert!(matches!(f, Framer::Pcm(_)));
        assert_eq!((f.packets(), f.next_seq(), f.position()), (0, 100, 0));
        let n = f.frames_to_complete_group();
        let mut out = Vec::new();
        f.push(&vec![0u8; n * 4], &mut out);
        assert!(!out.is_empty());
        assert_eq!(f.packets(), out.len() as u64);
        assert_eq!(f.next_seq(), 100u16.wrapping_add(out.len() as u16));
        assert_eq!(f.position(), n as u64);
        f.skip(10);
        assert_eq!(f.position(), n as u64 + 10);
    }

    #[cfg(not(feature = "opus"))]
    #[test]
    fn opus_without_the_feature_is_refused() {
        let mut c = cfg();
        c.codec = Codec::Opus(crate::config::OpusParams::new(2));
        assert!(Framer::new(&c, 5, 2, 0, 0).is_err());
    }
}
