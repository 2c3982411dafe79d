//! Packet loss: none, independent Bernoulli, Gilbert-Elliott (a two-state Markov chain
//! stepped per packet, or per time slice as in ITU-T G.1050), or a repeating 0/1 trace per
//! packet or per millisecond. Outages are separate ([`super::outage`]).

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::error::{check_prob, ImpairError};
use crate::units::NS_PER_MS;

/// How often a Gilbert-Elliott chain takes a step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// One step per offered packet: a sender with more packets sees shorter bursts (in ms).
    PerPacket,
    /// One step per time slice of `ms` milliseconds on the timeline (ITU-T G.1050): bursts
    /// last the same wall time whatever the packet rate.
    Slice {
        /// Slice length in milliseconds (default 1 ms).
        ms: f64,
    },
}

impl Default for Step {
    fn default() -> Self {
        Step::Slice { ms: 1.0 }
    }
}

/// What one entry of a loss trace, or one correlation step of the jitter, stands for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    /// One offered packet.
    #[default]
    Packet,
    /// One millisecond of the timeline.
    Ms,
}

/// How packets are lost (outages are separate: see [`Outages`](crate::Outages)).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum LossModel {
    /// Nothing is lost.
    #[default]
    None,
    /// Each packet is lost independently with probability `p`.
    Bernoulli {
        /// Loss probability per packet (0..=1).
        p: f64,
    },
    /// Two-state Markov chain (good/bad), the same parameters as Linux netem's
    /// `gemodel p r 1-h 1-k`. Mean loss = p/(p+r)·loss_bad + r/(p+r)·loss_good; with
    /// loss_bad = 1 and loss_good = 0 the mean burst is 1/r steps.
    GilbertElliott {
        /// Probability of moving from good to bad at each step (0..=1).
        p: f64,
        /// Probability of moving from bad to good at each step (0..=1).
        r: f64,
        /// Loss probability per packet in the good state (netem `1-k`, 0..=1).
        loss_good: f64,
        /// Loss probability per packet in the bad state (netem `1-h`, 0..=1).
        loss_bad: f64,
        /// When the chain steps (default: 1 ms time slices).
        #[serde(default)]
        step: Step,
    },
    /// A repeating loss trace: `1` lost, `0` delivered, one entry per packet or per ms.
    Trace {
        /// The trace as `0`/`1` characters (whitespace, commas and `#` comments ignored).
        /// Filled from `file` when a profile is loaded.
        #[serde(default)]
        pattern: String,
        /// A text file holding the trace, relative to the profile file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<PathBuf>,
        /// What one entry stands for (default: one packet). Per-ms traces are indexed by
        /// the send time from [`Instant::ZERO`](isostream_transport::time::Instant::ZERO).
        #[serde(default)]
        per: Per,
    },
}

impl LossModel {
    /// Long-run mean loss fraction (0..=1) of this model alone, without outages.
    pub fn mean_loss(&self) -> f64 {
        match self {
            LossModel::None => 0.0,
            LossModel::Bernoulli { p } => p.clamp(0.0, 1.0),
            LossModel::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
                ..
            } => {
                let pb = stationary_bad(*p, *r);
                pb * loss_bad + (1.0 - pb) * loss_good
            }
            LossModel::Trace { pattern, .. } => match parse_trace(pattern) {
                Ok(t) if !t.is_empty() => t.iter().filter(|&&l| l).count() as f64 / t.len() as f64,
                _ => 0.0,
            },
        }
    }

    /// Checks every parameter is in range; `what` names the link in messages.
    pub(crate) fn validate(&self, what: &str) -> Result<(), ImpairError> {
        match self {
            LossModel::None => Ok(()),
            LossModel::Bernoulli { p } => check_prob(&format!("{what}.loss.p"), *p),
            LossModel::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
                step,
            } => {
                check_prob(&format!("{what}.loss.p"), *p)?;
                check_prob(&format!("{what}.loss.r"), *r)?;
                check_prob(&format!("{what}.loss.loss_good"), *loss_good)?;
                check_prob(&format!("{what}.loss.loss_bad"), *loss_bad)?;
                if let Step::Slice { ms } = step {
                    if !(ms.is_finite() && *ms > 0.0) {
                        return Err(ImpairError::Invalid(format!(
                            "{what}.loss.step.ms must be > 0 ms, got {ms}"
                        )));
                    }
                }
                Ok(())
            }
            LossModel::Trace { pattern, .. } => match parse_trace(pattern) {
                Ok(t) if t.is_empty() => Err(ImpairError::Invalid(format!(
                    "{what}.loss: the loss trace is empty"
                ))),
                Ok(_) => Ok(()),
                Err(e) => Err(ImpairError::Invalid(format!("{what}.loss.pattern: {e}"))),
            },
        }
    }
}

