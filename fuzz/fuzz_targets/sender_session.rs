//! The sender session fed a sequence of `arbitrary` inputs through `handle_input` /
//! `poll_output`: audio (stored, as much as it wants, or live), the end of the input, time
//! passing, and datagrams from its receiver or a stranger, built from valid-looking pieces
//! (PAUSE / RESUME / receiver reports / NACKs of packets it really sent, with its own
//! SSRCs) or raw bytes. Checked: no panic; every output loop ends in a deadline; the
//! deadlines do not livelock (repeated timeouts at one instant come to a later deadline);
//! every datagram goes to the receiver and fits in UDP; while paused no media or repair
//! datagram leaves but to finish the spread group being sent; without spreading and for stored media, the sequence numbers of each
//! media stream go up by one.
//!
//! One input sends at most about [`MAX_SENT`] datagrams, and one audio input makes at most 64
//! packets per substream: with 1-frame packets, 9 repair packets per block and 8 substreams,
//! 7,000 frames made 600,000 datagrams (8 s for one input), and the fuzzer should spend its
//! time on new paths rather than on long streams.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use bytes::Bytes;
use isostream_fuzz::*;
use isostream_sender::{SenderSession, Speed};
use isostream_transport::rtcp;
use isostream_transport::rtp::{classify, DatagramKind};
use isostream_transport::sans_io::{Input, Transmit};
use isostream_transport::time::Instant;
use libfuzzer_sys::fuzz_target;

/// Most datagrams one input sends.
const MAX_SENT: usize = 20_000;

#[derive(Arbitrary, Debug)]
enum Op {
    /// Audio: a stored source passes at most what the session wants.
    Audio { frames: u16, seed: u8 },
    /// The input ends.
    End,
    /// Time passes (ms), then the timers.
    Advance { ms: u16 },
    /// A datagram from the receiver's address.
    FromReceiver(Datagram),
    /// A datagram from someone else.
    FromStranger(Datagram),
    /// A NACK (from the receiver) of the `back`-th most recent media packets.
    NackRecent { receiver_ssrc: u32, back: Vec<u8> },
    /// PAUSE or RESUME from the receiver with this number.
    Flow {
        pause: bool,
        receiver_ssrc: u32,
        request: u32,
    },
}

#[derive(Arbitrary, Debug)]
struct Case {
    setup: SenderSetup,
    receiver_timeout_ms: u16,
    ops: Vec<Op>,
}

struct Harness {
    s: SenderSession,
    now: Instant,
    known: Vec<u32>,
    /// (SSRC, sequence number) of the media packets sent, newest last.
    sent_media: Vec<(u32, u16)>,
    next_seq: HashMap<u32, u16>,
    /// Media leaves in sequence order (no spreading, and no live audio dropped).
    in_order: bool,
    /// Datagrams sent so far.
    sent: usize,
    /// Media and repair datagrams one spread group holds (0: no spreading).
    group_cap: usize,
    /// Media and repair datagrams sent since the session paused.
    sent_paused: usize,
}

impl Harness {
    fn input(&mut self, i: Input<'_>) {
        self.s.handle_input(i);
        self.settle();
    }

    /// Drains, and makes sure repeated timeouts at this instant come to a later deadline.
    fn settle(&mut self) {
        for _ in 0..64 {
            let at = self.drain();
            match at {
                Some(at) if at <= self.now => self.s.handle_input(Input::Timeout(self.now)),
                _ => return,
            }
        }
        panic!("the deadline stays at or before now: a driver would spin");
    }

    fn drain(&mut self) -> Option<Instant> {
        let paused = self.s.is_paused();
        let mut sent: Vec<Transmit> = Vec::new();
        let mut events = Vec::new();
        let at = drain(|| self.s.poll_output(), &mut sent, &mut events);
        self.sent += sent.len();
        for t in sent {
            assert_eq!(t.to, RECEIVER_ADDR, "a datagram to someone else");
            assert!(t.data.len() <= MAX_DATAGRAM, "{} bytes", t.data.len());
            let kind = classify(&t.data);
            assert_ne!(kind, DatagramKind::Foreign, "the sender sent junk");
            if !paused {
                self.sent_paused = 0;
            } else if matches!(kind, DatagramKind::Media | DatagramKind::Repair) {
                // only to finish the spread group it was sending
                self.sent_paused += 1;
                assert!(
                    self.sent_paused <= self.group_cap,
                    "media or repair sent while paused, beyond the spread group"
                );
            }
            if kind == DatagramKind::Media {
                let d = &t.data;
                let seq = u16::from_be_bytes([d[2], d[3]]);
                let ssrc = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
                if let Some(want) = self.next_seq.get(&ssrc).filter(|_| self.in_order) {
                    assert_eq!(seq, *want, "sequence numbers of {ssrc:08x} skip");
                }
                self.next_seq.insert(ssrc, seq.wrapping_add(1));
                self.sent_media.push((ssrc, seq));
                if self.sent_media.len() > 4096 {
                    self.sent_media.drain(..2048);
                }
            }
        }
        at
    }
}

