"""What an instructor keeps of a cohort before deleting it: definitions, grade history,
gradebook, and each learner's stack data (MLflow, object store).

``labctl cohort delete --export DIR`` writes ``DIR/<cohort>/`` and only then deletes. Nothing
here is lost with the learners' namespaces: grade attempts are owned by the Learners and go
with them, so this is the moment to keep them. The export is written to a hidden sibling folder
and renamed when complete: ``DIR/<cohort>/`` is never a half export, and a failed run can be
run again.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from labctl.cohorts import operations as cohorts
from labctl.core.errors import UsageError
from labctl.exports.stacks import export_stacks
from labctl.grading import records
from labctl.grading.gradebook import Assignment, export_gradebook
from labctl.kube import Kube


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as one would re-apply it: no server-managed metadata."""
    meta = {k: v for k, v in obj["metadata"].items() if k in ("name", "labels", "annotations")}
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta, "spec": obj["spec"]}


def export_cohort(
    kube: Kube,
    name: str,
    directory: Path,
    *,
    stack_data: bool = True,
    report: Callable[[str], None] = lambda _line: None,
) -> Path:
    """Write the cohort's definition, learners, every grade attempt, a gradebook and (with
    ``stack_data``) each learner's MLflow and object-store data; return the folder."""
    cohort = cohorts.get_cohort(kube, name)
    final = directory / name
    if final.exists() and any(final.iterdir()):
        raise UsageError(f"--export {directory}: {final} already exists and is not empty")
    target = directory / f".{name}.partial"
    shutil.rmtree(target, ignore_errors=True)  # what a failed run left
    target.mkdir(parents=True)
    learners = cohorts.learners(kube, name)
    attempts = records.history(kube, cohort=name)
    (target / "cohort.yaml").write_text(yaml.safe_dump(_clean(cohort), sort_keys=False))
    (target / "learners.yaml").write_text(
        yaml.safe_dump_all([_clean(lr) for lr in learners], sort_keys=False)
    )
    grades_dir = target / "grades"
    grades_dir.mkdir(exist_ok=True)
    for learner in learners:
        mine = [a for a in attempts if a["spec"]["learner"] == learner["metadata"]["name"]]
        (grades_dir / f"{learner['spec']['email']}.json").write_text(
            json.dumps([a["spec"] for a in mine], indent=2, sort_keys=True)
        )
    labs = list(cohort["spec"].get("labs") or []) or sorted({a["spec"]["lab"] for a in attempts})
    if labs:
        grades = records.learner_grades(learners, attempts, labs)
        (target / "gradebook.csv").write_text(
            export_gradebook(grades, fmt="csv", assignments=[Assignment(lab) for lab in labs])
        )
    if stack_data:
        for learner in learners:
            export_stacks(kube, learner, target / "stacks" / learner["spec"]["email"], report)
    if final.exists():
        final.rmdir()  # empty (checked above)
    target.rename(final)
    return final
