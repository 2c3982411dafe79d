//! The session's datagram queue and the replay of kept datagrams.
//!
//! Every datagram goes through one queue ([`WorkQueue`]), handled in order by the session.
//! A provisional session (a stream without a description) keeps copies of its datagrams
//! ([`keep_for_replay`]) while it does not play; a description that replaces it puts them
//! back at the head of the queue, ahead of the rest of its RTCP packet. A successor stream's
//! datagrams (see [`crate::successor`]) are queued behind everything when it takes over.

use std::collections::VecDeque;

use bytes::Bytes;

use super::active::Active;
use crate::stats::Drops;

/// A unit of work of the session's datagram queue.
pub(super) enum Work {
    /// A datagram from the caller.
    Datagram(Bytes),
    /// A datagram kept by a provisional session, replayed into its replacement.
    Replay(Bytes),
    /// The rest of an RTCP compound packet, from its packet `from`, after the replay its
    /// description caused (`bye`: a BYE came before it).
    RtcpRest { d: Bytes, from: usize, bye: bool },
}

/// The datagrams still to handle, in the order they are handled.
#[derive(Default)]
pub(super) struct WorkQueue {
    /// The queued work, the next first.
    items: VecDeque<Work>,
}

impl WorkQueue {
    /// Queues a datagram from the caller behind everything already queued.
    pub(super) fn push_datagram(&mut self, d: Bytes) {
        self.items.push_back(Work::Datagram(d));
    }

    /// Puts the datagrams a replaced provisional session `kept` (oldest first) at the head
    /// of the queue, followed by the rest of the RTCP packet `d` whose description replaced
    /// it, from its packet `from` (`bye`: a BYE came earlier in it).
    pub(super) fn replay_first(
        &mut self,
        kept: impl Iterator<Item = Bytes>,
        d: Bytes,
        from: usize,
        bye: bool,
    ) {
        self.items.push_front(Work::RtcpRest { d, from, bye });
        let kept: Vec<Bytes> = kept.collect();
        for kept in kept.into_iter().rev() {
            self.items.push_front(Work::Replay(kept));
        }
    }

    /// Queues datagrams to replay (a successor's, taking over) behind everything queued.
    pub(super) fn replay_last(&mut self, replay: impl Iterator<Item = Bytes>) {
        self.items.extend(replay.map(Work::Replay));
    }

    /// The next unit of work, if any.
    pub(super) fn pop(&mut self) -> Option<Work> {
        self.items.pop_front()
    }
}

/// Keeps a copy of a datagram `d` while the session `active` is provisional and not playing
/// (within the budget's share: what does not fit is counted in `drops`); a playing
/// session's kept datagrams are freed. Returns whether `d` was kept.
pub(super) fn keep_for_replay(active: Option<&mut Active>, d: &Bytes, drops: &mut Drops) -> bool {
    match active {
        Some(a) if a.provisional && !a.playout.is_running() => {
            let kept = a.pending.push((), d);
            drops.not_kept += u64::from(!kept);
            kept
        }
        Some(a) if !a.pending.is_empty() => {
            a.pending.clear();
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(w: &Work) -> (&'static str, u8) {
        match w {
            Work::Datagram(d) => ("datagram", d[0]),
            Work::Replay(d) => ("replay", d[0]),
            Work::RtcpRest { d, .. } => ("rest", d[0]),
        }
    }

    #[test]
    fn kept_datagrams_replay_first_oldest_first_then_the_rest_of_their_rtcp_packet() {
        let mut q = WorkQueue::default();
        q.push_datagram(Bytes::from_static(&[9]));
        let kept = [1u8, 2, 3].map(|b| Bytes::copy_from_slice(&[b]));
        q.replay_first(kept.into_iter(), Bytes::from_static(&[7]), 1, false);
        q.replay_last([Bytes::from_static(&[5])].into_iter());
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).map(|w| name(&w)).collect();
        assert_eq!(
            order,
            [
                ("replay", 1),
                ("replay", 2),
                ("replay", 3),
                ("rest", 7),
                ("datagram", 9),
                ("replay", 5)
            ]
        );
    }
}
