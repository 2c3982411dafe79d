//! Edges of the protocol, each judged by the audio that comes out against the input, in
//! virtual time: sequence numbers and RTP timestamps that wrap mid-stream (with loss, FEC
//! and interleaving), a sender that restarts with a new SSRC, 44.1 kHz packets of 220
//! frames and 24-bit and float audio under loss, 8 channels and 8 substreams of float audio
//! in datagrams of about 7.7 KB, and an hour at 48 kHz stereo whose memory stays flat.

mod common;

use common::{
    differing_frames, drain, every_nth_lost, losses_needed, profile, rss_bytes, RECEIVER, SENDER,
};
use isostream::io::SignalInput;
use isostream::sim::{self, MemorySource, SimOptions, SimResult};
use isostream_media::{compare, synthesize, AudioSpec, Program, SampleFormat, SignalSource};
use isostream_netsim::{LinkConfig, Outages, Profile};
use isostream_receiver::{ReceiverConfig, ReceiverEvent, ReceiverSession};
use isostream_sender::{SenderConfig, SenderSession};
use isostream_transport::fec::FecParams;
use isostream_transport::sans_io::Input;
use isostream_transport::time::{Duration, Instant};

fn spec(rate: u32, channels: u16, format: SampleFormat) -> AudioSpec {
    AudioSpec {
        rate,
        channels,
        format,
    }
}

fn run(cfg: SenderConfig, input: &[u8], p: &Profile, opts: &SimOptions) -> SimResult {
    let mut src = MemorySource::new(input, cfg.spec.frame_bytes());
    let audio = input.len() / cfg.spec.frame_bytes() / cfg.spec.rate as usize;
    // the receiver gets the sender's memory budget (a wide stream raises both)
    let rcfg = ReceiverConfig {
        memory_budget_bytes: cfg.memory_budget_bytes,
        ..ReceiverConfig::default()
    };
    sim::run_with(
        cfg,
        rcfg,
        p,
        5,
        &mut src,
        Duration::from_secs(audio as u64 * 3 + 30),
        opts,
    )
    .unwrap()
}

fn lossy(loss: LinkConfig) -> Profile {
    profile(loss, LinkConfig::default())
}

/// 1 in 13 datagrams lost, evenly: FEC 8,2 with spread 2 (a block's 10 packets spread over
/// 20 datagrams) loses at most 2 per block and rebuilds everything.
fn repairable() -> LinkConfig {
    LinkConfig {
        loss: every_nth_lost(13),
        ..LinkConfig::default()
    }
}

/// Everything lost for `ms` from `at_ms` (send time).
fn burst(at_ms: f64, ms: f64) -> LinkConfig {
    LinkConfig {
        outages: Some(Outages {
            duration_ms: ms,
            rate_per_min: 0.0,
            at_ms: vec![at_ms],
        }),
        ..LinkConfig::default()
    }
}

