"""endpoint.predict and endpoint.health against real model servers, one process per dataset.

Each server (tests/graders/model_servers.py) trains a scikit-learn model and serves KServe V1 and
MLflow scoring; a ``/<mode>`` path prefix makes it misbehave the way learners' servers do. The
hidden CSVs are the held-out rows of the same split. Service discovery, which needs a cluster,
is tested with a fake ``kube.get`` (pure logic).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from graders._endpoint_io import Reply
from graders._endpoint_scoring import f1, judge, percentile
from graders.core import Context, NoRoute, Status
from graders.endpoint import service_url
from graders.engine import CheckCall, run_check
from labctl.kube import KubeError
from tests.graders import model_servers
from tests.helpers.processes import free_port, server_process

SERVER = str(Path(model_servers.__file__))
DATASETS = {"iris": "iris", "breast_cancer": "cancer", "diabetes": "diabetes"}  # dataset -> model name


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """Base URL and hidden test set per dataset. The servers start in parallel, and the hidden
    CSVs (the rows each server never trained on) are written while they start: importing
    scikit-learn is the slow part of both."""
    ports = {dataset: free_port() for dataset in DATASETS}
    folder = tmp_path_factory.mktemp("hidden")
    with ExitStack() as stack:
        for dataset, model in DATASETS.items():
            cmd = [
                sys.executable,
                SERVER,
                "--dataset",
                dataset,
                "--model",
                model,
                "--port",
                str(ports[dataset]),
            ]
            stack.enter_context(server_process(cmd, ready=lambda: True))
        hidden = {d: str(model_servers.write_hidden_csv(d, folder / f"{d}.csv")) for d in DATASETS}
        deadline = time.monotonic() + 90
        while not all(model_servers.answering(port) for port in ports.values()):
            assert time.monotonic() < deadline, "model servers not ready after 90 s"
            time.sleep(0.2)
        yield {dataset: f"http://127.0.0.1:{port}" for dataset, port in ports.items()}, hidden


@pytest.fixture(scope="module")
def servers(lab: tuple[dict[str, str], dict[str, str]]) -> dict[str, str]:
    return lab[0]


@pytest.fixture(scope="module")
def hidden(lab: tuple[dict[str, str], dict[str, str]]) -> dict[str, str]:
    return lab[1]


def run(check: str, *, timeout_s: float = 30.0, context: Context | None = None, **params: Any) -> Any:
    return run_check(CheckCall(check, params, timeout_s=timeout_s, retries=0), context or Context())


def iris(servers: dict[str, str], hidden: dict[str, str], mode: str = "good", **params: Any) -> Any:
    base = {"url": f"{servers['iris']}/{mode}", "model": "iris", "data": hidden["iris"]}
    return run("endpoint.predict", **(base | params))


# -- endpoint.predict: the passing cases ----------------------------------------------------------


def test_good_kserve_server_passes_with_the_measured_figures(servers: Any, hidden: Any) -> None:
    result = iris(servers, hidden, latency_p95_ms=2000)
    assert result.status is Status.PASSED, result.feedback
    assert re.fullmatch(
        r"accuracy (0\.9\d*|1\.0) on 30 instances \(required at least 0\.8\); "
        r"p95 latency \d+ ms over 1 request; no errors\.",
        result.feedback,
    )
    evidence = result.evidence
    assert evidence["instances"] == evidence["scored"] == 30
    assert evidence["requests"] == 1 and evidence["errors"] == 0
    assert set(evidence["latency_ms"]) == {"p50", "p95", "p99"}


def test_good_mlflow_server_passes_in_batches(servers: Any, hidden: Any) -> None:
    result = run(
        "endpoint.predict", url=servers["iris"], protocol="mlflow", data=hidden["iris"], batch_size=8
    )
    assert result.status is Status.PASSED, result.feedback
    assert "over 4 requests; no errors." in result.feedback
    assert result.evidence["requests"] == 4 and result.evidence["scored"] == 30


@pytest.mark.parametrize("positive", [None, "1"])
def test_f1_binary_and_macro(servers: Any, hidden: Any, positive: str | None) -> None:
    params = {"url": servers["breast_cancer"], "model": "cancer", "data": hidden["breast_cancer"]}
    result = run("endpoint.predict", metric="f1", threshold=0.9, positive_label=positive, **params)
    assert result.status is Status.PASSED, result.feedback
    assert re.match(r"f1 (0\.9\d*|1\.0) on 30 instances \(required at least 0\.9\)", result.feedback)


def test_rmse_is_lower_better(servers: Any, hidden: Any) -> None:
    params = {"url": servers["diabetes"], "model": "diabetes", "data": hidden["diabetes"], "metric": "rmse"}
    passed = run("endpoint.predict", threshold=80, **params)
    assert passed.status is Status.PASSED, passed.feedback
    assert re.match(r"rmse \d+(\.\d+)? on 30 instances \(required at most 80\.0\)", passed.feedback)
    failed = run("endpoint.predict", threshold=20, **params)
    assert failed.status is Status.FAILED
    assert re.fullmatch(r"rmse \d+(\.\d+)? is above the allowed 20\.0\.", failed.feedback)


# -- endpoint.predict: each way a learner's server goes wrong -------------------------------------


def test_wrong_answers_fail_on_the_metric(servers: Any, hidden: Any) -> None:
    result = iris(servers, hidden, "wrong")
    assert result.status is Status.FAILED
    assert re.fullmatch(r"accuracy 0(\.\d+)? is below the required 0\.8\.", result.feedback)
    assert result.evidence["value"] < 0.2


def test_wrong_regression_answers_fail_on_rmse(servers: Any, hidden: Any) -> None:
    params = {"model": "diabetes", "data": hidden["diabetes"], "metric": "rmse", "threshold": 80}
    result = run("endpoint.predict", url=f"{servers['diabetes']}/wrong", **params)
    assert result.status is Status.FAILED
    assert re.fullmatch(r"rmse \d+(\.\d+)? is above the allowed 80\.0\.", result.feedback)


def test_slow_server_fails_the_latency_budget(servers: Any, hidden: Any) -> None:
    result = iris(servers, hidden, "slow", latency_p95_ms=200)
    assert result.status is Status.FAILED
    assert re.fullmatch(
        r"p95 latency (3\d\d|[4-9]\d\d|\d{4,}) ms exceeds the 200 ms budget\.", result.feedback
    )
    assert result.evidence["value"] >= 0.9  # right answers, just too slow


def test_request_timeout_counts_as_an_error(servers: Any, hidden: Any) -> None:
    result = iris(servers, hidden, "slow", request_timeout_s=0.1)
    assert result.status is Status.FAILED
    assert result.feedback == (f"POST {servers['iris']}/slow/v1/models/iris:predict timed out after 0.1 s.")
    assert result.evidence["error_rate"] == 1.0 and result.evidence["scored"] == 0


def test_check_deadline_stops_sending(servers: Any, hidden: Any) -> None:
    started = time.monotonic()
    result = run(
        "endpoint.predict",
        timeout_s=0.5,
        url=f"{servers['iris']}/slow",
        model="iris",
        data=hidden["iris"],
        batch_size=5,
    )
    assert time.monotonic() - started < 1.5
    assert result.status is Status.FAILED
    assert result.evidence["requests"] == 6 and result.evidence["errors"] >= 4
    assert any("were used up" in sample for sample in result.evidence["error_samples"])


def test_flaky_server_fails_on_error_rate(servers: Any, hidden: Any) -> None:
    result = iris(servers, hidden, "flaky", batch_size=5)  # 6 requests, every third one a 503
    assert result.status is Status.FAILED
    assert result.feedback.startswith(
        "2 of 6 requests failed (error rate 33%, at most 0% allowed); "
        f"first: HTTP 503 from POST {servers['iris']}/flaky/v1/models/iris:predict: "
        '{"error": "model worker restarting"}'
    )
    assert "accuracy" not in result.feedback  # the answered 24 instances score fine
    assert result.evidence["errors"] == 2 and result.evidence["scored"] == 20


def test_flaky_server_passes_within_the_tolerated_error_rate(servers: Any, hidden: Any) -> None:
    result = iris(servers, hidden, "flaky", batch_size=5, max_error_rate=0.4)
    assert result.status is Status.PASSED, result.feedback
    assert result.feedback.endswith("over 6 requests; 2 of 6 requests failed (tolerated).")


def test_malformed_json_is_an_error(servers: Any, hidden: Any) -> None:
    result = iris(servers, hidden, "malformed")
    assert result.status is Status.FAILED
    assert result.feedback.startswith(
        "1 of 1 requests failed (error rate 100%, at most 0% allowed); "
        f"first: malformed response from POST {servers['iris']}/malformed/v1/models/iris:predict (not JSON: "
    )


def test_probabilities_instead_of_labels_fail_the_schema(servers: Any, hidden: Any) -> None:
    result = run(
        "endpoint.predict", url=f"{servers['iris']}/wrong-shape", protocol="mlflow", data=hidden["iris"]
    )
    assert result.status is Status.FAILED
    assert result.feedback == "prediction 0 is a list of 3 values (class probabilities?), not a class label."


def test_one_prediction_short_fails_the_schema(servers: Any, hidden: Any) -> None:
    result = iris(servers, hidden, "wrong-count")
    assert result.status is Status.FAILED
    assert result.feedback == "returned 29 predictions for 30 instances."
    batched = iris(servers, hidden, "wrong-count", batch_size=8)
    assert batched.feedback == "returned 7 predictions for 8 instances (in 4 of 4 requests)."


def test_wrong_model_name_is_a_404(servers: Any, hidden: Any) -> None:
    result = iris(servers, hidden, model="irsi")
    assert result.status is Status.FAILED
    assert f"first: HTTP 404 from POST {servers['iris']}/good/v1/models/irsi:predict" in result.feedback


@pytest.mark.parametrize("check", ["endpoint.predict", "endpoint.health"])
def test_unreachable_endpoint_fails_with_feedback(hidden: Any, check: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    params = {"data": hidden["iris"]} if check == "endpoint.predict" else {}
    result = run(check, url=url, model="iris", **params)
    assert result.status is Status.FAILED
    assert result.feedback.startswith(f"connection refused at {url}: is your model server running")


def test_checks_connect_through_the_contexts_reach_and_show_the_url_as_written(
    servers: Any, hidden: Any
) -> None:
    """A Service's cluster DNS name, reached as labctl grade --reach port-forward reaches it."""
    written = "http://model.c1-ada.svc.cluster.local:8080"
    real = urlsplit(servers["iris"])

    def reach(url: str) -> str:
        parts = urlsplit(url)
        return (
            urlunsplit(parts._replace(netloc=real.netloc))
            if parts.hostname == "model.c1-ada.svc.cluster.local"
            else url
        )

    def predict(mode: str) -> Any:
        params = {"url": f"{written}/{mode}", "model": "iris", "data": hidden["iris"]}
        return run("endpoint.predict", context=Context(reach=reach), **params)

    ok = predict("good")
    assert ok.status is Status.PASSED, ok.feedback
    bad = predict("irsi")
    assert f"from POST {written}/irsi/v1/models/iris:predict" in bad.feedback  # not the local address

    def no_route(url: str) -> str:
        raise NoRoute("Service c1-ada/model has no ready pod behind port 8080")

    result = run("endpoint.health", url=written, model="iris", context=Context(reach=no_route))
    assert result.status is Status.FAILED  # the learner's Service: their failure, not an error
    assert result.feedback == (
        f"could not connect to {written}: Service c1-ada/model has no ready pod behind port 8080"
    )


