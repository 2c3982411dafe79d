//! What the relay's unit tests share.

use isostream_transport::rtcp::{SessionDesc, SubstreamDesc};

/// The description of a stored 48 kHz stereo L16 session of one substream with SSRC `ssrc`
/// (and RTX SSRC `rtx_ssrc`), 5 ms packets, no FEC.
pub fn stereo_desc(ssrc: u32, rtx_ssrc: Option<u32>) -> SessionDesc {
    SessionDesc {
        rate: 48_000,
        format: 0,
        packet_frames: 240,
        interleave: 1,
        fec_k: 0,
        fec_m: 0,
        spread: 1,
        live: false,
        codec: 0,
        substreams: vec![SubstreamDesc {
            ssrc,
            ts_base: 0,
            channels: 2,
            rtx_ssrc,
        }],
    }
}
