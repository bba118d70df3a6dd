"""Labs as pydantic models: the lab folder's files, and the Lab and LabSession resources.

``LabFile`` and ``MistakeFile`` are the single source of truth for the lab format: ``labctl lab
validate`` checks lab files with them, ``labs/lab.schema.json`` (for editors) and the Lab CRD's schema are
generated from them, and the docs' catalog table is rendered from loaded labs.

A lab folder::

    labs/<level>/<name>/
      lab.yaml          this model (LabFile)
      README.md         what the learner reads (`labctl lab show`)
      files/            starter files the README refers to (`labctl lab files`)
      setup/*.yaml      applied into the learner's namespace when their session starts
      hidden/           grader data: published only to the controller's namespace
      solution/run.sh   the reference solution, run as a learner would (their kubeconfig, clients)
      mistakes/<name>/  mistake.yaml (MistakeFile) and run.sh: a planted wrong solution
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from labctl.api.v1alpha1 import LAB_ID_PATTERN, Condition, GradeStatus, LabId, Level, Model, QuotaProfileName

Track = Literal["Core MLOps", "Implementation", "Data Systems", "Strategy"]
LearningPath = Literal["DevOps", "DevSecOps", "SRE", "MLOps", "DataOps", "FinOps"]
Difficulty = Literal["beginner", "intermediate", "advanced"]
Stack = Literal["mlflow", "object-store", "prometheus", "alertmanager"]
LEVELS: tuple[Level, ...] = ("foundation", "professional", "advanced")
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
VERSION_PATTERN = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$"
DURATION_PATTERN = r"^([0-9]+h)?([0-9]+m)?$"  # 90m, 2h, 1h30m
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]


class _Model(BaseModel):
    """camelCase in YAML, snake_case in Python; unknown keys are an error (a typo is caught)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Resources(_Model):
    """What a learner's namespace must allow for this lab."""

    gpu: int = Field(default=0, ge=0, le=64, description="GPUs the lab's workloads ask for at once")
    quota_profile: QuotaProfileName = Field(
        default="small", description="the smallest quota profile the lab fits in"
    )


class LabCheck(_Model):
    """One check of a task: a grader from graders/ with its parameters, for points."""

    name: Name = Field(description="unique within the lab; mistakes name checks by it")
    grader: str = Field(min_length=1, description="a registered check, e.g. mlflow.experiment")
    points: float = Field(default=1.0, gt=0, le=1000)
    required: bool = Field(default=False, description="a failed required check fails the lab")
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    retries: int = Field(default=1, ge=0, le=10)
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="the grader's parameters; strings may hold {namespace}, {learner}, {email}, "
        "{cohort}, {hidden} (the lab's hidden data folder), {session_start}, {seed}",
    )
    failure: str = Field(
        min_length=1, max_length=2000, description="what the learner is told when it fails: what, where"
    )


class Task(_Model):
    """One step of the lab's story: what to do, how it is checked, hints one at a time."""

    id: Name
    title: str = Field(min_length=1, max_length=120)
    checks: list[LabCheck] = Field(min_length=1, max_length=20)
    hints: list[str] = Field(default_factory=list, max_length=10)


