//! The sender session's timers: which slot of its [`TimerTable`] stands for what.

use isostream_transport::sans_io::TimerTable;

/// The sender's timers, indexes into its [`Timers`] table.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Timer {
    /// The next sender report and session description.
    Report = 0,
    /// The next repeat of BYE.
    Bye = 1,
    /// The receiver, heard from earlier, has been silent too long.
    ReceiverLost = 2,
    /// After BYE: the receiver has stopped asking (or the history ran out), the session is over.
    Linger = 3,
}

/// The number of sender timers (the variants of [`Timer`]).
pub(crate) const TIMERS: usize = 4;

/// The sender session's timer table, indexed by [`Timer`].
pub(crate) type Timers = TimerTable<TIMERS>;
