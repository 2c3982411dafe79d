//! Deterministic synthesized test programs.
//!
//! Loss concealment, jitter buffering and metrics need material that behaves like real
//! programme audio, not white noise. [`SignalSource`] synthesizes, from a seed alone (no OS
//! randomness), an endless stream of:
//!
//! * [`Program::Speech`]: phrases of syllables: a glottal pulse train (f0 roughly 100 to
//!   220 Hz, with declination, accents and jitter) through three cascaded formant resonators
//!   gliding between vowels, a syllable-rate (~4 Hz) envelope, unvoiced fricative and plosive
//!   noise bursts, and pauses between phrases over a faint room-noise floor (about -66 dBFS).
//! * [`Program::Music`]: a chord progression of decaying harmonic tones, an arpeggiated lead,
//!   a bass line, and percussive kick, snare and hi-hat hits.
//! * [`Program::Sine`]: a pure tone, -6.2 dBFS peak, never limited.
//! * [`Program::Mixed`]: alternating 4 s sections of speech and music with short crossfades.
//!
//! With several channels the channels always differ (sources are panned, speech gets a
//! different early reflection and noise floor per channel, the sine a per-channel phase), so
//! channel swaps are detectable. Peaks stay just below -6 dBFS (a soft limiter guarantees a
//! peak below 0.5 full scale). Generation runs at several hundred times real time.

use std::f32::consts::PI;
use std::fmt;
use std::str::FromStr;

use crate::error::MediaError;
use crate::format::AudioSpec;

/// Which kind of test programme to synthesize.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Program {
    /// Speech-like: voiced syllables, unvoiced bursts and pauses.
    Speech,
    /// Music-like: chords, bass line and percussion.
    Music,
    /// A pure tone at `hz` (Hz), 0.49 (-6.2 dBFS) peak, with a different phase per channel.
    Sine {
        /// Frequency in Hz.
        hz: f32,
    },
    /// Alternating 4 s sections of speech and music.
    Mixed,
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Program::Speech => f.write_str("speech"),
            Program::Music => f.write_str("music"),
            Program::Sine { hz } => write!(f, "sine:{hz}"),
            Program::Mixed => f.write_str("mixed"),
        }
    }
}

impl FromStr for Program {
    type Err = MediaError;

    /// Parses `speech`, `music`, `mixed`, `sine` (1 kHz) or `sine:<hz>` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MediaError::UnknownProgram {
            name: s.to_string(),
        };
        let l = s.trim().to_ascii_lowercase();
        Ok(match l.as_str() {
            "speech" => Program::Speech,
            "music" => Program::Music,
            "mixed" => Program::Mixed,
            "sine" => Program::Sine { hz: 1000.0 },
            _ => {
                let hz: f32 = l
                    .strip_prefix("sine:")
                    .ok_or_else(err)?
                    .parse()
                    .map_err(|_| err())?;
                if !(hz.is_finite() && hz > 0.0) {
                    return Err(err());
                }
                Program::Sine { hz }
            }
        })
    }
}

/// Synthesizes `frames` frames (samples per channel) of `program` as wire frames in `spec`.
///
/// The same arguments always give the same bytes; this is the first `frames` frames of
/// [`SignalSource::new`]`(program, spec, seed)`.
pub fn synthesize(program: Program, spec: AudioSpec, frames: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; frames * spec.frame_bytes()];
    SignalSource::new(program, spec, seed).read_frames(&mut out);
    out
}

/// An endless, deterministic stream of a synthesized test programme, as wire frames.
///
/// Holds only generator state (a few kilobytes), so a sender can play it for hours.
pub struct SignalSource {
    spec: AudioSpec,
    program: Program,
    gen: Gen,
    frame: Vec<f32>,
    frames_generated: u64,
}

impl fmt::Debug for SignalSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalSource")
            .field("spec", &self.spec)
            .field("program", &self.program)
            .field("frames_generated", &self.frames_generated)
            .finish_non_exhaustive()
    }
}

impl SignalSource {
    /// Starts `program` for `spec` from `seed`.
    ///
    /// # Panics
    /// If `spec.channels` or `spec.rate` is 0.
    pub fn new(program: Program, spec: AudioSpec, seed: u64) -> Self {
        assert!(spec.channels > 0 && spec.rate > 0, "invalid spec {spec}");
        let fs = spec.rate as f32;
        let ch = spec.channels as usize;
        let mut rng = Rng::new(seed);
        let gen = match program {
            Program::Speech => Gen::Speech(Box::new(Speech::new(fs, ch, rng.next_u64()))),
            Program::Music => Gen::Music(Box::new(Music::new(fs, ch, rng.next_u64()))),
            Program::Sine { hz } => Gen::Sine(Sine::new(fs, ch, hz)),
            Program::Mixed => Gen::Mixed(Box::new(Mixed {
                speech: Speech::new(fs, ch, rng.next_u64()),
                music: Music::new(fs, ch, rng.next_u64()),
                section: (4.0 * fs) as u64,
                fade: ((0.02 * fs) as u64).max(1),
                pos: 0,
            })),
        };
        SignalSource {
            spec,
            program,
            gen,
            frame: vec![0.0; ch],
            frames_generated: 0,
        }
    }

