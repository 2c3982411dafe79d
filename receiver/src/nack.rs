//! NACK: the stage that asks the sender again for media packets the network lost (Generic
//! NACK, RFC 4585), while the answer can still arrive before the packet's playout deadline.
//!
//! It watches the extended sequence numbers the arrival stage lets through. A gap makes its
//! packets *missing*. A missing packet is first asked for once the packets that could still
//! fill it have had their chance: reordering (a few ms and the jitter), and the FEC block it
//! belongs to (the block's span, spread included), so that nothing FEC will rebuild is asked
//! for. It is asked again, an estimated round trip later (the wait doubling after every
//! unanswered request, up to [`MAX_RETRY`]), until it arrives (late, rebuilt or
//! retransmitted), its playout deadline no longer leaves a round trip, or it was asked for
//! [`MAX_TRIES`] times.
//!
//! The round-trip time is estimated from the answers (the time from the first request for a
//! packet to its retransmission, when it was asked for once) and from the sender's answers
//! to the receiver's reference times (RFC 3611 RRTR/DLRR, handed in), smoothed as TCP does
//! (RFC 6298). Everything is explicit
//! input: the caller says when each packet is played ([`Deadlines`]).

use std::collections::VecDeque;

use isostream_transport::time::{Duration, Instant};

/// Times a missing packet is asked for at most (with the waits doubling up to
/// [`MAX_RETRY`], this spans over 20 s: the playout deadline is what ends the asking).
pub const MAX_TRIES: u8 = 30;
/// Missing packets tracked at most per substream (a longer outage forgets its oldest).
pub const MAX_MISSING: usize = 4096;
/// The round trip assumed before the first measurement, to time repeated requests.
pub const INITIAL_RTT: Duration = Duration::from_millis(100);
/// The round trip assumed before the first measurement when deciding whether an answer can
/// still arrive in time: optimistic, since a request not made costs the audio and one made
/// in vain only its bytes (the first measurement comes within a round trip or two).
pub const INITIAL_DEADLINE_RTT: Duration = Duration::from_millis(40);
/// Shortest time between two requests for one packet.
pub const MIN_RETRY: Duration = Duration::from_millis(10);
/// Longest time between two requests for one packet: the wait doubles after every
/// unanswered request (an answer may be stuck behind a delay spike), up to this.
pub const MAX_RETRY: Duration = Duration::from_millis(800);
/// With multicast, the most a gap's first request waits beyond its hold, at random
/// (RFC 4585, 3.5.2: members of a group do not all ask at once, and one who sees the
/// retransmission another asked for asks for nothing). In ms.
pub const MULTICAST_NACK_DELAY: Duration = Duration::from_millis(20);

/// What the NACK stage did, in packets unless named otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NackCounts {
    /// Requests for a packet (each packet as often as it was asked for).
    pub requested: u64,
    /// Missing packets that arrived as retransmissions.
    pub retransmitted: u64,
    /// Missing packets given up: their deadline passed or they were asked for too often.
    pub given_up: u64,
}

/// When a packet is played, as the session sees it now.
pub trait Deadlines {
    /// The instant the first frame of packet `ext` (extended sequence number) is due at the
    /// output, if known.
    fn deadline(&self, ext: u64) -> Option<Instant>;
}

#[derive(Clone, Copy, Debug)]
struct Missing {
    ext: u64,
    next_ask: Instant,
    first_asked: Option<Instant>,
    tries: u8,
}

/// The NACK stage of one substream. See the module documentation.
#[derive(Debug)]
pub struct Nacker {
    missing: VecDeque<Missing>,
    highest: Option<u64>,
    /// How long a gap waits before its first request.
    hold: Duration,
    /// The interarrival jitter now: a gap also waits twice as long as it.
    jitter: Duration,
    srtt: Option<Duration>,
    rttvar: Duration,
    counts: NackCounts,
    /// The most a first request waits beyond the hold at random (zero: no wait).
    random_delay: Duration,
    /// State of the generator of those waits (xorshift64, never zero).
    rng: u64,
}

impl Nacker {
    /// The most the stage allocates, in bytes: [`MAX_MISSING`] gaps (a ring that may
    /// have grown to twice that).
    pub const MEMORY_BYTES: usize = 2 * MAX_MISSING * std::mem::size_of::<Missing>();

    /// A stage whose gaps wait `hold` before their first request (reordering and the FEC
    /// block's span).
    pub fn new(hold: Duration) -> Self {
        Nacker {
            missing: VecDeque::new(),
            highest: None,
            hold,
            jitter: Duration::ZERO,
            srtt: None,
            rttvar: Duration::ZERO,
            counts: NackCounts::default(),
            random_delay: Duration::ZERO,
            rng: 1,
        }
    }

    /// A gap's first request also waits a random time from zero to `max` (a member of a
    /// multicast group: RFC 4585's randomised feedback), drawn from a generator seeded
    /// with `seed`.
    pub fn with_random_delay(mut self, max: Duration, seed: u64) -> Self {
        self.random_delay = max;
        self.rng = seed | 1;
        self
    }

