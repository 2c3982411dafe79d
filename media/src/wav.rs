//! WAV file input and output in wire frames.
//!
//! [`WavSource`] streams a WAV file as wire frames (interleaved, big-endian samples), without
//! allocating per call; [`WavSink`] writes wire frames to a WAV file and checkpoints the header
//! periodically so that a process killed mid-write still leaves a readable file, and after a
//! write error (a full disk) rewrites it to say exactly what reached the disk.
//!
//! Supported: 16- and 24-bit integer PCM and 32-bit IEEE float, 1 to 8 channels, any non-zero
//! rate, in both the plain and the `WAVE_FORMAT_EXTENSIBLE` layouts. Samples round-trip
//! bit-exactly: the sample bytes are only byte-swapped between the file (little-endian) and the
//! wire (big-endian).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::MediaError;
use crate::format::{AudioSpec, SampleFormat};

/// Most channels a WAV file may have in isostream.
pub const MAX_WAV_CHANNELS: u16 = 8;

const TAG_PCM: u16 = 0x0001;
const TAG_FLOAT: u16 = 0x0003;
const TAG_EXTENSIBLE: u16 = 0xFFFE;

/// Checks that `spec` can be stored in a WAV file (1 to 8 channels, non-zero rate).
fn check_spec(spec: &AudioSpec) -> Result<(), MediaError> {
    if spec.channels == 0 || spec.channels > MAX_WAV_CHANNELS {
        return Err(MediaError::TooManyChannels {
            channels: spec.channels,
        });
    }
    if spec.rate == 0 {
        return Err(MediaError::InvalidRate { rate: spec.rate });
    }
    Ok(())
}

fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads exactly `buf.len()` bytes, mapping a premature end to [`MediaError::Malformed`].
fn read_header_bytes<R: Read>(
    r: &mut R,
    buf: &mut [u8],
    what: &'static str,
) -> Result<(), MediaError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            MediaError::Malformed { reason: what }
        } else {
            MediaError::Io(e)
        }
    })
}

/// Reads as many bytes as possible into `buf` (retrying short reads and interruptions);
/// returns fewer than `buf.len()` only at end of input.
pub(crate) fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reverses the bytes of every `sample_bytes`-sized sample in `buf` in place (LE <-> BE).
pub(crate) fn swap_samples(buf: &mut [u8], sample_bytes: usize) {
    match sample_bytes {
        2 => buf.chunks_exact_mut(2).for_each(|s| s.swap(0, 1)),
        3 => buf.chunks_exact_mut(3).for_each(|s| s.swap(0, 2)),
        4 => buf.chunks_exact_mut(4).for_each(|s| s.reverse()),
        _ => buf.chunks_exact_mut(sample_bytes).for_each(|s| s.reverse()),
    }
}

/// A WAV file read as a stream of wire frames.
///
/// Opening parses the header itself, so unsupported files fail with a precise
/// [`MediaError`] (`UnsupportedFormat`, `UnsupportedContainer`, `UnsupportedEncoding`,
/// `TooManyChannels`). The data chunk is then read sequentially; [`WavSource::read_frames`]
/// reads straight into the caller's buffer and byte-swaps in place.
///
/// It reads a file ([`WavSource::open`]) or any seekable reader ([`WavSource::from_reader`],
/// e.g. bytes in memory).
#[derive(Debug)]
pub struct WavSource<R: Read = File> {
    reader: BufReader<R>,
    spec: AudioSpec,
    total_frames: Option<u64>,
    /// Sample bytes left in the data chunk, or `None` to read until end of file.
    remaining: Option<u64>,
    done: bool,
}

impl WavSource<File> {
    /// Opens a WAV file and parses its header; the reader is left at the first sample.
    ///
    /// If the header's data length is larger than the file (a file cut short), the available
    /// whole frames are read. A data length of 0 or `0xFFFF_FFFF` with samples following (a
    /// writer killed before its first header update, or a streaming header) means "until end
    /// of file"; [`WavSource::total_frames`] is then `None`.
    pub fn open(path: impl AsRef<Path>) -> Result<WavSource, MediaError> {
        let file = File::open(path.as_ref())?;
        let file_len = file.metadata()?.len();
        WavSource::from_reader(file, file_len)
    }
}

