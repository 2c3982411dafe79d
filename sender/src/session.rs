//! The sender session: a sans-IO state machine that turns audio into paced RTP datagrams and
//! obeys the receiver's PAUSE and RESUME.
//!
//! It owns no socket, thread or clock, and follows the calling rules of
//! [`isostream_transport::sans_io`]: every input (audio, the end of the input, a datagram from
//! the receiver, a timer) goes to [`SenderSession::handle_input`]; then
//! [`SenderSession::poll_output`] hands out datagrams to send, events, and finally the instant
//! it wants to be woken. A stored source is read on demand: feed at most
//! [`SenderSession::audio_wanted`] frames whenever it is above zero.
//!
//! ```
//! use isostream_media::{AudioSpec, SampleFormat};
//! use isostream_sender::{SenderConfig, SenderSession};
//! use isostream_transport::sans_io::{Input, Output};
//! use isostream_transport::time::Instant;
//!
//! let spec = AudioSpec { rate: 48_000, channels: 2, format: SampleFormat::S16 };
//! let mut tx = SenderSession::new(SenderConfig::new(spec)).unwrap();
//! let now = Instant::ZERO;
//! let audio = vec![0u8; tx.audio_wanted() * spec.frame_bytes()];
//! tx.handle_input(Input::Audio { now, frames: &audio });
//! let mut sent = 0;
//! loop {
//!     match tx.poll_output() {
//!         Output::Transmit(t) => sent += t.data.len(), // socket.send_to(&t.data, t.to)
//!         Output::Event(_) => {}
//!         Output::Timeout(_at) => break, // wait until `_at` or the next input
//!     }
//! }
//! assert!(sent > 0); // the session description, then the first media packets
//! ```
//!
//! The pipeline, per substream, in the order the data flows:
//!
//! ```text
//! audio frames ─▶ channel split ─▶ packetizer (+ interleaver) ─▶ FEC encoder ─▶ spreader ─┐
//!                                                                                        ▼
//!                                     UDP ◀─ pacer (one media clock for all substreams) ◀─ queue
//! ```
//!
//! This file is the one place that chains the stages; each lives in its own module: the
//! media path up to the queue in `substream.rs` (with `framer`, the FEC encoder, `spreader`
//! and the retransmission history of `retransmit`), the queue and pacer in `paced.rs`, what
//! the receiver sends back in `feedback.rs` and `flow.rs` (PAUSE/RESUME), the end of the
//! stream (BYE, its repeats, lingering) in `ending.rs`, what RTCP announces in `announce.rs`
//! and `report.rs`, the timer slots in `timers.rs`.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use isostream_transport::rtcp::{self, RtcpPacket, SessionDesc};
use isostream_transport::rtp::{self, DatagramKind};
use isostream_transport::sans_io::{earliest, Input, Output, Transmit};
use isostream_transport::time::Instant;

use crate::announce;
use crate::config::SenderConfig;
use crate::ending::{Ending, EndingStep};
use crate::feedback::ReceiverFeedback;
use crate::flow::{FlowChange, FlowControl};
use crate::paced::PacedQueue;
use crate::report::{write_report, Report};
use crate::retransmit::Retransmitter;
use crate::substream::Substreams;
use crate::timers::{Timer, Timers};

pub use crate::event::{FinishReason, SenderEvent};
pub use crate::stats::{ReceiverView, SenderStats};

/// A sender session. See the module documentation for the call protocol.
pub struct SenderSession {
    cfg: SenderConfig,
    /// The media path before the pacer: channel split, packetizers, FEC, spreaders.
    subs: Substreams,
    /// Bytes of one input frame (all channels).
    frame_bytes: usize,
    /// The media path's last stage: the pacer and the packets waiting for it.
    paced: PacedQueue,
    /// RTCP datagrams to send before anything else.
    control: VecDeque<Bytes>,
    /// The time of the latest input.
    now: Instant,
    /// Whether the first input has been handled (the first report goes out before any media).
    started: bool,
    timers: Timers,
    /// The receiver's PAUSE and RESUME.
    flow: FlowControl,
    /// What the receiver sent back: its SSRC, round trip, reference time, last word.
    receiver: ReceiverFeedback,
    /// The end of the stream: BYE, its repeats, lingering.
    ending: Ending,
    events: VecDeque<SenderEvent>,
    stats: SenderStats,
    /// The retransmission stage, if NACKs are answered.
    rtx: Option<Retransmitter>,
    /// Retransmissions to send before new media.
    rtx_queue: VecDeque<Bytes>,
    /// Scratch for writing RTCP datagrams.
    rtcp_buf: BytesMut,
}

