//! Reed-Solomon repair packets: block encoder (sender side) and block decoder (receiver side).
//!
//! The media stream is cut into blocks of `k` consecutive source RTP datagrams. For every block
//! the sender emits `m` repair datagrams computed with a systematic Reed-Solomon code over
//! GF(2^8); the receiver can restore every source datagram of a block from **any `k` of the
//! `k + m`** datagrams of that block (the code is MDS).
//!
//! # Wire format of a repair datagram
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC=0 |M|   PT=110    |   repair sequence number      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        timestamp of the block's first source packet           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 SSRC of the protected stream                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      base sequence number     |       k       |       m       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | repair index  |  reserved = 0 |        shard length L         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 repair shard `index` (L bytes)                |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Source shard `i` (source packet `base + i`) is `[u16 BE datagram length][datagram][zeros]`,
//! `L` bytes long, with `L = max(datagram length + 2)` over the block, so recovery restores the
//! exact source datagram even when the packets of a block differ in length.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use bytes::{BufMut, Bytes, BytesMut};
use reed_solomon_erasure::galois_8::ReedSolomon;

/// RTP payload type of repair datagrams (dynamic range, fixed by this protocol).
pub const REPAIR_PAYLOAD_TYPE: u8 = 110;
/// Length of the RTP fixed header (RFC 3550), in bytes.
pub const RTP_HEADER_LEN: usize = 12;
/// Length of the FEC header that follows the RTP header in a repair datagram, in bytes.
pub const FEC_HEADER_LEN: usize = 8;
/// Total header length of a repair datagram (RTP + FEC header) before the shard, in bytes.
pub const REPAIR_HEADER_LEN: usize = RTP_HEADER_LEN + FEC_HEADER_LEN;
/// Length of the length prefix at the start of every source shard, in bytes.
pub const SHARD_PREFIX_LEN: usize = 2;
/// Largest number of shards (`k + m`) in one block: GF(2^8) codes have at most 255 useful rows.
pub const MAX_SHARDS: usize = 255;
/// Largest source datagram that can be protected, in bytes (its length must fit the u16
/// prefix and `L = length + 2` must fit the u16 shard length field).
pub const MAX_SOURCE_LEN: usize = u16::MAX as usize - SHARD_PREFIX_LEN;
/// Smallest shard length a valid repair datagram can carry, in bytes (prefix + RTP header).
pub const MIN_SHARD_LEN: usize = SHARD_PREFIX_LEN + RTP_HEADER_LEN;

/// Hard cap on the number of source datagrams a [`BlockDecoder`] keeps, in packets.
pub const DECODER_MAX_SOURCES: usize = 4096;
/// Hard cap on the number of blocks a [`BlockDecoder`] tracks, in blocks.
pub const DECODER_MAX_BLOCKS: usize = 1024;
/// Hard cap on the repair shard bytes a [`BlockDecoder`] keeps, in bytes.
pub const DECODER_MAX_REPAIR_BYTES: usize = 16 << 20;

/// Errors of the FEC layer: bad parameters, unparsable repair datagrams, codec failures.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FecError {
    /// `k` and `m` must both be at least 1 and `k + m` at most 255.
    #[error("invalid FEC parameters k={k}, m={m}: need k >= 1, m >= 1, k + m <= 255")]
    InvalidParams {
        /// Source packets per block.
        k: usize,
        /// Repair packets per block.
        m: usize,
    },
    /// A `"k,m"` string could not be parsed.
    #[error("cannot parse FEC parameters {0:?}: expected \"k,m\", e.g. \"8,2\"")]
    ParseParams(String),
    /// The datagram is shorter than a repair header.
    #[error("repair datagram truncated: {len} bytes, need at least {REPAIR_HEADER_LEN}")]
    Truncated {
        /// Length of the datagram, in bytes.
        len: usize,
    },
    /// The first byte is not `V=2, P=0, X=0, CC=0`.
    #[error("repair datagram has RTP first byte {0:#04x}, expected 0x80")]
    BadRtpHeader(u8),
    /// The RTP payload type is not [`REPAIR_PAYLOAD_TYPE`].
    #[error("payload type {0} is not the repair payload type {REPAIR_PAYLOAD_TYPE}")]
    WrongPayloadType(u8),
    /// `k`, `m` or the repair index in the FEC header are out of range.
    #[error("repair header out of range: k={k}, m={m}, index={index}")]
    BadFecHeader {
        /// Source packets per block, as received.
        k: u8,
        /// Repair packets per block, as received.
        m: u8,
        /// Repair index, as received.
        index: u8,
    },
    /// The shard length field disagrees with the bytes present, or is too small.
    #[error("repair shard length {declared} does not match the {actual} bytes present (minimum {MIN_SHARD_LEN})")]
    ShardLength {
        /// Shard length declared in the header, in bytes.
        declared: usize,
        /// Shard bytes actually present, in bytes.
        actual: usize,
    },
    /// The shards handed to the codec do not fit `k`, `m` or each other.
    #[error("shards do not match the code: {0}")]
    BadShards(&'static str),
    /// The Reed-Solomon library refused the operation.
    #[error("Reed-Solomon codec: {0}")]
    Codec(reed_solomon_erasure::Error),
}

impl From<reed_solomon_erasure::Error> for FecError {
    fn from(e: reed_solomon_erasure::Error) -> Self {
        FecError::Codec(e)
    }
}

fn check_km(k: usize, m: usize) -> Result<(), FecError> {
    if k >= 1 && m >= 1 && k + m <= MAX_SHARDS {
        Ok(())
    } else {
        Err(FecError::InvalidParams { k, m })
    }
}

