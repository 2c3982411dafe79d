//! Outages: windows of `duration_ms` during which everything sent is lost, occurring as a
//! Poisson process and/or at fixed times. They depend on time only, never on traffic.

use rand::rngs::StdRng;
use rand::RngExt;
use rand_distr::Exp1;
use serde::{Deserialize, Serialize};

use crate::units::{ms_to_ns, MS_PER_MIN, NS_PER_MS};

/// Periods during which everything sent is lost.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Outages {
    /// Length of each outage, in milliseconds.
    pub duration_ms: f64,
    /// Mean number of random outages per minute (Poisson; the next outage is drawn after the
    /// previous one ends). 0 for none.
    pub rate_per_min: f64,
    /// Start times of fixed outages, in milliseconds from [`Instant::ZERO`](isostream_transport::time::Instant::ZERO).
    pub at_ms: Vec<f64>,
}

impl Outages {
    /// Long-run fraction (0..=1) of time inside a random outage (fixed ones not counted).
    pub fn mean_fraction(&self) -> f64 {
        let lambda = self.rate_per_min.max(0.0) / MS_PER_MIN; // per ms
        let d = self.duration_ms.max(0.0);
        if lambda <= 0.0 || d <= 0.0 {
            0.0
        } else {
            d * lambda / (1.0 + d * lambda)
        }
    }
}

/// Runtime state of the outages: fixed windows and a lazily drawn Poisson process.
#[derive(Debug)]
pub(crate) struct OutageState {
    duration_ns: u64,
    /// Fixed windows' start times, sorted, in ns.
    fixed: Vec<u64>,
    /// Mean gap between random outages in ns (0 for none).
    mean_gap_ns: f64,
    /// Current or next random window `[start, end)`, in ns.
    window: Option<(u64, u64)>,
    rng: StdRng,
}

impl OutageState {
    /// The state of `o`, drawing its random windows from `rng`.
    pub(crate) fn new(o: &Outages, rng: StdRng) -> Self {
        let duration_ns = ms_to_ns(o.duration_ms);
        let mut fixed: Vec<u64> = o.at_ms.iter().map(|&t| ms_to_ns(t)).collect();
        fixed.sort_unstable();
        let rate = o.rate_per_min.max(0.0);
        let mean_gap_ns = if rate > 0.0 && duration_ns > 0 {
            MS_PER_MIN / rate * NS_PER_MS
        } else {
            0.0
        };
        OutageState {
            duration_ns,
            fixed,
            mean_gap_ns,
            window: None,
            rng,
        }
    }

    fn gap(&mut self) -> u64 {
        let e: f64 = self.rng.sample(Exp1);
        (e * self.mean_gap_ns) as u64
    }

    /// Whether `now_ns` is inside an outage. Depends on time only, never on traffic.
    pub(crate) fn active(&mut self, now_ns: u64) -> bool {
        if self.duration_ns == 0 {
            return false;
        }
        let i = self.fixed.partition_point(|&s| s <= now_ns);
        if i > 0 && now_ns < self.fixed[i - 1].saturating_add(self.duration_ns) {
            return true;
        }
        if self.mean_gap_ns <= 0.0 {
            return false;
        }
        let (mut start, mut end) = match self.window {
            Some(w) => w,
            None => {
                let s = self.gap();
                (s, s.saturating_add(self.duration_ns))
            }
        };
        while now_ns >= end {
            start = end.saturating_add(self.gap());
            end = start.saturating_add(self.duration_ns);
        }
        self.window = Some((start, end));
        now_ns >= start
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::{Link, LinkConfig};

    #[test]
    fn outages_remove_every_packet_inside_them_whatever_the_rate() {
        let cfg = LinkConfig {
            outages: Some(Outages {
                duration_ms: 100.0,
                rate_per_min: 0.0,
                at_ms: vec![5000.0, 1000.0],
            }),
            ..LinkConfig::default()
        };
        let mut link = Link::new(&cfg, 3);
        let lost = losses(&mut link, MS, 10_000);
        for (t, &l) in lost.iter().enumerate() {
            let inside = (1000..1100).contains(&t) || (5000..5100).contains(&t);
            assert_eq!(l, inside, "packet at {t} ms");
        }
        assert_eq!(link.stats().dropped_outage, 200);
        assert_eq!(link.stats().loss_bursts, 2);

        // Random outages: a 1 ms and a 7 ms sender with the same seed see the same windows,
        // and the outage fraction matches the rate.
        let cfg = LinkConfig {
            outages: Some(Outages {
                duration_ms: 200.0,
                rate_per_min: 2.0,
                at_ms: Vec::new(),
            }),
            ..LinkConfig::default()
        };
        let n = 30 * 60_000;
        let lost_fast = losses(&mut Link::new(&cfg, 9), MS, n);
        let lost_slow = losses(&mut Link::new(&cfg, 9), 7 * MS, n / 7);
        for (i, &l) in lost_slow.iter().enumerate() {
            assert_eq!(l, lost_fast[i * 7], "packet at {} ms", i * 7);
        }
        let frac = lost_fast.iter().filter(|&&l| l).count() as f64 / n as f64;
        let expect = cfg.expected_loss();
        // ~60 outages: Poisson count, relative sd ~13 %.
        assert!((frac - expect).abs() < 0.5 * expect, "{frac} vs {expect}");
        // Every lost run is exactly one outage long.
        let mut run_len = 0;
        for &l in lost_fast.iter().chain([false].iter()) {
            if l {
                run_len += 1;
            } else if run_len > 0 {
                assert!(run_len == 200 || run_len >= 400, "run {run_len}");
                run_len = 0;
            }
        }
    }
}
