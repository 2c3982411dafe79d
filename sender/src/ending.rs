//! The end of a sender session's stream: once the input has ended and the last media
//! datagram has left, BYE goes [`BYE_REPEATS`] times, [`BYE_GAP`] apart. With retransmission
//! and a receiver that has been heard from, the session then lingers, answering NACKs, until
//! the receiver has been silent for [`LINGER_SILENCE`] or the retransmission history has run
//! out; a receiver report that shows the end of the stream missing brings BYE again.
//!
//! [`Ending`] holds that state and decides; it sends nothing itself. The session's timer
//! table and what it knows of the receiver are handed in, and [`EndingStep`] says what the
//! session must do (send BYE, finish).

use isostream_transport::seq::seq_delta;
use isostream_transport::time::{Duration, Instant};

use crate::substream::SubstreamTx;
use crate::timers::{Timer, Timers};

/// BYE is sent this many times, this far apart, as it may be lost (far enough apart that
/// one loss burst of about 100 ms does not take all of them).
pub(crate) const BYE_REPEATS: u8 = 3;
/// The gap between repeats of BYE (100 ms).
pub(crate) const BYE_GAP: Duration = Duration::from_millis(100);

/// After BYE, the sender answers NACKs until the receiver has been silent this long (it
/// stops reporting once it has played the stream out): 1000 ms.
pub(crate) const LINGER_SILENCE: Duration = Duration::from_millis(1000);

/// What the session must do after an [`Ending`] decision, in this order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct EndingStep {
    /// Send an RTCP compound with BYE now.
    pub(crate) send_bye: bool,
    /// The stream is over: finish with [`crate::FinishReason::EndOfInput`].
    pub(crate) finish: bool,
}

/// The end-of-stream lifecycle of a sender session.
#[derive(Clone, Debug)]
pub(crate) struct Ending {
    input_ended: bool,
    byes_left: u8,
    finished: bool,
    /// BYE was sent; NACKs are still answered since this instant.
    lingering_since: Option<Instant>,
    /// When BYE was last sent.
    last_bye_at: Option<Instant>,
}

impl Default for Ending {
    fn default() -> Self {
        Ending {
            input_ended: false,
            byes_left: BYE_REPEATS,
            finished: false,
            lingering_since: None,
            last_bye_at: None,
        }
    }
}

impl Ending {
    /// Whether the input has ended (no more audio is taken).
    pub(crate) fn input_ended(&self) -> bool {
        self.input_ended
    }

    /// Whether the session is over: nothing more will be sent.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether the last BYE has gone and the session lingers, answering NACKs.
    pub(crate) fn is_lingering(&self) -> bool {
        self.lingering_since.is_some()
    }

    /// Marks the end of the input. Returns whether it is news (the session then flushes
    /// its stages; BYE follows the last datagram).
    pub(crate) fn end_input(&mut self) -> bool {
        !std::mem::replace(&mut self.input_ended, true)
    }

