//! Clock drift compensation: estimate how fast the sender's media clock runs against the
//! playout clock, and resample adaptively so the jitter buffer stays at its target.
//!
//! Two sound cards never run at exactly the same rate: 10 to 100 ppm apart is normal, and
//! 50 ppm is 180 ms per hour. If the sender's clock is faster by `e` ppm, the jitter buffer
//! grows by `e x 1e-6 x rate` frames per second (and drains if it is slower). PAUSE/RESUME
//! would catch it eventually, audibly; this stage keeps the buffer level instead, with pitch
//! changes far below what anyone can hear (1000 ppm, the clamp, is 1.7 cents).
//!
//! Two independent pieces, composed by the caller, one file each:
//!
//! - [`DriftEstimator`] (`estimator.rs`) is fed the buffer occupancy every few ms. It estimates the drift by a
//!   least-squares slope over a sliding window of two minutes, and turns it into a resampling
//!   ratio with a PI controller on the low-pass filtered occupancy error, the drift estimate
//!   being the feed-forward term.
//! - [`AdaptiveResampler`] (`resampler.rs`, one per substream) pulls wire frames from the buffer and produces
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

mod estimator;
mod resampler;
#[cfg(test)]
mod testutil;

pub use estimator::{DriftConfig, DriftEstimator, MAX_CORRECTION_PPM};
pub use resampler::{AdaptiveResampler, CHUNK_FRAMES, ENGAGE_THRESHOLD, SINC_LEN};

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use isostream_media::SampleFormat;
    use isostream_transport::time::Instant;

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
}
