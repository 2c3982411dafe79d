//! The counters a receiver reports, as plain values: [`ReceiverStats`], one
//! [`SubstreamStats`] per substream, [`LatencyStats`], the stages' own figures ([`Drops`],
//! [`BufferLevels`], [`OpusCounts`]). A leaf: every stage counts into these and none of them
//! knows a stage; [`crate::stats`] gathers them into a session's report and re-exports them.

use serde::Serialize;

use isostream_transport::fec::FecStats;

use crate::flow::FlowStats;

/// Counters of one substream (`substreams[]` in `recv --stats-json`; docs/STATS.md).
#[derive(Clone, Debug, Default, Serialize)]
pub struct SubstreamStats {
    /// The substream's SSRC.
    pub ssrc: u32,
    /// Channels it carries.
    pub channels: u16,
    /// Media packets received (not counting duplicates).
    pub packets_received: u64,
    /// Media packets expected from the sequence numbers seen.
    pub packets_expected: u64,
    /// Media packets lost on the way (expected - received).
    pub packets_lost: u64,
    /// Lost media packets rebuilt by FEC from repair packets.
    pub packets_rebuilt: u64,
    /// Repair packets received.
    pub repair_packets_received: u64,
    /// Media packets that arrived (or were rebuilt) after their playout deadline.
    pub packets_late: u64,
    /// Duplicate media packets dropped.
    pub packets_duplicate: u64,
    /// Media packets that did not fit in the jitter buffer, dropped.
    pub packets_overflowed: u64,
    /// Frames missing at their playout deadline and filled by interpolation, in frames.
    pub frames_interpolated: u64,
    /// Frames missing at their playout deadline and filled by concealment (or silence), in
    /// frames.
    pub frames_concealed: u64,
    /// Buffered audio now, in frames.
    pub buffer_frames: i64,
    /// Interarrival jitter (RFC 3550), in ms.
    pub jitter_ms: f64,
    /// Media time a live sender skipped (audio it dropped while paused), removed from the
    /// timeline instead of played as a gap, in frames.
    pub frames_skipped: u64,
    /// Lost media packets that arrived as retransmissions (NACK answered).
    pub packets_retransmitted: u64,
    /// Frames of a live stream dropped to hold its latency after it ran dry (the audio a
    /// loss burst left behind beyond the low-water mark).
    pub frames_dropped: u64,
    /// Retransmissions asked for in NACKs, in packets (a packet as often as it was asked
    /// for).
    pub retransmissions_requested: u64,
    /// Lost packets no longer asked for: their deadline left no round trip, or they were
    /// asked for too often.
    pub retransmissions_given_up: u64,
    /// The round-trip time the NACK stage estimates, in ms (when it asks for packets).
    pub rtt_ms: Option<f64>,
    /// The FEC decoder's counters (`None` when the stream carries no FEC).
    pub fec: Option<FecStats>,
    /// The Opus decoder's counters (`None` when the stream is not Opus).
    pub opus: Option<OpusCounts>,
}

/// Counters of a receiver, for the summary and `--stats-json` (`receiver`; docs/STATS.md).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReceiverStats {
    /// Media packets received over all substreams (not counting duplicates).
    pub packets_received: u64,
    /// Media packets lost on the way.
    pub packets_lost: u64,
    /// Lost media packets rebuilt by FEC from repair packets.
    pub packets_rebuilt: u64,
    /// Lost media packets that arrived as retransmissions (NACK answered).
    pub packets_retransmitted: u64,
    /// Retransmissions asked for in NACKs, in packets.
    pub retransmissions_requested: u64,
    /// Lost media packets neither rebuilt nor retransmitted (lost - rebuilt -
    /// retransmitted): played concealed.
    pub packets_unrecoverable: u64,
    /// Repair packets received.
    pub repair_packets_received: u64,
    /// Media packets after their playout deadline.
    pub packets_late: u64,
    /// Duplicate media packets.
    pub packets_duplicate: u64,
    /// Malformed datagrams (not parseable RTP/RTCP, bad payload), dropped.
    pub datagrams_malformed: u64,
    /// Datagrams of another session, SSRC or payload type, dropped.
    pub datagrams_foreign: u64,
    /// Descriptions (or stock streams) refused because their buffers would exceed the
    /// memory budget (`--memory-budget-mib`), in sessions; the receiver went on.
    pub sessions_over_budget: u64,
    /// Datagrams the pending queue (before a description) or the successor queue could not
    /// keep within their share of the memory budget, in datagrams.
    pub datagrams_not_kept: u64,
    /// The most the current session's buffers and queues take, in bytes (0 once it has
    /// ended and its buffers are freed).
    pub memory_bytes: u64,
    /// Datagrams that failed SRTP/SRTCP authentication (forged, wrong key, truncated) or
    /// its replay check, dropped before the session saw them (0 without a key).
    pub datagrams_unauthenticated: u64,
    /// Media packets that did not fit in the jitter buffer, dropped.
    pub packets_overflowed: u64,
    /// Residual loss, a fraction (0..1): unrecoverable / expected media packets.
    pub residual_loss: f64,
    /// Frames played out (per channel).
    pub frames_played: u64,
    /// Frames filled by interpolation (summed over substreams).
    pub frames_interpolated: u64,
    /// The same audio, in ms (summed over substreams).
    pub interpolated_ms: f64,
    /// Frames filled by concealment or silence (summed over substreams).
    pub frames_concealed: u64,
    /// The same audio, in ms (summed over substreams).
    pub concealed_ms: f64,
    /// Times playout found a substream's buffer empty while playing.
    pub underruns: u64,
    /// PAUSE/RESUME requests and acknowledgements.
    pub flow: FlowStats,
    /// Bytes of RTCP sent to the sender (reports, PAUSE/RESUME, NACKs).
    pub rtcp_bytes: u64,
    /// Smallest buffered audio seen at playout (emptiest substream), in ms.
    pub buffer_min_ms: f64,
    /// Mean buffered audio at playout (emptiest substream), in ms.
    pub buffer_mean_ms: f64,
    /// Largest buffered audio seen (fullest substream, at any time), in ms.
    pub buffer_max_ms: f64,
    /// Time from the first packet to the start of playback, in ms.
    pub startup_delay_ms: f64,
    /// Capture-to-playout latency (sender's wall clock in its reports to the receiver's at
    /// playout), in ms: exact when both run on one machine, an estimate across machines
    /// (it includes the offset between their clocks). Mean, smallest and largest; `None`
    /// until the sender's reports give the mapping.
    pub capture_to_playout_ms: Option<LatencyStats>,
    /// Estimated rate of the sender's clock against the playout clock, in ppm (+ = sender
    /// faster), when clock drift is compensated.
    pub drift_estimate_ppm: Option<f64>,
    /// The resampling correction applied at the end, in ppm.
    pub drift_correction_ppm: Option<f64>,
    /// Largest difference between substreams' read positions, in frames (always 0: they
    /// share one playout clock; reported so tools can check it).
    pub skew_frames: i64,
    /// Per substream.
    pub substreams: Vec<SubstreamStats>,
}

