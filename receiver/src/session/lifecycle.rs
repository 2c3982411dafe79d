//! The lifecycle of the receiver's sessions: a session starts (or is refused for the memory
//! budget), retires the one before it (whose counters carry over), ends once its end is
//! known and played out, and hands over to a successor stream waiting behind it.

use bytes::Bytes;
use isostream_transport::rtp;
use isostream_transport::time::Instant;

use super::active::{media_payload_type, Active};
use super::{ReceiverEvent, ReceiverSession};
use crate::budget::{DatagramQueue, MemoryBudget, OverBudget};
use crate::layout::Layout;
use crate::playout::Playout;
use crate::stats;
use crate::substream::Substreams;
use crate::successor::HANDOVER_SILENCE;

impl ReceiverSession {
    /// Starts a session of `layout` (retiring the current one). False if it cannot be
    /// played.
    pub(super) fn new_active(&mut self, now: Instant, layout: Layout) -> bool {
        let capacity = match layout.admit(&self.cfg) {
            Ok(c) => c,
            Err(None) => {
                self.drops.malformed += 1;
                return false;
            }
            Err(Some(e)) => {
                self.refuse(e);
                return false;
            }
        };
        let steer = self.cfg.drift_correction || layout.live;
        let memory_bytes = Substreams::memory_bytes(&layout, capacity, steer);
        let mut subs = Substreams::new(&layout, capacity, steer);
        if self.cfg.multicast {
            subs.nack_random_delay(crate::nack::MULTICAST_NACK_DELAY, self.cfg.seed);
        }
        if let Some(old) = self.active.take() {
            self.retire(old);
        }
        self.flow.restart();
        let rate = layout.spec.rate;
        self.active = Some(Active {
            provisional: layout.provisional,
            live: layout.live,
            spec: layout.spec,
            subs,
            playout: Playout::new(rate, self.cfg.wallclock_at_zero_ns, steer),
            first_arrival: now,
            last_heard: now,
            end_pos: None,
            ended: false,
            pending: DatagramQueue::new(self.budget().pending_bytes()),
            memory_bytes,
            media_pt: if layout.opus {
                rtp::PT_OPUS
            } else {
                media_payload_type(layout.spec.format, layout.framing.interleave)
            },
            source: self.from,
        });
        self.events.push_back(ReceiverEvent::SessionStarted {
            spec: layout.spec,
            substream_channels: layout.channels(),
        });
        true
    }

    fn budget(&self) -> MemoryBudget {
        MemoryBudget::new(self.cfg.memory_budget_bytes)
    }

    /// Counts a session refused for the budget and says why.
    fn refuse(&mut self, e: OverBudget) {
        self.drops.over_budget += 1;
        self.last_refusal = Some(e);
        self.events.push_back(ReceiverEvent::SessionRefused {
            reason: e.to_string(),
        });
    }

    fn retire(&mut self, old: Active) {
        let s = stats::session(
            &old.subs,
            &old.playout,
            old.first_arrival,
            self.flow.stats(),
            self.drops,
        );
        self.done = Some(stats::carry_over(s, self.done.take()));
    }

    pub(super) fn can_start_new(&self) -> bool {
        self.active
            .as_ref()
            .is_none_or(|a| a.ended || (a.provisional && !a.playout.is_running()))
    }

    /// Marks the session ended once its end is known and played out. Returns whether it has.
    pub(super) fn check_end(&mut self) -> bool {
        let Some(a) = self.active.as_mut() else {
            return false;
        };
        if !a.ended && a.end_pos.is_some_and(|end| a.subs.read_pos() >= end) {
            a.ended = true;
            // an ended session keeps its counters, not its buffers
            a.subs.release(a.spec.rate);
            a.pending.clear();
            self.events.push_back(ReceiverEvent::SessionEnded);
            // nobody is left to ask: nothing is sent again
            self.flow.restart();
        }
        a.ended
    }

    /// Keeps a datagram of another stream while the current session plays (see
    /// [`crate::successor`]).
    pub(super) fn keep_successor(&mut self, now: Instant, d: &Bytes, desc: bool) {
        if !self
            .active
            .as_ref()
            .is_some_and(|a| a.playout.is_running() && !a.ended)
        {
            return;
        }
        if desc {
            self.successor_source = self.from;
        }
        if !self.successor.keep(now, d, desc) {
            self.drops.not_kept += 1;
        }
    }

    /// A described stream waits behind a session whose sender has been silent for
    /// [`HANDOVER_SILENCE`]: that sender is gone (it restarted with new SSRCs), so the
    /// current session ends where its audio ends; once it has played out, the waiting
    /// stream's datagrams start the next session.
    pub(super) fn hand_over(&mut self, now: Instant) -> bool {
        if !self.successor.is_waiting() {
            return false;
        }
        let Some(a) = self.active.as_mut() else {
            return false;
        };
        if !a.ended {
            if self.successor.is_described()
                && a.end_pos.is_none()
                && now - a.last_heard >= HANDOVER_SILENCE
            {
                a.end_pos = Some(a.subs.data_end());
                self.successor.hand_over();
            }
            return false;
        }
        let Some(replay) = self.successor.take_on_end() else {
            return false;
        };
        self.queue.replay_last(replay);
        // the successor's datagrams come from where its description came from
        let from = std::mem::replace(&mut self.from, self.successor_source.take());
        self.run_queue(now);
        self.from = from;
        true
    }
}
