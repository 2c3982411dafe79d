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

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SizedSample, I24};

use crate::format::{AudioSpec, SampleFormat};

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

fn backend(context: impl Into<String>) -> impl FnOnce(cpal::Error) -> DeviceError {
    let context = context.into();
    move |source| DeviceError::Backend { context, source }
}

/// A range of configurations a device supports (one channel count and native sample format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigRange {
    /// Channels per frame.
    pub channels: u16,
    /// Lowest sample rate, in Hz.
    pub min_rate: u32,
    /// Highest sample rate, in Hz.
    pub max_rate: u32,
    /// The device's native sample format (cpal's name: `i16`, `i24`, `f32`, ...).
    pub format: String,
}

impl fmt::Display for ConfigRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min_rate == self.max_rate {
            write!(
                f,
                "{} ch, {} Hz, {}",
                self.channels, self.min_rate, self.format
            )
        } else {
            write!(
                f,
                "{} ch, {}-{} Hz, {}",
                self.channels, self.min_rate, self.max_rate, self.format
            )
        }
    }
}

/// One device and what it supports.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// The identifier to pass as a device name (for ALSA: the PCM name, e.g. `default`,
    /// `hw:CARD=PCH,DEV=0`).
    pub id: String,
    /// A human-readable name.
    pub description: String,
    /// Whether this is the host's default input device.
    pub default_input: bool,
    /// Whether this is the host's default output device.
    pub default_output: bool,
    /// Supported capture configurations (empty if the device cannot capture).
    pub input_configs: Vec<ConfigRange>,
    /// Supported playback configurations (empty if the device cannot play).
    pub output_configs: Vec<ConfigRange>,
}

fn device_id(d: &cpal::Device) -> String {
    d.id()
        .map(|i| i.id().to_string())
        .unwrap_or_else(|_| d.to_string())
}

fn device_name(d: &cpal::Device) -> String {
    d.description()
        .map(|x| x.name().to_string())
        .unwrap_or_else(|_| device_id(d))
}

fn ranges(
    r: Result<impl Iterator<Item = cpal::SupportedStreamConfigRange>, cpal::Error>,
) -> Vec<ConfigRange> {
    r.map(|it| {
        it.map(|c| ConfigRange {
            channels: c.channels(),
            min_rate: c.min_sample_rate(),
            max_rate: c.max_sample_rate(),
            format: c.sample_format().to_string(),
        })
        .collect()
    })
    .unwrap_or_default()
}

/// Lists the devices of the default host with their supported configurations. The default
/// devices come first.
pub fn list_devices() -> Result<Vec<DeviceInfo>, DeviceError> {
    let host = cpal::default_host();
    let def_in = host.default_input_device().map(|d| device_id(&d));
    let def_out = host.default_output_device().map(|d| device_id(&d));
    let mut out = Vec::new();
    for d in host
        .devices()
        .map_err(backend("cannot list audio devices"))?
    {
        let id = device_id(&d);
        out.push(DeviceInfo {
            description: device_name(&d),
            default_input: def_in.as_deref() == Some(id.as_str()),
            default_output: def_out.as_deref() == Some(id.as_str()),
            input_configs: ranges(d.supported_input_configs()),
            output_configs: ranges(d.supported_output_configs()),
            id,
        });
    }
    // the ALSA host reports "default" only through default_*_device when it has no hint for it
    for (def, input) in [(&def_in, true), (&def_out, false)] {
        let Some(def) = def else { continue };
        if out.iter().any(|i| &i.id == def) {
            continue;
        }
        let d = if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        };
        if let Some(d) = d {
            out.push(DeviceInfo {
                id: def.clone(),
                description: device_name(&d),
                default_input: def_in.as_ref() == Some(def),
                default_output: def_out.as_ref() == Some(def),
                input_configs: ranges(d.supported_input_configs()),
                output_configs: ranges(d.supported_output_configs()),
            });
        }
    }
    out.sort_by_key(|i| !(i.default_input || i.default_output));
    Ok(out)
}

