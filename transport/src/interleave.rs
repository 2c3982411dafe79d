//! Sample interleaving: the layout of interleaved audio payloads.
//!
//! With interleave depth `D` (`D = 1` is plain L16/L24 ordering), a *group* of `D`
//! consecutive packets covers `G` consecutive frames (normally `G = D * P` where `P` is the
//! frames per packet). Packet `j` (`0 <= j < D`) of a group carries frames
//! `j, j + D, j + 2D, ... < G` of the group, each frame whole (all its channels stay
//! together). A lost packet then leaves every `D`-th frame of the group missing instead of
//! a gap of `P` consecutive frames, and the receiver can interpolate the isolated holes.
//!
//! The last group of a stream may be shorter (`G < D * P`); packets that would carry no
//! frame (`j >= G`) are not sent.
//!
//! Every interleaved payload starts with a [`HEADER_LEN`]-byte [`InterleaveHeader`]:
//!
//! | byte | field          | meaning                                     |
//! |------|----------------|---------------------------------------------|
//! | 0    | `depth`        | `D`, packets per group, 1..=255             |
//! | 1    | `index`        | `j`, this packet's place in the group, `< D`|
//! | 2-3  | `group_frames` | `G`, frames in the group, u16 big-endian    |
//!
//! The RTP timestamp of every packet of a group is the timestamp of the group's first
//! frame. This module knows nothing about sample formats: it moves whole frames of
//! `frame_bytes` bytes each.

use bytes::BufMut;
use thiserror::Error;

/// Length of the interleaving payload header, in bytes.
pub const HEADER_LEN: usize = 4;

/// Why an interleaved payload (or a gather/scatter request) was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum InterleaveError {
    /// The payload is shorter than the [`HEADER_LEN`]-byte header.
    #[error("interleaved payload too short: {len} bytes, header needs {HEADER_LEN}")]
    TooShort {
        /// Payload length, in bytes.
        len: usize,
    },
    /// The depth is zero (it must be 1..=255).
    #[error("interleave depth is zero")]
    ZeroDepth,
    /// The packet index is not below the depth.
    #[error("interleave index {index} out of range for depth {depth}")]
    IndexOutOfRange {
        /// Packet index `j` within its group.
        index: usize,
        /// Interleave depth `D`, packets per group.
        depth: usize,
    },
    /// The group holds no frame.
    #[error("interleave group of zero frames")]
    EmptyGroup,
    /// The group has more frames than the 16-bit header field can describe.
    #[error("interleave group of {group_frames} frames exceeds {max}", max = u16::MAX)]
    GroupTooLarge {
        /// Frames in the group.
        group_frames: usize,
    },
    /// The packet would carry no frame (`index >= group_frames`): such packets are never sent.
    #[error("interleave packet {index} carries no frame of a {group_frames}-frame group")]
    EmptyPacket {
        /// Packet index `j` within its group.
        index: usize,
        /// Frames in the group.
        group_frames: usize,
    },
    /// `frame_bytes` is zero.
    #[error("frame size is zero bytes")]
    ZeroFrameBytes,
    /// The group buffer is not a whole number of frames.
    #[error("group buffer of {len} bytes is not a multiple of the {frame_bytes}-byte frame")]
    RaggedGroup {
        /// Group buffer length, in bytes.
        len: usize,
        /// Bytes per frame.
        frame_bytes: usize,
    },
    /// The presence map does not have one entry per frame of the group.
    #[error("presence map has {actual} entries, group has {expected} frames")]
    PresenceLength {
        /// Frames in the group.
        expected: usize,
        /// Entries in the presence map.
        actual: usize,
    },
    /// The packet's samples are not the size its place in the group implies.
    #[error("interleaved samples are {actual} bytes, expected {expected}")]
    SamplesLength {
        /// Expected bytes: `frames_in_packet * frame_bytes`.
        expected: usize,
        /// Bytes actually present.
        actual: usize,
    },
}

/// The 4-byte header at the start of every interleaved payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InterleaveHeader {
    /// Interleave depth `D`: packets per group (1..=255).
    pub depth: u8,
    /// Index `j` of this packet within its group (`0..depth`, and `< group_frames`).
    pub index: u8,
    /// `G`: frames (samples per channel) in the whole group, at most `depth * P`.
    pub group_frames: u16,
}