/// Block geometry chosen by the sender: `k` source packets are protected by `m` repair packets.
///
/// Overhead is `m / k` (extra packets per source packet); the sender holds back repair packets
/// for `k` packet durations; any `m` losses among the `k + m` packets of a block are repaired.
/// Written and parsed as `"k,m"` (e.g. `"8,2"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FecParams {
    /// Source packets per block (1..=254, `k + m <= 255`).
    pub k: u8,
    /// Repair packets per block (1..=254, `k + m <= 255`).
    pub m: u8,
}

impl FecParams {
    /// Validated parameters: `k >= 1`, `m >= 1`, `k + m <= 255`.
    pub fn new(k: u8, m: u8) -> Result<Self, FecError> {
        check_km(k as usize, m as usize)?;
        Ok(FecParams { k, m })
    }

    /// Checks parameters built directly through the public fields.
    pub fn validate(&self) -> Result<(), FecError> {
        check_km(self.k as usize, self.m as usize)
    }

    /// Packet overhead `m / k`: repair packets sent per source packet (dimensionless).
    pub fn overhead(&self) -> f64 {
        self.m as f64 / self.k as f64
    }

    /// Sender-side delay a block adds before its repair packets can leave: `k` packet durations.
    pub fn block_duration(&self, packet_duration: std::time::Duration) -> std::time::Duration {
        packet_duration * self.k as u32
    }
}

impl fmt::Display for FecParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.k, self.m)
    }
}

impl FromStr for FecParams {
    type Err = FecError;

    fn from_str(s: &str) -> Result<Self, FecError> {
        let bad = || FecError::ParseParams(s.to_string());
        let (k, m) = s.split_once(',').ok_or_else(bad)?;
        let k: u8 = k.trim().parse().map_err(|_| bad())?;
        let m: u8 = m.trim().parse().map_err(|_| bad())?;
        FecParams::new(k, m)
    }
}

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
        if h[0] != 0x80 {
            return Err(FecError::BadRtpHeader(h[0]));
        }
        let pt = h[1] & 0x7f;
        if pt != REPAIR_PAYLOAD_TYPE {
            return Err(FecError::WrongPayloadType(pt));
        }
        let be16 = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let header = RepairHeader {
            seq: be16(2),
            timestamp: be32(4),
            ssrc: be32(8),
            base_seq: be16(12),
            k: h[14],
            m: h[15],
            index: h[16],
            // h[17] is reserved
            shard_len: be16(18),
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
        out.put_u8(0x80);
        out.put_u8(REPAIR_PAYLOAD_TYPE);
        out.put_u16(self.seq);
        out.put_u32(self.timestamp);
        out.put_u32(self.ssrc);
        out.put_u16(self.base_seq);
        out.put_u8(self.k);
        out.put_u8(self.m);
        out.put_u8(self.index);
        out.put_u8(0);
        out.put_u16(self.shard_len);
    }
}

/// Small internal interface to an erasure code, so that another Reed-Solomon implementation
/// can be measured against [`ReedSolomonCodec`].
///
/// Shards are caller-owned buffers of equal length (bytes); the codec must not allocate per call
/// beyond what it caches per `(k, m)`.
pub trait ErasureCodec: Send {
    /// Computes the `m` parity shards `shards[k..k + m]` from the data shards `shards[..k]`.
    fn encode(&mut self, k: usize, m: usize, shards: &mut [&mut [u8]]) -> Result<(), FecError>;

    /// Restores every data shard `shards[i].0` (`i < k`) whose flag `shards[i].1` is `false`
    /// from any `k` present shards. Buffers of absent shards have unspecified contents on entry;
    /// absent parity shards may be left untouched.
    fn reconstruct(
        &mut self,
        k: usize,
        m: usize,
        shards: &mut [(&mut [u8], bool)],
    ) -> Result<(), FecError>;
}

/// How many `(k, m)` codes a [`ReedSolomonCodec`] keeps ready (the regular and the last, short
/// block of a stream, plus some slack).
const CODEC_CACHE: usize = 4;

/// [`ErasureCodec`] over the `reed-solomon-erasure` crate (GF(2^8), Vandermonde-derived
/// systematic matrix), caching the encoding matrix per `(k, m)`.
#[derive(Default)]
pub struct ReedSolomonCodec {
    /// Most recently used last.
    cache: Vec<((usize, usize), ReedSolomon)>,
}

impl fmt::Debug for ReedSolomonCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<_> = self.cache.iter().map(|(km, _)| *km).collect();
        f.debug_struct("ReedSolomonCodec")
            .field("cached", &keys)
            .finish()
    }
}

impl ReedSolomonCodec {
    /// A codec with an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// A boxed codec, as [`BlockEncoder::new`] and [`BlockDecoder::new`] take it.
    pub fn boxed() -> Box<dyn ErasureCodec> {
        Box::new(Self::new())
    }

    fn code(&mut self, k: usize, m: usize) -> Result<&ReedSolomon, FecError> {
        check_km(k, m)?;
        match self.cache.iter().position(|(km, _)| *km == (k, m)) {
            Some(i) if i + 1 == self.cache.len() => {}
            Some(i) => {
                let entry = self.cache.remove(i);
                self.cache.push(entry);
            }
            None => {
                let rs = ReedSolomon::new(k, m)?;
                if self.cache.len() >= CODEC_CACHE {
                    self.cache.remove(0);
                }
                self.cache.push(((k, m), rs));
            }
        }
        match self.cache.last() {
            Some((_, rs)) => Ok(rs),
            None => Err(FecError::InvalidParams { k, m }),
        }
    }
}

impl ErasureCodec for ReedSolomonCodec {
    fn encode(&mut self, k: usize, m: usize, shards: &mut [&mut [u8]]) -> Result<(), FecError> {
        if shards.len() != k + m {
            return Err(FecError::BadShards("shard count is not k + m"));
        }
        self.code(k, m)?.encode(shards)?;
        Ok(())
    }

