//! Reed-Solomon repair: cost of protecting and of recovering one block of audio packets, each
//! 5 ms of 48 kHz stereo L16 (240 frames x 4 bytes = 960 payload bytes) + a 12-byte RTP header,
//! i.e. 972-byte datagrams. Throughput figures count payload bytes (k x 960).
//!
//! Run: `cargo bench -p isostream-transport --bench fec -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use isostream_transport::fec::{
    BlockDecoder, BlockEncoder, ErasureCodec, FecParams, ReedSolomonCodec, RepairHeader,
};
use isostream_transport::rtp;

/// L16 payload of one packet, in bytes.
const PAYLOAD_LEN: usize = 960;
/// Whole source datagram, in bytes.
const PACKET_LEN: usize = rtp::HEADER_LEN + PAYLOAD_LEN;
const PARAMS: [(u8, u8); 3] = [(8, 2), (18, 10), (32, 8)];

fn packets(k: u8, base_seq: u16) -> Vec<Bytes> {
    let mut x: u32 = 0x1234_5678;
    (0..k as u16)
        .map(|i| {
            let mut b = BytesMut::with_capacity(PACKET_LEN);
            b.put_u8(0x80);
            b.put_u8(96);
            b.put_u16(base_seq.wrapping_add(i));
            b.put_u32(240 * i as u32);
            b.put_u32(0xfeed_f00d);
            while b.len() < PACKET_LEN {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                b.put_u8(x as u8);
            }
            b.freeze()
        })
        .collect()
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("fec_encode_block");
    for (k, m) in PARAMS {
        let src = packets(k, 1000);
        g.throughput(Throughput::Bytes((k as usize * PAYLOAD_LEN) as u64));
        // full sender path: k pushes (copy into shard buffers), m repair datagrams built
        g.bench_with_input(
            BenchmarkId::new("encoder", format!("{k},{m}")),
            &src,
            |b, src| {
                let mut enc = BlockEncoder::new(
                    FecParams::new(k, m).unwrap(),
                    0xfeed_f00d,
                    0,
                    ReedSolomonCodec::boxed(),
                );
                let mut out = Vec::with_capacity(m as usize);
                b.iter(|| {
                    out.clear();
                    for p in src {
                        enc.push(black_box(p), &mut out);
                    }
                    black_box(&out);
                })
            },
        );
        // the Reed-Solomon arithmetic alone, on preallocated shards
        g.bench_function(BenchmarkId::new("codec_only", format!("{k},{m}")), |b| {
            let n = (k + m) as usize;
            let mut bufs: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; PACKET_LEN + 2]).collect();
            let mut codec = ReedSolomonCodec::new();
            b.iter(|| {
                let mut shards: Vec<&mut [u8]> =
                    bufs.iter_mut().map(|v| v.as_mut_slice()).collect();
                codec.encode(k as usize, m as usize, &mut shards).unwrap();
            })
        });
    }
    g.finish();
}

fn recover(c: &mut Criterion) {
    let mut g = c.benchmark_group("fec_recover_block");
    for (k, m) in PARAMS {
        let src = packets(k, 1000);
        let mut enc = BlockEncoder::new(
            FecParams::new(k, m).unwrap(),
            0xfeed_f00d,
            0,
            ReedSolomonCodec::boxed(),
        );
        let mut repairs = Vec::new();
        for p in &src {
            enc.push(p, &mut repairs);
        }
        let repairs: Vec<(RepairHeader, Vec<u8>)> = repairs
            .iter()
            .map(|r| {
                let (h, s) = RepairHeader::parse(r).unwrap();
                (h, s.to_vec())
            })
            .collect();
        g.throughput(Throughput::Bytes((k as usize * PAYLOAD_LEN) as u64));
        // m source packets lost (the first m), k - m sources and m repairs arrive: every
        // repair shard is needed and m data shards are rebuilt
        g.bench_function(BenchmarkId::new("decoder", format!("{k},{m}")), |b| {
            let mut dec = BlockDecoder::new(ReedSolomonCodec::boxed());
            let mut out = Vec::with_capacity(m as usize);
            let mut base: u64 = 1 << 16;
            b.iter(|| {
                out.clear();
                for (i, p) in src.iter().enumerate().skip(m as usize) {
                    dec.push_source(base + i as u64, p, &mut out);
                }
                for (h, shard) in &repairs {
                    dec.push_repair(base, h, shard, &mut out);
                }
                assert_eq!(out.len(), m as usize);
                base += k as u64;
                dec.expire_before(base);
                black_box(&out);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encode, recover);
criterion_main!(benches);
