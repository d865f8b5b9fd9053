#!/usr/bin/env python3
"""Offline checks of the Helm chart and the KServe manifests (no cluster needed).

    python deploy/checks/k8s_check.py helm-lint     # helm lint --strict, several value sets
    python deploy/checks/k8s_check.py helm-render   # helm template + schema + assertions
    python deploy/checks/k8s_check.py kserve        # KServe runtime + InferenceService

Needs (installed by .ci/deploy-checks.sh into its tool venv): helm-python-sdk (the Helm v4
engine as a library: the real `helm lint` and `helm template`, no helm binary),
kubernetes-validate (the Kubernetes OpenAPI schemas, offline; it plays kubeconform's part)
and PyYAML.

The rendered native objects are validated against the schemas of the oldest Kubernetes the
chart supports (kubeVersion in Chart.yaml) and the newest the validator ships, strictly
(unknown fields fail). Custom resources (PodMonitor, PrometheusRule, KServe's) have no
schema here: their containers are validated as Pod containers, their fields by assertions.
"""
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/convoy"
RULES = ROOT / "docker/prometheus/rules.yml"
ADAPTER = ROOT / "deploy/helm/prometheus-adapter-values.yaml"
KSERVE = ROOT / "deploy/kserve"
HPA_METRIC = "convoy_queue_depth_rows"

failures = []


def fail(msg):
    failures.append(msg)
    print(f"ERROR: {msg}")


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


# Value sets the chart must render and lint cleanly with: (name, values).
SCENARIOS = [
    ("defaults", None),
    ("gpu", {"gpu": {"enabled": True}}),
    ("operator-monitoring", {"monitoring": {"podMonitor": {"enabled": True},
                                            "prometheusRule": {"enabled": True}}}),
    ("fixed-replicas", {"autoscaling": {"enabled": False}, "podDisruptionBudget": {"enabled": False},
                        "replicaCount": 3, "terminationGracePeriodSeconds": 60,
                        "extraEnv": [{"name": "CONVOY_LOG", "value": "debug"}],
                        "extraVolumes": [{"name": "repo", "persistentVolumeClaim": {"claimName": "models"}}],
                        "extraVolumeMounts": [{"name": "repo", "mountPath": "/models", "readOnly": True}]}),
    ("cpu-hpa-and-auto-device", {"autoscaling": {"targetCPUUtilizationPercentage": 70},
                                 "convoy": {"device": "auto"}}),
]


def kube_versions():
    import kubernetes_validate.utils as kv
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    floor = chart["kubeVersion"].lstrip(">=").split("-")[0]
    return [floor, kv.latest_version()]


def helm_lint():
    import helm_python as helm
    for name, values in SCENARIOS:
        report = helm.lint(str(CHART), values=values, strict=True)
        msgs = report.get("messages") or []
        bad = [m for m in msgs if m.get("severity", 0) >= 2] + [{"error": e} for e in report.get("errors") or []]
        for m in bad:
            fail(f"helm lint ({name}): {m.get('path', '')} {m.get('error')}")
        infos = [m.get("error") for m in msgs if m.get("severity", 0) < 2]
        print(f"helm lint --strict ({name}): {len(bad)} errors/warnings" + (f"; info: {infos}" if infos else ""))


def render(values):
    import helm_python as helm
    chart = helm.Chart.load(str(CHART))
    out = chart.render(values=values, name="convoy", namespace="serving", is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def by_kind(docs):
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], []).append(d)
    return kinds


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def validate_native(docs, versions, label):
    import kubernetes_validate as kv
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError
    for d in docs:
        for v in versions:
            try:
                kv.validate(d, v, strict=True)
            except SchemaNotFoundError:
                break  # a custom resource: checked by assertions
            except ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                fail(f"{label}: {d['kind']}/{d['metadata']['name']} invalid for Kubernetes {v}: {path}: {e.message}")


def validate_container(container, versions, label):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"},
           "spec": {"containers": [container]}}
    validate_native([pod], versions, label)


