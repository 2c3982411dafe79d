//! The link engine: one direction of a path. A [`Link`] applies a [`LinkConfig`] (loss,
//! outages, delay, duplication) to the datagrams offered to it and hands them back at their
//! delivery times, keeping [`LinkStats`].

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap};

use bytes::Bytes;
use isostream_transport::time::Instant;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{check_prob, ImpairError};
use crate::models::delay::{DelayModel, DelayState};
use crate::models::loss::{LossModel, LossState};
use crate::models::outage::{OutageState, Outages};
use crate::units::{ms_to_ns, NS_PER_MS};

/// Largest extra delay given to a duplicate, in milliseconds.
const DUPLICATE_MAX_EXTRA_MS: f64 = 1.0;

/// One direction of a path: loss, outages, delay and duplication. `Default` is a perfect link.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinkConfig {
    /// Packet loss model.
    pub loss: LossModel,
    /// Outages (everything lost for a while), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outages: Option<Outages>,
    /// One-way delay model.
    pub delay: DelayModel,
    /// Probability (0..=1) that a delivered packet is delivered twice.
    pub duplicate: f64,
}

impl LinkConfig {
    /// Long-run expected loss fraction (0..=1): the loss model combined with random outages.
    pub fn expected_loss(&self) -> f64 {
        let o = self.outages.as_ref().map_or(0.0, Outages::mean_fraction);
        let l = self.loss.mean_loss();
        if o == 0.0 {
            l
        } else {
            l + o - l * o
        }
    }

    /// Checks every parameter is in range; `what` names the link in messages.
    pub fn validate(&self, what: &str) -> Result<(), ImpairError> {
        self.loss.validate(what)?;
        self.delay.validate(what)?;
        check_prob(&format!("{what}.duplicate"), self.duplicate)?;
        if let Some(o) = &self.outages {
            let bad = [o.duration_ms, o.rate_per_min]
                .into_iter()
                .chain(o.at_ms.iter().copied())
                .any(|v| !(v.is_finite() && v >= 0.0));
            if bad {
                return Err(ImpairError::Invalid(format!(
                    "{what}.outages: durations, rates and times must be >= 0"
                )));
            }
        }
        Ok(())
    }
}

/// Counters of one [`Link`] since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LinkStats {
    /// Datagrams offered with [`Link::send`].
    pub offered: u64,
    /// Datagrams dropped by the loss model (outside outages).
    pub dropped: u64,
    /// Datagrams dropped because they were sent during an outage.
    pub dropped_outage: u64,
    /// Runs of consecutive offered datagrams that were lost (for any reason).
    pub loss_bursts: u64,
    /// Datagrams scheduled a second time (duplicates).
    pub duplicated: u64,
    /// Datagrams handed out by [`Link::poll_deliver`], duplicates included.
    pub delivered: u64,
    /// Delivered originals that arrived while an earlier-sent, not-lost original was still
    /// in flight (they overtook it).
    pub reordered: u64,
    /// Mean one-way delay (delivery time minus send time) of delivered originals, in ms.
    pub mean_delay_ms: f64,
    /// Largest one-way delay of a delivered original, in ms.
    pub max_delay_ms: f64,
}

impl LinkStats {
    /// Fraction (0..=1) of offered datagrams that were lost, outages included.
    pub fn loss_rate(&self) -> f64 {
        if self.offered == 0 {
            0.0
        } else {
            (self.dropped + self.dropped_outage) as f64 / self.offered as f64
        }
    }

    /// Mean number of datagrams per loss burst (0 if nothing was lost).
    pub fn mean_burst_len(&self) -> f64 {
        if self.loss_bursts == 0 {
            0.0
        } else {
            (self.dropped + self.dropped_outage) as f64 / self.loss_bursts as f64
        }
    }
}

/// A datagram in flight.
#[derive(Debug)]
struct InFlight {
    at_ns: u64,
    /// Scheduling order, breaks ties in send order.
    order: u64,
    /// Send sequence number of the original.
    seq: u64,
    duplicate: bool,
    sent_ns: u64,
    data: Bytes,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at_ns, self.order).cmp(&(other.at_ns, other.order))
    }
}

