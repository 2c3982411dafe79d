//! Flow control in virtual time, where timing claims are exact: how much audio a PAUSE lets
//! through (one round trip of it), no underrun at `--speed max`, the sender's pace when it
//! never hears its receiver, a sender that loses its receiver (`FinishReason::ReceiverLost`),
//! and PAUSE/RESUME while media and control are reordered and duplicated. Every test checks
//! the audio that comes out against the input.

mod common;

use common::{datagram, drain, drain_until, profile, stereo, RECEIVER, SENDER};
use isostream::sim::{self, MemorySource, SimResult};
use isostream_media::{synthesize, Program};
use isostream_netsim::{DelayModel, LinkConfig, LossModel};
use isostream_receiver::{ReceiverConfig, ReceiverSession};
use isostream_sender::{FinishReason, SenderConfig, SenderEvent, SenderSession, Speed};
use isostream_transport::sans_io::Input;
use isostream_transport::time::{Duration, Instant};

fn fixed_delay(ms: f64) -> LinkConfig {
    LinkConfig {
        delay: DelayModel {
            base_ms: ms,
            ..DelayModel::default()
        },
        ..LinkConfig::default()
    }
}

fn run(
    cfg: SenderConfig,
    rcfg: ReceiverConfig,
    p: &isostream_netsim::Profile,
    input: &[u8],
) -> SimResult {
    let mut src = MemorySource::new(input, cfg.spec.frame_bytes());
    sim::run(cfg, rcfg, p, 7, &mut src, Duration::from_secs(120)).unwrap()
}

fn watermarks(low: u32, high: u32) -> ReceiverConfig {
    ReceiverConfig {
        low_water_ms: low,
        high_water_ms: high,
        ..ReceiverConfig::default()
    }
}

#[test]
fn a_pause_lets_through_one_round_trip_of_audio_and_playback_never_runs_dry() {
    // --speed max: one datagram per 100 us. With 1 ms each way, what the sender sends
    // between the packet that crossed the high-water mark leaving it and the PAUSE
    // arriving is one round trip: 2 ms = 20 datagrams = 16 media packets of 5 ms (FEC 8,2)
    // = 80 ms of audio, plus the packet that crossed the mark (5 ms) and the block's
    // repair packets that may be queued ahead of media (2 x 100 us).
    let spec = stereo();
    let input = synthesize(Program::Music, spec, 48_000 * 6 + 17, 11);
    let mut cfg = SenderConfig::new(spec);
    cfg.speed = Speed::Max;
    let p = profile(fixed_delay(1.0), fixed_delay(1.0));
    let r = run(cfg, watermarks(100, 300), &p, &input);
    assert!(r.completed);
    assert!(r.output == input, "the output differs from the input");
    let bound = 300.0 + 80.0 + 5.0 + 10.0;
    assert!(
        r.receiver.buffer_max_ms > 300.0 && r.receiver.buffer_max_ms <= bound,
        "buffer max {} ms, bound {bound} ms",
        r.receiver.buffer_max_ms
    );
    assert!(
        r.sender.pauses_applied >= 3 && r.sender.resumes_applied >= 3,
        "{:?}",
        r.sender
    );
    // RESUME at 100 ms gets through in 1 ms and the sender refills at 50x real time: the
    // buffer never runs dry
    assert_eq!(r.receiver.underruns, 0, "{:?}", r.receiver);
    // (until the input runs out, the buffer stays near the low-water mark or above)
    let end = r.elapsed.as_secs_f64() - 1.0;
    let min = r
        .timeline
        .iter()
        .filter(|s| s.t > 0.5 && s.t < end)
        .fold(f64::MAX, |m, s| m.min(s.buffer_ms));
    assert!(min >= 90.0, "the buffer fell to {min} ms");
    assert_eq!(r.receiver.packets_overflowed, 0);
}

#[test]
fn a_pause_inside_a_spread_group_lets_the_group_finish_so_nothing_is_asked_again() {
    // --spread 2 with FEC 8,2: 20 packets leave column by column, so a PAUSE in the middle
    // of a group would leave sequence numbers unsent below the highest sent; the receiver
    // would count them lost and ask for them. The group finishes first.
    let spec = stereo();
    let input = synthesize(Program::Mixed, spec, 48_000 * 10, 12);
    let mut cfg = SenderConfig::new(spec);
    cfg.speed = Speed::Times(2.0);
    cfg.fec = Some(isostream_transport::fec::FecParams::new(8, 2).unwrap());
    cfg.spread = 2;
    let p = profile(fixed_delay(5.0), fixed_delay(5.0));
    let r = run(
        cfg,
        ReceiverConfig {
            resume_water_ms: Some(2000),
            ..watermarks(300, 4000)
        },
        &p,
        &input,
    );
    assert!(r.completed);
    assert!(r.output == input, "the output differs from the input");
    assert!(r.sender.pauses_applied >= 1, "{:?}", r.sender);
    assert_eq!(
        r.forward.dropped + r.forward.dropped_outage,
        0,
        "{:?}",
        r.forward
    );
    assert_eq!(r.receiver.packets_lost, 0, "{:?}", r.receiver);
    assert_eq!(r.receiver.retransmissions_requested, 0, "{:?}", r.receiver);
}

