//! The sans-IO sessions over a perfect simulated link reproduce the input exactly.

use isostream::sim::{self, MemorySource};
use isostream_media::{synthesize, AudioSpec, Program, SampleFormat};
use isostream_receiver::ReceiverConfig;
use isostream_sender::{SenderConfig, Speed};
use isostream_transport::impair::Profile;
use isostream_transport::time::Duration;

fn spec(rate: u32, channels: u16) -> AudioSpec {
    AudioSpec {
        rate,
        channels,
        format: SampleFormat::S16,
    }
}

#[test]
fn perfect_link_reproduces_stereo_48k_exactly() {
    let s = spec(48_000, 2);
    let input = synthesize(Program::Music, s, 48_000 * 3 + 77, 1);
    let mut src = MemorySource::new(&input, s.frame_bytes());
    let r = sim::run(
        SenderConfig::new(s),
        ReceiverConfig::default(),
        &Profile::builtin("perfect").unwrap(),
        1,
        &mut src,
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(r.completed);
    assert_eq!(r.output.len(), input.len());
    assert!(r.output == input);
}

#[test]
fn speed_max_pauses_and_resumes_and_stays_exact() {
    let s = spec(44_100, 1);
    let input = synthesize(Program::Speech, s, 44_100 * 10, 2);
    let mut src = MemorySource::new(&input, s.frame_bytes());
    let mut cfg = SenderConfig::new(s);
    cfg.speed = Speed::Max;
    let r = sim::run(
        cfg,
        ReceiverConfig::default(),
        &Profile::builtin("lan").unwrap(),
        3,
        &mut src,
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(r.completed);
    assert!(
        r.sender.pauses >= 1 && r.sender.resumes >= 1,
        "{:?}",
        r.sender
    );
    assert!(r.output == input);
}
