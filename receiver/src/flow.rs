//! Watermark controller: turns buffer occupancy into PAUSE and RESUME requests and delivers
//! them reliably over lossy UDP.
//!
//! Above the high-water mark the receiver asks the sender to PAUSE; when the buffer drains to
//! the RESUME mark (`ReceiverConfig::resume_water_ms`, the low-water mark unless set) it asks
//! it to RESUME. Every request carries a number one higher than
//! the previous one; the sender acknowledges every request it receives and applies only
//! numbers higher than any it applied before, so a duplicate or a stale request has no effect
//! (at-most-once). An unacknowledged request is sent again after a timeout that doubles (from
//! [`INITIAL_RTO`] up to [`MAX_RTO`]), and a PAUSE also after every
//! [`PAUSE_RETRY_PACKETS`] media packets that still arrive: those packets prove that the
//! sender has not obeyed yet. Retransmission gives up after [`GIVE_UP`]: every receiver
//! report restates the state the receiver wants ([`FlowController::state`]), so nothing is
//! sent again forever and the sender still converges.
//!
//! The sender acknowledges with the newest request number it applied. An acknowledgement of
//! a number this receiver never issued means that someone else's request (forged, or of a
//! previous receiver with this SSRC) took effect: the controller then numbers on above it
//! and asks again for the state it wants, so a forged PAUSE costs about a round trip (a
//! report interval if the acknowledgement is lost).

use isostream_transport::time::{Duration, Instant};

/// First retransmission timeout of a request.
pub const INITIAL_RTO: Duration = Duration::from_millis(20);
/// Largest retransmission timeout.
pub const MAX_RTO: Duration = Duration::from_millis(640);
/// Largest retransmission timeout of a RESUME.
pub const MAX_RESUME_RTO: Duration = Duration::from_millis(40);
/// A PAUSE is sent again after this many media packets arrive while it is unacknowledged.
pub const PAUSE_RETRY_PACKETS: u32 = 8;
/// An unacknowledged request is no longer sent again after this long (the reports restate
/// it).
pub const GIVE_UP: Duration = Duration::from_secs(2);

/// A request to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// PAUSE (true) or RESUME (false).
    pub pause: bool,
    /// The request number.
    pub number: u32,
}

/// Counters of the controller (`flow` in the receiver's stats; docs/STATS.md).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct FlowStats {
    /// PAUSE requests issued (not counting retransmissions).
    pub pauses_sent: u64,
    /// RESUME requests issued (not counting retransmissions).
    pub resumes_sent: u64,
    /// PAUSE requests acknowledged by the sender.
    pub pauses_acked: u64,
    /// RESUME requests acknowledged by the sender.
    pub resumes_acked: u64,
    /// Retransmissions of unacknowledged PAUSE/RESUME requests.
    pub request_retransmissions: u64,
    /// Acknowledgements of a request number this receiver never issued (someone else's
    /// request took effect): the receiver asked again for its state, numbered above it.
    pub requests_overruled: u64,
}

#[derive(Debug)]
struct Outstanding {
    req: Request,
    first_sent: Instant,
    last_sent: Instant,
    rto: Duration,
    packets_since: u32,
}

/// The watermark controller of a receiver session.
#[derive(Debug, Default)]
pub struct FlowController {
    /// Whether the last request issued was PAUSE.
    paused: bool,
    next_number: u32,
    outstanding: Option<Outstanding>,
    stats: FlowStats,
}

impl FlowController {
    /// A controller that has asked for nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the requests of a session that was replaced or ended, but keeps numbering
    /// upward: a sender applies only numbers higher than any it applied, whatever session
    /// they belong to. A paused state becomes running under a new number, which the next
    /// report restates.
    pub fn restart(&mut self) {
        if self.paused {
            self.paused = false;
            self.next_number = self.next_number.wrapping_add(1);
        }
        self.outstanding = None;
    }

    /// The state the receiver wants and the number of the request that asked for it (0 and
    /// running before any request): what every receiver report restates.
    pub fn state(&self) -> Request {
        Request {
            pause: self.paused,
            number: self.next_number,
        }
    }

