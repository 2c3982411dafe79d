//! The receiver session: a sans-IO state machine that plays out the substreams of one
//! session, and steers the sender with PAUSE and RESUME.
//!
//! It owns no socket, thread or clock, and follows the calling rules of
//! [`isostream_transport::sans_io`]: datagrams and timers go to
//! [`ReceiverSession::handle_input`]; [`ReceiverSession::poll_output`] hands out datagrams for
//! the sender (to the address the session's datagrams come from), events, and the instant to
//! be woken. Audio is pulled at the playout pace ([`ReceiverSession::playout`], "the next N
//! frames at time t", driven by a timer, a sound card or a simulator;
//! [`ReceiverSession::due_frames`] says how many the playout clock wants).
//!
//! The session keeps the lifecycle (a provisional session for a stream without a
//! description, a new session, the old one retired, the end after BYE or the idle timeout),
//! the demultiplexing (RTP, repair and RTCP, by SSRC) and the watermark decisions; the audio
//! goes through one stage chain per substream ([`crate::substream`]) and the playout side
//! ([`crate::playout`]), drawn in the [crate documentation](crate). Datagrams go through one
//! queue: a description that replaces a provisional session puts the datagrams that session
//! kept back into it, ahead of the rest of its RTCP packet.
//!
//! This file is the one place that chains the receiver's stages, for every datagram:
//!
//! ```text
//! handle_input ─▶ queue ─▶ dispatch ─┬─ media ──────────▶ binding ──▶ substreams ──┐
//!                  ▲                 ├─ retransmission ─▶ RTX SSRC ─▶ substreams ──┤
//!                  │ replay          ├─ repair ─────────▶ binding ──▶ substreams ──┤
//!                  │                 └─ RTCP ─▶ rtcp_facts ─▶ lifecycle, stages ───┤
//!                  └─ a description replacing a provisional session                ▼
//!                                     after_write: playback start at the watermarks,
//!                                     flow (PAUSE/RESUME) ─▶ control ─▶ poll_output
//! playout ─▶ playout side ─▶ end check (lifecycle) ─▶ after_write
//! timeout ─▶ flow retry, hand-over, idle end, reports, NACKs
//! after every input: the stages' deadlines ─▶ timers ─▶ poll_output (when to wake)
//! ```
//!
//! The pieces beside it, in `session/`:
//!
//! - `active`: the current (or last) session's state, and where its stream ends.
//! - `queue`: the datagram queue, and the copies a provisional session keeps for replay.
//! - `binding`: which substream a datagram belongs to (SSRC and bound source address).
//! - `rtcp_facts`: the facts of a received RTCP packet, applied to the stages.
//! - `lifecycle`: a session starts, is refused, retires, ends and hands over.
//! - `status`: what the application can read (format, state, levels, memory, counters).
//! - `timers`: the stages' deadlines in one timer table.

mod active;
mod binding;
mod lifecycle;
mod queue;
mod rtcp_facts;
mod status;
mod timers;

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;
use isostream_media::AudioSpec;
use isostream_transport::fec::RepairHeader;
use isostream_transport::rtcp;
use isostream_transport::rtp::{self, DatagramKind, RtpHeader};
use isostream_transport::sans_io::{Input, Output, Transmit};
use isostream_transport::time::{Duration, Instant, MediaClock};

use crate::budget::{MemoryBudget, OverBudget};
use crate::config::ReceiverConfig;
use crate::control::Control;
use crate::deinterleaver::payload_format;
use crate::flow::{FlowController, Request};
use crate::layout::Layout;
use crate::playout::PlayInput;
use crate::stats::Drops;
use crate::subscription::Subscription;
use crate::successor::Successor;

use active::Active;
pub use active::MAX_LOST_TAIL_MS;
use queue::{Work, WorkQueue};
use timers::{Deadlines, Timers};

pub use crate::stats::{LatencyStats, ReceiverStats, SubstreamStats};

/// Something the application should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiverEvent {
    /// A session began: audio of this spec (all substreams' channels) will be played.
    SessionStarted {
        /// The output's format.
        spec: AudioSpec,
        /// Channels of each substream, in output order.
        substream_channels: Vec<u16>,
    },
    /// The low-water mark was reached: playback started.
    PlaybackStarted,
    /// The session ended (BYE or idle timeout) and its buffer is drained; its buffers are
    /// freed.
    SessionEnded,
    /// A description (or a stock stream) was refused: its buffers would not fit in the
    /// memory budget (`sessions_over_budget` in the stats). The receiver goes on as before.
    SessionRefused {
        /// Why, in words (what it needs and what the budget leaves).
        reason: String,
    },
}