/// One direction of an impaired path (see the [crate docs](crate)).
#[derive(Debug)]
pub struct Link {
    loss: LossState,
    outages: Option<OutageState>,
    delay: DelayState,
    duplicate: f64,
    loss_rng: StdRng,
    jitter_rng: StdRng,
    dup_rng: StdRng,
    queue: BinaryHeap<Reverse<InFlight>>,
    /// Send sequence numbers of originals still in flight.
    in_flight: BTreeSet<u64>,
    next_seq: u64,
    next_order: u64,
    last_lost: bool,
    stats: LinkStats,
    delay_sum_ns: u128,
    delay_count: u64,
    delay_max_ns: u64,
}

/// SplitMix64: derives independent sub-seeds from one seed.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn sub_rng(seed: u64, stream: u64) -> StdRng {
    StdRng::seed_from_u64(splitmix64(
        splitmix64(seed) ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03),
    ))
}

impl Link {
    /// A link following `config`, all randomness drawn from `seed`. Out-of-range
    /// parameters are clamped (use [`LinkConfig::validate`] to reject them); an empty or
    /// unparsable trace loses nothing. Loss, outages, jitter, spikes and duplication use
    /// separate streams derived from `seed`, so e.g. outages and spikes depend on time only.
    pub fn new(config: &LinkConfig, seed: u64) -> Link {
        Link {
            loss: LossState::new(&config.loss),
            outages: config
                .outages
                .as_ref()
                .map(|o| OutageState::new(o, sub_rng(seed, 2))),
            delay: DelayState::new(&config.delay, sub_rng(seed, 4)),
            duplicate: config.duplicate.clamp(0.0, 1.0),
            loss_rng: sub_rng(seed, 1),
            jitter_rng: sub_rng(seed, 3),
            dup_rng: sub_rng(seed, 5),
            queue: BinaryHeap::new(),
            in_flight: BTreeSet::new(),
            next_seq: 0,
            next_order: 0,
            last_lost: false,
            stats: LinkStats::default(),
            delay_sum_ns: 0,
            delay_count: 0,
            delay_max_ns: 0,
        }
    }

    /// Offer a datagram sent at `now`: it is dropped, or scheduled (maybe twice). Calls
    /// should come with non-decreasing `now`.
    pub fn send(&mut self, now: Instant, datagram: Bytes) {
        let now_ns = now.as_nanos();
        self.stats.offered += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        // Always step the loss model so its state does not depend on the outages.
        let lost = self.loss.lost(now_ns, &mut self.loss_rng);
        let outage = self.outages.as_mut().is_some_and(|o| o.active(now_ns));
        if outage || lost {
            if outage {
                self.stats.dropped_outage += 1;
            } else {
                self.stats.dropped += 1;
            }
            if !self.last_lost {
                self.stats.loss_bursts += 1;
            }
            self.last_lost = true;
            return;
        }
        self.last_lost = false;
        let at_ns = self.delay.delivery(now_ns, &mut self.jitter_rng);
        let duplicate = self.duplicate > 0.0 && self.dup_rng.random::<f64>() < self.duplicate;
        let dup_at_ns = duplicate.then(|| {
            let extra = self.dup_rng.random::<f64>() * DUPLICATE_MAX_EXTRA_MS;
            at_ns.saturating_add(ms_to_ns(extra))
        });
        self.in_flight.insert(seq);
        self.push(at_ns, seq, false, now_ns, datagram.clone());
        if let Some(at) = dup_at_ns {
            self.stats.duplicated += 1;
            self.push(at, seq, true, now_ns, datagram);
        }
    }

    fn push(&mut self, at_ns: u64, seq: u64, duplicate: bool, sent_ns: u64, data: Bytes) {
        let order = self.next_order;
        self.next_order += 1;
        self.queue.push(Reverse(InFlight {
            at_ns,
            order,
            seq,
            duplicate,
            sent_ns,
            data,
        }));
    }