    /// Whether the sender has been asked to pause.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Counters so far.
    pub fn stats(&self) -> FlowStats {
        self.stats
    }

    /// Decides from the buffer levels (frames) whether to issue a new request.
    ///
    /// `fullest` is the occupancy of the fullest substream: it tracks how far ahead the sender
    /// is, so it alone triggers PAUSE (above `high`) and RESUME (at or below `low`, the
    /// RESUME mark).
    pub fn update(&mut self, now: Instant, fullest: i64, low: i64, high: i64) -> Option<Request> {
        let want_pause = if self.paused {
            fullest > low
        } else {
            fullest > high
        };
        if want_pause == self.paused {
            return None;
        }
        self.paused = want_pause;
        if want_pause {
            self.stats.pauses_sent += 1;
        } else {
            self.stats.resumes_sent += 1;
        }
        Some(self.issue(now))
    }

    /// Issues the current state as a new request, numbered above the last.
    fn issue(&mut self, now: Instant) -> Request {
        self.next_number = self.next_number.wrapping_add(1);
        let req = self.state();
        self.outstanding = Some(Outstanding {
            req,
            first_sent: now,
            last_sent: now,
            rto: INITIAL_RTO,
            packets_since: 0,
        });
        req
    }

    /// The sender acknowledged request `number` (the newest it applied). Returns a request
    /// to send if that number is one this receiver never issued: someone else's request
    /// took effect, and the state this receiver wants is asked for again, numbered above it.
    pub fn on_ack(&mut self, now: Instant, number: u32) -> Option<Request> {
        if let Some(o) = &self.outstanding {
            if o.req.number == number {
                if o.req.pause {
                    self.stats.pauses_acked += 1;
                } else {
                    self.stats.resumes_acked += 1;
                }
                self.outstanding = None;
                return None;
            }
        }
        if !isostream_transport::rtcp::is_newer_request(number, self.next_number) {
            return None;
        }
        self.stats.requests_overruled += 1;
        self.next_number = number;
        Some(self.issue(now))
    }

    /// A media packet arrived; returns a PAUSE to send again if it is overdue by count.
    pub fn on_media(&mut self, now: Instant) -> Option<Request> {
        let o = self.outstanding.as_mut()?;
        if !o.req.pause || now - o.first_sent >= GIVE_UP {
            return None;
        }
        o.packets_since += 1;
        if o.packets_since < PAUSE_RETRY_PACKETS {
            return None;
        }
        o.packets_since = 0;
        o.last_sent = now;
        self.stats.request_retransmissions += 1;
        Some(o.req)
    }

