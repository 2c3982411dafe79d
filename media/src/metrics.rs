//! Quality metrics: how an output (what a receiver played) differs from the reference (what
//! the sender sent).
//!
//! All functions take wire frames of one [`AudioSpec`]; trailing bytes that do not form a
//! whole frame are ignored. Levels are in dBFS relative to a full-scale DC/square signal
//! (amplitude 1.0), so a full-scale sine has an RMS of -3.01 dBFS.

use crate::format::{AudioSpec, SampleFormat};

/// Segment length of the segmental SNR, in milliseconds.
pub const SEGMENT_MS: f64 = 20.0;
/// Segmental SNR clamps each segment to this range, in dB (the customary -10 to 60 dB).
pub const SEGMENT_SNR_RANGE_DB: (f64, f64) = (-10.0, 60.0);
/// Shortest run of output digital silence reported as a [`Gap`], in milliseconds.
pub const MIN_GAP_MS: f64 = 10.0;
/// A reference stretch whose RMS is at or below this level (dBFS) counts as silent, so a
/// silent output there is not a gap.
pub const SILENCE_DBFS: f64 = -60.0;

/// A dropout: output frames that are digital silence where the reference has signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Index of the first silent frame (samples per channel since the start).
    pub start_frame: u64,
    /// Length in frames.
    pub frames: u64,
}

impl Gap {
    /// Length in milliseconds at `rate` Hz.
    pub fn duration_ms(&self, rate: u32) -> f64 {
        self.frames as f64 * 1000.0 / rate as f64
    }
}

/// The result of [`compare`].
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Frames present in both signals (the shorter length), compared position by position.
    pub frames_compared: u64,
    /// Compared frames whose bytes are identical in all channels.
    pub bit_exact_frames: u64,
    /// `bit_exact_frames / frames_compared` (1.0 when both signals are empty, 0.0 when only
    /// one is).
    pub bit_exact_fraction: f64,
    /// Signal-to-noise ratio over all compared samples, in dB: reference energy over the
    /// energy of `output - reference`. `+inf` if identical, `-inf` if the reference is
    /// silent but the output is not.
    pub snr_db: f64,
    /// Mean of per-segment SNRs over 20 ms segments, each clamped to [-10, 60] dB (identical
    /// segments count as 60 dB, silent-reference segments with any error as -10 dB). A
    /// trailing partial segment counts only when there is no full one.
    pub segmental_snr_db: f64,
    /// Runs of at least 10 ms where the output is digital silence (every sample exactly 0)
    /// while the reference RMS over the run is above -60 dBFS. Each run is trimmed to the
    /// frames between the first and last reference frame that is not itself all zero.
    pub gaps: Vec<Gap>,
    /// Length of the longest gap in milliseconds (0 if none).
    pub longest_gap_ms: f64,
    /// Output length minus reference length, in frames (negative: output is shorter).
    pub length_difference_frames: i64,
}

/// A run of digitally silent output frames being tracked by [`compare`].
struct SilentRun {
    /// First and last frame of the run where the reference is not all zero.
    ref_active: Option<(usize, usize)>,
    /// Reference energy (sum of squared samples) over the run.
    ref_energy: f64,
}

#[inline]
fn frame_is_zero(frame: &[u8], format: SampleFormat) -> bool {
    match format {
        // -0.0 is also digital silence.
        SampleFormat::F32 => frame
            .chunks_exact(4)
            .all(|s| s[0] & 0x7f == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0),
        _ => frame.iter().all(|b| *b == 0),
    }
}

fn snr(signal: f64, error: f64) -> f64 {
    if error == 0.0 {
        f64::INFINITY
    } else if signal == 0.0 {
        f64::NEG_INFINITY
    } else {
        10.0 * (signal / error).log10()
    }
}

/// Whole frames in `data`.
fn frames_in(data: &[u8], spec: &AudioSpec) -> usize {
    data.len().checked_div(spec.frame_bytes()).unwrap_or(0)
}