class LabFile(_Model):
    """``lab.yaml``."""

    id: str = Field(pattern=LAB_ID_PATTERN, max_length=100, description="<level>/<name>, as its folder")
    title: str = Field(min_length=1, max_length=120)
    summary: str = Field(min_length=1, max_length=300, description="one sentence for `labctl lab list`")
    level: Level
    track: Track
    paths: list[LearningPath] = Field(min_length=1, description="the learning paths it counts for")
    version: str = Field(pattern=VERSION_PATTERN, description="semver; a published version is immutable")
    prerequisites: list[str] = Field(default_factory=list, description="lab ids to pass first")
    duration: str = Field(
        pattern=DURATION_PATTERN, min_length=2, description="how long a session lasts, e.g. 90m, 2h"
    )
    difficulty: Difficulty
    resources: Resources = Field(default_factory=Resources)
    stacks: list[Stack] = Field(default_factory=list, description="the learner stacks the lab needs")
    cooldown_seconds: int = Field(default=30, ge=0, le=3600, description="least time between two checks")
    pass_mark: float = Field(default=1.0, ge=0, le=1, description="fraction of the points to pass")
    hidden: list[str] = Field(
        default_factory=list, description="grader data files under hidden/; never shown to learners"
    )
    tasks: list[Task] = Field(min_length=1, max_length=30)

    @field_validator("prerequisites")
    @classmethod
    def _prerequisite_ids(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(LAB_ID_PATTERN, item):
                raise ValueError(f"{item!r} is not a lab id (<level>/<name>)")
        return value

    @property
    def name(self) -> str:
        return self.id.split("/", 1)[1]

    @property
    def checks(self) -> list[LabCheck]:
        return [c for task in self.tasks for c in task.checks]

    @property
    def simulable(self) -> bool:
        """Gradable on kwok nodes (pods pretend to run): no stacks, only the API server's decisions."""
        return not self.stacks and all(c.grader.startswith("kube.") for c in self.checks)

    def duration_seconds(self) -> int:
        match = re.fullmatch(r"(?:([0-9]+)h)?(?:([0-9]+)m)?", self.duration)
        hours, minutes = (int(g or 0) for g in match.groups()) if match else (0, 0)
        return hours * 3600 + minutes * 60


class MistakeFile(_Model):
    """``mistakes/<name>/mistake.yaml``: a planted wrong solution and the checks that must catch it."""

    description: str = Field(min_length=1, max_length=500, description="what is wrong, for lab authors")
    games: bool = Field(default=False, description="true when it tries to fool the grader")
    fails: list[Name] = Field(min_length=1, description="every check that must fail; all others must pass")


# --- the resources -------------------------------------------------------------------------------


class LabSpec(Model):
    """A published lab version (cluster-scoped ``Lab``, named by :func:`lab_object_name`).

    Immutable once published (an admission policy keeps it so); everything in it is what a
    learner may read: the definition, the README, the setup objects. Never the solution, the
    planted mistakes or the hidden data (a Secret in the controller's namespace, named here)."""

    id: LabId
    version: str = Field(pattern=VERSION_PATTERN)
    definition: LabFile
    readme: str = Field(default="", max_length=200_000)
    setup: list[dict[str, Any]] = Field(default_factory=list, max_length=200)
    files: dict[str, str] = Field(
        default_factory=dict, description="starter files (files/ in the lab folder), by relative path"
    )
    hidden_secret: str | None = Field(default=None, max_length=253)
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


SessionPhase = Literal[
    "Pending", "Refused", "SettingUp", "Ready", "Checking", "Passed", "Failed", "Expired", "Stopped"
]
TaskState = Literal["pending", "passed", "failed", "error"]


class LabSessionSpec(Model):
    """One learner doing one lab (``LabSession`` in the learner's namespace, named after the lab).

    Learners create it and write its spec; only the controller writes its status. A check is
    asked for by raising ``checkRequest``; the controller runs it (never the learner's side)."""

    lab: LabId
    version: str = Field(pattern=VERSION_PATTERN, description="the published version, kept for the session")
    check_request: int = Field(default=0, ge=0, description="raise it by one to ask for a check")
    reset_request: int = Field(default=0, ge=0, description="raise it by one to apply setup again")
    stopped: bool = False
    override: bool = Field(
        default=False, description="instructors only: start despite level and prerequisites"
    )


class CheckState(Model):
    name: str
    status: GradeStatus
    points: float = Field(ge=0)
    max_points: float = Field(ge=0)
    feedback: str = Field(default="", max_length=8000)


class TaskStatus(Model):
    id: str
    title: str
    state: TaskState = "pending"
    points: float = 0
    max_points: float = 0
    checks: list[CheckState] = Field(default_factory=list)
    hints_shown: int = Field(default=0, ge=0, description="hints revealed so far, one per failed check")


class LabSessionStatus(Model):
    phase: SessionPhase | None = None
    message: str = ""
    title: str = ""
    seed: int | None = Field(default=None, description="this learner's data seed for the lab ($LAB_SEED)")
    started_at: datetime | None = None
    expires_at: datetime | None = None
    checks_served: int = Field(default=0, ge=0, description="the last checkRequest answered")
    resets_served: int = Field(default=0, ge=0)
    last_check_at: datetime | None = None
    attempts: int = Field(default=0, ge=0, description="checks run (recorded as GradeAttempts)")
    score: float = 0
    max_score: float = 0
    passed: bool = False
    tasks: list[TaskStatus] = Field(default_factory=list)
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


def lab_object_name(lab_id: str, version: str) -> str:
    """``foundation/model-registry`` 1.2.0 -> ``foundation.model-registry.v1-2-0`` (a Lab's name)."""
    return f"{lab_id.replace('/', '.')}.v{version.replace('.', '-')}"


def session_name(lab_id: str) -> str:
    """A learner's LabSession for ``lab_id``: one per lab in their namespace."""
    return lab_id.replace("/", ".")