impl<R: Read + Seek> WavSource<R> {
    /// Parses the header of the WAV file `reader` holds, `file_len` bytes long, as
    /// [`WavSource::open`] does; the reader is left at the first sample.
    pub fn from_reader(reader: R, file_len: u64) -> Result<WavSource<R>, MediaError> {
        let mut reader = BufReader::with_capacity(64 * 1024, reader);

        let mut riff = [0u8; 12];
        read_header_bytes(&mut reader, &mut riff, "file too short for a RIFF header")?;
        if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
            return Err(MediaError::Malformed {
                reason: "no RIFF/WAVE signature",
            });
        }
        let mut pos: u64 = 12;

        // (tag, channels, rate, block_align, container bits, valid bits)
        let mut fmt: Option<(u16, u16, u32, u16, u16, u16)> = None;
        let data_len = loop {
            let mut hdr = [0u8; 8];
            read_header_bytes(&mut reader, &mut hdr, "no data chunk")?;
            pos += 8;
            let len = read_u32(&hdr, 4);
            match &hdr[0..4] {
                b"fmt " => {
                    if len < 16 {
                        return Err(MediaError::Malformed {
                            reason: "fmt chunk shorter than 16 bytes",
                        });
                    }
                    let mut body = [0u8; 40];
                    let keep = (len as usize).min(body.len());
                    read_header_bytes(&mut reader, &mut body[..keep], "truncated fmt chunk")?;
                    let skip = len as u64 - keep as u64 + (len as u64 & 1);
                    reader.seek_relative(skip as i64)?;
                    pos += len as u64 + (len as u64 & 1);
                    let mut tag = read_u16(&body, 0);
                    let channels = read_u16(&body, 2);
                    let rate = read_u32(&body, 4);
                    let block_align = read_u16(&body, 12);
                    let bits = read_u16(&body, 14);
                    let mut valid = bits;
                    if tag == TAG_EXTENSIBLE {
                        if keep < 26 {
                            return Err(MediaError::Malformed {
                                reason: "WAVE_FORMAT_EXTENSIBLE fmt chunk too short",
                            });
                        }
                        let v = read_u16(&body, 18);
                        if v != 0 {
                            valid = v;
                        }
                        // The sub-format GUID starts with the format tag it stands for.
                        tag = read_u16(&body, 24);
                    }
                    fmt = Some((tag, channels, rate, block_align, bits, valid));
                }
                b"data" => break len,
                _ => {
                    let skip = len as u64 + (len as u64 & 1);
                    reader.seek_relative(skip as i64)?;
                    pos += skip;
                }
            }
        };
        let Some((tag, channels, rate, block_align, bits, valid)) = fmt else {
            return Err(MediaError::Malformed {
                reason: "data chunk before fmt chunk",
            });
        };

        let float = match tag {
            TAG_PCM => false,
            TAG_FLOAT => true,
            other => return Err(MediaError::UnsupportedEncoding { tag: other }),
        };
        let format = match (float, valid) {
            (false, 16) => SampleFormat::S16,
            (false, 24) => SampleFormat::S24,
            (true, 32) => SampleFormat::F32,
            _ => return Err(MediaError::UnsupportedFormat { bits: valid, float }),
        };
        if channels == 0 || channels > MAX_WAV_CHANNELS {
            return Err(MediaError::TooManyChannels { channels });
        }
        if rate == 0 {
            return Err(MediaError::InvalidRate { rate });
        }
        if block_align % channels != 0 || bits % 8 != 0 {
            return Err(MediaError::Malformed {
                reason: "block alignment does not match the channel count",
            });
        }
        let container = block_align / channels;
        if container as usize != format.bytes() || bits as usize != 8 * format.bytes() {
            return Err(MediaError::UnsupportedContainer {
                bits: valid,
                container_bytes: container.max(bits / 8),
            });
        }

        let spec = AudioSpec {
            rate,
            channels,
            format,
        };
        let fb = spec.frame_bytes() as u64;
        let available = file_len.saturating_sub(pos);
        let (remaining, total_frames) = if data_len == 0 || data_len == u32::MAX {
            if available == 0 {
                (Some(0), Some(0))
            } else {
                (None, None)
            }
        } else {
            let bytes = (data_len as u64).min(available);
            (Some(bytes - bytes % fb), Some(bytes / fb))
        };