# -- the grader's own problems are errors, not failures ------------------------------------------


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"protocol": "grpc"}, "protocol: Input should be 'kserve-v1' or 'mlflow'"),
        ({"model": None}, "protocol kserve-v1 needs the model name"),
        ({"service": "model"}, "give exactly one of url or service"),
        ({"metric": "rmse"}, "metric rmse needs a threshold"),
        ({"threshold": 80}, "threshold for accuracy must be between 0 and 1"),
        ({"data": "/nonexistent/hidden.csv"}, "data: Path does not point to a file"),
        ({"batch_size": 0}, "batch_size: Input should be greater than or equal to 1"),
        ({"url": "127.0.0.1:8080"}, "expected an http:// or https:// URL"),
        ({"retries": 3}, "retries: Extra inputs are not permitted"),
    ],
)
def test_bad_params_are_engine_errors(hidden: Any, params: dict[str, Any], problem: str) -> None:
    base = {"url": "http://127.0.0.1:9", "model": "iris", "data": hidden["iris"]}
    result = run("endpoint.predict", **{k: v for k, v in (base | params).items() if v is not None})
    assert result.status is Status.ERROR
    assert result.feedback.startswith("check endpoint.predict: bad parameters: ")
    assert problem in result.feedback


def test_unreadable_hidden_data_is_a_grader_error(tmp_path: Path) -> None:
    data = tmp_path / "hidden.csv"
    data.write_text("a,b,target\n1,2,0\n")
    result = run("endpoint.predict", url="http://127.0.0.1:9", model="iris", data=str(data))
    assert result.status is Status.ERROR
    assert result.feedback == f"grader error: hidden data {data}: no 'label' column in the header"


