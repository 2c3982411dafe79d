//! Loss protection through the real sender and receiver sessions, in virtual time: residual
//! loss against the MDS bound, and a 30 ms burst turned into reduced temporal resolution.
//! Every test compares the output audio with the input: what FEC rebuilt is bit-exact in
//! place, and only what it could not rebuild differs.

mod common;

use common::{differing_frames, differing_packets, losses_needed, mds_residual, runs, stereo};
use isostream::sim::{self, MemorySource, SimResult};
use isostream_media::{compare, synthesize, AudioSpec, Program, SampleFormat};
use isostream_netsim::{LinkConfig, LossModel, Outages, Profile};
use isostream_receiver::ReceiverConfig;
use isostream_sender::SenderConfig;
use isostream_transport::fec::FecParams;
use isostream_transport::time::Duration;

fn profile(forward: LinkConfig) -> Profile {
    Profile {
        name: "test".into(),
        description: String::new(),
        source: String::new(),
        forward,
        reverse: LinkConfig::default(),
    }
}

fn run(cfg: SenderConfig, input: &[u8], p: &Profile, seed: u64) -> SimResult {
    let mut src = MemorySource::new(input, cfg.spec.frame_bytes());
    let audio = input.len() / cfg.spec.frame_bytes() / cfg.spec.rate as usize;
    sim::run(
        cfg,
        ReceiverConfig::default(),
        p,
        seed,
        &mut src,
        Duration::from_secs(audio as u64 * 2 + 30),
    )
    .unwrap()
}

#[test]
fn residual_loss_after_fec_matches_the_mds_bound_at_5_and_10_percent() {
    // 8 kHz mono keeps 100,000 packets of 5 ms cheap to simulate
    let spec = AudioSpec {
        rate: 8_000,
        channels: 1,
        format: SampleFormat::S16,
    };
    let packets = 100_000usize;
    let input = synthesize(Program::Sine { hz: 440.0 }, spec, packets * 40, 1);
    for (p, seed) in [(0.05, 11), (0.10, 12)] {
        let mut cfg = SenderConfig::new(spec);
        // FEC alone: what these tests measure
        cfg.retransmission = None;
        cfg.fec = Some(FecParams::new(8, 2).unwrap());
        let link = LinkConfig {
            loss: LossModel::Bernoulli { p },
            ..LinkConfig::default()
        };
        let r = run(cfg, &input, &profile(link), seed);
        assert!(r.completed);
        let expected = r.receiver.substreams[0].packets_expected as f64;
        assert!(expected >= 99_900.0, "{expected}");
        let measured = r.receiver.packets_unrecoverable as f64 / expected;
        // a source packet stays lost iff its block of 10 lost more than m = 2 packets (any
        // 8 of 10 rebuild the block). Losses are independent per packet but come in whole
        // blocks: the standard error is that of the mean of the per-block counts.
        let (bound, block_sd) = mds_residual(8, 2, p);
        let blocks = expected / 8.0;
        let se = block_sd / blocks.sqrt() / 8.0;
        eprintln!("loss {p}: residual {measured:.5}, MDS bound {bound:.5}, se {se:.5}");
        assert!(
            (measured - bound).abs() < 4.0 * se,
            "loss {p}: residual {measured:.5} vs MDS bound {bound:.5} (4 se = {:.5})",
            4.0 * se
        );
        // what was not rebuilt was concealed, never skipped: the timeline did not slip
        assert_eq!(r.output.len(), input.len());
        // and the audio: every packet that arrived or was rebuilt is bit-exact in place.
        // Only an unrecoverable packet differs, and the start of the packet after it (the
        // 3 ms fade back in from concealment)
        let unrec = r.receiver.packets_unrecoverable as usize;
        let bad = differing_packets(&input, &r.output, 2, 40);
        assert!(
            losses_needed(&bad, 1) <= unrec,
            "loss {p}: {} packets differ from the input in {} places, which takes at least {} lost packets, but only {unrec} were unrecoverable ({} rebuilt)",
            bad.len(),
            runs(&bad),
            losses_needed(&bad, 1),
            r.receiver.packets_rebuilt
        );
        assert!(bad.len() >= unrec / 2, "{} differ, {unrec} lost", bad.len());
        assert!(
            r.receiver.packets_rebuilt as f64 > expected * (p - bound) * 0.9,
            "{:?}",
            r.receiver
        );
    }
}

