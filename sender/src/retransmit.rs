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
//! A token bucket caps what retransmissions may cost: at most `cap` times the media's own
//! byte rate, with a burst of `burst_ms` of media. What a NACK asks beyond that is refused and
//! counted, so neither an outage nor a forged NACK can make the sender send more than the cap.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use isostream_transport::rtcp::NackList;
use isostream_transport::rtp::{self, RtpHeader};
use isostream_transport::time::Instant;
use serde::Serialize;

/// Settings of the retransmission stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RtxParams {
    /// How long a media packet stays in the history, in ms.
    pub history_ms: u32,
    /// The most retransmissions may cost, as a fraction of the media's own byte rate
    /// (0.5: at most half as many bytes again).
    pub cap: f64,
    /// The burst the cap allows, in ms of media bytes.
    pub burst_ms: u32,
}

impl Default for RtxParams {
    fn default() -> Self {
        RtxParams {
            history_ms: 10_000,
            cap: 0.5,
            burst_ms: 500,
        }
    }
}

/// What the retransmission stage did.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RtxStats {
    /// NACKs taken from the session's own receiver.
    pub nacks_received: u64,
    /// Packets those NACKs asked for.
    pub retransmissions_requested: u64,
    /// Retransmissions sent.
    pub retransmissions_sent: u64,
    /// Bytes of retransmission datagrams sent.
    pub retransmission_bytes: u64,
    /// Packets asked for but no longer (or never) in the history.
    pub retransmissions_unavailable: u64,
    /// Packets asked for beyond the cap, not sent.
    pub retransmissions_over_cap: u64,
}

/// A token bucket in bytes.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate_bytes_per_s: f64,
    depth_bytes: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket refilled at `rate_bytes_per_s`, holding at most `depth_bytes`.
    pub fn new(rate_bytes_per_s: f64, depth_bytes: f64) -> Self {
        TokenBucket {
            rate_bytes_per_s,
            depth_bytes,
            tokens: depth_bytes,
            last: None,
        }
    }

    /// Takes `bytes` if the bucket holds them at `now`.
    pub fn take(&mut self, now: Instant, bytes: usize) -> bool {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate_bytes_per_s).min(self.depth_bytes);
        }
        self.last = Some(now);
        if self.tokens >= bytes as f64 {
            self.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }
}

/// One substream's history and RTX stream.
#[derive(Debug)]
struct RtxStream {
    media_ssrc: u32,
    rtx_ssrc: u32,
    next_seq: u16,
    /// Ring indexed by sequence number: (sequence number, packet).
    history: Vec<Option<(u16, Bytes)>>,
}

/// The retransmission stage of a sender session (all substreams).
#[derive(Debug)]
pub struct Retransmitter {
    streams: Vec<RtxStream>,
    bucket: TokenBucket,
    arena: BytesMut,
    stats: RtxStats,
}

impl Retransmitter {
    /// A stage for substreams with these (media SSRC, RTX SSRC, first RTX sequence number),
    /// keeping `history_packets` packets each, for media of `media_bytes_per_s`.
    pub fn new(
        streams: &[(u32, u32, u16)],
        history_packets: usize,
        media_bytes_per_s: f64,
        params: RtxParams,
    ) -> Self {
        let slots = history_packets.clamp(16, 1 << 15).next_power_of_two();
        Retransmitter {
            streams: streams
                .iter()
                .map(|&(media_ssrc, rtx_ssrc, next_seq)| RtxStream {
                    media_ssrc,
                    rtx_ssrc,
                    next_seq,
                    history: vec![None; slots],
                })
                .collect(),
            bucket: TokenBucket::new(
                media_bytes_per_s * params.cap,
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

    /// Keeps media packet `datagram` of substream `i` for retransmission.
    pub fn keep(&mut self, i: usize, datagram: &Bytes) {
        let Ok((h, _)) = RtpHeader::parse(datagram) else {
            return;
        };
        let s = &mut self.streams[i];
        let slot = h.seq as usize & (s.history.len() - 1);
        s.history[slot] = Some((h.seq, datagram.clone()));
    }

    /// Answers a NACK for `media_ssrc` at `now`: a retransmission of each named packet still
    /// in the history goes to `out`, as long as the cap allows. Returns whether the SSRC is
    /// one of this session's.
    pub fn on_nack(
        &mut self,
        now: Instant,
        media_ssrc: u32,
        lost: &NackList,
        out: &mut VecDeque<Bytes>,
    ) -> bool {
        let Some(i) = self.streams.iter().position(|s| s.media_ssrc == media_ssrc) else {
            return false;
        };
        self.stats.nacks_received += 1;
        for seq in lost.seqs() {
            self.stats.retransmissions_requested += 1;
            let s = &mut self.streams[i];
            let slot = seq as usize & (s.history.len() - 1);
            let Some((_, d)) = s.history[slot].as_ref().filter(|(q, _)| *q == seq) else {
                self.stats.retransmissions_unavailable += 1;
                continue;
            };
            let Ok((h, payload)) = RtpHeader::parse(d) else {
                self.stats.retransmissions_unavailable += 1;
                continue;
            };
            let len = rtp::HEADER_LEN + 2 + payload.len();
            if !self.bucket.take(now, len) {
                self.stats.retransmissions_over_cap += 1;
                continue;
            }
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
    use isostream_transport::time::Duration;

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
        assert!(r.on_nack(Instant::ZERO, 5, &lost, &mut out));
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
        r.on_nack(Instant::ZERO, 5, &lost, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(r.stats().retransmissions_unavailable, 2);
        // another SSRC is not ours
        assert!(!r.on_nack(Instant::ZERO, 77, &lost, &mut out));
    }

    #[test]
    fn the_cap_bounds_what_any_number_of_nacks_costs() {
        let mut r = stage(0.1); // 10 kB/s, a burst of 1 kB + one datagram
        for seq in 0..64u16 {
            r.keep(0, &media(seq, &[1; 488])); // 502-byte retransmissions
        }
        let all: Vec<u16> = (0..64).collect();
        let mut out = VecDeque::new();
        let mut now = Instant::ZERO;
        // a NACK storm: 1000 NACKs for everything, 1 ms apart, over one second
        for _ in 0..1000 {
            let mut from = 0;
            while from < all.len() {
                let (l, used) = NackList::pack(&all[from..]);
                r.on_nack(now, 5, &l, &mut out);
                from += used;
            }
            now += Duration::from_millis(1);
        }
        let bytes: usize = out.iter().map(Bytes::len).sum();
        // at most the burst plus one second at the rate
        assert!(bytes <= 2_500 + 10_000, "{bytes} bytes");
        assert!(bytes >= 9_000, "{bytes} bytes: the cap is not the limit");
        assert!(r.stats().retransmissions_over_cap > 60_000);
    }
}
