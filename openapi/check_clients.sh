#!/usr/bin/env bash
# Clients generated from the committed OpenAPI document, against a live Convoy:
#
#   openapi/check_clients.sh [--quick]
#
#   1. starts `convoy serve` on 127.0.0.1:<free port> with the shipped models/
#   2. generates a Python client from openapi/openapi.json (openapi-python-client) into a
#      temp dir and runs openapi/client_smoke.py with it (health, metadata, infer, stats)
#   3. runs schemathesis against the live server for a bounded time and requires no
#      server fault (5xx; see openapi/schemathesis_hooks.py for the one exception, a 504
#      a request asked for with its own deadline) and no response that breaks the
#      document (status, content type, headers, body schema)
#   4. always stops the server
#
# Needs deploy/setup.sh (ONNX Runtime in .ort, the models); run here if .ort is missing.
# Python tools: openapi/requirements.txt in .venv-openapi (made here when missing).
# Env: CONVOY_BIN (default target/debug/convoy, built here when missing),
#      SCHEMATHESIS_SECONDS (default 100; --quick: 30), SCHEMATHESIS_SEED (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=$ROOT/.venv-openapi
PYTHON=${PYTHON:-python3}
SECONDS_BUDGET=${SCHEMATHESIS_SECONDS:-100}
[ "${1:-}" = "--quick" ] && SECONDS_BUDGET=${SCHEMATHESIS_SECONDS:-30}
SEED=${SCHEMATHESIS_SEED:-1}

say() { printf '[check_clients] %s\n' "$*" >&2; }

if [ ! -f "$VENV/.requirements" ] || ! cmp -s openapi/requirements.txt "$VENV/.requirements"; then
  say "creating $VENV from openapi/requirements.txt"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet -r openapi/requirements.txt
  cp openapi/requirements.txt "$VENV/.requirements"
fi
. openapi/live_server.sh
start_server

# The live server documents itself with the committed document (tests/openapi.rs checks
# the file against the code; this checks the binary under test against the file).
curl -sf "$BASE/openapi.json" > "$WORK/served.json"
"$PYTHON" - "$WORK/served.json" openapi/openapi.json <<'PY'
import json, sys
served, committed = (json.load(open(p)) for p in sys.argv[1:])
if served != committed:
    sys.exit("the server's /openapi.json differs from openapi/openapi.json: "
             "regenerate with `cargo run -- openapi > openapi/openapi.json`")
PY

say "generating the Python client (openapi-python-client)"
"$VENV/bin/openapi-python-client" generate --path openapi/openapi.json \
  --output-path "$WORK/client" --config openapi/python-client.yaml > "$WORK/generate.log" 2>&1 \
  || { cat "$WORK/generate.log" >&2; exit 1; }
if grep -q "WARNING" "$WORK/generate.log"; then
  say "the generator skipped parts of the document:"; cat "$WORK/generate.log" >&2; exit 1
fi
"$VENV/bin/python" openapi/client_smoke.py "$BASE" "$WORK/client"

# Schemathesis. The built-in `not_a_server_error` is replaced by the hook's
# `no_server_fault`; `positive_data_acceptance` is off because a schema-valid tensor
# need not fit the model (that is the documented 422; the schema cannot say which
# shapes a given model takes). Model control runs last, on its own: unloading the model
# would turn the rest of the run into 404s.
run_schemathesis() {
  local label=$1 budget=$2; shift 2
  say "schemathesis ($label, ${budget}s)"
  local started=$(date +%s) rc=0
  # Run from the temp dir: schemathesis keeps a .schemathesis/ cache in its working dir.
  (cd "$WORK" && SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$ROOT/openapi" \
    "$VENV/bin/schemathesis" --config-file "$ROOT/openapi/schemathesis.toml" \
    run "$ROOT/openapi/openapi.json" \
    --url "$BASE" --max-time "$budget" --seed "$SEED" --workers 2 \
    --checks all --exclude-checks not_a_server_error,positive_data_acceptance \
    --request-timeout 10 --report junit --report-dir "$WORK/report-$label" \
    "$@") > "$WORK/schemathesis-$label.log" 2>&1 || rc=$?
  if [ $rc -eq 0 ]; then
    tail -n 25 "$WORK/schemathesis-$label.log"
  else
    sed -n '/= FAILURES =/,$p' "$WORK/schemathesis-$label.log"
  fi
  say "schemathesis ($label) finished in $(( $(date +%s) - started ))s with exit status $rc"
  return $rc
}
status=0
run_schemathesis api "$SECONDS_BUDGET" --exclude-path-regex '^/v2/repository/models/' || status=1
run_schemathesis control 15 --include-path-regex '^/v2/repository/models/' || status=1

say "server-side outcomes of inference requests (convoy_requests_total):"
curl -sf "$BASE/metrics" | grep '^convoy_requests_total' >&2 || true
if grep -Eiq 'panic|internal error' "$WORK/server.log"; then
  say "the server log reports a fault:"; grep -Ei 'panic|internal error' "$WORK/server.log" | head -20 >&2
  status=1
fi
[ $status -eq 0 ] && say "OK" || say "FAILED"
exit $status
