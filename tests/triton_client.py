"""Triton's own Python client (tritonclient[http]), unchanged, against a running Convoy.

usage: python tests/triton_client.py HOST:PORT
Checks live/ready, model metadata and config (the same tensors for every model), infer on
the MLP with JSON tensors and with the binary tensor extension against
models/mlp/reference.json, and binary outputs on the pipeline models.
"""
import json
import os
import sys

import numpy as np
import tritonclient.http as httpclient

url = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
ref = json.load(open(os.path.join(here, "..", "models", "mlp", "reference.json")))
x = np.array(ref["input"], dtype=np.float32)
want = np.array(ref["output"], dtype=np.float32)

client = httpclient.InferenceServerClient(url=url)
assert client.is_server_live(), "server not live"
assert client.is_server_ready(), "server not ready"
assert client.is_model_ready("mlp"), "model not ready"
meta = client.get_model_metadata("mlp")
assert meta["name"] == "mlp", meta
assert meta["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 10]}, meta
config = client.get_model_config("mlp")
assert config["max_batch_size"] == 64, config
server = client.get_server_metadata()
assert server["name"] == "convoy", server


def infer(binary_in, binary_out, rows, outputs=True):
    inp = httpclient.InferInput("input", [rows, 10], "FP32")
    inp.set_data_from_numpy(x[:rows], binary_data=binary_in)
    requested = [httpclient.InferRequestedOutput("output", binary_data=binary_out)] if outputs else None
    result = client.infer("mlp", [inp], outputs=requested, request_id="tc-1")
    got = result.as_numpy("output")
    assert got.shape == (rows, 1), got.shape
    np.testing.assert_allclose(got, want[:rows], rtol=1e-5, atol=1e-5)
    assert result.get_response()["id"] == "tc-1"


for binary_in in (False, True):
    for binary_out in (False, True):
        infer(binary_in, binary_out, 16)
infer(True, True, 1, outputs=False)  # the client's defaults: binary everywhere
stats = client.get_inference_statistics("mlp")
assert stats["model_stats"][0]["inference_count"] >= 65, stats
try:
    client.get_model_metadata("nope")
    raise SystemExit("unknown model did not fail")
except httpclient.InferenceServerException as e:
    assert "not found" in str(e), e


def config_tensors(tensors):
    kinds = {"TYPE_STRING": "BYTES"}
    return [
        {
            "name": t["name"],
            "datatype": kinds.get(t["data_type"], t["data_type"].removeprefix("TYPE_")),
            "shape": [-1] + [int(d) for d in t["dims"]],
        }
        for t in tensors
    ]


# /config and metadata describe the same served tensors, for every model: clients (and
# perf_analyzer) build requests from either.
models = [m["name"] for m in client.get_model_repository_index() if m.get("state") == "READY"]
assert len(models) >= 2, models
for name in models:
    meta = client.get_model_metadata(name)
    config = client.get_model_config(name)
    assert config_tensors(config["input"]) == meta["inputs"], (name, config, meta)
    assert config_tensors(config["output"]) == meta["outputs"], (name, config, meta)


def pipeline_infer(model, name, array, datatype, out, binary_out):
    inp = httpclient.InferInput(name, list(array.shape), datatype)
    inp.set_data_from_numpy(array, binary_data=True)
    requested = [httpclient.InferRequestedOutput(out, binary_data=binary_out)]
    result = client.infer(model, [inp], outputs=requested)
    raw = result.get_response()["outputs"][0]
    assert ("data" not in raw) == binary_out, (model, raw)
    return result.as_numpy(out)


# Binary outputs on pipeline models: asked for, given.
pipelines = 0
if "minilm" in models:
    texts = np.array([b"Hello world", b"A longer sentence about batching."], dtype=np.object_)
    a = pipeline_infer("minilm", "text", texts, "BYTES", "embedding", True)
    b = pipeline_infer("minilm", "text", texts, "BYTES", "embedding", False)
    assert a.shape == (2, 384), a.shape
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    pipelines += 1
if "diabetes" in models:
    features = np.array([[59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87]], dtype=np.float32)
    a = pipeline_infer("diabetes", "features", features, "FP32", "prediction", True)
    b = pipeline_infer("diabetes", "features", features, "FP32", "prediction", False)
    assert a.shape == (1, 1), a.shape
    np.testing.assert_allclose(a, b, rtol=1e-6)
    pipelines += 1
assert pipelines >= 1, models
print(f"tritonclient: config == metadata for {len(models)} models; binary outputs on {pipelines} pipeline models")
print("tritonclient: live, ready, metadata, config, stats and 5 infer variants OK")
