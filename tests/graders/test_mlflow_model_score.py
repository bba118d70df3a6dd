"""``mlflow.model_score`` (and ``since`` on the other mlflow checks) against a real ``mlflow server``.

The learner's work is :func:`learner_work`, run once per module as ``python -m
tests.graders.test_mlflow_model_score <uri> <trap>`` in a process of its own, through the MLflow
client as a learner would (the test process never loads MLflow or scikit-learn). It also writes
the instructor's hidden test set: the iris rows held out of the learner's training, with labels.

- experiment ``old-work``: one honest run from before the session started (``session_start``).
- experiment ``iris``: runs C=0.03 and C=0.3 (accuracy on the held-out rows about 0.93 and
  0.96, logged honestly), each ``log_model(name="model")`` (MLflow 3 logged models), registered
  as ``iris-scored`` versions 1 and 2, alias ``champion`` on version 2.
- experiment ``iris-mlflow2``: the model saved and logged as a run's artifact folder ``model/``.
- experiment ``gaming``: a C=0.001 model (about 0.71) that logged accuracy 0.99.
- experiment ``constant``: a most-frequent-class model, its true accuracy logged.
- experiment ``hostile``: a pickled model that, when loaded, reads a file planted in the grader's
  home and the hidden labels, writes outside its folder and connects to a listener on the
  grader's loopback; it raises with whatever it read, predicts the labels if it read them (or
  if they came with the features).
- experiment ``no-model``: a run with metrics and no model.
- experiment ``broken``: a model that imports a library the grader's environment lacks.
- model ``old-clf``: registered from the run before the session.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from graders.core import CheckResult, Context, Status
from graders.engine import CheckCall, run_check
from tests.graders.mlflow_fixtures import PYTHON, QUIET, REPO, STARTUP_S, healthy, server_command
from tests.helpers.processes import free_port, server_process

TIMEOUT_S = 120.0  # per check: loading MLflow in the sandbox takes seconds on a loaded machine


@dataclass(frozen=True)
class Trap:
    """What the hostile model reaches for: a planted secret, a listener, places to write."""

    planted: Path
    secret: str
    listener: socket.socket
    escapes: tuple[Path, ...]

    def spec(self, hidden: Path) -> str:
        return json.dumps(
            {
                "planted": str(self.planted),
                "hidden": str(hidden),
                "port": self.listener.getsockname()[1],
                "escapes": [str(p) for p in self.escapes],
            }
        )


@dataclass(frozen=True)
class Learner:
    uri: str
    hidden: Path
    work: dict[str, Any]
    trap: Trap

    def run(self, name: str) -> dict[str, Any]:
        return self.work["runs"][name]

    @property
    def since(self) -> str:
        return str(self.work["session_start"])


@pytest.fixture(scope="module")
def trap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trap]:
    token = secrets.token_hex(8)
    planted = Path.home() / f".labctl-planted-{token}"
    escapes = (Path.home() / f".labctl-escaped-{token}", tmp_path_factory.mktemp("grader") / "escaped")
    planted.write_text(f"SECRET-{token}")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        try:
            yield Trap(planted, f"SECRET-{token}", listener, escapes)
        finally:
            for path in (planted, *escapes):
                path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def learner(tmp_path_factory: pytest.TempPathFactory, trap: Trap) -> Iterator[Learner]:
    tmp = tmp_path_factory.mktemp("mlflow-score")
    hidden = tmp / "hidden" / "test.csv"
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {**os.environ, **QUIET, "MLFLOW_TRACKING_URI": uri}
    with (tmp / "server.log").open("wb") as log, (tmp / "learner.log").open("wb") as learner_log:
        ready = lambda: healthy(uri)  # noqa: E731
        with server_process(
            server_command(tmp, port), ready=ready, timeout=STARTUP_S, env=env, cwd=tmp, log=log
        ):
            done = subprocess.run(
                [
                    str(PYTHON),
                    "-m",
                    "tests.graders.test_mlflow_model_score",
                    uri,
                    str(hidden),
                    trap.spec(hidden),
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=learner_log,
                timeout=STARTUP_S,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"the learner's script failed; see {tmp / 'learner.log'}")
            yield Learner(uri, hidden, json.loads(done.stdout.decode().strip().splitlines()[-1]), trap)


def grade(check: str, learner: Learner, **params: Any) -> CheckResult:
    """Run ``check`` through the engine, as grading does."""
    if check == "mlflow.model_score":
        params = {"data": str(learner.hidden), **params}
    call = CheckCall(check, {"tracking_uri": learner.uri, **params}, timeout_s=TIMEOUT_S, retries=0)
    return run_check(call, Context())


def short(run: dict[str, Any]) -> str:
    return f"'{run['name']}' ({run['run_id'][:8]})"


def score(value: float) -> str:
    return f"{value:.4g}"


# -- mlflow.model_score: which model ------------------------------------------------------------


def test_honest_best_run_passes(learner: Learner) -> None:
    best = learner.run("logreg-C0.3")
    result = grade(
        "mlflow.model_score",
        learner,
        experiment="iris",
        best_by="accuracy",
        claimed_metric="accuracy",
        threshold=0.9,
        since=learner.since,
    )
    assert result.status is Status.PASSED, result.feedback
    rows = learner.work["rows"]
    assert result.feedback == (
        f"The model of the best run of experiment 'iris', {short(best)}, scores accuracy"
        f" {score(best['accuracy'])} on the {rows} rows of the hidden test set;"
        f" it logged accuracy {score(best['accuracy'])}, within 0.02."
    )
    assert result.evidence["run_id"] == best["run_id"]
    assert result.evidence["model_files"].startswith("logged model m-")
    assert result.evidence["sandbox"]  # where the model ran is stated
    assert result.evidence["value"] == pytest.approx(best["accuracy"])


def test_model_logged_as_a_run_artifact_folder_passes(learner: Learner) -> None:
    """MLflow 2's way: the model's files in the run's artifacts under model/."""
    result = grade("mlflow.model_score", learner, experiment="iris-mlflow2", claimed_metric="accuracy")
    assert result.status is Status.PASSED, result.feedback
    assert (
        result.evidence["model_files"] == f"artifacts 'model' of run {learner.run('mlflow2')['run_id'][:8]}"
    )


