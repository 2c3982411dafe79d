//! The relay's counters: for the upstream, the store, and each listener (current and
//! departed), as `relay --stats-json` writes them.

use serde::Serialize;

/// Where a listener stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerState {
    /// Being served.
    #[default]
    Active,
    /// It got the whole stream and the final report (BYE), then went quiet.
    Finished,
    /// It went quiet for the listener timeout before the end: dropped.
    TimedOut,
}

/// What a listener last reported about the stream (its receiver report's first block).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ListenerReport {
    /// Fraction of packets lost since its previous report, 0..1.
    pub fraction_lost: f64,
    /// Its cumulative loss, in packets.
    pub cumulative_lost: i64,
    /// Its extended highest sequence number.
    pub highest_seq: u32,
    /// Its interarrival jitter, in ms.
    pub jitter_ms: f64,
}

/// The counters of one listener.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ListenerStats {
    /// The address it subscribed from (and is served at).
    pub addr: String,
    /// Its SSRC, once it said.
    pub ssrc: Option<u32>,
    /// Where it stands.
    pub state: ListenerState,
    /// When it joined, in ms of the relay's clock.
    pub joined_ms: f64,
    /// When it left (finished or dropped), in ms of the relay's clock.
    pub left_ms: Option<f64>,
    /// Media packets sent to it.
    pub packets_sent: u64,
    /// Repair packets sent to it.
    pub repair_sent: u64,
    /// Bytes of media, repair and retransmissions sent to it.
    pub bytes_sent: u64,
    /// Regular compounds (sender reports, description) sent to it.
    pub reports_sent: u64,
    /// Final compounds (with BYE) sent to it.
    pub final_reports_sent: u64,
    /// Generic NACKs it sent.
    pub nacks_received: u64,
    /// Retransmissions sent to it from the store.
    pub retransmissions_sent: u64,
    /// Packets it asked for that the store no longer (or never) held.
    pub retransmissions_unavailable: u64,
    /// Packets it asked for beyond its retransmission budget.
    pub retransmissions_over_cap: u64,
    /// Its PAUSE requests that took effect.
    pub pauses_applied: u64,
    /// Its RESUME requests that took effect.
    pub resumes_applied: u64,
    /// Its requests received again after they took effect.
    pub duplicate_requests: u64,
    /// Time it spent paused, in ms (periods that ended).
    pub paused_ms: u64,
    /// Stored packets it never got: it fell behind the store's tail and was moved forward.
    pub packets_skipped: u64,
    /// Its last receiver report.
    pub receiver_report: Option<ListenerReport>,
}

/// The relay's counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RelayStats {
    /// The upstream's address, once bound.
    pub upstream: Option<String>,
    /// Media packets stored from the upstream.
    pub upstream_packets: u64,
    /// Repair packets stored from the upstream.
    pub upstream_repair: u64,
    /// Bytes of media and repair received from the upstream.
    pub upstream_bytes: u64,
    /// Media packets from the upstream already stored (dropped).
    pub upstream_duplicates: u64,
    /// Retransmissions from the upstream that rebuilt no original (not on an RTX stream of
    /// the session, or malformed): dropped.
    pub upstream_retransmissions: u64,
    /// Lost media packets the relay asked its upstream for (NACKs, repeats counted).
    pub upstream_nacked: u64,
    /// Originals rebuilt from the upstream's retransmissions (stored like any media).
    pub upstream_recovered: u64,
    /// Whether the upstream ended (BYE, or silence).
    pub upstream_ended: bool,
    /// PAUSE requests sent upstream.
    pub pauses_sent: u64,
    /// RESUME requests sent upstream.
    pub resumes_sent: u64,
    /// Requests sent upstream again (unacknowledged).
    pub request_retransmissions: u64,
    /// SUBSCRIBE packets sent upstream (`--connect`).
    pub subscriptions_sent: u64,
    /// Entries in the store now.
    pub store_packets: usize,
    /// Bytes the store counts against its budget now.
    pub store_bytes: usize,
    /// Entries evicted from the store for its budget.
    pub store_evicted: u64,
    /// Listeners that joined.
    pub listeners_joined: u64,
    /// Listeners that got the whole stream.
    pub listeners_finished: u64,
    /// Listeners dropped after the listener timeout.
    pub listeners_timed_out: u64,
    /// Subscriptions refused (the listener table was full, or the stream had ended).
    pub subscriptions_refused: u64,
    /// Datagrams that were not RTP/RTCP, or did not parse.
    pub datagrams_malformed: u64,
    /// Datagrams from an address that is neither the upstream nor a listener, or RTP from
    /// a listener, or media of an SSRC the description does not name.
    pub datagrams_foreign: u64,
    /// Every listener, current and departed, in the order they joined.
    pub listeners: Vec<ListenerStats>,
}
