//! Rate conversion of a sender's input: an [`AudioSource`] at one rate read as wire frames at
//! another, in the same sample format and channel count. Opus (RFC 7587) codes 48 kHz only,
//! so `send --codec opus` reads a 44.1 kHz (or any other rate) WAV or pipe through this.
//!
//! One job: rubato's sinc resampler (the one the receiver's drift compensation uses) at a
//! fixed ratio. The output starts at the input's first frame (the filter's delay is taken
//! off) and has `round(input frames x out_rate / in_rate)` frames: the end is flushed, not
//! cut.

use std::io;

use isostream_media::{AudioSpec, SampleFormat};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Resampler, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

use crate::AudioSource;

/// Input frames per call of the resampler.
pub const CHUNK_FRAMES: usize = 1024;

/// Length of the sinc filter, in input frames (as the receiver's drift resampler: aliasing
/// attenuated beyond 100 dB).
const SINC_LEN: usize = 128;

/// Why a converter could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    /// A rate of 0, or rubato refused the ratio.
    #[error("cannot resample {from} Hz to {to} Hz: {why}")]
    Unsupported {
        /// Input rate, in Hz.
        from: u32,
        /// Output rate, in Hz.
        to: u32,
        /// rubato's reason.
        why: String,
    },
}

/// A source at `spec.rate` read at another rate (see the module docs).
pub struct Resampled {
    inner: Box<dyn AudioSource>,
    format: SampleFormat,
    channels: usize,
    ratio: f64,
    rs: Async<f32>,
    /// Wire frames read from `inner` for the next chunk.
    wire_in: Vec<u8>,
    /// Frames in `wire_in`.
    wire_in_frames: usize,
    in_f32: Vec<f32>,
    out_f32: Vec<f32>,
    /// Output wire frames made and not yet handed out: `out_wire[out_pos..out_len]`.
    out_wire: Vec<u8>,
    out_pos: usize,
    out_len: usize,
    /// Output frames still to drop (the filter's delay).
    skip_frames: usize,
    /// Input frames read from `inner` so far.
    in_total: u64,
    /// Output frames handed out so far.
    out_total: u64,
    /// `inner` said it ended.
    ended: bool,
}

impl Resampled {
    /// Reads `inner` (wire frames of `spec`) at `to_rate` Hz.
    pub fn new(
        inner: Box<dyn AudioSource>,
        spec: AudioSpec,
        to_rate: u32,
    ) -> Result<Self, ResampleError> {
        let err = |why: String| ResampleError::Unsupported {
            from: spec.rate,
            to: to_rate,
            why,
        };
        if spec.rate == 0 || to_rate == 0 {
            return Err(err("a rate of 0".into()));
        }
        let channels = usize::from(spec.channels.max(1));
        let ratio = f64::from(to_rate) / f64::from(spec.rate);
        let params = SincInterpolationParameters::new(SINC_LEN, WindowFunction::BlackmanHarris2)
            .oversampling_factor(128)
            .interpolation(SincInterpolationType::Cubic);
        let rs = Async::<f32>::new_sinc(
            ratio,
            1.0,
            &params,
            CHUNK_FRAMES,
            channels,
            FixedAsync::Input,
        )
        .map_err(|e| err(e.to_string()))?;
        let out_max = rs.output_frames_max();
        let fb = spec.frame_bytes();
        Ok(Self {
            inner,
            format: spec.format,
            channels,
            ratio,
            skip_frames: rs.output_delay(),
            rs,
            wire_in: vec![0; CHUNK_FRAMES * fb],
            wire_in_frames: 0,
            in_f32: vec![0.0; CHUNK_FRAMES * channels],
            out_f32: vec![0.0; out_max * channels],
            out_wire: vec![0; out_max * fb],
            out_pos: 0,
            out_len: 0,
            in_total: 0,
            out_total: 0,
            ended: false,
        })
    }

    fn frame_bytes(&self) -> usize {
        self.channels * self.format.bytes()
    }

    /// Output frames the whole input makes (known once the input ended).
    fn out_frames_due(&self) -> u64 {
        (self.in_total as f64 * self.ratio).round() as u64
    }

    /// Makes the next chunk of output; false once everything is out.
    fn refill(&mut self) -> io::Result<bool> {
        let fb = self.frame_bytes();
        while !self.ended && self.wire_in_frames < CHUNK_FRAMES {
            let n = self
                .inner
                .read_frames(&mut self.wire_in[self.wire_in_frames * fb..CHUNK_FRAMES * fb])?;
            if n == 0 {
                self.ended = true;
            }
            self.wire_in_frames += n;
            self.in_total += n as u64;
        }
        if self.ended && self.wire_in_frames == 0 && self.out_total >= self.out_frames_due() {
            return Ok(false);
        }
        // decode; after the end, the rest of the chunk is silence (it flushes the filter)
        let sb = self.format.bytes();
        for (i, d) in self.in_f32.iter_mut().enumerate() {
            *d = if i < self.wire_in_frames * self.channels {
                self.format.decode(&self.wire_in[i * sb..(i + 1) * sb])
            } else {
                0.0
            };
        }
        self.wire_in_frames = 0;
        let input = InterleavedSlice::new(&self.in_f32[..], self.channels, CHUNK_FRAMES)
            .map_err(io::Error::other)?;
        let out_frames = self.out_f32.len() / self.channels;
        let mut output =
            InterleavedSlice::new_mut(&mut self.out_f32[..], self.channels, out_frames)
                .map_err(io::Error::other)?;
        let (_, produced) = self
            .rs
            .process_into_buffer(&input, &mut output, None)
            .map_err(io::Error::other)?;
        let skip = self.skip_frames.min(produced);
        self.skip_frames -= skip;
        let mut keep = produced - skip;
        if self.ended {
            let left = self.out_frames_due().saturating_sub(self.out_total);
            keep = keep.min(usize::try_from(left).unwrap_or(usize::MAX));
        }
        let src = &self.out_f32[skip * self.channels..(skip + keep) * self.channels];
        for (v, b) in src.iter().zip(self.out_wire.chunks_exact_mut(sb)) {
            self.format.encode(*v, b);
        }
        self.out_pos = 0;
        self.out_len = keep * fb;
        Ok(true)
    }
}

