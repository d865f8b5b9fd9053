//! `report`: renders RESULTS.md from the JSON written by `closed` and `ceiling`.
//!
//! The markdown is generated rather than hand-edited so the committed figures always match
//! the committed raw JSON next to them. This module only gathers the inputs; the rendering
//! lives in `render`, a pure function with tests.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde::de::DeserializeOwned;

use crate::machine::Machine;
use crate::render::{render, ReportInputs};

#[derive(Args)]
pub struct ReportArgs {
    /// Closed-loop JSON against the batched model repository.
    #[arg(long)]
    batched: PathBuf,
    /// Closed-loop JSON against the max_batch_size = 1 repository.
    #[arg(long)]
    unbatched: PathBuf,
    /// Ceiling JSON.
    #[arg(long)]
    ceiling: PathBuf,
    /// The server's /v2/models/mlp/stats after the batched run (optional).
    #[arg(long)]
    batched_stats: Option<PathBuf>,
    /// The server's /v2/models/mlp/stats after the unbatched run (optional).
    #[arg(long)]
    unbatched_stats: Option<PathBuf>,
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
    /// The batched repository's model.toml, quoted in the report (optional).
    #[arg(long)]
    batched_config: Option<PathBuf>,
    /// The unbatched repository's model.toml, quoted in the report (optional).
    #[arg(long)]
    unbatched_config: Option<PathBuf>,
    /// Output markdown file.
    #[arg(long)]
    out: PathBuf,
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

pub fn run(args: &ReportArgs) -> Result<()> {
    let mut stats = Vec::new();
    for (label, path) in [
        ("batched", &args.batched_stats),
        ("max_batch_size = 1", &args.unbatched_stats),
    ] {
        if let Some(p) = path {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            stats.push((label.to_string(), file_name(p), text));
        }
    }
    let mut configs = Vec::new();
    for (label, path) in [
        ("batched", &args.batched_config),
        ("max_batch_size = 1", &args.unbatched_config),
    ] {
        if let Some(p) = path {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            configs.push((label.to_string(), text));
        }
    }
    let inputs = ReportInputs {
        machine: Machine::detect(),
        commit: args.commit.clone(),
        date: args.date.clone(),
        rustc: args.rustc.clone(),
        ort_version: args.ort_version.clone(),
        raw_dir: args.raw_dir.trim_end_matches('/').to_string(),
        batched: read_json(&args.batched)?,
        unbatched: read_json(&args.unbatched)?,
        ceiling: read_json(&args.ceiling)?,
        stats,
        configs,
    };
    std::fs::write(&args.out, render(&inputs))
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}
