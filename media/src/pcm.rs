//! Headerless raw PCM streams (stdin/stdout, pipes) converted to and from wire frames.
//!
//! A raw stream carries interleaved samples in a [`RawFormat`]; each raw format has the same
//! sample width as its wire [`SampleFormat`], so conversion is a byte swap (or nothing, for
//! `s16be`) and is bit-exact in both directions.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use crate::error::MediaError;
use crate::format::SampleFormat;
use crate::wav::{read_full, swap_samples};

/// Sample layout of a headerless raw PCM stream (the names follow ffmpeg/sox conventions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RawFormat {
    /// 16-bit signed little-endian (`s16le`); wire format S16.
    S16Le,
    /// 16-bit signed big-endian (`s16be`); wire format S16, already in wire byte order.
    S16Be,
    /// 24-bit signed little-endian packed in 3 bytes (`s24le`); wire format S24.
    S24Le,
    /// 32-bit IEEE float little-endian (`f32le`); wire format F32.
    F32Le,
}

impl RawFormat {
    /// Every raw format, in the order they are listed in help texts.
    pub const ALL: [RawFormat; 4] = [
        RawFormat::S16Le,
        RawFormat::S16Be,
        RawFormat::S24Le,
        RawFormat::F32Le,
    ];

    /// The sample format these samples travel in on the wire.
    pub const fn sample_format(self) -> SampleFormat {
        match self {
            RawFormat::S16Le | RawFormat::S16Be => SampleFormat::S16,
            RawFormat::S24Le => SampleFormat::S24,
            RawFormat::F32Le => SampleFormat::F32,
        }
    }

    /// Bytes per sample in the raw stream (equal to the wire sample width).
    pub const fn bytes(self) -> usize {
        self.sample_format().bytes()
    }

    /// The conventional name (`s16le`, `s16be`, `s24le`, `f32le`).
    pub const fn name(self) -> &'static str {
        match self {
            RawFormat::S16Le => "s16le",
            RawFormat::S16Be => "s16be",
            RawFormat::S24Le => "s24le",
            RawFormat::F32Le => "f32le",
        }
    }

    /// The little-endian raw format carrying `format` (the natural choice for a wire format).
    pub const fn native_for(format: SampleFormat) -> RawFormat {
        match format {
            SampleFormat::S16 => RawFormat::S16Le,
            SampleFormat::S24 => RawFormat::S24Le,
            SampleFormat::F32 => RawFormat::F32Le,
        }
    }

    fn is_big_endian(self) -> bool {
        matches!(self, RawFormat::S16Be)
    }

    /// Converts samples between this raw layout and wire layout in place (an involution).
    fn convert_in_place(self, buf: &mut [u8]) {
        if !self.is_big_endian() {
            swap_samples(buf, self.bytes());
        }
    }
}

impl fmt::Display for RawFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RawFormat {
    type Err = MediaError;

    /// Parses `s16le`, `s16be`, `s24le` or `f32le` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RawFormat::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| MediaError::UnknownRawFormat {
                name: s.to_string(),
            })
    }
}

/// Reads raw PCM from `R` and returns wire frames.
#[derive(Debug)]
pub struct PcmReader<R: Read> {
    inner: R,
    format: RawFormat,
    channels: u16,
    eof: bool,
}

impl<R: Read> PcmReader<R> {
    /// Wraps `inner`, which carries interleaved `channels`-channel samples in `format`.
    ///
    /// # Panics
    /// If `channels` is 0.
    pub fn new(inner: R, format: RawFormat, channels: u16) -> Self {
        assert!(channels > 0, "a PCM stream needs at least one channel");
        PcmReader {
            inner,
            format,
            channels,
            eof: false,
        }
    }

    /// The raw format being read.
    pub fn format(&self) -> RawFormat {
        self.format
    }

    /// Channels per frame.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Bytes per frame, both in the raw stream and on the wire.
    pub fn frame_bytes(&self) -> usize {
        self.channels as usize * self.format.bytes()
    }

