//! The report sections beyond batching vs no batching: instances, the cost of metrics,
//! the SLO-aware window against fixed delays, overload, and the task pipelines.
//!
//! Pure functions of loaded results (no I/O) so every figure and verdict in RESULTS.md is
//! unit-tested. Each section also contributes a headline line for the summary at the top,
//! and `problems` lists what makes a run unusable (the smoke run's only assertions).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use crate::closed::{ClosedLevel, ClosedReport};
use crate::open::{OpenLevel, OpenReport};
use crate::prom::MetricFigure;
use crate::stats::{LatencySummary, ValueSummary};

/// Outcomes that are the server's designed answer to load (refusal, expiry), not faults.
const LOAD_SHEDDING: [&str; 2] = ["http_429", "http_504"];

/// `[slo-<model>.json]`, written by run.sh: how the open-loop comparison was set up.
#[derive(Debug, Clone, Deserialize)]
pub struct SloManifest {
    pub model: String,
    /// Closed-loop c=64 throughput, req/s, and where it comes from.
    pub capacity_rps: f64,
    #[serde(default)]
    pub capacity_source: String,
    /// Shares of capacity offered, and the rates (req/s), level by level.
    pub fractions: Vec<f64>,
    pub rates: Vec<f64>,
    pub target_ms: f64,
    pub delays_us: Vec<u64>,
    /// Why this target (one sentence, from run.sh).
    #[serde(default)]
    pub target_why: String,
    /// Interleaved rounds the open loop split each config's measurement into.
    #[serde(default = "one")]
    pub rounds: u64,
}

fn one() -> u64 {
    1
}

/// `[metrics-rss.json]`: VmRSS of the two metrics-cost servers around the section.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsRss {
    pub on_before_kib: u64,
    pub on_after_kib: u64,
    pub off_before_kib: u64,
    pub off_after_kib: u64,
}

/// One SLO comparison: the manifest and the open-loop run of each config, in order
/// (fixed delays first, then the target).
pub struct Slo {
    pub manifest: SloManifest,
    pub runs: Vec<(String, OpenReport)>,
}

/// `[overload.json]`, written by run.sh.
#[derive(Debug, Clone, Deserialize)]
pub struct OverloadManifest {
    pub capacity_rps: f64,
    pub multiple: f64,
    pub rate: f64,
    pub timeout_s: f64,
    pub max_batch_size: u64,
    pub max_queue_size: u64,
    pub latency_target_ms: f64,
    pub layers: u64,
    pub width: u64,
    #[serde(default)]
    pub inputs: u64,
    #[serde(default = "one")]
    pub rows_per_request: u64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub rss_peak_kib: u64,
    /// Queue bound of the shedding server (0: no shedding run).
    #[serde(default)]
    pub shed_max_queue_size: u64,
}

pub struct Overload {
    pub manifest: OverloadManifest,
    /// Closed loop that measured the capacity.
    pub capacity: ClosedReport,
    pub open: OpenReport,
    /// The same open loop on a server that sheds beyond the target instead of holding a
    /// small queue (`[overload-shed-open.json]`, absent in runs before it existed).
    pub shed: Option<OpenReport>,
}

/// `[pipelines.json]`, written by run.sh: what was measured, or why not.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PipelinesManifest {
    /// "measured", or the reason it was not (e.g. the model file is absent).
    pub minilm: String,
    pub efficientnet: String,
    /// The image sent to the classifier (path as run.sh saw it).
    #[serde(default)]
    pub sample: String,
    #[serde(default)]
    pub minilm_bucketing: Option<bool>,
}

pub struct Pipelines {
    pub manifest: PipelinesManifest,
    /// (body label, bucketing label, run).
    pub minilm: Vec<(String, String, ClosedReport)>,
    pub efficientnet: Option<ClosedReport>,
}

/// Everything beyond the batching comparison; absent parts were not run.
#[derive(Default)]
pub struct Extra {
    /// Batched config with `[instances] count = 1` and `= 2`, measured interleaved.
    pub instances: Option<(ClosedReport, ClosedReport)>,
    /// The v2 route with 64-row requests as JSON and as binary tensors, interleaved.
    pub wire: Option<(ClosedReport, ClosedReport)>,
    /// Batched config with metrics recorded and with `--disable-metrics`, interleaved.
    pub metrics_cost: Option<(ClosedReport, ClosedReport)>,
    /// Both servers' RSS before and after that section.
    pub metrics_rss: Option<MetricsRss>,
    pub slo: Vec<Slo>,
    pub overload: Option<Overload>,
    pub pipelines: Option<Pipelines>,
    /// The comparison with other servers (run.sh's last section), or why it did not run.
    pub peers: Option<crate::peers::Peers>,
    /// Charts drawn by `convoy-load plot`: key ("batching", "slo-mlp", "minilm", ...) to
    /// the SVG's path relative to the markdown.
    pub plots: BTreeMap<String, String>,
    /// The smoke run: missing sections say so instead of "not measured".
    pub quick: bool,
}

/// The markdown image of a chart, when it was drawn.
pub fn plot_link(out: &mut String, x: &Extra, key: &str, alt: &str) {
    if let Some(path) = x.plots.get(key) {
        let _ = writeln!(out, "\n![{alt}]({path})");
    }
}

/// A target's verdict, as every section of the report words it.
pub fn yes_no(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

fn level_at(r: &ClosedReport, c: usize) -> Option<&ClosedLevel> {
    r.levels.iter().find(|l| l.concurrency == c)
}

/// The last (highest-concurrency) level of a closed run.
fn top(r: &ClosedReport) -> Option<&ClosedLevel> {
    r.levels.iter().max_by_key(|l| l.concurrency)
}

fn ms_of_us(v: Option<&ValueSummary>, pick: fn(&ValueSummary) -> f64) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{:.3}", pick(v) / 1000.0))
}

/// Mean of the gauge series of `name` (averaged over instances), if scraped.
fn gauge_mean(metrics: &BTreeMap<String, MetricFigure>, name: &str) -> Option<f64> {
    let v: Vec<f64> = metrics
        .iter()
        .filter(|(s, f)| crate::prom::metric_name(s) == name && f.kind == "gauge")
        .map(|(_, f)| f.mean)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Δsum/Δcount of histogram `name` over all its series, if any observation was made.
fn histogram_mean(metrics: &BTreeMap<String, MetricFigure>, name: &str) -> Option<f64> {
    let (sum, n) = metrics
        .iter()
        .filter(|(s, f)| crate::prom::metric_name(s) == name && f.kind == "histogram")
        .fold((0.0, 0u64), |(s, n), (_, f)| {
            (s + f.sum.unwrap_or(0.0), n + f.samples)
        });
    (n > 0).then(|| sum / n as f64)
}

fn not_run(out: &mut String, quick: bool) {
    out.push_str(if quick {
        "Not run in `--quick` mode.\n"
    } else {
        "Not measured in this run.\n"
    });
}

// --- instances -----------------------------------------------------------------------

/// The v2 JSON body against the same rows in the binary tensor extension.
pub fn wire(out: &mut String, x: &Extra) -> Option<String> {
    out.push_str("\n## v2 JSON vs binary tensors (closed loop)\n\n");
    let Some((json, binary)) = &x.wire else {
        not_run(out, x.quick);
        return None;
    };
    let rows = json.rows_per_request;
    let secs = top(binary).map_or(0.0, |l| l.duration_s);
    let _ = write!(
        out,
        "The batched MLP on `POST /v2/models/mlp/infer` with {rows} rows per request, sent as \
         a JSON body (`data`: {rows} × 10 numbers) and as the same rows in the binary tensor \
         extension (a JSON header with `binary_data_size`, then {} bytes of little-endian \
         FP32, `Inference-Header-Content-Length`), as Triton's clients send them. Responses \
         are JSON in both. One server, the JSON levels first, then the binary ones, \
         {secs:.0} s measured each.\n\n\
         | concurrency | JSON rows/s | p50 ms | p99 ms | binary rows/s | p50 ms | p99 ms | \
         binary / JSON |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        rows * 40
    );
    for b in &binary.levels {
        let Some(j) = level_at(json, b.concurrency) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.3} | {:.3} | {:.0} | {:.3} | {:.3} | **{}** |",
            b.concurrency,
            j.rows_per_s,
            j.latency.p50_ms,
            j.latency.p99_ms,
            b.rows_per_s,
            b.latency.p50_ms,
            b.latency.p99_ms,
            crate::render::ratio(b.rows_per_s, j.rows_per_s)
        );
    }
    let (j, b) = (top(json)?, top(binary)?);
    Some(format!(
        "v2 binary tensors vs JSON, {rows}-row requests at c={}: **{}** the rows/s ({:.0} vs \
         {:.0}).",
        b.concurrency,
        crate::render::ratio(b.rows_per_s, j.rows_per_s),
        b.rows_per_s,
        j.rows_per_s
    ))
}

