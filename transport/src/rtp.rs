//! RTP media packets (RFC 3550, section 5.1) and the payload types isostream uses.
//!
//! Media payloads are wire frames (see `isostream-media`): L16 (RFC 3551), L24 (RFC 3190) or
//! big-endian float, optionally sample-interleaved (see [`crate::interleave`]).

use bytes::{BufMut, BytesMut};

use crate::WireError;

/// Length of the fixed RTP header, in bytes.
pub const HEADER_LEN: usize = 12;
/// First byte of a plain header as isostream writes it: version 2, no padding, no header
/// extension, no CSRC.
pub const PLAIN_FIRST_BYTE: u8 = 0x80;

/// Dynamic payload type of plain L16 (16-bit big-endian PCM), as stock tools expect it.
pub const PT_L16: u8 = 96;
/// Dynamic payload type of plain L24 (24-bit big-endian PCM, RFC 3190).
pub const PT_L24: u8 = 97;
/// Dynamic payload type of plain 32-bit big-endian IEEE float PCM (isostream-specific).
pub const PT_F32: u8 = 98;
/// Dynamic payload type of Opus (RFC 7587, `opus/48000/2`), as ffmpeg and GStreamer send it.
pub const PT_OPUS: u8 = 111;
/// Offset from a plain payload type to its sample-interleaved form (100, 101, 102).
pub const PT_INTERLEAVED_OFFSET: u8 = 4;
/// Payload type of repair packets (see [`crate::fec`]).
pub const PT_REPAIR: u8 = 110;
/// Payload type of retransmissions (RFC 4588, SSRC-multiplexed; `a=rtpmap:109 rtx/RATE` with
/// `apt` the media payload type). Stock receivers do not know it and drop it.
pub const PT_RTX: u8 = 109;
/// Static payload type 10 of RFC 3551: L16, 44.1 kHz, 2 channels.
pub const PT_STATIC_L16_STEREO: u8 = 10;
/// Static payload type 11 of RFC 3551: L16, 44.1 kHz, 1 channel.
pub const PT_STATIC_L16_MONO: u8 = 11;

/// The fields of an RTP header that isostream uses. CSRCs and header extensions of stock
/// senders are skipped on parse and never written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit: set on the first packet after a silence or a discontinuity.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number, +1 per packet of this SSRC, wrapping.
    pub seq: u16,
    /// Media timestamp of the first frame in the packet, in frames (samples per channel).
    pub timestamp: u32,
    /// Synchronisation source: random per stream and per sender run.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Parses an RTP datagram and returns the header and the payload (padding removed).
    ///
    /// Errors on anything that is not a well-formed RTP version 2 packet; never panics.
    pub fn parse(d: &[u8]) -> Result<(RtpHeader, &[u8]), WireError> {
        if d.len() < HEADER_LEN {
            return Err(WireError::Truncated {
                needed: HEADER_LEN,
                got: d.len(),
            });
        }
        if d[0] >> 6 != 2 {
            return Err(WireError::BadVersion(d[0] >> 6));
        }
        let padding = d[0] & 0x20 != 0;
        let extension = d[0] & 0x10 != 0;
        let csrc_count = (d[0] & 0x0f) as usize;
        let mut off = HEADER_LEN + 4 * csrc_count;
        if extension {
            if d.len() < off + 4 {
                return Err(WireError::Truncated {
                    needed: off + 4,
                    got: d.len(),
                });
            }
            let words = u16::from_be_bytes([d[off + 2], d[off + 3]]) as usize;
            off += 4 + 4 * words;
        }
        let mut end = d.len();
        if padding {
            let pad = *d.last().unwrap_or(&0) as usize;
            if pad == 0 || pad > end {
                return Err(WireError::BadPadding);
            }
            end -= pad;
        }
        if off > end {
            return Err(WireError::Truncated {
                needed: off,
                got: end,
            });
        }
        let h = RtpHeader {
            marker: d[1] & 0x80 != 0,
            payload_type: d[1] & 0x7f,
            seq: u16::from_be_bytes([d[2], d[3]]),
            timestamp: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
            ssrc: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
        };
        Ok((h, &d[off..end]))
    }

    /// Appends the 12-byte fixed header (no CSRC, no extension, no padding) to `out`.
    pub fn write(&self, out: &mut BytesMut) {
        out.put_u8(PLAIN_FIRST_BYTE);
        out.put_u8(((self.marker as u8) << 7) | (self.payload_type & 0x7f));
        out.put_u16(self.seq);
        out.put_u32(self.timestamp);
        out.put_u32(self.ssrc);
    }
}

