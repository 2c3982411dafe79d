//! Clock drift compensation: estimate how fast the sender's media clock runs against the
//! playout clock, and resample adaptively so the jitter buffer stays at its target.
//!
//! Two sound cards never run at exactly the same rate: 10 to 100 ppm apart is normal, and
//! 50 ppm is 180 ms per hour. If the sender's clock is faster by `e` ppm, the jitter buffer
//! grows by `e x 1e-6 x rate` frames per second (and drains if it is slower). PAUSE/RESUME
//! would catch it eventually, audibly; this stage keeps the buffer level instead, with pitch
//! changes far below what anyone can hear (1000 ppm, the clamp, is 1.7 cents).
//!
//! Two independent pieces, composed by the caller:
//!
//! - [`DriftEstimator`] is fed the buffer occupancy every few ms. It estimates the drift by a
//!   least-squares slope over a sliding window of two minutes, and turns it into a resampling
//!   ratio with a PI controller on the low-pass filtered occupancy error, the drift estimate
//!   being the feed-forward term.
//! - [`AdaptiveResampler`] (one per substream) pulls wire frames from the buffer and produces
//!   output at that ratio with rubato's asynchronous sinc resampler. Until the first ratio
//!   more than [`ENGAGE_THRESHOLD`] away from 1 it is a bit-exact pass-through.
//!
//! ```text
//! jitter buffer ──pull──▶ AdaptiveResampler (ratio) ──▶ output
//!       │ occupancy                ▲
//!       └──────────▶ DriftEstimator┘
//! ```
//!
//! Both are sans-IO like the rest of the receiver: time comes in as
//! [`isostream_transport::time::Instant`], and nothing allocates after construction.

use isostream_media::SampleFormat;
use isostream_transport::time::Instant;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Adjustable, Async, FixedAsync, Resampler, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

/// Largest correction the controller applies, in ppm (|1/ratio - 1| <= 1000e-6). Ten times
/// the worst drift of consumer sound cards, and 1.7 cents of pitch: inaudible.
pub const MAX_CORRECTION_PPM: f64 = 1000.0;

/// Tuning of a [`DriftEstimator`]. [`DriftConfig::default`] documents the chosen values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DriftConfig {
    /// Time constant of the one-pole low-pass filter on the occupancy that the PI controller
    /// sees, in seconds. Averages network jitter and packetisation away; much shorter than
    /// the loop's time constant, so it adds no appreciable phase lag.
    pub filter_tau_s: f64,
    /// Width of one point of the regression window, in seconds: samples are averaged over it.
    pub bucket_s: f64,
    /// Points in the regression window (window length = `window_buckets x bucket_s`).
    pub window_buckets: usize,
    /// Span of data, in seconds, below which no drift estimate is made (it reads 0).
    pub min_span_s: f64,
    /// Proportional gain, in ppm of correction per ms of filtered occupancy error (beyond
    /// the deadband).
    pub kp_ppm_per_ms: f64,
    /// Integral gain, in ppm of correction per ms of error per second.
    pub ki_ppm_per_ms_s: f64,
    /// Occupancy errors smaller than this, in ms, are not corrected (P and I see
    /// `error - deadband`).
    pub deadband_ms: f64,
    /// Before the first correction, a filtered occupancy error larger than this, in ms,
    /// engages the controller.
    pub engage_error_ms: f64,
    /// Before the first correction, a drift estimate at least this large, in ppm, ...
    pub engage_min_ppm: f64,
    /// ... and at least this many standard errors of the estimate engages the controller.
    pub engage_sigmas: f64,
    /// Clamp of the total correction (feed-forward + P + I), in ppm.
    pub max_correction_ppm: f64,
}

