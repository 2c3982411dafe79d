//! The retransmission stage: answers NACKs (RFC 4585) from a bounded history of recent media
//! packets with RFC 4588 retransmissions, within a byte budget.
//!
//! Every media packet the packetizer makes is kept (a reference, not a copy) in its
//! substream's history ring. A NACK names lost sequence numbers; each one still in the history
//! is sent again as a retransmission on the substream's own RTX stream: its own SSRC and
//! payload type ([`rtp::PT_RTX`]), its own sequence numbers, the original timestamp and
//! marker, and a payload of the original sequence number (2 bytes) followed by the original
//! payload. Stock receivers do not know the payload type and drop it.
//!
//! A byte budget caps what retransmissions may cost: every media byte sent allows `cap`
//! bytes of retransmission, and at most a burst of `burst_ms` of media may be saved up. What
//! a NACK asks beyond that is refused and counted, so neither an outage nor a forged NACK can
//! make the sender send more than `cap` times its media plus one burst.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use isostream_transport::rtcp::NackList;
use isostream_transport::rtp::{self, RtpHeader};
use isostream_transport::time::{Duration, Instant};
use serde::Serialize;

/// Settings of the retransmission stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RtxParams {
    /// How long a media packet stays in the history, in ms.
    pub history_ms: u32,
    /// The most retransmissions may cost, as a fraction of the media bytes sent (0.5: at
    /// most half as many bytes again).
    pub cap: f64,
    /// The burst the cap allows, in ms of media bytes (saved up while nothing is asked).
    pub burst_ms: u32,
}

impl Default for RtxParams {
    fn default() -> Self {
        RtxParams {
            history_ms: 10_000,
            cap: 1.0,
            burst_ms: 2000,
        }
    }
}

/// What the retransmission stage did (`retransmission` in the sender's stats;
/// docs/STATS.md). Counts are in packets unless the name says otherwise.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RtxStats {
    /// NACKs (RTCP feedback messages) taken from the session's own receiver.
    pub nacks_received: u64,
    /// Retransmissions those NACKs asked for, in packets.
    pub retransmissions_requested: u64,
    /// Retransmissions sent, in packets.
    pub retransmissions_sent: u64,
    /// Bytes of retransmission datagrams sent.
    pub retransmission_bytes: u64,
    /// Packets asked for but no longer (or never) in the history.
    pub retransmissions_unavailable: u64,
    /// Packets asked for beyond the cap, not sent.
    pub retransmissions_over_cap: u64,
    /// Packets asked for again while their retransmission was still on its way, not sent.
    pub retransmissions_in_flight: u64,
}

/// A packet is retransmitted again no sooner than this after its last retransmission.
pub const MIN_RESEND: Duration = Duration::from_millis(10);

/// A token bucket in bytes, filled by the media sent rather than by the clock: every media
/// byte adds `cap` bytes, up to `depth_bytes`. Whatever the NACKs ask, retransmissions never
/// cost more than `cap` times the media plus one burst, and an outage (when nothing is
/// answered) saves up no more than the burst.
#[derive(Clone, Debug)]
pub struct ByteBudget {
    cap: f64,
    depth_bytes: f64,
    tokens: f64,
}

impl ByteBudget {
    /// A full budget of `depth_bytes` that `cap` bytes per media byte fill.
    pub fn new(cap: f64, depth_bytes: f64) -> Self {
        ByteBudget {
            cap: cap.max(0.0),
            depth_bytes,
            tokens: depth_bytes,
        }
    }

    /// `bytes` of media were sent.
    pub fn credit(&mut self, bytes: usize) {
        self.tokens = (self.tokens + self.cap * bytes as f64).min(self.depth_bytes);
    }