def helm_render():
    versions = kube_versions()
    rules = yaml.safe_load(RULES.read_text())
    for name, values in SCENARIOS:
        docs = render(values)
        k = by_kind(docs)
        validate_native(docs, versions, f"helm template ({name})")
        v = values or {}
        gpu = v.get("gpu", {}).get("enabled", False)
        mon = v.get("monitoring", {})
        hpa_on = v.get("autoscaling", {}).get("enabled", True)

        if not check(len(k.get("Deployment", [])) == 1, f"{name}: expected one Deployment"):
            continue
        dep = k["Deployment"][0]
        pod = dep["spec"]["template"]
        spec = pod["spec"]
        c = spec["containers"][0]
        env = env_of(c)
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        check(ports.get("http") == int(env.get("CONVOY_PORT", 0)), f"{name}: container port != CONVOY_PORT")
        check(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/v2/health/ready",
              f"{name}: readiness probe is not /v2/health/ready")
        check(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/v2/health/live",
              f"{name}: liveness probe is not /v2/health/live")
        pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        check(len(pre) == 2 and pre[0] == "sleep", f"{name}: no preStop sleep")
        sleep_s = int(pre[1]) if len(pre) == 2 else 0
        drain = int(env.get("CONVOY_SHUTDOWN_TIMEOUT_S", 0))
        grace = spec.get("terminationGracePeriodSeconds", 30)
        check(grace > drain + sleep_s,
              f"{name}: terminationGracePeriodSeconds {grace} <= preStop {sleep_s} + CONVOY_SHUTDOWN_TIMEOUT_S {drain}")
        limits = c.get("resources", {}).get("limits", {})
        if gpu:
            check(limits.get("nvidia.com/gpu") == 1, f"{name}: no nvidia.com/gpu limit with gpu.enabled")
            check(env.get("CONVOY_DEVICE") == "cuda", f"{name}: CONVOY_DEVICE is not cuda with gpu.enabled")
            check(c["image"].endswith("-cuda"), f"{name}: gpu.enabled does not use the CUDA image")
        else:
            check("nvidia.com/gpu" not in limits, f"{name}: nvidia.com/gpu requested without gpu.enabled")
            want = v.get("convoy", {}).get("device") or "cpu"
            check(env.get("CONVOY_DEVICE") == want, f"{name}: CONVOY_DEVICE {env.get('CONVOY_DEVICE')} != {want}")
        sc = c.get("securityContext", {})
        check(spec.get("securityContext", {}).get("runAsNonRoot") is True, f"{name}: pod not runAsNonRoot")
        check(sc.get("readOnlyRootFilesystem") is True, f"{name}: root filesystem not read-only")

        svc = k.get("Service", [])
        check(len(svc) == 1 and svc[0]["spec"]["ports"][0]["targetPort"] == "http", f"{name}: Service missing or not on port http")
        sel = dep["spec"]["selector"]["matchLabels"]
        check(all(pod["metadata"]["labels"].get(a) == b for a, b in sel.items()), f"{name}: selector does not match pod labels")
        if svc:
            check(svc[0]["spec"]["selector"] == sel, f"{name}: Service selector != Deployment selector")

        hpas = k.get("HorizontalPodAutoscaler", [])
        if hpa_on:
            if check(len(hpas) == 1, f"{name}: no HPA"):
                h = hpas[0]
                check(h["apiVersion"] == "autoscaling/v2", f"{name}: HPA is not autoscaling/v2")
                check(h["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"], f"{name}: HPA targets another Deployment")
                pods = [m for m in h["spec"]["metrics"] if m["type"] == "Pods"]
                check(pods and pods[0]["pods"]["metric"]["name"] == HPA_METRIC, f"{name}: HPA does not scale on {HPA_METRIC}")
                check("replicas" not in dep["spec"], f"{name}: Deployment sets replicas while the HPA owns them")
        else:
            check(not hpas, f"{name}: HPA rendered while disabled")
            check(dep["spec"].get("replicas") == v.get("replicaCount"), f"{name}: replicas not from replicaCount")

        if v.get("podDisruptionBudget", {}).get("enabled", True):
            pdbs = k.get("PodDisruptionBudget", [])
            check(len(pdbs) == 1 and pdbs[0]["spec"]["selector"]["matchLabels"] == sel, f"{name}: PDB missing or selects other pods")

        annotations = pod["metadata"].get("annotations") or {}
        if mon.get("podMonitor", {}).get("enabled"):
            pms = k.get("PodMonitor", [])
            if check(len(pms) == 1, f"{name}: no PodMonitor"):
                pm = pms[0]
                check(pm["apiVersion"] == "monitoring.coreos.com/v1", f"{name}: PodMonitor apiVersion")
                ep = pm["spec"]["podMetricsEndpoints"][0]
                check(ep["port"] == "http" and ep["path"] == "/metrics", f"{name}: PodMonitor endpoint is not http /metrics")
                check(pm["spec"]["selector"]["matchLabels"] == sel, f"{name}: PodMonitor selects other pods")
                check(not ep.get("metricRelabelings"),
                      f"{name}: PodMonitor relabels metrics (Convoy's labels need none: the busy ratio uses `worker`)")
            check("prometheus.io/scrape" not in annotations, f"{name}: scrape annotations next to a PodMonitor")
        else:
            check(annotations.get("prometheus.io/scrape") == "true" and annotations.get("prometheus.io/path") == "/metrics",
                  f"{name}: no prometheus.io scrape annotations")
        if mon.get("prometheusRule", {}).get("enabled"):
            prs = k.get("PrometheusRule", [])
            if check(len(prs) == 1, f"{name}: no PrometheusRule"):
                check(prs[0]["spec"] == rules, f"{name}: PrometheusRule differs from docker/prometheus/rules.yml")
        print(f"helm template ({name}): {len(docs)} objects {sorted(k)}; schemas of Kubernetes {versions}")

    # A grace period that leaves no time to drain must be refused.
    try:
        render({"terminationGracePeriodSeconds": 20})
        fail("terminationGracePeriodSeconds 20 (< preStop + drain) was accepted")
    except Exception as e:  # helm_python.HelmRenderError
        print(f"helm template (too-short grace period) refused as expected: {str(e).splitlines()[0][:120]}")

    adapter = yaml.safe_load(ADAPTER.read_text())
    rules_ = adapter.get("rules", {}).get("custom", [])
    check(any(r.get("name", {}).get("as") == HPA_METRIC and HPA_METRIC in r.get("seriesQuery", "") for r in rules_),
          f"prometheus-adapter values: no rule exposing {HPA_METRIC}")
    for r in rules_:
        ov = r.get("resources", {}).get("overrides", {})
        check(ov.get("pod", {}).get("resource") == "pod" and ov.get("namespace", {}).get("resource") == "namespace",
              "prometheus-adapter values: the rule must map the pod and namespace labels")


