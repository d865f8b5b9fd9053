//! `plot`: SVG charts from the JSON that `closed --json` and `open --json` write.
//!
//! Two kinds, each with one series per labelled file:
//!
//! - `plot throughput`: requests/s (or rows/s) against concurrency, closed-loop files;
//! - `plot latency`: latency percentiles (p50 and p99 by default) against the offered
//!   rate, open-loop files.
//!
//! The x axis is logarithmic with ticks at the measured levels. Drawn with `plotters`'
//! SVG backend only (no bitmap or font libraries): text goes out as `<text>` elements
//! that the viewer renders with its own sans-serif font; plotters only estimates label
//! widths for the layout. Extracting points, axis ranges, ticks and labels are pure
//! functions with tests; `render` turns a [`Chart`] into SVG text.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::closed::ClosedReport;
use crate::open::OpenReport;

#[derive(Args)]
pub struct PlotArgs {
    #[command(subcommand)]
    kind: PlotKind,
}

#[derive(Subcommand)]
enum PlotKind {
    /// Requests/s (or rows/s) against concurrency, one series per `closed --json` file.
    Throughput(ThroughputArgs),
    /// Latency percentiles against the offered rate, one series per `open --json` file.
    Latency(LatencyArgs),
}

#[derive(Args)]
struct CommonArgs {
    /// One series: LABEL=FILE (split at the last '=', so a label may hold one, e.g.
    /// "max_queue_delay_us = 0=slo.json"). Repeat it; series are drawn in this order.
    #[arg(long = "series", value_name = "LABEL=FILE", required = true, value_parser = parse_series)]
    series: Vec<(String, PathBuf)>,
    /// Chart title.
    #[arg(long)]
    title: Option<String>,
    /// Output SVG file.
    #[arg(long)]
    out: PathBuf,
    /// Width of the plot area in pixels (the legend is added to the right of it).
    #[arg(long, default_value_t = 640)]
    width: u32,
    /// Height in pixels.
    #[arg(long, default_value_t = 400)]
    height: u32,
}

#[derive(Args)]
struct ThroughputArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Requests/s, or rows/s (requests × rows per request).
    #[arg(long, value_enum, default_value = "requests")]
    metric: Metric,
    #[arg(long, value_enum, default_value = "linear")]
    y_scale: Scale,
}

#[derive(Args)]
struct LatencyArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Percentiles to draw (of the successful requests, from the intended send time):
    /// the last one solid, the others dashed.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "p50,p99")]
    percentiles: Vec<Percentile>,
    #[arg(long, value_enum, default_value = "log")]
    y_scale: Scale,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum Metric {
    Requests,
    Rows,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum Scale {
    Linear,
    Log,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum Percentile {
    P50,
    P90,
    P99,
    Max,
}

impl Percentile {
    fn name(self) -> &'static str {
        match self {
            Percentile::P50 => "p50",
            Percentile::P90 => "p90",
            Percentile::P99 => "p99",
            Percentile::Max => "max",
        }
    }
}

/// `LABEL=FILE`, split at the last '='.
pub fn parse_series(spec: &str) -> Result<(String, PathBuf), String> {
    match spec.rsplit_once('=') {
        Some((label, file)) if !label.trim().is_empty() && !file.is_empty() => {
            Ok((label.trim().to_string(), PathBuf::from(file)))
        }
        _ => Err(format!("expected LABEL=FILE, got {spec:?}")),
    }
}

/// One measured point. `flagged`: the level had failed or dropped requests, so its
/// throughput is not a clean figure and its latency covers the successful ones only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub flagged: bool,
}

/// Requests/s (or rows/s) per concurrency level, ascending; levels without a single
/// successful request are left out (nothing to draw on a log or zero-based axis).
pub fn throughput_points(r: &ClosedReport, metric: Metric) -> Vec<Point> {
    let mut points: Vec<Point> = r
        .levels
        .iter()
        .filter(|l| l.ok > 0 && l.concurrency > 0)
        .map(|l| Point {
            x: l.concurrency as f64,
            y: match metric {
                Metric::Requests => l.requests_per_s,
                Metric::Rows => l.rows_per_s,
            },
            flagged: l.error_total > 0,
        })
        .filter(|p| p.y > 0.0)
        .collect();
    points.sort_by(|a, b| a.x.total_cmp(&b.x));
    points
}

