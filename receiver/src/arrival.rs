//! Arrival: the first stage of a substream's receive chain. It sees every media and repair
//! packet of the substream as it comes off the network, before anything is rebuilt.
//!
//! - extends the 16-bit sequence numbers and drops duplicates (a window of the last
//!   [`DEDUPE_WINDOW`] extended sequence numbers, which rebuilt packets also enter, so an
//!   original that turns up after its rebuilt copy is a duplicate too);
//! - measures the interarrival jitter (RFC 3550, A.8);
//! - keeps the figures of the RFC 3550 report block: packets expected, lost, the fraction
//!   lost since the previous report, and the middle of the last sender report's NTP time with
//!   its arrival (LSR/DLSR).
//!
//! It only counts and filters: what it passes on (the extended sequence number of a fresh
//! packet) goes to the FEC decoder and the de-interleaver.

use isostream_transport::rtcp::ReportBlock;
use isostream_transport::seq::SeqUnwrapper;
use isostream_transport::time::Instant;

/// Extended sequence numbers remembered to spot duplicates, in packets.
pub const DEDUPE_WINDOW: usize = 2048;

/// Counters of the arrival stage, in packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArrivalCounts {
    /// Media packets received, not counting duplicates.
    pub received: u64,
    /// Duplicate media packets dropped.
    pub duplicate: u64,
    /// Rebuilt media packets let through (not already received).
    pub rebuilt: u64,
    /// Repair packets received.
    pub repair_received: u64,
    /// Lost media packets that arrived as retransmissions (not already there).
    pub retransmitted: u64,
}

/// The last sender report, as far as the report block is concerned.
#[derive(Clone, Copy, Debug)]
struct LastSr {
    /// Middle 32 bits of its NTP timestamp.
    ntp_middle: u32,
    /// When it arrived.
    at: Instant,
}

/// The arrival stage of one substream. See the module documentation.
#[derive(Debug)]
pub struct Arrival {
    /// Media rate, in Hz (timestamp units per second).
    rate: u32,
    seq: SeqUnwrapper,
    seen: Vec<u64>,
    first_seq: Option<u64>,
    counts: ArrivalCounts,
    /// Interarrival jitter, in timestamp units (frames).
    jitter: f64,
    /// Relative transit time of the previous packet, in frames.
    last_transit: Option<f64>,
    /// Expected and received packets at the previous report block (for fraction lost).
    reported: (u64, u64),
    last_sr: Option<LastSr>,
}

impl Arrival {
    /// What the stage allocates, in bytes (its duplicate window).
    pub const MEMORY_BYTES: usize = DEDUPE_WINDOW * std::mem::size_of::<u64>();

    /// The stage of a substream at `rate` Hz that has seen nothing yet.
    pub fn new(rate: u32) -> Self {
        Arrival {
            rate,
            seq: SeqUnwrapper::new(),
            seen: vec![u64::MAX; DEDUPE_WINDOW],
            first_seq: None,
            counts: ArrivalCounts::default(),
            jitter: 0.0,
            last_transit: None,
            reported: (0, 0),
            last_sr: None,
        }
    }

