//! What the isostream sender and receiver share: time types, wrap-safe sequence arithmetic,
//! the wire format (RTP media, repair packets, RTCP control), the FEC codec and sample
//! interleaving. (The network impairment model is the `isostream-netsim` crate.)
#![deny(missing_docs)]

pub mod fec;
pub mod interleave;
pub mod rtcp;
pub mod rtp;
pub mod sans_io;
pub mod sdp;
pub mod seq;
pub mod time;

/// Why a datagram could not be parsed. Such datagrams are counted and dropped, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The datagram (or one packet in it) is shorter than its headers say.
    #[error("truncated: needed {needed} bytes, got {got}")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// Not RTP/RTCP version 2.
    #[error("bad RTP version {0}")]
    BadVersion(u8),
    /// The padding count is zero or larger than the packet.
    #[error("bad RTP padding")]
    BadPadding,
    /// A field holds an impossible value.
    #[error("bad field: {0}")]
    BadField(&'static str),
}
