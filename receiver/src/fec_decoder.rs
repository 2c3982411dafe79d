//! FEC decoder stage: the second stage of a substream's receive chain. It wraps the
//! transport's [`BlockDecoder`] (Reed-Solomon, any K of a block's K + M packets rebuild it)
//! and hands the rebuilt media datagrams onward.
//!
//! Source datagrams are copied into the stage's own [`Slab`] (chunks of four packets), so a
//! kept packet does not pin the driver's receive arena, and only those the decoder stores
//! are copied; blocks more than
//! [`KEEP_BEHIND`] packets behind the newest source packet are forgotten, so memory stays
//! bounded and a late repair never delays anything. Rebuilt datagrams are appended to a
//! caller's vector (reused, so the steady state allocates nothing); they still have to pass
//! the arrival stage's duplicate window ([`crate::arrival::Arrival::admit_rebuilt`]).

use bytes::Bytes;
use isostream_transport::fec::{
    BlockDecoder, DecoderLimits, FecStats, ReedSolomonCodec, RepairHeader, MAX_SHARDS,
    SHARD_PREFIX_LEN,
};

use crate::budget::Slab;

/// How far behind the newest source packet blocks are kept, in packets: half the arrival
/// stage's duplicate window, so a packet of a forgotten block is still known as a duplicate.
pub const KEEP_BEHIND: u64 = crate::arrival::DEDUPE_WINDOW as u64 / 2;

/// The FEC decoder stage of one substream.
#[derive(Debug)]
pub struct FecDecoder {
    decoder: BlockDecoder,
    slab: Slab,
    /// Most the slab's live chunks may take, in bytes; beyond it the oldest sources go.
    slab_cap_bytes: usize,
}

/// Source packets a decoder keeps at most: the window behind the newest packet, the
/// packets before it that a block straddling it still needs, and one.
pub const WINDOW_PACKETS: usize = KEEP_BEHIND as usize + MAX_SHARDS + 1;
/// Blocks a decoder of a stream without a description tracks at most.
pub const STOCK_BLOCKS: usize = 256;

impl Default for FecDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FecDecoder {
    /// A decoder with the Reed-Solomon codec, the transport's hard caps and nothing stored.
    pub fn new() -> Self {
        Self::with_limits(DecoderLimits::default())
    }

    /// A decoder keeping no more than `limits`.
    pub fn with_limits(limits: DecoderLimits) -> Self {
        FecDecoder {
            decoder: BlockDecoder::with_limits(Box::new(ReedSolomonCodec::new()), limits),
            slab: Slab::new(Self::chunk_bytes(&limits)),
            slab_cap_bytes: Self::slab_cap_bytes(&limits),
        }
    }

    /// The limits for a stream whose datagrams are at most `packet_bytes` long and whose
    /// blocks have `block` = (k, m) source and repair packets (`None`: unknown, a stock
    /// stream): the window of [`WINDOW_PACKETS`] source packets, the blocks that cover it
    /// and the repair packets that protect it ([`STOCK_BLOCKS`] blocks of any shape, one
    /// repair packet per two source packets, for a stock stream).
    pub fn limits(packet_bytes: usize, block: Option<(u8, u8)>) -> DecoderLimits {
        let shard = packet_bytes + SHARD_PREFIX_LEN;
        let (blocks, repairs, max_m) = match block {
            Some((k, m)) => {
                let blocks = WINDOW_PACKETS / k.max(1) as usize + 2;
                (blocks, blocks * m as usize, m)
            }
            None => (STOCK_BLOCKS, WINDOW_PACKETS / 2, (MAX_SHARDS - 1) as u8),
        };
        DecoderLimits {
            max_sources: WINDOW_PACKETS,
            max_source_bytes: WINDOW_PACKETS * packet_bytes,
            max_blocks: blocks,
            max_repair_bytes: repairs.saturating_mul(shard),
            max_shard_bytes: shard,
            max_m,
        }
    }

    fn chunk_bytes(limits: &DecoderLimits) -> usize {
        (4 * limits.max_shard_bytes).clamp(1 << 10, 64 << 10)
    }

    /// The source bytes, a quarter more and two chunks: packets arriving in order (or
    /// nearly) never reach it.
    fn slab_cap_bytes(limits: &DecoderLimits) -> usize {
        let chunk = Self::chunk_bytes(limits);
        let b = limits.max_source_bytes;
        b.saturating_add(b / 4).saturating_add(2 * chunk)
    }

