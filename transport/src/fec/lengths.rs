//! The length constants of a repair datagram and of a source shard (drawn in the
//! [module docs](super)), in bytes: the leaf that the header, the errors, the encoder and the
//! decoder all measure with.

use crate::rtp;

/// Length of the FEC header that follows the RTP header in a repair datagram, in bytes.
pub const FEC_HEADER_LEN: usize = 8;
/// Total header length of a repair datagram (RTP + FEC header) before the shard, in bytes.
pub const REPAIR_HEADER_LEN: usize = rtp::HEADER_LEN + FEC_HEADER_LEN;
/// Length of the length prefix at the start of every source shard, in bytes.
pub const SHARD_PREFIX_LEN: usize = 2;
/// Largest source datagram that can be protected, in bytes (its length must fit the u16
/// prefix and `L = length + 2` must fit the u16 shard length field).
pub const MAX_SOURCE_LEN: usize = u16::MAX as usize - SHARD_PREFIX_LEN;
/// Smallest shard length a valid repair datagram can carry, in bytes (prefix + RTP header).
pub const MIN_SHARD_LEN: usize = SHARD_PREFIX_LEN + rtp::HEADER_LEN;