#[test]
fn a_sender_that_never_hears_its_receiver_keeps_its_pace_and_finishes() {
    // the pace: a sender with no receiver at all, at --speed max, sends one datagram per
    // 100 us and then BYE three times 100 ms apart; nothing stalls it
    let spec = stereo();
    let input = synthesize(Program::Music, spec, 48_000 * 4, 13);
    let fb = spec.frame_bytes();
    let mut cfg = SenderConfig::new(spec);
    cfg.speed = Speed::Max;
    let mut tx = SenderSession::new(cfg.clone()).unwrap();
    let (mut now, mut pos, mut sent, mut finished) = (Instant::ZERO, 0usize, 0u64, None);
    while finished.is_none() {
        let n = tx.audio_wanted().min(input.len() / fb - pos);
        if n == 0 && pos * fb == input.len() {
            tx.handle_input(Input::EndOfInput(now));
        }
        tx.handle_input(Input::Audio {
            now,
            frames: &input[pos * fb..(pos + n) * fb],
        });
        pos += n;
        tx.handle_input(Input::Timeout(now));
        let mut events = Vec::new();
        let (datagrams, next) = drain_until(|| tx.poll_output(), &mut events);
        sent += datagrams.len() as u64;
        for e in events {
            if let SenderEvent::Finished(why) = e {
                finished = Some(why);
            }
        }
        // more audio is wanted now, or the session's own deadline
        let next = if tx.audio_wanted() > 0 && pos * fb < input.len() {
            now
        } else {
            next.unwrap_or(now)
        };
        now = next.max(now + Duration::from_micros(1));
        assert!(now < Instant::ZERO + Duration::from_secs(30), "stalled");
    }
    assert_eq!(finished, Some(FinishReason::EndOfInput));
    let st = tx.stats();
    assert_eq!(st.frames_sent, (input.len() / fb) as u64);
    let media = st.packets_sent + st.repair_packets_sent;
    assert_eq!(sent, media + st.rtcp_packets_sent);
    let nominal = media as f64 * 100e-6 + 0.2;
    let took = now.as_secs_f64();
    assert!(
        took <= nominal * 1.05 + 0.01,
        "{media} datagrams and BYE took {took:.3} s of virtual time, nominal {nominal:.3} s"
    );

    // the same through a path whose control direction loses everything: the receiver asks
    // for PAUSE again and again, never heard; the sender never pauses, and the whole input
    // (it fits the receiver's headroom) comes out exact
    let dead = LinkConfig {
        loss: LossModel::Bernoulli { p: 1.0 },
        ..LinkConfig::default()
    };
    let r = run(
        cfg,
        watermarks(100, 300),
        &profile(fixed_delay(1.0), dead),
        &input,
    );
    assert!(r.completed);
    assert!(r.output == input, "the output differs from the input");
    assert_eq!(
        (r.sender.pauses_applied, r.sender.paused_ms),
        (0, 0),
        "{:?}",
        r.sender
    );
    assert!(r.sender.receiver_report.is_none());
    assert!(r.receiver.flow.pauses_sent >= 1, "{:?}", r.receiver.flow);
    assert!(
        r.receiver.flow.request_retransmissions >= 3,
        "{:?}",
        r.receiver.flow
    );
    assert_eq!(r.receiver.flow.pauses_acked, 0);
    assert_eq!(r.receiver.packets_overflowed, 0);
}

