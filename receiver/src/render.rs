//! The playout side of one substream: pulls frames from its jitter buffer, repairs what is
//! missing with the [`crate::concealer`], and, when clock drift is compensated, resamples
//! them with the [`crate::drift::AdaptiveResampler`] into a chunk for the channel merge.
//!
//! ```text
//! jitter buffer ─▶ concealer ─▶ (resampler) ─▶ chunk
//! ```
//!
//! The jitter buffer is an explicit input of [`Render::render`]: the stage owns the playout
//! scratch and the repair counters, not the buffer.

use isostream_media::{AudioSpec, SampleFormat};

use crate::concealer::{ConcealCounts, Concealer};
use crate::drift::AdaptiveResampler;
use crate::jitter_buffer::JitterBuffer;

/// Largest playout chunk, lookahead included, in frames (the scratch is sized for it).
pub const MAX_CHUNK_FRAMES: usize = 4096;

/// Frames of future audio shown to the concealer so it can interpolate across a chunk edge.
pub const LOOKAHEAD: usize = 8;

/// The render stage of one substream. See the module documentation.
#[derive(Debug)]
pub struct Render {
    /// Bytes of one frame of the substream (all its channels).
    frame_bytes: usize,
    concealer: Concealer,
    /// Adaptive resampler (only when clock drift is compensated).
    resampler: Option<AdaptiveResampler>,
    /// Playout scratch: frames and presence flags peeked from the jitter buffer.
    scratch: Vec<u8>,
    present: Vec<bool>,
    /// This substream's share of one playout chunk (after resampling).
    chunk: Vec<u8>,
    /// What the concealer repaired.
    repaired: ConcealCounts,
}

impl Render {
    /// The render stage of a substream of `spec` (its own channels); `resample` adds the
    /// resampler. It allocates at most [`Render::memory_bytes`].
    pub fn new(spec: AudioSpec, resample: bool) -> Self {
        let fb = spec.frame_bytes();
        Render {
            frame_bytes: fb,
            concealer: Concealer::new(spec),
            resampler: resample.then(|| AdaptiveResampler::new(spec.format, spec.channels)),
            scratch: vec![0; fb * MAX_CHUNK_FRAMES],
            present: vec![false; MAX_CHUNK_FRAMES],
            chunk: vec![0; fb * MAX_CHUNK_FRAMES],
            repaired: ConcealCounts::default(),
        }
    }

    /// The most [`Render::new`] with these settings allocates on the heap, in bytes: the
    /// concealer, the scratch and chunk buffers, and the resampler.
    pub fn memory_bytes(spec: AudioSpec, resample: bool) -> usize {
        let fb = spec.frame_bytes();
        let mut n = Concealer::memory_bytes(spec) + (2 * fb + 1) * MAX_CHUNK_FRAMES;
        if resample {
            n += AdaptiveResampler::memory_bytes(spec.format, spec.channels);
        }
        n
    }

    /// Frees the buffers once the session has ended, keeping the repair counters: what is
    /// left renders at most one frame.
    pub fn release(&mut self) {
        let fb = self.frame_bytes;
        self.concealer = Concealer::new(AudioSpec {
            rate: crate::layout::MIN_RATE,
            channels: 1,
            format: SampleFormat::S16,
        });
        self.resampler = None;
        self.scratch = vec![0; fb * (LOOKAHEAD + 1)];
        self.present = vec![false; LOOKAHEAD + 1];
        self.chunk = vec![0; fb];
    }

    /// What the concealer has repaired so far, in frames.
    pub fn repaired(&self) -> ConcealCounts {
        self.repaired
    }

    /// Input frames the resampler holds (0 without one).
    pub fn resampler_held(&self) -> f64 {
        self.resampler
            .as_ref()
            .map_or(0.0, |r| r.buffered_input_frames())
    }

