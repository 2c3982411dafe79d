//! The receiver side: stores source datagrams and repair shards, and restores the missing
//! source datagrams of a block once any `k` of its `k + m` datagrams are present.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::Serialize;

use super::codec::ErasureCodec;
use super::header::RepairHeader;
use super::lengths::SHARD_PREFIX_LEN;
use super::params::MAX_SHARDS;
use crate::rtp;

/// Hard cap on the number of source datagrams a [`BlockDecoder`] keeps, in packets.
pub const DECODER_MAX_SOURCES: usize = 4096;
/// Hard cap on the number of blocks a [`BlockDecoder`] tracks, in blocks.
pub const DECODER_MAX_BLOCKS: usize = 1024;
/// Hard cap on the repair shard bytes a [`BlockDecoder`] keeps, in bytes.
pub const DECODER_MAX_REPAIR_BYTES: usize = 16 << 20;

/// How much a [`BlockDecoder`] may keep. [`DecoderLimits::default`] is the hard caps
/// ([`DECODER_MAX_SOURCES`], [`DECODER_MAX_BLOCKS`], [`DECODER_MAX_REPAIR_BYTES`], any shard
/// length); a receiver that knows its stream sets tighter ones from its memory budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Source datagrams kept, in packets.
    pub max_sources: usize,
    /// Bytes of source datagrams kept (the sum of their lengths), in bytes.
    pub max_source_bytes: usize,
    /// Blocks tracked, in blocks.
    pub max_blocks: usize,
    /// Bytes of repair shards kept, in bytes.
    pub max_repair_bytes: usize,
    /// Longest shard accepted (a repair packet with a longer one is malformed), in bytes.
    pub max_shard_bytes: usize,
    /// Most repair packets a block may have (a repair packet announcing more is malformed).
    pub max_m: u8,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            max_sources: DECODER_MAX_SOURCES,
            max_source_bytes: usize::MAX,
            max_blocks: DECODER_MAX_BLOCKS,
            max_repair_bytes: DECODER_MAX_REPAIR_BYTES,
            max_shard_bytes: u16::MAX as usize,
            max_m: (MAX_SHARDS - 1) as u8,
        }
    }
}

impl DecoderLimits {
    /// The most a decoder under these limits allocates, in bytes: the sources' index (the
    /// datagrams' own bytes are the caller's), the repair shards (and their spare buffers),
    /// the blocks, and the reconstruction scratch of the widest block.
    pub fn memory_bytes(&self) -> usize {
        const NODE_BYTES: usize = 64; // a B-tree entry and its share of a node
        let shard = self.max_shard_bytes.min(u16::MAX as usize);
        self.max_sources * (NODE_BYTES + std::mem::size_of::<Bytes>())
            // a shard buffer may have more capacity than length (a reused spare)
            + 2 * self.max_repair_bytes
            + SPARE_BUFFERS * 2 * 1500
            + self.max_blocks
                * (NODE_BYTES
                    + std::mem::size_of::<Block>()
                    + self.max_m as usize * std::mem::size_of::<Option<Vec<u8>>>())
            + MAX_SHARDS * (shard + 24)
    }
}

/// Counters of a [`BlockDecoder`], in packets (datagrams) or blocks, as each name says.
/// Reported per substream as `fec` in the receiver's stats (docs/STATS.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FecStats {
    /// Repair packets handed to [`BlockDecoder::push_repair`].
    pub repair_packets_received: u64,
    /// Repair packets whose (block, index) had already been received.
    pub repair_packets_duplicate: u64,
    /// Repair packets dropped as malformed: out-of-range header, shard length mismatch,
    /// k/m/shard length inconsistent with earlier repair packets of the block, or a block
    /// overlapping another one.
    pub repair_packets_malformed: u64,
    /// Repair packets for blocks that had already expired (playout deadline passed).
    pub repair_packets_late: u64,
    /// Repair packets for blocks that were already complete or rebuilt.
    pub repair_packets_unneeded: u64,
    /// Source (media) packets received twice.
    pub source_packets_duplicate: u64,
    /// Source packets that arrived after their slot had been forgotten.
    pub source_packets_late: u64,
    /// Missing source packets rebuilt and handed out.
    pub packets_rebuilt: u64,
    /// Rebuilt packets dropped because their length prefix was impossible.
    pub rebuilt_packets_bad_length: u64,
    /// Blocks rebuilt (at least one packet restored).
    pub blocks_rebuilt: u64,
    /// Blocks given up because their stored data contradicted each other (a source longer than
    /// the shard length, or a codec error).
    pub blocks_failed: u64,
    /// Source packets dropped early by the memory cap [`DECODER_MAX_SOURCES`].
    pub source_packets_evicted: u64,
    /// Blocks dropped early by the memory caps [`DECODER_MAX_BLOCKS`] and
    /// [`DECODER_MAX_REPAIR_BYTES`].
    pub blocks_evicted: u64,
}

