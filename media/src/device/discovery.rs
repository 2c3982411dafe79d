//! Finding devices: listing them with their configurations, looking one up by name, and
//! choosing the configuration that carries a stream's rate, channels and format.

use std::fmt;

use cpal::traits::{DeviceTrait, HostTrait};

use super::{backend, DeviceError};
use crate::format::{AudioSpec, SampleFormat};

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

pub(super) fn device_id(d: &cpal::Device) -> String {
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
pub(super) fn find_device(name: Option<&str>, input: bool) -> Result<cpal::Device, DeviceError> {
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
pub(super) fn choose_config(
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