def kserve():
    versions = kube_versions()
    docs = []
    for f in sorted(KSERVE.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                docs.append((f.name, d))
    k = {}
    for f, d in docs:
        k.setdefault(d["kind"], []).append(d)
    runtimes = k.get("ClusterServingRuntime", []) + k.get("ServingRuntime", [])
    if not check(runtimes, "kserve: no (Cluster)ServingRuntime"):
        return
    names = {}
    for rt in runtimes:
        s = rt["spec"]
        check(rt["apiVersion"] == "serving.kserve.io/v1alpha1", "kserve: ServingRuntime apiVersion is not serving.kserve.io/v1alpha1")
        check("v2" in s.get("protocolVersions", []), "kserve: runtime does not declare protocol v2")
        formats = {m["name"] for m in s.get("supportedModelFormats", [])}
        check("onnx" in formats, "kserve: runtime does not support the onnx model format")
        cs = s.get("containers", [])
        if not check(len(cs) == 1 and cs[0]["name"] == "kserve-container", "kserve: runtime needs one container named kserve-container"):
            continue
        c = cs[0]
        env = env_of(c)
        port = int(env.get("CONVOY_PORT", 8000))
        check(env.get("CONVOY_MODEL_REPOSITORY") == "/mnt/models", "kserve: CONVOY_MODEL_REPOSITORY is not /mnt/models (the storage initializer's)")
        check(any(p["containerPort"] == port for p in c.get("ports", [])), "kserve: containerPort != CONVOY_PORT")
        check(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/v2/health/ready", "kserve: readiness probe is not /v2/health/ready")
        check(s.get("annotations", {}).get("prometheus.kserve.io/port") == str(port), "kserve: prometheus.kserve.io/port != CONVOY_PORT")
        validate_container(c, versions, "kserve runtime container")
        names[rt["metadata"]["name"]] = formats
    isvcs = k.get("InferenceService", [])
    check(isvcs, "kserve: no InferenceService example")
    for isvc in isvcs:
        check(isvc["apiVersion"] == "serving.kserve.io/v1beta1", "kserve: InferenceService apiVersion")
        p = isvc["spec"]["predictor"]
        m = p["model"]
        check(m.get("runtime") in names, f"kserve: InferenceService runtime {m.get('runtime')!r} is not defined here")
        check(m.get("modelFormat", {}).get("name") in names.get(m.get("runtime"), set()), "kserve: model format not supported by the runtime")
        check(m.get("protocolVersion") == "v2", "kserve: InferenceService protocolVersion is not v2")
        check(p.get("terminationGracePeriodSeconds", 30) > 30, "kserve: grace period must exceed CONVOY_SHUTDOWN_TIMEOUT_S (30)")
        validate_container({"name": "kserve-container", "image": "x", "resources": m.get("resources", {})},
                           versions, "kserve InferenceService resources")
    print(f"kserve: {len(runtimes)} runtime(s), {len(isvcs)} InferenceService(s); containers against Kubernetes {versions}")


def main():
    cmds = {"helm-lint": helm_lint, "helm-render": helm_render, "kserve": kserve}
    if len(sys.argv) != 2 or sys.argv[1] not in cmds:
        print(__doc__)
        return 2
    cmds[sys.argv[1]]()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