impl Default for DriftConfig {
    /// The values and why:
    ///
    /// - `filter_tau_s` 2 s: jitter of a few ms, sampled every 5 ms, is left at a few
    ///   hundredths of a ms; 50 times faster than the loop.
    /// - window 240 x 0.5 s = 2 min: the standard error of a least-squares slope falls as
    ///   `T^-1.5`; with 5 ms of jitter two minutes give well under 1 ppm, and a full window
    ///   is reached within the "few minutes" the estimate may take. `min_span_s` 20 s.
    /// - `kp_ppm_per_ms` 10: the occupancy error decays as `d err/dt = -Kp x 1e-3 x err`
    ///   (1 ppm of correction moves the buffer by 1e-3 ms per s), a time constant of 100 s.
    ///   Slow enough that jitter left by the filter wobbles the ratio by well under 1 ppm, fast
    ///   enough that 10 ms of error are corrected with 100 ppm within minutes.
    /// - `ki_ppm_per_ms_s` 0.01: the closed loop is `s^2 + 1e-3 Kp s + 1e-3 Ki`, giving
    ///   `wn = 0.0032 rad/s` and damping 1.6 (overdamped, no overshoot to speak of). The
    ///   feed-forward carries the drift; the integrator only removes what the estimate misses.
    /// - `deadband_ms` 1: the natural wander of the filtered level stays inside it.
    /// - engagement (ratio leaves exactly 1.0, see [`DriftEstimator::ratio`]): a filtered
    ///   error beyond 5 ms, or an estimate of at least 5 ppm and 4 standard errors. A stream
    ///   without drift stays bit-exact; a drift too small to pass the test (a few ppm) is
    ///   caught by the error path within tens of minutes, long before it matters.
    /// - clamp [`MAX_CORRECTION_PPM`].
    fn default() -> Self {
        DriftConfig {
            filter_tau_s: 2.0,
            bucket_s: 0.5,
            window_buckets: 240,
            min_span_s: 20.0,
            kp_ppm_per_ms: 10.0,
            ki_ppm_per_ms_s: 0.01,
            deadband_ms: 1.0,
            engage_error_ms: 5.0,
            engage_min_ppm: 5.0,
            engage_sigmas: 4.0,
            max_correction_ppm: MAX_CORRECTION_PPM,
        }
    }
}

/// Estimates the sender's clock rate against the playout clock from the jitter buffer's
/// occupancy, and the resampling ratio that holds the occupancy at a target.
///
/// # Model
///
/// With the sender faster by `e` (relative) and the resampler consuming `1/ratio` input
/// frames per output frame, the occupancy moves by `rate x (e - (1/ratio - 1))` frames per
/// second. The estimator integrates its own correction, `c(t) = rate x integral(1/ratio - 1)`,
/// so `y = occupancy + c` rises at exactly `rate x e` whatever the controller does; the drift
/// is the least-squares slope of `y` over the window (points are 0.5 s averages). Time comes
/// from `now`; a difference between that clock and the sound card's affects the estimate
/// only to second order (ppm times ppm).
///
/// # Control
///
/// `correction = estimate + Kp x (err - deadband) + Ki x integral(err - deadband)`, with `err`
/// the low-pass filtered occupancy minus the target in ms, clamped to
/// `max_correction_ppm` (the integrator stops while clamped); `ratio = 1 / (1 + correction x
/// 1e-6)`. Until the controller engages (see [`DriftConfig`]) the correction is exactly 0 and
/// the ratio exactly 1.0.
///
/// # Contract
///
/// Call [`Self::update`] regularly (every few ms of playout, e.g. every pull) while playing,
/// and apply [`Self::ratio`] to the resamplers until the next update: the estimator assumes
/// its ratio is what was applied. Pass the occupancy including what the resamplers hold
/// ([`AdaptiveResampler::buffered_input_frames`]). After a discontinuity of the occupancy that
/// is not drift (PAUSE/RESUME, a resynchronisation), call [`Self::restart_window`].
///
/// Feed a smooth occupancy: if the buffer's end advances in packet-sized steps, add the
/// frames produced since the newest packet arrived (`rate x (now - its arrival)`, at most one
/// packet). Otherwise the packetisation sawtooth, sampled at a fixed interval, beats with the
/// packet clock into slow ramps (one cycle per `packet duration / drift`, 500 s for 5 ms
/// packets at 10 ppm) that bias the slope by up to `packet duration / window`.
#[derive(Clone, Debug)]
pub struct DriftEstimator {
    cfg: DriftConfig,
    rate: f64,
    origin: Option<Instant>,
    last: Option<Instant>,
    /// `rate x integral(1/ratio - 1) dt`, in frames.
    comp: f64,
    /// Low-pass filtered occupancy, in frames.
    filtered: Option<f64>,
    /// Current bucket: sums of t (s since origin), y (frames) and the sample count.
    acc_t: f64,
    acc_y: f64,
    acc_n: u32,
    bucket_end: f64,
    /// Ring of bucket means (t, y).
    pts: Vec<(f64, f64)>,
    head: usize,
    len: usize,
    estimate_ppm: f64,
    sigma_ppm: f64,
    have_estimate: bool,
    integral_ppm: f64,
    correction_ppm: f64,
    engaged: bool,
    ratio: f64,
}

