//! Shared helpers of the end-to-end tests: free ports, input files, running `isostream send`
//! and `isostream recv` as child processes with a timeout, stats JSON and exact comparison;
//! one loopback send/recv run and its delivery checks (`loopback`), in-process simulated runs
//! (`simrun`); the stock tools the interop tests need (`tools`).

#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use isostream_media::{read_wav_all, synthesize, write_wav_all, AudioSpec, Program, SampleFormat};

mod loopback;
mod simrun;
mod tools;

// re-exported so that a test names them `common::X` like the rest; each binary uses some
#[allow(unused_imports)]
pub use loopback::{assert_delivered_every_frame, send_to_recv, spawn_impair, RunFiles};
#[allow(unused_imports)]
pub use simrun::{builtin_profile, run_sim, stereo};
#[allow(unused_imports)]
pub use tools::{require_ffmpeg, require_gstreamer, require_tool, s, spawn_tool};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_isostream");

/// How long a child may run before the test kills it and fails.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `isostream bench ARGS...` to its end (bench ends by itself: no timeout) and asserts
/// it exits 0, showing its stderr if not; returns its output (the report on stdout).
pub fn bench_ok(args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .output()
        .expect("run isostream bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

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
/// full pipe, and the test can watch it while the child runs). Killed on drop if still
/// running, so a failing test leaves nothing behind.
pub struct Proc {
    name: String,
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

/// What a finished child left.
pub struct Done {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Done {
    /// stdout and stderr as text, for diagnostics.
    pub fn output(&self) -> String {
        format!("{}{}", String::from_utf8_lossy(&self.stdout), self.stderr)
    }
}

fn collect(mut r: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// Starts `isostream ARGS...`.
pub fn spawn<S: AsRef<std::ffi::OsStr>>(name: &str, args: &[S]) -> Proc {
    let mut c = Command::new(BIN);
    c.args(args);
    spawn_command(name, c)
}

/// Starts any command (stdin from /dev/null, stdout and stderr collected).
pub fn spawn_command(name: &str, mut c: Command) -> Proc {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let readers = vec![
        collect(child.stdout.take().expect("piped stdout"), stdout.clone()),
        collect(child.stderr.take().expect("piped stderr"), stderr.clone()),
    ];
    Proc {
        name: name.to_string(),
        child,
        stdout,
        stderr,
        readers,
    }
}

impl Proc {
    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What the child wrote so far (stdout, then stderr), as text.
    pub fn output_so_far(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.stdout.lock().unwrap()),
            String::from_utf8_lossy(&self.stderr.lock().unwrap())
        )
    }

    /// Waits until the child's stdout or stderr contains `needle` (a readiness message);
    /// panics if it exits first or after `timeout`.
    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) {
        let t0 = Instant::now();
        loop {
            if self.output_so_far().contains(needle) {
                return;
            }
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                // the readers may still hold the last bytes
                std::thread::sleep(Duration::from_millis(50));
                if self.output_so_far().contains(needle) {
                    return;
                }
                panic!(
                    "{} exited ({st}) before it printed {needle:?}; output:\n{}",
                    self.name,
                    self.output_so_far()
                );
            }
            assert!(
                t0.elapsed() < timeout,
                "{} did not print {needle:?} within {timeout:?}; output:\n{}",
                self.name,
                self.output_so_far()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal (e.g. `libc::SIGINT`, what Ctrl-C sends) to the child.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the pid of a child this process started and has not reaped
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {sig}) failed: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Sends SIGINT, as Ctrl-C would.
    pub fn interrupt(&self) {
        self.signal(libc::SIGINT);
    }

    /// Waits up to `timeout` for the child to exit; `None` if it is still running.
    pub fn wait_for(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if t0.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the child (SIGKILL) and collects what it left.
    pub fn kill(mut self) -> Done {
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for a killed child");
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Done {
            status,
            stdout: std::mem::take(&mut *self.stdout.lock().unwrap()),
            stderr: String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned(),
            elapsed: Duration::ZERO,
        }
    }

    /// Waits for the child to exit; kills it and panics after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Done {
        let t0 = Instant::now();
        let status = self.wait_for(timeout);
        let elapsed = t0.elapsed();
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let stdout = std::mem::take(&mut *self.stdout.lock().unwrap());
        let stderr = String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned();
        let Some(status) = status else {
            panic!(
                "{} did not finish within {timeout:?}; killed. stdout:\n{}\nstderr:\n{stderr}",
                self.name,
                String::from_utf8_lossy(&stdout)
            );
        };
        Done {
            status,
            stdout,
            stderr,
            elapsed,
        }
    }

    /// Waits and asserts a zero exit status.
    pub fn wait_ok(self, timeout: Duration) -> Done {
        let name = self.name.clone();
        let d = self.wait(timeout);
        assert!(
            d.status.success(),
            "{name} failed with {}; stdout:\n{}\nstderr:\n{}",
            d.status,
            String::from_utf8_lossy(&d.stdout),
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

/// Whether some socket is bound to UDP `port` (read from /proc/net/udp and udp6, so that
/// probing never takes the port away from the program that is about to bind it).
pub fn udp_port_bound(port: u16) -> bool {
    let hex = format!(":{port:04X}");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| a.ends_with(&hex))
            })
        })
    })
}