impl SenderSession {
    /// Creates a session. Errors if the configuration is inconsistent.
    pub fn new(cfg: SenderConfig) -> Result<Self, crate::SenderError> {
        cfg.validate()?;
        let subs = Substreams::new(&cfg)?;
        let paced = PacedQueue::new(&cfg, subs.len());
        let rtx = subs.retransmitter(&cfg);
        Ok(SenderSession {
            frame_bytes: cfg.spec.frame_bytes(),
            paced,
            subs,
            control: VecDeque::new(),
            now: Instant::ZERO,
            started: false,
            timers: Timers::default(),
            flow: FlowControl::new(cfg.multicast),
            receiver: ReceiverFeedback::default(),
            ending: Ending::default(),
            events: VecDeque::new(),
            stats: SenderStats::default(),
            rtx,
            rtx_queue: VecDeque::new(),
            rtcp_buf: BytesMut::with_capacity(2048),
            cfg,
        })
    }

    /// The SSRC of each substream, in order.
    pub fn ssrcs(&self) -> Vec<u32> {
        self.subs.all().iter().map(|s| s.ssrc).collect()
    }

    /// The configuration the session runs with.
    pub fn config(&self) -> &SenderConfig {
        &self.cfg
    }

    /// Whether the receiver has paused transmission.
    pub fn is_paused(&self) -> bool {
        self.flow.is_paused()
    }

    /// Whether the session is over (input sent and BYE sent, or the receiver was lost).
    pub fn is_finished(&self) -> bool {
        self.ending.is_finished()
    }

    /// Counts a datagram that the SRTP stage in front of the session dropped (it failed
    /// authentication or the replay check): it appears as `datagrams_unauthenticated`.
    pub fn count_unauthenticated(&mut self) {
        self.stats.datagrams_unauthenticated += 1;
    }

    /// Counters so far.
    pub fn stats(&self) -> SenderStats {
        let mut s = self.stats.clone();
        let f = self.flow.counters();
        s.pauses_applied = f.pauses_applied;
        s.resumes_applied = f.resumes_applied;
        s.duplicate_requests = f.duplicate_requests;
        s.paused_ms = f.paused_ms;
        s.requests_foreign = f.requests_foreign;
        s.requests_ignored = f.requests_ignored;
        if let Some(r) = &self.rtx {
            s.retransmission = r.stats();
        }
        s
    }

    /// The session description announced in RTCP.
    pub fn description(&self) -> SessionDesc {
        announce::session_desc(&self.cfg, &self.subs, self.rtx.as_ref())
    }

    /// How many frames of stored media the session wants now (0 when its queue is full
    /// enough or the input has ended). A live source pushes whatever it captured instead.
    pub fn audio_wanted(&self) -> usize {
        if self.ending.input_ended() || self.ending.is_finished() {
            return 0;
        }
        let per_block = self.cfg.fec.map_or(1, |f| (f.k + f.m) as usize);
        let enough = self.subs.len()
            * (self.cfg.spread as usize * per_block + 2 * self.cfg.interleave as usize + 4);
        if self.paced.len() >= enough {
            0
        } else {
            self.subs.frames_to_complete_group()
        }
    }

    /// Handles one input (see [`isostream_transport::sans_io`]). Audio: a stored source passes
    /// at most [`Self::audio_wanted`] frames; a live source passes whatever it captured (while
    /// paused, it is dropped and counted). A datagram that is not RTCP from the receiver is
    /// counted and dropped.
    pub fn handle_input(&mut self, input: Input<'_>) {
        let now = input.now();
        self.now = self.now.max(now);
        if !self.started {
            // the first report (with the session description) goes out before any media
            self.started = true;
            self.on_timeout(now);
        }
        match input {
            Input::Audio { now, frames } => self.take_audio(now, frames),
            Input::EndOfInput(_) => self.end_of_input(),
            Input::Datagram { now, from, data } => self.handle_datagram(now, from, &data),
            Input::Timeout(now) => self.on_timeout(now),
        }
    }

    /// The next thing to do: datagrams to send (control first, then media when the pacer
    /// says it is due), then events, then [`Output::Timeout`] with the instant to be woken.
    pub fn poll_output(&mut self) -> Output<SenderEvent> {
        match self.poll_transmit(self.now) {
            Some(data) => Output::Transmit(Transmit {
                to: self.cfg.receiver_addr,
                data,
            }),
            None => match self.events.pop_front() {
                Some(e) => Output::Event(e),
                None => Output::Timeout(self.next_deadline()),
            },
        }
    }