impl DriftEstimator {
    /// An estimator for media at `rate` frames per second (Hz), with the default tuning.
    pub fn new(rate: u32) -> Self {
        Self::with_config(rate, DriftConfig::default())
    }

    /// An estimator for media at `rate` frames per second (Hz), with tuning `cfg`.
    pub fn with_config(rate: u32, cfg: DriftConfig) -> Self {
        DriftEstimator {
            cfg,
            rate: rate.max(1) as f64,
            origin: None,
            last: None,
            comp: 0.0,
            filtered: None,
            acc_t: 0.0,
            acc_y: 0.0,
            acc_n: 0,
            bucket_end: 0.0,
            pts: vec![(0.0, 0.0); cfg.window_buckets.max(3)],
            head: 0,
            len: 0,
            estimate_ppm: 0.0,
            sigma_ppm: f64::INFINITY,
            have_estimate: false,
            integral_ppm: 0.0,
            correction_ppm: 0.0,
            engaged: false,
            ratio: 1.0,
        }
    }

    /// Feeds one observation: at `now`, the buffer holds `occupancy` frames and should hold
    /// `target` frames. Updates [`Self::estimate_ppm`] and [`Self::ratio`].
    pub fn update(&mut self, now: Instant, occupancy: i64, target: i64) {
        let occ = occupancy as f64;
        let origin = *self.origin.get_or_insert(now);
        let dt = match self.last {
            Some(l) => (now - l).as_secs_f64(),
            None => 0.0,
        };
        self.last = Some(now);
        // the correction applied since the last update moved the occupancy by this much
        self.comp += self.rate * (1.0 / self.ratio - 1.0) * dt;
        let t = (now - origin).as_secs_f64();

        // the regression window
        if self.acc_n == 0 {
            self.bucket_end = t + self.cfg.bucket_s;
        }
        self.acc_t += t;
        self.acc_y += occ + self.comp;
        self.acc_n += 1;
        if t >= self.bucket_end {
            let n = self.acc_n as f64;
            let cap = self.pts.len();
            self.pts[self.head] = (self.acc_t / n, self.acc_y / n);
            self.head = (self.head + 1) % cap;
            self.len = (self.len + 1).min(cap);
            self.acc_t = 0.0;
            self.acc_y = 0.0;
            self.acc_n = 0;
            self.regress();
        }

        // the filtered level
        let f = match self.filtered {
            None => occ,
            Some(f) => f + (1.0 - (-dt / self.cfg.filter_tau_s).exp()) * (occ - f),
        };
        self.filtered = Some(f);
        let err_ms = (f - target as f64) * 1000.0 / self.rate;

        if !self.engaged {
            let significant = self.have_estimate
                && self.estimate_ppm.abs() >= self.cfg.engage_min_ppm
                && self.estimate_ppm.abs() >= self.cfg.engage_sigmas * self.sigma_ppm;
            self.engaged = err_ms.abs() > self.cfg.engage_error_ms || significant;
        }
        if !self.engaged {
            self.correction_ppm = 0.0;
            self.ratio = 1.0;
            return;
        }
        let e = if err_ms > self.cfg.deadband_ms {
            err_ms - self.cfg.deadband_ms
        } else if err_ms < -self.cfg.deadband_ms {
            err_ms + self.cfg.deadband_ms
        } else {
            0.0
        };
        let ff = if self.have_estimate {
            self.estimate_ppm
        } else {
            0.0
        };
        let max = self.cfg.max_correction_ppm;
        let integral = (self.integral_ppm + self.cfg.ki_ppm_per_ms_s * e * dt).clamp(-max, max);
        let raw = ff + self.cfg.kp_ppm_per_ms * e + integral;
        // conditional integration: no winding up while the output is clamped
        if raw.abs() <= max || (integral.abs() < self.integral_ppm.abs()) {
            self.integral_ppm = integral;
        }
        self.correction_ppm =
            (ff + self.cfg.kp_ppm_per_ms * e + self.integral_ppm).clamp(-max, max);
        self.ratio = 1.0 / (1.0 + self.correction_ppm * 1e-6);
    }

