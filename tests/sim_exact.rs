//! The sans-IO sessions over a perfect simulated link reproduce the input exactly.

mod common;

use common::{builtin_profile, run_sim};
use isostream_media::{synthesize, AudioSpec, Program, SampleFormat};
use isostream_receiver::ReceiverConfig;
use isostream_sender::{SenderConfig, Speed};
use isostream_transport::sans_io::{Input, Output};
use isostream_transport::time::Duration;

fn spec(rate: u32, channels: u16) -> AudioSpec {
    AudioSpec {
        rate,
        channels,
        format: SampleFormat::S16,
    }
}

/// A datagram from the other side, as a session input.
fn datagram(now: isostream_transport::time::Instant, data: bytes::Bytes) -> Input<'static> {
    Input::Datagram {
        now,
        from: std::net::SocketAddr::from(([127, 0, 0, 1], 5004)),
        data,
    }
}

/// The datagrams a session hands out now (its events are dropped).
fn sent<E>(mut poll: impl FnMut() -> Output<E>) -> Vec<bytes::Bytes> {
    let mut v = Vec::new();
    loop {
        match poll() {
            Output::Transmit(t) => v.push(t.data),
            Output::Event(_) => {}
            Output::Timeout(_) => return v,
        }
    }
}

#[test]
fn perfect_link_reproduces_stereo_48k_exactly() {
    let s = spec(48_000, 2);
    let input = synthesize(Program::Music, s, 48_000 * 3 + 77, 1);
    let r = run_sim(
        SenderConfig::new(s),
        &builtin_profile("perfect"),
        1,
        &input,
        60,
    );
    assert!(r.completed);
    assert_eq!(r.output.len(), input.len());
    assert!(r.output == input);
}

#[test]
fn speed_max_pauses_and_resumes_and_stays_exact() {
    let s = spec(44_100, 1);
    let input = synthesize(Program::Speech, s, 44_100 * 10, 2);
    let mut cfg = SenderConfig::new(s);
    cfg.speed = Speed::Max;
    let r = run_sim(cfg, &builtin_profile("lan"), 3, &input, 60);
    assert!(r.completed);
    assert!(
        r.sender.pauses_applied >= 1 && r.sender.resumes_applied >= 1,
        "{:?}",
        r.sender
    );
    assert!(r.output == input);
}

#[test]
fn a_receiver_that_joins_a_running_stream_plays_from_where_it_joined() {
    use isostream_receiver::ReceiverSession;
    use isostream_sender::SenderSession;
    use isostream_transport::time::Instant;
    let s = spec(48_000, 2);
    let input = synthesize(Program::Music, s, 48_000 * 12, 4);
    let mut tx = SenderSession::new(SenderConfig::new(s)).unwrap();
    let mut rx = ReceiverSession::new(ReceiverConfig::default()).unwrap();
    let fb = s.frame_bytes();
    let (mut pos, mut now, mut out) = (0usize, Instant::ZERO, Vec::new());
    let mut chunk = vec![0u8; 48_000 * fb];
    let join = Instant::ZERO + Duration::from_secs(8);
    let ts_base = tx.description().substreams[0].ts_base;
    // the media position of the first media packet the receiver gets
    let mut joined_at: Option<usize> = None;
    while now < Instant::ZERO + Duration::from_secs(11) {
        let want = tx.audio_wanted();
        let n = want.min(input.len() / fb - pos);
        tx.handle_input(Input::Audio {
            now,
            frames: &input[pos * fb..(pos + n) * fb],
        });
        pos += n;
        tx.handle_input(Input::Timeout(now));
        for d in sent(|| tx.poll_output()) {
            if now >= join {
                if joined_at.is_none() && d.len() > 12 && d[1] & 0x7f == 96 {
                    let ts = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
                    joined_at = Some(ts.wrapping_sub(ts_base) as usize);
                }
                rx.handle_input(datagram(now, d));
            }
        }
        rx.handle_input(Input::Timeout(now));
        let due = rx.due_frames(now);
        if due > 0 {
            let n = rx.playout(now, &mut chunk[..due * fb]);
            out.extend_from_slice(&chunk[..n * fb]);
        }
        for d in sent(|| rx.poll_output()) {
            tx.handle_input(datagram(now, d));
        }
        now += Duration::from_millis(1);
    }
    let st = rx.stats();
    assert_eq!(st.packets_overflowed, 0, "{st:?}");
    assert!(st.frames_played >= 48_000 * 2, "{st:?}");
    // it played the stream as it was when it joined, not silence from its start: exactly
    // the input from the first packet it received on, frame for frame, for all it played
    let at = joined_at.expect("media reached the receiver");
    assert!(
        (at as i64 - 8 * 48_000).abs() <= 4_800,
        "the first packet after 8 s carried media position {at}"
    );
    assert_eq!(out.len() / fb, st.frames_played as usize);
    assert!(
        out.len() / fb >= 48_000 * 5 / 2,
        "only {} frames played",
        out.len() / fb
    );
    let want = &input[at * fb..at * fb + out.len()];
    assert!(
        want == &out[..],
        "output differs from the input from frame {at} on, first at output frame {:?}",
        want.chunks(fb)
            .zip(out.chunks(fb))
            .position(|(a, b)| a != b)
    );
}

