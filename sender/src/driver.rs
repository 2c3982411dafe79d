//! The tokio driver of a sender session: the only part of the sender that touches a socket,
//! a clock or an audio source. One loop: feed audio, fire timers, drain datagrams, wait for
//! the socket, the next deadline or live audio.

use std::io;

use isostream_transport::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::session::{FinishReason, SenderEvent, SenderSession, SenderStats};

/// A stored audio source (WAV file, raw PCM, synthesized signal): blocking reads of wire
/// frames, 0 at the end.
pub trait AudioSource: Send {
    /// Reads whole wire frames into `out`; returns frames read, 0 at the end of the input.
    fn read_frames(&mut self, out: &mut [u8]) -> io::Result<usize>;
}

/// Where the audio comes from.
pub enum Input {
    /// Stored media, read as fast as the session wants it.
    Stored(Box<dyn AudioSource>),
    /// A live source: chunks of wire frames as they are captured; the channel closing marks
    /// the end.
    Live(mpsc::Receiver<bytes::Bytes>),
}

/// What the driver reports while it runs (for a progress bar).
pub trait Progress {
    /// Called after each loop turn with the counters so far and whether the sender is paused.
    fn update(&mut self, stats: &SenderStats, paused: bool);
}

impl Progress for () {
    fn update(&mut self, _: &SenderStats, _: bool) {}
}

/// Runs `session` over `socket` (connected to the receiver) until it finishes.
pub async fn run(
    mut session: SenderSession,
    socket: UdpSocket,
    input: Input,
    progress: &mut dyn Progress,
) -> io::Result<(SenderStats, FinishReason)> {
    let origin = std::time::Instant::now();
    let clock = || Instant::from_std(origin, std::time::Instant::now());
    let frame_bytes = session.config().spec.frame_bytes();
    let mut audio = vec![0u8; 65_536 / frame_bytes.max(1) * frame_bytes.max(1)];
    let mut recv_buf = vec![0u8; 65_536];
    let (mut stored, mut live) = match input {
        Input::Stored(s) => (Some(s), None),
        Input::Live(rx) => (None, Some(rx)),
    };
    loop {
        let now = clock();
        if let Some(src) = stored.as_mut() {
            loop {
                let want = session.audio_wanted().min(audio.len() / frame_bytes);
                if want == 0 {
                    break;
                }
                let n = src.read_frames(&mut audio[..want * frame_bytes])?;
                if n == 0 {
                    session.end_of_input(now);
                    stored = None;
                    break;
                }
                session.push_audio(now, &audio[..n * frame_bytes]);
            }
        }
        session.handle_timeout(now);
        while let Some(d) = session.poll_transmit(now) {
            // a full socket buffer or an unreachable port must not kill a stream: the receiver
            // may start later (ICMP port unreachable surfaces as ConnectionRefused on Linux)
            if let Err(e) = socket.send(&d).await {
                if e.kind() != io::ErrorKind::ConnectionRefused {
                    return Err(e);
                }
            }
        }
        while let Some(ev) = session.poll_event() {
            if let SenderEvent::Finished(why) = ev {
                progress.update(&session.stats(), false);
                return Ok((session.stats(), why));
            }
        }
        progress.update(&session.stats(), session.is_paused());
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
            r = socket.recv(&mut recv_buf) => {
                match r {
                    Ok(n) => session.handle_datagram(clock(), &recv_buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err(e),
                }
            }
            chunk = async { match live.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                match chunk {
                    Some(frames) => { session.push_audio(clock(), &frames); }
                    None => { session.end_of_input(clock()); live = None; }
                }
            }
            _ = sleep => {}
        }
    }
}
