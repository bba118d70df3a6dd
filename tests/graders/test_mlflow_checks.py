"""``mlflow.experiment`` and ``mlflow.registered_model`` against a real ``mlflow server``.

The learner's work (see :mod:`tests.graders.mlflow_fixtures`) is done once per module through
the MLflow client; each test grades it with other requirements, through the engine.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from graders.core import CheckResult, Context, GraderError, Status
from graders.engine import CheckCall, run_check
from graders.mlflow_checks import Mlflow, RegisteredModelParams
from tests.graders.mlflow_fixtures import STALE_HASH, LearnerMlflow, healthy, learner_mlflow
from tests.helpers.processes import free_port


@pytest.fixture(scope="module")
def learner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LearnerMlflow]:
    with learner_mlflow(tmp_path_factory.mktemp("mlflow")) as stack:
        yield stack


def grade(check: str, uri: str, *, timeout_s: float = 30.0, **params: Any) -> CheckResult:
    """Run ``check`` through the engine, as grading does."""
    return run_check(CheckCall(check, {"tracking_uri": uri, **params}, timeout_s=timeout_s), Context())


def short(run: dict[str, Any]) -> str:
    return f"'{run['name']}' ({run['run_id'][:8]})"


# -- mlflow.experiment ----------------------------------------------------------------------------


def test_experiment_passes_with_its_best_run(learner: LearnerMlflow) -> None:
    best = learner.run(0.3)
    result = grade(
        "mlflow.experiment",
        learner.uri,
        experiment="iris",
        min_runs=3,
        params=["C", "max_iter=500.0", f"data_hash={learner.work['data_hash']}"],
        metrics=["accuracy >= 0.9", {"metric": "f1_macro", "op": ">", "value": 0.9}],
        artifacts=["eval/confusion_matrix.json", "model", "model/MLmodel"],
    )
    assert result.status is Status.PASSED, result.feedback
    assert result.feedback == (
        f"Experiment 'iris' has 3 finished runs; the best, {short(best)},"
        f" has accuracy {best['accuracy']:.4g}."
    )
    assert result.evidence["best_run"] == best["run_id"]
    assert result.evidence["other_runs"] == 1  # the failed run is not counted
    assert "logged model 'model'" in result.evidence["artifacts"]


def test_missing_experiment_fails_with_a_suggestion(learner: LearnerMlflow) -> None:
    result = grade("mlflow.experiment", learner.uri, experiment="Iris")
    assert result.status is Status.FAILED
    assert result.feedback == "Experiment 'Iris' does not exist on your MLflow server; did you mean 'iris'?"
    result = grade("mlflow.experiment", learner.uri, experiment="wine")
    assert (
        result.feedback == "Experiment 'wine' does not exist on your MLflow server"
        " (mlflow.set_experiment('wine') creates it)."
    )


def test_too_few_finished_runs_fail(learner: LearnerMlflow) -> None:
    result = grade("mlflow.experiment", learner.uri, experiment="iris", min_runs=4)
    assert result.status is Status.FAILED
    assert result.feedback == (
        "Experiment 'iris' has 3 finished runs; at least 4 are required"
        " (1 more is still running, failed or killed)."
    )
    assert result.evidence["finished_runs"] == 3


def test_best_run_under_the_threshold_fails(learner: LearnerMlflow) -> None:
    best = learner.run(0.3)
    result = grade("mlflow.experiment", learner.uri, experiment="iris", metrics=["accuracy >= 0.97"])
    assert result.status is Status.FAILED
    assert result.feedback == (
        f"The best run, {short(best)}, has accuracy {best['accuracy']:.4g}; at least 0.97 is required."
    )


def test_every_run_must_pass_when_asked(learner: LearnerMlflow) -> None:
    weak = learner.run(0.001)
    result = grade(
        "mlflow.experiment", learner.uri, experiment="iris", metrics=["accuracy>=0.9"], scope="every"
    )
    assert result.status is Status.FAILED
    assert result.feedback == (
        f"1 of 3 finished runs miss accuracy >= 0.9: run {short(weak)} has accuracy {weak['accuracy']:.4g}."
    )
    passing = grade(
        "mlflow.experiment", learner.uri, experiment="iris", metrics=["accuracy > 0.7"], scope="every"
    )
    assert passing.status is Status.PASSED, passing.feedback


def test_lower_is_better_picks_the_lowest(learner: LearnerMlflow) -> None:
    weak = learner.run(0.001)
    result = grade(
        "mlflow.experiment",
        learner.uri,
        experiment="iris",
        best_by="accuracy",
        best_is="min",
        metrics=["accuracy >= 0.9"],
    )
    assert result.status is Status.FAILED
    assert f"The best run, {short(weak)}, has accuracy {weak['accuracy']:.4g}" in result.feedback


def test_missing_metric_and_wrong_params_fail(learner: LearnerMlflow) -> None:
    best = learner.run(0.3)
    result = grade(
        "mlflow.experiment",
        learner.uri,
        experiment="iris",
        params=["n_estimators", "data_hash=deadbeef"],
        metrics=["accuracy >= 0.9", "rmse <= 0.5"],
    )
    assert result.status is Status.FAILED
    subject = f"The best run, {short(best)},"
    assert result.feedback == (
        f"{subject} has no param 'n_estimators'; log it with mlflow.log_param. "
        f"{subject} has param data_hash='{learner.work['data_hash']}'; expected 'deadbeef'. "
        f"{subject} has no metric 'rmse'; log it with mlflow.log_metric."
    )
    nobody = grade("mlflow.experiment", learner.uri, experiment="iris", metrics=["rmse <= 0.5"])
    assert nobody.feedback == "No finished run of experiment 'iris' has the metric 'rmse'."


def test_missing_artifact_fails_naming_what_is_there(learner: LearnerMlflow) -> None:
    best = learner.run(0.3)
    result = grade(
        "mlflow.experiment",
        learner.uri,
        experiment="iris",
        metrics=["accuracy >= 0.9"],
        artifacts=["model/MLmodel", "plots/roc.png", "model/weights.bin"],
    )
    assert result.status is Status.FAILED
    assert result.feedback == (
        f"The best run, {short(best)}, has no artifact 'plots/roc.png' or 'model/weights.bin'"
        " (it has eval/, logged model 'model')."
    )
    assert result.evidence["missing_artifacts"] == ["plots/roc.png", "model/weights.bin"]


# -- mlflow.registered_model ----------------------------------------------------------------------


def test_registered_model_passes(learner: LearnerMlflow) -> None:
    result = grade(
        "mlflow.registered_model",
        learner.uri,
        model="iris-clf",
        min_versions=2,
        alias="champion",
        required_tags=["validated"],
        expected_tags={"validated": "true"},
        tags_from_run_params={"data_hash": "data_hash"},
        run_metrics=["accuracy >= 0.9"],
    )
    assert result.status is Status.PASSED, result.feedback
    assert (
        result.feedback
        == "Model 'iris-clf' has 2 versions; alias 'champion' points at version 2, which passes."
    )
    assert result.evidence["run_id"] == learner.run(0.3)["run_id"]
    assert result.evidence["aliases"] == {"champion": 2}


def test_missing_model_fails_with_a_suggestion(learner: LearnerMlflow) -> None:
    result = grade("mlflow.registered_model", learner.uri, model="iris-classifier")
    assert result.status is Status.FAILED
    assert (
        result.feedback
        == "No model named 'iris-classifier' is registered on your MLflow server; did you mean 'iris-clf'?"
    )


def test_too_few_versions_and_missing_alias_fail(learner: LearnerMlflow) -> None:
    result = grade(
        "mlflow.registered_model", learner.uri, model="iris-clf", min_versions=3, alias="production"
    )
    assert result.status is Status.FAILED
    assert result.feedback == (
        "Model 'iris-clf' has 2 versions; at least 3 are required. "
        "Alias 'production' is not set on model 'iris-clf' (its aliases: champion)."
    )


def test_wrong_expected_lineage_tag_fails(learner: LearnerMlflow) -> None:
    result = grade(
        "mlflow.registered_model",
        learner.uri,
        model="iris-clf",
        alias="champion",
        expected_tags={"data_hash": "def"},
        tag_hints={"data_hash": "the DVC hash of data/iris.csv"},
    )
    assert result.status is Status.FAILED
    assert result.feedback == (
        f"Version 2's tag data_hash is '{learner.work['data_hash']}', expected 'def'"
        " (the DVC hash of data/iris.csv)."
    )


def test_stale_lineage_tag_and_weak_source_run_fail(learner: LearnerMlflow) -> None:
    source = learner.run(0.03)
    result = grade(
        "mlflow.registered_model",
        learner.uri,
        model="iris-clf",
        version=1,
        required_tags=["validated"],
        tags_from_run_params={"data_hash": "data_hash"},
        run_metrics=["accuracy >= 0.95"],
    )
    assert result.status is Status.FAILED
    assert result.feedback == (
        "Version 1 has no tag validated. "
        f"Version 1's source run, {short(source)}, has accuracy {source['accuracy']:.4g};"
        " at least 0.95 is required. "
        f"Version 1's tag data_hash is '{STALE_HASH}', expected '{learner.work['data_hash']}',"
        " the param data_hash of its source run."
    )


def test_version_whose_run_was_deleted_fails(learner: LearnerMlflow) -> None:
    result = grade("mlflow.registered_model", learner.uri, model="iris-orphan")
    assert result.status is Status.FAILED
    assert result.feedback == (
        f"Version 1 has no source run: its source run {learner.work['orphan_run_id']} no longer exists"
        " (log and register the model inside a run)."
    )
    lenient = grade("mlflow.registered_model", learner.uri, model="iris-orphan", require_run=False)
    assert lenient.status is Status.PASSED, lenient.feedback


# -- our side's trouble ---------------------------------------------------------------------------


@pytest.mark.parametrize("check", ["mlflow.experiment", "mlflow.registered_model"])
def test_unreachable_server_is_an_error(check: str) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there: refused, like a stopped server
    started = time.monotonic()
    result = (
        grade(check, uri, experiment="iris") if check == "mlflow.experiment" else grade(check, uri, model="m")
    )
    assert result.status is Status.ERROR
    assert f"cannot connect to the MLflow tracking server at {uri}" in result.feedback
    assert result.attempts == 3  # refused is transient: retried, then reported
    assert time.monotonic() - started < 5


def test_hung_server_is_an_error_within_the_request_timeout(learner: LearnerMlflow) -> None:
    """The real server, SIGSTOPped: connections are accepted by the kernel but never answered."""
    pgid = os.getpgid(learner.proc.pid)
    os.killpg(pgid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = grade("mlflow.experiment", learner.uri, experiment="iris", request_timeout_s=1.5)
        elapsed = time.monotonic() - started
    finally:
        os.killpg(pgid, signal.SIGCONT)
    assert result.status is Status.ERROR
    assert "did not answer GET experiments/get-by-name" in result.feedback
    assert elapsed < 5
    deadline = time.monotonic() + 30
    while not healthy(learner.uri):  # leave it serving for the other tests
        assert time.monotonic() < deadline, "the server did not recover from SIGSTOP"
        time.sleep(0.1)


def test_http_error_from_the_server_is_an_error() -> None:
    """Something that is not MLflow answering 404 for the API: our configuration, not the learner."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        reply = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(reply)

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        result = grade("mlflow.experiment", uri, experiment="iris")
        thread.join(timeout=5)
    assert result.status is Status.ERROR
    assert result.feedback == (
        f"grader error: the MLflow tracking server at {uri}"
        " answered GET experiments/get-by-name?experiment_name=iris with 404: Not Found"
    )


