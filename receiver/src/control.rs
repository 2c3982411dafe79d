//! Control: the RTCP the receiver sends back to its sender, queued for the driver. Receiver
//! reports (with an SDES CNAME, a reference time and the flow state it wants) every report
//! interval, and the watermark controller's PAUSE
//! and RESUME requests as they are issued.
//!
//! Packets (a few per second) are built in one reused buffer and frozen into their own
//! [`Bytes`].

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use isostream_transport::rtcp::{self, ReportBlock};
use isostream_transport::time::{Duration, Instant};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::flow::Request;

/// Most bytes of one datagram of NACKs (within a common MTU).
pub const MAX_NACK_BYTES: usize = 1200;

/// The CNAME the receiver announces in its reports.
pub const CNAME: &str = "isostream-recv";

/// The receiver's outgoing RTCP.
#[derive(Debug)]
pub struct Control {
    ssrc: u32,
    report_interval: Duration,
    next_report: Option<Instant>,
    buf: BytesMut,
    queue: VecDeque<Bytes>,
}

impl Control {
    /// Outgoing RTCP of a receiver whose SSRC comes from `seed`, reporting every
    /// `report_interval`.
    pub fn new(seed: u64, report_interval: Duration) -> Self {
        Control {
            ssrc: StdRng::seed_from_u64(seed ^ 0x005e_ed0f_1505).random(),
            report_interval,
            next_report: None,
            buf: BytesMut::with_capacity(1024),
            queue: VecDeque::new(),
        }
    }

    /// The receiver's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Queues a PAUSE or RESUME request.
    pub fn request(&mut self, req: Request) {
        self.buf.clear();
        let kind = if req.pause {
            rtcp::APP_PAUSE
        } else {
            rtcp::APP_RESUME
        };
        rtcp::write_flow(&mut self.buf, kind, self.ssrc, req.number);
        self.queue.push_back(self.buf.split().freeze());
    }

    /// Queues Generic NACKs (RFC 4585) for packets `seqs` (ascending) of `media_ssrc`, as
    /// many as they take, in one datagram (reduced-size RTCP, RFC 5506: the NACKs alone, so
    /// they go out at once rather than with the next report).
    pub fn nack(&mut self, media_ssrc: u32, seqs: &[u16]) {
        self.buf.clear();
        let mut from = 0;
        // one datagram within a common MTU: what does not fit is asked for next time
        while from < seqs.len()
            && self.buf.len() + 12 + 4 * rtcp::MAX_NACK_ENTRIES <= MAX_NACK_BYTES
        {
            let (lost, used) = rtcp::NackList::pack(&seqs[from..]);
            rtcp::write_nack(&mut self.buf, self.ssrc, media_ssrc, &lost);
            from += used.max(1);
        }
        self.queue.push_back(self.buf.split().freeze());
    }

    /// When the next receiver report is due (`None`: now, none was sent yet).
    pub fn next_report(&self) -> Option<Instant> {
        self.next_report
    }

    /// Whether a receiver report is due at `now`.
    pub fn report_due(&self, now: Instant) -> bool {
        self.next_report.is_none_or(|t| now >= t)
    }

    /// Queues a receiver report with `blocks` at `now` (the receiver's wall clock `ntp`,
    /// 64-bit NTP, goes with it as a reference time, RFC 3611, so the sender's answer gives
    /// the round trip, and the flow `state` it wants, a PAUSE or RESUME with the number of
    /// the request that asked for it, so the sender converges to it whatever was lost or
    /// forged); the next is due one interval later.
    pub fn report(&mut self, now: Instant, ntp: u64, blocks: &[ReportBlock], state: Request) {
        self.next_report = Some(now + self.report_interval);
        self.buf.clear();
        rtcp::write_receiver_report(&mut self.buf, self.ssrc, blocks);
        rtcp::write_sdes_cname(&mut self.buf, self.ssrc, CNAME);
        rtcp::write_rrtr(&mut self.buf, self.ssrc, ntp);
        let kind = if state.pause {
            rtcp::APP_PAUSE
        } else {
            rtcp::APP_RESUME
        };
        rtcp::write_flow(&mut self.buf, kind, self.ssrc, state.number);
        self.queue.push_back(self.buf.split().freeze());
    }

    /// The next datagram to send, if any.
    pub fn poll(&mut self) -> Option<Bytes> {
        self.queue.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_transport::rtcp::RtcpPacket;

    #[test]
    fn reports_are_due_every_interval() {
        let mut c = Control::new(0, Duration::from_millis(250));
        let t0 = Instant::ZERO;
        assert!(c.report_due(t0));
        let state = Request {
            pause: true,
            number: 7,
        };
        c.report(t0, 0x1234_5678_9abc_def0, &[], state);
        assert!(!c.report_due(t0 + Duration::from_millis(249)));
        assert!(c.report_due(t0 + Duration::from_millis(250)));
        assert_eq!(c.next_report(), Some(t0 + Duration::from_millis(250)));
        // a receiver report, its CNAME and its reference time (RFC 3611)
        let d = c.poll().unwrap();
        let p: Vec<_> = rtcp::parse_compound(&d).map(Result::unwrap).collect();
        assert!(matches!(p[0], RtcpPacket::ReceiverReport { .. }));
        assert_eq!(
            p[2],
            RtcpPacket::ReceiverReferenceTime {
                ssrc: c.ssrc(),
                ntp: 0x1234_5678_9abc_def0
            }
        );
        // and the state the receiver wants
        assert_eq!(
            p[3],
            RtcpPacket::Pause {
                ssrc: c.ssrc(),
                request: 7
            }
        );
        assert!(c.poll().is_none());
    }

    #[test]
    fn requests_go_out_in_order_with_the_receivers_ssrc() {
        let mut c = Control::new(3, Duration::from_millis(250));
        c.request(Request {
            pause: true,
            number: 1,
        });
        c.request(Request {
            pause: false,
            number: 2,
        });
        let first: Vec<_> = rtcp::parse_compound(&c.poll().unwrap()).collect();
        assert!(matches!(
            first[..],
            [Ok(RtcpPacket::Pause { ssrc, request: 1 })] if ssrc == c.ssrc()
        ));
        let second: Vec<_> = rtcp::parse_compound(&c.poll().unwrap()).collect();
        assert!(matches!(
            second[..],
            [Ok(RtcpPacket::Resume { request: 2, .. })]
        ));
    }
}
