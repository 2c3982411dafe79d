//! The adaptive resampler: one substream's wire frames in, wire frames out at a ratio that
//! may change on every call, bit-exact until it first has to resample.

use isostream_media::SampleFormat;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Adjustable, Async, FixedAsync, Resampler, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

/// A ratio further than this from 1.0 (relative: 1 ppm) engages an [`AdaptiveResampler`].
pub const ENGAGE_THRESHOLD: f64 = 1e-6;

/// Output frames per call of the sinc resampler: the granularity at which the ratio changes
/// (it ramps linearly across one chunk) and part of the added latency.
pub const CHUNK_FRAMES: usize = 64;

/// Length of the sinc filter, in input frames: attenuation of aliasing beyond 100 dB with
/// a cutoff above 0.9 x Nyquist; the added latency is about half of it.
pub const SINC_LEN: usize = 128;

/// Points per input frame of rubato's sinc table.
const OVERSAMPLING: usize = 128;

/// How far ahead of the requested position rubato's sinc resampler reads, in input frames:
/// its tables are shifted by one oversampling step (`rubato::sinc::make_sincs` stores table
/// `s` from offset `factor - 1 - s`). The priming compensates it so that engaging does not
/// step the timeline (checked by the tone test).
const SUBSAMPLE_LEAD: f64 = 1.0 / OVERSAMPLING as f64;

/// The resampler is built for ratios within this factor of 1 (far beyond the clamp).
const MAX_RELATIVE_RATIO: f64 = 1.01;

/// One substream's adaptive resampler: pulls wire frames from a source (the jitter buffer)
/// and writes wire frames at a ratio that may change on every call.
///
/// # Pass-through rule
///
/// From construction (or [`Self::reset`]) the stage is a bit-exact copy of its input, whatever
/// the ratio, as long as every ratio seen was within [`ENGAGE_THRESHOLD`] (1 ppm) of 1.0. The
/// first ratio beyond that engages rubato's sinc resampler, and it stays engaged even if the
/// ratio returns to 1.0 (leaving again would need a phase-exact hand-over). A stream without
/// drift, whose [`DriftEstimator`](super::DriftEstimator) never engages, therefore stays
/// bit-exact end to end.
///
/// # Seamless engagement
///
/// The stage remembers the last few hundred frames it passed through. On engaging, it restarts
/// rubato at ratio exactly 1, feeds it that history, discards the outputs that correspond to
/// audio already played (a whole number of chunks, by choice of the history length), and only
/// then ramps to the requested ratio across one chunk. The first resampled frame is the frame
/// that comes next in the input: no gap, no repeat, no phase step.
///
/// # Latency
///
/// Engaged, the stage holds [`Self::buffered_input_frames`] input frames (about
/// `SINC_LEN / 2 + CHUNK_FRAMES`, 2 to 4 ms at 48 kHz) that it pulled but has not played; add
/// them to the occupancy fed to the [`DriftEstimator`](super::DriftEstimator).
///
/// Substreams played by one clock stay sample-aligned if their resamplers are called with the
/// same ratios and output lengths: they then engage on the same call and consume alike.
#[derive(Debug)]
pub struct AdaptiveResampler {
    format: SampleFormat,
    channels: usize,
    frame_bytes: usize,
    /// Rubato's sinc resampler, built when the stage first engages (building its table is
    /// most of what a substream costs to set up, and a stream without drift never needs it).
    rs: Option<Async<f32>>,
    /// Rubato's delay at ratio 1, in frames (measured once per process, [`geometry`]).
    delay: usize,
    /// History frames fed on engagement (`(hist_frames + delay) % CHUNK_FRAMES == 0`).
    hist_frames: usize,
    /// Ratio of the priming chunks but the last (compensates [`SUBSAMPLE_LEAD`]).
    prime_ratio: f64,
    hist: Vec<u8>,
    hist_head: usize,
    hist_fill: usize,
    engaged: bool,
    /// History frames not yet fed to rubato after engaging.
    prime_left: usize,
    /// Resampled frames still to discard after engaging.
    skip_left: usize,
    target: f64,
    wire_in: Vec<u8>,
    in_f32: Vec<f32>,
    out_f32: Vec<f32>,
    out_pos: usize,
    out_len: usize,
    /// Input frames consumed per output frame of the chunk in `out_f32`.
    out_step: f64,
    /// New input frames pulled since engaging.
    pulled: u64,
    /// Input position (frames since engaging) of the next frame to deliver.
    consumed: f64,
}