/// How long a stream without a session description waits (beyond the low-water mark) before
/// playback starts, so that a lost first description is made good by the next one (sent
/// every 250 ms) before the output format is fixed.
pub const PROVISIONAL_GRACE: Duration = Duration::from_millis(600);

/// A receiver session. See the module documentation for the call protocol.
pub struct ReceiverSession {
    /// The configuration.
    cfg: ReceiverConfig,
    /// The current (or last) session.
    active: Option<Active>,
    /// PAUSE/RESUME with acknowledgement and retransmission.
    flow: FlowController,
    /// The RTCP the receiver sends.
    control: Control,
    /// Events for the application, oldest first.
    events: VecDeque<ReceiverEvent>,
    /// Datagrams dropped, and sessions refused, by cause.
    drops: Drops,
    /// Totals of sessions that already ended.
    done: Option<ReceiverStats>,
    /// Datagrams still to handle (see `queue`).
    queue: WorkQueue,
    /// Datagrams of a stream that is not the playing session's (see [`crate::successor`]).
    successor: Successor,
    /// The time of the latest input.
    now: Instant,
    /// Where the current session's datagrams come from: where replies go.
    peer: Option<SocketAddr>,
    /// The source of the datagram being handled (`None`: replayed, already vetted).
    from: Option<SocketAddr>,
    /// Where the waiting successor's description came from: its session's source.
    successor_source: Option<SocketAddr>,
    /// The timers (see `timers`), brought up to date after every input.
    timers: Timers,
    /// Bytes of RTCP handed out for the sender (reports, PAUSE/RESUME, NACKs).
    rtcp_bytes: u64,
    /// Why the latest session refused for the budget was.
    last_refusal: Option<OverBudget>,
    /// The SUBSCRIBE timer of a receiver that connects to a relay.
    subscription: Option<Subscription>,
    /// A SUBSCRIBE made and not yet handed out.
    subscribe_out: Option<Bytes>,
}

impl ReceiverSession {
    /// Creates a receiver. Errors if the configuration is inconsistent.
    pub fn new(cfg: ReceiverConfig) -> Result<Self, crate::error::ReceiverError> {
        cfg.validate()?;
        let successor =
            Successor::new(MemoryBudget::new(cfg.memory_budget_bytes).successor_bytes());
        Ok(ReceiverSession {
            control: Control::new(cfg.seed, cfg.report_interval),
            subscription: cfg.connect.map(Subscription::new),
            subscribe_out: None,
            cfg,
            active: None,
            flow: FlowController::new(),
            events: VecDeque::new(),
            drops: Drops::default(),
            done: None,
            queue: WorkQueue::default(),
            successor,
            now: Instant::ZERO,
            peer: None,
            from: None,
            successor_source: None,
            timers: Timers::default(),
            rtcp_bytes: 0,
            last_refusal: None,
        })
    }

    /// The low-water mark, the RESUME mark and the high-water mark in frames at the
    /// session's rate.
    fn marks(&self) -> (i64, i64, i64) {
        let rate = self
            .active
            .as_ref()
            .map_or(self.cfg.default_spec.rate, |a| a.spec.rate);
        let c = MediaClock::new(rate);
        (
            c.frames_in_ms(self.cfg.low_water_ms) as i64,
            c.frames_in_ms(self.cfg.resume_water_ms_or_low()) as i64,
            c.frames_in_ms(self.cfg.high_water_ms) as i64,
        )
    }

    /// Handles one input: a datagram from the network (anything malformed or foreign is
    /// counted and dropped; no datagram can make the session panic; the FEC decoder keeps a
    /// reference to it, not a copy), or a timer. A session is bound to the address its
    /// first datagram came from: media, BYE, sender reports, descriptions and
    /// acknowledgements of its SSRCs from elsewhere are foreign, and replies go to that
    /// address (where its media comes from, through NAT and relays). A receiver takes no audio input: [`Input::Audio`] and
    /// [`Input::EndOfInput`] are ignored.
    pub fn handle_input(&mut self, input: Input<'_>) {
        self.now = self.now.max(input.now());
        match input {
            Input::Datagram { now, from, data } => {
                self.from = Some(from);
                if self.handle_bytes(now, data) {
                    self.peer = Some(from);
                }
                self.from = None;
            }
            Input::Timeout(now) => self.handle_timeout(now),
            Input::Audio { .. } | Input::EndOfInput(_) => {}
        }
        let waiting = self.active.is_none();
        if let Some(s) = self.subscription.as_mut() {
            if let Some(d) = s.poll(self.now, waiting, self.control.ssrc()) {
                self.subscribe_out = Some(d);
            }
        }
        self.refresh_timers();
    }