#[test]
fn a_live_sender_paused_by_hand_leaves_no_hole_in_the_output() {
    use bytes::BytesMut;
    use isostream_receiver::ReceiverSession;
    use isostream_sender::SenderSession;
    use isostream_transport::rtcp::{write_flow, APP_PAUSE, APP_RESUME};
    use isostream_transport::time::Instant;
    let s = spec(48_000, 1);
    let input = synthesize(Program::Speech, s, 48_000 * 3, 6);
    let mut cfg = SenderConfig::new(s);
    cfg.live = true;
    let mut tx = SenderSession::new(cfg).unwrap();
    let rcfg = ReceiverConfig {
        low_water_ms: 40,
        high_water_ms: 5_000,
        ..ReceiverConfig::default()
    };
    let mut rx = ReceiverSession::new(rcfg).unwrap();
    let fb = s.frame_bytes();
    let (mut now, mut out, mut chunk) = (Instant::ZERO, Vec::new(), vec![0u8; 48_000 * fb]);
    for ms in 0..3_600u64 {
        // the middle second is captured while the receiver has the sender paused
        let control = |kind, n| {
            let mut b = BytesMut::new();
            write_flow(&mut b, kind, 77, n);
            b
        };
        if ms == 1_000 {
            tx.handle_input(datagram(now, control(APP_PAUSE, 1).freeze()));
        }
        if ms == 2_000 {
            tx.handle_input(datagram(now, control(APP_RESUME, 2).freeze()));
        }
        if ms < 3_000 {
            let at = ms as usize * 48 * fb;
            tx.handle_input(Input::Audio {
                now,
                frames: &input[at..at + 48 * fb],
            });
        } else if ms == 3_000 {
            tx.handle_input(Input::EndOfInput(now));
        }
        tx.handle_input(Input::Timeout(now));
        for d in sent(|| tx.poll_output()) {
            rx.handle_input(datagram(now, d));
        }
        rx.handle_input(Input::Timeout(now));
        let due = rx.due_frames(now);
        if due > 0 {
            let n = rx.playout(now, &mut chunk[..due * fb]);
            out.extend_from_slice(&chunk[..n * fb]);
        }
        now += Duration::from_millis(1);
    }
    let st = rx.stats();
    let tx_st = tx.stats();
    assert!(tx_st.frames_dropped >= 48_000, "{tx_st:?}");
    // the dropped second is skipped, not played as a concealed gap
    assert!(st.substreams[0].frames_skipped >= 48_000, "{st:?}");
    assert!(st.frames_concealed < 480, "{st:?}");
    // what was played is the first and the last second, back to back, whole and exact:
    // the input up to where the PAUSE took effect, then the input from where the sender
    // resumed, the dropped stretch between them cut out
    let dropped = tx_st.frames_dropped as usize;
    let total = input.len() / fb;
    let head = out
        .chunks(fb)
        .zip(input.chunks(fb))
        .take_while(|(a, b)| a == b)
        .count();
    assert!(
        (47_000..=48_000).contains(&head),
        "the first {head} frames are the input's; the pause came after 48,000"
    );
    assert_eq!(
        out.len() / fb,
        total - dropped,
        "played {} frames of {total}, {dropped} dropped",
        out.len() / fb
    );
    let resumed = head + dropped;
    assert!(
        out[head * fb..] == input[resumed * fb..],
        "after frame {head} the output is not the input from frame {resumed} on"
    );
    assert_eq!(st.substreams[0].frames_skipped as usize, dropped, "{st:?}");
}

