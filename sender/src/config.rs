//! Sender configuration.

use crate::pacer::Speed;
use isostream_media::AudioSpec;
use isostream_transport::fec::FecParams;
use isostream_transport::time::Duration;

/// Everything a sender session needs to know up front.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// The input audio (all channels of all substreams, in substream order).
    pub spec: AudioSpec,
    /// Channels of each substream, in order (their sum is `spec.channels`); one entry with all
    /// channels for a simple stream.
    pub substream_channels: Vec<u16>,
    /// Frames per packet (e.g. 240 = 5 ms at 48 kHz).
    pub packet_frames: u32,
    /// Reed-Solomon repair packets, or `None` for plain RTP.
    pub fec: Option<FecParams>,
    /// Interleave depth D in packets (1 = plain L16/L24).
    pub interleave: u8,
    /// FEC blocks whose transmission is spread over one another (1 = none).
    pub spread: u8,
    /// How fast stored media is sent.
    pub speed: Speed,
    /// A live source: audio pushed while paused is dropped and counted.
    pub live: bool,
    /// Seed for the SSRCs, first sequence numbers and timestamps (RFC 3550 wants them random;
    /// the driver seeds from the OS, tests and the benchmark from a fixed value).
    pub seed: u64,
    /// The first RTP sequence number of every substream's media, instead of a random one
    /// from `seed` (tests use it to cross the wrap at 65535 at a chosen point).
    pub first_seq: Option<u16>,
    /// The first RTP timestamp of every substream, instead of a random one from `seed`
    /// (tests use it to cross the 32-bit wrap inside a session).
    pub first_timestamp: Option<u32>,
    /// Stop when the receiver has been heard from and then says nothing for this long.
    pub receiver_timeout: Duration,
    /// Interval between RTCP sender reports and session descriptions.
    pub report_interval: Duration,
    /// Wall-clock time at instant zero, in nanoseconds since the Unix epoch (for the NTP
    /// timestamps of sender reports).
    pub wallclock_at_zero_ns: u128,
    /// RTCP CNAME.
    pub cname: String,
    /// Answer NACKs with retransmissions (RFC 4585 / RFC 4588), with these settings; `None`:
    /// NACKs are ignored.
    pub retransmission: Option<crate::retransmit::RtxParams>,
    /// Where the session's datagrams go (the receiver, or a relay in front of it): the
    /// address of every [`isostream_transport::sans_io::Transmit`] it hands out.
    pub receiver_addr: std::net::SocketAddr,
    /// `receiver_addr` is an IP multicast group (RFC 5760's model: media and
    /// retransmissions go to the group, reports come back by unicast from any member).
    /// The session then takes reports and NACKs from any address, obeys no receiver's
    /// PAUSE/RESUME (they are counted in `requests_ignored` and dropped), and never stops
    /// because a receiver went silent (`receiver_timeout` is not applied).
    pub multicast: bool,
    /// The sender's buffers count against this, in bytes: the retransmission history
    /// above all (see [`SenderConfig::memory_bytes`]); a configuration needing more is
    /// refused. At least [`MIN_MEMORY_BUDGET_BYTES`].
    pub memory_budget_bytes: usize,
    /// How the audio is coded: PCM, or Opus (then `spec.rate` must be 48 kHz,
    /// `packet_frames` the Opus frame duration and `interleave` 1).
    pub codec: Codec,
}

/// How the audio is coded on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Codec {
    /// Raw PCM samples in the input's format (L16/L24/F32): the default.
    #[default]
    Pcm,
    /// Opus (RFC 7587) with these settings; needs the `opus` feature.
    Opus(OpusParams),
}

/// Why `--codec opus` cannot work in a build without the `opus` feature.
pub const NO_OPUS: &str = "built without Opus: rebuild with --features opus (needs libopus-dev)";

/// With in-band FEC, the loss the Opus encoder plans for before the first receiver report,
/// in percent.
pub const INITIAL_PLANNED_LOSS_PERCENT: u8 = 10;
/// With in-band FEC, the least loss the Opus encoder plans for, in percent, whatever the
/// receiver reports (libopus codes no in-band FEC at 0 %).
pub const MIN_PLANNED_LOSS_PERCENT: u8 = 1;
/// The most loss the Opus encoder plans for, in percent (beyond it libopus spends the
/// bitrate on redundancy that a burst defeats anyway).
pub const MAX_PLANNED_LOSS_PERCENT: u8 = 50;

/// Settings of the Opus encoder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpusParams {
    /// Target bitrate of one substream, in bits per second.
    pub bitrate: u32,
    /// Frame duration, in units of 0.5 ms (5 = 2.5 ms, 10, 20, 40 = 20 ms).
    pub frame_half_ms: u32,
    /// The RTP payload type (111 by default).
    pub payload_type: u8,
    /// Opus's in-band FEC (LBRR), used by the receiver for a packet that stays missing
    /// (`--opus-inband-fec`; off by default: planning for loss makes libopus code speech in
    /// its hybrid mode, which costs about 8 dB against the original on a clean link).
    pub inband_fec: bool,
    /// The loss the encoder plans in-band FEC for until the receiver first reports, in
    /// percent (0..=100); after that, the receiver reports' fraction lost (at least
    /// [`MIN_PLANNED_LOSS_PERCENT`]). Without in-band FEC it is passed to libopus as set.
    pub expected_loss_percent: u8,
}

