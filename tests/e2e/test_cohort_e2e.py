"""The whole product on a real node: the in-cluster controller provisions a cohort whose stacks run.

One module, one cluster, built as an instructor would: ``labctl sim up --real-node`` (no kwok CPU
nodes, so every pod runs here; a tainted kwok GPU node stays for the GPU lab), the locally built
images loaded, ``labctl install --stack-settings manifests/stack-settings/local-images.yaml`` (the
controller runs as a pod from its image), ``labctl cohort create --wait`` for two learners.
Then each check as a learner does it, with the kubeconfig ``labctl learner kubeconfig`` gives,
from pods in their namespace:

- MLflow answers through its Service; a run with a parameter, a metric and an artifact (stored
  through the server's artifact proxy in the object store) is visible through the tracking API;
- ``dvc push`` to the learner's bucket, then ``dvc pull`` in a fresh pod gets the same hashes;
- a model registered with an alias is served by the model-server image; Prometheus scrapes it,
  a learner-written alert rule fires and Alertmanager receives the alert;
- ``endpoint.predict`` (the grader's own code, from the controller image) scores the model server
  through its Service's cluster DNS name.

NetworkPolicy: the bridge CNI here does not enforce it (README, limits); the policy objects are
checked here and in tests/cluster. Needs root and the real-node prerequisites: ``make e2e``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from labctl.kube import Kube, KubeError, condition_true
from labctl.provision.install import CONTROLLER_NAME
from labctl.provision.tenancy import CONTROLLER_NAMESPACE
from tests.conftest import labctl
from tests.e2e.machine import wait_for_machine_lock

NAME = "e2ecohort"
NODE = f"{NAME}-node"
ROSTER = "email,name\nada@uni.edu,Ada Lovelace\nalan@uni.edu,Alan Turing\n"
SETTINGS = Path(__file__).parents[2] / "manifests" / "stack-settings" / "local-images.yaml"
IMAGES = [
    "object-store", "prometheus", "alertmanager", "config-reloader", "model-server", "mlflow", "controller",
]  # fmt: skip
MLFLOW_IMAGE = "labctl.local/mlflow:3.17.2"
MODEL_SERVER_IMAGE = "labctl.local/model-server:0.1.0"
TOOLS_IMAGE = "labctl.local/labctl-controller:0.1.0"  # labctl, the graders, dvc[s3], mlflow
MODEL = "iris"
ALERT = "LabctlE2EModelServerUp"

pytestmark = pytest.mark.timeout(2400)


@dataclass
class Cohort:
    admin: Kube
    kubeconfig: str
    env: dict[str, str]
    namespaces: dict[str, str]  # email -> namespace
    learner_kubeconfigs: dict[str, Path]

    def learner(self, email: str) -> Kube:
        return Kube.connect(kubeconfig=str(self.learner_kubeconfigs[email]))


def _wait(what: str, probe: Any, timeout: float, every: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cohort]:
    figures: dict[str, float] = {}
    started = time.monotonic()
    labctl("images", "build", *IMAGES, timeout=7200)
    figures["images build"] = time.monotonic() - started
    root = Path(tempfile.mkdtemp(prefix="labctl-e2ec-", dir="/tmp"))
    env = {"LABCTL_STATE_DIR": str(root)}
    wait_for_machine_lock()
    try:
        step = time.monotonic()
        sizes = ["--cpu-nodes", "0", "--gpu-nodes", "1", "--gpus-per-node", "2"]
        up = labctl("sim", "up", NAME, "--real-node", *sizes, env=env, timeout=400)
        kubeconfig = up.stdout.strip()
        figures["sim up --real-node"] = time.monotonic() - step
        step = time.monotonic()
        labctl("images", "load", *IMAGES, "--sim", NAME, env=env, timeout=1800)
        figures["images load"] = time.monotonic() - step
        kc = ["--kubeconfig", kubeconfig]
        step = time.monotonic()
        labctl("install", "--stack-settings", str(SETTINGS), *kc, env=env)
        admin = Kube.connect(kubeconfig=kubeconfig)
        _wait(
            "the in-cluster controller to be Available",
            lambda: condition_true(
                admin.get("apps/v1", "Deployment", CONTROLLER_NAME, CONTROLLER_NAMESPACE) or {}, "Available"
            ),
            timeout=300,
        )
        figures["install (controller Available)"] = time.monotonic() - step
        roster = tmp_path_factory.mktemp("roster") / "roster.csv"
        roster.write_text(ROSTER)
        step = time.monotonic()
        labctl(
            "cohort", "create", NAME, "--roster", str(roster), "--level", "foundation",
            "--wait", "--timeout", "15m", *kc, env=env, timeout=1000,
        )  # fmt: skip
        figures["cohort create --wait (2 learners, stacks running)"] = time.monotonic() - step
        learners = admin.list("labctl.dev/v1alpha1", "Learner")
        namespaces = {lr["spec"]["email"]: lr["status"]["namespace"] for lr in learners}
        configs = {}
        for email in namespaces:
            out = root / f"{email}.kubeconfig"
            labctl("learner", "kubeconfig", NAME, email, "--out", str(out), *kc, env=env)
            configs[email] = out
        print("\n" + "\n".join(f"  {k}: {v:.1f}s" for k, v in figures.items()))
        yield Cohort(admin, kubeconfig, env, namespaces, configs)
    finally:
        labctl("sim", "down", NAME, env=env, check=False, timeout=300)
        shutil.rmtree(root, ignore_errors=True)


# -- pods, as a learner runs them ------------------------------------------------------------------

RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def container(name: str, image: str, command: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "securityContext": RESTRICTED_CONTAINER,
        **extra,
    }


def run_pod(
    kube: Kube, namespace: str, name: str, image: str, script: str, *, secret_env: bool = False,
    files: dict[str, str] | None = None, timeout: float = 300,
) -> str:  # fmt: skip
    """Run ``script`` (sh) in a one-off pod of the learner's namespace; its logs, or fail with them."""
    mounts, volumes = [], []
    if files:
        kube.apply({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": files,
        })  # fmt: skip
        mounts = [{"name": "files", "mountPath": "/input"}]
        volumes = [{"name": "files", "configMap": {"name": name}}]
    extra: dict[str, Any] = {"volumeMounts": mounts, "env": [{"name": "HOME", "value": "/tmp"}]}
    if secret_env:
        extra["envFrom"] = [{"secretRef": {"name": "object-store-credentials"}}]
    kube.create({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": RESTRICTED_POD,
            "containers": [container("main", image, ["sh", "-c", script], **extra)],
            "volumes": volumes,
        },
    })  # fmt: skip

    def finished() -> str | None:
        phase = ((kube.get("v1", "Pod", name, namespace) or {}).get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = _wait(f"pod {namespace}/{name} to finish", finished, timeout)
    logs = kube.logs(namespace, name).decode(errors="replace")
    assert phase == "Succeeded", f"pod {namespace}/{name} {phase}:\n{logs}"
    return str(logs)


def last_json(logs: str) -> dict[str, Any]:
    return json.loads([line for line in logs.splitlines() if line.startswith("{")][-1])


def cluster_ip(kube: Kube, namespace: str, service: str) -> str:
    svc = kube.get("v1", "Service", service, namespace)
    assert svc is not None, f"Service {namespace}/{service} missing"
    return str(svc["spec"]["clusterIP"])


def http_json(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return json.loads(reply.read())


# -- the checks ------------------------------------------------------------------------------------


def test_the_controller_runs_in_cluster_and_every_stack_runs_on_the_real_node(cohort: Cohort) -> None:
    pods = cohort.admin.list("v1", "Pod", namespace=CONTROLLER_NAMESPACE)
    assert [p["spec"].get("nodeName") for p in pods] == [NODE]
    shown = labctl("cohort", "status", NAME, "-o", "json", "--kubeconfig", cohort.kubeconfig)
    status = json.loads(shown.stdout)
    assert [(row["learner"], row["ready"], row["stacks"]) for row in status] == [
        ("ada@uni.edu", True, "4/4"),
        ("alan@uni.edu", True, "4/4"),
    ]
    for namespace in cohort.namespaces.values():
        stack_pods = cohort.admin.list("v1", "Pod", namespace=namespace)
        assert {p["metadata"]["labels"].get("labctl.dev/stack") for p in stack_pods} >= {
            "mlflow", "object-store", "prometheus", "alertmanager",
        }  # fmt: skip
        for pod in stack_pods:
            assert pod["spec"]["nodeName"] == NODE
            assert pod["status"]["phase"] == "Running", pod["metadata"]["name"]
        # The isolation objects are there; the bridge CNI does not enforce them (README, limits).
        assert cohort.admin.list("networking.k8s.io/v1", "NetworkPolicy", namespace=namespace)


MLFLOW_SCRIPT = r"""
import json, os, mlflow
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

mlflow.set_tracking_uri("http://mlflow:5000")  # the Service, by its short name
mlflow.set_experiment("e2e")
X, y = load_iris(return_X_y=True)
with mlflow.start_run() as run:
    model = LogisticRegression(max_iter=500).fit(X, y)
    mlflow.log_param("max_iter", 500)
    mlflow.log_metric("train_accuracy", float(model.score(X, y)))
    with open("/tmp/notes.txt", "w") as fh:
        fh.write("logged from a pod\n")
    mlflow.log_artifact("/tmp/notes.txt")
    info = mlflow.sklearn.log_model(model, name="model", serialization_format="pickle",
                                    registered_model_name="iris")
client = MlflowClient()
version = client.search_model_versions("name='iris'")[0].version
client.set_registered_model_alias("iris", "champion", version)
print(json.dumps({"run_id": run.info.run_id, "version": version}))
"""


@pytest.fixture(scope="module")
def logged_run(cohort: Cohort) -> dict[str, Any]:
    email = "ada@uni.edu"
    ns = cohort.namespaces[email]
    script = f"python - <<'EOF'\n{MLFLOW_SCRIPT}\nEOF"
    logs = run_pod(cohort.learner(email), ns, "log-run", MLFLOW_IMAGE, script)
    return {**last_json(logs), "namespace": ns}


def test_mlflow_answers_from_a_pod_and_the_run_is_visible_through_the_tracking_api(
    cohort: Cohort, logged_run: dict[str, Any]
) -> None:
    from mlflow import MlflowClient

    uri = f"http://{cluster_ip(cohort.admin, logged_run['namespace'], 'mlflow')}:5000"
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(logged_run["run_id"])
    assert run.data.params == {"max_iter": "500"}
    assert run.data.metrics["train_accuracy"] > 0.9
    assert "notes.txt" in [a.path for a in client.list_artifacts(run.info.run_id)]
    # The artifact went through the server's proxy into the learner's object store. (Read it
    # back the way the UI does: MLflow's client asks for a presigned URL, which names the
    # object store by its cluster DNS name, for pods.)
    with urllib.request.urlopen(f"{uri}/get-artifact?path=notes.txt&run_uuid={run.info.run_id}") as reply:
        assert reply.read() == b"logged from a pod\n"
    alias = client.get_model_version_by_alias(MODEL, "champion")
    assert alias.run_id == run.info.run_id and alias.version == logged_run["version"]
    # The other learner's MLflow is a separate server: the run is not there.
    other = cohort.namespaces["alan@uni.edu"]
    other_client = MlflowClient(tracking_uri=f"http://{cluster_ip(cohort.admin, other, 'mlflow')}:5000")
    assert [e.name for e in other_client.search_experiments()] == ["Default"]


DVC_PUSH = r"""
export DVC_NO_ANALYTICS=1 DVC_SITE_CACHE_DIR=/tmp/dvc-site; set -eu
mkdir -p /tmp/repo && cd /tmp/repo
dvc init --no-scm -q
python -c "open('data.csv','w').write('x,y\n' + ''.join(f'{i},{i*i}\n' for i in range(5000)))"
dvc add -q data.csv
dvc remote add -d store "s3://$DVC_BUCKET/e2e"
dvc remote modify store endpointurl "$AWS_ENDPOINT_URL"
dvc push
python - <<'EOF'
import hashlib, json
print(json.dumps({"md5": hashlib.md5(open("data.csv", "rb").read()).hexdigest(),
                  "dvc": open("data.csv.dvc").read(), "config": open(".dvc/config").read()}))
EOF
"""
DVC_PULL = r"""
export DVC_NO_ANALYTICS=1 DVC_SITE_CACHE_DIR=/tmp/dvc-site; set -eu
mkdir -p /tmp/checkout/.dvc && cd /tmp/checkout
cp /input/config .dvc/config && cp /input/data.csv.dvc data.csv.dvc
dvc pull
python - <<'EOF'
import hashlib, json
print(json.dumps({"md5": hashlib.md5(open("data.csv", "rb").read()).hexdigest()}))
EOF
"""


def test_dvc_push_from_a_pod_and_pull_into_a_fresh_checkout_get_the_same_hashes(cohort: Cohort) -> None:
    email = "alan@uni.edu"
    ns, kube = cohort.namespaces[email], cohort.learner(email)
    pushed = last_json(run_pod(kube, ns, "dvc-push", TOOLS_IMAGE, DVC_PUSH, secret_env=True))
    recorded = yaml.safe_load(pushed["dvc"])["outs"][0]["md5"]
    assert pushed["md5"] == recorded
    files = {"config": pushed["config"], "data.csv.dvc": pushed["dvc"]}
    pulled = last_json(run_pod(kube, ns, "dvc-pull", TOOLS_IMAGE, DVC_PULL, secret_env=True, files=files))
    assert pulled["md5"] == recorded


RULES = {
    "e2e.yaml": yaml.safe_dump({
        "groups": [{
            "name": "e2e",
            "rules": [{
                "alert": ALERT,
                "expr": 'up{pod=~"model-.*"} == 1',
                "labels": {"severity": "info"},
                "annotations": {"summary": "the model server is scraped"},
            }],
        }]
    })
}  # fmt: skip

FETCH_MODEL = r"""
import pathlib, shutil, mlflow
uri = "models:/iris@champion"
got = pathlib.Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path="/models/dl"))
mlmodel = got / "MLmodel" if (got / "MLmodel").is_file() else next(got.rglob("MLmodel"))
shutil.move(str(mlmodel.parent), "/models/model")
print("model at /models/model:", sorted(p.name for p in pathlib.Path("/models/model").iterdir()))
"""


def model_server(namespace: str) -> list[dict[str, Any]]:
    """A learner's model server: the registered model fetched by an init container, then served."""
    labels = {"app": "model"}
    mounts = [{"name": "models", "mountPath": "/models"}]
    return [
        {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "model", "namespace": namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"},
                    },
                    "spec": {
                        "securityContext": RESTRICTED_POD,
                        "initContainers": [container(
                            "fetch", MLFLOW_IMAGE, ["python", "-c", FETCH_MODEL], volumeMounts=mounts,
                            env=[{"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"},
                                 {"name": "HOME", "value": "/tmp"}],
                        )],
                        "containers": [container(
                            "server", MODEL_SERVER_IMAGE, ["python", "/opt/model-server/server.py"],
                            volumeMounts=mounts,
                            env=[{"name": "MODEL_PATH", "value": "/models/model"},
                                 {"name": "MODEL_NAME", "value": MODEL}],
                            ports=[{"name": "http", "containerPort": 8080}],
                            readinessProbe={"httpGet": {"path": f"/v1/models/{MODEL}", "port": 8080}},
                        )],
                        "volumes": [{"name": "models", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "model", "namespace": namespace},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]},
        },
    ]  # fmt: skip


@pytest.fixture(scope="module")
def served(cohort: Cohort, logged_run: dict[str, Any]) -> str:
    """Ada's model server Ready behind its Service, and her alert rule written; her namespace."""
    email = "ada@uni.edu"
    ns, kube = cohort.namespaces[email], cohort.learner(email)
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "alert-rules", "namespace": ns},
                "data": RULES})  # fmt: skip
    for obj in model_server(ns):
        kube.apply(obj)
    _wait(
        "the model server to be Available",
        lambda: condition_true(kube.get("apps/v1", "Deployment", "model", ns) or {}, "Available"),
        timeout=300,
    )
    return ns


