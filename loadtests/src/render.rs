//! Markdown rendering of the load-test report.
//!
//! A pure function of already-loaded results, so the tables and ratios that end up in the
//! committed RESULTS.md are unit-tested rather than checked by eye.

use std::fmt::Write as _;

use crate::ceiling::CeilingReport;
use crate::closed::{ClosedLevel, ClosedReport};
use crate::cpu::format_cpu;
use crate::machine::Machine;
use crate::sections::{self, Extra};
use crate::server_stats::stats_row;

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
    /// The sections beyond batching vs no batching.
    pub extra: Extra,
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

fn level_row(out: &mut String, c: usize, config: &str, l: &ClosedLevel) {
    let _ = writeln!(
        out,
        "| {c} | {config} | {:.0} | {:.0} | {:.3} | {:.3} | {} | {} |",
        l.requests_per_s,
        l.rows_per_s,
        l.latency.p50_ms,
        l.latency.p99_ms,
        l.error_total,
        format_cpu(l.client_cpu_pct)
    );
}

fn comparison_table(out: &mut String, r: &ReportInputs) {
    out.push_str(
        "| concurrency | config | req/s | rows/s | p50 ms | p99 ms | errors | client CPU |\n",
    );
    out.push_str("|---:|---|---:|---:|---:|---:|---:|---:|\n");
    for b in &r.batched.levels {
        let c = b.concurrency;
        level_row(out, c, "batched", b);
        let Some(u) = r.unbatched.levels.iter().find(|u| u.concurrency == c) else {
            continue;
        };
        level_row(out, c, "max_batch_size = 1", u);
        let _ = writeln!(
            out,
            "| {c} | **batched / unbatched** | **{}** | **{}** | {} | {} | | |",
            ratio(b.requests_per_s, u.requests_per_s),
            ratio(b.rows_per_s, u.rows_per_s),
            ratio(b.latency.p50_ms, u.latency.p50_ms),
            ratio(b.latency.p99_ms, u.latency.p99_ms),
        );
    }
}

fn ceiling_table(out: &mut String, c: &CeilingReport) {
    out.push_str("| batch size | runs/s | rows/s | mean ms | p50 ms | p99 ms |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|\n");
    for l in &c.levels {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {:.4} | {:.4} | {:.4} |",
            l.batch_size,
            l.runs_per_s,
            l.rows_per_s,
            l.latency.mean_ms,
            l.latency.p50_ms,
            l.latency.p99_ms
        );
    }
}

