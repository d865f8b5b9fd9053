"""The official `openai` Python client, unchanged, against Convoy's /v1/embeddings.

usage: python tests/openai_client.py http://HOST:PORT
"""
import math
import sys

from openai import OpenAI

client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused")
texts = ["Hello world", "The quick brown fox jumps over the lazy dog"]
# The client asks for base64 by default and decodes it; ask for floats too.
for fmt in (None, "float"):
    kwargs = {} if fmt is None else {"encoding_format": fmt}
    r = client.embeddings.create(model="minilm", input=texts, **kwargs)
    a, b = (d.embedding for d in r.data)
    assert len(a) == 384, len(a)
    want = [-0.034477, 0.031023, 0.006735, 0.026109, -0.039362]
    assert all(abs(x - y) < 1e-4 for x, y in zip(a[:5], want)), a[:5]
    cos = sum(x * y for x, y in zip(a, b))
    assert abs(cos - 0.133220) < 1e-4, cos
    assert abs(math.sqrt(sum(x * x for x in a)) - 1.0) < 1e-5
    assert r.usage.prompt_tokens == 15, r.usage
one = client.embeddings.create(model="minilm", input="Hello world")
assert len(one.data) == 1
print("openai client: embeddings.create (base64 and float) OK")
