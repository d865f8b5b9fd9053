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
    fn name(self) -> String {
        format!("{self:?}").to_lowercase()
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

/// Points in ascending x; levels without a successful request (`None`) or a positive
/// value are left out (nothing to draw on a log or zero-based axis).
fn points<L>(levels: &[L], point: impl Fn(&L) -> Option<Point>) -> Vec<Point> {
    let mut points: Vec<Point> = levels
        .iter()
        .filter_map(point)
        .filter(|p| p.x > 0.0 && p.y > 0.0)
        .collect();
    points.sort_by(|a, b| a.x.total_cmp(&b.x));
    points
}

/// Requests/s (or rows/s) per concurrency level.
pub fn throughput_points(r: &ClosedReport, metric: Metric) -> Vec<Point> {
    points(&r.levels, |l| {
        let y = [l.requests_per_s, l.rows_per_s][usize::from(metric == Metric::Rows)];
        let (x, flagged) = (l.concurrency as f64, l.error_total > 0);
        (l.ok > 0).then_some(Point { x, y, flagged })
    })
}

/// One latency percentile (ms) per offered rate.
pub fn latency_points(r: &OpenReport, p: Percentile) -> Vec<Point> {
    points(&r.levels, |l| {
        let s = &l.latency;
        let y = match p {
            Percentile::P50 => s.p50_ms,
            Percentile::P90 => s.p90_ms,
            Percentile::P99 => s.p99_ms,
            Percentile::Max => s.max_ms,
        };
        let (x, flagged) = (l.target_rate, l.error_total > 0 || l.dropped > 0);
        (l.ok > 0).then_some(Point { x, y, flagged })
    })
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

/// The chart as SVG text.
pub fn render(chart: &Chart) -> Result<String> {
    let all = || chart.lines.iter().flat_map(|l| &l.points);
    let Some(x_range) = log_range(all().map(|p| p.x)) else {
        bail!("nothing to plot: no series has a level with successful requests");
    };
    let x_ticks = value_ticks(all().map(|p| p.x), 10);
    let x_spec = x_range.log_scale().with_key_points(x_ticks);
    let ys = all().map(|p| p.y);
    if chart.y_log {
        let y_range = log_range(ys).context("no positive values for a log axis")?;
        let y_ticks = log_ticks(&y_range);
        draw(chart, x_spec, y_range.log_scale().with_key_points(y_ticks))
    } else {
        draw(chart, x_spec, linear_range(ys).context("no values")?)
    }
}

/// A point's marker (or a legend entry's, in its pixels): filled on a solid line, hollow
/// on a dashed one, a cross where the level was flagged.
macro_rules! marker {
    ($area:expr, $at:expr, $line:expr, $flagged:expr) => {{
        let color = COLORS[$line.color % COLORS.len()];
        if $flagged {
            $area.draw(&Cross::new($at, 5, color.stroke_width(2)))?;
        } else if $line.dashed {
            $area.draw(&Circle::new($at, 4, ShapeStyle::from(&WHITE).filled()))?;
            $area.draw(&Circle::new($at, 4, color.stroke_width(2)))?;
        } else {
            $area.draw(&Circle::new($at, 4, color.filled()))?;
        }
    }};
}

fn draw<X, Y>(chart: &Chart, x_spec: X, y_spec: Y) -> Result<String>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let label = |l: &Line| match l.points.is_empty() {
        true => format!("{} (no data)", l.label),
        false => l.label.clone(),
    };
    let shown: Vec<String> = chart.lines.iter().map(label).collect();
    let flagged = chart
        .lines
        .iter()
        .any(|l| l.points.iter().any(|p| p.flagged));
    let note = flagged.then_some(FLAGGED_NOTE);
    let mut labels: Vec<&str> = shown.iter().map(String::as_str).collect();
    labels.extend(note);
    let legend_w = legend_width(&labels);
    let mut svg = String::new();
    {
        let size = (chart.width + legend_w, chart.height);
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot_area, legend_area) = root.split_horizontally(chart.width);
        let mut ctx = ChartBuilder::on(&plot_area)
            .caption(&chart.title, (FONT, 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(x_spec, y_spec)?;
        ctx.configure_mesh()
            .x_desc(chart.x_desc.as_str())
            .y_desc(chart.y_desc.as_str())
            .x_label_formatter(&|v| tick_label(*v))
            .y_label_formatter(&|v| tick_label(*v))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
            .max_light_lines(0)
            .draw()?;
        for line in &chart.lines {
            let stroke = COLORS[line.color % COLORS.len()].stroke_width(2);
            let xy: Vec<(f64, f64)> = line.points.iter().map(|p| (p.x, p.y)).collect();
            if line.dashed {
                ctx.draw_series(DashedLineSeries::new(xy, 7, 4, stroke))?;
            } else {
                ctx.draw_series(LineSeries::new(xy, stroke))?;
            }
            for p in &line.points {
                marker!(ctx.plotting_area(), (p.x, p.y), line, p.flagged);
            }
        }
        // Legend: its own column, so it never covers a line.
        let text = |s: &str, y: i32| {
            let style = (FONT, 16).into_font().color(&BLACK);
            Text::new(
                s.to_string(),
                (46, y),
                style.pos(Pos::new(HPos::Left, VPos::Center)),
            )
        };
        let mut y = 50;
        for (line, label) in chart.lines.iter().zip(&shown) {
            let stroke = COLORS[line.color % COLORS.len()].stroke_width(2);
            let seg = vec![(8, y), (38, y)];
            if line.dashed {
                legend_area.draw(&DashedPathElement::new(seg, 6, 3, stroke))?;
            } else {
                legend_area.draw(&PathElement::new(seg, stroke))?;
            }
            marker!(legend_area, (23, y), line, false);
            legend_area.draw(&text(label, y))?;
            y += 22;
        }
        if let Some(note) = note {
            legend_area.draw(&text(note, y + 8))?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// A `--json` file of `want` mode (`closed` or `open`), for the chart `kind`.
fn load<T: serde::de::DeserializeOwned>(path: &Path, want: &str, kind: &str) -> Result<T> {
    let what = || format!("reading {}", path.display());
    let text = std::fs::read_to_string(path).with_context(what)?;
    let value: serde_json::Value = serde_json::from_str(&text).with_context(what)?;
    let mode = value.get("mode").and_then(|m| m.as_str()).unwrap_or("");
    if mode != want {
        bail!(
            "{}: mode {mode:?}, `plot {kind}` needs a `{want} --json` file",
            path.display()
        );
    }
    serde_json::from_value(value).with_context(what)
}

/// The y axis' description: `what`, noting a log scale.
fn y_desc(what: &str, scale: Scale) -> String {
    match scale {
        Scale::Linear => what.to_string(),
        Scale::Log => format!("{what} (log scale)"),
    }
}

fn chart(title: &str, x_desc: &str, y: String, scale: Scale, lines: Vec<Line>) -> Chart {
    let (title, x_desc, y_desc) = (title.into(), x_desc.into(), y_desc(&y, scale));
    let (y_log, width, height) = (scale == Scale::Log, 640, 400);
    Chart {
        title,
        x_desc,
        y_desc,
        y_log,
        lines,
        width,
        height,
    }
}

/// The throughput chart of already-loaded closed-loop runs.
pub fn throughput_chart(
    title: &str,
    runs: &[(String, ClosedReport)],
    metric: Metric,
    scale: Scale,
) -> Chart {
    let line = |(color, (label, r)): (usize, &(String, ClosedReport))| {
        let (label, points) = (label.clone(), throughput_points(r, metric));
        Line {
            label,
            color,
            dashed: false,
            points,
        }
    };
    let lines = runs.iter().enumerate().map(line).collect();
    let unit = ["requests/s", "rows/s"][usize::from(metric == Metric::Rows)];
    chart(title, "concurrency (log scale)", unit.into(), scale, lines)
}

/// The latency chart of already-loaded open-loop runs: one line per run and percentile,
/// the last percentile solid, the others dashed, a run's lines in one colour.
pub fn latency_chart(
    title: &str,
    runs: &[(String, OpenReport)],
    ps: &[Percentile],
    scale: Scale,
) -> Chart {
    let mut lines = Vec::new();
    for (i, (label, r)) in runs.iter().enumerate() {
        for (k, &p) in ps.iter().enumerate() {
            let label = if ps.len() > 1 {
                format!("{label} {}", p.name())
            } else {
                label.clone()
            };
            let (dashed, points) = (k + 1 < ps.len(), latency_points(r, p));
            lines.push(Line {
                label,
                color: i,
                dashed,
                points,
            });
        }
    }
    let names: Vec<String> = ps.iter().map(|p| p.name()).collect();
    let what = format!("{} latency, ms", names.join(" / "));
    let x_desc = "offered load, requests/s (log scale)";
    chart(title, x_desc, what, scale, lines)
}

pub fn run(args: &PlotArgs) -> Result<()> {
    fn runs<T: serde::de::DeserializeOwned>(
        c: &CommonArgs,
        want: &str,
        kind: &str,
    ) -> Result<Vec<(String, T)>> {
        c.series
            .iter()
            .map(|(label, path)| Ok((label.clone(), load(path, want, kind)?)))
            .collect()
    }
    let (c, mut chart) = match &args.kind {
        PlotKind::Throughput(a) => {
            let c = &a.common;
            let title = c
                .title
                .as_deref()
                .unwrap_or("Throughput vs concurrency (closed loop)");
            let runs = runs(c, "closed", "throughput")?;
            (c, throughput_chart(title, &runs, a.metric, a.y_scale))
        }
        PlotKind::Latency(a) => {
            let c = &a.common;
            if a.percentiles.is_empty() {
                bail!("--percentiles: give at least one");
            }
            let title = c
                .title
                .as_deref()
                .unwrap_or("Latency vs offered load (open loop)");
            let runs = runs(c, "open", "latency")?;
            (c, latency_chart(title, &runs, &a.percentiles, a.y_scale))
        }
    };
    (chart.width, chart.height) = (c.width, c.height);
    for l in chart.lines.iter().filter(|l| l.points.is_empty()) {
        eprintln!("plot: {}: no level with successful requests", l.label);
    }
    let svg = render(&chart)?;
    std::fs::write(&c.out, svg).with_context(|| format!("writing {}", c.out.display()))?;
    println!("wrote {}", c.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{closed, closed_level, lat, open, open_level};
    use serde_json::json;

    fn cl(c: usize, rps: f64, ok: u64, errors: u64) -> crate::closed::ClosedLevel {
        closed_level(
            json!({"concurrency": c, "requests_per_s": rps, "rows_per_s": rps * 2.0,
            "ok": ok, "error_total": errors}),
        )
    }

    fn ol(rate: f64, p50: f64, p99: f64, ok: u64, dropped: u64) -> crate::open::OpenLevel {
        open_level(
            json!({"target_rate": rate, "ok": ok, "dropped": dropped, "latency": lat(p50, p99, 10)}),
        )
    }

    /// Every tag closed in order (a small XML check: no attribute contains '<' or '>').
    fn assert_well_formed(svg: &str) {
        let mut stack: Vec<&str> = Vec::new();
        for tag in svg
            .split('<')
            .skip(1)
            .map(|t| &t[..t.find('>').expect("unterminated tag")])
        {
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name.trim()), "closing </{name}>");
            } else if !(tag.ends_with('/') || tag.starts_with('?') || tag.starts_with('!')) {
                stack.push(tag.split_whitespace().next().unwrap());
            }
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    /// The trimmed contents of every `<text>` element.
    fn texts(svg: &str) -> Vec<String> {
        let body = |t: &str| Some(t[t.find('>')? + 1..t.find("</text>")?].trim().to_string());
        svg.split("<text").skip(1).filter_map(body).collect()
    }

    #[test]
    fn series_spec_splits_at_the_last_equals_sign() {
        let (label, file) = parse_series("max_queue_delay_us = 0=slo.json").unwrap();
        assert_eq!(
            (label.as_str(), file),
            ("max_queue_delay_us = 0", PathBuf::from("slo.json"))
        );
        for bad in ["no-label.json", "=x.json", "Label="] {
            assert!(parse_series(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn points_sorted_skip_empty_levels_and_flag_errors_and_drops() {
        let r = closed(vec![
            cl(64, 900.0, 100, 3),
            cl(1, 100.0, 10, 0),
            cl(16, 0.0, 0, 50),
        ]);
        let p: Vec<_> = throughput_points(&r, Metric::Requests)
            .iter()
            .map(|p| (p.x, p.y, p.flagged))
            .collect();
        assert_eq!(p, [(1.0, 100.0, false), (64.0, 900.0, true)]);
        assert_eq!(throughput_points(&r, Metric::Rows)[1].y, 1800.0);
        let r = open(vec![
            ol(8000.0, 3.0, 40.0, 100, 7),
            ol(500.0, 1.0, 2.5, 100, 0),
            ol(2000.0, 0.0, 0.0, 0, 0),
        ]);
        let p99: Vec<_> = latency_points(&r, Percentile::P99)
            .iter()
            .map(|p| (p.x, p.y, p.flagged))
            .collect();
        assert_eq!(p99, [(500.0, 2.5, false), (8000.0, 40.0, true)]);
        assert_eq!(latency_points(&r, Percentile::P50)[1].y, 3.0);
    }

    #[test]
    fn axis_ranges_ticks_and_labels() {
        let r = log_range([1.0, 16.0, 64.0]).unwrap();
        assert!((r.start - 0.8).abs() < 1e-12 && (r.end - 80.0).abs() < 1e-12);
        // One value still spans a factor of 2 around it.
        let r = log_range([100.0]).unwrap();
        assert!((r.end / r.start - 2.0).abs() < 1e-9 && r.start < 100.0 && r.end > 100.0);
        assert!(log_range([0.0, -1.0]).is_none());
        assert_eq!(linear_range([10.0, 50.0]).unwrap(), 0.0..54.0);
        assert_eq!(linear_range([0.0]).unwrap(), 0.0..1.0);
        assert_eq!(log_ticks(&(0.8..2000.0)), [1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(log_ticks(&(0.8..80.0)), [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]);
        assert_eq!(log_ticks(&(2.5..9.0)), [3.0, 5.0, 7.0]);
        assert_eq!(log_ticks(&(0.25..0.6)), [0.3, 0.4, 0.5, 0.6]);
        assert!(log_ticks(&(1e-3..1e12)).len() <= 8);
        assert_eq!(value_ticks([64.0, 1.0, 16.0, 16.0], 10), [1.0, 16.0, 64.0]);
        let many = value_ticks((1..=20).map(f64::from), 5);
        assert_eq!((many.len(), many[0], many[4]), (5, 1.0, 20.0));
        let labels = [12658.0, 7911.2, 1_250_000.0, 100.0, 64.0, 2.5, 0.05, 0.0].map(tick_label);
        assert_eq!(
            labels,
            [
                "12,658",
                "7,911",
                "1,250,000",
                "100",
                "64",
                "2.5",
                "0.05",
                "0"
            ]
        );
        assert_eq!(legend_width(&["a"]), 140);
        assert_eq!(legend_width(&["max_queue_delay_us = 1000 p50"]), 288);
        assert_eq!(legend_width(&["x".repeat(200).as_str()]), 520);
    }

    #[test]
    fn latency_chart_lines_per_run_and_percentile() {
        let runs = [("A", 1.0), ("B", 2.0)]
            .map(|(k, p50)| (k.to_string(), open(vec![ol(500.0, p50, 4.0, 9, 0)])));
        let c = latency_chart("t", &runs, &[Percentile::P50, Percentile::P99], Scale::Log);
        let got: Vec<_> = c
            .lines
            .iter()
            .map(|l| (l.label.as_str(), l.color, l.dashed))
            .collect();
        assert_eq!(
            got,
            [
                ("A p50", 0, true),
                ("A p99", 0, false),
                ("B p50", 1, true),
                ("B p99", 1, false)
            ]
        );
        assert!(c.y_log && c.y_desc == "p50 / p99 latency, ms (log scale)");
        let one = latency_chart("t", &runs, &[Percentile::P99], Scale::Linear);
        assert_eq!(
            (one.lines[0].label.as_str(), one.lines[0].dashed),
            ("A", false)
        );
    }

    #[test]
    fn renders_svg_with_series_names() {
        let runs = vec![
            (
                "Convoy & co".into(),
                closed(vec![
                    cl(1, 1000.0, 10, 0),
                    cl(16, 14000.0, 10, 0),
                    cl(64, 19000.0, 10, 2),
                ]),
            ),
            (
                "Triton".into(),
                closed(vec![cl(1, 860.0, 10, 0), cl(64, 8900.0, 10, 0)]),
            ),
            ("Broken".into(), closed(vec![cl(1, 0.0, 0, 9)])),
        ];
        let svg = render(&throughput_chart(
            "MLP <closed>",
            &runs,
            Metric::Requests,
            Scale::Linear,
        ))
        .unwrap();
        assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // Names are escaped text, not markup; ticks at the measured concurrencies.
        let texts = texts(&svg);
        for want in [
            "Convoy &amp; co",
            "MLP &lt;closed&gt;",
            "Triton",
            "Broken (no data)",
            FLAGGED_NOTE,
            "requests/s",
            "concurrency (log scale)",
            "1",
            "16",
            "64",
            "20,000",
        ] {
            assert!(texts.iter().any(|t| t == want), "{want:?} not in {texts:?}");
        }
        assert!(svg.contains("font-family=\"sans-serif\""));
        assert_well_formed(&svg);
    }

    #[test]
    fn cli_reads_files_and_refuses_the_wrong_mode() {
        let dir = std::env::temp_dir().join(format!("convoy-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("open.json");
        let report = open(vec![
            ol(500.0, 1.0, 2.0, 9, 0),
            ol(2000.0, 1.5, 6.0, 9, 0),
            ol(8000.0, 4.0, 90.0, 9, 3),
        ]);
        std::fs::write(&file, serde_json::to_string(&report).unwrap()).unwrap();
        let common = |out: &str| CommonArgs {
            series: vec![("Convoy".into(), file.clone())],
            title: Some("MLP open loop".into()),
            out: dir.join(out),
            width: 500,
            height: 300,
        };
        let percentiles = vec![Percentile::P50, Percentile::P99];
        let latency = LatencyArgs {
            common: common("p.svg"),
            percentiles,
            y_scale: Scale::Log,
        };
        run(&PlotArgs {
            kind: PlotKind::Latency(latency),
        })
        .unwrap();
        let svg = std::fs::read_to_string(dir.join("p.svg")).unwrap();
        let texts = texts(&svg);
        for want in ["Convoy p50", "Convoy p99", "MLP open loop"] {
            assert!(texts.iter().any(|t| t == want), "{want:?} not in {texts:?}");
        }
        assert_well_formed(&svg);
        let wrong = ThroughputArgs {
            common: common("t.svg"),
            metric: Metric::Requests,
            y_scale: Scale::Linear,
        };
        let err = run(&PlotArgs {
            kind: PlotKind::Throughput(wrong),
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("needs a `closed --json` file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