/// One latency percentile (ms) per offered rate, ascending; rates without a successful
/// request are left out.
pub fn latency_points(r: &OpenReport, p: Percentile) -> Vec<Point> {
    let mut points: Vec<Point> = r
        .levels
        .iter()
        .filter(|l| l.ok > 0 && l.target_rate > 0.0)
        .map(|l| Point {
            x: l.target_rate,
            y: match p {
                Percentile::P50 => l.latency.p50_ms,
                Percentile::P90 => l.latency.p90_ms,
                Percentile::P99 => l.latency.p99_ms,
                Percentile::Max => l.latency.max_ms,
            },
            flagged: l.error_total > 0 || l.dropped > 0,
        })
        .filter(|p| p.y > 0.0)
        .collect();
    points.sort_by(|a, b| a.x.total_cmp(&b.x));
    points
}

/// A log axis around positive values: a quarter more room on either side, and at
/// least a factor of 2 overall so one value still gets an axis.
pub fn log_range(values: impl IntoIterator<Item = f64>) -> Option<Range<f64>> {
    let (lo, hi) = min_max(values.into_iter().filter(|v| *v > 0.0))?;
    let (mut lo, mut hi) = (lo / 1.25, hi * 1.25);
    if hi / lo < 2.0 {
        let widen = (2.0 / (hi / lo)).sqrt();
        lo /= widen;
        hi *= widen;
    }
    Some(lo..hi)
}

/// A linear axis from zero to 8 % above the largest value.
pub fn linear_range(values: impl IntoIterator<Item = f64>) -> Option<Range<f64>> {
    let (_, hi) = min_max(values.into_iter().filter(|v| v.is_finite()))?;
    Some(0.0..if hi > 0.0 { hi * 1.08 } else { 1.0 })
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Ticks of a log axis over `range`: powers of ten, or 1-2-5, or finer steps, whichever
/// first gives at least three (at most eight, thinned evenly).
pub fn log_ticks(range: &Range<f64>) -> Vec<f64> {
    const STEPS: [&[f64]; 4] = [
        &[1.0],
        &[1.0, 2.0, 5.0],
        &[1.0, 2.0, 3.0, 5.0, 7.0],
        &[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    ];
    let (lo, hi) = (range.start, range.end);
    if !(lo > 0.0 && hi > lo) {
        return Vec::new();
    }
    let mut best = Vec::new();
    for steps in STEPS {
        let mut ticks = Vec::new();
        for e in lo.log10().floor() as i32..=hi.log10().ceil() as i32 {
            for m in steps {
                // Rounded so that 3 × 10^-1 prints as 0.3, not 0.30000000000000004.
                let v = round_sig(m * 10f64.powi(e), 6);
                if v >= lo && v <= hi {
                    ticks.push(v);
                }
            }
        }
        best = ticks;
        if best.len() >= 3 {
            break;
        }
    }
    thin(best, 8)
}

/// Tick positions at the given values (the measured levels), ascending, distinct, at most
/// `max` of them (thinned evenly, keeping the first and last).
pub fn value_ticks(values: impl IntoIterator<Item = f64>, max: usize) -> Vec<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v.dedup_by(|a, b| (*a - *b).abs() <= 1e-9 * b.abs().max(1.0));
    thin(v, max)
}

fn thin(v: Vec<f64>, max: usize) -> Vec<f64> {
    if v.len() <= max || max < 2 {
        return v;
    }
    let last = v.len() - 1;
    (0..max)
        .map(|i| v[(i * last + (max - 1) / 2) / (max - 1)])
        .collect()
}

fn round_sig(v: f64, digits: i32) -> f64 {
    if v == 0.0 {
        return 0.0;
    }
    let scale = 10f64.powi(digits - 1 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// An axis label: whole numbers with thousands separators from 100 up, else at most two
/// decimals without trailing zeros.
pub fn tick_label(v: f64) -> String {
    if v.abs() >= 100.0 {
        let n = v.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 {
            out.insert(0, '-');
        }
        out
    } else {
        let s = format!("{v:.2}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".to_string()
        } else {
            s.to_string()
        }
    }
}

/// Line colours (series in order); Convoy, listed first by the scripts, gets the red.
const COLORS: [RGBColor; 8] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x7f, 0x7f, 0x7f),
];

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Line {
    pub label: String,
    /// Index into the palette (lines of one series share it).
    pub color: usize,
    pub dashed: bool,
    pub points: Vec<Point>,
}

/// Everything `render` draws.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub y_log: bool,
    pub lines: Vec<Line>,
    /// Plot area, pixels; the legend is added to the right.
    pub width: u32,
    pub height: u32,
}