/// Receiver state of one block, created by its first valid repair datagram.
struct Block {
    k: u8,
    m: u8,
    shard_len: u16,
    /// Repair shards by index, each `shard_len` bytes.
    repairs: Vec<Option<Vec<u8>>>,
    n_repairs: usize,
    /// Recovered, complete, or given up: later packets of this block are ignored.
    done: bool,
}

/// How many spare shard buffers a decoder keeps for reuse.
const SPARE_BUFFERS: usize = 64;

/// Receiver side: stores source datagrams (as refcounted [`Bytes`]) and repair shards, and
/// restores the missing source datagrams of a block as soon as any `k` of its `k + m`
/// datagrams are present.
///
/// Packets may arrive in any order and duplicated. Memory is bounded by
/// [`expire_before`](Self::expire_before) and by hard caps ([`DECODER_MAX_SOURCES`],
/// [`DECODER_MAX_BLOCKS`], [`DECODER_MAX_REPAIR_BYTES`]).
pub struct BlockDecoder {
    codec: Box<dyn ErasureCodec>,
    /// Received source datagrams by extended sequence number.
    sources: BTreeMap<u64, Bytes>,
    /// Known blocks by extended base sequence number; never overlapping.
    blocks: BTreeMap<u64, Block>,
    /// Playout floor: nothing before it is handed out; blocks ending at or before it are gone.
    floor: u64,
    /// Source datagrams before this have been forgotten (`retain_from <= floor`).
    retain_from: u64,
    /// Largest k seen in a valid repair header (0 = none yet).
    max_k: u8,
    repair_bytes: usize,
    /// Sum of the stored source datagrams' lengths.
    source_bytes: usize,
    limits: DecoderLimits,
    /// Shard buffers for reconstruction, reused.
    scratch: Vec<Vec<u8>>,
    /// Repair shard buffers of finished blocks, reused.
    spare: Vec<Vec<u8>>,
    stats: FecStats,
}

impl fmt::Debug for BlockDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockDecoder")
            .field("sources", &self.sources.len())
            .field("blocks", &self.blocks.len())
            .field("floor", &self.floor)
            .field("stats", &self.stats)
            .finish()
    }
}

impl BlockDecoder {
    /// An empty decoder with the hard caps.
    pub fn new(codec: Box<dyn ErasureCodec>) -> Self {
        Self::with_limits(codec, DecoderLimits::default())
    }

    /// An empty decoder that keeps no more than `limits`.
    pub fn with_limits(codec: Box<dyn ErasureCodec>, limits: DecoderLimits) -> Self {
        BlockDecoder {
            codec,
            sources: BTreeMap::new(),
            blocks: BTreeMap::new(),
            floor: 0,
            retain_from: 0,
            max_k: 0,
            repair_bytes: 0,
            source_bytes: 0,
            limits,
            scratch: Vec::new(),
            spare: Vec::new(),
            stats: FecStats::default(),
        }
    }

    /// A source datagram arrived; `ext_seq` is its 64-bit extended sequence number (see
    /// [`crate::seq`]). If this completes recovery of a block (any k of k+m present), the
    /// recovered *missing* source datagrams are appended to `out` (never ones already received),
    /// in sequence order.
    ///
    /// Recovered datagrams may be pushed back here by the caller; they are then stored like
    /// any other source datagram and do not trigger anything.
    pub fn push_source(&mut self, ext_seq: u64, datagram: &Bytes, out: &mut Vec<Bytes>) {
        if ext_seq < self.retain_from {
            self.stats.source_packets_late += 1;
            return;
        }
        match self.sources.entry(ext_seq) {
            std::collections::btree_map::Entry::Occupied(_) => {
                self.stats.source_packets_duplicate += 1;
                return;
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(datagram.clone());
                self.source_bytes += datagram.len();
            }
        }
        self.enforce_caps();
        let base = match self.blocks.range(..=ext_seq).next_back() {
            Some((&base, b)) if ext_seq < base + b.k as u64 && !b.done => base,
            _ => return,
        };
        self.try_recover(base, out);
    }

