//! `convoy-load`: load generator and in-process ceiling for the Convoy server.
//!
//! One binary so that every number in `loadtests/RESULTS.md` comes from the same code:
//! the HTTP loops (`closed`, `open`), the ONNX Runtime ceiling they are compared with
//! (`ceiling`), the request bodies they send (`body`), the report itself (`report`) and
//! its charts (`plot`).

mod arrivals;
mod body;
mod ceiling;
mod closed;
mod cpu;
mod http;
mod machine;
mod open;
mod peers;
mod plot;
mod prom;
mod report;
mod sections;
mod server_stats;
mod stats;
#[cfg(test)]
mod testkit;

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
    /// Write a request body: v2 rows cycled from a reference file, or an embeddings body.
    Body(BodyArgs),
    /// Render RESULTS.md from the JSON files written by the other modes.
    Report(report::ReportArgs),
    /// Draw an SVG chart from `closed`/`open` JSON files (throughput or latency).
    Plot(plot::PlotArgs),
}

impl HttpArgs {
    /// One target per URL, each sending these bodies with these headers.
    fn targets(&self, urls: &[String]) -> Result<Vec<Arc<Target>>> {
        urls.iter()
            .map(|url| {
                Target::load(
                    url,
                    &self.body,
                    self.rows_per_request,
                    &self.content_type,
                    self.binary_header_length,
                )
                .map(Arc::new)
            })
            .collect()
    }
}

/// Options shared by the two HTTP loops.
#[derive(Args)]
struct HttpArgs {
    /// File(s) holding the request body (see `convoy-load body`); several (comma-separated
    /// or repeated) are sent in turn, e.g. texts of different lengths.
    #[arg(long, value_delimiter = ',', required = true)]
    body: Vec<PathBuf>,
    /// Content type of the body, e.g. image/png for a raw image to a classify route.
    #[arg(long, default_value = "application/json")]
    content_type: String,
    /// v2 binary tensor extension: each body's first N bytes are its JSON header, sent as
    /// `Inference-Header-Content-Length: N` (`convoy-load body --binary` prints N).
    #[arg(long)]
    binary_header_length: Option<usize>,
    /// Rows per request for rows/s; default: `inputs[0].shape[0]` of a v2 body, the number
    /// of texts of an embeddings body, 1 for a non-JSON body.
    #[arg(long)]
    rows_per_request: Option<usize>,
    /// Tokio worker threads of the client. 1 by default: client and server share the
    /// machine, and every client core is one the server doesn't get.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout_s: f64,
}

#[derive(Args)]
struct ClosedArgs {
    /// Inference URL, e.g. http://127.0.0.1:8000/v2/models/mlp/infer. With several
    /// (comma-separated or repeated: servers configured differently), each level is
    /// measured on all of them in interleaved rounds (see --rounds).
    #[arg(long, value_delimiter = ',', required = true)]
    url: Vec<String>,
    /// Write all figures as JSON, one file per URL, in the same order.
    #[arg(long, value_delimiter = ',')]
    json: Vec<PathBuf>,
    /// Rounds per level: each URL gets --duration-s in this many slices (each after its
    /// own --warmup-s), the order of the URLs reversing every round, so a drift in the
    /// shared machine's load hits them alike.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
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
    /// Server's Prometheus page (e.g. http://127.0.0.1:8000/metrics), sampled once a
    /// second during each measured window.
    #[arg(long)]
    metrics_url: Option<String>,
    /// Metrics to report from it: gauges are averaged over the window, histograms give
    /// Δsum/Δcount.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "convoy_device_busy_ratio,convoy_batch_padding_ratio"
    )]
    metrics: Vec<String>,
}

