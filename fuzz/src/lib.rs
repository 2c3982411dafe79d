//! Pieces the structured fuzz targets build datagrams from: `arbitrary` chooses the fields
//! of RTP media, repair, retransmission and RTCP packets (most of them valid-looking, with
//! SSRCs the session knows), or raw bytes; the builders here lay them out on the wire as
//! docs/PROTOCOL.md says, without the validation of the real writers, so inconsistent
//! fields reach the parsers and the sessions.

use arbitrary::Arbitrary;
use bytes::BytesMut;
use isostream_transport::rtcp::{self, NackList, ReportBlock, SenderReport, SessionDesc};
use isostream_transport::rtcp::{SubstreamDesc, APP_ACK, APP_PAUSE, APP_RESUME};
use isostream_transport::rtp::PT_RTX;
use isostream_transport::time::Instant;

/// The longest datagram a piece builds, in bytes (a UDP payload).
pub const MAX_DATAGRAM: usize = 65_507;

/// An SSRC: one the session knows (by index into its list), or any.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Ssrc {
    /// The `i`-th known SSRC (modulo the list), or any if the list is empty.
    Known(u8),
    /// Any SSRC.
    Any(u32),
}

impl Ssrc {
    /// The SSRC, with `known` the session's SSRCs.
    pub fn pick(self, known: &[u32]) -> u32 {
        match self {
            Ssrc::Known(i) if !known.is_empty() => known[i as usize % known.len()],
            Ssrc::Known(i) => u32::from(i),
            Ssrc::Any(x) => x,
        }
    }
}

/// A payload: bytes as given, or `len` bytes of a pattern (long payloads from a short input).
#[derive(Arbitrary, Debug, Clone)]
pub enum Payload {
    /// These bytes.
    Bytes(Vec<u8>),
    /// `len` bytes counting up from `seed`.
    Pattern {
        /// Length in bytes.
        len: u16,
        /// First byte.
        seed: u8,
    },
}

impl Payload {
    /// The bytes.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Payload::Bytes(b) => b.clone(),
            Payload::Pattern { len, seed } => (0..*len as usize)
                .map(|i| seed.wrapping_add(i as u8))
                .collect(),
        }
    }
}

/// One RTCP packet of a compound datagram.
#[derive(Arbitrary, Debug, Clone)]
pub enum RtcpPiece {
    /// A sender report.
    Sr {
        /// Its SSRC.
        ssrc: Ssrc,
        /// NTP time.
        ntp: u64,
        /// RTP timestamp.
        rtp_ts: u32,
    },
    /// A receiver report with up to 31 report blocks.
    Rr {
        /// The reporter.
        ssrc: Ssrc,
        /// The blocks: (SSRC, fraction lost, cumulative lost, highest seq, jitter, LSR, DLSR).
        blocks: Vec<(Ssrc, u8, i32, u32, u32, u32, u32)>,
    },
    /// SDES with one CNAME.
    Sdes {
        /// Its SSRC.
        ssrc: Ssrc,
        /// The CNAME.
        cname: String,
    },
    /// BYE.
    Bye {
        /// Who leaves.
        ssrc: Ssrc,
    },
    /// PAUSE, RESUME or ACK (`kind` % 3).
    Flow {
        /// Which.
        kind: u8,
        /// Its SSRC.
        ssrc: Ssrc,
        /// The request number.
        request: u32,
    },
    /// A session description.
    Desc {
        /// The SSRC it is sent with.
        ssrc: Ssrc,
        /// Rate in Hz.
        rate: u32,
        /// Format code.
        format: u8,
        /// Interleave depth.
        interleave: u8,
        /// FEC k.
        fec_k: u8,
        /// FEC m.
        fec_m: u8,
        /// Spread.
        spread: u8,
        /// Live flag.
        live: bool,
        /// Frames per packet.
        packet_frames: u16,
        /// Substreams: (SSRC, ts_base, channels, RTX SSRC).
        substreams: Vec<(Ssrc, u32, u8, Option<Ssrc>)>,
    },
    /// A Generic NACK for these sequence numbers.
    Nack {
        /// Who asks.
        sender: Ssrc,
        /// For which media stream.
        media: Ssrc,
        /// The lost packets.
        seqs: Vec<u16>,
    },
    /// Any bytes (an unknown packet, a truncated one, garbage after the valid ones).
    Raw(Vec<u8>),
}

