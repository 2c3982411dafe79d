//! What the application can read of a receiver session: its output format, whether it
//! plays or has ended, its buffer levels and watermarks, the memory it takes and its
//! counters (and the one count the SRTP stage in front of it adds to them).

use isostream_media::AudioSpec;

use super::ReceiverSession;
use crate::budget::OverBudget;
use crate::stats::ReceiverStats;

impl ReceiverSession {
    /// The output format of the current session, once one has started.
    pub fn spec(&self) -> Option<AudioSpec> {
        self.active.as_ref().map(|a| a.spec)
    }

    /// Whether audio is being played out.
    pub fn is_playing(&self) -> bool {
        self.active
            .as_ref()
            .is_some_and(|a| a.playout.is_running() && !a.ended)
    }

    /// Whether the current session has ended and its buffer has been played out.
    pub fn is_ended(&self) -> bool {
        self.active.as_ref().is_some_and(|a| a.ended)
    }

    /// Buffered audio of the emptiest and the fullest substream, in frames.
    pub fn occupancy(&self) -> (i64, i64) {
        self.active.as_ref().map_or((0, 0), |a| a.subs.occupancy())
    }

    /// The watermarks in frames (low, high) at the session's rate.
    pub fn watermarks(&self) -> (i64, i64) {
        let (low, _, high) = self.marks();
        (low, high)
    }

    /// Sessions refused for the memory budget so far, and why the latest was.
    pub fn refused_over_budget(&self) -> (u64, Option<OverBudget>) {
        (self.drops.over_budget, self.last_refusal)
    }

    /// The most the current session's buffers and queues take, in bytes (0 once it has
    /// ended: its buffers are freed), against
    /// [`crate::ReceiverConfig::memory_budget_bytes`].
    pub fn memory_bytes(&self) -> usize {
        let queues = self.successor.held_bytes();
        match &self.active {
            Some(a) if !a.ended => a.memory_bytes + a.pending.held_bytes() + queues,
            _ => queues,
        }
    }

    /// Counts a datagram that the SRTP stage in front of the session dropped (it failed
    /// authentication or the replay check): it appears as `datagrams_unauthenticated`.
    pub fn count_unauthenticated(&mut self) {
        self.drops.unauthenticated += 1;
    }

    /// Counters of the current (or last) session.
    pub fn stats(&self) -> ReceiverStats {
        let mut s = match &self.active {
            Some(a) => a.stats(self.flow.stats(), self.drops),
            None => ReceiverStats {
                datagrams_malformed: self.drops.malformed,
                datagrams_foreign: self.drops.foreign,
                sessions_over_budget: self.drops.over_budget,
                datagrams_not_kept: self.drops.not_kept,
                datagrams_unauthenticated: self.drops.unauthenticated,
                ..self.done.clone().unwrap_or_default()
            },
        };
        s.rtcp_bytes = self.rtcp_bytes;
        s.memory_bytes = self.memory_bytes() as u64;
        s
    }
}
