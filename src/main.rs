//! `isostream`: stream audio over UDP (send, recv), simulate lossy networks (bench), relay
//! through an impaired path (impair), and show it all on built-in defaults (demo).
//!
//! This file holds the command-line schema and the dispatch; each subcommand lives in its
//! own module under `src/cmd/`.

use clap::{Parser, Subcommand};

mod cmd;

use cmd::{bench, demo, devices, impair, recv, send};

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
    Demo(demo::DemoArgs),
    /// Send a WAV file (or raw PCM on stdin) to a receiver.
    Send(send::SendArgs),
    /// Receive a stream and write it to a WAV file or raw PCM on stdout.
    Recv(recv::RecvArgs),
    /// Simulate a session through a lossy network model in virtual time.
    Bench(bench::BenchArgs),
    /// Relay UDP between two addresses through the impairment model, in real time.
    Impair(impair::ImpairArgs),
    /// List audio devices and their supported configurations (needs the `device` feature).
    Devices,
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let r = rt.block_on(async {
        match cli.cmd {
            Cmd::Send(a) => send::run(a).await,
            Cmd::Recv(a) => recv::run(a).await,
            Cmd::Demo(a) => demo::run(a).await,
            Cmd::Bench(a) => bench::run(a),
            Cmd::Impair(a) => impair::run(a).await,
            Cmd::Devices => devices::list_devices(),
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
