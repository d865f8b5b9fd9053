"""Render loadtests/PEERS.md (and its SVG plots) from the files loadtests/peers.sh writes.

  python3 loadtests/peers_report.py RESULTS_DIR OUT.md [--ceiling loadtests/results/ceiling.json]
      [--convoy-load target/release/convoy-load]

RESULTS_DIR holds runs.jsonl (one object per server x model run), closed-*.json and
open-*.json (convoy-load), pa-*.txt (perf_analyzer lines from the peer kit's load.sh),
install.jsonl, startup.jsonl, settings.jsonl and machine.json. Standard library only; the
plots (peers-MODEL-throughput.svg, peers-MODEL-p99.svg, in RESULTS_DIR, linked from the
report) are drawn by `convoy-load plot`. Also writes RESULTS_DIR/summary.json (the summary
ratios, read by `convoy-load report` for RESULTS.md's Peers section).
"""

import argparse
import json
import os
import re
import subprocess

PY_FRAMEWORKS = {"mlserver", "kserve", "litserve", "ray", "pytriton"}
LABEL = {
    "convoy": "Convoy",
    "triton": "Triton 2.51 (Python backend)",
    "pytriton": "PyTriton 0.7",
    "mlserver": "MLServer 1.7.1",
    "kserve": "KServe 0.21 ModelServer",
    "litserve": "LitServe 0.2.19",
    "ray": "Ray Serve 2.60",
}


def jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def label(run):
    name = LABEL.get(run["server"], run["server"])
    if run.get("variant") == "text":
        name += " /v1/embeddings (texts; tokenizes + pools)"
    elif run["server"] == "convoy" and run["model"] == "minilm":
        name += " (token ids, no pipeline)"
    return name


def f(x, nd=1):
    if x is None:
        return "–"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def ms(x):
    if x is None:
        return "–"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def errs(level):
    n = level.get("error_total", 0) or 0
    if not n:
        return "0"
    kinds = ", ".join(f"{k} {v}" for k, v in sorted((level.get("errors") or {}).items()))
    return f"**{n}** ({kinds})"


def closed_levels(res, run):
    j = load(os.path.join(res, run.get("closed", ""))) if run.get("closed") else None
    return {lv["concurrency"]: lv for lv in (j or {}).get("levels", [])}


def open_levels(res, run):
    j = load(os.path.join(res, run.get("open", ""))) if run.get("open") else None
    return (j or {}).get("levels", [])


# ---- plots (convoy-load plot) --------------------------------------------------------------------
def plots(res, runs, model, load_bin):
    """Draws peers-MODEL-throughput.svg and peers-MODEL-p99.svg into RES with `convoy-load plot`
    (plotters, SVG); returns the names of the files written."""
    closed_series, open_series = [], []
    for r in runs:
        if r["model"] != model or not r.get("ok", False) and not r.get("closed"):
            continue
        short = LABEL.get(r["server"], r["server"]).split(" (")[0]
        if r.get("variant") == "text":
            short += " texts"
        if closed_levels(res, r):
            closed_series.append(f"{short}={os.path.join(res, r['closed'])}")
        if any(lv.get("ok") for lv in open_levels(res, r)):
            open_series.append(f"{short}={os.path.join(res, r['open'])}")
    if not os.access(load_bin, os.X_OK):
        print(f"warning: {load_bin} not found: no plots")
        return []
    jobs = [
        (f"peers-{model}-throughput.svg", closed_series,
         ["throughput", "--title", f"{model}: closed loop, requests/s vs concurrency"]),
        (f"peers-{model}-p99.svg", open_series,
         ["latency", "--percentiles", "p99", "--title", f"{model}: open loop, p99 latency vs offered rate"]),
    ]
    files = []
    for name, series, args in jobs:
        if not series:
            continue
        cmd = [load_bin, "plot", *args, "--out", os.path.join(res, name)]
        for spec in series:
            cmd += ["--series", spec]
        got = subprocess.run(cmd, capture_output=True, text=True)
        if got.returncode == 0:
            files.append(name)
        else:
            print(f"warning: convoy-load plot failed for {name}: {got.stderr.strip()[-300:]}")
    return files


