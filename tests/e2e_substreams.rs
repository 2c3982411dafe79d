//! Substreams over real loopback sockets, through the real `send` and `recv` processes.

mod common;

use std::path::Path;
use std::process::Command;

use common::{free_addr, spawn, wait_until_bound, CHILD_TIMEOUT};
use isostream_media::{read_wav_all, synthesize, write_wav_all, AudioSpec, Program, SampleFormat};

fn stream(inputs: &[&Path], send_extra: &[&str], recv_out: &[&str]) {
    let addr = free_addr();
    let listen = addr.to_string();
    let mut rargs = vec![
        "recv",
        "--listen",
        &listen,
        "--exit-on-end",
        "--low-water",
        "100",
        "--high-water",
        "400",
    ];
    rargs.extend_from_slice(recv_out);
    let recv = spawn("recv", &rargs);
    wait_until_bound(addr.port(), "isostream recv");
    let mut sargs: Vec<&str> = vec!["send"];
    sargs.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    sargs.extend_from_slice(&["--to", &listen, "--speed", "4"]);
    sargs.extend_from_slice(send_extra);
    spawn("send", &sargs).wait_ok(CHILD_TIMEOUT);
    recv.wait_ok(CHILD_TIMEOUT);
}

#[test]
fn a_stereo_wav_split_per_channel_is_reproduced_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let spec = AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    let input = synthesize(Program::Music, spec, 48_000 * 2, 21);
    let inp = dir.path().join("in.wav");
    write_wav_all(&inp, spec, &input).unwrap();
    let out = dir.path().join("out.wav");
    stream(
        &[&inp],
        &["--substreams", "per-channel"],
        &["--out", out.to_str().unwrap()],
    );
    let (got_spec, got) = read_wav_all(&out).unwrap();
    assert_eq!(got_spec, spec);
    assert!(got == input, "{} vs {} bytes", got.len(), input.len());
}

#[test]
fn two_inputs_become_two_substreams_written_one_file_each() {
    let dir = tempfile::tempdir().unwrap();
    let stereo = AudioSpec {
        rate: 44_100,
        channels: 2,
        format: SampleFormat::S16,
    };
    let mono = AudioSpec {
        channels: 1,
        ..stereo
    };
    let music = synthesize(Program::Music, stereo, 44_100 * 2, 1);
    let voice = synthesize(Program::Speech, mono, 44_100, 2); // shorter: padded with silence
    let (a, b) = (dir.path().join("music.wav"), dir.path().join("voice.wav"));
    write_wav_all(&a, stereo, &music).unwrap();
    write_wav_all(&b, mono, &voice).unwrap();
    let out_dir = dir.path().join("split");
    stream(&[&a, &b], &[], &["--out-dir", out_dir.to_str().unwrap()]);
    let (s1, got1) = read_wav_all(out_dir.join("substream-1.wav")).unwrap();
    let (s2, got2) = read_wav_all(out_dir.join("substream-2.wav")).unwrap();
    assert_eq!((s1, s2), (stereo, mono));
    assert!(got1 == music);
    assert_eq!(
        got2.len(),
        music.len() / 2,
        "the shorter input is padded to the session's length"
    );
    assert!(got2[..voice.len()] == voice[..]);
    assert!(got2[voice.len()..].iter().all(|&b| b == 0));
}

#[test]
fn inputs_of_different_rates_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = AudioSpec {
        rate: 48_000,
        channels: 1,
        format: SampleFormat::S16,
    };
    let b = AudioSpec { rate: 44_100, ..a };
    let (pa, pb) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    write_wav_all(&pa, a, &synthesize(Program::Speech, a, 4_800, 1)).unwrap();
    write_wav_all(&pb, b, &synthesize(Program::Speech, b, 4_410, 1)).unwrap();
    let out = Command::new(common::BIN)
        .args([
            "send",
            pa.to_str().unwrap(),
            pb.to_str().unwrap(),
            "--to",
            "127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("share rate"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
