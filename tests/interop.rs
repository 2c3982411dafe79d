//! Interoperation with stock RTP tools over real loopback sockets (docs/INTEROP.md):
//!
//! * GStreamer (`rtpL16pay ! udpsink`) sends a WAV to `isostream recv`;
//! * `isostream send --fec off --interleave 1` to a GStreamer receiver (`rtpL16depay`);
//! * ffmpeg records isostream's stream from the SDP written by `send --sdp`;
//! * ffmpeg sends RTP L16 (`-f rtp`) to `isostream recv`.
//!
//! Every test compares the audio sample for sample. They need `gst-launch-1.0` (with the
//! good and base plugins) and `ffmpeg`, which `.ci/run` installs: a missing tool FAILS the
//! test, it is never skipped.

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    assert_exact_aligned, free_port, read_output, require_ffmpeg, require_gstreamer, s, spawn_tool,
    wait_until_bound, wav_data_bytes, Proc, CHILD_TIMEOUT,
};
use isostream_media::{synthesize, write_wav_all, AudioSpec, Program, SampleFormat};

/// Length of the test audio.
const SECONDS: f64 = 1.5;

/// Starts `isostream ARGS`.
fn spawn_isostream(name: &str, args: &[String]) -> Proc {
    common::spawn(name, args)
}

/// Writes `SECONDS` of synthesized music in `spec` to `dir/name`; returns the wire frames.
fn make_input(dir: &Path, name: &str, spec: AudioSpec, seed: u64) -> (PathBuf, Vec<u8>) {
    let frames = (spec.rate as f64 * SECONDS) as usize;
    let audio = synthesize(Program::Music, spec, frames, seed);
    let path = dir.join(name);
    write_wav_all(&path, spec, &audio).expect("write the input WAV");
    (path, audio)
}

/// Asserts `got` equals `want` frame for frame.
fn assert_exact(want: &[u8], got: &[u8], fb: usize, what: &str, log: &str) {
    if want == got {
        return;
    }
    let first = want
        .chunks(fb)
        .zip(got.chunks(fb))
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()) / fb);
    panic!(
        "{what}: output differs from the input: {} vs {} frames, first difference at frame {first}\n{log}",
        got.len() / fb,
        want.len() / fb
    );
}

/// `isostream recv` for a stock sender. A stock sender's stream ends without BYE: the
/// receiver notices the end by the idle timeout and plays out what it holds (it never
/// invents audio past the last packet received). The idle timeout is long enough that a
/// sender starved of CPU for a while on a loaded machine is not taken for one that ended.
fn stock_recv(port: u16, out: &Path, spec: AudioSpec, stats: &Path) -> Proc {
    spawn_isostream(
        "isostream recv",
        &[
            s("recv"),
            s("--listen"),
            format!("127.0.0.1:{port}"),
            s("--out"),
            s(out.display()),
            s("--rate"),
            s(spec.rate),
            s("--channels"),
            s(spec.channels),
            s("--low-water"),
            s(400),
            s("--idle-timeout-ms"),
            s(2000),
            s("--exit-on-end"),
            s("--stats-json"),
            s(stats.display()),
        ],
    )
}

fn receiver_counter(stats: &Path, key: &str) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(stats).expect("recv stats")).expect("JSON");
    v["receiver"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no receiver.{key} in {v}"))
}

/// `isostream send IN --to 127.0.0.1:PORT --fec off --interleave 1 --sdp SDP`.
fn plain_send(input: &Path, port: u16, sdp: &Path) -> Proc {
    spawn_isostream(
        "isostream send",
        &[
            s("send"),
            s(input.display()),
            s("--to"),
            format!("127.0.0.1:{port}"),
            s("--fec"),
            s("off"),
            s("--interleave"),
            s(1),
            s("--sdp"),
            s(sdp.display()),
        ],
    )
}

