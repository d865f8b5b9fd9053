//! `report`: renders RESULTS.md from the JSON the other modes wrote into one directory.
//!
//! The markdown is generated rather than hand-edited so the committed figures always match
//! the committed raw JSON next to them. This module only finds and loads the files (by the
//! names run.sh gives them); `sections` computes the tables and fills the template.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::de::DeserializeOwned;

use crate::machine::Machine;
use crate::peers::{Peers, PeersManifest};
use crate::sections::{
    problems, render, Extra, Overload, OverloadManifest, Pipelines, PipelinesManifest,
    ReportInputs, Slo, SloManifest,
};

#[derive(Args)]
pub struct ReportArgs {
    /// Directory holding the run's JSON (and the model.toml copies), named as run.sh
    /// names them: closed-batched.json, closed-unbatched.json, ceiling.json (required),
    /// and any of stats-*.json, config-*.toml, closed-instances{1,2}.json, closed-wire-{json,binary}.json,
    /// metrics-{on,off}.json, metrics-rss.json, slo-MODEL.json (+ slo-MODEL-*.json), overload*.json,
    /// pipelines.json (+ minilm-*.json, efficientnet.json), peers.json (+ peers/summary.json)
    /// and the charts plot-{batching,slo-mlp,slo-minilm,minilm}.svg. machine.json (the host)
    /// is written on the first report of a run and read back when re-rendering later.
    #[arg(long)]
    results: PathBuf,
    /// Directory of the raw JSON, relative to the markdown file (for links).
    #[arg(long, default_value = "results")]
    raw_dir: String,
    /// Git commit measured.
    #[arg(long, default_value = "unknown")]
    commit: String,
    /// When the run happened.
    #[arg(long, default_value = "unknown")]
    date: String,
    /// `rustc --version` of the build.
    #[arg(long, default_value = "unknown")]
    rustc: String,
    /// ONNX Runtime version loaded by server and ceiling.
    #[arg(long, default_value = "1.31.1")]
    ort_version: String,
    /// Wall time of the measurements (after the build), seconds.
    #[arg(long)]
    wall_s: Option<f64>,
    /// /proc/loadavg (1, 5, 15 min) when the run started and when it ended.
    #[arg(long, default_value = "unknown")]
    loadavg_start: String,
    #[arg(long, default_value = "unknown")]
    loadavg_end: String,
    /// The smoke run: sections it skips say so.
    #[arg(long)]
    quick: bool,
    /// Fail (after writing the report) if a level had no success or unexpected errors.
    #[arg(long)]
    strict: bool,
    /// Output markdown file.
    #[arg(long)]
    out: PathBuf,
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// `dir/name` parsed, or `None` when the file is absent (that part was not run).
fn optional<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>> {
    let path = dir.join(name);
    path.exists().then(|| read_json(&path)).transpose()
}

/// (label, file name, contents) of those of `files` present in `dir`.
fn texts(dir: &Path, files: [(&str, &str); 2]) -> Result<Vec<(String, String, String)>> {
    let present = files
        .into_iter()
        .filter(|(_, name)| dir.join(name).exists());
    let read = |(label, name): (&str, &str)| {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path);
        let text = text.with_context(|| format!("reading {}", path.display()))?;
        Ok((label.to_string(), name.to_string(), text))
    };
    present.map(read).collect()
}

fn load_slo(dir: &Path, model: &str) -> Result<Option<Slo>> {
    let Some(manifest) = optional::<SloManifest>(dir, &format!("slo-{model}.json"))? else {
        return Ok(None);
    };
    let mut runs = Vec::new();
    for d in &manifest.delays_us {
        if let Some(r) = optional(dir, &format!("slo-{model}-delay-{d}.json"))? {
            runs.push((format!("max_queue_delay_us = {d}"), r));
        }
    }
    if let Some(r) = optional(dir, &format!("slo-{model}-target.json"))? {
        runs.push((format!("latency_target_ms = {}", manifest.target_ms), r));
    }
    Ok(Some(Slo { manifest, runs }))
}

/// Charts `convoy-load plot` may have drawn into the results directory (run.sh names them
/// `plot-KEY.svg`); the report links those present.
const PLOTS: [&str; 4] = ["batching", "slo-mlp", "slo-minilm", "minilm"];

