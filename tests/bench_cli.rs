//! `isostream bench` end to end: deterministic output, sweeps and plots.

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_isostream"))
        .arg("bench")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn same_seed_same_report_byte_for_byte() {
    let args = [
        "--profile",
        "bursty",
        "--seed",
        "3",
        "--duration",
        "8",
        "--interleave",
        "2",
        "--spread",
        "2",
        "--json",
    ];
    let a = bench(&args);
    let b = bench(&args);
    assert_eq!(a.stdout, b.stdout);
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(v["completed"], true);
    assert!(
        v["lost_on_wire"].as_u64().unwrap() > 0,
        "bursty must lose packets: {v}"
    );
    // another seed meets another network
    let c = bench(&[
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

#[test]
fn perfect_profile_is_bit_exact_and_reports_fec_overhead() {
    let out = bench(&[
        "--profile",
        "perfect",
        "--duration",
        "3",
        "--fec",
        "8,2",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["bit_exact_fraction"], 1.0);
    assert_eq!(v["residual_loss"], 0.0);
    assert!((v["overhead"].as_f64().unwrap() - 0.25).abs() < 0.01);
}

#[test]
fn sweep_reports_each_setting_and_draws_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("sweep.svg");
    let out = bench(&[
        "--profile",
        "lan",
        "--duration",
        "4",
        "--sweep",
        "--sweep-loss",
        "0,10",
        "--sweep-fec",
        "off;8,2",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    // at 10 % loss FEC 8,2 leaves far less residual loss than no FEC
    let off = rows[1]["residual_loss"].as_f64().unwrap();
    let fec = rows[3]["residual_loss"].as_f64().unwrap();
    assert!(off > 0.05 && fec < off / 2.0, "off {off}, fec {fec}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.contains("FEC 8,2"));
}

#[test]
fn a_plot_of_one_session_shows_the_watermarks() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("t.svg");
    bench(&[
        "--profile",
        "wifi",
        "--duration",
        "3",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("high-water mark") && text.contains("low-water mark"));
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