# -- endpoint.health ------------------------------------------------------------------------------


def test_health_kserve_ready(servers: Any) -> None:
    result = run("endpoint.health", url=servers["iris"], model="iris")
    assert result.status is Status.PASSED, result.feedback
    assert re.fullmatch(rf"GET {servers['iris']}/v1/models/iris answered 200 in \d+ ms\.", result.feedback)


def test_health_kserve_not_ready(servers: Any) -> None:
    result = run("endpoint.health", url=f"{servers['iris']}/flaky", model="iris")
    assert result.status is Status.FAILED
    assert result.feedback == (
        f"model 'iris' is not ready: GET {servers['iris']}/flaky/v1/models/iris answered "
        '{"name": "iris", "ready": false}'
    )


def test_health_kserve_unknown_model(servers: Any) -> None:
    result = run("endpoint.health", url=servers["iris"], model="irsi")
    assert result.status is Status.FAILED
    assert result.feedback.startswith(
        f"GET {servers['iris']}/v1/models/irsi returned HTTP 404: is the model named 'irsi'?"
    )


def test_health_mlflow(servers: Any) -> None:
    good = run("endpoint.health", url=servers["diabetes"], protocol="mlflow")
    assert good.status is Status.PASSED, good.feedback
    assert good.feedback.startswith(f"GET {servers['diabetes']}/ping answered 200")
    down = run("endpoint.health", url=f"{servers['diabetes']}/flaky", protocol="mlflow")
    assert down.status is Status.FAILED
    assert down.feedback.startswith(f"GET {servers['diabetes']}/flaky/ping returned HTTP 503")