    /// Takes `bytes` if the budget holds them.
    pub fn take(&mut self, bytes: usize) -> bool {
        if self.tokens >= bytes as f64 {
            self.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }
}

/// The longest media datagram of `packet_frames` frames of `frame_bytes` bytes (an
/// interleaved packet's header included), in bytes.
pub fn packet_bytes(packet_frames: u32, frame_bytes: usize) -> usize {
    rtp::HEADER_LEN
        + isostream_transport::interleave::HEADER_LEN
        + packet_frames as usize * frame_bytes
}

/// Packets of `history_ms` of media at `rate` Hz in packets of `packet_frames` frames: the
/// history a session asks [`Retransmitter::new`] for.
pub fn history_packets(rate: u32, packet_frames: u32, history_ms: u32) -> usize {
    let packets_per_s = rate as f64 / packet_frames.max(1) as f64;
    (packets_per_s * history_ms as f64 / 1000.0).ceil() as usize
}

/// One substream's history and RTX stream.
#[derive(Debug)]
struct RtxStream {
    media_ssrc: u32,
    rtx_ssrc: u32,
    next_seq: u16,
    /// Ring indexed by the sequence number's distance from `base` (modulo `slots`): the
    /// sequence number, the packet, and when it was last retransmitted. It grows as packets
    /// come, up to `slots`, so a session costs little to set up and a short one little
    /// memory.
    history: Vec<Option<(u16, Bytes, Option<Instant>)>>,
    /// Slots of the full ring (a power of two).
    slots: usize,
    /// The sequence number of the first packet kept.
    base: Option<u16>,
}

impl RtxStream {
    /// The ring slot of sequence number `seq`.
    fn slot(&self, seq: u16) -> usize {
        seq.wrapping_sub(self.base.unwrap_or(seq)) as usize & (self.slots - 1)
    }
}

/// The retransmission stage of a sender session (all substreams).
#[derive(Debug)]
pub struct Retransmitter {
    streams: Vec<RtxStream>,
    budget: ByteBudget,
    arena: BytesMut,
    stats: RtxStats,
}

impl Retransmitter {
    /// The most the stage keeps for substreams whose packets are at most `packet_bytes`
    /// long (one per substream) with a history of `history_packets` packets, in bytes:
    /// every slot of every ring full, and the packetizer arena (64 KiB) each ring's oldest
    /// packet may still share, twice.
    pub fn memory_bytes(packet_bytes: &[usize], history_packets: usize) -> usize {
        let slots = Self::slots(history_packets);
        let slot = std::mem::size_of::<Option<(u16, Bytes, Option<Instant>)>>();
        packet_bytes
            .iter()
            .map(|&p| slots.saturating_mul(p + slot) + 2 * (64 << 10))
            .sum()
    }

    fn slots(history_packets: usize) -> usize {
        history_packets.clamp(16, 1 << 15).next_power_of_two()
    }

    /// A stage for substreams with these (media SSRC, RTX SSRC, first RTX sequence number),
    /// keeping `history_packets` packets each, for media of `media_bytes_per_s`.
    pub fn new(
        streams: &[(u32, u32, u16)],
        history_packets: usize,
        media_bytes_per_s: f64,
        params: RtxParams,
    ) -> Self {
        let slots = Self::slots(history_packets);
        Retransmitter {
            streams: streams
                .iter()
                .map(|&(media_ssrc, rtx_ssrc, next_seq)| RtxStream {
                    media_ssrc,
                    rtx_ssrc,
                    next_seq,
                    history: Vec::new(),
                    slots,
                    base: None,
                })
                .collect(),
            budget: ByteBudget::new(
                params.cap,
                media_bytes_per_s * params.cap.max(0.0) * params.burst_ms as f64 / 1000.0 + 1500.0,
            ),
            arena: BytesMut::new(),
            stats: RtxStats::default(),
        }
    }

    /// The RTX SSRC of substream `i`.
    pub fn rtx_ssrc(&self, i: usize) -> u32 {
        self.streams[i].rtx_ssrc
    }

    /// Counters so far.
    pub fn stats(&self) -> RtxStats {
        self.stats
    }

