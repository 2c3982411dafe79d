//! No recording is ever lost, with real `isostream` processes over loopback:
//!
//! - a stray stream after a finished session goes to the next file of the pattern
//!   (`out-2.wav`) and leaves the first recording bit-exact; a recording left by an earlier
//!   run is never overwritten, nor is an earlier session's `--out-dir` set; a session
//!   replaced by its description before it played (its first description was lost) gives
//!   its file back, so one stream is one file;
//! - a description the WAV sink cannot take (12 channels) is refused with a one-line
//!   warning, counted in the stats JSON, and the receiver then plays the next stream exactly;
//! - SIGTERM mid-stream finalizes the WAV like Ctrl-C: its header states every frame in
//!   the file, and the frames are a prefix of the input;
//! - a full disk (a 200 KiB tmpfs; these tests run as root, as CI does) or a full stdout
//!   (`/dev/full`) ends the receiver with a one-line error, and the WAV header matches the
//!   frames that reached the disk.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use isostream_media::{read_wav_all, write_wav_all, AudioSpec, Program, SampleFormat};
use isostream_transport::rtcp::{self, SenderReport, SessionDesc, SubstreamDesc};

/// How often `needle` occurs in what `p` wrote so far.
fn occurrences(p: &Proc, needle: &str) -> usize {
    p.output_so_far().matches(needle).count()
}

