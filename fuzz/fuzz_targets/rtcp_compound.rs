//! RTCP compound parsing (`parse_compound`: SR, RR, SDES, BYE, APP `ISOS` PAUSE / RESUME /
//! ACK / DESC, Generic NACK, XR RRTR and DLRR, unknown types): never a panic, it stops at
//! the first malformed packet, and every packet it understood writes back (with the real
//! writers) to bytes that parse to the same packet.
#![no_main]

use bytes::BytesMut;
use isostream_transport::rtcp::{self, RtcpPacket, APP_ACK, APP_PAUSE, APP_RESUME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut n = 0;
    let mut failed = false;
    for p in rtcp::parse_compound(data) {
        assert!(!failed, "a packet after a malformed one");
        n += 1;
        assert!(
            n <= data.len() / 4 + 1,
            "more packets than the datagram holds"
        );
        match p {
            Ok(p) => round_trip(&p),
            Err(_) => failed = true,
        }
    }
});

/// Writes `p` back and parses it again.
fn round_trip(p: &RtcpPacket) {
    let mut out = BytesMut::new();
    match p {
        RtcpPacket::SenderReport(sr) => rtcp::write_sender_report(&mut out, sr),
        RtcpPacket::ReceiverReport { ssrc, block } => {
            let blocks: Vec<_> = block.iter().copied().collect();
            rtcp::write_receiver_report(&mut out, *ssrc, &blocks);
        }
        RtcpPacket::Bye { ssrc } => rtcp::write_bye(&mut out, *ssrc),
        RtcpPacket::Pause { ssrc, request } => {
            rtcp::write_flow(&mut out, APP_PAUSE, *ssrc, *request)
        }
        RtcpPacket::Resume { ssrc, request } => {
            rtcp::write_flow(&mut out, APP_RESUME, *ssrc, *request)
        }
        RtcpPacket::Ack { ssrc, request } => rtcp::write_flow(&mut out, APP_ACK, *ssrc, *request),
        RtcpPacket::Subscribe { ssrc } => rtcp::write_subscribe(&mut out, *ssrc),
        RtcpPacket::Desc { ssrc, desc } => rtcp::write_desc(&mut out, *ssrc, desc),
        RtcpPacket::Nack {
            sender_ssrc,
            media_ssrc,
            lost,
        } => {
            if lost.entries().is_empty() {
                return;
            }
            rtcp::write_nack(&mut out, *sender_ssrc, *media_ssrc, lost)
        }
        RtcpPacket::ReceiverReferenceTime { ssrc, ntp } => rtcp::write_rrtr(&mut out, *ssrc, *ntp),
        RtcpPacket::Dlrr {
            sender_ssrc,
            ssrc,
            last_rr,
            delay_since_last_rr,
        } => rtcp::write_dlrr(
            &mut out,
            *sender_ssrc,
            *ssrc,
            *last_rr,
            *delay_since_last_rr,
        ),
        RtcpPacket::Other { .. } => return,
    }
    let again: Vec<_> = rtcp::parse_compound(&out).collect();
    assert_eq!(again.len(), 1, "{p:?} wrote {} packets", again.len());
    match &again[0] {
        Ok(q) => assert_eq!(q, p, "written back as {out:02x?}"),
        Err(e) => panic!("{p:?} written back does not parse: {e}"),
    }
}
