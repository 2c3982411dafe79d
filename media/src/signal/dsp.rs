//! Building blocks shared by the generators: the deterministic random source, panning,
//! the per-channel early reflection and the two filters (formant resonator, band-pass).

use std::f32::consts::PI;

/// xorshift64* seeded through splitmix64.
#[derive(Clone, Debug)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    #[inline]
    pub(super) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    #[inline]
    pub(super) fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [-1, 1).
    #[inline]
    pub(super) fn bipolar(&mut self) -> f32 {
        self.unit() * 2.0 - 1.0
    }

    /// Uniform in [lo, hi).
    pub(super) fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// True with probability `p`.
    pub(super) fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    /// Uniform integer in [0, n).
    pub(super) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 33) % n as u64) as usize
    }
}

/// Equal-power-ish gain of a source at `pos` (0 = first channel, 1 = last) in `channel`.
pub(super) fn pan_gain(channel: usize, channels: usize, pos: f32) -> f32 {
    if channels == 1 {
        // As loud as a centred source in stereo.
        return 0.75;
    }
    let p = channel as f32 / (channels - 1) as f32;
    let d = (p - pos).abs().min(1.0);
    (0.5 * PI * d).cos() * 0.85 + 0.15
}

pub(super) fn pan_gains(channels: usize, pos: f32) -> Vec<f32> {
    // Wider layouts put a source in more channels at once: keep their sum in check.
    let spread = if channels > 2 {
        (2.0 / channels as f32).powf(0.25)
    } else {
        1.0
    };
    (0..channels)
        .map(|c| spread * pan_gain(c, channels, pos))
        .collect()
}

/// A distinct early reflection per channel (delays of 5 to 27 ms), so that every channel
/// differs in content and not only in gain.
pub(super) struct Room {
    delays: Vec<usize>,
    ring: Vec<f32>,
    pos: usize,
}

impl Room {
    pub(super) fn new(fs: f32, channels: usize) -> Self {
        let delays: Vec<usize> = (0..channels)
            .map(|c| ((5.0 + (c * 7 % 23) as f32) * 1e-3 * fs) as usize + 1)
            .collect();
        let len = delays.iter().copied().max().unwrap_or(1) + 1;
        Room {
            delays,
            ring: vec![0.0; len],
            pos: 0,
        }
    }

    /// Stores this frame's dry mono signal and advances.
    #[inline]
    pub(super) fn push(&mut self, mono: f32) {
        self.ring[self.pos] = mono;
        self.pos = (self.pos + 1) % self.ring.len();
    }

    /// The reflection heard in `channel` now (call after [`Room::push`]).
    #[inline]
    pub(super) fn echo(&self, channel: usize) -> f32 {
        let n = self.ring.len();
        self.ring[(self.pos + n - 1 - self.delays[channel]) % n]
    }
}

/// Klatt-style two-pole resonator with unity gain at DC.
#[derive(Clone, Copy, Default)]
pub(super) struct Resonator {
    a: f32,
    b: f32,
    c: f32,
    y1: f32,
    y2: f32,
}

impl Resonator {
    pub(super) fn set(&mut self, f: f32, bw: f32, fs: f32) {
        let r = (-PI * bw / fs).exp();
        self.c = -r * r;
        self.b = 2.0 * r * (2.0 * PI * f / fs).cos();
        self.a = 1.0 - self.b - self.c;
    }

    #[inline]
    pub(super) fn process(&mut self, x: f32) -> f32 {
        let y = self.a * x + self.b * self.y1 + self.c * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Constant 0 dB peak-gain band-pass biquad (RBJ cookbook).
#[derive(Clone, Copy, Default)]
pub(super) struct BandPass {
    b0: f32,
    a1: f32,
    a2: f32,
    x1: f32,
    x2: f32,
    y1: f32,
    y2: f32,
}

impl BandPass {
    pub(super) fn set(&mut self, f: f32, q: f32, fs: f32) {
        let w = 2.0 * PI * f.min(0.45 * fs) / fs;
        let alpha = w.sin() / (2.0 * q);
        let a0 = 1.0 + alpha;
        self.b0 = alpha / a0;
        self.a1 = -2.0 * w.cos() / a0;
        self.a2 = (1.0 - alpha) / a0;
    }

    #[inline]
    pub(super) fn process(&mut self, x: f32) -> f32 {
        let y = self.b0 * (x - self.x2) - self.a1 * self.y1 - self.a2 * self.y2;
        self.x2 = self.x1;
        self.x1 = x;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}
