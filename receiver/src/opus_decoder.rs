//! Opus decoder stage (feature `opus`): in an Opus substream it stands between the FEC
//! decoder and the de-interleaver. One job: RTP/Opus payloads (RFC 7587) in, 16-bit PCM out,
//! in sequence order, each packet's audio at its own RTP timestamp.
//!
//! Opus's decoder is stateful and must see the packets in order, so a packet that arrives
//! ahead of a missing one is held (up to [`HOLD_PACKETS`]) until the hole is filled (by a
//! late, rebuilt or retransmitted packet) or its audio is due: then the missing packet is
//! decoded from the next packet's in-band FEC if that is held ([`OpusCounts::packets_fec`]),
//! otherwise by Opus's packet loss concealment ([`OpusCounts::packets_plc`]). A packet that arrives
//! after its place was concealed is dropped (counted late). A payload libopus rejects is
//! counted malformed and concealed like a lost one.
//!
//! The stage does not remove Opus's pre-skip: decoded sample `n` of the stream is written at
//! media position `n` (the decoder's output is the encoder's input delayed by its lookahead,
//! 312 frames at 48 kHz for isostream's sender).

use isostream_transport::seq::seq_delta;

/// Most packets held ahead of a missing one: 10 s of 20 ms frames, so that a stored
/// stream's retransmissions, which come back while seconds of audio are buffered ahead of
/// playout, still find their place. A packet further ahead first makes room: the missing
/// packets before the held ones are concealed and the held ones decoded
/// ([`OpusDecoder::make_room`]); only with nothing held does the order restart at it.
pub const HOLD_PACKETS: usize = 512;
/// Largest Opus packet kept, in bytes (a single-frame packet is at most 1275).
pub const MAX_PAYLOAD: usize = 1500;
/// Longest Opus packet, in frames at 48 kHz (120 ms).
pub const MAX_PACKET_FRAMES: usize = 5760;

pub use crate::counters::OpusCounts;

#[derive(Debug)]
struct Slot {
    seq: u16,
    ts: u32,
    len: usize,
    full: bool,
    data: Vec<u8>,
}

/// Decoded audio: `frames` wire frames (big-endian 16-bit) for RTP timestamp `ts`.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// The RTP timestamp of the first frame.
    pub ts: u32,
    /// Wire frames (big-endian S16, interleaved channels).
    pub pcm: &'a [u8],
}

/// Decodes one substream's Opus packets in order. See the module documentation.
pub struct OpusDecoder {
    dec: opus::Decoder,
    channels: usize,
    slots: Vec<Slot>,
    /// The sequence number and timestamp of the next packet to decode.
    next: Option<(u16, u32)>,
    /// Frames of the last packet decoded (the length of a concealed one when unknown).
    last_frames: usize,
    pcm: Vec<i16>,
    wire: Vec<u8>,
    counts: OpusCounts,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("channels", &self.channels)
            .field("next", &self.next)
            .field("counts", &self.counts)
            .finish()
    }
}

impl OpusDecoder {
    /// A decoder of `channels` (1 or 2) channels at 48 kHz; `None` for other counts.
    pub fn new(channels: u16) -> Option<Self> {
        let ch = match channels {
            1 => opus::Channels::Mono,
            2 => opus::Channels::Stereo,
            _ => return None,
        };
        let dec = opus::Decoder::new(48_000, ch).ok()?;
        Some(OpusDecoder {
            dec,
            channels: channels as usize,
            slots: (0..HOLD_PACKETS)
                .map(|_| Slot {
                    seq: 0,
                    ts: 0,
                    len: 0,
                    full: false,
                    data: vec![0; MAX_PAYLOAD],
                })
                .collect(),
            next: None,
            last_frames: 960,
            pcm: vec![0; MAX_PACKET_FRAMES * channels as usize],
            wire: vec![0; MAX_PACKET_FRAMES * channels as usize * 2],
            counts: OpusCounts::default(),
        })
    }