/// Font family of every text element. plotters writes sizes as given / 1.24 (16 is a
/// 12.9 px font in the SVG).
const FONT: &str = "sans-serif";

const FLAGGED_NOTE: &str = "× = errors or drops at that level";

/// Width of the legend column for these labels: the text starts 46 px in, and plotters
/// cannot measure SVG text, so 8 px per character (12.9 px sans-serif: digits and
/// underscores are ~7.2 px, most letters less) with a margin.
pub fn legend_width(labels: &[&str]) -> u32 {
    let chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    (chars as u32 * 8 + 56).clamp(140, 520)
}

fn footnote(chart: &Chart) -> Option<&'static str> {
    chart
        .lines
        .iter()
        .any(|l| l.points.iter().any(|p| p.flagged))
        .then_some(FLAGGED_NOTE)
}

/// The chart as SVG text.
pub fn render(chart: &Chart) -> Result<String> {
    let xs = || {
        chart
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.x))
    };
    let ys = || {
        chart
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.y))
    };
    let Some(x_range) = log_range(xs()) else {
        bail!("nothing to plot: no series has a level with successful requests");
    };
    let x_ticks = value_ticks(xs(), 10);
    let x_spec = x_range.log_scale().with_key_points(x_ticks);
    if chart.y_log {
        let y_range = log_range(ys()).context("no positive values for a log axis")?;
        let y_ticks = log_ticks(&y_range);
        draw(chart, x_spec, y_range.log_scale().with_key_points(y_ticks))
    } else {
        let y_range = linear_range(ys()).context("no values")?;
        draw(chart, x_spec, y_range)
    }
}

