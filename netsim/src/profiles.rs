//! The builtin catalogue of network profiles (`perfect`, `lan`, `wifi`, `lte`,
//! `transatlantic`, `bursty`, `hostile`), each with its parameters and their sources.
//! Profiles from files are in [`crate::loading`].

use serde::{Deserialize, Serialize};

use crate::link::LinkConfig;
use crate::models::delay::DelayModel;
use crate::models::loss::{LossModel, Per, Step};
use crate::models::outage::Outages;

/// A named pair of link configurations with its documentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "crate::loading::ProfileFile")]
pub struct Profile {
    /// Short name (`wifi`, or the file stem for loaded profiles).
    pub name: String,
    /// What the profile models and its parameters, in words.
    pub description: String,
    /// Where the figures come from.
    pub source: String,
    /// Sender to receiver (media) direction.
    pub forward: LinkConfig,
    /// Receiver to sender (control, RTCP) direction.
    pub reverse: LinkConfig,
}

/// Names of the builtin profiles, mildest first.
pub(crate) const BUILTIN_NAMES: &[&str] = &[
    "perfect",
    "lan",
    "wifi",
    "lte",
    "transatlantic",
    "bursty",
    "hostile",
];

/// Gilbert-Elliott loss with loss_bad = 1, loss_good = 0, 1 ms slices, given the mean loss
/// fraction and the mean burst length in ms.
fn ge_bursts(mean_loss: f64, mean_burst_ms: f64) -> LossModel {
    let r = 1.0 / mean_burst_ms;
    LossModel::GilbertElliott {
        p: r * mean_loss / (1.0 - mean_loss),
        r,
        loss_good: 0.0,
        loss_bad: 1.0,
        step: Step::Slice { ms: 1.0 },
    }
}

/// An AR(1) delay model correlated per ms, without spikes.
fn delay(base_ms: f64, jitter_ms: f64, correlation: f64) -> DelayModel {
    DelayModel {
        base_ms,
        jitter_ms,
        correlation,
        correlation_per: Per::Ms,
        ..DelayModel::default()
    }
}

