//! De-interleaver: the third stage of a substream's receive chain. It turns a media packet
//! (received or rebuilt) into frames at media positions and writes them into the jitter
//! buffer: the one copy per frame on the receive path.
//!
//! - [`Timeline`] maps RTP timestamps to media positions (frames from the session's position
//!   0): relative to the substream's timestamp base, unwrapped past 2^32, minus the media
//!   time a live sender skipped (audio it dropped while paused: the receiver closes the hole
//!   instead of playing it, so the latency stays put). Sender reports are mapped the same way
//!   ([`CaptureMapping`]), which gives the capture time of a media position.
//! - [`Deinterleaver::place`] checks the payload (type, format, interleave header, whole
//!   frames) and finds where its frames go: every D-th position from the packet's index in
//!   its group for an interleaved packet, consecutive positions otherwise.
//! - [`Deinterleaver::write`] copies them into the jitter buffer and counts late and
//!   overflowing packets.

use isostream_media::SampleFormat;
use isostream_transport::interleave::InterleaveHeader;
use isostream_transport::rtp::{self, RtpHeader};
use isostream_transport::seq::TsUnwrapper;

use crate::jitter_buffer::{JitterBuffer, Write};

/// The sample format of a payload type and whether it is interleaved. For a stock stream
/// (no session description), `stock_l16` names a payload type that carries plain L16
/// whatever it is in isostream's numbering (ffmpeg, for one, sends L16 as 97).
pub fn payload_format(pt: u8, stock_l16: Option<u8>) -> Option<(SampleFormat, bool)> {
    if stock_l16 == Some(pt) {
        return Some((SampleFormat::S16, false));
    }
    let plain = if pt >= rtp::PT_L16 + rtp::PT_INTERLEAVED_OFFSET {
        pt - rtp::PT_INTERLEAVED_OFFSET
    } else {
        pt
    };
    let interleaved = plain != pt;
    let f = match plain {
        rtp::PT_L16 | rtp::PT_STATIC_L16_STEREO | rtp::PT_STATIC_L16_MONO
            if !interleaved || plain == rtp::PT_L16 =>
        {
            SampleFormat::S16
        }
        rtp::PT_L24 => SampleFormat::S24,
        rtp::PT_F32 => SampleFormat::F32,
        _ => return None,
    };
    Some((f, interleaved))
}

/// Media time a live sender skipped, removed from the timeline: raw positions at or after
/// `at` move back by `total`, earlier ones by `before` (all in frames).
#[derive(Clone, Copy, Debug, Default)]
struct Skips {
    at: i64,
    before: i64,
    total: i64,
}

impl Skips {
    fn map(&self, raw: i64) -> i64 {
        raw - if raw >= self.at {
            self.total
        } else {
            self.before
        }
    }
}

/// What the last sender report says: the media position `position` (frames) was captured
/// at `unix_ns` (ns since the Unix epoch, on the sender's wall clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureMapping {
    /// Wall-clock time of the report, in ns since the Unix epoch.
    pub unix_ns: i128,
    /// The media position its RTP timestamp stands for, in frames.
    pub position: i64,
}

/// RTP timestamp -> media position of one substream. See the module documentation.
#[derive(Debug)]
pub struct Timeline {
    ts_base: Option<u32>,
    ts: TsUnwrapper,
    skips: Skips,
    /// Frames skipped so far.
    skipped: u64,
    sr_position: Option<i64>,
    sr_unix_ns: Option<i128>,
}

impl Timeline {
    /// A timeline whose position 0 is RTP timestamp `ts_base` (from the session
    /// description), or the first packet's timestamp if `None`.
    pub fn new(ts_base: Option<u32>) -> Self {
        Timeline {
            ts_base,
            ts: TsUnwrapper::new(),
            skips: Skips::default(),
            skipped: 0,
            sr_position: None,
            sr_unix_ns: None,
        }
    }

    /// Extends `timestamp` (remembering it) and returns its raw position (before skips) and
    /// its media position, in frames.
    fn extend(&mut self, timestamp: u32) -> (i64, i64) {
        let base = *self.ts_base.get_or_insert(timestamp);
        let raw = self.ts.extend(timestamp.wrapping_sub(base) as u64) as i64 - (1i64 << 32);
        (raw, self.skips.map(raw))
    }

