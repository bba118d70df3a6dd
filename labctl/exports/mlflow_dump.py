"""Save everything a learner's MLflow tracking server holds, through its REST API, as files.

``dump_mlflow(base_url, target)`` writes (every name that becomes a path goes through
:func:`~labctl.exports._files.component`: ``%``-encoded, never ``.``/``..``)::

    target/
      mlflow.json                        index: MLflow version, experiments (id -> name, stage,
                                         folder), registered models (name -> file), skipped items
      experiments/<experiment_id>/
        experiment.json                  the experiment as the REST API gives it; tags as a dict
        runs/<run_id>/
          run.json                       info (status, times, lifecycle_stage, artifact_uri), params,
                                         tags and latest metrics as dicts, inputs (datasets), outputs
          metrics.json                   {metric key: every logged point [{step, timestamp, value,
                                         ...}], sorted by step, then timestamp}
          artifacts/<artifact path>      each artifact file, byte for byte, via the server's proxy
        models/<model_id>/               MLflow 3 logged models (``log_model``): their artifacts
          model.json                     live here, not under the run that logged them
          artifacts/<artifact path>
      registry/<model name>.json         a registered model: tags, aliases {alias: version}, and
                                         every version (status, source, run_id, model_id, tags,
                                         aliases) with ``lineage``: its source run and logged
                                         model, by id and by folder (relative to ``target``;
                                         null when not on the server)

Everything is JSON with sorted keys and a stable order of list items, so two exports of the
same server diff cleanly. Deleted experiments and runs (MLflow keeps them until
``mlflow gc``) are saved too, marked by their ``lifecycle_stage``: a registered version may
still come from one, and a learner's deleted work is still theirs. Prompts of the prompt
registry are registered models too and are saved with them. Traces and evaluation datasets are
not saved.

Artifacts come from the tracking server's own endpoints (``artifacts/list`` + ``get-artifact``
for runs, ``logged-models/<id>/artifacts`` for logged models), which read through the server's
artifact proxy wherever ``--artifacts-destination`` points. An artifact path that is not a plain
relative path is not written (listed as skipped): the server refuses such paths on upload, so
only a tampered store can list one, and the object-store dump keeps those bytes anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.clients.mlflow import MlflowError, MlflowRest, NotFound
from labctl.exports import _files
from labctl.exports._files import DumpError, component, write_json
from labctl.exports._mlflow_registry import dump_registry

PAGE_SIZE = 1000  # the largest page every search endpoint accepts (registered models: 1000)
TIMEOUT_S = 120.0  # per request; an artifact of a few hundred MB fits at port-forward speeds
MAX_ARTIFACT_DEPTH = 64  # bounds a listing that loops; no real artifact tree is this deep


@dataclass(frozen=True)
class MlflowSummary:
    """What a dump saved: counts the CLI prints, and what it could not save."""

    experiments: int
    runs: int
    metric_points: int
    artifacts: int
    artifact_bytes: int
    logged_models: int
    registered_models: int
    model_versions: int
    skipped: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = (
            f"{self.experiments} experiments, {self.runs} runs ({self.metric_points} metric points), "
            f"{self.artifacts} artifact files ({_size(self.artifact_bytes)}), "
            f"{self.logged_models} logged models, {self.registered_models} registered models "
            f"({self.model_versions} versions)"
        )
        return text + (f"; {len(self.skipped)} skipped" if self.skipped else "")


@dataclass
class _Tally:
    experiments: int = 0
    runs: int = 0
    metric_points: int = 0
    artifacts: int = 0
    artifact_bytes: int = 0
    logged_models: int = 0
    skipped: list[str] = field(default_factory=list)


def dump_mlflow(
    base_url: str,
    target: Path,
    *,
    learner: str | None = None,
    page_size: int = PAGE_SIZE,
    timeout_s: float = TIMEOUT_S,
) -> MlflowSummary:
    """Save every experiment, run, logged model and registered model of ``base_url`` under ``target``.

    ``target`` must be absent or empty. ``learner`` names whose server it is in error messages.
    Raises :class:`DumpError` (a ``LabctlError``) naming the learner, server and object; the
    files written until then are left in place and are incomplete.
    """
    who = f"learner {learner}: " if learner else ""
    _files.fresh_folder(target, f"{who}MLflow export")
    rest = MlflowRest(base_url, where=f"{who}MLflow at {base_url.rstrip('/')}", timeout_s=timeout_s)
    try:
        return _dump(rest, target, page_size)
    except MlflowError as exc:  # it names the learner, the server and the request already
        raise DumpError(str(exc)) from None
    except OSError as exc:  # the export's own disk: full, read-only, ...
        raise DumpError(f"{rest.where}: cannot write the export under {target}: {exc}") from None


def _dump(rest: MlflowRest, target: Path, page_size: int) -> MlflowSummary:
    version = rest.version()
    tally = _Tally()
    experiments = sorted(
        rest.pages(
            "POST", "experiments/search", {"view_type": "ALL", "max_results": page_size}, "experiments"
        ),
        key=lambda e: _id_order(e["experiment_id"]),
    )
    index: dict[str, Any] = {}
    run_folders: dict[str, str] = {}
    model_folders: dict[str, str] = {}
    for experiment in experiments:
        folder = f"experiments/{component(experiment['experiment_id'])}"
        index[experiment["experiment_id"]] = {
            "name": experiment.get("name"),
            "lifecycle_stage": experiment.get("lifecycle_stage"),
            "folder": folder,
        }
        write_json(target / folder / "experiment.json", _with_dicts(experiment, "tags"))
        tally.experiments += 1
        for run in _runs(rest, experiment["experiment_id"], page_size):
            run_id = run["info"]["run_id"]
            run_folders[run_id] = f"{folder}/runs/{component(run_id)}"
            _dump_run(rest, run, target / run_folders[run_id], page_size, tally)
        for model in _logged_models(rest, experiment["experiment_id"], page_size):
            model_id = model["info"]["model_id"]
            model_folders[model_id] = f"{folder}/models/{component(model_id)}"
            _dump_logged_model(rest, model, target / model_folders[model_id], tally)
    registry = dump_registry(rest, target / "registry", run_folders, model_folders, page_size=page_size)
    write_json(
        target / "mlflow.json",
        {
            "mlflow_version": version,
            "experiments": index,
            "registered_models": registry.files,
            "skipped": sorted(tally.skipped),
        },
    )
    return MlflowSummary(
        experiments=tally.experiments,
        runs=tally.runs,
        metric_points=tally.metric_points,
        artifacts=tally.artifacts,
        artifact_bytes=tally.artifact_bytes,
        logged_models=tally.logged_models,
        registered_models=len(registry.files),
        model_versions=registry.versions,
        skipped=tuple(sorted(tally.skipped)),
    )


def _runs(rest: MlflowRest, experiment_id: str, page_size: int) -> Iterator[dict[str, Any]]:
    request = {"experiment_ids": [experiment_id], "run_view_type": "ALL", "max_results": page_size}
    return rest.pages("POST", "runs/search", request, "runs")


def _logged_models(rest: MlflowRest, experiment_id: str, page_size: int) -> list[dict[str, Any]]:
    request = {"experiment_ids": [experiment_id], "max_results": page_size}
    models = rest.pages("POST", "logged-models/search", request, "models")
    return sorted(models, key=lambda m: str(m["info"]["model_id"]))


def _dump_run(rest: MlflowRest, run: dict[str, Any], folder: Path, page_size: int, tally: _Tally) -> None:
    run_id = run["info"]["run_id"]
    data = run.get("data") or {}
    latest = {m["key"]: {k: v for k, v in m.items() if k != "key"} for m in data.get("metrics") or []}
    history = {key: _metric_history(rest, run_id, key, page_size) for key in sorted(latest)}
    write_json(
        folder / "run.json",
        {
            "info": run["info"],
            "params": _as_dict(data.get("params")),
            "tags": _as_dict(data.get("tags")),
            "metrics": latest,
            "inputs": run.get("inputs") or {},
            "outputs": run.get("outputs") or {},
        },
    )
    write_json(folder / "metrics.json", history)
    tally.runs += 1
    tally.metric_points += sum(len(points) for points in history.values())

    def listing(path: str | None) -> dict[str, Any]:
        return rest.get("artifacts/list", run_id=run_id, **({"path": path} if path else {}))

    def download(path: str, destination: Path) -> int:
        return rest.download("/get-artifact", {"run_uuid": run_id, "path": path}, destination)

    _dump_artifacts(rest, listing, download, folder / "artifacts", tally, f"run {run_id}")


def _metric_history(rest: MlflowRest, run_id: str, key: str, page_size: int) -> list[dict[str, Any]]:
    request = {"run_id": run_id, "metric_key": key, "max_results": page_size}
    points = [
        {k: v for k, v in point.items() if k != "key"}
        for point in rest.pages("GET", "metrics/get-history", request, "metrics")
    ]
    # Step, then time; the full point last so that equal (step, timestamp) pairs order stably too.
    return sorted(
        points, key=lambda p: (int(p.get("step", 0)), int(p.get("timestamp", 0)), _files.json_text(p))
    )


def _dump_logged_model(rest: MlflowRest, model: dict[str, Any], folder: Path, tally: _Tally) -> None:
    model_id = model["info"]["model_id"]
    info = _with_dicts(model["info"], "tags")
    data = dict(model.get("data") or {})
    data["params"] = _as_dict(data.get("params"))
    data["metrics"] = sorted(data.get("metrics") or [], key=_files.json_text)
    write_json(folder / "model.json", {"info": info, "data": data})
    tally.logged_models += 1
    endpoint = f"logged-models/{model_id}/artifacts/directories"

    def listing(path: str | None) -> dict[str, Any]:
        return rest.get(endpoint, **({"artifact_directory_path": path} if path else {}))

    def download(path: str, destination: Path) -> int:
        route = f"/ajax-api/2.0/mlflow/logged-models/{model_id}/artifacts/files"
        return rest.download(route, {"artifact_file_path": path}, destination)

    owner = f"logged model {model_id}"
    _dump_artifacts(rest, listing, download, folder / "artifacts", tally, owner)


def _dump_artifacts(
    rest: MlflowRest,
    listing: Callable[[str | None], dict[str, Any]],
    download: Callable[[str, Path], int],
    root: Path,
    tally: _Tally,
    owner: str,
) -> None:
    """Walk an artifact tree listing by listing, downloading each file to ``root/<path>``."""
    pending: list[tuple[str | None, int]] = [(None, 0)]
    while pending:
        directory, depth = pending.pop()
        try:
            files = listing(directory).get("files") or []
        except NotFound:
            continue  # the run or model went away while we walked it
        for entry in sorted(files, key=lambda f: str(f.get("path"))):
            path = str(entry.get("path", ""))
            segments = _files.relative_path(path)
            if segments is None or (directory and not path.startswith(directory + "/")):
                tally.skipped.append(
                    f"{owner}: artifact {path!r} is not a plain path under {directory or '/'}"
                )
                continue
            if entry.get("is_dir"):
                if depth >= MAX_ARTIFACT_DEPTH:
                    tally.skipped.append(f"{owner}: artifact folder {path!r} is nested too deep")
                else:
                    pending.append((path, depth + 1))
                continue
            try:
                size = download(path, _files.inside(root, segments))
            except NotFound:
                continue
            expected = entry.get("file_size")
            if expected is not None and int(expected) != size:
                raise DumpError(
                    f"{rest.where}: {owner}: artifact {path}: {size} bytes saved, {expected} listed"
                )
            tally.artifacts += 1
            tally.artifact_bytes += size


def _as_dict(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    """``[{key, value}]`` (params, tags) as ``{key: value}``: sorted on output, diffable."""
    return {item["key"]: item.get("value", "") for item in items or []}


def _with_dicts(obj: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {**obj, **{name: _as_dict(obj.get(name)) for name in fields}}


def _id_order(value: str) -> tuple[int, str]:
    """Numeric ids (MLflow's sqlite store) in numeric order, others after them by text."""
    return (int(value), "") if value.isdigit() else (1 << 62, value)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
