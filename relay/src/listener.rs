//! One listener: the relay looks like a sender to it. It has its own cursor into the store,
//! its own pacer (the sender's rule: stored media at `speed` times real time until the
//! listener PAUSEs; a live source's packets as they arrive), its own PAUSE/RESUME state
//! answered with ACK by the sender's rules ([`isostream_sender::flow::FlowControl`]), its own
//! RTX sequence numbers and retransmission budget, and its own report timer.
//!
//! **Joining.** A listener is *placed* once the relay has a compound to send it: it gets the
//! latest regular compound (sender reports, description) at once, and its cursor starts at
//! the relay's playout position, "where the stream is": the oldest stored media packet at
//! or after the playout clock's position (what a listener that has been there from the
//! start hears about now); before the clock runs (no media yet), at the start of the store.
//! So a late joiner is sent, at `speed`, the stored media between the playout position and
//! the live edge (up to the relay's high-water mark), which fills its buffer quickly.
//!
//! **Falling behind.** A listener whose cursor falls behind the store's tail (it stayed
//! paused while the store evicted) is moved forward to the tail, and the packets it missed
//! are counted (`packets_skipped`); it asks for none of them again (they are gone) and no
//! other listener notices.
//!
//! **The end.** Once the upstream ended and the cursor reached the live edge, the listener
//! gets the final compound (with BYE) three times, 100 ms apart, like a sender's end, and no
//! more regular compounds; NACKs are still answered until it goes quiet.

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use isostream_sender::flow::{FlowChange, FlowControl};
use isostream_sender::pacer::Pacer;
use isostream_sender::retransmit::ByteBudget;
use isostream_sender::Speed;
use isostream_transport::rtcp::{self, RtcpPacket, SessionDesc};
use isostream_transport::sans_io::Transmit;
use isostream_transport::time::{Duration, Instant};

use crate::rtx;
use crate::stats::{ListenerReport, ListenerState, ListenerStats};
use crate::store::{EntryKind, PacketStore};

/// Times the final compound (with BYE) is sent to a listener.
pub const FINAL_REPEATS: u32 = 3;
/// Gap between the repeats of the final compound.
pub const FINAL_GAP: Duration = Duration::from_millis(100);
/// Depth of a listener's retransmission budget, in seconds of media bytes (the sender's
/// default burst, docs/PROTOCOL.md section 5).
const RTX_BURST_S: f64 = 2.0;

/// What a listener is served from, at one instant.
pub struct Serving<'a> {
    /// The store.
    pub store: &'a PacketStore,
    /// The description in effect.
    pub desc: Option<&'a SessionDesc>,
    /// The latest regular compound.
    pub compound: Option<&'a Bytes>,
    /// The final compound, if the upstream sent one.
    pub final_compound: Option<&'a Bytes>,
    /// Whether the upstream ended.
    pub ended: bool,
    /// The relay's playout position, in frames (`None` before media).
    pub clock_pos: Option<i64>,
    /// Stored-media speed, in times real time.
    pub speed: f64,
    /// Interval between regular compounds.
    pub report_interval: Duration,
}

/// One listener's state.
#[derive(Debug)]
pub struct Listener {
    addr: SocketAddr,
    last_heard: Instant,
    /// The next store entry to send; `None` until placed.
    cursor: Option<u64>,
    pacer: Option<Pacer>,
    /// Media frames of one packet divided among the substreams (the pacer's weight).
    weight: f64,
    flow: FlowControl,
    budget: ByteBudget,
    /// The first RTX sequence number of its RTX streams.
    rtx_seq_start: u16,
    /// The next RTX sequence number of each substream's RTX stream.
    rtx_seq: Vec<u16>,
    next_report: Option<Instant>,
    finals_sent: u32,
    next_final: Option<Instant>,
    /// When the first final compound went.
    final_at: Option<Instant>,
    stats: ListenerStats,
    arena: BytesMut,
}

