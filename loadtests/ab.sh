#!/usr/bin/env bash
# A/B of two Convoy binaries in one run: both serve the shipped models side by side, and
# one closed-loop client alternates between them in rounds (so machine noise lands on
# both), on the MLP at c=1/16/64 and on MiniLM's /v1/embeddings at c=16. Prints the
# throughput table and the candidate/baseline ratios, and writes them to OUT/ab.md.
#
# usage: loadtests/ab.sh BASELINE_CONVOY CANDIDATE_CONVOY [OUT_DIR]
#   env: AB_ROUNDS (default 4), AB_SLICE_S (seconds per round per server, default 3),
#        CONVOY_LOAD (default target/release/convoy-load)
# An opt-in benchmark: nothing in CI runs it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n 2,10p "$0"; exit 2; }
A=$(realpath "$1") B=$(realpath "$2") OUT=${3:-$ROOT/loadtests/out/ab}
ROUNDS=${AB_ROUNDS:-4} SLICE=${AB_SLICE_S:-3}
LOAD=${CONVOY_LOAD:-$ROOT/target/release/convoy-load}
ORT_LIB=$ROOT/.ort/cpu/libonnxruntime.so
MODELS=$ROOT/models
mkdir -p "$OUT"
say() { printf '[ab] %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

serve() { # serve NAME BINARY -> prints its port
  local port; port=$(free_port)
  "$2" serve --host 127.0.0.1 --port "$port" --model-repository "$MODELS" \
    --ort-lib "$ORT_LIB" >"$OUT/server-$1.log" 2>&1 &
  PIDS+=($!)
  local deadline=$((SECONDS + 120))
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/health/ready" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || { say "$1 did not become ready"; tail -20 "$OUT/server-$1.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "$port"
}

PA=$(serve baseline "$A")
PB=$(serve candidate "$B")
say "baseline on $PA, candidate on $PB; $ROUNDS rounds of ${SLICE}s per server and level"

"$LOAD" body --reference "$MODELS/mlp/reference.json" --rows 1 --out "$OUT/body-mlp.json" >&2
texts=()
for i in 0 1 2 3 4 5 6 7; do
  "$LOAD" body --embeddings-model minilm --texts 1 --length short --offset "$i" \
    --out "$OUT/body-minilm-$i.json" >&2
  texts+=("$OUT/body-minilm-$i.json")
done
minilm_bodies=$(IFS=,; echo "${texts[*]}")

"$LOAD" closed --url "http://127.0.0.1:$PA/v2/models/mlp/infer,http://127.0.0.1:$PB/v2/models/mlp/infer" \
  --json "$OUT/mlp-baseline.json,$OUT/mlp-candidate.json" --body "$OUT/body-mlp.json" \
  --concurrency 1,16,64 --rounds "$ROUNDS" --duration-s "$((ROUNDS * SLICE))" --warmup-s 1
"$LOAD" closed --url "http://127.0.0.1:$PA/v1/embeddings,http://127.0.0.1:$PB/v1/embeddings" \
  --json "$OUT/minilm-baseline.json,$OUT/minilm-candidate.json" --body "$minilm_bodies" \
  --concurrency 16 --rounds "$ROUNDS" --duration-s "$((ROUNDS * SLICE))" --warmup-s 1

python3 - "$OUT" <<'PY' | tee "$OUT/ab.md"
import json, sys
out = sys.argv[1]
def levels(name):
    return {l["concurrency"]: l for l in json.load(open(f"{out}/{name}.json"))["levels"]}
print("| model | c | baseline req/s | candidate req/s | ratio | baseline p50 ms | candidate p50 ms |")
print("|---|---|---|---|---|---|---|")
worst = None
for model in ("mlp", "minilm"):
    a, b = levels(f"{model}-baseline"), levels(f"{model}-candidate")
    for c in sorted(a):
        ra, rb = a[c]["requests_per_s"], b[c]["requests_per_s"]
        ratio = rb / ra if ra else float("nan")
        worst = ratio if worst is None else min(worst, ratio)
        p50 = lambda l: l["latency"]["p50_ms"]
        print(f"| {model} | {c} | {ra:.0f} | {rb:.0f} | {ratio:.3f} | {p50(a[c]):.2f} | {p50(b[c]):.2f} |")
print(f"\nworst ratio: {worst:.3f}")
PY
