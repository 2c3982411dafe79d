//! The one calling convention of both sessions (sender and receiver), in the style of str0m.
//!
//! A session owns no socket, thread or clock. Everything that happens to it is an [`Input`]
//! carrying the time it happened; everything it wants done is an [`Output`]:
//!
//! 1. Call `handle_input` with one [`Input`] (a datagram, a timer firing, audio, the end of
//!    the input).
//! 2. Call `poll_output` until it returns [`Output::Timeout`]: each [`Output::Transmit`] is a
//!    datagram to send to its address, each [`Output::Event`] something to tell the
//!    application.
//! 3. Wait until the instant of that `Timeout` or the next input, whichever comes first, and go
//!    to 1. When the instant arrives, the input is [`Input::Timeout`].
//!
//! The receiver's audio is not an output: it is pulled at the playout pace
//! (`ReceiverSession::playout`), by a timer, a sound card or a simulator.
//!
//! The drive loop that follows these rules is written once, in the `isostream-drive` crate,
//! and serves the tokio drivers, the simulator behind `bench` and the tests alike.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::time::Instant;

/// Something that happened to a session, with the time it happened.
#[derive(Debug)]
pub enum Input<'a> {
    /// A datagram arrived from `from`.
    Datagram {
        /// When it arrived.
        now: Instant,
        /// Who sent it.
        from: SocketAddr,
        /// The datagram; a session may keep a reference to it (no copy).
        data: Bytes,
    },
    /// Time passed: the instant of the last [`Output::Timeout`] (or later) has come.
    Timeout(Instant),
    /// Audio frames of the input (wire frames, all channels), for a sender. A stored source
    /// passes at most what the sender wants (`SenderSession::audio_wanted`); a live source
    /// passes whatever it captured. A receiver ignores it.
    Audio {
        /// When the audio became available.
        now: Instant,
        /// Whole wire frames.
        frames: &'a [u8],
    },
    /// The input has ended: nothing more will come (a sender sends what it holds, then BYE).
    EndOfInput(Instant),
}

impl Input<'_> {
    /// The time the input carries.
    pub fn now(&self) -> Instant {
        match self {
            Input::Datagram { now, .. }
            | Input::Timeout(now)
            | Input::Audio { now, .. }
            | Input::EndOfInput(now) => *now,
        }
    }
}

/// A datagram a session wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub to: SocketAddr,
    /// The datagram.
    pub data: Bytes,
}

/// What a session wants done, from `poll_output`.
#[derive(Debug, PartialEq, Eq)]
pub enum Output<E> {
    /// Send this datagram now.
    Transmit(Transmit),
    /// Tell the application.
    Event(E),
    /// Nothing more for now: call `handle_input(Input::Timeout(..))` at this instant at the
    /// latest (`None`: only an input can wake the session).
    Timeout(Option<Instant>),
}

/// The timers of a session in one table, as quinn-proto keeps them: each timer is an index
/// (a session's own enum converted with `as usize`), the next deadline is the earliest set
/// timer.
#[derive(Clone, Debug)]
pub struct TimerTable<const N: usize> {
    at: [Option<Instant>; N],
}

impl<const N: usize> Default for TimerTable<N> {
    fn default() -> Self {
        TimerTable { at: [None; N] }
    }
}

impl<const N: usize> TimerTable<N> {
    /// Sets timer `t` to fire at `at` (replacing any earlier setting).
    pub fn set(&mut self, t: usize, at: Instant) {
        self.at[t] = Some(at);
    }

    /// Stops timer `t`.
    pub fn stop(&mut self, t: usize) {
        self.at[t] = None;
    }

    /// When timer `t` fires, if it is set.
    pub fn get(&self, t: usize) -> Option<Instant> {
        self.at[t]
    }

    /// Whether timer `t` is set and its instant has come by `now`.
    pub fn is_due(&self, t: usize, now: Instant) -> bool {
        self.at[t].is_some_and(|at| at <= now)
    }

    /// The earliest set timer's instant.
    pub fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }
}

/// The earlier of two optional deadlines.
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_table_gives_the_earliest_set_timer() {
        let mut t = TimerTable::<3>::default();
        assert_eq!(t.next(), None);
        t.set(2, Instant::from_nanos(30));
        t.set(0, Instant::from_nanos(50));
        assert_eq!(t.next(), Some(Instant::from_nanos(30)));
        assert!(t.is_due(2, Instant::from_nanos(30)));
        assert!(!t.is_due(0, Instant::from_nanos(30)));
        assert!(!t.is_due(1, Instant::from_nanos(99)));
        t.stop(2);
        assert_eq!(t.next(), Some(Instant::from_nanos(50)));
        assert_eq!(t.get(0), Some(Instant::from_nanos(50)));
    }

    #[test]
    fn earliest_of_optional_deadlines() {
        let a = Some(Instant::from_nanos(5));
        let b = Some(Instant::from_nanos(7));
        assert_eq!(earliest(a, b), a);
        assert_eq!(earliest(None, b), b);
        assert_eq!(earliest(a, None), a);
        assert_eq!(earliest(None, None), None);
    }

    #[test]
    fn every_input_carries_its_time() {
        let now = Instant::from_nanos(9);
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for i in [
            Input::Datagram {
                now,
                from,
                data: Bytes::new(),
            },
            Input::Timeout(now),
            Input::Audio { now, frames: &[] },
            Input::EndOfInput(now),
        ] {
            assert_eq!(i.now(), now);
        }
    }
}
