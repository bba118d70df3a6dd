"""``dump_mlflow`` against a real ``mlflow server`` (artifacts proxied, as the learner stack runs it).

One server per module: a learner's work is logged through the MLflow client in a process of its
own (:mod:`tests.stackdata.mlflow_learner`), then dumped twice: with pages of 2 (so every search
and the metric history are paged) and with the default page size. Each test reads the files as
an instructor would and compares them with what the learner logged.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labctl.core.errors import LabctlError
from labctl.exports._files import DumpError
from labctl.exports.mlflow_dump import MlflowSummary, dump_mlflow
from tests.graders.mlflow_fixtures import PYTHON, QUIET, REPO, STARTUP_S, healthy, server_command
from tests.helpers.processes import free_port, server_process
from tests.stackdata.mlflow_learner import ARTIFACTS, LOSS, PROMPT, WEIGHTS

pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Dumped:
    uri: str
    facts: dict[str, Any]
    paged: Path  # dumped with page_size=2
    paged_summary: MlflowSummary
    whole: Path  # dumped with the default page size
    seconds: float

    def run_dir(self, name: str) -> Path:
        run_id = self.facts["runs"][name]
        return next(self.paged.glob(f"experiments/*/runs/{run_id}"))


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def dumped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dumped]:
    tmp = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {**os.environ, **QUIET}
    cmd = [*server_command(tmp, port), "--serve-artifacts"]
    with (
        (tmp / "server.log").open("wb") as log,
        server_process(cmd, ready=lambda: healthy(uri), timeout=STARTUP_S, env=env, cwd=tmp, log=log),
    ):
        learner = subprocess.run(
            [str(PYTHON), "-m", "tests.stackdata.mlflow_learner", uri],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=STARTUP_S,
            check=False,
        )
        assert learner.returncode == 0, learner.stderr[-4000:]
        facts = json.loads(learner.stdout.strip().splitlines()[-1])
        started = time.monotonic()
        paged_summary = dump_mlflow(uri, tmp / "paged", learner="ada@uni.edu", page_size=2)
        seconds = time.monotonic() - started
        dump_mlflow(uri, tmp / "whole")
        yield Dumped(uri, facts, tmp / "paged", paged_summary, tmp / "whole", seconds)


def test_summary_counts_everything_logged(dumped: Dumped) -> None:
    # 3 experiments (Default, train, deleted scratch); 5 runs (one deleted); loss 5 + accuracy 1
    # + pyfunc's loss 2 + scratch's 1 points; 3 baseline files + w.bin + 5 files of the pyfunc model.
    assert dumped.paged_summary == MlflowSummary(
        experiments=3,
        runs=5,
        metric_points=9,
        artifacts=9,
        artifact_bytes=dumped.paged_summary.artifact_bytes,
        logged_models=1,
        registered_models=2,  # clf and the prompt
        model_versions=3,
        skipped=(),
    )
    print(f"\npaged dump: {dumped.paged_summary} in {dumped.seconds:.1f} s")


def test_run_params_tags_and_full_metric_history(dumped: Dumped) -> None:
    run = read(dumped.run_dir("baseline") / "run.json")
    assert run["info"]["run_name"] == "baseline"
    assert run["info"]["status"] == "FINISHED"
    assert run["params"] == {"lr": "0.1", "epochs": "5"}
    assert run["tags"]["team"] == "blue"
    assert run["metrics"]["loss"]["value"] == LOSS[-1]  # the latest value
    (dataset,) = run["inputs"]["dataset_inputs"]
    assert dataset["dataset"]["name"] == "toy"
    assert dataset["tags"] == [{"key": "mlflow.data.context", "value": "training"}]

    history = read(dumped.run_dir("baseline") / "metrics.json")
    assert sorted(history) == ["accuracy", "loss"]
    assert [(p["step"], p["value"]) for p in history["loss"]] == list(enumerate(LOSS))
    assert [p["value"] for p in history["accuracy"]] == [0.875]


def test_artifacts_byte_for_byte_including_empty_and_nested(dumped: Dumped) -> None:
    artifacts = dumped.run_dir("baseline") / "artifacts"
    saved = {p.relative_to(artifacts).as_posix(): p.read_bytes() for p in artifacts.rglob("*") if p.is_file()}
    assert saved == ARTIFACTS
    weights = (dumped.run_dir("weights") / "artifacts" / "weights" / "w.bin").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == dumped.facts["weights_sha256"]
    assert weights == WEIGHTS


def test_deleted_experiment_and_runs_are_kept_and_marked(dumped: Dumped) -> None:
    index = read(dumped.paged / "mlflow.json")
    scratch = index["experiments"][dumped.facts["scratch"]]
    assert (scratch["name"], scratch["lifecycle_stage"]) == ("scratch", "deleted")
    assert read(dumped.run_dir("tmp") / "run.json")["info"]["experiment_id"] == dumped.facts["scratch"]
    oops = read(dumped.run_dir("oops") / "run.json")
    assert oops["info"]["lifecycle_stage"] == "deleted"
    assert oops["params"] == {"lr": "99"}


def test_registry_aliases_versions_and_lineage(dumped: Dumped) -> None:
    index = read(dumped.paged / "mlflow.json")
    model = read(dumped.paged / index["registered_models"]["clf"])
    assert model["tags"] == {"owner": "ada"}
    assert model["aliases"] == {"champion": "2", "challenger": "1"}
    v1, v2 = model["versions"]

    # champion -> version 2 -> the run "weights", whose dumped folder holds the registered file.
    assert (v2["version"], v2["aliases"], v2["tags"]) == ("2", ["champion"], {"validated": "true"})
    assert v2["run_id"] == dumped.facts["runs"]["weights"]
    assert v2["lineage"]["run"] == dumped.run_dir("weights").relative_to(dumped.paged).as_posix()
    assert (dumped.paged / v2["lineage"]["run"] / "artifacts/weights/w.bin").read_bytes() == WEIGHTS

    # challenger -> version 1 -> the logged model of the run "pyfunc", with its MLmodel.
    assert (v1["version"], v1["aliases"], v1["tags"]) == ("1", ["challenger"], {"stage": "old"})
    assert v1["lineage"]["run_id"] == dumped.facts["runs"]["pyfunc"]
    assert v1["lineage"]["model_id"] == dumped.facts["model_id"]
    logged = dumped.paged / v1["lineage"]["logged_model"]
    assert read(logged / "model.json")["info"]["source_run_id"] == dumped.facts["runs"]["pyfunc"]
    assert "python_function" in (logged / "artifacts" / "MLmodel").read_text()


def test_prompts_are_saved_with_the_registry(dumped: Dumped) -> None:
    index = read(dumped.paged / "mlflow.json")
    prompt = read(dumped.paged / index["registered_models"]["summarise"])
    assert prompt["tags"]["mlflow.prompt.is_prompt"] == "true"
    (version,) = prompt["versions"]
    assert version["tags"]["mlflow.prompt.text"] == PROMPT


def test_re_export_is_identical_whatever_the_page_size(dumped: Dumped) -> None:
    def tree(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    paged, whole = tree(dumped.paged), tree(dumped.whole)
    assert sorted(paged) == sorted(whole)
    assert [name for name in paged if paged[name] != whole[name]] == []


def test_refuses_a_folder_that_is_not_empty(dumped: Dumped, tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text("{}")
    with pytest.raises(DumpError, match="already exists and is not an empty folder"):
        dump_mlflow(dumped.uri, tmp_path, learner="ada@uni.edu")


def test_unreachable_server_names_learner_and_endpoint(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(LabctlError) as caught:
        dump_mlflow(url, tmp_path / "out", learner="bob@uni.edu", timeout_s=2)
    assert f"learner bob@uni.edu: MLflow at {url}: cannot GET /version" in str(caught.value)
