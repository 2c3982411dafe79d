//! SDP descriptions (RFC 8866) of plain RTP/L16 and L24 streams, for stock RTP tools.
//!
//! `isostream send --sdp FILE` writes what a stock receiver (ffmpeg, VLC, GStreamer's
//! `sdpdemux`) needs to play the stream: address and port, payload type, encoding, rate and
//! channels, the packet duration, and `a=rtcp-mux` because isostream sends its RTCP on the
//! media port (RFC 5761). `isostream recv --sdp FILE` writes the stream it accepts from a
//! stock sender (its `--rate` and `--channels`, L16 in payload type 96).
//!
//! Keyed with SRTP (`--srtp-key`), the profile is `RTP/SAVP` and an `a=crypto:1` line (SDES,
//! RFC 4568) carries the suite and the inline key, as ffmpeg and GStreamer's `sdpdemux`
//! read it.
//!
//! Only a plain stream can be described: one substream, 16- or 24-bit samples, no repair
//! packets (`--fec off`) and no interleaving (`--interleave 1`). Anything else is
//! isostream-specific, and [`SdpStream::to_sdp`] refuses it with an error that says which
//! option to change, rather than writing a description stock tools would misplay.

use std::net::{IpAddr, SocketAddr};

use crate::rtp;

/// Why a stream cannot be described for stock tools.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Repair packets (FEC) would share the media's SSRC with their own sequence numbers.
    #[error(
        "--sdp describes a plain RTP/L16 stream for stock tools, but FEC repair packets (payload type {}) are isostream-specific: add --fec off",
        rtp::PT_REPAIR
    )]
    Fec,
    /// Interleaved payloads (payload types 100..102) are isostream-specific.
    #[error(
        "--sdp describes a plain RTP/L16 stream for stock tools, but --interleave {0} sends isostream-specific interleaved payloads: use --interleave 1"
    )]
    Interleave(u8),
    /// Stock receivers play one SSRC per port.
    #[error(
        "--sdp describes one RTP stream, but this session has {0} substreams: send one input without --substreams"
    )]
    Substreams(usize),
    /// Only L16 and L24 have standard RTP encodings.
    #[error(
        "--sdp: float samples (payload type 98) are isostream-specific; stock tools take 16- or 24-bit audio (convert the input, e.g. ffmpeg -i in.wav -c:a pcm_s16le out.wav)"
    )]
    Format,
    /// A rate or channel count of zero.
    #[error("--sdp: {0} must not be zero")]
    Zero(&'static str),
}

/// Which side reads the description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// A receiving tool (written by `send`): `a=recvonly`.
    Receiver,
    /// A sending tool (written by `recv`): `a=sendonly`.
    Sender,
}

/// One RTP audio stream to describe.
#[derive(Clone, Debug, PartialEq)]
pub struct SdpStream {
    /// Address of the side that writes the description (`o=` line).
    pub origin: IpAddr,
    /// Where the media goes: the receiver's address and port (`c=` and `m=` lines).
    pub media: SocketAddr,
    /// Frames per second, in Hz.
    pub rate: u32,
    /// Channels.
    pub channels: u16,
    /// Sample format code (see `isostream_media::SampleFormat::code`: 0 = 16-bit,
    /// 1 = 24-bit, 2 = float).
    pub format_code: u8,
    /// Frames per packet, for `a=ptime` (0: no `a=ptime` line).
    pub packet_frames: u32,
    /// Whether repair packets are sent (`--fec K,M`).
    pub fec: bool,
    /// Interleave depth (1 = plain).
    pub interleave: u8,
    /// Substreams of the session.
    pub substreams: usize,
    /// Who reads the description.
    pub reader: Reader,
    /// SRTP keying, when the stream is protected.
    pub crypto: Option<SdpCrypto>,
    /// The stream is Opus (RFC 7587) at this average bitrate (bits/s of the stream): PT 111,
    /// `opus/48000/2` and an `a=fmtp` line; `format_code` is then ignored.
    pub opus_bitrate: Option<u32>,
}

/// The SDES keying of an SRTP stream (RFC 4568): `a=crypto:1 SUITE inline:KEY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdpCrypto {
    /// The crypto suite's name, e.g. `AES_CM_128_HMAC_SHA1_80`.
    pub suite: String,
    /// The master key and salt in base64 (the inline form).
    pub inline: String,
}

impl SdpStream {
    /// The RTP payload type and encoding name, if the stream is plain L16 or L24.
    pub fn payload(&self) -> Result<(u8, &'static str), SdpError> {
        if self.opus_bitrate.is_some() {
            return Ok((rtp::PT_OPUS, "opus"));
        }
        match self.format_code {
            0 => Ok((rtp::PT_L16, "L16")),
            1 => Ok((rtp::PT_L24, "L24")),
            _ => Err(SdpError::Format),
        }
    }

