//! SRTP and SRTCP (RFC 3711; AEAD_AES_128_GCM of RFC 7714): the one stage between a pump and
//! the network when a key is given.
//!
//! The pumps ([`crate::pump`]) protect every datagram a session hands out and unprotect every
//! datagram before the session sees it, so the sockets, `bench` and the tests all run it.
//! Datagrams are told apart by RFC 5761 ([`rtp::classify`]): RTCP (byte 1 in 192..=223) is
//! SRTCP, everything else SRTP: media, retransmissions (payload type 109, their own SSRC) and
//! repair packets (payload type 110).
//!
//! Repair packets share their media stream's SSRC but count in a sequence space of their own,
//! so under the media's keys a repair packet and a media packet of the same sequence number
//! would share a keystream. They are therefore protected under a second context: the same
//! master key with the first byte of the master salt XORed with [`REPAIR_SALT_XOR`] (outside
//! the bytes the key derivation's label and index touch), which derives unrelated session
//! keys. A stock SRTP peer never sees a repair packet (they are off for it).
//!
//! The keying is the one of ffmpeg's `-srtp_out_params` / `-srtp_in_params` and of SDES
//! (RFC 4568, `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:KEY`): one base64 string holding
//! the master key followed by the master salt, 30 bytes for AES_CM_128_HMAC_SHA1_80 and 28
//! for AEAD_AES_128_GCM. Both directions use the one key: the keystreams differ by SSRC, and
//! the sender's and receiver's SSRCs differ.
//!
//! The implementation is the `webrtc-srtp` crate (pure Rust, webrtc-rs). It returns a new
//! buffer per packet, so protecting or unprotecting a datagram costs one allocation (two for
//! AEAD_AES_128_GCM), the only per-packet allocation of the steady path. Around it this stage
//! adds what a receiver facing forged traffic needs:
//!
//! - lengths are checked before the crate sees a datagram (it indexes without checking);
//! - an SRTCP packet whose E bit is 0 is refused (the crate would hand such a packet on
//!   without checking its tag; isostream and ffmpeg always encrypt SRTCP);
//! - inbound contexts are kept per SSRC (and SRTP/SRTCP), and one is made only by a packet
//!   that authenticated: the crate starts an SSRC's replay window at the first packet it
//!   checks, tag verified or not, so a forged first packet with a far-off index would
//!   otherwise make every genuine one "too old". Unknown SSRCs go through a probe context
//!   that is replaced after each packet, so forged SSRCs neither poison nor grow the state;
//! - replays are refused by a window of [`RTP_REPLAY_WINDOW`] packets per SSRC (SRTP) and
//!   [`RTCP_REPLAY_WINDOW`] (SRTCP).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use isostream_transport::rtp::{self, DatagramKind};
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

/// XORed into the first byte of the master salt for the repair packets' context.
pub const REPAIR_SALT_XOR: u8 = 0x01;
/// Packets per SSRC the SRTP replay window spans (reordering deeper than this is refused):
/// the deepest reordering isostream's own sender makes, `--spread 16` blocks of 255
/// packets, is 16 × 255 = 4080.
pub const RTP_REPLAY_WINDOW: usize = 4096;
/// SRTCP packets per SSRC the SRTCP replay window spans.
pub const RTCP_REPLAY_WINDOW: usize = 128;
/// Authenticated (SSRC, SRTP or SRTCP) streams kept per direction; past it the first added
/// is forgotten (a receiver that outlives many senders).
pub const KNOWN_SSRCS: usize = 64;

/// The SRTP protection profiles (crypto suites) isostream offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SrtpSuite {
    /// AES-128 in counter mode, HMAC-SHA1 tags of 80 bits (RFC 3711; the one ffmpeg speaks).
    #[default]
    AesCm128HmacSha1_80,
    /// AES-128-GCM with 128-bit tags (RFC 7714).
    AeadAes128Gcm,
}

