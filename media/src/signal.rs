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
//!
//! One generator per file under `signal/` (`speech.rs`, `music.rs`, `sine.rs`, `mixed.rs`),
//! their shared building blocks in `dsp.rs`; this file holds the programme names, the
//! stream ([`SignalSource`]) and the limiter that every generator's output passes.

mod dsp;
mod mixed;
mod music;
mod sine;
mod speech;

use std::fmt;
use std::str::FromStr;

use crate::error::MediaError;
use crate::format::AudioSpec;
use dsp::Rng;
use mixed::Mixed;
use music::Music;
use sine::Sine;
use speech::Speech;

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

/// The generator of a [`SignalSource`], one per programme.
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
