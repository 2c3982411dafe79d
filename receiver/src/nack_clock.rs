//! One substream's NACK plumbing: the [`crate::nack::Nacker`] of a substream whose sender
//! answers NACKs, its retransmission stream's SSRC, and the play clock that tells the
//! Nacker when each missing packet plays (so a request whose answer would come too late is
//! not sent).
//!
//! The play clock is anchored at the newest original packet placed (its extended sequence
//! number and media position) and steps one packet's frames per sequence number; the
//! playout position it is compared with is an explicit input of [`NackClock::due`].

use isostream_transport::time::{Duration, Instant};

use crate::layout::Framing;
use crate::nack::{Deadlines, NackCounts, Nacker};

/// A substream's NACK stage and the play clock of its packets. See the module documentation.
#[derive(Debug)]
pub struct NackClock {
    nacker: Nacker,
    /// The SSRC of the substream's retransmission stream.
    rtx_ssrc: u32,
    /// The newest original packet placed: its extended sequence number and position (in
    /// frames), to tell when a missing packet plays.
    anchor: Option<(u64, i64)>,
    /// Frames a packet holds.
    packet_frames: i64,
    /// How far before its neighbours' positions an interleaved packet's first frame may
    /// lie, in frames.
    spread_frames: i64,
}

/// When packets play, from a substream's anchor and the playout position.
struct PlayClock {
    now: Instant,
    anchor: (u64, i64),
    packet_frames: i64,
    spread_frames: i64,
    read_pos: i64,
    rate: u32,
}

impl Deadlines for PlayClock {
    fn deadline(&self, ext: u64) -> Option<Instant> {
        let (aext, apos) = self.anchor;
        let pos = apos + (ext as i64 - aext as i64) * self.packet_frames - self.spread_frames;
        let ahead = pos - self.read_pos;
        if ahead <= 0 {
            return Some(self.now);
        }
        Some(self.now + Duration::from_nanos(ahead as u64 * 1_000_000_000 / self.rate as u64))
    }
}

/// Deadlines before playback: unknown.
struct Unknown;

impl Deadlines for Unknown {
    fn deadline(&self, _: u64) -> Option<Instant> {
        None
    }
}

impl NackClock {
    /// Asks for lost packets with NACKs, answered on retransmission stream `rtx_ssrc`; the
    /// stream is cut as `framing` says, at `rate` Hz. A gap waits for reordering and for the
    /// FEC block (or interleave group) it is in before it is asked for.
    pub fn new(rtx_ssrc: u32, framing: &Framing, rate: u32) -> Self {
        let packet = framing.packet_frames.max(1) as u64;
        let ms =
            |packets: u64| Duration::from_nanos(packets * packet * 1_000_000_000 / rate as u64);
        // a gap waits for reordering and for the FEC block it is in (spread included)
        let block = framing.block_packets as u64 * framing.spread.max(1) as u64;
        let group = framing.interleave.max(1) as u64;
        let hold = Duration::from_millis(5) + ms(block.max(group));
        NackClock {
            nacker: Nacker::new(hold),
            rtx_ssrc,
            anchor: None,
            packet_frames: packet as i64,
            spread_frames: (group as i64 - 1) * packet as i64,
        }
    }

    /// First requests wait a random time from zero to `max` more (a member of a multicast
    /// group, RFC 4585), drawn from a generator seeded with `seed`.
    pub fn with_random_delay(self, max: Duration, seed: u64) -> Self {
        NackClock {
            nacker: self.nacker.with_random_delay(max, seed),
            ..self
        }
    }

    /// Forgets every missing packet once the session has ended (its buffers are freed).
    pub fn release(&mut self) {
        self.nacker = Nacker::new(Duration::ZERO);
    }

    /// The SSRC of the substream's retransmission stream.
    pub fn rtx_ssrc(&self) -> u32 {
        self.rtx_ssrc
    }

    /// What was asked for and given up on so far, in packets.
    pub fn counts(&self) -> NackCounts {
        self.nacker.counts()
    }

    /// The round-trip estimate.
    pub fn rtt(&self) -> Duration {
        self.nacker.rtt()
    }

    /// An original packet `ext` (extended sequence number) arrived at `now`, with the
    /// stream's interarrival jitter at `jitter`.
    pub fn on_arrival(&mut self, now: Instant, ext: u64, jitter: Duration) {
        self.nacker.set_jitter(jitter);
        self.nacker.on_arrival(now, ext);
    }

    /// Original packet `ext` was placed with its first frame at position `pos` (frames):
    /// the newest one anchors the play clock.
    pub fn on_placed(&mut self, ext: u64, pos: i64) {
        if self.anchor.is_none_or(|(e, _)| ext > e) {
            self.anchor = Some((ext, pos));
        }
    }