    /// Least-squares slope of the window, and its standard error.
    fn regress(&mut self) {
        let cap = self.pts.len();
        let n = self.len;
        let first = (self.head + cap - n) % cap;
        let span = self.pts[(self.head + cap - 1) % cap].0 - self.pts[first].0;
        if n < 3 || span < self.cfg.min_span_s {
            return;
        }
        let it = (0..n).map(|i| self.pts[(first + i) % cap]);
        let (mut st, mut sy) = (0.0, 0.0);
        for (t, y) in it.clone() {
            st += t;
            sy += y;
        }
        let (mt, my) = (st / n as f64, sy / n as f64);
        let (mut sxx, mut sxy) = (0.0, 0.0);
        for (t, y) in it.clone() {
            sxx += (t - mt) * (t - mt);
            sxy += (t - mt) * (y - my);
        }
        if sxx <= 0.0 {
            return;
        }
        let slope = sxy / sxx;
        let mut ss = 0.0;
        for (t, y) in it {
            let r = y - my - slope * (t - mt);
            ss += r * r;
        }
        let se = (ss / (n as f64 - 2.0) / sxx).sqrt();
        self.estimate_ppm = slope / self.rate * 1e6;
        self.sigma_ppm = se / self.rate * 1e6;
        self.have_estimate = true;
    }

    /// Forgets the occupancy history after a discontinuity that is not drift (PAUSE/RESUME,
    /// a resynchronisation, a skip after an underrun). The current estimate, integrator and
    /// ratio stay, so the output does not jump; a new estimate follows once the window has
    /// [`DriftConfig::min_span_s`] of data again.
    pub fn restart_window(&mut self) {
        self.len = 0;
        self.head = 0;
        self.acc_n = 0;
        self.acc_t = 0.0;
        self.acc_y = 0.0;
        self.filtered = None;
    }

    /// The estimated rate of the sender's media clock relative to the playout clock, in ppm:
    /// positive when the sender is faster (the buffer would grow). 0 until the window holds
    /// [`DriftConfig::min_span_s`] of data.
    pub fn estimate_ppm(&self) -> f64 {
        self.estimate_ppm
    }

    /// Standard error of [`Self::estimate_ppm`], in ppm (infinite before the first estimate;
    /// optimistic when the jitter is correlated over seconds).
    pub fn estimate_sigma_ppm(&self) -> f64 {
        self.sigma_ppm
    }

    /// The resampling ratio to apply until the next update, in output frames per input frame
    /// (below 1 consumes the buffer faster). Exactly 1.0 until the controller engages.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The correction behind [`Self::ratio`], in ppm (`ratio = 1 / (1 + correction x 1e-6)`):
    /// positive when the buffer is consumed faster than the playout rate.
    pub fn correction_ppm(&self) -> f64 {
        self.correction_ppm
    }

    /// The low-pass filtered occupancy, in frames (`None` before the first update). A caller
    /// can take it as the target a few seconds into playback, so that a stream without
    /// drift never needs a correction.
    pub fn filtered_occupancy(&self) -> Option<f64> {
        self.filtered
    }