fuzz_target!(|case: Case| {
    let speeds = [
        Speed::Times(1.0),
        Speed::Times(4.0),
        Speed::Times(0.5),
        Speed::Max,
    ];
    let mut cfg = case.setup.config(&speeds);
    cfg.receiver_timeout =
        isostream_transport::time::Duration::from_millis(u64::from(case.receiver_timeout_ms) + 1);
    if cfg.validate().is_err() {
        return;
    }
    let Ok(s) = SenderSession::new(cfg.clone()) else {
        return;
    };
    let mut known = s.ssrcs();
    known.extend(s.description().substreams.iter().filter_map(|x| x.rtx_ssrc));
    let mut h = Harness {
        s,
        now: Instant::ZERO,
        known,
        sent_media: Vec::new(),
        next_seq: HashMap::new(),
        in_order: cfg.spread == 1 && !cfg.live,
        sent: 0,
        group_cap: if cfg.spread > 1 {
            cfg.spread as usize * cfg.fec.map_or(1, |f| f.k as usize + f.m as usize)
        } else {
            0
        },
        sent_paused: 0,
    };
    let fb = cfg.spec.frame_bytes();
    h.input(Input::Timeout(h.now));
    for op in case.ops.iter().take(512) {
        if h.sent > MAX_SENT {
            break;
        }
        match op {
            Op::Audio { frames, seed } => {
                // at most 64 packets per substream (1 kHz with 1 ms packets, 10 datagrams
                // per packet and 8 substreams made 600,000 datagrams of 7,000 frames)
                let mut n = (*frames as usize % 8192).min(cfg.packet_frames as usize * 64);
                if !cfg.live {
                    n = n.min(h.s.audio_wanted());
                }
                let a = audio(n * fb, u64::from(*seed) + 1);
                let now = h.now;
                h.input(Input::Audio { now, frames: &a });
            }
            Op::End => h.input(Input::EndOfInput(h.now)),
            Op::Advance { ms } => {
                // in steps of at most 100 ms, so that a long wait at a high rate stops at
                // MAX_SENT
                let end = h.now + isostream_transport::time::Duration::from_millis(u64::from(*ms));
                while h.now < end && h.sent <= MAX_SENT {
                    let step = isostream_transport::time::Duration::from_millis(100);
                    h.now = (h.now + step).min(end);
                    h.input(Input::Timeout(h.now));
                }
            }
            Op::FromReceiver(d) | Op::FromStranger(d) => {
                let from = if matches!(op, Op::FromReceiver(_)) {
                    RECEIVER_ADDR
                } else {
                    STRANGER_ADDR
                };
                let data = Bytes::from(d.bytes(&h.known));
                let now = h.now;
                h.input(Input::Datagram { now, from, data });
            }
            Op::NackRecent {
                receiver_ssrc,
                back,
            } => {
                let Some(&(ssrc, _)) = h.sent_media.last() else {
                    continue;
                };
                let seqs: Vec<u16> = back
                    .iter()
                    .filter_map(|&b| h.sent_media.iter().rev().nth(b as usize))
                    .filter(|(s, _)| *s == ssrc)
                    .map(|&(_, q)| q)
                    .collect();
                if seqs.is_empty() {
                    continue;
                }
                let (list, _) = rtcp::NackList::pack(&seqs);
                let mut out = bytes::BytesMut::new();
                rtcp::write_receiver_report(&mut out, *receiver_ssrc, &[]);
                rtcp::write_nack(&mut out, *receiver_ssrc, ssrc, &list);
                let now = h.now;
                h.input(Input::Datagram {
                    now,
                    from: RECEIVER_ADDR,
                    data: out.freeze(),
                });
            }
            Op::Flow {
                pause,
                receiver_ssrc,
                request,
            } => {
                let sub = if *pause {
                    rtcp::APP_PAUSE
                } else {
                    rtcp::APP_RESUME
                };
                let mut out = bytes::BytesMut::new();
                rtcp::write_flow(&mut out, sub, *receiver_ssrc, *request);
                let now = h.now;
                h.input(Input::Datagram {
                    now,
                    from: RECEIVER_ADDR,
                    data: out.freeze(),
                });
            }
        }
        let _ = h.s.stats();
    }
});
