//! SRTP/SRTCP end to end over real loopback sockets, judged by the audio: what `recv` writes
//! must be the input sample for sample, whatever a forger throws at either end, and nothing
//! may play under the wrong key.
//!
//! * `send --srtp-key` to `recv --srtp-key-file` (AES_CM_128_HMAC_SHA1_80, with FEC repair
//!   packets and retransmissions on), and AEAD_AES_128_GCM;
//! * a forger on the path sends PAUSE with the receiver's SSRC and huge request numbers to
//!   the sender every 50 ms, and forged media, BYE and replayed packets to the receiver;
//! * the wrong key (or none) at the sender: nothing plays, every datagram is counted;
//! * ffmpeg `srtp://` to `recv --srtp-key`, and `send --srtp-key` to ffmpeg reading the SDP
//!   `send --sdp` writes.
//!
//! The ffmpeg tests need `ffmpeg` (scripts/test installs it): a missing tool FAILS.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use isostream_media::Program;
use isostream_transport::rtcp;

/// A master key and salt (30 bytes, base64): the key of RFC 3711's test vectors as ffmpeg's
/// documentation spells it.
const KEY: &str = "WbTBosdVUZqEb6Htqhn+m3z7wUh4RJVR8nE15GbN";
/// Another key of the same suite.
const OTHER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd";
/// A 28-byte key for AEAD_AES_128_GCM.
const GCM_KEY: &str = "ERESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKw==";

/// `send` to `recv` on loopback with `send_extra` and `recv_extra`; asserts the output is
/// the input exactly and nothing was dropped as unauthenticated. Returns (receiver, sender)
/// stats.
fn keyed_roundtrip(
    dir: &Path,
    seed: u64,
    send_extra: &[&str],
    recv_extra: &[&str],
) -> (serde_json::Value, serde_json::Value) {
    let spec = stereo();
    let frames = 48_000 * 3 / 2 + 31;
    let (input, want) = make_input(dir, "in.wav", Program::Music, spec, frames, seed);
    let files = RunFiles::in_dir(dir);
    let (send, r) = send_to_recv(&input, &files, send_extra, recv_extra);
    let what = format!(
        "send {send_extra:?} recv {recv_extra:?}\nsend:\n{}\nrecv:\n{}",
        send.output(),
        r.output()
    );
    assert_wav_exact(&files.out, spec, &want, &what);
    let (rj, sj) = (read_json(&files.rstats), read_json(&files.sstats));
    for (j, side) in [(&rj, "receiver"), (&sj, "sender")] {
        assert_eq!(
            count(j, &[side, "datagrams_unauthenticated"]),
            0,
            "{side}: {what}"
        );
        assert_eq!(
            count(j, &[side, "datagrams_malformed"]),
            0,
            "{side}: {what}"
        );
    }
    assert!(r.stderr.contains("SRTP"), "{what}");
    (rj, sj)
}

#[test]
fn srtp_send_to_srtp_recv_is_sample_exact() {
    let dir = tempfile::tempdir().unwrap();
    // the receiver reads its key from a file (a line, as an editor leaves it)
    let key_file = dir.path().join("key.txt");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let kf = key_file.display().to_string();
    // repair packets (PT 110, their own sequence numbers on the media SSRC) and
    // retransmissions (PT 109) ride under SRTP too
    let (rj, sj) = keyed_roundtrip(
        dir.path(),
        1,
        &["--srtp-key", KEY, "--fec", "8,2", "--speed", "4"],
        &["--srtp-key-file", &kf, "--low-water", "100"],
    );
    assert!(count(&sj, &["sender", "repair_packets_sent"]) > 0);
    assert_eq!(
        count(&rj, &["receiver", "repair_packets_received"]),
        count(&sj, &["sender", "repair_packets_sent"])
    );
}

#[test]
fn aead_aes_128_gcm_send_to_recv_is_sample_exact() {
    let dir = tempfile::tempdir().unwrap();
    let gcm = ["--srtp-suite", "AEAD_AES_128_GCM", "--srtp-key", GCM_KEY];
    let mut send = gcm.to_vec();
    send.extend(["--speed", "4", "--interleave", "4"]);
    keyed_roundtrip(dir.path(), 2, &send, &gcm);
}

/// A forger on the path between sender and receiver: it forwards every datagram both ways
/// (so it is the address each side talks to, as a spoofing attacker would be) and adds its
/// own every 50 ms, with what it can read in the clear: the SSRCs and sequence numbers.
struct Forger {
    front: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Datagrams forged towards the sender [0] and the receiver [1].
    forged: Arc<[AtomicU64; 2]>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Default)]