    /// The next thing to do: a datagram for the sender, an event, or the instant to be woken
    /// ([`Output::Timeout`]). Control datagrams made before any sender was heard from are
    /// dropped: there is nobody to send them to. A receiver that connects to a relay
    /// ([`ReceiverConfig::connect`]) also hands out its SUBSCRIBEs, to the relay, until its
    /// first session starts.
    pub fn poll_output(&mut self) -> Output<ReceiverEvent> {
        if let Some(data) = self.subscribe_out.take() {
            if let Some(s) = &self.subscription {
                self.rtcp_bytes += data.len() as u64;
                return Output::Transmit(Transmit {
                    to: s.relay(),
                    data,
                });
            }
        }
        while let Some(data) = self.control.poll() {
            if let Some(to) = self.peer {
                self.rtcp_bytes += data.len() as u64;
                return Output::Transmit(Transmit { to, data });
            }
        }
        match self.events.pop_front() {
            Some(e) => Output::Event(e),
            None => Output::Timeout(self.timers.next()),
        }
    }

    /// Handles one datagram; returns whether it belonged to the current session.
    fn handle_bytes(&mut self, now: Instant, d: Bytes) -> bool {
        self.queue.push_datagram(d);
        self.run_queue(now)
    }

    /// Handles the queued datagrams; returns whether the last new one was ours.
    fn run_queue(&mut self, now: Instant) -> bool {
        let mut ours = false;
        while let Some(w) = self.queue.pop() {
            match w {
                Work::Datagram(d) => ours = self.dispatch(now, d).unwrap_or(ours),
                Work::Replay(d) => {
                    self.dispatch(now, d);
                }
                Work::RtcpRest { d, from, bye } => {
                    ours = self.handle_rtcp(now, &d, from, bye).unwrap_or(ours);
                }
            }
        }
        ours
    }

    /// Handles one datagram: whether it was ours, or `None` if its handling continues later
    /// in the queue.
    fn dispatch(&mut self, now: Instant, d: Bytes) -> Option<bool> {
        match rtp::classify(&d) {
            DatagramKind::Foreign => {
                self.drops.malformed += 1;
                Some(false)
            }
            DatagramKind::Retransmission => Some(self.handle_retransmission(now, &d)),
            DatagramKind::Rtcp => self.handle_rtcp(now, &d, 0, false),
            DatagramKind::Repair => Some(self.handle_repair(now, &d)),
            DatagramKind::Media => Some(self.handle_media(now, &d)),
        }
    }

    fn handle_media(&mut self, now: Instant, d: &Bytes) -> bool {
        let Ok((h, payload)) = RtpHeader::parse(d) else {
            self.drops.malformed += 1;
            return false;
        };
        let kept = queue::keep_for_replay(self.active.as_mut(), d, &mut self.drops);
        let stock_l16 = self.cfg.stock_l16_payload_type;
        if self.bound_index(h.ssrc).is_none()
            && self.active.as_ref().is_none_or(|a| a.ended)
            && (payload_format(h.payload_type, stock_l16).is_some()
                || (cfg!(feature = "opus") && h.payload_type == rtp::PT_OPUS))
        {
            // a stock sender (no session description): accept its stream as it is
            let layout = Layout::stock(self.cfg.default_spec, h.ssrc, h.payload_type, stock_l16);
            if self.new_active(now, layout) {
                queue::keep_for_replay(self.active.as_mut(), d, &mut self.drops);
            }
        }
        let Some((i, ctx)) = self.heard(now, h.ssrc) else {
            return self.not_ours(now, d, kept);
        };
        let a = self.active.as_mut().expect("heard from a session");
        if !a
            .subs
            .on_media(now, i, &h, payload, d, &ctx, &mut self.drops)
        {
            return true; // a duplicate
        }
        if let Some(req) = self.flow.on_media(now) {
            self.send_request(req);
        }
        self.after_write(now);
        true
    }

    /// A retransmission (RFC 4588) on a substream's RTX stream: the original goes down the
    /// substream's chain as if it had arrived in time.
    fn handle_retransmission(&mut self, now: Instant, d: &Bytes) -> bool {
        let Ok((h, payload)) = RtpHeader::parse(d) else {
            self.drops.malformed += 1;
            return false;
        };
        let elsewhere = self.elsewhere();
        let Some(a) = self.active.as_mut().filter(|_| !elsewhere) else {
            self.drops.foreign += 1;
            return false;
        };
        let Some(i) = a.subs.index_of_rtx(h.ssrc) else {
            self.drops.foreign += 1;
            return false;
        };
        a.last_heard = now;
        let ctx = a.receive_context(&self.cfg);
        let pt = a.media_pt;
        if a.subs
            .on_retransmission(now, i, &h, payload, pt, &ctx, &mut self.drops)
        {
            self.after_write(now);
        }
        true
    }

