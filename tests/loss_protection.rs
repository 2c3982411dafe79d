//! Loss protection through the real sender and receiver sessions, in virtual time: residual
//! loss against the MDS bound, and a 30 ms burst turned into reduced temporal resolution.

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

/// P(X >= k) for X ~ Binomial(n, p).
fn binom_tail(n: u32, p: f64, k: u32) -> f64 {
    let mut c = 1.0f64;
    let mut total = 0.0;
    for j in 0..=n {
        if j > 0 {
            c = c * (n - j + 1) as f64 / j as f64;
        }
        if j >= k {
            total += c * p.powi(j as i32) * (1.0 - p).powi((n - j) as i32);
        }
    }
    total
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
        cfg.fec = Some(FecParams::new(8, 2).unwrap());
        let link = LinkConfig {
            loss: LossModel::Bernoulli { p },
            ..LinkConfig::default()
        };
        let r = run(cfg, &input, &profile(link), seed);
        assert!(r.completed);
        let expected = r.receiver.substreams[0].packets_expected as f64;
        assert!(expected >= 99_900.0, "{expected}");
        let measured = r.receiver.unrecoverable as f64 / expected;
        eprintln!(
            "loss {p}: residual {measured:.5}, MDS bound {:.5}",
            p * binom_tail(9, p, 2)
        );
        // a source packet stays lost iff it is lost and at least m = 2 of the other 9
        // packets of its block are lost too (any 8 of 10 rebuild the block)
        let bound = p * binom_tail(9, p, 2);
        // losses are independent per packet but counted per block: allow for the block
        // correlation by taking the standard error of the per-block count, x 4
        let blocks = expected / 8.0;
        let per_block_sd = (8.0 * bound * (1.0 - bound)).sqrt() * 3.0;
        let se = per_block_sd * blocks.sqrt() / expected;
        assert!(
            (measured - bound).abs() < 4.0 * se,
            "loss {p}: residual {measured:.5} vs MDS bound {bound:.5} (4 se = {:.5})",
            4.0 * se
        );
        // what was not rebuilt was concealed, never skipped: the timeline did not slip
        assert_eq!(r.output.len(), input.len());
    }
}

#[test]
fn a_30ms_burst_with_interleave_4_and_spread_only_reduces_temporal_resolution() {
    let spec = AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    let input = synthesize(Program::Music, spec, 48_000 * 4, 5);
    for at_ms in [1000.0, 1502.5, 2217.0] {
        let mut cfg = SenderConfig::new(spec);
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
    }
}

#[test]
fn without_interleaving_the_same_burst_is_concealed() {
    let spec = AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
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
    cfg.fec = None;
    let r = run(cfg, &input, &profile(link), 1);
    assert!(r.receiver.frames_concealed >= 48 * 25, "{:?}", r.receiver);
    assert_eq!(r.receiver.frames_interpolated, 0);
    assert_eq!(r.output.len(), input.len());
}