pub fn instances(out: &mut String, x: &Extra) -> Option<String> {
    out.push_str("\n## Instances: one device worker vs two (closed loop)\n\n");
    let Some((one, two)) = &x.instances else {
        not_run(out, x.quick);
        return None;
    };
    let rounds = top(two).map_or(1, |l| l.slice_rps.len().max(1));
    let _ = write!(
        out,
        "The batched config with `[instances] count = 1` (the default on CPU) and with \
         `count = 2` (two ONNX Runtime sessions, each with its own device worker thread and \
         1 intra-op thread, fed from the one queue). Both servers up at once; each level \
         is measured on both in {rounds} interleaved round(s), the order reversing each \
         round. One-row requests.\n\n\
         | concurrency | count = 1 req/s | p50 ms | p99 ms | count = 2 req/s | p50 ms | p99 ms | \
         2 / 1 throughput |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for t in &two.levels {
        let Some(o) = level_at(one, t.concurrency) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.3} | {:.3} | {:.0} | {:.3} | {:.3} | **{}** |",
            t.concurrency,
            o.requests_per_s,
            o.latency.p50_ms,
            o.latency.p99_ms,
            t.requests_per_s,
            t.latency.p50_ms,
            t.latency.p99_ms,
            crate::render::ratio(t.requests_per_s, o.requests_per_s)
        );
    }
    let (o, t) = (top(one)?, top(two)?);
    let r = if o.requests_per_s > 0.0 {
        t.requests_per_s / o.requests_per_s
    } else {
        0.0
    };
    let compute = o
        .server_timing
        .get("compute_us")
        .map_or_else(String::new, |v| {
            format!(
                " (a batch of {:.0} rows costs {:.0} µs)",
                batch_rows(o),
                v.mean
            )
        });
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    out.push('\n');
    if r < 1.05 {
        let _ = writeln!(
            out,
            "At c={} a second instance gives {r:.2}× the throughput of one. The device is not \
             what limits this server on CPU{compute}: the HTTP and JSON path is, and it shares \
             the {cores} cores with the device workers and the load generator, so a second \
             worker only adds a thread competing for the same cores and a second copy of \
             the session. **The default therefore stays at 1 instance on CPU**; more \
             instances pay where the device itself is the bottleneck and has parallel \
             capacity of its own (a GPU, or a CPU with cores to spare for it).",
            t.concurrency
        );
    } else {
        let _ = writeln!(
            out,
            "At c={} a second instance gives {r:.2}× the throughput of one{compute}. The \
             device's own time is a small share of each request here, so the gain comes \
             from two workers overlapping batch hand-off and result delivery, not from more \
             compute. **The default stays at 1 instance on CPU** all the same: every \
             instance is a full session (weights and arena) and a thread that competes with \
             the HTTP path for the same {cores} cores, the gain depends on the machine (and \
             on its other load), and for a model whose batches do fill the device a second \
             CPU session just splits the same cores. It is a per-deployment setting, and \
             this table is the measurement to set it with.",
            t.concurrency
        );
    }
    Some(format!(
        "Instances: `count = 2` / `count = 1` at c={}: **{r:.2}×** throughput (default stays 1 on CPU).",
        t.concurrency
    ))
}

fn batch_rows(l: &ClosedLevel) -> f64 {
    l.server_timing.get("batch_rows").map_or(0.0, |v| v.mean)
}

// --- metrics cost ----------------------------------------------------------------------

/// Mean and the half-width of a ~95 % interval (2 standard errors) of `v`.
fn mean_and_spread(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, 2.0 * (var / n).sqrt())
}

pub fn metrics_cost(out: &mut String, x: &Extra) -> Option<String> {
    out.push_str("\n## Cost of recording metrics\n\n");
    let Some((on, off)) = &x.metrics_cost else {
        not_run(out, x.quick);
        return None;
    };
    let (a, b) = (top(on)?, top(off)?);
    let rounds = a.slice_rps.len().min(b.slice_rps.len());
    let _ = write!(
        out,
        "Two servers with the batched config, one started with `--disable-metrics` (nothing \
         recorded, `/metrics` empty), both up for the whole section. The closed loop at \
         c={c} (saturation) alternates between them in {rounds} rounds of {slice:.0} s each \
         (on→off, then off→on, ...), so a change in the shared machine's load hits both \
         alike. Nobody scrapes `/metrics` meanwhile: this is the cost of *recording*.\n\n\
         | round | order | metrics on req/s | metrics off req/s | on / off |\n\
         |---:|---|---:|---:|---:|\n",
        c = a.concurrency,
        slice = a.duration_s / rounds.max(1) as f64,
    );
    let mut ratios = Vec::new();
    for i in 0..rounds {
        let (r_on, r_off) = (a.slice_rps[i], b.slice_rps[i]);
        if r_off > 0.0 {
            ratios.push(r_on / r_off);
        }
        let _ = writeln!(
            out,
            "| {} | {} | {r_on:.0} | {r_off:.0} | {} |",
            i + 1,
            if i % 2 == 0 { "on, off" } else { "off, on" },
            crate::render::ratio(r_on, r_off)
        );
    }
    let r = if b.requests_per_s > 0.0 {
        a.requests_per_s / b.requests_per_s
    } else {
        0.0
    };
    let _ = writeln!(
        out,
        "| **all** | | **{:.0}** (p99 {:.3} ms) | **{:.0}** (p99 {:.3} ms) | **{r:.3}** |",
        a.requests_per_s, a.latency.p99_ms, b.requests_per_s, b.latency.p99_ms
    );
    let cost = (1.0 - r) * 100.0;
    let (mean, half) = mean_and_spread(&ratios);
    let (lo, hi) = ((1.0 - mean - half) * 100.0, (1.0 - mean + half) * 100.0);
    let verdict = if rounds < 2 {
        yes_no(cost < 2.0).to_string()
    } else if hi < 2.0 {
        "met".to_string()
    } else if lo > 2.0 {
        "**not met**".to_string()
    } else {
        format!("not resolved by this run: the rounds put the cost between {lo:.1} % and {hi:.1} %")
    };
    let _ = writeln!(
        out,
        "\n**Recording cost: {cost:.1} % of throughput** (all on / all off = {r:.3}). From \
         the {rounds} paired rounds: mean ratio {mean:.3} ± {half:.3} (2 standard errors), \
         i.e. a cost between {lo:.1} % and {hi:.1} %. Target < 2 %: {verdict}."
    );
    let mut head = format!(
        "Metrics recording at c={}: on / off throughput **{r:.3}** (cost {cost:.1} %, rounds: {lo:.1} to {hi:.1} %; target < 2 %: {verdict}).",
        a.concurrency
    );
    if let Some(m) = &x.metrics_rss {
        let growth = |before: u64, after: u64| (after as f64 - before as f64) / 1024.0;
        let (on_g, off_g) = (
            growth(m.on_before_kib, m.on_after_kib),
            growth(m.off_before_kib, m.off_after_kib),
        );
        let served = on.levels.iter().map(|l| l.ok).sum::<u64>().max(1);
        let _ = writeln!(
            out,
            "\nMemory: over the section (nobody scraping), the server recording metrics grew \
             from {:.1} to {:.1} MiB (**{on_g:+.1} MiB**, {:.0} bytes per request served), the \
             one with `--disable-metrics` from {:.1} to {:.1} MiB ({off_g:+.1} MiB). \
             Convoy's Prometheus recorder keeps every histogram sample until `/metrics` is \
             rendered, so an unscraped server grows with its traffic; a scrape (or the \
             exporter's periodic upkeep, which the server does not run) drains them.",
            mib(m.on_before_kib),
            mib(m.on_after_kib),
            on_g * 1024.0 * 1024.0 / served as f64,
            mib(m.off_before_kib),
            mib(m.off_after_kib),
        );
        let _ = write!(
            head,
            " Unscraped, its RSS grew {on_g:+.1} MiB over the section vs {off_g:+.1} MiB without metrics."
        );
    }
    Some(head)
}

