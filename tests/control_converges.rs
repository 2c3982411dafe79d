//! The control plane converges: whatever PAUSE took effect, the sender ends up doing what
//! its receiver wants within about a second, and a receiver restarted while its sender is
//! paused gets audio within a second. A real sender session streams to a real receiver
//! session in virtual time (1 ms turns, 1 ms one way, no loss); the forger speaks from the
//! receiver's own address with the receiver's own SSRC. Judged on the wire (the sender's
//! media datagrams) and on the audio played (the input, bit for bit).

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use isostream_media::{synthesize, Program, SampleFormat};
use isostream_receiver::{ReceiverConfig, ReceiverSession};
use isostream_sender::{SenderConfig, SenderSession, Speed};
use isostream_transport::rtcp;
use isostream_transport::rtp::{self, DatagramKind};
use isostream_transport::sans_io::{Input, Output};
use isostream_transport::time::{Duration, Instant};

/// What to do to the traffic.
#[derive(Clone, Copy, Debug, Default)]
struct Plan {
    /// Forge a PAUSE with the receiver's SSRC and this request number, from the receiver's
    /// address, at `forge_at_ms`.
    forged_pause: Option<u32>,
    forge_at_ms: u64,
    /// Drop the sender's acknowledgements for this long after the forgery (the sender's
    /// answer to the forged PAUSE is lost), in ms.
    drop_acks_ms: u64,
    /// Replace the receiver by a new one (another SSRC, same address) at this time, in ms.
    restart_receiver_at_ms: Option<u64>,
}

/// What a run left.
struct Run {
    input: Vec<u8>,
    frame_bytes: usize,
    /// Audio played by each receiver (one, or two if it was restarted).
    played: Vec<Vec<u8>>,
    /// When each media datagram left the sender, in ms.
    media_sent_ms: Vec<u64>,
    /// When the restarted receiver got its first media datagram, in ms.
    first_media_after_restart_ms: Option<u64>,
}

fn receiver(seed: u64, low: u32, high: u32) -> ReceiverSession {
    ReceiverSession::new(ReceiverConfig {
        seed,
        low_water_ms: low,
        high_water_ms: high,
        ..ReceiverConfig::default()
    })
    .expect("a valid receiver configuration")
}

fn drain<E>(mut poll: impl FnMut() -> Output<E>) -> Vec<Bytes> {
    let mut out = Vec::new();
    loop {
        match poll() {
            Output::Transmit(t) => out.push(t.data),
            Output::Event(_) => {}
            Output::Timeout(_) => return out,
        }
    }
}

fn is_ack(d: &[u8]) -> bool {
    rtcp::parse_compound(d).any(|p| matches!(p, Ok(rtcp::RtcpPacket::Ack { .. })))
}

/// Streams `seconds` of 48 kHz stereo S16 at `speed` (receiver watermarks `low`/`high` ms)
/// and applies `plan`.
fn run(seconds: f64, speed: Speed, low: u32, high: u32, plan: Plan) -> Run {
    let spec = spec(48_000, 2, SampleFormat::S16);
    let fb = spec.frame_bytes();
    let frames = (seconds * 48_000.0) as usize;
    let input = synthesize(Program::Mixed, spec, frames, 7);
    let mut scfg = SenderConfig::new(spec);
    scfg.seed = 11;
    scfg.speed = speed;
    scfg.receiver_addr = RECEIVER;
    scfg.fec = None;
    let mut snd = SenderSession::new(scfg).expect("a valid sender configuration");
    let mut rcv = receiver(21, low, high);
    let mut receiver_ssrc: Option<u32> = None;
    let mut played: Vec<Vec<u8>> = vec![Vec::new()];
    let mut media_sent_ms = Vec::new();
    let mut first_media_after_restart_ms = None;
    let mut restarted = false;
    let (mut to_receiver, mut to_sender): (Vec<Bytes>, Vec<Bytes>) = (Vec::new(), Vec::new());
    let mut fed = 0;
    let mut ended = false;
    let mut scratch = Vec::new();
    let limit_ms = (seconds * 1000.0) as u64 * 3 + 10_000;
    for ms in 0..limit_ms {
        let now = Instant::ZERO + Duration::from_millis(ms);
        if plan.restart_receiver_at_ms == Some(ms) {
            // a new receiver process on the same address: a new SSRC, nothing in flight
            rcv = receiver(99, low, high);
            played.push(Vec::new());
            to_receiver.clear();
            to_sender.clear();
            restarted = true;
        }
        for d in to_receiver.drain(..) {
            if restarted
                && first_media_after_restart_ms.is_none()
                && rtp::classify(&d) == DatagramKind::Media
            {
                first_media_after_restart_ms = Some(ms);
            }
            rcv.handle_input(datagram(now, SENDER, d));
        }
        for d in to_sender.drain(..) {
            snd.handle_input(datagram(now, RECEIVER, d));
        }
        if let (Some(number), Some(ssrc)) = (plan.forged_pause, receiver_ssrc) {
            if ms == plan.forge_at_ms {
                let mut b = BytesMut::new();
                rtcp::write_flow(&mut b, rtcp::APP_PAUSE, ssrc, number);
                snd.handle_input(datagram(now, RECEIVER, b.freeze()));
            }
        }
        if !ended {
            let n = snd.audio_wanted().min(frames - fed);
            if n > 0 {
                snd.handle_input(Input::Audio {
                    now,
                    frames: &input[fed * fb..(fed + n) * fb],
                });
                fed += n;
            }
            if fed == frames {
                snd.handle_input(Input::EndOfInput(now));
                ended = true;
            }
        }
        snd.handle_input(Input::Timeout(now));
        for d in drain(|| snd.poll_output()) {
            if rtp::classify(&d) == DatagramKind::Media {
                media_sent_ms.push(ms);
            }
            let lost = ms >= plan.forge_at_ms
                && ms < plan.forge_at_ms + plan.drop_acks_ms
                && plan.forged_pause.is_some()
                && is_ack(&d);
            if !lost {
                to_receiver.push(d);
            }
        }
        rcv.handle_input(Input::Timeout(now));
        let sent = drain(|| rcv.poll_output());
        if receiver_ssrc.is_none() {
            receiver_ssrc = sent
                .first()
                .filter(|d| d.len() >= 8)
                .map(|d| u32::from_be_bytes([d[4], d[5], d[6], d[7]]));
        }
        to_sender.extend(sent);
        if ms % 5 == 0 {
            let due = rcv.due_frames(now);
            scratch.resize(due * fb, 0);
            let n = rcv.playout(now, &mut scratch);
            played
                .last_mut()
                .expect("a receiver")
                .extend_from_slice(&scratch[..n * fb]);
            to_sender.extend(drain(|| rcv.poll_output()));
        }
        if snd.is_finished() && rcv.is_ended() {
            break;
        }
    }
    Run {
        input,
        frame_bytes: fb,
        played,
        media_sent_ms,
        first_media_after_restart_ms,
    }
}

