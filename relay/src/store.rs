//! The packet store: the upstream's media and repair datagrams, in arrival order, as they
//! came (the relay forwards FEC as it is). Each entry has an arrival index (0, 1, 2, ...,
//! never reused) that the listeners' cursors point at; media packets are also found by SSRC
//! and sequence number, to answer NACKs. The store is bounded by a memory budget in bytes
//! (each datagram's length plus [`ENTRY_OVERHEAD_BYTES`]): the oldest entries go first.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

/// Bookkeeping counted per entry on top of its datagram, in bytes (the entry and its
/// lookup slot).
pub const ENTRY_OVERHEAD_BYTES: usize = 96;

/// What a stored datagram is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// An RTP media packet.
    Media,
    /// An RTP repair (FEC) packet.
    Repair,
}

/// One stored datagram.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The datagram as the upstream sent it.
    pub data: Bytes,
    /// Media or repair.
    pub kind: EntryKind,
    /// Its RTP SSRC.
    pub ssrc: u32,
    /// Its RTP sequence number.
    pub seq: u16,
    /// A media packet's session media position (frames since the description's
    /// `ts_base`), if the description was known when it arrived.
    pub pos: Option<i64>,
    /// Frames it weighs for pacing (a media packet's frames divided among the substreams
    /// by the pacer; 0 for repair).
    pub frames: u32,
}

/// The bounded store of the upstream's datagrams.
#[derive(Debug)]
pub struct PacketStore {
    entries: VecDeque<Entry>,
    /// Arrival index of `entries[0]`.
    first: u64,
    bytes: usize,
    budget_bytes: usize,
    by_seq: HashMap<(u32, u16), u64>,
    evicted: u64,
}

impl PacketStore {
    /// An empty store holding at most `budget_bytes`.
    pub fn new(budget_bytes: usize) -> Self {
        PacketStore {
            entries: VecDeque::new(),
            first: 0,
            bytes: 0,
            budget_bytes,
            by_seq: HashMap::new(),
            evicted: 0,
        }
    }

    /// Arrival index of the oldest entry still held.
    pub fn first_index(&self) -> u64 {
        self.first
    }

    /// One past the arrival index of the newest entry: where the live edge is.
    pub fn end_index(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// Bytes counted against the budget.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries evicted for the budget so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The entry of arrival index `index`, if still held.
    pub fn get(&self, index: u64) -> Option<&Entry> {
        let i = index.checked_sub(self.first)?;
        self.entries.get(usize::try_from(i).ok()?)
    }

    /// Whether media packet `seq` of `ssrc` is held.
    pub fn has_media(&self, ssrc: u32, seq: u16) -> bool {
        self.by_seq.contains_key(&(ssrc, seq))
    }

    /// Media packet `seq` of `ssrc`, if still held.
    pub fn media(&self, ssrc: u32, seq: u16) -> Option<&Entry> {
        self.by_seq.get(&(ssrc, seq)).and_then(|&i| self.get(i))
    }

    /// Adds `entry` as the newest; evicts the oldest entries beyond the budget (never the
    /// newest). Returns its arrival index.
    pub fn push(&mut self, entry: Entry) -> u64 {
        let index = self.end_index();
        if entry.kind == EntryKind::Media {
            self.by_seq.insert((entry.ssrc, entry.seq), index);
        }
        self.bytes += entry.data.len() + ENTRY_OVERHEAD_BYTES;
        self.entries.push_back(entry);
        while self.bytes > self.budget_bytes && self.entries.len() > 1 {
            let old = self.entries.pop_front().expect("more than one entry");
            self.bytes -= old.data.len() + ENTRY_OVERHEAD_BYTES;
            let key = (old.ssrc, old.seq);
            if old.kind == EntryKind::Media && self.by_seq.get(&key) == Some(&self.first) {
                self.by_seq.remove(&key);
            }
            self.first += 1;
            self.evicted += 1;
        }
        index
    }

    /// The arrival index of the oldest media packet held at or after media position `pos`
    /// (the end index if there is none): where a listener joining at `pos` starts.
    pub fn first_media_at_or_after(&self, pos: i64) -> u64 {
        self.entries
            .iter()
            .position(|e| e.kind == EntryKind::Media && e.pos.is_some_and(|p| p >= pos))
            .map_or(self.end_index(), |i| self.first + i as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u16, len: usize, pos: i64) -> Entry {
        Entry {
            data: Bytes::from(vec![0u8; len]),
            kind: EntryKind::Media,
            ssrc: 7,
            seq,
            pos: Some(pos),
            frames: 240,
        }
    }

    #[test]
    fn entries_are_found_by_arrival_index_and_by_sequence_number() {
        let mut s = PacketStore::new(1 << 20);
        assert_eq!(s.push(entry(10, 100, 0)), 0);
        assert_eq!(s.push(entry(11, 100, 240)), 1);
        s.push(Entry {
            kind: EntryKind::Repair,
            seq: 10,
            pos: None,
            frames: 0,
            ..entry(10, 50, 0)
        });
        assert_eq!(s.end_index(), 3);
        assert_eq!(s.get(1).unwrap().seq, 11);
        // a repair packet's sequence numbers are its own: it shadows no media packet
        assert_eq!(s.media(7, 10).unwrap().kind, EntryKind::Media);
        assert!(s.media(7, 12).is_none() && s.media(8, 10).is_none());
        assert_eq!(s.bytes(), 250 + 3 * ENTRY_OVERHEAD_BYTES);
        assert_eq!(s.first_media_at_or_after(1), 1);
        assert_eq!(s.first_media_at_or_after(10_000), 3);
    }

    #[test]
    fn the_budget_evicts_the_oldest_and_forgets_their_lookup() {
        let per = 1000 + ENTRY_OVERHEAD_BYTES;
        let mut s = PacketStore::new(3 * per);
        for q in 0..5u16 {
            s.push(entry(q, 1000, q as i64 * 240));
        }
        assert_eq!((s.first_index(), s.end_index(), s.len()), (2, 5, 3));
        assert_eq!(s.evicted(), 2);
        assert!(s.bytes() <= 3 * per);
        assert!(s.get(1).is_none() && s.media(7, 1).is_none());
        assert_eq!(s.media(7, 2).unwrap().seq, 2);
        // one entry larger than the whole budget is still kept (the newest never goes)
        s.push(entry(9, 10 * per, 0));
        assert_eq!(s.len(), 1);
        assert_eq!(s.get(s.first_index()).unwrap().seq, 9);
    }
}