    /// Delivery time of the earliest datagram in flight, if any.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.queue.peek().map(|r| Instant::from_nanos(r.0.at_ns))
    }

    /// Datagrams in flight (scheduled, not yet delivered), duplicates included.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Pops one datagram whose delivery time is <= now, earliest first (ties in send order).
    pub fn poll_deliver(&mut self, now: Instant) -> Option<Bytes> {
        if self.queue.peek()?.0.at_ns > now.as_nanos() {
            return None;
        }
        let Reverse(p) = self.queue.pop()?;
        self.stats.delivered += 1;
        if !p.duplicate {
            self.in_flight.remove(&p.seq);
            if self.in_flight.first().is_some_and(|&s| s < p.seq) {
                self.stats.reordered += 1;
            }
            let d = p.at_ns.saturating_sub(p.sent_ns);
            self.delay_sum_ns += d as u128;
            self.delay_count += 1;
            self.delay_max_ns = self.delay_max_ns.max(d);
        }
        Some(p.data)
    }

    /// Counters since the link was created.
    pub fn stats(&self) -> LinkStats {
        let mut s = self.stats;
        if self.delay_count > 0 {
            s.mean_delay_ms = self.delay_sum_ns as f64 / self.delay_count as f64 / NS_PER_MS;
        }
        s.max_delay_ms = self.delay_max_ns as f64 / NS_PER_MS;
        s
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::Profile;

    #[test]
    fn same_seed_same_deliveries_different_seed_differs() {
        let cfg = Profile::builtin("hostile").unwrap().forward;
        let a = run(&mut Link::new(&cfg, 42), 5 * MS, 20_000);
        let b = run(&mut Link::new(&cfg, 42), 5 * MS, 20_000);
        let c = run(&mut Link::new(&cfg, 43), 5 * MS, 20_000);
        assert!(!a.is_empty());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let s = Link::new(&cfg, 42).stats();
        assert_eq!(s, LinkStats::default());
    }

    #[test]
    fn perfect_link_delivers_everything_immediately_in_order() {
        let mut link = Link::new(&LinkConfig::default(), 1);
        let out = run(&mut link, MS, 1000);
        assert_eq!(out.len(), 1000);
        for (i, &(seq, sent, at)) in out.iter().enumerate() {
            assert_eq!((seq, at), (i as u64, sent));
        }
        let s = link.stats();
        assert_eq!(
            (s.offered, s.delivered, s.reordered, s.dropped),
            (1000, 1000, 0, 0)
        );
        assert_eq!(s.max_delay_ms, 0.0);
    }

    #[test]
    fn bernoulli_10_percent_within_4_standard_errors() {
        let cfg = LinkConfig {
            loss: LossModel::Bernoulli { p: 0.1 },
            ..LinkConfig::default()
        };
        let n = 100_000u64;
        let mut link = Link::new(&cfg, 7);
        let delivered = run(&mut link, MS, n).len() as u64;
        let s = link.stats();
        assert_eq!(s.offered, n);
        assert_eq!(s.dropped + delivered, n);
        let se = (0.1f64 * 0.9 / n as f64).sqrt();
        assert!(
            (s.loss_rate() - 0.1).abs() < 4.0 * se,
            "loss {}",
            s.loss_rate()
        );
    }

    #[test]
    fn duplicates_arrive_shortly_after_the_original() {
        let cfg = LinkConfig {
            duplicate: 0.05,
            delay: DelayModel {
                base_ms: 10.0,
                ..DelayModel::default()
            },
            ..LinkConfig::default()
        };
        let n = 20_000;
        let mut link = Link::new(&cfg, 17);
        let out = run(&mut link, 5 * MS, n);
        let s = link.stats();
        assert_eq!(s.delivered, n + s.duplicated);
        assert_eq!(out.len() as u64, s.delivered);
        let se = (0.05f64 * 0.95 / n as f64).sqrt();
        assert!((s.duplicated as f64 / n as f64 - 0.05).abs() < 4.0 * se);
        let mut seen = vec![0u32; n as usize];
        for &(seq, sent, at) in &out {
            seen[seq as usize] += 1;
            assert!(at >= sent + 10 * MS && at <= sent + 11 * MS);
        }
        assert_eq!(
            seen.iter().filter(|&&c| c == 2).count() as u64,
            s.duplicated
        );
        assert_eq!(s.reordered, 0);
    }

    #[test]
    fn link_is_send() {
        fn is_send<T: Send>() {}
        is_send::<Link>();
        is_send::<Profile>();
    }
}
