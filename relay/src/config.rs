//! Relay configuration.

use std::net::SocketAddr;

use isostream_transport::time::Duration;

/// Default high-water mark of the relay's own buffer, in ms of media ahead of its playout
/// clock: above it the relay PAUSEs its upstream. It is above a listener's stored-media
/// high-water mark (4000 ms), so a listener can fill its buffer from the relay's.
pub const DEFAULT_HIGH_WATER_MS: u32 = 6000;
/// Default low-water (RESUME) mark of the relay's buffer, in ms: at or below it the relay
/// RESUMEs its upstream.
pub const DEFAULT_LOW_WATER_MS: u32 = 4000;
/// Default listener timeout, in ms: a listener heard from for this long is dropped. A
/// listener refreshes its subscription with every receiver report (every 250 ms) and, before
/// its session starts, every SUBSCRIBE (every 1000 ms).
pub const DEFAULT_LISTENER_TIMEOUT_MS: u64 = 5000;
/// Default memory budget of the relay's packet store, in bytes (32 MiB: about 170 s of
/// 48 kHz stereo L16).
pub const DEFAULT_STORE_BUDGET_BYTES: usize = 32 << 20;
/// Smallest packet store budget, in bytes.
pub const MIN_STORE_BUDGET_BYTES: usize = 1 << 20;

/// Everything a relay session needs to know up front.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// PAUSE the upstream when the media stored ahead of the relay's playout clock exceeds
    /// this, in ms.
    pub high_water_ms: u32,
    /// RESUME the upstream when the media stored ahead of the playout clock falls to this,
    /// in ms.
    pub low_water_ms: u32,
    /// A listener not heard from for this long is dropped.
    pub listener_timeout: Duration,
    /// An upstream not heard from for this long (after it was heard once) has ended without
    /// BYE.
    pub upstream_timeout: Duration,
    /// Another relay to subscribe to (`relay --connect`): the upstream is that address,
    /// subscribed to until its stream arrives. `None`: the upstream is the first sender
    /// whose media or sender report arrives.
    pub connect: Option<SocketAddr>,
    /// The packet store's memory budget, in bytes (datagrams plus bookkeeping).
    pub store_budget_bytes: usize,
    /// How fast stored media goes to a listener that has not paused, in times real time
    /// (the sender's `--speed` rule; a live source's packets go out as they arrive).
    pub speed: f64,
    /// Interval between the relay's reports, upstream and to each listener.
    pub report_interval: Duration,
    /// Most listeners served at once; further subscriptions are refused and counted.
    pub max_listeners: usize,
    /// Seed of the relay's SSRC (its identity toward its upstream).
    pub seed: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            high_water_ms: DEFAULT_HIGH_WATER_MS,
            low_water_ms: DEFAULT_LOW_WATER_MS,
            listener_timeout: Duration::from_millis(DEFAULT_LISTENER_TIMEOUT_MS),
            upstream_timeout: Duration::from_secs(10),
            connect: None,
            store_budget_bytes: DEFAULT_STORE_BUDGET_BYTES,
            speed: 2.0,
            report_interval: Duration::from_millis(250),
            max_listeners: 4096,
            seed: 0,
        }
    }
}

/// A relay configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The settings contradict each other.
    #[error("{0}")]
    Config(String),
}

impl RelayConfig {
    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), RelayError> {
        if self.low_water_ms == 0 || self.low_water_ms >= self.high_water_ms {
            return Err(RelayError::Config(format!(
                "the low-water mark ({} ms) must be above 0 and below the high-water mark ({} ms)",
                self.low_water_ms, self.high_water_ms
            )));
        }
        if self.store_budget_bytes < MIN_STORE_BUDGET_BYTES {
            return Err(RelayError::Config(format!(
                "the store budget ({} bytes) must be at least 1 MiB",
                self.store_budget_bytes
            )));
        }
        if !(self.speed.is_finite() && self.speed >= 1.0) {
            return Err(RelayError::Config(format!(
                "the speed ({}) must be at least 1",
                self.speed
            )));
        }
        if self.listener_timeout.is_zero() || self.listener_timeout <= self.report_interval {
            return Err(RelayError::Config(format!(
                "the listener timeout ({} ms) must be longer than the report interval ({} ms)",
                self.listener_timeout.as_millis(),
                self.report_interval.as_millis()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_contradictions_are_refused() {
        RelayConfig::default().validate().unwrap();
        let bad = RelayConfig {
            low_water_ms: 6000,
            ..RelayConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("low-water"));
        let bad = RelayConfig {
            store_budget_bytes: 1000,
            ..RelayConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = RelayConfig {
            listener_timeout: Duration::from_millis(100),
            ..RelayConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
