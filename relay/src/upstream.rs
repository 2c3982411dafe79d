//! The upstream: where the relay's stream comes from, and what the relay keeps of its RTCP.
//!
//! **Binding.** With `relay --connect ADDR` the upstream is `ADDR` (another relay). Without,
//! it is the source of the first media or repair packet, or of the first RTCP compound with a
//! sender report or a description, that reaches the relay from an address that is not a
//! listener's. From then on only that address is the upstream (RFC 3550 section 7: a
//! translator passes SSRCs unchanged, so the relay serves one session; a second sender is
//! foreign and counted).
//!
//! **What is kept.** The latest description (its substreams' SSRCs and RTX SSRCs, the rate
//! and packet size); the latest *regular* compound (a sender report or description without
//! BYE), byte for byte, which every listener gets at once when it joins and then every
//! report interval; and the *final* compound (the one with BYE), which a listener gets once
//! everything before it has been sent to it.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use isostream_receiver::flow::Request;
use isostream_transport::rtcp::{self, ReportBlock, SessionDesc};
use isostream_transport::time::Instant;

/// The CNAME the relay announces in its reports upstream.
pub const CNAME: &str = "isostream-relay";

/// The upstream's binding and the RTCP the relay keeps of it.
#[derive(Debug, Default)]
pub struct Upstream {
    /// The upstream's address, once bound (or from the start with `--connect`).
    addr: Option<SocketAddr>,
    /// The session description in effect.
    desc: Option<SessionDesc>,
    /// The latest regular compound (SR/SDES/DESC), byte for byte.
    compound: Option<Bytes>,
    /// The compound with BYE.
    final_compound: Option<Bytes>,
    /// When the upstream ended (BYE, or silence past the upstream timeout).
    ended_at: Option<Instant>,
    /// When the upstream was last heard.
    last_heard: Option<Instant>,
    /// When media first arrived.
    first_media: Option<Instant>,
    buf: BytesMut,
}

impl Upstream {
    /// An upstream at `connect` if given, else bound by its first datagram.
    pub fn new(connect: Option<SocketAddr>) -> Self {
        Upstream {
            addr: connect,
            ..Default::default()
        }
    }

    /// The upstream's address, if known.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Whether `from` is the upstream.
    pub fn is(&self, from: SocketAddr) -> bool {
        self.addr == Some(from)
    }

    /// Binds the upstream to `from` (the first sender heard).
    pub fn bind(&mut self, from: SocketAddr) {
        self.addr = Some(from);
    }

    /// The upstream was heard at `now`.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = Some(now);
    }

    /// When the upstream was last heard.
    pub fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }

    /// Media arrived at `now`.
    pub fn media(&mut self, now: Instant) {
        self.first_media.get_or_insert(now);
    }

    /// Whether any media arrived yet.
    pub fn has_media(&self) -> bool {
        self.first_media.is_some()
    }

    /// The description in effect.
    pub fn desc(&self) -> Option<&SessionDesc> {
        self.desc.as_ref()
    }

    /// Takes `desc`; returns whether it is new (the first, or a different one).
    pub fn set_desc(&mut self, desc: SessionDesc) -> bool {
        if self.desc.as_ref() == Some(&desc) {
            return false;
        }
        self.desc = Some(desc);
        true
    }

    /// Index of the substream of media SSRC `ssrc`.
    pub fn substream(&self, ssrc: u32) -> Option<usize> {
        self.desc
            .as_ref()?
            .substreams
            .iter()
            .position(|s| s.ssrc == ssrc)
    }

    /// The SSRC the sender's ACKs and descriptions carry (the first substream's).
    pub fn first_ssrc(&self) -> Option<u32> {
        Some(self.desc.as_ref()?.substreams.first()?.ssrc)
    }

    /// Keeps a regular compound (with a sender report or a description, no BYE).
    pub fn keep_compound(&mut self, d: Bytes) {
        self.compound = Some(d);
    }

    /// The latest regular compound.
    pub fn compound(&self) -> Option<&Bytes> {
        self.compound.as_ref()
    }

    /// The upstream said BYE at `now` in compound `d`.
    pub fn on_bye(&mut self, now: Instant, d: Bytes) {
        self.final_compound.get_or_insert(d);
        self.ended_at.get_or_insert(now);
    }

    /// The upstream went silent: it ended at `now` without BYE.
    pub fn lost(&mut self, now: Instant) {
        self.ended_at.get_or_insert(now);
    }

    /// The final compound (with BYE), if the upstream sent one.
    pub fn final_compound(&self) -> Option<&Bytes> {
        self.final_compound.as_ref()
    }

    /// Whether the upstream has ended.
    pub fn ended(&self) -> bool {
        self.ended_at.is_some()
    }

    /// When the upstream ended.
    pub fn ended_at(&self) -> Option<Instant> {
        self.ended_at
    }

    /// A receiver report from the relay's `ssrc` with `blocks`, its CNAME, and the flow
    /// `state` it wants (as a receiver restates it, docs/PROTOCOL.md section 7).
    pub fn report(&mut self, ssrc: u32, blocks: &[ReportBlock], state: Request) -> Bytes {
        self.buf.clear();
        rtcp::write_receiver_report(&mut self.buf, ssrc, blocks);
        rtcp::write_sdes_cname(&mut self.buf, ssrc, CNAME);
        let kind = if state.pause {
            rtcp::APP_PAUSE
        } else {
            rtcp::APP_RESUME
        };
        rtcp::write_flow(&mut self.buf, kind, ssrc, state.number);
        self.buf.split().freeze()
    }

    /// A PAUSE or RESUME from the relay's `ssrc`, alone in its datagram.
    pub fn request(&mut self, ssrc: u32, req: Request) -> Bytes {
        self.buf.clear();
        let kind = if req.pause {
            rtcp::APP_PAUSE
        } else {
            rtcp::APP_RESUME
        };
        rtcp::write_flow(&mut self.buf, kind, ssrc, req.number);
        self.buf.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_transport::rtcp::RtcpPacket;

    fn desc(ssrc: u32) -> SessionDesc {
        crate::testutil::stereo_desc(ssrc, Some(ssrc + 1))
    }

    #[test]
    fn binding_description_and_the_end() {
        let a = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut u = Upstream::new(None);
        assert!(!u.is(a));
        u.bind(a);
        assert!(u.is(a));
        assert!(u.set_desc(desc(5)));
        assert!(!u.set_desc(desc(5)));
        assert_eq!((u.substream(5), u.substream(6)), (Some(0), None));
        assert_eq!(u.first_ssrc(), Some(5));
        assert!(!u.ended());
        u.on_bye(Instant::ZERO, Bytes::from_static(b"bye"));
        u.on_bye(Instant::ZERO, Bytes::from_static(b"again"));
        assert!(u.ended());
        assert_eq!(&u.final_compound().unwrap()[..], b"bye");
    }

    #[test]
    fn reports_restate_the_flow_state() {
        let mut u = Upstream::new(None);
        let d = u.report(
            77,
            &[],
            Request {
                pause: true,
                number: 3,
            },
        );
        let p: Vec<_> = rtcp::parse_compound(&d).map(Result::unwrap).collect();
        assert!(matches!(p[0], RtcpPacket::ReceiverReport { ssrc: 77, .. }));
        assert_eq!(
            p.last(),
            Some(&RtcpPacket::Pause {
                ssrc: 77,
                request: 3
            })
        );
    }
}
