#!/usr/bin/env bash
# Convoy next to other model servers ("peers"), measured with one client on one machine.
#
#   loadtests/peers.sh           full run (~16-21 min with the peers installed): four peers, 10 s
#                                levels; raw JSON in loadtests/results/peers/, report in
#                                loadtests/PEERS.md
#   loadtests/peers.sh --short   the same comparison with three peers (triton mlserver kserve),
#                                4 s levels and no /v1/embeddings row (~7 min with the peers
#                                installed); same outputs. loadtests/run.sh runs it as its last
#                                section (LOADTEST_PEERS=0 skips it there)
#   loadtests/peers.sh --quick   smoke run (< 3 min after installs and build): one peer, short
#                                levels; everything under loadtests/out/peers-quick/ only
#
# What it does:
#  1. installs the peers and perf_analyzer with the peer kit (PEERS_KIT, default
#     ../shared/peers relative to the repository root, i.e. /work/shared/peers; the kit is only
#     invoked, never copied; it installs under PEERS_HOME, default ~/.cache/convoy-peers);
#  2. builds convoy and convoy-load (release);
#  3. for the MLP (models/mlp/model.onnx: the same file for every server) and MiniLM
#     (models/minilm/model.onnx, 16 token ids per request, the same body for every server),
#     starts Convoy and then each peer, one at a time, on 127.0.0.1, and runs the SAME client
#     against each: `convoy-load closed` at c=1/16/64 and `convoy-load open` at a few fixed
#     rates, same durations. For MiniLM, Convoy serves the graph without its text pipeline
#     (derived model.toml without [pipeline]) so it takes the same token ids as the peers; in
#     the full run Convoy's /v1/embeddings (texts in, Convoy tokenizes and pools) is measured too;
#  4. runs Triton's perf_analyzer (kit's load.sh, CLIENT=pa) against Convoy's MLP (and
#     Triton's, when triton is one of the peers) as an independent client;
#  5. renders the report with loadtests/peers_report.py (python3 stdlib only), which draws
#     the plots with `convoy-load plot` (plotters, SVG) and writes summary.json for RESULTS.md.
#
# Batching is set alike, as a fixed window everywhere: MLP 64 rows / 500 us (the kit's
# defaults; Convoy's committed models/mlp config with its latency target swapped for that
# window); MiniLM 32 rows / 2000 us (likewise from models/minilm; the peers get
# PEERS_MAX_BATCH=32 PEERS_BATCH_DELAY_US=2000). One ONNX Runtime intra-op thread everywhere.
#
# Environment knobs:
#   PEERS_KIT              the peer kit (default: <repo>/../shared/peers)
#   PEERS_HOME             where the kit installs and runs (default ~/.cache/convoy-peers)
#   PEERS_LIST             peers to run (full default: "triton mlserver kserve litserve";
#                          short: "triton mlserver kserve"; quick: "triton"). ray/pytriton
#                          also work but are slow.
#   PEERS_SKIP_INSTALL=1   do not call install.sh (use what is installed)
#   PEERS_SKIP_BUILD=1     do not run cargo build (use target/release as is)
#   PEERS_IDLE_PATTERN     before each measurement wait until `pgrep -f PATTERN` has found
#                          nothing for PEERS_IDLE_QUIET_S (30) s (another heavy job: a CI run) ...
#   PEERS_IDLE_UNTIL       ... but not past this UTC time (HH:MM), default: wait at most 10 min
#   LOADTEST_MODELS=DIR    take minilm/ from DIR instead of models/ (as loadtests/run.sh does)
#
# Servers listen on 127.0.0.1 only; a trap stops Convoy and the current peer on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

QUICK=0 PROFILE=full
case "${1:-}" in
  --quick) QUICK=1 PROFILE=quick ;;
  --short) PROFILE=short ;;
  "") ;;
  *) echo "usage: $0 [--short|--quick]" >&2; exit 2 ;;
esac

PEERS_KIT=${PEERS_KIT:-$ROOT/../shared/peers}
PEERS_KIT=$(cd "$PEERS_KIT" 2>/dev/null && pwd) || { echo "peer kit not found: set PEERS_KIT" >&2; exit 1; }
export PEERS_HOME=${PEERS_HOME:-$HOME/.cache/convoy-peers}
CONVOY=$ROOT/target/release/convoy
LOAD=$ROOT/target/release/convoy-load
ORT_LIB=$ROOT/.ort/cpu/libonnxruntime.so
MLP_ONNX=$ROOT/models/mlp/model.onnx
MINILM_DIR=${LOADTEST_MODELS:-$ROOT/models}/minilm
MINILM_LEN=16  # tokens per request; Convoy's /v1/embeddings pads short texts to its 16-token bucket

