//! Opus (RFC 7587, `--codec opus`, feature `opus`): what comes out against what went in.
//!
//! Alignment: the receiver does not remove Opus's pre-skip, so output frame `n` is decoded
//! frame `n` of the packets sent, which a local libopus encode + decode with the same
//! settings reproduces sample for sample; against the input it lags by the encoder's
//! lookahead ([`PRE_SKIP`] frames). The output has the input's length (the sender's BYE
//! ends the stream at the last input frame).
#![cfg(feature = "opus")]

mod common;

use std::path::Path;
use std::process::Command;

use common::{
    builtin_profile, count, free_addr, free_port, read_json, read_output, recv_args, run_sim,
    send_args, send_to_recv, spawn, spawn_command, spawn_recv, stereo, wait_until_bound,
    wav_data_bytes, RunFiles, CHILD_TIMEOUT,
};
use isostream::sim::opus_local;
use isostream_media::{
    compare, damaged_windows, find_alignment, read_wav_all, synthesize, write_wav_all, AudioSpec,
    Program, SampleFormat,
};
use isostream_sender::{Codec, OpusParams, SenderConfig};

/// The encoder's lookahead at 48 kHz (`Application::Audio`), in frames.
const PRE_SKIP: usize = 312;

/// The sender's configuration for Opus with `p` (stored media, the CLI's defaults: no FEC).
fn opus_cfg(spec: AudioSpec, p: OpusParams) -> SenderConfig {
    let mut cfg = SenderConfig::new(spec);
    cfg.fec = None;
    cfg.packet_frames = p.frame_frames();
    cfg.codec = Codec::Opus(p);
    cfg
}

/// A local encode + decode of `input` (wire frames of `spec`) with the sender's settings:
/// what a clean link must play, frame for frame, cut to the input's length (the one the
/// bench judges network damage against, `isostream::sim::opus_local`).
fn local_round_trip(input: &[u8], spec: AudioSpec, p: &OpusParams) -> Vec<u8> {
    opus_local::round_trip(input, spec, p, &[spec.channels])
}

/// SNR of `output` against `input` once the delay is taken off, in dB: the best over lags
/// within 8 frames of the pre-skip (Opus's filters shift a tone's phase by about 3 frames).
fn snr_after_pre_skip(input: &[u8], output: &[u8], spec: AudioSpec) -> f64 {
    let fb = spec.frame_bytes();
    (PRE_SKIP - 8..=PRE_SKIP + 8)
        .map(|lag| {
            let n = input.len() - lag * fb;
            compare(&input[..n], &output[lag * fb..], spec).snr_db
        })
        .fold(f64::MIN, f64::max)
}

#[test]
fn a_clean_link_plays_what_a_local_opus_round_trip_gives_at_a_tenth_of_the_bytes() {
    let spec = stereo();
    let input = synthesize(Program::Music, spec, 48_000 * 4 + 123, 7);
    let p = OpusParams::new(2);
    let perfect = builtin_profile("perfect");
    let r = run_sim(opus_cfg(spec, p), &perfect, 1, &input, 60);
    assert!(r.completed);
    assert_eq!(
        r.output.len(),
        input.len(),
        "the output has the input's length"
    );
    let want = local_round_trip(&input, spec, &p);
    assert!(
        r.output == want,
        "the output is the local decode, sample for sample"
    );
    let snr = snr_after_pre_skip(&input, &r.output, spec);
    // the synthetic music's percussion is noise, which Opus codes perceptually rather than
    // waveform for waveform: a local round trip gives the same 12-13 dB (a tone gives 30)
    assert!(snr >= 10.0, "SNR against the input {snr:.1} dB");
    let wire = (r.sender.media_bytes + r.sender.repair_bytes + r.sender.rtcp_bytes) as f64;
    let ratio = wire / input.len() as f64;
    eprintln!("opus clean: SNR {snr:.1} dB, wire/raw {ratio:.4}");
    assert!(ratio <= 0.15, "bytes on the wire {ratio:.3} x raw PCM");
    let opus = r.receiver.substreams[0].opus.expect("an Opus substream");
    assert_eq!(
        (opus.packets_plc, opus.packets_fec, opus.packets_malformed),
        (0, 0, 0),
        "{opus:?}"
    );
}

