//! Speech-like programme: a glottal pulse train through gliding formant resonators, syllable
//! envelopes, fricative and plosive noise, and pauses over a faint room-noise floor.

use std::f32::consts::PI;

use super::dsp::{pan_gains, BandPass, Resonator, Rng, Room};

/// Vowel formants F1, F2, F3 in Hz (Peterson & Barney averages, adult male).
pub(super) const VOWELS: [[f32; 3]; 8] = [
    [730.0, 1090.0, 2440.0], // a
    [270.0, 2290.0, 3010.0], // i
    [300.0, 870.0, 2240.0],  // u
    [530.0, 1840.0, 2480.0], // e
    [570.0, 840.0, 2410.0],  // o
    [660.0, 1720.0, 2410.0], // ae
    [520.0, 1190.0, 2390.0], // uh
    [390.0, 1990.0, 2550.0], // I
];
pub(super) const FORMANT_BW: [f32; 3] = [80.0, 110.0, 160.0];
/// Samples between formant-coefficient updates.
pub(super) const SPEECH_CONTROL: u32 = 32;
/// Gain from the formant cascade output to full scale.
pub(super) const VOICED_GAIN: f32 = 0.09;
/// Gain of the fricative noise.
pub(super) const FRIC_GAIN: f32 = 0.9;
/// Overall speech level (peaks land around -7 dBFS).
pub(super) const SPEECH_GAIN: f32 = 1.45 / 0.75;
pub(super) const ROOM_NOISE: f32 = 0.0009;

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Onset {
    None,
    /// Fricative noise over the onset.
    Fricative,
    /// Closure (silence), then a short broadband burst.
    Plosive {
        closure: u32,
    },
}

pub(super) struct Speech {
    fs: f32,
    rng: Rng,
    base_f0: f32,
    // Phrase state.
    syllables_left: u32,
    phrase_len: u32,
    // Current segment.
    in_pause: bool,
    seg_len: u32,
    seg_pos: u32,
    onset: Onset,
    onset_len: u32,
    voiced_start: u32,
    vowel_level: f32,
    fric_level: f32,
    f0_start: f32,
    f0_end: f32,
    // Voice source.
    f0: f32,
    jitter: f32,
    phase: f32,
    prev_glottal: f32,
    // Vocal tract.
    formant_target: [f32; 3],
    formant: [f32; 3],
    res: [Resonator; 3],
    fric: BandPass,
    control: u32,
    // Spatialization.
    gains: Vec<f32>,
    room: Room,
}

impl Speech {
    pub(super) fn new(fs: f32, channels: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let base_f0 = rng.range(115.0, 185.0);
        let pos = if channels == 1 {
            0.5
        } else {
            rng.range(0.3, 0.7)
        };
        let mut s = Speech {
            fs,
            rng,
            base_f0,
            syllables_left: 0,
            phrase_len: 1,
            in_pause: true,
            seg_len: (0.05 * fs) as u32,
            seg_pos: 0,
            onset: Onset::None,
            onset_len: 0,
            voiced_start: 0,
            vowel_level: 0.0,
            fric_level: 0.0,
            f0_start: base_f0,
            f0_end: base_f0,
            f0: base_f0,
            jitter: 1.0,
            phase: 0.0,
            prev_glottal: 0.0,
            formant_target: VOWELS[6],
            formant: VOWELS[6],
            res: [Resonator::default(); 3],
            fric: BandPass::default(),
            control: 0,
            gains: pan_gains(channels, pos),
            room: Room::new(fs, channels),
        };
        s.update_formants();
        s
    }

    pub(super) fn update_formants(&mut self) {
        let nyq = 0.45 * self.fs;
        for ((res, f), bw) in self.res.iter_mut().zip(self.formant).zip(FORMANT_BW) {
            res.set(f.min(nyq), bw, self.fs);
        }
    }