/// Compares `output` against `reference` frame by frame from the first frame (align them
/// first, e.g. with [`find_alignment`], if the output may be delayed).
pub fn compare(reference: &[u8], output: &[u8], spec: AudioSpec) -> Comparison {
    let fb = spec.frame_bytes();
    let bps = spec.format.bytes();
    let format = spec.format;
    let channels = spec.channels as f64;
    let ref_frames = frames_in(reference, &spec);
    let out_frames = frames_in(output, &spec);
    let n = ref_frames.min(out_frames);

    let seg_len = ((spec.rate as f64 * SEGMENT_MS / 1000.0).round() as usize).max(1);
    let min_gap = ((spec.rate as f64 * MIN_GAP_MS / 1000.0).round() as u64).max(1);
    let silence_ms = 10f64.powf(SILENCE_DBFS / 10.0);
    let (lo, hi) = SEGMENT_SNR_RANGE_DB;

    let mut bit_exact = 0u64;
    let (mut sig, mut err) = (0.0f64, 0.0f64);
    let (mut seg_sig, mut seg_err) = (0.0f64, 0.0f64);
    let (mut seg_sum, mut seg_count) = (0.0f64, 0u64);
    let mut gaps = Vec::new();

    // Current run of silent output frames.
    let mut run: Option<SilentRun> = None;
    let close_run = |run: &mut Option<SilentRun>, gaps: &mut Vec<Gap>| {
        if let Some(SilentRun {
            ref_active: Some((first, last)),
            ref_energy,
        }) = run.take()
        {
            let frames = (last - first + 1) as u64;
            if frames >= min_gap && ref_energy / (frames as f64 * channels) > silence_ms {
                gaps.push(Gap {
                    start_frame: first as u64,
                    frames,
                });
            }
        }
    };

    for i in 0..n {
        let rf = &reference[i * fb..(i + 1) * fb];
        let of = &output[i * fb..(i + 1) * fb];
        let mut frame_sig = 0.0f64;
        if rf == of {
            bit_exact += 1;
            for s in rf.chunks_exact(bps) {
                let r = format.decode(s) as f64;
                frame_sig += r * r;
            }
        } else {
            let mut frame_err = 0.0f64;
            for (rs, os) in rf.chunks_exact(bps).zip(of.chunks_exact(bps)) {
                let r = format.decode(rs) as f64;
                let e = format.decode(os) as f64 - r;
                frame_sig += r * r;
                frame_err += e * e;
            }
            err += frame_err;
            seg_err += frame_err;
        }
        sig += frame_sig;
        seg_sig += frame_sig;

        if (i + 1) % seg_len == 0 || (i + 1 == n && n < seg_len) {
            seg_sum += snr(seg_sig, seg_err).clamp(lo, hi);
            seg_count += 1;
            seg_sig = 0.0;
            seg_err = 0.0;
        }

        if frame_is_zero(of, format) {
            let r = run.get_or_insert(SilentRun {
                ref_active: None,
                ref_energy: 0.0,
            });
            if !frame_is_zero(rf, format) {
                r.ref_active = Some(match r.ref_active {
                    None => (i, i),
                    Some((first, _)) => (first, i),
                });
            }
            r.ref_energy += frame_sig;
        } else {
            close_run(&mut run, &mut gaps);
        }
    }
    close_run(&mut run, &mut gaps);

    let bit_exact_fraction = if n > 0 {
        bit_exact as f64 / n as f64
    } else if ref_frames == out_frames {
        1.0
    } else {
        0.0
    };
    let snr_db = snr(sig, err);
    let segmental_snr_db = if seg_count > 0 {
        seg_sum / seg_count as f64
    } else {
        snr_db.clamp(lo, hi)
    };
    let longest_gap_ms = gaps
        .iter()
        .map(|g| g.duration_ms(spec.rate))
        .fold(0.0, f64::max);

    Comparison {
        frames_compared: n as u64,
        bit_exact_frames: bit_exact,
        bit_exact_fraction,
        snr_db,
        segmental_snr_db,
        gaps,
        longest_gap_ms,
        length_difference_frames: out_frames as i64 - ref_frames as i64,
    }
}

/// Damaged audio: how many windows of `window_ms` (whole windows, position by position over
/// the shorter signal) have an SNR below `min_snr_db` against `reference` (a window of
/// silence in the reference counts when the output is not silent there). The figure the
/// loss benchmarks report, in windows (with 1 ms windows: in ms).
pub fn damaged_windows(
    reference: &[u8],
    output: &[u8],
    spec: AudioSpec,
    window_ms: f64,
    min_snr_db: f64,
) -> u64 {
    let fb = spec.frame_bytes();
    let bps = spec.format.bytes();
    let w = ((spec.rate as f64 * window_ms / 1000.0).round() as usize).max(1);
    let n = frames_in(reference, &spec).min(frames_in(output, &spec));
    let mut damaged = 0;
    for start in (0..n / w).map(|k| k * w) {
        let (r, o) = (
            &reference[start * fb..(start + w) * fb],
            &output[start * fb..(start + w) * fb],
        );
        if r == o {
            continue;
        }
        let (mut sig, mut err) = (0.0f64, 0.0f64);
        for (rs, os) in r.chunks_exact(bps).zip(o.chunks_exact(bps)) {
            let a = spec.format.decode(rs) as f64;
            let e = spec.format.decode(os) as f64 - a;
            sig += a * a;
            err += e * e;
        }
        if snr(sig, err) < min_snr_db {
            damaged += 1;
        }
    }
    damaged
}

