//! One-way delay: `base + max(0, x) + spike`, where `x` is an AR(1) jitter process and
//! `spike` a queue build-up that starts at a Poisson rate and drains linearly. Packets sent
//! during a spike leave in send order; elsewhere they reorder where their delivery times cross.

use rand::rngs::StdRng;
use rand::RngExt;
use rand_distr::{Exp1, StandardNormal};
use serde::{Deserialize, Serialize};

use super::loss::Per;
use crate::error::{check_prob, ImpairError};
use crate::units::{ms_to_ns, MS_PER_MIN, NS_PER_MS};

/// One-way delay: `base_ms + max(0, x) + spike`, `x` being an AR(1) jitter process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DelayModel {
    /// Minimum one-way delay, in milliseconds.
    pub base_ms: f64,
    /// Stationary standard deviation of the AR(1) jitter process `x`, in milliseconds (the
    /// extra delay is `max(0, x)`, whose mean is `jitter_ms / sqrt(2 pi)`).
    pub jitter_ms: f64,
    /// Correlation coefficient of `x` between successive packets, or between two instants
    /// 1 ms apart (see `correlation_per`), 0..=1. Close to 1 keeps reordering rare.
    pub correlation: f64,
    /// Whether `correlation` applies per packet or per millisecond (default: per ms, so the
    /// process evolves with time as `correlation^(elapsed ms)`).
    pub correlation_per: Per,
    /// Mean number of delay spikes per minute (Poisson), 0 for none.
    pub spike_rate_per_min: f64,
    /// Extra delay at the onset of a spike, in milliseconds.
    pub spike_peak_ms: f64,
    /// How fast a spike drains, in ms of extra delay per ms of time (0 < drain <= 1; 1 means
    /// everything held by the spike leaves together, like a stall).
    pub spike_drain: f64,
}

impl Default for DelayModel {
    fn default() -> Self {
        DelayModel {
            base_ms: 0.0,
            jitter_ms: 0.0,
            correlation: 0.99,
            correlation_per: Per::Ms,
            spike_rate_per_min: 0.0,
            spike_peak_ms: 0.0,
            spike_drain: 1.0,
        }
    }
}

impl DelayModel {
    /// Long-run mean one-way delay in milliseconds (spikes assumed not to overlap).
    pub fn mean_delay_ms(&self) -> f64 {
        let jitter = self.jitter_ms.max(0.0) / (2.0 * std::f64::consts::PI).sqrt();
        let drain = clamp_drain(self.spike_drain);
        let peak = self.spike_peak_ms.max(0.0);
        let spikes = self.spike_rate_per_min.max(0.0) / MS_PER_MIN * peak * peak / (2.0 * drain);
        self.base_ms.max(0.0) + jitter + spikes
    }

    /// Checks every parameter is in range; `what` names the link in messages.
    pub(crate) fn validate(&self, what: &str) -> Result<(), ImpairError> {
        let nonneg = [
            ("base_ms", self.base_ms),
            ("jitter_ms", self.jitter_ms),
            ("spike_rate_per_min", self.spike_rate_per_min),
            ("spike_peak_ms", self.spike_peak_ms),
        ];
        for (name, v) in nonneg {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ImpairError::Invalid(format!(
                    "{what}.delay.{name} must be >= 0, got {v}"
                )));
            }
        }
        check_prob(&format!("{what}.delay.correlation"), self.correlation)?;
        if !(self.spike_drain > 0.0 && self.spike_drain <= 1.0) {
            return Err(ImpairError::Invalid(format!(
                "{what}.delay.spike_drain must be in (0, 1] ms per ms (above 1 the spike would \
                 reorder its own packets), got {}",
                self.spike_drain
            )));
        }
        Ok(())
    }
}

/// Runtime state of the delay model.
#[derive(Debug)]
pub(crate) struct DelayState {
    base_ns: u64,
    sigma_ms: f64,
    correlation: f64,
    per: Per,
    /// AR(1) value (ms) and the time it was drawn (ns).
    jitter: Option<(f64, u64)>,
    /// Mean gap between spike onsets in ns (0 for none).
    spike_mean_gap_ns: f64,
    spike_peak_ms: f64,
    spike_drain: f64,
    /// Next spike onset, ns.
    next_spike_ns: Option<u64>,
    /// Level (ms) and onset (ns) of the latest spike.
    spike: Option<(f64, u64)>,
    /// Latest delivery time given to a packet sent during a spike (keeps spikes FIFO).
    spike_floor_ns: u64,
    spike_rng: StdRng,
}

