//! `convoy-load`: load generator and in-process ceiling for the Convoy server.
//!
//! One binary so that every number in `loadtests/RESULTS.md` comes from the same code:
//! the HTTP loops (`closed`, `open`), the ONNX Runtime ceiling they are compared with
//! (`ceiling`), the request bodies they send (`body`), and the report itself (`report`).

mod arrivals;
mod body;
mod ceiling;
mod closed;
mod cpu;
mod http;
mod machine;
mod open;
mod render;
mod report;
mod server_stats;
mod stats;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::http::{build_client, preflight, Target};

#[derive(Parser)]
#[command(
    name = "convoy-load",
    version,
    about = "Load tests for the Convoy model server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Closed loop: N concurrent clients, each sending back to back.
    Closed(ClosedArgs),
    /// Open loop: Poisson arrivals at a fixed rate; latency from the intended send time.
    Open(OpenArgs),
    /// In-process ONNX Runtime throughput per batch size (the server's ceiling).
    Ceiling(CeilingArgs),
    /// Write a v2 inference request body with N rows cycled from a reference file.
    Body(BodyArgs),
    /// Render RESULTS.md from the JSON files written by the other modes.
    Report(report::ReportArgs),
}

/// Options shared by the two HTTP loops.
#[derive(Args)]
struct HttpArgs {
    /// Inference URL, e.g. http://127.0.0.1:8000/v2/models/mlp/infer
    #[arg(long)]
    url: String,
    /// File holding the request body (see `convoy-load body`).
    #[arg(long)]
    body: PathBuf,
    /// Rows per request for rows/s; default: `inputs[0].shape[0]` of the body.
    #[arg(long)]
    rows_per_request: Option<usize>,
    /// Tokio worker threads of the client. 1 by default: client and server share the
    /// machine, and every client core is one the server doesn't get.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout_s: f64,
    /// Write all figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct ClosedArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Concurrency levels, run one after another.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Measured seconds per level.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Unmeasured seconds before each level (connections, caches, batch queues settle).
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
}

#[derive(Args)]
struct OpenArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Arrival rates in requests/s, run one after another.
    #[arg(long, value_delimiter = ',', required = true)]
    rate: Vec<f64>,
    /// Measured seconds per rate.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Unmeasured seconds of arrivals before each rate.
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
    /// Arrivals finding this many requests outstanding are dropped (and counted).
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,
    /// Seed of the arrival schedule (runs are reproducible).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct CeilingArgs {
    /// ONNX model file.
    #[arg(long)]
    model: PathBuf,
    /// ONNX Runtime shared library.
    #[arg(
        long,
        env = "ORT_DYLIB_PATH",
        default_value = ".ort/cpu/libonnxruntime.so"
    )]
    ort_lib: PathBuf,
    /// Batch sizes, run one after another.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    batch_sizes: Vec<usize>,
    /// Measured seconds per batch size.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Unmeasured seconds before each batch size.
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
    /// Intra-op threads of the session (match the server's `intra_op_threads`).
    #[arg(long, default_value_t = 1)]
    intra_threads: usize,
    /// Reference file: input rows to run, and outputs to check the session against.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Write all figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct BodyArgs {
    /// Reference file with input rows (e.g. models/mlp/reference.json).
    #[arg(long)]
    reference: PathBuf,
    /// Rows in the body.
    #[arg(long)]
    rows: usize,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Closed(args) => run_closed(args),
        Command::Open(args) => run_open(args),
        Command::Ceiling(args) => run_ceiling(args),
        Command::Body(args) => run_body(args),
        Command::Report(args) => report::run(&args),
    }
}

fn secs(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("invalid {what}: {s}"))
}

/// A current-thread runtime for one client thread (no cross-thread wake-ups at all),
/// a multi-threaded one otherwise.
fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder
        .enable_all()
        .build()
        .context("building the tokio runtime")
}

fn write_json<T: Serialize>(path: Option<&Path>, value: &T) -> Result<()> {
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(value)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn run_closed(args: ClosedArgs) -> Result<()> {
    let h = &args.http;
    let target = Arc::new(Target::load(&h.url, &h.body, h.rows_per_request)?);
    let max_conc = args.concurrency.iter().copied().max().unwrap_or(1);
    let (warmup, duration) = (
        secs(args.warmup_s, "--warmup-s")?,
        secs(args.duration_s, "--duration-s")?,
    );
    let timeout = secs(h.timeout_s, "--timeout-s")?;
    let levels = runtime(h.client_threads)?.block_on(async {
        let client = build_client(max_conc, timeout)?;
        preflight(&client, &target).await?;
        let mut levels = Vec::new();
        for &c in &args.concurrency {
            let level = closed::run_level(&client, &target, c.max(1), warmup, duration).await;
            closed::print_level(&level);
            levels.push(level);
        }
        anyhow::Ok(levels)
    })?;
    write_json(
        h.json.as_deref(),
        &closed::ClosedReport {
            mode: "closed".into(),
            url: h.url.clone(),
            rows_per_request: target.rows_per_request,
            client_threads: h.client_threads,
            levels,
        },
    )
}

fn run_open(args: OpenArgs) -> Result<()> {
    let h = &args.http;
    let target = Arc::new(Target::load(&h.url, &h.body, h.rows_per_request)?);
    let (warmup, duration) = (
        secs(args.warmup_s, "--warmup-s")?,
        secs(args.duration_s, "--duration-s")?,
    );
    let timeout = secs(h.timeout_s, "--timeout-s")?;
    if args.rate.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
        anyhow::bail!("--rate values must be positive");
    }
    let levels = runtime(h.client_threads)?.block_on(async {
        let client = build_client(args.max_in_flight, timeout)?;
        preflight(&client, &target).await?;
        let mut levels = Vec::new();
        for (i, &rate) in args.rate.iter().enumerate() {
            let params = open::OpenParams {
                rate,
                warmup,
                duration,
                max_in_flight: args.max_in_flight.max(1),
                seed: args.seed.wrapping_add(i as u64),
            };
            let level = open::run_level(&client, &target, &params).await;
            open::print_level(&level);
            levels.push(level);
        }
        anyhow::Ok(levels)
    })?;
    write_json(
        h.json.as_deref(),
        &open::OpenReport {
            mode: "open".into(),
            url: h.url.clone(),
            rows_per_request: target.rows_per_request,
            client_threads: h.client_threads,
            max_in_flight: args.max_in_flight,
            levels,
        },
    )
}

fn run_ceiling(args: CeilingArgs) -> Result<()> {
    let params = ceiling::CeilingParams {
        model: args.model,
        ort_lib: args.ort_lib,
        reference: args.reference,
        batch_sizes: args.batch_sizes,
        warmup: secs(args.warmup_s, "--warmup-s")?,
        duration: secs(args.duration_s, "--duration-s")?,
        intra_threads: args.intra_threads,
    };
    let report = ceiling::run(&params)?;
    write_json(args.json.as_deref(), &report)
}

fn run_body(args: BodyArgs) -> Result<()> {
    let reference = body::Reference::load(&args.reference)?;
    let value = body::build_body(&reference, args.rows)?;
    std::fs::write(&args.out, serde_json::to_vec(&value)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {} rows x {} features to {}",
        args.rows,
        reference.features(),
        args.out.display()
    );
    Ok(())
}