#[test]
fn every_frame_duration_and_mono_round_trip_exactly() {
    let perfect = builtin_profile("perfect");
    for (half_ms, channels) in [(5, 2), (10, 1), (20, 2)] {
        let spec = AudioSpec {
            channels,
            ..stereo()
        };
        let input = synthesize(Program::Speech, spec, 48_000 + 17, 3);
        let mut p = OpusParams::new(channels);
        p.frame_half_ms = half_ms;
        let r = run_sim(opus_cfg(spec, p), &perfect, 2, &input, 60);
        assert!(r.completed);
        let want = local_round_trip(&input, spec, &p);
        assert_eq!(r.output.len(), want.len());
        let first = r.output.iter().zip(&want).position(|(a, b)| a != b);
        assert!(
            first.is_none(),
            "{half_ms} half-ms frames, {channels} channel(s): first difference at frame {:?}, {:?}",
            first.map(|i| i / spec.frame_bytes()),
            r.receiver.substreams[0]
        );
    }
}

#[test]
fn bursty_loss_with_retransmission_stays_complete_and_is_concealed_by_opus() {
    let spec = stereo();
    let input = synthesize(Program::Music, spec, 48_000 * 8, 11);
    let p = OpusParams::new(2);
    let profile = builtin_profile("bursty");
    let r = run_sim(opus_cfg(spec, p), &profile, 5, &input, 120);
    assert!(r.completed);
    assert_eq!(r.output.len(), input.len(), "complete");
    let clean = local_round_trip(&input, spec, &p);
    let opus = r.receiver.substreams[0].opus.expect("an Opus substream");
    let snr = snr_after_pre_skip(&input, &r.output, spec);
    let vs_clean = compare(&clean, &r.output, spec);
    eprintln!(
        "opus bursty: {opus:?}, SNR vs input {snr:.1} dB, vs clean decode {:.1} dB, {:.4} bit-exact",
        vs_clean.snr_db, vs_clean.bit_exact_fraction
    );
    // what retransmission did not bring back in time was concealed by Opus (PLC/FEC): no
    // dropout (digital silence where the input has signal), and the damage stays within a
    // few 20 ms windows around each concealed packet
    let vs_input = compare(&input, &r.output, spec);
    assert!(vs_input.gaps.is_empty(), "dropouts: {:?}", vs_input.gaps);
    assert!(
        opus.packets_plc + opus.packets_fec > 0,
        "the profile leaves losses for Opus to conceal: {opus:?}"
    );
    assert_eq!(opus.packets_malformed, 0);
    let damaged = damaged_windows(&clean, &r.output, spec, 20.0, 10.0);
    let total = (input.len() / spec.frame_bytes() / 960) as u64;
    eprintln!(
        "opus bursty: {damaged} of {total} 20 ms windows below 10 dB against the clean decode"
    );
    assert!(
        damaged <= 4 * (opus.packets_plc + opus.packets_fec + opus.packets_late) + 2,
        "{damaged} damaged windows"
    );
    assert!(snr >= 8.0, "SNR against the input {snr:.1} dB");
    // the same run in L16 (same packet duration, FEC and retransmission settings), for the
    // record: PCM needs about 11x the bytes
    let mut pcm = opus_cfg(spec, p);
    pcm.codec = Codec::Pcm;
    let l16 = run_sim(pcm, &profile, 5, &input, 120);
    assert_eq!(l16.output.len(), input.len());
    let l16_damaged = damaged_windows(&input, &l16.output, spec, 20.0, 10.0);
    eprintln!(
        "L16 bursty: {l16_damaged} of {total} windows below 10 dB against the input, SNR {:.1} dB, {} media bytes vs Opus {}",
        compare(&input, &l16.output, spec).snr_db,
        l16.sender.media_bytes,
        r.sender.media_bytes
    );
}