impl DelayState {
    /// The state of `d`, drawing its spikes from `spike_rng`.
    pub(crate) fn new(d: &DelayModel, spike_rng: StdRng) -> Self {
        let rate = d.spike_rate_per_min.max(0.0);
        let peak = d.spike_peak_ms.max(0.0);
        DelayState {
            base_ns: ms_to_ns(d.base_ms),
            sigma_ms: d.jitter_ms.max(0.0),
            correlation: d.correlation.clamp(0.0, 1.0),
            per: d.correlation_per,
            jitter: None,
            spike_mean_gap_ns: if rate > 0.0 && peak > 0.0 {
                MS_PER_MIN / rate * NS_PER_MS
            } else {
                0.0
            },
            spike_peak_ms: peak,
            spike_drain: clamp_drain(d.spike_drain),
            next_spike_ns: None,
            spike: None,
            spike_floor_ns: 0,
            spike_rng,
        }
    }

    fn spike_gap(&mut self) -> u64 {
        let e: f64 = self.spike_rng.sample(Exp1);
        (e * self.spike_mean_gap_ns) as u64
    }

    fn spike_level(&self, now_ns: u64) -> f64 {
        match self.spike {
            None => 0.0,
            Some((level, onset)) => {
                let elapsed_ms = now_ns.saturating_sub(onset) as f64 / NS_PER_MS;
                (level - self.spike_drain * elapsed_ms).max(0.0)
            }
        }
    }

    /// Extra delay (ms) of the spike process at `now_ns`; time-driven only.
    fn spike_extra(&mut self, now_ns: u64) -> f64 {
        if self.spike_mean_gap_ns <= 0.0 {
            return 0.0;
        }
        let mut next = match self.next_spike_ns {
            Some(n) => n,
            None => self.spike_gap(),
        };
        while next <= now_ns {
            let level = self.spike_level(next).max(self.spike_peak_ms);
            self.spike = Some((level, next));
            next = next.saturating_add(self.spike_gap().max(1));
        }
        self.next_spike_ns = Some(next);
        self.spike_level(now_ns)
    }

    /// Delivery time (ns) of a packet sent at `now_ns`.
    pub(crate) fn delivery(&mut self, now_ns: u64, rng: &mut StdRng) -> u64 {
        let mut extra_ms = 0.0;
        if self.sigma_ms > 0.0 {
            let eps: f64 = rng.sample(StandardNormal);
            let x = match self.jitter {
                None => self.sigma_ms * eps,
                Some((x, last)) => {
                    let rho = match self.per {
                        Per::Packet => self.correlation,
                        Per::Ms => {
                            let dt_ms = now_ns.saturating_sub(last) as f64 / NS_PER_MS;
                            self.correlation.powf(dt_ms)
                        }
                    };
                    rho * x + self.sigma_ms * (1.0 - rho * rho).max(0.0).sqrt() * eps
                }
            };
            let last = self.jitter.map_or(now_ns, |(_, l)| l.max(now_ns));
            self.jitter = Some((x, last));
            extra_ms += x.max(0.0);
        }
        let spike_ms = self.spike_extra(now_ns);
        extra_ms += spike_ms;
        let mut at = now_ns
            .saturating_add(self.base_ns)
            .saturating_add(ms_to_ns(extra_ms));
        if spike_ms > 0.0 {
            at = at.max(self.spike_floor_ns);
            self.spike_floor_ns = at;
        }
        at
    }
}

