//! Audio for isostream: sample formats, WAV and raw PCM I/O, test signals and quality metrics.
//!
//! Everything exchanges *wire frames*: interleaved channels, each sample big-endian in the
//! stream's [`SampleFormat`] (see [`format`]). Frame counts are always samples per channel.
//! With the `device` feature, the `device` module captures from and plays to sound cards.
#![deny(missing_docs)]

#[cfg(feature = "device")]
pub mod device;
pub mod error;
pub mod format;
pub mod metrics;
pub mod pcm;
pub mod signal;
pub mod wav;

pub use error::MediaError;
pub use format::{AudioSpec, SampleFormat};
pub use metrics::{compare, damaged_windows, find_alignment, rms_dbfs, Comparison, Gap};
pub use pcm::{PcmReader, PcmWriter, RawFormat};
pub use signal::{synthesize, Program, SignalSource};
pub use wav::{read_wav_all, write_wav_all, WavSink, WavSource};