/// RMS level of all samples of `frames`, in dBFS (`-inf` for silence or no frames).
pub fn rms_dbfs(frames: &[u8], spec: AudioSpec) -> f64 {
    let n = frames_in(frames, &spec) * spec.channels as usize;
    let bps = spec.format.bytes();
    let energy: f64 = frames[..n * bps]
        .chunks_exact(bps)
        .map(|s| {
            let v = spec.format.decode(s) as f64;
            v * v
        })
        .sum();
    if energy == 0.0 {
        f64::NEG_INFINITY
    } else {
        10.0 * (energy / n as f64).log10()
    }
}

/// Mono downmix (mean of the channels) of whole frames.
fn downmix(data: &[u8], spec: &AudioSpec) -> Vec<f32> {
    let fb = spec.frame_bytes();
    let bps = spec.format.bytes();
    let scale = 1.0 / spec.channels as f32;
    let n = frames_in(data, spec);
    data[..n * fb]
        .chunks_exact(fb)
        .map(|f| {
            f.chunks_exact(bps)
                .map(|s| spec.format.decode(s))
                .sum::<f32>()
                * scale
        })
        .collect()
}

/// Boxcar average of each `factor` samples (a crude anti-alias filter plus decimation).
fn decimate(x: &[f32], factor: usize) -> Vec<f32> {
    let scale = 1.0 / factor as f32;
    x.chunks_exact(factor)
        .map(|c| c.iter().sum::<f32>() * scale)
        .collect()
}

fn prefix_energy(x: &[f32]) -> Vec<f64> {
    let mut p = Vec::with_capacity(x.len() + 1);
    let mut acc = 0.0f64;
    p.push(0.0);
    for v in x {
        acc += (*v as f64) * (*v as f64);
        p.push(acc);
    }
    p
}

/// Dot product with four independent accumulators (lets the compiler pipeline it).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0.0f32; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] as f64 + acc[1] as f64) + (acc[2] as f64 + acc[3] as f64) + tail as f64
}

/// Normalized cross-correlation of `r[k]` with `o[k + lag]` over `k in [k0, k1)`.
fn ncc(r: &[f32], o: &[f32], pr: &[f64], po: &[f64], lag: i64, k0: usize, k1: usize) -> f64 {
    let o0 = (k0 as i64 + lag) as usize;
    let o1 = (k1 as i64 + lag) as usize;
    let er = pr[k1] - pr[k0];
    let eo = po[o1] - po[o0];
    if er <= 0.0 || eo <= 0.0 {
        return 0.0;
    }
    dot(&r[k0..k1], &o[o0..o1]) / (er * eo).sqrt()
}

/// Overlap `[k0, k1)` of reference indices `k` for which `k + lag` is inside the output.
fn overlap(len_r: usize, len_o: usize, lag: i64) -> (usize, usize) {
    let k0 = (-lag).max(0) as usize;
    let k1 = (len_r as i64).min(len_o as i64 - lag).max(0) as usize;
    (k0.min(k1), k1)
}

/// Minimum normalized correlation for [`find_alignment`] to report a lag.
pub const MIN_ALIGNMENT_CORRELATION: f64 = 0.3;

