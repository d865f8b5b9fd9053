//! A one-line summary of the server's `/v2/models/mlp/stats` document for the report.
//!
//! The server's statistics format is not frozen, so this reads the Triton-style fields
//! (`execution_count`, `inference_count`, `inference_stats`) when they are there and
//! prints "n/a" for anything missing, instead of failing a whole benchmark run.

use serde_json::Value;

/// `numerator / denominator` of two numbers in a stats document, if both are there.
fn mean_of(v: &Value, numerator: &str, denominator: &str, scale: f64) -> Option<f64> {
    let n = v.pointer(numerator)?.as_f64()?;
    let d = v.pointer(denominator)?.as_f64()?;
    (d > 0.0).then(|| n / d / scale)
}

/// One table row from a `/v2/models/mlp/stats` document, using the Triton-style fields
/// when present. The server's stats format is not frozen, so every figure is optional and
/// the raw file is always linked.
pub fn stats_row(label: &str, text: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let m = v.pointer("/model_stats/0").unwrap_or(&Value::Null);
    let int = |p: &str| m.pointer(p).and_then(Value::as_u64).map(|n| n.to_string());
    let fmt = |x: Option<f64>, digits: usize| x.map(|x| format!("{x:.digits$}"));
    let cells = [
        int("/execution_count"),
        int("/inference_count"),
        fmt(mean_of(m, "/inference_count", "/execution_count", 1.0), 2),
        fmt(
            mean_of(
                m,
                "/inference_stats/queue/ns",
                "/inference_stats/queue/count",
                1e6,
            ),
            3,
        ),
        fmt(
            mean_of(
                m,
                "/inference_stats/compute_infer/ns",
                "/inference_stats/compute_infer/count",
                1e6,
            ),
            4,
        ),
    ]
    .map(|c| c.unwrap_or_else(|| "n/a".to_string()));
    std::iter::once(label.to_string()).chain(cells).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_row_survives_unknown_formats() {
        assert_eq!(
            stats_row("x", r#"{"something":"else"}"#),
            ["x", "n/a", "n/a", "n/a", "n/a", "n/a"]
        );
        assert_eq!(stats_row("x", "not json"), stats_row("x", "{}"));
    }

    #[test]
    fn stats_row_reads_triton_style_fields() {
        let text = r#"{"model_stats":[{"execution_count":4,"inference_count":10,
            "inference_stats":{"queue":{"count":10,"ns":5000000},
            "compute_infer":{"count":4,"ns":200000}}}]}"#;
        assert_eq!(
            stats_row("batched", text),
            ["batched", "4", "10", "2.50", "0.500", "0.0500"]
        );
    }
}
