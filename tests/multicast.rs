//! IP multicast end to end (issue 14): inside a private network namespace, one
//! `isostream send` to a group and three `isostream recv --listen GROUP:PORT` members on the
//! same host; every member's WAV is the input sample for sample, and the members' reports
//! reach the sender by unicast. Needs root and iproute2 (`ip`): a missing tool fails the
//! test, it never skips.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use isostream_media::{Program, SampleFormat};

/// A network namespace of its own for one test run, deleted on drop (also when the test
/// fails).
struct Netns {
    name: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2 must be installed): {e}"));
    assert!(
        out.status.success(),
        "`ip {}` failed (the test needs root): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// A fresh namespace whose loopback carries IPv4 multicast (224.0.0.0/4 routed to lo)
    /// and, with `v6`, a veth pair mc0/mc1 for IPv6 (link-scoped groups on mc0).
    fn new(v6: bool) -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "isostream-mc-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        let n = ns.name.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ip(&["-n", n, "link", "set", "lo", "multicast", "on"]);
        ip(&["-n", n, "route", "add", "224.0.0.0/4", "dev", "lo"]);
        if v6 {
            // Linux loops no IPv6 multicast back on lo: a veth pair carries it (with no
            // duplicate address detection, so its link-local address is usable at once)
            let dad = Command::new("ip")
                .args(["netns", "exec", n, "sh", "-c"])
                .arg("echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad")
                .status()
                .expect("run sh in the namespace");
            assert!(dad.success(), "cannot turn off DAD in the namespace");
            ip(&[
                "-n", n, "link", "add", "mc0", "type", "veth", "peer", "name", "mc1",
            ]);
            ip(&["-n", n, "link", "set", "mc0", "up"]);
            ip(&["-n", n, "link", "set", "mc1", "up"]);
        }
        ns
    }

    /// Starts `isostream ARGS...` inside the namespace.
    fn spawn(&self, what: &str, args: &[String]) -> Proc {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, BIN]).args(args);
        spawn_command(what, c)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Whether process `pid` (inside its own namespace) has bound UDP `port`: its
/// /proc/PID/net is its namespace's.
fn bound_in(pid: u32, port: u16) -> bool {
    let hex = format!(":{port:04X}");
    ["udp", "udp6"].iter().any(|f| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| a.ends_with(&hex))
            })
        })
    })
}

/// Waits until each process has bound `port` (`ip netns exec` becomes the program: same pid).
fn wait_bound(procs: &[Proc], port: u16) {
    let t0 = Instant::now();
    for p in procs {
        while !bound_in(p.id(), port) {
            assert!(
                t0.elapsed() < BIND_TIMEOUT,
                "a receiver did not bind UDP port {port} within {BIND_TIMEOUT:?}: {}",
                p.output_so_far()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// One sender to `group` and three members of it, in a namespace of their own: every
/// member's output is the input, exactly.
fn three_members(dir: &Path, group: SocketAddr, v6: bool) {
    let iface: &[&str] = if v6 {
        &["--multicast-iface", "mc0"]
    } else {
        &[]
    };
    let ns = Netns::new(v6);
    let spec = spec(48_000, 2, SampleFormat::S16);
    let frames = 48_000 * 2 + 77;
    let (input, want) = make_input(dir, "in.wav", Program::Music, spec, frames, 14);
    let mut recvs = Vec::new();
    for i in 0..3 {
        let out = dir.join(format!("out{i}.wav"));
        let stats = dir.join(format!("recv{i}.json"));
        recvs.push(ns.spawn(
            "recv",
            &recv_args(
                group,
                out.to_str().unwrap(),
                &stats,
                &[&["--low-water", "200"], iface].concat(),
            ),
        ));
    }
    wait_bound(&recvs, group.port());
    // bound is not yet joined: each says it listens once it is a member (a datagram sent to
    // the group before that is not its to receive)
    for r in &mut recvs {
        r.wait_for_output("listening on", BIND_TIMEOUT);
    }
    let sstats = dir.join("send.json");
    let send = ns.spawn("send", &send_args(&input, group, &sstats, iface));
    let t0 = Instant::now();
    let s = send.wait_ok(CHILD_TIMEOUT);
    let elapsed = t0.elapsed();
    let sj = read_json(&sstats);
    assert_eq!(sj["finish"], "EndOfInput", "{}", s.stderr);
    // the default speed of a multicast sender is the media rate (2 s of audio)
    assert!(
        elapsed >= Duration::from_millis(1_900),
        "sent 2 s of audio in {elapsed:?}: not paced at the media rate"
    );
    // the members' reports came back by unicast
    assert!(
        !sj["sender"]["receiver_report"].is_null(),
        "no receiver report reached the sender: {}",
        s.stderr
    );
    assert_eq!(count(&sj, &["sender", "requests_ignored"]), 0);
    for (i, r) in recvs.into_iter().enumerate() {
        let r = r.wait_ok(CHILD_TIMEOUT);
        let what = format!("member {i} of {group}");
        assert_wav_exact(&dir.join(format!("out{i}.wav")), spec, &want, &what);
        let rj = read_json(&dir.join(format!("recv{i}.json")));
        assert_delivered_every_frame(&rj, &sj, frames, &what, &r.stderr);
        // a group member asks for no PAUSE: the buffer fills to the low-water mark and plays
        assert_eq!(
            count(&rj, &["receiver", "flow", "pauses_sent"]),
            0,
            "{what}"
        );
    }
}

#[test]
fn three_members_of_an_ipv4_group_each_get_the_input_exactly() {
    let dir = tempfile::tempdir().unwrap();
    three_members(dir.path(), "239.255.14.1:5514".parse().unwrap(), false);
}

#[test]
fn three_members_of_an_ipv6_group_each_get_the_input_exactly() {
    let dir = tempfile::tempdir().unwrap();
    three_members(dir.path(), "[ff02::14:1]:5516".parse().unwrap(), true);
}
