//! Pacer: decides when each queued datagram leaves, isochronously against the media clock.
//!
//! Datagram n leaves at `anchor + (frames queued before it) / rate / speed`, where `anchor`
//! is when pacing (re)started: an hour of streaming does not drift, because departures are
//! computed from the anchor, never from the previous departure. Repair packets weigh zero
//! frames and leave right behind the packets before them. A live source is paced by its
//! capture clock instead: its datagrams leave as soon as they exist.

use isostream_transport::time::{Duration, Instant};

/// How fast stored media is sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// This many times real time (1.0 = the media rate).
    Times(f64),
    /// As fast as PAUSE/RESUME allow, up to one datagram per [`MAX_SPEED_GAP`] on average.
    Max,
}

/// The smallest gap between two datagrams at `--speed max`, so a receiver's socket buffer is
/// not overrun before its PAUSE can arrive (10,000 datagrams per second).
pub const MAX_SPEED_GAP: Duration = Duration::from_micros(100);

/// Computes departure times for a queue of datagrams.
#[derive(Debug)]
pub struct Pacer {
    rate: u32,
    speed: Speed,
    live: bool,
    /// Start of the current pacing run and the (scaled) frames sent since.
    anchor: Option<Instant>,
    frames_since_anchor: f64,
    sent_since_anchor: u32,
}

impl Pacer {
    /// A pacer for media at `rate` frames per second.
    pub fn new(rate: u32, speed: Speed, live: bool) -> Self {
        Pacer {
            rate,
            speed,
            live,
            anchor: None,
            frames_since_anchor: 0.0,
            sent_since_anchor: 0,
        }
    }

    /// When a datagram at the head of the queue may leave, given it is ready now.
    pub fn departure(&self, now: Instant) -> Instant {
        if self.live {
            return now;
        }
        let Some(anchor) = self.anchor else {
            return now;
        };
        match self.speed {
            Speed::Times(x) => {
                let secs = self.frames_since_anchor / self.rate as f64 / x;
                anchor + Duration::from_secs_f64(secs)
            }
            Speed::Max => anchor + MAX_SPEED_GAP * self.sent_since_anchor,
        }
    }

    /// Records that a datagram weighing `frames` frames left at `now` (`weight` scales the
    /// frames, e.g. 1/substreams when several substreams share the media clock).
    pub fn sent(&mut self, now: Instant, frames: u32, weight: f64) {
        if self.anchor.is_none() {
            self.anchor = Some(now);
        }
        self.frames_since_anchor += frames as f64 * weight;
        self.sent_since_anchor = self.sent_since_anchor.saturating_add(1);
    }

    /// Restarts pacing from the next departure (after RESUME): no catch-up burst.
    pub fn restart(&mut self) {
        self.anchor = None;
        self.frames_since_anchor = 0.0;
        self.sent_since_anchor = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departures_follow_the_anchor_not_the_previous_send() {
        let mut p = Pacer::new(48_000, Speed::Times(1.0), false);
        let t0 = Instant::from_nanos(1_000);
        assert_eq!(p.departure(t0), t0);
        // every send is 1 ms late; departures still land on the 5 ms grid
        let mut now = t0;
        for n in 1..=1000u64 {
            p.sent(now, 240, 1.0);
            let due = p.departure(now);
            assert_eq!(due, t0 + Duration::from_millis(5 * n));
            now = due + Duration::from_millis(1);
        }
    }

    #[test]
    fn double_speed_halves_the_gap_and_restart_forgets_the_past() {
        let mut p = Pacer::new(48_000, Speed::Times(2.0), false);
        let t0 = Instant::ZERO;
        p.sent(t0, 240, 1.0);
        assert_eq!(p.departure(t0), t0 + Duration::from_micros(2_500));
        p.restart();
        let t1 = t0 + Duration::from_secs(9);
        assert_eq!(p.departure(t1), t1);
    }

    #[test]
    fn live_sources_leave_immediately() {
        let mut p = Pacer::new(48_000, Speed::Times(1.0), true);
        p.sent(Instant::ZERO, 240, 1.0);
        let t = Instant::from_nanos(7);
        assert_eq!(p.departure(t), t);
    }
}
