"""Train and export `diabetes`: the tabular model, served on raw, named features.

scikit-learn's diabetes data unscaled (age in years, sex as 1/2, bmi, bp, s1..s6; shipped
inside scikit-learn), standardised per feature; the target (disease progression) is
standardised too. The MLP (10 -> 64 -> 32 -> 1, ReLU) is trained on standardised values;
the per-feature mean/std and the target's mean/std go into model.toml's
[pipeline.tabular], so Convoy normalises named features before the model (pre stage) and
de-normalises its output after (post stage). reference.json holds raw rows as JSON objects
and the de-normalised predictions onnxruntime gives, for the Rust tests.

usage: python models/diabetes/train.py [--check]
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_diabetes
from sklearn.neural_network import MLPRegressor

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "model.onnx")
REFERENCE = os.path.join(HERE, "reference.json")
TOML = os.path.join(HERE, "model.toml")


def predict(features, stats, rows):
    x = (np.array([[r[f] for f in features] for r in rows], dtype=np.float64) - stats["mean"]) / stats["std"]
    s = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
    y = s.run(None, {"input": x.astype(np.float32)})[0].ravel().astype(np.float64)
    return (y * stats["target_std"] + stats["target_mean"]).tolist()


def main():
    data = load_diabetes(scaled=False)
    features = [str(f) for f in data.feature_names]
    x, y = data.data.astype(np.float64), data.target.astype(np.float64)
    stats = {"mean": x.mean(axis=0), "std": x.std(axis=0), "target_mean": y.mean(), "target_std": y.std()}
    rows = [dict(zip(features, map(float, r))) for r in x[:8]]
    if "--check" in sys.argv:
        ref = json.load(open(REFERENCE))
        got = predict(ref["features"], {k: np.array(v) for k, v in ref["stats"].items()}, ref["rows"])
        diff = max(abs(a - b) for a, b in zip(got, ref["predictions"]))
        print(f"max |onnxruntime - reference| = {diff:.3g}")
        sys.exit(0 if diff <= 1e-3 else 1)
    xs = (x - stats["mean"]) / stats["std"]
    ys = (y - stats["target_mean"]) / stats["target_std"]
    m = MLPRegressor(hidden_layer_sizes=(64, 32), activation="relu", max_iter=2000, random_state=0)
    m.fit(xs.astype(np.float32), ys.astype(np.float32))
    onx = convert_sklearn(m, initial_types=[("input", FloatTensorType([None, 10]))],
                          final_types=[("output", FloatTensorType([None, 1]))], target_opset={"": 13})
    onx.ir_version = 8
    onx.graph.name = "diabetes"
    onnx.checker.check_model(onx)
    onnx.save(onx, MODEL)
    preds = predict(features, stats, rows)
    with open(REFERENCE, "w") as f:
        json.dump({"model": "diabetes", "features": features,
                   "stats": {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in stats.items()},
                   "rows": rows, "predictions": preds, "targets": y[:8].tolist(),
                   "note": "de-normalised predictions from onnxruntime " + ort.__version__ + " in Python"}, f, indent=1)
        f.write("\n")
    fmt = lambda v: "[" + ", ".join(f"{float(a):.9g}" for a in v) + "]"
    with open(TOML, "w") as f:
        f.write(f"""# Diabetes progression from raw, named features (built by train.py in this folder).
# Send JSON objects {{"age": 59, "sex": 2, "bmi": 32.1, ...}} to /v1/models/diabetes/predict;
# Convoy standardises them (pre), runs the MLP, and de-normalises the target (post).
platform = "onnxruntime_onnx"
file = "model.onnx"
version = "1"
max_batch_size = 64

[dynamic_batching]
max_queue_delay_us = 500
preferred_batch_sizes = [64]
max_queue_size = 4096

[[input]]
name = "input"
datatype = "FP32"
dims = [10]

[[output]]
name = "output"
datatype = "FP32"
dims = [1]

[pipeline]
pre = "tabular"
post = "denormalize"

[pipeline.tabular]
features = {json.dumps(features)}
mean = {fmt(stats["mean"])}
std = {fmt(stats["std"])}
target_mean = {stats["target_mean"]:.9g}
target_std = {stats["target_std"]:.9g}
output = "output"
""")
    print(f"train R^2 {m.score(xs, ys):.4f}; row 0 -> {preds[0]:.3f} (target {y[0]}); wrote {MODEL}, {TOML}, {REFERENCE}")


if __name__ == "__main__":
    main()
