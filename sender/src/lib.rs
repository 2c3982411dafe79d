//! The isostream sender: a sans-IO session that packetizes audio into RTP, adds Reed-Solomon
//! repair packets, spreads and paces them, and obeys PAUSE/RESUME. It owns no socket, thread or clock (see `isostream-drive` for the drive loop).
#![deny(missing_docs)]

mod announce;
pub mod config;
mod ending;
mod event;
mod feedback;
pub mod flow;
pub mod framer;
#[cfg(feature = "opus")]
pub mod opus_encoder;
mod paced;
pub mod pacer;
pub mod packetizer;
pub mod report;
pub mod retransmit;
pub mod session;
pub mod spreader;
mod stats;
mod substream;
mod timers;

pub use config::{Codec, OpusParams, SenderConfig};
pub use pacer::Speed;
pub use retransmit::{RtxParams, RtxStats};
pub use session::{FinishReason, ReceiverView, SenderEvent, SenderSession, SenderStats};

/// Errors of the sender library.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// The configuration is inconsistent.
    #[error("invalid sender configuration: {0}")]
    Config(String),
    /// Socket or file I/O failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
