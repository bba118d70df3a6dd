"""A lab's grading plan: which checks, with what parameters, for how many points.

Plans live beside the lab (``labs/<level>/<lab>/grading.yaml``) or are given with ``--plan``.
Everything is validated when the plan is loaded — unknown checks, wrong parameter types,
duplicate names — so a bad plan stops before a single learner is graded. String parameters
may name the learner's place: ``{namespace}``, ``{learner}``, ``{email}``, ``{cohort}``; a lab's
checks also ``{hidden}`` (the folder of the lab's hidden data on the grader's side),
``{session_start}`` (ISO-8601 UTC) and ``{seed}`` (the learner's seed for the lab).
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from graders.core import BadParams, UnknownCheck, get
from graders.engine import CheckCall
from labctl.api.v1alpha1 import LabId
from labctl.core.errors import UsageError
from labctl.core.suggest import did_you_mean_lab
from labctl.core.typed_yaml import load_model

PLACEHOLDERS = frozenset({"namespace", "learner", "email", "cohort", "hidden", "session_start", "seed"})
# A made-up learner, to check that parameters parse once filled in, before anyone is graded.
SAMPLE_PLACE = {
    "namespace": "ns",
    "learner": "ns",
    "email": "a@b.c",
    "cohort": "c",
    "hidden": "/hidden",
    "session_start": "2025-01-01T00:00:00Z",
    "seed": "12345",
}
LABS_ROOT = Path(__file__).resolve().parents[2] / "labs"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class PlannedCheck(_Model):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$", max_length=100)
    check: str
    points: float = Field(default=1.0, gt=0)
    required: bool = False
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    retries: int = Field(default=2, ge=0, le=10)
    params: dict[str, Any] = Field(default_factory=dict)


class GradingPlan(_Model):
    lab: LabId
    pass_mark: float = Field(default=0.6, ge=0, le=1)
    checks: list[PlannedCheck] = Field(min_length=1, max_length=200)

    @field_validator("checks")
    @classmethod
    def _unique_names(cls, checks: list[PlannedCheck]) -> list[PlannedCheck]:
        seen: set[str] = set()
        for item in checks:
            if item.name in seen:
                raise ValueError(f"check name {item.name!r} used twice")
            seen.add(item.name)
        return checks

    @model_validator(mode="after")
    def _checks_exist_and_params_fit(self) -> GradingPlan:
        for i, item in enumerate(self.checks):
            try:
                get(item.check).parse(fill(item.params, SAMPLE_PLACE))
            except (UnknownCheck, BadParams, KeyError) as exc:
                raise ValueError(f"checks[{i}] ({item.name}): {exc}") from None
        return self

    @property
    def required(self) -> frozenset[str]:
        return frozenset(c.name for c in self.checks if c.required)

    def calls(self, place: dict[str, str]) -> tuple[CheckCall, ...]:
        """The engine calls for one learner, their placeholders filled in."""
        return tuple(
            CheckCall(
                check=c.check,
                params=fill(c.params, place),
                max_points=c.points,
                timeout_s=c.timeout_seconds,
                retries=c.retries,
                name=c.name,
            )
            for c in self.checks
        )


def fill(value: Any, place: dict[str, str]) -> Any:
    """Substitute ``{namespace}``-style placeholders in every string inside ``value``.

    ``{{`` and ``}}`` are literal braces (PromQL's ``up{{job="x"}}``), in every string alike."""
    if isinstance(value, str):
        names = {field for _, field, _, _ in string.Formatter().parse(value) if field is not None}
        if unknown := names - PLACEHOLDERS:
            raise KeyError(f"unknown placeholder(s) {', '.join(sorted(unknown))} in {value!r}")
        return value.format(**place) if "{" in value or "}" in value else value
    if isinstance(value, dict):
        return {k: fill(v, place) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, place) for v in value]
    return value


def load_plan(path: Path) -> GradingPlan:
    """A plan from YAML; any problem is a UsageError naming the file and the field."""
    return load_model(path, GradingPlan, what="grading plan (lab, passMark, checks)")


def plan_for_lab(lab: str, plan_file: Path | None = None, *, known: Iterable[str] = ()) -> GradingPlan:
    """``--plan FILE`` if given, else ``labs/<level>/<lab>/grading.yaml``; its lab must match.

    ``known``: the lab ids the user may have meant (the published ones), for a misspelt ``lab``."""
    path = plan_file or LABS_ROOT / lab / "grading.yaml"
    if plan_file is None and not path.exists():
        hint = did_you_mean_lab(lab, known)
        raise UsageError(f"lab {lab!r} has no grading plan at {path}{hint}; pass one with --plan FILE")
    plan = load_plan(path)
    if plan.lab != lab:
        raise UsageError(f"{path}: lab: the plan is for {plan.lab!r}, not {lab!r}")
    return plan
