#!/usr/bin/env bash
# The GPU device check: Convoy on CUDA against Convoy on CPU, on the device machine that
# is sometimes lent (an H200; no network; CUDA 13 + cuDNN 9 there with PyTorch cu130; no
# Rust). Everything it lacks comes in the chunks of loadtests/gpu/pack.sh, carried one per
# call (loadtests/gpu/README.md gives the exact sequence of calls).
#
#   loadtests/gpu/check.sh --verify-only   which chunks are here and intact (exit 3: some missing)
#   loadtests/gpu/check.sh                 the check itself, results under $OUT
#   loadtests/gpu/check.sh --dry-run       the same flow with --device cpu, for a machine
#                                          without a GPU (run it here before spending device time)
#
# Steps: verify every chunk (sha256) and the reassembled archive; unpack the payload and
# verify every file; link the device's CUDA 13 / cuDNN 9 libraries (PyTorch's nvidia-*
# wheels) into the ONNX Runtime folder, so Convoy's own preloading is what finds them;
# start a CPU server and a CUDA server (same binary, same GPU library, same models: the
# MLP and MiniLM); compare their outputs (loadtests/gpu/compare.py, tolerances stated
# there) and check /v2 says cuda:0; closed-loop load at c=1/16/64/256 on each model on
# CUDA (and c=1/64 on CPU as a baseline) with convoy-load, sampling Convoy's device busy
# ratio and NVML GPU utilisation from /metrics and `nvidia-smi dmon` alongside.
# Results: $OUT/summary.md, compare.json, results.json, logs.tar.gz (4 files: the device
# tool brings back at most 8).
#
# Knobs (environment): GPU_CHECK_DURATION_S (8), GPU_CHECK_WARMUP_S (2),
# GPU_CHECK_LEVELS (1,16,64,256), GPU_CHECK_CPU_LEVELS (1,64; empty: no CPU baseline),
# GPU_CHECK_CLIENT_THREADS (4), GPU_CHECK_NOBIND_LEVELS (64: MiniLM on a server with
# `[cuda] io_binding = false`, to show what the binding is worth; empty: skipped),
# GPU_CHECK_WORK (/tmp/convoy-gpu-check).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
PACK=${PACK_DIR:-$ROOT/loadtests/gpu/pack}
MODE=full
case "${1:-}" in
  --verify-only) MODE=verify ;;
  --dry-run) MODE=dry ;;
  "") ;;
  *) echo "usage: $0 [--verify-only|--dry-run]" >&2; exit 2 ;;
esac
WORK=${GPU_CHECK_WORK:-/tmp/convoy-gpu-check}
OUT=${OUT:-$ROOT/loadtests/out/gpu-check}
DURATION=${GPU_CHECK_DURATION_S:-8}
WARMUP=${GPU_CHECK_WARMUP_S:-2}
LEVELS=${GPU_CHECK_LEVELS:-1,16,64,256}
CPU_LEVELS=${GPU_CHECK_CPU_LEVELS-1,64}
CLIENT_THREADS=${GPU_CHECK_CLIENT_THREADS:-4}
DEVICE=cuda
if [ "$MODE" = dry ]; then
  DEVICE=cpu
  DURATION=${GPU_CHECK_DURATION_S:-2}
  WARMUP=${GPU_CHECK_WARMUP_S:-1}
  LEVELS=${GPU_CHECK_LEVELS:-1,16}
  CPU_LEVELS=${GPU_CHECK_CPU_LEVELS-1}
  CLIENT_THREADS=${GPU_CHECK_CLIENT_THREADS:-1}
fi
START=$SECONDS
say() { printf '[gpu-check +%ss] %s\n' "$((SECONDS - START))" "$*" >&2; }
FAILURES=()
fail() { FAILURES+=("$*"); say "FAILED: $*"; }

# --- chunks ---------------------------------------------------------------------------
verify_chunks() {
  if [ ! -f "$PACK/MANIFEST.sha256" ]; then
    say "no $PACK/MANIFEST.sha256: carry loadtests/gpu/pack/MANIFEST.sha256 (made by loadtests/gpu/pack.sh)"
    return 3
  fi
  local sha name have=0 total=0 missing=()
  while read -r sha name; do
    [ "$name" = payload.tar.xz ] && continue
    total=$((total + 1))
    if [ ! -f "$PACK/$name" ]; then
      missing+=("$name")
    elif [ "$(sha256sum "$PACK/$name" | cut -d' ' -f1)" != "$sha" ]; then
      missing+=("$name (sha256 mismatch)")
    else
      have=$((have + 1))
    fi
  done < "$PACK/MANIFEST.sha256"
  say "chunks: $have of $total here and intact${missing[*]:+; missing: ${missing[*]}}"
  [ "$have" = "$total" ] || return 3
}

