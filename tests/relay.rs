//! `isostream relay` over loopback sockets, with the built binary: many listeners
//! (`recv --connect`) on one relay, a listener killed mid-stream, and a chain of two relays.
//! Every listener's WAV is compared with the input, sample for sample; the relay's
//! `--stats-json` summary says who was dropped.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    assert_wav_exact, free_addr, make_input, read_json, spawn, stereo, wait_until_bound,
    wav_data_bytes, Proc, CHILD_TIMEOUT,
};
use isostream_media::Program;

/// Listener timeout the tests give the relay, in ms: well above a listener's refresh
/// (reports every 250 ms, SUBSCRIBE every 1000 ms) even on a loaded machine, and short
/// enough that the relay exits soon after the end.
const LISTENER_TIMEOUT_MS: &str = "2500";

/// Starts `isostream relay` on `listen` (upstream relay `connect`, if any) writing its
/// summary to `stats`, and waits until it has bound its port.
fn spawn_relay(listen: SocketAddr, connect: Option<SocketAddr>, stats: &Path) -> Proc {
    let mut args: Vec<String> = vec![
        "relay".into(),
        "--listen".into(),
        listen.to_string(),
        "--listener-timeout-ms".into(),
        LISTENER_TIMEOUT_MS.into(),
        "--stats-json".into(),
        stats.display().to_string(),
    ];
    if let Some(c) = connect {
        args.extend(["--connect".into(), c.to_string()]);
    }
    let p = spawn("relay", &args);
    wait_until_bound(listen.port(), "isostream relay");
    p
}

/// Starts a listener subscribed to `relay`, writing `out`, exiting at the end.
fn spawn_listener(relay: SocketAddr, out: &Path, stats: &Path) -> Proc {
    let mut p = spawn(
        "recv",
        &[
            "recv".to_string(),
            "--connect".into(),
            relay.to_string(),
            "--out".into(),
            out.display().to_string(),
            "--exit-on-end".into(),
            "--stats-json".into(),
            stats.display().to_string(),
        ],
    );
    p.wait_for_output("subscribing to relay", CHILD_TIMEOUT);
    p
}

/// Waits until the relay says `n` listeners are listening.
fn wait_for_listeners(relay: &mut Proc, n: usize) {
    relay.wait_for_output(&format!("({n} listening)"), CHILD_TIMEOUT);
}

fn send(input: &Path, to: SocketAddr, stats: &Path) -> Proc {
    spawn(
        "send",
        &[
            "send".to_string(),
            input.display().to_string(),
            "--to".into(),
            to.to_string(),
            "--stats-json".into(),
            stats.display().to_string(),
        ],
    )
}

