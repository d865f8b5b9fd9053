#!/usr/bin/env bash
# Convoy's benchmark in one command: dynamic batching vs max_batch_size = 1 over HTTP, and
# the in-process ONNX Runtime ceiling both are bounded by.
#
#   loadtests/run.sh           full run (~2 min after the build); rewrites loadtests/RESULTS.md
#                              and the raw JSON in loadtests/results/
#   loadtests/run.sh --quick   smoke run (< 2 min after the build); writes only under
#                              loadtests/out/quick/ so committed results stay untouched
#
# Servers listen on 127.0.0.1 only and are always stopped on exit, success or not.
# Needs: cargo, curl, python3 (free port, TOML sanity check).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

QUICK=0
case "${1:-}" in
  --quick) QUICK=1 ;;
  "") ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

if [ "$QUICK" = 1 ]; then
  DURATION=2 WARMUP=1 CEIL_DURATION=1 CEIL_WARMUP=0.5
  OUT=$ROOT/loadtests/out/quick
  MD=$OUT/RESULTS.md
else
  DURATION=10 WARMUP=2 CEIL_DURATION=10 CEIL_WARMUP=1
  OUT=$ROOT/loadtests/out/full
  MD=$ROOT/loadtests/RESULTS.md
fi
# Raw JSON always sits next to the markdown that links to it.
RAW=$(dirname "$MD")/results
CONCURRENCY=1,16,64
BATCH_SIZES=1,16,64
ORT_LIB=$ROOT/.ort/cpu/libonnxruntime.so
ORT_VERSION=1.31.1
MODEL_DIR=$ROOT/models/mlp
CONVOY=$ROOT/target/release/convoy
LOAD=$ROOT/target/release/convoy-load

say() { printf '[loadtests] %s\n' "$*" >&2; }

SERVER_PID=""
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    # Give it 10 s to drain, then stop it for good.
    for _ in $(seq 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

# --- (a) build, (b) ONNX Runtime ---------------------------------------------------------
say "building convoy and convoy-load (release)"
cargo build --release -p convoy -p convoy-loadtests
if [ ! -f "$ORT_LIB" ]; then
  say "ONNX Runtime missing: running deploy/setup.sh ort"
  deploy/setup.sh ort
fi
[ -f "$MODEL_DIR/model.toml" ] || { say "missing $MODEL_DIR/model.toml"; exit 1; }

# --- (c) model repositories --------------------------------------------------------------
rm -rf "$OUT"
mkdir -p "$OUT/repos/batched" "$OUT/repos/unbatched/mlp" "$RAW"
cp -r "$MODEL_DIR" "$OUT/repos/batched/mlp"
cp "$MODEL_DIR/model.onnx" "$OUT/repos/unbatched/mlp/model.onnx"
# The unbatched config is the committed one minus batching, so instances and threads stay
# identical and batching is the only difference between the two runs.
awk '
  /^[[:space:]]*\[/ { skip = ($0 ~ /^[[:space:]]*\[dynamic_batching\]/) }
  skip { next }
  /^[[:space:]]*max_batch_size[[:space:]]*=/ {
    print "max_batch_size = 1           # written by loadtests/run.sh: batching off"; next
  }
  { print }
' "$MODEL_DIR/model.toml" >"$OUT/repos/unbatched/mlp/model.toml"
# Checks the derived config, and prints the intra-op thread count the ceiling must match.
INTRA_THREADS=$(python3 - "$MODEL_DIR/model.toml" "$OUT/repos/unbatched/mlp/model.toml" <<'PY'
import sys, tomllib
def load(path):
    with open(path, "rb") as f:
        return tomllib.load(f)
batched, unbatched = load(sys.argv[1]), load(sys.argv[2])
assert unbatched.get("max_batch_size") == 1, "unbatched model.toml: max_batch_size is not 1"
assert "dynamic_batching" not in unbatched, "unbatched model.toml still has [dynamic_batching]"
rest = lambda cfg: {k: v for k, v in cfg.items() if k not in ("max_batch_size", "dynamic_batching")}
assert rest(batched) == rest(unbatched), "unbatched model.toml differs beyond batching"
# 0 = the server's --intra-op-threads, which run.sh leaves at its default of 1.
print(batched.get("instances", {}).get("intra_op_threads", 0) or 1)
PY
)
"$LOAD" body --reference "$MODEL_DIR/reference.json" --rows 1 --out "$OUT/body-1row.json" >&2

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server NAME REPO: starts convoy in the background and waits for readiness.
start_server() {
  local name=$1 repo=$2 log=$OUT/server-$1.log
  PORT=$(free_port)
  say "starting convoy ($name) on 127.0.0.1:$PORT"
  "$CONVOY" serve --host 127.0.0.1 --port "$PORT" --model-repository "$repo" \
    --ort-lib "$ORT_LIB" >"$log" 2>&1 &
  SERVER_PID=$!
  local deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/v2/health/ready" 2>/dev/null; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      say "convoy ($name) did not become ready; last lines of $log:"
      tail -n 40 "$log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}

# --- (d) closed loop against each repository ---------------------------------------------
for name in batched unbatched; do
  start_server "$name" "$OUT/repos/$name"
  say "closed loop ($name): concurrency $CONCURRENCY, ${DURATION}s each after ${WARMUP}s warm-up"
  "$LOAD" closed --url "http://127.0.0.1:$PORT/v2/models/mlp/infer" \
    --body "$OUT/body-1row.json" --concurrency "$CONCURRENCY" \
    --duration-s "$DURATION" --warmup-s "$WARMUP" --json "$RAW/closed-$name.json"
  if ! curl -fsS "http://127.0.0.1:$PORT/v2/models/mlp/stats" >"$RAW/stats-$name.json"; then
    say "warning: could not fetch batch statistics from convoy ($name)"
    rm -f "$RAW/stats-$name.json"
  fi
  stop_server
done

# --- (e) in-process ceiling (no server running, so it has the machine) -------------------
say "ceiling: batch sizes $BATCH_SIZES, ${CEIL_DURATION}s each, $INTRA_THREADS intra-op thread(s)"
"$LOAD" ceiling --model "$MODEL_DIR/model.onnx" --ort-lib "$ORT_LIB" \
  --reference "$MODEL_DIR/reference.json" --batch-sizes "$BATCH_SIZES" \
  --duration-s "$CEIL_DURATION" --warmup-s "$CEIL_WARMUP" --intra-threads "$INTRA_THREADS" \
  --json "$RAW/ceiling.json"

# --- (f) report ------------------------------------------------------------------------
stats_args=()
for name in batched unbatched; do
  if [ -f "$RAW/stats-$name.json" ]; then
    stats_args+=("--$name-stats" "$RAW/stats-$name.json")
  fi
done
"$LOAD" report \
  --batched "$RAW/closed-batched.json" --unbatched "$RAW/closed-unbatched.json" \
  --ceiling "$RAW/ceiling.json" "${stats_args[@]}" \
  --batched-config "$OUT/repos/batched/mlp/model.toml" \
  --unbatched-config "$OUT/repos/unbatched/mlp/model.toml" \
  --raw-dir results \
  --commit "$(git describe --always --dirty 2>/dev/null || echo none)" \
  --date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
  --rustc "$(rustc --version)" --ort-version "$ORT_VERSION" \
  --out "$MD"
say "done: $MD"
