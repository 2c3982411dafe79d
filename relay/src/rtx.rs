//! Retransmissions from the store (RFC 4588, SSRC-multiplexed), as the sender makes them
//! (docs/PROTOCOL.md, section 5): the original's RTP header with payload type 109, the RTX
//! stream's sequence number and SSRC, then the original sequence number, then the original
//! payload.

use bytes::{BufMut, Bytes, BytesMut};
use isostream_transport::rtp::{self, RtpHeader};

/// The retransmission of `original` (a stored media datagram) on RTX stream `rtx_ssrc` with
/// RTX sequence number `rtx_seq`, built in `arena` (refilled in 64 KiB pieces, so a burst of
/// answers costs no allocation each). `None` if `original` does not parse.
pub fn retransmission(
    arena: &mut BytesMut,
    original: &[u8],
    rtx_ssrc: u32,
    rtx_seq: u16,
) -> Option<Bytes> {
    let (h, payload) = RtpHeader::parse(original).ok()?;
    let len = rtp::HEADER_LEN + 2 + payload.len();
    if arena.capacity() < len {
        *arena = BytesMut::with_capacity(len.max(64 << 10));
    }
    RtpHeader {
        marker: h.marker,
        payload_type: rtp::PT_RTX,
        seq: rtx_seq,
        timestamp: h.timestamp,
        ssrc: rtx_ssrc,
    }
    .write(arena);
    arena.put_u16(h.seq);
    arena.put_slice(payload);
    Some(arena.split().freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retransmission_is_two_bytes_longer_and_names_its_original() {
        let mut b = BytesMut::new();
        RtpHeader {
            marker: true,
            payload_type: rtp::PT_L16,
            seq: 0x7c31,
            timestamp: 0x5f3e_2a10,
            ssrc: 0x1a2b_3c4d,
        }
        .write(&mut b);
        b.put_slice(&[1, 0, 0xff, 0, 0x7f, 0xff, 0x80, 0]);
        let mut arena = BytesMut::new();
        let r = retransmission(&mut arena, &b, 0x3c4d_5e6f, 0x2a00).unwrap();
        assert_eq!(
            &r[..],
            &[
                0x80, 0xed, 0x2a, 0x00, 0x5f, 0x3e, 0x2a, 0x10, 0x3c, 0x4d, 0x5e, 0x6f, 0x7c, 0x31,
                1, 0, 0xff, 0, 0x7f, 0xff, 0x80, 0
            ]
        );
        let (h, p) = RtpHeader::parse(&r).unwrap();
        assert_eq!(rtp::parse_rtx(p).unwrap(), (0x7c31, &b[12..]));
        assert_eq!(h.payload_type, rtp::PT_RTX);
        assert!(retransmission(&mut arena, &[0x80, 0], 1, 1).is_none());
    }
}
