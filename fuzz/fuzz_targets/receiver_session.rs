//! The receiver session fed a sequence of `arbitrary` inputs through `handle_input` /
//! `poll_output` / `playout`: a real sender session's datagrams (through a network that
//! loses, duplicates, corrupts, cuts and reorders them, the receiver's answers going back
//! to the sender), datagrams built from valid-looking pieces (media of every payload type
//! with CSRCs, extensions, padding and interleave headers; repair packets; retransmissions;
//! RTCP compounds of SR, RR, SDES, BYE, PAUSE, RESUME, ACK, DESC and NACK) with the SSRCs
//! the session knows or any, raw bytes, time passing and playout pulls of any size.
//! Checked: no panic; every output loop ends in a deadline; the deadlines do not livelock;
//! playout never writes more frames than asked for, nor before a session exists; at most
//! 32 substreams; the receiver answers only addresses it heard from.
//!
//! One input plays out at most [`MAX_PLAYED_SAMPLES`] samples (frames times the channels of
//! all substreams) and simulates at most [`MAX_TIME`]: concealment is costly per sample of
//! every substream (docs/FUZZING.md, findings), and the fuzzer should spend its time on new
//! paths rather than long playouts.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use isostream_fuzz::*;
use isostream_receiver::{ReceiverConfig, ReceiverSession};
use isostream_sender::{SenderSession, Speed};
use isostream_transport::sans_io::{Input, Transmit};
use isostream_transport::time::{Duration, Instant};
use libfuzzer_sys::fuzz_target;

/// Most samples (frames times all substreams' channels) one input plays out: 1 s of stereo
/// at 48 kHz.
const MAX_PLAYED_SAMPLES: usize = 96_000;
/// Most virtual time one input simulates.
const MAX_TIME: Duration = Duration::from_secs(30);

#[derive(Arbitrary, Debug)]
enum Op {
    /// The real sender runs for `ms` ms; its datagrams meet these fates, in turn.
    Sender { ms: u8, fates: Vec<Fate> },
    /// The real sender's input ends.
    SenderEnd,
    /// A crafted datagram from the sender's address.
    FromSender(Datagram),
    /// A crafted datagram from a stranger.
    FromStranger(Datagram),
    /// Time passes (ms): timers, then what the playout clock says is due.
    Advance { ms: u16 },
    /// A playout pull of this many frames.
    Play { frames: u16 },
}

#[derive(Arbitrary, Debug)]
struct Case {
    sender: SenderSetup,
    low_water: u16,
    high_water: u16,
    idle_ms: u16,
    drift: bool,
    stock_l16: Option<u8>,
    stock_channels: u8,
    seed: u64,
    ops: Vec<Op>,
}

struct Harness {
    r: ReceiverSession,
    s: SenderSession,
    now: Instant,
    known: Vec<u32>,
    s_audio_seed: u64,
    s_input_ended: bool,
    heard_from: Vec<std::net::SocketAddr>,
    out: Vec<u8>,
    held: Option<Vec<u8>>,
    /// Samples played so far (frames times channels).
    played: usize,
}

impl Harness {
    fn deliver(&mut self, from: std::net::SocketAddr, data: Vec<u8>) {
        if !self.heard_from.contains(&from) {
            self.heard_from.push(from);
        }
        let now = self.now;
        self.r.handle_input(Input::Datagram {
            now,
            from,
            data: Bytes::from(data),
        });
        self.settle_receiver();
    }

    /// Drains the receiver (its datagrams go to the sender), and makes sure repeated
    /// timeouts at this instant come to a later deadline.
    fn settle_receiver(&mut self) -> Option<Instant> {
        for _ in 0..64 {
            let mut sent: Vec<Transmit> = Vec::new();
            let mut events = Vec::new();
            let at = drain(|| self.r.poll_output(), &mut sent, &mut events);
            for t in sent {
                assert!(
                    self.heard_from.contains(&t.to),
                    "the receiver sent to {}, which it never heard from",
                    t.to
                );
                if t.to == SENDER_ADDR {
                    let now = self.now;
                    self.s.handle_input(Input::Datagram {
                        now,
                        from: RECEIVER_ADDR,
                        data: t.data,
                    });
                }
            }
            match at {
                Some(at) if at <= self.now => self.r.handle_input(Input::Timeout(self.now)),
                _ => return at,
            }
        }
        panic!("the receiver's deadline stays at or before now: a driver would spin");
    }

    /// Pulls `frames` frames of playout (no more than [`MAX_PLAYED_SAMPLES`] in all).
    fn play(&mut self, frames: usize) {
        let Some(spec) = self.r.spec() else {
            assert_eq!(self.r.playout(self.now, &mut []), 0);
            return;
        };
        let channels = usize::from(spec.channels).max(1);
        let frames = frames.min((MAX_PLAYED_SAMPLES - self.played) / channels);
        if frames == 0 {
            return;
        }
        let fb = spec.frame_bytes();
        self.out.resize(frames * fb, 0);
        let n = self.r.playout(self.now, &mut self.out);
        assert!(n <= frames, "played {n} frames into room for {frames}");
        self.played += n * channels;
        self.settle_receiver();
    }