if [ "$QUICK" = 1 ]; then
  PEERS_LIST=${PEERS_LIST:-triton}
  CONC=1,16,64 DURATION=3 WARMUP=1
  OPEN_DURATION=3 OPEN_WARMUP=1
  MLP_RATES=500,2000 MINILM_RATES=20,60
  PA_CONC=1 PA_DUR=2
  TEXT_VARIANT=0
  RES=$ROOT/loadtests/out/peers-quick
  MD=$RES/PEERS.md
  WORK=$RES/work
elif [ "$PROFILE" = short ]; then
  # Same levels and rates as the full run, shorter windows; what loadtests/run.sh runs.
  PEERS_LIST=${PEERS_LIST:-triton mlserver kserve}
  CONC=1,16,64 DURATION=4 WARMUP=1
  OPEN_DURATION=4 OPEN_WARMUP=1
  MLP_RATES=500,2000,8000 MINILM_RATES=30,100,250
  PA_CONC=1,16 PA_DUR=3
  TEXT_VARIANT=0
  RES=$ROOT/loadtests/results/peers
  MD=$ROOT/loadtests/PEERS.md
  WORK=$ROOT/loadtests/out/peers
else
  PEERS_LIST=${PEERS_LIST:-triton mlserver kserve litserve}
  CONC=1,16,64 DURATION=10 WARMUP=2
  OPEN_DURATION=8 OPEN_WARMUP=1
  MLP_RATES=500,2000,8000 MINILM_RATES=30,100,250
  PA_CONC=1,16 PA_DUR=5
  TEXT_VARIANT=1
  RES=$ROOT/loadtests/results/peers
  MD=$ROOT/loadtests/PEERS.md
  WORK=$ROOT/loadtests/out/peers
fi
OPEN_TIMEOUT_S=5 OPEN_MAX_IN_FLIGHT=1024 OPEN_CONNECTIONS=64

say() { printf '[peers] %s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# --- cleanup: Convoy is our child; a peer is stopped through the kit (its own process group) --
CONVOY_PID="" CURRENT_PEER=""
stop_convoy() {
  local pid=$CONVOY_PID
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  CONVOY_PID=""
}
stop_peer() {
  [ -n "$CURRENT_PEER" ] || return 0
  "$PEERS_KIT/stop.sh" "$CURRENT_PEER" >&2 || say "stop.sh $CURRENT_PEER reported a problem (exit $?)"
  CURRENT_PEER=""
}
cleanup() { stop_convoy; stop_peer; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

T_START=$SECONDS
rm -rf "$RES" "$WORK"
mkdir -p "$RES" "$WORK"
META=$RES/runs.jsonl   # one JSON object per server x model run (read by peers_report.py)
: > "$META"

# jline FILE key=value...: append one JSON object (values parsed as JSON when they parse)
jline() {
  python3 - "$@" <<'PY'
import json, sys
obj = {}
for kv in sys.argv[2:]:
    k, _, v = kv.partition("=")
    try:
        obj[k] = json.loads(v)
    except ValueError:
        obj[k] = v
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(obj) + "\n")
PY
}

# --- 1. installs ------------------------------------------------------------------------------
INSTALLED=()
if [ "${PEERS_SKIP_INSTALL:-0}" != 1 ]; then
  for p in $PEERS_LIST pa; do
    say "installing $p (kit install.sh; idempotent)"
    t0=$SECONDS
    if timeout 1200 "$PEERS_KIT/install.sh" "$p" > "$WORK/install-$p.log" 2>&1; then
      jline "$RES/install.jsonl" name="$p" ok=true seconds=$((SECONDS - t0)) "last=$(tail -n 1 "$WORK/install-$p.log")"
    else
      say "install of $p FAILED: $(tail -n 3 "$WORK/install-$p.log" | tr '\n' ' ')"
      jline "$RES/install.jsonl" name="$p" ok=false seconds=$((SECONDS - t0)) "last=$(tail -n 5 "$WORK/install-$p.log" | tr '\n' ' ')"
    fi
  done
fi
venv_py() { case $1 in triton|pytriton) echo "$PEERS_HOME/venv/triton/bin/python" ;; *) echo "$PEERS_HOME/venv/$1/bin/python" ;; esac; }
for p in $PEERS_LIST; do
  if [ -x "$(venv_py "$p")" ]; then INSTALLED+=("$p"); else say "$p is not installed: skipped"; fi
