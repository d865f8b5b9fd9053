//! RESULTS.md's Peers section: a summary of `loadtests/peers.sh` (PEERS.md), which
//! `loadtests/run.sh` runs as its last section with the `--short` profile.
//!
//! run.sh writes `peers.json` (whether the comparison ran, or why not); peers_report.py
//! writes `peers/summary.json` (Convoy's closed-loop requests/s over each peer's, level by
//! level).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::ceiling::CeilingReport;
use crate::sections::{row, table, yes_no, Filled};

/// `[peers.json]`, written by run.sh.
#[derive(Debug, Clone, Deserialize)]
pub struct PeersManifest {
    /// "measured", or why the comparison was not run.
    pub state: String,
    /// PEERS.md, relative to RESULTS.md.
    #[serde(default = "peers_md")]
    pub md: String,
}

fn peers_md() -> String {
    "PEERS.md".into()
}

/// One ratio: Convoy's closed-loop requests/s over a peer's at one concurrency.
#[derive(Debug, Clone, Deserialize)]
pub struct PeerRatio {
    pub model: String,
    pub concurrency: u64,
    /// Short display name (with version), e.g. "Triton 2.51".
    pub label: String,
    pub convoy_rps: f64,
    pub ratio: f64,
    /// A Python serving framework (MLServer, KServe, LitServe, ...), not Triton.
    #[serde(default)]
    pub python: bool,
    #[serde(default)]
    pub convoy_p99_ms: Option<f64>,
    #[serde(default)]
    pub peer_p99_ms: Option<f64>,
}

/// `[peers/summary.json]`, written by peers_report.py.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PeersSummary {
    pub profile: String,
    pub date: Option<String>,
    pub wall_s: Option<f64>,
    pub concurrency: Option<String>,
    pub warmup_s: Option<f64>,
    pub duration_s: Option<f64>,
    pub open_warmup_s: Option<f64>,
    pub open_duration_s: Option<f64>,
    /// Display names of the peers that answered.
    pub peers: Vec<String>,
    pub ratios: Vec<PeerRatio>,
    /// Runs or installs that failed, one line each.
    pub failed: Vec<String>,
    /// Plot files per model, in the peers' results folder.
    pub plots: BTreeMap<String, Vec<String>>,
}

pub struct Peers {
    pub manifest: PeersManifest,
    /// Absent when the comparison did not run (or wrote no summary).
    pub summary: Option<PeersSummary>,
    /// The peers' results folder, relative to RESULTS.md (e.g. `results/peers`).
    pub dir: String,
}

const MODELS: [(&str, &str); 2] = [("mlp", "MLP"), ("minilm", "MiniLM")];

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "?".into(), |v| format!("{v}"))
}

/// Distinct concurrencies of `model`'s ratios that pass `keep`, ascending.
fn levels(ratios: &[PeerRatio], model: &str, keep: impl Fn(&PeerRatio) -> bool) -> Vec<u64> {
    let mut cs: Vec<u64> = ratios
        .iter()
        .filter(|r| r.model == model && keep(r))
        .map(|r| r.concurrency)
        .collect();
    cs.sort_unstable();
    cs.dedup();
    cs
}