    /// The most a decoder of `channels` channels allocates, in bytes (libopus's state
    /// included, about 26 kB for stereo).
    pub fn memory_bytes(channels: u16) -> usize {
        HOLD_PACKETS * MAX_PAYLOAD + MAX_PACKET_FRAMES * channels as usize * 4 + 32 * 1024
    }

    /// What the stage did so far.
    pub fn counts(&self) -> OpusCounts {
        self.counts
    }

    /// Takes packet `seq` (timestamp `ts`). Returns false if it came too late (its place
    /// was already decoded or concealed) or is too large; it is then dropped and counted.
    pub fn push(&mut self, seq: u16, ts: u32, payload: &[u8]) -> bool {
        let (nseq, _) = *self.next.get_or_insert((seq, ts));
        let d = seq_delta(seq, nseq);
        if d < 0 {
            self.counts.packets_late += 1;
            return false;
        }
        if payload.len() > MAX_PAYLOAD {
            self.counts.packets_malformed += 1;
            return false;
        }
        if d as usize >= HOLD_PACKETS {
            // too far ahead: what is held is given up, the order restarts here
            for s in &mut self.slots {
                s.full = false;
            }
            self.next = Some((seq, ts));
        }
        let s = &mut self.slots[seq as usize % HOLD_PACKETS];
        if s.full && s.seq == seq {
            return true;
        }
        s.seq = seq;
        s.ts = ts;
        s.len = payload.len();
        s.full = true;
        s.data[..payload.len()].copy_from_slice(payload);
        true
    }

    /// Whether packet `seq` fits in the hold window (taking it would not restart the order).
    pub fn fits(&self, seq: u16) -> bool {
        self.next
            .is_none_or(|(n, _)| i32::from(seq_delta(seq, n)) < HOLD_PACKETS as i32)
    }

