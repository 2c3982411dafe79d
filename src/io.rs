//! Glue between the media crate and the drivers: audio sources and sinks for the CLI.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use isostream_drive::AudioSink;
use isostream_drive::AudioSource;
use isostream_media::{
    AudioSpec, MediaError, PcmReader, PcmWriter, RawFormat, SignalSource, WavSink, WavSource,
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

/// An error of the WAV file at `path` as one line: "cannot write PATH: reason", of the
/// same kind as the operating system's error if there was one.
fn wav_err(path: &Path, e: MediaError) -> io::Error {
    let kind = match &e {
        MediaError::Io(e) => e.kind(),
        _ => io::ErrorKind::Other,
    };
    let reason = match e {
        MediaError::Io(e) => e.to_string(),
        e => e.to_string(),
    };
    io::Error::new(kind, format!("cannot write {}: {reason}", path.display()))
}

/// A WAV file as a receiver sink (flushed about every second, finalized on drop).
pub struct WavOutput(pub WavSink);

impl AudioSink for WavOutput {
    fn write_frames(&mut self, frames: &[u8]) -> io::Result<()> {
        let r = self.0.write_frames(frames);
        r.map_err(|e| wav_err(self.0.path(), e))
    }
    fn flush(&mut self) -> io::Result<()> {
        let r = self.0.flush();
        r.map_err(|e| wav_err(self.0.path(), e))
    }
}

/// A sink that discards what it is given: where the audio of a session goes whose real sink
/// could not be made (the receiver refuses the session and lives on).
pub struct Discard;

impl AudioSink for Discard {
    fn write_frames(&mut self, _frames: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether `path` holds a recording that must not be overwritten: a regular file with
/// something in it. An empty file, a missing one, or something else (`/dev/null`) may be
/// written.
pub fn holds_recording(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0)
}

/// The `n`-th name (from 1) of the file names a receiver writes successive sessions to:
/// `out.wav`, `out-2.wav`, `out-3.wav`, ... for `--out out.wav` (the number goes before the
/// extension; a name without one gets `-2`, `-3`, ... at its end).
pub fn numbered_file(first: &Path, n: u32) -> PathBuf {
    if n <= 1 {
        return first.to_path_buf();
    }
    let stem = first.file_stem().unwrap_or_default().to_string_lossy();
    let name = match first.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    first.with_file_name(name)
}

/// The directory the `n`-th session (from 1) of `--out-dir DIR` is written to: `DIR` itself,
/// then `DIR/session-2`, `DIR/session-3`, ...
pub fn numbered_dir(dir: &Path, n: u32) -> PathBuf {
    if n <= 1 {
        dir.to_path_buf()
    } else {
        dir.join(format!("session-{n}"))
    }
}

/// The file of substream `i` (from 0) in a session's directory: `substream-1.wav`, ...
pub fn substream_file(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("substream-{}.wav", i + 1))
}

/// Hands out where each session of a receiver run is written, so that no session ever
/// overwrites a recording (an earlier session's, or one left by an earlier run): the next
/// name of the pattern ([`numbered_file`], [`numbered_dir`]) that holds no recording.
///
/// A session that played nothing into its files (a stream without a description whose
/// description then came, and replaced it before playback) gives its name back: its files
/// are removed, and the next session is written in their place
/// ([`Recordings::discard_last_if_empty`]).
#[derive(Debug)]
pub struct Recordings {
    base: PathBuf,
    next: u32,
    last: Option<LastRecording>,
}

/// The files of the last session, and what was written to them.
#[derive(Debug)]
struct LastRecording {
    n: u32,
    files: Vec<PathBuf>,
    /// The session's own directory (`DIR/session-N`), if it made one.
    dir: Option<PathBuf>,
    written: Arc<AtomicU64>,
}

impl Recordings {
    /// Names starting from `base` (the `--out` file or the `--out-dir` directory).
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Recordings {
            base: base.into(),
            next: 1,
            last: None,
        }
    }

    /// Creates the file of the next session of `--out FILE` with `create`: at the first
    /// name from the last one used on that holds no recording. A name is used once `create`
    /// succeeds; a session that could not be written leaves its name to the next one.
    /// Returns the sink, wrapped to count what is written to it, and the file's name.
    pub fn create_file<S: AudioSink, E>(
        &mut self,
        create: impl FnOnce(&Path) -> Result<S, E>,
    ) -> Result<(Counted<S>, PathBuf), E> {
        self.last = None;
        let mut n = self.next;
        while holds_recording(&numbered_file(&self.base, n)) {
            n += 1;
        }
        let p = numbered_file(&self.base, n);
        let sink = create(&p)?;
        Ok((self.used(n, vec![p.clone()], None, sink), p))
    }

    /// Creates the files of the next session of `--out-dir DIR` with `create`, in the first
    /// directory of the pattern from the last one used on where none of the `substreams`
    /// files ([`substream_file`]) holds a recording. As for [`Self::create_file`], a
    /// directory is used once `create` succeeds.
    pub fn create_in_dir<S: AudioSink, E>(
        &mut self,
        substreams: usize,
        create: impl FnOnce(&Path) -> Result<S, E>,
    ) -> Result<(Counted<S>, PathBuf), E> {
        self.last = None;
        let mut n = self.next;
        loop {
            let d = numbered_dir(&self.base, n);
            // a file where a session's directory would go is someone else's
            let clash = n > 1 && d.exists() && !d.is_dir();
            if !clash && !(0..substreams).any(|i| holds_recording(&substream_file(&d, i))) {
                let made_dir = (n > 1 && !d.exists()).then(|| d.clone());
                let sink = create(&d)?;
                let files = (0..substreams).map(|i| substream_file(&d, i)).collect();
                return Ok((self.used(n, files, made_dir, sink), d));
            }
            n += 1;
        }
    }

    fn used<S: AudioSink>(
        &mut self,
        n: u32,
        files: Vec<PathBuf>,
        dir: Option<PathBuf>,
        sink: S,
    ) -> Counted<S> {
        self.next = n + 1;
        let written = Arc::new(AtomicU64::new(0));
        self.last = Some(LastRecording {
            n,
            files,
            dir,
            written: written.clone(),
        });
        Counted {
            inner: sink,
            written,
        }
    }

    /// The last session's files are kept whatever happens next (it played audio).
    pub fn keep_last(&mut self) {
        self.last = None;
    }

    /// If nothing was written to the last session's files (it played no audio), removes them
    /// and gives their name back to the next session. Returns whether it did. A writer that
    /// still holds such a file open writes into the removed file, never into the next one.
    pub fn discard_last_if_empty(&mut self) -> bool {
        let Some(last) = self.last.take() else {
            return false;
        };
        if last.written.load(Ordering::Acquire) > 0 {
            return false;
        }
        for f in &last.files {
            let _ = std::fs::remove_file(f);
        }
        if let Some(d) = &last.dir {
            // only if empty: it never holds anything but the session's files
            let _ = std::fs::remove_dir(d);
        }
        self.next = last.n;
        true
    }
}