impl OpusParams {
    /// The defaults for `channels` channels: 128 kb/s stereo, 64 kb/s mono, 20 ms frames,
    /// PT 111, no in-band FEC (planned loss 0).
    pub fn new(channels: u16) -> Self {
        OpusParams {
            bitrate: if channels >= 2 { 128_000 } else { 64_000 },
            frame_half_ms: 40,
            payload_type: isostream_transport::rtp::PT_OPUS,
            inband_fec: false,
            expected_loss_percent: 0,
        }
    }

    /// These settings with in-band FEC on (`--opus-inband-fec`), planned for
    /// [`INITIAL_PLANNED_LOSS_PERCENT`] until the receiver reports.
    pub fn with_inband_fec(self) -> Self {
        OpusParams {
            inband_fec: true,
            expected_loss_percent: INITIAL_PLANNED_LOSS_PERCENT,
            ..self
        }
    }

    /// Frames (at 48 kHz) per Opus packet.
    pub fn frame_frames(&self) -> u32 {
        self.frame_half_ms * 24
    }

    /// Parses a frame duration in ms ("2.5", "5", "10", "20") into units of 0.5 ms.
    pub fn parse_frame_ms(s: &str) -> Option<u32> {
        match s.trim() {
            "2.5" => Some(5),
            "5" | "5.0" => Some(10),
            "10" | "10.0" => Some(20),
            "20" | "20.0" => Some(40),
            _ => None,
        }
    }
}

/// Default memory budget of a sender session, in bytes.
pub const DEFAULT_MEMORY_BUDGET_BYTES: usize = 64 << 20;
/// Smallest memory budget a sender session accepts, in bytes.
pub const MIN_MEMORY_BUDGET_BYTES: usize = 16 << 20;
/// What a sender's buffers take beyond the retransmission history (the packetizer's and
/// the FEC encoder's arenas, the queues, the pacer), allowed per substream, in bytes.
pub const SUBSTREAM_OVERHEAD_BYTES: usize = 512 << 10;

