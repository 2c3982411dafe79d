//! Capture: an input device's callback writes wire frames into a ring; the network side
//! reads them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cpal::traits::{DeviceTrait, StreamTrait};

use cpal::I24;

use super::discovery::{choose_config, device_id, find_device};
use super::samples::Native;
use super::{
    backend, error_counter, stream_config, Counters, DeviceError, DeviceStats, StreamOptions,
};
use crate::format::AudioSpec;

/// An input device capturing into a ring of wire frames. Dropping it stops the device.
pub struct Capture {
    _stream: cpal::Stream,
    counters: Arc<Counters>,
    device: String,
    native: cpal::SampleFormat,
    period_frames: Option<u32>,
}

/// The network side of a [`Capture`]: reads the captured wire frames.
pub struct CaptureReader {
    ring: rtrb::Consumer<u8>,
    frame_bytes: usize,
}

impl CaptureReader {
    /// Frames ready to be read.
    pub fn available_frames(&self) -> usize {
        self.ring.slots() / self.frame_bytes
    }

    /// Moves whole captured frames into `out` (as many as fit and are ready); returns frames.
    pub fn read_frames(&mut self, out: &mut [u8]) -> usize {
        let n = self.available_frames().min(out.len() / self.frame_bytes);
        let bytes = n * self.frame_bytes;
        if bytes > 0 {
            // cannot fail: `bytes` are ready
            let _ = self.ring.pop_entire_slice(&mut out[..bytes]);
        }
        n
    }

    /// Whether the capture stream is gone (its [`Capture`] was dropped).
    pub fn is_closed(&self) -> bool {
        self.ring.is_abandoned()
    }
}

impl Capture {
    /// Opens the input device `name` (or the default one) at `spec`'s rate and channel count,
    /// and starts capturing; the callback converts the device's native samples to `spec`'s
    /// wire format.
    pub fn open(
        name: Option<&str>,
        spec: AudioSpec,
        opts: StreamOptions,
    ) -> Result<(Capture, CaptureReader), DeviceError> {
        let device = find_device(name, true)?;
        let (cfg, range) = choose_config(&device, spec, true)?;
        let config = stream_config(&cfg, range, &opts);
        let fb = spec.frame_bytes();
        let (producer, consumer) = rtrb::RingBuffer::<u8>::new(opts.ring_frames.max(1) * fb);
        let counters = Arc::new(Counters::default());
        let id = device_id(&device);
        let native = cfg.sample_format();
        let stream = match native {
            cpal::SampleFormat::I16 => {
                build_capture::<i16>(&device, config, spec, producer, &counters)
            }
            cpal::SampleFormat::I24 => {
                build_capture::<I24>(&device, config, spec, producer, &counters)
            }
            cpal::SampleFormat::I32 => {
                build_capture::<i32>(&device, config, spec, producer, &counters)
            }
            cpal::SampleFormat::F32 => {
                build_capture::<f32>(&device, config, spec, producer, &counters)
            }
            cpal::SampleFormat::F64 => {
                build_capture::<f64>(&device, config, spec, producer, &counters)
            }
            other => unreachable!("native format {other} is never chosen"),
        }
        .map_err(backend(format!(
            "cannot open input device '{id}' at {spec}"
        )))?;
        stream
            .play()
            .map_err(backend(format!("cannot start input device '{id}'")))?;
        let period_frames = stream.buffer_size().ok();
        Ok((
            Capture {
                _stream: stream,
                counters,
                device: id,
                native,
                period_frames,
            },
            CaptureReader {
                ring: consumer,
                frame_bytes: fb,
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

fn build_capture<T: Native>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    spec: AudioSpec,
    mut ring: rtrb::Producer<u8>,
    counters: &Arc<Counters>,
) -> Result<cpal::Stream, cpal::Error> {
    let c = counters.clone();
    let wire = spec.format;
    let bps = wire.bytes();
    let channels = spec.channels.max(1) as usize;
    device.build_input_stream(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            let frames = data.len() / channels;
            c.callbacks.fetch_add(1, Ordering::Relaxed);
            c.frames.fetch_add(frames as u64, Ordering::Relaxed);
            let bytes = frames * channels * bps;
            match ring.write_chunk_uninit(bytes) {
                Ok(chunk) => {
                    let it = data[..frames * channels]
                        .iter()
                        .flat_map(move |s| s.to_wire(wire).into_iter().take(bps));
                    chunk.fill_from_iter(it);
                }
                Err(_) => {
                    // the network side did not keep up: drop this whole buffer, count it
                    c.xruns.fetch_add(1, Ordering::Relaxed);
                    c.xrun_frames.fetch_add(frames as u64, Ordering::Relaxed);
                }
            }
        },
        error_counter(counters.clone()),
        None,
    )
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SampleFormat;

    #[test]
    fn a_capture_ring_keeps_whole_frames() {
        let spec = AudioSpec {
            rate: 48_000,
            channels: 2,
            format: SampleFormat::S16,
        };
        let (mut p, c) = rtrb::RingBuffer::<u8>::new(10);
        let mut r = CaptureReader {
            ring: c,
            frame_bytes: spec.frame_bytes(),
        };
        p.push_entire_slice(&[1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(r.available_frames(), 1);
        let mut out = [0u8; 8];
        assert_eq!(r.read_frames(&mut out), 1);
        assert_eq!(&out[..4], &[1, 2, 3, 4]);
    }
}