impl RtcpPiece {
    /// Appends the packet to `out`.
    pub fn write(&self, out: &mut BytesMut, known: &[u32]) {
        match self {
            RtcpPiece::Sr { ssrc, ntp, rtp_ts } => rtcp::write_sender_report(
                out,
                &SenderReport {
                    ssrc: ssrc.pick(known),
                    ntp: *ntp,
                    rtp_ts: *rtp_ts,
                    packets: 0,
                    octets: 0,
                },
            ),
            RtcpPiece::Rr { ssrc, blocks } => {
                let b: Vec<ReportBlock> = blocks
                    .iter()
                    .take(31)
                    .map(
                        |&(s, fraction_lost, lost, highest_seq, jitter, lsr, dlsr)| ReportBlock {
                            ssrc: s.pick(known),
                            fraction_lost,
                            cumulative_lost: lost.clamp(-(1 << 23), (1 << 23) - 1),
                            highest_seq,
                            jitter,
                            last_sr: lsr,
                            delay_since_last_sr: dlsr,
                        },
                    )
                    .collect();
                rtcp::write_receiver_report(out, ssrc.pick(known), &b);
            }
            RtcpPiece::Sdes { ssrc, cname } => {
                let mut c = cname.clone();
                while c.len() > 255 {
                    c.pop();
                }
                rtcp::write_sdes_cname(out, ssrc.pick(known), &c);
            }
            RtcpPiece::Bye { ssrc } => rtcp::write_bye(out, ssrc.pick(known)),
            RtcpPiece::Flow {
                kind,
                ssrc,
                request,
            } => {
                let sub = [APP_PAUSE, APP_RESUME, APP_ACK][*kind as usize % 3];
                rtcp::write_flow(out, sub, ssrc.pick(known), *request);
            }
            RtcpPiece::Desc {
                ssrc,
                rate,
                format,
                interleave,
                fec_k,
                fec_m,
                spread,
                live,
                packet_frames,
                substreams,
            } => {
                let desc = SessionDesc {
                    codec: 0,
                    rate: *rate,
                    format: *format,
                    packet_frames: *packet_frames,
                    interleave: *interleave,
                    fec_k: *fec_k,
                    fec_m: *fec_m,
                    spread: *spread,
                    live: *live,
                    substreams: substreams
                        .iter()
                        .take(40)
                        .map(|&(s, ts_base, channels, rtx)| SubstreamDesc {
                            ssrc: s.pick(known),
                            ts_base,
                            channels,
                            rtx_ssrc: rtx.map(|r| r.pick(known)),
                        })
                        .collect(),
                };
                rtcp::write_desc(out, ssrc.pick(known), &desc);
            }
            RtcpPiece::Nack {
                sender,
                media,
                seqs,
            } => {
                let (list, _) = NackList::pack(seqs);
                rtcp::write_nack(out, sender.pick(known), media.pick(known), &list);
            }
            RtcpPiece::Raw(b) => out.extend_from_slice(b),
        }
    }
}

/// One datagram.
#[derive(Arbitrary, Debug, Clone)]
pub enum Datagram {
    /// An RTP media packet.
    Media {
        /// Its SSRC.
        ssrc: Ssrc,
        /// Payload type (7 bits).
        pt: u8,
        /// Marker bit.
        marker: bool,
        /// Sequence number.
        seq: u16,
        /// Timestamp.
        ts: u32,
        /// CSRCs (up to 15).
        csrcs: Vec<u32>,
        /// A header extension: profile and words.
        ext: Option<(u16, Vec<u32>)>,
        /// Padding: the count byte (0 or more than the payload is invalid).
        padding: Option<u8>,
        /// An interleave header in front of the samples: (depth, index, group frames).
        interleave: Option<(u8, u8, u16)>,
        /// The samples.
        payload: Payload,
    },
    /// A repair packet.
    Repair {
        /// The protected stream.
        ssrc: Ssrc,
        /// The repair packet's own sequence number.
        seq: u16,
        /// Timestamp of the block.
        ts: u32,
        /// First source sequence number of the block.
        base: u16,
        /// k.
        k: u8,
        /// m.
        m: u8,
        /// Repair index.
        index: u8,
        /// The shard (its length is written as L unless `wrong_len` is set).
        shard: Payload,
        /// A shard length field other than the shard's.
        wrong_len: Option<u16>,
    },
    /// A retransmission (RFC 4588) of `osn` on the RTX SSRC `ssrc`.
    Rtx {
        /// The RTX SSRC.
        ssrc: Ssrc,
        /// Its own sequence number.
        seq: u16,
        /// Timestamp.
        ts: u32,
        /// The original sequence number.
        osn: u16,
        /// The original payload.
        payload: Payload,
    },
    /// An RTCP compound packet.
    Rtcp(Vec<RtcpPiece>),
    /// Any bytes.
    Raw(Vec<u8>),
}

