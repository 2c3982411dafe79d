//! Playout: the output side of a session, one clock for all its substreams.
//!
//! [`PlayoutClock`] says how many frames are due at a given instant, at the media rate. It
//! starts when the low-water mark is reached and then runs at exactly the media rate: frames
//! due at `now` = `rate x (now - start)` minus frames already played. A sound card callback
//! can ignore it and pull what the card asks for instead.
//!
//! [`Playout`] plays chunks of every substream out together. It holds back what has not
//! arrived yet (an underrun), and per chunk hands the [`LatencyMonitor`] the position about
//! to play and the sender-report mapping, renders the substreams
//! ([`Substreams::render_into`]: jitter buffer -> concealer -> resampler -> channel merge),
//! and hands the [`DriftSteering`] the buffer level it watches. The session hands it what it
//! needs of the rest (the end of the stream, the low-water mark, the newest media arrival).

use isostream_transport::time::{Instant, MediaClock};

use crate::counters::{BufferLevels, ReceiverStats};
use crate::latency::LatencyMonitor;
use crate::steering::{DriftSteering, SteeringInput};
use crate::substream::{Substreams, LOOKAHEAD, MAX_CHUNK_FRAMES};

/// The playout clock of a session (shared by all its substreams).
#[derive(Clone, Copy, Debug)]
pub struct PlayoutClock {
    clock: MediaClock,
    start: Option<Instant>,
    played: u64,
    /// Frames played before the current start (the clock can stop and start again).
    played_at_start: u64,
}

impl PlayoutClock {
    /// A stopped clock at `rate` frames per second.
    pub fn new(rate: u32) -> Self {
        PlayoutClock {
            clock: MediaClock::new(rate),
            start: None,
            played: 0,
            played_at_start: 0,
        }
    }

    /// Starts the clock at `now` (playback start).
    pub fn start(&mut self, now: Instant) {
        self.start = Some(now);
        self.played_at_start = self.played;
    }

    /// Stops the clock (a live stream ran dry: it starts again at the low-water mark, rather
    /// than owing the time it was dry). Frames played so far are kept.
    pub fn stop(&mut self) {
        self.start = None;
    }

    /// Whether playback has started.
    pub fn is_running(&self) -> bool {
        self.start.is_some()
    }

    /// Frames due now and not yet played (0 before start).
    pub fn due(&self, now: Instant) -> u64 {
        match self.start {
            None => 0,
            Some(s) => self
                .clock
                .frames_in(now - s)
                .saturating_sub(self.played - self.played_at_start),
        }
    }

    /// When `frames` more frames will be due.
    pub fn when_due(&self, frames: u64) -> Option<Instant> {
        self.start.map(|s| {
            s + self
                .clock
                .duration_of(self.played - self.played_at_start + frames)
        })
    }

    /// Records that `frames` frames were played.
    pub fn played(&mut self, frames: u64) {
        self.played += frames;
    }

    /// Frames played so far.
    pub fn frames_played(&self) -> u64 {
        self.played
    }
}

/// What the session hands to [`Playout::play`].
#[derive(Clone, Copy, Debug)]
pub struct PlayInput {
    /// Where the stream ends, once known (BYE or idle timeout), in frames.
    pub end_pos: Option<i64>,
    /// The low-water mark, in frames.
    pub low: i64,
    /// Whether the source is live (a live stream that runs dry stops the clock).
    pub live: bool,
    /// When the newest media packet was written, and its frames (for the drift steering).
    pub last_media: Option<(Instant, i64)>,
}

/// The playout side of a session. See the module documentation.
#[derive(Debug)]
pub struct Playout {
    rate: u32,
    clock: PlayoutClock,
    in_underrun: bool,
    underruns: u64,
    levels: BufferLevels,
    latency: LatencyMonitor,
    /// Clock drift steering (live sessions, or when configured).
    steering: Option<DriftSteering>,
    /// When playback first started.
    first_start: Option<Instant>,
}

impl Playout {
    /// A stopped playout of media at `rate` Hz; `wallclock_at_zero_ns` is the receiver's
    /// wall clock at instant zero (ns since the Unix epoch, for the latency); `steer` adds
    /// drift steering.
    pub fn new(rate: u32, wallclock_at_zero_ns: u128, steer: bool) -> Self {
        Playout {
            rate,
            clock: PlayoutClock::new(rate),
            in_underrun: false,
            underruns: 0,
            levels: BufferLevels::default(),
            latency: LatencyMonitor::new(rate, wallclock_at_zero_ns),
            steering: steer.then(|| DriftSteering::new(rate)),
            first_start: None,
        }
    }