// --- SLO window ------------------------------------------------------------------------

fn open_level(r: &OpenReport) -> Option<&OpenLevel> {
    r.levels.first()
}

fn errors_cell(l: &OpenLevel) -> String {
    if l.errors.is_empty() {
        "0".into()
    } else {
        crate::stats::format_errors(&l.errors)
    }
}

/// Whether the client found the server saturated at a level: arrivals dropped, or
/// requests commonly waiting for a free connection.
fn saturated(l: &OpenLevel) -> bool {
    l.dropped > 0 || l.connection_wait.p50_ms > 1.0
}

pub fn slo(out: &mut String, s: &Slo, quick: bool) -> Vec<String> {
    let m = &s.manifest;
    let mut heads = Vec::new();
    let _ = write!(
        out,
        "\n## SLO-aware window vs fixed delays: {} (open loop)\n\n",
        m.model
    );
    let first = s.runs.first().map(|(_, r)| r);
    let _ = write!(
        out,
        "Capacity {:.0} req/s: {}. Poisson arrivals at {} of it; latency from each \
         request's intended send time, over {} connections (a request finding all busy \
         waits, and the wait counts). One server per config, all up at once; the open loop \
         visits them in {} interleaved round(s) (the order reversing each round, every \
         config getting the same seeded schedule within a round), {:.0} s measured per \
         config and load in all, so a change in the shared machine's load hits every config \
         alike. Fixed windows: `max_queue_delay_us` = {}. SLO-aware: \
         `latency_target_ms = {}` (no fixed delay, Convoy's default): the window follows \
         the learned batch cost, growing a batch while the device is busy and growing still \
         pays, waiting at most the batch's fixed cost while it idles (and only where such \
         waits have been catching company), never past T for the \
         oldest request's queue + compute time. {}\n\n\
         `server p99` is the p99 of the server's own time (queue + compute, and pre/post \
         on task routes) from the response headers: the part T governs; the rest is HTTP, \
         JSON and the shared CPU. `conn. wait p50` above zero, or drops, mean the server \
         was saturated at that load.\n",
        m.capacity_rps,
        if m.capacity_source.is_empty() {
            "closed loop at c=64, measured just before in this run"
        } else {
            &m.capacity_source
        },
        m.fractions
            .iter()
            .zip(&m.rates)
            .map(|(f, r)| format!("{:.0} % ({r:.0} req/s)", f * 100.0))
            .collect::<Vec<_>>()
            .join(" and "),
        first.map_or(0, |r| r.connections),
        m.rounds,
        first
            .and_then(|r| r.levels.first())
            .map_or(0.0, |l| l.duration_s),
        m.delays_us
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        m.target_ms,
        m.target_why
    );
    if s.runs.is_empty() {
        out.push('\n');
        not_run(out, quick);
        return heads;
    }
    for (i, fraction) in m.fractions.iter().enumerate() {
        let _ = write!(
            out,
            "\n### {} at {:.0} % of capacity ({:.0} req/s)\n\n\
             | config | sent req/s | ok req/s | p50 ms | p99 ms | server p99 ms | \
             mean batch rows | conn. wait p50 ms | errors | dropped | p99 ≤ T |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|\n",
            m.model,
            fraction * 100.0,
            m.rates.get(i).copied().unwrap_or(0.0)
        );
        let at = |r: &OpenReport| r.levels.get(i).cloned();
        for (label, r) in &s.runs {
            let Some(l) = at(r) else { continue };
            let server_p99 = server_p99_ms(&l);
            let _ = writeln!(
                out,
                "| {label} | {:.0} | {:.0} | {:.3} | {:.3} | {} | {} | {:.3} | {} | {} | {} |",
                l.achieved_rate,
                l.requests_per_s,
                l.latency.p50_ms,
                l.latency.p99_ms,
                opt(server_p99, 3),
                opt(l.server_timing.get("batch_rows").map(|v| v.mean), 1),
                l.connection_wait.p50_ms,
                errors_cell(&l),
                l.dropped,
                if l.latency.p99_ms <= m.target_ms {
                    "yes"
                } else {
                    "no"
                }
            );
        }
        let target = s
            .runs
            .iter()
            .find(|(label, _)| label.starts_with("latency_target"))
            .and_then(|(_, r)| at(r));
        let Some(target) = target else { continue };
        let best_fixed = s
            .runs
            .iter()
            .filter(|(label, _)| !label.starts_with("latency_target"))
            .filter_map(|(label, r)| at(r).map(|l| (label, l)))
            .max_by(|a, b| a.1.requests_per_s.total_cmp(&b.1.requests_per_s));
        let server_p99 = server_p99_ms(&target);
        let mut verdict = format!(
            "at {:.0} % of capacity, **latency_target_ms = {}**: end-to-end p99 {:.3} ms (≤ T: {})",
            fraction * 100.0,
            m.target_ms,
            target.latency.p99_ms,
            yes_no(target.latency.p99_ms <= m.target_ms)
        );
        if let Some(sp) = server_p99 {
            let _ = write!(
                verdict,
                ", server-side p99 {sp:.3} ms (≤ T: {})",
                yes_no(sp <= m.target_ms)
            );
        }
        if let Some((label, b)) = best_fixed {
            let r = if b.requests_per_s > 0.0 {
                target.requests_per_s / b.requests_per_s
            } else {
                0.0
            };
            // Same schedule for every config: throughput differs only by failures, drops
            // and when the last response came; 1 % absorbs the latter.
            let _ = write!(
                verdict,
                "; throughput {:.0} req/s vs {:.0} for the best fixed delay ({label}): \
                 {r:.3}× (≥ best fixed, within 1 %: {})",
                target.requests_per_s,
                b.requests_per_s,
                yes_no(r >= 0.99)
            );
        }
        let any_saturated = s
            .runs
            .iter()
            .filter_map(|(_, r)| at(r))
            .any(|l| saturated(&l));
        if any_saturated {
            verdict.push_str(
                ". The server was saturated at this load on this machine (drops or waits for \
                 a connection), so these rows compare overload behaviour more than windows",
            );
        }
        let _ = writeln!(out, "\nVerdict {verdict}.");
        heads.push(format!("SLO window ({}) {verdict}.", m.model));
    }
    heads
}

