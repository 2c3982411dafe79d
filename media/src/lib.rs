//! Audio for isostream: sample formats, WAV and raw PCM I/O, test signals and quality metrics.
#![deny(missing_docs)]

pub mod format;

pub use format::{AudioSpec, SampleFormat};
