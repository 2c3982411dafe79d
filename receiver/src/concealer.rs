//! Loss repair at the playout deadline: interpolation of short holes and concealment of
//! longer ones.
//!
//! The [`Concealer`] sees the output stream chunk by chunk, as wire frames (interleaved
//! channels, big-endian samples in the stream's [`SampleFormat`]), with a presence flag per
//! frame. Whatever is still missing when a chunk is due is repaired in place:
//!
//! * **Short holes** — runs of at most [`MAX_INTERPOLATED_RUN`] missing frames, typically
//!   every `D`-th frame left by a lost packet at interleave depth `D` — are *interpolated*
//!   per channel by a polynomial through the nearest real frames: up to two on each side
//!   (cubic Lagrange), falling back to quadratic, linear, or holding the only neighbour.
//!   Cubic, because with two real neighbours on each side it is the highest order those
//!   points determine, and its error shrinks with the fourth power of frequency: a single
//!   missing frame of a 1 kHz tone at 48 kHz comes back within 5e-5 of its amplitude
//!   (-86 dB), against 9e-3 (-41 dB) for linear interpolation, and at 5 kHz within
//!   -31 dB against -14 dB. Catmull-Rom would need a uniform grid (a hole breaks it) and
//!   is less accurate (it is exact only up to quadratics); higher orders would need frames
//!   further away, which interleaving may also have removed.
//! * **Longer runs** are *concealed* by waveform repetition (as in ITU-T G.711 appendix I):
//!   the pitch period is found by normalised autocorrelation over the last
//!   [`HISTORY_MS`] ms of output, the last period is repeated (its wrap point smoothed by a
//!   short overlap-add so repetitions join without a click, and an offset ramp at the start
//!   so that it continues the last real sample), held at full level for [`HOLD_MS`] ms and
//!   then faded linearly to exact silence at [`DECAY_END_MS`] ms after the run started.
//!   When real audio resumes after a concealed run it is crossfaded in from the (still
//!   running) concealment over [`FADE_IN_MS`] ms. A concealed run may span any number of
//!   calls.
//!
//! Present frames are never changed, except for the [`FADE_IN_MS`] ms crossfade that
//! follows a concealed run.
//!
//! Everything is allocated in [`Concealer::new`]; [`Concealer::process`] does not allocate
//! and is safe to call from a real-time audio thread.

use isostream_media::{AudioSpec, SampleFormat};

/// Longest run of missing frames that is interpolated rather than concealed, in frames.
pub const MAX_INTERPOLATED_RUN: usize = 3;
/// How far back a second neighbour is looked for on each side of a short hole, in frames
/// (beyond the first, nearest neighbour).
pub const NEIGHBOUR_REACH: usize = 3;
/// Lookahead (in frames) that makes interpolation independent of how the stream is cut
/// into chunks: enough to see the end of any short hole and its two right neighbours.
pub const EXACT_LOOKAHEAD: usize = MAX_INTERPOLATED_RUN + NEIGHBOUR_REACH;
/// Output history remembered for pitch analysis, in milliseconds.
pub const HISTORY_MS: f32 = 40.0;
/// Shortest pitch period searched, in milliseconds (400 Hz).
pub const MIN_PERIOD_MS: f32 = 2.5;
/// Longest pitch period searched, in milliseconds (50 Hz; half of [`HISTORY_MS`]).
pub const MAX_PERIOD_MS: f32 = 20.0;
/// The highest rate the pitch search runs at, in Hz: faster streams are searched on a
/// decimated mix and refined at their own rate.
pub const PITCH_RATE: u32 = 48_000;
/// Concealment plays at full level for this long after a run starts, in milliseconds.
pub const HOLD_MS: f32 = 10.0;
/// Concealment has faded linearly to exact silence this long after a run starts, in
/// milliseconds.
pub const DECAY_END_MS: f32 = 60.0;
/// Crossfade from concealment back to real audio when a concealed run ends, in
/// milliseconds.
pub const FADE_IN_MS: f32 = 3.0;
/// Overlap-add at the wrap point of the repeated period, in milliseconds (at most half a
/// period).
pub const SEAM_MS: f32 = 1.0;
/// Duration of the offset ramp that joins the first concealed frame to the last real one,
/// in milliseconds.
pub const OFFSET_RAMP_MS: f32 = 2.0;

/// What one call of [`Concealer::process`] repaired, in frames (samples per channel).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConcealCounts {
    /// Missing frames filled by interpolation between real neighbours.
    pub interpolated: u64,
    /// Missing frames filled by waveform repetition (or silence once it has decayed).
    pub concealed: u64,
}

impl std::ops::AddAssign for ConcealCounts {
    fn add_assign(&mut self, o: Self) {
        self.interpolated += o.interpolated;
        self.concealed += o.concealed;
    }
}

/// How the current run of missing frames is being repaired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Not inside a run of missing frames.
    Idle,
    /// Inside a short hole with a real frame visible after it.
    Interpolate,
    /// Inside a concealed run.
    Conceal,
}

/// Repairs missing frames of one audio stream (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct Concealer {
    format: SampleFormat,
    channels: usize,
    frame_bytes: usize,
    sample_bytes: usize,

    // durations converted to frames
    min_lag: usize,
    max_lag: usize,
    /// Frames of the stream per sample of the pitch search's mix (1 up to [`PITCH_RATE`]).
    decimation: usize,
    hold: usize,
    decay_end: usize,
    fade_len: usize,
    seam_len: usize,
    ramp_len: usize,

    // ring of the last `hist_cap` output frames, decoded, interleaved by channel
    hist: Vec<f32>,
    hist_real: Vec<bool>,
    hist_cap: usize,
    hist_head: usize,
    hist_len: usize,
    // scratch: mono mix of the history for pitch analysis
    mono: Vec<f32>,
    // scratch: the mix split by parity (even samples, then odd) for the coarse search
    parity: Vec<f32>,

    // waveform-repetition generator
    template: Vec<f32>,
    period: usize,
    offset: Vec<f32>,
    phase: usize,
    decay_t: usize,
    gen_active: bool,
    gen_out: Vec<f32>,

    // the current run and the fade-in after a concealed run
    mode: Mode,
    run_done: usize,
    fading: bool,
    fade_pos: usize,
}

