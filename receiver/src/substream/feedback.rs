//! What the substreams tell the sender and learn from it: the NACKs of lost packets still
//! worth asking for (and when to ask next), the report blocks of receiver reports, and
//! what comes back (sender reports, the round trip, the stream's announced end).

use isostream_transport::rtcp::{self, ReportBlock, SenderReport};
use isostream_transport::time::{Duration, Instant};

use super::Substreams;
use crate::nack_clock::NackClock;

impl Substreams {
    /// Every substream's NACKs wait a random time from zero to `max` before their first
    /// request (a member of a multicast group), from generators seeded by `seed`.
    pub fn nack_random_delay(&mut self, max: Duration, seed: u64) {
        for (i, s) in self.subs.iter_mut().enumerate() {
            s.with_nack_random_delay(max, seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
    }

    /// A sender report about substream `i` arrived at `now`.
    pub fn on_sender_report(&mut self, now: Instant, i: usize, sr: &SenderReport) {
        let sub = &mut self.subs[i];
        sub.deint
            .on_sender_report(sr.rtp_ts, rtcp::unix_nanos_from_ntp(sr.ntp));
        sub.arrival.on_sender_report(now, sr.ntp);
    }

    /// The stream ends at position `end` (frames, from the sender's BYE): every substream
    /// expects the packets up to it, so a loss at the very end is asked for too.
    pub fn expect_until(&mut self, now: Instant, end: i64) {
        for n in self.subs.iter_mut().filter_map(|s| s.nack.as_mut()) {
            n.expect_until(now, end);
        }
    }

    /// A round trip measured at `rtt` (from the sender's answer to a reference time).
    pub fn on_rtt(&mut self, rtt: Duration) {
        for n in self.subs.iter_mut().filter_map(|s| s.nack.as_mut()) {
            n.on_rtt(rtt);
        }
    }

    /// The lost packets to ask for now, per substream: calls `ask(media_ssrc, seqs)` for
    /// each substream with any. `playing`: playback has started (before it, deadlines are
    /// not known and everything may be asked for).
    pub fn nacks(
        &mut self,
        now: Instant,
        rate: u32,
        playing: bool,
        mut ask: impl FnMut(u32, &[u16]),
    ) {
        let read_pos = self.read_pos();
        let mut seqs = std::mem::take(&mut self.nack_scratch);
        for s in &mut self.subs {
            let Some(n) = &mut s.nack else {
                continue;
            };
            seqs.clear();
            n.due(now, playing, read_pos, rate, &mut seqs);
            if !seqs.is_empty() {
                ask(s.ssrc, &seqs);
            }
        }
        self.nack_scratch = seqs;
    }

    /// When [`Self::nacks`] has something to do next.
    pub fn next_nack(&self) -> Option<Instant> {
        self.subs
            .iter()
            .filter_map(|s| s.nack.as_ref().and_then(NackClock::next_deadline))
            .min()
    }

    /// The report blocks of all substreams at `now` (see
    /// [`crate::arrival::Arrival::report_block`]).
    pub fn report_blocks(&mut self, now: Instant) -> &[ReportBlock] {
        self.blocks.clear();
        for s in &mut self.subs {
            self.blocks.push(s.arrival.report_block(now, s.ssrc));
        }
        &self.blocks
    }
}
