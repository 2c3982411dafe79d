//! End to end robustness: while a real sender streams, a third party throws hundreds of
//! random and malformed datagrams at the receiver. The stream is unaffected (the output is
//! exact, the receiver exits 0), the junk is counted, and none of it hijacks the session:
//! the receiver never answers the junk's address.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use isostream_media::{Program, SampleFormat};

/// Kinds of junk, for the tally printed by the test.
const KINDS: [&str; 8] = [
    "random bytes",
    "truncated RTP header",
    "wrong RTP version",
    "RTP media of a foreign SSRC",
    "RTCP garbage",
    "well-formed RTCP of a foreign SSRC",
    "repair packet with garbage",
    "well-formed repair header of a foreign SSRC",
];

/// One junk datagram of kind `kind`.
fn junk(kind: usize, rng: &mut SplitMix) -> Vec<u8> {
    match kind {
        // anything at all, 0..1500 bytes
        0 => {
            let mut d = vec![0u8; rng.below(1500) as usize];
            rng.fill(&mut d);
            d
        }
        // an RTP version 2 media header cut short (0..12 bytes)
        1 => {
            let mut d = vec![0u8; rng.below(12) as usize];
            rng.fill(&mut d);
            if !d.is_empty() {
                d[0] = 0x80;
            }
            if d.len() > 1 {
                d[1] = 96;
            }
            d
        }
        // version 0, 1 or 3
        2 => {
            let mut d = vec![0u8; 12 + rng.below(1000) as usize];
            rng.fill(&mut d);
            let v = [0u8, 1, 3][rng.below(3) as usize];
            d[0] = (v << 6) | (d[0] & 0x3f);
            d
        }
        // a plausible media packet (L16, L24, F32, plain or interleaved) of another SSRC
        3 => {
            let pts = [96u8, 97, 98, 100, 10, 11];
            let mut d = vec![0u8; 12 + 960];
            rng.fill(&mut d);
            d[0] = 0x80;
            d[1] = pts[rng.below(pts.len() as u64) as usize] | (rng.below(2) as u8) << 7;
            d
        }
        // RTCP packet types with garbage behind them
        4 => {
            let mut d = vec![0u8; 4 + rng.below(200) as usize];
            rng.fill(&mut d);
            d[0] = 0x80 | (d[0] & 0x3f);
            d[1] = 192 + rng.below(32) as u8;
            d
        }
        // well-formed RTCP from someone else: a receiver report, a BYE or an SDES-less SR
        5 => {
            let ssrc = (rng.next_u64() as u32).to_be_bytes();
            match rng.below(3) {
                0 => {
                    // RR, no report blocks
                    let mut d = vec![0x80, 201, 0, 1];
                    d.extend_from_slice(&ssrc);
                    d
                }
                1 => {
                    // BYE
                    let mut d = vec![0x81, 203, 0, 1];
                    d.extend_from_slice(&ssrc);
                    d
                }
                _ => {
                    // SR, no report blocks
                    let mut d = vec![0x80, 200, 0, 6];
                    d.extend_from_slice(&ssrc);
                    let mut rest = [0u8; 20];
                    rng.fill(&mut rest);
                    d.extend_from_slice(&rest);
                    d
                }
            }
        }
        // the repair payload type with garbage
        6 => {
            let mut d = vec![0u8; rng.below(1500) as usize];
            rng.fill(&mut d);
            if !d.is_empty() {
                d[0] = 0x80;
            }
            if d.len() > 1 {
                d[1] = 110 | (d[1] & 0x80);
            }
            d
        }
        // a repair header that parses (K=8, M=2, index 0, shard 974 bytes) of another SSRC
        _ => {
            let shard_len: u16 = 974;
            let mut d = vec![0x80, 110];
            d.extend_from_slice(&(rng.next_u64() as u16).to_be_bytes()); // seq
            d.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes()); // timestamp
            d.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes()); // ssrc
            d.extend_from_slice(&(rng.next_u64() as u16).to_be_bytes()); // base seq
            d.extend_from_slice(&[8, 2, 0, 0]); // k, m, index, reserved
            d.extend_from_slice(&shard_len.to_be_bytes());
            let mut shard = vec![0u8; shard_len as usize];
            rng.fill(&mut shard);
            d.extend_from_slice(&shard);
            d
        }
    }
}

