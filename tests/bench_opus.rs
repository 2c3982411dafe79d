//! `bench --codec opus` against `bench --codec l16` with the same profile, seed, FEC and
//! retransmission settings: what each codec costs on the wire, how late it plays, and how
//! much of the program the network damaged, judged from the audio out against the audio
//! in the same way for both (`damaged_program_ms`: 20 ms windows under 10 dB against the
//! clean reference, the input for L16 and the local Opus encode and decode for Opus).
#![cfg(feature = "opus")]

mod common;

use common::bench_ok;
use serde_json::Value;

/// `bench --json` with `args`, parsed.
fn bench(args: &[&str]) -> Value {
    serde_json::from_slice(&bench_ok(args).stdout).expect("bench --json writes JSON")
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key}: not a number in {v}"))
}

#[test]
fn under_bursty_with_fec_and_retransmission_opus_damages_no_more_of_the_program_than_l16() {
    for seed in ["1", "2", "3"] {
        let run = |codec: &str| {
            bench(&[
                "--profile",
                "bursty",
                "--seed",
                seed,
                "--duration",
                "12",
                "--fec",
                "8,2",
                "--codec",
                codec,
                "--json",
            ])
        };
        let (l16, opus) = (run("l16"), run("opus"));
        for (name, r) in [("l16", &l16), ("opus", &opus)] {
            assert_eq!(r["codec"], name);
            assert_eq!(r["completed"], true, "{name}: {r}");
            assert_eq!(r["fec"], "8,2");
            // the comparison means something only if the network did damage both streams
            // and both mechanisms had work to do
            assert!(
                num(r, "packets_lost") > 0.0 && num(r, "packets_rebuilt") > 0.0,
                "{name}, seed {seed}: {r}"
            );
            assert!(num(r, "packets_retransmitted") > 0.0, "{name}: {r}");
        }
        let (dl, dop) = (
            num(&l16, "damaged_program_ms"),
            num(&opus, "damaged_program_ms"),
        );
        eprintln!(
            "bursty seed {seed}: damaged program L16 {dl} ms, Opus {dop} ms; wire {} vs {} bytes",
            l16["wire_bytes"], opus["wire_bytes"]
        );
        assert!(
            dop <= dl,
            "seed {seed}: Opus damaged {dop} ms of the program, L16 {dl} ms"
        );
        // Opus at its default bitrate: at most 0.15x the bytes of raw PCM, FEC,
        // retransmissions and RTCP included
        assert!(num(&opus, "wire_to_pcm_ratio") <= 0.15, "{opus}");
        assert_eq!(num(&opus, "pcm_bytes"), num(&l16, "pcm_bytes"));
    }
}

#[test]
fn the_opus_report_states_bitrate_latency_and_codec_loss_apart_from_network_damage() {
    let r = bench(&[
        "--profile",
        "perfect",
        "--duration",
        "4",
        "--codec",
        "opus",
        "--bitrate",
        "96000",
        "--frame-ms",
        "10",
        "--json",
    ]);
    assert_eq!(r["codec"], "opus");
    assert_eq!(r["codec_bits_per_s"], 96_000);
    assert_eq!(num(&r, "packet_ms"), 10.0);
    // libopus' lookahead for Application::Audio at 48 kHz: 312 frames
    assert_eq!(num(&r, "codec_lookahead_ms"), 6.5);
    let total = num(&r, "modelled_total_latency_ms");
    let want = num(&r, "modelled_latency_ms") + 10.0 + 6.5;
    assert!((total - want).abs() < 1e-6, "{total} vs {want}");
    // a clean link: the output is the local encode and decode, bit for bit; all the loss
    // against the original is the codec's
    assert_eq!(num(&r, "bit_exact_fraction"), 1.0, "{r}");
    assert!(r["snr_db"].is_null(), "{r}");
    assert_eq!(num(&r, "damaged_program_ms"), 0.0);
    let codec = num(&r, "codec_snr_db");
    assert!(codec > 3.0 && codec < 40.0, "{codec}");
    assert_eq!(num(&r, "original_snr_db"), codec);
    // on the wire: 96 kb/s plus RTP/UDP/IP headers and RTCP, both ways
    let kbps = num(&r, "wire_bits_per_s") / 1000.0;
    assert!(kbps > 96.0 && kbps < 96.0 * 1.4, "{kbps} kb/s");
    let ratio = num(&r, "wire_to_pcm_ratio");
    assert!(
        (ratio - num(&r, "wire_bytes") / num(&r, "pcm_bytes")).abs() < 1e-9 && ratio < 0.1,
        "{ratio}"
    );

    let l16 = bench(&["--profile", "perfect", "--duration", "4", "--json"]);
    assert_eq!(l16["codec"], "l16");
    assert_eq!(l16["codec_bits_per_s"], 1_536_000);
    assert_eq!(num(&l16, "codec_lookahead_ms"), 0.0);
    assert!(l16["codec_snr_db"].is_null() && l16["original_snr_db"].is_null());
}

#[test]
fn live_opus_with_5_ms_frames_plays_within_the_budget_plus_network_frame_and_lookahead() {
    // lan: base delay 0.2 ms, jitter sd 0.05 ms; the receiver's latency budget 60 ms
    let (budget_ms, network_ms) = (60.0, 0.2 + 0.5);
    for seed in ["1", "2"] {
        let r = bench(&[
            "--profile",
            "lan",
            "--seed",
            seed,
            "--duration",
            "10",
            "--codec",
            "opus",
            "--frame-ms",
            "5",
            "--latency",
            "60",
            "--json",
        ]);
        assert_eq!(num(&r, "packet_ms"), 5.0, "5 ms Opus frames");
        let lookahead_ms = num(&r, "codec_lookahead_ms");
        assert!((6.0..=7.0).contains(&lookahead_ms), "{lookahead_ms}");
        // the bench times each media position from its capture to its playout; the decoded
        // audio at a position is the encoder's input one lookahead earlier, so the sound
        // itself is that much later
        let c2p = &r["capture_to_playout_ms"];
        let max = c2p["max"].as_f64().expect("capture_to_playout_ms.max") + lookahead_ms;
        let min = c2p["min"].as_f64().expect("capture_to_playout_ms.min") + lookahead_ms;
        let bound = budget_ms + network_ms + 5.0 + lookahead_ms;
        eprintln!("live opus 5 ms, seed {seed}: capture to playout {min:.1}..{max:.1} ms, bound {bound:.1} ms");
        assert!(
            max <= bound,
            "capture to playout up to {max:.1} ms, bound {bound:.1} ms"
        );
        assert!(
            min >= budget_ms,
            "the budget is used, not undercut: {min:.1} ms"
        );
    }
}
