//! No datagram of any content makes either side panic: real packets of a real session, with
//! random bytes flipped, truncated or extended, thrown at the receiver and the sender.

use bytes::Bytes;
use isostream_drive::{AudioSink, Feed, ReceiverHost, ReceiverPump, SenderHost, SenderPump};
use isostream_media::{synthesize, AudioSpec, Program, SampleFormat};
use isostream_receiver::{ReceiverConfig, ReceiverEvent, ReceiverSession};
use isostream_sender::{SenderConfig, SenderEvent, SenderSession};
use isostream_transport::sans_io::{Input, Transmit};
use isostream_transport::time::{Duration, Instant};
use proptest::prelude::*;

/// Collects what a pump hands out; the sender's input comes from memory.
struct Collect<'a> {
    input: &'a [u8],
    frame_bytes: usize,
    out: Vec<Bytes>,
}

impl SenderHost for Collect<'_> {
    fn audio(&mut self, max_frames: usize) -> std::io::Result<Feed<'_>> {
        let n = (self.input.len() / self.frame_bytes).min(max_frames);
        Ok(if n == 0 {
            Feed::End
        } else {
            Feed::Frames(&self.input[..n * self.frame_bytes])
        })
    }
    fn consume(&mut self, frames: usize) {
        self.input = &self.input[frames * self.frame_bytes..];
    }
    fn transmit(&mut self, t: Transmit) -> std::io::Result<()> {
        self.out.push(t.data);
        Ok(())
    }
    fn event(&mut self, _: SenderEvent) {}
}

/// Plays into nothing and sends nowhere.
struct Discard(Vec<u8>);

impl AudioSink for Discard {
    fn write_frames(&mut self, f: &[u8]) -> std::io::Result<()> {
        self.0.clear();
        self.0.extend_from_slice(&f[..f.len().min(64)]);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ReceiverHost for Discard {
    fn transmit(&mut self, _: Transmit) -> std::io::Result<()> {
        Ok(())
    }
    fn event(&mut self, _: ReceiverEvent) -> std::io::Result<()> {
        Ok(())
    }
    fn sink(&mut self) -> Option<&mut dyn AudioSink> {
        Some(self)
    }
}

const FROM: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5004);

/// The first datagrams of a real session: RTCP with the description, media, repair packets.
fn real_datagrams(interleave: u8, substreams: Vec<u16>) -> Vec<Bytes> {
    let spec = AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    let mut cfg = SenderConfig::new(spec);
    cfg.interleave = interleave;
    cfg.substream_channels = substreams;
    let mut tx = SenderPump::new(SenderSession::new(cfg).unwrap());
    let input = synthesize(Program::Music, spec, 48_000 / 4, 1);
    let mut host = Collect {
        input: &input,
        frame_bytes: 4,
        out: Vec::new(),
    };
    let mut now = Instant::ZERO;
    while now < Instant::ZERO + Duration::from_millis(300) {
        tx.turn(now, &mut host).unwrap();
        now += Duration::from_millis(1);
    }
    host.out
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { index: usize, byte: u8 },
    Truncate(usize),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(index, byte)| Mutation::Flip { index, byte }),
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Mutation::Extend),
    ]
}

fn mutate(d: &[u8], ms: &[Mutation]) -> Vec<u8> {
    let mut v = d.to_vec();
    for m in ms {
        match m {
            Mutation::Flip { index, byte } if !v.is_empty() => {
                let i = index % v.len();
                v[i] ^= byte;
            }
            Mutation::Truncate(n) if !v.is_empty() => v.truncate(n % v.len()),
            Mutation::Extend(tail) => v.extend_from_slice(tail),
            _ => {}
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn mutated_real_datagrams_never_panic_the_receiver(
        plan in proptest::collection::vec((any::<usize>(), proptest::collection::vec(mutation(), 1..4)), 1..200),
        interleave in 1u8..5,
        split in any::<bool>(),
    ) {
        let real = real_datagrams(interleave, if split { vec![1, 1] } else { vec![2] });
        let mut rx = ReceiverPump::new(ReceiverSession::new(ReceiverConfig::default()).unwrap());
        let mut host = Discard(Vec::new());
        let mut now = Instant::ZERO;
        for (i, (pick, ms)) in plan.iter().enumerate() {
            // mostly intact packets, so sessions form and go deep; every other one mutated
            let d = &real[pick % real.len()];
            let d = if i % 2 == 0 { d.to_vec() } else { mutate(d, ms) };
            rx.receive(now, FROM, Bytes::from(d));
            rx.turn(now, &mut host).unwrap();
            now += Duration::from_millis(3);
        }
    }

    #[test]
    fn any_bytes_never_panic_the_sender(datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..100)) {
        let spec = AudioSpec { rate: 48_000, channels: 2, format: SampleFormat::S16 };
        let mut tx = SenderPump::new(SenderSession::new(SenderConfig::new(spec)).unwrap());
        let input = vec![0u8; 48_000 * 4];
        let mut host = Collect { input: &input, frame_bytes: 4, out: Vec::new() };
        let mut now = Instant::ZERO;
        for d in &datagrams {
            let mut v = d.clone();
            if v.len() >= 2 {
                v[0] = 0x80 | (v[0] & 0x1f); // mostly RTCP-shaped
                v[1] = 192 + v[1] % 32;
            }
            tx.receive(now, FROM, Bytes::from(v));
            tx.turn(now, &mut host).unwrap();
            host.out.clear();
            now += Duration::from_millis(1);
        }
    }
}

#[test]
fn a_description_asking_for_absurd_resources_is_refused() {
    use isostream_transport::rtcp::{write_desc, SessionDesc, SubstreamDesc};
    let mut rx = ReceiverSession::new(ReceiverConfig::default()).unwrap();
    for (rate, channels) in [(u32::MAX, 2u8), (0, 2), (768_000, 255)] {
        let desc = SessionDesc {
            codec: 0,
            rate,
            format: 2,
            packet_frames: 240,
            interleave: 1,
            fec_k: 8,
            fec_m: 2,
            spread: 1,
            live: false,
            substreams: (0..32)
                .map(|i| SubstreamDesc {
                    ssrc: i,
                    ts_base: 0,
                    channels,
                    rtx_ssrc: None,
                })
                .collect(),
        };
        let mut b = bytes::BytesMut::new();
        write_desc(&mut b, 0, &desc);
        rx.handle_input(Input::Datagram {
            now: Instant::ZERO,
            from: FROM,
            data: b.freeze(),
        });
        assert!(rx.spec().is_none(), "rate {rate}, {channels} ch x 32");
    }
    // an impossible rate is malformed; a possible one beyond the memory budget is refused
    let st = rx.stats();
    assert!(st.datagrams_malformed >= 2);
    assert_eq!(st.sessions_over_budget, 1);
}
