"""``mlflow.model_score``'s machinery: fetch a learner's model, run it in the sandbox, read its answers.

The grader downloads the model's files itself, through the tracking server's artifact proxy
(``get-artifact`` for a run's artifacts, ``logged-models/<id>/artifacts`` for an MLflow 3
logged model), bounded in count and size and written only to plain relative paths. Loading the
model is running the learner's code, so it happens in :mod:`labctl.sandbox` alone: the
sandbox gets the model's folder, :mod:`graders._predict_in_sandbox` and the hidden set's
features; the labels stay here and the metric is computed here.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from graders._endpoint_scoring import label_key
from graders._mlflow_tracking import Mlflow
from graders.core import GraderError
from labctl.clients.mlflow import TooLarge

MAX_FILES = 2_000  # a sklearn model is 4-6 files; a conda env or code folder adds a few dozen
MAX_BYTES = 256 << 20  # a model bigger than this is not one a lab asks for (and fits the sandbox disk)
MAX_DEPTH = 32  # bounds a listing that loops
SCRIPT = Path(__file__).with_name("_predict_in_sandbox.py")
OUTPUT = "predictions.json"
# The model's code chose its error's text and it could hold the hidden features: feedback shows
# a line of it ("No module named 'xgboost'" is the common case), never a dump.
MESSAGE_CHARS = 160
STDERR_KEPT = 600  # characters of the sandbox's stderr kept as evidence: a hint, not a leak of the data


class NoModel(Exception):
    """The learner's model cannot be had: its files are missing, too many or too big."""


# -- where a model's files are ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFiles:
    """A model's folder on the tracking server: a logged model, or a folder of a run's artifacts."""

    what: str  # "logged model m-1234" / "artifacts 'model' of run 1a2b3c4d", for feedback
    list_dir: Callable[[str], list[dict[str, Any]]]  # folder relative to the model -> its entries
    fetch: Callable[[str, int], bytes]  # file relative to the model, size limit -> its bytes


def logged_model(api: Mlflow, model_id: str) -> ModelFiles:
    """An MLflow 3 logged model (``log_model(name=...)``): its files live apart from the run's."""
    listing = f"logged-models/{model_id}/artifacts/directories"

    def list_dir(folder: str) -> list[dict[str, Any]]:
        query = {"artifact_directory_path": folder} if folder else {}
        return (api.get(listing, **query) or {}).get("files") or []

    def fetch(path: str, limit: int) -> bytes:
        route = f"/ajax-api/2.0/mlflow/logged-models/{model_id}/artifacts/files"
        return download(api, route, {"artifact_file_path": path}, limit)

    return ModelFiles(f"logged model {model_id}", list_dir, fetch)


def run_artifacts(api: Mlflow, run_id: str, root: str) -> ModelFiles:
    """A folder of a run's artifacts: how MLflow 2 logged models (``artifact_path="model"``)."""
    prefix = root.strip("/")

    def list_dir(folder: str) -> list[dict[str, Any]]:
        path = "/".join(p for p in (prefix, folder) if p)
        files = (api.get("artifacts/list", run_id=run_id, path=path) or {}).get("files") or []
        # The run's listing names paths from the run's root; the model's files are under ``prefix``.
        return [{**f, "path": _strip(str(f.get("path", "")), prefix)} for f in files]

    def fetch(path: str, limit: int) -> bytes:
        full = "/".join(p for p in (prefix, path) if p)
        return download(api, "/get-artifact", {"run_uuid": run_id, "path": full}, limit)

    return ModelFiles(f"artifacts '{prefix}' of run {run_id[:8]}", list_dir, fetch)


def _strip(path: str, prefix: str) -> str:
    if not prefix:
        return path
    return path[len(prefix) + 1 :] if path.startswith(prefix + "/") else "\0" + path  # \0: refused below


def has_file(files: ModelFiles, path: str) -> bool:
    folder, _, leaf = path.rpartition("/")
    return any(str(f.get("path", "")) in (path, leaf) and not f.get("is_dir") for f in files.list_dir(folder))


def _safe(path: str, folder: str) -> PurePosixPath | None:
    """``path`` as a plain relative path inside ``folder``; None when it is anything else."""
    pure = PurePosixPath(path)
    if not path or "\0" in path or pure.is_absolute() or any(p in ("", ".", "..") for p in path.split("/")):
        return None
    if folder and not path.startswith(folder + "/"):
        return None
    return pure


