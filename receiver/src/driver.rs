//! The tokio driver of a receiver session: the only part of the receiver that touches a
//! socket, a clock or an audio sink. It answers to the address the session's datagrams came
//! from (symmetric, so it works through NAT and relays) and pulls audio at the playout pace.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use isostream_media::AudioSpec;
use isostream_transport::time::{Duration, Instant};
use tokio::net::UdpSocket;

use crate::session::{ReceiverEvent, ReceiverSession, ReceiverStats};

/// Where played-out audio goes (a WAV file, raw PCM on stdout, a test buffer).
pub trait AudioSink: Send {
    /// Takes wire frames in playout order.
    fn write_frames(&mut self, frames: &[u8]) -> io::Result<()>;
    /// Makes what was written durable and readable (called periodically and at the end).
    fn flush(&mut self) -> io::Result<()>;
    /// For a sink with its own clock (a sound card): how many frames it wants now. The driver
    /// then plays out exactly that many, so the device's callback clock drives playout.
    /// `None` (files, pipes): the driver follows the session's playout clock.
    fn demand(&mut self) -> Option<usize> {
        None
    }
}

/// Size of a receive arena, in bytes.
const ARENA_BYTES: usize = 1 << 20;
/// Room kept free in the arena for the next datagram (the largest UDP payload).
const MAX_DATAGRAM: usize = 65_536;

/// How often the driver pulls audio from the playout clock.
pub const PLAYOUT_TICK: Duration = Duration::from_millis(5);

/// Why the driver stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The session ended (BYE or idle timeout) and `exit_on_end` was set.
    Ended,
    /// The shutdown future completed (Ctrl-C).
    Shutdown,
}

/// Runs `session` on `socket` until the session ends (with `exit_on_end`) or `shutdown`
/// completes. `make_sink` is called when a session starts, with its output format;
/// `observer` after every loop turn (for reports; it must be quick).
pub async fn run<F>(
    mut session: ReceiverSession,
    socket: UdpSocket,
    mut make_sink: F,
    exit_on_end: bool,
    shutdown: impl Future<Output = ()>,
    observer: &mut dyn FnMut(Instant, &ReceiverSession),
) -> io::Result<(ReceiverStats, Stop)>
where
    F: FnMut(AudioSpec, &[u16]) -> io::Result<Box<dyn AudioSink>>,
{
    let origin = std::time::Instant::now();
    let clock = || Instant::from_std(origin, std::time::Instant::now());
    // datagrams are received into an arena and split off as `Bytes`: one allocation per
    // ARENA_BYTES of traffic, not one per packet, and no copy after the kernel's
    let mut arena = BytesMut::with_capacity(ARENA_BYTES);
    let mut out = Vec::new();
    let mut sink: Option<Box<dyn AudioSink>> = None;
    let mut peer: Option<SocketAddr> = None;
    let mut tick = tokio::time::interval(PLAYOUT_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let stop = loop {
        let now = clock();
        session.handle_timeout(now);
        if let Some(p) = peer {
            while let Some(d) = session.poll_transmit() {
                if let Err(e) = socket.send_to(&d, p).await {
                    if e.kind() != io::ErrorKind::ConnectionRefused {
                        return Err(e);
                    }
                }
            }
        }
        let mut ended = drain_events(&mut session, &mut sink, &mut make_sink)?;
        // play out what is due (after the events: a new session's sink exists first)
        if let Some(spec) = session.spec() {
            let due = match sink.as_mut().and_then(|s| s.demand()) {
                Some(n) if session.is_playing() => n,
                _ => session.due_frames(now),
            };
            if due > 0 {
                out.resize(due * spec.frame_bytes(), 0);
                let n = session.playout(now, &mut out);
                if let Some(s) = sink.as_mut() {
                    s.write_frames(&out[..n * spec.frame_bytes()])?;
                }
            }
        }
        ended |= drain_events(&mut session, &mut sink, &mut make_sink)?;
        observer(now, &session);
        if ended && exit_on_end {
            break Stop::Ended;
        }
        let deadline = session
            .poll_timeout(now)
            .map(|t| tokio::time::Instant::from_std(t.to_std(origin)));
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = socket.recv_buf_from(&mut arena) => {
                match r {
                    Ok((_, from)) => {
                        let d = arena.split().freeze();
                        if arena.capacity() < MAX_DATAGRAM {
                            arena = BytesMut::with_capacity(ARENA_BYTES);
                        }
                        if session.handle_bytes(clock(), d) {
                            peer = Some(from);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err(e),
                }
            }
            _ = tick.tick(), if session.is_playing() => {}
            _ = sleep => {}
            _ = &mut shutdown => break Stop::Shutdown,
        }
    };
    if let Some(mut s) = sink.take() {
        s.flush()?;
    }
    Ok((session.stats(), stop))
}

/// Handles the session's events: a new session gets a new sink, an ended one is flushed.
/// Returns whether the session ended.
fn drain_events<F>(
    session: &mut ReceiverSession,
    sink: &mut Option<Box<dyn AudioSink>>,
    make_sink: &mut F,
) -> io::Result<bool>
where
    F: FnMut(AudioSpec, &[u16]) -> io::Result<Box<dyn AudioSink>>,
{
    let mut ended = false;
    while let Some(ev) = session.poll_event() {
        match ev {
            ReceiverEvent::SessionStarted {
                spec,
                substream_channels,
            } => {
                if let Some(mut s) = sink.take() {
                    s.flush()?;
                }
                *sink = Some(make_sink(spec, &substream_channels)?);
            }
            ReceiverEvent::PlaybackStarted => {}
            ReceiverEvent::SessionEnded => {
                if let Some(s) = sink.as_mut() {
                    s.flush()?;
                }
                ended = true;
            }
        }
    }
    Ok(ended)
}