# -- parameters -----------------------------------------------------------------------------------


def test_namespace_is_substituted_into_the_tracking_uri() -> None:
    params = RegisteredModelParams(model="m")
    assert Mlflow(params, Context(namespace="learner-7")).uri == "http://mlflow.learner-7.svc:5000"
    with pytest.raises(GraderError, match="needs the learner's namespace"):
        Mlflow(params, Context())


@pytest.mark.parametrize(
    ("check", "params", "problem"),
    [
        (
            "mlflow.experiment",
            {"experiment": "iris", "metrics": ["accuracy ~ 0.9"]},
            "expected 'metric >= value'",
        ),
        (
            "mlflow.experiment",
            {"experiment": "iris", "artifacts": ["../etc/passwd"]},
            "a path inside the run",
        ),
        (
            "mlflow.registered_model",
            {"model": "m", "alias": "a", "version": 1},
            "at most one of alias or version",
        ),
        ("mlflow.registered_model", {"model": "m", "tracking_uri": "mlflow:5000"}, "http:// or https:// URL"),
    ],
)
def test_bad_parameters_are_refused(check: str, params: dict[str, Any], problem: str) -> None:
    result = run_check(CheckCall(check, params), Context())
    assert result.status is Status.ERROR
    assert "bad parameters" in result.feedback and problem in result.feedback