impl SrtpSuite {
    /// The suite's name in SDP (RFC 4568) and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// The suite of an SDP/CLI name (`None`: not one isostream offers).
    pub fn from_name(name: &str) -> Option<SrtpSuite> {
        [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm]
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// Master key length, in bytes.
    pub fn key_bytes(self) -> usize {
        16
    }

    /// Master salt length, in bytes.
    pub fn salt_bytes(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => 14,
            SrtpSuite::AeadAes128Gcm => 12,
        }
    }

    /// Bytes the inline key holds (master key, then master salt).
    pub fn master_bytes(self) -> usize {
        self.key_bytes() + self.salt_bytes()
    }

    /// Bytes protection adds to an RTP packet (its tag), in bytes.
    pub fn rtp_overhead_bytes(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => 10,
            SrtpSuite::AeadAes128Gcm => 16,
        }
    }

    /// Bytes protection adds to an RTCP packet (tag, E bit and SRTCP index), in bytes.
    pub fn rtcp_overhead_bytes(self) -> usize {
        self.rtp_overhead_bytes() + 4
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            SrtpSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        }
    }
}

/// What is wrong with a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SrtpKeyError {
    /// Not base64.
    #[error("SRTP key is not base64 ({0})")]
    NotBase64(String),
    /// Base64 of the wrong length.
    #[error("SRTP key holds {got} bytes; {suite} takes {want} (master key and salt)")]
    Length {
        /// The suite.
        suite: &'static str,
        /// Bytes it takes.
        want: usize,
        /// Bytes the key held.
        got: usize,
    },
    /// An SDES lifetime or MKI (`|2^31|1:1`), which isostream does not take.
    #[error("SRTP key has a lifetime or MKI parameter ('|'); give the base64 key alone")]
    Parameters,
    /// The crate refused the key.
    #[error("SRTP key refused: {0}")]
    Refused(String),
}

/// A master key and salt, and its suite. Its `Debug` does not show the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    suite: SrtpSuite,
    master: Vec<u8>,
}

impl fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SrtpKey({}, redacted)", self.suite.name())
    }
}

impl SrtpKey {
    /// A key of `suite` from its SDES inline form: base64 of the master key then salt, as
    /// ffmpeg's `-srtp_out_params` takes it; an `inline:` prefix and surrounding white
    /// space are allowed.
    pub fn from_inline(suite: SrtpSuite, text: &str) -> Result<SrtpKey, SrtpKeyError> {
        let t = text.trim();
        let t = t.strip_prefix("inline:").unwrap_or(t);
        if t.contains('|') {
            return Err(SrtpKeyError::Parameters);
        }
        let master = STANDARD
            .decode(t)
            .map_err(|e| SrtpKeyError::NotBase64(e.to_string()))?;
        Self::from_bytes(suite, &master)
    }

    /// A key of `suite` from the master key followed by the master salt.
    pub fn from_bytes(suite: SrtpSuite, master: &[u8]) -> Result<SrtpKey, SrtpKeyError> {
        if master.len() != suite.master_bytes() {
            return Err(SrtpKeyError::Length {
                suite: suite.name(),
                want: suite.master_bytes(),
                got: master.len(),
            });
        }
        Ok(SrtpKey {
            suite,
            master: master.to_vec(),
        })
    }

    /// The suite.
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// The SDES inline form (base64 of master key and salt), for SDP and ffmpeg.
    pub fn inline(&self) -> String {
        STANDARD.encode(&self.master)
    }

    fn context(&self, repair: bool) -> Result<Context, SrtpKeyError> {
        let (key, salt) = self.master.split_at(self.suite.key_bytes());
        let mut salt = salt.to_vec();
        if repair {
            salt[0] ^= REPAIR_SALT_XOR;
        }
        Context::new(
            key,
            &salt,
            self.suite.profile(),
            Some(srtp_replay_protection(RTP_REPLAY_WINDOW)),
            Some(srtcp_replay_protection(RTCP_REPLAY_WINDOW)),
        )
        .map_err(|e| SrtpKeyError::Refused(e.to_string()))
    }
}

