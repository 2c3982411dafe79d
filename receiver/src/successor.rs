//! The successor: the datagrams of a stream that is not the playing session's, kept for a
//! while in case the playing session's sender has gone (a sender that restarted with new
//! SSRCs). The session decides when to hand over (its sender silent for
//! [`HANDOVER_SILENCE`] while a described successor waits); the successor keeps the
//! datagrams and gives them back, description first, once the session has played out.

use bytes::Bytes;
use isostream_transport::time::{Duration, Instant};

use crate::budget::DatagramQueue;

/// How long a stream that is not the playing session's is remembered.
pub const SUCCESSOR_WINDOW: Duration = Duration::from_secs(10);
/// How long the playing session's sender must have been silent (its reports come every
/// 250 ms, even while paused) before a described new stream takes over.
pub const HANDOVER_SILENCE: Duration = Duration::from_millis(400);
/// At most this many of its datagrams are kept.
pub const MAX_SUCCESSOR_DATAGRAMS: usize = crate::budget::MAX_QUEUED_DATAGRAMS;

/// The datagrams of a would-be next session. See the module documentation.
#[derive(Debug)]
pub struct Successor {
    /// Its media, repair and RTCP datagrams (but its newest description), oldest first:
    /// copies, at most the budget's share in bytes.
    queue: DatagramQueue<Instant>,
    /// Its newest description, kept whatever else is forgotten: it goes first.
    desc: Option<Bytes>,
    /// The playing session was ended for it: it starts once that session has played out.
    handing_over: bool,
}

impl Successor {
    /// Nothing kept yet; at most `cap_bytes` of datagrams will be.
    pub fn new(cap_bytes: usize) -> Self {
        Successor {
            queue: DatagramQueue::new(cap_bytes),
            desc: None,
            handing_over: false,
        }
    }

    /// Keeps a copy of datagram `d` that arrived at `now` (`desc`: it holds a description):
    /// the last [`SUCCESSOR_WINDOW`] of them, at most [`MAX_SUCCESSOR_DATAGRAMS`] and the
    /// byte cap (the oldest are forgotten). False if it could not be kept (larger than the
    /// whole queue).
    pub fn keep(&mut self, now: Instant, d: &Bytes, desc: bool) -> bool {
        while self
            .queue
            .front()
            .is_some_and(|t| now - *t > SUCCESSOR_WINDOW)
        {
            self.queue.pop_front();
        }
        if desc {
            // its own allocation: it may outlive every other datagram kept
            self.desc = Some(Bytes::copy_from_slice(d));
            true
        } else {
            self.queue.push_evicting(now, d)
        }
    }

    /// Bytes of datagrams kept (its description included).
    pub fn held_bytes(&self) -> usize {
        self.queue.held_bytes() + self.desc.as_ref().map_or(0, Bytes::len)
    }

    /// Whether anything waits.
    pub fn is_waiting(&self) -> bool {
        self.desc.is_some() || !self.queue.is_empty()
    }

    /// Whether a described stream waits (one that may take over).
    pub fn is_described(&self) -> bool {
        self.desc.is_some()
    }

    /// The playing session has been ended for the successor.
    pub fn hand_over(&mut self) {
        self.handing_over = true;
    }

    /// The playing session has ended: if it was ended for the successor, its datagrams,
    /// description first, to start the next session; otherwise (it ended by itself: BYE,
    /// idle timeout) nothing waited for it, and they are forgotten.
    pub fn take_on_end(&mut self) -> Option<impl Iterator<Item = Bytes> + '_> {
        let desc = self.desc.take();
        if !std::mem::take(&mut self.handing_over) {
            self.queue.clear();
            return None;
        }
        Some(desc.into_iter().chain(self.queue.take_all()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    fn d(b: u8) -> Bytes {
        Bytes::from(vec![b])
    }

    #[test]
    fn a_hand_over_gives_the_description_first_then_the_rest_in_order() {
        let mut s = Successor::new(1 << 20);
        s.keep(at(0), &d(1), false);
        s.keep(at(1), &d(2), true);
        s.keep(at(2), &d(3), false);
        assert!(s.is_described() && s.is_waiting());
        s.hand_over();
        let got: Vec<Bytes> = s.take_on_end().unwrap().collect();
        assert_eq!(got, vec![d(2), d(1), d(3)]);
        assert!(!s.is_waiting());
    }

    #[test]
    fn a_session_that_ends_by_itself_forgets_what_waited() {
        let mut s = Successor::new(1 << 20);
        s.keep(at(0), &d(1), true);
        s.keep(at(0), &d(2), false);
        assert!(s.take_on_end().is_none());
        assert!(!s.is_waiting());
    }

    #[test]
    fn old_datagrams_are_forgotten_but_not_the_description() {
        let mut s = Successor::new(1 << 20);
        s.keep(at(0), &d(1), true);
        s.keep(at(0), &d(2), false);
        s.keep(at(20_000), &d(3), false);
        s.hand_over();
        let got: Vec<Bytes> = s.take_on_end().unwrap().collect();
        assert_eq!(got, vec![d(1), d(3)]);
    }

    #[test]
    fn what_is_kept_is_capped_in_bytes_and_copied() {
        let mut s = Successor::new(10_000);
        let arena = Bytes::from(vec![5u8; 1 << 20]);
        for i in 0..1_000u64 {
            assert!(s.keep(at(i), &arena.slice(0..1000), false));
            assert!(s.held_bytes() <= 10_000);
        }
        // a copy: the arena is not kept alive
        assert!(arena.is_unique());
        assert!(!s.keep(at(0), &Bytes::from(vec![0; 10_001]), false));
        s.hand_over();
        assert_eq!(s.take_on_end().unwrap().count(), 10);
    }
}