    /// Fills `out` with whole wire frames (of `format().sample_format()`) and returns how many.
    ///
    /// Blocks until `out.len() / frame_bytes()` frames have been read or the input ends, however
    /// the input splits its bytes (short reads and `Interrupted` are retried). At end of input
    /// a partial trailing frame is dropped; afterwards 0 is returned. Does not allocate.
    pub fn read_frames(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        let fb = self.frame_bytes();
        let want = out.len() / fb * fb;
        let got = read_full(&mut self.inner, &mut out[..want])?;
        if got < want {
            self.eof = true;
        }
        let whole = got / fb * fb;
        self.format.convert_in_place(&mut out[..whole]);
        Ok(whole / fb)
    }

    /// Returns the underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Writes wire frames to `W` as raw PCM.
#[derive(Debug)]
pub struct PcmWriter<W: Write> {
    inner: W,
    format: RawFormat,
    channels: u16,
    scratch: Vec<u8>,
}

impl<W: Write> PcmWriter<W> {
    /// Wraps `inner`, to which interleaved `channels`-channel samples are written in `format`.
    ///
    /// # Panics
    /// If `channels` is 0.
    pub fn new(inner: W, format: RawFormat, channels: u16) -> Self {
        assert!(channels > 0, "a PCM stream needs at least one channel");
        PcmWriter {
            inner,
            format,
            channels,
            scratch: Vec::new(),
        }
    }

    /// The raw format being written.
    pub fn format(&self) -> RawFormat {
        self.format
    }

    /// Bytes per frame, both on the wire and in the raw stream.
    pub fn frame_bytes(&self) -> usize {
        self.channels as usize * self.format.bytes()
    }

