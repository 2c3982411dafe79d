//! The simulator and the real network stack agree: residual loss from `isostream bench`
//! matches a real-time run of `send | impair | recv` on the same profile within statistical
//! error.

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use isostream_media::{synthesize, write_wav_all, AudioSpec, Program, SampleFormat};

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
    let bin = env!("CARGO_BIN_EXE_isostream");

    // simulated
    let out = Command::new(bin)
        .args([
            "bench",
            wav.to_str().unwrap(),
            "--profile",
            profile.to_str().unwrap(),
            "--json",
            "--seed",
            "5",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sim: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // real time, real sockets: send -> impair -> recv
    let (rp, ip) = (free_port(), free_port());
    let stats = dir.path().join("recv.json");
    let mut recv = Command::new(bin)
        .args([
            "recv",
            "--listen",
            &format!("127.0.0.1:{rp}"),
            "--out",
            dir.path().join("out.wav").to_str().unwrap(),
        ])
        .args([
            "--low-water",
            "100",
            "--high-water",
            "40000",
            "--stats-json",
            stats.to_str().unwrap(),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut relay = Command::new(bin)
        .args([
            "impair",
            "--listen",
            &format!("127.0.0.1:{ip}"),
            "--forward",
            &format!("127.0.0.1:{rp}"),
        ])
        .args([
            "--profile",
            profile.to_str().unwrap(),
            "--seed",
            "9",
            "--duration",
            "30",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let send = Command::new(bin)
        .args([
            "send",
            wav.to_str().unwrap(),
            "--to",
            &format!("127.0.0.1:{ip}"),
            "--speed",
            "16",
        ])
        .output()
        .unwrap();
    assert!(
        send.status.success(),
        "{}",
        String::from_utf8_lossy(&send.stderr)
    );
    // everything has arrived shortly after the sender's BYE; the receiver would take the
    // clip's length to play it out, so stop it with Ctrl-C (SIGINT), which writes its stats
    std::thread::sleep(Duration::from_millis(500));
    let int = Command::new("kill")
        .args(["-INT", &recv.id().to_string()])
        .status()
        .unwrap();
    assert!(int.success());
    let t0 = Instant::now();
    while recv.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "recv did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = relay.kill();
    let _ = relay.wait();
    // Ctrl-C left a readable WAV holding what was played so far
    let (got_spec, frames) = isostream_media::read_wav_all(dir.path().join("out.wav")).unwrap();
    assert_eq!(got_spec, spec);
    assert!(!frames.is_empty());
    let real: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let real_residual = real["receiver"]["residual_loss"].as_f64().unwrap();
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
