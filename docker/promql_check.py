#!/usr/bin/env python3
"""Every PromQL expression of the shipped dashboard and rules, evaluated by a live
Prometheus scraping a live Convoy (docker/test.sh, compose step). Standard library only.

  promql_check.py --convoy URL --prometheus URL --dashboard JSON --report FILE [--grafana URL]

1. Prometheus ready; Convoy's scrape target `up` (and `up{job="convoy"} == 1`).
2. The rules file loaded: both groups, every rule evaluated with health "ok".
3. Mixed load on Convoy (test_client.py load) while:
   - every dashboard target and template-variable query, with $model and $instance = .*
     and $__rate_interval = 1m, evaluates without error and returns data;
   - every recording rule's expression (as Prometheus loaded it) returns data, and so does
     the series it records;
   - every alert expression evaluates without error as written (an empty answer there just
     means "not firing"), and returns data with its threshold comparisons made `bool`
     (so the data it compares exists).
The report lists each expression with its result; its last line is the summary.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def wait(what, fn, timeout_s):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            ok, last = fn()
            if ok:
                return last
        except OSError as e:
            last = str(e)
        time.sleep(1)
    sys.exit(f"FAIL: {what} within {timeout_s}s (last: {str(last)[:300]})")


def query(prom, expr):
    """(error or None, number of series/samples)."""
    status, v = get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    if status != 200 or not isinstance(v, dict) or v.get("status") != "success":
        err = v.get("error", v) if isinstance(v, dict) else v
        return f"HTTP {status}: {err}", 0
    data = v["data"]
    if data["resultType"] in ("scalar", "string"):
        return None, 1
    return None, len(data["result"])


def dashboard_queries(path):
    with open(path) as f:
        d = json.load(f)
    out = []

    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(d.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append((f"dashboard: {p.get('title')}", t["expr"]))
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", q or "")
        if m:
            # label_values(SELECTOR, LABEL): the series of SELECTOR must carry LABEL.
            out.append((f"dashboard variable ${v['name']} = {q}", m.group(1), m.group(2)))
    return out


def substitute(expr):
    return (expr.replace("$__rate_interval", "1m").replace("${__rate_interval}", "1m")
            .replace("$model", ".*").replace("$instance", ".*"))


# `> 0.8` -> `> bool 0.8`: a comparison against a number keeps every series (0 or 1).
BOOL = re.compile(r"(==|!=|>=|<=|>|<)(\s*)(?=[0-9.])")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--convoy", required=True)
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--grafana", default="")
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--load-seconds", type=float, default=150)
    a = ap.parse_args()
    prom = a.prometheus

    wait("Prometheus ready", lambda: (get(f"{prom}/-/ready")[0] == 200, None), 90)
    status, bi = get(f"{prom}/api/v1/status/buildinfo")
    print(f"Prometheus {bi['data']['version'] if status == 200 else '?'} ready")

    def target_up():
        _, v = get(f"{prom}/api/v1/targets")
        ts = [t for t in v["data"]["activeTargets"] if t["labels"].get("job") == "convoy"]
        return bool(ts) and all(t["health"] == "up" for t in ts), ts
    ts = wait("Convoy's target up", target_up, 90)
    print(f"target: job=convoy {ts[0]['scrapeUrl']} health {ts[0]['health']}")

    # Load in the background for the whole evaluation (rates need samples in the window).
    load = subprocess.Popen([sys.executable, os.path.join(HERE, "test_client.py"), "load",
                             a.convoy, str(a.load_seconds)])
    lines = []
    errors = 0
    empty = []
    try:
        up_err, up_n = query(prom, 'up{job="convoy"} == 1')
        if up_err or up_n == 0:
            sys.exit(f"FAIL: up{{job=\"convoy\"}} == 1: {up_err or 'empty'}")

        def rules_ok():
            _, v = get(f"{prom}/api/v1/rules")
            groups = v["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            done = rules and all(not r.get("lastEvaluation", "0001").startswith("0001") for r in rules)
            return bool(groups) and done, (groups, rules)
        groups, rules = wait("the rules file loaded and evaluated once", rules_ok, 60)
        bad = [r for r in rules if r.get("health") != "ok" or r.get("lastError")]
        print(f"rules: {len(groups)} groups ({', '.join(g['name'] + ' from ' + g['file'] for g in groups)}), "
              f"{len(rules)} rules, {len(rules) - len(bad)} with health ok")
        for r in bad:
            errors += 1
            lines.append(f"ERROR rule {r.get('name')}: health {r.get('health')} {r.get('lastError')}")

        checks = []   # (source, expr, label or None, must_have_data)
        for q in dashboard_queries(a.dashboard):
            if len(q) == 3:
                checks.append((q[0], substitute(q[1]), q[2], True))
            else:
                checks.append((q[0], substitute(q[1]), None, True))
        for r in rules:
            if r["type"] == "recording":
                checks.append((f"record {r['name']}", r["query"], None, True))
                sel = r["name"] + "{" + ",".join(f'{k}="{v}"' for k, v in r.get("labels", {}).items()) + "}"
                checks.append((f"recorded series {r['name']}", sel, None, True))
            else:
                checks.append((f"alert {r['name']} (as written)", r["query"], None, False))
                checks.append((f"alert {r['name']} (bool)", BOOL.sub(r"\1 bool\2", r["query"]), None, True))

        # Retry the empty ones while the load runs: recording rules run every 15 s and
        # rates need two scrapes (5 s apart) inside their window.
        deadline = time.monotonic() + a.load_seconds - 10
        results = {}
        while True:
            pending = [c for c in checks if c[1] not in results or (c[3] and results[c[1]][1] == 0)]
            for src, expr, label, _ in pending:
                err, n = query(prom, expr)
                if label and not err:
                    _, v = get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
                    n = sum(1 for s in v["data"]["result"] if label in s["metric"])
                results[expr] = (err, n)
            missing = [c for c in checks if results[c[1]][0] is None and c[3] and results[c[1]][1] == 0]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(5)
        for src, expr, label, must in checks:
            err, n = results[expr]
            one_line = " ".join(expr.split())
            if err:
                errors += 1
                lines.append(f"ERROR  {src}: {one_line}\n       {err}")
            elif must and n == 0:
                empty.append(src)
                lines.append(f"EMPTY  {src}: {one_line}")
            else:
                what = f"{n} series" + (f" with label {label}" if label else "") if must or n else "0 series (not firing)"
                lines.append(f"OK     {src}: {one_line}  -> {what}")
    finally:
        load.terminate()
        load.wait(timeout=30)

    if a.grafana:
        status, h = get(f"{a.grafana}/api/health")
        status2, found = get(f"{a.grafana}/api/search?query=Convoy")
        ok = status == 200 and status2 == 200 and any(d.get("title") == "Convoy" for d in found or [])
        lines.append(f"{'OK   ' if ok else 'ERROR'}  grafana: /api/health {status}, dashboard 'Convoy' provisioned: {ok}")
        errors += 0 if ok else 1

    n_dash = sum(1 for c in checks if c[0].startswith("dashboard"))
    n_rules = len(checks) - n_dash
    summary = (f"{len(checks)} expressions evaluated ({n_dash} dashboard, {n_rules} rules: "
               f"{len(rules)} rules' expressions + recorded series + alerts as `bool`), "
               f"{errors} errors, {len(empty)} without data")
    with open(a.report, "w") as f:
        f.write("\n".join(lines) + "\n" + summary + "\n")
    print("\n".join(lines))
    print(summary)
    if errors or empty:
        sys.exit(1)


if __name__ == "__main__":
    main()