/// Finds the delay of `output` relative to `reference`, in frames.
///
/// Returns the lag `L` (|L| <= `max_lag_frames`) that best satisfies
/// `output[n + L] ≈ reference[n]`: positive when the output starts later than the reference
/// (e.g. after a jitter buffer's latency), negative when it starts inside it. `None` when
/// either signal is silent or too short, or when no lag reaches a normalized correlation of
/// [`MIN_ALIGNMENT_CORRELATION`].
///
/// Works on a mono downmix: a coarse normalized cross-correlation at about 1.5 kHz over the
/// whole lag range, then a full-rate search around the three best coarse peaks over the
/// loudest second of overlap. 10 s of 48 kHz audio with a 1 s range takes tens of ms
/// (optimized build).
pub fn find_alignment(
    reference: &[u8],
    output: &[u8],
    spec: AudioSpec,
    max_lag_frames: u64,
) -> Option<i64> {
    if spec.frame_bytes() == 0 || spec.rate == 0 {
        return None;
    }
    let r = downmix(reference, &spec);
    let o = downmix(output, &spec);
    let max_lag = max_lag_frames.min(i64::MAX as u64 / 2) as i64;
    let min_len = r.len().min(o.len());
    if min_len < 16 {
        return None;
    }
    let pr = prefix_energy(&r);
    let po = prefix_energy(&o);
    if pr[r.len()] == 0.0 || po[o.len()] == 0.0 {
        return None;
    }
    // Lags are accepted only with an overlap of at least a quarter of the shorter signal.
    let min_overlap = (min_len / 4).max(8);

    // Coarse search.
    let mut factor = (spec.rate as usize / 1500).max(1);
    while factor > 1 && min_len / factor < 64 {
        factor /= 2;
    }
    let rd = decimate(&r, factor);
    let od = decimate(&o, factor);
    let prd = prefix_energy(&rd);
    let pod = prefix_energy(&od);
    let max_lag_d = (max_lag / factor as i64).min(rd.len().max(od.len()) as i64);
    let min_overlap_d = min_overlap / factor;
    let lags: Vec<i64> = (-max_lag_d..=max_lag_d).collect();
    let scores: Vec<f64> = lags
        .iter()
        .map(|&lag| {
            let (k0, k1) = overlap(rd.len(), od.len(), lag);
            if k1 - k0 < min_overlap_d.max(1) {
                f64::NEG_INFINITY
            } else {
                ncc(&rd, &od, &prd, &pod, lag, k0, k1)
            }
        })
        .collect();
    // The three best local maxima.
    let mut peaks: Vec<(f64, i64)> = (0..scores.len())
        .filter(|&i| {
            scores[i].is_finite()
                && (i == 0 || scores[i] >= scores[i - 1])
                && (i + 1 == scores.len() || scores[i] >= scores[i + 1])
        })
        .map(|i| (scores[i], lags[i]))
        .collect();
    peaks.sort_by(|a, b| b.0.total_cmp(&a.0));
    peaks.truncate(3);

    // Fine search at full rate around each coarse peak.
    let window = (spec.rate as usize).max(64);
    let mut best: Option<(f64, i64)> = None;
    for (_, coarse) in peaks {
        let centre = coarse * factor as i64;
        let lo = (centre - factor as i64 - 1).max(-max_lag);
        let hi = (centre + factor as i64 + 1).min(max_lag);
        if lo > hi {
            continue;
        }
        // Reference indices valid for every lag in [lo, hi].
        let k0 = (-lo).max(0) as usize;
        let k1 = (r.len() as i64).min(o.len() as i64 - hi).max(0) as usize;
        if k1 <= k0 || k1 - k0 < 16 {
            continue;
        }
        // The loudest window of the reference within that range.
        let w = window.min(k1 - k0);
        let step = (w / 2).max(1);
        let mut start = k0;
        let mut loudest = -1.0;
        let mut s = k0;
        while s + w <= k1 {
            let e = pr[s + w] - pr[s];
            if e > loudest {
                loudest = e;
                start = s;
            }
            s += step;
        }
        for lag in lo..=hi {
            let c = ncc(&r, &o, &pr, &po, lag, start, start + w);
            if best.is_none_or(|(b, _)| c > b) {
                best = Some((c, lag));
            }
        }
    }
    best.filter(|(c, _)| *c >= MIN_ALIGNMENT_CORRELATION)
        .map(|(_, lag)| lag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_windows_count_what_differs_beyond_the_snr_floor() {
        let spec = AudioSpec {
            rate: 1_000,
            channels: 1,
            format: SampleFormat::S16,
        };
        // 100 frames = 100 windows of 1 ms, a full-scale square wave
        let reference: Vec<u8> = (0..100)
            .flat_map(|i: i16| (if i % 2 == 0 { 10_000i16 } else { -10_000 }).to_be_bytes())
            .collect();
        let mut out = reference.clone();
        // window 3 silenced (damaged), window 7 off by 1 LSB (SNR 80 dB: not damaged)
        out[6..8].copy_from_slice(&0i16.to_be_bytes());
        let v = i16::from_be_bytes([out[14], out[15]]) + 1;
        out[14..16].copy_from_slice(&v.to_be_bytes());
        assert_eq!(damaged_windows(&reference, &out, spec, 1.0, 20.0), 1);
        assert_eq!(damaged_windows(&reference, &reference, spec, 1.0, 20.0), 0);
        // 10 ms windows: the silenced frame is a tenth of its window (SNR 10 dB)
        assert_eq!(damaged_windows(&reference, &out, spec, 10.0, 20.0), 1);
        assert_eq!(damaged_windows(&reference, &out, spec, 10.0, 5.0), 0);
    }
    use crate::signal::{synthesize, Program};

    fn spec(rate: u32, channels: u16, format: SampleFormat) -> AudioSpec {
        AudioSpec {
            rate,
            channels,
            format,
        }
    }

    #[test]
    fn identical_signals() {
        for format in [SampleFormat::S16, SampleFormat::S24, SampleFormat::F32] {
            let s = spec(48_000, 2, format);
            let x = synthesize(Program::Speech, s, 48_000 * 3, 1);
            let c = compare(&x, &x, s);
            assert_eq!(c.frames_compared, 144_000);
            assert_eq!(c.bit_exact_frames, 144_000);
            assert_eq!(c.bit_exact_fraction, 1.0);
            assert_eq!(c.snr_db, f64::INFINITY);
            assert_eq!(c.segmental_snr_db, 60.0);
            assert!(c.gaps.is_empty());
            assert_eq!(c.longest_gap_ms, 0.0);
            assert_eq!(c.length_difference_frames, 0);
        }
        let s = spec(48_000, 2, SampleFormat::S16);
        let c = compare(&[], &[], s);
        assert_eq!(c.bit_exact_fraction, 1.0);
        assert_eq!(c.snr_db, f64::INFINITY);
    }

    #[test]
    fn inserted_zeros_give_one_gap() {
        let s = spec(48_000, 2, SampleFormat::S16);
        let x = synthesize(Program::Music, s, 48_000 * 2, 4);
        let at = 30_000usize;
        let zeros = 720usize; // 15 ms
        let mut y = x[..at * 4].to_vec();
        y.extend(std::iter::repeat_n(0u8, zeros * 4));
        y.extend_from_slice(&x[at * 4..]);
        let c = compare(&x, &y, s);
        assert_eq!(
            c.gaps,
            vec![Gap {
                start_frame: at as u64,
                frames: zeros as u64
            }]
        );
        assert!((c.longest_gap_ms - 15.0).abs() < 1e-9);
        assert_eq!(c.length_difference_frames, zeros as i64);
        assert_eq!(c.frames_compared, 96_000);
        assert_eq!(c.bit_exact_frames, at as u64);
        // Shorter than 10 ms is not a gap.
        let mut z = x.clone();
        z[at * 4..(at + 470) * 4].fill(0);
        assert!(compare(&x, &z, s).gaps.is_empty());
        let mut z = x.clone();
        z[at * 4..(at + 480) * 4].fill(0);
        assert_eq!(compare(&x, &z, s).gaps.len(), 1);
    }

    #[test]
    fn silence_in_both_is_not_a_gap_and_runs_are_trimmed() {
        let s = spec(16_000, 1, SampleFormat::S16);
        let mut x = synthesize(Program::Sine { hz: 440.0 }, s, 16_000, 0);
        // Reference digital silence at [4000, 6000): output silent over [3003, 7003).
        x[4000 * 2..6000 * 2].fill(0);
        let mut y = x.clone();
        y[3003 * 2..7003 * 2].fill(0);
        let c = compare(&x, &y, s);
        assert_eq!(
            c.gaps,
            vec![Gap {
                start_frame: 3003,
                frames: 4000
            }]
        );
        // Silent output over the reference silence only: no gap.
        let mut y = x.clone();
        y[4100 * 2..5900 * 2].fill(0);
        assert!(compare(&x, &y, s).gaps.is_empty());
        // A very quiet reference (below -60 dBFS) does not make a gap either.
        let quiet: Vec<u8> = (0..16_000i32)
            .flat_map(|i| (((i % 7) - 3) as i16 * 4).to_be_bytes())
            .collect();
        assert!(rms_dbfs(&quiet, s) < -60.0);
        assert!(compare(&quiet, &vec![0u8; quiet.len()], s).gaps.is_empty());
    }

    #[test]
    fn noise_at_known_level_gives_expected_snr() {
        let s = spec(48_000, 2, SampleFormat::F32);
        let x = synthesize(Program::Mixed, s, 48_000 * 5, 2);
        let ref_db = rms_dbfs(&x, s);
        for target_snr in [10.0f64, 20.0, 40.0] {
            // Uniform noise with RMS = a / sqrt(3) at ref_db - target_snr.
            let noise_rms = 10f64.powf((ref_db - target_snr) / 20.0);
            let a = (noise_rms * 3f64.sqrt()) as f32;
            let mut state = 0x1234_5678_9abc_def0u64;
            let mut y = x.clone();
            for smp in y.chunks_exact_mut(4) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let u = (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
                let v = SampleFormat::F32.decode(smp) + a * u;
                SampleFormat::F32.encode(v, smp);
            }
            let c = compare(&x, &y, s);
            assert!(
                (c.snr_db - target_snr).abs() < 0.5,
                "target {target_snr} dB, measured {}",
                c.snr_db
            );
            assert_eq!(c.bit_exact_fraction, 0.0);
            assert!(c.segmental_snr_db < 60.0 && c.segmental_snr_db > -10.0);
        }
        // Same check in 16-bit: quantization noise is ~80 dB below, irrelevant at 30 dB.
        let s16 = spec(48_000, 1, SampleFormat::S16);
        let x = synthesize(Program::Music, s16, 48_000 * 3, 8);
        let mut y = x.clone();
        let ref_db = rms_dbfs(&x, s16);
        let a = (10f64.powf((ref_db - 30.0) / 20.0) * 3f64.sqrt()) as f32;
        let mut state = 99u64;
        for smp in y.chunks_exact_mut(2) {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            let v = SampleFormat::S16.decode(smp) + a * u;
            SampleFormat::S16.encode(v, smp);
        }
        let snr = compare(&x, &y, s16).snr_db;
        assert!((snr - 30.0).abs() < 0.5, "{snr}");
    }

    #[test]
    fn rms_levels() {
        let s = spec(48_000, 1, SampleFormat::F32);
        let sine = synthesize(Program::Sine { hz: 1000.0 }, s, 48_000, 0);
        // 0.49 peak sine: 20*log10(0.49/sqrt 2).
        let expected = 20.0 * (0.49f64 / 2f64.sqrt()).log10();
        assert!((rms_dbfs(&sine, s) - expected).abs() < 0.01);
        assert_eq!(rms_dbfs(&[0u8; 400], s), f64::NEG_INFINITY);
        assert_eq!(rms_dbfs(&[], s), f64::NEG_INFINITY);
    }

    #[test]
    fn alignment_recovers_known_shifts() {
        let s = spec(48_000, 2, SampleFormat::S16);
        let fb = s.frame_bytes();
        let x = synthesize(Program::Speech, s, 48_000 * 10, 11);
        for shift in [1234i64, -1234, 0, 47_000, 7] {
            let y: Vec<u8> = if shift >= 0 {
                // Output delayed: starts with `shift` frames of other material.
                let mut y = synthesize(Program::Music, s, shift as usize, 5);
                y.extend_from_slice(&x[..x.len() - shift as usize * fb]);
                y
            } else {
                x[(-shift) as usize * fb..].to_vec()
            };
            // (how fast this is, is for benches/media.rs, not a unit test)
            let lag = find_alignment(&x, &y, s, 48_000);
            assert_eq!(lag, Some(shift), "shift {shift}");
            // After alignment the comparison is bit-exact.
            if shift > 0 {
                let c = compare(&x, &y[shift as usize * fb..], s);
                assert_eq!(c.bit_exact_fraction, 1.0);
            }
        }
        // Alignment survives noise and music programmes at other rates.
        let s = spec(44_100, 1, SampleFormat::F32);
        let x = synthesize(Program::Music, s, 44_100 * 5, 3);
        let mut y = vec![0u8; 777 * 4];
        y.extend_from_slice(&x);
        assert_eq!(find_alignment(&x, &y, s, 10_000), Some(777));
    }

    #[test]
    fn alignment_of_unrelated_or_silent_signals_is_none() {
        let s = spec(16_000, 1, SampleFormat::S16);
        let x = synthesize(Program::Speech, s, 16_000 * 4, 1);
        assert_eq!(find_alignment(&x, &vec![0u8; x.len()], s, 4_000), None);
        let noise: Vec<u8> = (0..x.len() as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(find_alignment(&x, &noise, s, 4_000), None);
    }
}
