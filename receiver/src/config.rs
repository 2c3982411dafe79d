//! Receiver configuration.

use isostream_media::{AudioSpec, SampleFormat};
use isostream_transport::time::Duration;

/// Default low-water mark for stored media, in ms: playback starts with this much buffered.
pub const STORED_LOW_WATER_MS: u32 = 200;
/// Default high-water mark for stored media, in ms: above it the sender is paused.
pub const STORED_HIGH_WATER_MS: u32 = 1000;
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
    /// Playback starts when every substream holds this much audio; RESUME is sent when the
    /// fullest substream drains back to it. In ms.
    pub low_water_ms: u32,
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
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            default_spec: AudioSpec {
                rate: 48_000,
                channels: 2,
                format: SampleFormat::S16,
            },
            low_water_ms: STORED_LOW_WATER_MS,
            high_water_ms: STORED_HIGH_WATER_MS,
            headroom_ms: 5_000,
            idle_timeout: Duration::from_secs(3),
            report_interval: Duration::from_millis(250),
            seed: 0,
            wallclock_at_zero_ns: 0,
            drift_correction: false,
            stock_l16_payload_type: None,
        }
    }
}

impl ReceiverConfig {
    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), crate::ReceiverError> {
        if self.low_water_ms == 0 || self.low_water_ms >= self.high_water_ms {
            return Err(crate::ReceiverError::Config(format!(
                "the low-water mark ({} ms) must be above 0 and below the high-water mark ({} ms)",
                self.low_water_ms, self.high_water_ms
            )));
        }
        Ok(())
    }
}
