//! The sender session's own tests (`session.rs` is the chain; these drive it through
//! `handle_input` / `poll_output` in virtual time and read what it sends).

use super::*;
use isostream_media::{AudioSpec, SampleFormat};
use isostream_transport::fec::FecParams;
use isostream_transport::time::Duration;
use std::net::SocketAddr;

const STRANGER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 9, 9, 9)),
    5004,
);
const RECEIVER_SSRC: u32 = 0x0bad_cafe;

fn stereo() -> AudioSpec {
    AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    }
}

/// A sender session in virtual time, with what it sent.
struct Rig {
    s: SenderSession,
    now: Instant,
    /// Audio frames still to give the session (stored media).
    left: usize,
    sent: Vec<Bytes>,
    events: Vec<SenderEvent>,
}

impl Rig {
    fn new(cfg: SenderConfig, frames: usize) -> Rig {
        Rig {
            s: SenderSession::new(cfg).unwrap(),
            now: Instant::ZERO,
            left: frames,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn drain(&mut self) -> Option<Instant> {
        loop {
            match self.s.poll_output() {
                Output::Transmit(t) => {
                    assert_eq!(t.to, self.s.config().receiver_addr);
                    self.sent.push(t.data);
                }
                Output::Event(e) => self.events.push(e),
                Output::Timeout(at) => return at,
            }
        }
    }

    /// Runs for `ms` of virtual time, giving the session the audio it wants (a ramp, so
    /// every frame differs) and ending the input when it is all given.
    fn run(&mut self, ms: u64) {
        let end = self.now + Duration::from_millis(ms);
        let fb = self.s.config().spec.frame_bytes();
        loop {
            let want = self.s.audio_wanted().min(self.left);
            if want > 0 {
                let audio: Vec<u8> = (0..want * fb).map(|i| (i % 251) as u8).collect();
                self.left -= want;
                let now = self.now;
                self.s.handle_input(Input::Audio {
                    now,
                    frames: &audio,
                });
                if self.left == 0 {
                    self.s.handle_input(Input::EndOfInput(now));
                }
            }
            self.s.handle_input(Input::Timeout(self.now));
            let at = self.drain();
            let next = at
                .unwrap_or(end)
                .max(self.now + Duration::from_micros(100))
                .min(self.now + Duration::from_millis(5));
            if next > end {
                self.now = end;
                return;
            }
            self.now = next;
        }
    }

    fn from(&mut self, from: SocketAddr, data: BytesMut) {
        let now = self.now;
        self.s.handle_input(Input::Datagram {
            now,
            from,
            data: data.freeze(),
        });
        self.drain();
    }

    fn flow(&mut self, from: SocketAddr, pause: bool, request: u32) {
        let mut b = BytesMut::new();
        let sub = if pause {
            rtcp::APP_PAUSE
        } else {
            rtcp::APP_RESUME
        };
        rtcp::write_flow(&mut b, sub, RECEIVER_SSRC, request);
        self.from(from, b);
    }

    /// A receiver report about substream 0 whose highest sequence number is `highest`.
    fn report(&mut self, highest: u16) {
        let addr = self.s.config().receiver_addr;
        self.report_from(addr, highest, 0);
    }

    /// A receiver report from `from` about substream 0: highest sequence number `highest`,
    /// `lost` packets lost in all (and a quarter of the last interval's).
    fn report_from(&mut self, from: SocketAddr, highest: u16, lost: i32) {
        let mut b = BytesMut::new();
        let block = rtcp::ReportBlock {
            ssrc: self.s.ssrcs()[0],
            fraction_lost: if lost > 0 { 64 } else { 0 },
            cumulative_lost: lost,
            highest_seq: highest as u32 + (1 << 16),
            jitter: 0,
            last_sr: 0,
            delay_since_last_sr: 0,
        };
        rtcp::write_receiver_report(&mut b, RECEIVER_SSRC, &[block]);
        self.from(from, b);
    }

    /// Sequence numbers of the media packets sent, in order.
    fn media_seqs(&self) -> Vec<u16> {
        self.sent
            .iter()
            .filter(|d| rtp::classify(d) == DatagramKind::Media)
            .map(|d| u16::from_be_bytes([d[2], d[3]]))
            .collect()
    }

    /// RTCP packets sent, each compound flattened.
    fn rtcp(&self) -> Vec<RtcpPacket> {
        self.sent
            .iter()
            .filter(|d| rtp::classify(d) == DatagramKind::Rtcp)
            .flat_map(|d| {
                rtcp::parse_compound(d)
                    .filter_map(Result::ok)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn byes(&self) -> usize {
        self.rtcp()
            .iter()
            .filter(|p| matches!(p, RtcpPacket::Bye { .. }))
            .count()
    }

    fn acks(&self) -> Vec<u32> {
        self.rtcp()
            .iter()
            .filter_map(|p| match p {
                RtcpPacket::Ack { request, .. } => Some(*request),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_stored_input_leaves_in_order_and_ends_with_three_byes() {
    let mut cfg = SenderConfig::new(stereo());
    cfg.fec = None;
    let mut r = Rig::new(cfg, 48_000);
    r.run(3_000);
    let seqs = r.media_seqs();
    // 1 s in 5 ms packets, numbered one after the other
    assert_eq!(seqs.len(), 200);
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    assert_eq!(r.s.stats().frames_sent, 48_000);
    // the receiver never spoke: no lingering, three BYEs and the end
    assert_eq!(r.byes(), 3);
    assert!(r.s.is_finished());
    assert!(r
        .events
        .contains(&SenderEvent::Finished(FinishReason::EndOfInput)));
}

#[test]
fn only_the_receivers_address_may_pause_and_numbers_converge_to_the_newest() {
    let mut cfg = SenderConfig::new(stereo());
    cfg.fec = None;
    let mut r = Rig::new(cfg, 48_000 * 10);
    r.run(100);
    let receiver = r.s.config().receiver_addr;
    // a stranger's PAUSE is counted and changes nothing
    r.flow(STRANGER, true, 1_000);
    assert!(!r.s.is_paused());
    assert_eq!(r.s.stats().requests_foreign, 1);
    assert!(r.acks().is_empty());
    // the receiver's PAUSE 5 stops media and is acknowledged
    r.flow(receiver, true, 5);
    assert!(r.s.is_paused());
    assert_eq!(r.acks(), [5]);
    let before = r.media_seqs().len();
    r.run(200);
    assert_eq!(r.media_seqs().len(), before, "media left while paused");
    // a stale RESUME (3) is answered with the newest number applied, and changes nothing
    r.flow(receiver, false, 3);
    assert!(r.s.is_paused());
    assert_eq!(r.acks(), [5, 5]);
    // RESUME 6 goes on, and media flows again
    r.flow(receiver, false, 6);
    assert!(!r.s.is_paused());
    r.run(100);
    assert!(r.media_seqs().len() > before);
    assert_eq!(r.s.stats().pauses_applied, 1);
    assert_eq!(r.s.stats().resumes_applied, 1);
}

#[test]
fn a_strangers_reports_neither_speak_for_the_receiver_nor_keep_the_session_alive() {
    let mut cfg = SenderConfig::new(stereo());
    cfg.fec = None;
    cfg.receiver_timeout = Duration::from_millis(500);
    let mut r = Rig::new(cfg, 48_000 * 10);
    r.run(100);
    r.report(5);
    let honest =
        r.s.stats()
            .receiver_report
            .expect("the receiver's report is the view");
    assert_eq!(honest.packets_lost, 0);
    // a stranger reports heavy loss every 100 ms, with the receiver's SSRC
    for _ in 0..20 {
        r.report_from(STRANGER, 9, 1_000);
        assert_eq!(
            r.s.stats().receiver_report,
            Some(honest),
            "a stranger spoke"
        );
        r.run(100);
    }
    let lost = r.events.iter().find_map(|e| match e {
        SenderEvent::Finished(FinishReason::ReceiverLost { silent_ms }) => Some(*silent_ms),
        _ => None,
    });
    let silent_ms = lost.expect("the receiver fell silent; a stranger's reports kept it alive");
    assert!((500..700).contains(&silent_ms), "silent for {silent_ms} ms");
}

#[test]
fn a_pause_inside_a_spread_group_finishes_the_group_and_leaves_no_gap() {
    let mut cfg = SenderConfig::new(stereo());
    cfg.fec = Some(FecParams::new(8, 2).unwrap());
    cfg.spread = 2;
    let mut r = Rig::new(cfg, 48_000 * 10);
    let receiver = r.s.config().receiver_addr;
    // until a group is partly sent: its media sequence numbers then have a gap
    let gap = |seqs: &[u16]| {
        let (lo, hi) = (*seqs.iter().min().unwrap(), *seqs.iter().max().unwrap());
        (hi - lo) as usize + 1 != seqs.len()
    };
    let mut steps = 0;
    loop {
        r.run(1);
        let seqs = r.media_seqs();
        if !seqs.is_empty() && gap(&seqs) {
            break;
        }
        steps += 1;
        assert!(steps < 1_000, "no spread group was ever partly sent");
    }
    r.flow(receiver, true, 1);
    assert!(r.s.is_paused());
    r.run(500);
    let seqs = r.media_seqs();
    assert!(
        !gap(&seqs),
        "a PAUSE left sequence numbers unsent: {seqs:?}"
    );
    // and then nothing more while paused
    let n = seqs.len();
    r.run(500);
    assert_eq!(r.media_seqs().len(), n);
}

#[test]
fn after_bye_a_report_lacking_the_last_packet_brings_bye_again() {
    let mut cfg = SenderConfig::new(stereo());
    cfg.fec = None;
    let mut r = Rig::new(cfg, 4_800);
    // the receiver is heard from, so the sender lingers after BYE for its NACKs
    r.run(10);
    r.report(0);
    r.run(600);
    assert_eq!(r.byes(), 3);
    assert!(!r.s.is_finished(), "the sender should linger for NACKs");
    let last = *r.media_seqs().last().unwrap();
    // a report that lacks the last packet: BYE again at once (the last was 100 ms ago or
    // more), a second such report within 100 ms waits for the 100 ms
    r.report(last.wrapping_sub(3));
    r.run(1);
    assert_eq!(r.byes(), 4);
    r.report(last.wrapping_sub(3));
    r.run(50);
    assert_eq!(r.byes(), 4);
    r.run(60);
    assert_eq!(r.byes(), 5);
    // no report, no BYE
    r.run(300);
    assert_eq!(r.byes(), 5);
    // one that has it: no more BYE, and the sender finishes once the receiver is silent
    r.report(last);
    r.run(2_000);
    assert_eq!(r.byes(), 5);
    assert!(r.s.is_finished());
}

#[test]
fn a_nack_is_answered_from_the_receiver_only() {
    let mut cfg = SenderConfig::new(stereo());
    cfg.fec = None;
    let mut r = Rig::new(cfg, 48_000 * 10);
    r.run(10);
    r.report(0);
    r.run(100);
    let ssrc = r.s.ssrcs()[0];
    let seqs = r.media_seqs();
    let lost = [seqs[3], seqs[4]];
    let nack = || {
        let mut b = BytesMut::new();
        rtcp::write_receiver_report(&mut b, RECEIVER_SSRC, &[]);
        rtcp::write_nack(&mut b, RECEIVER_SSRC, ssrc, &rtcp::NackList::pack(&lost).0);
        b
    };
    let retransmissions = |r: &Rig| {
        r.sent
            .iter()
            .filter(|d| rtp::classify(d) == DatagramKind::Retransmission)
            .count()
    };
    let b = nack();
    r.from(STRANGER, b);
    assert_eq!(retransmissions(&r), 0);
    assert_eq!(r.s.stats().nacks_foreign, 1);
    let b = nack();
    let receiver = r.s.config().receiver_addr;
    r.from(receiver, b);
    assert_eq!(retransmissions(&r), 2);
    // each answer carries the original sequence number first (RFC 4588)
    let osn: Vec<u16> = r
        .sent
        .iter()
        .filter(|d| rtp::classify(d) == DatagramKind::Retransmission)
        .map(|d| u16::from_be_bytes([d[12], d[13]]))
        .collect();
    assert_eq!(osn, lost);
}

/// A multicast sender (`SenderConfig::multicast`): no single member pauses it.
mod multicast {
    use super::super::*;
    use isostream_media::{AudioSpec, SampleFormat};
    use isostream_transport::rtcp::{write_flow, write_nack, NackList, APP_PAUSE};
    use isostream_transport::rtp::{classify, DatagramKind, RtpHeader};
    use isostream_transport::time::Duration;
    use std::net::SocketAddr;

    const GROUP: SocketAddr = SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(239, 1, 2, 3)),
        5004,
    );

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    /// Runs the session until `until_ms` (1 ms steps, stored audio of silence fed as wanted),
    /// returning what it sent: (to, datagram).
    fn run(s: &mut SenderSession, from_ms: u64, until_ms: u64) -> Vec<(SocketAddr, Bytes)> {
        let fb = s.config().spec.frame_bytes();
        let mut out = Vec::new();
        for ms in from_ms..until_ms {
            let now = at(ms);
            let want = s.audio_wanted();
            if want > 0 {
                let audio = vec![0u8; want * fb];
                s.handle_input(Input::Audio {
                    now,
                    frames: &audio,
                });
            }
            s.handle_input(Input::Timeout(now));
            while let Output::Transmit(t) = s.poll_output() {
                out.push((t.to, t.data));
            }
        }
        out
    }

    fn media(out: &[(SocketAddr, Bytes)]) -> Vec<RtpHeader> {
        out.iter()
            .filter(|(_, d)| classify(d) == DatagramKind::Media)
            .map(|(_, d)| RtpHeader::parse(d).expect("media parses").0)
            .collect()
    }

    fn multicast_sender() -> SenderSession {
        let spec = AudioSpec {
            rate: 48_000,
            channels: 2,
            format: SampleFormat::S16,
        };
        let mut cfg = SenderConfig::new(spec);
        cfg.fec = None;
        cfg.receiver_addr = GROUP;
        cfg.multicast = true;
        cfg.receiver_timeout = Duration::from_millis(500);
        SenderSession::new(cfg).expect("a valid configuration")
    }

    #[test]
    fn a_multicast_sender_ignores_pause_and_answers_any_members_nack_to_the_group() {
        let mut s = multicast_sender();
        let before = run(&mut s, 0, 100);
        let sent = media(&before);
        assert!(sent.len() >= 15, "5 ms packets for 100 ms: {}", sent.len());
        assert!(before.iter().all(|(to, _)| *to == GROUP));
        let ssrc = sent[0].ssrc;
        // one member asks to PAUSE: the stream goes on at the media rate
        let member: SocketAddr = "10.0.0.7:40000".parse().expect("an address");
        let mut b = BytesMut::new();
        write_flow(&mut b, APP_PAUSE, 0x1234, 1);
        s.handle_input(Input::Datagram {
            now: at(100),
            from: member,
            data: b.split().freeze(),
        });
        assert!(!s.is_paused());
        let after = run(&mut s, 100, 200);
        let more = media(&after);
        assert!(
            (18..=22).contains(&more.len()),
            "100 ms more at 5 ms packets, paced at the media rate: {}",
            more.len()
        );
        assert_eq!(s.stats().requests_ignored, 1);
        assert_eq!(s.stats().pauses_applied, 0);
        // another member (an address and SSRC never seen) asks for a packet it lost: the
        // retransmission goes to the group, once within a round trip
        let lost = sent[3].seq;
        let (list, _) = NackList::pack(&[lost]);
        let other: SocketAddr = "10.0.0.8:40002".parse().expect("an address");
        for k in 0..2 {
            write_nack(&mut b, 0x5678 + k, ssrc, &list);
            s.handle_input(Input::Datagram {
                now: at(200),
                from: other,
                data: b.split().freeze(),
            });
        }
        let answer = run(&mut s, 200, 210);
        let rtx: Vec<_> = answer
            .iter()
            .filter(|(_, d)| classify(d) == DatagramKind::Retransmission)
            .collect();
        assert_eq!(rtx.len(), 1, "one answer for two NACKs of one packet");
        assert_eq!(rtx[0].0, GROUP);
        // the original sequence number leads the RTX payload (RFC 4588)
        let (_, payload) = RtpHeader::parse(&rtx[0].1).expect("RTX parses");
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), lost);
        assert_eq!(s.stats().nacks_foreign, 0);
        // the members fall silent: past the receiver timeout the stream goes on
        let late = run(&mut s, 210, 1_500);
        assert!(!s.is_finished());
        assert!(media(&late).len() > 200);
    }
}
