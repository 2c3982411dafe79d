//! The isostream relay (`isostream relay`): one session from an upstream (a sender, or
//! another relay) served to any number of listeners that subscribe from wherever they are
//! (`recv --connect`), each at its own pace. The wire format and the rules are in
//! docs/PROTOCOL.md, section "Relay".
//!
//! The session ([`RelaySession`]) is sans-IO like the sender's and the receiver's; its
//! stages, one file each:
//!
//! - [`upstream`]: the upstream's binding, its description, the compounds kept for listeners;
//! - [`reception`]: what the relay reports about the upstream's substreams;
//! - [`recovery`]: NACKs upstream, and the originals rebuilt from the retransmissions;
//! - [`steering`]: the relay's playout clock and its PAUSE/RESUME toward the upstream;
//! - [`store`]: the bounded store of the upstream's media and repair datagrams;
//! - [`listeners`]: the listener table (subscribe, refresh, timeout);
//! - [`listener`]: one listener's cursor, pacer, flow state, retransmissions and reports;
//! - [`rtx`]: RFC 4588 retransmissions made from the store;
//! - [`stats`]: the counters, per listener and for the relay.
#![deny(missing_docs)]

pub mod config;
pub mod listener;
pub mod listeners;
pub mod reception;
pub mod recovery;
pub mod rtx;
pub mod session;
pub mod stats;
pub mod steering;
pub mod store;
pub mod upstream;

#[cfg(test)]
mod testutil;

pub use config::{RelayConfig, RelayError};
pub use session::{RelayEvent, RelaySession};
pub use stats::{ListenerState, ListenerStats, RelayStats};