    fn reconstruct(
        &mut self,
        k: usize,
        m: usize,
        shards: &mut [(&mut [u8], bool)],
    ) -> Result<(), FecError> {
        if shards.len() != k + m {
            return Err(FecError::BadShards("shard count is not k + m"));
        }
        self.code(k, m)?.reconstruct_data(shards)?;
        Ok(())
    }
}

fn rtp_seq(datagram: &[u8]) -> u16 {
    u16::from_be_bytes([datagram[2], datagram[3]])
}

fn rtp_ts(datagram: &[u8]) -> u32 {
    u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]])
}

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
    /// block early (as [`flush`](Self::flush) does) and starts a new block. Datagrams shorter
    /// than an RTP header or longer than [`MAX_SOURCE_LEN`] are not protected (counted by
    /// [`rejected`](Self::rejected)).
    pub fn push(&mut self, source: &[u8], out: &mut Vec<Bytes>) {
        if source.len() < RTP_HEADER_LEN || source.len() > MAX_SOURCE_LEN {
            self.rejected += 1;
            return;
        }
        let seq = rtp_seq(source);
        if self.count > 0 && seq != self.base_seq.wrapping_add(self.count as u16) {
            self.flush(out);
        }
        if self.count == 0 {
            self.base_seq = seq;
            self.base_ts = rtp_ts(source);
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

/// Counters of a [`BlockDecoder`], all in packets (datagrams) unless stated otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FecStats {
    /// Repair datagrams handed to [`BlockDecoder::push_repair`].
    pub repair_received: u64,
    /// Repair datagrams whose (block, index) had already been received.
    pub repair_duplicate: u64,
    /// Repair datagrams dropped as malformed: out-of-range header, shard length mismatch,
    /// k/m/shard length inconsistent with earlier repair datagrams of the block, or a block
    /// overlapping another one.
    pub repair_malformed: u64,
    /// Repair datagrams for blocks that had already expired (playout deadline passed).
    pub repair_late: u64,
    /// Repair datagrams for blocks that were already complete or recovered.
    pub repair_unneeded: u64,
    /// Source datagrams received twice.
    pub source_duplicate: u64,
    /// Source datagrams that arrived after their slot had been forgotten.
    pub source_late: u64,
    /// Missing source datagrams restored and handed out.
    pub recovered: u64,
    /// Restored datagrams dropped because their length prefix was impossible.
    pub recovered_bad_length: u64,
    /// Blocks recovered (at least one datagram restored).
    pub blocks_recovered: u64,
    /// Blocks given up because their stored data contradicted each other (a source longer than
    /// the shard length, or a codec error).
    pub blocks_failed: u64,
    /// Source datagrams or blocks dropped early by the memory caps.
    pub evicted: u64,
}

/// Receiver state of one block, created by its first valid repair datagram.
struct Block {
    k: u8,
    m: u8,
    shard_len: u16,
    /// Repair shards by index, each `shard_len` bytes.
    repairs: Vec<Option<Vec<u8>>>,
    n_repairs: usize,
    /// Recovered, complete, or given up: later packets of this block are ignored.
    done: bool,
}

/// How many spare shard buffers a decoder keeps for reuse.
const SPARE_BUFFERS: usize = 64;

/// Receiver side: stores source datagrams (as refcounted [`Bytes`]) and repair shards, and
/// restores the missing source datagrams of a block as soon as any `k` of its `k + m`
/// datagrams are present.
///
/// Packets may arrive in any order and duplicated. Memory is bounded by
/// [`expire_before`](Self::expire_before) and by hard caps ([`DECODER_MAX_SOURCES`],
/// [`DECODER_MAX_BLOCKS`], [`DECODER_MAX_REPAIR_BYTES`]).
pub struct BlockDecoder {
    codec: Box<dyn ErasureCodec>,
    /// Received source datagrams by extended sequence number.
    sources: BTreeMap<u64, Bytes>,
    /// Known blocks by extended base sequence number; never overlapping.
    blocks: BTreeMap<u64, Block>,
    /// Playout floor: nothing before it is handed out; blocks ending at or before it are gone.
    floor: u64,
    /// Source datagrams before this have been forgotten (`retain_from <= floor`).
    retain_from: u64,
    /// Largest k seen in a valid repair header (0 = none yet).
    max_k: u8,
    repair_bytes: usize,
    /// Shard buffers for reconstruction, reused.
    scratch: Vec<Vec<u8>>,
    /// Repair shard buffers of finished blocks, reused.
    spare: Vec<Vec<u8>>,
    stats: FecStats,
}

impl fmt::Debug for BlockDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockDecoder")
            .field("sources", &self.sources.len())
            .field("blocks", &self.blocks.len())
            .field("floor", &self.floor)
            .field("stats", &self.stats)
            .finish()
    }
}

impl BlockDecoder {
    /// An empty decoder.
    pub fn new(codec: Box<dyn ErasureCodec>) -> Self {
        BlockDecoder {
            codec,
            sources: BTreeMap::new(),
            blocks: BTreeMap::new(),
            floor: 0,
            retain_from: 0,
            max_k: 0,
            repair_bytes: 0,
            scratch: Vec::new(),
            spare: Vec::new(),
            stats: FecStats::default(),
        }
    }