fn load_extra(dir: &Path, raw_dir: &str, quick: bool) -> Result<Extra> {
    let pair = |a: &str, b: &str| -> Result<_> {
        Ok(match (optional(dir, a)?, optional(dir, b)?) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        })
    };
    let mut slo = Vec::new();
    for model in ["mlp", "minilm"] {
        slo.extend(load_slo(dir, model)?);
    }
    let overload = match optional::<OverloadManifest>(dir, "overload.json")? {
        Some(manifest) => Some(Overload {
            manifest,
            capacity: read_json(&dir.join("overload-capacity.json"))?,
            open: read_json(&dir.join("overload-open.json"))?,
            shed: optional(dir, "overload-shed-open.json")?,
        }),
        None => None,
    };
    let pipelines = match optional::<PipelinesManifest>(dir, "pipelines.json")? {
        Some(manifest) => {
            let mut minilm = Vec::new();
            let committed = match manifest.minilm_bucketing {
                Some(true) => "on",
                Some(false) => "off",
                None => "committed",
            };
            for (file, body, bucketing) in [
                ("minilm-short.json", "short", committed),
                ("minilm-mixed-on.json", "mixed", "on"),
                ("minilm-mixed-off.json", "mixed", "off"),
            ] {
                if let Some(r) = optional(dir, file)? {
                    minilm.push((body.to_string(), bucketing.to_string(), r));
                }
            }
            Some(Pipelines {
                efficientnet: optional(dir, "efficientnet.json")?,
                manifest,
                minilm,
            })
        }
        None => None,
    };
    let peers = match optional::<PeersManifest>(dir, "peers.json")? {
        Some(manifest) => Some(Peers {
            summary: optional(dir, "peers/summary.json")?,
            manifest,
            dir: format!("{raw_dir}/peers"),
        }),
        None => None,
    };
    let plots = PLOTS
        .iter()
        .filter(|key| dir.join(format!("plot-{key}.svg")).exists())
        .map(|key| (key.to_string(), format!("{raw_dir}/plot-{key}.svg")))
        .collect();
    Ok(Extra {
        instances: pair("closed-instances1.json", "closed-instances2.json")?,
        wire: pair("closed-wire-json.json", "closed-wire-binary.json")?,
        metrics_cost: pair("metrics-on.json", "metrics-off.json")?,
        metrics_rss: optional(dir, "metrics-rss.json")?,
        slo,
        overload,
        pipelines,
        peers,
        plots,
        quick,
    })
}

pub fn run(args: &ReportArgs) -> Result<()> {
    let dir = &args.results;
    const BATCHED: &str = "batched";
    const UNBATCHED: &str = "max_batch_size = 1";
    let stats = [
        (BATCHED, "stats-batched.json"),
        (UNBATCHED, "stats-unbatched.json"),
    ];
    let stats = texts(dir, stats)?;
    let configs = [
        (BATCHED, "config-batched.toml"),
        (UNBATCHED, "config-unbatched.toml"),
    ];
    let configs = texts(dir, configs)?
        .into_iter()
        .map(|(l, _, t)| (l, t))
        .collect();
    let raw_dir = args.raw_dir.trim_end_matches('/').to_string();
    let extra = load_extra(dir, &raw_dir, args.quick)?;
    // The host of the run: detected on the run's own report, kept for re-rendering later.
    let machine = match optional::<Machine>(dir, "machine.json")? {
        Some(m) => m,
        None => {
            let m = Machine::detect();
            crate::write_json(Some(&dir.join("machine.json")), &m)?;
            m
        }
    };
    let inputs = ReportInputs {
        machine,
        commit: args.commit.clone(),
        date: args.date.clone(),
        rustc: args.rustc.clone(),
        ort_version: args.ort_version.clone(),
        raw_dir,
        wall_s: args.wall_s,
        loadavg: (args.loadavg_start.clone(), args.loadavg_end.clone()),
        batched: read_json(&dir.join("closed-batched.json"))?,
        unbatched: read_json(&dir.join("closed-unbatched.json"))?,
        ceiling: read_json(&dir.join("ceiling.json"))?,
        stats,
        configs,
        extra,
    };
    std::fs::write(&args.out, render(&inputs))
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    let found = problems(&inputs.batched, &inputs.unbatched, &inputs.extra);
    for p in &found {
        eprintln!("problem: {p}");
    }
    if args.strict && !found.is_empty() {
        bail!("{} problem(s) in the run (see above)", found.len());
    }
    Ok(())
}