    /// Checks that stock tools can play the stream: one substream of L16/L24 without FEC or
    /// interleaving.
    pub fn check(&self) -> Result<(), SdpError> {
        self.payload()?;
        if self.rate == 0 {
            return Err(SdpError::Zero("the sample rate"));
        }
        if self.channels == 0 {
            return Err(SdpError::Zero("the channel count"));
        }
        if self.fec {
            return Err(SdpError::Fec);
        }
        if self.interleave != 1 {
            return Err(SdpError::Interleave(self.interleave));
        }
        if self.substreams != 1 {
            return Err(SdpError::Substreams(self.substreams));
        }
        Ok(())
    }

    /// The description, with CRLF line ends. Errors if the stream is not plain (see
    /// [`Self::check`]).
    pub fn to_sdp(&self) -> Result<String, SdpError> {
        self.check()?;
        let (pt, encoding) = self.payload()?;
        let mut s = String::new();
        let mut line = |l: String| {
            s.push_str(&l);
            s.push_str("\r\n");
        };
        line("v=0".into());
        line(format!("o=- 0 0 {}", addr_spec(self.origin, false)));
        line("s=isostream".into());
        line(format!(
            "i=RTP {encoding}, {} Hz, {} channel(s), RTCP on the media port",
            self.rate, self.channels
        ));
        line(format!("c={}", addr_spec(self.media.ip(), true)));
        line("t=0 0".into());
        let profile = if self.crypto.is_some() {
            "RTP/SAVP"
        } else {
            "RTP/AVP"
        };
        line(format!("m=audio {} {profile} {pt}", self.media.port()));
        match self.opus_bitrate {
            // RFC 7587, 7: always 48000/2, whatever is coded; stereo is an fmtp parameter
            Some(bitrate) => {
                line(format!("a=rtpmap:{pt} opus/48000/2"));
                let stereo = u8::from(self.channels >= 2);
                line(format!(
                    "a=fmtp:{pt} minptime=10;useinbandfec=1;stereo={stereo};sprop-stereo={stereo};maxaveragebitrate={bitrate}"
                ));
            }
            None => line(format!(
                "a=rtpmap:{pt} {encoding}/{}/{}",
                self.rate, self.channels
            )),
        }
        if self.packet_frames > 0 {
            line(format!(
                "a=ptime:{}",
                ms(self.packet_frames as f64 * 1000.0 / self.rate as f64)
            ));
        }
        line("a=rtcp-mux".into());
        if let Some(c) = &self.crypto {
            line(format!("a=crypto:1 {} inline:{}", c.suite, c.inline));
        }
        line(
            match self.reader {
                Reader::Receiver => "a=recvonly",
                Reader::Sender => "a=sendonly",
            }
            .into(),
        );
        Ok(s)
    }
}

/// `IN IP4 a.b.c.d` or `IN IP6 ...`; an IPv4 multicast connection address gets the TTL
/// RFC 8866 requires (1, the socket default).
fn addr_spec(ip: IpAddr, connection: bool) -> String {
    match ip {
        IpAddr::V4(v4) if connection && v4.is_multicast() => format!("IN IP4 {v4}/1"),
        IpAddr::V4(v4) => format!("IN IP4 {v4}"),
        IpAddr::V6(v6) => format!("IN IP6 {v6}"),
    }
}

