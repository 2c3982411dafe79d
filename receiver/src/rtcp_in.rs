//! The RTCP demultiplexer of the receiver: which packets of an RTCP compound packet are for
//! the current session, checked against its SSRCs and the address it is bound to, as typed
//! facts the session applies ([`RtcpFact`]).
//!
//! The stage decides nothing about the session's lifecycle: a description that is not the
//! session's own comes out as [`RtcpFact::OtherDesc`], and the session decides whether it
//! starts a new session or waits as a successor. It keeps, per compound packet, whether any
//! packet was the session's (else the whole packet counts as foreign) and whether a BYE was
//! among them.

use isostream_transport::rtcp::{self, RtcpPacket, SenderReport, SessionDesc};
use isostream_transport::time::Duration;

use crate::substream::Substreams;

/// What the session looks like to the demultiplexer, for one packet.
#[derive(Clone, Copy)]
pub struct SessionView<'a> {
    /// The current session's substreams, whether it is provisional (no description yet) and
    /// whether it is playing; `None` without a session.
    pub session: Option<(&'a Substreams, bool, bool)>,
    /// The datagram comes from the address the session is bound to (or the session is
    /// bound to none).
    pub bound: bool,
    /// Whether it did when the compound's handling began (a description started a session
    /// in it since): descriptions are checked against this.
    pub bound_at_start: bool,
    /// The receiver's own SSRC (that of its reports).
    pub own_ssrc: u32,
    /// The receiver's wall clock now, as a 64-bit NTP timestamp.
    pub ntp: u64,
}

impl SessionView<'_> {
    /// The index of the session's substream `ssrc`, if the datagram comes from the session's
    /// source.
    fn bound_index(&self, ssrc: u32) -> Option<usize> {
        let (subs, ..) = self.session?;
        subs.index_of(ssrc).filter(|_| self.bound)
    }

    /// Whether `desc` is the session's own description; for a provisional session already
    /// playing (its first description was lost), whether it names the session's stream.
    fn knows(&self, desc: &SessionDesc) -> bool {
        let Some((subs, provisional, playing)) = self.session.filter(|_| self.bound_at_start)
        else {
            return false;
        };
        if provisional && playing {
            subs.ssrcs()
                .all(|s| desc.substreams.iter().any(|d| d.ssrc == s))
        } else {
            !provisional && subs.ssrcs().eq(desc.substreams.iter().map(|s| s.ssrc))
        }
    }
}

/// One packet of a compound packet, as the session applies it.
#[derive(Debug)]
pub enum RtcpFact {
    /// The session's own description.
    OwnDesc,
    /// A description of another stream (or of none, for a provisional session not yet
    /// playing).
    OtherDesc(SessionDesc),
    /// A sender report about the session's substream `index`.
    SenderReport {
        /// The substream's index.
        index: usize,
        /// The report.
        sr: SenderReport,
    },
    /// The sender acknowledged PAUSE or RESUME request `request`.
    Ack {
        /// The request's number.
        request: u32,
    },
    /// The sender answered the receiver's reference time: the round trip.
    Rtt(Duration),
}

/// The demultiplexer of one compound packet. See the module documentation.
#[derive(Debug)]
pub struct RtcpIn {
    /// Some packet of the compound was the session's.
    ours: bool,
    /// A BYE of the session's came in the compound.
    bye: bool,
}

impl RtcpIn {
    /// Demultiplexes a compound packet from its packet `from` (`bye`: a BYE came earlier in
    /// it). The rest of a packet whose description started the current session (`from` >
    /// 0) is the session's.
    pub fn new(from: usize, bye: bool) -> Self {
        RtcpIn {
            ours: from > 0,
            bye,
        }
    }

    /// Sets whether the compound is the session's: a description of another stream started
    /// a session (or failed to).
    pub fn set_ours(&mut self, ours: bool) {
        self.ours = ours;
    }

    /// Whether any packet so far was the session's.
    pub fn is_ours(&self) -> bool {
        self.ours
    }

    /// Whether a BYE of the session's came in the compound.
    pub fn bye(&self) -> bool {
        self.bye
    }

