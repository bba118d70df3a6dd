"""Deterministic scoring of one attempt: points, required checks, the pass mark.

An attempt with any check in status ``error`` is itself ``error``: the grader could not see
everything, so it neither passes nor fails the learner (re-grade it). A missing result for a
planned check counts as an error too — a partial result is never a pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from graders.core import CheckResult, Status


@dataclass(frozen=True)
class Score:
    status: Status
    score: float
    max_score: float
    reasons: tuple[str, ...]  # why it did not pass, for the learner

    @property
    def fraction(self) -> float:
        return self.score / self.max_score if self.max_score else 0.0


def score_attempt(
    results: Iterable[CheckResult], *, planned: Iterable[str], required: Iterable[str], pass_mark: float
) -> Score:
    by_name = {r.check: r for r in results}
    planned = list(planned)
    missing = [name for name in planned if name not in by_name]
    score = round(sum(r.points for r in by_name.values()), 4)
    max_score = round(sum(r.max_points for r in by_name.values()), 4)
    errors = [r.check for r in by_name.values() if r.status is Status.ERROR]
    if missing or errors:
        reasons = [f"no result for {name}" for name in missing] + [f"{name}: grader error" for name in errors]
        return Score(Status.ERROR, score, max_score, tuple(reasons))
    reasons = [f"required check {name} did not pass" for name in required if not by_name[name].passed]
    fraction = score / max_score if max_score else 0.0
    if fraction + 1e-9 < pass_mark:
        reasons.append(f"score {score:g}/{max_score:g} is below the pass mark of {pass_mark:.0%}")
    return Score(Status.FAILED if reasons else Status.PASSED, score, max_score, tuple(reasons))