def test_prometheus_scrapes_the_model_server_and_alertmanager_receives_the_learners_alert(
    cohort: Cohort, served: str
) -> None:
    prometheus = f"http://{cluster_ip(cohort.admin, served, 'prometheus')}:9090"
    alertmanager = f"http://{cluster_ip(cohort.admin, served, 'alertmanager')}:9093"

    def model_target_up() -> bool:
        targets = http_json(f"{prometheus}/api/v1/targets")["data"]["activeTargets"]
        return any(t["labels"].get("pod", "").startswith("model-") and t["health"] == "up" for t in targets)

    _wait("Prometheus to scrape the model server", model_target_up, timeout=180, every=5)
    # The rule file reaches the pod when the kubelet next syncs the ConfigMap (about a minute),
    # then the reloader reloads Prometheus, which evaluates and sends the alert.
    _wait(
        f"Alertmanager to receive {ALERT}",
        lambda: ALERT in [a["labels"].get("alertname") for a in http_json(f"{alertmanager}/api/v2/alerts")],
        timeout=420,
        every=5,
    )


PREDICT = r"""
import json
from graders.core import Context
from graders.endpoint import PredictParams, predict
params = PredictParams(url="http://model.{ns}.svc.cluster.local:8080", protocol="kserve-v1",
                       model="iris", data="/input/hidden.csv", label_column="label", metric="accuracy")
outcome = predict(Context(learner="ada", namespace="{ns}", timeout_s=60), params)
print(json.dumps({"passed": outcome.passed, "feedback": outcome.feedback, "evidence": outcome.evidence},
                 default=str))
"""