struct Seen {
    sender: Option<SocketAddr>,
    receiver_ssrc: Option<u32>,
    media: Option<(u32, u16)>,
    genuine_media: Option<Vec<u8>>,
    genuine_rtcp_back: Option<Vec<u8>>,
}

impl Forger {
    fn start(receiver: SocketAddr) -> Forger {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        }
        let front_addr = front.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let forged = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut threads = Vec::new();
        {
            // sender -> receiver
            let (front, back, stop, seen) =
                (front.clone(), back.clone(), stop.clone(), seen.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = front.recv_from(&mut buf) else {
                        continue;
                    };
                    let d = &buf[..n];
                    {
                        let mut s = seen.lock().unwrap();
                        s.sender = Some(from);
                        if let Some(h) = rtp_info(d).filter(|h| h.payload_type == 96) {
                            s.media = Some((h.ssrc, h.seq));
                            if s.genuine_media.is_none() {
                                s.genuine_media = Some(d.to_vec());
                            }
                        }
                    }
                    let _ = back.send_to(d, receiver);
                }
            }));
        }
        {
            // receiver -> sender
            let (front, back, stop, seen) =
                (front.clone(), back.clone(), stop.clone(), seen.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, _)) = back.recv_from(&mut buf) else {
                        continue;
                    };
                    let d = &buf[..n];
                    let to = {
                        let mut s = seen.lock().unwrap();
                        if is_rtcp(d) && n >= 8 {
                            // SRTCP leaves the header and the sender SSRC in the clear
                            s.receiver_ssrc = Some(u32::from_be_bytes([d[4], d[5], d[6], d[7]]));
                            s.genuine_rtcp_back = Some(d.to_vec());
                        }
                        s.sender
                    };
                    if let Some(to) = to {
                        let _ = front.send_to(d, to);
                    }
                }
            }));
        }
        {
            // the forgeries
            let (front, back, stop, seen, forged) =
                (front, back, stop.clone(), seen, forged.clone());
            threads.push(std::thread::spawn(move || {
                let mut round = 0u32;
                let junk_trailer = |d: &mut BytesMut, i: u32| {
                    // what an SRTCP trailer looks like: E bit, an index, a made-up tag
                    d.extend_from_slice(&(0x8000_0000 | i).to_be_bytes());
                    d.extend_from_slice(&[0xa5; 10]);
                };
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    round += 1;
                    let s = seen.lock().unwrap();
                    let mut to_sender: Vec<Vec<u8>> = Vec::new();
                    let mut to_receiver: Vec<Vec<u8>> = Vec::new();
                    if let Some(rx) = s.receiver_ssrc {
                        let request = u32::MAX - 1000 + round;
                        let mut p = BytesMut::new();
                        rtcp::write_flow(&mut p, rtcp::APP_PAUSE, rx, request);
                        to_sender.push(p.to_vec());
                        junk_trailer(&mut p, round);
                        to_sender.push(p.to_vec());
                    }
                    if let Some(g) = &s.genuine_rtcp_back {
                        to_sender.push(g.clone()); // a replay
                    }
                    if let Some((ssrc, seq)) = s.media {
                        let mut m = vec![0x80, 96];
                        m.extend_from_slice(&seq.wrapping_add(3).to_be_bytes());
                        m.extend_from_slice(&0u32.to_be_bytes());
                        m.extend_from_slice(&ssrc.to_be_bytes());
                        m.extend_from_slice(&[0x55; 960 + 10]);
                        to_receiver.push(m);
                        let mut b = BytesMut::new();
                        rtcp::write_bye(&mut b, ssrc);
                        to_receiver.push(b.to_vec());
                        junk_trailer(&mut b, round);
                        to_receiver.push(b.to_vec());
                    }
                    if let Some(g) = &s.genuine_media {
                        to_receiver.push(g.clone()); // a replay
                    }
                    let (sender, _) = (s.sender, ());
                    drop(s);
                    if let Some(sender) = sender {
                        for d in &to_sender {
                            if front.send_to(d, sender).is_ok() {
                                forged[0].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    for d in &to_receiver {
                        if back.send_to(d, receiver).is_ok() {
                            forged[1].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        Forger {
            front: front_addr,
            stop,
            forged,
            threads,
        }
    }

    fn stop(mut self) -> [u64; 2] {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        [
            self.forged[0].load(Ordering::Relaxed),
            self.forged[1].load(Ordering::Relaxed),
        ]
    }
}

#[test]
fn forged_pause_media_bye_and_replays_are_dropped_and_the_output_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let spec = stereo();
    let frames = 48_000 * 2;
    let (input, want) = make_input(dir.path(), "in.wav", Program::Music, spec, frames, 3);
    let files = RunFiles::in_dir(dir.path());
    let addr = free_addr();
    let recv = spawn_recv(
        addr,
        &recv_args(
            addr,
            files.out.to_str().unwrap(),
            &files.rstats,
            &["--srtp-key", KEY, "--low-water", "100"],
        ),
    );
    let forger = Forger::start(addr);
    // real time, so the forger gets dozens of rounds in
    let send = spawn(
        "send",
        &send_args(
            &input,
            forger.front,
            &files.sstats,
            &["--srtp-key", KEY, "--speed", "1"],
        ),
    )
    .wait_ok(CHILD_TIMEOUT);
    let r = recv.wait_ok(CHILD_TIMEOUT);
    let forged = forger.stop();
    let what = format!("send:\n{}\nrecv:\n{}", send.output(), r.output());
    assert_wav_exact(&files.out, spec, &want, &what);
    let (rj, sj) = (read_json(&files.rstats), read_json(&files.sstats));
    let s_unauth = count(&sj, &["sender", "datagrams_unauthenticated"]);
    let r_unauth = count(&rj, &["receiver", "datagrams_unauthenticated"]);
    eprintln!("forged {forged:?}; unauthenticated: sender {s_unauth}, receiver {r_unauth}");
    // every forgery that arrived while the ends ran was counted, and nothing else was
    assert!(
        s_unauth >= 30 && s_unauth <= forged[0],
        "{forged:?} {s_unauth}\n{what}"
    );
    assert!(
        r_unauth >= 40 && r_unauth <= forged[1],
        "{forged:?} {r_unauth}\n{what}"
    );
    assert_eq!(count(&sj, &["sender", "pauses_applied"]), 0, "{what}");
    assert_eq!(count(&sj, &["sender", "datagrams_malformed"]), 0, "{what}");
    assert_eq!(
        count(&rj, &["receiver", "datagrams_malformed"]),
        0,
        "{what}"
    );
    assert_eq!(count(&rj, &["receiver", "datagrams_foreign"]), 0, "{what}");
    assert_eq!(count(&rj, &["receiver", "packets_duplicate"]), 0, "{what}");
}

#[test]
fn under_the_wrong_key_or_none_nothing_plays_and_every_datagram_is_counted() {
    for (case, send_key) in [("another key", Some(OTHER_KEY)), ("no key", None)] {
        let dir = tempfile::tempdir().unwrap();
        let spec = stereo();
        let (input, _) = make_input(dir.path(), "in.wav", Program::Music, spec, 24_000, 4);
        let files = RunFiles::in_dir(dir.path());
        let addr = free_addr();
        let recv = spawn_recv(
            addr,
            &recv_args(
                addr,
                files.out.to_str().unwrap(),
                &files.rstats,
                &["--srtp-key", KEY],
            ),
        );
        let mut extra = vec!["--speed", "4"];
        if let Some(k) = send_key {
            extra.extend(["--srtp-key", k]);
        }
        let send =
            spawn("send", &send_args(&input, addr, &files.sstats, &extra)).wait_ok(CHILD_TIMEOUT);
        wait_until_drained(&[addr.port()], CHILD_TIMEOUT);
        recv.interrupt();
        let r = recv.wait_ok(CHILD_TIMEOUT);
        let what = format!("{case}\nsend:\n{}\nrecv:\n{}", send.output(), r.output());
        assert!(!r.output().contains("panicked"), "{what}");
        let (rj, sj) = (read_json(&files.rstats), read_json(&files.sstats));
        let sent = count(&sj, &["sender", "packets_sent"])
            + count(&sj, &["sender", "repair_packets_sent"])
            + count(&sj, &["sender", "rtcp_packets_sent"])
            + count(&sj, &["sender", "retransmission", "retransmissions_sent"]);
        assert!(sent > 50, "{what}");
        assert_eq!(count(&rj, &["receiver", "frames_played"]), 0, "{what}");
        assert_eq!(count(&rj, &["receiver", "packets_received"]), 0, "{what}");
        assert_eq!(
            count(&rj, &["receiver", "datagrams_unauthenticated"]),
            sent,
            "{what}"
        );
        assert!(!files.out.exists(), "{case}: a recording was made\n{what}");
    }
}

#[test]
fn ffmpeg_sends_srtp_to_recv_sample_exact() {
    require_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let spec = stereo();
    let (input, want) = make_input(dir.path(), "in.wav", Program::Music, spec, 72_000, 5);
    let (out, rstats) = (dir.path().join("out.wav"), dir.path().join("recv.json"));
    let addr = free_addr();
    let port = addr.port();
    let recv = spawn_recv(
        addr,
        &[
            s("recv"),
            s("--listen"),
            s(addr),
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
            s(rstats.display()),
            s("--srtp-key"),
            s(KEY),
        ],
    );
    // payload type 96 (ffmpeg's default 97 is L24 to isostream); its SRTCP to the media port
    let mut c = Command::new("ffmpeg");
    c.args([
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
        s("-srtp_out_suite"),
        s("AES_CM_128_HMAC_SHA1_80"),
        s("-srtp_out_params"),
        s(KEY),
        format!("srtp://127.0.0.1:{port}?rtcpport={port}"),
    ]);
    let f = spawn_command("ffmpeg (sender)", c).wait_ok(CHILD_TIMEOUT);
    let r = recv.wait_ok(CHILD_TIMEOUT);
    let log = format!("ffmpeg:\n{}\nrecv:\n{}", f.output(), r.output());
    assert_wav_exact(&out, spec, &want, &log);
    let rj = read_json(&rstats);
    assert_eq!(
        count(&rj, &["receiver", "datagrams_unauthenticated"]),
        0,
        "{log}"
    );
    assert_eq!(count(&rj, &["receiver", "packets_lost"]), 0, "{log}");
    assert_eq!(count(&rj, &["receiver", "datagrams_malformed"]), 0, "{log}");
}

#[test]
fn send_srtp_to_ffmpeg_from_its_sdp_sample_exact() {
    require_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let spec = stereo();
    let (input, want) = make_input(dir.path(), "in.wav", Program::Music, spec, 72_000, 6);
    let port = free_port();
    let plain = |input: &Path, sdp: &Path| -> Vec<String> {
        vec![
            s("send"),
            s(input.display()),
            s("--to"),
            format!("127.0.0.1:{port}"),
            s("--fec"),
            s("off"),
            s("--retransmission"),
            s("off"),
            s("--srtp-key"),
            s(KEY),
            s("--sdp"),
            s(sdp.display()),
        ]
    };
    // the SDP depends only on the options: write it with a short run into a socket that
    // swallows it, so ffmpeg listens before the real run
    let sdp = dir.path().join("stream.sdp");
    {
        let sink = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        let short = dir.path().join("short.wav");
        isostream_media::write_wav_all(&short, spec, &want[..spec.frame_bytes() * 480]).unwrap();
        spawn("send", &plain(&short, &sdp)).wait_ok(CHILD_TIMEOUT);
        drop(sink);
    }
    let text = std::fs::read_to_string(&sdp).unwrap();
    assert!(
        text.contains(&format!("m=audio {port} RTP/SAVP 96\r\n"))
            && text.contains(&format!(
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n"
            )),
        "{text}"
    );
    let out = dir.path().join("out.wav");
    let mut c = Command::new("ffmpeg");
    c.args([
        s("-nostdin"),
        s("-hide_banner"),
        s("-loglevel"),
        s("warning"),
        s("-protocol_whitelist"),
        s("file,udp,rtp,srtp"),
        s("-i"),
        s(sdp.display()),
        s("-c:a"),
        s("pcm_s16le"),
        s("-bitexact"),
        s("-y"),
        s(out.display()),
    ]);
    let mut ffmpeg = spawn_command("ffmpeg (receiver)", c);
    wait_until_bound(port, "ffmpeg");
    let send = spawn("send", &plain(&input, &dir.path().join("2.sdp"))).wait_ok(CHILD_TIMEOUT);
    // ffmpeg ends at isostream's (SRTCP) BYE; interrupt it if it did not
    if ffmpeg.wait_for(Duration::from_secs(5)).is_none() {
        ffmpeg.interrupt();
    }
    let f = ffmpeg.wait_ok(CHILD_TIMEOUT);
    let log = format!(
        "SDP:\n{text}\nsend:\n{}\nffmpeg:\n{}",
        send.output(),
        f.output()
    );
    let got = read_output(&out, spec, "send -> ffmpeg (SRTP)", &log);
    let t = Instant::now();
    let offset = assert_exact_aligned(
        &want,
        &got,
        spec.frame_bytes(),
        "send -> ffmpeg (SRTP)",
        &log,
    );
    eprintln!(
        "send --srtp-key -> ffmpeg: exact, {} of {} frames, offset {offset} ({:?})",
        got.len() / spec.frame_bytes(),
        want.len() / spec.frame_bytes(),
        t.elapsed()
    );
}

/// The simulator behind `bench` runs the same pumps, so `bench --srtp` runs the stage: over
/// a lossy, duplicating link with FEC and retransmission, the audio is still the input
/// exactly, and the only datagrams dropped as unauthenticated are the link's duplicates
/// (replays, to SRTP).
#[test]
fn the_simulated_pumps_run_srtp_and_stay_exact_over_a_lossy_link() {
    use isostream::sim::{self, MemorySource, SimOptions};
    use isostream_drive::srtp::{SrtpKey, SrtpSuite};
    use isostream_netsim::Profile;
    use isostream_receiver::ReceiverConfig;
    use isostream_sender::SenderConfig;

    let spec = stereo();
    let input = isostream_media::synthesize(Program::Music, spec, 48_000 * 20, 7);
    let mut profile = Profile::builtin("wifi").unwrap();
    profile.forward.duplicate = 0.01;
    for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm] {
        let mut scfg = SenderConfig::new(spec);
        scfg.fec = Some("8,2".parse().unwrap());
        let opts = SimOptions {
            srtp: Some(SrtpKey::from_bytes(suite, &vec![0x42; suite.master_bytes()]).unwrap()),
            ..Default::default()
        };
        let mut src = MemorySource::new(&input, spec.frame_bytes());
        let r = sim::run_with(
            scfg,
            ReceiverConfig::default(),
            &profile,
            9,
            &mut src,
            isostream_transport::time::Duration::from_secs(120),
            &opts,
        )
        .unwrap();
        assert!(r.completed, "{suite:?}");
        assert!(
            r.forward.dropped > 0 && r.forward.duplicated > 0,
            "{:?}",
            r.forward
        );
        assert_frames_exact(&input, &r.output, spec.frame_bytes(), suite.name());
        assert_eq!(
            r.receiver.datagrams_unauthenticated, r.forward.duplicated,
            "{suite:?}: {:?}",
            r.forward
        );
        assert_eq!(
            r.sender.datagrams_unauthenticated, r.reverse.duplicated,
            "{suite:?}"
        );
        assert_eq!(r.receiver.datagrams_malformed, 0);
    }
}

/// The deepest reordering isostream's own sender makes (`--spread 16` over blocks of 210
/// packets: a packet leaves up to 15 × 210 = 3150 sequence numbers after a later one) stays
/// inside the SRTP replay window: nothing genuine is refused, and the receiver plays what it
/// plays without a key.
#[test]
fn deep_spreading_stays_inside_the_replay_window() {
    use isostream::sim::{self, MemorySource, SimOptions};
    use isostream_drive::srtp::{SrtpKey, SrtpSuite};
    use isostream_netsim::Profile;
    use isostream_receiver::ReceiverConfig;
    use isostream_sender::SenderConfig;

    let spec = stereo();
    let input = isostream_media::synthesize(Program::Music, spec, 48_000 * 24, 8);
    let run = |srtp: Option<SrtpKey>| {
        let mut scfg = SenderConfig::new(spec);
        scfg.fec = Some("200,10".parse().unwrap());
        scfg.spread = 16;
        let opts = SimOptions {
            srtp,
            ..Default::default()
        };
        let mut src = MemorySource::new(&input, spec.frame_bytes());
        sim::run_with(
            scfg,
            ReceiverConfig::default(),
            &Profile::builtin("perfect").unwrap(),
            3,
            &mut src,
            isostream_transport::time::Duration::from_secs(300),
            &opts,
        )
        .unwrap()
    };
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let keyed = run(Some(SrtpKey::from_bytes(suite, &[0x17; 30]).unwrap()));
    let plain = run(None);
    assert!(keyed.completed && plain.completed);
    assert_eq!(
        keyed.receiver.datagrams_unauthenticated, 0,
        "{:?}",
        keyed.receiver
    );
    assert_eq!(
        keyed.receiver.packets_received, plain.receiver.packets_received,
        "{:?}",
        keyed.receiver
    );
    assert_eq!(keyed.receiver.packets_lost, 0);
    assert!(keyed.sender.repair_packets_sent > 0);
    eprintln!(
        "plain: {} frames concealed, keyed: {}",
        plain.receiver.frames_concealed, keyed.receiver.frames_concealed
    );
    assert_frames_exact(
        &plain.output,
        &keyed.output,
        spec.frame_bytes(),
        "keyed vs plain",
    );
}
