//! The one drive loop of both sessions: what happens in one turn, and in what order.
//!
//! A *pump* holds a session and runs one turn at a time at the instant its caller gives. The
//! caller is an environment: the tokio drivers ([`crate::send`], [`crate::recv`]) wait on a
//! socket and a real clock, the simulator behind `bench` jumps a virtual clock to the next
//! thing that can happen, and the tests do either. Whatever the environment, a turn does the
//! same steps in the same order, so `bench` exercises the very loop that runs on sockets.
//!
//! Sender turn:
//! 1. audio: as much as the session wants (stored media) or whatever was captured (live);
//! 2. the datagrams received since the last turn;
//! 3. the timers ([`Input::Timeout`]);
//! 4. the outputs: datagrams to send, events, and the next deadline.
//!
//! Receiver turn:
//! 1. the datagrams received since the last turn;
//! 2. the timers;
//! 3. the outputs (events first create or flush the sink);
//! 4. playout, every [`PULL_INTERVAL`]: the frames the playout clock (or a sound card's
//!    demand) says are due, no more than the sink has room for;
//! 5. the outputs again (playout may have moved the buffer past a watermark).
//!
//! With a key ([`SenderPump::with_srtp`], [`ReceiverPump::with_srtp`]) the pump runs the SRTP
//! stage ([`crate::srtp`]) on both edges of a turn: each received datagram is authenticated
//! and decrypted before the session sees it (what fails is counted as
//! `datagrams_unauthenticated` and dropped), each datagram handed out is protected before the
//! host sends it.
//!
//! The environment talks to a pump through a host trait ([`SenderHost`], [`ReceiverHost`]): it
//! supplies audio and takes datagrams, events and played-out audio. Nothing in a turn blocks:
//! a host that does slow I/O does it on a thread of its own ([`crate::offload`]).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use isostream_receiver::{ReceiverEvent, ReceiverSession};
use isostream_sender::{SenderEvent, SenderSession};
use isostream_transport::sans_io::{earliest, Input, Output, Transmit};
use isostream_transport::time::{Duration, Instant};

use crate::audio::AudioSink;
use crate::srtp::Srtp;

/// How often a receiver pump pulls audio from the playout clock.
pub const PULL_INTERVAL: Duration = Duration::from_millis(5);

/// What a sender's host has of the input right now.
pub enum Feed<'a> {
    /// Whole wire frames, at most as many as were asked for. The pump says afterwards how
    /// many it took ([`SenderHost::consume`]).
    Frames(&'a [u8]),
    /// Nothing now; more will come (the host wakes the pump when it does).
    Pending,
    /// The input has ended.
    End,
}

/// The environment of a sender pump.
pub trait SenderHost {
    /// Up to `max_frames` whole frames of the input, without blocking.
    fn audio(&mut self, max_frames: usize) -> io::Result<Feed<'_>>;
    /// Marks the first `frames` frames of what [`Self::audio`] returned as taken.
    fn consume(&mut self, frames: usize);
    /// Sends a datagram (or queues it to be sent right after the turn).
    fn transmit(&mut self, t: Transmit) -> io::Result<()>;
    /// Something the application should know about.
    fn event(&mut self, e: SenderEvent);
}

/// When a pump wants its next turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wake {
    /// At this instant at the latest (`None`: only an input can wake it).
    pub at: Option<Instant>,
    /// The session wants audio its host did not have: a turn is due as soon as audio arrives.
    pub on_audio: bool,
}

/// A sender session and its drive loop.
pub struct SenderPump {
    session: SenderSession,
    frame_bytes: usize,
    input_done: bool,
    inbound: VecDeque<(Instant, SocketAddr, Bytes)>,
    srtp: Option<Srtp>,
}

/// Most frames a live source hands over in one go.
const LIVE_CHUNK_FRAMES: usize = 1 << 16;

impl SenderPump {
    /// A pump for `session`.
    pub fn new(session: SenderSession) -> Self {
        SenderPump {
            frame_bytes: session.config().spec.frame_bytes(),
            session,
            input_done: false,
            inbound: VecDeque::with_capacity(64),
            srtp: None,
        }
    }

    /// The pump with SRTP/SRTCP on every datagram, both ways.
    pub fn with_srtp(mut self, srtp: Srtp) -> Self {
        self.srtp = Some(srtp);
        self
    }

    /// The session.
    pub fn session(&self) -> &SenderSession {
        &self.session
    }

    /// Whether the input has ended (the host said [`Feed::End`]).
    pub fn input_done(&self) -> bool {
        self.input_done
    }

    /// A datagram that arrived at `now` from `from`, handled at the next turn.
    pub fn receive(&mut self, now: Instant, from: SocketAddr, data: Bytes) {
        self.inbound.push_back((now, from, data));
    }