def hidden_test_set() -> str:
    from sklearn.datasets import load_iris

    data = load_iris()
    header = ",".join([f"f{i}" for i in range(data.data.shape[1])] + ["label"])
    pairs = zip(data.data, data.target, strict=True)
    rows = [",".join([*(f"{v:g}" for v in row), str(label)]) for row, label in pairs]
    return "\n".join([header, *rows[::5]]) + "\n"


def test_the_endpoint_predict_check_scores_the_real_model_server_through_its_service(
    cohort: Cohort, served: str
) -> None:
    script = PREDICT.replace("{ns}", served)
    files = {"hidden.csv": hidden_test_set(), "predict.py": script}
    logs = run_pod(
        cohort.learner("ada@uni.edu"),
        served,
        "grade-predict",
        TOOLS_IMAGE,
        "python /input/predict.py",
        files=files,
    )
    outcome = last_json(logs)
    assert outcome["passed"], outcome
    assert "accuracy" in outcome["feedback"], outcome


OUTSIDE_PLAN = """
lab: foundation/e2e-outside
passMark: 1.0
checks:
  - name: served
    check: endpoint.predict
    params: {service: model, port: 8080, model: iris, data: HIDDEN}
  - name: tracked
    check: mlflow.experiment
    params: {experiment: e2e, params: ["max_iter=500"], metrics: ["train_accuracy >= 0.9"]}
  - name: registered
    check: mlflow.registered_model
    params: {model: iris, alias: champion}
"""