/// The saturation paragraph: the best server throughput over the ceiling it is bounded by.
fn saturation(out: &mut String, r: &ReportInputs) {
    let best = |rep: &ClosedReport| {
        rep.levels
            .iter()
            .max_by(|a, b| a.rows_per_s.total_cmp(&b.rows_per_s))
            .cloned()
    };
    // Batch 64 when measured (the committed max_batch_size), else the largest batch.
    let at = |batch: usize| {
        let levels = &r.ceiling.levels;
        levels
            .iter()
            .find(|l| l.batch_size == batch)
            .or_else(|| levels.iter().max_by_key(|l| l.batch_size))
    };
    if let (Some(b), Some(ceil)) = (best(&r.batched), at(64)) {
        let _ = writeln!(
            out,
            "- **Server at saturation / ceiling: {}** — best batched throughput {:.0} rows/s \
             (concurrency {}) over the in-process ceiling at batch {} ({:.0} rows/s).",
            percent(b.rows_per_s, ceil.rows_per_s),
            b.rows_per_s,
            b.concurrency,
            ceil.batch_size,
            ceil.rows_per_s
        );
        let ratio = b.rows_per_s / ceil.rows_per_s.max(1e-9);
        let server = b
            .server_timing
            .get(crate::stats::SERVER_TOTAL)
            .map(|v| v.mean);
        let _ = writeln!(
            out,
            "- Target **≥ 0.9× the in-process ceiling at saturation**: {ratio:.3}× ({}). At \
             that level the server's own queue + compute time is {} µs per request on \
             average (the batcher and ONNX Runtime), and the ceiling spends {:.2} µs per \
             row, while the server completes a request only every {:.0} µs: the difference \
             is HTTP, JSON and the async runtime, per request, on 2 cores shared with the \
             load generator.",
            sections::yes_no(ratio >= 0.9),
            server.map_or("?".into(), |v| format!("{v:.0}")),
            1e6 / ceil.rows_per_s.max(1e-9),
            1e6 / b.requests_per_s.max(1e-9),
        );
    }
    if let (Some(b1), Some(c1)) = (
        r.batched.levels.iter().find(|l| l.concurrency == 1),
        r.ceiling.levels.iter().find(|l| l.batch_size == 1),
    ) {
        let gap_us = (b1.latency.p50_ms - c1.latency.p50_ms) * 1000.0;
        let part = |k: &str| {
            b1.server_timing
                .get(k)
                .map_or("?".into(), |v| format!("{:.0}", v.p50))
        };
        let inside_us = b1
            .server_timing
            .get(crate::stats::SERVER_TOTAL)
            .map_or(0.0, |v| v.p50);
        let _ = writeln!(
            out,
            "- Target **p50 at concurrency 1 within 150 µs of the in-process single run**: \
             {:.3} ms vs {:.3} ms, {gap_us:+.0} µs ({}). Inside the server (p50s from the \
             response headers): queue {} µs, compute {} µs, together {} µs; the other ~{:.0} \
             µs are the HTTP request and response, JSON decoding and encoding, the hand-offs \
             between the runtime, the scheduler thread and the device worker, and the \
             loopback round trip of a client on the same cores.",
            b1.latency.p50_ms,
            c1.latency.p50_ms,
            sections::yes_no(gap_us <= 150.0),
            part("queue_us"),
            part("compute_us"),
            part(crate::stats::SERVER_TOTAL),
            gap_us - inside_us,
        );
    }
    if let (Some(u), Some(ceil)) = (best(&r.unbatched), at(1)) {
        let _ = writeln!(
            out,
            "- Unbatched server / ceiling at batch {}: {} ({:.0} vs {:.0} rows/s): the per-request \
             cost of HTTP, JSON and queueing when every request is its own session run.",
            ceil.batch_size,
            percent(u.rows_per_s, ceil.rows_per_s),
            u.rows_per_s,
            ceil.rows_per_s
        );
    }
}

fn batch_stats(out: &mut String, r: &ReportInputs) {
    out.push_str(
        "\n## Server batch statistics\n\n\
         From `GET /v2/models/mlp/stats` after each closed-loop run: cumulative over all \
         concurrency levels, warm-up included.\n\n\
         | server | batches run | rows | mean rows per batch | mean queue ms | \
         mean compute ms per batch |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for (label, _, text) in &r.stats {
        let _ = writeln!(out, "{}", stats_row(label, text));
    }
    let links: Vec<String> = r
        .stats
        .iter()
        .map(|(_, name, _)| format!("[`{name}`]({}/{name})", r.raw_dir))
        .collect();
    let _ = writeln!(out, "\nRaw: {}.", links.join(", "));
}

/// Headline of the batching comparison: batched over unbatched at the highest common
/// concurrency, and the share of the in-process ceiling reached.
fn batching_headline(r: &ReportInputs) -> Option<String> {
    let b = r.batched.levels.iter().max_by_key(|l| l.concurrency)?;
    let u = r
        .unbatched
        .levels
        .iter()
        .find(|u| u.concurrency == b.concurrency)?;
    Some(format!(
        "Dynamic batching vs max_batch_size = 1 at c={}: **{}** throughput ({:.0} vs {:.0} req/s), \
         p99 {:.2} vs {:.2} ms.",
        b.concurrency,
        ratio(b.requests_per_s, u.requests_per_s),
        b.requests_per_s,
        u.requests_per_s,
        b.latency.p99_ms,
        u.latency.p99_ms
    ))
}

