//! The relay session: a sans-IO state machine that takes one session from its upstream (a
//! sender, or another relay) and serves it to any number of listeners, each at its own pace.
//!
//! It owns no socket, thread or clock, and follows the calling rules of
//! [`isostream_transport::sans_io`]: datagrams and timers go to
//! [`RelaySession::handle_input`]; [`RelaySession::poll_output`] hands out datagrams (to the
//! upstream and to the listeners), events, and the instant to be woken.
//!
//! It is an RTP translator in the sense of RFC 3550 section 7 (SSRCs, sequence numbers,
//! timestamps and payloads pass unchanged; the sender's RTCP is forwarded as it is) and a
//! superpeer rather than a pipe:
//!
//! ```text
//!             ┌──────────────────────────── relay ───────────────────────────────┐
//! upstream ──▶│ upstream (binding, DESC, SR, BYE) ─▶ store (media + FEC, budget)  │
//!   ▲         │ reception ─▶ RR ┐   steering (playout clock, PAUSE/RESUME) ◀─┘    │
//!   └─────────│─────────────────┘                                                │
//!             │ listeners: SUBSCRIBE/refresh/timeout; per listener: cursor, pacer, │──▶ listener 1..N
//!             │ ACK of its PAUSE/RESUME, RTX from the store, compound every 250 ms ◀── RR, NACK, PAUSE
//!             └──────────────────────────────────────────────────────────────────┘
//! ```
//!
//! - To its upstream it looks like a receiver: receiver reports every report interval
//!   (restating the flow state it wants) and PAUSE/RESUME by its own watermarks
//!   ([`crate::steering`]).
//! - To each listener it looks like a sender: media and repair from the store at the
//!   listener's pace, its PAUSE/RESUME applied and acknowledged, its NACKs answered with
//!   RFC 4588 retransmissions, the sender's compound every report interval
//!   ([`crate::listener`]).

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;
use isostream_receiver::flow::Request;
use isostream_receiver::subscription::Subscription;
use isostream_transport::rtcp::{self, RtcpPacket};
use isostream_transport::rtp::{self, DatagramKind, RtpHeader};
use isostream_transport::sans_io::{Input, Output, Transmit};
use isostream_transport::seq::ts_delta;
use isostream_transport::time::{Duration, Instant, MediaClock};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::config::{RelayConfig, RelayError};
use crate::listener::{Listener, Serving};
use crate::listeners::Listeners;
use crate::reception::Reception;
use crate::recovery::Recovery;
use crate::stats::{ListenerState, RelayStats};
use crate::steering::Steering;
use crate::store::{Entry, EntryKind, PacketStore};
use crate::upstream::Upstream;

/// How long the relay goes on reporting to its upstream after the upstream ended.
pub const UPSTREAM_LINGER: Duration = Duration::from_millis(1000);

/// Something the application should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayEvent {
    /// The upstream is this address (its first datagram arrived).
    UpstreamBound(SocketAddr),
    /// A listener subscribed from this address.
    ListenerJoined(SocketAddr),
    /// A listener left.
    ListenerLeft {
        /// Its address.
        addr: SocketAddr,
        /// How: finished (it had the whole stream) or timed out.
        state: ListenerState,
    },
    /// The upstream ended: with BYE (`bye`), or silent past the upstream timeout.
    UpstreamEnded {
        /// Whether it said BYE.
        bye: bool,
    },
    /// The upstream ended and every listener has left: the relay's work is done.
    Finished,
}

/// A relay session. See the module documentation for the call protocol.
pub struct RelaySession {
    cfg: RelayConfig,
    /// The relay's SSRC (toward its upstream).
    ssrc: u32,
    upstream: Upstream,
    reception: Reception,
    recovery: Recovery,
    steering: Steering,
    store: PacketStore,
    listeners: Listeners,
    /// SUBSCRIBE to the upstream relay (`--connect`), until its media arrives.
    subscription: Option<Subscription>,
    next_upstream_report: Option<Instant>,
    out: VecDeque<Transmit>,
    events: VecDeque<RelayEvent>,
    rng: StdRng,
    now: Instant,
    deadline: Option<Instant>,
    finished: bool,
    stats: RelayStats,
}

