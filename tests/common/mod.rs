//! Shared helpers of the end-to-end tests: free ports, input files, running `isostream send`
//! and `isostream recv` as child processes with a timeout, stats JSON and exact comparison.

#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use isostream_media::{read_wav_all, synthesize, write_wav_all, AudioSpec, Program, SampleFormat};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_isostream");

/// How long a child may run before the test kills it and fails.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(20);

/// A free UDP port on 127.0.0.1 (bound, read and released).
pub fn free_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral port");
    s.local_addr().expect("local address").port()
}

/// A loopback address with a free port.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// An audio spec.
pub fn spec(rate: u32, channels: u16, format: SampleFormat) -> AudioSpec {
    AudioSpec {
        rate,
        channels,
        format,
    }
}

/// Synthesizes `frames` frames of `program`, writes them to `dir/name` as WAV and returns the
/// path and the wire frames.
pub fn make_input(
    dir: &Path,
    name: &str,
    program: Program,
    spec: AudioSpec,
    frames: usize,
    seed: u64,
) -> (PathBuf, Vec<u8>) {
    let frames_bytes = synthesize(program, spec, frames, seed);
    assert_eq!(frames_bytes.len(), frames * spec.frame_bytes());
    let path = dir.join(name);
    write_wav_all(&path, spec, &frames_bytes).expect("write the input WAV");
    // the file itself must hold exactly what was synthesized
    let (s, back) = read_wav_all(&path).expect("read the input WAV back");
    assert_eq!(s, spec);
    assert!(back == frames_bytes, "the input WAV does not round-trip");
    (path, frames_bytes)
}

/// A running child process whose output is collected on threads (so it never blocks on a
/// full pipe). Killed on drop if still running, so a failing test leaves nothing behind.
pub struct Proc {
    name: String,
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

/// What a finished child left.
pub struct Done {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

fn collect(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// Starts `isostream ARGS...`.
pub fn spawn<S: AsRef<std::ffi::OsStr>>(name: &str, args: &[S]) -> Proc {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let stdout = collect(child.stdout.take().expect("piped stdout"));
    let stderr = collect(child.stderr.take().expect("piped stderr"));
    Proc {
        name: name.to_string(),
        child,
        stdout: Some(stdout),
        stderr: Some(stderr),
    }
}

impl Proc {
    /// Waits for the child to exit; kills it and panics after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Done {
        let t0 = Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break st;
            }
            if t0.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = self
                    .stderr
                    .take()
                    .map(|h| h.join().unwrap_or_default())
                    .unwrap_or_default();
                panic!(
                    "{} did not finish within {:?}; killed. stderr:\n{}",
                    self.name,
                    timeout,
                    String::from_utf8_lossy(&err)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = t0.elapsed();
        let stdout = self.stdout.take().expect("stdout").join().unwrap();
        let stderr = self.stderr.take().expect("stderr").join().unwrap();
        Done {
            status,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed,
        }
    }

    /// Waits and asserts a zero exit status.
    pub fn wait_ok(self, timeout: Duration) -> Done {
        let name = self.name.clone();
        let d = self.wait(timeout);
        assert!(
            d.status.success(),
            "{name} failed with {}; stderr:\n{}",
            d.status,
            d.stderr
        );
        d
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads a stats JSON file written by `--stats-json`.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

/// An unsigned counter at `path` (e.g. `["receiver", "flow", "pause_sent"]`).
pub fn count(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut x = v;
    for k in path {
        x = x
            .get(k)
            .unwrap_or_else(|| panic!("no {k:?} in {path:?} of {v}"));
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a counter: {x}"))
}

/// A number at `path`.
pub fn number(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut x = v;
    for k in path {
        x = x
            .get(k)
            .unwrap_or_else(|| panic!("no {k:?} in {path:?} of {v}"));
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {x}"))
}

/// Asserts that `got` holds exactly the frames of `want`, and says where they differ if not.
pub fn assert_frames_exact(want: &[u8], got: &[u8], frame_bytes: usize, what: &str) {
    if want == got {
        return;
    }
    let first = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    let differing = want
        .chunks(frame_bytes)
        .zip(got.chunks(frame_bytes))
        .filter(|(a, b)| a != b)
        .count();
    panic!(
        "{what}: output differs from the input: {} vs {} frames, first difference at frame {}, {} differing frames",
        got.len() / frame_bytes,
        want.len() / frame_bytes,
        first / frame_bytes,
        differing
    );
}

/// Asserts that the WAV file at `out` has `spec` and exactly the frames `want`.
pub fn assert_wav_exact(out: &Path, spec: AudioSpec, want: &[u8], what: &str) {
    let (got_spec, got) =
        read_wav_all(out).unwrap_or_else(|e| panic!("{what}: cannot read {}: {e}", out.display()));
    assert_eq!(got_spec, spec, "{what}: output spec");
    assert_frames_exact(want, &got, spec.frame_bytes(), what);
}

/// Arguments of a receiver on `addr` writing `out`, exiting at the end of the session.
pub fn recv_args(addr: SocketAddr, out: &str, stats: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "recv".into(),
        "--listen".into(),
        addr.to_string(),
        "--out".into(),
        out.into(),
        "--exit-on-end".into(),
        "--stats-json".into(),
        stats.display().to_string(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Arguments of a sender of `input` to `to`.
pub fn send_args(input: &Path, to: SocketAddr, stats: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "send".into(),
        input.display().to_string(),
        "--to".into(),
        to.to_string(),
        "--stats-json".into(),
        stats.display().to_string(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// How long to let a receiver bind before the sender starts.
pub const RECEIVER_HEAD_START: Duration = Duration::from_millis(200);

/// Deterministic pseudo-random numbers (SplitMix64) for relays and garbage generators.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    pub fn fill(&mut self, b: &mut [u8]) {
        for x in b {
            *x = self.next_u64() as u8;
        }
    }
}

/// Whether a datagram is RTCP by RFC 5761 demultiplexing (second byte in 192..=223).
pub fn is_rtcp(d: &[u8]) -> bool {
    d.len() >= 2 && (192..=223).contains(&d[1])
}