impl AdaptiveResampler {
    /// A resampler for wire frames of `channels` channels of `format` (big-endian,
    /// interleaved), starting in pass-through.
    ///
    /// It allocates at most [`AdaptiveResampler::memory_bytes`].
    ///
    /// # Panics
    ///
    /// If `channels` is 0.
    pub fn new(format: SampleFormat, channels: u16) -> Self {
        Self::build(format, channels)
    }

    /// The most [`AdaptiveResampler::new`] allocates for `channels` channels of `format`,
    /// in bytes (the sinc table, the resampler's buffers, the history and the wire and
    /// float buffers; checked against an allocator in receiver/tests/memory_estimates.rs).
    pub fn memory_bytes(format: SampleFormat, channels: u16) -> usize {
        let ch = channels as usize;
        let f = std::mem::size_of::<f32>();
        // the sinc table and the buffers made while it is built (measured: 195 KiB)
        let table = 256 << 10;
        let frames = 2 * CHUNK_FRAMES + 2 * SINC_LEN;
        table + frames * ch * (3 * f + 2 * format.bytes())
    }

    fn build(format: SampleFormat, channels: u16) -> Self {
        assert!(channels > 0, "a resampler needs at least one channel");
        let ch = channels as usize;
        let Geometry {
            in_max,
            out_max,
            delay,
        } = geometry();
        let in_f32 = vec![0.0f32; in_max * ch];
        let out_f32 = vec![0.0f32; out_max * ch];
        let mut hist_frames = SINC_LEN;
        while !(hist_frames + delay).is_multiple_of(CHUNK_FRAMES) {
            hist_frames += 1;
        }
        // the priming chunks but the last advance by SUBSAMPLE_LEAD less than their length
        let lead_chunks = ((hist_frames + delay) / CHUNK_FRAMES - 1) as f64;
        let prime_ratio = 1.0 / (1.0 - SUBSAMPLE_LEAD / (lead_chunks * CHUNK_FRAMES as f64));
        let frame_bytes = ch * format.bytes();
        AdaptiveResampler {
            format,
            channels: ch,
            frame_bytes,
            rs: None,
            delay,
            hist_frames,
            prime_ratio,
            hist: vec![0; hist_frames * frame_bytes],
            hist_head: 0,
            hist_fill: 0,
            engaged: false,
            prime_left: 0,
            skip_left: 0,
            target: 1.0,
            wire_in: vec![0; in_max * frame_bytes],
            in_f32,
            out_f32,
            out_pos: 0,
            out_len: 0,
            out_step: 1.0,
            pulled: 0,
            consumed: 0.0,
        }
    }

