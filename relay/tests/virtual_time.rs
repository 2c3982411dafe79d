//! Sender → relay → listeners in virtual time (the sans-IO sessions, no sockets): what the
//! listeners play is compared with what went in, never with the relay's own counters.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use isostream_media::{synthesize, AudioSpec, Program, SampleFormat};
use isostream_receiver::{ReceiverConfig, ReceiverSession};
use isostream_relay::{ListenerState, RelayConfig, RelayEvent, RelaySession};
use isostream_sender::{SenderConfig, SenderSession, Speed};
use isostream_transport::sans_io::{Input, Output, Transmit};
use isostream_transport::time::{Duration, Instant};

const SPEC: AudioSpec = AudioSpec {
    rate: 48_000,
    channels: 2,
    format: SampleFormat::S16,
};
const FB: usize = 4;
/// One-way delay of every path.
const LATENCY: Duration = Duration::from_millis(1);

fn addr(host: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, host], 5004))
}

// a test harness: a few nodes, boxing buys nothing
#[allow(clippy::large_enum_variant)]
enum Node {
    Sender {
        tx: SenderSession,
        pos: usize,
        ended: bool,
    },
    Relay(RelaySession),
    Listener {
        rx: ReceiverSession,
        out: Vec<u8>,
        /// Not driven and deaf while `now` is in this span (it stopped reading).
        away: Option<(Instant, Instant)>,
        /// Not started before this instant.
        from: Instant,
    },
}

struct World {
    nodes: Vec<(SocketAddr, Node)>,
    /// Datagrams in flight: (arrival, sequence) -> (from, to, data).
    net: BTreeMap<(Instant, u64), (SocketAddr, SocketAddr, Bytes)>,
    sent: u64,
    input: Vec<u8>,
    relay_events: Vec<RelayEvent>,
    /// Every n-th media packet to this address is lost: (address, n, media packets so far).
    lossy: Option<(SocketAddr, u64, u64)>,
    /// A second such path.
    lossy2: Option<(SocketAddr, u64, u64)>,
}

fn listener_cfg(relay: SocketAddr, seed: u64) -> ReceiverConfig {
    ReceiverConfig {
        low_water_ms: 300,
        resume_water_ms: Some(2000),
        high_water_ms: 4000,
        idle_timeout: Duration::from_secs(3),
        seed,
        connect: Some(relay),
        ..ReceiverConfig::default()
    }
}

impl World {
    fn new(input: Vec<u8>) -> Self {
        World {
            nodes: Vec::new(),
            net: BTreeMap::new(),
            sent: 0,
            input,
            relay_events: Vec::new(),
            lossy: None,
            lossy2: None,
        }
    }

    fn sender(&mut self, host: u8, to: SocketAddr) {
        self.sender_with(host, to, |_| {});
    }

    fn sender_with(&mut self, host: u8, to: SocketAddr, tune: impl FnOnce(&mut SenderConfig)) {
        let mut cfg = SenderConfig::new(SPEC);
        tune(&mut cfg);
        cfg.speed = Speed::Times(2.0);
        cfg.receiver_addr = to;
        let tx = SenderSession::new(cfg).unwrap();
        self.nodes.push((
            addr(host),
            Node::Sender {
                tx,
                pos: 0,
                ended: false,
            },
        ));
    }

    fn relay(&mut self, host: u8, connect: Option<SocketAddr>) {
        let cfg = RelayConfig {
            connect,
            seed: host as u64,
            ..RelayConfig::default()
        };
        self.nodes
            .push((addr(host), Node::Relay(RelaySession::new(cfg).unwrap())));
    }

    fn listener(&mut self, host: u8, relay: SocketAddr, from: Instant) {
        let rx = ReceiverSession::new(listener_cfg(relay, host as u64)).unwrap();
        self.nodes.push((
            addr(host),
            Node::Listener {
                rx,
                out: Vec::new(),
                away: None,
                from,
            },
        ));
    }

    fn listener_out(&self, host: u8) -> &[u8] {
        self.nodes
            .iter()
            .find_map(|(a, n)| match n {
                Node::Listener { out, .. } if *a == addr(host) => Some(&out[..]),
                _ => None,
            })
            .expect("a listener")
    }

    fn set_away(&mut self, host: u8, span: (Instant, Instant)) {
        for (a, n) in &mut self.nodes {
            if let Node::Listener { away, .. } = n {
                if *a == addr(host) {
                    *away = Some(span);
                }
            }
        }
    }

    fn relay_session(&self, host: u8) -> &RelaySession {
        self.nodes
            .iter()
            .find_map(|(a, n)| match n {
                Node::Relay(r) if *a == addr(host) => Some(r),
                _ => None,
            })
            .expect("a relay")
    }

