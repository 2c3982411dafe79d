//! The receiver library's error ([`ReceiverError`], re-exported at the crate root): a leaf
//! that the configuration and the session return without importing the crate root.

/// Errors of the receiver library.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// The configuration is inconsistent.
    #[error("invalid receiver configuration: {0}")]
    Config(String),
    /// Socket or file I/O failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
