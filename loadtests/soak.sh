#!/usr/bin/env bash
# Soak: a steady open-loop load for a bounded time, recording the server's RSS over time.
#
#   loadtests/soak.sh [MINUTES]      default 10 (1..60); writes loadtests/SOAK.md and
#                                    loadtests/results/soak.json (RSS samples included)
#
# One server (127.0.0.1 only) serves the MLP and, when built, MiniLM; two open-loop
# clients send at fixed rates the whole time: v2 JSON to the MLP and mixed-length texts
# to /v1/embeddings, well under capacity so the figures show memory, not a queue. Nobody
# scrapes /metrics (a scrape drains the histograms; the server must stay bounded without
# one). VmRSS is sampled every SAMPLE_S seconds. The check: RSS growth from minute 2 (after
# warm-up: allocator pools, tokenizer caches, ORT arenas) to the end stays under 5 %;
# exit status 1 otherwise, or when a request failed.
#
# Environment: SOAK_MLP_RPS (default 300), SOAK_TEXT_RPS (default 10), SAMPLE_S (5).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

MINUTES=${1:-10}
case "$MINUTES" in '' | *[!0-9]*) echo "usage: $0 [MINUTES]" >&2; exit 2 ;; esac
if [ "$MINUTES" -lt 1 ] || [ "$MINUTES" -gt 60 ]; then
  echo "MINUTES must be 1..60" >&2
  exit 2
fi
[ "$MINUTES" -ge 3 ] || echo "[soak] note: under 3 minutes the minute-2 baseline is the end" >&2
MLP_RPS=${SOAK_MLP_RPS:-300}
TEXT_RPS=${SOAK_TEXT_RPS:-10}
SAMPLE_S=${SAMPLE_S:-5}
DURATION=$((MINUTES * 60))
OUT=$ROOT/loadtests/out/soak
RAW=$ROOT/loadtests/results
CONVOY=$ROOT/target/release/convoy
LOAD=$ROOT/target/release/convoy-load
ORT_LIB=$ROOT/.ort/cpu/libonnxruntime.so
say() { printf '[soak] %s\n' "$*" >&2; }

[ -f "$ORT_LIB" ] || { say "no $ORT_LIB: run deploy/setup.sh first"; exit 1; }
say "building (release)"
cargo build --release -p convoy -p convoy-loadtests

rm -rf "$OUT"
mkdir -p "$OUT/repo" "$RAW"
ln -s "$ROOT/models/mlp" "$OUT/repo/mlp"
TEXT=0
if [ -f models/minilm/model.onnx ]; then
  ln -s "$ROOT/models/minilm" "$OUT/repo/minilm"
  TEXT=1
else
  say "models/minilm is not built (deploy/setup.sh models): soaking the MLP only"
fi

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$CONVOY" serve --host 127.0.0.1 --port "$PORT" --model-repository "$OUT/repo" \
  --ort-lib "$ORT_LIB" >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
PIDS=()
cleanup() {
  for p in "${PIDS[@]}" "$SERVER_PID"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
deadline=$((SECONDS + 120))
until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/v2/health/ready" 2>/dev/null; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    say "convoy did not become ready:"; tail -n 30 "$OUT/server.log" >&2; exit 1
  fi
  sleep 0.2
done

"$LOAD" body --reference models/mlp/reference.json --rows 1 --out "$OUT/body-mlp.json" >&2
bodies=()
if [ "$TEXT" = 1 ]; then
  for i in 0 1 2 3 4 5 6 7; do
    "$LOAD" body --embeddings-model minilm --texts 1 --length mixed --offset "$i" \
      --out "$OUT/text-$i.json" >&2
    bodies+=("$OUT/text-$i.json")
  done
fi

say "$MINUTES min: MLP at $MLP_RPS req/s$([ "$TEXT" = 1 ] && echo ", MiniLM at $TEXT_RPS req/s"); RSS every ${SAMPLE_S}s"
START=$(date +%s.%N)
"$LOAD" open --url "http://127.0.0.1:$PORT/v2/models/mlp/infer" --body "$OUT/body-mlp.json" \
  --rate "$MLP_RPS" --duration-s "$DURATION" --warmup-s 0 --connections 16 \
  --json "$OUT/open-mlp.json" >"$OUT/client-mlp.log" 2>&1 &
PIDS+=($!)
if [ "$TEXT" = 1 ]; then
  "$LOAD" open --url "http://127.0.0.1:$PORT/v1/embeddings" --body "$(IFS=,; echo "${bodies[*]}")" \
    --rate "$TEXT_RPS" --duration-s "$DURATION" --warmup-s 0 --connections 8 \
    --json "$OUT/open-text.json" >"$OUT/client-text.log" 2>&1 &
  PIDS+=($!)
fi

: >"$OUT/rss.csv"
while kill -0 "${PIDS[0]}" 2>/dev/null; do
  now=$(date +%s.%N)
  rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo "")
  [ -n "$rss" ] || { say "the server exited during the soak"; tail -n 30 "$OUT/server.log" >&2; exit 1; }
  echo "$(python3 -c "print(round($now - $START, 1))"),$rss" >>"$OUT/rss.csv"
  sleep "$SAMPLE_S"
