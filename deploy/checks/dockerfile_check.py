#!/usr/bin/env python3
"""Static checks of the images' recipes that no Docker engine is needed for.

    python3 deploy/checks/dockerfile_check.py

One way to build: each Dockerfile's builder stage runs deploy/setup.sh and
`cargo build --release`, and nothing else fetches software: no curl/wget/ADD of a URL,
the only other download being the onnxruntime-gpu wheel from PyPI in Dockerfile.cuda,
pinned by version (the one deploy/setup.sh pins) and sha256. Plus the runtime contract:
non-root user, EXPOSE 8000, HEALTHCHECK on /v2/health/ready, STOPSIGNAL SIGTERM, the ORT
library path inside what was copied; the CUDA base image's major version matches the one
onnxruntime-gpu targets; the two .dockerignore files are identical and keep build outputs
out of the context without hiding what the build needs. Standard library only.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
# onnxruntime-gpu (PyPI) release -> the CUDA major version its wheel is built for.
ORT_GPU_CUDA_MAJOR = {"1.31": 13}

errors = []


def instructions(path):
    """[(stage_name, INSTRUCTION, args)] with continuation lines joined, comments dropped."""
    out = []
    stage = None
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        line = buf + line
        buf = ""
        word, _, args = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.search(r"\bAS\s+(\S+)", args, re.I)
            stage = m.group(1) if m else args.split()[0]
        out.append((stage, word, args.strip()))
    return out


def args_of(instrs):
    return {a.split("=", 1)[0]: a.split("=", 1)[1] for _, w, a in instrs if w == "ARG" and "=" in a}


def check_dockerfile(rel, cuda):
    path = ROOT / rel
    if not path.exists():
        errors.append(f"{rel}: missing")
        return
    ins = instructions(path)
    args = args_of(ins)
    stages = [s for s, w, _ in ins if w == "FROM"]
    final = stages[-1]
    build_runs = [a for s, w, a in ins if w == "RUN" and s == "builder"]
    if not any(re.search(r"(^|[\s;&])deploy/setup\.sh(\s|$)", a) for a in build_runs):
        errors.append(f"{rel}: the builder stage does not run deploy/setup.sh")
    if not any(re.search(r"cargo build --release", a) for a in build_runs):
        errors.append(f"{rel}: the builder stage does not run `cargo build --release`")
    for s, w, a in ins:
        if w == "ADD" and re.search(r"https?://", a):
            errors.append(f"{rel}: ADD of a URL ({a})")
        if w == "RUN":
            # curl as an apt package (for the HEALTHCHECK) is fine; curl/wget as a command is not.
            commands = re.sub(r"apt-get install[^&;|]*", "", a)
            if re.search(r"\b(curl|wget)\b", commands):
                errors.append(f"{rel}: RUN downloads with curl/wget: {a[:80]}")
            if re.search(r"https?://", a):
                errors.append(f"{rel}: RUN names a URL: {a[:80]}")
            if "cargo install" in a:
                errors.append(f"{rel}: cargo install in the build (a second way to get a tool)")
            if re.search(r"pip\S* (download|install)", a) and s != "ort-cuda":
                errors.append(f"{rel}: pip outside deploy/setup.sh (stage {s}): {a[:80]}")
    final_ins = [(w, a) for s, w, a in ins if s == final]
    words = {w for w, _ in final_ins}
    users = [a for w, a in final_ins if w == "USER"]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        errors.append(f"{rel}: the runtime stage does not run as a non-root USER")
    if ("EXPOSE", "8000") not in final_ins:
        errors.append(f"{rel}: the runtime stage does not EXPOSE 8000")
    if not any(w == "HEALTHCHECK" and "/v2/health/ready" in a for w, a in final_ins):
        errors.append(f"{rel}: no HEALTHCHECK on /v2/health/ready")
    if ("STOPSIGNAL", "SIGTERM") not in final_ins:
        errors.append(f"{rel}: no STOPSIGNAL SIGTERM")
    if "ENTRYPOINT" not in words:
        errors.append(f"{rel}: no ENTRYPOINT")
    env = " ".join(a for w, a in final_ins if w == "ENV")
    m = re.search(r"CONVOY_ORT_LIB=(\S+)", env)
    copies = [a.split()[-1] for w, a in final_ins if w == "COPY"]
    if not m:
        errors.append(f"{rel}: CONVOY_ORT_LIB not set in the runtime stage")
    elif not any(m.group(1).startswith(d.rstrip("/") + "/") for d in copies):
        errors.append(f"{rel}: CONVOY_ORT_LIB={m.group(1)} is not under a COPY destination {copies}")
    device = re.search(r"CONVOY_DEVICE=(\S+)", env)
    want = "cuda" if cuda else "cpu"
    if not device or device.group(1) != want:
        errors.append(f"{rel}: CONVOY_DEVICE should default to {want}")
    if not re.search(r"CONVOY_MODEL_REPOSITORY=(\S+)", env):
        errors.append(f"{rel}: CONVOY_MODEL_REPOSITORY not set")

    if cuda:
        setup = (ROOT / "deploy/setup.sh").read_text()
        cpu_version = re.search(r"^ORT_VERSION=(\S+)", setup, re.M).group(1)
        gpu_version = args.get("ORT_GPU_VERSION")
        if gpu_version != cpu_version:
            errors.append(f"{rel}: ORT_GPU_VERSION={gpu_version} but deploy/setup.sh pins onnxruntime {cpu_version}")
        if not re.fullmatch(r"[0-9a-f]{64}", args.get("ORT_GPU_SHA256", "")):
            errors.append(f"{rel}: ORT_GPU_SHA256 is not a sha256")
        gpu_runs = " ".join(a for s, w, a in ins if w == "RUN" and s == "ort-cuda")
        if "sha256sum -c" not in gpu_runs or "ORT_GPU_SHA256" not in gpu_runs:
            errors.append(f"{rel}: the onnxruntime-gpu wheel is not checked against ORT_GPU_SHA256")
        if 'onnxruntime-gpu==${ORT_GPU_VERSION}' not in gpu_runs:
            errors.append(f"{rel}: the onnxruntime-gpu version is not pinned to ORT_GPU_VERSION")
        image = args.get("CUDA_IMAGE", "")
        m = re.match(r"nvidia/cuda:(\d+)\.\d+(\.\d+)?-cudnn-runtime-", image)
        major = ORT_GPU_CUDA_MAJOR.get(".".join((gpu_version or "").split(".")[:2]))
        if not m:
            errors.append(f"{rel}: CUDA_IMAGE {image!r} is not an nvidia/cuda cudnn-runtime tag")
        elif major is None:
            errors.append(f"{rel}: unknown CUDA major for onnxruntime-gpu {gpu_version}: "
                          "update ORT_GPU_CUDA_MAJOR in this script from the wheel's release notes")
        elif int(m.group(1)) != major:
            errors.append(f"{rel}: CUDA_IMAGE is CUDA {m.group(1)} but onnxruntime-gpu {gpu_version} targets CUDA {major}")
    print(f"{rel}: {len(ins)} instructions, stages {stages}")


def check_dockerignore():
    a = ROOT / "docker/Dockerfile.dockerignore"
    b = ROOT / "docker/Dockerfile.cuda.dockerignore"
    if not a.exists() or not b.exists():
        errors.append("docker/Dockerfile.dockerignore and docker/Dockerfile.cuda.dockerignore must both exist")
        return
    if a.read_bytes() != b.read_bytes():
        errors.append("docker/Dockerfile.dockerignore and docker/Dockerfile.cuda.dockerignore differ")
    pats = [l.strip() for l in a.read_text().splitlines() if l.strip() and not l.startswith("#")]
    for must in ("target/", ".venv/", ".ort/"):
        if must not in pats:
            errors.append(f"docker/Dockerfile.dockerignore does not exclude {must}")
    for needed in ("src/", "Cargo.toml", "Cargo.lock", "models/", "loadtests/Cargo.toml"):
        if needed.rstrip("/") in [p.rstrip("/") for p in pats]:
            errors.append(f"docker/Dockerfile.dockerignore excludes {needed}, which the build needs")
    if "deploy/" in pats and "!deploy/setup.sh" not in pats:
        errors.append("docker/Dockerfile.dockerignore excludes deploy/setup.sh, which the build runs")


def check_compose():
    text = (ROOT / "docker/compose.yaml").read_text()
    if not re.search(r"context:\s*\.\.\s*\n\s*dockerfile:\s*docker/Dockerfile\s*\n", text):
        errors.append("docker/compose.yaml: convoy is not built from docker/Dockerfile with the repository root as context")
    m = re.search(r"stop_grace_period:\s*(\d+)s", text)
    t = re.search(r'CONVOY_SHUTDOWN_TIMEOUT_S:\s*"?(\d+)', text)
    if not m or not t or int(m.group(1)) <= int(t.group(1)):
        errors.append("docker/compose.yaml: stop_grace_period must exceed CONVOY_SHUTDOWN_TIMEOUT_S")


def main():
    check_dockerfile("docker/Dockerfile", cuda=False)
    check_dockerfile("docker/Dockerfile.cuda", cuda=True)
    check_dockerignore()
    check_compose()
    for e in errors:
        print(f"ERROR: {e}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