def download_all(files: ModelFiles, target: Path) -> list[str]:
    """Every file of the model into ``target``; their paths. :class:`NoModel` past the bounds."""
    pending: list[tuple[str, int]] = [("", 0)]
    saved: list[str] = []
    total = 0
    while pending:
        folder, depth = pending.pop()
        for entry in sorted(files.list_dir(folder), key=lambda f: str(f.get("path"))):
            path = str(entry.get("path", ""))
            pure = _safe(path, folder)
            if pure is None:
                raise NoModel(f"{files.what} lists a file that is not a plain path: {path[:80]!r}")
            if entry.get("is_dir"):
                if depth >= MAX_DEPTH:
                    raise NoModel(f"{files.what} nests folders more than {MAX_DEPTH} deep")
                pending.append((path, depth + 1))
                continue
            if len(saved) >= MAX_FILES:
                raise NoModel(f"{files.what} has more than {MAX_FILES} files")
            data = files.fetch(path, MAX_BYTES - total)
            total += len(data)
            out = target.joinpath(*pure.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            saved.append(path)
    return saved


def download(api: Mlflow, route: str, query: dict[str, str], limit: int) -> bytes:
    """GET a file from the tracking server (``route``: a path from its root), at most ``limit`` bytes."""
    try:
        data = api.fetch(route, query, limit=limit)
    except TooLarge:
        raise NoModel(f"the model's files add up to more than {MAX_BYTES >> 20} MiB") from None
    if data is None:
        raise NoModel(f"the file {query} is listed but cannot be downloaded (404)")
    return data


# -- predicting in the sandbox ----------------------------------------------------------------------


@dataclass
class Prediction:
    """What the sandbox gave back: usable predictions, or the learner-facing reason there are none."""

    values: list[float | str] | None
    problem: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


def features_csv(path: Path, label_column: str) -> bytes:
    """The hidden set without its label column, cells as written: all the sandbox gets of it.

    Read after :func:`~graders._endpoint_io.load_table` accepted the file, so it parses.
    """
    with path.open(newline="") as handle:
        lines = [line for line in csv.reader(handle) if line]
    at = lines[0].index(label_column)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        [v for i, v in enumerate(line) if i != at] for line in lines
    )
    return out.getvalue().encode()


def predict(work: Path, features: bytes, *, rows: int, numeric: bool, deadline_s: float) -> Prediction:
    """Run the model in ``work/model`` on the hidden ``features`` (a CSV of ``rows``), in the sandbox.

    :class:`GraderError` when there is no sandbox: the model never runs anywhere else.
    """
    try:
        from labctl.sandbox import Limits, SandboxUnavailable, run
    except ImportError as exc:
        raise GraderError(f"cannot run the learner's model: no sandbox module ({exc})") from None
    (work / "predict.py").write_bytes(SCRIPT.read_bytes())
    argv = ["python", "-I", "predict.py", "model", "/inputs/features.csv", OUTPUT]
    env = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    try:
        box = run(
            argv,
            work=work,
            inputs={"features.csv": features},
            outputs=[OUTPUT],
            env=env,
            limits=Limits(),
            python=True,
            deadline_s=deadline_s,
        )
    except SandboxUnavailable as exc:
        raise GraderError(f"cannot run the learner's model: no sandbox: {exc}") from None
    evidence = {
        "sandbox": box.where,
        "exit_code": box.exit_code,
        "timed_out": box.timed_out,
        "reason": box.reason,
        "stderr_tail": _text(box.stderr)[-STDERR_KEPT:],
    }
    if box.timed_out:
        return Prediction(None, f"did not finish predicting within {deadline_s:.0f} s", evidence)
    return _read(box.files.get(OUTPUT), rows, numeric, box.reason, evidence)


def _text(stream: str | bytes | None) -> str:
    return stream.decode("utf-8", "replace") if isinstance(stream, bytes) else stream or ""


def _read(
    raw: bytes | None, rows: int, numeric: bool, reason: str | None, evidence: dict[str, Any]
) -> Prediction:
    """The sandbox's answer file, judged: the model wrote it as much as our script did."""
    try:
        answer = json.loads(raw) if raw else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return Prediction(None, f"stopped without predicting ({reason or 'no answer'})", evidence)
    if isinstance(answer.get("error"), dict):
        error = answer["error"]
        stage = {"load": "failed to load", "read": "could not be given the data"}.get(
            str(error.get("stage")), "failed to predict"
        )
        message = str(error.get("message", ""))[:MESSAGE_CHARS]
        return Prediction(None, f"{stage}: {error.get('type', 'error')}: {message}".rstrip(": "), evidence)
    values = answer.get("predictions")
    if not isinstance(values, list):
        return Prediction(None, "answered something other than a list of predictions", evidence)
    if len(values) != rows:
        return Prediction(None, f"returned {len(values)} predictions for {rows} rows", evidence)
    kept = [_value(v, numeric) for v in values]
    bad = next((i for i, v in enumerate(kept) if v is None), None)
    if bad is not None:
        wanted = "a number" if numeric else "a class label"
        shown = json.dumps(values[bad])[:60]
        return Prediction(None, f"prediction {bad} is {shown}, not {wanted}", evidence)
    return Prediction([v for v in kept if v is not None], "", evidence)


def _value(item: Any, numeric: bool) -> float | str | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, int | float):
        return float(item) if math.isfinite(item) else None
    if isinstance(item, str) and not numeric:
        return label_key(item)
    return None
