//! Helpers shared by the drift unit tests: the network side of the loop and a test tone.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub(crate) const RATE: u32 = 8_000;
/// Frames per packet and per pull (5 ms at 8 kHz).
pub(crate) const STEP: u64 = 40;
pub(crate) const STEP_NS: u64 = 5_000_000;

/// The network side of the loop: a sender whose clock runs `ppm` fast sends 5 ms packets;
/// each arrives after 20 ms plus uniform jitter of up to `jitter_ms`. `end` is one past
/// the highest frame received, as in the jitter buffer.
pub(crate) struct Net {
    pub(crate) speed: f64,
    pub(crate) jitter_ns: f64,
    pub(crate) next_pkt: u64,
    pub(crate) in_flight: BinaryHeap<Reverse<(u64, i64)>>,
    pub(crate) end: i64,
    /// When `end` last moved.
    pub(crate) end_at: u64,
    pub(crate) rng: StdRng,
}

impl Net {
    pub(crate) fn new(ppm: f64, jitter_ms: f64, seed: u64) -> Self {
        Net {
            speed: 1.0 + ppm * 1e-6,
            jitter_ns: jitter_ms * 1e6,
            next_pkt: 0,
            in_flight: BinaryHeap::new(),
            end: 0,
            end_at: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Sends everything the sender has produced by `now` and delivers what has arrived.
    pub(crate) fn advance(&mut self, now: u64) {
        loop {
            let pos = self.next_pkt * STEP;
            // the packet leaves when its last frame has been captured
            let sent = ((pos + STEP) as f64 * 1e9 / (RATE as f64 * self.speed)) as u64;
            if sent > now {
                break;
            }
            let at = sent + 20_000_000 + (self.rng.random::<f64>() * self.jitter_ns) as u64;
            self.in_flight.push(Reverse((at, (pos + STEP) as i64)));
            self.next_pkt += 1;
        }
        while let Some(&Reverse((at, end))) = self.in_flight.peek() {
            // (delivered in order of arrival)
            if at > now {
                break;
            }
            self.in_flight.pop();
            if end > self.end {
                self.end = end;
                self.end_at = at;
            }
        }
    }
}

impl Net {
    /// `end` plus the frames produced since it moved, up to a packet: the occupancy
    /// without the packetisation sawtooth, as [`DriftEstimator`] wants it.
    pub(crate) fn smooth_end(&self, now: u64) -> i64 {
        let since = (now - self.end_at.min(now)) * RATE as u64 / 1_000_000_000;
        self.end + since.min(STEP) as i64
    }
}

pub(crate) const START_FRAMES: i64 = 480; // 60 ms: playback starts when this much has arrived
pub(crate) const LATCH_S: f64 = 10.0; // the target is the filtered level this long into playback
pub(crate) const CONVERGED_S: f64 = 180.0;

/// A tone at `pos` (input frames), amplitude 0.5.
pub(crate) fn tone(freq: f64, rate: f64, pos: f64) -> f32 {
    (0.5 * (2.0 * std::f64::consts::PI * freq * pos / rate).sin()) as f32
}