    /// When the outstanding request must be sent again, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.outstanding.as_ref().map(|o| o.last_sent + o.rto)
    }

    /// Timer: returns the request to send again if its timeout expired.
    pub fn on_timeout(&mut self, now: Instant) -> Option<Request> {
        let o = self.outstanding.as_mut()?;
        if now < o.last_sent + o.rto {
            return None;
        }
        if now - o.first_sent >= GIVE_UP {
            // the receiver's reports restate the state from now on
            self.outstanding = None;
            return None;
        }
        o.last_sent = now;
        // a RESUME is due when the buffer is already at its low-water mark: keep retrying it
        // quickly, or the buffer runs dry while the request is lost
        let cap = if o.req.pause { MAX_RTO } else { MAX_RESUME_RTO };
        o.rto = (o.rto * 2).min(cap);
        o.packets_since = 0;
        self.stats.request_retransmissions += 1;
        Some(o.req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_sent_above_high_water_and_resume_at_low_water() {
        let mut f = FlowController::new();
        let t = Instant::ZERO;
        assert_eq!(f.update(t, 100, 50, 200), None);
        assert_eq!(
            f.update(t, 201, 50, 200),
            Some(Request {
                pause: true,
                number: 1
            })
        );
        assert_eq!(f.update(t, 300, 50, 200), None);
        assert_eq!(f.update(t, 51, 50, 200), None);
        assert_eq!(
            f.update(t, 50, 50, 200),
            Some(Request {
                pause: false,
                number: 2
            })
        );
    }

    #[test]
    fn unacknowledged_requests_are_retransmitted_with_backoff_until_acked() {
        let mut f = FlowController::new();
        let t0 = Instant::ZERO;
        f.update(t0, 500, 50, 200).unwrap();
        assert_eq!(f.on_timeout(t0 + Duration::from_millis(19)), None);
        let t1 = t0 + INITIAL_RTO;
        assert!(f.on_timeout(t1).is_some());
        assert_eq!(f.deadline(), Some(t1 + INITIAL_RTO * 2));
        assert_eq!(f.on_ack(t1, 1), None);
        assert_eq!(f.deadline(), None);
        assert_eq!(f.stats().pauses_acked, 1);
        assert_eq!(f.stats().request_retransmissions, 1);
    }

    #[test]
    fn media_still_arriving_after_pause_triggers_a_retransmission() {
        let mut f = FlowController::new();
        let t0 = Instant::ZERO;
        f.update(t0, 500, 50, 200).unwrap();
        let sent: Vec<_> = (0..PAUSE_RETRY_PACKETS * 2)
            .filter_map(|_| f.on_media(t0))
            .collect();
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|r| r.pause && r.number == 1));
    }

    #[test]
    fn a_stale_ack_does_not_clear_a_newer_request() {
        let mut f = FlowController::new();
        let t = Instant::ZERO;
        f.update(t, 500, 50, 200).unwrap();
        f.update(t, 10, 50, 200).unwrap();
        assert_eq!(f.on_ack(t, 1), None);
        assert!(f.deadline().is_some());
        assert_eq!(f.on_ack(t, 2), None);
        assert!(f.deadline().is_none());
    }

    #[test]
    fn an_ack_of_a_number_never_issued_asks_again_above_it() {
        let mut f = FlowController::new();
        let t = Instant::ZERO;
        // running, never asked for anything: a forged PAUSE numbered far ahead took effect
        // (u32::MAX itself is older than 0, so the sender would not have applied it)
        let forged = 0x7fff_fff0;
        assert_eq!(
            f.state(),
            Request {
                pause: false,
                number: 0
            }
        );
        let again = f.on_ack(t, forged).expect("asks again");
        assert_eq!(
            again,
            Request {
                pause: false,
                number: forged + 1
            }
        );
        assert_eq!(f.stats().requests_overruled, 1);
        // the sender acknowledges the new request: settled
        assert_eq!(f.on_ack(t, again.number), None);
        assert_eq!(f.deadline(), None);
        // numbering wraps past u32::MAX
        let mut g = FlowController::new();
        assert_eq!(g.on_ack(t, 1 << 30).map(|r| r.number), Some((1 << 30) + 1));
        g.next_number = u32::MAX - 1;
        assert_eq!(g.on_ack(t, u32::MAX).map(|r| r.number), Some(0));
        // an old number is no news
        assert_eq!(f.on_ack(t, forged - 5), None);
    }

    #[test]
    fn retransmission_gives_up_and_the_state_stays_for_the_reports() {
        let mut f = FlowController::new();
        let t0 = Instant::ZERO;
        let req = f.update(t0, 500, 50, 200).unwrap();
        let mut sent = 0;
        let mut t = t0;
        while let Some(at) = f.deadline() {
            t = at;
            sent += usize::from(f.on_timeout(t).is_some());
            assert!(t - t0 <= GIVE_UP + MAX_RTO, "still retrying at {t:?}");
        }
        assert!(sent >= 3, "{sent} retransmissions");
        assert_eq!(f.on_media(t), None);
        assert_eq!(f.state(), req);
    }

    #[test]
    fn a_restart_while_paused_is_a_new_running_state() {
        let mut f = FlowController::new();
        let t = Instant::ZERO;
        let pause = f.update(t, 500, 50, 200).unwrap();
        f.restart();
        let s = f.state();
        assert!(!s.pause);
        assert!(isostream_transport::rtcp::is_newer_request(
            s.number,
            pause.number
        ));
    }
}