    /// Packet `ext` was rebuilt by the FEC decoder: it is not asked for.
    pub fn on_rebuilt(&mut self, ext: u64) {
        self.nacker.on_rebuilt(ext);
    }

    /// Packet `ext` arrived retransmitted at `now` (a round-trip sample).
    pub fn on_retransmission(&mut self, now: Instant, ext: u64) {
        self.nacker.on_retransmission(now, ext);
    }

    /// A round trip measured at `rtt`.
    pub fn on_rtt(&mut self, rtt: Duration) {
        self.nacker.on_rtt(rtt);
    }

    /// The stream ends at position `end` (frames): the packets up to it are expected, so a
    /// loss at the very end is asked for too. Nothing is known before a packet was placed.
    pub fn expect_until(&mut self, now: Instant, end: i64) {
        let Some((aext, apos)) = self.anchor else {
            return;
        };
        let pf = self.packet_frames.max(1);
        let after = (end - apos + pf - 1).div_euclid(pf) - 1;
        if after >= 1 {
            self.nacker.expect_until(now, aext + after as u64);
        }
    }

    /// The sequence numbers to ask for at `now`, into `out`. `playing`: playback has
    /// started and plays position `read_pos` (frames, at `rate` Hz) next; before it, or
    /// before any packet was placed, deadlines are not known and everything may be asked for.
    pub fn due(
        &mut self,
        now: Instant,
        playing: bool,
        read_pos: i64,
        rate: u32,
        out: &mut Vec<u16>,
    ) {
        match (playing, self.anchor) {
            (true, Some(anchor)) => {
                let clock = PlayClock {
                    now,
                    anchor,
                    packet_frames: self.packet_frames,
                    spread_frames: self.spread_frames,
                    read_pos,
                    rate,
                };
                self.nacker.due(now, &clock, out);
            }
            _ => self.nacker.due(now, &Unknown, out),
        }
    }

    /// When [`Self::due`] has something to do next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.nacker.next_deadline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 1_000;

    fn framing() -> Framing {
        Framing {
            packet_frames: 10,
            block_packets: 0,
            repair_packets: 0,
            spread: 1,
            interleave: 1,
        }
    }

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    fn due(c: &mut NackClock, ms: u64, playing: bool, read_pos: i64) -> Vec<u16> {
        let mut out = Vec::new();
        c.due(at(ms), playing, read_pos, RATE, &mut out);
        out
    }

    #[test]
    fn a_gap_is_asked_for_after_the_hold() {
        let mut c = NackClock::new(7, &framing(), RATE);
        assert_eq!(c.rtx_ssrc(), 7);
        c.on_arrival(at(0), 0, Duration::ZERO);
        c.on_placed(0, 0);
        c.on_arrival(at(1), 2, Duration::ZERO);
        c.on_placed(2, 20);
        assert_eq!(due(&mut c, 1, false, 0), Vec::<u16>::new());
        assert!(c.next_deadline().is_some());
        assert_eq!(due(&mut c, 100, false, 0), vec![1]);
        assert_eq!(c.counts().requested, 1);
    }

    #[test]
    fn a_packet_already_playing_is_given_up() {
        let mut c = NackClock::new(7, &framing(), RATE);
        c.on_arrival(at(0), 0, Duration::ZERO);
        c.on_placed(0, 0);
        c.on_arrival(at(1), 2, Duration::ZERO);
        c.on_placed(2, 20);
        // playout is past packet 1 (positions 10..20): its answer would come too late
        assert_eq!(due(&mut c, 100, true, 30), Vec::<u16>::new());
        assert_eq!(c.counts().given_up, 1);
    }

    #[test]
    fn the_end_makes_a_lost_tail_expected() {
        let mut c = NackClock::new(7, &framing(), RATE);
        // nothing placed: the end tells nothing
        c.expect_until(at(0), 100);
        assert!(c.next_deadline().is_none());
        c.on_arrival(at(0), 0, Duration::ZERO);
        c.on_placed(0, 0);
        c.expect_until(at(0), 30);
        assert_eq!(due(&mut c, 100, false, 0), vec![1, 2]);
    }

    #[test]
    fn rebuilt_packets_are_not_asked_for() {
        let mut c = NackClock::new(7, &framing(), RATE);
        c.on_arrival(at(0), 0, Duration::ZERO);
        c.on_arrival(at(1), 3, Duration::ZERO);
        c.on_placed(3, 30);
        c.on_placed(0, 0);
        c.on_rebuilt(1);
        assert_eq!(due(&mut c, 100, false, 0), vec![2]);
    }
}