/// Writes `frames` of `program` at 48 kHz stereo to `path`; returns the wire frames.
fn write_input(path: &Path, program: Program, frames: usize, seed: u64) -> Vec<u8> {
    let audio = synthesize(program, stereo(), frames, seed);
    write_wav_all(path, stereo(), &audio).expect("write the input WAV");
    audio
}

/// Where the Debian package alsa-utils puts its channel-test recordings: real speech ("front
/// left", "rear right", ...), 48 kHz mono S16, about 1.4 s each.
const RECORDINGS: &str = "/usr/share/sounds/alsa";

/// A real recording as a 48 kHz stereo program: the left channel says "front left, rear
/// left, side left", the right one "front right, rear right, side right" (alsa-utils'
/// recordings end to end, the longer channel cut to the shorter), about 4 s. Fails with
/// what to install when the recordings are absent.
fn recording() -> Vec<u8> {
    let read = |names: [&str; 3]| -> Vec<u8> {
        let mut out = Vec::new();
        for name in names {
            let path = Path::new(RECORDINGS).join(name);
            let (spec, data) = read_wav_all(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}. The Opus quality tests need a real recording: install the Debian \
                     package alsa-utils (scripts/test does)",
                    path.display()
                )
            });
            assert_eq!(
                (spec.rate, spec.channels, spec.format),
                (48_000, 1, SampleFormat::S16),
                "{}: expected 48 kHz mono S16",
                path.display()
            );
            out.extend_from_slice(&data);
        }
        out
    };
    let left = read(["Front_Left.wav", "Rear_Left.wav", "Side_Left.wav"]);
    let right = read(["Front_Right.wav", "Rear_Right.wav", "Side_Right.wav"]);
    left.chunks_exact(2)
        .zip(right.chunks_exact(2))
        .flat_map(|(l, r)| [l[0], l[1], r[0], r[1]])
        .collect()
}

/// Writes [`recording`] to `path` as a 48 kHz stereo WAV; returns its wire frames.
fn write_recording(path: &Path) -> Vec<u8> {
    let audio = recording();
    write_wav_all(path, stereo(), &audio).expect("write the input WAV");
    audio
}

/// The figure for a real recording: SNR against the original at 128 kb/s.
const MIN_SNR_ON_A_RECORDING_DB: f64 = 20.0;

/// SNR of `got` against `want` after finding the delay (up to 1 s), in dB.
fn aligned_snr(want: &[u8], got: &[u8], what: &str) -> (i64, f64) {
    let spec = stereo();
    let fb = spec.frame_bytes();
    let lag = find_alignment(want, got, spec, 48_000)
        .unwrap_or_else(|| panic!("{what}: the output does not match the input at any delay"));
    let best = (lag - 8..=lag + 8)
        .map(|l| {
            let (w, g) = if l >= 0 {
                (want, &got[(l as usize * fb).min(got.len())..])
            } else {
                (&want[(-l) as usize * fb..], got)
            };
            compare(w, g, spec).snr_db
        })
        .fold(f64::MIN, f64::max);
    (lag, best)
}