# ---- report ------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("res")
    ap.add_argument("md")
    ap.add_argument("--ceiling")
    ap.add_argument("--convoy-load", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "convoy-load"))
    a = ap.parse_args()
    res = a.res
    runs = jsonl(os.path.join(res, "runs.jsonl"))
    installs = jsonl(os.path.join(res, "install.jsonl"))
    startups = {(s["server"], s["model"]): s["seconds"] for s in jsonl(os.path.join(res, "startup.jsonl"))}
    settings = (jsonl(os.path.join(res, "settings.jsonl")) or [{}])[-1]
    machine = load(os.path.join(res, "machine.json")) or {}
    rel = os.path.relpath(res, os.path.dirname(os.path.abspath(a.md)))
    L = []
    w = L.append

    w("# Convoy next to other model servers")
    w("")
    profile = settings.get("profile") or ("quick" if settings.get("quick") else "full")
    flag = "" if profile == "full" else f" --{profile}"
    via = " (the last section of `loadtests/run.sh`)" if settings.get("via_run_sh") else ""
    w(f"Generated by `loadtests/peers.sh{flag}`{via} "
      f"({machine.get('date', '?')}; {settings.get('wall_s', '?')} s wall time, including installs, the "
      "build and any wait for the machine to be quiet) "
      f"and rendered by `loadtests/peers_report.py`, plots by `convoy-load plot`; raw JSON in "
      f"[`{rel}/`]({rel}/).")
    w("")
    w("**Setup.** Every server runs the same ONNX file on the CPU with one ONNX Runtime intra-op "
      "thread, on 127.0.0.1, one server at a time, and is driven by the same client "
      "(`convoy-load`, one tokio thread, keep-alive connections) with the same body, levels and "
      "durations. The peers are started with the peer kit (`PEERS_KIT`, /work/shared/peers): "
      "each serves the model over KServe v2 JSON with onnxruntime's Python API. Triton is the real "
      "tritonserver 2.51 with the model in its *Python backend* (the kit's `model.py`), not "
      "Triton's native onnxruntime backend. Batching is configured alike, as a fixed window everywhere: MLP ≤ 64 rows / "
      "500 µs (the kit's defaults; Convoy's committed `models/mlp/model.toml` with its "
      "`latency_target_ms` swapped for that window, `config-convoy-mlp.toml`); MiniLM ≤ 32 "
      "rows / 2000 µs (likewise from `models/minilm/model.toml`; the peers get "
      "`PEERS_MAX_BATCH=32 PEERS_BATCH_DELAY_US=2000`). Convoy's own default, the "
      "latency-target window, is measured against fixed windows in RESULTS.md. KServe's Python ModelServer does not "
      "batch (it only does in its k8s sidecar).")
    w("")
    w(f"**Machine.** {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
      f"{machine.get('mem_gib', '?')} GiB, Linux {machine.get('kernel', '?')}. Shared and noisy: "
      "client and server share the cores, and numbers measured minutes apart can differ by "
      "20–30 %; each row's load average at its start is in `runs.jsonl`. Treat differences "
      "under ~1.3× as noise.")
    w("")
    w("**Versions.** " + "; ".join(
        [f"Convoy: `{machine.get('convoy', '?')}` with ONNX Runtime "
         f"{', '.join(machine.get('convoy_ort', [])) or '?'} ({machine.get('rustc', '?')})"]
        + [f"{k}: `{v}`" for k, v in sorted((machine.get("versions") or {}).items())]) + ".")
    w("")
    w(f"**Levels.** Closed loop c={settings.get('concurrency', '?')}, {settings.get('warmup_s', '?')} s "
      f"warm-up + {settings.get('duration_s', '?')} s measured per level. Open loop (Poisson arrivals, "
      f"latency from the intended send time, {settings.get('open_connections', '?')} connections, "
      f"per-request timeout {settings.get('open_timeout_s', '?')} s, arrivals beyond "
      f"{settings.get('open_max_in_flight', '?')} outstanding dropped): "
      f"{settings.get('open_warmup_s', '?')} s + {settings.get('open_duration_s', '?')} s per rate. "
      "Bodies: MLP one row of 10 FP32 (`convoy-load body`, `body-mlp.json`); MiniLM one sequence of "
      f"{settings.get('minilm_len', '?')} token ids + mask + type ids (the kit's `make_body.py`, "
      "`body-minilm.json`), response `last_hidden_state` [1, 16, 384] from every server.")
    w("")
    w("Latencies are client-side, in ms. `errors` counts failed requests (by kind); a row with "
      "errors is not a valid throughput figure.")
    w("")
    summary_at = len(L)

    summary_rows = []
    ratios, plot_files = [], {}
    for model, title in (("mlp", "MLP (diabetes regression, 10 → 128 → 64 → 32 → 1)"),
                         ("minilm", "MiniLM (all-MiniLM-L6-v2, 16 tokens)")):
        mruns = [r for r in runs if r["model"] == model]
        if not mruns:
            continue
        w(f"## {title}")
        w("")
        if model == "minilm":
            w("Convoy's MiniLM model is normally a text pipeline (texts in, tokenizer + graph + mean "
              "pooling + L2 norm, BYTES input). For a like-for-like comparison the peers and "
              "`Convoy (token ids, no pipeline)` get the same pre-tokenized body: Convoy serves the "
              "same graph from a derived `model.toml` without `[pipeline]` "
              "(`config-convoy-minilm-ids.toml`). The `/v1/embeddings` row is Convoy doing "
              "tokenization and pooling on top (8 short sentences of ~8–12 tokens, padded to its "
              "16-token bucket, 384-float embedding out), so it does more work per request than the "
              "peers' rows but returns 16× less JSON.")
            w("")
        w("### Closed loop")
        w("")
        w("| server | c | req/s | rows/s | p50 ms | p99 ms | errors | client CPU % |")
        w("|---|---:|---:|---:|---:|---:|---|---:|")
        per_c = {}  # concurrency -> {run label: req/s}
        for r in mruns:
            cl = closed_levels(res, r)
            if not cl:
                w(f"| {label(r)} | – | – | – | – | – | failed: {r.get('note', '?')} | – |")
                continue
            for c in sorted(cl):
                lv = cl[c]
                lat = lv.get("latency") or {}
                w(f"| {label(r)} | {c} | {f(lv['requests_per_s'])} | {f(lv['rows_per_s'])} | "
                  f"{ms(lat.get('p50_ms'))} | {ms(lat.get('p99_ms'))} | {errs(lv)} | "
                  f"{f(lv.get('client_cpu_pct'), 0)} |")
                if not lv.get("error_total"):
                    per_c.setdefault(c, {})[(r["server"], r.get("variant", ""))] = lv
        w("")
        # ratios
        w("### Convoy / peers (closed loop, req/s; p99)")
        w("")
        w("| c | Convoy req/s | best peer | Convoy / best peer | best Python-framework peer | "
          "Convoy / it | Convoy p99 | best peer's p99 |")
        w("|---:|---:|---|---:|---|---:|---:|---:|")
        for c in sorted(per_c):
            d = per_c[c]
            cv = d.get(("convoy", ""))
            peers = {k: v for k, v in d.items() if k[0] != "convoy"}
            if not cv or not peers:
                continue
            bk = max(peers, key=lambda k: peers[k]["requests_per_s"])
            pyp = {k: v for k, v in peers.items() if k[0] in PY_FRAMEWORKS}
            pk = max(pyp, key=lambda k: pyp[k]["requests_per_s"]) if pyp else None
            b = peers[bk]
            w(f"| {c} | {f(cv['requests_per_s'])} | {LABEL.get(bk[0], bk[0])} {f(b['requests_per_s'])} | "
              f"**{cv['requests_per_s'] / b['requests_per_s']:.1f}×** | "
              + (f"{LABEL.get(pk[0], pk[0])} {f(pyp[pk]['requests_per_s'])} | "
                 f"**{cv['requests_per_s'] / pyp[pk]['requests_per_s']:.1f}×** | " if pk else "– | – | ")
              + f"{ms(cv['latency'].get('p99_ms'))} | {ms(b['latency'].get('p99_ms'))} |")
            for k, v in peers.items():
                summary_rows.append((model, c, k[0], cv["requests_per_s"] / v["requests_per_s"]))
                ratios.append({"model": model, "concurrency": c, "server": k[0],
                               "label": LABEL.get(k[0], k[0]).split(" (")[0],
                               "convoy_rps": cv["requests_per_s"], "peer_rps": v["requests_per_s"],
                               "ratio": cv["requests_per_s"] / v["requests_per_s"],
                               "python": k[0] in PY_FRAMEWORKS,
                               "convoy_p99_ms": cv["latency"].get("p99_ms"),
                               "peer_p99_ms": v["latency"].get("p99_ms")})
        w("")
        w("### Open loop (same arrival schedule for every server)")
        w("")
        w("| server | offered req/s | sent/s | ok req/s | p50 ms | p99 ms | dropped | errors |")
        w("|---|---:|---:|---:|---:|---:|---:|---|")
        for r in mruns:
            ol = open_levels(res, r)
            if not ol:
                continue
            for lv in ol:
                lat = lv.get("latency") or {}
                w(f"| {label(r)} | {f(lv['target_rate'])} | {f(lv.get('achieved_rate'))} | "
                  f"{f(lv.get('requests_per_s'))} | {ms(lat.get('p50_ms'))} | {ms(lat.get('p99_ms'))} | "
                  f"{lv.get('dropped', 0)} | {errs(lv)} |")
        w("")
        names = plots(res, runs, model, a.convoy_load)
        plot_files[model] = names
        if names:
            w("Plots: requests/s per concurrency (closed loop), and p99 of the *successful* requests "
              "per offered rate (open loop; where a server dropped or timed out requests the table "
              "above says so, and its p99 then understates).")
            w("")
        for name in names:
            w(f"![{name}]({rel}/{name})")
        w("")

    if summary_rows:
        top = ["## Summary", "",
               "Convoy's closed-loop requests/s divided by each peer's (same client, body and levels; "
               "> 1 means Convoy is faster):", ""]
        for model in ("mlp", "minilm"):
            for c in sorted({c for m, c, _, _ in summary_rows if m == model}):
                got = sorted(((v, sv) for m, cc, sv, v in summary_rows if m == model and cc == c))
                if got:
                    top.append(f"- {model}, c={c}: " + ", ".join(
                        f"{LABEL.get(sv, sv).split(' (')[0]} {v:.1f}×" for v, sv in got))
        top.append("")
        L[summary_at:summary_at] = top
        w("## Ratios per peer (Convoy req/s ÷ peer req/s, closed loop)")
        w("")
        servers = sorted({s for _, _, s, _ in summary_rows})
        keys = sorted({(m, c) for m, c, _, _ in summary_rows}, key=lambda k: (k[0] != "mlp", k[1]))
        w("| model, c | " + " | ".join(LABEL.get(s, s) for s in servers) + " |")
        w("|---|" + "---:|" * len(servers))
        d = {(m, c, s): v for m, c, s, v in summary_rows}
        for m, c in keys:
            w(f"| {m}, c={c} | " + " | ".join(f"{d[(m, c, s)]:.1f}×" if (m, c, s) in d else "–"
                                               for s in servers) + " |")
        w("")

    pa = sorted(p for p in os.listdir(res) if p.startswith("pa-") and p.endswith(".txt"))
    if pa:
        w("## perf_analyzer (independent client)")
        w("")
        w("Triton's perf_analyzer 2.51 (from `tritonclient==2.51.0`, through the kit's "
          "`CLIENT=pa load.sh`), HTTP, MLP body, `--concurrency-range C:C`, stability over up to 3 "
          "windows; it reads Convoy's `/v2/models/mlp/config` and `/stats` like Triton's. Its own "
          "numbers are not comparable with `convoy-load`'s (another client with other overheads), "
          "only with each other.")
        w("")
        w("| server | c | infer/s | p50 ms | p99 ms | note |")
        w("|---|---:|---:|---:|---:|---|")
        for p in pa:
            server = p[3:].rsplit("-", 1)[0]
            lines = open(os.path.join(res, p)).read().splitlines()
            got = False
            for line in lines:
                m = re.match(r"c=(\d+) infer/s=([\d.]+) p50=([\d.]+)ms p99=([\d.]+)ms", line)
                if m:
                    got = True
                    note = re.search(r"\((.*)\)\s*$", line)
                    w(f"| {LABEL.get(server, server)} | {m.group(1)} | {f(float(m.group(2)))} | "
                      f"{ms(float(m.group(3)))} | {ms(float(m.group(4)))} | {note.group(1) if note else ''} |")
                elif line.startswith("c=") and "FAILED" in line:
                    got = True
                    w(f"| {LABEL.get(server, server)} | {line.split()[0][2:]} | failed | – | – | {line} |")
            if not got:
                w(f"| {LABEL.get(server, server)} | – | no result (see the log) | – | – | |")
        w("")

    w("## Same answers")
    w("")
    w("Each server's first response (the probe before its measurement), first values of the first "
      "output, against Convoy's (same body, same graph):")
    w("")
    w("| model | server | output, shape | first values | max abs diff vs Convoy |")
    w("|---|---|---|---|---:|")
    for model in ("mlp", "minilm"):
        ref = next((r.get("probe") for r in runs if r["model"] == model and r["server"] == "convoy"
                    and not r.get("variant") and isinstance(r.get("probe"), dict)), None)
        for r in runs:
            p = r.get("probe")
            if r["model"] != model or not isinstance(p, dict):
                continue
            diff = "–"
            if ref and r.get("variant") != "text" and len(ref["first"]) == len(p["first"]):
                diff = f"{max(abs(x - y) for x, y in zip(ref['first'], p['first'])):.1e}"
            elif r.get("variant") == "text":
                diff = "n/a (pooled text embedding)"
            w(f"| {model} | {label(r)} | {p['output']} {p['shape']} | "
              f"{', '.join(f'{v:.4g}' for v in p['first'][:4])} | {diff} |")
    w("")

    ceil = load(a.ceiling) if a.ceiling else None
    if ceil:
        w("## Reference: in-process ceiling")
        w("")
        when = ("measured by the same `loadtests/run.sh` just before this comparison"
                if settings.get("via_run_sh") else "from `loadtests/run.sh`, measured at another time")
        w("ONNX Runtime alone on the MLP, no HTTP/JSON/queue (`loadtests/results/ceiling.json`, "
          f"{when}): "
          + ", ".join(f"batch {lv['batch_size']}: {f(lv['rows_per_s'])} rows/s"
                      for lv in ceil.get("levels", [])) + ". Every HTTP server above is far below it: "
          "at these model sizes the cost is HTTP + JSON + scheduling, not the model.")
        w("")

    w("## Runs that failed or were skipped")
    w("")
    bad = [i for i in installs if not i.get("ok")]
    failed = [r for r in runs if not r.get("ok")]
    if not bad and not failed:
        w("- None failed: every installed peer started and answered the probe.")
    for i in bad:
        w(f"- install `{i['name']}` failed after {i.get('seconds')} s: `{i.get('last', '')[:300]}`")
    for r in failed:
        w(f"- {label(r)} on {r['model']}: {r.get('note', '?')}")
    ran = {r["server"] for r in runs}
    skipped = [p for p in ("triton", "mlserver", "kserve", "litserve", "ray", "pytriton") if p not in ran]
    why = {"ray": "Ray Serve: 20–40 s start-up, the slowest peer in the kit's notes",
           "pytriton": "same Triton core as `triton`, equal shapes only"}
    if skipped:
        w("- Not run (not in `PEERS_LIST`): " + ", ".join(
            f"`{p}`" + (f" ({why[p]})" if p in why else "") for p in skipped) + ".")
    busy = [r for r in runs if r.get("other_job_running")]
    if busy:
        w("- Measured while another heavy job was running on the machine (numbers lower than on a "
          "quiet machine): " + ", ".join(f"{label(r)} {r['model']}" for r in busy) + ".")
    w("")
    if startups:
        w("Peer start-up (start.sh until ready): " + ", ".join(
            f"{LABEL.get(s, s)} {m} {t} s" for (s, m), t in sorted(startups.items())) + ".")
        w("")
    w("## Reproduce")
    w("")
    w("```sh")
    w("loadtests/peers.sh           # full: installs (kit), build, four peers, 10 s levels; rewrites this file")
    w("loadtests/peers.sh --short   # three peers, 4 s levels (what loadtests/run.sh runs last); rewrites this file")
    w("loadtests/peers.sh --quick   # smoke: triton only, short levels; loadtests/out/peers-quick/")
    w("PEERS_KIT=/path/to/peers PEERS_LIST='triton mlserver' loadtests/peers.sh")
    w("```")
    w("")
    with open(a.md, "w") as fh:
        fh.write("\n".join(L))
    print(f"wrote {a.md}")
    # For RESULTS.md (convoy-load report): the ratios, what ran and what failed.
    summary = {
        "profile": profile,
        "date": machine.get("date"),
        "wall_s": settings.get("wall_s"),
        "concurrency": settings.get("concurrency"),
        "warmup_s": settings.get("warmup_s"),
        "duration_s": settings.get("duration_s"),
        "open_warmup_s": settings.get("open_warmup_s"),
        "open_duration_s": settings.get("open_duration_s"),
        "servers": sorted({r["server"] for r in runs if r.get("ok")}),
        "peers": [LABEL.get(p, p).split(" (")[0] for p in
                  sorted({r["server"] for r in runs if r.get("ok") and r["server"] != "convoy"})],
        "ratios": ratios,
        "failed": [f"{label(r)} on {r['model']}: {r.get('note', '?')}" for r in failed]
                  + [f"install {i['name']}" for i in bad],
        "plots": plot_files,
    }
    with open(os.path.join(res, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
