//! What the session tells a substream's receive chain about each datagram
//! ([`ReceiveContext`]), and the bound on a live sender's skip: a leaf that the stages, the
//! Opus intake and the retransmissions read without knowing [`super::Substreams`].

use isostream_media::SampleFormat;

/// The longest hole a live sender's marked packet may close (audio it dropped while
/// paused), in seconds: a marked packet further ahead is not a resumption.
pub const MAX_LIVE_HOLE_S: i64 = 60;

/// What the session tells the receive chain about itself, per datagram.
#[derive(Clone, Copy, Debug)]
pub struct ReceiveContext {
    /// Playback has started (the buffers no longer move their start).
    pub started: bool,
    /// The source is live.
    pub live: bool,
    /// The session's sample format.
    pub format: SampleFormat,
    /// A payload type that carries plain L16 (stock streams only).
    pub stock_l16: Option<u8>,
    /// The session's sample rate, in Hz.
    pub rate: u32,
}
