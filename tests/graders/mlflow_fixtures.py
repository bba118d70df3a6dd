"""A real ``mlflow server`` and a learner's work on it, for the ``mlflow.*`` checks' tests.

The server runs as labctl's stack runs it (``--workers 1``, no job runner, artifacts proxied);
the learner's work is done by :func:`learner_work`, run as ``python -m tests.graders.mlflow_fixtures
<tracking-uri>`` in a process of its own, through the MLflow client as a learner would: train
logistic regressions on iris with a fixed seed, log params, metrics and artifacts, log and
register two models, set an alias and lineage tags. It prints what it did as JSON.

What the learner got right and wrong, for the tests to find:

- experiment ``iris``: three finished runs (C = 0.001, 0.03, 0.3; accuracy about 0.71, 0.93,
  0.96) and one failed run; each finished run has params ``C``, ``max_iter``, ``data_hash``,
  metrics ``accuracy``, ``f1_macro`` and the artifact ``eval/confusion_matrix.json``; the runs
  C=0.03 and C=0.3 logged a model named ``model``.
- model ``iris-clf``: version 1 (from C=0.03) tagged with a stale ``data_hash``; version 2 (from
  the best run) tagged ``data_hash`` (its run's param) and ``validated=true``; alias ``champion``
  on version 2.
- model ``iris-orphan``: one version whose source run the learner then deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.processes import free_port, server_process

REPO = Path(__file__).resolve().parents[2]
PYTHON = Path(sys.executable)
MLFLOW = PYTHON.parent / "mlflow"
STARTUP_S = 300.0  # imports and migrations; minutes on a loaded 2-core machine
# No telemetry (the tests stay on loopback), no job runner (labctl's stack runs without one: a
# default server starts a dozen huey workers).
QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}

C_VALUES = (0.001, 0.03, 0.3)
STALE_HASH = "0" * 32  # the data_hash tag the learner forgot to update on version 1


@dataclass(frozen=True)
class LearnerMlflow:
    """A running tracking server and what the learner did on it."""

    uri: str
    proc: subprocess.Popen
    work: dict[str, Any]

    def run(self, c: float) -> dict[str, Any]:
        """The facts of the finished run trained with ``C=c``."""
        return self.work["runs"][str(c)]


def healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def server_command(tmp: Path, port: int) -> list[str]:
    """A real `mlflow server` on loopback: sqlite and artifacts under ``tmp``, one worker."""
    return [
        str(MLFLOW),
        "server",
        "--host=127.0.0.1",
        f"--port={port}",
        "--workers=1",
        f"--backend-store-uri=sqlite:///{tmp / 'mlflow.db'}",
        f"--artifacts-destination={tmp / 'artifacts'}",
    ]


@contextmanager
def learner_mlflow(tmp: Path) -> Iterator[LearnerMlflow]:
    """Start the server and, meanwhile, the learner's script (its imports overlap the server's)."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {**os.environ, **QUIET, "MLFLOW_TRACKING_URI": uri}
    cmd = server_command(tmp, port)
    with (tmp / "learner.log").open("wb") as learner_log, (tmp / "server.log").open("wb") as server_log:
        learner = subprocess.Popen(
            [str(PYTHON), "-m", "tests.graders.mlflow_fixtures", uri],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=learner_log,
        )
        try:
            with server_process(
                cmd, ready=lambda: healthy(uri), timeout=STARTUP_S, env=env, cwd=tmp, log=server_log
            ) as proc:
                out, _ = learner.communicate(timeout=STARTUP_S)
                if learner.returncode != 0:
                    raise RuntimeError(f"the learner's script failed; see {tmp / 'learner.log'}")
                yield LearnerMlflow(uri, proc, json.loads(out.decode().strip().splitlines()[-1]))
        finally:
            if learner.poll() is None:
                learner.kill()
                learner.wait()


# -- the learner's side: runs in its own process ---------------------------------------------------


def learner_work(uri: str) -> dict[str, Any]:
    """What a learner does in the lab, through the MLflow client; returns the facts for the tests."""
    deadline = time.monotonic() + STARTUP_S
    # Imported here: the test process never loads MLflow or scikit-learn itself.
    import mlflow
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
    from sklearn.model_selection import train_test_split

    while not healthy(uri):  # the server starts alongside us
        if time.monotonic() > deadline:
            raise TimeoutError(f"no MLflow at {uri}")
        time.sleep(0.2)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()

    iris = load_iris(as_frame=True)
    data_hash = hashlib.md5(iris.frame.to_csv(index=False).encode()).hexdigest()  # as `dvc add` would
    x_train, x_test, y_train, y_test = train_test_split(
        iris.data, iris.target, test_size=0.3, random_state=42, stratify=iris.target
    )
    mlflow.set_experiment("iris")
    runs: dict[str, dict[str, Any]] = {}
    for c in C_VALUES:
        with mlflow.start_run(run_name=f"logreg-C{c}") as run:
            model = LogisticRegression(C=c, max_iter=500).fit(x_train, y_train)
            predicted = model.predict(x_test)
            metrics = {
                "accuracy": float(accuracy_score(y_test, predicted)),
                "f1_macro": float(f1_score(y_test, predicted, average="macro")),
            }
            mlflow.log_params({"C": c, "max_iter": 500, "data_hash": data_hash})
            mlflow.log_metrics(metrics)
            mlflow.log_dict(
                {"matrix": confusion_matrix(y_test, predicted).tolist()}, "eval/confusion_matrix.json"
            )
            if c != C_VALUES[0]:
                # pip_requirements given: inferring them loads the model in a subprocess (seconds).
                mlflow.sklearn.log_model(
                    model, name="model", registered_model_name="iris-clf", pip_requirements=["scikit-learn"]
                )
            runs[str(c)] = {"run_id": run.info.run_id, "name": f"logreg-C{c}", **metrics}
    with mlflow.start_run(run_name="crashed"):
        mlflow.log_param("C", 100)
        mlflow.end_run(status="FAILED")

    client.set_model_version_tag("iris-clf", "1", "data_hash", STALE_HASH)
    client.set_model_version_tag("iris-clf", "2", "data_hash", data_hash)
    client.set_model_version_tag("iris-clf", "2", "validated", "true")
    client.set_registered_model_alias("iris-clf", "champion", "2")

    # A model registered from a scratch run that the learner then deleted.
    mlflow.set_experiment("scratch")
    with mlflow.start_run(run_name="scratch") as scratch:
        model = LogisticRegression(C=1.0, max_iter=500).fit(x_train, y_train)
        mlflow.sklearn.log_model(
            model, name="model", registered_model_name="iris-orphan", pip_requirements=["scikit-learn"]
        )
    client.delete_run(scratch.info.run_id)
    return {"data_hash": data_hash, "runs": runs, "orphan_run_id": scratch.info.run_id}


if __name__ == "__main__":
    print(json.dumps(learner_work(sys.argv[1])))