# -- service discovery (pure logic over a fake ``kube.get``) --------------------------------------


class FakeKube:
    def __init__(self, services: dict[tuple[str, str], dict[str, Any]], *, fail: bool = False) -> None:
        self.services, self.fail = services, fail
        self.calls: list[tuple[str, ...]] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        self.calls.append((api_version, kind, name, namespace or ""))
        if self.fail:
            raise KubeError(
                "get v1/Service alice/model: the server is currently unable to handle the request"
            )
        return self.services.get((namespace or "", name))


def _service(*ports: int) -> dict[str, Any]:
    return {"spec": {"ports": [{"name": f"p{port}", "port": port, "targetPort": 8080} for port in ports]}}


def test_service_url_from_the_learners_service() -> None:
    kube = FakeKube({("alice", "model"): _service(80)})
    assert service_url(kube, "alice", "model", None) == "http://model.alice.svc.cluster.local:80"
    assert service_url(kube, "alice", "model", 80) == "http://model.alice.svc.cluster.local:80"
    assert kube.calls[0] == ("v1", "Service", "model", "alice")


@pytest.mark.parametrize(
    ("services", "port", "feedback"),
    [
        ({}, 80, "Service 'model' not found in namespace 'alice': create a Service that selects"),
        (
            {("alice", "model"): _service(80)},
            9000,
            "Service 'model' does not expose port 9000 (it exposes 80)",
        ),
        (
            {("alice", "model"): _service(80, 443)},
            None,
            "Service 'model' exposes 80, 443; expected exactly one",
        ),
        ({("bob", "model"): _service(80)}, 80, "Service 'model' not found in namespace 'alice'"),
    ],
)
def test_service_problems_are_the_learners(
    hidden: Any, services: dict[tuple[str, str], dict[str, Any]], port: int | None, feedback: str
) -> None:
    ctx = Context(learner="alice", namespace="alice", kube=FakeKube(services))
    params: dict[str, Any] = {"service": "model", "model": "iris"} | ({"port": port} if port else {})
    for check, extra in (("endpoint.predict", {"data": hidden["iris"]}), ("endpoint.health", {})):
        result = run(check, context=ctx, **params, **extra)
        assert result.status is Status.FAILED, result.feedback
        assert result.feedback.startswith(feedback)


def test_service_lookup_trouble_is_a_grader_error(hidden: Any) -> None:
    failing = Context(namespace="alice", kube=FakeKube({}, fail=True))
    result = run("endpoint.health", context=failing, service="model", model="iris")
    assert result.status is Status.ERROR
    assert result.feedback.startswith("grader error: could not read Service alice/model: ")
    no_cluster = run("endpoint.health", context=Context(namespace="alice"), service="model", model="iris")
    assert no_cluster.status is Status.ERROR
    assert "needs a cluster connection" in no_cluster.feedback


# -- pure scoring logic ---------------------------------------------------------------------------