done
for p in "${PIDS[@]}"; do wait "$p" || { say "a client failed: see $OUT/client-*.log"; exit 1; }; done
PIDS=()

python3 - "$OUT" "$RAW/soak.json" loadtests/SOAK.md "$MINUTES" "$MLP_RPS" "$TEXT_RPS" "$TEXT" \
  "$(git describe --always --dirty 2>/dev/null || echo none)" <<'PY'
import json, os, statistics, sys, time
out, raw, md, minutes, mlp_rps, text_rps, text, commit = sys.argv[1:]
minutes, text = int(minutes), text == "1"
samples = []
for line in open(os.path.join(out, "rss.csv")):
    t, kib = line.strip().split(",")
    samples.append((float(t), int(kib)))
if len(samples) < 2:
    sys.exit("too few RSS samples")

def around(t0):
    # Median of the samples within 15 s of t0 (noise of one sample does not decide).
    near = [k for t, k in samples if abs(t - t0) <= 15] or [min(samples, key=lambda s: abs(s[0] - t0))[1]]
    return statistics.median(near)

end_t = samples[-1][0]
base_t = min(120.0, end_t)
base, end = around(base_t), around(end_t - 7.5)
growth = (end - base) / base * 100
clients = {}
for name in ["mlp"] + (["text"] if text else []):
    lvl = json.load(open(os.path.join(out, f"open-{name}.json")))["levels"][0]
    clients[name] = {k: lvl[k] for k in ("target_rate", "sent", "ok", "error_total", "errors", "dropped", "requests_per_s")}
    clients[name]["p99_ms"] = lvl["latency"]["p99_ms"]
failed = sum(c["error_total"] + c["dropped"] for c in clients.values())
ok = growth < 5.0 and failed == 0
doc = {"minutes": minutes, "commit": commit, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
       "rss_minute2_kib": base, "rss_end_kib": end, "rss_peak_kib": max(k for _, k in samples),
       "growth_pct": round(growth, 2), "pass": ok, "clients": clients,
       "samples": [{"t_s": t, "rss_kib": k} for t, k in samples]}
json.dump(doc, open(raw, "w"), indent=1)
mib = lambda k: k / 1024
rows = []
for m in range(0, minutes + 1):
    t = min(m * 60, end_t)
    rows.append(f"| {m} | {mib(around(t)):.1f} |")
lines = [
    "# Soak", "",
    f"Generated by `loadtests/soak.sh {minutes}` on {doc['date']} (commit {commit}); raw samples in "
    "[results/soak.json](results/soak.json). One server, steady open-loop load, nobody scraping `/metrics`.", "",
    f"**RSS growth from minute 2 to minute {minutes}: {growth:+.2f} %** "
    f"({mib(base):.1f} → {mib(end):.1f} MiB; peak {mib(doc['rss_peak_kib']):.1f} MiB); "
    f"limit 5 %: {'pass' if ok else 'FAIL'}.", "",
    "| client | rate (req/s) | sent | ok | errors | dropped | p99 (ms) |", "|---|---|---|---|---|---|---|",
]
for name, c in clients.items():
    label = "MLP, v2 JSON" if name == "mlp" else "MiniLM, /v1/embeddings, mixed lengths"
    lines.append(f"| {label} | {c['target_rate']:.0f} | {c['sent']} | {c['ok']} | {c['error_total']} | {c['dropped']} | {c['p99_ms']:.1f} |")
lines += ["", "| minute | RSS (MiB, median of samples within 15 s) |", "|---|---|"] + rows + [""]
open(md, "w").write("\n".join(lines))
print("\n".join(lines))
sys.exit(0 if ok else 1)
PY
