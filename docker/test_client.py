#!/usr/bin/env python3
"""HTTP checks of a running Convoy container, for docker/test.sh (standard library only).

  test_client.py wait-ready URL TIMEOUT_S
  test_client.py check-api URL models|mlp-only   MLP = models/mlp/reference.json; with
                                                 `models`, /v1/embeddings = the MiniLM one
  test_client.py sigterm-load URL DOCKER NAME STOP_TIMEOUT_S
  test_client.py show-device URL
  test_client.py load URL SECONDS                mixed traffic (for the compose test)
"""
import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def request(url, body=None, timeout=30.0):
    """(status, parsed JSON or text). Raises OSError on transport errors."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    # One connection per request: a transport error then always means the server did not
    # take this request (never a reused keep-alive connection closed under us).
    req.add_header("Connection", "close")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_ready(url, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if request(f"{url}/v2/health/ready", timeout=2)[0] == 200:
                return 0
        except OSError:
            pass
        time.sleep(0.1)
    return 1


def mlp_reference():
    with open(os.path.join(ROOT, "models/mlp/reference.json")) as f:
        ref = json.load(f)
    return ref["input"], [row[0] for row in ref["output"]]


def mlp_body(rows):
    return {"inputs": [{"name": "input", "shape": [len(rows), len(rows[0])], "datatype": "FP32",
                        "data": [x for r in rows for x in r]}]}


# The tolerance of tests/v2_api.rs: relative 1e-5 (absolute below 1).
def close(a, b, tol=1e-5):
    return len(a) == len(b) and all(abs(x - y) <= tol * max(abs(y), 1.0) for x, y in zip(a, b))


def check_mlp(url):
    rows, want = mlp_reference()
    status, v = request(f"{url}/v2/models/mlp/infer", mlp_body(rows))
    if status != 200:
        fail(f"MLP infer: {status} {v}")
    got = v["outputs"][0]["data"]
    if not close(got, want):
        fail(f"MLP answers differ from models/mlp/reference.json:\n got  {got}\n want {want}")
    diff = max(abs(x - y) for x, y in zip(got, want))
    print(f"MLP: {len(rows)} rows in one request = models/mlp/reference.json (max |diff| {diff:.1e})")


def check_embeddings(url):
    with open(os.path.join(ROOT, "models/minilm/reference.json")) as f:
        ref = json.load(f)
    tol = float(ref["tolerance"])
    texts = [s["text"] for s in ref["sentences"]]
    status, v = request(f"{url}/v1/embeddings", {"model": "minilm", "input": texts})
    if status != 200:
        fail(f"/v1/embeddings: {status} {v}")
    data = sorted(v["data"], key=lambda d: d["index"])
    if len(data) != len(texts):
        fail(f"/v1/embeddings: {len(data)} embeddings for {len(texts)} texts")
    worst = 0.0
    for s, d in zip(ref["sentences"], data):
        emb = d["embedding"]
        if len(emb) != int(ref["dim"]):
            fail(f"/v1/embeddings: dimension {len(emb)}, want {ref['dim']}")
        want = s.get("embedding") or s["first8"]   # full vector where the reference has it
        worst = max(worst, max(abs(x - y) for x, y in zip(emb, want)))
        if abs(math.sqrt(sum(x * x for x in emb)) - 1) > 1e-3:
            fail("/v1/embeddings: embedding not L2-normalised")
    if worst > tol:
        fail(f"/v1/embeddings: max |diff| {worst:.2e} from models/minilm/reference.json > {tol}")
    e0, e1 = data[0]["embedding"], data[1]["embedding"]
    cos = sum(x * y for x, y in zip(e0, e1))
    print(f"/v1/embeddings: {len(texts)} texts, dim {len(e0)}, = models/minilm/reference.json "
          f"(max |diff| {worst:.1e}, tolerance {tol}); cosine(0, 1) {cos:.6f} "
          f"(reference {float(ref['cosine_0_1']):.6f}), usage {v.get('usage')}")


def check_api(url, what):
    status, v = request(f"{url}/v2/health/ready")
    if status != 200:
        fail(f"/v2/health/ready: {status}")
    print("/v2/health/ready: 200")
    check_mlp(url)
    if what == "models":
        check_embeddings(url)


def show_device(url):
    status, v = request(f"{url}/v2")
    print(f"GET /v2: {status} {json.dumps(v)[:400]}")


def sigterm_load(url, docker, name, stop_timeout):
    """Clients send MLP requests and slow MiniLM batches; `docker stop` (SIGTERM) lands
    mid-load.

    As tests/shutdown.rs: every HTTP answer must be 200 (and right) or 503 (refused while
    draining); a transport error means the server no longer takes requests (that client
    stops). On top of that, every request that was sent at least ADMITTED_S before the
    stop, and was still unanswered at the stop, had certainly been read by the server: it
    must be answered 200. At least one such request must exist (the embeddings batches
    take long enough). The container must exit 0 before the stop timeout (past it Docker
    kills it: 137)."""
    ADMITTED_S = 0.5
    rows, want = mlp_reference()
    with open(os.path.join(ROOT, "models/minilm/reference.json")) as f:
        long_text = max((s["text"] for s in json.load(f)["sentences"]), key=len)
    stop = threading.Event()
    lock = threading.Lock()
    log = []   # (client, path, sent, ended, outcome)

    def client(i):
        while not stop.is_set():
            if i % 2 == 0:
                r = i % len(rows)
                path, body = "/v2/models/mlp/infer", mlp_body(rows[r:r + 1])
            else:
                path, body = "/v1/embeddings", {"model": "minilm", "input": [long_text] * 32}
            sent = time.monotonic()
            try:
                status, v = request(url + path, body, timeout=stop_timeout + 20)
            except OSError as e:
                with lock:
                    log.append((i, path, sent, time.monotonic(),
                                "transport:" + type(getattr(e, "reason", e)).__name__))
                return
            if status == 200:
                good = (abs(v["outputs"][0]["data"][0] - want[r]) < 1e-3 if i % 2 == 0
                        else len(v["data"]) == 32)
                outcome = "200" if good else "200 but wrong answer"
            else:
                outcome = f"{status} {str(v)[:200]}"
            with lock:
                log.append((i, path, sent, time.monotonic(), outcome))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(3.0)
    t_stop = time.monotonic()
    # `docker stop -t N`: SIGTERM (the image's STOPSIGNAL), SIGKILL after N s.
    subprocess.run([docker, "stop", "-t", str(stop_timeout), name], check=True,
                   stdout=subprocess.DEVNULL, timeout=stop_timeout + 30)
    stop_s = time.monotonic() - t_stop
    stop.set()
    for t in threads:
        t.join(timeout=stop_timeout + 30)
    state = json.loads(subprocess.run([docker, "inspect", "-f", "{{json .State}}", name],
                                      check=True, capture_output=True, text=True).stdout)
    ok = sum(1 for e in log if e[4] == "200")
    refused = sum(1 for e in log if e[4].startswith("503"))
    ends = {}
    for e in log:
        if e[4].startswith("transport:"):
            ends[e[4][10:]] = ends.get(e[4][10:], 0) + 1
    bad = [e for e in log if not (e[4] == "200" or e[4].startswith("503") or e[4].startswith("transport:"))]
    admitted = [e for e in log if e[2] <= t_stop - ADMITTED_S and e[3] > t_stop]
    lost = [e for e in admitted if e[4] != "200"]
    kinds = {}
    for e in admitted:
        kinds[e[1]] = kinds.get(e[1], 0) + 1
    print(f"  {sum(1 for e in log if e[3] <= t_stop)} answered before the stop; in flight at the stop and "
          f"sent >= {ADMITTED_S}s before it: {len(admitted)} {kinds}, {len(admitted) - len(lost)} of them "
          f"answered 200 during the drain; in all {ok} answered 200 (all right), {refused} refused 503 "
          f"while draining, {sum(ends.values())} clients ended on a closed listener {ends}; "
          f"stopped in {stop_s:.1f}s, exit code {state['ExitCode']}, OOMKilled {state['OOMKilled']}")
    logs = subprocess.run([docker, "logs", "--tail", "2", name], capture_output=True, text=True)
    for line in (logs.stdout + logs.stderr).strip().splitlines():
        print(f"  log: {line[:300]}")
    if bad:
        fail(f"answers other than 200/503 during shutdown: {[(e[1], e[4]) for e in bad[:5]]}")
    if lost:
        fail(f"admitted requests lost at SIGTERM: {[(e[1], e[4]) for e in lost[:5]]}")
    if not admitted:
        fail("no request was in flight at the stop: the test proved nothing (load too light?)")
    if state["ExitCode"] != 0:
        fail(f"exit code {state['ExitCode']} after SIGTERM (137: killed at the stop timeout)")
    if stop_s >= stop_timeout:
        fail(f"stop took {stop_s:.1f}s, the whole stop timeout")


def load(url, seconds):
    """Mixed traffic for the dashboards: MLP (single rows and batches), MiniLM
    embeddings, a few bad requests (outcome != success)."""
    rows, _ = mlp_reference()
    end = time.monotonic() + seconds
    n = {"ok": 0, "other": 0}
    lock = threading.Lock()

    def client(i):
        k = 0
        while time.monotonic() < end:
            k += 1
            if i == 0 and k % 10 == 0:
                path, body = "/v2/models/mlp/infer", {}                      # 400
            elif i % 3 == 2:
                path, body = "/v1/embeddings", {"model": "minilm", "input": ["Hello world", "A"]}
            else:
                path, body = "/v2/models/mlp/infer", mlp_body(rows[: 1 + k % 8])
            try:
                status, _ = request(url + path, body)
            except OSError:
                status = 0
            with lock:
                n["ok" if status == 200 else "other"] += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"load: {n['ok']} requests answered 200, {n['other']} others (bad requests on purpose)")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "wait-ready":
        sys.exit(wait_ready(args[0], float(args[1])))
    elif cmd == "check-api":
        check_api(args[0], args[1])
    elif cmd == "sigterm-load":
        sigterm_load(args[0], args[1], args[2], int(args[3]))
    elif cmd == "show-device":
        show_device(args[0])
    elif cmd == "load":
        load(args[0], float(args[1]))
    else:
        fail(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
