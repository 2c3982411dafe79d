//! Glue between the media crate and the drivers: audio sources and sinks for the CLI.

use std::io;
use std::path::{Path, PathBuf};

use isostream_drive::AudioSink;
use isostream_drive::AudioSource;
use isostream_media::{
    AudioSpec, PcmReader, PcmWriter, RawFormat, SignalSource, WavSink, WavSource,
};

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// A WAV file as a sender source.
pub struct WavInput(pub WavSource);

impl AudioSource for WavInput {
    fn read_frames(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.0.read_frames(out).map_err(io_err)
    }
}

/// Raw PCM (e.g. stdin) as a sender source.
pub struct PcmInput<R: io::Read + Send>(pub PcmReader<R>);

impl<R: io::Read + Send> AudioSource for PcmInput<R> {
    fn read_frames(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.0.read_frames(out)
    }
}

/// A synthesized program, `frames` long, as a sender source.
pub struct SignalInput {
    /// The generator.
    pub source: SignalSource,
    /// Frames left to produce.
    pub remaining: u64,
}

impl AudioSource for SignalInput {
    fn read_frames(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let fb = self.source.spec().frame_bytes();
        let n = (out.len() / fb).min(self.remaining as usize);
        let got = self.source.read_frames(&mut out[..n * fb]);
        self.remaining -= got as u64;
        Ok(got)
    }
}

/// Several inputs of one rate and format side by side, as the substreams of one session.
/// A shorter input is padded with silence until the longest ends.
pub struct MultiInput {
    inputs: Vec<(Box<dyn AudioSource>, usize, bool)>,
    scratch: Vec<u8>,
    frame_bytes: usize,
}

impl MultiInput {
    /// Combines `inputs`, each with its frame size in bytes.
    pub fn new(inputs: Vec<(Box<dyn AudioSource>, usize)>) -> Self {
        let frame_bytes = inputs.iter().map(|(_, fb)| fb).sum();
        MultiInput {
            inputs: inputs.into_iter().map(|(s, fb)| (s, fb, false)).collect(),
            scratch: Vec::new(),
            frame_bytes,
        }
    }
}

impl AudioSource for MultiInput {
    fn read_frames(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let frames = out.len() / self.frame_bytes;
        let mut longest = 0;
        let mut offset = 0;
        for (src, fb, done) in &mut self.inputs {
            self.scratch.resize(frames * *fb, 0);
            let mut got = 0;
            while !*done && got < frames {
                let n = src.read_frames(&mut self.scratch[got * *fb..])?;
                if n == 0 {
                    *done = true;
                }
                got += n;
            }
            self.scratch[got * *fb..].fill(0);
            longest = longest.max(got);
            for f in 0..frames {
                let dst = f * self.frame_bytes + offset;
                out[dst..dst + *fb].copy_from_slice(&self.scratch[f * *fb..(f + 1) * *fb]);
            }
            offset += *fb;
        }
        Ok(longest)
    }
}

/// A WAV file as a receiver sink (flushed about every second, finalized on drop).
pub struct WavOutput(pub WavSink);

impl AudioSink for WavOutput {
    fn write_frames(&mut self, frames: &[u8]) -> io::Result<()> {
        self.0.write_frames(frames).map_err(io_err)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(io_err)
    }
}

/// Raw PCM on stdout as a receiver sink.
pub struct PcmOutput<W: io::Write + Send>(pub PcmWriter<W>);

impl<W: io::Write + Send> AudioSink for PcmOutput<W> {
    fn write_frames(&mut self, frames: &[u8]) -> io::Result<()> {
        self.0.write_frames(frames)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// One WAV file per substream in a directory (`substream-1.wav`, ...).
pub struct SplitWavOutput {
    sinks: Vec<(WavSink, usize)>,
    frame_bytes: usize,
    scratch: Vec<u8>,
}

impl SplitWavOutput {
    /// Creates the files for substreams of `channels` channels each, in `dir`.
    pub fn create(dir: &Path, spec: AudioSpec, channels: &[u16]) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut sinks = Vec::new();
        for (i, &c) in channels.iter().enumerate() {
            let s = AudioSpec {
                channels: c,
                ..spec
            };
            let path: PathBuf = dir.join(format!("substream-{}.wav", i + 1));
            sinks.push((WavSink::create(&path, s).map_err(io_err)?, s.frame_bytes()));
        }
        Ok(SplitWavOutput {
            sinks,
            frame_bytes: spec.frame_bytes(),
            scratch: Vec::new(),
        })
    }
}

impl AudioSink for SplitWavOutput {
    fn write_frames(&mut self, frames: &[u8]) -> io::Result<()> {
        let mut offset = 0;
        for (sink, fb) in &mut self.sinks {
            self.scratch.clear();
            for f in frames.chunks_exact(self.frame_bytes) {
                self.scratch.extend_from_slice(&f[offset..offset + *fb]);
            }
            sink.write_frames(&self.scratch).map_err(io_err)?;
            offset += *fb;
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        for (s, _) in &mut self.sinks {
            s.flush().map_err(io_err)?;
        }
        Ok(())
    }
}

/// Feeds a live source to the sender driver ([`isostream_drive::send::Input::Live`]) in
/// chunks of `chunk_frames` frames of `frame_bytes` bytes. `read` fills whole frames and
/// returns how many, 0 at the end. Chunks are split off an arena, so the steady state
/// allocates once per 64 KiB, not once per chunk. Runs until the end or the driver is gone;
/// a read error is passed on (it ends the stream with that error).
pub fn forward_live(
    read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    tx: tokio::sync::mpsc::Sender<io::Result<bytes::Bytes>>,
    chunk_frames: usize,
    frame_bytes: usize,
) {
    isostream_drive::offload::forward_chunks(read, tx, chunk_frames, frame_bytes)
}

/// Parses a raw format name for stdin/stdout (`s16le`, `s16be`, `s24le`, `f32le`).
pub fn raw_format(s: &str) -> Result<RawFormat, String> {
    s.parse::<RawFormat>().map_err(|e| e.to_string())
}