    /// The media position of `timestamp` without remembering it (`None` before the base is
    /// known), in frames.
    pub fn position_of(&self, timestamp: u32) -> Option<i64> {
        let base = self.ts_base?;
        let raw = self.ts.peek(timestamp.wrapping_sub(base) as u64) as i64 - (1i64 << 32);
        Some(self.skips.map(raw))
    }

    /// A live sender resumed at raw position `raw` after dropping audio: the media from
    /// `end` (what the buffer holds) to it is removed. Returns the new media position of
    /// `raw` (= `end`).
    fn close_hole(&mut self, raw: i64, pos: i64, end: i64) -> i64 {
        let gap = pos - end;
        self.skips = Skips {
            at: raw,
            before: self.skips.total,
            total: self.skips.total + gap,
        };
        self.skipped += gap as u64;
        self.skips.map(raw)
    }

    /// A sender report: RTP timestamp `rtp_ts` was captured at `unix_ns` (ns since the Unix
    /// epoch). Its position is kept for [`Self::capture_mapping`] and [`Self::sr_position`].
    pub fn on_sender_report(&mut self, rtp_ts: u32, unix_ns: i128) {
        if let Some(p) = self.position_of(rtp_ts) {
            self.sr_position = Some(p);
        }
        self.sr_unix_ns = Some(unix_ns);
    }

    /// The media position of the last sender report, in frames.
    pub fn sr_position(&self) -> Option<i64> {
        self.sr_position
    }

    /// The last sender report's wall-clock time and media position, once both are known.
    pub fn capture_mapping(&self) -> Option<CaptureMapping> {
        Some(CaptureMapping {
            unix_ns: self.sr_unix_ns?,
            position: self.sr_position?,
        })
    }

    /// Media time removed from the timeline (a live sender's drops), in frames.
    pub fn frames_skipped(&self) -> u64 {
        self.skipped
    }
}

/// Why a packet was not placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// A payload type the session does not carry.
    Foreign,
    /// A payload of the wrong format, a bad interleave header, or not whole frames.
    Malformed,
}

/// What [`Deinterleaver::place`] needs to know besides the packet.
#[derive(Clone, Copy, Debug)]
pub struct PlaceInput {
    /// The session's sample format.
    pub format: SampleFormat,
    /// Whether the source is live (its holes are closed, see [`Timeline`]).
    pub live: bool,
    /// A payload type that carries plain L16 (stock streams only).
    pub stock_l16: Option<u8>,
    /// Media packets the arrival stage has received so far.
    pub received: u64,
    /// One past the highest position in the jitter buffer, in frames.
    pub buffer_end: i64,
    /// The longest hole a live sender's marked packet may close, in frames (one further
    /// ahead is placed where its timestamp says: beyond the buffer, it is dropped).
    pub max_hole_frames: i64,
}

/// Where a packet's frames go: positions `pos`, `pos + stride`, ... (frames).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement<'a> {
    /// Media position of the first frame, in frames.
    pub pos: i64,
    /// Distance between consecutive frames of the packet, in frames (the interleave depth).
    pub stride: usize,
    /// The wire frames (whole frames).
    pub frames: &'a [u8],
}

/// Counters of the de-interleaver, in packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeinterleaveCounts {
    /// Packets (or parts of them) that arrived after their playout deadline.
    pub late: u64,
    /// Packets that did not fit in the jitter buffer.
    pub overflow: u64,
}

/// The de-interleaver of one substream. See the module documentation.
#[derive(Debug)]
pub struct Deinterleaver {
    frame_bytes: usize,
    timeline: Timeline,
    counts: DeinterleaveCounts,
}

impl Deinterleaver {
    /// A de-interleaver for frames of `frame_bytes` bytes, with the timeline's base
    /// `ts_base` (see [`Timeline::new`]).
    pub fn new(frame_bytes: usize, ts_base: Option<u32>) -> Self {
        Deinterleaver {
            frame_bytes,
            timeline: Timeline::new(ts_base),
            counts: DeinterleaveCounts::default(),
        }
    }

