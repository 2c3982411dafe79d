//! What a sender session announces about itself in RTCP, computed from its configuration
//! and the state of its media path: the session description (APP DESC), each substream's
//! sender-report line, and the sender's wall clock as NTP. [`crate::report`] writes them.

use isostream_transport::rtcp::{self, SessionDesc, SubstreamDesc};
use isostream_transport::time::Instant;

use crate::config::{Codec, SenderConfig};
use crate::report::SubstreamReport;
use crate::retransmit::Retransmitter;
use crate::substream::Substreams;

/// The session description announced in RTCP, for `cfg`'s stream over `subs` (with the
/// RTX SSRCs of `rtx`, if retransmission is on).
pub(crate) fn session_desc(
    cfg: &SenderConfig,
    subs: &Substreams,
    rtx: Option<&Retransmitter>,
) -> SessionDesc {
    SessionDesc {
        codec: match cfg.codec {
            Codec::Pcm => rtcp::CODEC_PCM,
            Codec::Opus(_) => rtcp::CODEC_OPUS,
        },
        rate: cfg.spec.rate,
        format: match cfg.codec {
            Codec::Pcm => cfg.spec.format.code(),
            // Opus decodes to 16-bit
            Codec::Opus(_) => isostream_media::SampleFormat::S16.code(),
        },
        packet_frames: cfg.packet_frames as u16,
        interleave: cfg.interleave,
        fec_k: cfg.fec.map_or(0, |f| f.k),
        fec_m: cfg.fec.map_or(0, |f| f.m),
        spread: cfg.spread,
        live: cfg.live,
        substreams: subs
            .all()
            .iter()
            .enumerate()
            .map(|(i, s)| SubstreamDesc {
                ssrc: s.ssrc,
                ts_base: s.ts_base,
                channels: s.channels as u8,
                rtx_ssrc: rtx.map(|r| r.rtx_ssrc(i)),
            })
            .collect(),
    }
}

/// Each substream's sender-report line. `sent_frames`: frames of audio sent so far;
/// `sent_bytes`: media and repair bytes sent so far (shared out by channels); `bye`: the
/// report ends the stream.
pub(crate) fn substream_reports(
    cfg: &SenderConfig,
    subs: &Substreams,
    sent_frames: u64,
    sent_bytes: u64,
    bye: bool,
) -> Vec<SubstreamReport> {
    subs.all()
        .iter()
        .map(|s| SubstreamReport {
            ssrc: s.ssrc,
            ts_base: s.ts_base,
            // the media position this report's wall-clock time stands for: for a live
            // source the audio captured so far, for stored media the audio sent so far
            position: if bye || cfg.live {
                s.packetizer.position()
            } else {
                sent_frames
            },
            packets: s.packetizer.packets(),
            octets: sent_bytes * s.channels as u64 / cfg.spec.channels as u64,
        })
        .collect()
}

/// The sender's wall clock at `now` (from `cfg.wallclock_at_zero_ns`), as a 64-bit NTP
/// timestamp.
pub(crate) fn ntp_at(cfg: &SenderConfig, now: Instant) -> u64 {
    rtcp::ntp_from_unix_nanos(cfg.wallclock_at_zero_ns + now.as_nanos() as u128)
}