    /// Whether the controller has engaged (the ratio has left exactly 1.0); it stays engaged.
    pub fn is_engaged(&self) -> bool {
        self.engaged
    }
}

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
/// drift, whose [`DriftEstimator`] never engages, therefore stays bit-exact end to end.
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
/// them to the occupancy fed to the [`DriftEstimator`].
///
/// Substreams played by one clock stay sample-aligned if their resamplers are called with the
/// same ratios and output lengths: they then engage on the same call and consume alike.
#[derive(Debug)]
pub struct AdaptiveResampler {
    format: SampleFormat,
    channels: usize,
    frame_bytes: usize,
    rs: Async<f32>,
    /// Rubato's delay at ratio 1, in frames (measured at construction).
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
    /// # Panics
    ///
    /// If `channels` is 0.
    pub fn new(format: SampleFormat, channels: u16) -> Self {
        assert!(channels > 0, "a resampler needs at least one channel");
        let ch = channels as usize;
        let params = SincInterpolationParameters::new(SINC_LEN, WindowFunction::BlackmanHarris2)
            .oversampling_factor(OVERSAMPLING)
            .interpolation(SincInterpolationType::Cubic);
        let mut rs = Async::<f32>::new_sinc(
            1.0,
            MAX_RELATIVE_RATIO,
            &params,
            CHUNK_FRAMES,
            ch,
            FixedAsync::Output,
        )
        .expect("valid resampler parameters");
        let in_max = rs.input_frames_max();
        let out_max = rs.output_frames_max();
        let mut in_f32 = vec![0.0f32; in_max * ch];
        let mut out_f32 = vec![0.0f32; out_max * ch];
        let delay = measure_delay(&mut rs, &mut in_f32, &mut out_f32, ch);
        rs.reset();
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
            rs,
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
        self.rs.reset();
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
    /// unchanged. Nothing allocates.
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
        self.rs.reset();
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
        let fb = self.frame_bytes;
        let ch = self.channels;
        let before = self.rs.resample_ratio();
        // in range by construction and by the clamp in `process`
        if self.skip_left > CHUNK_FRAMES {
            // priming, all but the last chunk: step back by rubato's sub-sample lead
            let _ = self.rs.set_resample_ratio(self.prime_ratio, false);
        } else if self.skip_left > 0 {
            // the last priming chunk at exactly 1, so the ramp starts from 1
            let _ = self.rs.set_resample_ratio(1.0, false);
        } else if self.rs.resample_ratio() != self.target {
            let _ = self.rs.set_resample_ratio(self.target, true);
        }
        let need = self.rs.input_frames_next();
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
        let (_, produced) = self
            .rs
            .process_into_buffer(&input, &mut output, None)
            .expect("buffers sized by the resampler's own maxima");
        let after = self.rs.resample_ratio();
        self.out_step = 0.5 * (1.0 / before + 1.0 / after);
        let skip = self.skip_left.min(produced);
        self.skip_left -= skip;
        self.out_pos = skip;
        self.out_len = produced;
    }
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
    use isostream_transport::time::Duration;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    const RATE: u32 = 8_000;
    /// Frames per packet and per pull (5 ms at 8 kHz).
    const STEP: u64 = 40;
    const STEP_NS: u64 = 5_000_000;

    /// The network side of the loop: a sender whose clock runs `ppm` fast sends 5 ms packets;
    /// each arrives after 20 ms plus uniform jitter of up to `jitter_ms`. `end` is one past
    /// the highest frame received, as in the jitter buffer.
    struct Net {
        speed: f64,
        jitter_ns: f64,
        next_pkt: u64,
        in_flight: BinaryHeap<Reverse<(u64, i64)>>,
        end: i64,
        /// When `end` last moved.
        end_at: u64,
        rng: StdRng,
    }

