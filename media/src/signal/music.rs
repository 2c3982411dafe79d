//! Music-like programme: a chord progression of decaying harmonic tones, an arpeggiated lead,
//! a bass line, and kick, snare and hi-hat hits.

use std::f32::consts::PI;

use super::dsp::{pan_gains, Rng, Room};

pub(super) const TABLE_LEN: usize = 2048;
/// Overall music level (peaks land around -6 dBFS, a few touch the limiter).
pub(super) const MUSIC_GAIN: f32 = 0.39;

/// One period of a waveform, with a guard point for interpolation.
pub(super) fn make_table(partials: &[f32]) -> Vec<f32> {
    let mut t: Vec<f32> = (0..=TABLE_LEN)
        .map(|i| {
            let x = i as f32 / TABLE_LEN as f32 * 2.0 * PI;
            partials
                .iter()
                .enumerate()
                .map(|(k, a)| a * ((k + 1) as f32 * x).sin())
                .sum()
        })
        .collect();
    let peak = t.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-9);
    t.iter_mut().for_each(|v| *v /= peak);
    t
}

#[inline]
pub(super) fn lookup(table: &[f32], phase: f32) -> f32 {
    let x = phase * TABLE_LEN as f32;
    let i = (x as usize).min(TABLE_LEN - 1);
    let f = x - i as f32;
    table[i] + f * (table[i + 1] - table[i])
}

pub(super) fn midi_hz(note: f32) -> f32 {
    440.0 * ((note - 69.0) / 12.0).exp2()
}

/// A decaying tone on a wavetable.
#[derive(Clone, Copy, Default)]
pub(super) struct Tone {
    phase: f32,
    inc: f32,
    amp: f32,
    decay: f32,
    attack: f32,
    attack_inc: f32,
}

impl Tone {
    pub(super) fn trigger(&mut self, hz: f32, level: f32, tau_s: f32, fs: f32) {
        self.inc = hz / fs;
        self.amp = level;
        self.decay = (-1.0 / (tau_s * fs)).exp();
        self.attack = 0.0;
        self.attack_inc = 1.0 / (0.006 * fs);
    }

    #[inline]
    pub(super) fn next(&mut self, table: &[f32]) -> f32 {
        if self.amp < 1e-5 {
            return 0.0;
        }
        let v = lookup(table, self.phase) * self.amp * self.attack.min(1.0);
        self.attack += self.attack_inc;
        self.amp *= self.decay;
        self.phase += self.inc;
        if self.phase >= 1.0 {
            self.phase -= 1.0;
        }
        v
    }
}

/// Chord progressions: (semitones above the key, minor?) per bar.
pub(super) const PROGRESSIONS: [[(u8, bool); 4]; 4] = [
    [(0, false), (7, false), (9, true), (5, false)], // I V vi IV
    [(9, true), (5, false), (0, false), (7, false)], // vi IV I V
    [(0, false), (9, true), (5, false), (7, false)], // I vi IV V
    [(2, true), (7, false), (0, false), (9, true)],  // ii V I vi
];

// Voice slots.
pub(super) const CHORD_VOICES: usize = 4;
pub(super) const LEAD: usize = CHORD_VOICES;
pub(super) const BASS: usize = LEAD + 1;
pub(super) const KICK: usize = BASS + 1;
pub(super) const SNARE: usize = KICK + 1;
pub(super) const HAT: usize = SNARE + 1;
pub(super) const SLOTS: usize = HAT + 1;

pub(super) struct Music {
    fs: f32,
    rng: Rng,
    keys_table: Vec<f32>,
    bass_table: Vec<f32>,
    sine_table: Vec<f32>,
    key: u8,
    progression: usize,
    step_len: u32,
    step_pos: u32,
    step: u32,
    bar: u32,
    chord: [f32; 4],
    tones: [Tone; CHORD_VOICES + 2],
    // Kick: pitch-dropping sine.
    kick_phase: f32,
    kick_amp: f32,
    kick_bend: f32,
    kick_decay: f32,
    kick_bend_decay: f32,
    // Snare and hi-hat: filtered noise (+ a tone body for the snare).
    snare_amp: f32,
    snare_decay: f32,
    snare_tone: Tone,
    snare_prev: f32,
    hat_amp: f32,
    hat_decay: f32,
    hat_x1: f32,
    hat_x2: f32,
    /// Pan gains, `SLOTS` rows of `channels`.
    gains: Vec<f32>,
    channels: usize,
    room: Room,
}

impl Music {
    pub(super) fn new(fs: f32, channels: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        // Keep the highest partial of the highest note (~1.1 kHz) below Nyquist.
        let max_partials = ((0.45 * fs / 1100.0) as usize).clamp(1, 10);
        let keys: Vec<f32> = (1..=max_partials)
            .map(|k| 1.0 / (k as f32).powf(1.4))
            .collect();
        let bass: Vec<f32> = [1.0, 0.45, 0.2][..max_partials.min(3)].to_vec();
        let bpm = rng.range(96.0, 132.0);
        let step_len = (60.0 / bpm / 2.0 * fs) as u32;
        let positions: [f32; SLOTS] = [0.15, 0.4, 0.6, 0.85, 0.65, 0.5, 0.5, 0.4, 0.8];
        let mut gains = Vec::with_capacity(SLOTS * channels);
        for p in positions {
            gains.extend(pan_gains(channels, p));
        }
        Music {
            fs,
            key: rng.below(12) as u8,
            progression: rng.below(PROGRESSIONS.len()),
            rng,
            keys_table: make_table(&keys),
            bass_table: make_table(&bass),
            sine_table: make_table(&[1.0]),
            step_len: step_len.max(1),
            step_pos: 0,
            step: 0,
            bar: 0,
            chord: [60.0; 4],
            tones: [Tone::default(); CHORD_VOICES + 2],
            kick_phase: 0.0,
            kick_amp: 0.0,
            kick_bend: 0.0,
            kick_decay: (-1.0 / (0.14 * fs)).exp(),
            kick_bend_decay: (-1.0 / (0.03 * fs)).exp(),
            snare_amp: 0.0,
            snare_decay: (-1.0 / (0.08 * fs)).exp(),
            snare_tone: Tone::default(),
            snare_prev: 0.0,
            hat_amp: 0.0,
            hat_decay: 1.0,
            hat_x1: 0.0,
            hat_x2: 0.0,
            gains,
            channels,
            room: Room::new(fs, channels),
        }
    }