    pub(super) fn start_segment(&mut self) {
        let fs = self.fs;
        self.seg_pos = 0;
        if self.syllables_left == 0 {
            if !self.in_pause {
                // End of phrase: pause.
                self.in_pause = true;
                self.seg_len = (self.rng.range(0.15, 0.7) * fs) as u32;
                return;
            }
            self.phrase_len = 2 + self.rng.below(8) as u32;
            self.syllables_left = self.phrase_len;
        }
        self.in_pause = false;
        let index = self.phrase_len - self.syllables_left;
        self.syllables_left -= 1;
        let progress = index as f32 / self.phrase_len as f32;

        self.seg_len = (self.rng.range(0.17, 0.33) * fs) as u32;
        self.onset = match self.rng.below(10) {
            0..=3 => Onset::None,
            4..=7 => Onset::Fricative,
            _ => Onset::Plosive {
                closure: (self.rng.range(0.02, 0.05) * fs) as u32,
            },
        };
        self.onset_len = match self.onset {
            Onset::None => 0,
            Onset::Fricative => (self.rng.range(0.05, 0.11) * fs) as u32,
            Onset::Plosive { closure } => closure + (0.015 * fs) as u32,
        };
        self.voiced_start = self.onset_len * 4 / 5;
        match self.onset {
            Onset::Fricative => {
                let f = self.rng.range(3000.0, 6500.0);
                self.fric.set(f, 1.5, fs);
                self.fric_level = self.rng.range(0.12, 0.3);
            }
            Onset::Plosive { .. } => {
                let f = self.rng.range(1200.0, 4000.0);
                self.fric.set(f, 0.7, fs);
                self.fric_level = self.rng.range(0.3, 0.5);
            }
            Onset::None => self.fric_level = 0.0,
        }
        self.vowel_level = self.rng.range(0.7, 1.0);
        self.formant_target = VOWELS[self.rng.below(VOWELS.len())];
        let accent = if self.rng.chance(0.3) {
            self.rng.range(0.1, 0.25)
        } else {
            0.0
        };
        let f0 = self.base_f0 * (1.0 - 0.18 * progress) * (1.0 + accent);
        self.f0_start = f0.clamp(90.0, 240.0);
        self.f0_end = (f0 * 0.94).clamp(90.0, 240.0);
    }

    /// Rosenberg glottal flow over one period (phase in [0, 1)).
    #[inline]
    pub(super) fn glottal(phase: f32) -> f32 {
        const OPEN: f32 = 0.4;
        const CLOSE: f32 = 0.16;
        if phase < OPEN {
            0.5 * (1.0 - (PI * phase / OPEN).cos())
        } else if phase < OPEN + CLOSE {
            (0.5 * PI * (phase - OPEN) / CLOSE).cos()
        } else {
            0.0
        }
    }

    /// One mono sample of the talker.
    #[inline]
    pub(super) fn next_mono(&mut self) -> f32 {
        if self.seg_pos >= self.seg_len {
            self.start_segment();
        }
        let t = self.seg_pos;
        self.seg_pos += 1;

        if self.control == 0 {
            // Formants glide towards the vowel target (~25 ms time constant).
            let k = 1.0 - (-(SPEECH_CONTROL as f32) / (0.025 * self.fs)).exp();
            for (f, target) in self.formant.iter_mut().zip(self.formant_target) {
                *f += (target - *f) * k;
            }
            self.update_formants();
        }
        self.control = (self.control + 1) % SPEECH_CONTROL;

        // Voiced part: parabolic-root syllable envelope.
        let mut voiced_env = 0.0;
        let mut target_f0 = self.f0_end;
        if !self.in_pause && t >= self.voiced_start {
            let u =
                (t - self.voiced_start) as f32 / (self.seg_len - self.voiced_start).max(1) as f32;
            voiced_env = (4.0 * u * (1.0 - u)).max(0.0).sqrt() * self.vowel_level;
            target_f0 = self.f0_start + (self.f0_end - self.f0_start) * u;
        }
        self.f0 += (target_f0 - self.f0) * 0.002;

        // Glottal source: derivative of the flow, normalized per period.
        let inc = self.f0 * self.jitter / self.fs;
        self.phase += inc;
        if self.phase >= 1.0 {
            self.phase -= 1.0;
            self.jitter = 1.0 + 0.01 * self.rng.bipolar();
        }
        let g = Self::glottal(self.phase);
        let excitation = (g - self.prev_glottal) / inc * 0.05;
        self.prev_glottal = g;
        let noise = self.rng.bipolar();
        let source = voiced_env * (excitation + 0.03 * noise);
        let mut y = source;
        for r in &mut self.res {
            y = r.process(y);
        }
        let mut out = y * VOICED_GAIN;

        // Unvoiced onset.
        if !self.in_pause && self.fric_level > 0.0 && t < self.onset_len {
            let env = match self.onset {
                Onset::Fricative => {
                    let u = t as f32 / self.onset_len as f32;
                    (4.0 * u * (1.0 - u)).min(1.0)
                }
                Onset::Plosive { closure } => {
                    if t < closure {
                        0.0
                    } else {
                        let d = (t - closure) as f32 / (0.004 * self.fs);
                        (-d).exp()
                    }
                }
                Onset::None => 0.0,
            };
            if env > 0.0 {
                out += self.fric.process(noise) * env * self.fric_level * FRIC_GAIN;
            }
        }
        out
    }

    pub(super) fn next_frame(&mut self, frame: &mut [f32], gain: f32) {
        let s = self.next_mono() * SPEECH_GAIN;
        self.room.push(s);
        for (c, v) in frame.iter_mut().enumerate() {
            let floor = ROOM_NOISE * self.rng.bipolar();
            *v += gain * (s * self.gains[c] + 0.3 * self.room.echo(c) + floor);
        }
    }
}