impl SenderConfig {
    /// A library configuration for `spec`: 5 ms packets, FEC 8,2, no interleaving,
    /// real-time speed, retransmission on, one substream. The command line's defaults for
    /// stored media differ (twice real time, FEC off: `src/cmd/opts.rs`), chosen by the
    /// measurements in docs/BENCHMARKS.md; tests that mean the CLI's behaviour set them.
    pub fn new(spec: AudioSpec) -> Self {
        SenderConfig {
            spec,
            substream_channels: vec![spec.channels],
            packet_frames: spec.rate / 200,
            fec: Some(FecParams::new(8, 2).expect("8,2 is a valid FEC setting")),
            interleave: 1,
            spread: 1,
            speed: Speed::Times(1.0),
            live: false,
            seed: 0,
            first_seq: None,
            first_timestamp: None,
            receiver_timeout: Duration::from_secs(10),
            report_interval: Duration::from_millis(250),
            wallclock_at_zero_ns: 0,
            cname: "isostream".into(),
            receiver_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 5004)),
            retransmission: Some(crate::retransmit::RtxParams::default()),
            multicast: false,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
            codec: Codec::Pcm,
        }
    }

    /// The most the session's buffers take, in bytes: the retransmission history (every
    /// substream's ring of packets, [`crate::retransmit::Retransmitter::memory_bytes`])
    /// and [`SUBSTREAM_OVERHEAD_BYTES`] per substream.
    pub fn memory_bytes(&self) -> usize {
        let fb = self.spec.format.bytes();
        let packet_bytes: Vec<usize> = self
            .substream_channels
            .iter()
            .map(|&c| crate::retransmit::packet_bytes(self.packet_frames, c as usize * fb))
            .collect();
        let history = self.retransmission.map_or(0, |p| {
            let packets = crate::retransmit::history_packets(
                self.spec.rate,
                self.packet_frames,
                p.history_ms,
            );
            crate::retransmit::Retransmitter::memory_bytes(&packet_bytes, packets)
        });
        history.saturating_add(packet_bytes.len() * SUBSTREAM_OVERHEAD_BYTES)
    }

    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), crate::SenderError> {
        use crate::SenderError::Config;
        let total: u32 = self.substream_channels.iter().map(|&c| c as u32).sum();
        if total != self.spec.channels as u32 || self.substream_channels.contains(&0) {
            return Err(Config(format!(
                "substreams carry {total} channels but the input has {}",
                self.spec.channels
            )));
        }
        if self.substream_channels.len() > isostream_transport::rtcp::MAX_SUBSTREAMS {
            return Err(Config("at most 32 substreams".into()));
        }
        if self.packet_frames == 0 || self.interleave == 0 || self.spread == 0 {
            return Err(Config(
                "packet size, interleave depth and spread must be at least 1".into(),
            ));
        }
        if self.interleave as u32 * self.packet_frames > u16::MAX as u32 {
            return Err(Config("interleave group exceeds 65535 frames".into()));
        }
        // each substream is its own RTP stream: its datagrams carry its own channels only
        let widest = self.substream_channels.iter().copied().max().unwrap_or(0) as usize;
        let max_payload = self.packet_frames as usize * widest * self.spec.format.bytes();
        if max_payload > 1400 * 40 {
            return Err(Config(format!(
                "packets of {max_payload} bytes are too large for UDP"
            )));
        }
        if self.memory_budget_bytes < MIN_MEMORY_BUDGET_BYTES {
            return Err(Config(format!(
                "the memory budget ({} bytes) must be at least {} MiB",
                self.memory_budget_bytes,
                MIN_MEMORY_BUDGET_BYTES >> 20
            )));
        }
        let needed = self.memory_bytes();
        if needed > self.memory_budget_bytes {
            return Err(Config(format!(
                "the retransmission history and buffers need {} MiB, more than the memory budget of {} MiB: raise --memory-budget-mib, send fewer or smaller packets, or turn --retransmission off",
                needed.div_ceil(1 << 20),
                self.memory_budget_bytes >> 20
            )));
        }
        if let Codec::Opus(p) = &self.codec {
            if !cfg!(feature = "opus") {
                return Err(Config(NO_OPUS.into()));
            }
            if self.spec.rate != 48_000 {
                return Err(Config(format!(
                    "Opus is sent at 48 kHz and the input is at {} Hz: resample it first (e.g. ffmpeg -ar 48000)",
                    self.spec.rate
                )));
            }
            if self.interleave > 1 {
                return Err(Config(
                    "sample interleaving does not apply to Opus: use --interleave 1 (FEC and retransmission protect Opus packets)".into(),
                ));
            }
            if self.substream_channels.iter().any(|&c| c > 2) {
                return Err(Config(
                    "Opus carries 1 or 2 channels per substream: split the input with --substreams (e.g. per-channel or 1+2,3+4)".into(),
                ));
            }
            if ![5, 10, 20, 40].contains(&p.frame_half_ms) {
                return Err(Config(
                    "Opus frames are 2.5, 5, 10 or 20 ms (--frame-ms)".into(),
                ));
            }
            if self.packet_frames != p.frame_frames() {
                return Err(Config(format!(
                    "an Opus packet holds one {} ms frame ({} frames), not {}",
                    p.frame_half_ms as f64 / 2.0,
                    p.frame_frames(),
                    self.packet_frames
                )));
            }
            if !(6_000..=510_000).contains(&p.bitrate) {
                return Err(Config(
                    "the Opus bitrate must be 6000..=510000 bits/s (--bitrate)".into(),
                ));
            }
        }
        if self.spread > 1 && self.fec.is_none() {
            return Err(Config("--spread spreads FEC blocks: it needs --fec".into()));
        }
        if let Speed::Times(x) = self.speed {
            if !(x > 0.0 && x.is_finite()) {
                return Err(Config("speed must be a positive number or max".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_media::SampleFormat;

    fn spec(rate: u32, channels: u16, format: SampleFormat) -> AudioSpec {
        AudioSpec {
            rate,
            channels,
            format,
        }
    }

    #[test]
    fn a_stereo_stream_fits_the_default_budget_comfortably() {
        let cfg = SenderConfig::new(spec(48_000, 2, SampleFormat::S16));
        cfg.validate().unwrap();
        // 10 s of 5 ms packets: 2000 packets of about 1 kB in a ring of 2048
        let m = cfg.memory_bytes();
        assert!(m > 2 << 20 && m < DEFAULT_MEMORY_BUDGET_BYTES / 8, "{m}");
        let off = SenderConfig {
            retransmission: None,
            ..cfg.clone()
        };
        assert_eq!(off.memory_bytes(), SUBSTREAM_OVERHEAD_BYTES);
    }

    #[test]
    fn a_history_beyond_the_budget_is_refused_with_the_reason() {
        let mut cfg = SenderConfig::new(spec(192_000, 64, SampleFormat::F32));
        cfg.substream_channels = vec![8; 8];
        cfg.packet_frames = 192;
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("memory budget of 64 MiB"), "{e}");
        cfg.memory_budget_bytes = 1 << 30;
        cfg.validate().unwrap();
        cfg.retransmission = None;
        cfg.memory_budget_bytes = MIN_MEMORY_BUDGET_BYTES;
        cfg.validate().unwrap();
        cfg.memory_budget_bytes = MIN_MEMORY_BUDGET_BYTES - 1;
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("at least 16 MiB"));
    }
}