    /// A media packet with sequence number `seq` and RTP timestamp `timestamp` arrived at
    /// `now`. Returns its extended sequence number, or `None` if it is a duplicate (dropped).
    pub fn on_media(&mut self, now: Instant, seq: u16, timestamp: u32) -> Option<u64> {
        let ext = self.seq.extend(seq as u64);
        let slot = (ext % DEDUPE_WINDOW as u64) as usize;
        if self.seen[slot] == ext {
            self.counts.duplicate += 1;
            return None;
        }
        self.seen[slot] = ext;
        self.first_seq = Some(self.first_seq.map_or(ext, |f| f.min(ext)));
        self.counts.received += 1;
        // interarrival jitter: the spread of transit times, in frames (RFC 3550, A.8)
        let rate = self.rate as f64;
        let arrival = now.as_nanos() as f64 * rate / 1e9;
        let transit = arrival - timestamp as f64;
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            // a timestamp wrap or a sender restart is not jitter
            if d < rate {
                self.jitter += (d - self.jitter) / 16.0;
            }
        }
        self.last_transit = Some(transit);
        Some(ext)
    }

    /// A repair packet arrived (counted, whether or not the substream decodes FEC).
    pub fn on_repair(&mut self) {
        self.counts.repair_received += 1;
    }

    /// The extended sequence number of a repair packet's first source packet. Before any
    /// source packet, the repair packet anchors the sequence numbers.
    pub fn repair_base(&mut self, base_seq: u16) -> u64 {
        if self.seq.highest().is_none() {
            // no source packet yet to anchor the sequence numbers
            self.seq.extend(base_seq as u64);
        }
        self.seq.peek(base_seq as u64)
    }

    /// The FEC decoder rebuilt the media packet with sequence number `seq`. Returns its
    /// extended sequence number if it is news (counted as rebuilt and remembered), `None`
    /// if the packet was already received.
    pub fn admit_rebuilt(&mut self, seq: u16) -> Option<u64> {
        let ext = self.seq.peek(seq as u64);
        let slot = (ext % DEDUPE_WINDOW as u64) as usize;
        if self.seen[slot] == ext {
            return None;
        }
        // a recovered packet counts in the highest sequence number reported (its loss stays
        // counted): a sender that sees its last packet reported knows the end arrived
        self.seq.extend(seq as u64);
        self.seen[slot] = ext;
        self.counts.rebuilt += 1;
        Some(ext)
    }

    /// A retransmission of the media packet with sequence number `seq` arrived. Returns its
    /// extended sequence number if it is news (counted as retransmitted and remembered),
    /// `None` if the packet was already there (received, rebuilt or retransmitted before).
    pub fn admit_retransmitted(&mut self, seq: u16) -> Option<u64> {
        self.seq.highest()?;
        let ext = self.seq.peek(seq as u64);
        let slot = (ext % DEDUPE_WINDOW as u64) as usize;
        if self.seen[slot] == ext {
            return None;
        }
        self.seq.extend(seq as u64);
        self.seen[slot] = ext;
        self.counts.retransmitted += 1;
        Some(ext)
    }

    /// The media rate, in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// A sender report arrived at `now` with NTP timestamp `ntp` (64-bit).
    pub fn on_sender_report(&mut self, now: Instant, ntp: u64) {
        self.last_sr = Some(LastSr {
            ntp_middle: (ntp >> 16) as u32,
            at: now,
        });
    }

    /// Counters so far.
    pub fn counts(&self) -> ArrivalCounts {
        self.counts
    }

    /// Media packets received so far, not counting duplicates.
    pub fn received(&self) -> u64 {
        self.counts.received
    }

    /// Media packets expected from the sequence numbers seen (RFC 3550, A.3).
    pub fn expected(&self) -> u64 {
        let highest = self.seq.highest().unwrap_or(0);
        self.first_seq.map_or(0, |f| highest + 1 - f)
    }

    /// Interarrival jitter (RFC 3550), in timestamp units (frames).
    pub fn jitter_frames(&self) -> f64 {
        self.jitter
    }

    /// The RFC 3550 report block about this substream (SSRC `ssrc`) at `now`. The fraction
    /// lost counts from the previous call.
    pub fn report_block(&mut self, now: Instant, ssrc: u32) -> ReportBlock {
        let highest = self.seq.highest().unwrap_or(0);
        let expected = self.expected();
        let received = self.counts.received;
        let (exp0, rec0) = self.reported;
        self.reported = (expected, received);
        let exp_i = expected.saturating_sub(exp0);
        let lost_i = exp_i.saturating_sub(received.saturating_sub(rec0));
        ReportBlock {
            ssrc,
            fraction_lost: (lost_i * 256).checked_div(exp_i).unwrap_or(0).min(255) as u8,
            cumulative_lost: (expected as i64 - received as i64) as i32,
            // the unwrapper starts one cycle up: report cycles from 0
            highest_seq: highest.saturating_sub(1 << 16) as u32,
            jitter: self.jitter as u32,
            last_sr: self.last_sr.map_or(0, |s| s.ntp_middle),
            delay_since_last_sr: self.last_sr.map_or(0, |s| {
                ((now - s.at).as_nanos() * 65_536 / 1_000_000_000) as u32
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_transport::time::Duration;

    fn at_ms(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn duplicates_are_dropped_and_counted() {
        let mut a = Arrival::new(1_000);
        let e = a.on_media(at_ms(0), 7, 0).unwrap();
        assert_eq!(a.on_media(at_ms(1), 7, 0), None);
        assert_eq!(a.on_media(at_ms(2), 8, 10), Some(e + 1));
        assert_eq!(a.counts().received, 2);
        assert_eq!(a.counts().duplicate, 1);
    }

    #[test]
    fn a_rebuilt_packet_is_news_once_and_makes_its_late_original_a_duplicate() {
        let mut a = Arrival::new(1_000);
        a.on_media(at_ms(0), 100, 0).unwrap();
        assert!(a.admit_rebuilt(101).is_some());
        assert_eq!(a.admit_rebuilt(101), None);
        assert_eq!(a.admit_rebuilt(100), None);
        assert_eq!(a.on_media(at_ms(5), 101, 10), None);
        let c = a.counts();
        assert_eq!((c.received, c.rebuilt, c.duplicate), (1, 1, 1));
    }

    #[test]
    fn sequence_numbers_wrap_and_expected_counts_the_gaps() {
        let mut a = Arrival::new(1_000);
        a.on_media(at_ms(0), 65_534, 0);
        a.on_media(at_ms(10), 1, 30);
        assert_eq!(a.expected(), 4);
        assert_eq!(a.received(), 2);
    }

    #[test]
    fn constant_transit_is_no_jitter_and_a_late_packet_is() {
        let mut a = Arrival::new(1_000);
        for i in 0..10u64 {
            a.on_media(at_ms(i * 10), i as u16, (i * 10) as u32);
        }
        assert_eq!(a.jitter_frames(), 0.0);
        // 8 ms late at 1 kHz: 8 frames of transit difference, a sixteenth of it
        a.on_media(at_ms(108), 10, 100);
        assert!(
            (a.jitter_frames() - 0.5).abs() < 1e-9,
            "{}",
            a.jitter_frames()
        );
        // a timestamp jump of more than a second is a restart, not jitter
        a.on_media(at_ms(118), 11, 1_000_000);
        assert!((a.jitter_frames() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn report_blocks_give_the_fraction_lost_since_the_previous_one() {
        let mut a = Arrival::new(1_000);
        for s in [0u16, 1, 3] {
            a.on_media(at_ms(s as u64), s, 0);
        }
        let b = a.report_block(at_ms(10), 42);
        assert_eq!(b.ssrc, 42);
        assert_eq!(b.cumulative_lost, 1);
        assert_eq!(b.fraction_lost, 64); // 1 of 4
        assert_eq!(b.highest_seq, 3);
        assert_eq!((b.last_sr, b.delay_since_last_sr), (0, 0));
        for s in 4u16..8 {
            a.on_media(at_ms(20), s, 0);
        }
        let b = a.report_block(at_ms(30), 42);
        assert_eq!(b.fraction_lost, 0);
        assert_eq!(b.cumulative_lost, 1);
    }

    #[test]
    fn report_blocks_echo_the_last_sender_report_and_the_time_since() {
        let mut a = Arrival::new(1_000);
        a.on_sender_report(at_ms(1_000), 0x0123_4567_89ab_cdef);
        let b = a.report_block(at_ms(1_500), 1);
        assert_eq!(b.last_sr, 0x4567_89ab);
        assert_eq!(b.delay_since_last_sr, 32_768);
    }

    #[test]
    fn a_repair_packet_anchors_the_sequence_numbers_before_any_source_packet() {
        let mut a = Arrival::new(1_000);
        let base = a.repair_base(500);
        a.on_repair();
        assert_eq!(a.on_media(at_ms(0), 501, 0), Some(base + 1));
        assert_eq!(a.counts().repair_received, 1);
        assert_eq!(a.repair_base(400), base - 100);
    }
}
