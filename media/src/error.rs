//! The error type of the media crate.

use std::io;

/// Everything that can go wrong reading, writing or describing audio.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The file's sample encoding is not one isostream carries: only 16- and 24-bit integer PCM
    /// and 32-bit IEEE float are supported.
    #[error(
        "unsupported WAV sample format: {bits}-bit {} (supported: 16- or 24-bit integer PCM, 32-bit float)",
        if *float { "float" } else { "integer PCM" }
    )]
    UnsupportedFormat {
        /// Valid bits per sample found in the file.
        bits: u16,
        /// Whether the file declares IEEE float samples.
        float: bool,
    },
    /// The samples are stored in containers wider than their valid bits (e.g. 24 valid bits in
    /// 4-byte containers), which isostream does not unpack.
    #[error(
        "unsupported WAV sample container: {bits} valid bits in {container_bytes}-byte containers"
    )]
    UnsupportedContainer {
        /// Valid bits per sample.
        bits: u16,
        /// Bytes used to store one sample.
        container_bytes: u16,
    },
    /// The WAV format tag is neither PCM, IEEE float nor WAVE_FORMAT_EXTENSIBLE of those.
    #[error("unsupported WAV encoding: format tag {tag:#06x} (supported: PCM, IEEE float)")]
    UnsupportedEncoding {
        /// The `wFormatTag` found in the fmt chunk.
        tag: u16,
    },
    /// More channels than files may carry (1 to 8), or none.
    #[error("unsupported channel count: {channels} (supported: 1 to 8)")]
    TooManyChannels {
        /// The channel count found or requested.
        channels: u16,
    },
    /// The file is not a well-formed RIFF/WAVE file.
    #[error("malformed WAV file: {reason}")]
    Malformed {
        /// What was wrong.
        reason: &'static str,
    },
    /// A sample rate of 0 Hz.
    #[error("invalid sample rate: {rate} Hz")]
    InvalidRate {
        /// The rate found or requested, in Hz.
        rate: u32,
    },
    /// A byte buffer given as wire frames is not a whole number of frames.
    #[error("{len} bytes is not a whole number of {frame_bytes}-byte frames")]
    PartialFrame {
        /// Length of the buffer, in bytes.
        len: usize,
        /// Bytes per frame of the stream.
        frame_bytes: usize,
    },
    /// Writing more would overflow the 4 GiB size limit of a WAV file.
    #[error("WAV file would exceed 4 GiB ({bytes} bytes of samples)")]
    FileTooLarge {
        /// Total sample bytes that the write would have produced.
        bytes: u64,
    },
    /// A raw PCM format name that is not one of `s16le`, `s16be`, `s24le`, `f32le`.
    #[error("unknown raw PCM format {name:?} (expected s16le, s16be, s24le or f32le)")]
    UnknownRawFormat {
        /// The name that was given.
        name: String,
    },
    /// A test-signal program name that could not be parsed.
    #[error("unknown signal program {name:?} (expected speech, music, mixed or sine:<hz>)")]
    UnknownProgram {
        /// The name that was given.
        name: String,
    },
    /// An I/O error outside the WAV codec.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// An error from the WAV codec (malformed file, I/O while reading or writing it).
    #[error("WAV error: {0}")]
    Wav(#[from] hound::Error),
    /// A WAV file written to after an earlier write error closed it.
    #[error("the WAV file was closed after an earlier write error")]
    Closed,
}

impl MediaError {
    /// A WAV codec error; an I/O error inside it becomes [`MediaError::Io`], so its message
    /// is the operating system's (e.g. "No space left on device").
    pub fn from_hound(e: hound::Error) -> MediaError {
        match e {
            hound::Error::IoError(e) => MediaError::Io(e),
            e => MediaError::Wav(e),
        }
    }
}
