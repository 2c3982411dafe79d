//! Stats: the counters a receiver reports ([`ReceiverStats`], one [`SubstreamStats`] per
//! substream, [`LatencyStats`]) and how they add up.
//!
//! Every stage keeps its own counters; [`crate::substream::SubstreamRx::stats`] gathers one
//! substream's, [`session`] adds the session-wide figures, [`aggregate`] sums the substreams into the session's totals, and
//! [`carry_over`] keeps what earlier sessions of the same receiver counted.

use serde::Serialize;

use isostream_transport::time::Instant;

use crate::flow::FlowStats;
use crate::playout::Playout;
use crate::substream::Substreams;

/// Counters of one substream.
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
    pub lost: u64,
    /// Media packets rebuilt from repair packets.
    pub recovered: u64,
    /// Repair packets received.
    pub repair_received: u64,
    /// Media packets that arrived (or were rebuilt) after their playout deadline.
    pub late: u64,
    /// Duplicate media packets dropped.
    pub duplicate: u64,
    /// Packets that did not fit in the jitter buffer, dropped.
    pub overflow: u64,
    /// Frames missing at their playout deadline and filled by interpolation.
    pub frames_interpolated: u64,
    /// Frames missing at their playout deadline and filled by concealment (or silence).
    pub frames_concealed: u64,
    /// Buffered audio now, in frames.
    pub occupancy_frames: i64,
    /// Interarrival jitter (RFC 3550), in ms.
    pub jitter_ms: f64,
    /// Media time a live sender skipped (audio it dropped while paused), removed from the
    /// timeline instead of played as a gap, in frames.
    pub frames_skipped: u64,
    /// Lost media packets that arrived as retransmissions (NACK answered).
    pub retransmitted: u64,
    /// Frames of a live stream dropped to hold its latency after it ran dry (the audio a
    /// loss burst left behind beyond the low-water mark).
    pub frames_dropped: u64,
    /// Requests for lost packets sent in NACKs (a packet as often as it was asked for).
    pub nack_requested: u64,
    /// Lost packets no longer asked for: their deadline left no round trip, or they were
    /// asked for too often.
    pub nack_given_up: u64,
    /// The round-trip time the NACK stage estimates, in ms (when it asks for packets).
    pub rtt_ms: Option<f64>,
}

/// Counters of a receiver, for the summary and `--stats-json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReceiverStats {
    /// Media packets received over all substreams (not counting duplicates).
    pub packets_received: u64,
    /// Media packets lost on the way.
    pub lost: u64,
    /// Media packets rebuilt from repair packets.
    pub recovered: u64,
    /// Lost media packets that arrived as retransmissions (NACK answered).
    pub retransmitted: u64,
    /// Requests for lost packets sent in NACKs.
    pub nack_requested: u64,
    /// Lost media packets neither rebuilt nor retransmitted (lost - recovered -
    /// retransmitted): played concealed.
    pub unrecoverable: u64,
    /// Repair packets received.
    pub repair_received: u64,
    /// Media packets after their playout deadline.
    pub late: u64,
    /// Duplicate media packets.
    pub duplicate: u64,
    /// Malformed datagrams (not parseable RTP/RTCP, bad payload), dropped.
    pub malformed: u64,
    /// Datagrams of another session, SSRC or payload type, dropped.
    pub foreign: u64,
    /// Media packets that did not fit in the jitter buffer, dropped.
    pub overflow: u64,
    /// Residual loss: unrecoverable / expected media packets.
    pub residual_loss: f64,
    /// Frames played out (per channel).
    pub frames_played: u64,
    /// Frames filled by interpolation (summed over substreams).
    pub frames_interpolated: u64,
    /// Frames filled by concealment or silence (summed over substreams).
    pub frames_concealed: u64,
    /// Times playout found a substream's buffer empty while playing.
    pub underruns: u64,
    /// PAUSE/RESUME requests and acknowledgements.
    pub flow: FlowStats,
    /// Bytes of RTCP sent to the sender (reports, PAUSE/RESUME, NACKs).
    pub control_bytes: u64,
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
    /// (it includes the offset between their clocks). Mean, smallest and largest.
    pub latency_ms: Option<LatencyStats>,
    /// Estimated rate of the sender's clock against the playout clock, in ppm (+ = sender
    /// faster), when clock drift is compensated.
    pub drift_ppm: Option<f64>,
    /// The resampling correction applied at the end, in ppm.
    pub drift_correction_ppm: Option<f64>,
    /// Largest difference between substreams' read positions, in frames (always 0: they
    /// share one playout clock; reported so tools can check it).
    pub skew_frames: i64,
    /// Per substream.
    pub substreams: Vec<SubstreamStats>,
}