#[test]
fn a_real_recording_over_a_clean_link_plays_the_local_round_trip_at_20_db_against_the_original() {
    let spec = stereo();
    let input = recording();
    assert!(input.len() >= 48_000 * 4 * 3, "at least 3 s of recording");
    let perfect = builtin_profile("perfect");
    let mut snr = Vec::new();
    for p in [OpusParams::new(2), OpusParams::new(2).with_inband_fec()] {
        assert_eq!(
            opus_local::lookahead_frames(&p, 2) as usize,
            PRE_SKIP,
            "libopus' lookahead (OPUS_GET_LOOKAHEAD)"
        );
        let r = run_sim(opus_cfg(spec, p), &perfect, 3, &input, 60);
        assert!(r.completed);
        if !p.inband_fec {
            let want = local_round_trip(&input, spec, &p);
            assert!(
                r.output == want,
                "{p:?}: the output is the local decode, sample for sample"
            );
        }
        let played = snr_after_pre_skip(&input, &r.output, spec);
        eprintln!("real recording, {p:?}: {played:.1} dB against the original");
        snr.push(played);
    }
    assert!(
        snr[0] >= MIN_SNR_ON_A_RECORDING_DB,
        "the default settings: SNR against the original {:.1} dB",
        snr[0]
    );
    // `--opus-inband-fec` plans for the loss the receiver reports (here none: the least
    // planned, 1 %), which is enough to make libopus code speech in its hybrid (SILK) mode,
    // not waveform-faithful: reported, not asserted (its output follows the reports, so no
    // static local encode reproduces it)
    eprintln!(
        "in-band FEC planned for the reported loss costs {:.1} dB against the original on speech",
        snr[0] - snr[1]
    );
}

#[test]
fn send_and_recv_over_loopback_play_the_local_round_trip_at_a_tenth_of_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    let audio = write_input(&input, Program::Music, 48_000 * 2 + 500, 21);
    let files = RunFiles::in_dir(dir.path());
    let (s, r) = send_to_recv(&input, &files, &["--codec", "opus", "--speed", "max"], &[]);
    let log = format!("send:\n{}\nrecv:\n{}", s.output(), r.output());
    let got = read_output(&files.out, stereo(), "send -> recv", &log);
    let want = local_round_trip(&audio, stereo(), &OpusParams::new(2));
    assert_eq!(got.len(), want.len(), "{log}");
    assert!(got == want, "the local decode, sample for sample\n{log}");
    let sj = read_json(&files.sstats);
    let wire = count(&sj, &["sender", "media_bytes"]) + count(&sj, &["sender", "rtcp_bytes"]);
    let ratio = wire as f64 / audio.len() as f64;
    eprintln!("send -> recv over loopback: wire/raw {ratio:.4}");
    assert!(ratio <= 0.15, "{ratio}");
    let rj = read_json(&files.rstats);
    assert_eq!(count(&rj, &["receiver", "datagrams_malformed"]), 0, "{log}");
}