fn draw<X, Y>(chart: &Chart, x_spec: X, y_spec: Y) -> Result<String>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let shown: Vec<String> = chart
        .lines
        .iter()
        .map(|l| {
            if l.points.is_empty() {
                format!("{} (no data)", l.label)
            } else {
                l.label.clone()
            }
        })
        .collect();
    let mut labels: Vec<&str> = shown.iter().map(String::as_str).collect();
    labels.extend(footnote(chart));
    let legend_w = legend_width(&labels);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (chart.width + legend_w, chart.height))
            .into_drawing_area();
        root.fill(&WHITE)?;
        let (plot_area, legend_area) = root.split_horizontally(chart.width);
        let mut ctx = ChartBuilder::on(&plot_area)
            .caption(&chart.title, (FONT, 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(x_spec, y_spec)?;
        let grid = RGBColor(0xdd, 0xdd, 0xdd);
        ctx.configure_mesh()
            .x_desc(chart.x_desc.as_str())
            .y_desc(chart.y_desc.as_str())
            .x_label_formatter(&|v| tick_label(*v))
            .y_label_formatter(&|v| tick_label(*v))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .bold_line_style(grid)
            .max_light_lines(0)
            .draw()?;
        for line in &chart.lines {
            let color = COLORS[line.color % COLORS.len()];
            let stroke = color.stroke_width(2);
            let xy: Vec<(f64, f64)> = line.points.iter().map(|p| (p.x, p.y)).collect();
            if line.dashed {
                ctx.draw_series(DashedLineSeries::new(xy, 7, 4, stroke))?;
            } else {
                ctx.draw_series(LineSeries::new(xy, stroke))?;
            }
            for p in &line.points {
                if p.flagged {
                    ctx.plotting_area()
                        .draw(&Cross::new((p.x, p.y), 5, color.stroke_width(2)))?;
                } else if line.dashed {
                    ctx.plotting_area().draw(&Circle::new(
                        (p.x, p.y),
                        4,
                        ShapeStyle::from(&WHITE).filled(),
                    ))?;
                    ctx.plotting_area()
                        .draw(&Circle::new((p.x, p.y), 4, color.stroke_width(2)))?;
                } else {
                    ctx.plotting_area()
                        .draw(&Circle::new((p.x, p.y), 4, color.filled()))?;
                }
            }
        }
        // Legend: its own column, so it never covers a line.
        let text = |s: &str, y: i32| {
            Text::new(
                s.to_string(),
                (46, y),
                (FONT, 16)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            )
        };
        let mut y = 50;
        for (line, label) in chart.lines.iter().zip(&shown) {
            let color = COLORS[line.color % COLORS.len()];
            let stroke = color.stroke_width(2);
            let seg = vec![(8, y), (38, y)];
            if line.dashed {
                legend_area.draw(&DashedPathElement::new(seg, 6, 3, stroke))?;
                legend_area.draw(&Circle::new((23, y), 4, ShapeStyle::from(&WHITE).filled()))?;
                legend_area.draw(&Circle::new((23, y), 4, stroke))?;
            } else {
                legend_area.draw(&PathElement::new(seg, stroke))?;
                legend_area.draw(&Circle::new((23, y), 4, color.filled()))?;
            }
            legend_area.draw(&text(label, y))?;
            y += 22;
        }
        if let Some(note) = footnote(chart) {
            legend_area.draw(&text(note, y + 8))?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn read_mode(path: &Path) -> Result<(serde_json::Value, String)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mode = value
        .get("mode")
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .to_string();
    Ok((value, mode))
}

/// A `--json` file of `want` mode (`closed` or `open`); `need` says which chart wants it.
fn load_mode<T: serde::de::DeserializeOwned>(path: &Path, want: &str, need: &str) -> Result<T> {
    let (value, mode) = read_mode(path)?;
    if mode != want {
        bail!("{}: mode {mode:?}, {need}", path.display());
    }
    serde_json::from_value(value).with_context(|| format!("parsing {}", path.display()))
}

fn load_closed(path: &Path) -> Result<ClosedReport> {
    load_mode(
        path,
        "closed",
        "`plot throughput` needs a `closed --json` file",
    )
}

fn load_open(path: &Path) -> Result<OpenReport> {
    load_mode(path, "open", "`plot latency` needs an `open --json` file")
}

/// The throughput chart of already-loaded closed-loop runs.
pub fn throughput_chart(
    title: &str,
    runs: &[(String, ClosedReport)],
    metric: Metric,
    y_scale: Scale,
) -> Chart {
    let unit = match metric {
        Metric::Requests => "requests/s",
        Metric::Rows => "rows/s",
    };
    Chart {
        title: title.to_string(),
        x_desc: "concurrency (log scale)".into(),
        y_desc: match y_scale {
            Scale::Linear => unit.to_string(),
            Scale::Log => format!("{unit} (log scale)"),
        },
        y_log: y_scale == Scale::Log,
        lines: runs
            .iter()
            .enumerate()
            .map(|(i, (label, r))| Line {
                label: label.clone(),
                color: i,
                dashed: false,
                points: throughput_points(r, metric),
            })
            .collect(),
        width: 640,
        height: 400,
    }
}

/// The latency chart of already-loaded open-loop runs: one line per run and percentile,
/// the last percentile solid, the others dashed, a run's lines in one colour.
pub fn latency_chart(
    title: &str,
    runs: &[(String, OpenReport)],
    percentiles: &[Percentile],
    y_scale: Scale,
) -> Chart {
    let names: Vec<&str> = percentiles.iter().map(|p| p.name()).collect();
    let mut lines = Vec::new();
    for (i, (label, r)) in runs.iter().enumerate() {
        for (k, &p) in percentiles.iter().enumerate() {
            lines.push(Line {
                label: if percentiles.len() > 1 {
                    format!("{label} {}", p.name())
                } else {
                    label.clone()
                },
                color: i,
                dashed: k + 1 < percentiles.len(),
                points: latency_points(r, p),
            });
        }
    }
    let what = format!("{} latency, ms", names.join(" / "));
    Chart {
        title: title.to_string(),
        x_desc: "offered load, requests/s (log scale)".into(),
        y_desc: match y_scale {
            Scale::Linear => what,
            Scale::Log => format!("{what} (log scale)"),
        },
        y_log: y_scale == Scale::Log,
        lines,
        width: 640,
        height: 400,
    }
}

fn write(chart: &Chart, common: &CommonArgs) -> Result<()> {
    for l in chart.lines.iter().filter(|l| l.points.is_empty()) {
        eprintln!("plot: {}: no level with successful requests", l.label);
    }
    let svg = render(chart)?;
    std::fs::write(&common.out, svg)
        .with_context(|| format!("writing {}", common.out.display()))?;
    println!("wrote {}", common.out.display());
    Ok(())
}

pub fn run(args: &PlotArgs) -> Result<()> {
    match &args.kind {
        PlotKind::Throughput(a) => {
            let c = &a.common;
            let runs = c
                .series
                .iter()
                .map(|(label, path)| Ok((label.clone(), load_closed(path)?)))
                .collect::<Result<Vec<_>>>()?;
            let title = c
                .title
                .as_deref()
                .unwrap_or("Throughput vs concurrency (closed loop)");
            let mut chart = throughput_chart(title, &runs, a.metric, a.y_scale);
            (chart.width, chart.height) = (c.width, c.height);
            write(&chart, c)
        }
        PlotKind::Latency(a) => {
            let c = &a.common;
            if a.percentiles.is_empty() {
                bail!("--percentiles: give at least one");
            }
            let runs = c
                .series
                .iter()
                .map(|(label, path)| Ok((label.clone(), load_open(path)?)))
                .collect::<Result<Vec<_>>>()?;
            let title = c
                .title
                .as_deref()
                .unwrap_or("Latency vs offered load (open loop)");
            let mut chart = latency_chart(title, &runs, &a.percentiles, a.y_scale);
            (chart.width, chart.height) = (c.width, c.height);
            write(&chart, c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closed::ClosedLevel;
    use crate::open::OpenLevel;
    use crate::stats::LatencySummary;

    fn lat(p50: f64, p99: f64) -> LatencySummary {
        LatencySummary {
            count: 10,
            mean_ms: p50,
            p50_ms: p50,
            p90_ms: (p50 + p99) / 2.0,
            p99_ms: p99,
            max_ms: p99 * 2.0,
        }
    }

    fn closed_level(c: usize, rps: f64, ok: u64, errors: u64) -> ClosedLevel {
        ClosedLevel {
            concurrency: c,
            warmup_s: 1.0,
            duration_s: 4.0,
            ok,
            error_total: errors,
            errors: Default::default(),
            requests_per_s: rps,
            rows_per_s: rps * 2.0,
            latency: lat(1.0, 2.0),
            client_cpu_pct: None,
            latency_by_status: Default::default(),
            server_timing: Default::default(),
            metrics: Default::default(),
            slice_rps: Vec::new(),
        }
    }

    fn closed(levels: Vec<ClosedLevel>) -> ClosedReport {
        ClosedReport {
            mode: "closed".into(),
            url: "http://127.0.0.1:1/v2/models/mlp/infer".into(),
            rows_per_request: 2,
            client_threads: 1,
            levels,
        }
    }

    fn open_level(rate: f64, p50: f64, p99: f64, ok: u64, dropped: u64) -> OpenLevel {
        OpenLevel {
            target_rate: rate,
            warmup_s: 1.0,
            duration_s: 4.0,
            scheduled: ok + dropped,
            dropped,
            sent: ok,
            achieved_rate: rate,
            ok,
            error_total: 0,
            errors: Default::default(),
            elapsed_s: 4.0,
            requests_per_s: rate,
            rows_per_s: rate,
            latency: lat(p50, p99),
            send_lag: Default::default(),
            connection_wait: Default::default(),
            client_cpu_pct: None,
            latency_by_status: Default::default(),
            service_by_status: Default::default(),
            server_timing: Default::default(),
        }
    }

    fn open(levels: Vec<OpenLevel>) -> OpenReport {
        OpenReport {
            mode: "open".into(),
            url: "http://127.0.0.1:1/v2/models/mlp/infer".into(),
            rows_per_request: 1,
            client_threads: 1,
            max_in_flight: 1024,
            connections: 64,
            levels,
        }
    }

    /// Every tag closed in order (a small XML check: no attribute contains '<' or '>').
    fn assert_well_formed(svg: &str) {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let end = start + rest[start..].find('>').expect("unterminated tag");
            let tag = &rest[start + 1..end];
            rest = &rest[end + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name.trim()), "closing </{name}>");
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap());
            }
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    /// The trimmed contents of every `<text>` element.
    fn text_contents(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                Some(body[..body.find("</text>")?].trim().to_string())
            })
            .collect()
    }

    #[test]
    fn series_spec_splits_at_the_last_equals_sign() {
        assert_eq!(
            parse_series("Convoy=a/b.json").unwrap(),
            ("Convoy".to_string(), PathBuf::from("a/b.json"))
        );
        assert_eq!(
            parse_series("max_queue_delay_us = 0=slo.json").unwrap(),
            (
                "max_queue_delay_us = 0".to_string(),
                PathBuf::from("slo.json")
            )
        );
        assert!(parse_series("no-label.json").is_err());
        assert!(parse_series("=x.json").is_err());
        assert!(parse_series("Label=").is_err());
    }

    #[test]
    fn throughput_points_sorted_skip_empty_levels_and_flag_errors() {
        let r = closed(vec![
            closed_level(64, 900.0, 100, 3),
            closed_level(1, 100.0, 10, 0),
            closed_level(16, 0.0, 0, 50),
        ]);
        let p = throughput_points(&r, Metric::Requests);
        assert_eq!(
            p,
            vec![
                Point {
                    x: 1.0,
                    y: 100.0,
                    flagged: false
                },
                Point {
                    x: 64.0,
                    y: 900.0,
                    flagged: true
                },
            ]
        );
        let rows = throughput_points(&r, Metric::Rows);
        assert_eq!(rows[1].y, 1800.0);
    }

    #[test]
    fn latency_points_pick_the_percentile_and_flag_drops() {
        let r = open(vec![
            open_level(8000.0, 3.0, 40.0, 100, 7),
            open_level(500.0, 1.0, 2.5, 100, 0),
            open_level(2000.0, 0.0, 0.0, 0, 0),
        ]);
        let p99 = latency_points(&r, Percentile::P99);
        assert_eq!(p99.len(), 2);
        assert_eq!((p99[0].x, p99[0].y, p99[0].flagged), (500.0, 2.5, false));
        assert_eq!((p99[1].x, p99[1].y, p99[1].flagged), (8000.0, 40.0, true));
        let p50 = latency_points(&r, Percentile::P50);
        assert_eq!(p50[1].y, 3.0);
    }

    #[test]
    fn axis_ranges() {
        let r = log_range([1.0, 16.0, 64.0]).unwrap();
        assert!((r.start - 0.8).abs() < 1e-12 && (r.end - 80.0).abs() < 1e-12);
        // One value still spans a factor of 2 around it.
        let r = log_range([100.0]).unwrap();
        assert!((r.end / r.start - 2.0).abs() < 1e-9);
        assert!(r.start < 100.0 && r.end > 100.0);
        assert!(log_range([0.0, -1.0]).is_none());
        assert_eq!(linear_range([10.0, 50.0]).unwrap(), 0.0..54.0);
        assert_eq!(linear_range([0.0]).unwrap(), 0.0..1.0);
        assert!(linear_range(std::iter::empty()).is_none());
    }

    #[test]
    fn ticks() {
        assert_eq!(log_ticks(&(0.8..2000.0)), vec![1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(
            log_ticks(&(0.8..80.0)),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0]
        );
        assert_eq!(log_ticks(&(2.5..9.0)), vec![3.0, 5.0, 7.0]);
        assert_eq!(log_ticks(&(0.25..0.6)), vec![0.3, 0.4, 0.5, 0.6]);
        assert!(log_ticks(&(1e-3..1e12)).len() <= 8);
        assert_eq!(
            value_ticks([64.0, 1.0, 16.0, 16.0], 10),
            vec![1.0, 16.0, 64.0]
        );
        let many = value_ticks((1..=20).map(f64::from), 5);
        assert_eq!(many.len(), 5);
        assert_eq!((many[0], many[4]), (1.0, 20.0));
    }

    #[test]
    fn labels() {
        assert_eq!(tick_label(12658.0), "12,658");
        assert_eq!(tick_label(7911.2), "7,911");
        assert_eq!(tick_label(1_250_000.0), "1,250,000");
        assert_eq!(tick_label(100.0), "100");
        assert_eq!(tick_label(64.0), "64");
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(tick_label(0.05), "0.05");
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(legend_width(&["a"]), 140);
        assert_eq!(legend_width(&["max_queue_delay_us = 1000 p50"]), 288);
        assert_eq!(legend_width(&["x".repeat(200).as_str()]), 520);
    }

    #[test]
    fn latency_chart_lines_per_run_and_percentile() {
        let runs = vec![
            (
                "A".to_string(),
                open(vec![open_level(500.0, 1.0, 2.0, 9, 0)]),
            ),
            (
                "B".to_string(),
                open(vec![open_level(500.0, 2.0, 4.0, 9, 0)]),
            ),
        ];
        let c = latency_chart("t", &runs, &[Percentile::P50, Percentile::P99], Scale::Log);
        let got: Vec<(&str, usize, bool)> = c
            .lines
            .iter()
            .map(|l| (l.label.as_str(), l.color, l.dashed))
            .collect();
        assert_eq!(
            got,
            vec![
                ("A p50", 0, true),
                ("A p99", 0, false),
                ("B p50", 1, true),
                ("B p99", 1, false)
            ]
        );
        assert!(c.y_log);
        assert!(c.y_desc.starts_with("p50 / p99 latency, ms"));
        let one = latency_chart("t", &runs, &[Percentile::P99], Scale::Linear);
        assert_eq!(one.lines[0].label, "A");
        assert!(!one.lines[0].dashed);
    }

    #[test]
    fn renders_svg_with_series_names() {
        let runs = vec![
            (
                "Convoy & co".to_string(),
                closed(vec![
                    closed_level(1, 1000.0, 10, 0),
                    closed_level(16, 14000.0, 10, 0),
                    closed_level(64, 19000.0, 10, 2),
                ]),
            ),
            (
                "Triton".to_string(),
                closed(vec![
                    closed_level(1, 860.0, 10, 0),
                    closed_level(64, 8900.0, 10, 0),
                ]),
            ),
            (
                "Broken".to_string(),
                closed(vec![closed_level(1, 0.0, 0, 9)]),
            ),
        ];
        let chart = throughput_chart("MLP <closed>", &runs, Metric::Requests, Scale::Linear);
        let svg = render(&chart).unwrap();
        assert!(svg.trim_start().starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), 1);
        // Names are escaped text, not markup.
        let texts = text_contents(&svg);
        for want in [
            "Convoy &amp; co",
            "MLP &lt;closed&gt;",
            "Triton",
            "Broken (no data)",
            "× = errors or drops at that level",
            "requests/s",
            "concurrency (log scale)",
            // Ticks at the measured concurrencies, thousands separated on y.
            "1",
            "16",
            "64",
            "20,000",
        ] {
            assert!(texts.iter().any(|t| t == want), "{want:?} not in {texts:?}");
        }
        assert!(svg.contains("font-family=\"sans-serif\""));
        assert_well_formed(&svg);

        // Through a file as the CLI does, on a log latency axis.
        let dir = std::env::temp_dir().join(format!("convoy-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("open.json");
        let report = open(vec![
            open_level(500.0, 1.0, 2.0, 9, 0),
            open_level(2000.0, 1.5, 6.0, 9, 0),
            open_level(8000.0, 4.0, 90.0, 9, 3),
        ]);
        std::fs::write(&file, serde_json::to_string(&report).unwrap()).unwrap();
        let out = dir.join("p.svg");
        let args = PlotArgs {
            kind: PlotKind::Latency(LatencyArgs {
                common: CommonArgs {
                    series: vec![("Convoy".into(), file.clone())],
                    title: Some("MLP open loop".into()),
                    out: out.clone(),
                    width: 500,
                    height: 300,
                },
                percentiles: vec![Percentile::P50, Percentile::P99],
                y_scale: Scale::Log,
            }),
        };
        run(&args).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        let texts = text_contents(&svg);
        assert!(texts.iter().any(|t| t == "Convoy p50"), "{texts:?}");
        assert!(texts.iter().any(|t| t == "Convoy p99"));
        assert!(texts.iter().any(|t| t == "MLP open loop"));
        assert_well_formed(&svg);
        // A closed-loop plot refuses an open-loop file.
        let wrong = PlotArgs {
            kind: PlotKind::Throughput(ThroughputArgs {
                common: CommonArgs {
                    series: vec![("Convoy".into(), file)],
                    title: None,
                    out: dir.join("t.svg"),
                    width: 500,
                    height: 300,
                },
                metric: Metric::Requests,
                y_scale: Scale::Linear,
            }),
        };
        let err = run(&wrong).unwrap_err().to_string();
        assert!(err.contains("needs a `closed --json` file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
