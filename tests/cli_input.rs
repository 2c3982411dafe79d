//! Every invalid command-line value gets a one-line error and a non-zero exit, never a panic:
//! each subcommand is run with bad values of every option (0, negative, NaN, infinite, huge,
//! 1e-300, malformed addresses and names, unknown profiles, paths that cannot be written),
//! and each run must exit on its own with a non-zero code, an empty stdout and exactly one
//! line on stderr that does not say "panicked".

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use isostream_media::{Program, SampleFormat};

/// How long one run may take: an error is reported before anything is received, sent or
/// simulated, so a run that lasts longer accepted its bad value.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// Bad numbers for options that take a number.
const BAD_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e-300",
    "1e300",
    "99999999999999999999",
    "abc",
    "",
    "1,5",
];

/// Every case: the arguments after `isostream`.
fn cases(dir: &Path) -> Vec<Vec<String>> {
    let input = dir.join("in.wav").display().to_string();
    let d = |name: &str| dir.join(name).display().to_string();
    let mut c: Vec<Vec<String>> = Vec::new();
    let mut add = |base: &[&str], extra: &[&str]| {
        c.push(base.iter().chain(extra).map(|s| s.to_string()).collect());
    };
    // a sender that would stream to the discard port if it accepted a bad value
    let send: &[&str] = &["send", &input, "--to", "127.0.0.1:9", "--speed", "max"];
    let send_stdin: &[&str] = &["send", "-", "--to", "127.0.0.1:9"];
    let out = d("o.wav");
    let recv: &[&str] = &["recv", "--listen", "127.0.0.1:0", "--out", &out];
    let bench: &[&str] = &["bench", "--duration", "0.5"];
    let impair: &[&str] = &[
        "impair",
        "--listen",
        "127.0.0.1:0",
        "--forward",
        "127.0.0.1:9",
    ];
    let demo_dir = d("demo");
    let demo: &[&str] = &["demo", "--out-dir", &demo_dir, "--seconds", "0.5"];

    // Opus: refused settings (and, in a build without the feature, --codec opus itself)
    for extra in [
        &["--codec", "opus", "--interleave", "2"][..],
        &["--codec", "opus", "--frame-ms", "3"],
        &["--codec", "opus", "--frame-ms", "40"],
        &["--codec", "opus", "--bitrate", "1000"],
        &["--codec", "opus", "--bitrate", "abc"],
        &["--codec", "opus", "--packet-ms", "5"],
        &["--codec", "vorbis"],
        &["--bitrate", "64000"],
        &["--frame-ms", "10"],
        &["--opus-inband-fec"],
    ] {
        add(send, extra);
    }

    for v in BAD_NUMBERS {
        for opt in ["--packet-ms", "--interleave", "--spread", "--fec"] {
            // 1 source and 5 repair packets per block is a valid --fec
            if opt == "--fec" && *v == "1,5" {
                continue;
            }
            add(send, &[opt, v]);
            add(bench, &[opt, v]);
            add(demo, &[opt, v]);
        }
        add(&send[..4], &["--speed", v]);
        add(bench, &["--speed", v]);
        for opt in ["--receiver-timeout-ms", "--receiver-timeout"] {
            add(send, &[opt, v]);
        }
        for opt in ["--rate", "--channels"] {
            add(send_stdin, &[opt, v]);
            add(recv, &[opt, v]);
        }
        for opt in [
            "--low-water",
            "--high-water",
            "--latency",
            "--idle-timeout-ms",
            "--idle-timeout",
        ] {
            add(recv, &[opt, v]);
        }
        // payload type 0 is a valid (static) payload type
        if *v != "0" {
            add(recv, &["--l16-payload-type", v]);
        }
        for opt in ["--low-water", "--high-water"] {
            add(bench, &[opt, v]);
            add(demo, &[opt, v]);
        }
        for cmd in [send, recv, bench] {
            add(cmd, &["--memory-budget-mib", v]);
        }
        add(&bench[..1], &["--duration", v]);
        add(&impair[..5], &["--duration", v]);
        add(&demo[..3], &["--seconds", v]);
        // bench --drift-ppm takes 0, tiny and negative drifts
        if !["0", "-1", "1e-300"].contains(v) {
            add(bench, &["--drift-ppm", v]);
        }
        // a list of loss rates: "1,5" is two
        if !["0", "1e-300", "1,5"].contains(v) {
            add(bench, &["--sweep", "--sweep-loss", v]);
        }
        // any u64 is a seed
        if !["0"].contains(v) {
            for cmd in [bench, impair, demo] {
                add(cmd, &["--seed", v]);
            }
        }
    }
    // numbers just out of range
    for (opt, v) in [
        ("--packet-ms", "1000.5"),
        ("--packet-ms", "0.0001"),
        ("--interleave", "17"),
        ("--spread", "17"),
        ("--receiver-timeout-ms", "86400001"),
        ("--receiver-timeout", "86401"),
        ("--receiver-timeout", "0.0001"),
    ] {
        add(send, &[opt, v]);
    }
    for v in ["0.001", "1001", "-0.5"] {
        add(&send[..4], &["--speed", v]);
    }
    for (opt, v) in [
        ("--rate", "999"),
        ("--rate", "768001"),
        ("--rate", "4294967296"),
        ("--channels", "256"),
        ("--channels", "65536"),
    ] {
        add(send_stdin, &[opt, v]);
        add(recv, &[opt, v]);
    }
    for (opt, v) in [
        ("--low-water", "60001"),
        ("--high-water", "4294967295"),
        ("--latency", "60001"),
        ("--idle-timeout-ms", "86400001"),
        ("--idle-timeout", "1e-9"),
        ("--l16-payload-type", "128"),
        ("--l16-payload-type", "110"),
        ("--l16-payload-type", "109"),
        ("--l16-payload-type", "72"),
    ] {
        add(recv, &[opt, v]);
    }
    // a budget below the smallest (16 MiB) or above the largest (64 GiB)
    for v in ["15", "65537", "4294967296", "16.5"] {
        for cmd in [send, recv, bench] {
            add(cmd, &["--memory-budget-mib", v]);
        }
    }
    add(recv, &["--low-water", "500", "--high-water", "400"]);
    add(bench, &["--low-water", "500", "--high-water", "500"]);
    add(demo, &["--low-water", "900", "--high-water", "100"]);
    for v in ["10001", "-10001", "1e6", "-1e6"] {
        add(bench, &["--drift-ppm", v]);
    }
    for v in ["101", "-0.1", "5,nan"] {
        add(bench, &["--sweep", "--sweep-loss", v]);
    }
    add(&bench[..1], &["--duration", "0.001"]);
    add(&bench[..1], &["--duration", "86401"]);
    add(&impair[..5], &["--duration", "86401"]);
    add(&demo[..3], &["--seconds", "1e9"]);
    // FEC and the stream's shape
    for v in [
        "0,0", "1,0", "0,1", "255,1", "1,255", "8", "8,2,1", "-1,2", "8,-2", "x,y", "8;2", "of",
    ] {
        add(send, &["--fec", v]);
        add(bench, &["--fec", v]);
    }
    add(send, &["--spread", "4", "--fec", "off"]);
    add(send, &["--packet-ms", "1000", "--interleave", "16"]);
    for v in [
        "",
        "0",
        "1,1",
        "2",
        "1,2,3",
        "per-channel,x",
        "1+",
        "+",
        "2,1",
        "1+2+3",
    ] {
        add(send, &["--substreams", v]);
        add(bench, &["--substreams", v]);
    }
    // a plain stream for stock receivers only: an SDP of a stream with repair packets fails
    add(send, &["--fec", "8,2", "--sdp", &d("s.sdp")]);
    // formats, programs and profiles
    for v in ["s8", "S16", "s16", "f64le", ""] {
        add(send_stdin, &["--format", v]);
        add(
            &["recv", "--listen", "127.0.0.1:0", "--out", "-"],
            &["--format", v],
        );
    }
    for v in [
        "",
        "bogus",
        "sine:",
        "sine:0",
        "sine:-5",
        "sine:nan",
        "sine:inf",
        "sine:1e300",
    ] {
        add(bench, &["--program", v]);
    }
    let bad_toml = d("bad.toml");
    let bad_values = d("bad-values.toml");
    for v in [
        "",
        "bogus",
        "WIFI ",
        "/nonexistent/profile.toml",
        &bad_toml,
        &bad_values,
        dir.to_str().unwrap(),
    ] {
        add(bench, &["--profile", v]);
        add(impair, &["--profile", v, "--duration", "1"]);
        add(demo, &["--profile", v]);
    }
    for v in ["", ";", "8,2;;0,0", "x", "off;8,2;255,255"] {
        add(bench, &["--sweep", "--sweep-fec", v]);
    }
    // addresses
    for v in [
        "",
        "x",
        "127.0.0.1",
        "127.0.0.1:99999",
        "127.0.0.1:-1",
        "256.1.1.1:5",
        ":5004",
        "localhost:",
        "[::1]",
        "nohost.invalid:5004",
        "127.0.0.1:0",
        "0.0.0.0:5004",
        "[::]:5004",
    ] {
        add(&send[..2], &["--to", v, "--speed", "max"]);
        add(&impair[..3], &["--forward", v, "--duration", "1"]);
    }
    for v in [
        "",
        "x",
        "127.0.0.1",
        "127.0.0.1:99999",
        "256.1.1.1:5",
        "localhost:5004",
        "192.0.2.1:5004",
    ] {
        add(send, &["--bind", v]);
        add(&recv[..1], &["--out", &out, "--listen", v]);
        add(&["impair", "--forward", "127.0.0.1:9"], &["--listen", v]);
    }
    // inputs and outputs
    let not_wav = d("not-a-wav.txt");
    let regular = d("a-file");
    for v in ["/nonexistent/in.wav", &not_wav, dir.to_str().unwrap(), ""] {
        add(&["send"], &[v, "--to", "127.0.0.1:9"]);
        add(&["bench"], &[v, "--duration", "0.5"]);
    }
    add(&["send", &input, &not_wav], &["--to", "127.0.0.1:9"]);
    add(&["send", "-", "-"], &["--to", "127.0.0.1:9"]);
    for v in [
        "/nonexistent/dir/o.wav",
        dir.to_str().unwrap(),
        &format!("{regular}/o.wav"),
    ] {
        add(&["recv", "--listen", "127.0.0.1:0"], &["--out", v]);
    }
    add(
        &["recv", "--listen", "127.0.0.1:0"],
        &["--out-dir", &regular],
    );
    add(recv, &["--out-dir", &d("split")]);
    add(&["recv", "--listen", "127.0.0.1:0"], &[]);
    #[cfg(not(feature = "device"))]
    {
        add(&["recv", "--listen", "127.0.0.1:0"], &["--out", "device"]);
        add(send_stdin, &["--device"]);
        add(&["send", "--to", "127.0.0.1:9"], &["--device", "x"]);
    }
    add(&["send", &input, "--to", "127.0.0.1:9"], &["--device", "x"]);
    for w in ["/nonexistent/dir/x.json", dir.to_str().unwrap()] {
        add(send, &["--stats-json", w]);
        add(recv, &["--stats-json", w]);
        add(impair, &["--stats-json", w, "--duration", "1"]);
        add(bench, &["--plot", w]);
        add(
            &["send", &input, "--to", "127.0.0.1:9", "--fec", "off"],
            &["--sdp", w],
        );
        add(&recv[..5], &["--sdp", w]);
    }
    add(&["demo", "--seconds", "0.5"], &["--out-dir", &regular]);
    // SRTP keys: not base64, the wrong length (29, 31 bytes), SDES parameters, a key of
    // one suite for the other, an unknown suite, key files that are missing or hold garbage
    let bad_key_file = d("bad-key.txt");
    let key = "WbTBosdVUZqEb6Htqhn+m3z7wUh4RJVR8nE15GbN";
    let key_lifetime = format!("{key}|2^20|1:4");
    for v in [
        "",
        "abc",
        "not base64!",
        "AAAA",
        "WbTBosdVUZqEb6Htqhn+m3z7wUh4RJVR8nE15Gb=",
        "WbTBosdVUZqEb6Htqhn+m3z7wUh4RJVR8nE15GbNAA==",
        &key_lifetime,
    ] {
        add(send, &["--srtp-key", v]);
        add(recv, &["--srtp-key", v]);
        add(demo, &["--srtp-key", v]);
    }
    for cmd in [send, recv, demo] {
        add(
            cmd,
            &["--srtp-key", key, "--srtp-suite", "AEAD_AES_128_GCM"],
        );
        add(
            cmd,
            &["--srtp-key", key, "--srtp-suite", "AES_CM_128_HMAC_SHA1_32"],
        );
        add(cmd, &["--srtp-key-file", &bad_key_file]);
        add(cmd, &["--srtp-key-file", "/nonexistent/key.txt"]);
        add(cmd, &["--srtp-key-file", dir.to_str().unwrap()]);
        add(cmd, &["--srtp-key", key, "--srtp-key-file", &bad_key_file]);
    }
    // unknown options, subcommands and flags given twice
    add(&["bogus"], &[]);
    add(send, &["--bogus"]);
    add(recv, &["--bogus", "1"]);
    add(bench, &["-x"]);
    add(impair, &["--listen", "127.0.0.1:0"]);
    add(demo, &["--seconds", "1"]);
    add(&["devices"], &["--bogus"]);
    add(recv, &["--idle-timeout", "1", "--idle-timeout-ms", "5"]);
    c
}