    /// The media rate, in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Whether the clock runs (playback started and not stopped).
    pub fn is_running(&self) -> bool {
        self.clock.is_running()
    }

    /// Starts (or restarts) playback at `now`.
    pub fn start(&mut self, now: Instant) {
        self.clock.start(now);
        self.first_start.get_or_insert(now);
    }

    /// When playback first started.
    pub fn first_start(&self) -> Option<Instant> {
        self.first_start
    }

    /// Frames due at `now` and not yet played (0 before start).
    pub fn due(&self, now: Instant) -> u64 {
        self.clock.due(now)
    }

    /// A PAUSE or RESUME request was just sent (the drift steering discounts the move).
    pub fn flow_request_sent(&mut self) {
        if let Some(s) = self.steering.as_mut() {
            s.flow_request_sent();
        }
    }

    /// Records the fullest substream's occupancy (frames), for the stats.
    pub fn note_fullest(&mut self, fullest: i64) {
        self.levels.observe_fullest(fullest);
    }

    /// Plays the next frames of `subs` into `out` (output frames): as many as fit, but never
    /// past the end of the stream and never past the newest audio received. Returns the
    /// frames written (0 if the clock is stopped).
    pub fn play(
        &mut self,
        now: Instant,
        out: &mut [u8],
        subs: &mut Substreams,
        input: &PlayInput,
    ) -> usize {
        if !self.clock.is_running() {
            return 0;
        }
        let mut n = out.len() / subs.out_frame_bytes();
        let read_pos = subs.read_pos();
        if let Some(end) = input.end_pos {
            n = n.min((end - read_pos).max(0) as usize);
        } else {
            // Underrun: nothing has arrived for the frames that are due. They are held back,
            // not concealed yet: if audio arrives, they are played (concealed where still
            // missing) and the timeline never slips; if the stream turns out to have ended
            // (a stock sender's last packet, no BYE), no invented audio follows the end.
            let avail = (subs.data_end() - read_pos).max(0) as usize;
            if avail < n {
                if !self.in_underrun {
                    self.underruns += 1;
                    self.in_underrun = true;
                }
                n = avail;
                if input.live {
                    // a live stream does not owe the time it was dry: play what there is,
                    // then wait for the low-water mark again, keeping the latency
                    self.clock.stop();
                    if let Some(s) = self.steering.as_mut() {
                        s.ran_dry();
                    }
                }
            } else if avail as i64 >= input.low {
                self.in_underrun = false;
            }
        }
        let mut done = 0;
        while done < n {
            let chunk = (n - done).min(MAX_CHUNK_FRAMES - LOOKAHEAD);
            let (emptiest, _) = subs.occupancy();
            self.levels.observe_playout(emptiest);
            // capture time of the frame about to play, from the last sender report
            self.latency
                .observe(now, subs.read_pos(), subs.capture_mapping());
            let ratio = self.steering.as_ref().map_or(1.0, DriftSteering::ratio);
            subs.render_into(ratio, chunk, out, done);
            self.clock.played(chunk as u64);
            done += chunk;
            if let Some(s) = self.steering.as_mut() {
                let steer = SteeringInput {
                    emptiest: subs.occupancy().0,
                    resampler_held: subs.resampler_held(),
                    last_media: input.last_media,
                    frames_played: self.clock.frames_played(),
                };
                s.update(now, &steer);
            }
        }
        n
    }