/// Capture-to-playout latency figures (`capture_to_playout_ms`), all in ms.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct LatencyStats {
    /// Mean over playout chunks, in ms.
    pub mean: f64,
    /// Smallest, in ms.
    pub min: f64,
    /// Largest, in ms.
    pub max: f64,
}

/// Datagrams the receiver dropped as not its own or not parseable (session-wide counters
/// that every stage may add to).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// Malformed datagrams or payloads.
    pub malformed: u64,
    /// Datagrams of another session, SSRC or payload type.
    pub foreign: u64,
    /// Sessions refused: their buffers would not fit in the memory budget.
    pub over_budget: u64,
    /// Datagrams the pending or successor queue could not keep within its share of the
    /// budget.
    pub not_kept: u64,
    /// Datagrams that failed SRTP/SRTCP authentication or replay checks.
    pub unauthenticated: u64,
}

/// Buffer levels seen over a session, in frames: the emptiest substream at every playout
/// chunk (smallest and mean) and the fullest one at any time (largest).
#[derive(Clone, Copy, Debug)]
pub struct BufferLevels {
    /// Smallest emptiest-substream occupancy at playout (`i64::MAX` before the first).
    pub min: i64,
    /// Largest fullest-substream occupancy seen.
    pub max: i64,
    /// Sum of the emptiest-substream occupancies at playout.
    pub sum: f64,
    /// Playout chunks observed.
    pub n: u64,
}

impl Default for BufferLevels {
    fn default() -> Self {
        BufferLevels {
            min: i64::MAX,
            max: 0,
            sum: 0.0,
            n: 0,
        }
    }
}

impl BufferLevels {
    /// Records the emptiest substream's occupancy (frames) before a playout chunk.
    pub fn observe_playout(&mut self, emptiest: i64) {
        self.min = self.min.min(emptiest);
        self.sum += emptiest as f64;
        self.n += 1;
    }

    /// Records the fullest substream's occupancy (frames) after a write or a read.
    pub fn observe_fullest(&mut self, fullest: i64) {
        self.max = self.max.max(fullest);
    }

    /// Fills `buffer_min_ms`, `buffer_mean_ms` and `buffer_max_ms` for media at `rate` Hz.
    pub fn fill(&self, rate: u32, s: &mut ReceiverStats) {
        let clock = isostream_transport::time::MediaClock::new(rate);
        s.buffer_min_ms = if self.n == 0 {
            0.0
        } else {
            clock.ms_of(self.min.max(0) as u64)
        };
        s.buffer_mean_ms = if self.n == 0 {
            0.0
        } else {
            clock.ms_of(0) + self.sum / self.n as f64 * 1000.0 / rate as f64
        };
        s.buffer_max_ms = clock.ms_of(self.max.max(0) as u64);
    }
}

/// The Opus decoder stage's counters (`receiver.substreams[].opus`; docs/STATS.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OpusCounts {
    /// Packets decoded.
    pub packets_decoded: u64,
    /// Missing packets decoded from the next packet's in-band FEC.
    pub packets_fec: u64,
    /// Missing (or undecodable) packets replaced by Opus's packet loss concealment.
    pub packets_plc: u64,
    /// Packets that arrived after their place was concealed (dropped).
    pub packets_late: u64,
    /// Payloads libopus rejected (concealed).
    pub packets_malformed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_levels_report_min_mean_and_max_in_ms() {
        let mut l = BufferLevels::default();
        let mut s = ReceiverStats::default();
        l.fill(1_000, &mut s);
        assert_eq!(
            (s.buffer_min_ms, s.buffer_mean_ms, s.buffer_max_ms),
            (0.0, 0.0, 0.0)
        );
        l.observe_playout(100);
        l.observe_playout(300);
        l.observe_fullest(500);
        l.observe_fullest(400);
        l.fill(1_000, &mut s);
        assert_eq!(
            (s.buffer_min_ms, s.buffer_mean_ms, s.buffer_max_ms),
            (100.0, 200.0, 500.0)
        );
    }
}
