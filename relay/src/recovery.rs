//! Recovery: the relay asks its upstream for the media packets that did not reach it, as a
//! receiver does ([`isostream_receiver::nack::Nacker`], one per substream: the hold for
//! reordering and the FEC block, the repeats, the give-up after its tries), and turns the
//! RFC 4588 retransmissions that come back into the originals they carry, which go into the
//! store like any media packet (so every listener behind the relay gets them). The relay
//! plays nothing, so no packet has a playout deadline: each is asked for until its tries
//! run out.

use bytes::{BufMut, Bytes, BytesMut};
use isostream_receiver::nack::{Deadlines, Nacker};
use isostream_transport::rtcp::{self, NackList, SessionDesc};
use isostream_transport::rtp::{self, RtpHeader};
use isostream_transport::time::{Duration, Instant};

/// A relay has no playout: no packet's deadline is known.
struct NoPlayout;

impl Deadlines for NoPlayout {
    fn deadline(&self, _: u64) -> Option<Instant> {
        None
    }
}

#[derive(Debug)]
struct Substream {
    ssrc: u32,
    rtx_ssrc: u32,
    nacker: Nacker,
    /// The payload type of its media (from its latest media packet).
    media_pt: Option<u8>,
}

/// The relay's NACKs upstream and the originals rebuilt from the answers.
#[derive(Debug, Default)]
pub struct Recovery {
    subs: Vec<Substream>,
    seqs: Vec<u16>,
    buf: BytesMut,
    asked: u64,
    recovered: u64,
}

impl Recovery {
    /// NACK stages for the substreams of `desc` that announce an RTX stream (a stream
    /// without one is never asked, like a receiver's).
    pub fn set_desc(&mut self, desc: &SessionDesc) {
        let packet = desc.packet_frames.max(1) as u64;
        let rate = desc.rate.max(1) as u64;
        let block = (desc.fec_k as u64 + desc.fec_m as u64) * desc.spread.max(1) as u64;
        let span = block.max(desc.interleave.max(1) as u64);
        let hold =
            Duration::from_millis(5) + Duration::from_nanos(span * packet * 1_000_000_000 / rate);
        self.subs = desc
            .substreams
            .iter()
            .filter_map(|s| {
                Some(Substream {
                    ssrc: s.ssrc,
                    rtx_ssrc: s.rtx_ssrc?,
                    nacker: Nacker::new(hold),
                    media_pt: None,
                })
            })
            .collect();
    }

    /// NACKs sent so far (packets asked for, counting repeats).
    pub fn asked(&self) -> u64 {
        self.asked
    }

    /// Originals rebuilt from retransmissions so far.
    pub fn recovered(&self) -> u64 {
        self.recovered
    }

    /// Media packet `h` arrived first at `now` with extended sequence number `ext`.
    pub fn on_media(&mut self, now: Instant, h: &RtpHeader, ext: u64) {
        if let Some(s) = self.subs.iter_mut().find(|s| s.ssrc == h.ssrc) {
            s.media_pt = Some(h.payload_type);
            s.nacker.on_arrival(now, ext);
        }
    }

    /// A retransmission `d` arrived at `now`: the original it carries (its SSRC, sequence
    /// number and datagram), if it is on one of the substreams' RTX streams. `ext` extends
    /// a wire sequence number of that substream without remembering it.
    pub fn on_retransmission(
        &mut self,
        now: Instant,
        d: &[u8],
        ext: impl Fn(u32, u16) -> Option<u64>,
    ) -> Option<(u32, u16, Bytes)> {
        let (h, payload) = RtpHeader::parse(d).ok()?;
        let s = self.subs.iter_mut().find(|s| s.rtx_ssrc == h.ssrc)?;
        let (osn, original) = rtp::parse_rtx(payload).ok()?;
        let pt = s.media_pt?;
        if let Some(e) = ext(s.ssrc, osn) {
            s.nacker.on_retransmission(now, e);
        }
        self.buf.clear();
        RtpHeader {
            marker: h.marker,
            payload_type: pt,
            seq: osn,
            timestamp: h.timestamp,
            ssrc: s.ssrc,
        }
        .write(&mut self.buf);
        self.buf.put_slice(original);
        self.recovered += 1;
        Some((s.ssrc, osn, self.buf.split().freeze()))
    }

    /// The NACKs due at `now` from the relay's `ssrc`, one datagram per substream.
    pub fn due(&mut self, now: Instant, ssrc: u32, out: &mut Vec<Bytes>) {
        for s in &mut self.subs {
            self.seqs.clear();
            s.nacker.due(now, &NoPlayout, &mut self.seqs);
            if self.seqs.is_empty() {
                continue;
            }
            self.buf.clear();
            let mut from = 0;
            while from < self.seqs.len() {
                let (lost, used) = NackList::pack(&self.seqs[from..]);
                rtcp::write_nack(&mut self.buf, ssrc, s.ssrc, &lost);
                from += used.max(1);
            }
            self.asked += self.seqs.len() as u64;
            out.push(self.buf.split().freeze());
        }
    }

    /// When [`Self::due`] has something to do next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.subs
            .iter()
            .filter_map(|s| s.nacker.next_deadline())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_transport::rtcp::RtcpPacket;

    fn desc() -> SessionDesc {
        crate::testutil::stereo_desc(5, Some(6))
    }

    fn header(seq: u16) -> RtpHeader {
        RtpHeader {
            marker: false,
            payload_type: rtp::PT_L16,
            seq,
            timestamp: seq as u32 * 240,
            ssrc: 5,
        }
    }

    #[test]
    fn a_gap_is_asked_for_and_its_retransmission_rebuilds_the_original() {
        let mut r = Recovery::default();
        r.set_desc(&desc());
        let t0 = Instant::ZERO;
        r.on_media(t0, &header(10), 10);
        r.on_media(t0, &header(12), 12);
        let mut out = Vec::new();
        r.due(t0, 77, &mut out);
        assert!(out.is_empty(), "the hold first");
        let t1 = r.next_deadline().unwrap();
        assert!(t1 - t0 >= Duration::from_millis(10));
        r.due(t1, 77, &mut out);
        let p: Vec<_> = rtcp::parse_compound(&out[0]).map(Result::unwrap).collect();
        let RtcpPacket::Nack {
            sender_ssrc,
            media_ssrc,
            lost,
        } = &p[0]
        else {
            panic!("{p:?}")
        };
        assert_eq!((*sender_ssrc, *media_ssrc), (77, 5));
        assert_eq!(lost.seqs().collect::<Vec<_>>(), vec![11]);
        // the answer: RTX seq 900 on SSRC 6, OSN 11, the original payload
        let mut b = BytesMut::new();
        RtpHeader {
            marker: false,
            payload_type: rtp::PT_RTX,
            seq: 900,
            timestamp: 11 * 240,
            ssrc: 6,
        }
        .write(&mut b);
        b.put_u16(11);
        b.put_slice(&[1, 2, 3, 4]);
        let (ssrc, seq, d) = r.on_retransmission(t1, &b, |_, q| Some(q as u64)).unwrap();
        assert_eq!((ssrc, seq), (5, 11));
        let (h, p) = RtpHeader::parse(&d).unwrap();
        assert_eq!(h, header(11));
        assert_eq!(p, &[1, 2, 3, 4]);
        // no longer missing: nothing more to ask
        out.clear();
        r.due(t1 + Duration::from_secs(5), 77, &mut out);
        assert!(out.is_empty());
        assert_eq!((r.asked(), r.recovered()), (1, 1));
    }
}
