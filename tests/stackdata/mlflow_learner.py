"""A learner's work on a real MLflow server, for the dump's tests: run as ``python -m`` in its own process.

``python -m tests.stackdata.mlflow_learner <tracking-uri>`` does, through the MLflow client as a
learner would, everything :func:`~labctl.exports.mlflow_dump.dump_mlflow` must save, and prints the facts
(ids, values, bytes) as one JSON line for the tests to compare the dump with:

- experiment ``train`` (tagged ``course=mlops``): run ``baseline`` (params, a 5-point ``loss``
  history, one ``accuracy``, tag ``team=blue``, a dataset input, artifacts at nested paths and an
  empty one); run ``pyfunc`` that logs a model registered as ``clf`` version 1; run ``weights``
  whose ``weights/w.bin`` becomes ``clf`` version 2 (``create_model_version``); a deleted run.
- ``clf``: tag ``owner=ada``, aliases ``champion`` -> 2 and ``challenger`` -> 1, version tags.
- prompt ``summarise`` (the prompt registry), version 1.
- experiment ``scratch``, deleted, with one run.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

LOSS = [1.0, 0.5, 0.25, 0.125, 0.0625]  # baseline's loss at steps 0..4
ARTIFACTS = {  # baseline's artifacts: path -> bytes
    "notes.txt": b"first try\n",
    "reports/deep/summary.txt": "précision: 0.9\n".encode(),
    "empty.txt": b"",
}
WEIGHTS = bytes(range(256)) * 4
PROMPT = "Summarise {{ text }} in one line."


def learner_work(uri: str) -> dict[str, Any]:
    """What a learner does in a lab; returns the facts for the tests."""
    import mlflow
    import mlflow.genai
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.pyfunc import PythonModel

    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    facts: dict[str, Any] = {"runs": {}}

    train = mlflow.set_experiment("train")
    client.set_experiment_tag(train.experiment_id, "course", "mlops")
    facts["train"] = train.experiment_id
    with mlflow.start_run(run_name="baseline") as run:
        mlflow.log_params({"lr": 0.1, "epochs": 5})
        for step, loss in enumerate(LOSS):
            mlflow.log_metric("loss", loss, step=step)
        mlflow.log_metric("accuracy", 0.875)
        mlflow.set_tag("team", "blue")
        frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
        mlflow.log_input(from_pandas(frame, name="toy", targets="y"), context="training")
        with tempfile.TemporaryDirectory() as tmp:
            for path, data in ARTIFACTS.items():
                local = Path(tmp, path)
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(data)
                folder = str(Path(path).parent)
                mlflow.log_artifact(str(local), artifact_path=None if folder == "." else folder)
        facts["runs"]["baseline"] = run.info.run_id

    class Doubler(PythonModel):
        def predict(self, context, model_input, params=None):
            # Untyped on purpose: MLflow warns about (and ignores) type hints it cannot use.
            return model_input * 2

    with mlflow.start_run(run_name="pyfunc") as run:
        mlflow.log_metric("loss", 0.3, step=0)
        mlflow.log_metric("loss", 0.2, step=1)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=Doubler(), registered_model_name="clf", pip_requirements=[]
        )
        facts["runs"]["pyfunc"] = run.info.run_id
        facts["model_id"] = info.model_id

    with mlflow.start_run(run_name="weights") as run, tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "w.bin").write_bytes(WEIGHTS)
        mlflow.log_artifact(str(Path(tmp, "w.bin")), artifact_path="weights")
        facts["runs"]["weights"] = run.info.run_id
    version = client.create_model_version("clf", f"runs:/{run.info.run_id}/weights", run_id=run.info.run_id)
    assert version.version == "2", version

    client.set_registered_model_tag("clf", "owner", "ada")
    client.set_model_version_tag("clf", "1", "stage", "old")
    client.set_model_version_tag("clf", "2", "validated", "true")
    client.set_registered_model_alias("clf", "champion", "2")
    client.set_registered_model_alias("clf", "challenger", "1")

    # The prompt registry keeps prompts as registered models that plain searches leave out.
    mlflow.genai.register_prompt(name="summarise", template=PROMPT, commit_message="first")

    with mlflow.start_run(run_name="oops") as run:
        mlflow.log_param("lr", 99)
    client.delete_run(run.info.run_id)
    facts["runs"]["oops"] = run.info.run_id

    scratch = mlflow.set_experiment("scratch")
    with mlflow.start_run(run_name="tmp") as run:
        mlflow.log_metric("loss", 9.0)
        facts["runs"]["tmp"] = run.info.run_id
    client.delete_experiment(scratch.experiment_id)
    facts["scratch"] = scratch.experiment_id
    facts["weights_sha256"] = hashlib.sha256(WEIGHTS).hexdigest()
    return facts


if __name__ == "__main__":
    print(json.dumps(learner_work(sys.argv[1])))