    /// One turn at `now` (see the module documentation for its steps).
    pub fn turn(&mut self, now: Instant, host: &mut dyn SenderHost) -> io::Result<Wake> {
        let live = self.session.config().live;
        let mut starved = false;
        while !self.input_done {
            let max = if live {
                LIVE_CHUNK_FRAMES
            } else {
                self.session.audio_wanted()
            };
            if max == 0 {
                break;
            }
            match host.audio(max)? {
                Feed::Frames(f) => {
                    let n = f.len() / self.frame_bytes;
                    if n == 0 {
                        starved = true;
                        break;
                    }
                    let frames = &f[..n * self.frame_bytes];
                    self.session.handle_input(Input::Audio { now, frames });
                    host.consume(n);
                }
                Feed::Pending => {
                    starved = true;
                    break;
                }
                Feed::End => {
                    self.session.handle_input(Input::EndOfInput(now));
                    self.input_done = true;
                }
            }
        }
        while let Some((at, from, data)) = self.inbound.pop_front() {
            let Some(data) = unprotect(&mut self.srtp, data) else {
                self.session.count_unauthenticated();
                continue;
            };
            self.session.handle_input(Input::Datagram {
                now: at,
                from,
                data,
            });
        }
        self.session.handle_input(Input::Timeout(now));
        let mut at = loop {
            match self.session.poll_output() {
                Output::Transmit(t) => host.transmit(protect(&mut self.srtp, t)?)?,
                Output::Event(e) => host.event(e),
                Output::Timeout(at) => break at,
            }
        };
        if !live && !self.input_done && !starved && self.session.audio_wanted() > 0 {
            // sending drained the queue: read more audio right away
            at = earliest(at, Some(now));
        }
        Ok(Wake {
            at,
            on_audio: starved || live,
        })
    }
}

/// The environment of a receiver pump.
pub trait ReceiverHost {
    /// Sends a datagram (or queues it to be sent right after the turn).
    fn transmit(&mut self, t: Transmit) -> io::Result<()>;
    /// Something the application should know about. A host creates its sink on
    /// [`ReceiverEvent::SessionStarted`] and flushes it on [`ReceiverEvent::SessionEnded`].
    fn event(&mut self, e: ReceiverEvent) -> io::Result<()>;
    /// Where played-out audio goes now, if anywhere.
    fn sink(&mut self) -> Option<&mut dyn AudioSink>;
}

/// A receiver session and its drive loop.
pub struct ReceiverPump {
    session: ReceiverSession,
    inbound: VecDeque<(Instant, SocketAddr, Bytes)>,
    out: Vec<u8>,
    next_pull: Instant,
    srtp: Option<Srtp>,
}

impl ReceiverPump {
    /// A pump for `session`.
    pub fn new(session: ReceiverSession) -> Self {
        ReceiverPump {
            session,
            inbound: VecDeque::with_capacity(256),
            out: Vec::new(),
            next_pull: Instant::ZERO,
            srtp: None,
        }
    }

    /// The pump with SRTP/SRTCP on every datagram, both ways.
    pub fn with_srtp(mut self, srtp: Srtp) -> Self {
        self.srtp = Some(srtp);
        self
    }

    /// The session.
    pub fn session(&self) -> &ReceiverSession {
        &self.session
    }

    /// A datagram that arrived at `now` from `from`, handled at the next turn.
    pub fn receive(&mut self, now: Instant, from: SocketAddr, data: Bytes) {
        self.inbound.push_back((now, from, data));
    }

    /// One turn at `now` (see the module documentation for its steps). Returns when the next
    /// turn is due: the session's next deadline or the next playout pull.
    pub fn turn(&mut self, now: Instant, host: &mut dyn ReceiverHost) -> io::Result<Wake> {
        while let Some((at, from, data)) = self.inbound.pop_front() {
            let Some(data) = unprotect(&mut self.srtp, data) else {
                self.session.count_unauthenticated();
                continue;
            };
            self.session.handle_input(Input::Datagram {
                now: at,
                from,
                data,
            });
        }
        self.session.handle_input(Input::Timeout(now));
        self.drain(host)?;
        if now >= self.next_pull {
            self.next_pull = now + PULL_INTERVAL;
            self.play(now, host)?;
        }
        let at = self.drain(host)?;
        Ok(Wake {
            at: earliest(at, Some(self.next_pull)),
            on_audio: false,
        })
    }

    /// Plays out what is due into the host's sink.
    fn play(&mut self, now: Instant, host: &mut dyn ReceiverHost) -> io::Result<()> {
        let Some(spec) = self.session.spec() else {
            return Ok(());
        };
        let playing = self.session.is_playing();
        let sink = host.sink();
        let (demand, room) = match sink {
            Some(s) => (s.demand(), s.room_frames()),
            None => (None, usize::MAX),
        };
        let due = match demand {
            Some(n) if playing => n,
            _ => self.session.due_frames(now),
        }
        .min(room);
        if due == 0 {
            return Ok(());
        }
        let fb = spec.frame_bytes();
        self.out.resize(due * fb, 0);
        let n = self.session.playout(now, &mut self.out);
        if let Some(s) = host.sink() {
            s.write_frames(&self.out[..n * fb])?;
        }
        Ok(())
    }

    fn drain(&mut self, host: &mut dyn ReceiverHost) -> io::Result<Option<Instant>> {
        loop {
            match self.session.poll_output() {
                Output::Transmit(t) => host.transmit(protect(&mut self.srtp, t)?)?,
                Output::Event(e) => host.event(e)?,
                Output::Timeout(at) => return Ok(at),
            }
        }
    }
}

/// `data` as the session may see it: unprotected by the SRTP stage if there is one (`None`:
/// it failed authentication or the replay check).
fn unprotect(srtp: &mut Option<Srtp>, data: Bytes) -> Option<Bytes> {
    match srtp {
        None => Some(data),
        Some(s) => s.unprotect(&data).ok(),
    }
}

/// `t` protected by the SRTP stage if there is one. A datagram the stage cannot protect is
/// a bug of the session (or 2^48 packets of one key): an error, never sent in the clear.
fn protect(srtp: &mut Option<Srtp>, mut t: Transmit) -> io::Result<Transmit> {
    if let Some(s) = srtp {
        t.data = s
            .protect(&t.data)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    }
    Ok(t)
}
