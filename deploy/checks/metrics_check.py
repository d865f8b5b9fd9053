#!/usr/bin/env python3
"""Checks the Grafana dashboard and the Prometheus files against Convoy's metric names.

    python3 deploy/checks/metrics_check.py [--promql-rules OUT.yml]

- docker/grafana/dashboards/convoy.json is valid JSON, with unique panel ids, a query on
  every panel, the ${datasource} variable everywhere, and the panels the issue asks for;
- every `convoy_*` metric name used by the dashboard, the rules, the Helm chart, the
  prometheus-adapter values and the KServe files is one of Convoy's metric names (the
  contract below; an unknown name fails);
- each such name that src/metrics.rs does not (yet) contain is printed as a WARNING only.

--promql-rules writes every dashboard query as a recording rule (Grafana variables replaced
by plain values) so that `promtool check rules` can parse the PromQL.

Standard library only: runs before any tool is installed.
"""
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

# The metric names Convoy exports (src/metrics.rs), with their types. Histograms also
# expose _bucket, _sum and _count series.
CONTRACT = {
    "convoy_requests_total": "counter",
    "convoy_requests_in_flight": "gauge",
    "convoy_request_duration_seconds": "histogram",
    "convoy_queue_duration_seconds": "histogram",
    "convoy_preprocess_duration_seconds": "histogram",
    "convoy_inference_duration_seconds": "histogram",
    "convoy_postprocess_duration_seconds": "histogram",
    "convoy_batch_size_rows": "histogram",
    "convoy_queue_depth_rows": "gauge",
    "convoy_queue_capacity_rows": "gauge",
    "convoy_cancelled_requests_total": "counter",
    "convoy_expired_requests_total": "counter",
    "convoy_shed_requests_total": "counter",
    "convoy_model_ready": "gauge",
    "convoy_model_load_duration_seconds": "gauge",
    "convoy_model_device": "gauge",
    # Device busy share per worker, sampled each second.
    "convoy_device_busy_ratio": "gauge",
    # Share of a text batch's token slots that are padding.
    "convoy_batch_padding_ratio": "histogram",
    # The latency-target window's learned cost line, and its idle-wait rule.
    "convoy_batch_cost_fixed_seconds": "gauge",
    "convoy_batch_cost_per_unit_seconds": "gauge",
    "convoy_batch_company_ratio": "gauge",
    # Per GPU, where NVML is present.
    "convoy_gpu_memory_used_bytes": "gauge",
    "convoy_gpu_memory_total_bytes": "gauge",
    "convoy_gpu_utilization_ratio": "gauge",
}

# Files whose PromQL / metric references are checked.
SOURCES = [
    "docker/grafana/dashboards/convoy.json",
    "docker/prometheus/rules.yml",
    "docker/prometheus/rules_test.yml",
    "deploy/helm/convoy/files/rules.yml",
    "deploy/helm/convoy/templates/hpa.yaml",
    "deploy/helm/prometheus-adapter-values.yaml",
]

# The panels the observability issue asks for: (what, regex on panel titles).
REQUIRED_PANELS = [
    ("throughput", r"throughput"),
    ("errors by outcome", r"errors by outcome"),
    ("p50 per stage", r"p50 by stage"),
    ("p99 per stage", r"p99 by stage"),
    ("batch size", r"batch size"),
    ("queue depth vs capacity", r"queue depth vs capacity"),
    ("device busy ratio per worker/instance", r"device busy"),
    ("in-flight", r"in flight"),
]
STAGE_METRICS = [
    "convoy_request_duration_seconds",
    "convoy_queue_duration_seconds",
    "convoy_preprocess_duration_seconds",
    "convoy_inference_duration_seconds",
    "convoy_postprocess_duration_seconds",
]

errors = []
warnings = []


