//! The sender's RTCP compound: one function that writes it from explicit inputs.
//!
//! A compound holds, in this order: a sender report per substream (RFC 3550, 6.4.1), the
//! SDES CNAME, the APP DESC session description, an XR DLRR answering the receiver's last
//! reference time (RFC 3611, 4.5) if one arrived, and BYE per substream at the end of the
//! stream. The session decides when to send one and what the positions and counts are.

use bytes::BytesMut;
use isostream_transport::rtcp::{self, SessionDesc};
use isostream_transport::time::Instant;

/// One substream's line in the compound: its sender report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubstreamReport {
    /// The substream's SSRC.
    pub ssrc: u32,
    /// Its first RTP timestamp.
    pub ts_base: u32,
    /// The media position (frames since the start) the report's wall-clock time stands for.
    pub position: u64,
    /// Media packets sent.
    pub packets: u64,
    /// Octets sent on its behalf (its share of the media and repair bytes).
    pub octets: u64,
}

/// The inputs of one compound.
#[derive(Clone, Copy, Debug)]
pub struct Report<'a> {
    /// The time of the report.
    pub now: Instant,
    /// The sender's wall clock at `now`, a 64-bit NTP timestamp.
    pub ntp: u64,
    /// The substreams, in order (at least one; the first one's SSRC speaks for the session).
    pub substreams: &'a [SubstreamReport],
    /// The SDES CNAME.
    pub cname: &'a str,
    /// The session description (APP DESC).
    pub desc: &'a SessionDesc,
    /// The receiver's last reference time: its SSRC, the middle 32 bits of its NTP
    /// timestamp, and when it arrived.
    pub last_rrtr: Option<(u32, u32, Instant)>,
    /// The stream is over: BYE for every substream ends the compound.
    pub bye: bool,
}

/// Writes the compound `r` into `b` (appended; the caller clears and splits it).
pub fn write_report(b: &mut BytesMut, r: &Report<'_>) {
    for s in r.substreams {
        rtcp::write_sender_report(
            b,
            &rtcp::SenderReport {
                ssrc: s.ssrc,
                ntp: r.ntp,
                rtp_ts: s.ts_base.wrapping_add(s.position as u32),
                packets: s.packets as u32,
                octets: s.octets as u32,
            },
        );
    }
    let first = r.substreams[0].ssrc;
    rtcp::write_sdes_cname(b, first, r.cname);
    rtcp::write_desc(b, first, r.desc);
    if let Some((receiver, last_rr, at)) = r.last_rrtr {
        // the delay since the reference time arrived, in units of 1/65536 s
        let delay = ((r.now - at).as_nanos() * 65_536 / 1_000_000_000) as u32;
        rtcp::write_dlrr(b, first, receiver, last_rr, delay);
    }
    if r.bye {
        for s in r.substreams {
            rtcp::write_bye(b, s.ssrc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_transport::rtcp::RtcpPacket;
    use isostream_transport::time::Duration;

    fn desc() -> SessionDesc {
        SessionDesc {
            codec: rtcp::CODEC_PCM,
            rate: 48_000,
            format: isostream_media::SampleFormat::S16.code(),
            packet_frames: 240,
            interleave: 1,
            fec_k: 0,
            fec_m: 0,
            spread: 1,
            live: false,
            substreams: [(1, 10), (2, 20)]
                .map(|(ssrc, ts_base)| rtcp::SubstreamDesc {
                    ssrc,
                    ts_base,
                    channels: 1,
                    rtx_ssrc: None,
                })
                .to_vec(),
        }
    }

    fn write(bye: bool, rrtr: Option<(u32, u32, Instant)>) -> Vec<u8> {
        let subs = [
            SubstreamReport {
                ssrc: 1,
                ts_base: 10,
                position: 480,
                packets: 2,
                octets: 100,
            },
            SubstreamReport {
                ssrc: 2,
                ts_base: 20,
                position: 480,
                packets: 2,
                octets: 100,
            },
        ];
        let d = desc();
        let mut b = BytesMut::new();
        write_report(
            &mut b,
            &Report {
                now: Instant::ZERO + Duration::from_millis(500),
                ntp: 1 << 32,
                substreams: &subs,
                cname: "tx@example",
                desc: &d,
                last_rrtr: rrtr,
                bye,
            },
        );
        b.to_vec()
    }

    #[test]
    fn a_report_parses_with_a_sender_report_per_substream() {
        let d = write(false, None);
        let ps: Vec<_> = rtcp::parse_compound(&d).map(|p| p.unwrap()).collect();
        let srs: Vec<_> = ps
            .iter()
            .filter_map(|p| match p {
                RtcpPacket::SenderReport(sr) => Some(*sr),
                _ => None,
            })
            .collect();
        assert_eq!(srs.len(), 2);
        assert_eq!(
            (srs[0].ssrc, srs[0].rtp_ts, srs[0].packets, srs[0].octets),
            (1, 490, 2, 100)
        );
        assert_eq!((srs[1].ssrc, srs[1].rtp_ts), (2, 500));
        assert!(ps
            .iter()
            .any(|p| matches!(p, RtcpPacket::Desc { ssrc: 1, .. })));
        assert!(!ps.iter().any(|p| matches!(p, RtcpPacket::Bye { .. })));
        assert!(!ps.iter().any(|p| matches!(p, RtcpPacket::Dlrr { .. })));
    }

    #[test]
    fn bye_and_dlrr_are_added_when_asked() {
        let d = write(true, Some((9, 77, Instant::ZERO)));
        let ps: Vec<_> = rtcp::parse_compound(&d).map(|p| p.unwrap()).collect();
        assert!(ps.iter().any(|p| matches!(p, RtcpPacket::Dlrr { .. })));
        assert!(ps.iter().any(|p| matches!(p, RtcpPacket::Bye { .. })));
    }
}