impl Datagram {
    /// The datagram's bytes, with `known` the SSRCs the session knows.
    pub fn bytes(&self, known: &[u32]) -> Vec<u8> {
        let mut d = match self {
            Datagram::Media {
                ssrc,
                pt,
                marker,
                seq,
                ts,
                csrcs,
                ext,
                padding,
                interleave,
                payload,
            } => {
                let csrcs = &csrcs[..csrcs.len().min(15)];
                let mut b0 = 0x80 | csrcs.len() as u8;
                if ext.is_some() {
                    b0 |= 0x10;
                }
                if padding.is_some() {
                    b0 |= 0x20;
                }
                let mut d = vec![b0, (u8::from(*marker) << 7) | (pt & 0x7f)];
                d.extend_from_slice(&seq.to_be_bytes());
                d.extend_from_slice(&ts.to_be_bytes());
                d.extend_from_slice(&ssrc.pick(known).to_be_bytes());
                for c in csrcs {
                    d.extend_from_slice(&c.to_be_bytes());
                }
                if let Some((profile, words)) = ext {
                    let words = &words[..words.len().min(64)];
                    d.extend_from_slice(&profile.to_be_bytes());
                    d.extend_from_slice(&(words.len() as u16).to_be_bytes());
                    for w in words {
                        d.extend_from_slice(&w.to_be_bytes());
                    }
                }
                if let Some((depth, index, g)) = interleave {
                    d.extend_from_slice(&[*depth, *index]);
                    d.extend_from_slice(&g.to_be_bytes());
                }
                d.extend_from_slice(&payload.bytes());
                if let Some(p) = padding {
                    d.push(*p);
                }
                d
            }
            Datagram::Repair {
                ssrc,
                seq,
                ts,
                base,
                k,
                m,
                index,
                shard,
                wrong_len,
            } => {
                let shard = shard.bytes();
                let mut d = vec![0x80, 110];
                d.extend_from_slice(&seq.to_be_bytes());
                d.extend_from_slice(&ts.to_be_bytes());
                d.extend_from_slice(&ssrc.pick(known).to_be_bytes());
                d.extend_from_slice(&base.to_be_bytes());
                d.extend_from_slice(&[*k, *m, *index, 0]);
                let l = wrong_len.unwrap_or(shard.len().min(u16::MAX as usize) as u16);
                d.extend_from_slice(&l.to_be_bytes());
                d.extend_from_slice(&shard);
                d
            }
            Datagram::Rtx {
                ssrc,
                seq,
                ts,
                osn,
                payload,
            } => {
                let mut d = vec![0x80, PT_RTX];
                d.extend_from_slice(&seq.to_be_bytes());
                d.extend_from_slice(&ts.to_be_bytes());
                d.extend_from_slice(&ssrc.pick(known).to_be_bytes());
                d.extend_from_slice(&osn.to_be_bytes());
                d.extend_from_slice(&payload.bytes());
                d
            }
            Datagram::Rtcp(pieces) => {
                let mut out = BytesMut::new();
                for p in pieces.iter().take(16) {
                    p.write(&mut out, known);
                }
                out.to_vec()
            }
            Datagram::Raw(b) => b.clone(),
        };
        d.truncate(MAX_DATAGRAM);
        d
    }
}

/// A change to a real datagram on its way: the network's (loss, duplication, corruption).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Fate {
    /// Delivered as sent.
    Deliver,
    /// Lost.
    Drop,
    /// Delivered twice.
    Duplicate,
    /// Byte `at` (modulo the length) xor `x`.
    Flip {
        /// Where.
        at: u16,
        /// What.
        x: u8,
    },
    /// Cut to `len` bytes.
    Truncate {
        /// The length kept.
        len: u16,
    },
    /// Held back and delivered after the next one.
    Reorder,
}

/// Applies `fate` to `d`; returns the datagrams to deliver now (`held`: one held back by
/// [`Fate::Reorder`], delivered after the next).
pub fn apply_fate(fate: Fate, d: Vec<u8>, held: &mut Option<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut out = match fate {
        Fate::Deliver => vec![d],
        Fate::Drop => vec![],
        Fate::Duplicate => vec![d.clone(), d],
        Fate::Flip { at, x } => {
            let mut d = d;
            if !d.is_empty() {
                let i = at as usize % d.len();
                d[i] ^= x;
            }
            vec![d]
        }
        Fate::Truncate { len } => {
            let mut d = d;
            d.truncate(len as usize);
            vec![d]
        }
        Fate::Reorder => {
            let before = held.replace(d);
            return before.into_iter().collect();
        }
    };
    if let Some(h) = held.take() {
        out.push(h);
    }
    out
}

/// Instants from milliseconds.
pub fn ms(t: u64) -> Instant {
    Instant::from_nanos(t.saturating_mul(1_000_000))
}

