//! RESULTS.md: every figure and verdict computed from the loaded results as table rows,
//! placed into `loadtests/report.md.tmpl`, which holds the explanatory prose once.
//!
//! Pure functions (no I/O) so the figures are unit-tested. Each section fills one or more
//! `{{key}}` placeholders and may add a headline; `problems` lists what makes a run
//! unusable (the smoke run's only assertions).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use crate::ceiling::CeilingReport;
use crate::closed::{ClosedLevel, ClosedReport};
use crate::machine::Machine;
use crate::open::{OpenLevel, OpenReport};
use crate::prom::MetricFigure;
use crate::stats::{format_errors, LatencySummary, SERVER_TOTAL};

/// The report's prose, with `{{key}}` placeholders and `{{#key}}...{{/key}}` blocks.
pub const TEMPLATE: &str = include_str!("../report.md.tmpl");

/// Outcomes that are the server's designed answer to load (refusal, expiry), not faults.
const LOAD_SHEDDING: [&str; 2] = ["http_429", "http_504"];

/// One table row of anything displayable.
macro_rules! row {
    ($($e:expr),* $(,)?) => { vec![$($e.to_string()),*] };
}
pub(crate) use row;

/// Fills `template`: `{{key}}` with `values[key]` (an error if absent); a block
/// `{{#key}}...{{/key}}` is kept (and filled) when `values` has `key`, else replaced by
/// `values["key.absent"]`, or by `absent`.
pub fn fill(
    template: &str,
    values: &BTreeMap<String, String>,
    absent: &str,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let len = rest[i..].find("}}").ok_or("unclosed {{")?;
        let key = &rest[i + 2..i + len];
        rest = &rest[i + len + 2..];
        if let Some(k) = key.strip_prefix('#') {
            let end = format!("{{{{/{k}}}}}");
            let e = rest.find(&end).ok_or_else(|| format!("no {end}"))?;
            let inner = rest[..e].strip_prefix('\n').unwrap_or(&rest[..e]);
            rest = &rest[e + end.len()..];
            if values.contains_key(k) {
                out.push_str(&fill(inner, values, absent)?);
            } else {
                let why = values.get(&format!("{k}.absent"));
                let _ = writeln!(out, "{}", why.map_or(absent, String::as_str));
            }
            rest = rest.strip_prefix('\n').unwrap_or(rest);
        } else {
            out.push_str(
                values
                    .get(key)
                    .ok_or_else(|| format!("no value for {{{{{key}}}}}"))?,
            );
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A Markdown table: `head` is "a | b | c", `align` one letter per column (`l`, `r`).
pub fn table(head: &str, align: &str, rows: &[Vec<String>]) -> String {
    let mut s = format!("| {head} |\n|");
    for a in align.chars() {
        s.push_str(if a == 'r' { "---:|" } else { "---|" });
    }
    for r in rows {
        let _ = write!(s, "\n| {} |", r.join(" | "));
    }
    s
}

/// A two-column table of settings or figures.
fn facts(rows: &[(&str, String)]) -> String {
    let rows: Vec<_> = rows.iter().map(|(k, v)| row![k, v]).collect();
    table("what | value", "ll", &rows)
}

fn f(v: f64, digits: usize) -> String {
    format!("{v:.digits$}")
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |v| f(v, digits))
}

/// `a / b` as "1.23×", or "n/a" when `b` is zero.
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "n/a".to_string()
    }
}

/// `a / b` as a percentage ("12.3 %"): ceiling shares are often far below 1×.
fn percent(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.1} %", 100.0 * a / b)
    } else {
        "n/a".to_string()
    }
}