    /// A source datagram arrived; `ext_seq` is its 64-bit extended sequence number (see
    /// [`crate::seq`]). If this completes recovery of a block (any k of k+m present), the
    /// recovered *missing* source datagrams are appended to `out` (never ones already received),
    /// in sequence order.
    ///
    /// Recovered datagrams may be pushed back here by the caller; they are then stored like
    /// any other source datagram and do not trigger anything.
    pub fn push_source(&mut self, ext_seq: u64, datagram: &Bytes, out: &mut Vec<Bytes>) {
        if ext_seq < self.retain_from {
            self.stats.source_late += 1;
            return;
        }
        match self.sources.entry(ext_seq) {
            std::collections::btree_map::Entry::Occupied(_) => {
                self.stats.source_duplicate += 1;
                return;
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(datagram.clone());
            }
        }
        self.enforce_caps();
        let base = match self.blocks.range(..=ext_seq).next_back() {
            Some((&base, b)) if ext_seq < base + b.k as u64 && !b.done => base,
            _ => return,
        };
        self.try_recover(base, out);
    }

    /// A repair datagram arrived; `ext_base_seq` is the extended form of `header.base_seq`
    /// (the caller unwraps it) and `shard` the bytes after the header (see
    /// [`RepairHeader::parse`]). Appends recovered missing source datagrams to `out`, in
    /// sequence order.
    pub fn push_repair(
        &mut self,
        ext_base_seq: u64,
        header: &RepairHeader,
        shard: &[u8],
        out: &mut Vec<Bytes>,
    ) {
        self.stats.repair_received += 1;
        if !header.is_consistent() || shard.len() != header.shard_len as usize {
            self.stats.repair_malformed += 1;
            return;
        }
        let k = header.k as u64;
        let Some(end) = ext_base_seq.checked_add(k) else {
            self.stats.repair_malformed += 1;
            return;
        };
        if end <= self.floor {
            self.stats.repair_late += 1;
            return;
        }
        let index = header.index as usize;
        if let Some(b) = self.blocks.get_mut(&ext_base_seq) {
            if b.k != header.k || b.m != header.m || b.shard_len != header.shard_len {
                self.stats.repair_malformed += 1;
                return;
            }
            if b.done {
                self.stats.repair_unneeded += 1;
                return;
            }
            if b.repairs[index].is_some() {
                self.stats.repair_duplicate += 1;
                return;
            }
        } else {
            let overlaps_prev = self
                .blocks
                .range(..ext_base_seq)
                .next_back()
                .is_some_and(|(&pb, p)| pb + p.k as u64 > ext_base_seq);
            let overlaps_next = self
                .blocks
                .range(ext_base_seq + 1..)
                .next()
                .is_some_and(|(&nb, _)| nb < end);
            if overlaps_prev || overlaps_next {
                self.stats.repair_malformed += 1;
                return;
            }
            self.blocks.insert(
                ext_base_seq,
                Block {
                    k: header.k,
                    m: header.m,
                    shard_len: header.shard_len,
                    repairs: vec![None; header.m as usize],
                    n_repairs: 0,
                    done: false,
                },
            );
            self.max_k = self.max_k.max(header.k);
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(shard);
        self.repair_bytes += buf.len();
        if let Some(b) = self.blocks.get_mut(&ext_base_seq) {
            b.repairs[index] = Some(buf);
            b.n_repairs += 1;
        }
        self.enforce_caps();
        self.try_recover(ext_base_seq, out);
    }

    /// Forgets every block whose last source packet is before `ext_seq` and every stored source
    /// packet before it: their playout deadline has passed, so a late repair never delays
    /// playout. Bounded memory.
    ///
    /// Nothing before `ext_seq` is handed out afterwards. Source packets just before `ext_seq`
    /// (at most `k - 1`, the largest `k` seen) are kept as shards, because a block that
    /// straddles `ext_seq` still needs them to restore its later packets; they are never
    /// handed out again.
    pub fn expire_before(&mut self, ext_seq: u64) {
        if ext_seq <= self.floor {
            return;
        }
        self.floor = ext_seq;
        // before any repair datagram was seen the block length is unknown: keep the maximum
        let window = if self.max_k == 0 {
            MAX_SHARDS as u64 - 1
        } else {
            self.max_k as u64 - 1
        };
        self.retain_from = self.retain_from.max(self.floor.saturating_sub(window));
        self.drop_sources_before(self.retain_from);
        self.drop_dead_blocks();
    }

    /// Counters since creation.
    pub fn stats(&self) -> FecStats {
        self.stats
    }

    /// Source datagrams currently stored, in packets.
    pub fn stored_sources(&self) -> usize {
        self.sources.len()
    }

    /// Blocks currently tracked (each created by its first repair datagram), in blocks.
    pub fn stored_blocks(&self) -> usize {
        self.blocks.len()
    }

    fn drop_sources_before(&mut self, seq: u64) {
        if self
            .sources
            .first_key_value()
            .is_some_and(|(&s, _)| s < seq)
        {
            self.sources = self.sources.split_off(&seq);
        }
    }

    fn drop_dead_blocks(&mut self) {
        while let Some(entry) = self.blocks.first_entry() {
            if entry.key() + entry.get().k as u64 > self.floor {
                break;
            }
            let block = entry.remove();
            self.recycle(block);
        }
    }

    fn recycle(&mut self, block: Block) {
        for buf in block.repairs.into_iter().flatten() {
            self.release(buf);
        }
    }

    fn release(&mut self, buf: Vec<u8>) {
        self.repair_bytes -= buf.len();
        if self.spare.len() < SPARE_BUFFERS && buf.capacity() <= 2 * 1500 {
            self.spare.push(buf);
        }
    }

    fn finish(&mut self, base: u64) {
        if let Some(b) = self.blocks.get_mut(&base) {
            b.done = true;
            b.n_repairs = 0;
            let bufs: Vec<Vec<u8>> = b.repairs.iter_mut().filter_map(Option::take).collect();
            for buf in bufs {
                self.release(buf);
            }
        }
    }

    fn enforce_caps(&mut self) {
        while self.sources.len() > DECODER_MAX_SOURCES {
            let Some((s, _)) = self.sources.pop_first() else {
                break;
            };
            self.stats.evicted += 1;
            self.retain_from = self.retain_from.max(s + 1);
            self.floor = self.floor.max(self.retain_from);
        }
        while self.blocks.len() > DECODER_MAX_BLOCKS || self.repair_bytes > DECODER_MAX_REPAIR_BYTES
        {
            let Some((base, block)) = self.blocks.pop_first() else {
                break;
            };
            self.stats.evicted += 1;
            self.floor = self.floor.max(base + block.k as u64);
            self.recycle(block);
        }
        self.drop_dead_blocks();
    }

    fn try_recover(&mut self, base: u64, out: &mut Vec<Bytes>) {
        let Some(block) = self.blocks.get(&base) else {
            return;
        };
        if block.done {
            return;
        }
        let k = block.k as usize;
        let m = block.m as usize;
        let l = block.shard_len as usize;
        let end = base + k as u64;
        let present = self.sources.range(base..end).count();
        let first_wanted = base.max(self.floor);
        let wanted_missing = (end.saturating_sub(first_wanted) as usize)
            .saturating_sub(self.sources.range(first_wanted..end).count());
        if wanted_missing == 0 {
            // complete, or only packets past their deadline are missing
            self.finish(base);
            return;
        }
        if present + block.n_repairs < k {
            return;
        }

        // Build the shards: data from stored sources (one copy each), parity in place.
        let Self {
            codec,
            sources,
            blocks,
            scratch,
            stats,
            floor,
            ..
        } = self;
        let Some(block) = blocks.get_mut(&base) else {
            return;
        };
        if scratch.len() < k + m {
            scratch.resize_with(k + m, Vec::new);
        }
        let (data_bufs, parity_bufs) = scratch.split_at_mut(k);
        let mut consistent = true;
        let mut shards: Vec<(&mut [u8], bool)> = Vec::with_capacity(k + m);
        for (i, buf) in data_bufs.iter_mut().enumerate() {
            buf.resize(l, 0);
            let present = match sources.get(&(base + i as u64)) {
                Some(d) if d.len() + SHARD_PREFIX_LEN <= l => {
                    buf[..2].copy_from_slice(&(d.len() as u16).to_be_bytes());
                    buf[2..2 + d.len()].copy_from_slice(d);
                    buf[2 + d.len()..].fill(0);
                    true
                }
                Some(_) => {
                    consistent = false;
                    false
                }
                None => false,
            };
            shards.push((buf.as_mut_slice(), present));
        }
        for (slot, spare) in block.repairs.iter_mut().zip(parity_bufs.iter_mut()) {
            match slot {
                Some(r) => shards.push((r.as_mut_slice(), true)),
                None => {
                    spare.resize(l, 0);
                    shards.push((spare.as_mut_slice(), false));
                }
            }
        }
        if !consistent || codec.reconstruct(k, m, &mut shards).is_err() {
            drop(shards);
            stats.blocks_failed += 1;
            self.finish(base);
            return;
        }
        drop(shards);
        let mut restored = 0;
        for (i, buf) in scratch[..k].iter().enumerate() {
            let seq = base + i as u64;
            if seq < *floor || sources.contains_key(&seq) {
                continue;
            }
            let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
            if !(RTP_HEADER_LEN..=l - SHARD_PREFIX_LEN).contains(&len) {
                stats.recovered_bad_length += 1;
                continue;
            }
            out.push(Bytes::copy_from_slice(&buf[2..2 + len]));
            restored += 1;
        }
        stats.recovered += restored;
        if restored > 0 {
            stats.blocks_recovered += 1;
        }
        self.finish(base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seq::SeqUnwrapper;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Tiny deterministic RNG for tests (xorshift64*).
    struct XorShift(u64);
    impl XorShift {
        fn new(seed: u64) -> Self {
            XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    const SSRC: u32 = 0x1234_5678;

    fn rtp(seq: u16, ts: u32, len: usize, rng: &mut XorShift) -> Bytes {
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
    fn make_block(m: u8, base_seq: u16, lens: &[usize], seed: u64) -> (Vec<Bytes>, Vec<Bytes>) {
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
    struct Rx {
        dec: BlockDecoder,
        unwrap: SeqUnwrapper,
        out: Vec<Bytes>,
    }
    impl Rx {
        fn new() -> Self {
            Rx {
                dec: BlockDecoder::new(ReedSolomonCodec::boxed()),
                unwrap: SeqUnwrapper::new(),
                out: Vec::new(),
            }
        }
        fn source(&mut self, d: &Bytes) {
            let e = self.unwrap.extend(rtp_seq(d) as u64);
            self.dec.push_source(e, d, &mut self.out);
        }
        fn repair(&mut self, d: &[u8]) {
            let (h, shard) = RepairHeader::parse(d).expect("valid repair packet");
            let e = self.unwrap.peek(h.base_seq as u64);
            self.dec.push_repair(e, &h, shard, &mut self.out);
        }
        fn deliver(&mut self, k: usize, all: &[Bytes], i: usize) {
            if i < k {
                self.source(&all[i]);
            } else {
                self.repair(&all[i]);
            }
        }
    }

    fn sorted(v: &[Bytes]) -> Vec<Bytes> {
        let mut v = v.to_vec();
        v.sort();
        v
    }

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

    #[test]
    fn params_validate_display_and_parse() {
        let p: FecParams = "8,2".parse().unwrap();
        assert_eq!(p, FecParams { k: 8, m: 2 });
        assert_eq!(p.to_string(), "8,2");
        assert_eq!(
            " 18 , 10 ".parse::<FecParams>().unwrap(),
            FecParams::new(18, 10).unwrap()
        );
        assert!((p.overhead() - 0.25).abs() < 1e-12);
        assert_eq!(
            p.block_duration(std::time::Duration::from_millis(5)),
            std::time::Duration::from_millis(40)
        );
        for bad in [
            "", "8", "8,", "0,2", "8,0", "200,56", "8;2", "-1,2", "256,1", "8,2,1",
        ] {
            assert!(bad.parse::<FecParams>().is_err(), "{bad:?}");
        }
        assert!(FecParams::new(254, 1).is_ok());
        assert_eq!(
            FecParams::new(254, 2),
            Err(FecError::InvalidParams { k: 254, m: 2 })
        );
    }

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

    /// A block (k in 1..=20, m in 1..=6) with packet lengths, base seq, content seed, a set of
    /// lost packet indices among the k + m (up to m, or more than m), an arrival order and
    /// which arrivals are duplicated.
    #[allow(clippy::type_complexity)]
    fn block_case(
        more_than_m: bool,
    ) -> impl Strategy<
        Value = (
            usize,
            Vec<usize>,
            u16,
            u64,
            Vec<usize>,
            Vec<usize>,
            Vec<bool>,
        ),
    > {
        (1usize..=20, 1usize..=6).prop_flat_map(move |(k, m)| {
            let n = k + m;
            let lost_range = if more_than_m { (m + 1)..=n } else { 0..=m };
            (
                Just(m),
                proptest::collection::vec(12usize..1400, k),
                any::<u16>(),
                any::<u64>(),
                proptest::sample::subsequence((0..n).collect::<Vec<_>>(), lost_range),
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
                proptest::collection::vec(proptest::bool::weighted(0.2), n),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn parse_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = RepairHeader::parse(&bytes);
            // the same bytes behind a valid-looking prefix
            let mut b = vec![0x80, REPAIR_PAYLOAD_TYPE];
            b.extend_from_slice(&bytes);
            if let Ok((h, shard)) = RepairHeader::parse(&b) {
                prop_assert_eq!(shard.len(), h.shard_len as usize);
                prop_assert!(h.is_consistent());
            }
        }

        #[test]
        fn decoder_never_panics_on_arbitrary_repairs(
            pkts in proptest::collection::vec(
                (any::<bool>(), 0u64..64, 0u8..8, 0u8..4, 0u8..4, any::<bool>(), 0u16..64,
                 proptest::collection::vec(any::<u8>(), 0..64)), 1..80)
        ) {
            let mut dec = BlockDecoder::new(ReedSolomonCodec::boxed());
            let mut out = Vec::new();
            for (is_source, seq, k, m, index, exact_len, shard_len, bytes) in pkts {
                let ext = 1000 + seq;
                if is_source {
                    dec.push_source(ext, &Bytes::from(bytes), &mut out);
                } else {
                    let shard_len = if exact_len { bytes.len() as u16 } else { shard_len };
                    let h = RepairHeader { seq: 0, timestamp: 0, ssrc: 0, base_seq: ext as u16, k, m, index, shard_len };
                    dec.push_repair(ext, &h, &bytes, &mut out);
                }
                if seq == 63 {
                    dec.expire_before(1000 + (shard_len as u64));
                }
            }
            for d in &out {
                prop_assert!(d.len() >= RTP_HEADER_LEN);
            }
            let s = dec.stats();
            prop_assert_eq!(s.recovered as usize, out.len());
        }

        #[test]
        fn any_m_losses_are_recovered_bit_exact(
            (m, lens, base_seq, seed, lost, mut order, dup) in block_case(false),
            sources_first in any::<bool>(),
        ) {
            let k = lens.len();
            let (sources, repairs) = make_block(m as u8, base_seq, &lens, seed);
            let all: Vec<Bytes> = sources.iter().chain(&repairs).cloned().collect();
            if sources_first {
                order.sort_by_key(|&i| i >= k); // stable: sources in random order, then repairs
            }
            let mut rx = Rx::new();
            let lost: BTreeSet<usize> = lost.into_iter().collect();
            let mut received = BTreeSet::new();
            let mut emitted = BTreeSet::new();
            let arrivals = order.iter().filter(|i| !lost.contains(i)).flat_map(|&i| {
                std::iter::repeat_n(i, if dup[i] { 2 } else { 1 })
            });
            for i in arrivals {
                rx.deliver(k, &all, i);
                if i < k {
                    received.insert(i);
                }
                for d in rx.out.drain(..) {
                    // each recovered datagram is bit-exact, was missing when handed out, and
                    // is handed out once
                    let j = rtp_seq(&d).wrapping_sub(base_seq) as usize;
                    prop_assert!(j < k);
                    prop_assert_eq!(&d, &sources[j]);
                    prop_assert!(!received.contains(&j), "handed out a received packet");
                    prop_assert!(emitted.insert(j), "handed out twice");
                }
            }
            // every lost source packet is recovered
            let lost_sources: BTreeSet<usize> = lost.iter().copied().filter(|&i| i < k).collect();
            prop_assert!(lost_sources.is_subset(&emitted));
            if sources_first {
                // all surviving sources came first: exactly the lost ones are handed out
                prop_assert_eq!(&emitted, &lost_sources);
            }
            prop_assert_eq!(rx.dec.stats().recovered as usize, emitted.len());
            prop_assert_eq!(rx.dec.stats().repair_malformed, 0);
        }

        #[test]
        fn more_than_m_losses_recover_nothing(
            (m, lens, base_seq, seed, lost, order, dup) in block_case(true)
        ) {
            let k = lens.len();
            let (sources, repairs) = make_block(m as u8, base_seq, &lens, seed);
            let all: Vec<Bytes> = sources.iter().chain(&repairs).cloned().collect();
            let mut rx = Rx::new();
            let lost: BTreeSet<usize> = lost.into_iter().collect();
            for &i in order.iter().filter(|i| !lost.contains(i)) {
                rx.deliver(k, &all, i);
                if dup[i] {
                    rx.deliver(k, &all, i);
                }
            }
            prop_assert!(rx.out.is_empty());
            prop_assert_eq!(rx.dec.stats().recovered, 0);
        }
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
    fn sequence_wrap_inside_block_is_recovered() {
        let lens = [100, 200, 300, 400, 500, 600];
        let (sources, repairs) = make_block(2, 65_533, &lens, 11);
        let seqs: Vec<u16> = sources.iter().map(|s| rtp_seq(s)).collect();
        assert_eq!(seqs, [65_533, 65_534, 65_535, 0, 1, 2]);
        let mut rx = Rx::new();
        // lose 65535 and 0 (either side of the wrap); deliver out of order
        for i in [5, 0, 4, 1] {
            rx.source(&sources[i]);
        }
        rx.repair(&repairs[1]);
        assert!(rx.out.is_empty());
        rx.repair(&repairs[0]);
        assert_eq!(rx.out, vec![sources[2].clone(), sources[3].clone()]);
        // late real copies and more repairs change nothing
        rx.source(&sources[2]);
        rx.repair(&repairs[0]);
        assert_eq!(rx.out.len(), 2);
        assert_eq!(rx.dec.stats().repair_unneeded, 1);
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

    #[test]
    fn expired_block_recovers_nothing() {
        let lens = [60; 4];
        let (sources, repairs) = make_block(2, 500, &lens, 9);
        let mut rx = Rx::new();
        rx.source(&sources[0]);
        rx.source(&sources[1]);
        rx.source(&sources[3]);
        let ext_base = rx.unwrap.peek(500);
        assert_eq!(rx.dec.stored_sources(), 3);
        rx.dec.expire_before(ext_base + 4);
        rx.repair(&repairs[0]);
        rx.repair(&repairs[1]);
        assert!(rx.out.is_empty());
        assert_eq!(rx.dec.stored_blocks(), 0);
        assert_eq!(rx.dec.stats().repair_late, 2);
        assert_eq!(rx.dec.stats().recovered, 0);
        // a block known before expiry is forgotten too, and its sources with it
        let (sources, repairs) = make_block(1, 504, &lens, 10);
        rx.source(&sources[0]);
        rx.repair(&repairs[0]);
        assert_eq!(rx.dec.stored_blocks(), 1);
        rx.dec.expire_before(ext_base + 8);
        assert_eq!(rx.dec.stored_blocks(), 0);
        rx.source(&sources[1]);
        rx.source(&sources[2]);
        assert!(rx.out.is_empty());
        assert!(
            rx.dec.stored_sources() <= 3,
            "only a k-1 window before the floor is kept"
        );
    }

    #[test]
    fn block_straddling_the_floor_still_recovers_its_later_packets() {
        let (sources, repairs) = make_block(1, 1000, &[80; 8], 21);
        let mut rx = Rx::new();
        for s in &sources {
            rx.source(s);
        }
        let ext_base = rx.unwrap.peek(1000);
        rx.repair(&repairs[0]); // teaches the decoder k = 8
        assert!(rx.out.is_empty());
        // a second block of the same stream arrives with packet 3 lost; meanwhile playout moved on
        let (sources2, repairs2) = make_block(1, 1008, &[80; 8], 22);
        for (i, s) in sources2.iter().enumerate() {
            if i != 3 {
                rx.source(s);
            }
        }
        rx.dec.expire_before(ext_base + 8 + 2); // packets 0 and 1 of block 2 are past playout
        rx.repair(&repairs2[0]);
        assert_eq!(rx.out, vec![sources2[3].clone()]);
    }

    #[test]
    fn malformed_and_inconsistent_repairs_are_counted_and_dropped() {
        let (sources, repairs) = make_block(2, 10, &[50, 70, 90], 4);
        let mut rx = Rx::new();
        rx.source(&sources[0]);
        let (h, shard) = RepairHeader::parse(&repairs[0]).unwrap();
        let e = rx.unwrap.peek(10);
        let mut out = Vec::new();
        // shard length mismatch with the bytes handed over
        rx.dec.push_repair(e, &h, &shard[1..], &mut out);
        // first valid one creates the block
        rx.dec.push_repair(e, &h, shard, &mut out);
        rx.dec.push_repair(e, &h, shard, &mut out);
        // inconsistent k, m and shard length within the block
        rx.dec
            .push_repair(e, &RepairHeader { k: 4, ..h }, shard, &mut out);
        rx.dec.push_repair(
            e,
            &RepairHeader {
                m: 3,
                index: 1,
                ..h
            },
            shard,
            &mut out,
        );
        let mut longer = shard.to_vec();
        longer.push(0);
        rx.dec.push_repair(
            e,
            &RepairHeader {
                shard_len: h.shard_len + 1,
                index: 1,
                ..h
            },
            &longer,
            &mut out,
        );
        // overlapping block
        rx.dec
            .push_repair(e + 1, &RepairHeader { index: 1, ..h }, shard, &mut out);
        let s = rx.dec.stats();
        assert_eq!(
            (s.repair_received, s.repair_malformed, s.repair_duplicate),
            (7, 5, 1)
        );
        assert!(out.is_empty());
        // the block still recovers from the genuine packets
        rx.repair(&repairs[1]);
        assert_eq!(sorted(&rx.out), sorted(&sources[1..]));
    }

    #[test]
    fn impossible_length_prefix_is_dropped_and_counted() {
        // A repair shard computed over a forged source shard whose prefix claims more than L - 2.
        let l = 30;
        let mut data: Vec<Vec<u8>> = vec![vec![0; l]; 2];
        data[0][..2].copy_from_slice(&200u16.to_be_bytes());
        data[1][..2].copy_from_slice(&20u16.to_be_bytes());
        data[1][2] = 0x80;
        let mut parity = vec![0u8; l];
        let mut codec = ReedSolomonCodec::new();
        {
            let (a, b) = data.split_at_mut(1);
            let mut shards: Vec<&mut [u8]> = vec![&mut a[0], &mut b[0], &mut parity];
            codec.encode(2, 1, &mut shards).unwrap();
        }
        let mut dec = BlockDecoder::new(ReedSolomonCodec::boxed());
        let mut out = Vec::new();
        dec.push_source(101, &Bytes::copy_from_slice(&data[1][2..22]), &mut out);
        let h = RepairHeader {
            seq: 0,
            timestamp: 0,
            ssrc: 0,
            base_seq: 100,
            k: 2,
            m: 1,
            index: 0,
            shard_len: l as u16,
        };
        dec.push_repair(100, &h, &parity, &mut out);
        assert!(out.is_empty());
        assert_eq!(dec.stats().recovered_bad_length, 1);
    }

    #[test]
    fn memory_is_bounded_without_expire() {
        let mut rng = XorShift::new(8);
        let mut enc = BlockEncoder::new(
            FecParams::new(4, 1).unwrap(),
            SSRC,
            0,
            ReedSolomonCodec::boxed(),
        );
        let mut dec = BlockDecoder::new(ReedSolomonCodec::boxed());
        let mut unwrap = SeqUnwrapper::new();
        let mut repairs = Vec::new();
        let mut out = Vec::new();
        for i in 0..20_000u32 {
            let s = rtp(i as u16, 0, 24, &mut rng);
            enc.push(&s, &mut repairs);
            if i % 4 != 1 {
                dec.push_source(unwrap.extend(i as u64 & 0xffff), &s, &mut out);
            }
            for r in repairs.drain(..) {
                if i % 8 == 3 {
                    continue; // lose the repair of every other block: its loss is never repaired
                }
                let (h, shard) = RepairHeader::parse(&r).unwrap();
                dec.push_repair(unwrap.peek(h.base_seq as u64), &h, shard, &mut out);
            }
            assert!(dec.stored_sources() <= DECODER_MAX_SOURCES);
            assert!(dec.stored_blocks() <= DECODER_MAX_BLOCKS);
        }
        assert_eq!(out.len(), 2_500);
        assert!(dec.stats().evicted > 0);
    }

    /// P(X >= j) for X ~ Binomial(n, p).
    fn binom_tail(n: usize, p: f64, j: usize) -> f64 {
        let mut c = 1.0; // C(n, i)
        let mut below = 0.0;
        for i in 0..j.min(n + 1) {
            below += c * p.powi(i as i32) * (1.0 - p).powi((n - i) as i32);
            c = c * (n - i) as f64 / (i + 1) as f64;
        }
        1.0 - below
    }

    #[test]
    fn residual_loss_matches_mds_bound() {
        const K: usize = 8;
        const M: usize = 2;
        const BLOCKS: usize = 12_500; // 100,000 source packets
        for (p, seed) in [(0.05, 1u64), (0.10, 2u64)] {
            let mut rng = XorShift::new(seed);
            let mut enc = BlockEncoder::new(
                FecParams::new(K as u8, M as u8).unwrap(),
                SSRC,
                0,
                ReedSolomonCodec::boxed(),
            );
            let mut rx = Rx::new();
            let mut repairs = Vec::new();
            let (mut sum, mut sum_sq, mut lost_sources) = (0.0f64, 0.0f64, 0usize);
            let mut seq: u16 = 40_000;
            for _ in 0..BLOCKS {
                let lost: Vec<bool> = (0..K + M).map(|_| rng.unit() < p).collect();
                let mut sources = Vec::with_capacity(K);
                for &lost_here in &lost[..K] {
                    let s = rtp(seq, 0, 20, &mut rng);
                    seq = seq.wrapping_add(1);
                    enc.push(&s, &mut repairs);
                    if !lost_here {
                        rx.source(&s);
                    }
                    sources.push(s);
                }
                for (r, &lost_here) in repairs.drain(..).zip(&lost[K..]) {
                    if !lost_here {
                        rx.repair(&r);
                    }
                }
                let n_lost = lost.iter().filter(|&&l| l).count();
                let lost_src = lost[..K].iter().filter(|&&l| l).count();
                let recovered: Vec<Bytes> = rx.out.drain(..).collect();
                // exact MDS behaviour per block
                if n_lost <= M {
                    assert_eq!(recovered.len(), lost_src);
                } else {
                    assert!(recovered.is_empty());
                }
                let unrecovered = (lost_src - recovered.len()) as f64;
                sum += unrecovered;
                sum_sq += unrecovered * unrecovered;
                lost_sources += lost_src;
                let newest = rx.unwrap.highest().unwrap();
                rx.dec.expire_before(newest.saturating_sub(64));
            }
            let b = BLOCKS as f64;
            let measured = sum / (b * K as f64);
            let var_block = sum_sq / b - (sum / b).powi(2);
            let se = (var_block / b).sqrt() / K as f64;
            let expected = p * binom_tail(K + M - 1, p, M);
            let raw = lost_sources as f64 / (b * K as f64);
            println!("p={p}: raw loss {raw:.5}, residual {measured:.6}, MDS bound {expected:.6}, se {se:.6}");
            assert!((raw - p).abs() < 0.005, "raw loss {raw}");
            assert!(
                (measured - expected).abs() < 4.0 * se,
                "p={p}: residual {measured} vs expected {expected} (se {se})"
            );
            assert!(rx.dec.stored_sources() <= 100 && rx.dec.stored_blocks() <= 20);
        }
    }
}