/// Milliseconds with at most 3 decimals and no trailing zeros (`5`, `2.5`, `0.125`).
fn ms(x: f64) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// A concrete address for a description: `ip` itself, or for an unspecified address
/// (`0.0.0.0`, `::`) the local address of the default route (found without sending anything),
/// or loopback if there is none.
pub fn concrete_address(ip: IpAddr) -> IpAddr {
    if !ip.is_unspecified() {
        return ip;
    }
    let (bind, probe): (SocketAddr, SocketAddr) = match ip {
        IpAddr::V4(_) => (([0, 0, 0, 0], 0).into(), ([192, 0, 2, 1], 9).into()),
        IpAddr::V6(_) => (
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
            (
                "2001:db8::1"
                    .parse::<std::net::Ipv6Addr>()
                    .expect("an address"),
                9,
            )
                .into(),
        ),
    };
    std::net::UdpSocket::bind(bind)
        .and_then(|s| s.connect(probe).and_then(|_| s.local_addr()))
        .map(|a| a.ip())
        .ok()
        .filter(|a| !a.is_unspecified())
        .unwrap_or(match ip {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> SdpStream {
        SdpStream {
            origin: "192.0.2.10".parse().unwrap(),
            media: "192.0.2.20:5004".parse().unwrap(),
            rate: 48_000,
            channels: 2,
            format_code: 0,
            packet_frames: 240,
            fec: false,
            interleave: 1,
            substreams: 1,
            reader: Reader::Receiver,
            crypto: None,
            opus_bitrate: None,
        }
    }

    #[test]
    fn an_opus_stream_is_pt_111_opus_48000_2_with_its_fmtp() {
        let s = SdpStream {
            opus_bitrate: Some(128_000),
            packet_frames: 960,
            format_code: 2,
            ..plain()
        }
        .to_sdp()
        .unwrap();
        assert!(s.contains("m=audio 5004 RTP/AVP 111\r\n"), "{s}");
        assert!(s.contains("a=rtpmap:111 opus/48000/2\r\n"), "{s}");
        assert!(
            s.contains("a=fmtp:111 minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1;maxaveragebitrate=128000\r\n"),
            "{s}"
        );
        assert!(s.contains("a=ptime:20\r\n"), "{s}");
    }

    #[test]
    fn a_keyed_stream_is_savp_with_its_crypto_line() {
        let s = SdpStream {
            crypto: Some(SdpCrypto {
                suite: "AES_CM_128_HMAC_SHA1_80".into(),
                inline: "WbTBosdVUZqEb6Htqhn+m3z7wUh4RJVR8nE15GbN".into(),
            }),
            ..plain()
        }
        .to_sdp()
        .unwrap();
        assert!(s.contains("m=audio 5004 RTP/SAVP 96\r\n"), "{s}");
        assert!(
            s.contains(
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WbTBosdVUZqEb6Htqhn+m3z7wUh4RJVR8nE15GbN\r\n"
            ),
            "{s}"
        );
    }

    #[test]
    fn plain_l16_stream_is_described_for_stock_receivers() {
        assert_eq!(
            plain().to_sdp().unwrap(),
            "v=0\r\n\
             o=- 0 0 IN IP4 192.0.2.10\r\n\
             s=isostream\r\n\
             i=RTP L16, 48000 Hz, 2 channel(s), RTCP on the media port\r\n\
             c=IN IP4 192.0.2.20\r\n\
             t=0 0\r\n\
             m=audio 5004 RTP/AVP 96\r\n\
             a=rtpmap:96 L16/48000/2\r\n\
             a=ptime:5\r\n\
             a=rtcp-mux\r\n\
             a=recvonly\r\n"
        );
    }

    #[test]
    fn l24_mono_ipv6_and_fractional_ptime() {
        let s = SdpStream {
            origin: "::1".parse().unwrap(),
            media: "[::1]:6000".parse().unwrap(),
            rate: 44_100,
            channels: 1,
            format_code: 1,
            packet_frames: 441,
            reader: Reader::Sender,
            ..plain()
        }
        .to_sdp()
        .unwrap();
        assert!(s.contains("c=IN IP6 ::1\r\n"), "{s}");
        assert!(s.contains("m=audio 6000 RTP/AVP 97\r\n"), "{s}");
        assert!(s.contains("a=rtpmap:97 L24/44100/1\r\n"), "{s}");
        assert!(s.contains("a=ptime:10\r\n"), "{s}");
        assert!(s.contains("a=sendonly\r\n"), "{s}");
        assert_eq!(ms(2.5), "2.5");
        assert_eq!(ms(0.125), "0.125");
    }

    #[test]
    fn multicast_gets_a_ttl() {
        let s = SdpStream {
            media: "239.1.2.3:5004".parse().unwrap(),
            ..plain()
        };
        assert!(s.to_sdp().unwrap().contains("c=IN IP4 239.1.2.3/1\r\n"));
    }

    #[test]
    fn isostream_specific_streams_are_refused_with_the_option_to_change() {
        let fec = SdpStream {
            fec: true,
            ..plain()
        };
        assert_eq!(fec.to_sdp(), Err(SdpError::Fec));
        assert!(SdpError::Fec.to_string().contains("--fec off"));
        let il = SdpStream {
            interleave: 4,
            ..plain()
        };
        assert_eq!(il.to_sdp(), Err(SdpError::Interleave(4)));
        assert!(SdpError::Interleave(4)
            .to_string()
            .contains("--interleave 1"));
        let subs = SdpStream {
            substreams: 2,
            ..plain()
        };
        assert_eq!(subs.to_sdp(), Err(SdpError::Substreams(2)));
        let float = SdpStream {
            format_code: 2,
            ..plain()
        };
        assert_eq!(float.to_sdp(), Err(SdpError::Format));
    }

    #[test]
    fn unspecified_addresses_become_concrete() {
        let ip = "10.1.2.3".parse().unwrap();
        assert_eq!(concrete_address(ip), ip);
        assert!(!concrete_address("0.0.0.0".parse().unwrap()).is_unspecified());
        assert!(!concrete_address("::".parse().unwrap()).is_unspecified());
    }
}
