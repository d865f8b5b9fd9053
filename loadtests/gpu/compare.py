#!/usr/bin/env python3
"""Outputs of one Convoy server against another's (CUDA against CPU), and both against
the committed references. Standard library only.

    compare.py --cpu http://127.0.0.1:P1 --gpu http://127.0.0.1:P2 --models DIR --json OUT

MLP (models/mlp/reference.json): every reference row, as one batch of all rows and row by
row; outputs must agree within MLP_RTOL relative (|a-b| <= rtol * max(1, |a|)).
MiniLM (models/minilm/reference.json + a batch of 32 texts of mixed length): /v1/embeddings
on both; per text max |a-b| <= EMB_ATOL and cosine >= EMB_COS; the reference sentences'
embeddings also against the committed values (their `tolerance`).
ONNX Runtime's CUDA provider runs FP32 without TF32 unless [cuda] use_tf32 = true, so the
two devices differ only by summation order: the tolerances below are loose for that and
tight for anything else (a wrong kernel, a lost row, mixed-up batch rows).
"""
import argparse
import json
import math
import sys
import urllib.request

MLP_RTOL = 1e-4
EMB_ATOL = 1e-4
EMB_COS = 0.99999

MIXED = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog",
    "GPU inference servers batch requests dynamically.",
    "a",
    "Convoy serves ONNX models over HTTP with dynamic batching, "
    "priority levels, deadlines and a latency target.",
    "Sentence embeddings map texts of any length to one vector of 384 numbers.",
    "Short.",
    "The same text inside a batch of 32 must embed exactly as it does alone, "
    "whatever the length of its neighbours and however much padding they need.",
]


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def mlp(cpu, gpu, ref):
    rows = ref["input"]
    want = [r[0] for r in ref["output"]]

    def infer(base, batch):
        body = {"inputs": [{"name": "input", "shape": [len(batch), len(batch[0])],
                            "datatype": "FP32", "data": [x for r in batch for x in r]}]}
        return post(f"{base}/v2/models/mlp/infer", body)["outputs"][0]["data"]

    out = {}
    for label, batches in (("batch", [rows[i:i + 64] for i in range(0, len(rows), 64)]),
                           ("single", [[r] for r in rows])):
        a = [x for b in batches for x in infer(cpu, b)]
        b = [x for bb in batches for x in infer(gpu, bb)]
        worst_dev = max(abs(x - y) / max(1.0, abs(x)) for x, y in zip(a, b))
        worst_ref = max(abs(y - w) / max(1.0, abs(w)) for y, w in zip(b, want))
        out[label] = {"rows": len(a), "max_rel_diff_gpu_vs_cpu": worst_dev,
                      "max_rel_diff_gpu_vs_reference": worst_ref,
                      "ok": len(a) == len(b) == len(want) and worst_dev <= MLP_RTOL
                      and worst_ref <= max(MLP_RTOL, float(ref.get("tolerance", MLP_RTOL)))}
    return out


def minilm(cpu, gpu, ref):
    def embed(base, texts):
        v = post(f"{base}/v1/embeddings", {"model": "minilm", "input": texts})
        return [d["embedding"] for d in sorted(v["data"], key=lambda d: d["index"])]

    sentences = ref["sentences"]
    tol = float(ref.get("tolerance", EMB_ATOL))
    texts = [s["text"] for s in sentences]
    batch32 = [MIXED[i % len(MIXED)] + ("" if i < len(MIXED) else f" ({i})") for i in range(32)]
    out = {}
    for label, group in (("reference_sentences", texts), ("batch_of_32_mixed", batch32)):
        a = embed(cpu, group)
        b = embed(gpu, group)
        max_abs = max(max(abs(x - y) for x, y in zip(u, v)) for u, v in zip(a, b))
        min_cos = min(cosine(u, v) for u, v in zip(a, b))
        entry = {"texts": len(group), "max_abs_diff_gpu_vs_cpu": max_abs,
                 "min_cosine_gpu_vs_cpu": min_cos,
                 "ok": len(a) == len(b) == len(group) and max_abs <= EMB_ATOL and min_cos >= EMB_COS}
        if label == "reference_sentences":
            worst = 0.0
            for s, e in zip(sentences, b):
                want = s.get("embedding") or s.get("first8") or []
                if not want:
                    continue
                worst = max(worst, max(abs(x - y) for x, y in zip(want, e)))
            entry["max_abs_diff_gpu_vs_reference"] = worst
            entry["ok"] = entry["ok"] and worst <= max(tol, EMB_ATOL)
        out[label] = entry
    # One text alone equals the same text inside the batch of 32, on the GPU.
    alone = embed(gpu, [batch32[4]])[0]
    inside = embed(gpu, batch32)[4]
    d = max(abs(x - y) for x, y in zip(alone, inside))
    out["alone_vs_in_batch_gpu"] = {"max_abs_diff": d, "ok": d <= EMB_ATOL}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu", required=True)
    ap.add_argument("--gpu", required=True)
    ap.add_argument("--models", required=True, help="folder holding mlp/ and minilm/ reference.json")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    result = {"tolerances": {"mlp_rel": MLP_RTOL, "embedding_abs": EMB_ATOL,
                             "embedding_cosine_min": EMB_COS},
              "devices": {"cpu": get(f"{args.cpu}/v2")["device"],
                          "gpu": get(f"{args.gpu}/v2")["device"]}}
    with open(f"{args.models}/mlp/reference.json") as f:
        result["mlp"] = mlp(args.cpu, args.gpu, json.load(f))
    with open(f"{args.models}/minilm/reference.json") as f:
        result["minilm"] = minilm(args.cpu, args.gpu, json.load(f))
    ok = all(v["ok"] for m in ("mlp", "minilm") for v in result[m].values())
    result["ok"] = ok
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    for m in ("mlp", "minilm"):
        for k, v in result[m].items():
            print(f"compare {m}/{k}: {'ok' if v['ok'] else 'FAILED'} "
                  + " ".join(f"{n}={x:.3g}" for n, x in v.items() if isinstance(x, float)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