#[test]
fn gstreamer_sends_a_wav_to_isostream_recv() {
    require_gstreamer();
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // mono at 32 kHz: recv --rate/--channels say what the stock sender sends
    let spec = AudioSpec {
        rate: 32_000,
        channels: 1,
        format: SampleFormat::S16,
    };
    let (input, want) = make_input(dir.path(), "in.wav", spec, 1);
    let (out, stats) = (dir.path().join("out.wav"), dir.path().join("recv.json"));
    let port = free_port();
    let recv = stock_recv(port, &out, spec, &stats);
    wait_until_bound(port, "isostream recv");
    let gst = spawn_tool(
        "gst-launch-1.0 (sender)",
        "gst-launch-1.0",
        &[
            s("-q"),
            s("filesrc"),
            format!("location={}", input.display()),
            s("!"),
            s("wavparse"),
            s("!"),
            s("audioconvert"),
            s("!"),
            s("rtpL16pay"),
            s("!"),
            s("udpsink"),
            s("host=127.0.0.1"),
            format!("port={port}"),
        ],
    );
    let g = gst.wait_ok(CHILD_TIMEOUT);
    let r = recv.wait_ok(CHILD_TIMEOUT);
    let log = format!("gst-launch-1.0:\n{}\nrecv:\n{}", g.output(), r.output());
    let got = read_output(&out, spec, "GStreamer -> recv", &log);
    assert_exact(&want, &got, spec.frame_bytes(), "GStreamer -> recv", &log);
    assert_eq!(receiver_counter(&stats, "datagrams_malformed"), 0, "{log}");
    assert_eq!(receiver_counter(&stats, "packets_lost"), 0, "{log}");
    eprintln!("GStreamer -> isostream recv: exact in {:?}", t0.elapsed());
}

#[test]
fn isostream_send_to_a_gstreamer_receiver() {
    require_gstreamer();
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let spec = AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    let (input, want) = make_input(dir.path(), "in.wav", spec, 2);
    let (out, sdp) = (dir.path().join("out.wav"), dir.path().join("stream.sdp"));
    let port = free_port();
    let caps = format!(
        "caps=application/x-rtp,media=audio,clock-rate={},encoding-name=L16,channels={},payload=96",
        spec.rate, spec.channels
    );
    let mut gst = spawn_tool(
        "gst-launch-1.0 (receiver)",
        "gst-launch-1.0",
        &[
            s("-e"),
            s("udpsrc"),
            s("address=127.0.0.1"),
            format!("port={port}"),
            caps,
            s("!"),
            s("rtpjitterbuffer"),
            s("!"),
            s("rtpL16depay"),
            s("!"),
            s("audioconvert"),
            s("!"),
            s("wavenc"),
            s("!"),
            s("filesink"),
            // unbuffered: the file shows what the pipeline has written so far
            s("buffer-mode=unbuffered"),
            format!("location={}", out.display()),
        ],
    );
    wait_until_bound(port, "gst-launch-1.0 udpsrc");
    // gst-launch-1.0 prints this once the pipeline is PLAYING
    gst.wait_for_output("New clock", CHILD_TIMEOUT);
    let send = plain_send(&input, port, &sdp).wait_ok(CHILD_TIMEOUT);
    // the jitter buffer holds 200 ms: wait until the WAV holds as much audio as was sent
    // (or a generous timeout, if frames went missing: the check below says which), then
    // end the pipeline with EOS (finalizes the WAV)
    let t = Instant::now();
    while wav_data_bytes(&out) < want.len() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    gst.interrupt();
    let g = gst.wait_ok(CHILD_TIMEOUT);
    let log = format!("send:\n{}\ngst-launch-1.0:\n{}", send.output(), g.output());
    let text = std::fs::read_to_string(&sdp).expect("send --sdp wrote the SDP");
    assert!(
        text.contains(&format!("m=audio {port} RTP/AVP 96\r\n"))
            && text.contains("a=rtpmap:96 L16/48000/2\r\n")
            && text.contains("a=rtcp-mux\r\n"),
        "{text}"
    );
    let got = read_output(&out, spec, "send -> GStreamer", &log);
    let offset = assert_exact_aligned(&want, &got, spec.frame_bytes(), "send -> GStreamer", &log);
    eprintln!(
        "isostream send -> GStreamer: exact, {} of {} frames, offset {offset}, in {:?}",
        got.len() / spec.frame_bytes(),
        want.len() / spec.frame_bytes(),
        t0.elapsed()
    );
}

