//! Every metric the shipped dashboard and Prometheus rules query exists in a real
//! server's `/metrics` output (checked here, not by eye).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

/// Names `convoy_*` used in `text` as metrics (not inside recording-rule names such as
/// `model:convoy_requests:rate1m`), histogram suffixes stripped.
fn metric_names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut names = BTreeSet::new();
    let mut at = 0;
    while let Some(pos) = text[at..].find("convoy_") {
        let start = at + pos;
        let before = start.checked_sub(1).map(|i| bytes[i]);
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .map_or(text.len(), |n| start + n);
        let word = &text[start..end];
        let inside_rule_name = matches!(before, Some(b':') | Some(b'_'))
            || before.is_some_and(|b| b.is_ascii_alphanumeric());
        if !inside_rule_name && bytes.get(end) != Some(&b':') {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| word.strip_suffix(s))
                .unwrap_or(word);
            names.insert(base.to_string());
        }
        at = end;
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_rules_query_only_exported_metrics() {
    let s = TestServer::start(&shipped_models()).await;
    let (rows, _) = reference();
    assert_eq!(
        s.post("/v2/models/mlp/infer", &mlp_body(&rows[..2]))
            .await
            .0,
        200
    );
    assert_eq!(
        s.post("/v2/models/mlp/infer", &serde_json::json!({}))
            .await
            .0,
        400
    );
    // The device-busy sampler publishes once a second: wait for its series.
    let exported_now = || async {
        s.scrape()
            .await
            .lines()
            .filter(|l| l.starts_with("# TYPE convoy_"))
            .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
            .collect::<BTreeSet<String>>()
    };
    wait_for("the busy sampler's first sample", || async {
        exported_now().await.contains("convoy_device_busy_ratio")
    })
    .await;
    let exported = exported_now().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "docker/prometheus/rules.yml",
        "docker/grafana/dashboards/convoy.json",
    ] {
        let used = metric_names(&std::fs::read_to_string(root.join(file)).unwrap());
        assert!(!used.is_empty(), "{file} queries no convoy_ metric?");
        let missing: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "{file} uses metrics /metrics does not export: {missing:?}\nexported: {exported:?}"
        );
    }
    s.stop().await;
}

#[test]
fn recording_rule_names_are_not_taken_for_metrics() {
    let names = metric_names(
        "rate(convoy_requests_total[1m]) / model:convoy_requests:rate1m + convoy_x_seconds_bucket",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["convoy_requests_total", "convoy_x_seconds"]
    );
}
