//! How isostream's sans-IO sessions are driven.
//!
//! - [`pump`]: the one drive loop of each side, a turn at a time, used alike by the tokio
//!   drivers, the simulator behind `isostream bench` and the tests;
//! - [`send`], [`recv`] and [`relay`]: the tokio drivers, the only code that touches a
//!   socket or a real clock;
//! - [`offload`]: file, pipe and device I/O on threads of their own behind bounded queues, so
//!   that a slow disk or a stalled pipe never stops socket reads;
//! - [`srtp`]: SRTP/SRTCP on every datagram when a key is given, one stage in the pumps;
//! - [`audio`]: the source and sink traits the CLI's files, pipes and devices implement;
//! - [`resample`]: a source read at another rate (Opus takes 48 kHz only).
//!
//! The sessions themselves (crates `isostream-sender` and `isostream-receiver`) own no
//! socket, thread or clock and do not depend on tokio.
#![deny(missing_docs)]

pub mod audio;
mod net;
pub mod offload;
pub mod pump;
pub mod recv;
pub mod relay;
pub mod resample;
pub mod send;
pub mod srtp;

pub use audio::{AudioSink, AudioSource};
pub use pump::{Feed, ReceiverHost, ReceiverPump, SenderHost, SenderPump, Wake, PULL_INTERVAL};
