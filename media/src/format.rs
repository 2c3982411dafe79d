//! Audio formats: sample encodings and stream specifications.
//!
//! Inside isostream audio travels as *wire frames*: interleaved channels, each sample in
//! network byte order (big-endian) in the stream's [`SampleFormat`]. That is the RTP payload
//! layout of L16 (RFC 3551) and L24 (RFC 3190), so the transport never converts samples; only
//! the edges (file and device I/O, concealment, metrics) decode them, with
//! [`SampleFormat::decode`] and [`SampleFormat::encode`].

use std::fmt;

/// How one sample is encoded on the wire (always big-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SampleFormat {
    /// 16-bit signed integer (L16).
    S16,
    /// 24-bit signed integer, packed in 3 bytes (L24).
    S24,
    /// 32-bit IEEE-754 float.
    F32,
}

impl SampleFormat {
    /// Bytes per sample on the wire.
    pub const fn bytes(self) -> usize {
        match self {
            SampleFormat::S16 => 2,
            SampleFormat::S24 => 3,
            SampleFormat::F32 => 4,
        }
    }

    /// Decodes one big-endian sample to a float in [-1, 1).
    ///
    /// `b` must hold at least [`SampleFormat::bytes`] bytes.
    pub fn decode(self, b: &[u8]) -> f32 {
        match self {
            SampleFormat::S16 => i16::from_be_bytes([b[0], b[1]]) as f32 / 32_768.0,
            SampleFormat::S24 => {
                let v = i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8;
                v as f32 / 8_388_608.0
            }
            SampleFormat::F32 => f32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        }
    }

    /// Encodes a float sample (clamped to the integer range) as big-endian bytes into `b`.
    pub fn encode(self, v: f32, b: &mut [u8]) {
        match self {
            SampleFormat::S16 => {
                let s = (v * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16;
                b[..2].copy_from_slice(&s.to_be_bytes());
            }
            SampleFormat::S24 => {
                let s = (v * 8_388_608.0).round().clamp(-8_388_608.0, 8_388_607.0) as i32;
                b[..3].copy_from_slice(&s.to_be_bytes()[1..]);
            }
            SampleFormat::F32 => b[..4].copy_from_slice(&v.to_be_bytes()),
        }
    }

    /// The name used on the command line and in the docs (`s16`, `s24`, `f32`).
    pub fn name(self) -> &'static str {
        match self {
            SampleFormat::S16 => "s16",
            SampleFormat::S24 => "s24",
            SampleFormat::F32 => "f32",
        }
    }

    /// Stable numeric code used in the session description on the wire (0, 1, 2).
    pub fn code(self) -> u8 {
        match self {
            SampleFormat::S16 => 0,
            SampleFormat::S24 => 1,
            SampleFormat::F32 => 2,
        }
    }

    /// The inverse of [`SampleFormat::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(SampleFormat::S16),
            1 => Some(SampleFormat::S24),
            2 => Some(SampleFormat::F32),
            _ => None,
        }
    }
}

impl fmt::Display for SampleFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a stream of audio is: rate, channel count and sample format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AudioSpec {
    /// Frames (samples per channel) per second, in Hz.
    pub rate: u32,
    /// Channels per frame (1 to 8 for files; up to 255 on the wire).
    pub channels: u16,
    /// Sample encoding.
    pub format: SampleFormat,
}

impl AudioSpec {
    /// Bytes per wire frame (all channels of one sampling instant).
    pub const fn frame_bytes(&self) -> usize {
        self.channels as usize * self.format.bytes()
    }
}

impl fmt::Display for AudioSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Hz, {} ch, {}", self.rate, self.channels, self.format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_formats_round_trip_exactly() {
        let mut b = [0u8; 4];
        for v in [-32_768i32, -1, 0, 1, 12_345, 32_767] {
            let x = v as f32 / 32_768.0;
            SampleFormat::S16.encode(x, &mut b);
            assert_eq!(i16::from_be_bytes([b[0], b[1]]) as i32, v);
            assert_eq!(SampleFormat::S16.decode(&b), x);
        }
        for v in [-8_388_608i32, -1, 0, 1, 8_388_607] {
            let x = v as f32 / 8_388_608.0;
            SampleFormat::S24.encode(x, &mut b);
            assert_eq!(SampleFormat::S24.decode(&b), x);
        }
    }

    #[test]
    fn encode_clamps_out_of_range() {
        let mut b = [0u8; 2];
        SampleFormat::S16.encode(2.0, &mut b);
        assert_eq!(i16::from_be_bytes(b), i16::MAX);
    }
}