def test_labctl_grade_from_outside_the_cluster_reaches_services_through_port_forwards(
    cohort: Cohort, served: str, logged_run: dict[str, Any], tmp_path: Path
) -> None:
    """As an instructor grades from a laptop: this host has no cluster DNS, so --reach auto
    port-forwards to the Services the checks name (model.<ns>.svc, mlflow.<ns>.svc)."""
    hidden = tmp_path / "hidden.csv"
    hidden.write_text(hidden_test_set())
    plan = tmp_path / "plan.yaml"
    plan.write_text(OUTSIDE_PLAN.replace("HIDDEN", str(hidden)))
    out = labctl(
        "grade", "--cohort", NAME, "--lab", "foundation/e2e-outside", "--plan", str(plan),
        "--learner", "ada@uni.edu", "-o", "json", "--kubeconfig", cohort.kubeconfig, env=cohort.env,
    ).stdout  # fmt: skip
    (graded,) = json.loads(out)
    results = {r["check"]: r for r in graded["results"]}
    assert graded["status"] == "passed", results
    assert "accuracy" in results["served"]["feedback"]
    assert results["registered"]["evidence"], results["registered"]


def test_learners_pods_ran_as_the_learner_not_as_admin(cohort: Cohort) -> None:
    """The pods above were created with the learner's kubeconfig: it cannot touch the other namespace."""
    ada = cohort.learner("ada@uni.edu")
    with pytest.raises(KubeError) as denied:
        ada.list("v1", "Pod", namespace=cohort.namespaces["alan@uni.edu"])
    assert denied.value.status == 403


