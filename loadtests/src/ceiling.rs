//! In-process ceiling: ONNX Runtime alone, no HTTP, no JSON, no queue.
//!
//! Rows/s here at a batch size is the most any server built on the same session settings
//! could deliver at that batch size on this machine; dividing the server's throughput by it
//! gives the share of the machine the serving layer itself consumes. Each iteration wraps a
//! pre-filled buffer (no copy), runs the session and reads the output, which is the least
//! work a server has to do per batch.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ort::session::Session;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};

use crate::body::Reference;
use crate::stats::{per_second, LatencySummary};

/// Results at one batch size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CeilingLevel {
    pub batch_size: usize,
    pub duration_s: f64,
    pub runs: u64,
    pub runs_per_s: f64,
    pub rows_per_s: f64,
    pub latency: LatencySummary,
}

/// A whole ceiling run, as written by `--json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CeilingReport {
    pub mode: String,
    pub model: String,
    pub ort_lib: String,
    pub intra_threads: usize,
    pub features: usize,
    /// Largest |output - reference output| over the reference rows, when a reference was given.
    pub reference_max_abs_err: Option<f64>,
    pub levels: Vec<CeilingLevel>,
}

/// Settings of a ceiling run.
pub struct CeilingParams {
    pub model: PathBuf,
    pub ort_lib: PathBuf,
    pub reference: Option<PathBuf>,
    pub batch_sizes: Vec<usize>,
    pub warmup: Duration,
    pub duration: Duration,
    pub intra_threads: usize,
}

/// Loads ONNX Runtime from `ort_lib` and builds the single session all batch sizes share.
///
/// Only the intra-op thread count is set, as the server does; every other option stays at
/// ONNX Runtime's default so the two run the same graph the same way.
fn open_session(p: &CeilingParams) -> Result<Session> {
    let env = ort::init_from(&p.ort_lib)
        .with_context(|| format!("loading ONNX Runtime from {}", p.ort_lib.display()))?
        .with_name("convoy-ceiling")
        .with_telemetry(false)
        .build()?;
    let session = Session::builder(&env)?
        .with_intra_threads(p.intra_threads)
        .map_err(ort::Error::<()>::from)?
        .commit_from_file(&p.model)
        .with_context(|| format!("loading model {}", p.model.display()))?;
    Ok(session)
}

/// Features per row: the product of the first input's non-batch dimensions.
fn features_of(session: &Session) -> Result<usize> {
    let [input] = session.inputs() else {
        bail!("the ceiling supports single-input models only");
    };
    let shape = input
        .dtype()
        .tensor_shape()
        .context("model input is not a tensor")?;
    let dims = shape.get(1..).unwrap_or_default();
    if dims.is_empty() || dims.iter().any(|&d| d <= 0) {
        bail!("model input shape {shape:?} needs fixed dimensions after the batch dimension");
    }
    Ok(dims.iter().map(|&d| d as usize).product())
}

/// Row-major `[rows, features]` buffer: reference rows cycled, or a deterministic ramp.
fn fill(rows: usize, features: usize, reference: Option<&Reference>) -> Vec<f32> {
    match reference {
        Some(r) => r.cycled_rows(rows).into_iter().map(|v| v as f32).collect(),
        None => (0..rows * features)
            .map(|i| ((i % 97) as f32 - 48.0) / 480.0)
            .collect(),
    }
}

/// One session run over `data`, handing the output elements to `read`: the output is
/// always read, so a run can't be cheaper than what a server has to do per batch.
fn run_batch<R>(
    session: &mut Session,
    data: &[f32],
    rows: usize,
    features: usize,
    read: impl FnOnce(&[f32]) -> R,
) -> Result<R> {
    let input = TensorRef::from_array_view(([rows, features], data))?;
    let outputs = session.run(ort::inputs![input])?;
    let (_, out) = outputs[0].try_extract_tensor::<f32>()?;
    Ok(read(out))
}

/// Runs the reference rows as one batch and compares with the reference outputs, so a
/// ceiling is never reported for a session that computes something else.
fn check_reference(session: &mut Session, reference: &Reference, features: usize) -> Result<f64> {
    let rows = reference.input.len();
    let data = fill(rows, features, Some(reference));
    let got = run_batch(session, &data, rows, features, <[f32]>::to_vec)?;
    let want: Vec<f64> = reference.output.iter().flatten().copied().collect();
    if got.len() != want.len() {
        bail!(
            "model returned {} output values for {rows} reference rows, reference has {}",
            got.len(),
            want.len()
        );
    }
    Ok(got
        .iter()
        .zip(&want)
        .map(|(&g, &w)| (f64::from(g) - w).abs())
        .fold(0.0, f64::max))
}

fn measure(
    session: &mut Session,
    batch: usize,
    features: usize,
    reference: Option<&Reference>,
    p: &CeilingParams,
) -> Result<CeilingLevel> {
    let data = fill(batch, features, reference);
    let body = |session: &mut Session| {
        run_batch(session, &data, batch, features, |out| {
            black_box(out.first().copied());
        })
    };
    let warm_end = Instant::now() + p.warmup;
    while Instant::now() < warm_end {
        body(session)?;
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    let end = start + p.duration;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        body(session)?;
        samples.push(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    let elapsed = start.elapsed();
    let runs = samples.len() as u64;
    let runs_per_s = per_second(runs, elapsed);
    Ok(CeilingLevel {
        batch_size: batch,
        duration_s: elapsed.as_secs_f64(),
        runs,
        runs_per_s,
        rows_per_s: runs_per_s * batch as f64,
        latency: LatencySummary::from_nanos(&mut samples),
    })
}

/// Measures every batch size in turn, printing a line per size as it finishes.
pub fn run(p: &CeilingParams) -> Result<CeilingReport> {
    if p.batch_sizes.contains(&0) {
        bail!("batch sizes must be at least 1");
    }
    let reference = p.reference.as_deref().map(Reference::load).transpose()?;
    let mut session = open_session(p)?;
    let features = features_of(&session)?;
    if let Some(r) = &reference {
        if r.features() != features {
            bail!(
                "reference rows have {} features, the model takes {features}",
                r.features()
            );
        }
    }
    let reference_max_abs_err = match &reference {
        Some(r) if !r.output.is_empty() => {
            let err = check_reference(&mut session, r, features)?;
            println!("reference check: max |output - expected| = {err:.3e}");
            Some(err)
        }
        _ => None,
    };
    let mut levels = Vec::new();
    for &batch in &p.batch_sizes {
        let level = measure(&mut session, batch, features, reference.as_ref(), p)?;
        print_level(&level);
        levels.push(level);
    }
    Ok(CeilingReport {
        mode: "ceiling".into(),
        model: display(&p.model),
        ort_lib: display(&p.ort_lib),
        intra_threads: p.intra_threads,
        features,
        reference_max_abs_err,
        levels,
    })
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn print_level(l: &CeilingLevel) {
    println!(
        "batch={:>5}  runs={:>9}  runs/s={:>10.1}  rows/s={:>11.1}  \
         mean={:>8.4}  p50={:>8.4}  p99={:>8.4} ms",
        l.batch_size,
        l.runs,
        l.runs_per_s,
        l.rows_per_s,
        l.latency.mean_ms,
        l.latency.p50_ms,
        l.latency.p99_ms,
    );
}