#[derive(Args)]
struct OpenArgs {
    /// Inference URL(s). With several (comma-separated or repeated: servers configured
    /// differently), each rate is measured on all of them in interleaved rounds (see
    /// --rounds), so a drift in the machine's load hits them alike.
    #[arg(long, value_delimiter = ',', required = true)]
    url: Vec<String>,
    /// Write all figures as JSON, one file per URL, in the same order.
    #[arg(long, value_delimiter = ',')]
    json: Vec<PathBuf>,
    /// Rounds per rate: each URL gets --duration-s in this many slices (each after its
    /// own --warmup-s), the order of the URLs reversing every round. Every URL sees the
    /// same arrival schedule in a given round.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
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
    /// Arrivals finding this many requests outstanding (sending or waiting for a
    /// connection) are dropped (and counted).
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,
    /// HTTP connections, opened before the first rate: requests beyond that many wait
    /// for a free one (and the wait counts, latency starting at the intended send time).
    /// A fixed pool, as behind a gateway: thousands of fresh connections in a burst
    /// would overflow the server's accept backlog and measure TCP's 1 s SYN retry.
    #[arg(long, default_value_t = 64)]
    connections: usize,
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
    /// v2 body: reference file with input rows (e.g. models/mlp/reference.json).
    #[arg(long, requires = "rows", conflicts_with = "embeddings_model")]
    reference: Option<PathBuf>,
    /// v2 body: rows in the body.
    #[arg(long)]
    rows: Option<usize>,
    /// Embeddings body (`POST /v1/embeddings`) for this model, texts from a built-in list.
    #[arg(long)]
    embeddings_model: Option<String>,
    /// Embeddings body: texts in the body.
    #[arg(long, default_value_t = 1)]
    texts: usize,
    /// Embeddings body: short sentences, or texts of widely varied length.
    #[arg(long, value_enum, default_value = "short")]
    length: body::TextLength,
    /// Embeddings body: first entry of the list to use (bodies with different offsets
    /// carry different texts).
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// v2 body in the binary tensor extension: a JSON header, then the rows as raw
    /// little-endian FP32; prints `header_length=N` (pass it as --binary-header-length).
    #[arg(long, requires = "reference")]
    binary: bool,
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
        Command::Plot(args) => plot::run(&args),
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
    if !args.json.is_empty() && args.json.len() != args.url.len() {
        anyhow::bail!("--json: give one file per --url");
    }
    if args.url.len() > 1 && args.metrics_url.is_some() {
        anyhow::bail!("--metrics-url works with a single --url only");
    }
    let targets = h.targets(&args.url)?;
    let scraper = match &args.metrics_url {
        Some(url) => Some(prom::Scraper {
            url: reqwest::Url::parse(url)
                .with_context(|| format!("invalid --metrics-url {url}"))?,
            names: args.metrics.clone(),
        }),
        None => None,
    };
    let max_conc = args.concurrency.iter().copied().max().unwrap_or(1);
    let (warmup, duration) = (
        secs(args.warmup_s, "--warmup-s")?,
        secs(args.duration_s, "--duration-s")?,
    );
    let timeout = secs(h.timeout_s, "--timeout-s")?;
    let rounds = args.rounds.max(1);
    let many = targets.len() > 1;
    let levels = runtime(h.client_threads)?.block_on(async {
        let client = build_client(max_conc, timeout)?;
        for t in &targets {
            preflight(&client, t).await?;
        }
        let mut levels: Vec<Vec<closed::ClosedLevel>> = vec![Vec::new(); targets.len()];
        for &c in &args.concurrency {
            let c = c.max(1);
            let mut slices: Vec<closed::Slice> =
                targets.iter().map(|_| Default::default()).collect();
            for round in 0..rounds {
                for k in open::round_order(targets.len(), round) {
                    let slice = closed::run_slice(
                        &client,
                        &targets[k],
                        c,
                        warmup,
                        duration / rounds as u32,
                        scraper.as_ref(),
                    )
                    .await;
                    slices[k].merge(slice);
                }
            }
            for (k, slice) in slices.into_iter().enumerate() {
                let level = slice.summarise(c, warmup, targets[k].rows_per_request);
                if many {
                    println!("{}", targets[k].url);
                }
                closed::print_level(&level);
                levels[k].push(level);
            }
        }
        anyhow::Ok(levels)
    })?;
    for (k, levels) in levels.into_iter().enumerate() {
        write_json(
            args.json.get(k).map(PathBuf::as_path),
            &closed::ClosedReport {
                mode: "closed".into(),
                url: args.url[k].clone(),
                rows_per_request: targets[k].rows_per_request,
                client_threads: h.client_threads,
                levels,
            },
        )?;
    }
    Ok(())
}

