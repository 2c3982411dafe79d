//! Complex streams: several substreams of one session come out sample-aligned, whatever each
//! substream's path does. Checked against the original audio, not the receiver's counters.

use isostream::sim::{self, MemorySource, SimOptions, SimResult};
use isostream_media::{synthesize, AudioSpec, Program, SampleFormat};
use isostream_netsim::{DelayModel, LinkConfig, LossModel, Outages, Profile};
use isostream_receiver::ReceiverConfig;
use isostream_sender::SenderConfig;
use isostream_transport::fec::FecParams;
use isostream_transport::time::Duration;

const RATE: u32 = 48_000;

fn spec(channels: u16) -> AudioSpec {
    AudioSpec {
        rate: RATE,
        channels,
        format: SampleFormat::S16,
    }
}

/// Channel `c` of wire frames with `channels` 16-bit channels.
fn channel(frames: &[u8], channels: usize, c: usize) -> Vec<[u8; 2]> {
    frames
        .chunks_exact(2 * channels)
        .map(|f| [f[2 * c], f[2 * c + 1]])
        .collect()
}

/// The lag (in frames) at which `out` matches `reference` exactly over a 2,000-frame probe
/// taken at `at`, searched within +-200 frames.
fn lag_of(reference: &[[u8; 2]], out: &[[u8; 2]], at: usize) -> Option<i64> {
    let probe = &reference[at..at + 2_000];
    (-200i64..=200).find(|&lag| {
        let s = at as i64 + lag;
        s >= 0 && (s as usize + 2_000) <= out.len() && &out[s as usize..s as usize + 2_000] == probe
    })
}

fn path(base_ms: f64, jitter_ms: f64, loss: f64) -> LinkConfig {
    LinkConfig {
        loss: if loss > 0.0 {
            LossModel::Bernoulli { p: loss }
        } else {
            LossModel::None
        },
        delay: DelayModel {
            base_ms,
            jitter_ms,
            correlation: 0.99,
            ..DelayModel::default()
        },
        ..LinkConfig::default()
    }
}

fn run(cfg: SenderConfig, input: &[u8], paths: Vec<LinkConfig>, seed: u64) -> SimResult {
    let mut src = MemorySource::new(input, cfg.spec.frame_bytes());
    let profile = Profile::builtin("perfect").unwrap();
    let opts = SimOptions {
        substream_paths: Some(paths),
        ..SimOptions::default()
    };
    let rcfg = ReceiverConfig {
        low_water_ms: 150,
        high_water_ms: 600,
        ..ReceiverConfig::default()
    };
    sim::run_with(
        cfg,
        rcfg,
        &profile,
        seed,
        &mut src,
        Duration::from_secs(60),
        &opts,
    )
    .unwrap()
}

#[test]
fn substreams_with_different_delays_jitter_and_loss_come_out_aligned_to_zero_samples() {
    let s = spec(4);
    let input = synthesize(Program::Music, s, RATE as usize * 4, 9);
    let mut cfg = SenderConfig::new(s);
    cfg.substream_channels = vec![1, 1, 1, 1];
    cfg.fec = Some(FecParams::new(8, 4).unwrap());
    let paths = vec![
        path(0.0, 0.0, 0.0),
        path(40.0, 0.0, 0.02),
        path(15.0, 6.0, 0.02),
        path(25.0, 3.0, 0.0),
    ];
    let r = run(cfg, &input, paths, 4);
    assert!(r.completed);
    assert_eq!(r.output.len(), input.len());
    assert_eq!(r.receiver.substreams.len(), 4);
    assert!(
        r.receiver.packets_lost > 0,
        "the lossy paths must lose packets: {:?}",
        r.receiver
    );
    for c in 0..4 {
        let want = channel(&input, 4, c);
        let got = channel(&r.output, 4, c);
        for at in [10_000, 90_000, 170_000] {
            assert_eq!(
                lag_of(&want, &got, at),
                Some(0),
                "channel {c} at frame {at}"
            );
        }
        let exact = want.iter().zip(&got).filter(|(a, b)| a == b).count();
        assert!(
            exact as f64 / want.len() as f64 > 0.99,
            "channel {c}: {exact} exact frames"
        );
    }
    assert_eq!(r.receiver.skew_frames, 0);
}