    /// Fills the playout figures of `s`: frames played, underruns, buffer levels, latency and
    /// drift.
    pub fn fill_stats(&self, s: &mut ReceiverStats) {
        s.frames_played = self.clock.frames_played();
        s.underruns = self.underruns;
        self.levels.fill(self.rate, s);
        s.capture_to_playout_ms = self.latency.stats();
        s.drift_estimate_ppm = self.steering.as_ref().map(DriftSteering::estimate_ppm);
        s.drift_correction_ppm = self.steering.as_ref().map(DriftSteering::correction_ppm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isostream_transport::time::Duration;

    #[test]
    fn due_frames_follow_the_media_rate_without_drift() {
        let mut c = PlayoutClock::new(48_000);
        let t0 = Instant::from_nanos(123);
        assert_eq!(c.due(t0), 0);
        c.start(t0);
        let mut now = t0;
        for _ in 0..3600 {
            now += Duration::from_millis(1000);
            let n = c.due(now);
            c.played(n);
        }
        assert_eq!(c.frames_played(), 48_000 * 3600);
        assert_eq!(c.when_due(480), Some(now + Duration::from_millis(10)));
    }

    #[test]
    fn a_stopped_clock_owes_nothing_when_it_starts_again() {
        let mut c = PlayoutClock::new(1_000);
        c.start(Instant::ZERO);
        let t = Instant::ZERO + Duration::from_secs(1);
        c.played(c.due(t));
        c.stop();
        assert_eq!(c.due(t + Duration::from_secs(5)), 0);
        let t2 = t + Duration::from_secs(5);
        c.start(t2);
        assert_eq!(c.due(t2 + Duration::from_millis(10)), 10);
        assert_eq!(c.frames_played(), 1_000);
    }

    mod play {
        use super::super::*;
        use crate::counters::Drops;
        use crate::layout::{Layout, SubstreamLayout};
        use crate::substream::ReceiveContext;
        use bytes::BytesMut;
        use isostream_media::{AudioSpec, SampleFormat};
        use isostream_transport::rtp::{self, RtpHeader};
        use isostream_transport::time::Duration;

        /// Mono S16 at 1 kHz holding `frames` frames (one packet) from position 0.
        fn filled(frames: usize) -> Substreams {
            let layout = Layout {
                spec: AudioSpec {
                    rate: 1_000,
                    channels: 1,
                    format: SampleFormat::S16,
                },
                substreams: vec![SubstreamLayout {
                    ssrc: 1,
                    channels: 1,
                    ts_base: Some(0),
                    rtx_ssrc: None,
                }],
                fec: false,
                live: false,
                provisional: false,
                framing: Default::default(),
                opus: false,
            };
            let mut s = Substreams::new(&layout, 1_000, false);
            let mut b = BytesMut::new();
            let h = RtpHeader {
                marker: false,
                payload_type: rtp::PT_L16,
                seq: 0,
                timestamp: 0,
                ssrc: 1,
            };
            h.write(&mut b);
            b.extend_from_slice(&vec![1u8; frames * 2]);
            let d = b.freeze();
            let ctx = ReceiveContext {
                started: false,
                live: false,
                format: SampleFormat::S16,
                stock_l16: None,
                rate: 48_000,
            };
            s.on_media(
                Instant::ZERO,
                0,
                &h,
                &d[12..],
                &d,
                &ctx,
                &mut Drops::default(),
            );
            s
        }

        fn input(end_pos: Option<i64>, live: bool) -> PlayInput {
            PlayInput {
                end_pos,
                low: 50,
                live,
                last_media: None,
            }
        }

        #[test]
        fn nothing_plays_before_start() {
            let mut p = Playout::new(1_000, 0, false);
            let mut s = filled(100);
            let mut out = [0u8; 20];
            assert_eq!(
                p.play(Instant::ZERO, &mut out, &mut s, &input(None, false)),
                0
            );
            assert_eq!(s.read_pos(), 0);
        }

        #[test]
        fn an_underrun_holds_back_what_has_not_arrived_and_is_counted_once() {
            let mut p = Playout::new(1_000, 0, false);
            let mut s = filled(30);
            p.start(Instant::ZERO);
            let mut out = [0u8; 100];
            assert_eq!(
                p.play(Instant::ZERO, &mut out, &mut s, &input(None, false)),
                30
            );
            assert!(out[..60].iter().all(|&b| b == 1));
            assert_eq!(
                p.play(Instant::ZERO, &mut out, &mut s, &input(None, false)),
                0
            );
            let mut st = ReceiverStats::default();
            p.fill_stats(&mut st);
            assert_eq!((st.underruns, st.frames_played), (1, 30));
            assert!(p.is_running());
        }

        #[test]
        fn playback_never_passes_the_end_of_the_stream() {
            let mut p = Playout::new(1_000, 0, false);
            let mut s = filled(30);
            p.start(Instant::ZERO);
            let mut out = [0u8; 100];
            // the end is known: what is missing before it is concealed, nothing after it
            assert_eq!(
                p.play(Instant::ZERO, &mut out, &mut s, &input(Some(40), false)),
                40
            );
            let mut st = ReceiverStats::default();
            p.fill_stats(&mut st);
            assert_eq!(st.underruns, 0);
        }

        #[test]
        fn a_live_stream_that_runs_dry_stops_the_clock() {
            let mut p = Playout::new(1_000, 0, true);
            let mut s = filled(30);
            let t0 = Instant::ZERO;
            p.start(t0);
            let mut out = [0u8; 100];
            assert_eq!(p.play(t0, &mut out, &mut s, &input(None, true)), 30);
            assert!(!p.is_running());
            assert_eq!(p.due(t0 + Duration::from_secs(1)), 0);
            assert_eq!(p.first_start(), Some(t0));
            let mut st = ReceiverStats::default();
            p.fill_stats(&mut st);
            assert!(st.drift_estimate_ppm.is_some());
        }
    }
}
