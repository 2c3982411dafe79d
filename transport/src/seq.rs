//! Wrap-safe arithmetic for RTP sequence numbers (16 bits) and timestamps (32 bits).
//!
//! This is the one place in isostream that knows the wire values wrap. Everything past the
//! parser works with extended values ([`ExtSeq`], [`ExtTs`]) that never wrap, obtained by
//! unwrapping each wire value against the highest one seen so far (RFC 3550, appendix A.1).

/// A 16-bit RTP sequence number extended to 64 bits so that it never wraps.
pub type ExtSeq = u64;
/// A 32-bit RTP timestamp extended to 64 bits so that it never wraps (units: frames).
pub type ExtTs = u64;

/// Signed distance from `b` to `a` for 16-bit sequence numbers (`a - b`), in packets.
pub fn seq_delta(a: u16, b: u16) -> i16 {
    a.wrapping_sub(b) as i16
}

/// Signed distance from `b` to `a` for 32-bit timestamps (`a - b`), in frames.
pub fn ts_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Unwraps a stream of N-bit wire values into 64-bit extended values.
///
/// The first value seen is placed at `2^N` (so a value slightly older than the first one
/// does not underflow); later values are placed at the extended value nearest to the highest
/// one seen so far.
#[derive(Clone, Debug, Default)]
pub struct Unwrapper<const BITS: u32> {
    highest: Option<u64>,
}

/// Unwraps 16-bit RTP sequence numbers.
pub type SeqUnwrapper = Unwrapper<16>;
/// Unwraps 32-bit RTP timestamps.
pub type TsUnwrapper = Unwrapper<32>;

impl<const BITS: u32> Unwrapper<BITS> {
    const MODULUS: u64 = 1 << BITS;

    /// A fresh unwrapper that has seen nothing.
    pub fn new() -> Self {
        Unwrapper { highest: None }
    }

    /// Extends `wire` without remembering it (for packets that may still be rejected).
    pub fn peek(&self, wire: u64) -> u64 {
        let wire = wire & (Self::MODULUS - 1);
        match self.highest {
            None => Self::MODULUS + wire,
            Some(h) => {
                let half = Self::MODULUS / 2;
                let base = h & !(Self::MODULUS - 1);
                let cand = base + wire;
                // pick among cand - M, cand, cand + M the one closest to h
                if cand + half <= h {
                    cand + Self::MODULUS
                } else if cand > h + half && cand >= Self::MODULUS {
                    cand - Self::MODULUS
                } else {
                    cand
                }
            }
        }
    }

    /// Extends `wire` and remembers it if it is the highest value so far.
    pub fn extend(&mut self, wire: u64) -> u64 {
        let e = self.peek(wire);
        if self.highest.is_none_or(|h| e > h) {
            self.highest = Some(e);
        }
        e
    }

    /// The highest extended value seen so far.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_unwrap_across_zero() {
        let mut u = SeqUnwrapper::new();
        let a = u.extend(65_534);
        let b = u.extend(65_535);
        let c = u.extend(0);
        let d = u.extend(1);
        assert_eq!([b - a, c - a, d - a], [1, 2, 3]);
        // a late packet from before the wrap stays before it
        assert_eq!(u.extend(65_533), a - 1);
    }

    #[test]
    fn timestamps_unwrap_forward_over_many_wraps() {
        let mut u = TsUnwrapper::new();
        let first = u.extend(4_000_000_000);
        let mut wire: u32 = 4_000_000_000;
        for _ in 0..10_000 {
            wire = wire.wrapping_add(1_000_000);
            u.extend(wire as u64);
        }
        assert_eq!(u.highest().unwrap() - first, 10_000 * 1_000_000);
    }

    #[test]
    fn deltas_are_signed_and_wrap_safe() {
        assert_eq!(seq_delta(1, 65_535), 2);
        assert_eq!(seq_delta(65_535, 1), -2);
        assert_eq!(ts_delta(5, u32::MAX), 6);
    }

    proptest::proptest! {
        #[test]
        fn unwrap_recovers_any_walk_of_small_steps(start in 0u64..65_536, steps in proptest::collection::vec(-1000i64..3000, 1..500)) {
            let mut u = SeqUnwrapper::new();
            let base = u.extend(start);
            let mut truth = base as i64;
            for s in steps {
                truth += s;
                let e = u.extend((truth as u64) & 0xffff);
                proptest::prop_assert_eq!(e as i64, truth);
            }
        }
    }
}
