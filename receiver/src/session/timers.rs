//! The receiver's timers: the deadlines the stages own (the flow controller's
//! retransmission, the next receiver report, the idle timeout, the next NACK, the next
//! SUBSCRIBE to a relay), kept in one
//! [`TimerTable`] whose earliest is the instant the session asks to be woken.

use isostream_transport::sans_io::TimerTable;
use isostream_transport::time::Instant;

/// The receiver's timers, indexes into its [`TimerTable`].
#[derive(Clone, Copy, Debug)]
enum Timer {
    /// The next retransmission of an unacknowledged PAUSE or RESUME.
    FlowRetry = 0,
    /// The next receiver report.
    Report = 1,
    /// The sender has been silent for the idle timeout.
    Idle = 2,
    /// The next request for a lost packet (NACK).
    Nack = 3,
    /// The next SUBSCRIBE to a relay.
    Subscribe = 4,
}
const TIMERS: usize = 5;

/// The deadlines of the stages, as the session gathers them after every input (`None`:
/// that timer is stopped).
pub(super) struct Deadlines {
    /// The flow controller's next retransmission of a PAUSE or RESUME.
    pub(super) flow_retry: Option<Instant>,
    /// The next receiver report.
    pub(super) report: Option<Instant>,
    /// When the sender will have been silent for the idle timeout.
    pub(super) idle: Option<Instant>,
    /// The next request for a lost packet.
    pub(super) nack: Option<Instant>,
    /// The next SUBSCRIBE to a relay (`recv --connect`), until a session starts.
    pub(super) subscribe: Option<Instant>,
}

/// The receiver's timer table.
#[derive(Default)]
pub(super) struct Timers {
    /// One entry per [`Timer`].
    table: TimerTable<TIMERS>,
}

impl Timers {
    /// Brings the table up to date with the stages' `deadlines`.
    pub(super) fn refresh(&mut self, deadlines: &Deadlines) {
        let t = &mut self.table;
        let set = |t: &mut TimerTable<TIMERS>, k: Timer, at: Option<Instant>| match at {
            Some(at) => t.set(k as usize, at),
            None => t.stop(k as usize),
        };
        set(t, Timer::FlowRetry, deadlines.flow_retry);
        set(t, Timer::Report, deadlines.report);
        set(t, Timer::Idle, deadlines.idle);
        set(t, Timer::Nack, deadlines.nack);
        set(t, Timer::Subscribe, deadlines.subscribe);
    }

    /// The earliest deadline: when the session is to be woken.
    pub(super) fn next(&self) -> Option<Instant> {
        self.table.next()
    }
}
