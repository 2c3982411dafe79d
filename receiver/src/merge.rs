//! Channel merge: the last stage of playout. Each substream's rendered frames (its own
//! channels) are copied into their channels of the output frames, substreams in session
//! order, so frame n of every substream leaves in output frame n.

/// Where each substream's channels sit in an output frame.
#[derive(Clone, Debug)]
pub struct ChannelMerge {
    /// Bytes of an output frame (all substreams' channels).
    out_frame_bytes: usize,
    /// Per substream: byte offset of its channels in an output frame, and its frame bytes.
    parts: Vec<(usize, usize)>,
}

impl ChannelMerge {
    /// A merge of substreams whose frames have `frame_bytes` bytes each, in output order.
    pub fn new(frame_bytes: impl IntoIterator<Item = usize>) -> Self {
        let mut off = 0;
        let parts = frame_bytes
            .into_iter()
            .map(|fb| {
                let p = (off, fb);
                off += fb;
                p
            })
            .collect();
        ChannelMerge {
            out_frame_bytes: off,
            parts,
        }
    }

    /// Bytes of an output frame.
    pub fn out_frame_bytes(&self) -> usize {
        self.out_frame_bytes
    }

    /// Copies `frames` (whole frames of substream `sub`) into `out`, starting at output
    /// frame `first`.
    pub fn put(&self, sub: usize, frames: &[u8], out: &mut [u8], first: usize) {
        let (off, fb) = self.parts[sub];
        let ofb = self.out_frame_bytes;
        for (f, src) in frames.chunks_exact(fb).enumerate() {
            let at = (first + f) * ofb + off;
            out[at..at + fb].copy_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substreams_land_in_their_channels_side_by_side() {
        // a stereo substream of 2-byte samples and a mono one
        let m = ChannelMerge::new([4, 2]);
        assert_eq!(m.out_frame_bytes(), 6);
        let mut out = vec![0u8; 3 * 6];
        m.put(0, &[1, 1, 2, 2, 3, 3, 4, 4], &mut out, 1);
        m.put(1, &[9, 9, 8, 8], &mut out, 1);
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 9, 9, 3, 3, 4, 4, 8, 8]);
    }
}