def test_the_in_cluster_controller_runs_a_learners_model_in_a_pod_sandbox(cohort: Cohort) -> None:
    """`lab test` graded by the controller pod: a check that executes learner code (the logged model,
    re-scored on hidden data) runs it in a short-lived Pod of labctl-sandbox, chosen automatically
    (the controller's own process has no bubblewrap), and the lab is still proven honest."""
    kc = ["--kubeconfig", cohort.kubeconfig]
    labctl("lab", "publish", *kc, env=cohort.env, timeout=300)
    lab = "foundation/experiment-tracking"
    result = labctl(
        "lab", "test", lab, "--keep", "-o", "json", *kc, env=cohort.env, check=False, timeout=1800
    )  # fmt: skip
    rows = json.loads(result.stdout or "[]")
    table = "\n".join(f"  {r['stage']}: expected {r['expected']}, got {r['got']}" for r in rows)
    print(f"\n{lab} graded in-cluster:\n{table}")
    try:
        assert result.returncode == 0, f"{table}\n{result.stderr[-3000:]}"
        rescored = [
            (attempt["spec"]["email"], record)
            for attempt in cohort.admin.list("labctl.dev/v1alpha1", "GradeAttempt")
            if attempt["spec"]["lab"] == lab and attempt["spec"]["cohort"].startswith("lt-")
            for record in attempt["spec"]["results"]
            if record["check"] == "model-rescored"
        ]
        ran = {email: json.loads(r["evidence"]).get("sandbox", "") for email, r in rescored}
        solution = ran.get("solution@labtest.local", "")
        assert solution.startswith("pod labctl-sandbox/"), ran
        assert all(w == "" or w.startswith("pod labctl-sandbox/") for w in ran.values()), ran
        assert not cohort.admin.list("v1", "Pod", namespace="labctl-sandbox"), "a sandbox Pod was left"
    finally:
        for c in cohort.admin.list("labctl.dev/v1alpha1", "Cohort"):
            if c["metadata"]["name"].startswith("lt-"):
                labctl("cohort", "delete", c["metadata"]["name"], "--yes", *kc, env=cohort.env, check=False)


