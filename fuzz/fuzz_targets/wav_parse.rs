//! WAV parsing (`WavSource::from_reader`, the header parser `WavSource::open` uses, and
//! `read_frames`): never a panic; whatever it accepts reads as whole frames, exactly the
//! header's frame count when it states one, never more bytes than the file has after the
//! header.
#![no_main]

use std::io::Cursor;

use isostream_media::WavSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &[u8])| {
    let (chunk, data) = input;
    let Ok(mut src) = WavSource::from_reader(Cursor::new(data), data.len() as u64) else {
        return;
    };
    let spec = src.spec();
    let fb = spec.frame_bytes();
    assert!(fb > 0 && spec.rate > 0 && spec.channels > 0);
    // read in chunks of 1 to 256 frames (plus a partial frame of room, left untouched)
    let frames_per_read = chunk as usize + 1;
    let mut buf = vec![0xAAu8; frames_per_read * fb + fb / 2];
    let mut total = 0u64;
    loop {
        let n = src.read_frames(&mut buf).expect("reading from memory");
        assert!(n <= frames_per_read);
        assert!(buf[frames_per_read * fb..].iter().all(|&b| b == 0xAA));
        if n == 0 {
            break;
        }
        total += n as u64;
        assert!(
            total * fb as u64 <= data.len() as u64,
            "more samples than bytes"
        );
    }
    if let Some(t) = src.total_frames() {
        assert_eq!(total, t, "the header's frame count");
    }
    assert_eq!(
        src.read_frames(&mut buf).unwrap(),
        0,
        "frames after the end"
    );
});