#[test]
fn junk_from_a_third_party_does_not_disturb_the_stream() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(48_000, 2, SampleFormat::S16);
    let frames = 48_000 * 4 + 123;
    let (input, want) = make_input(dir.path(), "in.wav", Program::Music, spec, frames, 21);
    let out = dir.path().join("out.wav");
    let rstats = dir.path().join("recv.json");
    let sstats = dir.path().join("send.json");
    let addr = free_addr();
    let mut recv = spawn_recv(
        addr,
        &recv_args(
            addr,
            out.to_str().unwrap(),
            &rstats,
            &["--low-water", "100"],
        ),
    );
    // the sender goes through a relay that forwards everything, so the test sees when the
    // receiver has taken the stream as its session (it answers): the junk must come while
    // a session runs (before one, a foreign stream would be a stock sender's stream)
    let relay = Relay::start(addr, 1, |_, _| false);
    // real time: the stream lasts about four seconds, the junk comes in the middle of it
    let send = spawn(
        "send",
        &send_args(&input, relay.front, &sstats, &["--speed", "1"]),
    );
    relay.wait_for_answer(CHILD_TIMEOUT);
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker.set_nonblocking(true).unwrap();
    let mut rng = SplitMix(0xBAD_DA7A);
    let mut tally = [0u32; KINDS.len()];
    let mut answers = 0;
    let n = 800;
    for i in 0..n {
        // every kind in turn at first, then random kinds
        let kind = if i < KINDS.len() * 4 {
            i % KINDS.len()
        } else {
            rng.below(KINDS.len() as u64) as usize
        };
        let d = junk(kind, &mut rng);
        attacker.send_to(&d, addr).expect("send junk");
        tally[kind] += 1;
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = attacker.recv_from(&mut buf) {
            answers += 1;
            eprintln!("the receiver answered the junk's address {from:?}");
        }
        // ~1.2 s of junk, 800 datagrams
        std::thread::sleep(Duration::from_micros(1500));
    }
    // every junk datagram reached a running receiver (the kernel queues what it has not
    // read yet), so every one of them must be counted below
    assert!(
        recv.wait_for(Duration::ZERO).is_none(),
        "the stream ended before the junk did: the test proves nothing"
    );
    let s = send.wait_ok(CHILD_TIMEOUT);
    let r = recv.wait_ok(CHILD_TIMEOUT);
    let mut buf = [0u8; 2048];
    while let Ok((_, _)) = attacker.recv_from(&mut buf) {
        answers += 1;
    }
    assert_wav_exact(&out, spec, &want, "stream under junk");
    let rj = read_json(&rstats);
    let ctx = format!("receiver {rj}\nrecv stderr {}", r.stderr);
    assert_eq!(
        count(&rj, &["receiver", "frames_played"]),
        frames as u64,
        "{ctx}"
    );
    assert_eq!(
        count(&rj, &["receiver", "packets_unrecoverable"]),
        0,
        "{ctx}"
    );
    let malformed = count(&rj, &["receiver", "datagrams_malformed"]);
    let foreign = count(&rj, &["receiver", "datagrams_foreign"]);
    assert!(malformed > 0, "{ctx}");
    assert!(foreign > 0, "{ctx}");
    // every junk datagram was dropped as malformed or foreign; none was taken as the
    // session's (none is counted as media, repair, duplicate, late or overflow either)
    assert!(
        malformed + foreign >= n as u64,
        "only {} of {n} junk datagrams were counted as malformed or foreign: {ctx}",
        malformed + foreign
    );
    assert_eq!(count(&rj, &["receiver", "packets_duplicate"]), 0, "{ctx}");
    assert_eq!(count(&rj, &["receiver", "packets_late"]), 0, "{ctx}");
    assert_eq!(count(&rj, &["receiver", "packets_overflowed"]), 0, "{ctx}");
    let sj = read_json(&sstats);
    // every media packet the sender sent is accounted for, and no junk was counted as the
    // session's media (a loaded machine may drop a datagram: FEC rebuilt it, the output is
    // exact; what is proved here is that the counts add up, not that the kernel never drops)
    assert_eq!(
        count(&rj, &["receiver", "packets_received"]) + count(&rj, &["receiver", "packets_lost"]),
        count(&sj, &["sender", "packets_sent"]),
        "{ctx}"
    );
    relay.stop();
    // no hijack: the receiver keeps answering the sender only
    assert_eq!(answers, 0, "the receiver answered the junk's address");
    eprintln!(
        "junk {:?}: malformed {malformed}, foreign {foreign}; sender {:?}, total {:?}",
        KINDS.iter().zip(tally).collect::<Vec<_>>(),
        s.elapsed,
        t0.elapsed()
    );
}
