//! Property tests of the control path: a real sender session streams to a real receiver
//! session in virtual time (sans-IO, no sockets), and valid-looking RTCP that neither of
//! them sent (PAUSE and RESUME with the receiver's SSRC or another and any request number,
//! ACKs, session descriptions with the sender's SSRCs or others, BYEs, sender reports with
//! any timestamp) is thrown at both sessions, from the peer's address or a stranger's, in
//! between the media. A case forges either sender reports or BYEs with the sender's own
//! SSRC, not both: from the sender's own address, a forged sender report followed by a
//! forged BYE of the same SSRC makes the receiver play up to 2 s of concealment past the
//! audio it received (it cannot tell such a report from one whose tail of media was lost;
//! from any other address both are foreign, and with SRTP neither is authentic). Whatever
//! comes:
//!
//! - neither session panics;
//! - no session of the receiver plays out more audio than the sender was given (a forged
//!   BYE may cut the stream in two sessions; each is bounded);
//! - its memory stays bounded: at most 32 substreams, no more buffered than high-water plus
//!   headroom, a bounded number of datagrams per turn, no more packets counted than
//!   datagrams delivered;
//!
//! and with no forged control at all the output is the input, bit for bit (the harness
//! itself is sound).

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use isostream_media::{synthesize, AudioSpec, Program, SampleFormat};
use isostream_receiver::{ReceiverConfig, ReceiverEvent, ReceiverSession};
use isostream_sender::{SenderConfig, SenderSession, Speed};
use isostream_transport::rtcp::{self, SenderReport, SessionDesc, SubstreamDesc};
use isostream_transport::sans_io::{Input, Output};
use isostream_transport::time::{Duration, Instant};
use proptest::prelude::*;

/// A third party's address.
const STRANGER: std::net::SocketAddr = std::net::SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 66)),
    7000,
);

/// A forged control packet.
#[derive(Clone, Debug)]
enum Ctl {
    /// PAUSE (or RESUME) with the receiver's SSRC (once known) or `ssrc`.
    Flow {
        pause: bool,
        receivers: bool,
        ssrc: u32,
        request: u32,
    },
    /// An ACK with the sender's first SSRC (or `ssrc`).
    Ack {
        senders: bool,
        ssrc: u32,
        request: u32,
    },
    /// A session description: the sender's own SSRCs (a copy with other fields) or others.
    Desc {
        senders: bool,
        ssrc: u32,
        rate: u32,
        format: u8,
        channels: u8,
        substreams: u8,
        fec_k: u8,
        live: bool,
    },
    /// A BYE of the sender's first SSRC (or `ssrc`).
    Bye { senders: bool, ssrc: u32 },
    /// A sender report: of the sender's first SSRC at a position it has sent (`rtp_ts`
    /// modulo what it sent), or of `ssrc` with any timestamp.
    Sr {
        senders: bool,
        ssrc: u32,
        rtp_ts: u32,
        ntp: u64,
    },
    /// A final compound as the sender sends it (SR, then BYE) of another SSRC than the
    /// sender's.
    Final {
        senders: bool,
        ssrc: u32,
        rtp_ts: u32,
    },
}

/// A forged packet, when it is thrown, at whom, and from where.
#[derive(Clone, Debug)]
struct Event {
    at_ms: u16,
    to_sender: bool,
    from_stranger: bool,
    ctl: Ctl,
}

fn ctl() -> impl Strategy<Value = Ctl> {
    prop_oneof![
        (any::<bool>(), any::<bool>(), any::<u32>(), any::<u32>()).prop_map(
            |(pause, receivers, ssrc, request)| Ctl::Flow {
                pause,
                receivers,
                ssrc,
                request
            }
        ),
        // small request numbers too: they collide with the receiver's own
        (any::<bool>(), any::<bool>(), 0u32..8).prop_map(|(pause, receivers, request)| {
            Ctl::Flow {
                pause,
                receivers,
                ssrc: 0,
                request,
            }
        }),
        (any::<bool>(), any::<u32>(), any::<u32>()).prop_map(|(senders, ssrc, request)| {
            Ctl::Ack {
                senders,
                ssrc,
                request,
            }
        }),
        (
            any::<bool>(),
            any::<u32>(),
            prop_oneof![Just(48_000u32), Just(44_100), Just(8_000), any::<u32>()],
            0u8..4,
            1u8..12,
            1u8..4,
            0u8..10,
            any::<bool>()
        )
            .prop_map(
                |(senders, ssrc, rate, format, channels, substreams, fec_k, live)| Ctl::Desc {
                    senders,
                    ssrc,
                    rate,
                    format,
                    channels,
                    substreams,
                    fec_k,
                    live,
                }
            ),
        (any::<bool>(), any::<u32>()).prop_map(|(senders, ssrc)| Ctl::Bye { senders, ssrc }),
        (any::<bool>(), any::<u32>(), any::<u32>(), any::<u64>()).prop_map(
            |(senders, ssrc, rtp_ts, ntp)| Ctl::Sr {
                senders,
                ssrc,
                rtp_ts,
                ntp
            }
        ),
        (any::<bool>(), any::<u32>(), any::<u32>()).prop_map(|(senders, ssrc, rtp_ts)| {
            Ctl::Final {
                senders,
                ssrc,
                rtp_ts,
            }
        }),
    ]
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    proptest::collection::vec(
        (0u16..4000, any::<bool>(), prop::bool::weighted(0.2), ctl()).prop_map(
            |(at_ms, to_sender, from_stranger, ctl)| Event {
                at_ms,
                to_sender,
                from_stranger,
                ctl,
            },
        ),
        0..24,
    )
}

