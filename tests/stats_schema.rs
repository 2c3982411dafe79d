//! docs/STATS.md documents every field `send --stats-json`, `recv --stats-json` and
//! `bench --json` write, and nothing else; every field name carries its unit (or is a
//! documented fraction or setting). The sender's and the receiver's stats are taken from a
//! simulated session whose every optional object is filled in (FEC, NACKs, receiver reports,
//! latency, drift compensation); bench's report from the binary.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{bench_ok, stereo};
use isostream::sim::{self, MemorySource};
use isostream_media::{synthesize, Program};
use isostream_netsim::Profile;
use isostream_receiver::ReceiverConfig;
use isostream_sender::SenderConfig;
use isostream_transport::fec::FecParams;
use isostream_transport::time::Duration;
use serde_json::Value;

/// The fields of each table of docs/STATS.md, by the heading above it.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/STATS.md"))
        .expect("docs/STATS.md");
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut heading = String::new();
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix('#') {
            heading = h.trim_start_matches('#').trim().to_string();
        } else if let Some(rest) = line.strip_prefix("| `") {
            if let Some((field, _)) = rest.split_once("` |") {
                tables
                    .entry(heading.clone())
                    .or_default()
                    .insert(field.to_string());
            }
        }
    }
    tables
}

/// The documented fields of the table whose heading contains `heading`.
fn table<'a>(
    tables: &'a BTreeMap<String, BTreeSet<String>>,
    heading: &str,
) -> &'a BTreeSet<String> {
    let found: Vec<_> = tables.iter().filter(|(h, _)| h.contains(heading)).collect();
    assert_eq!(found.len(), 1, "one table under a heading with {heading:?}");
    found[0].1
}

/// Checks that `v` (an object) has exactly the fields documented under `heading`.
fn same_fields(v: &Value, tables: &BTreeMap<String, BTreeSet<String>>, heading: &str) {
    let keys: BTreeSet<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("{heading}: not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    let doc = table(tables, heading);
    let undocumented: Vec<_> = keys.difference(doc).collect();
    let absent: Vec<_> = doc.difference(&keys).collect();
    assert!(
        undocumented.is_empty() && absent.is_empty(),
        "{heading}: written but not documented {undocumented:?}, documented but not written {absent:?}"
    );
}

/// Words that name a unit (or what a count counts) in a field name.
const UNIT_WORDS: &[&str] = &[
    "packets",
    "datagrams",
    "frames",
    "blocks",
    "bytes",
    "ms",
    "s",
    "ppm",
    "db",
    "ratio",
    "fraction",
    "retransmissions",
    "pauses",
    "resumes",
    "acks",
    "nacks",
    "requests",
    "underruns",
    "gaps",
    "sessions",
];
/// Fields without a unit word: settings, identities, and fractions documented as such.
const NO_UNIT: &[&str] = &[
    "ssrc",
    "channels",
    "profile",
    "seed",
    "fec",
    "codec",
    "opus",
    "interleave",
    "spread",
    "completed",
    "residual_loss",
    "network_loss",
    "overhead",
    "substreams",
    "flow",
    "retransmission",
    "receiver_report",
    "mean",
    "min",
    "max",
    "p5",
    "p50",
    "p95",
];

/// Checks every field name of `v`, recursively, for a unit.
fn units_in_names(v: &Value, path: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                assert!(
                    NO_UNIT.contains(&k.as_str()) || k.split('_').any(|w| UNIT_WORDS.contains(&w)),
                    "{path}.{k}: no unit in the name"
                );
                units_in_names(x, &format!("{path}.{k}"));
            }
        }
        Value::Array(a) => a
            .iter()
            .for_each(|x| units_in_names(x, &format!("{path}[]"))),
        _ => {}
    }
}

#[test]
fn sender_and_receiver_stats_are_documented_field_by_field() {
    let spec = stereo();
    let input = synthesize(Program::Music, spec, 48_000 * 6, 3);
    let mut scfg = SenderConfig::new(spec);
    scfg.fec = Some(FecParams::new(8, 2).unwrap());
    scfg.seed = 2;
    let rcfg = ReceiverConfig {
        seed: 2,
        drift_correction: true,
        ..ReceiverConfig::default()
    };
    let mut src = MemorySource::new(&input, spec.frame_bytes());
    let profile = Profile::builtin("lte").unwrap();
    let r = sim::run(scfg, rcfg, &profile, 2, &mut src, Duration::from_secs(60)).unwrap();
    assert!(r.completed);
    let tables = documented();

    let s = serde_json::to_value(&r.sender).unwrap();
    same_fields(&s, &tables, "`sender` (`SenderStats`)");
    same_fields(&s["receiver_report"], &tables, "ReceiverView");
    same_fields(&s["retransmission"], &tables, "RtxStats");
    units_in_names(&s, "sender");

    let v = serde_json::to_value(&r.receiver).unwrap();
    same_fields(&v, &tables, "`receiver` (`ReceiverStats`)");
    same_fields(&v["flow"], &tables, "FlowStats");
    same_fields(&v["capture_to_playout_ms"], &tables, "LatencyStats");
    let sub = &v["substreams"][0];
    same_fields(sub, &tables, "SubstreamStats");
    same_fields(&sub["fec"], &tables, "FecStats");
    units_in_names(&v, "receiver");
    assert!(v["drift_estimate_ppm"].is_number(), "{v}");
    assert!(sub["rtt_ms"].is_number(), "{v}");
}

#[test]
fn bench_report_is_documented_field_by_field() {
    let out = bench_ok(&["--profile", "lte", "--live", "--duration", "4", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tables = documented();
    same_fields(&v, &tables, "`bench --json`");
    same_fields(&v["buffer_ms"], &tables, "Percentiles");
    same_fields(&v["buffer_after_convergence_ms"], &tables, "Percentiles");
    same_fields(&v["capture_to_playout_ms"], &tables, "LatencyStats");
    units_in_names(&v, "bench");
}
