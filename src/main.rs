//! `isostream`: stream audio over UDP (send, recv), simulate lossy networks (bench), relay
//! through an impaired path (impair), and show it all on built-in defaults (demo).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use isostream::io::{
    MultiInput, PcmInput, PcmOutput, SignalInput, SplitWavOutput, WavInput, WavOutput,
};
use isostream_media::{
    AudioSpec, PcmReader, PcmWriter, Program, RawFormat, SignalSource, WavSink, WavSource,
};
use isostream_receiver::driver::{self as rdriver, AudioSink};
use isostream_receiver::{config as rconfig, ReceiverConfig, ReceiverSession, ReceiverStats};
use isostream_sender::driver::{self as sdriver, AudioSource, Input};
use isostream_sender::{FinishReason, SenderConfig, SenderSession, SenderStats, Speed};
use isostream_transport::fec::FecParams;
use isostream_transport::time::Duration;

mod bench_cmd;
mod demo_cmd;
mod device_cmd;
mod impair_cmd;

#[derive(Parser)]
#[command(
    name = "isostream",
    version,
    about = "Real-time audio over UDP: RTP/L16 with Reed-Solomon repair packets, interleaving and a watermark-steered jitter buffer"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Stream a synthesized clip through real send, impair and recv over loopback, and report.
    Demo(demo_cmd::DemoArgs),
    /// Send a WAV file (or raw PCM on stdin) to a receiver.
    Send(SendArgs),
    /// Receive a stream and write it to a WAV file or raw PCM on stdout.
    Recv(RecvArgs),
    /// Simulate a session through a lossy network model in virtual time.
    Bench(bench_cmd::BenchArgs),
    /// Relay UDP between two addresses through the impairment model, in real time.
    Impair(impair_cmd::ImpairArgs),
    /// List audio devices and their supported configurations (needs the `device` feature).
    Devices,
}

/// Options shared by `send` and `bench`: how the sender shapes the stream.
#[derive(Args, Clone, Debug)]
pub struct StreamOpts {
    /// Packet duration in ms (default 5; 2.5 for a live source).
    #[arg(long)]
    pub packet_ms: Option<f64>,
    /// Reed-Solomon repair: K source packets + M repair packets per block, or `off`
    /// (default 8,2; 4,1 for a live source, so a block spans 10 ms instead of 40 ms).
    #[arg(long, value_parser = parse_fec)]
    pub fec: Option<FecSetting>,
    /// Interleave depth D: packet j of a group of D carries samples j, j+D, ... (1 = plain).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub interleave: u8,
    /// Interleave the transmission order of N FEC blocks against bursts (1 = off).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub spread: u8,
    /// Split the input into substreams: `per-channel`, or groups like `1,2+3` (1-based,
    /// contiguous channels in order). Default: one substream with every channel.
    #[arg(long)]
    pub substreams: Option<String>,
}

/// Packet duration of a live source by default, in ms.
const LIVE_PACKET_MS: f64 = 2.5;

/// `--fec K,M` or `off`.
#[derive(Clone, Copy, Debug)]
pub struct FecSetting(pub Option<FecParams>);

fn parse_fec(s: &str) -> Result<FecSetting, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(FecSetting(None));
    }
    s.parse::<FecParams>()
        .map(|p| FecSetting(Some(p)))
        .map_err(|e| format!("{e} (expected K,M such as 8,2, or off)"))
}

/// Parses `--speed`: a positive number or `max`.
fn parse_speed(s: &str) -> Result<Speed, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(Speed::Max);
    }
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(Speed::Times(x)),
        _ => Err(format!("'{s}' is not a positive number or max")),
    }
}

impl StreamOpts {
    /// Packet duration in ms: as given, or the default for stored media or a live source.
    pub fn packet_ms(&self, live: bool) -> f64 {
        self.packet_ms
            .unwrap_or(if live { LIVE_PACKET_MS } else { 5.0 })
    }

    /// FEC setting: as given, or the default for stored media or a live source.
    pub fn fec(&self, live: bool) -> Option<FecParams> {
        self.fec.map_or_else(
            || {
                Some(
                    if live {
                        FecParams::new(4, 1)
                    } else {
                        FecParams::new(8, 2)
                    }
                    .expect("valid defaults"),
                )
            },
            |f| f.0,
        )
    }