    /// Bytes per wire frame.
    pub fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }

    /// Whether the sinc resampler is engaged (false: bit-exact pass-through).
    pub fn is_engaged(&self) -> bool {
        self.engaged
    }

    /// Input frames pulled from the source and not yet played, at the current position (may
    /// be fractional; 0 in pass-through). Add to the buffer's occupancy for the estimator.
    pub fn buffered_input_frames(&self) -> f64 {
        if self.engaged {
            (self.pulled as f64 - self.consumed).max(0.0)
        } else {
            0.0
        }
    }

    /// Rubato's delay at ratio 1, in frames, measured at construction (about `SINC_LEN / 2`).
    pub fn filter_delay_frames(&self) -> usize {
        self.delay
    }

    /// Back to pass-through with empty state (a new session, or after a resynchronisation):
    /// anything pulled and not yet played is dropped.
    pub fn reset(&mut self) {
        if let Some(rs) = &mut self.rs {
            rs.reset();
        }
        self.engaged = false;
        self.hist_fill = 0;
        self.hist_head = 0;
        self.prime_left = 0;
        self.skip_left = 0;
        self.out_len = 0;
        self.out_pos = 0;
        self.pulled = 0;
        self.consumed = 0.0;
        self.target = 1.0;
    }

    /// Fills `out` (whole wire frames) with the next audio at `ratio` output frames per input
    /// frame, pulling input with `pull`. Returns the frames written: all of `out`.
    ///
    /// `pull(buf)` must fill `buf` (a whole number of wire frames) with the next input frames
    /// and return how many it wrote; it is expected to always fill `buf` (concealing what is
    /// missing), and frames it does not write are taken as silence. It may be called several
    /// times per call, with varying lengths (up to a few chunks in resampling mode).
    ///
    /// `ratio` is clamped to within 1% of 1. In pass-through every frame is pulled and copied
    /// unchanged. Nothing allocates, except once: the first engagement builds rubato's sinc
    /// table (counted in [`AdaptiveResampler::memory_bytes`]).
    pub fn process(
        &mut self,
        ratio: f64,
        mut pull: impl FnMut(&mut [u8]) -> usize,
        out: &mut [u8],
    ) -> usize {
        let fb = self.frame_bytes;
        let n = out.len() / fb;
        let ratio = if ratio.is_finite() {
            ratio.clamp(1.0 / MAX_RELATIVE_RATIO, MAX_RELATIVE_RATIO)
        } else {
            1.0
        };
        self.target = ratio;
        if !self.engaged {
            if (ratio - 1.0).abs() <= ENGAGE_THRESHOLD {
                let dst = &mut out[..n * fb];
                let got = pull(dst).min(n);
                dst[got * fb..].fill(0);
                self.remember(dst);
                return n;
            }
            self.engage();
        }
        let mut done = 0;
        while done < n {
            if self.out_pos < self.out_len {
                let k = (self.out_len - self.out_pos).min(n - done);
                let ch = self.channels;
                let bs = self.format.bytes();
                let src = &self.out_f32[self.out_pos * ch..(self.out_pos + k) * ch];
                for (v, b) in src
                    .iter()
                    .zip(out[done * fb..(done + k) * fb].chunks_exact_mut(bs))
                {
                    self.format.encode(*v, b);
                }
                self.out_pos += k;
                self.consumed += k as f64 * self.out_step;
                done += k;
                continue;
            }
            self.run_chunk(&mut pull);
        }
        n
    }

    /// Appends the frames just passed through to the history.
    fn remember(&mut self, frames: &[u8]) {
        let fb = self.frame_bytes;
        let h = self.hist_frames;
        let n = frames.len() / fb;
        let keep = n.min(h);
        for f in frames[(n - keep) * fb..].chunks_exact(fb) {
            self.hist[self.hist_head * fb..(self.hist_head + 1) * fb].copy_from_slice(f);
            self.hist_head = (self.hist_head + 1) % h;
        }
        self.hist_fill = (self.hist_fill + keep).min(h);
    }

    fn engage(&mut self) {
        match &mut self.rs {
            Some(rs) => rs.reset(),
            // the one allocation after construction: the sinc table, on first engaging
            None => self.rs = Some(sinc_resampler(self.channels)),
        }
        self.engaged = true;
        self.prime_left = self.hist_frames;
        self.skip_left = self.hist_frames + self.delay;
        self.out_len = 0;
        self.out_pos = 0;
        self.pulled = 0;
        self.consumed = 0.0;
    }

    /// Runs rubato once: fills its input from the history (while priming) and `pull`, and
    /// leaves the output in `out_f32`, minus what priming discards.
    fn run_chunk(&mut self, pull: &mut impl FnMut(&mut [u8]) -> usize) {
        let Some(mut rs) = self.rs.take() else {
            return;
        };
        self.run_chunk_with(&mut rs, pull);
        self.rs = Some(rs);
    }

    fn run_chunk_with(&mut self, rs: &mut Async<f32>, pull: &mut impl FnMut(&mut [u8]) -> usize) {
        let fb = self.frame_bytes;
        let ch = self.channels;
        let before = rs.resample_ratio();
        // in range by construction and by the clamp in `process`
        if self.skip_left > CHUNK_FRAMES {
            // priming, all but the last chunk: step back by rubato's sub-sample lead
            let _ = rs.set_resample_ratio(self.prime_ratio, false);
        } else if self.skip_left > 0 {
            // the last priming chunk at exactly 1, so the ramp starts from 1
            let _ = rs.set_resample_ratio(1.0, false);
        } else if rs.resample_ratio() != self.target {
            let _ = rs.set_resample_ratio(self.target, true);
        }
        let need = rs.input_frames_next();
        let mut filled = 0;
        // history first (oldest first; missing history is silence before the stream)
        while self.prime_left > 0 && filled < need {
            let h = self.hist_frames;
            let idx = h - self.prime_left; // 0 = oldest
            let missing = h - self.hist_fill;
            let dst = &mut self.wire_in[filled * fb..(filled + 1) * fb];
            if idx < missing {
                dst.fill(0);
            } else {
                let slot = (self.hist_head + h - self.hist_fill + (idx - missing)) % h;
                dst.copy_from_slice(&self.hist[slot * fb..(slot + 1) * fb]);
            }
            self.prime_left -= 1;
            filled += 1;
        }
        if filled < need {
            let dst = &mut self.wire_in[filled * fb..need * fb];
            let got = pull(dst).min(need - filled);
            dst[got * fb..].fill(0);
            self.pulled += (need - filled) as u64;
        }
        let bs = self.format.bytes();
        for (v, b) in self.in_f32[..need * ch]
            .iter_mut()
            .zip(self.wire_in[..need * fb].chunks_exact(bs))
        {
            *v = self.format.decode(b);
        }
        let out_frames = self.out_f32.len() / ch;
        let input = InterleavedSlice::new(&self.in_f32[..need * ch], ch, need)
            .expect("input buffer sized for input_frames_max");
        let mut output = InterleavedSlice::new_mut(&mut self.out_f32[..], ch, out_frames)
            .expect("output buffer sized for output_frames_max");
        let (_, produced) = rs
            .process_into_buffer(&input, &mut output, None)
            .expect("buffers sized by the resampler's own maxima");
        let after = rs.resample_ratio();
        self.out_step = 0.5 * (1.0 / before + 1.0 / after);
        let skip = self.skip_left.min(produced);
        self.skip_left -= skip;
        self.out_pos = skip;
        self.out_len = produced;
    }
}