// --- overload --------------------------------------------------------------------------

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn overload(out: &mut String, x: &Extra) -> Option<String> {
    out.push_str("\n## Overload: a device-bound model far beyond capacity\n\n");
    let Some(o) = &x.overload else {
        not_run(out, x.quick);
        return None;
    };
    let m = &o.manifest;
    let l = open_level(&o.open)?;
    let cap = top(&o.capacity)?;
    let compute = cap
        .server_timing
        .get("compute_us")
        .map_or_else(|| "n/a".into(), |v| format!("{:.2}", v.mean / 1000.0));
    let _ = write!(
        out,
        "The MLP cannot show this: its HTTP path saturates long before its device does. So \
         run.sh generates a synthetic model (`loadtests/helpers.py slow-model`: FP32 \
         [N, {inputs}] → [N, {w}] through {layers} MatMul + Relu layers of width {w}; the \
         input is narrow so that refusing a request costs the server little) and serves it with \
         `max_batch_size = {mbs}`, `max_queue_size = {mqs}` rows and \
         `latency_target_ms = {t}`. Capacity, closed loop c={c}: **{cap_rps:.0} req/s** \
         (mean batch {rows:.1} rows, {compute} ms of device time per batch), with \
         {rpr} row(s) per request: on CPU the saturated device worker holds one of the \
         {cores} cores, and the HTTP path, which costs per request where the device costs \
         per row, must answer the overload with what is left (shared with the load \
         generator). Then Poisson arrivals at {mult:.1}× that, {rate:.0} req/s, for {d} s; \
         the client gives up on a request after {to} s (a timeout would be an unanswered \
         request); `/metrics` is scraped once a second meanwhile, as Prometheus would (see \
         the metrics section for an unscraped server's memory). Achieved send rate \
         {sent:.0} req/s = **{sent_mult:.1}× capacity**.\n\n\
         | outcome | requests | share | p50 ms | p99 ms | max ms | p99 from actual send ms |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
        w = m.width,
        inputs = m.inputs,
        layers = m.layers,
        mbs = m.max_batch_size,
        mqs = m.max_queue_size,
        t = m.latency_target_ms,
        c = cap.concurrency,
        cap_rps = m.capacity_rps,
        rows = batch_rows(cap),
        mult = m.multiple,
        rpr = m.rows_per_request,
        cores = std::thread::available_parallelism().map_or(0, |n| n.get()),
        rate = m.rate,
        d = l.duration_s,
        to = m.timeout_s,
        sent = l.achieved_rate,
        sent_mult = if m.capacity_rps > 0.0 {
            l.achieved_rate / m.capacity_rps
        } else {
            0.0
        },
    );
    let total = l.sent.max(1) as f64;
    for (status, s) in &l.latency_by_status {
        let service = l.service_by_status.get(status).cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} % | {:.3} | {:.3} | {:.3} | {:.3} |",
            status.replace("http_", "HTTP "),
            s.count,
            100.0 * s.count as f64 / total,
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            service.p99_ms
        );
    }
    if l.dropped > 0 {
        let _ = writeln!(
            out,
            "| not sent (client's in-flight cap) | {} | | | | | |",
            l.dropped
        );
    }
    let empty = LatencySummary::default();
    let refused = l.latency_by_status.get("http_429").unwrap_or(&empty);
    let admitted = l.latency_by_status.get("http_200").unwrap_or(&empty);
    let unanswered = unanswered(l);
    let other_http: u64 = l
        .errors
        .iter()
        .filter(|(k, _)| k.starts_with("http_") && !LOAD_SHEDDING.contains(&k.as_str()))
        .map(|(_, n)| n)
        .sum();
    let growth = m.rss_after_kib as f64 - m.rss_before_kib as f64;
    let server_p99 = server_p99_ms(l);
    let admitted_server = opt(server_p99, 3);
    // What `latency_target_ms` governs: the server's queue + compute time.
    let server_met =
        yes_no(admitted.count > 0 && server_p99.is_some_and(|p| p <= m.latency_target_ms));
    let refused_wire = l
        .service_by_status
        .get("http_429")
        .map_or(f64::INFINITY, |s| s.p99_ms);
    let _ = writeln!(
        out,
        "\n- Every request answered: {} ({unanswered} timeouts or transport errors, \
         {other_http} answers other than 200/429/504).\n\
         - 429 latency p99: **{:.3} ms** on the wire (actual send to answer; target < 5 ms: \
         {}); {:.3} ms from the intended send time, which adds the client's own scheduling \
         lag and the wait for a free connection on the shared cores.\n\
         - Admitted (200) p99, the server's own queue + compute time (what \
         `latency_target_ms` governs), from the response headers: **{admitted_server} ms** \
         (target ≤ {t} ms: {server_met}); end to end from the intended send: {:.3} ms \
         (≤ {t} ms: {}), which adds HTTP, the client's lag and the wait for a connection on \
         the two shared cores.\n\
         - Server RSS (VmRSS): {:.1} MiB before the overload, {:.1} MiB after it \
         ({growth:+.0} KiB); peak (VmHWM) over the server's life {:.1} MiB. The queue is \
         bounded in rows, so memory stays bounded however many requests arrive.",
        yes_no(unanswered == 0 && other_http == 0),
        refused_wire,
        yes_no(refused.count > 0 && refused_wire < 5.0),
        refused.p99_ms,
        admitted.p99_ms,
        yes_no(admitted.count > 0 && admitted.p99_ms <= m.latency_target_ms),
        mib(m.rss_before_kib),
        mib(m.rss_after_kib),
        mib(m.rss_peak_kib),
        t = m.latency_target_ms,
    );
    let mut shed_head = String::new();
    if let Some(shed) = o.shed.as_ref().and_then(open_level) {
        let _ = write!(
            out,
            "\n### Shedding instead of a small queue\n\n\
             The same model, rate and duration, right after, on a server whose config \
             replaces `max_queue_size = {mqs}` with `shed_beyond_target = true` (and a queue \
             bound of {sq} rows): a request is admitted only if the queue ahead of it and its \
             own batch are predicted, at the learned batch cost times the learned margin, to \
             finish inside the {t} ms target; no queue size is tuned to the model.\n\n\
             | admission | 200 answered/s | 429 share | 429 p99 on the wire ms | admitted p50 / p99 in the server ms | admitted p99 end to end ms | unanswered |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
            mqs = m.max_queue_size,
            sq = m.shed_max_queue_size,
            t = m.latency_target_ms,
        );
        out.push_str(&admission_row(
            &format!("`max_queue_size = {}`", m.max_queue_size),
            l,
        ));
        out.push_str(&admission_row("`shed_beyond_target = true`", shed));
        let shed_p99 = server_p99_ms(shed);
        let shed_met = yes_no(shed.ok > 0 && shed_p99.is_some_and(|p| p <= m.latency_target_ms));
        let _ = writeln!(
            out,
            "\nWith shedding, admitted requests' p99 in the server: **{} ms** (≤ {} ms: {}). \
             Shedding admits a request while it is predicted to finish inside the target, \
             with a margin meant to leave 1 % of admitted requests past it: their p99 sits at \
             the target by design, and a burst of slowness the margin has not learned yet \
             puts it past. The small queue keeps them well inside, but its size had to be \
             chosen for this model on this machine.",
            opt(shed_p99, 3),
            m.latency_target_ms,
            shed_met,
        );
        shed_head = format!(
            " With `shed_beyond_target` instead of the small queue: admitted p99 in the \
             server {} ms (≤ {} ms: {}).",
            opt(shed_p99, 1),
            m.latency_target_ms,
            shed_met,
        );
    }
    Some(format!(
        "Overload at {:.1}× capacity: 429 p99 **{:.2} ms** on the wire (< 5 ms: {}; {:.1} ms \
         from the intended send), admitted p99 in the server **{admitted_server} ms** \
         (≤ {t} ms: {server_met}; end to end {:.1} ms: {}), {unanswered} \
         unanswered, RSS {:.0} → {:.0} MiB.{shed_head}",
        l.achieved_rate / m.capacity_rps.max(1e-9),
        refused_wire,
        yes_no(refused.count > 0 && refused_wire < 5.0),
        refused.p99_ms,
        admitted.p99_ms,
        yes_no(admitted.count > 0 && admitted.p99_ms <= m.latency_target_ms),
        mib(m.rss_before_kib),
        mib(m.rss_after_kib),
        t = m.latency_target_ms,
    ))
}

