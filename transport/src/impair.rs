//! Deterministic network impairment model, shared by the virtual-time benchmark
//! (`isostream bench`) and the real-time UDP relay (`isostream impair`).
//!
//! A [`Link`] is one direction of a path. Datagrams offered with [`Link::send`] are either
//! dropped or scheduled for delivery (possibly twice, for duplicates); [`Link::poll_deliver`]
//! hands them back once their delivery time has come. The model never reads a clock and never
//! asks the OS for randomness: every decision comes from the `now` arguments and from the
//! seed given to [`Link::new`], so the same seed and the same calls give the same deliveries,
//! bit for bit.
//!
//! # Model
//!
//! * **Loss** ([`LossModel`]): none, independent Bernoulli, Gilbert-Elliott (two-state Markov
//!   chain stepped per packet, or per time slice as in ITU-T G.1050 so that every sender
//!   faces the same bursts whatever its packet rate), or a repeating 0/1 trace per packet or
//!   per millisecond.
//! * **Outages** ([`Outages`]): everything sent inside a window of `duration_ms` is lost; the
//!   windows occur as a Poisson process and/or at fixed times on the timeline (origin
//!   [`Instant::ZERO`]). They are driven by time only, so every sender with the same seed
//!   sees the same windows.
//! * **Delay** ([`DelayModel`]): `base + max(0, x) + spike`, where `x` is an AR(1) process
//!   (stationary std dev `jitter_ms`, correlation per packet or per millisecond) and `spike`
//!   is a queue build-up that starts at a Poisson rate, jumps to `spike_peak_ms` and drains
//!   linearly at `spike_drain` ms per ms. Packets sent during a spike leave in send order (a
//!   queue); elsewhere packets reorder exactly where their delivery times cross.
//! * **Duplication**: with probability `duplicate` a second copy is delivered up to 1 ms after
//!   the first.
//!
//! Builtin [`Profile`]s (`perfect`, `lan`, `wifi`, `lte`, `transatlantic`, `bursty`,
//! `hostile`) document their parameters and sources; profiles can also be loaded from TOML or
//! JSON files.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Exp1, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::time::Instant;

/// Nanoseconds per millisecond, as a float.
const NS_PER_MS: f64 = 1e6;
/// Milliseconds per minute, as a float.
const MS_PER_MIN: f64 = 60_000.0;
/// Largest extra delay given to a duplicate, in milliseconds.
const DUPLICATE_MAX_EXTRA_MS: f64 = 1.0;

/// Why a profile could not be found, read or accepted.
#[derive(Debug, thiserror::Error)]
pub enum ImpairError {
    /// A profile or trace file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A profile or trace file could not be parsed.
    #[error("cannot parse {}: {message}", path.display())]
    Parse {
        /// The file that could not be parsed.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The name is neither a builtin profile nor an existing file.
    #[error("unknown impairment profile `{name}`: not a builtin ({builtins}) and no such file")]
    UnknownProfile {
        /// The name or path that was asked for.
        name: String,
        /// The builtin profile names, comma-separated.
        builtins: String,
    },
    /// A profile file has an extension other than `.toml` or `.json`.
    #[error("profile file {} must end in .toml or .json", .0.display())]
    Extension(PathBuf),
    /// A parameter is out of range (a probability outside 0..=1, a negative delay, ...).
    #[error("invalid impairment parameter: {0}")]
    Invalid(String),
}

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

/// How packets are lost (outages are separate: see [`Outages`]).
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
        /// the send time from [`Instant::ZERO`].
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

    /// A trace model read from a text file (`0`/`1` characters, one per entry or per line;
    /// whitespace, commas and `#` comments ignored).
    pub fn trace_from_file(path: &Path, per: Per) -> Result<LossModel, ImpairError> {
        let text = std::fs::read_to_string(path).map_err(|source| ImpairError::Io {
            path: path.to_owned(),
            source,
        })?;
        let entries = parse_trace(&text).map_err(|message| ImpairError::Parse {
            path: path.to_owned(),
            message,
        })?;
        let pattern: String = entries.iter().map(|&l| if l { '1' } else { '0' }).collect();
        Ok(LossModel::Trace {
            pattern,
            file: Some(path.to_owned()),
            per,
        })
    }

