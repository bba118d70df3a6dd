"""The locally built stack images, really running on a real node.

Builds every image (``labctl images build --all``: cached after the first time), starts a sim with
a real node in a state directory of the module's own, loads the images (``labctl images load``,
then again: unchanged), and runs each the way labctl runs it: the stacks exactly as rendered
(restricted pod security, read-only root filesystems, uid 10001), pinned to the real node, with
the local image settings; the model server and the controller image as plain restricted pods.
Each must really work: S3 through botocore, Prometheus ready and reloading the learner's rules,
Alertmanager ready, MLflow logging a run and an artifact (through the object store), the model
server predicting over KServe V1 and MLflow scoring and exporting metrics, ``labctl --version``.

Idle memory of every server is written to ``$LABCTL_IMAGES_REPORT`` (default
/tmp/labctl-images-e2e.json). Needs root and the real-node prerequisites: ``make e2e``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labctl.core.errors import LabctlError
from labctl.kube import Kube, condition_true
from labctl.localcluster.realnode.kubelet import NODE_LABEL
from labctl.provision.stacks import alertmanager, mlflow_server, object_store, prometheus, render_stacks
from labctl.provision.stacks.common import container_security
from labctl.provision.stacks.object_store import ObjectStoreCredentials
from labctl.provision.stacks.settings import StackImages, StackSettings
from tests.conftest import labctl
from tests.e2e.machine import wait_for_machine_lock

NAME = "e2eimg"
NODE = f"{NAME}-node"
NAMESPACE = "learner-e2e"
CREDENTIALS = ObjectStoreCredentials("e2e-access-key", "e2e-secret-key-0123456789")
REPORT = Path(os.environ.get("LABCTL_IMAGES_REPORT", "/tmp/labctl-images-e2e.json"))
IDLE_S = 20  # settle time before reading memory
POD_LOGS: list[Path] = []  # the real node's kubelet writes container logs here

pytestmark = pytest.mark.timeout(2400)


ALL = [
    "object-store",
    "prometheus",
    "alertmanager",
    "config-reloader",
    "model-server",
    "mlflow",
    "controller",
]
# A subset while iterating: LABCTL_E2E_IMAGES="object-store model-server" (tests of the rest skip).
IMAGES = os.environ.get("LABCTL_E2E_IMAGES", "").split() or ALL


def needs(*images: str) -> None:
    if missing := [i for i in images if i not in IMAGES]:
        pytest.skip(f"not in LABCTL_E2E_IMAGES: {', '.join(missing)}")


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    started = time.monotonic()
    result = labctl("images", "build", *IMAGES, "-o", "json", timeout=7200)
    rows = json.loads(result.stdout)
    print(f"\nimages build: {time.monotonic() - started:.1f}s")
    for row in rows:
        print(
            f"  {row['image']:16} {row['size']:>10}  {row['status']:6} {row['seconds']:7.1f}s {row['digest']}"
        )
    assert [r["image"] for r in rows] == [i for i in ALL if i in IMAGES]
    again = json.loads(labctl("images", "build", *IMAGES, "-o", "json").stdout)
    assert {r["status"] for r in again} == {"cached"}
    assert [r["digest"] for r in again] == [r["digest"] for r in rows]  # same inputs, same digests
    return rows


@pytest.fixture(scope="module")
def node(built: list[dict[str, Any]]) -> Iterator[tuple[Kube, dict[str, str]]]:
    root = Path(tempfile.mkdtemp(prefix="labctl-img-", dir="/tmp"))
    env = {"LABCTL_STATE_DIR": str(root)}
    wait_for_machine_lock()
    try:
        up = labctl(
            "sim", "up", NAME, "--cpu-nodes", "1", "--gpu-nodes", "0", "--real-node", env=env, timeout=400
        )
        kube = Kube.connect(kubeconfig=up.stdout.strip())
        POD_LOGS[:] = [Path(up.stdout.strip()).parent / "node" / "pod-logs"]
        started = time.monotonic()
        loaded = json.loads(
            labctl("images", "load", *IMAGES, "--sim", NAME, "-o", "json", env=env, timeout=1800).stdout
        )
        print(f"\nimages load: {time.monotonic() - started:.1f}s")
        assert {r["result"] for r in loaded} == {"imported"}, loaded
        # The controller image is this checkout's labctl: an edit to it since `build` rebuilds it.
        stable = {r["image"]: r["digest"] for r in built if r["image"] != "controller"}
        assert {r["image"]: r["digest"] for r in loaded if r["image"] in stable} == stable
        again = json.loads(labctl("images", "load", IMAGES[0], "--sim", NAME, "-o", "json", env=env).stdout)
        assert [r["result"] for r in again] == ["unchanged"]
        kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        yield kube, env
    finally:
        labctl("sim", "down", NAME, env=env, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def figures() -> Iterator[dict[str, Any]]:
    found: dict[str, Any] = {}
    yield found
    with contextlib.suppress(OSError):
        previous = json.loads(REPORT.read_text()) if REPORT.exists() else {}
        REPORT.write_text(json.dumps({**previous, **found}, indent=2))
    print(f"\nidle memory: {json.dumps(found, indent=2)}")


# -- helpers ---------------------------------------------------------------------------------


def _on_real_node(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "Deployment":
        obj["spec"]["template"]["spec"]["nodeSelector"] = {NODE_LABEL: NAME}
    return obj


def _stack_objects(components: tuple[str, ...]) -> list[dict[str, Any]]:
    settings = StackSettings(enabled=components, images=StackImages.local(), persistence=False)  # type: ignore[arg-type]
    labels = {"labctl.dev/learner": NAMESPACE}
    return [_on_real_node(o) for o in render_stacks(NAMESPACE, labels, CREDENTIALS, settings)]


def _logs(pod: dict[str, Any], lines: int = 15) -> str:
    """The tail of each container's log, from the kubelet's pod log dir (``kubectl logs`` cannot
    reach the real node: the API server has no kubelet client certificate)."""
    meta = pod["metadata"]
    found = []
    for log in sorted(POD_LOGS[0].glob(f"{meta['namespace']}_{meta['name']}_*/*/*.log") if POD_LOGS else []):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        found.append(f"--- {log.parent.name}/{log.name}:\n" + "\n".join(tail))
    return "\n".join(found)


def _ready_pod(kube: Kube, selector: str, timeout: float, what: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        pods = kube.list("v1", "Pod", namespace=NAMESPACE, label_selector=selector)
        for pod in pods:
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (status.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in (
                    "ErrImageNeverPull",
                    "CreateContainerConfigError",
                    "ImageInspectError",
                ):
                    raise AssertionError(f"{what}: {waiting}\n{_logs(pod)}")
                if status.get("restartCount", 0) > 2:
                    raise AssertionError(f"{what} keeps restarting: {status}\n{_logs(pod)}")
        good = [p for p in pods if p["status"].get("phase") == "Running" and condition_true(p, "Ready")]
        return good[0] if good else None

    try:
        pod = kube.wait_for(ready, timeout=timeout, what=what, interval=0.5)
    except LabctlError:
        pods = kube.list("v1", "Pod", namespace=NAMESPACE, label_selector=selector)
        raise AssertionError(
            f"{what}: {[p.get('status') for p in pods]}\n{''.join(_logs(p) for p in pods)}"
        ) from None
    assert pod["spec"]["nodeName"] == NODE
    return pod


def _http(url: str, *, method: str = "GET", body: Any = None, timeout: float = 10) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _pod_memory(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod's processes (pause left out): their summed RSS and PSS, and the pod cgroup's
    memory (cgroup v1 ``memory.stat``: total_rss is anonymous memory, total_cache page cache)."""
    uid = pod["metadata"]["uid"]
    processes: dict[str, dict[str, int]] = {}
    cgroup_dir: Path | None = None
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cgroups = (proc / "cgroup").read_text()
            if uid not in cgroups and uid.replace("-", "_") not in cgroups:
                continue
            comm = (proc / "comm").read_text().strip()
            status = (proc / "status").read_text()
            rollup = (proc / "smaps_rollup").read_text()
        except OSError:
            continue
        if comm == "pause":
            for line in cgroups.splitlines():
                _, controllers, path = line.split(":", 2)
                if "memory" in controllers.split(","):
                    cgroup_dir = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            continue
        rss = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:"))
        pss = next(int(x.split()[1]) for x in rollup.splitlines() if x.startswith("Pss:"))
        entry = processes.setdefault(comm, {"count": 0, "rss_kib": 0, "pss_kib": 0})
        entry["count"] += 1
        entry["rss_kib"] += rss
        entry["pss_kib"] += pss
    result: dict[str, Any] = {
        "processes": processes,
        "rss_mib": round(sum(p["rss_kib"] for p in processes.values()) / 1024, 1),
        "pss_mib": round(sum(p["pss_kib"] for p in processes.values()) / 1024, 1),
    }
    pod_cgroup = cgroup_dir.parent if cgroup_dir is not None else None  # pause's container dir -> pod dir
    if pod_cgroup is not None and (pod_cgroup / "memory.stat").exists():
        stat = dict(line.split() for line in (pod_cgroup / "memory.stat").read_text().splitlines())
        result["cgroup_rss_mib"] = round(int(stat["total_rss"]) / 2**20, 1)
        result["cgroup_cache_mib"] = round(int(stat["total_cache"]) / 2**20, 1)
        result["cgroup_usage_mib"] = round(int((pod_cgroup / "memory.usage_in_bytes").read_text()) / 2**20, 1)
    return result


