//! The current (or last) session ([`Active`]): what it plays, its stage chains and playout
//! side, where it ends, the datagrams it keeps for replay and the source it is bound to.

use std::net::SocketAddr;

use isostream_media::AudioSpec;
use isostream_transport::rtp;
use isostream_transport::time::{Instant, MediaClock};

use crate::budget::DatagramQueue;
use crate::config::ReceiverConfig;
use crate::flow::FlowStats;
use crate::playout::Playout;
use crate::stats::{self, Drops, ReceiverStats};
use crate::substream::{ReceiveContext, Substreams};

/// The most audio past the newest received a BYE's sender report may ask to play (lost on
/// the way, concealed), in ms.
pub const MAX_LOST_TAIL_MS: u32 = 2_000;

/// The current (or last) session.
pub(super) struct Active {
    /// No description yet (see [`crate::layout::Layout::provisional`]).
    pub(super) provisional: bool,
    /// The sender's source is live (its description says so).
    pub(super) live: bool,
    /// The output format.
    pub(super) spec: AudioSpec,
    /// The substreams' stage chains.
    pub(super) subs: Substreams,
    /// The playout clock and side (see [`crate::playout`]).
    pub(super) playout: Playout,
    /// When its first datagram arrived.
    pub(super) first_arrival: Instant,
    /// When its sender was last heard from.
    pub(super) last_heard: Instant,
    /// Where the stream ends, once known (BYE or idle timeout), in frames.
    pub(super) end_pos: Option<i64>,
    /// Its end has been played out (its buffers are freed).
    pub(super) ended: bool,
    /// Datagrams received while the session is provisional and not playing, replayed if a
    /// description turns up (its first copy was lost): copies, within the budget's share.
    pub(super) pending: DatagramQueue<()>,
    /// The most its buffers take, in bytes ([`Substreams::memory_bytes`]).
    pub(super) memory_bytes: usize,
    /// The payload type of the session's media packets (a retransmission's original).
    pub(super) media_pt: u8,
    /// The address the session's sender sends from (that of the datagram that started it):
    /// media and control of the session's SSRCs from anywhere else are foreign.
    pub(super) source: Option<SocketAddr>,
}

impl Active {
    /// What the receive chain is told about the session, per datagram.
    pub(super) fn receive_context(&self, cfg: &ReceiverConfig) -> ReceiveContext {
        ReceiveContext {
            started: self.playout.is_running(),
            live: self.live,
            format: self.spec.format,
            stock_l16: cfg.stock_l16_payload_type.filter(|_| self.provisional),
            rate: self.spec.rate,
        }
    }

    /// Where the stream ends by its sender's last report: the tail lost on the way is
    /// played concealed, but at most [`MAX_LOST_TAIL_MS`] of it past the newest audio
    /// received (a report is no licence to play silence), in frames. A session that never
    /// had media has no tail to conceal: a BYE ends it with nothing played.
    pub(super) fn reported_end(&self) -> i64 {
        let data_end = self.subs.data_end();
        if !self.subs.any_media() {
            return data_end;
        }
        let max_tail = MediaClock::new(self.spec.rate).frames_in_ms(MAX_LOST_TAIL_MS) as i64;
        // an Opus stream's last packet is padded to a whole frame: the end may lie inside it
        let min = data_end - self.subs.padded_tail_frames();
        (self.subs.sr_end().unwrap_or(data_end)).clamp(min, data_end + max_tail)
    }

    /// The session's counters, with the flow controller's and the session's drops.
    pub(super) fn stats(&self, flow: FlowStats, drops: Drops) -> ReceiverStats {
        stats::session(&self.subs, &self.playout, self.first_arrival, flow, drops)
    }
}

/// The payload type of media packets of `format` with interleave depth `interleave`.
pub(super) fn media_payload_type(format: isostream_media::SampleFormat, interleave: u8) -> u8 {
    use isostream_media::SampleFormat::*;
    let plain = match format {
        S16 => rtp::PT_L16,
        S24 => rtp::PT_L24,
        F32 => rtp::PT_F32,
    };
    if interleave > 1 {
        plain + rtp::PT_INTERLEAVED_OFFSET
    } else {
        plain
    }
}