impl Profile {
    /// The builtin profile called `name` (see [`Profile::builtin_names`]), if any.
    pub fn builtin(name: &str) -> Option<Profile> {
        let (description, source, forward) = match name {
            "perfect" => (
                "No loss, no delay, no duplication.",
                "-",
                LinkConfig::default(),
            ),
            "lan" => (
                "Wired LAN: Bernoulli loss 0.01 %, base delay 0.2 ms, AR(1) jitter sd 0.05 ms \
                 (correlation 0.99 per ms).",
                "ITU-T G.1050 (2007), core random loss 0.01 %..1 % (lower bound); LAN delay assumed.",
                LinkConfig {
                    loss: LossModel::Bernoulli { p: 0.0001 },
                    delay: delay(0.2, 0.05, 0.99),
                    ..LinkConfig::default()
                },
            ),
            "wifi" => (
                "Home WiFi: Bernoulli loss 0.12 %, base delay 2 ms, AR(1) jitter sd 1.5 ms \
                 (correlation 0.99 per ms), 1.8 delay spikes per minute of 150 ms draining at \
                 1 ms/ms (held packets leave together, in order), duplication 0.01 %.",
                "Huitema 2023/2025 WiFi measurements (0.12 % loss, median RTT 4 ms, ~1.8 spikes/min \
                 over 100 ms up to ~300 ms); Sui et al., MobiSys 2016; duplication: Paxson.",
                LinkConfig {
                    loss: LossModel::Bernoulli { p: 0.0012 },
                    delay: DelayModel {
                        spike_rate_per_min: 1.8,
                        spike_peak_ms: 150.0,
                        spike_drain: 1.0,
                        ..delay(2.0, 1.5, 0.99)
                    },
                    duplicate: 0.0001,
                    ..LinkConfig::default()
                },
            ),
            "lte" => (
                "LTE voice bearer: Gilbert-Elliott loss in 1 ms slices, mean 1 % in bursts of \
                 20 ms (p = 0.000505, r = 0.05), base delay 30 ms, AR(1) jitter sd 5 ms \
                 (correlation 0.99 per ms), 0.5 spikes per minute of 80 ms (handover), \
                 duplication 0.01 %.",
                "3GPP TS 23.203 (QCI-1: packet loss <= 1 %, delay budget 100 ms), TS 26.114 \
                 (~30 ms one-way, DRX/scheduling 0..20 ms); burst length and spikes assumed.",
                LinkConfig {
                    loss: ge_bursts(0.01, 20.0),
                    delay: DelayModel {
                        spike_rate_per_min: 0.5,
                        spike_peak_ms: 80.0,
                        spike_drain: 1.0,
                        ..delay(30.0, 5.0, 0.99)
                    },
                    duplicate: 0.0001,
                    ..LinkConfig::default()
                },
            ),
            "transatlantic" => (
                "Transatlantic fibre: Bernoulli loss 0.1 %, one 64 ms outage per hour (route \
                 flap), base delay 42 ms, AR(1) jitter sd 0.5 ms (correlation 0.99 per ms), \
                 0.2 spikes per minute of 20 ms, duplication 0.01 %.",
                "ITU-T G.1050 core (random loss 0.01 %..1 %, outages from 64 ms per hour); \
                 New York-London/Paris one-way 39..45 ms; duplication: Paxson.",
                LinkConfig {
                    loss: LossModel::Bernoulli { p: 0.001 },
                    outages: Some(Outages {
                        duration_ms: 64.0,
                        rate_per_min: 1.0 / 60.0,
                        at_ms: Vec::new(),
                    }),
                    delay: DelayModel {
                        spike_rate_per_min: 0.2,
                        spike_peak_ms: 20.0,
                        spike_drain: 1.0,
                        ..delay(42.0, 0.5, 0.99)
                    },
                    duplicate: 0.0001,
                },
            ),
            "bursty" => (
                "Bursty loss: Gilbert-Elliott in 1 ms slices, mean 5 % in bursts of 60 ms \
                 (p = 0.000877, r = 0.0167), base delay 25 ms, AR(1) jitter sd 2 ms \
                 (correlation 0.99 per ms).",
                "RFC 8868 (RTP congestion-control test cases: 5 % loss, bursts ~60 ms), stepped \
                 in time slices as in ITU-T G.1050.",
                LinkConfig {
                    loss: ge_bursts(0.05, 60.0),
                    delay: delay(25.0, 2.0, 0.99),
                    ..LinkConfig::default()
                },
            ),
            "hostile" => (
                "Hostile: Gilbert-Elliott in 1 ms slices, mean 20 % in bursts of 100 ms \
                 (p = 0.0025, r = 0.01), base delay 50 ms, AR(1) jitter sd 8 ms (correlation \
                 0.995 per ms), 3 spikes per minute of 250 ms, duplication 0.1 %.",
                "RFC 8868 (20 % loss, bursts ~100 ms); spikes after Huitema's WiFi measurements, \
                 made worse (assumed).",
                LinkConfig {
                    loss: ge_bursts(0.20, 100.0),
                    delay: DelayModel {
                        spike_rate_per_min: 3.0,
                        spike_peak_ms: 250.0,
                        spike_drain: 1.0,
                        ..delay(50.0, 8.0, 0.995)
                    },
                    duplicate: 0.001,
                    ..LinkConfig::default()
                },
            ),
            _ => return None,
        };
        Some(Profile {
            name: name.to_owned(),
            description: format!("{description} Reverse path: same as forward."),
            source: source.to_owned(),
            reverse: forward.clone(),
            forward,
        })
    }

