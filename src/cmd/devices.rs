//! Sound cards on the command line: `isostream devices`, `send --device [NAME]` and
//! `recv --out device[:NAME]`. The device I/O itself (callbacks, sample conversion, the
//! lock-free rings, xrun counters) lives in `isostream_media::device`; this file only connects
//! it to the sender's live input and the receiver's sink. Built without the `device` feature,
//! the same functions exist and explain how to get device support.

use isostream_drive::send::Input;
use isostream_drive::AudioSink;
use isostream_drive::AudioSource;
use isostream_media::AudioSpec;

/// The error of every device function in a build without the `device` feature.
#[cfg_attr(feature = "device", allow(dead_code))]
pub const NO_DEVICE_SUPPORT: &str = "isostream was built without audio device support: rebuild with `cargo build --release --features device` (on Linux this needs the Debian packages libasound2-dev and pkg-config)";

/// A placeholder source for the input list of `send` when the audio comes from a device (the
/// device's audio arrives through `Input::Live`; this one is never read).
pub struct NoSource;

impl AudioSource for NoSource {
    fn read_frames(&mut self, _out: &mut [u8]) -> std::io::Result<usize> {
        Ok(0)
    }
}

#[cfg(feature = "device")]
mod imp {
    use std::io;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use anyhow::{Context, Result};
    use isostream_drive::send::Input;
    use isostream_drive::{AudioSink, PULL_INTERVAL as PLAYOUT_TICK};
    use isostream_media::device::{
        self, Capture, CaptureReader, DeviceStats, Playback, PlaybackWriter, StreamOptions,
    };
    use isostream_media::{AudioSpec, SampleFormat};

    /// Prints the devices and their supported configurations.
    pub fn list_devices() -> Result<()> {
        let devices = device::list_devices().context("cannot list audio devices")?;
        if devices.is_empty() {
            println!("no audio devices found");
        }
        for d in devices {
            let mut marks = Vec::new();
            if d.default_input {
                marks.push("default input");
            }
            if d.default_output {
                marks.push("default output");
            }
            let marks = if marks.is_empty() {
                String::new()
            } else {
                format!(" [{}]", marks.join(", "))
            };
            println!("{}{marks}", d.id);
            if d.description != d.id {
                println!("    {}", d.description);
            }
            for (what, cfgs) in [
                ("capture", &d.input_configs),
                ("playback", &d.output_configs),
            ] {
                if cfgs.is_empty() {
                    continue;
                }
                println!("    {what}:");
                for line in compact(cfgs) {
                    println!("      {line}");
                }
            }
        }
        Ok(())
    }

    /// One line per native format and rate range, with the channel counts as ranges
    /// (`1-32 ch, 8000-192000 Hz, i16`).
    fn compact(cfgs: &[device::ConfigRange]) -> Vec<String> {
        let mut groups: Vec<(&str, u32, u32, Vec<u16>)> = Vec::new();
        for c in cfgs {
            match groups
                .iter_mut()
                .find(|g| g.0 == c.format && g.1 == c.min_rate && g.2 == c.max_rate)
            {
                Some(g) => g.3.push(c.channels),
                None => groups.push((&c.format, c.min_rate, c.max_rate, vec![c.channels])),
            }
        }
        groups
            .into_iter()
            .map(|(format, lo, hi, mut chans)| {
                chans.sort_unstable();
                chans.dedup();
                let mut runs: Vec<String> = Vec::new();
                let mut i = 0;
                while i < chans.len() {
                    let mut j = i;
                    while j + 1 < chans.len() && chans[j + 1] == chans[j] + 1 {
                        j += 1;
                    }
                    runs.push(if i == j {
                        chans[i].to_string()
                    } else {
                        format!("{}-{}", chans[i], chans[j])
                    });
                    i = j + 1;
                }
                let rates = if lo == hi {
                    format!("{lo} Hz")
                } else {
                    format!("{lo}-{hi} Hz")
                };
                format!("{} ch, {rates}, {format}", runs.join(","))
            })
            .collect()
    }

    fn describe(s: &DeviceStats) -> String {
        format!(
            "{} callbacks, {} frames, {} xrun(s) ({} frames), {} device error(s)",
            s.callbacks, s.frames, s.xruns, s.xrun_frames, s.device_errors
        )
    }

    /// Keeps a capture stream running (dropping it stops the device and ends the stream) and
    /// reports its xruns.
    pub struct CaptureHandle {
        capture: Capture,
        stop: Arc<AtomicBool>,
    }

