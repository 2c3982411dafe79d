//! Where a sender's audio comes from and where a receiver's goes: the traits the CLI's files,
//! pipes, devices and the tests' buffers implement.

use std::io;

/// A stored audio source (WAV file, raw PCM, synthesized signal): blocking reads of wire
/// frames, 0 at the end. The tokio driver reads it on a thread of its own
/// ([`crate::offload::ReadAhead`]); the simulator reads it inline.
pub trait AudioSource: Send {
    /// Reads whole wire frames into `out`; returns frames read, 0 at the end of the input.
    fn read_frames(&mut self, out: &mut [u8]) -> io::Result<usize>;
}

/// Where played-out audio goes (a WAV file, raw PCM on stdout, a sound card, a test buffer).
pub trait AudioSink: Send {
    /// Takes wire frames in playout order.
    fn write_frames(&mut self, frames: &[u8]) -> io::Result<()>;
    /// Makes what was written durable and readable (called periodically and at the end).
    fn flush(&mut self) -> io::Result<()>;
    /// For a sink with its own clock (a sound card): how many frames it wants now. The pump
    /// then plays out exactly that many, so the device's callback clock drives playout.
    /// `None` (files, pipes): the pump follows the session's playout clock.
    fn demand(&mut self) -> Option<usize> {
        None
    }
    /// How many frames the sink can take now without blocking (`usize::MAX`: no limit). A
    /// sink that writes on a thread of its own ([`crate::offload::SinkThread`]) says how
    /// much room its queue has; the pump plays out no more than that, so a stalled pipe or
    /// disk holds audio back in the jitter buffer instead of blocking the socket thread.
    fn room_frames(&mut self) -> usize {
        usize::MAX
    }
}