def _restricted_pod(
    name: str, image: str, container: dict[str, Any], volumes: list[Any] | None = None
) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {NODE_LABEL: NAME},
            "restartPolicy": container.pop("restartPolicy", "Always"),
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": name,
                    "image": image,
                    "imagePullPolicy": "Never",
                    "securityContext": container_security(),
                }
                | container
            ],
            "volumes": volumes or [],
        },
    }


# -- the tests ------------------------------------------------------------------------------


def test_object_store_answers_s3(node: tuple[Kube, dict[str, str]], figures: dict[str, Any]) -> None:
    needs("object-store")
    import botocore.session

    kube, _ = node
    for obj in _stack_objects(("object-store",)):
        kube.apply(obj)
    pod = _ready_pod(kube, "labctl.dev/stack=object-store", 120, "the object store to be Ready")
    url = f"http://{pod['status']['podIP']}:{object_store.PORT}"
    assert _http(f"{url}/health")[0] == 200
    s3 = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=url,
        region_name=object_store.REGION,
        aws_access_key_id=CREDENTIALS.access_key,
        aws_secret_access_key=CREDENTIALS.secret_key,
    )
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert set(object_store.BUCKETS) <= buckets  # made by the init container's mkdir
    s3.create_bucket(Bucket="e2e")
    s3.put_object(Bucket="e2e", Key="hello.txt", Body=b"hello from the real node")
    assert s3.get_object(Bucket="e2e", Key="hello.txt")["Body"].read() == b"hello from the real node"
    time.sleep(IDLE_S)
    figures["object-store"] = _pod_memory(pod)


