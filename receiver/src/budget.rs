//! The memory budget: one figure, in bytes, that every buffer of a receiver session counts
//! against, and the slab that datagrams kept for later are copied into.
//!
//! A receiver allocates in three places an attacker can reach:
//!
//! - the session's own buffers, sized by its layout (a description, or a stock stream's
//!   first packet): jitter buffers, playout scratch, the concealer, the resampler, the FEC
//!   decoder's window, the NACK stage ([`crate::substream::Substreams::memory_bytes`] adds
//!   them up; every stage says what it allocates at most; [`crate::layout::Layout::admit`]
//!   checks them against the budget);
//! - the pending queue: datagrams held while a session waits for its description;
//! - the successor queue: datagrams of another stream kept while a session plays
//!   ([`crate::successor`]).
//!
//! The caller's queue of played-out audio (`ReceiverConfig::output_queue_ms`, the driver's
//! queue to a file writer) counts with the session's buffers.
//!
//! [`MemoryBudget`] splits the configured budget between them: each queue gets a fixed share
//! ([`QUEUE_SHARE_DIVISOR`]), a fixed allowance covers the session's small state
//! ([`SESSION_OVERHEAD_BYTES`]), and a layout whose buffers do not fit in the rest is refused
//! before anything is allocated for it.
//!
//! Datagrams arrive as [`Bytes`] slices of the driver's receive arena (1 MiB in
//! `isostream-drive`): a datagram kept for long would pin the whole arena. What is kept
//! (pending and successor queues, the FEC decoder's source packets) is copied into a
//! [`Slab`], chunks the size of a few datagrams, so what a queue holds is what it counts.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use isostream_transport::time::Instant;

/// Default memory budget of a receiver (or sender) session, in bytes: a stereo stream needs
/// about 5 MiB under the command line's watermarks (docs/BENCHMARKS.md).
pub const DEFAULT_MEMORY_BUDGET_BYTES: usize = 64 << 20;
/// Smallest memory budget a session accepts, in bytes.
pub const MIN_MEMORY_BUDGET_BYTES: usize = 16 << 20;
/// Each of the two queues (pending, successor) gets this fraction of the budget (1/16).
pub const QUEUE_SHARE_DIVISOR: usize = 16;
/// What a session's small state takes beyond its layout's buffers (timers, flow control,
/// control packets being built, the datagram queue, the playout clock), in bytes.
pub const SESSION_OVERHEAD_BYTES: usize = 256 << 10;

/// How a budget is split between the session's buffers and its queues. All in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBudget {
    /// The whole budget, in bytes.
    pub total_bytes: usize,
}

impl MemoryBudget {
    /// A budget of `total_bytes`.
    pub fn new(total_bytes: usize) -> Self {
        MemoryBudget { total_bytes }
    }

    /// What the pending queue (datagrams before a description) may hold, in bytes.
    pub fn pending_bytes(&self) -> usize {
        self.total_bytes / QUEUE_SHARE_DIVISOR
    }

    /// What the successor queue may hold, in bytes.
    pub fn successor_bytes(&self) -> usize {
        self.total_bytes / QUEUE_SHARE_DIVISOR
    }

    /// What one session's layout-sized buffers may take, in bytes: the budget less the
    /// queues' shares (with their slabs' slack) and the session's small state.
    pub fn session_bytes(&self) -> usize {
        self.total_bytes.saturating_sub(
            DatagramQueue::<Instant>::memory_bytes(self.pending_bytes())
                + DatagramQueue::<Instant>::memory_bytes(self.successor_bytes())
                + SESSION_OVERHEAD_BYTES,
        )
    }
}

/// Why a session was refused: its buffers would not fit in the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the session's buffers need {needed_bytes} bytes ({} MiB), more than the {available_bytes} bytes ({} MiB) the memory budget leaves a session",
    needed_bytes.div_ceil(1 << 20),
    available_bytes / (1 << 20)
)]
pub struct OverBudget {
    /// What the layout's buffers would take, in bytes.
    pub needed_bytes: usize,
    /// What the budget leaves a session's buffers, in bytes.
    pub available_bytes: usize,
}

