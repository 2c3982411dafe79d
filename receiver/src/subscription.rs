//! Subscription: a receiver that connects to a relay (`recv --connect`) speaks first. Until
//! its first session starts it sends an APP `ISOS` SUBSCRIBE to the relay every
//! [`SUBSCRIBE_INTERVAL`]; the relay answers to the address the subscription came from, so
//! a listener behind NAT needs no open port. Once a session runs, its receiver reports
//! (every 250 ms) keep the subscription alive (docs/PROTOCOL.md, "Relay").

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use isostream_transport::rtcp;
use isostream_transport::time::{Duration, Instant};

/// How often a listener repeats its SUBSCRIBE until the stream reaches it.
pub const SUBSCRIBE_INTERVAL: Duration = Duration::from_millis(1000);

/// The SUBSCRIBE timer of a receiver that connects to a relay.
#[derive(Debug)]
pub struct Subscription {
    /// The relay's address.
    relay: SocketAddr,
    /// When the next SUBSCRIBE is due (`None`: at the next input).
    next: Option<Instant>,
    /// SUBSCRIBE packets made so far.
    sent: u64,
}

impl Subscription {
    /// Subscriptions to `relay`, the first due at once.
    pub fn new(relay: SocketAddr) -> Self {
        Subscription {
            relay,
            next: None,
            sent: 0,
        }
    }

    /// The relay's address.
    pub fn relay(&self) -> SocketAddr {
        self.relay
    }

    /// SUBSCRIBE packets made so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// When the next SUBSCRIBE is due, while `waiting` (no session has started yet).
    pub fn deadline(&self, waiting: bool, now: Instant) -> Option<Instant> {
        waiting.then(|| self.next.unwrap_or(now))
    }

    /// The SUBSCRIBE from `ssrc` to send at `now`, if one is due and the receiver is still
    /// `waiting` for its first session.
    pub fn poll(&mut self, now: Instant, waiting: bool, ssrc: u32) -> Option<Bytes> {
        if !waiting || self.next.is_some_and(|t| now < t) {
            return None;
        }
        self.next = Some(now + SUBSCRIBE_INTERVAL);
        self.sent += 1;
        let mut b = BytesMut::with_capacity(16);
        rtcp::write_subscribe(&mut b, ssrc);
        Some(b.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_transport::rtcp::RtcpPacket;

    #[test]
    fn subscribes_at_once_then_every_interval_until_a_session_starts() {
        let relay = SocketAddr::from(([127, 0, 0, 1], 7000));
        let mut s = Subscription::new(relay);
        let t0 = Instant::ZERO + Duration::from_millis(3);
        assert_eq!(s.deadline(true, t0), Some(t0));
        let d = s.poll(t0, true, 9).expect("the first at once");
        let p: Vec<_> = rtcp::parse_compound(&d).map(Result::unwrap).collect();
        assert_eq!(p, vec![RtcpPacket::Subscribe { ssrc: 9 }]);
        assert_eq!(s.poll(t0 + Duration::from_millis(999), true, 9), None);
        assert_eq!(s.deadline(true, t0), Some(t0 + SUBSCRIBE_INTERVAL));
        assert!(s.poll(t0 + SUBSCRIBE_INTERVAL, true, 9).is_some());
        // a session runs: its reports refresh the subscription
        assert_eq!(s.poll(t0 + SUBSCRIBE_INTERVAL * 5, false, 9), None);
        assert_eq!(s.deadline(false, t0), None);
        assert_eq!(s.sent(), 2);
    }
}
