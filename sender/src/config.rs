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
}

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
        }
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
