//! The drift estimator: the sender's clock rate against the playout clock, from the jitter
//! buffer's occupancy, and the resampling ratio that holds the occupancy at its target.

use isostream_transport::time::Instant;

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
/// ([`AdaptiveResampler::buffered_input_frames`](super::AdaptiveResampler::buffered_input_frames)).
/// After a discontinuity of the occupancy that is not drift (PAUSE/RESUME, a
/// resynchronisation), call [`Self::restart_window`].
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
#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::testutil::*;
    use isostream_transport::time::Duration;

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
}
