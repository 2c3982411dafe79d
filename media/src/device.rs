//! Sound cards (feature `device`, through cpal): list devices, capture from an input device and
//! play to an output device, as wire frames.
//!
//! The audio callbacks run on the device's thread and never block, lock, allocate or log:
//! they convert between the device's native samples and wire frames (see [`crate::format`])
//! and exchange the wire frames with the network side through a lock-free single-producer
//! single-consumer ring ([`rtrb`]). When the ring is full on capture, or empty on playback,
//! the callback counts an xrun in an atomic counter ([`DeviceStats`]); nothing is hidden.
//!
//! There is no sample-rate conversion: a device must support the stream's rate and channel
//! count, otherwise opening it fails with an error that names what the device supports.
//!
//! Along the data path, one file each: `discovery.rs` (list devices, find one, choose its
//! configuration), `samples.rs` (native samples to and from wire samples), `capture.rs`
//! (device to ring to network side) and `playback.rs` (network side to ring to device). This
//! file holds what capture and playback share: errors, options and counters.

mod capture;
mod discovery;
mod playback;
mod samples;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use capture::{Capture, CaptureReader};
pub use discovery::{list_devices, ConfigRange, DeviceInfo};
pub use playback::{Playback, PlaybackWriter};

/// Why a device could not be listed or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// No device of that name (or no default device).
    #[error("{0}")]
    NotFound(String),
    /// The device does not support the stream's rate, channel count or any usable format.
    #[error("{0}")]
    Unsupported(String),
    /// The audio backend failed.
    #[error("{context}: {source}")]
    Backend {
        /// What was being done.
        context: String,
        /// The backend's error.
        source: cpal::Error,
    },
}

/// Wraps a backend error with what was being done.
fn backend(context: impl Into<String>) -> impl FnOnce(cpal::Error) -> DeviceError {
    let context = context.into();
    move |source| DeviceError::Backend { context, source }
}

/// Counters shared between an audio callback and the rest of the program.
#[derive(Debug, Default)]
struct Counters {
    callbacks: AtomicU64,
    frames: AtomicU64,
    xruns: AtomicU64,
    xrun_frames: AtomicU64,
    device_errors: AtomicU64,
}

/// What a device stream has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Audio callbacks run.
    pub callbacks: u64,
    /// Frames the device delivered (capture) or asked for (playback).
    pub frames: u64,
    /// Callbacks that found the ring full (capture: the network side did not keep up) or short
    /// of audio (playback, after the first audio arrived: the network side was late).
    pub xruns: u64,
    /// Frames lost to those xruns (capture: dropped; playback: replaced by silence).
    pub xrun_frames: u64,
    /// Errors the backend reported (including the device's own overruns and underruns).
    pub device_errors: u64,
}

impl Counters {
    fn snapshot(&self) -> DeviceStats {
        DeviceStats {
            callbacks: self.callbacks.load(Ordering::Relaxed),
            frames: self.frames.load(Ordering::Relaxed),
            xruns: self.xruns.load(Ordering::Relaxed),
            xrun_frames: self.xrun_frames.load(Ordering::Relaxed),
            device_errors: self.device_errors.load(Ordering::Relaxed),
        }
    }
}

/// How to open a device stream.
#[derive(Clone, Copy, Debug)]
pub struct StreamOptions {
    /// Frames per device callback (the ALSA period). `None`, or a size the device does not
    /// support: the device's default.
    pub period_frames: Option<u32>,
    /// Capacity of the ring between the callback and the network side, in frames.
    pub ring_frames: usize,
}

impl StreamOptions {
    /// 5 ms periods and a 500 ms ring at `rate`.
    pub fn for_rate(rate: u32) -> Self {
        StreamOptions {
            period_frames: Some((rate / 200).max(1)),
            ring_frames: (rate as usize / 2).max(1024),
        }
    }
}

/// The stream configuration for `cfg`: the requested period if the device supports it.
fn stream_config(
    cfg: &cpal::SupportedStreamConfig,
    range: cpal::SupportedBufferSize,
    opts: &StreamOptions,
) -> cpal::StreamConfig {
    let mut c = cfg.config();
    c.buffer_size = match (opts.period_frames, range) {
        (Some(p), cpal::SupportedBufferSize::Range { min, max }) if (min..=max).contains(&p) => {
            cpal::BufferSize::Fixed(p)
        }
        _ => cpal::BufferSize::Default,
    };
    c
}

/// A backend error callback that only counts (it runs on the audio thread).
fn error_counter(c: Arc<Counters>) -> impl FnMut(cpal::Error) + Send + 'static {
    move |_e| {
        c.device_errors.fetch_add(1, Ordering::Relaxed);
    }
}