    impl CaptureHandle {
        /// The device's counters so far.
        #[allow(dead_code)]
        pub fn stats(&self) -> DeviceStats {
            self.capture.stats()
        }

        /// One line for the summary.
        pub fn report(&self) -> String {
            format!(
                "isostream send: capture device {}: {}",
                self.capture.device(),
                describe(&self.capture.stats())
            )
        }
    }

    impl Drop for CaptureHandle {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Starts capturing from the input device `name` (or the default) as 16-bit audio at
    /// `rate` and `channels`, and forwards it in 5 ms chunks to a live input.
    pub fn capture_input(
        name: Option<&str>,
        rate: u32,
        channels: u16,
    ) -> Result<(Input, AudioSpec, CaptureHandle)> {
        let spec = AudioSpec {
            rate,
            channels,
            format: SampleFormat::S16,
        };
        let (capture, reader) = Capture::open(name, spec, StreamOptions::for_rate(rate))
            .with_context(|| {
                format!(
                    "cannot capture from {}",
                    name.map_or("the default input device".to_string(), |n| format!(
                        "input device '{n}'"
                    ))
                )
            })?;
        eprintln!(
            "isostream send: capturing from {} ({} native samples, {} frames per period)",
            capture.device(),
            capture.native_format(),
            capture
                .period_frames()
                .map_or("?".to_string(), |p| p.to_string())
        );
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let stop = Arc::new(AtomicBool::new(false));
        let chunk_frames = (rate as usize / 200).max(1);
        let fb = spec.frame_bytes();
        let stop2 = stop.clone();
        std::thread::Builder::new()
            .name("isostream-capture".into())
            .spawn(move || forward(reader, tx, stop2, chunk_frames, fb))
            .context("cannot start the capture thread")?;
        Ok((Input::Live(rx), spec, CaptureHandle { capture, stop }))
    }