#[test]
fn receiver_reports_tell_the_sender_what_the_network_did() {
    let s = spec(48_000, 2);
    let input = synthesize(Program::Music, s, 48_000 * 8, 3);
    let run = |profile: &str| {
        let mut cfg = SenderConfig::new(s);
        cfg.fec = None;
        run_sim(cfg, &builtin_profile(profile), 2, &input, 60)
    };
    let clean = run("perfect");
    assert_eq!(clean.receiver.substreams[0].jitter_ms, 0.0);
    let view = clean
        .sender
        .receiver_report
        .expect("receiver reports arrive");
    assert_eq!((view.packets_lost, view.jitter_ms), (0, 0.0));
    // a jittery, lossy path: the receiver measures jitter and the sender hears of the loss
    let lossy = run("bursty");
    assert!(
        lossy.receiver.substreams[0].jitter_ms > 0.1,
        "{:?}",
        lossy.receiver.substreams[0]
    );
    let view = lossy
        .sender
        .receiver_report
        .expect("receiver reports arrive");
    assert!(
        view.packets_lost > 0 && view.packets_lost as u64 <= lossy.receiver.packets_lost,
        "{view:?} vs {}",
        lossy.receiver.packets_lost
    );
    assert!(view.jitter_ms > 0.1);
}

#[test]
fn a_stock_sender_using_payload_type_97_for_l16_is_read_as_l16_when_told() {
    use bytes::{BufMut, BytesMut};
    use isostream_receiver::ReceiverSession;
    use isostream_transport::rtp::RtpHeader;
    use isostream_transport::time::Instant;
    let s = spec(8_000, 1);
    let input = synthesize(Program::Speech, s, 8_000, 4);
    let play = |l16_pt: Option<u8>| {
        let cfg = ReceiverConfig {
            default_spec: s,
            stock_l16_payload_type: l16_pt,
            idle_timeout: Duration::from_millis(200),
            ..ReceiverConfig::default()
        };
        let mut rx = ReceiverSession::new(cfg).unwrap();
        let mut out = Vec::new();
        let mut chunk = vec![0u8; 8_000 * 2];
        let mut now = Instant::ZERO;
        for (i, frames) in input.chunks(40 * 2).enumerate() {
            let mut b = BytesMut::new();
            RtpHeader {
                marker: i == 0,
                payload_type: 97,
                seq: i as u16,
                timestamp: 40 * i as u32,
                ssrc: 5,
            }
            .write(&mut b);
            b.put_slice(frames);
            rx.handle_input(datagram(now, b.freeze()));
            now += Duration::from_millis(5);
            rx.handle_input(Input::Timeout(now));
            let due = rx.due_frames(now);
            let n = rx.playout(now, &mut chunk[..due * 2]);
            out.extend_from_slice(&chunk[..n * 2]);
        }
        for _ in 0..400 {
            now += Duration::from_millis(5);
            rx.handle_input(Input::Timeout(now));
            let due = rx.due_frames(now);
            let n = rx.playout(now, &mut chunk[..due * 2]);
            out.extend_from_slice(&chunk[..n * 2]);
        }
        (out, rx.stats())
    };
    let (out, st) = play(Some(97));
    assert!(out == input, "{} of {} bytes", out.len(), input.len());
    assert_eq!(st.datagrams_malformed, 0, "{st:?}");
    // without the hint, 97 is L24 and the 16-bit packets (80 bytes, not a whole number of
    // 3-byte frames) do not fit: every one is refused, and nothing is played
    let (out, st) = play(None);
    assert!(out.is_empty(), "{} bytes played", out.len());
    assert_eq!(st.datagrams_malformed as usize, input.len() / 80, "{st:?}");
}
