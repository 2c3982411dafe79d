//! Opus encoder stage (feature `opus`): takes the place of the [`crate::packetizer`] for
//! `--codec opus`. One job: wire frames of one substream in, RFC 7587 RTP packets out.
//!
//! Every packet carries one Opus packet of one frame duration (2.5, 5, 10 or 20 ms) and is
//! stamped with the RTP timestamp (48 kHz) of the first input frame it encodes. The encoder
//! delays the audio by its lookahead (`pre_skip`, 312 frames at 48 kHz for
//! `Application::Audio`): the receiver does not remove it, so the decoded output at position
//! `p` is the input at `p - pre_skip` (documented in docs/PROTOCOL.md, section Opus). At the
//! end of the input the last partial frame is padded with silence.

use bytes::{BufMut, BytesMut};
use isostream_media::SampleFormat;
use isostream_transport::rtp::{self, RtpHeader};

pub use crate::config::OpusParams;
use crate::packetizer::MediaPacket;

/// Largest Opus packet this stage writes, in bytes (RFC 7587 recommends well under the MTU;
/// 1275 is the largest single-frame Opus packet).
pub const MAX_PACKET_BYTES: usize = 1275;

/// Arena size for packet buffers (one allocation per this many bytes, not per packet).
const ARENA_BYTES: usize = 64 * 1024;

/// Why the encoder could not be made.
#[derive(Debug, thiserror::Error)]
pub enum OpusSetupError {
    /// libopus refused the settings.
    #[error("Opus encoder: {0}")]
    Opus(String),
    /// Opus codes one or two channels per stream.
    #[error("Opus carries 1 or 2 channels per substream, not {0}: use --substreams")]
    Channels(u16),
}

/// Encodes one substream's frames into RTP/Opus packets. See the module documentation.
pub struct OpusEncoder {
    enc: opus::Encoder,
    /// In-band FEC is on: the planned loss follows the receiver's reports.
    inband_fec: bool,
    /// The loss libopus plans in-band FEC for, in percent.
    planned_loss_percent: u8,
    ssrc: u32,
    pt: u8,
    channels: usize,
    format: SampleFormat,
    frame_bytes: usize,
    packet_frames: usize,
    seq: u16,
    ts_base: u32,
    /// Media position (frames) of the first frame of the packet being filled.
    packet_pos: u64,
    /// Samples of the packet being filled (interleaved).
    pcm: Vec<i16>,
    fill: usize,
    /// Frames of real input taken (the padding of the last packet excluded).
    taken: u64,
    out: Vec<u8>,
    arena: BytesMut,
    first: bool,
    discontinuity: bool,
    packets: u64,
    errors: u64,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("ssrc", &self.ssrc)
            .field("channels", &self.channels)
            .field("packet_frames", &self.packet_frames)
            .field("packets", &self.packets)
            .finish()
    }
}

impl OpusEncoder {
    /// An encoder for a substream of `channels` channels of 48 kHz `format` wire frames.
    pub fn new(
        ssrc: u32,
        channels: u16,
        format: SampleFormat,
        params: &OpusParams,
        first_seq: u16,
        ts_base: u32,
    ) -> Result<Self, OpusSetupError> {
        let ch = match channels {
            1 => opus::Channels::Mono,
            2 => opus::Channels::Stereo,
            n => return Err(OpusSetupError::Channels(n)),
        };
        let e = |x: opus::Error| OpusSetupError::Opus(x.to_string());
        let mut enc = opus::Encoder::new(48_000, ch, opus::Application::Audio).map_err(e)?;
        enc.set_bitrate(opus::Bitrate::Bits(params.bitrate as i32))
            .map_err(e)?;
        enc.set_inband_fec(params.inband_fec).map_err(e)?;
        enc.set_packet_loss_perc(params.expected_loss_percent.min(100) as i32)
            .map_err(e)?;
        let packet_frames = params.frame_frames() as usize;
        Ok(OpusEncoder {
            enc,
            inband_fec: params.inband_fec,
            planned_loss_percent: params.expected_loss_percent.min(100),
            ssrc,
            pt: params.payload_type,
            channels: channels as usize,
            format,
            frame_bytes: channels as usize * format.bytes(),
            packet_frames,
            seq: first_seq,
            ts_base,
            packet_pos: 0,
            pcm: vec![0; packet_frames * channels as usize],
            fill: 0,
            taken: 0,
            out: vec![0; MAX_PACKET_BYTES],
            arena: BytesMut::with_capacity(ARENA_BYTES),
            first: true,
            discontinuity: false,
            packets: 0,
            errors: 0,
        })
    }

