"""A published lab as a grading plan, and what its placeholders become for one learner."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from labctl.api.labs import LabSessionStatus, LabSpec
from labctl.api.v1alpha1 import API_VERSION
from labctl.catalog.publish import hidden_files, latest
from labctl.grading.plan import GradingPlan, PlannedCheck
from labctl.grading.run import place_of as grading_place_of
from labctl.kube import Kube
from labctl.provision.naming import learner_namespace
from labctl.sessions.gates import seed

Places = Callable[[dict[str, Any]], dict[str, str]]


def plan_of(spec: LabSpec) -> GradingPlan:
    """The lab's checks, in task order, as the grading engine runs them.

    Built without GradingPlan's own parameter validation: a published lab was validated whole
    by ``labctl lab publish`` (its ``{hidden}`` files only exist on the grader's side, at run time);
    the engine still parses each check's parameters before it runs and reports bad ones as errors."""
    lab = spec.definition
    checks = tuple(
        PlannedCheck(
            name=c.name,
            check=c.grader,
            points=c.points,
            required=c.required,
            timeout_seconds=c.timeout_seconds,
            retries=c.retries,
            params=c.params,
        )
        for c in lab.checks
    )
    return GradingPlan.model_construct(lab=lab.id, pass_mark=lab.pass_mark, checks=list(checks))


def place_of(
    learner: dict[str, Any], lab_id: str, *, hidden: Path | None, session_start: dt.datetime | None
) -> dict[str, str]:
    """Every placeholder a lab's check parameters may use, for this learner: their place (as any
    grading plan has it), the lab's hidden data folder, their session's start and their seed."""
    return {
        **grading_place_of(learner),
        "hidden": str(hidden) if hidden else "",
        "session_start": (session_start or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).isoformat(),
        "seed": str(seed(learner["metadata"]["name"], lab_id)),
    }


@contextmanager
def hidden_dir(files: dict[str, bytes]) -> Iterator[Path]:
    """The lab's hidden files in a private temporary folder for one grading, removed after."""
    folder = Path(tempfile.mkdtemp(prefix="labctl-hidden-"))  # mode 0700
    try:
        for name, data in files.items():
            (folder / name).write_bytes(data)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def published_grading(kube: Kube, lab_id: str) -> Iterator[tuple[GradingPlan, Places] | None]:
    """A published lab's plan and each learner's placeholders (hidden data, seed, their session's
    start), for ``labctl grade`` and exports; None when the lab is not published."""
    spec = latest(kube, lab_id)
    if spec is None:
        yield None
        return
    starts: dict[str, dt.datetime | None] = {}
    for item in kube.list(API_VERSION, "LabSession"):
        if item["spec"]["lab"] == lab_id:
            starts[item["metadata"]["namespace"]] = LabSessionStatus.model_validate(
                item.get("status") or {}
            ).started_at
    with hidden_dir(hidden_files(kube, spec)) as hidden:

        def places(learner: dict[str, Any]) -> dict[str, str]:
            return place_of(
                learner, lab_id, hidden=hidden, session_start=starts.get(learner_namespace(learner))
            )

        yield plan_of(spec), places
