//! What a sender session tells the application: its events ([`SenderEvent`]) and why it
//! finished ([`FinishReason`]). Re-exported from [`crate::session`].

use serde::Serialize;

/// Something the application should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SenderEvent {
    /// The receiver asked to pause; transmission stopped.
    Paused,
    /// The receiver asked to resume; transmission goes on.
    Resumed,
    /// The session is over; nothing more will be sent.
    Finished(FinishReason),
}

/// Why a sender session finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum FinishReason {
    /// The whole input was sent, followed by BYE.
    EndOfInput,
    /// The receiver, heard from earlier, went silent for longer than the receiver timeout.
    ReceiverLost {
        /// How long it had been silent, in ms.
        silent_ms: u64,
    },
}
