//! What the isostream sender and receiver share: time types, wrap-safe sequence arithmetic,
//! the wire format (RTP media, repair packets, RTCP control), the FEC codec, sample
//! interleaving and the network impairment model.
#![deny(missing_docs)]

pub mod fec;
pub mod impair;
pub mod seq;
pub mod time;