#[test]
fn a_30ms_burst_with_interleave_4_and_spread_only_reduces_temporal_resolution() {
    let spec = stereo();
    let input = synthesize(Program::Music, spec, 48_000 * 4, 5);
    for at_ms in [1000.0, 1502.5, 2217.0] {
        let mut cfg = SenderConfig::new(spec);
        // FEC alone: what these tests measure
        cfg.retransmission = None;
        cfg.interleave = 4;
        cfg.spread = 4;
        let link = LinkConfig {
            outages: Some(Outages {
                duration_ms: 30.0,
                rate_per_min: 0.0,
                at_ms: vec![at_ms],
            }),
            ..LinkConfig::default()
        };
        let r = run(cfg, &input, &profile(link), 1);
        assert!(r.completed);
        assert!(
            r.forward.dropped_outage >= 5,
            "the burst must hit: {:?}",
            r.forward
        );
        assert_eq!(r.output.len(), input.len());
        let c = compare(&input, &r.output, spec);
        // never silence: no gap of 10 ms or more, and nothing was concealed by repetition
        assert!(c.gaps.is_empty(), "gaps {:?}", c.gaps);
        assert_eq!(r.receiver.frames_concealed, 0, "{:?}", r.receiver);
        // whatever FEC could not rebuild was interpolated (every 4th sample), so the damage is
        // reduced temporal resolution: the whole clip keeps an SNR above 30 dB
        assert!(c.snr_db > 30.0, "SNR {:.1} dB at {at_ms} ms", c.snr_db);
        // and in place: only the frames of unrecoverable packets differ (each carried every
        // 4th frame of a group of 4 x 240), all near the burst; everything FEC rebuilt and
        // everything that arrived is bit-exact where it belongs
        let fb = spec.frame_bytes();
        let bad = differing_frames(&input, &r.output, fb);
        let unrec = r.receiver.packets_unrecoverable as usize;
        eprintln!(
            "burst at {at_ms} ms: {unrec} packets unrecoverable, {} frames differ",
            bad.len()
        );
        assert!(
            bad.len() <= unrec * 240,
            "at {at_ms} ms: {} frames differ, {unrec} packets unrecoverable",
            bad.len()
        );
        // the burst's packets: transmission spreads 4 blocks (160 ms of audio)
        let near = |f: usize| (f as f64 / 48.0 - at_ms).abs() < 300.0;
        assert!(
            bad.iter().all(|&f| near(f)),
            "at {at_ms} ms: frames far from the burst differ: {:?}",
            bad.iter()
                .filter(|&&f| !near(f))
                .take(5)
                .collect::<Vec<_>>()
        );
        if unrec > 0 {
            assert!(!bad.is_empty(), "unrecoverable packets left no trace?");
            // interpolated frames are every 4th one: never two neighbours
            assert!(
                bad.windows(2).all(|w| w[1] - w[0] >= 2),
                "at {at_ms} ms: {bad:?}"
            );
        }
    }
}

#[test]
fn without_interleaving_the_same_burst_is_concealed() {
    let spec = stereo();
    let input = synthesize(Program::Music, spec, 48_000 * 3, 5);
    let link = LinkConfig {
        outages: Some(Outages {
            duration_ms: 30.0,
            rate_per_min: 0.0,
            at_ms: vec![1000.0],
        }),
        ..LinkConfig::default()
    };
    let mut cfg = SenderConfig::new(spec);
    // FEC alone: what these tests measure
    cfg.retransmission = None;
    cfg.fec = None;
    let r = run(cfg, &input, &profile(link), 1);
    assert!(r.receiver.frames_concealed >= 48 * 25, "{:?}", r.receiver);
    assert_eq!(r.receiver.frames_interpolated, 0);
    assert_eq!(r.output.len(), input.len());
    // the concealed stretch is the burst's (plus the 3 ms fade back in): the rest is exact
    let bad = differing_frames(&input, &r.output, spec.frame_bytes());
    assert!(!bad.is_empty());
    let (first, last) = (bad[0] as f64 / 48.0, *bad.last().unwrap() as f64 / 48.0);
    assert!(
        first >= 990.0 && last <= 1_000.0 + 30.0 + 5.0 + 3.0 + 10.0,
        "frames differ from {first:.1} ms to {last:.1} ms; the burst was 1000..1030 ms"
    );
    assert!(
        bad.len() as u64 <= r.receiver.frames_concealed + 48 * 3,
        "{} frames differ, {} concealed",
        bad.len(),
        r.receiver.frames_concealed
    );
}
