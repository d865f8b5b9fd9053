"""Triton's own Python client (tritonclient[http]), unchanged, against a running Convoy.

usage: python tests/triton_client.py HOST:PORT
Checks live/ready, model metadata and config, and infer on the MLP with JSON tensors and
with the binary tensor extension, against models/mlp/reference.json.
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
print("tritonclient: live, ready, metadata, config, stats and 5 infer variants OK")
