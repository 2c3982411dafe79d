//! RTP header parsing (`RtpHeader::parse`, CSRCs, extension, padding), the RFC 5761
//! demultiplexing (`classify`) and the retransmission payload (`parse_rtx`): never a panic,
//! the payload is a part of the datagram, and a parsed header writes back as the datagram's
//! first bytes.
#![no_main]

use bytes::BytesMut;
use isostream_transport::rtp::{classify, parse_rtx, RtpHeader, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    let Ok((h, payload)) = RtpHeader::parse(data) else {
        return;
    };
    // the payload lies inside the datagram, after the fixed header
    let start = payload.as_ptr() as usize - data.as_ptr() as usize;
    assert!(start >= HEADER_LEN && start + payload.len() <= data.len());
    let mut out = BytesMut::new();
    h.write(&mut out);
    assert_eq!(out.len(), HEADER_LEN);
    // the fields written back: V=2, no P/X/CC (the parser removed them), the rest as sent
    assert_eq!(&out[1..], &data[1..HEADER_LEN]);
    let _ = parse_rtx(payload);
});