/// Why a datagram was not protected or unprotected.
#[derive(Debug, thiserror::Error)]
pub enum SrtpError {
    /// Too short, not RTP/RTCP version 2, or an SRTCP packet without its E bit.
    #[error("not an SRTP/SRTCP packet")]
    Malformed,
    /// The tag did not verify, or the packet was replayed (the crate's word).
    #[error("SRTP: {0}")]
    Crypto(#[from] webrtc_srtp::Error),
}

/// Which of a stream's two packet-index spaces a context entry keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    Srtp,
    Srtcp,
}

/// Inbound contexts of one key: one per SSRC and flavour whose first packet authenticated,
/// and a fresh probe for the rest.
///
/// `webrtc-srtp` creates an SSRC's replay state from the first packet it *checks*, before
/// its tag is verified: a forged first packet with a far-off index would leave every genuine
/// one "too old". So each (SSRC, flavour) gets its own context, made of the probe a genuine
/// packet initialised, and the probe is replaced after every packet that fails in it.
struct Inbound {
    key: SrtpKey,
    repair: bool,
    known: Vec<(u32, Flavour, Context)>,
    probe: Context,
}

impl Inbound {
    fn new(key: &SrtpKey, repair: bool) -> Result<Inbound, SrtpKeyError> {
        Ok(Inbound {
            key: key.clone(),
            repair,
            known: Vec::new(),
            probe: key.context(repair)?,
        })
    }

    fn unprotect(
        &mut self,
        ssrc: u32,
        flavour: Flavour,
        data: &[u8],
        f: impl Fn(&mut Context, &[u8]) -> Result<Bytes, webrtc_srtp::Error>,
    ) -> Result<Bytes, SrtpError> {
        if let Some((_, _, ctx)) = self
            .known
            .iter_mut()
            .find(|(s, fl, _)| *s == ssrc && *fl == flavour)
        {
            return Ok(f(ctx, data)?);
        }
        let r = f(&mut self.probe, data);
        // whatever happened, the probe now holds state: a genuine packet's becomes its
        // SSRC's context, a forged one's is thrown away
        if let Ok(fresh) = self.key.context(self.repair) {
            let used = std::mem::replace(&mut self.probe, fresh);
            if r.is_ok() {
                if self.known.len() == KNOWN_SSRCS {
                    self.known.remove(0);
                }
                self.known.push((ssrc, flavour, used));
            }
        }
        Ok(r?)
    }
}

/// The SRTP/SRTCP stage of one endpoint: outbound contexts for what it sends, inbound ones
/// for what it receives, each pair for media (and RTCP) and for repair packets.
pub struct Srtp {
    suite: SrtpSuite,
    out_media: Context,
    out_repair: Context,
    in_media: Inbound,
    in_repair: Inbound,
}

impl fmt::Debug for Srtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Srtp({})", self.suite.name())
    }
}

