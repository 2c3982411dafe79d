//! The simulator and the real network stack agree: residual loss from `isostream bench`
//! matches a real-time run of `send | impair | recv` on the same profile within statistical
//! error, and the audio the real receiver played is the input wherever FEC rebuilt it.

mod common;

use common::*;
use isostream_media::{synthesize, write_wav_all, AudioSpec, Program, SampleFormat};

fn residual(json: &serde_json::Value) -> f64 {
    json["residual_loss"].as_f64().expect("residual_loss")
}

#[test]
fn bench_and_real_time_relay_agree_on_residual_loss() {
    let dir = tempfile::tempdir().unwrap();
    // 10 % independent loss on media, a clean control path
    let profile = dir.path().join("lossy.toml");
    std::fs::write(
        &profile,
        "name = \"lossy\"\n[forward.loss]\nmodel = \"bernoulli\"\np = 0.10\n[reverse]\n",
    )
    .unwrap();
    let spec = AudioSpec {
        rate: 8_000,
        channels: 1,
        format: SampleFormat::S16,
    };
    let seconds = 30;
    let wav = dir.path().join("in.wav");
    write_wav_all(
        &wav,
        spec,
        &synthesize(Program::Speech, spec, 8_000 * seconds, 3),
    )
    .unwrap();

    // simulated
    let out = bench_ok(&[
        wav.to_str().unwrap(),
        "--profile",
        profile.to_str().unwrap(),
        "--json",
        "--seed",
        "5",
        // FEC alone, against its MDS bound
        "--retransmission",
        "off",
        "--fec",
        "8,2",
    ]);
    let sim: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // real time, real sockets: send -> impair -> recv
    let (rp, ip) = (free_port(), free_port());
    let stats = dir.path().join("recv.json");
    let out = dir.path().join("out.wav");
    let recv = spawn(
        "recv",
        &[
            "recv",
            "--listen",
            &format!("127.0.0.1:{rp}"),
            "--out",
            out.to_str().unwrap(),
            "--low-water",
            "100",
            "--high-water",
            "40000",
            "--stats-json",
            stats.to_str().unwrap(),
        ],
    );
    let relay = spawn_impair(ip, rp, profile.to_str().unwrap(), 9, 120);
    wait_until_bound(rp, "isostream recv");
    let input = synthesize(Program::Speech, spec, 8_000 * seconds, 3);
    let send = spawn(
        "send",
        &[
            "send",
            wav.to_str().unwrap(),
            "--to",
            &format!("127.0.0.1:{ip}"),
            "--speed",
            "16",
            "--retransmission",
            "off",
            "--fec",
            "8,2",
        ],
    );
    send.wait_ok(CHILD_TIMEOUT);
    // everything has arrived once the relay and the receiver have read all that the kernel
    // queued for them; the receiver would take the clip's length to play it out, so stop it
    // with Ctrl-C (SIGINT), which writes its stats and finalizes its WAV
    wait_until_drained(&[ip, rp], CHILD_TIMEOUT);
    recv.interrupt();
    let r = recv.wait_ok(CHILD_TIMEOUT);
    drop(relay);
    // Ctrl-C left a readable WAV holding what was played so far: the start of the input,
    // exact in every packet FEC rebuilt or that arrived; only an unrecoverable packet (and
    // the 3 ms fade back in after its concealment, inside the next 5 ms packet) may differ
    let (got_spec, frames) = isostream_media::read_wav_all(&out).unwrap();
    assert_eq!(got_spec, spec);
    let fb = spec.frame_bytes();
    assert!(
        frames.len() / fb >= 8_000 / 2 && frames.len() <= input.len(),
        "{} frames played before Ctrl-C; recv stderr:\n{}",
        frames.len() / fb,
        r.stderr
    );
    let real: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let real_residual = real["receiver"]["residual_loss"].as_f64().unwrap();
    let unrecoverable = real["receiver"]["packets_unrecoverable"].as_u64().unwrap() as usize;
    let rebuilt = real["receiver"]["packets_rebuilt"].as_u64().unwrap() as usize;
    assert!(rebuilt > 0, "FEC rebuilt nothing: {real}");
    let bad = differing_packets(&input, &frames, fb, 40);
    assert!(
        bad.len() <= 2 * unrecoverable,
        "{} of {} played packets differ from the input, but only {unrecoverable} packets were unrecoverable ({rebuilt} rebuilt): first at {:?}",
        bad.len(),
        frames.len() / fb / 40,
        &bad[..bad.len().min(10)]
    );
    let sim_residual = residual(&sim);
    // MDS bound for FEC 8,2 at 10 %: 0.1 x P(Bin(9, 0.1) >= 2) = 2.25 %. Each run has
    // 6,000 media packets in 750 blocks; the per-run standard error of the residual is about
    // 0.35 % (losses cluster per block), so the difference of two runs has about 0.5 %.
    let bound = 0.0225;
    for (what, r) in [("bench", sim_residual), ("real time", real_residual)] {
        assert!(
            (r - bound).abs() < 0.015,
            "{what}: residual {r:.4} vs bound {bound}"
        );
    }
    assert!(
        (sim_residual - real_residual).abs() < 0.02,
        "bench {sim_residual:.4} vs real time {real_residual:.4}"
    );
    eprintln!(
        "residual loss: bench {sim_residual:.4}, real time {real_residual:.4}, MDS bound {bound}"
    );
}
