//! File, pipe and device I/O on threads of their own, behind bounded queues, so that a slow
//! disk or a stalled pipe never stops the thread that reads the socket.
//!
//! - [`ReadAhead`]: a stored source is read ahead on its own thread into a bounded channel of
//!   chunks; the sender's host takes frames from the chunk at hand without blocking.
//! - [`SinkThread`]: played-out audio is handed to a writer thread through a queue bounded in
//!   frames; while the queue is full the pump plays no further (the audio waits in the jitter
//!   buffer, and the watermarks pause the sender if it comes to that).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::audio::{AudioSink, AudioSource};

/// Frames read from a stored source per chunk.
pub const READ_CHUNK_FRAMES: usize = 4096;
/// Chunks a [`ReadAhead`] holds ready.
pub const READ_AHEAD_CHUNKS: usize = 8;
/// Bytes of the arena chunks are split off (one allocation per this many bytes read).
const ARENA_BYTES: usize = 256 * 1024;

/// Starts reading `source` on a thread of its own. Returns the receiving end: chunks of whole
/// frames of `frame_bytes` bytes, an error, and then the channel closes at the end of the
/// input. At most [`READ_AHEAD_CHUNKS`] chunks wait in the channel.
pub fn read_ahead(
    mut source: Box<dyn AudioSource>,
    frame_bytes: usize,
) -> mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(READ_AHEAD_CHUNKS);
    std::thread::spawn(move || {
        forward_chunks(
            |b| source.read_frames(b),
            tx,
            READ_CHUNK_FRAMES,
            frame_bytes,
        )
    });
    rx
}

