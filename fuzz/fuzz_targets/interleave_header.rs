//! The interleave header (`InterleaveHeader::parse`, `validate`, `check_samples`) and the
//! group arithmetic it feeds (`frames_in_packet`, `payload_len`, `scatter`): never a panic;
//! a payload that passes the checks scatters into its group exactly where its frames belong
//! and gathers back; `scatter` with any other sizes refuses rather than panics.
#![no_main]

use isostream_transport::interleave::{self, InterleaveHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, u16, &[u8])| {
    let (fb, other_group, payload) = input;
    // 1 to 255 bytes per frame (a stereo L16 frame is 4, 8 channels of F32 32)
    let frame_bytes = (fb as usize).max(1);
    let Ok((h, samples)) = InterleaveHeader::parse(payload) else {
        return;
    };
    assert!(
        h.validate().is_ok(),
        "parse accepted an invalid header {h:?}"
    );
    assert_eq!(h.to_bytes(), payload[..interleave::HEADER_LEN]);
    let (g, d, j) = (h.group_frames as usize, h.depth as usize, h.index as usize);
    let n = interleave::frames_in_packet(g, d, j);
    assert_eq!(n, h.frames());
    assert_eq!(
        interleave::payload_len(g, d, j, frame_bytes),
        interleave::HEADER_LEN + n * frame_bytes
    );
    // a group of another size (what a receiver holding another group size would pass)
    let og = other_group as usize % 4096;
    let mut group = vec![0u8; og * frame_bytes];
    let mut present = vec![false; og];
    let _ = interleave::scatter(samples, frame_bytes, d, j, &mut group, &mut present);
    if h.check_samples(samples, frame_bytes).is_err() {
        return;
    }
    assert_eq!(samples.len(), n * frame_bytes);
    let mut group = vec![0u8; g * frame_bytes];
    let mut present = vec![false; g];
    interleave::scatter(samples, frame_bytes, d, j, &mut group, &mut present)
        .expect("a checked payload scatters");
    for (i, f) in samples.chunks_exact(frame_bytes).enumerate() {
        let at = (j + i * d) * frame_bytes;
        assert_eq!(&group[at..at + frame_bytes], f);
        assert!(present[j + i * d]);
    }
    assert_eq!(present.iter().filter(|&&p| p).count(), n);
    let mut back = vec![0u8; samples.len()];
    interleave::gather(&group, frame_bytes, d, j, &mut back);
    assert_eq!(back, samples);
});