/// Datagrams copied into chunks of memory of its own, so a kept datagram does not pin the
/// buffer it arrived in. A chunk is allocated when the current one is full, and freed once
/// every datagram copied into it is dropped: datagrams dropped in the order they were
/// copied (a FIFO) keep at most their own bytes plus two chunks alive. The slab knows which
/// chunks are still alive ([`Slab::live_bytes`]), so a user that drops its datagrams in
/// another order can bound them too.
#[derive(Debug)]
pub struct Slab {
    buf: BytesMut,
    chunk_bytes: usize,
    /// The chunks allocated: their size and an empty slice of each, which is the only
    /// reference left once every datagram of the chunk is dropped.
    chunks: VecDeque<(usize, Bytes)>,
    live_bytes: usize,
}

impl Slab {
    /// A slab of chunks of `chunk_bytes` bytes (nothing allocated yet).
    pub fn new(chunk_bytes: usize) -> Self {
        Slab {
            buf: BytesMut::new(),
            chunk_bytes: chunk_bytes.max(64),
            chunks: VecDeque::new(),
            live_bytes: 0,
        }
    }

    /// The size of its chunks, in bytes.
    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes
    }

    /// A copy of `d` in the slab (a datagram larger than a chunk gets a chunk of its own).
    pub fn copy(&mut self, d: &[u8]) -> Bytes {
        if self.buf.capacity() < d.len() {
            let size = self.chunk_bytes.max(d.len());
            self.buf = BytesMut::with_capacity(size);
            self.sweep();
            self.chunks.push_back((size, self.buf.split_to(0).freeze()));
            self.live_bytes += size;
        }
        self.buf.extend_from_slice(d);
        self.buf.split().freeze()
    }

    /// Forgets the chunks nobody uses any more.
    fn sweep(&mut self) {
        let mut freed = 0;
        self.chunks.retain(|(size, c)| {
            let dead = c.is_unique();
            if dead {
                freed += size;
            }
            !dead
        });
        self.live_bytes -= freed;
    }

    /// Bytes of the chunks still alive (some datagram copied into them is not dropped, or
    /// it is the chunk being filled), as of the last allocation.
    pub fn live_bytes(&self) -> usize {
        self.live_bytes
    }

    /// Bytes of the chunks still alive, found out now.
    pub fn live_bytes_now(&mut self) -> usize {
        self.sweep();
        self.live_bytes
    }
}

/// A first-in first-out queue of datagrams (each with a tag, e.g. its arrival time), capped
/// in bytes and in count, whose datagrams are copies in a [`Slab`].
#[derive(Debug)]
pub struct DatagramQueue<T> {
    items: VecDeque<(T, Bytes)>,
    held_bytes: usize,
    cap_bytes: usize,
    slab: Slab,
}

/// At most this many datagrams are held by a queue, whatever their size.
pub const MAX_QUEUED_DATAGRAMS: usize = 4096;

impl<T> DatagramQueue<T> {
    /// A queue holding at most `cap_bytes` of datagrams (and [`MAX_QUEUED_DATAGRAMS`]).
    pub fn new(cap_bytes: usize) -> Self {
        DatagramQueue {
            items: VecDeque::new(),
            held_bytes: 0,
            cap_bytes,
            slab: Slab::new(Self::chunk_bytes(cap_bytes)),
        }
    }

    fn chunk_bytes(cap_bytes: usize) -> usize {
        (cap_bytes / 64).clamp(4 << 10, 64 << 10)
    }

    /// The most a queue of `cap_bytes` allocates, in bytes: what it holds, a chunk's slack at
    /// either end of the slab, a datagram larger than a chunk, and its index.
    pub fn memory_bytes(cap_bytes: usize) -> usize {
        cap_bytes
            + 2 * Self::chunk_bytes(cap_bytes)
            + 2 * MAX_QUEUED_DATAGRAMS * std::mem::size_of::<(T, Bytes)>()
    }

    /// Whether `len` more bytes fit.
    pub fn fits(&self, len: usize) -> bool {
        self.items.len() < MAX_QUEUED_DATAGRAMS && self.held_bytes + len <= self.cap_bytes
    }

    /// Keeps a copy of `d` tagged `tag` if it fits; returns whether it was kept.
    pub fn push(&mut self, tag: T, d: &[u8]) -> bool {
        if !self.fits(d.len()) {
            return false;
        }
        let b = self.slab.copy(d);
        self.held_bytes += b.len();
        self.items.push_back((tag, b));
        true
    }

    /// Keeps a copy of `d`, forgetting the oldest datagrams until it fits; false (nothing
    /// kept or forgotten) if it is larger than the whole queue.
    pub fn push_evicting(&mut self, tag: T, d: &[u8]) -> bool {
        if d.len() > self.cap_bytes {
            return false;
        }
        while !self.fits(d.len()) {
            self.pop_front();
        }
        self.push(tag, d)
    }

