//! SDP descriptions (transport/src/sdp.rs). isostream writes SDP but reads none (a stock
//! sender's stream is taken from its packets), so this target fuzzes the writer: any stream
//! fields give an error or a description that is well-formed as RFC 8866 wants (`x=value`
//! lines with CRLF, in the order v o s i c t m a*, one m= line) and says what it was given
//! (L16, L24, or Opus with its `opus/48000/2`).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use arbitrary::Arbitrary;
use isostream_transport::sdp::{Reader, SdpCrypto, SdpStream};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Fields {
    origin: (bool, u32, u128),
    media: (bool, u32, u128, u16),
    rate: u32,
    channels: u16,
    format_code: u8,
    packet_frames: u32,
    fec: bool,
    interleave: u8,
    substreams: u8,
    sender: bool,
    keyed: bool,
    opus_bitrate: Option<u32>,
}

/// The key the keyed descriptions carry (SDES inline, `send --srtp-key`).
const INLINE: &str = "WbTBosdVUZqEb6Htqhn+m3z7wUh4RJVR8nE15GbN";

fn ip(v6: bool, v4: u32, v6bits: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v6bits))
    } else {
        IpAddr::V4(Ipv4Addr::from(v4))
    }
}

fuzz_target!(|f: Fields| {
    let s = SdpStream {
        origin: ip(f.origin.0, f.origin.1, f.origin.2),
        media: SocketAddr::new(ip(f.media.0, f.media.1, f.media.2), f.media.3),
        rate: f.rate,
        channels: f.channels,
        format_code: f.format_code,
        packet_frames: f.packet_frames,
        fec: f.fec,
        interleave: f.interleave,
        substreams: f.substreams as usize,
        reader: if f.sender {
            Reader::Sender
        } else {
            Reader::Receiver
        },
        crypto: f.keyed.then(|| SdpCrypto {
            suite: "AES_CM_128_HMAC_SHA1_80".into(),
            inline: INLINE.into(),
        }),
        opus_bitrate: f.opus_bitrate,
    };
    let Ok(text) = s.to_sdp() else {
        assert!(
            s.check().is_err(),
            "to_sdp failed on a stream check accepts"
        );
        return;
    };
    assert!(text.ends_with("\r\n"));
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    let kinds: String = lines.iter().map(|l| l.as_bytes()[0] as char).collect();
    for l in &lines {
        let b = l.as_bytes();
        assert!(
            b.len() >= 2 && b[0].is_ascii_lowercase() && b[1] == b'=',
            "{l:?}"
        );
        assert!(!l.contains('\n') && !l.contains('\r'), "{l:?}");
    }
    assert!(
        kinds.starts_with("vosictm") && kinds[7..].chars().all(|c| c == 'a'),
        "line order {kinds:?}:\n{text}"
    );
    let (pt, enc) = s.payload().expect("a description has a payload type");
    let profile = if f.keyed { "RTP/SAVP" } else { "RTP/AVP" };
    let m = format!("m=audio {} {profile} {pt}", s.media.port());
    assert!(lines.contains(&m.as_str()), "{text}");
    let crypto = format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}");
    assert_eq!(lines.contains(&crypto.as_str()), f.keyed, "{text}");
    // Opus is always opus/48000/2 (RFC 7587), whatever the stream's rate and channels
    let rtpmap = match s.opus_bitrate {
        Some(_) => format!("a=rtpmap:{pt} {enc}/48000/2"),
        None => format!("a=rtpmap:{pt} {enc}/{}/{}", s.rate, s.channels),
    };
    assert!(lines.contains(&rtpmap.as_str()), "{text}");
});