/// The server's own p99 (queue + compute, from the response headers), in ms.
fn server_p99_ms(l: &OpenLevel) -> Option<f64> {
    l.server_timing
        .get(crate::stats::SERVER_TOTAL)
        .map(|v| v.p99 / 1000.0)
}

/// Requests that got no HTTP answer at all (timeouts, transport errors).
fn unanswered(l: &OpenLevel) -> u64 {
    l.errors
        .iter()
        .filter(|(k, _)| !k.starts_with("http_"))
        .map(|(_, n)| n)
        .sum()
}

/// One row of the admission comparison (see [`overload`]).
fn admission_row(label: &str, l: &OpenLevel) -> String {
    let empty = LatencySummary::default();
    let refused = l.latency_by_status.get("http_429").unwrap_or(&empty).count;
    let wire = l.service_by_status.get("http_429").map(|s| s.p99_ms);
    let admitted = l.latency_by_status.get("http_200").map(|s| s.p99_ms);
    let server = l.server_timing.get(crate::stats::SERVER_TOTAL);
    let unanswered = unanswered(l);
    format!(
        "| {label} | {:.0} | {:.1} % | {} | {} / {} | {} | {unanswered} |\n",
        l.ok as f64 / l.duration_s.max(1e-9),
        100.0 * refused as f64 / l.sent.max(1) as f64,
        opt(wire, 3),
        opt(server.map(|v| v.p50 / 1000.0), 3),
        opt(server.map(|v| v.p99 / 1000.0), 3),
        opt(admitted, 3),
    )
}

// --- pipelines -------------------------------------------------------------------------

const BUSY: &str = "convoy_device_busy_ratio";
const PADDING: &str = "convoy_batch_padding_ratio";
const BATCH: &str = "convoy_batch_size_rows";

fn stage_cells(l: &ClosedLevel) -> String {
    ["pre_us", "queue_us", "infer_us", "post_us"]
        .iter()
        .map(|k| ms_of_us(l.server_timing.get(*k), |v| v.mean))
        .collect::<Vec<_>>()
        .join(" | ")
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.digits$}"))
}

pub fn pipelines(out: &mut String, x: &Extra) -> Vec<String> {
    let mut heads = Vec::new();
    out.push_str("\n## Pipelines: text embeddings and image classification\n");
    let Some(p) = &x.pipelines else {
        out.push('\n');
        not_run(out, x.quick);
        return heads;
    };
    out.push_str("\n### MiniLM, `POST /v1/embeddings`\n\n");
    if p.minilm.is_empty() {
        let _ = writeln!(out, "Skipped: {}.", p.manifest.minilm);
    } else {
        out.push_str(
            "Closed loop, one text per request. `short`: a one-sentence text (8 such \
             bodies, sent in turn). `mixed`: 8 bodies of 1 to ~100 words (up to ~140 \
             tokens) sent in turn, so every batch mixes lengths; that traffic is run with \
             length bucketing on and off. Stage times are the means of the response headers \
             (`x-convoy-pre-us`, `-queue-us`, `-infer-us`, `-post-us`); batch rows, padding \
             (share of a batch's token slots that are padding, Δsum/Δcount of \
             `convoy_batch_padding_ratio`) and device busy (`convoy_device_busy_ratio`, \
             averaged over the window's one-second samples) are scraped from `/metrics` \
             during each measured window.\n\n\
             | body | bucketing | c | texts/s | p50 ms | p99 ms | pre ms | queue ms | \
             infer ms | post ms | batch rows | padding | device busy |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for (body, bucketing, r) in &p.minilm {
            for l in &r.levels {
                let _ = writeln!(
                    out,
                    "| {body} | {bucketing} | {} | {:.0} | {:.3} | {:.3} | {} | {} | {} | {} |",
                    l.concurrency,
                    l.rows_per_s,
                    l.latency.p50_ms,
                    l.latency.p99_ms,
                    stage_cells(l),
                    opt(histogram_mean(&l.metrics, BATCH), 1),
                    histogram_mean(&l.metrics, PADDING)
                        .map_or_else(|| "–".into(), |v| format!("{:.1} %", v * 100.0)),
                    opt(gauge_mean(&l.metrics, BUSY), 2),
                );
            }
        }
        plot_link(
            out,
            x,
            "minilm",
            "MiniLM: requests/s (one text each) vs concurrency, short and mixed lengths",
        );
        if let Some((_, _, short)) = p.minilm.iter().find(|(b, _, _)| b == "short") {
            if let Some(busy) = top(short).and_then(|l| gauge_mean(&l.metrics, BUSY)) {
                let line = format!(
                    "MiniLM device busy at c={} (short texts): **{busy:.2}** (target ≥ 0.9: {})",
                    top(short).map_or(0, |l| l.concurrency),
                    yes_no(busy >= 0.9)
                );
                let _ = writeln!(out, "\n{line}.");
                heads.push(format!("{line}."));
            }
        }
        let pad = |label: &str| {
            p.minilm
                .iter()
                .find(|(b, k, _)| b == "mixed" && k == label)
                .and_then(|(_, _, r)| top(r))
                .and_then(|l| histogram_mean(&l.metrics, PADDING).map(|v| (l, v)))
        };
        if let (Some((on_l, on)), Some((off_l, off))) = (pad("on"), pad("off")) {
            let line = format!(
                "MiniLM padding at c={} with mixed lengths: **{:.1} %** of token slots with \
                 bucketing vs **{:.1} %** without; throughput {:.0} vs {:.0} texts/s ({})",
                on_l.concurrency,
                on * 100.0,
                off * 100.0,
                on_l.rows_per_s,
                off_l.rows_per_s,
                crate::render::ratio(on_l.rows_per_s, off_l.rows_per_s)
            );
            let _ = writeln!(out, "\n{line}.");
            heads.push(format!("{line}."));
        }
    }
    out.push_str("\n### EfficientNet-Lite0, `POST /v1/models/efficientnet_lite0/classify`\n\n");
    match &p.efficientnet {
        None => {
            let _ = writeln!(out, "Skipped: {}.", p.manifest.efficientnet);
        }
        Some(r) => {
            let _ = write!(
                out,
                "Closed loop, the raw PNG as the body (`content-type: image/png`, {}): \
                 decode, resize, crop and normalise on the pre-processing pool, then the \
                 batcher.\n\n\
                 | c | images/s | p50 ms | p99 ms | pre ms | queue ms | infer ms | post ms | \
                 batch rows | device busy |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
                p.manifest.sample
            );
            for l in &r.levels {
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {:.3} | {:.3} | {} | {} | {} |",
                    l.concurrency,
                    l.rows_per_s,
                    l.latency.p50_ms,
                    l.latency.p99_ms,
                    stage_cells(l),
                    opt(histogram_mean(&l.metrics, BATCH), 1),
                    opt(gauge_mean(&l.metrics, BUSY), 2),
                );
            }
            if let Some(l) = top(r) {
                heads.push(format!(
                    "EfficientNet classify (raw PNG) at c={}: {:.0} images/s, p99 {:.1} ms.",
                    l.concurrency, l.rows_per_s, l.latency.p99_ms
                ));
            }
        }
    }
    heads
}

