//! Reception statistics of the upstream's substreams, for the relay's receiver reports
//! (RFC 3550, 6.4.1): the extended highest sequence number, the cumulative loss, and the
//! last sender report (LSR/DLSR), so that the sender measures its round trip to the relay
//! and knows how far the relay got (its repeats of BYE, docs/PROTOCOL.md section 9).

use isostream_transport::rtcp::{ReportBlock, SenderReport};
use isostream_transport::seq::Unwrapper;
use isostream_transport::time::Instant;

#[derive(Clone, Debug)]
struct Substream {
    ssrc: u32,
    seqs: Unwrapper<16>,
    first: Option<u64>,
    received: u64,
    /// Middle 32 bits of the last SR's NTP timestamp, and when it arrived.
    last_sr: Option<(u32, Instant)>,
}

/// What the relay reports about each upstream substream.
#[derive(Clone, Debug, Default)]
pub struct Reception {
    subs: Vec<Substream>,
    blocks: Vec<ReportBlock>,
}

impl Reception {
    /// Reception of the substreams `ssrcs` (a new description starts afresh).
    pub fn set_substreams(&mut self, ssrcs: impl Iterator<Item = u32>) {
        self.subs = ssrcs
            .map(|ssrc| Substream {
                ssrc,
                seqs: Unwrapper::new(),
                first: None,
                received: 0,
                last_sr: None,
            })
            .collect();
    }

    /// A media packet `seq` of substream `index` arrived (not a duplicate); returns its
    /// extended sequence number.
    pub fn on_media(&mut self, index: usize, seq: u16) -> Option<u64> {
        let s = self.subs.get_mut(index)?;
        let ext = s.seqs.extend(seq as u64);
        s.first = Some(s.first.map_or(ext, |f| f.min(ext)));
        s.received += 1;
        Some(ext)
    }

    /// The extended sequence number of `seq` of SSRC `ssrc`, without remembering it.
    pub fn peek(&self, ssrc: u32, seq: u16) -> Option<u64> {
        let s = self.subs.iter().find(|s| s.ssrc == ssrc)?;
        Some(s.seqs.peek(seq as u64))
    }

    /// A sender report arrived at `now`.
    pub fn on_sender_report(&mut self, now: Instant, sr: &SenderReport) {
        if let Some(s) = self.subs.iter_mut().find(|s| s.ssrc == sr.ssrc) {
            s.last_sr = Some(((sr.ntp >> 16) as u32, now));
        }
    }

    /// One report block per substream at `now`.
    pub fn blocks(&mut self, now: Instant) -> &[ReportBlock] {
        self.blocks.clear();
        for s in &self.subs {
            let highest = s.seqs.highest();
            let expected = match (s.first, highest) {
                (Some(f), Some(h)) => h - f + 1,
                _ => 0,
            };
            let lost = expected.saturating_sub(s.received).min(0x7f_ffff) as i32;
            let (last_sr, delay) = s.last_sr.map_or((0, 0), |(m, at)| {
                let d = (now - at).as_secs_f64() * 65536.0;
                (m, d.min(u32::MAX as f64) as u32)
            });
            self.blocks.push(ReportBlock {
                ssrc: s.ssrc,
                fraction_lost: 0,
                cumulative_lost: lost,
                // the unwrapper places the first value one cycle up (as the receiver reports it)
                highest_seq: highest.map_or(0, |h| h.saturating_sub(1 << 16)) as u32,
                jitter: 0,
                last_sr,
                delay_since_last_sr: delay,
            });
        }
        &self.blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_transport::time::Duration;

    #[test]
    fn blocks_carry_the_highest_sequence_the_loss_and_the_last_report() {
        let mut r = Reception::default();
        r.set_substreams([5u32, 6].into_iter());
        for q in [65534u16, 65535, 1, 2] {
            r.on_media(0, q);
        }
        let t = Instant::ZERO + Duration::from_secs(1);
        r.on_sender_report(
            t,
            &SenderReport {
                ssrc: 5,
                ntp: 0x1234_5678_9abc_def0,
                rtp_ts: 0,
                packets: 0,
                octets: 0,
            },
        );
        let b = r.blocks(t + Duration::from_millis(500)).to_vec();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].ssrc, 5);
        assert_eq!(b[0].highest_seq, 65536 + 2);
        assert_eq!(b[0].cumulative_lost, 1); // 0 never came
        assert_eq!(b[0].last_sr, 0x5678_9abc);
        assert_eq!(b[0].delay_since_last_sr, 32768);
        assert_eq!((b[1].highest_seq, b[1].cumulative_lost), (0, 0));
    }
}