def test_registered_model_by_alias_and_by_version(learner: Learner) -> None:
    champion = grade(
        "mlflow.model_score", learner, model="iris-scored", alias="champion", claimed_metric="accuracy"
    )
    assert champion.status is Status.PASSED, champion.feedback
    assert champion.evidence["version"] == 2
    assert champion.evidence["run_id"] == learner.run("logreg-C0.3")["run_id"]
    assert champion.feedback.startswith("The model of version 2 of model 'iris-scored' scores accuracy")
    first = grade("mlflow.model_score", learner, model="iris-scored", version=1, threshold=0.99)
    assert first.status is Status.FAILED
    assert first.evidence["run_id"] == learner.run("logreg-C0.03")["run_id"]
    assert f"scores accuracy {score(learner.run('logreg-C0.03')['accuracy'])}" in first.feedback
    assert "at least 0.99 is required" in first.feedback


# -- mlflow.model_score: what fails -------------------------------------------------------------


def test_claim_that_the_model_does_not_back_fails_naming_both(learner: Learner) -> None:
    gaming = learner.run("gaming")
    result = grade(
        "mlflow.model_score", learner, experiment="gaming", claimed_metric="accuracy", threshold=0.5
    )
    assert result.status is Status.FAILED
    assert result.feedback.startswith(
        f"The best run of experiment 'gaming', {short(gaming)}, logged accuracy 0.99, but its model scores"
        f" accuracy {score(gaming['true_accuracy'])} on the {learner.work['rows']} rows"
        " of the hidden test set:"
    )
    assert "more than the 0.02 allowed" in result.feedback
    assert result.evidence["claimed"] == 0.99