    /// Runs in steps of 1 ms until `until`.
    fn run(&mut self, until: Instant) {
        let mut now = Instant::ZERO;
        let mut chunk = vec![0u8; 48_000 * FB];
        while now < until {
            // deliveries
            while let Some((&(at, seq), _)) = self.net.first_key_value() {
                if at > now {
                    break;
                }
                let (from, to, data) = self.net.remove(&(at, seq)).unwrap();
                let Some((_, node)) = self.nodes.iter_mut().find(|(a, _)| *a == to) else {
                    continue;
                };
                let input = Input::Datagram {
                    now: at,
                    from,
                    data,
                };
                match node {
                    Node::Sender { tx, .. } => tx.handle_input(input),
                    Node::Relay(r) => r.handle_input(input),
                    Node::Listener {
                        rx, away, from: f, ..
                    } => {
                        let deaf = away.is_some_and(|(a, b)| now >= a && now < b) || now < *f;
                        if !deaf {
                            rx.handle_input(input);
                        }
                    }
                }
            }
            // turns
            let mut outgoing: Vec<(SocketAddr, Transmit)> = Vec::new();
            for (me, node) in &mut self.nodes {
                match node {
                    Node::Sender { tx, pos, ended } => {
                        let want = tx.audio_wanted();
                        let n = want.min(self.input.len() / FB - *pos);
                        if n > 0 {
                            tx.handle_input(Input::Audio {
                                now,
                                frames: &self.input[*pos * FB..(*pos + n) * FB],
                            });
                            *pos += n;
                        }
                        if *pos * FB == self.input.len() && !*ended {
                            *ended = true;
                            tx.handle_input(Input::EndOfInput(now));
                        }
                        tx.handle_input(Input::Timeout(now));
                        loop {
                            match tx.poll_output() {
                                Output::Transmit(t) => outgoing.push((*me, t)),
                                Output::Event(_) => {}
                                Output::Timeout(_) => break,
                            }
                        }
                    }
                    Node::Relay(r) => {
                        r.handle_input(Input::Timeout(now));
                        loop {
                            match r.poll_output() {
                                Output::Transmit(t) => outgoing.push((*me, t)),
                                Output::Event(e) => self.relay_events.push(e),
                                Output::Timeout(_) => break,
                            }
                        }
                    }
                    Node::Listener {
                        rx,
                        out,
                        away,
                        from,
                    } => {
                        if away.is_some_and(|(a, b)| now >= a && now < b) || now < *from {
                            continue;
                        }
                        rx.handle_input(Input::Timeout(now));
                        let due = rx.due_frames(now).min(48_000);
                        if due > 0 {
                            let n = rx.playout(now, &mut chunk[..due * FB]);
                            out.extend_from_slice(&chunk[..n * FB]);
                        }
                        loop {
                            match rx.poll_output() {
                                Output::Transmit(t) => outgoing.push((*me, t)),
                                Output::Event(_) => {}
                                Output::Timeout(_) => break,
                            }
                        }
                    }
                }
            }
            for (from, t) in outgoing {
                let media = isostream_transport::rtp::classify(&t.data)
                    == isostream_transport::rtp::DatagramKind::Media;
                let mut lost = false;
                for (to, n, seen) in self.lossy.iter_mut().chain(self.lossy2.iter_mut()) {
                    if media && t.to == *to {
                        *seen += 1;
                        lost |= *seen % *n == 0;
                    }
                }
                if lost {
                    continue;
                }
                self.sent += 1;
                self.net
                    .insert((now + LATENCY, self.sent), (from, t.to, t.data));
            }
            now += Duration::from_millis(1);
        }
    }
}

fn secs(s: f64) -> Instant {
    Instant::ZERO + Duration::from_secs_f64(s)
}

#[test]
fn listeners_are_sample_exact_and_one_that_stops_reading_disturbs_none() {
    let input = synthesize(Program::Music, SPEC, 48_000 * 14 + 123, 7);
    let mut w = World::new(input.clone());
    let relay = addr(2);
    w.relay(2, None);
    for host in 10..14 {
        w.listener(host, relay, Instant::ZERO);
    }
    // listener 13 stops reading for 1.5 s while the stream runs
    w.set_away(13, (secs(3.0), secs(4.5)));
    // the sender starts once the listeners have subscribed
    w.sender(1, relay);
    w.run(secs(24.0));
    for host in 10..13 {
        let out = w.listener_out(host);
        assert_eq!(out.len(), input.len(), "listener {host}: frames played");
        assert!(out == &input[..], "listener {host}: output differs");
    }
    // the one that stopped reading came back and went on playing
    let away = w.listener_out(13);
    assert!(
        away.len() >= input.len() / 2,
        "the returning listener played {} frames",
        away.len() / FB
    );
    let r = w.relay_session(2);
    let s = r.stats();
    assert!(s.pauses_sent >= 1, "the relay steered its upstream: {s:?}");
    assert_eq!(s.listeners_joined, 4);
    assert!(r.is_finished(), "{:?}", w.relay_events);
    // every listener got the whole stream and its end
    assert_eq!(s.listeners_finished, 4, "{:#?}", s.listeners);
    assert!(s.listeners.iter().any(|l| l.pauses_applied >= 1));
}