    impl Net {
        fn new(ppm: f64, jitter_ms: f64, seed: u64) -> Self {
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
        fn advance(&mut self, now: u64) {
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
        fn smooth_end(&self, now: u64) -> i64 {
            let since = (now - self.end_at.min(now)) * RATE as u64 / 1_000_000_000;
            self.end + since.min(STEP) as i64
        }
    }

    struct LoopResult {
        /// Largest |estimate - truth| after convergence, ppm.
        est_err_max: f64,
        /// Largest |occupancy - target| after convergence, ms.
        occ_dev_max_ms: f64,
        underruns: u64,
        engaged: bool,
        ratio_always_one: bool,
    }

    const START_FRAMES: i64 = 480; // 60 ms: playback starts when this much has arrived
    const LATCH_S: f64 = 10.0; // the target is the filtered level this long into playback
    const CONVERGED_S: f64 = 180.0;

    /// The arithmetic loop: the playout clock consumes `STEP / ratio` input frames every
    /// 5 ms (no audio, no rubato), for `secs` of simulated time.
    fn run_loop(ppm: f64, secs: u64, seed: u64) -> LoopResult {
        let mut net = Net::new(ppm, 12.0, seed);
        let mut est = DriftEstimator::new(RATE);
        let mut read = 0.0f64;
        let mut start: Option<u64> = None;
        let mut target: Option<i64> = None;
        let mut res = LoopResult {
            est_err_max: 0.0,
            occ_dev_max_ms: 0.0,
            underruns: 0,
            engaged: false,
            ratio_always_one: true,
        };
        let mut now = 0u64;
        while now < secs * 1_000_000_000 {
            now += STEP_NS;
            net.advance(now);
            let Some(t0) = start else {
                if net.end >= START_FRAMES {
                    start = Some(now);
                }
                continue;
            };
            let ratio = est.ratio();
            res.ratio_always_one &= ratio == 1.0;
            read += STEP as f64 / ratio;
            if read > net.end as f64 {
                res.underruns += 1;
            }
            let occ = net.smooth_end(now) - read.floor() as i64;
            let played_s = (now - t0) as f64 / 1e9;
            let tgt = match target {
                Some(t) => t,
                None => {
                    let f = est.filtered_occupancy().map_or(occ, |f| f.round() as i64);
                    if played_s >= LATCH_S {
                        target = Some(f);
                    }
                    f
                }
            };
            est.update(Instant::from_nanos(now), occ, tgt);
            if played_s >= CONVERGED_S {
                res.est_err_max = res.est_err_max.max((est.estimate_ppm() - ppm).abs());
                let dev = (occ - tgt).abs() as f64 * 1000.0 / RATE as f64;
                res.occ_dev_max_ms = res.occ_dev_max_ms.max(dev);
            }
        }
        res.engaged = est.is_engaged();
        res
    }

    #[test]
    fn drift_estimate_converges_and_holds_the_buffer_for_an_hour() {
        for (i, ppm) in [100.0, -100.0, 50.0].into_iter().enumerate() {
            let r = run_loop(ppm, 3600, 7 + i as u64);
            eprintln!(
                "{ppm:+} ppm: estimate error <= {:.2} ppm, buffer within {:.1} ms after {CONVERGED_S} s",
                r.est_err_max, r.occ_dev_max_ms
            );
            assert!(r.engaged);
            assert_eq!(r.underruns, 0, "{ppm} ppm");
            assert!(
                r.est_err_max < 5.0,
                "{ppm} ppm: estimate off by {}",
                r.est_err_max
            );
            assert!(
                r.occ_dev_max_ms < 20.0,
                "{ppm} ppm: buffer {} ms off target",
                r.occ_dev_max_ms
            );
        }
    }

    #[test]
    fn drift_free_stream_keeps_the_ratio_exactly_one_for_an_hour() {
        let r = run_loop(0.0, 3600, 11);
        eprintln!(
            "0 ppm: estimate error <= {:.2} ppm, buffer within {:.1} ms",
            r.est_err_max, r.occ_dev_max_ms
        );
        assert!(!r.engaged);
        assert!(r.ratio_always_one);
        assert!(r.est_err_max < 5.0);
        assert_eq!(r.underruns, 0);
    }

    #[test]
    fn drift_controller_clamps_its_correction() {
        let mut est = DriftEstimator::new(48_000);
        let mut now = Instant::ZERO;
        for _ in 0..2000 {
            now += Duration::from_millis(5);
            // a buffer 500 ms over target
            est.update(now, 48_000, 24_000);
        }
        assert!(est.is_engaged());
        assert!((est.correction_ppm() - MAX_CORRECTION_PPM).abs() < 1e-9);
        assert!((est.ratio() - 1.0 / (1.0 + MAX_CORRECTION_PPM * 1e-6)).abs() < 1e-12);
    }

    /// A tone at `pos` (input frames), amplitude 0.5.
    fn tone(freq: f64, rate: f64, pos: f64) -> f32 {
        (0.5 * (2.0 * std::f64::consts::PI * freq * pos / rate).sin()) as f32
    }

    #[test]
    fn drift_loop_through_the_resampler_holds_the_buffer() {
        // 5 minutes at 8 kHz mono S16, the sender 100 ppm slow: everything through rubato.
        let ppm = -100.0;
        let fmt = SampleFormat::S16;
        let mut net = Net::new(ppm, 12.0, 3);
        let mut est = DriftEstimator::new(RATE);
        let mut rs = AdaptiveResampler::new(fmt, 1);
        let mut read = 0i64;
        let mut underruns = 0u64;
        let mut out = vec![0u8; STEP as usize * 2];
        let mut start = None;
        let mut target = None;
        let mut prev = [0.0f32; 2];
        let mut max_d2 = 0.0f32;
        let mut dev_max = 0.0f64;
        let mut now = 0u64;
        while now < 300 * 1_000_000_000 {
            now += STEP_NS;
            net.advance(now);
            let Some(t0) = start else {
                if net.end >= START_FRAMES {
                    start = Some(now);
                }
                continue;
            };
            let end = net.end;
            rs.process(
                est.ratio(),
                |buf: &mut [u8]| {
                    for b in buf.chunks_exact_mut(2) {
                        if read < end {
                            fmt.encode(tone(440.0, RATE as f64, read as f64), b);
                        } else {
                            underruns += 1;
                            b.fill(0);
                        }
                        read += 1;
                    }
                    buf.len() / 2
                },
                &mut out,
            );
            for b in out.chunks_exact(2) {
                let y = fmt.decode(b);
                if now - t0 > 1_000_000_000 {
                    max_d2 = max_d2.max((y - 2.0 * prev[1] + prev[0]).abs());
                }
                prev = [prev[1], y];
            }
            let occ = net.smooth_end(now) - read + rs.buffered_input_frames().round() as i64;
            let played_s = (now - t0) as f64 / 1e9;
            let tgt = match target {
                Some(t) => t,
                None => {
                    let f = est.filtered_occupancy().map_or(occ, |f| f.round() as i64);
                    if played_s >= LATCH_S {
                        target = Some(f);
                    }
                    f
                }
            };
            est.update(Instant::from_nanos(now), occ, tgt);
            if played_s >= CONVERGED_S {
                dev_max = dev_max.max((occ - tgt).abs() as f64 * 1000.0 / RATE as f64);
            }
        }
        let w = 2.0 * std::f32::consts::PI * 440.0 / RATE as f32;
        eprintln!(
            "through rubato: estimate {:.2} ppm (truth {ppm}), buffer within {dev_max:.1} ms, \
             max |d2| {max_d2:.4} (tone {:.4})",
            est.estimate_ppm(),
            0.5 * w * w
        );
        assert!(rs.is_engaged());
        assert_eq!(underruns, 0);
        assert!((est.estimate_ppm() - ppm).abs() < 5.0);
        assert!(dev_max < 20.0);
        // no click: the second difference never exceeds the tone's own (plus quantisation)
        assert!(
            max_d2 < 0.5 * w * w * 1.01 + 4.0 / 32_768.0,
            "max |d2| {max_d2}"
        );
    }

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
