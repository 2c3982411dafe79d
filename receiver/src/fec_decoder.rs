//! FEC decoder stage: the second stage of a substream's receive chain. It wraps the
//! transport's [`BlockDecoder`] (Reed-Solomon, any K of a block's K + M packets rebuild it)
//! and hands the rebuilt media datagrams onward.
//!
//! Source datagrams are kept as [`Bytes`] references (no copy); blocks more than
//! [`KEEP_BEHIND`] packets behind the newest source packet are forgotten, so memory stays
//! bounded and a late repair never delays anything. Rebuilt datagrams are appended to a
//! caller's vector (reused, so the steady state allocates nothing); they still have to pass
//! the arrival stage's duplicate window ([`crate::arrival::Arrival::admit_rebuilt`]).

use bytes::Bytes;
use isostream_transport::fec::{BlockDecoder, FecStats, ReedSolomonCodec, RepairHeader};

/// How far behind the newest source packet blocks are kept, in packets: half the arrival
/// stage's duplicate window, so a packet of a forgotten block is still known as a duplicate.
pub const KEEP_BEHIND: u64 = crate::arrival::DEDUPE_WINDOW as u64 / 2;

/// The FEC decoder stage of one substream.
#[derive(Debug)]
pub struct FecDecoder {
    decoder: BlockDecoder,
}

impl Default for FecDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FecDecoder {
    /// A decoder with the Reed-Solomon codec and nothing stored.
    pub fn new() -> Self {
        FecDecoder {
            decoder: BlockDecoder::new(Box::new(ReedSolomonCodec::new())),
        }
    }

    /// A fresh source datagram with extended sequence number `ext`. Appends what it lets the
    /// decoder rebuild to `rebuilt`, in sequence order.
    pub fn on_source(&mut self, ext: u64, datagram: &Bytes, rebuilt: &mut Vec<Bytes>) {
        self.decoder.push_source(ext, datagram, rebuilt);
        self.decoder.expire_before(ext.saturating_sub(KEEP_BEHIND));
    }

    /// A repair datagram (`header`, `shard`) whose first source packet has extended sequence
    /// number `base_ext`. Appends what it lets the decoder rebuild to `rebuilt`.
    pub fn on_repair(
        &mut self,
        base_ext: u64,
        header: &RepairHeader,
        shard: &[u8],
        rebuilt: &mut Vec<Bytes>,
    ) {
        self.decoder.push_repair(base_ext, header, shard, rebuilt);
    }

    /// The decoder's counters.
    pub fn stats(&self) -> FecStats {
        self.decoder.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use isostream_transport::fec::{BlockEncoder, FecParams};
    use isostream_transport::rtp::RtpHeader;

    fn packet(seq: u16) -> Bytes {
        let mut b = BytesMut::new();
        RtpHeader {
            marker: false,
            payload_type: 96,
            seq,
            timestamp: seq as u32 * 10,
            ssrc: 9,
        }
        .write(&mut b);
        b.extend_from_slice(&[seq as u8; 40]);
        b.freeze()
    }

    #[test]
    fn a_lost_packet_is_rebuilt_from_a_repair_packet() {
        let mut enc = BlockEncoder::new(FecParams { k: 4, m: 1 }, 9, 0, ReedSolomonCodec::boxed());
        let sources: Vec<Bytes> = (0..4).map(packet).collect();
        let mut repairs = Vec::new();
        for s in &sources {
            enc.push(s, &mut repairs);
        }
        assert_eq!(repairs.len(), 1);
        let mut dec = FecDecoder::new();
        let mut rebuilt = Vec::new();
        let base = 1 << 16;
        for (i, s) in sources.iter().enumerate() {
            if i != 2 {
                dec.on_source(base + i as u64, s, &mut rebuilt);
            }
        }
        assert!(rebuilt.is_empty());
        let (h, shard) = RepairHeader::parse(&repairs[0]).unwrap();
        dec.on_repair(base, &h, shard, &mut rebuilt);
        assert_eq!(rebuilt, vec![sources[2].clone()]);
        assert_eq!(dec.stats().repair_packets_received, 1);
    }

    #[test]
    fn nothing_is_rebuilt_without_enough_packets() {
        let mut enc = BlockEncoder::new(FecParams { k: 4, m: 1 }, 9, 0, ReedSolomonCodec::boxed());
        let mut repairs = Vec::new();
        let sources: Vec<Bytes> = (0..4).map(packet).collect();
        for s in &sources {
            enc.push(s, &mut repairs);
        }
        let mut dec = FecDecoder::new();
        let mut rebuilt = Vec::new();
        dec.on_source(1 << 16, &sources[0], &mut rebuilt);
        let (h, shard) = RepairHeader::parse(&repairs[0]).unwrap();
        dec.on_repair(1 << 16, &h, shard, &mut rebuilt);
        assert!(rebuilt.is_empty());
    }
}