done
[ ${#INSTALLED[@]} -gt 0 ] || { say "no peer installed"; exit 1; }

# --- 2. build ---------------------------------------------------------------------------------
if [ "${PEERS_SKIP_BUILD:-0}" != 1 ]; then
  say "building convoy and convoy-load (release)"
  cargo build --release -p convoy -p convoy-loadtests
fi
[ -x "$CONVOY" ] && [ -x "$LOAD" ] || { say "missing $CONVOY or $LOAD"; exit 1; }
[ -f "$ORT_LIB" ] || { say "missing $ORT_LIB: run deploy/setup.sh ort"; exit 1; }
[ -f "$MINILM_DIR/model.onnx" ] || { say "missing $MINILM_DIR/model.onnx (models/minilm/build.py)"; exit 1; }

# --- bodies and Convoy repositories -----------------------------------------------------------
"$LOAD" body --reference "$ROOT/models/mlp/reference.json" --rows 1 --out "$WORK/mlp_body.json" >&2
BODY_PY=$(venv_py "${INSTALLED[0]}")  # any kit venv has numpy + onnxruntime for make_body.py
PYTHONDONTWRITEBYTECODE=1 "$BODY_PY" "$PEERS_KIT/make_body.py" "$MINILM_DIR/model.onnx" \
  "$WORK/minilm_body.json" --rows 1 --len "$MINILM_LEN" >&2
TEXT_BODIES=()
for i in 0 1 2 3 4 5 6 7; do
  "$LOAD" body --embeddings-model minilm --texts 1 --length short --offset "$i" --out "$WORK/text$i.json" >&2
  TEXT_BODIES+=("$WORK/text$i.json")
done
cp "$WORK/mlp_body.json" "$RES/body-mlp.json"
cp "$WORK/minilm_body.json" "$RES/body-minilm.json"

# Convoy's committed configs batch by latency target; here every server gets the same
# fixed window (Triton's rule, which the peers implement), so batching is like for like.
# derived NAME MODEL SRC_DIR DELAY_US EDIT...: repos/NAME/MODEL with SRC_DIR's files linked
# and its model.toml switched to a fixed DELAY_US window (plus EDITs).
derived() {
  local name=$1 model=$2 src=$3 delay=$4 f
  shift 4
  local dir=$WORK/repos/$name/$model
  rm -rf "$dir"
  mkdir -p "$dir"
  for f in "$src"/*; do
    [ "$(basename "$f")" = model.toml ] || ln -sfn "$f" "$dir/"
  done
  python3 "$ROOT/loadtests/helpers.py" derive-config "$src/model.toml" "$dir/model.toml" \
    dynamic_batching.latency_target_ms= "dynamic_batching.max_queue_delay_us=$delay" "$@" >&2
  cp "$dir/model.toml" "$RES/config-convoy-$name.toml"
}
derived mlp mlp "$ROOT/models/mlp" 500
derived minilm-text minilm "$MINILM_DIR" 2000
# the same graph without the text pipeline: token ids in, last_hidden_state out (as the peers)
derived minilm-ids minilm "$MINILM_DIR" 2000 -pipeline -pipeline.text

free_port() {  # a port p with p, p+1, p+2 free (MLServer also takes p+1 and p+2)
  python3 - <<'PY'
import socket
for _ in range(200):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    ok = True
    for q in (p, p + 1, p + 2):
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", q))
        except OSError:
            ok = False
        finally:
            t.close()
    if ok and p + 2 < 65536:
        print(p); break
PY
}

# wait_idle: before a measurement, wait while another heavy job runs: until PEERS_IDLE_PATTERN
# has matched no process for PEERS_IDLE_QUIET_S seconds (a CI run has short gaps between its
# steps, so one look is not enough once it has been seen); never past PEERS_IDLE_UNTIL (HH:MM
# UTC; default: 10 minutes from the call).
LAST_BUSY=0
wait_idle() {
  [ -n "${PEERS_IDLE_PATTERN:-}" ] || return 0
  local until_epoch need=${PEERS_IDLE_QUIET_S:-30} said=0 now
  if [ -n "${PEERS_IDLE_UNTIL:-}" ]; then
    until_epoch=$(date -u -d "${PEERS_IDLE_UNTIL}" +%s)
  else
    until_epoch=$(( $(date +%s) + 600 ))
  fi
  while :; do
    now=$(date +%s)
    if pgrep -f -- "$PEERS_IDLE_PATTERN" > /dev/null; then
      LAST_BUSY=$now
      [ $said = 1 ] || say "waiting until no process matches '$PEERS_IDLE_PATTERN' for ${need}s (at most until $(date -u -d "@$until_epoch" +%H:%M))"
      said=1
    elif [ $((now - LAST_BUSY)) -ge "$need" ]; then
      return 0
    fi
    if [ "$now" -ge "$until_epoch" ]; then
      say "still busy at $(date -u +%H:%M): measuring anyway (runs.jsonl marks it)"; return 0
    fi
    sleep 3
  done
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# probe URL BODY OUT: one request; 0 when HTTP 200
probe() {
  local code
  code=$(curl -s -o "$3" -w '%{http_code}' --max-time 30 -H 'Content-Type: application/json' \
    --data-binary "@$2" "$1" || true)
  [ "$code" = 200 ] || { say "probe $1 -> HTTP $code: $(head -c 300 "$3" 2>/dev/null)"; return 1; }
}

# first values of the first output of a v2 response, or of an embeddings response
probe_summary() {
  python3 - "$1" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
if "outputs" in j:
    o = j["outputs"][0]
    d = o["data"]
    while d and isinstance(d[0], list):
        d = [x for y in d for x in y]
    print(json.dumps({"output": o["name"], "shape": o["shape"], "first": d[:8]}))
else:
    e = j["data"][0]["embedding"]
    print(json.dumps({"output": "embedding", "shape": [1, len(e)], "first": e[:8]}))
PY
}

# measure SERVER MODEL VARIANT URL BODIES RATES: closed + open loop with the same client
measure() {
  local server=$1 model=$2 variant=$3 url=$4 bodies=$5 rates=$6 tag="$1-$2${3:+-$3}"
  local first=${bodies%%,*} ok=true note=""
  if ! probe "$url" "$first" "$WORK/probe-$tag.json"; then
    jline "$META" server="$server" model="$model" variant="$variant" url="$url" ok=false note="probe failed"
    return 0
  fi
  local summary; summary=$(probe_summary "$WORK/probe-$tag.json" 2>/dev/null || echo null)
  wait_idle
  local la0 busy=false; la0=$(loadavg)
  [ -n "${PEERS_IDLE_PATTERN:-}" ] && pgrep -f -- "$PEERS_IDLE_PATTERN" > /dev/null && busy=true
  say "$tag: closed loop c=$CONC, ${DURATION}s each (load avg $la0)"
  "$LOAD" closed --url "$url" --body "$bodies" --concurrency "$CONC" --duration-s "$DURATION" \
    --warmup-s "$WARMUP" --timeout-s 30 --json "$RES/closed-$tag.json" >&2 \
    || { ok=false; note="closed loop exited $?"; }
  wait_idle
  say "$tag: open loop rates $rates req/s, ${OPEN_DURATION}s each"
  "$LOAD" open --url "$url" --body "$bodies" --rate "$rates" --duration-s "$OPEN_DURATION" \
    --warmup-s "$OPEN_WARMUP" --timeout-s "$OPEN_TIMEOUT_S" --max-in-flight "$OPEN_MAX_IN_FLIGHT" \
    --connections "$OPEN_CONNECTIONS" --json "$RES/open-$tag.json" >&2 \
    || { ok=false; note="$note open loop exited $?"; }
  jline "$META" server="$server" model="$model" variant="$variant" url="$url" ok=$ok note="$note" \
    "loadavg_start=\"$la0\"" "loadavg_end=\"$(loadavg)\"" other_job_running=$busy probe="$summary" \
    closed="closed-$tag.json" open="open-$tag.json" "at=\"$(date -u +%FT%TZ)\""
}

start_convoy() {  # start_convoy NAME REPO: sets PORT
  local log=$WORK/convoy-$1.log
  PORT=$(free_port)
  say "starting convoy ($1) on 127.0.0.1:$PORT"
  "$CONVOY" serve --host 127.0.0.1 --port "$PORT" --model-repository "$2" --ort-lib "$ORT_LIB" \
    > "$log" 2>&1 &
  CONVOY_PID=$!
  local deadline=$((SECONDS + 120))
  until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/v2/health/ready" 2>/dev/null; do
    if ! kill -0 "$CONVOY_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      say "convoy ($1) did not become ready; last lines of $log:"; tail -n 20 "$log" >&2
      stop_convoy; return 1
    fi
    sleep 0.2
  done
}

run_pa() {  # run_pa SERVER URL: perf_analyzer through the kit's load.sh
  [ -x "$PEERS_HOME/venv/pa/bin/perf_analyzer" ] || { say "perf_analyzer not installed: skipped"; return 0; }
  wait_idle
  say "perf_analyzer against $1 (c=$PA_CONC, ${PA_DUR}s windows)"
  CLIENT=pa timeout 300 "$PEERS_KIT/load.sh" "$2" "$WORK/mlp_body.json" "$PA_CONC" "$PA_DUR" \
    > "$WORK/pa-$1-mlp.txt" 2> "$WORK/pa-$1-mlp.err" || say "perf_analyzer against $1 failed: $(tail -n 2 "$WORK/pa-$1-mlp.err")"
  # perf_analyzer prints its client-side figures, then summarises the server's /stats; when
  # that summary throws (it did against Convoy: its inference_stats count compute_infer but
  # leave compute_input/compute_output at 0), no CSV is written and load.sh says FAILED.
  # Then the client-side figures are taken from perf_analyzer's log, and the reason is kept.
  python3 - "$WORK/pa-$1-mlp.txt" > "$RES/pa-$1-mlp.txt" <<'PY'
import re, sys
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    m = re.match(r"c=(\d+) FAILED \(see (\S+)\.log\)", line)
    if not m:
        print(line); continue
    try:
        t = open(m.group(2) + ".log").read()
    except OSError:
        print(line); continue
    blocks = t.split("Request concurrency:")
    b = blocks[-1] if len(blocks) > 1 else ""
    thr = re.search(r"Throughput: ([\d.]+) infer/sec", b)
    p50 = re.search(r"p50 latency: (\d+) usec", b)
    p99 = re.search(r"p99 latency: (\d+) usec", b)
    why = re.search(r"what\(\):\s*(.*)", t)
    if thr and p50 and p99:
        print(f"c={m.group(1)} infer/s={float(thr.group(1)):.1f} p50={int(p50.group(1)) / 1e3:.2f}ms "
              f"p99={int(p99.group(1)) / 1e3:.2f}ms (client figures from the log; perf_analyzer then "
              f"aborted: {why.group(1).strip() if why else 'no CSV'})")
    else:
        print(line + (f" ({why.group(1).strip()})" if why else ""))
PY
  cat "$RES/pa-$1-mlp.txt" >&2
}

# --- 3./4. measurements, one server at a time ---------------------------------------------------
for model in mlp minilm; do
  if [ "$model" = mlp ]; then
    body=$WORK/mlp_body.json rates=$MLP_RATES onnx=$MLP_ONNX repo=$WORK/repos/mlp
    batch_env=(PEERS_MAX_BATCH=64 PEERS_BATCH_DELAY_US=500)
  else
    body=$WORK/minilm_body.json rates=$MINILM_RATES onnx=$MINILM_DIR/model.onnx repo=$WORK/repos/minilm-ids
    batch_env=(PEERS_MAX_BATCH=32 PEERS_BATCH_DELAY_US=2000)
  fi
  # Convoy
  if start_convoy "$model" "$repo"; then
    URL=http://127.0.0.1:$PORT/v2/models/$model/infer
    measure convoy "$model" "" "$URL" "$body" "$rates"
    [ "$model" = mlp ] && run_pa convoy "$URL"
    curl -fsS "http://127.0.0.1:$PORT/v2/models/$model/stats" > "$RES/stats-convoy-$model.json" 2>/dev/null || true
    stop_convoy
  else
    jline "$META" server=convoy model="$model" variant="" ok=false note="did not start"
  fi
  if [ "$model" = minilm ] && [ "$TEXT_VARIANT" = 1 ]; then
    # Convoy with its text pipeline: texts in, Convoy tokenizes, runs, mean-pools, normalises
    if start_convoy minilm-text "$WORK/repos/minilm-text"; then
      measure convoy minilm text "http://127.0.0.1:$PORT/v1/embeddings" \
        "$(IFS=,; echo "${TEXT_BODIES[*]}")" "$rates"
      stop_convoy
    fi
  fi
  # peers
  for peer in "${INSTALLED[@]}"; do
    PORT=$(free_port)
    say "starting $peer ($model) on 127.0.0.1:$PORT"
    CURRENT_PEER=$peer
    t0=$SECONDS
    if env "${batch_env[@]}" timeout 200 "$PEERS_KIT/start.sh" "$peer" "$onnx" "$model" "$PORT" >&2; then
      startup=$((SECONDS - t0))
      measure "$peer" "$model" "" "http://127.0.0.1:$PORT/v2/models/$model/infer" "$body" "$rates"
      [ "$model" = mlp ] && [ "$peer" = triton ] && run_pa triton "http://127.0.0.1:$PORT/v2/models/$model/infer"
      cp "$PEERS_HOME/run/$peer.log" "$WORK/$peer-$model.log" 2>/dev/null || true
      stop_peer
      jline "$RES/startup.jsonl" server="$peer" model="$model" seconds=$startup
    else
      CURRENT_PEER=""
      cp "$PEERS_HOME/run/$peer.log" "$WORK/$peer-$model.log" 2>/dev/null || true
      jline "$META" server="$peer" model="$model" variant="" ok=false \
        "note=start.sh failed: $(tail -n 3 "$WORK/$peer-$model.log" 2>/dev/null | tr '\n' ' ' | tr -d '"\\' | cut -c1-300)"
    fi
  done
done

# --- 5. report ----------------------------------------------------------------------------------
python3 - "$RES/machine.json" "$CONVOY" "$PEERS_HOME" $PEERS_LIST <<'PY'
import json, os, platform, subprocess, sys
out, convoy, home, peers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
def mem_gib():
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            return round(int(line.split()[1]) / 2**20, 1)
pkg = {"triton": ["nvidia-pytriton", "onnxruntime"], "pytriton": ["nvidia-pytriton", "onnxruntime"],
       "mlserver": ["mlserver", "onnxruntime"], "kserve": ["kserve", "onnxruntime"],
       "ray": ["ray", "onnxruntime"], "litserve": ["litserve", "onnxruntime"], "pa": ["tritonclient"]}
versions = {}
for p in peers + ["pa"]:
    venv = "triton" if p in ("triton", "pytriton") else p
    py = os.path.join(home, "venv", venv, "bin", "python")
    if not os.path.exists(py):
        continue
    code = "import importlib.metadata as m, sys; print(' '.join(n + '==' + m.version(n) for n in sys.argv[1:]))"
    try:
        versions[p] = subprocess.run([py, "-c", code] + pkg[p], capture_output=True, text=True,
                                     timeout=60).stdout.strip()
        versions[p] += " (Python " + subprocess.run([py, "-c", "import platform; print(platform.python_version())"],
                                                    capture_output=True, text=True, timeout=60).stdout.strip() + ")"
    except Exception as e:  # noqa: BLE001
        versions[p] = f"unknown ({e})"
def run(*a):
    try:
        return subprocess.run(list(a), capture_output=True, text=True, timeout=60).stdout.strip()
    except Exception:  # noqa: BLE001
        return "unknown"
ort = sorted(f for f in os.listdir(os.path.join(os.path.dirname(convoy), "../../.ort/cpu")) if f.count(".") > 2)
json.dump({"cpu": cpu(), "cores": os.cpu_count(), "mem_gib": mem_gib(), "kernel": platform.release(),
           "convoy": run(convoy, "--version"), "convoy_ort": ort, "rustc": run("rustc", "--version"),
           "versions": versions, "date": run("date", "-u", "+%Y-%m-%d %H:%M UTC")},
          open(out, "w"), indent=1)
PY
jline "$RES/settings.jsonl" quick=$QUICK "profile=\"$PROFILE\"" via_run_sh="${PEERS_VIA_RUN_SH:-0}" concurrency="\"$CONC\"" duration_s=$DURATION warmup_s=$WARMUP \
  open_duration_s=$OPEN_DURATION open_warmup_s=$OPEN_WARMUP "mlp_rates=\"$MLP_RATES\"" \
  "minilm_rates=\"$MINILM_RATES\"" open_timeout_s=$OPEN_TIMEOUT_S open_max_in_flight=$OPEN_MAX_IN_FLIGHT \
  open_connections=$OPEN_CONNECTIONS minilm_len=$MINILM_LEN "pa_conc=\"$PA_CONC\"" pa_dur_s=$PA_DUR \
  wall_s=$((SECONDS - T_START))
python3 "$ROOT/loadtests/peers_report.py" "$RES" "$MD" --ceiling "$ROOT/loadtests/results/ceiling.json" \
  --convoy-load "$LOAD"
say "done in $((SECONDS - T_START)) s: $MD, raw JSON in $RES"
