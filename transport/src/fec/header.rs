//! The wire format of a repair datagram and of a source shard (drawn in the
//! [module docs](super)): the header's fields, parsing and writing (its length constants are
//! `lengths.rs`').

use bytes::{BufMut, BytesMut};

use super::error::FecError;
use super::lengths::{MIN_SHARD_LEN, REPAIR_HEADER_LEN};
use super::params::check_km;
use crate::rtp::{self, RtpHeader};

/// The 20 header bytes of a repair datagram (RTP fixed header + FEC header), decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RepairHeader {
    /// RTP sequence number of this repair datagram (its own 16-bit space per SSRC), in packets.
    pub seq: u16,
    /// RTP timestamp of the block's first source packet, in media clock ticks (frames).
    pub timestamp: u32,
    /// SSRC of the protected media stream.
    pub ssrc: u32,
    /// RTP sequence number of the block's first source packet (the block is
    /// `base_seq, base_seq + 1, ..., base_seq + k - 1`, wrapping mod 2^16).
    pub base_seq: u16,
    /// Number of source packets in the block (1..=254); the last block may be short.
    pub k: u8,
    /// Number of repair packets in the block (1..=254, `k + m <= 255`).
    pub m: u8,
    /// Which repair shard this datagram carries (0..m).
    pub index: u8,
    /// Length of every shard of the block, in bytes (max source datagram length + 2).
    pub shard_len: u16,
}

impl RepairHeader {
    /// Whether `k`, `m` and `index` are in range (see the field docs).
    pub fn is_consistent(&self) -> bool {
        check_km(self.k as usize, self.m as usize).is_ok()
            && self.index < self.m
            && self.shard_len as usize >= MIN_SHARD_LEN
    }

    /// Parses a repair datagram into its header and its shard (a borrow of `datagram`).
    ///
    /// Never panics; rejects anything that is not exactly `20 + L` bytes of a well-formed
    /// repair packet. The reserved byte and the RTP marker bit are ignored.
    pub fn parse(datagram: &[u8]) -> Result<(RepairHeader, &[u8]), FecError> {
        if datagram.len() < REPAIR_HEADER_LEN {
            return Err(FecError::Truncated {
                len: datagram.len(),
            });
        }
        let (h, shard) = datagram.split_at(REPAIR_HEADER_LEN);
        if h[0] != rtp::PLAIN_FIRST_BYTE {
            return Err(FecError::BadRtpHeader(h[0]));
        }
        // A plain first byte (no padding, extension or CSRC): the RTP payload is the FEC header.
        let (r, f) = RtpHeader::parse(h).map_err(|_| FecError::BadRtpHeader(h[0]))?;
        if r.payload_type != rtp::PT_REPAIR {
            return Err(FecError::WrongPayloadType(r.payload_type));
        }
        let be16 = |i: usize| u16::from_be_bytes([f[i], f[i + 1]]);
        let header = RepairHeader {
            seq: r.seq,
            timestamp: r.timestamp,
            ssrc: r.ssrc,
            base_seq: be16(0),
            k: f[2],
            m: f[3],
            index: f[4],
            // f[5] is reserved
            shard_len: be16(6),
        };
        if check_km(header.k as usize, header.m as usize).is_err() || header.index >= header.m {
            return Err(FecError::BadFecHeader {
                k: header.k,
                m: header.m,
                index: header.index,
            });
        }
        let declared = header.shard_len as usize;
        if declared != shard.len() || declared < MIN_SHARD_LEN {
            return Err(FecError::ShardLength {
                declared,
                actual: shard.len(),
            });
        }
        Ok((header, shard))
    }

    /// Appends the 20 header bytes to `out` (the caller appends the `shard_len` shard bytes).
    pub fn write(&self, out: &mut BytesMut) {
        out.reserve(REPAIR_HEADER_LEN);
        RtpHeader {
            marker: false,
            payload_type: rtp::PT_REPAIR,
            seq: self.seq,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        }
        .write(out);
        out.put_u16(self.base_seq);
        out.put_u8(self.k);
        out.put_u8(self.m);
        out.put_u8(self.index);
        out.put_u8(0);
        out.put_u16(self.shard_len);
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn repair_header_round_trips() {
        let h = RepairHeader {
            seq: 65_535,
            timestamp: 0xdead_beef,
            ssrc: 0x0102_0304,
            base_seq: 4242,
            k: 18,
            m: 10,
            index: 9,
            shard_len: 962,
        };
        let mut b = BytesMut::new();
        h.write(&mut b);
        assert_eq!(b.len(), REPAIR_HEADER_LEN);
        b.extend_from_slice(&vec![0xab; 962]);
        let (back, shard) = RepairHeader::parse(&b).unwrap();
        assert_eq!(back, h);
        assert_eq!(shard, &vec![0xab; 962][..]);
        // marker bit and reserved byte are ignored on receipt
        b[1] |= 0x80;
        b[17] = 0x55;
        assert_eq!(RepairHeader::parse(&b).unwrap().0, h);
    }

    #[test]
    fn parse_rejects_truncated_and_garbage() {
        let h = RepairHeader {
            seq: 1,
            timestamp: 2,
            ssrc: 3,
            base_seq: 4,
            k: 4,
            m: 2,
            index: 1,
            shard_len: 20,
        };
        let mut good = BytesMut::new();
        h.write(&mut good);
        good.extend_from_slice(&[7; 20]);
        assert!(RepairHeader::parse(&good).is_ok());
        for len in 0..good.len() {
            assert!(
                RepairHeader::parse(&good[..len]).is_err(),
                "truncated to {len}"
            );
        }
        let mut longer = good.to_vec();
        longer.push(0);
        assert!(matches!(
            RepairHeader::parse(&longer),
            Err(FecError::ShardLength { .. })
        ));
        let tweak = |i: usize, v: u8| {
            let mut b = good.to_vec();
            b[i] = v;
            RepairHeader::parse(&b).map(|_| ())
        };
        assert_eq!(tweak(0, 0x40), Err(FecError::BadRtpHeader(0x40))); // V=1
        assert_eq!(tweak(0, 0xa0), Err(FecError::BadRtpHeader(0xa0))); // padding
        assert_eq!(tweak(0, 0x81), Err(FecError::BadRtpHeader(0x81))); // CSRC
        assert_eq!(tweak(1, 96), Err(FecError::WrongPayloadType(96)));
        assert!(matches!(tweak(14, 0), Err(FecError::BadFecHeader { .. }))); // k = 0
        assert!(matches!(tweak(15, 0), Err(FecError::BadFecHeader { .. }))); // m = 0
        assert!(matches!(tweak(16, 2), Err(FecError::BadFecHeader { .. }))); // index = m
        assert!(matches!(tweak(14, 254), Err(FecError::BadFecHeader { .. }))); // k + m > 255
        assert!(matches!(tweak(19, 21), Err(FecError::ShardLength { .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn parse_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = RepairHeader::parse(&bytes);
            // the same bytes behind a valid-looking prefix
            let mut b = vec![0x80, rtp::PT_REPAIR];
            b.extend_from_slice(&bytes);
            if let Ok((h, shard)) = RepairHeader::parse(&b) {
                prop_assert_eq!(shard.len(), h.shard_len as usize);
                prop_assert!(h.is_consistent());
            }
        }
    }
}