    /// Time passes to `t`: the receiver's timers and playout at the pump's 5 ms pace (in at
    /// most 400 steps: a long wait takes longer steps).
    fn advance_to(&mut self, t: Instant) {
        let step = Duration::from_millis(5).max((t - self.now) / 400);
        while self.now < t {
            self.now = (self.now + step).min(t);
            self.r.handle_input(Input::Timeout(self.now));
            self.settle_receiver();
            let due = self.r.due_frames(self.now).min(1 << 16);
            if due > 0 {
                self.play(due);
            }
        }
    }

    /// Runs the real sender for `ms` ms; its datagrams meet `fates`.
    fn run_sender(&mut self, ms: u8, fates: &[Fate]) {
        let end = self.now + Duration::from_millis(u64::from(ms));
        let fb = self.s.config().spec.frame_bytes();
        let live = self.s.config().live;
        let mut k = 0usize;
        let mut budget = 4096;
        loop {
            // audio: a stored source gives what the sender wants, a live one 5 ms at a time
            if !self.s_input_ended {
                let n = if live {
                    self.s.config().spec.rate as usize / 200
                } else {
                    self.s.audio_wanted().min(8192)
                };
                if n > 0 {
                    self.s_audio_seed = self.s_audio_seed.wrapping_add(1);
                    let a = audio(n * fb, self.s_audio_seed);
                    let now = self.now;
                    self.s.handle_input(Input::Audio { now, frames: &a });
                }
            }
            self.s.handle_input(Input::Timeout(self.now));
            let mut sent = Vec::new();
            let mut events = Vec::new();
            let at = drain(|| self.s.poll_output(), &mut sent, &mut events);
            for t in sent {
                let fate = if fates.is_empty() {
                    Fate::Deliver
                } else {
                    fates[k % fates.len()]
                };
                k += 1;
                for d in apply_fate(fate, t.data.to_vec(), &mut self.held) {
                    self.deliver(SENDER_ADDR, d);
                }
                budget -= 1;
                if budget == 0 {
                    return;
                }
            }
            let step = self.now + Duration::from_millis(if live { 5 } else { 20 });
            let next = at.map_or(step, |a| a.max(self.now + Duration::from_micros(100)));
            let next = next.min(step);
            if next > end {
                self.advance_to(end);
                return;
            }
            self.advance_to(next);
        }
    }
}

fuzz_target!(|case: Case| {
    let speeds = [Speed::Times(1.0), Speed::Times(2.0), Speed::Times(8.0)];
    let scfg = case.sender.config(&speeds);
    if scfg.validate().is_err() {
        return;
    }
    let Ok(s) = SenderSession::new(scfg) else {
        return;
    };
    let mut rcfg = ReceiverConfig::default();
    rcfg.low_water_ms = u32::from(case.low_water % 2000) + 1;
    rcfg.high_water_ms = rcfg.low_water_ms + u32::from(case.high_water % 2000) + 1;
    rcfg.idle_timeout = Duration::from_millis(u64::from(case.idle_ms % 3000) + 50);
    rcfg.drift_correction = case.drift;
    rcfg.stock_l16_payload_type = case.stock_l16.map(|p| p & 0x7f);
    rcfg.default_spec.channels = u16::from(case.stock_channels % 8 + 1);
    rcfg.seed = case.seed;
    let Ok(r) = ReceiverSession::new(rcfg) else {
        return;
    };
    let mut known = s.ssrcs();
    known.extend(s.description().substreams.iter().filter_map(|x| x.rtx_ssrc));
    let mut h = Harness {
        r,
        s,
        now: Instant::ZERO,
        known,
        s_audio_seed: case.seed,
        s_input_ended: false,
        heard_from: Vec::new(),
        out: Vec::new(),
        held: None,
        played: 0,
    };
    for op in case.ops.iter().take(256) {
        if h.now - Instant::ZERO > MAX_TIME {
            break;
        }
        match op {
            Op::Sender { ms, fates } => h.run_sender(*ms, fates),
            Op::SenderEnd => {
                h.s_input_ended = true;
                let now = h.now;
                h.s.handle_input(Input::EndOfInput(now));
            }
            Op::FromSender(d) => {
                let b = d.bytes(&h.known);
                h.deliver(SENDER_ADDR, b);
            }
            Op::FromStranger(d) => {
                let b = d.bytes(&h.known);
                h.deliver(STRANGER_ADDR, b);
            }
            Op::Advance { ms } => {
                let t = h.now + Duration::from_millis(u64::from(*ms));
                h.advance_to(t);
            }
            Op::Play { frames } => h.play(*frames as usize),
        }
        let st = h.r.stats();
        assert!(
            st.substreams.len() <= 32,
            "{} substreams",
            st.substreams.len()
        );
    }
});
