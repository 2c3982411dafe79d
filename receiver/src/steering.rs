//! Drift steering: turns the buffer level into observations for the
//! [`DriftEstimator`], whose ratio the substreams' resamplers apply.
//!
//! It is handed everything it watches, after every playout chunk: the emptiest substream's
//! occupancy, what the resampler holds, when the newest media packet was written and how
//! many frames it carried, and how long playback has run. Events that move the buffer for
//! reasons other than drift are told to it as they happen: a PAUSE or RESUME request sent
//! ([`DriftSteering::flow_request_sent`]), a live stream running dry
//! ([`DriftSteering::ran_dry`]).
//!
//! The level it holds is the filtered occupancy [`DRIFT_TARGET_AFTER_S`] into playback, so a
//! stream without drift never needs a correction.

use isostream_transport::time::Instant;

use crate::drift::DriftEstimator;

/// Longest stretch without packets that the level bridges (taking the sender to go on at its
/// pace), in seconds: longer than the loss bursts of real networks, far shorter than any
/// drift takes to matter.
pub const LOSS_BRIDGE_S: f64 = 0.25;

/// Seconds of playback after which the steering fixes the buffer level it holds.
pub const DRIFT_TARGET_AFTER_S: f64 = 10.0;

/// What the steering watches, handed to it after a playout chunk.
#[derive(Clone, Copy, Debug)]
pub struct SteeringInput {
    /// Buffered audio of the emptiest substream, in frames.
    pub emptiest: i64,
    /// Input frames the resampler has pulled and not yet played (may be fractional).
    pub resampler_held: f64,
    /// When the newest media packet was written into a jitter buffer, and its frames.
    pub last_media: Option<(Instant, i64)>,
    /// Frames played since playback first started.
    pub frames_played: u64,
}

/// Drift steering of a session (all substreams share one ratio).
#[derive(Clone, Debug)]
pub struct DriftSteering {
    /// Media rate, in Hz.
    rate: u32,
    estimator: DriftEstimator,
    /// The buffer level held, in frames (fixed [`DRIFT_TARGET_AFTER_S`] into playback).
    target: Option<i64>,
}

impl DriftSteering {
    /// Steering for media at `rate` Hz, with the estimator's default tuning.
    pub fn new(rate: u32) -> Self {
        DriftSteering {
            rate,
            estimator: DriftEstimator::new(rate),
            target: None,
        }
    }

    /// The resampling ratio to apply to the next chunk, in output frames per input frame.
    pub fn ratio(&self) -> f64 {
        self.estimator.ratio()
    }

    /// A PAUSE or RESUME request was just sent: the buffer will move for a reason other
    /// than drift.
    pub fn flow_request_sent(&mut self) {
        self.estimator.restart_window();
    }

    /// A live stream ran dry and playback waits for the low-water mark again.
    pub fn ran_dry(&mut self) {
        self.estimator.restart_window();
    }

    /// One observation at `now`, after a playout chunk.
    pub fn update(&mut self, now: Instant, input: &SteeringInput) {
        // the buffer level the controller holds: what is buffered, plus what the resampler
        // holds, between packet arrivals (occupancy moves in packet-sized steps; sampling
        // it raw would bias a small drift), and bridged through a loss burst: while nothing
        // arrives, for up to LOSS_BRIDGE_S, the sender is taken to go on at its pace (the
        // packets are lost, not late), so bursts of loss do not read as clock drift
        let rate = self.rate as f64;
        let since = input.last_media.map_or(0.0, |(t, frames)| {
            ((now - t).as_secs_f64() * rate).min((frames as f64).max(LOSS_BRIDGE_S * rate))
        });
        let level = (input.emptiest as f64 + since + input.resampler_held).round() as i64;
        let playing_for = input.frames_played as f64 / rate;
        let filtered = || {
            self.estimator
                .filtered_occupancy()
                .map(|f| f.round() as i64)
        };
        if self.target.is_none() && playing_for >= DRIFT_TARGET_AFTER_S {
            self.target = filtered();
        }
        let target = self.target.or(filtered()).unwrap_or(level);
        self.estimator.update(now, level, target);
    }

    /// The estimated drift of the sender's clock against the playout clock, in ppm.
    pub fn estimate_ppm(&self) -> f64 {
        self.estimator.estimate_ppm()
    }

    /// The correction applied, in ppm.
    pub fn correction_ppm(&self) -> f64 {
        self.estimator.correction_ppm()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_transport::time::Duration;

    fn input(emptiest: i64, frames_played: u64) -> SteeringInput {
        SteeringInput {
            emptiest,
            resampler_held: 0.0,
            last_media: None,
            frames_played,
        }
    }

    #[test]
    fn a_steady_buffer_needs_no_correction() {
        let mut s = DriftSteering::new(1_000);
        let mut now = Instant::ZERO;
        for i in 0..60_000u64 {
            now += Duration::from_millis(5);
            s.update(now, &input(200, i * 5));
        }
        assert_eq!(s.ratio(), 1.0);
        assert_eq!(s.correction_ppm(), 0.0);
    }

    #[test]
    fn a_growing_buffer_is_estimated_as_a_faster_sender() {
        let mut s = DriftSteering::new(1_000);
        let mut now = Instant::ZERO;
        // 100 ppm at 1 kHz: 0.1 frames per second more in the buffer
        for i in 0..24_000u64 {
            now += Duration::from_millis(5);
            let level = 200 + (i as f64 * 0.005 * 0.1) as i64;
            s.update(now, &input(level, i * 5));
        }
        assert!(s.estimate_ppm() > 50.0, "{}", s.estimate_ppm());
    }

    #[test]
    fn frames_since_the_newest_packet_smooth_the_level() {
        let mut a = DriftSteering::new(1_000);
        let mut b = DriftSteering::new(1_000);
        let t = Instant::ZERO + Duration::from_millis(3);
        a.update(t, &input(100, 0));
        b.update(
            t,
            &SteeringInput {
                last_media: Some((Instant::ZERO, 5)),
                ..input(100, 0)
            },
        );
        // b saw 3 more frames (3 ms since a 5-frame packet): a level 3 frames higher
        let fa = a.estimator.filtered_occupancy().unwrap();
        let fb = b.estimator.filtered_occupancy().unwrap();
        assert_eq!(fb - fa, 3.0);
    }
}