/// Deterministic audio bytes (every bit pattern, floats' NaNs included).
pub fn audio(n: usize, seed: u64) -> Vec<u8> {
    // xorshift64, eight bytes per step (the session targets ask for a lot of audio)
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// A sender configuration chosen by the fuzzer, within what `SenderConfig::validate`
/// accepts most of the time (what it refuses is skipped).
#[derive(Arbitrary, Debug, Clone)]
pub struct SenderSetup {
    /// Index into a list of rates.
    pub rate: u8,
    /// Channels, 1 to 8.
    pub channels: u8,
    /// Sample format code (modulo 3).
    pub format: u8,
    /// Packet duration: index into a list.
    pub packet: u8,
    /// FEC (k, m), each 1 to 16.
    pub fec: Option<(u8, u8)>,
    /// Interleave depth, 1 to 8.
    pub interleave: u8,
    /// Spread, 1 to 4.
    pub spread: u8,
    /// A live source.
    pub live: bool,
    /// One substream per channel.
    pub per_channel: bool,
    /// Speed: index into a list (the last is `max`).
    pub speed: u8,
    /// Answer NACKs.
    pub rtx: bool,
    /// Seed of SSRCs and first numbers.
    pub seed: u64,
    /// The first sequence number, this many packets before the wrap at 65535.
    pub first_seq: Option<u8>,
    /// The first timestamp, this many 5 ms steps at 48 kHz before the 32-bit wrap.
    pub first_ts: Option<u8>,
}

/// Where a test's sender is, as the receiver sees it.
pub const SENDER_ADDR: std::net::SocketAddr = std::net::SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    5004,
);
/// Where a test's receiver is, as the sender sees it.
pub const RECEIVER_ADDR: std::net::SocketAddr = std::net::SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)),
    5004,
);
/// A third party.
pub const STRANGER_ADDR: std::net::SocketAddr = std::net::SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 3)),
    6000,
);

impl SenderSetup {
    /// The configuration, with `speeds` the speeds to choose from.
    pub fn config(&self, speeds: &[isostream_sender::Speed]) -> isostream_sender::SenderConfig {
        use isostream_media::{AudioSpec, SampleFormat};
        const RATES: [u32; 7] = [48_000, 44_100, 8_000, 16_000, 96_000, 1_000, 768_000];
        const PACKET_MS: [f64; 6] = [5.0, 2.5, 1.0, 10.0, 20.0, 0.5];
        let rate = RATES[self.rate as usize % RATES.len()];
        let channels = u16::from(self.channels % 8 + 1);
        let format = match self.format % 3 {
            0 => SampleFormat::S16,
            1 => SampleFormat::S24,
            _ => SampleFormat::F32,
        };
        let spec = AudioSpec {
            rate,
            channels,
            format,
        };
        let mut cfg = isostream_sender::SenderConfig::new(spec);
        let ms = PACKET_MS[self.packet as usize % PACKET_MS.len()];
        cfg.packet_frames = ((rate as f64 * ms / 1000.0).round() as u32).max(1);
        cfg.fec = self.fec.and_then(|(k, m)| {
            isostream_transport::fec::FecParams::new(k % 16 + 1, m % 16 + 1).ok()
        });
        cfg.interleave = self.interleave % 8 + 1;
        cfg.spread = if cfg.fec.is_some() {
            self.spread % 4 + 1
        } else {
            1
        };
        cfg.live = self.live;
        if self.per_channel {
            cfg.substream_channels = vec![1; channels as usize];
        }
        cfg.speed = speeds[self.speed as usize % speeds.len()];
        if !self.rtx {
            cfg.retransmission = None;
        }
        cfg.seed = self.seed;
        cfg.first_seq = self.first_seq.map(|x| u16::MAX - u16::from(x));
        cfg.first_timestamp = self.first_ts.map(|x| u32::MAX - 240 * u32::from(x));
        cfg.receiver_addr = RECEIVER_ADDR;
        cfg
    }
}

/// Drains a session's outputs: its datagrams and the deadline it asks for. Panics if it
/// never comes to the deadline (a session that always has another output would hang its
/// driver).
pub fn drain<E>(
    mut poll: impl FnMut() -> isostream_transport::sans_io::Output<E>,
    sent: &mut Vec<isostream_transport::sans_io::Transmit>,
    events: &mut Vec<E>,
) -> Option<Instant> {
    use isostream_transport::sans_io::Output;
    for _ in 0..1_000_000 {
        match poll() {
            Output::Transmit(t) => sent.push(t),
            Output::Event(e) => events.push(e),
            Output::Timeout(at) => return at,
        }
    }
    panic!("poll_output handed out a million outputs without a deadline");
}