    pub(super) fn on_step(&mut self) {
        let fs = self.fs;
        let s = self.step % 8;
        if s == 0 {
            if self.bar > 0 && self.bar.is_multiple_of(8) {
                self.progression = self.rng.below(PROGRESSIONS.len());
            }
            let (deg, minor) = PROGRESSIONS[self.progression][(self.bar % 4) as usize];
            let mut root = 60 + ((self.key + deg) % 12) as i32;
            if root > 66 {
                root -= 12;
            }
            let third = if minor { 3 } else { 4 };
            let seventh = if self.rng.chance(0.3) {
                if minor {
                    10
                } else {
                    11
                }
            } else {
                12
            };
            self.chord = [
                root as f32,
                (root + third) as f32,
                (root + 7) as f32,
                (root + seventh) as f32,
            ];
            self.bar += 1;
        }
        if s == 0 || s == 4 {
            let level = if s == 0 { 0.16 } else { 0.1 };
            for (tone, note) in self.tones[..CHORD_VOICES].iter_mut().zip(self.chord) {
                let detune = 1.0 + 0.001 * self.rng.bipolar();
                let vel = self.rng.range(0.8, 1.0);
                tone.trigger(midi_hz(note) * detune, level * vel, 0.9, fs);
            }
        }
        // Bass: root on the beat, sometimes an octave or fifth on the off-beats.
        let root = self.chord[0] - 24.0;
        if s.is_multiple_of(2) {
            let note = if s == 4 && self.rng.chance(0.4) {
                root + 7.0
            } else {
                root
            };
            self.tones[BASS].trigger(midi_hz(note), 0.5, 0.35, fs);
        } else if self.rng.chance(0.25) {
            self.tones[BASS].trigger(midi_hz(root + 12.0), 0.35, 0.2, fs);
        }
        // Lead: arpeggiated chord tones an octave up.
        if self.rng.chance(0.6) {
            let note = self.chord[self.rng.below(4)] + 12.0;
            self.tones[LEAD].trigger(midi_hz(note), self.rng.range(0.1, 0.16), 0.3, fs);
        }
        if s == 0 || s == 4 || (s == 5 && self.rng.chance(0.3)) {
            self.kick_amp = 0.7;
            self.kick_bend = 1.0;
            self.kick_phase = 0.0;
        }
        if s == 2 || s == 6 {
            self.snare_amp = 0.35;
            self.snare_tone.trigger(185.0, 0.2, 0.05, fs);
        }
        let open = s == 7 && self.rng.chance(0.5);
        self.hat_amp = if open { 0.12 } else { 0.09 };
        self.hat_decay = (-1.0 / ((if open { 0.12 } else { 0.02 }) * fs)).exp();
    }

    pub(super) fn next_frame(&mut self, frame: &mut [f32], gain: f32) {
        if self.step_pos == 0 {
            self.on_step();
        }
        self.step_pos += 1;
        if self.step_pos >= self.step_len {
            self.step_pos = 0;
            self.step += 1;
        }

        let mut slot = [0.0f32; SLOTS];
        for (v, tone) in slot.iter_mut().zip(&mut self.tones[..=LEAD]) {
            *v = tone.next(&self.keys_table);
        }
        slot[BASS] = self.tones[BASS].next(&self.bass_table);

        if self.kick_amp > 1e-5 {
            let hz = 45.0 + 110.0 * self.kick_bend;
            slot[KICK] = lookup(&self.sine_table, self.kick_phase) * self.kick_amp;
            self.kick_phase += hz / self.fs;
            if self.kick_phase >= 1.0 {
                self.kick_phase -= 1.0;
            }
            self.kick_amp *= self.kick_decay;
            self.kick_bend *= self.kick_bend_decay;
        }
        if self.snare_amp > 1e-5 {
            let n = self.rng.bipolar();
            slot[SNARE] = (n - 0.5 * self.snare_prev) * self.snare_amp;
            self.snare_prev = n;
            self.snare_amp *= self.snare_decay;
        }
        slot[SNARE] += self.snare_tone.next(&self.sine_table);
        if self.hat_amp > 1e-5 {
            // Second difference of white noise: a steep high-pass.
            let n = self.rng.bipolar();
            slot[HAT] = (n - 2.0 * self.hat_x1 + self.hat_x2) * 0.5 * self.hat_amp;
            self.hat_x2 = self.hat_x1;
            self.hat_x1 = n;
            self.hat_amp *= self.hat_decay;
        }

        let ch = self.channels;
        let gain = gain * MUSIC_GAIN;
        self.room.push(slot.iter().sum::<f32>() * 0.5);
        for (c, out) in frame.iter_mut().enumerate() {
            *out += gain * 0.25 * self.room.echo(c);
        }
        for (i, v) in slot.iter().enumerate() {
            if *v != 0.0 {
                let g = &self.gains[i * ch..(i + 1) * ch];
                for (out, g) in frame.iter_mut().zip(g) {
                    *out += gain * v * g;
                }
            }
        }
    }
}
