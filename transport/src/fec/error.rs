//! Errors of the FEC layer.

use super::lengths::{MIN_SHARD_LEN, REPAIR_HEADER_LEN};
use crate::rtp::PT_REPAIR;

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
    /// The RTP payload type is not [`PT_REPAIR`].
    #[error("payload type {0} is not the repair payload type {PT_REPAIR}")]
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
