//! Which substream of the current session a datagram belongs to: by its SSRC, and only if
//! it comes from the address the session is bound to (that of the datagram that started
//! it); a datagram of no substream is foreign, or waits for a successor.

use bytes::Bytes;
use isostream_transport::time::Instant;

use super::ReceiverSession;
use crate::substream::ReceiveContext;

impl ReceiverSession {
    fn sub_index(&self, ssrc: u32) -> Option<usize> {
        self.active.as_ref()?.subs.index_of(ssrc)
    }

    /// Whether the datagram being handled comes from elsewhere than the current session's
    /// source.
    pub(super) fn elsewhere(&self) -> bool {
        matches!(
            (self.from, self.active.as_ref().and_then(|a| a.source)),
            (Some(from), Some(source)) if from != source
        )
    }

    /// The substream `ssrc` of the current session, if the datagram being handled comes
    /// from the session's source.
    pub(super) fn bound_index(&self, ssrc: u32) -> Option<usize> {
        self.sub_index(ssrc).filter(|_| !self.elsewhere())
    }

    /// The index and receive context of substream `ssrc` of the current session, which was
    /// just heard from.
    pub(super) fn heard(&mut self, now: Instant, ssrc: u32) -> Option<(usize, ReceiveContext)> {
        let i = self.bound_index(ssrc)?;
        let a = self.active.as_mut()?;
        a.last_heard = now;
        Some((i, a.receive_context(&self.cfg)))
    }

    /// A media or repair datagram of no current substream: foreign, unless it was kept for
    /// replay under a session description still to come. Returns false (not ours).
    pub(super) fn not_ours(&mut self, now: Instant, d: &Bytes, kept: bool) -> bool {
        if !kept {
            self.drops.foreign += 1;
            self.keep_successor(now, d, false);
        }
        false
    }
}
