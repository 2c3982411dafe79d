//! The isostream receiver: a sans-IO session that recovers lost packets from repair packets,
//! de-interleaves, conceals what is still missing and plays substreams out sample-aligned from
//! a jitter buffer steered by watermarks. It owns no socket, thread or clock (see `isostream-drive` for the drive loop).
#![deny(missing_docs)]

pub mod concealer;
pub mod config;
pub mod drift;
pub mod flow;
pub mod jitter_buffer;
pub mod playout;
pub mod session;

pub use config::ReceiverConfig;
pub use session::{ReceiverEvent, ReceiverSession, ReceiverStats, SubstreamStats};

/// Errors of the receiver library.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// The configuration is inconsistent.
    #[error("invalid receiver configuration: {0}")]
    Config(String),
    /// Socket or file I/O failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