    /// Converts wire frames (of `format().sample_format()`) to raw PCM and writes them all.
    ///
    /// `wire.len()` must be a multiple of `frame_bytes()` (else `InvalidInput`, nothing
    /// written). Reuses an internal buffer, so it allocates only when a call is larger than all
    /// previous ones.
    pub fn write_frames(&mut self, wire: &[u8]) -> io::Result<()> {
        let fb = self.frame_bytes();
        if !wire.len().is_multiple_of(fb) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                MediaError::PartialFrame {
                    len: wire.len(),
                    frame_bytes: fb,
                },
            ));
        }
        if self.format.is_big_endian() {
            return self.inner.write_all(wire);
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(wire);
        self.format.convert_in_place(&mut self.scratch);
        self.inner.write_all(&self.scratch)
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// A reference to the underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Returns the underlying writer (without flushing it).
    pub fn into_inner(self) -> W {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out 1 to 3 bytes per call, and sometimes `Interrupted`.
    struct Dribble<'a> {
        data: &'a [u8],
        pos: usize,
        calls: usize,
    }

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(7) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "signal"));
            }
            let n = (1 + self.calls % 3)
                .min(buf.len())
                .min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn bytes(n: usize) -> Vec<u8> {
        let mut x: u32 = 0x1234_5678;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn names_parse_and_display() {
        for f in RawFormat::ALL {
            assert_eq!(f.to_string().parse::<RawFormat>().unwrap(), f);
            assert_eq!(f.name().to_uppercase().parse::<RawFormat>().unwrap(), f);
        }
        assert_eq!(RawFormat::S16Be.sample_format(), SampleFormat::S16);
        assert_eq!(RawFormat::S24Le.sample_format(), SampleFormat::S24);
        assert_eq!(RawFormat::F32Le.sample_format(), SampleFormat::F32);
        let e = "u8".parse::<RawFormat>().unwrap_err();
        assert!(matches!(e, MediaError::UnknownRawFormat { ref name } if name == "u8"));
    }

    #[test]
    fn conversion_matches_the_raw_layout() {
        // One stereo frame: L = 0x0102 (258), R = -2.
        let le = [0x02, 0x01, 0xfe, 0xff];
        let mut r = PcmReader::new(&le[..], RawFormat::S16Le, 2);
        let mut out = [0u8; 4];
        assert_eq!(r.read_frames(&mut out).unwrap(), 1);
        assert_eq!(SampleFormat::S16.decode(&out[0..2]), 258.0 / 32_768.0);
        assert_eq!(SampleFormat::S16.decode(&out[2..4]), -2.0 / 32_768.0);

        let s24 = (-1_000_000i32).to_le_bytes();
        let mut r = PcmReader::new(&s24[..3], RawFormat::S24Le, 1);
        let mut out = [0u8; 3];
        assert_eq!(r.read_frames(&mut out).unwrap(), 1);
        assert_eq!(SampleFormat::S24.decode(&out), -1_000_000.0 / 8_388_608.0);

        let f = 0.25f32.to_le_bytes();
        let mut r = PcmReader::new(&f[..], RawFormat::F32Le, 1);
        let mut out = [0u8; 4];
        assert_eq!(r.read_frames(&mut out).unwrap(), 1);
        assert_eq!(SampleFormat::F32.decode(&out), 0.25);

        let be = [0x01, 0x02];
        let mut r = PcmReader::new(&be[..], RawFormat::S16Be, 1);
        let mut out = [0u8; 2];
        assert_eq!(r.read_frames(&mut out).unwrap(), 1);
        assert_eq!(out, be);
    }

    #[test]
    fn round_trip_every_format_with_dribbling_reader() {
        for format in RawFormat::ALL {
            for channels in [1u16, 2, 3] {
                let fb = channels as usize * format.bytes();
                let frames = 1_001;
                // Raw input plus a partial trailing frame that must be dropped.
                let raw = bytes(frames * fb + fb - 1);
                let mut reader = PcmReader::new(
                    Dribble {
                        data: &raw,
                        pos: 0,
                        calls: 0,
                    },
                    format,
                    channels,
                );
                let mut writer = PcmWriter::new(Vec::new(), format, channels);
                // 64 frames and an odd number of spare bytes per read.
                let mut buf = vec![0u8; 64 * fb + 5];
                let mut total = 0;
                loop {
                    let n = reader.read_frames(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    total += n;
                    writer.write_frames(&buf[..n * fb]).unwrap();
                }
                assert_eq!(total, frames, "{format} x{channels}");
                assert_eq!(reader.read_frames(&mut buf).unwrap(), 0);
                assert!(
                    writer.get_ref()[..] == raw[..frames * fb],
                    "{format} x{channels}"
                );
            }
        }
    }

    #[test]
    fn wire_frames_match_sample_format_decoding() {
        // Round trip via the wire: wire -> raw -> wire keeps every bit, and the wire bytes
        // decode to the values the raw stream holds.
        let values: Vec<i16> = vec![0, 1, -1, i16::MAX, i16::MIN, 12_345];
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut r = PcmReader::new(&raw[..], RawFormat::S16Le, 1);
        let mut wire = vec![0u8; raw.len()];
        assert_eq!(r.read_frames(&mut wire).unwrap(), values.len());
        for (v, w) in values.iter().zip(wire.chunks(2)) {
            assert_eq!(SampleFormat::S16.decode(w), *v as f32 / 32_768.0);
        }
        let mut w = PcmWriter::new(Vec::new(), RawFormat::S16Be, 1);
        w.write_frames(&wire).unwrap();
        assert_eq!(w.into_inner(), wire);
    }

    /// A reader that returns the given chunk sizes in turn.
    struct Chunked<'a> {
        data: &'a [u8],
        sizes: Vec<usize>,
        call: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let want = self.sizes[self.call % self.sizes.len()];
            self.call += 1;
            let n = want.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_any_split_round_trip(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            sizes in proptest::collection::vec(1usize..9, 1..8),
            fmt in 0usize..4,
            channels in 1u16..4,
            block in 1usize..40,
        ) {
            let format = RawFormat::ALL[fmt];
            let fb = channels as usize * format.bytes();
            let mut r = PcmReader::new(Chunked { data: &data, sizes, call: 0 }, format, channels);
            let mut w = PcmWriter::new(Vec::new(), format, channels);
            let mut buf = vec![0u8; block * fb];
            loop {
                let n = r.read_frames(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                w.write_frames(&buf[..n * fb]).unwrap();
            }
            let whole = data.len() / fb * fb;
            proptest::prop_assert_eq!(&w.get_ref()[..], &data[..whole]);
        }
    }

    #[test]
    fn partial_frame_write_is_invalid_input() {
        let mut w = PcmWriter::new(Vec::new(), RawFormat::S24Le, 2);
        let e = w.write_frames(&[0u8; 5]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(w.get_ref().is_empty());
    }
}