    /// Marks the session as finished (for any reason).
    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }

    /// After BYE, a report from the receiver says the highest sequence number it has of
    /// substream `sub` is `highest` (the low 16 bits count). If that is short of the last
    /// packet sent, the end of the stream and every BYE were lost (one burst can take them
    /// all): BYE goes again, at most every [`BYE_GAP`], so the receiver learns where the
    /// stream ends and asks for the tail rather than ending at the newest audio it has.
    pub(crate) fn on_receiver_highest(
        &self,
        now: Instant,
        sub: &SubstreamTx,
        highest: u32,
        timers: &mut Timers,
    ) {
        if self.lingering_since.is_none() {
            return;
        }
        let last = sub.packetizer.next_seq().wrapping_sub(1);
        if sub.packetizer.packets() == 0 || seq_delta(last, highest as u16) <= 0 {
            return;
        }
        let at = self.last_bye_at.map_or(now, |t| (t + BYE_GAP).max(now));
        if timers.get(Timer::Bye as usize).is_none() {
            timers.set(Timer::Bye as usize, at);
        }
    }

    /// A timer tick while lingering (`None` if not lingering: the session goes on with its
    /// reports and BYE). `last_heard`: when the receiver was last heard from;
    /// `history_ms`: how far back retransmission reaches, in ms.
    pub(crate) fn on_linger_tick(
        &mut self,
        now: Instant,
        last_heard: Option<Instant>,
        history_ms: u32,
        timers: &mut Timers,
    ) -> Option<EndingStep> {
        let since = self.lingering_since?;
        let heard = last_heard.unwrap_or(since).max(since);
        let max = Duration::from_millis(history_ms as u64);
        if now - heard >= LINGER_SILENCE || now - since >= max {
            return Some(EndingStep {
                send_bye: false,
                finish: true,
            });
        }
        let mut step = EndingStep::default();
        let bye = Timer::Bye as usize;
        if timers.get(bye).is_some_and(|t| now >= t) {
            // the receiver's report showed it lacks the end (see `on_receiver_highest`)
            timers.stop(bye);
            self.last_bye_at = Some(now);
            step.send_bye = true;
        }
        let until = (heard + LINGER_SILENCE).min(since + max);
        timers.set(Timer::Linger as usize, until);
        Some(step)
    }

    /// A timer tick before lingering: once the input has ended and the pacer's queue is
    /// empty (`queue_empty`), BYE goes when due. After the last repeat the session lingers if
    /// `can_linger` (retransmission is on and the receiver was heard from), else finishes.
    pub(crate) fn on_bye_tick(
        &mut self,
        now: Instant,
        queue_empty: bool,
        can_linger: bool,
        timers: &mut Timers,
    ) -> EndingStep {
        let bye = Timer::Bye as usize;
        if !(self.input_ended && queue_empty && timers.get(bye).is_none_or(|t| now >= t)) {
            return EndingStep::default();
        }
        self.last_bye_at = Some(now);
        self.byes_left -= 1;
        timers.set(bye, now + BYE_GAP);
        let mut finish = false;
        if self.byes_left == 0 {
            if can_linger {
                // the receiver may still ask for what it lost: answer until it is done
                self.lingering_since = Some(now);
                timers.stop(Timer::Report as usize);
                timers.stop(bye);
                timers.set(Timer::Linger as usize, now + LINGER_SILENCE);
            } else {
                finish = true;
            }
        }
        EndingStep {
            send_bye: true,
            finish,
        }
    }

    /// The instant BYE is due (`None` when not waiting to send one): now, or the BYE timer,
    /// once the input has ended and the pacer's queue is empty (`queue_empty`).
    pub(crate) fn bye_deadline(
        &self,
        now: Instant,
        queue_empty: bool,
        timers: &Timers,
    ) -> Option<Instant> {
        (self.input_ended && queue_empty && self.lingering_since.is_none())
            .then(|| timers.get(Timer::Bye as usize).unwrap_or(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn bye_goes_three_times_a_gap_apart_then_finishes_without_lingering() {
        let mut e = Ending::default();
        let mut timers = Timers::default();
        assert_eq!(
            e.on_bye_tick(at(0), true, false, &mut timers),
            EndingStep::default()
        );
        assert!(e.end_input());
        assert!(!e.end_input());
        // media still queued: no BYE yet
        assert_eq!(
            e.on_bye_tick(at(0), false, false, &mut timers),
            EndingStep::default()
        );
        let mut sent = Vec::new();
        for ms in 0..=250 {
            let step = e.on_bye_tick(at(ms), true, false, &mut timers);
            if step.send_bye {
                sent.push((ms, step.finish));
            }
        }
        assert_eq!(sent, vec![(0, false), (100, false), (200, true)]);
    }

    #[test]
    fn after_the_last_bye_it_lingers_until_the_receiver_is_silent() {
        let mut e = Ending::default();
        let mut timers = Timers::default();
        e.end_input();
        for ms in [0, 100, 200] {
            assert!(e.on_bye_tick(at(ms), true, true, &mut timers).send_bye);
        }
        assert!(e.is_lingering());
        assert_eq!(timers.get(Timer::Linger as usize), Some(at(1200)));
        let heard = Some(at(500));
        let step = e.on_linger_tick(at(1000), heard, 5000, &mut timers);
        assert_eq!(step, Some(EndingStep::default()));
        assert_eq!(timers.get(Timer::Linger as usize), Some(at(1500)));
        let step = e.on_linger_tick(at(1500), heard, 5000, &mut timers);
        assert!(step.is_some_and(|s| s.finish && !s.send_bye));
    }
}