/// A spike drain rate clamped to (0, 1] ms per ms (1 when not a positive number).
fn clamp_drain(d: f64) -> f64 {
    if d.is_finite() && d > 0.0 {
        d.min(1.0)
    } else {
        1.0
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::{Link, LinkConfig};
    use bytes::Bytes;
    use isostream_transport::time::Instant;

    #[test]
    fn base_delay_only_delivers_exactly_base_later() {
        let cfg = LinkConfig {
            delay: DelayModel {
                base_ms: 25.0,
                ..DelayModel::default()
            },
            ..LinkConfig::default()
        };
        let mut link = Link::new(&cfg, 5);
        let out = run(&mut link, 5 * MS, 10_000);
        assert_eq!(out.len(), 10_000);
        for (i, &(seq, sent, at)) in out.iter().enumerate() {
            assert_eq!(seq, i as u64);
            assert_eq!(at, sent + 25 * MS);
        }
        // Not delivered one nanosecond early.
        let mut link = Link::new(&cfg, 5);
        link.send(at_ms(10), Bytes::from_static(b"x"));
        assert_eq!(link.next_delivery(), Some(at_ms(35)));
        assert_eq!(link.poll_deliver(Instant::from_nanos(35 * MS - 1)), None);
        assert_eq!(link.poll_deliver(at_ms(35)), Some(Bytes::from_static(b"x")));
        assert_eq!(link.poll_deliver(at_ms(1000)), None);
    }

    #[test]
    fn correlated_jitter_rarely_reorders_and_uncorrelated_does() {
        let n = 100_000;
        for (correlation, per) in [(0.99, Per::Ms), (0.95, Per::Packet)] {
            let cfg = LinkConfig {
                delay: DelayModel {
                    base_ms: 20.0,
                    jitter_ms: 5.0,
                    correlation,
                    correlation_per: per,
                    ..DelayModel::default()
                },
                ..LinkConfig::default()
            };
            let mut link = Link::new(&cfg, 8);
            let out = run(&mut link, 5 * MS, n);
            let s = link.stats();
            assert_eq!(out.len() as u64, n);
            assert!(
                (s.reordered as f64) < 0.01 * n as f64,
                "{correlation} per {per:?}: {} reordered",
                s.reordered
            );
            // Delivery order really follows delivery times: count inversions directly.
            let inversions = out.windows(2).filter(|w| w[1].0 < w[0].0).count() as u64;
            assert!(inversions <= s.reordered);
            // Mean delay = base + sd / sqrt(2 pi), and never below base.
            let expect = cfg.delay.mean_delay_ms();
            assert!(
                (s.mean_delay_ms - expect).abs() < 0.15,
                "{} vs {expect}",
                s.mean_delay_ms
            );
            assert!(out.iter().all(|&(_, sent, at)| at >= sent + 20 * MS));
        }
        // Independent jitter with sd 5 ms at 5 ms spacing reorders a lot: the model does not
        // force FIFO.
        let cfg = LinkConfig {
            delay: DelayModel {
                base_ms: 20.0,
                jitter_ms: 5.0,
                correlation: 0.0,
                correlation_per: Per::Packet,
                ..DelayModel::default()
            },
            ..LinkConfig::default()
        };
        let mut link = Link::new(&cfg, 8);
        run(&mut link, 5 * MS, 20_000);
        assert!(link.stats().reordered > 1000, "{}", link.stats().reordered);
    }

    #[test]
    fn spikes_deliver_late_and_in_order() {
        for drain in [1.0, 0.5] {
            let cfg = LinkConfig {
                delay: DelayModel {
                    base_ms: 10.0,
                    jitter_ms: 2.0,
                    correlation: 0.99,
                    correlation_per: Per::Ms,
                    spike_rate_per_min: 6.0,
                    spike_peak_ms: 200.0,
                    spike_drain: drain,
                },
                ..LinkConfig::default()
            };
            let mut link = Link::new(&cfg, 13);
            let out = run(&mut link, 5 * MS, 12 * 60 * 200); // 12 minutes
            let late: Vec<_> = out.iter().filter(|&&(_, s, a)| a - s > 60 * MS).collect();
            assert!(late.len() > 100, "{} late packets", late.len());
            let s = link.stats();
            assert!(
                s.max_delay_ms > 200.0 && s.max_delay_ms < 230.0,
                "max {}",
                s.max_delay_ms
            );
            // Packets held by a spike come out in send order.
            for w in late.windows(2) {
                assert!(w[1].0 > w[0].0, "{:?} then {:?}", w[0], w[1]);
            }
            let expect = cfg.delay.mean_delay_ms();
            assert!(
                (s.mean_delay_ms - expect).abs() < 0.25 * (expect - 10.0),
                "mean {} vs {expect}",
                s.mean_delay_ms
            );
        }
    }
}
