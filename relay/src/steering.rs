//! Steering: the relay holds its own buffer and steers its upstream with PAUSE and RESUME by
//! the receiver's rules (docs/PROTOCOL.md, section 7), with the receiver's own flow
//! controller ([`isostream_receiver::flow::FlowController`]: numbering, retransmission until
//! acknowledged, the ACK rules).
//!
//! The relay plays nothing, so its buffer level is measured against a **playout clock**: it
//! starts at the first media packet's position when that packet arrives and advances at the
//! media rate from then on. The level is the media stored ahead of it: one past the newest
//! media position received minus the clock's position. Above the high-water mark the relay
//! asks for PAUSE; at or below its low-water (RESUME) mark for RESUME.

use isostream_receiver::flow::{FlowController, FlowStats, Request};
use isostream_transport::time::{Duration, Instant, MediaClock};

/// The relay's playout clock and flow controller.
#[derive(Debug, Default)]
pub struct Steering {
    /// The media rate, in frames per second (0 until a description is known).
    rate: u32,
    /// When the first media packet arrived and its position.
    start: Option<(Instant, i64)>,
    /// One past the newest media position received, in frames.
    newest_end: Option<i64>,
    flow: FlowController,
}

impl Steering {
    /// A clock for media at `rate` frames per second.
    pub fn set_rate(&mut self, rate: u32) {
        self.rate = rate;
    }

    /// The playout clock's position at `now`, in frames (`None` before the first media).
    pub fn clock_pos(&self, now: Instant) -> Option<i64> {
        let (t0, p0) = self.start?;
        Some(p0 + MediaClock::new(self.rate.max(1)).frames_in(now - t0) as i64)
    }

    /// Media stored ahead of the playout clock at `now`, in frames.
    pub fn ahead_frames(&self, now: Instant) -> i64 {
        match (self.clock_pos(now), self.newest_end) {
            (Some(c), Some(e)) => e - c,
            _ => 0,
        }
    }

    /// A media packet at position `pos` of `frames` frames arrived at `now`; returns a
    /// request to send (a new one at a watermark crossing, or an overdue PAUSE again).
    pub fn on_media(
        &mut self,
        now: Instant,
        pos: i64,
        frames: u32,
        marks: (i64, i64),
    ) -> Option<Request> {
        if self.rate == 0 {
            return None;
        }
        self.start.get_or_insert((now, pos));
        let end = pos + frames as i64;
        self.newest_end = Some(self.newest_end.map_or(end, |e| e.max(end)));
        let again = self.flow.on_media(now);
        self.update(now, marks).or(again)
    }

    /// Checks the level at `now` against the marks (`(low, high)` in frames).
    pub fn update(&mut self, now: Instant, (low, high): (i64, i64)) -> Option<Request> {
        self.start?;
        let ahead = self.ahead_frames(now);
        self.flow.update(now, ahead, low, high)
    }

    /// The upstream acknowledged request `number`.
    pub fn on_ack(&mut self, now: Instant, number: u32) -> Option<Request> {
        self.flow.on_ack(now, number)
    }

    /// Timer: an unacknowledged request due again, else a watermark crossing.
    pub fn on_timeout(&mut self, now: Instant, marks: (i64, i64)) -> Option<Request> {
        self.flow
            .on_timeout(now)
            .or_else(|| self.update(now, marks))
    }

    /// When to look again: the flow controller's retransmission, or (while paused) when the
    /// clock will have drained the buffer to the low-water mark `low` (frames).
    pub fn deadline(&self, now: Instant, low: i64) -> Option<Instant> {
        let drained = (self.flow.is_paused() && self.start.is_some()).then(|| {
            let over = (self.ahead_frames(now) - low).max(0) as u64;
            now + MediaClock::new(self.rate.max(1)).duration_of(over) + Duration::from_millis(1)
        });
        match (self.flow.deadline(), drained) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The state the relay wants (restated in every report).
    pub fn state(&self) -> Request {
        self.flow.state()
    }

    /// Whether the relay asked its upstream to pause.
    pub fn is_paused(&self) -> bool {
        self.flow.is_paused()
    }

    /// The flow controller's counters.
    pub fn stats(&self) -> FlowStats {
        self.flow.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 48; // frames per ms at 48 kHz

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn the_clock_runs_from_the_first_media_and_the_marks_steer() {
        let mut s = Steering::default();
        s.set_rate(48_000);
        let marks = (400 * MS, 600 * MS);
        assert_eq!(s.clock_pos(at(0)), None);
        // stored media at twice real time: 5 ms packets every 2.5 ms
        let mut pause_at = None;
        for n in 0..400u64 {
            let now = Instant::ZERO + Duration::from_micros(2500 * n);
            if let Some(r) = s.on_media(now, n as i64 * 240, 240, marks) {
                assert!(r.pause);
                pause_at.get_or_insert(n);
            }
        }
        // ahead grows by 2.5 ms per packet: past 600 ms after about 240 packets
        let n = pause_at.expect("a PAUSE");
        assert!((238..=243).contains(&n), "{n}");
        assert!(s.is_paused());
        assert_eq!(s.clock_pos(at(1000)), Some(48_000));
        // while paused, the clock drains the buffer: RESUME at the low-water mark
        let now = at(1000);
        s.on_ack(now, 1);
        let wake = s.deadline(now, marks.0).unwrap();
        assert_eq!(s.on_timeout(wake - Duration::from_millis(2), marks), None);
        let r = s.on_timeout(wake, marks).expect("a RESUME");
        assert!(!r.pause && r.number == 2);
        assert!(s.ahead_frames(wake) <= marks.0);
    }
}
