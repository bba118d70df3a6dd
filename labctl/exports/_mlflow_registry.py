"""The model registry part of an MLflow dump: one JSON file per registered model (and prompt).

Versions are fetched with one unfiltered ``model-versions/search`` and grouped by model name,
rather than one search per model: a filter would have to quote the learner's model names
(which may hold quotes) and would cost a request per model. The registry hides prompts from
unfiltered searches, so each search runs a second time for prompts only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.clients.mlflow import MlflowRest
from labctl.exports._files import component, write_json

REGISTRY_PAGE_MAX = 1000  # registered-models/search refuses larger pages
_PROMPTS = "tags.`mlflow.prompt.is_prompt` = 'true'"


@dataclass(frozen=True)
class Registry:
    files: dict[str, str]  # model name -> its file, relative to the dump's folder
    versions: int


def dump_registry(
    rest: MlflowRest,
    folder: Path,
    run_folders: dict[str, str],
    model_folders: dict[str, str],
    *,
    page_size: int,
) -> Registry:
    """Write ``folder/<model>.json`` for every registered model; lineage points at the dumped folders."""
    models: dict[str, dict[str, Any]] = {}
    for query in ({}, {"filter": _PROMPTS}):
        request = {**query, "max_results": min(page_size, REGISTRY_PAGE_MAX)}
        for model in rest.pages("GET", "registered-models/search", request, "registered_models"):
            models[model["name"]] = model
    versions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for query in ({}, {"filter": _PROMPTS}):
        request = {**query, "max_results": page_size}
        for version in rest.pages("GET", "model-versions/search", request, "model_versions"):
            if (version["name"], version["version"]) not in seen:
                seen.add((version["name"], version["version"]))
                versions[version["name"]].append(version)
    files: dict[str, str] = {}
    for name, model in sorted(models.items()):
        files[name] = f"{folder.name}/{component(name)}.json"
        mine = sorted(versions.get(name, []), key=lambda v: int(v["version"]))
        write_json(folder / f"{component(name)}.json", _model_record(model, mine, run_folders, model_folders))
    return Registry(files=files, versions=sum(len(versions.get(name, [])) for name in models))


def _model_record(
    model: dict[str, Any],
    versions: list[dict[str, Any]],
    run_folders: dict[str, str],
    model_folders: dict[str, str],
) -> dict[str, Any]:
    # latest_versions repeats what "versions" holds in full.
    record = {k: v for k, v in model.items() if k not in ("latest_versions", "tags", "aliases")}
    record["tags"] = {t["key"]: t.get("value", "") for t in model.get("tags") or []}
    record["aliases"] = {a["alias"]: a["version"] for a in model.get("aliases") or []}
    by_version: dict[str, list[str]] = defaultdict(list)
    for alias, number in record["aliases"].items():
        by_version[number].append(alias)
    record["versions"] = [
        _version_record(v, sorted(by_version[v["version"]]), run_folders, model_folders) for v in versions
    ]
    return record


def _version_record(
    version: dict[str, Any], aliases: list[str], run_folders: dict[str, str], model_folders: dict[str, str]
) -> dict[str, Any]:
    record = {k: v for k, v in version.items() if k != "tags"}
    record["tags"] = {t["key"]: t.get("value", "") for t in version.get("tags") or []}
    # Searches leave a version's own aliases (and model_id) out; the model's alias map has them.
    record["aliases"] = aliases
    run_id, model_id = version.get("run_id"), version.get("model_id") or _logged_model_id(version)
    # None when the source is gone (run garbage-collected) or was never on this server.
    record["lineage"] = {
        "run_id": run_id or None,
        "run": run_folders.get(run_id) if run_id else None,
        "model_id": model_id or None,
        "logged_model": model_folders.get(model_id) if model_id else None,
    }
    return record


def _logged_model_id(version: dict[str, Any]) -> str | None:
    """The logged model a version was registered from, by its source ``models:/<model_id>``."""
    source = str(version.get("source") or "")
    if source.startswith("models:/") and "/" not in source[len("models:/") :]:
        return source[len("models:/") :]
    return None