    /// Applies these options to a sender configuration (set `cfg.live` first: a live source
    /// gets the low-latency defaults).
    pub fn apply(&self, cfg: &mut SenderConfig) -> Result<()> {
        let ms = self.packet_ms(cfg.live);
        let frames = (cfg.spec.rate as f64 * ms / 1000.0).round() as u32;
        if !(frames > 0 && ms.is_finite()) {
            bail!("--packet-ms {ms} is shorter than one sample");
        }
        cfg.packet_frames = frames;
        cfg.fec = self.fec(cfg.live);
        cfg.interleave = self.interleave;
        cfg.spread = self.spread;
        if let Some(s) = &self.substreams {
            cfg.substream_channels = parse_substreams(s, cfg.spec.channels)?;
        }
        Ok(())
    }
}

/// Parses `per-channel` or `1,2+3` into channel counts per substream.
pub fn parse_substreams(s: &str, channels: u16) -> Result<Vec<u16>> {
    if s == "per-channel" {
        return Ok(vec![1; channels as usize]);
    }
    let mut next = 1u16;
    let mut out = Vec::new();
    for group in s.split(',') {
        let chans: Vec<u16> = group
            .split('+')
            .map(|c| c.trim().parse::<u16>())
            .collect::<Result<_, _>>()
            .with_context(|| {
                format!("--substreams '{s}': expected per-channel or groups like 1,2+3")
            })?;
        for &c in &chans {
            if c != next {
                bail!("--substreams '{s}': channels must be listed once each, in order (expected {next}, got {c})");
            }
            next += 1;
        }
        out.push(chans.len() as u16);
    }
    if next - 1 != channels {
        bail!(
            "--substreams '{s}' covers {} channels but the input has {channels}",
            next - 1
        );
    }
    Ok(out)
}

/// Options shared by `recv` and `bench`: how the receiver buffers.
#[derive(Args, Clone, Debug)]
pub struct BufferOpts {
    /// Playback starts (and RESUME is sent) at this much buffered audio, in ms.
    /// Default: 200 for stored media, 40 with --live.
    #[arg(long)]
    pub low_water: Option<u32>,
    /// PAUSE is sent above this much buffered audio, in ms. Default: 1000, 200 with --live.
    #[arg(long)]
    pub high_water: Option<u32>,
}

impl BufferOpts {
    /// Applies the watermarks (live or stored defaults) to a receiver configuration.
    pub fn apply(&self, cfg: &mut ReceiverConfig, live: bool) {
        let (lo, hi) = if live {
            (rconfig::LIVE_LOW_WATER_MS, rconfig::LIVE_HIGH_WATER_MS)
        } else {
            (rconfig::STORED_LOW_WATER_MS, rconfig::STORED_HIGH_WATER_MS)
        };
        cfg.low_water_ms = self.low_water.unwrap_or(lo);
        cfg.high_water_ms = self.high_water.unwrap_or(hi.max(cfg.low_water_ms * 2));
    }
}

#[derive(Args)]
struct SendArgs {
    /// WAV file(s), or `-` for raw PCM on stdin. Several files become substreams of one session.
    #[arg(required_unless_present = "device", conflicts_with = "device")]
    inputs: Vec<String>,
    /// Capture from an audio device (the default input, or NAME from `isostream devices`)
    /// instead of INPUT, at --rate and --channels as 16-bit audio. Implies --live.
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    device: Option<String>,
    /// Receiver address.
    #[arg(long)]
    to: String,
    /// Local address to send from.
    #[arg(long, default_value = "0.0.0.0:0")]
    bind: SocketAddr,
    /// Raw PCM format on stdin: s16le, s16be, s24le or f32le.
    #[arg(long, default_value = "s16le", value_parser = isostream::io::raw_format)]
    format: RawFormat,
    /// Sample rate of raw PCM on stdin, in Hz.
    #[arg(long, default_value_t = 48_000)]
    rate: u32,
    /// Channels of raw PCM on stdin.
    #[arg(long, default_value_t = 2)]
    channels: u16,
    /// Treat stdin as a live source (audio produced while paused is dropped).
    #[arg(long)]
    live: bool,
    /// How fast stored media is sent: times real time, or `max` (as fast as PAUSE/RESUME allow).
    #[arg(long, default_value = "1", value_parser = parse_speed)]
    speed: Speed,
    #[command(flatten)]
    stream: StreamOpts,
    /// Stop if the receiver, once heard, is silent this long (seconds).
    #[arg(long, default_value_t = 10.0)]
    receiver_timeout: f64,
    /// Write an SDP description of the stream to this file, for stock RTP receivers (ffmpeg,
    /// VLC, GStreamer). Needs a plain stream: --fec off --interleave 1.
    #[arg(long)]
    sdp: Option<PathBuf>,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    stats_json: Option<PathBuf>,
}