#[test]
fn a_substream_that_stops_for_500ms_is_concealed_and_resumes_in_place() {
    let s = spec(2);
    let input = synthesize(Program::Music, s, RATE as usize * 4, 3);
    let mut cfg = SenderConfig::new(s);
    cfg.substream_channels = vec![1, 1];
    let stalled = LinkConfig {
        outages: Some(Outages {
            duration_ms: 500.0,
            rate_per_min: 0.0,
            at_ms: vec![1_000.0],
        }),
        ..path(10.0, 0.0, 0.0)
    };
    let r = run(cfg, &input, vec![path(0.0, 0.0, 0.0), stalled], 1);
    assert!(r.completed);
    assert_eq!(r.output.len(), input.len());
    let (a_in, a_out) = (channel(&input, 2, 0), channel(&r.output, 2, 0));
    let (b_in, b_out) = (channel(&input, 2, 1), channel(&r.output, 2, 1));
    // the healthy substream is untouched
    assert!(a_in == a_out, "substream 1 must play exactly");
    // the stalled one is concealed during the stall (not exact there) ...
    let stall = (RATE as usize * 1_100 / 1000)..(RATE as usize * 1_400 / 1000);
    let exact_in_stall = stall.clone().filter(|&i| b_in[i] == b_out[i]).count();
    assert!(
        exact_in_stall < stall.len() / 10,
        "{exact_in_stall} exact frames inside the stall"
    );
    assert!(r.receiver.substreams[1].frames_concealed >= RATE as u64 * 4 / 10);
    assert_eq!(r.receiver.substreams[0].frames_concealed, 0);
    // ... and resumes in place: exact again from shortly after the stall, with 0 skew
    let from = RATE as usize * 1_600 / 1000;
    assert!(
        b_in[from..] == b_out[from..],
        "substream 2 must resume exactly in place"
    );
    assert_eq!(lag_of(&b_in, &b_out, from + 1_000), Some(0));
}

#[test]
fn a_lost_first_description_is_made_good_by_the_next_one() {
    let s = spec(2);
    let input = synthesize(Program::Music, s, RATE as usize * 3, 8);
    let mut cfg = SenderConfig::new(s);
    cfg.substream_channels = vec![1, 1];
    // RTCP takes the profile's forward path: lose the first compound (SR + SDES + DESC)
    let mut profile = Profile::builtin("perfect").unwrap();
    profile.forward.loss = LossModel::Trace {
        pattern: format!("1{}", "0".repeat(100_000)),
        file: None,
        per: Default::default(),
    };
    let opts = SimOptions {
        substream_paths: Some(vec![path(0.0, 0.0, 0.0), path(0.0, 0.0, 0.0)]),
        ..SimOptions::default()
    };
    let mut src = MemorySource::new(&input, s.frame_bytes());
    let r = sim::run_with(
        cfg,
        ReceiverConfig::default(),
        &profile,
        1,
        &mut src,
        Duration::from_secs(30),
        &opts,
    )
    .unwrap();
    assert!(r.completed);
    assert_eq!(r.forward.dropped, 1);
    // the session is the described one: both substreams, all channels, full length
    assert_eq!(r.receiver.substreams.len(), 2);
    assert_eq!(r.output.len(), input.len());
    // substream 1 was adopted with everything received before the description: exact
    assert!(channel(&input, 2, 0) == channel(&r.output, 2, 0));
    // substream 2's packets before the description were foreign; from then on it is exact
    let (b_in, b_out) = (channel(&input, 2, 1), channel(&r.output, 2, 1));
    let from = RATE as usize * 400 / 1000;
    assert!(b_in[from..] == b_out[from..]);
}
