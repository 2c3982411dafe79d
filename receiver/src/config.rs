//! Receiver configuration.

use isostream_media::{AudioSpec, SampleFormat};

pub use crate::budget::{DEFAULT_MEMORY_BUDGET_BYTES, MIN_MEMORY_BUDGET_BYTES};
use isostream_transport::time::Duration;

/// Default low-water mark for stored media, in ms: playback starts with this much buffered.
pub const STORED_LOW_WATER_MS: u32 = 300;
/// Default high-water mark for stored media, in ms: above it the sender is paused. Stored
/// media is sent ahead of playout (at twice the media rate by default) until the buffer
/// holds this much: enough to ride out delay spikes of a second or two and to ask for lost
/// packets several times.
pub const STORED_HIGH_WATER_MS: u32 = 4000;
/// Default RESUME mark for stored media, in ms: a paused sender is resumed when the buffer
/// drains to this much, well above the startup level, so the buffer stays deep.
pub const STORED_RESUME_WATER_MS: u32 = 2000;
/// Default low-water mark for live sources, in ms.
pub const LIVE_LOW_WATER_MS: u32 = 40;
/// Default high-water mark for live sources, in ms.
pub const LIVE_HIGH_WATER_MS: u32 = 200;

/// Everything a receiver session needs to know up front.
#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    /// What a stock RTP sender (no isostream session description) is assumed to send.
    /// Static payload types 10 and 11 imply 44.1 kHz stereo and mono L16 regardless.
    pub default_spec: AudioSpec,
    /// Playback starts when every substream holds this much audio. In ms.
    pub low_water_ms: u32,
    /// RESUME is sent when the fullest substream drains back to this much audio, in ms
    /// (`None`: the low-water mark).
    pub resume_water_ms: Option<u32>,
    /// PAUSE is sent when the fullest substream holds more than this. In ms.
    pub high_water_ms: u32,
    /// Jitter buffer size beyond the high-water mark, in ms: room for what is in flight
    /// while a PAUSE travels. Packets beyond it are dropped and counted as overflow.
    pub headroom_ms: u32,
    /// A session with no datagram from its sender for this long has ended.
    pub idle_timeout: Duration,
    /// Interval between receiver reports.
    pub report_interval: Duration,
    /// Seed for the receiver's SSRC.
    pub seed: u64,
    /// Wall-clock time at instant zero, in ns since the Unix epoch: with the sender reports'
    /// wall-clock times it gives the capture-to-playout latency.
    pub wallclock_at_zero_ns: u128,
    /// Estimate the sender's clock rate against the playout clock and resample so the buffer
    /// stays at its level (always on for live sessions). Off for stored media, which
    /// PAUSE/RESUME keeps in bounds.
    pub drift_correction: bool,
    /// A payload type that a stock sender uses for plain L16 (e.g. ffmpeg's 97, which is L24
    /// in isostream's numbering). Applies only to streams without a session description.
    pub stock_l16_payload_type: Option<u8>,
    /// Every buffer of the session counts against this, in bytes: jitter buffers, playout
    /// scratch, FEC and NACK state, the pending and successor queues
    /// ([`crate::budget::MemoryBudget`]). A session whose buffers would need more is refused
    /// (counted in `sessions_over_budget`). At least
    /// [`crate::budget::MIN_MEMORY_BUDGET_BYTES`].
    pub memory_budget_bytes: usize,
    /// Audio the caller holds after playout (the driver's queue to a file or pipe writer),
    /// counted against the budget with the session's own buffers, in ms of output frames.
    pub output_queue_ms: u32,
    /// The session is a member of an IP multicast group (docs/PROTOCOL.md, "Multicast"): it
    /// sends no PAUSE/RESUME (a group's sender obeys none; it sends at the media rate and
    /// the buffer fills to the low-water mark and plays), and its NACKs wait a random time
    /// up to [`crate::nack::MULTICAST_NACK_DELAY`] first, so a retransmission another
    /// member asked for (sent to the whole group) spares its own request.
    pub multicast: bool,
    /// A relay to subscribe to (`recv --connect`, docs/PROTOCOL.md, "Relay"): until its
    /// first session starts the receiver sends an APP `ISOS` SUBSCRIBE there every
    /// [`crate::subscription::SUBSCRIBE_INTERVAL`]; then its reports keep the subscription.
    pub connect: Option<std::net::SocketAddr>,
}

/// A library configuration: low-water 200 ms, high-water 1000 ms, RESUME at the low-water
/// mark. The command line's defaults for stored media differ (300 / 2000 / 4000 ms, the
/// `STORED_*` constants, applied by `src/cmd/opts.rs`), chosen by the measurements in
/// docs/BENCHMARKS.md.
impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            default_spec: AudioSpec {
                rate: 48_000,
                channels: 2,
                format: SampleFormat::S16,
            },
            low_water_ms: 200,
            resume_water_ms: None,
            high_water_ms: 1000,
            headroom_ms: 5_000,
            idle_timeout: Duration::from_secs(3),
            report_interval: Duration::from_millis(250),
            seed: 0,
            wallclock_at_zero_ns: 0,
            drift_correction: false,
            stock_l16_payload_type: None,
            memory_budget_bytes: crate::budget::DEFAULT_MEMORY_BUDGET_BYTES,
            output_queue_ms: 0,
            multicast: false,
            connect: None,
        }
    }
}

impl ReceiverConfig {
    /// The RESUME mark in effect, in ms.
    pub fn resume_water_ms_or_low(&self) -> u32 {
        self.resume_water_ms.unwrap_or(self.low_water_ms)
    }

    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), crate::error::ReceiverError> {
        if self.low_water_ms == 0 || self.low_water_ms >= self.high_water_ms {
            return Err(crate::error::ReceiverError::Config(format!(
                "the low-water mark ({} ms) must be above 0 and below the high-water mark ({} ms)",
                self.low_water_ms, self.high_water_ms
            )));
        }
        if self.memory_budget_bytes < crate::budget::MIN_MEMORY_BUDGET_BYTES {
            return Err(crate::error::ReceiverError::Config(format!(
                "the memory budget ({} bytes) must be at least {} MiB",
                self.memory_budget_bytes,
                crate::budget::MIN_MEMORY_BUDGET_BYTES >> 20
            )));
        }
        if let Some(r) = self.resume_water_ms {
            if r < self.low_water_ms || r >= self.high_water_ms {
                return Err(crate::error::ReceiverError::Config(format!(
                    "the RESUME mark ({r} ms) must be between the low-water mark ({} ms) and below the high-water mark ({} ms)",
                    self.low_water_ms, self.high_water_ms
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_budget_has_a_floor() {
        let mut cfg = ReceiverConfig::default();
        assert_eq!(cfg.memory_budget_bytes, DEFAULT_MEMORY_BUDGET_BYTES);
        cfg.validate().unwrap();
        cfg.memory_budget_bytes = MIN_MEMORY_BUDGET_BYTES;
        cfg.validate().unwrap();
        cfg.memory_budget_bytes -= 1;
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("at least 16 MiB"), "{e}");
    }
}
