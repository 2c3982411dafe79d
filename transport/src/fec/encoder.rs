//! The sender side: source datagrams in, repair datagrams out, one block at a time.

use std::fmt;

use bytes::{Bytes, BytesMut};

use super::codec::ErasureCodec;
use super::header::RepairHeader;
use super::lengths::{MAX_SOURCE_LEN, REPAIR_HEADER_LEN};
use super::params::FecParams;
use crate::rtp::RtpHeader;

/// Sender side: groups consecutive source RTP datagrams into blocks of `k` and emits `m`
/// repair datagrams per block.
///
/// One copy per source datagram (into a reused shard buffer); repair shards are computed in
/// place inside the outgoing datagrams.
pub struct BlockEncoder {
    params: FecParams,
    ssrc: u32,
    next_repair_seq: u16,
    codec: Box<dyn ErasureCodec>,
    /// Shard buffers of the current block, reused between blocks (`len` of the first `count`
    /// is `2 + datagram length` until the block is closed).
    data: Vec<Vec<u8>>,
    count: usize,
    base_seq: u16,
    base_ts: u32,
    repair_sent: u64,
    rejected: u64,
    /// Repair datagrams are built in this arena and split off, so a block costs no
    /// allocation of its own (one per [`ENCODER_ARENA_BYTES`] of repair traffic).
    arena: BytesMut,
    /// The current block's repair datagrams while they are computed (reused).
    repairs: Vec<BytesMut>,
}

/// Size of the encoder's arena for repair datagrams, in bytes.
const ENCODER_ARENA_BYTES: usize = 256 * 1024;

impl fmt::Debug for BlockEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockEncoder")
            .field("params", &self.params)
            .field("ssrc", &self.ssrc)
            .field("next_repair_seq", &self.next_repair_seq)
            .field("pending", &self.count)
            .field("repair_sent", &self.repair_sent)
            .finish()
    }
}

impl BlockEncoder {
    /// An encoder for the stream `ssrc`; its repair datagrams are numbered from
    /// `first_repair_seq` upwards (wrapping).
    ///
    /// # Panics
    /// If `params` is invalid (only possible when built through the public fields; see
    /// [`FecParams::new`]).
    pub fn new(
        params: FecParams,
        ssrc: u32,
        first_repair_seq: u16,
        codec: Box<dyn ErasureCodec>,
    ) -> Self {
        if let Err(e) = params.validate() {
            panic!("BlockEncoder::new: {e}");
        }
        BlockEncoder {
            params,
            ssrc,
            next_repair_seq: first_repair_seq,
            codec,
            data: (0..params.k).map(|_| Vec::new()).collect(),
            count: 0,
            base_seq: 0,
            base_ts: 0,
            repair_sent: 0,
            rejected: 0,
            arena: BytesMut::new(),
            repairs: Vec::with_capacity(params.m as usize),
        }
    }

    /// Adds one source RTP datagram (already has its seq/ts). When the block reaches k packets,
    /// appends the m repair datagrams to `out`.
    ///
    /// A datagram whose sequence number does not follow the previous one closes the current
    /// block early (as [`flush`](Self::flush) does) and starts a new block. Datagrams that are
    /// not RTP (see [`RtpHeader::parse`]) or longer than [`MAX_SOURCE_LEN`] are not protected
    /// (counted by [`rejected`](Self::rejected)).
    pub fn push(&mut self, source: &[u8], out: &mut Vec<Bytes>) {
        let rtp = match RtpHeader::parse(source) {
            Ok((h, _)) if source.len() <= MAX_SOURCE_LEN => h,
            _ => {
                self.rejected += 1;
                return;
            }
        };
        if self.count > 0 && rtp.seq != self.base_seq.wrapping_add(self.count as u16) {
            self.flush(out);
        }
        if self.count == 0 {
            self.base_seq = rtp.seq;
            self.base_ts = rtp.timestamp;
        }
        let buf = &mut self.data[self.count];
        buf.clear();
        buf.extend_from_slice(&(source.len() as u16).to_be_bytes());
        buf.extend_from_slice(source);
        self.count += 1;
        if self.count == self.params.k as usize {
            self.flush(out);
        }
    }

    /// Closes a partial block (end of stream), appending its repair packets; no-op if empty.
    pub fn flush(&mut self, out: &mut Vec<Bytes>) {
        let k = self.count;
        if k == 0 {
            return;
        }
        self.count = 0;
        let m = self.params.m as usize;
        let data = &mut self.data[..k];
        let shard_len = data.iter().map(Vec::len).max().unwrap_or(0);
        for d in data.iter_mut() {
            d.resize(shard_len, 0);
        }
        let datagram_len = REPAIR_HEADER_LEN + shard_len;
        if self.arena.capacity() < m * datagram_len {
            self.arena = BytesMut::with_capacity(ENCODER_ARENA_BYTES.max(m * datagram_len));
        }
        let repairs = &mut self.repairs;
        repairs.clear();
        for index in 0..m {
            let header = RepairHeader {
                seq: self.next_repair_seq.wrapping_add(index as u16),
                timestamp: self.base_ts,
                ssrc: self.ssrc,
                base_seq: self.base_seq,
                k: k as u8,
                m: m as u8,
                index: index as u8,
                shard_len: shard_len as u16,
            };
            header.write(&mut self.arena);
            self.arena.resize(datagram_len, 0);
            repairs.push(self.arena.split());
        }
        let mut shards: Vec<&mut [u8]> = data
            .iter_mut()
            .map(|d| d.as_mut_slice())
            .chain(repairs.iter_mut().map(|b| &mut b[REPAIR_HEADER_LEN..]))
            .collect();
        match self.codec.encode(k, m, &mut shards) {
            Ok(()) => {
                out.extend(repairs.drain(..).map(BytesMut::freeze));
                self.next_repair_seq = self.next_repair_seq.wrapping_add(m as u16);
                self.repair_sent += m as u64;
            }
            Err(e) => {
                // Only reachable with a faulty codec: parameters were validated in `new`.
                debug_assert!(false, "FEC encode failed: {e}");
                self.rejected += k as u64;
            }
        }
    }