fn run_open(args: OpenArgs) -> Result<()> {
    let h = &args.http;
    if !args.json.is_empty() && args.json.len() != args.url.len() {
        anyhow::bail!("--json: give one file per --url");
    }
    let targets = h.targets(&args.url)?;
    let (warmup, duration) = (
        secs(args.warmup_s, "--warmup-s")?,
        secs(args.duration_s, "--duration-s")?,
    );
    let timeout = secs(h.timeout_s, "--timeout-s")?;
    if args.rate.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
        anyhow::bail!("--rate values must be positive");
    }
    let rounds = args.rounds.max(1);
    let many = targets.len() > 1;
    let levels = runtime(h.client_threads)?.block_on(async {
        let client = build_client(args.connections, timeout)?;
        for t in &targets {
            preflight(&client, t).await?;
            http::open_connections(&client, &t.url, args.connections).await?;
        }
        let mut levels: Vec<Vec<open::OpenLevel>> = vec![Vec::new(); targets.len()];
        for (i, &rate) in args.rate.iter().enumerate() {
            let mut slices: Vec<open::Slice> = targets.iter().map(|_| Default::default()).collect();
            for round in 0..rounds {
                let params = open::OpenParams {
                    rate,
                    warmup,
                    duration: duration / rounds as u32,
                    max_in_flight: args.max_in_flight.max(1),
                    connections: args.connections.max(1),
                    // Same schedule for every URL within a round.
                    seed: args.seed.wrapping_add((i * rounds + round) as u64),
                };
                for k in open::round_order(targets.len(), round) {
                    let slice = open::run_slice(&client, &targets[k], &params).await;
                    slices[k].merge(slice);
                }
            }
            let params = open::OpenParams {
                rate,
                warmup,
                duration,
                max_in_flight: args.max_in_flight,
                connections: args.connections,
                seed: args.seed,
            };
            for (k, slice) in slices.into_iter().enumerate() {
                let level = slice.summarise(&params, targets[k].rows_per_request);
                if many {
                    println!("{}", targets[k].url);
                }
                open::print_level(&level);
                levels[k].push(level);
            }
        }
        anyhow::Ok(levels)
    })?;
    for (k, levels) in levels.into_iter().enumerate() {
        write_json(
            args.json.get(k).map(PathBuf::as_path),
            &open::OpenReport {
                mode: "open".into(),
                url: args.url[k].clone(),
                rows_per_request: targets[k].rows_per_request,
                client_threads: h.client_threads,
                max_in_flight: args.max_in_flight,
                connections: args.connections,
                levels,
            },
        )?;
    }
    Ok(())
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
    let (value, what) = match (&args.reference, args.rows, &args.embeddings_model) {
        (Some(path), Some(rows), None) if args.binary => {
            let reference = body::Reference::load(path)?;
            let (bytes, header_length) = body::build_binary_body(&reference, rows)?;
            std::fs::write(&args.out, bytes)
                .with_context(|| format!("writing {}", args.out.display()))?;
            println!(
                "wrote {rows} rows x {} features (binary, {header_length}-byte JSON header) to {}",
                reference.features(),
                args.out.display()
            );
            println!("header_length={header_length}");
            return Ok(());
        }
        (Some(path), Some(rows), None) => {
            let reference = body::Reference::load(path)?;
            let value = body::build_body(&reference, rows)?;
            (
                value,
                format!("{rows} rows x {} features", reference.features()),
            )
        }
        (None, _, Some(model)) => {
            let value = body::build_embeddings_body(model, args.texts, args.length, args.offset)?;
            (
                value,
                format!("{} {:?} text(s) for {model}", args.texts, args.length),
            )
        }
        _ => anyhow::bail!("give --reference and --rows (v2), or --embeddings-model"),
    };
    std::fs::write(&args.out, serde_json::to_vec(&value)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {what} to {}", args.out.display());
    Ok(())
}
