//! The RTCP a session receives: [`RtcpIn`] demultiplexes a compound packet into typed
//! facts, and this applies them to the stages (a description starts or replaces a session,
//! a sender report goes to its substream, an acknowledgement to the flow controller, a
//! round trip to the NACK stages, a BYE fixes where the stream ends).

use bytes::Bytes;
use isostream_transport::rtcp;
use isostream_transport::time::Instant;

use super::ReceiverSession;
use crate::layout::Layout;
use crate::rtcp_in::{RtcpFact, RtcpIn, SessionView};

impl ReceiverSession {
    /// Handles the packets of an RTCP compound packet from its packet `from` (`bye`: a BYE
    /// came earlier in it), as [`RtcpIn`] demultiplexes them. `None` if a description
    /// replaced a provisional session: the rest of the packet is queued after the datagrams
    /// that session kept.
    pub(super) fn handle_rtcp(
        &mut self,
        now: Instant,
        d: &Bytes,
        from: usize,
        bye: bool,
    ) -> Option<bool> {
        let mut rx = RtcpIn::new(from, bye);
        let bound_at_start = !self.elsewhere();
        for (n, p) in rtcp::parse_compound(d).enumerate().skip(from) {
            let view = SessionView {
                session: (self.active.as_ref())
                    .map(|a| (&a.subs, a.provisional, a.playout.is_running())),
                bound: !self.elsewhere(),
                bound_at_start,
                own_ssrc: self.control.ssrc(),
                ntp: self.ntp(now),
            };
            let Ok(fact) = rx.packet(p, &view) else {
                self.drops.malformed += 1;
                break;
            };
            match fact {
                None | Some(RtcpFact::OwnDesc) => {}
                Some(RtcpFact::OtherDesc(desc)) if self.can_start_new() => {
                    // media that came before any description started a provisional
                    // session (a stock sender, or an isostream sender whose first
                    // description was lost): replace it, replaying what it received
                    let old = self
                        .active
                        .take_if(|a| a.provisional && !a.playout.is_running());
                    let ours = Layout::described(&desc).is_some_and(|l| self.new_active(now, l));
                    rx.set_ours(ours);
                    match old {
                        Some(mut old) if ours => {
                            let kept = old.pending.take_all();
                            self.queue.replay_first(kept, d.clone(), n + 1, rx.bye());
                            return None;
                        }
                        Some(old) => self.active = Some(old),
                        None => {}
                    }
                }
                // another stream's description while this session plays
                Some(RtcpFact::OtherDesc(_)) => self.keep_successor(now, d, true),
                Some(RtcpFact::SenderReport { index, sr }) => {
                    let a = self.active.as_mut().expect("index implies a session");
                    a.subs.on_sender_report(now, index, &sr);
                }
                Some(RtcpFact::Ack { request }) => {
                    if let Some(req) = self.flow.on_ack(now, request) {
                        self.send_request(req);
                    }
                }
                Some(RtcpFact::Rtt(rtt)) => {
                    self.active.as_mut().expect("checked").subs.on_rtt(rtt);
                }
            }
        }
        if !rx.is_ours() {
            self.drops.foreign += 1;
            return Some(false);
        }
        if let Some(a) = self.active.as_mut() {
            a.last_heard = now;
            if rx.bye() && a.end_pos.is_none() {
                let end = a.reported_end();
                a.end_pos = Some(end);
                a.subs.expect_until(now, end);
            }
        }
        self.after_write(now);
        Some(true)
    }
}