    /// The oldest datagram's tag.
    pub fn front(&self) -> Option<&T> {
        self.items.front().map(|(t, _)| t)
    }

    /// Removes the oldest datagram.
    pub fn pop_front(&mut self) -> Option<(T, Bytes)> {
        let (t, b) = self.items.pop_front()?;
        self.held_bytes -= b.len();
        Some((t, b))
    }

    /// Datagrams held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes of datagrams held.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Forgets everything and frees the memory (the slab's current chunk too).
    pub fn clear(&mut self) {
        self.items = VecDeque::new();
        self.held_bytes = 0;
        self.slab = Slab::new(self.slab.chunk_bytes());
    }

    /// Takes every datagram out, oldest first, leaving the queue empty (and its memory
    /// freed once the datagrams taken are dropped).
    pub fn take_all(&mut self) -> impl Iterator<Item = Bytes> {
        let items = std::mem::take(&mut self.items);
        self.clear();
        items.into_iter().map(|(_, b)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_does_not_keep_the_original_buffer_alive() {
        let arena = Bytes::from(vec![7u8; 1 << 20]);
        let d = arena.slice(100..300);
        let mut slab = Slab::new(4096);
        let c = slab.copy(&d);
        assert_eq!(c, d);
        drop(d);
        // the arena is no longer shared: only our handle is left
        assert!(arena.is_unique());
        assert_eq!(c.len(), 200);
    }

    #[test]
    fn the_slab_knows_which_chunks_are_alive() {
        let mut slab = Slab::new(1000);
        let kept: Vec<Bytes> = (0..10).map(|i| slab.copy(&[i; 400])).collect();
        // two datagrams per chunk
        assert_eq!(slab.live_bytes_now(), 5000);
        // out of order: one datagram per chunk still keeps every chunk but the last
        let odd: Vec<Bytes> = kept.iter().skip(1).step_by(2).cloned().collect();
        drop(kept);
        assert_eq!(slab.live_bytes_now(), 5000);
        drop(odd);
        // the chunk being filled stays
        assert_eq!(slab.live_bytes_now(), 1000);
        let big = slab.copy(&[0; 3000]);
        assert_eq!(big.len(), 3000);
        assert_eq!(slab.live_bytes(), 3000);
    }

    #[test]
    fn a_queue_keeps_no_more_than_its_bytes_and_keeps_the_first_ones() {
        let mut q = DatagramQueue::new(1000);
        for i in 0..20u8 {
            q.push(i, &[i; 100]);
        }
        assert_eq!((q.len(), q.held_bytes()), (10, 1000));
        let got: Vec<Bytes> = q.take_all().collect();
        assert_eq!(got[0][0], 0);
        assert_eq!(got[9][0], 9);
        assert!(q.is_empty() && q.held_bytes() == 0);
        assert!(q.push(1, &[1; 1000]));
        assert!(!q.push(2, &[1]));
    }

    #[test]
    fn an_evicting_queue_forgets_the_oldest() {
        let mut q = DatagramQueue::new(1000);
        for i in 0..20u8 {
            assert!(q.push_evicting(i, &[i; 300]));
        }
        assert_eq!((q.len(), q.held_bytes()), (3, 900));
        assert_eq!(q.front(), Some(&17));
        assert!(!q.push_evicting(0, &[0; 1001]));
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn the_count_is_capped_too() {
        let mut q = DatagramQueue::new(1 << 20);
        for i in 0..MAX_QUEUED_DATAGRAMS + 10 {
            q.push_evicting(i, &[0; 1]);
        }
        assert_eq!(q.len(), MAX_QUEUED_DATAGRAMS);
        assert_eq!(q.front(), Some(&10));
    }

    #[test]
    fn the_split_leaves_the_session_most_of_the_budget() {
        let b = MemoryBudget::new(DEFAULT_MEMORY_BUDGET_BYTES);
        assert_eq!(b.pending_bytes(), 4 << 20);
        let s = b.session_bytes();
        assert!(s > 50 << 20 && s < 56 << 20, "{s}");
        assert_eq!(MemoryBudget::new(1000).session_bytes(), 0);
        let e = OverBudget {
            needed_bytes: 3 << 30,
            available_bytes: 55 << 20,
        };
        assert!(e.to_string().contains("3072 MiB"), "{e}");
    }
}