fn machine_section(out: &mut String, r: &ReportInputs) {
    let m = &r.machine;
    let wall = r.wall_s.map_or_else(
        || "unknown".to_string(),
        |s| format!("{:.1} min (measurements only, after the build)", s / 60.0),
    );
    let _ = write!(
        out,
        "## Machine\n\n\
         | | |\n|---|---|\n\
         | CPU | {} ({} logical CPUs) |\n\
         | Memory | {} |\n\
         | Kernel | {} |\n\
         | rustc | {} |\n\
         | ONNX Runtime | {} (CPU execution provider) |\n\
         | Commit | `{}` |\n\
         | Date | {} |\n\
         | Run time | {wall} |\n\
         | Load average (1/5/15 min) | {} at the start, {} at the end |\n\n\
         Client and server share the machine: `convoy-load` runs on one tokio thread, the \
         server gets the rest. The load average shows whether anything else ran meanwhile \
         (other builds on a shared machine make every figure noisier; the comparisons \
         below are made within one run for that reason).\n\n",
        m.cpu_model,
        m.logical_cpus,
        m.memory,
        m.kernel,
        r.rustc,
        r.ort_version,
        r.commit,
        r.date,
        r.loadavg.0,
        r.loadavg.1
    );
}

/// The whole RESULTS.md.
pub fn render(r: &ReportInputs) -> String {
    let mut out = String::new();
    let first = r.batched.levels.first();
    let (warmup, duration) = first.map_or((0.0, 0.0), |l| (l.warmup_s, l.duration_s));
    let _ = write!(
        out,
        "# Convoy load-test results\n\n\
         Generated by `loadtests/run.sh` (the `convoy-load report` step); do not edit by hand.\n\
         Regenerate with `loadtests/run.sh` (about 16.5 minutes after the build with the peers \
         installed, at most 20; it rewrites PEERS.md too); `loadtests/run.sh --quick` is a \
         smoke run that writes to `loadtests/out/` instead.\n\n"
    );
    machine_section(&mut out, r);
    // The sections are rendered first so their headlines can lead the document.
    let mut body = String::new();
    let mut heads: Vec<String> = batching_headline(r).into_iter().collect();
    let _ = write!(
        body,
        "## Dynamic batching vs max_batch_size = 1 (closed loop)\n\n\
         Model `mlp` (FP32 [N,10] → [N,1]), {} row(s) per request, HTTP/1.1 keep-alive, \
         one connection per client task; {duration} s measured after {warmup} s warm-up \
         per concurrency level. `batched` serves the committed `models/mlp/model.toml` \
         (`latency_target_ms = 5`, the latency-target window); \
         `max_batch_size = 1` serves the same model.onnx without a `[dynamic_batching]` table. \
         Latency is request send to full response, successful requests only.\n\n",
        r.batched.rows_per_request
    );
    comparison_table(&mut body, r);
    sections::plot_link(
        &mut body,
        &r.extra,
        "batching",
        "MLP: requests/s vs concurrency, batched and max_batch_size = 1",
    );
    body.push_str("\n## In-process ceiling (ONNX Runtime alone)\n\n");
    let _ = write!(
        body,
        "One session, {} intra-op thread(s), the same model and runtime library, no HTTP: \
         each run wraps a pre-filled [batch, {}] buffer, runs the session and reads the output.",
        r.ceiling.intra_threads, r.ceiling.features
    );
    if let Some(err) = r.ceiling.reference_max_abs_err {
        let _ = write!(body, " Outputs match reference.json to {err:.1e}.");
    }
    body.push_str("\n\n");
    ceiling_table(&mut body, &r.ceiling);
    body.push_str("\n## Server overhead\n\n");
    saturation(&mut body, r);
    let x = &r.extra;
    heads.extend(crate::peers::section(
        &mut body,
        x.peers.as_ref(),
        &r.ceiling,
        x.quick,
    ));
    heads.extend(sections::wire(&mut body, x));
    heads.extend(sections::instances(&mut body, x));
    heads.extend(sections::metrics_cost(&mut body, x));
    if x.slo.is_empty() {
        body.push_str("\n## SLO-aware window vs fixed delays\n\n");
        body.push_str(if x.quick {
            "Not run in `--quick` mode.\n"
        } else {
            "Not measured in this run.\n"
        });
    }
    for s in &x.slo {
        heads.extend(sections::slo(&mut body, s, x.quick));
        sections::plot_link(
            &mut body,
            x,
            &format!("slo-{}", s.manifest.model),
            &format!(
                "{}: p50 (dashed) and p99 (solid) latency vs offered load, per config",
                s.manifest.model
            ),
        );
    }
    heads.extend(sections::overload(&mut body, x));
    heads.extend(sections::pipelines(&mut body, x));
    if !r.configs.is_empty() {
        body.push_str("\n## Model configurations\n");
        for (label, text) in &r.configs {
            let _ = write!(body, "\n{label}:\n\n```toml\n{}\n```\n", text.trim_end());
        }
        let _ = write!(
            body,
            "\nThe other sections' configs are derived from these by `loadtests/helpers.py \
             derive-config` and saved as `config-*.toml` in [`{0}/`]({0}/).\n",
            r.raw_dir
        );
    }
    if !r.stats.is_empty() {
        batch_stats(&mut body, r);
    }
    let _ = write!(
        body,
        "\n## Raw data\n\nThe JSON these tables are rendered from is in [`{0}/`]({0}/).\n",
        r.raw_dir
    );
    out.push_str("## Headlines\n\n");
    for h in &heads {
        let _ = writeln!(out, "- {h}");
    }
    out.push('\n');
    out.push_str(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ceiling::CeilingLevel;
    use crate::stats::LatencySummary;

    fn level(c: usize, rps: f64, p50: f64) -> ClosedLevel {
        ClosedLevel {
            concurrency: c,
            warmup_s: 2.0,
            duration_s: 10.0,
            ok: (rps * 10.0) as u64,
            error_total: 0,
            errors: Default::default(),
            requests_per_s: rps,
            rows_per_s: rps,
            client_cpu_pct: Some(40.0),
            latency_by_status: Default::default(),
            server_timing: Default::default(),
            metrics: Default::default(),
            slice_rps: Vec::new(),
            latency: LatencySummary {
                count: 1,
                mean_ms: p50,
                p50_ms: p50,
                p90_ms: p50,
                p99_ms: p50 * 2.0,
                max_ms: p50 * 3.0,
            },
        }
    }

    fn closed(levels: Vec<ClosedLevel>) -> ClosedReport {
        ClosedReport {
            mode: "closed".into(),
            url: "http://127.0.0.1:1/v2/models/mlp/infer".into(),
            rows_per_request: 1,
            client_threads: 1,
            levels,
        }
    }

    fn ceiling_level(batch: usize, rows_per_s: f64) -> CeilingLevel {
        CeilingLevel {
            batch_size: batch,
            duration_s: 1.0,
            runs: 1,
            runs_per_s: rows_per_s / batch as f64,
            rows_per_s,
            latency: LatencySummary::default(),
        }
    }

    fn inputs() -> ReportInputs {
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
            batched: closed(vec![level(1, 1000.0, 1.0), level(64, 20000.0, 3.0)]),
            unbatched: closed(vec![level(1, 1000.0, 1.0), level(64, 5000.0, 12.0)]),
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
                r#"{"model_stats":[{"execution_count":4,"inference_count":10,
                    "inference_stats":{"queue":{"count":10,"ns":5000000},
                    "compute_infer":{"count":4,"ns":200000}}}]}"#
                    .into(),
            )],
            configs: vec![("batched".into(), "max_batch_size = 64\n".into())],
            extra: Extra::default(),
        }
    }

    #[test]
    fn ratio_formats_and_guards_zero() {
        assert_eq!(ratio(3.0, 2.0), "1.50×");
        assert_eq!(ratio(3.0, 0.0), "n/a");
        assert_eq!(percent(1.0, 8.0), "12.5 %");
    }

    #[test]
    fn render_compares_by_concurrency() {
        let md = render(&inputs());
        assert!(md.contains("| 64 | batched | 20000 | 20000 | 3.000 | 6.000 | 0 | 40% |"));
        assert!(
            md.contains("| 64 | max_batch_size = 1 | 5000 | 5000 | 12.000 | 24.000 | 0 | 40% |")
        );
        assert!(md.contains(
            "| 64 | **batched / unbatched** | **4.00×** | **4.00×** | 0.25× | 0.25× | | |"
        ));
        assert!(md.contains("| 1 | **batched / unbatched** | **1.00×** |"));
    }

    #[test]
    fn render_reports_saturation_against_batch_64() {
        let md = render(&inputs());
        assert!(md.contains("Server at saturation / ceiling: 1.0 %"), "{md}");
        assert!(md.contains("at batch 64 (2000000 rows/s)"));
        assert!(md.contains("Unbatched server / ceiling at batch 1: 5.0 %"));
    }

    #[test]
    fn render_includes_machine_and_stats() {
        let md = render(&inputs());
        assert!(md.contains("| CPU | Test CPU (2 logical CPUs) |"));
        assert!(md.contains("| ONNX Runtime | 1.31.1 (CPU execution provider) |"));
        assert!(
            md.contains("| batched | 4 | 10 | 2.50 | 0.500 | 0.0500 |"),
            "{md}"
        );
        assert!(md.contains("[`stats-batched.json`](results/stats-batched.json)"));
        assert!(md.contains("Outputs match reference.json to 1.0e-7."));
        assert!(md.contains("batched:\n\n```toml\nmax_batch_size = 64\n```"));
        assert!(md.contains("| Run time | 10.0 min (measurements only, after the build) |"));
        assert!(md.contains("| Load average (1/5/15 min) | 0.10 0.20 0.30 at the start,"));
    }

    #[test]
    fn render_links_charts_and_puts_peers_after_the_ceiling() {
        let mut r = inputs();
        r.extra.plots = [(
            "batching".to_string(),
            "results/plot-batching.svg".to_string(),
        )]
        .into_iter()
        .collect();
        let md = render(&r);
        let chart = md
            .find("![MLP: requests/s vs concurrency, batched and max_batch_size = 1](results/plot-batching.svg)")
            .expect("batching chart linked");
        assert!(md.find("| 64 | **batched / unbatched**").unwrap() < chart);
        assert!(chart < md.find("## In-process ceiling").unwrap());
        let peers = md
            .find("## Peers: Convoy next to other model servers\n\nNot measured in this run.")
            .unwrap();
        assert!(md.find("## Server overhead").unwrap() < peers);
        assert!(peers < md.find("## Instances").unwrap());
        // No chart file, no link.
        assert!(!md.contains("plot-slo-mlp.svg"));
    }

    #[test]
    fn render_leads_with_headlines_and_marks_sections_not_run() {
        let md = render(&inputs());
        let heads = md.find("## Headlines").unwrap();
        assert!(heads < md.find("## Dynamic batching").unwrap());
        assert!(md.contains(
            "- Dynamic batching vs max_batch_size = 1 at c=64: **4.00×** throughput (20000 vs 5000 req/s)"
        ));
        assert!(md.contains(
            "## Instances: one device worker vs two (closed loop)\n\nNot measured in this run."
        ));
        assert!(md.contains("## SLO-aware window vs fixed delays\n\nNot measured in this run."));
    }
}
