//! One `isostream send` to `isostream recv` run over loopback: the files it writes, the run
//! itself, and the checks of a run that must deliver every frame; the `isostream impair`
//! relay between them.

use std::path::{Path, PathBuf};

use super::{
    count, free_addr, recv_args, send_args, spawn, spawn_recv, wait_until_bound, Done, Proc,
    CHILD_TIMEOUT,
};

/// The files of one send/recv run in a directory: what `recv` writes (`out.wav`) and the
/// two `--stats-json` files (`recv.json`, `send.json`).
pub struct RunFiles {
    /// The receiver's `--out` WAV.
    pub out: PathBuf,
    /// The receiver's `--stats-json`.
    pub rstats: PathBuf,
    /// The sender's `--stats-json`.
    pub sstats: PathBuf,
}

impl RunFiles {
    /// `out.wav`, `recv.json` and `send.json` in `dir` (nothing is created).
    pub fn in_dir(dir: &Path) -> RunFiles {
        RunFiles {
            out: dir.join("out.wav"),
            rstats: dir.join("recv.json"),
            sstats: dir.join("send.json"),
        }
    }
}

/// Streams `input` (a WAV) from `isostream send` (with `send_extra`) to `isostream recv`
/// (with `recv_extra`, exiting at the end of the session) on a free loopback address,
/// writing `files`: `recv` is started first and listening before `send` starts. Both must
/// exit 0 within [`CHILD_TIMEOUT`] each. Returns what (send, recv) left.
pub fn send_to_recv(
    input: &Path,
    files: &RunFiles,
    send_extra: &[&str],
    recv_extra: &[&str],
) -> (Done, Done) {
    let addr = free_addr();
    let out = files.out.to_str().expect("a UTF-8 output path");
    let recv = spawn_recv(addr, &recv_args(addr, out, &files.rstats, recv_extra));
    let send = spawn("send", &send_args(input, addr, &files.sstats, send_extra));
    let s = send.wait_ok(CHILD_TIMEOUT);
    let r = recv.wait_ok(CHILD_TIMEOUT);
    (s, r)
}

/// Asserts the stats of a run that had to deliver everything: the receiver (stats `rj`)
/// played exactly `frames` frames, lost none for good, dropped no malformed datagram, and
/// every media packet the sender (stats `sj`) sent was received or counted lost. `what`
/// names the run; `recv_stderr` is shown if the frame count is off.
pub fn assert_delivered_every_frame(
    rj: &serde_json::Value,
    sj: &serde_json::Value,
    frames: usize,
    what: &str,
    recv_stderr: &str,
) {
    assert_eq!(
        count(rj, &["receiver", "frames_played"]),
        frames as u64,
        "{what}: frames played; recv stderr:\n{recv_stderr}"
    );
    assert_eq!(
        count(rj, &["receiver", "packets_unrecoverable"]),
        0,
        "{what}"
    );
    assert_eq!(count(rj, &["receiver", "datagrams_malformed"]), 0, "{what}");
    assert_eq!(
        count(sj, &["sender", "packets_sent"]),
        count(rj, &["receiver", "packets_received"]) + count(rj, &["receiver", "packets_lost"]),
        "{what}: every media packet sent is accounted for"
    );
}

/// Starts `isostream impair` on 127.0.0.1:`listen` forwarding to 127.0.0.1:`forward`
/// through the link `profile` (a built-in name or a profile file), its randomness from
/// `seed`, for at most `duration_s` seconds, and waits until it listens. Dropping the
/// [`Proc`] kills it.
pub fn spawn_impair(listen: u16, forward: u16, profile: &str, seed: u64, duration_s: u64) -> Proc {
    let p = spawn(
        "impair",
        &[
            "impair".to_string(),
            "--listen".into(),
            format!("127.0.0.1:{listen}"),
            "--forward".into(),
            format!("127.0.0.1:{forward}"),
            "--profile".into(),
            profile.into(),
            "--seed".into(),
            seed.to_string(),
            "--duration".into(),
            duration_s.to_string(),
        ],
    );
    wait_until_bound(listen, "isostream impair");
    p
}