    fn validate(&self, what: &str) -> Result<(), ImpairError> {
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

/// Periods during which everything sent is lost.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Outages {
    /// Length of each outage, in milliseconds.
    pub duration_ms: f64,
    /// Mean number of random outages per minute (Poisson; the next outage is drawn after the
    /// previous one ends). 0 for none.
    pub rate_per_min: f64,
    /// Start times of fixed outages, in milliseconds from [`Instant::ZERO`].
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

    fn validate(&self, what: &str) -> Result<(), ImpairError> {
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

/// One direction of a path: loss, outages, delay and duplication. `Default` is a perfect link.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinkConfig {
    /// Packet loss model.
    pub loss: LossModel,
    /// Outages (everything lost for a while), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outages: Option<Outages>,
    /// One-way delay model.
    pub delay: DelayModel,
    /// Probability (0..=1) that a delivered packet is delivered twice.
    pub duplicate: f64,
}

impl LinkConfig {
    /// Long-run expected loss fraction (0..=1): the loss model combined with random outages.
    pub fn expected_loss(&self) -> f64 {
        let o = self.outages.as_ref().map_or(0.0, Outages::mean_fraction);
        let l = self.loss.mean_loss();
        if o == 0.0 {
            l
        } else {
            l + o - l * o
        }
    }

    /// Checks every parameter is in range; `what` names the link in messages.
    pub fn validate(&self, what: &str) -> Result<(), ImpairError> {
        self.loss.validate(what)?;
        self.delay.validate(what)?;
        check_prob(&format!("{what}.duplicate"), self.duplicate)?;
        if let Some(o) = &self.outages {
            let bad = [o.duration_ms, o.rate_per_min]
                .into_iter()
                .chain(o.at_ms.iter().copied())
                .any(|v| !(v.is_finite() && v >= 0.0));
            if bad {
                return Err(ImpairError::Invalid(format!(
                    "{what}.outages: durations, rates and times must be >= 0"
                )));
            }
        }
        Ok(())
    }
}

/// A named pair of link configurations with its documentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "ProfileFile")]
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

/// On-disk form of a profile: everything optional, `reverse` defaults to `forward`.
#[derive(Deserialize)]
struct ProfileFile {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    forward: LinkConfig,
    #[serde(default)]
    reverse: Option<LinkConfig>,
}

impl From<ProfileFile> for Profile {
    fn from(f: ProfileFile) -> Self {
        let reverse = f.reverse.unwrap_or_else(|| f.forward.clone());
        Profile {
            name: f.name,
            description: f.description,
            source: f.source,
            forward: f.forward,
            reverse,
        }
    }
}

const BUILTIN_NAMES: &[&str] = &[
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

    /// Loads a profile from a `.toml` or `.json` file. Missing fields take their defaults
    /// (a perfect link), a missing `reverse` copies `forward`, a missing `name` is the file
    /// stem, and trace files are read relative to the profile file.
    pub fn load(path: &Path) -> Result<Profile, ImpairError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("toml" | "json")) {
            return Err(ImpairError::Extension(path.to_owned()));
        }
        let text = std::fs::read_to_string(path).map_err(|source| ImpairError::Io {
            path: path.to_owned(),
            source,
        })?;
        let parse_err = |message: String| ImpairError::Parse {
            path: path.to_owned(),
            message,
        };
        let mut profile: Profile = match ext.as_deref() {
            Some("toml") => toml::from_str(&text).map_err(|e| parse_err(e.to_string()))?,
            Some("json") => serde_json::from_str(&text).map_err(|e| parse_err(e.to_string()))?,
            _ => return Err(ImpairError::Extension(path.to_owned())),
        };
        if profile.name.is_empty() {
            profile.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        for link in [&mut profile.forward, &mut profile.reverse] {
            if let LossModel::Trace {
                pattern,
                file: Some(file),
                per,
            } = &link.loss
            {
                if pattern.trim().is_empty() {
                    link.loss = LossModel::trace_from_file(&dir.join(file), *per)?;
                }
            }
        }
        profile.forward.validate("forward")?;
        profile.reverse.validate("reverse")?;
        Ok(profile)
    }

    /// A builtin profile by name, else a profile file by path. The error lists the builtins.
    pub fn resolve(name_or_path: &str) -> Result<Profile, ImpairError> {
        if let Some(p) = Profile::builtin(name_or_path) {
            return Ok(p);
        }
        let path = Path::new(name_or_path);
        if path.is_file() {
            return Profile::load(path);
        }
        Err(ImpairError::UnknownProfile {
            name: name_or_path.to_owned(),
            builtins: BUILTIN_NAMES.join(", "),
        })
    }

    /// This profile with the forward loss replaced by independent Bernoulli loss `p` (0..=1)
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

/// Counters of one [`Link`] since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LinkStats {
    /// Datagrams offered with [`Link::send`].
    pub offered: u64,
    /// Datagrams dropped by the loss model (outside outages).
    pub dropped: u64,
    /// Datagrams dropped because they were sent during an outage.
    pub dropped_outage: u64,
    /// Runs of consecutive offered datagrams that were lost (for any reason).
    pub loss_bursts: u64,
    /// Datagrams scheduled a second time (duplicates).
    pub duplicated: u64,
    /// Datagrams handed out by [`Link::poll_deliver`], duplicates included.
    pub delivered: u64,
    /// Delivered originals that arrived while an earlier-sent, not-lost original was still
    /// in flight (they overtook it).
    pub reordered: u64,
    /// Mean one-way delay (delivery time minus send time) of delivered originals, in ms.
    pub mean_delay_ms: f64,
    /// Largest one-way delay of a delivered original, in ms.
    pub max_delay_ms: f64,
}

impl LinkStats {
    /// Fraction (0..=1) of offered datagrams that were lost, outages included.
    pub fn loss_rate(&self) -> f64 {
        if self.offered == 0 {
            0.0
        } else {
            (self.dropped + self.dropped_outage) as f64 / self.offered as f64
        }
    }