/// Fills `peers` (or why it is absent) and adds the headline.
pub fn section(o: &mut Filled, peers: Option<&Peers>, ceiling: &CeilingReport, quick: bool) {
    let Some(p) = peers else {
        if quick {
            o.values.insert(
                "peers.absent".into(),
                "Not run in `--quick` mode (`loadtests/peers.sh --quick` is the peers' smoke run)."
                    .into(),
            );
        }
        return;
    };
    let md = &p.manifest.md;
    let summary = match (&p.summary, p.manifest.state.as_str()) {
        (Some(s), "measured") => s,
        (_, state) => {
            let why = if state == "measured" {
                format!("`loadtests/peers.sh` ran but wrote no summary (`{}/summary.json`); see [{md}]({md}).", p.dir)
            } else {
                format!("Not measured in this run: {state}. [{md}]({md}), if present, is from an earlier `loadtests/peers.sh` run.")
            };
            o.values.insert("peers.absent".into(), why);
            return;
        }
    };
    let flag = match summary.profile.as_str() {
        "" | "full" => String::new(),
        other => format!(" --{other}"),
    };
    let when: Vec<String> = summary
        .date
        .iter()
        .cloned()
        .chain(summary.wall_s.map(|w| format!("{:.1} min", w / 60.0)))
        .collect();
    let setup = [
        row!["source", format!("[{md}]({md}): `loadtests/peers.sh{flag}`, the last section of this run, {}; raw JSON in [`{d}/`]({d}/)", when.join(", "), d = p.dir)],
        row!["servers", format!("Convoy and {}", if summary.peers.is_empty() { "no peer".into() } else { summary.peers.join(", ") })],
        row!["closed loop", format!("c={} ({} s warm-up + {} s per level)", summary.concurrency.as_deref().unwrap_or("?"), secs(summary.warmup_s), secs(summary.duration_s))],
        row!["open-loop sweep", format!("{} s + {} s per rate", secs(summary.open_warmup_s), secs(summary.open_duration_s))],
    ];
    let mut out = vec![table("what | value", "ll", &setup)];
    // Columns: every peer with a ratio, in the order they first appear.
    let mut labels: Vec<&str> = Vec::new();
    for r in &summary.ratios {
        if !labels.contains(&r.label.as_str()) {
            labels.push(&r.label);
        }
    }
    let mut rows = Vec::new();
    let mut head_parts = Vec::new();
    for (model, name) in MODELS {
        let cs = levels(&summary.ratios, model, |_| true);
        for &c in &cs {
            let at: Vec<&PeerRatio> = summary
                .ratios
                .iter()
                .filter(|r| r.model == model && r.concurrency == c)
                .collect();
            let mut cells = row![name, c, format!("{:.0}", at[0].convoy_rps)];
            cells.extend(labels.iter().map(|l| {
                at.iter()
                    .find(|r| r.label == *l)
                    .map_or("–".into(), |r| format!("{:.1}×", r.ratio))
            }));
            rows.push(cells);
            if Some(&c) == cs.last() {
                let mut at = at;
                at.sort_by(|a, b| a.ratio.total_cmp(&b.ratio));
                let parts: Vec<_> = at
                    .iter()
                    .map(|r| format!("{} {:.1}×", r.label, r.ratio))
                    .collect();
                head_parts.push(format!("{name} c={c}: {}", parts.join(", ")));
            }
        }
    }
    if labels.is_empty() {
        out.push("No level gave a ratio (see PEERS.md for what failed).".into());
    } else {
        out.push("Convoy's closed-loop requests/s divided by each peer's (> 1: Convoy is faster; differences under ~1.3× are within this shared machine's noise):".into());
        let align = format!("lrr{}", "r".repeat(labels.len()));
        out.push(table(
            &format!("model | c | Convoy req/s | {}", labels.join(" | ")),
            &align,
            &rows,
        ));
    }
    let at_batch = |b: usize| ceiling.levels.iter().find(|l| l.batch_size == b);
    let big = at_batch(64).or_else(|| ceiling.levels.iter().max_by_key(|l| l.batch_size));
    let best = summary
        .ratios
        .iter()
        .filter(|r| r.model == "mlp")
        .map(|r| r.convoy_rps)
        .fold(0.0, f64::max);
    if let (Some(one), Some(big)) = (at_batch(1), big) {
        let mut scale = format!(
            "For scale, the in-process ceiling (ONNX Runtime alone on the MLP, same run): {:.0} rows/s at batch 1, {:.0} at batch {}",
            one.rows_per_s, big.rows_per_s, big.batch_size
        );
        if best > 0.0 {
            scale += &format!("; Convoy's best MLP figure here, {best:.0} req/s of one row, is {:.1} % of the latter: at this model size the cost is HTTP, JSON and scheduling, not the model", 100.0 * best / big.rows_per_s);
        }
        out.push(scale + ".");
    }
    // The target "≥ 3× the best Python framework's throughput at ≤ its p99", per level:
    // the best peer is the one Convoy's ratio is smallest against.
    let mut rows = Vec::new();
    for (model, name) in MODELS {
        for c in levels(&summary.ratios, model, |r| r.python) {
            let at = summary
                .ratios
                .iter()
                .filter(|r| r.model == model && r.python && r.concurrency == c);
            let Some(best) = at.min_by(|a, b| a.ratio.total_cmp(&b.ratio)) else {
                continue;
            };
            let p99_ok =
                matches!((best.convoy_p99_ms, best.peer_p99_ms), (Some(a), Some(b)) if a <= b);
            let ms = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.2}"));
            let verdict = yes_no(best.ratio >= 3.0 && p99_ok);
            rows.push(row![
                name,
                c,
                best.label,
                format!("**{:.1}×**", best.ratio),
                ms(best.convoy_p99_ms),
                ms(best.peer_p99_ms),
                verdict
            ]);
        }
    }
    if !rows.is_empty() {
        out.push("Target: **≥ 3× the best Python framework's throughput at ≤ its p99** (Triton, a C++ server, is not one), per level against the fastest Python peer there:".into());
        out.push(table(
            "model | c | best Python peer | Convoy / it | Convoy p99 ms | its p99 ms | target",
            "lrlrrrl",
            &rows,
        ));
    }
    for (model, name) in MODELS {
        for f in summary
            .plots
            .get(model)
            .into_iter()
            .flatten()
            .filter(|f| f.ends_with("-throughput.svg"))
        {
            out.push(format!(
                "![{name}: requests/s vs concurrency, Convoy and the peers]({}/{f})",
                p.dir
            ));
        }
    }
    if !summary.failed.is_empty() {
        let failed: Vec<_> = summary.failed.iter().map(|f| format!("- {f}")).collect();
        out.push(format!(
            "Failed or skipped in that run:\n\n{}",
            failed.join("\n")
        ));
    }
    o.values.insert("peers".into(), out.join("\n\n"));
    if !head_parts.is_empty() {
        o.heads.push(format!(
            "Peers (closed loop, Convoy req/s ÷ peer's, see PEERS.md): {}.",
            head_parts.join("; ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ceiling() -> CeilingReport {
        serde_json::from_str(
            r#"{"mode": "ceiling", "model": "m.onnx", "ort_lib": "lib.so", "intra_threads": 1,
            "features": 10, "reference_max_abs_err": null, "levels": [
            {"batch_size": 1, "duration_s": 1, "runs": 1, "runs_per_s": 100000, "rows_per_s": 100000,
             "latency": {"count": 1, "mean_ms": 0, "p50_ms": 0, "p90_ms": 0, "p99_ms": 0, "max_ms": 0}},
            {"batch_size": 64, "duration_s": 1, "runs": 1, "runs_per_s": 31250, "rows_per_s": 2000000,
             "latency": {"count": 1, "mean_ms": 0, "p50_ms": 0, "p90_ms": 0, "p99_ms": 0, "max_ms": 0}}
            ]}"#,
        )
        .unwrap()
    }

    /// Convoy at 2 ms p99 against MLServer (Python) and Triton; the peer's p99 is 1.5 ms
    /// at c=1 and 90 ms beyond.
    fn peers(state: &str) -> Peers {
        let summary = r#"{"profile": "short", "date": "2026-01-01 00:00 UTC", "wall_s": 390,
            "concurrency": "1,16,64", "warmup_s": 1, "duration_s": 4,
            "peers": ["Triton 2.51", "MLServer 1.7.1"],
            "ratios": [
              {"model": "mlp", "concurrency": 1, "label": "Triton 2.51", "convoy_rps": 1000, "ratio": 1.25,
               "convoy_p99_ms": 2, "peer_p99_ms": 1.5},
              {"model": "mlp", "concurrency": 1, "label": "MLServer 1.7.1", "convoy_rps": 1000, "ratio": 2,
               "python": true, "convoy_p99_ms": 2, "peer_p99_ms": 1.5},
              {"model": "mlp", "concurrency": 64, "label": "Triton 2.51", "convoy_rps": 20000, "ratio": 2,
               "convoy_p99_ms": 2, "peer_p99_ms": 90},
              {"model": "mlp", "concurrency": 64, "label": "MLServer 1.7.1", "convoy_rps": 20000, "ratio": 20,
               "python": true, "convoy_p99_ms": 2, "peer_p99_ms": 90},
              {"model": "minilm", "concurrency": 64, "label": "Triton 2.51", "convoy_rps": 300, "ratio": 1.2,
               "convoy_p99_ms": 2, "peer_p99_ms": 90}],
            "failed": ["KServe on minilm: probe failed"],
            "plots": {"mlp": ["peers-mlp-throughput.svg", "peers-mlp-p99.svg"]}}"#;
        Peers {
            manifest: PeersManifest {
                state: state.into(),
                md: "PEERS.md".into(),
            },
            summary: Some(serde_json::from_str(summary).unwrap()),
            dir: "results/peers".into(),
        }
    }

    #[test]
    fn summarises_ratios_next_to_the_ceiling_and_the_python_target() {
        let mut o = Filled::default();
        section(&mut o, Some(&peers("measured")), &ceiling(), false);
        let md = &o.values["peers"];
        for want in [
            "`loadtests/peers.sh --short`, the last section of this run, 2026-01-01 00:00 UTC, 6.5 min",
            "| closed loop | c=1,16,64 (1 s warm-up + 4 s per level) |",
            "| model | c | Convoy req/s | Triton 2.51 | MLServer 1.7.1 |",
            "| MLP | 1 | 1000 | 1.2× | 2.0× |",
            "| MiniLM | 64 | 300 | 1.2× | – |",
            "100000 rows/s at batch 1, 2000000 at batch 64; Convoy's best MLP figure here, 20000 req/s of one row, is 1.0 % of the latter",
            "(results/peers/peers-mlp-throughput.svg)",
            "- KServe on minilm: probe failed",
            // 2× at c=1 (and a higher p99) misses, 20× at c=64 holds.
            "| MLP | 1 | MLServer 1.7.1 | **2.0×** | 2.00 | 1.50 | **not met** |",
            "| MLP | 64 | MLServer 1.7.1 | **20.0×** | 2.00 | 90.00 | met |",
        ] {
            assert!(md.contains(want), "{want:?} not in {md}");
        }
        // Triton is no Python framework, so MiniLM has no target row.
        assert!(!md.contains("peers-mlp-p99.svg") && !md.contains("| MiniLM | 64 | Triton"));
        let head = "Peers (closed loop, Convoy req/s ÷ peer's, see PEERS.md): MLP c=64: Triton 2.51 2.0×, MLServer 1.7.1 20.0×; MiniLM c=64: Triton 2.51 1.2×.";
        assert_eq!(o.heads, [head]);
    }

    #[test]
    fn says_why_not_measured() {
        let mut o = Filled::default();
        let skipped = peers("skipped: LOADTEST_PEERS=0");
        section(&mut o, Some(&skipped), &ceiling(), false);
        assert!(!o.values.contains_key("peers") && o.heads.is_empty());
        let why =
            "Not measured in this run: skipped: LOADTEST_PEERS=0. [PEERS.md](PEERS.md), if present";
        assert!(o.values["peers.absent"].starts_with(why));
        let mut o = Filled::default();
        let no_summary = Peers {
            summary: None,
            ..peers("measured")
        };
        section(&mut o, Some(&no_summary), &ceiling(), false);
        let why = "ran but wrote no summary (`results/peers/summary.json`)";
        assert!(o.values["peers.absent"].contains(why));
    }
}
