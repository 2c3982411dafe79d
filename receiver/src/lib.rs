//! The isostream receiver: a sans-IO session that recovers lost packets from repair packets,
//! de-interleaves, conceals what is still missing and plays substreams out sample-aligned from
//! a jitter buffer steered by watermarks; plus its tokio driver.
//!
//! [`ReceiverSession`] ([`session`]) keeps the lifecycle, the demultiplexing and the
//! watermark decisions; the audio goes through a chain of stages, one file each, per
//! substream ([`substream`]) and then through the session's playout side ([`playout`]):
//!
//! ```text
//!            ┌──────────────────────── per substream (substream.rs) ─────────────────────┐
//! UDP ─▶ demux ─▶ arrival ─▶ fec_decoder ─▶ deinterleaver ─▶ jitter_buffer
//! (session)       │  ▲ rebuilt  │                 │ timestamps -> positions    │
//!                 │  └──────────┘ (duplicates)    │ sender-report mapping      │
//!                 │ report figures                ▼                            ▼
//!                 ▼                        latency ◀── playout (one clock) ─▶ concealer
//!          receiver reports                 steering ─ ratio ─▶ resampler ◀────┘
//!                                                                  │
//!                                 output ◀─ merge (all substreams) ◀┘
//! ```
//!
//! - [`arrival`]: duplicate window, RFC 3550 interarrival jitter and report-block figures
//!   (expected, lost, fraction lost, LSR/DLSR).
//! - [`fec_decoder`]: wraps the transport's Reed-Solomon `BlockDecoder`; rebuilt packets go
//!   on down the chain.
//! - [`deinterleaver`]: RTP timestamp -> media position (live skips close holes), sender
//!   reports -> capture time of a position, interleave header, the one copy into the buffer.
//! - [`jitter_buffer`]: frames keyed by media position, a ring allocated once.
//! - [`concealer`]: cubic interpolation of short holes, waveform repetition fading to
//!   silence for longer ones.
//! - [`drift`]: the drift estimator and the adaptive resampler (bit-exact until engaged).
//! - [`merge`]: the substreams' channels into the output frames.
//! - [`playout`]: the playout clock (one for all substreams) and the playout side.
//! - [`latency`]: the capture-to-playout latency, handed the position and the sender-report
//!   mapping at every chunk.
//! - [`steering`]: buffer level -> drift estimator, handed what it watches at every chunk.
//! - [`flow`]: PAUSE/RESUME with acknowledgement and retransmission.
//! - [`control`]: the RTCP the receiver sends (receiver reports, PAUSE/RESUME requests).
//! - [`stats`]: the counters and how they add up.
//! - [`layout`]: what a session carries (its description, or a stock stream's first packet).
#![deny(missing_docs)]

pub mod arrival;
pub mod concealer;
pub mod config;
pub mod control;
pub mod deinterleaver;
pub mod drift;
pub mod driver;
pub mod fec_decoder;
pub mod flow;
pub mod jitter_buffer;
pub mod latency;
pub mod layout;
pub mod merge;
pub mod playout;
pub mod session;
pub mod stats;
pub mod steering;
pub mod substream;

pub use config::ReceiverConfig;
pub use session::{ReceiverEvent, ReceiverSession};
pub use stats::{LatencyStats, ReceiverStats, SubstreamStats};

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
