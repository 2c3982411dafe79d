//! The sender session's counters ([`SenderStats`]) and the receiver's view of the stream
//! from its reports ([`ReceiverView`]). Re-exported from [`crate::session`].

use serde::Serialize;

use crate::retransmit::RtxStats;

/// Counters of a sender session, for the summary and `--stats-json` (`sender`;
/// docs/STATS.md).
#[derive(Clone, Debug, Default, Serialize)]
pub struct SenderStats {
    /// Media packets sent (first transmissions).
    pub packets_sent: u64,
    /// Repair packets sent.
    pub repair_packets_sent: u64,
    /// Frames (samples per channel) of audio sent.
    pub frames_sent: u64,
    /// RTCP packets (datagrams) sent: reports, descriptions, acknowledgements, BYE.
    pub rtcp_packets_sent: u64,
    /// Bytes of media datagrams sent (first transmissions).
    pub media_bytes: u64,
    /// Bytes of repair datagrams sent.
    pub repair_bytes: u64,
    /// Bytes of RTCP datagrams sent.
    pub rtcp_bytes: u64,
    /// PAUSE requests that took effect.
    pub pauses_applied: u64,
    /// RESUME requests that took effect.
    pub resumes_applied: u64,
    /// PAUSE/RESUME requests received again after they took effect (acknowledged, no effect).
    pub duplicate_requests: u64,
    /// Acknowledgements of PAUSE/RESUME requests sent.
    pub acks_sent: u64,
    /// Time spent paused, in ms.
    pub paused_ms: u64,
    /// Frames of a live source dropped because the receiver had paused the stream.
    pub frames_dropped: u64,
    /// Datagrams received that were not RTCP or not parseable, dropped.
    pub datagrams_malformed: u64,
    /// Datagrams that failed SRTCP authentication (forged, wrong key, truncated) or its
    /// replay check, dropped before the session saw them (0 without a key).
    pub datagrams_unauthenticated: u64,
    /// What the receiver last reported for the first substream (RTCP receiver report), if it
    /// sends reports.
    pub receiver_report: Option<ReceiverView>,
    /// NACKs and retransmissions.
    pub retransmission: RtxStats,
    /// NACKs dropped because they did not come from the session's own receiver (its address
    /// and SSRC).
    pub nacks_foreign: u64,
    /// PAUSE/RESUME requests dropped because they did not come from the session's own
    /// receiver's address.
    pub requests_foreign: u64,
    /// PAUSE/RESUME requests a multicast sender ignored (no single receiver of a group
    /// may stop or start it).
    pub requests_ignored: u64,
}

/// The receiver's view of the stream, from its last RTCP receiver report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ReceiverView {
    /// Media packets lost so far (cumulative, may be negative with duplicates).
    pub packets_lost: i32,
    /// Fraction (0..1) of packets lost since its previous report.
    pub fraction_lost: f64,
    /// Interarrival jitter, in ms.
    pub jitter_ms: f64,
    /// Round-trip time from the report's LSR and DLSR (RFC 3550, 6.4.1), in ms.
    pub rtt_ms: Option<f64>,
}
