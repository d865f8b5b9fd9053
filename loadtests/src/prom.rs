//! Reading Convoy's `/metrics` (Prometheus text format) during a load level.
//!
//! Some figures exist only on the server side: the device busy ratio (a gauge the server
//! samples each second) and the batch padding ratio (a histogram). A level samples the
//! page once a second inside its measured window: gauges are averaged over those
//! samples, histograms are the change of `_sum` / `_count` between the window's first and
//! last sample, so warm-up traffic does not count. Parsing is pure and tested; only
//! `Scraper` does I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Client, Url};
use serde::{Deserialize, Serialize};
use tokio::time::{sleep_until, Instant};

/// `(series, value)` pairs of a Prometheus text page; the series is the metric name with
/// its labels exactly as written (`convoy_device_busy_ratio{model="m",instance="0"}`).
pub fn parse(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            // The value follows the last space outside the label set (label values may
            // contain spaces); an optional timestamp would follow it, which the exporter
            // Convoy uses does not write.
            let labels_end = line.rfind('}').map_or(0, |i| i + 1);
            let (series, rest) = line.split_at(line[labels_end..].find(' ')? + labels_end);
            let value = rest.split_whitespace().next()?.parse().ok()?;
            Some((series.trim().to_string(), value))
        })
        .collect()
}

/// The metric name of a series (everything before the label set).
pub fn metric_name(series: &str) -> &str {
    series.split_once('{').map_or(series, |(name, _)| name)
}

/// The label set of a series, `{...}` or empty.
fn labels(series: &str) -> &str {
    series.find('{').map_or("", |i| &series[i..])
}

/// One figure over a measured window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricFigure {
    /// `gauge` (averaged samples) or `histogram` (Δsum / Δcount).
    pub kind: String,
    /// Gauge: mean of the samples. Histogram: mean observation in the window.
    pub mean: f64,
    /// Gauge only: smallest and largest sample.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Gauge: samples taken. Histogram: observations in the window (Δcount).
    pub samples: u64,
    /// Histogram only: Δsum.
    pub sum: Option<f64>,
}

impl MetricFigure {
    /// Combines the same series over two windows (the slices of an interleaved level):
    /// gauges average by sample count, histograms add up.
    pub fn merge(&mut self, other: &MetricFigure) {
        let n = self.samples + other.samples;
        if self.kind == "histogram" {
            let sum = self.sum.unwrap_or(0.0) + other.sum.unwrap_or(0.0);
            self.sum = Some(sum);
            self.mean = if n > 0 { sum / n as f64 } else { 0.0 };
        } else {
            if n > 0 {
                self.mean = (self.mean * self.samples as f64 + other.mean * other.samples as f64)
                    / n as f64;
            }
            self.min = match (self.min, other.min) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.max = match (self.max, other.max) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        self.samples = n;
    }
}

/// Figures for `names` from pages scraped through a window, first to last.
///
/// A name with a `_count` series is a histogram (or summary): its figure per label set is
/// Δsum/Δcount between the first and last page. Any other name is a gauge: its figure per
/// series is over the pages after the first (the first one's value describes the second
/// before the window).
pub fn window_figures(
    names: &[String],
    pages: &[Vec<(String, f64)>],
) -> BTreeMap<String, MetricFigure> {
    let mut out = BTreeMap::new();
    let (Some(first), Some(last)) = (pages.first(), pages.last()) else {
        return out;
    };
    let lookup = |page: &[(String, f64)], series: &str| {
        page.iter().find(|(s, _)| s == series).map(|(_, v)| *v)
    };
    for name in names {
        let count_name = format!("{name}_count");
        let counts: Vec<&String> = last
            .iter()
            .filter(|(s, _)| metric_name(s) == count_name)
            .map(|(s, _)| s)
            .collect();
        if !counts.is_empty() {
            for count_series in counts {
                let l = labels(count_series);
                let sum_series = format!("{name}_sum{l}");
                let get = |page: &[(String, f64)], s: &str| lookup(page, s).unwrap_or(0.0);
                let dc = get(last, count_series) - get(first, count_series);
                let ds = get(last, &sum_series) - get(first, &sum_series);
                out.insert(
                    format!("{name}{l}"),
                    MetricFigure {
                        kind: "histogram".into(),
                        mean: if dc > 0.0 { ds / dc } else { 0.0 },
                        min: None,
                        max: None,
                        samples: dc.max(0.0) as u64,
                        sum: Some(ds),
                    },
                );
            }
            continue;
        }
        let mut series: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for page in pages.iter().skip(1) {
            for (s, v) in page {
                if metric_name(s) == name {
                    series.entry(s.as_str()).or_default().push(*v);
                }
            }
        }
        for (s, values) in series {
            let n = values.len();
            out.insert(
                s.to_string(),
                MetricFigure {
                    kind: "gauge".into(),
                    mean: values.iter().sum::<f64>() / n as f64,
                    min: values.iter().copied().reduce(f64::min),
                    max: values.iter().copied().reduce(f64::max),
                    samples: n as u64,
                    sum: None,
                },
            );
        }
    }
    out
}

/// Samples a `/metrics` URL once a second between two instants.
pub struct Scraper {
    pub url: Url,
    pub names: Vec<String>,
}

impl Scraper {
    async fn page(&self, client: &Client) -> Option<Vec<(String, f64)>> {
        let resp = client.get(self.url.clone()).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        Some(parse(&resp.text().await.ok()?))
    }