    /// One step towards room for packet `seq` when it does not [fit](Self::fits) and
    /// packets are held: decodes the next packet if it is held, else conceals it (its
    /// retransmission, if it ever comes, is then late). `None` once `seq` fits or nothing
    /// is held (the order then restarts at `seq` when it is pushed).
    pub fn make_room(&mut self, seq: u16) -> Option<Decoded<'_>> {
        if self.fits(seq) || !self.slots.iter().any(|s| s.full) {
            return None;
        }
        let (next, _) = self.next?;
        if self.held(next).is_some() {
            self.decode_next()
        } else {
            self.conceal_next()
        }
    }

    /// The held packet with sequence number `seq`, if any.
    fn held(&self, seq: u16) -> Option<usize> {
        let i = seq as usize % HOLD_PACKETS;
        (self.slots[i].full && self.slots[i].seq == seq).then_some(i)
    }

    /// Decodes the next packet in order if it is held.
    pub fn decode_next(&mut self) -> Option<Decoded<'_>> {
        let (seq, _) = self.next?;
        let i = self.held(seq)?;
        self.slots[i].full = false;
        let ts = self.slots[i].ts;
        let len = self.slots[i].len;
        let r = self
            .dec
            .decode(&self.slots[i].data[..len], &mut self.pcm, false);
        let frames = match r {
            Ok(n) if n > 0 => {
                self.counts.packets_decoded += 1;
                n
            }
            _ => {
                self.counts.packets_malformed += 1;
                self.counts.packets_plc += 1;
                self.conceal_frames(self.last_frames)
            }
        };
        Some(self.finish(seq, ts, frames))
    }

    /// The RTP timestamp of the missing next packet, if a later one is held (the missing
    /// one is then to be concealed when its audio is due).
    pub fn missing(&self) -> Option<u32> {
        let (seq, ts) = self.next?;
        if self.held(seq).is_some() {
            return None;
        }
        self.slots.iter().any(|s| s.full).then_some(ts)
    }

    /// Conceals the missing next packet: from the following packet's in-band FEC if it is
    /// held, otherwise by packet loss concealment.
    pub fn conceal_next(&mut self) -> Option<Decoded<'_>> {
        let (seq, ts) = self.next?;
        let after = seq.wrapping_add(1);
        // the missing packet's length: up to the next packet, or as long as the last one
        let gap = self
            .held(after)
            .map(|i| self.slots[i].ts.wrapping_sub(ts) as usize)
            .filter(|&g| g > 0 && g <= MAX_PACKET_FRAMES && g % 120 == 0)
            .unwrap_or(self.last_frames);
        let frames = match self.held(after) {
            Some(i) => {
                let len = self.slots[i].len;
                let out = &mut self.pcm[..gap * self.channels];
                match self.dec.decode(&self.slots[i].data[..len], out, true) {
                    Ok(n) if n == gap => {
                        self.counts.packets_fec += 1;
                        n
                    }
                    _ => {
                        self.counts.packets_plc += 1;
                        self.conceal_frames(gap)
                    }
                }
            }
            None => {
                self.counts.packets_plc += 1;
                self.conceal_frames(gap)
            }
        };
        Some(self.finish(seq, ts, frames))
    }

    /// Packet loss concealment of `frames` frames into the PCM scratch; returns the frames.
    fn conceal_frames(&mut self, frames: usize) -> usize {
        let frames = frames.clamp(120, MAX_PACKET_FRAMES);
        let out = &mut self.pcm[..frames * self.channels];
        match self.dec.decode(&[], out, false) {
            Ok(n) if n > 0 => n,
            _ => {
                out.fill(0);
                frames
            }
        }
    }

    fn finish(&mut self, seq: u16, ts: u32, frames: usize) -> Decoded<'_> {
        self.last_frames = frames;
        self.next = Some((seq.wrapping_add(1), ts.wrapping_add(frames as u32)));
        let n = frames * self.channels;
        for (w, s) in self.wire.chunks_exact_mut(2).zip(&self.pcm[..n]) {
            w.copy_from_slice(&s.to_be_bytes());
        }
        Decoded {
            ts,
            pcm: &self.wire[..n * 2],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` 20 ms stereo packets of a 440 Hz tone, and the reference decode of all of them.
    fn packets(n: usize) -> (Vec<Vec<u8>>, Vec<i16>) {
        let mut enc =
            opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
        let mut dec = opus::Decoder::new(48_000, opus::Channels::Stereo).unwrap();
        let mut out = Vec::new();
        let mut reference = Vec::new();
        let mut pcm = vec![0i16; 1920];
        for k in 0..n {
            let input: Vec<i16> = (0..1920)
                .map(|i| {
                    let t = (k * 960 + i / 2) as f32 / 48_000.0;
                    ((t * 440.0 * std::f32::consts::TAU).sin() * 8_000.0) as i16
                })
                .collect();
            let p = enc.encode_vec(&input, 1275).unwrap();
            let got = dec.decode(&p, &mut pcm, false).unwrap();
            reference.extend_from_slice(&pcm[..got * 2]);
            out.push(p);
        }
        (out, reference)
    }

    fn samples(d: &Decoded<'_>) -> Vec<i16> {
        d.pcm
            .chunks_exact(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn out_of_order_packets_are_decoded_in_sequence_like_a_local_decoder() {
        let (p, reference) = packets(6);
        let mut d = OpusDecoder::new(2).unwrap();
        let mut got = Vec::new();
        let base = 65_533u16;
        for k in [0usize, 2, 1, 4, 3, 5] {
            let seq = base.wrapping_add(k as u16);
            assert!(d.push(seq, 1000 + 960 * k as u32, &p[k]));
            while let Some(x) = d.decode_next() {
                assert_eq!(x.ts, 1000 + 960 * (got.len() / 1920) as u32);
                got.extend(samples(&x));
            }
        }
        assert_eq!(got, reference);
        assert_eq!(d.counts().packets_decoded, 6);
        assert!(
            !d.push(base, 1000, &p[0]),
            "a packet decoded already is late"
        );
        assert_eq!(d.counts().packets_late, 1);
    }

    #[test]
    fn a_packet_beyond_the_hold_window_gives_up_the_hole_but_none_of_the_held_packets() {
        let n = HOLD_PACKETS + 10;
        let (p, reference) = packets(n);
        let mut d = OpusDecoder::new(2).unwrap();
        let mut got: Vec<i16> = Vec::new();
        let take = |x: Decoded<'_>, got: &mut Vec<i16>| {
            assert_eq!(
                x.ts,
                960 * (got.len() / 1920) as u32,
                "in order, at its timestamp"
            );
            got.extend(samples(&x));
        };
        // packet 1 is lost; 2 .. HOLD_PACKETS are held behind it
        for k in (0..HOLD_PACKETS).filter(|&k| k != 1) {
            assert!(d.fits(k as u16));
            assert!(d.push(k as u16, 960 * k as u32, &p[k]));
            while let Some(x) = d.decode_next() {
                take(x, &mut got);
            }
        }
        assert_eq!(got.len(), 1920, "only packet 0 is in order");
        // the next packets no longer fit: room is made by concealing packet 1 alone
        let k = HOLD_PACKETS + 1;
        assert!(!d.fits(k as u16));
        while let Some(x) = d.make_room(k as u16) {
            take(x, &mut got);
        }
        assert!(d.fits(k as u16));
        assert!(d.push(k as u16, 960 * k as u32, &p[k]));
        let c = d.counts();
        // (libopus "rebuilds" a packet from a neighbour without in-band FEC by concealment)
        assert_eq!(
            (c.packets_plc + c.packets_fec, c.packets_decoded),
            (1, 1),
            "{c:?}"
        );
        // everything held is still there: it decodes as packet HOLD_PACKETS arrives
        assert!(d.push(
            HOLD_PACKETS as u16,
            960 * HOLD_PACKETS as u32,
            &p[HOLD_PACKETS]
        ));
        while let Some(x) = d.decode_next() {
            take(x, &mut got);
        }
        let c = d.counts();
        assert_eq!(
            (c.packets_plc + c.packets_fec, c.packets_decoded),
            (1, HOLD_PACKETS as u64 + 1),
            "{c:?}"
        );
        assert_eq!(got.len(), (HOLD_PACKETS + 2) * 1920);
        // once the decoder's state has settled after the concealed packet, the audio is the
        // local decode's again, to within its recovery
        let tail = 1920 * 40;
        let (a, b) = (
            &got[got.len() - tail..],
            &reference[got.len() - tail..got.len()],
        );
        let err: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum();
        let sig: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
        assert!(
            10.0 * (sig / err.max(1.0)).log10() > 20.0,
            "the held packets' audio"
        );
        assert!(
            !d.push(1, 960, &p[1]),
            "the concealed packet's retransmission is late"
        );
    }

    #[test]
    fn a_missing_packet_is_concealed_at_its_timestamp_and_garbage_is_counted() {
        let (p, _) = packets(4);
        let mut d = OpusDecoder::new(2).unwrap();
        d.push(0, 0, &p[0]);
        assert_eq!(d.decode_next().unwrap().pcm.len(), 960 * 4);
        assert_eq!(
            d.missing(),
            None,
            "nothing held after it: nothing to conceal yet"
        );
        d.push(2, 1920, &p[2]);
        assert!(d.decode_next().is_none());
        assert_eq!(d.missing(), Some(960));
        let c = d.conceal_next().unwrap();
        assert_eq!((c.ts, c.pcm.len()), (960, 960 * 4));
        assert_eq!(d.counts().packets_fec + d.counts().packets_plc, 1);
        assert_eq!(d.decode_next().unwrap().ts, 1920);
        // a payload libopus cannot parse is malformed and concealed, never a panic
        d.push(3, 2880, &[0xff]);
        let x = d.decode_next().unwrap();
        assert_eq!((x.ts, x.pcm.len()), (2880, 960 * 4));
        assert_eq!(d.counts().packets_malformed, 1);
        assert!(OpusDecoder::new(3).is_none());
    }
}
