//! Spreader: spreads the transmission of `spread` consecutive FEC blocks over one another, so
//! that a burst of consecutive losses hits many blocks lightly instead of one block fatally.
//!
//! With spread N the spreader holds N whole blocks (sources and repairs), then emits the first
//! packet of each block, then the second of each, and so on. A burst of B consecutive losses
//! then costs each block about B/N packets. It adds N x K packet durations of latency at the
//! sender. With spread 1 packets pass straight through.

use crate::packetizer::MediaPacket;
use std::collections::VecDeque;

/// Reorders FEC blocks column-wise before pacing.
#[derive(Debug)]
pub struct Spreader {
    spread: usize,
    blocks: Vec<Vec<MediaPacket>>,
    current: Vec<MediaPacket>,
}

impl Spreader {
    /// A spreader over `spread` blocks (1 = pass through).
    pub fn new(spread: usize) -> Self {
        Spreader {
            spread: spread.max(1),
            blocks: Vec::new(),
            current: Vec::new(),
        }
    }

    /// Takes one packet of the current block (sources first, then repairs).
    pub fn push(&mut self, p: MediaPacket, out: &mut VecDeque<MediaPacket>) {
        if self.spread == 1 {
            out.push_back(p);
        } else {
            self.current.push(p);
        }
    }

    /// Marks the end of the current block; after `spread` blocks they are emitted column by
    /// column.
    pub fn end_block(&mut self, out: &mut VecDeque<MediaPacket>) {
        if self.spread == 1 || self.current.is_empty() {
            return;
        }
        self.blocks.push(std::mem::take(&mut self.current));
        if self.blocks.len() == self.spread {
            self.emit(out);
        }
    }

    /// Emits whatever is held (end of stream).
    pub fn flush(&mut self, out: &mut VecDeque<MediaPacket>) {
        self.end_block(out);
        self.emit(out);
    }

    fn emit(&mut self, out: &mut VecDeque<MediaPacket>) {
        let longest = self.blocks.iter().map(Vec::len).max().unwrap_or(0);
        let first = out.len();
        for i in 0..longest {
            for b in &self.blocks {
                if let Some(p) = b.get(i) {
                    let mut p = p.clone();
                    p.ends_group = false;
                    out.push_back(p);
                }
            }
        }
        // only the group's last packet leaves every sequence number below it sent
        if out.len() > first {
            if let Some(last) = out.back_mut() {
                last.ends_group = true;
            }
        }
        self.blocks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pkt(tag: u8) -> MediaPacket {
        MediaPacket {
            datagram: Bytes::copy_from_slice(&[tag]),
            frames: 1,
            ends_group: true,
        }
    }

    #[test]
    fn three_blocks_leave_column_wise() {
        let mut s = Spreader::new(3);
        let mut out = VecDeque::new();
        for b in 0..3u8 {
            for i in 0..3u8 {
                s.push(pkt(b * 10 + i), &mut out);
            }
            assert!(b == 2 || out.is_empty());
            s.end_block(&mut out);
        }
        let order: Vec<u8> = out.iter().map(|p| p.datagram[0]).collect();
        assert_eq!(order, [0, 10, 20, 1, 11, 21, 2, 12, 22]);
        // only the last packet closes the group (a PAUSE waits for it)
        let ends: Vec<bool> = out.iter().map(|p| p.ends_group).collect();
        assert_eq!(
            ends,
            [false, false, false, false, false, false, false, false, true]
        );
    }

    #[test]
    fn a_short_last_block_is_flushed() {
        let mut s = Spreader::new(4);
        let mut out = VecDeque::new();
        s.push(pkt(1), &mut out);
        s.push(pkt(2), &mut out);
        s.end_block(&mut out);
        s.push(pkt(3), &mut out);
        s.flush(&mut out);
        let order: Vec<u8> = out.iter().map(|p| p.datagram[0]).collect();
        assert_eq!(order, [1, 3, 2]);
    }
}
