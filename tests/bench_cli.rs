//! `isostream bench` end to end: deterministic output, sweeps and plots. What bench reports
//! about the audio is checked against the test's own comparison of the same session's
//! output with its input (bench does not write its output: the test runs the same session
//! through `isostream::sim` and compares), and plots are parsed, not grepped.

mod common;

use std::process::Command;

use common::{bench_ok, mds_residual};
use isostream::sim::{self, MemorySource, SimResult};
use isostream_media::{synthesize, write_wav_all, AudioSpec, Program, SampleFormat};
use isostream_netsim::Profile;
use isostream_receiver::ReceiverConfig;
use isostream_sender::SenderConfig;
use isostream_transport::fec::FecParams;
use isostream_transport::time::Duration;

#[test]
fn same_seed_same_report_byte_for_byte() {
    let args = [
        "--profile",
        "bursty",
        "--seed",
        "1",
        "--duration",
        "8",
        "--interleave",
        "2",
        "--spread",
        "2",
        "--json",
    ];
    let a = bench_ok(&args);
    let b = bench_ok(&args);
    assert_eq!(a.stdout, b.stdout);
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(v["completed"], true);
    assert!(
        v["datagrams_lost_on_wire"].as_u64().unwrap() > 0,
        "bursty must lose packets: {v}"
    );
    // another seed meets another network
    let c = bench_ok(&[
        "--profile",
        "bursty",
        "--seed",
        "4",
        "--duration",
        "8",
        "--interleave",
        "2",
        "--spread",
        "2",
        "--json",
    ]);
    assert_ne!(a.stdout, c.stdout);
}

/// The session `isostream bench IN.wav --profile P --seed SEED --fec 8,2 --retransmission
/// off` runs, run here through the library (bench's defaults: 5 ms packets, twice real
/// time, 300/2000/4000 ms watermarks).
fn same_session(spec: AudioSpec, input: &[u8], p: &Profile, seed: u64) -> SimResult {
    let mut scfg = SenderConfig::new(spec);
    scfg.fec = Some(FecParams::new(8, 2).unwrap());
    scfg.seed = seed;
    scfg.speed = isostream_sender::Speed::Times(2.0);
    scfg.retransmission = None;
    let rcfg = ReceiverConfig {
        seed,
        low_water_ms: 300,
        resume_water_ms: Some(2000),
        high_water_ms: 4000,
        ..ReceiverConfig::default()
    };
    let mut src = MemorySource::new(input, spec.frame_bytes());
    let audio = input.len() / spec.frame_bytes() / spec.rate as usize;
    sim::run(
        scfg,
        rcfg,
        p,
        seed,
        &mut src,
        Duration::from_secs(audio as u64 * 3 + 30),
    )
    .unwrap()
}

/// Frames of `out` identical to `input` at the same position, over the input's length.
fn exact_fraction(input: &[u8], out: &[u8], fb: usize) -> f64 {
    let same = input
        .chunks(fb)
        .zip(out.chunks(fb))
        .filter(|(a, b)| a == b)
        .count();
    same as f64 / (input.len() / fb) as f64
}

