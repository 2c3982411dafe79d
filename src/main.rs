//! `isostream`: stream audio over UDP (send, recv), serve many listeners (relay), simulate lossy networks (bench), relay
//! through an impaired path (impair), and show it all on built-in defaults (demo).
//!
//! This file holds the command-line schema and the dispatch; each subcommand lives in its
//! own module under `src/cmd/`.

use clap::{Parser, Subcommand};

mod cmd;

use cmd::{bench, demo, devices, impair, recv, relay, send};

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

// allow_negative_numbers: `--drift-ppm -5` is a value, and `--idle-timeout-ms -1` is told
// precisely what its parser wants instead of being taken for an unknown option
#[derive(Subcommand)]
enum Cmd {
    /// Stream a synthesized clip through real send, impair and recv over loopback, and report.
    #[command(allow_negative_numbers = true)]
    Demo(demo::DemoArgs),
    /// Send a WAV file (or raw PCM on stdin) to a receiver.
    #[command(allow_negative_numbers = true)]
    Send(send::SendArgs),
    /// Receive a stream and write it to a WAV file or raw PCM on stdout.
    #[command(allow_negative_numbers = true)]
    Recv(recv::RecvArgs),
    /// Serve one session from a sender (or another relay) to any number of listeners that
    /// subscribe with `recv --connect`.
    #[command(allow_negative_numbers = true)]
    Relay(relay::RelayArgs),
    /// Simulate a session through a lossy network model in virtual time.
    #[command(allow_negative_numbers = true)]
    Bench(bench::BenchArgs),
    /// Relay UDP between two addresses through the impairment model, in real time.
    #[command(allow_negative_numbers = true)]
    Impair(impair::ImpairArgs),
    /// List audio devices and their supported configurations (needs the `device` feature).
    Devices,
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => exit_on_usage_error(e),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let r = rt.block_on(async {
        match cli.cmd {
            Cmd::Send(a) => send::run(a).await,
            Cmd::Recv(a) => recv::run(a).await,
            Cmd::Relay(a) => relay::run(a).await,
            Cmd::Demo(a) => demo::run(a).await,
            Cmd::Bench(a) => {
                cmd::opts::check_bench(a.duration, a.drift_ppm, &a.sweep_loss, a.plot.as_deref())
                    .and_then(|()| bench::run(a))
            }
            Cmd::Impair(a) => impair::run(a).await,
            Cmd::Devices => devices::list_devices(),
        }
    });
    if let Err(e) = r {
        eprintln!("isostream: {}", format_error(&e));
        std::process::exit(1);
    }
}

/// Help and version are printed as clap prints them; a usage error (an unknown option, an
/// invalid value, a missing argument) is one line on stderr, exit code 2.
fn exit_on_usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        _ => {
            eprintln!("isostream: {}", usage_error_line(&e.render().to_string()));
            std::process::exit(2);
        }
    }
}

/// clap's rendering of a usage error as one line: the error and its details, without the
/// usage summary and the pointer to `--help`.
fn usage_error_line(rendered: &str) -> String {
    let mut out = String::new();
    for line in rendered.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            // the items of a list ("...were not provided:") follow it; a tip is a clause
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line.strip_prefix("error: ").unwrap_or(line));
    }
    out
}

/// One line: the error and its causes (a cause that spans lines, such as a TOML parser's
/// report, is folded into it).
fn format_error(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let m = c
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        // an error whose message already quotes its cause ("I/O error: {0}") says it once
        if parts.last().is_some_and(|p| p.ends_with(&m)) {
            continue;
        }
        parts.push(m);
    }
    parts.join(": ")
}