/// Streams 4 s of 48 kHz stereo with FEC 8,2, interleave 4 and spread 2 (or 4) where
/// `tune` puts a wrap `wrap_ms` into the stream: once with repairable loss all through
/// (the output must be the input, bit for bit), once with a 30 ms burst right at the wrap
/// (only interpolated frames of unrecoverable packets may differ, all near the wrap, and
/// the timeline must not slip).
fn across_a_wrap(tune: impl Fn(&mut SenderConfig), wrap_ms: f64, what: &str) {
    let s = spec(48_000, 2, SampleFormat::S16);
    let input = synthesize(Program::Music, s, 48_000 * 4 + 77, 3);
    let cfg = |spread: u8| {
        let mut c = SenderConfig::new(s);
        c.fec = Some(FecParams::new(8, 2).unwrap());
        c.interleave = 4;
        c.spread = spread;
        tune(&mut c);
        c
    };
    let r = run(cfg(2), &input, &lossy(repairable()), &SimOptions::default());
    assert!(r.completed, "{what}");
    let st = &r.receiver.substreams[0];
    // a wrap taken for a jump would count 65,536 (or 2^32 / 960) packets more
    assert_eq!(st.packets_expected, r.sender.packets_sent, "{what}: {st:?}");
    assert!(
        st.packets_lost > 50 && st.packets_rebuilt == st.packets_lost,
        "{what}: {st:?}"
    );
    assert_eq!(r.output.len(), input.len(), "{what}");
    assert!(
        r.output == input,
        "{what}: repairable loss, output not exact"
    );

    let r = run(
        cfg(4),
        &input,
        &lossy(burst(wrap_ms - 20.0, 50.0)),
        &SimOptions::default(),
    );
    assert!(r.completed, "{what}");
    assert_eq!(r.output.len(), input.len(), "{what}: the timeline slipped");
    let unrec = r.receiver.packets_unrecoverable as usize;
    assert!(
        unrec > 0,
        "{what}: the burst must cost packets: {:?}",
        r.receiver
    );
    assert_eq!(r.receiver.frames_concealed, 0, "{what}: {:?}", r.receiver);
    let bad = differing_frames(&input, &r.output, s.frame_bytes());
    assert!(
        !bad.is_empty() && bad.len() <= unrec * 240,
        "{what}: {} frames differ, {unrec} packets unrecoverable",
        bad.len()
    );
    assert!(
        bad.iter()
            .all(|&f| (f as f64 / 48.0 - wrap_ms).abs() < 300.0),
        "{what}: frames far from the wrap at {wrap_ms} ms differ: {:?}",
        &bad[..bad.len().min(8)]
    );
    // interpolated holes only (runs of at most 3 frames), no concealed stretch
    let longest = bad
        .iter()
        .enumerate()
        .fold((0usize, 0usize), |(run, best), (i, &f)| {
            let run = if i > 0 && bad[i - 1] + 1 == f {
                run + 1
            } else {
                1
            };
            (run, best.max(run))
        })
        .1;
    assert!(longest <= 3, "{what}: {longest} neighbouring frames differ");
    let c = compare(&input, &r.output, s);
    assert!(c.snr_db > 30.0, "{what}: SNR {:.1} dB", c.snr_db);
}

#[test]
fn sequence_numbers_wrapping_mid_stream_with_loss_fec_and_interleaving() {
    // 150 packets of 5 ms before 65535: the wrap comes 750 ms in
    across_a_wrap(|c| c.first_seq = Some(65_535 - 149), 750.0, "seq wrap");
}

#[test]
fn rtp_timestamps_wrapping_inside_a_session() {
    // the 32-bit timestamp wraps one second in
    across_a_wrap(
        |c| c.first_timestamp = Some(u32::MAX - 48_000 + 1),
        1_000.0,
        "timestamp wrap",
    );
}

#[test]
fn both_wrap_at_once() {
    across_a_wrap(
        |c| {
            c.first_seq = Some(65_535 - 399);
            c.first_timestamp = Some(u32::MAX - 96_000 + 1);
        },
        2_000.0,
        "seq and timestamp wrap",
    );
}