#[derive(Args)]
struct RecvArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:5004")]
    listen: SocketAddr,
    /// Output: a WAV file, `-` for raw PCM on stdout at the playout pace, or `device[:NAME]`
    /// for an audio device (the default output, or NAME from `isostream devices`).
    #[arg(long, required_unless_present = "out_dir")]
    out: Option<String>,
    /// Write one WAV file per substream into this directory instead.
    #[arg(long, conflicts_with = "out")]
    out_dir: Option<PathBuf>,
    /// Raw PCM format on stdout: s16le, s16be, s24le or f32le (default: matches the stream).
    #[arg(long, value_parser = isostream::io::raw_format)]
    format: Option<RawFormat>,
    /// Sample rate assumed for a stock RTP sender that sends no session description, in Hz.
    #[arg(long, default_value_t = 48_000)]
    rate: u32,
    /// Channels assumed for a stock RTP sender.
    #[arg(long, default_value_t = 2)]
    channels: u16,
    /// The payload type a stock sender uses for plain L16 (ffmpeg uses 97, which isostream
    /// otherwise reads as L24). Streams with an isostream session description ignore it.
    #[arg(long, value_name = "PT", value_parser = clap::value_parser!(u8).range(0..=127))]
    l16_payload_type: Option<u8>,
    /// Use the low-latency watermark defaults of live sources.
    #[arg(long)]
    live: bool,
    /// Target latency for a live stream, in ms: playback starts with this much buffered
    /// (the low-water mark) and PAUSE is sent above twice as much (at least +100 ms).
    /// Implies --live; overrides --low-water and --high-water.
    #[arg(long)]
    latency: Option<u32>,
    #[command(flatten)]
    buffer: BufferOpts,
    /// After BYE (or the idle timeout) play out what is buffered and exit 0.
    #[arg(long)]
    exit_on_end: bool,
    /// A session with nothing from its sender for this long has ended (seconds).
    #[arg(long, default_value_t = 3.0)]
    idle_timeout: f64,
    /// Write an SDP description of the stream a stock sender should send (L16, payload type
    /// 96, --rate, --channels) to this file.
    #[arg(long)]
    sdp: Option<PathBuf>,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    stats_json: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let r = rt.block_on(async {
        match cli.cmd {
            Cmd::Send(a) => send(a).await,
            Cmd::Recv(a) => recv(a).await,
            Cmd::Demo(a) => demo_cmd::run(a).await,
            Cmd::Bench(a) => bench_cmd::run(a),
            Cmd::Impair(a) => impair_cmd::run(a).await,
            Cmd::Devices => device_cmd::list_devices(),
        }
    });
    if let Err(e) = r {
        eprintln!("isostream: {}", format_error(&e));
        std::process::exit(1);
    }
}

/// One line: the error and its causes.
fn format_error(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// A UDP socket with a large receive buffer, so bursts are not dropped by the kernel.
pub fn bind_udp(addr: SocketAddr) -> Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(1 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())
        .with_context(|| format!("cannot bind {addr}"))?;
    Ok(tokio::net::UdpSocket::from_std(s.into())?)
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .with_context(|| format!("cannot resolve '{addr}' (expected HOST:PORT)"))?
        .next()
        .with_context(|| format!("'{addr}' resolves to no address"))
}

fn open_input(path: &str, a: &SendArgs) -> Result<(Box<dyn AudioSource>, AudioSpec)> {
    if path == "-" {
        let spec = AudioSpec {
            rate: a.rate,
            channels: a.channels,
            format: a.format.sample_format(),
        };
        let r = PcmReader::new(std::io::stdin(), a.format, a.channels);
        return Ok((Box::new(PcmInput(r)), spec));
    }
    let w = WavSource::open(path).with_context(|| format!("cannot read {path}"))?;
    let spec = w.spec();
    Ok((Box::new(WavInput(w)), spec))
}