        Ok(WavSource {
            reader,
            spec,
            total_frames,
            remaining,
            done: false,
        })
    }

    /// The stream's rate, channel count and sample format.
    pub fn spec(&self) -> AudioSpec {
        self.spec
    }

    /// Length of the file in frames (samples per channel), if the header states it.
    ///
    /// `None` when the data length is unknown (see [`WavSource::open`]); the frames are then
    /// read until end of file.
    pub fn total_frames(&self) -> Option<u64> {
        self.total_frames
    }

    /// Fills `out` with whole wire frames and returns how many frames were written.
    ///
    /// At most `out.len() / spec().frame_bytes()` frames are read; trailing bytes of `out`
    /// that do not form a whole frame are left untouched. Fewer frames are returned only at the
    /// end of the data, and 0 once it is exhausted (or if `out` is shorter than one frame).
    /// Does not allocate.
    pub fn read_frames(&mut self, out: &mut [u8]) -> Result<usize, MediaError> {
        let fb = self.spec.frame_bytes();
        if self.done {
            return Ok(0);
        }
        let mut frames = out.len() / fb;
        if let Some(rem) = self.remaining {
            frames = frames.min((rem / fb as u64) as usize);
        }
        if frames == 0 {
            if self.remaining == Some(0) {
                self.done = true;
            }
            return Ok(0);
        }
        let want = frames * fb;
        let got = read_full(&mut self.reader, &mut out[..want])?;
        let whole = got / fb;
        if got < want {
            // End of file: a partial trailing frame is dropped.
            self.done = true;
        }
        if let Some(rem) = self.remaining.as_mut() {
            *rem -= (whole * fb) as u64;
        }
        swap_samples(&mut out[..whole * fb], self.spec.format.bytes());
        Ok(whole)
    }
}

/// A WAV file written from wire frames.
///
/// The header is rewritten (hound's `flush`) every [`WavSink::flush_every_frames`] frames, so a
/// process killed mid-write leaves a file that any WAV reader accepts and that holds at least
/// every frame up to the last such checkpoint. Dropping the sink finalizes the file; call
/// [`WavSink::finalize`] to observe errors.
///
/// If a write fails (a full disk), the sink stops writing and rewrites the header of the file
/// for the whole frames that reached the disk (cutting off a partial last frame), so the file
/// never claims audio it does not hold; the error is returned, and every later call returns
/// [`MediaError::Closed`].
pub struct WavSink {
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    path: PathBuf,
    spec: AudioSpec,
    frames_written: u64,
    since_flush: u64,
    flush_every: u64,
}

impl std::fmt::Debug for WavSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSink")
            .field("path", &self.path)
            .field("spec", &self.spec)
            .field("frames_written", &self.frames_written)
            .field("flush_every", &self.flush_every)
            .finish_non_exhaustive()
    }
}

/// Bytes of header hound writes before the samples (WAVE_FORMAT_EXTENSIBLE, the larger case).
const HOUND_MAX_HEADER: u64 = 68;

impl WavSink {
    /// Creates (or truncates) `path` and writes a WAV header for `spec`.
    ///
    /// S16 is written as 16-bit PCM, S24 as packed 24-bit PCM (3 bytes per sample), F32 as
    /// 32-bit IEEE float. The header is checkpointed every `spec.rate` frames (1 s of audio)
    /// by default; see [`WavSink::set_flush_every_frames`].
    pub fn create(path: impl AsRef<Path>, spec: AudioSpec) -> Result<WavSink, MediaError> {
        check_spec(&spec)?;
        let (bits, sample_format) = match spec.format {
            SampleFormat::S16 => (16, hound::SampleFormat::Int),
            SampleFormat::S24 => (24, hound::SampleFormat::Int),
            SampleFormat::F32 => (32, hound::SampleFormat::Float),
        };
        let wspec = hound::WavSpec {
            channels: spec.channels,
            sample_rate: spec.rate,
            bits_per_sample: bits,
            sample_format,
        };
        let path = path.as_ref().to_path_buf();
        let writer = hound::WavWriter::create(&path, wspec).map_err(MediaError::from_hound)?;
        Ok(WavSink {
            writer: Some(writer),
            path,
            spec,
            frames_written: 0,
            since_flush: 0,
            flush_every: spec.rate as u64,
        })
    }

