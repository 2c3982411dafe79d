//! Helpers shared by the FEC unit tests: a tiny RNG, RTP datagrams, whole blocks, and a
//! receiver that feeds a decoder as the session does.

use bytes::{BufMut, Bytes, BytesMut};

use super::{BlockDecoder, BlockEncoder, FecParams, ReedSolomonCodec, RepairHeader};
use crate::rtp::RtpHeader;
use crate::seq::SeqUnwrapper;

/// The RTP sequence number of a datagram.
pub(crate) fn rtp_seq(datagram: &[u8]) -> u16 {
    RtpHeader::parse(datagram).expect("an RTP datagram").0.seq
}

/// Tiny deterministic RNG for tests (xorshift64*).
pub(crate) struct XorShift(pub(crate) u64);
impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub(crate) const SSRC: u32 = 0x1234_5678;

pub(crate) fn rtp(seq: u16, ts: u32, len: usize, rng: &mut XorShift) -> Bytes {
    let mut b = BytesMut::with_capacity(len);
    b.put_u8(0x80);
    b.put_u8(96);
    b.put_u16(seq);
    b.put_u32(ts);
    b.put_u32(SSRC);
    while b.len() < len {
        b.put_u8(rng.next() as u8);
    }
    b.freeze()
}

/// One block of `lens.len()` source packets starting at `base_seq` and its repair packets.
pub(crate) fn make_block(
    m: u8,
    base_seq: u16,
    lens: &[usize],
    seed: u64,
) -> (Vec<Bytes>, Vec<Bytes>) {
    let k = lens.len() as u8;
    let mut rng = XorShift::new(seed);
    let mut enc = BlockEncoder::new(
        FecParams::new(k, m).unwrap(),
        SSRC,
        7,
        ReedSolomonCodec::boxed(),
    );
    let mut repairs = Vec::new();
    let sources: Vec<Bytes> = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            rtp(
                base_seq.wrapping_add(i as u16),
                1000 + 240 * i as u32,
                len,
                &mut rng,
            )
        })
        .collect();
    for s in &sources {
        enc.push(s, &mut repairs);
    }
    assert_eq!(repairs.len(), m as usize);
    assert_eq!(enc.repair_sent(), m as u64);
    (sources, repairs)
}

/// What a receiver session does: unwrap, parse, feed the decoder.
pub(crate) struct Rx {
    pub(crate) dec: BlockDecoder,
    pub(crate) unwrap: SeqUnwrapper,
    pub(crate) out: Vec<Bytes>,
}
impl Rx {
    pub(crate) fn new() -> Self {
        Rx {
            dec: BlockDecoder::new(ReedSolomonCodec::boxed()),
            unwrap: SeqUnwrapper::new(),
            out: Vec::new(),
        }
    }
    pub(crate) fn source(&mut self, d: &Bytes) {
        let e = self.unwrap.extend(rtp_seq(d) as u64);
        self.dec.push_source(e, d, &mut self.out);
    }
    pub(crate) fn repair(&mut self, d: &[u8]) {
        let (h, shard) = RepairHeader::parse(d).expect("valid repair packet");
        let e = self.unwrap.peek(h.base_seq as u64);
        self.dec.push_repair(e, &h, shard, &mut self.out);
    }
    pub(crate) fn deliver(&mut self, k: usize, all: &[Bytes], i: usize) {
        if i < k {
            self.source(&all[i]);
        } else {
            self.repair(&all[i]);
        }
    }
}

pub(crate) fn sorted(v: &[Bytes]) -> Vec<Bytes> {
    let mut v = v.to_vec();
    v.sort();
    v
}