impl InterleaveHeader {
    /// A validated header (see [`InterleaveHeader::validate`]).
    pub fn new(depth: u8, index: u8, group_frames: u16) -> Result<Self, InterleaveError> {
        let h = InterleaveHeader {
            depth,
            index,
            group_frames,
        };
        h.validate()?;
        Ok(h)
    }

    /// Checks the fields: `depth >= 1`, `index < depth`, `group_frames >= 1` and
    /// `index < group_frames` (a packet that carries no frame is never sent).
    pub fn validate(&self) -> Result<(), InterleaveError> {
        let (depth, index, g) = (
            self.depth as usize,
            self.index as usize,
            self.group_frames as usize,
        );
        if depth == 0 {
            return Err(InterleaveError::ZeroDepth);
        }
        if index >= depth {
            return Err(InterleaveError::IndexOutOfRange { index, depth });
        }
        if g == 0 {
            return Err(InterleaveError::EmptyGroup);
        }
        if index >= g {
            return Err(InterleaveError::EmptyPacket {
                index,
                group_frames: g,
            });
        }
        Ok(())
    }

    /// Splits an interleaved payload into its validated header and the samples after it.
    ///
    /// Never panics, whatever the bytes. The samples' length is not checked here because it
    /// depends on the frame size: use [`InterleaveHeader::check_samples`].
    pub fn parse(payload: &[u8]) -> Result<(Self, &[u8]), InterleaveError> {
        if payload.len() < HEADER_LEN {
            return Err(InterleaveError::TooShort { len: payload.len() });
        }
        let h = InterleaveHeader {
            depth: payload[0],
            index: payload[1],
            group_frames: u16::from_be_bytes([payload[2], payload[3]]),
        };
        h.validate()?;
        Ok((h, &payload[HEADER_LEN..]))
    }

    /// The header as its 4 wire bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let g = self.group_frames.to_be_bytes();
        [self.depth, self.index, g[0], g[1]]
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `out`.
    ///
    /// # Panics
    /// If `out` is shorter than [`HEADER_LEN`] bytes (a caller bug: size your buffer with
    /// [`payload_len`]).
    pub fn write(&self, out: &mut [u8]) {
        out[..HEADER_LEN].copy_from_slice(&self.to_bytes());
    }

    /// Appends the header to a growable buffer (e.g. `BytesMut`).
    pub fn put<B: BufMut>(&self, buf: &mut B) {
        buf.put_slice(&self.to_bytes());
    }

    /// Frames (samples per channel) this packet carries.
    pub fn frames(&self) -> usize {
        frames_in_packet(
            self.group_frames as usize,
            self.depth as usize,
            self.index as usize,
        )
    }

    /// Checks that `samples` (the payload after the header) holds exactly
    /// [`InterleaveHeader::frames`] frames of `frame_bytes` bytes.
    pub fn check_samples(&self, samples: &[u8], frame_bytes: usize) -> Result<(), InterleaveError> {
        if frame_bytes == 0 {
            return Err(InterleaveError::ZeroFrameBytes);
        }
        let expected = self.frames().saturating_mul(frame_bytes);
        if samples.len() != expected {
            return Err(InterleaveError::SamplesLength {
                expected,
                actual: samples.len(),
            });
        }
        Ok(())
    }
}

/// Frames carried by packet `index` of a group of `group_frames` frames at depth `depth`:
/// the count of `index, index + depth, ... < group_frames`.
///
/// Zero when `depth == 0`, `index >= depth` or `index >= group_frames` (such packets are
/// not sent).
pub fn frames_in_packet(group_frames: usize, depth: usize, index: usize) -> usize {
    if depth == 0 || index >= depth || index >= group_frames {
        return 0;
    }
    (group_frames - index).div_ceil(depth)
}

/// Packets actually sent for a group of `group_frames` frames at depth `depth`:
/// `min(depth, group_frames)` (packets that would carry no frame are not sent).
pub fn packets_in_group(group_frames: usize, depth: usize) -> usize {
    depth.min(group_frames)
}

/// Payload bytes (header included) of packet `index` of a group: [`HEADER_LEN`] +
/// `frames_in_packet * frame_bytes`.
pub fn payload_len(group_frames: usize, depth: usize, index: usize, frame_bytes: usize) -> usize {
    HEADER_LEN + frames_in_packet(group_frames, depth, index) * frame_bytes
}

