//! `isostream demo`: the main job on built-in defaults. A synthesized clip goes through the
//! real sender and receiver drivers over loopback UDP, with the impairment relay in between,
//! and the received WAV, an SVG report and a summary are written to the working directory.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use isostream::io::WavOutput;
use isostream::sim::{MemorySource, Sample};
use isostream_drive::recv as rdriver;
use isostream_drive::send::{self as sdriver, Input};
use isostream_drive::AudioSink;
use isostream_media::{
    compare, synthesize, write_wav_all, AudioSpec, Program, SampleFormat, WavSink,
};
use isostream_netsim::Profile;
use isostream_receiver::{ReceiverConfig, ReceiverSession};
use isostream_sender::{SenderConfig, SenderSession};
use isostream_transport::time::{Duration, Instant, MediaClock};

use super::opts::{BufferOpts, SrtpOpts, StreamOpts};

/// Arguments of `isostream demo` (all optional).
#[derive(Args, Clone, Debug)]
pub struct DemoArgs {
    /// Network profile of the relay between sender and receiver.
    #[arg(long, default_value = "wifi")]
    pub profile: String,
    /// Seconds of synthesized audio.
    #[arg(long, default_value_t = 8.0, value_parser = super::opts::parse_run_seconds)]
    pub seconds: f64,
    /// Directory for demo-input.wav, demo-output.wav and demo-report.svg.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// Seed of the relay's network model.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub stream: StreamOpts,
    #[command(flatten)]
    pub buffer: BufferOpts,
    /// SRTP on both ends (`--srtp-key`, `--srtp-key-file`, `--srtp-suite`), as send/recv.
    #[command(flatten)]
    pub srtp: SrtpOpts,
}