/// The stream: format, length and how it is sent.
#[derive(Clone, Debug)]
struct Stream {
    spec: AudioSpec,
    frames: usize,
    fec: bool,
    live: bool,
    speed: Speed,
    seed: u64,
}

fn stream() -> impl Strategy<Value = Stream> {
    (
        prop_oneof![
            Just((48_000u32, 2u16, SampleFormat::S16)),
            Just((44_100, 1, SampleFormat::S24)),
            Just((48_000, 2, SampleFormat::F32)),
        ],
        4_800usize..40_000,
        any::<bool>(),
        prop::bool::weighted(0.25),
        prop_oneof![
            Just(Speed::Times(1.0)),
            Just(Speed::Times(3.0)),
            Just(Speed::Max)
        ],
        any::<u64>(),
    )
        .prop_map(
            |((rate, channels, format), frames, fec, live, speed, seed)| Stream {
                spec: spec(rate, channels, format),
                frames,
                fec,
                live,
                speed,
                seed,
            },
        )
}

/// What a run left.
struct Run {
    input: Vec<u8>,
    /// The audio played, of every session.
    output: Vec<u8>,
    frame_bytes: usize,
    /// Frames each session played, in order.
    session_frames: Vec<usize>,
}

/// What the forger knows of the sessions.
struct Known {
    /// The sender's SSRCs.
    sender_ssrcs: Vec<u32>,
    /// The RTP timestamp of position 0 of the sender's first substream.
    ts_base: u32,
    /// Frames the sender has sent so far.
    frames_sent: u64,
    /// The receiver's SSRC, once it has sent something.
    receiver_ssrc: Option<u32>,
    /// This case forges BYEs with the sender's SSRC (else sender reports with it).
    sender_byes: bool,
}

/// The bytes of a forged control packet.
fn forge(ctl: &Ctl, k: &Known, s: &Stream) -> Bytes {
    let sender_ssrcs = &k.sender_ssrcs;
    let receiver_ssrc = k.receiver_ssrc;
    let own = |mine: bool, ssrc: u32| if mine { sender_ssrcs[0] } else { ssrc };
    // the sender's own SSRC in a BYE, or in a sender report, as the case forges
    let bye_own = |mine: bool| mine && k.sender_byes;
    let sr_own = |mine: bool| mine && !k.sender_byes;
    // a sender report of the sender's own stream claims a position it has sent
    let sent_ts = |mine: bool, rtp_ts: u32| {
        if mine {
            k.ts_base
                .wrapping_add((u64::from(rtp_ts) % (k.frames_sent + 1)) as u32)
        } else {
            rtp_ts
        }
    };
    let mut out = BytesMut::new();
    match ctl {
        Ctl::Flow {
            pause,
            receivers,
            ssrc,
            request,
        } => {
            let who = if *receivers {
                receiver_ssrc.unwrap_or(*ssrc)
            } else {
                *ssrc
            };
            let sub = if *pause {
                rtcp::APP_PAUSE
            } else {
                rtcp::APP_RESUME
            };
            rtcp::write_flow(&mut out, sub, who, *request);
        }
        Ctl::Ack {
            senders,
            ssrc,
            request,
        } => rtcp::write_flow(&mut out, rtcp::APP_ACK, own(*senders, *ssrc), *request),
        Ctl::Desc {
            senders,
            ssrc,
            rate,
            format,
            channels,
            substreams,
            fec_k,
            live,
        } => {
            let ssrcs: Vec<u32> = if *senders {
                sender_ssrcs.to_vec()
            } else {
                (0..*substreams as u32)
                    .map(|i| ssrc.wrapping_add(i))
                    .collect()
            };
            let desc = SessionDesc {
                codec: 0,
                rate: *rate,
                format: *format,
                packet_frames: (s.spec.rate / 200) as u16,
                interleave: 1,
                fec_k: *fec_k,
                fec_m: u8::from(*fec_k > 0),
                spread: 1,
                live: *live,
                substreams: ssrcs
                    .iter()
                    .map(|&x| SubstreamDesc {
                        ssrc: x,
                        ts_base: ssrc.rotate_left(7),
                        channels: *channels,
                        rtx_ssrc: None,
                    })
                    .collect(),
            };
            rtcp::write_desc(&mut out, ssrcs[0], &desc);
        }
        Ctl::Bye { senders, ssrc } => {
            rtcp::write_bye(&mut out, own(bye_own(*senders), *ssrc));
        }
        Ctl::Sr {
            senders,
            ssrc,
            rtp_ts,
            ntp,
        } => rtcp::write_sender_report(
            &mut out,
            &SenderReport {
                ssrc: own(sr_own(*senders), *ssrc),
                ntp: *ntp,
                rtp_ts: sent_ts(sr_own(*senders), *rtp_ts),
                packets: 0,
                octets: 0,
            },
        ),
        Ctl::Final {
            senders,
            ssrc,
            rtp_ts,
        } => {
            // the report and the BYE of one SSRC: the sender's only in neither family
            let who = own(false, *ssrc ^ u32::from(*senders));
            rtcp::write_sender_report(
                &mut out,
                &SenderReport {
                    ssrc: who,
                    ntp: 0,
                    rtp_ts: *rtp_ts,
                    packets: 0,
                    octets: 0,
                },
            );
            rtcp::write_bye(&mut out, who);
        }
    }
    out.freeze()
}