/// Runtime state of the loss model.
#[derive(Debug)]
pub(crate) enum LossState {
    None,
    Bernoulli {
        p: f64,
    },
    GePacket {
        p: f64,
        r: f64,
        loss_good: f64,
        loss_bad: f64,
        bad: Option<bool>,
    },
    GeSlice {
        p: f64,
        r: f64,
        loss_good: f64,
        loss_bad: f64,
        slice_ns: u64,
        /// Slice index and state of the chain at the last packet.
        state: Option<(u64, bool)>,
    },
    Trace {
        entries: Vec<bool>,
        per: Per,
        count: u64,
    },
}

impl LossState {
    /// The state of a chain that has not taken a step yet.
    pub(crate) fn new(model: &LossModel) -> Self {
        match model {
            LossModel::None => LossState::None,
            LossModel::Bernoulli { p } => LossState::Bernoulli { p: *p },
            LossModel::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
                step,
            } => match step {
                Step::PerPacket => LossState::GePacket {
                    p: *p,
                    r: *r,
                    loss_good: *loss_good,
                    loss_bad: *loss_bad,
                    bad: None,
                },
                Step::Slice { ms } => LossState::GeSlice {
                    p: *p,
                    r: *r,
                    loss_good: *loss_good,
                    loss_bad: *loss_bad,
                    slice_ns: ((ms * NS_PER_MS).round() as u64).max(1),
                    state: None,
                },
            },
            LossModel::Trace { pattern, per, .. } => {
                let entries = parse_trace(pattern).unwrap_or_default();
                if entries.is_empty() {
                    LossState::None
                } else {
                    LossState::Trace {
                        entries,
                        per: *per,
                        count: 0,
                    }
                }
            }
        }
    }

    /// Whether a packet sent at `now_ns` is lost. Draws from `rng` only when random.
    pub(crate) fn lost(&mut self, now_ns: u64, rng: &mut StdRng) -> bool {
        match self {
            LossState::None => false,
            LossState::Bernoulli { p } => rng.random::<f64>() < *p,
            LossState::GePacket {
                p,
                r,
                loss_good,
                loss_bad,
                bad,
            } => {
                let now_bad = match *bad {
                    None => rng.random::<f64>() < stationary_bad(*p, *r),
                    Some(true) => rng.random::<f64>() >= *r,
                    Some(false) => rng.random::<f64>() < *p,
                };
                *bad = Some(now_bad);
                rng.random::<f64>() < if now_bad { *loss_bad } else { *loss_good }
            }
            LossState::GeSlice {
                p,
                r,
                loss_good,
                loss_bad,
                slice_ns,
                state,
            } => {
                let k = now_ns / *slice_ns;
                let pi_bad = stationary_bad(*p, *r);
                let now_bad = match *state {
                    None => rng.random::<f64>() < pi_bad,
                    Some((k0, b)) if k > k0 => {
                        // n-step transition of the two-state chain, in closed form:
                        // P(bad after n | s) = pi_bad + (1[s = bad] - pi_bad) (1 - p - r)^n.
                        let lambda = 1.0 - *p - *r;
                        let n = (k - k0) as f64;
                        let start = if b { 1.0 } else { 0.0 };
                        let p_bad = pi_bad + (start - pi_bad) * lambda.powf(n);
                        rng.random::<f64>() < p_bad
                    }
                    Some((_, b)) => b, // same slice (or time went backwards): same state
                };
                let k = state.map_or(k, |(k0, _)| k.max(k0));
                *state = Some((k, now_bad));
                rng.random::<f64>() < if now_bad { *loss_bad } else { *loss_good }
            }
            LossState::Trace {
                entries,
                per,
                count,
            } => {
                let i = match per {
                    Per::Packet => *count,
                    Per::Ms => now_ns / 1_000_000,
                };
                *count += 1;
                entries[(i % entries.len() as u64) as usize]
            }
        }
    }
}

/// Long-run probability of the bad state, p/(p+r) (0 if the chain never moves).
pub(crate) fn stationary_bad(p: f64, r: f64) -> f64 {
    if p + r > 0.0 {
        p / (p + r)
    } else {
        0.0
    }
}

