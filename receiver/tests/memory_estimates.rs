//! The memory estimates the budget relies on, checked against an allocator that counts:
//! every stage allocates no more than it says, a session no more than its estimate, an
//! ended session frees its buffers, and a flood of crafted datagrams cannot take a receiver
//! beyond its budget.

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use isostream_media::{AudioSpec, SampleFormat};
use isostream_receiver::budget::DEFAULT_MEMORY_BUDGET_BYTES;
use isostream_receiver::concealer::Concealer;
use isostream_receiver::drift::AdaptiveResampler;
use isostream_receiver::jitter_buffer::JitterBuffer;
use isostream_receiver::{ReceiverConfig, ReceiverEvent, ReceiverSession};
use isostream_transport::fec::{BlockEncoder, FecParams, ReedSolomonCodec};
use isostream_transport::rtcp::{self, SessionDesc, SubstreamDesc};
use isostream_transport::rtp::{self, RtpHeader};
use isostream_transport::sans_io::{Input, Output};
use isostream_transport::time::{Duration, Instant};

/// Counts the bytes allocated by the current thread (each test runs on its own thread).
struct Counting;

thread_local! {
    static CUR: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn add(n: isize) {
    let _ = CUR.try_with(|c| {
        let v = c.get() + n;
        c.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: AllocLayout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            add(l.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: AllocLayout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            add(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: AllocLayout) {
        unsafe { System.dealloc(p, l) };
        add(-(l.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, l: AllocLayout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            add(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn current() -> isize {
    CUR.with(Cell::get)
}

/// Starts watching the peak: returns the current allocation.
fn watch() -> isize {
    let c = current();
    PEAK.with(|p| p.set(c));
    c
}

/// The peak since `watch()` returned `base`, in bytes above it.
fn peak_since(base: isize) -> usize {
    (PEAK.with(Cell::get) - base).max(0) as usize
}

fn spec(rate: u32, channels: u16, format: SampleFormat) -> AudioSpec {
    AudioSpec {
        rate,
        channels,
        format,
    }
}

const SPECS: [(u32, u16, SampleFormat); 5] = [
    (48_000, 1, SampleFormat::S16),
    (48_000, 2, SampleFormat::S16),
    (96_000, 8, SampleFormat::S24),
    (192_000, 32, SampleFormat::F32),
    (768_000, 255, SampleFormat::F32),
];

#[test]
fn every_stage_allocates_no_more_than_it_says() {
    let mut bad = Vec::new();
    for (rate, ch, format) in SPECS {
        let sp = spec(rate, ch, format);
        let base = watch();
        let c = Concealer::new(sp);
        let got = peak_since(base);
        drop(c);
        assert!(
            got <= Concealer::memory_bytes(sp),
            "concealer {sp:?}: {got}"
        );

        // built, then engaged (which builds the sinc table) and run for a few chunks
        let fb = sp.frame_bytes();
        let mut out = vec![0u8; 256 * fb];
        let base = watch();
        let mut r = AdaptiveResampler::new(format, ch);
        for _ in 0..4 {
            r.process(1.001, |b: &mut [u8]| b.len() / fb, &mut out);
        }
        assert!(r.is_engaged());
        let got = peak_since(base);
        drop(r);
        let said = AdaptiveResampler::memory_bytes(format, ch);
        println!("resampler {ch} ch {format:?}: {got} of {said} bytes");
        bad.extend((got > said).then(|| format!("resampler {sp:?}: {got} > {said}")));

        let base = watch();
        let j = JitterBuffer::new(sp.frame_bytes(), 10_000, 0);
        let got = peak_since(base);
        drop(j);
        assert!(got <= JitterBuffer::memory_bytes(sp.frame_bytes(), 10_000));
    }
    assert!(bad.is_empty(), "{bad:?}");
}

const SSRC: u32 = 0x5eed;
const RTX: u32 = 0x7e7e;
/// Frames per packet (5 ms at 48 kHz).
const FRAMES: usize = 240;

fn at(ms: u64) -> Instant {
    Instant::ZERO + Duration::from_millis(ms)
}

fn desc(substreams: &[(u32, u8)], rate: u32, format: SampleFormat, fec: bool) -> SessionDesc {
    SessionDesc {
        codec: 0,
        rate,
        format: format.code(),
        packet_frames: FRAMES as u16,
        interleave: 1,
        fec_k: if fec { 8 } else { 0 },
        fec_m: if fec { 2 } else { 0 },
        spread: 1,
        live: false,
        substreams: substreams
            .iter()
            .map(|&(ssrc, channels)| SubstreamDesc {
                ssrc,
                ts_base: 0,
                channels,
                rtx_ssrc: Some(ssrc ^ RTX),
            })
            .collect(),
    }
}

fn rtcp_desc(d: &SessionDesc) -> Bytes {
    let mut b = BytesMut::new();
    rtcp::write_desc(&mut b, d.substreams[0].ssrc, d);
    b.freeze()
}

fn bye(ssrc: u32) -> Bytes {
    let mut b = BytesMut::new();
    rtcp::write_bye(&mut b, ssrc);
    b.freeze()
}

/// Media packet `seq` of `ssrc`: S16 stereo, every sample byte `seq`.
fn media(ssrc: u32, seq: u16) -> Bytes {
    let mut b = BytesMut::new();
    RtpHeader {
        marker: false,
        payload_type: rtp::PT_L16,
        seq,
        timestamp: seq as u32 * FRAMES as u32,
        ssrc,
    }
    .write(&mut b);
    b.extend_from_slice(&[seq as u8; FRAMES * 4]);
    b.freeze()
}

fn feed(rx: &mut ReceiverSession, now: Instant, d: Bytes) {
    rx.handle_input(Input::Datagram {
        now,
        from: std::net::SocketAddr::from(([127, 0, 0, 1], 5004)),
        data: d,
    });
}

/// Drains the outputs; returns the events.
fn drain(rx: &mut ReceiverSession) -> Vec<ReceiverEvent> {
    let mut ev = Vec::new();
    loop {
        match rx.poll_output() {
            Output::Transmit(_) => {}
            Output::Event(e) => ev.push(e),
            Output::Timeout(_) => return ev,
        }
    }
}

/// What a stream played: frames, and whether each was exact.
#[derive(Default)]
struct Played {
    frames: usize,
    wrong: usize,
}

impl Played {
    /// Checks the frames of `out` (every sample byte of packet `seq`'s frames is `seq`).
    fn check(&mut self, out: &[u8]) {
        for f in out.chunks(4) {
            let seq = (self.frames / FRAMES) as u8;
            self.wrong += usize::from(f.iter().any(|&b| b != seq));
            self.frames += 1;
        }
    }
}

/// A stereo stream with FEC: `packets` media packets and their repair packets, 5 ms apart,
/// played out as they come into `buf` (checked); `between` is called after every packet
/// (another source's datagrams). Returns the time after the last packet.
fn stream(
    rx: &mut ReceiverSession,
    packets: u16,
    buf: &mut [u8],
    played: &mut Played,
    mut between: impl FnMut(&mut ReceiverSession, Instant),
) -> u64 {
    let mut enc = BlockEncoder::new(
        FecParams::new(8, 2).unwrap(),
        SSRC,
        0,
        ReedSolomonCodec::boxed(),
    );
    let d = desc(&[(SSRC, 2)], 48_000, SampleFormat::S16, true);
    feed(rx, at(0), rtcp_desc(&d));
    let mut repairs = Vec::with_capacity(8);
    let mut t = 0;
    for seq in 0..packets {
        t = seq as u64 * 5;
        let m = media(SSRC, seq);
        enc.push(&m, &mut repairs);
        feed(rx, at(t), m);
        for r in repairs.drain(..) {
            feed(rx, at(t), r);
        }
        between(rx, at(t));
        rx.handle_input(Input::Timeout(at(t)));
        let n = rx.due_frames(at(t)).min(buf.len() / 4);
        let got = rx.playout(at(t), &mut buf[..n * 4]);
        played.check(&buf[..got * 4]);
        drain(rx);
    }
    t
}

#[test]
fn a_session_stays_within_its_estimate_and_frees_its_buffers_when_it_ends() {
    let mut rx = ReceiverSession::new(ReceiverConfig::default()).unwrap();
    let mut buf = vec![0u8; 48_000 * 4];
    let mut played = Played::default();
    let base = watch();
    let t = stream(&mut rx, 4_000, &mut buf, &mut played, |_, _| {});
    let peak = peak_since(base);
    let estimate = rx.memory_bytes();
    let playing = (current() - base) as usize;
    println!("stereo session: estimate {estimate} bytes, peak {peak}, held {playing}");
    assert!(estimate > 0 && estimate < DEFAULT_MEMORY_BUDGET_BYTES / 4);
    assert!(peak <= estimate, "{peak} > {estimate}");
    assert_eq!(played.wrong, 0);
    // the end: BYE, and the rest played out
    feed(&mut rx, at(t + 5), bye(SSRC));
    let mut now = t + 5;
    while !rx.is_ended() && now < t + 20_000 {
        now += 20;
        let n = rx.due_frames(at(now)).min(48_000);
        let got = rx.playout(at(now), &mut buf[..n * 4]);
        played.check(&buf[..got * 4]);
        rx.handle_input(Input::Timeout(at(now)));
    }
    assert!(rx.is_ended());
    assert!(drain(&mut rx).contains(&ReceiverEvent::SessionEnded));
    assert_eq!(rx.memory_bytes(), 0);
    assert_eq!((played.frames, played.wrong), (4_000 * FRAMES, 0));
    let after = (current() - base).max(0) as usize;
    println!("after the end: {after} bytes held (was {playing})");
    assert!(
        after < playing / 4,
        "an ended session keeps {after} of {playing} bytes"
    );
    // its counters stay
    let st = rx.stats();
    assert_eq!(st.packets_received, 4_000);
    assert_eq!(st.memory_bytes, 0);
}

#[test]
fn a_session_with_the_resampler_stays_within_its_estimate() {
    let mut rx = ReceiverSession::new(ReceiverConfig {
        drift_correction: true,
        ..ReceiverConfig::default()
    })
    .unwrap();
    let mut buf = vec![0u8; 48_000 * 4];
    let mut played = Played::default();
    let base = watch();
    stream(&mut rx, 2_000, &mut buf, &mut played, |_, _| {});
    let peak = peak_since(base);
    let estimate = rx.memory_bytes();
    println!("stereo session with the resampler: estimate {estimate} bytes, peak {peak}");
    assert!(peak <= estimate, "{peak} > {estimate}");
    assert!(played.frames > 1_000 * FRAMES);
}

#[test]
fn a_description_over_the_budget_is_refused_and_the_next_stream_plays() {
    let mut rx = ReceiverSession::new(ReceiverConfig::default()).unwrap();
    // 32 substreams of 255 channels of f32 at 768 kHz: far beyond 64 MiB
    let huge: Vec<(u32, u8)> = (0..32).map(|i| (1000 + i, 255)).collect();
    let base = watch();
    feed(
        &mut rx,
        at(0),
        rtcp_desc(&desc(&huge, 768_000, SampleFormat::F32, true)),
    );
    assert!(peak_since(base) < 1 << 20, "nothing allocated for it");
    let ev = drain(&mut rx);
    let reason = match &ev[..] {
        [ReceiverEvent::SessionRefused { reason }] => reason.clone(),
        other => panic!("{other:?}"),
    };
    assert!(reason.contains("memory budget"), "{reason}");
    let (n, why) = rx.refused_over_budget();
    assert_eq!(n, 1);
    assert!(why.unwrap().needed_bytes > DEFAULT_MEMORY_BUDGET_BYTES);
    assert_eq!(rx.stats().sessions_over_budget, 1);
    // the next stream plays, exactly
    let mut buf = vec![0u8; 48_000 * 4];
    let mut played = Played::default();
    stream(&mut rx, 400, &mut buf, &mut played, |_, _| {});
    assert!(played.frames > 100 * FRAMES);
    assert_eq!(played.wrong, 0);
    assert_eq!(rx.stats().sessions_over_budget, 1);
}

/// A small generator (no dependency).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A crafted datagram: media of an unknown SSRC, a description asking for a huge or a
/// plausible layout, a repair packet, RTCP of unknown SSRCs, or junk.
fn crafted(rng: &mut XorShift) -> Bytes {
    let r = rng.next();
    let ssrc = (r >> 32) as u32;
    let mut b = BytesMut::new();
    match r % 5 {
        0 | 1 => {
            RtpHeader {
                marker: false,
                payload_type: rtp::PT_L16,
                seq: r as u16,
                timestamp: (r >> 16) as u32,
                ssrc,
            }
            .write(&mut b);
            b.extend_from_slice(&vec![r as u8; (r >> 8) as usize % 1400]);
        }
        2 => {
            let n = 1 + (r >> 8) as usize % 32;
            let subs: Vec<(u32, u8)> = (0..n).map(|i| (ssrc.wrapping_add(i as u32), 255)).collect();
            let rate = if r & 0x100 == 0 { 768_000 } else { 48_000 };
            b.extend_from_slice(&rtcp_desc(&desc(&subs, rate, SampleFormat::F32, true)));
        }
        3 => {
            rtcp::write_bye(&mut b, ssrc);
        }
        _ => {
            let len = (r >> 8) as usize % 1500;
            b.extend((0..len).map(|_| rng.next() as u8));
        }
    }
    b.freeze()
}

#[test]
fn a_flood_of_crafted_datagrams_stays_within_the_budget_and_the_stream_stays_exact() {
    let budget = 16 << 20;
    let mut rx = ReceiverSession::new(ReceiverConfig {
        memory_budget_bytes: budget,
        ..ReceiverConfig::default()
    })
    .unwrap();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut buf = vec![0u8; 48_000 * 4];
    let mut played = Played::default();
    let base = watch();
    let mut sent = 0u64;
    stream(&mut rx, 2_000, &mut buf, &mut played, |rx, now| {
        for _ in 0..40 {
            feed(rx, now, crafted(&mut rng));
            sent += 1;
        }
    });
    let peak = peak_since(base);
    println!("flood of {sent} datagrams: peak {peak} bytes, budget {budget}");
    assert!(peak <= budget, "{peak} > {budget}");
    assert_eq!(played.wrong, 0);
    assert!(played.frames >= 1_500 * FRAMES);
    let st = rx.stats();
    assert!(st.datagrams_foreign + st.datagrams_malformed > sent / 2);
}