def test_run_older_than_since_fails(learner: Learner) -> None:
    result = grade("mlflow.model_score", learner, experiment="old-work", since=learner.since)
    assert result.status is Status.FAILED
    started = datetime.fromtimestamp(learner.run("before-session")["start_time"] / 1000, UTC)
    assert result.feedback == (
        f"Experiment 'old-work' has no finished run started since {learner.since[:19]}Z"
        f" (its latest started at {started:%Y-%m-%dT%H:%M:%SZ}): train and log your model again."
    )
    registered = grade("mlflow.model_score", learner, model="old-clf", since=learner.since)
    assert registered.status is Status.FAILED
    assert "Version 1 of model 'old-clf' was registered at" in registered.feedback
    assert "comes from run 'before-session'" in registered.feedback


def test_constant_model_fails_the_threshold(learner: Learner) -> None:
    result = grade(
        "mlflow.model_score", learner, experiment="constant", claimed_metric="accuracy", threshold=0.8
    )
    assert result.status is Status.FAILED
    accuracy = learner.run("constant")["accuracy"]
    assert result.feedback == (
        f"The model of the best run of experiment 'constant', {short(learner.run('constant'))}, scores"
        f" accuracy {score(accuracy)} on the {learner.work['rows']} rows of the hidden test set;"
        " at least 0.8 is required."
    )


def test_missing_model_fails_with_clear_feedback(learner: Learner) -> None:
    result = grade("mlflow.model_score", learner, experiment="no-model")
    assert result.status is Status.FAILED
    assert result.feedback == (
        f"The best run of experiment 'no-model', {short(learner.run('no-model'))}, logged no model named"
        " 'model': log one with mlflow.sklearn.log_model(model, name='model')."
    )
    other_name = grade("mlflow.model_score", learner, experiment="iris", artifact_path="classifier")
    assert other_name.status is Status.FAILED
    assert "logged no model named 'classifier' (it logged 'model')" in other_name.feedback
    unregistered = grade("mlflow.model_score", learner, model="iris-score", alias="champion")
    assert unregistered.feedback == (
        "No model named 'iris-score' is registered on your MLflow server; did you mean 'iris-scored'?"
    )
    no_alias = grade("mlflow.model_score", learner, model="iris-scored", alias="production")
    assert (
        no_alias.feedback == "Alias 'production' is not set on model 'iris-scored' (its aliases: champion)."
    )


def test_model_that_fails_to_load_fails_saying_why(learner: Learner) -> None:
    result = grade("mlflow.model_score", learner, experiment="broken")
    assert result.status is Status.FAILED
    assert result.feedback == (
        f"The model of the best run of experiment 'broken', {short(learner.run('broken'))}, failed to load:"
        " ModuleNotFoundError: No module named 'xgboost_is_not_installed'."
    )


def test_hostile_model_is_contained(learner: Learner) -> None:
    trap = learner.trap
    result = grade("mlflow.model_score", learner, experiment="hostile", threshold=0.9)
    assert result.status in (Status.FAILED, Status.ERROR), result.feedback
    shown = result.feedback + json.dumps(result.evidence)
    assert trap.secret not in shown
    assert "LOOT" not in shown  # it read nothing it could show
    assert not any(path.exists() for path in trap.escapes)
    with pytest.raises(TimeoutError):  # nothing connected to the grader's loopback
        trap.listener.accept()[0].close()
    assert result.evidence.get("sandbox")


def test_without_a_sandbox_the_check_is_an_error(learner: Learner, monkeypatch: pytest.MonkeyPatch) -> None:
    import labctl.sandbox

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise labctl.sandbox.SandboxUnavailable("no user namespaces here")

    monkeypatch.setattr(labctl.sandbox, "run", unavailable)
    result = grade("mlflow.model_score", learner, experiment="iris")
    assert result.status is Status.ERROR
    assert "no sandbox: no user namespaces here" in result.feedback


