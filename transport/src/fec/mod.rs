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
//!
//! One file per job:
//!
//! * `params.rs`: the block geometry [`FecParams`] (`k`, `m`) and its limits.
//! * `header.rs`: the wire format of a repair datagram ([`RepairHeader`]) and of a source
//!   shard; `lengths.rs`: their length constants ([`REPAIR_HEADER_LEN`], [`MIN_SHARD_LEN`]...),
//!   a leaf that the errors measure with too. The RTP part (fixed header length, the repair
//!   payload type [`PT_REPAIR`](crate::rtp::PT_REPAIR)) is [`crate::rtp`]'s.
//! * `codec.rs`: the [`ErasureCodec`] interface and its Reed-Solomon implementation
//!   [`ReedSolomonCodec`].
//! * `encoder.rs`: the sender side, [`BlockEncoder`].
//! * `decoder.rs`: the receiver side, [`BlockDecoder`] and its counters [`FecStats`].
//! * `error.rs`: [`FecError`].
//!
//! Everything is re-exported here, so callers name it `isostream_transport::fec::...`.

mod codec;
mod decoder;
mod encoder;
mod error;
mod header;
mod lengths;
mod params;

#[cfg(test)]
mod testutil;

pub use codec::{ErasureCodec, ReedSolomonCodec};
pub use decoder::{
    BlockDecoder, DecoderLimits, FecStats, DECODER_MAX_BLOCKS, DECODER_MAX_REPAIR_BYTES,
    DECODER_MAX_SOURCES,
};
pub use encoder::BlockEncoder;
pub use error::FecError;
pub use header::RepairHeader;
pub use lengths::{
    FEC_HEADER_LEN, MAX_SOURCE_LEN, MIN_SHARD_LEN, REPAIR_HEADER_LEN, SHARD_PREFIX_LEN,
};
pub use params::{FecParams, MAX_SHARDS};
