//! Sound-card paths through real cpal/ALSA, headless: an ALSA configuration (`$HOME/.asoundrc`
//! of a temporary home, given to the `isostream` child processes) routes the default devices to
//! FIFOs through the `file` plugin over the `null` PCM. The `null` PCM has no clock, so the test
//! supplies one: a thread writes the capture FIFO one 5 ms period at a time in real time, and
//! another reads the playback FIFO at the real-time rate, so both devices run at the pace of
//! real hardware.
#![cfg(feature = "device")]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{free_port, spawn_command, wait_until_bound, Proc, CHILD_TIMEOUT};

use isostream_media::{compare, find_alignment, synthesize, AudioSpec, Program, SampleFormat};

const BIN: &str = env!("CARGO_BIN_EXE_isostream");
const RATE: u32 = 48_000;
const CHANNELS: u16 = 2;
/// Frames per capture period: what `isostream send --device` asks the device for (5 ms).
const PERIOD: usize = RATE as usize / 200;

fn spec() -> AudioSpec {
    AudioSpec {
        rate: RATE,
        channels: CHANNELS,
        format: SampleFormat::S16,
    }
}

/// A temporary home whose `.asoundrc` routes the default capture device to `capture.fifo`
/// and the default playback device to `playback.fifo` (raw native-endian samples).
struct AlsaHome {
    dir: tempfile::TempDir,
}

impl AlsaHome {
    fn new() -> Self {
        Self::with(true)
    }

    /// Regular files instead of FIFOs (for what only probes the devices: opening a FIFO
    /// blocks until the other end is opened).
    fn with_files() -> Self {
        Self::with(false)
    }

    fn with(fifos: bool) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for f in ["capture.fifo", "playback.fifo"] {
            if !fifos {
                std::fs::write(dir.path().join(f), vec![0u8; 1 << 16]).expect("write");
                continue;
            }
            let st = Command::new("mkfifo")
                .arg(dir.path().join(f))
                .status()
                .expect("run mkfifo");
            assert!(st.success(), "mkfifo {f} failed");
        }
        let conf = format!(
            r#"# isostream test: the default devices are FIFOs, clocked by the test.
pcm.!default {{
    type asym
    playback.pcm "isostream_playback"
    capture.pcm "isostream_capture"
}}
pcm.isostream_playback {{
    type file
    slave.pcm "null"
    file "{play}"
    format "raw"
}}
pcm.isostream_capture {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{cap}"
    format "raw"
}}
"#,
            play = dir.path().join("playback.fifo").display(),
            cap = dir.path().join("capture.fifo").display(),
        );
        std::fs::write(dir.path().join(".asoundrc"), conf).expect("write .asoundrc");
        AlsaHome { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("HOME", self.dir.path())
            .env_remove("ALSA_CONFIG_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Starts `isostream ARGS` with this home; its output is drained by threads.
    fn spawn(&self, name: &str, args: &[&str]) -> Proc {
        spawn_command(name, self.command(args))
    }
}

/// Writes `native` (raw little-endian frames) into the capture FIFO one period at a time at the
/// real-time rate, each period in one atomic write, reopening the FIFO whenever the device is
/// closed (cpal opens it once to probe, once to stream). Returns the bytes written; `progress`
/// counts them as they go.
fn clock_capture(
    fifo: PathBuf,
    native: Vec<u8>,
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicUsize>,
) -> JoinHandle<usize> {
    std::thread::spawn(move || {
        let chunk = PERIOD * spec().frame_bytes();
        assert!(chunk <= 4096, "a period must fit one atomic pipe write");
        let mut f: Option<std::fs::File> = None;
        let mut pos = 0;
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) && pos + chunk <= native.len() {
            let Some(file) = f.as_mut() else {
                match std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&fifo)
                {
                    Ok(file) => {
                        // a pipe of one page: the device cannot find more than a few periods
                        // queued when it starts reading (real hardware has no backlog)
                        use std::os::fd::AsRawFd;
                        // SAFETY: fcntl on a file descriptor this thread owns
                        unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
                        f = Some(file);
                        next = Instant::now();
                    }
                    // ENXIO: no reader yet
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
                continue;
            };
            let now = Instant::now();
            if now < next {
                std::thread::sleep(next - now);
                continue;
            }
            match file.write(&native[pos..pos + chunk]) {
                Ok(n) => {
                    assert_eq!(n, chunk, "pipe writes of a period are atomic");
                    pos += n;
                    progress.store(pos, Ordering::Relaxed);
                    next += Duration::from_micros(5_000);
                }
                // nobody reads (a probe holds the device open): like hardware, overrun
                // rather than build a backlog
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    next = Instant::now() + Duration::from_millis(1);
                }
                // EPIPE: the device was closed (a probe): wait for the stream to open it
                Err(_) => f = None,
            }
        }
        pos
    })
}

/// Reads the playback FIFO at the real-time rate (plus a little slack) until stopped; returns
/// the raw frames played.
fn clock_playback(fifo: PathBuf, stop: Arc<AtomicBool>) -> JoinHandle<Vec<u8>> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open the playback FIFO");
    {
        // a pipe of one page, so the device cannot run ahead of the clock by more than that
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on a file descriptor this function owns
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    }
    std::thread::spawn(move || {
        let bytes_per_s = (RATE as usize * spec().frame_bytes()) as f64;
        let mut played = Vec::new();
        let mut buf = vec![0u8; 4096];
        let mut start: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let allowed = match start {
                None => buf.len(),
                Some(t) => {
                    let due = (t.elapsed().as_secs_f64() * bytes_per_s) as usize + buf.len();
                    due.saturating_sub(played.len()).min(buf.len())
                }
            };
            if allowed == 0 {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            match f.read(&mut buf[..allowed]) {
                Ok(0) => std::thread::sleep(Duration::from_millis(1)),
                Ok(n) => {
                    start.get_or_insert_with(Instant::now);
                    played.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("reading the playback FIFO: {e}"),
            }
        }
        played
    })
}