    /// Repair datagrams emitted so far, in packets.
    pub fn repair_sent(&self) -> u64 {
        self.repair_sent
    }

    /// Source datagrams that could not be protected (too short, too long, or a codec failure),
    /// in packets.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Source datagrams in the current, still open block, in packets.
    pub fn pending(&self) -> usize {
        self.count
    }

    /// Sequence number the next repair datagram will carry.
    pub fn next_repair_seq(&self) -> u16 {
        self.next_repair_seq
    }

    /// The block geometry this encoder was built with.
    pub fn params(&self) -> FecParams {
        self.params
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::fec::testutil::*;
    use crate::fec::{BlockDecoder, ReedSolomonCodec};

    /// Documentation example (docs/_fec_section.md): k=2, m=1, two tiny source packets.
    #[test]
    fn documented_example_packet() {
        let s0: &[u8] = &[
            0x80, 0x60, 0xff, 0xff, 0x00, 0x00, 0x03, 0xe8, 0x12, 0x34, 0x56, 0x78, 0x01, 0x02,
        ];
        let s1: &[u8] = &[
            0x80, 0x60, 0x00, 0x00, 0x00, 0x00, 0x04, 0xb0, 0x12, 0x34, 0x56, 0x78, 0x03,
        ];
        let mut enc = BlockEncoder::new(
            FecParams::new(2, 1).unwrap(),
            0x1234_5678,
            0x0100,
            ReedSolomonCodec::boxed(),
        );
        let mut out = Vec::new();
        enc.push(s0, &mut out);
        enc.push(s1, &mut out);
        let hex: String = out[0].iter().map(|b| format!("{b:02x}")).collect();
        println!("{hex}");
        assert_eq!(
            hex,
            concat!(
                "806e0100000003e812345678",         // RTP header
                "ffff020100000010",                 // FEC header
                "000880601c1c00000d58123456780506"  // repair shard 0 (L = 16 bytes)
            )
        );
        // and it really repairs the loss of s0
        let mut dec = BlockDecoder::new(ReedSolomonCodec::boxed());
        let mut rec = Vec::new();
        dec.push_source(65_536 + 65_536, &Bytes::copy_from_slice(s1), &mut rec);
        let (h, shard) = RepairHeader::parse(&out[0]).unwrap();
        dec.push_repair(65_536 + 65_535, &h, shard, &mut rec);
        assert_eq!(rec, vec![Bytes::copy_from_slice(s0)]);
    }

    #[test]
    fn flushed_partial_block_is_recovered() {
        let mut rng = XorShift::new(3);
        let mut enc = BlockEncoder::new(
            FecParams::new(8, 2).unwrap(),
            SSRC,
            0,
            ReedSolomonCodec::boxed(),
        );
        let mut repairs = Vec::new();
        let sources: Vec<Bytes> = (0..11u16)
            .map(|i| rtp(100 + i, 0, 40 + 13 * i as usize, &mut rng))
            .collect();
        for s in &sources {
            enc.push(s, &mut repairs);
        }
        assert_eq!((repairs.len(), enc.pending()), (2, 3));
        enc.flush(&mut repairs);
        enc.flush(&mut repairs); // no-op
        assert_eq!((repairs.len(), enc.repair_sent(), enc.pending()), (4, 4, 0));
        let (h, _) = RepairHeader::parse(&repairs[2]).unwrap();
        assert_eq!((h.base_seq, h.k, h.m, h.index, h.seq), (108, 3, 2, 0, 2));

        // lose two of the three packets of the short block; repairs arrive first
        let mut rx = Rx::new();
        for s in &sources[..8] {
            rx.source(s);
        }
        rx.repair(&repairs[3]);
        rx.repair(&repairs[2]);
        assert!(rx.out.is_empty());
        rx.source(&sources[9]);
        assert_eq!(rx.out, vec![sources[8].clone(), sources[10].clone()]);
    }

    #[test]
    fn source_gap_closes_block_early() {
        let mut rng = XorShift::new(5);
        let mut enc = BlockEncoder::new(
            FecParams::new(4, 1).unwrap(),
            SSRC,
            0,
            ReedSolomonCodec::boxed(),
        );
        let mut repairs = Vec::new();
        for seq in [10u16, 11, 20, 21, 22, 23] {
            enc.push(&rtp(seq, 0, 50, &mut rng), &mut repairs);
        }
        let hs: Vec<_> = repairs
            .iter()
            .map(|r| RepairHeader::parse(r).unwrap().0)
            .collect();
        assert_eq!(
            hs.iter().map(|h| (h.base_seq, h.k)).collect::<Vec<_>>(),
            [(10, 2), (20, 4)]
        );
        enc.push(&[0u8; 5], &mut repairs);
        assert_eq!(enc.rejected(), 1);
    }
}
