"""Train and export the diabetes regression MLP served as `mlp`.

MLP 10 -> 128 -> 64 -> 32 -> 1 (ReLU), scikit-learn's MLPRegressor trained on the
diabetes data that ships inside scikit-learn (no download), exported with skl2onnx with a
dynamic batch dimension: input `input` FP32 [-1, 10] -> output `output` FP32 [-1, 1].

It also writes `reference.json`: the first 16 rows of the data and the outputs ONNX Runtime
gives for them in Python, so the Rust tests compare against an independent implementation.

usage: python models/mlp/train.py [--check]
  --check   do not write; verify that the committed model still matches reference.json
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
ROWS = 16


def reference_outputs(model_path, x):
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


def main():
    x_all, y_all = load_diabetes(return_X_y=True)
    x_all = x_all.astype(np.float32)
    x = x_all[:ROWS]
    if "--check" in sys.argv:
        ref = json.load(open(REFERENCE))
        got = reference_outputs(MODEL, np.array(ref["input"], dtype=np.float32))
        diff = float(np.max(np.abs(got.ravel() - np.array(ref["output"]).ravel())))
        print(f"max |onnxruntime - reference| = {diff:.3g}")
        sys.exit(0 if diff <= 1e-5 else 1)

    model = MLPRegressor(hidden_layer_sizes=(128, 64, 32), activation="relu",
                         max_iter=2000, random_state=0)
    model.fit(x_all, y_all.astype(np.float32))
    onx = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, 10]))],
                          final_types=[("output", FloatTensorType([None, 1]))],
                          target_opset={"": 13})
    onx.ir_version = 8
    onnx.checker.check_model(onx)
    onnx.save(onx, MODEL)

    out = reference_outputs(MODEL, x)
    with open(REFERENCE, "w") as f:
        json.dump({
            "model": "mlp",
            "input_name": "input",
            "output_name": "output",
            "input": x.tolist(),
            "output": out.tolist(),
            "note": "outputs computed by onnxruntime " + ort.__version__ + " in Python",
        }, f, indent=1)
        f.write("\n")
    print(f"train R^2 {model.score(x_all, y_all):.4f}; row 0 -> {out[0][0]:.4f}; "
          f"wrote {MODEL} and {REFERENCE}")


if __name__ == "__main__":
    main()
