//! The listener table: who subscribed, from where, and who went quiet.
//!
//! A listener is admitted by an APP `ISOS` SUBSCRIBE from its address, or by a receiver
//! report from an address the relay does not know whose first block is about one of the
//! session's substreams (a listener that was dropped and came back, or one whose
//! SUBSCRIBE was lost after its session started elsewhere). Every RTCP datagram from its
//! address refreshes it. One silent for the listener timeout is dropped: counted as
//! *finished* if it had been sent the whole stream and its end, else *timed out*.

use std::net::SocketAddr;

use isostream_transport::time::{Duration, Instant};

use crate::listener::Listener;
use crate::stats::{ListenerState, ListenerStats};

/// The listeners being served, in the order they joined, and those that left.
#[derive(Debug, Default)]
pub struct Listeners {
    active: Vec<Listener>,
    departed: Vec<ListenerStats>,
    joined: u64,
    refused: u64,
}

impl Listeners {
    /// The listener at `addr`, if it is being served.
    pub fn get_mut(&mut self, addr: SocketAddr) -> Option<&mut Listener> {
        self.active.iter_mut().find(|l| l.addr() == addr)
    }

    /// Whether `addr` is a listener being served.
    pub fn contains(&self, addr: SocketAddr) -> bool {
        self.active.iter().any(|l| l.addr() == addr)
    }

    /// Admits `listener` unless `max` are served already (then it is refused and counted).
    /// Returns whether it was admitted.
    pub fn admit(&mut self, listener: Listener, max: usize) -> bool {
        if self.active.len() >= max {
            self.refused += 1;
            return false;
        }
        self.joined += 1;
        self.active.push(listener);
        true
    }

    /// A subscription refused for another reason (the stream has ended).
    pub fn refuse(&mut self) {
        self.refused += 1;
    }

    /// Drops the listeners silent for `timeout` at `now`; returns their addresses and how
    /// they left.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<(SocketAddr, ListenerState)> {
        let mut gone = Vec::new();
        let mut i = 0;
        while i < self.active.len() {
            if self.active[i].is_silent(now, timeout) {
                let l = self.active.remove(i);
                let state = if l.finished() {
                    ListenerState::Finished
                } else {
                    ListenerState::TimedOut
                };
                gone.push((l.addr(), state));
                self.departed.push(l.leave(now, state));
            } else {
                i += 1;
            }
        }
        gone
    }

    /// The listeners being served.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Listener> {
        self.active.iter_mut()
    }

    /// The listeners being served.
    pub fn iter(&self) -> impl Iterator<Item = &Listener> {
        self.active.iter()
    }

    /// How many are being served.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// Whether none is being served.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Listeners admitted so far.
    pub fn joined(&self) -> u64 {
        self.joined
    }

    /// Subscriptions refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Every listener's counters: the departed first (in the order they left), then the
    /// active (in the order they joined).
    pub fn stats(&self) -> Vec<ListenerStats> {
        self.departed
            .iter()
            .cloned()
            .chain(self.active.iter().map(Listener::stats))
            .collect()
    }

    /// How many left in `state`.
    pub fn departed_in(&self, state: ListenerState) -> u64 {
        self.departed.iter().filter(|s| s.state == state).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn listeners_are_admitted_up_to_the_limit_and_dropped_when_silent() {
        let mut t = Listeners::default();
        let t0 = Instant::ZERO;
        assert!(t.admit(Listener::new(addr(1), None, t0, 0), 2));
        assert!(t.admit(
            Listener::new(addr(2), None, t0 + Duration::from_secs(1), 0),
            2
        ));
        assert!(!t.admit(Listener::new(addr(3), None, t0, 0), 2));
        assert_eq!((t.joined(), t.refused(), t.len()), (2, 1, 2));
        assert!(t.contains(addr(2)) && !t.contains(addr(3)));
        let timeout = Duration::from_secs(5);
        assert!(t
            .expire(t0 + Duration::from_millis(4999), timeout)
            .is_empty());
        let gone = t.expire(t0 + Duration::from_secs(5), timeout);
        assert_eq!(gone, vec![(addr(1), ListenerState::TimedOut)]);
        assert_eq!(t.len(), 1);
        let s = t.stats();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].state, ListenerState::TimedOut);
        assert_eq!(s[0].left_ms, Some(5000.0));
        assert_eq!(s[1].state, ListenerState::Active);
        assert_eq!(t.departed_in(ListenerState::TimedOut), 1);
    }
}