#[test]
fn a_sender_that_loses_its_receiver_stops_and_the_receiver_plays_exactly_what_came() {
    // the control path dies 2 s in; the sender, which had heard receiver reports, gives up
    // after its 1 s receiver timeout. The receiver plays exactly what was sent, then ends.
    let spec = stereo();
    let input = synthesize(Program::Speech, spec, 48_000 * 10, 17);
    let fb = spec.frame_bytes();
    let mut cfg = SenderConfig::new(spec);
    cfg.receiver_timeout = Duration::from_secs(1);
    let mut tx = SenderSession::new(cfg).unwrap();
    let mut rx = ReceiverSession::new(ReceiverConfig::default()).unwrap();
    let cut = Instant::ZERO + Duration::from_secs(2);
    let (mut now, mut pos, mut out) = (Instant::ZERO, 0usize, Vec::new());
    let mut chunk = vec![0u8; 48_000 * fb];
    let mut finished = None;
    let mut finished_at = None;
    while now < Instant::ZERO + Duration::from_secs(20) && !rx.is_ended() {
        let n = tx.audio_wanted().min(input.len() / fb - pos);
        if n == 0 && pos * fb == input.len() {
            tx.handle_input(Input::EndOfInput(now));
        }
        tx.handle_input(Input::Audio {
            now,
            frames: &input[pos * fb..(pos + n) * fb],
        });
        pos += n;
        tx.handle_input(Input::Timeout(now));
        let mut events = Vec::new();
        for d in drain(|| tx.poll_output(), &mut events) {
            rx.handle_input(datagram(now, SENDER, d));
        }
        for e in events {
            if let SenderEvent::Finished(why) = e {
                finished = Some(why);
                finished_at = Some(now);
            }
        }
        rx.handle_input(Input::Timeout(now));
        let due = rx.due_frames(now);
        if due > 0 {
            let n = rx.playout(now, &mut chunk[..due.min(48_000) * fb]);
            out.extend_from_slice(&chunk[..n * fb]);
        }
        let back = drain(|| rx.poll_output(), &mut Vec::new());
        if now < cut {
            for d in back {
                tx.handle_input(datagram(now, RECEIVER, d));
            }
        }
        now += Duration::from_millis(1);
    }
    let silent = match finished {
        Some(FinishReason::ReceiverLost { silent_ms }) => silent_ms,
        other => panic!("the sender finished with {other:?}"),
    };
    assert!((1_000..1_300).contains(&silent), "silent for {silent} ms");
    // last heard: the last receiver report before the cut (every 250 ms)
    let at = finished_at.unwrap().as_secs_f64();
    assert!((2.75..3.1).contains(&at), "gave up at {at} s");
    assert!(rx.is_ended(), "the receiver did not end");
    let sent = tx.stats().frames_sent as usize;
    assert!(
        sent < input.len() / fb && sent > 48_000 * 5 / 2,
        "{sent} frames sent"
    );
    assert_eq!(
        out.len() / fb,
        sent,
        "played {} of {sent} frames sent",
        out.len() / fb
    );
    assert!(
        out == input[..sent * fb],
        "the output is not the input's first {sent} frames"
    );
}

/// A path that reorders heavily (uncorrelated jitter of 3 ms sd on top of 2 ms) and
/// duplicates a fifth of what it delivers.
fn reordering_duplicating() -> LinkConfig {
    LinkConfig {
        delay: DelayModel {
            base_ms: 2.0,
            jitter_ms: 3.0,
            correlation: 0.0,
            ..DelayModel::default()
        },
        duplicate: 0.2,
        ..LinkConfig::default()
    }
}

#[test]
fn pause_and_resume_work_while_media_and_control_are_reordered_and_duplicated() {
    let spec = stereo();
    let input = synthesize(Program::Music, spec, 48_000 * 6 + 3, 19);
    let mut cfg = SenderConfig::new(spec);
    cfg.speed = Speed::Max;
    cfg.interleave = 2;
    let p = profile(reordering_duplicating(), reordering_duplicating());
    let r = run(cfg, watermarks(150, 400), &p, &input);
    assert!(r.completed);
    assert!(r.forward.reordered > 100, "{:?}", r.forward);
    assert!(r.forward.duplicated > 100, "{:?}", r.forward);
    assert!(
        r.reverse.duplicated > 0 && r.reverse.reordered > 0,
        "{:?}",
        r.reverse
    );
    assert!(r.receiver.packets_duplicate > 100, "{:?}", r.receiver);
    assert!(
        r.sender.pauses_applied >= 2 && r.sender.resumes_applied >= 2,
        "{:?}",
        r.sender
    );
    // duplicated requests are recognised: each applied at most once
    assert!(r.sender.pauses_applied <= r.receiver.flow.pauses_sent);
    assert!(r.sender.resumes_applied <= r.receiver.flow.resumes_sent);
    assert!(r.sender.duplicate_requests > 0, "{:?}", r.sender);
    assert_eq!(r.receiver.packets_overflowed, 0);
    // nothing lost, nothing doubled, nothing out of place
    assert_eq!(r.output.len(), input.len());
    assert!(r.output == input, "the output differs from the input");
}
