//! The last stage of the media path: the queue in front of the pacer. Media and repair
//! packets of all substreams wait here and leave when the [`Pacer`]'s one media clock says
//! they are due; a PAUSE stops departures, but lets a spread group that has started finish.
//!
//! [`PacedQueue`] owns the queue and the pacer; the session hands in whether the stream is
//! paused and the counters to update.

use std::collections::VecDeque;

use bytes::Bytes;
use isostream_transport::time::Instant;

use crate::config::SenderConfig;
use crate::pacer::Pacer;
use crate::packetizer::MediaPacket;
use crate::stats::SenderStats;

/// The pacer and the queue of packets waiting for it.
#[derive(Debug)]
pub(crate) struct PacedQueue {
    queue: VecDeque<MediaPacket>,
    pacer: Pacer,
    /// Each substream's share of a packet's frames (1 / number of substreams).
    weight: f64,
    /// The last media or repair datagram sent was inside a spread group: a PAUSE lets the
    /// group finish first (the receiver would otherwise ask for its unsent packets).
    mid_group: bool,
    /// Frames sent, summed over substreams and divided by their number (not rounded).
    frames_sent_exact: f64,
}

impl PacedQueue {
    /// An empty queue paced for `cfg`'s rate and speed, over `substreams` substreams.
    pub(crate) fn new(cfg: &SenderConfig, substreams: usize) -> Self {
        PacedQueue {
            queue: VecDeque::new(),
            pacer: Pacer::new(cfg.spec.rate, cfg.speed, cfg.live),
            weight: 1.0 / substreams as f64,
            mid_group: false,
            frames_sent_exact: 0.0,
        }
    }

    /// The queue's input: the media path pushes its packets here, in sending order.
    pub(crate) fn input(&mut self) -> &mut VecDeque<MediaPacket> {
        &mut self.queue
    }

    /// Packets waiting (media and repair).
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no packet waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drops every waiting packet (the session finished).
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }

    /// A live source cannot wait: drops what was captured but not sent while paused.
    /// Returns the frames dropped (per substream, rounded down).
    pub(crate) fn drop_live(&mut self) -> u64 {
        let frames: u64 = self.queue.iter().map(|p| p.frames as u64).sum();
        self.queue.clear();
        self.mid_group = false;
        (frames as f64 * self.weight) as u64
    }

    /// The stream runs again after a pause: the pacer's clock starts over.
    pub(crate) fn restart(&mut self) {
        self.pacer.restart();
    }

    /// Whether departures are stopped: `paused` and not inside a spread group.
    fn held(&self, paused: bool) -> bool {
        paused && !self.mid_group
    }

    /// The next packet's datagram if it is due at `now` and not held by a pause (`paused`),
    /// counted in `stats` (packets, bytes, frames sent).
    pub(crate) fn pop_due(
        &mut self,
        now: Instant,
        paused: bool,
        stats: &mut SenderStats,
    ) -> Option<Bytes> {
        if self.held(paused) {
            return None;
        }
        let due = self.pacer.departure(now);
        if due > now {
            return None;
        }
        let p = self.queue.pop_front()?;
        self.mid_group = !p.ends_group;
        self.pacer.sent(now, p.frames, self.weight);
        if p.frames == 0 {
            stats.repair_packets_sent += 1;
            stats.repair_bytes += p.datagram.len() as u64;
        } else {
            stats.media_bytes += p.datagram.len() as u64;
            stats.packets_sent += 1;
            self.frames_sent_exact += p.frames as f64 * self.weight;
            stats.frames_sent = self.frames_sent_exact.round() as u64;
        }
        Some(p.datagram)
    }

    /// When the next packet departs (`None`: nothing waits, or a pause, `paused`, holds it).
    pub(crate) fn next_departure(&self, now: Instant, paused: bool) -> Option<Instant> {
        (!self.held(paused) && !self.queue.is_empty()).then(|| self.pacer.departure(now))
    }
}
