"""Small helpers for loadtests/run.sh, kept out of the shell script so they can be read
and tried on their own. Standard library only, except `slow-model` (onnx + numpy, from
the .venv made by deploy/setup.sh).

  helpers.py derive-config SRC DST EDIT...   copy a model.toml with edits, then check it
  helpers.py slow-model OUT_DIR [--layers N] [--width W] [--inputs I]
  helpers.py png OUT [--size S]              a synthetic RGB PNG (a gradient)
  helpers.py manifest OUT KEY=VALUE...       a JSON object; values parsed as JSON if they can be
  helpers.py pick FILE LEVEL FIELD           a figure of one level of a closed-loop JSON

EDITs of derive-config (the committed files stay untouched; edits are line-based so the
comments of the original survive into the quoted config):
  key=value          set a top-level key (value is TOML: 2, 5.0, true, [8], "x")
  table.key=value    set a key of [table] (created at the end when missing)
  table.key=         remove a key of [table]
  -table             remove the whole [table] (its header and lines up to the next header)
"""

import json
import os
import re
import struct
import sys
import tomllib
import zlib

# [table] or [[array.of.tables]]; the latter are kept whole and never edited.
HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")


def segments(lines):
    """[(table name or None, [lines])] with the header line first in each named segment."""
    segs = [(None, [])]
    for line in lines:
        m = HEADER.match(line)
        if m:
            name = m.group(2) if m.group(1) == "[" else "[[" + m.group(2) + "]]"
            segs.append((name, [line]))
        else:
            segs[-1][1].append(line)
    return segs


def key_re(key):
    return re.compile(r"^\s*" + re.escape(key) + r"\s*=")


def derive_config(src, dst, edits):
    with open(src) as f:
        segs = segments(f.read().splitlines())
    checks = []
    for edit in edits:
        if edit.startswith("-"):
            table = edit[1:]
            segs = [s for s in segs if s[0] != table]
            checks.append(("absent-table", table, None))
            continue
        path, _, value = edit.partition("=")
        table, _, key = path.rpartition(".")
        table = table or None
        seg = next((s for s in segs if s[0] == table), None)
        if seg is None:
            if value == "":
                continue
            segs[-1][1].append("")
            seg = (table, [f"[{table}]"])
            segs.append(seg)
        body = seg[1]
        idx = next((i for i, l in enumerate(body) if key_re(key).match(l)), None)
        line = f"{key} = {value}    # written by loadtests/run.sh"
        if value == "":
            if idx is not None:
                del body[idx]
            checks.append(("absent", table, key))
            continue
        if idx is not None:
            body[idx] = line
        else:
            # After the header (or at the top of the file for top-level keys).
            body.insert(1 if table else 0, line)
        checks.append(("equals", table, (key, tomllib.loads(f"v = {value}")["v"])))
    text = "\n".join(l for s in segs for l in s[1]).strip("\n") + "\n"
    cfg = tomllib.loads(text)

    def table_of(name):
        t = cfg
        for part in (name.split(".") if name else []):
            t = t.get(part, {})
        return t

    for kind, table, arg in checks:
        if kind == "absent-table":
            assert not table_of(table), f"{dst}: [{table}] still present"
        elif kind == "absent":
            assert arg not in table_of(table), f"{dst}: {table}.{arg} still present"
        else:
            key, want = arg
            got = table_of(table).get(key)
            assert got == want, f"{dst}: {table}.{key} is {got!r}, wanted {want!r}"
    with open(dst, "w") as f:
        f.write(text)


def slow_model(out_dir, layers, width, inputs):
    """FP32 [N, inputs] -> [N, width] through `layers` MatMul + Relu layers (the first
    inputs x width, the others width x width).

    The MLP in models/ is so cheap that the HTTP path, not the device, is its bottleneck,
    so it cannot show what happens when the *device* falls behind. This model costs a few
    milliseconds per batch of 8 on one CPU thread, which makes the queue (and its 429s)
    the thing under test. The input is narrow so a request body stays small: refusing a
    request must not cost the server more than reading a few hundred bytes."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)  # He init below: activations neither vanish nor explode
    nodes, inits, prev = [], [], "input"
    for i in range(layers):
        rows = inputs if i == 0 else width
        w = (rng.standard_normal((rows, width)) * np.sqrt(2.0 / rows)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, name=f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"mm{i}"]))
        out = "output" if i == layers - 1 else f"relu{i}"
        nodes.append(helper.make_node("Relu", [f"mm{i}"], [out]))
        prev = out
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", inputs])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", width])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    os.makedirs(out_dir, exist_ok=True)
    onnx.save(model, os.path.join(out_dir, "model.onnx"))
    row = np.random.default_rng(11).uniform(-1.0, 1.0, inputs).round(4).tolist()
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump({"input_name": "input", "input": [row]}, f)


def png(out, size):
    """An 8-bit RGB PNG of size x size (a smooth gradient), written with zlib alone."""
    raw = bytearray()
    for y in range(size):
        raw.append(0)  # filter: none
        for x in range(size):
            raw += bytes((x * 255 // size, y * 255 // size, (x + y) * 127 // size))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    with open(out, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                + chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + chunk(b"IEND", b""))


def manifest(out, pairs):
    obj = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            obj[key] = json.loads(value)
        except json.JSONDecodeError:
            obj[key] = value
    with open(out, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def pick(path, level, field):
    with open(path) as f:
        doc = json.load(f)
    for l in doc["levels"]:
        if str(l.get("concurrency", l.get("target_rate"))) == level:
            print(l[field])
            return
    sys.exit(f"{path}: no level {level}")


def main(argv):
    if not argv:
        sys.exit(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "derive-config" and len(args) >= 2:
        derive_config(args[0], args[1], args[2:])
    elif cmd == "slow-model" and args:
        opts = dict(zip(args[1::2], args[2::2]))
        slow_model(
            args[0],
            int(opts.get("--layers", 56)),
            int(opts.get("--width", 512)),
            int(opts.get("--inputs", 16)),
        )
    elif cmd == "png" and args:
        opts = dict(zip(args[1::2], args[2::2]))
        png(args[0], int(opts.get("--size", 320)))
    elif cmd == "manifest" and args:
        manifest(args[0], args[1:])
    elif cmd == "pick" and len(args) == 3:
        pick(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
