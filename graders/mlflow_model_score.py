"""``mlflow.model_score``: re-score a learner's logged model on hidden data, rather than believe it.

A learner logs a metric; anyone can log 0.99. This check finds the model behind a run (the best
run of an experiment, by a metric the learner logged) or behind a registered model's alias or
version, downloads its files through the tracking server with the grader's own code, runs it in
:mod:`labctl.sandbox` on the features of a hidden test set (the labels never enter the
sandbox), and computes the metric itself. It passes when that value meets ``threshold`` and,
with ``claimed_metric``, when the value the run logged agrees with it within ``tolerance``; with
``since`` (labs pass ``"{session_start}"``) only work done since then counts.

Models logged the MLflow 3 way (``log_model(model, name="model")``: a logged model ``m-...``
apart from the run's artifacts) and the MLflow 2 way (a run's artifact folder ``model/``) are
both found. Executing the model is running the learner's code: with no sandbox the check is an
``error``, never a model run in the grader's process.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from graders._endpoint_io import load_table
from graders._endpoint_params import HiddenDataScoring
from graders._endpoint_scoring import fmt_number, metric_value
from graders._mlflow_tracking import Mlflow, TrackingParams
from graders._model_scoring import (
    ModelFiles,
    NoModel,
    download_all,
    features_csv,
    has_file,
    logged_model,
    predict,
)
from graders._model_scoring import run_artifacts as run_folder
from graders.core import Context, Outcome, check
from graders.mlflow_checks import (
    Since,
    _feedback,
    _missing_experiment,
    _missing_model,
    best_run,
    is_recent,
    iso,
    logged_models,
    metrics_of,
    run_name,
    since_text,
    stale_version,
)

SANDBOX_MARGIN_S = 3.0  # of the check's time, kept back for reading the answer and scoring it


class ModelScoreParams(HiddenDataScoring, TrackingParams):
    """Which model (``experiment`` + ``best_by``, or ``model`` + ``alias``/``version``), on what data."""

    experiment: str | None = Field(default=None, min_length=1)
    best_by: str | None = None  # a metric the runs logged; default: claimed_metric; else the latest run
    best_is: Literal["max", "min"] | None = None  # default: min for rmse, else max
    model: str | None = Field(default=None, min_length=1)  # a registered model
    alias: str | None = None  # its version judged; else `version`; else its newest version
    version: int | None = Field(default=None, ge=1)
    claimed_metric: str | None = None  # the logged metric that must agree with the recomputed value
    tolerance: float = Field(default=0.02, ge=0)
    since: Since = None  # the run must have started (a version been created) at or after this
    artifact_path: str = "model"  # the logged model's name (MLflow 3) or artifact folder (MLflow 2)

    @field_validator("artifact_path")
    @classmethod
    def _relative(cls, path: str) -> str:
        if not path.strip("/") or ".." in path.split("/"):
            raise ValueError(f"artifact path {path!r}: expected a path inside the run, like 'model'")
        return path.strip("/")

    @model_validator(mode="after")
    def _consistent(self) -> ModelScoreParams:
        if (self.experiment is None) == (self.model is None):
            raise ValueError("give exactly one of experiment (its best run) or model (a registered model)")
        if self.model is None and (self.alias is not None or self.version is not None):
            raise ValueError("alias and version go with model")
        if self.alias is not None and self.version is not None:
            raise ValueError("give at most one of alias or version")
        if self.experiment is None and (self.best_by is not None or self.best_is is not None):
            raise ValueError("best_by and best_is go with experiment")
        return self


@dataclass(frozen=True)
class Subject:
    """The model judged: how feedback names it, the run that logged it (if any), its files."""

    name: str  # "the best run 'logreg' (1a2b3c4d)", "version 2 of model 'iris-clf'"
    run: dict[str, Any] | None
    files: ModelFiles


Found = tuple[Subject | None, list[str]]  # the subject, or the problems that say why there is none


# -- which model ----------------------------------------------------------------------------------


def _from_experiment(api: Mlflow, params: ModelScoreParams, evidence: dict[str, Any]) -> Found:
    name = params.experiment or ""
    found = api.get("experiments/get-by-name", experiment_name=name)
    if found is None or found["experiment"].get("lifecycle_stage") == "deleted":
        return None, [_missing_experiment(api, name)]
    search = {
        "experiment_ids": [found["experiment"]["experiment_id"]],
        "filter": "attributes.status = 'FINISHED'",
        "max_results": 1000,
        "run_view_type": "ACTIVE_ONLY",
    }
    runs = list(api.pages("POST", "runs/search", search, "runs"))
    recent = [r for r in runs if is_recent(r["info"].get("start_time"), params.since)]
    evidence.update(finished_runs=len(runs), older_runs=len(runs) - len(recent))
    by = params.best_by or params.claimed_metric
    maximise = params.best_is == "max" if params.best_is else params.metric != "rmse"
    best = best_run(recent, by, maximise=maximise)
    if best is None:
        return None, [_no_run(name, runs, recent, by, params)]
    evidence["run_id"] = best["info"]["run_id"]
    subject = f"the best run of experiment '{name}', {run_name(best)},"
    return _model_of_run(api, best, subject, params.artifact_path)


def _no_run(
    name: str,
    runs: list[dict[str, Any]],
    recent: list[dict[str, Any]],
    by: str | None,
    params: ModelScoreParams,
) -> str:
    if recent and by is not None:
        return f"no finished run of experiment '{name}' has the metric '{by}' (log it with mlflow.log_metric)"
    if runs and params.since is not None:
        latest = max(int(r["info"].get("start_time") or 0) for r in runs)
        return (
            f"experiment '{name}' has no finished run started since {since_text(params.since)}"
            f" (its latest started at {iso(latest)}): train and log your model again"
        )
    return f"experiment '{name}' has no finished run"


def _model_of_run(api: Mlflow, run: dict[str, Any], subject: str, path: str) -> Found:
    """The model ``run`` logged under ``path``: an MLflow 3 logged model, else a folder of artifacts."""
    models = logged_models(api, run)
    if path in models:
        return Subject(subject, run, logged_model(api, models[path])), []
    folder = run_folder(api, run["info"]["run_id"], path)
    if has_file(folder, "MLmodel"):
        return Subject(subject, run, folder), []
    others = f" (it logged {', '.join(repr(m) for m in models)})" if models else ""
    return None, [
        f"{subject} logged no model named '{path}'{others}:"
        f" log one with mlflow.sklearn.log_model(model, name={path!r})"
    ]


def _from_registry(api: Mlflow, params: ModelScoreParams, evidence: dict[str, Any]) -> Found:
    name = params.model or ""
    found = api.get("registered-models/get", name=name)
    if found is None:
        return None, [_missing_model(api, name)]
    registered = found["registered_model"]
    aliases = {a["alias"]: str(a["version"]) for a in registered.get("aliases", [])}
    number = aliases.get(params.alias) if params.alias is not None else None
    if params.alias is not None and number is None:
        others = f" (its aliases: {', '.join(sorted(aliases))})" if aliases else ""
        return None, [f"alias '{params.alias}' is not set on model '{name}'{others}"]
    if params.version is not None:
        number = str(params.version)
    if number is None:
        latest = [int(v["version"]) for v in registered.get("latest_versions", [])]
        number = str(max(latest)) if latest else None
    version = api.get("model-versions/get", name=name, version=number) if number else None
    if version is None:
        return None, [
            f"model '{name}' has no version {number}" if number else f"model '{name}' has no versions"
        ]
    mv = version["model_version"]
    judged = int(mv["version"])
    evidence.update(version=judged, aliases=aliases, source=mv.get("source"))
    subject = f"version {judged} of model '{name}'"
    problems = []
    if params.since is not None and not is_recent(mv.get("creation_timestamp"), params.since):
        problems.append(stale_version(name, judged, mv.get("creation_timestamp"), params.since))
    run_id = mv.get("run_id") or ""
    run = (api.get("runs/get", run_id=run_id) or {}).get("run") if run_id else None
    if run is not None:
        evidence["run_id"] = run_id
        if params.since is not None and not is_recent(run["info"].get("start_time"), params.since):
            problems.append(
                f"{subject} comes from run {run_name(run)}, which started at"
                f" {iso(run['info']['start_time'])}, before {since_text(params.since)}"
            )
    files, why = _files_of_version(api, mv, run)
    return (Subject(subject, run, files) if files else None), [*problems, *why]


def _files_of_version(
    api: Mlflow, mv: dict[str, Any], run: dict[str, Any] | None
) -> tuple[ModelFiles | None, list[str]]:
    """Where a registered version's files are: its logged model, or a folder of its run's artifacts."""
    source = str(mv.get("source") or "")
    model_id = mv.get("model_id") or (source[len("models:/") :] if source.startswith("models:/") else "")
    if model_id and "/" not in model_id:
        return logged_model(api, model_id), []
    if source.startswith("runs:/"):
        run_id, _, path = source[len("runs:/") :].partition("/")
        return run_folder(api, run_id, path), []
    root = str((run or {}).get("info", {}).get("artifact_uri") or "")
    if root and source.startswith(root.rstrip("/") + "/"):
        return run_folder(api, run["info"]["run_id"] if run else "", source[len(root.rstrip("/")) + 1 :]), []
    return None, [
        f"version {mv.get('version')} of model '{mv.get('name')}' has its files at {source[:120]!r},"
        " not in a run or a logged model: register it from a run (mlflow.register_model('runs:/...'))"
    ]


# -- the check ------------------------------------------------------------------------------------


@check("mlflow.model_score", ModelScoreParams)
def model_score(ctx: Context, params: ModelScoreParams) -> Outcome:
    """Re-score the learner's logged model on hidden data, in the sandbox; compare with its claim."""
    api = Mlflow(params, ctx)
    evidence: dict[str, Any] = {"tracking_uri": api.uri, "metric": params.metric, "threshold": params.target}
    if params.since is not None:
        evidence["since"] = params.since.isoformat()
    pick = _from_experiment if params.experiment is not None else _from_registry
    subject, problems = pick(api, params, evidence)
    if subject is None or problems:
        return Outcome(False, _feedback(problems), evidence)
    claimed, claim_problem = _claim(subject, params)
    if claim_problem:
        return Outcome(False, _feedback([claim_problem]), evidence)
    table = load_table(params.data, params.label_column, numeric_labels=params.metric == "rmse")
    evidence.update(model_files=subject.files.what, rows=len(table.rows))
    with tempfile.TemporaryDirectory(prefix="labctl-model-score-") as tmp:
        work = Path(tmp, "work")
        try:
            saved = download_all(subject.files, work / "model")
        except NoModel as exc:
            return Outcome(
                False, _feedback([f"the model of {subject.name} cannot be scored: {exc}"]), evidence
            )
        evidence["files"] = len(saved)
        if "MLmodel" not in saved:
            problem = f"the model of {subject.name} ({subject.files.what}) has no MLmodel file"
            return Outcome(False, _feedback([problem + ": log it with mlflow.<flavor>.log_model"]), evidence)
        deadline = max(1.0, ctx.remaining() - SANDBOX_MARGIN_S)
        features = features_csv(params.data, params.label_column)
        numeric = params.metric == "rmse"
        answer = predict(work, features, rows=len(table.rows), numeric=numeric, deadline_s=deadline)
    evidence.update(answer.evidence)
    if answer.values is None:
        return Outcome(False, _feedback([f"the model of {subject.name} {answer.problem}"]), evidence)
    value = metric_value(params.metric, answer.values, table.labels, positive=params.positive_label)
    evidence.update(value=round(value, 6), claimed=claimed)
    return _verdict(subject, params, value, claimed, len(table.rows), evidence)


