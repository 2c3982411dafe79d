//! The successor: the datagrams of a stream that is not the playing session's, kept for a
//! while in case the playing session's sender has gone (a sender that restarted with new
//! SSRCs). The session decides when to hand over (its sender silent for
//! [`HANDOVER_SILENCE`] while a described successor waits); the successor keeps the
//! datagrams and gives them back, description first, once the session has played out.

use std::collections::VecDeque;

use bytes::Bytes;
use isostream_transport::time::{Duration, Instant};

/// How long a stream that is not the playing session's is remembered.
pub const SUCCESSOR_WINDOW: Duration = Duration::from_secs(10);
/// How long the playing session's sender must have been silent (its reports come every
/// 250 ms, even while paused) before a described new stream takes over.
pub const HANDOVER_SILENCE: Duration = Duration::from_millis(400);
/// At most this many of its datagrams are kept.
pub const MAX_SUCCESSOR_DATAGRAMS: usize = 4096;

/// The datagrams of a would-be next session. See the module documentation.
#[derive(Debug, Default)]
pub struct Successor {
    /// Its media, repair and RTCP datagrams (but its newest description), oldest first.
    queue: VecDeque<(Instant, Bytes)>,
    /// Its newest description, kept whatever else is forgotten: it goes first.
    desc: Option<Bytes>,
    /// The playing session was ended for it: it starts once that session has played out.
    handing_over: bool,
}

impl Successor {
    /// Keeps datagram `d` that arrived at `now` (`desc`: it holds a description): the last
    /// [`SUCCESSOR_WINDOW`] of them, at most [`MAX_SUCCESSOR_DATAGRAMS`].
    pub fn keep(&mut self, now: Instant, d: &Bytes, desc: bool) {
        while self
            .queue
            .front()
            .is_some_and(|(t, _)| now - *t > SUCCESSOR_WINDOW)
            || self.queue.len() >= MAX_SUCCESSOR_DATAGRAMS
        {
            self.queue.pop_front();
        }
        if desc {
            self.desc = Some(d.clone());
        } else {
            self.queue.push_back((now, d.clone()));
        }
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
        Some(desc.into_iter().chain(self.queue.drain(..).map(|(_, d)| d)))
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
        let mut s = Successor::default();
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
        let mut s = Successor::default();
        s.keep(at(0), &d(1), true);
        s.keep(at(0), &d(2), false);
        assert!(s.take_on_end().is_none());
        assert!(!s.is_waiting());
    }

    #[test]
    fn old_datagrams_are_forgotten_but_not_the_description() {
        let mut s = Successor::default();
        s.keep(at(0), &d(1), true);
        s.keep(at(0), &d(2), false);
        s.keep(at(20_000), &d(3), false);
        s.hand_over();
        let got: Vec<Bytes> = s.take_on_end().unwrap().collect();
        assert_eq!(got, vec![d(1), d(3)]);
    }
}
