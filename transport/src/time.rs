//! Time types shared by the sans-IO sessions.
//!
//! The sessions never read a clock: every call takes `now` as an [`Instant`], a point on a
//! monotonic timeline measured in nanoseconds from an arbitrary origin. The tokio drivers map
//! `std::time::Instant` onto it ([`Instant::from_std`]); the benchmark and the tests run it as a
//! virtual clock that starts at [`Instant::ZERO`].

use std::ops::{Add, AddAssign, Sub};
pub use std::time::Duration;

/// A point in time on the session's monotonic timeline, in nanoseconds from an arbitrary origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin of a virtual clock.
    pub const ZERO: Instant = Instant(0);

    /// An instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Maps a real `std::time::Instant` onto this timeline, `origin` being [`Instant::ZERO`].
    pub fn from_std(origin: std::time::Instant, t: std::time::Instant) -> Self {
        Instant(t.saturating_duration_since(origin).as_nanos() as u64)
    }

    /// Maps this instant back to a real `std::time::Instant`, given the same `origin`.
    pub fn to_std(self, origin: std::time::Instant) -> std::time::Instant {
        origin + Duration::from_nanos(self.0)
    }

    /// Time elapsed since `earlier`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Seconds since the origin, for reports and plots.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.as_nanos() as u64))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(d.as_nanos() as u64))
    }
}

/// A media clock: converts between frames (samples per channel) and wall time at a sample rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaClock {
    /// Frames per second (Hz).
    pub rate: u32,
}

impl MediaClock {
    /// A media clock at `rate` frames per second.
    pub const fn new(rate: u32) -> Self {
        MediaClock { rate }
    }

    /// How long `frames` frames last.
    pub fn duration_of(self, frames: u64) -> Duration {
        Duration::from_nanos(((frames as u128 * 1_000_000_000) / self.rate as u128) as u64)
    }

    /// How many whole frames fit in `d` (rounded down).
    pub fn frames_in(self, d: Duration) -> u64 {
        ((d.as_nanos() * self.rate as u128) / 1_000_000_000) as u64
    }

    /// How many frames last `ms` milliseconds (rounded down).
    pub fn frames_in_ms(self, ms: u32) -> u64 {
        self.rate as u64 * ms as u64 / 1000
    }

    /// Milliseconds that `frames` frames last, as a float for reports.
    pub fn ms_of(self, frames: u64) -> f64 {
        frames as f64 * 1000.0 / self.rate as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_duration_round_trip_at_48k_and_44k1() {
        let c = MediaClock::new(48_000);
        assert_eq!(c.duration_of(240), Duration::from_millis(5));
        assert_eq!(c.frames_in(Duration::from_millis(5)), 240);
        let c = MediaClock::new(44_100);
        assert_eq!(c.frames_in_ms(10), 441);
        assert_eq!(c.frames_in(c.duration_of(44_100 * 3600)), 44_100 * 3600);
    }

    #[test]
    fn instant_arithmetic_saturates() {
        let a = Instant::from_nanos(5);
        let b = a + Duration::from_nanos(10);
        assert_eq!(b - a, Duration::from_nanos(10));
        assert_eq!(a - b, Duration::ZERO);
        assert_eq!(a - Duration::from_secs(1), Instant::ZERO);
    }
}
