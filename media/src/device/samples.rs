//! Exact conversion between a device's native samples and wire samples, and decoding of
//! wire bytes taken from a ring.

use cpal::{SizedSample, I24};

use crate::format::SampleFormat;

/// A device sample type and its exact conversion to and from wire samples.
pub(super) trait Native: SizedSample + Send + 'static {
    /// Encodes `self` as one big-endian wire sample in the first `wire.bytes()` bytes.
    fn to_wire(self, wire: SampleFormat) -> [u8; 4];
    /// Decodes one wire sample (`b` holds at least `wire.bytes()` bytes).
    fn from_wire(wire: SampleFormat, b: &[u8]) -> Self;
}

/// A left-aligned 32-bit integer as a wire sample (truncating the low bits).
fn int32_to_wire(v: i32, wire: SampleFormat) -> [u8; 4] {
    let mut b = [0u8; 4];
    match wire {
        SampleFormat::S16 => b[..2].copy_from_slice(&((v >> 16) as i16).to_be_bytes()),
        SampleFormat::S24 => b[..3].copy_from_slice(&(v >> 8).to_be_bytes()[1..]),
        SampleFormat::F32 => b = ((v as f64 / 2_147_483_648.0) as f32).to_be_bytes(),
    }
    b
}

/// A wire sample as a left-aligned 32-bit integer.
fn wire_to_int32(wire: SampleFormat, b: &[u8]) -> i32 {
    match wire {
        SampleFormat::S16 => (i16::from_be_bytes([b[0], b[1]]) as i32) << 16,
        SampleFormat::S24 => i32::from_be_bytes([b[0], b[1], b[2], 0]),
        SampleFormat::F32 => {
            let v = f32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64 * 2_147_483_648.0;
            v.round().clamp(i32::MIN as f64, i32::MAX as f64) as i32
        }
    }
}

fn float_to_wire(v: f32, wire: SampleFormat) -> [u8; 4] {
    let mut b = [0u8; 4];
    wire.encode(v, &mut b);
    b
}

impl Native for i16 {
    fn to_wire(self, wire: SampleFormat) -> [u8; 4] {
        int32_to_wire((self as i32) << 16, wire)
    }
    fn from_wire(wire: SampleFormat, b: &[u8]) -> Self {
        (wire_to_int32(wire, b) >> 16) as i16
    }
}

impl Native for I24 {
    fn to_wire(self, wire: SampleFormat) -> [u8; 4] {
        int32_to_wire(self.inner() << 8, wire)
    }
    fn from_wire(wire: SampleFormat, b: &[u8]) -> Self {
        I24::new_unchecked(wire_to_int32(wire, b) >> 8)
    }
}

impl Native for i32 {
    fn to_wire(self, wire: SampleFormat) -> [u8; 4] {
        int32_to_wire(self, wire)
    }
    fn from_wire(wire: SampleFormat, b: &[u8]) -> Self {
        wire_to_int32(wire, b)
    }
}

impl Native for f32 {
    fn to_wire(self, wire: SampleFormat) -> [u8; 4] {
        float_to_wire(self, wire)
    }
    fn from_wire(wire: SampleFormat, b: &[u8]) -> Self {
        wire.decode(b)
    }
}

impl Native for f64 {
    fn to_wire(self, wire: SampleFormat) -> [u8; 4] {
        float_to_wire(self as f32, wire)
    }
    fn from_wire(wire: SampleFormat, b: &[u8]) -> Self {
        wire.decode(b) as f64
    }
}

/// Takes `bytes` wire bytes from the ring and decodes them into `out`; returns samples written.
pub(super) fn decode_ring<T: Native>(
    ring: &mut rtrb::Consumer<u8>,
    bytes: usize,
    wire: SampleFormat,
    out: &mut [T],
) -> usize {
    let Ok(chunk) = ring.read_chunk(bytes) else {
        return 0;
    };
    let (a, b) = chunk.as_slices();
    let n = decode_split(a, b, wire, out);
    chunk.commit_all();
    n
}