/// Finds a device by name (its id, or its description; a unique case-insensitive substring of
/// either also matches), or the default device.
fn find_device(name: Option<&str>, input: bool) -> Result<cpal::Device, DeviceError> {
    let host = cpal::default_host();
    let kind = if input { "input" } else { "output" };
    let Some(name) = name else {
        let d = if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        };
        return d
            .ok_or_else(|| DeviceError::NotFound(format!("there is no default {kind} device")));
    };
    let default = if input {
        host.default_input_device()
    } else {
        host.default_output_device()
    };
    if let Some(d) = default.filter(|d| device_id(d) == name) {
        return Ok(d);
    }
    let devices: Vec<cpal::Device> = host
        .devices()
        .map_err(backend("cannot list audio devices"))?
        .collect();
    if let Some(d) = devices
        .iter()
        .find(|d| device_id(d) == name || device_name(d) == name)
    {
        return Ok(d.clone());
    }
    let needle = name.to_lowercase();
    let matches: Vec<&cpal::Device> = devices
        .iter()
        .filter(|d| {
            device_id(d).to_lowercase().contains(&needle)
                || device_name(d).to_lowercase().contains(&needle)
        })
        .collect();
    match matches.as_slice() {
        [d] => Ok((*d).clone()),
        [] => Err(DeviceError::NotFound(format!(
            "no {kind} device named '{name}' (`isostream devices` lists them)"
        ))),
        many => Err(DeviceError::NotFound(format!(
            "'{name}' matches several devices: {} (give the full id)",
            many.iter()
                .map(|d| device_id(d))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Native formats that can carry `wire`, best first (no loss of resolution).
fn native_preference(wire: SampleFormat) -> &'static [cpal::SampleFormat] {
    use cpal::SampleFormat as N;
    match wire {
        SampleFormat::S16 => &[N::I16, N::I32, N::I24, N::F32, N::F64],
        SampleFormat::S24 => &[N::I24, N::I32, N::F32, N::F64],
        SampleFormat::F32 => &[N::F32, N::F64, N::I32],
    }
}

/// Picks the device configuration for `spec`: its rate and channel count, the best native
/// format. No rate conversion: an unsupported rate is an error naming the supported ones.
fn choose_config(
    device: &cpal::Device,
    spec: AudioSpec,
    input: bool,
) -> Result<(cpal::SupportedStreamConfig, cpal::SupportedBufferSize), DeviceError> {
    let kind = if input { "input" } else { "output" };
    let name = device_id(device);
    let all: Vec<cpal::SupportedStreamConfigRange> = if input {
        device
            .supported_input_configs()
            .map_err(backend(format!("cannot query {kind} device '{name}'")))?
            .collect()
    } else {
        device
            .supported_output_configs()
            .map_err(backend(format!("cannot query {kind} device '{name}'")))?
            .collect()
    };
    let with_channels: Vec<_> = all
        .iter()
        .filter(|c| c.channels() == spec.channels)
        .collect();
    if with_channels.is_empty() {
        let mut chans: Vec<u16> = all.iter().map(|c| c.channels()).collect();
        chans.sort_unstable();
        chans.dedup();
        return Err(DeviceError::Unsupported(format!(
            "{kind} device '{name}' does not support {} channel(s); supported: {}",
            spec.channels,
            list(&chans)
        )));
    }
    let with_rate: Vec<_> = with_channels
        .iter()
        .filter(|c| (c.min_sample_rate()..=c.max_sample_rate()).contains(&spec.rate))
        .collect();
    if with_rate.is_empty() {
        let mut rates: Vec<String> = with_channels
            .iter()
            .map(|c| {
                if c.min_sample_rate() == c.max_sample_rate() {
                    format!("{} Hz", c.min_sample_rate())
                } else {
                    format!("{}-{} Hz", c.min_sample_rate(), c.max_sample_rate())
                }
            })
            .collect();
        rates.sort();
        rates.dedup();
        return Err(DeviceError::Unsupported(format!(
            "{kind} device '{name}' does not support {} Hz with {} channel(s) and isostream does not convert sample rates; supported rates: {}",
            spec.rate,
            spec.channels,
            rates.join(", ")
        )));
    }
    for want in native_preference(spec.format) {
        if let Some(c) = with_rate.iter().find(|c| c.sample_format() == *want) {
            let buf = *c.buffer_size();
            return Ok(((**c).with_sample_rate(spec.rate), buf));
        }
    }
    let mut formats: Vec<String> = with_rate
        .iter()
        .map(|c| c.sample_format().to_string())
        .collect();
    formats.sort();
    formats.dedup();
    Err(DeviceError::Unsupported(format!(
        "{kind} device '{name}' has no sample format that carries {} audio; it offers {}",
        spec.format,
        formats.join(", ")
    )))
}

fn list(v: &[u16]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A device sample type and its exact conversion to and from wire samples.
trait Native: SizedSample + Send + 'static {
    /// Encodes `self` as one big-endian wire sample in the first `wire.bytes()` bytes.
    fn to_wire(self, wire: SampleFormat) -> [u8; 4];
    /// Decodes one wire sample (`b` holds at least `wire.bytes()` bytes).
    fn from_wire(wire: SampleFormat, b: &[u8]) -> Self;
}

/// A left-aligned 32-bit integer as a wire sample (truncating the low bits).
fn int32_to_wire(v: i32, wire: SampleFormat) -> [u8; 4] {
    let mut b = [0u8; 4];
    match wire {
        SampleFormat::S16 => b[..2].copy_from_slice(&((v >> 16) as i16).to_be_bytes()),
        SampleFormat::S24 => b[..3].copy_from_slice(&(v >> 8).to_be_bytes()[1..]),
        SampleFormat::F32 => b = ((v as f64 / 2_147_483_648.0) as f32).to_be_bytes(),
    }
    b
}

/// A wire sample as a left-aligned 32-bit integer.
fn wire_to_int32(wire: SampleFormat, b: &[u8]) -> i32 {
    match wire {
        SampleFormat::S16 => (i16::from_be_bytes([b[0], b[1]]) as i32) << 16,
        SampleFormat::S24 => i32::from_be_bytes([b[0], b[1], b[2], 0]),
        SampleFormat::F32 => {
            let v = f32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64 * 2_147_483_648.0;
            v.round().clamp(i32::MIN as f64, i32::MAX as f64) as i32
        }
    }
}

fn float_to_wire(v: f32, wire: SampleFormat) -> [u8; 4] {
    let mut b = [0u8; 4];
    wire.encode(v, &mut b);
    b
}

impl Native for i16 {
    fn to_wire(self, wire: SampleFormat) -> [u8; 4] {
        int32_to_wire((self as i32) << 16, wire)
    }
    fn from_wire(wire: SampleFormat, b: &[u8]) -> Self {
        (wire_to_int32(wire, b) >> 16) as i16
    }
}

impl Native for I24 {
    fn to_wire(self, wire: SampleFormat) -> [u8; 4] {
        int32_to_wire(self.inner() << 8, wire)
    }
    fn from_wire(wire: SampleFormat, b: &[u8]) -> Self {
        I24::new_unchecked(wire_to_int32(wire, b) >> 8)
    }
}

impl Native for i32 {
    fn to_wire(self, wire: SampleFormat) -> [u8; 4] {
        int32_to_wire(self, wire)
    }
    fn from_wire(wire: SampleFormat, b: &[u8]) -> Self {
        wire_to_int32(wire, b)
    }
}

impl Native for f32 {
    fn to_wire(self, wire: SampleFormat) -> [u8; 4] {
        float_to_wire(self, wire)
    }
    fn from_wire(wire: SampleFormat, b: &[u8]) -> Self {
        wire.decode(b)
    }
}

impl Native for f64 {
    fn to_wire(self, wire: SampleFormat) -> [u8; 4] {
        float_to_wire(self as f32, wire)
    }
    fn from_wire(wire: SampleFormat, b: &[u8]) -> Self {
        wire.decode(b) as f64
    }
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

fn error_counter(c: Arc<Counters>) -> impl FnMut(cpal::Error) + Send + 'static {
    move |_e| {
        c.device_errors.fetch_add(1, Ordering::Relaxed);
    }
}

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

/// Takes `bytes` wire bytes from the ring and decodes them into `out`; returns samples written.
fn decode_ring<T: Native>(
    ring: &mut rtrb::Consumer<u8>,
    bytes: usize,
    wire: SampleFormat,
    out: &mut [T],
) -> usize {
    let Ok(chunk) = ring.read_chunk(bytes) else {
        return 0;
    };
    let (a, b) = chunk.as_slices();
    let n = decode_split(a, b, wire, out);
    chunk.commit_all();
    n
}

/// Decodes wire samples held in two consecutive slices (a ring's two halves) into `out`.
fn decode_split<T: Native>(a: &[u8], b: &[u8], wire: SampleFormat, out: &mut [T]) -> usize {
    let bps = wire.bytes();
    let mut bytes = a.iter().chain(b.iter()).copied();
    let mut n = 0;
    for o in out.iter_mut() {
        let mut s = [0u8; 4];
        for x in s.iter_mut().take(bps) {
            match bytes.next() {
                Some(v) => *x = v,
                None => return n,
            }
        }
        *o = T::from_wire(wire, &s);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire_of<T: Native>(v: &[T], wire: SampleFormat) -> Vec<u8> {
        v.iter()
            .flat_map(|s| s.to_wire(wire).into_iter().take(wire.bytes()))
            .collect()
    }

    fn native_of<T: Native>(b: &[u8], wire: SampleFormat) -> Vec<T> {
        let mut out = vec![T::EQUILIBRIUM; b.len() / wire.bytes()];
        // split anywhere: a sample may straddle the ring's wrap
        let cut = b.len() / 3 + 1;
        let n = decode_split(
            &b[..cut.min(b.len())],
            &b[cut.min(b.len())..],
            wire,
            &mut out,
        );
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn i16_native_round_trips_exactly_through_s16_and_s24() {
        let v: Vec<i16> = vec![i16::MIN, -12_345, -1, 0, 1, 12_345, i16::MAX];
        let w = wire_of(&v, SampleFormat::S16);
        let expect: Vec<u8> = v.iter().flat_map(|s| s.to_be_bytes()).collect();
        assert_eq!(w, expect, "native i16 is the wire sample in big-endian");
        assert_eq!(native_of::<i16>(&w, SampleFormat::S16), v);
        let w24 = wire_of(&v, SampleFormat::S24);
        assert_eq!(&w24[3..6], &[0xcf, 0xc7, 0x00]); // -12345 << 8
        assert_eq!(native_of::<i16>(&w24, SampleFormat::S24), v);
        let wf = wire_of(&v, SampleFormat::F32);
        assert_eq!(native_of::<i16>(&wf, SampleFormat::F32), v);
    }

    #[test]
    fn wider_natives_carry_wire_samples_exactly() {
        for wire in [SampleFormat::S16, SampleFormat::S24] {
            let raw: Vec<u8> = (0..300u32)
                .flat_map(|i| {
                    let x = (i.wrapping_mul(2_654_435_761) >> 8) as u8;
                    [x, x.wrapping_mul(7), x.wrapping_add(3)]
                })
                .take(300 / wire.bytes() * wire.bytes())
                .collect();
            let a: Vec<i32> = native_of(&raw, wire);
            assert_eq!(wire_of(&a, wire), raw, "i32 for {wire}");
            let b: Vec<I24> = native_of(&raw, wire);
            assert_eq!(wire_of(&b, wire), raw, "i24 for {wire}");
            let c: Vec<f32> = native_of(&raw, wire);
            assert_eq!(wire_of(&c, wire), raw, "f32 for {wire}");
            let d: Vec<f64> = native_of(&raw, wire);
            assert_eq!(wire_of(&d, wire), raw, "f64 for {wire}");
        }
        let f = [0.5f32, -0.25, 0.0, 0.999];
        let w = wire_of(&f, SampleFormat::F32);
        assert_eq!(native_of::<f32>(&w, SampleFormat::F32), f);
        assert_eq!(native_of::<i32>(&w, SampleFormat::F32)[0], 1 << 30);
    }

    #[test]
    fn float_natives_clamp_into_integer_wire_formats() {
        let w = wire_of(&[2.0f32, -2.0], SampleFormat::S16);
        assert_eq!(w, [0x7f, 0xff, 0x80, 0x00]);
    }

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