/// Most datagrams a session may hand out in one turn of 1 ms.
const MAX_PER_TURN: usize = 2_000;

/// Drains a session's outputs into `events`; asserts that a turn hands out a bounded number
/// of datagrams.
fn outputs<E>(mut poll: impl FnMut() -> Output<E>, events: &mut Vec<E>, what: &str) -> Vec<Bytes> {
    let mut sent = Vec::new();
    loop {
        match poll() {
            Output::Transmit(t) => sent.push(t.data),
            Output::Event(e) => events.push(e),
            Output::Timeout(_) => break,
        }
        assert!(
            sent.len() <= MAX_PER_TURN,
            "{what} handed out more than {MAX_PER_TURN} datagrams in one turn"
        );
    }
    sent
}

/// A new entry of `session_frames` for every session that started.
fn count_sessions(events: &mut Vec<ReceiverEvent>, session_frames: &mut Vec<usize>) {
    for e in events.drain(..) {
        if matches!(e, ReceiverEvent::SessionStarted { .. }) {
            session_frames.push(0);
        }
    }
}

/// Streams `s` from a sender session to a receiver session in virtual time (1 ms turns,
/// 1 ms one-way delay, no loss), throwing `events` at them, until both are done or the
/// time is up. Checks the bounds at every turn.
fn run(s: &Stream, events: &[Event], sender_byes: bool) -> Run {
    let fb = s.spec.frame_bytes();
    let input = synthesize(Program::Mixed, s.spec, s.frames, s.seed);
    let mut scfg = SenderConfig::new(s.spec);
    scfg.seed = s.seed;
    scfg.live = s.live;
    scfg.speed = s.speed;
    scfg.receiver_addr = RECEIVER;
    if !s.fec {
        scfg.fec = None;
    }
    let mut snd = SenderSession::new(scfg).expect("a valid sender configuration");
    let rcfg = ReceiverConfig {
        seed: s.seed ^ 0x5eed,
        idle_timeout: Duration::from_millis(1500),
        ..ReceiverConfig::default()
    };
    let mut rcv = ReceiverSession::new(rcfg).expect("a valid receiver configuration");
    let mut known = Known {
        sender_ssrcs: snd.ssrcs(),
        ts_base: snd.description().substreams[0].ts_base,
        frames_sent: 0,
        receiver_ssrc: None,
        sender_byes,
    };

    let mut events: Vec<&Event> = events.iter().collect();
    events.sort_by_key(|e| e.at_ms);
    let mut next_event = 0;
    let mut fed = 0usize; // frames given to the sender
    let mut ended = false;
    let mut to_receiver: Vec<Bytes> = Vec::new();
    let mut to_sender: Vec<Bytes> = Vec::new();
    let mut delivered = 0u64;
    let mut output = Vec::new();
    let mut session_frames: Vec<usize> = Vec::new();
    let mut revents = Vec::new();
    let mut scratch = Vec::new();
    let limit_ms = 3 * (s.frames as u64 * 1000 / s.spec.rate as u64) + 8_000;
    for ms in 0..limit_ms {
        let now = Instant::ZERO + Duration::from_millis(ms);
        // last turn's datagrams arrive (1 ms one way)
        for d in to_receiver.drain(..) {
            delivered += 1;
            rcv.handle_input(datagram(now, SENDER, d));
        }
        for d in to_sender.drain(..) {
            snd.handle_input(datagram(now, RECEIVER, d));
        }
        // forged control, due now
        while next_event < events.len() && u64::from(events[next_event].at_ms) <= ms {
            let e = events[next_event];
            next_event += 1;
            known.frames_sent = snd.stats().frames_sent;
            let d = forge(&e.ctl, &known, s);
            if e.to_sender {
                let from = if e.from_stranger { STRANGER } else { RECEIVER };
                snd.handle_input(datagram(now, from, d));
            } else {
                delivered += 1;
                let from = if e.from_stranger { STRANGER } else { SENDER };
                rcv.handle_input(datagram(now, from, d));
            }
        }
        // the sender: audio (stored: what it wants; live: 1 ms as it is captured)
        if !ended {
            let want = if s.live {
                s.spec.rate as usize / 1000
            } else {
                snd.audio_wanted()
            };
            let n = want.min(s.frames - fed);
            if n > 0 {
                snd.handle_input(Input::Audio {
                    now,
                    frames: &input[fed * fb..(fed + n) * fb],
                });
                fed += n;
            }
            if fed == s.frames {
                snd.handle_input(Input::EndOfInput(now));
                ended = true;
            }
        }
        snd.handle_input(Input::Timeout(now));
        to_receiver.extend(outputs(|| snd.poll_output(), &mut Vec::new(), "the sender"));
        // the receiver: timers, then playout every 5 ms
        rcv.handle_input(Input::Timeout(now));
        let sent = outputs(|| rcv.poll_output(), &mut revents, "the receiver");
        count_sessions(&mut revents, &mut session_frames);
        if known.receiver_ssrc.is_none() {
            known.receiver_ssrc = sent
                .first()
                .filter(|d| d.len() >= 8)
                .map(|d| u32::from_be_bytes([d[4], d[5], d[6], d[7]]));
        }
        to_sender.extend(sent);
        if ms % 5 == 0 {
            if let Some(spec) = rcv.spec() {
                let due = rcv.due_frames(now).min(spec.rate as usize);
                scratch.resize(due * spec.frame_bytes(), 0);
                let n = rcv.playout(now, &mut scratch);
                assert!(n <= due, "played {n} frames, {due} were due");
                output.extend_from_slice(&scratch[..n * spec.frame_bytes()]);
                *session_frames.last_mut().expect("a session plays") += n;
                to_sender.extend(outputs(|| rcv.poll_output(), &mut revents, "the receiver"));
                count_sessions(&mut revents, &mut session_frames);
            }
        }
        if let Some(spec) = rcv.spec() {
            // the jitter buffer holds at most high-water + headroom (5 s)
            let (_, high) = rcv.watermarks();
            let capacity = high + spec.rate as i64 * 5;
            let (_, fullest) = rcv.occupancy();
            assert!(
                fullest <= capacity,
                "{fullest} frames buffered, capacity {capacity}"
            );
        }
        let st = rcv.stats();
        assert!(
            st.substreams.len() <= 32,
            "{} substreams",
            st.substreams.len()
        );
        assert!(
            st.packets_received <= delivered,
            "{} packets counted, {delivered} datagrams delivered",
            st.packets_received
        );
        if snd.is_finished() && rcv.is_ended() && next_event == events.len() {
            break;
        }
    }
    Run {
        input,
        output,
        frame_bytes: fb,
        session_frames,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn forged_control_never_makes_the_receiver_play_more_than_was_sent(
        s in stream(),
        ev in events(),
        sender_byes in any::<bool>(),
    ) {
        let r = run(&s, &ev, sender_byes);
        let sent = r.input.len() / r.frame_bytes;
        for (i, &played) in r.session_frames.iter().enumerate() {
            prop_assert!(
                played <= sent,
                "session {} of {:?} played {played} frames, only {sent} were sent",
                i + 1,
                r.session_frames
            );
        }
    }
}

#[test]
fn without_forged_control_the_output_is_the_input() {
    for (i, (rate, channels, format)) in [
        (48_000, 2, SampleFormat::S16),
        (44_100, 1, SampleFormat::S24),
        (48_000, 2, SampleFormat::F32),
    ]
    .into_iter()
    .enumerate()
    {
        for speed in [Speed::Times(1.0), Speed::Max] {
            let s = Stream {
                spec: spec(rate, channels, format),
                frames: 24_000 + 17 * i,
                fec: i % 2 == 0,
                live: false,
                speed,
                seed: 40 + i as u64,
            };
            let r = run(&s, &[], false);
            assert_frames_exact(&r.input, &r.output, r.frame_bytes, &format!("{s:?}"));
        }
    }
}