/// Writes the files the cases refer to.
fn prepare(dir: &Path) {
    make_input(
        dir,
        "in.wav",
        Program::Music,
        spec(48_000, 2, SampleFormat::S16),
        4_800,
        1,
    );
    std::fs::write(dir.join("not-a-wav.txt"), "hello\n").unwrap();
    std::fs::write(dir.join("bad-key.txt"), "this is no key\n").unwrap();
    std::fs::write(dir.join("a-file"), "a file, not a directory\n").unwrap();
    std::fs::write(dir.join("bad.toml"), "name = [[[\n").unwrap();
    std::fs::write(
        dir.join("bad-values.toml"),
        "[forward.loss]\nmodel = \"bernoulli\"\np = 2.0\n",
    )
    .unwrap();
}

/// Runs `args` and says what is wrong with the run, if anything.
fn check(args: &[String]) -> Option<String> {
    let mut p = spawn("isostream", args);
    let Some(_) = p.wait_for(RUN_LIMIT) else {
        let d = p.kill();
        return Some(format!(
            "still running after {RUN_LIMIT:?} (the bad value was accepted); stderr: {}",
            d.stderr
        ));
    };
    let d = p.wait(Duration::from_secs(5));
    let lines: Vec<&str> = d.stderr.lines().collect();
    let mut wrong = Vec::new();
    if d.status.success() {
        wrong.push("exit code 0".to_string());
    }
    if d.stderr.contains("panicked") {
        wrong.push("a panic".to_string());
    }
    if lines.len() != 1 || lines[0].trim().is_empty() {
        wrong.push(format!("{} lines on stderr", lines.len()));
    }
    if !d.stdout.is_empty() {
        wrong.push(format!("{} bytes on stdout", d.stdout.len()));
    }
    // the reason says each thing once ("I/O error: No such file ...: No such file ..." did not)
    let parts: Vec<&str> = d.stderr.trim().split(": ").collect();
    if (1..parts.len()).any(|i| parts[..i].contains(&parts[i])) {
        wrong.push("a repeated clause".to_string());
    }
    (!wrong.is_empty())
        .then(|| format!("{} ({}); stderr:\n{}", wrong.join(", "), d.status, d.stderr))
}

