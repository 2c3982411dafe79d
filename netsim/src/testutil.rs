//! Helpers shared by the unit tests: drive a link with paced traffic and measure it.

use std::path::PathBuf;

use bytes::Bytes;
use isostream_transport::time::Instant;

use crate::models::loss::stationary_bad;
use crate::units::MS_PER_MIN;
use crate::{Link, LinkConfig, LossModel, Step};

pub(crate) const MS: u64 = 1_000_000;

pub(crate) fn at_ms(ms: u64) -> Instant {
    Instant::from_nanos(ms * MS)
}

/// Sends one datagram every `spacing_ns` (payload = sequence number) for `n` packets,
/// polling each delivery at its exact delivery time. Returns (seq, sent ns, delivered ns).
pub(crate) fn run(link: &mut Link, spacing_ns: u64, n: u64) -> Vec<(u64, u64, u64)> {
    let mut sent_at = Vec::with_capacity(n as usize);
    let mut out = Vec::new();
    let mut drain = |link: &mut Link, until: Option<u64>, sent_at: &Vec<u64>| {
        while let Some(t) = link.next_delivery() {
            if until.is_some_and(|u| t.as_nanos() > u) {
                break;
            }
            let d = link.poll_deliver(t).expect("due datagram");
            let seq = u64::from_le_bytes(d[..8].try_into().unwrap());
            out.push((seq, sent_at[seq as usize], t.as_nanos()));
        }
    };
    for i in 0..n {
        let t = i * spacing_ns;
        drain(link, Some(t), &sent_at);
        sent_at.push(t);
        link.send(
            Instant::from_nanos(t),
            Bytes::copy_from_slice(&i.to_le_bytes()),
        );
    }
    drain(link, None, &sent_at);
    out
}

/// Sends `n` packets every `spacing_ns` and returns, per packet, whether it was lost.
pub(crate) fn losses(link: &mut Link, spacing_ns: u64, n: u64) -> Vec<bool> {
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let before = link.stats();
        link.send(Instant::from_nanos(i * spacing_ns), Bytes::new());
        let after = link.stats();
        out.push(after.dropped + after.dropped_outage > before.dropped + before.dropped_outage);
        while link.poll_deliver(Instant::from_nanos(u64::MAX)).is_some() {}
    }
    out
}

pub(crate) fn ge(p: f64, r: f64, loss_good: f64, loss_bad: f64, step: Step) -> LinkConfig {
    LinkConfig {
        loss: LossModel::GilbertElliott {
            p,
            r,
            loss_good,
            loss_bad,
            step,
        },
        ..LinkConfig::default()
    }
}

/// Standard error of the measured loss fraction of `n` packets sent every `spacing_ms`.
pub(crate) fn loss_standard_error(cfg: &LinkConfig, spacing_ms: f64, n: f64) -> f64 {
    let mut var = match &cfg.loss {
        LossModel::None | LossModel::Trace { .. } => 0.0,
        LossModel::Bernoulli { p } => p * (1.0 - p) / n,
        LossModel::GilbertElliott {
            p,
            r,
            loss_good,
            loss_bad,
            step,
        } => {
            let steps = match step {
                Step::PerPacket => 1.0,
                Step::Slice { ms } => (spacing_ms / ms).max(1.0),
            };
            let pb = stationary_bad(*p, *r);
            let lam = (1.0 - p - r).powf(steps);
            let within =
                pb * loss_bad * (1.0 - loss_bad) + (1.0 - pb) * loss_good * (1.0 - loss_good);
            (loss_bad - loss_good).powi(2) * pb * (1.0 - pb) * (1.0 + lam) / (1.0 - lam) / n
                + within / n
        }
    };
    if let Some(o) = &cfg.outages {
        // Poisson count of outages in the run, each removing duration/spacing packets.
        let t_ms = n * spacing_ms;
        let count = t_ms * o.rate_per_min / MS_PER_MIN;
        var += count * (o.duration_ms / t_ms).powi(2);
    }
    var.sqrt()
}

pub(crate) fn temp_path(tag: &str, ext: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "isostream-impair-{}-{}-{tag}.{ext}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}