    /// Takes wire frames of the input (all channels), all of them.
    fn take_audio(&mut self, _now: Instant, frames: &[u8]) {
        let total = frames.len() / self.frame_bytes;
        if self.ending.is_finished() || self.ending.input_ended() {
            return;
        }
        if self.cfg.live && self.flow.is_paused() {
            // the segment before the pause ends here: the stages emit what they hold and the
            // queue, paused, drops it; the media time of this audio is skipped
            self.flush_stages();
            self.drop_queued_live();
            self.stats.frames_dropped += total as u64;
            self.subs.skip(total as u64);
            return;
        }
        self.subs
            .push_audio(frames, self.rtx.as_mut(), self.paced.input());
    }

    /// Marks the end of the input: partial groups and blocks are flushed; BYE follows the
    /// last datagram.
    fn end_of_input(&mut self) {
        if self.ending.end_input() {
            self.flush_stages();
        }
    }

    /// Flushes the media path: what its stages hold goes to the pacer's queue.
    fn flush_stages(&mut self) {
        self.subs.flush(self.rtx.as_mut(), self.paced.input());
    }

    /// Handles a datagram from the receiver (RTCP: PAUSE, RESUME, receiver reports).
    /// Anything else is counted and dropped.
    fn handle_datagram(&mut self, now: Instant, from: std::net::SocketAddr, d: &[u8]) {
        if rtp::classify(d) != DatagramKind::Rtcp {
            self.stats.datagrams_malformed += 1;
            return;
        }
        let mut heard = false;
        // a multicast group's receivers answer from their own addresses (RFC 5760)
        let member = self.cfg.multicast || from == self.cfg.receiver_addr;
        // a PAUSE or RESUME after a receiver report restates the receiver's wish; alone, it
        // is a request
        let mut in_report = false;
        for p in rtcp::parse_compound(d) {
            match p {
                Err(_) => {
                    self.stats.datagrams_malformed += 1;
                    break;
                }
                Ok(RtcpPacket::Pause { ssrc, request }) => {
                    heard |= self.flow_request(now, from, ssrc, request, true, in_report)
                }
                Ok(RtcpPacket::Resume { ssrc, request }) => {
                    heard |= self.flow_request(now, from, ssrc, request, false, in_report)
                }
                Ok(RtcpPacket::Nack {
                    sender_ssrc,
                    media_ssrc,
                    lost,
                }) => {
                    // only the session's own receiver may ask
                    let own = self.receiver.nack_is_own(
                        &self.cfg,
                        from,
                        sender_ssrc,
                        self.flow.receiver_ssrc(),
                    );
                    let answered = own
                        && self.rtx.as_mut().is_some_and(|r| {
                            r.on_nack(
                                now,
                                self.receiver.rtt(),
                                media_ssrc,
                                &lost,
                                &mut self.rtx_queue,
                            )
                        });
                    if answered {
                        heard = true;
                    } else {
                        self.stats.nacks_foreign += 1;
                    }
                }
                Ok(RtcpPacket::ReceiverReferenceTime { ssrc, ntp }) => {
                    // answered in the next report's DLRR, so the receiver measures the round
                    // trip (RFC 3611)
                    let lingering = self.ending.is_lingering();
                    self.receiver.on_reference_time(
                        now,
                        member,
                        ssrc,
                        ntp,
                        lingering,
                        &mut self.timers,
                    );
                }
                Ok(RtcpPacket::ReceiverReport { ssrc, block }) => {
                    // a stranger's report neither keeps the session alive nor speaks for
                    // the receiver (round trip, loss, jitter)
                    heard |= member;
                    in_report = true;
                    if let Some(b) = block.filter(|_| member) {
                        if let Some(sub) = self.subs.all().iter().find(|s| s.ssrc == b.ssrc) {
                            self.ending.on_receiver_highest(
                                now,
                                sub,
                                b.highest_seq,
                                &mut self.timers,
                            );
                        }
                    }
                    let view = self
                        .receiver
                        .on_receiver_report(now, member, ssrc, block, &self.cfg, &self.subs);
                    if let Some(v) = view {
                        self.subs.on_reported_loss(v.fraction_lost);
                        self.stats.receiver_report = Some(v);
                    }
                }
                Ok(_) => {}
            }
        }
        if heard {
            self.receiver.heard(now, &self.cfg, &mut self.timers);
        }
    }

