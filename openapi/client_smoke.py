"""Exercises a Python client generated from openapi/openapi.json against a live Convoy.

    python openapi/client_smoke.py BASE_URL CLIENT_PROJECT_DIR

CLIENT_PROJECT_DIR is what `openapi-python-client generate` wrote (it holds the
`convoy_client` package). Prints OK and exits 0 when every call answered as documented.
"""

import base64
import json
import pathlib
import sys

base_url, client_dir = sys.argv[1], sys.argv[2]
sys.path.insert(0, client_dir)

from convoy_client import Client  # noqa: E402
from convoy_client.api.health import live, model_ready, ready  # noqa: E402
from convoy_client.api.inference import infer, version_infer  # noqa: E402
from convoy_client.api.metadata import model_config, model_metadata, server_metadata  # noqa: E402
from convoy_client.api.statistics import all_stats, model_stats  # noqa: E402
from convoy_client.api.tasks import classify, embeddings, predict  # noqa: E402
from convoy_client.models import (  # noqa: E402
    ClassifyRequest,
    ClassifyResponse,
    Datatype,
    EmbeddingsRequest,
    EmbeddingsResponse,
    ErrorResponse,
    InferInputRequest,
    InferOutputRequest,
    InferRequest,
    InferResponse,
    PredictRequest,
    PredictResponse,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
reference = json.loads((ROOT / "models/mlp/reference.json").read_text())
rows, want = reference["input"], [r[0] for r in reference["output"]]


def close(got, expected, tol=1e-5):
    return len(got) == len(expected) and all(
        abs(g - e) <= tol * max(abs(e), 1.0) for g, e in zip(got, expected)
    )


with Client(base_url=base_url, raise_on_unexpected_status=True) as client:
    # Health and metadata.
    assert live.sync(client=client).live is True
    assert ready.sync(client=client).ready is True
    assert model_ready.sync("mlp", client=client).ready is True
    server = server_metadata.sync(client=client)
    assert server.name == "convoy", server
    assert "mlp" in server.device.models.additional_properties, server
    meta = model_metadata.sync("mlp", client=client)
    assert meta.inputs[0].name == "input" and meta.inputs[0].shape == [-1, 10], meta
    assert meta.inputs[0].datatype == Datatype.FP32, meta
    config = model_config.sync("mlp", client=client)
    assert config.max_batch_size >= 1 and config.input_[0].dims == ["10"], config

    # Inference: all reference rows at once (flat data), then one row nested, by version.
    flat = [x for row in rows for x in row]
    request = InferRequest(
        id="smoke",
        inputs=[
            InferInputRequest(
                name="input", shape=[len(rows), 10], datatype=Datatype.FP32, data=flat
            )
        ],
    )
    answer = infer.sync("mlp", client=client, body=request)
    assert isinstance(answer, InferResponse), answer
    assert answer.id == "smoke" and answer.model_name == "mlp", answer
    assert answer.outputs[0].shape == [len(rows), 1], answer
    assert close(answer.outputs[0].data, want), (answer.outputs[0].data, want)
    nested = InferRequest(
        inputs=[
            InferInputRequest(
                name="input", shape=[1, 10], datatype=Datatype.FP32, data=[rows[0]]
            )
        ],
        outputs=[InferOutputRequest(name="output")],
    )
    answer = version_infer.sync("mlp", "1", client=client, body=nested)
    assert isinstance(answer, InferResponse), answer
    assert close(answer.outputs[0].data, want[:1]), answer

    # Refusals come back as the documented error body.
    wrong = InferRequest(
        inputs=[
            InferInputRequest(name="input", shape=[1, 3], datatype=Datatype.FP32, data=[1, 2, 3])
        ]
    )
    detailed = infer.sync_detailed("mlp", client=client, body=wrong)
    assert detailed.status_code == 422, detailed
    assert isinstance(detailed.parsed, ErrorResponse), detailed.parsed
    assert "inputs[0].shape" in detailed.parsed.error, detailed.parsed
    detailed = model_metadata.sync_detailed("no-such-model", client=client)
    assert detailed.status_code == 404 and isinstance(detailed.parsed, ErrorResponse)

    # Statistics saw the requests above.
    stats = model_stats.sync("mlp", client=client)
    mlp = stats.model_stats[0]
    assert mlp.name == "mlp" and mlp.inference_count >= len(rows) + 1, mlp
    assert mlp.inference_stats.success.count >= 2, mlp
    assert any(s.name == "mlp" for s in all_stats.sync(client=client).model_stats)

    # The task routes, on the shipped pipeline models (each checked against the outputs
    # its models/<name>/reference.json holds, computed by onnxruntime in Python).
    served = set(server.device.models.additional_properties)
    tasks_done = []
    if "minilm" in served:
        ref = json.loads((ROOT / "models/minilm/reference.json").read_text())["sentences"][0]
        out = embeddings.sync(
            client=client, body=EmbeddingsRequest(model="minilm", input_=[ref["text"]])
        )
        assert isinstance(out, EmbeddingsResponse), out
        vector = out.data[0].embedding
        assert len(vector) == 384 and close(vector[:8], ref["first8"], 1e-3), vector[:8]
        tasks_done.append("embeddings")
    if "digits" in served:
        ref = json.loads((ROOT / "models/digits/reference.json").read_text())["samples"][0]
        png = (ROOT / f"models/digits/samples/digit_{ref['label_true']}.png").read_bytes()
        out = classify.sync(
            "digits", client=client, body=ClassifyRequest(image=base64.b64encode(png).decode())
        )
        assert isinstance(out, ClassifyResponse), out
        assert out.predictions[0][0].label == str(ref["label_true"]), out.predictions[0]
        tasks_done.append("classify")
    if "diabetes" in served:
        ref = json.loads((ROOT / "models/diabetes/reference.json").read_text())
        out = predict.sync(
            "diabetes", client=client, body=PredictRequest.from_dict({"instances": ref["rows"]})
        )
        assert isinstance(out, PredictResponse), out
        assert close(out.predictions, ref["predictions"], 1e-4), out.predictions
        tasks_done.append("predict")

print(
    "OK: generated client: health, metadata, config, infer (flat and nested), errors, "
    f"stats, tasks: {', '.join(tasks_done) or 'none (no pipeline model served)'}"
)
