//! The error of finding, reading or validating a profile, and the range check behind it.

use std::path::PathBuf;

/// Why a profile could not be found, read or accepted.
#[derive(Debug, thiserror::Error)]
pub enum ImpairError {
    /// A profile or trace file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A profile or trace file could not be parsed.
    #[error("cannot parse {}: {message}", path.display())]
    Parse {
        /// The file that could not be parsed.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The name is neither a builtin profile nor an existing file.
    #[error("unknown impairment profile `{name}`: not a builtin ({builtins}) and no such file")]
    UnknownProfile {
        /// The name or path that was asked for.
        name: String,
        /// The builtin profile names, comma-separated.
        builtins: String,
    },
    /// A profile file has an extension other than `.toml` or `.json`.
    #[error("profile file {} must end in .toml or .json", .0.display())]
    Extension(PathBuf),
    /// A parameter is out of range (a probability outside 0..=1, a negative delay, ...).
    #[error("invalid impairment parameter: {0}")]
    Invalid(String),
}

/// Checks that `v` is a probability (0..=1); `name` names the parameter in the message.
pub(crate) fn check_prob(name: &str, v: f64) -> Result<(), ImpairError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(ImpairError::Invalid(format!(
            "{name} must be in 0..=1, got {v}"
        )))
    }
}