def test_delete_with_export_saves_each_learners_mlflow_and_object_store_first(
    cohort: Cohort, logged_run: dict[str, Any], tmp_path: Path
) -> None:
    """Last: the cohort goes. Its stacks' data is read through port-forwards first."""
    labctl(
        "cohort", "delete", NAME, "--yes", "--wait", "--export", str(tmp_path),
        "--kubeconfig", cohort.kubeconfig, env=cohort.env, timeout=900,
    )  # fmt: skip
    saved = tmp_path / NAME / "stacks"
    ada = saved / "ada@uni.edu"
    run_dirs = list((ada / "mlflow" / "experiments").glob(f"*/runs/{logged_run['run_id']}"))
    assert len(run_dirs) == 1, sorted(p.name for p in (ada / "mlflow").rglob("*"))[:40]
    run = json.loads((run_dirs[0] / "run.json").read_text())
    assert run["params"] == {"max_iter": "500"}
    assert (run_dirs[0] / "artifacts" / "notes.txt").read_text() == "logged from a pod\n"
    registry = json.loads((ada / "mlflow" / "registry" / f"{MODEL}.json").read_text())
    assert registry["aliases"] == {"champion": logged_run["version"]}
    # Alan's DVC push: the content-addressed files under his dvc bucket.
    pushed = [p for p in (saved / "alan@uni.edu" / "object-store" / "dvc").rglob("*") if p.is_file()]
    assert pushed, "no DVC objects exported"
    assert cohort.admin.get("labctl.dev/v1alpha1", "Cohort", NAME) is None
    for namespace in cohort.namespaces.values():
        assert cohort.admin.get("v1", "Namespace", namespace) is None