/// The original sequence number and payload of a retransmission's payload (RFC 4588,
/// section 4: the OSN, then the original payload).
pub fn parse_rtx(payload: &[u8]) -> Result<(u16, &[u8]), WireError> {
    if payload.len() < 2 {
        return Err(WireError::Truncated {
            needed: 2,
            got: payload.len(),
        });
    }
    Ok((u16::from_be_bytes([payload[0], payload[1]]), &payload[2..]))
}

/// What a datagram on the session's port is, by RFC 5761 demultiplexing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatagramKind {
    /// RTCP: the second byte is a packet type in 192..=223.
    Rtcp,
    /// An RTP repair packet (payload type [`PT_REPAIR`]).
    Repair,
    /// A retransmission (RFC 4588, payload type [`PT_RTX`]): a lost media packet sent again.
    Retransmission,
    /// An RTP media packet (any other payload type).
    Media,
    /// Not RTP version 2 at all, or too short to tell.
    Foreign,
}

/// Classifies a datagram without parsing it fully (RFC 5761, section 4).
pub fn classify(d: &[u8]) -> DatagramKind {
    if d.len() < 4 || d[0] >> 6 != 2 {
        return DatagramKind::Foreign;
    }
    match d[1] {
        192..=223 => DatagramKind::Rtcp,
        b if b & 0x7f == PT_REPAIR => DatagramKind::Repair,
        b if b & 0x7f == PT_RTX => DatagramKind::Retransmission,
        _ => DatagramKind::Media,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = RtpHeader {
            marker: true,
            payload_type: PT_L16,
            seq: 65_535,
            timestamp: 0xdead_beef,
            ssrc: 0x0102_0304,
        };
        let mut b = BytesMut::new();
        h.write(&mut b);
        b.put_slice(&[1, 2, 3, 4]);
        let (p, payload) = RtpHeader::parse(&b).unwrap();
        assert_eq!(p, h);
        assert_eq!(payload, &[1, 2, 3, 4]);
        assert_eq!(classify(&b), DatagramKind::Media);
    }

    #[test]
    fn csrc_extension_and_padding_of_stock_senders_are_skipped() {
        // V=2 P=1 X=1 CC=1, PT 96
        let mut d = vec![0xb1, 96, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7];
        d.extend_from_slice(&[0xaa; 4]); // CSRC
        d.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension, one word
        d.extend_from_slice(&[5, 6]); // payload
        d.extend_from_slice(&[0, 2]); // padding of 2
        let (h, payload) = RtpHeader::parse(&d).unwrap();
        assert_eq!((h.seq, h.timestamp, h.ssrc), (1, 9, 7));
        assert_eq!(payload, &[5, 6]);
    }

    #[test]
    fn rtcp_is_told_apart_from_rtp() {
        assert_eq!(classify(&[0x80, 200, 0, 6]), DatagramKind::Rtcp);
        assert_eq!(classify(&[0x80, PT_REPAIR, 0, 6]), DatagramKind::Repair);
        assert_eq!(classify(&[0x00, 96, 0, 6]), DatagramKind::Foreign);
        assert_eq!(classify(&[0x80]), DatagramKind::Foreign);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_without_panic(d in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = RtpHeader::parse(&d);
            let _ = classify(&d);
        }
    }
}
