//! RTCP control packets (RFC 3550, section 6), multiplexed on the media port (RFC 5761).
//!
//! isostream sends standard sender reports, receiver reports, SDES CNAME and BYE, plus APP
//! packets (packet type 204) named `ISOS` that carry flow control (PAUSE, RESUME and their
//! acknowledgement) and the session description. Stock tools ignore the APP packets.

use bytes::{BufMut, BytesMut};

use crate::WireError;

/// RTCP packet type of a sender report.
pub const PT_SR: u8 = 200;
/// RTCP packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// RTCP packet type of source description items.
pub const PT_SDES: u8 = 202;
/// RTCP packet type of BYE.
pub const PT_BYE: u8 = 203;
/// RTCP packet type of application-defined packets.
pub const PT_APP: u8 = 204;
/// RTCP packet type of transport-layer feedback (RFC 4585, RTPFB).
pub const PT_RTPFB: u8 = 205;
/// RTCP packet type of extended reports (RFC 3611, XR).
pub const PT_XR: u8 = 207;
/// XR block type: receiver reference time (RFC 3611, 4.4).
const XR_RRTR: u8 = 4;
/// XR block type: DLRR, the delay since the last receiver reference time (RFC 3611, 4.5).
const XR_DLRR: u8 = 5;
/// Feedback message type of a Generic NACK within [`PT_RTPFB`] (RFC 4585, section 6.2.1).
pub const FMT_NACK: u8 = 1;
/// Most (PID, BLP) entries of one NACK this implementation reads or writes: 16 entries name
/// up to 272 packets.
pub const MAX_NACK_ENTRIES: usize = 16;
/// Flag bit of the description's flags byte: the source is live.
const DESC_LIVE: u8 = 1;
/// Flag bit of the description's flags byte: a table of retransmission SSRCs (one per
/// substream) follows the substream table.
const DESC_RTX: u8 = 2;
/// The 4-byte name of isostream's APP packets.
pub const APP_NAME: [u8; 4] = *b"ISOS";

/// APP subtype of PAUSE.
pub const APP_PAUSE: u8 = 0;
/// APP subtype of RESUME.
pub const APP_RESUME: u8 = 1;
/// APP subtype of the acknowledgement of a PAUSE or RESUME.
pub const APP_ACK: u8 = 2;
/// APP subtype of the session description.
pub const APP_DESC: u8 = 3;
/// APP subtype of a relay subscription: a listener asks a relay to serve it the stream, at
/// the address the packet came from (docs/PROTOCOL.md, "Relay").
pub const APP_SUBSCRIBE: u8 = 4;

/// One reception report block (RFC 3550, section 6.4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24 bits, signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, in timestamp units (frames).
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last sender report received.
    pub last_sr: u32,
    /// Delay since that sender report, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// A sender report: maps the stream's RTP timestamps to the sender's wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderReport {
    /// Sender's SSRC.
    pub ssrc: u32,
    /// Wall-clock time of this report, NTP format (32.32 fixed point seconds since 1900).
    pub ntp: u64,
    /// The RTP timestamp corresponding to `ntp`, in frames.
    pub rtp_ts: u32,
    /// Packets sent so far.
    pub packets: u32,
    /// Payload octets sent so far.
    pub octets: u32,
}

/// One entry of the session description: a substream (its own RTP stream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubstreamDesc {
    /// The substream's SSRC.
    pub ssrc: u32,
    /// The RTP timestamp that corresponds to session media position 0, in frames.
    pub ts_base: u32,
    /// Channels carried by this substream.
    pub channels: u8,
    /// The SSRC of its retransmission stream (RFC 4588, SSRC-multiplexed), if it answers
    /// NACKs.
    pub rtx_ssrc: Option<u32>,
}

/// The lost packets a Generic NACK names (RFC 4585, 6.2.1): up to [`MAX_NACK_ENTRIES`]
/// (PID, BLP) entries, held inline (no allocation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NackList {
    entries: [(u16, u16); MAX_NACK_ENTRIES],
    len: usize,
}

impl NackList {
    /// The entries: packet id and the bitmask of the 16 packets after it.
    pub fn entries(&self) -> &[(u16, u16)] {
        &self.entries[..self.len]
    }