#[test]
fn a_late_listener_starts_where_the_stream_is() {
    let input = synthesize(Program::Music, SPEC, 48_000 * 12, 8);
    let mut w = World::new(input.clone());
    let relay = addr(2);
    w.relay(2, None);
    w.listener(10, relay, Instant::ZERO);
    w.listener(11, relay, secs(5.0));
    w.sender(1, relay);
    w.run(secs(20.0));
    assert!(w.listener_out(10) == &input[..]);
    let late = w.listener_out(11);
    // it played an exact run of the input from about where the stream was when it joined
    // (the relay's playout position: 5 s after the first media, less the path delays)
    let window = &late[..256 * FB];
    let at = (0..input.len() / FB - 256)
        .find(|&f| &input[f * FB..(f + 256) * FB] == window)
        .expect("the late listener's first audio is in the input");
    assert!(
        (at as i64 - 5 * 48_000).abs() <= 48_000 / 5,
        "the late listener started at frame {at}"
    );
    assert!(
        late == &input[at * FB..],
        "the late listener's output differs"
    );
}

#[test]
fn a_chain_of_two_relays_is_exact() {
    let input = synthesize(Program::Speech, SPEC, 48_000 * 6 + 5, 9);
    let mut w = World::new(input.clone());
    w.relay(2, None);
    w.relay(3, Some(addr(2)));
    w.listener(10, addr(3), Instant::ZERO);
    w.listener(11, addr(2), Instant::ZERO);
    w.sender(1, addr(2));
    w.run(secs(16.0));
    assert!(w.listener_out(10) == &input[..], "behind two relays");
    assert!(w.listener_out(11) == &input[..], "behind one relay");
    assert!(w.relay_session(3).is_finished());
    assert!(w.relay_session(2).is_finished());
    // relay 3 is one of relay 2's listeners, and finished like one
    let s = w.relay_session(2).stats();
    assert_eq!(s.listeners.len(), 2);
    assert!(
        s.listeners
            .iter()
            .all(|l| l.state == ListenerState::Finished),
        "{:#?}",
        s.listeners
    );
    assert!(w.relay_events.iter().any(|e| matches!(
        e,
        RelayEvent::ListenerLeft {
            state: ListenerState::Finished,
            ..
        }
    )));
}

#[test]
fn a_listener_behind_a_lossy_path_is_made_whole_by_forwarded_fec_and_the_relays_store() {
    let input = synthesize(Program::Music, SPEC, 48_000 * 5, 10);
    let mut w = World::new(input.clone());
    w.relay(2, None);
    w.listener(10, addr(2), Instant::ZERO);
    w.listener(11, addr(2), Instant::ZERO);
    // every 37th media packet to listener 10 is lost on its path from the relay
    w.lossy = Some((addr(10), 37, 0));
    w.sender(1, addr(2));
    w.run(secs(14.0));
    assert!(w.listener_out(10) == &input[..], "the lossy listener");
    assert!(w.listener_out(11) == &input[..], "the clean listener");
    let s = w.relay_session(2).stats();
    let lossy = s
        .listeners
        .iter()
        .find(|l| l.addr == addr(10).to_string())
        .unwrap();
    // the library's default sender protects with FEC, which the relay forwards as it is:
    // what FEC does not rebuild is asked for and answered from the store
    assert!(lossy.repair_sent > 0, "{lossy:?}");
    assert!(lossy.retransmissions_sent >= 5, "{lossy:?}");
    assert_eq!(lossy.retransmissions_unavailable, 0, "{lossy:?}");
    let clean = s
        .listeners
        .iter()
        .find(|l| l.addr == addr(11).to_string())
        .unwrap();
    assert_eq!(clean.retransmissions_sent, 0, "{clean:?}");
}

#[test]
fn packets_lost_on_the_way_to_the_relay_are_asked_for_upstream() {
    let input = synthesize(Program::Music, SPEC, 48_000 * 5, 11);
    let mut w = World::new(input.clone());
    w.relay(2, None);
    w.relay(3, Some(addr(2)));
    w.listener(10, addr(2), Instant::ZERO);
    w.listener(11, addr(3), Instant::ZERO);
    // every 41st media packet to the first relay is lost, and every 43rd to the second;
    // no FEC: only retransmissions can make the listeners whole
    w.lossy = Some((addr(2), 41, 0));
    w.lossy2 = Some((addr(3), 43, 0));
    w.sender_with(1, addr(2), |c| c.fec = None);
    w.run(secs(16.0));
    assert!(w.listener_out(10) == &input[..], "behind one lossy path");
    assert!(w.listener_out(11) == &input[..], "behind two lossy paths");
    for host in [2, 3] {
        let s = w.relay_session(host).stats();
        assert!(s.upstream_recovered >= 20, "relay {host}: {s:?}");
        assert_eq!(s.upstream_repair, 0);
    }
}