    /// Mean number of datagrams per loss burst (0 if nothing was lost).
    pub fn mean_burst_len(&self) -> f64 {
        if self.loss_bursts == 0 {
            0.0
        } else {
            (self.dropped + self.dropped_outage) as f64 / self.loss_bursts as f64
        }
    }
}

/// Runtime state of the loss model.
#[derive(Debug)]
enum LossState {
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
    fn new(model: &LossModel) -> Self {
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
    fn lost(&mut self, now_ns: u64, rng: &mut StdRng) -> bool {
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

/// Runtime state of the outages: fixed windows and a lazily drawn Poisson process.
#[derive(Debug)]
struct OutageState {
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
    fn new(o: &Outages, rng: StdRng) -> Self {
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
    fn active(&mut self, now_ns: u64) -> bool {
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

/// Runtime state of the delay model.
#[derive(Debug)]
struct DelayState {
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
    fn new(d: &DelayModel, spike_rng: StdRng) -> Self {
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
    fn delivery(&mut self, now_ns: u64, rng: &mut StdRng) -> u64 {
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

/// A datagram in flight.
#[derive(Debug)]
struct InFlight {
    at_ns: u64,
    /// Scheduling order, breaks ties in send order.
    order: u64,
    /// Send sequence number of the original.
    seq: u64,
    duplicate: bool,
    sent_ns: u64,
    data: Bytes,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at_ns, self.order).cmp(&(other.at_ns, other.order))
    }
}

/// One direction of an impaired path (see the [module docs](self)).
#[derive(Debug)]
pub struct Link {
    loss: LossState,
    outages: Option<OutageState>,
    delay: DelayState,
    duplicate: f64,
    loss_rng: StdRng,
    jitter_rng: StdRng,
    dup_rng: StdRng,
    queue: BinaryHeap<Reverse<InFlight>>,
    /// Send sequence numbers of originals still in flight.
    in_flight: BTreeSet<u64>,
    next_seq: u64,
    next_order: u64,
    last_lost: bool,
    stats: LinkStats,
    delay_sum_ns: u128,
    delay_count: u64,
    delay_max_ns: u64,
}

/// SplitMix64: derives independent sub-seeds from one seed.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn sub_rng(seed: u64, stream: u64) -> StdRng {
    StdRng::seed_from_u64(splitmix64(
        splitmix64(seed) ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03),
    ))
}

impl Link {
    /// A link following `config`, all randomness drawn from `seed`. Out-of-range
    /// parameters are clamped (use [`LinkConfig::validate`] to reject them); an empty or
    /// unparsable trace loses nothing. Loss, outages, jitter, spikes and duplication use
    /// separate streams derived from `seed`, so e.g. outages and spikes depend on time only.
    pub fn new(config: &LinkConfig, seed: u64) -> Link {
        Link {
            loss: LossState::new(&config.loss),
            outages: config
                .outages
                .as_ref()
                .map(|o| OutageState::new(o, sub_rng(seed, 2))),
            delay: DelayState::new(&config.delay, sub_rng(seed, 4)),
            duplicate: config.duplicate.clamp(0.0, 1.0),
            loss_rng: sub_rng(seed, 1),
            jitter_rng: sub_rng(seed, 3),
            dup_rng: sub_rng(seed, 5),
            queue: BinaryHeap::new(),
            in_flight: BTreeSet::new(),
            next_seq: 0,
            next_order: 0,
            last_lost: false,
            stats: LinkStats::default(),
            delay_sum_ns: 0,
            delay_count: 0,
            delay_max_ns: 0,
        }
    }

    /// Offer a datagram sent at `now`: it is dropped, or scheduled (maybe twice). Calls
    /// should come with non-decreasing `now`.
    pub fn send(&mut self, now: Instant, datagram: Bytes) {
        let now_ns = now.as_nanos();
        self.stats.offered += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        // Always step the loss model so its state does not depend on the outages.
        let lost = self.loss.lost(now_ns, &mut self.loss_rng);
        let outage = self.outages.as_mut().is_some_and(|o| o.active(now_ns));
        if outage || lost {
            if outage {
                self.stats.dropped_outage += 1;
            } else {
                self.stats.dropped += 1;
            }
            if !self.last_lost {
                self.stats.loss_bursts += 1;
            }
            self.last_lost = true;
            return;
        }
        self.last_lost = false;
        let at_ns = self.delay.delivery(now_ns, &mut self.jitter_rng);
        let duplicate = self.duplicate > 0.0 && self.dup_rng.random::<f64>() < self.duplicate;
        let dup_at_ns = duplicate.then(|| {
            let extra = self.dup_rng.random::<f64>() * DUPLICATE_MAX_EXTRA_MS;
            at_ns.saturating_add(ms_to_ns(extra))
        });
        self.in_flight.insert(seq);
        self.push(at_ns, seq, false, now_ns, datagram.clone());
        if let Some(at) = dup_at_ns {
            self.stats.duplicated += 1;
            self.push(at, seq, true, now_ns, datagram);
        }
    }

    fn push(&mut self, at_ns: u64, seq: u64, duplicate: bool, sent_ns: u64, data: Bytes) {
        let order = self.next_order;
        self.next_order += 1;
        self.queue.push(Reverse(InFlight {
            at_ns,
            order,
            seq,
            duplicate,
            sent_ns,
            data,
        }));
    }

    /// Delivery time of the earliest datagram in flight, if any.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.queue.peek().map(|r| Instant::from_nanos(r.0.at_ns))
    }

    /// Datagrams in flight (scheduled, not yet delivered), duplicates included.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Pops one datagram whose delivery time is <= now, earliest first (ties in send order).
    pub fn poll_deliver(&mut self, now: Instant) -> Option<Bytes> {
        if self.queue.peek()?.0.at_ns > now.as_nanos() {
            return None;
        }
        let Reverse(p) = self.queue.pop()?;
        self.stats.delivered += 1;
        if !p.duplicate {
            self.in_flight.remove(&p.seq);
            if self.in_flight.first().is_some_and(|&s| s < p.seq) {
                self.stats.reordered += 1;
            }
            let d = p.at_ns.saturating_sub(p.sent_ns);
            self.delay_sum_ns += d as u128;
            self.delay_count += 1;
            self.delay_max_ns = self.delay_max_ns.max(d);
        }
        Some(p.data)
    }

    /// Counters since the link was created.
    pub fn stats(&self) -> LinkStats {
        let mut s = self.stats;
        if self.delay_count > 0 {
            s.mean_delay_ms = self.delay_sum_ns as f64 / self.delay_count as f64 / NS_PER_MS;
        }
        s.max_delay_ms = self.delay_max_ns as f64 / NS_PER_MS;
        s
    }
}

/// Long-run probability of the bad state, p/(p+r) (0 if the chain never moves).
fn stationary_bad(p: f64, r: f64) -> f64 {
    if p + r > 0.0 {
        p / (p + r)
    } else {
        0.0
    }
}

fn clamp_drain(d: f64) -> f64 {
    if d.is_finite() && d > 0.0 {
        d.min(1.0)
    } else {
        1.0
    }
}

fn ms_to_ns(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        (ms * NS_PER_MS).round() as u64
    } else {
        0
    }
}

fn check_prob(name: &str, v: f64) -> Result<(), ImpairError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(ImpairError::Invalid(format!(
            "{name} must be in 0..=1, got {v}"
        )))
    }
}

/// Parses a loss trace: `0`/`1` characters, whitespace and commas ignored, `#` starts a
/// comment running to the end of the line.
fn parse_trace(text: &str) -> Result<Vec<bool>, String> {
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

    const MS: u64 = 1_000_000;

    fn at_ms(ms: u64) -> Instant {
        Instant::from_nanos(ms * MS)
    }

    /// Sends one datagram every `spacing_ns` (payload = sequence number) for `n` packets,
    /// polling each delivery at its exact delivery time. Returns (seq, sent ns, delivered ns).
    fn run(link: &mut Link, spacing_ns: u64, n: u64) -> Vec<(u64, u64, u64)> {
        let mut sent_at = Vec::with_capacity(n as usize);
        let mut out = Vec::new();
        let mut drain = |link: &mut Link, until: Option<u64>, sent_at: &Vec<u64>| {
            while let Some(t) = link.next_delivery() {
                if until.is_some_and(|u| t.as_nanos() > u) {
                    break;
                }
                let d = link.poll_deliver(t).expect("due datagram");
                let seq = u64::from_le_bytes(d[..8].try_into().unwrap());
                out.push((seq, sent_at[seq as usize], t.as_nanos()));
            }
        };
        for i in 0..n {
            let t = i * spacing_ns;
            drain(link, Some(t), &sent_at);
            sent_at.push(t);
            link.send(
                Instant::from_nanos(t),
                Bytes::copy_from_slice(&i.to_le_bytes()),
            );
        }
        drain(link, None, &sent_at);
        out
    }

    /// Sends `n` packets every `spacing_ns` and returns, per packet, whether it was lost.
    fn losses(link: &mut Link, spacing_ns: u64, n: u64) -> Vec<bool> {
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let before = link.stats();
            link.send(Instant::from_nanos(i * spacing_ns), Bytes::new());
            let after = link.stats();
            out.push(after.dropped + after.dropped_outage > before.dropped + before.dropped_outage);
            while link.poll_deliver(Instant::from_nanos(u64::MAX)).is_some() {}
        }
        out
    }