def test_f1_agrees_with_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    labels = [0, 1, 2, 2, 1, 0, 1, 2, 0, 0, 1, 1]
    predictions = [0, 2, 2, 2, 1, 0, 0, 1, 0, 1, 1, 1]
    keys = [float(v) for v in labels]
    answers = [float(v) for v in predictions]
    assert f1(answers, keys, None) == pytest.approx(f1_score(labels, predictions, average="macro"))
    binary_labels = [v % 2 for v in labels]
    binary_predictions = [v % 2 for v in predictions]
    assert f1(
        [float(v) for v in binary_predictions], [float(v) for v in binary_labels], 1.0
    ) == pytest.approx(f1_score(binary_labels, binary_predictions))


def test_percentile_is_nearest_rank() -> None:
    times = [float(v) for v in range(1, 101)]
    assert (percentile(times, 50), percentile(times, 95), percentile(times, 99)) == (50.0, 95.0, 99.0)
    assert percentile([7.0], 95) == 7.0


@pytest.mark.parametrize(
    ("body", "protocol", "expected"),
    [
        (b"[0, 1]", "mlflow", [0.0, 1.0]),
        (b'{"predictions": [[1], [0]]}', "kserve-v1", [1.0, 0.0]),
        (b'{"predictions": [{"label": "setosa"}, {"label": "2"}]}', "mlflow", ["setosa", 2.0]),
        (b"[0, 1]", "kserve-v1", 'expected {"predictions": [...]}, got a list of 2 values'),
        (b'{"outputs": [0, 1]}', "mlflow", "or a JSON list, got an object with keys outputs"),
        (b'{"predictions": [0, true]}', "kserve-v1", "prediction 1 is true, not a class label"),
    ],
)
def test_judge_reads_each_answer_shape(body: bytes, protocol: Any, expected: Any) -> None:
    batch = judge(Reply(200, body, 1.0), 2, first=0, protocol=protocol, numeric=False, where="POST x")
    if isinstance(expected, list):
        assert batch.predictions == expected
    else:
        assert expected in (batch.error or batch.schema)


# -- the same checks from the command line: `labctl check run` -------------------------------------


def check_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labctl.cli", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_run_prints_the_result_and_exits_by_status(servers: Any, hidden: Any) -> None:
    common = ["-p", "model=iris", "-p", f"data={hidden['iris']}", "-p", "threshold=0.8", "-o", "json"]
    good = check_cli("run", "endpoint.predict", "-p", f"url={servers['iris']}/good", *common)
    assert good.returncode == 0, good.stderr
    result = json.loads(good.stdout)
    assert {"check", "passed", "points", "max_points", "feedback", "evidence", "status"} <= set(result)
    assert (result["check"], result["status"], result["passed"]) == ("endpoint.predict", "passed", True)
    wrong = check_cli("run", "endpoint.predict", "-p", f"url={servers['iris']}/wrong", *common)
    assert wrong.returncode == 1
    assert "is below the required 0.8" in json.loads(wrong.stdout)["feedback"]
    table = check_cli("run", "endpoint.predict", "-p", f"url={servers['iris']}/wrong", *common[:-2])
    assert "endpoint.predict: failed" in table.stdout


def test_check_run_refuses_unknown_checks_and_bad_parameters(hidden: Any) -> None:
    unknown = check_cli("run", "endpoint.predictt", "-p", "url=http://127.0.0.1:1")
    assert unknown.returncode == 2
    assert (
        "unknown check 'endpoint.predictt'; checks of that kind: endpoint.health, endpoint.predict"
        in unknown.stderr
    )
    bad = check_cli(
        "run",
        "endpoint.predict",
        "-p",
        "url=http://127.0.0.1:1",
        "-p",
        f"data={hidden['iris']}",
        "-p",
        "threshold=high",
    )
    assert bad.returncode == 2
    assert "threshold: Input should be a valid number" in bad.stderr


def test_check_list_shows_every_check_with_typed_parameters() -> None:
    listed = {c["check"]: c for c in json.loads(check_cli("list", "-o", "json").stdout)}
    assert {
        "endpoint.predict",
        "mlflow.experiment",
        "dvc.remote_complete",
        "prometheus.drift_alert",
        "kube.pod_placement",
    } <= set(listed)
    params = {p["name"]: p for p in listed["endpoint.predict"]["params"]}
    assert params["threshold"]["type"] == "float | None" and not params["threshold"]["required"]
    assert params["data"]["required"]