/// Reads chunks of `chunk_frames` frames of `frame_bytes` bytes with `read` (which fills
/// whole frames and returns how many, 0 at the end) and sends them on `tx`, blocking while
/// the channel is full: the loop of a reader thread (a stored source read ahead, a live
/// source as it captures). Chunks are split off an arena, so the steady state allocates once
/// per 256 KiB, not once per chunk. A read error is passed on and ends the input; the loop
/// also ends when the receiving side is gone.
pub fn forward_chunks(
    mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    tx: mpsc::Sender<io::Result<Bytes>>,
    chunk_frames: usize,
    frame_bytes: usize,
) {
    let chunk = chunk_frames * frame_bytes.max(1);
    let mut arena = BytesMut::new();
    loop {
        if arena.capacity() < chunk {
            arena = BytesMut::with_capacity(chunk.max(ARENA_BYTES));
        }
        arena.resize(chunk, 0);
        match read(&mut arena[..]) {
            Ok(0) => break,
            Ok(n) => {
                arena.truncate(n * frame_bytes);
                if tx.blocking_send(Ok(arena.split().freeze())).is_err() {
                    break;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                break;
            }
        }
    }
}

/// The sender's view of a chunked input (a [`read_ahead`] channel or a live capture): the
/// chunk at hand and how much of it was taken.
pub struct ReadAhead {
    rx: Option<mpsc::Receiver<io::Result<Bytes>>>,
    chunk: Bytes,
    taken_bytes: usize,
    frame_bytes: usize,
}

impl ReadAhead {
    /// Takes chunks of whole frames of `frame_bytes` bytes from `rx`; its closing ends the
    /// input.
    pub fn new(rx: mpsc::Receiver<io::Result<Bytes>>, frame_bytes: usize) -> Self {
        ReadAhead {
            rx: Some(rx),
            chunk: Bytes::new(),
            taken_bytes: 0,
            frame_bytes,
        }
    }

    /// Whether frames are at hand without waiting.
    pub fn has_frames(&self) -> bool {
        self.taken_bytes < self.chunk.len()
    }

    /// Whether the input has ended and everything was taken.
    pub fn is_done(&self) -> bool {
        self.rx.is_none() && !self.has_frames()
    }

    /// Makes `chunk` (just received, e.g. in a `select!`) the chunk at hand. Only call when
    /// [`Self::has_frames`] is false. `None`: the channel closed, the input has ended.
    pub fn put(&mut self, chunk: Option<io::Result<Bytes>>) -> io::Result<()> {
        match chunk {
            Some(Ok(c)) => {
                self.chunk = c;
                self.taken_bytes = 0;
                Ok(())
            }
            Some(Err(e)) => {
                self.rx = None;
                Err(e)
            }
            None => {
                self.rx = None;
                Ok(())
            }
        }
    }

    /// The channel, to wait on it for the next chunk (`None` after the end).
    pub fn channel(&mut self) -> Option<&mut mpsc::Receiver<io::Result<Bytes>>> {
        self.rx.as_mut()
    }

    /// Up to `max_frames` frames at hand, without waiting: `Ok(None)` if there are none now
    /// (and the input goes on), an empty slice at the end.
    pub fn frames(&mut self, max_frames: usize) -> io::Result<Option<&[u8]>> {
        if !self.has_frames() {
            let next = match self.rx.as_mut() {
                None => return Ok(Some(&[])),
                Some(rx) => match rx.try_recv() {
                    Ok(c) => Some(c),
                    Err(mpsc::error::TryRecvError::Empty) => return Ok(None),
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                },
            };
            self.put(next)?;
            if !self.has_frames() {
                return Ok(if self.rx.is_none() { Some(&[]) } else { None });
            }
        }
        let avail = self.chunk.len() - self.taken_bytes;
        let n = avail.min(max_frames.saturating_mul(self.frame_bytes));
        Ok(Some(&self.chunk[self.taken_bytes..self.taken_bytes + n]))
    }

    /// Marks `frames` frames of the last [`Self::frames`] as taken.
    pub fn consume(&mut self, frames: usize) {
        self.taken_bytes = (self.taken_bytes + frames * self.frame_bytes).min(self.chunk.len());
    }
}

enum Msg {
    Frames(Bytes),
    Flush,
}

/// A sink that writes on a thread of its own. Writes and flushes return at once; the queue
/// between the two threads holds at most `capacity_frames` frames, and
/// [`AudioSink::room_frames`] says how much room is left. An error of the writer thread is
/// returned by the next call.
pub struct SinkThread {
    tx: Option<std_mpsc::Sender<Msg>>,
    handle: Option<JoinHandle<io::Result<()>>>,
    queued_bytes: Arc<AtomicUsize>,
    error: Arc<Mutex<Option<io::Error>>>,
    capacity_bytes: usize,
    frame_bytes: usize,
    arena: BytesMut,
}

impl SinkThread {
    /// Moves `sink` to a writer thread, with a queue of at most `capacity_frames` frames of
    /// `frame_bytes` bytes.
    pub fn new(mut sink: Box<dyn AudioSink>, frame_bytes: usize, capacity_frames: usize) -> Self {
        let (tx, rx) = std_mpsc::channel::<Msg>();
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let error = Arc::new(Mutex::new(None));
        let (q, err) = (queued_bytes.clone(), error.clone());
        let handle = std::thread::spawn(move || {
            let mut result = Ok(());
            for m in rx {
                let r = match m {
                    Msg::Frames(b) => {
                        let r = sink.write_frames(&b);
                        q.fetch_sub(b.len(), Ordering::AcqRel);
                        r
                    }
                    Msg::Flush => sink.flush(),
                };
                if let Err(e) = r {
                    *err.lock().expect("writer error lock") =
                        Some(io::Error::new(e.kind(), e.to_string()));
                    result = Err(e);
                    break;
                }
            }
            // the end of the stream (or of the session): make the file whole
            let end = sink.flush();
            result.and(end)
        });
        SinkThread {
            tx: Some(tx),
            handle: Some(handle),
            queued_bytes,
            error,
            capacity_bytes: capacity_frames.saturating_mul(frame_bytes),
            frame_bytes: frame_bytes.max(1),
            arena: BytesMut::new(),
        }
    }

    fn check(&self) -> io::Result<()> {
        match self.error.lock().expect("writer error lock").take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn send(&mut self, m: Msg) -> io::Result<()> {
        self.check()?;
        match &self.tx {
            Some(tx) => tx
                .send(m)
                .map_err(|_| io::Error::other("the audio writer thread stopped")),
            None => Err(io::Error::other("the sink is closed")),
        }
    }

    /// Nothing more will be written (its session was replaced): the writer finishes what
    /// is queued and finalizes the sink on its own, and the arena is freed now. [`close`]
    /// still waits for it and returns its error.
    ///
    /// [`close`]: SinkThread::close
    pub fn finish(&mut self) {
        self.tx = None;
        self.arena = BytesMut::new();
    }

    /// Waits until everything queued is written and the sink is flushed (the end of the
    /// stream). Returns the first error the writer met.
    pub fn close(&mut self) -> io::Result<()> {
        self.tx = None;
        match self.handle.take() {
            Some(h) => h
                .join()
                .map_err(|_| io::Error::other("the audio writer thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl AudioSink for SinkThread {
    fn write_frames(&mut self, frames: &[u8]) -> io::Result<()> {
        if frames.is_empty() {
            return self.check();
        }
        if self.arena.capacity() < frames.len() {
            self.arena = BytesMut::with_capacity(frames.len().max(ARENA_BYTES));
        }
        self.arena.extend_from_slice(frames);
        self.queued_bytes.fetch_add(frames.len(), Ordering::AcqRel);
        let b = self.arena.split().freeze();
        self.send(Msg::Frames(b))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send(Msg::Flush)
    }

    fn room_frames(&mut self) -> usize {
        let queued = self.queued_bytes.load(Ordering::Acquire);
        self.capacity_bytes.saturating_sub(queued) / self.frame_bytes
    }
}

impl Drop for SinkThread {
    fn drop(&mut self) {
        // the writer finishes what is queued and finalizes the file on its own
        self.tx = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{Receiver, SyncSender};

    /// A sink whose writes wait for a go-ahead, like a pipe nobody reads.
    struct Gated {
        gate: Receiver<()>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl AudioSink for Gated {
        fn write_frames(&mut self, frames: &[u8]) -> io::Result<()> {
            self.gate
                .recv()
                .map_err(|_| io::Error::other("gate gone"))?;
            self.written.lock().unwrap().extend_from_slice(frames);
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn gated() -> (SyncSender<()>, Arc<Mutex<Vec<u8>>>, SinkThread) {
        let (go, gate) = std_mpsc::sync_channel(1024);
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = Gated {
            gate,
            written: written.clone(),
        };
        (go, written, SinkThread::new(Box::new(sink), 4, 100))
    }

    #[test]
    fn a_stalled_sink_never_blocks_the_caller_and_its_room_shrinks() {
        let (go, written, mut s) = gated();
        assert_eq!(s.room_frames(), 100);
        s.write_frames(&[1; 160]).unwrap(); // 40 frames, the writer blocks on them
        s.write_frames(&[2; 160]).unwrap();
        assert_eq!(s.room_frames(), 20);
        for _ in 0..2 {
            go.send(()).unwrap();
        }
        s.close().unwrap();
        let w = written.lock().unwrap();
        assert_eq!(w.len(), 320);
        assert!(w[..160].iter().all(|&b| b == 1) && w[160..].iter().all(|&b| b == 2));
    }

    #[test]
    fn a_finished_sink_writes_what_was_queued_and_frees_its_arena() {
        let (go, written, mut s) = gated();
        s.write_frames(&[3; 160]).unwrap();
        assert!(s.arena.capacity() > 0);
        s.finish();
        assert_eq!(s.arena.capacity(), 0);
        // nothing more can be written; what was queued still is
        assert!(s.write_frames(&[4; 8]).is_err());
        go.send(()).unwrap();
        s.close().unwrap();
        assert_eq!(written.lock().unwrap().len(), 160);
    }

    #[test]
    fn a_writer_error_is_returned_by_the_next_call() {
        let (go, _written, mut s) = gated();
        drop(go); // the gate closes: the write fails
        s.write_frames(&[1; 8]).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if s.write_frames(&[1; 8]).is_err() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the error never surfaced"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    struct Counting(u8, usize);

    impl AudioSource for Counting {
        fn read_frames(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = (out.len() / 2).min(self.1);
            for f in out[..n * 2].chunks_exact_mut(2) {
                f.fill(self.0);
                self.0 = self.0.wrapping_add(1);
            }
            self.1 -= n;
            Ok(n)
        }
    }

    #[test]
    fn read_ahead_delivers_the_whole_input_in_order() {
        let rx = read_ahead(Box::new(Counting(0, 10_000)), 2);
        let mut r = ReadAhead::new(rx, 2);
        let mut got = Vec::new();
        loop {
            match r.frames(777).unwrap() {
                Some([]) => break,
                Some(f) => {
                    let n = f.len() / 2;
                    got.extend_from_slice(f);
                    r.consume(n);
                }
                None => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        assert_eq!(got.len(), 20_000);
        for (i, f) in got.chunks_exact(2).enumerate() {
            assert_eq!(f, [(i % 256) as u8; 2]);
        }
        assert!(r.is_done());
    }
}
