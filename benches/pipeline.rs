//! Throughput of the whole pipeline under the virtual clock: how many times faster than real
//! time `isostream bench` simulates one stereo 48 kHz stream (sender session, impairment
//! model, receiver session with FEC recovery, concealment and playout).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use isostream::sim::{self, MemorySource};
use isostream_media::{synthesize, AudioSpec, Program, SampleFormat};
use isostream_netsim::Profile;
use isostream_receiver::ReceiverConfig;
use isostream_sender::SenderConfig;
use isostream_transport::time::Duration;

fn pipeline(c: &mut Criterion) {
    let spec = AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    let seconds = 10;
    let input = synthesize(Program::Mixed, spec, 48_000 * seconds, 7);
    let mut g = c.benchmark_group("simulate_10s_stereo_48k");
    g.sample_size(10);
    // throughput in audio seconds: criterion's "elements/s" is then the speed-up over real time
    g.throughput(Throughput::Elements(seconds as u64));
    for (profile, interleave) in [("perfect", 1), ("wifi", 1), ("hostile", 4)] {
        let p = Profile::builtin(profile).unwrap();
        g.bench_function(format!("{profile}_fec8-2_interleave{interleave}"), |b| {
            b.iter(|| {
                let mut cfg = SenderConfig::new(spec);
                cfg.interleave = interleave;
                let mut src = MemorySource::new(&input, spec.frame_bytes());
                let r = sim::run(
                    cfg,
                    ReceiverConfig::default(),
                    &p,
                    1,
                    &mut src,
                    Duration::from_secs(60),
                )
                .unwrap();
                assert!(r.completed);
                r.output.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
