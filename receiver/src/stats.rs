//! Stats: how the counters a receiver reports ([`ReceiverStats`], one [`SubstreamStats`] per
//! substream, [`LatencyStats`]; the plain values live in `counters.rs`, a leaf every stage
//! counts into, and are re-exported here) add up.
//!
//! Every stage keeps its own counters; [`crate::substream::SubstreamRx::stats`] gathers one
//! substream's, [`session`] adds the session-wide figures (it stands above the playout side
//! and the substreams it reads), [`aggregate`] sums the substreams into the session's
//! totals, and [`carry_over`] keeps what earlier sessions of the same receiver counted.

use isostream_transport::time::Instant;

use crate::flow::FlowStats;
use crate::playout::Playout;
use crate::substream::Substreams;

pub use crate::counters::{
    BufferLevels, Drops, LatencyStats, OpusCounts, ReceiverStats, SubstreamStats,
};

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
        s.packets_lost += st.packets_lost;
        s.packets_rebuilt += st.packets_rebuilt;
        s.packets_retransmitted += st.packets_retransmitted;
        s.retransmissions_requested += st.retransmissions_requested;
        s.repair_packets_received += st.repair_packets_received;
        s.packets_late += st.packets_late;
        s.packets_duplicate += st.packets_duplicate;
        s.packets_overflowed += st.packets_overflowed;
        s.frames_interpolated += st.frames_interpolated;
        s.frames_concealed += st.frames_concealed;
        s.substreams.push(st);
    }
    s.packets_unrecoverable = s
        .packets_lost
        .saturating_sub(s.packets_rebuilt + s.packets_retransmitted);
    s.residual_loss = if expected_total == 0 {
        0.0
    } else {
        s.packets_unrecoverable as f64 / expected_total as f64
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
        datagrams_malformed: drops.malformed,
        datagrams_foreign: drops.foreign,
        sessions_over_budget: drops.over_budget,
        datagrams_not_kept: drops.not_kept,
        datagrams_unauthenticated: drops.unauthenticated,
        flow,
        startup_delay_ms: playout
            .first_start()
            .map_or(0.0, |t| (t - first_arrival).as_secs_f64() * 1000.0),
        skew_frames: subs.skew(),
        ..Default::default()
    };
    playout.fill_stats(&mut s);
    let mut s = aggregate(s, subs.stats(playout.rate()));
    let clock = isostream_transport::time::MediaClock::new(playout.rate());
    s.interpolated_ms = clock.ms_of(s.frames_interpolated);
    s.concealed_ms = clock.ms_of(s.frames_concealed);
    s
}

/// The stats of a session that just ended, with what the receiver's earlier sessions
/// received and lost added to its packet counters.
pub fn carry_over(mut retired: ReceiverStats, earlier: Option<ReceiverStats>) -> ReceiverStats {
    if let Some(prev) = earlier {
        retired.packets_received += prev.packets_received;
        retired.packets_lost += prev.packets_lost;
    }
    retired
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(received: u64, expected: u64, rebuilt: u64) -> SubstreamStats {
        SubstreamStats {
            packets_received: received,
            packets_expected: expected,
            packets_lost: expected - received,
            packets_rebuilt: rebuilt,
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
        assert_eq!(
            (s.packets_received, s.packets_lost, s.packets_rebuilt),
            (190, 10, 6)
        );
        assert_eq!(s.packets_unrecoverable, 4);
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
    fn earlier_sessions_add_their_packets_only() {
        let prev = ReceiverStats {
            packets_received: 5,
            packets_lost: 1,
            packets_rebuilt: 7,
            ..Default::default()
        };
        let now = ReceiverStats {
            packets_received: 10,
            packets_lost: 2,
            packets_rebuilt: 1,
            ..Default::default()
        };
        let s = carry_over(now, Some(prev));
        assert_eq!(
            (s.packets_received, s.packets_lost, s.packets_rebuilt),
            (15, 3, 1)
        );
    }
}