    fn ge(p: f64, r: f64, loss_good: f64, loss_bad: f64, step: Step) -> LinkConfig {
        LinkConfig {
            loss: LossModel::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
                step,
            },
            ..LinkConfig::default()
        }
    }

    /// Standard error of the measured loss fraction of `n` packets sent every `spacing_ms`.
    fn loss_standard_error(cfg: &LinkConfig, spacing_ms: f64, n: f64) -> f64 {
        let mut var = match &cfg.loss {
            LossModel::None | LossModel::Trace { .. } => 0.0,
            LossModel::Bernoulli { p } => p * (1.0 - p) / n,
            LossModel::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
                step,
            } => {
                let steps = match step {
                    Step::PerPacket => 1.0,
                    Step::Slice { ms } => (spacing_ms / ms).max(1.0),
                };
                let pb = stationary_bad(*p, *r);
                let lam = (1.0 - p - r).powf(steps);
                let within =
                    pb * loss_bad * (1.0 - loss_bad) + (1.0 - pb) * loss_good * (1.0 - loss_good);
                (loss_bad - loss_good).powi(2) * pb * (1.0 - pb) * (1.0 + lam) / (1.0 - lam) / n
                    + within / n
            }
        };
        if let Some(o) = &cfg.outages {
            // Poisson count of outages in the run, each removing duration/spacing packets.
            let t_ms = n * spacing_ms;
            let count = t_ms * o.rate_per_min / MS_PER_MIN;
            var += count * (o.duration_ms / t_ms).powi(2);
        }
        var.sqrt()
    }

    #[test]
    fn same_seed_same_deliveries_different_seed_differs() {
        let cfg = Profile::builtin("hostile").unwrap().forward;
        let a = run(&mut Link::new(&cfg, 42), 5 * MS, 20_000);
        let b = run(&mut Link::new(&cfg, 42), 5 * MS, 20_000);
        let c = run(&mut Link::new(&cfg, 43), 5 * MS, 20_000);
        assert!(!a.is_empty());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let s = Link::new(&cfg, 42).stats();
        assert_eq!(s, LinkStats::default());
    }

    #[test]
    fn perfect_link_delivers_everything_immediately_in_order() {
        let mut link = Link::new(&LinkConfig::default(), 1);
        let out = run(&mut link, MS, 1000);
        assert_eq!(out.len(), 1000);
        for (i, &(seq, sent, at)) in out.iter().enumerate() {
            assert_eq!((seq, at), (i as u64, sent));
        }
        let s = link.stats();
        assert_eq!(
            (s.offered, s.delivered, s.reordered, s.dropped),
            (1000, 1000, 0, 0)
        );
        assert_eq!(s.max_delay_ms, 0.0);
    }

    #[test]
    fn bernoulli_10_percent_within_4_standard_errors() {
        let cfg = LinkConfig {
            loss: LossModel::Bernoulli { p: 0.1 },
            ..LinkConfig::default()
        };
        let n = 100_000u64;
        let mut link = Link::new(&cfg, 7);
        let delivered = run(&mut link, MS, n).len() as u64;
        let s = link.stats();
        assert_eq!(s.offered, n);
        assert_eq!(s.dropped + delivered, n);
        let se = (0.1f64 * 0.9 / n as f64).sqrt();
        assert!(
            (s.loss_rate() - 0.1).abs() < 4.0 * se,
            "loss {}",
            s.loss_rate()
        );
    }

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

    #[test]
    fn duplicates_arrive_shortly_after_the_original() {
        let cfg = LinkConfig {
            duplicate: 0.05,
            delay: DelayModel {
                base_ms: 10.0,
                ..DelayModel::default()
            },
            ..LinkConfig::default()
        };
        let n = 20_000;
        let mut link = Link::new(&cfg, 17);
        let out = run(&mut link, 5 * MS, n);
        let s = link.stats();
        assert_eq!(s.delivered, n + s.duplicated);
        assert_eq!(out.len() as u64, s.delivered);
        let se = (0.05f64 * 0.95 / n as f64).sqrt();
        assert!((s.duplicated as f64 / n as f64 - 0.05).abs() < 4.0 * se);
        let mut seen = vec![0u32; n as usize];
        for &(seq, sent, at) in &out {
            seen[seq as usize] += 1;
            assert!(at >= sent + 10 * MS && at <= sent + 11 * MS);
        }
        assert_eq!(
            seen.iter().filter(|&&c| c == 2).count() as u64,
            s.duplicated
        );
        assert_eq!(s.reordered, 0);
    }

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

    fn temp_path(tag: &str, ext: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        std::env::temp_dir().join(format!(
            "isostream-impair-{}-{}-{tag}.{ext}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    #[test]
    fn profiles_load_from_toml_and_json() {
        let toml_text = r#"
            description = "test"
            [forward]
            duplicate = 0.001
            [forward.loss]
            model = "gilbert_elliott"
            p = 0.01
            r = 0.1
            loss_good = 0
            loss_bad = 1
            step = { kind = "per_packet" }
            [forward.delay]
            base_ms = 12.5
            jitter_ms = 1
            [reverse.loss]
            model = "bernoulli"
            p = 0.02
        "#;
        let path = temp_path("a", "toml");
        std::fs::write(&path, toml_text).unwrap();
        let p = Profile::load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(p.name, path.file_stem().unwrap().to_string_lossy());
        assert_eq!(
            p.forward.loss,
            LossModel::GilbertElliott {
                p: 0.01,
                r: 0.1,
                loss_good: 0.0,
                loss_bad: 1.0,
                step: Step::PerPacket
            }
        );
        assert_eq!(p.forward.delay.base_ms, 12.5);
        assert_eq!(p.forward.delay.correlation, 0.99); // default
        assert_eq!(p.forward.duplicate, 0.001);
        assert_eq!(p.reverse.loss, LossModel::Bernoulli { p: 0.02 });
        assert_eq!(p.reverse.delay, DelayModel::default());

        // JSON round trip of a builtin; a missing reverse copies forward.
        let wifi = Profile::builtin("wifi").unwrap();
        let path = temp_path("b", "json");
        std::fs::write(&path, serde_json::to_string_pretty(&wifi).unwrap()).unwrap();
        assert_eq!(Profile::load(&path).unwrap(), wifi);
        std::fs::write(
            &path,
            r#"{"name": "j", "forward": {"loss": {"model": "bernoulli", "p": 0.3}}}"#,
        )
        .unwrap();
        let j = Profile::resolve(path.to_str().unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(j.name, "j");
        assert_eq!(j.reverse, j.forward);
        assert_eq!(j.forward.loss, LossModel::Bernoulli { p: 0.3 });

        // TOML round trip of every builtin.
        for name in Profile::builtin_names() {
            let b = Profile::builtin(name).unwrap();
            let path = temp_path(name, "toml");
            std::fs::write(&path, toml::to_string(&b).unwrap()).unwrap();
            let back = Profile::load(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert_eq!(back, b, "{name}");
        }
    }

    #[test]
    fn profile_trace_file_is_read_relative_to_the_profile() {
        let trace = temp_path("trace", "txt");
        std::fs::write(&trace, "1\n1\n0\n0\n0\n0\n0\n0\n0\n0\n").unwrap();
        let profile = temp_path("traced", "toml");
        std::fs::write(
            &profile,
            format!(
                "[forward.loss]\nmodel = \"trace\"\nfile = \"{}\"\n",
                trace.file_name().unwrap().to_string_lossy()
            ),
        )
        .unwrap();
        let p = Profile::load(&profile).unwrap();
        std::fs::remove_file(&trace).unwrap();
        std::fs::remove_file(&profile).unwrap();
        assert!((p.forward.expected_loss() - 0.2).abs() < 1e-12);
        let lost = losses(&mut Link::new(&p.forward, 0), 5 * MS, 20);
        assert_eq!(lost.iter().filter(|&&l| l).count(), 4);
        assert!(lost[0] && lost[1] && !lost[2] && lost[10]);
    }

    #[test]
    fn example_profile_file_loads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/profiles/example.toml");
        let p = Profile::load(Path::new(path)).unwrap();
        assert_eq!(p.name, "example");
        assert!(!p.description.is_empty());
        assert!(matches!(
            p.forward.loss,
            LossModel::GilbertElliott {
                step: Step::Slice { .. },
                ..
            }
        ));
        assert!(p.forward.outages.is_some());
        assert!(p.forward.delay.spike_rate_per_min > 0.0);
        assert_ne!(p.reverse, p.forward);
        let mut link = Link::new(&p.forward, 1);
        run(&mut link, 5 * MS, 1000);
        assert_eq!(link.stats().offered, 1000);
    }

    #[test]
    fn unknown_names_and_bad_files_give_clear_errors() {
        let e = Profile::resolve("no-such-profile").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("no-such-profile"), "{msg}");
        for name in Profile::builtin_names() {
            assert!(msg.contains(name), "{msg}");
        }
        assert!(matches!(Profile::resolve("lte"), Ok(p) if p.name == "lte"));
        assert!(Profile::builtin("LTE ").is_none());

        let path = temp_path("bad", "toml");
        std::fs::write(&path, "[forward.loss]\nmodel = \"bernoulli\"\np = 1.5\n").unwrap();
        let e = Profile::load(&path).unwrap_err();
        assert!(matches!(e, ImpairError::Invalid(_)), "{e}");
        std::fs::write(&path, "[forward.loss]\nmodel = \"lossy\"\n").unwrap();
        let e = Profile::load(&path).unwrap_err();
        assert!(matches!(e, ImpairError::Parse { .. }), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = Profile::load(&temp_path("missing", "toml")).unwrap_err();
        assert!(matches!(e, ImpairError::Io { .. }), "{e}");
        let e = Profile::load(Path::new("profile.yaml")).unwrap_err();
        assert!(matches!(e, ImpairError::Extension(_)), "{e}");
        assert!(e.to_string().contains(".toml or .json"), "{e}");
    }

    #[test]
    fn link_is_send() {
        fn is_send<T: Send>() {}
        is_send::<Link>();
        is_send::<Profile>();
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