    /// Moves captured audio from the ring to the sender in chunks of `chunk_frames`.
    fn forward(
        mut reader: CaptureReader,
        tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
        stop: Arc<AtomicBool>,
        chunk_frames: usize,
        fb: usize,
    ) {
        let read = move |buf: &mut [u8]| loop {
            if stop.load(Ordering::Relaxed) || reader.is_closed() {
                return Ok(0);
            }
            if reader.available_frames() >= chunk_frames {
                return Ok(reader.read_frames(buf));
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        isostream::io::forward_live(read, tx, chunk_frames, fb);
    }

    /// Plays a session's audio on an output device, pulled by the device's clock: `demand`
    /// asks for what keeps the ring at its target fill.
    struct DeviceSink {
        playback: Playback,
        writer: PlaybackWriter,
        spec: AudioSpec,
        target_frames: usize,
        /// Device periods added to the target after an xrun, up to [`MAX_RING_MS`].
        period_frames: usize,
        max_target_frames: usize,
        xruns_seen: u64,
    }

    /// Largest fill the playback ring is grown to after xruns, in ms.
    const MAX_RING_MS: u64 = 100;

    impl AudioSink for DeviceSink {
        fn write_frames(&mut self, frames: &[u8]) -> io::Result<()> {
            self.writer.write_frames(frames);
            Ok(())
        }

        /// Lets what is queued play out (bounded by the ring's length).
        fn flush(&mut self) -> io::Result<()> {
            let rate = self.spec.rate.max(1) as u64;
            let queued = self.writer.buffered_frames() as u64;
            let deadline = Instant::now() + Duration::from_millis(queued * 1000 / rate + 200);
            while self.writer.buffered_frames() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(())
        }

        fn demand(&mut self) -> Option<usize> {
            // a device that takes audio in bursts larger than the ring's fill ran dry: keep
            // one more period queued from now on (adaptive, bounded)
            let xruns = self.playback.stats().xruns;
            if xruns > self.xruns_seen {
                self.xruns_seen = xruns;
                self.target_frames =
                    (self.target_frames + self.period_frames).min(self.max_target_frames);
            }
            Some(
                self.target_frames
                    .saturating_sub(self.writer.buffered_frames()),
            )
        }
    }

    impl Drop for DeviceSink {
        fn drop(&mut self) {
            eprintln!(
                "isostream recv: playback device {}: {}, {} frames dropped on a full ring",
                self.playback.device(),
                describe(&self.playback.stats()),
                self.writer.overflow_frames()
            );
        }
    }

    /// Opens the output device `name` (or the default) for a session of `spec`.
    pub fn playback_sink(name: Option<&str>, spec: AudioSpec) -> io::Result<Box<dyn AudioSink>> {
        let (playback, writer) = Playback::open(name, spec, StreamOptions::for_rate(spec.rate))
            .map_err(|e| {
                io::Error::other(format!(
                    "cannot play to {}: {e}",
                    name.map_or("the default output device".to_string(), |n| format!(
                        "output device '{n}'"
                    ))
                ))
            })?;
        let tick = (spec.rate as u128 * PLAYOUT_TICK.as_nanos() / 1_000_000_000) as usize;
        let period = playback.period_frames().unwrap_or(0) as usize;
        // two playout ticks, plus one device period the callback may take at once
        let target_frames = (2 * tick + period).min(writer.capacity_frames());
        eprintln!(
            "isostream recv: playing to {} ({} native samples, {} frames per period, ring target {} frames)",
            playback.device(),
            playback.native_format(),
            playback.period_frames().map_or("?".to_string(), |p| p.to_string()),
            target_frames
        );
        let max_target_frames = ((spec.rate as u64 * MAX_RING_MS / 1000) as usize)
            .min(writer.capacity_frames())
            .max(target_frames);
        Ok(Box::new(DeviceSink {
            playback,
            writer,
            spec,
            target_frames,
            period_frames: period.max(tick),
            max_target_frames,
            xruns_seen: 0,
        }))
    }
}

#[cfg(not(feature = "device"))]
mod imp {
    use anyhow::{bail, Result};
    use isostream_drive::send::Input;
    use isostream_drive::AudioSink;
    use isostream_media::AudioSpec;

    use super::NO_DEVICE_SUPPORT;

    /// Stands for a capture stream; never built without the `device` feature.
    pub struct CaptureHandle(());

    impl CaptureHandle {
        /// One line for the summary.
        pub fn report(&self) -> String {
            String::new()
        }
    }

    /// Fails: no device support in this build.
    pub fn list_devices() -> Result<()> {
        bail!(NO_DEVICE_SUPPORT)
    }

    /// Fails: no device support in this build.
    pub fn capture_input(
        _name: Option<&str>,
        _rate: u32,
        _channels: u16,
    ) -> Result<(Input, AudioSpec, CaptureHandle)> {
        bail!(NO_DEVICE_SUPPORT)
    }

    /// Fails: no device support in this build.
    pub fn playback_sink(
        _name: Option<&str>,
        _spec: AudioSpec,
    ) -> std::io::Result<Box<dyn AudioSink>> {
        Err(std::io::Error::other(NO_DEVICE_SUPPORT))
    }
}

pub use imp::CaptureHandle;

/// Prints the audio devices and their supported configurations (`isostream devices`).
pub fn list_devices() -> anyhow::Result<()> {
    imp::list_devices()
}

/// Starts capturing from the input device `name` (or the default) at `rate` and `channels`
/// (16-bit wire samples); returns the sender's live input, the stream's format and the handle
/// that keeps the device running.
pub fn capture_input(
    name: Option<&str>,
    rate: u32,
    channels: u16,
) -> anyhow::Result<(Input, AudioSpec, CaptureHandle)> {
    imp::capture_input(name, rate, channels)
}

/// A receiver sink playing to the output device `name` (or the default), paced by the
/// device's clock through `AudioSink::demand`.
pub fn playback_sink(name: Option<&str>, spec: AudioSpec) -> std::io::Result<Box<dyn AudioSink>> {
    imp::playback_sink(name, spec)
}

/// Fails at once if this build cannot play to a sound card (no `device` feature), so that
/// `recv --out device` says so before any session, not at the first one.
pub fn check_playback_available() -> anyhow::Result<()> {
    if cfg!(feature = "device") {
        Ok(())
    } else {
        anyhow::bail!(NO_DEVICE_SUPPORT)
    }
}

/// Parses `--out device` / `--out device:NAME`: `Some(None)` for the default device,
/// `Some(Some(name))` for a named one, `None` when `out` is not a device.
pub fn device_out(out: &str) -> Option<Option<&str>> {
    if out == "device" {
        return Some(None);
    }
    out.strip_prefix("device:")
        .map(|n| (!n.is_empty()).then_some(n))
}
