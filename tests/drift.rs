//! Clock drift: a sender whose clock runs 100 ppm fast or slow, for one simulated hour. The
//! receiver estimates the drift and resamples, so the buffer stays in a band around its level
//! with no underrun and no PAUSE; the estimate lands within 5 ppm of the truth; and the
//! resampled audio is still the input (checked every five minutes of the hour, after
//! alignment to a fraction of a sample). Without compensation, the same 100 ppm moves the
//! buffer out of its band (fast sender) or runs it dry (slow sender).

use isostream::io::SignalInput;
use isostream::sim::{self, SimOptions};
use isostream_media::{synthesize, AudioSpec, Program, SampleFormat, SignalSource};
use isostream_netsim::Profile;
use isostream_receiver::ReceiverConfig;
use isostream_sender::SenderConfig;
use isostream_transport::time::Duration;

/// 8 kHz mono keeps an hour of resampling cheap; the controller works in frames and ms,
/// whatever the rate.
fn narrow() -> AudioSpec {
    AudioSpec {
        rate: 8_000,
        channels: 1,
        format: SampleFormat::S16,
    }
}

fn session(spec: AudioSpec, ppm: f64, seconds: u64, compensate: bool) -> sim::SimResult {
    let mut src = SignalInput {
        source: SignalSource::new(Program::Music, spec, 1),
        remaining: spec.rate as u64 * seconds,
    };
    let rcfg = ReceiverConfig {
        drift_correction: compensate,
        ..ReceiverConfig::default()
    };
    let opts = SimOptions {
        drift_ppm: ppm,
        ..SimOptions::default()
    };
    let lan = Profile::builtin("lan").unwrap();
    sim::run_with(
        SenderConfig::new(spec),
        rcfg,
        &lan,
        3,
        &mut src,
        Duration::from_secs(seconds + 100),
        &opts,
    )
    .unwrap()
}

/// Channel 0 of 16-bit wire frames, as numbers.
fn channel0(b: &[u8], spec: AudioSpec) -> Vec<f64> {
    b.chunks_exact(spec.frame_bytes())
        .map(|f| i16::from_be_bytes([f[0], f[1]]) as f64)
        .collect()
}

/// The input at fractional position `t` (4-point Lagrange interpolation).
fn at(x: &[f64], t: f64) -> f64 {
    let i = t.floor() as i64;
    let u = t - i as f64;
    let g = |k: i64| x[(i + k).clamp(0, x.len() as i64 - 1) as usize];
    let (a, b, c, d) = (g(-1), g(0), g(1), g(2));
    b + u * (c - a) / 2.0
        + u * u * (2.0 * a - 5.0 * b + 4.0 * c - d) / 2.0
        + u * u * u * (3.0 * (b - c) + d - a) / 2.0
}

/// SNR (dB) of `out[o..o + w]` against the input, at the offset (output frame o is input
/// frame o + lag, lag within +-`search` and refined to 1/50 frame) that fits best; returns
/// (lag, SNR).
fn aligned_snr(input: &[f64], out: &[f64], o: usize, w: usize, search: i64) -> (f64, f64) {
    let y = &out[o..o + w];
    let energy: f64 = y.iter().map(|v| v * v).sum();
    let err = |lag: f64| -> f64 {
        y.iter()
            .enumerate()
            .map(|(k, v)| (v - at(input, o as f64 + k as f64 + lag)).powi(2))
            .sum()
    };
    let mut best = (0.0, f64::MAX);
    for lag in -search..=search {
        let s = o as i64 + lag;
        if s < 2 || (s as usize + w + 2) > input.len() {
            continue;
        }
        let e: f64 = y
            .iter()
            .zip(&input[s as usize..])
            .map(|(a, b)| (a - b).powi(2))
            .sum();
        if e < best.1 {
            best = (lag as f64, e);
        }
    }
    let base = best.0;
    for k in -50..=50 {
        let lag = base + k as f64 / 50.0;
        let e = err(lag);
        if e < best.1 {
            best = (lag, e);
        }
    }
    (best.0, 10.0 * (energy / best.1.max(1e-9)).log10())
}

/// Checks the resampled output against the program at `points` (seconds), in 0.1 s windows:
/// each must match the input at a lag that moves as the drift says, with a high SNR.
fn check_audio(spec: AudioSpec, output: &[u8], seconds: u64, ppm: f64, points: &[u64]) {
    let input = synthesize(
        Program::Music,
        spec,
        (spec.rate as u64 * seconds) as usize,
        1,
    );
    let (x, y) = (channel0(&input, spec), channel0(output, spec));
    let rate = spec.rate as f64;
    // the whole program came out, resampled to the receiver's clock: (1 + ppm) fewer frames
    // for a fast sender, more for a slow one (give or take what the buffer held at the end)
    let resampled = x.len() as f64 / (1.0 + ppm * 1e-6);
    assert!(
        (y.len() as f64 - resampled).abs() < 0.05 * rate,
        "{} frames out, {} in, {resampled:.0} expected after resampling",
        y.len(),
        x.len()
    );
    // how far the output may lag or lead by the end: the drift, plus the buffer moving
    let search = (seconds as f64 * ppm.abs() * 1e-6 * rate + 0.05 * rate) as i64;
    let w = spec.rate as usize / 40;
    for &t in points {
        let o = ((t as f64 * rate) as usize).min(y.len() - w - 1);
        let (lag, snr) = aligned_snr(&x, &y, o, w, search);
        // the sender's clock is fast by ppm: the receiver consumes its media faster, so
        // output frame o plays input frame o * (1 + ppm) (give or take the buffer's moves)
        let expected = o as f64 * ppm * 1e-6;
        eprintln!("{ppm:+} ppm at {t} s: lag {lag:.2} frames (drift alone: {expected:.1}), SNR {snr:.1} dB");
        // measured: 180 dB before the estimator engages (bit-exact), mostly 25 to 41 dB
        // after (the resampler against this test's cubic interpolation of the input), one
        // window of the hour at 12.9 dB (unexplained so far); a window that is misplaced,
        // silent or garbage scores 0 dB or less
        assert!(
            snr > 10.0,
            "{ppm:+} ppm, {spec}: at {t} s the output matches the input at {snr:.1} dB only"
        );
        assert!(
            (lag - expected).abs() < 0.03 * rate,
            "{ppm:+} ppm, {spec}: at {t} s the output is {lag:.1} frames off the input, the drift explains {expected:.1}"
        );
    }
}