    /// The stream's rate, channel count and sample format.
    pub fn spec(&self) -> AudioSpec {
        self.spec
    }

    /// The programme being synthesized.
    pub fn program(&self) -> Program {
        self.program
    }

    /// Frames (samples per channel) produced so far.
    pub fn frames_generated(&self) -> u64 {
        self.frames_generated
    }

    /// Fills `out` with `out.len() / spec().frame_bytes()` wire frames and returns that count.
    ///
    /// Never runs out; trailing bytes of `out` that do not form a whole frame are untouched.
    /// Does not allocate.
    pub fn read_frames(&mut self, out: &mut [u8]) -> usize {
        let fb = self.spec.frame_bytes();
        let bps = self.spec.format.bytes();
        let format = self.spec.format;
        let frames = out.len() / fb;
        // The pure tone is exactly in range and must stay undistorted.
        let limited = !matches!(self.gen, Gen::Sine(_));
        for frame_out in out[..frames * fb].chunks_exact_mut(fb) {
            self.frame.iter_mut().for_each(|v| *v = 0.0);
            self.gen.next_frame(&mut self.frame);
            for (v, b) in self.frame.iter().zip(frame_out.chunks_exact_mut(bps)) {
                format.encode(if limited { limit(*v) } else { *v }, b);
            }
        }
        self.frames_generated += frames as u64;
        frames
    }
}

/// Soft limiter: linear up to 0.42, then saturating so that |y| < 0.5 (-6 dBFS).
#[inline]
fn limit(x: f32) -> f32 {
    const KNEE: f32 = 0.42;
    const ROOM: f32 = 0.5 - KNEE;
    let a = x.abs();
    if a <= KNEE {
        x
    } else {
        let y = KNEE + ROOM * ((a - KNEE) / ROOM).tanh();
        y.copysign(x)
    }
}

/// xorshift64* seeded through splitmix64.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    #[inline]
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [-1, 1).
    #[inline]
    fn bipolar(&mut self) -> f32 {
        self.unit() * 2.0 - 1.0
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    /// Uniform integer in [0, n).
    fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 33) % n as u64) as usize
    }
}

/// Equal-power-ish gain of a source at `pos` (0 = first channel, 1 = last) in `channel`.
fn pan_gain(channel: usize, channels: usize, pos: f32) -> f32 {
    if channels == 1 {
        // As loud as a centred source in stereo.
        return 0.75;
    }
    let p = channel as f32 / (channels - 1) as f32;
    let d = (p - pos).abs().min(1.0);
    (0.5 * PI * d).cos() * 0.85 + 0.15
}

