//! The tokio driver of a sender session: a socket, a real clock, and the input read on a
//! thread of its own. Each loop: one [`SenderPump`] turn, send what it handed out, then wait
//! for a datagram, the next deadline, or audio the pump is waiting for.

use std::io;

use bytes::Bytes;
use isostream_sender::{FinishReason, SenderEvent, SenderSession, SenderStats};
use isostream_transport::sans_io::Transmit;
use isostream_transport::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::audio::AudioSource;
use crate::net::{self, RecvArena};
use crate::offload::{read_ahead, ReadAhead};
use crate::pump::{Feed, SenderHost, SenderPump};
use crate::srtp::Srtp;

/// Where the audio comes from.
pub enum Input {
    /// Stored media, read ahead on a thread of its own and taken as fast as the session
    /// wants it.
    Stored(Box<dyn AudioSource>),
    /// A live source: chunks of wire frames as they are captured (an error ends the input
    /// with that error); the channel closing marks the end.
    Live(mpsc::Receiver<io::Result<Bytes>>),
}

/// What the driver reports while it runs (for a progress bar).
pub trait Progress {
    /// Called after each loop turn with the counters so far and whether the sender is paused.
    fn update(&mut self, stats: &SenderStats, paused: bool);
}

impl Progress for () {
    fn update(&mut self, _: &SenderStats, _: bool) {}
}

/// Bytes of the receive arena datagrams are split off.
const ARENA_BYTES: usize = 256 * 1024;

struct Host {
    input: ReadAhead,
    out: Vec<Transmit>,
    finished: Option<FinishReason>,
}

impl SenderHost for Host {
    fn audio(&mut self, max_frames: usize) -> io::Result<Feed<'_>> {
        Ok(match self.input.frames(max_frames)? {
            None => Feed::Pending,
            Some([]) => Feed::End,
            Some(f) => Feed::Frames(f),
        })
    }
    fn consume(&mut self, frames: usize) {
        self.input.consume(frames);
    }
    fn transmit(&mut self, t: Transmit) -> io::Result<()> {
        self.out.push(t);
        Ok(())
    }
    fn event(&mut self, e: SenderEvent) {
        if let SenderEvent::Finished(why) = e {
            self.finished = Some(why);
        }
    }
}

/// Runs `session` over `socket` (connected to the receiver, or not) until it finishes; with
/// `srtp`, every datagram both ways goes through that SRTP/SRTCP stage.
pub async fn run(
    session: SenderSession,
    socket: UdpSocket,
    input: Input,
    srtp: Option<Srtp>,
    progress: &mut dyn Progress,
) -> io::Result<(SenderStats, FinishReason)> {
    let origin = std::time::Instant::now();
    let clock = || Instant::from_std(origin, std::time::Instant::now());
    let frame_bytes = session.config().spec.frame_bytes();
    let rx = match input {
        Input::Stored(s) => read_ahead(s, frame_bytes),
        Input::Live(rx) => rx,
    };
    let mut host = Host {
        input: ReadAhead::new(rx, frame_bytes),
        out: Vec::with_capacity(64),
        finished: None,
    };
    let connected = socket.peer_addr().ok();
    let mut pump = SenderPump::new(session);
    if let Some(s) = srtp {
        pump = pump.with_srtp(s);
    }
    let mut arena = RecvArena::new(ARENA_BYTES);
    loop {
        let wake = pump.turn(clock(), &mut host)?;
        for t in host.out.drain(..) {
            net::send(&socket, connected, &t).await?;
        }
        let stats = pump.session().stats();
        if let Some(why) = host.finished.take() {
            progress.update(&stats, false);
            return Ok((stats, why));
        }
        progress.update(&stats, pump.session().is_paused());
        let wait_audio = wake.on_audio && !host.input.has_frames();
        tokio::select! {
            r = arena.recv(&socket) => {
                if let Some((from, d)) = r? {
                    pump.receive(clock(), from, d);
                }
            }
            c = async {
                match host.input.channel() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            }, if wait_audio => host.input.put(c)?,
            _ = net::sleep_until(wake.at, origin) => {}
        }
    }
}