    /// The stream's rate, channel count and sample format.
    pub fn spec(&self) -> AudioSpec {
        self.spec
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames (samples per channel) written so far.
    pub fn frames_written(&self) -> u64 {
        self.frames_written
    }

    /// How many frames are written between header checkpoints (0: only on finalize).
    pub fn flush_every_frames(&self) -> u64 {
        self.flush_every
    }

    /// Sets how many frames are written between header checkpoints (0 disables them).
    ///
    /// Checkpoints fall exactly on multiples of this count since the last checkpoint, even
    /// when a [`WavSink::write_frames`] call straddles one.
    pub fn set_flush_every_frames(&mut self, frames: u64) {
        self.flush_every = frames;
    }

    /// Appends wire frames (interleaved, big-endian samples in the sink's format).
    ///
    /// `frames.len()` must be a multiple of `spec().frame_bytes()`, otherwise
    /// [`MediaError::PartialFrame`] is returned and nothing is written.
    pub fn write_frames(&mut self, frames: &[u8]) -> Result<(), MediaError> {
        let fb = self.spec.frame_bytes();
        if !frames.len().is_multiple_of(fb) {
            return Err(MediaError::PartialFrame {
                len: frames.len(),
                frame_bytes: fb,
            });
        }
        let total_bytes = (self.frames_written * fb as u64) + frames.len() as u64;
        if total_bytes + HOUND_MAX_HEADER > u32::MAX as u64 {
            return Err(MediaError::FileTooLarge { bytes: total_bytes });
        }
        let format = self.spec.format;
        let mut rest = frames;
        while !rest.is_empty() {
            let Some(writer) = self.writer.as_mut() else {
                return Err(MediaError::Closed);
            };
            let mut n = rest.len() / fb;
            if self.flush_every > 0 {
                n = n.min((self.flush_every - self.since_flush) as usize);
            }
            let (chunk, tail) = rest.split_at(n * fb);
            let mut r = write_samples(writer, format, chunk);
            if r.is_ok() {
                self.frames_written += n as u64;
                self.since_flush += n as u64;
                if self.flush_every > 0 && self.since_flush >= self.flush_every {
                    r = writer.flush();
                    self.since_flush = 0;
                }
            }
            if let Err(e) = r {
                return Err(self.fail(e));
            }
            rest = tail;
        }
        Ok(())
    }

    /// After a write error: stops writing, closes the file and rewrites its header for what
    /// reached the disk. Returns the error.
    fn fail(&mut self, e: hound::Error) -> MediaError {
        // hound's own finalize runs on drop and fails too (its buffer cannot be written)
        drop(self.writer.take());
        // best effort: if even this fails, the header still says no more than an earlier
        // checkpoint, and readers take the shorter of header and file
        let _ = repair_header(&self.path, self.spec.frame_bytes() as u64);
        MediaError::from_hound(e)
    }

    /// Checkpoints now: rewrites the header for the frames written so far and flushes them.
    pub fn flush(&mut self) -> Result<(), MediaError> {
        let Some(w) = self.writer.as_mut() else {
            return Err(MediaError::Closed);
        };
        if let Err(e) = w.flush() {
            return Err(self.fail(e));
        }
        self.since_flush = 0;
        Ok(())
    }

    /// Writes the final header and closes the file, reporting any error.
    pub fn finalize(mut self) -> Result<(), MediaError> {
        self.close()
    }

    fn close(&mut self) -> Result<(), MediaError> {
        match self.writer.take() {
            Some(w) => match w.finalize() {
                Ok(()) => Ok(()),
                Err(e) => {
                    let _ = repair_header(&self.path, self.spec.frame_bytes() as u64);
                    Err(MediaError::from_hound(e))
                }
            },
            None => Ok(()),
        }
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Rewrites the RIFF and data chunk lengths of the WAV file at `path` for the whole frames
/// of `frame_bytes` bytes that are in the file, and cuts off a partial last frame. A file too
/// short to hold its own header is emptied: it holds no audio, and no header then claims any.
fn repair_header(path: &Path, frame_bytes: u64) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = f.metadata()?.len();
    let mut head = vec![0u8; len.min(4096) as usize];
    f.read_exact(&mut head)?;
    let Some(data_len_at) = data_chunk_length_offset(&head) else {
        return f.set_len(0);
    };
    let data_start = data_len_at as u64 + 4;
    let data = (len - data_start) / frame_bytes * frame_bytes;
    let end = data_start + data;
    f.set_len(end)?;
    let riff = u32::try_from(end - 8).unwrap_or(u32::MAX);
    let data = u32::try_from(data).unwrap_or(u32::MAX);
    f.seek(SeekFrom::Start(4))?;
    f.write_all(&riff.to_le_bytes())?;
    f.seek(SeekFrom::Start(data_len_at as u64))?;
    f.write_all(&data.to_le_bytes())?;
    f.sync_data()
}

/// Where the length field of the data chunk is in a RIFF/WAVE header, if `head` holds the
/// whole header up to it.
fn data_chunk_length_offset(head: &[u8]) -> Option<usize> {
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12usize;
    while at + 8 <= head.len() {
        if &head[at..at + 4] == b"data" {
            return Some(at + 4);
        }
        let len = read_u32(head, at + 4) as usize;
        at = at.checked_add(8 + len + (len & 1))?;
    }
    None
}

fn write_samples(
    w: &mut hound::WavWriter<BufWriter<File>>,
    format: SampleFormat,
    bytes: &[u8],
) -> Result<(), hound::Error> {
    match format {
        SampleFormat::S16 => {
            for s in bytes.chunks_exact(2) {
                w.write_sample(i16::from_be_bytes([s[0], s[1]]))?;
            }
        }
        SampleFormat::S24 => {
            for s in bytes.chunks_exact(3) {
                w.write_sample(i32::from_be_bytes([s[0], s[1], s[2], 0]) >> 8)?;
            }
        }
        SampleFormat::F32 => {
            for s in bytes.chunks_exact(4) {
                w.write_sample(f32::from_bits(u32::from_be_bytes([s[0], s[1], s[2], s[3]])))?;
            }
        }
    }
    Ok(())
}

/// Reads a whole WAV file into memory as wire frames (for tests, tools and benchmarks).
pub fn read_wav_all(path: impl AsRef<Path>) -> Result<(AudioSpec, Vec<u8>), MediaError> {
    let mut src = WavSource::open(path)?;
    let spec = src.spec();
    let fb = spec.frame_bytes();
    let chunk = 8192 * fb;
    let hint = src.total_frames().unwrap_or(0).min(1 << 28) as usize * fb;
    let mut data = Vec::with_capacity(hint);
    loop {
        let len = data.len();
        let want = if data.capacity() > len {
            (data.capacity() - len).max(fb)
        } else {
            chunk
        };
        data.resize(len + want, 0);
        let n = src.read_frames(&mut data[len..])?;
        data.truncate(len + n * fb);
        if n == 0 {
            return Ok((spec, data));
        }
    }
}

/// Writes `frames` (wire frames in `spec`) to a new WAV file at `path` and finalizes it.
pub fn write_wav_all(
    path: impl AsRef<Path>,
    spec: AudioSpec,
    frames: &[u8],
) -> Result<(), MediaError> {
    let mut sink = WavSink::create(path, spec)?;
    sink.write_frames(frames)?;
    sink.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes (every bit pattern, including float NaNs).
    fn noise_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn spec(rate: u32, channels: u16, format: SampleFormat) -> AudioSpec {
        AudioSpec {
            rate,
            channels,
            format,
        }
    }

    fn round_trip(spec: AudioSpec, frames: usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rt.wav");
        let data = noise_bytes(
            frames * spec.frame_bytes(),
            frames as u64 + spec.rate as u64,
        );
        {
            let mut sink = WavSink::create(&path, spec).unwrap();
            // Odd-sized writes that straddle the periodic flush.
            for chunk in data.chunks(spec.frame_bytes() * 997) {
                sink.write_frames(chunk).unwrap();
            }
            assert_eq!(sink.frames_written(), frames as u64);
            sink.finalize().unwrap();
        }

        let mut src = WavSource::open(&path).unwrap();
        assert_eq!(src.spec(), spec);
        assert_eq!(src.total_frames(), Some(frames as u64));
        // A buffer of 333 frames plus a stray byte: only whole frames are filled.
        let mut buf = vec![0u8; 333 * spec.frame_bytes() + 1];
        let mut got = Vec::new();
        loop {
            let n = src.read_frames(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n * spec.frame_bytes()]);
        }
        assert_eq!(src.read_frames(&mut buf).unwrap(), 0);
        assert!(
            got == data,
            "samples differ after WAV round trip for {spec}"
        );

        let (spec2, all) = read_wav_all(&path).unwrap();
        assert_eq!(spec2, spec);
        assert!(all == data);

        // Cross-check against an independent decoder (hound) to pin the byte order.
        let mut r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.spec().channels, spec.channels);
        assert_eq!(r.spec().sample_rate, spec.rate);
        let bps = spec.format.bytes();
        match spec.format {
            SampleFormat::S16 | SampleFormat::S24 => {
                for (s, b) in r.samples::<i32>().zip(data.chunks_exact(bps)) {
                    let v = if bps == 2 {
                        i16::from_be_bytes([b[0], b[1]]) as i32
                    } else {
                        i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8
                    };
                    assert_eq!(s.unwrap(), v);
                }
            }
            SampleFormat::F32 => {
                for (s, b) in r.samples::<f32>().zip(data.chunks_exact(bps)) {
                    assert_eq!(
                        s.unwrap().to_bits(),
                        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
                    );
                }
            }
        }
        assert_eq!(r.len() as usize, frames * spec.channels as usize);
    }