/// How long a program may take to bind its port before the test fails (generous: a loaded
/// machine may take seconds to start a process).
pub const BIND_TIMEOUT: Duration = Duration::from_secs(20);

/// Waits until a program has bound UDP `port` (it listens: datagrams sent from now on are
/// queued by the kernel even before it reads them). Panics after [`BIND_TIMEOUT`].
pub fn wait_until_bound(port: u16, what: &str) {
    assert!(
        Path::new("/proc/net/udp").exists(),
        "the tests read /proc/net/udp (Linux) to see when a program listens"
    );
    let t0 = Instant::now();
    while !udp_port_bound(port) {
        assert!(
            t0.elapsed() < BIND_TIMEOUT,
            "{what} did not bind UDP port {port} within {BIND_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts `isostream recv ARGS...` listening on `addr` and waits until it has bound its port.
pub fn spawn_recv(addr: SocketAddr, args: &[String]) -> Proc {
    let p = spawn("recv", args);
    wait_until_bound(addr.port(), "isostream recv");
    p
}

/// Reads a stats JSON file written by `--stats-json`.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

/// An unsigned counter at `path` (e.g. `["receiver", "flow", "pauses_sent"]`).
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

/// Reads the WAV at `path` that a run wrote and asserts it has `spec`; returns its frames.
/// `what` names the run; `log` (its programs' output) is shown on failure.
pub fn read_output(path: &Path, spec: AudioSpec, what: &str, log: &str) -> Vec<u8> {
    let (got_spec, got) = read_wav_all(path)
        .unwrap_or_else(|e| panic!("{what}: cannot read {}: {e}\n{log}", path.display()));
    assert_eq!(got_spec, spec, "{what}: output format\n{log}");
    got
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

/// A datagram passing through a [`Relay`], for its drop decision.
pub struct Passing<'a> {
    /// 0: sender to receiver, 1: receiver to sender.
    pub dir: usize,
    /// Index of this datagram among all datagrams in its direction.
    pub index: u64,
    /// Index among the control (RTCP) datagrams in its direction, if it is one.
    pub control_index: Option<u64>,
    /// The datagram.
    pub bytes: &'a [u8],
}

/// Counters of a [`Relay`] per direction (0: towards the receiver, 1: back).
#[derive(Clone, Debug, Default)]
pub struct RelayCounts {
    /// Control datagrams dropped.
    pub control_dropped: [u64; 2],
    /// Control datagrams forwarded.
    pub control_forwarded: [u64; 2],
    /// Media and repair datagrams dropped.
    pub media_dropped: [u64; 2],
    /// Media and repair datagrams forwarded.
    pub media_forwarded: [u64; 2],
    /// Media datagrams dropped (RTP header: sequence number, timestamp, SSRC, payload type).
    pub dropped_media: Vec<RtpInfo>,
}

/// The fields of an RTP header a test needs to place a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpInfo {
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// The RTP header fields of a media or repair datagram (not RTCP).
pub fn rtp_info(d: &[u8]) -> Option<RtpInfo> {
    if d.len() < 12 || d[0] >> 6 != 2 || is_rtcp(d) {
        return None;
    }
    Some(RtpInfo {
        payload_type: d[1] & 0x7f,
        seq: u16::from_be_bytes([d[2], d[3]]),
        timestamp: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
        ssrc: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
    })
}

/// A UDP relay between a sender and a receiver on loopback that drops the datagrams a
/// deterministic decision picks, and forwards all others unchanged and in order. The sender
/// sends to `front`; the relay forwards from another socket to the receiver, and replies
/// arriving there go back to the sender's last address through `front`.
pub struct Relay {
    pub front: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    counts: Arc<Mutex<RelayCounts>>,
}

type Decide = dyn Fn(&Passing, &mut SplitMix) -> bool + Send + Sync;

impl Relay {
    /// Starts a relay to `receiver`; `drop(datagram, rng)` says whether to drop a datagram
    /// (`rng` is seeded from `seed`, one stream per direction).
    pub fn start(
        receiver: SocketAddr,
        seed: u64,
        decide: impl Fn(&Passing, &mut SplitMix) -> bool + Send + Sync + 'static,
    ) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            // a relay starved of CPU must not lose datagrams in its own socket buffers
            let fd = std::os::fd::AsRawFd::as_raw_fd(s);
            let size: libc::c_int = 8 << 20;
            // SAFETY: setsockopt on a socket this function owns, with a c_int option value
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    &size as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        let front_addr = front.local_addr().unwrap();
        let front = Arc::new(front);
        let back = Arc::new(back);
        let sender: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Mutex::new(RelayCounts::default()));
        let decide: Arc<Decide> = Arc::new(decide);
        let mut threads = Vec::new();
        for dir in 0..2 {
            let (from, to) = if dir == 0 {
                (front.clone(), back.clone())
            } else {
                (back.clone(), front.clone())
            };
            let sender = sender.clone();
            let stop = stop.clone();
            let counts = counts.clone();
            let decide = decide.clone();
            threads.push(std::thread::spawn(move || {
                let mut rng = SplitMix(seed ^ (dir as u64 + 1).wrapping_mul(0xA5A5_5A5A_1234));
                let mut buf = vec![0u8; 65_536];
                let (mut index, mut ctl_index) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let (n, peer) = match from.recv_from(&mut buf) {
                        Ok(x) => x,
                        Err(_) => continue, // timeout (or ICMP noise): check `stop`
                    };
                    let d = &buf[..n];
                    let dest = if dir == 0 {
                        *sender.lock().unwrap() = Some(peer);
                        receiver
                    } else {
                        if peer != receiver {
                            continue;
                        }
                        match *sender.lock().unwrap() {
                            Some(s) => s,
                            None => continue,
                        }
                    };
                    let control = is_rtcp(d);
                    let p = Passing {
                        dir,
                        index,
                        control_index: control.then_some(ctl_index),
                        bytes: d,
                    };
                    index += 1;
                    if control {
                        ctl_index += 1;
                    }
                    let dropped = decide(&p, &mut rng);
                    {
                        let mut c = counts.lock().unwrap();
                        match (control, dropped) {
                            (true, true) => c.control_dropped[dir] += 1,
                            (true, false) => c.control_forwarded[dir] += 1,
                            (false, true) => {
                                c.media_dropped[dir] += 1;
                                if let Some(h) = rtp_info(d) {
                                    c.dropped_media.push(h);
                                }
                            }
                            (false, false) => c.media_forwarded[dir] += 1,
                        }
                    }
                    if !dropped {
                        let _ = to.send_to(d, dest);
                    }
                }
            }));
        }
        Relay {
            front: front_addr,
            stop,
            threads,
            counts,
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> RelayCounts {
        self.counts.lock().unwrap().clone()
    }

    /// Waits until the receiver has answered the sender (a datagram came back through the
    /// relay): it has taken the stream as a session. Panics after `timeout`.
    pub fn wait_for_answer(&self, timeout: Duration) {
        let t0 = Instant::now();
        loop {
            let c = self.counts();
            if c.control_forwarded[1] + c.media_forwarded[1] > 0 {
                return;
            }
            assert!(
                t0.elapsed() < timeout,
                "the receiver did not answer within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the relay; returns its counters.
    pub fn stop(mut self) -> RelayCounts {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        self.counts()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The receive queue (bytes the kernel holds for the program, not read yet) of the UDP
/// socket bound to `port`, from /proc/net/udp and udp6; `None` if no socket is bound to it.
pub fn udp_rx_queue(port: u16) -> Option<u64> {
    let hex = format!(":{port:04X}");
    let mut found = None;
    for f in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(t) = std::fs::read_to_string(f) else {
            continue;
        };
        for l in t.lines().skip(1) {
            let cols: Vec<&str> = l.split_whitespace().collect();
            if cols.len() > 4 && cols[1].ends_with(&hex) {
                // tx_queue:rx_queue, in hex
                let rx = cols[4]
                    .split(':')
                    .nth(1)
                    .and_then(|x| u64::from_str_radix(x, 16).ok())
                    .unwrap_or(0);
                found = Some(found.unwrap_or(0) + rx);
            }
        }
    }
    found
}

/// Waits until the programs bound to `ports` have read everything the kernel queued for
/// them (twice in a row, 20 ms apart), e.g. after a sender finished: everything it sent has
/// been taken in. Panics after `timeout`.
pub fn wait_until_drained(ports: &[u16], timeout: Duration) {
    let t0 = Instant::now();
    let mut clear = 0;
    while clear < 2 {
        let empty = ports
            .iter()
            .all(|&p| udp_rx_queue(p).is_some_and(|q| q == 0));
        clear = if empty { clear + 1 } else { 0 };
        assert!(
            t0.elapsed() < timeout,
            "UDP ports {ports:?} still hold unread datagrams after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Counts, per packet of `packet_frames` frames (the last one may be partial), whether
/// `got` differs from `want` there: the slots where audio was not delivered exactly.
/// `got` may be shorter than `want` (a prefix); frames beyond `want` count as differing.
pub fn differing_packets(
    want: &[u8],
    got: &[u8],
    frame_bytes: usize,
    packet_frames: usize,
) -> Vec<usize> {
    let pb = packet_frames * frame_bytes;
    got.chunks(pb)
        .enumerate()
        .filter(|(i, g)| {
            let at = i * pb;
            want.get(at..at + g.len()) != Some(*g)
        })
        .map(|(i, _)| i)
        .collect()
}

/// A profile with these two paths.
pub fn profile(
    forward: isostream_netsim::LinkConfig,
    reverse: isostream_netsim::LinkConfig,
) -> isostream_netsim::Profile {
    isostream_netsim::Profile {
        name: "test".into(),
        description: String::new(),
        source: String::new(),
        forward,
        reverse,
    }
}

/// Deterministic loss: of every `period` datagrams on the path, the last is lost (1 in
/// `period`, evenly spread: with `period` > K + M, an FEC block of K + M packets in a row
/// loses at most one packet, and at most two when a report falls inside it).
pub fn every_nth_lost(period: usize) -> isostream_netsim::LossModel {
    isostream_netsim::LossModel::Trace {
        pattern: format!("{}1", "0".repeat(period - 1)),
        file: None,
        per: Default::default(),
    }
}

/// Exact moments of the residual loss of an MDS code with `k` source and `m` repair packets
/// per block under independent loss `p`: a block that loses more than `m` of its `k + m`
/// packets loses all its lost source packets; one that loses at most `m` loses none.
/// Returns (expected residual loss per source packet, standard deviation of the number of
/// unrecoverable source packets of one block).
pub fn mds_residual(k: u32, m: u32, p: f64) -> (f64, f64) {
    let binom = |n: u32, j: u32| -> f64 {
        (1..=j).fold(1.0, |c, i| c * (n - j + i) as f64 / i as f64)
            * p.powi(j as i32)
            * (1.0 - p).powi((n - j) as i32)
    };
    let (mut e1, mut e2) = (0.0, 0.0);
    for s in 0..=k {
        for r in 0..=m {
            if s + r > m {
                let pr = binom(k, s) * binom(m, r);
                e1 += pr * s as f64;
                e2 += pr * (s * s) as f64;
            }
        }
    }
    (e1 / k as f64, (e2 - e1 * e1).sqrt())
}

/// Runs of consecutive indices in a sorted list: how many separate damaged places.
pub fn runs(sorted: &[usize]) -> usize {
    sorted
        .iter()
        .enumerate()
        .filter(|&(i, &x)| i == 0 || sorted[i - 1] + 1 != x)
        .count()
}

/// The frame indices where `got` differs from `want` (frames beyond the shorter one are not
/// compared: check lengths separately).
pub fn differing_frames(want: &[u8], got: &[u8], frame_bytes: usize) -> Vec<usize> {
    want.chunks_exact(frame_bytes)
        .zip(got.chunks_exact(frame_bytes))
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i)
        .collect()
}

/// Resident memory of this process, in bytes (from /proc/self/statm).
pub fn rss_bytes() -> u64 {
    let t = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = t
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .expect("statm: resident pages");
    // SAFETY: sysconf has no preconditions
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

/// The fewest lost packets that can explain damaged packet slots `bad` (sorted), if each lost
/// packet damages its own slot and at most `spill` slots after it (the concealer's fade back
/// in): a run of L damaged slots needs at least ceil(L / (1 + spill)) lost packets.
pub fn losses_needed(bad: &[usize], spill: usize) -> usize {
    let mut total = 0;
    let mut i = 0;
    while i < bad.len() {
        let mut j = i + 1;
        while j < bad.len() && bad[j] == bad[j - 1] + 1 {
            j += 1;
        }
        total += (j - i).div_ceil(1 + spill);
        i = j;
    }
    total
}

/// Where a test's in-process sender and receiver sessions are, as each other sees it.
pub const SENDER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    5004,
);
/// The receiver's address (the sender configuration's default `receiver_addr`).
pub const RECEIVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5004);

/// Drains a session's outputs (see `isostream_transport::sans_io`): returns its datagrams,
/// appends its events to `events`, and gives the deadline it asked for.
pub fn drain_until<E>(
    mut poll: impl FnMut() -> isostream_transport::sans_io::Output<E>,
    events: &mut Vec<E>,
) -> (
    Vec<bytes::Bytes>,
    Option<isostream_transport::time::Instant>,
) {
    use isostream_transport::sans_io::Output;
    let mut sent = Vec::new();
    loop {
        match poll() {
            Output::Transmit(t) => sent.push(t.data),
            Output::Event(e) => events.push(e),
            Output::Timeout(at) => return (sent, at),
        }
    }
}

/// [`drain_until`] without the deadline.
pub fn drain<E>(
    poll: impl FnMut() -> isostream_transport::sans_io::Output<E>,
    events: &mut Vec<E>,
) -> Vec<bytes::Bytes> {
    drain_until(poll, events).0
}

/// A datagram from `from` at `now`, as a session input.
pub fn datagram(
    now: isostream_transport::time::Instant,
    from: SocketAddr,
    data: bytes::Bytes,
) -> isostream_transport::sans_io::Input<'static> {
    isostream_transport::sans_io::Input::Datagram { now, from, data }
}

/// For a receiver that may drop or add leading (or trailing) frames: finds where the input
/// lies in `got` from a window of its middle, then asserts the overlapping frames are exactly
/// equal and cover nearly all (99 %) of the input. Returns the offset (output frame of input
/// frame 0).
pub fn assert_exact_aligned(want: &[u8], got: &[u8], fb: usize, what: &str, log: &str) -> i64 {
    const WINDOW: usize = 256;
    let (nw, ng) = ((want.len() / fb) as i64, (got.len() / fb) as i64);
    assert!(
        ng >= WINDOW as i64 * 2,
        "{what}: only {ng} frames received of {nw}\n{log}"
    );
    let mid = (ng as usize / 2) * fb;
    let window = &got[mid..mid + WINDOW * fb];
    assert!(
        window.iter().any(|&b| b != 0),
        "{what}: silence in the middle of the output\n{log}"
    );
    let hits: Vec<usize> = (0..=(want.len() / fb).saturating_sub(WINDOW))
        .filter(|&f| &want[f * fb..(f + WINDOW) * fb] == window)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "{what}: the middle of the output occurs {} times in the input (frames {:?})\n{log}",
        hits.len(),
        &hits[..hits.len().min(5)]
    );
    let offset = (mid / fb) as i64 - hits[0] as i64; // output frame = input frame + offset
    let start = 0.max(-offset); // first input frame present in the output
    let end = nw.min(ng - offset); // one past the last
    let overlap = end - start;
    assert!(
        overlap as f64 >= 0.99 * nw as f64,
        "{what}: only {overlap} of {nw} input frames received (offset {offset})\n{log}"
    );
    let w = &want[start as usize * fb..end as usize * fb];
    let g = &got[(start + offset) as usize * fb..(end + offset) as usize * fb];
    if w != g {
        assert_frames_exact(w, g, fb, &format!("{what}\n{log}"));
    }
    offset
}

/// Bytes of audio in a WAV file being written (after its `data` chunk header); 0 before.
pub fn wav_data_bytes(path: &Path) -> usize {
    let Ok(b) = std::fs::read(path) else {
        return 0;
    };
    let head = &b[..b.len().min(4096)];
    match head.windows(4).position(|w| w == b"data") {
        Some(i) if b.len() >= i + 8 => b.len() - (i + 8),
        _ => 0,
    }
}