    /// Finds where the frames of a packet (header `h`, payload `payload`) go. Its timestamp
    /// enters the timeline even if the payload is then rejected.
    pub fn place<'a>(
        &mut self,
        h: &RtpHeader,
        payload: &'a [u8],
        input: &PlaceInput,
    ) -> Result<Placement<'a>, Reject> {
        let (f, interleaved) =
            payload_format(h.payload_type, input.stock_l16).ok_or(Reject::Foreign)?;
        if f != input.format {
            return Err(Reject::Malformed);
        }
        let (raw, mut pos) = self.timeline.extend(h.timestamp);
        if input.live
            && h.marker
            && input.received > 1
            && pos > input.buffer_end
            && pos - input.buffer_end <= input.max_hole_frames
        {
            // a live sender resumed after dropping audio: close the hole, keep the latency
            pos = self.timeline.close_hole(raw, pos, input.buffer_end);
        }
        let (pos, stride, frames) = if interleaved {
            let (ih, samples) = InterleaveHeader::parse(payload).map_err(|_| Reject::Malformed)?;
            if ih.check_samples(samples, self.frame_bytes).is_err() {
                return Err(Reject::Malformed);
            }
            (pos + ih.index as i64, ih.depth as usize, samples)
        } else {
            (pos, 1, payload)
        };
        if !frames.len().is_multiple_of(self.frame_bytes) {
            return Err(Reject::Malformed);
        }
        Ok(Placement {
            pos,
            stride,
            frames,
        })
    }

    /// Writes a placed packet into the jitter buffer.
    pub fn write(&mut self, p: &Placement<'_>, jb: &mut JitterBuffer) {
        match jb.write(p.pos, p.stride, p.frames) {
            Write::Stored { late } => {
                if late > 0 {
                    self.counts.late += 1;
                }
            }
            Write::Late => self.counts.late += 1,
            Write::Overflow => self.counts.overflow += 1,
        }
    }

    /// The substream's timeline (RTP timestamps and sender reports to media positions).
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// A sender report: see [`Timeline::on_sender_report`].
    pub fn on_sender_report(&mut self, rtp_ts: u32, unix_ns: i128) {
        self.timeline.on_sender_report(rtp_ts, unix_ns);
    }

    /// Counters so far.
    pub fn counts(&self) -> DeinterleaveCounts {
        self.counts
    }

    /// Bytes per frame.
    pub fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_transport::interleave::InterleaveHeader;

    fn header(pt: u8, ts: u32, marker: bool) -> RtpHeader {
        RtpHeader {
            marker,
            payload_type: pt,
            seq: 0,
            timestamp: ts,
            ssrc: 1,
        }
    }

    fn input(received: u64, buffer_end: i64, live: bool) -> PlaceInput {
        PlaceInput {
            format: SampleFormat::S16,
            live,
            stock_l16: None,
            received,
            buffer_end,
            max_hole_frames: 48_000,
        }
    }

    #[test]
    fn payload_types_name_their_format() {
        assert_eq!(
            payload_format(rtp::PT_L16, None),
            Some((SampleFormat::S16, false))
        );
        assert_eq!(
            payload_format(rtp::PT_L24 + rtp::PT_INTERLEAVED_OFFSET, None),
            Some((SampleFormat::S24, true))
        );
        assert_eq!(
            payload_format(97, Some(97)),
            Some((SampleFormat::S16, false))
        );
        assert_eq!(payload_format(0, None), None);
    }

    #[test]
    fn timestamps_map_to_positions_from_the_base_and_unwrap() {
        let mut d = Deinterleaver::new(2, Some(u32::MAX - 9));
        let p = d.place(
            &header(rtp::PT_L16, 10, false),
            &[0; 4],
            &input(1, 0, false),
        );
        assert_eq!(p.unwrap().pos, 20);
        assert_eq!(d.timeline().position_of(u32::MAX - 4), Some(5));
        let mut d = Deinterleaver::new(2, None);
        let p = d.place(
            &header(rtp::PT_L16, 777, false),
            &[0; 4],
            &input(1, 0, false),
        );
        assert_eq!(p.unwrap().pos, 0);
    }

    #[test]
    fn interleaved_packets_go_to_every_dth_position() {
        let mut d = Deinterleaver::new(2, Some(0));
        let ih = InterleaveHeader::new(4, 1, 8).unwrap();
        let mut payload = ih.to_bytes().to_vec();
        payload.extend_from_slice(&[1, 1, 2, 2]);
        let pt = rtp::PT_L16 + rtp::PT_INTERLEAVED_OFFSET;
        let p = d
            .place(&header(pt, 100, false), &payload, &input(1, 0, false))
            .unwrap();
        assert_eq!((p.pos, p.stride, p.frames), (101, 4, &[1, 1, 2, 2][..]));
        let mut jb = JitterBuffer::new(2, 256, 0);
        d.write(&p, &mut jb);
        assert_eq!(jb.end(), 106);
    }

    #[test]
    fn bad_payloads_are_rejected() {
        let mut d = Deinterleaver::new(4, Some(0));
        let i = input(1, 0, false);
        assert_eq!(
            d.place(&header(0, 0, false), &[0; 4], &i),
            Err(Reject::Foreign)
        );
        assert_eq!(
            d.place(&header(rtp::PT_L24, 0, false), &[0; 6], &i),
            Err(Reject::Malformed)
        );
        assert_eq!(
            d.place(&header(rtp::PT_L16, 0, false), &[0; 6], &i),
            Err(Reject::Malformed)
        );
    }

    #[test]
    fn a_live_sender_resuming_after_a_pause_has_its_hole_closed() {
        let mut d = Deinterleaver::new(2, Some(0));
        let a = d.place(&header(rtp::PT_L16, 0, false), &[0; 20], &input(1, 0, true));
        assert_eq!(a.unwrap().pos, 0);
        // 990 frames dropped by the sender while paused; the buffer ends at 10
        let b = d.place(
            &header(rtp::PT_L16, 1_000, true),
            &[0; 20],
            &input(2, 10, true),
        );
        assert_eq!(b.unwrap().pos, 10);
        assert_eq!(d.timeline().frames_skipped(), 990);
        let c = d.place(
            &header(rtp::PT_L16, 1_010, false),
            &[0; 20],
            &input(3, 20, true),
        );
        assert_eq!(c.unwrap().pos, 20);
        // a packet from before the pause keeps its position
        assert_eq!(d.timeline().position_of(5), Some(5));
        // stored media is never skipped
        let mut s = Deinterleaver::new(2, Some(0));
        s.place(
            &header(rtp::PT_L16, 0, false),
            &[0; 20],
            &input(1, 0, false),
        )
        .unwrap();
        let b = s.place(
            &header(rtp::PT_L16, 1_000, true),
            &[0; 20],
            &input(2, 10, false),
        );
        assert_eq!(b.unwrap().pos, 1_000);
    }

    #[test]
    fn a_marked_packet_further_ahead_than_the_longest_hole_closes_nothing() {
        let mut d = Deinterleaver::new(2, Some(0));
        d.place(&header(rtp::PT_L16, 0, false), &[0; 20], &input(1, 0, true))
            .unwrap();
        // an hour ahead (the test input allows holes of 48,000 frames)
        let far = d.place(
            &header(rtp::PT_L16, 48_000 * 3600, true),
            &[0; 20],
            &input(2, 10, true),
        );
        assert_eq!(far.unwrap().pos, 48_000 * 3600);
        assert_eq!(d.timeline().frames_skipped(), 0);
        // the stream goes on where it was
        let next = d.place(
            &header(rtp::PT_L16, 10, false),
            &[0; 20],
            &input(3, 10, true),
        );
        assert_eq!(next.unwrap().pos, 10);
    }

    #[test]
    fn sender_reports_map_to_the_capture_time_of_a_position() {
        let mut d = Deinterleaver::new(2, None);
        d.on_sender_report(500, 7);
        assert_eq!(d.timeline().capture_mapping(), None);
        d.place(
            &header(rtp::PT_L16, 100, false),
            &[0; 4],
            &input(1, 0, false),
        )
        .unwrap();
        d.on_sender_report(500, 9);
        assert_eq!(
            d.timeline().capture_mapping(),
            Some(CaptureMapping {
                unix_ns: 9,
                position: 400
            })
        );
        assert_eq!(d.timeline().sr_position(), Some(400));
    }

    #[test]
    fn late_and_overflowing_writes_are_counted() {
        let mut d = Deinterleaver::new(1, Some(0));
        let mut jb = JitterBuffer::new(1, 8, 0);
        jb.advance(4);
        let i = input(1, 0, false);
        let p = d
            .place(&header(rtp::PT_L16, 0, false), &[0; 2], &i)
            .unwrap();
        d.write(&p, &mut jb);
        let p = d
            .place(&header(rtp::PT_L16, 20, false), &[0; 2], &i)
            .unwrap();
        d.write(&p, &mut jb);
        assert_eq!(
            d.counts(),
            DeinterleaveCounts {
                late: 1,
                overflow: 1
            }
        );
    }
}