    #[test]
    fn round_trip_s16_stereo_48k() {
        round_trip(spec(48_000, 2, SampleFormat::S16), 100_003);
    }

    #[test]
    fn round_trip_s16_mono_44k1() {
        round_trip(spec(44_100, 1, SampleFormat::S16), 50_000);
    }

    #[test]
    fn round_trip_s24_stereo_and_multichannel() {
        round_trip(spec(48_000, 2, SampleFormat::S24), 60_001);
        round_trip(spec(96_000, 6, SampleFormat::S24), 10_000);
    }

    #[test]
    fn round_trip_f32() {
        round_trip(spec(48_000, 2, SampleFormat::F32), 60_000);
        round_trip(spec(8_000, 8, SampleFormat::F32), 7_777);
    }

    #[test]
    fn write_wav_all_then_read_and_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(16_000, 1, SampleFormat::S16);
        let path = dir.path().join("empty.wav");
        write_wav_all(&path, s, &[]).unwrap();
        let mut src = WavSource::open(&path).unwrap();
        assert_eq!(src.total_frames(), Some(0));
        assert_eq!(src.read_frames(&mut [0u8; 64]).unwrap(), 0);

        let path = dir.path().join("short.wav");
        write_wav_all(&path, s, &[0x12, 0x34, 0xff, 0xfe]).unwrap();
        let (s2, data) = read_wav_all(&path).unwrap();
        assert_eq!(s2, s);
        assert_eq!(data, vec![0x12, 0x34, 0xff, 0xfe]);
    }

    #[test]
    fn dropping_the_sink_finalizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drop.wav");
        let s = spec(48_000, 2, SampleFormat::S16);
        let data = noise_bytes(1_000 * s.frame_bytes(), 11);
        {
            let mut sink = WavSink::create(&path, s).unwrap();
            sink.set_flush_every_frames(0);
            sink.write_frames(&data).unwrap();
        }
        let src = WavSource::open(&path).unwrap();
        assert_eq!(src.total_frames(), Some(1_000));
        assert!(read_wav_all(&path).unwrap().1 == data);
    }

    #[test]
    fn a_repaired_header_states_the_whole_frames_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.wav");
        let s = spec(48_000, 2, SampleFormat::S24);
        let frames = noise_bytes(100 * 6, 9);
        write_wav_all(&path, s, &frames).unwrap();
        // a writer stopped by an error after two and a half more frames reached the disk
        let extra = noise_bytes(15, 10);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&extra).unwrap();
        drop(f);
        repair_header(&path, 6).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        let src = WavSource::open(&path).unwrap();
        assert_eq!(src.total_frames(), Some(102));
        let head = std::fs::read(&path).unwrap();
        let data_at = data_chunk_length_offset(&head).unwrap();
        assert_eq!(
            len,
            data_at as u64 + 4 + 102 * 6,
            "the partial frame is cut off"
        );
        assert_eq!(read_u32(&head, 4) as u64, len - 8);
        let (_, back) = read_wav_all(&path).unwrap();
        assert_eq!(&back[..600], &frames[..]);
        assert_eq!(back.len(), 612);
        // a file that does not even hold its header holds no audio
        std::fs::write(&path, &head[..20]).unwrap();
        repair_header(&path, 6).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn a_closed_sink_returns_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink =
            WavSink::create(dir.path().join("c.wav"), spec(8_000, 1, SampleFormat::S16)).unwrap();
        sink.writer = None;
        assert!(matches!(
            sink.write_frames(&[0, 1]),
            Err(MediaError::Closed)
        ));
        assert!(matches!(sink.flush(), Err(MediaError::Closed)));
    }

    #[test]
    fn partial_frame_write_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink =
            WavSink::create(dir.path().join("p.wav"), spec(48_000, 2, SampleFormat::S24)).unwrap();
        let err = sink.write_frames(&[0u8; 7]).unwrap_err();
        assert!(
            matches!(
                err,
                MediaError::PartialFrame {
                    len: 7,
                    frame_bytes: 6
                }
            ),
            "{err}"
        );
        assert_eq!(sink.frames_written(), 0);
    }

    #[test]
    fn killed_writer_leaves_readable_file_up_to_last_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("killed.wav");
        let s = spec(48_000, 2, SampleFormat::S16);
        let data = noise_bytes(2_500 * 48 * s.frame_bytes(), 7); // 2.5 s
        let mut sink = WavSink::create(&path, s).unwrap();
        assert_eq!(sink.flush_every_frames(), 48_000);
        // Written in 10 ms blocks, like a receiver would.
        for block in data.chunks(480 * s.frame_bytes()) {
            sink.write_frames(block).unwrap();
        }
        let written = sink.frames_written();
        assert_eq!(written, 120_000);
        // Simulate the process being killed: no finalize, no Drop.
        std::mem::forget(sink);
        let last_flush = written / 48_000 * 48_000; // 96_000 frames

        let r = hound::WavReader::open(&path).expect("hound reads the checkpointed file");
        let hound_frames = r.duration() as u64;
        assert!(hound_frames >= last_flush, "{hound_frames} < {last_flush}");
        assert!(hound_frames <= written);

        let (s2, got) = read_wav_all(&path).unwrap();
        assert_eq!(s2, s);
        let frames = (got.len() / s.frame_bytes()) as u64;
        assert!(frames >= last_flush);
        assert_eq!(got[..], data[..got.len()]);
    }

    #[test]
    fn writer_killed_before_first_checkpoint_is_read_to_end_of_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("early.wav");
        let s = spec(48_000, 1, SampleFormat::S16);
        let data = noise_bytes(20_000 * 2, 3);
        let mut sink = WavSink::create(&path, s).unwrap();
        sink.write_frames(&data).unwrap();
        // Push the BufWriter's bytes out without a header update: header says 0 bytes.
        sink.writer.as_mut().unwrap().flush().unwrap();
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        use std::io::{Seek, SeekFrom, Write};
        f.seek(SeekFrom::Start(40)).unwrap();
        f.write_all(&0u32.to_le_bytes()).unwrap();
        drop(f);
        std::mem::forget(sink);
        let src = WavSource::open(&path).unwrap();
        assert_eq!(src.total_frames(), None);
        let (_, got) = read_wav_all(&path).unwrap();
        assert!(got == data);
    }

    fn write_with_hound(path: &Path, channels: u16, bits: u16, float: bool, container: u16) {
        let wspec = hound::WavSpec {
            channels,
            sample_rate: 48_000,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        };
        let f = BufWriter::new(File::create(path).unwrap());
        let mut w = hound::WavWriter::new_with_spec_ex(
            f,
            hound::WavSpecEx {
                spec: wspec,
                bytes_per_sample: container,
            },
        )
        .unwrap();
        for i in 0..channels as i32 * 10 {
            if float {
                w.write_sample(i as f32 / 100.0).unwrap();
            } else {
                w.write_sample(i).unwrap();
            }
        }
        w.finalize().unwrap();
    }

    #[test]
    fn unsupported_files_give_precise_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.wav");

        write_with_hound(&p, 1, 8, false, 1);
        let e = WavSource::open(&p).unwrap_err();
        assert!(
            matches!(
                e,
                MediaError::UnsupportedFormat {
                    bits: 8,
                    float: false
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("8-bit integer"), "{e}");

        write_with_hound(&p, 2, 32, false, 4);
        let e = WavSource::open(&p).unwrap_err();
        assert!(
            matches!(
                e,
                MediaError::UnsupportedFormat {
                    bits: 32,
                    float: false
                }
            ),
            "{e}"
        );

        write_with_hound(&p, 9, 16, false, 2);
        let e = WavSource::open(&p).unwrap_err();
        assert!(
            matches!(e, MediaError::TooManyChannels { channels: 9 }),
            "{e}"
        );

        write_with_hound(&p, 2, 24, false, 4);
        let e = WavSource::open(&p).unwrap_err();
        assert!(
            matches!(
                e,
                MediaError::UnsupportedContainer {
                    bits: 24,
                    container_bytes: 4
                }
            ),
            "{e}"
        );

        // Supported ones written by hound directly open fine.
        write_with_hound(&p, 8, 24, false, 3);
        assert_eq!(
            WavSource::open(&p).unwrap().spec().format,
            SampleFormat::S24
        );
        write_with_hound(&p, 1, 32, true, 4);
        assert_eq!(
            WavSource::open(&p).unwrap().spec().format,
            SampleFormat::F32
        );

        // Hand-made headers: 64-bit float and A-law.
        let header = |tag: u16, bits: u16| {
            let ch = 1u16;
            let align = ch * bits / 8;
            let mut h = Vec::new();
            h.extend_from_slice(b"RIFF");
            h.extend_from_slice(&(36u32 + 16).to_le_bytes());
            h.extend_from_slice(b"WAVEfmt ");
            h.extend_from_slice(&16u32.to_le_bytes());
            h.extend_from_slice(&tag.to_le_bytes());
            h.extend_from_slice(&ch.to_le_bytes());
            h.extend_from_slice(&8000u32.to_le_bytes());
            h.extend_from_slice(&(8000u32 * align as u32).to_le_bytes());
            h.extend_from_slice(&align.to_le_bytes());
            h.extend_from_slice(&bits.to_le_bytes());
            h.extend_from_slice(b"data");
            h.extend_from_slice(&16u32.to_le_bytes());
            h.extend_from_slice(&[0u8; 16]);
            h
        };
        std::fs::write(&p, header(3, 64)).unwrap();
        let e = WavSource::open(&p).unwrap_err();
        assert!(
            matches!(
                e,
                MediaError::UnsupportedFormat {
                    bits: 64,
                    float: true
                }
            ),
            "{e}"
        );
        std::fs::write(&p, header(6, 8)).unwrap();
        let e = WavSource::open(&p).unwrap_err();
        assert!(
            matches!(e, MediaError::UnsupportedEncoding { tag: 6 }),
            "{e}"
        );
        std::fs::write(&p, b"RIFX....").unwrap();
        assert!(matches!(
            WavSource::open(&p).unwrap_err(),
            MediaError::Malformed { .. }
        ));

        let e = WavSink::create(&p, spec(48_000, 9, SampleFormat::S16)).unwrap_err();
        assert!(matches!(e, MediaError::TooManyChannels { channels: 9 }));
        let e = WavSink::create(&p, spec(0, 2, SampleFormat::S16)).unwrap_err();
        assert!(matches!(e, MediaError::InvalidRate { rate: 0 }));
    }

    #[test]
    fn skips_unknown_chunks_before_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("list.wav");
        let s = spec(8_000, 2, SampleFormat::S16);
        write_wav_all(&p, s, &[0, 1, 0, 2, 0, 3, 0, 4]).unwrap();
        // Insert an odd-length LIST chunk (with pad byte) between fmt and data.
        let bytes = std::fs::read(&p).unwrap();
        let data_at = bytes.windows(4).position(|w| w == b"data").unwrap();
        let mut out = bytes[..data_at].to_vec();
        out.extend_from_slice(b"LIST");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&[1, 2, 3, 0]);
        out.extend_from_slice(&bytes[data_at..]);
        std::fs::write(&p, out).unwrap();
        let (s2, data) = read_wav_all(&p).unwrap();
        assert_eq!(s2, s);
        assert_eq!(data, vec![0, 1, 0, 2, 0, 3, 0, 4]);
    }
}