    /// The most a decoder under `limits` allocates, in bytes: the transport decoder's state
    /// and the slab of source copies (its cap, one more chunk, and the chunks' index).
    pub fn memory_bytes(limits: &DecoderLimits) -> usize {
        let chunk = Self::chunk_bytes(limits);
        let index = 2 * (limits.max_sources + 2) * (std::mem::size_of::<Bytes>() + 8);
        limits
            .memory_bytes()
            .saturating_add(Self::slab_cap_bytes(limits))
            .saturating_add(chunk + index)
    }

    /// A fresh source datagram with extended sequence number `ext`. Appends what it lets the
    /// decoder rebuild to `rebuilt`, in sequence order.
    pub fn on_source(&mut self, ext: u64, datagram: &Bytes, rebuilt: &mut Vec<Bytes>) {
        if self.decoder.would_store(ext) {
            let copy = self.slab.copy(datagram);
            self.decoder.push_source(ext, &copy, rebuilt);
            // packets out of order can leave chunks alive for one packet each: forget the
            // oldest sources until the chunks fit (the one being filled always stays)
            while self.slab.live_bytes() > self.slab_cap_bytes && self.decoder.evict_oldest_source()
            {
                self.slab.live_bytes_now();
            }
        } else {
            // late or a duplicate: only counted
            self.decoder.push_source(ext, datagram, rebuilt);
        }
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

    /// Bytes of the slab's chunks still alive (the copies of stored sources).
    pub fn slab_bytes(&self) -> usize {
        self.slab.live_bytes()
    }

    /// Bytes of source datagrams stored.
    pub fn stored_source_bytes(&self) -> usize {
        self.decoder.stored_source_bytes()
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
    fn kept_sources_are_copies_within_the_limits() {
        let limits = FecDecoder::limits(52, Some((8, 2)));
        assert_eq!(limits.max_shard_bytes, 54);
        let mut dec = FecDecoder::with_limits(limits);
        let mut rebuilt = Vec::new();
        // a datagram that is a slice of a large arena: the copy does not keep it
        let arena = Bytes::from(packet(7).to_vec().repeat(100));
        let d = arena.slice(0..52);
        dec.on_source(1 << 16, &d, &mut rebuilt);
        drop(d);
        assert!(arena.is_unique());
        assert_eq!(dec.stored_source_bytes(), 52);
        // a duplicate is counted, not stored again
        dec.on_source(1 << 16, &packet(7), &mut rebuilt);
        assert_eq!(dec.stats().source_packets_duplicate, 1);
        assert_eq!(dec.stored_source_bytes(), 52);
        for i in 1..5_000u64 {
            dec.on_source((1 << 16) + i, &packet(i as u16), &mut rebuilt);
            assert!(dec.stored_source_bytes() <= limits.max_source_bytes);
        }
        assert!(FecDecoder::memory_bytes(&limits) < 2 << 20);
    }

    #[test]
    fn packets_out_of_order_cannot_keep_the_slab_beyond_its_cap() {
        let limits = FecDecoder::limits(52, Some((8, 2)));
        let mut dec = FecDecoder::with_limits(limits);
        let mut rebuilt = Vec::new();
        let cap = FecDecoder::slab_cap_bytes(&limits) + FecDecoder::chunk_bytes(&limits);
        let base = 1u64 << 20;
        // a bad order: each chunk (19 packets) gets one packet at the top of the window,
        // which lives long, and 18 that fill holes at its bottom, which die at once
        let mut peak = 0;
        for round in 70..20_000u64 {
            let top = base + 19 * round;
            dec.on_source(top, &packet(top as u16), &mut rebuilt);
            let holes = base + 19 * (round - 66) - 18;
            for h in holes..holes + 18 {
                dec.on_source(h, &packet(h as u16), &mut rebuilt);
            }
            peak = peak.max(dec.slab_bytes());
            assert!(dec.slab_bytes() <= cap, "{} > {cap}", dec.slab_bytes());
            assert!(dec.stored_source_bytes() <= limits.max_source_bytes);
        }
        assert!(peak > 40 * 1024, "the pattern pins chunks: {peak}");
        assert!(cap <= FecDecoder::memory_bytes(&limits));
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
