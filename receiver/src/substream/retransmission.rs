//! Retransmissions (RFC 4588) into a substream: the original packet is rebuilt from a
//! retransmission on the substream's RTX stream (one copy, into an arena: retransmissions
//! are rare), completes its FEC block and goes down the chain as if it had arrived in time.

use isostream_transport::rtp::{self, RtpHeader};
use isostream_transport::time::Instant;

use bytes::BytesMut;

use super::context::ReceiveContext;
use super::Substreams;
use crate::counters::Drops;

impl Substreams {
    /// A retransmission (RFC 4588) of a media packet of substream `i` arrived at `now`:
    /// `h` is its RTX header, `payload` the original sequence number and payload; the
    /// original packet (payload type `media_pt`) is rebuilt from them, so that it also
    /// completes its FEC block. Returns false if the packet was already there.
    #[allow(clippy::too_many_arguments)]
    pub fn on_retransmission(
        &mut self,
        now: Instant,
        i: usize,
        h: &RtpHeader,
        payload: &[u8],
        media_pt: u8,
        ctx: &ReceiveContext,
        drops: &mut Drops,
    ) -> bool {
        let Ok((osn, original)) = rtp::parse_rtx(payload) else {
            drops.malformed += 1;
            return false;
        };
        let sub = &mut self.subs[i];
        let Some(ext) = sub.arrival.admit_retransmitted(osn) else {
            return false;
        };
        if let Some(n) = &mut sub.nack {
            n.on_retransmission(now, ext);
        }
        let oh = RtpHeader {
            marker: h.marker,
            payload_type: media_pt,
            seq: osn,
            timestamp: h.timestamp,
            ssrc: sub.ssrc,
        };
        // retransmissions are rare: the rebuilt original is one copy, from an arena
        let len = rtp::HEADER_LEN + original.len();
        if self.arena.capacity() < len {
            self.arena = BytesMut::with_capacity(len.max(64 * 1024));
        }
        oh.write(&mut self.arena);
        self.arena.extend_from_slice(original);
        let datagram = self.arena.split().freeze();
        let mut rebuilt = std::mem::take(&mut self.rebuilt);
        if let Some(fec) = &mut self.subs[i].fec {
            fec.on_source(ext, &datagram, &mut rebuilt);
        }
        self.deliver(now, i, &oh, original, ctx, drops);
        self.deliver_rebuilt(now, i, &mut rebuilt, ctx, drops);
        self.rebuilt = rebuilt;
        true
    }

    /// The index of the substream whose retransmission stream is `rtx_ssrc`.
    pub fn index_of_rtx(&self, rtx_ssrc: u32) -> Option<usize> {
        self.subs
            .iter()
            .position(|s| s.rtx_ssrc() == Some(rtx_ssrc))
    }
}