async fn send(a: SendArgs) -> Result<()> {
    let mut device = match &a.device {
        Some(d) => Some(device_cmd::capture_input(
            (!d.is_empty()).then_some(d.as_str()),
            a.rate,
            a.channels,
        )?),
        None => None,
    };
    let mut inputs = Vec::new();
    for p in &a.inputs {
        inputs.push(open_input(p, &a)?);
    }
    if let Some((_, s, _)) = &device {
        inputs.push((Box::new(device_cmd::NoSource) as Box<dyn AudioSource>, *s));
    }
    let first = inputs[0].1;
    for (i, (_, s)) in inputs.iter().enumerate() {
        if s.rate != first.rate || s.format != first.format {
            bail!(
                "{} is {s} but {} is {first}: the inputs of one session must share rate and sample format (convert first, e.g. with sox or ffmpeg)",
                a.inputs[i], a.inputs[0]
            );
        }
    }
    let per_input: Vec<u16> = inputs.iter().map(|(_, s)| s.channels).collect();
    let spec = AudioSpec {
        channels: per_input.iter().sum(),
        ..first
    };
    let source: Box<dyn AudioSource> = if inputs.len() == 1 {
        inputs.pop().expect("one input").0
    } else {
        Box::new(MultiInput::new(
            inputs
                .into_iter()
                .map(|(s, sp)| (s, sp.frame_bytes()))
                .collect(),
        ))
    };
    let mut cfg = SenderConfig::new(spec);
    cfg.substream_channels = per_input;
    cfg.live = a.live || device.is_some();
    a.stream.apply(&mut cfg)?;
    cfg.speed = a.speed;
    cfg.seed = crate::os_seed();
    cfg.receiver_timeout = Duration::from_secs_f64(a.receiver_timeout);
    cfg.wallclock_at_zero_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let to = resolve(&a.to)?;
    let session = SenderSession::new(cfg.clone())?;
    let socket = bind_udp(a.bind)?;
    socket
        .connect(to)
        .await
        .with_context(|| format!("cannot reach {to}"))?;
    if let Some(p) = &a.sdp {
        let sdp = isostream_transport::sdp::SdpStream {
            origin: socket.local_addr()?.ip(),
            media: to,
            rate: spec.rate,
            channels: spec.channels,
            format_code: spec.format.code(),
            packet_frames: cfg.packet_frames,
            fec: cfg.fec.is_some(),
            interleave: cfg.interleave,
            substreams: cfg.substream_channels.len(),
            reader: isostream_transport::sdp::Reader::Receiver,
        };
        std::fs::write(p, sdp.to_sdp()?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    let total = if a.inputs.len() == 1 && a.inputs[0] != "-" {
        WavSource::open(&a.inputs[0])
            .ok()
            .and_then(|w| w.total_frames())
    } else {
        None
    };
    let mut bar = SendProgress::new(total, spec.rate);
    let (device_input, capture) = match device.take() {
        Some((i, _, h)) => (Some(i), Some(h)),
        None => (None, None),
    };
    let input = if let Some(i) = device_input {
        i
    } else if a.live {
        // a live source is read on its own thread, as fast as it produces audio
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let mut src = source;
        let fb = spec.frame_bytes();
        let chunk_frames = cfg.packet_frames as usize;
        std::thread::spawn(move || {
            isostream::io::forward_live(|buf| src.read_frames(buf), tx, chunk_frames, fb)
        });
        Input::Live(rx)
    } else {
        Input::Stored(source)
    };
    eprintln!(
        "isostream send: {} -> {to}: {spec}, {} substream(s), {} ms packets, FEC {}, interleave {}, spread {}",
        a.inputs.join(" "),
        cfg.substream_channels.len(),
        a.stream.packet_ms(cfg.live),
        cfg.fec.map_or("off".to_string(), |f| f.to_string()),
        cfg.interleave,
        cfg.spread
    );
    let (stats, why) = sdriver::run(session, socket, input, &mut bar).await?;
    bar.finish();
    if let Some(c) = &capture {
        eprintln!("{}", c.report());
    }
    print_sender_summary(&stats, &why, spec.rate);
    if let Some(p) = &a.stats_json {
        let v = serde_json::json!({ "sender": stats, "finish": why });
        std::fs::write(p, serde_json::to_string_pretty(&v)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let FinishReason::ReceiverLost { silent_ms } = why {
        bail!(
            "stopped: the receiver has been silent for {:.1} s",
            silent_ms as f64 / 1000.0
        );
    }
    Ok(())
}

struct SendProgress {
    bar: Option<indicatif::ProgressBar>,
    rate: u32,
}

impl SendProgress {
    fn new(total: Option<u64>, rate: u32) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = match total {
                Some(t) => indicatif::ProgressBar::new(t),
                None => indicatif::ProgressBar::new_spinner(),
            };
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {percent}% {msg}",
                )
                .expect("a valid template"),
            );
            b
        });
        SendProgress { bar, rate }
    }
    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl sdriver::Progress for SendProgress {
    fn update(&mut self, s: &SenderStats, paused: bool) {
        if let Some(b) = &self.bar {
            b.set_position(s.frames_sent);
            b.set_message(format!(
                "{:.1} s sent, {} packets{}",
                s.frames_sent as f64 / self.rate as f64,
                s.packets_sent,
                if paused { ", PAUSED by receiver" } else { "" }
            ));
        }
    }
}