/// Rubato's sinc resampler for `ch` channels, at ratio 1.
fn sinc_resampler(ch: usize) -> Async<f32> {
    let params = SincInterpolationParameters::new(SINC_LEN, WindowFunction::BlackmanHarris2)
        .oversampling_factor(OVERSAMPLING)
        .interpolation(SincInterpolationType::Cubic);
    Async::<f32>::new_sinc(
        1.0,
        MAX_RELATIVE_RATIO,
        &params,
        CHUNK_FRAMES,
        ch,
        FixedAsync::Output,
    )
    .expect("valid resampler parameters")
}

/// What every resampler of this configuration shares, whatever its channel count: rubato's
/// largest input and output chunk, in frames, and its delay at ratio 1.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    in_max: usize,
    out_max: usize,
    delay: usize,
}

/// The [`Geometry`], measured once per process on a mono resampler.
fn geometry() -> Geometry {
    static GEOMETRY: std::sync::OnceLock<Geometry> = std::sync::OnceLock::new();
    *GEOMETRY.get_or_init(|| {
        let mut rs = sinc_resampler(1);
        let in_max = rs.input_frames_max();
        let out_max = rs.output_frames_max();
        let mut in_f32 = vec![0.0f32; in_max];
        let mut out_f32 = vec![0.0f32; out_max];
        let delay = measure_delay(&mut rs, &mut in_f32, &mut out_f32, 1);
        Geometry {
            in_max,
            out_max,
            delay,
        }
    })
}