#[test]
fn what_bench_says_about_the_audio_is_what_the_audio_is() {
    let dir = tempfile::tempdir().unwrap();
    let spec = AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    let input = synthesize(Program::Music, spec, 48_000 * 3 + 11, 5);
    let wav = dir.path().join("in.wav");
    write_wav_all(&wav, spec, &input).unwrap();
    let fb = spec.frame_bytes();
    for (name, seed) in [("perfect", 1u64), ("bursty", 3)] {
        let out = bench_ok(&[
            wav.to_str().unwrap(),
            "--profile",
            name,
            "--seed",
            &seed.to_string(),
            "--fec",
            "8,2",
            // without retransmission FEC alone repairs, and bursty leaves damage to compare
            "--retransmission",
            "off",
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let r = same_session(spec, &input, &Profile::builtin(name).unwrap(), seed);
        // it is the same session: same traffic, same losses
        assert_eq!(v["packets_sent"], r.sender.packets_sent, "{name}: {v}");
        assert_eq!(
            v["repair_packets_sent"], r.sender.repair_packets_sent,
            "{name}: {v}"
        );
        assert_eq!(
            v["packets_unrecoverable"], r.receiver.packets_unrecoverable,
            "{name}: {v}"
        );
        assert_eq!(r.output.len(), input.len(), "{name}: the timeline slipped");
        let exact = exact_fraction(&input, &r.output, fb);
        let reported = v["bit_exact_fraction"].as_f64().unwrap();
        assert!(
            (reported - exact).abs() < 1e-9,
            "{name}: bench says {reported} bit-exact, the audio is {exact}"
        );
        // repair overhead: 2 repair packets per 8 (the last block may be short)
        let overhead = r.sender.repair_packets_sent as f64 / r.sender.packets_sent as f64;
        assert!((v["overhead"].as_f64().unwrap() - overhead).abs() < 1e-9);
        assert!((overhead - 0.25).abs() < 0.01, "{overhead}");
        if name == "perfect" {
            assert!(r.output == input, "perfect: output differs from the input");
            assert_eq!(reported, 1.0);
            assert_eq!(v["residual_loss"], 0.0);
        } else {
            assert!(v["datagrams_lost_on_wire"].as_u64().unwrap() > 0, "{v}");
            assert!(exact < 1.0, "bursty left the audio intact?");
        }
    }
}

/// The points of every `<polyline>` of an SVG, after checking that it is well-formed XML
/// whose root is an `<svg>` of a positive size; every point must lie inside it.
fn polylines(svg: &str) -> Vec<Vec<(f64, f64)>> {
    let doc = roxmltree::Document::parse(svg).expect("the plot is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let size = |a: &str| -> f64 {
        root.attribute(a)
            .and_then(|x| x.trim_end_matches("px").parse().ok())
            .unwrap_or_else(|| panic!("svg without {a}"))
    };
    let (w, h) = (size("width"), size("height"));
    assert!(w > 0.0 && h > 0.0);
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .map(|n| {
            let pts: Vec<(f64, f64)> = n
                .attribute("points")
                .unwrap_or("")
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').expect("x,y");
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect();
            for &(x, y) in &pts {
                assert!(
                    (0.0..=w).contains(&x) && (0.0..=h).contains(&y),
                    "({x}, {y})"
                );
            }
            pts
        })
        .collect()
}

#[test]
fn sweep_reports_each_setting_and_draws_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("sweep.svg");
    let out = bench_ok(&[
        "--profile",
        "lan",
        "--duration",
        "20",
        "--sweep",
        "--sweep-loss",
        "0,5,10",
        "--sweep-fec",
        "off;8,2",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 6);
    let get = |i: usize, k: &str| rows[i][k].as_f64().unwrap();
    // no loss, no residual loss
    assert_eq!(get(0, "residual_loss"), 0.0);
    assert_eq!(get(3, "residual_loss"), 0.0);
    for (i, p) in [(1, 0.05), (2, 0.10), (4, 0.05), (5, 0.10)] {
        let n = get(i, "packets_sent");
        let measured = get(i, "residual_loss");
        // without FEC every lost packet stays lost: binomial standard error of the rate;
        // with FEC 8,2 the MDS residual, with the standard error of the per-block counts
        let (want, se) = if i < 3 {
            (p, (p * (1.0 - p) / n).sqrt())
        } else {
            let (r, sd) = mds_residual(8, 2, p);
            (r, sd / (n / 8.0).sqrt() / 8.0)
        };
        assert!(
            (measured - want).abs() < 4.0 * se,
            "row {i} ({}, {p} loss): residual {measured:.4} vs {want:.4} (4 se = {:.4})",
            rows[i]["fec"],
            4.0 * se
        );
    }
    // the plot holds the data: one line of 3 points per FEC setting, left to right in
    // network loss, higher where residual loss is higher (SVG y grows downwards)
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("FEC off") && text.contains("FEC 8,2"));
    let lines: Vec<Vec<(f64, f64)>> = polylines(&text)
        .into_iter()
        .filter(|p| p.len() == 3)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (l, base) in lines.iter().zip([0, 3]) {
        assert!(l[0].0 < l[1].0 && l[1].0 < l[2].0, "{l:?}");
        for j in 0..2 {
            let (a, b) = (
                get(base + j, "residual_loss"),
                get(base + j + 1, "residual_loss"),
            );
            assert_eq!(a < b, l[j].1 > l[j + 1].1, "{l:?} vs residuals {a} {b}");
        }
    }
    // FEC off ends higher than FEC 8,2
    assert!(lines[0][2].1 < lines[1][2].1, "{lines:?}");
}

#[test]
fn a_plot_of_one_session_shows_the_watermarks() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("t.svg");
    bench_ok(&[
        "--profile",
        "wifi",
        "--duration",
        "3",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("high-water mark") && text.contains("low-water mark"));
    // the same session's timeline (bench's built-in program: mixed, seed 7, 48 kHz stereo)
    let spec = AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    let input = synthesize(Program::Mixed, spec, 48_000 * 3, 7);
    let r = same_session(spec, &input, &Profile::builtin("wifi").unwrap(), 1);
    let n = r.timeline.len();
    assert!(n >= 30, "{n} samples");
    // a line per series of the timeline (buffer, losses, recoveries, concealment), each
    // with a point per sample
    let series: Vec<Vec<(f64, f64)>> = polylines(&text)
        .into_iter()
        .filter(|p| p.len() == n)
        .collect();
    assert!(series.len() >= 4, "{} lines of {n} points", series.len());
    // the buffer's line follows the timeline: where the buffer is fullest, it is higher
    // than where it is emptiest
    let (lo, hi) = r.timeline.iter().fold((f64::MAX, f64::MIN), |(lo, hi), s| {
        (lo.min(s.buffer_ms), hi.max(s.buffer_ms))
    });
    assert!(hi > lo);
    let i_max = r.timeline.iter().position(|s| s.buffer_ms == hi).unwrap();
    let i_min = r.timeline.iter().position(|s| s.buffer_ms == lo).unwrap();
    assert!(
        series
            .iter()
            .any(|p| p[i_max].1 < p[i_min].1 && p.iter().any(|q| q.1 != p[0].1)),
        "no line rises from the buffer's minimum (sample {i_min}) to its maximum (sample {i_max})"
    );
}

#[test]
fn unknown_profile_is_a_one_line_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_isostream"))
        .args(["bench", "--profile", "moon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("isostream: ") && err.contains("moon"),
        "{err}"
    );
}
