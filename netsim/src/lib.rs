//! isostream-netsim: a deterministic network impairment model, shared by the virtual-time
//! benchmark (`isostream bench`) and the real-time UDP relay (`isostream impair`).
//!
//! A [`Link`] is one direction of a path. Datagrams offered with [`Link::send`] are either
//! dropped or scheduled for delivery (possibly twice, for duplicates); [`Link::poll_deliver`]
//! hands them back once their delivery time has come. The model never reads a clock and never
//! asks the OS for randomness: every decision comes from the `now` arguments and from the
//! seed given to [`Link::new`], so the same seed and the same calls give the same deliveries,
//! bit for bit.
//!
//! # Model
//!
//! * **Loss** ([`LossModel`]): none, independent Bernoulli, Gilbert-Elliott (two-state Markov
//!   chain stepped per packet, or per time slice as in ITU-T G.1050 so that every sender
//!   faces the same bursts whatever its packet rate), or a repeating 0/1 trace per packet or
//!   per millisecond.
//! * **Outages** ([`Outages`]): everything sent inside a window of `duration_ms` is lost; the
//!   windows occur as a Poisson process and/or at fixed times on the timeline (origin
//!   [`Instant::ZERO`](isostream_transport::time::Instant::ZERO)). They are driven by time only, so every sender with the same seed
//!   sees the same windows.
//! * **Delay** ([`DelayModel`]): `base + max(0, x) + spike`, where `x` is an AR(1) process
//!   (stationary std dev `jitter_ms`, correlation per packet or per millisecond) and `spike`
//!   is a queue build-up that starts at a Poisson rate, jumps to `spike_peak_ms` and drains
//!   linearly at `spike_drain` ms per ms. Packets sent during a spike leave in send order (a
//!   queue); elsewhere packets reorder exactly where their delivery times cross.
//! * **Duplication**: with probability `duplicate` a second copy is delivered up to 1 ms after
//!   the first.
//!
//! Builtin [`Profile`]s (`perfect`, `lan`, `wifi`, `lte`, `transatlantic`, `bursty`,
//! `hostile`) document their parameters and sources; profiles can also be loaded from TOML or
//! JSON files.
//!
//! # Layout
//!
//! * [`models`]: the loss ([`models::loss`]), outage ([`models::outage`]) and delay
//!   ([`models::delay`]) models: their parameters and their runtime state.
//! * [`link`]: the link engine ([`Link`]): one direction of a path, the queue of datagrams in
//!   flight, duplication and the counters ([`LinkStats`]).
//! * [`profiles`]: the builtin catalogue of [`Profile`]s.
//! * [`loading`]: profiles from TOML/JSON files and loss traces from text files.
#![deny(missing_docs)]

pub mod error;
pub mod link;
pub mod loading;
pub mod models;
pub mod profiles;
mod units;

#[cfg(test)]
mod testutil;

pub use error::ImpairError;
pub use link::{Link, LinkConfig, LinkStats};
pub use models::delay::DelayModel;
pub use models::loss::{LossModel, Per, Step};
pub use models::outage::Outages;
pub use profiles::Profile;
