//! Cost of the SRTP stage (drive/src/srtp.rs) per packet: protect at the sender plus
//! unprotect at the receiver of one 5 ms stereo 48 kHz L16 packet (12 + 960 bytes), and of
//! one 16-byte RTCP packet (an ISOS APP PAUSE), for each suite; and what refusing a forged
//! media packet costs the receiver.
//!
//!     cargo bench --bench srtp
//!
//! docs/BENCHMARKS.md keeps the figures.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use isostream_drive::srtp::{Srtp, SrtpKey, SrtpSuite};

fn media(seq: u16, into: &mut Vec<u8>) {
    into.clear();
    into.extend_from_slice(&[0x80, 96]);
    into.extend_from_slice(&seq.to_be_bytes());
    into.extend_from_slice(&(seq as u32 * 240).to_be_bytes());
    into.extend_from_slice(&0x1a2b_3c4du32.to_be_bytes());
    into.resize(12 + 960, 0x5a);
}

fn pause(request: u32) -> Vec<u8> {
    let mut d = vec![0x80, 204, 0, 3];
    d.extend_from_slice(&0x0bad_cafeu32.to_be_bytes());
    d.extend_from_slice(b"ISOS");
    d.extend_from_slice(&request.to_be_bytes());
    d
}

fn round_trip(c: &mut Criterion) {
    for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm] {
        let key = SrtpKey::from_bytes(suite, &vec![7; suite.master_bytes()]).unwrap();
        let mut g = c.benchmark_group(format!("srtp_{}", suite.name()));
        g.throughput(Throughput::Elements(1));
        g.bench_function("rtp_972_bytes_protect_unprotect", |b| {
            let (mut tx, mut rx) = (Srtp::new(&key).unwrap(), Srtp::new(&key).unwrap());
            let mut seq = 0u16;
            let mut buf = Vec::with_capacity(1500);
            b.iter(|| {
                seq = seq.wrapping_add(1);
                media(seq, &mut buf);
                let p = tx.protect(&buf).unwrap();
                rx.unprotect(&p).unwrap()
            });
        });
        g.bench_function("rtcp_pause_protect_unprotect", |b| {
            let (mut tx, mut rx) = (Srtp::new(&key).unwrap(), Srtp::new(&key).unwrap());
            let d = pause(1);
            b.iter(|| {
                let p = tx.protect(&d).unwrap();
                rx.unprotect(&p).unwrap()
            });
        });
        g.bench_function("forged_rtp_972_bytes_refused", |b| {
            // the worst case for the receiver: each forgery goes through the probe context,
            // which is then replaced (a key derivation)
            let other = SrtpKey::from_bytes(suite, &vec![8; suite.master_bytes()]).unwrap();
            let (mut forger, mut rx) = (Srtp::new(&other).unwrap(), Srtp::new(&key).unwrap());
            let mut buf = Vec::with_capacity(1500);
            media(1, &mut buf);
            let forged = forger.protect(&buf).unwrap();
            b.iter(|| rx.unprotect(&forged).is_err());
        });
        g.finish();
    }
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
