//! Speed of the media helpers that tests and `bench` lean on (moved here from unit tests,
//! where wall-clock asserts are flaky): signal synthesis in multiples of real time, and the
//! alignment search.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use isostream_media::{find_alignment, synthesize, AudioSpec, Program, SampleFormat, SignalSource};

fn spec(rate: u32, channels: u16) -> AudioSpec {
    AudioSpec {
        rate,
        channels,
        format: SampleFormat::S16,
    }
}

fn synthesis(c: &mut Criterion) {
    let s = spec(48_000, 2);
    let mut g = c.benchmark_group("synthesize_5s_stereo_48k");
    // throughput in audio seconds: "elements/s" is the speed-up over real time
    g.throughput(Throughput::Elements(5));
    for p in [Program::Speech, Program::Music, Program::Mixed] {
        g.bench_function(p.to_string(), |b| {
            let mut src = SignalSource::new(p, s, 3);
            let mut buf = vec![0u8; 48_000 * 5 * s.frame_bytes()];
            b.iter(|| src.read_frames(&mut buf));
        });
    }
    g.finish();
}

fn alignment(c: &mut Criterion) {
    let s = spec(48_000, 2);
    let fb = s.frame_bytes();
    let x = synthesize(Program::Speech, s, 48_000 * 10, 11);
    let mut y = synthesize(Program::Music, s, 1234, 5);
    y.extend_from_slice(&x[..x.len() - 1234 * fb]);
    let mut g = c.benchmark_group("find_alignment_10s_stereo_48k");
    g.sample_size(10);
    g.bench_function("lag_1234_search_1s", |b| {
        b.iter(|| assert_eq!(find_alignment(&x, &y, s, 48_000), Some(1234)))
    });
    g.finish();
}

criterion_group!(benches, synthesis, alignment);
criterion_main!(benches);