/// The buffer after 5 minutes: (lowest, highest), in ms.
fn band(r: &sim::SimResult, until: f64) -> (f64, f64) {
    let after: Vec<f64> = r
        .timeline
        .iter()
        .filter(|s| s.t > 300.0 && s.t < until)
        .map(|s| s.buffer_ms)
        .collect();
    assert!(after.len() as f64 > (until - 300.0) * 9.0);
    after
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &b| (lo.min(b), hi.max(b)))
}

fn check(ppm: f64) {
    let spec = narrow();
    let r = session(spec, ppm, 3_600, true);
    assert!(r.completed);
    let est = r.receiver.drift_estimate_ppm.expect("drift is compensated");
    assert!(
        (est - ppm).abs() < 5.0,
        "estimate {est:.2} ppm for {ppm} ppm"
    );
    assert_eq!(r.receiver.underruns, 0, "{:?}", r.receiver);
    assert_eq!(r.receiver.flow.pauses_sent, 0, "{:?}", r.receiver.flow);
    // the band: after 5 minutes the buffer stays in a band 25 ms wide, well above empty,
    // around the level the controller fixed 10 s into playback (about the 200 ms low-water
    // mark it started at); without compensation it moves by 360 ms in the hour (below)
    let (lo, hi) = band(&r, 3_590.0);
    assert!(
        lo > 150.0 && hi < 250.0 && hi - lo < 25.0,
        "{ppm} ppm: buffer between {lo:.1} and {hi:.1} ms"
    );
    eprintln!("{ppm:+} ppm: estimate {est:+.2} ppm, buffer {lo:.1}..{hi:.1} ms after 5 min");
    let points: Vec<u64> = (0..=12).map(|i| 5 + i * 299).collect();
    check_audio(spec, &r.output, 3_600, ppm, &points);
}

#[test]
fn plus_100_ppm_for_an_hour_stays_in_band() {
    check(100.0);
}

#[test]
fn minus_100_ppm_for_an_hour_stays_in_band() {
    check(-100.0);
}

#[test]
fn plus_100_ppm_at_48k_stereo_for_ten_minutes_stays_in_band_and_sounds_right() {
    let spec = AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    let r = session(spec, 100.0, 600, true);
    assert!(r.completed);
    let est = r.receiver.drift_estimate_ppm.expect("drift is compensated");
    assert!((est - 100.0).abs() < 10.0, "estimate {est:.2} ppm");
    assert_eq!(r.receiver.underruns, 0, "{:?}", r.receiver);
    assert_eq!(r.receiver.flow.pauses_sent, 0, "{:?}", r.receiver.flow);
    let (lo, hi) = band(&r, 590.0);
    assert!(
        lo > 150.0 && hi < 250.0,
        "buffer between {lo:.1} and {hi:.1} ms"
    );
    check_audio(spec, &r.output, 600, 100.0, &[5, 60, 200, 400, 595]);
    // both channels came through, in their places: the right channel is the input's too
    let input = synthesize(Program::Music, spec, 48_000 * 600, 1);
    let right =
        |b: &[u8]| -> Vec<u8> { b.chunks_exact(4).flat_map(|f| [f[2], f[3], 0, 0]).collect() };
    let (xr, yr) = (right(&input), right(&r.output));
    // the first seconds play before the drift estimator engages: bit-exact pass-through
    assert!(
        xr[..48_000 * 4] == yr[..48_000 * 4],
        "the right channel is not the input's"
    );
}

#[test]
fn without_compensation_the_same_100_ppm_leaves_the_band_or_runs_dry() {
    // a fast sender: the buffer grows by 360 ms in the hour, out of the 25 ms band
    let r = session(narrow(), 100.0, 3_600, false);
    assert!(r.receiver.drift_estimate_ppm.is_none());
    let (lo, hi) = band(&r, 3_590.0);
    eprintln!("+100 ppm uncompensated: buffer {lo:.1}..{hi:.1} ms after 5 min");
    assert!(hi - lo > 250.0, "buffer between {lo:.1} and {hi:.1} ms");
    // a slow sender: the buffer drains by 360 ms an hour from its 200 ms: it runs dry
    let r = session(narrow(), -100.0, 3_600, false);
    eprintln!("-100 ppm uncompensated: {} underruns", r.receiver.underruns);
    assert!(r.receiver.underruns >= 1, "{:?}", r.receiver);
}
