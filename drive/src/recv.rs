//! The tokio driver of a receiver session: the socket is read on the runtime's thread into
//! an arena; played-out audio goes to a sink that writes on a thread of its own (files and
//! pipes) or to a sound card's lock-free ring. Each loop: one [`ReceiverPump`] turn, send what
//! it handed out, then wait for a datagram, the next deadline or the shutdown signal. It
//! answers to the address the session's datagrams came from (symmetric, so it works through
//! NAT and relays).

use std::future::Future;
use std::io;

use isostream_media::AudioSpec;
use isostream_receiver::{ReceiverEvent, ReceiverSession, ReceiverStats};
use isostream_transport::sans_io::Transmit;
use isostream_transport::time::Instant;
use tokio::net::UdpSocket;

use crate::audio::AudioSink;
use crate::net::{self, RecvArena};
use crate::offload::SinkThread;
use crate::pump::{ReceiverHost, ReceiverPump};
use crate::srtp::Srtp;

/// Size of a receive arena, in bytes.
const ARENA_BYTES: usize = 1 << 20;
/// Audio a file or pipe sink may hold queued for its writer thread, in ms: a pipe nobody
/// reads for this long costs nothing; beyond it, the audio waits in the jitter buffer.
pub const SINK_QUEUE_MS: u64 = 4_000;

/// Why the driver stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The session ended (BYE or idle timeout) and `exit_on_end` was set.
    Ended,
    /// The shutdown future completed (Ctrl-C).
    Shutdown,
}

/// A sink as the driver holds it.
enum Out {
    /// Files and pipes: written on a thread of their own.
    Threaded(SinkThread),
    /// A sound card (it has a clock of its own, and its writes never block).
    Inline(Box<dyn AudioSink>),
}

impl Out {
    fn sink(&mut self) -> &mut dyn AudioSink {
        match self {
            Out::Threaded(s) => s,
            Out::Inline(s) => s.as_mut(),
        }
    }

    fn close(mut self) -> io::Result<()> {
        match &mut self {
            Out::Threaded(s) => s.close(),
            Out::Inline(s) => s.flush(),
        }
    }
}

struct Host<F> {
    make_sink: F,
    sink: Option<Out>,
    retired: Vec<Out>,
    out: Vec<Transmit>,
    ended: bool,
}

impl<F> ReceiverHost for Host<F>
where
    F: FnMut(AudioSpec, &[u16]) -> io::Result<Box<dyn AudioSink>>,
{
    fn transmit(&mut self, t: Transmit) -> io::Result<()> {
        self.out.push(t);
        Ok(())
    }

    fn event(&mut self, e: ReceiverEvent) -> io::Result<()> {
        match e {
            ReceiverEvent::SessionStarted {
                spec,
                substream_channels,
            } => {
                if let Some(mut old) = self.sink.take() {
                    old.sink().flush()?;
                    // its session is over: its writer finishes, its buffers go now
                    if let Out::Threaded(s) = &mut old {
                        s.finish();
                    }
                    self.retired.push(old);
                }
                let mut s = (self.make_sink)(spec, &substream_channels)?;
                self.sink = Some(if s.demand().is_some() {
                    Out::Inline(s)
                } else {
                    let frames = spec.rate as u64 * SINK_QUEUE_MS / 1000;
                    Out::Threaded(SinkThread::new(s, spec.frame_bytes(), frames as usize))
                });
                self.ended = false;
            }
            // counted in the stats; the receiver goes on (the CLI says why)
            ReceiverEvent::PlaybackStarted | ReceiverEvent::SessionRefused { .. } => {}
            ReceiverEvent::SessionEnded => {
                if let Some(s) = self.sink.as_mut() {
                    s.sink().flush()?;
                }
                self.ended = true;
            }
        }
        Ok(())
    }

    fn sink(&mut self) -> Option<&mut dyn AudioSink> {
        self.sink.as_mut().map(Out::sink)
    }
}

/// Runs `session` on `socket` until the session ends (with `exit_on_end`) or `shutdown`
/// completes. `make_sink` is called when a session starts, with its output format and the
/// channels of each substream; `observer` after every loop turn (for reports; it must be
/// quick). With `srtp`, every datagram both ways goes through that SRTP/SRTCP stage. Every
/// sink is flushed and closed before it returns.
#[allow(clippy::too_many_arguments)]
pub async fn run<F>(
    session: ReceiverSession,
    socket: UdpSocket,
    srtp: Option<Srtp>,
    make_sink: F,
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
    let mut arena = RecvArena::new(ARENA_BYTES);
    let mut pump = ReceiverPump::new(session);
    if let Some(s) = srtp {
        pump = pump.with_srtp(s);
    }
    let mut host = Host {
        make_sink,
        sink: None,
        retired: Vec::new(),
        out: Vec::with_capacity(16),
        ended: false,
    };
    tokio::pin!(shutdown);
    let run = async {
        loop {
            let now = clock();
            let wake = pump.turn(now, &mut host)?;
            for t in host.out.drain(..) {
                net::send(&socket, None, &t).await?;
            }
            observer(now, pump.session());
            if host.ended && exit_on_end {
                return Ok(Stop::Ended);
            }
            tokio::select! {
                r = arena.recv(&socket) => {
                    if let Some((from, d)) = r? {
                        pump.receive(clock(), from, d);
                    }
                }
                _ = net::sleep_until(wake.at, origin) => {}
                _ = &mut shutdown => return Ok(Stop::Shutdown),
            }
        }
    };
    let stop: io::Result<Stop> = run.await;
    // whatever happened, every file is made whole
    let mut closed = Ok(());
    for s in host.retired.drain(..).chain(host.sink.take()) {
        closed = closed.and(s.close());
    }
    let stop = stop?;
    closed?;
    Ok((pump.session().stats(), stop))
}