/// The relay summary's listeners, by address: (state, packets sent).
fn listener_states(stats: &serde_json::Value) -> Vec<(String, String)> {
    stats["relay"]["listeners"]
        .as_array()
        .expect("a listener list")
        .iter()
        .map(|l| {
            (
                l["addr"].as_str().unwrap().to_string(),
                l["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Waits until the WAV at `path` holds audio (its writer started playing).
fn wait_until_playing(path: &Path) {
    let t0 = Instant::now();
    while wav_data_bytes(path) == 0 {
        assert!(
            t0.elapsed() < CHILD_TIMEOUT,
            "{} never got audio",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn twenty_listeners_are_exact_while_one_stops_reading_and_one_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let spec = stereo();
    let (input, want) = make_input(dir.path(), "in.wav", Program::Music, spec, 48_000 * 4, 21);
    let addr = free_addr();
    let relay_stats = dir.path().join("relay.json");
    let mut relay = spawn_relay(addr, None, &relay_stats);
    // 20 listeners judged by their output, a 21st that stops reading for a while and comes
    // back, a 22nd killed mid-stream
    let outs: Vec<PathBuf> = (0..22)
        .map(|i| dir.path().join(format!("out{i}.wav")))
        .collect();
    let mut listeners: Vec<Proc> = outs
        .iter()
        .enumerate()
        .map(|(i, o)| spawn_listener(addr, o, &dir.path().join(format!("recv{i}.json"))))
        .collect();
    wait_for_listeners(&mut relay, 22);
    let sender = send(&input, addr, &dir.path().join("send.json"));
    let doomed = listeners.pop().unwrap();
    let sleeper = listeners.pop().unwrap();
    wait_until_playing(&outs[20]);
    sleeper.signal(libc::SIGSTOP);
    wait_until_playing(&outs[21]);
    doomed.kill();
    std::thread::sleep(Duration::from_millis(1000));
    sleeper.signal(libc::SIGCONT);
    let s = sender.wait_ok(CHILD_TIMEOUT);
    let done: Vec<_> = listeners
        .into_iter()
        .map(|l| l.wait_ok(CHILD_TIMEOUT))
        .collect();
    let slept = sleeper.wait_ok(CHILD_TIMEOUT);
    let r = relay.wait_ok(CHILD_TIMEOUT);
    let log = format!(
        "relay:\n{}\nsend:\n{}\nthe one that stopped:\n{}",
        r.stderr, s.stderr, slept.stderr
    );
    for (i, (out, d)) in outs.iter().zip(&done).enumerate() {
        assert_wav_exact(
            out,
            spec,
            &want,
            &format!("listener {i}\n{}\n{log}", d.stderr),
        );
    }
    // the one that stopped reading played on after it came back
    assert!(
        wav_data_bytes(&outs[20]) >= want.len() / 2,
        "the listener that stopped reading played {} bytes\n{log}",
        wav_data_bytes(&outs[20])
    );
    let stats = read_json(&relay_stats);
    let states = listener_states(&stats);
    assert_eq!(states.len(), 22, "{stats}");
    // the killed one went silent mid-stream: dropped after the timeout, not finished
    let timed_out: Vec<_> = states.iter().filter(|(_, s)| s == "timed_out").collect();
    assert_eq!(timed_out.len(), 1, "{states:?}\n{log}");
    assert_eq!(
        states.iter().filter(|(_, s)| s == "finished").count(),
        21,
        "{states:?}\n{log}"
    );
    assert_eq!(stats["relay"]["listeners_timed_out"], 1);
}

#[test]
fn a_chain_of_two_relays_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let spec = stereo();
    let (input, want) = make_input(
        dir.path(),
        "in.wav",
        Program::Speech,
        spec,
        48_000 * 3 + 7,
        22,
    );
    let (a, b) = (free_addr(), free_addr());
    let mut first = spawn_relay(a, None, &dir.path().join("a.json"));
    let mut second = spawn_relay(b, Some(a), &dir.path().join("b.json"));
    wait_for_listeners(&mut first, 1);
    let out = dir.path().join("out.wav");
    let listener = spawn_listener(b, &out, &dir.path().join("recv.json"));
    wait_for_listeners(&mut second, 1);
    let sender = send(&input, a, &dir.path().join("send.json"));
    let s = sender.wait_ok(CHILD_TIMEOUT);
    let l = listener.wait_ok(CHILD_TIMEOUT);
    let rb = second.wait_ok(CHILD_TIMEOUT);
    let ra = first.wait_ok(CHILD_TIMEOUT);
    assert_wav_exact(
        &out,
        spec,
        &want,
        &format!(
            "behind two relays\nrecv:\n{}\nrelay b:\n{}\nrelay a:\n{}\nsend:\n{}",
            l.stderr, rb.stderr, ra.stderr, s.stderr
        ),
    );
    let sb = read_json(&dir.path().join("b.json"));
    assert_eq!(listener_states(&sb).len(), 1);
    let sa = read_json(&dir.path().join("a.json"));
    // relay b is relay a's one listener; it finished like any listener
    assert_eq!(
        listener_states(&sa),
        vec![(b.to_string(), "finished".to_string())]
    );
}