impl Listener {
    /// A listener at `addr` that subscribed at `now` (`ssrc`: its SSRC, if it said);
    /// `rtx_seq`: the first sequence number of its RTX streams.
    pub fn new(addr: SocketAddr, ssrc: Option<u32>, now: Instant, rtx_seq: u16) -> Self {
        Listener {
            addr,
            last_heard: now,
            cursor: None,
            pacer: None,
            weight: 1.0,
            flow: FlowControl::new(false),
            budget: ByteBudget::new(1.0, 1500.0),
            rtx_seq_start: rtx_seq,
            rtx_seq: Vec::new(),
            next_report: None,
            finals_sent: 0,
            next_final: None,
            final_at: None,
            stats: ListenerStats {
                addr: addr.to_string(),
                ssrc,
                joined_ms: now.as_secs_f64() * 1000.0,
                ..Default::default()
            },
            arena: BytesMut::new(),
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it has been silent for `timeout` at `now`.
    pub fn is_silent(&self, now: Instant, timeout: Duration) -> bool {
        now - self.last_heard >= timeout
    }

    /// When it will have been silent for `timeout`.
    pub fn silent_at(&self, timeout: Duration) -> Instant {
        self.last_heard + timeout
    }

    /// Whether it finished: it was sent the final compound every time, and was heard after
    /// the first (a listener that died before the end, whose final compounds went to a
    /// closed port, did not finish).
    pub fn finished(&self) -> bool {
        self.finals_sent >= FINAL_REPEATS && self.final_at.is_some_and(|t| self.last_heard > t)
    }

    /// Whether it has paused its stream.
    pub fn is_paused(&self) -> bool {
        self.flow.is_paused()
    }

    /// Its counters.
    pub fn stats(&self) -> ListenerStats {
        let mut s = self.stats.clone();
        let c = self.flow.counters();
        s.pauses_applied = c.pauses_applied;
        s.resumes_applied = c.resumes_applied;
        s.duplicate_requests = c.duplicate_requests;
        s.paused_ms = c.paused_ms;
        s
    }

    /// Its counters as it leaves at `now` in `state`.
    pub fn leave(mut self, now: Instant, state: ListenerState) -> ListenerStats {
        self.flow.finish();
        let mut s = self.stats();
        s.state = state;
        s.left_ms = Some(now.as_secs_f64() * 1000.0);
        s
    }

    fn send(&mut self, out: &mut VecDeque<Transmit>, data: Bytes) {
        self.stats.bytes_sent += data.len() as u64;
        out.push_back(Transmit {
            to: self.addr,
            data,
        });
    }

    /// Places the listener (once there is a compound to send it): the compound goes at once,
    /// the cursor to where the stream is.
    fn place(&mut self, now: Instant, s: &Serving<'_>, out: &mut VecDeque<Transmit>) -> bool {
        let (Some(desc), Some(compound)) = (s.desc, s.compound) else {
            return false;
        };
        let start = match s.clock_pos {
            Some(pos) => s.store.first_media_at_or_after(pos),
            None => s.store.first_index(),
        };
        self.cursor = Some(start);
        let n = desc.substreams.len().max(1);
        self.weight = 1.0 / n as f64;
        self.rtx_seq = vec![self.rtx_seq_start; desc.substreams.len()];
        self.pacer = Some(Pacer::new(desc.rate, Speed::Times(s.speed), desc.live));
        // at most a burst of RTX_BURST_S of the largest datagrams saved up, refilled by the
        // media sent (the sender's default cap, 100 %)
        let packets_per_s = desc.rate as f64 / desc.packet_frames.max(1) as f64 * n as f64;
        self.budget = ByteBudget::new(1.0, packets_per_s * 1500.0 * RTX_BURST_S + 1500.0);
        self.stats.reports_sent += 1;
        self.send(out, compound.clone());
        self.next_report = Some(now + s.report_interval);
        true
    }

    /// Sends what is due at `now`: the compound on joining, media and repair at its pace,
    /// the regular compound every interval, the final compound at the end.
    pub fn serve(&mut self, now: Instant, s: &Serving<'_>, out: &mut VecDeque<Transmit>) {
        if self.cursor.is_none() && !self.place(now, s, out) {
            return;
        }
        let mut cursor = self.cursor.expect("placed");
        if cursor < s.store.first_index() {
            self.stats.packets_skipped += s.store.first_index() - cursor;
            cursor = s.store.first_index();
        }
        let end = s.store.end_index();
        if !self.flow.is_paused() {
            let pacer = self.pacer.as_mut().expect("placed");
            while cursor < end && pacer.departure(now) <= now {
                let e = s.store.get(cursor).expect("between the tail and the edge");
                pacer.sent(now, e.frames, self.weight);
                match e.kind {
                    EntryKind::Media => self.stats.packets_sent += 1,
                    EntryKind::Repair => self.stats.repair_sent += 1,
                }
                self.budget.credit(e.data.len());
                self.stats.bytes_sent += e.data.len() as u64;
                out.push_back(Transmit {
                    to: self.addr,
                    data: e.data.clone(),
                });
                cursor += 1;
            }
            if cursor == end {
                // at the live edge: what arrives next leaves as it arrives, no catch-up burst
                pacer.restart();
            }
        }
        self.cursor = Some(cursor);
        let at_end = s.ended && cursor == end;
        if at_end {
            if let Some(f) = s.final_compound {
                if self.finals_sent < FINAL_REPEATS && self.next_final.is_none_or(|t| now >= t) {
                    self.finals_sent += 1;
                    self.stats.final_reports_sent += 1;
                    self.next_final = Some(now + FINAL_GAP);
                    self.final_at.get_or_insert(now);
                    self.send(out, f.clone());
                }
            }
            self.next_report = None;
        } else if self.next_report.is_some_and(|t| now >= t) {
            if let Some(c) = s.compound {
                self.stats.reports_sent += 1;
                self.send(out, c.clone());
            }
            self.next_report = Some(now + s.report_interval);
        }
    }

    /// When it wants to be served next (`None`: only an input changes anything).
    pub fn deadline(&self, now: Instant, s: &Serving<'_>) -> Option<Instant> {
        let Some(cursor) = self.cursor else {
            return (s.desc.is_some() && s.compound.is_some()).then_some(now);
        };
        let mut at = self.next_report;
        let mut earliest = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        if !self.flow.is_paused() && cursor < s.store.end_index() {
            if let Some(p) = &self.pacer {
                earliest(p.departure(now));
            }
        }
        if s.ended
            && s.final_compound.is_some()
            && self.finals_sent < FINAL_REPEATS
            && cursor >= s.store.end_index()
        {
            earliest(self.next_final.unwrap_or(now));
        }
        at
    }

    /// A datagram of RTCP from the listener at `now` (it refreshes the subscription):
    /// reports are noted, PAUSE and RESUME answered with ACK (from the SSRC of the
    /// description's first substream), NACKs answered from the store.
    pub fn on_rtcp(
        &mut self,
        now: Instant,
        d: &[u8],
        desc: Option<&SessionDesc>,
        store: &PacketStore,
        out: &mut VecDeque<Transmit>,
    ) {
        self.last_heard = now;
        let mut in_report = false;
        for p in rtcp::parse_compound(d) {
            let Ok(p) = p else { break };
            match p {
                RtcpPacket::ReceiverReport { ssrc, block } => {
                    in_report = true;
                    self.stats.ssrc = Some(ssrc);
                    if let (Some(b), Some(desc)) = (block, desc) {
                        self.stats.receiver_report = Some(ListenerReport {
                            fraction_lost: b.fraction_lost as f64 / 256.0,
                            cumulative_lost: b.cumulative_lost as i64,
                            highest_seq: b.highest_seq,
                            jitter_ms: b.jitter as f64 * 1000.0 / desc.rate.max(1) as f64,
                        });
                    }
                }
                RtcpPacket::Subscribe { ssrc } => {
                    self.stats.ssrc.get_or_insert(ssrc);
                }
                RtcpPacket::Pause { ssrc, request } | RtcpPacket::Resume { ssrc, request } => {
                    let pause = matches!(p, RtcpPacket::Pause { .. });
                    let a = self
                        .flow
                        .on_request(now, true, ssrc, request, pause, in_report);
                    if let (Some(n), Some(sender)) =
                        (a.ack, desc.and_then(|d| d.substreams.first()))
                    {
                        let mut b = BytesMut::with_capacity(16);
                        rtcp::write_flow(&mut b, rtcp::APP_ACK, sender.ssrc, n);
                        self.send(out, b.freeze());
                    }
                    if a.change == Some(FlowChange::Resumed) {
                        if let Some(p) = self.pacer.as_mut() {
                            p.restart();
                        }
                    }
                }
                RtcpPacket::Nack {
                    media_ssrc, lost, ..
                } => {
                    let Some(desc) = desc else { continue };
                    self.stats.nacks_received += 1;
                    let sub = desc.substreams.iter().position(|s| s.ssrc == media_ssrc);
                    let rtx_ssrc = sub.and_then(|i| desc.substreams[i].rtx_ssrc);
                    for seq in lost.seqs() {
                        let (Some(i), Some(rtx_ssrc), Some(e)) =
                            (sub, rtx_ssrc, store.media(media_ssrc, seq))
                        else {
                            self.stats.retransmissions_unavailable += 1;
                            continue;
                        };
                        if !self.budget.take(e.data.len() + 2) {
                            self.stats.retransmissions_over_cap += 1;
                            continue;
                        }
                        if i >= self.rtx_seq.len() {
                            self.rtx_seq.resize(i + 1, self.rtx_seq_start);
                        }
                        if let Some(r) =
                            rtx::retransmission(&mut self.arena, &e.data, rtx_ssrc, self.rtx_seq[i])
                        {
                            self.rtx_seq[i] = self.rtx_seq[i].wrapping_add(1);
                            self.stats.retransmissions_sent += 1;
                            self.send(out, r);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Entry;
    use isostream_transport::rtp::{self, RtpHeader};

    const SSRC: u32 = 0x1a2b_3c4d;
    const RTX: u32 = 0x3c4d_5e6f;

    fn desc() -> SessionDesc {
        crate::testutil::stereo_desc(SSRC, Some(RTX))
    }

    fn media(seq: u16) -> Entry {
        let mut b = BytesMut::new();
        RtpHeader {
            marker: false,
            payload_type: rtp::PT_L16,
            seq,
            timestamp: seq as u32 * 240,
            ssrc: SSRC,
        }
        .write(&mut b);
        b.extend_from_slice(&[seq as u8; 960]);
        Entry {
            data: b.freeze(),
            kind: EntryKind::Media,
            ssrc: SSRC,
            seq,
            pos: Some(seq as i64 * 240),
            frames: 240,
        }
    }

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    fn serving<'a>(
        store: &'a PacketStore,
        desc: &'a SessionDesc,
        compound: &'a Bytes,
        clock_pos: Option<i64>,
    ) -> Serving<'a> {
        Serving {
            store,
            desc: Some(desc),
            compound: Some(compound),
            final_compound: None,
            ended: false,
            clock_pos,
            speed: 2.0,
            report_interval: Duration::from_millis(250),
        }
    }

    fn seqs(out: &mut VecDeque<Transmit>) -> Vec<u16> {
        out.drain(..)
            .filter(|t| rtp::classify(&t.data) == rtp::DatagramKind::Media)
            .map(|t| RtpHeader::parse(&t.data).unwrap().0.seq)
            .collect()
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9000))
    }

    #[test]
    fn a_listener_gets_the_compound_then_media_at_twice_real_time() {
        let mut store = PacketStore::new(1 << 20);
        for q in 0..100 {
            store.push(media(q));
        }
        let (d, c) = (desc(), Bytes::from_static(b"compound"));
        let s = serving(&store, &d, &c, None);
        let mut l = Listener::new(addr(), Some(7), at(0), 100);
        let mut out = VecDeque::new();
        l.serve(at(0), &s, &mut out);
        assert_eq!(&out[0].data[..], b"compound");
        assert_eq!(seqs(&mut out), vec![0]);
        // 5 ms packets at twice real time: one every 2.5 ms
        assert_eq!(
            l.deadline(at(0), &s),
            Some(at(0) + Duration::from_micros(2500))
        );
        l.serve(at(10), &s, &mut out);
        assert_eq!(seqs(&mut out), vec![1, 2, 3, 4]);
        // the compound again every report interval
        l.serve(at(250), &s, &mut out);
        assert!(out.iter().any(|t| &t.data[..] == b"compound"));
    }

    #[test]
    fn a_late_listener_starts_at_the_playout_position() {
        let mut store = PacketStore::new(1 << 20);
        for q in 0..100 {
            store.push(media(q));
        }
        let (d, c) = (desc(), Bytes::from_static(b"c"));
        let s = serving(&store, &d, &c, Some(40 * 240 + 10));
        let mut l = Listener::new(addr(), None, at(0), 0);
        let mut out = VecDeque::new();
        l.serve(at(0), &s, &mut out);
        assert_eq!(seqs(&mut out), vec![41]);
    }

    fn flow(kind: u8, number: u32) -> Bytes {
        let mut b = BytesMut::new();
        rtcp::write_flow(&mut b, kind, 7, number);
        b.freeze()
    }

    fn acks(out: &mut VecDeque<Transmit>) -> Vec<u32> {
        out.drain(..)
            .filter_map(|t| match rtcp::parse_compound(&t.data).next() {
                Some(Ok(RtcpPacket::Ack { ssrc, request })) => {
                    assert_eq!(ssrc, SSRC, "the ACK comes from the sender's SSRC");
                    Some(request)
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn pause_and_resume_are_acknowledged_and_obeyed() {
        let mut store = PacketStore::new(1 << 20);
        for q in 0..100 {
            store.push(media(q));
        }
        let (d, c) = (desc(), Bytes::from_static(b"c"));
        let s = serving(&store, &d, &c, None);
        let mut l = Listener::new(addr(), None, at(0), 0);
        let mut out = VecDeque::new();
        l.serve(at(0), &s, &mut out);
        out.clear();
        l.on_rtcp(at(1), &flow(rtcp::APP_PAUSE, 1), Some(&d), &store, &mut out);
        assert_eq!(acks(&mut out), vec![1]);
        assert!(l.is_paused());
        l.serve(at(100), &s, &mut out);
        assert!(seqs(&mut out).is_empty(), "nothing while paused");
        assert_eq!(l.deadline(at(100), &s), Some(at(250)), "only the report");
        // a stale PAUSE is acknowledged with the newest number and changes nothing
        l.on_rtcp(
            at(101),
            &flow(rtcp::APP_RESUME, 2),
            Some(&d),
            &store,
            &mut out,
        );
        l.on_rtcp(
            at(102),
            &flow(rtcp::APP_PAUSE, 1),
            Some(&d),
            &store,
            &mut out,
        );
        assert_eq!(acks(&mut out), vec![2, 2]);
        assert!(!l.is_paused());
        // resumed: pacing restarts, no catch-up burst
        l.serve(at(103), &s, &mut out);
        assert_eq!(seqs(&mut out), vec![1]);
        let st = l.stats();
        assert_eq!((st.pauses_applied, st.resumes_applied), (1, 1));
    }

    #[test]
    fn nacks_are_answered_from_the_store_and_the_tail_moves_a_sleeper_forward() {
        let mut store = PacketStore::new(40 * (1000 + crate::store::ENTRY_OVERHEAD_BYTES));
        for q in 0..10 {
            store.push(media(q));
        }
        let (d, c) = (desc(), Bytes::from_static(b"c"));
        let mut l = Listener::new(addr(), None, at(0), 500);
        let mut out = VecDeque::new();
        l.serve(at(0), &serving(&store, &d, &c, None), &mut out);
        out.clear();
        let mut b = BytesMut::new();
        let (lost, _) = rtcp::NackList::pack(&[3, 4, 60]);
        rtcp::write_nack(&mut b, 7, SSRC, &lost);
        l.on_rtcp(at(1), &b, Some(&d), &store, &mut out);
        let rtx: Vec<_> = out
            .drain(..)
            .map(|t| {
                let (h, p) = RtpHeader::parse(&t.data).unwrap();
                (h.ssrc, h.seq, rtp::parse_rtx(p).unwrap().0)
            })
            .collect();
        assert_eq!(rtx, vec![(RTX, 500, 3), (RTX, 501, 4)]);
        let st = l.stats();
        assert_eq!(
            (st.retransmissions_sent, st.retransmissions_unavailable),
            (2, 1)
        );
        // a paused listener whose packets the store evicted is moved forward to the tail
        l.on_rtcp(at(2), &flow(rtcp::APP_PAUSE, 1), Some(&d), &store, &mut out);
        for q in 10..100 {
            store.push(media(q));
        }
        l.on_rtcp(
            at(3),
            &flow(rtcp::APP_RESUME, 2),
            Some(&d),
            &store,
            &mut out,
        );
        out.clear();
        l.serve(at(4), &serving(&store, &d, &c, None), &mut out);
        let first = store.first_index() as u16;
        assert_eq!(seqs(&mut out), vec![first]);
        assert_eq!(l.stats().packets_skipped, first as u64 - 1);
    }

    #[test]
    fn the_end_goes_three_times_once_everything_was_sent() {
        let mut store = PacketStore::new(1 << 20);
        store.push(media(0));
        let (d, c, f) = (desc(), Bytes::from_static(b"c"), Bytes::from_static(b"bye"));
        let mut s = serving(&store, &d, &c, None);
        s.ended = true;
        s.final_compound = Some(&f);
        let mut l = Listener::new(addr(), None, at(0), 0);
        let mut out = VecDeque::new();
        let mut finals = 0;
        for ms in (0..1000).step_by(10) {
            l.serve(at(ms), &s, &mut out);
            finals += out.drain(..).filter(|t| &t.data[..] == b"bye").count();
        }
        assert_eq!(finals, 3);
        assert!(!l.finished(), "not heard since");
        l.on_rtcp(
            at(1000),
            &flow(rtcp::APP_RESUME, 0),
            Some(&d),
            &store,
            &mut out,
        );
        assert!(l.finished());
    }
}