/// A sink that counts the bytes written through it (see [`Recordings`]).
pub struct Counted<S> {
    inner: S,
    written: Arc<AtomicU64>,
}

impl<S: AudioSink> AudioSink for Counted<S> {
    fn write_frames(&mut self, frames: &[u8]) -> io::Result<()> {
        self.written
            .fetch_add(frames.len() as u64, Ordering::AcqRel);
        self.inner.write_frames(frames)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Raw PCM on stdout as a receiver sink.
pub struct PcmOutput<W: io::Write + Send>(pub PcmWriter<W>);

fn pcm_err(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write raw PCM: {e}"))
}

impl<W: io::Write + Send> AudioSink for PcmOutput<W> {
    fn write_frames(&mut self, frames: &[u8]) -> io::Result<()> {
        self.0.write_frames(frames).map_err(pcm_err)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(pcm_err)
    }
}

/// One WAV file per substream in a directory (`substream-1.wav`, ...; [`substream_file`]).
pub struct SplitWavOutput {
    sinks: Vec<(WavSink, usize)>,
    frame_bytes: usize,
    scratch: Vec<u8>,
}

impl SplitWavOutput {
    /// Creates the files for substreams of `channels` channels each, in `dir`.
    pub fn create(dir: &Path, spec: AudioSpec, channels: &[u16]) -> io::Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
        })?;
        let mut sinks = Vec::new();
        for (i, &c) in channels.iter().enumerate() {
            let s = AudioSpec {
                channels: c,
                ..spec
            };
            let path = substream_file(dir, i);
            let sink = WavSink::create(&path, s).map_err(|e| wav_err(&path, e))?;
            sinks.push((sink, s.frame_bytes()));
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
            let r = sink.write_frames(&self.scratch);
            r.map_err(|e| wav_err(sink.path(), e))?;
            offset += *fb;
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        for (s, _) in &mut self.sinks {
            let r = s.flush();
            r.map_err(|e| wav_err(s.path(), e))?;
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