/// Gathers the frames of packet `index` from a whole group into `out`.
///
/// `group` holds the group's frames in order (`group_frames * frame_bytes` bytes, so
/// `group_frames = group.len() / frame_bytes`); `out` receives frames
/// `index, index + depth, ...` and must be exactly
/// `frames_in_packet(group_frames, depth, index) * frame_bytes` bytes.
///
/// This is the sender side, where all sizes come from the sender itself.
///
/// # Panics
/// If `frame_bytes` or `depth` is zero, `index >= depth`, `group` is not a whole number of
/// frames, or `out` has the wrong size.
pub fn gather(group: &[u8], frame_bytes: usize, depth: usize, index: usize, out: &mut [u8]) {
    assert!(
        frame_bytes > 0 && depth > 0 && index < depth,
        "bad interleave parameters"
    );
    assert_eq!(
        group.len() % frame_bytes,
        0,
        "group is not a whole number of frames"
    );
    let g = group.len() / frame_bytes;
    let n = frames_in_packet(g, depth, index);
    assert_eq!(
        out.len(),
        n * frame_bytes,
        "output buffer has the wrong size"
    );
    for (k, dst) in out.chunks_exact_mut(frame_bytes).enumerate() {
        let f = index + k * depth;
        dst.copy_from_slice(&group[f * frame_bytes..(f + 1) * frame_bytes]);
    }
}

