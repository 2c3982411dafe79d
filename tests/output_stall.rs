//! A stalled output never stops the socket: `recv --out -` whose stdout nobody reads for 2 s
//! keeps sending its reports on schedule, loses no datagram to a full socket buffer, and
//! plays everything once the pipe is read again.

mod common;

use std::io::Read;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_addr, make_input, spec, BIN};
use isostream_media::{Program, SampleFormat};

/// The kernel's drop counter of the UDP socket bound to `port` (the last column of
/// /proc/net/udp), if one is bound.
fn udp_drops(port: u16) -> Option<u64> {
    let hex = format!(":{port:04X}");
    let t = std::fs::read_to_string("/proc/net/udp").ok()?;
    t.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1)?.ends_with(&hex)).then(|| f.last()?.parse().ok())?
    })
}

#[test]
fn a_stalled_stdout_leaves_reports_on_schedule_and_loses_no_datagram() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(48_000, 2, SampleFormat::S16);
    let (wav, input) = make_input(dir.path(), "in.wav", Program::Music, s, 48_000 * 5, 3);
    let recv_addr = free_addr();
    let mut recv = Command::new(BIN)
        .args([
            "recv",
            "--listen",
            &recv_addr.to_string(),
            "--out",
            "-",
            "--format",
            "s16le",
            "--exit-on-end",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while udp_drops(recv_addr.port()).is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "recv never bound its port"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // a relay in front of the receiver notes when each of the receiver's datagrams passes
    let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let upstream = UdpSocket::bind("127.0.0.1:0").unwrap();
    upstream.connect(recv_addr).unwrap();
    relay
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    upstream
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let replies: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // one thread each way, so that neither direction waits for the other
    let sender_addr: Arc<Mutex<Option<std::net::SocketAddr>>> = Arc::default();
    let forward = {
        let (relay, upstream, sender_addr, done) = (
            relay.try_clone().unwrap(),
            upstream.try_clone().unwrap(),
            sender_addr.clone(),
            done.clone(),
        );
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((n, from)) = relay.recv_from(&mut buf) {
                    *sender_addr.lock().unwrap() = Some(from);
                    upstream.send(&buf[..n]).unwrap();
                }
            }
        })
    };
    let backward = {
        let (replies, done) = (replies.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = upstream.recv(&mut buf) {
                    replies.lock().unwrap().push(Instant::now());
                    if let Some(to) = *sender_addr.lock().unwrap() {
                        let _ = relay.send_to(&buf[..n], to);
                    }
                }
            }
        })
    };
    let send = Command::new(BIN)
        .args([
            "send",
            wav.to_str().unwrap(),
            "--to",
            &relay_addr.to_string(),
            "--fec",
            "off",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // nobody reads the receiver's stdout for 2 s, from 0.5 s into the stream
    let mut stdout = recv.stdout.take().unwrap();
    let mut played = vec![0u8; 0];
    let mut buf = vec![0u8; 1 << 16];
    while started.elapsed() < Duration::from_millis(500) {
        let n = stdout.read(&mut buf).unwrap();
        played.extend_from_slice(&buf[..n]);
    }
    let stall_from = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let stall_to = Instant::now();
    let drops = udp_drops(recv_addr.port()).expect("recv is still listening");
    stdout.read_to_end(&mut played).unwrap();
    let status = recv.wait().unwrap();
    let mut send = send;
    assert!(send.wait().unwrap().success(), "send failed");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    forward.join().unwrap();
    backward.join().unwrap();
    assert!(status.success(), "recv failed: {status}");

    // the reports went on while the output stalled: none came later than its 250 ms
    // interval plus 100 ms
    let r = replies.lock().unwrap();
    let during: Vec<Instant> = r
        .iter()
        .copied()
        .filter(|&t| t >= stall_from && t <= stall_to)
        .collect();
    let rel: Vec<u128> = r.iter().map(|t| (*t - started).as_millis()).collect();
    assert!(
        during.len() >= 5,
        "only {} reports during the stall; all at {rel:?} ms, stall {:?}..{:?}",
        during.len(),
        stall_from - started,
        stall_to - started
    );
    let mut gaps = vec![during[0] - stall_from, stall_to - *during.last().unwrap()];
    gaps.extend(during.windows(2).map(|w| w[1] - w[0]));
    let worst = gaps.iter().max().unwrap();
    assert!(
        *worst <= Duration::from_millis(350),
        "a gap of {worst:?} between the receiver's reports while its output stalled; all at {rel:?} ms, stall {:?}..{:?}", stall_from - started, stall_to - started
    );
    assert_eq!(drops, 0, "the kernel dropped datagrams for the receiver");
    // and nothing was lost: without FEC, any datagram dropped would show in the audio
    // wire frames are big-endian: s16le (--format) is every sample byte-swapped
    let want_le: Vec<u8> = input.chunks_exact(2).flat_map(|s| [s[1], s[0]]).collect();
    common::assert_frames_exact(&want_le, &played, s.frame_bytes(), "recv --out -");
}