def test_prometheus_and_alertmanager_are_ready_and_rules_reload(
    node: tuple[Kube, dict[str, str]], figures: dict[str, Any]
) -> None:
    needs("prometheus", "alertmanager", "config-reloader")
    kube, _ = node
    rules = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": prometheus.RULES_CONFIG_MAP, "namespace": NAMESPACE},
        "data": {"lab.yaml": _rule("FirstRule")},
    }
    kube.apply(rules)
    for obj in _stack_objects(("prometheus", "alertmanager")):
        kube.apply(obj)
    prom = _ready_pod(kube, "labctl.dev/stack=prometheus", 120, "Prometheus (and its reloader) to be Ready")
    am = _ready_pod(kube, "labctl.dev/stack=alertmanager", 120, "Alertmanager to be Ready")
    prom_url = f"http://{prom['status']['podIP']}:{prometheus.PORT}"
    assert _http(f"{prom_url}/-/ready")[0] == 200
    assert _http(f"http://{prom['status']['podIP']}:{prometheus.RELOADER_PORT}/healthz")[0] == 200
    am_url = f"http://{am['status']['podIP']}:{alertmanager.PORT}"
    assert _http(f"{am_url}/-/ready")[0] == 200
    assert _http(f"{am_url}/api/v2/status")[0] == 200
    assert "FirstRule" in _rule_names(prom_url)

    rules["data"] = {"lab.yaml": _rule("SecondRule")}
    kube.apply(rules)
    started = time.monotonic()
    kube.wait_for(
        lambda: "SecondRule" in _rule_names(prom_url),
        timeout=180,
        what="the changed rule to reach Prometheus (kubelet sync + reloader)",
        interval=1,
    )
    print(f"\nrule change reached Prometheus in {time.monotonic() - started:.1f}s")
    time.sleep(IDLE_S)
    figures["prometheus"] = _pod_memory(prom)
    figures["alertmanager"] = _pod_memory(am)


def _rule(name: str) -> str:
    return f"groups:\n- name: lab\n  rules:\n  - alert: {name}\n    expr: vector(1) > 2\n"


def _rule_names(prom_url: str) -> set[str]:
    status, body = _http(f"{prom_url}/api/v1/rules")
    if status != 200:
        return set()
    groups = json.loads(body)["data"]["groups"]
    return {rule["name"] for group in groups for rule in group["rules"]}