    fn handle_repair(&mut self, now: Instant, d: &Bytes) -> bool {
        let Ok((h, shard)) = RepairHeader::parse(d) else {
            self.drops.malformed += 1;
            return false;
        };
        let kept = queue::keep_for_replay(self.active.as_mut(), d, &mut self.drops);
        let Some((i, ctx)) = self.heard(now, h.ssrc) else {
            return self.not_ours(now, d, kept);
        };
        let a = self.active.as_mut().expect("heard from a session");
        if a.subs.on_repair(now, i, &h, shard, &ctx, &mut self.drops) {
            self.after_write(now);
        }
        true
    }

    /// After the buffers changed: starts playback at the low-water mark (or the high-water
    /// mark, or once the end is known), and asks for PAUSE or RESUME.
    fn after_write(&mut self, now: Instant) {
        let (low, resume, high) = self.marks();
        let Some(a) = self.active.as_mut() else {
            return;
        };
        let (emptiest, fullest) = a.subs.occupancy();
        a.playout.note_fullest(fullest);
        // a stream without a description may be a stock sender's, or an isostream sender
        // whose first description was lost: give the next description time to arrive
        let described = !a.provisional || now - a.first_arrival >= PROVISIONAL_GRACE;
        if !a.playout.is_running()
            && !a.ended
            && ((emptiest >= low && described) || fullest >= high || a.end_pos.is_some())
        {
            if a.live && a.playout.first_start().is_some() && emptiest > low {
                // a live stream that ran dry restarts at its latency: what a loss burst
                // left behind beyond the low-water mark is dropped, not played late
                a.subs.discard((emptiest - low) as usize);
            }
            a.playout.start(now);
            self.events.push_back(ReceiverEvent::PlaybackStarted);
        }
        if self.cfg.multicast {
            // a group's sender obeys no one member's PAUSE/RESUME: none is asked for
            return;
        }
        if let Some(req) = self.flow.update(now, fullest, resume, high) {
            self.send_request(req);
        }
    }

    fn send_request(&mut self, req: Request) {
        // PAUSE/RESUME move the buffer for reasons other than clock drift
        if let Some(a) = self.active.as_mut() {
            a.playout.flow_request_sent();
        }
        self.control.request(req);
    }

    /// Frames the playout clock says are due at `now` (0 before playback starts, and never
    /// past the end of an ended stream).
    pub fn due_frames(&self, now: Instant) -> usize {
        let Some(a) = &self.active else { return 0 };
        if a.ended {
            return 0;
        }
        let mut n = a.playout.due(now);
        if let Some(end) = a.end_pos {
            n = n.min((end - a.subs.read_pos()).max(0) as u64);
        }
        n as usize
    }

    /// Plays out the next frames into `out` (wire frames of [`Self::spec`], all substreams'
    /// channels in order): as many as fit, but never past the end of an ended stream, and
    /// never past the newest audio received (an underrun holds the due frames back until
    /// audio arrives or the stream ends). Missing audio is interpolated or concealed in
    /// place, so the timeline never slips. Returns the frames written (0 before playback).
    pub fn playout(&mut self, now: Instant, out: &mut [u8]) -> usize {
        let (low, _) = self.watermarks();
        let Some(a) = self.active.as_mut() else {
            return 0;
        };
        if !a.playout.is_running() || a.ended {
            return 0;
        }
        let input = PlayInput {
            end_pos: a.end_pos,
            low,
            live: a.live,
            last_media: a.subs.last_media(),
        };
        let n = a.playout.play(now, out, &mut a.subs, &input);
        if !self.check_end() {
            self.after_write(now);
        } else {
            self.hand_over(now);
        }
        self.now = self.now.max(now);
        self.refresh_timers();
        n
    }