// --- sanity ----------------------------------------------------------------------------

fn closed_problems(name: &str, r: &ClosedReport, out: &mut Vec<String>) {
    for l in &r.levels {
        if l.ok == 0 || l.requests_per_s <= 0.0 {
            out.push(format!("{name} c={}: no successful request", l.concurrency));
        }
        if l.error_total > 0 {
            out.push(format!(
                "{name} c={}: errors {}",
                l.concurrency,
                crate::stats::format_errors(&l.errors)
            ));
        }
    }
}

fn open_problems(name: &str, r: &OpenReport, shedding_ok: bool, out: &mut Vec<String>) {
    for l in &r.levels {
        if l.ok == 0 {
            out.push(format!(
                "{name} rate={:.0}: no successful request",
                l.target_rate
            ));
        }
        let unexpected: BTreeMap<String, u64> = l
            .errors
            .iter()
            .filter(|(k, _)| !(shedding_ok && LOAD_SHEDDING.contains(&k.as_str())))
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        if !unexpected.is_empty() {
            out.push(format!(
                "{name} rate={:.0}: unexpected errors {}",
                l.target_rate,
                crate::stats::format_errors(&unexpected)
            ));
        }
    }
}

/// What makes a run's numbers unusable: a level without a single success, errors where
/// none are expected, or (overload) requests left unanswered. No timing thresholds: those
/// are reported, not asserted, because the machine is shared.
pub fn problems(batched: &ClosedReport, unbatched: &ClosedReport, x: &Extra) -> Vec<String> {
    let mut out = Vec::new();
    closed_problems("batched", batched, &mut out);
    closed_problems("unbatched", unbatched, &mut out);
    if let Some((one, two)) = &x.instances {
        closed_problems("instances=1", one, &mut out);
        closed_problems("instances=2", two, &mut out);
    }
    if let Some((on, off)) = &x.metrics_cost {
        closed_problems("metrics on", on, &mut out);
        closed_problems("metrics off", off, &mut out);
    }
    for s in &x.slo {
        for (label, r) in &s.runs {
            // Even at 80 % a shared machine can stall long enough to fill the queue;
            // a 429 is then the designed answer, not a fault.
            open_problems(
                &format!("slo {} {label}", s.manifest.model),
                r,
                true,
                &mut out,
            );
        }
    }
    if let Some(o) = &x.overload {
        closed_problems("overload capacity", &o.capacity, &mut out);
        open_problems("overload", &o.open, true, &mut out);
        if let Some(shed) = &o.shed {
            open_problems("overload (shedding)", shed, true, &mut out);
        }
    }
    if let Some(p) = &x.pipelines {
        for (body, bucketing, r) in &p.minilm {
            closed_problems(&format!("minilm {body} bucketing {bucketing}"), r, &mut out);
        }
        if let Some(r) = &p.efficientnet {
            closed_problems("efficientnet", r, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(p50: f64, p99: f64, count: u64) -> LatencySummary {
        LatencySummary {
            count,
            mean_ms: p50,
            p50_ms: p50,
            p90_ms: p99,
            p99_ms: p99,
            max_ms: p99 * 2.0,
        }
    }

    fn values(mean: f64, p99: f64) -> ValueSummary {
        ValueSummary {
            count: 10,
            mean,
            p50: mean,
            p90: p99,
            p99,
            max: p99,
        }
    }

    fn closed_level(c: usize, rps: f64) -> ClosedLevel {
        ClosedLevel {
            concurrency: c,
            warmup_s: 1.0,
            duration_s: 10.0,
            ok: (rps * 10.0) as u64,
            error_total: 0,
            errors: BTreeMap::new(),
            requests_per_s: rps,
            rows_per_s: rps,
            latency: summary(1.0, 2.0, 10),
            client_cpu_pct: None,
            latency_by_status: BTreeMap::new(),
            server_timing: [
                ("compute_us".to_string(), values(50.0, 80.0)),
                ("batch_rows".to_string(), values(32.0, 64.0)),
            ]
            .into_iter()
            .collect(),
            metrics: BTreeMap::new(),
            slice_rps: Vec::new(),
        }
    }

    #[test]
    fn wire_compares_binary_with_json_per_level() {
        let rows = |mut r: ClosedReport| {
            r.rows_per_request = 64;
            for l in &mut r.levels {
                l.rows_per_s = l.requests_per_s * 64.0;
            }
            r
        };
        let x = Extra {
            wire: Some((
                rows(closed(vec![
                    closed_level(1, 1000.0),
                    closed_level(16, 2000.0),
                ])),
                rows(closed(vec![
                    closed_level(1, 1200.0),
                    closed_level(16, 3000.0),
                ])),
            )),
            ..Extra::default()
        };
        let mut md = String::new();
        let head = wire(&mut md, &x).unwrap();
        assert!(md.contains("with 64 rows per request"), "{md}");
        assert!(md.contains("then 2560 bytes of little-endian"));
        assert!(
            md.contains("| 16 | 128000 | 1.000 | 2.000 | 192000 | 1.000 | 2.000 | **1.50×** |"),
            "{md}"
        );
        assert_eq!(
            head,
            "v2 binary tensors vs JSON, 64-row requests at c=16: **1.50×** the rows/s (192000 vs 128000)."
        );
        let mut md = String::new();
        assert!(wire(&mut md, &Extra::default()).is_none());
        assert!(md.contains("Not measured in this run."));
    }

    fn closed(levels: Vec<ClosedLevel>) -> ClosedReport {
        ClosedReport {
            mode: "closed".into(),
            url: "http://x/".into(),
            rows_per_request: 1,
            client_threads: 1,
            levels,
        }
    }

    fn open_level(rps: f64, p99: f64, server_p99_us: f64) -> OpenLevel {
        // (The section's own `open_level` picks a level; this builds one.)
        OpenLevel {
            target_rate: rps,
            warmup_s: 1.0,
            duration_s: 10.0,
            scheduled: 1000,
            dropped: 0,
            sent: 1000,
            achieved_rate: rps,
            ok: 1000,
            error_total: 0,
            errors: BTreeMap::new(),
            elapsed_s: 10.0,
            requests_per_s: rps,
            rows_per_s: rps,
            latency: summary(1.0, p99, 1000),
            send_lag: LatencySummary::default(),
            connection_wait: LatencySummary::default(),
            client_cpu_pct: None,
            latency_by_status: BTreeMap::new(),
            service_by_status: BTreeMap::new(),
            server_timing: [
                (
                    crate::stats::SERVER_TOTAL.to_string(),
                    values(500.0, server_p99_us),
                ),
                ("batch_rows".to_string(), values(12.5, 20.0)),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn open(level: OpenLevel) -> OpenReport {
        OpenReport {
            mode: "open".into(),
            url: "http://x/".into(),
            rows_per_request: 1,
            client_threads: 1,
            max_in_flight: 4096,
            connections: 256,
            levels: vec![level],
        }
    }

    #[test]
    fn instances_compare_by_concurrency_and_explain_the_default() {
        let one = closed(vec![closed_level(1, 1000.0), closed_level(64, 20000.0)]);
        let two = closed(vec![closed_level(1, 900.0), closed_level(64, 19000.0)]);
        let x = Extra {
            instances: Some((one, two)),
            ..Extra::default()
        };
        let mut md = String::new();
        let head = instances(&mut md, &x).unwrap();
        assert!(
            md.contains("| 64 | 20000 | 1.000 | 2.000 | 19000 | 1.000 | 2.000 | **0.95×** |"),
            "{md}"
        );
        assert!(md.contains("The default therefore stays at 1 instance on CPU"));
        assert!(md.contains("a batch of 32 rows costs 50 µs"));
        assert!(head.contains("**0.95×**"));
        let faster = closed(vec![closed_level(64, 26000.0)]);
        let x = Extra {
            instances: Some((closed(vec![closed_level(64, 20000.0)]), faster)),
            ..Extra::default()
        };
        let mut md = String::new();
        instances(&mut md, &x).unwrap();
        assert!(md.contains("gives 1.30× the throughput"));
        assert!(md.contains("The default stays at 1 instance on CPU** all the same"));
    }

    #[test]
    fn missing_sections_say_why() {
        let mut md = String::new();
        let x = Extra {
            quick: true,
            ..Extra::default()
        };
        assert!(metrics_cost(&mut md, &x).is_none());
        assert!(md.contains("Not run in `--quick` mode."));
    }

    fn sliced(rps: &[f64]) -> ClosedReport {
        let total: f64 = rps.iter().sum::<f64>() / rps.len() as f64;
        let mut l = closed_level(64, total);
        l.slice_rps = rps.to_vec();
        closed(vec![l])
    }

    #[test]
    fn metrics_cost_pairs_rounds_and_bounds_the_cost() {
        let x = Extra {
            metrics_cost: Some((
                sliced(&[9900.0, 10100.0, 10000.0, 10000.0]),
                sliced(&[10000.0, 10000.0, 10000.0, 10000.0]),
            )),
            ..Extra::default()
        };
        let mut md = String::new();
        let head = metrics_cost(&mut md, &x).unwrap();
        assert!(
            md.contains("| 1 | on, off | 9900 | 10000 | 0.99× |"),
            "{md}"
        );
        assert!(md.contains("| 2 | off, on | 10100 | 10000 | 1.01× |"));
        assert!(md.contains(
            "| **all** | | **10000** (p99 2.000 ms) | **10000** (p99 2.000 ms) | **1.000** |"
        ));
        assert!(md.contains("Recording cost: 0.0 % of throughput"));
        // Ratios .99, 1.01, 1, 1: sd 0.00816, 2 SE = 0.00816.
        assert!(md.contains("mean ratio 1.000 ± 0.008"), "{md}");
        assert!(head.contains("target < 2 %: met"), "{head}");
        let noisy = Extra {
            metrics_cost: Some((
                sliced(&[7000.0, 10000.0, 10000.0, 13000.0]),
                sliced(&[10000.0, 10000.0, 10000.0, 10000.0]),
            )),
            ..Extra::default()
        };
        let head = metrics_cost(&mut String::new(), &noisy).unwrap();
        assert!(head.contains("not resolved by this run"), "{head}");
        let with_rss = Extra {
            metrics_rss: Some(MetricsRss {
                on_before_kib: 10240,
                on_after_kib: 30720,
                off_before_kib: 10240,
                off_after_kib: 11264,
            }),
            ..noisy
        };
        let mut md = String::new();
        let head = metrics_cost(&mut md, &with_rss).unwrap();
        assert!(md.contains("from 10.0 to 30.0 MiB (**+20.0 MiB**"), "{md}");
        assert!(md.contains("from 10.0 to 11.0 MiB (+1.0 MiB)"));
        assert!(head.contains("Unscraped, its RSS grew +20.0 MiB over the section vs +1.0 MiB"));
        let slow = Extra {
            metrics_cost: Some((
                sliced(&[9000.0, 9000.0, 9100.0, 8900.0]),
                sliced(&[10000.0, 10000.0, 10000.0, 10000.0]),
            )),
            ..Extra::default()
        };
        let head = metrics_cost(&mut String::new(), &slow).unwrap();
        assert!(head.contains("target < 2 %: **not met**"), "{head}");
    }

    fn slo_fixture(target_p99: f64, target_rps: f64) -> Slo {
        let two = |l: OpenLevel| {
            let mut r = open(l.clone());
            let mut half = l;
            half.target_rate /= 2.0;
            half.requests_per_s /= 2.0;
            half.dropped = 5;
            r.levels.push(half);
            r
        };
        Slo {
            manifest: SloManifest {
                model: "mlp".into(),
                capacity_rps: 10000.0,
                capacity_source: String::new(),
                fractions: vec![0.8, 0.4],
                rates: vec![8000.0, 4000.0],
                target_ms: 5.0,
                delays_us: vec![0, 1000, 5000],
                target_why: "Because.".into(),
                rounds: 4,
            },
            runs: vec![
                (
                    "max_queue_delay_us = 0".into(),
                    two(open_level(7990.0, 3.0, 900.0)),
                ),
                (
                    "max_queue_delay_us = 5000".into(),
                    two(open_level(8000.0, 9.0, 5200.0)),
                ),
                (
                    "latency_target_ms = 5".into(),
                    two(open_level(target_rps, target_p99, 4800.0)),
                ),
            ],
        }
    }

    #[test]
    fn slo_verdict_checks_p99_and_throughput_against_best_fixed() {
        let mut md = String::new();
        let heads = slo(&mut md, &slo_fixture(4.0, 7995.0), false);
        assert_eq!(heads.len(), 2);
        assert!(
            md.contains("Poisson arrivals at 80 % (8000 req/s) and 40 % (4000 req/s) of it"),
            "{md}"
        );
        assert!(md.contains("### mlp at 80 % of capacity (8000 req/s)"));
        assert!(md.contains(
            "| latency_target_ms = 5 | 7995 | 7995 | 1.000 | 4.000 | 4.800 | 12.5 | 0.000 | 0 | 0 | yes |"
        ), "{md}");
        assert!(md.contains(
            "| max_queue_delay_us = 5000 | 8000 | 8000 | 1.000 | 9.000 | 5.200 | 12.5 | 0.000 | 0 | 0 | no |"
        ));
        let h = &heads[0];
        assert!(
            h.starts_with("SLO window (mlp) at 80 % of capacity, **latency_target_ms = 5**"),
            "{h}"
        );
        assert!(h.contains("end-to-end p99 4.000 ms (≤ T: met)"), "{h}");
        assert!(h.contains("server-side p99 4.800 ms (≤ T: met)"));
        assert!(h.contains("best fixed delay (max_queue_delay_us = 5000): 0.999×"));
        assert!(h.contains("within 1 %: met"));
        assert!(!h.contains("saturated"));
        // The second load had drops: flagged as saturated.
        assert!(heads[1].contains("The server was saturated at this load"));
        let heads = slo(&mut String::new(), &slo_fixture(6.0, 7000.0), false);
        assert!(heads[0].contains("(≤ T: **not met**)"));
        assert!(heads[0].contains("within 1 %: **not met**"));
    }

    fn overload_fixture() -> Overload {
        let mut l = open_level(10000.0, 30.0, 1000.0);
        l.ok = 2000;
        l.error_total = 8000;
        l.errors = [("http_429".to_string(), 8000)].into_iter().collect();
        l.latency_by_status = [
            ("http_200".to_string(), summary(20.0, 40.0, 2000)),
            ("http_429".to_string(), summary(0.5, 1.5, 8000)),
        ]
        .into_iter()
        .collect();
        l.service_by_status = [
            ("http_200".to_string(), summary(19.0, 38.0, 2000)),
            ("http_429".to_string(), summary(0.4, 1.2, 8000)),
        ]
        .into_iter()
        .collect();
        l.sent = 10000;
        l.achieved_rate = 10000.0;
        Overload {
            manifest: OverloadManifest {
                capacity_rps: 2000.0,
                multiple: 5.0,
                rate: 10000.0,
                timeout_s: 5.0,
                max_batch_size: 8,
                max_queue_size: 32,
                latency_target_ms: 50.0,
                layers: 32,
                width: 512,
                inputs: 16,
                rows_per_request: 2,
                rss_before_kib: 102400,
                rss_after_kib: 103424,
                rss_peak_kib: 110000,
                shed_max_queue_size: 0,
            },
            capacity: closed(vec![closed_level(16, 2000.0)]),
            open: open(l),
            shed: None,
        }
    }

    #[test]
    fn overload_reports_outcomes_targets_and_memory() {
        let x = Extra {
            overload: Some(overload_fixture()),
            ..Extra::default()
        };
        let mut md = String::new();
        let head = overload(&mut md, &x).unwrap();
        assert!(
            md.contains("| HTTP 429 | 8000 | 80.0 % | 0.500 | 1.500 | 3.000 |"),
            "{md}"
        );
        assert!(md.contains("| HTTP 200 | 2000 | 20.0 % |"));
        assert!(md.contains("= **5.0× capacity**"));
        assert!(md.contains("Every request answered: met"));
        assert!(
            md.contains("429 latency p99: **1.200 ms** on the wire"),
            "{md}"
        );
        assert!(md.contains("target < 5 ms: met); 1.500 ms from the intended send time"));
        assert!(
            md.contains("from the response headers: **1.000 ms** (target ≤ 50 ms: met)"),
            "{md}"
        );
        assert!(md.contains("end to end from the intended send: 40.000 ms (≤ 50 ms: met)"));
        assert!(
            head.contains(
                "admitted p99 in the server **1.000 ms** (≤ 50 ms: met; end to end 40.0 ms: met)"
            ),
            "{head}"
        );
        assert!(md.contains("100.0 MiB before the overload, 101.0 MiB after it (+1024 KiB)"));
        assert!(
            head.starts_with("Overload at 5.0× capacity: 429 p99 **1.20 ms** on the wire"),
            "{head}"
        );
        // No shedding run (older results): no such subsection.
        assert!(!md.contains("Shedding instead"));
    }

    #[test]
    fn overload_compares_shedding_with_the_small_queue() {
        let mut o = overload_fixture();
        o.manifest.shed_max_queue_size = 1024;
        let mut l = o.open.levels[0].clone();
        l.ok = 4000;
        l.server_timing.insert(
            crate::stats::SERVER_TOTAL.to_string(),
            ValueSummary {
                count: 4000,
                mean: 45000.0,
                p50: 46000.0,
                p90: 49000.0,
                p99: 52000.0,
                max: 60000.0,
            },
        );
        o.shed = Some(open(l));
        let x = Extra {
            overload: Some(o),
            ..Extra::default()
        };
        let mut md = String::new();
        let head = overload(&mut md, &x).unwrap();
        assert!(md.contains("### Shedding instead of a small queue"), "{md}");
        assert!(md.contains("(and a queue bound of 1024 rows)"), "{md}");
        assert!(
            md.contains("| `shed_beyond_target = true` | 400 | 80.0 % | 1.200 | 46.000 / 52.000 | 40.000 | 0 |"),
            "{md}"
        );
        assert!(md.contains("| `max_queue_size = 32` | 200 |"), "{md}");
        assert!(
            md.contains("p99 in the server: **52.000 ms** (≤ 50 ms: **not met**)"),
            "{md}"
        );
        assert!(
            head.ends_with("instead of the small queue: admitted p99 in the server 52.0 ms (≤ 50 ms: **not met**)."),
            "{head}"
        );
    }

    #[test]
    fn pipelines_report_busy_padding_and_skips() {
        let mut short = closed_level(64, 300.0);
        short.metrics.insert(
            "convoy_device_busy_ratio{model=\"minilm\",worker=\"0\"}".into(),
            MetricFigure {
                kind: "gauge".into(),
                mean: 0.95,
                min: Some(0.9),
                max: Some(1.0),
                samples: 8,
                sum: None,
            },
        );
        let padded = |mean: f64| {
            let mut l = closed_level(64, 200.0);
            l.metrics.insert(
                "convoy_batch_padding_ratio{model=\"minilm\"}".into(),
                MetricFigure {
                    kind: "histogram".into(),
                    mean,
                    min: None,
                    max: None,
                    samples: 100,
                    sum: Some(mean * 100.0),
                },
            );
            closed(vec![l])
        };
        let x = Extra {
            pipelines: Some(Pipelines {
                manifest: PipelinesManifest {
                    minilm: "measured".into(),
                    efficientnet: "models/efficientnet_lite0/model.onnx is absent".into(),
                    ..Default::default()
                },
                minilm: vec![
                    ("short".into(), "on".into(), closed(vec![short])),
                    ("mixed".into(), "on".into(), padded(0.1)),
                    ("mixed".into(), "off".into(), padded(0.4)),
                ],
                efficientnet: None,
            }),
            ..Extra::default()
        };
        let mut md = String::new();
        let heads = pipelines(&mut md, &x);
        assert!(md.contains("| short | on | 64 | 300 |"), "{md}");
        assert!(md.contains("| 0.95 |"));
        assert!(md.contains("| 10.0 % |"));
        assert!(md.contains("Skipped: models/efficientnet_lite0/model.onnx is absent."));
        assert_eq!(heads.len(), 2);
        assert!(heads[0].contains("**0.95** (target ≥ 0.9: met)"));
        assert!(heads[1].contains("**10.0 %** of token slots with bucketing vs **40.0 %** without"));
    }

    #[test]
    fn problems_flag_failures_but_not_load_shedding() {
        let good = closed(vec![closed_level(1, 100.0)]);
        let mut bad_level = closed_level(16, 0.0);
        bad_level.ok = 0;
        bad_level.error_total = 3;
        bad_level.errors = [("connect".to_string(), 3)].into_iter().collect();
        let bad = closed(vec![bad_level]);
        let x = Extra {
            overload: Some(overload_fixture()),
            ..Extra::default()
        };
        assert!(
            problems(&good, &good, &x).is_empty(),
            "{:?}",
            problems(&good, &good, &x)
        );
        let p = problems(&good, &bad, &x);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("unbatched c=16: no successful request"));
        assert!(p[1].contains("connect=3"));
        let mut o = overload_fixture();
        o.open.levels[0].errors.insert("timeout".into(), 1);
        let x = Extra {
            overload: Some(o),
            ..Extra::default()
        };
        let p = problems(&good, &good, &x);
        assert_eq!(
            p,
            vec!["overload rate=10000: unexpected errors timeout=1".to_string()]
        );
    }
}
