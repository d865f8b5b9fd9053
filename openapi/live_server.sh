# Sourced by the openapi/check_*.sh scripts: starts Convoy on a free local port with the
# shipped models and stops it when the calling script exits, however it exits.
#
#   . openapi/live_server.sh; start_server   # sets BASE, SERVER_PID, WORK (a temp dir)
#
# Env: CONVOY_BIN (default target/debug/convoy, built when not given).

WORK=$(mktemp -d)
SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap stop_server EXIT

start_server() {
  [ -f .ort/cpu/libonnxruntime.so ] || deploy/setup.sh
  local bin=${CONVOY_BIN:-}
  if [ -z "$bin" ]; then
    cargo build --quiet -p convoy --bin convoy
    bin=target/debug/convoy
  fi
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  BASE=http://127.0.0.1:$port
  echo "[live_server] starting $bin on $BASE" >&2
  "$bin" serve --host 127.0.0.1 --port "$port" --model-repository models --device cpu \
    --ort-lib .ort/cpu/libonnxruntime.so > "$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  local _
  for _ in $(seq 1 150); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "[live_server] the server exited during startup:" >&2
      cat "$WORK/server.log" >&2
      return 1
    fi
    curl -sf "$BASE/v2/health/ready" > /dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "[live_server] not ready after 30 s:" >&2
  cat "$WORK/server.log" >&2
  return 1
}