/// Waits until `needle` occurs `n` times in what `p` wrote; panics after `timeout`.
fn wait_for_count(p: &Proc, needle: &str, n: usize, timeout: Duration) {
    let t0 = Instant::now();
    while occurrences(p, needle) < n {
        assert!(
            t0.elapsed() < timeout,
            "{needle:?} did not appear {n} times within {timeout:?}; output:\n{}",
            p.output_so_far()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What the receiver prints when a session has ended and it waits for the next one.
const ENDED: &str = "the session ended";

/// A receiver on `addr` writing `out` that stays up after a session (no `--exit-on-end`).
fn lasting_recv(addr: SocketAddr, out: &str, stats: &Path, extra: &[&str]) -> Proc {
    let mut args: Vec<String> = vec![
        "recv".into(),
        "--listen".into(),
        addr.to_string(),
        "--out".into(),
        out.into(),
        "--stats-json".into(),
        stats.display().to_string(),
        "--low-water".into(),
        "100".into(),
        "--idle-timeout-ms".into(),
        "500".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    spawn_recv(addr, &args)
}

/// Streams `input` to `to` at four times real time and waits for the sender to finish.
fn send_file(input: &Path, to: SocketAddr, dir: &Path) {
    let stats = dir.join("send.json");
    spawn("send", &send_args(input, to, &stats, &["--speed", "4"])).wait_ok(CHILD_TIMEOUT);
}

/// The layout of a WAV file's header: (offset of the first sample, the data length the
/// header states, the file's length).
fn wav_layout(path: &Path) -> (u64, u64, u64) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WAVE",
        "{}: not a RIFF/WAVE file ({} bytes)",
        path.display(),
        b.len()
    );
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as u64;
    assert_eq!(
        u32_at(4),
        b.len() as u64 - 8,
        "{}: the RIFF length does not match the file",
        path.display()
    );
    let mut at = 12;
    while at + 8 <= b.len() {
        let len = u32_at(at + 4);
        if &b[at..at + 4] == b"data" {
            return ((at + 8) as u64, len, b.len() as u64);
        }
        at += 8 + len as usize + (len as usize & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// Asserts that the header of the WAV at `path` states exactly the whole frames in the file
/// (a finalized file, or one repaired after a write error) and returns its frames.
fn finalized_frames(path: &Path, spec: AudioSpec) -> Vec<u8> {
    let (offset, stated, len) = wav_layout(path);
    assert_eq!(
        stated,
        len - offset,
        "{}: the header states {stated} bytes of samples, the file holds {}",
        path.display(),
        len - offset
    );
    assert_eq!(
        stated % spec.frame_bytes() as u64,
        0,
        "{}: a partial frame",
        path.display()
    );
    let (got_spec, got) = read_wav_all(path).unwrap();
    assert_eq!(got_spec, spec, "{}", path.display());
    assert_eq!(got.len() as u64, stated);
    got
}

/// Asserts that `got` is a prefix of `want` of at least `min_frames` frames.
fn assert_prefix(want: &[u8], got: &[u8], spec: AudioSpec, min_frames: usize, what: &str) {
    let fb = spec.frame_bytes();
    assert!(
        got.len() >= min_frames * fb,
        "{what}: only {} frames, expected at least {min_frames}",
        got.len() / fb
    );
    assert!(got.len() <= want.len(), "{what}: longer than the input");
    assert_frames_exact(&want[..got.len()], got, fb, what);
}

/// `n` stock RTP/L16 packets (48 kHz stereo, 240 frames each) of SSRC `ssrc`; returns the
/// datagrams and their frames in order.
fn stray_stream(ssrc: u32, n: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut rng = SplitMix(u64::from(ssrc));
    let mut frames = Vec::new();
    let datagrams = (0..n)
        .map(|i| {
            let mut d = vec![0x80, 96];
            d.extend_from_slice(&(1000 + i as u16).to_be_bytes());
            d.extend_from_slice(&(77_000 + 240 * i as u32).to_be_bytes());
            d.extend_from_slice(&ssrc.to_be_bytes());
            let mut payload = vec![0u8; 240 * 4];
            rng.fill(&mut payload);
            frames.extend_from_slice(&payload);
            d.extend_from_slice(&payload);
            d
        })
        .collect();
    (datagrams, frames)
}

#[test]
fn a_stray_stream_after_a_session_goes_to_the_next_file_and_the_first_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(48_000, 2, SampleFormat::S16);
    let (input, want) = make_input(dir.path(), "in.wav", Program::Music, spec, 96_000 + 7, 31);
    let out = dir.path().join("out.wav");
    let stats = dir.path().join("recv.json");
    let addr = free_addr();
    let recv = lasting_recv(addr, out.to_str().unwrap(), &stats, &[]);
    send_file(&input, addr, dir.path());
    wait_for_count(&recv, ENDED, 1, CHILD_TIMEOUT);

    // 50 stray L16 packets from an unknown source, 5 ms apart: they start a (stock) session
    let (stray, stray_frames) = stray_stream(0x5742_4159, 50);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for d in &stray {
        s.send_to(d, addr).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = dir.path().join("out-2.wav");
    wait_for_count(&recv, &format!("-> {}", second.display()), 1, CHILD_TIMEOUT);
    wait_for_count(&recv, ENDED, 2, CHILD_TIMEOUT);
    recv.interrupt();
    let r = recv.wait_ok(CHILD_TIMEOUT);

    assert_wav_exact(&out, spec, &want, "the first session's recording");
    assert_eq!(finalized_frames(&out, spec).len(), want.len());
    // the stray stream was recorded too, in a file of its own, exactly
    let got = finalized_frames(&second, spec);
    assert_frames_exact(&stray_frames, &got, 4, "the stray stream's recording");
    assert!(
        !dir.path().join("out-3.wav").exists(),
        "a third file for two sessions"
    );
    let j = read_json(&stats);
    assert_eq!(count(&j, &["sessions_refused"]), 0, "{}", r.stderr);
}

#[test]
fn a_recording_of_an_earlier_run_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(48_000, 1, SampleFormat::S24);
    let (input, want) = make_input(dir.path(), "in.wav", Program::Speech, spec, 48_000, 32);
    // an earlier take at out.wav and out-2.wav; an empty out-3.wav (as `touch` leaves) holds
    // no recording and may be written
    let earlier = isostream_media::synthesize(Program::Music, spec, 4_800, 5);
    let out = dir.path().join("out.wav");
    write_wav_all(&out, spec, &earlier).unwrap();
    write_wav_all(dir.path().join("out-2.wav"), spec, &earlier).unwrap();
    std::fs::write(dir.path().join("out-3.wav"), b"").unwrap();
    let stats = dir.path().join("recv.json");
    let addr = free_addr();
    let recv = spawn_recv(
        addr,
        &recv_args(addr, out.to_str().unwrap(), &stats, &["--low-water", "100"]),
    );
    send_file(&input, addr, dir.path());
    let r = recv.wait_ok(CHILD_TIMEOUT);
    let third = dir.path().join("out-3.wav");
    assert!(
        r.stderr.contains(&format!("-> {}", third.display())),
        "the receiver does not say where it writes: {}",
        r.stderr
    );
    assert_wav_exact(&out, spec, &earlier, "the earlier take");
    assert_wav_exact(
        &dir.path().join("out-2.wav"),
        spec,
        &earlier,
        "the earlier second take",
    );
    assert_wav_exact(&third, spec, &want, "this run's recording");
}

#[test]
fn sessions_of_an_out_dir_go_to_numbered_subdirectories() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(48_000, 2, SampleFormat::F32);
    let (a, want_a) = make_input(dir.path(), "a.wav", Program::Music, spec, 24_000, 33);
    let (b, want_b) = make_input(dir.path(), "b.wav", Program::Speech, spec, 24_000 + 5, 34);
    let takes = dir.path().join("takes");
    let stats = dir.path().join("recv.json");
    let addr = free_addr();
    let args: Vec<String> = [
        "recv",
        "--listen",
        &addr.to_string(),
        "--out-dir",
        takes.to_str().unwrap(),
        "--stats-json",
        stats.to_str().unwrap(),
        "--low-water",
        "100",
        "--idle-timeout-ms",
        "500",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let recv = spawn_recv(addr, &args);
    for (i, input) in [&a, &b].into_iter().enumerate() {
        let stats = dir.path().join("send.json");
        let extra = ["--speed", "4", "--substreams", "per-channel"];
        spawn("send", &send_args(input, addr, &stats, &extra)).wait_ok(CHILD_TIMEOUT);
        wait_for_count(&recv, ENDED, i + 1, CHILD_TIMEOUT);
    }
    recv.interrupt();
    recv.wait_ok(CHILD_TIMEOUT);
    let mono = AudioSpec {
        channels: 1,
        ..spec
    };
    for (d, want) in [(takes.clone(), &want_a), (takes.join("session-2"), &want_b)] {
        for ch in 0..2 {
            let got = finalized_frames(&d.join(format!("substream-{}.wav", ch + 1)), mono);
            let want_ch: Vec<u8> = want
                .chunks_exact(8)
                .flat_map(|f| f[ch * 4..ch * 4 + 4].to_vec())
                .collect();
            assert_frames_exact(&want_ch, &got, 4, &format!("{} channel {ch}", d.display()));
        }
    }
}

#[test]
fn a_session_replaced_by_its_description_gives_its_file_back() {
    // the sender's first datagram (its first description) is lost: the first media packet
    // starts a provisional session (48 kHz stereo, the receiver's assumption), which the
    // next description replaces (44.1 kHz mono) before it plays anything
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(44_100, 1, SampleFormat::S16);
    let (input, want) = make_input(dir.path(), "in.wav", Program::Speech, spec, 44_100, 39);
    let out = dir.path().join("out.wav");
    let stats = dir.path().join("recv.json");
    let addr = free_addr();
    let recv = lasting_recv(addr, out.to_str().unwrap(), &stats, &[]);
    let relay = Relay::start(addr, 1, |p, _| p.dir == 0 && p.control_index == Some(0));
    send_file(&input, relay.front, dir.path());
    wait_for_count(&recv, ENDED, 1, CHILD_TIMEOUT);
    recv.interrupt();
    let r = recv.wait_ok(CHILD_TIMEOUT);
    let c = relay.stop();
    assert_eq!(
        c.control_dropped,
        [1, 0],
        "the first description was not dropped"
    );
    assert_eq!(
        r.stderr.matches(&format!("-> {}", out.display())).count(),
        2,
        "the provisional session and its replacement both write out.wav: {}",
        r.stderr
    );
    assert_wav_exact(
        &out,
        spec,
        &want,
        "the stream whose first description was lost",
    );
    assert!(
        !dir.path().join("out-2.wav").exists(),
        "a second file for one stream: {}",
        r.stderr
    );
}

/// A sender report and a description of `channels` channels in one substream of SSRC
/// `ssrc`, as a sender's first RTCP datagram.
fn forged_description(ssrc: u32, channels: u8) -> Vec<u8> {
    let desc = SessionDesc {
        codec: 0,
        rate: 48_000,
        format: SampleFormat::S16.code(),
        packet_frames: 240,
        interleave: 1,
        fec_k: 0,
        fec_m: 0,
        spread: 1,
        live: false,
        substreams: vec![SubstreamDesc {
            ssrc,
            ts_base: 1234,
            channels,
            rtx_ssrc: None,
        }],
    };
    let mut out = BytesMut::new();
    rtcp::write_sender_report(
        &mut out,
        &SenderReport {
            ssrc,
            ntp: 0,
            rtp_ts: 1234,
            packets: 0,
            octets: 0,
        },
    );
    rtcp::write_desc(&mut out, ssrc, &desc);
    out.to_vec()
}

#[test]
fn a_description_the_wav_cannot_take_is_refused_and_the_next_stream_plays_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(48_000, 2, SampleFormat::S16);
    let (input, want) = make_input(dir.path(), "in.wav", Program::Mixed, spec, 72_000 + 1, 35);
    let out = dir.path().join("out.wav");
    let stats = dir.path().join("recv.json");
    let addr = free_addr();
    let mut recv = lasting_recv(addr, out.to_str().unwrap(), &stats, &[]);
    // a WAV file holds at most 8 channels: a 12-channel description cannot be recorded
    let forged = forged_description(0xD35C_0012, 12);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..3 {
        s.send_to(&forged, addr).unwrap();
    }
    wait_for_count(&recv, "refused", 1, CHILD_TIMEOUT);
    // the refused session holds the receiver until its idle timeout (nothing more comes)
    wait_for_count(&recv, ENDED, 1, CHILD_TIMEOUT);
    assert!(
        recv.wait_for(Duration::ZERO).is_none(),
        "the receiver exited after the refused session: {}",
        recv.output_so_far()
    );
    send_file(&input, addr, dir.path());
    wait_for_count(&recv, ENDED, 2, CHILD_TIMEOUT);
    recv.interrupt();
    let r = recv.wait_ok(CHILD_TIMEOUT);

    let warnings: Vec<&str> = r.stderr.lines().filter(|l| l.contains("refused")).collect();
    assert!(
        warnings.len() >= 2 && warnings[0].contains("warning") && warnings[0].contains("12 ch"),
        "expected a one-line warning naming the 12 channels and a summary line: {}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    // the refused session took no file name: the stream that played is in out.wav
    assert_wav_exact(&out, spec, &want, "the stream after the refused session");
    let j = read_json(&stats);
    assert_eq!(count(&j, &["sessions_refused"]), 1, "{}", r.stderr);
    assert_eq!(
        count(&j, &["receiver", "frames_played"]),
        want.len() as u64 / 4,
        "only the stream's frames are played: {}",
        r.stderr
    );
}

#[test]
fn sigterm_mid_stream_finalizes_the_wav() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(48_000, 2, SampleFormat::S16);
    let frames = 48_000 * 8;
    let (input, want) = make_input(dir.path(), "in.wav", Program::Music, spec, frames, 36);
    let out = dir.path().join("out.wav");
    let stats = dir.path().join("recv.json");
    let addr = free_addr();
    let recv = lasting_recv(addr, out.to_str().unwrap(), &stats, &[]);
    // real time: the stream lasts eight seconds
    let send = spawn(
        "send",
        &send_args(&input, addr, &dir.path().join("send.json"), &[]),
    );
    // wait until more than two seconds of audio reached the file (its header, checkpointed
    // once a second, lags behind)
    let t0 = Instant::now();
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < 2 * 48_000 * 4 {
        assert!(
            t0.elapsed() < CHILD_TIMEOUT,
            "the recording does not grow: {}",
            recv.output_so_far()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    recv.signal(libc::SIGTERM);
    let r = recv.wait(Duration::from_secs(10));
    assert!(
        r.status.success(),
        "recv did not exit cleanly on SIGTERM ({}): {}",
        r.status,
        r.stderr
    );
    let _ = send.kill();
    let got = finalized_frames(&out, spec);
    assert_prefix(
        &want,
        &got,
        spec,
        2 * 48_000,
        "the recording cut by SIGTERM",
    );
    assert!(got.len() < want.len(), "the whole stream was recorded");
    // and the summary was written, as after Ctrl-C
    let j = read_json(&stats);
    assert_eq!(
        count(&j, &["receiver", "frames_played"]),
        got.len() as u64 / 4
    );
}

/// A tmpfs of `size` mounted at `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status();
        match st {
            Ok(s) if s.success() => Tmpfs(dir.to_path_buf()),
            other => panic!(
                "this test fills a small tmpfs and needs to mount one (as root, as CI runs): `mount -t tmpfs -o size={size} tmpfs {}` gave {other:?}",
                dir.display()
            ),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The lines of `stderr` that are errors of the program (`isostream: ...`, not its
/// `isostream recv: ...` reports).
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("isostream: "))
        .collect()
}

#[test]
fn a_full_disk_ends_the_receiver_with_one_line_and_a_true_header() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(48_000, 2, SampleFormat::S16);
    // 576 kB of audio for a 200 KiB disk
    let (input, want) = make_input(dir.path(), "in.wav", Program::Music, spec, 48_000 * 3, 37);
    let disk = Tmpfs::mount(&dir.path().join("disk"), "200k");
    let out = disk.0.join("out.wav");
    let stats = dir.path().join("recv.json");
    let addr = free_addr();
    let recv = spawn_recv(
        addr,
        &recv_args(addr, out.to_str().unwrap(), &stats, &["--low-water", "100"]),
    );
    let send = spawn(
        "send",
        &send_args(
            &input,
            addr,
            &dir.path().join("send.json"),
            &["--speed", "4"],
        ),
    );
    let r = recv.wait(CHILD_TIMEOUT);
    let _ = send.kill();
    assert!(
        !r.status.success(),
        "recv succeeded on a full disk: {}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let errors = error_lines(&r.stderr);
    assert!(
        errors.len() == 1
            && errors[0].contains("No space left on device")
            && errors[0].contains(out.to_str().unwrap()),
        "expected one error line naming the file and the full disk: {}",
        r.stderr
    );
    // the header says exactly what reached the disk, and that is the stream's beginning
    let got = finalized_frames(&out, spec);
    assert_prefix(
        &want,
        &got,
        spec,
        48_000 / 4,
        "the recording on a full disk",
    );
    assert!(got.len() < want.len(), "everything fit on the disk");
    drop(disk);
}

#[test]
fn a_full_stdout_ends_the_receiver_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(48_000, 2, SampleFormat::S16);
    let (input, _) = make_input(dir.path(), "in.wav", Program::Music, spec, 48_000, 38);
    let addr = free_addr();
    let mut c = Command::new(BIN);
    c.args(["recv", "--listen", &addr.to_string(), "--out", "-"])
        .args(["--exit-on-end", "--low-water", "100"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create("/dev/full").expect("/dev/full"))
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    wait_until_bound(addr.port(), "isostream recv");
    let send = spawn(
        "send",
        &send_args(
            &input,
            addr,
            &dir.path().join("send.json"),
            &["--speed", "4"],
        ),
    );
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            panic!("recv did not stop on a full stdout");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = send.kill();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "recv succeeded on /dev/full: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors = error_lines(&stderr);
    assert!(
        errors.len() == 1 && errors[0].contains("No space left on device"),
        "expected one error line about the full output: {stderr}"
    );
}
