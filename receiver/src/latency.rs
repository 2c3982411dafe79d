//! Latency monitor: the capture-to-playout latency, measured at every playout chunk.
//!
//! It watches nothing by itself; the playout side hands it, per chunk, what it needs: the
//! media position about to play, the last sender report's mapping of a media position to
//! the sender's wall clock ([`CaptureMapping`]), and now on the receiver's wall clock. The
//! figure is exact when sender and receiver share a clock (one machine), and includes the
//! offset between their clocks otherwise.

use isostream_transport::time::Instant;

use crate::counters::LatencyStats;
use crate::deinterleaver::CaptureMapping;

/// Capture-to-playout latency over a session.
#[derive(Clone, Copy, Debug)]
pub struct LatencyMonitor {
    /// Media rate, in Hz.
    rate: u32,
    /// Receiver's wall-clock time at instant zero, in ns since the Unix epoch.
    wallclock_at_zero_ns: i128,
    sum: f64,
    n: u64,
    min: f64,
    max: f64,
}

impl LatencyMonitor {
    /// A monitor for media at `rate` Hz, on a receiver whose wall clock read
    /// `wallclock_at_zero_ns` (ns since the Unix epoch) at [`Instant::ZERO`].
    pub fn new(rate: u32, wallclock_at_zero_ns: u128) -> Self {
        LatencyMonitor {
            rate,
            wallclock_at_zero_ns: wallclock_at_zero_ns as i128,
            sum: 0.0,
            n: 0,
            min: f64::MAX,
            max: f64::MIN,
        }
    }

    /// At `now`, the frame at media position `position` is about to play; `sr` is the last
    /// sender report's mapping, if there is one (no figure without it).
    pub fn observe(&mut self, now: Instant, position: i64, sr: Option<CaptureMapping>) {
        let Some(sr) = sr else { return };
        let captured =
            sr.unix_ns + (position - sr.position) as i128 * 1_000_000_000 / self.rate as i128;
        let played = self.wallclock_at_zero_ns + now.as_nanos() as i128;
        let ms = (played - captured) as f64 / 1e6;
        self.sum += ms;
        self.n += 1;
        self.min = self.min.min(ms);
        self.max = self.max.max(ms);
    }

    /// Mean, smallest and largest latency so far, in ms (`None` before the first figure).
    pub fn stats(&self) -> Option<LatencyStats> {
        (self.n > 0).then(|| LatencyStats {
            mean: self.sum / self.n as f64,
            min: self.min,
            max: self.max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_transport::time::Duration;

    #[test]
    fn latency_is_playout_wall_clock_minus_capture_wall_clock() {
        let mut m = LatencyMonitor::new(1_000, 5_000_000_000);
        assert!(m.stats().is_none());
        let now = Instant::ZERO + Duration::from_millis(300);
        m.observe(now, 10, None);
        assert!(m.stats().is_none());
        // position 0 was captured at 5.0 s; position 100 (100 ms later) plays at 5.3 s
        let sr = CaptureMapping {
            unix_ns: 5_000_000_000,
            position: 0,
        };
        m.observe(now, 100, Some(sr));
        m.observe(now, 200, Some(sr));
        let s = m.stats().unwrap();
        assert_eq!((s.min, s.max, s.mean), (100.0, 200.0, 150.0));
    }
}
