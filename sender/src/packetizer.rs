//! Packetizer: cuts one substream's wire frames into RTP packets, sample-interleaved when the
//! interleave depth is above 1.
//!
//! A *group* is `depth` consecutive packets (`depth x packet_frames` frames). With depth 1 a
//! packet carries consecutive frames (plain L16/L24, what stock tools play). With depth D,
//! packet j of a group carries frames j, j+D, j+2D, ... of the group, behind the 4-byte
//! interleave header, and every packet of the group is stamped with the group's first frame.

use bytes::{BufMut, Bytes, BytesMut};
use isostream_transport::interleave::{self, InterleaveHeader};
use isostream_transport::rtp::{self, RtpHeader, PT_INTERLEAVED_OFFSET};

/// One RTP packet made by the packetizer.
#[derive(Clone, Debug)]
pub struct MediaPacket {
    /// The whole RTP datagram.
    pub datagram: Bytes,
    /// Frames it carries (its weight for pacing).
    pub frames: u32,
    /// Whether the packets sent up to this one leave no sequence number of the substream
    /// unsent below it (false inside a spread group, whose packets leave column by column):
    /// a PAUSE waits for such a packet, so that it never opens a gap the receiver would ask
    /// for again.
    pub ends_group: bool,
}

/// Arena size for packet buffers: packets are split off a shared allocation, so the steady
/// state allocates once per this many bytes, not once per packet.
const ARENA_BYTES: usize = 64 * 1024;

/// Cuts wire frames of one substream into RTP packets.
#[derive(Debug)]
pub struct Packetizer {
    ssrc: u32,
    base_pt: u8,
    frame_bytes: usize,
    packet_frames: usize,
    depth: usize,
    seq: u16,
    ts_base: u32,
    /// Media position (frames) of the first frame of the group being filled.
    group_pos: u64,
    group: Vec<u8>,
    group_fill: usize,
    arena: BytesMut,
    first: bool,
    discontinuity: bool,
    packets: u64,
}

impl Packetizer {
    /// A packetizer for a substream with frames of `frame_bytes` bytes.
    ///
    /// `base_pt` is the plain payload type of the format; `ts_base` the RTP timestamp of media
    /// position 0; `first_seq` the first sequence number (random per run, RFC 3550).
    pub fn new(
        ssrc: u32,
        base_pt: u8,
        frame_bytes: usize,
        packet_frames: usize,
        depth: usize,
        first_seq: u16,
        ts_base: u32,
    ) -> Self {
        let depth = depth.max(1);
        Packetizer {
            ssrc,
            base_pt,
            frame_bytes,
            packet_frames,
            depth,
            seq: first_seq,
            ts_base,
            group_pos: 0,
            group: vec![0; depth * packet_frames * frame_bytes],
            group_fill: 0,
            arena: BytesMut::with_capacity(ARENA_BYTES),
            first: true,
            discontinuity: false,
            packets: 0,
        }
    }

    /// Frames this packetizer takes before it emits a group of packets.
    pub fn group_frames(&self) -> usize {
        self.depth * self.packet_frames
    }

    /// Frames still needed to complete the current group.
    pub fn frames_to_complete_group(&self) -> usize {
        self.group_frames() - self.group_fill / self.frame_bytes
    }

    /// Packets made so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The sequence number the next packet will carry (the last packet made has the one
    /// before it).
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// Media position (frames) just past the last frame taken.
    pub fn position(&self) -> u64 {
        self.group_pos + (self.group_fill / self.frame_bytes) as u64
    }

    /// The RTP timestamp that corresponds to media position `pos`.
    pub fn timestamp_at(&self, pos: u64) -> u32 {
        self.ts_base.wrapping_add(pos as u32)
    }

    /// Skips `frames` frames of media time without sending them (a live source's audio
    /// dropped while paused). Only call with an empty group; the next packet has the marker
    /// bit set, as RFC 3551 asks after a discontinuity.
    pub fn skip(&mut self, frames: u64) {
        debug_assert_eq!(self.group_fill, 0);
        self.group_pos += frames;
        self.discontinuity = true;
    }

    /// Takes wire frames (a whole number of frames, at most [`Self::frames_to_complete_group`]),
    /// appending the packets of a completed group to `out`. Returns frames taken.
    pub fn push(&mut self, frames: &[u8], out: &mut Vec<MediaPacket>) -> usize {
        let room = self.group.len() - self.group_fill;
        let n = frames.len().min(room) / self.frame_bytes * self.frame_bytes;
        self.group[self.group_fill..self.group_fill + n].copy_from_slice(&frames[..n]);
        self.group_fill += n;
        if self.group_fill == self.group.len() {
            self.emit_group(out);
        }
        n / self.frame_bytes
    }

    /// Emits the partial group at the end of the stream, if any.
    pub fn flush(&mut self, out: &mut Vec<MediaPacket>) {
        if self.group_fill > 0 {
            self.emit_group(out);
        }
    }

