"""What every check shares: typed parameters, the context it runs in, and its result.

A check is a plain function ``(Context, Params) -> Outcome`` registered under a dotted name
with :func:`check`. It says what the learner built (``Outcome``: passed or not, a fraction
for partial credit, feedback for the learner, evidence for the instructor) or raises
:class:`GraderError` when the grader itself could not look (an API timeout, a crashed
server of ours): that becomes status ``error``, never a pass and never a silent zero.

What the *learner's* systems do wrong (an endpoint that refuses connections, returns
malformed JSON, a metric that is missing) is the learner's failure: a failed Outcome with
feedback saying what was wrong. Only our own side's trouble is an error.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from labctl.core.suggest import did_you_mean


class Status(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # the grader could not decide: shown as such, re-gradable


class Params(BaseModel):
    """Base of every check's parameters: typed, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=Params)


@dataclass(frozen=True)
class Outcome:
    """What a check found. ``fraction`` is partial credit in [0, 1]; None: all or nothing."""

    passed: bool
    feedback: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fraction: float | None = None

    def credit(self) -> float:
        if self.fraction is None:
            return 1.0 if self.passed else 0.0
        return min(1.0, max(0.0, self.fraction))


class GraderError(Exception):
    """The grader could not do its job (our infrastructure, not the learner's work)."""


class TransientGraderError(GraderError):
    """A grader failure worth retrying: a dropped connection, a 5xx from our own API."""


class NoRoute(ConnectionError):
    """``Context.reach`` found no way to a Service: no such Service or port, or no ready pod
    behind it. A ConnectionError, so checks treat it as any address that refuses connections."""


def as_is(url: str) -> str:
    return url


@dataclass
class Context:
    """Where a check runs: the learner, their namespace, a cluster connection, a deadline.

    ``kube`` is a :class:`labctl.kube.Kube` (typed loosely so graders import without a cluster).
    Checks must bound every wait by :meth:`remaining`, and pass every URL they connect to
    through ``reach`` as they connect (and show the learner the URL as written): it turns a
    Service's cluster DNS name into an address this process can connect to (a port-forward when
    grading from outside the cluster, see labctl.grading.reach), or raises :class:`NoRoute`.
    """

    learner: str = ""
    namespace: str | None = None
    kube: Any = None
    timeout_s: float = 60.0
    started: float = field(default_factory=time.monotonic)
    reach: Callable[[str], str] = as_is
    # The learner's latest submitted bundle of a lab, written to a path (labctl.grading.submissions
    # provides it): LookupError when there is none, NoRoute when their store is unreachable,
    # GraderError for our side's trouble. None: this run reads no submissions.
    fetch_submission: Callable[[Context, str, Path], None] | None = None

    def remaining(self, at_most: float | None = None) -> float:
        """Seconds left before the check's deadline (never below 0.1), capped by ``at_most``."""
        left = max(0.1, self.timeout_s - (time.monotonic() - self.started))
        return min(left, at_most) if at_most is not None else left


@dataclass(frozen=True)
class CheckResult:
    """A check's result as recorded and reported."""

    check: str
    status: Status
    points: float
    max_points: float
    feedback: str
    evidence: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    attempts: int = 1

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status.value,
            "passed": self.passed,
            "points": self.points,
            "max_points": self.max_points,
            "feedback": self.feedback,
            "evidence": self.evidence,
            "duration_s": round(self.duration_s, 4),
            "attempts": self.attempts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(
            check=data["check"],
            status=Status(data["status"]),
            points=float(data["points"]),
            max_points=float(data["max_points"]),
            feedback=data.get("feedback", ""),
            evidence=data.get("evidence") or {},
            duration_s=float(data.get("duration_s", 0.0)),
            attempts=int(data.get("attempts", 1)),
        )


@dataclass(frozen=True)
class CheckSpec(Generic[P]):
    name: str
    params: type[P]
    func: Callable[[Context, P], Outcome]
    summary: str

    def parse(self, raw: dict[str, Any]) -> P:
        """Typed parameters, or :class:`BadParams` naming each wrong field."""
        try:
            return self.params.model_validate(raw)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(map(str, e['loc'])) or '(params)'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ]
            raise BadParams(self.name, problems) from None


class UnknownCheck(LookupError):
    def __init__(self, name: str) -> None:
        kind = sorted(n for n in REGISTRY if n.split(".")[0] == name.split(".")[0])
        listing = f"; checks of that kind: {', '.join(kind)}" if kind else ""
        hint = did_you_mean(name, REGISTRY) or " (see `labctl check list`)"
        super().__init__(f"unknown check {name!r}{listing}{hint}")
        self.name = name


class BadParams(ValueError):
    def __init__(self, check: str, problems: list[str]) -> None:
        super().__init__(f"check {check}: bad parameters: " + "; ".join(problems))
        self.check, self.problems = check, problems


REGISTRY: dict[str, CheckSpec[Any]] = {}


def check(
    name: str, params: type[P]
) -> Callable[[Callable[[Context, P], Outcome]], Callable[[Context, P], Outcome]]:
    """Register a check function under ``name`` (``kind.what``) with its parameter model."""

    def register(func: Callable[[Context, P], Outcome]) -> Callable[[Context, P], Outcome]:
        if name in REGISTRY:
            raise ValueError(f"check {name} registered twice")
        summary = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""
        REGISTRY[name] = CheckSpec(name, params, func, summary)
        return func

    return register


def get(name: str) -> CheckSpec[Any]:
    if name not in REGISTRY:
        load_all()
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownCheck(name) from None


def load_all() -> dict[str, CheckSpec[Any]]:
    """Import every check module (registration happens at import)."""
    import importlib
    import pkgutil

    import graders

    broken = []
    for module in pkgutil.iter_modules(graders.__path__):
        if module.name not in ("core", "engine") and not module.name.startswith("_"):
            try:
                importlib.import_module(f"graders.{module.name}")
            except Exception as exc:  # one broken check module must not take every other check down
                broken.append(f"graders.{module.name}: {type(exc).__name__}: {exc}")
    if broken:
        logging.getLogger(__name__).error("check modules that failed to import: %s", "; ".join(broken))
    return REGISTRY
