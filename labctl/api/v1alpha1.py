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

from labctl.names import GROUP

VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

Level = Literal["foundation", "professional", "advanced"]
QuotaProfileName = Literal["small", "medium", "large", "gpu"]
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
    suspended: bool = False


class LearnerStatus(Model):
    namespace: str | None = None
    phase: Literal["Pending", "Provisioning", "Ready", "Degraded", "Suspended"] | None = None
    stacks: dict[str, bool] = Field(default_factory=dict)
    applied_hash: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