/// Capture-to-playout latency figures, in ms.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct LatencyStats {
    /// Mean over playout chunks.
    pub mean: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
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

/// Adds the substreams' counters into `s` (whose session-wide fields are already filled):
/// totals, unrecoverable losses and residual loss. Returns `s`.
pub fn aggregate(
    mut s: ReceiverStats,
    substreams: impl IntoIterator<Item = SubstreamStats>,
) -> ReceiverStats {
    let mut expected_total = 0;
    for st in substreams {
        expected_total += st.packets_expected;
        s.packets_received += st.packets_received;
        s.lost += st.lost;
        s.recovered += st.recovered;
        s.retransmitted += st.retransmitted;
        s.nack_requested += st.nack_requested;
        s.repair_received += st.repair_received;
        s.late += st.late;
        s.duplicate += st.duplicate;
        s.overflow += st.overflow;
        s.frames_interpolated += st.frames_interpolated;
        s.frames_concealed += st.frames_concealed;
        s.substreams.push(st);
    }
    s.unrecoverable = s.lost.saturating_sub(s.recovered + s.retransmitted);
    s.residual_loss = if expected_total == 0 {
        0.0
    } else {
        s.unrecoverable as f64 / expected_total as f64
    };
    s
}

/// The stats of a session: its substreams `subs`, its playout side `playout`, its first
/// datagram's arrival, the watermark controller's counters and the receiver's drops.
pub fn session(
    subs: &Substreams,
    playout: &Playout,
    first_arrival: Instant,
    flow: FlowStats,
    drops: Drops,
) -> ReceiverStats {
    let mut s = ReceiverStats {
        malformed: drops.malformed,
        foreign: drops.foreign,
        flow,
        startup_delay_ms: playout
            .first_start()
            .map_or(0.0, |t| (t - first_arrival).as_secs_f64() * 1000.0),
        skew_frames: subs.skew(),
        ..Default::default()
    };
    playout.fill_stats(&mut s);
    aggregate(s, subs.stats(playout.rate()))
}

/// The stats of a session that just ended, with what the receiver's earlier sessions
/// received and lost added to its packet counters.
pub fn carry_over(mut retired: ReceiverStats, earlier: Option<ReceiverStats>) -> ReceiverStats {
    if let Some(prev) = earlier {
        retired.packets_received += prev.packets_received;
        retired.lost += prev.lost;
    }
    retired
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(received: u64, expected: u64, recovered: u64) -> SubstreamStats {
        SubstreamStats {
            packets_received: received,
            packets_expected: expected,
            lost: expected - received,
            recovered,
            frames_concealed: 10,
            ..Default::default()
        }
    }

    #[test]
    fn substreams_add_up_and_residual_loss_counts_only_what_was_not_rebuilt() {
        let s = aggregate(
            ReceiverStats::default(),
            [sub(90, 100, 6), sub(100, 100, 0)],
        );
        assert_eq!((s.packets_received, s.lost, s.recovered), (190, 10, 6));
        assert_eq!(s.unrecoverable, 4);
        assert_eq!(s.residual_loss, 4.0 / 200.0);
        assert_eq!(s.frames_concealed, 20);
        assert_eq!(s.substreams.len(), 2);
    }

    #[test]
    fn nothing_expected_is_no_loss() {
        let s = aggregate(ReceiverStats::default(), []);
        assert_eq!(s.residual_loss, 0.0);
        assert!(s.substreams.is_empty());
    }

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

    #[test]
    fn earlier_sessions_add_their_packets_only() {
        let prev = ReceiverStats {
            packets_received: 5,
            lost: 1,
            recovered: 7,
            ..Default::default()
        };
        let now = ReceiverStats {
            packets_received: 10,
            lost: 2,
            recovered: 1,
            ..Default::default()
        };
        let s = carry_over(now, Some(prev));
        assert_eq!((s.packets_received, s.lost, s.recovered), (15, 3, 1));
    }
}