fn ms_to_frames(rate: u32, ms: f32) -> usize {
    ((rate as f32 * ms / 1000.0).round() as usize).max(1)
}

impl Concealer {
    /// What [`Concealer::new`] allocates for `spec`, in bytes.
    pub fn memory_bytes(spec: AudioSpec) -> usize {
        let channels = spec.channels as usize;
        let hist_cap = ms_to_frames(spec.rate, HISTORY_MS).max(16);
        let f = std::mem::size_of::<f32>();
        // history and template per channel; realness flags and the mono mix per frame; the
        // mix split by parity; two frames of state
        hist_cap * channels * f * 2 + hist_cap * (1 + f) + (hist_cap + 1) * f + channels * f * 2
    }

    /// A concealer for a stream of `spec`; allocates all its buffers (about
    /// [`HISTORY_MS`] ms of decoded audio).
    pub fn new(spec: AudioSpec) -> Self {
        let channels = spec.channels as usize;
        let rate = spec.rate;
        let hist_cap = ms_to_frames(rate, HISTORY_MS).max(16);
        let max_lag = ms_to_frames(rate, MAX_PERIOD_MS).min(hist_cap / 2);
        let min_lag = ms_to_frames(rate, MIN_PERIOD_MS).min(max_lag);
        Concealer {
            format: spec.format,
            channels,
            frame_bytes: spec.frame_bytes(),
            sample_bytes: spec.format.bytes(),
            min_lag,
            max_lag,
            decimation: (rate as usize).div_ceil(PITCH_RATE as usize).max(1),
            hold: ms_to_frames(rate, HOLD_MS),
            decay_end: ms_to_frames(rate, DECAY_END_MS),
            fade_len: ms_to_frames(rate, FADE_IN_MS),
            seam_len: ms_to_frames(rate, SEAM_MS),
            ramp_len: ms_to_frames(rate, OFFSET_RAMP_MS),
            hist: vec![0.0; hist_cap * channels],
            hist_real: vec![false; hist_cap],
            hist_cap,
            hist_head: 0,
            hist_len: 0,
            mono: vec![0.0; hist_cap],
            parity: vec![0.0; hist_cap + 1],
            template: vec![0.0; hist_cap * channels],
            period: 0,
            offset: vec![0.0; channels],
            phase: 0,
            decay_t: 0,
            gen_active: false,
            gen_out: vec![0.0; channels],
            mode: Mode::Idle,
            run_done: 0,
            fading: false,
            fade_pos: 0,
        }
    }

    /// Forgets all history and any run or fade in progress (e.g. when a stream restarts).
    /// Allocates nothing.
    pub fn reset(&mut self) {
        self.hist_head = 0;
        self.hist_len = 0;
        self.period = 0;
        self.phase = 0;
        self.decay_t = 0;
        self.gen_active = false;
        self.mode = Mode::Idle;
        self.run_done = 0;
        self.fading = false;
        self.fade_pos = 0;
    }

    /// Repairs one chunk of output in place and returns what it did (in frames).
    ///
    /// `frames` holds `present.len()` wire frames; `present[i] == false` means frame `i` is
    /// missing (its bytes are undefined). The last `lookahead` frames are context only
    /// (future audio peeked from the jitter buffer): they are not modified, not counted and
    /// not remembered, and the caller passes them again in the next call. Everything before
    /// them is output: missing frames are filled, present frames are left alone except in
    /// the [`FADE_IN_MS`] ms crossfade after a concealed run.
    ///
    /// A short hole is interpolated only if a real frame after it is visible (in the chunk
    /// or the lookahead); otherwise it is concealed. With `lookahead >= `[`EXACT_LOOKAHEAD`]
    /// the output does not depend on how the stream is cut into chunks.
    ///
    /// If `frames` and `present` disagree, only the frames both describe are used
    /// (`min(present.len(), frames.len() / frame_bytes)`), and `lookahead` is capped to
    /// that; this never panics. Does not allocate.
    pub fn process(
        &mut self,
        frames: &mut [u8],
        present: &[bool],
        lookahead: usize,
    ) -> ConcealCounts {
        let mut counts = ConcealCounts::default();
        let fb = self.frame_bytes;
        if fb == 0 {
            return counts;
        }
        let total = present.len().min(frames.len() / fb);
        let out_frames = total - lookahead.min(total);

        // the first present frame at or after the current missing run (`total` if none),
        // found once per run rather than once per missing frame
        let mut run_end = 0;
        for i in 0..out_frames {
            if present[i] {
                if self.mode == Mode::Conceal {
                    self.fading = true;
                    self.fade_pos = 0;
                }
                self.mode = Mode::Idle;
                self.run_done = 0;
                if self.fading {
                    let w = self.fade_weight(0);
                    self.generate();
                    let f = &mut frames[i * fb..(i + 1) * fb];
                    for c in 0..self.channels {
                        let s = &mut f[c * self.sample_bytes..(c + 1) * self.sample_bytes];
                        let real = self.format.decode(s);
                        let y = w * real + (1.0 - w) * self.gen_out[c];
                        self.format.encode(y, s);
                    }
                    self.advance_fade();
                }
                self.push_history(i, frames, true);
                continue;
            }

            // missing frame: find where this run ends among the visible frames
            if run_end <= i {
                run_end = (i..total).find(|&k| present[k]).unwrap_or(total);
            }
            let end = (run_end < total).then_some(run_end);
            let run_len = self.run_done + end.map_or(total, |e| e) - i;
            let interpolable = end.is_some() && run_len <= MAX_INTERPOLATED_RUN;
            match self.mode {
                Mode::Idle | Mode::Interpolate if interpolable => self.mode = Mode::Interpolate,
                Mode::Conceal => {}
                _ => self.start_concealment(),
            }

            if self.mode == Mode::Interpolate {
                // `end` is Some: checked by `interpolable`
                let e = end.unwrap_or(i);
                self.interpolate(i, e, total, frames, present);
                if self.fading {
                    self.generate();
                    self.advance_fade();
                }
                counts.interpolated += 1;
            } else {
                self.generate();
                let f = &mut frames[i * fb..(i + 1) * fb];
                for c in 0..self.channels {
                    self.format
                        .encode(self.gen_out[c], &mut f[c * self.sample_bytes..]);
                }
                counts.concealed += 1;
            }
            self.run_done += 1;
            self.push_history(i, frames, false);
        }
        counts
    }