    /// The next random wait, from zero to `random_delay`.
    fn draw_delay(&mut self) -> Duration {
        if self.random_delay.is_zero() {
            return Duration::ZERO;
        }
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        let ns = self.random_delay.as_nanos() as u64;
        Duration::from_nanos(x % (ns + 1))
    }

    /// Counters so far.
    pub fn counts(&self) -> NackCounts {
        self.counts
    }

    /// The smoothed round-trip time (the initial guess before any answer).
    pub fn rtt(&self) -> Duration {
        self.srtt.unwrap_or(INITIAL_RTT)
    }

    /// How long to wait for an answer before asking again.
    fn retry(&self) -> Duration {
        (self.rtt() + 4 * self.rttvar).max(MIN_RETRY)
    }

    /// The interarrival jitter measured now (reordering it may cause is waited for).
    pub fn set_jitter(&mut self, jitter: Duration) {
        self.jitter = jitter;
    }

    /// Packet `ext` arrived at `now` (first arrival of an original).
    pub fn on_arrival(&mut self, now: Instant, ext: u64) {
        match self.highest {
            Some(h) if ext > h => {
                let first_ask = now + self.hold + 2 * self.jitter + self.draw_delay();
                for gap in (h + 1)..ext {
                    if self.missing.len() == MAX_MISSING {
                        self.missing.pop_front();
                        self.counts.given_up += 1;
                    }
                    self.missing.push_back(Missing {
                        ext: gap,
                        next_ask: first_ask,
                        first_asked: None,
                        tries: 0,
                    });
                }
                self.highest = Some(ext);
            }
            Some(_) => self.forget(ext),
            None => self.highest = Some(ext),
        }
    }

    /// The stream is known to hold packets up to `ext_last` (its end, from the sender's
    /// BYE): those after the highest seen are missing too (a loss at the very end leaves no
    /// later packet to reveal it).
    pub fn expect_until(&mut self, now: Instant, ext_last: u64) {
        if let Some(h) = self.highest {
            if ext_last > h {
                self.on_arrival(now, ext_last + 1);
                self.highest = Some(ext_last);
            }
        }
    }

    /// Packet `ext` was rebuilt by FEC: no longer missing.
    pub fn on_rebuilt(&mut self, ext: u64) {
        self.forget(ext);
    }

    /// Packet `ext` arrived as a retransmission at `now`: no longer missing, and, if it was
    /// asked for once, a round-trip sample.
    pub fn on_retransmission(&mut self, now: Instant, ext: u64) {
        if let Some(i) = self.find(ext) {
            let m = self.missing.remove(i).expect("found");
            self.counts.retransmitted += 1;
            if let (1, Some(t)) = (m.tries, m.first_asked) {
                self.sample(now.saturating_duration_since(t));
            }
        }
    }

    /// A round trip measured elsewhere (the sender's answer to a reference time, RFC 3611).
    pub fn on_rtt(&mut self, r: Duration) {
        self.sample(r);
    }

    fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(s) => {
                let d = s.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + d) / 4;
                self.srtt = Some((s * 7 + r) / 8);
            }
        }
    }

    fn find(&self, ext: u64) -> Option<usize> {
        self.missing.binary_search_by_key(&ext, |m| m.ext).ok()
    }

    fn forget(&mut self, ext: u64) {
        if let Some(i) = self.find(ext) {
            self.missing.remove(i);
        }
    }

    /// The packets to ask for at `now`, appended to `out` as wire sequence numbers: those
    /// whose turn has come and whose deadline leaves a round trip. Packets whose deadline
    /// no longer does, or that were asked for [`MAX_TRIES`] times, are given up.
    pub fn due(&mut self, now: Instant, deadlines: &dyn Deadlines, out: &mut Vec<u16>) {
        // before any round trip was measured, ask anyway: an answer that comes too late only
        // costs its bytes, a request not made costs the audio
        let rtt = self.srtt.unwrap_or(INITIAL_DEADLINE_RTT);
        let retry = self.retry();
        let mut given_up = 0;
        self.missing.retain_mut(|m| {
            if m.next_ask > now {
                return true;
            }
            let fits = deadlines.deadline(m.ext).is_none_or(|d| d > now + rtt);
            if !fits || m.tries >= MAX_TRIES {
                given_up += 1;
                return false;
            }
            out.push(m.ext as u16);
            m.tries += 1;
            m.first_asked.get_or_insert(now);
            let wait = retry.saturating_mul(1 << (m.tries - 1).min(6));
            m.next_ask = now + wait.min(MAX_RETRY.max(retry));
            true
        });
        self.counts.given_up += given_up;
        self.counts.requested += out.len() as u64;
    }

    /// When [`Self::due`] has something to do next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.missing.iter().map(|m| m.next_ask).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    /// Packet n plays at 1000 ms + 5 ms x n.
    struct Clock;
    impl Deadlines for Clock {
        fn deadline(&self, ext: u64) -> Option<Instant> {
            Some(at(1000 + 5 * ext))
        }
    }

    fn due(n: &mut Nacker, ms: u64) -> Vec<u16> {
        let mut v = Vec::new();
        n.due(at(ms), &Clock, &mut v);
        v
    }

    #[test]
    fn a_group_members_first_request_waits_at_random_and_the_groups_retransmission_spares_it() {
        let mut waits = std::collections::BTreeSet::new();
        for seed in 0..32 {
            let mut n = Nacker::new(Duration::from_millis(20))
                .with_random_delay(MULTICAST_NACK_DELAY, seed);
            n.on_arrival(at(0), 10);
            n.on_arrival(at(5), 12);
            let first = n.next_deadline().expect("a gap");
            assert!(first >= at(25) && first <= at(45), "{first:?}");
            waits.insert(first);
            // another member's request was answered to the group first: nothing to ask
            n.on_retransmission(first - Duration::from_millis(1), 11);
            assert_eq!(due(&mut n, 100), Vec::<u16>::new());
            assert_eq!(n.counts().requested, 0);
        }
        assert!(
            waits.len() > 8,
            "the waits differ between members: {waits:?}"
        );
    }

    #[test]
    fn a_gap_is_asked_for_after_the_hold_and_again_a_round_trip_later() {
        let mut n = Nacker::new(Duration::from_millis(20));
        n.on_arrival(at(0), 10);
        n.on_arrival(at(5), 13);
        assert_eq!(due(&mut n, 10), Vec::<u16>::new());
        assert_eq!(n.next_deadline(), Some(at(25)));
        assert_eq!(due(&mut n, 25), vec![11, 12]);
        // no answer: asked again after the initial round trip
        assert_eq!(due(&mut n, 100), Vec::<u16>::new());
        assert_eq!(due(&mut n, 125 + 4 * 50), vec![11, 12]);
        assert_eq!(n.counts().requested, 4);
    }

    #[test]
    fn what_arrives_late_or_is_rebuilt_is_never_asked_for() {
        let mut n = Nacker::new(Duration::from_millis(20));
        n.on_arrival(at(0), 1);
        n.on_arrival(at(1), 5);
        n.on_arrival(at(2), 2); // reordered
        n.on_rebuilt(3); // FEC
        assert_eq!(due(&mut n, 30), vec![4]);
    }

    #[test]
    fn answers_give_the_round_trip_and_a_deadline_too_close_gives_up() {
        let mut n = Nacker::new(Duration::ZERO);
        n.on_arrival(at(0), 0);
        n.on_arrival(at(0), 2);
        assert_eq!(due(&mut n, 0), vec![1]);
        n.on_retransmission(at(30), 1);
        assert_eq!(n.rtt(), Duration::from_millis(30));
        assert_eq!(n.counts().retransmitted, 1);
        // packets 3..=198 and 200 play by 2000 ms: at 1980 ms a 30 ms round trip fits none
        n.on_arrival(at(1900), 199);
        n.on_arrival(at(1900), 201);
        assert_eq!(due(&mut n, 1980), Vec::<u16>::new());
        assert_eq!(n.counts().given_up, 196 + 1);
        assert_eq!(n.next_deadline(), None);
    }

    #[test]
    fn a_packet_is_asked_for_at_most_max_tries_times() {
        let mut n = Nacker::new(Duration::ZERO);
        n.on_arrival(at(0), 0);
        n.on_arrival(at(0), 2);
        struct Never;
        impl Deadlines for Never {
            fn deadline(&self, _: u64) -> Option<Instant> {
                None
            }
        }
        let mut asked = 0;
        for ms in 0..100_000 {
            let mut v = Vec::new();
            n.due(at(ms), &Never, &mut v);
            asked += v.len();
        }
        assert_eq!(asked, MAX_TRIES as usize);
        assert_eq!(n.counts().given_up, 1);
    }

    #[test]
    fn a_loss_at_the_end_is_asked_for_once_the_end_is_known() {
        let mut n = Nacker::new(Duration::ZERO);
        n.on_arrival(at(0), 0);
        n.on_arrival(at(0), 1);
        n.expect_until(at(5), 4);
        assert_eq!(due(&mut n, 5), vec![2, 3, 4]);
        // packet 5 was never sent: nothing past the end is asked for, and the end arriving
        // late is not a gap
        n.on_arrival(at(6), 4);
        n.expect_until(at(7), 3);
        assert_eq!(due(&mut n, 500), vec![2, 3]);
    }

    #[test]
    fn an_outage_is_bounded() {
        let mut n = Nacker::new(Duration::ZERO);
        n.on_arrival(at(0), 0);
        n.on_arrival(at(0), 100_000);
        assert_eq!(n.missing.len(), MAX_MISSING);
        assert_eq!(n.counts().given_up, 100_000 - 1 - MAX_MISSING as u64);
    }
}