#[test]
fn isostream_send_opus_to_a_gstreamer_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    // real speech (the synthetic programs' noise is coded perceptually, about 12 dB, even by
    // a local round trip)
    let audio = write_recording(&input);
    let (out, sdp, sstats) = (
        dir.path().join("out.wav"),
        dir.path().join("stream.sdp"),
        dir.path().join("send.json"),
    );
    let port = free_port();
    let mut c = Command::new("gst-launch-1.0");
    c.args([
        "-e".to_string(),
        "udpsrc".into(),
        "address=127.0.0.1".into(),
        format!("port={port}"),
        "caps=application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=111".into(),
        "!".into(),
        "rtpjitterbuffer".into(),
        "!".into(),
        "rtpopusdepay".into(),
        "!".into(),
        "opusdec".into(),
        "!".into(),
        "audioconvert".into(),
        "!".into(),
        "audio/x-raw,format=S16LE,channels=2,rate=48000".into(),
        "!".into(),
        "wavenc".into(),
        "!".into(),
        "filesink".into(),
        "buffer-mode=unbuffered".into(),
        format!("location={}", out.display()),
    ]);
    let mut gst = spawn_command("gst-launch-1.0", c);
    wait_until_bound(port, "gst-launch-1.0 udpsrc");
    gst.wait_for_output("New clock", CHILD_TIMEOUT);
    let to: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let send = spawn(
        "send",
        &send_args(
            &input,
            to,
            &sstats,
            &[
                "--codec",
                "opus",
                "--retransmission",
                "off",
                "--sdp",
                &sdp.display().to_string(),
            ],
        ),
    )
    .wait_ok(CHILD_TIMEOUT);
    let t = std::time::Instant::now();
    while wav_data_bytes(&out) < audio.len() * 9 / 10
        && t.elapsed() < std::time::Duration::from_secs(20)
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    gst.interrupt();
    let g = gst.wait_ok(CHILD_TIMEOUT);
    let log = format!("send:\n{}\ngst:\n{}", send.output(), g.output());
    let text = std::fs::read_to_string(&sdp).expect("send --sdp wrote the SDP");
    assert!(
        text.contains(&format!("m=audio {port} RTP/AVP 111\r\n"))
            && text.contains("a=rtpmap:111 opus/48000/2\r\n")
            && text.contains("a=fmtp:111 "),
        "{text}"
    );
    let got = read_output(&out, stereo(), "send -> GStreamer", &log);
    assert!(
        got.len() >= audio.len() * 9 / 10,
        "{} of {} bytes\n{log}",
        got.len(),
        audio.len()
    );
    let (lag, snr) = aligned_snr(&audio, &got, "send -> GStreamer");
    // what a local libopus encode and decode with the sender's settings gives
    let local = snr_after_pre_skip(
        &audio,
        &local_round_trip(&audio, stereo(), &OpusParams::new(2)),
        stereo(),
    );
    eprintln!("isostream send --codec opus -> GStreamer: lag {lag} frames, SNR {snr:.1} dB against the original recording (local round trip with the same settings {local:.1} dB)");
    // GStreamer decodes the stream as faithfully as a local decode does, and on the real
    // recording that is the 20 dB against the original (in-band FEC is opt-in)
    assert!(
        snr >= local - 1.0,
        "SNR {snr:.1} dB, local round trip {local:.1} dB\n{log}"
    );
    assert!(
        snr >= MIN_SNR_ON_A_RECORDING_DB,
        "SNR {snr:.1} dB against the original\n{log}"
    );
}

#[test]
fn ffmpeg_sends_opus_to_isostream_recv() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    let audio = write_recording(&input);
    let (out, stats) = (dir.path().join("out.wav"), dir.path().join("recv.json"));
    let addr = free_addr();
    let recv = spawn_recv(
        addr,
        &recv_args(
            addr,
            &out.display().to_string(),
            &stats,
            &["--low-water", "200", "--idle-timeout-ms", "2000"],
        ),
    );
    let mut c = Command::new("ffmpeg");
    c.args([
        "-nostdin".to_string(),
        "-hide_banner".into(),
        "-loglevel".into(),
        "warning".into(),
        "-re".into(),
        "-i".into(),
        input.display().to_string(),
        "-c:a".into(),
        "libopus".into(),
        "-b:a".into(),
        "128k".into(),
        "-payload_type".into(),
        "111".into(),
        "-f".into(),
        "rtp".into(),
        format!("rtp://{addr}"),
    ]);
    let f = spawn_command("ffmpeg", c).wait_ok(CHILD_TIMEOUT);
    let r = recv.wait_ok(CHILD_TIMEOUT);
    let log = format!("ffmpeg:\n{}\nrecv:\n{}", f.output(), r.output());
    let got = read_output(&out, stereo(), "ffmpeg -> recv", &log);
    assert!(
        got.len() >= audio.len() * 9 / 10,
        "{} of {} bytes\n{log}",
        got.len(),
        audio.len()
    );
    let rj = read_json(&stats);
    assert_eq!(count(&rj, &["receiver", "datagrams_malformed"]), 0, "{log}");
    let (lag, snr) = aligned_snr(&audio, &got, "ffmpeg -> recv");
    eprintln!("ffmpeg libopus -> isostream recv: lag {lag} frames, SNR {snr:.1} dB against the original recording");
    assert!(snr >= MIN_SNR_ON_A_RECORDING_DB, "SNR {snr:.1} dB\n{log}");
}