    /// A repair datagram arrived; `ext_base_seq` is the extended form of `header.base_seq`
    /// (the caller unwraps it) and `shard` the bytes after the header (see
    /// [`RepairHeader::parse`]). Appends recovered missing source datagrams to `out`, in
    /// sequence order.
    pub fn push_repair(
        &mut self,
        ext_base_seq: u64,
        header: &RepairHeader,
        shard: &[u8],
        out: &mut Vec<Bytes>,
    ) {
        self.stats.repair_packets_received += 1;
        if !header.is_consistent()
            || shard.len() != header.shard_len as usize
            || shard.len() > self.limits.max_shard_bytes
            || header.m > self.limits.max_m
        {
            self.stats.repair_packets_malformed += 1;
            return;
        }
        let k = header.k as u64;
        let Some(end) = ext_base_seq.checked_add(k) else {
            self.stats.repair_packets_malformed += 1;
            return;
        };
        if end <= self.floor {
            self.stats.repair_packets_late += 1;
            return;
        }
        let index = header.index as usize;
        if let Some(b) = self.blocks.get_mut(&ext_base_seq) {
            if b.k != header.k || b.m != header.m || b.shard_len != header.shard_len {
                self.stats.repair_packets_malformed += 1;
                return;
            }
            if b.done {
                self.stats.repair_packets_unneeded += 1;
                return;
            }
            if b.repairs[index].is_some() {
                self.stats.repair_packets_duplicate += 1;
                return;
            }
        } else {
            let overlaps_prev = self
                .blocks
                .range(..ext_base_seq)
                .next_back()
                .is_some_and(|(&pb, p)| pb + p.k as u64 > ext_base_seq);
            let overlaps_next = self
                .blocks
                .range(ext_base_seq + 1..)
                .next()
                .is_some_and(|(&nb, _)| nb < end);
            if overlaps_prev || overlaps_next {
                self.stats.repair_packets_malformed += 1;
                return;
            }
            self.blocks.insert(
                ext_base_seq,
                Block {
                    k: header.k,
                    m: header.m,
                    shard_len: header.shard_len,
                    repairs: vec![None; header.m as usize],
                    n_repairs: 0,
                    done: false,
                },
            );
            self.max_k = self.max_k.max(header.k);
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(shard);
        self.repair_bytes += buf.len();
        if let Some(b) = self.blocks.get_mut(&ext_base_seq) {
            b.repairs[index] = Some(buf);
            b.n_repairs += 1;
        }
        self.enforce_caps();
        self.try_recover(ext_base_seq, out);
    }

    /// Forgets every block whose last source packet is before `ext_seq` and every stored source
    /// packet before it: their playout deadline has passed, so a late repair never delays
    /// playout. Bounded memory.
    ///
    /// Nothing before `ext_seq` is handed out afterwards. Source packets just before `ext_seq`
    /// (at most `k - 1`, the largest `k` seen) are kept as shards, because a block that
    /// straddles `ext_seq` still needs them to restore its later packets; they are never
    /// handed out again.
    pub fn expire_before(&mut self, ext_seq: u64) {
        if ext_seq <= self.floor {
            return;
        }
        self.floor = ext_seq;
        // before any repair datagram was seen the block length is unknown: keep the maximum
        let window = if self.max_k == 0 {
            MAX_SHARDS as u64 - 1
        } else {
            self.max_k as u64 - 1
        };
        self.retain_from = self.retain_from.max(self.floor.saturating_sub(window));
        self.drop_sources_before(self.retain_from);
        self.drop_dead_blocks();
    }

    /// Counters since creation.
    pub fn stats(&self) -> FecStats {
        self.stats
    }

    /// Whether a source datagram with extended sequence number `ext_seq` would be stored (it
    /// is neither late nor already stored), so a caller can copy only those it keeps.
    pub fn would_store(&self, ext_seq: u64) -> bool {
        ext_seq >= self.retain_from && !self.sources.contains_key(&ext_seq)
    }

    /// Forgets the oldest stored source datagram (counted as evicted), as the caps do;
    /// false if none is stored. For a caller whose own memory of the datagrams is full.
    pub fn evict_oldest_source(&mut self) -> bool {
        let Some((s, d)) = self.sources.pop_first() else {
            return false;
        };
        self.source_bytes -= d.len();
        self.stats.source_packets_evicted += 1;
        self.retain_from = self.retain_from.max(s + 1);
        self.floor = self.floor.max(self.retain_from);
        self.drop_dead_blocks();
        true
    }

    /// Bytes of source datagrams currently stored (the sum of their lengths).
    pub fn stored_source_bytes(&self) -> usize {
        self.source_bytes
    }

    /// Source datagrams currently stored, in packets.
    pub fn stored_sources(&self) -> usize {
        self.sources.len()
    }

    /// Blocks currently tracked (each created by its first repair datagram), in blocks.
    pub fn stored_blocks(&self) -> usize {
        self.blocks.len()
    }

    fn drop_sources_before(&mut self, seq: u64) {
        if self
            .sources
            .first_key_value()
            .is_some_and(|(&s, _)| s < seq)
        {
            let kept = self.sources.split_off(&seq);
            for d in std::mem::replace(&mut self.sources, kept).values() {
                self.source_bytes -= d.len();
            }
        }
    }

    fn drop_dead_blocks(&mut self) {
        while let Some(entry) = self.blocks.first_entry() {
            if entry.key() + entry.get().k as u64 > self.floor {
                break;
            }
            let block = entry.remove();
            self.recycle(block);
        }
    }

    fn recycle(&mut self, block: Block) {
        for buf in block.repairs.into_iter().flatten() {
            self.release(buf);
        }
    }

    fn release(&mut self, buf: Vec<u8>) {
        self.repair_bytes -= buf.len();
        if self.spare.len() < SPARE_BUFFERS && buf.capacity() <= 2 * 1500 {
            self.spare.push(buf);
        }
    }

    fn finish(&mut self, base: u64) {
        if let Some(b) = self.blocks.get_mut(&base) {
            b.done = true;
            b.n_repairs = 0;
            let bufs: Vec<Vec<u8>> = b.repairs.iter_mut().filter_map(Option::take).collect();
            for buf in bufs {
                self.release(buf);
            }
        }
    }

    fn enforce_caps(&mut self) {
        while self.sources.len() > self.limits.max_sources
            || self.source_bytes > self.limits.max_source_bytes
        {
            let Some((s, d)) = self.sources.pop_first() else {
                break;
            };
            self.source_bytes -= d.len();
            self.stats.source_packets_evicted += 1;
            self.retain_from = self.retain_from.max(s + 1);
            self.floor = self.floor.max(self.retain_from);
        }
        while self.blocks.len() > self.limits.max_blocks
            || self.repair_bytes > self.limits.max_repair_bytes
        {
            let Some((base, block)) = self.blocks.pop_first() else {
                break;
            };
            self.stats.blocks_evicted += 1;
            self.floor = self.floor.max(base + block.k as u64);
            self.recycle(block);
        }
        self.drop_dead_blocks();
    }

    fn try_recover(&mut self, base: u64, out: &mut Vec<Bytes>) {
        let Some(block) = self.blocks.get(&base) else {
            return;
        };
        if block.done {
            return;
        }
        let k = block.k as usize;
        let m = block.m as usize;
        let l = block.shard_len as usize;
        let end = base + k as u64;
        let present = self.sources.range(base..end).count();
        let first_wanted = base.max(self.floor);
        let wanted_missing = (end.saturating_sub(first_wanted) as usize)
            .saturating_sub(self.sources.range(first_wanted..end).count());
        if wanted_missing == 0 {
            // complete, or only packets past their deadline are missing
            self.finish(base);
            return;
        }
        if present + block.n_repairs < k {
            return;
        }

        // Build the shards: data from stored sources (one copy each), parity in place.
        let Self {
            codec,
            sources,
            blocks,
            scratch,
            stats,
            floor,
            ..
        } = self;
        let Some(block) = blocks.get_mut(&base) else {
            return;
        };
        if scratch.len() < k + m {
            scratch.resize_with(k + m, Vec::new);
        }
        let (data_bufs, parity_bufs) = scratch.split_at_mut(k);
        let mut consistent = true;
        let mut shards: Vec<(&mut [u8], bool)> = Vec::with_capacity(k + m);
        for (i, buf) in data_bufs.iter_mut().enumerate() {
            buf.resize(l, 0);
            let present = match sources.get(&(base + i as u64)) {
                Some(d) if d.len() + SHARD_PREFIX_LEN <= l => {
                    buf[..2].copy_from_slice(&(d.len() as u16).to_be_bytes());
                    buf[2..2 + d.len()].copy_from_slice(d);
                    buf[2 + d.len()..].fill(0);
                    true
                }
                Some(_) => {
                    consistent = false;
                    false
                }
                None => false,
            };
            shards.push((buf.as_mut_slice(), present));
        }
        for (slot, spare) in block.repairs.iter_mut().zip(parity_bufs.iter_mut()) {
            match slot {
                Some(r) => shards.push((r.as_mut_slice(), true)),
                None => {
                    spare.resize(l, 0);
                    shards.push((spare.as_mut_slice(), false));
                }
            }
        }
        if !consistent || codec.reconstruct(k, m, &mut shards).is_err() {
            drop(shards);
            stats.blocks_failed += 1;
            self.finish(base);
            return;
        }
        drop(shards);
        let mut restored = 0;
        for (i, buf) in scratch[..k].iter().enumerate() {
            let seq = base + i as u64;
            if seq < *floor || sources.contains_key(&seq) {
                continue;
            }
            let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
            if !(rtp::HEADER_LEN..=l - SHARD_PREFIX_LEN).contains(&len) {
                stats.rebuilt_packets_bad_length += 1;
                continue;
            }
            out.push(Bytes::copy_from_slice(&buf[2..2 + len]));
            restored += 1;
        }
        stats.packets_rebuilt += restored;
        if restored > 0 {
            stats.blocks_rebuilt += 1;
        }
        self.finish(base);
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::fec::testutil::*;
    use crate::fec::{BlockEncoder, FecParams, ReedSolomonCodec, RepairHeader};
    use crate::seq::SeqUnwrapper;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A block (k in 1..=20, m in 1..=6) with packet lengths, base seq, content seed, a set of
    /// lost packet indices among the k + m (up to m, or more than m), an arrival order and
    /// which arrivals are duplicated.
    #[allow(clippy::type_complexity)]
    fn block_case(
        more_than_m: bool,
    ) -> impl Strategy<
        Value = (
            usize,
            Vec<usize>,
            u16,
            u64,
            Vec<usize>,
            Vec<usize>,
            Vec<bool>,
        ),
    > {
        (1usize..=20, 1usize..=6).prop_flat_map(move |(k, m)| {
            let n = k + m;
            let lost_range = if more_than_m { (m + 1)..=n } else { 0..=m };
            (
                Just(m),
                proptest::collection::vec(12usize..1400, k),
                any::<u16>(),
                any::<u64>(),
                proptest::sample::subsequence((0..n).collect::<Vec<_>>(), lost_range),
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
                proptest::collection::vec(proptest::bool::weighted(0.2), n),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn decoder_never_panics_on_arbitrary_repairs(
            pkts in proptest::collection::vec(
                (any::<bool>(), 0u64..64, 0u8..8, 0u8..4, 0u8..4, any::<bool>(), 0u16..64,
                 proptest::collection::vec(any::<u8>(), 0..64)), 1..80)
        ) {
            let mut dec = BlockDecoder::new(ReedSolomonCodec::boxed());
            let mut out = Vec::new();
            for (is_source, seq, k, m, index, exact_len, shard_len, bytes) in pkts {
                let ext = 1000 + seq;
                if is_source {
                    dec.push_source(ext, &Bytes::from(bytes), &mut out);
                } else {
                    let shard_len = if exact_len { bytes.len() as u16 } else { shard_len };
                    let h = RepairHeader { seq: 0, timestamp: 0, ssrc: 0, base_seq: ext as u16, k, m, index, shard_len };
                    dec.push_repair(ext, &h, &bytes, &mut out);
                }
                if seq == 63 {
                    dec.expire_before(1000 + (shard_len as u64));
                }
            }
            for d in &out {
                prop_assert!(d.len() >= rtp::HEADER_LEN);
            }
            let s = dec.stats();
            prop_assert_eq!(s.packets_rebuilt as usize, out.len());
        }

        #[test]
        fn any_m_losses_are_recovered_bit_exact(
            (m, lens, base_seq, seed, lost, mut order, dup) in block_case(false),
            sources_first in any::<bool>(),
        ) {
            let k = lens.len();
            let (sources, repairs) = make_block(m as u8, base_seq, &lens, seed);
            let all: Vec<Bytes> = sources.iter().chain(&repairs).cloned().collect();
            if sources_first {
                order.sort_by_key(|&i| i >= k); // stable: sources in random order, then repairs
            }
            let mut rx = Rx::new();
            let lost: BTreeSet<usize> = lost.into_iter().collect();
            let mut received = BTreeSet::new();
            let mut emitted = BTreeSet::new();
            let arrivals = order.iter().filter(|i| !lost.contains(i)).flat_map(|&i| {
                std::iter::repeat_n(i, if dup[i] { 2 } else { 1 })
            });
            for i in arrivals {
                rx.deliver(k, &all, i);
                if i < k {
                    received.insert(i);
                }
                for d in rx.out.drain(..) {
                    // each recovered datagram is bit-exact, was missing when handed out, and
                    // is handed out once
                    let j = rtp_seq(&d).wrapping_sub(base_seq) as usize;
                    prop_assert!(j < k);
                    prop_assert_eq!(&d, &sources[j]);
                    prop_assert!(!received.contains(&j), "handed out a received packet");
                    prop_assert!(emitted.insert(j), "handed out twice");
                }
            }
            // every lost source packet is recovered
            let lost_sources: BTreeSet<usize> = lost.iter().copied().filter(|&i| i < k).collect();
            prop_assert!(lost_sources.is_subset(&emitted));
            if sources_first {
                // all surviving sources came first: exactly the lost ones are handed out
                prop_assert_eq!(&emitted, &lost_sources);
            }
            prop_assert_eq!(rx.dec.stats().packets_rebuilt as usize, emitted.len());
            prop_assert_eq!(rx.dec.stats().repair_packets_malformed, 0);
        }

        #[test]
        fn more_than_m_losses_recover_nothing(
            (m, lens, base_seq, seed, lost, order, dup) in block_case(true)
        ) {
            let k = lens.len();
            let (sources, repairs) = make_block(m as u8, base_seq, &lens, seed);
            let all: Vec<Bytes> = sources.iter().chain(&repairs).cloned().collect();
            let mut rx = Rx::new();
            let lost: BTreeSet<usize> = lost.into_iter().collect();
            for &i in order.iter().filter(|i| !lost.contains(i)) {
                rx.deliver(k, &all, i);
                if dup[i] {
                    rx.deliver(k, &all, i);
                }
            }
            prop_assert!(rx.out.is_empty());
            prop_assert_eq!(rx.dec.stats().packets_rebuilt, 0);
        }
    }

    #[test]
    fn sequence_wrap_inside_block_is_recovered() {
        let lens = [100, 200, 300, 400, 500, 600];
        let (sources, repairs) = make_block(2, 65_533, &lens, 11);
        let seqs: Vec<u16> = sources.iter().map(|s| rtp_seq(s)).collect();
        assert_eq!(seqs, [65_533, 65_534, 65_535, 0, 1, 2]);
        let mut rx = Rx::new();
        // lose 65535 and 0 (either side of the wrap); deliver out of order
        for i in [5, 0, 4, 1] {
            rx.source(&sources[i]);
        }
        rx.repair(&repairs[1]);
        assert!(rx.out.is_empty());
        rx.repair(&repairs[0]);
        assert_eq!(rx.out, vec![sources[2].clone(), sources[3].clone()]);
        // late real copies and more repairs change nothing
        rx.source(&sources[2]);
        rx.repair(&repairs[0]);
        assert_eq!(rx.out.len(), 2);
        assert_eq!(rx.dec.stats().repair_packets_unneeded, 1);
    }

    #[test]
    fn expired_block_recovers_nothing() {
        let lens = [60; 4];
        let (sources, repairs) = make_block(2, 500, &lens, 9);
        let mut rx = Rx::new();
        rx.source(&sources[0]);
        rx.source(&sources[1]);
        rx.source(&sources[3]);
        let ext_base = rx.unwrap.peek(500);
        assert_eq!(rx.dec.stored_sources(), 3);
        rx.dec.expire_before(ext_base + 4);
        rx.repair(&repairs[0]);
        rx.repair(&repairs[1]);
        assert!(rx.out.is_empty());
        assert_eq!(rx.dec.stored_blocks(), 0);
        assert_eq!(rx.dec.stats().repair_packets_late, 2);
        assert_eq!(rx.dec.stats().packets_rebuilt, 0);
        // a block known before expiry is forgotten too, and its sources with it
        let (sources, repairs) = make_block(1, 504, &lens, 10);
        rx.source(&sources[0]);
        rx.repair(&repairs[0]);
        assert_eq!(rx.dec.stored_blocks(), 1);
        rx.dec.expire_before(ext_base + 8);
        assert_eq!(rx.dec.stored_blocks(), 0);
        rx.source(&sources[1]);
        rx.source(&sources[2]);
        assert!(rx.out.is_empty());
        assert!(
            rx.dec.stored_sources() <= 3,
            "only a k-1 window before the floor is kept"
        );
    }

    #[test]
    fn block_straddling_the_floor_still_recovers_its_later_packets() {
        let (sources, repairs) = make_block(1, 1000, &[80; 8], 21);
        let mut rx = Rx::new();
        for s in &sources {
            rx.source(s);
        }
        let ext_base = rx.unwrap.peek(1000);
        rx.repair(&repairs[0]); // teaches the decoder k = 8
        assert!(rx.out.is_empty());
        // a second block of the same stream arrives with packet 3 lost; meanwhile playout moved on
        let (sources2, repairs2) = make_block(1, 1008, &[80; 8], 22);
        for (i, s) in sources2.iter().enumerate() {
            if i != 3 {
                rx.source(s);
            }
        }
        rx.dec.expire_before(ext_base + 8 + 2); // packets 0 and 1 of block 2 are past playout
        rx.repair(&repairs2[0]);
        assert_eq!(rx.out, vec![sources2[3].clone()]);
    }

    #[test]
    fn malformed_and_inconsistent_repairs_are_counted_and_dropped() {
        let (sources, repairs) = make_block(2, 10, &[50, 70, 90], 4);
        let mut rx = Rx::new();
        rx.source(&sources[0]);
        let (h, shard) = RepairHeader::parse(&repairs[0]).unwrap();
        let e = rx.unwrap.peek(10);
        let mut out = Vec::new();
        // shard length mismatch with the bytes handed over
        rx.dec.push_repair(e, &h, &shard[1..], &mut out);
        // first valid one creates the block
        rx.dec.push_repair(e, &h, shard, &mut out);
        rx.dec.push_repair(e, &h, shard, &mut out);
        // inconsistent k, m and shard length within the block
        rx.dec
            .push_repair(e, &RepairHeader { k: 4, ..h }, shard, &mut out);
        rx.dec.push_repair(
            e,
            &RepairHeader {
                m: 3,
                index: 1,
                ..h
            },
            shard,
            &mut out,
        );
        let mut longer = shard.to_vec();
        longer.push(0);
        rx.dec.push_repair(
            e,
            &RepairHeader {
                shard_len: h.shard_len + 1,
                index: 1,
                ..h
            },
            &longer,
            &mut out,
        );
        // overlapping block
        rx.dec
            .push_repair(e + 1, &RepairHeader { index: 1, ..h }, shard, &mut out);
        let s = rx.dec.stats();
        assert_eq!(
            (
                s.repair_packets_received,
                s.repair_packets_malformed,
                s.repair_packets_duplicate
            ),
            (7, 5, 1)
        );
        assert!(out.is_empty());
        // the block still recovers from the genuine packets
        rx.repair(&repairs[1]);
        assert_eq!(sorted(&rx.out), sorted(&sources[1..]));
    }

    #[test]
    fn impossible_length_prefix_is_dropped_and_counted() {
        // A repair shard computed over a forged source shard whose prefix claims more than L - 2.
        let l = 30;
        let mut data: Vec<Vec<u8>> = vec![vec![0; l]; 2];
        data[0][..2].copy_from_slice(&200u16.to_be_bytes());
        data[1][..2].copy_from_slice(&20u16.to_be_bytes());
        data[1][2] = 0x80;
        let mut parity = vec![0u8; l];
        let mut codec = ReedSolomonCodec::new();
        {
            let (a, b) = data.split_at_mut(1);
            let mut shards: Vec<&mut [u8]> = vec![&mut a[0], &mut b[0], &mut parity];
            codec.encode(2, 1, &mut shards).unwrap();
        }
        let mut dec = BlockDecoder::new(ReedSolomonCodec::boxed());
        let mut out = Vec::new();
        dec.push_source(101, &Bytes::copy_from_slice(&data[1][2..22]), &mut out);
        let h = RepairHeader {
            seq: 0,
            timestamp: 0,
            ssrc: 0,
            base_seq: 100,
            k: 2,
            m: 1,
            index: 0,
            shard_len: l as u16,
        };
        dec.push_repair(100, &h, &parity, &mut out);
        assert!(out.is_empty());
        assert_eq!(dec.stats().rebuilt_packets_bad_length, 1);
    }

    #[test]
    fn memory_is_bounded_without_expire() {
        let mut rng = XorShift::new(8);
        let mut enc = BlockEncoder::new(
            FecParams::new(4, 1).unwrap(),
            SSRC,
            0,
            ReedSolomonCodec::boxed(),
        );
        let mut dec = BlockDecoder::new(ReedSolomonCodec::boxed());
        let mut unwrap = SeqUnwrapper::new();
        let mut repairs = Vec::new();
        let mut out = Vec::new();
        for i in 0..20_000u32 {
            let s = rtp(i as u16, 0, 24, &mut rng);
            enc.push(&s, &mut repairs);
            if i % 4 != 1 {
                dec.push_source(unwrap.extend(i as u64 & 0xffff), &s, &mut out);
            }
            for r in repairs.drain(..) {
                if i % 8 == 3 {
                    continue; // lose the repair of every other block: its loss is never repaired
                }
                let (h, shard) = RepairHeader::parse(&r).unwrap();
                dec.push_repair(unwrap.peek(h.base_seq as u64), &h, shard, &mut out);
            }
            assert!(dec.stored_sources() <= DECODER_MAX_SOURCES);
            assert!(dec.stored_blocks() <= DECODER_MAX_BLOCKS);
        }
        assert_eq!(out.len(), 2_500);
        let st = dec.stats();
        assert!(st.source_packets_evicted + st.blocks_evicted > 0);
    }

    #[test]
    fn limits_cap_the_source_bytes_and_the_shard_length() {
        let mut rng = XorShift::new(9);
        let limits = DecoderLimits {
            max_source_bytes: 10 * 24,
            max_shard_bytes: 40,
            ..DecoderLimits::default()
        };
        let mut dec = BlockDecoder::with_limits(ReedSolomonCodec::boxed(), limits);
        let mut out = Vec::new();
        for i in 0..100u64 {
            let s = rtp(i as u16, 0, 24, &mut rng);
            assert!(dec.would_store(i));
            dec.push_source(i, &s, &mut out);
            assert!(!dec.would_store(i));
            assert!(dec.stored_source_bytes() <= limits.max_source_bytes);
        }
        assert_eq!(dec.stored_sources(), 10);
        assert_eq!(dec.stats().source_packets_evicted, 90);
        assert!(!dec.would_store(50), "evicted: late");
        dec.expire_before(1000);
        assert_eq!(dec.stored_source_bytes(), 0);
        let h = RepairHeader {
            seq: 0,
            timestamp: 0,
            ssrc: 0,
            base_seq: 1000,
            k: 2,
            m: 1,
            index: 0,
            shard_len: 41,
        };
        dec.push_repair(1000, &h, &[0; 41], &mut out);
        assert_eq!(dec.stats().repair_packets_malformed, 1);
        assert!(limits.memory_bytes() < DecoderLimits::default().memory_bytes());
    }

    /// P(X >= j) for X ~ Binomial(n, p).
    fn binom_tail(n: usize, p: f64, j: usize) -> f64 {
        let mut c = 1.0; // C(n, i)
        let mut below = 0.0;
        for i in 0..j.min(n + 1) {
            below += c * p.powi(i as i32) * (1.0 - p).powi((n - i) as i32);
            c = c * (n - i) as f64 / (i + 1) as f64;
        }
        1.0 - below
    }

    #[test]
    fn residual_loss_matches_mds_bound() {
        const K: usize = 8;
        const M: usize = 2;
        const BLOCKS: usize = 12_500; // 100,000 source packets
        for (p, seed) in [(0.05, 1u64), (0.10, 2u64)] {
            let mut rng = XorShift::new(seed);
            let mut enc = BlockEncoder::new(
                FecParams::new(K as u8, M as u8).unwrap(),
                SSRC,
                0,
                ReedSolomonCodec::boxed(),
            );
            let mut rx = Rx::new();
            let mut repairs = Vec::new();
            let (mut sum, mut sum_sq, mut lost_sources) = (0.0f64, 0.0f64, 0usize);
            let mut seq: u16 = 40_000;
            for _ in 0..BLOCKS {
                let lost: Vec<bool> = (0..K + M).map(|_| rng.unit() < p).collect();
                let mut sources = Vec::with_capacity(K);
                for &lost_here in &lost[..K] {
                    let s = rtp(seq, 0, 20, &mut rng);
                    seq = seq.wrapping_add(1);
                    enc.push(&s, &mut repairs);
                    if !lost_here {
                        rx.source(&s);
                    }
                    sources.push(s);
                }
                for (r, &lost_here) in repairs.drain(..).zip(&lost[K..]) {
                    if !lost_here {
                        rx.repair(&r);
                    }
                }
                let n_lost = lost.iter().filter(|&&l| l).count();
                let lost_src = lost[..K].iter().filter(|&&l| l).count();
                let recovered: Vec<Bytes> = rx.out.drain(..).collect();
                // exact MDS behaviour per block
                if n_lost <= M {
                    assert_eq!(recovered.len(), lost_src);
                } else {
                    assert!(recovered.is_empty());
                }
                let unrecovered = (lost_src - recovered.len()) as f64;
                sum += unrecovered;
                sum_sq += unrecovered * unrecovered;
                lost_sources += lost_src;
                let newest = rx.unwrap.highest().unwrap();
                rx.dec.expire_before(newest.saturating_sub(64));
            }
            let b = BLOCKS as f64;
            let measured = sum / (b * K as f64);
            let var_block = sum_sq / b - (sum / b).powi(2);
            let se = (var_block / b).sqrt() / K as f64;
            let expected = p * binom_tail(K + M - 1, p, M);
            let raw = lost_sources as f64 / (b * K as f64);
            println!("p={p}: raw loss {raw:.5}, residual {measured:.6}, MDS bound {expected:.6}, se {se:.6}");
            assert!((raw - p).abs() < 0.005, "raw loss {raw}");
            assert!(
                (measured - expected).abs() < 4.0 * se,
                "p={p}: residual {measured} vs expected {expected} (se {se})"
            );
            assert!(rx.dec.stored_sources() <= 100 && rx.dec.stored_blocks() <= 20);
        }
    }
}
