//! Session layout: what a session carries, from its description or, for a stock RTP stream
//! without one, from its first packet; and whether the receiver can play it (whether its
//! buffers fit the memory budget, [`Layout::admit`], is measured beside the substreams').

use isostream_media::{AudioSpec, SampleFormat};
use isostream_transport::fec::DecoderLimits;
use isostream_transport::rtcp::SessionDesc;
use isostream_transport::time::MediaClock;
use isostream_transport::{interleave, rtp};

use crate::config::ReceiverConfig;
use crate::deinterleaver::payload_format;
use crate::fec_decoder::FecDecoder;

/// Sample rates a session may have, in Hz.
pub const MIN_RATE: u32 = 1_000;
/// Largest sample rate a session may have, in Hz.
pub const MAX_RATE: u32 = 768_000;
/// Largest jitter buffer memory a session may ask for (all substreams), in bytes.
pub const MAX_BUFFER_BYTES: usize = 512 << 20;

/// Longest datagram assumed of a stream without a description (a stock sender's, one MTU),
/// in bytes: the FEC decoder's window is sized for it.
pub const STOCK_PACKET_BYTES: usize = 1500;
/// Room for an RTP header's CSRCs and extension beyond the fixed header, in bytes.
pub const HEADER_SLACK_BYTES: usize = 64;

/// One substream of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubstreamLayout {
    /// Its SSRC.
    pub ssrc: u32,
    /// Channels it carries.
    pub channels: u16,
    /// The RTP timestamp of media position 0 (`None`: the first packet's).
    pub ts_base: Option<u32>,
    /// The SSRC of its retransmission stream, if the sender answers NACKs.
    pub rtx_ssrc: Option<u32>,
}

/// How the sender cuts and protects the stream, as far as asking for lost packets goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Framing {
    /// Frames per packet (0: unknown, a stock stream).
    pub packet_frames: u32,
    /// Interleave depth D.
    pub interleave: u8,
    /// Packets per FEC block, source and repair (0: no FEC).
    pub block_packets: u32,
    /// Repair packets per FEC block (0: no FEC).
    pub repair_packets: u32,
    /// FEC blocks whose transmission is spread over one another.
    pub spread: u8,
}

/// What a session carries.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// The output format: all substreams' channels.
    pub spec: AudioSpec,
    /// The substreams, in output order.
    pub substreams: Vec<SubstreamLayout>,
    /// Whether repair packets may come (a stock stream's are decoded if they do).
    pub fec: bool,
    /// Whether the source is live.
    pub live: bool,
    /// No description yet: a stock sender, or an isostream sender whose first description
    /// was lost (a later one replaces the session).
    pub provisional: bool,
    /// Packet size, interleaving and FEC blocks (unknown for a stock stream).
    pub framing: Framing,
    /// The media are Opus (RFC 7587), decoded to 16-bit at 48 kHz.
    pub opus: bool,
}

/// What an Opus substream's decoder allocates, in bytes (0 in a build without Opus, which
/// plays no Opus session).
pub fn opus_memory_bytes(channels: u16) -> usize {
    #[cfg(feature = "opus")]
    return crate::opus_decoder::OpusDecoder::memory_bytes(channels);
    #[cfg(not(feature = "opus"))]
    {
        let _ = channels;
        0
    }
}

impl Layout {
    /// The layout a session description announces, `None` if its sample format is unknown.
    pub fn described(d: &SessionDesc) -> Option<Layout> {
        let format = SampleFormat::from_code(d.format)?;
        let opus = match d.codec {
            isostream_transport::rtcp::CODEC_PCM => false,
            // an Opus session is unusable in a build without Opus, like an unknown format
            isostream_transport::rtcp::CODEC_OPUS if cfg!(feature = "opus") => true,
            _ => return None,
        };
        if opus && (d.rate != 48_000 || format != SampleFormat::S16 || d.interleave != 1) {
            return None;
        }
        let substreams: Vec<SubstreamLayout> = d
            .substreams
            .iter()
            .map(|s| SubstreamLayout {
                ssrc: s.ssrc,
                channels: s.channels as u16,
                ts_base: Some(s.ts_base),
                rtx_ssrc: s.rtx_ssrc,
            })
            .collect();
        Some(Layout {
            spec: AudioSpec {
                rate: d.rate,
                channels: substreams.iter().map(|s| s.channels).sum(),
                format,
            },
            substreams,
            fec: d.fec_k > 0,
            live: d.live,
            provisional: false,
            framing: Framing {
                packet_frames: d.packet_frames as u32,
                interleave: d.interleave,
                block_packets: if d.fec_k > 0 {
                    d.fec_k as u32 + d.fec_m as u32
                } else {
                    0
                },
                repair_packets: if d.fec_k > 0 { d.fec_m as u32 } else { 0 },
                spread: d.spread,
            },
            opus,
        })
    }

