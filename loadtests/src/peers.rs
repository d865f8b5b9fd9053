//! The "Peers" section of RESULTS.md: a summary of `loadtests/peers.sh` (PEERS.md), which
//! `loadtests/run.sh` runs as its last section with the `--short` profile.
//!
//! run.sh writes `peers.json` (whether the comparison ran, or why not); peers_report.py
//! writes `peers/summary.json` (Convoy's closed-loop requests/s over each peer's, level by
//! level). Rendering is a pure function of the two, tested here.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use crate::ceiling::CeilingReport;

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

/// The section (after the ceiling and the server overhead it is compared with); returns
/// the headline.
pub fn section(
    out: &mut String,
    peers: Option<&Peers>,
    ceiling: &CeilingReport,
    quick: bool,
) -> Option<String> {
    out.push_str("\n## Peers: Convoy next to other model servers\n\n");
    let Some(p) = peers else {
        out.push_str(if quick {
            "Not run in `--quick` mode (`loadtests/peers.sh --quick` is the peers' smoke run).\n"
        } else {
            "Not measured in this run.\n"
        });
        return None;
    };
    let summary = match (&p.summary, p.manifest.state.as_str()) {
        (Some(s), "measured") => s,
        (_, "measured") => {
            let _ = writeln!(
                out,
                "`loadtests/peers.sh` ran but wrote no summary (`{}/summary.json`); see [{}]({}).",
                p.dir, p.manifest.md, p.manifest.md
            );
            return None;
        }
        (_, why) => {
            let _ = writeln!(
                out,
                "Not measured in this run: {why}. [{0}]({0}), if present, is from an earlier \
                 `loadtests/peers.sh` run.",
                p.manifest.md
            );
            return None;
        }
    };
    let flag = match summary.profile.as_str() {
        "" | "full" => String::new(),
        other => format!(" --{other}"),
    };
    let _ = write!(
        out,
        "From [{md}]({md}) (`loadtests/peers.sh{flag}`, the last section of this run{date}; \
         raw JSON in [`{dir}/`]({dir}/)): Convoy and {peers} serve the same ONNX files (the \
         MLP, and MiniLM on 16 pre-tokenized ids) on the CPU, one server at a time, driven by \
         the same client with the same bodies: closed loop c={conc} ({w} s warm-up + {d} s \
         per level) and an open-loop sweep ({ow} s + {od} s per rate). PEERS.md has every \
         table, the open loop, perf_analyzer's view and the set-up.\n\n\
         Convoy's closed-loop requests/s divided by each peer's (> 1: Convoy is faster; \
         differences under ~1.3× are within this shared machine's noise):\n\n",
        md = p.manifest.md,
        date = summary
            .date
            .iter()
            .cloned()
            .chain(summary.wall_s.map(|w| format!("{:.1} min", w / 60.0)))
            .map(|d| format!(", {d}"))
            .collect::<String>(),
        dir = p.dir,
        peers = if summary.peers.is_empty() {
            "no peer".to_string()
        } else {
            summary.peers.join(", ")
        },
        conc = summary.concurrency.as_deref().unwrap_or("?"),
        w = secs(summary.warmup_s),
        d = secs(summary.duration_s),
        ow = secs(summary.open_warmup_s),
        od = secs(summary.open_duration_s),
    );
    // Columns: every peer with a ratio, in the order they first appear.
    let mut labels: Vec<&str> = Vec::new();
    for r in &summary.ratios {
        if !labels.contains(&r.label.as_str()) {
            labels.push(&r.label);
        }
    }
    let mut head_parts = Vec::new();
    if labels.is_empty() {
        out.push_str("No level gave a ratio (see PEERS.md for what failed).\n");
    } else {
        let _ = writeln!(
            out,
            "| model | c | Convoy req/s | {} |\n|---|---:|---:|{}",
            labels.join(" | "),
            "---:|".repeat(labels.len())
        );
        for (model, name) in MODELS {
            let mut cs: Vec<u64> = summary
                .ratios
                .iter()
                .filter(|r| r.model == model)
                .map(|r| r.concurrency)
                .collect();
            cs.sort_unstable();
            cs.dedup();
            for &c in &cs {
                let at: Vec<&PeerRatio> = summary
                    .ratios
                    .iter()
                    .filter(|r| r.model == model && r.concurrency == c)
                    .collect();
                let cells: Vec<String> = labels
                    .iter()
                    .map(|l| {
                        at.iter()
                            .find(|r| r.label == *l)
                            .map_or("–".into(), |r| format!("{:.1}×", r.ratio))
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "| {name} | {c} | {:.0} | {} |",
                    at[0].convoy_rps,
                    cells.join(" | ")
                );
            }
            if let Some(&top) = cs.last() {
                let mut at: Vec<&PeerRatio> = summary
                    .ratios
                    .iter()
                    .filter(|r| r.model == model && r.concurrency == top)
                    .collect();
                at.sort_by(|a, b| a.ratio.total_cmp(&b.ratio));
                head_parts.push(format!(
                    "{name} c={top}: {}",
                    at.iter()
                        .map(|r| format!("{} {:.1}×", r.label, r.ratio))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    let at_batch = |b: usize| ceiling.levels.iter().find(|l| l.batch_size == b);
    if let (Some(one), Some(big)) = (
        at_batch(1),
        at_batch(64).or_else(|| ceiling.levels.iter().max_by_key(|l| l.batch_size)),
    ) {
        let best = summary
            .ratios
            .iter()
            .filter(|r| r.model == "mlp")
            .map(|r| r.convoy_rps)
            .fold(0.0, f64::max);
        let _ = write!(
            out,
            "\nFor scale, the in-process ceiling above (ONNX Runtime alone on the MLP, same \
             run): {:.0} rows/s at batch 1, {:.0} at batch {}",
            one.rows_per_s, big.rows_per_s, big.batch_size
        );
        if best > 0.0 {
            let _ = write!(
                out,
                "; Convoy's best MLP figure in this comparison, {best:.0} req/s of one row, is \
                 {:.1} % of the latter, and every peer is lower still: at this model size the \
                 cost is HTTP, JSON and scheduling, not the model",
                100.0 * best / big.rows_per_s
            );
        }
        out.push_str(".\n");
    }
    python_target(out, &summary.ratios);
    for (model, name) in MODELS {
        if let Some(files) = summary.plots.get(model) {
            for f in files.iter().filter(|f| f.ends_with("-throughput.svg")) {
                let _ = writeln!(
                    out,
                    "\n![{name}: requests/s vs concurrency, Convoy and the peers]({}/{f})",
                    p.dir
                );
            }
        }
    }
    if !summary.failed.is_empty() {
        let _ = writeln!(out, "\nFailed or skipped in that run:\n");
        for f in &summary.failed {
            let _ = writeln!(out, "- {f}");
        }
    }
    (!head_parts.is_empty()).then(|| {
        format!(
            "Peers (closed loop, Convoy req/s ÷ peer's, see PEERS.md): {}.",
            head_parts.join("; ")
        )
    })
}

/// The target "≥ 3× the best Python framework's throughput at ≤ its p99", per model and
/// concurrency: the fastest Python peer at that level, the ratio, both p99s, the verdict.
fn python_target(out: &mut String, ratios: &[PeerRatio]) {
    let mut rows = Vec::new();
    for (model, name) in MODELS {
        let mut cs: Vec<u64> = ratios
            .iter()
            .filter(|r| r.model == model && r.python)
            .map(|r| r.concurrency)
            .collect();
        cs.sort_unstable();
        cs.dedup();
        for c in cs {
            // The best peer is the one Convoy's ratio is smallest against.
            let Some(best) = ratios
                .iter()
                .filter(|r| r.model == model && r.python && r.concurrency == c)
                .min_by(|a, b| a.ratio.total_cmp(&b.ratio))
            else {
                continue;
            };
            let p99_ok = match (best.convoy_p99_ms, best.peer_p99_ms) {
                (Some(a), Some(b)) => Some(a <= b),
                _ => None,
            };
            let met = best.ratio >= 3.0 && p99_ok == Some(true);
            let ms = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.2}"));
            rows.push(format!(
                "| {name} | {c} | {} | **{:.1}×** | {} | {} | {} |",
                best.label,
                best.ratio,
                ms(best.convoy_p99_ms),
                ms(best.peer_p99_ms),
                crate::sections::yes_no(met)
            ));
        }
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "
Target: **≥ 3× the best Python framework's throughput at ≤ its p99** (Triton, a \
         C++ server, is not one). Per level, against the fastest Python peer there:\n\n\
         | model | c | best Python peer | Convoy / it | Convoy p99 ms | its p99 ms | target |\n\
         |---|---:|---|---:|---:|---:|---|\n{}",
        rows.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ceiling::CeilingLevel;
    use crate::stats::LatencySummary;

    fn ceiling() -> CeilingReport {
        let level = |b: usize, rows: f64| CeilingLevel {
            batch_size: b,
            duration_s: 1.0,
            runs: 1,
            runs_per_s: rows / b as f64,
            rows_per_s: rows,
            latency: LatencySummary::default(),
        };
        CeilingReport {
            mode: "ceiling".into(),
            model: "m.onnx".into(),
            ort_lib: "lib.so".into(),
            intra_threads: 1,
            features: 10,
            reference_max_abs_err: None,
            levels: vec![level(1, 100_000.0), level(64, 2_000_000.0)],
        }
    }

    fn ratio(model: &str, c: u64, label: &str, convoy: f64, peer: f64) -> PeerRatio {
        PeerRatio {
            model: model.into(),
            concurrency: c,
            label: label.into(),
            convoy_rps: convoy,
            ratio: convoy / peer,
            python: label.starts_with("MLServer"),
            convoy_p99_ms: Some(2.0),
            peer_p99_ms: Some(if c == 1 { 1.5 } else { 90.0 }),
        }
    }

    fn measured() -> Peers {
        Peers {
            manifest: PeersManifest {
                state: "measured".into(),
                md: "PEERS.md".into(),
            },
            summary: Some(PeersSummary {
                profile: "short".into(),
                date: Some("2026-01-01 00:00 UTC".into()),
                wall_s: Some(390.0),
                concurrency: Some("1,16,64".into()),
                warmup_s: Some(1.0),
                duration_s: Some(4.0),
                open_warmup_s: Some(1.0),
                open_duration_s: Some(4.0),
                peers: vec!["Triton 2.51".into(), "MLServer 1.7.1".into()],
                ratios: vec![
                    ratio("mlp", 1, "Triton 2.51", 1000.0, 800.0),
                    ratio("mlp", 1, "MLServer 1.7.1", 1000.0, 500.0),
                    ratio("mlp", 64, "Triton 2.51", 20000.0, 10000.0),
                    ratio("mlp", 64, "MLServer 1.7.1", 20000.0, 1000.0),
                    ratio("minilm", 64, "Triton 2.51", 300.0, 250.0),
                ],
                failed: vec!["KServe on minilm: probe failed".into()],
                plots: [(
                    "mlp".to_string(),
                    vec![
                        "peers-mlp-throughput.svg".into(),
                        "peers-mlp-p99.svg".into(),
                    ],
                )]
                .into_iter()
                .collect(),
            }),
            dir: "results/peers".into(),
        }
    }

    #[test]
    fn summarises_ratios_next_to_the_ceiling() {
        let mut md = String::new();
        let head = section(&mut md, Some(&measured()), &ceiling(), false).unwrap();
        assert!(
            md.contains("`loadtests/peers.sh --short`, the last section of this run, 2026-01-01")
        );
        assert!(md.contains("Convoy and Triton 2.51, MLServer 1.7.1 serve"));
        assert!(md.contains("closed loop c=1,16,64 (1 s warm-up + 4 s per level)"));
        assert!(md.contains("| model | c | Convoy req/s | Triton 2.51 | MLServer 1.7.1 |"));
        assert!(md.contains("| MLP | 1 | 1000 | 1.2× | 2.0× |"), "{md}");
        assert!(md.contains("| MLP | 64 | 20000 | 2.0× | 20.0× |"));
        assert!(md.contains("| MiniLM | 64 | 300 | 1.2× | – |"));
        assert!(md.contains("100000 rows/s at batch 1, 2000000 at batch 64"));
        assert!(md.contains("20000 req/s of one row, is 1.0 % of the latter"));
        assert!(md.contains(
            "![MLP: requests/s vs concurrency, Convoy and the peers](results/peers/peers-mlp-throughput.svg)"
        ));
        assert!(!md.contains("peers-mlp-p99.svg"));
        assert!(md.contains("- KServe on minilm: probe failed"));
        // The Python-peer target: 2× at c=1 (and a higher p99) misses, 20× at c=64 holds;
        // Triton is no Python framework, so MiniLM has no row.
        assert!(
            md.contains("| MLP | 1 | MLServer 1.7.1 | **2.0×** | 2.00 | 1.50 | **not met** |"),
            "{md}"
        );
        assert!(md.contains("| MLP | 64 | MLServer 1.7.1 | **20.0×** | 2.00 | 90.00 | met |"));
        assert!(!md.contains("| MiniLM | 64 | Triton"));
        assert_eq!(
            head,
            "Peers (closed loop, Convoy req/s ÷ peer's, see PEERS.md): MLP c=64: Triton 2.51 \
             2.0×, MLServer 1.7.1 20.0×; MiniLM c=64: Triton 2.51 1.2×."
        );
    }

    #[test]
    fn says_why_not_measured() {
        let mut md = String::new();
        let p = Peers {
            manifest: PeersManifest {
                state: "skipped: LOADTEST_PEERS=0".into(),
                md: "PEERS.md".into(),
            },
            summary: measured().summary,
            dir: "results/peers".into(),
        };
        assert!(section(&mut md, Some(&p), &ceiling(), false).is_none());
        assert!(md.contains("Not measured in this run: skipped: LOADTEST_PEERS=0. [PEERS.md](PEERS.md), if present, is from an earlier"));
        assert!(!md.contains("| MLP |"));
        let mut quick = String::new();
        assert!(section(&mut quick, None, &ceiling(), true).is_none());
        assert!(quick.contains("Not run in `--quick` mode"));
    }
}
