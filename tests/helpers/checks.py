"""A check with knobs, registered as ``test.behave``, for engine and plan tests."""

from __future__ import annotations

import time
from typing import Literal

from graders.core import REGISTRY, Context, GraderError, Outcome, Params, TransientGraderError, check


class Knobs(Params):
    behaviour: Literal["pass", "fail", "partial", "crash", "hang", "grader", "flaky", "not-an-outcome"]
    flaky_failures: int = 0


_calls: dict[str, int] = {}


def _behave(ctx: Context, params: Knobs) -> Outcome:
    if params.behaviour == "pass":
        return Outcome(True, "all good", {"seen": ctx.namespace})
    if params.behaviour == "fail":
        return Outcome(False, "accuracy 0.50 is below the required 0.80")
    if params.behaviour == "partial":
        return Outcome(False, "3 of 4 criteria met", fraction=0.75)
    if params.behaviour == "crash":
        raise ZeroDivisionError("division by zero")
    if params.behaviour == "hang":
        time.sleep(5)
        return Outcome(True, "too late")
    if params.behaviour == "grader":
        raise GraderError("tracking server of the cohort is unreachable")
    if params.behaviour == "flaky":
        key = str(ctx.learner)
        _calls[key] = _calls.get(key, 0) + 1
        if _calls[key] <= params.flaky_failures:
            raise TransientGraderError("connection reset")
        return Outcome(True, "fine on retry")
    return "yes"  # type: ignore[return-value]


if "test.behave" not in REGISTRY:
    check("test.behave", Knobs)(_behave)
