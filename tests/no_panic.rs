//! No datagram of any content makes either side panic: real packets of a real session, with
//! random bytes flipped, truncated or extended, thrown at the receiver and the sender.

use bytes::Bytes;
use isostream_media::{synthesize, AudioSpec, Program, SampleFormat};
use isostream_receiver::{ReceiverConfig, ReceiverSession};
use isostream_sender::{SenderConfig, SenderSession};
use isostream_transport::time::{Duration, Instant};
use proptest::prelude::*;

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
    let mut tx = SenderSession::new(cfg).unwrap();
    let input = synthesize(Program::Music, spec, 48_000 / 4, 1);
    let mut out = Vec::new();
    let mut now = Instant::ZERO;
    let mut pos = 0;
    while now < Instant::ZERO + Duration::from_millis(300) {
        let want = tx.audio_wanted().min(input.len() / 4 - pos);
        if want == 0 && pos * 4 == input.len() {
            tx.end_of_input(now);
        }
        pos += tx.push_audio(now, &input[pos * 4..(pos + want) * 4]);
        tx.handle_timeout(now);
        while let Some(d) = tx.poll_transmit(now) {
            out.push(d);
        }
        now += Duration::from_millis(1);
    }
    out
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
        let mut rx = ReceiverSession::new(ReceiverConfig::default()).unwrap();
        let mut now = Instant::ZERO;
        let mut out = vec![0u8; 48_000 * 4];
        for (i, (pick, ms)) in plan.iter().enumerate() {
            // mostly intact packets, so sessions form and go deep; every other one mutated
            let d = &real[pick % real.len()];
            let d = if i % 2 == 0 { d.to_vec() } else { mutate(d, ms) };
            rx.handle_datagram(now, &d);
            rx.handle_timeout(now);
            let due = rx.due_frames(now).min(48_000);
            if let Some(spec) = rx.spec() {
                let n = due.min(out.len() / spec.frame_bytes().max(1));
                rx.playout(now, &mut out[..n * spec.frame_bytes()]);
            }
            while rx.poll_transmit().is_some() {}
            while rx.poll_event().is_some() {}
            now += Duration::from_millis(3);
        }
    }

    #[test]
    fn any_bytes_never_panic_the_sender(datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..100)) {
        let spec = AudioSpec { rate: 48_000, channels: 2, format: SampleFormat::S16 };
        let mut tx = SenderSession::new(SenderConfig::new(spec)).unwrap();
        let mut now = Instant::ZERO;
        for d in &datagrams {
            let mut v = d.clone();
            if v.len() >= 2 {
                v[0] = 0x80 | (v[0] & 0x1f); // mostly RTCP-shaped
                v[1] = 192 + v[1] % 32;
            }
            tx.handle_datagram(now, &v);
            tx.handle_timeout(now);
            while tx.poll_transmit(now).is_some() {}
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
                })
                .collect(),
        };
        let mut b = bytes::BytesMut::new();
        write_desc(&mut b, 0, &desc);
        assert!(
            !rx.handle_datagram(Instant::ZERO, &b),
            "rate {rate}, {channels} ch x 32"
        );
        assert!(rx.spec().is_none());
    }
    assert!(rx.stats().malformed >= 3);
}
