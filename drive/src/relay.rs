//! The tokio driver of a relay session: one socket (the upstream's and every listener's),
//! a real clock. Each loop: the session's timers, send what it handed out, then wait for a
//! datagram, the next deadline or the shutdown signal.

use std::future::Future;
use std::io;

use isostream_relay::{RelayEvent, RelaySession, RelayStats};
use isostream_transport::sans_io::{Input, Output};
use isostream_transport::time::Instant;
use tokio::net::UdpSocket;

use crate::net::{self, RecvArena};

/// Size of a receive arena, in bytes.
const ARENA_BYTES: usize = 1 << 20;

/// Why the driver stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The upstream ended and every listener left.
    Finished,
    /// The shutdown future completed (Ctrl-C, SIGTERM).
    Shutdown,
}

/// Runs `session` on `socket` until it finishes or `shutdown` completes; `on_event` sees
/// every event as it happens (it must be quick).
pub async fn run(
    mut session: RelaySession,
    socket: UdpSocket,
    shutdown: impl Future<Output = ()>,
    on_event: &mut dyn FnMut(&RelaySession, &RelayEvent),
) -> io::Result<(RelayStats, Stop)> {
    let origin = std::time::Instant::now();
    let clock = || Instant::from_std(origin, std::time::Instant::now());
    // datagrams are received into an arena and split off as `Bytes`: the store keeps them
    // without a copy
    let mut arena = RecvArena::new(ARENA_BYTES);
    tokio::pin!(shutdown);
    loop {
        session.handle_input(Input::Timeout(clock()));
        let at = loop {
            match session.poll_output() {
                Output::Transmit(t) => net::send(&socket, None, &t).await?,
                Output::Event(e) => on_event(&session, &e),
                Output::Timeout(at) => break at,
            }
        };
        if session.is_finished() {
            return Ok((session.stats(), Stop::Finished));
        }
        tokio::select! {
            r = arena.recv(&socket) => {
                if let Some((from, data)) = r? {
                    session.handle_input(Input::Datagram { now: clock(), from, data });
                }
            }
            _ = net::sleep_until(at, origin) => {}
            _ = &mut shutdown => return Ok((session.stats(), Stop::Shutdown)),
        }
    }
}