    fn emit_group(&mut self, out: &mut Vec<MediaPacket>) {
        let group_frames = self.group_fill / self.frame_bytes;
        if self.depth == 1 {
            let mut start = 0;
            while start < group_frames {
                let n = (group_frames - start).min(self.packet_frames);
                let ts = self.timestamp_at(self.group_pos + start as u64);
                let (lo, hi) = (start * self.frame_bytes, (start + n) * self.frame_bytes);
                self.write_header(self.base_pt, ts, n * self.frame_bytes);
                self.arena.put_slice(&self.group[lo..hi]);
                out.push(self.finish_packet(n));
                start += n;
            }
        } else {
            let ts = self.timestamp_at(self.group_pos);
            for j in 0..self.depth {
                let n = interleave::frames_in_packet(group_frames, self.depth, j);
                if n == 0 {
                    continue;
                }
                let bytes = n * self.frame_bytes;
                self.write_header(
                    self.base_pt + PT_INTERLEAVED_OFFSET,
                    ts,
                    interleave::HEADER_LEN + bytes,
                );
                let h = InterleaveHeader {
                    depth: self.depth as u8,
                    index: j as u8,
                    group_frames: group_frames as u16,
                };
                let at = self.arena.len();
                self.arena.put_bytes(0, interleave::HEADER_LEN + bytes);
                h.write(&mut self.arena[at..at + interleave::HEADER_LEN]);
                interleave::gather(
                    &self.group[..self.group_fill],
                    self.frame_bytes,
                    self.depth,
                    j,
                    &mut self.arena[at + interleave::HEADER_LEN..],
                );
                out.push(self.finish_packet(n));
            }
        }
        self.group_pos += group_frames as u64;
        self.group_fill = 0;
    }

    fn write_header(&mut self, pt: u8, ts: u32, payload_len: usize) {
        if self.arena.capacity() - self.arena.len() < rtp::HEADER_LEN + payload_len {
            self.arena = BytesMut::with_capacity(ARENA_BYTES.max(rtp::HEADER_LEN + payload_len));
        }
        RtpHeader {
            marker: self.first || self.discontinuity,
            payload_type: pt,
            seq: self.seq,
            timestamp: ts,
            ssrc: self.ssrc,
        }
        .write(&mut self.arena);
        self.first = false;
        self.discontinuity = false;
        self.seq = self.seq.wrapping_add(1);
    }

    fn finish_packet(&mut self, frames: usize) -> MediaPacket {
        self.packets += 1;
        MediaPacket {
            datagram: self.arena.split().freeze(),
            frames: frames as u32,
            ends_group: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_transport::rtp::PT_L16;

    fn frames(n: usize, fb: usize) -> Vec<u8> {
        (0..n * fb).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn plain_packets_carry_consecutive_frames_with_advancing_timestamps() {
        let mut p = Packetizer::new(1, PT_L16, 4, 240, 1, 65_535, 1000);
        let input = frames(600, 4);
        let mut out = Vec::new();
        let mut taken = 0;
        while taken < 600 {
            taken += p.push(&input[taken * 4..], &mut out);
        }
        p.flush(&mut out);
        assert_eq!(
            out.iter().map(|m| m.frames).collect::<Vec<_>>(),
            [240, 240, 120]
        );
        let mut joined = Vec::new();
        for (i, m) in out.iter().enumerate() {
            let (h, payload) = RtpHeader::parse(&m.datagram).unwrap();
            assert_eq!(h.seq, 65_535u16.wrapping_add(i as u16));
            assert_eq!(h.timestamp, 1000 + 240 * i as u32);
            assert_eq!(h.marker, i == 0);
            joined.extend_from_slice(payload);
        }
        assert_eq!(joined, input);
    }

    #[test]
    fn interleaved_packets_share_the_group_timestamp_and_stride_by_depth() {
        let mut p = Packetizer::new(1, PT_L16, 2, 4, 2, 0, 0);
        let input: Vec<u8> = (0..8u8).flat_map(|f| [0, f]).collect();
        let mut out = Vec::new();
        p.push(&input, &mut out);
        assert_eq!(out.len(), 2);
        for (j, m) in out.iter().enumerate() {
            let (h, payload) = RtpHeader::parse(&m.datagram).unwrap();
            assert_eq!(h.payload_type, PT_L16 + PT_INTERLEAVED_OFFSET);
            assert_eq!(h.timestamp, 0);
            let (ih, samples) = InterleaveHeader::parse(payload).unwrap();
            assert_eq!((ih.depth, ih.index, ih.group_frames), (2, j as u8, 8));
            let got: Vec<u8> = samples.chunks(2).map(|c| c[1]).collect();
            let want: Vec<u8> = (0..4).map(|i| (j + 2 * i) as u8).collect();
            assert_eq!(got, want);
        }
    }
}