/// Plays a sender that stops after `first` (with BYE if `bye`, else it just goes silent, as
/// a crashed process), then a new sender session (a new SSRC) `gap` later with `second`,
/// into one receiver; 1 ms steps, a perfect link. Returns the output and the receiver.
fn restart(
    first: &[u8],
    second: &[u8],
    s: AudioSpec,
    bye: bool,
    gap: Duration,
) -> (Vec<u8>, ReceiverSession, usize) {
    let fb = s.frame_bytes();
    let mut cfg = SenderConfig::new(s);
    cfg.seed = 1;
    let mut a = SenderSession::new(cfg.clone()).unwrap();
    cfg.seed = 2;
    let mut b = SenderSession::new(cfg).unwrap();
    assert_ne!(a.ssrcs(), b.ssrcs());
    let mut rx = ReceiverSession::new(ReceiverConfig::default()).unwrap();
    let (mut now, mut out) = (Instant::ZERO, Vec::new());
    let mut chunk = vec![0u8; 48_000 * fb];
    let (mut pa, mut pb) = (0usize, 0usize);
    let mut b_start: Option<Instant> = None;
    let mut events: Vec<ReceiverEvent> = Vec::new();
    let mut a_alive = true;
    let limit = Instant::ZERO + Duration::from_secs(60);
    while now < limit && !(b.is_finished() && rx.is_ended()) {
        let feed = |tx: &mut SenderSession, input: &[u8], pos: &mut usize, end: bool| {
            let n = tx.audio_wanted().min(input.len() / fb - *pos);
            tx.handle_input(Input::Audio {
                now,
                frames: &input[*pos * fb..(*pos + n) * fb],
            });
            *pos += n;
            if end && *pos * fb == input.len() {
                tx.handle_input(Input::EndOfInput(now));
            }
            tx.handle_input(Input::Timeout(now));
            drain(|| tx.poll_output(), &mut Vec::new())
        };
        let mut sent = Vec::new();
        if a_alive {
            sent.extend(feed(&mut a, first, &mut pa, bye));
            // without BYE the sender dies once its input is all sent
            let done = if bye {
                a.is_finished()
            } else {
                pa * fb == first.len() && a.stats().frames_sent as usize * fb == first.len()
            };
            if done {
                a_alive = false;
                b_start = Some(now + gap);
            }
        }
        if b_start.is_some_and(|t| now >= t) {
            sent.extend(feed(&mut b, second, &mut pb, true));
        }
        for data in sent {
            rx.handle_input(Input::Datagram {
                now,
                from: SENDER,
                data,
            });
        }
        rx.handle_input(Input::Timeout(now));
        let due = rx.due_frames(now);
        if due > 0 {
            let n = rx.playout(now, &mut chunk[..due.min(48_000) * fb]);
            out.extend_from_slice(&chunk[..n * fb]);
        }
        for data in drain(|| rx.poll_output(), &mut events) {
            let d = || Input::Datagram {
                now,
                from: RECEIVER,
                data: data.clone(),
            };
            if a_alive {
                a.handle_input(d());
            }
            if b_start.is_some_and(|t| now >= t) {
                b.handle_input(d());
            }
        }
        now += Duration::from_millis(1);
    }
    drain(|| rx.poll_output(), &mut events);
    if std::env::var_os("EDGES_VERBOSE").is_some() {
        eprintln!("events {events:?}, {} frames out", out.len() / fb);
    }
    let sessions = events
        .iter()
        .filter(|e| matches!(e, ReceiverEvent::SessionStarted { .. }))
        .count();
    (out, rx, sessions)
}

fn check_restart(bye: bool, gap_ms: u64) {
    let s = spec(48_000, 2, SampleFormat::S16);
    let fb = s.frame_bytes();
    let first = synthesize(Program::Music, s, 48_000 * 2, 1);
    let second = synthesize(Program::Speech, s, 48_000 * 3 + 5, 2);
    let what = format!("restart (BYE: {bye}, {gap_ms} ms later)");
    let (out, rx, sessions) = restart(&first, &second, s, bye, Duration::from_millis(gap_ms));
    assert_eq!(sessions, 2, "{what}: {:?}", rx.stats());
    // the first session whole, then the second whole from its first frame: nothing lost,
    // nothing invented between them
    assert!(
        out.len() >= first.len() && out[..first.len()] == first[..],
        "{what}: the first session is not played exactly ({} frames out)",
        out.len() / fb
    );
    let rest = &out[first.len()..];
    assert_eq!(
        rest.len(),
        second.len(),
        "{what}: after the first session, {} frames played; the second session has {}",
        rest.len() / fb,
        second.len() / fb
    );
    assert!(
        rest == &second[..],
        "{what}: the second session differs from its input, first at frame {:?}",
        differing_frames(&second, rest, fb).first()
    );
}

#[test]
fn a_sender_that_restarts_after_bye_with_a_new_ssrc_is_followed_from_its_start() {
    check_restart(true, 50);
}

#[test]
fn a_sender_that_dies_and_restarts_with_a_new_ssrc_is_followed_from_its_start() {
    check_restart(false, 50);
}

