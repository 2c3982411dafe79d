//! `send --codec opus` with input at another rate than 48 kHz (feature `opus`): the sender
//! resamples it (drive/src/resample.rs), and what `recv` writes is the input's program at
//! 48 kHz, judged against the same program synthesized at 48 kHz.
#![cfg(feature = "opus")]

mod common;

use common::{count, read_json, read_output, send_to_recv, RunFiles};
use isostream_media::{compare, find_alignment, write_wav_all, AudioSpec, SampleFormat};

/// Two chirps (one per channel: 200 to 2,000 Hz and 300 to 3,000 Hz, rising over the
/// whole clip, so that the alignment is unique) of `frames` frames at `spec`, with 20 ms
/// fades at both ends.
fn chirps(spec: AudioSpec, frames: usize) -> Vec<u8> {
    let c = usize::from(spec.channels);
    let sb = spec.format.bytes();
    let rate = f64::from(spec.rate);
    let fade = rate * 0.02;
    let length = frames as f64 / rate;
    let mut v = vec![0u8; frames * c * sb];
    for f in 0..frames {
        let t = f as f64 / rate;
        let env = (f as f64 / fade).min((frames - f) as f64 / fade).min(1.0);
        for ch in 0..c {
            let f0 = 200.0 * (ch + 1) as f64 * 0.75 + 50.0 * ch as f64;
            let f1 = f0 * 10.0;
            // phase of a linear sweep from f0 to f1 over `length` seconds
            let phase = 2.0 * std::f64::consts::PI * (f0 * t + (f1 - f0) * t * t / (2.0 * length));
            let x = env * 0.4 * phase.sin();
            let at = (f * c + ch) * sb;
            spec.format.encode(x as f32, &mut v[at..at + sb]);
        }
    }
    v
}

#[test]
fn cd_and_32_khz_input_is_resampled_and_plays_the_same_program_at_48_khz() {
    for (rate, channels, format) in [
        (44_100, 2, SampleFormat::S16),
        (32_000, 1, SampleFormat::F32),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.wav");
        let in_spec = AudioSpec {
            rate,
            channels,
            format,
        };
        let seconds = 2.0;
        let frames = (f64::from(rate) * seconds) as usize + 77;
        write_wav_all(&input, in_spec, &chirps(in_spec, frames)).unwrap();
        let files = RunFiles::in_dir(dir.path());
        let (s, r) = send_to_recv(&input, &files, &["--codec", "opus", "--speed", "max"], &[]);
        let log = format!("send:\n{}\nrecv:\n{}", s.output(), r.output());
        assert!(
            s.output().contains(&format!("resampled from {rate} Hz")),
            "the sender says it resamples\n{log}"
        );
        // Opus decodes to 16-bit at 48 kHz
        let out_spec = AudioSpec {
            rate: 48_000,
            channels,
            format: SampleFormat::S16,
        };
        let got = read_output(&files.out, out_spec, "resampled opus", &log);
        let want_frames = (frames as f64 * 48_000.0 / f64::from(rate)).round() as usize;
        let got_frames = got.len() / out_spec.frame_bytes();
        assert!(
            got_frames.abs_diff(want_frames) <= 960,
            "{rate} Hz: {got_frames} frames out, {want_frames} due (to within an Opus frame)\n{log}"
        );
        let want = chirps(out_spec, want_frames);
        let lag = find_alignment(&want, &got, out_spec, 4_800).unwrap_or_else(|| {
            panic!("{rate} Hz: the output matches the program at no delay\n{log}")
        });
        let fb = out_spec.frame_bytes();
        let snr = (lag - 4..=lag + 4)
            .filter(|l| *l >= 0)
            .map(|l| compare(&want, &got[(l as usize * fb).min(got.len())..], out_spec).snr_db)
            .fold(f64::MIN, f64::max);
        eprintln!("{rate} Hz {channels} ch: lag {lag} frames, SNR {snr:.1} dB against the program at 48 kHz");
        // the encoder's lookahead (312 frames) and a little: the resampler adds no delay
        assert!(
            (300..=330).contains(&lag),
            "{rate} Hz: the output lags the program by {lag} frames\n{log}"
        );
        assert!(snr >= 20.0, "{rate} Hz: SNR {snr:.1} dB\n{log}");
        let rj = read_json(&files.rstats);
        assert_eq!(count(&rj, &["receiver", "datagrams_malformed"]), 0, "{log}");
    }
}