    /// A PAUSE (`pause`) or RESUME: [`FlowControl`] decides, the session sends its ACK and
    /// applies the change. Returns whether it counts as hearing from the receiver.
    fn flow_request(
        &mut self,
        now: Instant,
        from: std::net::SocketAddr,
        ssrc: u32,
        request: u32,
        pause: bool,
        in_report: bool,
    ) -> bool {
        let from_receiver = from == self.cfg.receiver_addr;
        let answer = self
            .flow
            .on_request(now, from_receiver, ssrc, request, pause, in_report);
        if let Some(n) = answer.ack {
            self.rtcp_buf.clear();
            rtcp::write_flow(&mut self.rtcp_buf, rtcp::APP_ACK, self.subs.first().ssrc, n);
            self.control.push_back(self.rtcp_buf.split().freeze());
            self.stats.acks_sent += 1;
        }
        match answer.change {
            Some(FlowChange::Paused) => {
                self.events.push_back(SenderEvent::Paused);
                if self.cfg.live {
                    // a live source cannot wait: what is queued for the pacer is dropped
                    // (what the stages still hold is dropped as the next audio arrives)
                    self.drop_queued_live();
                }
            }
            Some(FlowChange::Resumed) => {
                self.paced.restart();
                self.events.push_back(SenderEvent::Resumed);
            }
            None => {}
        }
        answer.heard
    }

    /// A live source cannot wait: what was captured but not sent while paused is dropped.
    fn drop_queued_live(&mut self) {
        self.stats.frames_dropped += self.paced.drop_live();
    }

    /// Handles timers: reports, BYE repeats, the receiver timeout.
    fn on_timeout(&mut self, now: Instant) {
        if self.ending.is_finished() {
            return;
        }
        if let Some(why) = self.receiver.lost(now, &self.cfg) {
            self.finish(why);
            return;
        }
        let history_ms = self.cfg.retransmission.map_or(0, |p| p.history_ms);
        let linger = self.ending.on_linger_tick(
            now,
            self.receiver.last_heard(),
            history_ms,
            &mut self.timers,
        );
        if let Some(step) = linger {
            self.apply_ending(now, step);
            return;
        }
        let report = Timer::Report as usize;
        if self.timers.get(report).is_none_or(|t| now >= t) {
            self.queue_report(now, false);
            self.timers.set(report, now + self.cfg.report_interval);
        }
        let can_linger = self.rtx.is_some() && self.receiver.last_heard().is_some();
        let step =
            self.ending
                .on_bye_tick(now, self.paced.is_empty(), can_linger, &mut self.timers);
        self.apply_ending(now, step);
    }

    /// Does what the end of the stream asks: BYE, then finishing.
    fn apply_ending(&mut self, now: Instant, step: EndingStep) {
        if step.send_bye {
            self.queue_report(now, true);
        }
        if step.finish {
            self.finish(FinishReason::EndOfInput);
        }
    }

    /// Ends the session: no more datagrams, no more timers.
    fn finish(&mut self, why: FinishReason) {
        self.ending.finish();
        self.flow.finish();
        self.timers = Timers::default();
        self.events.push_back(SenderEvent::Finished(why));
    }

    /// Queues an RTCP compound (see [`crate::report`]); `bye`: the stream is over.
    fn queue_report(&mut self, now: Instant, bye: bool) {
        let bytes = self.stats.media_bytes + self.stats.repair_bytes;
        let substreams =
            announce::substream_reports(&self.cfg, &self.subs, self.stats.frames_sent, bytes, bye);
        let desc = self.description();
        let r = Report {
            now,
            ntp: announce::ntp_at(&self.cfg, now),
            substreams: &substreams,
            cname: &self.cfg.cname,
            desc: &desc,
            last_rrtr: self.receiver.last_rrtr(),
            bye,
        };
        self.rtcp_buf.clear();
        write_report(&mut self.rtcp_buf, &r);
        self.control.push_back(self.rtcp_buf.split().freeze());
    }

    /// The next datagram to send now, if any.
    fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if let Some(c) = self.control.pop_front() {
            self.stats.rtcp_packets_sent += 1;
            self.stats.rtcp_bytes += c.len() as u64;
            return Some(c);
        }
        if let Some(r) = self.rtx_queue.pop_front() {
            // retransmissions fill holes in audio already buffered: before new media, and
            // also while paused (their cost is bounded by the retransmission cap)
            return Some(r);
        }
        if self.ending.is_finished() && !self.paced.is_empty() {
            self.paced.clear();
        }
        if !self.started {
            return None;
        }
        self.paced
            .pop_due(now, self.flow.is_paused(), &mut self.stats)
    }

    /// When the session must be woken next (`None`: only an input can wake it): the earliest
    /// timer, the pacer's next departure, or now if BYE is due.
    fn next_deadline(&self) -> Option<Instant> {
        if self.ending.is_finished() {
            return None;
        }
        let now = self.now;
        let mut t = earliest(self.timers.next(), (!self.started).then_some(now));
        t = earliest(t, self.paced.next_departure(now, self.flow.is_paused()));
        if !self.rtx_queue.is_empty() || !self.control.is_empty() {
            t = Some(now);
        }
        t = earliest(
            t,
            self.ending
                .bye_deadline(now, self.paced.is_empty(), &self.timers),
        );
        t
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
