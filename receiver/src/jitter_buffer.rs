//! Jitter buffer: one substream's frames, keyed by media position (frames from the session's
//! position 0), waiting for their playout deadline.
//!
//! A ring of `capacity` frames with a presence flag per frame. Writers (the de-interleaver)
//! put frames anywhere in `[read_pos, read_pos + capacity)`; the playout clock reads from
//! `read_pos` forward. A frame behind `read_pos` missed its deadline (late); one beyond the
//! ring is an overflow. Neither ever panics or moves the timeline.

/// What happened to a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// All frames stored (some may have been late and skipped: see the count).
    Stored {
        /// Frames that were behind the read position and were dropped.
        late: usize,
    },
    /// Every frame was behind the read position.
    Late,
    /// Frames would land beyond the ring's capacity; nothing stored.
    Overflow,
}

/// One substream's jitter buffer.
#[derive(Debug)]
pub struct JitterBuffer {
    frame_bytes: usize,
    capacity: usize,
    data: Vec<u8>,
    present: Vec<bool>,
    read_pos: i64,
    /// One past the highest frame position ever written.
    end: i64,
}

impl JitterBuffer {
    /// A buffer of `capacity` frames of `frame_bytes` bytes, reading from position `start`.
    pub fn new(frame_bytes: usize, capacity: usize, start: i64) -> Self {
        JitterBuffer {
            frame_bytes,
            capacity,
            data: vec![0; frame_bytes * capacity],
            present: vec![false; capacity],
            read_pos: start,
            end: start,
        }
    }

    /// What a buffer of `capacity` frames of `frame_bytes` bytes allocates, in bytes.
    pub fn memory_bytes(frame_bytes: usize, capacity: usize) -> usize {
        capacity.saturating_mul(frame_bytes + 1)
    }

    /// Capacity in frames.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Position of the next frame to play.
    pub fn read_pos(&self) -> i64 {
        self.read_pos
    }

    /// Moves the read position (only before anything was read, e.g. to an earlier packet that
    /// arrived out of order before playback started). Frames already written stay.
    pub fn rewind_to(&mut self, pos: i64) {
        if pos < self.read_pos && self.end - pos <= self.capacity as i64 {
            self.read_pos = pos;
        }
    }

    /// Moves an empty buffer (nothing written yet) to start at `pos`: a receiver that joins
    /// a running stream starts where the stream is, not at its beginning.
    pub fn restart_at(&mut self, pos: i64) {
        if self.end == self.read_pos {
            self.read_pos = pos;
            self.end = pos;
        }
    }

    /// One past the highest position written.
    pub fn end(&self) -> i64 {
        self.end
    }

    /// Buffered audio: frames from the read position to the highest frame written.
    pub fn occupancy(&self) -> i64 {
        (self.end - self.read_pos).max(0)
    }

    fn slot(&self, pos: i64) -> usize {
        pos.rem_euclid(self.capacity as i64) as usize
    }

    /// Writes frames at positions `pos, pos + stride, pos + 2 x stride, ...` (stride 1 for a
    /// plain packet, the interleave depth for an interleaved one).
    pub fn write(&mut self, pos: i64, stride: usize, frames: &[u8]) -> Write {
        let n = frames.len() / self.frame_bytes;
        if n == 0 {
            return Write::Stored { late: 0 };
        }
        let last = pos + ((n - 1) * stride) as i64;
        if last < self.read_pos {
            return Write::Late;
        }
        if last >= self.read_pos + self.capacity as i64 {
            return Write::Overflow;
        }
        let mut late = 0;
        for (i, f) in frames.chunks_exact(self.frame_bytes).enumerate() {
            let p = pos + (i * stride) as i64;
            if p < self.read_pos {
                late += 1;
                continue;
            }
            let s = self.slot(p);
            self.data[s * self.frame_bytes..(s + 1) * self.frame_bytes].copy_from_slice(f);
            self.present[s] = true;
        }
        self.end = self.end.max(last + 1);
        Write::Stored { late }
    }

    /// Copies `present.len()` frames starting at the read position + `skip` into `out`
    /// without consuming them; missing frames are flagged false (their bytes zeroed).
    pub fn peek(&self, skip: usize, out: &mut [u8], present: &mut [bool]) {
        let fb = self.frame_bytes;
        for (i, flag) in present.iter_mut().enumerate() {
            let p = self.read_pos + (skip + i) as i64;
            let dst = &mut out[i * fb..(i + 1) * fb];
            if p >= self.end {
                *flag = false;
                dst.fill(0);
                continue;
            }
            let s = self.slot(p);
            *flag = self.present[s];
            if *flag {
                dst.copy_from_slice(&self.data[s * fb..(s + 1) * fb]);
            } else {
                dst.fill(0);
            }
        }
    }

    /// Consumes `frames` frames from the read position (after a [`Self::peek`]).
    pub fn advance(&mut self, frames: usize) {
        for i in 0..frames {
            let s = self.slot(self.read_pos + i as i64);
            self.present[s] = false;
        }
        self.read_pos += frames as i64;
        self.end = self.end.max(self.read_pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_writes_are_read_in_order() {
        let mut jb = JitterBuffer::new(1, 16, 0);
        assert_eq!(jb.write(4, 1, &[4, 5, 6, 7]), Write::Stored { late: 0 });
        assert_eq!(jb.write(0, 1, &[0, 1, 2, 3]), Write::Stored { late: 0 });
        assert_eq!(jb.occupancy(), 8);
        let mut out = [0u8; 8];
        let mut present = [false; 8];
        jb.peek(0, &mut out, &mut present);
        assert_eq!(out, [0, 1, 2, 3, 4, 5, 6, 7]);
        assert!(present.iter().all(|&p| p));
        jb.advance(8);
        assert_eq!(jb.occupancy(), 0);
    }

    #[test]
    fn strided_writes_fill_every_dth_frame() {
        let mut jb = JitterBuffer::new(1, 16, 0);
        jb.write(1, 4, &[1, 5]);
        let mut out = [0u8; 8];
        let mut present = [false; 8];
        jb.peek(0, &mut out, &mut present);
        assert_eq!(
            present,
            [false, true, false, false, false, true, false, false]
        );
        assert_eq!((out[1], out[5]), (1, 5));
    }

    #[test]
    fn late_and_overflowing_writes_are_refused_without_moving_the_timeline() {
        let mut jb = JitterBuffer::new(1, 8, 0);
        jb.advance(4);
        assert_eq!(jb.write(0, 1, &[9, 9]), Write::Late);
        assert_eq!(jb.write(3, 1, &[9, 9]), Write::Stored { late: 1 });
        assert_eq!(jb.write(10, 1, &[9, 9, 9]), Write::Overflow);
        assert_eq!(jb.read_pos(), 4);
    }

    #[test]
    fn ring_slots_are_cleared_after_reading() {
        let mut jb = JitterBuffer::new(1, 4, 0);
        jb.write(0, 1, &[1, 2, 3, 4]);
        jb.advance(4);
        let mut out = [0u8; 4];
        let mut present = [true; 4];
        jb.peek(0, &mut out, &mut present);
        assert_eq!(present, [false; 4]);
    }
}
