"""Train and export the handwritten-digits classifier served as `digits`.

scikit-learn's MLPClassifier (64 -> 64 ReLU -> 10 softmax, random_state 0) trained on the
8x8 digits data that ships inside scikit-learn (no download): 1347 images for training,
450 held out (stratified split, random_state 0). Inputs are the data's own units: 64
pixel intensities 0..16, row-major.

Exported with skl2onnx, `zipmap` off so the probabilities are a plain tensor:

  input   input          FP32  [-1, 64]
  outputs label          INT64 [-1]       arg-max class (0..9)
          probabilities  FP32  [-1, 10]   softmax output, rows sum to 1

(skl2onnx names them output_label / output_probability; `final_types` renames them.)

Also writes labels.txt ("0".."9") and reference.json: one held-out image per class as an
8x8 array of 0..16 values with the probabilities onnxruntime gives for it, plus the same
image as an 8x8 grayscale PNG in samples/ (value * 255 / 16, rounded) with the
probabilities for the PNG's pixels / (255 / 16) — what the server's image stage feeds with
channels = 1, resize = [8, 8], mean = 0, scale = 15.9375.

usage: python models/digits/train.py [--check]
  --check   do not write; verify that the committed model still matches reference.json
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "model.onnx")
LABELS = os.path.join(HERE, "labels.txt")
REFERENCE = os.path.join(HERE, "reference.json")
SAMPLES = os.path.join(HERE, "samples")
PNG_SCALE = 255.0 / 16.0  # 15.9375: PNG level per digits unit
TOL = 1e-5


def say(msg):
    print(f"[digits] {msg}", flush=True)


def session():
    import onnxruntime as ort
    return ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])


def run(sess, x):
    label, probs = sess.run(["label", "probabilities"], {"input": np.asarray(x, np.float32)})
    return label, probs


def read_png(path):
    from PIL import Image
    img = Image.open(path)
    if img.mode != "L" or img.size != (8, 8):
        raise SystemExit(f"{path}: expected an 8x8 grayscale PNG, got {img.mode} {img.size}")
    return np.asarray(img, dtype=np.float32)


def check():
    ref = json.load(open(REFERENCE))
    sess = session()
    worst, ok = 0.0, True
    for s in ref["samples"]:
        x = np.array(s["pixels"], np.float32).reshape(1, 64)
        label, probs = run(sess, x)
        worst = max(worst, float(np.max(np.abs(probs[0] - s["probabilities"]))))
        ok &= int(label[0]) == s["label_predicted"]
        png = read_png(os.path.join(HERE, s["png"])).reshape(1, 64) / PNG_SCALE
        label, probs = run(sess, png)
        worst = max(worst, float(np.max(np.abs(probs[0] - s["png_probabilities"]))))
        ok &= int(label[0]) == s["png_label_predicted"]
    say(f"{len(ref['samples'])} samples (arrays and PNGs): labels "
        f"{'match' if ok else 'DIFFER'}; max |onnxruntime - reference| = {worst:.3g}")
    sys.exit(0 if ok and worst <= TOL else 1)


def main():
    if "--check" in sys.argv:
        check()
        return

    import onnx
    import onnxruntime as ort
    from PIL import Image
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y)
    say(f"training MLPClassifier 64 -> 64 (relu) -> 10 on {len(x_train)} images")
    model = MLPClassifier(hidden_layer_sizes=(64,), activation="relu", max_iter=1000,
                          random_state=0)
    # One BLAS thread: tiny matrices, and oversubscribed threads make it ~20x slower.
    with threadpool_limits(limits=1):
        model.fit(x_train, y_train)
    say(f"  {model.n_iter_} iterations; accuracy train {model.score(x_train, y_train):.4f}, "
        f"held out {model.score(x_test, y_test):.4f}")

    onx = convert_sklearn(
        model, initial_types=[("input", FloatTensorType([None, 64]))],
        final_types=[("label", Int64TensorType([None])),
                     ("probabilities", FloatTensorType([None, 10]))],
        options={id(model): {"zipmap": False}},
        target_opset={"": 13, "ai.onnx.ml": 1})
    onx.ir_version = 8
    onx.graph.name = "digits"  # skl2onnx picks a random one: keep rebuilds byte-identical
    onnx.checker.check_model(onx)
    names = [o.name for o in onx.graph.output]
    if names != ["label", "probabilities"]:
        raise SystemExit(f"unexpected outputs {names}")
    onnx.save(onx, MODEL)
    with open(LABELS, "w") as f:
        f.write("".join(f"{d}\n" for d in range(10)))

    # One held-out image per class: the first of each digit in the test split.
    os.makedirs(SAMPLES, exist_ok=True)
    picks = [int(np.flatnonzero(y_test == d)[0]) for d in range(10)]
    sess = session()
    labels, probs = run(sess, x_test[picks])
    sk = model.predict_proba(x_test[picks])
    say(f"  onnxruntime vs scikit-learn probabilities: max |diff| "
        f"{float(np.max(np.abs(probs - sk))):.2e}")
    samples = []
    for k, i in enumerate(picks):
        pixels = x_test[i].reshape(8, 8)
        png_name = f"samples/digit_{int(y_test[i])}.png"
        levels = np.clip(np.rint(pixels * PNG_SCALE), 0, 255).astype(np.uint8)
        Image.fromarray(levels).save(os.path.join(HERE, png_name), optimize=True)
        png_x = read_png(os.path.join(HERE, png_name)).reshape(1, 64) / PNG_SCALE
        png_label, png_probs = run(sess, png_x)
        samples.append({
            "label_true": int(y_test[i]),
            "pixels": pixels.astype(int).tolist(),
            "label_predicted": int(labels[k]),
            "probabilities": [float(v) for v in probs[k]],
            "png": png_name,
            "png_label_predicted": int(png_label[0]),
            "png_probabilities": [float(v) for v in png_probs[0]],
        })
    with open(REFERENCE, "w") as f:
        json.dump({
            "model": "digits",
            "input_name": "input",
            "output_names": ["label", "probabilities"],
            "note": ("probabilities computed by onnxruntime " + ort.__version__ + " in Python. "
                     "`pixels`: the 8x8 image in the data's units 0..16 (row-major), the "
                     "model's input as is. `png`: the same image as an 8x8 grayscale PNG, "
                     "level = round(value * 255 / 16); `png_probabilities` are for the PNG's "
                     "levels / 15.9375, i.e. the image stage with channels = 1, "
                     "resize = [8, 8], mean = 0, scale = 15.9375."),
            "png_scale": PNG_SCALE,
            "samples": samples,
        }, f, indent=1)
        f.write("\n")
    right = sum(s["label_predicted"] == s["label_true"] for s in samples)
    say(f"  {right}/10 reference samples classified right; wrote {os.path.relpath(MODEL)} "
        f"({os.path.getsize(MODEL) / 1024:.0f} KiB), labels.txt, reference.json, 10 PNGs")


if __name__ == "__main__":
    main()
