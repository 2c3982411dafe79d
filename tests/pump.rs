//! The one drive loop: the same seeded session gives the same audio through the pump under
//! the simulator's virtual clock and through the tokio drivers over loopback sockets.

use std::io;
use std::sync::{Arc, Mutex};

use isostream::sim::{self, MemorySource, Profile};
use isostream_drive::{recv, send, AudioSink};
use isostream_media::{synthesize, AudioSpec, Program, SampleFormat};
use isostream_receiver::{ReceiverConfig, ReceiverSession};
use isostream_sender::{SenderConfig, SenderSession, Speed};
use isostream_transport::time::Duration;

/// Played-out audio into a shared buffer.
struct Shared(Arc<Mutex<Vec<u8>>>);

impl AudioSink for Shared {
    fn write_frames(&mut self, frames: &[u8]) -> io::Result<()> {
        self.0.lock().unwrap().extend_from_slice(frames);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn configs(spec: AudioSpec, seed: u64) -> (SenderConfig, ReceiverConfig) {
    let mut s = SenderConfig::new(spec);
    s.seed = seed;
    s.interleave = 2;
    s.speed = Speed::Times(4.0);
    let r = ReceiverConfig {
        seed,
        ..ReceiverConfig::default()
    };
    (s, r)
}

#[test]
fn the_pump_plays_the_same_audio_under_the_virtual_clock_and_over_loopback() {
    let spec = AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    let seed = 7;
    let input = synthesize(Program::Music, spec, 48_000, seed);
    let fb = spec.frame_bytes();

    // the simulator: virtual time, a perfect network
    let (scfg, rcfg) = configs(spec, seed);
    let simulated = sim::run(
        scfg,
        rcfg,
        &Profile::builtin("perfect").unwrap(),
        seed,
        &mut MemorySource::new(&input, fb),
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(simulated.completed, "the simulated session did not end");

    // the tokio drivers: real sockets on loopback, a real clock
    let played = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let rsock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = rsock.local_addr().unwrap();
        let ssock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        ssock.connect(to).await.unwrap();
        let (mut scfg, rcfg) = configs(spec, seed);
        scfg.receiver_addr = to;
        let sender = SenderSession::new(scfg).unwrap();
        let receiver = ReceiverSession::new(rcfg).unwrap();
        let sink = played.clone();
        let source = OwnedSource(input.clone(), 0, fb);
        let mut observe = |_, _: &ReceiverSession| {};
        let mut progress = ();
        let r = recv::run(
            receiver,
            rsock,
            None,
            move |_, _| Ok(Box::new(Shared(sink.clone())) as Box<dyn AudioSink>),
            true,
            std::future::pending(),
            &mut observe,
        );
        let s = send::run(
            sender,
            ssock,
            send::Input::Stored(Box::new(source)),
            None,
            &mut progress,
        );
        let guard = tokio::time::sleep(std::time::Duration::from_secs(30));
        tokio::select! {
            (r, s) = async { tokio::join!(r, s) } => {
                let (stats, stop) = r.unwrap();
                s.unwrap();
                assert_eq!(stop, recv::Stop::Ended);
                assert_eq!(stats.packets_lost, 0, "loopback lost datagrams");
            }
            _ = guard => panic!("the loopback session did not end in 30 s"),
        }
    });
    let real = played.lock().unwrap();
    assert_eq!(simulated.output.len(), input.len(), "simulated length");
    assert!(
        simulated.output == input,
        "the simulated output differs from the input"
    );
    assert_eq!(real.len(), simulated.output.len(), "loopback length");
    assert!(
        *real == simulated.output,
        "loopback and simulation played different audio"
    );
}

/// A stored source over an owned buffer.
struct OwnedSource(Vec<u8>, usize, usize);

impl isostream_drive::AudioSource for OwnedSource {
    fn read_frames(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = (out.len() / self.2).min((self.0.len() - self.1) / self.2);
        out[..n * self.2].copy_from_slice(&self.0[self.1..self.1 + n * self.2]);
        self.1 += n * self.2;
        Ok(n)
    }
}