impl RelaySession {
    /// Creates a relay. Errors if the configuration is inconsistent.
    pub fn new(cfg: RelayConfig) -> Result<Self, RelayError> {
        cfg.validate()?;
        let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x0e1a_7000_5eed);
        Ok(RelaySession {
            ssrc: rng.random(),
            upstream: Upstream::new(cfg.connect),
            reception: Reception::default(),
            recovery: Recovery::default(),
            steering: Steering::default(),
            store: PacketStore::new(cfg.store_budget_bytes),
            listeners: Listeners::default(),
            subscription: cfg.connect.map(Subscription::new),
            next_upstream_report: None,
            out: VecDeque::with_capacity(256),
            events: VecDeque::new(),
            rng,
            now: Instant::ZERO,
            deadline: None,
            finished: false,
            stats: RelayStats::default(),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.cfg
    }

    /// The relay's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Listeners being served now.
    pub fn listener_count(&self) -> usize {
        self.listeners.len()
    }

    /// Whether the upstream ended and every listener left.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Media stored ahead of the relay's playout clock, in ms.
    pub fn buffer_ms(&self) -> f64 {
        let rate = self.upstream.desc().map_or(48_000, |d| d.rate);
        MediaClock::new(rate).ms_of(self.steering.ahead_frames(self.now).max(0) as u64)
    }

    /// Handles one input: a datagram (anything malformed or foreign is counted and dropped;
    /// no datagram can make the session panic), or a timer. Audio inputs are ignored.
    pub fn handle_input(&mut self, input: Input<'_>) {
        let now = input.now().max(self.now);
        self.now = now;
        if let Input::Datagram { from, data, .. } = input {
            self.on_datagram(now, from, data);
        }
        self.tick(now);
    }

    /// The next thing to do: a datagram to send, an event, or the instant to be woken.
    pub fn poll_output(&mut self) -> Output<RelayEvent> {
        if let Some(t) = self.out.pop_front() {
            return Output::Transmit(t);
        }
        match self.events.pop_front() {
            Some(e) => Output::Event(e),
            None => Output::Timeout(self.deadline),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> RelayStats {
        let mut s = self.stats.clone();
        s.upstream = self.upstream.addr().map(|a| a.to_string());
        s.upstream_ended = self.upstream.ended();
        let f = self.steering.stats();
        s.pauses_sent = f.pauses_sent;
        s.resumes_sent = f.resumes_sent;
        s.request_retransmissions = f.request_retransmissions;
        s.subscriptions_sent = self.subscription.as_ref().map_or(0, Subscription::sent);
        s.upstream_nacked = self.recovery.asked();
        s.upstream_recovered = self.recovery.recovered();
        s.store_packets = self.store.len();
        s.store_bytes = self.store.bytes();
        s.store_evicted = self.store.evicted();
        s.listeners_joined = self.listeners.joined();
        s.listeners_finished = self.listeners.departed_in(ListenerState::Finished);
        s.listeners_timed_out = self.listeners.departed_in(ListenerState::TimedOut);
        s.subscriptions_refused = self.listeners.refused();
        s.listeners = self.listeners.stats();
        s
    }

    /// The watermarks in frames: (low, high).
    fn marks(&self) -> (i64, i64) {
        let c = MediaClock::new(self.upstream.desc().map_or(48_000, |d| d.rate));
        (
            c.frames_in_ms(self.cfg.low_water_ms) as i64,
            c.frames_in_ms(self.cfg.high_water_ms) as i64,
        )
    }

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, data: Bytes) {
        let kind = rtp::classify(&data);
        if kind == DatagramKind::Foreign {
            self.stats.datagrams_malformed += 1;
            return;
        }
        if self.upstream.is(from) {
            self.on_upstream(now, kind, data);
            return;
        }
        if self.upstream.addr().is_none()
            && !self.listeners.contains(from)
            && starts_upstream(kind, &data)
        {
            self.upstream.bind(from);
            self.events.push_back(RelayEvent::UpstreamBound(from));
            self.on_upstream(now, kind, data);
            return;
        }
        if kind != DatagramKind::Rtcp {
            self.stats.datagrams_foreign += 1;
            return;
        }
        self.on_listener_rtcp(now, from, &data);
    }

    fn send_upstream(&mut self, data: Bytes) {
        if let Some(to) = self.upstream.addr() {
            self.out.push_back(Transmit { to, data });
        }
    }

    fn request(&mut self, req: Option<Request>) {
        if let Some(req) = req {
            let d = self.upstream.request(self.ssrc, req);
            self.send_upstream(d);
        }
    }

    fn on_upstream(&mut self, now: Instant, kind: DatagramKind, data: Bytes) {
        self.upstream.heard(now);
        match kind {
            DatagramKind::Media => self.on_upstream_media(now, data),
            DatagramKind::Repair => {
                let Ok((h, _)) = RtpHeader::parse(&data) else {
                    self.stats.datagrams_malformed += 1;
                    return;
                };
                if self.upstream.desc().is_some() && self.upstream.substream(h.ssrc).is_none() {
                    self.stats.datagrams_foreign += 1;
                    return;
                }
                self.stats.upstream_repair += 1;
                self.stats.upstream_bytes += data.len() as u64;
                self.store.push(Entry {
                    data,
                    kind: EntryKind::Repair,
                    ssrc: h.ssrc,
                    seq: h.seq,
                    pos: None,
                    frames: 0,
                });
            }
            DatagramKind::Retransmission => {
                let reception = &self.reception;
                match self
                    .recovery
                    .on_retransmission(now, &data, |ssrc, seq| reception.peek(ssrc, seq))
                {
                    Some((_, _, original)) => self.on_upstream_media(now, original),
                    None => self.stats.upstream_retransmissions += 1,
                }
            }
            DatagramKind::Rtcp => self.on_upstream_rtcp(now, data),
            DatagramKind::Foreign => self.stats.datagrams_malformed += 1,
        }
    }

    fn on_upstream_media(&mut self, now: Instant, data: Bytes) {
        let Ok((h, _)) = RtpHeader::parse(&data) else {
            self.stats.datagrams_malformed += 1;
            return;
        };
        let index = self.upstream.substream(h.ssrc);
        let desc = self.upstream.desc();
        if desc.is_some() && index.is_none() {
            self.stats.datagrams_foreign += 1;
            return;
        }
        if self.store.has_media(h.ssrc, h.seq) {
            self.stats.upstream_duplicates += 1;
            return;
        }
        let (pos, frames) = match (desc, index) {
            (Some(d), Some(i)) => (
                Some(ts_delta(h.timestamp, d.substreams[i].ts_base) as i64),
                d.packet_frames as u32,
            ),
            _ => (None, 0),
        };
        self.stats.upstream_packets += 1;
        self.stats.upstream_bytes += data.len() as u64;
        self.upstream.media(now);
        if let Some(ext) = index.and_then(|i| self.reception.on_media(i, h.seq)) {
            self.recovery.on_media(now, &h, ext);
        }
        if let Some(p) = pos {
            let marks = self.marks();
            let req = self.steering.on_media(now, p, frames, marks);
            self.request(req);
        }
        self.store.push(Entry {
            data,
            kind: EntryKind::Media,
            ssrc: h.ssrc,
            seq: h.seq,
            pos,
            frames,
        });
    }

    fn on_upstream_rtcp(&mut self, now: Instant, data: Bytes) {
        let (mut bye, mut regular) = (false, false);
        for p in rtcp::parse_compound(&data) {
            let Ok(p) = p else {
                self.stats.datagrams_malformed += 1;
                break;
            };
            match p {
                RtcpPacket::SenderReport(sr) => {
                    regular = true;
                    self.reception.on_sender_report(now, &sr);
                }
                RtcpPacket::Desc { desc, .. } => {
                    regular = true;
                    let (ssrcs, rate) = (
                        desc.substreams.iter().map(|s| s.ssrc).collect::<Vec<_>>(),
                        desc.rate,
                    );
                    self.recovery_desc(&desc);
                    if self.upstream.set_desc(desc) {
                        self.reception.set_substreams(ssrcs.into_iter());
                        self.steering.set_rate(rate);
                    }
                }
                RtcpPacket::Bye { .. } => bye = true,
                RtcpPacket::Ack { ssrc, request } if Some(ssrc) == self.upstream.first_ssrc() => {
                    let req = self.steering.on_ack(now, request);
                    self.request(req);
                }
                _ => {}
            }
        }
        if bye {
            if !self.upstream.ended() {
                self.events
                    .push_back(RelayEvent::UpstreamEnded { bye: true });
            }
            self.upstream.on_bye(now, data);
        } else if regular && !self.upstream.ended() {
            self.upstream.keep_compound(data);
        }
    }

    /// A description: NACK stages for its substreams, if it is new.
    fn recovery_desc(&mut self, desc: &rtcp::SessionDesc) {
        if self.upstream.desc() != Some(desc) {
            self.recovery.set_desc(desc);
        }
    }

    fn on_listener_rtcp(&mut self, now: Instant, from: SocketAddr, data: &Bytes) {
        let desc = self.upstream.desc();
        if let Some(l) = self.listeners.get_mut(from) {
            l.on_rtcp(now, data, desc, &self.store, &mut self.out);
            return;
        }
        let Some(ssrc) = subscription_of(data, |ssrc| self.upstream.substream(ssrc).is_some())
        else {
            self.stats.datagrams_foreign += 1;
            return;
        };
        if self.upstream.ended() {
            self.listeners.refuse();
            return;
        }
        let rtx_seq = self.rng.random();
        if self.listeners.admit(
            Listener::new(from, Some(ssrc), now, rtx_seq),
            self.cfg.max_listeners,
        ) {
            self.events.push_back(RelayEvent::ListenerJoined(from));
            if let Some(l) = self.listeners.get_mut(from) {
                l.on_rtcp(now, data, desc, &self.store, &mut self.out);
            }
        }
    }

    /// Everything timed, then the next deadline.
    fn tick(&mut self, now: Instant) {
        // the upstream
        if let Some(heard) = self.upstream.last_heard() {
            if !self.upstream.ended() && now - heard >= self.cfg.upstream_timeout {
                self.upstream.lost(now);
                self.events
                    .push_back(RelayEvent::UpstreamEnded { bye: false });
            }
        }
        let marks = self.marks();
        let req = self.steering.on_timeout(now, marks);
        self.request(req);
        // reports go on for a while after the end, so that an upstream relay sees its
        // listener finish (and a sender lingering for NACKs hears that all arrived)
        let reporting = self.upstream.last_heard().is_some()
            && self
                .upstream
                .ended_at()
                .is_none_or(|t| now < t + UPSTREAM_LINGER);
        if reporting && self.next_upstream_report.is_none_or(|t| now >= t) {
            self.next_upstream_report = Some(now + self.cfg.report_interval);
            let blocks = self.reception.blocks(now).to_vec();
            let d = self
                .upstream
                .report(self.ssrc, &blocks, self.steering.state());
            self.send_upstream(d);
        }
        if reporting {
            let mut nacks = Vec::new();
            self.recovery.due(now, self.ssrc, &mut nacks);
            for d in nacks {
                self.send_upstream(d);
            }
        }
        let waiting = !self.upstream.has_media() && !self.upstream.ended();
        if let Some(s) = self.subscription.as_mut() {
            if let Some(d) = s.poll(now, waiting, self.ssrc) {
                let to = s.relay();
                self.out.push_back(Transmit { to, data: d });
            }
        }
        // the listeners
        for (addr, state) in self.listeners.expire(now, self.cfg.listener_timeout) {
            self.events
                .push_back(RelayEvent::ListenerLeft { addr, state });
        }
        let serving = Serving {
            store: &self.store,
            desc: self.upstream.desc(),
            compound: self.upstream.compound(),
            final_compound: self.upstream.final_compound(),
            ended: self.upstream.ended(),
            clock_pos: self.steering.clock_pos(now),
            speed: self.cfg.speed,
            report_interval: self.cfg.report_interval,
        };
        let mut at: Option<Instant> = None;
        let mut earliest = |t: Option<Instant>| {
            if let Some(t) = t {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        };
        for l in self.listeners.iter_mut() {
            l.serve(now, &serving, &mut self.out);
            earliest(l.deadline(now, &serving));
            earliest(Some(l.silent_at(self.cfg.listener_timeout)));
        }
        if self.upstream.ended() && self.listeners.is_empty() && !self.finished {
            self.finished = true;
            self.events.push_back(RelayEvent::Finished);
        }
        // the next deadline
        earliest(self.steering.deadline(now, marks.0));
        if reporting {
            earliest(self.next_upstream_report);
            earliest(self.recovery.next_deadline());
            if !self.upstream.ended() {
                earliest(
                    self.upstream
                        .last_heard()
                        .map(|t| t + self.cfg.upstream_timeout),
                );
            }
        }
        if let Some(s) = &self.subscription {
            earliest(s.deadline(waiting, now));
        }
        self.deadline = at;
    }
}

/// Whether a datagram from an unknown address starts the upstream: media or repair, or
/// RTCP with a sender report or a description.
fn starts_upstream(kind: DatagramKind, d: &[u8]) -> bool {
    match kind {
        DatagramKind::Media | DatagramKind::Repair => true,
        DatagramKind::Rtcp => rtcp::parse_compound(d)
            .any(|p| matches!(p, Ok(RtcpPacket::SenderReport(_) | RtcpPacket::Desc { .. }))),
        _ => false,
    }
}

/// Whether an RTCP datagram from an unknown address subscribes: a SUBSCRIBE, or a receiver
/// report whose first block is about one of the session's substreams (`ours`). Returns the
/// listener's SSRC.
fn subscription_of(d: &[u8], ours: impl Fn(u32) -> bool) -> Option<u32> {
    for p in rtcp::parse_compound(d) {
        match p {
            Ok(RtcpPacket::Subscribe { ssrc }) => return Some(ssrc),
            Ok(RtcpPacket::ReceiverReport {
                ssrc,
                block: Some(b),
            }) if ours(b.ssrc) => return Some(ssrc),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    const SSRC: u32 = 0x1a2b_3c4d;

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn compound() -> Bytes {
        let mut b = BytesMut::new();
        rtcp::write_desc(&mut b, SSRC, &crate::testutil::stereo_desc(SSRC, None));
        b.freeze()
    }

    fn datagram(r: &mut RelaySession, now: Instant, from: SocketAddr, data: Bytes) {
        r.handle_input(Input::Datagram { now, from, data });
    }

    fn drain(r: &mut RelaySession) -> (Vec<Transmit>, Vec<RelayEvent>) {
        let (mut t, mut e) = (Vec::new(), Vec::new());
        loop {
            match r.poll_output() {
                Output::Transmit(x) => t.push(x),
                Output::Event(x) => e.push(x),
                Output::Timeout(_) => return (t, e),
            }
        }
    }

    #[test]
    fn garbage_from_anywhere_is_counted_and_dropped() {
        let mut r = RelaySession::new(RelayConfig::default()).unwrap();
        let mut x = 0x1234_5678_u64;
        for n in 0..20_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (x >> 56) as usize % 64;
            let mut d: Vec<u8> = (0..len)
                .map(|i| (x >> ((i % 8) * 8)) as u8 ^ i as u8)
                .collect();
            if len > 2 && n % 2 == 0 {
                d[0] = 0x80 | (d[0] & 0x1f);
                d[1] = 0xc8 + (d[1] % 8);
            }
            datagram(&mut r, at(n / 10), addr(1 + (n % 3) as u16), Bytes::from(d));
            drain(&mut r);
        }
        let s = r.stats();
        assert!(s.datagrams_malformed + s.datagrams_foreign > 0);
    }

    #[test]
    fn a_subscriber_is_served_the_compound_and_a_stranger_is_foreign() {
        let mut r = RelaySession::new(RelayConfig::default()).unwrap();
        let sender = addr(5004);
        datagram(&mut r, at(0), sender, compound());
        let (_, ev) = drain(&mut r);
        assert_eq!(ev, vec![RelayEvent::UpstreamBound(sender)]);
        // a receiver report about nobody's substream from a stranger does not subscribe
        let mut b = BytesMut::new();
        rtcp::write_receiver_report(&mut b, 9, &[]);
        datagram(&mut r, at(1), addr(7), b.freeze());
        assert_eq!(r.stats().datagrams_foreign, 1);
        let mut b = BytesMut::new();
        rtcp::write_subscribe(&mut b, 9);
        datagram(&mut r, at(2), addr(7), b.freeze());
        let (tx, ev) = drain(&mut r);
        assert_eq!(ev, vec![RelayEvent::ListenerJoined(addr(7))]);
        assert!(tx.iter().any(|t| t.to == addr(7) && t.data == compound()));
        // silent past the timeout: dropped
        r.handle_input(Input::Timeout(at(2) + r.config().listener_timeout));
        let (_, ev) = drain(&mut r);
        assert!(ev.contains(&RelayEvent::ListenerLeft {
            addr: addr(7),
            state: ListenerState::TimedOut
        }));
        assert_eq!(r.listener_count(), 0);
    }
}