/// Scatters a packet's frames (`samples`, the payload after the header) into their places
/// in `group` and marks them present in `present` (one entry per frame of the group).
///
/// `group` is `group_frames * frame_bytes` bytes and `present.len() == group_frames`;
/// `samples` must be exactly `frames_in_packet(group_frames, depth, index) * frame_bytes`
/// bytes. Any disagreement is an error and nothing is written; this never panics.
pub fn scatter(
    samples: &[u8],
    frame_bytes: usize,
    depth: usize,
    index: usize,
    group: &mut [u8],
    present: &mut [bool],
) -> Result<(), InterleaveError> {
    if frame_bytes == 0 {
        return Err(InterleaveError::ZeroFrameBytes);
    }
    if depth == 0 {
        return Err(InterleaveError::ZeroDepth);
    }
    if index >= depth {
        return Err(InterleaveError::IndexOutOfRange { index, depth });
    }
    if !group.len().is_multiple_of(frame_bytes) {
        return Err(InterleaveError::RaggedGroup {
            len: group.len(),
            frame_bytes,
        });
    }
    let g = group.len() / frame_bytes;
    if g == 0 {
        return Err(InterleaveError::EmptyGroup);
    }
    if present.len() != g {
        return Err(InterleaveError::PresenceLength {
            expected: g,
            actual: present.len(),
        });
    }
    if index >= g {
        return Err(InterleaveError::EmptyPacket {
            index,
            group_frames: g,
        });
    }
    let n = frames_in_packet(g, depth, index);
    if samples.len() != n * frame_bytes {
        return Err(InterleaveError::SamplesLength {
            expected: n * frame_bytes,
            actual: samples.len(),
        });
    }
    for (k, src) in samples.chunks_exact(frame_bytes).enumerate() {
        let f = index + k * depth;
        group[f * frame_bytes..(f + 1) * frame_bytes].copy_from_slice(src);
        present[f] = true;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Builds the payloads (header + samples) of every packet sent for one group.
    fn packetize(group: &[u8], frame_bytes: usize, depth: usize) -> Vec<Vec<u8>> {
        let g = group.len() / frame_bytes;
        (0..packets_in_group(g, depth))
            .map(|j| {
                let mut p = vec![0u8; payload_len(g, depth, j, frame_bytes)];
                InterleaveHeader::new(depth as u8, j as u8, g as u16)
                    .unwrap()
                    .write(&mut p);
                gather(group, frame_bytes, depth, j, &mut p[HEADER_LEN..]);
                p
            })
            .collect()
    }

    fn depacketize(payloads: &[&[u8]], frame_bytes: usize, group: &mut [u8], present: &mut [bool]) {
        for p in payloads {
            let (h, samples) = InterleaveHeader::parse(p).unwrap();
            h.check_samples(samples, frame_bytes).unwrap();
            assert_eq!(h.group_frames as usize, present.len());
            scatter(
                samples,
                frame_bytes,
                h.depth as usize,
                h.index as usize,
                group,
                present,
            )
            .unwrap();
        }
    }

    #[test]
    fn frames_in_packet_counts() {
        assert_eq!(frames_in_packet(12, 3, 0), 4);
        assert_eq!(frames_in_packet(12, 3, 2), 4);
        assert_eq!(frames_in_packet(10, 3, 0), 4); // 0 3 6 9
        assert_eq!(frames_in_packet(10, 3, 1), 3); // 1 4 7
        assert_eq!(frames_in_packet(10, 3, 2), 3); // 2 5 8
        assert_eq!(frames_in_packet(2, 4, 2), 0);
        assert_eq!(frames_in_packet(5, 0, 0), 0);
        assert_eq!(frames_in_packet(5, 2, 2), 0);
        assert_eq!(packets_in_group(2, 4), 2);
        assert_eq!(frames_in_packet(240, 1, 0), 240);
    }

    #[test]
    fn gather_picks_every_depth_th_frame() {
        // 2-byte frames numbered 0..8, depth 3
        let group: Vec<u8> = (0u8..8).flat_map(|f| [f, 0xA0 | f]).collect();
        let mut out = vec![0u8; 3 * 2];
        gather(&group, 2, 3, 1, &mut out);
        assert_eq!(out, [1, 0xA1, 4, 0xA4, 7, 0xA7]);
    }

    #[test]
    fn header_round_trip_and_wire_bytes() {
        let h = InterleaveHeader::new(4, 3, 960).unwrap();
        assert_eq!(h.to_bytes(), [0x04, 0x03, 0x03, 0xC0]);
        let mut buf = bytes::BytesMut::new();
        h.put(&mut buf);
        buf.extend_from_slice(&[1, 2]);
        let (back, rest) = InterleaveHeader::parse(&buf).unwrap();
        assert_eq!(back, h);
        assert_eq!(rest, &[1, 2]);
        assert_eq!(h.frames(), 240);
    }

    #[test]
    fn header_rejects_bad_fields() {
        use InterleaveError::*;
        assert_eq!(
            InterleaveHeader::parse(&[1, 0, 0]),
            Err(TooShort { len: 3 })
        );
        assert_eq!(InterleaveHeader::parse(&[0, 0, 0, 8]), Err(ZeroDepth));
        assert_eq!(
            InterleaveHeader::parse(&[2, 2, 0, 8]),
            Err(IndexOutOfRange { index: 2, depth: 2 })
        );
        assert_eq!(InterleaveHeader::parse(&[2, 0, 0, 0]), Err(EmptyGroup));
        assert_eq!(
            InterleaveHeader::parse(&[4, 3, 0, 3]),
            Err(EmptyPacket {
                index: 3,
                group_frames: 3
            })
        );
        let h = InterleaveHeader::new(2, 0, 5).unwrap();
        assert_eq!(
            h.check_samples(&[0; 5], 2),
            Err(SamplesLength {
                expected: 6,
                actual: 5
            })
        );
        assert_eq!(h.check_samples(&[0; 6], 0), Err(ZeroFrameBytes));
    }

    #[test]
    fn scatter_rejects_size_disagreements_without_writing() {
        use InterleaveError::*;
        let mut group = vec![0u8; 8];
        let mut present = vec![false; 4];
        assert_eq!(
            scatter(&[9; 2], 2, 2, 0, &mut group, &mut present),
            Err(SamplesLength {
                expected: 4,
                actual: 2
            })
        );
        assert_eq!(
            scatter(&[9; 4], 2, 2, 0, &mut group, &mut present[..3]),
            Err(PresenceLength {
                expected: 4,
                actual: 3
            })
        );
        assert_eq!(
            scatter(&[9; 4], 3, 2, 0, &mut group, &mut present),
            Err(RaggedGroup {
                len: 8,
                frame_bytes: 3
            })
        );
        assert_eq!(
            scatter(&[9; 4], 2, 0, 0, &mut group, &mut present),
            Err(ZeroDepth)
        );
        assert_eq!(
            scatter(&[9; 4], 2, 2, 2, &mut group, &mut present),
            Err(IndexOutOfRange { index: 2, depth: 2 })
        );
        assert_eq!(
            scatter(&[], 2, 8, 5, &mut group, &mut present),
            Err(EmptyPacket {
                index: 5,
                group_frames: 4
            })
        );
        assert_eq!(scatter(&[], 2, 2, 0, &mut [], &mut []), Err(EmptyGroup));
        assert!(group.iter().all(|&b| b == 0) && present.iter().all(|&p| !p));
    }

    fn group_strategy() -> impl Strategy<Value = (usize, usize, usize, usize)> {
        // (depth, frames per packet, frame_bytes, group_frames <= depth * P)
        (1usize..8, 1usize..40, 1usize..25)
            .prop_flat_map(|(d, p, fb)| (Just(d), Just(p), Just(fb), 1..=d * p))
    }

    proptest! {
        #[test]
        fn gather_scatter_round_trip((depth, _p, fb, g) in group_strategy(), seed in any::<u64>()) {
            let group: Vec<u8> = (0..g * fb).map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7919) >> 3) as u8).collect();
            let payloads = packetize(&group, fb, depth);
            prop_assert_eq!(payloads.len(), depth.min(g));
            let total: usize = payloads.iter().map(|p| p.len() - HEADER_LEN).sum();
            prop_assert_eq!(total, g * fb);
            // deliver in reverse order: order must not matter
            let refs: Vec<&[u8]> = payloads.iter().rev().map(|p| p.as_slice()).collect();
            let mut back = vec![0u8; g * fb];
            let mut present = vec![false; g];
            depacketize(&refs, fb, &mut back, &mut present);
            prop_assert_eq!(back, group);
            prop_assert!(present.iter().all(|&p| p));
        }

        #[test]
        fn lost_packet_leaves_exactly_its_frames_missing((depth, _p, fb, g) in group_strategy(), lost_pick in any::<usize>()) {
            let group: Vec<u8> = (0..g * fb).map(|i| (i % 251) as u8 + 1).collect();
            let payloads = packetize(&group, fb, depth);
            let lost = lost_pick % payloads.len();
            let refs: Vec<&[u8]> = payloads.iter().enumerate().filter(|(j, _)| *j != lost).map(|(_, p)| p.as_slice()).collect();
            let mut back = vec![0u8; g * fb];
            let mut present = vec![false; g];
            depacketize(&refs, fb, &mut back, &mut present);
            for f in 0..g {
                let should_be_missing = f % depth == lost;
                prop_assert_eq!(present[f], !should_be_missing, "frame {}", f);
                let bytes = &back[f * fb..(f + 1) * fb];
                if should_be_missing {
                    prop_assert!(bytes.iter().all(|&b| b == 0));
                } else {
                    prop_assert_eq!(bytes, &group[f * fb..(f + 1) * fb]);
                }
            }
            // with depth > 1 no two missing frames are adjacent
            if depth > 1 {
                prop_assert!(present.windows(2).all(|w| w[0] || w[1]));
            }
        }

        #[test]
        fn parse_garbage_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            match InterleaveHeader::parse(&payload) {
                Ok((h, rest)) => {
                    prop_assert!(h.depth >= 1 && h.index < h.depth && (h.index as u16) < h.group_frames);
                    prop_assert_eq!(rest.len(), payload.len() - HEADER_LEN);
                    prop_assert_eq!(&h.to_bytes()[..], &payload[..HEADER_LEN]);
                }
                Err(e) => { let _ = e.to_string(); }
            }
        }

        #[test]
        fn scatter_garbage_never_panics(
            payload in proptest::collection::vec(any::<u8>(), 0..80),
            fb in 0usize..6,
            g in 0usize..40,
            extra in 0usize..3,
        ) {
            let mut group = vec![0u8; g * fb.max(1) + extra];
            let mut present = vec![false; g];
            if let Ok((h, samples)) = InterleaveHeader::parse(&payload) {
                let _ = h.check_samples(samples, fb);
                let _ = scatter(samples, fb, h.depth as usize, h.index as usize, &mut group, &mut present);
            }
            let _ = scatter(&payload, fb, payload.first().copied().unwrap_or(0) as usize, extra, &mut group, &mut present);
        }
    }
}