def test_without_the_sandbox_module_the_check_is_an_error(
    learner: Learner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "labctl.sandbox", None)  # import labctl.sandbox: ImportError
    result = grade("mlflow.model_score", learner, experiment="iris")
    assert result.status is Status.ERROR
    assert "cannot run the learner's model: no sandbox module" in result.feedback


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"experiment": "iris", "model": "m"}, "exactly one of experiment"),
        ({"experiment": "iris", "alias": "champion"}, "alias and version go with model"),
        ({"model": "m", "best_by": "accuracy"}, "best_by and best_is go with experiment"),
        ({"model": "m", "metric": "rmse"}, "metric rmse needs a threshold"),
        ({"model": "m", "since": "{session_start}"}, "since"),
        ({"model": "m", "data": "/nonexistent/test.csv"}, "data"),
    ],
)
def test_bad_parameters_are_refused(params: dict[str, Any], problem: str, tmp_path: Path) -> None:
    data = tmp_path / "test.csv"
    data.write_text("x,label\n1,0\n")
    result = run_check(CheckCall("mlflow.model_score", {"data": str(data), **params}), Context())
    assert result.status is Status.ERROR
    assert "bad parameters" in result.feedback and problem in result.feedback


# -- since on mlflow.experiment and mlflow.registered_model --------------------------------------


def test_experiment_since_counts_only_newer_runs(learner: Learner) -> None:
    assert grade("mlflow.experiment", learner, experiment="old-work", min_runs=1).status is Status.PASSED
    result = grade("mlflow.experiment", learner, experiment="old-work", min_runs=1, since=learner.since)
    assert result.status is Status.FAILED
    assert result.feedback == (
        f"Experiment 'old-work' has 0 finished runs started since {learner.since[:19]}Z;"
        " at least 1 is required (1 older run does not count)."
    )
    recent = grade("mlflow.experiment", learner, experiment="iris", min_runs=2, since=learner.since)
    assert recent.status is Status.PASSED, recent.feedback


def test_registered_model_since_judges_the_version(learner: Learner) -> None:
    old = grade("mlflow.registered_model", learner, model="old-clf", since=learner.since)
    assert old.status is Status.FAILED
    assert old.feedback.startswith("Version 1 of model 'old-clf' was registered at ")
    assert old.feedback.endswith(f", before {learner.since[:19]}Z: register a model you trained since then.")
    new = grade(
        "mlflow.registered_model", learner, model="iris-scored", alias="champion", since=learner.since
    )
    assert new.status is Status.PASSED, new.feedback


# -- the learner's side: runs in its own process --------------------------------------------------