    /// Every sequence number named, in order.
    pub fn seqs(&self) -> impl Iterator<Item = u16> + '_ {
        self.entries().iter().flat_map(|&(pid, blp)| {
            std::iter::once(pid).chain(
                (0..16u16)
                    .filter(move |i| blp & (1 << i) != 0)
                    .map(move |i| pid.wrapping_add(i + 1)),
            )
        })
    }

    /// Packs sequence numbers (ascending, as unwrapped u16 arithmetic allows) into entries;
    /// returns how many of `seqs` fit.
    pub fn pack(seqs: &[u16]) -> (NackList, usize) {
        let mut l = NackList::default();
        let mut used = 0;
        for &s in seqs {
            if let Some(last) = l.len.checked_sub(1) {
                let (pid, blp) = &mut l.entries[last];
                let d = s.wrapping_sub(*pid);
                if (1..=16).contains(&d) {
                    *blp |= 1 << (d - 1);
                    used += 1;
                    continue;
                }
            }
            if l.len == MAX_NACK_ENTRIES {
                break;
            }
            l.entries[l.len] = (s, 0);
            l.len += 1;
            used += 1;
        }
        (l, used)
    }
}

/// Maximum substreams in one session description.
pub const MAX_SUBSTREAMS: usize = 32;

/// The session description: what the receiver needs to play the session's substreams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionDesc {
    /// Frames per second of every substream, in Hz.
    pub rate: u32,
    /// Sample format code (see `isostream_media::SampleFormat::code`).
    pub format: u8,
    /// Frames per packet.
    pub packet_frames: u16,
    /// Interleave depth D (1 = none).
    pub interleave: u8,
    /// Source packets per FEC block (0 = FEC off).
    pub fec_k: u8,
    /// Repair packets per FEC block.
    pub fec_m: u8,
    /// FEC blocks whose transmission is spread over one another (1 = none).
    pub spread: u8,
    /// Whether the source is live (audio produced while paused is dropped).
    pub live: bool,
    /// How the media payload is coded: [`CODEC_PCM`] (raw samples of `format`) or
    /// [`CODEC_OPUS`] (RFC 7587; `format` is then the decoded format, 16-bit).
    pub codec: u8,
    /// The substreams in output order.
    pub substreams: Vec<SubstreamDesc>,
}

/// Codec code of a description: raw PCM samples (L16/L24/F32) as its format says.
pub const CODEC_PCM: u8 = 0;
/// Codec code of a description: Opus (RFC 7587), one Opus packet per RTP packet, RTP
/// timestamps at 48 kHz.
pub const CODEC_OPUS: u8 = 1;

