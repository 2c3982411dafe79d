//! In-process runs of the whole pipeline over a simulated link (`isostream::sim`), and the
//! audio spec most tests stream.

use isostream::sim::{self, MemorySource, SimResult};
use isostream_media::{AudioSpec, SampleFormat};
use isostream_netsim::Profile;
use isostream_receiver::ReceiverConfig;
use isostream_sender::SenderConfig;
use isostream_transport::time::Duration;

/// 48 kHz, 2 channels, 16-bit: the spec most tests stream.
pub fn stereo() -> AudioSpec {
    AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    }
}

/// The built-in link profile `name` (e.g. `"perfect"`, `"lan"`, `"bursty"`); panics if
/// there is none.
pub fn builtin_profile(name: &str) -> Profile {
    Profile::builtin(name).unwrap_or_else(|| panic!("no built-in profile {name:?}"))
}

/// Streams `input` (wire frames of `cfg.spec`) from a sender with `cfg` to a receiver with
/// the default configuration over `profile` (its randomness from `seed`), for at most
/// `limit_s` seconds of simulated time. Panics on an I/O error; whether the run completed
/// is the caller's to check.
pub fn run_sim(
    cfg: SenderConfig,
    profile: &Profile,
    seed: u64,
    input: &[u8],
    limit_s: u64,
) -> SimResult {
    let mut src = MemorySource::new(input, cfg.spec.frame_bytes());
    sim::run(
        cfg,
        ReceiverConfig::default(),
        profile,
        seed,
        &mut src,
        Duration::from_secs(limit_s),
    )
    .expect("the simulated run")
}
