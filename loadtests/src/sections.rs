//! RESULTS.md: every figure and verdict computed from the loaded results as table rows,
//! placed into `loadtests/report.md.tmpl`, which holds the explanatory prose once.
//!
//! Pure functions (no I/O) so the figures are unit-tested. Each section fills one or more
//! `{{key}}` placeholders and may add a headline; `problems` lists what makes a run
//! unusable (the smoke run's only assertions).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use crate::ceiling::{CeilingLevel, CeilingReport};
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
                let why = why.map_or(absent, String::as_str);
                if !why.is_empty() {
                    let _ = writeln!(out, "{why}");
                }
            }
            rest = rest.strip_prefix('\n').unwrap_or(rest);
        } else {
            let v = values
                .get(key)
                .ok_or_else(|| format!("no value for {{{{{key}}}}}"))?;
            out.push_str(v);
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

/// A table column: header, alignment (`l`, `r`) and its cell for one item.
pub type Col<'a, T> = (&'a str, char, &'a dyn Fn(&T) -> String);

/// A Markdown table with one row per item, `cols` giving the columns.
pub fn tab<T>(items: &[T], cols: &[Col<T>]) -> String {
    let head: Vec<&str> = cols.iter().map(|c| c.0).collect();
    let align: String = cols.iter().map(|c| c.1).collect();
    let rows: Vec<_> = items
        .iter()
        .map(|i| cols.iter().map(|c| (c.2)(i)).collect())
        .collect();
    table(&head.join(" | "), &align, &rows)
}

/// A two-column table of settings or figures.
fn facts(rows: &[(&str, String)]) -> String {
    tab(
        rows,
        &[
            ("what", 'l', &|r| r.0.into()),
            ("value", 'l', &|r| r.1.clone()),
        ],
    )
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

/// What a section that did not run says.
fn absent(quick: bool) -> &'static str {
    if quick {
        "Not run in `--quick` mode."
    } else {
        "Not measured in this run."
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

fn bold(s: impl std::fmt::Display) -> String {
    format!("**{s}**")
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

    /// Sets several values at once.
    fn put(&mut self, kv: &[(&str, String)]) {
        for (k, v) in kv {
            self.set(k, v.clone());
        }
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
        let c: Vec<_> = r
            .configs
            .iter()
            .map(|(l, t)| format!("{l}:\n\n```toml\n{}\n```", t.trim_end()))
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
    fill(TEMPLATE, &o.values, absent(x.quick))
        .expect("every placeholder of report.md.tmpl is filled")
}

fn machine(o: &mut Filled, r: &ReportInputs) {
    let m = &r.machine;
    let wall = r.wall_s.map_or_else(
        || "unknown".to_string(),
        |s| format!("{:.1} min (measurements only, after the build)", s / 60.0),
    );
    o.put(&[
        ("cpu", m.cpu_model.clone()),
        ("cpus", m.logical_cpus.to_string()),
        ("memory", m.memory.clone()),
        ("kernel", m.kernel.clone()),
        ("rustc", r.rustc.clone()),
        ("ort", r.ort_version.clone()),
        ("commit", r.commit.clone()),
        ("date", r.date.clone()),
        ("wall", wall),
        ("load.start", r.loadavg.0.clone()),
        ("load.end", r.loadavg.1.clone()),
    ]);
}

fn level_at(r: &ClosedReport, c: usize) -> Option<&ClosedLevel> {
    r.levels.iter().find(|l| l.concurrency == c)
}

/// The last (highest-concurrency) level of a closed run.
fn top(r: &ClosedReport) -> Option<&ClosedLevel> {
    r.levels.iter().max_by_key(|l| l.concurrency)
}

/// The levels of `b` at the concurrencies `a` also measured, paired with `a`'s.
fn pairs<'a>(a: &'a ClosedReport, b: &'a ClosedReport) -> Vec<(&'a ClosedLevel, &'a ClosedLevel)> {
    b.levels
        .iter()
        .filter_map(|l| Some((level_at(a, l.concurrency)?, l)))
        .collect()
}

/// Requests/s (or rows/s when `rows`), p50 and p99 of a closed level.
fn perf(l: &ClosedLevel, rows: bool) -> [String; 3] {
    let rate = if rows { l.rows_per_s } else { l.requests_per_s };
    [f(rate, 0), f(l.latency.p50_ms, 3), f(l.latency.p99_ms, 3)]
}

/// Two configs side by side, level by level, and the ratio of their rates.
fn side_by_side(a: &ClosedReport, b: &ClosedReport, rows: bool) -> Vec<Vec<String>> {
    let rate = |l: &ClosedLevel| if rows { l.rows_per_s } else { l.requests_per_s };
    let cells = |(x, y): (&ClosedLevel, &ClosedLevel)| {
        let mut r = row![y.concurrency];
        r.extend(perf(x, rows).into_iter().chain(perf(y, rows)));
        r.push(bold(ratio(rate(y), rate(x))));
        r
    };
    pairs(a, b).into_iter().map(cells).collect()
}

fn batching(o: &mut Filled, r: &ReportInputs) {
    let (b, u) = (&r.batched, &r.unbatched);
    let first = b.levels.first();
    let mut rows = Vec::new();
    let line = |name: &str, l: &ClosedLevel| {
        let [_, p50, p99] = perf(l, false);
        let cpu = crate::cpu::format_cpu(l.client_cpu_pct);
        row![
            l.concurrency,
            name,
            f(l.requests_per_s, 0),
            f(l.rows_per_s, 0),
            p50,
            p99,
            l.error_total,
            cpu
        ]
    };
    for bl in &b.levels {
        rows.push(line("batched", bl));
        let Some(ul) = level_at(u, bl.concurrency) else {
            continue;
        };
        rows.push(line("max_batch_size = 1", ul));
        let (rps, rows_s) = (
            ratio(bl.requests_per_s, ul.requests_per_s),
            ratio(bl.rows_per_s, ul.rows_per_s),
        );
        let (p50, p99) = (
            ratio(bl.latency.p50_ms, ul.latency.p50_ms),
            ratio(bl.latency.p99_ms, ul.latency.p99_ms),
        );
        rows.push(row![
            bl.concurrency,
            "**batched / unbatched**",
            bold(rps),
            bold(rows_s),
            p50,
            p99,
            "",
            ""
        ]);
    }
    let (dur, warm) = first.map_or((0.0, 0.0), |l| (l.duration_s, l.warmup_s));
    let rows_per = b.rows_per_request.to_string();
    o.put(&[
        ("b.rows", rows_per),
        ("b.s", dur.to_string()),
        ("b.warm", warm.to_string()),
    ]);
    let head = "concurrency | config | req/s | rows/s | p50 ms | p99 ms | errors | client CPU";
    o.set("batching", table(head, "rlrrrrrr", &rows));
    let alt = "MLP: requests/s vs concurrency, batched and max_batch_size = 1";
    o.plot(&r.extra, "batching", "batching", alt);
    if let (Some(bl), Some(ul)) = (top(b), top(b).and_then(|t| level_at(u, t.concurrency))) {
        o.heads.push(format!(
            "Dynamic batching vs max_batch_size = 1 at c={}: **{}** throughput ({:.0} vs {:.0} req/s), p99 {:.2} vs {:.2} ms.",
            bl.concurrency, ratio(bl.requests_per_s, ul.requests_per_s), bl.requests_per_s, ul.requests_per_s, bl.latency.p99_ms, ul.latency.p99_ms
        ));
    }
    let c = &r.ceiling;
    let err = c
        .reference_max_abs_err
        .map_or("not checked".into(), |e| format!("{e:.1e}"));
    let (threads, features) = (c.intra_threads.to_string(), c.features.to_string());
    o.put(&[
        ("c.threads", threads),
        ("c.features", features),
        ("c.err", err),
    ]);
    let levels = tab::<CeilingLevel>(
        &c.levels,
        &[
            ("batch size", 'r', &|l| l.batch_size.to_string()),
            ("runs/s", 'r', &|l| f(l.runs_per_s, 0)),
            ("rows/s", 'r', &|l| f(l.rows_per_s, 0)),
            ("mean ms", 'r', &|l| f(l.latency.mean_ms, 4)),
            ("p50 ms", 'r', &|l| f(l.latency.p50_ms, 4)),
            ("p99 ms", 'r', &|l| f(l.latency.p99_ms, 4)),
        ],
    );
    o.set("ceiling", levels);
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
        let largest = || levels.iter().max_by_key(|l| l.batch_size);
        levels
            .iter()
            .find(|l| l.batch_size == batch)
            .or_else(largest)
    };
    let mut rows = Vec::new();
    if let (Some(b), Some(ceil)) = (best(&r.batched), at(64)) {
        let share = b.rows_per_s / ceil.rows_per_s.max(1e-9);
        let server = b.server_timing.get(SERVER_TOTAL).map(|v| v.mean);
        let value = format!(
            "**{}**: {:.0} (c={}) / {:.0} (batch {}) = {share:.3}×",
            percent(b.rows_per_s, ceil.rows_per_s),
            b.rows_per_s,
            b.concurrency,
            ceil.rows_per_s,
            ceil.batch_size
        );
        rows.push(row![
            "best batched rows/s over the ceiling's",
            value,
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
        let value = format!(
            "{:.3} ms vs {:.3} ms, {gap_us:+.0} µs",
            b1.latency.p50_ms, c1.latency.p50_ms
        );
        rows.push(row![
            "p50 at c=1 vs one in-process run",
            value,
            "≤ +150 µs",
            yes_no(gap_us <= 150.0)
        ]);
        let (q, c, t) = (part("queue_us"), part("compute_us"), part(SERVER_TOTAL));
        let value = format!("{q} µs, {c} µs, {t} µs; ~{:.0} µs", gap_us - inside);
        rows.push(row![
            "inside the server at c=1 (p50s): queue, compute, together; the rest",
            value,
            "",
            ""
        ]);
    }
    if let (Some(u), Some(ceil)) = (best(&r.unbatched), at(1)) {
        let what = format!("unbatched server / ceiling at batch {}", ceil.batch_size);
        let share = percent(u.rows_per_s, ceil.rows_per_s);
        let value = format!(
            "{share} ({:.0} vs {:.0} rows/s)",
            u.rows_per_s, ceil.rows_per_s
        );
        rows.push(row![what, value, "", ""]);
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
    let n = json.rows_per_request;
    let secs = f(top(binary).map_or(0.0, |l| l.duration_s), 0);
    o.put(&[
        ("w.n", n.to_string()),
        ("w.bytes", (n * 40).to_string()),
        ("w.s", secs),
    ]);
    let head = "concurrency | JSON rows/s | p50 ms | p99 ms | binary rows/s | p50 ms | p99 ms | binary / JSON";
    let rows = side_by_side(json, binary, true);
    o.set("wire", table(head, "rrrrrrrr", &rows));
    if let (Some(j), Some(b)) = (top(json), top(binary)) {
        o.heads.push(format!(
            "v2 binary tensors vs JSON, {n}-row requests at c={}: **{}** the rows/s ({:.0} vs {:.0}).",
            b.concurrency, ratio(b.rows_per_s, j.rows_per_s), b.rows_per_s, j.rows_per_s
        ));
    }
}

fn instances(o: &mut Filled, x: &Extra) {
    let Some((one, two)) = &x.instances else {
        return;
    };
    let head = "concurrency | count = 1 req/s | p50 ms | p99 ms | count = 2 req/s | p50 ms | p99 ms | 2 / 1 throughput";
    o.set(
        "instances",
        table(head, "rrrrrrrr", &side_by_side(one, two, false)),
    );
    o.set("i.top.absent", "");
    let (Some(l), Some(t)) = (top(one), top(two)) else {
        return;
    };
    let r = div(t.requests_per_s, l.requests_per_s);
    let compute = l.server_timing.get("compute_us").map(|v| v.mean);
    let batch = compute.map_or("n/a".into(), |c| {
        format!("{:.0} rows: {c:.0} µs", batch_rows(l))
    });
    o.put(&[
        ("i.top", String::new()),
        ("i.rounds", t.slice_rps.len().max(1).to_string()),
        ("i.c", t.concurrency.to_string()),
        ("i.r", f(r, 2)),
        ("i.batch", batch),
    ]);
    o.heads.push(format!(
        "Instances: `count = 2` / `count = 1` at c={}: **{r:.2}×** throughput (default stays 1 on CPU).",
        t.concurrency
    ));
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
    for (i, (&on, &off)) in a.slice_rps.iter().zip(&b.slice_rps).enumerate() {
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
    let verdict = match () {
        _ if rounds < 2 => yes_no(cost < 2.0).to_string(),
        _ if hi < 2.0 => "met".to_string(),
        _ if lo > 2.0 => "**not met**".to_string(),
        _ => format!(
            "not resolved by this run: the rounds put the cost between {lo:.1} % and {hi:.1} %"
        ),
    };
    let per_round = a.duration_s / rounds.max(1) as f64;
    o.put(&[
        ("m.c", a.concurrency.to_string()),
        ("m.rounds", rounds.to_string()),
        ("m.round_s", f(per_round, 0)),
        ("m.cost", f(cost, 1)),
        ("m.r", f(r, 3)),
        ("m.mean", f(mean, 3)),
        ("m.half", f(half, 3)),
        ("m.lo", f(lo, 1)),
        ("m.hi", f(hi, 1)),
        ("m.verdict", verdict.clone()),
    ]);
    let mut head = format!(
        "Metrics recording at c={}: on / off throughput **{r:.3}** (cost {cost:.1} %, rounds: {lo:.1} to {hi:.1} %; target < 2 %: {verdict}).",
        a.concurrency
    );
    o.set("m.rss.absent", "");
    if let (Some(m), Some((on, _))) = (&x.metrics_rss, &x.metrics_cost) {
        let growth = |before: u64, after: u64| (after as f64 - before as f64) / 1024.0;
        let on_g = growth(m.on_before_kib, m.on_after_kib);
        let off_g = growth(m.off_before_kib, m.off_after_kib);
        let served = on.levels.iter().map(|l| l.ok).sum::<u64>().max(1);
        let per_request = on_g * 1024.0 * 1024.0 / served as f64;
        o.put(&[
            ("m.rss", String::new()),
            ("m.on_b", f(mib(m.on_before_kib), 1)),
            ("m.on_a", f(mib(m.on_after_kib), 1)),
            ("m.on_g", format!("{on_g:+.1}")),
            ("m.per_req", f(per_request, 0)),
            ("m.off_b", f(mib(m.off_before_kib), 1)),
            ("m.off_a", f(mib(m.off_after_kib), 1)),
            ("m.off_g", format!("{off_g:+.1}")),
        ]);
        let _ = write!(head, " Unscraped, its RSS grew {on_g:+.1} MiB over the section vs {off_g:+.1} MiB without metrics.");
    }
    let head_row = "round | order | metrics on req/s | metrics off req/s | on / off";
    o.set("metrics", table(head_row, "rlrrr", &rows));
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
    let delays: Vec<_> = m.delays_us.iter().map(u64::to_string).collect();
    let measured = first
        .and_then(|r| r.levels.first())
        .map_or(0.0, |l| l.duration_s);
    let capacity = format!("{:.0} req/s: {}", m.capacity_rps, m.capacity_source);
    let connections = first.map_or(0, |r| r.connections).to_string();
    let rounds = format!("{}; {measured:.0} s", m.rounds);
    let target = format!("`latency_target_ms = {}`: {}", m.target_ms, m.target_why);
    let setup = facts(&[
        ("capacity", capacity),
        ("offered", offered.join(" and ")),
        ("connections", connections),
        ("rounds; measured per config and load", rounds),
        ("fixed windows, `max_queue_delay_us`", delays.join(", ")),
        ("target T", target),
    ]);
    let mut md = format!("### {}\n\n{setup}\n", m.model);
    if s.runs.is_empty() {
        let _ = write!(md, "\n{}\n", absent(x.quick));
    }
    let is_target = |label: &str| label.starts_with("latency_target");
    for (i, fraction) in m
        .fractions
        .iter()
        .enumerate()
        .filter(|_| !s.runs.is_empty())
    {
        let runs: Vec<(&str, OpenLevel)> = s
            .runs
            .iter()
            .filter_map(|(k, r)| Some((k.as_str(), r.levels.get(i)?.clone())))
            .collect();
        let errors = |l: &OpenLevel| match l.errors.is_empty() {
            true => "0".into(),
            false => format_errors(&l.errors),
        };
        let within = |l: &OpenLevel| ["no", "yes"][usize::from(l.latency.p99_ms <= m.target_ms)];
        let rows = tab::<(&str, OpenLevel)>(
            &runs,
            &[
                ("config", 'l', &|(k, _)| k.to_string()),
                ("sent req/s", 'r', &|(_, l)| f(l.achieved_rate, 0)),
                ("ok req/s", 'r', &|(_, l)| f(l.requests_per_s, 0)),
                ("p50 ms", 'r', &|(_, l)| f(l.latency.p50_ms, 3)),
                ("p99 ms", 'r', &|(_, l)| f(l.latency.p99_ms, 3)),
                ("server p99 ms", 'r', &|(_, l)| opt(server_p99_ms(l), 3)),
                ("mean batch rows", 'r', &|(_, l)| {
                    opt(l.server_timing.get("batch_rows").map(|v| v.mean), 1)
                }),
                ("conn. wait p50 ms", 'r', &|(_, l)| {
                    f(l.connection_wait.p50_ms, 3)
                }),
                ("errors", 'l', &|(_, l)| errors(l)),
                ("dropped", 'r', &|(_, l)| l.dropped.to_string()),
                ("p99 ≤ T", 'l', &|(_, l)| within(l).into()),
            ],
        );
        let rate = m.rates.get(i).copied().unwrap_or(0.0);
        let pct = fraction * 100.0;
        let _ = write!(
            md,
            "\n#### {} at {pct:.0} % of capacity ({rate:.0} req/s)\n\n{rows}\n",
            m.model
        );
        let Some((_, target)) = runs.iter().find(|(k, _)| is_target(k)) else {
            continue;
        };
        let best_fixed = runs
            .iter()
            .filter(|(k, _)| !is_target(k))
            .max_by(|a, b| a.1.requests_per_s.total_cmp(&b.1.requests_per_s));
        let p99 = target.latency.p99_ms;
        let mut verdict = format!(
            "at {pct:.0} % of capacity, **latency_target_ms = {}**: end-to-end p99 {p99:.3} ms (≤ T: {})",
            m.target_ms,
            yes_no(p99 <= m.target_ms)
        );
        if let Some(sp) = server_p99_ms(target) {
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
                target.requests_per_s, b.requests_per_s, yes_no(r >= 0.99)
            );
        }
        if runs.iter().any(|(_, l)| saturated(l)) {
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
    let server = |p: fn(&crate::stats::ValueSummary) -> f64| {
        opt(l.server_timing.get(SERVER_TOTAL).map(|v| p(v) / 1000.0), 3)
    };
    row![
        label,
        f(l.ok as f64 / l.duration_s.max(1e-9), 0),
        format!("{:.1} %", 100.0 * refused as f64 / l.sent.max(1) as f64),
        opt(l.service_by_status.get("http_429").map(|s| s.p99_ms), 3),
        format!("{} / {}", server(|v| v.p50), server(|v| v.p99)),
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
    let q = m.max_queue_size;
    o.put(&[
        ("o.inputs", m.inputs.to_string()),
        ("o.width", m.width.to_string()),
        ("o.layers", m.layers.to_string()),
        ("o.batch", m.max_batch_size.to_string()),
        ("o.queue", q.to_string()),
        ("o.t", t.to_string()),
        ("o.rows", m.rows_per_request.to_string()),
        ("o.c", cap.concurrency.to_string()),
        ("o.cap", f(m.capacity_rps, 0)),
        ("o.batch_rows", f(batch_rows(cap), 1)),
        ("o.compute", opt(compute, 2)),
        ("o.multiple", f(m.multiple, 1)),
        ("o.rate", f(m.rate, 0)),
        ("o.s", l.duration_s.to_string()),
        ("o.timeout", m.timeout_s.to_string()),
        ("o.sent", f(l.achieved_rate, 0)),
        ("o.x", f(div(l.achieved_rate, m.capacity_rps), 1)),
    ]);
    let total = l.sent.max(1) as f64;
    let statuses: Vec<_> = l.latency_by_status.iter().collect();
    let mut outcomes = tab::<(&String, &LatencySummary)>(
        &statuses,
        &[
            ("outcome", 'l', &|(k, _)| k.replace("http_", "HTTP ")),
            ("requests", 'r', &|(_, s)| s.count.to_string()),
            ("share", 'r', &|(_, s)| {
                format!("{:.1} %", 100.0 * s.count as f64 / total)
            }),
            ("p50 ms", 'r', &|(_, s)| f(s.p50_ms, 3)),
            ("p99 ms", 'r', &|(_, s)| f(s.p99_ms, 3)),
            ("max ms", 'r', &|(_, s)| f(s.max_ms, 3)),
            ("p99 from actual send ms", 'r', &|(k, _)| {
                f(l.service_by_status.get(*k).map_or(0.0, |s| s.p99_ms), 3)
            }),
        ],
    );
    if l.dropped > 0 {
        let _ = write!(
            outcomes,
            "\n| not sent (client's in-flight cap) | {} |  |  |  |  |  |",
            l.dropped
        );
    }
    let empty = LatencySummary::default();
    let refused = l.latency_by_status.get("http_429").unwrap_or(&empty);
    let admitted = l.latency_by_status.get("http_200").unwrap_or(&empty);
    let unanswered = unanswered(l);
    let shed = |k: &String| k.starts_with("http_") && !LOAD_SHEDDING.contains(&k.as_str());
    let other_http: u64 = l
        .errors
        .iter()
        .filter(|(k, _)| shed(k))
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
    let (before, after) = (mib(m.rss_before_kib), mib(m.rss_after_kib));
    o.put(&[
        ("o.unanswered", unanswered.to_string()),
        ("o.other", other_http.to_string()),
        (
            "o.answered",
            yes_no(unanswered == 0 && other_http == 0).into(),
        ),
        ("o.wire", f(wire, 3)),
        ("o.refused", f(refused.p99_ms, 3)),
        ("o.wire_ok", wire_met.into()),
        ("o.server", opt(server_p99, 3)),
        ("o.server_ok", server_met.into()),
        ("o.e2e", f(admitted.p99_ms, 3)),
        ("o.e2e_ok", e2e_met.into()),
        ("o.before", f(before, 1)),
        ("o.after", f(after, 1)),
        ("o.growth", format!("{growth:+.0}")),
        ("o.peak", f(mib(m.rss_peak_kib), 1)),
    ]);
    o.set("overload", outcomes);
    let mut shed_head = String::new();
    if let Some(shed) = ov.shed.as_ref().and_then(|r| r.levels.first()) {
        let shed_p99 = server_p99_ms(shed);
        let shed_met = yes_no(shed.ok > 0 && shed_p99.is_some_and(|p| p <= t));
        let rows = [
            admission_row(&format!("`max_queue_size = {q}`"), l),
            admission_row("`shed_beyond_target = true`", shed),
        ];
        let head = "admission | 200 answered/s | 429 share | 429 p99 on the wire ms | admitted p50 / p99 in the server ms | admitted p99 end to end ms | unanswered";
        o.set("shedding", table(head, "lrrrrrr", &rows));
        let bound = m.shed_max_queue_size.to_string();
        o.put(&[
            ("s.bound", bound),
            ("s.p99", opt(shed_p99, 3)),
            ("s.ok", shed_met.into()),
        ]);
        shed_head = format!(" With `shed_beyond_target` instead of the small queue: admitted p99 in the server {} ms (≤ {t} ms: {shed_met}).", opt(shed_p99, 1));
    }
    o.heads.push(format!(
        "Overload at {:.1}× capacity: 429 p99 **{wire:.2} ms** on the wire (< 5 ms: {wire_met}; {:.1} ms from the intended send), admitted p99 in the server **{} ms** (≤ {t} ms: {server_met}; end to end {:.1} ms: {e2e_met}), {unanswered} unanswered, RSS {before:.0} → {after:.0} MiB.{shed_head}",
        div(l.achieved_rate, m.capacity_rps), refused.p99_ms, opt(server_p99, 3), admitted.p99_ms,
    ));
}

const BUSY: &str = "convoy_device_busy_ratio";
const PADDING: &str = "convoy_batch_padding_ratio";
const BATCH: &str = "convoy_batch_size_rows";

/// The series of metric `name` of kind `kind`.
fn series<'a>(
    metrics: &'a BTreeMap<String, MetricFigure>,
    name: &'a str,
    kind: &'a str,
) -> impl Iterator<Item = &'a MetricFigure> {
    metrics
        .iter()
        .filter(move |(s, f)| crate::prom::metric_name(s) == name && f.kind == kind)
        .map(|(_, f)| f)
}

/// Mean of the gauge series of `name` (averaged over instances), if scraped.
fn gauge_mean(metrics: &BTreeMap<String, MetricFigure>, name: &str) -> Option<f64> {
    let v: Vec<f64> = series(metrics, name, "gauge").map(|f| f.mean).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Δsum/Δcount of histogram `name` over all its series, if any observation was made.
fn histogram_mean(metrics: &BTreeMap<String, MetricFigure>, name: &str) -> Option<f64> {
    let (sum, n) = series(metrics, name, "histogram").fold((0.0, 0u64), |(s, n), f| {
        (s + f.sum.unwrap_or(0.0), n + f.samples)
    });
    (n > 0).then(|| sum / n as f64)
}

/// Latency and the mean stage times (ms) of a pipeline level.
fn stage_cells(l: &ClosedLevel) -> Vec<String> {
    let [_, p50, p99] = perf(l, true);
    let mut cells = row![l.concurrency, f(l.rows_per_s, 0), p50, p99];
    let stage = |k| opt(l.server_timing.get(k).map(|v| v.mean / 1000.0), 3);
    cells.extend(["pre_us", "queue_us", "infer_us", "post_us"].map(stage));
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
                let pad = histogram_mean(&l.metrics, PADDING);
                cells.push(pad.map_or_else(|| "–".into(), |v| format!("{:.1} %", v * 100.0)));
                cells.push(opt(gauge_mean(&l.metrics, BUSY), 2));
                rows.push(cells);
            }
        }
        let head = "body | bucketing | c | texts/s | p50 ms | p99 ms | pre ms | queue ms | infer ms | post ms | batch rows | padding | device busy";
        o.set("minilm", table(head, "llrrrrrrrrrrr", &rows));
        let alt = "MiniLM: requests/s (one text each) vs concurrency, short and mixed lengths";
        o.plot(x, "minilm", "minilm", alt);
        let run = |body: &str, bucketing: Option<&str>| {
            let found = p
                .minilm
                .iter()
                .find(|(b, k, _)| b == body && bucketing.is_none_or(|w| k == w));
            found.and_then(|(_, _, r)| top(r))
        };
        let mut lines = Vec::new();
        if let Some((l, busy)) =
            run("short", None).and_then(|l| Some((l, gauge_mean(&l.metrics, BUSY)?)))
        {
            lines.push(format!(
                "MiniLM device busy at c={} (short texts): **{busy:.2}** (target ≥ 0.9: {}).",
                l.concurrency,
                yes_no(busy >= 0.9)
            ));
        }
        let pad =
            |k| run("mixed", Some(k)).and_then(|l| Some((l, histogram_mean(&l.metrics, PADDING)?)));
        if let (Some((on_l, on)), Some((off_l, off))) = (pad("on"), pad("off")) {
            lines.push(format!(
                "MiniLM padding at c={} with mixed lengths: **{:.1} %** of token slots with bucketing vs **{:.1} %** without; throughput {:.0} vs {:.0} texts/s ({}).",
                on_l.concurrency, on * 100.0, off * 100.0, on_l.rows_per_s, off_l.rows_per_s, ratio(on_l.rows_per_s, off_l.rows_per_s)
            ));
        }
        for line in lines {
            let _ = write!(o.values.get_mut("minilm").expect("set above"), "\n\n{line}");
            o.heads.push(line);
        }
    }
    let Some(r) = &p.efficientnet else {
        return o.set(
            "efficientnet.absent",
            format!("Skipped: {}.", p.manifest.efficientnet),
        );
    };
    let rows: Vec<_> = r
        .levels
        .iter()
        .map(|l| [stage_cells(l), row![opt(gauge_mean(&l.metrics, BUSY), 2)]].concat())
        .collect();
    let head = "c | images/s | p50 ms | p99 ms | pre ms | queue ms | infer ms | post ms | batch rows | device busy";
    let md = format!(
        "Image: {}.\n\n{}",
        p.manifest.sample,
        table(head, "rrrrrrrrrr", &rows)
    );
    o.set("efficientnet", md);
    if let Some(l) = top(r) {
        o.heads.push(format!(
            "EfficientNet classify (raw PNG) at c={}: {:.0} images/s, p99 {:.1} ms.",
            l.concurrency, l.rows_per_s, l.latency.p99_ms
        ));
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
    use crate::testkit::{closed, closed_level, lat, open, open_level, patched, vs};
    use serde_json::json;

    /// A closed level with a batch of 32 rows, 50 µs of compute, 200 µs in the server.
    fn lvl(c: usize, rps: f64) -> ClosedLevel {
        let timing = json!({"compute_us": vs(50.0, 80.0), "batch_rows": vs(32.0, 64.0), SERVER_TOTAL: vs(200.0, 300.0)});
        closed_level(
            json!({"concurrency": c, "requests_per_s": rps, "rows_per_s": rps,
            "ok": (rps * 10.0) as u64, "client_cpu_pct": 40.0, "server_timing": timing}),
        )
    }

    /// An open level at `rps` with end-to-end p99 `p99` ms and server p99 `server_us` µs.
    fn olvl(rps: f64, p99: f64, server_us: f64) -> OpenLevel {
        let timing = json!({SERVER_TOTAL: vs(500.0, server_us), "batch_rows": vs(12.5, 20.0)});
        open_level(
            json!({"target_rate": rps, "achieved_rate": rps, "requests_per_s": rps,
            "rows_per_s": rps, "latency": lat(1.0, p99, 1000), "server_timing": timing}),
        )
    }

    fn inputs(extra: Extra) -> ReportInputs {
        let ceiling = |b: usize, rows: f64| {
            json!({"batch_size": b, "duration_s": 1.0, "runs": 1,
            "runs_per_s": rows / b as f64, "rows_per_s": rows, "latency": lat(0.004, 0.004, 1)})
        };
        let ceiling = json!({"mode": "ceiling", "model": "m.onnx", "ort_lib": "lib.so",
            "intra_threads": 1, "features": 10, "reference_max_abs_err": 1e-7,
            "levels": [ceiling(1, 100_000.0), ceiling(64, 2_000_000.0)]});
        let mut b1 = lvl(1, 1000.0);
        b1.latency.p50_ms = 0.25;
        let machine = json!({"logical_cpus": 2, "cpu_model": "Test CPU", "memory": "8.0 GiB", "kernel": "6.0"});
        let stats = r#"{"model_stats":[{"execution_count":4,"inference_count":10}]}"#;
        ReportInputs {
            machine: patched(machine, json!({})),
            commit: "abc1234".into(),
            date: "2025-01-01".into(),
            rustc: "rustc 1.95.0".into(),
            ort_version: "1.31.1".into(),
            raw_dir: "results".into(),
            wall_s: Some(600.0),
            loadavg: ("0.10 0.20 0.30".into(), "1.00 0.50 0.40".into()),
            batched: closed(vec![b1, lvl(64, 20000.0)]),
            unbatched: closed(vec![lvl(1, 1000.0), lvl(64, 5000.0)]),
            ceiling: patched(ceiling, json!({})),
            stats: vec![("batched".into(), "stats-batched.json".into(), stats.into())],
            configs: vec![("batched".into(), "max_batch_size = 64\n".into())],
            extra,
        }
    }

    #[test]
    fn fill_substitutes_keeps_or_replaces_blocks_and_rejects_unknown_keys() {
        let v: BTreeMap<String, String> = [("a", "1"), ("b", "2"), ("c.absent", "why")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        assert_eq!(
            fill("x {{a}}\n{{#b}}\nb={{b}}\n{{/b}}\nend", &v, "-").unwrap(),
            "x 1\nb=2\nend"
        );
        let blocks = "{{#c}}\n{{c}}\n{{/c}}\n{{#d}}\n{{d}}\n{{/d}}\n";
        assert_eq!(fill(blocks, &v, "-").unwrap(), "why\n-\n");
        assert_eq!(fill("{{zz}}", &v, "-").unwrap_err(), "no value for {{zz}}");
        assert!(fill("{{#a}} no end", &v, "-").is_err());
    }

    #[test]
    fn renders_batching_ceiling_and_overhead_and_marks_sections_not_run() {
        let md = render(&inputs(Extra::default()));
        assert!(!md.contains("{{"), "{md}");
        for want in [
            "| 64 | **batched / unbatched** | **4.00×** | **4.00×** | 1.00× | 1.00× |  |  |",
            "- Dynamic batching vs max_batch_size = 1 at c=64: **4.00×** throughput (20000 vs 5000 req/s)",
            "| best batched rows/s over the ceiling's | **1.0 %**: 20000 (c=64) / 2000000 (batch 64) = 0.010× | ≥ 0.9× | **not met** |",
            // c=1: 0.25 ms against 0.004 ms is +246 µs, 200 of them inside the server.
            "| 0.250 ms vs 0.004 ms, +246 µs | ≤ +150 µs | **not met** |",
            "| – µs, 50 µs, 200 µs; ~46 µs |",
            "| unbatched server / ceiling at batch 1 | 5.0 % (5000 vs 100000 rows/s) |",
            "| batched | 4 | 10 | 2.50 | n/a | n/a |",
            "## Instances: one device worker vs two (closed loop)\n\nNot measured in this run.\n",
        ] {
            assert!(md.contains(want), "{want:?} not in {md}");
        }
        let quick = render(&inputs(Extra {
            quick: true,
            ..Extra::default()
        }));
        assert!(quick.contains("## Cost of recording metrics\n\nNot run in `--quick` mode.\n"));
        assert!(quick.contains("(`loadtests/peers.sh --quick` is the peers' smoke run)"));
    }

    #[test]
    fn instances_and_wire_compare_by_concurrency() {
        let rows64 = |mut l: ClosedLevel| {
            l.rows_per_s = l.requests_per_s * 64.0;
            ClosedReport {
                rows_per_request: 64,
                ..closed(vec![l])
            }
        };
        let x = Extra {
            instances: Some((
                closed(vec![lvl(64, 20000.0)]),
                closed(vec![lvl(16, 1.0), lvl(64, 19000.0)]),
            )),
            wire: Some((rows64(lvl(16, 2000.0)), rows64(lvl(16, 3000.0)))),
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
        assert_eq!(o.values["i.batch"], "32 rows: 50 µs");
        assert!(o.values["wire"]
            .contains("| 16 | 128000 | 1.000 | 2.000 | 192000 | 1.000 | 2.000 | **1.50×** |"));
        assert_eq!(o.heads[1], "v2 binary tensors vs JSON, 64-row requests at c=16: **1.50×** the rows/s (192000 vs 128000).");
    }

    fn metrics_head(on: &[f64], rss: Option<MetricsRss>) -> Filled {
        let sliced = |rps: &[f64]| {
            let mut l = lvl(64, rps.iter().sum::<f64>() / rps.len() as f64);
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
        o
    }

    #[test]
    fn metrics_cost_pairs_rounds_and_bounds_the_cost() {
        let o = metrics_head(&[9900.0, 10100.0, 10000.0, 10000.0], None);
        let (md, head) = (&o.values["metrics"], &o.heads[0]);
        assert!(
            md.contains("| 2 | off, on | 10100 | 10000 | 1.01× |"),
            "{md}"
        );
        let all =
            "| **all** |  | **10000** (p99 2.000 ms) | **10000** (p99 2.000 ms) | **1.000** |";
        assert!(md.contains(all), "{md}");
        // Ratios .99, 1.01, 1, 1: sd 0.00816, 2 SE = 0.00816.
        let v = |k: &str| o.values[k].as_str();
        assert_eq!(
            [v("m.mean"), v("m.half"), v("m.lo"), v("m.hi")],
            ["1.000", "0.008", "-0.8", "0.8"]
        );
        assert!(head.contains("target < 2 %: met)"), "{head}");
        assert!(!o.values.contains_key("m.rss"));
        let o = metrics_head(&[7000.0, 10000.0, 10000.0, 13000.0], None);
        assert!(
            o.heads[0].contains("not resolved by this run"),
            "{}",
            o.heads[0]
        );
        let rss = MetricsRss {
            on_before_kib: 10240,
            on_after_kib: 30720,
            off_before_kib: 10240,
            off_after_kib: 11264,
        };
        let o = metrics_head(&[9000.0, 9000.0, 9100.0, 8900.0], Some(rss));
        let head = &o.heads[0];
        assert!(head.contains("target < 2 %: **not met**"), "{head}");
        // +20 MiB over the 90000 requests served (10 s at 9000 req/s).
        let v = |k: &str| o.values[k].as_str();
        assert_eq!(
            [v("m.on_b"), v("m.on_a"), v("m.on_g"), v("m.per_req")],
            ["10.0", "30.0", "+20.0", "233"]
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
        let manifest = json!({"model": "mlp", "capacity_rps": 10000.0, "capacity_source": "measured",
            "fractions": [0.8, 0.4], "rates": [8000.0, 4000.0], "target_ms": 5.0, "delays_us": [0, 5000],
            "target_why": "Because.", "rounds": 4});
        Slo {
            manifest: patched(manifest, json!({})),
            runs: vec![
                (
                    "max_queue_delay_us = 0".into(),
                    two(olvl(7990.0, 3.0, 900.0)),
                ),
                (
                    "max_queue_delay_us = 5000".into(),
                    two(olvl(8000.0, 9.0, 5200.0)),
                ),
                (
                    "latency_target_ms = 5".into(),
                    two(olvl(target_rps, target_p99, 4800.0)),
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
        let mut l = olvl(10000.0, 30.0, 1000.0);
        (l.ok, l.error_total, l.sent) = (2000, 8000, 10000);
        l.errors = [("http_429".to_string(), 8000)].into();
        let by = |a: Value, b: Value| patched(json!({"http_200": a, "http_429": b}), json!({}));
        l.latency_by_status = by(lat(20.0, 40.0, 2000), lat(0.5, 1.5, 8000));
        l.service_by_status = by(lat(19.0, 38.0, 2000), lat(0.4, 1.2, 8000));
        let manifest = json!({"capacity_rps": 2000.0, "multiple": 5.0, "rate": 10000.0, "timeout_s": 5.0,
            "max_batch_size": 8, "max_queue_size": 32, "latency_target_ms": 50.0, "layers": 32, "width": 512,
            "inputs": 16, "rows_per_request": 2, "rss_before_kib": 102400, "rss_after_kib": 103424,
            "rss_peak_kib": 110000, "shed_max_queue_size": 1024});
        Overload {
            manifest: patched(manifest, json!({})),
            capacity: closed(vec![lvl(16, 2000.0)]),
            open: open(vec![l]),
            shed: None,
        }
    }

    use serde_json::Value;

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
        let refused = "| HTTP 429 | 8000 | 80.0 % | 0.500 | 1.500 | 3.000 | 1.200 |";
        assert!(md.contains(refused), "{md}");
        let v = |k: &str| o.values[k].as_str();
        let answered = [v("o.unanswered"), v("o.other"), v("o.answered")];
        assert_eq!(answered, ["0", "0", "met"]);
        let wire = [v("o.wire"), v("o.refused"), v("o.wire_ok")];
        assert_eq!(wire, ["1.200", "1.500", "met"]);
        assert_eq!([v("o.server"), v("o.server_ok")], ["1.000", "met"]);
        let rss = [v("o.before"), v("o.after"), v("o.growth"), v("o.peak")];
        assert_eq!(rss, ["100.0", "101.0", "+1024", "107.4"]);
        // Sent at 10000 req/s, 5× the capacity.
        assert_eq!(
            (o.values["o.sent"].as_str(), o.values["o.x"].as_str()),
            ("10000", "5.0")
        );
        assert!(o.heads[0].starts_with("Overload at 5.0× capacity: 429 p99 **1.20 ms** on the wire (< 5 ms: met; 1.5 ms from the intended send), admitted p99 in the server **1.000 ms** (≤ 50 ms: met; end to end 40.0 ms: met)"));
        assert!(!o.values.contains_key("shedding"));
        let mut l = ov.open.levels[0].clone();
        l.ok = 4000;
        l.server_timing = patched(json!({SERVER_TOTAL: vs(46000.0, 52000.0)}), json!({}));
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
        let v = |k: &str| o.values[k].as_str();
        assert_eq!(
            [v("s.bound"), v("s.p99"), v("s.ok")],
            ["1024", "52.000", "**not met**"]
        );
        assert!(o.heads[0].ends_with("admitted p99 in the server 52.0 ms (≤ 50 ms: **not met**)."));
    }

    #[test]
    fn pipelines_report_busy_padding_and_skips() {
        let with = |rps: f64, series: &str, kind: &str, mean: f64| {
            let figure = json!({"kind": kind, "mean": mean, "samples": 100, "sum": mean * 100.0});
            let mut l = lvl(64, rps);
            l.metrics = patched(json!({ series: figure }), json!({}));
            closed(vec![l])
        };
        let busy = "convoy_device_busy_ratio{model=\"minilm\",worker=\"0\"}";
        let pad = "convoy_batch_padding_ratio{model=\"minilm\"}";
        let manifest = json!({"minilm": "measured", "efficientnet": "model.onnx is absent"});
        let minilm = vec![
            (
                "short".into(),
                "on".into(),
                with(300.0, busy, "gauge", 0.95),
            ),
            (
                "mixed".into(),
                "on".into(),
                with(200.0, pad, "histogram", 0.1),
            ),
            (
                "mixed".into(),
                "off".into(),
                with(200.0, pad, "histogram", 0.4),
            ),
        ];
        let pipelines_ = Pipelines {
            manifest: patched(manifest, json!({})),
            minilm,
            efficientnet: None,
        };
        let mut o = Filled::default();
        pipelines(
            &mut o,
            &Extra {
                pipelines: Some(pipelines_),
                ..Extra::default()
            },
        );
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
        let good = closed(vec![lvl(1, 100.0)]);
        let bad = closed(vec![closed_level(
            json!({"concurrency": 16, "ok": 0, "requests_per_s": 0.0, "error_total": 3, "errors": {"connect": 3}}),
        )]);
        let x = Extra {
            overload: Some(overload_fixture()),
            ..Extra::default()
        };
        assert_eq!(problems(&good, &good, &x), Vec::<String>::new());
        let p = problems(&good, &bad, &x);
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