/// Decodes wire samples held in two consecutive slices (a ring's two halves) into `out`.
pub(super) fn decode_split<T: Native>(
    a: &[u8],
    b: &[u8],
    wire: SampleFormat,
    out: &mut [T],
) -> usize {
    let bps = wire.bytes();
    let mut bytes = a.iter().chain(b.iter()).copied();
    let mut n = 0;
    for o in out.iter_mut() {
        let mut s = [0u8; 4];
        for x in s.iter_mut().take(bps) {
            match bytes.next() {
                Some(v) => *x = v,
                None => return n,
            }
        }
        *o = T::from_wire(wire, &s);
        n += 1;
    }
    n
}
#[cfg(test)]
mod tests {
    use super::*;

    fn wire_of<T: Native>(v: &[T], wire: SampleFormat) -> Vec<u8> {
        v.iter()
            .flat_map(|s| s.to_wire(wire).into_iter().take(wire.bytes()))
            .collect()
    }

    fn native_of<T: Native>(b: &[u8], wire: SampleFormat) -> Vec<T> {
        let mut out = vec![T::EQUILIBRIUM; b.len() / wire.bytes()];
        // split anywhere: a sample may straddle the ring's wrap
        let cut = b.len() / 3 + 1;
        let n = decode_split(
            &b[..cut.min(b.len())],
            &b[cut.min(b.len())..],
            wire,
            &mut out,
        );
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn i16_native_round_trips_exactly_through_s16_and_s24() {
        let v: Vec<i16> = vec![i16::MIN, -12_345, -1, 0, 1, 12_345, i16::MAX];
        let w = wire_of(&v, SampleFormat::S16);
        let expect: Vec<u8> = v.iter().flat_map(|s| s.to_be_bytes()).collect();
        assert_eq!(w, expect, "native i16 is the wire sample in big-endian");
        assert_eq!(native_of::<i16>(&w, SampleFormat::S16), v);
        let w24 = wire_of(&v, SampleFormat::S24);
        assert_eq!(&w24[3..6], &[0xcf, 0xc7, 0x00]); // -12345 << 8
        assert_eq!(native_of::<i16>(&w24, SampleFormat::S24), v);
        let wf = wire_of(&v, SampleFormat::F32);
        assert_eq!(native_of::<i16>(&wf, SampleFormat::F32), v);
    }

    #[test]
    fn wider_natives_carry_wire_samples_exactly() {
        for wire in [SampleFormat::S16, SampleFormat::S24] {
            let raw: Vec<u8> = (0..300u32)
                .flat_map(|i| {
                    let x = (i.wrapping_mul(2_654_435_761) >> 8) as u8;
                    [x, x.wrapping_mul(7), x.wrapping_add(3)]
                })
                .take(300 / wire.bytes() * wire.bytes())
                .collect();
            let a: Vec<i32> = native_of(&raw, wire);
            assert_eq!(wire_of(&a, wire), raw, "i32 for {wire}");
            let b: Vec<I24> = native_of(&raw, wire);
            assert_eq!(wire_of(&b, wire), raw, "i24 for {wire}");
            let c: Vec<f32> = native_of(&raw, wire);
            assert_eq!(wire_of(&c, wire), raw, "f32 for {wire}");
            let d: Vec<f64> = native_of(&raw, wire);
            assert_eq!(wire_of(&d, wire), raw, "f64 for {wire}");
        }
        let f = [0.5f32, -0.25, 0.0, 0.999];
        let w = wire_of(&f, SampleFormat::F32);
        assert_eq!(native_of::<f32>(&w, SampleFormat::F32), f);
        assert_eq!(native_of::<i32>(&w, SampleFormat::F32)[0], 1 << 30);
    }

    #[test]
    fn float_natives_clamp_into_integer_wire_formats() {
        let w = wire_of(&[2.0f32, -2.0], SampleFormat::S16);
        assert_eq!(w, [0x7f, 0xff, 0x80, 0x00]);
    }
}