if [ "$MODE" = verify ]; then
  verify_chunks
  exit $?
fi

mkdir -p "$OUT"
rm -rf "$WORK"
mkdir -p "$WORK/logs" "$WORK/load"
LOGS=$WORK/logs
PIDS=()
# shellcheck disable=SC2317  # called by the trap
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT

finish() {
  say "writing results to $OUT"
  python3 - "$WORK" "$OUT" "$MODE" "$DEVICE" "${FAILURES[@]}" <<'PY'
import glob, json, os, re, sys
work, out, mode, device, failures = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
results = {"mode": mode, "device": device, "failures": failures, "load": {}}
for f in sorted(glob.glob(f"{work}/load/*.json")):
    results["load"][os.path.basename(f)[:-5]] = json.load(open(f))
for name in ("env", "v2-gpu", "v2-cpu"):
    p = f"{work}/logs/{name}.json"
    if os.path.exists(p):
        results[name.replace("-", "_")] = json.load(open(p))
json.dump(results, open(f"{out}/results.json", "w"), indent=1)

def metric(level, name, model):
    """The metric's mean over the window; several series (workers, GPUs) joined by '/'."""
    vals = []
    for k, v in sorted((level.get("metrics") or {}).items()):
        if k.startswith(name + "{") and (f'model="{model}"' in k or "model=" not in k):
            if v.get("mean") is not None:
                vals.append(v["mean"])
    return vals or None

lines = [f"# Convoy GPU device check ({mode}{', --device cpu' if mode == 'dry' else ''})", ""]
if failures:
    lines += ["**Failures:**", ""] + [f"- {f}" for f in failures] + [""]
else:
    lines += ["No failures.", ""]
env = results.get("env", {})
for k, v in env.items():
    lines.append(f"- {k}: {v}")
cmp_path = f"{out}/compare.json"
if os.path.exists(cmp_path):
    c = json.load(open(cmp_path))
    lines += ["", f"## Outputs, {device} server against the CPU server: {'ok' if c.get('ok') else 'FAILED'}", "",
              f"Tolerances: {c.get('tolerances')}", ""]
    for m in ("mlp", "minilm"):
        for k, v in c.get(m, {}).items():
            figs = ", ".join(f"{n} {x:.3g}" for n, x in v.items() if isinstance(x, float))
            lines.append(f"- {m}/{k}: {'ok' if v['ok'] else 'FAILED'} ({figs})")
    lines.append(f"- /v2 devices: gpu server {c['devices']['gpu'].get('models')}, cpu server {c['devices']['cpu'].get('models')}")
lines += ["", "## Closed loop", "",
          "One row (MLP) or one short text (MiniLM) per request. batch rows: mean rows per batch; "
          "device busy: Convoy's convoy_device_busy_ratio per worker (instance); "
          "GPU util: NVML's, sampled by Convoy.", "",
          "| run | c | req/s | rows/s | p50 ms | p99 ms | errors | batch rows | device busy | GPU util (NVML) |",
          "|---|---|---|---|---|---|---|---|---|---|"]
for run, d in results["load"].items():
    model = run.split("-")[0]
    for lv in d.get("levels", []):
        lat = lv.get("latency") or {}
        def f(x, fmt="{:.3g}"):
            if isinstance(x, list):
                return "/".join(fmt.format(v) for v in x)
            return "" if x is None else fmt.format(x)
        lines.append("| " + " | ".join([
            run, str(lv.get("concurrency")), f(lv.get("requests_per_s"), "{:.0f}"),
            f(lv.get("rows_per_s"), "{:.0f}"), f(lat.get("p50_ms")), f(lat.get("p99_ms")),
            str(lv.get("error_total", "")), f(metric(lv, "convoy_batch_size_rows", model)),
            f(metric(lv, "convoy_device_busy_ratio", model)),
            f(metric(lv, "convoy_gpu_utilization_ratio", model))]) + " |")
dmon = f"{work}/logs/dmon.txt"
if os.path.exists(dmon):
    sm = [int(x.split()[1]) for x in open(dmon) if re.match(r"^\s+\d+\s+\d+", x)]
    if sm:
        lines += ["", f"nvidia-smi dmon during the CUDA load: SM busy mean {sum(sm)/len(sm):.0f} %, max {max(sm)} % over {len(sm)} one-second samples"]
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
  tar -C "$WORK" -czf "$OUT/logs.tar.gz" logs load 2>/dev/null
  say "done in $((SECONDS - START)) s: ${#FAILURES[@]} failure(s)"
  [ ${#FAILURES[@]} = 0 ]
  exit $?
}

verify_chunks || { fail "chunks missing or damaged (see above)"; finish; }

# --- reassemble and unpack ------------------------------------------------------------
want=$(awk '$2 == "payload.tar.xz" {print $1}' "$PACK/MANIFEST.sha256")
got=$(cat "$PACK"/payload.tar.xz.[0-9][0-9] | sha256sum | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  fail "reassembled payload.tar.xz: sha256 $got, manifest says $want"
  finish
fi
say "payload.tar.xz reassembled, sha256 ok; unpacking into $WORK"
if command -v xz >/dev/null 2>&1; then
  cat "$PACK"/payload.tar.xz.[0-9][0-9] | xz -dc -T0 | tar -C "$WORK" -xf -
else
  cat "$PACK"/payload.tar.xz.[0-9][0-9] | python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer, 1 << 20)' | tar -C "$WORK" -xf -
fi
P=$WORK/payload
if ! (cd "$P" && sha256sum --quiet --strict -c FILES.sha256) >&2; then
  fail "unpacked files do not match FILES.sha256"
  finish
fi
say "payload files verified ($(wc -l < "$P/FILES.sha256") files)"
ORT=$P/ort
ln -sf libonnxruntime.so.1.31.1 "$ORT/libonnxruntime.so"
CONVOY=$P/bin/convoy
LOAD=$P/bin/convoy-load

# --- the device's CUDA libraries ------------------------------------------------------
if [ "$MODE" = full ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$LOGS/gpu.txt" 2>&1 ||
    fail "nvidia-smi failed: $(tail -n 1 "$LOGS/gpu.txt")"
  NV=$(python3 - <<'PY'
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except Exception:
    roots = []
dirs = sorted({os.path.dirname(p) for r in roots for p in glob.glob(f"{r}/*/lib/lib*.so*")})
print(" ".join(dirs))
PY
)
  linked=0
  for d in $NV; do
    for f in "$d"/lib*.so*; do
      b=$(basename "$f")
      case "$b" in *.alt.*|libonnxruntime*) continue ;; esac
      [ -e "$ORT/$b" ] || { ln -s "$f" "$ORT/$b"; linked=$((linked + 1)); }
    done
  done
  say "linked $linked CUDA/cuDNN libraries from ${NV:-nowhere} into $ORT"
  python3 -m pip list 2>/dev/null | grep -iE '^(nvidia-|torch )' > "$LOGS/pip-nvidia.txt" || true
fi
python3 - "$LOGS/env.json" "$MODE" <<PY
import json, sys, subprocess
env = {"host_cpus": __import__("os").cpu_count()}
try:
    env["gpu"] = open("$LOGS/gpu.txt").read().strip()
except OSError:
    env["gpu"] = None
try:
    env["nvidia_wheels"] = [l for l in open("$LOGS/pip-nvidia.txt").read().split("\n") if l.strip()][:20]
except OSError:
    pass
env["durations"] = "warmup ${WARMUP} s + ${DURATION} s per level, levels ${LEVELS} (cpu baseline: ${CPU_LEVELS:-none}), ${CLIENT_THREADS} client threads"
json.dump(env, open(sys.argv[1], "w"), indent=1)
PY

# --- model repository: the MLP (tracked) and MiniLM (model.onnx/tokenizer from the pack)
REPO=$WORK/repo
mkdir -p "$REPO/mlp" "$REPO/minilm"
cp models/mlp/model.onnx models/mlp/model.toml "$REPO/mlp/"
cp models/minilm/model.toml "$REPO/minilm/"
cp "$P/models/minilm/model.onnx" "$P/models/minilm/tokenizer.json" "$REPO/minilm/"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ready() { python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1" 2>/dev/null; }
# start NAME DEVICE: a server on a free port, which it leaves in PORT; 0 when ready.
start() {
  local name=$1 device=$2 repo=${3:-$REPO} port pid deadline t0=$SECONDS
  port=$(free_port)
  "$CONVOY" serve --host 127.0.0.1 --port "$port" --model-repository "$repo" \
    --ort-lib "$ORT/libonnxruntime.so" --device "$device" > "$LOGS/server-$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  deadline=$((SECONDS + 180))
  until ready "http://127.0.0.1:$port/v2/health/ready"; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      say "convoy ($name, --device $device) did not become ready; last lines:"
      tail -n 20 "$LOGS/server-$name.log" >&2
      fail "convoy --device $device did not start: $(grep -m1 'error' "$LOGS/server-$name.log" | cut -c1-700)"
      return 1
    fi
    sleep 0.2
  done
  PORT=$port
  say "convoy ($name, --device $device) ready on :$port in $((SECONDS - t0)) s"
  python3 -c "import json, sys, urllib.request; print(json.dumps(json.load(urllib.request.urlopen(sys.argv[1]))['device']))" \
    "http://127.0.0.1:$port/v2" > "$LOGS/v2-$name.json"
}

PORT=""
start cpu cpu || finish
CPU_URL=http://127.0.0.1:$PORT
start gpu "$DEVICE" || finish
GPU_URL=http://127.0.0.1:$PORT
if [ "$MODE" = full ]; then
  if ! python3 -c 'import json, sys; m = json.load(open(sys.argv[1]))["models"]; sys.exit(0 if m.get("mlp") == m.get("minilm") == "cuda:0" else 1)' "$LOGS/v2-gpu.json"; then
    fail "/v2 of the CUDA server does not say cuda:0 for both models: $(cat "$LOGS/v2-gpu.json")"
  fi
fi

# --- outputs --------------------------------------------------------------------------
python3 loadtests/gpu/compare.py --cpu "$CPU_URL" --gpu "$GPU_URL" --models models \
  --json "$OUT/compare.json" >&2 || fail "outputs differ beyond tolerance (compare.json)"

# --- load -----------------------------------------------------------------------------
B=$WORK/bodies
mkdir -p "$B"
"$LOAD" body --reference models/mlp/reference.json --rows 1 --out "$B/mlp.json" >&2
minilm_bodies=()
for i in 0 1 2 3 4 5 6 7; do
  "$LOAD" body --embeddings-model minilm --texts 1 --length short --offset "$i" --out "$B/minilm-$i.json" >&2
  minilm_bodies+=("$B/minilm-$i.json")
done
MINILM_BODIES=$(IFS=,; echo "${minilm_bodies[*]}")
METRICS=convoy_device_busy_ratio,convoy_batch_size_rows,convoy_gpu_utilization_ratio,convoy_gpu_memory_used_bytes

# load NAME URL_BASE LEVELS: both models against one server.
load() {
  local name=$1 base=$2 levels=$3
  [ -n "$levels" ] || return 0
  say "closed loop on $name: MLP, c=$levels"
  "$LOAD" closed --url "$base/v2/models/mlp/infer" --body "$B/mlp.json" --concurrency "$levels" \
    --duration-s "$DURATION" --warmup-s "$WARMUP" --client-threads "$CLIENT_THREADS" \
    --metrics-url "$base/metrics" --metrics "$METRICS" --json "$WORK/load/mlp-$name.json" >&2 ||
    fail "convoy-load on mlp ($name) failed"
  say "closed loop on $name: MiniLM (one short text per request), c=$levels"
  "$LOAD" closed --url "$base/v1/embeddings" --body "$MINILM_BODIES" --concurrency "$levels" \
    --duration-s "$DURATION" --warmup-s "$WARMUP" --client-threads "$CLIENT_THREADS" \
    --metrics-url "$base/metrics" --metrics "$METRICS" --json "$WORK/load/minilm-$name.json" >&2 ||
    fail "convoy-load on minilm ($name) failed"
}
DMON=""
if [ "$MODE" = full ] && command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi dmon -s um -d 1 > "$LOGS/dmon.txt" 2>&1 &
  DMON=$!
  PIDS+=("$DMON")
fi
# Runs are named MODEL-cuda (the CUDA server), MODEL-cpu (the CPU baseline); in a dry run
# the "GPU" server is MODEL-dry.
if [ "$MODE" = full ]; then load cuda "$GPU_URL" "$LEVELS"; else load dry "$GPU_URL" "$LEVELS"; fi
[ -n "$DMON" ] && kill "$DMON" 2>/dev/null
# IoBinding's worth: MiniLM at c=64 on a second server whose models say
# `[cuda] io_binding = false` (pageable buffers, ORT's plain run), next to minilm-cuda.
if [ -n "${GPU_CHECK_NOBIND_LEVELS-64}" ]; then
  REPO_NB=$WORK/repo-nobind
  rm -rf "$REPO_NB"
  cp -r "$REPO" "$REPO_NB"
  for m in mlp minilm; do printf '\n[cuda]\nio_binding = false\n' >> "$REPO_NB/$m/model.toml"; done
  if start nobind "$DEVICE" "$REPO_NB"; then
    say "closed loop on the unbound server: MiniLM, c=${GPU_CHECK_NOBIND_LEVELS-64}"
    "$LOAD" closed --url "http://127.0.0.1:$PORT/v1/embeddings" --body "$MINILM_BODIES" \
      --concurrency "${GPU_CHECK_NOBIND_LEVELS-64}" --duration-s "$DURATION" --warmup-s "$WARMUP" \
      --client-threads "$CLIENT_THREADS" --metrics-url "http://127.0.0.1:$PORT/metrics" --metrics "$METRICS" \
      --json "$WORK/load/minilm-$([ "$MODE" = full ] && echo cuda || echo dry)-nobind.json" >&2 ||
      fail "convoy-load on minilm (io_binding = false) failed"
    kill "${PIDS[-1]}" 2>/dev/null
  fi
fi
load cpu "$CPU_URL" "$CPU_LEVELS"
finish