    /// Pages from `from` to `to`, one a second plus one at `to`; pages that fail are
    /// skipped (a figure then rests on fewer samples, never on a made-up one).
    pub async fn window(
        &self,
        client: &Client,
        from: Instant,
        to: Instant,
    ) -> Vec<Vec<(String, f64)>> {
        let mut pages = Vec::new();
        let mut at = from;
        loop {
            sleep_until(at).await;
            if let Some(p) = self.page(client).await {
                pages.push(p);
            }
            if at >= to {
                break;
            }
            at = (at + Duration::from_secs(1)).min(to);
        }
        pages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE_A: &str = r#"# HELP convoy_device_busy_ratio Busy share.
# TYPE convoy_device_busy_ratio gauge
convoy_device_busy_ratio{model="m",instance="0"} 0.5
convoy_batch_padding_ratio{model="m",quantile="0.5"} 0.1
convoy_batch_padding_ratio_sum{model="m"} 2
convoy_batch_padding_ratio_count{model="m"} 10
convoy_requests_total{model="m",outcome="a b"} 7
"#;

    const PAGE_B: &str = r#"convoy_device_busy_ratio{model="m",instance="0"} 0.9
convoy_batch_padding_ratio_sum{model="m"} 5
convoy_batch_padding_ratio_count{model="m"} 20
"#;

    const PAGE_C: &str = "convoy_device_busy_ratio{model=\"m\",instance=\"0\"} 1\n\
convoy_batch_padding_ratio_sum{model=\"m\"} 8\n\
convoy_batch_padding_ratio_count{model=\"m\"} 30\n";

    #[test]
    fn parses_series_values_and_spaces_in_labels() {
        let p = parse(PAGE_A);
        assert_eq!(p.len(), 5);
        assert_eq!(
            p[0],
            (
                r#"convoy_device_busy_ratio{model="m",instance="0"}"#.to_string(),
                0.5
            )
        );
        assert_eq!(p[4].1, 7.0);
        assert_eq!(metric_name(&p[2].0), "convoy_batch_padding_ratio_sum");
        assert_eq!(parse("up 1\nbad\n"), vec![("up".to_string(), 1.0)]);
    }

    #[test]
    fn gauges_average_after_the_first_page_histograms_take_deltas() {
        let pages: Vec<_> = [PAGE_A, PAGE_B, PAGE_C].iter().map(|p| parse(p)).collect();
        let names = vec![
            "convoy_device_busy_ratio".to_string(),
            "convoy_batch_padding_ratio".to_string(),
        ];
        let f = window_figures(&names, &pages);
        let busy = &f[r#"convoy_device_busy_ratio{model="m",instance="0"}"#];
        assert_eq!(busy.kind, "gauge");
        assert!((busy.mean - 0.95).abs() < 1e-12);
        assert_eq!(
            (busy.min, busy.max, busy.samples),
            (Some(0.9), Some(1.0), 2)
        );
        let pad = &f[r#"convoy_batch_padding_ratio{model="m"}"#];
        assert_eq!(pad.kind, "histogram");
        assert!((pad.mean - 0.3).abs() < 1e-12, "{pad:?}");
        assert_eq!((pad.samples, pad.sum), (20, Some(6.0)));
        // The summary's quantile lines are not mistaken for a gauge.
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn figures_merge_across_windows() {
        let gauge = |mean, n| MetricFigure {
            kind: "gauge".into(),
            mean,
            min: Some(mean),
            max: Some(mean),
            samples: n,
            sum: None,
        };
        let mut g = gauge(0.5, 1);
        g.merge(&gauge(1.0, 3));
        assert_eq!(
            (g.mean, g.min, g.max, g.samples),
            (0.875, Some(0.5), Some(1.0), 4)
        );
        let hist = |sum: f64, n| MetricFigure {
            kind: "histogram".into(),
            mean: sum / n as f64,
            min: None,
            max: None,
            samples: n,
            sum: Some(sum),
        };
        let mut h = hist(1.0, 10);
        h.merge(&hist(5.0, 10));
        assert_eq!((h.mean, h.samples, h.sum), (0.3, 20, Some(6.0)));
    }

    #[test]
    fn no_pages_no_figures() {
        assert!(window_figures(&["x".into()], &[]).is_empty());
    }
}