    /// Handles timers: request retransmissions, receiver reports, the idle timeout.
    fn handle_timeout(&mut self, now: Instant) {
        if let Some(req) = self.flow.on_timeout(now) {
            self.send_request(req);
        }
        self.hand_over(now);
        let Some(a) = self.active.as_mut() else {
            return;
        };
        if !a.ended && a.end_pos.is_none() && now - a.last_heard >= self.cfg.idle_timeout {
            // the sender went quiet without BYE (a stock sender, or it died): play what is left
            // (not up to its last report: a report alone is no licence to play silence)
            a.end_pos = Some(a.subs.data_end());
            if !a.playout.is_running() {
                a.playout.start(now);
                self.events.push_back(ReceiverEvent::PlaybackStarted);
            }
        }
        if self.check_end() {
            return;
        }
        let Some(a) = self.active.as_mut() else {
            return;
        };
        if self.control.report_due(now) {
            let ntp =
                rtcp::ntp_from_unix_nanos(self.cfg.wallclock_at_zero_ns + now.as_nanos() as u128);
            let state = self.flow.state();
            self.control
                .report(now, ntp, a.subs.report_blocks(now), state);
        }
        // lost packets whose answer can still arrive in time
        let (rate, playing) = (a.spec.rate, a.playout.is_running());
        let control = &mut self.control;
        a.subs
            .nacks(now, rate, playing, |ssrc, seqs| control.nack(ssrc, seqs));
    }

    /// The receiver's wall clock at `now`, as a 64-bit NTP timestamp.
    fn ntp(&self, now: Instant) -> u64 {
        rtcp::ntp_from_unix_nanos(self.cfg.wallclock_at_zero_ns + now.as_nanos() as u128)
    }

