//! Playout clock: how many frames are due at a given instant, at the media rate.
//!
//! It starts when the low-water mark is reached and then runs at exactly the media rate:
//! frames due at `now` = `rate x (now - start)` minus frames already played. A sound card
//! callback can ignore it and pull what the card asks for instead.

use isostream_transport::time::{Instant, MediaClock};

/// The playout clock of a session (shared by all its substreams).
#[derive(Clone, Copy, Debug)]
pub struct PlayoutClock {
    clock: MediaClock,
    start: Option<Instant>,
    played: u64,
    /// Frames played before the current start (the clock can stop and start again).
    played_at_start: u64,
}

impl PlayoutClock {
    /// A stopped clock at `rate` frames per second.
    pub fn new(rate: u32) -> Self {
        PlayoutClock {
            clock: MediaClock::new(rate),
            start: None,
            played: 0,
            played_at_start: 0,
        }
    }

    /// Starts the clock at `now` (playback start).
    pub fn start(&mut self, now: Instant) {
        self.start = Some(now);
        self.played_at_start = self.played;
    }

    /// Stops the clock (a live stream ran dry: it starts again at the low-water mark, rather
    /// than owing the time it was dry). Frames played so far are kept.
    pub fn stop(&mut self) {
        self.start = None;
    }

    /// Whether playback has started.
    pub fn is_running(&self) -> bool {
        self.start.is_some()
    }

    /// Frames due now and not yet played (0 before start).
    pub fn due(&self, now: Instant) -> u64 {
        match self.start {
            None => 0,
            Some(s) => self
                .clock
                .frames_in(now - s)
                .saturating_sub(self.played - self.played_at_start),
        }
    }

    /// When `frames` more frames will be due.
    pub fn when_due(&self, frames: u64) -> Option<Instant> {
        self.start.map(|s| {
            s + self
                .clock
                .duration_of(self.played - self.played_at_start + frames)
        })
    }

    /// Records that `frames` frames were played.
    pub fn played(&mut self, frames: u64) {
        self.played += frames;
    }

    /// Frames played so far.
    pub fn frames_played(&self) -> u64 {
        self.played
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_transport::time::Duration;

    #[test]
    fn due_frames_follow_the_media_rate_without_drift() {
        let mut c = PlayoutClock::new(48_000);
        let t0 = Instant::from_nanos(123);
        assert_eq!(c.due(t0), 0);
        c.start(t0);
        let mut now = t0;
        for _ in 0..3600 {
            now += Duration::from_millis(1000);
            let n = c.due(now);
            c.played(n);
        }
        assert_eq!(c.frames_played(), 48_000 * 3600);
        assert_eq!(c.when_due(480), Some(now + Duration::from_millis(10)));
    }

    #[test]
    fn a_stopped_clock_owes_nothing_when_it_starts_again() {
        let mut c = PlayoutClock::new(1_000);
        c.start(Instant::ZERO);
        let t = Instant::ZERO + Duration::from_secs(1);
        c.played(c.due(t));
        c.stop();
        assert_eq!(c.due(t + Duration::from_secs(5)), 0);
        let t2 = t + Duration::from_secs(5);
        c.start(t2);
        assert_eq!(c.due(t2 + Duration::from_millis(10)), 10);
        assert_eq!(c.frames_played(), 1_000);
    }
}