    /// The layout of a stock stream (SSRC `ssrc`) whose first packet has payload type `pt`:
    /// `default_spec`, except what the payload type says. `stock_l16` names a payload type
    /// that carries plain L16.
    pub fn stock(default_spec: AudioSpec, ssrc: u32, pt: u8, stock_l16: Option<u8>) -> Layout {
        let mut spec = default_spec;
        let opus = pt == rtp::PT_OPUS && cfg!(feature = "opus");
        match pt {
            // RFC 7587: opus/48000/2, whatever the sender codes; decoded as stereo 16-bit
            rtp::PT_OPUS if opus => {
                spec = AudioSpec {
                    rate: 48_000,
                    channels: 2,
                    format: SampleFormat::S16,
                }
            }
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
                if let Some((f, _)) = payload_format(pt, stock_l16) {
                    spec.format = f;
                }
            }
        }
        Layout {
            spec,
            substreams: vec![SubstreamLayout {
                ssrc,
                channels: spec.channels,
                ts_base: None,
                rtx_ssrc: None,
            }],
            fec: true,
            live: false,
            provisional: true,
            framing: Framing::default(),
            opus,
        }
    }

    /// Channels of each substream, in output order.
    pub fn channels(&self) -> Vec<u16> {
        self.substreams.iter().map(|s| s.channels).collect()
    }

    /// The longest media datagram of a substream of `channels` channels, in bytes (for a
    /// stock stream, [`STOCK_PACKET_BYTES`]).
    pub fn packet_bytes(&self, channels: u16) -> usize {
        if self.opus {
            return rtp::HEADER_LEN + HEADER_SLACK_BYTES + 1275;
        }
        match self.framing.packet_frames {
            0 => STOCK_PACKET_BYTES,
            frames => {
                rtp::HEADER_LEN
                    + interleave::HEADER_LEN
                    + HEADER_SLACK_BYTES
                    + frames as usize * channels as usize * self.spec.format.bytes()
            }
        }
    }

    /// What the FEC decoder of a substream of `channels` channels may keep (`None`: no FEC):
    /// its window of source packets and the repair packets the description's block shape
    /// sends with them (a stock stream: as many repair as source packets).
    pub fn fec_limits(&self, channels: u16) -> Option<DecoderLimits> {
        if !self.fec {
            return None;
        }
        let f = self.framing;
        let k = f.block_packets.saturating_sub(f.repair_packets);
        let block = (k > 0).then(|| (k.min(255) as u8, f.repair_packets.min(255) as u8));
        Some(FecDecoder::limits(self.packet_bytes(channels), block))
    }

    /// The jitter buffer capacity under `cfg`, in frames, if the rate and channels can be
    /// played (whatever the memory).
    pub(crate) fn capacity_frames(&self, cfg: &ReceiverConfig) -> Option<usize> {
        let spec = self.spec;
        if !(MIN_RATE..=MAX_RATE).contains(&spec.rate) || spec.channels == 0 {
            return None;
        }
        let clock = MediaClock::new(spec.rate);
        Some(clock.frames_in_ms(cfg.high_water_ms + cfg.headroom_ms) as usize)
    }

    /// The jitter buffer capacity of each substream under `cfg`, in frames; `None` if the
    /// session cannot be played (rate out of range, no channels, or more buffer memory than
    /// [`MAX_BUFFER_BYTES`]).
    pub fn buffer_frames(&self, cfg: &ReceiverConfig) -> Option<usize> {
        let capacity = self.capacity_frames(cfg)?;
        let spec = self.spec;
        // a description (or a forged one) asking for more memory than any sane stream
        (capacity.saturating_mul(spec.frame_bytes()) <= MAX_BUFFER_BYTES).then_some(capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::MemoryBudget;
    use isostream_transport::rtcp::SubstreamDesc;

    fn desc(rate: u32, channels: &[u8]) -> SessionDesc {
        SessionDesc {
            codec: 0,
            rate,
            format: SampleFormat::S24.code(),
            interleave: 1,
            fec_k: 8,
            fec_m: 2,
            spread: 1,
            live: true,
            packet_frames: 240,
            substreams: channels
                .iter()
                .enumerate()
                .map(|(i, &c)| SubstreamDesc {
                    ssrc: 10 + i as u32,
                    ts_base: 1000 * i as u32,
                    channels: c,
                    rtx_ssrc: None,
                })
                .collect(),
        }
    }

    #[test]
    fn a_description_gives_every_substream_and_the_output_format() {
        let l = Layout::described(&desc(48_000, &[2, 1])).unwrap();
        assert_eq!(l.spec.channels, 3);
        assert_eq!(l.spec.format, SampleFormat::S24);
        assert_eq!(l.channels(), vec![2, 1]);
        assert_eq!(l.substreams[1].ts_base, Some(1000));
        assert!(l.fec && l.live && !l.provisional);
        assert!(l.buffer_frames(&ReceiverConfig::default()).is_some());
    }

    #[test]
    fn static_payload_types_imply_their_format() {
        let cfg = ReceiverConfig::default();
        let l = Layout::stock(cfg.default_spec, 5, rtp::PT_STATIC_L16_MONO, None);
        assert_eq!((l.spec.rate, l.spec.channels), (44_100, 1));
        assert!(l.provisional);
        let l = Layout::stock(cfg.default_spec, 5, rtp::PT_L24, None);
        assert_eq!(l.spec.format, SampleFormat::S24);
        let l = Layout::stock(cfg.default_spec, 5, rtp::PT_L24, Some(rtp::PT_L24));
        assert_eq!(l.spec.format, SampleFormat::S16);
    }

    #[test]
    fn unplayable_sessions_are_refused() {
        let cfg = ReceiverConfig::default();
        let l = Layout::described(&desc(500, &[2])).unwrap();
        assert_eq!(l.buffer_frames(&cfg), None);
        let l = Layout::described(&desc(768_000, &[255; 32])).unwrap();
        assert_eq!(l.buffer_frames(&cfg), None);
    }

    #[test]
    fn a_layout_is_admitted_only_within_the_memory_budget() {
        let cfg = ReceiverConfig::default();
        let stereo = Layout::described(&desc(48_000, &[2])).unwrap();
        assert_eq!(stereo.admit(&cfg), Ok(stereo.buffer_frames(&cfg).unwrap()));
        // the description the audit found: 32 substreams of 255 channels
        let huge = Layout::described(&desc(768_000, &[255; 32])).unwrap();
        let e = huge.admit(&cfg).unwrap_err().unwrap();
        assert!(e.needed_bytes > 1 << 30, "{e}");
        assert_eq!(
            e.available_bytes,
            MemoryBudget::new(cfg.memory_budget_bytes).session_bytes()
        );
        // even its buffers beyond the jitter buffer alone exceed the budget
        let short = ReceiverConfig {
            high_water_ms: 20,
            headroom_ms: 0,
            low_water_ms: 10,
            ..cfg.clone()
        };
        assert!(huge.admit(&short).unwrap_err().is_some());
        // the caller's output queue counts too
        let queued = ReceiverConfig {
            output_queue_ms: 4_000,
            ..cfg.clone()
        };
        let a = stereo.admit(&cfg);
        let medium = Layout::described(&desc(192_000, &[8, 8])).unwrap();
        let fits = |c: &ReceiverConfig| {
            let b = ReceiverConfig {
                memory_budget_bytes: 160 << 20,
                ..c.clone()
            };
            medium.admit(&b).is_ok()
        };
        assert!(
            fits(&cfg)
                && !fits(&ReceiverConfig {
                    output_queue_ms: 60_000,
                    ..cfg.clone()
                })
        );
        assert_eq!(stereo.admit(&queued), a);
        // a smaller budget refuses what a larger one takes
        let small = ReceiverConfig {
            memory_budget_bytes: crate::budget::MIN_MEMORY_BUDGET_BYTES,
            ..cfg.clone()
        };
        let wide = Layout::described(&desc(96_000, &[8, 8])).unwrap();
        let large = ReceiverConfig {
            memory_budget_bytes: 256 << 20,
            ..cfg.clone()
        };
        assert!(wide.admit(&large).is_ok());
        assert!(wide.admit(&small).unwrap_err().is_some());
        // unplayable is not a budget matter
        let slow = Layout::described(&desc(500, &[2])).unwrap();
        assert_eq!(slow.admit(&cfg), Err(None));
    }

    #[test]
    fn the_fec_window_follows_the_description() {
        let l = Layout::described(&desc(48_000, &[2])).unwrap();
        let f = l.fec_limits(2).unwrap();
        // 240 frames of S24 stereo and the headers
        assert_eq!(l.packet_bytes(2), 240 * 6 + 12 + 4 + HEADER_SLACK_BYTES);
        assert_eq!(f.max_m, 2);
        assert_eq!(f.max_shard_bytes, l.packet_bytes(2) + 2);
        let stock = Layout::stock(ReceiverConfig::default().default_spec, 1, rtp::PT_L16, None);
        assert_eq!(stock.packet_bytes(2), STOCK_PACKET_BYTES);
        assert_eq!(stock.fec_limits(2).unwrap().max_m, 254);
    }
}