    /// The fact of packet `p` (as parsed) for the session as `view` shows it; the parse
    /// error if it is malformed (the rest of the compound is not read), `Ok(None)` if it is
    /// nothing for the session.
    pub fn packet<E>(
        &mut self,
        p: Result<RtcpPacket, E>,
        view: &SessionView<'_>,
    ) -> Result<Option<RtcpFact>, E> {
        let p = p?;
        let fact = match p {
            RtcpPacket::Desc { desc, .. } if view.knows(&desc) => Some(RtcpFact::OwnDesc),
            RtcpPacket::Desc { desc, .. } => return Ok(Some(RtcpFact::OtherDesc(desc))),
            RtcpPacket::SenderReport(sr) => view
                .bound_index(sr.ssrc)
                .map(|index| RtcpFact::SenderReport { index, sr }),
            RtcpPacket::Bye { ssrc } if view.bound_index(ssrc).is_some() => {
                self.bye = true;
                self.ours = true;
                None
            }
            RtcpPacket::Ack { request, ssrc } if view.bound_index(ssrc).is_some() => {
                Some(RtcpFact::Ack { request })
            }
            RtcpPacket::Dlrr {
                sender_ssrc,
                ssrc,
                last_rr,
                delay_since_last_rr,
            } if ssrc == view.own_ssrc && view.bound_index(sender_ssrc).is_some() => {
                // the sender answered our reference time: the round trip (RFC 3611)
                rtcp::round_trip(view.ntp, last_rr, delay_since_last_rr).map(RtcpFact::Rtt)
            }
            _ => None,
        };
        self.ours |= fact.is_some();
        Ok(fact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;
    use isostream_media::{AudioSpec, SampleFormat};
    use isostream_transport::rtp;

    const SPEC: AudioSpec = AudioSpec {
        rate: 8_000,
        channels: 1,
        format: SampleFormat::S16,
    };

    fn subs(ssrc: u32) -> Substreams {
        Substreams::new(&Layout::stock(SPEC, ssrc, rtp::PT_L16, None), 800, false)
    }

    fn view(subs: &Substreams, bound: bool) -> SessionView<'_> {
        SessionView {
            session: Some((subs, false, true)),
            bound,
            bound_at_start: bound,
            own_ssrc: 99,
            ntp: 0,
        }
    }

    fn sr(ssrc: u32) -> Result<RtcpPacket, ()> {
        Ok(RtcpPacket::SenderReport(SenderReport {
            ssrc,
            ntp: 1,
            rtp_ts: 2,
            packets: 3,
            octets: 4,
        }))
    }

    #[test]
    fn a_sender_report_of_a_substream_from_the_bound_source_is_the_sessions() {
        let s = subs(7);
        let mut rx = RtcpIn::new(0, false);
        let f = rx.packet(sr(7), &view(&s, true)).unwrap();
        assert!(matches!(f, Some(RtcpFact::SenderReport { index: 0, .. })));
        assert!(rx.is_ours() && !rx.bye());
    }

    #[test]
    fn other_ssrcs_and_other_sources_are_foreign() {
        let s = subs(7);
        let mut rx = RtcpIn::new(0, false);
        assert!(rx.packet(sr(8), &view(&s, true)).unwrap().is_none());
        assert!(rx.packet(sr(7), &view(&s, false)).unwrap().is_none());
        let bye = Ok::<_, ()>(RtcpPacket::Bye { ssrc: 7 });
        assert!(rx.packet(bye, &view(&s, false)).unwrap().is_none());
        assert!(!rx.is_ours() && !rx.bye());
        let none = SessionView {
            session: None,
            ..view(&s, true)
        };
        assert!(rx.packet(sr(7), &none).unwrap().is_none());
        assert!(!rx.is_ours());
    }

    #[test]
    fn a_bye_and_an_ack_of_the_session_are_noted() {
        let s = subs(7);
        let mut rx = RtcpIn::new(0, false);
        let bye = Ok::<_, ()>(RtcpPacket::Bye { ssrc: 7 });
        assert!(rx.packet(bye, &view(&s, true)).unwrap().is_none());
        assert!(rx.is_ours() && rx.bye());
        let ack = Ok::<_, ()>(RtcpPacket::Ack {
            ssrc: 7,
            request: 5,
        });
        let f = rx.packet(ack, &view(&s, true)).unwrap();
        assert!(matches!(f, Some(RtcpFact::Ack { request: 5 })));
    }

    #[test]
    fn a_malformed_packet_stops_and_the_rest_of_a_claimed_compound_is_ours() {
        let s = subs(7);
        let mut rx = RtcpIn::new(0, false);
        assert!(rx
            .packet(Err::<RtcpPacket, _>(()), &view(&s, true))
            .is_err());
        let rx = RtcpIn::new(2, true);
        assert!(rx.is_ours() && rx.bye());
        let mut rx = RtcpIn::new(0, false);
        rx.set_ours(true);
        assert!(rx.is_ours());
    }
}
