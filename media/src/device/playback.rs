//! Playback: the network side writes wire frames into a ring; an output device's callback
//! plays them, and silence (counted) when the ring runs dry.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cpal::traits::{DeviceTrait, StreamTrait};

use cpal::I24;

use super::discovery::{choose_config, device_id, find_device};
use super::samples::{decode_ring, Native};
use super::{
    backend, error_counter, stream_config, Counters, DeviceError, DeviceStats, StreamOptions,
};
use crate::format::AudioSpec;

/// An output device playing wire frames from a ring. Dropping it stops the device.
pub struct Playback {
    _stream: cpal::Stream,
    counters: Arc<Counters>,
    device: String,
    native: cpal::SampleFormat,
    period_frames: Option<u32>,
}

/// The network side of a [`Playback`]: writes wire frames for the device to play.
pub struct PlaybackWriter {
    ring: rtrb::Producer<u8>,
    frame_bytes: usize,
    capacity_frames: usize,
    overflow_frames: u64,
}

impl PlaybackWriter {
    /// Frames queued and not yet taken by the device.
    pub fn buffered_frames(&self) -> usize {
        self.capacity_frames - self.ring.slots() / self.frame_bytes
    }

    /// Frames that fit in the ring now.
    pub fn free_frames(&self) -> usize {
        self.ring.slots() / self.frame_bytes
    }

    /// The ring's capacity in frames.
    pub fn capacity_frames(&self) -> usize {
        self.capacity_frames
    }

    /// Queues whole wire frames; what does not fit is dropped and counted
    /// ([`PlaybackWriter::overflow_frames`]). Returns the frames queued.
    pub fn write_frames(&mut self, frames: &[u8]) -> usize {
        let total = frames.len() / self.frame_bytes;
        let n = total.min(self.free_frames());
        if n > 0 {
            // cannot fail: `n` frames fit
            let _ = self.ring.push_entire_slice(&frames[..n * self.frame_bytes]);
        }
        self.overflow_frames += (total - n) as u64;
        n
    }

    /// Frames dropped because the ring was full.
    pub fn overflow_frames(&self) -> u64 {
        self.overflow_frames
    }
}

impl Playback {
    /// Opens the output device `name` (or the default one) at `spec`'s rate and channel
    /// count, and starts it; the callback converts wire frames to the device's native
    /// samples and plays silence (counted as an xrun once audio has started) when the ring
    /// runs dry.
    pub fn open(
        name: Option<&str>,
        spec: AudioSpec,
        opts: StreamOptions,
    ) -> Result<(Playback, PlaybackWriter), DeviceError> {
        let device = find_device(name, false)?;
        let (cfg, range) = choose_config(&device, spec, false)?;
        let config = stream_config(&cfg, range, &opts);
        let fb = spec.frame_bytes();
        let capacity_frames = opts.ring_frames.max(1);
        let (producer, consumer) = rtrb::RingBuffer::<u8>::new(capacity_frames * fb);
        let counters = Arc::new(Counters::default());
        let id = device_id(&device);
        let native = cfg.sample_format();
        let stream = match native {
            cpal::SampleFormat::I16 => {
                build_playback::<i16>(&device, config, spec, consumer, &counters)
            }
            cpal::SampleFormat::I24 => {
                build_playback::<I24>(&device, config, spec, consumer, &counters)
            }
            cpal::SampleFormat::I32 => {
                build_playback::<i32>(&device, config, spec, consumer, &counters)
            }
            cpal::SampleFormat::F32 => {
                build_playback::<f32>(&device, config, spec, consumer, &counters)
            }
            cpal::SampleFormat::F64 => {
                build_playback::<f64>(&device, config, spec, consumer, &counters)
            }
            other => unreachable!("native format {other} is never chosen"),
        }
        .map_err(backend(format!(
            "cannot open output device '{id}' at {spec}"
        )))?;
        stream
            .play()
            .map_err(backend(format!("cannot start output device '{id}'")))?;
        let period_frames = stream.buffer_size().ok();
        Ok((
            Playback {
                _stream: stream,
                counters,
                device: id,
                native,
                period_frames,
            },
            PlaybackWriter {
                ring: producer,
                frame_bytes: fb,
                capacity_frames,
                overflow_frames: 0,
            },
        ))
    }

    /// Counters so far.
    pub fn stats(&self) -> DeviceStats {
        self.counters.snapshot()
    }

    /// The device's id.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The device's native sample format (e.g. `i16`).
    pub fn native_format(&self) -> String {
        self.native.to_string()
    }

    /// Frames per device callback, if the backend reports it.
    pub fn period_frames(&self) -> Option<u32> {
        self.period_frames
    }
}

fn build_playback<T: Native>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    spec: AudioSpec,
    mut ring: rtrb::Consumer<u8>,
    counters: &Arc<Counters>,
) -> Result<cpal::Stream, cpal::Error> {
    let c = counters.clone();
    let wire = spec.format;
    let bps = wire.bytes();
    let channels = spec.channels.max(1) as usize;
    let fb = channels * bps;
    let mut started = false;
    device.build_output_stream(
        config,
        move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
            let want = data.len() / channels;
            c.callbacks.fetch_add(1, Ordering::Relaxed);
            c.frames.fetch_add(want as u64, Ordering::Relaxed);
            let n = want.min(ring.slots() / fb);
            let filled = decode_ring::<T>(&mut ring, n * fb, wire, &mut data[..n * channels]);
            debug_assert_eq!(filled, n * channels);
            for s in &mut data[n * channels..] {
                *s = T::EQUILIBRIUM;
            }
            if n > 0 {
                started = true;
            }
            if n < want && started {
                c.xruns.fetch_add(1, Ordering::Relaxed);
                c.xrun_frames
                    .fetch_add((want - n) as u64, Ordering::Relaxed);
            }
        },
        error_counter(counters.clone()),
        None,
    )
}
