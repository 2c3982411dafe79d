//! Flow control: the sender's side of the receiver's PAUSE and RESUME.
//!
//! [`FlowControl`] decides, for each PAUSE or RESUME that arrives, whether it comes from the
//! session's own receiver, whether it is newer (RFC 1982 request numbers) than any applied,
//! which number to acknowledge, and whether the stream changes state. It sends nothing
//! itself: it returns a [`FlowAnswer`] and the session applies it (sends the ACK, drops
//! queued live audio, restarts the pacer, reports the event).

use isostream_transport::rtcp;
use isostream_transport::time::Instant;

/// A change of the stream's state that a request caused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowChange {
    /// The stream paused.
    Paused,
    /// The stream runs again.
    Resumed,
}

/// What to do about one PAUSE or RESUME.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowAnswer {
    /// The request came from the session's receiver (or a multicast member): it counts as
    /// hearing from the receiver.
    pub heard: bool,
    /// The request number to acknowledge (APP ACK), if one is due.
    pub ack: Option<u32>,
    /// The state change the request caused, if any.
    pub change: Option<FlowChange>,
}

/// The flow-control counters (their meaning: [`crate::SenderStats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    /// PAUSE requests that took effect.
    pub pauses_applied: u64,
    /// RESUME requests that took effect.
    pub resumes_applied: u64,
    /// Requests received again after they took effect (acknowledged, no effect).
    pub duplicate_requests: u64,
    /// Time spent paused, in ms (periods that ended).
    pub paused_ms: u64,
    /// Requests dropped because they did not come from the receiver's address.
    pub requests_foreign: u64,
    /// Requests a multicast sender ignored.
    pub requests_ignored: u64,
}

/// The PAUSE/RESUME state of a sender session.
#[derive(Clone, Debug, Default)]
pub struct FlowControl {
    multicast: bool,
    paused: bool,
    paused_since: Option<Instant>,
    receiver_ssrc: Option<u32>,
    last_request: u32,
    counters: FlowCounters,
}

impl FlowControl {
    /// A running stream; `multicast`: requests are ignored (no one member of a group stops
    /// or starts it).
    pub fn new(multicast: bool) -> Self {
        FlowControl {
            multicast,
            ..Default::default()
        }
    }

    /// Whether the receiver has paused the stream.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The SSRC the receiver's requests come from, once one arrived.
    pub fn receiver_ssrc(&self) -> Option<u32> {
        self.receiver_ssrc
    }

    /// The counters so far.
    pub fn counters(&self) -> FlowCounters {
        self.counters
    }

    /// The session is over: a pause still running is not counted into `paused_ms`.
    pub fn finish(&mut self) {
        self.paused_since = None;
    }

    /// A PAUSE (`pause`) or RESUME at `now` from SSRC `ssrc` numbered `request`;
    /// `from_receiver`: it came from the session's receiver address; `in_report`: it follows
    /// a receiver report in its compound, restating what the receiver wants.
    ///
    /// The sender converges to the receiver's word: it applies a request numbered higher
    /// (RFC 1982) than any it applied, and it acknowledges with the newest number it
    /// applied, so a receiver that sees a number it never issued (a forged or stale request
    /// took effect) speaks again above it. A new receiver SSRC (a restarted receiver)
    /// numbers afresh: its first word stands.
    pub fn on_request(
        &mut self,
        now: Instant,
        from_receiver: bool,
        ssrc: u32,
        request: u32,
        pause: bool,
        in_report: bool,
    ) -> FlowAnswer {
        let mut answer = FlowAnswer::default();
        if self.multicast {
            // no one receiver of a group stops or starts it: the stream goes on at the media
            // rate (docs/PROTOCOL.md, "Multicast")
            answer.heard = true;
            if !in_report {
                // (a report's restatement of the member's state is no request)
                self.counters.requests_ignored += 1;
            }
            return answer;
        }
        if !from_receiver {
            // only the session's own receiver may stop or start the stream
            self.counters.requests_foreign += 1;
            return answer;
        }
        answer.heard = true;
        if self.receiver_ssrc != Some(ssrc) {
            self.receiver_ssrc = Some(ssrc);
            self.last_request = request.wrapping_sub(1);
        }
        let newer = rtcp::is_newer_request(request, self.last_request);
        if in_report && request == self.last_request {
            // the receiver's report restates the state it asked for last: nothing to do
            return answer;
        }
        answer.ack = Some(if newer { request } else { self.last_request });
        if !newer {
            if !in_report {
                self.counters.duplicate_requests += 1;
            }
            return answer;
        }
        self.last_request = request;
        if pause == self.paused {
            return answer;
        }
        self.paused = pause;
        if pause {
            self.counters.pauses_applied += 1;
            self.paused_since = Some(now);
            answer.change = Some(FlowChange::Paused);
        } else {
            self.counters.resumes_applied += 1;
            if let Some(t) = self.paused_since.take() {
                self.counters.paused_ms += (now - t).as_millis() as u64;
            }
            answer.change = Some(FlowChange::Resumed);
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_transport::time::Duration;

    const T0: Instant = Instant::ZERO;

    #[test]
    fn pause_then_resume_acks_and_counts_the_time() {
        let mut f = FlowControl::new(false);
        let a = f.on_request(T0, true, 7, 1, true, false);
        assert_eq!(
            (a.heard, a.ack, a.change),
            (true, Some(1), Some(FlowChange::Paused))
        );
        assert!(f.is_paused());
        let a = f.on_request(T0 + Duration::from_millis(250), true, 7, 2, false, false);
        assert_eq!((a.ack, a.change), (Some(2), Some(FlowChange::Resumed)));
        let c = f.counters();
        assert_eq!(
            (c.pauses_applied, c.resumes_applied, c.paused_ms),
            (1, 1, 250)
        );
    }

    #[test]
    fn a_stale_request_is_acked_with_the_newest_number_and_counted() {
        let mut f = FlowControl::new(false);
        f.on_request(T0, true, 7, 5, true, false);
        let a = f.on_request(T0, true, 7, 4, false, false);
        assert_eq!((a.ack, a.change), (Some(5), None));
        assert!(f.is_paused());
        assert_eq!(f.counters().duplicate_requests, 1);
        // a report restating the last request is no request: no ACK
        let a = f.on_request(T0, true, 7, 5, true, true);
        assert_eq!((a.heard, a.ack), (true, None));
    }

    #[test]
    fn a_new_receiver_ssrc_numbers_afresh() {
        let mut f = FlowControl::new(false);
        f.on_request(T0, true, 7, 100, true, false);
        let a = f.on_request(T0, true, 8, 1, false, false);
        assert_eq!((a.ack, a.change), (Some(1), Some(FlowChange::Resumed)));
        assert_eq!(f.receiver_ssrc(), Some(8));
    }

    #[test]
    fn foreign_and_multicast_requests_have_no_effect() {
        let mut f = FlowControl::new(false);
        assert_eq!(
            f.on_request(T0, false, 7, 1, true, false),
            FlowAnswer::default()
        );
        assert_eq!(f.counters().requests_foreign, 1);
        let mut m = FlowControl::new(true);
        let a = m.on_request(T0, false, 7, 1, true, false);
        assert_eq!((a.heard, a.ack, a.change), (true, None, None));
        m.on_request(T0, true, 7, 2, true, true);
        assert!(!m.is_paused());
        assert_eq!(m.counters().requests_ignored, 1);
    }
}