    /// With in-band FEC, plans it for the loss the receiver reported (`fraction_lost`, 0 to
    /// 1, from its latest receiver report), rounded up and kept within
    /// [`crate::config::MIN_PLANNED_LOSS_PERCENT`] and
    /// [`crate::config::MAX_PLANNED_LOSS_PERCENT`]. Without in-band FEC it does nothing.
    pub fn on_reported_loss(&mut self, fraction_lost: f64) {
        if !self.inband_fec {
            return;
        }
        let percent = (fraction_lost * 100.0).ceil().clamp(
            f64::from(crate::config::MIN_PLANNED_LOSS_PERCENT),
            f64::from(crate::config::MAX_PLANNED_LOSS_PERCENT),
        ) as u8;
        if percent != self.planned_loss_percent
            && self.enc.set_packet_loss_perc(i32::from(percent)).is_ok()
        {
            self.planned_loss_percent = percent;
        }
    }

    /// The loss the encoder plans in-band FEC for now, in percent.
    pub fn planned_loss_percent(&self) -> u8 {
        self.planned_loss_percent
    }

    /// The encoder's lookahead (the decoded audio's delay), in frames at 48 kHz.
    pub fn pre_skip(&mut self) -> u32 {
        self.enc.get_lookahead().map_or(0, |v| v.max(0) as u32)
    }

    /// Frames this stage takes before it emits a packet.
    pub fn group_frames(&self) -> usize {
        self.packet_frames
    }

    /// Frames still needed to complete the current packet.
    pub fn frames_to_complete_group(&self) -> usize {
        self.packet_frames - self.fill
    }

    /// Packets made so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Frames libopus failed to encode (sent as silence; should stay 0).
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// The sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// Media position (frames) just past the last input frame taken (padding excluded).
    pub fn position(&self) -> u64 {
        self.taken
    }

    /// Skips `frames` frames of media time (a live source paused); only with an empty
    /// packet. The next packet has the marker bit set.
    pub fn skip(&mut self, frames: u64) {
        debug_assert_eq!(self.fill, 0);
        self.packet_pos += frames;
        self.taken = self.packet_pos;
        self.discontinuity = true;
    }

    /// Takes wire frames (at most [`Self::frames_to_complete_group`]), appending the packet
    /// to `out` when one is complete. Returns frames taken.
    pub fn push(&mut self, frames: &[u8], out: &mut Vec<MediaPacket>) -> usize {
        let n = (frames.len() / self.frame_bytes).min(self.packet_frames - self.fill);
        let sb = self.format.bytes();
        let dst = &mut self.pcm[self.fill * self.channels..(self.fill + n) * self.channels];
        for (d, s) in dst.iter_mut().zip(frames.chunks_exact(sb)) {
            *d = match self.format {
                SampleFormat::S16 => i16::from_be_bytes([s[0], s[1]]),
                f => (f.decode(s) * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16,
            };
        }
        self.fill += n;
        self.taken += n as u64;
        if self.fill == self.packet_frames {
            self.emit(self.packet_frames, out);
        }
        n
    }

    /// Emits the partial packet at the end of the stream (padded with silence), if any.
    pub fn flush(&mut self, out: &mut Vec<MediaPacket>) {
        if self.fill > 0 {
            let real = self.fill;
            self.pcm[self.fill * self.channels..].fill(0);
            self.emit(real, out);
        }
    }

    /// Encodes the packet being filled, of which `real` frames are input (the rest padding).
    fn emit(&mut self, real: usize, out: &mut Vec<MediaPacket>) {
        let len = match self.enc.encode(&self.pcm, &mut self.out) {
            Ok(n) => n,
            Err(_) => {
                // cannot happen with valid settings; a zero-length payload is concealed
                self.errors += 1;
                0
            }
        };
        if self.arena.capacity() - self.arena.len() < rtp::HEADER_LEN + len {
            self.arena = BytesMut::with_capacity(ARENA_BYTES);
        }
        RtpHeader {
            marker: self.first || self.discontinuity,
            payload_type: self.pt,
            seq: self.seq,
            timestamp: self.ts_base.wrapping_add(self.packet_pos as u32),
            ssrc: self.ssrc,
        }
        .write(&mut self.arena);
        self.arena.put_slice(&self.out[..len]);
        self.first = false;
        self.discontinuity = false;
        self.seq = self.seq.wrapping_add(1);
        self.packets += 1;
        out.push(MediaPacket {
            datagram: self.arena.split().freeze(),
            frames: real as u32,
            ends_group: true,
        });
        self.packet_pos += self.packet_frames as u64;
        self.fill = 0;
    }
}

/// Bytes of one datagram this stage makes at most (header included).
pub fn max_datagram_bytes() -> usize {
    rtp::HEADER_LEN + MAX_PACKET_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frames: usize, channels: usize) -> Vec<u8> {
        (0..frames * channels)
            .flat_map(|i| {
                let t = (i / channels) as f32 / 48_000.0;
                (((t * 440.0 * std::f32::consts::TAU).sin() * 8_000.0) as i16).to_be_bytes()
            })
            .collect()
    }