/// Loss of every kind at `s`: repairable loss must leave the output exact; bursty loss
/// (about 5 % in ~60 ms bursts, beyond FEC 8,2) is interpolated and concealed, and the
/// damage stays inside the interleave groups that held unrecoverable packets.
fn under_loss(s: AudioSpec, seconds: usize) {
    let fb = s.frame_bytes();
    let input = synthesize(Program::Music, s, s.rate as usize * seconds + 31, 8);
    let cfg = || {
        let mut c = SenderConfig::new(s);
        c.fec = Some(FecParams::new(8, 2).unwrap());
        c.interleave = 4;
        c.spread = 2;
        c
    };
    let pf = cfg().packet_frames as usize;
    assert_eq!(pf, s.rate as usize / 200);
    let r = run(cfg(), &input, &lossy(repairable()), &SimOptions::default());
    assert!(r.receiver.packets_rebuilt > 50, "{s}: {:?}", r.receiver);
    assert!(r.output == input, "{s}: repairable loss, output not exact");

    let r = run(
        cfg(),
        &input,
        &Profile::builtin("bursty").unwrap(),
        &SimOptions::default(),
    );
    assert!(r.completed, "{s}");
    assert_eq!(r.output.len(), input.len(), "{s}: the timeline slipped");
    let st = &r.receiver;
    assert!(
        st.packets_unrecoverable > 0 && st.frames_interpolated > 0 && st.frames_concealed > 0,
        "{s}: the loss must reach interpolation and concealment: {st:?}"
    );
    // damage by interleave group (4 packets of `pf` frames): a group is damaged only if
    // one of its packets was unrecoverable, or it follows a concealed one (fade back in)
    let group = 4 * pf;
    let mut groups: Vec<usize> = differing_frames(&input, &r.output, fb)
        .into_iter()
        .map(|f| f / group)
        .collect();
    groups.dedup();
    assert!(!groups.is_empty());
    assert!(
        losses_needed(&groups, 1) <= st.packets_unrecoverable as usize,
        "{s}: {} damaged groups need at least {} lost packets, {} were unrecoverable",
        groups.len(),
        losses_needed(&groups, 1),
        st.packets_unrecoverable
    );
}

#[test]
fn loss_at_44k1_in_packets_of_220_frames() {
    under_loss(spec(44_100, 2, SampleFormat::S16), 10);
}

#[test]
fn loss_in_24_bit_audio() {
    under_loss(spec(48_000, 2, SampleFormat::S24), 10);
}

#[test]
fn loss_in_float_audio() {
    under_loss(spec(48_000, 2, SampleFormat::F32), 10);
    under_loss(spec(44_100, 1, SampleFormat::F32), 10);
}

/// 8 float channels per substream in datagrams of 240 x 8 x 4 = 7,680 bytes of audio, in
/// `substreams` substreams, through repairable loss: the output is the input.
fn wide(substreams: usize) {
    let s = spec(48_000, 8 * substreams as u16, SampleFormat::F32);
    let input = synthesize(Program::Music, s, 48_000 * 2 + 7, 4);
    let mut cfg = SenderConfig::new(s);
    cfg.substream_channels = vec![8; substreams];
    cfg.spread = 2;
    // 64 channels of f32 need more than the default 64 MiB (the history, jitter buffers and
    // FEC windows of 8 substreams)
    cfg.memory_budget_bytes = 1 << 30;
    let r = run(cfg, &input, &lossy(repairable()), &SimOptions::default());
    assert!(r.completed);
    assert_eq!(r.receiver.substreams.len(), substreams);
    let per = ((r.sender.media_bytes + r.sender.repair_bytes)
        / (r.sender.packets_sent + r.sender.repair_packets_sent)) as usize;
    assert!((7_600..7_800).contains(&per), "{per} bytes per datagram");
    assert!(r.receiver.packets_rebuilt > 20, "{:?}", r.receiver);
    assert_eq!(r.receiver.packets_unrecoverable, 0, "{:?}", r.receiver);
    assert_eq!(r.output.len(), input.len());
    assert!(
        r.output == input,
        "{substreams} x 8 channels: output not exact"
    );
}

#[test]
fn eight_float_channels_in_one_substream() {
    wide(1);
}

#[test]
fn eight_substreams_of_eight_float_channels() {
    wide(8);
}

