//! The memory budget end to end: the real `isostream recv` plays a real program sent by
//! `isostream send` while another socket throws 300,000 crafted datagrams at it (media of
//! unknown SSRCs, descriptions asking for huge layouts, repair packets, RTCP, junk). The WAV
//! it writes is exact, and its peak RSS (VmHWM, read from /proc while it runs, the last
//! reading just before it exits) stays within the budget plus the peak of the same stream
//! without the flood (the baseline, measured here).
//!
//! Run with `cargo test --test memory_budget -- --nocapture` to see the figures
//! (docs/BENCHMARKS.md).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use isostream_media::{Program, SampleFormat};
use isostream_transport::fec::RepairHeader;
use isostream_transport::rtcp::{self, SessionDesc, SubstreamDesc};
use isostream_transport::rtp::{self, RtpHeader};

/// The receiver's budget in the test, in MiB (the smallest allowed: the tightest bound).
const BUDGET_MIB: u64 = 16;
/// Crafted datagrams thrown at the receiver during the stream.
const FLOOD: u64 = 300_000;
/// Length of the program, in s.
const SECONDS: usize = 20;

/// The peak resident set of process `pid` so far (VmHWM), in bytes.
fn vm_hwm(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Watches `pid`'s VmHWM every 20 ms until `stop`; the latest reading is in `peak`.
fn watch_peak(
    pid: u32,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match vm_hwm(pid) {
                Some(b) => peak.fetch_max(b, Ordering::Relaxed),
                None => break, // it has exited
            };
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// A crafted datagram (`r`: a random number, `rng` for more).
fn crafted(rng: &mut SplitMix) -> Vec<u8> {
    let r = rng.next_u64();
    let ssrc = (r >> 32) as u32;
    let mut b = BytesMut::new();
    match r % 8 {
        // media of an unknown SSRC, of any size up to the MTU
        0..=2 => {
            RtpHeader {
                marker: false,
                payload_type: [rtp::PT_L16, rtp::PT_L24, rtp::PT_F32][(r >> 8) as usize % 3],
                seq: r as u16,
                timestamp: (r >> 16) as u32,
                ssrc,
            }
            .write(&mut b);
            let len = (r >> 24) as usize % 1400;
            b.resize(b.len() + len, r as u8);
        }
        // a description asking for up to 32 substreams of 255 channels of f32 (at 768 kHz,
        // or a plausible 48 kHz)
        3 => {
            let n = 1 + (r >> 8) as usize % 32;
            let d = SessionDesc {
                codec: 0,
                rate: if r & 0x100 == 0 { 768_000 } else { 48_000 },
                format: SampleFormat::F32.code(),
                packet_frames: 240,
                interleave: 1 + (r >> 12) as u8 % 4,
                fec_k: 8,
                fec_m: 2,
                spread: 1,
                live: r & 0x200 == 0,
                substreams: (0..n)
                    .map(|i| SubstreamDesc {
                        ssrc: ssrc.wrapping_add(i as u32),
                        ts_base: 0,
                        channels: 255,
                        rtx_ssrc: Some(ssrc ^ 0xffff_0000),
                    })
                    .collect(),
            };
            rtcp::write_desc(&mut b, ssrc, &d);
        }
        // a repair packet of an unknown SSRC
        4 => {
            let shard_len = 16 + (r >> 40) as u16 % 1200;
            RepairHeader {
                seq: r as u16,
                timestamp: (r >> 16) as u32,
                ssrc,
                base_seq: (r >> 8) as u16,
                k: 8,
                m: 2,
                index: (r >> 20) as u8 % 2,
                shard_len,
            }
            .write(&mut b);
            b.resize(b.len() + shard_len as usize, 0x5a);
        }
        // RTCP of an unknown SSRC: BYE
        5 => rtcp::write_bye(&mut b, ssrc),
        // junk
        _ => {
            let len = (r >> 8) as usize % 1500;
            let mut v = vec![0u8; len];
            rng.fill(&mut v);
            return v;
        }
    }
    b.to_vec()
}

/// The description the audit found: 32 substreams of 255 channels of f32 at 768 kHz.
fn huge_desc(ssrc: u32) -> Vec<u8> {
    let d = SessionDesc {
        codec: 0,
        rate: 768_000,
        format: SampleFormat::F32.code(),
        packet_frames: 240,
        interleave: 1,
        fec_k: 8,
        fec_m: 2,
        spread: 1,
        live: false,
        substreams: (0..32)
            .map(|i| SubstreamDesc {
                ssrc: ssrc + i,
                ts_base: 0,
                channels: 255,
                rtx_ssrc: None,
            })
            .collect(),
    };
    let mut b = BytesMut::new();
    rtcp::write_desc(&mut b, ssrc, &d);
    b.to_vec()
}

/// Throws `n` crafted datagrams at `to`, about 30 per ms, until done or `stop`.
fn flood(to: SocketAddr, n: u64, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut rng = SplitMix(0xf100d);
        let t0 = Instant::now();
        let mut sent = 0;
        while sent < n && !stop.load(Ordering::Relaxed) {
            for _ in 0..300 {
                let _ = s.send_to(&crafted(&mut rng), to);
                sent += 1;
            }
            // 300 every 10 ms
            let due = t0 + Duration::from_millis(sent / 30);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        sent
    })
}

/// What one run measured.
struct Run {
    peak_bytes: u64,
    flood_sent: u64,
    receiver: serde_json::Value,
}

/// The binary to run: this build's, or (`before`) an older one without the budget, whose
/// path `ISOSTREAM_BEFORE_BIN` names.
fn start(before: Option<&str>, name: &str, args: &[String]) -> Proc {
    let mut c = std::process::Command::new(before.unwrap_or(BIN));
    // an older binary knows no --memory-budget-mib
    let mut args = args.to_vec();
    if before.is_some() {
        if let Some(i) = args.iter().position(|a| a == "--memory-budget-mib") {
            args.drain(i..i + 2);
        }
    }
    c.args(&args);
    spawn_command(name, c)
}

/// Streams the program from `input` (`want`: its frames) to a receiver with the budget,
/// throwing `flood_n` crafted datagrams at it once its session has started (`before`: with
/// an older binary, see [`start`]).
fn run(
    dir: &Path,
    input: &Path,
    want: &[u8],
    flood_n: u64,
    name: &str,
    before: Option<&str>,
) -> Run {
    let out = dir.join(format!("{name}.wav"));
    let rstats = dir.join(format!("{name}-recv.json"));
    let sstats = dir.join(format!("{name}-send.json"));
    let addr = free_addr();
    let budget = BUDGET_MIB.to_string();
    let mut recv = start(
        before,
        "recv",
        &recv_args(
            addr,
            out.to_str().unwrap(),
            &rstats,
            &["--memory-budget-mib", &budget],
        ),
    );
    wait_until_bound(addr.port(), "isostream recv");
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let watcher = watch_peak(recv.id(), stop.clone(), peak.clone());
    if flood_n > 0 {
        // before the stream: descriptions far beyond the budget, refused (and said why)
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..100 {
            s.send_to(&huge_desc(0xdead_0000 + 64 * i), addr).unwrap();
        }
        if before.is_none() {
            recv.wait_for_output("memory budget", CHILD_TIMEOUT);
        }
    }
    let send = start(
        before,
        "send",
        &send_args(
            input,
            addr,
            &sstats,
            &["--fec", "8,2", "--memory-budget-mib", &budget],
        ),
    );
    recv.wait_for_output("session of", CHILD_TIMEOUT);
    let flooder = flood(addr, flood_n, stop.clone());
    send.wait_ok(CHILD_TIMEOUT * 2);
    let r = recv.wait_ok(CHILD_TIMEOUT);
    stop.store(true, Ordering::Relaxed);
    let flood_sent = flooder.join().unwrap();
    watcher.join().unwrap();
    let spec = spec(48_000, 2, SampleFormat::S16);
    if before.is_some() {
        // the figures only: an older binary may not keep the stream whole
        return Run {
            peak_bytes: peak.load(Ordering::Relaxed),
            flood_sent,
            receiver: read_json(&rstats)["receiver"].clone(),
        };
    }
    assert_wav_exact(&out, spec, want, name);
    let j = read_json(&rstats);
    assert_eq!(
        count(&j, &["sessions_refused"]),
        0,
        "{name}: recv stderr:\n{}",
        r.stderr
    );
    Run {
        peak_bytes: peak.load(Ordering::Relaxed),
        flood_sent,
        receiver: j["receiver"].clone(),
    }
}

#[test]
fn a_flood_of_crafted_datagrams_keeps_the_receiver_within_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(48_000, 2, SampleFormat::S16);
    let (input, want) = make_input(
        dir.path(),
        "in.wav",
        Program::Mixed,
        spec,
        SECONDS * 48_000,
        7,
    );
    let base = run(dir.path(), &input, &want, 0, "baseline", None);
    let flooded = run(dir.path(), &input, &want, FLOOD, "flooded", None);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let budget = BUDGET_MIB << 20;
    let r = &flooded.receiver;
    assert_eq!(count(r, &["sessions_over_budget"]), 100);
    println!(
        "memory budget {BUDGET_MIB} MiB: baseline peak RSS {:.1} MiB; with {} crafted datagrams {:.1} MiB (+{:.1} MiB); \
         refused over budget {}, foreign {}, malformed {}, not kept {}",
        mib(base.peak_bytes),
        flooded.flood_sent,
        mib(flooded.peak_bytes),
        mib(flooded.peak_bytes.saturating_sub(base.peak_bytes)),
        count(r, &["sessions_over_budget"]),
        count(r, &["datagrams_foreign"]),
        count(r, &["datagrams_malformed"]),
        count(r, &["datagrams_not_kept"]),
    );
    assert!(base.peak_bytes > 0 && flooded.peak_bytes > 0);
    assert_eq!(
        flooded.flood_sent, FLOOD,
        "the stream ended before the flood did"
    );
    assert!(
        flooded.peak_bytes <= base.peak_bytes + budget,
        "peak RSS {:.1} MiB beyond the baseline {:.1} MiB + the budget {BUDGET_MIB} MiB",
        mib(flooded.peak_bytes),
        mib(base.peak_bytes)
    );
    // the flood was seen (what the kernel did not drop) and did not end the receiver
    assert!(count(r, &["datagrams_foreign"]) + count(r, &["datagrams_malformed"]) > FLOOD / 4);
    assert_eq!(count(r, &["frames_played"]), want.len() as u64 / 4);
    assert_eq!(count(&base.receiver, &["datagrams_foreign"]), 0);
    compare_with_an_older_binary(dir.path(), &input, &want);
}

/// With `ISOSTREAM_BEFORE_BIN=/path/to/old/isostream` set, the same flood is also thrown
/// at that older binary (one without the budget) and its figures printed, for
/// docs/BENCHMARKS.md; nothing is asserted of it.
fn compare_with_an_older_binary(dir: &Path, input: &Path, want: &[u8]) {
    let Ok(bin) = std::env::var("ISOSTREAM_BEFORE_BIN") else {
        return;
    };
    let base = run(dir, input, want, 0, "before-baseline", Some(&bin));
    let flooded = run(dir, input, want, FLOOD, "before-flooded", Some(&bin));
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let exact = isostream_media::read_wav_all(dir.join("before-flooded.wav"))
        .is_ok_and(|(_, got)| got == want);
    println!(
        "{bin}: baseline peak RSS {:.1} MiB; with {} crafted datagrams {:.1} MiB; flooded output exact: {exact}",
        mib(base.peak_bytes),
        flooded.flood_sent,
        mib(flooded.peak_bytes),
    );
}