def _claim(subject: Subject, params: ModelScoreParams) -> tuple[float | None, str]:
    """The value the run logged for ``claimed_metric``; or why it cannot be compared."""
    if params.claimed_metric is None:
        return None, ""
    if subject.run is None:
        return None, f"{subject.name} has no source run whose '{params.claimed_metric}' could be checked"
    value = metrics_of(subject.run).get(params.claimed_metric)
    if value is None:
        where = subject.name if subject.name.startswith("the ") else f"the source run of {subject.name}"
        return None, f"{where} has no metric '{params.claimed_metric}' (log it with mlflow.log_metric)"
    return value, ""


def _verdict(
    subject: Subject,
    params: ModelScoreParams,
    value: float,
    claimed: float | None,
    rows: int,
    evidence: dict[str, Any],
) -> Outcome:
    rmse = params.metric == "rmse"
    measured = f"{params.metric} {fmt_number(value)} on the {rows} rows of the hidden test set"
    problems = []
    if (value > params.target) if rmse else (value < params.target):
        wanted = f"{'at most' if rmse else 'at least'} {fmt_number(params.target)} is required"
        problems.append(f"the model of {subject.name} scores {measured}; {wanted}")
    if claimed is not None and abs(claimed - value) > params.tolerance:
        problems.append(
            f"{subject.name} logged {params.claimed_metric} {fmt_number(claimed)}, but its model scores"
            f" {measured}: they differ by {fmt_number(abs(claimed - value))}, more than the"
            f" {fmt_number(params.tolerance)} allowed (log the metric your model really has)"
        )
    if problems:
        return Outcome(False, _feedback(problems), evidence)
    text = f"the model of {subject.name} scores {measured}"
    if claimed is not None:
        within = fmt_number(params.tolerance)
        text += f"; it logged {params.claimed_metric} {fmt_number(claimed)}, within {within}"
    return Outcome(True, _feedback([text]), evidence)
