//! The isostream receiver: a sans-IO session that recovers lost packets from repair packets,
//! de-interleaves, conceals what is still missing and plays substreams out sample-aligned from
//! a jitter buffer steered by watermarks. It owns no socket, thread or clock and does not
//! depend on tokio: `isostream-drive` holds the drive loop.
//!
//! [`ReceiverSession`] ([`session`]) keeps the lifecycle (provisional session, new session,
//! retire, end detection, idle timeout), the demultiplexing and the watermark decisions. The
//! audio goes through one chain of stages per substream ([`substream::SubstreamRx`]), one
//! file per stage, then through the session's playout side ([`playout`]). Data flows one
//! way: a stage never calls an earlier one; what one stage needs of another is handed to it
//! as an explicit input by the session or the substream that composes them.
//!
//! ```text
//! receive, per substream (substream.rs):
//!
//!  UDP ─▶ demux ─┬─ media ──▶ arrival ──▶ fec_decoder ──▶ deinterleaver ──▶ jitter_buffer
//!  (session.rs)  ├─ repair ─────┘  ▲ rebuilt │                 │ timestamps -> positions
//!                │                 └─────────┘                 │ (live skips close holes)
//!                │              duplicate window               │
//!                ├─ RTCP SR ──▶ arrival (LSR/DLSR), deinterleaver (SR -> position)
//!                └─ RTCP description, BYE, ACK ──▶ session lifecycle, flow
//!
//! playout, all substreams together (playout.rs, one clock):
//!
//!  jitter_buffer ──▶ concealer ──▶ resampler ──▶ merge ──▶ output
//!       │                            ▲ ratio
//!       └── buffer level ─▶ steering ┘        latency ◀── read position, SR mapping
//!
//! after every change: session ─ levels ─▶ flow ─ PAUSE/RESUME ─▶ control ─▶ UDP
//!                             (and tells steering a request was sent)
//! ```
//!
//! - [`arrival`]: duplicate window, RFC 3550 interarrival jitter and report-block figures
//!   (expected, lost, fraction lost, LSR/DLSR).
//! - [`fec_decoder`]: wraps the transport's Reed-Solomon `BlockDecoder` (source packets kept
//!   as `Bytes`); rebuilt packets go on down the chain.
//! - [`deinterleaver`]: RTP timestamp -> media position (live skips close holes), sender
//!   reports -> capture time of a position, interleave header, the one copy per frame into
//!   the jitter buffer.
//! - [`jitter_buffer`]: frames keyed by media position, a ring allocated once.
//! - [`substream`]: composes the stages of one substream ([`substream::SubstreamRx`]) and
//!   the set of a session's substreams, which start on one timeline; beside it in
//!   `substream/`: the receive context, one substream's stages, retransmissions, the Opus
//!   intake, feedback (NACKs, report blocks, sender reports).
//! - [`concealer`]: cubic interpolation of short holes, waveform repetition fading to
//!   silence for longer ones.
//! - [`drift`]: the drift estimator and the adaptive resampler (bit-exact until engaged).
//! - [`render`]: one substream's playout side: jitter buffer -> concealer -> resampler, a
//!   chunk at a time.
//! - [`merge`]: the substreams' channels into the output frames.
//! - [`playout`]: the playout clock (one for all substreams) and the playout side:
//!   underruns, the end of the stream, a chunk at a time.
//! - [`latency`]: the capture-to-playout latency, handed the position about to play and the
//!   sender-report mapping at every chunk.
//! - [`steering`]: buffer level -> drift estimator, handed what it watches at every chunk
//!   and told when a PAUSE/RESUME was sent.
//! - [`nack_clock`]: a substream's NACK stage and the play clock that tells it when each
//!   missing packet plays.
//! - [`flow`]: PAUSE/RESUME with acknowledgement and retransmission.
//! - [`control`]: the RTCP the receiver sends (receiver reports, PAUSE/RESUME requests).
//! - [`stats`]: the counters and how they add up; the counters themselves are plain values
//!   in `counters.rs`, a leaf that every stage counts into (re-exported by [`stats`]).
//! - [`layout`]: what a session carries (its description, or a stock stream's first
//!   packet) and whether it can be played.
//! - [`budget`]: the memory budget every buffer of a session counts against, and the slab
//!   kept datagrams are copied into.
//! - [`successor`]: the datagrams of a stream waiting behind the playing session (a sender
//!   that restarted with new SSRCs) until it takes over.
//! - [`rtcp_in`]: which packets of an RTCP compound are the session's (SSRCs, the bound
//!   source address), as typed facts the session applies.
//! - [`session`]: `handle_input`/`poll_output`, the one place that chains the stages;
//!   beside it in `session/`: the session's state, the datagram queue and replay, source
//!   binding, the RTCP facts applied, the lifecycle, status and timers.
#![deny(missing_docs)]

pub mod arrival;
pub mod budget;
pub mod concealer;
pub mod config;
pub mod control;
mod counters;
pub mod deinterleaver;
pub mod drift;
mod error;
pub mod fec_decoder;
pub mod flow;
pub mod jitter_buffer;
pub mod latency;
pub mod layout;
pub mod merge;
pub mod nack;
pub mod nack_clock;
#[cfg(feature = "opus")]
pub mod opus_decoder;
pub mod playout;
pub mod render;
pub mod rtcp_in;
pub mod session;
pub mod stats;
pub mod steering;
pub mod subscription;
pub mod substream;
pub mod successor;

pub use config::ReceiverConfig;
pub use error::ReceiverError;
pub use session::{ReceiverEvent, ReceiverSession};
pub use stats::{LatencyStats, ReceiverStats, SubstreamStats};