#[test]
fn ffmpeg_records_the_stream_from_its_sdp() {
    require_ffmpeg();
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let spec = AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    let (input, want) = make_input(dir.path(), "in.wav", spec, 3);
    let port = free_port();
    // The SDP depends only on the options, not on the run: write it with a short run first
    // (to a socket that swallows the stream), so ffmpeg is listening before the real one.
    let sdp = dir.path().join("stream.sdp");
    {
        let sink = UdpSocket::bind(("127.0.0.1", port)).expect("bind the SDP run's sink");
        let short = dir.path().join("short.wav");
        write_wav_all(&short, spec, &want[..spec.frame_bytes() * 480]).unwrap();
        plain_send(&short, port, &sdp).wait_ok(CHILD_TIMEOUT);
        drop(sink);
    }
    let text = std::fs::read_to_string(&sdp).expect("send --sdp wrote the SDP");
    let out = dir.path().join("out.wav");
    let mut ffmpeg = spawn_tool(
        "ffmpeg (receiver)",
        "ffmpeg",
        &[
            s("-nostdin"),
            s("-hide_banner"),
            s("-loglevel"),
            s("warning"),
            s("-protocol_whitelist"),
            s("file,udp,rtp"),
            s("-i"),
            s(sdp.display()),
            s("-c:a"),
            s("pcm_s16le"),
            s("-bitexact"),
            s("-y"),
            s(out.display()),
        ],
    );
    wait_until_bound(port, "ffmpeg");
    let sdp2 = dir.path().join("stream2.sdp");
    let send = plain_send(&input, port, &sdp2).wait_ok(CHILD_TIMEOUT);
    assert_eq!(
        std::fs::read_to_string(&sdp2).unwrap(),
        text,
        "the SDP is the same for every run"
    );
    // ffmpeg ends at isostream's RTCP BYE; interrupt it if it did not
    if ffmpeg.wait_for(Duration::from_secs(5)).is_none() {
        ffmpeg.interrupt();
    }
    let f = ffmpeg.wait_ok(CHILD_TIMEOUT);
    let log = format!(
        "SDP:\n{text}\nsend:\n{}\nffmpeg:\n{}",
        send.output(),
        f.output()
    );
    let got = read_output(&out, spec, "send -> ffmpeg (SDP)", &log);
    let offset = assert_exact_aligned(
        &want,
        &got,
        spec.frame_bytes(),
        "send -> ffmpeg (SDP)",
        &log,
    );
    eprintln!(
        "isostream send -> ffmpeg via SDP: exact, {} of {} frames, offset {offset}, in {:?}",
        got.len() / spec.frame_bytes(),
        want.len() / spec.frame_bytes(),
        t0.elapsed()
    );
}

#[test]
fn ffmpeg_sends_rtp_l16_to_isostream_recv() {
    require_ffmpeg();
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let spec = AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    let (input, want) = make_input(dir.path(), "in.wav", spec, 4);
    let (out, stats) = (dir.path().join("out.wav"), dir.path().join("recv.json"));
    let port = free_port();
    let recv = stock_recv(port, &out, spec, &stats);
    wait_until_bound(port, "isostream recv");
    // -payload_type 96: ffmpeg's default dynamic type for audio is 97, which isostream reads
    // as L24; rtcpport: ffmpeg's SR and BYE go to the media port too (RFC 5761)
    let ffmpeg = spawn_tool(
        "ffmpeg (sender)",
        "ffmpeg",
        &[
            s("-nostdin"),
            s("-hide_banner"),
            s("-loglevel"),
            s("warning"),
            s("-re"),
            s("-i"),
            s(input.display()),
            s("-c:a"),
            s("pcm_s16be"),
            s("-payload_type"),
            s(96),
            s("-f"),
            s("rtp"),
            format!("rtp://127.0.0.1:{port}?rtcpport={port}"),
        ],
    );
    let f = ffmpeg.wait_ok(CHILD_TIMEOUT);
    let r = recv.wait_ok(CHILD_TIMEOUT);
    let log = format!("ffmpeg:\n{}\nrecv:\n{}", f.output(), r.output());
    let got = read_output(&out, spec, "ffmpeg -> recv", &log);
    assert_exact(&want, &got, spec.frame_bytes(), "ffmpeg -> recv", &log);
    assert_eq!(receiver_counter(&stats, "datagrams_malformed"), 0, "{log}");
    assert_eq!(receiver_counter(&stats, "packets_lost"), 0, "{log}");
    eprintln!("ffmpeg -> isostream recv: exact in {:?}", t0.elapsed());
}