fn div(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A target's verdict, as every section of the report words it.
pub fn yes_no(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

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

#[derive(Clone)]
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

/// Everything the markdown is rendered from.
pub struct ReportInputs {
    pub machine: Machine,
    pub commit: String,
    pub date: String,
    pub rustc: String,
    pub ort_version: String,
    pub raw_dir: String,
    /// Seconds the measurements took (after the build).
    pub wall_s: Option<f64>,
    /// /proc/loadavg at the start and the end of the run.
    pub loadavg: (String, String),
    pub batched: ClosedReport,
    pub unbatched: ClosedReport,
    pub ceiling: CeilingReport,
    /// (server label, file name, contents) of the optional batch-statistics documents.
    pub stats: Vec<(String, String, String)>,
    /// (heading, contents) of the model.toml files the two servers ran with.
    pub configs: Vec<(String, String)>,
    pub extra: Extra,
}

/// The placeholder values and headlines the sections produce.
#[derive(Default)]
pub struct Filled {
    pub values: BTreeMap<String, String>,
    pub heads: Vec<String>,
}

impl Filled {
    fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values.insert(key.to_string(), value.into());
    }

    /// Appends a chart's image to `key` when the chart was drawn.
    fn plot(&mut self, x: &Extra, key: &str, plot: &str, alt: &str) {
        if let Some(path) = x.plots.get(plot) {
            let v = self.values.entry(key.to_string()).or_default();
            let _ = write!(v, "\n\n![{alt}]({path})");
        }
    }
}

/// The whole RESULTS.md.
pub fn render(r: &ReportInputs) -> String {
    let x = &r.extra;
    let mut o = Filled::default();
    o.set("raw", &r.raw_dir);
    machine(&mut o, r);
    batching(&mut o, r);
    overhead(&mut o, r);
    crate::peers::section(&mut o, x.peers.as_ref(), &r.ceiling, x.quick);
    wire(&mut o, x);
    instances(&mut o, x);
    metrics_cost(&mut o, x);
    for s in &x.slo {
        slo(&mut o, s, x);
    }
    overload(&mut o, x);
    pipelines(&mut o, x);
    if !r.configs.is_empty() {
        let c: Vec<String> = r
            .configs
            .iter()
            .map(|(label, text)| format!("{label}:\n\n```toml\n{}\n```", text.trim_end()))
            .collect();
        o.set("configs", c.join("\n\n"));
    }
    if !r.stats.is_empty() {
        let rows: Vec<_> = r
            .stats
            .iter()
            .map(|(l, _, t)| crate::server_stats::stats_row(l, t))
            .collect();
        let links: Vec<_> = r
            .stats
            .iter()
            .map(|(_, n, _)| format!("[`{n}`]({}/{n})", r.raw_dir))
            .collect();
        let head = "server | batches run | rows | mean rows per batch | mean queue ms | mean compute ms per batch";
        o.set(
            "stats",
            format!(
                "{}\n\nRaw: {}.",
                table(head, "lrrrrr", &rows),
                links.join(", ")
            ),
        );
    }
    let heads: Vec<_> = o.heads.iter().map(|h| format!("- {h}")).collect();
    o.set("headlines", heads.join("\n"));
    let absent = if x.quick {
        "Not run in `--quick` mode."
    } else {
        "Not measured in this run."
    };
    fill(TEMPLATE, &o.values, absent).expect("every placeholder of report.md.tmpl is filled")
}

fn machine(o: &mut Filled, r: &ReportInputs) {
    let m = &r.machine;
    let wall = r.wall_s.map_or_else(
        || "unknown".to_string(),
        |s| format!("{:.1} min (measurements only, after the build)", s / 60.0),
    );
    let (start, end) = &r.loadavg;
    o.set(
        "machine",
        facts(&[
            (
                "CPU",
                format!("{} ({} logical CPUs)", m.cpu_model, m.logical_cpus),
            ),
            ("Memory", m.memory.clone()),
            ("Kernel", m.kernel.clone()),
            ("rustc", r.rustc.clone()),
            (
                "ONNX Runtime",
                format!("{} (CPU execution provider)", r.ort_version),
            ),
            ("Commit", format!("`{}`", r.commit)),
            ("Date", r.date.clone()),
            ("Run time", wall),
            (
                "Load average (1/5/15 min)",
                format!("{start} at the start, {end} at the end"),
            ),
        ]),
    );
}

fn level_at(r: &ClosedReport, c: usize) -> Option<&ClosedLevel> {
    r.levels.iter().find(|l| l.concurrency == c)
}

/// The last (highest-concurrency) level of a closed run.
fn top(r: &ClosedReport) -> Option<&ClosedLevel> {
    r.levels.iter().max_by_key(|l| l.concurrency)
}

fn batching(o: &mut Filled, r: &ReportInputs) {
    let (b, u) = (&r.batched, &r.unbatched);
    let first = b.levels.first();
    let mut rows = Vec::new();
    for bl in &b.levels {
        let c = bl.concurrency;
        let line = |name: &str, l: &ClosedLevel| {
            let cpu = crate::cpu::format_cpu(l.client_cpu_pct);
            row![
                c,
                name,
                f(l.requests_per_s, 0),
                f(l.rows_per_s, 0),
                f(l.latency.p50_ms, 3),
                f(l.latency.p99_ms, 3),
                l.error_total,
                cpu
            ]
        };
        rows.push(line("batched", bl));
        let Some(ul) = level_at(u, c) else { continue };
        rows.push(line("max_batch_size = 1", ul));
        rows.push(row![
            c,
            "**batched / unbatched**",
            format!("**{}**", ratio(bl.requests_per_s, ul.requests_per_s)),
            format!("**{}**", ratio(bl.rows_per_s, ul.rows_per_s)),
            ratio(bl.latency.p50_ms, ul.latency.p50_ms),
            ratio(bl.latency.p99_ms, ul.latency.p99_ms),
            "",
            ""
        ]);
    }
    let setup = facts(&[
        ("rows per request", b.rows_per_request.to_string()),
        (
            "measured per level",
            format!(
                "{} s after {} s warm-up",
                first.map_or(0.0, |l| l.duration_s),
                first.map_or(0.0, |l| l.warmup_s)
            ),
        ),
    ]);
    let head = "concurrency | config | req/s | rows/s | p50 ms | p99 ms | errors | client CPU";
    o.set(
        "batching",
        format!("{setup}\n\n{}", table(head, "rlrrrrrr", &rows)),
    );
    o.plot(
        &r.extra,
        "batching",
        "batching",
        "MLP: requests/s vs concurrency, batched and max_batch_size = 1",
    );
    if let (Some(bl), Some(ul)) = (top(b), top(b).and_then(|t| level_at(u, t.concurrency))) {
        o.heads.push(format!(
            "Dynamic batching vs max_batch_size = 1 at c={}: **{}** throughput ({:.0} vs {:.0} req/s), p99 {:.2} vs {:.2} ms.",
            bl.concurrency,
            ratio(bl.requests_per_s, ul.requests_per_s),
            bl.requests_per_s,
            ul.requests_per_s,
            bl.latency.p99_ms,
            ul.latency.p99_ms
        ));
    }
    let c = &r.ceiling;
    let setup = facts(&[
        ("intra-op threads", c.intra_threads.to_string()),
        ("features per row", c.features.to_string()),
        (
            "outputs vs reference.json, max abs error",
            c.reference_max_abs_err
                .map_or("not checked".into(), |e| format!("{e:.1e}")),
        ),
    ]);
    let rows: Vec<_> = c
        .levels
        .iter()
        .map(|l| {
            row![
                l.batch_size,
                f(l.runs_per_s, 0),
                f(l.rows_per_s, 0),
                f(l.latency.mean_ms, 4),
                f(l.latency.p50_ms, 4),
                f(l.latency.p99_ms, 4)
            ]
        })
        .collect();
    let head = "batch size | runs/s | rows/s | mean ms | p50 ms | p99 ms";
    o.set(
        "ceiling",
        format!("{setup}\n\n{}", table(head, "rrrrrr", &rows)),
    );
}

/// The server against the in-process ceiling: throughput at saturation, latency at c=1.
fn overhead(o: &mut Filled, r: &ReportInputs) {
    let best = |rep: &ClosedReport| {
        rep.levels
            .iter()
            .max_by(|a, b| a.rows_per_s.total_cmp(&b.rows_per_s))
            .cloned()
    };
    // Batch 64 when measured (the committed max_batch_size), else the largest batch.
    let levels = &r.ceiling.levels;
    let at = |batch: usize| {
        levels
            .iter()
            .find(|l| l.batch_size == batch)
            .or_else(|| levels.iter().max_by_key(|l| l.batch_size))
    };
    let mut rows = Vec::new();
    if let (Some(b), Some(ceil)) = (best(&r.batched), at(64)) {
        let share = b.rows_per_s / ceil.rows_per_s.max(1e-9);
        let server = b.server_timing.get(SERVER_TOTAL).map(|v| v.mean);
        rows.push(row![
            "best batched rows/s over the ceiling's",
            format!(
                "**{}**: {:.0} (c={}) / {:.0} (batch {}) = {share:.3}×",
                percent(b.rows_per_s, ceil.rows_per_s),
                b.rows_per_s,
                b.concurrency,
                ceil.rows_per_s,
                ceil.batch_size
            ),
            "≥ 0.9×",
            yes_no(share >= 0.9)
        ]);
        rows.push(row![
            "at that level: server queue + compute per request (mean); ceiling per row; one request completed every",
            format!("{} µs; {:.2} µs; {:.0} µs", opt(server, 0), 1e6 / ceil.rows_per_s.max(1e-9), 1e6 / b.requests_per_s.max(1e-9)),
            "",
            ""
        ]);
    }
    let c1 = r.ceiling.levels.iter().find(|l| l.batch_size == 1);
    if let (Some(b1), Some(c1)) = (level_at(&r.batched, 1), c1) {
        let gap_us = (b1.latency.p50_ms - c1.latency.p50_ms) * 1000.0;
        let part = |k: &str| opt(b1.server_timing.get(k).map(|v| v.p50), 0);
        let inside = b1.server_timing.get(SERVER_TOTAL).map_or(0.0, |v| v.p50);
        rows.push(row![
            "p50 at c=1 vs one in-process run",
            format!(
                "{:.3} ms vs {:.3} ms, {gap_us:+.0} µs",
                b1.latency.p50_ms, c1.latency.p50_ms
            ),
            "≤ +150 µs",
            yes_no(gap_us <= 150.0)
        ]);
        rows.push(row![
            "inside the server at c=1 (p50s): queue, compute, together; the rest",
            format!(
                "{} µs, {} µs, {} µs; ~{:.0} µs",
                part("queue_us"),
                part("compute_us"),
                part(SERVER_TOTAL),
                gap_us - inside
            ),
            "",
            ""
        ]);
    }
    if let (Some(u), Some(ceil)) = (best(&r.unbatched), at(1)) {
        rows.push(row![
            format!("unbatched server / ceiling at batch {}", ceil.batch_size),
            format!(
                "{} ({:.0} vs {:.0} rows/s)",
                percent(u.rows_per_s, ceil.rows_per_s),
                u.rows_per_s,
                ceil.rows_per_s
            ),
            "",
            ""
        ]);
    }
    o.set(
        "overhead",
        table("figure | value | target | verdict", "lrll", &rows),
    );
}

/// The v2 JSON body against the same rows in the binary tensor extension.
fn wire(o: &mut Filled, x: &Extra) {
    let Some((json, binary)) = &x.wire else {
        return;
    };
    let rows_per = json.rows_per_request;
    let mut rows = Vec::new();
    for b in &binary.levels {
        let Some(j) = level_at(json, b.concurrency) else {
            continue;
        };
        rows.push(row![
            b.concurrency,
            f(j.rows_per_s, 0),
            f(j.latency.p50_ms, 3),
            f(j.latency.p99_ms, 3),
            f(b.rows_per_s, 0),
            f(b.latency.p50_ms, 3),
            f(b.latency.p99_ms, 3),
            format!("**{}**", ratio(b.rows_per_s, j.rows_per_s))
        ]);
    }
    let setup = facts(&[
        (
            "rows per request",
            format!(
                "{rows_per} (JSON: {rows_per} × 10 numbers; binary: {} bytes)",
                rows_per * 40
            ),
        ),
        (
            "measured per level",
            format!("{:.0} s", top(binary).map_or(0.0, |l| l.duration_s)),
        ),
    ]);
    let head = "concurrency | JSON rows/s | p50 ms | p99 ms | binary rows/s | p50 ms | p99 ms | binary / JSON";
    o.set(
        "wire",
        format!("{setup}\n\n{}", table(head, "rrrrrrrr", &rows)),
    );
    if let (Some(j), Some(b)) = (top(json), top(binary)) {
        o.heads.push(format!(
            "v2 binary tensors vs JSON, {rows_per}-row requests at c={}: **{}** the rows/s ({:.0} vs {:.0}).",
            b.concurrency,
            ratio(b.rows_per_s, j.rows_per_s),
            b.rows_per_s,
            j.rows_per_s
        ));
    }
}

fn instances(o: &mut Filled, x: &Extra) {
    let Some((one, two)) = &x.instances else {
        return;
    };
    let mut rows = Vec::new();
    for t in &two.levels {
        let Some(l) = level_at(one, t.concurrency) else {
            continue;
        };
        rows.push(row![
            t.concurrency,
            f(l.requests_per_s, 0),
            f(l.latency.p50_ms, 3),
            f(l.latency.p99_ms, 3),
            f(t.requests_per_s, 0),
            f(t.latency.p50_ms, 3),
            f(t.latency.p99_ms, 3),
            format!("**{}**", ratio(t.requests_per_s, l.requests_per_s))
        ]);
    }
    let head = "concurrency | count = 1 req/s | p50 ms | p99 ms | count = 2 req/s | p50 ms | p99 ms | 2 / 1 throughput";
    let mut md = table(head, "rrrrrrrr", &rows);
    if let (Some(l), Some(t)) = (top(one), top(two)) {
        let r = div(t.requests_per_s, l.requests_per_s);
        let rounds = t.slice_rps.len().max(1);
        let compute = l
            .server_timing
            .get("compute_us")
            .map(|v| format!("{:.0} rows: {:.0} µs", batch_rows(l), v.mean));
        let _ = write!(
            md,
            "\n\n{}",
            facts(&[
                ("interleaved rounds per level", rounds.to_string()),
                (
                    &format!("count = 2 / count = 1 at c={}", t.concurrency),
                    format!("**{r:.2}×**")
                ),
                (
                    "device time of a mean batch (count = 1)",
                    compute.unwrap_or_else(|| "n/a".into())
                ),
            ])
        );
        o.heads.push(format!(
            "Instances: `count = 2` / `count = 1` at c={}: **{r:.2}×** throughput (default stays 1 on CPU).",
            t.concurrency
        ));
    }
    o.set("instances", md);
}

fn batch_rows(l: &ClosedLevel) -> f64 {
    l.server_timing.get("batch_rows").map_or(0.0, |v| v.mean)
}

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

fn metrics_cost(o: &mut Filled, x: &Extra) {
    let Some((a, b)) = x
        .metrics_cost
        .as_ref()
        .and_then(|(on, off)| Some((top(on)?, top(off)?)))
    else {
        return;
    };
    let rounds = a.slice_rps.len().min(b.slice_rps.len());
    let mut ratios = Vec::new();
    let mut rows = Vec::new();
    for i in 0..rounds {
        let (on, off) = (a.slice_rps[i], b.slice_rps[i]);
        if off > 0.0 {
            ratios.push(on / off);
        }
        let order = if i % 2 == 0 { "on, off" } else { "off, on" };
        rows.push(row![i + 1, order, f(on, 0), f(off, 0), ratio(on, off)]);
    }
    let r = div(a.requests_per_s, b.requests_per_s);
    let p99 = |l: &ClosedLevel| {
        format!(
            "**{:.0}** (p99 {:.3} ms)",
            l.requests_per_s, l.latency.p99_ms
        )
    };
    rows.push(row!["**all**", "", p99(a), p99(b), format!("**{r:.3}**")]);
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
    let mut figures = vec![
        (
            "closed loop",
            format!(
                "c={}, {rounds} rounds of {:.0} s each",
                a.concurrency,
                a.duration_s / rounds.max(1) as f64
            ),
        ),
        (
            "recording cost (all on / all off)",
            format!("**{cost:.1} % of throughput** ({r:.3})"),
        ),
        (
            "paired rounds: mean ratio ± 2 standard errors",
            format!("{mean:.3} ± {half:.3}: a cost between {lo:.1} % and {hi:.1} %"),
        ),
        ("target < 2 %", verdict.clone()),
    ];
    let mut head = format!(
        "Metrics recording at c={}: on / off throughput **{r:.3}** (cost {cost:.1} %, rounds: {lo:.1} to {hi:.1} %; target < 2 %: {verdict}).",
        a.concurrency
    );
    if let (Some(m), Some((on, _))) = (&x.metrics_rss, &x.metrics_cost) {
        let growth = |before: u64, after: u64| (after as f64 - before as f64) / 1024.0;
        let (on_g, off_g) = (
            growth(m.on_before_kib, m.on_after_kib),
            growth(m.off_before_kib, m.off_after_kib),
        );
        let served = on.levels.iter().map(|l| l.ok).sum::<u64>().max(1);
        let per_request = on_g * 1024.0 * 1024.0 / served as f64;
        figures.push((
            "RSS, recording metrics, unscraped",
            format!(
                "{:.1} → {:.1} MiB (**{on_g:+.1} MiB**, {per_request:.0} bytes per request served)",
                mib(m.on_before_kib),
                mib(m.on_after_kib)
            ),
        ));
        figures.push((
            "RSS, `--disable-metrics`",
            format!(
                "{:.1} → {:.1} MiB ({off_g:+.1} MiB)",
                mib(m.off_before_kib),
                mib(m.off_after_kib)
            ),
        ));
        let _ = write!(head, " Unscraped, its RSS grew {on_g:+.1} MiB over the section vs {off_g:+.1} MiB without metrics.");
    }
    let head_row = "round | order | metrics on req/s | metrics off req/s | on / off";
    o.set(
        "metrics",
        format!("{}\n\n{}", table(head_row, "rlrrr", &rows), facts(&figures)),
    );
    o.heads.push(head);
}

/// The server's own p99 (queue + compute, from the response headers), in ms.
fn server_p99_ms(l: &OpenLevel) -> Option<f64> {
    l.server_timing.get(SERVER_TOTAL).map(|v| v.p99 / 1000.0)
}

/// Whether the client found the server saturated at a level: arrivals dropped, or
/// requests commonly waiting for a free connection.
fn saturated(l: &OpenLevel) -> bool {
    l.dropped > 0 || l.connection_wait.p50_ms > 1.0
}

fn slo(o: &mut Filled, s: &Slo, x: &Extra) {
    let m = &s.manifest;
    let first = s.runs.first().map(|(_, r)| r);
    let offered: Vec<_> = m
        .fractions
        .iter()
        .zip(&m.rates)
        .map(|(f, r)| format!("{:.0} % ({r:.0} req/s)", f * 100.0))
        .collect();
    let join = |v: Vec<String>| v.join(", ");
    let mut md = format!(
        "### {}\n\n{}\n",
        m.model,
        facts(&[
            (
                "capacity",
                format!("{:.0} req/s: {}", m.capacity_rps, m.capacity_source)
            ),
            ("offered", offered.join(" and ")),
            (
                "connections",
                first.map_or(0, |r| r.connections).to_string()
            ),
            (
                "rounds; measured per config and load",
                format!(
                    "{}; {:.0} s",
                    m.rounds,
                    first
                        .and_then(|r| r.levels.first())
                        .map_or(0.0, |l| l.duration_s)
                )
            ),
            (
                "fixed windows, `max_queue_delay_us`",
                join(m.delays_us.iter().map(u64::to_string).collect())
            ),
            (
                "target T",
                format!("`latency_target_ms = {}`: {}", m.target_ms, m.target_why)
            ),
        ])
    );
    if s.runs.is_empty() {
        let _ = write!(
            md,
            "\n{}\n",
            if x.quick {
                "Not run in `--quick` mode."
            } else {
                "Not measured in this run."
            }
        );
    }
    for (i, fraction) in m
        .fractions
        .iter()
        .enumerate()
        .filter(|_| !s.runs.is_empty())
    {
        let at = |r: &OpenReport| r.levels.get(i).cloned();
        let rows: Vec<_> = s
            .runs
            .iter()
            .filter_map(|(label, r)| Some((label, at(r)?)))
            .map(|(label, l)| {
                let errors = if l.errors.is_empty() {
                    "0".into()
                } else {
                    format_errors(&l.errors)
                };
                let within = if l.latency.p99_ms <= m.target_ms {
                    "yes"
                } else {
                    "no"
                };
                let batch = l.server_timing.get("batch_rows").map(|v| v.mean);
                row![
                    label,
                    f(l.achieved_rate, 0),
                    f(l.requests_per_s, 0),
                    f(l.latency.p50_ms, 3),
                    f(l.latency.p99_ms, 3),
                    opt(server_p99_ms(&l), 3),
                    opt(batch, 1),
                    f(l.connection_wait.p50_ms, 3),
                    errors,
                    l.dropped,
                    within
                ]
            })
            .collect();
        let head = "config | sent req/s | ok req/s | p50 ms | p99 ms | server p99 ms | mean batch rows | conn. wait p50 ms | errors | dropped | p99 ≤ T";
        let _ = write!(
            md,
            "\n#### {} at {:.0} % of capacity ({:.0} req/s)\n\n{}\n",
            m.model,
            fraction * 100.0,
            m.rates.get(i).copied().unwrap_or(0.0),
            table(head, "lrrrrrrrlrl", &rows)
        );
        let is_target = |label: &str| label.starts_with("latency_target");
        let Some(target) = s
            .runs
            .iter()
            .find(|(l, _)| is_target(l))
            .and_then(|(_, r)| at(r))
        else {
            continue;
        };
        let best_fixed = s
            .runs
            .iter()
            .filter(|(l, _)| !is_target(l))
            .filter_map(|(label, r)| at(r).map(|l| (label, l)))
            .max_by(|a, b| a.1.requests_per_s.total_cmp(&b.1.requests_per_s));
        let mut verdict = format!(
            "at {:.0} % of capacity, **latency_target_ms = {}**: end-to-end p99 {:.3} ms (≤ T: {})",
            fraction * 100.0,
            m.target_ms,
            target.latency.p99_ms,
            yes_no(target.latency.p99_ms <= m.target_ms)
        );
        if let Some(sp) = server_p99_ms(&target) {
            let _ = write!(
                verdict,
                ", server-side p99 {sp:.3} ms (≤ T: {})",
                yes_no(sp <= m.target_ms)
            );
        }
        if let Some((label, b)) = best_fixed {
            // Same schedule for every config: throughput differs only by failures, drops
            // and when the last response came; 1 % absorbs the latter.
            let r = div(target.requests_per_s, b.requests_per_s);
            let _ = write!(
                verdict,
                "; throughput {:.0} req/s vs {:.0} for the best fixed delay ({label}): {r:.3}× (≥ best fixed, within 1 %: {})",
                target.requests_per_s,
                b.requests_per_s,
                yes_no(r >= 0.99)
            );
        }
        if s.runs
            .iter()
            .filter_map(|(_, r)| at(r))
            .any(|l| saturated(&l))
        {
            verdict.push_str(". The server was saturated at this load (drops or waits for a connection), so these rows compare overload behaviour more than windows");
        }
        let _ = write!(md, "\nVerdict {verdict}.\n");
        o.heads.push(format!("SLO window ({}) {verdict}.", m.model));
    }
    let v = o.values.entry("slo".into()).or_default();
    if !v.is_empty() {
        v.push_str("\n\n");
    }
    v.push_str(md.trim_end());
    let alt = format!(
        "{}: p50 (dashed) and p99 (solid) latency vs offered load, per config",
        m.model
    );
    o.plot(x, "slo", &format!("slo-{}", m.model), &alt);
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
fn admission_row(label: &str, l: &OpenLevel) -> Vec<String> {
    let refused = l.latency_by_status.get("http_429").map_or(0, |s| s.count);
    let server = l.server_timing.get(SERVER_TOTAL);
    row![
        label,
        f(l.ok as f64 / l.duration_s.max(1e-9), 0),
        format!("{:.1} %", 100.0 * refused as f64 / l.sent.max(1) as f64),
        opt(l.service_by_status.get("http_429").map(|s| s.p99_ms), 3),
        format!(
            "{} / {}",
            opt(server.map(|v| v.p50 / 1000.0), 3),
            opt(server.map(|v| v.p99 / 1000.0), 3)
        ),
        opt(l.latency_by_status.get("http_200").map(|s| s.p99_ms), 3),
        unanswered(l)
    ]
}

fn overload(o: &mut Filled, x: &Extra) {
    let Some(ov) = &x.overload else { return };
    let (Some(l), Some(cap)) = (ov.open.levels.first(), top(&ov.capacity)) else {
        return;
    };
    let m = &ov.manifest;
    let t = m.latency_target_ms;
    let compute = cap.server_timing.get("compute_us").map(|v| v.mean / 1000.0);
    let setup = facts(&[
        (
            "model",
            format!(
                "FP32 [N, {}] → [N, {w}] through {} MatMul + Relu layers of width {w}",
                m.inputs,
                m.layers,
                w = m.width
            ),
        ),
        (
            "config",
            format!(
                "`max_batch_size = {}`, `max_queue_size = {}` rows, `latency_target_ms = {t}`",
                m.max_batch_size, m.max_queue_size
            ),
        ),
        ("rows per request", m.rows_per_request.to_string()),
        (
            &format!("capacity, closed loop c={}", cap.concurrency),
            format!(
                "**{:.0} req/s** (mean batch {:.1} rows, {} ms of device time per batch)",
                m.capacity_rps,
                batch_rows(cap),
                opt(compute, 2)
            ),
        ),
        (
            "offered",
            format!(
                "{:.1}× that, {:.0} req/s, for {} s; client timeout {} s",
                m.multiple, m.rate, l.duration_s, m.timeout_s
            ),
        ),
        (
            "achieved send rate",
            format!(
                "{:.0} req/s = **{:.1}× capacity**",
                l.achieved_rate,
                div(l.achieved_rate, m.capacity_rps)
            ),
        ),
    ]);
    let total = l.sent.max(1) as f64;
    let rows: Vec<_> = l
        .latency_by_status
        .iter()
        .map(|(status, s)| {
            let wire = l.service_by_status.get(status).map_or(0.0, |s| s.p99_ms);
            row![
                status.replace("http_", "HTTP "),
                s.count,
                format!("{:.1} %", 100.0 * s.count as f64 / total),
                f(s.p50_ms, 3),
                f(s.p99_ms, 3),
                f(s.max_ms, 3),
                f(wire, 3)
            ]
        })
        .chain((l.dropped > 0).then(|| {
            row![
                "not sent (client's in-flight cap)",
                l.dropped,
                "",
                "",
                "",
                "",
                ""
            ]
        }))
        .collect();
    let outcomes = table(
        "outcome | requests | share | p50 ms | p99 ms | max ms | p99 from actual send ms",
        "lrrrrrr",
        &rows,
    );
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
    let server_p99 = server_p99_ms(l);
    // What `latency_target_ms` governs: the server's queue + compute time.
    let server_met = yes_no(admitted.count > 0 && server_p99.is_some_and(|p| p <= t));
    let wire = l
        .service_by_status
        .get("http_429")
        .map_or(f64::INFINITY, |s| s.p99_ms);
    let wire_met = yes_no(refused.count > 0 && wire < 5.0);
    let e2e_met = yes_no(admitted.count > 0 && admitted.p99_ms <= t);
    let growth = m.rss_after_kib as f64 - m.rss_before_kib as f64;
    let checks = [
        row!["every request answered", format!("{unanswered} timeouts or transport errors, {other_http} answers other than 200/429/504"), "none", yes_no(unanswered == 0 && other_http == 0)],
        row!["429 p99 on the wire (from the intended send)", format!("**{wire:.3} ms** ({:.3} ms)", refused.p99_ms), "< 5 ms", wire_met],
        row!["admitted (200) p99 in the server (queue + compute, headers)", format!("**{} ms**", opt(server_p99, 3)), format!("≤ {t} ms"), server_met],
        row!["admitted (200) p99 end to end from the intended send", format!("{:.3} ms", admitted.p99_ms), format!("≤ {t} ms"), e2e_met],
        row![
            "server RSS (VmRSS) before → after; peak (VmHWM)",
            format!("{:.1} → {:.1} MiB ({growth:+.0} KiB); {:.1} MiB", mib(m.rss_before_kib), mib(m.rss_after_kib), mib(m.rss_peak_kib)),
            "",
            ""
        ],
    ];
    let checks = table("check | value | target | verdict", "lrll", &checks);
    o.set("overload", format!("{setup}\n\n{outcomes}\n\n{checks}"));
    let mut shed_head = String::new();
    if let Some(shed) = ov.shed.as_ref().and_then(|r| r.levels.first()) {
        let shed_p99 = server_p99_ms(shed);
        let shed_met = yes_no(shed.ok > 0 && shed_p99.is_some_and(|p| p <= t));
        let rows = [
            admission_row(&format!("`max_queue_size = {}`", m.max_queue_size), l),
            admission_row("`shed_beyond_target = true`", shed),
        ];
        let head = "admission | 200 answered/s | 429 share | 429 p99 on the wire ms | admitted p50 / p99 in the server ms | admitted p99 end to end ms | unanswered";
        let check = row![
            format!(
                "admitted p99 in the server, shedding (queue bound {} rows)",
                m.shed_max_queue_size
            ),
            format!("**{} ms**", opt(shed_p99, 3)),
            format!("≤ {t} ms"),
            shed_met
        ];
        let checks = table("check | value | target | verdict", "lrll", &[check]);
        o.set(
            "shedding",
            format!("{}\n\n{checks}", table(head, "lrrrrrr", &rows)),
        );
        shed_head = format!(" With `shed_beyond_target` instead of the small queue: admitted p99 in the server {} ms (≤ {t} ms: {shed_met}).", opt(shed_p99, 1));
    }
    o.heads.push(format!(
        "Overload at {:.1}× capacity: 429 p99 **{wire:.2} ms** on the wire (< 5 ms: {wire_met}; {:.1} ms from the intended send), admitted p99 in the server **{} ms** (≤ {t} ms: {server_met}; end to end {:.1} ms: {e2e_met}), {unanswered} unanswered, RSS {:.0} → {:.0} MiB.{shed_head}",
        div(l.achieved_rate, m.capacity_rps),
        refused.p99_ms,
        opt(server_p99, 3),
        admitted.p99_ms,
        mib(m.rss_before_kib),
        mib(m.rss_after_kib),
    ));
}

const BUSY: &str = "convoy_device_busy_ratio";
const PADDING: &str = "convoy_batch_padding_ratio";
const BATCH: &str = "convoy_batch_size_rows";

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

/// Latency and the mean stage times (ms) of a pipeline level.
fn stage_cells(l: &ClosedLevel) -> Vec<String> {
    let mut cells = row![
        l.concurrency,
        f(l.rows_per_s, 0),
        f(l.latency.p50_ms, 3),
        f(l.latency.p99_ms, 3)
    ];
    cells.extend(
        ["pre_us", "queue_us", "infer_us", "post_us"]
            .map(|k| opt(l.server_timing.get(k).map(|v| v.mean / 1000.0), 3)),
    );
    cells.push(opt(histogram_mean(&l.metrics, BATCH), 1));
    cells
}

fn pipelines(o: &mut Filled, x: &Extra) {
    let Some(p) = &x.pipelines else { return };
    o.set("pipelines", "");
    if p.minilm.is_empty() {
        o.set("minilm.absent", format!("Skipped: {}.", p.manifest.minilm));
    } else {
        let mut rows = Vec::new();
        for (body, bucketing, r) in &p.minilm {
            for l in &r.levels {
                let mut cells = row![body, bucketing];
                cells.extend(stage_cells(l));
                cells.push(
                    histogram_mean(&l.metrics, PADDING)
                        .map_or_else(|| "–".into(), |v| format!("{:.1} %", v * 100.0)),
                );
                cells.push(opt(gauge_mean(&l.metrics, BUSY), 2));
                rows.push(cells);
            }
        }
        let head = "body | bucketing | c | texts/s | p50 ms | p99 ms | pre ms | queue ms | infer ms | post ms | batch rows | padding | device busy";
        o.set("minilm", table(head, "llrrrrrrrrrrr", &rows));
        o.plot(
            x,
            "minilm",
            "minilm",
            "MiniLM: requests/s (one text each) vs concurrency, short and mixed lengths",
        );
        let mut lines = Vec::new();
        if let Some(l) = p
            .minilm
            .iter()
            .find(|(b, _, _)| b == "short")
            .and_then(|(_, _, r)| top(r))
        {
            if let Some(busy) = gauge_mean(&l.metrics, BUSY) {
                lines.push(format!(
                    "MiniLM device busy at c={} (short texts): **{busy:.2}** (target ≥ 0.9: {}).",
                    l.concurrency,
                    yes_no(busy >= 0.9)
                ));
            }
        }
        let pad = |label: &str| {
            let (_, _, r) = p
                .minilm
                .iter()
                .find(|(b, k, _)| b == "mixed" && k == label)?;
            top(r).and_then(|l| Some((l, histogram_mean(&l.metrics, PADDING)?)))
        };
        if let (Some((on_l, on)), Some((off_l, off))) = (pad("on"), pad("off")) {
            lines.push(format!(
                "MiniLM padding at c={} with mixed lengths: **{:.1} %** of token slots with bucketing vs **{:.1} %** without; throughput {:.0} vs {:.0} texts/s ({}).",
                on_l.concurrency,
                on * 100.0,
                off * 100.0,
                on_l.rows_per_s,
                off_l.rows_per_s,
                ratio(on_l.rows_per_s, off_l.rows_per_s)
            ));
        }
        for line in lines {
            let _ = write!(o.values.get_mut("minilm").expect("set above"), "\n\n{line}");
            o.heads.push(line);
        }
    }
    match &p.efficientnet {
        None => o.set(
            "efficientnet.absent",
            format!("Skipped: {}.", p.manifest.efficientnet),
        ),
        Some(r) => {
            let rows: Vec<_> = r
                .levels
                .iter()
                .map(|l| {
                    let mut cells = stage_cells(l);
                    cells.push(opt(gauge_mean(&l.metrics, BUSY), 2));
                    cells
                })
                .collect();
            let head = "c | images/s | p50 ms | p99 ms | pre ms | queue ms | infer ms | post ms | batch rows | device busy";
            o.set(
                "efficientnet",
                format!(
                    "Image: {}.\n\n{}",
                    p.manifest.sample,
                    table(head, "rrrrrrrrrr", &rows)
                ),
            );
            if let Some(l) = top(r) {
                o.heads.push(format!(
                    "EfficientNet classify (raw PNG) at c={}: {:.0} images/s, p99 {:.1} ms.",
                    l.concurrency, l.rows_per_s, l.latency.p99_ms
                ));
            }
        }
    }
}

// --- sanity -------------------------------------------------------------------------

fn closed_problems(name: &str, r: &ClosedReport, out: &mut Vec<String>) {
    for l in &r.levels {
        if l.ok == 0 || l.requests_per_s <= 0.0 {
            out.push(format!("{name} c={}: no successful request", l.concurrency));
        }
        if l.error_total > 0 {
            out.push(format!(
                "{name} c={}: errors {}",
                l.concurrency,
                format_errors(&l.errors)
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
                format_errors(&unexpected)
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
    use crate::ceiling::CeilingLevel;
    use crate::stats::ValueSummary;

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
            warmup_s: 2.0,
            duration_s: 10.0,
            ok: (rps * 10.0) as u64,
            error_total: 0,
            errors: BTreeMap::new(),
            requests_per_s: rps,
            rows_per_s: rps,
            latency: summary(1.0, 2.0, 10),
            client_cpu_pct: Some(40.0),
            latency_by_status: BTreeMap::new(),
            server_timing: [
                ("compute_us", values(50.0, 80.0)),
                ("batch_rows", values(32.0, 64.0)),
                (SERVER_TOTAL, values(200.0, 300.0)),
            ]
            .map(|(k, v)| (k.to_string(), v))
            .into(),
            metrics: BTreeMap::new(),
            slice_rps: Vec::new(),
        }
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
                (SERVER_TOTAL, values(500.0, server_p99_us)),
                ("batch_rows", values(12.5, 20.0)),
            ]
            .map(|(k, v)| (k.to_string(), v))
            .into(),
        }
    }

    fn open(levels: Vec<OpenLevel>) -> OpenReport {
        OpenReport {
            mode: "open".into(),
            url: "http://x/".into(),
            rows_per_request: 1,
            client_threads: 1,
            max_in_flight: 4096,
            connections: 256,
            levels,
        }
    }

    fn inputs(extra: Extra) -> ReportInputs {
        let ceiling_level = |batch_size: usize, rows_per_s: f64| CeilingLevel {
            batch_size,
            duration_s: 1.0,
            runs: 1,
            runs_per_s: rows_per_s / batch_size as f64,
            rows_per_s,
            latency: LatencySummary {
                p50_ms: 0.004,
                ..Default::default()
            },
        };
        let mut b1 = closed_level(1, 1000.0);
        b1.latency = summary(0.25, 0.5, 10);
        ReportInputs {
            machine: Machine {
                logical_cpus: 2,
                cpu_model: "Test CPU".into(),
                memory: "8.0 GiB".into(),
                kernel: "6.0".into(),
            },
            commit: "abc1234".into(),
            date: "2025-01-01".into(),
            rustc: "rustc 1.95.0".into(),
            ort_version: "1.31.1".into(),
            raw_dir: "results".into(),
            wall_s: Some(600.0),
            loadavg: ("0.10 0.20 0.30".into(), "1.00 0.50 0.40".into()),
            batched: closed(vec![b1, closed_level(64, 20000.0)]),
            unbatched: closed(vec![closed_level(1, 1000.0), closed_level(64, 5000.0)]),
            ceiling: CeilingReport {
                mode: "ceiling".into(),
                model: "m.onnx".into(),
                ort_lib: "lib.so".into(),
                intra_threads: 1,
                features: 10,
                reference_max_abs_err: Some(1e-7),
                levels: vec![ceiling_level(1, 100_000.0), ceiling_level(64, 2_000_000.0)],
            },
            stats: vec![(
                "batched".into(),
                "stats-batched.json".into(),
                r#"{"model_stats":[{"execution_count":4,"inference_count":10}]}"#.into(),
            )],
            configs: vec![("batched".into(), "max_batch_size = 64\n".into())],
            extra,
        }
    }

    #[test]
    fn fill_substitutes_keeps_or_replaces_blocks_and_rejects_unknown_keys() {
        let v: BTreeMap<String, String> = [("a", "1"), ("b", "2"), ("c.absent", "why")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert_eq!(
            fill("x {{a}}\n{{#b}}\nb={{b}}\n{{/b}}\nend", &v, "-").unwrap(),
            "x 1\nb=2\nend"
        );
        assert_eq!(
            fill("{{#c}}\n{{c}}\n{{/c}}\n{{#d}}\n{{d}}\n{{/d}}\n", &v, "-").unwrap(),
            "why\n-\n"
        );
        assert_eq!(fill("{{zz}}", &v, "-").unwrap_err(), "no value for {{zz}}");
        assert!(fill("{{#a}} no end", &v, "-").is_err());
    }

    #[test]
    fn renders_batching_ceiling_and_overhead_and_marks_sections_not_run() {
        let md = render(&inputs(Extra::default()));
        assert!(!md.contains("{{"), "{md}");
        assert!(md.contains("| CPU | Test CPU (2 logical CPUs) |"));
        assert!(md.contains("| Run time | 10.0 min (measurements only, after the build) |"));
        assert!(
            md.contains("| 64 | max_batch_size = 1 | 5000 | 5000 | 1.000 | 2.000 | 0 | 40% |"),
            "{md}"
        );
        assert!(md.contains(
            "| 64 | **batched / unbatched** | **4.00×** | **4.00×** | 1.00× | 1.00× |  |  |"
        ));
        assert!(md.contains("- Dynamic batching vs max_batch_size = 1 at c=64: **4.00×** throughput (20000 vs 5000 req/s)"));
        assert!(md.contains("| outputs vs reference.json, max abs error | 1.0e-7 |"));
        assert!(md.contains("| best batched rows/s over the ceiling's | **1.0 %**: 20000 (c=64) / 2000000 (batch 64) = 0.010× | ≥ 0.9× | **not met** |"), "{md}");
        // c=1: 0.25 ms against 0.004 ms is +246 µs, 200 of them inside the server.
        assert!(
            md.contains("| 0.250 ms vs 0.004 ms, +246 µs | ≤ +150 µs | **not met** |"),
            "{md}"
        );
        assert!(md.contains("| – µs, 50 µs, 200 µs; ~46 µs |"), "{md}");
        assert!(md
            .contains("| unbatched server / ceiling at batch 1 | 5.0 % (5000 vs 100000 rows/s) |"));
        assert!(md.contains("| batched | 4 | 10 | 2.50 | n/a | n/a |"));
        assert!(md.contains("batched:\n\n```toml\nmax_batch_size = 64\n```"));
        assert!(md.contains(
            "## Instances: one device worker vs two (closed loop)\n\nNot measured in this run.\n"
        ));
        assert!(md.contains(
            "## Peers: Convoy next to other model servers\n\nNot measured in this run.\n"
        ));
        let quick = render(&inputs(Extra {
            quick: true,
            ..Extra::default()
        }));
        assert!(quick.contains("## Cost of recording metrics\n\nNot run in `--quick` mode.\n"));
        assert!(quick.contains("(`loadtests/peers.sh --quick` is the peers' smoke run)"));
    }

    #[test]
    fn instances_and_wire_compare_by_concurrency() {
        let rows64 = |mut r: ClosedReport| {
            r.rows_per_request = 64;
            r.levels
                .iter_mut()
                .for_each(|l| l.rows_per_s = l.requests_per_s * 64.0);
            r
        };
        let x = Extra {
            instances: Some((
                closed(vec![closed_level(64, 20000.0)]),
                closed(vec![closed_level(16, 1.0), closed_level(64, 19000.0)]),
            )),
            wire: Some((
                rows64(closed(vec![closed_level(16, 2000.0)])),
                rows64(closed(vec![closed_level(16, 3000.0)])),
            )),
            ..Extra::default()
        };
        let mut o = Filled::default();
        instances(&mut o, &x);
        wire(&mut o, &x);
        let inst = &o.values["instances"];
        assert!(
            inst.contains("| 64 | 20000 | 1.000 | 2.000 | 19000 | 1.000 | 2.000 | **0.95×** |"),
            "{inst}"
        );
        assert!(
            !inst.contains("| 16 |"),
            "no count = 1 level to compare with"
        );
        assert!(inst.contains("| device time of a mean batch (count = 1) | 32 rows: 50 µs |"));
        assert!(o.values["wire"]
            .contains("| 16 | 128000 | 1.000 | 2.000 | 192000 | 1.000 | 2.000 | **1.50×** |"));
        assert!(o.values["wire"].contains("64 (JSON: 64 × 10 numbers; binary: 2560 bytes)"));
        assert_eq!(o.heads[1], "v2 binary tensors vs JSON, 64-row requests at c=16: **1.50×** the rows/s (192000 vs 128000).");
    }

    fn metrics_head(on: &[f64], rss: Option<MetricsRss>) -> (String, String) {
        let sliced = |rps: &[f64]| {
            let mut l = closed_level(64, rps.iter().sum::<f64>() / rps.len() as f64);
            l.slice_rps = rps.to_vec();
            closed(vec![l])
        };
        let x = Extra {
            metrics_cost: Some((sliced(on), sliced(&[10000.0; 4]))),
            metrics_rss: rss,
            ..Extra::default()
        };
        let mut o = Filled::default();
        metrics_cost(&mut o, &x);
        (o.values.remove("metrics").unwrap(), o.heads.remove(0))
    }

    #[test]
    fn metrics_cost_pairs_rounds_and_bounds_the_cost() {
        let (md, head) = metrics_head(&[9900.0, 10100.0, 10000.0, 10000.0], None);
        assert!(
            md.contains("| 2 | off, on | 10100 | 10000 | 1.01× |"),
            "{md}"
        );
        assert!(md.contains(
            "| **all** |  | **10000** (p99 2.000 ms) | **10000** (p99 2.000 ms) | **1.000** |"
        ));
        // Ratios .99, 1.01, 1, 1: sd 0.00816, 2 SE = 0.00816.
        assert!(
            md.contains("| 1.000 ± 0.008: a cost between -0.8 % and 0.8 % |"),
            "{md}"
        );
        assert!(head.contains("target < 2 %: met)"), "{head}");
        let (_, head) = metrics_head(&[7000.0, 10000.0, 10000.0, 13000.0], None);
        assert!(head.contains("not resolved by this run"), "{head}");
        let rss = MetricsRss {
            on_before_kib: 10240,
            on_after_kib: 30720,
            off_before_kib: 10240,
            off_after_kib: 11264,
        };
        let (md, head) = metrics_head(&[9000.0, 9000.0, 9100.0, 8900.0], Some(rss));
        assert!(head.contains("target < 2 %: **not met**"), "{head}");
        // +20 MiB over the 90000 requests served (10 s at 9000 req/s).
        assert!(
            md.contains("10.0 → 30.0 MiB (**+20.0 MiB**, 233 bytes per request served)"),
            "{md}"
        );
        assert!(head.ends_with("RSS grew +20.0 MiB over the section vs +1.0 MiB without metrics."));
    }

    fn slo_fixture(target_p99: f64, target_rps: f64) -> Slo {
        let two = |l: OpenLevel| {
            let mut half = l.clone();
            (half.target_rate, half.requests_per_s, half.dropped) =
                (l.target_rate / 2.0, l.requests_per_s / 2.0, 5);
            open(vec![l, half])
        };
        Slo {
            manifest: SloManifest {
                model: "mlp".into(),
                capacity_rps: 10000.0,
                capacity_source: "measured".into(),
                fractions: vec![0.8, 0.4],
                rates: vec![8000.0, 4000.0],
                target_ms: 5.0,
                delays_us: vec![0, 5000],
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
        let mut o = Filled::default();
        slo(&mut o, &slo_fixture(4.0, 7995.0), &Extra::default());
        let md = &o.values["slo"];
        assert!(
            md.contains("| offered | 80 % (8000 req/s) and 40 % (4000 req/s) |"),
            "{md}"
        );
        assert!(md.contains("#### mlp at 80 % of capacity (8000 req/s)"));
        assert!(md.contains("| latency_target_ms = 5 | 7995 | 7995 | 1.000 | 4.000 | 4.800 | 12.5 | 0.000 | 0 | 0 | yes |"), "{md}");
        assert!(md.contains("| max_queue_delay_us = 5000 | 8000 | 8000 | 1.000 | 9.000 | 5.200 | 12.5 | 0.000 | 0 | 0 | no |"));
        let h = &o.heads[0];
        assert!(h.starts_with("SLO window (mlp) at 80 % of capacity, **latency_target_ms = 5**: end-to-end p99 4.000 ms (≤ T: met), server-side p99 4.800 ms (≤ T: met)"), "{h}");
        assert!(h.contains("best fixed delay (max_queue_delay_us = 5000): 0.999× (≥ best fixed, within 1 %: met)"), "{h}");
        assert!(!h.contains("saturated"));
        // The second load had drops: flagged as saturated.
        assert!(o.heads[1].contains("The server was saturated at this load"));
        let mut o = Filled::default();
        slo(&mut o, &slo_fixture(6.0, 7000.0), &Extra::default());
        assert!(o.heads[0].contains("(≤ T: **not met**)"));
        assert!(o.heads[0].contains("within 1 %: **not met**"));
    }

    fn overload_fixture() -> Overload {
        let mut l = open_level(10000.0, 30.0, 1000.0);
        (l.ok, l.error_total, l.sent) = (2000, 8000, 10000);
        l.errors = [("http_429".to_string(), 8000)].into();
        l.latency_by_status = [
            ("http_200", summary(20.0, 40.0, 2000)),
            ("http_429", summary(0.5, 1.5, 8000)),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into();
        l.service_by_status = [
            ("http_200", summary(19.0, 38.0, 2000)),
            ("http_429", summary(0.4, 1.2, 8000)),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into();
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
                shed_max_queue_size: 1024,
            },
            capacity: closed(vec![closed_level(16, 2000.0)]),
            open: open(vec![l]),
            shed: None,
        }
    }

    #[test]
    fn overload_reports_outcomes_targets_memory_and_shedding() {
        let mut ov = overload_fixture();
        let mut o = Filled::default();
        overload(
            &mut o,
            &Extra {
                overload: Some(ov.clone()),
                ..Extra::default()
            },
        );
        let md = &o.values["overload"];
        assert!(
            md.contains("| HTTP 429 | 8000 | 80.0 % | 0.500 | 1.500 | 3.000 | 1.200 |"),
            "{md}"
        );
        assert!(md.contains("| achieved send rate | 10000 req/s = **5.0× capacity** |"));
        assert!(md.contains("| every request answered | 0 timeouts or transport errors, 0 answers other than 200/429/504 | none | met |"));
        assert!(md.contains("| **1.200 ms** (1.500 ms) | < 5 ms | met |"));
        assert!(md.contains("| **1.000 ms** | ≤ 50 ms | met |"), "{md}");
        assert!(
            md.contains("| 100.0 → 101.0 MiB (+1024 KiB); 107.4 MiB |"),
            "{md}"
        );
        assert!(o.heads[0].starts_with("Overload at 5.0× capacity: 429 p99 **1.20 ms** on the wire (< 5 ms: met; 1.5 ms from the intended send), admitted p99 in the server **1.000 ms** (≤ 50 ms: met; end to end 40.0 ms: met)"));
        assert!(!o.values.contains_key("shedding"));
        let mut l = ov.open.levels[0].clone();
        l.ok = 4000;
        l.server_timing
            .insert(SERVER_TOTAL.into(), values(46000.0, 52000.0));
        ov.shed = Some(open(vec![l]));
        let mut o = Filled::default();
        overload(
            &mut o,
            &Extra {
                overload: Some(ov),
                ..Extra::default()
            },
        );
        let md = &o.values["shedding"];
        assert!(md.contains("| `shed_beyond_target = true` | 400 | 80.0 % | 1.200 | 46.000 / 52.000 | 40.000 | 0 |"), "{md}");
        assert!(md.contains("| `max_queue_size = 32` | 200 |"));
        assert!(md.contains(
            "shedding (queue bound 1024 rows) | **52.000 ms** | ≤ 50 ms | **not met** |"
        ));
        assert!(o.heads[0].ends_with("admitted p99 in the server 52.0 ms (≤ 50 ms: **not met**)."));
    }

    #[test]
    fn pipelines_report_busy_padding_and_skips() {
        let figure = |kind: &str, mean: f64| MetricFigure {
            kind: kind.into(),
            mean,
            min: None,
            max: None,
            samples: 100,
            sum: Some(mean * 100.0),
        };
        let mut short = closed_level(64, 300.0);
        short.metrics.insert(
            "convoy_device_busy_ratio{model=\"minilm\",worker=\"0\"}".into(),
            figure("gauge", 0.95),
        );
        let padded = |mean: f64| {
            let mut l = closed_level(64, 200.0);
            l.metrics.insert(
                "convoy_batch_padding_ratio{model=\"minilm\"}".into(),
                figure("histogram", mean),
            );
            closed(vec![l])
        };
        let manifest = PipelinesManifest {
            minilm: "measured".into(),
            efficientnet: "model.onnx is absent".into(),
            ..Default::default()
        };
        let minilm = vec![
            ("short".into(), "on".into(), closed(vec![short])),
            ("mixed".into(), "on".into(), padded(0.1)),
            ("mixed".into(), "off".into(), padded(0.4)),
        ];
        let x = Extra {
            pipelines: Some(Pipelines {
                manifest,
                minilm,
                efficientnet: None,
            }),
            ..Extra::default()
        };
        let mut o = Filled::default();
        pipelines(&mut o, &x);
        let md = &o.values["minilm"];
        assert!(
            md.contains("| short | on | 64 | 300 | 1.000 | 2.000 | – | – | – | – | – | – | 0.95 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| mixed | off | 64 | 200 | 1.000 | 2.000 | – | – | – | – | – | 40.0 % | – |"
            ),
            "{md}"
        );
        assert_eq!(
            o.values["efficientnet.absent"],
            "Skipped: model.onnx is absent."
        );
        assert_eq!(o.heads.len(), 2);
        assert!(o.heads[0].contains("**0.95** (target ≥ 0.9: met)"));
        assert!(o.heads[1].contains("**10.0 %** of token slots with bucketing vs **40.0 %** without; throughput 200 vs 200 texts/s (1.00×)"));
    }

    #[test]
    fn problems_flag_failures_but_not_load_shedding() {
        let good = closed(vec![closed_level(1, 100.0)]);
        let mut bad = closed_level(16, 0.0);
        (bad.ok, bad.error_total, bad.errors) = (0, 3, [("connect".to_string(), 3)].into());
        let x = Extra {
            overload: Some(overload_fixture()),
            ..Extra::default()
        };
        assert_eq!(problems(&good, &good, &x), Vec::<String>::new());
        let p = problems(&good, &closed(vec![bad]), &x);
        assert_eq!(
            p,
            [
                "unbatched c=16: no successful request",
                "unbatched c=16: errors connect=3"
            ]
        );
        let mut ov = overload_fixture();
        ov.open.levels[0].errors.insert("timeout".into(), 1);
        let x = Extra {
            overload: Some(ov),
            ..Extra::default()
        };
        assert_eq!(
            problems(&good, &good, &x),
            ["overload rate=10000: unexpected errors timeout=1"]
        );
    }
}