impl AudioSource for Resampled {
    fn read_frames(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let fb = self.frame_bytes();
        while self.out_pos == self.out_len {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = ((self.out_len - self.out_pos) / fb).min(out.len() / fb);
        out[..n * fb].copy_from_slice(&self.out_wire[self.out_pos..self.out_pos + n * fb]);
        self.out_pos += n * fb;
        self.out_total += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored source over a buffer of wire frames.
    struct Buf(Vec<u8>, usize, usize);

    impl AudioSource for Buf {
        fn read_frames(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let fb = self.2;
            let n = ((self.0.len() - self.1) / fb).min(out.len() / fb).min(777);
            out[..n * fb].copy_from_slice(&self.0[self.1..self.1 + n * fb]);
            self.1 += n * fb;
            Ok(n)
        }
    }

    fn tone(spec: AudioSpec, hz: f64, frames: usize) -> Vec<u8> {
        let c = usize::from(spec.channels);
        let sb = spec.format.bytes();
        let mut v = vec![0u8; frames * c * sb];
        for f in 0..frames {
            let x = 0.5 * (2.0 * std::f64::consts::PI * hz * f as f64 / f64::from(spec.rate)).sin();
            for ch in 0..c {
                let at = (f * c + ch) * sb;
                spec.format.encode(x as f32, &mut v[at..at + sb]);
            }
        }
        v
    }

    fn read_all(mut r: Resampled, fb: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 500 * fb];
        loop {
            let n = r.read_frames(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n * fb]);
        }
        got
    }

    #[test]
    fn cd_audio_becomes_48_khz_with_the_same_tone_the_same_start_and_the_whole_length() {
        for format in [SampleFormat::S16, SampleFormat::S24, SampleFormat::F32] {
            let spec = AudioSpec {
                rate: 44_100,
                channels: 2,
                format,
            };
            let frames = 44_100 + 333;
            let input = tone(spec, 1000.0, frames);
            let r =
                Resampled::new(Box::new(Buf(input, 0, spec.frame_bytes())), spec, 48_000).unwrap();
            let got = read_all(r, spec.frame_bytes());
            let want_frames = (frames as f64 * 48_000.0 / 44_100.0).round() as usize;
            assert_eq!(got.len(), want_frames * spec.frame_bytes(), "{format:?}");
            // the same 1 kHz tone at 48 kHz from the first frame, to within a fraction of a
            // frame (rubato's delay is a fraction of a frame that output frames cannot
            // take off: the best fractional delay is found), away from the two ends, where
            // the filter sees the silence beyond the input
            let sb = format.bytes();
            let best = (-100..=100)
                .map(|d| {
                    let delay = f64::from(d) / 100.0;
                    let (mut err, mut sig) = (0.0f64, 0.0f64);
                    for f in 200..want_frames - 200 {
                        let t = (f as f64 - delay) / 48_000.0;
                        let a = 0.5 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin();
                        for ch in 0..2 {
                            let i = f * 2 + ch;
                            let b = f64::from(format.decode(&got[i * sb..(i + 1) * sb]));
                            err += (a - b) * (a - b);
                            sig += a * a;
                        }
                    }
                    (10.0 * (sig / err).log10(), delay)
                })
                .fold((f64::MIN, 0.0), |a, b| if b.0 > a.0 { b } else { a });
            let (snr, delay) = best;
            // the sinc filter's own accuracy (128 taps, cubic interpolation) is about 75 dB
            assert!(
                snr > 70.0,
                "{format:?}: SNR {snr:.1} dB against the ideal tone (delay {delay:+.2} frames)"
            );
            assert!(delay.abs() < 1.0, "{format:?}: delay {delay:+.2} frames");
        }
    }

    #[test]
    fn a_short_input_and_an_empty_one_keep_their_lengths() {
        let spec = AudioSpec {
            rate: 32_000,
            channels: 1,
            format: SampleFormat::S16,
        };
        for frames in [0usize, 1, 10, 1023, 1024, 1025] {
            let input = tone(spec, 440.0, frames);
            let r = Resampled::new(Box::new(Buf(input, 0, 2)), spec, 48_000).unwrap();
            let got = read_all(r, 2);
            assert_eq!(
                got.len() / 2,
                (frames as f64 * 1.5).round() as usize,
                "{frames}"
            );
        }
    }

    #[test]
    fn a_rate_of_zero_is_refused() {
        let spec = AudioSpec {
            rate: 0,
            channels: 1,
            format: SampleFormat::S16,
        };
        assert!(Resampled::new(Box::new(Buf(Vec::new(), 0, 2)), spec, 48_000).is_err());
    }
}
