//! End to end over real loopback sockets: `isostream recv --out out.wav --exit-on-end` plus
//! `isostream send in.wav` reproduce the input sample for sample, in every sample format and
//! with every transport option, and `recv --out -` writes the same frames as raw PCM.

mod common;

use std::path::Path;
use std::time::Instant;

use common::*;
use isostream_media::{AudioSpec, Program, SampleFormat};

/// Streams `frames` frames of `program` in `spec` through `send` and `recv` (both with
/// `extra` options) and asserts the received WAV is identical to the input. Returns the
/// receiver's stats.
fn roundtrip(
    dir: &Path,
    program: Program,
    spec: AudioSpec,
    frames: usize,
    seed: u64,
    send_extra: &[&str],
    recv_extra: &[&str],
) -> (serde_json::Value, serde_json::Value) {
    let t0 = Instant::now();
    let (input, want) = make_input(dir, "in.wav", program, spec, frames, seed);
    let files = RunFiles::in_dir(dir);
    let (s, r) = send_to_recv(&input, &files, send_extra, recv_extra);
    let what = format!("{spec} {program:?} send {send_extra:?} recv {recv_extra:?}");
    assert_wav_exact(&files.out, spec, &want, &what);
    let rj = read_json(&files.rstats);
    let sj = read_json(&files.sstats);
    assert_delivered_every_frame(&rj, &sj, frames, &what, &r.stderr);
    assert_eq!(count(&rj, &["receiver", "datagrams_foreign"]), 0, "{what}");
    eprintln!(
        "{what}: sender {:?}, receiver {:?}, total {:?}",
        s.elapsed,
        r.elapsed,
        t0.elapsed()
    );
    (rj, sj)
}

const FAST: &[&str] = &["--speed", "4"];
const RECV: &[&str] = &["--low-water", "100"];

#[test]
fn s16_stereo_48k_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    // an odd length: the last packet is partial
    roundtrip(
        dir.path(),
        Program::Music,
        spec(48_000, 2, SampleFormat::S16),
        48_000 * 3 / 2 + 77,
        1,
        FAST,
        RECV,
    );
}

#[test]
fn s16_mono_44k1_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    roundtrip(
        dir.path(),
        Program::Speech,
        spec(44_100, 1, SampleFormat::S16),
        44_100 * 3 / 2 + 13,
        2,
        FAST,
        RECV,
    );
}

#[test]
fn s24_stereo_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    roundtrip(
        dir.path(),
        Program::Music,
        spec(48_000, 2, SampleFormat::S24),
        48_000 + 5,
        3,
        FAST,
        RECV,
    );
}

#[test]
fn f32_stereo_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    roundtrip(
        dir.path(),
        Program::Speech,
        spec(48_000, 2, SampleFormat::F32),
        48_000 + 311,
        4,
        FAST,
        RECV,
    );
}

#[test]
fn fec_and_interleaving_are_exact_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let (rj, sj) = roundtrip(
        dir.path(),
        Program::Music,
        spec(48_000, 2, SampleFormat::S16),
        48_000 * 3 / 2 + 101,
        5,
        &["--speed", "4", "--fec", "8,2", "--interleave", "4"],
        RECV,
    );
    // repair packets were really sent and received
    let repair = count(&sj, &["sender", "repair_packets_sent"]);
    assert!(repair > 0, "{sj}");
    assert!(
        count(&rj, &["receiver", "repair_packets_received"]) > 0,
        "{rj}"
    );
}

#[test]
fn plain_rtp_without_fec_or_interleaving_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (rj, sj) = roundtrip(
        dir.path(),
        Program::Speech,
        spec(48_000, 2, SampleFormat::S16),
        48_000 * 3 / 2 + 3,
        6,
        &["--speed", "4", "--fec", "off", "--interleave", "1"],
        RECV,
    );
    assert_eq!(count(&sj, &["sender", "repair_packets_sent"]), 0, "{sj}");
    assert_eq!(
        count(&rj, &["receiver", "repair_packets_received"]),
        0,
        "{rj}"
    );
}

#[test]
fn raw_pcm_on_stdout_is_the_same_frames_as_s16le() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(48_000, 2, SampleFormat::S16);
    let frames = 48_000 + 49;
    let (input, want) = make_input(dir.path(), "in.wav", Program::Music, spec, frames, 7);
    let rstats = dir.path().join("recv.json");
    let sstats = dir.path().join("send.json");
    let addr = free_addr();
    let recv = spawn_recv(
        addr,
        &recv_args(
            addr,
            "-",
            &rstats,
            &["--format", "s16le", "--low-water", "100"],
        ),
    );
    let send = spawn("send", &send_args(&input, addr, &sstats, FAST));
    send.wait_ok(CHILD_TIMEOUT);
    let r = recv.wait_ok(CHILD_TIMEOUT);
    // wire frames are big-endian: s16le is every sample byte-swapped
    let want_le: Vec<u8> = want.chunks_exact(2).flat_map(|s| [s[1], s[0]]).collect();
    assert_frames_exact(&want_le, &r.stdout, spec.frame_bytes(), "recv --out -");
    let rj = read_json(&rstats);
    assert_eq!(count(&rj, &["receiver", "frames_played"]), frames as u64);
}

#[test]
fn fec_rebuilds_datagrams_lost_between_real_sockets_bit_exact() {
    // a relay between send and recv drops every 13th media or repair datagram: with FEC
    // 8,2 (blocks of 10 consecutive datagrams) a block loses at most one, so every lost
    // packet is rebuilt, and the WAV is the input, bit for bit
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(48_000, 2, SampleFormat::S16);
    let frames = 48_000 * 2 + 61;
    let (input, want) = make_input(dir.path(), "in.wav", Program::Music, spec, frames, 8);
    let files = RunFiles::in_dir(dir.path());
    let addr = free_addr();
    let recv = spawn_recv(
        addr,
        &recv_args(addr, files.out.to_str().unwrap(), &files.rstats, RECV),
    );
    let media_index = std::sync::atomic::AtomicU64::new(0);
    let relay = Relay::start(addr, 1, move |p, _| {
        if p.dir != 0 || p.control_index.is_some() {
            return false;
        }
        let i = media_index.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        i % 13 == 12
    });
    let send = spawn(
        "send",
        &send_args(
            &input,
            relay.front,
            &files.sstats,
            // FEC alone rebuilds what the relay dropped (no retransmission)
            &["--speed", "4", "--fec", "8,2", "--retransmission", "off"],
        ),
    );
    send.wait_ok(CHILD_TIMEOUT);
    let r = recv.wait_ok(CHILD_TIMEOUT);
    let c = relay.stop();
    assert!(c.media_dropped[0] >= 30, "{c:?}");
    let rj = read_json(&files.rstats);
    let ctx = format!("relay {c:?}\nreceiver {rj}\nrecv stderr {}", r.stderr);
    let lost = count(&rj, &["receiver", "packets_lost"]);
    // the relay dropped source packets (the rest of its drops were repair packets) and the
    // receiver rebuilt every one
    let source_dropped = c
        .dropped_media
        .iter()
        .filter(|h| h.payload_type == 96)
        .count() as u64;
    assert!(source_dropped >= 25, "{ctx}");
    assert_eq!(lost, source_dropped, "{ctx}");
    assert_eq!(count(&rj, &["receiver", "packets_rebuilt"]), lost, "{ctx}");
    assert_eq!(
        count(&rj, &["receiver", "packets_unrecoverable"]),
        0,
        "{ctx}"
    );
    assert_wav_exact(&files.out, spec, &want, "FEC over real sockets");
}
