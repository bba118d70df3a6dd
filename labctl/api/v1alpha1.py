"""The custom resources of labctl.dev/v1alpha1, as pydantic models.

These models are the single source of truth: the CLI validates with them before it writes
anything, and the CRDs' OpenAPI schemas are generated from them (labctl.api.crds), so the
API server rejects the same bad specs the CLI does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from labctl.core.labels import GROUP

VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

Level = Literal["foundation", "professional", "advanced"]
QuotaProfileName = Literal["small", "medium", "large", "gpu"]
# Where learners' pods may connect beyond DNS, their own namespace and the API server
# (labctl.provision.egress says exactly what each allows; link-local and cloud metadata never).
EgressMode = Literal["none", "cluster", "internet"]
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
LAB_ID_PATTERN = r"^(foundation|professional|advanced)/[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
LabId = Annotated[str, Field(pattern=LAB_ID_PATTERN, max_length=100)]
# Cohort names prefix every learner namespace; keep room for the learner part.
COHORT_NAME_MAX = 24


class Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are an error."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Condition(Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class RosterEntry(Model):
    """One learner on a roster. Identity is the e-mail address, compared case-insensitively."""

    email: str = Field(pattern=EMAIL_PATTERN, max_length=254)
    name: str | None = Field(default=None, max_length=200)
    id: str | None = Field(default=None, max_length=100)


class CohortSpec(Model):
    level: Level
    labs: list[LabId] = Field(default_factory=list)
    quota_profile: QuotaProfileName = "small"
    egress: EgressMode = "none"
    expires: datetime | None = None
    suspended: bool = False
    learners: list[RosterEntry] = Field(min_length=1, max_length=5000)


class CohortStatus(Model):
    learners: int = 0
    ready: int = 0
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


class LearnerSpec(Model):
    cohort: str = Field(max_length=COHORT_NAME_MAX)
    email: str = Field(pattern=EMAIL_PATTERN, max_length=254)
    display_name: str | None = Field(default=None, max_length=200)
    id: str | None = Field(default=None, max_length=100)
    level: Level
    labs: list[LabId] = Field(default_factory=list)
    quota_profile: QuotaProfileName = "small"
    egress: EgressMode = "none"
    suspended: bool = False


class LearnerStatus(Model):
    namespace: str | None = None
    phase: Literal["Pending", "Provisioning", "Ready", "Degraded", "Suspended"] | None = None
    stacks: dict[str, bool] = Field(default_factory=dict)
    applied_stacks: list[str] = Field(default_factory=list)  # what the last apply rendered
    applied_hash: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


GradeStatus = Literal["passed", "failed", "error"]


class CheckRecord(Model):
    """One check's result inside a recorded attempt."""

    check: str = Field(max_length=200)
    status: GradeStatus
    points: float = Field(ge=0)
    max_points: float = Field(ge=0)
    feedback: str = Field(default="", max_length=8000)
    evidence: str = Field(default="{}", max_length=32000)  # JSON text: free-form, kept verbatim
    duration_s: float = Field(default=0, ge=0)
    attempts: int = Field(default=1, ge=1)


class GradeAttemptSpec(Model):
    """One grading of one learner's lab. Immutable once written (admission enforces it)."""

    cohort: str = Field(max_length=COHORT_NAME_MAX)
    learner: str = Field(max_length=63)  # the Learner's name (= their namespace)
    email: str = Field(pattern=EMAIL_PATTERN, max_length=254)
    lab: LabId
    attempt: int = Field(ge=1)
    graded_at: datetime
    graded_by: str = Field(default="", max_length=300)
    status: GradeStatus
    score: float = Field(ge=0)
    max_score: float = Field(ge=0)
    pass_mark: float = Field(ge=0, le=1)
    required: list[str] = Field(default_factory=list, max_length=200)  # checks that gate a pass
    results: list[CheckRecord] = Field(default_factory=list, max_length=200)