    #[test]
    fn packets_carry_one_opus_frame_with_48_khz_timestamps() {
        let p = OpusParams::new(2);
        let mut e = OpusEncoder::new(7, 2, SampleFormat::S16, &p, 65_535, 1000).unwrap();
        let input = tone(48_000, 2);
        let mut out = Vec::new();
        let mut taken = 0;
        while taken < 48_000 - 100 {
            taken += e.push(&input[taken * 4..(48_000 - 100) * 4], &mut out);
        }
        e.flush(&mut out);
        assert_eq!(out.len(), 50);
        assert_eq!(e.position(), 48_000 - 100);
        let mut decoder = opus::Decoder::new(48_000, opus::Channels::Stereo).unwrap();
        let mut pcm = vec![0i16; 960 * 2];
        for (i, m) in out.iter().enumerate() {
            let (h, payload) = RtpHeader::parse(&m.datagram).unwrap();
            assert_eq!(h.payload_type, 111);
            assert_eq!(h.seq, 65_535u16.wrapping_add(i as u16));
            assert_eq!(h.timestamp, 1000 + 960 * i as u32);
            assert_eq!(h.marker, i == 0);
            assert_eq!(m.frames, if i < 49 { 960 } else { 860 });
            assert!(payload.len() < 128_000 / 8 / 50 * 2, "{}", payload.len());
            assert_eq!(decoder.decode(payload, &mut pcm, false).unwrap(), 960);
        }
        assert_eq!(e.errors(), 0);
    }

    #[test]
    fn with_inband_fec_the_planned_loss_follows_the_receiver_reports() {
        let p = OpusParams::new(2);
        assert!(!p.inband_fec, "in-band FEC is opt-in");
        let mut e = OpusEncoder::new(1, 2, SampleFormat::S16, &p, 0, 0).unwrap();
        e.on_reported_loss(0.3);
        assert_eq!(
            e.planned_loss_percent(),
            0,
            "without in-band FEC nothing is planned"
        );
        let p = p.with_inband_fec();
        let mut e = OpusEncoder::new(1, 2, SampleFormat::S16, &p, 0, 0).unwrap();
        assert_eq!(
            e.planned_loss_percent(),
            crate::config::INITIAL_PLANNED_LOSS_PERCENT
        );
        for (reported, planned) in [(0.3, 30), (0.021, 3), (0.0, 1), (0.9, 50)] {
            e.on_reported_loss(reported);
            assert_eq!(e.planned_loss_percent(), planned, "{reported}");
        }
    }

    #[test]
    fn frame_durations_parse_and_more_than_two_channels_are_refused() {
        assert_eq!(OpusParams::parse_frame_ms("2.5"), Some(5));
        assert_eq!(OpusParams::parse_frame_ms("20"), Some(40));
        assert_eq!(OpusParams::parse_frame_ms("40"), None);
        assert_eq!(OpusParams::new(1).bitrate, 64_000);
        let p = OpusParams::new(2);
        assert!(OpusEncoder::new(1, 3, SampleFormat::S16, &p, 0, 0).is_err());
        let mut e = OpusEncoder::new(1, 1, SampleFormat::S24, &p, 0, 0).unwrap();
        assert!(e.pre_skip() > 0);
    }
}