    fn advance_fade(&mut self) {
        self.fade_pos += 1;
        if self.fade_pos >= self.fade_len {
            self.fading = false;
            self.gen_active = false;
        }
    }

    /// Decoded sample of channel `c`, `back` frames ago (1 = most recent output frame).
    fn hist_at(&self, back: usize, c: usize) -> f32 {
        let idx = (self.hist_head + self.hist_cap - back) % self.hist_cap;
        self.hist[idx * self.channels + c]
    }

    fn hist_is_real(&self, back: usize) -> bool {
        back <= self.hist_len
            && self.hist_real[(self.hist_head + self.hist_cap - back) % self.hist_cap]
    }

    /// Remembers output frame `i` of `frames` (after repair) as the newest history frame.
    fn push_history(&mut self, i: usize, frames: &[u8], real: bool) {
        let f = &frames[i * self.frame_bytes..(i + 1) * self.frame_bytes];
        let base = self.hist_head * self.channels;
        for c in 0..self.channels {
            let v = self.format.decode(&f[c * self.sample_bytes..]);
            self.hist[base + c] = if v.is_finite() { v } else { 0.0 };
        }
        self.hist_real[self.hist_head] = real;
        self.hist_head = (self.hist_head + 1) % self.hist_cap;
        self.hist_len = (self.hist_len + 1).min(self.hist_cap);
    }

    /// Fills missing frame `i` (the `run_done`-th frame of its run) by polynomial
    /// interpolation through up to two real frames on each side; `e` is the first present
    /// frame after the run.
    fn interpolate(
        &mut self,
        i: usize,
        e: usize,
        total: usize,
        frames: &mut [u8],
        present: &[bool],
    ) {
        // positions relative to frame i, and where to read them
        #[derive(Clone, Copy)]
        enum Src {
            Hist(usize),
            Chunk(usize),
        }
        let mut xs = [0f32; 4];
        let mut src = [Src::Chunk(0); 4];
        let mut n = 0;

        // left: the frame before the run, then the nearest real one within reach before it
        let l0 = self.run_done + 1;
        if self.hist_is_real(l0) {
            xs[n] = -(l0 as f32);
            src[n] = Src::Hist(l0);
            n += 1;
            if let Some(l1) = (l0 + 1..=l0 + NEIGHBOUR_REACH).find(|&b| self.hist_is_real(b)) {
                xs[n] = -(l1 as f32);
                src[n] = Src::Hist(l1);
                n += 1;
            }
        }
        // right: the first present frame after the run, then the next present one within reach
        xs[n] = (e - i) as f32;
        src[n] = Src::Chunk(e);
        n += 1;
        if let Some(r1) = (e + 1..(e + 1 + NEIGHBOUR_REACH).min(total)).find(|&k| present[k]) {
            xs[n] = (r1 - i) as f32;
            src[n] = Src::Chunk(r1);
            n += 1;
        }

        // Lagrange weights for evaluation at x = 0
        let mut w = [0f32; 4];
        for j in 0..n {
            let mut num = 1.0f32;
            let mut den = 1.0f32;
            for m in 0..n {
                if m != j {
                    num *= -xs[m];
                    den *= xs[j] - xs[m];
                }
            }
            w[j] = num / den;
        }

        let fb = self.frame_bytes;
        let sb = self.sample_bytes;
        for c in 0..self.channels {
            let mut y = 0.0f32;
            for j in 0..n {
                let v = match src[j] {
                    Src::Hist(b) => self.hist_at(b, c),
                    Src::Chunk(k) => {
                        let v = self.format.decode(&frames[k * fb + c * sb..]);
                        let v = if v.is_finite() { v } else { 0.0 };
                        // inside a fade-in, use the value this frame will have when output
                        let w = self.fade_weight(k - i);
                        if w < 1.0 {
                            w * v + (1.0 - w) * self.gen_value(c, k - i)
                        } else {
                            v
                        }
                    }
                };
                y += w[j] * v;
            }
            self.format.encode(y, &mut frames[i * fb + c * sb..]);
        }
    }