/// Whether the RTP header of `d` (fixed part, CSRCs, and the header extension with every
/// RFC 8285 element inside its block) fits in the first `len` bytes of `d`. The SRTP library
/// parses the header before it authenticates, and an element that runs past the datagram
/// makes it panic (found by fuzzing): such a datagram is malformed and never reaches it.
fn rtp_header_fits(d: &[u8], len: usize) -> bool {
    let len = len.min(d.len());
    let mut at = rtp::HEADER_LEN + 4 * (d[0] & 0x0f) as usize;
    if at > len {
        return false;
    }
    if d[0] & 0x10 == 0 {
        return true;
    }
    if at + 4 > len {
        return false;
    }
    let profile = u16::from_be_bytes([d[at], d[at + 1]]);
    let end = at + 4 + 4 * u16::from_be_bytes([d[at + 2], d[at + 3]]) as usize;
    if end > len {
        return false;
    }
    at += 4;
    match profile {
        0xBEDE => {
            while at < end {
                let b = d[at];
                at += 1;
                if b == 0 {
                    continue;
                }
                if b >> 4 == 0x0f {
                    break;
                }
                at += (b & 0x0f) as usize + 1;
            }
        }
        0x1000 => {
            while at < end {
                let b = d[at];
                at += 1;
                if b == 0 {
                    continue;
                }
                if at >= end {
                    return false;
                }
                at += 1 + d[at] as usize;
            }
        }
        _ => {}
    }
    at <= end
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

impl Srtp {
    /// The stage for `key`.
    pub fn new(key: &SrtpKey) -> Result<Srtp, SrtpKeyError> {
        Ok(Srtp {
            suite: key.suite(),
            out_media: key.context(false)?,
            out_repair: key.context(true)?,
            in_media: Inbound::new(key, false)?,
            in_repair: Inbound::new(key, true)?,
        })
    }

    /// The suite.
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// `datagram` (RTP or an RTCP compound) protected: encrypted, its tag appended (and for
    /// RTCP the E bit and SRTCP index).
    pub fn protect(&mut self, datagram: &[u8]) -> Result<Bytes, SrtpError> {
        match rtp::classify(datagram) {
            DatagramKind::Foreign => Err(SrtpError::Malformed),
            DatagramKind::Rtcp if datagram.len() >= 8 => {
                Ok(self.out_media.encrypt_rtcp(datagram)?)
            }
            DatagramKind::Rtcp => Err(SrtpError::Malformed),
            _ if datagram.len() < rtp::HEADER_LEN => Err(SrtpError::Malformed),
            _ if !rtp_header_fits(datagram, datagram.len()) => Err(SrtpError::Malformed),
            DatagramKind::Repair => Ok(self.out_repair.encrypt_rtp(datagram)?),
            _ => Ok(self.out_media.encrypt_rtp(datagram)?),
        }
    }

    /// `datagram` checked and decrypted; an error for anything that is not SRTP/SRTCP of
    /// this key, or that was replayed. Never panics, whatever the bytes.
    pub fn unprotect(&mut self, datagram: &[u8]) -> Result<Bytes, SrtpError> {
        let tag = self.suite.rtp_overhead_bytes();
        match rtp::classify(datagram) {
            DatagramKind::Foreign => Err(SrtpError::Malformed),
            DatagramKind::Rtcp => {
                // header and sender SSRC, the tag, E bit and SRTCP index
                if datagram.len() < 8 + tag + 4 {
                    return Err(SrtpError::Malformed);
                }
                let e_at = match self.suite {
                    SrtpSuite::AesCm128HmacSha1_80 => datagram.len() - tag - 4,
                    SrtpSuite::AeadAes128Gcm => datagram.len() - 4,
                };
                if datagram[e_at] & 0x80 == 0 {
                    return Err(SrtpError::Malformed);
                }
                self.in_media
                    .unprotect(be32(datagram, 4), Flavour::Srtcp, datagram, |c, d| {
                        c.decrypt_rtcp(d)
                    })
            }
            _ if datagram.len() < rtp::HEADER_LEN + tag => Err(SrtpError::Malformed),
            _ if !rtp_header_fits(datagram, datagram.len() - tag) => Err(SrtpError::Malformed),
            DatagramKind::Repair => {
                self.in_repair
                    .unprotect(be32(datagram, 8), Flavour::Srtp, datagram, |c, d| {
                        c.decrypt_rtp(d)
                    })
            }
            _ => self
                .in_media
                .unprotect(be32(datagram, 8), Flavour::Srtp, datagram, |c, d| {
                    c.decrypt_rtp(d)
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 3711, appendix B.2 / the key ffmpeg's own tests use
    const KEY: &str = "WbTBosdVUZqEb6Htqhn+m3z7wUh4RJVR8nE15GbN";

    fn rtp(seq: u16, ssrc: u32, pt: u8) -> Vec<u8> {
        let mut d = vec![0x80, pt];
        d.extend_from_slice(&seq.to_be_bytes());
        d.extend_from_slice(&1234u32.to_be_bytes());
        d.extend_from_slice(&ssrc.to_be_bytes());
        d.extend_from_slice(&[7; 40]);
        d
    }

    fn rtcp_app(ssrc: u32) -> Vec<u8> {
        let mut d = vec![0x81, 204, 0, 3];
        d.extend_from_slice(&ssrc.to_be_bytes());
        d.extend_from_slice(b"ISOS");
        d.extend_from_slice(&[0, 0, 0, 9]);
        d
    }

    fn pair(suite: SrtpSuite) -> (Srtp, Srtp) {
        let key = match suite {
            SrtpSuite::AesCm128HmacSha1_80 => SrtpKey::from_inline(suite, KEY).unwrap(),
            SrtpSuite::AeadAes128Gcm => SrtpKey::from_bytes(suite, &[3; 28]).unwrap(),
        };
        (Srtp::new(&key).unwrap(), Srtp::new(&key).unwrap())
    }

    /// An RTP packet with a header extension of `profile` holding `block` (padded to words).
    fn rtp_with_extension(profile: u16, block: &[u8]) -> Vec<u8> {
        let mut d = rtp(9, 0x1234, 96);
        d[0] |= 0x10;
        let words = block.len().div_ceil(4);
        let mut ext = profile.to_be_bytes().to_vec();
        ext.extend_from_slice(&(words as u16).to_be_bytes());
        ext.extend_from_slice(block);
        ext.resize(4 + 4 * words, 0);
        d.splice(12..12, ext);
        d
    }

    #[test]
    fn header_extension_elements_past_their_block_are_malformed_not_a_panic() {
        for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm] {
            let (mut tx, mut rx) = pair(suite);
            // well-formed one-byte and two-byte elements go through both ways
            for (profile, block) in [(0xBEDE, &[0x12, 1, 2, 3][..]), (0x1000, &[5, 2, 9, 9])] {
                let mut d = rtp_with_extension(profile, block);
                d[3] = block[0]; // a sequence number of its own
                let p = tx.protect(&d).unwrap();
                assert_eq!(&rx.unprotect(&p).unwrap()[..], &d[..]);
            }
            // an element longer than its block (and than the datagram): the library would
            // panic on it
            let (mut tx, mut rx) = pair(suite);
            for (profile, block) in [(0xBEDE, &[0x1f][..]), (0x1000, &[5, 255])] {
                let mut d = rtp_with_extension(profile, block);
                d.truncate(12 + 8);
                assert!(matches!(tx.protect(&d), Err(SrtpError::Malformed)));
                d.extend_from_slice(&[0; 16]);
                assert!(matches!(rx.unprotect(&d), Err(SrtpError::Malformed)));
            }
            // the datagram the fuzzer found (its first byte picked the GCM suite)
            let found = [
                0xb3, 0xb3, 0xb3, 0xb3, 0xb3, 0xb3, 0x2a, 0, 0, 0, 0, 0x5f, 0x23, 0x32, 0, 0, 0, 0,
                0x1a, 0x2b, 0x5b, 0x3d, 0x05, 0, 0x10, 0, 0, 0x02, 0, 0, 0, 0x3d, 0xff, 0xff, 0, 0,
                0x01, 0, 0, 0, 0, 0xb8, 0, 0, 0, 0, 0, 0, 0x18,
            ];
            assert!(rx.unprotect(&found).is_err());
            assert!(tx.protect(&found).is_err());
        }
    }

    #[test]
    fn keys_parse_like_ffmpeg_and_sdes() {
        let s = SrtpSuite::AesCm128HmacSha1_80;
        let k = SrtpKey::from_inline(s, KEY).unwrap();
        assert_eq!(k.inline(), KEY);
        assert_eq!(
            SrtpKey::from_inline(s, &format!(" inline:{KEY}\n")).unwrap(),
            k
        );
        assert!(matches!(
            SrtpKey::from_inline(s, "AAAA"),
            Err(SrtpKeyError::Length { got: 3, .. })
        ));
        assert!(matches!(
            SrtpKey::from_inline(s, "not base64!"),
            Err(SrtpKeyError::NotBase64(_))
        ));
        assert_eq!(
            SrtpKey::from_inline(s, &format!("{KEY}|2^20|1:4")),
            Err(SrtpKeyError::Parameters)
        );
        assert!(!format!("{k:?}").contains(KEY));
        assert_eq!(
            SrtpSuite::from_name("aead_aes_128_gcm"),
            Some(SrtpSuite::AeadAes128Gcm)
        );
    }

    #[test]
    fn every_kind_of_datagram_round_trips_and_replays_are_refused() {
        for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm] {
            let (mut tx, mut rx) = pair(suite);
            for d in [
                rtp(1, 5, 96),
                rtp(1, 5, rtp::PT_REPAIR), // same SSRC and sequence number as the media
                rtp(2, 5, 96),
                rtp(9, 6, rtp::PT_RTX),
                rtcp_app(5),
                rtcp_app(5),
            ] {
                let p = tx.protect(&d).unwrap();
                assert_ne!(&p[12..], &d[12..]);
                assert_eq!(&rx.unprotect(&p).unwrap()[..], &d[..], "{suite:?}");
                assert!(rx.unprotect(&p).is_err(), "replay accepted, {suite:?}");
            }
        }
    }

    #[test]
    fn repair_and_media_of_one_sequence_number_do_not_share_a_keystream() {
        let (mut tx, _) = pair(SrtpSuite::AesCm128HmacSha1_80);
        let a = tx.protect(&rtp(1, 5, 96)).unwrap();
        let mut r = rtp(1, 5, rtp::PT_REPAIR);
        r[1] = 96; // same header bytes as media but through the repair context
        let b = tx.out_repair.encrypt_rtp(&r).unwrap();
        assert_ne!(&a[12..52], &b[12..52]);
    }

    #[test]
    fn forged_truncated_and_foreign_key_datagrams_are_refused_without_panic() {
        let (mut tx, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_80);
        let other = SrtpKey::from_bytes(SrtpSuite::AesCm128HmacSha1_80, &[9; 30]).unwrap();
        let mut forger = Srtp::new(&other).unwrap();
        let good = tx.protect(&rtp(1, 5, 96)).unwrap();
        let forged = forger.protect(&rtp(2, 5, 96)).unwrap();
        assert!(rx.unprotect(&forged).is_err());
        assert!(rx.unprotect(&rtp(3, 5, 96)).is_err()); // plain RTP
        assert!(rx.unprotect(&rtcp_app(5)).is_err()); // plain RTCP
                                                      // an SRTCP packet with the E bit cleared (the crate would skip the tag)
        let mut e0 = tx.protect(&rtcp_app(5)).unwrap().to_vec();
        let e_at = e0.len() - 14;
        e0[e_at] &= 0x7f;
        assert!(rx.unprotect(&e0).is_err());
        for n in 0..good.len() {
            assert!(rx.unprotect(&good[..n]).is_err(), "{n} bytes");
        }
        for n in 0..40 {
            let mut d = vec![0x80u8; n];
            if n > 1 {
                d[1] = 200;
            }
            let _ = rx.unprotect(&d);
            let _ = rx.protect(&d);
        }
        // forged SSRCs by the hundred: nothing is kept, the real stream still plays
        for ssrc in 100..400 {
            assert!(rx
                .unprotect(&forger.protect(&rtp(1, ssrc, 96)).unwrap())
                .is_err());
        }
        assert!(rx.in_media.known.is_empty());
        assert!(rx.unprotect(&good).is_ok());
        assert_eq!(rx.in_media.known.len(), 1);
    }

    #[test]
    fn a_forged_first_packet_cannot_push_the_replay_window_past_the_genuine_ones() {
        let (mut tx, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_80);
        let other = SrtpKey::from_bytes(SrtpSuite::AesCm128HmacSha1_80, &[9; 30]).unwrap();
        let mut forger = Srtp::new(&other).unwrap();
        // the SSRC is known from its (genuine) SRTCP; its first RTP packet is forged, far ahead
        assert!(rx.unprotect(&tx.protect(&rtcp_app(5)).unwrap()).is_ok());
        assert!(rx
            .unprotect(&forger.protect(&rtp(30_000, 5, 96)).unwrap())
            .is_err());
        // and an SRTCP packet of an SSRC known only from RTP, with a far-off index
        assert!(rx.unprotect(&tx.protect(&rtp(1, 6, 96)).unwrap()).is_ok());
        let mut far = forger.protect(&rtcp_app(6)).unwrap().to_vec();
        let at = far.len() - 14;
        far[at..at + 4].copy_from_slice(&0x8000_9000u32.to_be_bytes());
        assert!(rx.unprotect(&far).is_err());
        for seq in 2..20 {
            assert!(rx.unprotect(&tx.protect(&rtp(seq, 5, 96)).unwrap()).is_ok());
            assert!(rx.unprotect(&tx.protect(&rtp(seq, 6, 96)).unwrap()).is_ok());
        }
        assert!(rx.unprotect(&tx.protect(&rtcp_app(6)).unwrap()).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_refused_without_panic(
            d in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            rtcp in proptest::bool::ANY,
        ) {
            let (_, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_80);
            let (_, mut gcm) = pair(SrtpSuite::AeadAes128Gcm);
            let mut d = d;
            if rtcp && d.len() > 1 {
                d[0] = 0x80 | (d[0] & 0x3f);
                d[1] = 200 + d[1] % 8;
            }
            proptest::prop_assert!(rx.unprotect(&d).is_err());
            proptest::prop_assert!(gcm.unprotect(&d).is_err());
            let _ = rx.protect(&d);
        }

        #[test]
        fn any_header_round_trips_once_and_a_replay_is_refused(
            d in proptest::collection::vec(proptest::num::u8::ANY, 12..120),
            gcm in proptest::bool::ANY,
        ) {
            // what the fuzz target srtp_unprotect checks, on stable
            let suite = if gcm { SrtpSuite::AeadAes128Gcm } else { SrtpSuite::AesCm128HmacSha1_80 };
            let (mut tx, mut rx) = pair(suite);
            let mut d = d;
            d[0] = 0x80 | (d[0] & 0x3f);
            proptest::prop_assert!(rx.unprotect(&d).is_err());
            if let Ok(p) = tx.protect(&d) {
                proptest::prop_assert_eq!(&rx.unprotect(&p).unwrap()[..], &d[..]);
                proptest::prop_assert!(rx.unprotect(&p).is_err());
            }
            proptest::prop_assert!(rx.unprotect(&d).is_err());
        }

        #[test]
        fn a_flipped_bit_or_a_cut_is_refused_and_leaves_the_stream_intact(
            bit in 0usize..8 * 66,
            cut in 1usize..66,
            rtcp in proptest::bool::ANY,
            gcm in proptest::bool::ANY,
        ) {
            let suite = if gcm { SrtpSuite::AeadAes128Gcm } else { SrtpSuite::AesCm128HmacSha1_80 };
            let (mut tx, mut rx) = pair(suite);
            let plain = if rtcp { rtcp_app(5) } else { rtp(7, 5, 96) };
            let p = tx.protect(&plain).unwrap();
            let mut flipped = p.to_vec();
            let bit = bit % (8 * flipped.len());
            flipped[bit / 8] ^= 1 << (bit % 8);
            proptest::prop_assert!(rx.unprotect(&flipped).is_err());
            proptest::prop_assert!(rx.unprotect(&p[..p.len() - cut.min(p.len())]).is_err());
            proptest::prop_assert_eq!(&rx.unprotect(&p).unwrap()[..], &plain[..]);
        }
    }
}
