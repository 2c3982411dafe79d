//! What a sender session learns of its receiver from what the receiver sends back: who
//! reports (its SSRC), the round-trip time, its reference time to answer (RFC 3611), when it
//! was last heard from, and whether a NACK is the receiver's own.
//!
//! [`ReceiverFeedback`] keeps that state and judges each RTCP packet; PAUSE/RESUME go to
//! [`crate::flow::FlowControl`], and the answers (retransmissions, BYE again) are the
//! session's, which hands in the timer table and the substreams it needs.

use std::net::SocketAddr;

use isostream_transport::rtcp::{self, ReportBlock};
use isostream_transport::time::{Duration, Instant};

use crate::announce;
use crate::config::SenderConfig;
use crate::event::FinishReason;
use crate::stats::ReceiverView;
use crate::substream::Substreams;
use crate::timers::{Timer, Timers};

/// The receiver's last reference time (RFC 3611): its SSRC, the middle 32 bits of its NTP
/// timestamp, and when it arrived.
pub(crate) type ReferenceTime = (u32, u32, Instant);

/// The sender's knowledge of its receiver.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReceiverFeedback {
    /// The SSRC the receiver's reports come from.
    reporter_ssrc: Option<u32>,
    /// The round-trip time from the receiver's last report.
    rtt: Option<Duration>,
    last_rrtr: Option<ReferenceTime>,
    last_heard: Option<Instant>,
}

impl ReceiverFeedback {
    /// When the receiver was last heard from (any packet that counts), if ever.
    pub(crate) fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }

    /// The round-trip time from the receiver's last report, if known.
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The receiver's last reference time, answered in the next report's DLRR.
    pub(crate) fn last_rrtr(&self) -> Option<ReferenceTime> {
        self.last_rrtr
    }

    /// Whether a NACK from `from`, sent by `sender_ssrc`, is the session's own receiver's:
    /// its address and its SSRC (as it reports, or as it asked for PAUSE/RESUME:
    /// `flow_ssrc`); any member of a multicast group may ask (the answer goes to the group).
    pub(crate) fn nack_is_own(
        &self,
        cfg: &SenderConfig,
        from: SocketAddr,
        sender_ssrc: u32,
        flow_ssrc: Option<u32>,
    ) -> bool {
        cfg.multicast
            || from == cfg.receiver_addr
                && (self.reporter_ssrc == Some(sender_ssrc) || flow_ssrc == Some(sender_ssrc))
    }

    /// A receiver reference time (`ntp`, 64-bit NTP) from `ssrc`, if `member` (from the
    /// receiver or a group member). The first one is answered at once (the report timer is
    /// due now) unless the session `lingering` after BYE: the receiver needs its round trip
    /// early, to know which losses it can still ask for.
    pub(crate) fn on_reference_time(
        &mut self,
        now: Instant,
        member: bool,
        ssrc: u32,
        ntp: u64,
        lingering: bool,
        timers: &mut Timers,
    ) {
        if !member {
            return;
        }
        if self.last_rrtr.is_none() && !lingering {
            timers.set(Timer::Report as usize, now);
        }
        self.last_rrtr = Some((ssrc, (ntp >> 16) as u32, now));
    }

    /// A receiver report from `ssrc` with its first report `block`. Only a `member`'s
    /// report (from the receiver, or a group member) counts: one on one of `subs` names the
    /// reporter; a block on the first substream gives the round trip (RFC 3550, 6.4.1:
    /// now - LSR - DLSR) and the receiver's view, which is returned.
    pub(crate) fn on_receiver_report(
        &mut self,
        now: Instant,
        member: bool,
        ssrc: u32,
        block: Option<ReportBlock>,
        cfg: &SenderConfig,
        subs: &Substreams,
    ) -> Option<ReceiverView> {
        if !member {
            return None;
        }
        if block.is_some_and(|b| subs.all().iter().any(|s| s.ssrc == b.ssrc)) {
            self.reporter_ssrc = Some(ssrc);
        }
        let b = block.filter(|b| b.ssrc == subs.first().ssrc)?;
        if let Some(rtt) =
            rtcp::round_trip(announce::ntp_at(cfg, now), b.last_sr, b.delay_since_last_sr)
        {
            self.rtt = Some(rtt);
        }
        Some(ReceiverView {
            packets_lost: b.cumulative_lost,
            fraction_lost: b.fraction_lost as f64 / 256.0,
            jitter_ms: b.jitter as f64 * 1000.0 / cfg.spec.rate as f64,
            rtt_ms: self.rtt.map(|r| r.as_secs_f64() * 1000.0),
        })
    }

    /// The receiver was heard from at `now`: unless multicast (a multicast sender never
    /// stops because one receiver went silent), the receiver timeout starts again.
    pub(crate) fn heard(&mut self, now: Instant, cfg: &SenderConfig, timers: &mut Timers) {
        self.last_heard = Some(now);
        if !cfg.multicast {
            timers.set(
                Timer::ReceiverLost as usize,
                now + cfg.receiver_timeout + Duration::from_millis(1),
            );
        }
    }

    /// Whether the receiver, heard from earlier, has been silent longer than
    /// `cfg.receiver_timeout` at `now` (never for multicast): the reason to finish.
    pub(crate) fn lost(&self, now: Instant, cfg: &SenderConfig) -> Option<FinishReason> {
        let h = self.last_heard.filter(|_| !cfg.multicast)?;
        (now - h > cfg.receiver_timeout).then(|| FinishReason::ReceiverLost {
            silent_ms: (now - h).as_millis() as u64,
        })
    }
}