/// Wire frames (big-endian) as the device's raw native i16 (little-endian), and back.
fn swap16(b: &[u8]) -> Vec<u8> {
    b.chunks_exact(2).flat_map(|s| [s[1], s[0]]).collect()
}

fn stats(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("stats JSON")).expect("JSON")
}

/// The headline: audio captured from the (file-backed) default input device goes through
/// `isostream send --device` and `isostream recv --out device` over loopback and comes out of
/// the (file-backed) default output device unchanged, after alignment.
#[test]
fn device_capture_to_device_playback_over_loopback_is_exact() {
    let home = AlsaHome::new();
    let seconds = 4.0;
    // the input is longer than the test: a capture device repeats stale data after its end
    let reference = synthesize(Program::Music, spec(), RATE as usize * 20, 7);
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let player = clock_playback(home.path("playback.fifo"), stop.clone());
    let recorder = clock_capture(
        home.path("capture.fifo"),
        swap16(&reference),
        stop.clone(),
        progress.clone(),
    );

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let recv_json = home.path("recv.json");
    let recv = home.spawn(
        "recv",
        &[
            "recv",
            "--listen",
            &listen,
            "--out",
            "device",
            "--live",
            "--exit-on-end",
            "--idle-timeout-ms",
            "1000",
            "--stats-json",
            recv_json.to_str().unwrap(),
        ],
    );
    wait_until_bound(port, "isostream recv");
    let send = home.spawn(
        "send",
        &[
            "send",
            "--device",
            "--to",
            &listen,
            "--rate",
            "48000",
            "--channels",
            "2",
        ],
    );
    // let the capture clock feed the device `seconds` of audio (however long a loaded
    // machine takes to start the processes and open the devices)
    let want_bytes = (seconds * RATE as f64) as usize * spec().frame_bytes();
    let t0 = Instant::now();
    while progress.load(Ordering::Relaxed) < want_bytes {
        assert!(
            t0.elapsed() < CHILD_TIMEOUT,
            "the capture device took only {} of {want_bytes} bytes in {CHILD_TIMEOUT:?}; send output:\n{}",
            progress.load(Ordering::Relaxed),
            send.output_so_far()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // a live device never ends: stop the sender; the receiver ends after its idle timeout
    let send_out = send.kill();
    let recv_out = recv.wait(CHILD_TIMEOUT);
    stop.store(true, Ordering::Relaxed);
    let written = recorder.join().expect("capture clock");
    let played = swap16(&player.join().expect("playback clock"));
    let send_err = &send_out.stderr;
    let recv_err = &recv_out.stderr;
    let diag = format!(
        "{} frames written to the capture device, {} read from the playback device; send stderr:\n{send_err}\nrecv stderr:\n{recv_err}",
        written / spec().frame_bytes(),
        played.len() / spec().frame_bytes()
    );
    assert!(recv_out.status.success(), "recv failed; {diag}");
    assert!(
        recv_err.contains("playing to default"),
        "recv did not use the device; {diag}"
    );

    let fb = spec().frame_bytes();
    let captured = &reference[..written / fb * fb];
    assert!(
        captured.len() / fb > RATE as usize * 3,
        "only {} frames were captured; {diag}",
        captured.len() / fb
    );
    // the played audio holds the captured audio somewhere after some silence
    let lag = find_alignment(captured, &played, spec(), RATE as u64 * 5)
        .unwrap_or_else(|| panic!("played audio does not match the capture; {diag}"));
    // compare 2 s from 0.5 s into the overlap (the edges hold the start-up and the stop)
    let start_ref = (-lag).max(0) as usize + RATE as usize / 2;
    let n = RATE as usize * 2;
    let start_out = (start_ref as i64 + lag) as usize;
    assert!(
        (start_out + n) * fb <= played.len() && (start_ref + n) * fb <= captured.len(),
        "too little audio played ({} frames, lag {lag}); {diag}",
        played.len() / fb
    );
    let c = compare(
        &captured[start_ref * fb..(start_ref + n) * fb],
        &played[start_out * fb..(start_out + n) * fb],
        spec(),
    );
    let r = stats(&recv_json);
    eprintln!(
        "lag {lag} frames, {} frames captured, {} played; {c:?}; receiver {}; {diag}",
        captured.len() / fb,
        played.len() / fb,
        r["receiver"]
    );
    assert!(
        c.bit_exact_fraction > 0.99,
        "played audio differs from the captured audio: {c:?}; {diag}"
    );
}

/// `isostream devices` lists the configured default device and its formats.
#[test]
fn devices_lists_the_default_device_and_its_configurations() {
    let home = AlsaHome::with_files();
    let out = home.command(&["devices"]).output().expect("run devices");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "devices failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("default [default input, default output]"),
        "{text}"
    );
    assert!(
        text.contains("capture:") && text.contains("playback:"),
        "{text}"
    );
    assert!(text.contains("Hz, i16"), "{text}");
}

/// An unknown device name is a clear error, not a hang or a panic.
#[test]
fn an_unknown_device_name_is_a_clear_error() {
    let home = AlsaHome::with_files();
    let out = home
        .command(&["send", "--device", "no-such-card", "--to", "127.0.0.1:9"])
        .output()
        .expect("run send");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no input device named 'no-such-card'"),
        "{err}"
    );
}