    /// Keeps media packet `datagram` of substream `i` for retransmission (and credits the
    /// budget with it).
    pub fn keep(&mut self, i: usize, datagram: &Bytes) {
        let Ok((h, _)) = RtpHeader::parse(datagram) else {
            return;
        };
        let s = &mut self.streams[i];
        s.base.get_or_insert(h.seq);
        let slot = s.slot(h.seq);
        if slot >= s.history.len() {
            s.history.resize(slot + 1, None);
        }
        s.history[slot] = Some((h.seq, datagram.clone(), None));
        self.budget.credit(datagram.len());
    }

    /// Answers a NACK for `media_ssrc` at `now`: a retransmission of each named packet still
    /// in the history goes to `out`, as long as the cap allows, unless the packet was already
    /// retransmitted less than half the round trip `rtt` ago (that answer is still on its
    /// way; at least [`MIN_RESEND`]). Returns whether the SSRC is one of this session's.
    pub fn on_nack(
        &mut self,
        now: Instant,
        rtt: Option<Duration>,
        media_ssrc: u32,
        lost: &NackList,
        out: &mut VecDeque<Bytes>,
    ) -> bool {
        let again_after = rtt.map_or(MIN_RESEND, |r| (r / 2).max(MIN_RESEND));
        let Some(i) = self.streams.iter().position(|s| s.media_ssrc == media_ssrc) else {
            return false;
        };
        self.stats.nacks_received += 1;
        for seq in lost.seqs() {
            self.stats.retransmissions_requested += 1;
            let s = &mut self.streams[i];
            let slot = s.slot(seq);
            let Some((_, d, last)) = s
                .history
                .get_mut(slot)
                .and_then(Option::as_mut)
                .filter(|(q, _, _)| *q == seq)
            else {
                self.stats.retransmissions_unavailable += 1;
                continue;
            };
            if last.is_some_and(|t| now.saturating_duration_since(t) < again_after) {
                self.stats.retransmissions_in_flight += 1;
                continue;
            }
            let Ok((h, payload)) = RtpHeader::parse(d) else {
                self.stats.retransmissions_unavailable += 1;
                continue;
            };
            let len = rtp::HEADER_LEN + 2 + payload.len();
            if !self.budget.take(len) {
                self.stats.retransmissions_over_cap += 1;
                continue;
            }
            *last = Some(now);
            if self.arena.capacity() < len {
                self.arena = BytesMut::with_capacity(len.max(64 * 1024));
            }
            RtpHeader {
                marker: h.marker,
                payload_type: rtp::PT_RTX,
                seq: s.next_seq,
                timestamp: h.timestamp,
                ssrc: s.rtx_ssrc,
            }
            .write(&mut self.arena);
            self.arena.put_u16(seq);
            self.arena.put_slice(payload);
            s.next_seq = s.next_seq.wrapping_add(1);
            self.stats.retransmissions_sent += 1;
            self.stats.retransmission_bytes += len as u64;
            out.push_back(self.arena.split().freeze());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(seq: u16, payload: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        RtpHeader {
            marker: seq == 0,
            payload_type: rtp::PT_L16,
            seq,
            timestamp: 1000 + seq as u32 * 240,
            ssrc: 5,
        }
        .write(&mut b);
        b.put_slice(payload);
        b.freeze()
    }

    #[test]
    fn the_history_is_counted_slot_by_slot() {
        // 10 s of 5 ms packets at 48 kHz: 2000 packets, a ring of 2048
        assert_eq!(history_packets(48_000, 240, 10_000), 2_000);
        let p = packet_bytes(240, 4);
        assert_eq!(p, 12 + 4 + 960);
        let one = Retransmitter::memory_bytes(&[p], 2_000);
        assert!(
            one >= 2048 * p && one < 2048 * (p + 64) + (128 << 10),
            "{one}"
        );
        assert_eq!(Retransmitter::memory_bytes(&[p, p], 2_000), 2 * one);
        // the ring never has fewer than 16 slots
        assert!(Retransmitter::memory_bytes(&[p], 0) >= 16 * p);
    }

    fn stage(cap: f64) -> Retransmitter {
        Retransmitter::new(
            &[(5, 6, 100)],
            64,
            100_000.0,
            RtxParams {
                history_ms: 1000,
                cap,
                burst_ms: 100,
            },
        )
    }

    #[test]
    fn a_nacked_packet_goes_out_in_rfc_4588_form() {
        let mut r = stage(0.5);
        for seq in 65_530..=65_535u16 {
            r.keep(0, &media(seq, &[seq as u8; 8]));
        }
        r.keep(0, &media(0, &[9; 8]));
        let (lost, _) = NackList::pack(&[65_534, 0]);
        let mut out = VecDeque::new();
        assert!(r.on_nack(Instant::ZERO, None, 5, &lost, &mut out));
        assert_eq!(out.len(), 2);
        let (h, p) = RtpHeader::parse(&out[0]).unwrap();
        assert_eq!((h.payload_type, h.ssrc, h.seq), (rtp::PT_RTX, 6, 100));
        assert_eq!(h.timestamp, 1000 + 65_534 * 240);
        let (osn, orig) = rtp::parse_rtx(p).unwrap();
        assert_eq!(osn, 65_534);
        assert_eq!(orig, &[65_534u16 as u8; 8]);
        let (h, p) = RtpHeader::parse(&out[1]).unwrap();
        assert!(h.marker);
        assert_eq!(h.seq, 101);
        assert_eq!(rtp::parse_rtx(p).unwrap(), (0, &[9u8; 8][..]));
        assert_eq!(r.stats().retransmissions_sent, 2);
    }

    #[test]
    fn what_left_the_history_or_never_was_is_unavailable() {
        let mut r = stage(0.5);
        for seq in 0..200u16 {
            r.keep(0, &media(seq, &[1; 8]));
        }
        // 64 slots: 10 was overwritten by 74, 138; 500 was never sent
        let (lost, _) = NackList::pack(&[10, 199, 500]);
        let mut out = VecDeque::new();
        r.on_nack(Instant::ZERO, None, 5, &lost, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(r.stats().retransmissions_unavailable, 2);
        // another SSRC is not ours
        assert!(!r.on_nack(Instant::ZERO, None, 77, &lost, &mut out));
    }

    #[test]
    fn the_cap_bounds_what_any_number_of_nacks_costs() {
        // 10 % of the media; a burst of 100 ms of 100 kB/s at 10 %: 1 kB, + one datagram
        let mut r = stage(0.1);
        let mut out = VecDeque::new();
        let mut now = Instant::ZERO;
        let all: Vec<u16> = (0..64).collect();
        let mut media_bytes = 0;
        for round in 0..10u16 {
            for seq in 0..64u16 {
                let d = media(seq + round * 64, &[1; 488]);
                media_bytes += d.len();
                r.keep(0, &d);
            }
            // a NACK storm: 100 NACKs for everything, 1 ms apart
            let all: Vec<u16> = all.iter().map(|s| s + round * 64).collect();
            for _ in 0..100 {
                let mut from = 0;
                while from < all.len() {
                    let (l, used) = NackList::pack(&all[from..]);
                    r.on_nack(now, None, 5, &l, &mut out);
                    from += used;
                }
                now += Duration::from_millis(1);
            }
        }
        let bytes: usize = out.iter().map(Bytes::len).sum();
        let bound = 2_500 + media_bytes / 10;
        assert!(bytes <= bound, "{bytes} bytes, bound {bound}");
        // each round saved up at most the burst (2.5 kB: four retransmissions), and spent it
        assert!(
            bytes >= 10 * 4 * 502,
            "{bytes} bytes: the cap is not the limit"
        );
        // what the cap did not refuse, the in-flight rule did: nothing went out twice within
        // 10 ms
        let st = r.stats();
        assert!(st.retransmissions_over_cap > 0);
        assert_eq!(
            st.retransmissions_over_cap + st.retransmissions_in_flight + st.retransmissions_sent,
            64_000
        );
    }
}