#[test]
fn every_invalid_value_gets_one_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let all = cases(dir.path());
    assert!(all.len() > 300, "{} cases", all.len());
    // a few runs at a time: each is a process that should stop at once
    let failures = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(args) = all.get(i) else { break };
                if let Some(why) = check(args) {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("isostream {args:?}: {why}"));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} runs went wrong:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} invalid command lines, each refused in one line",
        all.len()
    );
}

/// Values at the edges of the ranges still run: the checks refuse nothing that is meant to
/// work.
#[test]
fn valid_edge_values_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let input = dir.path().join("in.wav").display().to_string();
    for extra in [
        &["--speed", "1000"][..],
        &["--speed", "max", "--packet-ms", "2.5", "--interleave", "16"],
        &[
            "--speed",
            "max",
            "--fec",
            "1,1",
            "--receiver-timeout-ms",
            "1",
        ],
        &[
            "--speed",
            "max",
            "--fec",
            "off",
            "--receiver-timeout",
            "0.5",
        ],
        &[
            "--speed",
            "max",
            "--substreams",
            "per-channel",
            "--spread",
            "16",
        ],
        &["--speed", "max", "--memory-budget-mib", "16"],
    ] {
        let mut args = vec!["send", input.as_str(), "--to", "127.0.0.1:9"];
        args.extend_from_slice(extra);
        spawn("send", &args).wait_ok(CHILD_TIMEOUT);
    }
    for extra in [
        &["--drift-ppm", "-100"][..],
        &["--low-water", "1", "--high-water", "60000"],
        &["--sweep", "--sweep-loss", "0,99.9"],
        &["--program", "sine:440"],
        &["--memory-budget-mib", "16"],
        &["--memory-budget-mib", "65536"],
    ] {
        let mut args = vec!["bench", "--duration", "0.5"];
        args.extend_from_slice(extra);
        spawn("bench", &args).wait_ok(CHILD_TIMEOUT);
    }
    spawn("bench", &["bench", "--duration", "0.01"]).wait_ok(CHILD_TIMEOUT);
    let impair = [
        "impair",
        "--listen",
        "127.0.0.1:0",
        "--forward",
        "localhost:9",
        "--duration",
        "0.01",
    ];
    spawn("impair", &impair).wait_ok(CHILD_TIMEOUT);
}

/// A build without the `opus` feature says in one line how to get `--codec opus`.
#[cfg(not(feature = "opus"))]
#[test]
fn codec_opus_without_the_feature_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let input = dir.path().join("in.wav").display().to_string();
    let args: Vec<String> = ["send", &input, "--to", "127.0.0.1:9", "--codec", "opus"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut p = spawn("isostream", &args);
    p.wait_for(RUN_LIMIT).expect("send stops at once");
    let d = p.wait(Duration::from_secs(5));
    assert!(!d.status.success());
    assert!(
        d.stderr
            .contains("built without Opus: rebuild with --features opus (needs libopus-dev)"),
        "{}",
        d.stderr
    );
    assert_eq!(d.stderr.lines().count(), 1, "{}", d.stderr);
}