/// `isostream demo`.
pub async fn run(args: DemoArgs) -> Result<()> {
    // a bad key is an error before anything runs
    let key = args.srtp.key()?;
    let profile = Profile::resolve(&args.profile)?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let spec = AudioSpec {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    let frames = (args.seconds * spec.rate as f64) as usize;
    let input = synthesize(Program::Mixed, spec, frames, 7);
    let in_path = args.out_dir.join("demo-input.wav");
    let out_path = args.out_dir.join("demo-output.wav");
    let svg_path = args.out_dir.join("demo-report.svg");
    write_wav_all(&in_path, spec, &input)
        .with_context(|| format!("cannot write {}", in_path.display()))?;

    let localhost: std::net::SocketAddr = "127.0.0.1:0".parse().expect("literal");
    let recv_sock = super::common::bind_udp(localhost)?;
    let recv_addr = recv_sock.local_addr()?;
    let relay_in = super::common::bind_udp(localhost)?;
    let relay_addr = relay_in.local_addr()?;
    let relay_out = super::common::bind_udp(localhost)?;
    relay_out.connect(recv_addr).await?;
    let send_sock = super::common::bind_udp(localhost)?;
    send_sock.connect(relay_addr).await?;

    let mut scfg = SenderConfig::new(spec);
    args.stream.apply(&mut scfg)?;
    scfg.validate()?;
    scfg.seed = super::common::os_seed();
    scfg.receiver_addr = relay_addr;
    // stored media streams ahead, as `send` does by default
    scfg.speed = isostream_sender::Speed::Times(2.0);
    let mut rcfg = ReceiverConfig::default();
    args.buffer.apply(&mut rcfg, false);
    rcfg.validate()?;
    rcfg.seed = super::common::os_seed();
    let (low, high) = (rcfg.low_water_ms as f64, rcfg.high_water_ms as f64);
    eprintln!(
        "isostream demo: {:.1} s of synthesized speech and music ({spec}) -> send -> impair ('{}': {}) -> recv, all over loopback UDP",
        args.seconds, profile.name, profile.description
    );
    eprintln!(
        "isostream demo: {} ms packets, FEC {}, interleave {}, spread {}; watermarks {low} / {high} ms",
        args.stream.packet_ms(false),
        scfg.fec.map_or("off".into(), |f| f.to_string()),
        scfg.interleave,
        scfg.spread
    );

    let sender = SenderSession::new(scfg)?;
    let receiver = ReceiverSession::new(rcfg)?;
    let stage = || {
        key.as_ref()
            .map(isostream_drive::srtp::Srtp::new)
            .transpose()
    };
    let (send_srtp, recv_srtp) = (stage()?, stage()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut timeline: Vec<Sample> = Vec::new();
    let mut next_sample = Instant::ZERO;
    let out_path2 = out_path.clone();
    let recv_task = async {
        let r = rdriver::run(
            receiver,
            recv_sock,
            recv_srtp,
            move |spec, _| -> std::io::Result<Box<dyn AudioSink>> {
                Ok(Box::new(WavOutput(
                    WavSink::create(&out_path2, spec).map_err(std::io::Error::other)?,
                )))
            },
            true,
            std::future::pending(),
            &mut |now, s: &ReceiverSession| {
                if now >= next_sample {
                    next_sample = now + Duration::from_millis(100);
                    let flow = s.stats().flow;
                    timeline.push(Sample::of(now, s, flow.pauses_sent > flow.resumes_sent));
                }
            },
        )
        .await;
        let _ = stop_tx.send(());
        r
    };
    let relay_task = super::impair::relay(relay_in, relay_out, &profile, args.seed, async {
        let _ = stop_rx.await;
    });
    let data = input.clone();
    let send_task = async move {
        let mut src = MemorySource::new(&data, spec.frame_bytes());
        // the driver wants an owned source: hand it the frames through a boxed adapter
        let mut owned = Vec::new();
        let mut buf = vec![0u8; 4096 * spec.frame_bytes()];
        loop {
            use isostream_drive::AudioSource;
            let n = src.read_frames(&mut buf)?;
            if n == 0 {
                break;
            }
            owned.extend_from_slice(&buf[..n * spec.frame_bytes()]);
        }
        sdriver::run(
            sender,
            send_sock,
            Input::Stored(Box::new(OwnedSource {
                data: owned,
                pos: 0,
                fb: spec.frame_bytes(),
            })),
            send_srtp,
            &mut (),
        )
        .await
    };
    let (recv_r, relay_r, send_r) = tokio::join!(recv_task, relay_task, send_task);
    let (sstats, _) = send_r.context("sender failed")?;
    let (rstats, _) = recv_r.context("receiver failed")?;
    let relay = relay_r?;

    let (_, output) = isostream_media::read_wav_all(&out_path)
        .with_context(|| format!("cannot read back {}", out_path.display()))?;
    let cmp = compare(&input, &output, spec);
    isostream::report::plot_timeline(
        &svg_path,
        &format!(
            "isostream demo: profile {}, FEC {}",
            profile.name,
            args.stream
                .fec(false)
                .map_or("off".into(), |f| f.to_string())
        ),
        &timeline,
        low,
        high,
    )?;
    super::impair::print_summary(&relay);
    eprintln!(
        "isostream send: {} media + {} repair packets sent",
        sstats.packets_sent, sstats.repair_packets_sent
    );
    super::recv::print_receiver_summary(&rstats);
    let clock = MediaClock::new(spec.rate);
    println!();
    println!("What happened:");
    println!(
        "  The network dropped {} of {} datagrams ({:.2} %). Of the {} media packets lost, FEC rebuilt {} and {} were asked for again and retransmitted; {} could not be repaired (residual loss {:.3} %).",
        relay.forward.dropped + relay.forward.dropped_outage,
        relay.forward.offered,
        relay.forward.loss_rate() * 100.0,
        rstats.packets_lost,
        rstats.packets_rebuilt,
        rstats.packets_retransmitted,
        rstats.packets_unrecoverable,
        rstats.residual_loss * 100.0
    );
    println!(
        "  Playback started after {:.0} ms of buffering; {:.1} ms of audio was interpolated and {:.1} ms concealed; {} underrun(s); {} audible gap(s) of 10 ms or more.",
        rstats.startup_delay_ms,
        clock.ms_of(rstats.frames_interpolated),
        clock.ms_of(rstats.frames_concealed),
        rstats.underruns,
        cmp.gaps.len()
    );
    println!(
        "  The output matches the input in {:.2} % of frames{}.",
        cmp.bit_exact_fraction * 100.0,
        if cmp.snr_db.is_finite() {
            format!(" (SNR {:.1} dB)", cmp.snr_db)
        } else {
            ", bit for bit".into()
        }
    );
    println!(
        "  Wrote {}, {} and {}.",
        in_path.display(),
        out_path.display(),
        svg_path.display()
    );
    Ok(())
}

struct OwnedSource {
    data: Vec<u8>,
    pos: usize,
    fb: usize,
}

impl isostream_drive::AudioSource for OwnedSource {
    fn read_frames(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = (out.len() / self.fb).min((self.data.len() - self.pos) / self.fb);
        out[..n * self.fb].copy_from_slice(&self.data[self.pos..self.pos + n * self.fb]);
        self.pos += n * self.fb;
        Ok(n)
    }
}