/// Parses a loss trace: `0`/`1` characters, whitespace and commas ignored, `#` starts a
/// comment running to the end of the line.
pub(crate) fn parse_trace(text: &str) -> Result<Vec<bool>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        for c in line.chars() {
            match c {
                '0' => out.push(false),
                '1' => out.push(true),
                c if c.is_whitespace() || c == ',' => {}
                c => return Err(format!("line {}: unexpected character {c:?}", n + 1)),
            }
        }
    }
    Ok(out)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::units::MS_PER_MIN;
    use crate::{Link, LinkConfig};

    #[test]
    fn gilbert_elliott_per_packet_mean_loss_and_burst_length() {
        // loss_bad = 1, loss_good = 0: mean loss p/(p+r), mean burst 1/r packets.
        let (p, r) = (0.05, 0.25);
        let cfg = ge(p, r, 0.0, 1.0, Step::PerPacket);
        let n = 200_000.0;
        let mut link = Link::new(&cfg, 11);
        losses(&mut link, 20 * MS, n as u64);
        let s = link.stats();
        let mean = p / (p + r);
        assert!((cfg.loss.mean_loss() - mean).abs() < 1e-12);
        let se = loss_standard_error(&cfg, 20.0, n);
        assert!(
            (s.loss_rate() - mean).abs() < 4.0 * se,
            "loss {} vs {mean}",
            s.loss_rate()
        );
        // Burst lengths are geometric with mean 1/r and sd sqrt(1-r)/r.
        let bursts = s.loss_bursts as f64;
        let burst_se = (1.0 - r).sqrt() / r / bursts.sqrt();
        assert!(
            (s.mean_burst_len() - 1.0 / r).abs() < 4.0 * burst_se,
            "burst {} vs {}",
            s.mean_burst_len(),
            1.0 / r
        );

        // Partial loss in both states: mean = p/(p+r) loss_bad + r/(p+r) loss_good.
        let cfg = ge(0.02, 0.1, 0.01, 0.5, Step::PerPacket);
        let mut link = Link::new(&cfg, 12);
        losses(&mut link, 20 * MS, n as u64);
        let expect = 0.02 / 0.12 * 0.5 + 0.1 / 0.12 * 0.01;
        assert!((cfg.loss.mean_loss() - expect).abs() < 1e-12);
        let se = loss_standard_error(&cfg, 20.0, n);
        let got = link.stats().loss_rate();
        assert!((got - expect).abs() < 4.0 * se, "loss {got} vs {expect}");
    }

    #[test]
    fn time_slice_gilbert_elliott_is_the_same_for_every_packet_rate() {
        // Mean burst 50 ms, mean loss 1/11 (~9.1 %), stepped in 1 ms slices.
        let (p, r) = (0.002, 0.02);
        let cfg = ge(p, r, 0.0, 1.0, Step::default());
        let mean = p / (p + r);
        let minutes = 20.0;
        let n_fast = (minutes * MS_PER_MIN) as u64; // 1 ms spacing
        let n_slow = n_fast / 10; // 10 ms spacing
        let mut fast = Link::new(&cfg, 21);
        let lost_fast = losses(&mut fast, MS, n_fast);
        let mut slow = Link::new(&cfg, 22);
        losses(&mut slow, 10 * MS, n_slow);
        let (lf, ls) = (fast.stats().loss_rate(), slow.stats().loss_rate());
        let se_fast = loss_standard_error(&cfg, 1.0, n_fast as f64);
        let se_slow = loss_standard_error(&cfg, 10.0, n_slow as f64);
        assert!(
            (lf - mean).abs() < 4.0 * se_fast,
            "1 ms sender: {lf} vs {mean}"
        );
        assert!(
            (ls - mean).abs() < 4.0 * se_slow,
            "10 ms sender: {ls} vs {mean}"
        );
        let se_diff = (se_fast * se_fast + se_slow * se_slow).sqrt();
        assert!((lf - ls).abs() < 4.0 * se_diff, "{lf} vs {ls}");
        // Bursts last ~50 ms of wall time for the 1 ms sender (50 packets) ...
        let burst_ms = fast.stats().mean_burst_len();
        assert!((burst_ms - 1.0 / r).abs() < 0.15 / r, "burst {burst_ms} ms");
        // ... and the 1 ms sender's loss really comes in runs, not isolated packets.
        let runs = lost_fast.windows(2).filter(|w| w[1] && !w[0]).count() as f64;
        assert!(runs < 0.05 * lost_fast.iter().filter(|&&l| l).count() as f64);

        // A long idle gap is stepped in closed form (no per-slice loop) and keeps the
        // stationary statistics: one packet per minute for 2000 minutes.
        let mut sparse = Link::new(&cfg, 23);
        losses(&mut sparse, 60_000 * MS, 2000);
        let got = sparse.stats().loss_rate();
        let se = (mean * (1.0 - mean) / 2000.0).sqrt();
        assert!(
            (got - mean).abs() < 4.0 * se,
            "sparse sender {got} vs {mean}"
        );
    }

    #[test]
    fn loss_trace_repeats_per_packet_and_per_ms() {
        let cfg = LinkConfig {
            loss: LossModel::Trace {
                pattern: "1100000000".into(),
                file: None,
                per: Per::Packet,
            },
            ..LinkConfig::default()
        };
        assert!((cfg.loss.mean_loss() - 0.2).abs() < 1e-12);
        let lost = losses(&mut Link::new(&cfg, 0), 3 * MS, 100);
        for (i, &l) in lost.iter().enumerate() {
            assert_eq!(l, i % 10 < 2);
        }
        let cfg = LinkConfig {
            loss: LossModel::Trace {
                pattern: "# one entry per ms\n1\n0\n0\n0\n".into(),
                file: None,
                per: Per::Ms,
            },
            ..LinkConfig::default()
        };
        // Sender every 2 ms: entries 0, 2, 0, 2, ... -> every other packet lost.
        let lost = losses(&mut Link::new(&cfg, 0), 2 * MS, 100);
        for (i, &l) in lost.iter().enumerate() {
            assert_eq!(l, i % 2 == 0);
        }
    }
}