def base_name(name):
    """convoy_x_bucket -> convoy_x when convoy_x is a histogram of the contract."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            if CONTRACT.get(stem) == "histogram":
                return stem
    return name


def metric_names(text):
    """Metric names in PromQL-ish text: identifiers starting with convoy_, not recording
    rule names (those contain ':'), not label values or words inside longer names."""
    names = set()
    for m in re.finditer(r"(?<![A-Za-z0-9_:])convoy_[a-z0-9_]+(?![A-Za-z0-9_:])", text):
        names.add(m.group(0))
    return names


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def check_dashboard():
    path = ROOT / "docker/grafana/dashboards/convoy.json"
    try:
        dash = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        errors.append(f"{path.relative_to(ROOT)}: not valid JSON: {e}")
        return []
    exprs = []
    ids = set()
    titles = []
    if not dash.get("uid") or not dash.get("title"):
        errors.append("dashboard: missing uid or title")
    var_names = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
    if "datasource" not in var_names:
        errors.append("dashboard: no `datasource` template variable")
    for p in walk_panels(dash.get("panels", [])):
        pid = p.get("id")
        if pid in ids:
            errors.append(f"dashboard: duplicate panel id {pid}")
        ids.add(pid)
        if p.get("type") == "row":
            continue
        titles.append(p.get("title", ""))
        if "gridPos" not in p:
            errors.append(f"dashboard: panel {p.get('title')!r} has no gridPos")
        targets = p.get("targets") or []
        if not targets:
            errors.append(f"dashboard: panel {p.get('title')!r} has no query")
        for t in targets:
            expr = t.get("expr", "")
            if not expr.strip():
                errors.append(f"dashboard: panel {p.get('title')!r} target {t.get('refId')} has no expr")
            exprs.append((p.get("title"), t.get("refId"), expr))
            ds = t.get("datasource") or p.get("datasource") or {}
            if ds.get("uid") != "${datasource}":
                errors.append(f"dashboard: panel {p.get('title')!r} does not use the ${{datasource}} variable")
    for what, rx in REQUIRED_PANELS:
        if not any(re.search(rx, t, re.I) for t in titles):
            errors.append(f"dashboard: no panel for {what} (title matching /{rx}/)")
    all_exprs = "\n".join(e for _, _, e in exprs)
    for m in STAGE_METRICS:
        for q in ("0.5", "0.99"):
            if not re.search(rf"histogram_quantile\({q}, [^\n]*{m}_bucket", all_exprs):
                errors.append(f"dashboard: no p{'50' if q == '0.5' else '99'} query on {m}")
    print(f"dashboard: {len(titles)} panels, {len(exprs)} queries")
    return exprs


def grafana_to_promql(expr):
    """Replace Grafana's variables by values PromQL accepts, for a syntax check."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$__range", "1h")
    expr = re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(:[a-z]+)?\}?", ".*", expr)
    return expr


def metrics_rs_names():
    path = ROOT / "src/metrics.rs"
    try:
        text = path.read_text()
    except OSError:
        return None
    return set(re.findall(r'"(convoy_[a-z0-9_]+)"', text))


def main():
    out = None
    if len(sys.argv) == 3 and sys.argv[1] == "--promql-rules":
        out = pathlib.Path(sys.argv[2])
    elif len(sys.argv) != 1:
        print(__doc__)
        return 2

    exprs = check_dashboard()

    used = {}
    for rel in SOURCES:
        path = ROOT / rel
        if not path.exists():
            errors.append(f"{rel}: missing")
            continue
        for name in metric_names(path.read_text()):
            used.setdefault(base_name(name), set()).add(rel)

    for name in sorted(used):
        if name not in CONTRACT:
            errors.append(f"unknown metric {name} (used in {', '.join(sorted(used[name]))}); "
                          "Convoy's names are in src/metrics.rs and in CONTRACT of this script")
    in_code = metrics_rs_names()
    if in_code is None:
        warnings.append("src/metrics.rs not found: metric names not compared with the code")
    else:
        code_names = {base_name(n) for n in in_code}
        for name in sorted(set(used) & set(CONTRACT)):
            if name not in code_names:
                warnings.append(f"{name} is used by the deployment files but not (yet) in src/metrics.rs")
        for name in sorted(code_names - set(CONTRACT)):
            warnings.append(f"src/metrics.rs has {name}, which the contract of this script does not list")
    print(f"metric names: {len(used)} used, all checked against the {len(CONTRACT)}-name contract")

    if out is not None:
        lines = ["# Generated by deploy/checks/metrics_check.py: the dashboard's queries, for promtool.",
                 "groups:", "  - name: dashboard", "    rules:"]
        for i, (title, ref, expr) in enumerate(exprs):
            lines.append(f"      - record: dashboard:q{i}")
            lines.append("        expr: " + json.dumps(grafana_to_promql(expr)))
        out.write_text("\n".join(lines) + "\n")

    for w in warnings:
        print(f"WARNING: {w}")
    for e in errors:
        print(f"ERROR: {e}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