    /// Brings the timer table up to date with the stages that own the deadlines: the flow
    /// controller's retransmission, the next report, the idle timeout (none once the session
    /// has ended).
    fn refresh_timers(&mut self) {
        let a = self.active.as_ref().filter(|a| !a.ended);
        let deadlines = Deadlines {
            flow_retry: self.flow.deadline(),
            report: a.map(|_| self.control.next_report().unwrap_or(self.now)),
            idle: a
                .filter(|a| a.end_pos.is_none())
                .map(|a| a.last_heard + self.cfg.idle_timeout),
            nack: a.and_then(|a| a.subs.next_nack()),
            subscribe: self
                .subscription
                .as_ref()
                .and_then(|s| s.deadline(self.active.is_none(), self.now)),
        };
        self.timers.refresh(&deadlines);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use isostream_media::SampleFormat;
    use isostream_transport::rtcp::{RtcpPacket, SessionDesc, SubstreamDesc};

    const SSRC: u32 = 0x5eed;
    /// Frames per packet (5 ms at 48 kHz).
    const FRAMES: usize = 240;
    /// Bytes per frame (S16 stereo, the default spec of a stock stream).
    const FB: usize = 4;

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    /// Low water 10 ms (480 frames), high water 100 ms (4800 frames).
    fn receiver() -> ReceiverSession {
        ReceiverSession::new(ReceiverConfig {
            low_water_ms: 10,
            high_water_ms: 100,
            ..ReceiverConfig::default()
        })
        .unwrap()
    }

    /// Media packet `seq` of `ssrc`: position `seq x FRAMES`, every sample byte `seq + 1`.
    fn media(ssrc: u32, seq: u16) -> Bytes {
        let mut b = BytesMut::new();
        RtpHeader {
            marker: false,
            payload_type: rtp::PT_L16,
            seq,
            timestamp: seq as u32 * FRAMES as u32,
            ssrc,
        }
        .write(&mut b);
        b.extend_from_slice(&[seq as u8 + 1; FRAMES * FB]);
        b.freeze()
    }

    fn desc() -> SessionDesc {
        SessionDesc {
            codec: 0,
            rate: 48_000,
            format: SampleFormat::S16.code(),
            packet_frames: FRAMES as u16,
            interleave: 1,
            fec_k: 0,
            fec_m: 0,
            spread: 1,
            live: false,
            substreams: vec![SubstreamDesc {
                ssrc: SSRC,
                ts_base: 0,
                channels: 2,
                rtx_ssrc: None,
            }],
        }
    }

    /// A compound RTCP packet: the description, then BYE if `bye`.
    fn rtcp_desc(bye: bool) -> Bytes {
        let mut b = BytesMut::new();
        rtcp::write_desc(&mut b, SSRC, &desc());
        if bye {
            rtcp::write_bye(&mut b, SSRC);
        }
        b.freeze()
    }

    /// A sender report of `SSRC` claiming an hour of audio (not frozen: a BYE may follow).
    fn report_of_an_hour() -> BytesMut {
        let mut b = BytesMut::new();
        rtcp::write_sender_report(
            &mut b,
            &rtcp::SenderReport {
                ssrc: SSRC,
                ntp: 0,
                rtp_ts: 48_000 * 3600,
                packets: 0,
                octets: 0,
            },
        );
        b
    }

    fn bye() -> Bytes {
        let mut b = BytesMut::new();
        rtcp::write_bye(&mut b, SSRC);
        b.freeze()
    }

    /// Drains the outputs: the datagrams for the sender, the events, the next deadline.
    fn outputs(rx: &mut ReceiverSession) -> (Vec<Bytes>, Vec<ReceiverEvent>, Option<Instant>) {
        rx.refresh_timers();
        let (mut sent, mut ev) = (Vec::new(), Vec::new());
        loop {
            match rx.poll_output() {
                Output::Transmit(t) => sent.push(t.data),
                Output::Event(e) => ev.push(e),
                Output::Timeout(at) => return (sent, ev, at),
            }
        }
    }

    fn events(rx: &mut ReceiverSession) -> Vec<ReceiverEvent> {
        outputs(rx).1
    }

    fn started(ev: &[ReceiverEvent]) -> usize {
        ev.iter()
            .filter(|e| matches!(e, ReceiverEvent::SessionStarted { .. }))
            .count()
    }

    /// Plays up to `frames` frames at `now`; returns what was played.
    fn play(rx: &mut ReceiverSession, now: Instant, frames: usize) -> Vec<u8> {
        let mut out = vec![0u8; frames * FB];
        let n = rx.playout(now, &mut out);
        out.truncate(n * FB);
        out
    }

    #[test]
    fn a_provisional_session_replaced_by_a_description_replays_what_it_kept() {
        let mut rx = receiver();
        for seq in 0..3 {
            assert!(rx.handle_bytes(at(seq as u64), media(SSRC, seq)));
        }
        // a stream without a description: a provisional session, not playing yet (grace)
        assert_eq!(started(&events(&mut rx)), 1);
        assert!(!rx.is_playing());
        assert_eq!(rx.occupancy(), (720, 720));
        // the description (and a BYE behind it in the same packet) replaces it
        assert!(rx.handle_bytes(at(10), rtcp_desc(true)));
        let ev = events(&mut rx);
        assert_eq!(started(&ev), 1);
        assert!(ev.contains(&ReceiverEvent::PlaybackStarted));
        let st = rx.stats();
        assert_eq!(
            (
                st.packets_received,
                st.packets_duplicate,
                st.datagrams_foreign
            ),
            (3, 0, 0)
        );
        // the BYE came after the replay: the end is after the replayed audio
        let out = play(&mut rx, at(10), 1_000);
        assert_eq!(out.len(), 720 * FB);
        assert!(out[..FRAMES * FB].iter().all(|&b| b == 1));
        assert!(out[2 * FRAMES * FB..].iter().all(|&b| b == 3));
        assert!(rx.is_ended());
        assert_eq!(events(&mut rx), vec![ReceiverEvent::SessionEnded]);
    }

    #[test]
    fn a_connecting_receiver_subscribes_to_its_relay_until_a_session_starts() {
        let relay = SocketAddr::from(([127, 0, 0, 1], 7000));
        let mut rx = ReceiverSession::new(ReceiverConfig {
            low_water_ms: 10,
            high_water_ms: 100,
            connect: Some(relay),
            ..ReceiverConfig::default()
        })
        .unwrap();
        let subscribes = |rx: &mut ReceiverSession| {
            rx.refresh_timers();
            let mut n = 0;
            loop {
                match rx.poll_output() {
                    Output::Transmit(t) => {
                        assert_eq!(t.to, relay);
                        let p = rtcp::parse_compound(&t.data).next().unwrap().unwrap();
                        assert!(matches!(p, RtcpPacket::Subscribe { .. }), "{p:?}");
                        n += 1;
                    }
                    Output::Event(_) => {}
                    Output::Timeout(at) => return (n, at),
                }
            }
        };
        rx.handle_input(Input::Timeout(at(0)));
        assert_eq!(subscribes(&mut rx), (1, Some(at(1000))));
        rx.handle_input(Input::Timeout(at(1000)));
        assert_eq!(subscribes(&mut rx).0, 1);
        // the relay's description starts a session: no more SUBSCRIBE, reports instead
        rx.handle_input(Input::Datagram {
            now: at(1100),
            from: relay,
            data: rtcp_desc(false),
        });
        rx.handle_input(Input::Timeout(at(3000)));
        let (sent, _, _) = outputs(&mut rx);
        assert!(!sent.is_empty());
        assert!(sent.iter().all(|d| !matches!(
            rtcp::parse_compound(d).next(),
            Some(Ok(RtcpPacket::Subscribe { .. }))
        )));
    }

    #[test]
    fn a_session_is_bound_to_its_source_address() {
        let sender: SocketAddr = "10.0.0.1:5004".parse().unwrap();
        let stranger: SocketAddr = "10.0.0.66:5004".parse().unwrap();
        let input = |now, from, data| Input::Datagram { now, from, data };
        let mut rx = receiver();
        rx.handle_input(input(at(0), sender, rtcp_desc(false)));
        for seq in 0..4 {
            rx.handle_input(input(at(1), sender, media(SSRC, seq)));
        }
        assert!(rx.is_playing());
        // a stranger knows the SSRC: its BYE, its media and its sender report are foreign
        rx.handle_input(input(at(2), stranger, bye()));
        rx.handle_input(input(at(2), stranger, media(SSRC, 4)));
        rx.handle_input(input(at(2), stranger, report_of_an_hour().freeze()));
        assert_eq!(rx.stats().datagrams_foreign, 3);
        assert_eq!(rx.stats().packets_received, 4);
        // replies still go to the sender
        rx.handle_input(Input::Timeout(at(3)));
        match rx.poll_output() {
            Output::Transmit(t) => assert_eq!(t.to, sender),
            o => panic!("no report: {o:?}"),
        }
        // the session did not end: its buffer plays, then waits for more
        assert_eq!(play(&mut rx, at(1_000), 10_000).len(), 4 * FRAMES * FB);
        assert!(!rx.is_ended());
        // the sender's own BYE ends it
        rx.handle_input(input(at(1_001), sender, bye()));
        play(&mut rx, at(1_002), 10_000);
        assert!(rx.is_ended());
    }

    #[test]
    fn a_byes_sender_report_asks_for_at_most_the_lost_tail_bound() {
        let mut rx = receiver();
        assert!(rx.handle_bytes(at(0), rtcp_desc(false)));
        for seq in 0..4 {
            assert!(rx.handle_bytes(at(1), media(SSRC, seq)));
        }
        // the sender's report claims an hour, then BYE
        let mut b = report_of_an_hour();
        rtcp::write_bye(&mut b, SSRC);
        assert!(rx.handle_bytes(at(2), b.freeze()));
        let mut total = 0;
        for s in 1..20 {
            total += play(&mut rx, at(s * 1_000), 48_000).len() / FB;
        }
        assert!(rx.is_ended());
        let tail = 48 * MAX_LOST_TAIL_MS as usize;
        assert_eq!(total, 4 * FRAMES + tail);
    }

    #[test]
    fn the_pending_queue_is_capped_in_bytes_and_holds_copies() {
        let mut rx = ReceiverSession::new(ReceiverConfig {
            low_water_ms: 10,
            high_water_ms: 2_000,
            memory_budget_bytes: crate::budget::MIN_MEMORY_BUDGET_BYTES,
            ..ReceiverConfig::default()
        })
        .unwrap();
        let share = MemoryBudget::new(crate::budget::MIN_MEMORY_BUDGET_BYTES).pending_bytes();
        // each datagram a slice of its own large arena, as the driver hands them out
        let mut arenas = Vec::new();
        for i in 0..3_000u32 {
            // another SSRC now and then: a provisional session keeps those too
            let m = media(SSRC + i / 250, (i % 250) as u16);
            let mut arena = BytesMut::with_capacity(64 << 10);
            arena.extend_from_slice(&m);
            let a = arena.freeze();
            rx.handle_bytes(at(0), a.slice(..m.len()));
            arenas.push(a);
        }
        assert!(!rx.is_playing());
        let a = rx.active.as_ref().unwrap();
        assert!(a.pending.held_bytes() <= share);
        let kept = a.pending.len();
        assert_eq!(kept, share / (FRAMES * FB + 12));
        assert_eq!(rx.stats().datagrams_not_kept, 3_000 - kept as u64);
        // no arena is pinned by the queue (the FEC decoder copies too)
        assert!(arenas.iter_mut().all(|a| a.is_unique()));
    }

    #[test]
    fn a_stock_stream_plays_after_the_grace_period() {
        let mut rx = receiver();
        for seq in 0..3 {
            rx.handle_bytes(at(seq as u64), media(SSRC, seq));
        }
        assert!(!rx.is_playing());
        rx.handle_bytes(at(PROVISIONAL_GRACE.as_millis() as u64), media(SSRC, 3));
        assert!(rx.is_playing());
        assert_eq!(rx.spec(), Some(ReceiverConfig::default().default_spec));
    }

    #[test]
    fn a_bye_ends_the_session_after_its_buffer_plays_out() {
        let mut rx = receiver();
        assert!(rx.handle_bytes(at(0), rtcp_desc(false)));
        for seq in 0..4 {
            assert!(rx.handle_bytes(at(1), media(SSRC, seq)));
        }
        assert!(rx.is_playing());
        assert!(rx.handle_bytes(at(2), bye()));
        assert!(!rx.is_ended());
        assert_eq!(rx.due_frames(at(1_000)), 4 * FRAMES);
        assert_eq!(play(&mut rx, at(1_000), 500).len(), 500 * FB);
        assert!(!rx.is_ended());
        assert_eq!(
            play(&mut rx, at(1_000), 1_000).len(),
            (4 * FRAMES - 500) * FB
        );
        assert!(rx.is_ended() && !rx.is_playing());
        assert!(events(&mut rx).ends_with(&[ReceiverEvent::SessionEnded]));
        assert_eq!(rx.due_frames(at(2_000)), 0);
        assert_eq!(rx.stats().frames_played, 4 * FRAMES as u64);
    }

    #[test]
    fn datagrams_of_another_ssrc_or_session_are_counted_as_foreign() {
        let mut rx = receiver();
        rx.handle_bytes(at(0), rtcp_desc(false));
        rx.handle_bytes(at(0), media(SSRC, 0));
        assert!(!rx.handle_bytes(at(1), media(SSRC + 1, 0)));
        let mut other = desc();
        other.substreams[0].ssrc = SSRC + 1;
        let mut b = BytesMut::new();
        rtcp::write_desc(&mut b, SSRC + 1, &other);
        assert!(!rx.handle_bytes(at(2), b.freeze()));
        assert!(!rx.handle_bytes(at(3), Bytes::from_static(&[0x80, 0x60, 0, 0])));
        let st = rx.stats();
        assert_eq!(
            (
                st.datagrams_foreign,
                st.datagrams_malformed,
                st.packets_received
            ),
            (2, 1, 1)
        );
    }

    #[test]
    fn duplicates_are_ours_and_counted() {
        let mut rx = receiver();
        rx.handle_bytes(at(0), rtcp_desc(false));
        assert!(rx.handle_bytes(at(0), media(SSRC, 0)));
        assert!(rx.handle_bytes(at(1), media(SSRC, 0)));
        let st = rx.stats();
        assert_eq!((st.packets_received, st.packets_duplicate), (1, 1));
    }

    #[test]
    fn a_silent_sender_ends_at_the_idle_timeout() {
        let mut rx = receiver();
        rx.handle_bytes(at(0), media(SSRC, 0));
        let idle = at(0) + ReceiverConfig::default().idle_timeout;
        assert_eq!(outputs(&mut rx).2.map(|t| t <= idle), Some(true));
        rx.handle_timeout(idle - Duration::from_millis(1));
        assert!(!rx.is_playing());
        rx.handle_timeout(idle);
        assert!(rx.is_playing());
        assert_eq!(play(&mut rx, idle, 1_000).len(), FRAMES * FB);
        assert!(rx.is_ended());
        assert!(events(&mut rx)
            .ends_with(&[ReceiverEvent::PlaybackStarted, ReceiverEvent::SessionEnded]));
        // an ended session needs no timer, and a new stream starts a new session
        assert_eq!(outputs(&mut rx).2, None);
        rx.handle_bytes(idle, media(SSRC + 1, 0));
        assert_eq!(started(&events(&mut rx)), 1);
        assert_eq!(rx.stats().packets_received, 1);
    }

    #[test]
    fn a_full_buffer_asks_for_pause_and_receiver_reports_follow_the_timer() {
        let mut rx = receiver();
        let sender = std::net::SocketAddr::from(([10, 0, 0, 1], 5004));
        rx.handle_input(Input::Datagram {
            now: at(0),
            from: sender,
            data: rtcp_desc(false),
        });
        for seq in 0..21 {
            rx.handle_bytes(at(0), media(SSRC, seq));
        }
        let sent = outputs(&mut rx).0;
        let pause = sent
            .iter()
            .flat_map(|d| rtcp::parse_compound(d).collect::<Vec<_>>())
            .any(|p| matches!(p, Ok(RtcpPacket::Pause { request: 1, .. })));
        assert!(pause);
        assert_eq!(rx.stats().flow.pauses_sent, 1);
        rx.handle_timeout(at(1));
        let report = outputs(&mut rx).0.remove(0);
        assert!(rtcp::parse_compound(&report)
            .any(|p| matches!(p, Ok(RtcpPacket::ReceiverReport { .. }))));
        rx.handle_timeout(at(2));
        // the next report is due one interval later; the PAUSE is retransmitted meanwhile
        assert!(outputs(&mut rx).0.iter().all(|d| !rtcp::parse_compound(d)
            .any(|p| matches!(p, Ok(RtcpPacket::ReceiverReport { .. })))));
    }
}
