//! The pure tone: -6.2 dBFS peak, a different phase per channel, never limited.

/// Peak of the pure tone: -6.2 dBFS.
pub(super) const SINE_PEAK: f64 = 0.49;

pub(super) struct Sine {
    phase: f64,
    inc: f64,
    offsets: Vec<f64>,
}

impl Sine {
    pub(super) fn new(fs: f32, channels: usize, hz: f32) -> Self {
        Sine {
            phase: 0.0,
            inc: hz as f64 / fs as f64,
            // Channel c lags by c/(2N) of a cycle: 90 degrees between the two of a stereo pair.
            offsets: (0..channels)
                .map(|c| c as f64 / (2.0 * channels as f64))
                .collect(),
        }
    }

    pub(super) fn next_frame(&mut self, frame: &mut [f32]) {
        for (v, off) in frame.iter_mut().zip(&self.offsets) {
            *v += (SINE_PEAK * (std::f64::consts::TAU * (self.phase - off)).sin()) as f32;
        }
        self.phase += self.inc;
        self.phase -= self.phase.floor();
    }
}