/// One parsed RTCP packet of a compound datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RtcpPacket {
    /// Sender report (report blocks, if any, are skipped).
    SenderReport(SenderReport),
    /// Receiver report from `ssrc`, with its first report block if any.
    ReceiverReport {
        /// Reporter's SSRC.
        ssrc: u32,
        /// First report block, if present.
        block: Option<ReportBlock>,
    },
    /// BYE from the first listed SSRC.
    Bye {
        /// The first SSRC leaving.
        ssrc: u32,
    },
    /// PAUSE request number `request` from `ssrc`.
    Pause {
        /// Requesting SSRC.
        ssrc: u32,
        /// Request number: increases with every new PAUSE or RESUME.
        request: u32,
    },
    /// RESUME request number `request` from `ssrc`.
    Resume {
        /// Requesting SSRC.
        ssrc: u32,
        /// Request number: increases with every new PAUSE or RESUME.
        request: u32,
    },
    /// Acknowledgement of request number `request`.
    Ack {
        /// Acknowledging SSRC.
        ssrc: u32,
        /// The acknowledged request number.
        request: u32,
    },
    /// A listener's subscription to a relay (APP `ISOS` SUBSCRIBE): serve me the stream
    /// at the address this came from.
    Subscribe {
        /// The listener's SSRC.
        ssrc: u32,
    },
    /// The session description, sent by the first substream's SSRC.
    Desc {
        /// Sender's SSRC.
        ssrc: u32,
        /// The description.
        desc: SessionDesc,
    },
    /// A Generic NACK (RFC 4585): `sender_ssrc` asks `media_ssrc` to send these packets
    /// again.
    Nack {
        /// The SSRC of the receiver asking.
        sender_ssrc: u32,
        /// The SSRC of the media stream the lost packets belong to.
        media_ssrc: u32,
        /// The lost packets.
        lost: NackList,
    },
    /// An extended report (RFC 3611) with a receiver reference time block: a receiver's
    /// wall clock, so that the sender's DLRR lets the receiver measure the round trip.
    ReceiverReferenceTime {
        /// The receiver's SSRC.
        ssrc: u32,
        /// Its NTP timestamp (64-bit).
        ntp: u64,
    },
    /// An extended report (RFC 3611) with a DLRR sub-block for receiver `ssrc`: the middle
    /// of its last reference time, and the delay since it arrived (1/65536 s).
    Dlrr {
        /// The sender of the report (the media SSRC it reports from).
        sender_ssrc: u32,
        /// The receiver the sub-block is for.
        ssrc: u32,
        /// Middle 32 bits of the NTP timestamp of its last RRTR.
        last_rr: u32,
        /// Delay since that RRTR arrived, in 1/65536 s.
        delay_since_last_rr: u32,
    },
    /// SDES, stock APP packets and unknown types: understood as "ignore".
    Other {
        /// The packet type.
        packet_type: u8,
    },
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Iterates over the packets of a compound RTCP datagram, parsing each.
///
/// Yields an error (and stops) at the first malformed packet; never panics.
pub fn parse_compound(d: &[u8]) -> impl Iterator<Item = Result<RtcpPacket, WireError>> + '_ {
    let mut off = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || off >= d.len() {
            return None;
        }
        let rest = &d[off..];
        match parse_one(rest) {
            Ok((p, len)) => {
                off += len;
                Some(Ok(p))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

fn parse_one(d: &[u8]) -> Result<(RtcpPacket, usize), WireError> {
    if d.len() < 4 {
        return Err(WireError::Truncated {
            needed: 4,
            got: d.len(),
        });
    }
    if d[0] >> 6 != 2 {
        return Err(WireError::BadVersion(d[0] >> 6));
    }
    let count = d[0] & 0x1f;
    let pt = d[1];
    let len = (u16::from_be_bytes([d[2], d[3]]) as usize + 1) * 4;
    if d.len() < len {
        return Err(WireError::Truncated {
            needed: len,
            got: d.len(),
        });
    }
    let body = &d[..len];
    let need = |n: usize| {
        if len < n {
            Err(WireError::Truncated {
                needed: n,
                got: len,
            })
        } else {
            Ok(())
        }
    };
    let p = match pt {
        PT_SR => {
            need(28)?;
            RtcpPacket::SenderReport(SenderReport {
                ssrc: be32(body, 4),
                ntp: ((be32(body, 8) as u64) << 32) | be32(body, 12) as u64,
                rtp_ts: be32(body, 16),
                packets: be32(body, 20),
                octets: be32(body, 24),
            })
        }
        PT_RR => {
            need(8)?;
            let block = if count >= 1 && len >= 32 {
                Some(parse_block(&body[8..32]))
            } else {
                None
            };
            RtcpPacket::ReceiverReport {
                ssrc: be32(body, 4),
                block,
            }
        }
        // a BYE listing no SSRC (RFC 3550 allows SC = 0) says nothing: ignore it cleanly
        PT_BYE if count == 0 => RtcpPacket::Other {
            packet_type: PT_BYE,
        },
        PT_BYE => {
            need(8)?;
            RtcpPacket::Bye {
                ssrc: be32(body, 4),
            }
        }
        // extended reports: the first block is read if it is an RRTR or a DLRR
        PT_XR if len >= 16 && (body[8] == XR_RRTR || body[8] == XR_DLRR) => {
            if body[8] == XR_RRTR {
                need(20)?;
                RtcpPacket::ReceiverReferenceTime {
                    ssrc: be32(body, 4),
                    ntp: ((be32(body, 12) as u64) << 32) | be32(body, 16) as u64,
                }
            } else {
                need(24)?;
                RtcpPacket::Dlrr {
                    sender_ssrc: be32(body, 4),
                    ssrc: be32(body, 12),
                    last_rr: be32(body, 16),
                    delay_since_last_rr: be32(body, 20),
                }
            }
        }
        PT_RTPFB if count == FMT_NACK => {
            need(16)?;
            let mut lost = NackList::default();
            for e in body[12..].chunks_exact(4).take(MAX_NACK_ENTRIES) {
                lost.entries[lost.len] = (
                    u16::from_be_bytes([e[0], e[1]]),
                    u16::from_be_bytes([e[2], e[3]]),
                );
                lost.len += 1;
            }
            RtcpPacket::Nack {
                sender_ssrc: be32(body, 4),
                media_ssrc: be32(body, 8),
                lost,
            }
        }
        PT_APP if len >= 12 && body[8..12] == APP_NAME => {
            parse_app(count, be32(body, 4), &body[12..])?
        }
        other => RtcpPacket::Other { packet_type: other },
    };
    Ok((p, len))
}

fn parse_block(b: &[u8]) -> ReportBlock {
    let lost = ((b[5] as i32) << 16 | (b[6] as i32) << 8 | b[7] as i32) << 8 >> 8;
    ReportBlock {
        ssrc: be32(b, 0),
        fraction_lost: b[4],
        cumulative_lost: lost,
        highest_seq: be32(b, 8),
        jitter: be32(b, 12),
        last_sr: be32(b, 16),
        delay_since_last_sr: be32(b, 20),
    }
}

fn parse_app(subtype: u8, ssrc: u32, data: &[u8]) -> Result<RtcpPacket, WireError> {
    let need = |n: usize| {
        if data.len() < n {
            Err(WireError::Truncated {
                needed: n,
                got: data.len(),
            })
        } else {
            Ok(())
        }
    };
    Ok(match subtype {
        APP_PAUSE | APP_RESUME | APP_ACK => {
            need(4)?;
            let request = be32(data, 0);
            match subtype {
                APP_PAUSE => RtcpPacket::Pause { ssrc, request },
                APP_RESUME => RtcpPacket::Resume { ssrc, request },
                _ => RtcpPacket::Ack { ssrc, request },
            }
        }
        APP_SUBSCRIBE => {
            need(4)?;
            RtcpPacket::Subscribe { ssrc }
        }
        APP_DESC => {
            need(16)?;
            let n = data[12] as usize;
            if n == 0 || n > MAX_SUBSTREAMS {
                return Err(WireError::BadField("substream count"));
            }
            need(16 + 12 * n)?;
            let mut substreams = (0..n)
                .map(|i| {
                    let e = &data[16 + 12 * i..];
                    SubstreamDesc {
                        ssrc: be32(e, 0),
                        ts_base: be32(e, 4),
                        channels: e[8],
                        rtx_ssrc: None,
                    }
                })
                .collect::<Vec<_>>();
            let rtx_at = 16 + 12 * n;
            if data[9] & DESC_RTX != 0 && data.len() >= rtx_at + 4 * n {
                for (i, s) in substreams.iter_mut().enumerate() {
                    s.rtx_ssrc = Some(be32(data, rtx_at + 4 * i));
                }
            }
            if substreams.iter().any(|s| s.channels == 0) {
                return Err(WireError::BadField("channels"));
            }
            let desc = SessionDesc {
                rate: be32(data, 0),
                format: data[4],
                interleave: data[5],
                fec_k: data[6],
                fec_m: data[7],
                spread: data[8],
                live: data[9] & DESC_LIVE != 0,
                codec: data[13],
                packet_frames: u16::from_be_bytes([data[10], data[11]]),
                substreams,
            };
            if desc.rate == 0 || desc.interleave == 0 || desc.packet_frames == 0 {
                return Err(WireError::BadField("session description"));
            }
            RtcpPacket::Desc { ssrc, desc }
        }
        other => RtcpPacket::Other {
            packet_type: 0xe0 | other,
        },
    })
}

fn header(out: &mut BytesMut, count: u8, pt: u8, words_after_header: usize) {
    out.put_u8(0x80 | (count & 0x1f));
    out.put_u8(pt);
    out.put_u16(words_after_header as u16);
}

/// Appends a sender report with no report blocks (28 bytes).
pub fn write_sender_report(out: &mut BytesMut, sr: &SenderReport) {
    header(out, 0, PT_SR, 6);
    out.put_u32(sr.ssrc);
    out.put_u64(sr.ntp);
    out.put_u32(sr.rtp_ts);
    out.put_u32(sr.packets);
    out.put_u32(sr.octets);
}

/// Appends a receiver report from `ssrc` with the given report blocks (at most 31).
pub fn write_receiver_report(out: &mut BytesMut, ssrc: u32, blocks: &[ReportBlock]) {
    let blocks = &blocks[..blocks.len().min(31)];
    header(out, blocks.len() as u8, PT_RR, 1 + 6 * blocks.len());
    out.put_u32(ssrc);
    for b in blocks {
        out.put_u32(b.ssrc);
        out.put_u8(b.fraction_lost);
        let lost = b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32 & 0xff_ffff;
        out.put_u8((lost >> 16) as u8);
        out.put_u16(lost as u16);
        out.put_u32(b.highest_seq);
        out.put_u32(b.jitter);
        out.put_u32(b.last_sr);
        out.put_u32(b.delay_since_last_sr);
    }
}

/// Appends an SDES packet with one chunk holding the CNAME item (RFC 3550, section 6.5.1).
pub fn write_sdes_cname(out: &mut BytesMut, ssrc: u32, cname: &str) {
    let name = &cname.as_bytes()[..cname.len().min(255)];
    // ssrc + type + len + text + at least one null, padded to 32 bits
    let chunk = 4 + 2 + name.len() + 1;
    let padded = chunk.div_ceil(4) * 4;
    header(out, 1, PT_SDES, padded / 4);
    out.put_u32(ssrc);
    out.put_u8(1); // CNAME
    out.put_u8(name.len() as u8);
    out.put_slice(name);
    out.put_bytes(0, padded - (4 + 2 + name.len()));
}

/// Appends a BYE for `ssrc`.
pub fn write_bye(out: &mut BytesMut, ssrc: u32) {
    header(out, 1, PT_BYE, 1);
    out.put_u32(ssrc);
}

/// Whether PAUSE/RESUME request number `a` is newer than `b`: serial-number arithmetic
/// (RFC 1982), so numbering wraps and no number, however large, is the last one.
pub fn is_newer_request(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// Appends an `ISOS` APP packet carrying PAUSE, RESUME or ACK with its request number.
pub fn write_flow(out: &mut BytesMut, subtype: u8, ssrc: u32, request: u32) {
    header(out, subtype, PT_APP, 3);
    out.put_u32(ssrc);
    out.put_slice(&APP_NAME);
    out.put_u32(request);
}

/// Appends an `ISOS` APP SUBSCRIBE packet from listener `ssrc` (16 bytes; the last word is
/// reserved, 0).
pub fn write_subscribe(out: &mut BytesMut, ssrc: u32) {
    header(out, APP_SUBSCRIBE, PT_APP, 3);
    out.put_u32(ssrc);
    out.put_slice(&APP_NAME);
    out.put_u32(0);
}

/// Appends an `ISOS` APP packet carrying the session description.
pub fn write_desc(out: &mut BytesMut, ssrc: u32, desc: &SessionDesc) {
    let n = desc.substreams.len().min(MAX_SUBSTREAMS);
    let rtx = desc.substreams[..n].iter().all(|s| s.rtx_ssrc.is_some()) && n > 0;
    header(
        out,
        APP_DESC,
        PT_APP,
        2 + 4 + 3 * n + if rtx { n } else { 0 },
    );
    out.put_u32(ssrc);
    out.put_slice(&APP_NAME);
    out.put_u32(desc.rate);
    out.put_u8(desc.format);
    out.put_u8(desc.interleave);
    out.put_u8(desc.fec_k);
    out.put_u8(desc.fec_m);
    out.put_u8(desc.spread);
    out.put_u8(if desc.live { DESC_LIVE } else { 0 } | if rtx { DESC_RTX } else { 0 });
    out.put_u16(desc.packet_frames);
    out.put_u8(n as u8);
    out.put_u8(desc.codec);
    out.put_bytes(0, 2);
    for s in &desc.substreams[..n] {
        out.put_u32(s.ssrc);
        out.put_u32(s.ts_base);
        out.put_u8(s.channels);
        out.put_bytes(0, 3);
    }
    if rtx {
        for s in &desc.substreams[..n] {
            out.put_u32(s.rtx_ssrc.unwrap_or(0));
        }
    }
}

/// Appends an extended report (RFC 3611) from receiver `ssrc` with a receiver reference time
/// block holding `ntp` (its wall clock, 64-bit NTP).
pub fn write_rrtr(out: &mut BytesMut, ssrc: u32, ntp: u64) {
    header(out, 0, PT_XR, 4);
    out.put_u32(ssrc);
    out.put_u8(XR_RRTR);
    out.put_u8(0);
    out.put_u16(2);
    out.put_u64(ntp);
}

/// Appends an extended report (RFC 3611) from sender `ssrc` with a DLRR block for receiver
/// `receiver`: the middle of its last reference time and the delay since (1/65536 s).
pub fn write_dlrr(out: &mut BytesMut, ssrc: u32, receiver: u32, last_rr: u32, delay: u32) {
    header(out, 0, PT_XR, 5);
    out.put_u32(ssrc);
    out.put_u8(XR_DLRR);
    out.put_u8(0);
    out.put_u16(3);
    out.put_u32(receiver);
    out.put_u32(last_rr);
    out.put_u32(delay);
}

/// The round trip from a DLRR (or an RR's LSR/DLSR) answered at `now_ntp` (64-bit NTP):
/// now - last - delay (RFC 3550 6.4.1, RFC 3611 4.5), `None` if there was no reference yet
/// or the result is absurd (over 30 s).
pub fn round_trip(now_ntp: u64, last: u32, delay: u32) -> Option<std::time::Duration> {
    if last == 0 {
        return None;
    }
    let units = ((now_ntp >> 16) as u32)
        .wrapping_sub(last)
        .wrapping_sub(delay);
    (units < 65_536 * 30)
        .then(|| std::time::Duration::from_nanos(units as u64 * 1_000_000_000 / 65_536))
}

/// Appends a Generic NACK (RFC 4585, 6.2.1) from `sender_ssrc` for packets of `media_ssrc`.
pub fn write_nack(out: &mut BytesMut, sender_ssrc: u32, media_ssrc: u32, lost: &NackList) {
    header(out, FMT_NACK, PT_RTPFB, 2 + lost.len);
    out.put_u32(sender_ssrc);
    out.put_u32(media_ssrc);
    for &(pid, blp) in lost.entries() {
        out.put_u16(pid);
        out.put_u16(blp);
    }
}

/// Converts nanoseconds since the Unix epoch to the 64-bit NTP format.
pub fn ntp_from_unix_nanos(nanos: u128) -> u64 {
    const UNIX_TO_NTP_SECS: u128 = 2_208_988_800;
    let secs = nanos / 1_000_000_000 + UNIX_TO_NTP_SECS;
    let frac = ((nanos % 1_000_000_000) << 32) / 1_000_000_000;
    ((secs as u64) << 32) | frac as u64
}

/// Converts a 64-bit NTP timestamp to nanoseconds since the Unix epoch.
pub fn unix_nanos_from_ntp(ntp: u64) -> i128 {
    const UNIX_TO_NTP_SECS: i128 = 2_208_988_800;
    let secs = (ntp >> 32) as i128 - UNIX_TO_NTP_SECS;
    let frac = ((ntp & 0xffff_ffff) as i128 * 1_000_000_000) >> 32;
    secs * 1_000_000_000 + frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nack_names_its_packets_and_round_trips() {
        // 65535 wraps to 0: one entry covers both; 40 is too far and starts a new entry
        let (l, used) = NackList::pack(&[65_534, 65_535, 0, 3, 40]);
        assert_eq!(used, 5);
        assert_eq!(l.entries(), &[(65_534, 0b1_0011), (40, 0)]);
        assert_eq!(l.seqs().collect::<Vec<_>>(), vec![65_534, 65_535, 0, 3, 40]);
        let mut b = BytesMut::new();
        write_nack(&mut b, 7, 9, &l);
        assert_eq!(b.len(), 12 + 4 * 2);
        let p: Vec<_> = parse_compound(&b).collect();
        assert_eq!(
            p,
            vec![Ok(RtcpPacket::Nack {
                sender_ssrc: 7,
                media_ssrc: 9,
                lost: l
            })]
        );
    }

    #[test]
    fn extended_reports_round_trip_and_give_the_rtt() {
        let mut b = BytesMut::new();
        write_rrtr(&mut b, 7, 0x0001_0002_0003_0004);
        write_dlrr(&mut b, 9, 7, 0x0002_0003, 65_536 / 10);
        let p: Vec<_> = parse_compound(&b).collect();
        assert_eq!(
            p,
            vec![
                Ok(RtcpPacket::ReceiverReferenceTime {
                    ssrc: 7,
                    ntp: 0x0001_0002_0003_0004
                }),
                Ok(RtcpPacket::Dlrr {
                    sender_ssrc: 9,
                    ssrc: 7,
                    last_rr: 0x0002_0003,
                    delay_since_last_rr: 65_536 / 10
                })
            ]
        );
        // the reference went out at 0x0002.0003, was held 100 ms, and the answer came
        // 150 ms after it left: a 50 ms round trip
        let now = (0x0002_0003u64 + 65_536 * 15 / 100) << 16;
        let rtt = round_trip(now, 0x0002_0003, 65_536 / 10).unwrap();
        assert!((rtt.as_secs_f64() - 0.05).abs() < 1e-3, "{rtt:?}");
        assert_eq!(round_trip(now, 0, 0), None);
    }

    #[test]
    fn a_nack_holds_at_most_its_entries() {
        let seqs: Vec<u16> = (0..40).map(|i| i * 100).collect();
        let (l, used) = NackList::pack(&seqs);
        assert_eq!(used, MAX_NACK_ENTRIES);
        assert_eq!(l.entries().len(), MAX_NACK_ENTRIES);
    }

    #[test]
    fn a_description_carries_retransmission_ssrcs_and_old_readers_skip_them() {
        let mut desc = SessionDesc {
            codec: 0,
            rate: 48_000,
            format: 1,
            packet_frames: 240,
            interleave: 1,
            fec_k: 8,
            fec_m: 2,
            spread: 1,
            live: true,
            substreams: vec![
                SubstreamDesc {
                    ssrc: 1,
                    ts_base: 2,
                    channels: 2,
                    rtx_ssrc: Some(11),
                },
                SubstreamDesc {
                    ssrc: 3,
                    ts_base: 4,
                    channels: 1,
                    rtx_ssrc: Some(33),
                },
            ],
        };
        let mut b = BytesMut::new();
        write_desc(&mut b, 1, &desc);
        let p: Vec<_> = parse_compound(&b).collect();
        assert_eq!(
            p,
            vec![Ok(RtcpPacket::Desc {
                ssrc: 1,
                desc: desc.clone()
            })]
        );
        // without retransmission the layout is the first wave's, byte for byte
        for s in &mut desc.substreams {
            s.rtx_ssrc = None;
        }
        let mut plain = BytesMut::new();
        write_desc(&mut plain, 1, &desc);
        assert_eq!(plain.len() + 8, b.len());
        assert_eq!(plain[12 + 9], 1, "flags: live only");
        assert_eq!(
            plain[12 + 13],
            CODEC_PCM,
            "byte 25: the codec, 0 for PCM as before"
        );
        // the codec byte of an Opus session (offset 25) round-trips
        desc.codec = CODEC_OPUS;
        let mut opus = BytesMut::new();
        write_desc(&mut opus, 1, &desc);
        assert_eq!(opus[25], CODEC_OPUS);
        assert_eq!(opus.len(), plain.len());
        match parse_compound(&opus).next() {
            Some(Ok(RtcpPacket::Desc { desc: d, .. })) => assert_eq!(d, desc),
            other => panic!("{other:?}"),
        };
    }

    fn all(d: &[u8]) -> Vec<RtcpPacket> {
        parse_compound(d).map(|p| p.unwrap()).collect()
    }

    #[test]
    fn compound_sender_report_sdes_desc_round_trips() {
        let sr = SenderReport {
            ssrc: 7,
            ntp: 0x0102_0304_0506_0708,
            rtp_ts: 99,
            packets: 3,
            octets: 4,
        };
        let desc = SessionDesc {
            codec: 0,
            rate: 48_000,
            format: 0,
            packet_frames: 240,
            interleave: 4,
            fec_k: 8,
            fec_m: 2,
            spread: 2,
            live: true,
            substreams: vec![
                SubstreamDesc {
                    ssrc: 7,
                    ts_base: 1000,
                    channels: 1,
                    rtx_ssrc: None,
                },
                SubstreamDesc {
                    ssrc: 8,
                    ts_base: 5,
                    channels: 2,
                    rtx_ssrc: None,
                },
            ],
        };
        let mut b = BytesMut::new();
        write_sender_report(&mut b, &sr);
        write_sdes_cname(&mut b, 7, "isostream@host");
        write_desc(&mut b, 7, &desc);
        write_bye(&mut b, 7);
        let got = all(&b);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], RtcpPacket::SenderReport(sr));
        assert_eq!(
            got[1],
            RtcpPacket::Other {
                packet_type: PT_SDES
            }
        );
        assert_eq!(got[2], RtcpPacket::Desc { ssrc: 7, desc });
        assert_eq!(got[3], RtcpPacket::Bye { ssrc: 7 });
    }

    #[test]
    fn a_subscription_is_16_bytes_and_round_trips() {
        let mut b = BytesMut::new();
        write_subscribe(&mut b, 0x0bad_cafe);
        assert_eq!(
            &b[..],
            &[0x84, 0xcc, 0x00, 0x03, 0x0b, 0xad, 0xca, 0xfe, b'I', b'S', b'O', b'S', 0, 0, 0, 0]
        );
        assert_eq!(all(&b), vec![RtcpPacket::Subscribe { ssrc: 0x0bad_cafe }]);
        // fewer than 4 bytes after the name is malformed
        let short = [0x84, 0xcc, 0x00, 0x02, 0, 0, 0, 1, b'I', b'S', b'O', b'S'];
        assert!(parse_compound(&short).next().unwrap().is_err());
    }

    #[test]
    fn flow_control_messages_round_trip() {
        let mut b = BytesMut::new();
        write_receiver_report(&mut b, 9, &[]);
        write_flow(&mut b, APP_PAUSE, 9, 41);
        write_flow(&mut b, APP_RESUME, 9, 42);
        write_flow(&mut b, APP_ACK, 7, 42);
        assert_eq!(
            all(&b),
            vec![
                RtcpPacket::ReceiverReport {
                    ssrc: 9,
                    block: None
                },
                RtcpPacket::Pause {
                    ssrc: 9,
                    request: 41
                },
                RtcpPacket::Resume {
                    ssrc: 9,
                    request: 42
                },
                RtcpPacket::Ack {
                    ssrc: 7,
                    request: 42
                },
            ]
        );
    }

    #[test]
    fn report_block_with_negative_loss_round_trips() {
        let block = ReportBlock {
            ssrc: 5,
            fraction_lost: 12,
            cumulative_lost: -3,
            highest_seq: 70_000,
            jitter: 17,
            last_sr: 1,
            delay_since_last_sr: 2,
        };
        let mut b = BytesMut::new();
        write_receiver_report(&mut b, 9, &[block]);
        assert_eq!(
            all(&b),
            vec![RtcpPacket::ReceiverReport {
                ssrc: 9,
                block: Some(block)
            }]
        );
    }

    #[test]
    fn bye_without_ssrcs_is_ignored_cleanly() {
        // SC = 0, length 0: a 4-byte BYE (RFC 3550, section 6.6), alone and in a compound
        let empty_bye = [0x80, PT_BYE, 0x00, 0x00];
        assert_eq!(
            all(&empty_bye),
            vec![RtcpPacket::Other {
                packet_type: PT_BYE
            }]
        );
        let mut b = BytesMut::new();
        write_receiver_report(&mut b, 9, &[]);
        b.extend_from_slice(&empty_bye);
        write_bye(&mut b, 7);
        assert_eq!(
            all(&b),
            vec![
                RtcpPacket::ReceiverReport {
                    ssrc: 9,
                    block: None
                },
                RtcpPacket::Other {
                    packet_type: PT_BYE
                },
                RtcpPacket::Bye { ssrc: 7 },
            ]
        );
        // SC = 0 followed by a reason: still nothing to act on
        let with_reason = [0x80, PT_BYE, 0x00, 0x01, 0x03, b'e', b'n', b'd'];
        assert_eq!(
            all(&with_reason),
            vec![RtcpPacket::Other {
                packet_type: PT_BYE
            }]
        );
    }

    #[test]
    fn ntp_round_trips_to_unix_nanos_within_a_nanosecond() {
        for n in [0u128, 1, 999_999_999, 1_700_000_000_123_456_789] {
            let back = unix_nanos_from_ntp(ntp_from_unix_nanos(n));
            assert!((back - n as i128).abs() <= 1, "{n} -> {back}");
        }
    }

    #[test]
    fn ntp_conversion_of_the_unix_epoch() {
        assert_eq!(ntp_from_unix_nanos(0) >> 32, 2_208_988_800);
        assert_eq!(ntp_from_unix_nanos(500_000_000) & 0xffff_ffff, 1 << 31);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_without_panic(d in proptest::collection::vec(proptest::num::u8::ANY, 0..128)) {
            for p in parse_compound(&d) { let _ = p; }
        }

        #[test]
        fn truncated_valid_packets_error_cleanly(cut in 0usize..60) {
            let mut b = BytesMut::new();
            write_flow(&mut b, APP_PAUSE, 9, 41);
            write_sender_report(&mut b, &SenderReport { ssrc: 1, ntp: 2, rtp_ts: 3, packets: 4, octets: 5 });
            let cut = cut.min(b.len());
            for p in parse_compound(&b[..cut]) { let _ = p; }
        }
    }

    #[test]
    fn request_numbers_compare_as_serial_numbers() {
        assert!(is_newer_request(2, 1));
        assert!(!is_newer_request(1, 2));
        assert!(!is_newer_request(5, 5));
        // a huge number is not the last: numbering wraps past it
        assert!(is_newer_request(0, u32::MAX));
        assert!(is_newer_request(u32::MAX, u32::MAX - 1));
        assert!(!is_newer_request(u32::MAX, 0));
        // half the space away is old, not new
        assert!(!is_newer_request(1 << 31, 0));
        assert!(is_newer_request((1 << 31) - 1, 0));
    }
}