#[test]
fn an_hour_at_48k_stereo_keeps_memory_flat_and_the_audio_exact() {
    let s = spec(48_000, 2, SampleFormat::S16);
    let fb = s.frame_bytes();
    let frames: u64 = 48_000 * 3_600;
    let mut src = SignalInput {
        source: SignalSource::new(Program::Mixed, s, 21),
        remaining: frames,
    };
    let mut cfg = SenderConfig::new(s);
    // the timestamp wraps a minute in; sequence numbers wrap 10 times in the hour
    cfg.first_timestamp = Some(u32::MAX - 48_000 * 60 + 1);
    // 0.1 % random loss: FEC rebuilds nearly all of it
    let p = lossy(LinkConfig {
        loss: isostream_netsim::LossModel::Bernoulli { p: 0.001 },
        ..LinkConfig::default()
    });
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(64);
    // the checker: the same program generated again, compared packet by packet as the
    // audio is played, and the process's resident memory once a minute of audio
    let checker = std::thread::spawn(move || {
        let mut reference = SignalSource::new(Program::Mixed, s, 21);
        let mut want = Vec::new();
        let (mut played, mut bad, mut rss) = (0u64, Vec::new(), Vec::new());
        for chunk in rx {
            want.resize(chunk.len(), 0);
            reference.read_frames(&mut want);
            for (i, (a, b)) in want
                .chunks(240 * fb)
                .zip(chunk.chunks(240 * fb))
                .enumerate()
            {
                // packet slots are 240 frames from the start of the stream
                let slot = (played as usize + i * 240) / 240;
                if a != b && bad.last() != Some(&slot) {
                    bad.push(slot);
                }
            }
            let before = played / (48_000 * 60);
            played += (chunk.len() / fb) as u64;
            if played / (48_000 * 60) != before {
                rss.push(rss_bytes());
            }
        }
        (played, bad, rss)
    });
    let opts = SimOptions {
        discard_output: true,
        output_to: Some(tx),
        ..SimOptions::default()
    };
    let r = sim::run_with(
        cfg,
        ReceiverConfig::default(),
        &p,
        9,
        &mut src,
        Duration::from_secs(3_700),
        &opts,
    )
    .unwrap();
    drop(opts);
    let (played, bad, rss) = checker.join().unwrap();
    assert!(r.completed);
    assert!(r.output.is_empty());
    // the whole hour came out, in place: damage only where packets were unrecoverable
    assert_eq!(played, frames);
    assert_eq!(r.receiver.frames_played, frames);
    let st = &r.receiver.substreams[0];
    assert_eq!(st.packets_expected, r.sender.packets_sent, "{st:?}");
    assert_eq!(r.sender.packets_sent, frames / 240);
    assert!(r.receiver.packets_rebuilt > 500, "{:?}", r.receiver);
    assert!(
        losses_needed(&bad, 1) <= r.receiver.packets_unrecoverable as usize,
        "{} damaged packets (need {} lost) but {} unrecoverable",
        bad.len(),
        losses_needed(&bad, 1),
        r.receiver.packets_unrecoverable
    );
    // the counters add up after 720,000 packets (no 16- or 32-bit overflow)
    assert_eq!(st.packets_received + st.packets_lost, st.packets_expected);
    let view = r.sender.receiver_report.expect("receiver reports");
    assert!(
        view.packets_lost >= 0 && view.packets_lost as u64 <= r.receiver.packets_lost,
        "{view:?}"
    );
    // memory: flat from minute 5 to the end (an hour of output would be 691 MB, a
    // per-packet leak of 100 bytes 72 MB)
    assert_eq!(rss.len(), 60);
    let base = rss[4];
    let max = rss[5..].iter().copied().max().unwrap();
    eprintln!(
        "an hour: RSS {:.1} MB at 5 min, at most {:.1} MB after; {} damaged packets, {} unrecoverable",
        base as f64 / 1e6,
        max as f64 / 1e6,
        bad.len(),
        r.receiver.packets_unrecoverable
    );
    assert!(
        max < base + (16 << 20),
        "resident memory grew from {base} to {max} bytes"
    );
}
