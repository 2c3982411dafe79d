//! The erasure code behind the repair packets: a small interface and its Reed-Solomon
//! implementation.

use std::fmt;

use reed_solomon_erasure::galois_8::ReedSolomon;

use super::error::FecError;
use super::params::check_km;

/// Small internal interface to an erasure code, so that another Reed-Solomon implementation
/// can be measured against [`ReedSolomonCodec`].
///
/// Shards are caller-owned buffers of equal length (bytes); the codec must not allocate per call
/// beyond what it caches per `(k, m)`.
pub trait ErasureCodec: Send {
    /// Computes the `m` parity shards `shards[k..k + m]` from the data shards `shards[..k]`.
    fn encode(&mut self, k: usize, m: usize, shards: &mut [&mut [u8]]) -> Result<(), FecError>;

    /// Restores every data shard `shards[i].0` (`i < k`) whose flag `shards[i].1` is `false`
    /// from any `k` present shards. Buffers of absent shards have unspecified contents on entry;
    /// absent parity shards may be left untouched.
    fn reconstruct(
        &mut self,
        k: usize,
        m: usize,
        shards: &mut [(&mut [u8], bool)],
    ) -> Result<(), FecError>;
}

/// How many `(k, m)` codes a [`ReedSolomonCodec`] keeps ready (the regular and the last, short
/// block of a stream, plus some slack).
const CODEC_CACHE: usize = 4;

/// [`ErasureCodec`] over the `reed-solomon-erasure` crate (GF(2^8), Vandermonde-derived
/// systematic matrix), caching the encoding matrix per `(k, m)`.
#[derive(Default)]
pub struct ReedSolomonCodec {
    /// Most recently used last.
    cache: Vec<((usize, usize), ReedSolomon)>,
}

impl fmt::Debug for ReedSolomonCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<_> = self.cache.iter().map(|(km, _)| *km).collect();
        f.debug_struct("ReedSolomonCodec")
            .field("cached", &keys)
            .finish()
    }
}

impl ReedSolomonCodec {
    /// A codec with an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// A boxed codec, as [`BlockEncoder::new`](super::BlockEncoder::new) and
    /// [`BlockDecoder::new`](super::BlockDecoder::new) take it.
    pub fn boxed() -> Box<dyn ErasureCodec> {
        Box::new(Self::new())
    }

    fn code(&mut self, k: usize, m: usize) -> Result<&ReedSolomon, FecError> {
        check_km(k, m)?;
        match self.cache.iter().position(|(km, _)| *km == (k, m)) {
            Some(i) if i + 1 == self.cache.len() => {}
            Some(i) => {
                let entry = self.cache.remove(i);
                self.cache.push(entry);
            }
            None => {
                let rs = ReedSolomon::new(k, m)?;
                if self.cache.len() >= CODEC_CACHE {
                    self.cache.remove(0);
                }
                self.cache.push(((k, m), rs));
            }
        }
        match self.cache.last() {
            Some((_, rs)) => Ok(rs),
            None => Err(FecError::InvalidParams { k, m }),
        }
    }
}

impl ErasureCodec for ReedSolomonCodec {
    fn encode(&mut self, k: usize, m: usize, shards: &mut [&mut [u8]]) -> Result<(), FecError> {
        if shards.len() != k + m {
            return Err(FecError::BadShards("shard count is not k + m"));
        }
        self.code(k, m)?.encode(shards)?;
        Ok(())
    }

    fn reconstruct(
        &mut self,
        k: usize,
        m: usize,
        shards: &mut [(&mut [u8], bool)],
    ) -> Result<(), FecError> {
        if shards.len() != k + m {
            return Err(FecError::BadShards("shard count is not k + m"));
        }
        self.code(k, m)?.reconstruct_data(shards)?;
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_reconstruct_restores_lost_data_shards() {
        let (k, m, len) = (4usize, 2usize, 16usize);
        let data: Vec<Vec<u8>> = (0..k)
            .map(|i| (0..len).map(|j| (i * 31 + j * 7) as u8).collect())
            .collect();
        let mut bufs: Vec<Vec<u8>> = data.clone();
        bufs.extend((0..m).map(|_| vec![0u8; len]));
        let mut codec = ReedSolomonCodec::new();
        {
            let mut shards: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
            codec.encode(k, m, &mut shards).unwrap();
        }
        // lose two data shards (as many as there are parity shards)
        let present = [false, true, false, true, true, true];
        for (b, &p) in bufs.iter_mut().zip(&present) {
            if !p {
                b.fill(0xee);
            }
        }
        let mut shards: Vec<(&mut [u8], bool)> = bufs
            .iter_mut()
            .zip(present)
            .map(|(b, p)| (b.as_mut_slice(), p))
            .collect();
        codec.reconstruct(k, m, &mut shards).unwrap();
        for (i, d) in data.iter().enumerate() {
            assert_eq!(&bufs[i], d, "data shard {i}");
        }
    }

    #[test]
    fn wrong_shard_count_and_parameters_are_errors() {
        let mut codec = ReedSolomonCodec::new();
        let mut a = [0u8; 4];
        let mut b = [0u8; 4];
        let mut shards: Vec<&mut [u8]> = vec![&mut a, &mut b];
        assert_eq!(
            codec.encode(2, 1, &mut shards),
            Err(FecError::BadShards("shard count is not k + m"))
        );
        assert_eq!(
            codec.encode(0, 2, &mut shards),
            Err(FecError::InvalidParams { k: 0, m: 2 })
        );
    }

    #[test]
    fn the_cache_keeps_the_most_recent_codes() {
        let mut codec = ReedSolomonCodec::new();
        for (k, m) in [(8, 2), (3, 2), (4, 1), (5, 1), (6, 1), (8, 2)] {
            codec.code(k, m).unwrap();
        }
        let keys: Vec<_> = codec.cache.iter().map(|(km, _)| *km).collect();
        assert_eq!(keys, [(4, 1), (5, 1), (6, 1), (8, 2)]);
    }
}