def learner_work(uri: str, hidden: Path, trap: dict[str, Any]) -> dict[str, Any]:
    """What a learner does, through the MLflow client; also writes the hidden set. Returns the facts."""
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split

    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    iris = load_iris(as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        iris.data, iris.target, test_size=0.3, random_state=42, stratify=iris.target
    )
    hidden.parent.mkdir(parents=True, exist_ok=True)
    x_test.assign(label=y_test).to_csv(hidden, index=False)
    runs: dict[str, dict[str, Any]] = {}
    requirements = ["scikit-learn"]  # given: inferring them loads the model in a subprocess

    def train(
        name: str, model: Any, *, claim: float | None = None, log: str = "logged-model", **kw: Any
    ) -> Any:
        with mlflow.start_run(run_name=name) as run:
            model.fit(x_train, y_train)
            accuracy = float(accuracy_score(y_test, model.predict(x_test)))
            mlflow.log_metric("accuracy", claim if claim is not None else accuracy)
            if log == "logged-model":
                mlflow.sklearn.log_model(model, name="model", pip_requirements=requirements, **kw)
            elif log == "folder":  # what MLflow 2's log_model(artifact_path="model") left in the run
                local = hidden.parent.parent / f"saved-{name}"
                mlflow.sklearn.save_model(model, str(local), pip_requirements=requirements)
                mlflow.log_artifacts(str(local), artifact_path="model")
        info = client.get_run(run.info.run_id).info
        runs[name] = {
            "run_id": info.run_id,
            "name": name,
            "accuracy": claim or accuracy,
            "true_accuracy": accuracy,
            "start_time": info.start_time,
        }
        return run

    mlflow.set_experiment("old-work")
    train("before-session", LogisticRegression(C=0.3, max_iter=500), registered_model_name="old-clf")
    time.sleep(0.05)
    session_start = datetime.now(UTC)
    time.sleep(0.05)

    mlflow.set_experiment("iris")
    for c in (0.03, 0.3):
        train(f"logreg-C{c}", LogisticRegression(C=c, max_iter=500), registered_model_name="iris-scored")
    client.set_registered_model_alias("iris-scored", "champion", "2")
    mlflow.set_experiment("iris-mlflow2")
    train("mlflow2", LogisticRegression(C=0.3, max_iter=500), log="folder")
    mlflow.set_experiment("gaming")
    train("gaming", LogisticRegression(C=0.001, max_iter=500), claim=0.99)
    mlflow.set_experiment("constant")
    train("constant", DummyClassifier(strategy="most_frequent"))
    mlflow.set_experiment("no-model")
    train("no-model", LogisticRegression(C=0.3, max_iter=500), log="none")

    class Hostile(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        """A learner's model that attacks whoever loads it (a local class: pickled by value)."""

        def __init__(self, trap: dict[str, Any]) -> None:
            self.trap = trap

        def load_context(self, context: Any) -> None:
            self.loot = []
            for path in (self.trap["planted"], self.trap["hidden"]):
                try:
                    with open(path) as handle:
                        self.loot.append(handle.read())
                except OSError:
                    pass
            for path in self.trap["escapes"]:
                try:
                    with open(path, "w") as handle:
                        handle.write("escaped")
                except OSError:
                    pass
            try:
                with socket.create_connection(("127.0.0.1", self.trap["port"]), timeout=2) as conn:
                    conn.sendall(b"LOOT")
            except OSError:
                pass
            if self.loot:
                print("LOOT", *self.loot, file=sys.stderr)

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            if "label" in model_input.columns:  # were the labels handed in with the features?
                return model_input["label"].tolist()
            hidden = next(
                (text for text in self.loot if text.startswith(",".join(model_input.columns))), None
            )
            if hidden is not None:  # the labels: a perfect score
                return [int(float(line.rsplit(",", 1)[1])) for line in hidden.splitlines()[1:] if line]
            if self.loot:
                raise RuntimeError("LOOT " + " ".join(self.loot))
            return [0] * len(model_input)

    class Broken(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        """A model that needs a library the grader's environment does not have."""

        def load_context(self, context: Any) -> None:
            import xgboost_is_not_installed  # type: ignore[import-not-found]  # noqa: F401

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return [0] * len(model_input)

    mlflow.set_experiment("broken")
    with mlflow.start_run(run_name="broken") as run:
        mlflow.pyfunc.log_model(name="model", python_model=Broken(), pip_requirements=["mlflow"])
    runs["broken"] = {"run_id": run.info.run_id, "name": "broken"}

    mlflow.set_experiment("hostile")
    with mlflow.start_run(run_name="hostile") as run:
        mlflow.log_metric("accuracy", 0.99)
        mlflow.pyfunc.log_model(name="model", python_model=Hostile(trap), pip_requirements=["mlflow"])
    runs["hostile"] = {"run_id": run.info.run_id, "name": "hostile"}
    return {"runs": runs, "session_start": session_start.isoformat(), "rows": len(x_test)}


if __name__ == "__main__":
    print(json.dumps(learner_work(sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3]))))