    /// Starts concealing a run: analyses the history for its pitch period and prepares the
    /// repetition template.
    fn start_concealment(&mut self) {
        // a burst that resumes during the fade-in keeps decaying where it was
        let decay_t = if self.fading && self.gen_active {
            self.decay_t
        } else {
            0
        };
        self.mode = Mode::Conceal;
        self.fading = false;
        self.phase = 0;
        self.decay_t = decay_t;
        self.gen_active = true;
        let ch = self.channels;
        let n = self.hist_len;
        if n == 0 {
            self.period = 0; // nothing to repeat: silence
            return;
        }

        // Too little history to tell a pitch period: hold the last frame (period 1).
        let period = if n >= 2 * self.min_lag && self.max_lag >= self.min_lag {
            self.find_period(n)
        } else {
            1
        };
        self.period = period;

        // template[j] = history frame n - period + j, i.e. `period - j` frames back
        for j in 0..period {
            for c in 0..ch {
                self.template[j * ch + c] = self.hist_at(period - j, c);
            }
        }
        // Overlap-add the end of the period with the frames that precede its start, so
        // that the wrap from template[period-1] to template[0] is as smooth as the
        // original signal.
        let seam = self.seam_len.min(period / 2);
        let smoothed = n >= 2 * period && seam > 0;
        if smoothed {
            for k in 0..seam {
                let j = period - seam + k;
                let w = (k + 1) as f32 / (seam + 1) as f32;
                for c in 0..ch {
                    let earlier = self.hist_at(2 * period - j, c);
                    let t = &mut self.template[j * ch + c];
                    *t = (1.0 - w) * *t + w * earlier;
                }
            }
        }
        // Offset that makes the first concealed frame follow the last output frame as
        // template[0] follows its own predecessor; ramped out over `ramp_len`.
        for c in 0..ch {
            let pred = if smoothed {
                self.template[(period - 1) * ch + c]
            } else if n > period {
                self.hist_at(period + 1, c)
            } else {
                self.hist_at(1, c)
            };
            self.offset[c] = self.hist_at(1, c) - pred;
        }
    }

    /// Pitch period (frames) of the last `n` history frames by normalised
    /// autocorrelation: coarse search on every other lag and sample, then refined. Above
    /// [`PITCH_RATE`] the search runs on the mix decimated to at most that rate and is
    /// refined at the stream's rate, so its cost per missing run does not grow with the
    /// square of the rate (at 384 kHz it would be 64 times that at 48 kHz).
    fn find_period(&mut self, n: usize) -> usize {
        for t in 0..n {
            let back = n - t;
            let mut s = 0.0;
            for c in 0..self.channels {
                s += self.hist_at(back, c);
            }
            self.mono[t] = s;
        }
        let max_lag = self.max_lag.min(n / 2);
        let min_lag = self.min_lag.min(max_lag);
        let d = self.decimation;
        if d == 1 {
            return pitch_search(&self.mono[..n], min_lag, max_lag, &mut self.parity);
        }
        // the newest `nd * d` frames, `d` at a time
        let nd = n / d;
        let start = n - nd * d;
        let (md, parity) = self.parity.split_at_mut(nd);
        for (j, v) in md.iter_mut().enumerate() {
            *v = self.mono[start + j * d..start + (j + 1) * d].iter().sum();
        }
        let coarse = d * pitch_search(
            md,
            min_lag.div_ceil(d).min(max_lag / d),
            max_lag / d,
            parity,
        );
        // refined at the stream's rate within one decimated step
        let m = &self.mono[..n];
        let win = n - max_lag;
        let x0 = n - win;
        let xx = dot(&m[x0..], &m[x0..]);
        let (lo, hi) = (
            coarse.saturating_sub(d).max(min_lag),
            (coarse + d).min(max_lag),
        );
        refine(m, x0, xx, lo, hi, coarse.clamp(min_lag, max_lag))
    }

    /// Level of the concealment `t` frames after its run started: 1 during the hold, then
    /// linear to exactly 0 at the decay end.
    fn gain(&self, t: usize) -> f32 {
        if t < self.hold {
            1.0
        } else if t >= self.decay_end {
            0.0
        } else {
            (self.decay_end - t) as f32 / (self.decay_end - self.hold) as f32
        }
    }

    /// The concealment sample of channel `c`, `ahead` frames after the next one, without
    /// advancing the generator.
    fn gen_value(&self, c: usize, ahead: usize) -> f32 {
        let g = self.gain(self.decay_t.saturating_add(ahead));
        if !self.gen_active || self.period == 0 || g == 0.0 {
            return 0.0;
        }
        let phase = self.phase.wrapping_add(ahead);
        let j = phase % self.period;
        let ramp = if phase < self.ramp_len {
            1.0 - phase as f32 / self.ramp_len as f32
        } else {
            0.0
        };
        g * (self.template[j * self.channels + c] + self.offset[c] * ramp)
    }

    /// Weight of the real audio in the fade-in crossfade, `ahead` frames after the next
    /// frame (1 when not fading).
    fn fade_weight(&self, ahead: usize) -> f32 {
        if !self.fading {
            return 1.0;
        }
        ((self.fade_pos + ahead + 1) as f32 / (self.fade_len + 1) as f32).min(1.0)
    }

    /// Writes the next concealment frame into `gen_out` and advances the generator.
    fn generate(&mut self) {
        for c in 0..self.channels {
            self.gen_out[c] = self.gen_value(c, 0);
        }
        self.phase = self.phase.wrapping_add(1);
        self.decay_t = self.decay_t.saturating_add(1);
    }
}

/// The pitch search of [`Concealer::find_period`] on the mix `m` (newest sample last): the
/// lag in `min_lag..=max_lag` (frames) whose window correlates best with the newest window,
/// searched on every other lag and sample, then refined on the neighbouring lags. `parity`
/// is scratch of at least `m.len()` values.
fn pitch_search(m: &[f32], min_lag: usize, max_lag: usize, parity: &mut [f32]) -> usize {
    let n = m.len();
    let max_lag = max_lag.min(n / 2);
    let min_lag = min_lag.min(max_lag);
    let win = n - max_lag;
    // the coarse search takes every other sample: split the mix by parity, so that each
    // lag's window is a contiguous slice (x = m[t], y = m[t - lag], t = n - win, +2, ...)
    let (even, odd) = parity.split_at_mut(n.div_ceil(2));
    for (i, &v) in m.iter().enumerate() {
        if i.is_multiple_of(2) {
            even[i / 2] = v;
        } else {
            odd[i / 2] = v;
        }
    }
    let (even, odd) = (&even[..n.div_ceil(2)], &odd[..n / 2]);
    let x0 = n - win;
    let half = |start: usize| -> &[f32] {
        let (a, i) = if start.is_multiple_of(2) {
            (even, start / 2)
        } else {
            (odd, start / 2)
        };
        &a[i..i + win.div_ceil(2)]
    };
    // the window's own energy, the same for every lag (at each step the search uses)
    let (xx1, xx2) = (dot(&m[x0..], &m[x0..]), dot(half(x0), half(x0)));
    if xx1 <= 1e-12 && xx2 <= 1e-12 {
        // a silent window correlates with nothing: every lag would score alike
        return min_lag;
    }
    let mut best = min_lag;
    let mut best_score = f32::MIN;
    let xs = half(x0);
    let mut lag = min_lag;
    while lag <= max_lag {
        let ys = half(x0 - lag);
        let s = normalised(xx2, dot(xs, ys), dot(ys, ys));
        if s > best_score {
            best_score = s;
            best = lag;
        }
        lag += 2;
    }
    let (lo, hi) = (best.saturating_sub(1).max(min_lag), (best + 1).min(max_lag));
    refine(m, x0, xx1, lo, hi, best)
}