/// The longest time the sender sent no media from `from_ms` on, in ms.
fn longest_media_gap_ms(sent: &[u64], from_ms: u64) -> u64 {
    let after: Vec<u64> = sent.iter().copied().filter(|&t| t >= from_ms).collect();
    let first = after.first().map_or(u64::MAX, |&t| t - from_ms);
    after
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(0)
        .max(first)
}

#[test]
fn a_forged_pause_from_the_receivers_own_address_costs_about_a_round_trip() {
    // real time: the sender never pauses on its own, so any gap is the forgery's
    let base = run(6.0, Speed::Times(1.0), 200, 1000, Plan::default());
    let base_gap = longest_media_gap_ms(&base.media_sent_ms, 1000);
    for number in [0x7fff_fff0u32, 1 << 20, 3] {
        let r = run(
            6.0,
            Speed::Times(1.0),
            200,
            1000,
            Plan {
                forged_pause: Some(number),
                forge_at_ms: 1000,
                ..Plan::default()
            },
        );
        let gap = longest_media_gap_ms(&r.media_sent_ms, 1000);
        eprintln!("forged PAUSE #{number}: longest media gap {gap} ms (without {base_gap} ms)");
        assert!(
            gap <= base_gap + 50,
            "PAUSE #{number}: the sender sent no media for {gap} ms (without forgery {base_gap} ms)"
        );
        assert_frames_exact(&r.input, &r.played[0], r.frame_bytes, "forged PAUSE");
    }
}

#[test]
fn a_forged_pause_whose_acknowledgement_is_lost_costs_at_most_about_a_second() {
    let r = run(
        6.0,
        Speed::Times(1.0),
        200,
        1000,
        Plan {
            forged_pause: Some(0x4000_0000),
            forge_at_ms: 1000,
            drop_acks_ms: 100,
            ..Plan::default()
        },
    );
    let gap = longest_media_gap_ms(&r.media_sent_ms, 1000);
    eprintln!("forged PAUSE, its ACK lost: longest media gap {gap} ms");
    assert!(
        (20..=1000).contains(&gap),
        "the sender sent no media for {gap} ms after the forged PAUSE"
    );
    assert_frames_exact(
        &r.input,
        &r.played[0],
        r.frame_bytes,
        "forged PAUSE, ACK lost",
    );
}

#[test]
fn a_receiver_restarted_while_its_sender_is_paused_gets_audio_within_a_second() {
    // as fast as it can: the first receiver's buffer fills to its high-water mark and the
    // sender pauses; then that receiver is replaced by a new one
    let r = run(
        8.0,
        Speed::Max,
        200,
        600,
        Plan {
            restart_receiver_at_ms: Some(1500),
            ..Plan::default()
        },
    );
    let sent_before: Vec<_> = r.media_sent_ms.iter().filter(|&&t| t < 1500).collect();
    assert!(
        sent_before.last().is_some_and(|&&t| t < 1400),
        "the sender was not paused before the restart"
    );
    let first = r
        .first_media_after_restart_ms
        .expect("the new receiver never got media");
    eprintln!("restarted receiver: first media after {} ms", first - 1500);
    assert!(
        first - 1500 <= 1000,
        "the new receiver got its first media {} ms after it started",
        first - 1500
    );
    // what the new receiver played is the rest of the input, in order
    let got = &r.played[1];
    assert!(
        got.len() >= r.frame_bytes * 48_000,
        "the new receiver played {} frames",
        got.len() / r.frame_bytes
    );
    let tail = &r.input[r.input.len() - got.len()..];
    assert_frames_exact(tail, got, r.frame_bytes, "the restarted receiver's audio");
}