fn print_sender_summary(s: &SenderStats, why: &FinishReason, rate: u32) {
    eprintln!(
        "isostream send: {} ({:.2} s of audio): {} media + {} repair packets, {} bytes; paused {} time(s) for {} ms, resumed {}; {} live frames dropped",
        match why {
            FinishReason::EndOfInput => "done".to_string(),
            FinishReason::ReceiverLost { silent_ms } => format!("receiver lost after {silent_ms} ms of silence"),
        },
        s.frames_sent as f64 / rate as f64,
        s.packets_sent,
        s.repair_sent,
        s.bytes_sent,
        s.pauses,
        s.paused_ms,
        s.resumes,
        s.live_frames_dropped
    );
    if let Some(r) = s.receiver_report {
        eprintln!(
            "isostream send: the receiver reports {} packet(s) lost ({:.1} % in its last report), jitter {:.2} ms",
            r.lost,
            r.fraction_lost * 100.0,
            r.jitter_ms
        );
    }
}

async fn recv(a: RecvArgs) -> Result<()> {
    let mut cfg = ReceiverConfig::default();
    if !(1_000..=768_000).contains(&a.rate) || !(1..=255).contains(&a.channels) {
        bail!(
            "--rate {} --channels {}: expected 1000..768000 Hz and 1..255 channels",
            a.rate,
            a.channels
        );
    }
    cfg.default_spec.rate = a.rate;
    cfg.default_spec.channels = a.channels;
    cfg.stock_l16_payload_type = a.l16_payload_type;
    a.buffer.apply(&mut cfg, a.live || a.latency.is_some());
    if let Some(ms) = a.latency {
        cfg.low_water_ms = ms.max(1);
        cfg.high_water_ms = (2 * ms).max(ms + 100);
    }
    cfg.idle_timeout = Duration::from_secs_f64(a.idle_timeout);
    cfg.drift_correction = a.live || a.latency.is_some();
    cfg.wallclock_at_zero_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    cfg.seed = crate::os_seed();
    let session = ReceiverSession::new(cfg.clone())?;
    let socket = bind_udp(a.listen)?;
    if let Some(p) = &a.sdp {
        let local = socket.local_addr()?;
        let ip = isostream_transport::sdp::concrete_address(local.ip());
        let sdp = isostream_transport::sdp::SdpStream {
            origin: ip,
            media: SocketAddr::new(ip, local.port()),
            rate: a.rate,
            channels: a.channels,
            format_code: 0,
            packet_frames: 0,
            fec: false,
            interleave: 1,
            substreams: 1,
            reader: isostream_transport::sdp::Reader::Sender,
        };
        std::fs::write(p, sdp.to_sdp()?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    eprintln!(
        "isostream recv: listening on {}, low-water {} ms, high-water {} ms",
        socket.local_addr()?,
        cfg.low_water_ms,
        cfg.high_water_ms
    );
    let out = a.out.clone();
    let out_dir = a.out_dir.clone();
    let raw = a.format;
    let make_sink =
        move |spec: AudioSpec, channels: &[u16]| -> std::io::Result<Box<dyn AudioSink>> {
            eprintln!(
                "isostream recv: session of {spec} in {} substream(s)",
                channels.len()
            );
            if let Some(dir) = &out_dir {
                return Ok(Box::new(SplitWavOutput::create(dir, spec, channels)?));
            }
            match out.as_deref() {
                Some("-") => {
                    let f = raw.unwrap_or(RawFormat::native_for(spec.format));
                    if f.sample_format() != spec.format {
                        return Err(std::io::Error::other(format!(
                            "--format {} does not match the stream's {} samples",
                            f.name(),
                            spec.format
                        )));
                    }
                    Ok(Box::new(PcmOutput(PcmWriter::new(
                        std::io::stdout(),
                        f,
                        spec.channels,
                    ))))
                }
                Some(o) if device_cmd::device_out(o).is_some() => {
                    device_cmd::playback_sink(device_cmd::device_out(o).flatten(), spec)
                }
                Some(path) => Ok(Box::new(WavOutput(WavSink::create(path, spec).map_err(
                    |e| std::io::Error::other(format!("cannot write {path}: {e}")),
                )?))),
                None => unreachable!("clap requires --out or --out-dir"),
            }
        };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let (stats, stop) = rdriver::run(
        session,
        socket,
        make_sink,
        a.exit_on_end,
        shutdown,
        &mut |_, _| {},
    )
    .await?;
    print_receiver_summary(&stats);
    if let Some(p) = &a.stats_json {
        std::fs::write(
            p,
            serde_json::to_string_pretty(&serde_json::json!({ "receiver": stats }))?,
        )
        .with_context(|| format!("cannot write {}", p.display()))?;
    }
    let _ = stop;
    Ok(())
}

/// Prints the receiver summary to stderr.
pub fn print_receiver_summary(s: &ReceiverStats) {
    eprintln!(
        "isostream recv: {} packets received, {} lost ({} recovered, {} unrecoverable, residual loss {:.3} %), {} late, {} duplicate, {} malformed, {} foreign; jitter {:.2} ms",
        s.packets_received, s.lost, s.recovered, s.unrecoverable, s.residual_loss * 100.0, s.late, s.duplicate, s.malformed, s.foreign,
        s.substreams.iter().map(|x| x.jitter_ms).fold(0.0, f64::max)
    );
    eprintln!(
        "isostream recv: {} frames played, {} interpolated, {} concealed, {} underrun(s); PAUSE sent {} (acked {}), RESUME sent {} (acked {}), {} retransmission(s); buffer min/mean/max {:.0}/{:.0}/{:.0} ms, startup delay {:.0} ms",
        s.frames_played,
        s.frames_interpolated,
        s.frames_concealed,
        s.underruns,
        s.flow.pause_sent,
        s.flow.pause_acked,
        s.flow.resume_sent,
        s.flow.resume_acked,
        s.flow.retransmissions,
        s.buffer_min_ms,
        s.buffer_mean_ms,
        s.buffer_max_ms,
        s.startup_delay_ms
    );
    if let Some(l) = s.latency_ms {
        eprintln!(
            "isostream recv: capture-to-playout latency mean {:.1} ms (min {:.1}, max {:.1}), from the sender's wall clock: exact on one machine, an estimate across machines",
            l.mean, l.min, l.max
        );
    }
    if s.substreams.len() > 1 {
        for (i, sub) in s.substreams.iter().enumerate() {
            eprintln!(
                "isostream recv: substream {} ({} ch, SSRC {:08x}): {} received, {} lost, {} recovered, {} late, {} frames concealed, buffer {} frames",
                i + 1, sub.channels, sub.ssrc, sub.packets_received, sub.lost, sub.recovered, sub.late, sub.frames_concealed, sub.occupancy_frames
            );
        }
        eprintln!(
            "isostream recv: skew between substreams: {} frames",
            s.skew_frames
        );
    }
}

#[allow(dead_code)]
fn signal_input(program: Program, spec: AudioSpec, seconds: f64, seed: u64) -> SignalInput {
    SignalInput {
        source: SignalSource::new(program, spec, seed),
        remaining: (spec.rate as f64 * seconds) as u64,
    }
}

#[allow(dead_code)]
fn exists(p: &Path) -> bool {
    p.exists()
}

/// A seed from the operating system's randomness (for SSRCs and initial sequence numbers,
/// which RFC 3550 wants random per run).
pub fn os_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