def test_mlflow_logs_a_run_and_an_artifact(
    node: tuple[Kube, dict[str, str]], figures: dict[str, Any]
) -> None:
    needs("object-store", "mlflow")
    kube, _ = node
    for obj in _stack_objects(("object-store", "mlflow")):
        kube.apply(obj)
    started = time.monotonic()
    pod = _ready_pod(kube, "labctl.dev/stack=mlflow", 300, "MLflow to be Ready")
    print(f"\nmlflow Ready after {time.monotonic() - started:.1f}s")
    url = f"http://{pod['status']['podIP']}:{mlflow_server.PORT}"
    assert _http(f"{url}/health")[0] == 200
    api = f"{url}/api/2.0/mlflow"
    status, body = _http(f"{api}/experiments/create", method="POST", body={"name": "e2e"})
    assert status == 200, body
    experiment = json.loads(body)["experiment_id"]
    status, body = _http(f"{api}/runs/create", method="POST", body={"experiment_id": experiment})
    assert status == 200, body
    run = json.loads(body)["run"]["info"]
    run_id = run["run_id"]
    metric = {"run_id": run_id, "key": "accuracy", "value": 0.93, "timestamp": 1, "step": 0}
    assert _http(f"{api}/runs/log-metric", method="POST", body=metric)[0] == 200
    status, body = _http(f"{api}/runs/get?run_id={run_id}")
    assert status == 200
    assert json.loads(body)["run"]["data"]["metrics"][0]["value"] == 0.93
    # An artifact through MLflow's proxy into the object store's mlflow bucket (boto3 in the image).
    artifact = f"{url}/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run_id}/artifacts/note.txt"
    status, body = _http(artifact, method="PUT", body=b"artifact bytes", timeout=60)
    assert status == 200, body
    assert _http(artifact, timeout=60) == (200, b"artifact bytes")
    time.sleep(IDLE_S)
    figures["mlflow"] = _pod_memory(pod)
    figures["mlflow"]["ready_s"] = round(time.monotonic() - started, 1)


def test_model_server_predicts_and_exports_metrics(
    node: tuple[Kube, dict[str, str]], built: list[dict[str, Any]], figures: dict[str, Any]
) -> None:
    needs("model-server")
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    kube, _ = node
    iris = load_iris()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(iris.data, iris.target)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "iris-model", "namespace": NAMESPACE},
            "binaryData": {"model.joblib": base64.b64encode(buffer.getvalue()).decode()},
        }
    )
    image = next(r["name"] for r in built if r["image"] == "model-server")
    container = {
        "env": [
            {"name": "MODEL_PATH", "value": "/models/model.joblib"},
            {"name": "MODEL_NAME", "value": "iris"},
        ],
        "ports": [{"name": "http", "containerPort": 8080}],
        "volumeMounts": [{"name": "model", "mountPath": "/models", "readOnly": True}],
        "readinessProbe": {"httpGet": {"path": "/v1/models/iris", "port": 8080}, "periodSeconds": 1},
    }
    volumes = [{"name": "model", "configMap": {"name": "iris-model"}}]
    kube.apply(_restricted_pod("model-server", image, container, volumes))
    pod = _ready_pod(kube, "app=model-server", 120, "the model server to be Ready")
    url = f"http://{pod['status']['podIP']}:8080"
    assert json.loads(_http(f"{url}/v1/models/iris")[1]) == {"name": "iris", "ready": True}
    status, body = _http(
        f"{url}/v1/models/iris:predict", method="POST", body={"instances": iris.data[:3].tolist()}
    )
    assert status == 200 and json.loads(body) == {"predictions": model.predict(iris.data[:3]).tolist()}
    columns = [str(c) for c in iris.feature_names]
    split = {"dataframe_split": {"columns": columns, "data": iris.data[-2:].tolist()}}
    status, body = _http(f"{url}/invocations", method="POST", body=split)
    assert status == 200 and json.loads(body) == {"predictions": model.predict(iris.data[-2:]).tolist()}
    assert _http(f"{url}/ping")[0] == 200
    status, body = _http(f"{url}/metrics")
    assert status == 200
    text = body.decode()
    assert "model_predictions_total 5.0" in text
    assert "model_drift_score" in text and 'model_requests_total{code="200",protocol="kserve"}' in text
    time.sleep(IDLE_S)
    figures["model-server"] = _pod_memory(pod)


def test_controller_image_runs_labctl(node: tuple[Kube, dict[str, str]], built: list[dict[str, Any]]) -> None:
    needs("controller")
    kube, _ = node
    image = next(r["name"] for r in built if r["image"] == "controller")
    for name, args in (
        ("labctl-version", ["--version"]),
        ("controller-help", ["controller", "run", "--help"]),
    ):
        container = {"args": args, "restartPolicy": "Never"}
        pod = _restricted_pod(name, image, container)
        pod["spec"]["securityContext"]["runAsUser"] = pod["spec"]["securityContext"]["runAsGroup"] = 65532
        kube.apply(pod)

        def finished(pod_name: str = name) -> dict[str, Any] | None:
            live = kube.get("v1", "Pod", pod_name, NAMESPACE) or {}
            phase = (live.get("status") or {}).get("phase")
            if phase == "Failed":
                raise AssertionError(f"{pod_name} failed: {live['status']}\n{_logs(live)}")
            return live if phase == "Succeeded" else None

        done = kube.wait_for(finished, timeout=180, what=f"{name} to succeed", interval=0.5)
        terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 0
        assert done["spec"]["nodeName"] == NODE