/// The lag in `lo..=hi` whose window (`m[x0 - lag..]`) correlates best, sample for sample,
/// with the newest window `m[x0..]` (of energy `xx`); `fallback` if none scores.
fn refine(m: &[f32], x0: usize, xx: f32, lo: usize, hi: usize, fallback: usize) -> usize {
    let n = m.len();
    let xs = &m[x0..];
    let mut refined = fallback;
    let mut refined_score = f32::MIN;
    for lag in lo..=hi {
        let ys = &m[x0 - lag..n - lag];
        let s = normalised(xx, dot(xs, ys), dot(ys, ys));
        if s > refined_score {
            refined_score = s;
            refined = lag;
        }
    }
    refined
}

/// A correlation `xy` normalised by the energies `xx` and `yy`; -1 when either is silent.
fn normalised(xx: f32, xy: f32, yy: f32) -> f32 {
    if xx <= 1e-12 || yy <= 1e-12 {
        -1.0
    } else {
        xy / (xx * yy).sqrt()
    }
}

/// Dot product of two equally long slices, in eight lanes so that it vectorises (the pitch
/// search's inner loop; the lanes' order of summation differs from a plain loop's only in
/// rounding).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    let tail: f32 = ar.iter().zip(br).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::f32::consts::TAU;

    const RATE: u32 = 48_000;

    fn spec(channels: u16, format: SampleFormat) -> AudioSpec {
        AudioSpec {
            rate: RATE,
            channels,
            format,
        }
    }

    /// Encodes `n` frames of `f(frame, channel)`.
    fn encode(spec: AudioSpec, n: usize, f: impl Fn(usize, usize) -> f32) -> Vec<u8> {
        let fb = spec.frame_bytes();
        let sb = spec.format.bytes();
        let mut out = vec![0u8; n * fb];
        for i in 0..n {
            for c in 0..spec.channels as usize {
                spec.format.encode(f(i, c), &mut out[i * fb + c * sb..]);
            }
        }
        out
    }

    fn decode(spec: AudioSpec, bytes: &[u8], i: usize, c: usize) -> f32 {
        spec.format
            .decode(&bytes[i * spec.frame_bytes() + c * spec.format.bytes()..])
    }

    /// Garbage in the bytes of missing frames, to prove they are not read.
    fn trash_missing(spec: AudioSpec, bytes: &mut [u8], present: &[bool]) {
        let fb = spec.frame_bytes();
        for (i, p) in present.iter().enumerate() {
            if !p {
                bytes[i * fb..(i + 1) * fb]
                    .iter_mut()
                    .for_each(|b| *b = 0x7F);
            }
        }
    }

    /// Runs the concealer over the whole stream as consecutive chunks of the given output
    /// sizes, each followed by up to `lookahead` frames of context.
    fn run_chunked(
        spec: AudioSpec,
        input: &[u8],
        present: &[bool],
        sizes: &[usize],
        lookahead: usize,
    ) -> (Vec<u8>, ConcealCounts) {
        let fb = spec.frame_bytes();
        let n = present.len();
        let mut c = Concealer::new(spec);
        let mut out = input.to_vec();
        let mut counts = ConcealCounts::default();
        let mut start = 0;
        for &size in sizes.iter().chain(std::iter::repeat(&n)) {
            if start >= n {
                break;
            }
            let end = (start + size).min(n);
            let la_end = (end + lookahead).min(n);
            // the caller's view: output frames then lookahead, lookahead still unrepaired
            let mut buf = out[start * fb..end * fb].to_vec();
            buf.extend_from_slice(&input[end * fb..la_end * fb]);
            let before_la = buf[(end - start) * fb..].to_vec();
            counts += c.process(&mut buf, &present[start..la_end], la_end - end);
            assert_eq!(
                &buf[(end - start) * fb..],
                &before_la[..],
                "lookahead modified"
            );
            out[start * fb..end * fb].copy_from_slice(&buf[..(end - start) * fb]);
            start = end;
        }
        (out, counts)
    }

    fn snr_db(
        spec: AudioSpec,
        reference: &[u8],
        test: &[u8],
        frames: std::ops::Range<usize>,
    ) -> f64 {
        let (mut sig, mut err) = (0f64, 0f64);
        for i in frames {
            for c in 0..spec.channels as usize {
                let r = decode(spec, reference, i, c) as f64;
                let t = decode(spec, test, i, c) as f64;
                sig += r * r;
                err += (r - t) * (r - t);
            }
        }
        10.0 * (sig / err.max(1e-30)).log10()
    }

    fn max_step(spec: AudioSpec, bytes: &[u8], frames: std::ops::Range<usize>) -> f32 {
        let mut m = 0f32;
        for i in frames {
            for c in 0..spec.channels as usize {
                m = m.max((decode(spec, bytes, i, c) - decode(spec, bytes, i - 1, c)).abs());
            }
        }
        m
    }

    fn tone(freq: f32) -> impl Fn(usize, usize) -> f32 {
        move |i, c| 0.5 * (TAU * freq * i as f32 / RATE as f32 + c as f32).sin()
    }

    /// 200 Hz periodic (fundamental plus two harmonics), not a pure sine.
    fn periodic_200hz(i: usize, c: usize) -> f32 {
        let p = TAU * 200.0 * i as f32 / RATE as f32 + 0.3 * c as f32;
        0.4 * p.sin() + 0.2 * (2.0 * p + 0.5).sin() + 0.1 * (3.0 * p + 1.0).sin()
    }

    #[test]
    fn every_4th_frame_missing_is_interpolated_above_40db() {
        for format in [SampleFormat::S16, SampleFormat::S24, SampleFormat::F32] {
            for channels in [1u16, 2, 8] {
                let sp = spec(channels, format);
                let n = 4802; // the last hole (4799) has two right neighbours
                let reference = encode(sp, n, tone(1000.0));
                let present: Vec<bool> = (0..n).map(|i| i % 4 != 3).collect();
                let mut input = reference.clone();
                trash_missing(sp, &mut input, &present);
                let (out, counts) = run_chunked(sp, &input, &present, &[240; 20], EXACT_LOOKAHEAD);
                assert_eq!(
                    counts,
                    ConcealCounts {
                        interpolated: 1200,
                        concealed: 0
                    }
                );
                let snr = snr_db(sp, &reference, &out, 0..n);
                assert!(snr > 40.0, "{format} x{channels}: SNR {snr:.1} dB");
                if format != SampleFormat::S16 {
                    assert!(
                        snr > 80.0,
                        "cubic should be far better than linear: {snr:.1} dB"
                    );
                }
                for i in (0..n).filter(|&i| present[i]) {
                    assert_eq!(
                        &out[i * sp.frame_bytes()..(i + 1) * sp.frame_bytes()],
                        &reference[i * sp.frame_bytes()..(i + 1) * sp.frame_bytes()]
                    );
                }
            }
        }
    }

    #[test]
    fn interleave_loss_pattern_depth_2_uses_real_neighbours() {
        // depth 2, one packet of each group lost: every other frame missing for 240 frames
        let sp = spec(2, SampleFormat::F32);
        let n = 2400;
        let reference = encode(sp, n, tone(1000.0));
        let present: Vec<bool> = (0..n)
            .map(|i| !(960..1440).contains(&i) || i % 2 == 0)
            .collect();
        let mut input = reference.clone();
        trash_missing(sp, &mut input, &present);
        let (out, counts) = run_chunked(sp, &input, &present, &[n], 0);
        assert_eq!(counts.interpolated, 240);
        assert_eq!(counts.concealed, 0);
        let snr = snr_db(sp, &reference, &out, 960..1440);
        assert!(snr > 60.0, "SNR {snr:.1} dB");
    }

    #[test]
    fn lost_interleaved_packet_is_repaired_end_to_end() {
        use isostream_transport::interleave::{frames_in_packet, gather, scatter};
        // depth 4, 240 frames per packet: one group is 20 ms; packet 2 of it is lost
        let sp = spec(2, SampleFormat::S24);
        let fb = sp.frame_bytes();
        let (depth, g) = (4, 960);
        let reference = encode(sp, 3 * g, tone(1000.0));
        let mut received = vec![0u8; 3 * g * fb];
        let mut present = vec![false; 3 * g];
        for group in 0..3 {
            let src = &reference[group * g * fb..(group + 1) * g * fb];
            let dst = &mut received[group * g * fb..(group + 1) * g * fb];
            for j in 0..depth {
                if group == 1 && j == 2 {
                    continue;
                }
                let mut pkt = vec![0u8; frames_in_packet(g, depth, j) * fb];
                gather(src, fb, depth, j, &mut pkt);
                scatter(
                    &pkt,
                    fb,
                    depth,
                    j,
                    dst,
                    &mut present[group * g..(group + 1) * g],
                )
                .unwrap();
            }
        }
        let (out, counts) = run_chunked(sp, &received, &present, &[240; 12], EXACT_LOOKAHEAD);
        assert_eq!(
            counts,
            ConcealCounts {
                interpolated: 240,
                concealed: 0
            }
        );
        let snr = snr_db(sp, &reference, &out, g..2 * g);
        assert!(snr > 60.0, "SNR {snr:.1} dB");
    }

    #[test]
    fn gap_20ms_in_200hz_is_concealed_smoothly() {
        for format in [SampleFormat::S16, SampleFormat::F32] {
            let sp = spec(2, format);
            let n = 9600; // 200 ms
            let (gap_start, gap_len) = (4800, 960); // 100 ms in, 20 ms long
            let reference = encode(sp, n, periodic_200hz);
            let present: Vec<bool> = (0..n)
                .map(|i| !(gap_start..gap_start + gap_len).contains(&i))
                .collect();
            let mut input = reference.clone();
            trash_missing(sp, &mut input, &present);
            let (out, counts) = run_chunked(sp, &input, &present, &[240; 40], 48);
            assert_eq!(
                counts,
                ConcealCounts {
                    interpolated: 0,
                    concealed: gap_len as u64
                }
            );

            let natural = max_step(sp, &reference, 1..n);
            let edge_in = max_step(sp, &out, gap_start - 10..gap_start + 200);
            let edge_out = max_step(
                sp,
                &out,
                gap_start + gap_len - 200..gap_start + gap_len + 300,
            );
            assert!(
                edge_in <= 1.5 * natural,
                "{format}: step at gap start {edge_in} vs natural {natural}"
            );
            assert!(
                edge_out <= 1.5 * natural,
                "{format}: step at gap end {edge_out} vs natural {natural}"
            );

            // the first 10 ms of the gap carry the waveform, close to the lost one
            let first = gap_start..gap_start + 480;
            let rms = |b: &[u8]| {
                (first
                    .clone()
                    .map(|i| (decode(sp, b, i, 0) as f64).powi(2))
                    .sum::<f64>()
                    / 480.0)
                    .sqrt()
            };
            assert!(
                rms(&out) > 0.8 * rms(&reference),
                "{format}: concealment too quiet"
            );
            let snr = snr_db(sp, &reference, &out, first.clone());
            assert!(
                snr > 15.0,
                "{format}: repetition should track a periodic signal: {snr:.1} dB"
            );

            // present frames untouched outside the fade-in
            let fb = sp.frame_bytes();
            let fade_end = gap_start + gap_len + ms_to_frames(RATE, FADE_IN_MS);
            for i in (0..n).filter(|&i| present[i] && !(gap_start..fade_end).contains(&i)) {
                assert_eq!(
                    &out[i * fb..(i + 1) * fb],
                    &reference[i * fb..(i + 1) * fb],
                    "frame {i}"
                );
            }
        }
    }

    #[test]
    fn gap_200ms_decays_to_exact_silence_then_fades_in() {
        let sp = spec(1, SampleFormat::S16);
        let n = 24_000;
        let (gap_start, gap_len) = (4800, 9600);
        let reference = encode(sp, n, periodic_200hz);
        let present: Vec<bool> = (0..n)
            .map(|i| !(gap_start..gap_start + gap_len).contains(&i))
            .collect();
        let mut input = reference.clone();
        trash_missing(sp, &mut input, &present);
        let (out, counts) = run_chunked(sp, &input, &present, &[480; 50], 0);
        assert_eq!(counts.concealed, gap_len as u64);
        let fb = sp.frame_bytes();
        let silent_from = gap_start + ms_to_frames(RATE, DECAY_END_MS);
        assert!(
            out[silent_from * fb..(gap_start + gap_len) * fb]
                .iter()
                .all(|&b| b == 0),
            "not exactly silent"
        );
        // decaying in between, not silent before
        assert!((gap_start..gap_start + 480).any(|i| decode(sp, &out, i, 0).abs() > 0.3));
        // fade-in: starts near zero, no hard edge, real audio after
        let end = gap_start + gap_len;
        assert!(decode(sp, &out, end, 0).abs() < 0.05);
        assert!(max_step(sp, &out, end..end + 200) <= 1.5 * max_step(sp, &reference, 1..n));
        let fade = ms_to_frames(RATE, FADE_IN_MS);
        assert_eq!(&out[(end + fade) * fb..], &reference[(end + fade) * fb..]);
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        for format in [SampleFormat::S16, SampleFormat::S24, SampleFormat::F32] {
            let sp = spec(3, format);
            let n = 6000;
            let reference = encode(sp, n, |i, c| {
                periodic_200hz(i, c) * 0.8 + 0.1 * tone(3100.0)(i, c)
            });
            // isolated holes, pairs, triples, a 4-frame run, a 30 ms run, and holes inside
            // the fade-in after it
            let missing = |i: usize| {
                (i % 7 == 3 && i < 1500)
                    || (2000..2002).contains(&i)
                    || (2500..2503).contains(&i)
                    || (3000..3004).contains(&i)
                    || (3200..4640).contains(&i)
                    || i == 4642
                    || (5000..5003).contains(&i)
                    || (5003..6000).contains(&i) && i.is_multiple_of(5)
            };
            let present: Vec<bool> = (0..n).map(|i| !missing(i)).collect();
            let mut input = reference.clone();
            trash_missing(sp, &mut input, &present);

            let (whole, whole_counts) = run_chunked(sp, &input, &present, &[n], 0);
            let odd = [1, 997, 13, 2003, 5, 641, 2340];
            assert_eq!(odd.iter().sum::<usize>(), n);
            let (chunked, chunked_counts) =
                run_chunked(sp, &input, &present, &odd, EXACT_LOOKAHEAD);
            assert_eq!(whole_counts, chunked_counts);
            assert_eq!(whole_counts.concealed, 4 + 1440);
            assert!(whole == chunked, "{format}: chunking changed the output");
            // more lookahead than needed changes nothing either
            let (more, _) = run_chunked(sp, &input, &present, &odd, 500);
            assert!(whole == more);
        }
    }

    #[test]
    fn chunking_without_lookahead_stays_close() {
        // without lookahead a hole at the end of a chunk cannot see its right neighbour and
        // is concealed instead of interpolated: different but still close to the original
        let sp = spec(1, SampleFormat::F32);
        let n = 4800;
        let reference = encode(sp, n, periodic_200hz);
        let present: Vec<bool> = (0..n).map(|i| i % 4 != 3).collect();
        let mut input = reference.clone();
        trash_missing(sp, &mut input, &present);
        let (whole, _) = run_chunked(sp, &input, &present, &[n], 0);
        for size in [4usize, 240] {
            let (chunked, counts) = run_chunked(sp, &input, &present, &vec![size; n / size], 0);
            assert_eq!(counts.interpolated + counts.concealed, 1200);
            assert!(counts.concealed > 0);
            // no hard edges even then
            let (got, nat) = (max_step(sp, &chunked, 1..n), max_step(sp, &reference, 1..n));
            assert!(got <= 1.5 * nat, "size {size}: step {got} vs {nat}");
            if size == 240 {
                // one hole per 5 ms chunk is concealed: still clearly the same signal
                assert_eq!(counts.concealed, 20);
                assert!(snr_db(sp, &whole, &chunked, 0..n) > 15.0);
            }
        }
    }

    #[test]
    fn all_missing_at_stream_start_is_silence() {
        for format in [SampleFormat::S16, SampleFormat::S24, SampleFormat::F32] {
            for channels in 1..=8u16 {
                let sp = spec(channels, format);
                let mut c = Concealer::new(sp);
                let mut buf = vec![0x55u8; 1000 * sp.frame_bytes()];
                let present = vec![false; 1000];
                let counts = c.process(&mut buf, &present, 10);
                assert_eq!(
                    counts,
                    ConcealCounts {
                        interpolated: 0,
                        concealed: 990
                    }
                );
                assert!(buf[..990 * sp.frame_bytes()].iter().all(|&b| b == 0));
                assert!(buf[990 * sp.frame_bytes()..].iter().all(|&b| b == 0x55));
                // and again after reset with history
                c.reset();
                let mut buf2 = vec![0u8; 20 * sp.frame_bytes()];
                assert_eq!(c.process(&mut buf2, &[false; 20], 0).concealed, 20);
            }
        }
    }

    #[test]
    fn short_hole_at_stream_start_holds_the_right_neighbour() {
        let sp = spec(1, SampleFormat::F32);
        let reference = encode(sp, 8, |i, _| 0.1 * i as f32);
        let present = [false, false, true, true, true, true, true, true];
        let mut buf = reference.clone();
        trash_missing(sp, &mut buf, &present);
        let counts = Concealer::new(sp).process(&mut buf, &present, 0);
        assert_eq!(
            counts,
            ConcealCounts {
                interpolated: 2,
                concealed: 0
            }
        );
        // extrapolated from the two right neighbours (linear): exact on a ramp
        assert!((decode(sp, &buf, 0, 0) - 0.0).abs() < 1e-5);
        assert!((decode(sp, &buf, 1, 0) - 0.1).abs() < 1e-5);
    }

    #[test]
    fn counts_and_untouched_frames() {
        let sp = spec(2, SampleFormat::S24);
        let n = 2000;
        let reference = encode(sp, n, tone(440.0));
        let mut present = vec![true; n];
        for i in [10, 20, 21, 30, 31, 32] {
            present[i] = false; // 6 interpolated
        }
        for p in present.iter_mut().skip(100).take(5) {
            *p = false; // 5 concealed
        }
        present[1995] = false; // inside the lookahead: not counted, not touched
        let mut buf = reference.clone();
        trash_missing(sp, &mut buf, &present);
        let before = buf.clone();
        let mut c = Concealer::new(sp);
        let counts = c.process(&mut buf, &present, 10);
        assert_eq!(
            counts,
            ConcealCounts {
                interpolated: 6,
                concealed: 5
            }
        );
        let fb = sp.frame_bytes();
        assert_eq!(&buf[1990 * fb..], &before[1990 * fb..]);
        let fade_end = 105 + ms_to_frames(RATE, FADE_IN_MS);
        for i in (0..1990).filter(|&i| present[i] && !(105..fade_end).contains(&i)) {
            assert_eq!(&buf[i * fb..(i + 1) * fb], &reference[i * fb..(i + 1) * fb]);
        }
        // a frame missing at the very end of the output with no lookahead: concealed
        let mut tail = reference[..10 * fb].to_vec();
        let counts = c.process(
            &mut tail,
            &[true, true, true, true, true, true, true, true, true, false],
            0,
        );
        assert_eq!(
            counts,
            ConcealCounts {
                interpolated: 0,
                concealed: 1
            }
        );
    }

    #[test]
    fn pitch_period_is_found() {
        let sp = spec(1, SampleFormat::F32);
        let mut c = Concealer::new(sp);
        let mut buf = encode(sp, 4800, periodic_200hz);
        c.process(&mut buf, &[true; 4800], 0);
        c.start_concealment();
        // 200 Hz at 48 kHz: 240 frames, or a whole multiple of it within the search range
        // (repeating three periods is as good as one); 0 means "nothing found" and fails
        let max = ms_to_frames(RATE, MAX_PERIOD_MS);
        assert!(
            c.period >= 240 && c.period <= max && c.period.is_multiple_of(240),
            "period {} (search range up to {max})",
            c.period
        );
    }

    #[test]
    fn pitch_period_is_found_at_high_rates_on_the_decimated_mix() {
        for rate in [96_000u32, 192_000, 384_000] {
            let sp = AudioSpec {
                rate,
                channels: 2,
                format: SampleFormat::F32,
            };
            let mut c = Concealer::new(sp);
            assert_eq!(c.decimation, (rate / 48_000) as usize);
            let n = rate as usize / 10;
            let f = |i: usize, ch: usize| {
                let p = TAU * 200.0 * i as f32 / rate as f32 + 0.3 * ch as f32;
                0.4 * p.sin() + 0.2 * (2.0 * p + 0.5).sin() + 0.1 * (3.0 * p + 1.0).sin()
            };
            let mut buf = encode(sp, n, f);
            c.process(&mut buf, &vec![true; n], 0);
            c.start_concealment();
            // 200 Hz: rate / 200 frames, or a whole multiple within the search range, to
            // within a frame of the stream's rate (the refinement runs at that rate)
            let period = rate as usize / 200;
            let k = (c.period as f64 / period as f64).round() as usize;
            assert!(
                k >= 1 && c.period.abs_diff(k * period) <= 1,
                "{rate} Hz: period {} (true {period})",
                c.period
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(
            channels in 0u16..9,
            fmt in 0u8..3,
            rate in prop_oneof![Just(0u32), Just(8000u32), Just(48_000u32), 1u32..200],
            calls in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..400), proptest::collection::vec(any::<bool>(), 0..120), 0usize..130),
                1..6,
            ),
        ) {
            let sp = AudioSpec { rate, channels, format: SampleFormat::from_code(fmt).unwrap() };
            let mut c = Concealer::new(sp);
            for (mut bytes, present, la) in calls {
                let counts = c.process(&mut bytes, &present, la);
                if let Some(frames) = bytes.len().checked_div(sp.frame_bytes()) {
                    let total = present.len().min(frames);
                    let out = total - la.min(total);
                    let missing = present[..out].iter().filter(|p| !**p).count() as u64;
                    prop_assert_eq!(counts.interpolated + counts.concealed, missing);
                }
            }
        }
    }
}