    /// Bytes of the playout scratch (smaller once released).
    pub fn scratch_bytes(&self) -> usize {
        self.scratch.len()
    }

    /// Renders the next `frames` frames (at most [`MAX_CHUNK_FRAMES`] - [`LOOKAHEAD`]) from
    /// `jb` into the chunk buffer: pulled from the jitter buffer (which advances), repaired
    /// by the concealer, resampled at `ratio` if there is a resampler. Returns the chunk.
    pub fn render(&mut self, jb: &mut JitterBuffer, ratio: f64, frames: usize) -> &[u8] {
        let fb = self.frame_bytes;
        let Render {
            concealer,
            scratch,
            present,
            repaired,
            chunk,
            resampler,
            ..
        } = self;
        let dst = &mut chunk[..frames * fb];
        let mut pull =
            |b: &mut [u8]| pull_repaired(jb, concealer, scratch, present, repaired, fb, b);
        match resampler {
            Some(r) => {
                r.process(ratio, pull, dst);
            }
            None => {
                pull(dst);
            }
        }
        dst
    }
}

/// Pulls `buf.len() / fb` frames from the jitter buffer, repairs what is missing, and
/// consumes them: the input side of playout (and of the resampler).
fn pull_repaired(
    jb: &mut JitterBuffer,
    concealer: &mut Concealer,
    scratch: &mut [u8],
    present: &mut [bool],
    repaired: &mut ConcealCounts,
    fb: usize,
    buf: &mut [u8],
) -> usize {
    let frames = buf.len() / fb;
    let room = present.len() - LOOKAHEAD;
    let mut done = 0;
    while done < frames {
        let k = (frames - done).min(room);
        let total = k + LOOKAHEAD;
        jb.peek(0, &mut scratch[..total * fb], &mut present[..total]);
        *repaired += concealer.process(&mut scratch[..total * fb], &present[..total], LOOKAHEAD);
        buf[done * fb..(done + k) * fb].copy_from_slice(&scratch[..k * fb]);
        jb.advance(k);
        done += k;
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: AudioSpec = AudioSpec {
        rate: 1_000,
        channels: 1,
        format: SampleFormat::S16,
    };

    #[test]
    fn present_frames_pass_through_bit_exact_and_the_buffer_advances() {
        let mut jb = JitterBuffer::new(2, 100, 0);
        let frames: Vec<u8> = (0..120u8).collect();
        jb.write(0, 1, &frames);
        let mut r = Render::new(SPEC, false);
        assert_eq!(r.render(&mut jb, 1.0, 10), &frames[..20]);
        assert_eq!(jb.read_pos(), 10);
        assert_eq!(r.render(&mut jb, 1.0, 5), &frames[20..30]);
        assert_eq!(jb.read_pos(), 15);
        assert_eq!(r.repaired(), ConcealCounts::default());
    }

    #[test]
    fn missing_frames_are_repaired_and_counted() {
        let mut jb = JitterBuffer::new(2, 100, 0);
        let mut r = Render::new(SPEC, false);
        let out = r.render(&mut jb, 1.0, 10).to_vec();
        assert_eq!(out.len(), 20);
        let c = r.repaired();
        assert_eq!(c.interpolated + c.concealed, 10);
        assert_eq!(jb.read_pos(), 10);
    }

    #[test]
    fn release_shrinks_the_buffers_but_keeps_the_counters() {
        let mut jb = JitterBuffer::new(2, 100, 0);
        let mut r = Render::new(SPEC, true);
        assert!(r.scratch_bytes() >= 2 * MAX_CHUNK_FRAMES);
        r.render(&mut jb, 1.0, 4);
        let before = r.repaired();
        r.release();
        assert!(r.scratch_bytes() < 100);
        assert_eq!(r.resampler_held(), 0.0);
        assert_eq!(r.repaired(), before);
        assert!(Render::memory_bytes(SPEC, true) > Render::memory_bytes(SPEC, false));
    }
}