fn pan_gains(channels: usize, pos: f32) -> Vec<f32> {
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
struct Room {
    delays: Vec<usize>,
    ring: Vec<f32>,
    pos: usize,
}

impl Room {
    fn new(fs: f32, channels: usize) -> Self {
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
    fn push(&mut self, mono: f32) {
        self.ring[self.pos] = mono;
        self.pos = (self.pos + 1) % self.ring.len();
    }

    /// The reflection heard in `channel` now (call after [`Room::push`]).
    #[inline]
    fn echo(&self, channel: usize) -> f32 {
        let n = self.ring.len();
        self.ring[(self.pos + n - 1 - self.delays[channel]) % n]
    }
}

enum Gen {
    Speech(Box<Speech>),
    Music(Box<Music>),
    Sine(Sine),
    Mixed(Box<Mixed>),
}

impl Gen {
    fn next_frame(&mut self, frame: &mut [f32]) {
        match self {
            Gen::Speech(s) => s.next_frame(frame, 1.0),
            Gen::Music(m) => m.next_frame(frame, 1.0),
            Gen::Sine(s) => s.next_frame(frame),
            Gen::Mixed(m) => m.next_frame(frame),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sine

/// Peak of the pure tone: -6.2 dBFS.
const SINE_PEAK: f64 = 0.49;

struct Sine {
    phase: f64,
    inc: f64,
    offsets: Vec<f64>,
}

impl Sine {
    fn new(fs: f32, channels: usize, hz: f32) -> Self {
        Sine {
            phase: 0.0,
            inc: hz as f64 / fs as f64,
            // Channel c lags by c/(2N) of a cycle: 90 degrees between the two of a stereo pair.
            offsets: (0..channels)
                .map(|c| c as f64 / (2.0 * channels as f64))
                .collect(),
        }
    }

    fn next_frame(&mut self, frame: &mut [f32]) {
        for (v, off) in frame.iter_mut().zip(&self.offsets) {
            *v += (SINE_PEAK * (std::f64::consts::TAU * (self.phase - off)).sin()) as f32;
        }
        self.phase += self.inc;
        self.phase -= self.phase.floor();
    }
}

// ---------------------------------------------------------------------------------------
// Filters

/// Klatt-style two-pole resonator with unity gain at DC.
#[derive(Clone, Copy, Default)]
struct Resonator {
    a: f32,
    b: f32,
    c: f32,
    y1: f32,
    y2: f32,
}

impl Resonator {
    fn set(&mut self, f: f32, bw: f32, fs: f32) {
        let r = (-PI * bw / fs).exp();
        self.c = -r * r;
        self.b = 2.0 * r * (2.0 * PI * f / fs).cos();
        self.a = 1.0 - self.b - self.c;
    }

    #[inline]
    fn process(&mut self, x: f32) -> f32 {
        let y = self.a * x + self.b * self.y1 + self.c * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Constant 0 dB peak-gain band-pass biquad (RBJ cookbook).
#[derive(Clone, Copy, Default)]
struct BandPass {
    b0: f32,
    a1: f32,
    a2: f32,
    x1: f32,
    x2: f32,
    y1: f32,
    y2: f32,
}

impl BandPass {
    fn set(&mut self, f: f32, q: f32, fs: f32) {
        let w = 2.0 * PI * f.min(0.45 * fs) / fs;
        let alpha = w.sin() / (2.0 * q);
        let a0 = 1.0 + alpha;
        self.b0 = alpha / a0;
        self.a1 = -2.0 * w.cos() / a0;
        self.a2 = (1.0 - alpha) / a0;
    }

    #[inline]
    fn process(&mut self, x: f32) -> f32 {
        let y = self.b0 * (x - self.x2) - self.a1 * self.y1 - self.a2 * self.y2;
        self.x2 = self.x1;
        self.x1 = x;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

// ---------------------------------------------------------------------------------------
// Speech

/// Vowel formants F1, F2, F3 in Hz (Peterson & Barney averages, adult male).
const VOWELS: [[f32; 3]; 8] = [
    [730.0, 1090.0, 2440.0], // a
    [270.0, 2290.0, 3010.0], // i
    [300.0, 870.0, 2240.0],  // u
    [530.0, 1840.0, 2480.0], // e
    [570.0, 840.0, 2410.0],  // o
    [660.0, 1720.0, 2410.0], // ae
    [520.0, 1190.0, 2390.0], // uh
    [390.0, 1990.0, 2550.0], // I
];
const FORMANT_BW: [f32; 3] = [80.0, 110.0, 160.0];
/// Samples between formant-coefficient updates.
const SPEECH_CONTROL: u32 = 32;
/// Gain from the formant cascade output to full scale.
const VOICED_GAIN: f32 = 0.09;
/// Gain of the fricative noise.
const FRIC_GAIN: f32 = 0.9;
/// Overall speech level (peaks land around -7 dBFS).
const SPEECH_GAIN: f32 = 1.45 / 0.75;
const ROOM_NOISE: f32 = 0.0009;

#[derive(Clone, Copy, PartialEq)]
enum Onset {
    None,
    /// Fricative noise over the onset.
    Fricative,
    /// Closure (silence), then a short broadband burst.
    Plosive {
        closure: u32,
    },
}

struct Speech {
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
    fn new(fs: f32, channels: usize, seed: u64) -> Self {
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

    fn update_formants(&mut self) {
        let nyq = 0.45 * self.fs;
        for ((res, f), bw) in self.res.iter_mut().zip(self.formant).zip(FORMANT_BW) {
            res.set(f.min(nyq), bw, self.fs);
        }
    }

    fn start_segment(&mut self) {
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
    fn glottal(phase: f32) -> f32 {
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
    fn next_mono(&mut self) -> f32 {
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

    fn next_frame(&mut self, frame: &mut [f32], gain: f32) {
        let s = self.next_mono() * SPEECH_GAIN;
        self.room.push(s);
        for (c, v) in frame.iter_mut().enumerate() {
            let floor = ROOM_NOISE * self.rng.bipolar();
            *v += gain * (s * self.gains[c] + 0.3 * self.room.echo(c) + floor);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Music

const TABLE_LEN: usize = 2048;
/// Overall music level (peaks land around -6 dBFS, a few touch the limiter).
const MUSIC_GAIN: f32 = 0.39;

/// One period of a waveform, with a guard point for interpolation.
fn make_table(partials: &[f32]) -> Vec<f32> {
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
fn lookup(table: &[f32], phase: f32) -> f32 {
    let x = phase * TABLE_LEN as f32;
    let i = (x as usize).min(TABLE_LEN - 1);
    let f = x - i as f32;
    table[i] + f * (table[i + 1] - table[i])
}

fn midi_hz(note: f32) -> f32 {
    440.0 * ((note - 69.0) / 12.0).exp2()
}

/// A decaying tone on a wavetable.
#[derive(Clone, Copy, Default)]
struct Tone {
    phase: f32,
    inc: f32,
    amp: f32,
    decay: f32,
    attack: f32,
    attack_inc: f32,
}

impl Tone {
    fn trigger(&mut self, hz: f32, level: f32, tau_s: f32, fs: f32) {
        self.inc = hz / fs;
        self.amp = level;
        self.decay = (-1.0 / (tau_s * fs)).exp();
        self.attack = 0.0;
        self.attack_inc = 1.0 / (0.006 * fs);
    }

    #[inline]
    fn next(&mut self, table: &[f32]) -> f32 {
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
const PROGRESSIONS: [[(u8, bool); 4]; 4] = [
    [(0, false), (7, false), (9, true), (5, false)], // I V vi IV
    [(9, true), (5, false), (0, false), (7, false)], // vi IV I V
    [(0, false), (9, true), (5, false), (7, false)], // I vi IV V
    [(2, true), (7, false), (0, false), (9, true)],  // ii V I vi
];

// Voice slots.
const CHORD_VOICES: usize = 4;
const LEAD: usize = CHORD_VOICES;
const BASS: usize = LEAD + 1;
const KICK: usize = BASS + 1;
const SNARE: usize = KICK + 1;
const HAT: usize = SNARE + 1;
const SLOTS: usize = HAT + 1;

struct Music {
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
    fn new(fs: f32, channels: usize, seed: u64) -> Self {
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

    fn on_step(&mut self) {
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

    fn next_frame(&mut self, frame: &mut [f32], gain: f32) {
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

// ---------------------------------------------------------------------------------------
// Mixed

struct Mixed {
    speech: Speech,
    music: Music,
    /// Section length in frames.
    section: u64,
    /// Crossfade length in frames.
    fade: u64,
    pos: u64,
}

impl Mixed {
    fn next_frame(&mut self, frame: &mut [f32]) {
        let index = self.pos / self.section;
        let within = self.pos % self.section;
        self.pos += 1;
        // Fade the outgoing section out over the last `fade` frames, the next one in.
        let (speech_gain, music_gain) = {
            let current_is_speech = index.is_multiple_of(2);
            let into_fade = (within + self.fade).saturating_sub(self.section);
            let x = into_fade as f32 / self.fade as f32;
            let (cur, next) = (1.0 - x, x);
            if current_is_speech {
                (cur, next)
            } else {
                (next, cur)
            }
        };
        if speech_gain > 0.0 {
            self.speech.next_frame(frame, speech_gain);
        }
        if music_gain > 0.0 {
            self.music.next_frame(frame, music_gain);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SampleFormat;

    fn spec(rate: u32, channels: u16, format: SampleFormat) -> AudioSpec {
        AudioSpec {
            rate,
            channels,
            format,
        }
    }

    fn decode(spec: AudioSpec, data: &[u8]) -> Vec<Vec<f32>> {
        let ch = spec.channels as usize;
        let bps = spec.format.bytes();
        let mut out = vec![Vec::new(); ch];
        for frame in data.chunks_exact(spec.frame_bytes()) {
            for (c, s) in frame.chunks_exact(bps).enumerate() {
                out[c].push(spec.format.decode(s));
            }
        }
        assert_eq!(out[0].len() * spec.frame_bytes(), data.len());
        out
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
    }

    const PROGRAMS: [Program; 4] = [
        Program::Speech,
        Program::Music,
        Program::Sine { hz: 997.0 },
        Program::Mixed,
    ];

    #[test]
    fn deterministic_by_seed() {
        let s = spec(48_000, 2, SampleFormat::S16);
        for p in PROGRAMS {
            let a = synthesize(p, s, 48_000, 42);
            let b = synthesize(p, s, 48_000, 42);
            assert!(a == b, "{p} not deterministic");
            if !matches!(p, Program::Sine { .. }) {
                let c = synthesize(p, s, 48_000, 43);
                assert!(a != c, "{p} ignores the seed");
            }
        }
    }

    #[test]
    fn streaming_matches_one_shot_in_any_block_size() {
        let s = spec(44_100, 2, SampleFormat::S24);
        let whole = synthesize(Program::Mixed, s, 30_000, 9);
        let mut src = SignalSource::new(Program::Mixed, s, 9);
        let mut got = Vec::new();
        let mut block = vec![0u8; 441 * s.frame_bytes() + 2];
        while got.len() < whole.len() {
            let n = src.read_frames(&mut block);
            assert_eq!(n, 441);
            got.extend_from_slice(&block[..n * s.frame_bytes()]);
        }
        got.truncate(whole.len());
        assert!(got == whole);
        assert!(src.frames_generated() >= 30_000);
    }

    #[test]
    fn levels_peaks_and_channel_differences() {
        for p in PROGRAMS {
            for (rate, channels, format) in [
                (48_000, 2, SampleFormat::S16),
                (16_000, 1, SampleFormat::S16),
                (44_100, 6, SampleFormat::F32),
                (8_000, 2, SampleFormat::S24),
            ] {
                let s = spec(rate, channels, format);
                let seconds = 10;
                let data = synthesize(p, s, rate as usize * seconds, 1);
                let chans = decode(s, &data);
                for (c, x) in chans.iter().enumerate() {
                    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    assert!(peak < 0.5, "{p} {s} ch{c}: peak {peak} >= -6 dBFS");
                    assert!(peak > 0.2, "{p} {s} ch{c}: peak {peak} too low");
                    let r = rms(x);
                    assert!(r > 0.01, "{p} {s} ch{c}: rms {r} too low");
                    // Non-silent throughout: every second has signal.
                    for sec in x.chunks(rate as usize) {
                        assert!(rms(sec) > 0.003, "{p} {s} ch{c}: a silent second");
                    }
                }
                for a in 0..chans.len() {
                    for b in a + 1..chans.len() {
                        let diff: Vec<f32> =
                            chans[a].iter().zip(&chans[b]).map(|(x, y)| x - y).collect();
                        assert!(
                            rms(&diff) > 0.1 * rms(&chans[a]),
                            "{p} {s}: channels {a} and {b} are (nearly) the same"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn speech_has_pauses_and_syllabic_modulation() {
        let s = spec(16_000, 1, SampleFormat::F32);
        let data = synthesize(Program::Speech, s, 16_000 * 30, 5);
        let x = &decode(s, &data)[0];
        // 20 ms frame energies in dB.
        let levels: Vec<f32> = x
            .chunks(320)
            .map(|f| 20.0 * rms(f).max(1e-9).log10())
            .collect();
        let loud = levels.iter().fold(f32::MIN, |m, v| m.max(*v));
        let quiet = levels.iter().filter(|l| **l < loud - 40.0).count();
        let active = levels.iter().filter(|l| **l > loud - 20.0).count();
        // Pauses exist (room noise only) but do not dominate.
        assert!(
            quiet > levels.len() / 20,
            "quiet frames {quiet}/{}",
            levels.len()
        );
        assert!(
            active > levels.len() / 4,
            "active frames {active}/{}",
            levels.len()
        );
        // Syllable rate: envelope crossings of its median level, about 2 per syllable.
        let mut sorted = levels.clone();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let median = sorted[sorted.len() / 2];
        let crossings = levels
            .windows(2)
            .filter(|w| (w[0] < median) != (w[1] < median))
            .count();
        let rate_hz = crossings as f32 / 2.0 / 30.0;
        assert!((1.5..7.0).contains(&rate_hz), "envelope rate {rate_hz} Hz");
    }

    #[test]
    fn sine_has_the_requested_frequency_and_level() {
        let s = spec(48_000, 1, SampleFormat::F32);
        let data = synthesize(Program::Sine { hz: 1000.0 }, s, 48_000, 0);
        let x = &decode(s, &data)[0];
        let ups = x.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        assert!((999..=1001).contains(&ups), "{ups} cycles");
        let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((peak - 0.49).abs() < 1e-4, "{peak}");
    }

    #[test]
    fn program_names_parse() {
        for p in PROGRAMS {
            assert_eq!(p.to_string().parse::<Program>().unwrap(), p);
        }
        assert_eq!(
            "SINE".parse::<Program>().unwrap(),
            Program::Sine { hz: 1000.0 }
        );
        assert!("sine:-3".parse::<Program>().is_err());
        assert!("noise".parse::<Program>().is_err());
    }
}