    /// Names of the builtin profiles, mildest first.
    pub fn builtin_names() -> &'static [&'static str] {
        BUILTIN_NAMES
    }

    /// and the forward outages removed, so the forward loss is exactly `p` on average (for
    /// loss sweeps). Delay, duplication and the reverse path are unchanged.
    pub fn with_loss(&self, p: f64) -> Profile {
        let mut out = self.clone();
        out.forward.loss = LossModel::Bernoulli { p };
        out.forward.outages = None;
        out.description = format!(
            "{} Forward loss replaced by Bernoulli {:.4} %, forward outages removed.",
            self.description,
            p * 100.0
        );
        out
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::Link;
    use bytes::Bytes;
    use isostream_transport::time::Instant;

    #[test]
    fn builtin_profiles_measured_loss_matches_documented_mean() {
        // One simulated hour at 5 ms pacing per profile (720k packets).
        let n = 720_000u64;
        for name in Profile::builtin_names() {
            let profile = Profile::builtin(name).unwrap();
            assert_eq!(&profile.name, name);
            assert!(!profile.description.is_empty() && !profile.source.is_empty());
            profile.forward.validate("forward").unwrap();
            profile.reverse.validate("reverse").unwrap();
            let cfg = &profile.forward;
            let mut link = Link::new(cfg, 0x1505);
            for i in 0..n {
                let now = Instant::from_nanos(i * 5 * MS);
                link.send(now, Bytes::new());
                while link.poll_deliver(now).is_some() {}
            }
            let s = link.stats();
            let expect = cfg.expected_loss();
            // Tolerance: 4 standard errors of the model, plus 2e-5 absolute.
            let tol = 4.0 * loss_standard_error(cfg, 5.0, n as f64) + 2e-5;
            eprintln!(
                "{name}: loss {:.5} (expected {expect:.5} +- {tol:.5}), reordered {}, \
                 mean delay {:.2} ms (model {:.2}), max {:.1} ms",
                s.loss_rate(),
                s.reordered,
                s.mean_delay_ms,
                cfg.delay.mean_delay_ms(),
                s.max_delay_ms
            );
            assert!(
                (s.loss_rate() - expect).abs() < tol,
                "{name}: measured {:.5} expected {expect:.5} (tolerance {tol:.5})",
                s.loss_rate()
            );
            // Reordering of paced packets stays rare everywhere.
            let delivered_originals = s.offered - s.dropped - s.dropped_outage;
            assert!(
                (s.reordered as f64) < 0.01 * delivered_originals as f64,
                "{name}: {} reordered",
                s.reordered
            );
        }
        // The documented means.
        let mean = |n: &str| Profile::builtin(n).unwrap().forward.expected_loss();
        assert_eq!(mean("perfect"), 0.0);
        assert!((mean("lan") - 0.0001).abs() < 1e-9);
        assert!((mean("wifi") - 0.0012).abs() < 1e-9);
        assert!((mean("lte") - 0.01).abs() < 1e-9);
        assert!((mean("transatlantic") - 0.001).abs() < 3e-5);
        assert!((mean("bursty") - 0.05).abs() < 1e-9);
        assert!((mean("hostile") - 0.20).abs() < 1e-9);
    }

    #[test]
    fn bursty_and_hostile_bursts_last_as_documented() {
        for (name, burst_ms) in [("bursty", 60.0), ("hostile", 100.0)] {
            let cfg = Profile::builtin(name).unwrap().forward;
            let mut link = Link::new(&cfg, 99);
            losses(&mut link, MS, 20 * 60_000); // 1 ms pacing, 20 minutes
            let got = link.stats().mean_burst_len();
            assert!((got - burst_ms).abs() < 0.15 * burst_ms, "{name}: {got} ms");
        }
    }

    #[test]
    fn with_loss_replaces_forward_loss_only() {
        let p = Profile::builtin("transatlantic").unwrap().with_loss(0.03);
        assert_eq!(p.forward.loss, LossModel::Bernoulli { p: 0.03 });
        assert!(p.forward.outages.is_none());
        assert_eq!(p.forward.expected_loss(), 0.03);
        assert_eq!(
            p.reverse,
            Profile::builtin("transatlantic").unwrap().reverse
        );
        assert_eq!(p.forward.delay.base_ms, 42.0);
    }
}