/// Rubato's delay at ratio 1, in frames: where an impulse comes out.
fn measure_delay(rs: &mut Async<f32>, in_f32: &mut [f32], out_f32: &mut [f32], ch: usize) -> usize {
    let at = SINC_LEN;
    let total = at + 3 * SINC_LEN;
    let (mut pos_in, mut pos_out) = (0usize, 0usize);
    let (mut best, mut best_at) = (0.0f32, 0usize);
    let out_frames = out_f32.len() / ch;
    while pos_out < total {
        let need = rs.input_frames_next();
        for (i, frame) in in_f32[..need * ch].chunks_exact_mut(ch).enumerate() {
            frame.fill(0.0);
            if pos_in + i == at {
                frame[0] = 1.0;
            }
        }
        pos_in += need;
        let input = InterleavedSlice::new(&in_f32[..need * ch], ch, need).expect("sized");
        let mut output =
            InterleavedSlice::new_mut(&mut out_f32[..], ch, out_frames).expect("sized");
        let (_, produced) = rs
            .process_into_buffer(&input, &mut output, None)
            .expect("sized");
        for (i, frame) in out_f32[..produced * ch].chunks_exact(ch).enumerate() {
            if frame[0].abs() > best {
                best = frame[0].abs();
                best_at = pos_out + i;
            }
        }
        pos_out += produced;
    }
    best_at.saturating_sub(at)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::testutil::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    /// Runs a 1 kHz tone at 48 kHz (f32) through a resampler: `m0` frames at ratio 1, then
    /// `m1` at `r`, in pulls of 240 frames. Returns the output.
    fn tone_through(m0: usize, m1: usize, r: f64) -> Vec<f32> {
        let fmt = SampleFormat::F32;
        let mut rs = AdaptiveResampler::new(fmt, 1);
        let mut pos = 0usize;
        let mut out = vec![0u8; 240 * 4];
        let mut y = Vec::with_capacity(m0 + m1);
        let mut pull = |buf: &mut [u8]| {
            for b in buf.chunks_exact_mut(4) {
                fmt.encode(tone(1000.0, 48_000.0, pos as f64), b);
                pos += 1;
            }
            buf.len() / 4
        };
        while y.len() < m0 + m1 {
            let ratio = if y.len() < m0 { 1.0 } else { r };
            assert_eq!(rs.process(ratio, &mut pull, &mut out), 240);
            y.extend(out.chunks_exact(4).map(|b| fmt.decode(b)));
        }
        y
    }

    #[test]
    fn drift_resampler_tone_at_ratio_1_0001_is_clean_and_continuous() {
        let r = 1.0001;
        let (m0, m1) = (24_000, 96_000);
        let y = tone_through(m0, m1, r);
        // before engagement: the input itself
        for (m, v) in y[..m0].iter().enumerate() {
            assert_eq!(*v, tone(1000.0, 48_000.0, m as f64));
        }
        // after: the tone at input position p(m), exactly as rubato steps through it (the
        // ratio ramps from 1 to r across the first chunk), including the switch-over
        let c = CHUNK_FRAMES as f64;
        let inc = (1.0 / r - 1.0) / c;
        let p = |k: f64| {
            if k < c - 1.0 {
                k + inc * (k + 1.0) * (k + 2.0) / 2.0
            } else {
                k / r + (1.0 / r - 1.0) * (3.0 - c) / 2.0
            }
        };
        let (mut sig, mut noise, mut max_err) = (0.0f64, 0.0f64, 0.0f64);
        for (k, v) in y[m0..].iter().enumerate() {
            let reference = tone(1000.0, 48_000.0, m0 as f64 + p(k as f64)) as f64;
            let e = *v as f64 - reference;
            sig += reference * reference;
            noise += e * e;
            max_err = max_err.max(e.abs());
        }
        let snr = 10.0 * (sig / noise).log10();
        // the fitted tone lines up with the model: same amplitude, no time offset
        let w = 2.0 * std::f64::consts::PI * 1000.0 / 48_000.0;
        let (mut ss, mut sc, mut cc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (k, v) in y[m0..].iter().enumerate() {
            let (s, c) = (w * (m0 as f64 + p(k as f64))).sin_cos();
            let v = *v as f64;
            (ss, sc, cc, ys, yc) = (ss + s * s, sc + s * c, cc + c * c, ys + v * s, yc + v * c);
        }
        let det = ss * cc - sc * sc;
        let (a, b) = ((ys * cc - yc * sc) / det, (yc * ss - ys * sc) / det);
        let (amplitude, offset) = ((a * a + b * b).sqrt(), b.atan2(a) / w);
        // frequency from the zero crossings (upward), by linear interpolation
        let tail = &y[m0 + 4800..];
        let mut crossings = Vec::new();
        for i in 1..tail.len() {
            let (a, b) = (tail[i - 1] as f64, tail[i] as f64);
            if a < 0.0 && b >= 0.0 {
                crossings.push(i as f64 - 1.0 + a / (a - b));
            }
        }
        let periods = (crossings.len() - 1) as f64;
        let freq = 48_000.0 * periods / (crossings[crossings.len() - 1] - crossings[0]);
        eprintln!(
            "ratio {r}: SNR {snr:.1} dB, max error {max_err:.2e}, frequency {freq:.4} Hz, \
             amplitude {amplitude:.7}, offset {offset:.2e} frames"
        );
        assert!(snr > 100.0, "SNR {snr} dB");
        // no click anywhere, the switch-over included (a sample of f32 at 0.5 is 3e-8)
        assert!(max_err < 1e-5, "max error {max_err}");
        assert!((amplitude - 0.5).abs() < 1e-5, "amplitude {amplitude}");
        assert!(offset.abs() < 1e-4, "offset {offset} frames");
        assert!((freq - 1000.0 / r).abs() < 0.005, "frequency {freq}");
    }

    #[test]
    fn drift_resampler_at_ratio_one_is_bit_exact() {
        let fmt = SampleFormat::S24;
        let fb = 2 * 3;
        let mut rng = StdRng::seed_from_u64(5);
        let input: Vec<u8> = (0..fb * 50_000).map(|_| rng.random::<u8>()).collect();
        let mut rs = AdaptiveResampler::new(fmt, 2);
        let mut pos = 0;
        let mut output = Vec::new();
        let mut out = vec![0u8; fb * 1000];
        let mut i = 0;
        while output.len() + out.len() <= input.len() {
            // ratios within the 1 ppm hysteresis never engage
            let ratio = [1.0, 1.0 + 0.9e-6, 1.0 - 0.5e-6][i % 3];
            let n = 1 + (rng.random::<u64>() % 999) as usize;
            let o = &mut out[..n * fb];
            let written = rs.process(
                ratio,
                |buf: &mut [u8]| {
                    buf.copy_from_slice(&input[pos..pos + buf.len()]);
                    pos += buf.len();
                    buf.len() / fb
                },
                o,
            );
            assert_eq!(written, n);
            output.extend_from_slice(o);
            i += 1;
        }
        assert!(!rs.is_engaged());
        assert_eq!(rs.buffered_input_frames(), 0.0);
        assert_eq!(output[..], input[..output.len()]);
    }

    #[test]
    fn drift_resamplers_of_substreams_consume_alike() {
        let mut mono = AdaptiveResampler::new(SampleFormat::S16, 1);
        let mut stereo = AdaptiveResampler::new(SampleFormat::S24, 2);
        let (mut a, mut b) = (0usize, 0usize);
        let mut out1 = vec![0u8; 2 * 240];
        let mut out2 = vec![0u8; 6 * 240];
        for i in 0..2000 {
            let ratio = 1.0 + 300e-6 * ((i as f64) / 100.0).sin();
            mono.process(
                ratio,
                |buf: &mut [u8]| {
                    a += buf.len() / 2;
                    buf.len() / 2
                },
                &mut out1,
            );
            stereo.process(
                ratio,
                |buf: &mut [u8]| {
                    b += buf.len() / 6;
                    buf.len() / 6
                },
                &mut out2,
            );
            assert_eq!(a, b);
            assert_eq!(mono.buffered_input_frames(), stereo.buffered_input_frames());
        }
        // and the consumption follows the ratio: held frames stay about the filter's look-ahead
        let held = mono.buffered_input_frames();
        assert!(
            held > 0.0 && held < (SINC_LEN + 2 * CHUNK_FRAMES) as f64,
            "held {held}"
        );
    }
}
